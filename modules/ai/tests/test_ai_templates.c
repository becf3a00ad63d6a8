/*
 * test_ai_templates.c - the pure helpers of templates.c, without a core:
 * variable names, placeholders checked against the declared variables,
 * rendering (strings, numbers, spaces inside the braces, bounds), and the
 * text and model-name checks the routes use.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ai.h"
#include "tasks.h"

/* templates.c calls the core only from its handlers, which no test here
 * reaches */
const plx_api_t *plx_api;

static void test_var_names(void **state)
{
    char long_name[AI_TPL_VAR_NAME_MAX + 2];

    (void)state;
    assert_true(ai_tpl_var_name_valid("city"));
    assert_true(ai_tpl_var_name_valid("_x1"));
    assert_true(ai_tpl_var_name_valid("Days_2"));
    assert_false(ai_tpl_var_name_valid(""));
    assert_false(ai_tpl_var_name_valid("1st"));
    assert_false(ai_tpl_var_name_valid("a-b"));
    assert_false(ai_tpl_var_name_valid("a b"));
    assert_false(ai_tpl_var_name_valid("é"));
    assert_false(ai_tpl_var_name_valid(NULL));
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[AI_TPL_VAR_NAME_MAX] = '\0';
    assert_true(ai_tpl_var_name_valid(long_name));
    long_name[AI_TPL_VAR_NAME_MAX] = 'a';
    long_name[AI_TPL_VAR_NAME_MAX + 1] = '\0';
    assert_false(ai_tpl_var_name_valid(long_name));
}

static void test_check(void **state)
{
    json_t *vars = json_pack("[s, s]", "destination", "days");
    char why[256];

    (void)state;
    assert_true(ai_tpl_check("", vars, why, sizeof why));
    assert_true(ai_tpl_check("no placeholders { at } all", vars, why, sizeof why));
    assert_true(ai_tpl_check("A trip to {{destination}} for {{ days }} days, "
                             "{{days}} again", vars, why, sizeof why));
    assert_true(ai_tpl_check("JSON is fine: {\"a\": {\"b\": 1}}", vars, why, sizeof why));
    assert_false(ai_tpl_check("to {{city}}", vars, why, sizeof why));
    assert_string_equal(why, "{{city}} is not a declared variable");
    assert_false(ai_tpl_check("to {{destination}", vars, why, sizeof why));
    assert_non_null(strstr(why, "malformed placeholder at \"{{destination}\""));
    assert_false(ai_tpl_check("{{ 1x }}", vars, why, sizeof why));
    assert_non_null(strstr(why, "malformed placeholder"));
    assert_false(ai_tpl_check("{{}}", vars, why, sizeof why));
    assert_false(ai_tpl_check("{{{destination}}}", vars, why, sizeof why));
    assert_false(ai_tpl_check("{{days", vars, why, sizeof why));
    /* no variables declared: any placeholder is unknown */
    json_t *none = json_array();
    assert_false(ai_tpl_check("{{days}}", none, why, sizeof why));
    json_decref(none);
    json_decref(vars);
}

static void test_render(void **state)
{
    json_t *values = json_pack("{s:s, s:i, s:f, s:s}", "destination", "Lisbon",
                               "days", 4, "budget", 0.1, "empty", "");
    char why[256], *s;

    (void)state;
    s = ai_tpl_render("Plan {{destination}}: {{ days }} days, {{budget}}k{{empty}}.",
                      values, 1000, why, sizeof why);
    assert_non_null(s);
    assert_string_equal(s, "Plan Lisbon: 4 days, 0.1k.");
    free(s);
    s = ai_tpl_render("", values, 1000, why, sizeof why);
    assert_string_equal(s, "");
    free(s);
    /* a value is inserted as is: braces in it are not placeholders */
    json_object_set_new(values, "destination", json_string("{{days}}"));
    s = ai_tpl_render("{{destination}}", values, 1000, why, sizeof why);
    assert_string_equal(s, "{{days}}");
    free(s);
    /* missing and wrong-typed values */
    assert_null(ai_tpl_render("{{nope}}", values, 1000, why, sizeof why));
    assert_string_equal(why, "variable \"nope\" is missing");
    json_object_set_new(values, "flag", json_true());
    assert_null(ai_tpl_render("{{flag}}", values, 1000, why, sizeof why));
    assert_string_equal(why, "variable \"flag\" must be a string or a number");
    /* the bound counts the result */
    s = ai_tpl_render("1234{{days}}", values, 5, why, sizeof why);
    assert_string_equal(s, "12344");
    free(s);
    assert_null(ai_tpl_render("1234{{days}}x", values, 5, why, sizeof why));
    assert_non_null(strstr(why, "would pass 5 bytes"));
    json_decref(values);
}

static void test_text_problem(void **state)
{
    char why[160];
    json_t *v;

    (void)state;
    v = json_string("h\xC3\xA9llo");   /* 5 characters, 6 bytes */
    assert_null(ai_task_text_problem(v, 1, 5, false, why));
    assert_non_null(ai_task_text_problem(v, 1, 4, false, why));
    assert_string_equal(why, "must be 1 to 4 characters long");
    json_decref(v);
    v = json_string("two\nlines");
    assert_null(ai_task_text_problem(v, 0, 100, true, why));
    assert_string_equal(ai_task_text_problem(v, 0, 100, false, why),
                        "must not contain control characters");
    json_decref(v);
    v = json_stringn("nul\0inside", 10);
    assert_string_equal(ai_task_text_problem(v, 0, 100, true, why),
                        "must not contain NUL characters");
    json_decref(v);
    v = json_integer(3);
    assert_string_equal(ai_task_text_problem(v, 0, 100, true, why), "must be a string");
    json_decref(v);
    v = json_string("");
    assert_non_null(ai_task_text_problem(v, 1, 100, true, why));
    assert_null(ai_task_text_problem(v, 0, 100, true, why));
    json_decref(v);
}

static void test_model_names(void **state)
{
    char name[140];

    (void)state;
    assert_true(ai_task_model_name_valid("gpt-4o-mini"));
    assert_true(ai_task_model_name_valid("llama3.1:8b"));
    assert_true(ai_task_model_name_valid("meta/llama_3"));
    assert_false(ai_task_model_name_valid(""));
    assert_false(ai_task_model_name_valid(NULL));
    assert_false(ai_task_model_name_valid("-x"));
    assert_false(ai_task_model_name_valid("a b"));
    memset(name, 'a', 128);
    name[128] = '\0';
    assert_true(ai_task_model_name_valid(name));
    name[128] = 'a';
    name[129] = '\0';
    assert_false(ai_task_model_name_valid(name));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_var_names),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_text_problem),
        cmocka_unit_test(test_model_names),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
