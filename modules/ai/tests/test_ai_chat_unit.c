/*
 * test_ai_chat_unit.c - the gateway's pure helpers (chat_util.c), without
 * a core: UTF-8 boundaries of streamed pieces, retry backoff, the end of
 * a quota period, UUIDs, list cursors and history trimming.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "chat.h"

static void test_utf8_tail(void **state)
{
    (void)state;
    assert_int_equal(ai_utf8_incomplete_tail("", 0), 0);
    assert_int_equal(ai_utf8_incomplete_tail("abc", 3), 0);
    assert_int_equal(ai_utf8_incomplete_tail("a\xC3", 2), 1);
    assert_int_equal(ai_utf8_incomplete_tail("a\xC3\xA9", 3), 0);
    assert_int_equal(ai_utf8_incomplete_tail("\xE2\x82", 2), 2);
    assert_int_equal(ai_utf8_incomplete_tail("x\xE2\x82\xAC", 4), 0);
    assert_int_equal(ai_utf8_incomplete_tail("\xF0\x9F\x98", 3), 3);
    assert_int_equal(ai_utf8_incomplete_tail("\xF0\x9F", 2), 2);
    assert_int_equal(ai_utf8_incomplete_tail("\xF0", 1), 1);
    assert_int_equal(ai_utf8_incomplete_tail("\xF0\x9F\x98\x80", 4), 0);
    /* never valid: not held, so they cannot wait forever */
    assert_int_equal(ai_utf8_incomplete_tail("a\xFF", 2), 0);
    assert_int_equal(ai_utf8_incomplete_tail("\xE0\x80", 2), 0);    /* overlong */
    assert_int_equal(ai_utf8_incomplete_tail("\xED\xA0", 2), 0);    /* surrogate */
    assert_int_equal(ai_utf8_incomplete_tail("\x80\x80\x80", 3), 0);
}

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(ai_utf8_valid("", 0));
    assert_true(ai_utf8_valid("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", 15));
    assert_false(ai_utf8_valid("\xC3", 1));
    assert_false(ai_utf8_valid("\xC0\xAF", 2));
    assert_false(ai_utf8_valid("\xED\xA0\x80", 3));
    assert_false(ai_utf8_valid("\xF4\x90\x80\x80", 4));
    assert_int_equal(ai_utf8_seq_len('a'), 1);
    assert_int_equal(ai_utf8_seq_len(0xC3), 2);
    assert_int_equal(ai_utf8_seq_len(0xE2), 3);
    assert_int_equal(ai_utf8_seq_len(0xF0), 4);
    assert_int_equal(ai_utf8_seq_len(0x80), 0);
    assert_int_equal(ai_utf8_seq_len(0xC1), 0);
}

typedef struct sink {
    char   out[256];
    size_t len;
    int    pieces;
    int    stop_after;      /* > 0: refuse the piece after this many */
} sink_t;

static bool collect(void *ud, const char *text, size_t len)
{
    sink_t *s = ud;

    if (s->stop_after && s->pieces >= s->stop_after)
        return false;
    assert_true(len > 0);
    assert_true(ai_utf8_valid(text, len));     /* whole characters only */
    assert_true(s->len + len < sizeof s->out);
    memcpy(s->out + s->len, text, len);
    s->len += len;
    s->pieces++;
    return true;
}

static void test_utf8_feed(void **state)
{
    static const char text[] = "h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80!";
    size_t n = sizeof text - 1;

    (void)state;
    /* every way of cutting the text in two, and byte by byte */
    for (size_t cut = 0; cut <= n; cut++) {
        ai_utf8_joiner_t j = { .n = 0 };
        sink_t s = { .len = 0 };
        assert_true(ai_utf8_feed(&j, text, cut, collect, &s));
        assert_true(ai_utf8_feed(&j, text + cut, n - cut, collect, &s));
        assert_int_equal(s.len, n);
        assert_memory_equal(s.out, text, n);
        assert_int_equal(j.n, 0);
    }
    ai_utf8_joiner_t j = { .n = 0 };
    sink_t s = { .len = 0 };
    for (size_t i = 0; i < n; i++)
        assert_true(ai_utf8_feed(&j, text + i, 1, collect, &s));
    assert_int_equal(s.len, n);
    assert_memory_equal(s.out, text, n);
    assert_int_equal(s.pieces, 10);       /* one per character */

    /* a held start that the next piece does not continue is dropped */
    sink_t t = { .len = 0 };
    ai_utf8_joiner_t k = { .n = 0 };
    assert_true(ai_utf8_feed(&k, "a\xE2\x82", 3, collect, &t));
    assert_int_equal(k.n, 2);
    assert_true(ai_utf8_feed(&k, "Bc", 2, collect, &t));
    assert_int_equal(t.len, 3);
    assert_memory_equal(t.out, "aBc", 3);

    /* the consumer's refusal is passed back */
    sink_t u = { .stop_after = 1 };
    ai_utf8_joiner_t l = { .n = 0 };
    assert_true(ai_utf8_feed(&l, "ab\xC3", 3, collect, &u));
    assert_false(ai_utf8_feed(&l, "\xA9z", 2, collect, &u));
}

/* a byte no character can hold reaches the consumer as U+FFFD */
static void test_utf8_feed_replaces_invalid(void **state)
{
    ai_utf8_joiner_t j = { .n = 0 };
    sink_t s = { .len = 0 };

    (void)state;
    assert_true(ai_utf8_feed(&j, "a\xFF" "b\xC0\xAF" "c", 6, collect, &s));
    assert_true(ai_utf8_valid(s.out, s.len));
    assert_int_equal(s.len, 3 + 3 * 3);
    assert_memory_equal(s.out, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD\xEF\xBF\xBD" "c", s.len);
}

static void test_backoff(void **state)
{
    (void)state;
    assert_int_equal(ai_backoff_ms(1, -1, 500, 8000), 500);
    assert_int_equal(ai_backoff_ms(2, -1, 500, 8000), 1000);
    assert_int_equal(ai_backoff_ms(3, -1, 500, 8000), 2000);
    assert_int_equal(ai_backoff_ms(5, -1, 500, 8000), 8000);
    assert_int_equal(ai_backoff_ms(60, -1, 500, 8000), 8000);
    /* the provider's Retry-After wins, within the cap */
    assert_int_equal(ai_backoff_ms(1, 1000, 500, 8000), 1000);
    assert_int_equal(ai_backoff_ms(3, 0, 500, 8000), 0);
    assert_int_equal(ai_backoff_ms(1, 30000, 500, 8000), 8000);
}

static void test_period_end(void **state)
{
    (void)state;
    /* 2024-01-31T23:59:00Z */
    assert_int_equal(ai_seconds_to_period_end(1706745540, false), 60);
    assert_int_equal(ai_seconds_to_period_end(1706745540, true), 60);
    /* 2024-02-28T00:00:00Z: a leap year's February has two days left */
    assert_int_equal(ai_seconds_to_period_end(1709078400, false), 86400);
    assert_int_equal(ai_seconds_to_period_end(1709078400, true), 2 * 86400);
    /* 2024-12-31T12:00:00Z: the month ends with the year */
    assert_int_equal(ai_seconds_to_period_end(1735646400, true), 43200);
}

/* ten tokens a message */
static long ten_each(json_t *messages)
{
    return 10 * (long)json_array_size(messages);
}

static const char *role_at(json_t *msgs, size_t i)
{
    return json_string_value(json_object_get(json_array_get(msgs, i), "role"));
}

static void test_history_trim(void **state)
{
    json_t *msgs = json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},"
                             "{s:s,s:s},{s:s,s:s}]",
                             "role", "system", "content", "be brief",
                             "role", "user", "content", "u1",
                             "role", "assistant", "content", "a1",
                             "role", "user", "content", "u2",
                             "role", "assistant", "content", "a2",
                             "role", "user", "content", "u3");

    (void)state;
    assert_int_equal(ai_history_trim(msgs, 60, ten_each), 0);
    /* 40: system + u2 a2 u3 (dropping u1 leaves a1 first: dropped too) */
    assert_int_equal(ai_history_trim(msgs, 40, ten_each), 2);
    assert_int_equal(json_array_size(msgs), 4);
    assert_string_equal(role_at(msgs, 0), "system");
    assert_string_equal(role_at(msgs, 1), "user");
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1),
                                                          "content")), "u2");
    /* never below the system prompt and the last message */
    assert_int_equal(ai_history_trim(msgs, 0, ten_each), 2);
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(role_at(msgs, 1), "user");
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 1),
                                                          "content")), "u3");
    json_decref(msgs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_tail),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_feed),
        cmocka_unit_test(test_utf8_feed_replaces_invalid),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_period_end),
        cmocka_unit_test(test_history_trim),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
