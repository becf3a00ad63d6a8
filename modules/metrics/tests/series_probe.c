/*
 * series_probe.c - a test module that counts through metrics/1
 *
 * It is what any instrumented module looks like: it does not require the
 * metrics module, looks the service up in start, and calls the wrappers
 * whether or not the service is there. The tests drive it over HTTP:
 *
 *   GET /api/v1/series-probe/hit?value=V     series_probe_hits_total{value=V} += 1
 *   GET /api/v1/series-probe/observe?size=N  series_probe_size_bytes{kind="upload"},
 *                                            series_probe_level = N
 *   GET /api/v1/series-probe/status          {"metrics": bool, "refused": n}
 *
 * "refused" counts the registrations the service turned down on purpose
 * (a camelCase name, a counter without _total, a reserved name, a
 * duplicate): it must be 4 when the service is there.
 */
#include <plexus/module.h>
#include <plexus/metrics.h>

#include <stdlib.h>

static const plx_metrics_v1_t *mx;
static plx_metric_t *hits, *level, *sizes;
static int refused;

static const double size_bounds[] = { 10, 100, 1000 };

static plx_status_t hit(plx_request_t *r, void *arg)
{
    const char *v = plx_request_query(r, "value");

    plx_metrics_counter_add(mx, hits, PLX_METRICS_VALUES(v ? v : ""), 1);
    return plx_reply_json(r, 200, json_pack("{s:b}", "metrics", mx != NULL));
}

static plx_status_t observe(plx_request_t *r, void *arg)
{
    const char *v = plx_request_query(r, "size");
    double n = v ? strtod(v, NULL) : 0;

    plx_metrics_histogram_observe(mx, sizes, PLX_METRICS_VALUES("upload"), n);
    plx_metrics_gauge_set(mx, level, NULL, n);
    return plx_reply_json(r, 200, json_pack("{s:b}", "metrics", mx != NULL));
}

static plx_status_t status(plx_request_t *r, void *arg)
{
    return plx_reply_json(r, 200, json_pack("{s:b, s:i}", "metrics", mx != NULL,
                                            "refused", refused));
}

static void expect_refused(plx_metric_t *metric)
{
    if (!metric)
        refused++;
}

static plx_status_t probe_start(plx_module_t *m)
{
    mx = plx_metrics_get();
    if (!mx)
        return PLX_OK;   /* no metrics module: every call below is a no-op */
    hits = plx_metrics_counter_new(mx, m, "series_probe_hits_total",
                                   "Hits by caller-chosen value.",
                                   PLX_METRICS_LABELS("value"));
    level = plx_metrics_gauge_new(mx, m, "series_probe_level",
                                  "The last size observed.", NULL);
    sizes = plx_metrics_histogram_new(mx, m, "series_probe_size_bytes",
                                      "Sizes observed.", size_bounds, 3,
                                      PLX_METRICS_LABELS("kind"));
    expect_refused(plx_metrics_counter_new(mx, m, "seriesProbe_total", "x", NULL));
    expect_refused(plx_metrics_counter_new(mx, m, "series_probe_misses", "x", NULL));
    expect_refused(plx_metrics_gauge_new(mx, m, "process_open_fds", "x", NULL));
    expect_refused(plx_metrics_gauge_new(mx, m, "series_probe_level", "x", NULL));
    return hits && level && sizes ? PLX_OK : PLX_ERR_INTERNAL;
}

static plx_status_t probe_init(plx_module_t *m)
{
    if (plx_route_add(m, "GET", "/api/v1/series-probe/hit", hit, NULL, NULL)
        || plx_route_add(m, "GET", "/api/v1/series-probe/observe", observe, NULL, NULL)
        || plx_route_add(m, "GET", "/api/v1/series-probe/status", status, NULL, NULL))
        return PLX_ERR_INTERNAL;
    return PLX_OK;
}

PLX_MODULE(.name = "series_probe", .version = "0.0.1",
           .description = "counts through metrics/1 for the metrics tests",
           .init = probe_init, .start = probe_start);
