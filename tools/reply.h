/*
 * reply.h — the text of one generated answer as the API returns it: split
 * into R1's reasoning (the <think> part) and the content after it, cut at the
 * first "stop" string, and handed out as deltas for streaming.
 *
 * It sees text and the think markers, not tokens or JSON.  Text that could be
 * the start of a stop string is held back until the next piece decides, so a
 * client never sees part of a stop string (OpenAI's behaviour).
 */
#ifndef MP_REPLY_H
#define MP_REPLY_H

#include <stddef.h>

enum mp_reply_channel { MP_REPLY_REASONING, MP_REPLY_CONTENT };

struct mp_reply;

/* stop[n_stop]: non-empty strings (copied).  start: the channel the first text
 * goes to (REASONING when the prompt ended inside <think>).  Returns 0 or
 * -ENOMEM. */
int mp_reply_create(const char *const *stop, size_t n_stop, enum mp_reply_channel start,
		    struct mp_reply **out);
void mp_reply_destroy(struct mp_reply *r);   /* NULL is fine */

/* Moves to channel c (a <think> or </think> marker came); held-back text of
 * the old channel is released.  Content that follows reasoning starts at its
 * first non-space character. */
void mp_reply_switch(struct mp_reply *r, enum mp_reply_channel c);

/* Appends text[0..n) to the current channel.  Returns 1 when a stop string
 * is now complete (the text is cut before it; later pushes are ignored), 0,
 * or -ENOMEM. */
int mp_reply_push(struct mp_reply *r, const char *text, size_t n);

/* Releases everything held back (the answer is over). */
void mp_reply_finish(struct mp_reply *r);

/* The released text of each channel not taken before, as NUL-terminated
 * mp_malloc'd strings, or NULL where there is none.  Returns 0 or -ENOMEM. */
int mp_reply_take(struct mp_reply *r, char **reasoning, char **content);

/* The text of channel c so far, held-back tail included (NUL-terminated,
 * owned by r; after mp_reply_finish all of it is released),
 * and whether the channel has received anything. */
const char *mp_reply_text(const struct mp_reply *r, enum mp_reply_channel c);
int mp_reply_used(const struct mp_reply *r, enum mp_reply_channel c);
int mp_reply_stopped(const struct mp_reply *r);   /* 1: a stop string ended it */

#endif
