/*
 * test_mfa.c - the second factor end to end: TOTP set-up and enabling,
 * login that needs a code, replay refused, clock drift of one step either
 * way, recovery codes (once each), regenerating them, disabling, and
 * guessing codes counted as failed logins
 *
 * Codes are computed by the test's own RFC 6238 implementation
 * (identity_client.c), not the product's. Each test waits, when needed,
 * until the current 30 s step has enough time left, so a step boundary
 * cannot fall in the middle of a sequence that depends on "now".
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "harness.h"
#include "identity_client.h"
#include "pgtest.h"

#define MAX_FAILURES 4
#define STEP_MARGIN  12   /* seconds a sequence needs within one step */

static plxt_server_t *srv;
static char dbname[64];
static char *db;

static int group_setup(void **state)
{
    char base[1024], cfg[2048];

    (void)state;
    db = pgtest_db_create(dbname);
    if (!db)
        return -1;
    plxt_identity_config(base, sizeof base, 0);
    snprintf(cfg, sizeof cfg,
             "%s[auth]\nlogin_max_failures = %d\nlogin_lockout = 2s\n"
             "login_ip_max_failures = 100000\n"
             "[ratelimit]\nauth = 100000/60s\ndefault = 100000/60s\n",
             base, MAX_FAILURES);
    plxt_server_opts_t o = { .db_url = db, .config = cfg };
    srv = plxt_server_start(&o);
    return srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    (void)state;
    pgtest_db_drop(dbname);
    free(db);
    return rc == 0 ? 0 : -1;
}

/* ---- helpers --------------------------------------------------------------------- */

typedef struct mfa_user {
    plxt_user_t u;
    char secret[64];
    char codes[10][32];   /* recovery codes */
} mfa_user_t;

static json_t *json_of(const plxt_resp_t *resp)
{
    json_t *j = plxt_resp_json(resp);

    if (!j)
        fail_msg("expected JSON, found \"%.300s\"", resp->body ? resp->body : "");
    return j;
}

static void expect_problem(const plxt_resp_t *resp, long status, const char *code)
{
    json_t *j;

    if (resp->status != status)
        fail_msg("expected %ld, found %ld: %.300s", status, resp->status,
                 resp->body ? resp->body : "");
    j = json_of(resp);
    assert_string_equal(json_string_value(json_object_get(j, "code")), code);
    json_decref(j);
}

static uint64_t step_now(void)
{
    return (uint64_t)time(NULL) / 30u;
}

/* start a sequence early in a step */
static void fresh_step(void)
{
    while (30 - time(NULL) % 30 < STEP_MARGIN)
        plxt_sleep_ms(250);
}

static void code_at(const mfa_user_t *m, int64_t delta, char out[9])
{
    assert_int_equal(plxt_totp_step(m->secret, (uint64_t)((int64_t)step_now() + delta), out),
                     0);
}

static char *body_of(const char *fmt, ...)
{
    va_list ap;
    json_t *j;
    char *s;

    va_start(ap, fmt);
    j = json_vpack_ex(NULL, 0, fmt, ap);
    va_end(ap);
    assert_non_null(j);
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

static long post(const char *path, const char *token, const char *body, plxt_resp_t *resp)
{
    plxt_call(srv, "POST", path, token, body, resp);
    return resp->status;
}

static void setup_secret(mfa_user_t *m)
{
    plxt_resp_t resp;
    json_t *j;
    const char *uri;

    assert_int_equal(post("/api/v1/auth/mfa/totp/setup", m->u.access, NULL, &resp), 200);
    j = json_of(&resp);
    snprintf(m->secret, sizeof m->secret, "%s",
             json_string_value(json_object_get(j, "secret")));
    assert_int_equal(strlen(m->secret), 32);   /* 20 bytes in base32 */
    uri = json_string_value(json_object_get(j, "otpauth_uri"));
    assert_non_null(uri);
    assert_true(strncmp(uri, "otpauth://totp/plexus:", 22) == 0);
    assert_non_null(strstr(uri, "secret="));
    assert_non_null(strstr(uri, m->secret));
    assert_non_null(strstr(uri, "issuer=plexus"));
    json_decref(j);
    plxt_resp_free(&resp);
}

static void enable_with(mfa_user_t *m, const char *code)
{
    plxt_resp_t resp;
    char *body = body_of("{s:s}", "code", code);
    json_t *j, *codes;

    if (post("/api/v1/auth/mfa/totp/enable", m->u.access, body, &resp) != 200)
        fail_msg("enable: %ld %.300s", resp.status, resp.body);
    free(body);
    j = json_of(&resp);
    codes = json_object_get(j, "recovery_codes");
    assert_int_equal(json_array_size(codes), 10);
    for (size_t i = 0; i < 10; i++) {
        snprintf(m->codes[i], sizeof m->codes[i], "%s",
                 json_string_value(json_array_get(codes, i)));
        assert_int_equal(strlen(m->codes[i]), 19);   /* xxxx-xxxx-xxxx-xxxx */
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(m->codes[i], m->codes[k]);
    }
    json_decref(j);
    plxt_resp_free(&resp);
}

/* a user with MFA on, enabled with the current step's code */
static void mfa_user_new(mfa_user_t *m)
{
    char code[9];

    memset(m, 0, sizeof *m);
    plxt_user_new(srv, db, &m->u);
    setup_secret(m);
    code_at(m, 0, code);
    enable_with(m, code);
}

static long login_with(mfa_user_t *m, const char *field, const char *code,
                       plxt_resp_t *resp)
{
    char *body = field ? body_of("{s:s, s:s, s:s}", "email", m->u.email, "password",
                                 m->u.password, field, code)
                       : body_of("{s:s, s:s}", "email", m->u.email, "password",
                                 m->u.password);
    long st = post("/api/v1/auth/login", NULL, body, resp);

    free(body);
    return st;
}

static long login_status(mfa_user_t *m, const char *field, const char *code)
{
    plxt_resp_t resp;
    long st = login_with(m, field, code, &resp);

    plxt_resp_free(&resp);
    return st;
}

static long audit_count(const char *action, const char *user_id)
{
    char out[32];
    const char *params[] = { action, user_id };

    plxt_db_value(db, "SELECT count(*) FROM plexus.audit_log WHERE action = $1"
                      " AND actor_id = $2", 2, params, out, sizeof out);
    return strtol(out, NULL, 10);
}

/* ---- tests ---------------------------------------------------------------------------- */

static void test_setup_does_not_enable_until_confirmed(void **state)
{
    mfa_user_t m;
    plxt_resp_t resp;
    char code[9], wrong[9], sealed[512];

    (void)state;
    memset(&m, 0, sizeof m);
    plxt_user_new(srv, db, &m.u);
    setup_secret(&m);
    /* not on yet: login needs no code */
    assert_int_equal(login_status(&m, NULL, NULL), 200);
    /* the secret is sealed at rest */
    const char *params[] = { m.u.id };
    plxt_db_value(db, "SELECT mfa_secret FROM plexus.users WHERE id = $1", 1, params,
                  sealed, sizeof sealed);
    assert_true(strncmp(sealed, "k1:", 3) == 0);
    assert_null(strstr(sealed, m.secret));

    fresh_step();
    code_at(&m, 0, code);
    snprintf(wrong, sizeof wrong, "%06d", (atoi(code) + 1) % 1000000);
    char *body = body_of("{s:s}", "code", wrong);
    post("/api/v1/auth/mfa/totp/enable", m.u.access, body, &resp);
    expect_problem(&resp, 400, "invalid_field");
    assert_non_null(strstr(resp.body, "code"));
    plxt_resp_free(&resp);
    free(body);
    enable_with(&m, code);
    assert_int_equal(audit_count("auth.mfa_enabled", m.u.id), 1);

    /* set-up again, or enabling twice, is refused while on */
    post("/api/v1/auth/mfa/totp/setup", m.u.access, NULL, &resp);
    expect_problem(&resp, 409, "mfa_already_enabled");
    plxt_resp_free(&resp);
    plxt_call(srv, "GET", "/api/v1/auth/me", m.u.access, NULL, &resp);
    json_t *j = json_of(&resp);
    assert_true(json_is_true(json_object_get(j, "mfa_enabled")));
    json_decref(j);
    plxt_resp_free(&resp);
}

static void test_login_needs_code_and_refuses_replay(void **state)
{
    mfa_user_t m;
    plxt_resp_t resp;
    char code[9];

    (void)state;
    fresh_step();
    mfa_user_new(&m);   /* consumed the current step */
    login_with(&m, NULL, NULL, &resp);
    expect_problem(&resp, 401, "mfa_required");
    plxt_resp_free(&resp);
    /* the step used to enable cannot be used again */
    code_at(&m, 0, code);
    login_with(&m, "totp_code", code, &resp);
    expect_problem(&resp, 401, "invalid_mfa_code");
    plxt_resp_free(&resp);
    /* two steps ahead: outside the window */
    code_at(&m, 2, code);
    login_with(&m, "totp_code", code, &resp);
    expect_problem(&resp, 401, "invalid_mfa_code");
    plxt_resp_free(&resp);
    /* one step ahead (drift +1): accepted, once */
    code_at(&m, 1, code);
    assert_int_equal(login_with(&m, "totp_code", code, &resp), 200);
    json_t *j = json_of(&resp);
    assert_non_null(json_string_value(json_object_get(j, "access_token")));
    json_decref(j);
    plxt_resp_free(&resp);
    assert_int_equal(login_status(&m, "totp_code", code), 401);
    /* an older step than the last accepted one is a replay too */
    code_at(&m, 0, code);
    assert_int_equal(login_status(&m, "totp_code", code), 401);
    /* not digits at all */
    assert_int_equal(login_status(&m, "totp_code", "12ab56"), 401);
}

static void test_drift_minus_one_accepted(void **state)
{
    mfa_user_t m;
    char code[9];

    (void)state;
    fresh_step();
    memset(&m, 0, sizeof m);
    plxt_user_new(srv, db, &m.u);
    setup_secret(&m);
    code_at(&m, -1, code);          /* a clock one step behind */
    enable_with(&m, code);
    code_at(&m, 0, code);
    assert_int_equal(login_status(&m, "totp_code", code), 200);
}

static void test_recovery_code_works_once(void **state)
{
    mfa_user_t m;
    plxt_resp_t resp;
    char shouted[32];

    (void)state;
    mfa_user_new(&m);
    assert_int_equal(login_status(&m, "recovery_code", m.codes[0]), 200);
    assert_int_equal(login_status(&m, "recovery_code", m.codes[0]), 401);
    assert_int_equal(audit_count("auth.recovery_code_used", m.u.id), 1);
    /* typed loosely: upper case, no dashes */
    size_t n = 0;
    for (const char *p = m.codes[1]; *p; p++)
        if (*p != '-')
            shouted[n++] = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    shouted[n] = '\0';
    assert_int_equal(login_status(&m, "recovery_code", shouted), 200);
    assert_int_equal(login_status(&m, "recovery_code", "aaaa-bbbb-cccc-dddd"), 401);
    /* both factors at once is a malformed request */
    char *body = body_of("{s:s, s:s, s:s, s:s}", "email", m.u.email, "password",
                         m.u.password, "totp_code", "123456", "recovery_code", m.codes[2]);
    post("/api/v1/auth/login", NULL, body, &resp);
    expect_problem(&resp, 400, "invalid_field");
    plxt_resp_free(&resp);
    free(body);
    /* stored as digests only */
    char out[32];
    const char *params[] = { m.u.id };
    plxt_db_value(db, "SELECT count(*) FROM plexus.mfa_recovery_codes WHERE user_id = $1"
                      " AND used_at IS NULL", 1, params, out, sizeof out);
    assert_string_equal(out, "8");
}

static void test_regenerate_recovery_codes(void **state)
{
    mfa_user_t m;
    plxt_resp_t resp;
    char code[9], old_code[32];

    (void)state;
    fresh_step();
    mfa_user_new(&m);
    snprintf(old_code, sizeof old_code, "%s", m.codes[5]);
    code_at(&m, 1, code);
    char *body = body_of("{s:s, s:s}", "password", m.u.password, "code", code);
    assert_int_equal(post("/api/v1/auth/mfa/recovery-codes", m.u.access, body, &resp), 200);
    free(body);
    json_t *j = json_of(&resp);
    json_t *codes = json_object_get(j, "recovery_codes");
    assert_int_equal(json_array_size(codes), 10);
    char fresh[32];
    snprintf(fresh, sizeof fresh, "%s", json_string_value(json_array_get(codes, 0)));
    json_decref(j);
    plxt_resp_free(&resp);
    assert_int_equal(login_status(&m, "recovery_code", old_code), 401);
    assert_int_equal(login_status(&m, "recovery_code", fresh), 200);
}

static void test_disable_needs_password_and_code(void **state)
{
    mfa_user_t m;
    plxt_resp_t resp;
    char code[9];

    (void)state;
    fresh_step();
    mfa_user_new(&m);
    code_at(&m, 1, code);
    char *body = body_of("{s:s, s:s}", "password", "Not-The-Password-1", "code", code);
    post("/api/v1/auth/mfa/totp/disable", m.u.access, body, &resp);
    expect_problem(&resp, 403, "invalid_password");
    plxt_resp_free(&resp);
    free(body);
    body = body_of("{s:s, s:s}", "password", m.u.password, "code", "000000");
    post("/api/v1/auth/mfa/totp/disable", m.u.access, body, &resp);
    expect_problem(&resp, 403, "invalid_mfa_code");
    plxt_resp_free(&resp);
    free(body);
    body = body_of("{s:s, s:s}", "password", m.u.password, "code", code);
    assert_int_equal(post("/api/v1/auth/mfa/totp/disable", m.u.access, body, &resp), 204);
    plxt_resp_free(&resp);
    free(body);
    assert_int_equal(audit_count("auth.mfa_disabled", m.u.id), 1);
    /* off: plain login again, recovery codes gone */
    assert_int_equal(login_status(&m, NULL, NULL), 200);
    char out[32];
    const char *params[] = { m.u.id };
    plxt_db_value(db, "SELECT count(*) FROM plexus.mfa_recovery_codes WHERE user_id = $1",
                  1, params, out, sizeof out);
    assert_string_equal(out, "0");
    body = body_of("{s:s, s:s}", "password", m.u.password, "code", code);
    post("/api/v1/auth/mfa/totp/disable", m.u.access, body, &resp);
    expect_problem(&resp, 409, "mfa_not_enabled");
    plxt_resp_free(&resp);
    free(body);
}

static void test_guessing_codes_locks_the_account(void **state)
{
    mfa_user_t m;
    plxt_resp_t resp;
    char code[9];

    (void)state;
    fresh_step();
    mfa_user_new(&m);
    for (int i = 1; i <= MAX_FAILURES; i++) {
        snprintf(code, sizeof code, "%06d", 100000 + i * 7919);
        login_with(&m, "totp_code", code, &resp);
        expect_problem(&resp, i < MAX_FAILURES ? 401 : 429,
                       i < MAX_FAILURES ? "invalid_mfa_code" : "login_locked");
        plxt_resp_free(&resp);
    }
    /* locked: a right code does not help until the lock expires */
    code_at(&m, 1, code);
    assert_int_equal(login_status(&m, "totp_code", code), 429);
    plxt_sleep_ms(2300);
    assert_int_equal(login_status(&m, "totp_code", code), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_setup_does_not_enable_until_confirmed),
        cmocka_unit_test(test_login_needs_code_and_refuses_replay),
        cmocka_unit_test(test_drift_minus_one_accepted),
        cmocka_unit_test(test_recovery_code_works_once),
        cmocka_unit_test(test_regenerate_recovery_codes),
        cmocka_unit_test(test_disable_needs_password_and_code),
        cmocka_unit_test(test_guessing_codes_locks_the_account),
    };

    plxt_require_postgres("test_mfa");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
