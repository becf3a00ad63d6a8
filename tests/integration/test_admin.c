/*
 * test_admin.c - administration from outside: reading a user (self or
 * admin), searching users by email with LIKE metacharacters taken
 * literally, disabling a user (their tokens and keys stop working at
 * once) and enabling again, changing roles, the guard against an admin
 * locking themselves out, the audit log and its filters, and the
 * `plexusd create-admin` command followed by a working admin login
 *
 * One plexusd with authz_probe on a database of its own.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "identity_client.h"
#include "pgtest.h"

static plxt_server_t *srv;
static char dbname[64];
static char *db;
static plxt_user_t admin;

static int group_setup(void **state)
{
    static const plxt_module_t mods[] = { { .name = "authz_probe" }, { 0 } };
    char cfg[2048];
    size_t n;

    (void)state;
    if (!(db = pgtest_db_create(dbname)))
        return -1;
    plxt_identity_config(cfg, sizeof cfg, 0);
    n = strlen(cfg);
    snprintf(cfg + n, sizeof cfg - n,
             "[server]\nthreads = 32\n"
             "[ratelimit]\ndefault = 100000/60s\nauth = 100000/60s\n");
    plxt_server_opts_t o = { .db_url = db, .modules = mods, .config = cfg };
    if (!(srv = plxt_server_start(&o)))
        return -1;
    plxt_user_new(srv, db, &admin);
    plxt_user_make_admin(db, &admin);
    return 0;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    (void)state;
    pgtest_db_drop(dbname);
    free(db);
    return rc == 0 ? 0 : -1;
}

/* ---- helpers ------------------------------------------------------------------- */

static const char *user_path(const char *prefix, const char *id)
{
    static char buf[256];

    snprintf(buf, sizeof buf, "%s%s", prefix, id);
    return buf;
}

static long items_count(json_t *j)
{
    return (long)json_array_size(json_object_get(j, "items"));
}

/* an API key for u with scopes (a JSON array) */
static void key_for(const plxt_user_t *u, const char *scopes, char key[128])
{
    char body[256];
    json_t *j;

    snprintf(body, sizeof body, "{\"name\":\"t\",\"scopes\":%s}", scopes);
    j = plxt_expect(srv, "POST", "/api/v1/api-keys", u->access, body, 201);
    snprintf(key, 128, "%s", plxt_str(j, "key"));
    json_decref(j);
}

/* ---- reading users ------------------------------------------------------------- */

static void test_user_self_or_admin(void **state)
{
    plxt_user_t u, other;
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    plxt_user_new(srv, db, &other);
    j = plxt_expect(srv, "GET", user_path("/api/v1/users/", u.id), u.access, NULL, 200);
    assert_string_equal(plxt_str(j, "id"), u.id);
    assert_string_equal(plxt_str(j, "email"), u.email);
    assert_string_equal(plxt_str(j, "role"), "user");
    assert_true(json_is_false(json_object_get(j, "disabled")));
    assert_null(json_object_get(j, "password_hash"));
    json_decref(j);
    /* someone else's account does not exist for a plain user */
    plxt_expect_status(srv, "GET", user_path("/api/v1/users/", other.id), u.access, NULL, 404);
    j = plxt_expect(srv, "GET", user_path("/api/v1/users/", other.id), admin.access, NULL, 200);
    assert_string_equal(plxt_str(j, "email"), other.email);
    json_decref(j);
    plxt_expect_status(srv, "GET", "/api/v1/users/0b7e7c52-3f0e-4c43-9f5e-1a1f3a1b2c3d",
                  admin.access, NULL, 404);
    plxt_expect_status(srv, "GET", "/api/v1/users/%27%20OR%201%3D1--", admin.access, NULL, 404);
    plxt_expect_status(srv, "GET", user_path("/api/v1/users/", u.id), NULL, NULL, 401);
}

static void test_admin_routes_need_admin(void **state)
{
    static const char *const routes[][2] = {
        { "GET", "/api/v1/admin/users" }, { "GET", "/api/v1/admin/audit" },
        { "PATCH", "/api/v1/admin/users/0b7e7c52-3f0e-4c43-9f5e-1a1f3a1b2c3d" },
    };
    plxt_user_t u;

    (void)state;
    plxt_user_new(srv, db, &u);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const char *body = routes[i][0][0] == 'P' ? "{\"disabled\":true}" : NULL;
        plxt_expect_status(srv, routes[i][0], routes[i][1], u.access, body, 403);
        plxt_expect_status(srv, routes[i][0], routes[i][1], NULL, body, 401);
    }
}

/* ---- search ------------------------------------------------------------------------ */

static void user_insert(const char *email)
{
    const char *p[1] = { email };

    assert_int_equal(plxt_db_exec(db, "INSERT INTO plexus.users (email, password_hash) "
                                  "VALUES ($1, 'x')", 1, p), 1);
}

/* how many users the search q finds (q already URL-encoded) */
static long search(const char *q_encoded)
{
    char path[512];
    json_t *j;
    long n;

    snprintf(path, sizeof path, "/api/v1/admin/users?limit=200&q=%s", q_encoded);
    j = plxt_expect(srv, "GET", path, admin.access, NULL, 200);
    n = items_count(j);
    json_decref(j);
    return n;
}

static void test_search_takes_wildcards_literally(void **state)
{
    char e[4][128], q[256];
    const char *tag = "tagq7zx";   /* letters, to check the search ignores case */

    (void)state;
    snprintf(e[0], sizeof e[0], "a%%b.%s@example.test", tag);
    snprintf(e[1], sizeof e[1], "a_b.%s@example.test", tag);
    snprintf(e[2], sizeof e[2], "axb.%s@example.test", tag);
    snprintf(e[3], sizeof e[3], "a\\b.%s@example.test", tag);
    for (int i = 0; i < 4; i++)
        user_insert(e[i]);

    assert_int_equal(search(tag), 4);
    assert_int_equal(search("TAGQ7ZX"), 4);
    snprintf(q, sizeof q, "a%%25b.%s", tag);       /* a%b: only the one with % */
    assert_int_equal(search(q), 1);
    snprintf(q, sizeof q, "a_b.%s", tag);          /* a_b: only the one with _ */
    assert_int_equal(search(q), 1);
    snprintf(q, sizeof q, "a%%5Cb.%s", tag);       /* a\b */
    assert_int_equal(search(q), 1);
    assert_int_equal(search("%25%25%25tagq7zx"), 0);
    assert_int_equal(search("%27%20OR%20%271%27%3D%271"), 0);   /* ' OR '1'='1 */
    assert_int_equal(search("%5C"), 1);

    /* pages of one, in creation order, each user once */
    char cursor[256] = "";
    for (int i = 0; i < 4; i++) {
        char path[512];
        snprintf(path, sizeof path, "/api/v1/admin/users?q=%s&limit=1%s%s", tag,
                 cursor[0] ? "&cursor=" : "", cursor);
        json_t *j = plxt_expect(srv, "GET", path, admin.access, NULL, 200);
        assert_int_equal(items_count(j), 1);
        assert_string_equal(plxt_str(json_array_get(json_object_get(j, "items"), 0), "email"),
                            e[i]);
        json_t *next = json_object_get(j, "next_cursor");
        if (i < 3)
            snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        else
            assert_true(json_is_null(next));
        json_decref(j);
    }
}

static void test_search_bad_input_is_400(void **state)
{
    static const char *const bad[] = {
        "q=%FF", "q=a%C3%28", "limit=0", "limit=500", "limit=x", "cursor=!!!",
        "cursor=Zm9vLGJhcg",   /* "foo,bar" */
    };
    char path[1024];

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "/api/v1/admin/users?%s", bad[i]);
        plxt_expect_status(srv, "GET", path, admin.access, NULL, 400);
    }
    strcpy(path, "/api/v1/admin/users?q=");
    memset(path + strlen(path), 'q', 300);
    path[22 + 300] = '\0';
    plxt_expect_status(srv, "GET", path, admin.access, NULL, 400);
}

/* ---- changing users ------------------------------------------------------------------ */

static void test_disable_stops_tokens_and_keys(void **state)
{
    plxt_user_t u;
    char key[128], body[512];
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    key_for(&u, "[\"probe:read\"]", key);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", u.access, NULL, 200);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", key, NULL, 200);

    /* a body that is not an object: the same answer as every route's */
    j = plxt_expect(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
                    "[true]", 400);
    assert_string_equal(plxt_str(j, "code"), "invalid_body");
    json_decref(j);
    j = plxt_expect(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
               "{\"disabled\":true}", 200);
    assert_true(json_is_true(json_object_get(j, "disabled")));
    json_decref(j);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", u.access, NULL, 401);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", key, NULL, 401);
    snprintf(body, sizeof body, "{\"refresh_token\":\"%s\"}", u.refresh);
    j = plxt_expect(srv, "POST", "/api/v1/auth/refresh", NULL, body, 401);
    json_decref(j);
    assert_true(plxt_user_try_login(srv, &u, NULL, NULL) >= 400);
    const char *p[1] = { u.id };
    assert_int_equal(plxt_db_exec(db, "SELECT 1 FROM plexus.sessions WHERE user_id = $1 "
                                  "AND revoked_at IS NULL", 1, p), 0);

    /* enabled again: the key works, a new login works */
    j = plxt_expect(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
               "{\"disabled\":false}", 200);
    assert_true(json_is_false(json_object_get(j, "disabled")));
    json_decref(j);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", key, NULL, 200);
    plxt_user_login(srv, &u);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", u.access, NULL, 200);
}

static long audit_rows(const char *action, const char *actor, const char *target)
{
    char v[32];
    const char *p[3] = { action, actor, target };

    plxt_db_value(db, "SELECT count(*) FROM plexus.audit_log WHERE action = $1 "
                  "AND actor_id = $2 AND target_id = $3", 3, p, v, sizeof v);
    return atol(v);
}

static void test_role_change(void **state)
{
    plxt_user_t u;
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", u.access, NULL, 403);
    j = plxt_expect(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
               "{\"role\":\"admin\"}", 200);
    assert_string_equal(plxt_str(j, "role"), "admin");
    json_decref(j);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", u.access, NULL, 200);
    plxt_expect_status(srv, "GET", "/api/v1/admin/users", u.access, NULL, 200);
    plxt_expect_status(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
                  "{\"role\":\"user\",\"disabled\":false}", 200);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", u.access, NULL, 403);
    assert_int_equal(audit_rows("admin.user_updated", admin.id, u.id), 2);
}

static void test_admin_cannot_lock_self_out(void **state)
{
    const char *self;
    json_t *j;

    (void)state;
    self = user_path("/api/v1/admin/users/", admin.id);
    j = plxt_expect(srv, "PATCH", self, admin.access, "{\"disabled\":true}", 403);
    assert_string_equal(plxt_str(j, "code"), "cannot_modify_self");
    json_decref(j);
    self = user_path("/api/v1/admin/users/", admin.id);
    plxt_expect_status(srv, "PATCH", self, admin.access, "{\"role\":\"user\"}", 403);
    self = user_path("/api/v1/admin/users/", admin.id);
    plxt_expect_status(srv, "PATCH", self, admin.access, "{\"role\":\"admin\",\"disabled\":false}", 200);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", admin.access, NULL, 200);
}

static void test_patch_bad_input(void **state)
{
    static const char *const bad[] = {
        "{}", "[]", "\"x\"", "{\"disabled\":\"yes\"}", "{\"disabled\":1}",
        "{\"role\":\"root\"}", "{\"role\":5}", "{\"role\":\"admin' --\"}",
        "{\"role\":\"\xff\"}", "{\"role\":\"user\\u0000admin\"}", "{oops",
    };
    plxt_user_t u;

    (void)state;
    plxt_user_new(srv, db, &u);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        plxt_expect_status(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
                      bad[i], 400);
    /* the field readers' answer: invalid_body, naming the field */
    json_t *j = plxt_expect(srv, "PATCH", user_path("/api/v1/admin/users/", u.id),
                            admin.access, "{\"disabled\":\"yes\"}", 400);
    assert_string_equal(plxt_str(j, "code"), "invalid_body");
    assert_non_null(strstr(plxt_str(j, "detail"), "\"disabled\""));
    json_decref(j);
    j = plxt_expect(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
                    "{\"disabled\":false,\"role\":\"root\"}", 400);
    assert_string_equal(plxt_str(j, "code"), "invalid_body");
    assert_non_null(strstr(plxt_str(j, "detail"), "\"role\" must be one of \"user\", \"admin\""));
    json_decref(j);
    plxt_expect_status(srv, "PATCH", "/api/v1/admin/users/0b7e7c52-3f0e-4c43-9f5e-1a1f3a1b2c3d",
                  admin.access, "{\"disabled\":true}", 404);
    plxt_expect_status(srv, "PATCH", "/api/v1/admin/users/nope", admin.access,
                  "{\"disabled\":true}", 404);
    assert_false(plxt_server_log_contains(srv, "\"status\":500"));
}

/* ---- the audit log ---------------------------------------------------------------------- */

static void test_audit_log(void **state)
{
    static const char *const rid_header = "X-Request-ID: audit-probe-4711";
    plxt_user_t u;
    char url[512], auth[4200], path[512];
    const char *h[] = { auth, rid_header, NULL };
    plxt_resp_t resp;
    json_t *j, *items, *first;

    (void)state;
    plxt_user_new(srv, db, &u);
    /* a module's plx_audit, with our request id */
    snprintf(url, sizeof url, "%s/api/v1/probe/audit", srv->url);
    plxt_bearer(u.access, auth, sizeof auth);
    assert_int_equal(plxt_http("POST", url, h, "", &resp), 0);
    assert_int_equal(resp.status, 204);
    plxt_resp_free(&resp);

    snprintf(path, sizeof path, "/api/v1/admin/audit?action=probe.audited&actor=%s", u.id);
    j = plxt_expect(srv, "GET", path, admin.access, NULL, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    first = json_array_get(items, 0);
    assert_string_equal(plxt_str(first, "actor_id"), u.id);
    assert_string_equal(plxt_str(first, "target_type"), "probe");
    assert_string_equal(plxt_str(first, "target_id"), "target-1");
    assert_string_equal(plxt_str(first, "request_id"), "audit-probe-4711");
    assert_string_equal(plxt_str(first, "ip"), "127.0.0.1");
    assert_string_equal(plxt_str(json_object_get(first, "details"), "probe"), "yes");
    assert_true(json_is_string(json_object_get(first, "at")));
    json_decref(j);

    /* the admin's own actions, newest first, a page at a time */
    plxt_expect_status(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
                  "{\"role\":\"admin\"}", 200);
    plxt_expect_status(srv, "PATCH", user_path("/api/v1/admin/users/", u.id), admin.access,
                  "{\"role\":\"user\"}", 200);
    snprintf(path, sizeof path, "/api/v1/admin/audit?action=admin.user_updated&actor=%s"
             "&limit=1", admin.id);
    j = plxt_expect(srv, "GET", path, admin.access, NULL, 200);
    first = json_array_get(json_object_get(j, "items"), 0);
    assert_string_equal(plxt_str(first, "target_id"), u.id);
    assert_string_equal(plxt_str(json_object_get(first, "details"), "role"), "user");
    json_int_t newest = json_integer_value(json_object_get(first, "id"));
    snprintf(path + strlen(path), sizeof path - strlen(path), "&cursor=%s",
             plxt_str(j, "next_cursor"));
    json_decref(j);
    j = plxt_expect(srv, "GET", path, admin.access, NULL, 200);
    first = json_array_get(json_object_get(j, "items"), 0);
    assert_string_equal(plxt_str(json_object_get(first, "details"), "role"), "admin");
    assert_true(json_integer_value(json_object_get(first, "id")) < newest);
    json_decref(j);

    /* filters are checked, not passed through */
    static const char *const bad[] = {
        "actor=nope", "actor=%FF", "action=DROP%20TABLE", "action=%27--", "limit=0",
        "action=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "cursor=MTIzLGFiYw",   /* "123,abc": not a bigint id */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(path, sizeof path, "/api/v1/admin/audit?%s", bad[i]);
        plxt_expect_status(srv, "GET", path, admin.access, NULL, 400);
    }
    plxt_expect_status(srv, "GET", "/api/v1/admin/audit?action=no.such.action", admin.access, NULL, 200);
}

/* ---- plexusd create-admin --------------------------------------------------------------- */

static int create_admin(const char *email, const char *password, char **out)
{
    char envpw[160];
    const char *argv[] = { "plexusd", "--config", srv->conf_path, "create-admin",
                           "--email", email, NULL };
    const char *env[] = { envpw, NULL };

    snprintf(envpw, sizeof envpw, "PLEXUS_ADMIN_PASSWORD=%s", password ? password : "");
    return plxt_run(argv, password ? env : NULL, 60000, out);
}

static void test_create_admin_command(void **state)
{
    plxt_user_t boss = { 0 };
    plxt_user_t plain;
    char *out = NULL;
    json_t *j;
    int rc;

    (void)state;
    snprintf(boss.email, sizeof boss.email, "boss.%d@example.test", (int)getpid());
    snprintf(boss.password, sizeof boss.password, "Plexus-admin-%d-kq8", (int)getpid());
    rc = create_admin(boss.email, boss.password, &out);
    if (rc != 0 || !strstr(out, "created admin"))
        fail_msg("create-admin: exit %d: %s", rc, out ? out : "");
    free(out);
    plxt_user_login(srv, &boss);
    j = plxt_expect(srv, "GET", "/api/v1/auth/me", boss.access, NULL, 200);
    assert_string_equal(plxt_str(j, "role"), "admin");
    assert_true(json_is_true(json_object_get(j, "email_verified")));
    json_decref(j);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", boss.access, NULL, 200);

    /* again: nothing to do */
    rc = create_admin(boss.email, boss.password, &out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "already an admin"));
    free(out);

    /* an existing user is promoted, keeping their password */
    plxt_user_new(srv, db, &plain);
    rc = create_admin(plain.email, NULL, &out);
    if (rc != 0 || !strstr(out, "promoted"))
        fail_msg("create-admin (promote): exit %d: %s", rc, out ? out : "");
    free(out);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", plain.access, NULL, 200);

    /* a weak password creates nobody; no password at all neither */
    rc = create_admin("weak@example.test", "short", &out);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(out, "password refused"));
    free(out);
    rc = create_admin("nopw@example.test", NULL, &out);
    assert_int_not_equal(rc, 0);
    free(out);
    const char *p[2] = { "weak@example.test", "nopw@example.test" };
    assert_int_equal(plxt_db_exec(db, "SELECT 1 FROM plexus.users WHERE email IN ($1, $2)",
                                  2, p), 0);
    /* not an address */
    rc = create_admin("' OR 1=1 --", "Plexus-admin-pw-99x", &out);
    assert_int_equal(rc, 2);
    free(out);
}

static void test_create_admin_reads_stdin(void **state)
{
    char cmd[2048];
    plxt_user_t u = { 0 };
    char *out = NULL;
    int rc;

    (void)state;
    snprintf(u.email, sizeof u.email, "stdin.%d@example.test", (int)getpid());
    snprintf(u.password, sizeof u.password, "Stdin-admin-%d-pw7", (int)getpid());
    snprintf(cmd, sizeof cmd, "printf '%%s\\n' '%s' | '%s/plexusd' --config '%s' "
             "create-admin --email '%s'", u.password, getenv("PLX_BUILDDIR"),
             srv->conf_path, u.email);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    rc = plxt_run(argv, NULL, 60000, &out);
    if (rc != 0 || !strstr(out, "created admin"))
        fail_msg("create-admin from stdin: exit %d: %s", rc, out ? out : "");
    free(out);
    plxt_user_login(srv, &u);
    plxt_expect_status(srv, "GET", "/api/v1/admin/users", u.access, NULL, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_self_or_admin),
        cmocka_unit_test(test_admin_routes_need_admin),
        cmocka_unit_test(test_search_takes_wildcards_literally),
        cmocka_unit_test(test_search_bad_input_is_400),
        cmocka_unit_test(test_disable_stops_tokens_and_keys),
        cmocka_unit_test(test_role_change),
        cmocka_unit_test(test_admin_cannot_lock_self_out),
        cmocka_unit_test(test_patch_bad_input),
        cmocka_unit_test(test_audit_log),
        cmocka_unit_test(test_create_admin_command),
        cmocka_unit_test(test_create_admin_reads_stdin),
    };

    plxt_require_postgres("test_admin");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
