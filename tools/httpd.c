/*
 * httpd.c — moepager-server's HTTP layer on libmicrohttpd (httpd.h).
 *
 * A request passes through the access handler three ways: once when its
 * headers are in (route, auth and the declared size are checked: a refusal
 * is queued at once), once per piece of body (kept up to max_body), and once
 * at the end (the body is parsed into a job and queued, and the connection's
 * thread waits for the job's status).
 *
 * Invariants:
 * 1. A job reachable from a connection holds one reference for it (conn.job),
 *    one for a streaming response (released by its free callback) and one
 *    for the worker while queued or running; every exit path cancels what no
 *    one will read and drops its reference.
 * 2. Every wait on a job is bounded (WAIT_MS) and followed by a look at the
 *    client's socket: a client that hung up cancels its job within WAIT_MS.
 * 3. Every error response is an OpenAI error object with its status.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "alloc.h"
#include "api.h"
#include "httpd.h"
#include "job.h"
#include "stats.h"

#define WAIT_MS 100                  /* invariant 2 */

enum route { R_NONE, R_HEALTH, R_MODELS, R_METRICS, R_CHAT, R_COMPLETIONS };

static const struct {
	const char *path, *method;
	enum route route;
} routes[] = {
	{ "/health", "GET", R_HEALTH },
	{ "/v1/models", "GET", R_MODELS },
	{ "/metrics", "GET", R_METRICS },
	{ "/v1/chat/completions", "POST", R_CHAT },
	{ "/v1/completions", "POST", R_COMPLETIONS },
};

struct mp_httpd {
	struct mp_httpd_opts o;
	struct MHD_Daemon *d;
	uint16_t port;                   /* the port bound */
	pthread_mutex_t stats_mu;        /* one snapshot at a time */
	struct mp_stats_reader *stats;   /* NULL without the pager */
	int in_flight;                   /* atomic: requests begun and not completed */
};

/* One request on a connection (libmicrohttpd's con_cls). */
struct conn {
	enum route route;
	char *body;                      /* [cap] the body so far, NUL-terminated */
	size_t len, cap;
	int refused;                     /* 1: a response was queued at the headers */
	int too_big;                     /* 1: the body passed max_body */
	struct mp_job *job;              /* invariant 1 */
};

/* ---- small responses ------------------------------------------------------------ */

static enum MHD_Result send_text(struct mp_httpd *h, struct MHD_Connection *c, int status,
				 const char *type, const char *text, size_t len, const char *retry)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(len, (void *)text, MHD_RESPMEM_MUST_COPY);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	if (retry)
		MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry);
	enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
	MHD_destroy_response(r);
	mp_metrics_count_status(h->o.counts, status);
	return ok;
}

static enum MHD_Result send_json(struct mp_httpd *h, struct MHD_Connection *c, int status, char *owned)
{
	if (!owned)
		return MHD_NO;
	enum MHD_Result ok = send_text(h, c, status, "application/json", owned, strlen(owned), NULL);
	mp_free(owned);
	return ok;
}

static enum MHD_Result send_error(struct mp_httpd *h, struct MHD_Connection *c,
				  const struct mp_api_error *e, const char *retry)
{
	char *body = mp_api_error_body(e);
	if (!body)
		return MHD_NO;
	enum MHD_Result ok = send_text(h, c, e->status, "application/json", body, strlen(body), retry);
	mp_free(body);
	return ok;
}

/* ---- the client's socket --------------------------------------------------------- */

/* 1 when the peer has closed or reset the connection. */
static int client_gone(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return 1;
	struct pollfd p = { .fd = ci->connect_fd, .events = POLLRDHUP };
	return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

/* Waits for what on j, cancelling it when the client leaves.  1: it came. */
static int wait_job(struct MHD_Connection *c, struct mp_job *j, enum mp_job_wait what)
{
	while (!mp_job_wait(j, what, WAIT_MS))
		if (client_gone(c)) {
			mp_job_cancel(j);
			return 0;
		}
	return 1;
}

/* ---- streaming -------------------------------------------------------------------- */

struct stream {
	struct mp_job *job;              /* one reference (invariant 1) */
	struct MHD_Connection *conn;
};

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct stream *s = cls;
	for (;;) {
		int end;
		size_t n = mp_job_read(s->job, buf, max, &end);
		if (n)
			return (ssize_t)n;
		if (end)
			return MHD_CONTENT_READER_END_OF_STREAM;
		if (mp_job_cancelled(s->job) || !wait_job(s->conn, s->job, MP_JOB_DATA))
			return MHD_CONTENT_READER_END_WITH_ERROR;
	}
}

static void stream_free(void *cls)
{
	struct stream *s = cls;
	mp_job_cancel(s->job);           /* a no-op when it is done */
	mp_job_unref(s->job);
	mp_free(s);
}

static enum MHD_Result send_stream(struct mp_httpd *h, struct MHD_Connection *c, struct mp_job *j)
{
	mp_metrics_count_status(h->o.counts, 200);
	struct stream *s = mp_malloc(sizeof *s);
	if (!s)
		return MHD_NO;
	mp_job_ref(j);
	*s = (struct stream){ j, c };
	struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_read, s,
								   stream_free);
	if (!r) {
		stream_free(s);
		return MHD_NO;
	}
	MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
	enum MHD_Result ok = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ok;
}

/* ---- the API endpoints ------------------------------------------------------------ */

/* Seconds a refused client should wait: the queue's length times the mean
 * time of an answer so far (at least 1). */
static void retry_after(struct mp_httpd *h, char *out, size_t len)
{
	const struct mp_metrics_counts *c = h->o.counts;
	uint64_t answered = mp_metrics_get(&c->responses[0]);
	double mean = answered ? (double)(mp_metrics_get(&c->prompt_ns) + mp_metrics_get(&c->gen_ns)) /
					 1e9 / (double)answered : 1.0;
	double s = mean * (double)(mp_jobq_len(h->o.queue) + 1);
	snprintf(out, len, "%llu", (unsigned long long)(s < 1 ? 1 : s + 0.999));
}

/* Parses the body, queues the job and answers when it is decided. */
static enum MHD_Result complete(struct mp_httpd *h, struct MHD_Connection *c, struct conn *cn)
{
	struct mp_api_error e;
	struct mp_api_request req;
	enum mp_api_kind kind = cn->route == R_CHAT ? MP_API_CHAT : MP_API_COMPLETION;
	if (mp_api_parse(kind, cn->body ? cn->body : "", cn->len, h->o.model_name, h->o.model_alias,
			 &req, &e) < 0)
		return send_error(h, c, &e, NULL);
	int stream = req.stream;
	if (mp_job_create(&req, &cn->job) < 0)
		return MHD_NO;
	mp_job_ref(cn->job);             /* the worker's */
	int rc = mp_jobq_push(h->o.queue, cn->job);
	if (rc < 0) {
		mp_job_unref(cn->job);
		char retry[32];
		retry_after(h, retry, sizeof retry);
		if (rc != -EAGAIN) {
			mp_api_fail(&e, 503, "server_error", "shutting_down", NULL, "The server is shutting down");
			return send_error(h, c, &e, NULL);
		}
		mp_api_fail(&e, 503, "server_error", "queue_full", NULL, "The server is busy: %zu requests "
			    "are waiting (--queue); retry after %s s", mp_jobq_cap(h->o.queue), retry);
		return send_error(h, c, &e, retry);
	}
	if (!wait_job(c, cn->job, stream ? MP_JOB_STATUS : MP_JOB_DONE))
		return MHD_NO;
	if (mp_job_status(cn->job) == 499)
		return MHD_NO;
	if (stream && mp_job_status(cn->job) == 200)
		return send_stream(h, c, cn->job);
	if (stream && !wait_job(c, cn->job, MP_JOB_DONE))
		return MHD_NO;
	/* the whole answer (or error object) is in the job */
	size_t cap = 1 << 16, len = 0;
	char *all = NULL;
	for (int end = 0; !end;) {
		char *p = mp_realloc(all, cap + 1);
		if (!p) {
			mp_free(all);
			return MHD_NO;
		}
		all = p;
		len += mp_job_read(cn->job, all + len, cap - len, &end);
		if (len == cap)
			cap *= 2;
	}
	all[len] = 0;
	enum MHD_Result ok = send_text(h, c, mp_job_status(cn->job), "application/json", all, len, NULL);
	mp_free(all);
	return ok;
}

static enum MHD_Result get(struct mp_httpd *h, struct MHD_Connection *c, enum route r)
{
	if (r == R_HEALTH)
		return send_json(h, c, 200, mp_strdup("{\"status\":\"ok\"}"));
	if (r == R_MODELS)
		return send_json(h, c, 200, mp_api_models(h->o.model_name, h->o.created));
	struct mp_stats_snap snap, *sp = NULL;
	pthread_mutex_lock(&h->stats_mu);
	if (h->stats && mp_stats_snapshot(h->stats, &snap) == 0)
		sp = &snap;
	pthread_mutex_unlock(&h->stats_mu);
	char *text = mp_metrics_format(h->o.counts, mp_jobq_len(h->o.queue), mp_jobq_cap(h->o.queue), sp);
	if (sp)
		mp_stats_snap_free(sp);
	if (!text)
		return MHD_NO;
	enum MHD_Result ok = send_text(h, c, 200, "text/plain; version=0.0.4; charset=utf-8", text,
				       strlen(text), NULL);
	mp_free(text);
	return ok;
}

/* ---- the access handler ----------------------------------------------------------- */

/* Route, method, bearer token and declared size, when the headers are in.
 * Returns 1 when a refusal was queued (*ok says how that went). */
static int check_headers(struct mp_httpd *h, struct MHD_Connection *c, const char *url,
			 const char *method, struct conn *cn, enum MHD_Result *ok)
{
	struct mp_api_error e;
	int path_known = 0;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
		if (!strcmp(url, routes[i].path)) {
			path_known = 1;
			if (!strcmp(method, routes[i].method))
				cn->route = routes[i].route;
		}
	if (cn->route == R_NONE) {
		mp_api_fail(&e, path_known ? 405 : 404, "invalid_request_error", NULL, NULL,
			    path_known ? "%s %s: method not allowed" : "%s %s: no such endpoint (there are "
			    "/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics)", method, url);
		*ok = send_error(h, c, &e, NULL);
		return 1;
	}
	if (h->o.api_key && !strncmp(url, "/v1/", 4)) {
		const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		if (!auth || strncmp(auth, "Bearer ", 7) || strcmp(auth + 7, h->o.api_key)) {
			mp_api_fail(&e, 401, "invalid_request_error", "invalid_api_key", NULL, auth ?
				    "Incorrect API key provided" : "No API key provided: send \"Authorization: "
				    "Bearer KEY\" with the key given to --api-key");
			*ok = send_error(h, c, &e, NULL);
			return 1;
		}
	}
	const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && strtoull(cl, NULL, 10) > h->o.max_body) {
		mp_api_fail(&e, 413, "invalid_request_error", "request_too_large", NULL, "The request body "
			    "has %s bytes; this server takes at most %zu (--max-body)", cl, h->o.max_body);
		*ok = send_error(h, c, &e, NULL);
		return 1;
	}
	return 0;
}

static void keep_body(struct mp_httpd *h, struct conn *cn, const char *data, size_t n)
{
	if (cn->too_big || cn->len + n > h->o.max_body) {
		cn->too_big = 1;
		return;
	}
	if (cn->len + n + 1 > cn->cap) {
		size_t cap = cn->cap ? cn->cap : 4096;
		while (cap < cn->len + n + 1)
			cap *= 2;
		char *p = mp_realloc(cn->body, cap);
		if (!p) {
			cn->too_big = 1;
			return;
		}
		cn->body = p;
		cn->cap = cap;
	}
	memcpy(cn->body + cn->len, data, n);
	cn->len += n;
	cn->body[cn->len] = 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
				  const char *method, const char *version, const char *data,
				  size_t *data_size, void **con_cls)
{
	(void)version;
	struct mp_httpd *h = cls;
	struct conn *cn = *con_cls;
	if (!cn) {
		if (!(cn = mp_calloc(1, sizeof *cn)))
			return MHD_NO;
		*con_cls = cn;
		__atomic_fetch_add(&h->in_flight, 1, __ATOMIC_RELAXED);
		enum MHD_Result ok = MHD_YES;
		if (check_headers(h, c, url, method, cn, &ok))
			cn->refused = 1;
		return ok;
	}
	if (*data_size) {
		if (!cn->refused)
			keep_body(h, cn, data, *data_size);
		*data_size = 0;
		return MHD_YES;
	}
	if (cn->refused)
		return MHD_YES;
	if (cn->route != R_CHAT && cn->route != R_COMPLETIONS)
		return get(h, c, cn->route);
	if (cn->too_big) {
		struct mp_api_error e;
		mp_api_fail(&e, 413, "invalid_request_error", "request_too_large", NULL,
			    "The request body is larger than %zu bytes (--max-body)", h->o.max_body);
		return send_error(h, c, &e, NULL);
	}
	return complete(h, c, cn);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
			 enum MHD_RequestTerminationCode toe)
{
	(void)c;
	(void)toe;
	struct mp_httpd *h = cls;
	struct conn *cn = *con_cls;
	if (!cn)
		return;
	__atomic_fetch_sub(&h->in_flight, 1, __ATOMIC_RELAXED);
	if (cn->job) {
		mp_job_cancel(cn->job);      /* a no-op when it is done */
		mp_job_unref(cn->job);
	}
	mp_free(cn->body);
	mp_free(cn);
	*con_cls = NULL;
}

/* ---- the daemon ------------------------------------------------------------------- */

/* host: a numeric IPv4/IPv6 address, or "localhost" (127.0.0.1). */
static int parse_host(const char *host, uint16_t port, struct sockaddr_storage *ss, int *v6)
{
	memset(ss, 0, sizeof *ss);
	if (!strcmp(host, "localhost"))
		host = "127.0.0.1";
	struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
	if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		*v6 = 0;
		return 0;
	}
	if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		*v6 = 1;
		return 0;
	}
	return -EINVAL;
}

int mp_httpd_check_host(const char *host, char *err, size_t err_len)
{
	struct sockaddr_storage ss;
	int v6;
	if (parse_host(host, 0, &ss, &v6) == 0)
		return 0;
	snprintf(err, err_len, "--host %s: expected localhost or a numeric IPv4 or IPv6 address "
		 "(127.0.0.1, 0.0.0.0, ::1)", host);
	return -EINVAL;
}

int mp_httpd_start(const struct mp_httpd_opts *o, struct mp_httpd **out, char *err, size_t err_len)
{
	*out = NULL;
	struct sockaddr_storage ss;
	int v6;
	if (parse_host(o->host, o->port, &ss, &v6) < 0)
		return mp_httpd_check_host(o->host, err, err_len);
	struct mp_httpd *h = mp_calloc(1, sizeof *h);
	if (!h) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	h->o = *o;
	pthread_mutex_init(&h->stats_mu, NULL);
	if (o->stats_path && mp_stats_open(o->stats_path, &h->stats, err, err_len) < 0) {
		mp_httpd_stop(h);
		return -EINVAL;
	}
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ITC |
			 (v6 ? MHD_USE_IPv6 : 0);
	h->d = MHD_start_daemon(flags, o->port, NULL, NULL, on_request, h,
				MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
				MHD_OPTION_CONNECTION_LIMIT, o->max_connections,
				MHD_OPTION_CONNECTION_TIMEOUT, 300u,
				MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
				MHD_OPTION_END);
	if (!h->d) {
		int e = errno;
		snprintf(err, err_len, "cannot listen on %s port %u: %s", o->host, o->port,
			 e ? strerror(e) : "libmicrohttpd refused the settings");
		mp_httpd_stop(h);
		return -(e ? e : EINVAL);
	}
	const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : o->port;
	*out = h;
	return 0;
}

uint16_t mp_httpd_port(const struct mp_httpd *h) { return h->port; }

void mp_httpd_quiesce(struct mp_httpd *h)
{
	if (h && h->d) {
		MHD_socket fd = MHD_quiesce_daemon(h->d);
		if (fd != MHD_INVALID_SOCKET)
			close(fd);
	}
}

void mp_httpd_stop(struct mp_httpd *h)
{
	if (!h)
		return;
	/* stopping the daemon closes sockets at once: let the answers under way
	 * (their jobs are done by now) reach their clients first, for up to 10 s */
	for (int i = 0; h->d && i < 1000 && __atomic_load_n(&h->in_flight, __ATOMIC_RELAXED) > 0; i++)
		usleep(10000);
	if (h->d)
		MHD_stop_daemon(h->d);
	mp_stats_close(h->stats);
	pthread_mutex_destroy(&h->stats_mu);
	mp_free(h);
}
