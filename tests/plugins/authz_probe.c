/*
 * authz_probe: a module that leans on the identity half of ABI 1.1, so the
 * integration tests can check from outside that the core enforces a
 * module's route options (user, admin, scope) and that plx_team_role,
 * plx_request_* and plx_audit answer what the core knows.
 *
 *   GET  /api/v1/probe/user               PLX_AUTH_USER, API keys need "probe:read":
 *                                         who am I to a module
 *   GET  /api/v1/probe/admin              PLX_AUTH_ADMIN
 *   GET  /api/v1/probe/scoped             PLX_AUTH_SCOPE "probe:read"
 *   GET  /api/v1/probe/teams/{id}/role    plx_team_role; 404 when none
 *   POST /api/v1/probe/audit              plx_audit("probe.audited")
 *   GET  /api/v1/probe/public             public, rate class "default"
 *   GET  /api/v1/probe/metered            public, rate class "probe" (its own,
 *                                         default 3/60s)
 *   GET  /api/v1/probe/unlimited          public, rate class "none"
 *
 * and the additions of ABI 1.3:
 *   GET  /api/v1/probe/wait               SSE: a comment every 100 ms until
 *                                         the client is gone, then a log line
 *   WS   /api/v1/probe/ws                 PLX_AUTH_USER: says who connected
 *   GET  /probe-v1/me                     PLX_AUTH_USER, and every error under
 *                                         /probe-v1/ in this module's shape
 *
 * and of ABI 1.4 (settings in its [authz_probe] section):
 *   extra_class = NAME    GET /api/v1/probe/extra in rate class NAME (a
 *                         class nobody registered must stop startup)
 *   class_errors = yes    init checks that plx_rate_class_add refuses a
 *                         taken name, a bad name and a bad spec, and start
 *                         that it refuses after init: otherwise it fails
 */
#include <plexus/module.h>

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static plx_module_t *self;

static plx_status_t probe_user(plx_request_t *r, void *arg)
{
    (void)arg;
    return plx_reply_json(r, 200, json_pack("{s:s?, s:b, s:b, s:b}",
                                            "user_id", plx_request_user_id(r),
                                            "admin", plx_request_is_admin(r),
                                            "probe_read", plx_request_has_scope(r, "probe:read"),
                                            "probe_write", plx_request_has_scope(r, "probe:write")));
}

/* route names handed as the handler's argument (void *, so not const) */
static char r_admin[] = "admin", r_scoped[] = "scoped", r_public[] = "public",
            r_metered[] = "metered", r_extra[] = "extra", r_unlimited[] = "unlimited";

static plx_status_t probe_ok(plx_request_t *r, void *arg)
{
    return plx_reply_json(r, 200, json_pack("{s:s}", "route", (const char *)arg));
}

static const char *role_name(plx_role_t role)
{
    switch (role) {
    case PLX_ROLE_VIEWER: return "viewer";
    case PLX_ROLE_MEMBER: return "member";
    case PLX_ROLE_ADMIN:  return "admin";
    case PLX_ROLE_OWNER:  return "owner";
    default:              return "none";
    }
}

static plx_status_t probe_team_role(plx_request_t *r, void *arg)
{
    plx_role_t role = PLX_ROLE_NONE;
    plx_status_t st;

    (void)arg;
    st = plx_team_role(r, plx_request_param(r, "id"), &role);
    if (st != PLX_OK)
        return st;
    if (role == PLX_ROLE_NONE)
        return plx_reply_problem(r, 404, "not_found", "no such team");
    return plx_reply_json(r, 200, json_pack("{s:s, s:b}", "role", role_name(role),
                                            "at_least_member", role >= PLX_ROLE_MEMBER));
}

static plx_status_t probe_audit(plx_request_t *r, void *arg)
{
    json_t *details = json_pack("{s:s}", "probe", "yes");

    (void)arg;
    plx_audit(r, "probe.audited", "probe", "target-1", details);
    json_decref(details);
    return plx_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* a producer waiting on nothing, as one waits on a slow upstream: the
 * comments are how it learns that the client left */
static plx_status_t probe_wait(plx_request_t *r, void *arg)
{
    plx_sse_t *s = plx_sse_begin(r);
    double gone_at = 0;
    int sent = 0;
    struct timespec tick = { 0, 100 * 1000 * 1000 };

    (void)arg;
    if (!s)
        return PLX_ERR_INTERNAL;
    for (int i = 0; i < 300; i++) {   /* 30 s at most */
        if (plx_sse_comment(s, "waiting") != PLX_OK) {
            gone_at = now_ms();
            break;
        }
        sent++;
        nanosleep(&tick, NULL);
    }
    plx_rlog(self, r, PLX_LOG_INFO, "probe: client %s after %d comments (%.0f)",
              gone_at > 0 ? "gone" : "stayed", sent, gone_at);
    return PLX_OK;
}

static plx_status_t probe_ws_connect(plx_ws_t *ws, plx_request_t *r, void *arg)
{
    const char *uid = plx_request_user_id(r);
    char *copy = uid ? strdup(uid) : NULL;

    (void)arg;
    if (!copy)
        return PLX_ERR_NOMEM;
    plx_ws_set_data(ws, copy);
    return PLX_OK;
}

static void probe_ws_ready(plx_ws_t *ws, void *arg)
{
    char msg[96];
    int n = snprintf(msg, sizeof msg, "{\"user_id\":\"%s\"}",
                     (const char *)plx_ws_get_data(ws));

    (void)arg;
    (void)plx_ws_send(ws, 1, msg, (size_t)n);
}

static void probe_ws_close(plx_ws_t *ws, void *arg)
{
    (void)arg;
    free(plx_ws_get_data(ws));
    plx_ws_set_data(ws, NULL);
}

static const plx_ws_handlers_t probe_ws = {
    .size = sizeof(plx_ws_handlers_t), .connect = probe_ws_connect,
    .ready = probe_ws_ready, .close = probe_ws_close,
};

static json_t *probe_error_shape(plx_request_t *r, int status, const char *code,
                                 const char *detail, void *arg)
{
    (void)r;
    (void)arg;
    return json_pack("{s:{s:i, s:s, s:s}}", "error", "status", status,
                     "code", code, "message", detail);
}

static plx_status_t probe_me(plx_request_t *r, void *arg)
{
    (void)arg;
    return plx_reply_json(r, 200, json_pack("{s:s?}", "user_id", plx_request_user_id(r)));
}

/* the refusals of plx_rate_class_add during init; false (logged) if one
 * was not refused as documented */
static bool rate_class_refusals(plx_module_t *m)
{
    static const struct { const char *name, *spec; plx_status_t want; } cases[] = {
        { "probe", "9/60s", PLX_ERR_CONFLICT },     /* ours, again */
        { "auth", "9/60s", PLX_ERR_CONFLICT },      /* the core's */
        { "default", "9/60s", PLX_ERR_CONFLICT },
        { "none", "9/60s", PLX_ERR_INVALID },
        { "Probe2", "9/60s", PLX_ERR_INVALID },
        { "probe-2", "9/60s", PLX_ERR_INVALID },
        { "a_class_name_too_long", "9/60s", PLX_ERR_INVALID },
        { "", "9/60s", PLX_ERR_INVALID },
        { NULL, "9/60s", PLX_ERR_INVALID },
        { "probe2", "lots", PLX_ERR_INVALID },
        { "probe2", "0/60s", PLX_ERR_INVALID },
        { "probe2", NULL, PLX_ERR_INVALID },
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plx_status_t st = plx_rate_class_add(m, cases[i].name, cases[i].spec);
        if (st != cases[i].want) {
            plx_log(m, PLX_LOG_ERROR, "rate_class_add(\"%s\", \"%s\"): expected "
                    "status %d, found %d", cases[i].name ? cases[i].name : "(null)",
                    cases[i].spec ? cases[i].spec : "(null)", (int)cases[i].want,
                    (int)st);
            return false;
        }
    }
    return true;
}

static bool rate_class_probes(plx_module_t *m)
{
    const char *extra = plx_config_get(m, "extra_class");
    const char *errors = plx_config_get(m, "class_errors");

    if (plx_rate_class_add(m, "probe", "3/60s") != PLX_OK)
        return false;
    if (errors && strcmp(errors, "yes") == 0 && !rate_class_refusals(m))
        return false;
    return !extra || plx_route_add(m, "GET", "/api/v1/probe/extra", probe_ok, r_extra,
                                   PLX_ROUTE_OPTS(.rate_class = extra)) == PLX_OK;
}

static plx_status_t authz_probe_start(plx_module_t *m)
{
    const char *errors = plx_config_get(m, "class_errors");

    if (!PLX_API_HAS(plx_api, rate_class_add) || !errors || strcmp(errors, "yes") != 0)
        return PLX_OK;
    if (plx_rate_class_add(m, "late", "9/60s") != PLX_ERR_INVALID) {
        plx_log(m, PLX_LOG_ERROR, "rate_class_add after init was not refused");
        return PLX_ERR_INTERNAL;
    }
    plx_log(m, PLX_LOG_INFO, "rate class refusals as documented");
    return PLX_OK;
}

static plx_status_t authz_probe_init(plx_module_t *m)
{
    self = m;
    if (PLX_API_HAS(plx_api, rate_class_add) && !rate_class_probes(m))
        return PLX_ERR_INTERNAL;
    if (!PLX_API_HAS(plx_api, audit)) {
        plx_log(m, PLX_LOG_ERROR, "the core lacks ABI 1.1 identity functions");
        return PLX_ERR_INTERNAL;
    }
    if (plx_route_add(m, "GET", "/api/v1/probe/user", probe_user, NULL,
                      PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER, .scope = "probe:read")) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/admin", probe_ok, r_admin,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_ADMIN)) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/scoped", probe_ok, r_scoped,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_SCOPE, .scope = "probe:read")) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/teams/{id}/role", probe_team_role, NULL,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER)) != PLX_OK
        || plx_route_add(m, "POST", "/api/v1/probe/audit", probe_audit, NULL,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER)) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/public", probe_ok, r_public, NULL) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/metered", probe_ok, r_metered,
                         PLX_ROUTE_OPTS(.rate_class = "probe")) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/unlimited", probe_ok, r_unlimited,
                         PLX_ROUTE_OPTS(.rate_class = "none")) != PLX_OK)
        return PLX_ERR_INTERNAL;
    if (!PLX_API_HAS(plx_api, error_format_add))
        return PLX_OK;   /* a 1.2 core: the 1.3 probes are not offered */
    if (plx_route_add(m, "GET", "/api/v1/probe/wait", probe_wait, NULL, NULL) != PLX_OK
        || plx_ws_route_add(m, "/api/v1/probe/ws", &probe_ws, NULL,
                            PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER,
                                           .scope = "probe:read")) != PLX_OK
        || plx_route_add(m, "GET", "/probe-v1/me", probe_me, NULL,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER)) != PLX_OK
        || plx_error_format_add(m, "/probe-v1/", probe_error_shape, NULL) != PLX_OK)
        return PLX_ERR_INTERNAL;
    return PLX_OK;
}

PLX_MODULE(.name = "authz_probe", .version = "1.0",
           .description = "exercises the identity functions of ABI 1.1",
           .init = authz_probe_init, .start = authz_probe_start);
