/*
 * dist_mpi.c — the ranks' messages over Open MPI (dist.h).
 *
 * Every message is a header (struct hdr, MPI_BYTE, tag HDR) and, for RUN and
 * HINT, the rows (MPI_FLOAT, tag ROWS).  RUN goes rank r → r+1, the last rank
 * answers rank 0; before it, in decode, HINT carries the state entering rank
 * r's last layer to r+1 (not to rank 0), whose look-ahead starts from it; STOP
 * goes down the chain once, at the end.  MPI_COMM_WORLD returns
 * errors (MPI_ERRORS_RETURN): each is printed naming this rank, its host and
 * the peer, then the job is aborted — a rank that dies makes mpirun end every
 * other one, so no rank waits for ever.
 *
 * Invariants:
 * 1. Only rank 0 starts a RUN.  It waits for the answer of every RUN but
 *    those flagged FLAG_NO_REPLY (prefill batches nobody reads, sent with
 *    pipe->send), which the last rank keeps; MPI keeps the order of messages
 *    between two ranks, so every rank sees positions in the order rank 0 ran
 *    them, and rank r runs batch k while rank r-1 runs batch k+1.  At most
 *    N_SENDBUF such batches sit in rank 0's own send buffers; a buffer is
 *    reused only once its send completed.
 * 2. A rank that cannot go on never returns to its caller's loop: it prints
 *    why and calls MPI_Abort (mp_dist_finish with a non-zero status).
 */
#include <errno.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alloc.h"
#include "clock.h"
#include "dist.h"
#include "err.h"
#include "size.h"

enum { TAG_HDR = 1, TAG_ROWS = 2 };
enum { MSG_RUN = 1, MSG_STOP = 2, MSG_HINT = 3 };   /* HINT: one row, look-ahead only */
enum { FLAG_NO_REPLY = 1 };   /* RUN: the last rank keeps the rows (pipelined prefill) */
enum { N_SENDBUF = 2 };       /* rank 0's prefill batches in its own sends at once */

struct hdr {
	uint32_t kind;                /* MSG_* */
	uint32_t pos, n;              /* first position, rows */
	uint32_t flags;               /* FLAG_* */
	uint64_t stage_ns;            /* ns the ranks after 0 computed, summed on the way */
};

struct mp_dist {
	int rank, size;
	char host[MPI_MAX_PROCESSOR_NAME];
	char *hosts;                  /* [size][MPI_MAX_PROCESSOR_NAME] */
	uint32_t n_embd;
	struct mp_model_pipe pipe;
	float *rows;                  /* serve: the received rows */
	size_t rows_cap;              /* floats */
	/* rank 0, pipelined prefill (invariant 1): batches sent without a reply */
	struct sendbuf {
		struct hdr h;
		float *rows;
		size_t cap;                 /* floats */
		MPI_Request req[2];         /* header, rows; MPI_REQUEST_NULL when done */
	} sb[N_SENDBUF];
	uint32_t sb_next;             /* the buffer the next send uses */
	uint64_t tokens, fwd_ns, stage_ns;
	char err[2048];
};

static const char *host_of(const struct mp_dist *d, int rank)
{
	return d->hosts ? d->hosts + (size_t)rank * MPI_MAX_PROCESSOR_NAME : "?";
}

/* Records "rank R on HOST: WHAT with rank P on HOST: MPI's reason"; returns -EIO. */
static int mpi_fail(struct mp_dist *d, int rc, const char *what, int peer)
{
	char why[MPI_MAX_ERROR_STRING];
	int len = 0;
	if (MPI_Error_string(rc, why, &len) != MPI_SUCCESS)
		snprintf(why, sizeof why, "MPI error %d", rc);
	snprintf(d->err, sizeof d->err, "rank %d on %s: %s rank %d on %s failed: %s", d->rank, d->host,
		 what, peer, host_of(d, peer), why);
	return -EIO;
}

int mp_dist_init(int *argc, char ***argv, struct mp_dist **out, char *err, size_t err_len)
{
	*out = NULL;
	/* started by mpirun: Open MPI sets these for each rank */
	if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK"))
		return 0;
	if (MPI_Init(argc, argv) != MPI_SUCCESS) {
		snprintf(err, err_len, "MPI_Init failed");
		return -MP_EUNAVAIL;
	}
	MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
	struct mp_dist *d = mp_calloc(1, sizeof *d);
	if (!d) {
		snprintf(err, err_len, "out of memory");
		MPI_Abort(MPI_COMM_WORLD, 1);
		return -ENOMEM;
	}
	for (int i = 0; i < N_SENDBUF; i++)
		d->sb[i].req[0] = d->sb[i].req[1] = MPI_REQUEST_NULL;
	MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
	MPI_Comm_size(MPI_COMM_WORLD, &d->size);
	int len = 0;
	MPI_Get_processor_name(d->host, &len);
	d->hosts = mp_calloc((size_t)d->size, MPI_MAX_PROCESSOR_NAME);
	int rc = d->hosts ? MPI_Allgather(d->host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, d->hosts,
					  MPI_MAX_PROCESSOR_NAME, MPI_CHAR, MPI_COMM_WORLD)
			  : MPI_ERR_NO_MEM;
	if (rc != MPI_SUCCESS) {
		mpi_fail(d, rc, "gathering host names with", 0);
		snprintf(err, err_len, "%s", d->err);
		mp_dist_finish(d, 1);
	}
	*out = d;
	return 0;
}

uint32_t mp_dist_rank(const struct mp_dist *d) { return d ? (uint32_t)d->rank : 0; }
uint32_t mp_dist_size(const struct mp_dist *d) { return d ? (uint32_t)d->size : 1; }
const char *mp_dist_host(const struct mp_dist *d) { return d ? d->host : ""; }

/* Rank 0's table of the split. */
static void print_split(const struct mp_dist *d, const uint32_t *begin, const uint64_t *caps,
			const uint64_t *weight, uint64_t fixed)
{
	for (int r = 0; r < d->size; r++) {
		uint64_t load = r == 0 ? fixed : 0;
		for (uint32_t L = begin[r]; L < begin[r + 1]; L++)
			load += weight[L];
		char a[32], b[32];
		fprintf(stderr, "moepager: rank %d on %s: layers %" PRIu32 "-%" PRIu32 " (%s of weights), "
			"memory %s\n", r, host_of(d, r), begin[r], begin[r + 1] - 1,
			mp_size_format(load, a, sizeof a),
			caps[r] ? mp_size_format(caps[r], b, sizeof b) : "not limited");
	}
}

/* The link, measured once at start: RING_ROUNDS times one hidden state goes
 * around every rank (0 → 1 → … → 0, plain blocking calls: the messaging
 * alone).  Returns the mean ns per hop on rank 0 (0 elsewhere), or -1. */
enum { RING_ROUNDS = 32 };
static int64_t ring_probe(struct mp_dist *d)
{
	float *buf = mp_calloc(d->n_embd, sizeof(float));
	if (!buf)
		return -1;
	int next = (d->rank + 1) % d->size, prev = (d->rank + d->size - 1) % d->size, rc = MPI_SUCCESS;
	uint64_t t0 = mp_clock_now_ns();
	for (int i = 0; i < RING_ROUNDS && rc == MPI_SUCCESS; i++) {
		if (d->rank == 0)
			rc = MPI_Send(buf, (int)d->n_embd, MPI_FLOAT, next, TAG_ROWS, MPI_COMM_WORLD);
		if (rc == MPI_SUCCESS)
			rc = MPI_Recv(buf, (int)d->n_embd, MPI_FLOAT, prev, TAG_ROWS, MPI_COMM_WORLD,
				      MPI_STATUS_IGNORE);
		if (rc == MPI_SUCCESS && d->rank != 0)
			rc = MPI_Send(buf, (int)d->n_embd, MPI_FLOAT, next, TAG_ROWS, MPI_COMM_WORLD);
	}
	mp_free(buf);
	if (rc != MPI_SUCCESS)
		return mpi_fail(d, rc, "measuring the link with", next), -1;
	return d->rank == 0 ? (int64_t)((mp_clock_now_ns() - t0) / RING_ROUNDS / (uint64_t)d->size) : 0;
}

int mp_dist_layers(struct mp_dist *d, const struct mp_hparams *hp, const uint64_t *weight,
		   uint64_t fixed, uint64_t cap, uint32_t *l0, uint32_t *l1, char *err, size_t err_len)
{
	uint64_t *caps = mp_calloc((size_t)d->size, sizeof *caps);
	uint32_t *begin = mp_calloc((size_t)d->size + 1, sizeof *begin);
	int rc = -ENOMEM;
	if (!caps || !begin) {
		snprintf(err, err_len, "out of memory");
		goto out;
	}
	uint32_t n_layer = hp->n_layer;
	d->n_embd = hp->n_embd;
	int mrc = MPI_Allgather(&cap, 1, MPI_UINT64_T, caps, 1, MPI_UINT64_T, MPI_COMM_WORLD);
	if (mrc != MPI_SUCCESS) {
		rc = mpi_fail(d, mrc, "gathering the memory of every rank with", 0);
		snprintf(err, err_len, "%s", d->err);
		goto out;
	}
	/* a rank without a limit counts as much as the largest one given */
	uint64_t most = 0;
	for (int r = 0; r < d->size; r++)
		most = caps[r] > most ? caps[r] : most;
	for (int r = 0; r < d->size && most; r++)
		caps[r] = caps[r] ? caps[r] : most;
	if ((rc = mp_dist_split(n_layer, weight, fixed, (uint32_t)d->size, caps, begin)) < 0) {
		snprintf(err, err_len, "%d ranks for %" PRIu32 " layers: every rank needs one layer at "
			 "least (mpirun -np %" PRIu32 " or fewer)", d->size, n_layer, n_layer);
		goto out;
	}
	int64_t hop_ns = ring_probe(d);
	if (hop_ns < 0) {
		snprintf(err, err_len, "%s", d->err);
		rc = -EIO;
		goto out;
	}
	if (d->rank == 0) {
		print_split(d, begin, caps, weight, fixed);
		fprintf(stderr, "moepager: link: a hidden state (%u bytes) goes rank to rank in %.1f us "
			"(%d hops, mean of %d rounds)\n", d->n_embd * 4u, (double)hop_ns / 1e3, d->size,
			RING_ROUNDS);
	}
	*l0 = begin[d->rank];
	*l1 = begin[d->rank + 1];
	rc = 0;
out:
	mp_free(caps);
	mp_free(begin);
	return rc;
}

int mp_dist_merge_max(struct mp_dist *d, uint64_t *v, size_t n, char *err, size_t err_len)
{
	int rc = n > INT32_MAX ? MPI_ERR_COUNT
			       : MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
	if (rc == MPI_SUCCESS)
		return 0;
	mpi_fail(d, rc, "merging the split parts' tables with", 0);
	snprintf(err, err_len, "%s", d->err);
	return -EIO;
}

static const char *pipe_err(void *ctx)
{
	return ((struct mp_dist *)ctx)->err;
}

/* Sends a header and, for RUN, n rows to rank to. */
static int send_msg(struct mp_dist *d, int to, const struct hdr *h, const float *rows)
{
	int rc = MPI_Send(h, sizeof *h, MPI_BYTE, to, TAG_HDR, MPI_COMM_WORLD);
	if (rc == MPI_SUCCESS && h->kind != MSG_STOP)
		rc = MPI_Send(rows, (int)(h->n * d->n_embd), MPI_FLOAT, to, TAG_ROWS, MPI_COMM_WORLD);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "sending hidden states to", to);
}

/* Waits for n requests, sleeping: a blocking call polls the network at full
 * speed, and a rank waiting for the others (or rank 1 waiting while rank 0
 * reads the next chat line) would take a core from the rank computing when
 * they share one.  Polls for the first 50 µs, then sleeps between polls for
 * 1/200 of the time waited so far (20 µs to 500 µs): a wait of seconds (a long
 * prompt on the other rank) costs two wake-ups per millisecond, not fifty, and
 * adds at most 0.5% (+ the timer slack) to a wait longer than 4 ms; shorter
 * waits sleep 20 µs as before. */
static int wait_sleeping(MPI_Request *req, int n)
{
	int rc = MPI_SUCCESS, done = 0;
	uint64_t t0 = mp_clock_now_ns();
	while (rc == MPI_SUCCESS && !(rc = MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE)) && !done) {
		uint64_t waited = mp_clock_now_ns() - t0;
		if (waited <= 50000)
			continue;
		uint64_t ns = waited / 200;
		ns = ns < 20000 ? 20000 : ns > 500000 ? 500000 : ns;
		nanosleep(&(struct timespec){ 0, (long)ns }, NULL);
	}
	return rc;
}

/* MPI_Recv that sleeps while it waits (wait_sleeping). */
static int recv_sleeping(void *buf, int count, MPI_Datatype type, int from, int tag)
{
	MPI_Request req;
	int rc = MPI_Irecv(buf, count, type, from, tag, MPI_COMM_WORLD, &req);
	return rc == MPI_SUCCESS ? wait_sleeping(&req, 1) : rc;
}

/* Receives a header from rank from and, for RUN, its rows into *rows (grown). */
static int recv_msg(struct mp_dist *d, int from, struct hdr *h)
{
	int rc = recv_sleeping(h, sizeof *h, MPI_BYTE, from, TAG_HDR);
	if (rc != MPI_SUCCESS)
		return mpi_fail(d, rc, "waiting for", from);
	if (h->kind == MSG_STOP)
		return 0;
	size_t need = (size_t)h->n * d->n_embd;
	if (need > d->rows_cap) {
		float *bigger = mp_realloc(d->rows, need * sizeof(float));
		if (!bigger) {
			snprintf(d->err, sizeof d->err, "rank %d on %s: out of memory for %" PRIu32
				 " hidden states", d->rank, d->host, h->n);
			return -ENOMEM;
		}
		d->rows = bigger;
		d->rows_cap = need;
	}
	rc = MPI_Recv(d->rows, (int)need, MPI_FLOAT, from, TAG_ROWS, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "receiving hidden states from", from);
}

/* Waits for a send buffer's messages (rank 1 took them). */
static int sendbuf_wait(struct mp_dist *d, struct sendbuf *b)
{
	int rc = wait_sleeping(b->req, 2);
	return rc == MPI_SUCCESS ? 0 : mpi_fail(d, rc, "sending hidden states to", 1);
}

/* A prefill batch to rank 1 without a reply (invariant 1). */
static int pipe_send(void *ctx, uint32_t pos, const float *h, uint32_t n)
{
	struct mp_dist *d = ctx;
	struct sendbuf *b = &d->sb[d->sb_next];
	d->sb_next = (d->sb_next + 1) % N_SENDBUF;
	int rc = sendbuf_wait(d, b);
	if (rc < 0)
		return rc;
	size_t need = (size_t)n * d->n_embd;
	if (need > b->cap) {
		float *bigger = mp_realloc(b->rows, need * sizeof(float));
		if (!bigger) {
			snprintf(d->err, sizeof d->err, "rank 0 on %s: out of memory for %" PRIu32
				 " hidden states", d->host, n);
			return -ENOMEM;
		}
		b->rows = bigger;
		b->cap = need;
	}
	memcpy(b->rows, h, need * sizeof(float));
	b->h = (struct hdr){ MSG_RUN, pos, n, FLAG_NO_REPLY, 0 };
	int mrc = MPI_Isend(&b->h, sizeof b->h, MPI_BYTE, 1, TAG_HDR, MPI_COMM_WORLD, &b->req[0]);
	if (mrc == MPI_SUCCESS)
		mrc = MPI_Isend(b->rows, (int)need, MPI_FLOAT, 1, TAG_ROWS, MPI_COMM_WORLD, &b->req[1]);
	return mrc == MPI_SUCCESS ? 0 : mpi_fail(d, mrc, "sending hidden states to", 1);
}

static int pipe_forward(void *ctx, uint32_t pos, float *h, uint32_t n)
{
	struct mp_dist *d = ctx;
	uint64_t t0 = mp_clock_now_ns();
	struct hdr msg = { MSG_RUN, pos, n, 0, 0 };
	int rc = send_msg(d, 1, &msg, h);
	if (rc == 0)
		rc = recv_msg(d, d->size - 1, &msg);
	if (rc < 0)
		return rc;
	if (msg.kind != MSG_RUN || msg.n != n || msg.pos != pos) {
		snprintf(d->err, sizeof d->err, "rank 0 on %s: rank %d answered %" PRIu32 " rows at "
			 "position %" PRIu32 ", expected %" PRIu32 " at %" PRIu32, d->host, d->size - 1,
			 msg.n, msg.pos, n, pos);
		return -EIO;
	}
	memcpy(h, d->rows, sizeof(float) * n * d->n_embd);
	if (n == 1) {   /* decode: the pipeline's counters */
		d->tokens++;
		d->fwd_ns += mp_clock_now_ns() - t0;
		d->stage_ns += msg.stage_ns;
	}
	return 0;
}

/* The state entering this rank's last layer, to the next rank (never rank 0);
 * a failure here shows again at the RUN that follows. */
static void pipe_early(void *ctx, uint32_t pos, const float *h)
{
	struct mp_dist *d = ctx;
	struct hdr msg = { MSG_HINT, pos, 1, 0, 0 };
	if (d->rank + 1 < d->size)
		send_msg(d, d->rank + 1, &msg, h);
}

const struct mp_model_pipe *mp_dist_pipe(struct mp_dist *d)
{
	if (!d || d->size < 2 || d->rank + 1 == d->size)
		return NULL;
	d->pipe = (struct mp_model_pipe){ d, d->rank == 0 ? pipe_forward : NULL, pipe_err, pipe_early,
					  d->rank == 0 ? pipe_send : NULL };
	return &d->pipe;
}

int mp_dist_serve(struct mp_dist *d, struct mp_model *m)
{
	int next = d->rank + 1 < d->size ? d->rank + 1 : 0;
	for (;;) {
		struct hdr msg;
		int rc = recv_msg(d, d->rank - 1, &msg);
		if (rc == 0 && msg.kind == MSG_STOP)
			return next ? send_msg(d, next, &msg, NULL) : 0;
		if (rc < 0) {
			fprintf(stderr, "moepager: %s\n", d->err);
			return -1;
		}
		if (msg.kind == MSG_HINT) {
			mp_model_stage_hint(m, d->rows);
			continue;
		}
		uint64_t t0 = mp_clock_now_ns();
		if (mp_model_stage(m, msg.pos, d->rows, msg.n) < 0) {
			fprintf(stderr, "moepager: rank %d on %s: %s\n", d->rank, d->host, mp_model_error(m));
			return -1;
		}
		msg.stage_ns += mp_clock_now_ns() - t0;
		if (next == 0 && (msg.flags & FLAG_NO_REPLY))
			continue;   /* a pipelined prefill batch: nobody reads its rows */
		if (send_msg(d, next, &msg, d->rows) < 0) {
			fprintf(stderr, "moepager: %s\n", d->err);
			return -1;
		}
	}
}

void mp_dist_counts(const struct mp_dist *d, uint64_t *tokens, uint64_t *fwd_ns, uint64_t *stage_ns)
{
	*tokens = d ? d->tokens : 0;
	*fwd_ns = d ? d->fwd_ns : 0;
	*stage_ns = d ? d->stage_ns : 0;
}

void mp_dist_finish(struct mp_dist *d, int status)
{
	if (!d)
		return;
	if (status != 0) {
		fprintf(stderr, "moepager: rank %d of %d on %s failed; stopping every rank\n", d->rank,
			d->size, d->host);
		fflush(stderr);
		MPI_Abort(MPI_COMM_WORLD, status);
		exit(status);   /* MPI_Abort does not return */
	}
	for (int i = 0; i < N_SENDBUF; i++)   /* rank 1 takes every batch before the stop */
		if (sendbuf_wait(d, &d->sb[i]) < 0) {
			fprintf(stderr, "moepager: %s\n", d->err);
			mp_dist_finish(d, 1);
		}
	if (d->rank == 0 && d->size > 1) {
		struct hdr stop = { MSG_STOP, 0, 0, 0, 0 };
		if (send_msg(d, 1, &stop, NULL) < 0) {
			fprintf(stderr, "moepager: %s\n", d->err);
			mp_dist_finish(d, 1);
		}
	}
	MPI_Finalize();
	mp_free(d->rows);
	for (int i = 0; i < N_SENDBUF; i++)
		mp_free(d->sb[i].rows);
	mp_free(d->hosts);
	mp_free(d);
}
