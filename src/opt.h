/*
 * opt.h — table-driven command-line options for every moepager tool.
 *
 * One table per tool names each option once: its long and short names, the
 * kind of value, where the value goes, its help line and its limits.  The
 * same table parses argv (every bad flag or value is named in the error) and
 * prints --help in one format (usage line, description, options with their
 * defaults, taken from the targets' initial values) that help2man turns into
 * the man pages, so help, parser and manual cannot drift.
 */
#ifndef MP_OPT_H
#define MP_OPT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum mp_opt_kind {
	MP_OPT_FLAG,     /* int: set to 1 */
	MP_OPT_INT,      /* int64_t within [min, max] */
	MP_OPT_FLOAT,    /* double within [min, max] */
	MP_OPT_SIZE,     /* uint64_t bytes: SIZE syntax (size.h) */
	MP_OPT_STRING,   /* const char *: points into argv */
	MP_OPT_CHOICE,   /* int: index into choices[] */
};

struct mp_opt {
	const char *name;            /* long name without "--" */
	char short_name;             /* 0: none */
	enum mp_opt_kind kind;
	void *target;                /* see kinds */
	const char *metavar;         /* "N", "SIZE", "PATH" (NULL for flags) */
	const char *help;            /* one line; the default is appended */
	double min, max;             /* INT/FLOAT bounds (both 0: unbounded) */
	const char *const *choices;  /* CHOICE: NULL-terminated names */
	int *seen;                   /* optional: set to 1 when given */
};

/* Parses argv[1..].  Positional arguments are collected in order into
 * positional (up to max_positional; more is an error).  Returns 0, 1 when
 * --help was given (help printed to out), or -MP_EARG with the sentence in
 * err ("--top-p 1.5: expected a number from 0 to 1"). */
int mp_opt_parse(const struct mp_opt *opts, size_t n_opts, int argc, char **argv,
		 const char **positional, size_t max_positional, size_t *n_positional,
		 char *err, size_t err_len);

/* Prints help: "Usage: " usage, a blank line, description, "Options:" and one
 * line per option with its current (default) value. */
void mp_opt_help(FILE *out, const char *usage, const char *description,
		 const struct mp_opt *opts, size_t n_opts);

/* The start of every tool's main: mp_opt_parse, then on --help the help on
 * stdout, on a bad command line "PROG: sentence" on stderr.  Returns -1 when
 * main goes on, else the status main returns: 0 after --help, 2 after a bad
 * command line.  The positional arguments are as for mp_opt_parse. */
int mp_opt_parse_main(const char *prog, const char *usage, const char *description,
		      const struct mp_opt *opts, size_t n_opts, int argc, char **argv,
		      const char **positional, size_t max_positional, size_t *n_positional);

#endif
