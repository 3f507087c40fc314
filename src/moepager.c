/*
 * moepager.c — the moepager command.
 *
 * Today it reports what this build and this machine offer (version, CPU
 * features, kernel path, allocator, I/O backends); the forward pass and the
 * pager issues add generation from a model.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "cpu.h"
#include "dispatch.h"
#include "err.h"
#include "io.h"

static const char usage_text[] =
	"Usage: moepager [OPTION]...\n"
	"Run DeepSeek-R1-class MoE models larger than RAM by paging the routed\n"
	"experts from NVMe into a bounded memory pool.\n"
	"\n"
	"Options:\n"
	"  -h, --help       print this help and exit\n"
	"  -V, --version    print the version, the CPU features, the kernel path\n"
	"                   and the I/O backends of this build, and exit\n"
	"\n"
	"Environment:\n"
	"  MOEPAGER_CPU=scalar|avx2|avx512   force a kernel path (default: best)\n"
	"  MOEPAGER_LOG=error|warn|info|debug  diagnostics level (default: warn)\n";

/* Prints the build and machine report; returns the process exit status. */
static int report(void)
{
	char feats[512], why[256];
	printf("moepager %s\n", PACKAGE_VERSION);
	printf("cpu:          %s\n", mp_cpu_brand());
	printf("cpu features: %s\n", mp_cpu_describe(mp_cpu_features(), feats, sizeof feats));
	int rc = mp_dispatch_init(why, sizeof why);
	if (rc < 0) {
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "help", no_argument, 0, 'h' },
		{ "version", no_argument, 0, 'V' },
		{ 0, 0, 0, 0 },
	};
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, ":hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			return report();
		case ':':
			fprintf(stderr, "moepager: option %s needs a value (see --help)\n", argv[optind - 1]);
			return 2;
		default:
			fprintf(stderr, "moepager: unknown option %s (see --help)\n", argv[optind - 1]);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "moepager: unexpected argument '%s' (see --help)\n", argv[optind]);
		return 2;
	}
	return report();
}
