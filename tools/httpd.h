/*
 * httpd.h — the HTTP side of moepager-server on libmicrohttpd: routes,
 * bearer-token check, body size limit, admission into the job queue (503
 * with Retry-After when full), and sending each job's answer — one body, or
 * server-sent events as the worker writes them.  A client that goes away
 * cancels its job.
 *
 * One thread per connection (libmicrohttpd's THREAD_PER_CONNECTION): a
 * connection may wait for its job without holding up the others.
 */
#ifndef MP_HTTPD_H
#define MP_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include "jobq.h"
#include "metrics.h"

struct mp_httpd_opts {
	const char *host;            /* localhost or a numeric IPv4/IPv6 address to listen on */
	uint16_t port;               /* 0: any free port (mp_httpd_port tells which) */
	const char *api_key;         /* NULL: no check; else "Authorization: Bearer KEY" on /v1/ */
	size_t max_body;             /* bytes of a request body; more gets 413 */
	unsigned max_connections;    /* open connections (threads) */
	const char *model_name;      /* the model's id in the API */
	const char *model_alias;     /* also accepted as "model" (the path given), or NULL */
	int64_t created;             /* Unix seconds, for /v1/models */
	struct mp_jobq *queue;       /* where admitted jobs go */
	struct mp_metrics_counts *counts;
	const char *stats_path;      /* stats segment for /metrics, or NULL */
};

struct mp_httpd;

/* 0 when host is an address mp_httpd_start takes (localhost or numeric
 * IPv4/IPv6), else -EINVAL with the sentence in err. */
int mp_httpd_check_host(const char *host, char *err, size_t err_len);

/* Listens and serves.  Returns 0, or a negative error with a sentence
 * naming the address in err. */
int mp_httpd_start(const struct mp_httpd_opts *o, struct mp_httpd **out, char *err, size_t err_len);
uint16_t mp_httpd_port(const struct mp_httpd *h);
/* Stops accepting connections (open ones are served to the end). */
void mp_httpd_quiesce(struct mp_httpd *h);
/* Waits (up to 10 s) for the requests under way to be sent, then closes
 * everything; NULL is fine.  Stop the worker first. */
void mp_httpd_stop(struct mp_httpd *h);

#endif
