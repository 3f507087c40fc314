/*
 * test_api.c — tools/api.c: OpenAI requests parsed and checked (each bad
 * field named, with its status), and the response bodies well formed.
 */
#include <string.h>

#include <jansson.h>

#include "alloc.h"
#include "api.h"
#include "mp_test.h"

static int parse(enum mp_api_kind k, const char *body, struct mp_api_request *r, struct mp_api_error *e)
{
	return mp_api_parse(k, body, strlen(body), "tiny", "models/tiny.gguf", r, e);
}

static void test_chat_ok(void)
{
	struct mp_api_request r;
	struct mp_api_error e;
	const char *body = "{\"model\":\"tiny\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
		"{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi \"},{\"type\":\"text\",\"text\":\"there\"}]},"
		"{\"role\":\"assistant\",\"content\":null},{\"role\":\"user\",\"content\":\"again\"}],"
		"\"stream\":true,\"max_tokens\":12,\"temperature\":0.5,\"top_p\":0.9,\"seed\":7,"
		"\"stop\":[\"a\",\"bc\"],\"stream_options\":{\"include_usage\":true},\"unknown\":1,"
		"\"frequency_penalty\":0.5,\"presence_penalty\":-1,\"ignore_eos\":true}";
	int rc = parse(MP_API_CHAT, body, &r, &e);
	if (rc < 0)
		MP_TEST_FAIL("expected a valid request, got %d: %s", e.status, e.message);
	REQUIRE(rc == 0);
	CHECK_EQ_U64(r.n_msgs, 4);
	CHECK_EQ_INT(r.msgs[0].role, MP_TOK_SYSTEM);
	CHECK(strcmp(r.msgs[1].content, "Hi there") == 0);
	CHECK(strcmp(r.msgs[2].content, "") == 0);
	CHECK_EQ_INT(r.stream, 1);
	CHECK_EQ_INT(r.include_usage, 1);
	CHECK_EQ_INT(r.max_tokens, 12);
	CHECK_NEAR(r.temperature, 0.5, 1e-9);
	CHECK_NEAR(r.top_p, 0.9, 1e-9);
	CHECK(r.seed_given && r.seed == 7);
	CHECK_EQ_U64(r.n_stop, 2);
	CHECK(strcmp(r.stop[1], "bc") == 0);
	CHECK_NEAR(r.frequency_penalty, 0.5, 1e-9);
	CHECK_NEAR(r.presence_penalty, -1, 1e-9);
	CHECK_EQ_INT(r.ignore_eos, 1);
	mp_api_request_free(&r);
	REQUIRE(parse(MP_API_COMPLETION, "{\"prompt\":[\"once\"],\"stop\":\"x\"}", &r, &e) == 0);
	CHECK(strcmp(r.prompt, "once") == 0);
	CHECK_EQ_INT(r.max_tokens, -1);
	CHECK(r.temperature < 0 && r.top_p < 0 && !r.seed_given && !r.stream);
	CHECK(r.frequency_penalty == 0 && r.presence_penalty == 0 && !r.ignore_eos);
	CHECK_EQ_U64(r.n_stop, 1);
	mp_api_request_free(&r);
	REQUIRE(parse(MP_API_CHAT, "{\"model\":\"models/tiny.gguf\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", &r, &e) == 0);
	mp_api_request_free(&r);
}

/* Each bad request: status, param and a word the message must contain. */
static void test_bad_requests(void)
{
	static const struct { enum mp_api_kind k; const char *body; int status; const char *param, *word; } cases[] = {
		{ MP_API_CHAT, "{\"messages\": [", 400, "", "not valid JSON" },
		{ MP_API_CHAT, "[1,2]", 400, "", "JSON object" },
		{ MP_API_CHAT, "{}", 400, "messages", "required" },
		{ MP_API_CHAT, "{\"messages\":\"hi\"}", 400, "messages", "a string" },
		{ MP_API_CHAT, "{\"messages\":[]}", 400, "messages", "no elements" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", 400, "messages", "tool" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":5}]}", 400, "messages", "an integer" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", 400, "messages", "required" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":\"9\"}", 400, "max_tokens", "integer" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}", 400, "max_tokens", "at least 1" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"temperature\":3}", 400, "temperature", "from 0 to 2" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":\"a\"}", 400, "top_p", "a string" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"presence_penalty\":3}", 400, "presence_penalty", "from -2 to 2" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}", 400, "stream", "true or false" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", 400, "stop", "at most 4" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stop\":[\"\"]}", 400, "stop", "non-empty" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}", 400, "n", "one choice" },
		{ MP_API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":1.5}", 400, "seed", "integer" },
		{ MP_API_CHAT, "{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 404, "model", "gpt-4" },
		{ MP_API_CHAT, "{\"model\":7,\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}", 400, "model", "string" },
		{ MP_API_COMPLETION, "{\"prompt\":[1,2]}", 400, "prompt", "an array" },
		{ MP_API_COMPLETION, "{\"model\":\"tiny\"}", 400, "prompt", "required" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct mp_api_request r;
		struct mp_api_error e;
		int rc = parse(cases[i].k, cases[i].body, &r, &e);
		if (rc == 0) {
			MP_TEST_FAIL("case %zu (%s): expected an error, the request was accepted", i, cases[i].body);
			mp_api_request_free(&r);
			continue;
		}
		if (e.status != cases[i].status || strcmp(e.param, cases[i].param) || !strstr(e.message, cases[i].word))
			MP_TEST_FAIL("case %zu (%s): expected %d param '%s' with '%s', got %d param '%s': %s", i,
				     cases[i].body, cases[i].status, cases[i].param, cases[i].word, e.status, e.param,
				     e.message);
		CHECK(r.msgs == NULL && r.prompt == NULL && r.n_stop == 0);
		char *body = mp_api_error_body(&e);
		REQUIRE(body != NULL);
		json_t *j = json_loads(body, 0, NULL);
		CHECK(j && json_is_string(json_object_get(json_object_get(j, "error"), "message")));
		json_decref(j);
		mp_free(body);
	}
}

static void test_bodies(void)
{
	struct mp_api_head h = { MP_API_CHAT, "chatcmpl-1", 1700000000, "tiny" };
	struct mp_api_usage u = { 10, 4, 3 };
	char *s = mp_api_body(&h, "hmm", "Paris", "stop", &u);
	REQUIRE(s != NULL);
	json_t *j = json_loads(s, 0, NULL);
	REQUIRE(j != NULL);
	json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
	json_t *msg = json_object_get(c0, "message");
	CHECK(strcmp(json_string_value(json_object_get(msg, "content")), "Paris") == 0);
	CHECK(strcmp(json_string_value(json_object_get(msg, "reasoning_content")), "hmm") == 0);
	json_t *us = json_object_get(j, "usage");
	CHECK_EQ_INT(json_integer_value(json_object_get(us, "total_tokens")), 13);
	CHECK_EQ_INT(json_integer_value(json_object_get(us, "reused_prompt_tokens")), 4);
	CHECK_EQ_INT(json_integer_value(json_object_get(us, "new_prompt_tokens")), 6);
	CHECK_EQ_INT(json_integer_value(json_object_get(json_object_get(us, "prompt_tokens_details"), "cached_tokens")), 4);
	json_decref(j);
	mp_free(s);

	s = mp_api_chunk(&h, 1, NULL, "Hel", NULL, NULL);
	REQUIRE(s != NULL);
	CHECK(strncmp(s, "data: {", 7) == 0 && strcmp(s + strlen(s) - 2, "\n\n") == 0);
	j = json_loads(s + 6, 0, NULL);
	REQUIRE(j != NULL);
	json_t *d = json_object_get(json_array_get(json_object_get(j, "choices"), 0), "delta");
	CHECK(strcmp(json_string_value(json_object_get(d, "role")), "assistant") == 0);
	CHECK(json_is_null(json_object_get(json_array_get(json_object_get(j, "choices"), 0), "finish_reason")));
	json_decref(j);
	mp_free(s);

	h.kind = MP_API_COMPLETION;
	s = mp_api_body(&h, NULL, "text", "length", &u);
	REQUIRE(s != NULL);
	CHECK(strstr(s, "\"object\":\"text_completion\"") && strstr(s, "\"finish_reason\":\"length\""));
	mp_free(s);
	s = mp_api_models("tiny", 5);
	REQUIRE(s != NULL);
	CHECK(strstr(s, "\"id\":\"tiny\"") != NULL);
	mp_free(s);
}

int main(void)
{
	RUN(test_chat_ok);
	RUN(test_bad_requests);
	RUN(test_bodies);
	return mp_test_end();
}
