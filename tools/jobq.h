/*
 * jobq.h — a bounded first-in first-out queue of pointers between threads:
 * the HTTP threads push requests, the one worker pops them in arrival order.
 * A full queue refuses at once (the server answers 503); a closed queue
 * refuses pushes and hands what is left to drain.
 */
#ifndef MP_JOBQ_H
#define MP_JOBQ_H

#include <stddef.h>

struct mp_jobq;

/* cap >= 1 items.  Returns 0 or -ENOMEM. */
int mp_jobq_create(size_t cap, struct mp_jobq **out);
void mp_jobq_destroy(struct mp_jobq *q);     /* NULL is fine; items are not freed */

/* Appends item.  Returns 0, -EAGAIN when full, -ECANCELED when closed. */
int mp_jobq_push(struct mp_jobq *q, void *item);
/* Takes the oldest item, waiting while the queue is empty and open; NULL
 * once it is closed and empty. */
void *mp_jobq_pop(struct mp_jobq *q);
/* Takes the oldest item without waiting; NULL when empty. */
void *mp_jobq_try_pop(struct mp_jobq *q);
/* Refuses further pushes and wakes the waiting pop. */
void mp_jobq_close(struct mp_jobq *q);
size_t mp_jobq_len(struct mp_jobq *q);
size_t mp_jobq_cap(const struct mp_jobq *q);

#endif
