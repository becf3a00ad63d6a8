/*
 * requests.c - every HTTP request, counted and timed from request.end
 *
 * Labels are route (the pattern that matched, "/api/v1/teams/{id}", or
 * "unmatched"), method and code_class ("2xx"). None of them is taken from
 * the client as sent: a raw path or an invented method would let anyone
 * create series at will, so the path never appears and a method outside
 * the standard set is "other". The route set is fixed at start, which
 * keeps these families far below max_series in practice.
 */
#include "metrics.h"

#include <string.h>

static plx_metric_t *requests_total;
static plx_metric_t *request_seconds;

static const char *const labels[] = { "route", "method", "code_class", NULL };

const char *metrics_method_label(const char *method)
{
    static const char *const known[] = {
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS",
        "CONNECT", "TRACE",
    };

    for (size_t i = 0; method && i < sizeof known / sizeof known[0]; i++)
        if (strcmp(method, known[i]) == 0)
            return known[i];
    return "other";
}

const char *metrics_code_class(int status)
{
    static const char *const classes[] = { "1xx", "2xx", "3xx", "4xx", "5xx" };

    if (status < 100 || status > 599)
        return "other";
    return classes[status / 100 - 1];
}

bool metrics_requests_setup(plx_module_t *m)
{
    requests_total = metrics_family_new(m, METRICS_COUNTER,
        "plexus_http_requests_total",
        "HTTP requests answered, by route pattern, method and status class.",
        labels, NULL, 0);
    request_seconds = metrics_family_new(m, METRICS_HISTOGRAM,
        "plexus_http_request_duration_seconds",
        "Time from the first byte of a request to the last of its answer.",
        labels, NULL, 0);
    return requests_total && request_seconds;
}

/* request.end: runs on the worker thread after the answer went out */
plx_status_t metrics_on_request_end(plx_request_t *r, void *data, void *arg)
{
    const plx_request_end_t *end = data;
    const char *values[3];

    if (!end || end->size < offsetof(plx_request_end_t, route) + sizeof end->route)
        return PLX_OK;
    values[0] = end->route ? end->route : "unmatched";
    values[1] = metrics_method_label(end->method);
    values[2] = metrics_code_class(end->status);
    metrics_counter_add(requests_total, values, 1);
    metrics_histogram_observe(request_seconds, values,
                              end->seconds > 0 ? end->seconds : 0);
    return PLX_OK;
}
