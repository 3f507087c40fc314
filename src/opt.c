/*
 * opt.c — the parser and help printer of opt.h.  Hand-written rather than
 * getopt_long: the table also carries types, limits and help, which getopt
 * does not, and the messages must name the flag and the value.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "opt.h"
#include "size.h"

__attribute__((format(printf, 3, 4)))
static int bad(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -MP_EARG;
}

static const struct mp_opt *find_long(const struct mp_opt *o, size_t n, const char *name, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(o[i].name) == len && strncmp(o[i].name, name, len) == 0)
			return &o[i];
	return NULL;
}

static const struct mp_opt *find_short(const struct mp_opt *o, size_t n, char c)
{
	for (size_t i = 0; i < n; i++)
		if (o[i].short_name && o[i].short_name == c)
			return &o[i];
	return NULL;
}

static int bounded(const struct mp_opt *o)
{
	return o->min != 0 || o->max != 0;
}

static int set_value(const struct mp_opt *o, const char *flag, const char *v, char *err, size_t len)
{
	char *end;
	switch (o->kind) {
	case MP_OPT_INT: {
		errno = 0;
		long long x = strtoll(v, &end, 10);
		if (errno || end == v || *end)
			return bad(err, len, "%s %s: expected an integer", flag, v);
		if (bounded(o) && ((double)x < o->min || (double)x > o->max))
			return bad(err, len, "%s %s: expected an integer from %.0f to %.0f", flag, v, o->min,
				   o->max);
		*(int64_t *)o->target = x;
		return 0;
	}
	case MP_OPT_FLOAT: {
		errno = 0;
		double x = strtod(v, &end);
		if (errno || end == v || *end || !isfinite(x))
			return bad(err, len, "%s %s: expected a number", flag, v);
		if (bounded(o) && (x < o->min || x > o->max))
			return bad(err, len, "%s %s: expected a number from %g to %g", flag, v, o->min, o->max);
		*(double *)o->target = x;
		return 0;
	}
	case MP_OPT_SIZE: {
		uint64_t x;
		if (mp_size_parse(v, &x) < 0)
			return bad(err, len, "%s %s: expected a size such as 512M, 24G or 100GB", flag, v);
		*(uint64_t *)o->target = x;
		return 0;
	}
	case MP_OPT_STRING:
		*(const char **)o->target = v;
		return 0;
	case MP_OPT_CHOICE:
		for (int i = 0; o->choices[i]; i++)
			if (strcmp(o->choices[i], v) == 0) {
				*(int *)o->target = i;
				return 0;
			}
		{
			char list[256] = "";
			for (int i = 0; o->choices[i]; i++) {
				size_t used = strlen(list);
				snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", o->choices[i]);
			}
			return bad(err, len, "%s %s: expected one of %s", flag, v, list);
		}
	case MP_OPT_FLAG:
		break;
	}
	return bad(err, len, "%s: internal error (option kind)", flag);
}

int mp_opt_parse(const struct mp_opt *opts, size_t n_opts, int argc, char **argv,
		 const char **positional, size_t max_positional, size_t *n_positional,
		 char *err, size_t err_len)
{
	size_t npos = 0;
	int only_positional = 0;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const struct mp_opt *o = NULL;
		const char *inline_value = NULL;
		char flag[96];
		if (!only_positional && strcmp(a, "--") == 0) {
			only_positional = 1;
			continue;
		}
		if (!only_positional && a[0] == '-' && a[1] == '-' && a[2]) {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
			o = find_long(opts, n_opts, a + 2, len);
			snprintf(flag, sizeof flag, "--%.*s", (int)len, a + 2);
			if (!o && !(len == 4 && strncmp(a + 2, "help", 4) == 0))
				return bad(err, err_len, "unknown option %s (see --help)", flag);
			if (!o)
				return 1;
			inline_value = eq ? eq + 1 : NULL;
		} else if (!only_positional && a[0] == '-' && a[1] && a[1] != '-' && !a[2]) {
			o = find_short(opts, n_opts, a[1]);
			snprintf(flag, sizeof flag, "-%c", a[1]);
			if (!o && a[1] == 'h')
				return 1;
			if (!o)
				return bad(err, err_len, "unknown option %s (see --help)", flag);
		} else if (!only_positional && a[0] == '-' && a[1] && a[1] != '-') {
			return bad(err, err_len, "unknown option %s (short options take their value as "
				   "the next argument)", a);
		} else {
			if (npos >= max_positional)
				return bad(err, err_len, "unexpected argument '%s' (see --help)", a);
			positional[npos++] = a;
			continue;
		}
		if (o->seen)
			*o->seen = 1;
		if (o->kind == MP_OPT_FLAG) {
			if (inline_value)
				return bad(err, err_len, "%s takes no value", flag);
			*(int *)o->target = 1;
			continue;
		}
		const char *v = inline_value;
		if (!v) {
			if (i + 1 >= argc)
				return bad(err, err_len, "%s needs a value (%s)", flag, o->metavar ? o->metavar : "");
			v = argv[++i];
		}
		int rc = set_value(o, flag, v, err, err_len);
		if (rc < 0)
			return rc;
	}
	if (n_positional)
		*n_positional = npos;
	return 0;
}

static void format_default(const struct mp_opt *o, char *buf, size_t len)
{
	char sz[32];
	buf[0] = 0;
	switch (o->kind) {
	case MP_OPT_INT:
		snprintf(buf, len, "%lld", (long long)*(int64_t *)o->target);
		break;
	case MP_OPT_FLOAT:
		snprintf(buf, len, "%g", *(double *)o->target);
		break;
	case MP_OPT_SIZE:
		if (*(uint64_t *)o->target)
			snprintf(buf, len, "%s", mp_size_format(*(uint64_t *)o->target, sz, sizeof sz));
		break;
	case MP_OPT_STRING:
		if (*(const char **)o->target)
			snprintf(buf, len, "%s", *(const char **)o->target);
		break;
	case MP_OPT_CHOICE:
		snprintf(buf, len, "%s", o->choices[*(int *)o->target]);
		break;
	case MP_OPT_FLAG:
		break;
	}
}

void mp_opt_help(FILE *out, const char *usage, const char *description,
		 const struct mp_opt *opts, size_t n_opts)
{
	fprintf(out, "Usage: %s\n%s\n\nOptions:\n", usage, description);
	for (size_t i = 0; i < n_opts; i++) {
		const struct mp_opt *o = &opts[i];
		char left[96], def[96];
		if (o->short_name)
			snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name,
				 o->metavar ? " " : "", o->metavar ? o->metavar : "");
		else
			snprintf(left, sizeof left, "    --%s%s%s", o->name, o->metavar ? " " : "",
				 o->metavar ? o->metavar : "");
		format_default(o, def, sizeof def);
		if (strlen(left) <= 24)
			fprintf(out, "  %-24s %s", left, o->help);
		else
			fprintf(out, "  %s\n  %-24s %s", left, "", o->help);
		if (def[0] && !strstr(o->help, "default"))   /* the help may say it better */
			fprintf(out, " (default: %s)", def);
		fputc('\n', out);
	}
	fprintf(out, "  %-24s %s\n", "-h, --help", "print this help and exit");
}

int mp_opt_parse_main(const char *prog, const char *usage, const char *description,
		      const struct mp_opt *opts, size_t n_opts, int argc, char **argv,
		      const char **positional, size_t max_positional, size_t *n_positional)
{
	char err[512];
	int rc = mp_opt_parse(opts, n_opts, argc, argv, positional, max_positional, n_positional,
			      err, sizeof err);
	if (rc == 1) {
		mp_opt_help(stdout, usage, description, opts, n_opts);
		return 0;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s\n", prog, err);
		return 2;
	}
	return -1;
}
