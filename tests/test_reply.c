/*
 * test_reply.c — tools/reply.c: the reasoning/content split, stop strings
 * held back across pieces, and deltas.
 */
#include <string.h>

#include "alloc.h"
#include "mp_test.h"
#include "reply.h"

/* Takes the deltas and checks them. */
static void expect_take(struct mp_reply *r, const char *reasoning, const char *content)
{
	char *a, *b;
	REQUIRE(mp_reply_take(r, &a, &b) == 0);
	if ((a == NULL) != (reasoning == NULL) || (a && strcmp(a, reasoning)))
		MP_TEST_FAIL("reasoning delta: expected '%s', got '%s'", reasoning ? reasoning : "(none)",
			     a ? a : "(none)");
	if ((b == NULL) != (content == NULL) || (b && strcmp(b, content)))
		MP_TEST_FAIL("content delta: expected '%s', got '%s'", content ? content : "(none)",
			     b ? b : "(none)");
	mp_free(a);
	mp_free(b);
}

static void test_split(void)
{
	struct mp_reply *r;
	REQUIRE(mp_reply_create(NULL, 0, MP_REPLY_REASONING, &r) == 0);
	CHECK_EQ_INT(mp_reply_push(r, "let me", 6), 0);
	CHECK_EQ_INT(mp_reply_push(r, " think", 6), 0);
	expect_take(r, "let me think", NULL);
	mp_reply_switch(r, MP_REPLY_CONTENT);
	CHECK_EQ_INT(mp_reply_push(r, "\n\n", 2), 0);
	expect_take(r, NULL, NULL);
	CHECK_EQ_INT(mp_reply_push(r, " Paris.", 7), 0);
	mp_reply_finish(r);
	expect_take(r, NULL, "Paris.");
	CHECK(strcmp(mp_reply_text(r, MP_REPLY_REASONING), "let me think") == 0);
	CHECK(strcmp(mp_reply_text(r, MP_REPLY_CONTENT), "Paris.") == 0);
	CHECK(mp_reply_used(r, MP_REPLY_REASONING) && mp_reply_used(r, MP_REPLY_CONTENT));
	mp_reply_destroy(r);
}

static void test_stop_across_pieces(void)
{
	const char *stop[] = { "END", "xyz" };
	struct mp_reply *r;
	REQUIRE(mp_reply_create(stop, 2, MP_REPLY_CONTENT, &r) == 0);
	CHECK_EQ_INT(mp_reply_push(r, "abc E", 5), 0);
	expect_take(r, NULL, "abc ");       /* "E" may start END: held */
	CHECK_EQ_INT(mp_reply_push(r, "N", 1), 0);
	expect_take(r, NULL, NULL);
	CHECK_EQ_INT(mp_reply_push(r, "Dgame", 5), 1);
	mp_reply_finish(r);
	expect_take(r, NULL, NULL);
	CHECK(strcmp(mp_reply_text(r, MP_REPLY_CONTENT), "abc ") == 0);
	CHECK(mp_reply_stopped(r));
	CHECK_EQ_INT(mp_reply_push(r, "more", 4), 1);
	mp_reply_destroy(r);
}

static void test_false_start_released(void)
{
	const char *stop[] = { "STOP" };
	struct mp_reply *r;
	REQUIRE(mp_reply_create(stop, 1, MP_REPLY_CONTENT, &r) == 0);
	CHECK_EQ_INT(mp_reply_push(r, "ST", 2), 0);
	expect_take(r, NULL, NULL);
	CHECK_EQ_INT(mp_reply_push(r, "ay", 2), 0);
	expect_take(r, NULL, "STay");
	CHECK_EQ_INT(mp_reply_push(r, "STO", 3), 0);
	mp_reply_finish(r);                 /* the end releases a held tail */
	expect_take(r, NULL, "STO");
	CHECK(!mp_reply_stopped(r));
	mp_reply_destroy(r);
}

static void test_stop_inside_one_piece(void)
{
	const char *stop[] = { "\n\n" };
	struct mp_reply *r;
	REQUIRE(mp_reply_create(stop, 1, MP_REPLY_CONTENT, &r) == 0);
	CHECK_EQ_INT(mp_reply_push(r, "one\n\ntwo", 8), 1);
	expect_take(r, NULL, "one");
	mp_reply_destroy(r);
}

int main(void)
{
	RUN(test_split);
	RUN(test_stop_across_pieces);
	RUN(test_false_start_released);
	RUN(test_stop_inside_one_piece);
	return mp_test_end();
}
