/*
 * test_ai_quota.c - quotas hold under concurrency: many parallel chat
 * calls against a user's token quota, a team's token quota and a user's
 * cost quota, each call held in flight by a slow first token so that
 * every reservation is taken before any is settled
 *
 * A call reserves its estimated maximum: 4 tokens per message plus one
 * per 4 bytes of content (ai_estimate_messages), plus max_tokens, at the
 * model's prices. A quota of k and a half such calls lets exactly k
 * through, whatever the order the server takes them in; the rest get 429
 * quota_exceeded with a message and Retry-After. Once the calls are over,
 * nothing is reserved any more and what a quota used is the sum of the
 * usage rows (what the provider reported, not the reservation). The same
 * holds with the calls spread over two instances on one database.
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

#include "ai_client.h"

#define MAX_TOKENS  100
#define FIRST_MS    2000
#define PRICE_IN    1000.0     /* per million tokens: 0.001 a token */
#define PRICE_OUT   2000.0

static ait_env_t env;

static const char message[] = "[[fake first_ms=2000 tokens=3]] how much?";

/* the reservation of one call: ai_estimate_messages + max_tokens */
static long call_tokens(void)
{
    return 4 + ((long)strlen(message) + 3) / 4 + MAX_TOKENS;
}

static double call_cost(void)
{
    long prompt = 4 + ((long)strlen(message) + 3) / 4;

    return (prompt * PRICE_IN + MAX_TOKENS * PRICE_OUT) / 1e6;
}

/* ---- parallel calls ------------------------------------------------------------ */

typedef struct call {
    pthread_t   thread;
    /* url: the server's, or every other call the second instance's */
    const char *url;
    const char *token;
    char        body[512];
    long        status;
    char        code[64];
    char        retry_after[32];
    bool        has_message;
} call_t;

static pthread_mutex_t done_mu = PTHREAD_MUTEX_INITIALIZER;
static int done_count;

/* no cmocka here: results are checked on the main thread */
static void *call_main(void *arg)
{
    call_t *c = arg;
    char auth[4200];
    const char *headers[] = { plxt_bearer(c->token, auth, sizeof auth),
                              "Content-Type: application/json", NULL };
    plxt_resp_t resp;

    if (plxt_http("POST", c->url, headers, c->body, &resp) == 0) {
        json_t *j = plxt_resp_json(&resp);
        const char *ra = plxt_resp_header(&resp, "Retry-After");
        c->status = resp.status;
        snprintf(c->code, sizeof c->code, "%s",
                 json_string_value(json_object_get(j, "code"))
                 ? json_string_value(json_object_get(j, "code")) : "");
        snprintf(c->retry_after, sizeof c->retry_after, "%s", ra ? ra : "");
        c->has_message = json_string_length(json_object_get(j, "message")) > 0;
        json_decref(j);
    }
    plxt_resp_free(&resp);
    pthread_mutex_lock(&done_mu);
    done_count++;
    pthread_mutex_unlock(&done_mu);
    return NULL;
}

static int done_now(void)
{
    int n;

    pthread_mutex_lock(&done_mu);
    n = done_count;
    pthread_mutex_unlock(&done_mu);
    return n;
}

static char *sql(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static char *sql(const char *fmt, ...)
{
    char text[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    return ait_sql(&env, text);
}

static long sql_long(const char *what)
{
    char *v = ait_sql(&env, what);
    long n = v ? strtol(v, NULL, 10) : -1;

    free(v);
    return n;
}

/* n calls at once for token (team: NULL or a team id); expect exactly
 * pass of them to pass; checks the reservations while they are held */
static void run_parallel_on(plxt_server_t *other, const char *token,
                            const char *team, int n, int pass,
                            const char *quota_id, long held_tokens)
{
    char url[256], url2[256];
    call_t *calls = calloc((size_t)n, sizeof *calls);
    int ok = 0, refused = 0;

    assert_non_null(calls);
    snprintf(url, sizeof url, "%s/api/v1/ai/chat", env.srv->url);
    snprintf(url2, sizeof url2, "%s/api/v1/ai/chat", (other ? other : env.srv)->url);
    plxt_llm_reset(env.llm);
    done_count = 0;
    for (int i = 0; i < n; i++) {
        calls[i].url = i % 2 ? url2 : url;
        calls[i].token = token;
        snprintf(calls[i].body, sizeof calls[i].body,
                 "{\"model\":\"q-model\",\"max_tokens\":%d,\"message\":\"%s\"%s%s%s}",
                 MAX_TOKENS, message, team ? ",\"team_id\":\"" : "", team ? team : "",
                 team ? "\"" : "");
        assert_int_equal(pthread_create(&calls[i].thread, NULL, call_main, &calls[i]), 0);
    }
    /* every refusal answered, every passing call held at the fake */
    double end = plxt_now_ms() + 15000;
    while ((done_now() < n - pass || plxt_llm_active(env.llm) < pass)
           && plxt_now_ms() < end)
        plxt_sleep_ms(10);
    assert_int_equal(plxt_llm_active(env.llm), pass);
    if (held_tokens >= 0) {
        char *held = sql("SELECT reserved_tokens FROM ai.quota_counters"
                         " WHERE quota_id = '%s'", quota_id);
        assert_int_equal(strtol(held, NULL, 10), held_tokens);
        free(held);
    }
    for (int i = 0; i < n; i++)
        pthread_join(calls[i].thread, NULL);
    for (int i = 0; i < n; i++) {
        if (calls[i].status == 200) {
            ok++;
            continue;
        }
        refused++;
        assert_int_equal(calls[i].status, 429);
        assert_string_equal(calls[i].code, "quota_exceeded");
        assert_true(calls[i].has_message);
        long ra = strtol(calls[i].retry_after, NULL, 10);
        assert_true(ra >= 1 && ra <= 31L * 86400);
    }
    assert_int_equal(ok, pass);
    assert_int_equal(refused, n - pass);
    assert_int_equal(plxt_llm_count(env.llm), pass);
    free(calls);
}

static void run_parallel(const char *token, const char *team, int n, int pass,
                         const char *quota_id, long held_tokens)
{
    run_parallel_on(NULL, token, team, n, pass, quota_id, held_tokens);
}

/* a quota through the admin API; its id into id */
static void quota_new(const char *type, const char *subject, const char *period,
                      const char *limits, char id[37])
{
    char body[512];
    json_t *j;

    snprintf(body, sizeof body, "{\"subject_type\":\"%s\",\"subject_id\":\"%s\","
             "\"period\":\"%s\",%s}", type, subject, period, limits);
    j = ait_expect(&env, "POST", "/api/v1/admin/ai/quotas", env.admin.access, body, 201);
    snprintf(id, 37, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
}

/* settled: nothing reserved, nothing left in ai.reservations, and the
 * counter's used figures are the sum of the usage rows of who */
static void check_settled(const char *quota_id, const char *who_sql)
{
    char q[512];

    snprintf(q, sizeof q, "SELECT count(*) FROM ai.reservations WHERE quota_id = '%s'",
             quota_id);
    assert_int_equal(sql_long(q), 0);
    snprintf(q, sizeof q, "SELECT reserved_tokens FROM ai.quota_counters"
             " WHERE quota_id = '%s'", quota_id);
    assert_int_equal(sql_long(q), 0);
    snprintf(q, sizeof q, "SELECT (SELECT used_tokens FROM ai.quota_counters"
             " WHERE quota_id = '%s') - (SELECT COALESCE(sum(prompt_tokens"
             " + completion_tokens), 0) FROM ai.usage WHERE %s)", quota_id, who_sql);
    assert_int_equal(sql_long(q), 0);
    snprintf(q, sizeof q, "SELECT (abs((SELECT used_cost FROM ai.quota_counters"
             " WHERE quota_id = '%s') - (SELECT COALESCE(sum(cost), 0) FROM ai.usage"
             " WHERE %s)) < 0.000001)::int", quota_id, who_sql);
    assert_int_equal(sql_long(q), 1);
    snprintf(q, sizeof q, "SELECT (used_tokens > 0)::int FROM ai.quota_counters"
             " WHERE quota_id = '%s'", quota_id);
    assert_int_equal(sql_long(q), 1);
}

/* ---- the cases ------------------------------------------------------------------ */

static int group_setup(void **state)
{
    char conf[128];

    snprintf(conf, sizeof conf, "first_token_timeout_ms = %d\n", FIRST_MS + 8000);
    if (ait_start(&env, conf) != 0)
        return -1;
    ait_model(&env, "q-model", "fake", "up-q", PRICE_IN, PRICE_OUT, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    return ait_stop(&env);
}

static void test_user_tokens(void **state)
{
    char quota[37], limits[64], who[128];
    long per = call_tokens();

    snprintf(limits, sizeof limits, "\"max_tokens\":%ld", 5 * per + per / 2);
    quota_new("user", env.user.id, "day", limits, quota);
    run_parallel(env.user.access, NULL, 24, 5, quota, 5 * per);
    snprintf(who, sizeof who, "user_id = '%s'", env.user.id);
    check_settled(quota, who);
    /* the provider's figures, far below the reservations */
    char *used = sql("SELECT used_tokens FROM ai.quota_counters WHERE quota_id = '%s'",
                     quota);
    assert_true(strtol(used, NULL, 10) < 5 * per);
    free(used);
}

static void test_team_tokens(void **state)
{
    char quota[37], team[37], limits[64], who[128];
    plxt_user_t owner;
    long per = call_tokens();

    plxt_user_new(env.srv, env.db, &owner);
    ait_team_new(&env, &owner, team);
    snprintf(limits, sizeof limits, "\"max_tokens\":%ld", 3 * per + per / 2);
    quota_new("team", team, "month", limits, quota);
    run_parallel(owner.access, team, 12, 3, quota, 3 * per);
    snprintf(who, sizeof who, "team_id = '%s'", team);
    check_settled(quota, who);
    /* the same user without the team is not limited by it */
    run_parallel(owner.access, NULL, 2, 2, quota, -1);
}

static void test_user_cost(void **state)
{
    char quota[37], limits[64], who[128];
    plxt_user_t spender;
    double per = call_cost();

    plxt_user_new(env.srv, env.db, &spender);
    snprintf(limits, sizeof limits, "\"max_cost\":%.6f", 4 * per + per / 2);
    quota_new("user", spender.id, "day", limits, quota);
    run_parallel(spender.access, NULL, 12, 4, quota, -1);
    snprintf(who, sizeof who, "user_id = '%s'", spender.id);
    check_settled(quota, who);
}

/* two instances on one database, the calls shared between them: the
 * reservations are in PostgreSQL, so the quota holds as on one */
static void test_two_instances(void **state)
{
    char quota[37], limits[64], who[128];
    plxt_user_t twin;
    plxt_server_t *other = ait_server_again(&env);
    long per = call_tokens();

    (void)state;
    assert_non_null(other);
    plxt_user_new(env.srv, env.db, &twin);
    snprintf(limits, sizeof limits, "\"max_tokens\":%ld", 4 * per + per / 2);
    quota_new("user", twin.id, "day", limits, quota);
    run_parallel_on(other, twin.access, NULL, 16, 4, quota, 4 * per);
    snprintf(who, sizeof who, "user_id = '%s'", twin.id);
    check_settled(quota, who);
    assert_int_equal(plxt_server_stop(other), 0);
}

/* a spent quota: the answer's shape, and nothing reaches the provider */
static void test_spent(void **state)
{
    char quota[37];
    plxt_user_t poor;
    plxt_resp_t resp;
    json_t *j;

    plxt_user_new(env.srv, env.db, &poor);
    quota_new("user", poor.id, "day", "\"max_tokens\":10", quota);
    plxt_llm_reset(env.llm);
    ait_call(&env, "POST", "/api/v1/ai/chat", poor.access,
             "{\"model\":\"q-model\",\"message\":\"hi\"}", &resp);
    assert_int_equal(resp.status, 429);
    assert_true(plxt_resp_type_is(&resp, "application/problem+json"));
    j = plxt_resp_json(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "quota_exceeded");
    assert_non_null(strstr(json_string_value(json_object_get(j, "message")),
                           "daily token quota"));
    long ra = strtol(plxt_resp_header(&resp, "Retry-After"), NULL, 10);
    assert_true(ra >= 1 && ra <= 86400);
    json_decref(j);
    plxt_resp_free(&resp);
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_tokens),
        cmocka_unit_test(test_team_tokens),
        cmocka_unit_test(test_user_cost),
        cmocka_unit_test(test_two_instances),
        cmocka_unit_test(test_spent),
    };

    plxt_require_postgres("test_ai_quota");
    return cmocka_run_group_tests_name("ai quotas", tests, group_setup, group_teardown);
}
