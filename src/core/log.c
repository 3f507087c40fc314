/* log.c — leveled diagnostics on stderr; one write per message. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "err.h"
#include "log.h"

static const char *const level_names[] = { "error", "warn", "info", "debug" };
static _Atomic int cur_level = -1;   /* -1: not yet read from the environment */

int mp_log_parse_level(const char *name, enum mp_log_level *out)
{
	for (int i = 0; i <= MP_LOG_DEBUG; i++)
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum mp_log_level)i;
			return 0;
		}
	return -MP_EARG;
}

void mp_log_set_level(enum mp_log_level level)
{
	atomic_store(&cur_level, (int)level);
}

enum mp_log_level mp_log_get_level(void)
{
	int l = atomic_load(&cur_level);
	if (l < 0) {
		enum mp_log_level parsed = MP_LOG_WARN;
		const char *env = getenv("MOEPAGER_LOG");
		if (env && mp_log_parse_level(env, &parsed) < 0)
			parsed = MP_LOG_WARN;
		l = (int)parsed;
		atomic_store(&cur_level, l);
	}
	return (enum mp_log_level)l;
}

void mp_log(enum mp_log_level level, const char *fmt, ...)
{
	if ((int)level > (int)mp_log_get_level())
		return;
	char buf[1024];
	int n = snprintf(buf, sizeof buf, "moepager: %s: ", level_names[level]);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof buf - 2)
		len = sizeof buf - 2;
	buf[len++] = '\n';
	/* One write so that lines from several threads do not interleave. */
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}
