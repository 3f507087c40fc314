/*
 * moepager.c — the moepager command: generate text or chat with a deepseek2
 * GGUF model.
 *
 * Flow: parse flags (src/opt.h; the model and sampling flags are
 * src/session.h's) → open the session (model file, tokenizer, expert source,
 * forward pass) → sampler → streamed, UTF-8-safe output.  The R1 <think> part
 * is shown dimmed on a terminal, or hidden with --hide-think.  Ctrl-C stops
 * the current answer (chat returns to its prompt); a second Ctrl-C exits.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "cpu.h"
#include "dispatch.h"
#include "dist.h"
#include "err.h"
#include "evaluate.h"
#include "file.h"
#include "io.h"
#include "log.h"
#include "model.h"
#include "opt.h"
#include "sampler.h"
#include "session.h"
#include "size.h"
#include "tokenizer.h"

static const char usage_line[] = "moepager -m MODEL.gguf [-p PROMPT | -f FILE | -i] [OPTION]...";
static const char description[] =
	"Run DeepSeek-R1-class MoE models larger than RAM by paging the routed\n"
	"experts from NVMe into a bounded memory pool.  Give the first part of a\n"
	"split model; the others are found by name.\n"
	"\n"
	"Environment: MOEPAGER_CPU=scalar|avx2|avx512 forces a kernel path;\n"
	"MOEPAGER_LOG=error|warn|info|debug sets the diagnostics level.";

struct flags {
	struct mp_session_flags s;   /* model and sampling flags */
	const char *prompt, *file;
	int interactive, raw, hide_think, version;
	int perplexity;              /* --perplexity (src/evaluate.h) */
	const char *logits_out, *force_tokens;
	int64_t logits_top;
};

static volatile sig_atomic_t interrupted;
static volatile sig_atomic_t terminated;   /* SIGTERM: mpirun ends the job (Ctrl-C there) */

static void on_sigint(int sig)
{
	if (interrupted)
		_exit(130);          /* second Ctrl-C: leave now */
	interrupted = 1;
	terminated = sig == SIGTERM;
}

/* Under mpirun (src/dist.h) the ranks run in process groups of their own, so
 * Ctrl-C reaches mpirun only, which sends SIGTERM to every rank (SIGKILL a
 * while later).  Rank 0 takes SIGTERM as Ctrl-C and ends the session: the
 * answer stops at the next token, the summary is printed and the other ranks
 * are told to stop (mp_dist_finish), so every rank exits 0.  The other ranks
 * ignore both signals and wait for that stop; a rank 0 that died is noticed by
 * mpirun, which kills them. */
static void rank_signals(const struct mp_dist *dist)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = mp_dist_rank(dist) == 0 ? on_sigint : SIG_IGN;
	sigaction(SIGTERM, &sa, NULL);
	if (mp_dist_rank(dist) > 0)
		sigaction(SIGINT, &sa, NULL);
}

/* Prints the build and machine report; returns the exit status. */
static int report(void)
{
	char feats[512], why[256];
	printf("moepager %s\n", PACKAGE_VERSION);
	printf("cpu:          %s\n", mp_cpu_brand());
	printf("cpu features: %s\n", mp_cpu_describe(mp_cpu_features(), feats, sizeof feats));
	if (mp_dispatch_init(why, sizeof why) < 0) {
		fprintf(stderr, "moepager: %s\n", why);
		return 1;
	}
	printf("kernel path:  %s\n", why);
	printf("allocator:    %s\n", mp_alloc_backend());
	printf("io backends:");
	for (const struct mp_io_ops *const *b = mp_io_backends(); *b; b++) {
		char note[256] = "";
		int usable = (*b)->probe(note, sizeof note) == 0;
		printf(" %s%s%s%s", (*b)->name, usable ? "" : " (unusable: ", usable ? "" : note,
		       usable ? "" : ")");
	}
	printf("\n");
	const struct mp_io_ops *chosen;
	char note[1024];
	if (mp_io_select("auto", &chosen, note, sizeof note) == 0)
		printf("io auto:      %s%s%s\n", chosen->name, note[0] ? " — " : "", note);
	return 0;
}

/* ---- the answer on the terminal ------------------------------------------------ */

struct cli {
	struct mp_session *s;
	struct mp_sampler *sampler;
	int32_t eos, think_open, think_close;
	int tty, hide_think, in_think;
	char stopped[128];           /* why the last answer ended, for the summary */
};

static void emit(struct cli *c, const char *text, size_t n)
{
	if (!n || (c->in_think && c->hide_think))
		return;
	fwrite(text, 1, n, stdout);
}

/* Prints one token's text (mp_session_token_fn), switching the dim style
 * around the <think> part; stops on Ctrl-C. */
static int show(void *ctx, int32_t id, const char *text, size_t n)
{
	struct cli *c = ctx;
	if (id >= 0 && id == c->think_open) {
		c->in_think = 1;
		if (c->tty && !c->hide_think)
			fputs("\033[2m", stdout);
	}
	emit(c, text, n);
	if (id >= 0 && id == c->think_close) {
		c->in_think = 0;
		if (c->tty && !c->hide_think)
			fputs("\033[0m", stdout);
	}
	fflush(stdout);
	return interrupted != 0;
}

/* Samples up to n_predict tokens (−1: until EOS or the context is full). */
static int generate(struct cli *c, const float *logits, int64_t n_predict)
{
	struct mp_session_gen g = { .n_predict = n_predict, .fn = show, .ctx = c };
	int rc = interrupted ? 0 : mp_session_generate(c->s, c->sampler, logits, &g);
	if (c->in_think && c->tty && !c->hide_think)
		fputs("\033[0m", stdout);
	fputc('\n', stdout);
	fflush(stdout);
	if (rc < 0)
		fprintf(stderr, "moepager: %s\n", mp_session_error(c->s));
	else if (g.end == MP_SESSION_CTX_FULL)
		fprintf(stderr, "moepager: the context is full: all %u positions of --ctx-size are used, "
			"so the answer stops here; a larger --ctx-size gives it room\n", mp_session_ctx(c->s));
	/* why the answer ended, for the summary at exit */
	if (rc < 0)
		snprintf(c->stopped, sizeof c->stopped, "an error (above)");
	else if (interrupted || g.end == MP_SESSION_STOPPED)
		snprintf(c->stopped, sizeof c->stopped, "%s", terminated ? "interrupted (SIGTERM: "
			 "Ctrl-C on mpirun, or the job was ended)" : "interrupted (Ctrl-C)");
	else if (g.end == MP_SESSION_EOS)
		snprintf(c->stopped, sizeof c->stopped, "end of text");
	else if (g.end == MP_SESSION_CTX_FULL)
		snprintf(c->stopped, sizeof c->stopped, "the context is full (--ctx-size %u)",
			 mp_session_ctx(c->s));
	else
		snprintf(c->stopped, sizeof c->stopped, "-n %lld tokens generated", (long long)n_predict);
	return rc;
}

/* Feeds ids, saying what failed. */
static int feed(struct cli *c, const int32_t *ids, size_t n, const float **logits)
{
	int rc = mp_session_feed(c->s, ids, n, c->sampler, logits);
	if (rc < 0)
		fprintf(stderr, "moepager: %s\n", mp_session_error(c->s));
	return rc;
}

static int encode(struct cli *c, const char *text, unsigned flags, int32_t **ids, size_t *n)
{
	int rc = mp_session_encode(c->s, text, flags, ids, n);
	if (rc < 0)
		fprintf(stderr, "moepager: %s\n", mp_session_error(c->s));
	return rc;
}

/* One user turn of the R1 template, with the <think> opening the answer. */
static int user_turn(struct cli *c, const char *msg, int first, const float **logits)
{
	struct mp_tok_msg m = { MP_TOK_USER, msg };
	char *text;
	int64_t len = mp_tok_chat_render(&m, 1, MP_TOK_CHAT_GEN_PROMPT | MP_TOK_CHAT_THINK, &text);
	if (len < 0)
		return (int)len;
	/* later turns continue the cached conversation: drop the leading BOS */
	struct mp_tok *tok = mp_session_tok(c->s);
	const char *body = text;
	size_t bos_len = 0;
	const char *bos = mp_tok_bos(tok) >= 0 ? mp_tok_piece(tok, mp_tok_bos(tok), &bos_len) : NULL;
	if (!first && bos && bos_len && strncmp(text, bos, bos_len) == 0)
		body = text + bos_len;
	int32_t *ids;
	size_t n;
	int rc = encode(c, body, (first ? MP_TOK_ADD_BOS : 0) | MP_TOK_PARSE_SPECIAL, &ids, &n);
	mp_free(text);
	if (rc < 0)
		return rc;
	rc = feed(c, ids, n, logits);
	/* the template ends with "<think>\n": the answer starts in the think part */
	for (size_t i = n >= 2 ? n - 2 : 0; rc == 0 && i < n; i++)
		if (ids[i] == c->think_open)
			c->in_think = 1;
	if (c->in_think && c->tty && !c->hide_think)
		fputs("\033[2m", stdout);
	mp_free(ids);
	return rc;
}

/* ---- chat -------------------------------------------------------------------------- */

/* With MOEPAGER_LOG=debug: the token ids at cached positions from..to-1 on
 * one line (tests compare the chat context with the template's rendering of
 * the conversation). */
static void debug_ids(const struct cli *c, const char *what, uint32_t from, uint32_t to)
{
	if (mp_log_get_level() < MP_LOG_DEBUG)
		return;
	const int32_t *ids = mp_session_ids(c->s);
	fprintf(stderr, "moepager: debug: %s (%u tokens):", what, to - from);
	for (uint32_t i = from; i < to; i++)
		fprintf(stderr, " %d", ids[i]);
	fputc('\n', stderr);
}

/* Closes an answer in the cache as R1's template renders the conversation:
 * "<｜Assistant｜>" + the answer after its last "</think>" (the template drops
 * the thinking of earlier turns) + end of sentence.  asst is the position
 * after this turn's "<｜Assistant｜>", gen where the generated tokens start.
 * The cache is rewound to the longest prefix it shares with that form, and
 * the rest is fed (usually the answer's final part: its thinking goes). */
static int close_answer(struct cli *c, uint32_t asst, uint32_t gen)
{
	struct mp_model *model = mp_session_model(c->s);
	struct mp_tok *tok = mp_session_tok(c->s);
	const int32_t *cached = mp_session_ids(c->s);
	uint32_t pos = mp_model_pos(model);
	size_t len = mp_tok_decode(tok, cached + gen, pos - gen, MP_TOK_DECODE_SPECIAL, NULL, 0);
	char *text = mp_malloc(len + 1);
	if (!text)
		return -ENOMEM;
	mp_tok_decode(tok, cached + gen, pos - gen, MP_TOK_DECODE_SPECIAL, text, len + 1);
	const char *body = text;
	for (const char *q = strstr(text, "</think>"); q; q = strstr(q + 1, "</think>"))
		body = q + strlen("</think>");
	int32_t *want;
	size_t n;
	int rc = encode(c, body, MP_TOK_PARSE_SPECIAL, &want, &n);
	mp_free(text);
	if (rc < 0)
		return rc;
	int32_t *grown = mp_realloc(want, (n + 1) * sizeof *want);
	if (!grown) {
		mp_free(want);
		return -ENOMEM;
	}
	want = grown;
	want[n++] = c->eos;
	size_t same = 0;
	while (same < n && asst + same < pos && cached[asst + same] == want[same])
		same++;
	mp_model_truncate(model, asst + (uint32_t)same);
	const float *logits;
	rc = same < n ? feed(c, want + same, n - same, &logits) : 0;
	mp_free(want);
	return rc;
}

/* The position after the last "<｜Assistant｜>" cached (0: none). */
static uint32_t assistant_pos(const struct cli *c)
{
	int32_t a = mp_tok_find(mp_session_tok(c->s), "<｜Assistant｜>", strlen("<｜Assistant｜>"));
	const int32_t *ids = mp_session_ids(c->s);
	for (uint32_t i = mp_model_pos(mp_session_model(c->s)); a >= 0 && i > 0; i--)
		if (ids[i - 1] == a)
			return i;
	return 0;
}

static int chat(struct cli *c, int64_t n_predict)
{
	char line[8192];
	int first = 1;
	struct mp_model *model = mp_session_model(c->s);
	for (;;) {
		interrupted = 0;
		if (terminated)
			break;
		fputs("> ", stdout);
		fflush(stdout);
		if (!fgets(line, sizeof line, stdin))
			break;
		line[strcspn(line, "\n")] = 0;
		if (!line[0])
			continue;
		const float *logits;
		if (user_turn(c, line, first, &logits) < 0)
			return 1;
		first = 0;
		uint32_t asst = assistant_pos(c), gen = mp_model_pos(model);
		debug_ids(c, "chat context", 0, gen);
		generate(c, logits, n_predict);
		debug_ids(c, "answer", gen, mp_model_pos(model));
		c->in_think = 0;
		mp_session_end_sequence(c->s);   /* one trace sequence per turn */
		if (interrupted)
			fputs("[stopped]\n", stdout);
		if (asst && close_answer(c, asst, gen) < 0)
			return 1;
	}
	return 0;
}

/* ---- one run ----------------------------------------------------------------------- */

/* --perplexity, --logits-out, --force-tokens: src/evaluate.c runs the text. */
static int evaluate(const struct flags *f, struct cli *c)
{
	char err[1024], settings[256], bsz[32];
	char *text = NULL;
	if (f->file && !(text = mp_file_read(f->file, NULL, err, sizeof err))) {
		fprintf(stderr, "moepager: %s\n", err);
		return 1;
	}
	const struct mp_session_flags *sf = &f->s;
	int paged = mp_session_stats_path(c->s) != NULL;
	struct mp_session_opts so;
	struct mp_sampler_params unused;
	mp_session_flags_apply(sf, "moepager", &so, &unused);
	snprintf(settings, sizeof settings, "experts %u, kv %s, threads %lld, io %s, budget %s",
		 mp_session_top_k(c->s), sf->kv_type == 1 ? "q8_0" : "f16", (long long)sf->threads,
		 paged ? so.io : "none", paged ? mp_size_format(sf->cache_budget ? sf->cache_budget :
								 sf->mem_limit, bsz, sizeof bsz)
			: "all experts resident");
	struct mp_eval_cli ec = { f->perplexity, f->logits_out, (uint32_t)f->logits_top,
				  f->force_tokens, text ? text : f->prompt, f->raw, sf->n_predict,
				  (uint32_t)sf->ctx, sf->model, settings };
	int status = mp_eval_main(&ec, mp_session_model(c->s), mp_session_hparams(c->s),
				  mp_session_tok(c->s), c->sampler);
	mp_free(text);
	return status;
}

/* One prompt (-p, -f; templated or --raw) and its answer. */
static int one_prompt(const struct flags *f, struct cli *c)
{
	char err[1024];
	char *text = NULL;
	if (f->file && !(text = mp_file_read(f->file, NULL, err, sizeof err))) {
		fprintf(stderr, "moepager: %s\n", err);
		return 1;
	}
	const char *prompt = text ? text : f->prompt ? f->prompt : "";
	const float *logits;
	int rc;
	if (f->raw) {
		int32_t *ids;
		size_t n;
		if ((rc = encode(c, prompt, MP_TOK_ADD_BOS | MP_TOK_PARSE_SPECIAL, &ids, &n)) == 0) {
			if (n == 0) {
				fprintf(stderr, "moepager: the prompt is empty and the vocabulary has no BOS\n");
				rc = -MP_EARG;
			} else {
				rc = feed(c, ids, n, &logits);
			}
			mp_free(ids);
		}
	} else {
		rc = user_turn(c, prompt, 1, &logits);
	}
	mp_free(text);
	if (rc < 0)
		return 1;
	return generate(c, logits, f->s.n_predict) < 0 ? 1 : 0;
}

/* Rank 0 at exit: what the messages between ranks cost per decoded token. */
static void print_pipeline(const struct mp_dist *dist)
{
	uint64_t tokens, fwd_ns, stage_ns;
	mp_dist_counts(dist, &tokens, &fwd_ns, &stage_ns);
	uint32_t hops = mp_dist_size(dist);
	if (!tokens || hops < 2)
		return;
	double msg_us = (double)(fwd_ns > stage_ns ? fwd_ns - stage_ns : 0) / 1e3 / (double)tokens;
	fprintf(stderr, "moepager: pipeline: %u ranks, %llu decode tokens: %.1f us per token in "
		"messages (%u hops, %.1f us per hop), %.1f us per token on the other ranks\n", hops,
		(unsigned long long)tokens, msg_us, hops, msg_us / hops,
		(double)stage_ns / 1e3 / (double)tokens);
}

static int run(const struct flags *f, struct mp_dist *dist)
{
	char err[1024];
	struct mp_session_opts so;
	struct mp_sampler_params sp;
	mp_session_flags_apply(&f->s, "moepager", &so, &sp);
	so.dist = dist;
	struct cli c;
	memset(&c, 0, sizeof c);
	if (mp_session_open(&so, &c.s, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		return 1;
	}
	int status = 1;
	int serve = mp_session_serve(c.s);   /* ranks after the first run their layers */
	if (serve <= 0) {
		status = serve < 0;
		goto out;
	}
	if (mp_sampler_create(&sp, mp_session_hparams(c.s)->n_vocab, &c.sampler, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		goto out;
	}
	struct mp_tok *tok = mp_session_tok(c.s);
	c.eos = mp_tok_eos(tok);
	if (f->s.ignore_eos)
		mp_sampler_ban(c.sampler, c.eos);
	c.think_open = mp_tok_find(tok, "<think>", 7);
	c.think_close = mp_tok_find(tok, "</think>", 8);
	/* under mpirun rank 0's output is a pseudo-terminal of Open MPI's whatever
	 * mpirun's own output is (a file, a pipe): no escape codes there */
	c.tty = isatty(STDOUT_FILENO) && mp_dist_size(dist) < 2;
	c.hide_think = f->hide_think;
	if (f->perplexity || f->logits_out || f->force_tokens) {
		status = evaluate(f, &c);
		mp_session_print_pager(c.s);
		print_pipeline(dist);
		goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_sigint;
	sigaction(SIGINT, &sa, NULL);
	status = f->interactive ? chat(&c, f->s.n_predict) : one_prompt(f, &c);
	mp_session_print_speed(c.s);
	if (c.stopped[0])
		fprintf(stderr, "moepager: generation stopped: %s\n", c.stopped);
	mp_session_print_pager(c.s);
	print_pipeline(dist);
out:
	mp_sampler_destroy(c.sampler);
	mp_session_close(c.s);
	return status;
}

int main(int argc, char **argv)
{
	struct flags f = { .logits_top = 20 };
	mp_session_flags_init(&f.s);
	const struct mp_opt head[] = {
		{ "prompt", 'p', MP_OPT_STRING, &f.prompt, "TEXT", "prompt, sent as one user turn of the chat template", 0, 0, NULL, NULL },
		{ "file", 'f', MP_OPT_STRING, &f.file, "PATH", "read the prompt from a file", 0, 0, NULL, NULL },
		{ "interactive", 'i', MP_OPT_FLAG, &f.interactive, NULL, "chat: read user turns from standard input", 0, 0, NULL, NULL },
		{ "raw", 0, MP_OPT_FLAG, &f.raw, NULL, "use the prompt as is, without the chat template", 0, 0, NULL, NULL },
		{ "hide-think", 0, MP_OPT_FLAG, &f.hide_think, NULL, "do not print the <think> part", 0, 0, NULL, NULL },
	};
	const struct mp_opt tail[] = {
		{ "perplexity", 0, MP_OPT_FLAG, &f.perplexity, NULL, "perplexity of the -f text in chunks of --ctx-size, scoring each chunk's second half", 0, 0, NULL, NULL },
		{ "logits-out", 0, MP_OPT_STRING, &f.logits_out, "FILE", "write every evaluated position's logits and routing as JSON (docs/logits-format.md)", 0, 0, NULL, NULL },
		{ "logits-top", 0, MP_OPT_INT, &f.logits_top, "K", "logits kept per position in --logits-out", 1, 1024, NULL, NULL },
		{ "force-tokens", 0, MP_OPT_STRING, &f.force_tokens, "IDS", "feed these token ids (1,2,3 or @FILE) after the prompt instead of sampling", 0, 0, NULL, NULL },
		{ "version", 'V', MP_OPT_FLAG, &f.version, NULL, "print the version, CPU features, kernel path and I/O backends", 0, 0, NULL, NULL },
	};
	/* -m, this command's prompt flags, the shared model and sampling flags, the rest */
	struct mp_opt shared[MP_SESSION_N_FLAGS];
	mp_session_flag_table(&f.s, shared);
	struct mp_opt opts[MP_SESSION_N_FLAGS + sizeof head / sizeof head[0] + sizeof tail / sizeof tail[0]];
	size_t n_opts = 0;
	opts[n_opts++] = shared[0];
	for (size_t i = 0; i < sizeof head / sizeof head[0]; i++)
		opts[n_opts++] = head[i];
	for (size_t i = 1; i < MP_SESSION_N_FLAGS; i++)
		opts[n_opts++] = shared[i];
	for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
		opts[n_opts++] = tail[i];
	int rc = mp_opt_parse_main("moepager", usage_line, description, opts, n_opts, argc, argv,
				   NULL, 0, NULL);
	if (rc >= 0)
		return rc;
	if (f.version)
		return report();
	if (!f.s.model) {
		fprintf(stderr, "moepager: -m MODEL.gguf is required (see --help)\n");
		return 2;
	}
	if (f.prompt && f.file) {
		fprintf(stderr, "moepager: -p and -f both give a prompt: choose one\n");
		return 2;
	}
	if (f.interactive && (f.perplexity || f.logits_out || f.force_tokens)) {
		fprintf(stderr, "moepager: --perplexity, --logits-out and --force-tokens do not work with -i\n");
		return 2;
	}
	if (f.interactive && (f.prompt || f.file || f.raw)) {
		fprintf(stderr, "moepager: -i reads the conversation from standard input; drop -p/-f/--raw\n");
		return 2;
	}
	struct mp_dist *dist;   /* several ranks under mpirun (src/dist.h), else NULL */
	char err[256];
	if (mp_dist_init(&argc, &argv, &dist, err, sizeof err) < 0) {
		fprintf(stderr, "moepager: %s\n", err);
		return 1;
	}
	if (dist)
		rank_signals(dist);
	rc = run(&f, dist);
	mp_dist_finish(dist, rc);   /* on failure: names this rank and stops every rank */
	return rc;
}
