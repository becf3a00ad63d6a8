/*
 * test_projects_unit.c - the pure helpers of common.c, without a core:
 * calendar dates and date keys, ILIKE escaping and If-Match parsing (UUIDs,
 * UTF-8 and cursors are the core's, tested in tests/unit). These decide what reaches SQL, so each is tested with
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
    /* a due-date cursor key: a date, or "infinity" for no date */
    assert_true(projects_date_key_valid("2024-02-29"));
    assert_true(projects_date_key_valid("infinity"));
    assert_false(projects_date_key_valid("Infinity"));
    assert_false(projects_date_key_valid("-infinity"));
    assert_false(projects_date_key_valid("2024-02-30"));
    assert_false(projects_date_key_valid(""));
    assert_false(projects_date_key_valid(NULL));
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
        cmocka_unit_test(test_date),
        cmocka_unit_test(test_like_pattern),
        cmocka_unit_test(test_one_of),
        cmocka_unit_test(test_if_match),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
