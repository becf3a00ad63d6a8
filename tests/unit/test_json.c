/*
 * test_json.c - core_json_parse: the bounds and refusals that keep a bad
 * request body a 400 (or 413) instead of a crash
 */
#include "config.h"
#include "http.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static plx_status_t parse(const char *s, size_t len, int depth, json_t **out,
                          char err[160])
{
    return core_json_parse(s, len, depth, 20000, out, err);
}

static plx_status_t parse_str(const char *s, int depth, char err[160])
{
    json_t *j = NULL;
    plx_status_t st = parse(s, strlen(s), depth, &j, err);

    if (st == PLX_OK)
        assert_non_null(j);
    else
        assert_null(j);
    json_decref(j);
    return st;
}

/* "[[[...]]]" or "{"a":{"a":...}}" nested n deep; caller frees */
static char *nested(int n, bool objects)
{
    size_t cap = (size_t)n * 6 + 8, o = 0;
    char *s = malloc(cap);

    assert_non_null(s);
    for (int i = 0; i < n; i++)
        o += (size_t)sprintf(s + o, "%s", objects ? "{\"a\":" : "[");
    o += (size_t)sprintf(s + o, "1");
    for (int i = 0; i < n; i++)
        s[o++] = objects ? '}' : ']';
    s[o] = '\0';
    return s;
}

static void test_valid_documents(void **state)
{
    char err[160];
    json_t *j = NULL;
    const char *doc = "{\"name\": \"caf\xc3\xa9\", \"n\": [1, 2.5, true, null]}";

    (void)state;
    assert_int_equal(parse(doc, strlen(doc), 32, &j, err), PLX_OK);
    assert_true(json_is_object(j));
    assert_string_equal(json_string_value(json_object_get(j, "name")), "caf\xc3\xa9");
    assert_int_equal(json_array_size(json_object_get(j, "n")), 4);
    json_decref(j);
    assert_int_equal(parse_str("[]", 32, err), PLX_OK);
    assert_int_equal(parse_str("  {}\r\n\t ", 32, err), PLX_OK);
    /* escaped non-ASCII and surrogate pairs are fine */
    assert_int_equal(parse_str("{\"a\":\"\\u00e9\\ud83d\\ude00\"}", 32, err), PLX_OK);
}

static void test_depth_bound(void **state)
{
    char err[160];
    char *s;

    (void)state;
    s = nested(32, false);
    assert_int_equal(parse_str(s, 32, err), PLX_OK);
    free(s);
    s = nested(33, false);
    assert_int_equal(parse_str(s, 32, err), PLX_ERR_INVALID);
    assert_non_null(strstr(err, "deeper than 32"));
    assert_non_null(strstr(err, "line 1, column 33"));
    free(s);
    s = nested(5, true);
    assert_int_equal(parse_str(s, 4, err), PLX_ERR_INVALID);
    free(s);
    /* far past jansson's own limit: refused by the scan, no deep recursion */
    s = nested(100000, false);
    assert_int_equal(parse_str(s, 32, err), PLX_ERR_INVALID);
    free(s);
    /* brackets inside strings do not count, escaped quotes do not end them */
    assert_int_equal(parse_str("{\"a\":\"[[[[{{{{\\\"[[[[\"}", 2, err), PLX_OK);
    assert_int_equal(parse_str("[[1],[2],[3],[4]]", 2, err), PLX_OK);
    assert_int_equal(parse_str("[[[1]]]", 2, err), PLX_ERR_INVALID);
}

static void test_depth_position_on_later_line(void **state)
{
    char err[160];

    (void)state;
    assert_int_equal(parse_str("{\n  \"a\": [\n    [1]\n  ]\n}", 2, err), PLX_ERR_INVALID);
    assert_non_null(strstr(err, "line 3, column 5"));
}

static void test_size(void **state)
{
    char err[160];
    json_t *j = NULL;
    size_t n = 200000, o = 0;
    char *s = malloc(n * 2 + 2);
    char *huge;

    (void)state;
    /* a large flat document is fine within its element bound */
    assert_non_null(s);
    s[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        s[o++] = '0';
        s[o++] = i + 1 < n ? ',' : ']';
    }
    assert_int_equal(core_json_parse(s, o, 32, (long)n + 1, &j, err), PLX_OK);
    assert_int_equal(json_array_size(j), n);
    json_decref(j);
    assert_int_equal(core_json_parse(s, o, 32, (long)n, &j, err), PLX_ERR_TOO_LARGE);
    json_decref(j);
    /* the length is what counts, not a terminator: a valid prefix parses */
    assert_int_equal(parse("{}garbage", 2, 32, &j, err), PLX_OK);
    json_decref(j);
    free(s);
    /* the hard ceiling is checked before a byte is read */
    huge = calloc(1, (size_t)64 * 1024 * 1024 + 1);
    assert_non_null(huge);
    assert_int_equal(parse(huge, (size_t)64 * 1024 * 1024 + 1, 32, &j, err),
                     PLX_ERR_TOO_LARGE);
    assert_null(j);
    assert_non_null(strstr(err, "expected at most"));
    free(huge);
}

static void test_empty(void **state)
{
    char err[160];
    json_t *j = (json_t *)1;

    (void)state;
    assert_int_equal(parse("", 0, 32, &j, err), PLX_ERR_INVALID);
    assert_null(j);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(parse(NULL, 0, 32, &j, err), PLX_ERR_INVALID);
    assert_int_equal(parse_str("   ", 32, err), PLX_ERR_INVALID);
}

static void test_invalid_utf8(void **state)
{
    char err[160];
    static const char *const bad[] = {
        "{\"a\":\"\xff\"}",                 /* never valid */
        "{\"a\":\"\xc3\"}",                 /* truncated sequence */
        "{\"a\":\"\xc0\xaf\"}",             /* overlong '/' */
        "{\"a\":\"\xed\xa0\x80\"}",         /* a surrogate */
        "{\"a\":\"\xf4\x90\x80\x80\"}",     /* past U+10FFFF */
        "{\"\xfe\":1}",                     /* in a key */
        "[1]\xff",                          /* after the value */
    };

    (void)state;
    for (size_t i = 0; i < CORE_ARRAY_LEN(bad); i++) {
        assert_int_equal(parse_str(bad[i], 32, err), PLX_ERR_INVALID);
        assert_non_null(strstr(err, "line 1"));
        /* the detail goes to clients and logs: printable ASCII only */
        for (const char *p = err; *p; p++)
            assert_true(*p >= 0x20 && *p <= 0x7e);
    }
}

static void test_trailing_garbage(void **state)
{
    char err[160];

    (void)state;
    assert_int_equal(parse_str("{\"a\":1} x", 32, err), PLX_ERR_INVALID);
    assert_non_null(strstr(err, "line 1, column 9"));
    assert_int_equal(parse_str("{}{}", 32, err), PLX_ERR_INVALID);
    assert_int_equal(parse_str("[1]]", 32, err), PLX_ERR_INVALID);
    assert_int_equal(parse_str("{\"a\":1,}", 32, err), PLX_ERR_INVALID);
    assert_int_equal(parse_str("{\"a\":1", 32, err), PLX_ERR_INVALID);
}

static void test_nul_bytes(void **state)
{
    char err[160];
    json_t *j = NULL;

    (void)state;
    assert_int_equal(parse("{\"a\":\"x\0y\"}", 11, 32, &j, err), PLX_ERR_INVALID);
    assert_null(j);
    assert_int_equal(parse("{\"a\":1}\0", 8, 32, &j, err), PLX_ERR_INVALID);
    assert_int_equal(parse("\0{}", 3, 32, &j, err), PLX_ERR_INVALID);
    /* escaped NUL: refused, and the message names no jansson flag */
    assert_int_equal(parse_str("{\"a\":\"\\u0000\"}", 32, err), PLX_ERR_INVALID);
    assert_null(strstr(err, "JSON_ALLOW_NUL"));
    assert_non_null(strstr(err, "\\u0000"));
}

static void test_top_level_must_be_container(void **state)
{
    char err[160];

    (void)state;
    assert_int_equal(parse_str("\"text\"", 32, err), PLX_ERR_INVALID);
    assert_string_equal(err, "expected a JSON object or array, found a string");
    assert_int_equal(parse_str("42", 32, err), PLX_ERR_INVALID);
    assert_string_equal(err, "expected a JSON object or array, found a number");
    assert_int_equal(parse_str("true", 32, err), PLX_ERR_INVALID);
    assert_string_equal(err, "expected a JSON object or array, found a boolean");
    assert_int_equal(parse_str("null", 32, err), PLX_ERR_INVALID);
    assert_string_equal(err, "expected a JSON object or array, found null");
}

static void test_duplicate_keys(void **state)
{
    char err[160];

    (void)state;
    assert_int_equal(parse_str("{\"role\":\"user\",\"role\":\"admin\"}", 32, err),
                     PLX_ERR_INVALID);
    assert_non_null(strstr(err, "duplicate"));
}

static void test_syntax_error_position(void **state)
{
    char err[160];

    (void)state;
    assert_int_equal(parse_str("{\n\"a\":\n}", 32, err), PLX_ERR_INVALID);
    assert_non_null(strstr(err, "invalid JSON at line 3, column 1"));
}

/* "[{},{},...]" of n objects; caller frees */
static char *many_objects(size_t n)
{
    char *s = malloc(n * 3 + 2);
    size_t o = 0;

    assert_non_null(s);
    s[o++] = '[';
    for (size_t i = 0; i < n; i++) {
        memcpy(s + o, i ? ",{}" : "{}", i ? 3 : 2);
        o += i ? 3 : 2;
    }
    s[o++] = ']';
    s[o] = '\0';
    return s;
}

static void test_element_bound(void **state)
{
    char err[160];
    json_t *j = NULL;
    /* 3 elements by the count: the document, '{' and ':' */
    const char *obj = "{\"a\": 1}";
    /* commas, colons and brackets inside strings are text, not elements */
    const char *str = "[\"[{,:}],,,::\\\"{{\"]";
    char *big = many_objects(350000);   /* about 1 MiB */

    (void)state;
    assert_int_equal(core_json_parse(obj, strlen(obj), 32, 3, &j, err), PLX_OK);
    json_decref(j);
    assert_int_equal(core_json_parse(obj, strlen(obj), 32, 2, &j, err),
                     PLX_ERR_TOO_LARGE);
    assert_null(j);
    assert_non_null(strstr(err, "at most 2 JSON elements"));
    assert_int_equal(core_json_parse(str, strlen(str), 32, 2, &j, err), PLX_OK);
    assert_int_equal(json_array_size(j), 1);
    json_decref(j);

    /* the pre-scan refuses it before jansson allocates anything */
    assert_int_equal(core_json_parse(big, strlen(big), 32, 20000, &j, err),
                     PLX_ERR_TOO_LARGE);
    assert_null(j);
    assert_non_null(strstr(err, "line 1, column"));
    free(big);
    big = many_objects(6000);           /* under the bound: parsed */
    assert_int_equal(core_json_parse(big, strlen(big), 32, 20000, &j, err), PLX_OK);
    assert_int_equal(json_array_size(j), 6000);
    json_decref(j);
    free(big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_documents),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_depth_position_on_later_line),
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_trailing_garbage),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_top_level_must_be_container),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_element_bound),
        cmocka_unit_test(test_syntax_error_position),
    };
    return cmocka_run_group_tests_name("json", tests, NULL, NULL);
}
