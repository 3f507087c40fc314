/*
 * moepager-compare — compares two teacher-forced logit files
 * (docs/logits-format.md) position by position: how many positions align,
 * where expert routing flipped, and the largest logit difference before the
 * first flip of each sequence.  The logic is mp_eval_compare (src/evaluate.c); this is its
 * command line.
 *
 * Exit status: 0 pass, 1 an unexcused routing flip, a logit difference above
 * --tol or no aligned positions, 2 bad usage or an unreadable file.
 */
#include <stdio.h>

#include "evaluate.h"
#include "opt.h"

static const char usage_line[] = "moepager-compare [OPTION]... REFERENCE.json OTHER.json";
static const char description[] =
	"Compare two logit files written by moepager --logits-out (or by another\n"
	"implementation in the same format) on the same input tokens.  Reports the\n"
	"aligned positions, the positions where expert routing flipped, the largest\n"
	"logit difference before the first flip of each sequence (a run from cache\n"
	"position 0: a perplexity chunk, a prompt), argmax agreement and, for two\n"
	"--perplexity runs, the paired perplexity ratio.  The first flip of a\n"
	"sequence is excused only where the reference's routing margin was below\n"
	"--margin (a near-tie that rounding may decide either way); after it the\n"
	"hidden states differ, so later differences are reported, not checked.\n"
	"Exit status: 0 pass, 1 fail (unexcused flip, difference above --tol,\n"
	"nothing aligned), 2 error.  The format: docs/logits-format.md.";

int main(int argc, char **argv)
{
	struct mp_eval_cmp_opts o = { 0.01, 0.01 };
	int version = 0, quiet = 0;
	const struct mp_opt opts[] = {
		{ "margin", 0, MP_OPT_FLOAT, &o.margin, "M", "excuse a routing flip where the reference's routing margin is below M", 0, 1e9, NULL, NULL },
		{ "tol", 0, MP_OPT_FLOAT, &o.tol, "T", "largest allowed logit difference (absolute, in logits) before a sequence's first flip", 0, 1e9, NULL, NULL },
		{ "quiet", 'q', MP_OPT_FLAG, &quiet, NULL, "print nothing; only the exit status", 0, 0, NULL, NULL },
		{ "version", 'V', MP_OPT_FLAG, &version, NULL, "print the version and exit", 0, 0, NULL, NULL },
	};
	const size_t n_opts = sizeof opts / sizeof opts[0];
	const char *files[2];
	size_t n_files = 0;
	int rc = mp_opt_parse_main("moepager-compare", usage_line, description, opts, n_opts, argc, argv,
				   files, 2, &n_files);
	if (rc >= 0)
		return rc;
	if (version) {
		printf("moepager-compare %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (n_files != 2) {
		fprintf(stderr, "moepager-compare: give two files, the reference first (see --help)\n");
		return 2;
	}
	struct mp_eval_cmp r;
	char err[512];
	if (mp_eval_compare(files[0], files[1], &o, &r, err, sizeof err) < 0) {
		fprintf(stderr, "moepager-compare: %s\n", err);
		return 2;
	}
	if (!quiet)
		mp_eval_compare_print(stdout, &r, &o);
	return r.pass ? 0 : 1;
}
