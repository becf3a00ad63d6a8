/*
 * ai_client.c - what the ai module's integration tests share (see
 * ai_client.h): the fake provider, a plexusd with identity, metrics and
 * the ai module on a database of its own, an admin and a user, and calls
 * that fail the cmocka test on anything unexpected
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <libpq-fe.h>

#include "ai_client.h"
#include "pgtest.h"

#define CONF_MAX 16384

/* ---- the [ai] section ---------------------------------------------------------- */

typedef struct text {
    char   p[CONF_MAX];
    size_t len;
    bool   overflow;
} text_t;

__attribute__((format(printf, 2, 3)))
static void text_add(text_t *t, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (t->overflow)
        return;
    va_start(ap, fmt);
    n = vsnprintf(t->p + t->len, sizeof t->p - t->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof t->p - t->len)
        t->overflow = true;
    else
        t->len += (size_t)n;
}

/* Does the [ai] part of extra (the lines before any other section it
 * opens, or after it reopens [ai]) set key? Keys compare whole, blanks
 * trimmed: "max_retries" is not "max_retries_x". The value (up to the end
 * of its line) into value[len] when given. */
static bool extra_value(const char *extra, const char *key, char *value, size_t len)
{
    bool in_ai = true;
    size_t kl = strlen(key);

    for (const char *line = extra; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *p = line;
        while (p < line + n && (*p == ' ' || *p == '\t'))
            p++;
        if (*p == '[') {
            in_ai = strncmp(p, "[ai]", 4) == 0;
        } else if (in_ai && (size_t)(line + n - p) > kl && strncmp(p, key, kl) == 0) {
            const char *q = p + kl;
            while (*q == ' ' || *q == '\t')
                q++;
            if (*q == '=' || *q == ':') {
                if (value)
                    snprintf(value, len, "%.*s", (int)(line + n - q - 1), q + 1);
                return true;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

/* "key = value\n" unless extra sets the key itself */
static void ai_default(text_t *t, const char *extra, const char *key, const char *value)
{
    if (!extra || !extra_value(extra, key, NULL, 0))
        text_add(t, "%s = %s\n", key, value);
}

/* is name an item of a "a, b c" list? */
static bool listed(const char *list, const char *name)
{
    size_t n = strlen(name);

    for (const char *p = list; *p;) {
        p += strspn(p, ", \t");
        size_t item = strcspn(p, ", \t");
        if (item == n && strncmp(p, name, n) == 0)
            return true;
        p += item;
    }
    return false;
}

/* a provider's keys; none when extra lists providers without it */
static void provider_conf(text_t *t, const char *extra, const char *name,
                          const char *type, const char *url)
{
    char key[128], list[1024];

    if (extra && extra_value(extra, "providers", list, sizeof list) && !listed(list, name))
        return;

    snprintf(key, sizeof key, "provider.%s.type", name);
    ai_default(t, extra, key, type);
    snprintf(key, sizeof key, "provider.%s.base_url", name);
    ai_default(t, extra, key, url);
    snprintf(key, sizeof key, "provider.%s.api_key", name);
    ai_default(t, extra, key, AIT_KEY);
}

/* the ai module's plugins.d text: data_dir in [module], then [ai] */
static int ai_module_conf(const ait_env_t *e, const char *extra, bool providers,
                          text_t *t)
{
    const char *s = getenv("PLX_SRCDIR");
    char fake[64], url[128];

    plxt_llm_url(e->llm, fake, sizeof fake);
    /* lands in [module]: the migrations are in the source tree */
    text_add(t, "data_dir = %s/modules/ai\n\n[ai]\n", s ? s : "..");
    if (providers) {
        ai_default(t, extra, "providers", "fake, fake_anth, fake_gem");
        snprintf(url, sizeof url, "%s/v1", fake);
        provider_conf(t, extra, "fake", "openai", url);
        provider_conf(t, extra, "fake_anth", "anthropic", fake);
        snprintf(url, sizeof url, "%s/v1beta", fake);
        provider_conf(t, extra, "fake_gem", "gemini", url);
    }
    ai_default(t, extra, "connect_timeout_ms", "2000");
    ai_default(t, extra, "first_token_timeout_ms", "3000");
    ai_default(t, extra, "idle_timeout_ms", "1500");
    ai_default(t, extra, "retry_base_ms", "50");
    ai_default(t, extra, "retry_max_ms", "500");
    if (extra)
        text_add(t, "\n# from the test\n%s\n", extra);
    if (t->overflow) {
        fprintf(stderr, "# ai test: the [ai] section passed %d bytes\n", CONF_MAX);
        return -1;
    }
    return 0;
}

/* ---- start and stop ------------------------------------------------------------ */

#define EXTRA_MODULES_MAX 8

/* the server on a fresh database, the fake already running, with the
 * extra modules (ended by a NULL name; may be NULL) after ai; 0 or -1 */
/* the metrics module as built beside this one: NULL when the tree has
 * none (a module stands alone; its metrics are then not checked) */
static const char *metrics_so(void)
{
    static char path[1024];
    const char *b = getenv("PLX_BUILDDIR");

    snprintf(path, sizeof path, "%s/modules/metrics/.libs/metrics.so", b ? b : ".");
    return access(path, R_OK) == 0 ? path : NULL;
}

bool ait_have_metrics(void)
{
    return metrics_so() != NULL;
}

/* plexusd on e->db with metrics (when built), ai (ai_text) and the extra
 * modules */
static plxt_server_t *server_spawn(ait_env_t *e, const char *ai_text,
                                   const plxt_module_t *extra)
{
    const char *b = getenv("PLX_BUILDDIR"), *metrics_path = metrics_so();
    char ai_path[1024], cfg[4096];
    plxt_module_t mods[3 + EXTRA_MODULES_MAX] = { { 0 } };
    size_t n, k = 0;

    snprintf(ai_path, sizeof ai_path, "%s/modules/ai/.libs/ai.so", b ? b : ".");
    if (metrics_path)
        mods[k++] = (plxt_module_t){ .name = "metrics", .path = metrics_path,
                                     .config = "[metrics]\nallow = 127.0.0.1\n" };
    mods[k++] = (plxt_module_t){ .name = "ai", .path = ai_path, .config = ai_text };
    for (size_t i = 0; extra && extra[i].name; i++) {
        if (i == EXTRA_MODULES_MAX) {
            fprintf(stderr, "# ai test: more than %d extra modules\n", EXTRA_MODULES_MAX);
            return NULL;
        }
        mods[k++] = extra[i];
    }
    plxt_identity_config(cfg, sizeof cfg, 0);
    n = strlen(cfg);
    snprintf(cfg + n, sizeof cfg - n, "[server]\nthreads = 256\n"
             "[ratelimit]\ndefault = 1000000/60s\nauth = 100000/60s\nai = 1000000/60s\n");
    plxt_server_opts_t o = { .db_url = e->db, .modules = mods, .config = cfg };
    return plxt_server_start(&o);
}

static int server_start(ait_env_t *e, const char *ai_text,
                        const plxt_module_t *extra)
{
    if (!(e->db = pgtest_db_create(e->dbname)))
        return -1;
    e->srv = server_spawn(e, ai_text, extra);
    if (!e->srv) {
        pgtest_db_drop(e->dbname);
        free(e->db);
        e->db = NULL;
        return -1;
    }
    return 0;
}

static int start(ait_env_t *e, const char *ai_conf, bool providers,
                 const plxt_module_t *extra)
{
    text_t *ai_text = calloc(1, sizeof *ai_text);   /* 16 KiB: off the stack */
    int rc = -1;

    memset(e, 0, sizeof *e);
    if (ai_text && (e->llm = plxt_llm_start(AIT_KEY))
        && ai_module_conf(e, ai_conf, providers, ai_text) == 0
        && (e->ai_text = strdup(ai_text->p)))
        rc = server_start(e, e->ai_text, extra);
    free(ai_text);
    if (rc != 0) {
        plxt_llm_stop(e->llm);
        e->llm = NULL;
        free(e->ai_text);
        e->ai_text = NULL;
        return -1;
    }
    plxt_user_new(e->srv, e->db, &e->admin);
    plxt_user_make_admin(e->db, &e->admin);
    plxt_user_login(e->srv, &e->admin);
    plxt_user_new(e->srv, e->db, &e->user);
    return 0;
}

int ait_start(ait_env_t *e, const char *ai_conf)
{
    return start(e, ai_conf, true, NULL);
}

int ait_start_with(ait_env_t *e, const char *ai_conf, const plxt_module_t *extra)
{
    return start(e, ai_conf, true, extra);
}

int ait_start_bare(ait_env_t *e)
{
    return start(e, NULL, false, NULL);
}

plxt_server_t *ait_server_again(ait_env_t *e)
{
    return e->db && e->ai_text ? server_spawn(e, e->ai_text, NULL) : NULL;
}

int ait_stop(ait_env_t *e)
{
    /* the server first: its calls in flight end on its side, not as
     * connections the fake cut */
    int rc = plxt_server_stop(e->srv);

    e->srv = NULL;
    if (e->db) {
        pgtest_db_drop(e->dbname);
        free(e->db);
        e->db = NULL;
    }
    plxt_llm_stop(e->llm);
    e->llm = NULL;
    free(e->ai_text);
    e->ai_text = NULL;
    return rc == 0 ? 0 : -1;
}

/* ---- calls --------------------------------------------------------------------- */

void ait_call(ait_env_t *e, const char *method, const char *path,
              const char *token, const char *body, plxt_resp_t *resp)
{
    char url[4096], auth[4200];
    const char *headers[3];
    size_t n = 0;

    snprintf(url, sizeof url, "%s%s", e->srv->url, path);
    if (token)
        headers[n++] = plxt_bearer(token, auth, sizeof auth);
    if (body)
        headers[n++] = "Content-Type: application/json";
    headers[n] = NULL;
    if (plxt_http(method, url, headers, body, resp) != 0)
        fail_msg("%s %s: no response: %s", method, path, resp->error);
}

json_t *ait_expect(ait_env_t *e, const char *method, const char *path,
                   const char *token, const char *body, long status)
{
    plxt_resp_t resp;
    json_t *j;

    ait_call(e, method, path, token, body, &resp);
    if (resp.status != status)
        fail_msg("%s %s: expected %ld, found %ld: %.500s", method, path, status,
                 resp.status, resp.body ? resp.body : "");
    j = resp.body_len ? plxt_resp_json(&resp) : NULL;
    if (resp.body_len && !j)
        fail_msg("%s %s: expected JSON, found \"%.200s\"", method, path, resp.body);
    plxt_resp_free(&resp);
    return j;
}

void ait_expect_problem(ait_env_t *e, const char *method, const char *path,
                        const char *token, const char *body, long status,
                        const char *code)
{
    plxt_resp_t resp;
    json_t *j;
    const char *found;

    ait_call(e, method, path, token, body, &resp);
    if (resp.status != status || !plxt_resp_type_is(&resp, "application/problem+json"))
        fail_msg("%s %s: expected a %ld problem, found %ld %s: %.500s", method, path,
                 status, resp.status, plxt_resp_header(&resp, "Content-Type"),
                 resp.body ? resp.body : "");
    j = plxt_resp_json(&resp);
    found = json_string_value(json_object_get(j, "code"));
    if (!found)
        fail_msg("%s %s: a problem without a code: %.300s", method, path, resp.body);
    if (strcmp(found, code) != 0)
        fail_msg("%s %s: expected code \"%s\", found \"%s\" (%.300s)", method, path, code,
                 found, resp.body);
    if (json_integer_value(json_object_get(j, "status")) != status)
        fail_msg("%s %s: the problem's status is not %ld: %.300s", method, path, status,
                 resp.body);
    json_decref(j);
    plxt_resp_free(&resp);
}

plxt_stream_t *ait_stream(ait_env_t *e, const char *path, const char *token,
                          const char *body)
{
    char auth[4200];
    const char *headers[4];
    const char *type;
    size_t n = 0;
    plxt_stream_t *st;

    if (token)
        headers[n++] = plxt_bearer(token, auth, sizeof auth);
    headers[n++] = "Content-Type: application/json";
    headers[n++] = "Accept: text/event-stream";
    headers[n] = NULL;
    st = plxt_stream_request(e->srv->url, "POST", path, headers, body, 10000);
    if (!st)
        fail_msg("POST %s: no stream", path);
    type = plxt_stream_header(st, "Content-Type");
    if (plxt_stream_status(st) != 200 || !type
        || strncmp(type, "text/event-stream", 17) != 0) {
        char buf[600];
        long got = plxt_stream_read(st, buf, sizeof buf - 1, 2000);
        buf[got > 0 ? got : 0] = '\0';
        int status = plxt_stream_status(st);
        plxt_stream_close(st);
        fail_msg("POST %s: expected a 200 event stream, found %d %s: %s", path, status,
                 type ? type : "(no type)", buf);
    }
    return st;
}

/* ---- fixtures ------------------------------------------------------------------- */

static const char *str_of(json_t *j, const char *key, const char *what)
{
    const char *v = json_string_value(json_object_get(j, key));

    if (!v)
        fail_msg("%s: expected a string \"%s\" in the answer", what, key);
    return v;
}

static void model_post(ait_env_t *e, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_t *j;

    assert_non_null(text);
    j = ait_expect(e, "POST", "/api/v1/admin/ai/models", e->admin.access, text, 201);
    str_of(j, "id", "POST /api/v1/admin/ai/models");
    json_decref(j);
    free(text);
    json_decref(body);
}

void ait_model(ait_env_t *e, const char *name, const char *provider,
               const char *upstream, double price_in, double price_out,
               const char *fallbacks)
{
    json_t *body = json_pack("{s:s, s:s, s:s, s:f, s:f}", "name", name, "provider",
                             provider, "upstream", upstream, "price_input", price_in,
                             "price_output", price_out);

    assert_non_null(body);
    if (fallbacks) {
        json_t *fb = json_loads(fallbacks, 0, NULL);
        if (!json_is_array(fb))
            fail_msg("ait_model: fallbacks \"%s\" is not a JSON array", fallbacks);
        json_object_set_new(body, "fallbacks", fb);
    }
    model_post(e, body);
}

void ait_embedding_model(ait_env_t *e, const char *name, const char *provider,
                         const char *upstream, double price_in)
{
    json_t *body = json_pack("{s:s, s:s, s:s, s:s, s:f}", "name", name, "kind",
                             "embedding", "provider", provider, "upstream", upstream,
                             "price_input", price_in);

    assert_non_null(body);
    model_post(e, body);
}

void ait_team_new(ait_env_t *e, plxt_user_t *u, char id[37])
{
    json_t *j = ait_expect(e, "POST", "/api/v1/teams", u->access,
                           "{\"name\":\"an ai team\"}", 201);

    snprintf(id, 37, "%s", str_of(j, "id", "POST /api/v1/teams"));
    json_decref(j);
}

void ait_api_key(ait_env_t *e, plxt_user_t *u, const char *scopes,
                 char *key_out, size_t len)
{
    char body[1024];
    json_t *j;
    const char *key;

    snprintf(body, sizeof body, "{\"name\":\"ai test key\",\"scopes\":%s}",
             scopes ? scopes : "[]");
    j = ait_expect(e, "POST", "/api/v1/api-keys", u->access, body, 201);
    key = str_of(j, "key", "POST /api/v1/api-keys");
    if (strlen(key) >= len)
        fail_msg("ait_api_key: a key of %zu bytes does not fit in %zu", strlen(key), len);
    snprintf(key_out, len, "%s", key);
    json_decref(j);
}

char *ait_sql(ait_env_t *e, const char *sql)
{
    PGconn *c = PQconnectdb(e->db);
    PGresult *res;
    char *out = NULL;

    if (PQstatus(c) != CONNECTION_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", PQerrorMessage(c));
        PQfinish(c);
        fail_msg("ait_sql: cannot connect: %s", why);
    }
    res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1
        || PQnfields(res) < 1) {
        char why[512];
        snprintf(why, sizeof why, "%s (%d rows)", PQresultErrorMessage(res),
                 PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res) : -1);
        PQclear(res);
        PQfinish(c);
        fail_msg("ait_sql: \"%s\": expected one value: %s", sql, why);
    }
    if (!PQgetisnull(res, 0, 0)) {
        out = strdup(PQgetvalue(res, 0, 0));
        assert_non_null(out);
    }
    PQclear(res);
    PQfinish(c);
    return out;
}
