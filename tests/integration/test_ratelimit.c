/*
 * test_ratelimit.c - the per-instance token buckets from outside: with
 * "default = 5/60s" the sixth request of a caller is 429 with Retry-After
 * and the draft RateLimit headers, each user has a bucket of their own
 * (their API keys share it), anonymous callers are counted by address,
 * classes are separate, health and "none" routes are not limited, buckets
 * refill continuously, "enabled = no" turns it all off, and a malformed
 * class stops the server from starting. A module's own class (authz_probe
 * registers "probe", 3/60s, with plx_rate_class_add) has its default until
 * [ratelimit] or PLEXUS_RATELIMIT_<NAME> overrides it; a key for a class
 * nobody registered is a warning, a route naming one stops startup, and
 * the API refuses taken names, bad names and specs, and late calls.
 *
 * The main group shares one plexusd (default 5/60s, probe 2/60s); the
 * tests that need other settings start their own.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "identity_client.h"
#include "pgtest.h"

static plxt_server_t *srv;
static char dbname[64];
static char *db;

/* plexusd with the identity settings, authz_probe (with probe_conf in its
 * file, if any), extra INI text, environment env and arguments args (each
 * may be NULL; with args the harness does not wait for the server) */
static plxt_server_t *spawn(const char *extra, const char *probe_conf,
                            const char *const *env, const char *const *args,
                            bool expect_up)
{
    const plxt_module_t mods[] = { { .name = "authz_probe", .config = probe_conf },
                                   { 0 } };
    char cfg[2048];
    size_t n;

    plxt_identity_config(cfg, sizeof cfg, 0);
    n = strlen(cfg);
    snprintf(cfg + n, sizeof cfg - n, "[server]\nthreads = 32\n%s", extra);
    plxt_server_opts_t o = { .db_url = db, .modules = mods, .config = cfg,
                             .env = env, .args = args, .no_wait = !expect_up };
    return plxt_server_start(&o);
}

static plxt_server_t *start_with(const char *extra, const char *probe_conf,
                                 const char *const *env, bool expect_up)
{
    return spawn(extra, probe_conf, env, NULL, expect_up);
}

static plxt_server_t *start(const char *extra, bool expect_up)
{
    return spawn(extra, NULL, NULL, NULL, expect_up);
}

/* `plexusd --check-config` on such a configuration: its exit status, and
 * *out to read its log (stopped by the caller) */
static int check_config(const char *extra, plxt_server_t **out)
{
    static const char *const args[] = { "--check-config", NULL };

    *out = spawn(extra, NULL, NULL, args, false);
    assert_non_null(*out);
    return plxt_server_wait(*out, 30000);
}

static int group_setup(void **state)
{
    (void)state;
    if (!(db = pgtest_db_create(dbname)))
        return -1;
    srv = start("[ratelimit]\ndefault = 5/60s\nprobe = 2/60s\nauth = 100000/60s\n", true);
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

/* GET path on s, with "Authorization: Bearer token" or "X-API-Key: key" */
static void get(plxt_server_t *s, const char *path, const char *token,
                bool as_api_key, plxt_resp_t *resp)
{
    char url[512], h[4300];
    const char *headers[] = { h, NULL };

    snprintf(url, sizeof url, "%s%s", s->url, path);
    if (as_api_key)
        snprintf(h, sizeof h, "X-API-Key: %s", token);
    else if (token)
        plxt_bearer(token, h, sizeof h);
    if (plxt_http("GET", url, token ? headers : NULL, NULL, resp) != 0)
        fail_msg("GET %s: no response: %s", path, resp->error);
}

/* the RateLimit header: "<class>";r=<remaining>;t=<reset> */
static void ratelimit_header(const plxt_resp_t *resp, const char *cls, long *r, long *t)
{
    const char *v = plxt_resp_header(resp, "RateLimit");
    char found[32];

    if (!v || sscanf(v, "\"%31[^\"]\";r=%ld;t=%ld", found, r, t) != 3)
        fail_msg("expected RateLimit: \"%s\";r=N;t=N, found \"%s\"", cls, v ? v : "(none)");
    assert_string_equal(found, cls);
}

static void expect_policy(const plxt_resp_t *resp, const char *policy)
{
    const char *v = plxt_resp_header(resp, "RateLimit-Policy");

    if (!v || strcmp(v, policy) != 0)
        fail_msg("expected RateLimit-Policy: %s, found \"%s\"", policy, v ? v : "(none)");
}

/* n requests that must pass, with r counting down from start_r */
static void pass_n(plxt_server_t *s, const char *path, const char *token, bool key,
                   int n, const char *cls, long start_r)
{
    for (int i = 0; i < n; i++) {
        plxt_resp_t resp;
        long r, t;
        get(s, path, token, key, &resp);
        if (resp.status != 200)
            fail_msg("GET %s #%d: expected 200, found %ld: %.300s", path, i + 1,
                     resp.status, resp.body ? resp.body : "");
        ratelimit_header(&resp, cls, &r, &t);
        assert_int_equal(r, start_r - 1 - i);
        assert_true(t >= 0 && t <= 60);
        plxt_resp_free(&resp);
    }
}

/* the next request is 429 with every header and the body's retry time */
static void expect_limited(plxt_server_t *s, const char *path, const char *token,
                           bool key, const char *cls, const char *policy,
                           long max_retry)
{
    plxt_resp_t resp;
    json_t *j;
    long r, t, retry;
    const char *ra;

    get(s, path, token, key, &resp);
    if (resp.status != 429)
        fail_msg("GET %s: expected 429, found %ld: %.300s", path, resp.status,
                 resp.body ? resp.body : "");
    assert_true(plxt_resp_type_is(&resp, "application/problem+json"));
    ra = plxt_resp_header(&resp, "Retry-After");
    assert_non_null(ra);
    for (const char *p = ra; *p; p++)
        assert_true(*p >= '0' && *p <= '9');   /* delay-seconds, not a date */
    retry = atol(ra);
    assert_true(retry >= 1 && retry <= max_retry);
    expect_policy(&resp, policy);
    ratelimit_header(&resp, cls, &r, &t);
    assert_int_equal(r, 0);
    j = plxt_resp_json(&resp);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "rate_limited");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 429);
    assert_int_equal(json_integer_value(json_object_get(j, "retry_after_seconds")), retry);
    assert_non_null(json_object_get(j, "request_id"));
    json_decref(j);
    plxt_resp_free(&resp);
}

static void key_for(const plxt_user_t *u, char key[128])
{
    plxt_resp_t resp;
    json_t *j;

    plxt_call(srv, "POST", "/api/v1/api-keys", u->access, "{\"name\":\"rl\",\"scopes\":[\"probe:read\"]}", &resp);
    assert_int_equal(resp.status, 201);
    j = plxt_resp_json(&resp);
    snprintf(key, 128, "%s", json_string_value(json_object_get(j, "key")));
    json_decref(j);
    plxt_resp_free(&resp);
}

/* ---- the shared server ----------------------------------------------------------- */

static void test_sixth_request_is_429_per_user(void **state)
{
    plxt_user_t a, b;
    plxt_resp_t resp;
    const char *policy = "\"default\";q=5;w=60";

    (void)state;
    plxt_user_new(srv, db, &a);
    plxt_user_new(srv, db, &b);
    pass_n(srv, "/api/v1/probe/user", a.access, false, 5, "default", 5);
    expect_limited(srv, "/api/v1/probe/user", a.access, false, "default", policy, 12);
    /* someone else still passes; a is still refused on any default route */
    pass_n(srv, "/api/v1/probe/user", b.access, false, 1, "default", 5);
    expect_limited(srv, "/api/v1/teams", a.access, false, "default", policy, 12);
    /* another class (the module's own, overridden) is another bucket */
    pass_n(srv, "/api/v1/probe/metered", a.access, false, 2, "probe", 2);
    expect_limited(srv, "/api/v1/probe/metered", a.access, false, "probe",
                   "\"probe\";q=2;w=60", 30);
    /* the headers ride on successful answers too */
    get(srv, "/api/v1/probe/user", b.access, false, &resp);
    expect_policy(&resp, policy);
    plxt_resp_free(&resp);
}

static void test_api_keys_share_their_users_bucket(void **state)
{
    plxt_user_t c;
    char key[128];

    (void)state;
    plxt_user_new(srv, db, &c);
    key_for(&c, key);   /* one request from c */
    pass_n(srv, "/api/v1/probe/user", c.access, false, 2, "default", 4);
    pass_n(srv, "/api/v1/probe/user", key, true, 2, "default", 2);
    expect_limited(srv, "/api/v1/probe/user", key, true, "default",
                   "\"default\";q=5;w=60", 12);
    expect_limited(srv, "/api/v1/probe/user", c.access, false, "default",
                   "\"default\";q=5;w=60", 12);
}

static void test_anonymous_by_address(void **state)
{
    plxt_resp_t resp;
    plxt_user_t d;

    (void)state;
    pass_n(srv, "/api/v1/probe/public", NULL, false, 5, "default", 5);
    expect_limited(srv, "/api/v1/probe/public", NULL, false, "default",
                   "\"default\";q=5;w=60", 12);
    /* a path without a route costs the same: a scanner is limited too */
    expect_limited(srv, "/api/v1/no/such/route", NULL, false, "default",
                   "\"default\";q=5;w=60", 12);
    /* a signed-in user at the same address has a bucket of their own */
    plxt_user_new(srv, db, &d);
    get(srv, "/api/v1/probe/public", d.access, false, &resp);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
}

static void test_health_and_none_are_not_limited(void **state)
{
    static const char *const paths[] = {
        "/health/live", "/health/ready", "/health", "/api/v1/probe/unlimited",
    };

    (void)state;
    /* the anonymous default bucket is empty by now (test_anonymous_by_address)
     * and these still answer, without RateLimit headers */
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        for (int k = 0; k < 12; k++) {
            plxt_resp_t resp;
            get(srv, paths[i], NULL, false, &resp);
            if (resp.status != 200)
                fail_msg("GET %s #%d: expected 200, found %ld", paths[i], k + 1,
                         resp.status);
            assert_null(plxt_resp_header(&resp, "RateLimit"));
            assert_null(plxt_resp_header(&resp, "RateLimit-Policy"));
            plxt_resp_free(&resp);
        }
    }
}

/* ---- servers of their own ------------------------------------------------------------ */

static void test_refills_continuously(void **state)
{
    plxt_server_t *s = start("[ratelimit]\ndefault = 5/1s\n", true);
    plxt_resp_t resp;

    (void)state;
    assert_non_null(s);
    pass_n(s, "/api/v1/probe/public", NULL, false, 5, "default", 5);
    expect_limited(s, "/api/v1/probe/public", NULL, false, "default",
                   "\"default\";q=5;w=1", 1);
    plxt_sleep_ms(350);   /* one token every 200 ms */
    get(s, "/api/v1/probe/public", NULL, false, &resp);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
    assert_int_equal(plxt_server_stop(s), 0);
}

/* Refused credentials cost the client's address its "auth" budget: after
 * five unknown keys the sixth credential, even a good one, is 429 before
 * any lookup, while anonymous calls go on. */
static void test_refused_credentials_are_limited(void **state)
{
    plxt_server_t *s = start("[ratelimit]\nauth = 5/60s\ndefault = 1000/60s\n", true);
    plxt_user_t u;
    plxt_resp_t resp;
    int refused = 0, limited = 0;

    (void)state;
    assert_non_null(s);
    /* the user exists before the address spends its budget (login is an
     * "auth" request too) */
    plxt_user_new(s, db, &u);
    for (int i = 0; i < 20; i++) {
        get(s, "/api/v1/probe/user", "plx_0123456789abcdef_unknownunknownunknownunkn", true,
            &resp);
        if (resp.status == 401)
            refused++;
        else if (resp.status == 429) {
            limited++;
            assert_non_null(plxt_resp_header(&resp, "Retry-After"));
        } else {
            fail_msg("unknown key: expected 401 or 429, found %ld", resp.status);
        }
        plxt_resp_free(&resp);
    }
    assert_true(refused >= 1 && refused <= 5);
    assert_true(limited >= 15);
    /* a valid credential from the same address waits too */
    get(s, "/api/v1/probe/user", u.access, false, &resp);
    assert_int_equal(resp.status, 429);
    plxt_resp_free(&resp);
    /* anonymous calls are not credentials */
    get(s, "/api/v1/probe/public", NULL, false, &resp);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
    assert_int_equal(plxt_server_stop(s), 0);
}

static void test_disabled(void **state)
{
    plxt_server_t *s = start("[ratelimit]\nenabled = no\ndefault = 1/60s\n", true);

    (void)state;
    assert_non_null(s);
    for (int i = 0; i < 10; i++) {
        plxt_resp_t resp;
        get(s, "/api/v1/probe/public", NULL, false, &resp);
        assert_int_equal(resp.status, 200);
        assert_null(plxt_resp_header(&resp, "RateLimit"));
        plxt_resp_free(&resp);
    }
    assert_int_equal(plxt_server_stop(s), 0);
}

static void test_bad_class_refuses_to_start(void **state)
{
    static const char *const bad[] = {
        "default = lots\n", "probe = 10\n", "webhooks = 0/60s\n", "auth = 5/0s\n",
        "default = 5/60y\n", "default = 99999999999/60s\n", "default = 5/9999d\n",
    };

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char extra[128];
        snprintf(extra, sizeof extra, "[ratelimit]\n%s", bad[i]);
        plxt_server_t *s = start(extra, false);
        assert_non_null(s);
        int rc = plxt_server_wait(s, 30000);
        if (rc <= 0)
            fail_msg("\"%.*s\": expected a non-zero exit, found %d", (int)strlen(bad[i]) - 1,
                     bad[i], rc);
        assert_true(plxt_server_log_contains(s, "[ratelimit]"));
        plxt_server_stop(s);
    }
}

/* A module's class has the module's default (3/60s) when nothing
 * overrides it, and the environment overrides it like a file key. */
static void test_module_class_default_and_env(void **state)
{
    static const char *const env[] = { "PLEXUS_RATELIMIT_PROBE=4/30s", NULL };
    plxt_server_t *s = start("", true);

    (void)state;
    assert_non_null(s);
    pass_n(s, "/api/v1/probe/metered", NULL, false, 3, "probe", 3);
    expect_limited(s, "/api/v1/probe/metered", NULL, false, "probe",
                   "\"probe\";q=3;w=60", 20);
    assert_int_equal(plxt_server_stop(s), 0);

    s = start_with("[ratelimit]\nprobe = 1/60s\n", NULL, env, true);
    assert_non_null(s);
    pass_n(s, "/api/v1/probe/metered", NULL, false, 4, "probe", 4);
    expect_limited(s, "/api/v1/probe/metered", NULL, false, "probe",
                   "\"probe\";q=4;w=30", 8);
    assert_int_equal(plxt_server_stop(s), 0);
}

/* A key for a class no loaded module registers (its module is off, say)
 * is a warning naming it, in the file or in the environment; the server
 * runs and so does --check-config. */
static void test_unregistered_class_key_warns(void **state)
{
    static const char *const env[] = { "PLEXUS_RATELIMIT_SEARCH=5/60s", NULL };
    plxt_server_t *s = start_with("[ratelimit]\nwebhooks = 600/60s\n", NULL, env, true);
    int rc;

    (void)state;
    assert_non_null(s);
    /* (the log is JSON: its quotes are escaped) */
    assert_true(plxt_server_log_contains(s, "[ratelimit] webhooks: no loaded module "
                                            "registers the rate class \\\"webhooks\\\""));
    assert_true(plxt_server_log_contains(s, "environment variable PLEXUS_RATELIMIT_SEARCH"));
    assert_int_equal(plxt_server_stop(s), 0);

    /* --check-config: a key of an absent class is fine, a malformed one not */
    rc = check_config("[ratelimit]\nwebhooks = 600/60s\n", &s);
    assert_int_equal(rc, 0);
    plxt_server_stop(s);
    rc = check_config("[ratelimit]\nwebhooks = 600 a minute\n", &s);
    assert_true(rc > 0);
    assert_true(plxt_server_log_contains(s, "[ratelimit] webhooks = \\\"600 a minute\\\""));
    plxt_server_stop(s);
}

/* A route naming a class that nobody registered stops startup, and the
 * line names the route and the class. */
static void test_route_with_unregistered_class_refused(void **state)
{
    plxt_server_t *s = start_with("", "[authz_probe]\nextra_class = webhooks\n", NULL,
                                  false);
    int rc;

    (void)state;
    assert_non_null(s);
    rc = plxt_server_wait(s, 30000);
    if (rc <= 0)
        fail_msg("expected a non-zero exit, found %d", rc);
    assert_true(plxt_server_log_contains(s, "route \\\"GET /api/v1/probe/extra\\\" of "
                                            "module \\\"authz_probe\\\" names the rate "
                                            "class \\\"webhooks\\\""));
    plxt_server_stop(s);

    /* the same route in a registered class starts */
    s = start_with("", "[authz_probe]\nextra_class = probe\n", NULL, true);
    assert_non_null(s);
    assert_int_equal(plxt_server_stop(s), 0);
}

/* plx_rate_class_add refuses a taken name (the module's own, the core's),
 * bad names, bad specs, and any call after init: authz_probe fails its
 * init or start otherwise */
static void test_rate_class_add_refusals(void **state)
{
    plxt_server_t *s = start_with("", "[authz_probe]\nclass_errors = yes\n", NULL, true);

    (void)state;
    assert_non_null(s);
    assert_true(plxt_server_log_contains(s, "rate class refusals as documented"));
    assert_true(plxt_server_log_contains(s, "already registered by \\\"authz_probe\\\""));
    assert_true(plxt_server_log_contains(s, "already registered by \\\"core\\\""));
    assert_int_equal(plxt_server_stop(s), 0);
}

/* GET path from the loopback address src (any 127.x.y.z is ours on Linux):
 * the HTTP status, or -1 */
static long get_from(const char *src, int port, const char *path)
{
    struct sockaddr_in from = { .sin_family = AF_INET };
    struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    struct timeval tv = { .tv_sec = 5 };
    char req[256], buf[512];
    long status = -1, n, got = 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    inet_pton(AF_INET, src, &from.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 "Connection: close\r\n\r\n", path);
    if (bind(fd, (struct sockaddr *)&from, sizeof from) == 0
        && connect(fd, (struct sockaddr *)&to, sizeof to) == 0
        && send(fd, req, (size_t)n, 0) == n) {
        while (got < (long)sizeof buf - 1 && (n = recv(fd, buf + got, sizeof buf - 1 - (size_t)got, 0)) > 0)
            got += n;
        buf[got] = '\0';
        if (sscanf(buf, "HTTP/1.%*d %ld", &status) != 1)
            status = -1;
    }
    close(fd);
    return status;
}

/* The table is bounded by max_keys: after a flood of other callers, an
 * exhausted caller's bucket has been forgotten (the price of the bound),
 * while without the flood it is remembered. */
static void test_buckets_are_bounded(void **state)
{
    plxt_server_t *s = start("[ratelimit]\ndefault = 2/600s\nmax_keys = 100\n", true);
    char src[32];

    (void)state;
    assert_non_null(s);
    for (int i = 0; i < 2; i++)
        assert_int_equal(get_from("127.0.9.1", s->port, "/api/v1/probe/public"), 200);
    assert_int_equal(get_from("127.0.9.1", s->port, "/api/v1/probe/public"), 429);
    for (int i = 0; i < 1000; i++) {
        snprintf(src, sizeof src, "127.0.%d.%d", 10 + i / 200, 2 + i % 200);
        long st = get_from(src, s->port, "/api/v1/probe/public");
        if (st != 200)
            fail_msg("GET from %s: expected 200, found %ld", src, st);
    }
    assert_int_equal(get_from("127.0.9.1", s->port, "/api/v1/probe/public"), 200);
    assert_int_equal(plxt_server_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sixth_request_is_429_per_user),
        cmocka_unit_test(test_api_keys_share_their_users_bucket),
        cmocka_unit_test(test_anonymous_by_address),
        cmocka_unit_test(test_health_and_none_are_not_limited),
        cmocka_unit_test(test_refills_continuously),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_refused_credentials_are_limited),
        cmocka_unit_test(test_buckets_are_bounded),
        cmocka_unit_test(test_bad_class_refuses_to_start),
        cmocka_unit_test(test_module_class_default_and_env),
        cmocka_unit_test(test_unregistered_class_key_warns),
        cmocka_unit_test(test_route_with_unregistered_class_refused),
        cmocka_unit_test(test_rate_class_add_refusals),
    };

    plxt_require_postgres("test_ratelimit");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
