/*
 * worker.h — the thread of moepager-server that owns the model: it takes
 * jobs from the queue one at a time, renders the prompt (R1 chat template or
 * raw text), reuses the cached prefix, generates, and writes the answer into
 * the job as one JSON body or as server-sent events.
 *
 * It knows the session, the API bodies and the reply splitter, not HTTP
 * connections: a job it cannot run gets an error status and an error body.
 */
#ifndef MP_WORKER_H
#define MP_WORKER_H

#include <stdint.h>

#include "jobq.h"
#include "metrics.h"
#include "sampler.h"
#include "session.h"

struct mp_worker_opts {
	struct mp_session *session;  /* used by the worker thread only */
	struct mp_jobq *queue;       /* jobs (struct mp_job *), each holding a ref for the worker */
	struct mp_metrics_counts *counts;
	const char *model_name;      /* "model" in responses */
	struct mp_sampler_params sampling; /* defaults; requests override temperature, top_p, seed */
	int seed_given;              /* 0: a request without seed gets a fresh one */
	int64_t n_predict;           /* max_tokens default; < 0: until EOS or context full */
	int reasoning_inline;        /* 1: <think>...</think> stays in content */
	int ignore_eos;              /* 1: the end-of-text token is banned (--ignore-eos) */
};

struct mp_worker;

/* Starts the thread.  Returns 0 or -errno. */
int mp_worker_start(const struct mp_worker_opts *o, struct mp_worker **out);
/* Waits for the thread to end: close the queue first; queued jobs left are
 * answered 503.  NULL is fine. */
void mp_worker_join(struct mp_worker *w);

#endif
