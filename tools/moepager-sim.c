/*
 * moepager-sim — replays a routing trace (MOETRACE v1 or v2) against expert
 * caches of several budgets under the pager's eviction policies (the very
 * functions the runtime links: pager/policy.c through pager/sim.c) and
 * reports hit rates, missed bytes per token and the tokens/s they allow.
 *
 * Not a benchmark of the pager: no I/O happens; reads are assumed fully
 * overlapped with compute (time per token = max(compute, missed bytes ÷
 * bandwidth)).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "err.h"
#include "policy.h"
#include "sim.h"
#include "size.h"
#include "trace.h"

#define MAX_ITEMS 64

static const char usage_text[] =
	"Usage: moepager-sim [OPTION]... TRACE\n"
	"Replay a MoE routing trace (MOETRACE v1 or v2, e.g. one written by\n"
	"moepager --trace-out) against expert caches of several budgets and report,\n"
	"per budget and eviction policy, the hit rate, the bytes missed per token and\n"
	"the tokens/s they allow.  The policies are the pager's own code.  Caches are\n"
	"per layer as in ROUTING.md (one cache per layer of round(fraction x experts)\n"
	"slots; each token's set acquired whole); reads are assumed fully overlapped\n"
	"with compute: time per token = max(compute, missed bytes / bandwidth).\n"
	"\n"
	"Options:\n"
	"  -b, --budgets LIST      comma-separated budgets: N% of each layer's experts,\n"
	"                          or a SIZE for all routed experts (needs an expert\n"
	"                          size) (default: 10%,20%,27%,40%,50%,60%,75%)\n"
	"  -p, --policies LIST     comma-separated among lru, lfu, moepager, belady\n"
	"                          (default: lru,lfu,moepager,belady)\n"
	"  -m, --mode MODE         cold (caches emptied at each sequence), warm\n"
	"                          (sequences back to back) or both (default: both)\n"
	"  -n, --sequences LIST    sequences to replay, in file order: N (the first N)\n"
	"                          or A-B (inclusive, 0-based); a comma-separated list\n"
	"                          replays each range separately (default: 300, or\n"
	"                          the whole trace when it is shorter)\n"
	"  -g, --global            one pool shared by all layers instead of one cache\n"
	"                          per layer (a fraction then applies to all experts)\n"
	"      --expert-bytes SIZE bytes of one routed expert (default: the v2 trace\n"
	"                          header's value; none for v1, then bytes and tokens/s\n"
	"                          are not shown)\n"
	"      --disk-bw SIZE      disk read bandwidth per second (default: 6.5GB)\n"
	"      --compute-ms MS     compute time per token in ms (default: 0)\n"
	"      --param KEY=VALUE   a moepager policy knob: horizon, learn-rate,\n"
	"                          feature-rate, decay0, decay1, decay2, cross-layer\n"
	"                          (default: the tuned values, docs/policy.md)\n"
	"      --model-in FILE     moepager: start every replay from this saved model\n"
	"                          (as a new process with a usage profile would)\n"
	"      --model-out FILE    moepager: save the model after each replay (the\n"
	"                          last one wins: use with one budget and one mode)\n"
	"      --belady-lookahead N  belady sees only the next N tokens of each layer\n"
	"                          (the rest in LRU order): what a predictor of N\n"
	"                          tokens would be worth (default: 0, all)\n"
	"      --svg FILE          also draw hit rate against budget, one curve per\n"
	"                          policy and mode, into FILE (SVG)\n"
	"      --json              print JSON instead of the table\n"
	"      --routing           measure the routing instead: popularity of the top 10%\n"
	"                          and 25% of experts, within a sequence, and reuse from\n"
	"                          one token to the next (ROUTING.md's statistics)\n"
	"      --convert FILE      write the first range of --sequences as a v2 trace\n"
	"                          (ids only, or what the input carries) and exit\n"
	"  -h, --help              print this help and exit\n"
	"  -V, --version           print the version and exit\n"
	"\n"
	"Examples:\n"
	"  moepager-sim --budgets 27% testdata/traces/deepseek-v2-lite.trace\n"
	"  moepager-sim --expert-bytes 26.5MB --budgets 27%,40% --compute-ms 90 r1.trace\n";

struct budget {
	char text[32];       /* as given */
	double fraction;     /* of experts, when given as N% */
	uint64_t bytes;      /* when given as SIZE */
};

struct range {
	uint64_t first, n;   /* sequences */
};

struct opts {
	const char *trace;
	struct budget budgets[MAX_ITEMS];
	int n_budgets;
	enum mp_policy_kind policies[MP_POLICY_COUNT];
	int n_policies;
	int modes;                          /* bit 0 cold, bit 1 warm */
	struct range ranges[MAX_ITEMS];
	int n_ranges;
	int ranges_default;                 /* --sequences not given: at most 300 */
	int global;
	uint64_t expert_bytes;              /* 0 = unknown */
	int have_expert_bytes;
	uint64_t disk_bw;                   /* bytes per second */
	double compute_ms;
	struct mp_policy_params params;
	const char *svg;
	int json;
	int routing;          /* --routing: measure the routing instead of replaying */
	const char *convert;                /* --convert FILE */
	const char *model_in, *model_out;   /* --model-in, --model-out */
	uint32_t belady_lookahead;          /* --belady-lookahead, 0 = all */
};

/* One simulated cell. */
struct cell {
	int budget, policy, mode, range;    /* indices */
	uint64_t slots;                     /* per layer, or in all (global) */
	struct mp_sim_result r;
};

static int die_arg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reports a usage error; returns the exit status for it. */
static int die_arg(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "moepager-sim: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, " (see --help)\n");
	va_end(ap);
	return 2;
}

/* Splits s at commas into at most MAX_ITEMS pieces of at most 31 chars. */
static int split(const char *s, char items[][32])
{
	int n = 0;
	while (*s) {
		const char *c = strchr(s, ',');
		size_t len = c ? (size_t)(c - s) : strlen(s);
		if (n == MAX_ITEMS || len == 0 || len > 31)
			return -1;
		memcpy(items[n], s, len);
		items[n][len] = 0;
		n++;
		s += len + (c ? 1 : 0);
		if (c && !*s)
			return -1;
	}
	return n;
}

static int parse_budgets(struct opts *o, const char *s)
{
	char items[MAX_ITEMS][32];
	int n = split(s, items);
	if (n <= 0)
		return -1;
	for (int i = 0; i < n; i++) {
		struct budget *b = &o->budgets[i];
		memset(b, 0, sizeof *b);
		memcpy(b->text, items[i], sizeof b->text);
		size_t len = strlen(items[i]);
		if (items[i][len - 1] == '%') {
			char *end;
			items[i][len - 1] = 0;
			double v = strtod(items[i], &end);
			if (*end || end == items[i] || !(v > 0 && v <= 100))
				return -1;
			b->fraction = v / 100;
		} else if (mp_size_parse(items[i], &b->bytes) < 0 || b->bytes == 0) {
			return -1;
		}
	}
	o->n_budgets = n;
	return 0;
}

static int parse_policies(struct opts *o, const char *s)
{
	char items[MAX_ITEMS][32];
	int n = split(s, items);
	if (n <= 0 || n > MP_POLICY_COUNT)
		return -1;
	for (int i = 0; i < n; i++)
		if (mp_policy_parse(items[i], &o->policies[i]) < 0)
			return -1;
	o->n_policies = n;
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

static int parse_ranges(struct opts *o, const char *s)
{
	char items[MAX_ITEMS][32];
	int n = split(s, items);
	if (n <= 0)
		return -1;
	for (int i = 0; i < n; i++) {
		char *dash = strchr(items[i], '-');
		uint64_t a, b;
		if (!dash) {
			if (parse_u64(items[i], &b) < 0 || b == 0)
				return -1;
			o->ranges[i] = (struct range){ 0, b };
			continue;
		}
		*dash = 0;
		if (parse_u64(items[i], &a) < 0 || parse_u64(dash + 1, &b) < 0 || b < a)
			return -1;
		o->ranges[i] = (struct range){ a, b - a + 1 };
	}
	o->n_ranges = n;
	return 0;
}

static int parse_param(struct opts *o, const char *s)
{
	const char *eq = strchr(s, '=');
	if (!eq)
		return -1;
	char *end;
	double v = strtod(eq + 1, &end);
	if (*end || end == eq + 1)
		return -1;
	size_t k = (size_t)(eq - s);
	struct mp_policy_params *p = &o->params;
	if (k == 7 && !strncmp(s, "horizon", k) && v >= 1 && v <= MP_POLICY_MAX_HORIZON && v == floor(v))
		p->horizon = (uint32_t)v;
	else if (k == 10 && !strncmp(s, "learn-rate", k) && v > 0)
		p->learn_rate = (float)v;
	else if (k == 12 && !strncmp(s, "feature-rate", k) && v >= 0)
		p->feature_rate = (float)v;
	else if (k == 6 && !strncmp(s, "decay", 5) && s[5] >= '0' && s[5] <= '2' && v >= 0 && v < 1)
		p->decay[s[5] - '0'] = (float)v;
	else if (k == 11 && !strncmp(s, "cross-layer", k) && (v == 0 || v == 1))
		p->cross_layer = (int)v;
	else
		return -1;
	return 0;
}

static const char *mode_name(int mode)
{
	return mode == 0 ? "cold" : "warm";
}

/* Slots for budget b on this trace (per layer, or in all when global). */
static int budget_slots(const struct opts *o, const struct mp_trace_info *in, const struct budget *b,
                        uint64_t *slots)
{
	uint64_t experts = o->global ? (uint64_t)in->layers * in->experts : in->experts;
	if (b->bytes) {
		if (!o->expert_bytes)
			return -1;
		uint64_t n = b->bytes / o->expert_bytes;
		*slots = o->global ? n : n / in->layers;
	} else {
		*slots = (uint64_t)floor(b->fraction * (double)experts + 0.5);
	}
	if (*slots > experts)
		*slots = experts;
	return 0;
}

static double missed_bytes_per_token(const struct opts *o, const struct mp_sim_result *r)
{
	return r->tokens ? (double)r->misses * (double)o->expert_bytes / (double)r->tokens : 0;
}

/* Tokens/s with reads fully overlapped with compute; 0 when unknown. */
static double tokens_per_s(const struct opts *o, const struct mp_sim_result *r)
{
	double t = o->compute_ms / 1000.0;
	double io = missed_bytes_per_token(o, r) / (double)o->disk_bw;
	if (io > t)
		t = io;
	return t > 0 ? 1.0 / t : INFINITY;
}

static void print_table(const struct opts *o, const struct mp_trace_info *in, const struct mp_trace *t,
                        const struct cell *cells, int n)
{
	printf("trace: %s (v%u, %u layers, %u experts, top-%u, %" PRIu64 " sequences)\n", o->trace,
	       in->version, in->layers, in->experts, in->top_k, in->sequences);
	printf("cache: %s; hit rate = hits / uses; demand loading only\n",
	       o->global ? "one pool shared by all layers" : "one cache per layer");
	if (o->expert_bytes)
		printf("expert %.2f MB, disk %.2f GB/s, compute %.1f ms/token; reads assumed fully "
		       "overlapped: time/token = max(compute, missed bytes / bandwidth)\n",
		       o->expert_bytes / 1e6, o->disk_bw / 1e9, o->compute_ms);
	for (int g = 0; g < o->n_ranges; g++) {
		const struct range *rg = &o->ranges[g];
		uint64_t toks = mp_trace_seq_start(t, rg->first + rg->n) - mp_trace_seq_start(t, rg->first);
		printf("\nsequences %" PRIu64 "-%" PRIu64 " (%" PRIu64 " tokens)\n", rg->first,
		       rg->first + rg->n - 1, toks);
		printf("%-8s %6s  %-9s", "budget", "slots", "policy");
		for (int m = 0; m < 2; m++)
			if (o->modes & (1 << m))
				printf("  %s hit", mode_name(m));
		if (o->expert_bytes)
			for (int m = 0; m < 2; m++)
				if (o->modes & (1 << m))
					printf("  %s MB/tok  %s tok/s", mode_name(m), mode_name(m));
		printf("\n");
		for (int b = 0; b < o->n_budgets; b++)
			for (int p = 0; p < o->n_policies; p++) {
				const struct cell *row[2] = { NULL, NULL };
				for (int i = 0; i < n; i++)
					if (cells[i].range == g && cells[i].budget == b && cells[i].policy == p)
						row[cells[i].mode] = &cells[i];
				const struct cell *any = row[0] ? row[0] : row[1];
				printf("%-8s %6" PRIu64 "  %-9s", o->budgets[b].text, any->slots,
				       mp_policy_name(o->policies[p]));
				for (int m = 0; m < 2; m++)
					if (row[m])
						printf("  %8.4f", row[m]->r.hit_rate);
				if (o->expert_bytes)
					for (int m = 0; m < 2; m++)
						if (row[m])
							printf("  %12.1f  %10.2f", missed_bytes_per_token(o, &row[m]->r) / 1e6,
							       tokens_per_s(o, &row[m]->r));
				printf("\n");
			}
	}
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void print_json(const struct opts *o, const struct mp_trace_info *in, const struct cell *cells, int n)
{
	printf("{\"trace\": ");
	json_str(o->trace);
	printf(", \"version\": %u, \"layers\": %u, \"experts\": %u, \"top_k\": %u,\n", in->version,
	       in->layers, in->experts, in->top_k);
	printf(" \"cache\": \"%s\", \"expert_bytes\": %" PRIu64 ", \"disk_bw\": %" PRIu64
	       ", \"compute_ms\": %g, \"overlap\": \"full\",\n \"results\": [\n",
	       o->global ? "global" : "per-layer", o->expert_bytes, o->disk_bw, o->compute_ms);
	for (int i = 0; i < n; i++) {
		const struct cell *c = &cells[i];
		const struct range *rg = &o->ranges[c->range];
		printf("  {\"first_seq\": %" PRIu64 ", \"sequences\": %" PRIu64 ", \"budget\": ", rg->first, rg->n);
		json_str(o->budgets[c->budget].text);
		printf(", \"slots\": %" PRIu64 ", \"policy\": \"%s\", \"mode\": \"%s\", \"tokens\": %" PRIu64
		       ", \"uses\": %" PRIu64 ", \"hits\": %" PRIu64 ", \"hit_rate\": %.6f",
		       c->slots, mp_policy_name(o->policies[c->policy]), mode_name(c->mode), c->r.tokens,
		       c->r.uses, c->r.hits, c->r.hit_rate);
		if (o->expert_bytes) {
			double tps = tokens_per_s(o, &c->r);
			printf(", \"missed_bytes_per_token\": %.0f", missed_bytes_per_token(o, &c->r));
			if (isfinite(tps))
				printf(", \"tokens_per_s\": %.4f", tps);
		}
		printf("}%s\n", i + 1 < n ? "," : "");
	}
	printf(" ]}\n");
}

static void xml_text(FILE *f, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		default:
			if ((unsigned char)*s >= 0x20)
				fputc(*s, f);
		}
	}
}

/* Hit rate (y, 0..1) against budget as a fraction of experts (x, 0..1):
 * one polyline per policy and mode, first range only. */
static int write_svg(const struct opts *o, const struct mp_trace_info *in, const struct cell *cells, int n)
{
	FILE *f = fopen(o->svg, "w");
	if (!f) {
		fprintf(stderr, "moepager-sim: %s: cannot create: %s\n", o->svg, strerror(errno));
		return -1;
	}
	static const char *const colors[MP_POLICY_COUNT] = { "#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f" };
	const double W = 640, H = 420, x0 = 70, y0 = 30, pw = 520, ph = 320;
	uint64_t all = o->global ? (uint64_t)in->layers * in->experts : in->experts;
	fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
	        "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
	fprintf(f, "<title>hit rate against cache budget: ");
	xml_text(f, o->trace);
	fprintf(f, "</title>\n<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
	fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"black\"/>\n",
	        x0, y0, pw, ph);
	for (int i = 0; i <= 10; i++) {
		double x = x0 + pw * i / 10, y = y0 + ph - ph * i / 10;
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x, y0, x, y0 + ph);
		fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, y, x0 + pw, y);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%d%%</text>\n", x, y0 + ph + 16, i * 10);
		fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.1f</text>\n", x0 - 6, y + 4, i / 10.0);
	}
	fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">cache budget (%% of %s experts)</text>\n",
	        x0 + pw / 2, y0 + ph + 36, o->global ? "all" : "each layer's");
	fprintf(f, "<text transform=\"translate(18 %.1f) rotate(-90)\" text-anchor=\"middle\">hit rate</text>\n",
	        y0 + ph / 2);
	int legend = 0;
	for (int p = 0; p < o->n_policies; p++)
		for (int m = 0; m < 2; m++) {
			if (!(o->modes & (1 << m)))
				continue;
			const char *color = colors[o->policies[p]];
			fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", color,
			        m ? " stroke-dasharray=\"6 4\"" : "");
			for (int b = 0; b < o->n_budgets; b++)
				for (int i = 0; i < n; i++) {
					const struct cell *c = &cells[i];
					if (c->range || c->budget != b || c->policy != p || c->mode != m)
						continue;
					fprintf(f, "%.1f,%.1f ", x0 + pw * (double)c->slots / (double)all,
					        y0 + ph - ph * c->r.hit_rate);
				}
			fprintf(f, "\"/>\n");
			double ly = y0 + 14 + 16 * legend++;
			fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n",
			        x0 + pw - 130, ly - 4, x0 + pw - 100, ly - 4, color, m ? " stroke-dasharray=\"6 4\"" : "");
			fprintf(f, "<text x=\"%.1f\" y=\"%.1f\">%s %s</text>\n", x0 + pw - 94, ly,
			        mp_policy_name(o->policies[p]), mode_name(m));
		}
	fprintf(f, "</svg>\n");
	if (fclose(f) != 0) {
		fprintf(stderr, "moepager-sim: %s: write failed\n", o->svg);
		return -1;
	}
	return 0;
}

/* Writes sequences [r->first, r->first + r->n) of t as a v2 trace. */
static int convert(const struct opts *o, const struct mp_trace *t, const struct range *r)
{
	const struct mp_trace_info *in = mp_trace_info(t);
	struct mp_trace_info out = *in;
	out.version = MP_TRACE_V2;
	out.expert_bytes = o->expert_bytes;
	struct mp_trace_writer *w = mp_trace_writer_create();
	if (!w) {
		fprintf(stderr, "moepager-sim: out of memory\n");
		return 1;
	}
	int rc = mp_trace_writer_open(w, o->convert, &out);
	for (uint64_t s = r->first; rc == 0 && s < r->first + r->n; s++) {
		for (uint64_t tok = mp_trace_seq_start(t, s); rc == 0 && tok < mp_trace_seq_start(t, s + 1); tok++)
			for (uint32_t l = 0; rc == 0 && l < in->layers; l++)
				rc = mp_trace_writer_add(w, l, mp_trace_ids(t, tok, l), mp_trace_weights(t, tok, l),
				                         mp_trace_outcomes(t, tok, l), mp_trace_stalls(t, tok, l));
		if (rc == 0)
			rc = mp_trace_writer_end_sequence(w);
	}
	if (rc == 0)
		rc = mp_trace_writer_close(w);
	if (rc < 0)
		fprintf(stderr, "moepager-sim: %s\n", mp_trace_writer_error(w));
	mp_trace_writer_destroy(w);
	return rc < 0 ? 1 : 0;
}

/* --routing: ROUTING.md's statistics of each range instead of a replay. */
static int print_routing(const struct opts *o, const struct mp_trace *t)
{
	const struct mp_trace_info *in = mp_trace_info(t);
	for (int g = 0; g < o->n_ranges; g++) {
		struct mp_sim_routing r;
		if (mp_sim_routing(t, o->ranges[g].first, o->ranges[g].n, &r) < 0) {
			fprintf(stderr, "moepager-sim: cannot measure the routing of %s\n", o->trace);
			return 1;
		}
		printf("%s, sequences %" PRIu64 "-%" PRIu64 " (%" PRIu64 " tokens, %u layers, %u experts, top-%u)\n",
		       o->trace, o->ranges[g].first, o->ranges[g].first + o->ranges[g].n - 1, r.tokens,
		       in->layers, in->experts, in->top_k);
		printf("  top 10%% of a layer's experts carry %.3f of its uses (whole range), top 25%% %.3f\n",
		       r.share10, r.share25);
		printf("  top 10%% within one sequence: %.3f of all uses (sequences weighted by length), "
		       "%.3f mean over sequences\n", r.share10_seq, r.share10_seq_mean);
		printf("  reuse, P(used at t+1 | used at t): %.3f (uniform routing: %.3f)\n", r.reuse,
		       (double)in->top_k / in->experts);
		printf("  per layer:");
		for (uint32_t l = 0; l < in->layers; l++)
			printf(" %.2f", r.reuse_layer[l]);
		printf("\n");
	}
	return 0;
}

static int parse_args(struct opts *o, int argc, char **argv, int *exit_now)
{
	static const struct option lopts[] = {
		{ "budgets", required_argument, 0, 'b' },
		{ "policies", required_argument, 0, 'p' },
		{ "mode", required_argument, 0, 'm' },
		{ "sequences", required_argument, 0, 'n' },
		{ "global", no_argument, 0, 'g' },
		{ "expert-bytes", required_argument, 0, 1 },
		{ "disk-bw", required_argument, 0, 2 },
		{ "compute-ms", required_argument, 0, 3 },
		{ "param", required_argument, 0, 4 },
		{ "svg", required_argument, 0, 5 },
		{ "json", no_argument, 0, 6 },
		{ "convert", required_argument, 0, 7 },
		{ "model-in", required_argument, 0, 8 },
		{ "model-out", required_argument, 0, 9 },
		{ "routing", no_argument, 0, 10 },
		{ "belady-lookahead", required_argument, 0, 11 },
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	*exit_now = 0;
	opterr = 0;
	int c;
	char *end;
	while ((c = getopt_long(argc, argv, ":b:p:m:n:ghV", lopts, NULL)) != -1) {
		switch (c) {
		case 'b':
			if (parse_budgets(o, optarg) < 0)
				return die_arg("--budgets %s: expected N%% or SIZE items, comma-separated", optarg);
			break;
		case 'p':
			if (parse_policies(o, optarg) < 0)
				return die_arg("--policies %s: expected lru, lfu, moepager, belady", optarg);
			break;
		case 'm':
			if (!strcmp(optarg, "cold"))
				o->modes = 1;
			else if (!strcmp(optarg, "warm"))
				o->modes = 2;
			else if (!strcmp(optarg, "both"))
				o->modes = 3;
			else
				return die_arg("--mode %s: expected cold, warm or both", optarg);
			break;
		case 'n':
			o->ranges_default = 0;
			if (parse_ranges(o, optarg) < 0)
				return die_arg("--sequences %s: expected N or A-B items, comma-separated", optarg);
			break;
		case 'g':
			o->global = 1;
			break;
		case 1:
			if (mp_size_parse(optarg, &o->expert_bytes) < 0 || o->expert_bytes == 0)
				return die_arg("--expert-bytes %s: expected a SIZE above 0", optarg);
			o->have_expert_bytes = 1;
			break;
		case 2:
			if (mp_size_parse(optarg, &o->disk_bw) < 0 || o->disk_bw == 0)
				return die_arg("--disk-bw %s: expected a SIZE (per second) above 0", optarg);
			break;
		case 3:
			o->compute_ms = strtod(optarg, &end);
			if (*end || end == optarg || !(o->compute_ms >= 0))
				return die_arg("--compute-ms %s: expected milliseconds >= 0", optarg);
			break;
		case 4:
			if (parse_param(o, optarg) < 0)
				return die_arg("--param %s: expected KEY=VALUE with a known key and a value in range",
				               optarg);
			break;
		case 5:
			o->svg = optarg;
			break;
		case 6:
			o->json = 1;
			break;
		case 10:
			o->routing = 1;
			break;
		case 7:
			o->convert = optarg;
			break;
		case 8:
			o->model_in = optarg;
			break;
		case 9:
			o->model_out = optarg;
			break;
		case 11: {
			char *stop;
			unsigned long v = strtoul(optarg, &stop, 10);
			if (!*optarg || *stop || optarg[0] == '-' || v > 1000000)
				return die_arg("--belady-lookahead %s: expected a token count, 0 to 1000000",
				               optarg);
			o->belady_lookahead = (uint32_t)v;
			break;
		}
		case 'h':
			fputs(usage_text, stdout);
			*exit_now = 1;
			return 0;
		case 'V':
			printf("moepager-sim %s\n", PACKAGE_VERSION);
			*exit_now = 1;
			return 0;
		case ':':
			return die_arg("option %s needs a value", argv[optind - 1]);
		default:
			return die_arg("unknown option %s", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return die_arg("missing TRACE");
	o->trace = argv[optind++];
	if (optind < argc)
		return die_arg("unexpected argument '%s'", argv[optind]);
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .modes = 3, .disk_bw = 6500000000ull };
	mp_policy_params_default(&o.params);
	parse_budgets(&o, "10%,20%,27%,40%,50%,60%,75%");
	parse_policies(&o, "lru,lfu,moepager,belady");
	parse_ranges(&o, "300");
	o.ranges_default = 1;
	int exit_now, rc = parse_args(&o, argc, argv, &exit_now);
	if (rc || exit_now)
		return rc;
	struct mp_trace *t = mp_trace_create();
	if (!t || mp_trace_read(t, o.trace) < 0) {
		fprintf(stderr, "moepager-sim: %s\n", t ? mp_trace_error(t) : "out of memory");
		mp_trace_destroy(t);
		return 1;
	}
	const struct mp_trace_info *in = mp_trace_info(t);
	if (!o.have_expert_bytes)
		o.expert_bytes = in->expert_bytes;
	if (o.ranges_default && o.ranges[0].n > in->sequences)
		o.ranges[0].n = in->sequences;   /* a short trace: all of it */
	for (int g = 0; g < o.n_ranges; g++)
		if (o.ranges[g].first + o.ranges[g].n > in->sequences) {
			fprintf(stderr, "moepager-sim: %s: --sequences: asked up to sequence %" PRIu64
			        ", the trace has %" PRIu64 "\n", o.trace, o.ranges[g].first + o.ranges[g].n - 1,
			        in->sequences);
			mp_trace_destroy(t);
			return 2;
		}
	if (o.routing) {
		rc = print_routing(&o, t);
		mp_trace_destroy(t);
		return rc;
	}
	if (o.convert) {
		rc = convert(&o, t, &o.ranges[0]);
		mp_trace_destroy(t);
		return rc;
	}
	int n = 0, cap = o.n_ranges * o.n_budgets * o.n_policies * 2;
	struct cell *cells = mp_calloc((size_t)cap, sizeof *cells);
	if (!cells) {
		fprintf(stderr, "moepager-sim: out of memory\n");
		mp_trace_destroy(t);
		return 1;
	}
	rc = 0;
	for (int g = 0; g < o.n_ranges && !rc; g++)
		for (int b = 0; b < o.n_budgets && !rc; b++) {
			uint64_t slots;
			if (budget_slots(&o, in, &o.budgets[b], &slots) < 0) {
				fprintf(stderr, "moepager-sim: --budgets %s: a byte budget needs --expert-bytes "
				        "(or a v2 trace that records it)\n", o.budgets[b].text);
				rc = 2;
				break;
			}
			for (int p = 0; p < o.n_policies && !rc; p++)
				for (int m = 0; m < 2 && !rc; m++) {
					if (!(o.modes & (1 << m)))
						continue;
					struct cell *c = &cells[n];
					*c = (struct cell){ .budget = b, .policy = p, .mode = m, .range = g, .slots = slots };
					struct mp_sim_config cfg = {
						.trace = t, .first_seq = o.ranges[g].first, .n_seq = o.ranges[g].n,
						.policy = o.policies[p], .params = &o.params, .cold = m == 0,
						.slots = o.global ? 0 : (uint32_t)slots,
						.global_slots = o.global ? slots : 0,
						.model_in = o.model_in, .model_out = o.model_out,
						.belady_lookahead = o.belady_lookahead,
					};
					if (slots == 0) {
						fprintf(stderr, "moepager-sim: --budgets %s: less than one expert%s\n",
						        o.budgets[b].text, o.global ? "" : " per layer");
						rc = 2;
					} else if (mp_sim_run(&cfg, &c->r) < 0) {
						fprintf(stderr, "moepager-sim: %s: %s\n", o.trace, c->r.error);
						rc = 1;
					} else {
						n++;
					}
				}
		}
	if (!rc) {
		if (o.json)
			print_json(&o, in, cells, n);
		else
			print_table(&o, in, t, cells, n);
		if (o.svg && write_svg(&o, in, cells, n) < 0)
			rc = 1;
	}
	mp_free(cells);
	mp_trace_destroy(t);
	return rc;
}
