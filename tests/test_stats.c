/* test_stats — pager/stats: the shared-memory stats segment.  Header fields
 * and layout, the default path and its removal (or not, with keep), snapshots
 * taken while a writer thread updates every record (never torn), versions 1
 * and 2 still opened, a segment of an unknown version refused with the
 * version found, a file that is not a
 * segment, and the latency histogram's buckets. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "mp_test.h"
#include "stats.h"

static char path[4096];

static void make_path(const char *name)
{
	const char *dir = getenv("MP_BUILDDIR");
	snprintf(path, sizeof path, "%s/tests/%s-%d.stats", dir && *dir ? dir : ".", name, (int)getpid());
}

static void test_header(void)
{
	make_path("hdr");
	struct mp_stats_config cfg = { .path = path, .n_layers = 4, .n_experts = 16,
	                               .fingerprint = 0x1234abcdull, .backend = "uring" };
	struct mp_stats *s = NULL;
	char msg[256];
	REQUIRE(mp_stats_create(&cfg, &s, msg, sizeof msg) == 0);
	mp_stats_begin(s);
	mp_stats_add(&mp_stats_layer(s, 2)->hits, 5);
	mp_stats_add(&mp_stats_expert(s, 3, 15)->uses, 7);
	mp_stats_set(&mp_stats_global(s)->pool_total, 1u << 30);
	mp_stats_latency(s, 500);          /* < 1 µs: bucket 0 */
	mp_stats_latency(s, 3000);         /* 3 µs: bucket 1 */
	mp_stats_latency(s, 1500000);      /* 1500 µs: bucket 10 */
	mp_stats_set(&mp_stats_global(s)->phase_tokens, 3);     /* v3: the decode phases */
	mp_stats_set(&mp_stats_global(s)->phase_ns[MP_STATS_PHASES - 1], 99);
	mp_stats_end(s);

	struct mp_stats_reader *r = NULL;
	REQUIRE(mp_stats_open(path, &r, msg, sizeof msg) == 0);
	struct mp_stats_snap snap;
	REQUIRE(mp_stats_snapshot(r, &snap) == 0);
	CHECK_EQ_INT(snap.h->version, MP_STATS_VERSION);
	CHECK_EQ_U64(snap.h->pid, (uint64_t)getpid());
	CHECK_EQ_U64(snap.h->fingerprint, 0x1234abcdull);
	CHECK_EQ_INT(snap.h->n_layers, 4);
	CHECK_EQ_INT(snap.h->n_experts, 16);
	CHECK_STR(snap.h->backend, "uring");
	CHECK_EQ_U64(snap.h->seq, 2);
	CHECK(snap.h->start_wall_s > 1600000000ull);
	CHECK_EQ_U64(snap.h->total_bytes, 256 + 512 + 4 * 128 + 4 * 16 * 32);
	CHECK_EQ_U64(mp_stats_snap_layer(&snap, 2)->hits, 5);
	CHECK_EQ_U64(mp_stats_snap_expert(&snap, 3, 15)->uses, 7);
	CHECK_EQ_U64(snap.g->pool_total, 1u << 30);
	CHECK_EQ_U64(snap.g->io_hist[0], 1);
	CHECK_EQ_U64(snap.g->io_hist[1], 1);
	CHECK_EQ_U64(snap.g->io_hist[10], 1);
	CHECK_EQ_U64(snap.g->phase_tokens, 3);
	CHECK_EQ_U64(snap.g->phase_ns[7], 99);
	CHECK_EQ_U64(snap.g->phase_ns[0], 0);
	CHECK_STR(mp_stats_phase_names[0], "attn");
	CHECK_STR(mp_stats_phase_names[7], "other");
	mp_stats_snap_free(&snap);
	mp_stats_close(r);
	mp_stats_destroy(s);
	CHECK(access(path, F_OK) != 0);    /* removed without keep */
}

static void test_default_path(void)
{
	struct mp_stats_config cfg = { .n_layers = 1, .n_experts = 2 };
	struct mp_stats *s = NULL;
	char msg[256], want[64];
	if (access("/dev/shm", W_OK) != 0)
		SKIP_CASE("no writable /dev/shm here");
	REQUIRE(mp_stats_create(&cfg, &s, msg, sizeof msg) == 0);
	snprintf(want, sizeof want, "/dev/shm/moepager-%d.stats", (int)getpid());
	CHECK_STR(mp_stats_path(s), want);
	CHECK(access(want, R_OK) == 0);
	mp_stats_destroy(s);
	CHECK(access(want, F_OK) != 0);
}

static void test_keep_and_bad_path(void)
{
	struct mp_stats_config cfg = { .n_layers = 1, .n_experts = 2 };
	struct mp_stats *s = NULL;
	char msg[256];
	make_path("keep");
	cfg.path = path;
	cfg.keep = 1;
	REQUIRE(mp_stats_create(&cfg, &s, msg, sizeof msg) == 0);
	mp_stats_destroy(s);
	CHECK(access(path, R_OK) == 0);
	unlink(path);
	cfg.path = "/nonexistent-dir/x.stats";
	CHECK_EQ_INT(mp_stats_create(&cfg, &s, msg, sizeof msg), -ENOENT);
	CHECK_CONTAINS(msg, "/nonexistent-dir/x.stats");
}

#define NL 8
#define NE 32
static struct mp_stats *wstats;
static volatile int stop_writer;

/* Sets every layer and expert field to the same value k, k = 1, 2, ... */
static void *writer(void *arg)
{
	(void)arg;
	for (uint64_t k = 1; !__atomic_load_n(&stop_writer, __ATOMIC_RELAXED); k++) {
		mp_stats_begin(wstats);
		for (uint32_t l = 0; l < NL; l++) {
			struct mp_stats_layer *L = mp_stats_layer(wstats, l);
			mp_stats_set(&L->hits, k);
			mp_stats_set(&L->misses, k);
			mp_stats_set(&L->stall_ns, k);
			for (uint32_t e = 0; e < NE; e++)
				mp_stats_set(&mp_stats_expert(wstats, l, e)->uses, k);
		}
		mp_stats_set(&mp_stats_global(wstats)->tokens, k);
		mp_stats_end(wstats);
	}
	return NULL;
}

static void test_no_torn_snapshots(void)
{
	make_path("torn");
	struct mp_stats_config cfg = { .path = path, .n_layers = NL, .n_experts = NE };
	char msg[256];
	REQUIRE(mp_stats_create(&cfg, &wstats, msg, sizeof msg) == 0);
	struct mp_stats_reader *r = NULL;
	REQUIRE(mp_stats_open(path, &r, msg, sizeof msg) == 0);
	pthread_t th;
	stop_writer = 0;
	REQUIRE(pthread_create(&th, NULL, writer, NULL) == 0);
	int torn = 0, ok = 0, backwards = 0, advanced = 0;
	uint64_t last = 0;
	/* 300 snapshots, and at least 3 of them after the writer moved on (all
	 * zeros, before it starts, would be consistent without trying) */
	for (int i = 0; (i < 300 || advanced < 3) && i < 2000000; i++) {
		struct mp_stats_snap snap;
		if (mp_stats_snapshot(r, &snap) != 0)
			continue;
		ok++;
		uint64_t k = snap.g->tokens;
		if (k < last)
			backwards++;
		advanced += k > last;
		last = k;
		for (uint32_t l = 0; l < NL; l++) {
			const struct mp_stats_layer *L = mp_stats_snap_layer(&snap, l);
			torn += L->hits != k || L->misses != k || L->stall_ns != k;
			for (uint32_t e = 0; e < NE; e++)
				torn += mp_stats_snap_expert(&snap, l, e)->uses != k;
		}
		mp_stats_snap_free(&snap);
	}
	__atomic_store_n(&stop_writer, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	CHECK_EQ_INT(torn, 0);
	CHECK_EQ_INT(backwards, 0);
	CHECK(ok > 0);
	CHECK(advanced >= 3);
	mp_stats_close(r);
	mp_stats_destroy(wstats);
}

static void test_version_and_format(void)
{
	make_path("ver");
	struct mp_stats_config cfg = { .path = path, .keep = 1, .n_layers = 2, .n_experts = 4 };
	struct mp_stats *s = NULL;
	char msg[256];
	REQUIRE(mp_stats_create(&cfg, &s, msg, sizeof msg) == 0);
	mp_stats_destroy(s);
	int fd = open(path, O_WRONLY);
	REQUIRE(fd >= 0);
	struct mp_stats_reader *r = NULL;
	for (uint32_t old = 1; old < MP_STATS_VERSION; old++) {    /* older versions still read */
		CHECK(pwrite(fd, &old, 4, offsetof(struct mp_stats_header, version)) == 4);
		CHECK_EQ_INT(mp_stats_open(path, &r, msg, sizeof msg), 0);
		mp_stats_close(r);
		r = NULL;
	}
	uint32_t v = 7;
	CHECK(pwrite(fd, &v, 4, offsetof(struct mp_stats_header, version)) == 4);
	CHECK_EQ_INT(mp_stats_open(path, &r, msg, sizeof msg), -MP_EVERSION);
	CHECK_CONTAINS(msg, "version 7");
	CHECK_CONTAINS(msg, path);
	CHECK(pwrite(fd, "NOTSTATS", 8, 0) == 8);
	CHECK_EQ_INT(mp_stats_open(path, &r, msg, sizeof msg), -MP_EFORMAT);
	CHECK_CONTAINS(msg, "not a moepager stats segment");
	CHECK(ftruncate(fd, 10) == 0);
	CHECK_EQ_INT(mp_stats_open(path, &r, msg, sizeof msg), -MP_EFORMAT);
	close(fd);
	unlink(path);
	CHECK_EQ_INT(mp_stats_open(path, &r, msg, sizeof msg), -ENOENT);
}

int main(void)
{
	RUN(test_header);
	RUN(test_default_path);
	RUN(test_keep_and_bad_path);
	RUN(test_no_torn_snapshots);
	RUN(test_version_and_format);
	return mp_test_end();
}
