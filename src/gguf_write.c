/*
 * gguf_write.c — the streaming GGUF writer.  Keys are encoded into one
 * growing buffer as they are set; tensor infos are kept until begin(), which
 * fixes every offset; data then flows through a buffered FILE per part.
 *
 * Invariants:
 *  1. Tensor i's data starts at offset[i] within its part, offset[first of
 *     part] = 0 and offset[i+1] = offset[i] + round_up(nbytes[i], align):
 *     the contiguous pattern llama.cpp's reader requires.
 *  2. cur/cur_done: the tensor being written and its bytes so far; when
 *     cur_done == nbytes[cur] the tensor's padding is written and cur moves on
 *     (opening the next part when that tensor belongs to it).
 *  3. Holes (mp_gguf_writer_skip) only move the file position forward; a
 *     part is truncated to its final position when closed, so its size is
 *     the layout's whatever its tail.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "gguf.h"
#include "gguf_write.h"
#include "types.h"

struct wtensor {
	char *name;
	uint32_t type;          /* GGUF type id */
	uint32_t n_dims;
	uint64_t ne[MP_GGUF_MAX_DIMS];
	uint64_t nbytes;        /* bytes of data */
	uint64_t offset;        /* bytes: relative to its part's data start */
	uint32_t part;
};

struct bytes {
	uint8_t *p;
	size_t n, cap;
};

struct mp_gguf_writer {
	char *prefix;           /* path, or the split prefix */
	int split;              /* write split names and keys */
	uint32_t align;         /* bytes */
	uint64_t max_bytes;     /* split size limit, 0 = none */
	uint32_t max_tensors;   /* split count limit, 0 = none */
	struct bytes kvs;       /* encoded KV records for part 0 */
	uint64_t n_kv;
	struct wtensor *t;      /* n_t tensors */
	uint64_t n_t, cap_t;
	uint32_t n_parts;       /* after begin */
	char **paths;           /* n_parts */
	/* ---- changes while writing ---- */
	int begun;
	FILE *f;                /* current part */
	uint32_t part;          /* current part index */
	uint64_t cur;           /* tensor being written */
	uint64_t cur_done;      /* bytes of it written */
	uint64_t written;       /* bytes written over all parts */
	int rc;                 /* first error, sticky */
	char err[MP_GGUF_ERR_LEN];
};

static int wfail(struct mp_gguf_writer *w, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int wfail(struct mp_gguf_writer *w, int rc, const char *fmt, ...)
{
	if (w->rc)
		return w->rc;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(w->err, sizeof w->err, fmt, ap);
	va_end(ap);
	w->rc = rc;
	return rc;
}

static int bput(struct mp_gguf_writer *w, struct bytes *b, const void *src, size_t n)
{
	if (!n)
		return 0;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->n + n)
			cap *= 2;
		uint8_t *np = mp_realloc(b->p, cap);
		if (!np)
			return wfail(w, -ENOMEM, "out of memory for metadata");
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
	return 0;
}

static int bstr(struct mp_gguf_writer *w, struct bytes *b, const char *s)
{
	uint64_t n = strlen(s);
	int rc = bput(w, b, &n, 8);
	return rc ? rc : bput(w, b, s, n);
}

int mp_gguf_writer_create(const char *path, const struct mp_gguf_write_opts *opts,
			  struct mp_gguf_writer **out)
{
	struct mp_gguf_writer *w = mp_calloc(1, sizeof *w);
	*out = NULL;
	if (!w)
		return -ENOMEM;
	struct mp_gguf_write_opts o = {0};
	if (opts)
		o = *opts;
	w->align = o.alignment ? o.alignment : MP_GGUF_DEFAULT_ALIGN;
	w->max_bytes = o.split_max_bytes;
	w->max_tensors = o.split_max_tensors;
	w->split = o.split || o.split_max_bytes || o.split_max_tensors;
	w->prefix = mp_strdup(path);
	if (!w->prefix) {
		mp_free(w);
		return -ENOMEM;
	}
	size_t n = strlen(w->prefix);
	if (w->split && n > 5 && strcmp(w->prefix + n - 5, ".gguf") == 0)
		w->prefix[n - 5] = 0;
	if (w->align & (w->align - 1) || w->align % 8) {
		mp_gguf_writer_destroy(w);
		return -MP_EARG;
	}
	*out = w;
	if (w->align != MP_GGUF_DEFAULT_ALIGN)
		return mp_gguf_writer_set_u32(w, "general.alignment", w->align);
	return 0;
}

void mp_gguf_writer_destroy(struct mp_gguf_writer *w)
{
	if (!w)
		return;
	if (w->f)
		fclose(w->f);
	for (uint64_t i = 0; i < w->n_t; i++)
		mp_free(w->t[i].name);
	mp_free(w->t);
	for (uint32_t i = 0; i < w->n_parts; i++)
		mp_free(w->paths[i]);
	mp_free(w->paths);
	mp_free(w->kvs.p);
	mp_free(w->prefix);
	mp_free(w);
}

const char *mp_gguf_writer_error(const struct mp_gguf_writer *w) { return w->err; }
uint32_t mp_gguf_writer_part_count(const struct mp_gguf_writer *w) { return w->n_parts; }
uint64_t mp_gguf_writer_bytes(const struct mp_gguf_writer *w) { return w->written; }

const char *mp_gguf_writer_part_path(const struct mp_gguf_writer *w, uint32_t part)
{
	return part < w->n_parts ? w->paths[part] : NULL;
}

/* ---- metadata ---------------------------------------------------------------- */

int mp_gguf_writer_set_raw(struct mp_gguf_writer *w, const char *key, uint32_t vtype,
			   const void *bytes, size_t len)
{
	int rc;
	if (w->rc)
		return w->rc;
	if (w->begun)
		return wfail(w, -MP_EARG, "key '%s' set after begin", key);
	if (!*key || strlen(key) > 65535)
		return wfail(w, -MP_EARG, "key '%s': empty or too long", key);
	if ((rc = bstr(w, &w->kvs, key)) || (rc = bput(w, &w->kvs, &vtype, 4)) ||
	    (rc = bput(w, &w->kvs, bytes, len)))
		return rc;
	w->n_kv++;
	return 0;
}

int mp_gguf_writer_set_u32(struct mp_gguf_writer *w, const char *key, uint32_t v)
{
	return mp_gguf_writer_set_raw(w, key, MP_GGUF_U32, &v, 4);
}

int mp_gguf_writer_set_i32(struct mp_gguf_writer *w, const char *key, int32_t v)
{
	return mp_gguf_writer_set_raw(w, key, MP_GGUF_I32, &v, 4);
}

int mp_gguf_writer_set_u64(struct mp_gguf_writer *w, const char *key, uint64_t v)
{
	return mp_gguf_writer_set_raw(w, key, MP_GGUF_U64, &v, 8);
}

int mp_gguf_writer_set_f32(struct mp_gguf_writer *w, const char *key, float v)
{
	return mp_gguf_writer_set_raw(w, key, MP_GGUF_F32, &v, 4);
}

int mp_gguf_writer_set_bool(struct mp_gguf_writer *w, const char *key, int v)
{
	uint8_t b = v != 0;
	return mp_gguf_writer_set_raw(w, key, MP_GGUF_BOOL, &b, 1);
}

int mp_gguf_writer_set_str(struct mp_gguf_writer *w, const char *key, const char *v)
{
	int rc = mp_gguf_writer_set_raw(w, key, MP_GGUF_STRING, NULL, 0);
	return rc ? rc : bstr(w, &w->kvs, v);
}

static const uint8_t elem_size[MP_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

int mp_gguf_writer_set_array(struct mp_gguf_writer *w, const char *key, uint32_t vtype,
			     const void *data, uint64_t n)
{
	uint64_t bytes;
	if (vtype >= MP_GGUF_VTYPE_COUNT || !elem_size[vtype])
		return wfail(w, -MP_EARG, "key '%s': %s arrays need their own setter", key,
			     mp_gguf_vtype_name(vtype));
	if (__builtin_mul_overflow(n, (uint64_t)elem_size[vtype], &bytes) || bytes > SIZE_MAX)
		return wfail(w, -MP_EARG, "key '%s': array too large", key);
	int rc = mp_gguf_writer_set_raw(w, key, MP_GGUF_ARRAY, &vtype, 4);
	if (rc || (rc = bput(w, &w->kvs, &n, 8)))
		return rc;
	return bput(w, &w->kvs, data, (size_t)bytes);
}

int mp_gguf_writer_set_str_array(struct mp_gguf_writer *w, const char *key,
				 const char *const *strs, uint64_t n)
{
	uint32_t et = MP_GGUF_STRING;
	int rc = mp_gguf_writer_set_raw(w, key, MP_GGUF_ARRAY, &et, 4);
	if (rc || (rc = bput(w, &w->kvs, &n, 8)))
		return rc;
	for (uint64_t i = 0; i < n && !rc; i++)
		rc = bstr(w, &w->kvs, strs[i]);
	return rc;
}

/* ---- tensors ----------------------------------------------------------------- */

int mp_gguf_writer_add_tensor(struct mp_gguf_writer *w, const char *name, uint32_t type,
			      uint32_t n_dims, const uint64_t *ne)
{
	if (w->rc)
		return w->rc;
	if (w->begun)
		return wfail(w, -MP_EARG, "tensor '%s' added after begin", name);
	size_t nl = strlen(name);
	if (!nl || nl > MP_GGUF_MAX_NAME)
		return wfail(w, -MP_EARG, "tensor name '%s': 1 to %d bytes", name, MP_GGUF_MAX_NAME);
	if (n_dims > MP_GGUF_MAX_DIMS)
		return wfail(w, -MP_EARG, "tensor '%s': %u dimensions", name, n_dims);
	for (uint64_t i = 0; i < w->n_t; i++)
		if (strcmp(w->t[i].name, name) == 0)
			return wfail(w, -MP_EARG, "tensor '%s' added twice", name);
	struct wtensor t = {.type = type, .n_dims = n_dims};
	uint64_t rows = 1, rb;
	for (uint32_t d = 0; d < MP_GGUF_MAX_DIMS; d++) {
		t.ne[d] = d < n_dims ? ne[d] : 1;
		if (d && __builtin_mul_overflow(rows, t.ne[d], &rows))
			return wfail(w, -MP_EARG, "tensor '%s': size overflows", name);
	}
	if (mp_type_row_bytes(type, t.ne[0], &rb) || __builtin_mul_overflow(rows, rb, &t.nbytes))
		return wfail(w, -MP_EARG, "tensor '%s': ne[0] = %" PRIu64 " does not fit type %s",
			     name, t.ne[0], mp_type_name(type));
	if (w->n_t == w->cap_t) {
		uint64_t cap = w->cap_t ? 2 * w->cap_t : 64;
		struct wtensor *nt = mp_realloc(w->t, (size_t)cap * sizeof *nt);
		if (!nt)
			return wfail(w, -ENOMEM, "out of memory");
		w->t = nt;
		w->cap_t = cap;
	}
	t.name = mp_strdup(name);
	if (!t.name)
		return wfail(w, -ENOMEM, "out of memory");
	w->t[w->n_t++] = t;
	return 0;
}

/* ---- writing ----------------------------------------------------------------- */

static uint64_t padded(const struct mp_gguf_writer *w, uint64_t n)
{
	return (n + w->align - 1) / w->align * w->align;
}

static int fput(struct mp_gguf_writer *w, const void *p, size_t n)
{
	if (n && fwrite(p, 1, n, w->f) != n)
		return wfail(w, -errno ? -errno : -EIO, "%s: write failed: %s", w->paths[w->part],
			     strerror(errno));
	w->written += n;
	return 0;
}

static int fzeros(struct mp_gguf_writer *w, uint64_t n)
{
	static const uint8_t z[256];
	int rc = 0;
	while (n && !rc) {
		size_t k = n > sizeof z ? sizeof z : (size_t)n;
		rc = fput(w, z, k);
		n -= k;
	}
	return rc;
}

static int close_part(struct mp_gguf_writer *w)
{
	if (!w->f)
		return 0;
	/* A part that ends in a hole: the seek alone does not extend the file. */
	off_t end = ftello(w->f);
	int bad = ferror(w->f) || fflush(w->f) != 0 || end < 0 ||
		  ftruncate(fileno(w->f), end) != 0;
	int rc = fclose(w->f);
	w->f = NULL;
	if (bad || rc)
		return wfail(w, -EIO, "%s: write failed: %s", w->paths[w->part], strerror(errno));
	return 0;
}

/* Opens part p and writes its header: split keys first (as gguf-split does),
 * then, in part 0, the model's keys; the part's tensor infos; padding. */
static int open_part(struct mp_gguf_writer *w, uint32_t p)
{
	int rc;
	w->part = p;
	w->f = fopen(w->paths[p], "wb");
	if (!w->f)
		return wfail(w, -errno, "%s: cannot create: %s", w->paths[p], strerror(errno));
	setvbuf(w->f, NULL, _IOFBF, 1 << 20);
	uint64_t first = 0, n = 0;
	for (uint64_t i = 0; i < w->n_t; i++)
		if (w->t[i].part == p) {
			if (!n)
				first = i;
			n++;
		}
	struct bytes h = {0};
	uint32_t magic = MP_GGUF_MAGIC, version = 3;
	uint64_t nkv = (p == 0 ? w->n_kv : 0) + (w->split ? 3 : 0);
	if ((rc = bput(w, &h, &magic, 4)) || (rc = bput(w, &h, &version, 4)) ||
	    (rc = bput(w, &h, &n, 8)) || (rc = bput(w, &h, &nkv, 8)))
		goto out;
	if (w->split) {
		uint16_t no = (uint16_t)p, count = (uint16_t)w->n_parts;
		int32_t total = (int32_t)w->n_t;
		uint32_t tu16 = MP_GGUF_U16, ti32 = MP_GGUF_I32;
		if ((rc = bstr(w, &h, "split.no")) || (rc = bput(w, &h, &tu16, 4)) ||
		    (rc = bput(w, &h, &no, 2)) || (rc = bstr(w, &h, "split.count")) ||
		    (rc = bput(w, &h, &tu16, 4)) || (rc = bput(w, &h, &count, 2)) ||
		    (rc = bstr(w, &h, "split.tensors.count")) || (rc = bput(w, &h, &ti32, 4)) ||
		    (rc = bput(w, &h, &total, 4)))
			goto out;
	}
	if (p == 0 && (rc = bput(w, &h, w->kvs.p, w->kvs.n)))
		goto out;
	for (uint64_t i = first; i < first + n; i++) {
		const struct wtensor *t = &w->t[i];
		if ((rc = bstr(w, &h, t->name)) || (rc = bput(w, &h, &t->n_dims, 4)) ||
		    (rc = bput(w, &h, t->ne, 8 * (size_t)t->n_dims)) || (rc = bput(w, &h, &t->type, 4)) ||
		    (rc = bput(w, &h, &t->offset, 8)))
			goto out;
	}
	if ((rc = fput(w, h.p, h.n)))
		goto out;
	if (n)
		rc = fzeros(w, padded(w, h.n) - h.n);
out:
	mp_free(h.p);
	return rc;
}

int mp_gguf_writer_begin(struct mp_gguf_writer *w)
{
	if (w->rc)
		return w->rc;
	if (w->begun)
		return wfail(w, -MP_EARG, "begin called twice");
	w->begun = 1;
	/* Parts: gguf-split's rule (a new part when the next tensor would pass a limit). */
	uint32_t part = 0;
	uint64_t bytes = 0, count = 0;
	for (uint64_t i = 0; i < w->n_t; i++) {
		struct wtensor *t = &w->t[i];
		uint64_t sz = padded(w, t->nbytes);
		if (count && ((w->max_bytes && bytes + sz > w->max_bytes) ||
			      (w->max_tensors && count + 1 > w->max_tensors))) {
			part++;
			bytes = count = 0;
		}
		t->part = part;
		t->offset = bytes;
		bytes += sz;
		count++;
	}
	w->n_parts = part + 1;
	if (w->n_parts > MP_GGUF_MAX_PARTS || w->n_t > INT32_MAX)
		return wfail(w, -MP_EARG, "%u parts / %" PRIu64 " tensors: too many", w->n_parts, w->n_t);
	w->paths = mp_calloc(w->n_parts, sizeof *w->paths);
	if (!w->paths)
		return wfail(w, -ENOMEM, "out of memory");
	for (uint32_t p = 0; p < w->n_parts; p++) {
		size_t len = strlen(w->prefix) + 32;
		w->paths[p] = mp_malloc(len);
		if (!w->paths[p])
			return wfail(w, -ENOMEM, "out of memory");
		if (w->split)
			snprintf(w->paths[p], len, "%s-%05u-of-%05u.gguf", w->prefix, p + 1, w->n_parts);
		else
			snprintf(w->paths[p], len, "%s", w->prefix);
	}
	w->cur = 0;
	w->cur_done = 0;
	int rc = open_part(w, 0);
	if (rc)
		return rc;
	/* Zero-byte tensors at the start are complete already. */
	return mp_gguf_writer_write(w, NULL, 0);
}

/* Moves the file position n bytes forward without writing: a hole in a
 * sparse file (the bytes read back as zeros).  close_part() extends the file
 * over a hole at its end. */
static int fskip(struct mp_gguf_writer *w, uint64_t n)
{
	if (!n)
		return 0;
	if (n > INT64_MAX || fseeko(w->f, (off_t)n, SEEK_CUR) != 0)
		return wfail(w, -errno ? -errno : -EIO, "%s: seek failed: %s", w->paths[w->part],
			     strerror(errno));
	w->written += n;
	return 0;
}

/* Appends len bytes to the current tensor(s): data, or a hole when data is
 * NULL (invariant 2). */
static int advance(struct mp_gguf_writer *w, const uint8_t *p, uint64_t len)
{
	int rc;
	if (w->rc)
		return w->rc;
	if (!w->begun)
		return wfail(w, -MP_EARG, "data written before begin");
	for (;;) {
		if (w->cur < w->n_t && w->t[w->cur].part != w->part) {
			if ((rc = close_part(w)) || (rc = open_part(w, w->t[w->cur].part)))
				return rc;
		}
		if (w->cur >= w->n_t) {
			if (len)
				return wfail(w, -MP_EARG, "%" PRIu64 " bytes written beyond the last tensor",
					     len);
			return 0;
		}
		struct wtensor *t = &w->t[w->cur];
		uint64_t room = t->nbytes - w->cur_done;
		uint64_t k = len < room ? len : room;
		if (k && (rc = p ? fput(w, p, (size_t)k) : fskip(w, k)))
			return rc;
		if (p)
			p += k;
		len -= k;
		w->cur_done += k;
		if (w->cur_done < t->nbytes)
			return 0;
		if ((rc = fzeros(w, padded(w, t->nbytes) - t->nbytes)))
			return rc;
		w->cur++;
		w->cur_done = 0;
		if (!len && w->cur < w->n_t && w->t[w->cur].nbytes)
			return 0;
	}
}

int mp_gguf_writer_write(struct mp_gguf_writer *w, const void *data, size_t len)
{
	static const uint8_t none;
	return advance(w, data ? data : &none, len);
}

int mp_gguf_writer_skip(struct mp_gguf_writer *w, uint64_t len)
{
	return advance(w, NULL, len);
}

int64_t mp_gguf_writer_current(const struct mp_gguf_writer *w, uint64_t *left)
{
	if (!w->begun || w->cur >= w->n_t) {
		if (left)
			*left = 0;
		return -1;
	}
	if (left)
		*left = w->t[w->cur].nbytes - w->cur_done;
	return (int64_t)w->cur;
}

int mp_gguf_writer_finish(struct mp_gguf_writer *w)
{
	if (w->rc)
		return w->rc;
	if (!w->begun && mp_gguf_writer_begin(w))
		return w->rc;
	if (w->cur < w->n_t)
		return wfail(w, -MP_EARG, "tensor '%s' is incomplete (%" PRIu64 " of %" PRIu64 " bytes)",
			     w->t[w->cur].name, w->cur_done, w->t[w->cur].nbytes);
	return close_part(w);
}
