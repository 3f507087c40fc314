/*
 * log.h — messages to stderr with a level.  The level comes from
 * MOEPAGER_LOG=error|warn|info|debug (default warn) or mp_log_set_level().
 * Only for diagnostics: results and user-facing reports are printed by the
 * tools themselves.
 */
#ifndef MP_LOG_H
#define MP_LOG_H

enum mp_log_level { MP_LOG_ERROR, MP_LOG_WARN, MP_LOG_INFO, MP_LOG_DEBUG };

void mp_log_set_level(enum mp_log_level level);
enum mp_log_level mp_log_get_level(void);
/* Parses "error|warn|info|debug"; returns 0 or -MP_EARG. */
int mp_log_parse_level(const char *name, enum mp_log_level *out);
void mp_log(enum mp_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define mp_log_error(...) mp_log(MP_LOG_ERROR, __VA_ARGS__)
#define mp_log_warn(...)  mp_log(MP_LOG_WARN, __VA_ARGS__)
#define mp_log_info(...)  mp_log(MP_LOG_INFO, __VA_ARGS__)
#define mp_log_debug(...) mp_log(MP_LOG_DEBUG, __VA_ARGS__)

#endif
