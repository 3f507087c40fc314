/*
 * moepager-server.c — the moepager-server command: an OpenAI-compatible HTTP
 * server for one model, with the pager's figures at /metrics.
 *
 * Flow: parse flags (the model flags are moepager's, src/session.h) → open
 * the session → the job queue, the worker thread that owns the model
 * (tools/worker.h) and the HTTP daemon (tools/httpd.h) → wait for SIGINT or
 * SIGTERM → stop accepting, finish the answer under way, refuse what waits
 * (503), print the speed and pager summary, save the usage profile, exit 0.
 * A second signal during that exits at once.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "httpd.h"
#include "jobq.h"
#include "metrics.h"
#include "opt.h"
#include "session.h"
#include "worker.h"

static const char usage_line[] = "moepager-server -m MODEL.gguf [--host ADDR] [--port N] [OPTION]...";
static const char description[] =
	"Serve a DeepSeek-R1-class MoE model over an OpenAI-compatible HTTP API.\n"
	"Endpoints: /v1/chat/completions, /v1/completions, /v1/models, /health, and\n"
	"the pager's figures as Prometheus metrics at /metrics.  One answer is generated\n"
	"at a time; the KV cache of the last conversation is kept, so a request that\n"
	"repeats it processes only its new tokens.  See docs/server.md.\n"
	"\n"
	"Environment: MOEPAGER_CPU=scalar|avx2|avx512 forces a kernel path;\n"
	"MOEPAGER_LOG=error|warn|info|debug sets the diagnostics level.";

static const char *const reasoning_formats[] = { "deepseek", "none", NULL };

struct server_flags {
	const char *host, *api_key, *alias;
	int64_t port, queue, max_body, max_conn;
	int reasoning;               /* index into reasoning_formats */
	int version;
};

/* The model's id in the API: --alias, or the file name without .gguf. */
static char *model_name(const char *alias, const char *path)
{
	if (alias)
		return mp_strdup(alias);
	const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
	char *name = mp_strdup(base);
	size_t n = name ? strlen(name) : 0;
	if (n > 5 && !strcmp(name + n - 5, ".gguf"))
		name[n - 5] = 0;
	return name;
}

static void on_signal(int sig)
{
	(void)sig;                   /* never runs: the signals are blocked and taken by sigwait */
}

/* Waits for SIGINT or SIGTERM (blocked in every thread since main began). */
static int wait_signal(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	int sig = 0;
	while (sigwait(&set, &sig) != 0)
		;
	/* a second signal ends the process at once */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	return sig;
}

static int serve(const struct mp_session_flags *mf, const struct server_flags *sf)
{
	struct mp_session_opts so;
	struct mp_sampler_params sp;
	mp_session_flags_apply(mf, "moepager-server", &so, &sp);
	char err[1024];
	int status = 1;
	struct mp_session *s = NULL;
	struct mp_jobq *q = NULL;
	struct mp_worker *w = NULL;
	struct mp_httpd *h = NULL;
	struct mp_metrics_counts counts;
	memset(&counts, 0, sizeof counts);
	char *name = model_name(sf->alias, mf->model);
	if (!name || mp_session_open(&so, &s, err, sizeof err) < 0) {
		fprintf(stderr, "moepager-server: %s\n", name ? err : "out of memory");
		goto out;
	}
	if (mp_jobq_create((size_t)sf->queue, &q) < 0)
		goto out;
	struct mp_worker_opts wo = {
		.session = s, .queue = q, .counts = &counts, .model_name = name, .sampling = sp,
		.seed_given = mf->seed_given, .n_predict = mf->n_predict,
		.reasoning_inline = sf->reasoning == 1, .ignore_eos = mf->ignore_eos,
	};
	if (mp_worker_start(&wo, &w) < 0) {
		fprintf(stderr, "moepager-server: cannot start the worker thread\n");
		goto out;
	}
	struct mp_httpd_opts ho = {
		.host = sf->host, .port = (uint16_t)sf->port, .api_key = sf->api_key,
		.max_body = (size_t)sf->max_body, .max_connections = (unsigned)sf->max_conn,
		.model_name = name, .model_alias = mf->model, .created = (int64_t)time(NULL), .queue = q,
		.counts = &counts, .stats_path = mp_session_stats_path(s),
	};
	if (mp_httpd_start(&ho, &h, err, sizeof err) < 0) {
		fprintf(stderr, "moepager-server: %s\n", err);
		goto out;
	}
	fprintf(stderr, "moepager-server: serving %s on http://%s%s%s:%u/v1 (queue %lld, %s)\n", name,
		strchr(sf->host, ':') ? "[" : "", sf->host, strchr(sf->host, ':') ? "]" : "",
		mp_httpd_port(h), (long long)sf->queue, sf->api_key ? "API key required" : "no API key");
	int sig = wait_signal();
	fprintf(stderr, "moepager-server: %s: finishing the answer under way, then exiting\n",
		sig == SIGINT ? "SIGINT" : "SIGTERM");
	mp_httpd_quiesce(h);
	status = 0;
out:
	mp_worker_join(w);               /* closes the queue; waiting jobs get 503 */
	mp_httpd_stop(h);                /* waits for the connections to finish sending */
	if (s && status == 0) {
		mp_session_print_speed(s);
		mp_session_print_pager(s);
	}
	mp_session_close(s);
	mp_jobq_destroy(q);
	mp_free(name);
	return status;
}

int main(int argc, char **argv)
{
	struct mp_session_flags mf;
	mp_session_flags_init(&mf);
	mf.n_predict = -1;
	struct server_flags sf = { .host = "127.0.0.1", .port = 8080, .queue = 8, .max_body = 1 << 20,
				   .max_conn = 64 };
	struct mp_opt opts[MP_SESSION_N_FLAGS + 9];
	mp_session_flag_table(&mf, opts);
	for (size_t i = 0; i < MP_SESSION_N_FLAGS; i++)
		if (!strcmp(opts[i].name, "n-predict"))
			opts[i].help = "max_tokens when a request gives none; -1 = until end of text or a full context";
	const struct mp_opt own[] = {
		{ "host", 0, MP_OPT_STRING, &sf.host, "ADDR", "address to listen on: localhost or numeric IPv4/IPv6 (0.0.0.0: every interface)", 0, 0, NULL, NULL },
		{ "port", 0, MP_OPT_INT, &sf.port, "N", "TCP port; 0 = any free one (printed at start)", 0, 65535, NULL, NULL },
		{ "api-key", 0, MP_OPT_STRING, &sf.api_key, "KEY", "require \"Authorization: Bearer KEY\" on /v1/ (401 otherwise)", 0, 0, NULL, NULL },
		{ "alias", 0, MP_OPT_STRING, &sf.alias, "NAME", "the model's id in the API (default: the file name without .gguf)", 0, 0, NULL, NULL },
		{ "queue", 0, MP_OPT_INT, &sf.queue, "N", "requests that may wait for the model; more get 503 with Retry-After", 1, 4096, NULL, NULL },
		{ "max-body", 0, MP_OPT_INT, &sf.max_body, "BYTES", "largest request body; more gets 413", 1024, 1 << 30, NULL, NULL },
		{ "max-connections", 0, MP_OPT_INT, &sf.max_conn, "N", "open connections (one thread each)", 2, 4096, NULL, NULL },
		{ "reasoning-format", 0, MP_OPT_CHOICE, &sf.reasoning, "FMT", "deepseek: the <think> part goes to reasoning_content; none: it stays inline in content", 0, 0, reasoning_formats, NULL },
		{ "version", 'V', MP_OPT_FLAG, &sf.version, NULL, "print the version", 0, 0, NULL, NULL },
	};
	memcpy(opts + MP_SESSION_N_FLAGS, own, sizeof own);
	const size_t n_opts = sizeof opts / sizeof opts[0];
	int rc = mp_opt_parse_main("moepager-server", usage_line, description, opts, n_opts, argc, argv,
				   NULL, 0, NULL);
	if (rc >= 0)
		return rc;
	if (sf.version) {
		printf("moepager-server %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (!mf.model) {
		fprintf(stderr, "moepager-server: -m MODEL.gguf is required (see --help)\n");
		return 2;
	}
	char err[256];
	if (mp_httpd_check_host(sf.host, err, sizeof err) < 0) {
		fprintf(stderr, "moepager-server: %s\n", err);
		return 2;
	}
	/* signals are taken by sigwait in main only: block them before any thread
	 * starts, with a handler installed so that an ignored SIGINT inherited from
	 * a shell's background job still reaches sigwait */
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	return serve(&mf, &sf);
}
