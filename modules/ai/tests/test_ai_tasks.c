/*
 * test_ai_tasks.c - the task routes over the fake provider: team templates
 * (create, read, list in pages, change, delete; every write checked: sizes,
 * variables, placeholders, the output schema) and who may do what (owner,
 * admin, member, viewer, someone outside the team); generate with
 * variables, checking the very prompt the provider received; a template
 * with an output schema (a trip checklist) answered at once, after one
 * corrected reply, or refused 422 with the errors after two bad ones;
 * analyze and translate with scripted JSON replies; the 400s of bad input
 * (no upstream call made for any of them); usage rows charged to the team;
 * and 503 when no provider is configured.
 *
 * One plexusd with identity, metrics and ai over the fake provider.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ai_client.h"

static ait_env_t env;

enum { OWNER, ADMIN, MEMBER, VIEWER, OUTSIDER, NCREW };
static plxt_user_t *crew[NCREW];
static plxt_user_t extra_users[NCREW];
static char team[37];          /* OWNER's; ADMIN, MEMBER, VIEWER in it */
static char other_team[37];    /* OUTSIDER's own */

#define TPL "/api/v1/ai/templates"
#define GENERATE "/api/v1/ai/generate"
#define ANALYZE "/api/v1/ai/analyze"
#define TRANSLATE "/api/v1/ai/translate"

/* a path or body from a format (harness.h) */
#define P plxt_fmt

/* a JSON body from json_pack arguments, as text in a rotating buffer */
static const char *B(const char *fmt, ...)
{
    static char bufs[8][32768];
    static int next;
    char *b = bufs[next++ % 8], *s;
    json_error_t err;
    va_list ap;
    json_t *j;

    va_start(ap, fmt);
    j = json_vpack_ex(&err, 0, fmt, ap);
    va_end(ap);
    if (!j)
        fail_msg("bad test body %s: %s", fmt, err.text);
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (strlen(s) >= sizeof bufs[0])
        fail_msg("test body too long");
    strcpy(b, s);
    free(s);
    return b;
}

static json_t *J(const char *text)
{
    json_t *j = json_loads(text, 0, NULL);

    if (!j)
        fail_msg("bad test JSON: %s", text);
    return j;
}

static void member_add(const char *t, plxt_user_t *by, plxt_user_t *who, const char *role)
{
    json_decref(ait_expect(&env, "POST", P("/api/v1/teams/%s/members", t), by->access,
                           B("{s:s, s:s}", "email", who->email, "role", role), 201));
}

static int group_setup(void **state)
{
    (void)state;
    if (ait_start(&env, NULL) != 0)
        return -1;
    ait_model(&env, "gpt-test", "fake", "up-model", 1.0, 2.0, NULL);
    ait_model(&env, "claude-test", "fake_anth", "up-claude", 0, 0, NULL);
    crew[OWNER] = &env.user;
    for (int i = ADMIN; i < NCREW; i++) {
        crew[i] = &extra_users[i];
        plxt_user_new(env.srv, env.db, crew[i]);
    }
    ait_team_new(&env, crew[OWNER], team);
    ait_team_new(&env, crew[OUTSIDER], other_team);
    member_add(team, crew[OWNER], crew[ADMIN], "admin");
    member_add(team, crew[OWNER], crew[MEMBER], "member");
    member_add(team, crew[OWNER], crew[VIEWER], "viewer");
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return ait_stop(&env);
}

static int test_setup(void **state)
{
    (void)state;
    plxt_llm_reset(env.llm);
    return 0;
}

/* ---- helpers --------------------------------------------------------------------- */

static const char *str(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));

    if (!s)
        fail_msg("expected a string \"%s\" in %s", key, json_dumps(j, 0));
    return s;
}

/* a template of the team made by u (expecting 201): its id */
static void tpl_new(plxt_user_t *u, const char *body, char id[37])
{
    json_t *j = ait_expect(&env, "POST", TPL, u->access, body, 201);

    snprintf(id, 37, "%s", str(j, "id"));
    json_decref(j);
}

/* one call answered by a problem of this status and code: its JSON (the
 * caller frees) */
static json_t *problem(const char *method, const char *path, plxt_user_t *u,
                       const char *body, long status, const char *code)
{
    plxt_resp_t resp;
    json_t *j;

    ait_call(&env, method, path, u->access, body, &resp);
    if (resp.status != status || !plxt_resp_type_is(&resp, "application/problem+json"))
        fail_msg("%s %s: expected a %ld problem, found %ld: %.500s", method, path, status,
                 resp.status, resp.body ? resp.body : "");
    j = plxt_resp_json(&resp);
    plxt_resp_free(&resp);
    if (!j || !json_is_string(json_object_get(j, "code"))
        || strcmp(json_string_value(json_object_get(j, "code")), code) != 0
        || json_integer_value(json_object_get(j, "status")) != status)
        fail_msg("%s %s: expected code \"%s\" and status %ld in %s", method, path, code,
                 status, j ? json_dumps(j, 0) : "(not JSON)");
    return j;
}

/* the same, when only the status and code matter */
static void refused(const char *method, const char *path, plxt_user_t *u,
                    const char *body, long status, const char *code)
{
    json_decref(problem(method, path, u, body, status, code));
}

/* the detail of a problem contains needle */
static void problem_says(const char *method, const char *path, plxt_user_t *u,
                         const char *body, long status, const char *code,
                         const char *needle)
{
    json_t *j = problem(method, path, u, body, status, code);
    const char *detail = json_string_value(json_object_get(j, "detail"));

    if (!detail || !strstr(detail, needle))
        fail_msg("%s %s: expected \"%s\" in the detail, found \"%s\"", method, path,
                 needle, detail ? detail : "(none)");
    json_decref(j);
}

/* the i-th request the fake received: its body (caller frees) */
static json_t *seen_body(int i)
{
    plxt_llm_seen_t s;
    json_t *b;

    if (!plxt_llm_seen(env.llm, i, &s))
        fail_msg("the fake received no request #%d", i);
    b = json_incref(s.body);
    plxt_llm_seen_free(&s);
    assert_non_null(b);
    return b;
}

/* content of message i of a request body */
static const char *msg(json_t *body, size_t i, const char *role)
{
    json_t *m = json_array_get(json_object_get(body, "messages"), i);

    if (!m)
        fail_msg("no message #%zu in %s", i, json_dumps(body, 0));
    assert_string_equal(str(m, "role"), role);
    return str(m, "content");
}

static bool has_line(json_t *errors, const char *line)
{
    size_t i;
    json_t *e;

    json_array_foreach(errors, i, e)
        if (strcmp(json_string_value(e), line) == 0)
            return true;
    return false;
}

static void push_text(const char *text)
{
    plxt_llm_script_t s = { .text = text };

    plxt_llm_push(env.llm, &s);
}

static long sql_long(const char *sql)
{
    char *v = ait_sql(&env, sql);
    long n = v ? strtol(v, NULL, 10) : -1;

    free(v);
    return n;
}

/* ---- templates --------------------------------------------------------------------- */

static void test_template_crud(void **state)
{
    char id[37], id2[37], location[128];
    plxt_resp_t resp;
    json_t *j, *v;

    (void)state;
    /* create: defaults filled in, Location set */
    ait_call(&env, "POST", TPL, crew[OWNER]->access,
             B("{s:s, s:s, s:s, s:[s, s]}", "team_id", team, "name", "Trip plan",
               "body", "Plan {{destination}} for {{days}} days.",
               "variables", "destination", "days"), &resp);
    assert_int_equal(resp.status, 201);
    j = plxt_resp_json(&resp);
    snprintf(id, sizeof id, "%s", str(j, "id"));
    snprintf(location, sizeof location, TPL "/%s", id);
    assert_string_equal(plxt_resp_header(&resp, "Location"), location);
    plxt_resp_free(&resp);
    assert_string_equal(str(j, "team_id"), team);
    assert_string_equal(str(j, "name"), "Trip plan");
    assert_string_equal(str(j, "description"), "");
    assert_string_equal(str(j, "system"), "");
    assert_true(json_is_null(json_object_get(j, "output_schema")));
    assert_true(json_is_null(json_object_get(j, "model")));
    assert_string_equal(str(j, "created_by"), crew[OWNER]->id);
    v = J("[\"destination\",\"days\"]");
    assert_true(json_equal(json_object_get(j, "variables"), v));
    json_decref(v);
    json_decref(j);

    /* read */
    j = ait_expect(&env, "GET", location, crew[OWNER]->access, NULL, 200);
    assert_string_equal(str(j, "body"), "Plan {{destination}} for {{days}} days.");
    json_decref(j);

    /* change: a merge; only what is given changes */
    j = ait_expect(&env, "PATCH", location, crew[OWNER]->access,
                   B("{s:s, s:s, s:{s:s}}", "description", "where and how long",
                     "model", "gpt-test", "output_schema", "type", "object"), 200);
    assert_string_equal(str(j, "description"), "where and how long");
    assert_string_equal(str(j, "model"), "gpt-test");
    assert_string_equal(str(j, "name"), "Trip plan");
    assert_string_equal(str(json_object_get(j, "output_schema"), "type"), "object");
    json_decref(j);
    j = ait_expect(&env, "PATCH", location, crew[OWNER]->access,
                   "{\"output_schema\":null,\"model\":null}", 200);
    assert_true(json_is_null(json_object_get(j, "output_schema")));
    assert_true(json_is_null(json_object_get(j, "model")));
    json_decref(j);

    /* the body may only use declared variables, checked against the merge */
    problem_says("PATCH", location, crew[OWNER], "{\"body\":\"to {{city}}\"}", 400,
                 "unknown_variable", "{{city}} is not a declared variable");
    problem_says("PATCH", location, crew[OWNER], "{\"variables\":[\"destination\"]}", 400,
                 "unknown_variable", "{{days}} is not a declared variable");
    problem_says("PATCH", location, crew[OWNER], "{\"system\":\"You know {{ nope }}.\"}", 400,
                 "unknown_variable", "field \"system\": {{nope}} is not a declared variable");
    problem_says("PATCH", location, crew[OWNER], "{\"body\":\"to {{destination}\"}", 400,
                 "unknown_variable", "malformed placeholder");
    problem_says("PATCH", location, crew[OWNER], "{\"variables\":[\"a\",\"a\"],\"body\":\"x\"}",
                 400, "invalid_body", "names \"a\" twice");
    problem_says("PATCH", location, crew[OWNER], "{\"variables\":[\"1a\"],\"body\":\"x\"}",
                 400, "invalid_body", "field \"variables\"");
    /* the output schema must compile */
    problem_says("PATCH", location, crew[OWNER], "{\"output_schema\":{\"type\":\"bool\"}}",
                 400, "invalid_schema", "Unrecognised JSON type name 'bool'");
    problem_says("PATCH", location, crew[OWNER], "{\"output_schema\":{\"$ref\":\"#\"}}",
                 400, "invalid_schema", "a cycle");
    problem_says("PATCH", location, crew[OWNER], "{\"output_schema\":[1]}",
                 400, "invalid_schema", "must be a JSON object");
    /* fields and sizes */
    problem_says("PATCH", location, crew[OWNER], "{\"team_id\":\"x\"}", 400, "invalid_body",
                 "a template stays in its team");
    problem_says("PATCH", location, crew[OWNER], "{\"colour\":\"red\"}", 400, "invalid_body",
                 "unknown field \"colour\"");
    problem_says("PATCH", location, crew[OWNER], "{}", 400, "invalid_body", "at least one");
    problem_says("PATCH", location, crew[OWNER], "{\"name\":\"\"}", 400, "invalid_body",
                 "field \"name\" must be 1 to 200 characters long");
    problem_says("PATCH", location, crew[OWNER], "{\"name\":\"a\\nb\"}", 400, "invalid_body",
                 "field \"name\" must not contain control characters");
    problem_says("PATCH", location, crew[OWNER], "{\"model\":\"no spaces\"}", 400,
                 "invalid_body", "field \"model\"");
    problem_says("PATCH", location, crew[OWNER], "{\"body\":5}", 400, "invalid_body",
                 "field \"body\" must be a string");
    /* nothing of the refused patches was kept */
    j = ait_expect(&env, "GET", location, crew[OWNER]->access, NULL, 200);
    assert_string_equal(str(j, "body"), "Plan {{destination}} for {{days}} days.");
    assert_string_equal(str(j, "name"), "Trip plan");
    json_decref(j);

    /* create: required fields, a name unique in its team, a team of the caller */
    problem_says("POST", TPL, crew[OWNER], B("{s:s, s:s}", "team_id", team, "name", "x"),
                 400, "invalid_body", "field \"body\" is required");
    problem_says("POST", TPL, crew[OWNER], B("{s:s, s:s}", "team_id", team, "body", "x"),
                 400, "invalid_body", "field \"name\" is required");
    problem_says("POST", TPL, crew[OWNER], "{\"name\":\"x\",\"body\":\"y\"}", 400,
                 "invalid_body", "team_id");
    problem_says("POST", TPL, crew[OWNER],
                 B("{s:s, s:s, s:s}", "team_id", team, "name", "Trip plan", "body", "y"),
                 409, "name_taken", "\"Trip plan\"");
    problem_says("POST", TPL, crew[OWNER],
                 B("{s:s, s:s, s:s}", "team_id", other_team, "name", "x", "body", "y"),
                 404, "not_found", "no such team");
    /* a rename onto a taken name */
    tpl_new(crew[OWNER], B("{s:s, s:s, s:s}", "team_id", team, "name", "Second", "body", "b"),
            id2);
    problem_says("PATCH", P(TPL "/%s", id2), crew[OWNER], "{\"name\":\"Trip plan\"}", 409,
                 "name_taken", "\"Trip plan\"");

    /* delete */
    ait_expect(&env, "DELETE", location, crew[OWNER]->access, NULL, 204);
    refused("GET", location, crew[OWNER], NULL, 404, "not_found");
    refused("DELETE", location, crew[OWNER], NULL, 404, "not_found");
    refused("GET", TPL "/not-a-uuid", crew[OWNER], NULL, 404, "not_found");
    ait_expect(&env, "DELETE", P(TPL "/%s", id2), crew[OWNER]->access, NULL, 204);
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

static void test_template_list(void **state)
{
    char ids[5][37], next[256];
    const char *names[5] = { "list e", "list a", "list d", "list c", "list b" };
    json_t *j, *items;

    (void)state;
    for (int i = 0; i < 5; i++)
        tpl_new(crew[ADMIN], B("{s:s, s:s, s:s}", "team_id", team, "name", names[i],
                               "body", "b"), ids[i]);
    /* by name, in pages of two */
    j = ait_expect(&env, "GET", P(TPL "?team_id=%s&limit=2", team), crew[VIEWER]->access,
                   NULL, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(str(json_array_get(items, 0), "name"), "list a");
    assert_string_equal(str(json_array_get(items, 1), "name"), "list b");
    snprintf(next, sizeof next, "%s", str(j, "next_cursor"));
    json_decref(j);
    j = ait_expect(&env, "GET", P(TPL "?team_id=%s&limit=2&cursor=%s", team, next),
                   crew[MEMBER]->access, NULL, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(str(json_array_get(items, 0), "name"), "list c");
    assert_string_equal(str(json_array_get(items, 1), "name"), "list d");
    snprintf(next, sizeof next, "%s", str(j, "next_cursor"));
    json_decref(j);
    j = ait_expect(&env, "GET", P(TPL "?team_id=%s&limit=2&cursor=%s", team, next),
                   crew[MEMBER]->access, NULL, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(str(json_array_get(items, 0), "name"), "list e");
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    /* the whole list, and another team's empty one */
    j = ait_expect(&env, "GET", P(TPL "?team_id=%s", team), crew[OWNER]->access, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 5);
    json_decref(j);
    j = ait_expect(&env, "GET", P(TPL "?team_id=%s", other_team), crew[OUTSIDER]->access,
                   NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    /* bad queries */
    refused("GET", TPL, crew[OWNER], NULL, 400, "invalid_query");
    refused("GET", P(TPL "?team_id=%s&limit=0", team), crew[OWNER], NULL, 400, "invalid_query");
    refused("GET", P(TPL "?team_id=%s&limit=101", team), crew[OWNER], NULL, 400,
            "invalid_query");
    refused("GET", P(TPL "?team_id=%s&cursor=!!", team), crew[OWNER], NULL, 400,
            "invalid_cursor");
    /* base64url of bytes that are not UTF-8: refused before SQL sees them */
    refused("GET", P(TPL "?team_id=%s&cursor=__4", team), crew[OWNER], NULL, 400,
            "invalid_cursor");
    refused("GET", P(TPL "?team_id=%s", other_team), crew[OWNER], NULL, 404, "not_found");
    for (int i = 0; i < 5; i++)
        ait_expect(&env, "DELETE", P(TPL "/%s", ids[i]), crew[OWNER]->access, NULL, 204);
}

static void test_template_access(void **state)
{
    char id[37];
    const char *path, *mine;
    json_t *j;

    (void)state;
    tpl_new(crew[ADMIN], B("{s:s, s:s, s:s}", "team_id", team, "name", "access",
                           "body", "hello"), id);
    mine = B("{s:s, s:s, s:s}", "team_id", team, "name", "mine", "body", "b");
    path = P(TPL "/%s", id);
    /* every member reads */
    for (int i = OWNER; i <= VIEWER; i++) {
        j = ait_expect(&env, "GET", path, crew[i]->access, NULL, 200);
        assert_string_equal(str(j, "id"), id);
        json_decref(j);
    }
    /* members and viewers do not write */
    for (int i = MEMBER; i <= VIEWER; i++) {
        refused("PATCH", path, crew[i], "{\"body\":\"changed\"}", 403, "forbidden");
        refused("DELETE", path, crew[i], NULL, 403, "forbidden");
        refused("POST", TPL, crew[i], mine, 403, "forbidden");
    }
    /* someone outside the team sees nothing: 404 as for no template */
    refused("GET", path, crew[OUTSIDER], NULL, 404, "not_found");
    refused("PATCH", path, crew[OUTSIDER], "{\"body\":\"changed\"}", 404, "not_found");
    refused("DELETE", path, crew[OUTSIDER], NULL, 404, "not_found");
    refused("GET", P(TPL "?team_id=%s", team), crew[OUTSIDER], NULL, 404, "not_found");
    refused("POST", TPL, crew[OUTSIDER], mine, 404, "not_found");
    /* the refused writes changed nothing */
    j = ait_expect(&env, "GET", path, crew[OWNER]->access, NULL, 200);
    assert_string_equal(str(j, "body"), "hello");
    json_decref(j);
    assert_int_equal(sql_long("SELECT count(*) FROM ai.templates WHERE name = 'mine'"), 0);
    /* admins and owners write */
    json_decref(ait_expect(&env, "PATCH", path, crew[ADMIN]->access,
                           "{\"body\":\"by the admin\"}", 200));
    json_decref(ait_expect(&env, "PATCH", path, crew[OWNER]->access,
                           "{\"body\":\"by the owner\"}", 200));
    /* no token at all */
    plxt_resp_t resp;
    ait_call(&env, "GET", path, NULL, NULL, &resp);
    assert_int_equal(resp.status, 401);
    plxt_resp_free(&resp);
    ait_expect(&env, "DELETE", path, crew[ADMIN]->access, NULL, 204);
}

/* ---- generate -------------------------------------------------------------------- */

static void test_generate_text(void **state)
{
    char id[37];
    json_t *j, *body, *usage;

    (void)state;
    /* every placeholder must be declared */
    problem_says("POST", TPL, crew[OWNER],
                 B("{s:s, s:s, s:s, s:[s]}", "team_id", team, "name", "letter",
                   "body", "Write to {{name}} in {{ city }}.", "variables", "name"),
                 400, "unknown_variable",
                 "field \"body\": {{city}} is not a declared variable");
    tpl_new(crew[OWNER], B("{s:s, s:s, s:s, s:s, s:[s, s, s, s]}", "team_id", team,
                           "name", "letter", "system", "You write for {{ company }}.",
                           "body", "Write to {{name}}: {{days}} days, {{ratio}} off.",
                           "variables", "name", "days", "company", "ratio"), id);
    push_text("Dear Ada, enjoy.");
    j = ait_expect(&env, "POST", GENERATE, crew[MEMBER]->access,
                   B("{s:s, s:s, s:{s:s, s:i, s:s, s:f}}", "template_id", id,
                     "model", "gpt-test", "variables", "name", "Ada", "days", 4,
                     "company", "ACME", "ratio", 0.25), 200);
    /* the rendered prompt is what the provider received */
    assert_int_equal(plxt_llm_count(env.llm), 1);
    body = seen_body(0);
    assert_string_equal(str(body, "model"), "up-model");
    assert_string_equal(msg(body, 0, "system"), "You write for ACME.");
    assert_string_equal(msg(body, 1, "user"), "Write to Ada: 4 days, 0.25 off.");
    assert_int_equal(json_array_size(json_object_get(body, "messages")), 2);
    assert_null(json_object_get(body, "response_format"));
    json_decref(body);
    /* the answer */
    assert_string_equal(str(j, "output"), "Dear Ada, enjoy.");
    assert_string_equal(str(j, "template_id"), id);
    assert_string_equal(str(j, "model"), "gpt-test");
    assert_non_null(json_object_get(j, "id"));
    usage = json_object_get(j, "usage");
    /* the fake counts words: 4 of the system message, 7 of the user's; the
     * price is 1 per million input tokens and 2 per million output ones */
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 11);
    assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 3);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")), 14);
    assert_false(json_is_true(json_object_get(usage, "estimated")));
    assert_true(json_real_value(json_object_get(j, "cost")) > 0.0000169
                && json_real_value(json_object_get(j, "cost")) < 0.0000171);
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
    json_decref(j);
    /* charged to the template's team, by the member */
    assert_int_equal(sql_long(P("SELECT count(*) FROM ai.usage WHERE kind = 'generate'"
                                " AND team_id = '%s' AND user_id = '%s' AND status = 'ok'"
                                " AND prompt_tokens = 11", team, crew[MEMBER]->id)), 1);

    /* the template's model is used when the request names none */
    json_decref(ait_expect(&env, "PATCH", P(TPL "/%s", id), crew[OWNER]->access,
                           "{\"model\":\"claude-test\"}", 200));
    j = ait_expect(&env, "POST", GENERATE, crew[OWNER]->access,
                   B("{s:s, s:{s:s, s:s, s:s, s:s}}", "template_id", id,
                     "variables", "name", "Bob", "days", "2", "company", "X", "ratio", "1"),
                   200);
    assert_string_equal(str(j, "model"), "claude-test");
    assert_string_equal(str(j, "output"), "Hello from the fake provider.");
    json_decref(j);
    body = seen_body(1);
    assert_string_equal(str(body, "model"), "up-claude");   /* the Anthropic side */
    json_decref(body);
    ait_expect(&env, "DELETE", P(TPL "/%s", id), crew[OWNER]->access, NULL, 204);
}

static void test_generate_bad_input(void **state)
{
    char id[37], plain[37];
    char big[20100];
    const char *hi;

    (void)state;
    tpl_new(crew[OWNER], B("{s:s, s:s, s:s, s:[s]}", "team_id", team, "name", "bad input",
                           "body", "About {{topic}}.", "variables", "topic"), id);
    tpl_new(crew[OWNER], B("{s:s, s:s, s:s}", "team_id", team, "name", "no variables",
                           "body", "Say hi."), plain);
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:s, s:{}}", "template_id", id, "model", "gpt-test", "variables"),
                 400, "missing_variable", "variable \"topic\"");
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:s}", "template_id", id, "model", "gpt-test"),
                 400, "missing_variable", "variable \"topic\"");
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:s, s:{s:s, s:s}}", "template_id", id, "model", "gpt-test",
                   "variables", "topic", "x", "other", "y"),
                 400, "unknown_variable", "variable \"other\"");
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:s, s:{s:b}}", "template_id", id, "model", "gpt-test",
                   "variables", "topic", 1),
                 400, "invalid_variable", "variable \"topic\" must be a string or a number");
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:s, s:{s:[]}}", "template_id", id, "model", "gpt-test",
                   "variables", "topic"),
                 400, "invalid_variable", "variable \"topic\"");
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:s, s:{s:s}}", "template_id", id, "model", "gpt-test",
                   "variables", "topic", big),
                 400, "invalid_variable", "at most 20000 bytes");
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:s, s:s}", "template_id", id, "model", "gpt-test",
                   "variables", "topic"),
                 400, "invalid_body", "field \"variables\"");
    problem_says("POST", GENERATE, crew[MEMBER], "{\"template_id\":\"nope\"}",
                 400, "invalid_body", "template_id");
    problem_says("POST", GENERATE, crew[MEMBER], "{\"variables\":{}}",
                 400, "invalid_body", "template_id");
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:s}", "template_id", plain, "temperature", "hot"),
                 400, "invalid_body", "unknown field \"temperature\"");
    problem_says("POST", GENERATE, crew[MEMBER],
                 B("{s:s, s:i}", "template_id", plain, "model", 3),
                 400, "invalid_body", "field \"model\"");
    refused("POST", GENERATE, crew[MEMBER], "[1]", 400, "invalid_body");
    /* no model anywhere: no default is configured */
    problem_says("POST", GENERATE, crew[MEMBER], B("{s:s}", "template_id", plain),
                 400, "model_required", "default_model");
    /* who may generate: members and up; viewers are refused, outsiders see nothing */
    hi = B("{s:s, s:s}", "template_id", plain, "model", "gpt-test");
    refused("POST", GENERATE, crew[VIEWER], hi, 403, "forbidden");
    refused("POST", GENERATE, crew[OUTSIDER], hi, 404, "not_found");
    refused("POST", GENERATE, crew[MEMBER],
            B("{s:s, s:s}", "template_id", "00000000-0000-4000-8000-000000000000",
              "model", "gpt-test"), 404, "not_found");
    /* none of these reached the provider */
    assert_int_equal(plxt_llm_count(env.llm), 0);
    /* a model that does not exist: the gateway's answer */
    refused("POST", GENERATE, crew[MEMBER],
            B("{s:s, s:s}", "template_id", plain, "model", "no-such-model"),
            404, "model_not_found");
    ait_expect(&env, "DELETE", P(TPL "/%s", id), crew[OWNER]->access, NULL, 204);
    ait_expect(&env, "DELETE", P(TPL "/%s", plain), crew[OWNER]->access, NULL, 204);
}

/* ---- generate with an output schema: a trip checklist --------------------------------- */

static const char checklist_schema[] =
    "{\"type\":\"object\",\"required\":[\"destination\",\"items\"],"
    "\"properties\":{\"destination\":{\"type\":\"string\"},"
    "\"items\":{\"type\":\"array\",\"minItems\":1,\"items\":{\"type\":\"object\","
    "\"required\":[\"text\",\"done\"],\"properties\":{\"text\":{\"type\":\"string\"},"
    "\"done\":{\"type\":\"boolean\"}}}}}}";

static const char good_list[] =
    "{\"destination\": \"Oslo\", \"items\": [{\"text\": \"coat\", \"done\": false}]}";
static const char bad_list[] =
    "{\"destination\": \"Oslo\", \"items\": [{\"text\": \"coat\", \"done\": \"no\"}]}";

static void checklist_template(char id[37])
{
    char body[2048];

    snprintf(body, sizeof body,
             "{\"team_id\":\"%s\",\"name\":\"checklist\",\"model\":\"gpt-test\","
             "\"system\":\"You pack bags.\",\"body\":\"A checklist for {{city}}.\","
             "\"variables\":[\"city\"],\"output_schema\":%s}", team, checklist_schema);
    tpl_new(crew[OWNER], body, id);
}

static json_t *generate_list(const char *id, long status)
{
    return ait_expect(&env, "POST", GENERATE, crew[MEMBER]->access,
                      B("{s:s, s:{s:s}}", "template_id", id, "variables", "city", "Oslo"),
                      status);
}

static void test_generate_schema_valid(void **state)
{
    char id[37];
    json_t *j, *body, *want, *system_schema;
    const char *system, *at;

    (void)state;
    checklist_template(id);
    push_text(good_list);
    j = generate_list(id, 200);
    want = J(good_list);
    assert_true(json_equal(json_object_get(j, "output"), want));   /* JSON, not text */
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 1);
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 1);
    /* JSON mode, and the schema in the system message */
    body = seen_body(0);
    assert_string_equal(str(json_object_get(body, "response_format"), "type"), "json_object");
    system = msg(body, 0, "system");
    assert_non_null(strstr(system, "You pack bags."));
    assert_non_null(at = strstr(system, "JSON Schema:\n"));
    system_schema = J(at + strlen("JSON Schema:\n"));
    json_decref(want);
    want = J(checklist_schema);
    assert_true(json_equal(system_schema, want));
    json_decref(system_schema);
    json_decref(want);
    assert_string_equal(msg(body, 1, "user"), "A checklist for Oslo.");
    json_decref(body);

    /* a fenced reply, with words around it, is read too */
    push_text("Here it is:\n```json\n{\"destination\": \"Oslo\", \"items\": "
              "[{\"text\": \"hat\", \"done\": true}]}\n```\nEnjoy!");
    j = generate_list(id, 200);
    assert_string_equal(str(json_array_get(json_object_get(json_object_get(j, "output"),
                                                           "items"), 0), "text"), "hat");
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 2);
    ait_expect(&env, "DELETE", P(TPL "/%s", id), crew[OWNER]->access, NULL, 204);
}

static void test_generate_schema_retry(void **state)
{
    char id[37];
    json_t *j, *body, *want;
    const char *correction;

    (void)state;
    checklist_template(id);
    long rows = sql_long("SELECT count(*) FROM ai.usage WHERE kind = 'generate'");
    push_text(bad_list);
    push_text(good_list);
    j = generate_list(id, 200);
    want = J(good_list);
    assert_true(json_equal(json_object_get(j, "output"), want));
    json_decref(want);
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 2);
    /* usage of both calls: each reply is 7 tokens (words) */
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "completion_tokens")), 14);
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 2);
    /* the second call carried the bad reply and what was wrong with it */
    body = seen_body(1);
    assert_int_equal(json_array_size(json_object_get(body, "messages")), 4);
    assert_string_equal(msg(body, 1, "user"), "A checklist for Oslo.");
    assert_string_equal(msg(body, 2, "assistant"), bad_list);
    correction = msg(body, 3, "user");
    assert_non_null(strstr(correction, "- /items/0/done: expected boolean, found string"));
    json_decref(body);
    /* two usage rows, both charged to the team */
    assert_int_equal(sql_long("SELECT count(*) FROM ai.usage WHERE kind = 'generate'"),
                     rows + 2);
    assert_int_equal(sql_long(P("SELECT count(*) FROM (SELECT team_id, completion_tokens"
                                " FROM ai.usage WHERE kind = 'generate'"
                                " ORDER BY created_at DESC LIMIT 2) last"
                                " WHERE team_id = '%s' AND completion_tokens = 7", team)), 2);
    ait_expect(&env, "DELETE", P(TPL "/%s", id), crew[OWNER]->access, NULL, 204);
}

static void test_generate_schema_fail(void **state)
{
    char id[37];
    json_t *j, *errors;

    (void)state;
    checklist_template(id);
    push_text(bad_list);
    push_text("{\"destination\": 5, \"items\": [{\"text\": \"coat\", \"done\": \"no\"}]}");
    ait_expect_problem(&env, "POST", GENERATE, crew[MEMBER]->access,
                       B("{s:s, s:{s:s}}", "template_id", id, "variables", "city", "Oslo"),
                       422, "output_invalid");
    /* the problem lists what the second reply got wrong */
    push_text(bad_list);
    push_text("{\"destination\": 5, \"items\": [{\"text\": \"coat\", \"done\": \"no\"}]}");
    j = generate_list(id, 422);
    errors = json_object_get(j, "errors");
    assert_true(json_is_array(errors));
    assert_true(has_line(errors, "/destination: expected string, found integer"));
    assert_true(has_line(errors, "/items/0/done: expected boolean, found string"));
    assert_int_equal(json_array_size(errors), 2);
    assert_non_null(strstr(str(j, "detail"), "did not match"));
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 4);   /* two calls each, no more */

    /* not JSON at all, twice */
    plxt_llm_reset(env.llm);
    push_text("Sure! A coat.");
    push_text("Still not JSON.");
    j = generate_list(id, 422);
    errors = json_object_get(j, "errors");
    assert_int_equal(json_array_size(errors), 1);
    assert_non_null(strstr(json_string_value(json_array_get(errors, 0)),
                           "/: the reply is not JSON"));
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 2);
    ait_expect(&env, "DELETE", P(TPL "/%s", id), crew[OWNER]->access, NULL, 204);
}

/* ---- analyze ----------------------------------------------------------------------- */

static const char analysis[] =
    "{\"summary\": \"A happy note.\", \"sentiment\": {\"label\": \"positive\", "
    "\"score\": 0.8}, \"keywords\": [\"holiday\", \"Lisbon\"], \"entities\": "
    "[{\"text\": \"Lisbon\", \"type\": \"location\", \"confidence\": 0.9}], "
    "\"language\": \"en\"}";

static void test_analyze(void **state)
{
    json_t *j, *body, *want, *s;
    const char *body_text;

    (void)state;
    push_text(analysis);
    j = ait_expect(&env, "POST", ANALYZE, crew[MEMBER]->access,
                   B("{s:s, s:s, s:s}", "text", "What a holiday in Lisbon!",
                     "model", "gpt-test", "team_id", team), 200);
    assert_string_equal(str(j, "summary"), "A happy note.");
    s = json_object_get(j, "sentiment");
    assert_string_equal(str(s, "label"), "positive");
    assert_true(json_real_value(json_object_get(s, "score")) == 0.8);
    want = J("[\"holiday\",\"Lisbon\"]");
    assert_true(json_equal(json_object_get(j, "keywords"), want));
    json_decref(want);
    /* only the fields of the schema: what else the model said is dropped */
    want = J("[{\"text\":\"Lisbon\",\"type\":\"location\"}]");
    assert_true(json_equal(json_object_get(j, "entities"), want));
    json_decref(want);
    assert_null(json_object_get(j, "language"));
    assert_string_equal(str(j, "model"), "gpt-test");
    assert_non_null(json_object_get(j, "usage"));
    json_decref(j);
    body = seen_body(0);
    assert_string_equal(str(json_object_get(body, "response_format"), "type"), "json_object");
    assert_non_null(strstr(msg(body, 0, "system"), "\"sentiment\""));
    assert_string_equal(msg(body, 1, "user"), "What a holiday in Lisbon!");
    json_decref(body);
    assert_int_equal(sql_long(P("SELECT count(*) FROM ai.usage WHERE kind = 'analyze'"
                                " AND team_id = '%s' AND user_id = '%s'", team,
                                crew[MEMBER]->id)), 1);

    /* a score out of range, then a good reply */
    push_text("{\"summary\": \"x\", \"sentiment\": {\"label\": \"happy\", \"score\": 3}, "
              "\"keywords\": [], \"entities\": []}");
    push_text(analysis);
    j = ait_expect(&env, "POST", ANALYZE, crew[OWNER]->access,
                   B("{s:s, s:s}", "text", "again", "model", "gpt-test"), 200);
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 2);
    json_decref(j);
    body = seen_body(2);
    assert_non_null(strstr(msg(body, 3, "user"), "/sentiment/score: expected number less "
                                                 "than or equal to 1"));
    assert_non_null(strstr(msg(body, 3, "user"), "/sentiment/label: expected one of"));
    json_decref(body);

    /* twice wrong: 502 with the errors */
    push_text("{\"summary\": \"x\"}");
    push_text("{\"summary\": \"x\"}");
    j = ait_expect(&env, "POST", ANALYZE, crew[OWNER]->access,
                   B("{s:s, s:s}", "text", "once more", "model", "gpt-test"), 502);
    assert_string_equal(str(j, "code"), "upstream_invalid_output");
    assert_true(has_line(json_object_get(j, "errors"),
                         "/: missing required property \"sentiment\""));
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 5);

    /* bad input: no call */
    plxt_llm_reset(env.llm);
    problem_says("POST", ANALYZE, crew[OWNER], "{\"model\":\"gpt-test\"}", 400,
                 "invalid_body", "field \"text\" is required");
    problem_says("POST", ANALYZE, crew[OWNER], "{\"text\":\"\",\"model\":\"gpt-test\"}", 400,
                 "invalid_body", "field \"text\"");
    problem_says("POST", ANALYZE, crew[OWNER], "{\"text\":7,\"model\":\"gpt-test\"}", 400,
                 "invalid_body", "field \"text\" must be a string");
    problem_says("POST", ANALYZE, crew[OWNER], "{\"text\":\"a\",\"mood\":1}", 400,
                 "invalid_body", "unknown field \"mood\"");
    problem_says("POST", ANALYZE, crew[OWNER], "{\"text\":\"a\"}", 400, "model_required",
                 "model");
    body_text = B("{s:s, s:s, s:s}", "text", "a", "model", "gpt-test", "team_id", team);
    refused("POST", ANALYZE, crew[OUTSIDER], body_text, 404, "not_found");
    refused("POST", ANALYZE, crew[VIEWER], body_text, 403, "forbidden");
    refused("POST", ANALYZE, crew[OWNER],
            B("{s:s, s:s, s:s}", "text", "a", "model", "gpt-test", "team_id", "x"),
            400, "invalid_body");
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

/* ---- translate ------------------------------------------------------------------------ */

static void test_translate(void **state)
{
    json_t *j, *body;

    (void)state;
    push_text("{\"translation\": \"Bonjour le monde\", \"source_language\": \"English\"}");
    j = ait_expect(&env, "POST", TRANSLATE, crew[OWNER]->access,
                   B("{s:s, s:s, s:s}", "text", "Hello world", "target_language", "French",
                     "model", "gpt-test"), 200);
    assert_string_equal(str(j, "translation"), "Bonjour le monde");
    assert_string_equal(str(j, "source_language"), "English");   /* detected */
    assert_string_equal(str(j, "target_language"), "French");
    json_decref(j);
    body = seen_body(0);
    assert_non_null(strstr(msg(body, 0, "system"), "into French"));
    assert_string_equal(msg(body, 1, "user"), "Hello world");
    json_decref(body);

    /* a source given is kept, and told to the model */
    push_text("{\"translation\": \"Hallo Welt\", \"source_language\": \"en\"}");
    j = ait_expect(&env, "POST", TRANSLATE, crew[MEMBER]->access,
                   B("{s:s, s:s, s:s, s:s, s:s}", "text", "Hello world",
                     "target_language", "German", "source_language", "English",
                     "model", "gpt-test", "team_id", team), 200);
    assert_string_equal(str(j, "translation"), "Hallo Welt");
    assert_string_equal(str(j, "source_language"), "English");
    assert_string_equal(str(j, "target_language"), "German");
    json_decref(j);
    body = seen_body(1);
    assert_non_null(strstr(msg(body, 0, "system"), "The text is in English."));
    json_decref(body);

    /* a reply without the translation, twice */
    push_text("{\"source_language\": \"English\"}");
    push_text("{\"translation\": 5, \"source_language\": \"English\"}");
    j = ait_expect(&env, "POST", TRANSLATE, crew[OWNER]->access,
                   B("{s:s, s:s, s:s}", "text", "Hi", "target_language", "Italian",
                     "model", "gpt-test"), 502);
    assert_true(has_line(json_object_get(j, "errors"),
                         "/translation: expected string, found integer"));
    json_decref(j);

    plxt_llm_reset(env.llm);
    problem_says("POST", TRANSLATE, crew[OWNER], "{\"text\":\"Hi\",\"model\":\"gpt-test\"}",
                 400, "invalid_body", "field \"target_language\" is required");
    problem_says("POST", TRANSLATE, crew[OWNER],
                 "{\"text\":\"Hi\",\"target_language\":\"a\\nb\",\"model\":\"gpt-test\"}",
                 400, "invalid_body", "field \"target_language\"");
    problem_says("POST", TRANSLATE, crew[OWNER],
                 B("{s:s, s:s, s:s}", "text", "Hi", "target_language",
                   "a language name far too long to be the name of any language at all, really",
                   "model", "gpt-test"),
                 400, "invalid_body", "1 to 64 characters");
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

/* ---- no provider at all ------------------------------------------------------------------ */

static void test_not_configured(void **state)
{
    ait_env_t bare;
    char t[37], id[37];
    json_t *j;

    (void)state;
    assert_int_equal(ait_start_bare(&bare), 0);
    ait_team_new(&bare, &bare.user, t);
    /* templates need no provider */
    j = ait_expect(&bare, "POST", TPL, bare.user.access,
                   B("{s:s, s:s, s:s}", "team_id", t, "name", "n", "body", "b"), 201);
    snprintf(id, sizeof id, "%s", str(j, "id"));
    json_decref(j);
    ait_expect_problem(&bare, "POST", GENERATE, bare.user.access,
                       B("{s:s, s:s}", "template_id", id, "model", "m"), 503,
                       "ai_not_configured");
    ait_expect_problem(&bare, "POST", ANALYZE, bare.user.access,
                       "{\"text\":\"a\",\"model\":\"m\"}", 503, "ai_not_configured");
    ait_expect_problem(&bare, "POST", TRANSLATE, bare.user.access,
                       "{\"text\":\"a\",\"target_language\":\"fr\",\"model\":\"m\"}", 503,
                       "ai_not_configured");
    assert_int_equal(ait_stop(&bare), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_template_crud, test_setup),
        cmocka_unit_test_setup(test_template_list, test_setup),
        cmocka_unit_test_setup(test_template_access, test_setup),
        cmocka_unit_test_setup(test_generate_text, test_setup),
        cmocka_unit_test_setup(test_generate_bad_input, test_setup),
        cmocka_unit_test_setup(test_generate_schema_valid, test_setup),
        cmocka_unit_test_setup(test_generate_schema_retry, test_setup),
        cmocka_unit_test_setup(test_generate_schema_fail, test_setup),
        cmocka_unit_test_setup(test_analyze, test_setup),
        cmocka_unit_test_setup(test_translate, test_setup),
        cmocka_unit_test_setup(test_not_configured, test_setup),
    };

    plxt_require_postgres("test_ai_tasks");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
