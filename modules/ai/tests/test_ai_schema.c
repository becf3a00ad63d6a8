/*
 * test_ai_schema.c - the JSON Schema wrapper (schema.cc) on its own:
 * valid and invalid instances, a trip checklist as a template would
 * declare it, errors deep inside nested values and how they read, schemas
 * refused with a reason (including those that would crash valijson:
 * $ref cycles), the bounds (error count, depth, regex input), draft 4,
 * several threads sharing one compiled schema, and no C++ exception ever
 * reaching the caller.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "schema.h"

/* ---- helpers ---------------------------------------------------------------- */

static json_t *J(const char *text)
{
    json_error_t err;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &err);

    if (!v)
        fail_msg("bad test JSON: %s: %s", text, err.text);
    return v;
}

static ai_schema_t *compile_ok(const char *text)
{
    char why[512];
    json_t *s = J(text);
    ai_schema_t *c = ai_schema_compile(s, why, sizeof why);

    json_decref(s);
    if (!c)
        fail_msg("schema refused: %s (%s)", why, text);
    return c;
}

/* the schema is refused and why contains needle */
static void refused(const char *text, const char *needle)
{
    char why[512] = "unset";
    json_t *s = J(text);
    ai_schema_t *c = ai_schema_compile(s, why, sizeof why);

    json_decref(s);
    if (c) {
        ai_schema_free(c);
        fail_msg("schema accepted, expected a refusal with \"%s\": %s", needle, text);
    }
    if (!strstr(why, needle))
        fail_msg("refusal of %s says \"%s\", expected \"%s\" in it", text, why, needle);
}

/* validate; the verdict, errors into *errors (caller frees) */
static ai_schema_verdict_t check(const ai_schema_t *c, const char *instance,
                                 json_t **errors)
{
    json_t *v = J(instance);
    ai_schema_verdict_t verdict = ai_schema_validate(c, v, errors);

    json_decref(v);
    assert_non_null(*errors);
    assert_true(json_is_array(*errors));
    return verdict;
}

static void valid(const ai_schema_t *c, const char *instance)
{
    json_t *errors;
    ai_schema_verdict_t v = check(c, instance, &errors);

    if (v != AI_SCHEMA_VALID) {
        char *e = json_dumps(errors, 0);
        fail_msg("expected %s to be valid, got %d: %s", instance, v, e);
    }
    assert_int_equal(json_array_size(errors), 0);
    json_decref(errors);
}

static bool has_error(json_t *errors, const char *line)
{
    size_t i;
    json_t *e;

    json_array_foreach(errors, i, e)
        if (strcmp(json_string_value(e), line) == 0)
            return true;
    return false;
}

static bool has_error_part(json_t *errors, const char *part)
{
    size_t i;
    json_t *e;

    json_array_foreach(errors, i, e)
        if (strstr(json_string_value(e), part))
            return true;
    return false;
}

/* invalid, with exactly these error lines (NULL-terminated), in any order */
static void invalid(const ai_schema_t *c, const char *instance, ...)
{
    json_t *errors;
    ai_schema_verdict_t v = check(c, instance, &errors);
    char *dump = json_dumps(errors, 0);
    const char *line;
    size_t n = 0;
    va_list ap;

    if (v != AI_SCHEMA_INVALID)
        fail_msg("expected %s to be invalid, got %d: %s", instance, v, dump);
    va_start(ap, instance);
    while ((line = va_arg(ap, const char *)) != NULL) {
        n++;
        if (!has_error(errors, line)) {
            va_end(ap);
            fail_msg("%s: expected error \"%s\" among %s", instance, line, dump);
        }
    }
    va_end(ap);
    if (json_array_size(errors) != n)
        fail_msg("%s: expected %zu errors, got %s", instance, n, dump);
    free(dump);
    json_decref(errors);
}

/* ---- simple values ----------------------------------------------------------- */

static void test_simple(void **state)
{
    ai_schema_t *c = compile_ok(
        "{\"type\":\"object\",\"required\":[\"name\",\"age\"],"
        "\"properties\":{\"name\":{\"type\":\"string\",\"minLength\":1},"
        "\"age\":{\"type\":\"integer\",\"minimum\":0},"
        "\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"},\"maxItems\":2},"
        "\"score\":{\"type\":\"number\",\"minimum\":-1,\"maximum\":0.5}}}");

    (void)state;
    valid(c, "{\"name\":\"Ada\",\"age\":36}");
    valid(c, "{\"name\":\"Ada\",\"age\":36,\"tags\":[\"a\",\"b\"],\"extra\":true}");
    invalid(c, "{\"name\":\"Ada\"}", "/: missing required property \"age\"", NULL);
    invalid(c, "{\"name\":\"Ada\",\"age\":\"36\"}",
            "/age: expected integer, found string", NULL);
    invalid(c, "{\"name\":\"Ada\",\"age\":3.5}", "/age: expected integer, found number", NULL);
    invalid(c, "[]", "/: expected object, found array", NULL);
    invalid(c, "\"text\"", "/: expected object, found string", NULL);
    invalid(c, "{\"name\":\"\",\"age\":-1}",
            "/name: string should be no fewer than 1 characters in length",
            "/age: expected number greater than or equal to 0", NULL);
    invalid(c, "{\"name\":\"x\",\"age\":1,\"tags\":[\"a\",\"b\",\"c\"]}",
            "/tags: array should contain no more than 2 elements", NULL);
    /* valijson's "0.500000" reads as 0.5 */
    invalid(c, "{\"name\":\"x\",\"age\":1,\"score\":0.75}",
            "/score: expected number less than or equal to 0.5", NULL);
    valid(c, "{\"name\":\"x\",\"age\":1,\"score\":-1}");
    ai_schema_free(c);
}

/* ---- a trip checklist, as a template would declare it ------------------------- */

static const char checklist_schema[] =
    "{\"$schema\":\"http://json-schema.org/draft-07/schema#\","
    " \"title\":\"trip checklist\",\"type\":\"object\","
    " \"required\":[\"destination\",\"days\",\"items\"],"
    " \"additionalProperties\":false,"
    " \"properties\":{"
    "  \"destination\":{\"type\":\"string\",\"minLength\":1},"
    "  \"days\":{\"type\":\"integer\",\"minimum\":1,\"maximum\":60},"
    "  \"items\":{\"type\":\"array\",\"minItems\":1,"
    "   \"items\":{\"$ref\":\"#/definitions/item\"}}},"
    " \"definitions\":{\"item\":{\"type\":\"object\",\"required\":[\"text\",\"done\"],"
    "  \"additionalProperties\":false,"
    "  \"properties\":{\"text\":{\"type\":\"string\"},\"done\":{\"type\":\"boolean\"},"
    "   \"category\":{\"enum\":[\"clothes\",\"papers\",\"health\",\"gear\"]},"
    "   \"note\":{\"type\":[\"string\",\"null\"]}}}}}";

static void test_checklist(void **state)
{
    ai_schema_t *c = compile_ok(checklist_schema);

    (void)state;
    valid(c, "{\"destination\":\"Lisbon\",\"days\":4,\"items\":["
             "{\"text\":\"passport\",\"done\":false,\"category\":\"papers\"},"
             "{\"text\":\"sun cream\",\"done\":true,\"note\":null}]}");
    invalid(c, "{\"destination\":\"Lisbon\",\"days\":4,\"items\":["
               "{\"text\":\"passport\",\"done\":\"no\"}]}",
            "/items/0/done: expected boolean, found string", NULL);
    invalid(c, "{\"destination\":\"Lisbon\",\"days\":4,\"items\":["
               "{\"text\":\"passport\",\"done\":true},{\"done\":false,\"note\":5}]}",
            "/items/1: missing required property \"text\"",
            "/items/1/note: expected string or null, found integer", NULL);
    invalid(c, "{\"destination\":\"Lisbon\",\"days\":4,\"items\":["
               "{\"text\":\"hat\",\"done\":true,\"category\":\"food\"}]}",
            "/items/0/category: expected one of [\"clothes\",\"papers\",\"health\",\"gear\"]",
            NULL);
    invalid(c, "{\"destination\":\"Lisbon\",\"days\":4,\"items\":[],\"weather\":\"sunny\"}",
            "/items: array should contain no fewer than 1 elements",
            "/: unexpected property \"weather\"", NULL);
    invalid(c, "{\"days\":0,\"items\":[{\"text\":\"x\",\"done\":true}]}",
            "/: missing required property \"destination\"",
            "/days: expected number greater than or equal to 1", NULL);
    ai_schema_free(c);
}

/* ---- nesting: pointers, escaping, summaries dropped ------------------------------- */

static void test_nested(void **state)
{
    ai_schema_t *c = compile_ok(
        "{\"type\":\"object\",\"properties\":{\"plan\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"object\",\"properties\":{\"activities\":{\"type\":\"array\",\"items\":"
        "{\"type\":\"object\",\"properties\":{\"time\":{\"type\":\"string\"},"
        "\"a/b~c\":{\"type\":\"number\"}}}}}}}}}");
    json_t *errors;

    (void)state;
    valid(c, "{\"plan\":[{\"activities\":[{\"time\":\"09:00\"}]}]}");
    invalid(c, "{\"plan\":[{\"activities\":[{\"time\":\"09:00\"}]},"
               "{\"activities\":[{\"time\":\"10:00\"},{\"time\":11}]}]}",
            "/plan/1/activities/1/time: expected string, found integer", NULL);
    /* RFC 6901 escaping of '/' and '~' in keys */
    invalid(c, "{\"plan\":[{\"activities\":[{\"a/b~c\":\"x\"}]}]}",
            "/plan/0/activities/0/a~1b~0c: expected number, found string", NULL);
    /* a summary error with nothing more precise below it is kept */
    ai_schema_free(c);
    c = compile_ok("{\"anyOf\":[{\"type\":\"string\"},{\"type\":\"integer\"}]}");
    valid(c, "\"s\"");
    valid(c, "3");
    assert_int_equal(check(c, "1.5", &errors), AI_SCHEMA_INVALID);
    assert_true(has_error_part(errors, "anyOf"));
    json_decref(errors);
    ai_schema_free(c);
    /* recursive schemas are fine when each step goes one level down */
    c = compile_ok("{\"type\":\"object\",\"properties\":{\"child\":{\"$ref\":\"#\"},"
                   "\"n\":{\"type\":\"integer\"}}}");
    valid(c, "{\"child\":{\"child\":{\"n\":1}}}");
    invalid(c, "{\"child\":{\"child\":{\"n\":\"one\"}}}",
            "/child/child/n: expected integer, found string", NULL);
    ai_schema_free(c);
}

/* ---- bounds --------------------------------------------------------------------- */

static void test_bounds(void **state)
{
    ai_schema_t *c = compile_ok("{\"type\":\"array\",\"items\":{\"type\":\"boolean\"}}");
    char buf[4096], *p = buf;
    json_t *errors;

    (void)state;
    /* 50 wrong items: AI_SCHEMA_ERRORS_MAX lines and one that counts the rest */
    p += sprintf(p, "[");
    for (int i = 0; i < 50; i++)
        p += sprintf(p, "%s%d", i ? "," : "", i);
    sprintf(p, "]");
    assert_int_equal(check(c, buf, &errors), AI_SCHEMA_INVALID);
    assert_int_equal(json_array_size(errors), AI_SCHEMA_ERRORS_MAX + 1);
    assert_string_equal(json_string_value(json_array_get(errors, 0)),
                        "/0: expected boolean, found integer");
    assert_string_equal(json_string_value(json_array_get(errors, AI_SCHEMA_ERRORS_MAX)),
                        "... and 30 more errors");
    json_decref(errors);
    ai_schema_free(c);

    /* an instance nested deeper than AI_SCHEMA_INSTANCE_DEPTH */
    c = compile_ok("{}");
    p = buf;
    for (int i = 0; i < 100; i++)
        *p++ = '[';
    for (int i = 0; i < 100; i++)
        *p++ = ']';
    *p = '\0';
    assert_int_equal(check(c, buf, &errors), AI_SCHEMA_INVALID);
    assert_true(has_error_part(errors, "nested deeper than"));
    json_decref(errors);
    valid(c, "[[[[1]]]]");
    ai_schema_free(c);
}

/* a string for the regex tests: n times 'a', in quotes */
static char *long_string(size_t n)
{
    char *s = malloc(n + 3);

    assert_non_null(s);
    s[0] = '"';
    memset(s + 1, 'a', n);
    s[n + 1] = '"';
    s[n + 2] = '\0';
    return s;
}

static void test_regex(void **state)
{
    ai_schema_t *c = compile_ok("{\"type\":\"object\",\"properties\":{"
                                "\"code\":{\"type\":\"string\",\"pattern\":\"^[a-z]+$\"},"
                                "\"day\":{\"type\":\"string\",\"format\":\"date\"}}}");
    char *s = long_string(AI_SCHEMA_REGEX_INPUT_MAX), *inst;
    json_t *errors;
    size_t len;

    (void)state;
    valid(c, "{\"code\":\"abc\",\"day\":\"2024-02-29\"}");
    invalid(c, "{\"code\":\"ABC\"}",
            "/code: failed to match regex specified by 'pattern' constraint", NULL);
    invalid(c, "{\"day\":\"2024-13-01\"}", "/day: string should be a valid date", NULL);
    /* at the bound: matched (on the validation thread's large stack) */
    len = strlen(s) + 16;
    inst = malloc(len);
    snprintf(inst, len, "{\"code\":%s}", s);
    valid(c, inst);
    free(inst);
    free(s);
    /* past it: refused without matching, wherever it is */
    s = long_string(AI_SCHEMA_REGEX_INPUT_MAX + 1);
    len = strlen(s) + 32;
    inst = malloc(len);
    snprintf(inst, len, "{\"other\":[%s]}", s);
    assert_int_equal(check(c, inst, &errors), AI_SCHEMA_INVALID);
    assert_true(has_error_part(errors, "/other/0: a string longer than"));
    json_decref(errors);
    free(inst);
    ai_schema_free(c);
    /* without a regex in the schema, long strings are fine */
    c = compile_ok("{\"type\":\"string\",\"maxLength\":100000}");
    valid(c, s);
    free(s);
    ai_schema_free(c);
}

/* ---- refused schemas -------------------------------------------------------------- */

static void test_refused(void **state)
{
    char why[256];
    char *big;
    json_t *v;

    (void)state;
    refused("[]", "must be a JSON object");
    refused("true", "must be a JSON object");
    refused("{\"type\":\"foo\"}", "Unrecognised JSON type name 'foo'");
    refused("{\"type\":5}", "invalid JSON Schema");
    refused("{\"properties\":{\"a\":{\"minLength\":-1}}}", "minLength");
    refused("{\"required\":\"x\"}", "invalid JSON Schema");
    refused("{\"$ref\":\"http://example.com/schema.json\"}", "leaves the document");
    refused("{\"properties\":{\"a\":{\"$ref\":\"#/definitions/none\"}}}",
            "invalid JSON Schema at /properties/a: $ref \"#/definitions/none\" names nothing");
    refused("{\"$ref\":\"#\"}", "a cycle");
    refused("{\"allOf\":[{\"$ref\":\"#\"}]}", "a cycle");
    refused("{\"definitions\":{\"a\":{\"$ref\":\"#/definitions/b\"},"
            "\"b\":{\"not\":{\"$ref\":\"#/definitions/a\"}}},"
            "\"properties\":{\"x\":{\"$ref\":\"#/definitions/a\"}}}", "a cycle");
    refused("{\"properties\":{\"a\":{\"type\":\"string\",\"pattern\":\"([a-z\"}}}",
            "invalid JSON Schema at /properties/a/pattern: bad regular expression");
    refused("{\"patternProperties\":{\"(\":{}}}", "bad regular expression");
    refused("{\"$schema\":\"https://json-schema.org/draft/2020-12/schema\"}",
            "unsupported $schema");
    refused("{\"properties\":{\"a\":{\"$id\":\"http://x/y\"}}}", "allowed at the top only");
    refused("{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
            "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":"
            "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}"
            "}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}}", "nested deeper than");
    /* larger than AI_SCHEMA_BYTES_MAX */
    big = malloc(AI_SCHEMA_BYTES_MAX + 64);
    assert_non_null(big);
    snprintf(big, AI_SCHEMA_BYTES_MAX + 64, "%s", "{\"description\":\"");
    memset(big + strlen(big), 'x', AI_SCHEMA_BYTES_MAX);
    strcpy(big + 16 + AI_SCHEMA_BYTES_MAX, "\"}");
    v = J(big);
    assert_null(ai_schema_compile(v, why, sizeof why));
    assert_non_null(strstr(why, "larger than"));
    json_decref(v);
    free(big);
    /* NULL and a NULL why are fine */
    assert_null(ai_schema_compile(NULL, why, sizeof why));
    v = J("{\"type\":\"foo\"}");
    assert_null(ai_schema_compile(v, NULL, 0));
    json_decref(v);
}

/* ---- drafts ------------------------------------------------------------------------ */

static void test_draft4(void **state)
{
    /* draft 4: exclusiveMaximum is a boolean beside maximum */
    ai_schema_t *c = compile_ok("{\"$schema\":\"http://json-schema.org/draft-04/schema#\","
                                "\"type\":\"number\",\"maximum\":10,"
                                "\"exclusiveMaximum\":true}");
    json_t *errors;

    (void)state;
    valid(c, "9.5");
    assert_int_equal(check(c, "10", &errors), AI_SCHEMA_INVALID);
    json_decref(errors);
    ai_schema_free(c);
    /* draft 7: if/then/else */
    c = compile_ok("{\"type\":\"object\","
                   "\"if\":{\"properties\":{\"kind\":{\"const\":\"car\"}}},"
                   "\"then\":{\"required\":[\"wheels\"]}}");
    valid(c, "{\"kind\":\"boat\"}");
    valid(c, "{\"kind\":\"car\",\"wheels\":4}");
    assert_int_equal(check(c, "{\"kind\":\"car\"}", &errors), AI_SCHEMA_INVALID);
    assert_true(has_error(errors, "/: missing required property \"wheels\""));
    json_decref(errors);
    ai_schema_free(c);
}

/* ---- misuse and threads ---------------------------------------------------------------- */

static void test_misuse(void **state)
{
    ai_schema_t *c = compile_ok("{\"type\":\"string\"}");
    json_t *errors, *v = json_string("x");

    (void)state;
    assert_int_equal(ai_schema_validate(NULL, v, &errors), AI_SCHEMA_FAILED);
    assert_true(json_array_size(errors) == 1);
    json_decref(errors);
    assert_int_equal(ai_schema_validate(c, NULL, &errors), AI_SCHEMA_FAILED);
    json_decref(errors);
    /* errors may be NULL */
    assert_int_equal(ai_schema_validate(c, v, NULL), AI_SCHEMA_VALID);
    json_decref(v);
    v = json_integer(1);
    assert_int_equal(ai_schema_validate(c, v, NULL), AI_SCHEMA_INVALID);
    json_decref(v);
    ai_schema_free(c);
    ai_schema_free(NULL);
}

typedef struct worker {
    const ai_schema_t *c;
    int seed;
    int wrong;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    char inst[128];
    json_t *v, *errors;

    for (int i = 0; i < 200; i++) {
        bool good = (i + w->seed) % 2 == 0;
        snprintf(inst, sizeof inst,
                 "{\"destination\":\"X\",\"days\":3,\"items\":[{\"text\":\"t\",\"done\":%s}]}",
                 good ? "true" : "\"maybe\"");
        v = json_loads(inst, 0, NULL);
        ai_schema_verdict_t verdict = ai_schema_validate(w->c, v, &errors);
        if (verdict != (good ? AI_SCHEMA_VALID : AI_SCHEMA_INVALID)
            || (!good && !has_error(errors, "/items/0/done: expected boolean, found string")))
            w->wrong++;
        json_decref(errors);
        json_decref(v);
    }
    return NULL;
}

static void test_threads(void **state)
{
    ai_schema_t *c = compile_ok(checklist_schema);
    pthread_t t[4];
    worker_t w[4];

    (void)state;
    for (int i = 0; i < 4; i++) {
        w[i] = (worker_t){ c, i, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].wrong, 0);
    }
    ai_schema_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_checklist),
        cmocka_unit_test(test_nested),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_regex),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_draft4),
        cmocka_unit_test(test_misuse),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
