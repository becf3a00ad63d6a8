/*
 * registry.c - metric families and their series, behind the metrics/1
 * service
 *
 * The update path must cost nothing measurable at full load, so it takes
 * no lock. Each family owns a fixed open-addressing table of 2 * max_series
 * slots (a power of two) holding pointers to series; a series is found by
 * the hash of its label values and linear probing, and a new one is put in
 * an empty slot with one compare-and-swap. Series are never removed while
 * the process runs, so a pointer read from a slot stays valid, and the
 * table never fills: a family admits at most max_series series (a counter
 * reserves the place before the insert) and sends the rest to its one
 * overflow series, counting each in plexus_metrics_series_dropped_total.
 *
 * Values are doubles kept as their bits in 64-bit atomics and added with a
 * compare-and-swap loop (relaxed: a scrape needs no ordering with anything
 * else). Counters and histograms are sharded: each series has
 * METRICS_SHARDS cells, a cache line apart, and a thread always uses the
 * same one, so threads on different cores rarely write the same line. A
 * scrape sums the shards. A histogram keeps per-bucket (not cumulative)
 * counts and no separate count: the scrape derives the cumulative buckets
 * and _count from the same reads, so +Inf always equals _count. Gauges are
 * set as well as added, which cannot be sharded: they have one cell.
 *
 * Families themselves are added under a mutex (rare: module start) into a
 * fixed array published by an atomic count, which scrapes read without it.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_LINE 64
#define CELLS_PER_LINE (CACHE_LINE / sizeof(uint64_t))

typedef struct series {
    uint64_t          hash;
    size_t            nlabels;   /* the family's, for sorting */
    _Atomic uint64_t *cells;     /* shards * stride, cache-line aligned */
    char             *values[PLX_METRICS_MAX_LABELS];
} series_t;

struct plx_metric {
    metrics_type_t type;
    char          *name;
    char          *help;
    size_t         nlabels;
    char          *labels[PLX_METRICS_MAX_LABELS];
    size_t         nbounds;                        /* finite bounds */
    double         bounds[PLX_METRICS_MAX_BUCKETS];
    size_t         shards;                         /* 1 for a gauge */
    size_t         stride;                         /* cells per shard */
    size_t         max_series;
    size_t         nslots;                         /* power of two */
    _Atomic(series_t *) *slots;
    atomic_size_t  nseries;                        /* admitted, overflow aside */
    _Atomic(series_t *) overflow;
    _Atomic(series_t *) dropped;                   /* our row of the dropped counter */
};

/* the label values of one update, cleaned, with their hash */
typedef struct lkey {
    const char *v[PLX_METRICS_MAX_LABELS];
    uint64_t    hash;
    char        buf[PLX_METRICS_MAX_LABELS][METRICS_VALUE_MAX + 1];
} lkey_t;

static struct {
    pthread_mutex_t lock;     /* adding a family */
    _Atomic(plx_metric_t *) families[METRICS_MAX_FAMILIES];
    atomic_size_t nfamilies;
    plx_module_t *self;
    size_t        max_series;
    double        bounds[PLX_METRICS_MAX_BUCKETS];
    size_t        nbounds;
    plx_metric_t *dropped;    /* plexus_metrics_series_dropped_total */
} reg = { .lock = PTHREAD_MUTEX_INITIALIZER };

static atomic_uint next_shard;
static _Thread_local unsigned my_shard;   /* 1 + shard once chosen */

static const char *const overflow_values[PLX_METRICS_MAX_LABELS] = {
    METRICS_OVERFLOW, METRICS_OVERFLOW, METRICS_OVERFLOW, METRICS_OVERFLOW,
    METRICS_OVERFLOW, METRICS_OVERFLOW, METRICS_OVERFLOW, METRICS_OVERFLOW,
};

/* ---- cells ------------------------------------------------------------- */

static double bits_double(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static uint64_t double_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static void cell_add(_Atomic uint64_t *c, double v)
{
    uint64_t old = atomic_load_explicit(c, memory_order_relaxed);

    while (!atomic_compare_exchange_weak_explicit(
               c, &old, double_bits(bits_double(old) + v),
               memory_order_relaxed, memory_order_relaxed))
        ;
}

static double cell_get(_Atomic uint64_t *c)
{
    return bits_double(atomic_load_explicit(c, memory_order_relaxed));
}

/* Threads take shards round-robin on first use and keep them: with the
 * HTTP workers that is an even spread. */
static size_t shard_of(const plx_metric_t *f)
{
    if (f->shards == 1)
        return 0;
    if (my_shard == 0)
        my_shard = 1 + atomic_fetch_add_explicit(&next_shard, 1,
                                                 memory_order_relaxed)
                       % METRICS_SHARDS;
    return (my_shard - 1) % f->shards;
}

static _Atomic uint64_t *shard_cells(const plx_metric_t *f, series_t *s)
{
    return s->cells + shard_of(f) * f->stride;
}

/* sum of cell i over every shard */
static double cells_sum(const plx_metric_t *f, const series_t *s, size_t i)
{
    double sum = 0;

    for (size_t k = 0; k < f->shards; k++)
        sum += cell_get(&s->cells[k * f->stride + i]);
    return sum;
}

static uint64_t counts_sum(const plx_metric_t *f, const series_t *s, size_t i)
{
    uint64_t sum = 0;

    for (size_t k = 0; k < f->shards; k++)
        sum += atomic_load_explicit(&s->cells[k * f->stride + i],
                                    memory_order_relaxed);
    return sum;
}

/* ---- series -------------------------------------------------------------- */

static uint64_t hash_values(size_t n, const char *const *v)
{
    uint64_t h = 0xcbf29ce484222325u;   /* FNV-1a */

    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
            h = (h ^ *p) * 0x100000001b3u;
        h = (h ^ 0xff) * 0x100000001b3u;   /* 0xff never occurs in UTF-8 */
    }
    return h;
}

static void key_make(const plx_metric_t *f, const char *const *values,
                     lkey_t *k)
{
    for (size_t i = 0; i < f->nlabels; i++) {
        const char *v = values ? values[i] : NULL;
        if (metrics_text_is_clean(v, METRICS_VALUE_MAX)) {
            k->v[i] = v;
            continue;
        }
        metrics_text_clean(v, k->buf[i], METRICS_VALUE_MAX);
        k->v[i] = k->buf[i];
    }
    k->hash = hash_values(f->nlabels, k->v);
}

static void series_free(series_t *s)
{
    if (!s)
        return;
    free(s->cells);
    for (size_t i = 0; i < PLX_METRICS_MAX_LABELS; i++)
        free(s->values[i]);
    free(s);
}

static series_t *series_new(const plx_metric_t *f, const char *const *v,
                            uint64_t hash)
{
    size_t bytes = f->shards * f->stride * sizeof(uint64_t);
    series_t *s = calloc(1, sizeof *s);

    if (!s)
        return NULL;
    s->hash = hash;
    s->nlabels = f->nlabels;
    s->cells = aligned_alloc(CACHE_LINE, bytes);
    if (!s->cells) {
        series_free(s);
        return NULL;
    }
    for (size_t i = 0; i < f->shards * f->stride; i++)
        atomic_init(&s->cells[i], 0);   /* 0 is also the bits of 0.0 */
    for (size_t i = 0; i < f->nlabels; i++) {
        if (!(s->values[i] = strdup(v[i]))) {
            series_free(s);
            return NULL;
        }
    }
    return s;
}

static bool series_is(const plx_metric_t *f, const series_t *s,
                      const lkey_t *k)
{
    if (s->hash != k->hash)
        return false;
    for (size_t i = 0; i < f->nlabels; i++)
        if (strcmp(s->values[i], k->v[i]) != 0)
            return false;
    return true;
}

static series_t *overflow_series(plx_metric_t *f)
{
    series_t *s = atomic_load_explicit(&f->overflow, memory_order_acquire);
    series_t *expected = NULL;

    if (s)
        return s;
    s = series_new(f, overflow_values, 0);
    if (!s)
        return NULL;
    if (atomic_compare_exchange_strong_explicit(&f->overflow, &expected, s,
                                                memory_order_acq_rel,
                                                memory_order_acquire))
        return s;
    series_free(s);
    return expected;
}

static void count_dropped(plx_metric_t *f);

/* Put a new series for k in the empty slot idx. Returns it; or NULL when
 * another thread filled the slot first (the caller looks again); or the
 * overflow series when the family is full. */
static series_t *series_insert(plx_metric_t *f, size_t idx, const lkey_t *k,
                               bool *overflowed)
{
    series_t *expected = NULL, *s;

    if (atomic_fetch_add_explicit(&f->nseries, 1, memory_order_relaxed)
        >= f->max_series) {
        atomic_fetch_sub_explicit(&f->nseries, 1, memory_order_relaxed);
        *overflowed = true;
        return overflow_series(f);
    }
    s = series_new(f, k->v, k->hash);
    if (s && atomic_compare_exchange_strong_explicit(
                 &f->slots[idx], &expected, s, memory_order_acq_rel,
                 memory_order_acquire))
        return s;
    atomic_fetch_sub_explicit(&f->nseries, 1, memory_order_relaxed);
    if (!s) {
        *overflowed = true;   /* no memory: count it as dropped */
        return overflow_series(f);
    }
    series_free(s);
    return NULL;
}

/* The series for values: found, made, or the overflow one. NULL only when
 * memory ran out. */
static series_t *series_get(plx_metric_t *f, const char *const *values)
{
    size_t mask = f->nslots - 1;
    bool overflowed = false;
    lkey_t k;

    key_make(f, values, &k);
    for (size_t idx = k.hash & mask, probes = 0; probes < f->nslots;) {
        series_t *s = atomic_load_explicit(&f->slots[idx], memory_order_acquire);
        if (!s) {
            s = series_insert(f, idx, &k, &overflowed);
            if (!s && !overflowed)
                continue;   /* lost the slot: look at who took it */
            if (overflowed)
                count_dropped(f);
            return s;
        }
        if (series_is(f, s, &k))
            return s;
        idx = (idx + 1) & mask;
        probes++;
    }
    count_dropped(f);   /* unreachable while nslots > max_series */
    return overflow_series(f);
}

static void count_dropped(plx_metric_t *f)
{
    series_t *d = atomic_load_explicit(&f->dropped, memory_order_acquire);
    const char *values[1] = { f->name };

    if (!reg.dropped || f == reg.dropped)
        return;
    if (!d) {
        d = series_get(reg.dropped, values);
        atomic_store_explicit(&f->dropped, d, memory_order_release);
    }
    if (d)
        cell_add(&shard_cells(reg.dropped, d)[0], 1);
}

/* ---- updates: the service's functions ------------------------------------ */

void metrics_counter_add(plx_metric_t *c, const char *const *values, double v)
{
    series_t *s;

    if (!c || c->type != METRICS_COUNTER || !(v >= 0))
        return;   /* !(v >= 0) also refuses NaN */
    if ((s = series_get(c, values)))
        cell_add(&shard_cells(c, s)[0], v);
}

void metrics_gauge_set(plx_metric_t *g, const char *const *values, double v)
{
    series_t *s;

    if (!g || g->type != METRICS_GAUGE)
        return;
    if ((s = series_get(g, values)))
        atomic_store_explicit(&s->cells[0], double_bits(v), memory_order_relaxed);
}

void metrics_gauge_add(plx_metric_t *g, const char *const *values, double v)
{
    series_t *s;

    if (!g || g->type != METRICS_GAUGE)
        return;
    if ((s = series_get(g, values)))
        cell_add(&s->cells[0], v);
}

/* the bucket of v: the first bound >= v, nbounds for +Inf */
static size_t bucket_of(const plx_metric_t *h, double v)
{
    size_t lo = 0, hi = h->nbounds;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v <= h->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

void metrics_histogram_observe(plx_metric_t *h, const char *const *values,
                               double v)
{
    _Atomic uint64_t *cells;
    series_t *s;

    if (!h || h->type != METRICS_HISTOGRAM || isnan(v))
        return;
    if (!(s = series_get(h, values)))
        return;
    cells = shard_cells(h, s);
    atomic_fetch_add_explicit(&cells[bucket_of(h, v)], 1, memory_order_relaxed);
    cell_add(&cells[h->nbounds + 1], v);
}

/* ---- families --------------------------------------------------------------- */

static void family_free(plx_metric_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; f->slots && i < f->nslots; i++)
        series_free(atomic_load(&f->slots[i]));
    series_free(atomic_load(&f->overflow));
    free(f->slots);
    for (size_t i = 0; i < f->nlabels; i++)
        free(f->labels[i]);
    free(f->name);
    free(f->help);
    free(f);
}

static void refuse(plx_module_t *m, const char *name, const char *why)
{
    const char *owner = m ? plx_module_name(m) : NULL;

    plx_log(reg.self, PLX_LOG_ERROR, "metric \"%.200s\" of module \"%s\" "
            "refused: %s", name ? name : "(null)", owner ? owner : "?", why);
}

static plx_metric_t *family_find(const char *name)
{
    size_t n = atomic_load_explicit(&reg.nfamilies, memory_order_acquire);

    for (size_t i = 0; i < n; i++) {
        plx_metric_t *f = atomic_load_explicit(&reg.families[i],
                                               memory_order_relaxed);
        if (strcmp(f->name, name) == 0)
            return f;
    }
    return NULL;
}

static const char *labels_problem(const char *const *labels, size_t *n)
{
    const char *why;

    for (*n = 0; labels && labels[*n]; (*n)++) {
        if (*n == PLX_METRICS_MAX_LABELS)
            return "more than 8 label names";
        if ((why = metrics_label_problem(labels[*n])))
            return why;
        for (size_t j = 0; j < *n; j++)
            if (strcmp(labels[j], labels[*n]) == 0)
                return "a label name is given twice";
    }
    return NULL;
}

static const char *bounds_take(plx_metric_t *f, const double *b, size_t n)
{
    if (!b || n == 0) {
        b = reg.bounds;
        n = reg.nbounds;
    }
    if (n > 0 && isinf(b[n - 1]) && b[n - 1] > 0)
        n--;   /* +Inf is implied: accept it said out loud */
    if (n > PLX_METRICS_MAX_BUCKETS)
        return "more than 32 bucket bounds";
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i]) || (i > 0 && !(b[i] > b[i - 1])))
            return "expected finite bucket bounds in increasing order";
        f->bounds[i] = b[i];
    }
    f->nbounds = n;
    return NULL;
}

/* the parts of a family that depend on its type: bounds, cells, slots */
static const char *family_shape(plx_metric_t *f, const double *bounds,
                                size_t nbounds, size_t max_series)
{
    const char *why;
    size_t used = 1;

    if (f->type == METRICS_HISTOGRAM) {
        if ((why = bounds_take(f, bounds, nbounds)))
            return why;
        used = f->nbounds + 2;   /* the buckets, +Inf, the sum */
    }
    f->shards = f->type == METRICS_GAUGE ? 1 : METRICS_SHARDS;
    f->stride = (used + CELLS_PER_LINE - 1) / CELLS_PER_LINE * CELLS_PER_LINE;
    f->max_series = max_series;
    for (f->nslots = 2; f->nslots < 2 * max_series; f->nslots *= 2)
        ;
    f->slots = calloc(f->nslots, sizeof *f->slots);
    return f->slots ? NULL : "out of memory";
}

static plx_metric_t *family_make(metrics_type_t type, const char *name,
                                 const char *help, const char *const *labels,
                                 size_t nlabels)
{
    char clean[METRICS_HELP_MAX + 1];
    plx_metric_t *f = calloc(1, sizeof *f);

    if (!f)
        return NULL;
    f->type = type;
    metrics_text_clean(help, clean, METRICS_HELP_MAX);
    f->name = strdup(name);
    f->help = strdup(clean);
    f->nlabels = nlabels;
    bool ok = f->name && f->help;
    for (size_t i = 0; i < nlabels; i++)
        ok = (f->labels[i] = strdup(labels[i])) && ok;
    if (ok)
        return f;
    family_free(f);
    return NULL;
}

/* under reg.lock: may name be registered now? */
static const char *name_taken(plx_module_t *m, const char *name)
{
    if (m != reg.self && metrics_name_reserved(name))
        return "the name belongs to the metrics module";
    if (family_find(name))
        return "a family of that name exists";
    if (atomic_load(&reg.nfamilies) >= METRICS_MAX_FAMILIES)
        return "too many families (256)";
    return NULL;
}

static plx_metric_t *family_add(plx_module_t *m, plx_metric_t *f)
{
    const char *why;
    size_t n;

    pthread_mutex_lock(&reg.lock);
    why = name_taken(m, f->name);
    if (!why) {
        n = atomic_load(&reg.nfamilies);
        atomic_store_explicit(&reg.families[n], f, memory_order_relaxed);
        atomic_store_explicit(&reg.nfamilies, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&reg.lock);
    if (!why)
        return f;
    refuse(m, f->name, why);
    family_free(f);
    return NULL;
}

static plx_metric_t *family_create(plx_module_t *m, metrics_type_t type,
                                   const char *name, const char *help,
                                   const char *const *label_names,
                                   const double *bounds, size_t nbounds,
                                   size_t max_series)
{
    size_t nlabels;
    const char *why = metrics_name_problem(name, type);
    plx_metric_t *f;

    if (!why)
        why = labels_problem(label_names, &nlabels);
    if (why) {
        refuse(m, name, why);
        return NULL;
    }
    if (!(f = family_make(type, name, help, label_names, nlabels))) {
        refuse(m, name, "out of memory");
        return NULL;
    }
    why = family_shape(f, bounds, nbounds, max_series);
    if (why) {
        refuse(m, name, why);
        family_free(f);
        return NULL;
    }
    if (!(f = family_add(m, f)))
        return NULL;
    if (nlabels == 0)
        series_get(f, NULL);   /* a plain metric shows 0 from the start */
    return f;
}

plx_metric_t *metrics_family_new(plx_module_t *m, metrics_type_t type,
                                 const char *name, const char *help,
                                 const char *const *label_names,
                                 const double *bounds, size_t nbounds)
{
    return family_create(m, type, name, help, label_names, bounds, nbounds,
                         reg.max_series);
}

/* ---- the service ---------------------------------------------------------- */

static plx_metric_t *svc_counter_new(plx_module_t *m, const char *name,
                                     const char *help,
                                     const char *const *labels)
{
    return metrics_family_new(m, METRICS_COUNTER, name, help, labels, NULL, 0);
}

static plx_metric_t *svc_gauge_new(plx_module_t *m, const char *name,
                                   const char *help, const char *const *labels)
{
    return metrics_family_new(m, METRICS_GAUGE, name, help, labels, NULL, 0);
}

static plx_metric_t *svc_histogram_new(plx_module_t *m, const char *name,
                                       const char *help, const double *bounds,
                                       size_t nbounds,
                                       const char *const *labels)
{
    return metrics_family_new(m, METRICS_HISTOGRAM, name, help, labels,
                              bounds, nbounds);
}

const plx_metrics_v1_t metrics_service = {
    .size = sizeof(plx_metrics_v1_t),
    .counter_new = svc_counter_new,
    .gauge_new = svc_gauge_new,
    .histogram_new = svc_histogram_new,
    .counter_add = metrics_counter_add,
    .gauge_set = metrics_gauge_set,
    .gauge_add = metrics_gauge_add,
    .histogram_observe = metrics_histogram_observe,
};

/* ---- setup and teardown ------------------------------------------------------ */

bool metrics_registry_setup(plx_module_t *self, size_t max_series,
                            const double *bounds, size_t nbounds)
{
    reg.self = self;
    reg.max_series = max_series > 0 ? max_series : METRICS_DEFAULT_MAX_SERIES;
    reg.nbounds = 0;
    for (size_t i = 0; bounds && i < nbounds && i < PLX_METRICS_MAX_BUCKETS; i++)
        reg.bounds[reg.nbounds++] = bounds[i];
    /* one row per family at most */
    reg.dropped = family_create(self, METRICS_COUNTER,
        "plexus_metrics_series_dropped_total",
        "Updates sent to a family's overflow series because it had "
        "max_series series already.", (const char *const[]){ "family", NULL },
        NULL, 0, METRICS_MAX_FAMILIES);
    return reg.dropped != NULL;
}

void metrics_registry_free(void)
{
    size_t n = atomic_load(&reg.nfamilies);

    for (size_t i = 0; i < n; i++) {
        family_free(atomic_load(&reg.families[i]));
        atomic_store(&reg.families[i], NULL);
    }
    atomic_store(&reg.nfamilies, 0);
    reg.dropped = NULL;
}

/* ---- exposition ------------------------------------------------------------ */

static int series_cmp(const void *a, const void *b)
{
    const series_t *x = *(series_t *const *)a, *y = *(series_t *const *)b;

    for (size_t i = 0; i < x->nlabels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

static void write_histogram(metrics_buf_t *b, const plx_metric_t *f,
                            const series_t *s)
{
    const char *const *lv = (const char *const *)s->values;
    const char *const *ln = (const char *const *)f->labels;
    uint64_t cum = 0;
    char le[40];

    for (size_t i = 0; i < f->nbounds; i++) {
        cum += counts_sum(f, s, i);
        metrics_put_sample(b, f->name, "_bucket", f->nlabels, ln, lv,
                           metrics_format_double(f->bounds[i], le), (double)cum);
    }
    cum += counts_sum(f, s, f->nbounds);
    metrics_put_sample(b, f->name, "_bucket", f->nlabels, ln, lv, "+Inf",
                       (double)cum);
    metrics_put_sample(b, f->name, "_sum", f->nlabels, ln, lv, NULL,
                       cells_sum(f, s, f->nbounds + 1));
    metrics_put_sample(b, f->name, "_count", f->nlabels, ln, lv, NULL,
                       (double)cum);
}

static void write_series(metrics_buf_t *b, const plx_metric_t *f,
                         const series_t *s)
{
    if (f->type == METRICS_HISTOGRAM) {
        write_histogram(b, f, s);
        return;
    }
    metrics_put_sample(b, f->name, NULL, f->nlabels,
                       (const char *const *)f->labels,
                       (const char *const *)s->values, NULL, cells_sum(f, s, 0));
}

static void family_write(metrics_buf_t *b, const plx_metric_t *f)
{
    series_t *over = atomic_load_explicit(&f->overflow, memory_order_acquire);
    series_t **list = malloc(f->nslots * sizeof *list);
    size_t n = 0;

    if (!list) {
        b->failed = true;
        return;
    }
    for (size_t i = 0; i < f->nslots; i++) {
        series_t *s = atomic_load_explicit(&f->slots[i], memory_order_acquire);
        if (s)
            list[n++] = s;
    }
    qsort(list, n, sizeof *list, series_cmp);   /* a stable order to read */
    if (n > 0 || over)
        metrics_put_header(b, f->name, metrics_type_name(f->type), f->help);
    for (size_t i = 0; i < n; i++)
        write_series(b, f, list[i]);
    if (over)
        write_series(b, f, over);
    free(list);
}

void metrics_registry_write(metrics_buf_t *b)
{
    size_t n = atomic_load_explicit(&reg.nfamilies, memory_order_acquire);

    for (size_t i = 0; i < n && !b->failed; i++)
        family_write(b, atomic_load_explicit(&reg.families[i],
                                             memory_order_relaxed));
}
