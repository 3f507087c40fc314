/*
 * moepager-stat — watches a running moepager through its stats segment
 * (pager/stats.h), like top: tokens/s, hit rates, read MB/s, stall, prefetch,
 * pool occupancy, I/O latency and per-layer hit-rate bars; or prints one
 * snapshot as text or JSON (docs/stats.md), or draws the layer x expert heat
 * map (SVG).  Also reads a finished run's kept segment (--keep-stats).
 *
 * The screen is plain ANSI (cursor home, erase to end of line / screen), not
 * curses: it needs no terminfo entry, works in any 80x24 terminal over ssh,
 * and the only sizes it needs come from TIOCGWINSZ.  When stdout is not a
 * terminal the same text is written plainly, one block per refresh.
 *
 * Not a profiler: it only reads the counters the runtime keeps.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "clock.h"
#include "err.h"
#include "opt.h"
#include "stats.h"
#include "statview.h"

static volatile sig_atomic_t stop_flag;   /* SIGINT/SIGTERM/SIGHUP seen */

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

struct flags {
	int once;                        /* print one snapshot and exit */
	int json;                        /* print one snapshot as JSON */
	const char *heatmap;             /* SVG path, or NULL */
	double delay;                    /* seconds between refreshes */
	int64_t iterations;              /* refreshes; 0: until the writer exits */
	int version;                     /* --version */
};

/* 1 when process pid runs (a zombie has exited), 0 when not. */
static int process_alive(uint64_t pid)
{
	if (pid == 0 || pid > (uint64_t)INT32_MAX)
		return 0;
	if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
		return 0;
	char path[64], buf[256];
	snprintf(path, sizeof path, "/proc/%llu/stat", (unsigned long long)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 1;                        /* no /proc: trust kill() */
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *rp = strrchr(buf, ')');   /* "pid (comm) S ..." */
	return !(rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X'));
}

/* The writer still runs and still owns this file. */
static int writer_alive(const struct mp_stats_snap *s, const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)            /* removed at the writer's exit */
		return 0;
	return process_alive(s->h->pid);
}

static int all_digits(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return 0;
	return 1;
}

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Attaches: resolves TARGET (pid or path) and opens the segment.  Prints the
 * error and returns the exit status (1) on failure. */
static int attach(const char *target, char *path, size_t path_len, struct mp_stats_reader **r)
{
	int by_pid = all_digits(target);
	if (by_pid)
		snprintf(path, path_len, "/dev/shm/moepager-%s.stats", target);
	else
		snprintf(path, path_len, "%s", target);
	char msg[512];
	int rc = mp_stats_open(path, r, msg, sizeof msg);
	if (rc == 0)
		return 0;
	if (by_pid && rc == -ENOENT) {
		uint64_t pid = strtoull(target, NULL, 10);
		if (!process_alive(pid))
			fprintf(stderr, "moepager-stat: no such process: %s (and no kept segment %s)\n",
			        target, path);
		else
			fprintf(stderr, "moepager-stat: process %s has no stats segment %s: is it moepager "
			        "with --cache-budget?  With --stats-file, give that path instead\n",
			        target, path);
	} else {
		fprintf(stderr, "moepager-stat: %s\n", msg);
	}
	return 1;
}

/* A snapshot, retried a few times when the writer is mid-update for long. */
static int snapshot(struct mp_stats_reader *r, struct mp_stats_snap *s, const char *path)
{
	int rc = -EAGAIN;
	for (int i = 0; i < 20 && rc == -EAGAIN; i++) {
		rc = mp_stats_snapshot(r, s);
		if (rc == -EAGAIN)
			nanosleep(&(struct timespec){ 0, 5000000 }, NULL);
	}
	if (rc < 0)
		fprintf(stderr, "moepager-stat: %s: no consistent snapshot: %s\n", path, mp_strerror(rc));
	return rc;
}

static int write_heatmap(const char *file, const struct mp_statview_state *st,
                         const struct mp_stats_snap *s)
{
	FILE *f = fopen(file, "w");
	if (!f) {
		fprintf(stderr, "moepager-stat: %s: cannot create: %s\n", file, strerror(errno));
		return 1;
	}
	mp_statview_svg(f, st, s);
	if (fclose(f) != 0) {
		fprintf(stderr, "moepager-stat: %s: write failed: %s\n", file, strerror(errno));
		return 1;
	}
	return 0;
}

/* Draws one screen: text rendered to memory, then each line followed by
 * "erase to end of line", and the rest of the screen erased. */
static void draw(int tty, const struct mp_statview_state *st, const struct mp_stats_snap *prev,
                 const struct mp_stats_snap *cur, double dt, const char *status)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&buf, &len);
	if (!m)
		return;
	mp_statview_text(m, st, prev, cur, dt);
	if (status)
		fprintf(m, "%s\n", status);
	fclose(m);
	if (!tty) {
		fwrite(buf, 1, len, stdout);
		fputc('\n', stdout);
	} else {
		fputs("\033[H", stdout);
		for (char *p = buf, *nl; *p; p = nl + 1) {
			nl = strchr(p, '\n');
			if (!nl)
				break;
			int last = !nl[1];
			/* The last line goes without its newline, so that a full
			 * screen does not scroll. */
			fprintf(stdout, "%.*s\033[K%s", (int)(nl - p), p, last ? "" : "\n");
		}
		fputs("\033[J", stdout);
	}
	fflush(stdout);
	free(buf);                           /* open_memstream's buffer is libc's */
}

static void screen_size(int *cols, int *rows)
{
	struct winsize ws;
	*cols = 80;
	*rows = 24;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40 && ws.ws_row >= 10) {
		*cols = ws.ws_col;
		*rows = ws.ws_row;
	}
}

static void sleep_s(double s)
{
	uint64_t end = mp_clock_now_ns() + (uint64_t)(s * 1e9);
	while (!stop_flag) {
		uint64_t now = mp_clock_now_ns();
		if (now >= end)
			break;
		uint64_t left = end - now;
		if (left > 50000000)
			left = 50000000;             /* wake often enough to see a signal */
		nanosleep(&(struct timespec){ 0, (long)left }, NULL);
	}
}

/* The live view.  Returns the exit status. */
static int watch(const struct flags *f, struct mp_stats_reader *r, const char *path,
                 struct mp_stats_snap *cur)
{
	int tty = isatty(STDOUT_FILENO);
	struct mp_statview_state st = { path, 1, wall_now(), 80, 0 };
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (tty)
		fputs("\033[?25l\033[H\033[2J", stdout);   /* hide the cursor, clear */
	if (tty)
		screen_size(&st.cols, &st.rows);
	draw(tty, &st, NULL, cur, 0, tty ? "(refreshing; Ctrl-C quits)" : NULL);
	struct mp_stats_snap prev = { 0 };
	uint64_t t_prev = mp_clock_now_ns();
	int rc = 0, exited = 0;
	for (int64_t it = 1; !stop_flag && (f->iterations == 0 || it < f->iterations); it++) {
		sleep_s(f->delay);
		if (stop_flag)
			break;
		mp_stats_snap_free(&prev);
		prev = *cur;
		memset(cur, 0, sizeof *cur);
		exited = !writer_alive(&prev, path);
		if (snapshot(r, cur, path) < 0) {
			*cur = prev;
			memset(&prev, 0, sizeof prev);
			rc = 1;
			break;
		}
		uint64_t t = mp_clock_now_ns();
		double dt = (double)(t - t_prev) / 1e9;
		t_prev = t;
		st.alive = !exited;
		st.now_wall_s = wall_now();
		if (tty)
			screen_size(&st.cols, &st.rows);
		char status[160];
		if (exited)
			snprintf(status, sizeof status, "moepager (pid %llu) exited; above is its last snapshot.",
			         (unsigned long long)cur->h->pid);
		draw(tty, &st, &prev, cur, dt,
		     exited ? status : tty ? "(refreshing; Ctrl-C quits)" : NULL);
		if (exited)
			break;
	}
	mp_stats_snap_free(&prev);
	if (tty)
		fputs("\n\033[?25h", stdout);    /* the cursor back, below the screen */
	fflush(stdout);
	if (f->heatmap && write_heatmap(f->heatmap, &st, cur) != 0)
		rc = 1;
	return rc;
}

int main(int argc, char **argv)
{
	struct flags f = { 0, 0, NULL, 1.0, 0, 0 };
	const struct mp_opt opts[] = {
		{ "once", 0, MP_OPT_FLAG, &f.once, NULL, "print one snapshot as text and exit", 0, 0, NULL, NULL },
		{ "json", 'j', MP_OPT_FLAG, &f.json, NULL, "print one snapshot as JSON (docs/stats.md) and exit", 0, 0, NULL, NULL },
		{ "heatmap", 0, MP_OPT_STRING, &f.heatmap, "FILE", "write a layer x expert heat map (SVG) of the last snapshot", 0, 0, NULL, NULL },
		{ "delay", 'd', MP_OPT_FLOAT, &f.delay, "SEC", "seconds between refreshes", 0.05, 3600, NULL, NULL },
		{ "iterations", 'n', MP_OPT_INT, &f.iterations, "N", "refreshes before exiting; 0 = until the process exits", 0, 1e9, NULL, NULL },
		{ "version", 'V', MP_OPT_FLAG, &f.version, NULL, "print the version and exit", 0, 0, NULL, NULL },
	};
	const size_t n_opts = sizeof opts / sizeof opts[0];
	static const char usage[] = "moepager-stat [OPTION]... PID|STATS-FILE";
	static const char description[] =
		"Watch a running moepager through its stats segment, refreshing like top:\n"
		"tokens/s, the pool hit rate, misses served by the page cache and by the\n"
		"disk, read MB/s, the share of decode time stalled on expert reads,\n"
		"prefetch precision and recall, pool occupancy, I/O latency percentiles,\n"
		"the I/O backend and a hit-rate bar per layer.  PID finds the segment\n"
		"/dev/shm/moepager-PID.stats; a path reads a segment given to moepager\n"
		"--stats-file, also one kept after the run (--keep-stats).  Figures the\n"
		"runtime does not count (no prefetches, no reads yet) show as n/a.  When\n"
		"standard output is not a terminal, plain text blocks are written instead\n"
		"of a refreshing screen.  Exit status: 0, 1 for a missing process or a bad\n"
		"segment, 2 for a usage error.";
	const char *pos[1];
	size_t npos = 0;
	int rc = mp_opt_parse_main("moepager-stat", usage, description, opts, n_opts, argc, argv,
				   pos, 1, &npos);
	if (rc >= 0)
		return rc;
	if (f.version) {
		printf("moepager-stat %s\n", PACKAGE_VERSION);
		return 0;
	}
	if (npos != 1) {
		fprintf(stderr, "moepager-stat: missing PID or STATS-FILE (see --help)\n");
		return 2;
	}
	char path[4096];
	struct mp_stats_reader *r = NULL;
	if (attach(pos[0], path, sizeof path, &r) != 0)
		return 1;
	struct mp_stats_snap cur = { 0 };
	if (snapshot(r, &cur, path) < 0) {
		mp_stats_close(r);
		return 1;
	}
	struct mp_statview_state st = { path, writer_alive(&cur, path), wall_now(), 80, 0 };
	rc = 0;
	if (f.json || f.once || !st.alive) {
		if (f.json)
			mp_statview_json(stdout, &st, &cur);
		else
			mp_statview_text(stdout, &st, NULL, &cur, 0);
		if (!st.alive && !f.json)
			printf("moepager (pid %llu) no longer runs: these are its final counters.\n",
			       (unsigned long long)cur.h->pid);
		if (f.heatmap)
			rc = write_heatmap(f.heatmap, &st, &cur);
	} else {
		rc = watch(&f, r, path, &cur);
	}
	if (fflush(stdout) != 0)
		rc = 1;
	mp_stats_snap_free(&cur);
	mp_stats_close(r);
	return rc;
}
