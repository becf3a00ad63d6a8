/*
 * store.c - the ai module's store layer: models (cached), quotas and usage
 * rows, everything in PostgreSQL (schema ai, sql/0001_ai.sql)
 *
 * Models. The enabled models are read all at once into a cache that lives
 * AI_MODEL_CACHE_TTL seconds; the admin routes invalidate it on every
 * write, and the TTL bounds how long another instance serves a model that
 * changed. A stale cache is served while one thread reloads it; an
 * invalidated one is reloaded by whoever needs it first.
 *
 * Quotas. A call reserves its estimated maximum before it runs and
 * settles to its real figure after. Reservation is one transaction on one
 * connection: for each quota of the user and of the team, in quota id
 * order, the counter of the current period is updated with the limit in
 * the WHERE clause (the row lock makes concurrent reservers, on any
 * instance, queue and see each other's reservations), and one
 * ai.reservations row per counter records what was reserved until when.
 *
 * Lock order, which keeps concurrent reservers, settlers and the sweeper
 * free of deadlocks: a transaction locks counter rows first, in (quota_id,
 * period_start) order, and only then touches reservation rows. Locks on
 * counters are FOR NO KEY UPDATE (what an UPDATE takes), which does not
 * conflict with the KEY SHARE lock an insert into ai.reservations takes on
 * its counter through the foreign key.
 */
#include "config.h"

#include "ai.h"
#include "store_sql.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AI_MODEL_CACHE_TTL  5.0     /* seconds */
#define AI_FALLBACKS_MAX    16      /* fallbacks kept per model (admin.c's bound) */
#define AI_QUOTAS_MAX       4       /* user day/month, team day/month */
#define AI_ERROR_MAX        1000    /* bytes of a usage row's error */

/* ==== models ============================================================== */

static struct {
    pthread_mutex_t lock;
    ai_model_t    **models;     /* enabled models by name; NULL: not loaded */
    size_t          n;
    double          loaded;     /* monotonic seconds of the load */
    unsigned long   gen;        /* bumped by every invalidation */
    bool            loading;    /* a thread is reloading a stale cache */
} cache = { .lock = PTHREAD_MUTEX_INITIALIZER };

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void ai_model_free(ai_model_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nfallbacks; i++)
        free(m->fallbacks[i]);
    free(m->fallbacks);
    free(m);
}

void ai_model_list_free(ai_model_t **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        ai_model_free(v[i]);
    free(v);
}

static void copy_str(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static ai_model_t *model_copy(const ai_model_t *src)
{
    ai_model_t *m = malloc(sizeof *m);

    if (!m)
        return NULL;
    *m = *src;
    m->fallbacks = NULL;
    m->nfallbacks = 0;
    if (src->nfallbacks == 0)
        return m;
    if (!(m->fallbacks = calloc(src->nfallbacks, sizeof *m->fallbacks))) {
        free(m);
        return NULL;
    }
    for (; m->nfallbacks < src->nfallbacks; m->nfallbacks++) {
        if (!(m->fallbacks[m->nfallbacks] = strdup(src->fallbacks[m->nfallbacks]))) {
            ai_model_free(m);
            return NULL;
        }
    }
    return m;
}

/* fallbacks from their JSON array text ("[\"a\", \"b\"]") */
static bool fallbacks_parse(ai_model_t *m, const char *text)
{
    json_t *arr = text ? json_loads(text, 0, NULL) : NULL;
    size_t i, n;
    bool ok = true;

    if (!json_is_array(arr)) {
        json_decref(arr);
        return text == NULL;
    }
    n = json_array_size(arr);
    if (n > AI_FALLBACKS_MAX)
        n = AI_FALLBACKS_MAX;
    if (n && !(m->fallbacks = calloc(n, sizeof *m->fallbacks)))
        ok = false;
    for (i = 0; ok && i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (!s)
            continue;
        if (!(m->fallbacks[m->nfallbacks] = strdup(s)))
            ok = false;
        else
            m->nfallbacks++;
    }
    json_decref(arr);
    return ok;
}

static const char models_sql[] =
    "SELECT id, name, kind, provider, upstream, context_window,"
    " price_input::text, price_output::text, array_to_json(fallbacks)::text,"
    " enabled, extract(epoch FROM created_at)::float8"
    " FROM ai.models WHERE enabled ORDER BY name LIMIT 10000";

static ai_model_t *model_from_row(const plx_db_res_t *res, int row)
{
    ai_model_t *m = calloc(1, sizeof *m);
    const char *v;

    if (!m)
        return NULL;
    copy_str(m->id, sizeof m->id, plx_db_value(res, row, 0));
    copy_str(m->name, sizeof m->name, plx_db_value(res, row, 1));
    copy_str(m->kind, sizeof m->kind, plx_db_value(res, row, 2));
    copy_str(m->provider, sizeof m->provider, plx_db_value(res, row, 3));
    copy_str(m->upstream, sizeof m->upstream, plx_db_value(res, row, 4));
    m->context_window = (v = plx_db_value(res, row, 5)) ? strtol(v, NULL, 10) : 0;
    m->price_input = (v = plx_db_value(res, row, 6)) ? strtod(v, NULL) : 0;
    m->price_output = (v = plx_db_value(res, row, 7)) ? strtod(v, NULL) : 0;
    m->enabled = (v = plx_db_value(res, row, 9)) && v[0] == 't';
    m->created = (v = plx_db_value(res, row, 10)) ? strtod(v, NULL) : 0;
    if (!fallbacks_parse(m, plx_db_value(res, row, 8))) {
        ai_model_free(m);
        return NULL;
    }
    return m;
}

/* every enabled model from the database into *out (by name; at most
 * 10000, far more than a gateway serves) */
static plx_status_t models_load(ai_model_t ***out, size_t *n)
{
    plx_db_res_t *res;
    plx_status_t st;
    ai_model_t **v;
    int rows;

    *out = NULL;
    *n = 0;
    if ((st = plx_db_query(NULL, models_sql, 0, NULL, &res)) != PLX_OK) {
        plx_db_free(res);
        return st == PLX_ERR_NOMEM ? st : PLX_ERR_DB;
    }
    rows = plx_db_rows(res);
    if (!(v = calloc(rows > 0 ? (size_t)rows : 1, sizeof *v))) {
        plx_db_free(res);
        return PLX_ERR_NOMEM;
    }
    for (int i = 0; i < rows; i++) {
        if (!(v[i] = model_from_row(res, i))) {
            ai_model_list_free(v, (size_t)i);
            plx_db_free(res);
            return PLX_ERR_NOMEM;
        }
    }
    plx_db_free(res);
    *out = v;
    *n = (size_t)rows;
    return PLX_OK;
}

/* what a caller does with the cache under its lock: copy one model
 * (name) or all of them (name NULL) */
typedef struct model_pick {
    const char   *name;
    ai_model_t   *one;
    ai_model_t  **all;
    size_t        nall;
} model_pick_t;

static plx_status_t pick_locked(ai_model_t **v, size_t n, model_pick_t *p)
{
    if (p->name) {
        for (size_t i = 0; i < n; i++)
            if (strcmp(v[i]->name, p->name) == 0)
                return (p->one = model_copy(v[i])) ? PLX_OK : PLX_ERR_NOMEM;
        return PLX_ERR_NOT_FOUND;
    }
    if (!(p->all = calloc(n ? n : 1, sizeof *p->all)))
        return PLX_ERR_NOMEM;
    for (p->nall = 0; p->nall < n; p->nall++) {
        if (!(p->all[p->nall] = model_copy(v[p->nall]))) {
            ai_model_list_free(p->all, p->nall);
            p->all = NULL;
            p->nall = 0;
            return PLX_ERR_NOMEM;
        }
    }
    return PLX_OK;
}

static void cache_drop_locked(void)
{
    ai_model_list_free(cache.models, cache.n);
    cache.models = NULL;
    cache.n = 0;
    cache.loaded = 0;
}

static plx_status_t models_pick(model_pick_t *p)
{
    ai_model_t **v;
    size_t n;
    unsigned long gen;
    plx_status_t st;

    pthread_mutex_lock(&cache.lock);
    if (cache.models && (mono_now() - cache.loaded < AI_MODEL_CACHE_TTL
                         || cache.loading)) {
        st = pick_locked(cache.models, cache.n, p);
        pthread_mutex_unlock(&cache.lock);
        return st;
    }
    gen = cache.gen;
    bool reloading = cache.models != NULL;
    if (reloading)
        cache.loading = true;
    pthread_mutex_unlock(&cache.lock);

    st = models_load(&v, &n);

    pthread_mutex_lock(&cache.lock);
    if (reloading)
        cache.loading = false;
    if (st != PLX_OK) {
        pthread_mutex_unlock(&cache.lock);
        return st;
    }
    st = pick_locked(v, n, p);
    if (gen == cache.gen) {
        /* nothing was invalidated while we read: this is the new cache */
        cache_drop_locked();
        cache.models = v;
        cache.n = n;
        cache.loaded = mono_now();
    } else {
        ai_model_list_free(v, n);
    }
    pthread_mutex_unlock(&cache.lock);
    return st;
}

plx_status_t ai_model_get(const char *name, ai_model_t **out)
{
    model_pick_t p = { .name = name };
    plx_status_t st;

    *out = NULL;
    if (!name || !*name)
        return PLX_ERR_NOT_FOUND;
    if ((st = models_pick(&p)) == PLX_OK)
        *out = p.one;
    return st;
}

plx_status_t ai_model_list(ai_model_t ***out, size_t *n)
{
    model_pick_t p = { .name = NULL };
    plx_status_t st;

    *out = NULL;
    *n = 0;
    if ((st = models_pick(&p)) == PLX_OK) {
        *out = p.all;
        *n = p.nall;
    }
    return st;
}

void ai_model_cache_invalidate(void)
{
    pthread_mutex_lock(&cache.lock);
    cache.gen++;
    cache_drop_locked();
    pthread_mutex_unlock(&cache.lock);
}

/* The module is unloaded with dlclose: free the cache then, so that it is
 * not reported as leaked once its pointer is gone. */
__attribute__((destructor)) static void models_cache_fini(void)
{
    ai_model_list_free(cache.models, cache.n);
    cache.models = NULL;
    cache.n = 0;
}

double ai_cost(const ai_model_t *m, long prompt_tokens, long completion_tokens)
{
    double c;

    if (!m)
        return 0;
    c = ((double)(prompt_tokens > 0 ? prompt_tokens : 0) * m->price_input
         + (double)(completion_tokens > 0 ? completion_tokens : 0) * m->price_output)
        / 1e6;
    return isfinite(c) && c > 0 ? c : 0;
}

/* ==== quotas ============================================================== */

struct ai_reservation {
    char   id[37];
    size_t n;
    struct {
        char quota_id[37];
        char period_start[11];      /* YYYY-MM-DD */
    } c[AI_QUOTAS_MAX];
};

/* one quota of the caller, as the reservation reads it */
typedef struct quota {
    const char *id, *subject_type, *period, *max_tokens, *max_cost;
    const char *period_start;
} quota_t;

/* a cost as a numeric literal for SQL: finite, not negative */
static void cost_text(double cost, char out[64])
{
    if (!isfinite(cost) || cost < 0)
        cost = 0;
    if (cost > 1e13)
        cost = 1e13;
    snprintf(out, 64, "%.10f", cost);
}

/* a cost for people: at least two decimals, at most six, no trailing 0s */
static void cost_human(const char *numeric, char out[48])
{
    double v = numeric ? strtod(numeric, NULL) : 0;
    size_t len;

    snprintf(out, 48, "%.6f", v);
    len = strlen(out);
    while (len > 0 && out[len - 1] == '0' && len >= 4 && out[len - 4] != '.')
        out[--len] = '\0';
}

/* the quotas of user and team, in id order, with their current period and
 * a fresh reservation id in column 6 */
static const char quotas_sql[] =
    "SELECT q.id, q.subject_type, q.period, q.max_tokens::text, q.max_cost::text,"
    " to_char(" AI_SQL_PERIOD_START("q.period") ", 'YYYY-MM-DD'),"
    " gen_random_uuid()"
    " FROM ai.quotas q"
    " WHERE (q.subject_type = 'user' AND q.subject_id = $1::uuid)"
    "    OR (q.subject_type = 'team' AND q.subject_id = $2::uuid)"
    " ORDER BY q.id LIMIT 4";

/* $1 quota, $2 period start, $3 tokens, $4 cost, $5 max tokens, $6 max
 * cost (the limits as read; the quota row is not locked, and a limit an
 * admin changes meanwhile applies from the next call) */
static const char reserve_sql[] =
    "UPDATE ai.quota_counters SET reserved_tokens = reserved_tokens + $3::bigint,"
    " reserved_cost = reserved_cost + $4::numeric"
    " WHERE quota_id = $1::uuid AND period_start = $2::date"
    " AND ($5::bigint IS NULL OR used_tokens + reserved_tokens + $3::bigint <= $5::bigint)"
    " AND ($6::numeric IS NULL OR used_cost + reserved_cost + $4::numeric <= $6::numeric)"
    " RETURNING 1";

static const char counter_new_sql[] =
    "INSERT INTO ai.quota_counters (quota_id, period_start)"
    " VALUES ($1::uuid, $2::date) ON CONFLICT DO NOTHING";

static const char counter_read_sql[] =
    "SELECT used_tokens::text, reserved_tokens::text, used_cost::text,"
    " reserved_cost::text FROM ai.quota_counters"
    " WHERE quota_id = $1::uuid AND period_start = $2::date";

/* Why q refuses the call, into why: which quota, and how much of it is
 * used and held, as the counter reads now on c (inside the transaction,
 * before its rollback). */
static void quota_explain(plx_db_conn_t *c, const quota_t *q, long tokens,
                          const char *cost, char *why, size_t whylen)
{
    const char *params[] = { q->id, q->period_start };
    plx_db_res_t *res = NULL;
    const char *used_t = "0", *res_t = "0", *used_c = "0", *res_c = "0";
    bool by_tokens;
    char a[48], b[48], held[96] = "";

    if (!why || whylen == 0)
        return;
    if (plx_db_exec(c, counter_read_sql, 2, params, &res) == PLX_OK
        && plx_db_rows(res) == 1) {
        used_t = plx_db_value(res, 0, 0);
        res_t = plx_db_value(res, 0, 1);
        used_c = plx_db_value(res, 0, 2);
        res_c = plx_db_value(res, 0, 3);
    }
    long long ut = strtoll(used_t, NULL, 10), rt = strtoll(res_t, NULL, 10);
    by_tokens = (q->max_tokens
                 && ut + rt + tokens > strtoll(q->max_tokens, NULL, 10))
                || !q->max_cost;
    bool user = strcmp(q->subject_type, "user") == 0;
    const char *period = strcmp(q->period, "day") == 0 ? "daily" : "monthly";
    const char *dim = by_tokens ? "token" : "cost";
    char who[64];

    if (user)
        snprintf(who, sizeof who, "your %s %s quota", period, dim);
    else
        snprintf(who, sizeof who, "the %s %s quota of your team", period, dim);
    if (by_tokens) {
        long long max = strtoll(q->max_tokens, NULL, 10);
        bool spent = ut + rt >= max;
        if (rt > 0)
            snprintf(held, sizeof held, ", %lld more held by calls in progress", rt);
        if (spent)
            snprintf(why, whylen, "%s is spent: %lld of %lld tokens used%s",
                     who, ut, max, held);
        else
            snprintf(why, whylen, "%s has too little left for this call: %lld of"
                     " %lld tokens used%s, this call may use up to %ld",
                     who, ut, max, held, tokens);
    } else {
        double uc = strtod(used_c, NULL), rc = strtod(res_c, NULL);
        double max = q->max_cost ? strtod(q->max_cost, NULL) : 0;
        char m[48], need[48];
        cost_human(used_c, a);
        cost_human(q->max_cost, m);
        cost_human(cost, need);
        if (rc > 0) {
            cost_human(res_c, b);
            snprintf(held, sizeof held, ", %s more held by calls in progress", b);
        }
        if (uc + rc >= max)
            snprintf(why, whylen, "%s is spent: %s of %s used%s", who, a, m, held);
        else
            snprintf(why, whylen, "%s has too little left for this call: %s of %s"
                     " used%s, this call may cost up to %s", who, a, m, held, need);
    }
    plx_db_free(res);
}

/* reserve on one counter: PLX_OK, PLX_ERR_LIMIT (why written), or the
 * failure of a statement */
static plx_status_t reserve_one(plx_db_conn_t *c, const quota_t *q,
                                const char *tokens, const char *cost,
                                char *why, size_t whylen)
{
    const char *params[] = { q->id, q->period_start, tokens, cost,
                             q->max_tokens, q->max_cost };
    plx_db_res_t *res;
    plx_status_t st;

    for (int attempt = 0; attempt < 2; attempt++) {
        if ((st = plx_db_exec(c, reserve_sql, 6, params, &res)) != PLX_OK) {
            plx_db_free(res);
            return st;
        }
        int rows = plx_db_rows(res);
        plx_db_free(res);
        if (rows == 1)
            return PLX_OK;
        if (attempt == 0) {
            /* no counter yet for this period, or the limit is reached:
             * make sure the counter exists and try once more */
            if ((st = plx_db_exec(c, counter_new_sql, 2, params, &res)) != PLX_OK) {
                plx_db_free(res);
                return st;
            }
            plx_db_free(res);
        }
    }
    quota_explain(c, q, strtol(tokens, NULL, 10), cost, why, whylen);
    return PLX_ERR_LIMIT;
}

/* $1 reservation, $2 quotas, $3 periods (arrays), $4 tokens, $5 cost,
 * $6 seconds to live */
static const char reservation_sql[] =
    "INSERT INTO ai.reservations (id, quota_id, period_start, tokens, cost, expires_at)"
    " SELECT $1::uuid, k.quota_id, k.period_start, $4::bigint, $5::numeric,"
    "  now() + $6::bigint * interval '1 second'"
    " FROM unnest($2::uuid[], $3::date[]) AS k(quota_id, period_start)";

/* "{a,b}" of the reservation's quota ids (which) or periods, for $n::T[] */
static void res_array(const ai_reservation_t *r, bool ids, char *out, size_t len)
{
    size_t o = 0;

    out[o++] = '{';
    for (size_t i = 0; i < r->n && o + 40 < len; i++) {
        const char *v = ids ? r->c[i].quota_id : r->c[i].period_start;
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "," : "", v);
    }
    out[o++] = '}';
    out[o] = '\0';
}

typedef struct reserve_arg {
    const plx_db_res_t     *qs;
    const ai_reservation_t *r;
    const char             *tokens, *cost;
    const char *const      *params;   /* of reservation_sql */
    char                   *why;
    size_t                  whylen;
} reserve_arg_t;

static plx_status_t reserve_fn(plx_db_conn_t *c, void *arg)
{
    const reserve_arg_t *a = arg;
    const plx_db_res_t *qs = a->qs;
    plx_status_t st;

    for (size_t i = 0; i < a->r->n; i++) {
        quota_t q = {
            plx_db_value(qs, (int)i, 0), plx_db_value(qs, (int)i, 1),
            plx_db_value(qs, (int)i, 2), plx_db_value(qs, (int)i, 3),
            plx_db_value(qs, (int)i, 4), plx_db_value(qs, (int)i, 5),
        };
        if ((st = reserve_one(c, &q, a->tokens, a->cost, a->why, a->whylen))
            != PLX_OK)
            return st;
    }
    return plx_db_exec(c, reservation_sql, 6, a->params, NULL);
}

static plx_status_t reserve_tx(const plx_db_res_t *qs, long tokens,
                               double cost, ai_reservation_t *r, char *why,
                               size_t whylen)
{
    char ttext[24], ctext[64], ttl[24], ids[200], periods[200];

    snprintf(ttext, sizeof ttext, "%ld", tokens);
    cost_text(cost, ctext);
    snprintf(ttl, sizeof ttl, "%ld", ai_cfg.reservation_ttl_s > 0
                                     ? ai_cfg.reservation_ttl_s : 900);
    res_array(r, true, ids, sizeof ids);
    res_array(r, false, periods, sizeof periods);
    const char *params[] = { r->id, ids, periods, ttext, ctext, ttl };
    reserve_arg_t a = { qs, r, ttext, ctext, params, why, whylen };
    return plx_db_tx(NULL, PLX_TX_READ_COMMITTED, reserve_fn, &a);
}

/* a failed statement as the contract says: the database is away, or the
 * quota refused (anything else the core has logged already) */
static plx_status_t db_status(plx_status_t st)
{
    return st == PLX_ERR_LIMIT || st == PLX_ERR_NOMEM ? st : PLX_ERR_DB;
}

plx_status_t ai_quota_reserve(const char *user_id, const char *team_id,
                              long tokens, double cost, ai_reservation_t **out,
                              char *why, size_t whylen)
{
    plx_db_conn_t *c;
    plx_db_res_t *qs = NULL;
    ai_reservation_t *r;
    plx_status_t st;

    *out = NULL;
    if (why && whylen)
        why[0] = '\0';
    if (user_id && !plx_uuid_valid(user_id))
        user_id = NULL;
    if (team_id && !plx_uuid_valid(team_id))
        team_id = NULL;
    if (!user_id && !team_id)
        return PLX_OK;
    if (tokens < 0)
        tokens = 0;
    if (!(c = plx_db_acquire(0)))
        return PLX_ERR_DB;
    const char *params[] = { user_id, team_id };
    if ((st = plx_db_exec(c, quotas_sql, 2, params, &qs)) != PLX_OK) {
        plx_db_free(qs);
        plx_db_release(c);
        return db_status(st);
    }
    if (plx_db_rows(qs) == 0) {
        plx_db_free(qs);
        plx_db_release(c);
        return PLX_OK;
    }
    if (!(r = calloc(1, sizeof *r))) {
        plx_db_free(qs);
        plx_db_release(c);
        return PLX_ERR_NOMEM;
    }
    r->n = (size_t)plx_db_rows(qs);
    if (r->n > AI_QUOTAS_MAX)
        r->n = AI_QUOTAS_MAX;
    copy_str(r->id, sizeof r->id, plx_db_value(qs, 0, 6));
    for (size_t i = 0; i < r->n; i++) {
        copy_str(r->c[i].quota_id, sizeof r->c[i].quota_id,
                 plx_db_value(qs, (int)i, 0));
        copy_str(r->c[i].period_start, sizeof r->c[i].period_start,
                 plx_db_value(qs, (int)i, 5));
    }
    plx_db_release(c);   /* db_tx takes its own */
    st = reserve_tx(qs, tokens, cost, r, why, whylen);
    plx_db_free(qs);
    if (st != PLX_OK) {
        free(r);
        return db_status(st);
    }
    *out = r;
    return PLX_OK;
}

/* lock the reservation's counters, in order, before any reservation row */
static const char settle_lock_sql[] =
    "SELECT 1 FROM ai.quota_counters"
    " WHERE (quota_id, period_start) IN"
    "  (SELECT * FROM unnest($1::uuid[], $2::date[]))"
    " ORDER BY quota_id, period_start FOR NO KEY UPDATE";

/* $1 reservation, $2 quotas, $3 periods, $4 tokens, $5 cost. A reservation
 * already swept frees nothing, but its real usage is still counted. */
static const char settle_sql[] =
    "WITH d AS (DELETE FROM ai.reservations WHERE id = $1::uuid"
    "           RETURNING quota_id, period_start, tokens, cost)"
    " UPDATE ai.quota_counters c SET"
    "  reserved_tokens = greatest(c.reserved_tokens - COALESCE(d.tokens, 0), 0),"
    "  reserved_cost = greatest(c.reserved_cost - COALESCE(d.cost, 0), 0),"
    "  used_tokens = c.used_tokens + $4::bigint,"
    "  used_cost = c.used_cost + $5::numeric"
    " FROM unnest($2::uuid[], $3::date[]) AS k(quota_id, period_start)"
    " LEFT JOIN d ON d.quota_id = k.quota_id AND d.period_start = k.period_start"
    " WHERE c.quota_id = k.quota_id AND c.period_start = k.period_start";

typedef struct settle_arg {
    const char *const *lock;
    const char *const *params;
} settle_arg_t;

static plx_status_t settle_fn(plx_db_conn_t *c, void *arg)
{
    const settle_arg_t *a = arg;
    plx_status_t st = plx_db_exec(c, settle_lock_sql, 2, a->lock, NULL);

    return st == PLX_OK ? plx_db_exec(c, settle_sql, 5, a->params, NULL) : st;
}

static plx_status_t settle_tx(const ai_reservation_t *r, long tokens,
                              double cost)
{
    char ids[200], periods[200], ttext[24], ctext[64];

    res_array(r, true, ids, sizeof ids);
    res_array(r, false, periods, sizeof periods);
    snprintf(ttext, sizeof ttext, "%ld", tokens > 0 ? tokens : 0);
    cost_text(cost, ctext);
    const char *lock[] = { ids, periods };
    const char *params[] = { r->id, ids, periods, ttext, ctext };
    settle_arg_t a = { lock, params };
    return plx_db_tx(NULL, PLX_TX_READ_COMMITTED, settle_fn, &a);
}

plx_status_t ai_quota_settle(ai_reservation_t *res, long tokens, double cost)
{
    plx_status_t st;

    if (!res)
        return PLX_OK;
    st = settle_tx(res, tokens, cost);
    if (st != PLX_OK) {
        /* the reservation is released when it expires; the usage row
         * still records the call */
        plx_log(ai_module, PLX_LOG_WARN, "quota reservation %s not settled"
                " (%ld tokens): %s", res->id, tokens, plx_status_str(st));
        st = db_status(st);
    }
    free(res);
    return st;
}

/* the counters with expired reservations, 500 a run (the next run, a
 * minute later, takes the rest) */
static const char sweep_find_sql[] =
    "SELECT DISTINCT quota_id, period_start::text FROM ai.reservations"
    " WHERE expires_at < now() LIMIT 500";

static const char sweep_lock_sql[] =
    "SELECT 1 FROM ai.quota_counters WHERE quota_id = $1::uuid"
    " AND period_start = $2::date FOR NO KEY UPDATE";

/* $1 quota, $2 period: release its expired reservations; one row: how
 * many were released */
static const char sweep_sql[] =
    "WITH d AS (DELETE FROM ai.reservations WHERE quota_id = $1::uuid"
    "           AND period_start = $2::date AND expires_at < now()"
    "           RETURNING tokens, cost),"
    " s AS (SELECT count(*) AS n, COALESCE(sum(tokens), 0) AS tokens,"
    "       COALESCE(sum(cost), 0) AS cost FROM d),"
    " u AS (UPDATE ai.quota_counters c SET"
    "  reserved_tokens = greatest(c.reserved_tokens - s.tokens, 0),"
    "  reserved_cost = greatest(c.reserved_cost - s.cost, 0)"
    "  FROM s WHERE c.quota_id = $1::uuid AND c.period_start = $2::date)"
    " SELECT n FROM s";

typedef struct sweep_arg {
    const char *const *params;   /* quota, period */
    long               n;        /* reservations released */
} sweep_arg_t;

static plx_status_t sweep_fn(plx_db_conn_t *c, void *arg)
{
    sweep_arg_t *a = arg;
    plx_db_res_t *res = NULL;
    plx_status_t st = plx_db_exec(c, sweep_lock_sql, 2, a->params, NULL);

    if (st == PLX_OK)
        st = plx_db_exec(c, sweep_sql, 2, a->params, &res);
    if (st == PLX_OK) {
        const char *v = plx_db_value(res, 0, 0);
        a->n = v ? strtol(v, NULL, 10) : 0;
    }
    plx_db_free(res);
    return st;
}

static long sweep_one(const char *quota, const char *period)
{
    const char *params[] = { quota, period };
    sweep_arg_t a = { params, 0 };

    if (plx_db_tx(NULL, PLX_TX_READ_COMMITTED, sweep_fn, &a) != PLX_OK)
        return -1;
    return a.n;
}

void ai_quota_sweep(void)
{
    plx_db_conn_t *c;
    plx_db_res_t *res = NULL;
    long released = 0, n;

    if (!(c = plx_db_acquire(0)))
        return;
    if (plx_db_exec(c, sweep_find_sql, 0, NULL, &res) != PLX_OK) {
        plx_db_free(res);
        plx_db_release(c);
        return;
    }
    plx_db_release(c);   /* each sweep is a db_tx of its own */
    for (int i = 0; i < plx_db_rows(res); i++) {
        if ((n = sweep_one(plx_db_value(res, i, 0), plx_db_value(res, i, 1))) < 0)
            break;
        released += n;
    }
    plx_db_free(res);
    if (released > 0)
        plx_log(ai_module, PLX_LOG_INFO, "released %ld expired quota"
                " reservation%s", released, released == 1 ? "" : "s");
}

/* ==== usage =============================================================== */

/* s cut to at most max bytes on a character boundary, invalid UTF-8 as
 * U+FFFD (the core's repair) and control characters other than newline
 * and tab as '?', into out (max + 1 bytes) */
static void clean_text(const char *s, char *out, size_t max)
{
    size_t n = plx_utf8_repair(s, strlen(s), out, max + 1);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)out[i];
        if ((c < 0x20 || c == 0x7f) && c != '\n' && c != '\t')
            out[i] = '?';
    }
}

static const char usage_sql[] =
    "INSERT INTO ai.usage (user_id, team_id, api_key_id, request_id, kind,"
    " model, served_model, provider, prompt_tokens, completion_tokens, cost,"
    " estimated, status, error, ttft_seconds, seconds)"
    " VALUES ($1::uuid, $2::uuid, $3::uuid, $4, $5, $6, $7, $8, $9::bigint,"
    " $10::bigint, $11::numeric, $12::boolean, $13, $14, $15::float8, $16::float8)";

static const char *uuid_or_null(const char *s)
{
    return plx_uuid_valid(s) ? s : NULL;
}

plx_status_t ai_usage_record(const ai_usage_row_t *u)
{
    char pt[24], ct[24], cost[64], ttft[32], secs[32];
    char *error = NULL, rid[129];
    plx_status_t st;

    if (!u || !u->kind || !u->model || !u->status)
        return PLX_ERR_INVALID;
    snprintf(pt, sizeof pt, "%ld", u->prompt_tokens > 0 ? u->prompt_tokens : 0);
    snprintf(ct, sizeof ct, "%ld", u->completion_tokens > 0 ? u->completion_tokens : 0);
    cost_text(u->cost, cost);
    snprintf(ttft, sizeof ttft, "%.6f", u->ttft_seconds);
    snprintf(secs, sizeof secs, "%.6f", isfinite(u->seconds) && u->seconds > 0
                                        ? u->seconds : 0.0);
    if (u->request_id)
        clean_text(u->request_id, rid, sizeof rid - 1);
    if (u->error && (error = malloc(AI_ERROR_MAX + 1)))
        clean_text(u->error, error, AI_ERROR_MAX);
    const char *params[] = {
        uuid_or_null(u->user_id), uuid_or_null(u->team_id),
        uuid_or_null(u->api_key_id), u->request_id ? rid : NULL, u->kind,
        u->model, u->served_model, u->provider, pt, ct, cost,
        u->estimated ? "true" : "false", u->status, error,
        isfinite(u->ttft_seconds) && u->ttft_seconds >= 0 ? ttft : NULL, secs,
    };
    st = plx_db_query(NULL, usage_sql, 16, params, NULL);
    free(error);
    if (st != PLX_OK)
        plx_log(ai_module, PLX_LOG_WARN, "usage row of %s call to \"%s\" (%s"
                " prompt, %s completion tokens) not written: %s", u->kind,
                u->model, pt, ct, plx_status_str(st));
    if (st == PLX_OK || st == PLX_ERR_NOMEM)
        return st;
    return st == PLX_ERR_CONFLICT ? PLX_ERR_INVALID : PLX_ERR_DB;
}
