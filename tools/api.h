/*
 * api.h — the OpenAI HTTP API's JSON for moepager-server: requests of
 * /v1/chat/completions and /v1/completions parsed and checked into a plain
 * struct, and every body the server sends (completion, stream chunk, model
 * list, error object) built from plain values.
 *
 * It knows JSON and the API's field names, not HTTP, the model or threads.
 * Bad input is answered the way OpenAI answers it: an error object
 * {"error": {"message", "type", "param", "code"}} with a status code; the
 * message names the field and what was expected.
 */
#ifndef MP_API_H
#define MP_API_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

enum mp_api_kind { MP_API_CHAT, MP_API_COMPLETION };

#define MP_API_MAX_STOP 4            /* OpenAI's limit on "stop" strings */

struct mp_api_error {
	int status;                  /* HTTP status: 400, 401, 404, 413, 503, ... */
	const char *type;            /* "invalid_request_error", "server_error", ... */
	const char *code;            /* "model_not_found", ... or NULL (JSON null) */
	char param[32];              /* offending field, "" = null */
	char message[512];           /* one sentence for the user */
};

/* Fills e (printf-style message); returns -1 so callers can `return mp_api_fail(...)`. */
int mp_api_fail(struct mp_api_error *e, int status, const char *type, const char *code,
		const char *param, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

struct mp_api_request {
	enum mp_api_kind kind;
	struct mp_tok_msg *msgs;     /* chat: [n_msgs], contents owned */
	size_t n_msgs;
	char *prompt;                /* completions: the raw prompt (owned) */
	int stream;                  /* 1: server-sent events */
	int include_usage;           /* stream_options.include_usage */
	int64_t max_tokens;          /* -1: not given (the server's default) */
	double temperature;          /* [0, 2]; < 0: not given */
	double top_p;                /* (0, 1]; < 0: not given */
	double frequency_penalty;    /* [-2, 2], subtracted per earlier occurrence; 0: off */
	double presence_penalty;     /* [-2, 2], subtracted once if the token occurred; 0: off */
	uint64_t seed;               /* valid when seed_given */
	int seed_given;
	int ignore_eos;              /* llama-server's extension: never end at end of text */
	char *stop[MP_API_MAX_STOP]; /* owned, non-empty */
	size_t n_stop;
};

/* Parses body[0..len) as a request of that kind for the model called
 * model_name ("model" may be absent, that name, or alias).  Returns 0, or -1
 * with e filled (400 malformed or wrong field, 404 unknown model); *out is
 * zeroed either way and must be freed with mp_api_request_free. */
int mp_api_parse(enum mp_api_kind kind, const char *body, size_t len, const char *model_name,
		 const char *alias, struct mp_api_request *out, struct mp_api_error *e);
void mp_api_request_free(struct mp_api_request *r);

struct mp_api_usage {
	uint64_t prompt;             /* prompt tokens */
	uint64_t reused;             /* of which taken from the kept KV cache */
	uint64_t completion;         /* generated tokens */
};

/* What one response says about itself. */
struct mp_api_head {
	enum mp_api_kind kind;
	const char *id;              /* "chatcmpl-N" / "cmpl-N" */
	int64_t created;             /* Unix seconds */
	const char *model;
};

/* The bodies below are NUL-terminated mp_malloc'd strings (NULL: out of
 * memory); mp_free them.  finish is "stop", "length" or NULL (not yet). */

/* A whole non-streamed response; reasoning may be NULL (no reasoning_content). */
char *mp_api_body(const struct mp_api_head *h, const char *reasoning, const char *content,
		  const char *finish, const struct mp_api_usage *u);
/* One SSE event "data: {...}\n\n": a delta (either text may be NULL), the
 * role on the first chunk (first = 1), finish and usage on the last. */
char *mp_api_chunk(const struct mp_api_head *h, int first, const char *reasoning,
		   const char *content, const char *finish, const struct mp_api_usage *u);
/* The usage-only chunk of stream_options.include_usage (choices: []). */
char *mp_api_usage_chunk(const struct mp_api_head *h, const struct mp_api_usage *u);
/* GET /v1/models. */
char *mp_api_models(const char *model_name, int64_t created);
/* {"error": {...}}. */
char *mp_api_error_body(const struct mp_api_error *e);

#endif
