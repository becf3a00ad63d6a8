/*
 * metrics.c - the metrics module: Prometheus /metrics, and the metrics/1
 * service through which other modules add their own
 *
 * It uses nothing but the public plugin API, which is the point: a real
 * feature that lives entirely outside the core. Disable it in
 * plugins.d/metrics.conf and /metrics is gone (404), while modules that
 * instrument themselves find no service and carry on.
 *
 * init reads [metrics], sets up the registry, and registers the route, the
 * request.end hook and the service. There is no stop: other modules may
 * hold metric handles and update them until the very end (their own stop
 * functions may run after ours), so the registry is freed only when the
 * module is unloaded, when nothing can call it any more.
 */
#include "metrics.h"

static metrics_settings_t settings;

/* With a token, the scrape is answered from request.begin, ahead of the
 * core's authentication, which would refuse our token as none of its own */
static bool hook_token_check(plx_module_t *m)
{
    static const plx_hook_order_t before_authn = {
        sizeof(plx_hook_order_t), PLX_HOOK_REALLY_FIRST - 10, NULL, NULL
    };

    if (!settings.token)
        return true;
    return plx_hook_add(m, PLX_HOOK_REQUEST_BEGIN, metrics_scrape_early,
                        &settings, &before_authn) == PLX_OK;
}

static plx_status_t metrics_init(plx_module_t *m)
{
    static const plx_hook_order_t last = {
        sizeof(plx_hook_order_t), PLX_HOOK_LAST, NULL, NULL
    };

    if (!metrics_settings_load(m, &settings))
        return PLX_ERR_INVALID;
    if (!metrics_registry_setup(m, settings.max_series, settings.buckets,
                                settings.nbuckets)
        || !metrics_requests_setup(m))
        return PLX_ERR_NOMEM;
    if (plx_route_add(m, "GET", METRICS_PATH, metrics_scrape, &settings,
                      PLX_ROUTE_OPTS(.summary = "Prometheus metrics",
                                     .tag = "operations",
                                     /* a 429 would be a gap in the graphs;
                                      * allow and token guard it instead */
                                     .rate_class = "none"))
        || !hook_token_check(m)
        || plx_hook_add(m, PLX_HOOK_REQUEST_END, metrics_on_request_end, NULL,
                        &last)
        || plx_service_register(m, PLX_METRICS_SERVICE, PLX_METRICS_VERSION,
                                &metrics_service))
        return PLX_ERR_INTERNAL;
    plx_log(m, PLX_LOG_INFO, "serving \"/metrics\" to %s%s",
            settings.allow_any ? "any address" : "the addresses in metrics.allow",
            settings.token ? " with a Bearer token" : "");
    return PLX_OK;
}

/* dlclose, or the end of the process: after every module's stop */
__attribute__((destructor)) static void metrics_unload(void)
{
    metrics_registry_free();
    metrics_settings_clear(&settings);
}

PLX_MODULE(.name = "metrics", .version = "1.0.0",
           .description = "Prometheus /metrics and the metrics/1 service",
           .init = metrics_init);
