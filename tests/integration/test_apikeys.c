/*
 * test_apikeys.c - API keys from outside: made once and never shown again,
 * accepted as "Authorization: Bearer plx_..." and as "X-API-Key", held to
 * their scopes by the core's route options (through the authz_probe
 * module), refused once revoked, expired or their user disabled, unable to
 * mint keys, listed without their secret, and hostile input answering 400;
 * and what ABI 1.3 gave modules for their protocols: a WebSocket token
 * offered as the "bearer" subprotocol, errors in a module's own shape under
 * its prefix, and SSE comments that find a vanished client
 *
 * One plexusd with authz_probe; every test makes its own user.
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

#include "harness.h"
#include "identity_client.h"
#include "pgtest.h"

static plxt_server_t *srv;
static char dbname[64];
static char *db;

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

/* ---- helpers ------------------------------------------------------------------- */

/* GET path with "X-API-Key: key" */
static long get_with_x_api_key(const char *path, const char *key, json_t **out)
{
    char url[1024], h[512];
    const char *headers[] = { h, NULL };
    plxt_resp_t resp;
    long status;

    snprintf(url, sizeof url, "%s%s", srv->url, path);
    snprintf(h, sizeof h, "X-API-Key: %s", key);
    if (plxt_http("GET", url, headers, NULL, &resp) != 0)
        fail_msg("GET %s: no response: %s", path, resp.error);
    status = resp.status;
    if (out)
        *out = plxt_resp_json(&resp);
    plxt_resp_free(&resp);
    return status;
}

typedef struct key {
    char id[37];
    char key[128];
    char prefix[32];
} key_t_;

/* POST /api/v1/api-keys with body; expects 201 and checks the answer's shape */
static void key_new(const plxt_user_t *u, const char *body, key_t_ *k)
{
    json_t *j = plxt_expect(srv, "POST", "/api/v1/api-keys", u->access, body, 201);
    const char *key = plxt_str(j, "key");

    snprintf(k->id, sizeof k->id, "%s", plxt_str(j, "id"));
    snprintf(k->key, sizeof k->key, "%s", key);
    snprintf(k->prefix, sizeof k->prefix, "%s", plxt_str(j, "prefix"));
    /* plx_<12>_<43>, the prefix is the one in the key */
    assert_int_equal(strlen(key), 60);
    assert_memory_equal(key, "plx_", 4);
    assert_int_equal(strlen(k->prefix), 12);
    assert_memory_equal(key + 4, k->prefix, 12);
    assert_int_equal(key[16], '_');
    assert_non_null(json_object_get(j, "created_at"));
    assert_true(json_is_array(json_object_get(j, "scopes")));
    assert_non_null(json_object_get(j, "expires_at"));
    json_decref(j);
}

static json_t *key_listed(const plxt_user_t *u, const char *id)
{
    json_t *j = plxt_expect(srv, "GET", "/api/v1/api-keys?limit=200", u->access, NULL, 200);
    json_t *items = json_object_get(j, "items"), *found = NULL;

    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *k = json_array_get(items, i);
        if (strcmp(plxt_str(k, "id"), id) == 0)
            found = json_incref(k);
    }
    json_decref(j);
    return found;
}

static long audit_count(const char *action, const char *target)
{
    char v[32];
    const char *p[2] = { action, target };

    plxt_db_value(db, "SELECT count(*) FROM plexus.audit_log WHERE action = $1 "
                  "AND target_id = $2", 2, p, v, sizeof v);
    return atol(v);
}

/* ---- tests ----------------------------------------------------------------------- */

static void test_key_works_as_bearer_and_header(void **state)
{
    plxt_user_t u;
    key_t_ k;
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    key_new(&u, "{\"name\":\"ci\",\"scopes\":[\"probe:read\"]}", &k);
    j = plxt_expect(srv, "GET", "/api/v1/probe/user", k.key, NULL, 200);
    assert_string_equal(plxt_str(j, "user_id"), u.id);
    assert_false(json_is_true(json_object_get(j, "admin")));
    json_decref(j);
    assert_int_equal(get_with_x_api_key("/api/v1/probe/user", k.key, &j), 200);
    assert_string_equal(plxt_str(j, "user_id"), u.id);
    json_decref(j);
    /* last use is recorded */
    j = key_listed(&u, k.id);
    assert_non_null(j);
    assert_true(json_is_string(json_object_get(j, "last_used_at")));
    json_decref(j);
    assert_int_equal(audit_count("apikey.created", k.id), 1);
}

static void test_list_never_shows_the_secret(void **state)
{
    plxt_user_t u, other;
    key_t_ k;
    json_t *j;
    char *text;

    (void)state;
    plxt_user_new(srv, db, &u);
    plxt_user_new(srv, db, &other);
    key_new(&u, "{\"name\":\"listed\",\"scopes\":[\"a.b\",\"c:d\"],"
                "\"expires_at\":\"2999-01-01T00:00:00Z\"}", &k);
    j = key_listed(&u, k.id);
    assert_non_null(j);
    assert_string_equal(plxt_str(j, "name"), "listed");
    assert_string_equal(plxt_str(j, "prefix"), k.prefix);
    assert_int_equal(json_array_size(json_object_get(j, "scopes")), 2);
    assert_string_equal(plxt_str(j, "expires_at"), "2999-01-01T00:00:00.000Z");
    assert_true(json_is_false(json_object_get(j, "revoked")));
    assert_null(json_object_get(j, "key"));
    assert_null(json_object_get(j, "key_hash"));
    text = json_dumps(j, 0);
    assert_null(strstr(text, k.key + 17));   /* the secret part, anywhere */
    free(text);
    json_decref(j);
    /* someone else's list does not hold it */
    assert_null(key_listed(&other, k.id));
    /* an API key manages no keys, not even listing them */
    plxt_expect_status(srv, "GET", "/api/v1/api-keys", k.key, NULL, 403);
}

static void test_revoke(void **state)
{
    plxt_user_t u, other;
    key_t_ k;
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    plxt_user_new(srv, db, &other);
    key_new(&u, "{\"name\":\"short-lived\",\"scopes\":[\"probe:read\"]}", &k);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 200);
    /* another user's key id is "not found", and stays working */
    char path[128];
    snprintf(path, sizeof path, "/api/v1/api-keys/%s", k.id);
    plxt_expect_status(srv, "DELETE", path, other.access, NULL, 404);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 200);
    plxt_expect_status(srv, "DELETE", path, u.access, NULL, 204);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 401);
    assert_int_equal(get_with_x_api_key("/api/v1/probe/user", k.key, NULL), 401);
    /* idempotent, audited once */
    plxt_expect_status(srv, "DELETE", path, u.access, NULL, 204);
    assert_int_equal(audit_count("apikey.revoked", k.id), 1);
    j = key_listed(&u, k.id);
    assert_true(json_is_true(json_object_get(j, "revoked")));
    assert_true(json_is_string(json_object_get(j, "revoked_at")));
    json_decref(j);
    plxt_expect_status(srv, "DELETE", "/api/v1/api-keys/0b7e7c52-3f0e-4c43-9f5e-1a1f3a1b2c3d",
                  u.access, NULL, 404);
    plxt_expect_status(srv, "DELETE", "/api/v1/api-keys/x%27%20OR%201%3D1", u.access, NULL, 404);
}

static void test_scopes_are_enforced(void **state)
{
    plxt_user_t u;
    key_t_ reader, none, writer;
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    key_new(&u, "{\"name\":\"reader\",\"scopes\":[\"probe:read\"]}", &reader);
    key_new(&u, "{\"name\":\"none\",\"scopes\":[]}", &none);
    key_new(&u, "{\"name\":\"writer\",\"scopes\":[\"probe:write\"]}", &writer);
    plxt_expect_status(srv, "GET", "/api/v1/probe/scoped", reader.key, NULL, 200);
    assert_int_equal(get_with_x_api_key("/api/v1/probe/scoped", reader.key, NULL), 200);
    plxt_expect_status(srv, "GET", "/api/v1/probe/scoped", none.key, NULL, 403);
    plxt_expect_status(srv, "GET", "/api/v1/probe/scoped", writer.key, NULL, 403);
    /* the user's own token holds every scope of the user */
    plxt_expect_status(srv, "GET", "/api/v1/probe/scoped", u.access, NULL, 200);
    /* what a module sees */
    j = plxt_expect(srv, "GET", "/api/v1/probe/user", reader.key, NULL, 200);
    assert_true(json_is_true(json_object_get(j, "probe_read")));
    assert_false(json_is_true(json_object_get(j, "probe_write")));
    json_decref(j);
    /* a route open to keys names its scope: without it, no entry */
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", writer.key, NULL, 403);
    /* a route that names no scope is closed to every key, whatever it holds */
    plxt_expect_status(srv, "POST", "/api/v1/probe/audit", reader.key, "{}", 403);
    plxt_expect_status(srv, "GET", "/api/v1/auth/me", reader.key, NULL, 403);
    plxt_expect_status(srv, "GET", "/api/v1/auth/sessions", reader.key, NULL, 403);
    j = plxt_expect(srv, "GET", "/api/v1/probe/user", u.access, NULL, 200);
    assert_true(json_is_true(json_object_get(j, "probe_read")));
    json_decref(j);
    /* anonymous */
    plxt_expect_status(srv, "GET", "/api/v1/probe/scoped", NULL, NULL, 401);
}

static void test_admin_needs_admin_user_and_scope(void **state)
{
    plxt_user_t admin, plain;
    key_t_ with, without, pretender;

    (void)state;
    plxt_user_new(srv, db, &admin);
    plxt_user_new(srv, db, &plain);
    plxt_user_make_admin(db, &admin);
    key_new(&admin, "{\"name\":\"ops\",\"scopes\":[\"admin\"]}", &with);
    key_new(&admin, "{\"name\":\"daily\",\"scopes\":[\"probe:read\"]}", &without);
    key_new(&plain, "{\"name\":\"sneaky\",\"scopes\":[\"admin\"]}", &pretender);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", admin.access, NULL, 200);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", with.key, NULL, 200);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", without.key, NULL, 403);
    plxt_expect_status(srv, "GET", "/api/v1/probe/admin", pretender.key, NULL, 403);
    plxt_expect_status(srv, "GET", "/api/v1/admin/users", pretender.key, NULL, 403);
    plxt_expect_status(srv, "GET", "/api/v1/admin/users", with.key, NULL, 200);
}

static void test_expired_key_is_refused(void **state)
{
    plxt_user_t u;
    key_t_ k;

    (void)state;
    plxt_user_new(srv, db, &u);
    key_new(&u, "{\"name\":\"soon\",\"scopes\":[\"probe:read\"],\"expires_at\":\"2999-12-31T23:59:59+02:00\"}",
            &k);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 200);
    const char *p[1] = { k.id };
    assert_int_equal(plxt_db_exec(db, "UPDATE plexus.api_keys SET expires_at = "
                                  "now() - interval '1 second' WHERE id = $1", 1, p), 1);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 401);
    assert_int_equal(get_with_x_api_key("/api/v1/probe/user", k.key, NULL), 401);
}

static void test_disabled_user_key_is_refused(void **state)
{
    plxt_user_t u;
    key_t_ k;

    (void)state;
    plxt_user_new(srv, db, &u);
    key_new(&u, "{\"name\":\"bot\",\"scopes\":[\"probe:read\"]}", &k);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 200);
    const char *p[1] = { u.id };
    assert_int_equal(plxt_db_exec(db, "UPDATE plexus.users SET disabled_at = now() "
                                  "WHERE id = $1", 1, p), 1);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 401);
    assert_int_equal(plxt_db_exec(db, "UPDATE plexus.users SET disabled_at = NULL "
                                  "WHERE id = $1", 1, p), 1);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 200);
}

static void test_key_cannot_create_keys(void **state)
{
    plxt_user_t u;
    key_t_ k;
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    key_new(&u, "{\"name\":\"all\",\"scopes\":[\"admin\",\"probe:read\"]}", &k);
    j = plxt_expect(srv, "POST", "/api/v1/api-keys", k.key, "{\"name\":\"child\"}", 403);
    assert_string_equal(plxt_str(j, "code"), "api_key_forbidden");
    json_decref(j);
    const char *p[1] = { u.id };
    char v[16];
    plxt_db_value(db, "SELECT count(*) FROM plexus.api_keys WHERE user_id = $1", 1, p,
                  v, sizeof v);
    assert_string_equal(v, "1");
}

static void test_forged_keys_are_401(void **state)
{
    static const char *const forged[] = {
        "plx_", "plx_short", "plx_AAAAAAAAAAAA_", "plx_' OR '1'='1",
        "plx_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",  /* right shape */
        "plx_AAAAAAAAAAAA_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA%",
        "plx_\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    plxt_user_t u;
    key_t_ k;
    char tampered[128];

    (void)state;
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        plxt_expect_status(srv, "GET", "/api/v1/probe/user", forged[i], NULL, 401);
        assert_int_equal(get_with_x_api_key("/api/v1/probe/user", forged[i], NULL), 401);
    }
    /* a real prefix with a wrong secret */
    plxt_user_new(srv, db, &u);
    key_new(&u, "{\"name\":\"real\",\"scopes\":[\"probe:read\"]}", &k);
    snprintf(tampered, sizeof tampered, "%s", k.key);
    tampered[40] = tampered[40] == 'A' ? 'B' : 'A';
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", tampered, NULL, 401);
    /* a key of the right length but cut and padded */
    snprintf(tampered, sizeof tampered, "%.59s", k.key);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", tampered, NULL, 401);
    plxt_expect_status(srv, "GET", "/api/v1/probe/user", k.key, NULL, 200);
}

static void test_bad_input_is_400(void **state)
{
    static const char *const bad[] = {
        "{}", "[]", "{\"name\":\"\"}", "{\"name\":7}", "{\"name\":\"a\\u0000\"}",
        "{\"name\":\"\xff\"}",
        "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
        "{\"name\":\"k\",\"scopes\":\"admin\"}", "{\"name\":\"k\",\"scopes\":[1]}",
        "{\"name\":\"k\",\"scopes\":[\"\"]}", "{\"name\":\"k\",\"scopes\":[\"Admin\"]}",
        "{\"name\":\"k\",\"scopes\":[\"a b\"]}", "{\"name\":\"k\",\"scopes\":[\"x'--\"]}",
        "{\"name\":\"k\",\"scopes\":[\"{a,b}\"]}", "{\"name\":\"k\",\"scopes\":[\"a\\\"\"]}",
        "{\"name\":\"k\",\"scopes\":[\"a\",\"a\"]}", "{\"name\":\"k\",\"scopes\":[\"\xc3\xa9\"]}",
        "{\"name\":\"k\",\"scopes\":[\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"]}",
        "{\"name\":\"k\",\"expires_at\":\"2000-01-01T00:00:00Z\"}",
        "{\"name\":\"k\",\"expires_at\":\"tomorrow\"}",
        "{\"name\":\"k\",\"expires_at\":\"2999-02-30T00:00:00Z\"}",
        "{\"name\":\"k\",\"expires_at\":\"2999-01-01 00:00:00\"}",
        "{\"name\":\"k\",\"expires_at\":\"2999-01-01T25:00:00Z\"}",
        "{\"name\":\"k\",\"expires_at\":\"2999-01-01T00:00:00+0100\"}",
        "{\"name\":\"k\",\"expires_at\":\"2999-01-01T00:00:00Z'; DROP TABLE x; --\"}",
        "{\"name\":\"k\",\"expires_at\":12345}",
    };
    char many[2048];
    plxt_user_t u;
    key_t_ k;
    size_t n;

    (void)state;
    plxt_user_new(srv, db, &u);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        plxt_expect_status(srv, "POST", "/api/v1/api-keys", u.access, bad[i], 400);
    /* 33 scopes */
    n = (size_t)snprintf(many, sizeof many, "{\"name\":\"k\",\"scopes\":[");
    for (int i = 0; i < 33; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "%s\"s%d\"", i ? "," : "", i);
    snprintf(many + n, sizeof many - n, "]}");
    plxt_expect_status(srv, "POST", "/api/v1/api-keys", u.access, many, 400);
    /* 32 scopes, 64-byte scopes, a null expiry and SQL in the name are fine */
    many[strlen(many) - 2] = '\0';
    *strrchr(many, ',') = '\0';
    strcat(many, "]}");
    key_new(&u, many, &k);
    key_new(&u, "{\"name\":\"k'); DELETE FROM plexus.api_keys; --\",\"scopes\":[\"null\","
                "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"],"
                "\"expires_at\":null}", &k);
    json_t *j = key_listed(&u, k.id);
    assert_string_equal(plxt_str(j, "name"), "k'); DELETE FROM plexus.api_keys; --");
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "scopes"), 0)),
                        "null");
    json_decref(j);
    plxt_expect_status(srv, "GET", "/api/v1/api-keys?limit=0", u.access, NULL, 400);
    j = plxt_expect(srv, "POST", "/api/v1/api-keys", u.access, "[\"name\"]", 400);
    assert_string_equal(plxt_str(j, "code"), "invalid_body");
    json_decref(j);
    plxt_expect_status(srv, "GET", "/api/v1/api-keys?cursor=%FF", u.access, NULL, 400);
    /* crafted cursors: "9223372036854775807,<uuid>" (microseconds past any
     * timestamp), "api-keys|99999-01-01T00:00:00Z|<uuid>" (a huge year),
     * "api-keys|2026-02-30T00:00:00Z|<uuid>" (no such day) */
    plxt_expect_status(srv, "GET", "/api/v1/api-keys?cursor=OTIyMzM3MjAzNjg1NDc3NTgwNywx"
                       "MjNlNDU2Ny1lODliLTQyZDMtYTQ1Ni00MjY2MTQxNzQwMDA", u.access, NULL, 400);
    plxt_expect_status(srv, "GET", "/api/v1/api-keys?cursor=YXBpLWtleXN8OTk5OTktMDEtMDFUMD"
                       "A6MDA6MDBafDEyM2U0NTY3LWU4OWItNDJkMy1hNDU2LTQyNjYxNDE3NDAwMA", u.access,
                       NULL, 400);
    plxt_expect_status(srv, "GET", "/api/v1/api-keys?cursor=YXBpLWtleXN8MjAyNi0wMi0zMFQwMD"
                       "owMDowMFp8MTIzZTQ1NjctZTg5Yi00MmQzLWE0NTYtNDI2NjE0MTc0MDAw", u.access,
                       NULL, 400);
    assert_false(plxt_server_log_contains(srv, "\"status\":500"));
}

static void test_pagination(void **state)
{
    plxt_user_t u;
    key_t_ k[5];
    char cursor[256] = "", seen[5][37];
    int nseen = 0;

    (void)state;
    plxt_user_new(srv, db, &u);
    for (int i = 0; i < 5; i++)
        key_new(&u, "{\"name\":\"page\"}", &k[i]);
    for (int page = 0; page < 5; page++) {
        char path[512];
        snprintf(path, sizeof path, "/api/v1/api-keys?limit=2%s%s",
                 cursor[0] ? "&cursor=" : "", cursor);
        json_t *j = plxt_expect(srv, "GET", path, u.access, NULL, 200);
        json_t *items = json_object_get(j, "items");
        for (size_t i = 0; i < json_array_size(items) && nseen < 5; i++)
            snprintf(seen[nseen++], 37, "%s", plxt_str(json_array_get(items, i), "id"));
        json_t *next = json_object_get(j, "next_cursor");
        if (json_is_null(next)) {
            json_decref(j);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(j);
    }
    assert_int_equal(nseen, 5);
    for (int i = 0; i < 5; i++)
        assert_string_equal(seen[i], k[4 - i].id);   /* newest first */
}

/* ---- ABI 1.3 ---------------------------------------------------------------------- */

static void test_ws_bearer_subprotocol(void **state)
{
    plxt_user_t u;
    key_t_ k;
    char h[4200];
    const char *headers[] = { h, NULL };
    plxt_ws_msg_t msg;
    plxt_ws_t *ws;
    int status;

    (void)state;
    plxt_user_new(srv, db, &u);
    /* a browser's way: the token rides as the second offered protocol */
    snprintf(h, sizeof h, "Sec-WebSocket-Protocol: bearer, %s", u.access);
    ws = plxt_ws_connect(srv->url, "/api/v1/probe/ws", headers, 5000, &status);
    assert_int_equal(status, 101);
    assert_non_null(ws);
    assert_string_equal(plxt_ws_protocol(ws), "bearer");   /* never the token */
    assert_int_equal(plxt_ws_recv(ws, &msg, 5000), 1);
    assert_non_null(strstr(msg.data, u.id));
    plxt_ws_msg_free(&msg);
    plxt_ws_free(ws);

    /* an API key works the same way */
    key_new(&u, "{\"name\":\"ws\",\"scopes\":[\"probe:read\"]}", &k);
    snprintf(h, sizeof h, "Sec-WebSocket-Protocol: bearer, %s", k.key);
    ws = plxt_ws_connect(srv->url, "/api/v1/probe/ws", headers, 5000, &status);
    assert_int_equal(status, 101);
    assert_int_equal(plxt_ws_recv(ws, &msg, 5000), 1);
    assert_non_null(strstr(msg.data, u.id));
    plxt_ws_msg_free(&msg);
    plxt_ws_free(ws);

    /* a bad token is refused, not downgraded; no token at all is 401 too */
    snprintf(h, sizeof h, "Sec-WebSocket-Protocol: bearer, %s", "eyJhbGciOiJIUzI1NiJ9.e30.xxxx");
    ws = plxt_ws_connect(srv->url, "/api/v1/probe/ws", headers, 5000, &status);
    assert_null(ws);
    assert_int_equal(status, 401);
    ws = plxt_ws_connect(srv->url, "/api/v1/probe/ws", NULL, 5000, &status);
    assert_null(ws);
    assert_int_equal(status, 401);
}

/* ---- a socket does not outlive its credential ---------------------------------- */

static plxt_ws_t *probe_socket(const char *credential)
{
    char h[4200];
    const char *headers[] = { h, NULL };
    plxt_ws_msg_t msg;
    plxt_ws_t *ws;
    int status = 0;

    snprintf(h, sizeof h, "Authorization: Bearer %s", credential);
    ws = plxt_ws_connect(srv->url, "/api/v1/probe/ws", headers, 5000, &status);
    assert_int_equal(status, 101);
    assert_int_equal(plxt_ws_recv(ws, &msg, 5000), 1);   /* the greeting */
    plxt_ws_msg_free(&msg);
    return ws;
}

/* the server's close frame, 1008, within a second and a half of t0 */
static void expect_closed(plxt_ws_t *ws, double t0)
{
    plxt_ws_msg_t msg;

    for (;;) {
        if (plxt_ws_recv(ws, &msg, 3000) != 1)
            fail_msg("no close frame within 3 s of the credential ending");
        if (msg.opcode == PLXT_WS_CLOSE)
            break;
        plxt_ws_msg_free(&msg);
    }
    assert_int_equal(msg.close_code, 1008);
    plxt_ws_msg_free(&msg);
    if (plxt_now_ms() - t0 > 1500)
        fail_msg("closed %.0f ms after the credential ended", plxt_now_ms() - t0);
    plxt_ws_free(ws);
}

static void test_ws_ends_with_its_credential(void **state)
{
    plxt_user_t u, other;
    key_t_ k;
    plxt_ws_t *by_token, *by_key, *bystander;
    double t0;

    (void)state;
    plxt_user_new(srv, db, &u);
    plxt_user_new(srv, db, &other);
    key_new(&u, "{\"name\":\"ws\",\"scopes\":[\"probe:read\"]}", &k);
    by_token = probe_socket(u.access);
    by_key = probe_socket(k.key);
    bystander = probe_socket(other.access);

    /* logout ends the session of the token */
    t0 = plxt_now_ms();
    plxt_expect_status(srv, "POST", "/api/v1/auth/logout", u.access, NULL, 204);
    expect_closed(by_token, t0);

    /* revoking the key ends its socket */
    plxt_user_login(srv, &u);
    t0 = plxt_now_ms();
    plxt_expect_status(srv, "DELETE", plxt_fmt("/api/v1/api-keys/%s", k.id), u.access,
                       NULL, 204);
    expect_closed(by_key, t0);

    /* a disabled user's sockets end, however they were opened */
    by_token = probe_socket(u.access);
    t0 = plxt_now_ms();
    plxt_db_exec(db, "UPDATE plexus.users SET disabled_at = now() WHERE id = $1", 1,
                 (const char *const[]){ u.id });
    expect_closed(by_token, t0);

    /* nobody else's socket was touched */
    assert_int_equal(plxt_ws_send_text(bystander, "still here"), 0);
    assert_false(plxt_ws_wait_eof(bystander, 300));
    plxt_ws_free(bystander);
}

static void test_error_shape_under_prefix(void **state)
{
    plxt_user_t u;
    plxt_resp_t resp;
    char url[512];
    json_t *j;

    (void)state;
    plxt_user_new(srv, db, &u);
    j = plxt_expect(srv, "GET", "/probe-v1/me", u.access, NULL, 200);
    assert_string_equal(plxt_str(j, "user_id"), u.id);
    json_decref(j);

    /* the core's own refusals take the module's shape there */
    snprintf(url, sizeof url, "%s/probe-v1/me", srv->url);
    assert_int_equal(plxt_http("GET", url, NULL, NULL, &resp), 0);
    assert_int_equal(resp.status, 401);
    assert_true(plxt_resp_type_is(&resp, "application/json"));
    j = plxt_resp_json(&resp);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "error"), "status")), 401);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "unauthenticated");
    json_decref(j);
    plxt_resp_free(&resp);

    snprintf(url, sizeof url, "%s/probe-v1/nothing-here", srv->url);
    assert_int_equal(plxt_http("GET", url, NULL, NULL, &resp), 0);
    assert_int_equal(resp.status, 404);
    j = plxt_resp_json(&resp);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "not_found");
    json_decref(j);
    plxt_resp_free(&resp);

    /* elsewhere errors stay problem+json */
    snprintf(url, sizeof url, "%s/api/v1/probe/nothing-here", srv->url);
    assert_int_equal(plxt_http("GET", url, NULL, NULL, &resp), 0);
    assert_int_equal(resp.status, 404);
    assert_true(plxt_resp_type_is(&resp, "application/problem+json"));
    plxt_resp_free(&resp);
}

static void test_sse_comment_finds_a_gone_client(void **state)
{
    plxt_stream_t *st;
    char buf[256];
    double closed_at;
    long n;

    (void)state;
    st = plxt_stream_open(srv->url, "/api/v1/probe/wait", NULL, 5000);
    assert_non_null(st);
    assert_int_equal(plxt_stream_status(st), 200);
    n = plxt_stream_read(st, buf, sizeof buf - 1, 5000);
    assert_true(n > 0);
    buf[n] = '\0';
    assert_non_null(strstr(buf, ": waiting\n\n"));
    plxt_stream_close(st);
    closed_at = plxt_now_ms();
    /* the producer writes every 100 ms: its second write after the close
     * fails, well within a second */
    assert_true(plxt_server_log_wait(srv, "probe: client gone after", 3000));
    assert_true(plxt_now_ms() - closed_at < 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_works_as_bearer_and_header),
        cmocka_unit_test(test_list_never_shows_the_secret),
        cmocka_unit_test(test_revoke),
        cmocka_unit_test(test_scopes_are_enforced),
        cmocka_unit_test(test_admin_needs_admin_user_and_scope),
        cmocka_unit_test(test_expired_key_is_refused),
        cmocka_unit_test(test_disabled_user_key_is_refused),
        cmocka_unit_test(test_key_cannot_create_keys),
        cmocka_unit_test(test_forged_keys_are_401),
        cmocka_unit_test(test_bad_input_is_400),
        cmocka_unit_test(test_pagination),
        cmocka_unit_test(test_ws_bearer_subprotocol),
        cmocka_unit_test(test_ws_ends_with_its_credential),
        cmocka_unit_test(test_error_shape_under_prefix),
        cmocka_unit_test(test_sse_comment_finds_a_gone_client),
    };

    plxt_require_postgres("test_apikeys");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
