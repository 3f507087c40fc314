/*
 * reply.c — reasoning/content split, stop strings and deltas (reply.h).
 *
 * Per channel: buf[0..n) is the text so far (NUL at n), of which
 * [0..released) may be shown and [taken..released) has not been handed out.
 *
 * Invariants:
 * 1. taken <= released <= n for each channel.
 * 2. No stop string occurs in buf[0..n) of either channel (a match cuts n
 *    and sets stopped), and no stop string starts before released: the held
 *    tail buf[released..n) is the longest suffix that is a proper prefix of
 *    some stop string.
 * 3. After stopped, nothing changes but released (finish) and taken (take).
 */
#include <errno.h>
#include <string.h>

#include "alloc.h"
#include "reply.h"

struct chan {
	char *buf;                   /* [cap], NUL-terminated at n */
	size_t n, cap;               /* bytes of text, bytes allocated */
	size_t released, taken;      /* invariant 1 */
	int used;                    /* 1: text or a switch reached this channel */
};

struct mp_reply {
	char *stop[4];               /* owned, non-empty */
	size_t n_stop;
	struct chan ch[2];           /* indexed by enum mp_reply_channel */
	enum mp_reply_channel cur;   /* channel text goes to */
	int skip_space;              /* 1: drop leading spaces (content after reasoning) */
	int stopped;                 /* invariant 3 */
};

int mp_reply_create(const char *const *stop, size_t n_stop, enum mp_reply_channel start,
		    struct mp_reply **out)
{
	*out = NULL;
	struct mp_reply *r = mp_calloc(1, sizeof *r);
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < n_stop && i < 4; i++) {
		if (!(r->stop[i] = mp_strdup(stop[i]))) {
			mp_reply_destroy(r);
			return -ENOMEM;
		}
		r->n_stop = i + 1;
	}
	r->cur = start;
	r->ch[start].used = 1;
	*out = r;
	return 0;
}

void mp_reply_destroy(struct mp_reply *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_stop; i++)
		mp_free(r->stop[i]);
	mp_free(r->ch[0].buf);
	mp_free(r->ch[1].buf);
	mp_free(r);
}

void mp_reply_switch(struct mp_reply *r, enum mp_reply_channel c)
{
	if (r->stopped || c == r->cur)
		return;
	r->ch[r->cur].released = r->ch[r->cur].n;
	r->skip_space = r->cur == MP_REPLY_REASONING && c == MP_REPLY_CONTENT;
	r->cur = c;
	r->ch[c].used = 1;
}

static int append(struct chan *c, const char *text, size_t n)
{
	if (c->n + n + 1 > c->cap) {
		size_t cap = c->cap ? c->cap : 256;
		while (cap < c->n + n + 1)
			cap *= 2;
		char *p = mp_realloc(c->buf, cap);
		if (!p)
			return -ENOMEM;
		c->buf = p;
		c->cap = cap;
	}
	memcpy(c->buf + c->n, text, n);
	c->n += n;
	c->buf[c->n] = 0;
	return 0;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of stop. */
static size_t partial(const char *s, size_t n, const char *stop)
{
	size_t len = strlen(stop);
	for (size_t k = len - 1 < n ? len - 1 : n; k > 0; k--)
		if (memcmp(s + n - k, stop, k) == 0)
			return k;
	return 0;
}

int mp_reply_push(struct mp_reply *r, const char *text, size_t n)
{
	if (r->stopped)
		return 1;
	while (r->skip_space && n && strchr(" \t\r\n", *text)) {
		text++;
		n--;
	}
	if (!n)
		return 0;
	r->skip_space = 0;
	struct chan *c = &r->ch[r->cur];
	if (append(c, text, n) < 0)
		return -ENOMEM;
	/* invariant 2: a match starts at or after released */
	size_t first = c->n;
	for (size_t i = 0; i < r->n_stop; i++) {
		char *hit = memmem(c->buf + c->released, c->n - c->released, r->stop[i], strlen(r->stop[i]));
		if (hit && (size_t)(hit - c->buf) < first)
			first = (size_t)(hit - c->buf);
	}
	if (first < c->n) {
		c->n = c->released = first;
		c->buf[first] = 0;
		r->stopped = 1;
		return 1;
	}
	size_t hold = 0;
	for (size_t i = 0; i < r->n_stop; i++) {
		size_t k = partial(c->buf + c->released, c->n - c->released, r->stop[i]);
		hold = k > hold ? k : hold;
	}
	c->released = c->n - hold;
	return 0;
}

void mp_reply_finish(struct mp_reply *r)
{
	r->ch[0].released = r->ch[0].n;
	r->ch[1].released = r->ch[1].n;
}

static int take(struct chan *c, char **out)
{
	*out = NULL;
	if (c->released == c->taken)
		return 0;
	size_t n = c->released - c->taken;
	if (!(*out = mp_malloc(n + 1)))
		return -ENOMEM;
	memcpy(*out, c->buf + c->taken, n);
	(*out)[n] = 0;
	c->taken = c->released;
	return 0;
}

int mp_reply_take(struct mp_reply *r, char **reasoning, char **content)
{
	*content = NULL;
	if (take(&r->ch[MP_REPLY_REASONING], reasoning) < 0)
		return -ENOMEM;
	if (take(&r->ch[MP_REPLY_CONTENT], content) < 0) {
		mp_free(*reasoning);
		*reasoning = NULL;
		return -ENOMEM;
	}
	return 0;
}

const char *mp_reply_text(const struct mp_reply *r, enum mp_reply_channel c)
{
	return r->ch[c].buf ? r->ch[c].buf : "";
}

int mp_reply_used(const struct mp_reply *r, enum mp_reply_channel c) { return r->ch[c].used; }
int mp_reply_stopped(const struct mp_reply *r) { return r->stopped; }
