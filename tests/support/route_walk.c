/*
 * route_walk.c - every route of a running server, tried as hostile callers
 *
 * See route_walk.h. The table comes from `plexusd --config <the server's
 * file> routes`, so it is exactly what the server under test registered,
 * modules included.
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

#include "identity_client.h"
#include "route_walk.h"

#define WALK_PATH_MAX 1024

typedef struct walk {
    plxt_server_t *srv;
    const char    *db;
    const plxt_walk_opts_t *opts;
    plxt_user_t    owner, outsider, viewer, gone;
    char           team[37];
    char          *expired;       /* a signed token whose exp has passed */
    char           key[160];      /* the outsider's key, scope walk:nothing */
} walk_t;

/* the route table the server registered, as JSON (new reference) */
static json_t *routes_of(plxt_server_t *srv)
{
    const char *argv[] = { "plexusd", "--config", srv->conf_path, "routes", NULL };
    char *out = NULL;
    json_t *j = NULL;
    int rc = plxt_run(argv, NULL, 60000, &out);
    const char *start = out;

    if (rc != 0 || !out)
        fail_msg("plexusd routes: exit %d: %.2000s", rc, out ? out : "");
    /* log lines (one JSON object each) may come first on the same output */
    while (start && *start && *start != '[')
        start = (start = strchr(start, '\n')) ? start + 1 : NULL;
    if (start && *start)
        j = json_loads(start, JSON_DISABLE_EOF_CHECK, NULL);
    if (!json_is_array(j))
        fail_msg("plexusd routes printed no JSON array: %.2000s", out);
    free(out);
    return j;
}

/* the pattern with every {param} set to value */
static void path_fill(const char *pattern, const char *value, char *out, size_t cap)
{
    size_t o = 0;

    for (const char *p = pattern; *p && o + 1 < cap; p++) {
        if (*p == '{') {
            const char *end = strchr(p, '}');
            size_t n = strlen(value);
            if (!end || o + n + 1 >= cap)
                fail_msg("route pattern \"%s\" does not fit the walk", pattern);
            memcpy(out + o, value, n);
            o += n;
            p = end;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static bool has_params(const char *pattern)
{
    return strchr(pattern, '{') != NULL;
}

static bool changes_something(const char *method)
{
    return strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0
           && strcmp(method, "WS") != 0;
}

static bool listed(const char *const *list, const char *method, const char *pattern)
{
    char want[WALK_PATH_MAX];

    snprintf(want, sizeof want, "%s %s", method, pattern);
    for (size_t i = 0; list && list[i]; i++) {
        if (strcmp(list[i], want) == 0)
            return true;
    }
    return false;
}

/* the status one caller gets; credential: NULL, a bearer token or a key */
static long try_route(walk_t *w, const char *method, const char *path,
                      const char *credential)
{
    char url[WALK_PATH_MAX + 64], line[4300];
    const char *headers[3] = { NULL, NULL, NULL };
    size_t n = 0;
    plxt_resp_t resp;
    long status;

    if (credential)
        headers[n++] = plxt_bearer(credential, line, sizeof line);
    if (strcmp(method, "WS") == 0) {
        int st = 0;
        plxt_ws_t *ws = plxt_ws_connect(w->srv->url, path, headers, 5000, &st);
        plxt_ws_free(ws);
        return st;
    }
    if (changes_something(method))
        headers[n++] = "Content-Type: application/json";
    snprintf(url, sizeof url, "%s%s", w->srv->url, path);
    if (plxt_http(method, url, headers, changes_something(method) ? "{}" : NULL,
                  &resp) != 0)
        fail_msg("%s %s: no response: %s", method, path, resp.error);
    status = resp.status;
    plxt_resp_free(&resp);
    return status;
}

static void expect_status(walk_t *w, const char *method, const char *pattern,
                          const char *path, const char *who,
                          const char *credential, long want)
{
    long got = try_route(w, method, path, credential);

    if (got != want)
        fail_msg("%s %s as %s: expected %ld, found %ld", method, pattern, who,
                 want, got);
}

static void expect_refused(walk_t *w, const char *method, const char *pattern,
                           const char *path, const char *who, const char *credential)
{
    long got = try_route(w, method, path, credential);

    if ((got >= 200 && got < 300) || got == 101)
        fail_msg("%s %s (as \"%s\") as %s: expected a refusal, found %ld",
                 method, pattern, path, who, got);
}

/* ---- the callers ----------------------------------------------------------- */

static void callers_make(walk_t *w)
{
    json_t *j, *claims;
    char body[512];

    plxt_user_new(w->srv, w->db, &w->owner);
    plxt_user_new(w->srv, w->db, &w->outsider);
    plxt_user_new(w->srv, w->db, &w->viewer);
    plxt_user_new(w->srv, w->db, &w->gone);

    j = plxt_expect(w->srv, "POST", "/api/v1/teams", w->owner.access,
                    "{\"name\":\"walked\"}", 201);
    snprintf(w->team, sizeof w->team, "%s", plxt_str(j, "id"));
    json_decref(j);
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"role\":\"viewer\"}", w->viewer.email);
    json_decref(plxt_expect(w->srv, "POST",
                            plxt_fmt("/api/v1/teams/%s/members", w->team),
                            w->owner.access, body, 201));

    /* a session that has ended: its token is still signed and unexpired */
    plxt_expect_status(w->srv, "POST", "/api/v1/auth/logout", w->gone.access, NULL, 204);

    /* the owner's token, expired a minute ago, signed with the real key */
    claims = plxt_jwt_claims(w->owner.access);
    if (!claims)
        fail_msg("cannot read the claims of an access token");
    json_object_set_new(claims, "exp", json_integer((json_int_t)time(NULL) - 60));
    json_object_set_new(claims, "iat", json_integer((json_int_t)time(NULL) - 3600));
    w->expired = plxt_jwt_sign("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims,
                               PLXT_JWT_SECRET);
    json_decref(claims);

    j = plxt_expect(w->srv, "POST", "/api/v1/api-keys", w->outsider.access,
                    "{\"name\":\"walker\",\"scopes\":[\"walk:nothing\"]}", 201);
    snprintf(w->key, sizeof w->key, "%s", plxt_str(j, "key"));
    json_decref(j);
}

/* ---- the walk -------------------------------------------------------------- */

static void walk_one(walk_t *w, json_t *route)
{
    const char *method = json_string_value(json_object_get(route, "method"));
    const char *pattern = json_string_value(json_object_get(route, "pattern"));
    const char *auth = json_string_value(json_object_get(route, "auth"));
    char path[WALK_PATH_MAX];

    if (!method || !pattern || !auth)
        fail_msg("a route without method, pattern or auth in plexusd routes");
    if (strcmp(auth, "public") == 0)
        return;
    path_fill(pattern, w->team, path, sizeof path);

    expect_status(w, method, pattern, path, "nobody", NULL, 401);
    expect_status(w, method, pattern, path, "an expired token", w->expired, 401);
    expect_status(w, method, pattern, path, "a logged-out session", w->gone.access, 401);
    expect_status(w, method, pattern, path, "a key without the route's scope",
                  w->key, 403);
    if (strcmp(auth, "admin") == 0)
        expect_status(w, method, pattern, path, "a user who is not admin",
                      w->outsider.access, 403);
    if (has_params(pattern)) {
        expect_refused(w, method, pattern, path, "a user outside the team",
                       w->outsider.access);
        if (changes_something(method)
            && !listed(w->opts ? w->opts->viewer_may : NULL, method, pattern))
            expect_refused(w, method, pattern, path, "a viewer of the team",
                           w->viewer.access);
    }
}

int plxt_route_walk(plxt_server_t *srv, const char *db_conninfo,
                    const plxt_walk_opts_t *opts)
{
    walk_t w = { .srv = srv, .db = db_conninfo, .opts = opts };
    json_t *routes = routes_of(srv), *route;
    size_t i;
    int n = 0;

    callers_make(&w);
    json_array_foreach(routes, i, route) {
        walk_one(&w, route);
        n++;
    }
    /* the walk itself must not have changed the team */
    json_decref(plxt_expect(srv, "GET", plxt_fmt("/api/v1/teams/%s", w.team),
                            w.owner.access, NULL, 200));
    free(w.expired);
    json_decref(routes);
    return n;
}
