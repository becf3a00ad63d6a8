/*
 * health.c - liveness, readiness and a summary, for load balancers and
 * operators
 *
 * /health/live says only that the process answers: a load balancer must not
 * restart a server because its database is away. /health/ready says whether
 * this instance should get traffic: database reachable, migrations current,
 * modules started, not shutting down; a 503 names the failing component.
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "http.h"
#include "loader.h"
#include "migrate.h"

#include <stdatomic.h>

#define READY_DB_TIMEOUT_MS 1000

static atomic_bool serving;
static double started_at;

void core_health_set_serving(bool on)
{
    atomic_store(&serving, on);
}

static plx_status_t health_live(plx_request_t *r, void *arg)
{
    json_t *body = json_pack("{s:s}", "status", "ok");
    return core_reply_json(r, 200, body);
}

static json_t *component(bool ok, const char *detail)
{
    json_t *c = json_pack("{s:s}", "status", ok ? "ok" : "fail");
    if (c && detail && *detail)
        json_object_set_new(c, "detail", json_string(detail));
    return c;
}

static bool modules_started(char *why, size_t len)
{
    for (size_t i = 0; i < core_module_count(); i++) {
        plx_module_t *m = core_module_at(i);
        if (m->state != CORE_MOD_STARTED) {
            snprintf(why, len, "module \"%s\" is %s", m->name,
                     core_module_state_str(m->state));
            return false;
        }
    }
    return true;
}

static plx_status_t health_ready(plx_request_t *r, void *arg)
{
    char why_mig[256] = "", why_mod[256] = "";
    bool db_ok = core_db_ping(READY_DB_TIMEOUT_MS);
    /* without the database the migration state cannot be read */
    bool mig_ok = db_ok && core_migrate_current(why_mig, sizeof why_mig);
    bool mod_ok = modules_started(why_mod, sizeof why_mod);
    bool srv_ok = atomic_load(&serving) && !core_http_stopping();
    json_t *checks = json_object();

    json_object_set_new(checks, "database",
                        component(db_ok, db_ok ? NULL : "not reachable"));
    json_object_set_new(checks, "migrations",
                        component(mig_ok, db_ok ? why_mig : "database not reachable"));
    json_object_set_new(checks, "modules", component(mod_ok, why_mod));
    json_object_set_new(checks, "server",
                        component(srv_ok, srv_ok ? NULL : "starting or stopping"));

    bool ok = db_ok && mig_ok && mod_ok && srv_ok;
    json_t *body = json_pack("{s:s, s:o}", "status", ok ? "ok" : "fail",
                             "checks", checks);
    if (!ok) {
        core_log(PLX_LOG_WARN, "health", core_request_id(r),
                 "not ready: database %s, migrations %s, modules %s, server %s",
                 db_ok ? "ok" : "fail", mig_ok ? "ok" : "fail",
                 mod_ok ? "ok" : "fail", srv_ok ? "ok" : "fail");
        core_response_header(r, "Retry-After", "5");
    }
    return core_reply_json(r, ok ? 200 : 503, body);
}

static plx_status_t health_summary(plx_request_t *r, void *arg)
{
    json_t *mods = json_array();

    for (size_t i = 0; i < core_module_count(); i++) {
        plx_module_t *m = core_module_at(i);
        json_array_append_new(mods, json_pack("{s:s, s:s, s:s}",
                                              "name", m->name,
                                              "version", m->info->version,
                                              "state",
                                              core_module_state_str(m->state)));
    }
    char abi[16];

    snprintf(abi, sizeof abi, "%d.%d", PLX_ABI_MAJOR, PLX_ABI_MINOR);
    json_t *body = json_pack("{s:s, s:s, s:s, s:f, s:o}",
                             "status", "ok",
                             "version", PACKAGE_VERSION,
                             "abi", abi,
                             "uptime_seconds", core_now() - started_at,
                             "modules", mods);
    return core_reply_json(r, 200, body);
}

bool core_health_register(void)
{
    plx_module_t *self = core_module_self();
    const plx_route_opts_t *opts = PLX_ROUTE_OPTS(.auth = PLX_AUTH_PUBLIC,
                                                  .rate_class = "none",
                                                  .tag = "health");

    started_at = core_now();
    return core_route_add(self, "GET", "/health/live", health_live, NULL,
                          opts) == PLX_OK
        && core_route_add(self, "GET", "/health/ready", health_ready, NULL,
                          opts) == PLX_OK
        && core_route_add(self, "GET", "/health", health_summary, NULL,
                          opts) == PLX_OK;
}
