/*
 * authz_probe: a module that leans on the identity half of ABI 1.1, so the
 * integration tests can check from outside that the core enforces a
 * module's route options (user, admin, scope) and that plx_team_role,
 * plx_request_* and plx_audit answer what the core knows.
 *
 *   GET  /api/v1/probe/user               PLX_AUTH_USER: who am I to a module
 *   GET  /api/v1/probe/admin              PLX_AUTH_ADMIN
 *   GET  /api/v1/probe/scoped             PLX_AUTH_SCOPE "probe:read"
 *   GET  /api/v1/probe/teams/{id}/role    plx_team_role; 404 when none
 *   POST /api/v1/probe/audit              plx_audit("probe.audited")
 *   GET  /api/v1/probe/public             public, rate class "default"
 *   GET  /api/v1/probe/ai                 public, rate class "ai"
 *   GET  /api/v1/probe/unlimited          public, rate class "none"
 */
#include <plexus/module.h>

#include <string.h>

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
            r_ai[] = "ai", r_unlimited[] = "unlimited";

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

static plx_status_t authz_probe_init(plx_module_t *m)
{
    if (!PLX_API_HAS(plx_api, audit)) {
        plx_log(m, PLX_LOG_ERROR, "the core lacks ABI 1.1 identity functions");
        return PLX_ERR_INTERNAL;
    }
    if (plx_route_add(m, "GET", "/api/v1/probe/user", probe_user, NULL,
                      PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER)) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/admin", probe_ok, r_admin,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_ADMIN)) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/scoped", probe_ok, r_scoped,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_SCOPE, .scope = "probe:read")) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/teams/{id}/role", probe_team_role, NULL,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER)) != PLX_OK
        || plx_route_add(m, "POST", "/api/v1/probe/audit", probe_audit, NULL,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER)) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/public", probe_ok, r_public, NULL) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/ai", probe_ok, r_ai,
                         PLX_ROUTE_OPTS(.rate_class = "ai")) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/probe/unlimited", probe_ok, r_unlimited,
                         PLX_ROUTE_OPTS(.rate_class = "none")) != PLX_OK)
        return PLX_ERR_INTERNAL;
    return PLX_OK;
}

PLX_MODULE(.name = "authz_probe", .version = "1.0",
           .description = "exercises the identity functions of ABI 1.1",
           .init = authz_probe_init);
