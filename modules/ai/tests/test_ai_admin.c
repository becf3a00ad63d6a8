/*
 * test_ai_admin.c - the ai module's admin and usage routes on a real
 * server: models and quotas CRUD with their validation, who may call
 * them, and the usage report against rows written straight into ai.usage
 * (so every figure is known in advance: by UTC day and model, team
 * filters, another team's usage, an admin's view of everyone)
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ai_client.h"

/* snprintf into an array, failing the test when it does not fit */
#define FMT(buf, ...)                                                        \
    do {                                                                     \
        int n_ = snprintf(buf, sizeof buf, __VA_ARGS__);                     \
        if (n_ < 0 || (size_t)n_ >= sizeof buf)                              \
            fail_msg("%s: %d bytes do not fit in %zu", #buf, n_, sizeof buf); \
    } while (0)

static ait_env_t env;
static ait_env_t *e = &env;

static int group_setup(void **state)
{
    return ait_start(e, NULL);
}

static int group_teardown(void **state)
{
    return ait_stop(e);
}

/* ---- helpers ---------------------------------------------------------------- */

/* a 400 problem with this code whose detail names "field" */
static void expect_field(const char *method, const char *path, const char *body,
                         const char *code, const char *field)
{
    plxt_resp_t resp;
    char quoted[80];

    ait_call(e, method, path, e->admin.access, body, &resp);
    json_t *j = plxt_resp_json(&resp);
    const char *c = json_string_value(json_object_get(j, "code"));
    const char *d = json_string_value(json_object_get(j, "detail"));
    FMT(quoted, "\"%s\"", field);
    if (resp.status != 400 || !plxt_resp_type_is(&resp, "application/problem+json")
        || !c || strcmp(c, code) != 0 || !d || !strstr(d, quoted))
        fail_msg("%s %s %s: expected 400 %s naming %s, found %ld: %.400s", method,
                 path, body, code, quoted, resp.status, resp.body ? resp.body : "");
    json_decref(j);
    plxt_resp_free(&resp);
}

static long status_of(const char *method, const char *path, const char *token,
                      const char *body)
{
    plxt_resp_t resp;
    long status;

    ait_call(e, method, path, token, body, &resp);
    status = resp.status;
    plxt_resp_free(&resp);
    return status;
}

static const char *str(json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));

    if (!v)
        fail_msg("expected a string \"%s\"", key);
    return v;
}

static long long num(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);

    if (!json_is_integer(v))
        fail_msg("expected an integer \"%s\"", key);
    return json_integer_value(v);
}

static double real(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);

    if (!json_is_number(v))
        fail_msg("expected a number \"%s\"", key);
    return json_number_value(v);
}

static long long sql_count(const char *q)
{
    char *v = ait_sql(e, q);
    long long n = v ? strtoll(v, NULL, 10) : -1;

    free(v);
    return n;
}

static void sql_exec(const char *q, int n, const char *const *params)
{
    plxt_db_exec(e->db, q, n, params);
}

/* ---- models ----------------------------------------------------------------- */

static void test_models_crud(void **state)
{
    const char *admin = e->admin.access;
    plxt_resp_t resp;
    char path[128], id[37];

    /* create: every field, the answer and its Location */
    ait_call(e, "POST", "/api/v1/admin/ai/models", admin,
             "{\"name\":\"crud-a\",\"kind\":\"chat\",\"provider\":\"fake\","
             "\"upstream\":\"up-a\",\"context_window\":32000,\"price_input\":0.15,"
             "\"price_output\":0.6,\"fallbacks\":[\"crud-b\",\"crud-c\"],"
             "\"enabled\":true}", &resp);
    assert_int_equal(resp.status, 201);
    /* prices come back exactly as given, not as binary floating point */
    assert_non_null(strstr(resp.body, "0.15"));
    assert_null(strstr(resp.body, "0.1499"));
    json_t *m = plxt_resp_json(&resp);
    FMT(id, "%s", str(m, "id"));
    FMT(path, "/api/v1/admin/ai/models/%s", id);
    assert_string_equal(plxt_resp_header(&resp, "Location"), path);
    plxt_resp_free(&resp);
    assert_string_equal(str(m, "name"), "crud-a");
    assert_string_equal(str(m, "kind"), "chat");
    assert_string_equal(str(m, "provider"), "fake");
    assert_string_equal(str(m, "upstream"), "up-a");
    assert_int_equal(num(m, "context_window"), 32000);
    assert_true(real(m, "price_input") == 0.15);
    assert_true(real(m, "price_output") == 0.6);
    assert_int_equal(json_array_size(json_object_get(m, "fallbacks")), 2);
    assert_string_equal(json_string_value(json_array_get(json_object_get(m, "fallbacks"), 1)),
                        "crud-c");
    assert_true(json_is_true(json_object_get(m, "enabled")));
    assert_true(json_is_true(json_object_get(m, "provider_configured")));
    str(m, "created_at");
    json_decref(m);

    /* the defaults, and a provider ai.conf does not know: accepted, flagged */
    m = ait_expect(e, "POST", "/api/v1/admin/ai/models", admin,
                   "{\"name\":\"crud-b\",\"provider\":\"nowhere\",\"upstream\":\"x/y:z\"}",
                   201);
    assert_string_equal(str(m, "kind"), "chat");
    assert_int_equal(num(m, "context_window"), 8192);
    assert_true(real(m, "price_input") == 0);
    assert_int_equal(json_array_size(json_object_get(m, "fallbacks")), 0);
    assert_true(json_is_true(json_object_get(m, "enabled")));
    assert_true(json_is_false(json_object_get(m, "provider_configured")));
    json_decref(m);

    /* read one, and the list by name */
    m = ait_expect(e, "GET", path, admin, NULL, 200);
    assert_string_equal(str(m, "name"), "crud-a");
    json_decref(m);
    m = ait_expect(e, "GET", "/api/v1/admin/ai/models", admin, NULL, 200);
    json_t *items = json_object_get(m, "items");
    size_t a = SIZE_MAX, b = SIZE_MAX;
    for (size_t i = 0; i < json_array_size(items); i++) {
        const char *name = str(json_array_get(items, i), "name");
        if (strcmp(name, "crud-a") == 0)
            a = i;
        if (strcmp(name, "crud-b") == 0)
            b = i;
    }
    assert_true(a != SIZE_MAX && b != SIZE_MAX && a < b);
    json_decref(m);

    /* a name in use: 409, by create or by rename */
    ait_expect_problem(e, "POST", "/api/v1/admin/ai/models", admin,
                       "{\"name\":\"crud-a\",\"provider\":\"fake\",\"upstream\":\"u\"}",
                       409, "model_exists");
    json_decref(ait_expect(e, "POST", "/api/v1/admin/ai/models", admin,
                           "{\"name\":\"crud-d\",\"provider\":\"fake\",\"upstream\":\"u\"}",
                           201));
    ait_expect_problem(e, "PATCH", path, admin, "{\"name\":\"crud-d\"}", 409,
                       "model_exists");

    /* change: only what is given */
    m = ait_expect(e, "PATCH", path, admin,
                   "{\"price_input\":1.25,\"fallbacks\":[\"crud-b\"],\"enabled\":false,"
                   "\"kind\":\"embedding\"}", 200);
    assert_true(real(m, "price_input") == 1.25);
    assert_true(real(m, "price_output") == 0.6);
    assert_string_equal(str(m, "kind"), "embedding");
    assert_string_equal(str(m, "upstream"), "up-a");
    assert_int_equal(json_array_size(json_object_get(m, "fallbacks")), 1);
    assert_true(json_is_false(json_object_get(m, "enabled")));
    json_decref(m);
    m = ait_expect(e, "GET", path, admin, NULL, 200);
    assert_true(real(m, "price_input") == 1.25);
    json_decref(m);

    /* a model is never its own fallback: by its fallbacks or by a rename */
    expect_field("PATCH", path, "{\"fallbacks\":[\"crud-a\"]}", "invalid_field", "fallbacks");
    expect_field("PATCH", path, "{\"name\":\"crud-b\",\"fallbacks\":[\"crud-b\"]}",
                 "invalid_field", "fallbacks");
    expect_field("PATCH", path, "{\"name\":\"crud-b\"}", "invalid_field", "name");
    expect_field("POST", "/api/v1/admin/ai/models",
                 "{\"name\":\"crud-self\",\"provider\":\"fake\",\"upstream\":\"u\","
                 "\"fallbacks\":[\"crud-self\"]}", "invalid_field", "fallbacks");

    /* ids that name nothing */
    ait_expect_problem(e, "GET", "/api/v1/admin/ai/models/not-a-uuid", admin, NULL, 404,
                       "not_found");
    ait_expect_problem(e, "PATCH", "/api/v1/admin/ai/models/00000000-0000-4000-8000-000000000000",
                       admin, "{\"enabled\":true}", 404, "not_found");

    /* delete: 204, then gone */
    json_decref(ait_expect(e, "DELETE", path, admin, NULL, 204));
    ait_expect_problem(e, "GET", path, admin, NULL, 404, "not_found");
    ait_expect_problem(e, "DELETE", path, admin, NULL, 404, "not_found");

    /* audited */
    assert_int_equal(sql_count("SELECT count(*) FROM plexus.audit_log WHERE action ="
                               " 'ai.model_created' AND details->>'name' = 'crud-a'"), 1);
    char q[256];
    FMT(q, "SELECT count(*) FROM plexus.audit_log WHERE target_id = '%s'"
             " AND action IN ('ai.model_updated', 'ai.model_deleted')", id);
    assert_int_equal(sql_count(q), 2);
}

static void test_models_validation(void **state)
{
    static const char models[] = "/api/v1/admin/ai/models";
    static const struct {
        const char *body, *code, *field;
    } cases[] = {
        { "{}", "missing_field", "name" },
        { "{\"provider\":\"fake\",\"upstream\":\"u\"}", "missing_field", "name" },
        { "{\"name\":\"v\",\"upstream\":\"u\"}", "missing_field", "provider" },
        { "{\"name\":\"v\",\"provider\":\"fake\"}", "missing_field", "upstream" },
        { "{\"name\":\"\",\"provider\":\"fake\",\"upstream\":\"u\"}", "invalid_field", "name" },
        { "{\"name\":\"-v\",\"provider\":\"fake\",\"upstream\":\"u\"}", "invalid_field", "name" },
        { "{\"name\":\"a b\",\"provider\":\"fake\",\"upstream\":\"u\"}", "invalid_field", "name" },
        { "{\"name\":5,\"provider\":\"fake\",\"upstream\":\"u\"}", "invalid_field", "name" },
        { "{\"name\":null,\"provider\":\"fake\",\"upstream\":\"u\"}", "invalid_field", "name" },
        { "{\"name\":\"v\",\"kind\":\"image\",\"provider\":\"fake\",\"upstream\":\"u\"}",
          "invalid_field", "kind" },
        { "{\"name\":\"v\",\"provider\":\"\",\"upstream\":\"u\"}", "invalid_field", "provider" },
        { "{\"name\":\"v\",\"provider\":\"a b\",\"upstream\":\"u\"}", "invalid_field", "provider" },
        { "{\"name\":\"v\",\"provider\":3,\"upstream\":\"u\"}", "invalid_field", "provider" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"\"}", "invalid_field", "upstream" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"context_window\":0}",
          "invalid_field", "context_window" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"context_window\":1.5}",
          "invalid_field", "context_window" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"context_window\":\"8\"}",
          "invalid_field", "context_window" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\","
          "\"context_window\":2147483648}", "invalid_field", "context_window" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"price_input\":-1}",
          "invalid_field", "price_input" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"price_input\":\"1\"}",
          "invalid_field", "price_input" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"price_input\":1e10}",
          "invalid_field", "price_input" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"price_output\":-0.5}",
          "invalid_field", "price_output" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"fallbacks\":\"w\"}",
          "invalid_field", "fallbacks" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"fallbacks\":[1]}",
          "invalid_field", "fallbacks" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"fallbacks\":[\"a b\"]}",
          "invalid_field", "fallbacks" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\","
          "\"fallbacks\":[\"w\",\"w\"]}", "invalid_field", "fallbacks" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"enabled\":\"yes\"}",
          "invalid_field", "enabled" },
        { "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\",\"temperature\":1}",
          "unknown_field", "temperature" },
    };
    char big[600];

    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        expect_field("POST", models, cases[i].body, cases[i].code, cases[i].field);

    /* bounds: 128 characters of name, 64 of provider, 200 of upstream, 16
     * fallbacks */
    FMT(big, "{\"name\":\"%0129d\",\"provider\":\"fake\",\"upstream\":\"u\"}", 0);
    expect_field("POST", models, big, "invalid_field", "name");
    FMT(big, "{\"name\":\"v\",\"provider\":\"p%064d\",\"upstream\":\"u\"}", 0);
    expect_field("POST", models, big, "invalid_field", "provider");
    FMT(big, "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"%0201d\"}", 0);
    expect_field("POST", models, big, "invalid_field", "upstream");
    expect_field("POST", models, "{\"name\":\"v\",\"provider\":\"fake\",\"upstream\":\"u\","
                 "\"fallbacks\":[\"a1\",\"a2\",\"a3\",\"a4\",\"a5\",\"a6\",\"a7\",\"a8\","
                 "\"a9\",\"b1\",\"b2\",\"b3\",\"b4\",\"b5\",\"b6\",\"b7\",\"b8\"]}",
                 "invalid_field", "fallbacks");
    /* ...which are allowed */
    FMT(big, "{\"name\":\"m%0127d\",\"provider\":\"p%063d\","
             "\"upstream\":\"u%0199d\"}", 0, 0, 0);
    json_decref(ait_expect(e, "POST", models, e->admin.access, big, 201));

    ait_expect_problem(e, "POST", models, e->admin.access, "[1]", 400, "invalid_body");
    assert_int_equal(sql_count("SELECT count(*) FROM ai.models WHERE name = 'v'"), 0);

    /* a patch: the same checks, and something to change */
    json_t *m = ait_expect(e, "POST", models, e->admin.access,
                           "{\"name\":\"valid-p\",\"provider\":\"fake\",\"upstream\":\"u\"}",
                           201);
    char path[128];
    FMT(path, "%s/%s", models, str(m, "id"));
    json_decref(m);
    ait_expect_problem(e, "PATCH", path, e->admin.access, "{}", 400, "invalid_body");
    expect_field("PATCH", path, "{\"kind\":\"x\"}", "invalid_field", "kind");
    expect_field("PATCH", path, "{\"upstream\":null}", "invalid_field", "upstream");
    expect_field("PATCH", path, "{\"price_output\":-2}", "invalid_field", "price_output");
    expect_field("PATCH", path, "{\"owner\":\"me\"}", "unknown_field", "owner");
}

/* ---- who may ------------------------------------------------------------------ */

static void test_admin_only(void **state)
{
    static const char *const paths[] = {
        "/api/v1/admin/ai/models", "/api/v1/admin/ai/quotas",
        "/api/v1/admin/ai/models/00000000-0000-4000-8000-000000000000",
        "/api/v1/admin/ai/quotas/00000000-0000-4000-8000-000000000000",
    };
    static const char model[] = "{\"name\":\"sneaky\",\"provider\":\"fake\",\"upstream\":\"u\"}";

    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(status_of("GET", paths[i], e->user.access, NULL), 403);
        assert_int_equal(status_of("GET", paths[i], NULL, NULL), 401);
        assert_int_equal(status_of(i < 2 ? "POST" : "PATCH", paths[i], e->user.access,
                                   i % 2 ? "{\"max_tokens\":1}" : model), 403);
        assert_int_equal(status_of(i < 2 ? "POST" : "PATCH", paths[i], NULL,
                                   i % 2 ? "{\"max_tokens\":1}" : model), 401);
    }
    assert_int_equal(status_of("DELETE", paths[2], e->user.access, NULL), 403);
    assert_int_equal(status_of("DELETE", paths[3], NULL, NULL), 401);
    assert_int_equal(sql_count("SELECT count(*) FROM ai.models WHERE name = 'sneaky'"), 0);
    /* the usage routes want someone signed in */
    assert_int_equal(status_of("GET", "/api/v1/ai/usage", NULL, NULL), 401);
    assert_int_equal(status_of("GET", "/api/v1/ai/quota", NULL, NULL), 401);
}

/* ---- quotas ------------------------------------------------------------------- */

static json_t *quota_post(const char *type, const char *subject, const char *period,
                          const char *limits)
{
    char body[512];

    FMT(body, "{\"subject_type\":\"%s\",\"subject_id\":\"%s\","
             "\"period\":\"%s\"%s%s}", type, subject, period, limits ? "," : "",
             limits ? limits : "");
    return ait_expect(e, "POST", "/api/v1/admin/ai/quotas", e->admin.access, body, 201);
}

/* tmpl with each '@' replaced by id */
static void fill(char *out, size_t len, const char *tmpl, const char *id)
{
    size_t o = 0, n = strlen(id);

    for (; *tmpl && o + n + 1 < len; tmpl++) {
        if (*tmpl == '@') {
            memcpy(out + o, id, n);
            o += n;
        } else {
            out[o++] = *tmpl;
        }
    }
    out[o] = '\0';
}

static json_t *find_by(json_t *items, const char *key, const char *value)
{
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *it = json_array_get(items, i);
        const char *v = json_string_value(json_object_get(it, key));
        if (v && strcmp(v, value) == 0)
            return it;
    }
    return NULL;
}

static void test_quotas(void **state)
{
    static const char quotas[] = "/api/v1/admin/ai/quotas";
    const char *admin = e->admin.access;
    plxt_user_t other;
    char team[37], uq[37], tq[37], path[128], body[512], *today;
    json_t *q;

    plxt_user_new(e->srv, e->db, &other);
    ait_team_new(e, &e->user, team);
    today = ait_sql(e, "SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')");

    /* a user's daily token quota */
    q = quota_post("user", e->user.id, "day", "\"max_tokens\":1000");
    FMT(uq, "%s", str(q, "id"));
    assert_string_equal(str(q, "subject_type"), "user");
    assert_string_equal(str(q, "subject_id"), e->user.id);
    assert_string_equal(str(q, "period"), "day");
    assert_int_equal(num(q, "max_tokens"), 1000);
    assert_true(json_is_null(json_object_get(q, "max_cost")));
    assert_string_equal(str(q, "period_start"), today);
    assert_int_equal(num(q, "used_tokens"), 0);
    assert_int_equal(num(q, "remaining_tokens"), 1000);
    assert_true(json_is_null(json_object_get(q, "remaining_cost")));
    json_decref(q);

    /* a team's monthly cost quota */
    q = quota_post("team", team, "month", "\"max_cost\":2.5");
    FMT(tq, "%s", str(q, "id"));
    assert_true(real(q, "max_cost") == 2.5);
    assert_true(json_is_null(json_object_get(q, "max_tokens")));
    char *month = ait_sql(e, "SELECT to_char(date_trunc('month', now() AT TIME ZONE 'UTC'),"
                             " 'YYYY-MM-DD')");
    assert_string_equal(str(q, "period_start"), month);
    free(month);
    json_decref(q);

    /* one per subject and period */
    FMT(body, "{\"subject_type\":\"user\",\"subject_id\":\"%s\","
             "\"period\":\"day\",\"max_tokens\":5}", e->user.id);
    ait_expect_problem(e, "POST", quotas, admin, body, 409, "quota_exists");
    /* but a monthly one as well is fine */
    json_decref(quota_post("user", e->user.id, "month", "\"max_tokens\":20000,\"max_cost\":3"));

    /* validation, per field */
    FMT(body, "{\"subject_type\":\"user\",\"subject_id\":\"%s\","
             "\"period\":\"day\",\"max_tokens\":1}", team);
    expect_field("POST", quotas, body, "invalid_field", "subject_id");   /* no such user */
    FMT(body, "{\"subject_type\":\"team\",\"subject_id\":\"%s\","
             "\"period\":\"day\",\"max_tokens\":1}", e->user.id);
    expect_field("POST", quotas, body, "invalid_field", "subject_id");   /* no such team */
    static const struct {
        const char *body, *code, *field;
    } cases[] = {
        { "{\"subject_type\":\"group\",\"subject_id\":\"@\",\"period\":\"day\","
          "\"max_tokens\":1}", "invalid_field", "subject_type" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"x\",\"period\":\"day\","
          "\"max_tokens\":1}", "invalid_field", "subject_id" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"period\":\"week\","
          "\"max_tokens\":1}", "invalid_field", "period" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"period\":\"day\","
          "\"max_tokens\":-1}", "invalid_field", "max_tokens" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"period\":\"day\","
          "\"max_tokens\":1.5}", "invalid_field", "max_tokens" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"period\":\"day\","
          "\"max_cost\":-1}", "invalid_field", "max_cost" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"period\":\"day\","
          "\"max_cost\":\"1\"}", "invalid_field", "max_cost" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"period\":\"day\"}",
          "missing_field", "max_tokens" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"period\":\"day\","
          "\"max_tokens\":null,\"max_cost\":null}", "missing_field", "max_tokens" },
        { "{\"subject_id\":\"@\",\"period\":\"day\",\"max_tokens\":1}",
          "missing_field", "subject_type" },
        { "{\"subject_type\":\"user\",\"period\":\"day\",\"max_tokens\":1}",
          "missing_field", "subject_id" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"max_tokens\":1}",
          "missing_field", "period" },
        { "{\"subject_type\":\"user\",\"subject_id\":\"@\",\"period\":\"day\","
          "\"max_tokens\":1,\"model\":\"x\"}", "unknown_field", "model" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        fill(body, sizeof body, cases[i].body, other.id);
        expect_field("POST", quotas, body, cases[i].code, cases[i].field);
    }
    FMT(body, "SELECT count(*) FROM ai.quotas WHERE subject_id = '%s'",
             other.id);
    assert_int_equal(sql_count(body), 0);

    /* what the counters hold shows, for the current period only */
    const char *p[] = { uq };
    sql_exec("INSERT INTO ai.quota_counters (quota_id, period_start, used_tokens,"
             " reserved_tokens) VALUES ($1, (now() AT TIME ZONE 'UTC')::date, 300, 50),"
             " ($1, (now() AT TIME ZONE 'UTC')::date - 1, 900, 0)", 1, p);
    FMT(path, "%s/%s", quotas, uq);
    q = ait_expect(e, "GET", path, admin, NULL, 200);
    assert_int_equal(num(q, "used_tokens"), 300);
    assert_int_equal(num(q, "reserved_tokens"), 50);
    assert_int_equal(num(q, "remaining_tokens"), 650);
    json_decref(q);

    /* patch: the limits only */
    q = ait_expect(e, "PATCH", path, admin, "{\"max_tokens\":2000}", 200);
    assert_int_equal(num(q, "max_tokens"), 2000);
    assert_int_equal(num(q, "remaining_tokens"), 1650);
    json_decref(q);
    q = ait_expect(e, "PATCH", path, admin, "{\"max_cost\":1.25,\"max_tokens\":null}", 200);
    assert_true(json_is_null(json_object_get(q, "max_tokens")));
    assert_true(real(q, "max_cost") == 1.25);
    assert_true(json_is_null(json_object_get(q, "remaining_tokens")));
    assert_true(real(q, "remaining_cost") == 1.25);
    json_decref(q);
    ait_expect_problem(e, "PATCH", path, admin, "{\"max_cost\":null}", 400, "invalid_body");
    ait_expect_problem(e, "PATCH", path, admin, "{}", 400, "invalid_body");
    expect_field("PATCH", path, "{\"period\":\"month\"}", "invalid_field", "period");
    expect_field("PATCH", path, "{\"subject_id\":\"x\"}", "invalid_field", "subject_id");
    expect_field("PATCH", path, "{\"max_tokens\":-5}", "invalid_field", "max_tokens");
    ait_expect_problem(e, "PATCH", "/api/v1/admin/ai/quotas/00000000-0000-4000-8000-000000000000",
                       admin, "{\"max_tokens\":5}", 404, "not_found");

    /* the list, filtered and paged */
    q = ait_expect(e, "GET", "/api/v1/admin/ai/quotas?subject_type=team", admin, NULL, 200);
    json_t *items = json_object_get(q, "items");
    assert_non_null(find_by(items, "id", tq));
    assert_null(find_by(items, "id", uq));
    json_decref(q);
    FMT(body, "/api/v1/admin/ai/quotas?subject_id=%s&limit=1", e->user.id);
    q = ait_expect(e, "GET", body, admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(q, "items")), 1);
    const char *first = str(json_array_get(json_object_get(q, "items"), 0), "id");
    char cursor[256], first_id[37];
    FMT(cursor, "%s", str(q, "next_cursor"));
    FMT(first_id, "%s", first);
    assert_string_not_equal(first_id, cursor);  /* opaque, not the id */
    json_decref(q);
    FMT(body, "/api/v1/admin/ai/quotas?subject_id=%s&limit=1&cursor=%s",
             e->user.id, cursor);
    q = ait_expect(e, "GET", body, admin, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(q, "items")), 1);
    assert_string_not_equal(str(json_array_get(json_object_get(q, "items"), 0), "id"), cursor);
    assert_true(json_is_null(json_object_get(q, "next_cursor")));
    json_decref(q);
    ait_expect_problem(e, "GET", "/api/v1/admin/ai/quotas?limit=0", admin, NULL, 400,
                       "invalid_limit");
    /* a bare id, another list's cursor, base64url of garbage */
    FMT(body, "/api/v1/admin/ai/quotas?cursor=%s", first_id);
    ait_expect_problem(e, "GET", body, admin, NULL, 400, "invalid_cursor");
    ait_expect_problem(e, "GET", "/api/v1/admin/ai/quotas?cursor=Y29udmVyc2F0aW9uc3x8M"
                       "DAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw", admin, NULL,
                       400, "invalid_cursor");
    ait_expect_problem(e, "GET", "/api/v1/admin/ai/quotas?cursor=Z2FyYmFnZQ", admin,
                       NULL, 400, "invalid_cursor");
    ait_expect_problem(e, "GET", "/api/v1/admin/ai/quotas?period=week", admin, NULL, 400,
                       "invalid_query");

    /* my quotas: mine and my teams'; someone else has none */
    q = ait_expect(e, "GET", "/api/v1/ai/quota", e->user.access, NULL, 200);
    items = json_object_get(q, "items");
    assert_int_equal(json_array_size(items), 3);
    assert_non_null(find_by(items, "id", uq));
    assert_non_null(find_by(items, "id", tq));
    assert_string_equal(str(json_array_get(items, 0), "subject_type"), "user");
    json_decref(q);
    q = ait_expect(e, "GET", "/api/v1/ai/quota", other.access, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(q, "items")), 0);
    json_decref(q);

    /* delete: 204, gone with its counters, audited */
    json_decref(ait_expect(e, "DELETE", path, admin, NULL, 204));
    ait_expect_problem(e, "GET", path, admin, NULL, 404, "not_found");
    FMT(body, "SELECT count(*) FROM ai.quota_counters WHERE quota_id = '%s'",
             uq);
    assert_int_equal(sql_count(body), 0);
    FMT(body, "SELECT count(*) FROM plexus.audit_log WHERE target_id = '%s'"
             " AND action IN ('ai.quota_created', 'ai.quota_updated', 'ai.quota_deleted')", uq);
    assert_int_equal(sql_count(body), 4);
    free(today);
}

/* ---- usage -------------------------------------------------------------------- */

static plxt_user_t mate;           /* a member of the user's team */
static char team_t[37], team_m[37]; /* the user's team; mate's own team */

/* one usage row: at, user, team (NULL: none), model, tokens, cost,
 * estimated, status */
static void usage_row(const char *at, const char *user, const char *team,
                      const char *model, const char *prompt, const char *completion,
                      const char *cost, const char *estimated, const char *status)
{
    const char *p[] = { at, user, team, model, prompt, completion, cost, estimated,
                        status };
    sql_exec("INSERT INTO ai.usage (created_at, user_id, team_id, kind, model,"
             " served_model, provider, prompt_tokens, completion_tokens, cost,"
             " estimated, status) VALUES ($1, $2, $3, 'chat', $4, $4, 'fake', $5, $6,"
             " $7, $8, $9)", 9, p);
}

static int usage_setup(void **state)
{
    char body[512];

    plxt_user_new(e->srv, e->db, &mate);
    ait_team_new(e, &e->user, team_t);
    ait_team_new(e, &mate, team_m);
    FMT(body, "{\"email\":\"%s\",\"role\":\"member\"}", mate.email);
    char path[128];
    FMT(path, "/api/v1/teams/%s/members", team_t);
    json_decref(ait_expect(e, "POST", path, e->user.access, body, 201));

    const char *u = e->user.id, *m = mate.id;
    /* the user, 2025-03-01 and 02 (UTC), some charged to the team */
    usage_row("2025-03-01 10:00:00+00", u, team_t, "alpha", "100", "50", "0.001", "f", "ok");
    usage_row("2025-03-01 23:30:00+00", u, NULL, "alpha", "10", "5", "0.0001", "t", "error");
    usage_row("2025-03-01 12:00:00+00", u, team_t, "beta", "7", "3", "0.5", "f", "incomplete");
    usage_row("2025-03-01 00:00:00+00", u, NULL, "alpha", "1", "1", "0", "f", "cancelled");
    /* late on the 2nd in UTC, though already the 3rd east of Greenwich */
    usage_row("2025-03-02 23:59:59.999+00", u, team_t, "alpha", "20", "30", "0.25", "f", "ok");
    /* just outside the range, on both sides */
    usage_row("2025-03-03 00:00:00+00", u, team_t, "alpha", "1000", "1000", "1", "f", "ok");
    usage_row("2025-02-28 23:59:59+00", u, NULL, "alpha", "1000", "1000", "1", "f", "ok");
    /* the teammate: once for the team, once for their own team */
    usage_row("2025-03-01 15:00:00+00", m, team_t, "alpha", "40", "60", "0.04", "f", "ok");
    usage_row("2025-03-02 09:00:00+00", m, team_m, "gamma", "5", "5", "0.005", "f", "ok");
    return 0;
}

static void row_is(json_t *rows, size_t i, const char *day, const char *model,
                   long long requests, long long prompt, long long completion,
                   double cost, long long estimated, long long errors)
{
    json_t *r = json_array_get(rows, i);

    if (!r)
        fail_msg("no row %zu", i);
    assert_string_equal(str(r, "day"), day);
    assert_string_equal(str(r, "model"), model);
    assert_int_equal(num(r, "requests"), requests);
    assert_int_equal(num(r, "prompt_tokens"), prompt);
    assert_int_equal(num(r, "completion_tokens"), completion);
    assert_true(fabs(real(r, "cost") - cost) < 1e-12);
    assert_int_equal(num(r, "estimated_requests"), estimated);
    assert_int_equal(num(r, "errors"), errors);
}

static void totals_are(json_t *report, long long requests, long long prompt,
                       long long completion, double cost, long long estimated,
                       long long errors)
{
    json_t *t = json_object_get(report, "totals");

    assert_int_equal(num(t, "requests"), requests);
    assert_int_equal(num(t, "prompt_tokens"), prompt);
    assert_int_equal(num(t, "completion_tokens"), completion);
    assert_true(fabs(real(t, "cost") - cost) < 1e-12);
    assert_int_equal(num(t, "estimated_requests"), estimated);
    assert_int_equal(num(t, "errors"), errors);
}

static json_t *usage(const char *token, const char *query, long status)
{
    char path[512];

    FMT(path, "/api/v1/ai/usage?from=2025-03-01&to=2025-03-02%s",
             query ? query : "");
    return ait_expect(e, "GET", path, token, NULL, status);
}

static void test_usage_mine(void **state)
{
    json_t *r = usage(e->user.access, NULL, 200);
    json_t *rows = json_object_get(r, "rows");

    assert_string_equal(str(r, "from"), "2025-03-01");
    assert_string_equal(str(r, "to"), "2025-03-02");
    assert_string_equal(str(r, "scope"), "me");
    assert_int_equal(json_array_size(rows), 3);
    row_is(rows, 0, "2025-03-01", "alpha", 3, 111, 56, 0.0011, 1, 1);
    row_is(rows, 1, "2025-03-01", "beta", 1, 7, 3, 0.5, 0, 1);
    row_is(rows, 2, "2025-03-02", "alpha", 1, 20, 30, 0.25, 0, 0);
    totals_are(r, 5, 138, 89, 0.7511, 1, 2);
    json_decref(r);

    /* naming oneself is the same report */
    char q[128];
    FMT(q, "&user_id=%s", e->user.id);
    r = usage(e->user.access, q, 200);
    totals_are(r, 5, 138, 89, 0.7511, 1, 2);
    json_decref(r);

    /* one model */
    r = usage(e->user.access, "&model=beta", 200);
    rows = json_object_get(r, "rows");
    assert_int_equal(json_array_size(rows), 1);
    row_is(rows, 0, "2025-03-01", "beta", 1, 7, 3, 0.5, 0, 1);
    json_decref(r);

    /* one day */
    r = ait_expect(e, "GET", "/api/v1/ai/usage?from=2025-03-02&to=2025-03-02",
                   e->user.access, NULL, 200);
    totals_are(r, 1, 20, 30, 0.25, 0, 0);
    json_decref(r);

    /* nothing in range: empty rows, zero totals */
    r = ait_expect(e, "GET", "/api/v1/ai/usage?from=2024-01-01&to=2024-01-31",
                   e->user.access, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(r, "rows")), 0);
    totals_are(r, 0, 0, 0, 0, 0, 0);
    json_decref(r);
}

static void test_usage_team(void **state)
{
    char q[128];

    /* the team's usage, whoever made it: the user's and the teammate's */
    FMT(q, "&team_id=%s", team_t);
    json_t *r = usage(e->user.access, q, 200);
    json_t *rows = json_object_get(r, "rows");
    assert_string_equal(str(r, "scope"), "team");
    assert_string_equal(str(r, "team_id"), team_t);
    assert_int_equal(json_array_size(rows), 3);
    row_is(rows, 0, "2025-03-01", "alpha", 2, 140, 110, 0.041, 0, 0);
    row_is(rows, 1, "2025-03-01", "beta", 1, 7, 3, 0.5, 0, 1);
    row_is(rows, 2, "2025-03-02", "alpha", 1, 20, 30, 0.25, 0, 0);
    totals_are(r, 4, 167, 143, 0.791, 0, 1);
    json_decref(r);
    /* the teammate, a plain member, sees the same */
    r = usage(mate.access, q, 200);
    totals_are(r, 4, 167, 143, 0.791, 0, 1);
    json_decref(r);

    /* a team one is not in, or that does not exist: 404 */
    FMT(q, "&team_id=%s", team_m);
    json_decref(usage(e->user.access, q, 404));
    json_decref(usage(e->user.access, "&team_id=00000000-0000-4000-8000-000000000000", 404));
    ait_expect_problem(e, "GET", "/api/v1/ai/usage?team_id=not-a-team", e->user.access,
                       NULL, 400, "invalid_query");
}

static void test_usage_admin(void **state)
{
    char q[128];

    /* someone else's, or everyone's: admins only */
    FMT(q, "&user_id=%s", mate.id);
    json_decref(usage(e->user.access, q, 403));
    json_decref(usage(e->user.access, "&scope=all", 403));

    json_t *r = usage(e->admin.access, "&scope=all", 200);
    json_t *rows = json_object_get(r, "rows");
    assert_string_equal(str(r, "scope"), "all");
    assert_int_equal(json_array_size(rows), 4);
    row_is(rows, 0, "2025-03-01", "alpha", 4, 151, 116, 0.0411, 1, 1);
    row_is(rows, 1, "2025-03-01", "beta", 1, 7, 3, 0.5, 0, 1);
    row_is(rows, 2, "2025-03-02", "alpha", 1, 20, 30, 0.25, 0, 0);
    row_is(rows, 3, "2025-03-02", "gamma", 1, 5, 5, 0.005, 0, 0);
    json_decref(r);

    r = usage(e->admin.access, q, 200);
    rows = json_object_get(r, "rows");
    assert_string_equal(str(r, "scope"), "user");
    assert_int_equal(json_array_size(rows), 2);
    row_is(rows, 0, "2025-03-01", "alpha", 1, 40, 60, 0.04, 0, 0);
    row_is(rows, 1, "2025-03-02", "gamma", 1, 5, 5, 0.005, 0, 0);
    json_decref(r);

    /* an admin needs no membership to read a team's usage */
    FMT(q, "&team_id=%s", team_m);
    r = usage(e->admin.access, q, 200);
    totals_are(r, 1, 5, 5, 0.005, 0, 0);
    json_decref(r);
    /* the admin's own usage: none */
    r = usage(e->admin.access, NULL, 200);
    totals_are(r, 0, 0, 0, 0, 0, 0);
    json_decref(r);
}

static void test_usage_range(void **state)
{
    const char *tok = e->user.access;
    const char *p[] = { e->user.id };

    /* by default, the last 30 days up to today (UTC) */
    sql_exec("INSERT INTO ai.usage (user_id, kind, model, prompt_tokens, status)"
             " VALUES ($1, 'chat', 'today-model', 9, 'ok')", 1, p);
    sql_exec("INSERT INTO ai.usage (created_at, user_id, kind, model, prompt_tokens, status)"
             " VALUES (now() - interval '40 days', $1, 'chat', 'old-model', 9, 'ok')", 1, p);
    char *today = ait_sql(e, "SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD')");
    char *from = ait_sql(e, "SELECT to_char((now() AT TIME ZONE 'UTC')::date - 29, 'YYYY-MM-DD')");
    json_t *r = ait_expect(e, "GET", "/api/v1/ai/usage", tok, NULL, 200);
    json_t *rows = json_object_get(r, "rows");
    assert_string_equal(str(r, "to"), today);
    assert_string_equal(str(r, "from"), from);
    assert_int_equal(json_array_size(rows), 1);
    row_is(rows, 0, today, "today-model", 1, 9, 0, 0, 0, 0);
    json_decref(r);
    free(today);
    free(from);

    /* from alone: 30 days from it */
    r = ait_expect(e, "GET", "/api/v1/ai/usage?from=2025-02-27", tok, NULL, 200);
    assert_string_equal(str(r, "to"), "2025-03-28");
    totals_are(r, 7, 2138, 2089, 2.7511, 1, 2);
    json_decref(r);

    static const char *const bad[] = {
        "from=2025-02-30", "to=2025-13-01", "from=yesterday", "to=2025-3-1",
        "from=2025-03-02&to=2025-03-01", "from=2024-01-01&to=2025-01-01",
        "scope=everyone", "user_id=12", "team_id=", "model=",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char path[128];
        FMT(path, "/api/v1/ai/usage?%s", bad[i]);
        ait_expect_problem(e, "GET", path, tok, NULL, 400, "invalid_query");
    }
    /* 366 days is the most */
    json_decref(ait_expect(e, "GET", "/api/v1/ai/usage?from=2024-01-01&to=2024-12-31", tok,
                           NULL, 200));
}

/* an API key with the "ai" scope reads its user's usage */
static void test_usage_api_key(void **state)
{
    char key[256];

    ait_api_key(e, &e->user, "[\"ai\"]", key, sizeof key);
    json_t *r = usage(key, NULL, 200);
    totals_are(r, 5, 138, 89, 0.7511, 1, 2);
    json_decref(r);
    ait_api_key(e, &e->user, "[\"projects:read\"]", key, sizeof key);
    json_decref(usage(key, NULL, 403));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_models_crud),
        cmocka_unit_test(test_models_validation),
        cmocka_unit_test(test_admin_only),
        cmocka_unit_test(test_quotas),
        cmocka_unit_test_setup(test_usage_mine, usage_setup),
        cmocka_unit_test(test_usage_team),
        cmocka_unit_test(test_usage_admin),
        cmocka_unit_test(test_usage_range),
        cmocka_unit_test(test_usage_api_key),
    };

    plxt_require_postgres("test_ai_admin");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
