/*
 * test_projects_unit.c - the pure helpers of common.c, without a core:
 * UUIDs, calendar dates, UTF-8 lengths, ILIKE escaping, cursors and
 * If-Match parsing. These decide what reaches SQL, so each is tested with
 * the inputs a hostile client would send.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "projects.h"

/* common.c's request helpers call through the table; the pure ones here
 * never do */
const plx_api_t *plx_api;

#define ID "0f8fad5b-d9cb-469f-a165-70867728950e"

static void test_uuid(void **state)
{
    assert_true(projects_uuid_valid(ID));
    assert_true(projects_uuid_valid("0F8FAD5B-D9CB-469F-A165-70867728950E"));
    assert_false(projects_uuid_valid(NULL));
    assert_false(projects_uuid_valid(""));
    assert_false(projects_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950"));
    assert_false(projects_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950e0"));
    assert_false(projects_uuid_valid("0f8fad5bd9cb-469f-a165-70867728950e0"));
    assert_false(projects_uuid_valid("0f8fad5b-d9cb-469f-a165-70867728950g"));
    assert_false(projects_uuid_valid("{0f8fad5b-d9cb-469f-a165-70867728950}"));
    assert_false(projects_uuid_valid("0f8fad5b-d9cb-469f-a165-7086772895'e"));
}

static void test_date(void **state)
{
    assert_true(projects_date_valid("2024-02-29"));
    assert_true(projects_date_valid("2000-02-29"));
    assert_true(projects_date_valid("0001-01-01"));
    assert_true(projects_date_valid("9999-12-31"));
    assert_false(projects_date_valid("2023-02-29"));
    assert_false(projects_date_valid("2100-02-29"));
    assert_false(projects_date_valid("0000-01-01"));
    assert_false(projects_date_valid("2024-13-01"));
    assert_false(projects_date_valid("2024-00-10"));
    assert_false(projects_date_valid("2024-04-31"));
    assert_false(projects_date_valid("2024-1-01"));
    assert_false(projects_date_valid("2024-01-01T00:00:00Z"));
    assert_false(projects_date_valid("20240101"));
    assert_false(projects_date_valid("2024/01/01"));
    assert_false(projects_date_valid("+024-01-01"));
    assert_false(projects_date_valid("infinity"));
    assert_false(projects_date_valid(NULL));
}

static void test_utf8(void **state)
{
    assert_int_equal(projects_utf8_chars("", 0), 0);
    assert_int_equal(projects_utf8_chars("plain", 5), 5);
    assert_int_equal(projects_utf8_chars("h\xc3\xa9llo", 6), 5);           /* é */
    assert_int_equal(projects_utf8_chars("\xe2\x82\xac", 3), 1);            /* € */
    assert_int_equal(projects_utf8_chars("\xf0\x9f\x98\x80", 4), 1);        /* 😀 */
    assert_int_equal(projects_utf8_chars("\xff", 1), -1);
    assert_int_equal(projects_utf8_chars("\xc0\xaf", 2), -1);               /* overlong '/' */
    assert_int_equal(projects_utf8_chars("\xe0\x80\xaf", 3), -1);           /* overlong */
    assert_int_equal(projects_utf8_chars("\xed\xa0\x80", 3), -1);           /* surrogate */
    assert_int_equal(projects_utf8_chars("\xf4\x90\x80\x80", 4), -1);       /* > U+10FFFF */
    assert_int_equal(projects_utf8_chars("\xe2\x82", 2), -1);               /* cut short */
    assert_int_equal(projects_utf8_chars("a\x80z", 3), -1);                 /* lone continuation */
}

static void test_like_pattern(void **state)
{
    char out[64];

    assert_string_equal(projects_like_pattern("moon", out, sizeof out), "%moon%");
    assert_string_equal(projects_like_pattern("100%", out, sizeof out), "%100\\%%");
    assert_string_equal(projects_like_pattern("a_b", out, sizeof out), "%a\\_b%");
    assert_string_equal(projects_like_pattern("c:\\x", out, sizeof out), "%c:\\\\x%");
    assert_string_equal(projects_like_pattern("';--", out, sizeof out), "%';--%");
    assert_null(projects_like_pattern("%%%%", out, 10));
    assert_non_null(projects_like_pattern("%%%%", out, 11));
}

static void test_one_of(void **state)
{
    static const char *const v[] = { "todo", "done", NULL };

    assert_true(projects_one_of("todo", v));
    assert_false(projects_one_of("TODO", v));
    assert_false(projects_one_of("", v));
    assert_false(projects_one_of(NULL, v));
}

/* ---- cursors ------------------------------------------------------------- */

static void test_cursor_round_trip(void **state)
{
    char cur[PROJECTS_CURSOR_MAX], key[PROJECTS_KEY_MAX], id[37];

    assert_true(projects_cursor_encode("tasks.created_at.asc", "1700000000123456",
                                       ID, cur, sizeof cur));
    assert_null(strpbrk(cur, "+/="));   /* base64url, unpadded: fits a URL */
    assert_true(projects_cursor_decode(cur, "tasks.created_at.asc", PROJECTS_KEY_US,
                                       key, id));
    assert_string_equal(key, "1700000000123456");
    assert_string_equal(id, ID);

    assert_true(projects_cursor_encode("tasks.due_date.desc", "infinity", ID, cur,
                                       sizeof cur));
    assert_true(projects_cursor_decode(cur, "tasks.due_date.desc", PROJECTS_KEY_DATE,
                                       key, id));
    assert_string_equal(key, "infinity");
    assert_true(projects_cursor_encode("tasks.due_date.asc", "2024-02-29", ID, cur,
                                       sizeof cur));
    assert_true(projects_cursor_decode(cur, "tasks.due_date.asc", PROJECTS_KEY_DATE,
                                       key, id));
    assert_string_equal(key, "2024-02-29");
    /* too small an output buffer is refused, not overrun */
    assert_false(projects_cursor_encode("projects", "1", ID, cur, 10));
}

/* base64url of raw text, to forge cursors */
static const char *forge(const char *raw, char *out, size_t outlen)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t len = strlen(raw), o = 0;

    for (size_t i = 0; i < len && o + 5 < outlen; i += 3) {
        unsigned v = (unsigned char)raw[i] << 16;
        size_t n = len - i < 3 ? len - i : 3;
        if (n > 1)
            v |= (unsigned char)raw[i + 1] << 8;
        if (n > 2)
            v |= (unsigned char)raw[i + 2];
        for (size_t k = 0; k <= n; k++)
            out[o++] = a[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
    return out;
}

static void test_cursor_refusals(void **state)
{
    char cur[PROJECTS_CURSOR_MAX], key[PROJECTS_KEY_MAX], id[37];
    char big[600];

    /* a cursor of another list or order */
    assert_true(projects_cursor_encode("tasks.created_at.asc", "1", ID, cur, sizeof cur));
    assert_false(projects_cursor_decode(cur, "tasks.created_at.desc", PROJECTS_KEY_US,
                                        key, id));
    assert_false(projects_cursor_decode(cur, "tasks.created_at", PROJECTS_KEY_US, key, id));
    assert_false(projects_cursor_decode(cur, "projects", PROJECTS_KEY_US, key, id));
    /* not base64url, padded, impossible length, trailing bits set */
    assert_false(projects_cursor_decode("abc$", "projects", PROJECTS_KEY_US, key, id));
    assert_false(projects_cursor_decode("YWJj==", "projects", PROJECTS_KEY_US, key, id));
    assert_false(projects_cursor_decode("YWJjZ", "projects", PROJECTS_KEY_US, key, id));
    assert_false(projects_cursor_decode("YR", "projects", PROJECTS_KEY_US, key, id));
    assert_false(projects_cursor_decode("", "projects", PROJECTS_KEY_US, key, id));
    /* well encoded, badly formed: what would reach SQL is refused here */
    static const char *const bad[] = {
        "projects|12x|" ID, "projects|1'; DROP TABLE x;--|" ID,
        "projects||" ID, "projects|-|" ID, "projects|1234567890123456789|" ID,
        "projects|1|not-a-uuid", "projects|1|" ID "|", "projects|1",
        "projects|2024-01-01|" ID, "projects 1|" ID,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (projects_cursor_decode(forge(bad[i], cur, sizeof cur), "projects",
                                   PROJECTS_KEY_US, key, id))
            fail_msg("cursor \"%s\" was accepted", bad[i]);
    assert_true(projects_cursor_decode(forge("projects|-42|" ID, cur, sizeof cur),
                                       "projects", PROJECTS_KEY_US, key, id));
    static const char *const bad_dates[] = {
        "d|2023-02-29|" ID, "d|Infinity|" ID, "d|-infinity|" ID, "d|1|" ID,
        "d|2024-01-01 BC|" ID,
    };
    for (size_t i = 0; i < sizeof bad_dates / sizeof bad_dates[0]; i++)
        if (projects_cursor_decode(forge(bad_dates[i], cur, sizeof cur), "d",
                                   PROJECTS_KEY_DATE, key, id))
            fail_msg("cursor \"%s\" was accepted", bad_dates[i]);
    /* a NUL inside the decoded text: "projects\0|1|<id>" */
    assert_false(projects_cursor_decode(
        "cHJvamVjdHMAfDF8MGY4ZmFkNWItZDljYi00NjlmLWExNjUtNzA4Njc3Mjg5NTBl",
        "projects", PROJECTS_KEY_US, key, id));
    /* longer than any cursor we make */
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(projects_cursor_decode(big, "projects", PROJECTS_KEY_US, key, id));
}

/* ---- If-Match ------------------------------------------------------------ */

static void assert_if_match(const char *header, const char *expect)
{
    char out[PROJECTS_IF_MATCH_MAX * 11 + 3];

    if (!expect) {
        if (projects_if_match_parse(header, out, sizeof out))
            fail_msg("If-Match \"%s\" gave \"%s\", expected no check", header, out);
        return;
    }
    if (!projects_if_match_parse(header, out, sizeof out))
        fail_msg("If-Match \"%s\" gave no check, expected \"%s\"", header, expect);
    assert_string_equal(out, expect);
}

static void test_if_match(void **state)
{
    char many[512] = "";

    assert_if_match("\"3\"", "{3}");
    assert_if_match("  \"3\"  ", "{3}");
    assert_if_match("\"1\", \"22\",\"333\"", "{1,22,333}");
    assert_if_match("*", NULL);
    assert_if_match(" * ", NULL);
    assert_if_match("W/\"3\"", "{}");              /* weak never matches strongly */
    assert_if_match("W/\"3\", \"4\"", "{4}");
    assert_if_match("3", "{}");                    /* not quoted */
    assert_if_match("\"abc\"", "{}");
    assert_if_match("\"\"", "{}");
    assert_if_match("\"-1\"", "{}");
    assert_if_match("\"1234567890\"", "{}");       /* more than an integer column holds */
    assert_if_match("\"123456789\"", "{123456789}");
    assert_if_match("\"1\"; DROP", "{}");
    assert_if_match("\"1}\",\"{2\"", "{}");
    assert_if_match("*, \"1\"", "{1}");            /* a list with * is not "*" */
    assert_if_match("", "{}");
    for (int i = 0; i < 40; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%s\"%d\"",
                 i ? "," : "", i);
    char out[PROJECTS_IF_MATCH_MAX * 11 + 3];
    assert_true(projects_if_match_parse(many, out, sizeof out));
    assert_string_equal(out, "{0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_like_pattern),
        cmocka_unit_test(test_one_of),
        cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_cursor_refusals),
        cmocka_unit_test(test_if_match),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
