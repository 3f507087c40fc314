/*
 * evaluate.c — perplexity, the logits recorder and the comparison of two
 * logit files (see evaluate.h; the file format is docs/logits-format.md).
 *
 * Invariants:
 *  1. A recorder's file is valid JSON once mp_eval_rec_close returned 0: the
 *     header object is written at create, each position is one compact JSON
 *     object on its own line, and close writes the closing brackets.
 *  2. The top-K list of a position is sorted by logit descending, ties to the
 *     lower id, and always holds min(K, n_vocab) entries; argmax and margin are
 *     computed from the top two whatever K is.
 *  3. mp_eval_compare holds logit differences to the tolerance only at
 *     positions before the first routing flip of their sequence (a run of
 *     positions from pos 0 on, one cache): a flip changes the hidden state of
 *     that position and, through the cache, of every later one in it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "evaluate.h"
#include "file.h"
#include "sampler.h"
#include "tokenizer.h"

/* Real numbers keep 9 significant digits: enough to round-trip a float. */
#define JSON_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9))

/* ---- perplexity ------------------------------------------------------------------ */

double mp_eval_lse(const float *logits, uint32_t n)
{
	float mx = -INFINITY;
	for (uint32_t i = 0; i < n; i++)
		if (logits[i] > mx)
			mx = logits[i];
	if (!isfinite(mx))
		return mx;
	double sum = 0;
	for (uint32_t i = 0; i < n; i++)
		sum += exp((double)logits[i] - (double)mx);
	return (double)mx + log(sum);
}

double mp_eval_ppl_add(struct mp_eval_ppl *p, const float *logits, uint32_t n_vocab, int32_t target)
{
	double nll = mp_eval_lse(logits, n_vocab) - (double)logits[target];
	p->nll += nll;
	p->nll2 += nll * nll;
	p->count++;
	return nll;
}

double mp_eval_ppl_value(const struct mp_eval_ppl *p, double *err)
{
	*err = 0;
	if (!p->count)
		return NAN;
	double mean = p->nll / (double)p->count;
	double ppl = exp(mean);
	double var = p->nll2 / (double)p->count - mean * mean;
	if (p->count > 1 && var > 0)
		*err = ppl * sqrt(var / (double)(p->count - 1));
	return ppl;
}

/* ---- the logits recorder -------------------------------------------------------- */

struct mp_eval_rec {
	FILE *f;                     /* the output file */
	char *path;                  /* its name, for messages */
	uint32_t top_k;              /* entries written per position */
	uint32_t n_vocab, n_layer;   /* logits and routes per position */
	uint64_t n;                  /* positions written */
	int32_t *ids;                /* [max(top_k, 2)] scratch */
	float *vals;                 /* [max(top_k, 2)] scratch */
	int werr;                    /* first write error (errno), 0: none */
};

/* The k largest logits, descending, ties to the lower id (invariant 2). */
static uint32_t top_k(const float *logits, uint32_t n, uint32_t k, int32_t *ids, float *vals)
{
	uint32_t c = 0;
	for (uint32_t i = 0; i < n; i++) {
		float v = logits[i];
		if (c == k && !(v > vals[k - 1]))
			continue;
		uint32_t j = c < k ? c++ : k - 1;
		while (j > 0 && v > vals[j - 1]) {
			vals[j] = vals[j - 1];
			ids[j] = ids[j - 1];
			j--;
		}
		vals[j] = v;
		ids[j] = (int32_t)i;
	}
	return c;
}

/* json_real refuses NaN and infinities: those become null. */
static json_t *real(double v)
{
	return isfinite(v) ? json_real(v) : json_null();
}

int mp_eval_rec_create(const struct mp_eval_rec_config *cfg, struct mp_eval_rec **out,
		       char *err, size_t err_len)
{
	*out = NULL;
	if (cfg->top_k < 1 || cfg->top_k > MP_EVAL_MAX_TOP || cfg->n_vocab < 2) {
		snprintf(err, err_len, "%s: top-K %u must be from 1 to %u (vocabulary %u)", cfg->path,
			 cfg->top_k, MP_EVAL_MAX_TOP, cfg->n_vocab);
		return -MP_EARG;
	}
	struct mp_eval_rec *r = mp_calloc(1, sizeof *r);
	if (!r)
		goto nomem;
	r->top_k = cfg->top_k < cfg->n_vocab ? cfg->top_k : cfg->n_vocab;
	r->n_vocab = cfg->n_vocab;
	r->n_layer = cfg->n_layer;
	uint32_t k = r->top_k < 2 ? 2 : r->top_k;
	r->ids = mp_malloc_array(k, sizeof *r->ids);
	r->vals = mp_malloc_array(k, sizeof *r->vals);
	r->path = mp_strdup(cfg->path);
	if (!r->ids || !r->vals || !r->path)
		goto nomem;
	json_t *h = json_object();
	json_object_set_new(h, "format", json_string(MP_EVAL_FORMAT));
	json_object_set_new(h, "version", json_integer(MP_EVAL_VERSION));
	json_object_set_new(h, "source", json_string(cfg->source ? cfg->source : "unknown"));
	if (cfg->model)
		json_object_set_new(h, "model", json_string(cfg->model));
	if (cfg->settings)
		json_object_set_new(h, "settings", json_string(cfg->settings));
	json_object_set_new(h, "n_vocab", json_integer(cfg->n_vocab));
	json_object_set_new(h, "n_layer", json_integer(cfg->n_layer));
	json_object_set_new(h, "top_k", json_integer(r->top_k));
	char *text = json_dumps(h, JSON_FLAGS);
	json_decref(h);
	if (!text)
		goto nomem;
	r->f = fopen(cfg->path, "w");
	if (!r->f) {
		int e = errno;
		snprintf(err, err_len, "%s: %s", cfg->path, strerror(e));
		free(text);
		mp_eval_rec_close(r, NULL, 0);
		return -e;
	}
	/* the header object without its closing brace, then the positions */
	fprintf(r->f, "%.*s,\"positions\":[", (int)strlen(text) - 1, text);
	free(text);
	*out = r;
	return 0;
nomem:
	snprintf(err, err_len, "%s: out of memory", cfg->path);
	if (r) {
		mp_free(r->ids);
		mp_free(r->vals);
		mp_free(r->path);
		mp_free(r);
	}
	return -ENOMEM;
}

static json_t *route_json(uint32_t layer, const struct mp_route *rt)
{
	json_t *o = json_object(), *ex = json_array();
	json_object_set_new(o, "layer", json_integer(layer));
	for (uint32_t i = 0; i < rt->n; i++)
		json_array_append_new(ex, json_integer(rt->expert[i]));
	json_object_set_new(o, "experts", ex);
	if (!isnan(rt->weight[0])) {
		json_t *w = json_array();
		for (uint32_t i = 0; i < rt->n; i++)
			json_array_append_new(w, real(rt->weight[i]));
		json_object_set_new(o, "weights", w);
	}
	json_object_set_new(o, "margin", real(rt->margin));
	return o;
}

int mp_eval_rec_add(struct mp_eval_rec *r, uint32_t pos, int32_t token, const float *logits,
		    const struct mp_route *const *routes, const struct mp_eval_target *t)
{
	uint32_t k = r->top_k < 2 ? 2 : r->top_k;
	top_k(logits, r->n_vocab, k, r->ids, r->vals);
	json_t *o = json_object(), *top = json_array(), *moe = json_array();
	json_object_set_new(o, "i", json_integer((json_int_t)r->n));
	json_object_set_new(o, "pos", json_integer(pos));
	json_object_set_new(o, "token", json_integer(token));
	json_object_set_new(o, "argmax", json_integer(r->ids[0]));
	json_object_set_new(o, "margin", real((double)r->vals[0] - (double)r->vals[1]));
	double lse = mp_eval_lse(logits, r->n_vocab);
	json_object_set_new(o, "lse", real(lse));
	if (t && t->id >= 0 && (uint32_t)t->id < r->n_vocab) {
		json_object_set_new(o, "target", json_integer(t->id));
		json_object_set_new(o, "logprob", real((double)logits[t->id] - lse));
		json_object_set_new(o, "scored", json_boolean(t->scored));
	}
	for (uint32_t i = 0; i < r->top_k; i++) {
		json_t *pair = json_array();
		json_array_append_new(pair, json_integer(r->ids[i]));
		json_array_append_new(pair, real(r->vals[i]));
		json_array_append_new(top, pair);
	}
	json_object_set_new(o, "top", top);
	for (uint32_t L = 0; routes && L < r->n_layer; L++)
		if (routes[L] && routes[L]->n)
			json_array_append_new(moe, route_json(L, routes[L]));
	json_object_set_new(o, "moe", moe);
	char *text = json_dumps(o, JSON_FLAGS);
	json_decref(o);
	if (!text)
		return -ENOMEM;
	if (fprintf(r->f, "%s\n%s", r->n ? "," : "", text) < 0 && !r->werr)
		r->werr = errno ? errno : EIO;
	free(text);
	r->n++;
	return r->werr ? -r->werr : 0;
}

/* Records position pos with the model's routing of it (the last step's, or
 * inside a prefill callback that position's). */
static int rec_at(struct mp_eval_rec *r, const struct mp_model *m, uint32_t pos, int32_t token,
		  const float *logits, const struct mp_eval_target *t)
{
	const struct mp_route *routes[MP_MODEL_MAX_LAYERS];
	uint32_t n = r->n_layer < MP_MODEL_MAX_LAYERS ? r->n_layer : MP_MODEL_MAX_LAYERS;
	for (uint32_t L = 0; L < n; L++)
		routes[L] = mp_model_route(m, L);
	return mp_eval_rec_add(r, pos, token, logits, routes, t);
}

int mp_eval_rec_step(struct mp_eval_rec *r, const struct mp_model *m, int32_t token,
		     const float *logits, const struct mp_eval_target *t)
{
	uint32_t pos = mp_model_pos(m);
	return rec_at(r, m, pos ? pos - 1 : 0, token, logits, t);
}

int mp_eval_rec_close(struct mp_eval_rec *r, char *err, size_t err_len)
{
	if (!r)
		return 0;
	int rc = 0;
	if (r->f) {
		fputs("\n]}\n", r->f);
		if (ferror(r->f) && !r->werr)
			r->werr = EIO;
		if (fclose(r->f) != 0 && !r->werr)
			r->werr = errno ? errno : EIO;
		if (r->werr) {
			rc = -r->werr;
			if (err)
				snprintf(err, err_len, "%s: %s", r->path, strerror(r->werr));
		}
	}
	mp_free(r->ids);
	mp_free(r->vals);
	mp_free(r->path);
	mp_free(r);
	return rc;
}

/* ---- perplexity over a token sequence --------------------------------------------- */

/* What the prefill callback of one perplexity chunk needs. */
struct ppl_ctx {
	const struct mp_model *m;
	const struct mp_eval_ppl_opts *o;
	struct mp_eval_ppl *acc;
	const int32_t *t;         /* the chunk's tokens */
	uint32_t n_vocab;
	uint32_t first;           /* first scored position */
	char err[128];            /* a --logits-out failure */
};

/* Position j of a chunk: recorded, and scored from the second half on. */
static int ppl_pos(void *ctx, uint32_t j, const float *logits)
{
	struct ppl_ctx *c = ctx;
	struct mp_eval_target tg = { c->t[j + 1], j >= c->first };
	if (c->o->rec) {
		int32_t in = j == 0 && c->o->bos >= 0 ? c->o->bos : c->t[j];
		int rc = rec_at(c->o->rec, c->m, j, in, logits, &tg);
		if (rc < 0) {
			snprintf(c->err, sizeof c->err, "--logits-out: %s", mp_strerror(rc));
			return rc;
		}
	}
	if (j >= c->first)
		mp_eval_ppl_add(c->acc, logits, c->n_vocab, c->t[j + 1]);
	return 0;
}

int mp_eval_perplexity(struct mp_model *m, uint32_t n_vocab, const int32_t *ids, size_t n,
		       const struct mp_eval_ppl_opts *o, struct mp_eval_ppl_result *res,
		       char *err, size_t err_len)
{
	memset(res, 0, sizeof *res);
	uint32_t n_ctx = o->n_ctx;
	if (n_ctx < 4 || n < n_ctx) {
		snprintf(err, err_len, "the text has %zu tokens; perplexity needs at least one chunk "
			 "of --ctx-size %u tokens (give a longer text or a smaller -c, at least 4)",
			 n, n_ctx);
		return -MP_EARG;
	}
	for (size_t i = 0; i < n; i++)
		if (ids[i] < 0 || (uint32_t)ids[i] >= n_vocab) {
			snprintf(err, err_len, "token %zu: id %d is outside the vocabulary (%u)", i, ids[i],
				 n_vocab);
			return -MP_EARG;
		}
	struct mp_eval_ppl acc = { 0, 0, 0 };
	uint64_t chunks = n / n_ctx;
	uint32_t *in = mp_malloc_array(n_ctx, sizeof *in);
	if (!in) {
		snprintf(err, err_len, "out of memory");
		return -ENOMEM;
	}
	struct ppl_ctx pc = { m, o, &acc, NULL, n_vocab, n_ctx / 2, "" };
	for (uint64_t c = 0; c < chunks; c++) {
		const int32_t *t = ids + c * n_ctx;
		mp_model_reset(m);
		/* logits at position j predict token j + 1: the last one predicts nothing */
		for (uint32_t j = 0; j + 1 < n_ctx; j++)
			in[j] = (uint32_t)(j == 0 && o->bos >= 0 ? o->bos : t[j]);
		pc.t = t;
		const float *last;
		uint64_t t0 = mp_clock_now_ns();
		int rc = mp_model_prefill(m, in, n_ctx - 1, ppl_pos, &pc, &last);
		res->ns += mp_clock_now_ns() - t0;
		if (rc < 0) {
			snprintf(err, err_len, "%s", pc.err[0] ? pc.err : mp_model_error(m));
			mp_free(in);
			return rc;
		}
		res->evaluated += n_ctx - 1;
		double e;
		double ppl = mp_eval_ppl_value(&acc, &e);
		if (o->out) {
			fprintf(o->out, "[%llu]%.4f,", (unsigned long long)c + 1, ppl);
			fflush(o->out);
		}
	}
	mp_free(in);
	res->ppl = mp_eval_ppl_value(&acc, &res->err);
	res->chunks = chunks;
	res->scored = acc.count;
	if (o->out)
		fprintf(o->out, "\nFinal estimate: PPL = %.4f +/- %.5f\n", res->ppl, res->err);
	return 0;
}

/* ---- token lists ------------------------------------------------------------------ */

int mp_eval_parse_ids(const char *spec, uint32_t n_vocab, int32_t **ids, char *err, size_t err_len)
{
	*ids = NULL;
	char *owned = NULL;
	const char *s = spec;
	if (spec[0] == '@') {
		if (!(owned = mp_file_read(spec + 1, NULL, err, err_len)))
			return -MP_EARG;
		s = owned;
	}
	size_t cap = strlen(s) / 2 + 1, n = 0;
	int32_t *v = mp_malloc_array(cap, sizeof *v);
	int rc = -ENOMEM;
	if (!v) {
		snprintf(err, err_len, "--force-tokens: out of memory");
		goto fail;
	}
	rc = -MP_EARG;
	for (const char *p = s;;) {
		while (*p == ',' || *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p)
			break;
		char *end;
		errno = 0;
		long long x = strtoll(p, &end, 10);
		if (end == p || errno || x < 0 || (uint64_t)x >= n_vocab ||
		    (*end && !strchr(", \t\r\n", *end))) {
			snprintf(err, err_len, "--force-tokens %s: \"%.20s\" is not a token id from 0 to %u",
				 spec, p, n_vocab - 1);
			goto fail;
		}
		v[n++] = (int32_t)x;   /* n < cap: every id takes at least 2 bytes but the last */
		p = end;
	}
	if (!n) {
		snprintf(err, err_len, "--force-tokens %s: no token ids", spec);
		goto fail;
	}
	mp_free(owned);
	*ids = v;
	return (int)n;
fail:
	mp_free(owned);
	mp_free(v);
	return rc;
}

/* ---- comparing two logit files ------------------------------------------------- */

struct cmp_file {
	json_t *root;            /* the whole document */
	json_t *pos;             /* its positions array */
	const char *path;
};

static int load(const char *path, struct cmp_file *f, char *err, size_t err_len)
{
	json_error_t je;
	f->path = path;
	f->root = json_load_file(path, 0, &je);
	if (!f->root) {
		snprintf(err, err_len, "%s:%d: %s", path, je.line, je.text);
		return -MP_EFORMAT;
	}
	const char *fmt = json_string_value(json_object_get(f->root, "format"));
	json_t *ver = json_object_get(f->root, "version");
	f->pos = json_object_get(f->root, "positions");
	if (!fmt || strcmp(fmt, MP_EVAL_FORMAT) != 0 || !json_is_integer(ver) || !json_is_array(f->pos)) {
		snprintf(err, err_len, "%s: not a %s file (expected \"format\", \"version\" and "
			 "\"positions\")", path, MP_EVAL_FORMAT);
		return -MP_EFORMAT;
	}
	if (json_integer_value(ver) != MP_EVAL_VERSION) {
		snprintf(err, err_len, "%s: version %lld; this build reads version %d", path,
			 (long long)json_integer_value(ver), MP_EVAL_VERSION);
		return -MP_EVERSION;
	}
	return 0;
}

static double num(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);
	return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The largest logit difference two positions show: over ids in both top
 * lists |a − b|; an id in one list only differs at least by how far it lies
 * above the other list's smallest entry; and the log-sum-exp difference. */
static double pos_diff(json_t *pa, json_t *pb)
{
	json_t *ta = json_object_get(pa, "top"), *tb = json_object_get(pb, "top");
	size_t na = json_array_size(ta), nb = json_array_size(tb);
	double d = fabs(num(pa, "lse") - num(pb, "lse"));
	if (isnan(d))
		d = 0;
	double min_a = INFINITY, min_b = INFINITY;
	for (size_t i = 0; i < na; i++)
		min_a = fmin(min_a, json_number_value(json_array_get(json_array_get(ta, i), 1)));
	for (size_t j = 0; j < nb; j++)
		min_b = fmin(min_b, json_number_value(json_array_get(json_array_get(tb, j), 1)));
	for (int side = 0; side < 2; side++) {
		json_t *x = side ? tb : ta, *y = side ? ta : tb;
		size_t nx = side ? nb : na, ny = side ? na : nb;
		double min_y = side ? min_a : min_b;
		for (size_t i = 0; i < nx; i++) {
			json_int_t id = json_integer_value(json_array_get(json_array_get(x, i), 0));
			double lx = json_number_value(json_array_get(json_array_get(x, i), 1));
			size_t j = 0;
			while (j < ny && json_integer_value(json_array_get(json_array_get(y, j), 0)) != id)
				j++;
			if (j < ny)
				d = fmax(d, fabs(lx - json_number_value(json_array_get(json_array_get(y, j), 1))));
			else if (ny && lx > min_y)
				d = fmax(d, lx - min_y);
		}
	}
	return d;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

/* Expert ids of a "moe" entry, sorted, into e[MP_ROUTER_MAX_USED]. */
static size_t experts(json_t *entry, uint32_t *e)
{
	json_t *ex = json_object_get(entry, "experts");
	size_t n = json_array_size(ex);
	if (n > MP_ROUTER_MAX_USED)
		n = MP_ROUTER_MAX_USED;
	for (size_t i = 0; i < n; i++)
		e[i] = (uint32_t)json_integer_value(json_array_get(ex, i));
	qsort(e, n, sizeof *e, cmp_u32);
	return n;
}

/* The lowest layer whose chosen set differs, or −1; its reference margin in *margin. */
static int64_t flipped_layer(json_t *pa, json_t *pb, double *margin)
{
	json_t *ma = json_object_get(pa, "moe"), *mb = json_object_get(pb, "moe");
	for (size_t i = 0; i < json_array_size(ma); i++) {
		json_t *ea = json_array_get(ma, i), *eb = NULL;
		json_int_t layer = json_integer_value(json_object_get(ea, "layer"));
		for (size_t j = 0; j < json_array_size(mb) && !eb; j++)
			if (json_integer_value(json_object_get(json_array_get(mb, j), "layer")) == layer)
				eb = json_array_get(mb, j);
		if (!eb)
			continue;   /* the other side does not report this layer */
		uint32_t xa[MP_ROUTER_MAX_USED], xb[MP_ROUTER_MAX_USED];
		size_t na = experts(ea, xa), nb = experts(eb, xb);
		if (na != nb || memcmp(xa, xb, na * sizeof *xa) != 0) {
			*margin = num(ea, "margin");
			return layer;
		}
	}
	return -1;
}

int mp_eval_compare(const char *path_a, const char *path_b, const struct mp_eval_cmp_opts *o,
		    struct mp_eval_cmp *r, char *err, size_t err_len)
{
	memset(r, 0, sizeof *r);
	r->diverge = r->first_flip = r->max_diff_at = -1;
	r->first_flip_margin = NAN;
	struct cmp_file a = { NULL, NULL, NULL }, b = { NULL, NULL, NULL };
	int rc = load(path_a, &a, err, err_len);
	if (rc == 0)
		rc = load(path_b, &b, err, err_len);
	if (rc < 0)
		goto out;
	r->n_a = json_array_size(a.pos);
	r->n_b = json_array_size(b.pos);
	uint64_t n = r->n_a < r->n_b ? r->n_a : r->n_b;
	double dsum = 0, dsum2 = 0, sum_all = 0;
	int seq_flipped = 0;
	for (uint64_t i = 0; i < n; i++) {
		json_t *pa = json_array_get(a.pos, i), *pb = json_array_get(b.pos, i);
		if (num(pa, "token") != num(pb, "token") || num(pa, "pos") != num(pb, "pos")) {
			r->diverge = (int64_t)i;
			break;
		}
		r->aligned++;
		if (num(pa, "argmax") == num(pb, "argmax"))
			r->argmax_same++;
		if (json_is_true(json_object_get(pa, "scored")) && json_is_true(json_object_get(pb, "scored")) &&
		    num(pa, "target") == num(pb, "target")) {
			double d = num(pb, "logprob") - num(pa, "logprob");
			if (!isnan(d)) {
				r->paired++;
				dsum += d;
				dsum2 += d * d;
			}
		}
		if (num(pa, "pos") == 0 || i == 0) {   /* a new sequence: a clean cache */
			r->seqs++;
			seq_flipped = 0;
		}
		double d = pos_diff(pa, pb);
		r->max_diff_all = fmax(r->max_diff_all, d);
		sum_all += d;
		double margin = NAN;
		int64_t layer = flipped_layer(pa, pb, &margin);
		if (layer >= 0) {
			r->flips++;
			if (seq_flipped)
				continue;
			seq_flipped = 1;
			r->seq_flips++;
			int excused = margin < o->margin;   /* NaN: not excused */
			if (!excused)
				r->unexcused++;
			if (r->first_flip < 0 || (!excused && r->unexcused == 1)) {
				r->first_flip = (int64_t)i;
				r->first_flip_layer = (uint32_t)layer;
				r->first_flip_margin = margin;
				r->first_flip_excused = excused;
			}
			continue;
		}
		if (seq_flipped) {
			r->max_diff_after = fmax(r->max_diff_after, d);
			continue;
		}
		r->clean++;
		if (r->max_diff_at < 0 || d > r->max_diff) {
			r->max_diff = d;
			r->max_diff_at = (int64_t)i;
		}
		if (num(pa, "argmax") != num(pb, "argmax"))
			r->argmax_diff++;
	}
	if (r->aligned)
		r->mean_diff_all = sum_all / (double)r->aligned;
	if (r->paired) {
		double k = (double)r->paired, var = dsum2 / k - (dsum / k) * (dsum / k);
		r->dlogp = dsum / k;
		r->dlogp_err = r->paired > 1 && var > 0 ? sqrt(var / (k - 1)) : 0;
	}
	r->pass = r->aligned > 0 && r->unexcused == 0 && !(r->max_diff > o->tol);
out:
	json_decref(a.root);
	json_decref(b.root);
	return rc;
}

void mp_eval_compare_print(FILE *out, const struct mp_eval_cmp *r, const struct mp_eval_cmp_opts *o)
{
	fprintf(out, "positions: %llu in the reference, %llu in the other; %llu aligned",
		(unsigned long long)r->n_a, (unsigned long long)r->n_b, (unsigned long long)r->aligned);
	if (r->diverge >= 0)
		fprintf(out, " (the inputs differ from position %lld on)", (long long)r->diverge);
	fputc('\n', out);
	if (r->first_flip < 0) {
		fprintf(out, "routing flips: none (%llu sequences)\n", (unsigned long long)r->seqs);
	} else {
		fprintf(out, "routing flips: at %llu positions, in %llu of %llu sequences; their first "
			"flips: %llu excused, %llu NOT excused\n", (unsigned long long)r->flips,
			(unsigned long long)r->seq_flips, (unsigned long long)r->seqs,
			(unsigned long long)(r->seq_flips - r->unexcused), (unsigned long long)r->unexcused);
		fprintf(out, "%s flip: position %lld, layer %u, reference margin ",
			r->unexcused ? "first unexcused" : "first", (long long)r->first_flip,
			r->first_flip_layer);
		if (isnan(r->first_flip_margin))
			fprintf(out, "unknown: NOT excused\n");
		else
			fprintf(out, "%.6g %s %.6g: %s\n", r->first_flip_margin,
				r->first_flip_excused ? "<" : ">=", o->margin,
				r->first_flip_excused ? "excused (a near-tie)" : "NOT excused");
	}
	fprintf(out, "largest logit difference before the first flip: %.6g", r->max_diff);
	if (r->max_diff_at >= 0)
		fprintf(out, " at position %lld", (long long)r->max_diff_at);
	fprintf(out, " over %llu positions (tolerance %.6g)%s\n", (unsigned long long)r->clean, o->tol,
		r->max_diff > o->tol ? ": TOO LARGE" : "");
	if (r->argmax_diff)
		fprintf(out, "argmax differs at %llu of them\n", (unsigned long long)r->argmax_diff);
	if (r->first_flip >= 0)
		fprintf(out, "largest logit difference after a flip, at positions without one: %.6g "
			"(not checked)\n", r->max_diff_after);
	if (r->aligned)
		fprintf(out, "logit difference over all aligned positions, flips included: mean %.6g, "
			"largest %.6g (not checked)\n", r->mean_diff_all, r->max_diff_all);
	if (r->aligned)
		fprintf(out, "argmax agrees at %.2f%% of the aligned positions\n",
			100.0 * (double)r->argmax_same / (double)r->aligned);
	if (r->paired)
		fprintf(out, "scored in both: %llu positions; mean log p(target) other − reference = "
			"%.6f ± %.6f, so PPL(other)/PPL(reference) = %.4f (%.4f to %.4f)\n",
			(unsigned long long)r->paired, r->dlogp, r->dlogp_err, exp(-r->dlogp),
			exp(-r->dlogp - 2 * r->dlogp_err), exp(-r->dlogp + 2 * r->dlogp_err));
	fprintf(out, "%s\n", r->pass ? "PASS" : r->aligned ? "FAIL" : "FAIL: no aligned positions");
}

/* ---- the moepager command's evaluation modes --------------------------------------- */

/* Encodes text into a fresh array; the count in *n. */
static int encode(struct mp_tok *tok, const char *text, unsigned flags, int32_t **ids, size_t *n)
{
	size_t len = strlen(text), cap = len + 8;
	*ids = mp_malloc_array(cap, sizeof **ids);
	if (!*ids)
		return -ENOMEM;
	int rc = mp_tok_encode(tok, text, len, flags, *ids, cap);
	if (rc >= 0 && (size_t)rc > cap) {
		int32_t *bigger = mp_realloc(*ids, sizeof **ids * (size_t)rc);
		if (!bigger)
			rc = -ENOMEM;
		else
			rc = mp_tok_encode(tok, text, len, flags, *ids = bigger, (size_t)rc);
	}
	if (rc < 0) {
		mp_free(*ids);
		*ids = NULL;
		fprintf(stderr, "moepager: cannot tokenize the text: %s\n", mp_strerror(rc));
		return rc;
	}
	*n = (size_t)rc;
	return 0;
}

static int run_perplexity(const struct mp_eval_cli *c, struct mp_model *m, const struct mp_hparams *hp,
			  struct mp_tok *tok, struct mp_eval_rec *rec)
{
	int32_t *ids;
	size_t n;
	if (encode(tok, c->text, MP_TOK_ADD_BOS, &ids, &n) < 0)
		return 1;
	/* as llama.cpp: each chunk starts with BOS when the vocabulary adds one */
	int32_t bos = n && mp_tok_bos(tok) >= 0 && ids[0] == mp_tok_bos(tok) ? mp_tok_bos(tok) : -1;
	struct mp_eval_ppl_opts po = { c->n_ctx, bos, rec, stdout };
	struct mp_eval_ppl_result res;
	char err[512];
	if (c->n_ctx <= n)
		fprintf(stderr, "moepager: perplexity: %zu tokens, %zu chunks of %u, scoring the second "
			"half of each chunk (%u tokens per chunk) as llama.cpp does\n", n,
			n / c->n_ctx, c->n_ctx, c->n_ctx - 1 - c->n_ctx / 2);
	int rc = mp_eval_perplexity(m, hp->n_vocab, ids, n, &po, &res, err, sizeof err);
	mp_free(ids);
	if (rc < 0) {
		fprintf(stderr, "moepager: --perplexity: %s\n", err);
		return 1;
	}
	double s = (double)res.ns / 1e9;
	fprintf(stderr, "moepager: perplexity: %llu tokens scored, %llu evaluated in %.2f s "
		"(%.2f tokens/s)\n", (unsigned long long)res.scored, (unsigned long long)res.evaluated, s,
		s > 0 ? (double)res.evaluated / s : 0.0);
	return 0;
}

/* Steps one token and records it; prints the model's error. */
static int step(struct mp_model *m, struct mp_eval_rec *rec, int32_t id, const float **logits)
{
	int rc = mp_model_step(m, (uint32_t)id, logits);
	if (rc < 0) {
		fprintf(stderr, "moepager: %s\n", mp_model_error(m));
		return rc;
	}
	if (rec && (rc = mp_eval_rec_step(rec, m, id, *logits, NULL)) < 0)
		fprintf(stderr, "moepager: --logits-out: %s\n", mp_strerror(rc));
	return rc;
}

/* The prefill callback of run_forced: every position recorded. */
struct forced_ctx {
	const struct mp_model *m;
	struct mp_eval_rec *rec;
	const uint32_t *seq;      /* prompt then forced tokens */
};

static int forced_pos(void *ctx, uint32_t pos, const float *logits)
{
	struct forced_ctx *c = ctx;
	int rc = rec_at(c->rec, c->m, pos, (int32_t)c->seq[pos], logits, NULL);
	if (rc < 0)
		fprintf(stderr, "moepager: --logits-out: %s\n", mp_strerror(rc));
	return rc;
}

/* Prompt, then forced or sampled tokens, every position recorded. */
static int run_forced(const struct mp_eval_cli *c, struct mp_model *m, const struct mp_hparams *hp,
		      struct mp_tok *tok, struct mp_sampler *s, struct mp_eval_rec *rec)
{
	int32_t *ids = NULL, *forced = NULL;
	uint32_t *seq = NULL;
	size_t n = 0;
	int nf = 0, status = 1;
	char err[512], *text = NULL, *buf = NULL;
	const char *prompt = c->text ? c->text : "";
	if (c->raw) {
		if (encode(tok, prompt, MP_TOK_ADD_BOS | MP_TOK_PARSE_SPECIAL, &ids, &n) < 0)
			goto out;
	} else {
		struct mp_tok_msg msg = { MP_TOK_USER, prompt };
		if (mp_tok_chat_render(&msg, 1, MP_TOK_CHAT_GEN_PROMPT | MP_TOK_CHAT_THINK, &text) < 0 ||
		    encode(tok, text, MP_TOK_ADD_BOS | MP_TOK_PARSE_SPECIAL, &ids, &n) < 0)
			goto out;
	}
	if (c->force_tokens && (nf = mp_eval_parse_ids(c->force_tokens, hp->n_vocab, &forced, err,
						      sizeof err)) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		goto out;
	}
	if (n + (size_t)nf == 0) {
		fprintf(stderr, "moepager: nothing to evaluate: the prompt is empty and no BOS is added\n");
		goto out;
	}
	if (n + (size_t)nf > c->n_ctx) {
		fprintf(stderr, "moepager: the prompt (%zu tokens) and the forced tokens (%d) need more "
			"than --ctx-size %u positions\n", n, nf, c->n_ctx);
		goto out;
	}
	const float *logits = NULL;
	uint64_t t0 = mp_clock_now_ns(), steps = n + (size_t)nf;
	/* the prompt and the forced tokens in layer-major batches (-b) */
	if (!(seq = mp_malloc_array(n + (size_t)nf, sizeof *seq)))
		goto out;
	for (size_t i = 0; i < n + (size_t)nf; i++)
		seq[i] = (uint32_t)(i < n ? ids[i] : forced[i - n]);
	struct forced_ctx fc = { m, rec, seq };
	if (mp_model_prefill(m, seq, (uint32_t)(n + (size_t)nf), rec ? forced_pos : NULL, &fc,
			     &logits) < 0) {
		fprintf(stderr, "moepager: %s\n", mp_model_error(m));
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		mp_sampler_accept(s, ids[i]);
	struct mp_tok_stream st;
	mp_tok_stream_init(&st, 0);
	size_t cap = mp_tok_stream_cap(tok);
	if (!(buf = mp_malloc(cap)))
		goto out;
	for (int i = 0; i < nf; i++)
		fwrite(buf, 1, mp_tok_stream_push(tok, &st, forced[i], buf, cap), stdout);
	for (int64_t i = 0; !nf && (c->n_predict < 0 || i < c->n_predict); i++, steps++) {
		int32_t id = mp_sampler_sample(s, logits);
		mp_sampler_accept(s, id);
		if (id == mp_tok_eos(tok) || mp_model_pos(m) >= c->n_ctx)
			break;
		fwrite(buf, 1, mp_tok_stream_push(tok, &st, id, buf, cap), stdout);
		fflush(stdout);
		if (step(m, rec, id, &logits) < 0)
			goto out;
	}
	fwrite(buf, 1, mp_tok_stream_flush(&st, buf, cap), stdout);
	fputc('\n', stdout);
	double sec = (double)(mp_clock_now_ns() - t0) / 1e9;
	fprintf(stderr, "moepager: evaluated %llu positions (%zu prompt, %d forced) in %.2f s "
		"(%.2f tokens/s)\n", (unsigned long long)steps, n, nf, sec,
		sec > 0 ? (double)steps / sec : 0.0);
	status = 0;
out:
	mp_free(buf);
	mp_free(text);
	mp_free(ids);
	mp_free(forced);
	mp_free(seq);
	return status;
}

int mp_eval_main(const struct mp_eval_cli *c, struct mp_model *m, const struct mp_hparams *hp,
		 struct mp_tok *tok, struct mp_sampler *s)
{
	char err[512];
	struct mp_eval_rec *rec = NULL;
	if (c->perplexity && (!c->text || !c->text[0])) {
		fprintf(stderr, "moepager: --perplexity needs a text: -f FILE (or -p TEXT)\n");
		return 2;
	}
	if (c->perplexity && c->force_tokens) {
		fprintf(stderr, "moepager: --perplexity scores the text; --force-tokens does not apply\n");
		return 2;
	}
	if (c->logits_out) {
		struct mp_eval_rec_config rc = {
			c->logits_out, c->logits_top, hp->n_vocab, hp->n_layer,
			"moepager " PACKAGE_VERSION, c->model_path, c->settings,
		};
		if (mp_eval_rec_create(&rc, &rec, err, sizeof err) < 0) {
			fprintf(stderr, "moepager: --logits-out %s\n", err);
			return 1;
		}
	}
	int status = c->perplexity ? run_perplexity(c, m, hp, tok, rec) : run_forced(c, m, hp, tok, s, rec);
	if (mp_eval_rec_close(rec, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: --logits-out %s\n", err);
		status = 1;
	}
	return status;
}
