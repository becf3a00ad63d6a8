/*
 * test_ai_oai_unit.c - the pure helpers of the OpenAI-compatible surface
 * and the WebSocket (modules/ai/oai.c), without a server: UTF-8 pieces of
 * streamed text, OpenAI messages to canonical ones, ids, base64 of float
 * vectors
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "oai.h"

/* ---- UTF-8 pieces --------------------------------------------------------- */

/* feed the pieces one by one, joining what comes out */
static char *feed(const char *const *pieces, const size_t *lens, size_t n, bool last)
{
    ai_utf8_carry_t c = { .n = 0 };
    char *all = calloc(1, 1);
    size_t total = 0;

    for (size_t i = 0; i < n; i++) {
        size_t len = 0;
        char *p = ai_utf8_piece(&c, pieces[i], lens[i], last && i + 1 == n, &len);

        assert_non_null(p);
        assert_int_equal(strlen(p), len);
        all = realloc(all, total + len + 1);
        memcpy(all + total, p, len + 1);
        total += len;
        free(p);
    }
    return all;
}

static void test_utf8_split_sequences(void **state)
{
    /* "é" = C3 A9 and U+1F600 = F0 9F 98 80, cut between every byte */
    const char *p[] = { "caf\xC3", "\xA9 \xF0", "\x9F", "\x98", "\x80!" };
    size_t l[] = { 4, 3, 1, 1, 2 };
    char *out = feed(p, l, 5, true);
    ai_utf8_carry_t c = { .n = 0 };
    size_t len = 1;
    char *s;

    (void)state;
    assert_string_equal(out, "caf\xC3\xA9 \xF0\x9F\x98\x80!");
    free(out);
    /* a piece that is only the start of a sequence gives nothing yet */
    s = ai_utf8_piece(&c, "\xE2\x82", 2, false, &len);
    assert_int_equal(len, 0);
    assert_int_equal(c.n, 2);
    free(s);
    s = ai_utf8_piece(&c, "\xAC", 1, false, &len);
    assert_string_equal(s, "\xE2\x82\xAC");   /* the euro sign */
    assert_int_equal(c.n, 0);
    free(s);
}

static void test_utf8_invalid_bytes(void **state)
{
    const char *p1[] = { "a\xFF" "b" };
    size_t l1[] = { 3 };
    /* an overlong NUL (C0 80) and a surrogate (ED A0 80) */
    const char *p2[] = { "\xC0\x80|\xED\xA0\x80" };
    size_t l2[] = { 6 };
    /* cut off for good at the end */
    const char *p3[] = { "ok\xF0\x9F" };
    size_t l3[] = { 4 };
    /* a lead byte followed by something that cannot continue it */
    const char *p4[] = { "\xC3(" };
    size_t l4[] = { 2 };
    char *out;

    (void)state;
    out = feed(p1, l1, 1, false);
    assert_string_equal(out, "a\xEF\xBF\xBD" "b");
    free(out);
    out = feed(p2, l2, 1, false);
    assert_string_equal(out, "\xEF\xBF\xBD\xEF\xBF\xBD|\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
    free(out);
    out = feed(p3, l3, 1, true);
    assert_string_equal(out, "ok\xEF\xBF\xBD");
    free(out);
    out = feed(p4, l4, 1, false);
    assert_string_equal(out, "\xEF\xBF\xBD(");
    free(out);
}

static void test_utf8_held_then_flushed(void **state)
{
    ai_utf8_carry_t c = { .n = 0 };
    size_t len = 0;
    char *s = ai_utf8_piece(&c, "x\xE2\x82", 3, false, &len);

    (void)state;
    assert_string_equal(s, "x");
    free(s);
    s = ai_utf8_piece(&c, "", 0, true, &len);
    assert_string_equal(s, "\xEF\xBF\xBD");
    assert_int_equal(c.n, 0);
    free(s);
}

/* ---- messages ---------------------------------------------------------------- */

static json_t *canon(const char *text, ai_oai_err_t *err)
{
    json_t *in = json_loads(text, 0, NULL);
    json_t *out;

    assert_non_null(in);
    memset(err, 0, sizeof *err);
    out = ai_oai_messages(in, "messages", 16, err);
    json_decref(in);
    return out;
}

static void expect_refused(const char *text, const char *param, const char *code)
{
    ai_oai_err_t err;
    json_t *out = canon(text, &err);

    if (out)
        fail_msg("accepted: %s", text);
    assert_string_equal(err.param, param);
    assert_string_equal(err.code, code);
    assert_true(strlen(err.message) > 0);
}

static void test_messages_canonical(void **state)
{
    ai_oai_err_t err;
    json_t *out = canon("[{\"role\":\"developer\",\"content\":\"Be brief.\",\"name\":\"x\"},"
                        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                        "{\"type\":\"text\",\"text\":\"b\"}]},"
                        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c1\","
                        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},"
                        "{\"role\":\"tool\",\"tool_call_id\":\"c1\",\"content\":\"42\"}]", &err);
    json_t *want = json_loads("[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                              "{\"role\":\"user\",\"content\":\"a\\nb\"},"
                              "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":"
                              "\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
                              "\"arguments\":\"{}\"}}]},"
                              "{\"role\":\"tool\",\"content\":\"42\",\"tool_call_id\":\"c1\"}]",
                              0, NULL);

    (void)state;
    assert_non_null(out);
    assert_non_null(want);
    assert_true(json_equal(out, want));
    json_decref(out);
    json_decref(want);
}

static void test_messages_refused(void **state)
{
    (void)state;
    expect_refused("[]", "messages", "invalid_value");
    expect_refused("{}", "messages", "invalid_value");
    expect_refused("[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":"
                   "[{\"type\":\"text\",\"text\":\"look\"},{\"type\":\"image_url\","
                   "\"image_url\":{\"url\":\"http://x/y.png\"}}]}]",
                   "messages[1].content[1].type", "unsupported_value");
    expect_refused("[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]",
                   "messages[0].role", "invalid_value");
    expect_refused("[{\"content\":\"x\"}]", "messages[0].role", "invalid_value");
    expect_refused("[{\"role\":\"user\"}]", "messages[0].content", "invalid_value");
    expect_refused("[{\"role\":\"user\",\"content\":7}]", "messages[0].content",
                   "invalid_value");
    expect_refused("[{\"role\":\"user\",\"content\":[]}]", "messages[0].content",
                   "invalid_value");
    expect_refused("[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]",
                   "messages[0].content[0].text", "invalid_value");
    expect_refused("[{\"role\":\"tool\",\"content\":\"x\"}]", "messages[0].tool_call_id",
                   "invalid_value");
    expect_refused("[{\"role\":\"user\",\"content\":\"x\",\"tool_calls\":[]}]",
                   "messages[0].tool_calls", "invalid_value");
    expect_refused("[\"hello\"]", "messages[0]", "invalid_value");
}

static void test_messages_bounded(void **state)
{
    ai_oai_err_t err;
    json_t *in = json_array(), *out;

    (void)state;
    for (int i = 0; i < 17; i++)
        json_array_append_new(in, json_pack("{s:s, s:s}", "role", "user", "content", "x"));
    out = ai_oai_messages(in, "messages", 16, &err);
    assert_null(out);
    assert_string_equal(err.param, "messages");
    json_array_remove(in, 0);
    out = ai_oai_messages(in, "messages", 16, &err);
    assert_non_null(out);
    assert_int_equal(json_array_size(out), 16);
    json_decref(out);
    json_decref(in);
}

/* ---- small things -------------------------------------------------------------- */

static void test_ids_unique(void **state)
{
    char a[64], b[64];

    (void)state;
    ai_oai_id(a, sizeof a, "chatcmpl-");
    ai_oai_id(b, sizeof b, "chatcmpl-");
    assert_int_equal(strlen(a), 9 + 29);
    assert_memory_equal(a, "chatcmpl-", 9);
    for (size_t i = 9; a[i]; i++)
        assert_true((a[i] >= 'a' && a[i] <= 'z') || (a[i] >= 'A' && a[i] <= 'Z')
                    || (a[i] >= '0' && a[i] <= '9'));
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8_split_sequences),
        cmocka_unit_test(test_utf8_invalid_bytes),
        cmocka_unit_test(test_utf8_held_then_flushed),
        cmocka_unit_test(test_messages_canonical),
        cmocka_unit_test(test_messages_refused),
        cmocka_unit_test(test_messages_bounded),
        cmocka_unit_test(test_ids_unique),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
