/*
 * test_auth.c - accounts and sessions end to end: register and verify by
 * email, login, refresh rotation and reuse, logout, sessions, password
 * change, forgotten password and reset, throttling and lockout, and what
 * an attacker sends (bad, forged, expired tokens, odd input)
 *
 * One plexusd with real keys (dev_mode = no) on a database of its own,
 * mail to an SMTP sink. Lockout is 2 s after 3 failures so the expiry can
 * be waited for; the per-address limit and the rate limit are set high
 * here (every request comes from 127.0.0.1) and tested on servers of their
 * own. Each test makes its own users.
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
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "identity_client.h"
#include "pgtest.h"
#include "smtp_sink.h"

#define MAIL_WAIT_MS   15000
#define LOCKOUT_MS     2000
#define MAX_FAILURES   3
#define MAX_BODY       65536

static plxt_server_t *srv;
static plxt_smtp_t *sink;
static char dbname[64];
static char *db;

static void server_config(char *out, size_t len, const char *extra)
{
    char base[1024];

    plxt_identity_config(base, sizeof base, plxt_smtp_port(sink));
    snprintf(out, len,
             "%s[auth]\nlogin_lockout = %dms\nlogin_max_failures = %d\n%s"
             "[ratelimit]\nauth = 100000/60s\ndefault = 100000/60s\n"
             "[jobs]\nbackoff_base = 200ms\nbackoff_max = 1s\npoll_interval = 100ms\n",
             base, LOCKOUT_MS, MAX_FAILURES, extra);
}

static int group_setup(void **state)
{
    char cfg[4096];

    (void)state;
    sink = plxt_smtp_start();
    db = pgtest_db_create(dbname);
    if (!sink || !db)
        return -1;
    server_config(cfg, sizeof cfg,
                  "login_ip_max_failures = 100000\n[server]\nmax_body = 65536\n");
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
    plxt_smtp_stop(sink);
    return rc == 0 ? 0 : -1;
}

/* ---- helpers ------------------------------------------------------------------ */

static json_t *json_of(const plxt_resp_t *resp)
{
    json_t *j = plxt_resp_json(resp);

    if (!j)
        fail_msg("expected JSON, found \"%.300s\"", resp->body ? resp->body : "");
    return j;
}

/* a problem+json answer with status and code; returns its detail (static) */
static const char *expect_problem(const plxt_resp_t *resp, long status, const char *code)
{
    static char detail[512];
    json_t *j;

    if (resp->status != status)
        fail_msg("expected %ld, found %ld: %.300s", status, resp->status,
                 resp->body ? resp->body : "");
    assert_true(plxt_resp_type_is(resp, "application/problem+json"));
    j = json_of(resp);
    assert_string_equal(json_string_value(json_object_get(j, "code")), code);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    /* the problem type is under the operator's public URL, never a domain
     * the project does not own */
    char type[160];
    snprintf(type, sizeof type, "%s/problems/%s", PLXT_PUBLIC_URL, code);
    assert_string_equal(json_string_value(json_object_get(j, "type")), type);
    snprintf(detail, sizeof detail, "%s",
             json_string_value(json_object_get(j, "detail")) ?: "");
    json_decref(j);
    return detail;
}

static long call(const char *method, const char *path, const char *token,
                 const char *body, plxt_resp_t *resp)
{
    plxt_call(srv, method, path, token, body, resp);
    return resp->status;
}

/* status of a call whose body is not needed */
static long status_of(const char *method, const char *path, const char *token,
                      const char *body)
{
    plxt_resp_t resp;
    long st = call(method, path, token, body, &resp);

    plxt_resp_free(&resp);
    return st;
}

static char *json_text(const char *fmt, ...)
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

static void login_as(plxt_user_t *u)
{
    plxt_user_login(srv, u);
}

static long try_login(plxt_user_t *u, const char *password, plxt_resp_t *resp)
{
    char *body = json_text("{s:s, s:s}", "email", u->email, "password", password);
    long st = call("POST", "/api/v1/auth/login", NULL, body, resp);

    free(body);
    return st;
}

static long refresh(const char *token, plxt_resp_t *resp)
{
    char *body = json_text("{s:s}", "refresh_token", token);
    long st = call("POST", "/api/v1/auth/refresh", NULL, body, resp);

    free(body);
    return st;
}

/* refresh and keep the new pair in u */
static void refresh_ok(plxt_user_t *u)
{
    plxt_resp_t resp;
    json_t *j;

    assert_int_equal(refresh(u->refresh, &resp), 200);
    j = json_of(&resp);
    snprintf(u->access, sizeof u->access, "%s",
             json_string_value(json_object_get(j, "access_token")));
    snprintf(u->refresh, sizeof u->refresh, "%s",
             json_string_value(json_object_get(j, "refresh_token")));
    json_decref(j);
    plxt_resp_free(&resp);
}

static long me_status(const char *token)
{
    return status_of("GET", "/api/v1/auth/me", token, NULL);
}

static long db_count(const char *sql, const char *param)
{
    char out[32];
    const char *params[] = { param };

    plxt_db_value(db, sql, param ? 1 : 0, param ? params : NULL, out, sizeof out);
    return strtol(out, NULL, 10);
}

/* register without the helper's shortcut: 201 and the new id */
static void register_user(const char *email, const char *password, char id[37])
{
    plxt_resp_t resp;
    char *body = json_text("{s:s, s:s}", "email", email, "password", password);
    json_t *j;

    if (call("POST", "/api/v1/auth/register", NULL, body, &resp) != 201)
        fail_msg("register: %ld %.300s", resp.status, resp.body);
    free(body);
    j = json_of(&resp);
    snprintf(id, 37, "%s", json_string_value(json_object_get(j, "id")));
    assert_string_equal(json_string_value(json_object_get(j, "email")), email);
    assert_string_equal(json_string_value(json_object_get(j, "role")), "user");
    assert_true(json_is_false(json_object_get(j, "email_verified")));
    assert_true(json_is_false(json_object_get(j, "mfa_enabled")));
    assert_non_null(json_string_value(json_object_get(j, "created_at")));
    json_decref(j);
    plxt_resp_free(&resp);
}

static void unique_email(char *out, size_t len, const char *tag)
{
    static int n;
    char hex[9];
    unsigned r = (unsigned)rand();

    snprintf(hex, sizeof hex, "%08x", r);
    snprintf(out, len, "%s.%d.%d.%s@example.test", tag, (int)getpid(), ++n, hex);
}

#define SUBJ_VERIFY  "Confirm your email address"
#define SUBJ_RESET   "Reset your password"
#define SUBJ_CHANGED "Your password was changed"
#define SUBJ_WAS_RESET "Your password was reset"

static plxt_mail_t *mail_for(const char *to, const char *subject)
{
    plxt_mail_t *m = plxt_smtp_wait(sink, to, subject, MAIL_WAIT_MS);

    if (!m)
        fail_msg("no email \"%s\" to \"%s\" within %d ms", subject, to, MAIL_WAIT_MS);
    return m;
}

static void forgot(const char *email)
{
    char *body = json_text("{s:s}", "email", email);
    plxt_resp_t resp;

    assert_int_equal(call("POST", "/api/v1/auth/password/forgot", NULL, body, &resp), 202);
    free(body);
    plxt_resp_free(&resp);
}

static long reset_with(const char *token, const char *password, plxt_resp_t *resp)
{
    char *body = json_text("{s:s, s:s}", "token", token, "new_password", password);
    long st = call("POST", "/api/v1/auth/password/reset", NULL, body, resp);

    free(body);
    return st;
}

#define STRONG_PW "Violet-Harbor-Lantern-91"
#define OTHER_PW  "Copper-Meadow-Falcon-47"

/* ---- register and verify -------------------------------------------------------- */

static void test_register_sends_verification_email(void **state)
{
    char email[160], id[37], token[128];
    plxt_user_t u = { 0 };
    plxt_resp_t resp;
    plxt_mail_t *m;

    (void)state;
    unique_email(email, sizeof email, "verify");
    register_user(email, STRONG_PW, id);
    m = mail_for(email, SUBJ_VERIFY);
    assert_string_equal(m->to, email);
    assert_string_equal(m->from, "plexus@plexus.test");
    assert_non_null(strstr(m->data, "\r\nSubject: Confirm your email address\r\n"));
    assert_non_null(strstr(m->data, "Date: "));
    assert_non_null(strstr(m->data, "Message-ID: <"));
    assert_non_null(strstr(m->data, "MIME-Version: 1.0\r\n"));
    assert_non_null(strstr(m->data, "Content-Type: text/plain; charset=utf-8\r\n"));
    assert_non_null(strstr(m->body, PLXT_PUBLIC_URL "/verify-email?token="));
    assert_int_equal(plxt_mail_link_param(m, "token", token, sizeof token), 0);
    plxt_mail_free(m);

    /* the database holds the digest only, never the token */
    assert_int_equal(db_count("SELECT count(*) FROM plexus.email_tokens WHERE"
                              " position(convert_to($1, 'UTF8') in token_hash) > 0", token), 0);

    snprintf(u.email, sizeof u.email, "%s", email);
    snprintf(u.password, sizeof u.password, "%s", STRONG_PW);
    login_as(&u);
    call("GET", "/api/v1/auth/me", u.access, NULL, &resp);
    assert_int_equal(resp.status, 200);
    json_t *j = json_of(&resp);
    assert_true(json_is_false(json_object_get(j, "email_verified")));
    assert_string_equal(json_string_value(json_object_get(j, "id")), id);
    json_decref(j);
    plxt_resp_free(&resp);

    char *body = json_text("{s:s}", "token", token);
    assert_int_equal(call("POST", "/api/v1/auth/verify-email", NULL, body, &resp), 200);
    plxt_resp_free(&resp);
    call("GET", "/api/v1/auth/me", u.access, NULL, &resp);
    j = json_of(&resp);
    assert_true(json_is_true(json_object_get(j, "email_verified")));
    json_decref(j);
    plxt_resp_free(&resp);

    /* single use */
    call("POST", "/api/v1/auth/verify-email", NULL, body, &resp);
    expect_problem(&resp, 400, "invalid_token");
    plxt_resp_free(&resp);
    free(body);

    /* once verified, resending is refused */
    call("POST", "/api/v1/auth/resend-verification", u.access, NULL, &resp);
    expect_problem(&resp, 409, "already_verified");
    plxt_resp_free(&resp);
}

static void test_resend_and_expired_verification(void **state)
{
    char email[160], id[37], token[128];
    plxt_user_t u = { 0 };
    plxt_resp_t resp;
    plxt_mail_t *m;

    (void)state;
    unique_email(email, sizeof email, "resend");
    register_user(email, STRONG_PW, id);
    plxt_mail_free(mail_for(email, SUBJ_VERIFY));
    snprintf(u.email, sizeof u.email, "%s", email);
    snprintf(u.password, sizeof u.password, "%s", STRONG_PW);
    login_as(&u);
    assert_int_equal(status_of("POST", "/api/v1/auth/resend-verification", u.access, NULL),
                     202);
    m = mail_for(email, SUBJ_VERIFY);
    assert_int_equal(plxt_mail_link_param(m, "token", token, sizeof token), 0);
    plxt_mail_free(m);

    const char *params[] = { id };
    plxt_db_exec(db, "UPDATE plexus.email_tokens SET expires_at = now() - interval '1 second'"
                     " WHERE user_id = $1", 1, params);
    char *body = json_text("{s:s}", "token", token);
    call("POST", "/api/v1/auth/verify-email", NULL, body, &resp);
    expect_problem(&resp, 400, "invalid_token");
    plxt_resp_free(&resp);
    free(body);
}

static void test_register_duplicate_email(void **state)
{
    char email[160], upper[160], id[37];
    plxt_resp_t resp;

    (void)state;
    unique_email(email, sizeof email, "dup");
    register_user(email, STRONG_PW, id);
    for (size_t i = 0; email[i]; i++)
        upper[i] = (char)(email[i] >= 'a' && email[i] <= 'z' ? email[i] - 32 : email[i]);
    upper[strlen(email)] = '\0';
    char *body = json_text("{s:s, s:s}", "email", upper, "password", OTHER_PW);
    call("POST", "/api/v1/auth/register", NULL, body, &resp);
    expect_problem(&resp, 409, "email_taken");
    plxt_resp_free(&resp);
    free(body);
}

static void test_register_weak_password_names_field(void **state)
{
    static const char *const weak[] = { "short", "password1234", "aaaaaaaaaaaaaaaa", NULL };
    char email[160];
    plxt_resp_t resp;

    (void)state;
    unique_email(email, sizeof email, "weakling");
    for (int i = 0; weak[i]; i++) {
        char *body = json_text("{s:s, s:s}", "email", email, "password", weak[i]);
        call("POST", "/api/v1/auth/register", NULL, body, &resp);
        const char *detail = expect_problem(&resp, 400, "invalid_field");
        if (!strstr(detail, "password"))
            fail_msg("detail \"%s\" does not name the field", detail);
        plxt_resp_free(&resp);
        free(body);
    }
    /* containing the email's local part */
    char pw[200];
    snprintf(pw, sizeof pw, "%.*s-Xq7", (int)(strchr(email, '@') - email), email);
    char *body = json_text("{s:s, s:s}", "email", email, "password", pw);
    call("POST", "/api/v1/auth/register", NULL, body, &resp);
    expect_problem(&resp, 400, "invalid_field");
    plxt_resp_free(&resp);
    free(body);
    assert_int_equal(db_count("SELECT count(*) FROM plexus.users WHERE email = $1", email), 0);
}

static void test_sql_metacharacters_in_email(void **state)
{
    char email[160], id[37];
    plxt_resp_t resp;
    plxt_user_t u = { 0 };

    (void)state;
    /* not an address: refused before it gets anywhere */
    char *body = json_text("{s:s, s:s}", "email",
                           "x'; DROP TABLE plexus.users; --@example.test",
                           "password", STRONG_PW);
    call("POST", "/api/v1/auth/register", NULL, body, &resp);
    expect_problem(&resp, 400, "invalid_field");
    plxt_resp_free(&resp);
    free(body);

    /* nor can an address carry a header into the verification email */
    body = json_text("{s:s, s:s}", "email", "victim@example.test\r\nBcc: all@example.test",
                     "password", STRONG_PW);
    call("POST", "/api/v1/auth/register", NULL, body, &resp);
    expect_problem(&resp, 400, "invalid_field");
    plxt_resp_free(&resp);
    free(body);

    /* a legal address full of quotes and dashes works as data */
    snprintf(email, sizeof email, "o'brien--%d'or'1'='1@example.test", (int)getpid());
    register_user(email, STRONG_PW, id);
    snprintf(u.email, sizeof u.email, "%s", email);
    snprintf(u.password, sizeof u.password, "%s", STRONG_PW);
    login_as(&u);
    assert_int_equal(me_status(u.access), 200);
    /* and a login attempt with SQL in it is just a wrong email */
    body = json_text("{s:s, s:s}", "email", "' OR '1'='1", "password", "' OR '1'='1");
    call("POST", "/api/v1/auth/login", NULL, body, &resp);
    expect_problem(&resp, 401, "invalid_credentials");
    plxt_resp_free(&resp);
    free(body);
    assert_true(db_count("SELECT count(*) FROM plexus.users", NULL) >= 1);
}

static void test_bad_input_is_400_or_413(void **state)
{
    char big_email[400], *big_pw = malloc(3000), *huge = malloc(MAX_BODY + 1024);
    plxt_resp_t resp;
    char url[256];

    (void)state;
    memset(big_email, 'a', 300);
    snprintf(big_email + 300, sizeof big_email - 300, "@example.test");
    char *body = json_text("{s:s, s:s}", "email", big_email, "password", STRONG_PW);
    call("POST", "/api/v1/auth/register", NULL, body, &resp);
    assert_non_null(strstr(expect_problem(&resp, 400, "invalid_field"), "email"));
    plxt_resp_free(&resp);
    free(body);

    memset(big_pw, 'x', 2000);
    big_pw[2000] = '\0';
    body = json_text("{s:s, s:s}", "email", "someone@example.test", "password", big_pw);
    call("POST", "/api/v1/auth/login", NULL, body, &resp);
    assert_non_null(strstr(expect_problem(&resp, 400, "invalid_field"), "password"));
    plxt_resp_free(&resp);
    free(body);
    free(big_pw);

    /* not UTF-8, an escaped NUL, the wrong types, no object at all */
    call("POST", "/api/v1/auth/login", NULL,
         "{\"email\":\"a\xff\xfe@example.test\",\"password\":\"x\"}", &resp);
    assert_int_equal(resp.status, 400);
    plxt_resp_free(&resp);
    call("POST", "/api/v1/auth/register", NULL,
         "{\"email\":\"a\\u0000b@example.test\",\"password\":\"" STRONG_PW "\"}", &resp);
    assert_int_equal(resp.status, 400);
    plxt_resp_free(&resp);
    call("POST", "/api/v1/auth/login", NULL, "{\"email\":5,\"password\":[]}", &resp);
    assert_non_null(strstr(expect_problem(&resp, 400, "invalid_field"), "email"));
    plxt_resp_free(&resp);
    call("POST", "/api/v1/auth/login", NULL, "[\"email\"]", &resp);
    expect_problem(&resp, 400, "invalid_body");
    plxt_resp_free(&resp);
    call("POST", "/api/v1/auth/login", NULL, "{\"password\":\"x\"}", &resp);
    assert_non_null(strstr(expect_problem(&resp, 400, "invalid_field"), "email"));
    plxt_resp_free(&resp);

    /* bigger than server.max_body */
    memset(huge, ' ', MAX_BODY + 1000);
    memcpy(huge, "{\"email\":\"", 10);
    memcpy(huge + MAX_BODY + 990, "\"}", 3);
    snprintf(url, sizeof url, "%s/api/v1/auth/login", srv->url);
    const char *hdrs[] = { "Content-Type: application/json", NULL };
    assert_int_equal(plxt_http("POST", url, hdrs, huge, &resp), 0);
    assert_int_equal(resp.status, 413);
    plxt_resp_free(&resp);
    free(huge);
}

/* ---- login, refresh, logout ------------------------------------------------------- */

static void test_login_answers_tokens(void **state)
{
    plxt_user_t u;
    plxt_resp_t resp;
    json_t *j, *claims;

    (void)state;
    plxt_user_new(srv, db, &u);
    assert_int_equal(try_login(&u, u.password, &resp), 200);
    j = json_of(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "token_type")), "Bearer");
    assert_int_equal(json_integer_value(json_object_get(j, "expires_in")), 900);
    claims = plxt_jwt_claims(json_string_value(json_object_get(j, "access_token")));
    assert_non_null(claims);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), u.id);
    assert_string_equal(json_string_value(json_object_get(claims, "iss")), "plexus");
    assert_non_null(json_object_get(claims, "sid"));
    assert_non_null(json_object_get(claims, "exp"));
    json_decref(claims);
    json_decref(j);
    plxt_resp_free(&resp);

    call("GET", "/api/v1/auth/me", u.access, NULL, &resp);
    assert_int_equal(resp.status, 200);
    j = json_of(&resp);
    assert_string_equal(json_string_value(json_object_get(j, "email")), u.email);
    assert_true(json_is_true(json_object_get(j, "email_verified")));
    json_decref(j);
    plxt_resp_free(&resp);
    /* the audit log saw it */
    assert_true(db_count("SELECT count(*) FROM plexus.audit_log WHERE action = 'auth.login'"
                         " AND actor_id = $1", u.id) >= 2);
}

static void test_refresh_rotates_and_reuse_revokes_family(void **state)
{
    plxt_user_t u;
    char first[256], first_access[4096];
    plxt_resp_t resp;

    (void)state;
    plxt_user_new(srv, db, &u);
    snprintf(first, sizeof first, "%s", u.refresh);
    snprintf(first_access, sizeof first_access, "%s", u.access);
    refresh_ok(&u);
    assert_string_not_equal(u.refresh, first);
    assert_string_not_equal(u.access, first_access);
    assert_int_equal(me_status(u.access), 200);
    assert_int_equal(me_status(first_access), 200);   /* same session, still live */

    /* the first token again: it was copied; the whole family dies */
    refresh(first, &resp);
    expect_problem(&resp, 401, "refresh_token_reused");
    plxt_resp_free(&resp);
    refresh(u.refresh, &resp);
    expect_problem(&resp, 401, "invalid_token");
    plxt_resp_free(&resp);
    assert_int_equal(me_status(u.access), 401);
    assert_int_equal(me_status(first_access), 401);
    assert_int_equal(db_count("SELECT count(*) FROM plexus.audit_log"
                              " WHERE action = 'auth.refresh_reuse' AND actor_id = $1", u.id),
                     1);
    /* a new login still works */
    login_as(&u);
    assert_int_equal(me_status(u.access), 200);
}

typedef struct racer {
    const char *token;
    long status;
} racer_t;

static void *race_refresh(void *arg)
{
    racer_t *r = arg;
    char url[256], body[512];
    const char *hdrs[] = { "Content-Type: application/json", NULL };
    plxt_resp_t resp;

    snprintf(url, sizeof url, "%s/api/v1/auth/refresh", srv->url);
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", r->token);
    plxt_http("POST", url, hdrs, body, &resp);
    r->status = resp.status;
    plxt_resp_free(&resp);
    return NULL;
}

static void test_concurrent_refresh_only_one_wins(void **state)
{
    enum { N = 6 };
    pthread_t t[N];
    racer_t r[N];
    int wins = 0;
    plxt_user_t u;

    (void)state;
    plxt_user_new(srv, db, &u);
    for (int i = 0; i < N; i++) {
        r[i] = (racer_t){ u.refresh, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, race_refresh, &r[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_true(r[i].status == 200 || r[i].status == 401);
        wins += r[i].status == 200;
    }
    assert_true(wins <= 1);
    /* at least one was a reuse, so the family is revoked */
    assert_int_equal(me_status(u.access), 401);
}

static void test_refresh_expired_or_garbage(void **state)
{
    plxt_user_t u;
    plxt_resp_t resp;

    (void)state;
    plxt_user_new(srv, db, &u);
    const char *params[] = { u.id };
    plxt_db_exec(db, "UPDATE plexus.refresh_tokens SET expires_at = now() - interval '1 s'"
                     " WHERE session_id IN (SELECT id FROM plexus.sessions WHERE user_id = $1)",
                 1, params);
    refresh(u.refresh, &resp);
    expect_problem(&resp, 401, "invalid_token");
    plxt_resp_free(&resp);
    refresh("not-a-token", &resp);
    expect_problem(&resp, 401, "invalid_token");
    plxt_resp_free(&resp);
}

static void test_logout_ends_session(void **state)
{
    plxt_user_t u;
    plxt_resp_t resp;

    (void)state;
    plxt_user_new(srv, db, &u);
    assert_int_equal(status_of("POST", "/api/v1/auth/logout", u.access, NULL), 204);
    assert_int_equal(me_status(u.access), 401);
    refresh(u.refresh, &resp);
    expect_problem(&resp, 401, "invalid_token");
    plxt_resp_free(&resp);
    assert_int_equal(status_of("POST", "/api/v1/auth/logout", NULL, NULL), 401);
    assert_int_equal(db_count("SELECT count(*) FROM plexus.audit_log"
                              " WHERE action = 'auth.logout' AND actor_id = $1", u.id), 1);
}

/* ---- sessions ------------------------------------------------------------------------ */

static void test_sessions_list_page_and_revoke(void **state)
{
    plxt_user_t u, other, second;
    plxt_resp_t resp;
    json_t *j, *items;
    char other_sid[37], path[512], cursor[256];

    (void)state;
    plxt_user_new(srv, db, &u);
    second = u;
    login_as(&second);   /* a second session */
    plxt_user_new(srv, db, &other);

    call("GET", "/api/v1/auth/sessions", u.access, NULL, &resp);
    assert_int_equal(resp.status, 200);
    j = json_of(&resp);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    int current = 0;
    for (size_t i = 0; i < 2; i++) {
        json_t *s = json_array_get(items, i);
        current += json_is_true(json_object_get(s, "current"));
        assert_string_equal(json_string_value(json_object_get(s, "ip")), "127.0.0.1");
        assert_non_null(json_string_value(json_object_get(s, "expires_at")));
    }
    assert_int_equal(current, 1);
    json_decref(j);
    plxt_resp_free(&resp);

    /* one per page, with a cursor */
    call("GET", "/api/v1/auth/sessions?limit=1", u.access, NULL, &resp);
    j = json_of(&resp);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    char first_id[37];
    snprintf(first_id, sizeof first_id, "%s", json_string_value(json_object_get(
                 json_array_get(json_object_get(j, "items"), 0), "id")));
    snprintf(cursor, sizeof cursor, "%s",
             json_string_value(json_object_get(j, "next_cursor")));
    json_decref(j);
    plxt_resp_free(&resp);
    snprintf(path, sizeof path, "/api/v1/auth/sessions?limit=1&cursor=%s", cursor);
    call("GET", path, u.access, NULL, &resp);
    j = json_of(&resp);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_not_equal(json_string_value(json_object_get(json_array_get(items, 0), "id")),
                            first_id);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    plxt_resp_free(&resp);
    assert_int_equal(status_of("GET", "/api/v1/auth/sessions?cursor=bogus!", u.access, NULL),
                     400);
    assert_int_equal(status_of("GET", "/api/v1/auth/sessions?limit=0", u.access, NULL), 400);
    /* crafted cursors: "9999-99-99T99:99:99.999999Z|<uuid>" (no such time),
     * "sessions|99999-12-31T00:00:00.000000Z|<uuid>" (a huge year),
     * "sessions|2026-12-08T00:00:00Z|not-a-uuid" */
    assert_int_equal(status_of("GET", "/api/v1/auth/sessions?cursor=OTk5OS05OS05OVQ5OTo5OT"
                               "o5OS45OTk5OTlafDEyM2U0NTY3LWU4OWItNDJkMy1hNDU2LTQyNjYxNDE3"
                               "NDAwMA", u.access, NULL), 400);
    assert_int_equal(status_of("GET", "/api/v1/auth/sessions?cursor=c2Vzc2lvbnN8OTk5OTktMT"
                               "ItMzFUMDA6MDA6MDAuMDAwMDAwWnwxMjNlNDU2Ny1lODliLTQyZDMtYTQ1"
                               "Ni00MjY2MTQxNzQwMDA", u.access, NULL), 400);
    assert_int_equal(status_of("GET", "/api/v1/auth/sessions?cursor=c2Vzc2lvbnN8MjAyNi0xMi"
                               "0wOFQwMDowMDowMFp8bm90LWEtdXVpZA", u.access, NULL), 400);
    assert_int_equal(status_of("GET", "/api/v1/auth/sessions?limit=201", u.access, NULL), 400);

    /* revoke the second session from the first */
    json_t *claims = plxt_jwt_claims(second.access);
    char sid[37];
    snprintf(sid, sizeof sid, "%s", json_string_value(json_object_get(claims, "sid")));
    json_decref(claims);
    snprintf(path, sizeof path, "/api/v1/auth/sessions/%s", sid);
    assert_int_equal(status_of("DELETE", path, u.access, NULL), 204);
    assert_int_equal(me_status(second.access), 401);
    assert_int_equal(me_status(u.access), 200);
    assert_int_equal(status_of("DELETE", path, u.access, NULL), 404);

    /* someone else's session is not found, nor is nonsense */
    claims = plxt_jwt_claims(other.access);
    snprintf(other_sid, sizeof other_sid, "%s",
             json_string_value(json_object_get(claims, "sid")));
    json_decref(claims);
    snprintf(path, sizeof path, "/api/v1/auth/sessions/%s", other_sid);
    assert_int_equal(status_of("DELETE", path, u.access, NULL), 404);
    assert_int_equal(me_status(other.access), 200);
    assert_int_equal(status_of("DELETE", "/api/v1/auth/sessions/1%27or%271", u.access, NULL),
                     404);
}

/* ---- passwords ------------------------------------------------------------------------- */

static void test_password_change(void **state)
{
    plxt_user_t u, other_session;
    plxt_resp_t resp;
    char *body;

    (void)state;
    plxt_user_new(srv, db, &u);
    other_session = u;
    login_as(&other_session);

    body = json_text("{s:s, s:s}", "current_password", "Wrong-Password-123",
                     "new_password", OTHER_PW);
    call("POST", "/api/v1/auth/password", u.access, body, &resp);
    expect_problem(&resp, 403, "invalid_password");
    plxt_resp_free(&resp);
    free(body);

    body = json_text("{s:s, s:s}", "current_password", u.password, "new_password", "short");
    call("POST", "/api/v1/auth/password", u.access, body, &resp);
    assert_non_null(strstr(expect_problem(&resp, 400, "invalid_field"), "new_password"));
    plxt_resp_free(&resp);
    free(body);

    body = json_text("{s:s, s:s}", "current_password", u.password, "new_password", OTHER_PW);
    assert_int_equal(call("POST", "/api/v1/auth/password", u.access, body, &resp), 204);
    plxt_resp_free(&resp);
    free(body);

    /* this session lives on, the other one is gone, with its refresh token */
    assert_int_equal(me_status(u.access), 200);
    assert_int_equal(me_status(other_session.access), 401);
    refresh(other_session.refresh, &resp);
    assert_int_equal(resp.status, 401);
    plxt_resp_free(&resp);
    /* old password refused, new one works */
    assert_int_equal(try_login(&u, u.password, &resp), 401);
    plxt_resp_free(&resp);
    snprintf(u.password, sizeof u.password, "%s", OTHER_PW);
    login_as(&u);

    plxt_mail_t *m = mail_for(u.email, SUBJ_CHANGED);
    plxt_mail_free(m);
    assert_int_equal(db_count("SELECT count(*) FROM plexus.audit_log"
                              " WHERE action = 'auth.password_changed' AND actor_id = $1", u.id),
                     1);
}

static void test_forgot_and_reset(void **state)
{
    plxt_user_t u, other_session;
    char token[128], unknown[160];
    plxt_resp_t resp;
    plxt_mail_t *m;

    (void)state;
    plxt_user_new(srv, db, &u);
    other_session = u;
    login_as(&other_session);

    /* an unknown address: the same 202, and no mail */
    unique_email(unknown, sizeof unknown, "nobody");
    forgot(unknown);
    forgot(u.email);
    m = mail_for(u.email, SUBJ_RESET);
    assert_non_null(strstr(m->body, PLXT_PUBLIC_URL "/reset-password?token="));
    assert_int_equal(plxt_mail_link_param(m, "token", token, sizeof token), 0);
    plxt_mail_free(m);

    assert_int_equal(reset_with(token, "short", &resp), 400);
    assert_non_null(strstr(expect_problem(&resp, 400, "invalid_field"), "new_password"));
    plxt_resp_free(&resp);
    assert_int_equal(reset_with(token, OTHER_PW, &resp), 204);
    plxt_resp_free(&resp);
    /* every session ends */
    assert_int_equal(me_status(u.access), 401);
    assert_int_equal(me_status(other_session.access), 401);
    /* single use */
    reset_with(token, "Another-Fine-Password-55", &resp);
    expect_problem(&resp, 400, "invalid_token");
    plxt_resp_free(&resp);
    snprintf(u.password, sizeof u.password, "%s", OTHER_PW);
    login_as(&u);
    plxt_mail_free(mail_for(u.email, SUBJ_WAS_RESET));

    /* an expired link is refused */
    forgot(u.email);
    m = mail_for(u.email, SUBJ_RESET);
    assert_int_equal(plxt_mail_link_param(m, "token", token, sizeof token), 0);
    plxt_mail_free(m);
    const char *params[] = { u.id };
    plxt_db_exec(db, "UPDATE plexus.email_tokens SET expires_at = now() - interval '1 s'"
                     " WHERE user_id = $1 AND purpose = 'reset_password'", 1, params);
    reset_with(token, "Another-Fine-Password-55", &resp);
    expect_problem(&resp, 400, "invalid_token");
    plxt_resp_free(&resp);
    reset_with("garbage", "Another-Fine-Password-55", &resp);
    expect_problem(&resp, 400, "invalid_token");
    plxt_resp_free(&resp);

    assert_null(plxt_smtp_wait(sink, unknown, NULL, 1000));
    assert_int_equal(plxt_smtp_count(sink, unknown, NULL), 0);
    assert_int_equal(db_count("SELECT count(*) FROM plexus.audit_log"
                              " WHERE action = 'auth.password_reset' AND actor_id = $1", u.id),
                     1);
}

/* ---- throttling --------------------------------------------------------------------- */

static double login_ms(const char *email, const char *password, plxt_resp_t *resp)
{
    char *body = json_text("{s:s, s:s}", "email", email, "password", password);
    double t0 = plxt_now_ms();

    call("POST", "/api/v1/auth/login", NULL, body, resp);
    free(body);
    return plxt_now_ms() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static void test_unknown_email_and_wrong_password_look_alike(void **state)
{
    plxt_user_t u;
    char unknown[160];
    double t_unknown[3], t_wrong[3];
    plxt_resp_t a, b;

    (void)state;
    plxt_user_new(srv, db, &u);
    unique_email(unknown, sizeof unknown, "ghost");
    for (int i = 0; i < 2; i++) {
        t_wrong[i] = login_ms(u.email, "Not-The-Password-1", &a);
        t_unknown[i] = login_ms(unknown, "Not-The-Password-1", &b);
        assert_int_equal(a.status, 401);
        assert_int_equal(b.status, 401);
        json_t *ja = json_of(&a), *jb = json_of(&b);
        assert_string_equal(json_string_value(json_object_get(ja, "code")),
                            json_string_value(json_object_get(jb, "code")));
        assert_string_equal(json_string_value(json_object_get(ja, "detail")),
                            json_string_value(json_object_get(jb, "detail")));
        assert_string_equal(json_string_value(json_object_get(ja, "title")),
                            json_string_value(json_object_get(jb, "title")));
        json_decref(ja);
        json_decref(jb);
        plxt_resp_free(&a);
        plxt_resp_free(&b);
    }
    login_as(&u);   /* resets the account's failure count */
    /* unknown emails pay the argon2 time too: not an order of magnitude faster */
    t_wrong[2] = login_ms(u.email, "Not-The-Password-1", &a);
    t_unknown[2] = login_ms(unknown, "Not-The-Password-1", &b);
    plxt_resp_free(&a);
    plxt_resp_free(&b);
    qsort(t_wrong, 3, sizeof(double), cmp_double);
    qsort(t_unknown, 3, sizeof(double), cmp_double);
    if (t_unknown[1] < t_wrong[1] * 0.3)
        fail_msg("unknown email answered in %.1f ms, wrong password in %.1f ms",
                 t_unknown[1], t_wrong[1]);
}

static void lock_out(const char *email, bool known)
{
    plxt_resp_t resp;

    for (int i = 1; i <= MAX_FAILURES; i++) {
        login_ms(email, "Not-The-Password-1", &resp);
        if (i < MAX_FAILURES) {
            expect_problem(&resp, 401, "invalid_credentials");
        } else {
            expect_problem(&resp, 429, "login_locked");
            assert_non_null(plxt_resp_header(&resp, "Retry-After"));
        }
        plxt_resp_free(&resp);
    }
    (void)known;
}

static void test_brute_force_locks_then_expires(void **state)
{
    plxt_user_t u;
    char unknown[160];
    plxt_resp_t resp;

    (void)state;
    plxt_user_new(srv, db, &u);
    lock_out(u.email, true);
    /* locked: even the right password is refused, without saying so */
    assert_int_equal(try_login(&u, u.password, &resp), 429);
    expect_problem(&resp, 429, "login_locked");
    long retry = strtol(plxt_resp_header(&resp, "Retry-After"), NULL, 10);
    assert_true(retry >= 1 && retry <= 2);
    plxt_resp_free(&resp);
    /* the lock is in the database, where every instance sees it */
    assert_int_equal(db_count("SELECT count(*) FROM plexus.users WHERE id = $1"
                              " AND locked_until > now()", u.id), 1);

    /* an unknown email locks the same way: no account enumeration */
    unique_email(unknown, sizeof unknown, "phantom");
    lock_out(unknown, false);
    login_ms(unknown, "Whatever-Password-9", &resp);
    expect_problem(&resp, 429, "login_locked");
    plxt_resp_free(&resp);

    plxt_sleep_ms(LOCKOUT_MS + 300);
    login_as(&u);
    assert_int_equal(me_status(u.access), 200);
    assert_int_equal(db_count("SELECT failed_logins FROM plexus.users WHERE id = $1", u.id), 0);
    /* counting starts again after the lock expired */
    login_ms(u.email, "Not-The-Password-1", &resp);
    expect_problem(&resp, 401, "invalid_credentials");
    plxt_resp_free(&resp);
}

/* a server of its own: the per-address limit, shared by two instances */
static void test_address_throttle_shared_between_instances(void **state)
{
    char name[64], cfg[4096], email[160];
    char *url = pgtest_db_create(name);
    plxt_server_t *a, *b;
    plxt_resp_t resp;
    plxt_user_t u;

    (void)state;
    assert_non_null(url);
    server_config(cfg, sizeof cfg, "login_ip_max_failures = 3\n");
    plxt_server_opts_t o = { .db_url = url, .config = cfg };
    a = plxt_server_start(&o);
    assert_non_null(a);
    /* both up before the lock starts: a slow start must not outlast it */
    b = plxt_server_start(&o);
    assert_non_null(b);
    plxt_user_new(a, url, &u);
    for (int i = 1; i <= 3; i++) {
        unique_email(email, sizeof email, "spray");
        char *body = json_text("{s:s, s:s}", "email", email, "password", "Guess-Number-1");
        plxt_call(a, "POST", "/api/v1/auth/login", NULL, body, &resp);
        free(body);
        assert_int_equal(resp.status, i < 3 ? 401 : 429);
        plxt_resp_free(&resp);
    }
    /* the address is locked, for a right password too, on another instance */
    assert_int_equal(plxt_user_try_login(b, &u, NULL, &resp), 429);
    expect_problem(&resp, 429, "login_locked");
    plxt_resp_free(&resp);
    plxt_sleep_ms(LOCKOUT_MS + 300);
    assert_int_equal(plxt_user_try_login(b, &u, NULL, NULL), 200);
    assert_int_equal(plxt_server_stop(b), 0);
    assert_int_equal(plxt_server_stop(a), 0);
    pgtest_db_drop(name);
    free(url);
}

/* ---- tokens under attack ---------------------------------------------------------------- */

static void expect_invalid_token(const char *const *headers)
{
    char url[256];
    plxt_resp_t resp;

    snprintf(url, sizeof url, "%s/api/v1/auth/me", srv->url);
    assert_int_equal(plxt_http("GET", url, headers, NULL, &resp), 0);
    expect_problem(&resp, 401, "invalid_token");
    const char *www = plxt_resp_header(&resp, "WWW-Authenticate");
    assert_non_null(www);
    assert_non_null(strstr(www, "error=\"invalid_token\""));
    plxt_resp_free(&resp);
}

static void expect_token_refused(const char *token)
{
    char line[8192];
    const char *h[] = { plxt_bearer(token, line, sizeof line), NULL };

    expect_invalid_token(h);
}

static void test_bad_tokens_are_401(void **state)
{
    plxt_user_t u;
    plxt_resp_t resp;
    char *t;

    (void)state;
    plxt_user_new(srv, db, &u);
    expect_token_refused("garbage");
    expect_token_refused("a.b.c");

    /* tampered signature: one character changed */
    t = strdup(u.access);
    char *sig = strrchr(t, '.') + 1;
    sig[3] = sig[3] == 'A' ? 'B' : 'A';
    expect_token_refused(t);
    free(t);

    /* tampered payload, original signature */
    json_t *claims = plxt_jwt_claims(u.access);
    json_object_set_new(claims, "sub", json_string("00000000-0000-4000-8000-000000000000"));
    t = plxt_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, "another-secret-"
                      "of-enough-length-0123456789abcdef");
    expect_token_refused(t);
    free(t);
    json_decref(claims);

    /* alg none */
    claims = plxt_jwt_claims(u.access);
    t = plxt_jwt_sign("{\"alg\":\"none\",\"typ\":\"JWT\"}", claims, NULL);
    expect_token_refused(t);
    free(t);

    /* the server's own secret: a faithful copy works (so the forgery below
     * is judged on its claims), an expired one does not */
    t = plxt_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, PLXT_JWT_SECRET);
    assert_int_equal(me_status(t), 200);
    free(t);
    json_int_t now = (json_int_t)time(NULL);
    json_object_set_new(claims, "iat", json_integer(now - 7200));
    json_object_set_new(claims, "exp", json_integer(now - 3600));
    if (json_object_get(claims, "nbf"))
        json_object_set_new(claims, "nbf", json_integer(now - 7200));
    t = plxt_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, PLXT_JWT_SECRET);
    expect_token_refused(t);
    free(t);
    json_object_set_new(claims, "exp", json_integer(now + 600));
    json_object_set_new(claims, "aud", json_string("someone-else"));
    t = plxt_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, PLXT_JWT_SECRET);
    expect_token_refused(t);
    free(t);
    json_decref(claims);

    /* malformed headers; and no credential at all is a different 401 */
    const char *basic[] = { "Authorization: Basic dXNlcjpwYXNz", NULL };
    expect_invalid_token(basic);
    const char *empty[] = { "Authorization: Bearer ", NULL };
    expect_invalid_token(empty);
    const char *xkey[] = { "X-API-Key: not-a-key", NULL };
    expect_invalid_token(xkey);
    call("GET", "/api/v1/auth/me", NULL, NULL, &resp);
    expect_problem(&resp, 401, "unauthenticated");
    plxt_resp_free(&resp);
    /* an invalid credential is refused even on a public route */
    call("POST", "/api/v1/auth/password/forgot", "garbage", "{\"email\":\"a@b.test\"}", &resp);
    expect_problem(&resp, 401, "invalid_token");
    plxt_resp_free(&resp);
}

static void test_disabled_user_is_cut_off(void **state)
{
    plxt_user_t u;
    plxt_resp_t resp;

    (void)state;
    plxt_user_new(srv, db, &u);
    assert_int_equal(me_status(u.access), 200);
    const char *params[] = { u.id };
    plxt_db_exec(db, "UPDATE plexus.users SET disabled_at = now() WHERE id = $1", 1, params);
    expect_token_refused(u.access);
    refresh(u.refresh, &resp);
    expect_problem(&resp, 401, "invalid_token");
    plxt_resp_free(&resp);
    try_login(&u, u.password, &resp);
    expect_problem(&resp, 403, "account_disabled");
    plxt_resp_free(&resp);
    /* a disabled account gets no reset mail either */
    forgot(u.email);
    assert_null(plxt_smtp_wait(sink, u.email, SUBJ_RESET, 1000));
}

/* ---- API keys are not for managing credentials ------------------------------------------- */

static void test_api_key_cannot_manage_credentials(void **state)
{
    plxt_user_t u;
    plxt_resp_t resp;
    char key[256], line[300];
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    call("POST", "/api/v1/api-keys", u.access,
         "{\"name\":\"cli\",\"scopes\":[\"profile:read\"]}", &resp);
    if (resp.status != 201)
        fail_msg("api key create: %ld %.300s", resp.status, resp.body);
    j = json_of(&resp);
    snprintf(key, sizeof key, "%s", json_string_value(json_object_get(j, "key")));
    json_decref(j);
    plxt_resp_free(&resp);

    /* the key identifies the user, by either header */
    assert_int_equal(me_status(key), 200);
    snprintf(line, sizeof line, "X-API-Key: %s", key);
    const char *xh[] = { line, NULL };
    char url[256];
    snprintf(url, sizeof url, "%s/api/v1/auth/me", srv->url);
    assert_int_equal(plxt_http("GET", url, xh, NULL, &resp), 0);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);

    /* but cannot change the password, MFA or sessions */
    char *body = json_text("{s:s, s:s}", "current_password", u.password,
                           "new_password", OTHER_PW);
    call("POST", "/api/v1/auth/password", key, body, &resp);
    expect_problem(&resp, 403, "api_key_forbidden");
    plxt_resp_free(&resp);
    free(body);
    call("POST", "/api/v1/auth/mfa/totp/setup", key, NULL, &resp);
    expect_problem(&resp, 403, "api_key_forbidden");
    plxt_resp_free(&resp);
    call("POST", "/api/v1/auth/logout", key, NULL, &resp);
    expect_problem(&resp, 403, "api_key_forbidden");
    plxt_resp_free(&resp);
    call("GET", "/api/v1/auth/sessions", key, NULL, &resp);
    expect_problem(&resp, 403, "api_key_forbidden");
    plxt_resp_free(&resp);
    /* a key with a wrong secret is an invalid credential */
    key[strlen(key) - 2] = key[strlen(key) - 2] == 'a' ? 'b' : 'a';
    expect_token_refused(key);
}

/* ---- email delivery ----------------------------------------------------------------------- */

static void test_email_retried_when_server_fails(void **state)
{
    plxt_user_t u;
    int before;
    plxt_mail_t *m;

    (void)state;
    plxt_user_new(srv, db, &u);
    plxt_smtp_set_failing(sink, true);
    before = plxt_smtp_attempts(sink);
    forgot(u.email);
    double deadline = plxt_now_ms() + 10000;
    while (plxt_smtp_attempts(sink) < before + 2 && plxt_now_ms() < deadline)
        plxt_sleep_ms(50);
    assert_true(plxt_smtp_attempts(sink) >= before + 2);   /* refused, then retried */
    assert_int_equal(plxt_smtp_count(sink, u.email, SUBJ_RESET), 0);
    plxt_smtp_set_failing(sink, false);
    m = mail_for(u.email, SUBJ_RESET);
    plxt_mail_free(m);
    /* the job's payload keeps the body sealed: no link in the database */
    assert_int_equal(db_count("SELECT count(*) FROM plexus.jobs WHERE handler = 'core.email'"
                              " AND payload::text LIKE '%reset-password%'", NULL), 0);
}

/* ---- ES256 ------------------------------------------------------------------------------ */

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = calloc(1, 8192);

    assert_non_null(f);
    assert_non_null(buf);
    assert_true(fread(buf, 1, 8191, f) > 0);
    fclose(f);
    return buf;
}

/* keys from the openssl command line; tokens are ES256, and the classic
 * confusion (HS256 keyed with the public key) is refused */
static void test_es256_key_files(void **state)
{
    char dir[] = "/tmp/plxt-es256-XXXXXX", priv[64], pub[64], cfg[4096], extra[256];
    plxt_server_t *s;
    plxt_user_t u;

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(priv, sizeof priv, "%s/priv.pem", dir);
    snprintf(pub, sizeof pub, "%s/pub.pem", dir);
    const char *gen[] = { "/usr/bin/openssl", "ecparam", "-name", "prime256v1", "-genkey",
                          "-noout", "-out", priv, NULL };
    const char *exp[] = { "/usr/bin/openssl", "ec", "-in", priv, "-pubout", "-out", pub, NULL };
    assert_int_equal(plxt_run(gen, NULL, 20000, NULL), 0);
    assert_int_equal(plxt_run(exp, NULL, 20000, NULL), 0);
    snprintf(extra, sizeof extra, "jwt_alg = ES256\njwt_private_key_file = %s\n"
             "jwt_public_key_file = %s\nlogin_ip_max_failures = 100000\n", priv, pub);
    server_config(cfg, sizeof cfg, extra);
    plxt_server_opts_t o = { .db_url = db, .config = cfg };
    s = plxt_server_start(&o);
    assert_non_null(s);
    plxt_user_new(s, db, &u);

    json_t *claims = plxt_jwt_claims(u.access);
    char *pem = slurp(pub);
    char *confused = plxt_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, pem);
    char line[8192], url[256];
    const char *h[] = { plxt_bearer(u.access, line, sizeof line), NULL };
    plxt_resp_t resp;

    snprintf(url, sizeof url, "%s/api/v1/auth/me", s->url);
    assert_int_equal(plxt_http("GET", url, h, NULL, &resp), 0);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
    h[0] = plxt_bearer(confused, line, sizeof line);
    assert_int_equal(plxt_http("GET", url, h, NULL, &resp), 0);
    expect_problem(&resp, 401, "invalid_token");
    plxt_resp_free(&resp);
    /* the HS256 secret of the other servers means nothing here */
    free(confused);
    confused = plxt_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, PLXT_JWT_SECRET);
    h[0] = plxt_bearer(confused, line, sizeof line);
    assert_int_equal(plxt_http("GET", url, h, NULL, &resp), 0);
    expect_problem(&resp, 401, "invalid_token");
    plxt_resp_free(&resp);
    free(confused);
    free(pem);
    json_decref(claims);
    assert_int_equal(plxt_server_stop(s), 0);
    unlink(priv);
    unlink(pub);
    rmdir(dir);
}

/* ---- start-up refusals --------------------------------------------------------------------- */

static void expect_refusal(const char *config, const char *log_line)
{
    plxt_server_opts_t o = { .db_url = db, .config = config, .no_wait = true };
    plxt_server_t *s = plxt_server_start(&o);
    int rc;

    assert_non_null(s);
    rc = plxt_server_wait(s, 20000);
    if (rc <= 0 || !plxt_server_log_contains(s, log_line)) {
        plxt_server_log_print(s, 4000);
        fail_msg("expected a non-zero exit with \"%s\", found exit %d", log_line, rc);
    }
    plxt_server_stop(s);
}

static void test_refuses_to_start_without_keys(void **state)
{
    (void)state;
    expect_refusal("[server]\ndev_mode = no\n[auth]\n"
                   "mfa_key = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
                   "auth.jwt_secret is not set");
    expect_refusal("[server]\ndev_mode = no\n[auth]\njwt_secret = too-short\n"
                   "mfa_key = AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
                   "auth.jwt_secret is 9 bytes, expected at least 32");
    expect_refusal("[server]\ndev_mode = no\n[auth]\njwt_secret = " PLXT_JWT_SECRET "\n",
                   "auth.mfa_key is not set");
    expect_refusal("[server]\ndev_mode = no\n[auth]\njwt_secret = " PLXT_JWT_SECRET "\n"
                   "mfa_key = c2hvcnQ=\n", "auth.mfa_key");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_sends_verification_email),
        cmocka_unit_test(test_resend_and_expired_verification),
        cmocka_unit_test(test_register_duplicate_email),
        cmocka_unit_test(test_register_weak_password_names_field),
        cmocka_unit_test(test_sql_metacharacters_in_email),
        cmocka_unit_test(test_bad_input_is_400_or_413),
        cmocka_unit_test(test_login_answers_tokens),
        cmocka_unit_test(test_refresh_rotates_and_reuse_revokes_family),
        cmocka_unit_test(test_concurrent_refresh_only_one_wins),
        cmocka_unit_test(test_refresh_expired_or_garbage),
        cmocka_unit_test(test_logout_ends_session),
        cmocka_unit_test(test_sessions_list_page_and_revoke),
        cmocka_unit_test(test_password_change),
        cmocka_unit_test(test_forgot_and_reset),
        cmocka_unit_test(test_unknown_email_and_wrong_password_look_alike),
        cmocka_unit_test(test_brute_force_locks_then_expires),
        cmocka_unit_test(test_address_throttle_shared_between_instances),
        cmocka_unit_test(test_bad_tokens_are_401),
        cmocka_unit_test(test_disabled_user_is_cut_off),
        cmocka_unit_test(test_api_key_cannot_manage_credentials),
        cmocka_unit_test(test_email_retried_when_server_fails),
        cmocka_unit_test(test_es256_key_files),
        cmocka_unit_test(test_refuses_to_start_without_keys),
    };

    plxt_require_postgres("test_auth");
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
