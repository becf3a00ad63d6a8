/*
 * tasks.h - what the ai module's task routes share (not installed)
 *
 * tasks.c answers /api/v1/ai/generate, /analyze and /translate and
 * registers the template routes of templates.c. Templates are team
 * documents: a body (and a system text) with {{variable}} placeholders,
 * the list of variables they declare, an optional JSON Schema the model's
 * reply must match (schema.h) and an optional model.
 *
 * Placeholders: "{{name}}" or "{{ name }}", name being a variable name
 * (AI_TPL_VAR_NAME_MAX bytes at most of letters, digits and '_', not
 * starting with a digit). Any other "{{" in a body is refused when the
 * template is written, as is a placeholder naming an undeclared variable.
 */
#ifndef PLX_AI_TASKS_H
#define PLX_AI_TASKS_H

#include <stdbool.h>
#include <stddef.h>

#include <plexus/module.h>

#define AI_TPL_NAME_MAX        200      /* characters, as ai.templates checks */
#define AI_TPL_DESCRIPTION_MAX 2000
#define AI_TPL_SYSTEM_MAX      20000
#define AI_TPL_BODY_MAX        50000
#define AI_TPL_VARS_MAX        64       /* variables a template declares */
#define AI_TPL_VAR_NAME_MAX    64       /* bytes of a variable name */
#define AI_TPL_VALUE_MAX       20000    /* bytes of one variable's value */
#define AI_TPL_PROMPT_MAX      262144   /* bytes of a rendered text */
#define AI_TPL_LIST_DEFAULT    50
#define AI_TPL_LIST_MAX        100

/* ---- pure helpers (templates.c), no core needed ---------------------------- */

bool ai_tpl_var_name_valid(const char *s);

/* true when every placeholder of text is well formed and names one of
 * variables (a JSON array of names); otherwise why says which is not:
 * "{{city}} is not a declared variable" */
bool ai_tpl_check(const char *text, json_t *variables, char *why, size_t whylen);

/* text with each placeholder replaced by its value in values (an object:
 * strings as they are, numbers in JSON notation). malloc'd; NULL when a
 * value is missing or not a string or number, when the result would pass
 * max bytes, or on no memory, with why. Call ai_tpl_check first. */
char *ai_tpl_render(const char *text, json_t *values, size_t max,
                    char *why, size_t whylen);

/* characters (code points) of a valid UTF-8 string */
size_t ai_task_utf8_chars(const char *s);

/* s for an error detail: its first 24 bytes at most, cut on a character
 * boundary, quotes and control characters replaced by '?'. Returns out. */
const char *ai_task_excerpt(const char *s, char out[32]);

/* Why the JSON value v is not a string of min..max characters (with
 * multiline, newlines and tabs allowed; never other control characters
 * nor NUL); NULL when it is. */
const char *ai_task_text_problem(json_t *v, size_t min, size_t max, bool multiline,
                            char why[160]);

/* ---- request helpers ---------------------------------------------------------- */

/* a model name as ai.models accepts it: [A-Za-z0-9][A-Za-z0-9._:/-]{0,127} */
bool ai_task_model_name_valid(const char *s);

/* A template the caller may see: its row as JSON (a new reference) and
 * the caller's role in its team. PLX_ERR_NOT_FOUND when there is none or
 * the caller is not in its team (nothing answered); PLX_ERR_DB. */
plx_status_t ai_template_fetch(plx_request_t *r, const char *id, json_t **row,
                               plx_role_t *role);

/* registration: templates.c */
bool ai_template_routes(plx_module_t *m);

#endif
