/*
 * api.c — OpenAI request parsing and response bodies (api.h), on jansson
 * (already the project's JSON library, src/hftok.c).
 *
 * Invariants:
 * 1. A parsed request holds only checked values: every field named in api.h
 *    is in its documented range, chat has at least one message, each with a
 *    role the R1 template renders and text content.
 * 2. Every string handed to jansson for output is valid UTF-8 (the
 *    tokenizer's stream decoder guarantees it for model text); a body that
 *    cannot be built is reported as NULL, never sent half-made.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "api.h"

/* Drops a UTF-8 sequence that truncation left incomplete at the end of s. */
static void utf8_cut(char *s)
{
	size_t n = strlen(s);
	for (size_t back = 1; back <= 4 && back <= n; back++) {
		unsigned char c = (unsigned char)s[n - back];
		if ((c & 0xC0) == 0x80)
			continue;
		size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
		if (need > back)
			s[n - back] = 0;
		return;
	}
}

int mp_api_fail(struct mp_api_error *e, int status, const char *type, const char *code,
		const char *param, const char *fmt, ...)
{
	e->status = status;
	e->type = type;
	e->code = code;
	snprintf(e->param, sizeof e->param, "%s", param ? param : "");
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(e->message, sizeof e->message, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof e->message)
		utf8_cut(e->message);
	return -1;
}

#define BAD(e, param, ...) mp_api_fail(e, 400, "invalid_request_error", NULL, param, __VA_ARGS__)

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE: case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* ---- request fields ------------------------------------------------------------------ */

/* Text of a message's content: a string, or an array of {"type":"text","text":...}
 * parts joined; null is "" for assistant turns. */
static int content_text(const json_t *c, size_t i, int assistant, char **out, struct mp_api_error *e)
{
	if (json_is_string(c)) {
		*out = mp_strdup(json_string_value(c));
		return *out ? 0 : BAD(e, "messages", "out of memory");
	}
	if (json_is_null(c) && assistant) {
		*out = mp_strdup("");
		return *out ? 0 : BAD(e, "messages", "out of memory");
	}
	if (!json_is_array(c))
		return BAD(e, "messages", "messages[%zu].content: expected a string or an array of text "
			   "parts, got %s", i, type_name(c));
	size_t len = 0, k;
	json_t *part;
	json_array_foreach(c, k, part) {
		json_t *ty = json_object_get(part, "type"), *tx = json_object_get(part, "text");
		if (!json_is_string(ty) || strcmp(json_string_value(ty), "text") != 0 || !json_is_string(tx))
			return BAD(e, "messages", "messages[%zu].content[%zu]: expected {\"type\": \"text\", "
				   "\"text\": STRING} (only text is supported)", i, k);
		len += json_string_length(tx);
	}
	*out = mp_malloc(len + 1);
	if (!*out)
		return BAD(e, "messages", "out of memory");
	len = 0;
	json_array_foreach(c, k, part) {
		json_t *tx = json_object_get(part, "text");
		memcpy(*out + len, json_string_value(tx), json_string_length(tx));
		len += json_string_length(tx);
	}
	(*out)[len] = 0;
	return 0;
}

static int parse_messages(const json_t *root, struct mp_api_request *r, struct mp_api_error *e)
{
	json_t *ms = json_object_get(root, "messages");
	if (!ms)
		return BAD(e, "messages", "'messages' is required: an array of {\"role\", \"content\"}");
	if (!json_is_array(ms) || json_array_size(ms) == 0)
		return BAD(e, "messages", "'messages': expected a non-empty array, got %s%s", type_name(ms),
			   json_is_array(ms) ? " with no elements" : "");
	r->msgs = mp_calloc(json_array_size(ms), sizeof *r->msgs);
	if (!r->msgs)
		return BAD(e, "messages", "out of memory");
	size_t i;
	json_t *m;
	json_array_foreach(ms, i, m) {
		json_t *role = json_object_get(m, "role");
		if (!json_is_object(m) || !json_is_string(role))
			return BAD(e, "messages", "messages[%zu]: expected an object with a string 'role'", i);
		const char *rs = json_string_value(role);
		enum mp_tok_role rl;
		if (!strcmp(rs, "system") || !strcmp(rs, "developer"))
			rl = MP_TOK_SYSTEM;
		else if (!strcmp(rs, "user"))
			rl = MP_TOK_USER;
		else if (!strcmp(rs, "assistant"))
			rl = MP_TOK_ASSISTANT;
		else
			return BAD(e, "messages", "messages[%zu].role '%s': expected system, developer, user "
				   "or assistant", i, rs);
		json_t *c = json_object_get(m, "content");
		char *text;
		if (!c && rl != MP_TOK_ASSISTANT)
			return BAD(e, "messages", "messages[%zu]: 'content' is required", i);
		if (content_text(c ? c : json_null(), i, rl == MP_TOK_ASSISTANT, &text, e) < 0)
			return -1;
		r->msgs[i].role = rl;
		r->msgs[i].content = text;
		r->n_msgs = i + 1;
	}
	return 0;
}

static int parse_prompt(const json_t *root, struct mp_api_request *r, struct mp_api_error *e)
{
	json_t *p = json_object_get(root, "prompt");
	if (json_is_array(p) && json_array_size(p) == 1)
		p = json_array_get(p, 0);
	if (!p)
		return BAD(e, "prompt", "'prompt' is required: a string");
	if (!json_is_string(p))
		return BAD(e, "prompt", "'prompt': expected a string (or an array of one string), got %s",
			   type_name(p));
	r->prompt = mp_strdup(json_string_value(p));
	return r->prompt ? 0 : BAD(e, "prompt", "out of memory");
}

/* A number field in [lo, hi]; absent or null leaves *out. */
static int get_number(const json_t *root, const char *key, double lo, double hi, double *out,
		      struct mp_api_error *e)
{
	json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return BAD(e, key, "'%s': expected a number from %g to %g, got %s", key, lo, hi,
			   type_name(v));
	double d = json_number_value(v);
	if (!(d >= lo && d <= hi))
		return BAD(e, key, "'%s' %g: expected a number from %g to %g", key, d, lo, hi);
	*out = d;
	return 0;
}

/* An integer field >= lo; absent or null leaves *out. */
static int get_int(const json_t *root, const char *key, int64_t lo, int64_t *out, int *given,
		   struct mp_api_error *e)
{
	json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_integer(v))
		return BAD(e, key, "'%s': expected an integer, got %s", key, type_name(v));
	if (json_integer_value(v) < lo)
		return BAD(e, key, "'%s' %lld: expected at least %lld", key,
			   (long long)json_integer_value(v), (long long)lo);
	*out = json_integer_value(v);
	if (given)
		*given = 1;
	return 0;
}

static int get_bool(const json_t *root, const char *key, int *out, struct mp_api_error *e)
{
	json_t *v = json_object_get(root, key);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return BAD(e, key, "'%s': expected true or false, got %s", key, type_name(v));
	*out = json_is_true(v);
	return 0;
}

static int parse_stop(const json_t *root, struct mp_api_request *r, struct mp_api_error *e)
{
	json_t *v = json_object_get(root, "stop");
	if (!v || json_is_null(v))
		return 0;
	json_t *one[1] = { v };
	size_t n = json_is_array(v) ? json_array_size(v) : 1;
	if (!json_is_string(v) && !json_is_array(v))
		return BAD(e, "stop", "'stop': expected a string or an array of up to %d strings, got %s",
			   MP_API_MAX_STOP, type_name(v));
	if (n > MP_API_MAX_STOP)
		return BAD(e, "stop", "'stop': %zu strings, at most %d are allowed", n, MP_API_MAX_STOP);
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_is_array(v) ? json_array_get(v, i) : one[0];
		if (!json_is_string(s) || json_string_length(s) == 0)
			return BAD(e, "stop", "'stop'[%zu]: expected a non-empty string", i);
		if (!(r->stop[i] = mp_strdup(json_string_value(s))))
			return BAD(e, "stop", "out of memory");
		r->n_stop = i + 1;
	}
	return 0;
}

static int parse_model(const json_t *root, const char *name, const char *alias,
		       struct mp_api_error *e)
{
	json_t *v = json_object_get(root, "model");
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return BAD(e, "model", "'model': expected a string, got %s", type_name(v));
	const char *m = json_string_value(v);
	if (!m[0] || !strcmp(m, name) || (alias && !strcmp(m, alias)))
		return 0;
	return mp_api_fail(e, 404, "invalid_request_error", "model_not_found", "model",
			   "The model '%s' does not exist: this server runs '%s' (GET /v1/models)", m,
			   name);
}

static int parse_fields(const json_t *root, struct mp_api_request *r, const char *name,
			const char *alias, struct mp_api_error *e)
{
	int64_t n = 1;
	if (parse_model(root, name, alias, e) < 0 ||
	    (r->kind == MP_API_CHAT ? parse_messages(root, r, e) : parse_prompt(root, r, e)) < 0 ||
	    get_bool(root, "stream", &r->stream, e) < 0 ||
	    get_bool(root, "ignore_eos", &r->ignore_eos, e) < 0 ||
	    get_int(root, "max_tokens", 1, &r->max_tokens, NULL, e) < 0 ||
	    get_int(root, "max_completion_tokens", 1, &r->max_tokens, NULL, e) < 0 ||
	    get_number(root, "temperature", 0, 2, &r->temperature, e) < 0 ||
	    get_number(root, "top_p", 0, 1, &r->top_p, e) < 0 ||
	    get_number(root, "frequency_penalty", -2, 2, &r->frequency_penalty, e) < 0 ||
	    get_number(root, "presence_penalty", -2, 2, &r->presence_penalty, e) < 0 ||
	    get_int(root, "n", 1, &n, NULL, e) < 0 || parse_stop(root, r, e) < 0)
		return -1;
	int64_t seed = 0;
	if (get_int(root, "seed", INT64_MIN, &seed, &r->seed_given, e) < 0)
		return -1;
	r->seed = (uint64_t)seed;
	if (n != 1)
		return BAD(e, "n", "'n' %lld: this server makes one choice per request", (long long)n);
	json_t *so = json_object_get(root, "stream_options");
	if (so && !json_is_null(so)) {
		if (!json_is_object(so))
			return BAD(e, "stream_options", "'stream_options': expected an object, got %s",
				   type_name(so));
		if (get_bool(so, "include_usage", &r->include_usage, e) < 0)
			return -1;
	}
	return 0;
}

int mp_api_parse(enum mp_api_kind kind, const char *body, size_t len, const char *model_name,
		 const char *alias, struct mp_api_request *out, struct mp_api_error *e)
{
	memset(out, 0, sizeof *out);
	memset(e, 0, sizeof *e);
	out->kind = kind;
	out->max_tokens = -1;
	out->temperature = -1;
	out->top_p = -1;
	json_error_t je;
	json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
	if (!root)
		return BAD(e, NULL, "the request body is not valid JSON: %s (line %d, column %d)",
			   je.text, je.line, je.column);
	int rc = 0;
	if (!json_is_object(root))
		rc = BAD(e, NULL, "the request body must be a JSON object, got %s", type_name(root));
	else
		rc = parse_fields(root, out, model_name, alias, e);
	json_decref(root);
	if (rc < 0)
		mp_api_request_free(out);
	return rc;
}

void mp_api_request_free(struct mp_api_request *r)
{
	for (size_t i = 0; i < r->n_msgs; i++)
		mp_free((char *)r->msgs[i].content);
	mp_free(r->msgs);
	mp_free(r->prompt);
	for (size_t i = 0; i < r->n_stop; i++)
		mp_free(r->stop[i]);
	enum mp_api_kind kind = r->kind;
	memset(r, 0, sizeof *r);
	r->kind = kind;
}

/* ---- response bodies --------------------------------------------------------------- */

/* Dumps and frees j (NULL in, NULL out); the text is copied into mp_malloc'd memory. */
static char *dump(json_t *j, const char *prefix, const char *suffix)
{
	if (!j)
		return NULL;
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s)
		return NULL;
	size_t a = strlen(prefix), b = strlen(s), c = strlen(suffix);
	char *out = mp_malloc(a + b + c + 1);
	if (out) {
		memcpy(out, prefix, a);
		memcpy(out + a, s, b);
		memcpy(out + a + b, suffix, c + 1);
	}
	free(s);
	return out;
}

static json_t *usage_json(const struct mp_api_usage *u)
{
	return json_pack("{sI sI sI s{sI} sI sI}", "prompt_tokens", (json_int_t)u->prompt,
			 "completion_tokens", (json_int_t)u->completion, "total_tokens",
			 (json_int_t)(u->prompt + u->completion), "prompt_tokens_details",
			 "cached_tokens", (json_int_t)u->reused, "reused_prompt_tokens",
			 (json_int_t)u->reused, "new_prompt_tokens", (json_int_t)(u->prompt - u->reused));
}

static json_t *head_json(const struct mp_api_head *h, const char *object)
{
	return json_pack("{ss ss sI ss}", "id", h->id, "object", object, "created",
			 (json_int_t)h->created, "model", h->model);
}

/* Sets key to a string (or null) in o; returns -1 when out of memory. */
static int set_text(json_t *o, const char *key, const char *text)
{
	json_t *v = text ? json_string(text) : json_null();
	return v ? json_object_set_new(o, key, v) : -1;
}

char *mp_api_body(const struct mp_api_head *h, const char *reasoning, const char *content,
		  const char *finish, const struct mp_api_usage *u)
{
	int chat = h->kind == MP_API_CHAT;
	json_t *j = head_json(h, chat ? "chat.completion" : "text_completion");
	json_t *choice = json_pack("{sI ss}", "index", (json_int_t)0, "finish_reason", finish ? finish : "stop");
	json_t *msg = chat ? json_pack("{ss}", "role", "assistant") : NULL;
	int bad = !j || !choice || (chat && !msg);
	if (!bad && chat) {
		bad |= set_text(msg, "content", content);
		if (reasoning)
			bad |= set_text(msg, "reasoning_content", reasoning);
		bad |= json_object_set(choice, "message", msg);
	} else if (!bad) {
		bad |= set_text(choice, "text", content);
		bad |= json_object_set_new(choice, "logprobs", json_null());
	}
	if (!bad)
		bad |= json_object_set_new(j, "choices", json_pack("[O]", choice)) |
		       json_object_set_new(j, "usage", usage_json(u));
	json_decref(msg);
	json_decref(choice);
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return dump(j, "", "");
}

char *mp_api_chunk(const struct mp_api_head *h, int first, const char *reasoning,
		   const char *content, const char *finish, const struct mp_api_usage *u)
{
	int chat = h->kind == MP_API_CHAT;
	json_t *j = head_json(h, chat ? "chat.completion.chunk" : "text_completion");
	json_t *choice = json_pack("{sI}", "index", (json_int_t)0);
	json_t *delta = chat ? json_object() : NULL;
	int bad = !j || !choice || (chat && !delta);
	if (!bad && chat) {
		if (first)
			bad |= set_text(delta, "role", "assistant");
		if (content || first)
			bad |= set_text(delta, "content", content ? content : "");
		if (reasoning)
			bad |= set_text(delta, "reasoning_content", reasoning);
		bad |= json_object_set(choice, "delta", delta);
	} else if (!bad) {
		bad |= set_text(choice, "text", content ? content : "");
		bad |= json_object_set_new(choice, "logprobs", json_null());
	}
	if (!bad) {
		bad |= set_text(choice, "finish_reason", finish);
		bad |= json_object_set_new(j, "choices", json_pack("[O]", choice));
		if (u)
			bad |= json_object_set_new(j, "usage", usage_json(u));
	}
	json_decref(delta);
	json_decref(choice);
	if (bad) {
		json_decref(j);
		return NULL;
	}
	return dump(j, "data: ", "\n\n");
}

char *mp_api_usage_chunk(const struct mp_api_head *h, const struct mp_api_usage *u)
{
	int chat = h->kind == MP_API_CHAT;
	json_t *j = head_json(h, chat ? "chat.completion.chunk" : "text_completion");
	if (j && (json_object_set_new(j, "choices", json_array()) ||
		  json_object_set_new(j, "usage", usage_json(u)))) {
		json_decref(j);
		return NULL;
	}
	return dump(j, "data: ", "\n\n");
}

char *mp_api_models(const char *model_name, int64_t created)
{
	return dump(json_pack("{ss s[{ss ss sI ss}]}", "object", "list", "data", "id", model_name,
			      "object", "model", "created", (json_int_t)created, "owned_by", "moepager"),
		    "", "");
}

char *mp_api_error_body(const struct mp_api_error *e)
{
	json_t *err = json_pack("{ss ss}", "message", e->message, "type",
				e->type ? e->type : "invalid_request_error");
	if (err && (set_text(err, "param", e->param[0] ? e->param : NULL) ||
		    set_text(err, "code", e->code))) {
		json_decref(err);
		return NULL;
	}
	return dump(err ? json_pack("{so}", "error", err) : NULL, "", "");
}
