/*
 * statview.c — the figures, text screen, JSON and heat map of statview.h.
 *
 * Conventions: percentages are of expert uses (acquires) unless said;
 * "MB" is 10^6 bytes (a rate, as disks are quoted), "MiB" 2^20 (a size, as
 * the pool budget is given).  A figure whose denominator is 0 is NAN and
 * prints as "n/a" (text) or null (JSON).
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "statview.h"

#define MIB (1024.0 * 1024.0)

/* ---- Figures ---- */

/* Layer record i summed into f (sign: +1, or -1 for the earlier snapshot). */
static void add_layers(const struct mp_stats_snap *s, int sign, struct mp_statview_fig *f)
{
	for (uint32_t l = 0; l < s->h->n_layers; l++) {
		const struct mp_stats_layer *r = mp_stats_snap_layer(s, l);
		uint64_t m = (uint64_t)(int64_t)sign;   /* two's complement: adds or subtracts */
		f->hits += m * r->hits;
		f->pc_hits += m * r->pc_hits;
		f->misses += m * r->misses;
		f->pf_issued += m * r->pf_issued;
		f->pf_used += m * r->pf_used;
		f->pf_wasted += m * r->pf_wasted;
		f->stall_ns += m * r->stall_ns;
	}
}

static double ratio(uint64_t num, uint64_t den)
{
	return den ? (double)num / (double)den : NAN;
}

double mp_statview_percentile(const uint64_t *hist, unsigned n, double q)
{
	uint64_t total = 0;
	for (unsigned i = 0; i < n; i++)
		total += hist[i];
	if (!total)
		return NAN;
	double want = q * (double)total;
	uint64_t run = 0;
	for (unsigned i = 0; i < n; i++) {
		run += hist[i];
		if ((double)run >= want && run)
			return ldexp(1.0, (int)i + 1);
	}
	return ldexp(1.0, (int)n);
}

/* The decode phases (segment version 3) of cur, minus prev when given. */
static void phase_figures(const struct mp_stats_snap *prev, const struct mp_stats_snap *cur,
                          struct mp_statview_fig *f)
{
	const struct mp_stats_global *g = cur->g, *pg = prev ? prev->g : NULL;
	f->phases_known = cur->h->version >= 3 && (!prev || prev->h->version >= 3);
	if (f->phases_known) {
		f->phase_tokens = g->phase_tokens - (pg ? pg->phase_tokens : 0);
		f->phase_total_ns = g->phase_total_ns - (pg ? pg->phase_total_ns : 0);
		for (int p = 0; p < MP_STATS_PHASES; p++)
			f->phase_ns[p] = g->phase_ns[p] - (pg ? pg->phase_ns[p] : 0);
	}
	double n = f->phase_tokens ? (double)f->phase_tokens * 1e6 : NAN;
	f->step_ms = (double)f->phase_total_ns / n;
	for (int p = 0; p < MP_STATS_PHASES; p++)
		f->phase_ms[p] = (double)f->phase_ns[p] / n;
}

void mp_statview_figures(const struct mp_stats_snap *prev, const struct mp_stats_snap *cur,
                         double dt_s, struct mp_statview_fig *f)
{
	memset(f, 0, sizeof *f);
	const struct mp_stats_global *g = cur->g, *pg = prev ? prev->g : NULL;
	add_layers(cur, 1, f);
	f->tokens = g->tokens;
	f->decode_ns = g->decode_ns;
	f->disk_bytes = g->io_bytes;
	f->bytes = g->io_bytes + g->pc_bytes;
	f->io_reads = g->io_reads;
	f->io_errors = g->io_errors;
	f->evictions = g->evictions;
	uint64_t hist[MP_STATS_HIST];
	memcpy(hist, g->io_hist, sizeof hist);
	if (pg) {
		add_layers(prev, -1, f);
		f->tokens -= pg->tokens;
		f->decode_ns -= pg->decode_ns;
		f->disk_bytes -= pg->io_bytes;
		f->bytes -= pg->io_bytes + pg->pc_bytes;
		f->io_reads -= pg->io_reads;
		f->io_errors -= pg->io_errors;
		f->evictions -= pg->evictions;
		for (unsigned i = 0; i < MP_STATS_HIST; i++)
			hist[i] -= pg->io_hist[i];
	}
	f->uses = f->hits + f->pc_hits + f->misses;
	f->tok_s = f->decode_ns ? (double)f->tokens * 1e9 / (double)f->decode_ns : NAN;
	f->hit_rate = ratio(f->hits, f->uses);
	f->pc_rate = ratio(f->pc_hits, f->uses);
	f->miss_rate = ratio(f->misses, f->uses);
	f->stall_frac = ratio(f->stall_ns, f->decode_ns);
	/* More used than issued: some prefetches were not counted as issued (the
	 * pager's preload of a model that fits is not): precision is unknown. */
	f->pf_precision = f->pf_used <= f->pf_issued ? ratio(f->pf_used, f->pf_issued) : NAN;
	f->pf_recall = f->pf_issued || f->pf_used ?
	               ratio(f->pf_used, f->pf_used + f->pc_hits + f->misses) : NAN;
	if (prev)
		f->read_mbs = dt_s > 0 ? (double)f->bytes / 1e6 / dt_s : NAN;
	else                                 /* reads happen inside model steps */
		f->read_mbs = f->decode_ns ? (double)f->bytes * 1e3 / (double)f->decode_ns : NAN;
	static const double qs[3] = { 0.50, 0.90, 0.99 };
	for (int i = 0; i < 3; i++)
		f->lat_us[i] = mp_statview_percentile(hist, MP_STATS_HIST, qs[i]);
	phase_figures(prev, cur, f);
}

/* ---- Text ---- */

static const char *fmt_pct(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "n/a");
	else
		snprintf(buf, len, "%.1f%%", 100.0 * v);
	return buf;
}

static const char *fmt_num(double v, char *buf, size_t len)
{
	if (isnan(v))
		snprintf(buf, len, "n/a");
	else if (v >= 100)
		snprintf(buf, len, "%.0f", v);
	else
		snprintf(buf, len, "%.2f", v);
	return buf;
}

static const char *fmt_us(double us, char *buf, size_t len)
{
	if (isnan(us))
		snprintf(buf, len, "n/a");
	else if (us < 1000)
		snprintf(buf, len, "%.0fus", us);
	else if (us < 1e6)
		snprintf(buf, len, "%.3gms", us / 1e3);
	else
		snprintf(buf, len, "%.3gs", us / 1e6);
	return buf;
}

/* The backend name, NUL-terminated whatever the segment holds. */
static void backend_name(const struct mp_stats_snap *s, char out[17])
{
	memcpy(out, s->h->backend, 16);
	out[16] = 0;
	if (!out[0])
		strcpy(out, "?");
}

/* One figure row: name, interval value (NULL: no interval column), whole-run
 * value, explanation; cut at the screen width. */
static void row(FILE *out, int cols, const char *name, const char *now, const char *run,
                const char *why)
{
	char line[512];
	if (now)
		snprintf(line, sizeof line, "%-20s %10s %10s   %s", name, now, run, why);
	else
		snprintf(line, sizeof line, "%-20s %10s   %s", name, run, why);
	if (cols > 0 && cols < (int)sizeof line)
		line[cols] = 0;
	fprintf(out, "%s\n", line);
}

/* A bar of width w: '#' pool hits, '+' page-cache copies, '.' disk reads. */
static void bar(char *dst, int w, uint64_t hits, uint64_t pc, uint64_t miss)
{
	uint64_t uses = hits + pc + miss;
	int nh = 0, np = 0;
	if (uses) {
		nh = (int)lround((double)w * (double)hits / (double)uses);
		np = (int)lround((double)w * (double)(hits + pc) / (double)uses) - nh;
	}
	for (int i = 0; i < w; i++)
		dst[i] = !uses ? ' ' : i < nh ? '#' : i < nh + np ? '+' : '.';
	dst[w] = 0;
}

static int layer_used(const struct mp_stats_layer *r)
{
	return r->hits + r->pc_hits + r->misses != 0;
}

/* Per-layer bars in as many columns as the rows allow (rows 0: one
 * detailed line per layer). */
static void layer_bars(FILE *out, const struct mp_stats_snap *s, int cols, int rows)
{
	uint32_t nl = s->h->n_layers, used = 0;
	for (uint32_t l = 0; l < nl; l++)
		used += (uint32_t)layer_used(mp_stats_snap_layer(s, l));
	if (!used) {
		fprintf(out, "hit rate per layer: n/a (no expert used yet)\n");
		return;
	}
	char b[128], p[16];
	if (rows <= 0) {
		fprintf(out, "hit rate per layer (# pool hit, + page cache, . disk):\n");
		for (uint32_t l = 0; l < nl; l++) {
			const struct mp_stats_layer *r = mp_stats_snap_layer(s, l);
			if (!layer_used(r))
				continue;
			bar(b, 16, r->hits, r->pc_hits, r->misses);
			fprintf(out, "  L%-3u %s %6s  pool %llu  page cache %llu  disk %llu  %.1f MiB  "
			        "stall %.1fms\n", l, b,
			        fmt_pct(ratio(r->hits, r->hits + r->pc_hits + r->misses), p, sizeof p),
			        (unsigned long long)r->hits, (unsigned long long)r->pc_hits,
			        (unsigned long long)r->misses, (double)r->bytes_read / MIB,
			        (double)r->stall_ns / 1e6);
		}
		return;
	}
	/* Cells "L<n> <bar> nn%" in as many columns as needed; when the bars
	 * would be shorter than 3, cells without bars; beyond that the rest is
	 * counted, not shown. */
	int lw = nl > 100 ? 3 : nl > 10 ? 2 : 1;
	uint32_t ncol = (used + (uint32_t)rows - 1) / (uint32_t)rows;
	int cw = cols / (int)(ncol ? ncol : 1);
	int bw = cw - lw - 8;                          /* "L" n " " bar " " "nn%" " " */
	uint32_t shown = used;
	if (bw < 3) {
		bw = 0;
		cw = lw + 6;                               /* "L" n " " "nn%" " " */
		uint32_t fit = (uint32_t)(cols / cw) * (uint32_t)rows;
		ncol = (used + (uint32_t)rows - 1) / (uint32_t)rows;
		if (used > fit) {
			ncol = (uint32_t)(cols / cw);
			shown = fit - 1;
		}
	}
	if (bw > 40)
		bw = 40;
	uint32_t nrow = (shown + ncol - 1) / ncol;
	fprintf(out, "hit rate per layer, whole run%s\n",
	        bw ? " (# pool hit, + page cache, . disk)" : "");
	uint32_t idx[4096], k = 0;
	for (uint32_t l = 0; l < nl && k < shown && k < 4096; l++)
		if (layer_used(mp_stats_snap_layer(s, l)))
			idx[k++] = l;
	for (uint32_t r = 0; r < nrow; r++) {
		char line[512];
		size_t pos = 0;
		line[0] = 0;
		for (uint32_t c = 0; c < ncol; c++) {
			uint32_t i = c * nrow + r;
			if (i >= k)
				break;
			const struct mp_stats_layer *lr = mp_stats_snap_layer(s, idx[i]);
			uint64_t u = lr->hits + lr->pc_hits + lr->misses;
			bar(b, bw, lr->hits, lr->pc_hits, lr->misses);
			int n = snprintf(line + pos, sizeof line - pos, "L%-*u %s%s%3.0f%%", lw, idx[i], b,
			                 bw ? " " : "", 100.0 * (double)lr->hits / (double)u);
			if (n < 0 || (size_t)n >= sizeof line - pos)
				break;
			pos += (size_t)n;
			if (c + 1 < ncol && i + nrow < k && pos + 1 < sizeof line) {
				line[pos++] = ' ';
				line[pos] = 0;
			}
		}
		fprintf(out, "%s\n", line);
	}
	if (shown < used)
		fprintf(out, "... %u more layers (a taller terminal, or --once, shows them all)\n",
		        used - shown);
}

/* "time per token: attn x ms, ffn y, ..." over the interval (now) when it
 * has decode steps, else over the whole run; on two lines when one does not
 * fit in cols.  Returns the lines written. */
static int phase_lines(FILE *out, int cols, const struct mp_statview_fig *now,
                       const struct mp_statview_fig *run, double dt_s)
{
	if (!run->phases_known) {
		fprintf(out, "time per token: unknown (segment version 1 or 2)\n");
		return 1;
	}
	if (!run->phase_tokens) {
		fprintf(out, "time per token: n/a (no decode step yet)\n");
		return 1;
	}
	const struct mp_statview_fig *f = now && now->phase_tokens ? now : run;
	char a[256], b[256];
	int n = snprintf(a, sizeof a, "time per token %.3g ms: %s %.3g ms", f->step_ms,
	                 mp_stats_phase_names[0], f->phase_ms[0]);
	for (int p = 1; p < MP_STATS_PHASES / 2; p++)
		n += snprintf(a + n, sizeof a - (size_t)n, ", %s %.3g", mp_stats_phase_names[p], f->phase_ms[p]);
	n = 0;
	for (int p = MP_STATS_PHASES / 2; p < MP_STATS_PHASES; p++)
		n += snprintf(b + n, sizeof b - (size_t)n, "%s%s %.3g", n ? ", " : "",
		              mp_stats_phase_names[p], f->phase_ms[p]);
	if (f == now)
		snprintf(b + n, sizeof b - (size_t)n, " (last %.1fs)", dt_s);
	else
		snprintf(b + n, sizeof b - (size_t)n, " (%llu steps)", (unsigned long long)f->phase_tokens);
	if ((int)(strlen(a) + 2 + strlen(b)) <= cols) {
		fprintf(out, "%s, %s\n", a, b);
		return 1;
	}
	if ((int)strlen(a) > cols)
		a[cols] = 0;
	if ((int)strlen(b) + 2 > cols)
		b[cols > 2 ? cols - 2 : 0] = 0;
	fprintf(out, "%s,\n  %s\n", a, b);
	return 2;
}

void mp_statview_text(FILE *out, const struct mp_statview_state *st,
                      const struct mp_stats_snap *prev, const struct mp_stats_snap *cur,
                      double dt_s)
{
	int cols = st->cols > 0 ? st->cols : 80;
	const struct mp_stats_header *h = cur->h;
	const struct mp_stats_global *g = cur->g;
	struct mp_statview_fig now, run;
	mp_statview_figures(NULL, cur, 0, &run);
	if (prev)
		mp_statview_figures(prev, cur, dt_s, &now);
	char be[17], a[32], b[32], why[160], line[512];
	backend_name(cur, be);
	int n = snprintf(line, sizeof line, "moepager pid %llu %s, io %s",
	                 (unsigned long long)h->pid, st->alive ? "running" : "exited", be);
	if (st->alive && st->now_wall_s > (double)h->start_wall_s && h->start_wall_s) {
		uint64_t up = (uint64_t)(st->now_wall_s - (double)h->start_wall_s);
		n += snprintf(line + n, sizeof line - (size_t)n, ", up %llu:%02llu:%02llu",
		              (unsigned long long)(up / 3600), (unsigned long long)(up / 60 % 60),
		              (unsigned long long)(up % 60));
	}
	snprintf(line + n, sizeof line - (size_t)n, ", %u layers x %u experts", h->n_layers,
	         h->n_experts);
	if ((int)strlen(line) > cols)
		line[cols] = 0;
	fprintf(out, "%s\n", line);
	char fb[512];
	fprintf(out, "fallbacks: %s\n", h->version < 2 ? "unknown (segment version 1)" :
		mp_stats_fallback_names(h->fallbacks, fb, sizeof fb));
	if (prev)
		snprintf(a, sizeof a, "last %.1fs", dt_s);
	row(out, cols, "", prev ? a : NULL, "whole run", st->source);
#define NOW(fmt, v) (prev ? fmt(now.v, a, sizeof a) : NULL)
	snprintf(why, sizeof why, "%llu tokens (prompt + output)", (unsigned long long)run.tokens);
	row(out, cols, "tokens/s", NOW(fmt_num, tok_s), fmt_num(run.tok_s, b, sizeof b), why);
	row(out, cols, "pool hit rate", NOW(fmt_pct, hit_rate), fmt_pct(run.hit_rate, b, sizeof b),
	    "expert uses served from RAM");
	row(out, cols, "misses: page cache", NOW(fmt_pct, pc_rate), fmt_pct(run.pc_rate, b, sizeof b),
	    "copied from the OS page cache");
	row(out, cols, "misses: disk", NOW(fmt_pct, miss_rate), fmt_pct(run.miss_rate, b, sizeof b),
	    "read from the disk");
	snprintf(why, sizeof why, "disk + page cache, %.1f MiB in all", (double)run.bytes / MIB);
	row(out, cols, "read MB/s", NOW(fmt_num, read_mbs), fmt_num(run.read_mbs, b, sizeof b), why);
	row(out, cols, "stall", NOW(fmt_pct, stall_frac), fmt_pct(run.stall_frac, b, sizeof b),
	    "decode time waiting for experts");
	if (run.pf_issued || run.pf_used) {
		if (run.pf_used > run.pf_issued)
			snprintf(why, sizeof why, "%llu used > %llu counted as issued", (unsigned long long)run.pf_used,
			         (unsigned long long)run.pf_issued);
		else
			snprintf(why, sizeof why, "%llu prefetches, %llu wasted", (unsigned long long)run.pf_issued,
			         (unsigned long long)run.pf_wasted);
		row(out, cols, "prefetch precision", NOW(fmt_pct, pf_precision),
		    fmt_pct(run.pf_precision, b, sizeof b), why);
		row(out, cols, "prefetch recall", NOW(fmt_pct, pf_recall), fmt_pct(run.pf_recall, b, sizeof b),
		    "misses a prefetch avoided");
	} else {
		row(out, cols, "prefetch prec/recall", prev ? "n/a" : NULL, "n/a", "no prefetches issued");
	}
#undef NOW
	snprintf(line, sizeof line, "pool %.1f of %.1f MiB used (%s), %llu evictions",
	         (double)g->pool_used / MIB, (double)g->pool_total / MIB,
	         fmt_pct(ratio(g->pool_used, g->pool_total), a, sizeof a), (unsigned long long)g->evictions);
	if (cols < (int)sizeof line)
		line[cols] = 0;
	fprintf(out, "%s\n", line);
	char p50[16], p90[16], p99[16];
	snprintf(line, sizeof line, "I/O latency p50 %s  p90 %s  p99 %s  (%llu reads, %llu errors)",
	         fmt_us(run.lat_us[0], p50, sizeof p50), fmt_us(run.lat_us[1], p90, sizeof p90),
	         fmt_us(run.lat_us[2], p99, sizeof p99), (unsigned long long)g->io_reads,
	         (unsigned long long)g->io_errors);
	if (cols < (int)sizeof line)
		line[cols] = 0;
	fprintf(out, "%s\n", line);
	int tl = phase_lines(out, cols, prev ? &now : NULL, &run, dt_s);
	/* Lines above the bars: 11 or 12 so far, the time per token, and the
	 * bars' caption; one more is left free for the caller's status line. */
	int above = 12 + (run.pf_issued || run.pf_used ? 1 : 0) + tl + 1;
	layer_bars(out, cur, cols, st->rows ? (st->rows - above - 1 > 1 ? st->rows - above - 1 : 1) : 0);
}

/* ---- JSON ---- */

static void jstr(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

static void jnum(FILE *out, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", out);
	else
		fprintf(out, "%.6g", v);
}

static void ju(FILE *out, const char *key, uint64_t v, const char *sep)
{
	fprintf(out, "\"%s\": %llu%s", key, (unsigned long long)v, sep);
}

static void jd(FILE *out, const char *key, double v, const char *sep)
{
	fprintf(out, "\"%s\": ", key);
	jnum(out, v);
	fputs(sep, out);
}

/* One per-expert array (field: offset of a u64 in struct mp_stats_expert). */
static void jexperts(FILE *out, const struct mp_stats_snap *s, uint32_t l, size_t field)
{
	fputc('[', out);
	for (uint32_t e = 0; e < s->h->n_experts; e++) {
		const char *rec = (const char *)mp_stats_snap_expert(s, l, e);
		uint64_t v;
		memcpy(&v, rec + field, sizeof v);
		fprintf(out, "%s%llu", e ? "," : "", (unsigned long long)v);
	}
	fputc(']', out);
}

/* "timings": the decode phases (null before segment version 3). */
static void json_timings(FILE *out, const struct mp_statview_fig *f)
{
	if (!f->phases_known) {
		fputs(" \"timings\": null,\n", out);
		return;
	}
	fputs(" \"timings\": {", out);
	ju(out, "tokens", f->phase_tokens, ", ");
	ju(out, "total_ns", f->phase_total_ns, ", ");
	jd(out, "ms_per_token", f->step_ms, ",\n  \"ns\": {");
	for (int p = 0; p < MP_STATS_PHASES; p++)
		ju(out, mp_stats_phase_names[p], f->phase_ns[p], p + 1 < MP_STATS_PHASES ? ", " : "},\n");
	fputs("  \"ms\": {", out);
	for (int p = 0; p < MP_STATS_PHASES; p++)
		jd(out, mp_stats_phase_names[p], f->phase_ms[p], p + 1 < MP_STATS_PHASES ? ", " : "}},\n");
}

void mp_statview_json(FILE *out, const struct mp_statview_state *st,
                      const struct mp_stats_snap *cur)
{
	const struct mp_stats_header *h = cur->h;
	const struct mp_stats_global *g = cur->g;
	struct mp_statview_fig f;
	mp_statview_figures(NULL, cur, 0, &f);
	char be[17];
	backend_name(cur, be);
	fprintf(out, "{\"schema_version\": %u, \"segment_version\": %u, \"source\": ",
	        MP_STATVIEW_SCHEMA, h->version);
	jstr(out, st->source);
	fprintf(out, ", \"pid\": %llu, \"alive\": %s, \"backend\": ", (unsigned long long)h->pid,
	        st->alive ? "true" : "false");
	jstr(out, be);
	char fb[512];
	fputs(", \"fallbacks\": ", out);
	if (h->version < 2)
		fputs("null", out);
	else
		jstr(out, mp_stats_fallback_names(h->fallbacks, fb, sizeof fb));
	fprintf(out, ", \"fallback_bits\": %llu", (unsigned long long)(h->version < 2 ? 0 : h->fallbacks));
	fprintf(out, ", \"fingerprint\": \"%016llx\", ", (unsigned long long)h->fingerprint);
	ju(out, "start_wall_s", h->start_wall_s, ", ");
	ju(out, "n_layers", h->n_layers, ", ");
	ju(out, "n_experts", h->n_experts, ",\n");
	fputs(" \"decode\": {", out);
	ju(out, "tokens", f.tokens, ", ");
	ju(out, "decode_ns", f.decode_ns, ", ");
	jd(out, "tokens_per_s", f.tok_s, "},\n");
	fputs(" \"experts_total\": {", out);
	ju(out, "uses", f.uses, ", ");
	ju(out, "hits", f.hits, ", ");
	ju(out, "page_cache_hits", f.pc_hits, ", ");
	ju(out, "misses", f.misses, ", ");
	jd(out, "hit_rate", f.hit_rate, ", ");
	jd(out, "page_cache_rate", f.pc_rate, ", ");
	jd(out, "miss_rate", f.miss_rate, ", ");
	ju(out, "stall_ns", f.stall_ns, ", ");
	jd(out, "stall_fraction", f.stall_frac, "},\n");
	fputs(" \"prefetch\": {", out);
	ju(out, "issued", f.pf_issued, ", ");
	ju(out, "used", f.pf_used, ", ");
	ju(out, "wasted", f.pf_wasted, ", ");
	jd(out, "precision", f.pf_precision, ", ");
	jd(out, "recall", f.pf_recall, "},\n");
	fputs(" \"pool\": {", out);
	ju(out, "used_bytes", g->pool_used, ", ");
	ju(out, "total_bytes", g->pool_total, ", ");
	jd(out, "occupancy", ratio(g->pool_used, g->pool_total), ", ");
	ju(out, "evictions", g->evictions, "},\n");
	fputs(" \"io\": {", out);
	ju(out, "reads", g->io_reads, ", ");
	ju(out, "errors", g->io_errors, ", ");
	ju(out, "disk_bytes", g->io_bytes, ", ");
	ju(out, "pager_cpu_ns", g->pager_cpu_ns, ", ");
	ju(out, "page_cache_bytes", g->pc_bytes, ", ");
	ju(out, "page_cache_dropped_bytes", g->pc_dropped, ", ");
	jd(out, "read_mb_per_s", f.read_mbs, ", ");
	jd(out, "latency_p50_us", f.lat_us[0], ", ");
	jd(out, "latency_p90_us", f.lat_us[1], ", ");
	jd(out, "latency_p99_us", f.lat_us[2], ", ");
	fputs("\"latency_hist\": [", out);
	for (unsigned i = 0; i < MP_STATS_HIST; i++)
		fprintf(out, "%s%llu", i ? "," : "", (unsigned long long)g->io_hist[i]);
	fputs("]},\n", out);
	json_timings(out, &f);
	fputs(" \"layers\": [", out);
	for (uint32_t l = 0; l < h->n_layers; l++) {
		const struct mp_stats_layer *r = mp_stats_snap_layer(cur, l);
		fprintf(out, "%s\n  {\"layer\": %u, ", l ? "," : "", l);
		ju(out, "hits", r->hits, ", ");
		ju(out, "page_cache_hits", r->pc_hits, ", ");
		ju(out, "misses", r->misses, ", ");
		jd(out, "hit_rate", ratio(r->hits, r->hits + r->pc_hits + r->misses), ", ");
		ju(out, "prefetch_issued", r->pf_issued, ", ");
		ju(out, "prefetch_used", r->pf_used, ", ");
		ju(out, "prefetch_wasted", r->pf_wasted, ", ");
		ju(out, "bytes_read", r->bytes_read, ", ");
		ju(out, "stall_ns", r->stall_ns, ",\n   ");
		fputs("\"expert_uses\": ", out);
		jexperts(out, cur, l, offsetof(struct mp_stats_expert, uses));
		fputs(",\n   \"expert_hits\": ", out);
		jexperts(out, cur, l, offsetof(struct mp_stats_expert, hits));
		fputs(",\n   \"expert_misses\": ", out);
		jexperts(out, cur, l, offsetof(struct mp_stats_expert, misses));
		fputc('}', out);
	}
	fputs("]}\n", out);
}

/* ---- SVG ---- */

static void xml_text(FILE *out, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': fputs("&amp;", out); break;
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '"': fputs("&quot;", out); break;
		default:
			if ((unsigned char)*s >= 0x20 || *s == '\t')
				fputc(*s, out);
		}
	}
}

/* t in [0, 1] on a white-to-dark-blue ramp (three stops). */
static void ramp(double t, char out[8])
{
	static const int stop[3][3] = { { 0xde, 0xeb, 0xf7 }, { 0x42, 0x92, 0xc6 }, { 0x08, 0x30, 0x6b } };
	double x = t * 2;
	int i = x >= 1 ? 1 : 0;
	double u = x - i;
	if (u > 1)
		u = 1;
	int c[3];
	for (int k = 0; k < 3; k++)
		c[k] = (int)lround(stop[i][k] + (stop[i + 1][k] - stop[i][k]) * u);
	snprintf(out, 8, "#%02x%02x%02x", c[0], c[1], c[2]);
}

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

void mp_statview_svg(FILE *out, const struct mp_statview_state *st,
                     const struct mp_stats_snap *cur)
{
	const struct mp_stats_header *h = cur->h;
	uint32_t ne = h->n_experts, nrows = 0;
	uint64_t max = 0;
	for (uint32_t l = 0; l < h->n_layers; l++) {
		nrows += (uint32_t)layer_used(mp_stats_snap_layer(cur, l));
		for (uint32_t e = 0; e < ne; e++)
			if (mp_stats_snap_expert(cur, l, e)->uses > max)
				max = mp_stats_snap_expert(cur, l, e)->uses;
	}
	int cw = clampi(ne ? 1024 / (int)ne : 8, 3, 16), ch = clampi(nrows ? 480 / (int)nrows : 12, 6, 16);
	int x0 = 56, y0 = 64, gw = cw * (int)ne, gh = ch * (int)nrows;
	int width = x0 + gw + 24 > 560 ? x0 + gw + 24 : 560, height = y0 + gh + 96;
	fprintf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"%d\" height=\"%d\" "
	        "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"11\">\n",
	        width, height, width, height);
	fprintf(out, "<title>moepager expert use: %u layers x %u experts</title>\n", h->n_layers, ne);
	fprintf(out, "<rect width=\"%d\" height=\"%d\" fill=\"#ffffff\"/>\n", width, height);
	fprintf(out, "<text x=\"%d\" y=\"18\" font-size=\"14\" font-weight=\"bold\">Expert uses per layer "
	        "(pid %llu, %llu tokens)</text>\n", x0, (unsigned long long)h->pid,
	        (unsigned long long)cur->g->tokens);
	fprintf(out, "<text x=\"%d\" y=\"34\" fill=\"#555555\">", x0);
	xml_text(out, st->source);
	fputs("</text>\n", out);
	fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">expert</text>\n", x0 + gw / 2, y0 - 16);
	int step = ne > 128 ? 32 : ne > 32 ? 8 : 4;
	for (uint32_t e = 0; e < ne; e += (uint32_t)step)
		fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"9\">%u</text>\n",
		        x0 + (int)e * cw + cw / 2, y0 - 4, e);
	fprintf(out, "<text x=\"14\" y=\"%d\" transform=\"rotate(-90 14 %d)\" text-anchor=\"middle\">layer</text>\n",
	        y0 + gh / 2, y0 + gh / 2);
	uint32_t r = 0;
	for (uint32_t l = 0; l < h->n_layers; l++) {
		if (!layer_used(mp_stats_snap_layer(cur, l)))
			continue;
		int y = y0 + (int)r * ch;
		if (nrows <= 40 || r % 4 == 0)
			fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"9\">%u</text>\n",
			        x0 - 4, y + ch - 2, l);
		fprintf(out, "<g>\n");
		for (uint32_t e = 0; e < ne; e++) {
			const struct mp_stats_expert *x = mp_stats_snap_expert(cur, l, e);
			char col[8] = "#f2f2f2";
			if (x->uses)
				ramp(log1p((double)x->uses) / log1p((double)max), col);
			int xx = x0 + (int)e * cw;
			fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"%s\">"
			        "<title>layer %u expert %u: %llu uses, %llu pool hits, %llu misses</title></rect>\n",
			        xx, y, cw, ch, col, l, e, (unsigned long long)x->uses,
			        (unsigned long long)x->hits, (unsigned long long)x->misses);
			if (x->uses && x->misses) {
				/* At most half the cell, so that the use colour shows. */
				int mh = (int)lround((double)(ch / 2) * (double)x->misses / (double)x->uses);
				if (mh < 1)
					mh = 1;
				fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" "
				        "fill=\"#d62728\" fill-opacity=\"0.85\"/>\n", xx, y + ch - mh,
				        cw > 2 ? cw - 1 : cw, mh);
			}
		}
		fprintf(out, "</g>\n");
		r++;
	}
	fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#888888\"/>\n",
	        x0, y0, gw, gh);
	/* Legend: the colour ramp and the overlay. */
	int ly = y0 + gh + 24;
	fprintf(out, "<text x=\"%d\" y=\"%d\">uses (log scale):</text>\n", x0, ly + 10);
	for (int i = 0; i < 10; i++) {
		char col[8];
		ramp(i / 9.0, col);
		fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"12\" fill=\"%s\"/>\n",
		        x0 + 112 + 16 * i, ly, col);
	}
	fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">1</text>\n", x0 + 108, ly + 10);
	fprintf(out, "<text x=\"%d\" y=\"%d\">%llu</text>\n", x0 + 276, ly + 10, (unsigned long long)max);
	fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"12\" fill=\"#f2f2f2\" stroke=\"#cccccc\"/>"
	        "<text x=\"%d\" y=\"%d\">never used</text>\n", x0 + 320, ly, x0 + 340, ly + 10);
	fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"16\" height=\"6\" fill=\"#d62728\" fill-opacity=\"0.85\"/>"
	        "<text x=\"%d\" y=\"%d\">red bar (full = half the cell): share of the uses that missed the pool "
	        "(read from disk or page cache)</text>\n",
	        x0, ly + 26, x0 + 20, ly + 32);
	fprintf(out, "<text x=\"%d\" y=\"%d\" fill=\"#555555\">hover a cell for its counts; "
	        "layers without routed experts are left out</text>\n", x0, ly + 50);
	fputs("</svg>\n", out);
}
