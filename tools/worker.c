/*
 * worker.c — the model's thread in moepager-server (worker.h).
 *
 * Invariants:
 * 1. Only this thread touches the session after start (the HTTP threads
 *    see jobs, the queue and the atomic counters).
 * 2. Every job popped ends with mp_job_done and loses the worker's ref,
 *    whatever happened (cancelled, refused, failed, answered).
 * 3. A stream's events are complete JSON objects in order: the role chunk
 *    first, deltas, the chunk with finish_reason and usage, the usage-only
 *    chunk when asked, then "data: [DONE]".
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "job.h"
#include "reply.h"
#include "worker.h"

struct mp_worker {
	struct mp_worker_opts o;
	pthread_t thread;
	int stopping;                /* atomic: 1 once join began (queued jobs get 503) */
	uint64_t n_jobs;             /* jobs answered: ids and seeds (worker thread only) */
	int32_t think_open, think_close;   /* token ids, -1 if the vocabulary lacks them */
};

/* One job being answered. */
struct run {
	struct mp_worker *w;
	struct mp_job *job;
	const struct mp_api_request *req;
	char id[40];
	struct mp_api_head head;
	struct mp_reply *reply;
	int split;                   /* 1: <think> part goes to reasoning_content */
	int oom;                     /* 1: a body could not be built */
};

/* Sends an error object with its status (a stream that already began gets
 * the object as one last event). */
static void fail_job(struct run *r, int status, const char *code, const char *param,
		     const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void fail_job(struct run *r, int status, const char *code, const char *param,
		     const char *fmt, ...)
{
	struct mp_api_error e;
	memset(&e, 0, sizeof e);
	va_list ap;
	va_start(ap, fmt);
	char msg[sizeof e.message];
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	mp_api_fail(&e, status, status >= 500 ? "server_error" : "invalid_request_error", code, param,
		    "%s", msg);
	char *body = mp_api_error_body(&e);
	int started = mp_job_status(r->job) == 200;
	mp_job_set_status(r->job, status);
	if (body && started) {
		mp_job_put(r->job, "data: ", 6);
		mp_job_put(r->job, body, strlen(body));
		mp_job_put(r->job, "\n\n", 2);
	} else if (body) {
		mp_job_put(r->job, body, strlen(body));
	}
	mp_free(body);
}

static void put_owned(struct run *r, char *s)
{
	if (!s || mp_job_put(r->job, s, strlen(s)) < 0)
		r->oom = 1;
	mp_free(s);
}

/* Streams what the reply released since the last call. */
static void put_deltas(struct run *r)
{
	char *reasoning, *content;
	if (mp_reply_take(r->reply, &reasoning, &content) < 0) {
		r->oom = 1;
		return;
	}
	if (reasoning || content)
		put_owned(r, mp_api_chunk(&r->head, 0, reasoning, content, NULL, NULL));
	mp_free(reasoning);
	mp_free(content);
}

static int on_token(void *ctx, int32_t id, const char *text, size_t n)
{
	struct run *r = ctx;
	if (mp_job_cancelled(r->job))
		return 1;
	if (r->split && id >= 0 && (id == r->w->think_open || id == r->w->think_close)) {
		mp_reply_switch(r->reply, id == r->w->think_open ? MP_REPLY_REASONING : MP_REPLY_CONTENT);
		return 0;
	}
	int rc = mp_reply_push(r->reply, text, n);
	if (rc < 0)
		r->oom = 1;
	if (r->req->stream)
		put_deltas(r);
	return rc != 0 || r->oom;
}

/* The prompt's tokens: the chat template or the raw text. */
static int prompt_ids(struct run *r, int32_t **ids, size_t *n)
{
	struct mp_session *s = r->w->o.session;
	const struct mp_api_request *q = r->req;
	if (q->kind == MP_API_COMPLETION)
		return mp_session_encode(s, q->prompt, MP_TOK_ADD_BOS | MP_TOK_PARSE_SPECIAL, ids, n);
	char *text;
	int64_t len = mp_tok_chat_render(q->msgs, q->n_msgs, MP_TOK_CHAT_GEN_PROMPT | MP_TOK_CHAT_THINK,
					 &text);
	if (len < 0)
		return (int)len;
	int rc = mp_session_encode(s, text, MP_TOK_ADD_BOS | MP_TOK_PARSE_SPECIAL, ids, n);
	mp_free(text);
	return rc;
}

static int make_sampler(struct run *r, struct mp_sampler **sp)
{
	struct mp_sampler_params p = r->w->o.sampling;
	const struct mp_api_request *q = r->req;
	if (q->temperature >= 0)
		p.temperature = (float)q->temperature;
	if (q->top_p >= 0)
		p.top_p = (float)q->top_p;
	p.freq_penalty = (float)q->frequency_penalty;      /* over --repeat-last-n tokens */
	p.presence_penalty = (float)q->presence_penalty;
	if (q->seed_given)
		p.seed = q->seed;
	else if (!r->w->o.seed_given)
		p.seed = mp_clock_now_ns() ^ ((uint64_t)getpid() << 32) ^ r->w->n_jobs;
	char err[256];
	int rc = mp_sampler_create(&p, mp_session_hparams(r->w->o.session)->n_vocab, sp, err, sizeof err);
	if (rc == 0 && (r->w->o.ignore_eos || q->ignore_eos))
		mp_sampler_ban(*sp, mp_tok_eos(mp_session_tok(r->w->o.session)));
	return rc;
}

/* The end of the answer: the last deltas and the finish, or the whole body. */
static void finish(struct run *r, const struct mp_session_gen *g, const struct mp_api_usage *u)
{
	mp_reply_finish(r->reply);
	const char *why = g->end == MP_SESSION_LENGTH || g->end == MP_SESSION_CTX_FULL ? "length" : "stop";
	if (r->req->stream) {
		put_deltas(r);
		put_owned(r, mp_api_chunk(&r->head, 0, NULL, NULL, why, u));
		if (r->req->include_usage)
			put_owned(r, mp_api_usage_chunk(&r->head, u));
		if (mp_job_put(r->job, "data: [DONE]\n\n", 14) < 0)
			r->oom = 1;
	} else {
		const char *reasoning = r->split ? mp_reply_text(r->reply, MP_REPLY_REASONING) : NULL;
		put_owned(r, mp_api_body(&r->head, reasoning, mp_reply_text(r->reply, MP_REPLY_CONTENT),
					 why, u));
	}
}

/* Generates into the job once the prompt is in the cache. */
static void answer(struct run *r, struct mp_sampler *sp, const float *logits, size_t n_prompt,
		   uint32_t reused)
{
	struct mp_worker *w = r->w;
	const struct mp_api_request *q = r->req;
	int chat = q->kind == MP_API_CHAT;
	r->split = chat && !w->o.reasoning_inline && w->think_open >= 0 && w->think_close >= 0;
	enum mp_reply_channel start = r->split ? MP_REPLY_REASONING : MP_REPLY_CONTENT;
	if (mp_reply_create((const char *const *)q->stop, q->n_stop, start, &r->reply) < 0) {
		fail_job(r, 500, NULL, NULL, "out of memory");
		return;
	}
	if (chat && !r->split)
		mp_reply_push(r->reply, "<think>\n", 8);   /* the template's opening, inline */
	mp_job_set_status(r->job, 200);
	if (q->stream)
		put_owned(r, mp_api_chunk(&r->head, 1, NULL, NULL, NULL, NULL));
	struct mp_session_gen g = { .n_predict = q->max_tokens > 0 ? q->max_tokens : w->o.n_predict,
				    .fn = on_token, .ctx = r };
	int rc = mp_session_generate(w->o.session, sp, logits, &g);
	struct mp_api_usage u = { n_prompt, reused, g.n_tokens };
	mp_metrics_add(&w->o.counts->completion, g.n_tokens);
	if (mp_job_cancelled(r->job)) {
		mp_metrics_add(&w->o.counts->cancelled, 1);
	} else if (rc < 0) {
		fail_job(r, 500, NULL, NULL, "generation failed: %s", mp_session_error(w->o.session));
	} else {
		finish(r, &g, &u);
	}
}

static int job_cancelled(void *job)
{
	return mp_job_cancelled(job);
}

static void run_job(struct mp_worker *w, struct mp_job *job)
{
	struct run r = { .w = w, .job = job, .req = mp_job_request(job) };
	w->n_jobs++;
	snprintf(r.id, sizeof r.id, "%s-%llu", r.req->kind == MP_API_CHAT ? "chatcmpl" : "cmpl",
		 (unsigned long long)w->n_jobs);
	r.head = (struct mp_api_head){ r.req->kind, r.id, (int64_t)time(NULL), w->o.model_name };
	struct mp_session *s = w->o.session;
	int32_t *ids = NULL;
	size_t n = 0;
	struct mp_sampler *sp = NULL;
	uint32_t reused = 0, ctx = mp_session_ctx(s);
	const float *logits;
	struct mp_session_counts before, after;
	mp_session_counts(s, &before);
	mp_session_set_cancel(s, job_cancelled, job);   /* a client that leaves stops its prompt */
	int rc;
	if ((rc = prompt_ids(&r, &ids, &n)) < 0)
		fail_job(&r, 400, NULL, r.req->kind == MP_API_CHAT ? "messages" : "prompt",
			 "cannot tokenize the prompt: %s", mp_strerror(rc));
	else if (n == 0)
		fail_job(&r, 400, NULL, "prompt", "the prompt is empty and the vocabulary has no BOS");
	else if (n >= ctx)
		fail_job(&r, 400, "context_length_exceeded", r.req->kind == MP_API_CHAT ? "messages" :
			 "prompt", "This model's maximum context "
			 "length is %u tokens (--ctx-size), but the prompt has %zu tokens", ctx, n);
	else if (make_sampler(&r, &sp) < 0)
		fail_job(&r, 500, NULL, NULL, "cannot create the sampler");
	else if ((rc = mp_session_prompt(s, ids, n, sp, &logits, &reused)) == -MP_ECANCELLED)
		mp_metrics_add(&w->o.counts->cancelled, 1);
	else if (rc < 0)
		fail_job(&r, 500, NULL, NULL, "prompt processing failed: %s", mp_session_error(s));
	else
		answer(&r, sp, logits, n, reused);
	if (r.oom && mp_job_status(job) != 200)
		mp_job_set_status(job, 500);
	mp_session_counts(s, &after);
	mp_metrics_add(&w->o.counts->prompt_new, after.prompt_tokens - before.prompt_tokens);
	mp_metrics_add(&w->o.counts->prompt_reused, after.reused_tokens - before.reused_tokens);
	mp_metrics_add(&w->o.counts->prompt_ns, after.prompt_ns - before.prompt_ns);
	mp_metrics_add(&w->o.counts->gen_ns, after.gen_ns - before.gen_ns);
	mp_session_set_cancel(s, NULL, NULL);
	mp_session_end_sequence(s);
	mp_reply_destroy(r.reply);
	mp_sampler_destroy(sp);
	mp_free(ids);
}

static void *worker_main(void *arg)
{
	struct mp_worker *w = arg;
	struct mp_job *job;
	while ((job = mp_jobq_pop(w->o.queue))) {
		if (mp_job_cancelled(job)) {           /* the client left while it waited */
			mp_metrics_add(&w->o.counts->cancelled, 1);
			mp_job_set_status(job, 499);
		} else if (__atomic_load_n(&w->stopping, __ATOMIC_ACQUIRE)) {
			struct run r = { .w = w, .job = job, .req = mp_job_request(job) };
			fail_job(&r, 503, "shutting_down", NULL, "The server is shutting down");
		} else {
			mp_metrics_add(&w->o.counts->busy, 1);
			run_job(w, job);
			__atomic_fetch_sub(&w->o.counts->busy, 1, __ATOMIC_RELAXED);
		}
		mp_job_done(job);
		mp_job_unref(job);
	}
	return NULL;
}

int mp_worker_start(const struct mp_worker_opts *o, struct mp_worker **out)
{
	*out = NULL;
	struct mp_worker *w = mp_calloc(1, sizeof *w);
	if (!w)
		return -ENOMEM;
	w->o = *o;
	struct mp_tok *tok = mp_session_tok(o->session);
	w->think_open = mp_tok_find(tok, "<think>", 7);
	w->think_close = mp_tok_find(tok, "</think>", 8);
	int rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc) {
		mp_free(w);
		return -rc;
	}
	*out = w;
	return 0;
}

void mp_worker_join(struct mp_worker *w)
{
	if (!w)
		return;
	__atomic_store_n(&w->stopping, 1, __ATOMIC_RELEASE);
	mp_jobq_close(w->o.queue);
	pthread_join(w->thread, NULL);
	mp_free(w);
}
