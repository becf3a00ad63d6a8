/*
 * test_ai_store.c - the ai module's store layer (store.c) against a real
 * PostgreSQL, through the core's real connection pool
 *
 * store.c is linked with nothing of the core: the fake API table of
 * api_stub.h with its database entries over libpq (db_stub.c) stands in
 * for it, so the module's own code is tested without a server or a
 * provider: quota reservations from many threads at once
 * (exact counts, no deadlock between callers whose quotas overlap in
 * different orders), the messages of a refused call, settling, sweeping
 * expired reservations (and settling one already swept), cost quotas,
 * usage rows, the model cache, and a database that goes away (PLX_ERR_DB,
 * no crash) and comes back. The stub talks to PostgreSQL through a TCP
 * proxy the test can pause; the checks use a direct connection.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ai.h"
#include "api_stub.h"
#include "harness.h"
#include "pgtest.h"

/* what ai.c and settings.c would define */
plx_module_t *ai_module = AI_STUB_MODULE;
ai_settings_t ai_cfg;

static char dbname[64];
static char *direct;          /* conninfo straight to the database */
static PGconn *pg;            /* the test's own connection, for checks */
static plxt_proxy_t *proxy;   /* between the stub and PostgreSQL */

/* ---- direct SQL ----------------------------------------------------------- */

static PGresult *run(const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(pg));
    return res;
}

static void sql(const char *q, int n, const char *const *params)
{
    PQclear(run(q, n, params));
}

/* the first value of the first row as a long (0 for NULL / no row) */
static long long sql_num(const char *q, int n, const char *const *params)
{
    PGresult *res = run(q, n, params);
    long long v = 0;

    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

/* ... as text into out ("" for NULL / no row) */
static char *sql_text(const char *q, int n, const char *const *params,
                      char *out, size_t len)
{
    PGresult *res = run(q, n, params);

    out[0] = '\0';
    if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        snprintf(out, len, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

static void new_uuid(char out[37])
{
    sql_text("SELECT gen_random_uuid()", 0, NULL, out, 37);
}

/* a quota; returns its id in id */
static void quota(const char *type, const char *subject, const char *period,
                  const char *max_tokens, const char *max_cost, char id[37])
{
    const char *p[] = { type, subject, period, max_tokens, max_cost };
    sql_text("INSERT INTO ai.quotas (subject_type, subject_id, period, max_tokens,"
             " max_cost) VALUES ($1, $2, $3, $4, $5) RETURNING id", 5, p, id, 37);
}

static long long counter(const char *quota_id, const char *column)
{
    char q[256];
    const char *p[] = { quota_id };

    snprintf(q, sizeof q, "SELECT %s FROM ai.quota_counters WHERE quota_id = $1"
             " ORDER BY period_start DESC LIMIT 1", column);
    return sql_num(q, 1, p);
}

static long long reservations(void)
{
    return sql_num("SELECT count(*) FROM ai.reservations", 0, NULL);
}

/* ---- setup ---------------------------------------------------------------- */

static void apply_file(const char *rel)
{
    const char *src = getenv("PLX_SRCDIR");
    char path[512];
    FILE *f;
    char *text;
    long len;

    snprintf(path, sizeof path, "%s/%s", src ? src : ".", rel);
    assert_non_null(f = fopen(path, "rb"));
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    text = calloc(1, (size_t)len + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    PGresult *res = PQexec(pg, text);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", rel, PQerrorMessage(pg));
    PQclear(res);
    free(text);
}

static int group_setup(void **state)
{
    const char *host = getenv("PGHOST"), *port = getenv("PGPORT");

    if (!(direct = pgtest_db_create(dbname)))
        return -1;
    pg = PQconnectdb(direct);
    if (PQstatus(pg) != CONNECTION_OK)
        return -1;
    apply_file("sql/0001_core.sql");
    apply_file("sql/0002_identity.sql");
    apply_file("modules/ai/sql/0001_ai.sql");
    if (!(proxy = plxt_proxy_start(host, port && *port ? atoi(port) : 5432)))
        return -1;
    char *url = plxt_proxy_conninfo(proxy, dbname);
    if (!url)
        return -1;
    ai_stub_install();
    ai_stub_db(url);
    free(url);
    ai_cfg.reservation_ttl_s = 900;
    return 0;
}

static int group_teardown(void **state)
{
    ai_model_cache_invalidate();
    ai_stub_db_close();
    plxt_proxy_stop(proxy);
    PQfinish(pg);
    pgtest_db_drop(dbname);
    free(direct);
    return 0;
}

/* every test starts without quotas, reservations, usage or models */
static int clean(void **state)
{
    sql("TRUNCATE ai.quotas, ai.quota_counters, ai.reservations, ai.usage,"
        " ai.models", 0, NULL);
    ai_model_cache_invalidate();
    ai_cfg.reservation_ttl_s = 900;
    return 0;
}

/* ---- quotas: one caller --------------------------------------------------- */

static void test_no_quota(void **state)
{
    char user[37], why[256];
    ai_reservation_t *res = (ai_reservation_t *)1;

    new_uuid(user);
    assert_int_equal(ai_quota_reserve(user, NULL, 500, 1.0, &res, why, sizeof why),
                     PLX_OK);
    assert_null(res);
    assert_int_equal(ai_quota_settle(NULL, 10, 0.1), PLX_OK);
    /* a service call charges nobody */
    assert_int_equal(ai_quota_reserve(NULL, NULL, 500, 1.0, &res, why, sizeof why),
                     PLX_OK);
    assert_null(res);
    assert_int_equal(reservations(), 0);
}

static void test_reserve_settle(void **state)
{
    char user[37], q[37], why[256];
    ai_reservation_t *res;

    new_uuid(user);
    quota("user", user, "day", "1000", NULL, q);
    assert_int_equal(ai_quota_reserve(user, NULL, 300, 0, &res, why, sizeof why),
                     PLX_OK);
    assert_non_null(res);
    assert_int_equal(counter(q, "reserved_tokens"), 300);
    assert_int_equal(counter(q, "used_tokens"), 0);
    assert_int_equal(reservations(), 1);
    /* the counter is today's, in UTC */
    const char *p[] = { q };
    assert_int_equal(sql_num("SELECT count(*) FROM ai.quota_counters WHERE quota_id = $1"
                             " AND period_start = (now() AT TIME ZONE 'UTC')::date",
                             1, p), 1);
    /* settled to what the call really used */
    assert_int_equal(ai_quota_settle(res, 120, 0), PLX_OK);
    assert_int_equal(counter(q, "reserved_tokens"), 0);
    assert_int_equal(counter(q, "used_tokens"), 120);
    assert_int_equal(reservations(), 0);

    /* 880 left: 881 is refused, 880 is not */
    assert_int_equal(ai_quota_reserve(user, NULL, 881, 0, &res, why, sizeof why),
                     PLX_ERR_LIMIT);
    assert_null(res);
    assert_non_null(strstr(why, "your daily token quota"));
    assert_non_null(strstr(why, "120 of 1000 tokens used"));
    assert_int_equal(counter(q, "reserved_tokens"), 0);
    assert_int_equal(ai_quota_reserve(user, NULL, 880, 0, &res, why, sizeof why),
                     PLX_OK);
    assert_int_equal(ai_quota_settle(res, 880, 0), PLX_OK);
    assert_int_equal(counter(q, "used_tokens"), 1000);

    /* spent: even a small call is refused, and the message says so */
    assert_int_equal(ai_quota_reserve(user, NULL, 1, 0, &res, why, sizeof why),
                     PLX_ERR_LIMIT);
    assert_string_equal(why, "your daily token quota is spent: 1000 of 1000 tokens used");
}

static void test_team_and_month(void **state)
{
    char user[37], team[37], qu[37], qt[37], why[256];
    ai_reservation_t *res;

    new_uuid(user);
    new_uuid(team);
    quota("user", user, "day", "100000", NULL, qu);
    quota("team", team, "month", "500", NULL, qt);
    assert_int_equal(ai_quota_reserve(user, team, 400, 0, &res, why, sizeof why),
                     PLX_OK);
    /* both quotas carry the reservation */
    assert_int_equal(counter(qu, "reserved_tokens"), 400);
    assert_int_equal(counter(qt, "reserved_tokens"), 400);
    assert_int_equal(reservations(), 2);
    const char *p[] = { qt };
    assert_int_equal(sql_num("SELECT count(*) FROM ai.quota_counters WHERE quota_id = $1"
                             " AND period_start = date_trunc('month',"
                             " now() AT TIME ZONE 'UTC')::date", 1, p), 1);

    /* the team's is what refuses the next one; nothing stays reserved on
     * the user's quota by the refused call */
    ai_reservation_t *res2;
    assert_int_equal(ai_quota_reserve(user, team, 200, 0, &res2, why, sizeof why),
                     PLX_ERR_LIMIT);
    assert_non_null(strstr(why, "the monthly token quota of your team"));
    assert_non_null(strstr(why, "400 more held by calls in progress"));
    assert_int_equal(counter(qu, "reserved_tokens"), 400);

    assert_int_equal(ai_quota_settle(res, 450, 0), PLX_OK);
    assert_int_equal(counter(qu, "used_tokens"), 450);
    assert_int_equal(counter(qt, "used_tokens"), 450);
    assert_int_equal(counter(qt, "reserved_tokens"), 0);
    /* a call without the team is not held by the team's quota */
    assert_int_equal(ai_quota_reserve(user, NULL, 200, 0, &res, why, sizeof why),
                     PLX_OK);
    assert_int_equal(ai_quota_settle(res, 200, 0), PLX_OK);
    assert_int_equal(counter(qt, "used_tokens"), 450);
}

static void test_cost_quota(void **state)
{
    char user[37], q[37], why[256], text[64];
    ai_reservation_t *a, *b, *c;

    new_uuid(user);
    quota("user", user, "month", NULL, "0.01", q);
    assert_int_equal(ai_quota_reserve(user, NULL, 10, 0.004, &a, why, sizeof why), PLX_OK);
    assert_int_equal(ai_quota_reserve(user, NULL, 10, 0.004, &b, why, sizeof why), PLX_OK);
    assert_int_equal(ai_quota_reserve(user, NULL, 10, 0.004, &c, why, sizeof why),
                     PLX_ERR_LIMIT);
    assert_non_null(strstr(why, "your monthly cost quota has too little left"));
    assert_non_null(strstr(why, "0.008 more held by calls in progress"));
    assert_int_equal(ai_quota_settle(a, 10, 0.0012345678), PLX_OK);
    assert_int_equal(ai_quota_settle(b, 10, 0.001), PLX_OK);
    const char *p[] = { q };
    /* numeric all the way: no binary rounding in the sum */
    assert_string_equal(sql_text("SELECT used_cost::text FROM ai.quota_counters"
                                 " WHERE quota_id = $1", 1, p, text, sizeof text),
                        "0.0022345678");
    assert_string_equal(sql_text("SELECT reserved_cost::text FROM ai.quota_counters"
                                 " WHERE quota_id = $1", 1, p, text, sizeof text),
                        "0.0000000000");
}

static void test_sweep(void **state)
{
    char user[37], q[37], why[256];
    ai_reservation_t *old, *fresh;

    new_uuid(user);
    quota("user", user, "day", "1000", NULL, q);
    ai_cfg.reservation_ttl_s = 1;
    assert_int_equal(ai_quota_reserve(user, NULL, 600, 0, &old, why, sizeof why), PLX_OK);
    ai_cfg.reservation_ttl_s = 900;
    assert_int_equal(ai_quota_reserve(user, NULL, 300, 0, &fresh, why, sizeof why), PLX_OK);
    assert_int_equal(counter(q, "reserved_tokens"), 900);
    plxt_sleep_ms(1300);
    ai_quota_sweep();
    /* the expired one is released, the other one kept */
    assert_int_equal(counter(q, "reserved_tokens"), 300);
    assert_int_equal(reservations(), 1);
    /* a call that outlived its reservation still counts what it used */
    assert_int_equal(ai_quota_settle(old, 250, 0), PLX_OK);
    assert_int_equal(counter(q, "used_tokens"), 250);
    assert_int_equal(counter(q, "reserved_tokens"), 300);
    assert_int_equal(ai_quota_settle(fresh, 100, 0), PLX_OK);
    assert_int_equal(counter(q, "used_tokens"), 350);
    assert_int_equal(counter(q, "reserved_tokens"), 0);
    assert_int_equal(reservations(), 0);
    ai_quota_sweep();   /* nothing to do */
    assert_int_equal(counter(q, "used_tokens"), 350);
}

/* ---- quotas: many callers at once ----------------------------------------- */

#define MAX_HELD 256

typedef struct race {
    const char      *users[8];
    size_t           nusers;
    const char      *team;
    long             tokens;
    pthread_mutex_t  lock;
    ai_reservation_t *held[MAX_HELD];
    size_t           nheld;
    int              unexpected;      /* statuses other than OK and LIMIT */
    pthread_barrier_t start;
} race_t;

typedef struct racer {
    race_t *race;
    int     index;
} racer_t;

/* reserve until refused */
static void *racer_run(void *arg)
{
    racer_t *me = arg;
    race_t *rc = me->race;
    const char *user = rc->users[(size_t)me->index % rc->nusers];
    char why[256];

    pthread_barrier_wait(&rc->start);
    for (;;) {
        ai_reservation_t *res = NULL;
        plx_status_t st = ai_quota_reserve(user, rc->team, rc->tokens, 0, &res,
                                           why, sizeof why);
        pthread_mutex_lock(&rc->lock);
        if (st == PLX_OK && res && rc->nheld < MAX_HELD)
            rc->held[rc->nheld++] = res;
        else if (st != PLX_ERR_LIMIT)
            rc->unexpected++;
        pthread_mutex_unlock(&rc->lock);
        if (st != PLX_OK)
            break;
    }
    return NULL;
}

static void race_run(race_t *rc, int threads)
{
    pthread_t t[16];
    racer_t who[16];

    pthread_mutex_init(&rc->lock, NULL);
    pthread_barrier_init(&rc->start, NULL, (unsigned)threads);
    for (int i = 0; i < threads; i++) {
        who[i] = (racer_t){ rc, i };
        assert_int_equal(pthread_create(&t[i], NULL, racer_run, &who[i]), 0);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&rc->start);
    pthread_mutex_destroy(&rc->lock);
    assert_int_equal(rc->unexpected, 0);
}

typedef struct settler {
    ai_reservation_t **v;
    size_t n;
    long tokens;
    int failed;
} settler_t;

static void *settle_run(void *arg)
{
    settler_t *s = arg;

    for (size_t i = 0; i < s->n; i++)
        if (ai_quota_settle(s->v[i], s->tokens, 0) != PLX_OK)
            s->failed++;
    return NULL;
}

/* settle every held reservation to tokens, from 4 threads */
static void settle_all(race_t *rc, long tokens)
{
    pthread_t t[4];
    settler_t s[4];
    size_t per = (rc->nheld + 3) / 4;

    for (int i = 0; i < 4; i++) {
        size_t from = (size_t)i * per;
        size_t n = from >= rc->nheld ? 0 : rc->nheld - from < per ? rc->nheld - from : per;
        s[i] = (settler_t){ rc->held + from, n, tokens, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, settle_run, &s[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(s[i].failed, 0);
    }
    rc->nheld = 0;
}

static void test_race_one_quota(void **state)
{
    char user[37], q[37];
    race_t rc = { .nusers = 1, .tokens = 30 };

    new_uuid(user);
    rc.users[0] = user;
    quota("user", user, "day", "1000", NULL, q);
    race_run(&rc, 12);
    /* 33 * 30 = 990 fits in 1000, a 34th would not */
    assert_int_equal(rc.nheld, 33);
    assert_int_equal(counter(q, "reserved_tokens"), 990);
    assert_int_equal(reservations(), 33);
    settle_all(&rc, 10);
    assert_int_equal(counter(q, "used_tokens"), 330);
    assert_int_equal(counter(q, "reserved_tokens"), 0);
    assert_int_equal(reservations(), 0);
    /* 670 left: 22 more */
    race_run(&rc, 12);
    assert_int_equal(rc.nheld, 22);
    settle_all(&rc, 30);
    assert_int_equal(counter(q, "used_tokens"), 330 + 22 * 30);
}

/* Four users of one team, each with a daily quota of 100 tokens, the team
 * with a monthly one of 300: calls of 20 tokens stop at 15 for the team,
 * none of the users above 5. The quota ids are random, so different
 * callers lock their counters in different orders: only the store's fixed
 * order keeps them out of deadlocks. */
static void test_race_overlapping(void **state)
{
    char users[4][37], qu[4][37], team[37], qt[37];
    race_t rc = { .nusers = 4, .tokens = 20 };

    new_uuid(team);
    for (int i = 0; i < 4; i++) {
        new_uuid(users[i]);
        rc.users[i] = users[i];
        quota("user", users[i], "day", "100", NULL, qu[i]);
    }
    rc.team = team;
    quota("team", team, "month", "300", NULL, qt);
    race_run(&rc, 16);
    assert_int_equal(rc.nheld, 15);
    assert_int_equal(counter(qt, "reserved_tokens"), 300);
    long long sum = 0;
    for (int i = 0; i < 4; i++) {
        long long r = counter(qu[i], "reserved_tokens");
        assert_true(r <= 100);
        sum += r;
    }
    assert_int_equal(sum, 300);
    settle_all(&rc, 20);
    assert_int_equal(counter(qt, "used_tokens"), 300);
    assert_int_equal(counter(qt, "reserved_tokens"), 0);
    assert_int_equal(reservations(), 0);
}

/* ---- usage rows ----------------------------------------------------------- */

static void test_usage_record(void **state)
{
    char user[37], team[37], text[256];
    ai_usage_row_t u = {
        .kind = "chat", .model = "m1", .served_model = "m2", .provider = "fake",
        .prompt_tokens = 12, .completion_tokens = 34, .cost = 0.0001234567,
        .estimated = true, .status = "error",
        .error = "upstream said \xff\xfe no\x01", .ttft_seconds = -1, .seconds = 1.5,
        .request_id = "req-1", .api_key_id = "not-a-uuid",
    };

    new_uuid(user);
    new_uuid(team);
    u.user_id = user;
    u.team_id = team;
    assert_int_equal(ai_usage_record(&u), PLX_OK);
    const char *p[] = { user, team };
    assert_string_equal(sql_text(
        "SELECT concat_ws('|', team_id = $2::uuid, kind, model, served_model,"
        " provider, prompt_tokens, completion_tokens, cost, estimated, status,"
        " error, coalesce(ttft_seconds::text, 'none'), seconds, request_id,"
        " coalesce(api_key_id::text, 'none')) FROM ai.usage WHERE user_id = $1",
        2, p, text, sizeof text),
        /* invalid bytes as U+FFFD, a control character as '?' */
        "t|chat|m1|m2|fake|12|34|0.0001234567|t|error|upstream said "
        "\xef\xbf\xbd\xef\xbf\xbd no?|none|1.5|req-1|none");

    /* a row of a cancelled call with no user (a service), measured */
    ai_usage_row_t v = { .kind = "service", .model = "m1", .status = "cancelled",
                         .ttft_seconds = 0.25, .seconds = 0.5,
                         .prompt_tokens = -5 };
    assert_int_equal(ai_usage_record(&v), PLX_OK);
    assert_string_equal(sql_text(
        "SELECT concat_ws('|', user_id IS NULL, prompt_tokens, ttft_seconds,"
        " estimated, cost) FROM ai.usage WHERE kind = 'service'", 0, NULL,
        text, sizeof text), "t|0|0.25|f|0.0000000000");

    /* a status the table does not know is the caller's mistake */
    v.status = "exploded";
    assert_int_equal(ai_usage_record(&v), PLX_ERR_INVALID);
    v.status = NULL;
    assert_int_equal(ai_usage_record(&v), PLX_ERR_INVALID);
    assert_int_equal(sql_num("SELECT count(*) FROM ai.usage", 0, NULL), 2);
}

/* ---- models ----------------------------------------------------------------- */

static void models_insert(void)
{
    sql("INSERT INTO ai.models (name, kind, provider, upstream, context_window,"
        " price_input, price_output, fallbacks, enabled) VALUES"
        " ('b-model', 'chat', 'fake', 'up-b', 4096, 2, 4, '{a-model,c-model}', true),"
        " ('a-model', 'embedding', 'fake', 'up-a', 8192, 0.1, 0, '{}', true),"
        " ('off', 'chat', 'fake', 'up-off', 8192, 1, 1, '{}', false)", 0, NULL);
}

static double price_of(const char *name)
{
    ai_model_t *m;
    double v;

    assert_int_equal(ai_model_get(name, &m), PLX_OK);
    v = m->price_input;
    ai_model_free(m);
    return v;
}

static void test_models(void **state)
{
    ai_model_t *m, **v;
    size_t n;

    models_insert();
    assert_int_equal(ai_model_get("b-model", &m), PLX_OK);
    assert_string_equal(m->name, "b-model");
    assert_string_equal(m->kind, "chat");
    assert_string_equal(m->provider, "fake");
    assert_string_equal(m->upstream, "up-b");
    assert_int_equal(strlen(m->id), 36);
    assert_int_equal(m->context_window, 4096);
    assert_true(m->price_input == 2.0 && m->price_output == 4.0);
    assert_true(m->enabled);
    assert_true(m->created > 1.6e9);
    assert_int_equal(m->nfallbacks, 2);
    assert_string_equal(m->fallbacks[0], "a-model");
    assert_string_equal(m->fallbacks[1], "c-model");
    /* (1000 * 2 + 500 * 4) / 1e6 */
    assert_true(fabs(ai_cost(m, 1000, 500) - 0.004) < 1e-12);
    assert_true(ai_cost(m, -3, 0) == 0.0);
    ai_model_free(m);

    assert_int_equal(ai_model_get("off", &m), PLX_ERR_NOT_FOUND);
    assert_null(m);
    assert_int_equal(ai_model_get("nothing", &m), PLX_ERR_NOT_FOUND);
    assert_int_equal(ai_model_get("", &m), PLX_ERR_NOT_FOUND);

    assert_int_equal(ai_model_list(&v, &n), PLX_OK);
    assert_int_equal(n, 2);
    assert_string_equal(v[0]->name, "a-model");
    assert_string_equal(v[0]->kind, "embedding");
    assert_true(fabs(v[0]->price_input - 0.1) < 1e-12);
    assert_int_equal(v[0]->nfallbacks, 0);
    assert_string_equal(v[1]->name, "b-model");
    ai_model_list_free(v, n);

    /* served from the cache until invalidated... */
    sql("UPDATE ai.models SET price_input = 3 WHERE name = 'b-model'", 0, NULL);
    assert_true(price_of("b-model") == 2.0);
    ai_model_cache_invalidate();
    assert_true(price_of("b-model") == 3.0);
    /* ...or until it expires, for changes made by another instance */
    sql("UPDATE ai.models SET price_input = 5 WHERE name = 'b-model'", 0, NULL);
    sql("UPDATE ai.models SET enabled = false WHERE name = 'a-model'", 0, NULL);
    assert_true(price_of("b-model") == 3.0);
    plxt_sleep_ms(5300);
    assert_true(price_of("b-model") == 5.0);
    assert_int_equal(ai_model_get("a-model", &m), PLX_ERR_NOT_FOUND);
}

typedef struct reader {
    int rounds, failed;
} reader_t;

static void *reader_run(void *arg)
{
    reader_t *r = arg;
    ai_model_t *m, **v;
    size_t n;

    for (int i = 0; i < r->rounds; i++) {
        if (ai_model_get("b-model", &m) != PLX_OK || strcmp(m->upstream, "up-b") != 0)
            r->failed++;
        ai_model_free(m);
        if (ai_model_list(&v, &n) != PLX_OK || n != 2)
            r->failed++;
        ai_model_list_free(v, n);
        if (i % 10 == 0)
            ai_model_cache_invalidate();
    }
    return NULL;
}

/* readers and invalidations at once: every read sees a whole model */
static void test_models_threads(void **state)
{
    pthread_t t[6];
    reader_t r[6];

    models_insert();
    for (int i = 0; i < 6; i++) {
        r[i] = (reader_t){ 100, 0 };
        assert_int_equal(pthread_create(&t[i], NULL, reader_run, &r[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(r[i].failed, 0);
    }
}

/* ---- the database goes away ------------------------------------------------ */

static void test_database_away(void **state)
{
    char user[37], q[37], why[256];
    ai_reservation_t *res, *res2 = (ai_reservation_t *)1;
    ai_model_t *m = (ai_model_t *)1;
    ai_usage_row_t u = { .kind = "chat", .model = "m", .status = "ok" };
    plx_status_t st = PLX_ERR_DB;

    new_uuid(user);
    quota("user", user, "day", "1000", NULL, q);
    models_insert();
    assert_int_equal(ai_quota_reserve(user, NULL, 100, 0, &res, why, sizeof why), PLX_OK);

    plxt_proxy_pause(proxy);
    assert_int_equal(ai_quota_reserve(user, NULL, 100, 0, &res2, why, sizeof why),
                     PLX_ERR_DB);
    assert_null(res2);
    assert_int_equal(ai_quota_settle(res, 50, 0), PLX_ERR_DB);   /* and freed */
    assert_int_equal(ai_usage_record(&u), PLX_ERR_DB);
    ai_model_cache_invalidate();
    assert_int_equal(ai_model_get("b-model", &m), PLX_ERR_DB);
    assert_null(m);
    ai_quota_sweep();

    /* back: the pool reconnects (after its backoff) and all works again */
    plxt_proxy_resume(proxy);
    for (int i = 0; i < 60 && st != PLX_OK; i++) {
        st = ai_quota_reserve(user, NULL, 100, 0, &res, why, sizeof why);
        if (st != PLX_OK)
            plxt_sleep_ms(250);
    }
    assert_int_equal(st, PLX_OK);
    /* the unsettled reservation stays held until it expires */
    assert_int_equal(counter(q, "reserved_tokens"), 200);
    assert_int_equal(ai_quota_settle(res, 100, 0), PLX_OK);
    assert_int_equal(counter(q, "reserved_tokens"), 100);
    assert_int_equal(counter(q, "used_tokens"), 100);
    assert_int_equal(ai_model_get("b-model", &m), PLX_OK);
    ai_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_quota, clean),
        cmocka_unit_test_setup(test_reserve_settle, clean),
        cmocka_unit_test_setup(test_team_and_month, clean),
        cmocka_unit_test_setup(test_cost_quota, clean),
        cmocka_unit_test_setup(test_sweep, clean),
        cmocka_unit_test_setup(test_race_one_quota, clean),
        cmocka_unit_test_setup(test_race_overlapping, clean),
        cmocka_unit_test_setup(test_usage_record, clean),
        cmocka_unit_test_setup(test_models, clean),
        cmocka_unit_test_setup(test_models_threads, clean),
        cmocka_unit_test_setup(test_database_away, clean),
    };

    plxt_require_postgres("test_ai_store");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
