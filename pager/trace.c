/*
 * trace.c — MOETRACE v1/v2 reader and v2 writer (format: trace.h and
 * docs/trace-format.md).
 *
 * The reader treats the file as hostile: every count is checked against the
 * bytes that are really there before anything is allocated, products are
 * overflow-checked, and the first problem is reported with the file, the
 * field, what was expected and what was found, and the byte offset.
 *
 * Invariants of a successfully read struct mp_trace:
 *   T1. seq_start[0] == 0, seq_start[] is non-decreasing and
 *       seq_start[sequences] == tokens.
 *   T2. ids holds tokens × layers × top_k ids, each < experts, and the ids of
 *       one (token, layer) are distinct.
 *   T3. weights / outcomes / stalls are NULL or hold as many values as ids;
 *       every outcome < MP_TRACE_OUTCOME_COUNT.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "fp16.h"
#include "trace.h"

struct mp_trace {
	/* fixed after a successful read */
	struct mp_trace_info info;   /* what the trace describes */
	uint64_t *seq_start;         /* [sequences + 1] token index of each sequence */
	uint16_t *ids;               /* [tokens][layers][top_k] expert ids */
	float *weights;              /* same shape, or NULL */
	uint8_t *outcomes;           /* same shape (enum mp_trace_outcome), or NULL */
	uint32_t *stalls;            /* same shape, ns, or NULL */
	int loaded;                  /* 1 after a successful read */
	char error[512];             /* last error sentence */
};

static int trace_fail(struct mp_trace *t, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int trace_fail(struct mp_trace *t, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->error, sizeof t->error, fmt, ap);
	va_end(ap);
	return rc;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

struct mp_trace *mp_trace_create(void)
{
	return mp_calloc(1, sizeof(struct mp_trace));
}

void mp_trace_destroy(struct mp_trace *t)
{
	if (!t)
		return;
	mp_free(t->seq_start);
	mp_free(t->ids);
	mp_free(t->weights);
	mp_free(t->outcomes);
	mp_free(t->stalls);
	mp_free(t);
}

const char *mp_trace_error(const struct mp_trace *t)
{
	return t ? t->error : "no trace";
}

const char *mp_trace_outcome_name(unsigned outcome)
{
	static const char *const names[MP_TRACE_OUTCOME_COUNT] = {
		"hit", "prefetched", "late", "pagecache", "miss",
	};
	return outcome < MP_TRACE_OUTCOME_COUNT ? names[outcome] : "?";
}

/* Layout of one (token, layer) record in the file. */
struct rec_layout {
	uint32_t id_bytes;   /* 1 (experts <= 256, and always in v1) or 2 */
	uint32_t bytes;      /* whole record */
	int weights, outcomes;
};

static struct rec_layout layout_of(const struct mp_trace_info *in)
{
	struct rec_layout r = { 0 };
	r.id_bytes = (in->version == MP_TRACE_V1 || in->experts <= 256) ? 1 : 2;
	r.weights = (in->flags & MP_TRACE_F_WEIGHTS) != 0;
	r.outcomes = (in->flags & MP_TRACE_F_OUTCOMES) != 0;
	r.bytes = in->top_k * (r.id_bytes + (r.weights ? 2u : 0u) + (r.outcomes ? 5u : 0u));
	return r;
}

/* Checks the dimensions every version shares. */
static int check_dims(struct mp_trace *t, const char *name, const struct mp_trace_info *in)
{
	uint32_t max_experts = in->version == MP_TRACE_V1 ? 256u : MP_TRACE_MAX_EXPERTS;
	if (in->layers < 1 || in->layers > MP_TRACE_MAX_LAYERS)
		return trace_fail(t, -MP_EFORMAT, "%s: layers: expected 1..%u, found %u", name,
		                  MP_TRACE_MAX_LAYERS, in->layers);
	if (in->experts < 1 || in->experts > max_experts)
		return trace_fail(t, -MP_EFORMAT, "%s: experts: expected 1..%u, found %u", name,
		                  max_experts, in->experts);
	if (in->top_k < 1 || in->top_k > in->experts || in->top_k > MP_TRACE_MAX_TOPK)
		return trace_fail(t, -MP_EFORMAT, "%s: top_k: expected 1..%u, found %u", name,
		                  in->experts < MP_TRACE_MAX_TOPK ? in->experts : MP_TRACE_MAX_TOPK,
		                  in->top_k);
	return 0;
}

/* Parses the header; *body is the offset of the first sequence/chunk. */
static int parse_header(struct mp_trace *t, const char *name, const uint8_t *b, size_t len,
                        struct mp_trace_info *in, uint64_t *declared, size_t *body)
{
	memset(in, 0, sizeof *in);
	if (len < 12)
		return trace_fail(t, -MP_EFORMAT, "%s: header: expected at least 12 bytes, found %zu",
		                  name, len);
	if (memcmp(b, MP_TRACE_MAGIC, 8) != 0)
		return trace_fail(t, -MP_EFORMAT, "%s: magic: expected \"MOETRACE\", found \"%.8s\"",
		                  name, (const char *)b);
	in->version = rd32(b + 8);
	size_t hdr = in->version == MP_TRACE_V1 ? 28 : MP_TRACE_V2_HEADER_BYTES;
	if (in->version != MP_TRACE_V1 && in->version != MP_TRACE_V2)
		return trace_fail(t, -MP_EVERSION, "%s: version: expected 1 or 2, found %u", name,
		                  in->version);
	if (len < hdr)
		return trace_fail(t, -MP_EFORMAT, "%s: header: expected %zu bytes for version %u, found %zu",
		                  name, hdr, in->version, len);
	in->layers = rd32(b + 12);
	in->experts = rd32(b + 16);
	in->top_k = rd32(b + 20);
	*declared = rd32(b + 24);
	if (in->version == MP_TRACE_V2) {
		uint32_t hb = rd32(b + 28);
		in->flags = rd32(b + 32);
		in->layer_base = rd32(b + 36);
		in->expert_bytes = rd64(b + 40);
		if (hb < MP_TRACE_V2_HEADER_BYTES || hb > len)
			return trace_fail(t, -MP_EFORMAT, "%s: header_bytes: expected %u..%zu, found %u",
			                  name, MP_TRACE_V2_HEADER_BYTES, len, hb);
		if (in->flags & ~(uint32_t)MP_TRACE_F_KNOWN)
			return trace_fail(t, -MP_EFORMAT, "%s: flags: expected bits of 0x%x, found 0x%x",
			                  name, MP_TRACE_F_KNOWN, in->flags);
		hdr = hb;
	}
	*body = hdr;
	return check_dims(t, name, in);
}

/* Walks the body once: validates framing and ids, counts sequences and
 * tokens; when fill is set, also copies the data into t (allocated by the
 * caller from the counts of the first walk). */
static int walk_body(struct mp_trace *t, const char *name, const uint8_t *b, size_t len,
                     size_t off, struct mp_trace_info *in, uint64_t declared, int fill)
{
	struct rec_layout r = layout_of(in);
	uint64_t seqs = 0, tokens = 0;
	uint32_t k = in->top_k;
	uint64_t per_token;   /* bytes of one token: layers × record */
	if (__builtin_mul_overflow((uint64_t)in->layers, (uint64_t)r.bytes, &per_token))
		return trace_fail(t, -MP_EFORMAT, "%s: record size overflows", name);
	for (;;) {
		if (off == len)
			break;
		if (in->version == MP_TRACE_V1 && seqs == declared)
			return trace_fail(t, -MP_EFORMAT,
			                  "%s: sequences: header says %" PRIu64 ", found %zu trailing bytes after them (offset %zu)",
			                  name, declared, len - off, off);
		size_t frame = in->version == MP_TRACE_V1 ? 4 : 8;
		if (len - off < frame)
			return trace_fail(t, -MP_EFORMAT,
			                  "%s: sequence %" PRIu64 " token count: expected %zu bytes, found %zu (offset %zu)",
			                  name, seqs, frame, len - off, off);
		uint32_t n = rd32(b + off), cflags = frame == 8 ? rd32(b + off + 4) : 0;
		if (in->version == MP_TRACE_V2) {
			if (n == 0)
				return trace_fail(t, -MP_EFORMAT, "%s: chunk tokens: expected >= 1, found 0 (offset %zu)",
				                  name, off);
			if (cflags & ~1u)
				return trace_fail(t, -MP_EFORMAT, "%s: chunk flags: expected 0 or 1, found 0x%x (offset %zu)",
				                  name, cflags, off);
			if ((cflags & 1u) && seqs == 0)
				return trace_fail(t, -MP_EFORMAT,
				                  "%s: chunk flags: the first chunk cannot continue a sequence (offset %zu)",
				                  name, off);
		}
		int cont = (cflags & 1u) != 0;
		if (!cont) {
			if (fill)
				t->seq_start[seqs] = tokens;
			seqs++;
		}
		off += frame;
		uint64_t need;
		if (__builtin_mul_overflow(per_token, (uint64_t)n, &need) || need > len - off)
			return trace_fail(t, -MP_EFORMAT,
			                  "%s: sequence %" PRIu64 " data: %u tokens need %" PRIu64 " bytes, found %zu (offset %zu)",
			                  name, seqs - 1, n, per_token * (uint64_t)n, len - off, off);
		for (uint64_t i = 0; i < (uint64_t)n * in->layers; i++) {
			const uint8_t *p = b + off + i * r.bytes;
			uint64_t u = (tokens * in->layers + i) * k;   /* first use index */
			uint64_t seen[1024 / 64] = { 0 };
			for (uint32_t j = 0; j < k; j++) {
				uint32_t id = r.id_bytes == 1 ? p[j] : (uint32_t)p[2 * j] | (uint32_t)p[2 * j + 1] << 8;
				if (id >= in->experts)
					return trace_fail(t, -MP_EFORMAT,
					                  "%s: expert id: expected < %u, found %u (token %" PRIu64 ", layer %" PRIu64 ", offset %zu)",
					                  name, in->experts, id, tokens + i / in->layers, i % in->layers,
					                  (size_t)(p - b) + j * r.id_bytes);
				/* distinctness: a bitmap when ids are small, else pairwise */
				int dup = 0;
				if (id < 1024) {
					dup = (seen[id / 64] >> (id % 64)) & 1u;
					seen[id / 64] |= 1ull << (id % 64);
				} else {
					for (uint32_t q = 0; q < j; q++)
						dup |= ((uint32_t)p[2 * q] | (uint32_t)p[2 * q + 1] << 8) == id;
				}
				if (dup)
					return trace_fail(t, -MP_EFORMAT,
					                  "%s: expert id: %u appears twice in one set (token %" PRIu64 ", layer %" PRIu64 ", offset %zu)",
					                  name, id, tokens + i / in->layers, i % in->layers, (size_t)(p - b));
				if (fill)
					t->ids[u + j] = (uint16_t)id;
			}
			const uint8_t *q = p + (size_t)k * r.id_bytes;
			if (r.weights) {
				for (uint32_t j = 0; j < k && fill; j++)
					t->weights[u + j] = mp_f16_to_f32((mp_f16)(q[2 * j] | q[2 * j + 1] << 8));
				q += 2u * k;
			}
			if (r.outcomes) {
				for (uint32_t j = 0; j < k; j++) {
					if (q[j] >= MP_TRACE_OUTCOME_COUNT)
						return trace_fail(t, -MP_EFORMAT,
						                  "%s: outcome: expected 0..%d, found %u (token %" PRIu64 ", layer %" PRIu64 ", offset %zu)",
						                  name, MP_TRACE_OUTCOME_COUNT - 1, q[j], tokens + i / in->layers,
						                  i % in->layers, (size_t)(q + j - b));
					if (fill) {
						t->outcomes[u + j] = q[j];
						t->stalls[u + j] = rd32(q + k + 4 * j);
					}
				}
			}
		}
		off += (size_t)need;
		tokens += n;
	}
	if (in->version == MP_TRACE_V1 ? seqs != declared : (declared != 0 && seqs != declared))
		return trace_fail(t, -MP_EFORMAT,
		                  "%s: sequences: header says %" PRIu64 ", found %" PRIu64 " before the end of the file",
		                  name, declared, seqs);
	in->sequences = seqs;
	in->tokens = tokens;
	if (fill)
		t->seq_start[seqs] = tokens;
	return 0;
}

int mp_trace_read_mem(struct mp_trace *t, const char *name, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	struct mp_trace_info in;
	uint64_t declared = 0;
	size_t body = 0;
	t->error[0] = 0;
	if (t->loaded)
		return trace_fail(t, -MP_EARG, "%s: trace object already holds a trace", name);
	int rc = parse_header(t, name, b, len, &in, &declared, &body);
	if (rc < 0)
		return rc;
	rc = walk_body(t, name, b, len, body, &in, declared, 0);
	if (rc < 0)
		return rc;
	uint64_t uses = in.tokens * in.layers * in.top_k;   /* bounded by len */
	t->seq_start = mp_malloc_array(in.sequences + 1, sizeof *t->seq_start);
	t->ids = mp_malloc_array(uses, sizeof *t->ids);
	if (in.flags & MP_TRACE_F_WEIGHTS)
		t->weights = mp_malloc_array(uses, sizeof *t->weights);
	if (in.flags & MP_TRACE_F_OUTCOMES) {
		t->outcomes = mp_malloc_array(uses, sizeof *t->outcomes);
		t->stalls = mp_malloc_array(uses, sizeof *t->stalls);
	}
	if (!t->seq_start || !t->ids || ((in.flags & MP_TRACE_F_WEIGHTS) && !t->weights) ||
	    ((in.flags & MP_TRACE_F_OUTCOMES) && (!t->outcomes || !t->stalls)))
		rc = trace_fail(t, -ENOMEM, "%s: out of memory for %" PRIu64 " uses", name, uses);
	else
		rc = walk_body(t, name, b, len, body, &in, declared, 1);
	if (rc < 0) {
		mp_free(t->seq_start);
		mp_free(t->ids);
		mp_free(t->weights);
		mp_free(t->outcomes);
		mp_free(t->stalls);
		t->seq_start = NULL;
		t->ids = NULL;
		t->weights = NULL;
		t->outcomes = NULL;
		t->stalls = NULL;
		return rc;
	}
	t->info = in;
	t->loaded = 1;
	return 0;
}

int mp_trace_read(struct mp_trace *t, const char *path)
{
	t->error[0] = 0;
	FILE *f = fopen(path, "rb");
	if (!f)
		return trace_fail(t, -errno, "%s: cannot open: %s", path, strerror(errno));
	uint8_t *buf = NULL;
	size_t len = 0, cap = 0;
	int rc = 0;
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 1u << 20;
			uint8_t *nb = mp_realloc(buf, ncap);
			if (!nb) {
				rc = trace_fail(t, -ENOMEM, "%s: out of memory reading %zu bytes", path, ncap);
				break;
			}
			buf = nb;
			cap = ncap;
		}
		size_t got = fread(buf + len, 1, cap - len, f);
		len += got;
		if (got == 0) {
			if (ferror(f))
				rc = trace_fail(t, -EIO, "%s: read error after %zu bytes", path, len);
			break;
		}
	}
	fclose(f);
	if (rc == 0)
		rc = mp_trace_read_mem(t, path, buf, len);
	mp_free(buf);
	return rc;
}

const struct mp_trace_info *mp_trace_info(const struct mp_trace *t)
{
	return &t->info;
}

uint64_t mp_trace_seq_start(const struct mp_trace *t, uint64_t seq)
{
	return t->seq_start[seq];
}

static uint64_t use_index(const struct mp_trace *t, uint64_t token, uint32_t layer)
{
	return (token * t->info.layers + layer) * t->info.top_k;
}

const uint16_t *mp_trace_ids(const struct mp_trace *t, uint64_t token, uint32_t layer)
{
	return t->ids + use_index(t, token, layer);
}

const float *mp_trace_weights(const struct mp_trace *t, uint64_t token, uint32_t layer)
{
	return t->weights ? t->weights + use_index(t, token, layer) : NULL;
}

const uint8_t *mp_trace_outcomes(const struct mp_trace *t, uint64_t token, uint32_t layer)
{
	return t->outcomes ? t->outcomes + use_index(t, token, layer) : NULL;
}

const uint32_t *mp_trace_stalls(const struct mp_trace *t, uint64_t token, uint32_t layer)
{
	return t->stalls ? t->stalls + use_index(t, token, layer) : NULL;
}

/* ---- writer ------------------------------------------------------------- */

struct mp_trace_writer {
	/* fixed at open */
	struct mp_trace_info info;   /* header as written */
	struct rec_layout rec;       /* record layout */
	FILE *f;                     /* the open file, NULL when closed */
	char *path;                  /* for messages */
	uint8_t *chunk;              /* [MP_TRACE_CHUNK_TOKENS][layers][rec.bytes] */
	/* changes with every add */
	uint32_t next_layer;         /* layer the next add must give, 0..layers-1 */
	uint32_t chunk_tokens;       /* complete tokens in chunk, 0..MP_TRACE_CHUNK_TOKENS */
	int chunk_continues;         /* the chunk continues a flushed one */
	uint64_t seq_tokens;         /* tokens of the sequence in progress */
	uint64_t sequences;          /* sequences ended */
	int err;                     /* first write error, sticky */
	char error[512];             /* its sentence */
};

static int writer_fail(struct mp_trace_writer *w, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int writer_fail(struct mp_trace_writer *w, int rc, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->error, sizeof w->error, fmt, ap);
	va_end(ap);
	return rc;
}

struct mp_trace_writer *mp_trace_writer_create(void)
{
	return mp_calloc(1, sizeof(struct mp_trace_writer));
}

const char *mp_trace_writer_error(const struct mp_trace_writer *w)
{
	return w ? w->error : "no writer";
}

int mp_trace_writer_open(struct mp_trace_writer *w, const char *path, const struct mp_trace_info *info)
{
	struct mp_trace scratch;
	if (w->f || w->chunk)
		return writer_fail(w, -MP_EARG, "%s: writer already open", path);
	if (info->version != MP_TRACE_V2)
		return writer_fail(w, -MP_EARG, "%s: version: the writer writes 2, asked %u", path, info->version);
	if (info->flags & ~(uint32_t)MP_TRACE_F_KNOWN)
		return writer_fail(w, -MP_EARG, "%s: flags: expected bits of 0x%x, found 0x%x", path,
		                   MP_TRACE_F_KNOWN, info->flags);
	if (check_dims(&scratch, path, info) < 0)
		return writer_fail(w, -MP_EARG, "%s", scratch.error);
	w->info = *info;
	w->info.sequences = 0;
	w->info.tokens = 0;
	w->rec = layout_of(&w->info);
	size_t bytes = (size_t)MP_TRACE_CHUNK_TOKENS * info->layers * w->rec.bytes;
	w->chunk = mp_malloc(bytes);
	w->path = mp_strdup(path);
	if (!w->chunk || !w->path)
		return writer_fail(w, -ENOMEM, "%s: out of memory for a %zu-byte chunk", path, bytes);
	w->f = fopen(path, "wb");
	if (!w->f)
		return writer_fail(w, -errno, "%s: cannot create: %s", path, strerror(errno));
	uint8_t h[MP_TRACE_V2_HEADER_BYTES] = { 0 };
	memcpy(h, MP_TRACE_MAGIC, 8);
	wr32(h + 8, MP_TRACE_V2);
	wr32(h + 12, info->layers);
	wr32(h + 16, info->experts);
	wr32(h + 20, info->top_k);
	wr32(h + 24, 0);                     /* sequences: patched at close */
	wr32(h + 28, MP_TRACE_V2_HEADER_BYTES);
	wr32(h + 32, info->flags);
	wr32(h + 36, info->layer_base);
	wr64(h + 40, info->expert_bytes);
	if (fwrite(h, 1, sizeof h, w->f) != sizeof h)
		return w->err = writer_fail(w, -EIO, "%s: cannot write the header", path);
	return 0;
}

static int flush_chunk(struct mp_trace_writer *w)
{
	if (w->chunk_tokens == 0)
		return 0;
	uint8_t frame[8];
	wr32(frame, w->chunk_tokens);
	wr32(frame + 4, w->chunk_continues ? 1u : 0u);
	size_t n = (size_t)w->chunk_tokens * w->info.layers * w->rec.bytes;
	if (fwrite(frame, 1, 8, w->f) != 8 || fwrite(w->chunk, 1, n, w->f) != n)
		return w->err = writer_fail(w, -EIO, "%s: write failed: %s", w->path, strerror(errno));
	w->chunk_tokens = 0;
	w->chunk_continues = 1;
	return 0;
}

int mp_trace_writer_add(struct mp_trace_writer *w, uint32_t layer, const uint16_t *ids,
                        const float *weights, const uint8_t *outcomes, const uint32_t *stall_ns)
{
	if (!w->f)
		return writer_fail(w, -MP_EARG, "trace writer: not open");
	if (w->err)
		return w->err;
	if (layer != w->next_layer)
		return writer_fail(w, -MP_EARG, "%s: layer: expected %u next, given %u", w->path,
		                   w->next_layer, layer);
	uint32_t k = w->info.top_k;
	if ((w->rec.weights && !weights) || (w->rec.outcomes && (!outcomes || !stall_ns)))
		return writer_fail(w, -MP_EARG, "%s: the header promises %s%s; given NULL", w->path,
		                   w->rec.weights ? "weights " : "", w->rec.outcomes ? "outcomes" : "");
	uint8_t *p = w->chunk + ((size_t)w->chunk_tokens * w->info.layers + layer) * w->rec.bytes;
	for (uint32_t j = 0; j < k; j++) {
		if (ids[j] >= w->info.experts)
			return writer_fail(w, -MP_EARG, "%s: expert id: expected < %u, given %u", w->path,
			                   w->info.experts, ids[j]);
		for (uint32_t q = 0; q < j; q++)
			if (ids[q] == ids[j])
				return writer_fail(w, -MP_EARG, "%s: expert id %u given twice", w->path, ids[j]);
		if (outcomes && w->rec.outcomes && outcomes[j] >= MP_TRACE_OUTCOME_COUNT)
			return writer_fail(w, -MP_EARG, "%s: outcome: expected < %d, given %u", w->path,
			                   MP_TRACE_OUTCOME_COUNT, outcomes[j]);
	}
	for (uint32_t j = 0; j < k; j++) {
		if (w->rec.id_bytes == 1) {
			*p++ = (uint8_t)ids[j];
		} else {
			*p++ = (uint8_t)ids[j];
			*p++ = (uint8_t)(ids[j] >> 8);
		}
	}
	if (w->rec.weights)
		for (uint32_t j = 0; j < k; j++) {
			mp_f16 h = mp_f32_to_f16(weights[j]);
			*p++ = (uint8_t)h;
			*p++ = (uint8_t)(h >> 8);
		}
	if (w->rec.outcomes) {
		for (uint32_t j = 0; j < k; j++)
			*p++ = outcomes[j];
		for (uint32_t j = 0; j < k; j++, p += 4)
			wr32(p, stall_ns[j]);
	}
	if (++w->next_layer < w->info.layers)
		return 0;
	w->next_layer = 0;
	w->seq_tokens++;
	w->info.tokens++;
	if (++w->chunk_tokens == MP_TRACE_CHUNK_TOKENS)
		return flush_chunk(w);
	return 0;
}

int mp_trace_writer_end_sequence(struct mp_trace_writer *w)
{
	if (!w->f)
		return writer_fail(w, -MP_EARG, "trace writer: not open");
	if (w->err)
		return w->err;
	if (w->next_layer != 0)
		return writer_fail(w, -MP_EARG, "%s: sequence ended inside a token (layer %u of %u next)",
		                   w->path, w->next_layer, w->info.layers);
	if (w->seq_tokens == 0)
		return 0;
	int rc = flush_chunk(w);
	if (rc < 0)
		return rc;
	if (w->sequences == UINT32_MAX)
		return w->err = writer_fail(w, -MP_EARG, "%s: more than 2^32-1 sequences", w->path);
	w->sequences++;
	w->seq_tokens = 0;
	w->chunk_continues = 0;
	return 0;
}

int mp_trace_writer_close(struct mp_trace_writer *w)
{
	if (!w->f)
		return w->err;
	int rc = w->next_layer == 0 ? mp_trace_writer_end_sequence(w) : writer_fail(w, -MP_EARG,
	         "%s: closed inside a token; the partial token is dropped", w->path);
	uint8_t n[4];
	wr32(n, (uint32_t)w->sequences);
	if (rc == 0 && w->err == 0 &&
	    (fseek(w->f, 24, SEEK_SET) != 0 || fwrite(n, 1, 4, w->f) != 4))
		rc = writer_fail(w, -EIO, "%s: cannot patch the sequence count: %s", w->path, strerror(errno));
	if (fclose(w->f) != 0 && rc == 0)
		rc = writer_fail(w, -EIO, "%s: close failed: %s", w->path, strerror(errno));
	w->f = NULL;
	if (rc == 0)
		rc = w->err;
	w->err = rc;
	return rc;
}

void mp_trace_writer_destroy(struct mp_trace_writer *w)
{
	if (!w)
		return;
	if (w->f)
		(void)mp_trace_writer_close(w);
	mp_free(w->chunk);
	mp_free(w->path);
	mp_free(w);
}
