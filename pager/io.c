/*
 * io.c — the backend table, probes and selection.  Each backend's probe asks
 * the kernel for the real thing (an io_uring instance, an aio context), since
 * containers often build liburing but forbid io_uring_setup.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifdef HAVE_LIBURING
#include <liburing.h>
#endif
#ifdef HAVE_LIBAIO
#include <libaio.h>
#endif

#include "err.h"
#include "io.h"

#ifdef HAVE_LIBURING
static int uring_probe(char *why, size_t why_len)
{
	struct io_uring ring;
	int rc = io_uring_queue_init(4, &ring, 0);
	if (rc < 0) {
		snprintf(why, why_len, "io_uring_setup failed: %s", strerror(-rc));
		return rc;
	}
	io_uring_queue_exit(&ring);
	return 0;
}

static const struct mp_io_ops uring_ops = {
	"uring", MP_IO_VERSION, MP_IO_CAP_ASYNC | MP_IO_CAP_ALIGNED | MP_IO_CAP_REGBUF, uring_probe,
};
#endif

#ifdef HAVE_LIBAIO
static int aio_probe(char *why, size_t why_len)
{
	io_context_t ctx = 0;
	int rc = io_setup(4, &ctx);
	if (rc < 0) {
		snprintf(why, why_len, "io_setup failed: %s", strerror(-rc));
		return rc;
	}
	io_destroy(ctx);
	return 0;
}

static const struct mp_io_ops aio_ops = {
	"aio", MP_IO_VERSION, MP_IO_CAP_ASYNC | MP_IO_CAP_ALIGNED, aio_probe,
};
#endif

static int always_usable(char *why, size_t why_len)
{
	(void)why;
	(void)why_len;
	return 0;
}

static const struct mp_io_ops sync_ops = {
	"sync", MP_IO_VERSION, MP_IO_CAP_ASYNC, always_usable,
};

static const struct mp_io_ops mmap_ops = {
	"mmap", MP_IO_VERSION, MP_IO_CAP_NOPOOL, always_usable,
};

static const struct mp_io_ops *const backends[] = {
#ifdef HAVE_LIBURING
	&uring_ops,
#endif
#ifdef HAVE_LIBAIO
	&aio_ops,
#endif
	&sync_ops,
	&mmap_ops,
	NULL,
};

/* Names a user may ask for, built or not: to tell "unknown" from "not built". */
static const char *const known_names[] = { "uring", "aio", "sync", "mmap" };

const struct mp_io_ops *const *mp_io_backends(void)
{
	return backends;
}

const struct mp_io_ops *mp_io_find(const char *name)
{
	for (const struct mp_io_ops *const *b = backends; *b; b++)
		if (strcmp((*b)->name, name) == 0)
			return *b;
	return NULL;
}

__attribute__((format(printf, 3, 4)))
static void append(char *note, size_t len, const char *fmt, ...)
{
	if (!note || !len)
		return;
	size_t used = strlen(note);
	if (used + 1 >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(note + used, len - used, fmt, ap);
	va_end(ap);
}

int mp_io_select(const char *name, const struct mp_io_ops **out, char *note, size_t note_len)
{
	char why[256];
	if (note && note_len)
		note[0] = 0;
	if (strcmp(name, "auto") == 0) {
		for (const struct mp_io_ops *const *b = backends; *b; b++) {
			why[0] = 0;
			if ((*b)->probe(why, sizeof why) == 0) {
				*out = *b;
				return 0;
			}
			append(note, note_len, "%s unusable (%s); ", (*b)->name, why);
		}
		return -MP_EUNAVAIL;   /* unreachable while mmap is always usable */
	}
	const struct mp_io_ops *b = mp_io_find(name);
	if (!b) {
		for (size_t i = 0; i < sizeof known_names / sizeof known_names[0]; i++)
			if (strcmp(name, known_names[i]) == 0) {
				append(note, note_len, "--io %s: this build has no %s backend "
				       "(configured without its library)", name, name);
				return -MP_EUNAVAIL;
			}
		append(note, note_len, "--io %s: expected auto, uring, aio, sync or mmap", name);
		return -MP_EARG;
	}
	why[0] = 0;
	int rc = b->probe(why, sizeof why);
	if (rc < 0) {
		append(note, note_len, "--io %s: %s", name, why);
		return -MP_EUNAVAIL;
	}
	*out = b;
	return 0;
}
