/*
 * test_input.c - the pure parts of request input: RFC 3339 times, sort
 * keys by kind, and list cursors, against everything a client could craft
 * in their place (what is refused here never reaches PostgreSQL)
 */
#include "config.h"
#include "input.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define ID "123e4567-e89b-42d3-a456-426614174000"

static void test_time_valid(void **state)
{
    static const char *const good[] = {
        "2026-12-08T00:50:35Z", "2026-12-08T00:50:35.123Z",
        "2026-12-08T00:50:35.123456789Z", "2026-12-08t00:50:35z",
        "2026-12-08T00:50:35+01:00", "2026-12-08T23:59:59-15:59",
        "0001-01-01T00:00:00+15:59", "9999-12-31T23:59:59.999999999-15:59",
        "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
        "2024-02-29T12:00:00Z", "2000-02-29T12:00:00Z",
        "2016-12-31T23:59:60Z",                 /* a leap second */
    };
    static const char *const bad[] = {
        "", "2026-12-08", "2026-12-08T00:50Z", "2026-12-08 00:50:35Z",
        "2026-12-08T00:50:35", "0000-01-01T00:00:00Z", "10000-01-01T00:00:00Z",
        "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z", "2026-04-31T00:00:00Z",
        "2025-02-29T00:00:00Z", "1900-02-29T00:00:00Z", "2026-12-00T00:00:00Z",
        "2026-12-08T24:00:00Z", "2026-12-08T23:60:00Z", "2026-12-08T23:59:61Z",
        "2026-12-08T00:50:35.Z", "2026-12-08T00:50:35.1234567890Z",
        "2026-12-08T00:50:35+24:00", "2026-12-08T00:50:35+01:60",
        "2026-12-08T00:50:35+16:00", "2026-12-08T00:50:35-23:59",
        "2026-12-08T00:50:35+0100", "2026-12-08T00:50:35Z ", "2026-12-08T00:50:35ZZ",
        "+2026-12-08T00:50:35Z", "2026-1a-08T00:50:35Z", "-001-12-08T00:50:35Z",
        "2026-12-08T00:50:35+01:00junk", "infinity", "epoch",
        "2026-12-08T00:50:35Z'; DROP TABLE x; --",
    };

    (void)state;
    for (size_t i = 0; i < CORE_ARRAY_LEN(good); i++)
        if (!core_time_valid(good[i]))
            fail_msg("refused \"%s\"", good[i]);
    for (size_t i = 0; i < CORE_ARRAY_LEN(bad); i++)
        if (core_time_valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    assert_false(core_time_valid(NULL));
}

static void test_key_valid(void **state)
{
    char long_text[CORE_CURSOR_KEY_MAX + 2];

    (void)state;
    assert_true(core_key_valid(PLX_KEY_INT, "0"));
    assert_true(core_key_valid(PLX_KEY_INT, "-1"));
    assert_true(core_key_valid(PLX_KEY_INT, "1765155035123456"));
    assert_true(core_key_valid(PLX_KEY_INT, "9223372036854775807"));
    assert_true(core_key_valid(PLX_KEY_INT, "-9223372036854775808"));
    assert_false(core_key_valid(PLX_KEY_INT, "9223372036854775808"));
    assert_false(core_key_valid(PLX_KEY_INT, "-9223372036854775809"));
    assert_false(core_key_valid(PLX_KEY_INT, "99999999999999999999"));
    assert_false(core_key_valid(PLX_KEY_INT, ""));
    assert_false(core_key_valid(PLX_KEY_INT, "-"));
    assert_false(core_key_valid(PLX_KEY_INT, "-0"));
    assert_false(core_key_valid(PLX_KEY_INT, "007"));
    assert_false(core_key_valid(PLX_KEY_INT, "+7"));
    assert_false(core_key_valid(PLX_KEY_INT, "1e3"));
    assert_false(core_key_valid(PLX_KEY_INT, " 1"));

    assert_true(core_key_valid(PLX_KEY_TEXT, ""));
    assert_true(core_key_valid(PLX_KEY_TEXT, "caf\xc3\xa9 | with a bar"));
    assert_false(core_key_valid(PLX_KEY_TEXT, "\xc0\xaf"));
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[CORE_CURSOR_KEY_MAX] = '\0';
    assert_true(core_key_valid(PLX_KEY_TEXT, long_text));
    long_text[CORE_CURSOR_KEY_MAX] = 'a';
    long_text[CORE_CURSOR_KEY_MAX + 1] = '\0';
    assert_false(core_key_valid(PLX_KEY_TEXT, long_text));

    assert_true(core_key_valid(PLX_KEY_TIME, "2026-12-08T00:50:35.123456Z"));
    assert_false(core_key_valid(PLX_KEY_TIME, "2026-12-08"));
    assert_true(core_key_valid(PLX_KEY_NONE, ""));
    assert_false(core_key_valid(PLX_KEY_NONE, "x"));
    assert_false(core_key_valid(PLX_KEY_INT, NULL));
}

static void round_trip(plx_key_kind_t kind, const char *key)
{
    char cur[CORE_CURSOR_MAX + 1], k[CORE_CURSOR_KEY_MAX + 1], id[37];

    assert_true(core_cursor_encode("things.created.desc", kind, key, ID, cur,
                                   sizeof cur));
    /* base64url without padding: safe in a query string as it is */
    assert_int_equal(strspn(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                 "0123456789-_"), strlen(cur));
    assert_true(core_cursor_decode(cur, "things.created.desc", kind, k, id));
    assert_string_equal(k, key ? key : "");
    assert_string_equal(id, ID);
    /* another list's tag, or another kind, refuses it */
    assert_false(core_cursor_decode(cur, "things.created.asc", kind, k, id));
    assert_false(core_cursor_decode(cur, "things.created", kind, k, id));
}

static void test_cursor_round_trip(void **state)
{
    char long_text[CORE_CURSOR_KEY_MAX + 1];

    (void)state;
    round_trip(PLX_KEY_TIME, "2026-12-08T00:50:35.123456Z");
    round_trip(PLX_KEY_INT, "-9223372036854775808");
    round_trip(PLX_KEY_TEXT, "a|b|" ID);   /* bars in a text key are fine */
    round_trip(PLX_KEY_TEXT, "");
    round_trip(PLX_KEY_NONE, NULL);
    memset(long_text, 'z', CORE_CURSOR_KEY_MAX);
    long_text[CORE_CURSOR_KEY_MAX] = '\0';
    round_trip(PLX_KEY_TEXT, long_text);
}

static void test_cursor_encode_refuses(void **state)
{
    char cur[CORE_CURSOR_MAX + 1];

    (void)state;
    assert_false(core_cursor_encode("t", PLX_KEY_TIME, "yesterday", ID, cur, sizeof cur));
    assert_false(core_cursor_encode("t", PLX_KEY_INT, "12a", ID, cur, sizeof cur));
    assert_false(core_cursor_encode("t", PLX_KEY_NONE, "x", ID, cur, sizeof cur));
    assert_false(core_cursor_encode("t", PLX_KEY_INT, "1", "not-a-uuid", cur, sizeof cur));
    assert_false(core_cursor_encode("a|b", PLX_KEY_INT, "1", ID, cur, sizeof cur));
    assert_false(core_cursor_encode("", PLX_KEY_INT, "1", ID, cur, sizeof cur));
    assert_false(core_cursor_encode("t", PLX_KEY_INT, "1", ID, cur, 10));
    assert_true(core_cursor_encode("t", PLX_KEY_INT, "1", ID, cur, sizeof cur));
}

/* base64url of raw, for crafting cursors by hand */
static const char *b64(const char *raw, char out[1024])
{
    assert_int_not_equal(core_base64_encode(PLX_B64_URL, raw, strlen(raw), out, 1024),
                         (size_t)-1);
    return out;
}

static void test_cursor_decode_refuses(void **state)
{
    static const char *const raw_bad[] = {
        "garbage",
        "t|2026-12-08T00:50:35Z",                     /* no id */
        "t|2026-12-08T00:50:35Z|not-a-uuid-at-all-but-36-characters",
        "t|2026-12-08T00:50:35Z" ID,                   /* no bar before the id */
        "t|2026-13-08T00:50:35Z|" ID,                  /* no 13th month */
        "t|99999-12-08T00:50:35Z|" ID,                 /* a huge year */
        "t|0000-12-08T00:50:35Z|" ID,
        "t|2026-12-08T00:50:35Z'||now()|" ID,          /* SQL in the key */
        "t|infinity|" ID,
        "t||" ID,                                      /* empty key */
        "u|2026-12-08T00:50:35Z|" ID,                  /* another list */
        "|t|2026-12-08T00:50:35Z|" ID,
        "tt|2026-12-08T00:50:35Z|" ID,
        "t|2026-12-08T00:50:35Z|" ID "0",              /* id too long */
    };
    char buf[1024], key[CORE_CURSOR_KEY_MAX + 1], id[37];
    char huge[CORE_CURSOR_MAX + 8];

    (void)state;
    for (size_t i = 0; i < CORE_ARRAY_LEN(raw_bad); i++)
        if (core_cursor_decode(b64(raw_bad[i], buf), "t", PLX_KEY_TIME, key, id))
            fail_msg("accepted a cursor of \"%s\"", raw_bad[i]);
    assert_true(core_cursor_decode(b64("t|2026-12-08T00:50:35Z|" ID, buf), "t",
                                   PLX_KEY_TIME, key, id));
    /* not base64url, padded, with a NUL inside, or far too long */
    assert_false(core_cursor_decode("!!!!", "t", PLX_KEY_TIME, key, id));
    assert_false(core_cursor_decode("dA==", "t", PLX_KEY_TIME, key, id));
    assert_false(core_cursor_decode("", "t", PLX_KEY_TIME, key, id));
    assert_false(core_cursor_decode(NULL, "t", PLX_KEY_TIME, key, id));
    {
        char raw[80] = "t|1|";
        size_t n;
        memcpy(raw + 4, ID, 37);
        raw[2] = '\0';   /* "t|\0|<id>" */
        assert_int_not_equal(core_base64_encode(PLX_B64_URL, raw, 4 + 36, buf,
                                                sizeof buf), (size_t)-1);
        n = strlen(buf);
        assert_true(n > 0);
        assert_false(core_cursor_decode(buf, "t", PLX_KEY_INT, key, id));
    }
    memset(huge, 'A', sizeof huge - 1);
    huge[sizeof huge - 1] = '\0';
    assert_false(core_cursor_decode(huge, "t", PLX_KEY_TEXT, key, id));
    /* an integer key out of int64, and a key of the wrong kind */
    assert_false(core_cursor_decode(b64("t|9223372036854775808|" ID, buf), "t",
                                    PLX_KEY_INT, key, id));
    assert_false(core_cursor_decode(b64("t|12|" ID, buf), "t", PLX_KEY_TIME, key, id));
    assert_false(core_cursor_decode(b64("t|12|" ID, buf), "t", PLX_KEY_NONE, key, id));
    assert_true(core_cursor_decode(b64("t||" ID, buf), "t", PLX_KEY_NONE, key, id));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_valid),
        cmocka_unit_test(test_key_valid),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_encode_refuses),
        cmocka_unit_test(test_cursor_decode_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
