/*
 * job.h — one API request on its way through moepager-server: the parsed
 * request, the bytes of its answer as the worker produces them, the HTTP
 * status once known, and the flags that tie the worker to the connection
 * (done, cancelled).  Reference counted: the connection and the worker each
 * hold one; the last unref frees it.
 *
 * The worker writes (status, put, done); the connection thread waits and
 * reads; either side may cancel (client gone, server stopping).
 */
#ifndef MP_JOB_H
#define MP_JOB_H

#include <stddef.h>

#include "api.h"

struct mp_job;

/* Takes over *req (zeroed).  The new job holds one reference.  Returns 0
 * or -ENOMEM (req is freed). */
int mp_job_create(struct mp_api_request *req, struct mp_job **out);
void mp_job_ref(struct mp_job *j);
void mp_job_unref(struct mp_job *j);            /* NULL is fine */
const struct mp_api_request *mp_job_request(const struct mp_job *j);

/* ---- worker side ---- */
/* The response's HTTP status is decided (200: the answer follows). */
void mp_job_set_status(struct mp_job *j, int status);
/* Appends bytes of the response.  Returns 0 or -ENOMEM. */
int mp_job_put(struct mp_job *j, const char *bytes, size_t n);
/* The response is complete (a status must be set). */
void mp_job_done(struct mp_job *j);

/* ---- either side ---- */
void mp_job_cancel(struct mp_job *j);
int mp_job_cancelled(struct mp_job *j);

/* ---- connection side ---- */
enum mp_job_wait { MP_JOB_STATUS, MP_JOB_DATA, MP_JOB_DONE };
/* Waits up to timeout_ms for the status to be known, for unread bytes (or
 * the end), or for the end.  Returns 1 when it happened, 0 on timeout. */
int mp_job_wait(struct mp_job *j, enum mp_job_wait what, int timeout_ms);
int mp_job_status(struct mp_job *j);            /* 0: not yet known */
/* Copies up to max unread bytes into buf; *end = 1 when the response is
 * complete and everything has been read.  Returns the bytes copied. */
size_t mp_job_read(struct mp_job *j, char *buf, size_t max, int *end);

#endif
