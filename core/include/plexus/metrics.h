/*
 * plexus/metrics.h - the metrics/1 service: counters, gauges and histograms
 * that any module can add to GET /metrics
 *
 * The metrics module registers this table as service "metrics" version 1.
 * A module that wants metrics does not require the metrics module: it looks
 * the service up in its start function (every module's init has run by
 * then) and keeps the pointer, which is NULL when the metrics module is not
 * loaded. The wrappers at the end of this file accept that NULL (and a NULL
 * metric), so instrumented code needs no test of its own and costs one
 * branch when metrics are off:
 *
 *   static const plx_metrics_v1_t *mx;
 *   static plx_metric_t *sent;
 *
 *   static plx_status_t mymod_start(plx_module_t *m)
 *   {
 *       mx = plx_metrics_get();
 *       sent = plx_metrics_counter_new(mx, m, "mymod_messages_sent_total",
 *                                      "Messages sent, by channel.",
 *                                      PLX_METRICS_LABELS("channel"));
 *       return PLX_OK;
 *   }
 *   ...
 *   plx_metrics_counter_add(mx, sent, PLX_METRICS_VALUES("email"), 1);
 *
 * Names. Metric names match [a-zA-Z_][a-zA-Z0-9_]* and pass the checks of
 * `promtool check metrics`: snake_case, no ':' (reserved for recording
 * rules), base units (_seconds, _bytes; not _ms, _milliseconds, _kb), no
 * type word (_counter, _gauge), a counter ends in _total and nothing else
 * does, only a histogram's own series end in _bucket, _sum or _count.
 * Label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with "__", and are
 * not "le" or "quantile". A refused name makes *_new return NULL and log
 * one line with the reason; the wrappers then do nothing.
 *
 * Series. A family has at most [metrics] max_series label combinations
 * (default 1000). Past that, values go to one series whose every label is
 * "__overflow__" and plexus_metrics_series_dropped_total{family="..."}
 * counts them, so a label taken from user input cannot grow memory or the
 * scrape without bound. Label values are cut to 256 bytes (on a character
 * boundary), bytes that are not UTF-8 become '?', and NULL counts as "".
 *
 * Threads. *_new may be called from any thread at any time after the
 * metrics module's init; the update functions are lock-free (relaxed
 * atomics, sharded per thread for counters and histograms) and may be
 * called from any thread. Handles live as long as the process.
 *
 * Versioning follows the plugin API: the table starts with its size and
 * entries are only appended; test newer ones with PLX_METRICS_HAS().
 */
#ifndef PLEXUS_METRICS_H
#define PLEXUS_METRICS_H

#include <plexus/module.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLX_METRICS_SERVICE    "metrics"
#define PLX_METRICS_VERSION    1
#define PLX_METRICS_MAX_LABELS 8     /* label names per family */
#define PLX_METRICS_MAX_BUCKETS 32   /* finite histogram bounds; +Inf is implied */

/* one metric family (a name, its type, help and label names): opaque */
typedef struct plx_metric plx_metric_t;

typedef struct plx_metrics_v1 {
    uint32_t size;   /* sizeof(plx_metrics_v1_t) in the metrics module */

    /* Families. m is the calling module (named in log lines; may be NULL).
     * help is one line of text. label_names is a NULL-terminated array
     * (PLX_METRICS_LABELS) or NULL for none. The strings are copied.
     * NULL when refused: invalid or taken name, too many labels, too many
     * families, no memory. */
    plx_metric_t *(*counter_new)(plx_module_t *m, const char *name,
                                 const char *help,
                                 const char *const *label_names);
    plx_metric_t *(*gauge_new)(plx_module_t *m, const char *name,
                               const char *help,
                               const char *const *label_names);
    /* bounds: nbuckets finite upper bounds in increasing order (at most
     * PLX_METRICS_MAX_BUCKETS); NULL and 0 take [metrics] buckets */
    plx_metric_t *(*histogram_new)(plx_module_t *m, const char *name,
                                   const char *help, const double *bounds,
                                   size_t nbuckets,
                                   const char *const *label_names);

    /* Updates. label_values holds one value per label name, in the same
     * order (NULL for a family without labels). A counter only goes up:
     * a negative or NaN v is ignored. Calls on a family of another type
     * are ignored. */
    void (*counter_add)(plx_metric_t *c, const char *const *label_values,
                        double v);
    void (*gauge_set)(plx_metric_t *g, const char *const *label_values,
                      double v);
    void (*gauge_add)(plx_metric_t *g, const char *const *label_values,
                      double v);
    void (*histogram_observe)(plx_metric_t *h,
                              const char *const *label_values, double v);
    /* append new entries here */
} plx_metrics_v1_t;

#define PLX_METRICS_HAS(mx, fn) \
    ((mx)->size >= offsetof(plx_metrics_v1_t, fn) + sizeof((mx)->fn))

#define PLX_METRICS_LABELS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define PLX_METRICS_VALUES(...) ((const char *const[]){ __VA_ARGS__ })

#ifndef PLX_NO_WRAPPERS

/* the service, or NULL when the metrics module is not loaded */
static inline const plx_metrics_v1_t *plx_metrics_get(void)
{
    return (const plx_metrics_v1_t *)plx_service_get(PLX_METRICS_SERVICE,
                                                      PLX_METRICS_VERSION);
}

static inline plx_metric_t *
plx_metrics_counter_new(const plx_metrics_v1_t *mx, plx_module_t *m,
                        const char *name, const char *help,
                        const char *const *label_names)
{ return mx ? mx->counter_new(m, name, help, label_names) : NULL; }

static inline plx_metric_t *
plx_metrics_gauge_new(const plx_metrics_v1_t *mx, plx_module_t *m,
                      const char *name, const char *help,
                      const char *const *label_names)
{ return mx ? mx->gauge_new(m, name, help, label_names) : NULL; }

static inline plx_metric_t *
plx_metrics_histogram_new(const plx_metrics_v1_t *mx, plx_module_t *m,
                          const char *name, const char *help,
                          const double *bounds, size_t nbuckets,
                          const char *const *label_names)
{ return mx ? mx->histogram_new(m, name, help, bounds, nbuckets, label_names) : NULL; }

static inline void
plx_metrics_counter_add(const plx_metrics_v1_t *mx, plx_metric_t *c,
                        const char *const *label_values, double v)
{ if (mx && c) mx->counter_add(c, label_values, v); }

static inline void
plx_metrics_gauge_set(const plx_metrics_v1_t *mx, plx_metric_t *g,
                      const char *const *label_values, double v)
{ if (mx && g) mx->gauge_set(g, label_values, v); }

static inline void
plx_metrics_gauge_add(const plx_metrics_v1_t *mx, plx_metric_t *g,
                      const char *const *label_values, double v)
{ if (mx && g) mx->gauge_add(g, label_values, v); }

static inline void
plx_metrics_histogram_observe(const plx_metrics_v1_t *mx, plx_metric_t *h,
                              const char *const *label_values, double v)
{ if (mx && h) mx->histogram_observe(h, label_values, v); }

#endif /* PLX_NO_WRAPPERS */

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_METRICS_H */
