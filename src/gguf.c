/*
 * gguf.c — the GGUF reader.  The file is hostile input (STYLE.md): every
 * count, length and offset is checked against the bytes that remain before it
 * is used, and before it sizes an allocation.
 *
 * Invariants (established by parse_part() and open_parts(), relied on by every
 * accessor):
 *  1. Every allocation made while parsing is bounded by the file size: a count
 *     is multiplied by the minimum encoded size of one element and compared
 *     with the bytes left before anything is allocated for it.
 *  2. Keys are non-empty printable ASCII, unique within a part; nesting of
 *     arrays is at most MAX_DEPTH.
 *  3. Every tensor has a name of 1..63 bytes, unique over all parts, n_dims
 *     <= 4, a type moepager supports, ne[0] a multiple of its block size, and
 *     a data range [offset, offset + nbytes) that is aligned, inside its file,
 *     and overlaps no other tensor of that file.  Gaps between tensors are
 *     accepted (the spec allows them); writers here never make any.
 *  4. For split sets: part i has split.no == i, split.count and
 *     split.tensors.count equal to part 0's, and the tensors of all parts sum
 *     to split.tensors.count.
 *  5. Tensor data is never read here.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "gguf.h"
#include "types.h"

#define MAX_DEPTH 8                      /* nested arrays accepted */
#define MAX_KEY 65535                    /* key bytes (spec) */
#define MAX_STRING (1ull << 30)          /* string bytes (llama.cpp's cap) */
#define MAX_ARRAY (1ull << 30)           /* array elements (llama.cpp's cap) */
#define MAX_COUNT (1u << 24)            /* keys or tensors per file */
#define WINDOW (1u << 20)                /* bytes: read-ahead window */
#define IK_FIRST_ID 97                   /* ik_llama.cpp fork type ids start here */
#define IK_LAST_ID 511

/* One metadata value (scalars converted to 64 bits). */
struct value {
	uint32_t type;            /* enum mp_gguf_vtype */
	uint32_t elem_type;       /* arrays: element type */
	uint64_t n;               /* string: bytes; array: elements */
	union {
		uint64_t u;
		int64_t i;
		double f;
	} num;                    /* scalar numbers and bools */
	void *data;               /* string: n+1 bytes; numeric array: packed;
	                             string array: uint64_t offs[n+1];
	                             array of arrays: struct value[n] */
	char *blob;               /* string array: all strings, NUL-separated */
};

struct kv {
	char *key;                /* NUL-terminated */
	struct value v;
};

struct part {
	char *path;               /* as opened */
	uint64_t size;            /* bytes of the file */
	uint32_t version;         /* 2 or 3 */
	uint32_t alignment;       /* power of two */
	uint64_t data_start;      /* bytes */
	struct kv *kvs;           /* n_kv records */
	uint64_t n_kv;
	uint64_t first_tensor;    /* index into mp_gguf.tensors */
	uint64_t n_tensors;
	int absent;               /* partial open: the file is not here (size and tensors 0) */
};

struct mp_gguf {
	struct part *parts;       /* n_parts */
	uint32_t n_parts;
	struct mp_gguf_tensor *tensors; /* n_tensors, names owned */
	uint64_t n_tensors;
	uint64_t cap_tensors;
	uint32_t *hash;           /* tensor index + 1 per slot, 0 empty */
	int partial;              /* mp_gguf_open_partial: absent parts allowed */
	uint32_t n_absent;
	uint64_t hash_mask;
	char err[MP_GGUF_ERR_LEN];
};

/* ---- bounded reading ------------------------------------------------------ */

struct src {
	int fd;                   /* -1 for memory */
	const uint8_t *mem;       /* memory image, or NULL */
	uint64_t size;            /* bytes */
	uint8_t *win;             /* WINDOW bytes of the file */
	uint64_t win_off;         /* file offset of win[0] */
	uint64_t win_len;         /* valid bytes in win */
};

struct parser {
	struct src *src;
	uint64_t pos;             /* bytes: next byte to read */
	const char *file;         /* for messages */
	char *err;
	size_t errlen;
	char field[160];          /* what is being read, for messages */
};

static int fail(struct parser *p, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(struct parser *p, int rc, const char *fmt, ...)
{
	if (p->err && p->errlen) {
		int n = snprintf(p->err, p->errlen, "%s: %s: ", p->file, p->field);
		if (n >= 0 && (size_t)n < p->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return rc;
}

static void set_field(struct parser *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_field(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->field, sizeof p->field, fmt, ap);
	va_end(ap);
}

static uint64_t left(const struct parser *p)
{
	return p->src->size - p->pos;
}

static int pread_full(int fd, void *buf, uint64_t len, uint64_t off)
{
	uint8_t *b = buf;
	while (len) {
		ssize_t r = pread(fd, b, len > (1u << 30) ? (1u << 30) : (size_t)len, (off_t)off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			return -MP_EFORMAT;    /* file shrank under us */
		b += r;
		off += (uint64_t)r;
		len -= (uint64_t)r;
	}
	return 0;
}

/* Copies len bytes at p->pos (caller checked len <= left()) and advances. */
static int take(struct parser *p, void *dst, uint64_t len)
{
	struct src *s = p->src;
	uint64_t off = p->pos;
	if (s->mem) {
		memcpy(dst, s->mem + off, len);
	} else if (off >= s->win_off && off + len <= s->win_off + s->win_len) {
		memcpy(dst, s->win + (off - s->win_off), len);
	} else if (len > WINDOW / 2) {
		int rc = pread_full(s->fd, dst, len, off);
		if (rc)
			return fail(p, rc, "read failed: %s", mp_strerror(rc));
	} else {
		uint64_t n = s->size - off < WINDOW ? s->size - off : WINDOW;
		int rc = pread_full(s->fd, s->win, n, off);
		if (rc)
			return fail(p, rc, "read failed: %s", mp_strerror(rc));
		s->win_off = off;
		s->win_len = n;
		memcpy(dst, s->win, len);
	}
	p->pos += len;
	return 0;
}

static int need(struct parser *p, uint64_t len)
{
	if (len > left(p))
		return fail(p, -MP_EFORMAT,
			    "truncated: needs %" PRIu64 " bytes at offset %" PRIu64
			    ", the file has %" PRIu64 " left", len, p->pos, left(p));
	return 0;
}

static int rd_u32(struct parser *p, uint32_t *out)
{
	int rc = need(p, 4);
	return rc ? rc : take(p, out, 4);
}

static int rd_u64(struct parser *p, uint64_t *out)
{
	int rc = need(p, 8);
	return rc ? rc : take(p, out, 8);
}

/* A string of at most cap bytes into a fresh NUL-terminated buffer. */
static int rd_string(struct parser *p, uint64_t cap, char **out, uint64_t *len_out)
{
	uint64_t len;
	int rc = rd_u64(p, &len);
	if (rc)
		return rc;
	if (len > cap)
		return fail(p, -MP_EFORMAT, "string length %" PRIu64 " exceeds the limit of %" PRIu64,
			    len, cap);
	if (len > left(p))
		return fail(p, -MP_EFORMAT, "string length %" PRIu64 " exceeds the %" PRIu64
			    " bytes left in the file", len, left(p));
	char *s = mp_malloc((size_t)len + 1);
	if (!s)
		return fail(p, -ENOMEM, "out of memory for a string of %" PRIu64 " bytes", len);
	rc = take(p, s, len);
	if (rc) {
		mp_free(s);
		return rc;
	}
	s[len] = 0;
	*out = s;
	if (len_out)
		*len_out = len;
	return 0;
}

static int valid_utf8(const uint8_t *s, uint64_t n)
{
	uint64_t i = 0;
	while (i < n) {
		uint8_t c = s[i];
		uint32_t cp, k;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xE0) == 0xC0) {
			k = 1, cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			k = 2, cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			k = 3, cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i <= k)
			return 0;
		for (uint32_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + j] & 0x3F);
		}
		if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
		    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return 0;
		i += k + 1;
	}
	return 1;
}

/* ---- values ---------------------------------------------------------------- */

static uint64_t scalar_size(uint32_t t)
{
	static const uint8_t sz[MP_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
	return t < MP_GGUF_VTYPE_COUNT ? sz[t] : 0;
}

/* Minimum encoded bytes of one element of type t. */
static uint64_t min_size(uint32_t t)
{
	if (t == MP_GGUF_STRING)
		return 8;
	if (t == MP_GGUF_ARRAY)
		return 12;
	return scalar_size(t);
}

static void value_free(struct value *v)
{
	if (v->type == MP_GGUF_ARRAY && v->elem_type == MP_GGUF_ARRAY && v->data) {
		struct value *sub = v->data;
		for (uint64_t i = 0; i < v->n; i++)
			value_free(&sub[i]);
	}
	mp_free(v->data);
	mp_free(v->blob);
	memset(v, 0, sizeof *v);
}

static int rd_value(struct parser *p, uint32_t type, int depth, struct value *v);

static int rd_scalar(struct parser *p, uint32_t type, struct value *v)
{
	uint64_t sz = scalar_size(type);
	uint8_t b[8] = {0};
	int rc = need(p, sz);
	if (rc || (rc = take(p, b, sz)))
		return rc;
	switch (type) {
	case MP_GGUF_U8: v->num.u = b[0]; break;
	case MP_GGUF_I8: v->num.i = (int8_t)b[0]; break;
	case MP_GGUF_U16: { uint16_t x; memcpy(&x, b, 2); v->num.u = x; break; }
	case MP_GGUF_I16: { int16_t x; memcpy(&x, b, 2); v->num.i = x; break; }
	case MP_GGUF_U32: { uint32_t x; memcpy(&x, b, 4); v->num.u = x; break; }
	case MP_GGUF_I32: { int32_t x; memcpy(&x, b, 4); v->num.i = x; break; }
	case MP_GGUF_F32: { float x; memcpy(&x, b, 4); v->num.f = x; break; }
	case MP_GGUF_BOOL:
		if (b[0] > 1)
			return fail(p, -MP_EFORMAT, "bool byte is %u, expected 0 or 1", b[0]);
		v->num.u = b[0];
		break;
	case MP_GGUF_U64: memcpy(&v->num.u, b, 8); break;
	case MP_GGUF_I64: memcpy(&v->num.i, b, 8); break;
	case MP_GGUF_F64: memcpy(&v->num.f, b, 8); break;
	default: break;
	}
	return 0;
}

static int rd_string_array(struct parser *p, struct value *v)
{
	uint64_t *offs = mp_malloc_array((size_t)v->n + 1, sizeof *offs);
	uint64_t cap = 4096, used = 0;
	char *blob = mp_malloc(cap);
	if (!offs || !blob) {
		mp_free(offs);
		mp_free(blob);
		return fail(p, -ENOMEM, "out of memory for %" PRIu64 " strings", v->n);
	}
	v->data = offs;
	v->blob = blob;
	for (uint64_t i = 0; i < v->n; i++) {
		uint64_t len;
		int rc = rd_u64(p, &len);
		if (rc)
			return rc;
		if (len > MAX_STRING || len > left(p))
			return fail(p, -MP_EFORMAT, "element %" PRIu64 ": string length %" PRIu64
				    " exceeds the %" PRIu64 " bytes left", i, len, left(p));
		if (used + len + 1 > cap) {
			uint64_t ncap = cap;
			while (ncap < used + len + 1)
				ncap *= 2;
			char *nb = mp_realloc(v->blob, (size_t)ncap);
			if (!nb)
				return fail(p, -ENOMEM, "out of memory for strings");
			v->blob = nb;
			cap = ncap;
		}
		offs[i] = used;
		if ((rc = take(p, v->blob + used, len)))
			return rc;
		v->blob[used + len] = 0;
		used += len + 1;
	}
	offs[v->n] = used;
	return 0;
}

static int rd_array(struct parser *p, int depth, struct value *v)
{
	uint32_t et;
	uint64_t n;
	int rc = rd_u32(p, &et);
	if (rc || (rc = rd_u64(p, &n)))
		return rc;
	if (et >= MP_GGUF_VTYPE_COUNT)
		return fail(p, -MP_EFORMAT, "array element type %" PRIu32 " is not a GGUF value type (0..12)", et);
	if (et == MP_GGUF_ARRAY && depth >= MAX_DEPTH)
		return fail(p, -MP_EFORMAT, "arrays nested deeper than %d levels", MAX_DEPTH);
	if (n > MAX_ARRAY)
		return fail(p, -MP_EFORMAT, "array count %" PRIu64 " exceeds the limit of %llu", n, MAX_ARRAY);
	if (n * min_size(et) > left(p))   /* n <= 2^30, min_size <= 12: no overflow */
		return fail(p, -MP_EFORMAT, "array of %" PRIu64 " %s needs at least %" PRIu64
			    " bytes, the file has %" PRIu64 " left", n, mp_gguf_vtype_name(et),
			    n * min_size(et), left(p));
	v->elem_type = et;
	v->n = n;
	if (et == MP_GGUF_STRING)
		return rd_string_array(p, v);
	if (et == MP_GGUF_ARRAY) {
		struct value *sub = mp_calloc((size_t)n ? (size_t)n : 1, sizeof *sub);
		if (!sub)
			return fail(p, -ENOMEM, "out of memory for %" PRIu64 " arrays", n);
		v->data = sub;
		for (uint64_t i = 0; i < n; i++) {
			sub[i].type = MP_GGUF_ARRAY;
			if ((rc = rd_array(p, depth + 1, &sub[i])))
				return rc;
		}
		return 0;
	}
	uint64_t bytes = n * scalar_size(et);
	v->data = mp_malloc((size_t)bytes);
	if (!v->data)
		return fail(p, -ENOMEM, "out of memory for an array of %" PRIu64 " bytes", bytes);
	if ((rc = take(p, v->data, bytes)))
		return rc;
	if (et == MP_GGUF_BOOL)
		for (uint64_t i = 0; i < n; i++)
			if (((uint8_t *)v->data)[i] > 1)
				return fail(p, -MP_EFORMAT, "bool element %" PRIu64 " is %u, expected 0 or 1",
					    i, ((uint8_t *)v->data)[i]);
	return 0;
}

static int rd_value(struct parser *p, uint32_t type, int depth, struct value *v)
{
	v->type = type;
	if (type >= MP_GGUF_VTYPE_COUNT)
		return fail(p, -MP_EFORMAT, "value type %" PRIu32 " is not a GGUF value type (0..12)", type);
	if (type == MP_GGUF_STRING) {
		int rc = rd_string(p, MAX_STRING, (char **)&v->data, &v->n);
		if (rc)
			return rc;
		if (!valid_utf8(v->data, v->n))
			return fail(p, -MP_EFORMAT, "string value is not valid UTF-8");
		return 0;
	}
	if (type == MP_GGUF_ARRAY)
		return rd_array(p, depth + 1, v);
	return rd_scalar(p, type, v);
}

/* ---- a small string hash (FNV-1a) ---------------------------------------- */

static uint64_t hash_str(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	return h;
}

/* Slots for n entries (power of two >= 2n). */
static uint32_t *hash_new(uint64_t n, uint64_t *mask)
{
	uint64_t cap = 16;
	while (cap < 2 * n)
		cap *= 2;
	*mask = cap - 1;
	return mp_calloc((size_t)cap, sizeof(uint32_t));
}

/* ---- one part ---------------------------------------------------------------- */

static const char *type_problem(uint32_t type)
{
	if (type >= IK_FIRST_ID && type <= IK_LAST_ID)
		return "belongs to the ik_llama.cpp fork (IQ*_K, *_R4 repacked types), which "
		       "mainline llama.cpp and moepager do not read: use a mainline GGUF";
	switch (mp_type_status(type)) {
	case MP_TYPE_UNKNOWN:
		return type < MP_TYPE_COUNT ? "is a removed ggml type"
					    : "is unknown (newer than this moepager, or not a ggml type)";
	case MP_TYPE_REJECTED:
		return "is a ggml type these models do not use; moepager has no kernels for it";
	case MP_TYPE_ACTIVATION:
		return "is an activation-only format that never appears in model files";
	default:
		return NULL;
	}
}

static int key_ok(const char *k, uint64_t len)
{
	if (len == 0)
		return 0;
	for (uint64_t i = 0; i < len; i++)
		if ((uint8_t)k[i] < 0x21 || (uint8_t)k[i] > 0x7e)
			return 0;
	return 1;
}

static int parse_kvs(struct parser *p, struct part *pt, uint64_t n_kv)
{
	pt->kvs = mp_calloc((size_t)n_kv ? (size_t)n_kv : 1, sizeof *pt->kvs);
	uint64_t mask;
	uint32_t *h = hash_new(n_kv, &mask);
	int rc = 0;
	if (!pt->kvs || !h) {
		mp_free(h);
		return fail(p, -ENOMEM, "out of memory for %" PRIu64 " keys", n_kv);
	}
	for (uint64_t i = 0; i < n_kv; i++) {
		struct kv *kv = &pt->kvs[i];
		uint64_t klen;
		uint32_t type;
		set_field(p, "metadata key #%" PRIu64, i);
		if ((rc = rd_string(p, MAX_KEY, &kv->key, &klen)))
			break;
		pt->n_kv = i + 1;
		if (!key_ok(kv->key, klen)) {
			rc = fail(p, -MP_EFORMAT, "key is %s", klen ? "not printable ASCII" : "empty");
			break;
		}
		set_field(p, "metadata key '%.100s'", kv->key);
		uint64_t s = hash_str(kv->key) & mask;
		while (h[s] && strcmp(pt->kvs[h[s] - 1].key, kv->key))
			s = (s + 1) & mask;
		if (h[s]) {
			rc = fail(p, -MP_EFORMAT, "duplicate key (also key #%u)", h[s] - 1);
			break;
		}
		h[s] = (uint32_t)i + 1;
		if ((rc = rd_u32(p, &type)) || (rc = rd_value(p, type, 0, &kv->v)))
			break;
	}
	mp_free(h);
	return rc;
}

static int parse_tensor(struct parser *p, struct part *pt, uint32_t part_no,
			struct mp_gguf_tensor *t, uint64_t idx)
{
	char *name;
	uint64_t nlen;
	uint32_t nd;
	int rc;
	set_field(p, "tensor #%" PRIu64, idx);
	if ((rc = rd_string(p, MAX_STRING, &name, &nlen)))
		return rc;
	t->name = name;
	if (nlen == 0)
		return fail(p, -MP_EFORMAT, "tensor name is empty");
	if (nlen > MP_GGUF_MAX_NAME)
		return fail(p, -MP_EFORMAT, "tensor name of %" PRIu64 " bytes, the limit is %d",
			    nlen, MP_GGUF_MAX_NAME);
	if (memchr(name, 0, nlen))
		return fail(p, -MP_EFORMAT, "tensor name contains a NUL byte");
	set_field(p, "tensor '%s'", name);
	if ((rc = rd_u32(p, &nd)))
		return rc;
	if (nd > MP_GGUF_MAX_DIMS)
		return fail(p, -MP_EFORMAT, "n_dims is %" PRIu32 ", at most %d", nd, MP_GGUF_MAX_DIMS);
	t->n_dims = nd;
	uint64_t elems = 1;
	for (int d = 0; d < MP_GGUF_MAX_DIMS; d++) {
		t->ne[d] = 1;
		if ((uint32_t)d < nd && (rc = rd_u64(p, &t->ne[d])))
			return rc;
		if (t->ne[d] > INT64_MAX)
			return fail(p, -MP_EFORMAT, "dimension %d is negative (%" PRId64 ")",
				    d, (int64_t)t->ne[d]);
		if (__builtin_mul_overflow(elems, t->ne[d], &elems) || elems > INT64_MAX)
			return fail(p, -MP_EFORMAT, "element count overflows");
	}
	if ((rc = rd_u32(p, &t->type)))
		return rc;
	const char *why = type_problem(t->type);
	if (why)
		return fail(p, -MP_ETYPE, "type id %" PRIu32 " %s", t->type, why);
	if (mp_type_row_bytes(t->type, t->ne[0], &t->row_bytes))
		return fail(p, -MP_EFORMAT, "ne[0] = %" PRIu64 " is not a multiple of %s's block of %u",
			    t->ne[0], mp_type_name(t->type), mp_type_info(t->type)->block_elems);
	uint64_t rows = t->ne[1];
	if (__builtin_mul_overflow(rows, t->ne[2], &rows) ||
	    __builtin_mul_overflow(rows, t->ne[3], &rows) ||
	    __builtin_mul_overflow(rows, t->row_bytes, &t->nbytes))
		return fail(p, -MP_EFORMAT, "byte size overflows");
	if ((rc = rd_u64(p, &t->offset)))
		return rc;
	if (t->offset % pt->alignment)
		return fail(p, -MP_EFORMAT, "data offset %" PRIu64 " is not a multiple of the alignment %" PRIu32,
			    t->offset, pt->alignment);
	t->part = part_no;
	return 0;
}

static int cmp_offset(const void *a, const void *b)
{
	const struct mp_gguf_tensor *x = *(struct mp_gguf_tensor *const *)a;
	const struct mp_gguf_tensor *y = *(struct mp_gguf_tensor *const *)b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Invariant 3's data checks; offsets become absolute. */
static int check_data(struct parser *p, struct part *pt, struct mp_gguf_tensor *ts, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		struct mp_gguf_tensor *t = &ts[i];
		uint64_t end;
		set_field(p, "tensor '%s'", t->name);
		if (__builtin_add_overflow(pt->data_start, t->offset, &t->offset) ||
		    __builtin_add_overflow(t->offset, t->nbytes, &end) || end > pt->size)
			return fail(p, -MP_EFORMAT, "data [%" PRIu64 " + %" PRIu64 " bytes) lies beyond "
				    "the end of the file (%" PRIu64 " bytes): truncated or corrupt",
				    t->offset - pt->data_start, t->nbytes, pt->size);
	}
	if (n < 2)
		return 0;
	struct mp_gguf_tensor **byoff = mp_malloc_array((size_t)n, sizeof *byoff);
	if (!byoff)
		return fail(p, -ENOMEM, "out of memory");
	for (uint64_t i = 0; i < n; i++)
		byoff[i] = &ts[i];
	qsort(byoff, (size_t)n, sizeof *byoff, cmp_offset);
	int rc = 0;
	for (uint64_t i = 1; i < n; i++) {
		const struct mp_gguf_tensor *a = byoff[i - 1], *b = byoff[i];
		if (a->offset + a->nbytes > b->offset && a->nbytes && b->nbytes) {
			set_field(p, "tensor '%s'", b->name);
			rc = fail(p, -MP_EFORMAT, "data overlaps tensor '%s' (offsets %" PRIu64 " and %" PRIu64 ")",
				  a->name, a->offset - pt->data_start, b->offset - pt->data_start);
			break;
		}
	}
	mp_free(byoff);
	return rc;
}

static struct kv *find_kv(const struct part *pt, const char *key)
{
	for (uint64_t i = 0; i < pt->n_kv; i++)
		if (strcmp(pt->kvs[i].key, key) == 0)
			return &pt->kvs[i];
	return NULL;
}

/* Parses one file into pt and appends its tensors to g. */
static int parse_part(struct mp_gguf *g, struct parser *p, struct part *pt, uint32_t part_no)
{
	uint32_t magic, version;
	uint64_t n_tensors, n_kv;
	int rc;
	set_field(p, "header");
	if ((rc = rd_u32(p, &magic)))
		return rc;
	if (magic != MP_GGUF_MAGIC)
		return fail(p, -MP_EFORMAT, "bad magic %02x %02x %02x %02x, expected \"GGUF\" (not a GGUF file)",
			    magic & 0xff, (magic >> 8) & 0xff, (magic >> 16) & 0xff, magic >> 24);
	set_field(p, "version");
	if ((rc = rd_u32(p, &version)))
		return rc;
	if (version && (version & 0xffff) == 0)
		return fail(p, -MP_EVERSION, "version reads as 0x%08" PRIx32 ": a big-endian (byte-swapped) "
			    "file, which moepager does not read", version);
	if (version != 2 && version != 3)
		return fail(p, -MP_EVERSION, "version %" PRIu32 " is not supported (2 or 3)%s", version,
			    version == 1 ? ": GGUF v1 is obsolete, reconvert the model" : "");
	pt->version = version;
	set_field(p, "tensor_count");
	if ((rc = rd_u64(p, &n_tensors)))
		return rc;
	set_field(p, "kv_count");
	if ((rc = rd_u64(p, &n_kv)))
		return rc;
	/* Invariant 1: minimum record sizes (FORMATS.md §1.6 class 3). */
	if (n_tensors > INT64_MAX || n_tensors > left(p) / 25) {
		set_field(p, "tensor_count");
		return fail(p, -MP_EFORMAT, "%" PRIu64 " tensors need at least %s bytes, the file has %" PRIu64,
			    n_tensors, n_tensors > INT64_MAX ? "a negative count of" : "25 x that many", left(p));
	}
	if (n_tensors > MAX_COUNT || n_kv > MAX_COUNT)
		return fail(p, -MP_EFORMAT, "%" PRIu64 " keys and %" PRIu64 " tensors: more than the "
			    "limit of %u each", n_kv, n_tensors, MAX_COUNT);
	if (n_kv > INT64_MAX || n_kv > left(p) / 14 || (n_kv && n_tensors > (left(p) - 14 * n_kv) / 25))
		return fail(p, -MP_EFORMAT, "%" PRIu64 " keys and %" PRIu64 " tensors need more bytes than "
			    "the %" PRIu64 " left in the file", n_kv, n_tensors, left(p));
	if ((rc = parse_kvs(p, pt, n_kv)))
		return rc;
	pt->alignment = MP_GGUF_DEFAULT_ALIGN;
	struct kv *al = find_kv(pt, "general.alignment");
	if (al) {
		set_field(p, "metadata key 'general.alignment'");
		if (al->v.type != MP_GGUF_U32)
			return fail(p, -MP_EFORMAT, "type is %s, expected u32", mp_gguf_vtype_name(al->v.type));
		if (al->v.num.u == 0 || (al->v.num.u & (al->v.num.u - 1)))
			return fail(p, -MP_EFORMAT, "value %" PRIu64 " is not a power of two", al->v.num.u);
		pt->alignment = (uint32_t)al->v.num.u;
	}
	/* Tensor records: grow the shared array (count already bounded). */
	uint64_t need_cap = g->n_tensors + n_tensors;
	if (need_cap > g->cap_tensors) {
		struct mp_gguf_tensor *nt = mp_realloc(g->tensors, (size_t)need_cap * sizeof *nt);
		if (!nt)
			return fail(p, -ENOMEM, "out of memory for %" PRIu64 " tensors", n_tensors);
		g->tensors = nt;
		g->cap_tensors = need_cap;
	}
	pt->first_tensor = g->n_tensors;
	struct mp_gguf_tensor *ts = g->tensors ? &g->tensors[g->n_tensors] : NULL;
	for (uint64_t i = 0; i < n_tensors; i++) {
		memset(&ts[i], 0, sizeof ts[i]);
		g->n_tensors++;
		pt->n_tensors++;
		if ((rc = parse_tensor(p, pt, part_no, &ts[i], i)))
			return rc;
	}
	uint64_t ds = p->pos;
	if (n_tensors) {
		ds = (p->pos + pt->alignment - 1) / pt->alignment * pt->alignment;
		if (ds < p->pos || ds > pt->size) {
			set_field(p, "data section");
			return fail(p, -MP_EFORMAT, "the file ends at %" PRIu64 " before its data starts at %" PRIu64,
				    pt->size, ds);
		}
	}
	pt->data_start = ds;
	return check_data(p, pt, ts, n_tensors);
}

/* ---- open ------------------------------------------------------------------ */

static void part_free(struct part *pt)
{
	for (uint64_t i = 0; i < pt->n_kv; i++) {
		mp_free(pt->kvs[i].key);
		value_free(&pt->kvs[i].v);
	}
	mp_free(pt->kvs);
	mp_free(pt->path);
}

void mp_gguf_destroy(struct mp_gguf *g)
{
	if (!g)
		return;
	for (uint32_t i = 0; i < g->n_parts; i++)
		part_free(&g->parts[i]);
	mp_free(g->parts);
	for (uint64_t i = 0; i < g->n_tensors; i++)
		mp_free((char *)g->tensors[i].name);
	mp_free(g->tensors);
	mp_free(g->hash);
	mp_free(g);
}

static int open_one(struct mp_gguf *g, const char *path, const void *mem, uint64_t memlen,
		    uint32_t part_no, char *err, size_t errlen)
{
	struct part *pt = &g->parts[part_no];
	struct src s = {.fd = -1};
	struct parser p = {.src = &s, .file = path, .err = err, .errlen = errlen};
	int rc;
	set_field(&p, "file");
	pt->path = mp_strdup(path);
	if (!pt->path)
		return fail(&p, -ENOMEM, "out of memory");
	g->n_parts = part_no + 1;
	if (mem) {
		s.mem = mem;
		s.size = memlen;
	} else {
		struct stat st;
		s.fd = open(path, O_RDONLY | O_CLOEXEC);
		if (s.fd < 0)
			return fail(&p, -errno, "cannot open: %s", strerror(errno));
		if (fstat(s.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
			rc = fail(&p, S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL, "not a regular file");
			close(s.fd);
			return rc;
		}
		s.size = (uint64_t)st.st_size;
		s.win = mp_malloc(WINDOW);
		if (!s.win) {
			close(s.fd);
			return fail(&p, -ENOMEM, "out of memory");
		}
	}
	pt->size = s.size;
	rc = parse_part(g, &p, pt, part_no);
	if (s.fd >= 0)
		close(s.fd);
	mp_free(s.win);
	return rc;
}

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int errf(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* An integer-valued key of a part, or -1 when absent / not an integer. */
static int64_t part_int(const struct part *pt, const char *key, int *present)
{
	struct kv *kv = find_kv(pt, key);
	*present = kv != NULL;
	if (!kv)
		return -1;
	switch (kv->v.type) {
	case MP_GGUF_U8: case MP_GGUF_U16: case MP_GGUF_U32: case MP_GGUF_U64:
		return kv->v.num.u > INT64_MAX ? -1 : (int64_t)kv->v.num.u;
	case MP_GGUF_I8: case MP_GGUF_I16: case MP_GGUF_I32: case MP_GGUF_I64:
		return kv->v.num.i;
	default:
		return -1;
	}
}

/* "<prefix>-00001-of-00003.gguf": sets *count and the prefix length, or 0. */
static int split_name(const char *path, uint32_t *no, uint32_t *count, size_t *prefix_len)
{
	size_t n = strlen(path);
	const char *tail;
	unsigned a, b;
	char c;
	if (n < 20)
		return 0;
	tail = path + n - 20;          /* "-00001-of-00003.gguf" is 20 bytes */
	if (tail[0] != '-' || sscanf(tail, "-%5u-of-%5u.gguf%c", &a, &b, &c) != 2 ||
	    strncmp(tail + 6, "-of-", 4) || strcmp(tail + 15, ".gguf"))
		return 0;
	for (int i = 1; i < 6; i++)
		if (tail[i] < '0' || tail[i] > '9' || tail[i + 9] < '0' || tail[i + 9] > '9')
			return 0;
	*no = a;
	*count = b;
	*prefix_len = n - 20;
	return 1;
}

static int build_hash(struct mp_gguf *g, char *err, size_t errlen)
{
	g->hash = hash_new(g->n_tensors, &g->hash_mask);
	if (!g->hash)
		return errf(err, errlen, -ENOMEM, "%s: out of memory", g->parts[0].path);
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct mp_gguf_tensor *t = &g->tensors[i];
		uint64_t s = hash_str(t->name) & g->hash_mask;
		while (g->hash[s]) {
			const struct mp_gguf_tensor *o = &g->tensors[g->hash[s] - 1];
			if (strcmp(o->name, t->name) == 0) {
				if (o->part == t->part)
					return errf(err, errlen, -MP_EFORMAT,
						    "%s: tensor '%s': duplicate name (appears twice in this file)",
						    g->parts[t->part].path, t->name);
				return errf(err, errlen, -MP_EFORMAT,
					    "%s: tensor '%s': duplicate name, also in part %u (%s): parts of "
					    "different models?", g->parts[t->part].path, t->name, o->part + 1,
					    g->parts[o->part].path);
			}
			s = (s + 1) & g->hash_mask;
		}
		g->hash[s] = (uint32_t)i + 1;
	}
	return 0;
}

/* Invariant 4: finds, opens and checks parts 2..count. */
static int open_split(struct mp_gguf *g, const char *path, char *err, size_t errlen)
{
	struct part *p0 = &g->parts[0];
	int has_no, has_count, has_total;
	int64_t no = part_int(p0, "split.no", &has_no);
	int64_t count = part_int(p0, "split.count", &has_count);
	int64_t total = part_int(p0, "split.tensors.count", &has_total);
	uint32_t name_no = 0, name_count = 0;
	size_t plen = 0;
	int named = split_name(path, &name_no, &name_count, &plen);

	if (!has_count) {
		if (named && name_count > 1)
			return errf(err, errlen, -MP_EFORMAT, "%s: named as part %u of %u, but the file has no "
				    "'split.count' key", path, name_no, name_count);
		return 0;
	}
	if (count < 1 || count > MP_GGUF_MAX_PARTS)
		return errf(err, errlen, -MP_EFORMAT, "%s: metadata key 'split.count': %" PRId64
			    " is not a part count (1..%d) or not an integer", path, count, MP_GGUF_MAX_PARTS);
	if (!has_no || no != 0)
		return errf(err, errlen, -MP_EFORMAT, "%s: metadata key 'split.no' is %s%" PRId64
			    ", expected 0: open the first part (…-00001-of-%05" PRId64 ".gguf)", path,
			    has_no ? "" : "missing, ", has_no ? no : 0, count);
	if (!has_total || total < 0)
		return errf(err, errlen, -MP_EFORMAT, "%s: metadata key 'split.tensors.count' is missing "
			    "or not a non-negative integer", path);
	if (count > 1 && !named)
		return errf(err, errlen, -MP_EFORMAT, "%s: file of a %" PRId64 "-part split set, but its "
			    "name does not end in -00001-of-%05" PRId64 ".gguf, so the other parts cannot "
			    "be found", path, count, count);
	if (named && (name_no != 1 || name_count != (uint32_t)count))
		return errf(err, errlen, -MP_EFORMAT, "%s: file name says part %u of %u, its metadata "
			    "says part 1 of %" PRId64, path, name_no, name_count, count);
	if (count > 1) {
		struct part *np = mp_realloc(g->parts, (size_t)count * sizeof *np);
		if (!np)
			return errf(err, errlen, -ENOMEM, "%s: out of memory", path);
		g->parts = np;
		memset(&np[1], 0, (size_t)(count - 1) * sizeof *np);
	}
	for (uint32_t i = 1; i < (uint32_t)count; i++) {
		char *pp = mp_malloc(plen + 32);
		if (!pp)
			return errf(err, errlen, -ENOMEM, "%s: out of memory", path);
		snprintf(pp, plen + 32, "%.*s-%05u-of-%05u.gguf", (int)plen, path, i + 1, (unsigned)count);
		int rc = open_one(g, pp, NULL, 0, i, err, errlen);
		if ((rc == -ENOENT || rc == -EACCES) && g->partial) {
			/* another host's part (several ranks): recorded, no tensors known */
			g->parts[i].absent = 1;
			g->parts[i].first_tensor = g->n_tensors;
			g->n_absent++;
			mp_free(pp);
			continue;
		}
		if (rc == -ENOENT)
			rc = errf(err, errlen, rc, "%s: split part %u of %" PRId64 " is missing (named by %s)",
				  pp, i + 1, count, path);
		mp_free(pp);
		if (rc)
			return rc;
		struct part *pt = &g->parts[i];
		int h1, h2, h3;
		int64_t pno = part_int(pt, "split.no", &h1);
		int64_t pcount = part_int(pt, "split.count", &h2);
		int64_t ptotal = part_int(pt, "split.tensors.count", &h3);
		if (!h1 || pno != i)
			return errf(err, errlen, -MP_EFORMAT, "%s: metadata key 'split.no' is %" PRId64
				    ", expected %u (this file is part %u of %" PRId64 ")", pt->path,
				    h1 ? pno : -1, i, i + 1, count);
		if (!h2 || pcount != count)
			return errf(err, errlen, -MP_EFORMAT, "%s: metadata key 'split.count' is %" PRId64
				    ", part 1 says %" PRId64 ": a part of another model?", pt->path,
				    h2 ? pcount : -1, count);
		if (!h3 || ptotal != total)
			return errf(err, errlen, -MP_EFORMAT, "%s: metadata key 'split.tensors.count' is %" PRId64
				    ", part 1 says %" PRId64 ": a part of another model?", pt->path,
				    h3 ? ptotal : -1, total);
	}
	if (!g->n_absent && (uint64_t)total != g->n_tensors)
		return errf(err, errlen, -MP_EFORMAT, "%s: metadata key 'split.tensors.count' says %" PRId64
			    " tensors, the %" PRId64 " parts hold %" PRIu64, path, total, count, g->n_tensors);
	return 0;
}

static int open_common(const char *path, const void *mem, size_t len, int partial,
		       struct mp_gguf **out, char *err, size_t errlen)
{
	struct mp_gguf *g = mp_calloc(1, sizeof *g);
	int rc;
	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	if (!g)
		return errf(err, errlen, -ENOMEM, "%s: out of memory", path);
	g->parts = mp_calloc(1, sizeof *g->parts);
	if (!g->parts) {
		rc = errf(err, errlen, -ENOMEM, "%s: out of memory", path);
		goto fail;
	}
	g->partial = partial;
	if ((rc = open_one(g, path, mem, len, 0, err, errlen)))
		goto fail;
	if (!mem && (rc = open_split(g, path, err, errlen)))
		goto fail;
	if ((rc = build_hash(g, err, errlen)))
		goto fail;
	*out = g;
	return 0;
fail:
	mp_gguf_destroy(g);
	return rc;
}

int mp_gguf_open(const char *path, struct mp_gguf **out, char *err, size_t errlen)
{
	return open_common(path, NULL, 0, 0, out, err, errlen);
}

int mp_gguf_open_partial(const char *path, struct mp_gguf **out, char *err, size_t errlen)
{
	return open_common(path, NULL, 0, 1, out, err, errlen);
}

int mp_gguf_open_mem(const void *buf, size_t len, const char *name, struct mp_gguf **out,
		     char *err, size_t errlen)
{
	static const uint8_t empty[1];
	return open_common(name, buf ? buf : empty, buf ? len : 0, 0, out, err, errlen);
}

/* ---- accessors -------------------------------------------------------------- */

const char *mp_gguf_error(const struct mp_gguf *g)
{
	return g->err;
}

uint32_t mp_gguf_version(const struct mp_gguf *g) { return g->parts[0].version; }
uint32_t mp_gguf_alignment(const struct mp_gguf *g) { return g->parts[0].alignment; }
uint32_t mp_gguf_part_count(const struct mp_gguf *g) { return g->n_parts; }

const char *mp_gguf_part_path(const struct mp_gguf *g, uint32_t part)
{
	return part < g->n_parts ? g->parts[part].path : NULL;
}

int mp_gguf_part_present(const struct mp_gguf *g, uint32_t part)
{
	return part < g->n_parts && !g->parts[part].absent;
}

uint32_t mp_gguf_parts_absent(const struct mp_gguf *g) { return g->n_absent; }

uint64_t mp_gguf_part_size(const struct mp_gguf *g, uint32_t part)
{
	return part < g->n_parts ? g->parts[part].size : 0;
}

uint64_t mp_gguf_data_start(const struct mp_gguf *g, uint32_t part)
{
	return part < g->n_parts ? g->parts[part].data_start : 0;
}

uint64_t mp_gguf_kv_count(const struct mp_gguf *g) { return g->parts[0].n_kv; }

const char *mp_gguf_kv_key(const struct mp_gguf *g, uint64_t i)
{
	return i < g->parts[0].n_kv ? g->parts[0].kvs[i].key : NULL;
}

uint32_t mp_gguf_kv_type(const struct mp_gguf *g, uint64_t i)
{
	return i < g->parts[0].n_kv ? g->parts[0].kvs[i].v.type : MP_GGUF_VTYPE_COUNT;
}

const char *mp_gguf_vtype_name(uint32_t t)
{
	static const char *names[MP_GGUF_VTYPE_COUNT] = {
		"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
		"u64", "i64", "f64"};
	return t < MP_GGUF_VTYPE_COUNT ? names[t] : "invalid";
}

static void format_value(const struct value *v, char *buf, size_t len)
{
	switch (v->type) {
	case MP_GGUF_U8: case MP_GGUF_U16: case MP_GGUF_U32: case MP_GGUF_U64:
		snprintf(buf, len, "%s %" PRIu64, mp_gguf_vtype_name(v->type), v->num.u);
		break;
	case MP_GGUF_I8: case MP_GGUF_I16: case MP_GGUF_I32: case MP_GGUF_I64:
		snprintf(buf, len, "%s %" PRId64, mp_gguf_vtype_name(v->type), v->num.i);
		break;
	case MP_GGUF_F32: case MP_GGUF_F64:
		snprintf(buf, len, "%s %g", mp_gguf_vtype_name(v->type), v->num.f);
		break;
	case MP_GGUF_BOOL:
		snprintf(buf, len, "bool %s", v->num.u ? "true" : "false");
		break;
	case MP_GGUF_STRING:
		snprintf(buf, len, "string \"%.60s%s\"", (const char *)v->data, v->n > 60 ? "…" : "");
		for (char *c = buf; *c; c++)
			if (*c == '\n' || *c == '\r' || *c == '\t')
				*c = ' ';
		break;
	case MP_GGUF_ARRAY:
		snprintf(buf, len, "array[%" PRIu64 "] of %s", v->n, mp_gguf_vtype_name(v->elem_type));
		break;
	default:
		snprintf(buf, len, "?");
	}
}

void mp_gguf_kv_format(const struct mp_gguf *g, uint64_t i, char *buf, size_t len)
{
	if (i < g->parts[0].n_kv)
		format_value(&g->parts[0].kvs[i].v, buf, len);
	else if (len)
		buf[0] = 0;
}

int mp_gguf_has(const struct mp_gguf *g, const char *key)
{
	return find_kv(&g->parts[0], key) != NULL;
}

static const struct value *get(struct mp_gguf *g, const char *key)
{
	const struct kv *kv = find_kv(&g->parts[0], key);
	if (!kv)
		snprintf(g->err, sizeof g->err, "%s: metadata key '%s' is missing", g->parts[0].path, key);
	return kv ? &kv->v : NULL;
}

static int wrong_type(struct mp_gguf *g, const char *key, const struct value *v, const char *want)
{
	snprintf(g->err, sizeof g->err, "%s: metadata key '%s' is %s, expected %s",
		 g->parts[0].path, key, mp_gguf_vtype_name(v->type), want);
	return -MP_ETYPE;
}

/* An integer value as a signed 128-bit-free pair: sets *neg and *mag. */
static int int_value(const struct value *v, int *neg, uint64_t *mag)
{
	switch (v->type) {
	case MP_GGUF_U8: case MP_GGUF_U16: case MP_GGUF_U32: case MP_GGUF_U64:
		*neg = 0;
		*mag = v->num.u;
		return 1;
	case MP_GGUF_I8: case MP_GGUF_I16: case MP_GGUF_I32: case MP_GGUF_I64:
		*neg = v->num.i < 0;
		*mag = *neg ? (uint64_t)0 - (uint64_t)v->num.i : (uint64_t)v->num.i;
		return 1;
	default:
		return 0;
	}
}

static int get_int(struct mp_gguf *g, const char *key, int64_t lo, uint64_t hi, int *neg, uint64_t *mag)
{
	const struct value *v = get(g, key);
	if (!v)
		return -MP_ENOTFOUND;
	if (!int_value(v, neg, mag))
		return wrong_type(g, key, v, "an integer");
	if ((*neg && (lo >= 0 || *mag > (uint64_t)0 - (uint64_t)lo)) || (!*neg && *mag > hi)) {
		snprintf(g->err, sizeof g->err, "%s: metadata key '%s' = %s%" PRIu64 " is out of range",
			 g->parts[0].path, key, *neg ? "-" : "", *mag);
		return -MP_ETYPE;
	}
	return 0;
}

int mp_gguf_get_u32(struct mp_gguf *g, const char *key, uint32_t *out)
{
	int neg;
	uint64_t m;
	int rc = get_int(g, key, 0, UINT32_MAX, &neg, &m);
	if (!rc)
		*out = (uint32_t)m;
	return rc;
}

int mp_gguf_get_u64(struct mp_gguf *g, const char *key, uint64_t *out)
{
	int neg;
	uint64_t m;
	int rc = get_int(g, key, 0, UINT64_MAX, &neg, &m);
	if (!rc)
		*out = m;
	return rc;
}

int mp_gguf_get_i64(struct mp_gguf *g, const char *key, int64_t *out)
{
	int neg;
	uint64_t m;
	int rc = get_int(g, key, INT64_MIN, INT64_MAX, &neg, &m);
	if (!rc)
		*out = neg ? (int64_t)(0 - m) : (int64_t)m;
	return rc;
}

int mp_gguf_get_f32(struct mp_gguf *g, const char *key, float *out)
{
	const struct value *v = get(g, key);
	if (!v)
		return -MP_ENOTFOUND;
	if (v->type != MP_GGUF_F32 && v->type != MP_GGUF_F64)
		return wrong_type(g, key, v, "f32");
	*out = (float)v->num.f;
	return 0;
}

int mp_gguf_get_bool(struct mp_gguf *g, const char *key, int *out)
{
	const struct value *v = get(g, key);
	if (!v)
		return -MP_ENOTFOUND;
	if (v->type != MP_GGUF_BOOL)
		return wrong_type(g, key, v, "bool");
	*out = (int)v->num.u;
	return 0;
}

int mp_gguf_get_str(struct mp_gguf *g, const char *key, const char **out)
{
	const struct value *v = get(g, key);
	if (!v)
		return -MP_ENOTFOUND;
	if (v->type != MP_GGUF_STRING)
		return wrong_type(g, key, v, "string");
	*out = v->data;
	return 0;
}

static void array_of(const struct value *v, struct mp_gguf_array *out)
{
	out->type = v->elem_type;
	out->n = v->n;
	out->data = v->elem_type == MP_GGUF_STRING ? (const void *)v : v->data;
}

int mp_gguf_get_array(struct mp_gguf *g, const char *key, int elem_type, struct mp_gguf_array *out)
{
	const struct value *v = get(g, key);
	if (!v)
		return -MP_ENOTFOUND;
	if (v->type != MP_GGUF_ARRAY)
		return wrong_type(g, key, v, "an array");
	if (elem_type >= 0 && v->elem_type != (uint32_t)elem_type) {
		snprintf(g->err, sizeof g->err, "%s: metadata key '%s' is an array of %s, expected %s",
			 g->parts[0].path, key, mp_gguf_vtype_name(v->elem_type),
			 mp_gguf_vtype_name((uint32_t)elem_type));
		return -MP_ETYPE;
	}
	array_of(v, out);
	return 0;
}

const char *mp_gguf_array_str(const struct mp_gguf_array *a, uint64_t i, uint64_t *len)
{
	if (a->type != MP_GGUF_STRING || i >= a->n)
		return NULL;
	const struct value *v = a->data;
	const uint64_t *offs = v->data;
	if (len)
		*len = offs[i + 1] - offs[i] - 1;
	return v->blob + offs[i];
}

int mp_gguf_array_sub(const struct mp_gguf_array *a, uint64_t i, struct mp_gguf_array *out)
{
	if (a->type != MP_GGUF_ARRAY || i >= a->n)
		return -MP_ENOTFOUND;
	array_of(&((const struct value *)a->data)[i], out);
	return 0;
}

uint64_t mp_gguf_tensor_count(const struct mp_gguf *g) { return g->n_tensors; }

const struct mp_gguf_tensor *mp_gguf_tensor_at(const struct mp_gguf *g, uint64_t i)
{
	return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct mp_gguf_tensor *mp_gguf_find_tensor(struct mp_gguf *g, const char *name)
{
	uint64_t s = hash_str(name) & g->hash_mask;
	while (g->hash[s]) {
		const struct mp_gguf_tensor *t = &g->tensors[g->hash[s] - 1];
		if (strcmp(t->name, name) == 0)
			return t;
		s = (s + 1) & g->hash_mask;
	}
	snprintf(g->err, sizeof g->err, "%s: tensor '%s' is missing", g->parts[0].path, name);
	return NULL;
}

const char *mp_gguf_expert_mat_name(enum mp_gguf_expert_mat which)
{
	static const char *n[3] = {"gate", "up", "down"};
	return (unsigned)which < 3 ? n[which] : "?";
}

int mp_gguf_expert_range(struct mp_gguf *g, uint32_t layer, uint32_t expert,
			 enum mp_gguf_expert_mat which, struct mp_gguf_range *out)
{
	char name[64];
	snprintf(name, sizeof name, "blk.%u.ffn_%s_exps.weight", layer, mp_gguf_expert_mat_name(which));
	const struct mp_gguf_tensor *t = mp_gguf_find_tensor(g, name);
	if (!t)
		return -MP_ENOTFOUND;
	if (t->n_dims != 3) {
		snprintf(g->err, sizeof g->err, "%s: tensor '%s' has %u dimensions, expected 3",
			 g->parts[t->part].path, name, t->n_dims);
		return -MP_EFORMAT;
	}
	if (expert >= t->ne[2]) {
		snprintf(g->err, sizeof g->err, "%s: tensor '%s' has %" PRIu64 " experts, no expert %u",
			 g->parts[t->part].path, name, t->ne[2], expert);
		return -MP_ENOTFOUND;
	}
	uint64_t slice = t->row_bytes * t->ne[1];    /* <= nbytes: no overflow */
	out->part = t->part;
	out->offset = t->offset + expert * slice;
	out->len = slice;
	return 0;
}
