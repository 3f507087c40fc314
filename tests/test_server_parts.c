/*
 * test_server_parts.c — moepager-server's small thread pieces without HTTP:
 * the bounded queue (tools/jobq.c: order, full, close), a job's hand-over
 * between worker and connection (tools/job.c: status, data, end, cancel,
 * references) and the Prometheus text (tools/metrics.c) from a real stats
 * segment.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "job.h"
#include "jobq.h"
#include "metrics.h"
#include "mp_test.h"
#include "stats.h"

static void test_jobq_order_full_close(void)
{
	struct mp_jobq *q;
	REQUIRE(mp_jobq_create(2, &q) == 0);
	int a = 1, b = 2, c = 3;
	CHECK_EQ_INT(mp_jobq_push(q, &a), 0);
	CHECK_EQ_INT(mp_jobq_push(q, &b), 0);
	CHECK_EQ_INT(mp_jobq_push(q, &c), -EAGAIN);
	CHECK_EQ_U64(mp_jobq_len(q), 2);
	CHECK(mp_jobq_pop(q) == &a);
	CHECK_EQ_INT(mp_jobq_push(q, &c), 0);
	mp_jobq_close(q);
	CHECK_EQ_INT(mp_jobq_push(q, &a), -ECANCELED);
	CHECK(mp_jobq_pop(q) == &b);          /* closed: what is left still drains in order */
	CHECK(mp_jobq_try_pop(q) == &c);
	CHECK(mp_jobq_pop(q) == NULL);        /* closed and empty: no wait */
	mp_jobq_destroy(q);
}

static void *closer(void *arg)
{
	usleep(20000);
	mp_jobq_close(arg);
	return NULL;
}

static void test_jobq_close_wakes_pop(void)
{
	struct mp_jobq *q;
	REQUIRE(mp_jobq_create(1, &q) == 0);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, closer, q) == 0);
	CHECK(mp_jobq_pop(q) == NULL);
	pthread_join(t, NULL);
	mp_jobq_destroy(q);
}

static void *producer(void *arg)
{
	struct mp_job *j = arg;
	usleep(10000);
	mp_job_set_status(j, 200);
	mp_job_put(j, "data: a\n\n", 9);
	usleep(10000);
	mp_job_put(j, "data: [DONE]\n\n", 14);
	mp_job_done(j);
	mp_job_unref(j);
	return NULL;
}

static void test_job_handover(void)
{
	struct mp_api_request req;
	memset(&req, 0, sizeof req);
	req.prompt = mp_strdup("x");
	struct mp_job *j;
	REQUIRE(mp_job_create(&req, &j) == 0);
	CHECK(req.prompt == NULL);             /* taken over */
	CHECK(strcmp(mp_job_request(j)->prompt, "x") == 0);
	CHECK_EQ_INT(mp_job_wait(j, MP_JOB_STATUS, 1), 0);   /* times out */
	mp_job_ref(j);
	pthread_t t;
	REQUIRE(pthread_create(&t, NULL, producer, j) == 0);
	CHECK_EQ_INT(mp_job_wait(j, MP_JOB_STATUS, 5000), 1);
	CHECK_EQ_INT(mp_job_status(j), 200);
	char got[64] = "", buf[8];
	size_t len = 0;
	int end = 0;
	while (!end && mp_job_wait(j, MP_JOB_DATA, 5000)) {
		size_t n = mp_job_read(j, buf, sizeof buf, &end);   /* small reads: pieces */
		memcpy(got + len, buf, n);
		len += n;
	}
	got[len] = 0;
	CHECK(end);
	CHECK(strcmp(got, "data: a\n\ndata: [DONE]\n\n") == 0);
	pthread_join(t, NULL);
	CHECK_EQ_INT(mp_job_cancelled(j), 0);
	mp_job_cancel(j);
	CHECK_EQ_INT(mp_job_cancelled(j), 1);
	mp_job_unref(j);
}

static void test_metrics_text(void)
{
	char path[64], err[256];
	snprintf(path, sizeof path, "test-server-parts.%d.stats", (int)getpid());
	struct mp_stats *w;
	REQUIRE(mp_stats_create(&(struct mp_stats_config){ path, 0, 2, 4, 7, "sync" }, &w, err, sizeof err) == 0);
	mp_stats_begin(w);
	mp_stats_add(&mp_stats_global(w)->tokens, 10);
	mp_stats_add(&mp_stats_global(w)->decode_ns, 2000000000);
	mp_stats_add(&mp_stats_layer(w, 0)->hits, 3);
	mp_stats_add(&mp_stats_layer(w, 1)->hits, 3);
	mp_stats_add(&mp_stats_layer(w, 1)->misses, 2);
	mp_stats_add(&mp_stats_layer(w, 1)->pf_issued, 4);
	mp_stats_add(&mp_stats_layer(w, 1)->pf_used, 3);
	mp_stats_end(w);
	struct mp_stats_reader *r;
	struct mp_stats_snap snap;
	REQUIRE(mp_stats_open(path, &r, err, sizeof err) == 0);
	REQUIRE(mp_stats_snapshot(r, &snap) == 0);
	struct mp_metrics_counts c;
	memset(&c, 0, sizeof c);
	mp_metrics_count_status(&c, 200);
	mp_metrics_count_status(&c, 413);
	mp_metrics_count_status(&c, 418);
	mp_metrics_add(&c.prompt_reused, 16);
	char *text = mp_metrics_format(&c, 1, 8, &snap);
	REQUIRE(text != NULL);
	static const char *const want[] = {
		"moepager_responses_total{code=\"200\"} 1\n", "moepager_responses_total{code=\"413\"} 1\n",
		"moepager_responses_total{code=\"other\"} 1\n", "moepager_queue_length 1\n",
		"moepager_prompt_tokens_total{kind=\"reused\"} 16\n", "moepager_tokens_per_second 5\n",
		"moepager_expert_uses_total{from=\"pool\"} 6\n", "moepager_expert_uses_total{from=\"disk\"} 2\n",
		"moepager_pool_hit_ratio 0.75\n", "moepager_prefetch_precision 0.75\n",
		"# TYPE moepager_stall_seconds_total counter\n",
	};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
		if (!strstr(text, want[i]))
			MP_TEST_FAIL("metrics lack '%.*s'", (int)strlen(want[i]) - 1, want[i]);
	mp_free(text);
	text = mp_metrics_format(&c, 0, 8, NULL);   /* resident experts: no pager part */
	REQUIRE(text != NULL);
	CHECK(strstr(text, "moepager_pool_hit_ratio") == NULL);
	CHECK(strstr(text, "moepager_queue_capacity 8\n") != NULL);
	mp_free(text);
	mp_stats_snap_free(&snap);
	mp_stats_close(r);
	mp_stats_destroy(w);
}

int main(void)
{
	RUN(test_jobq_order_full_close);
	RUN(test_jobq_close_wakes_pop);
	RUN(test_job_handover);
	RUN(test_metrics_text);
	return mp_test_end();
}
