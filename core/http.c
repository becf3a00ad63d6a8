/*
 * http.c - the HTTP server: CivetWeb start and stop, and the dispatch of
 * every request through the route table
 *
 * One CivetWeb request handler ("**", which 1.15 matches against every
 * path) takes every request; the route table (router.c) decides. Around
 * the route's handler: the request id, CORS, the request.begin hooks, the
 * route's authentication, the answer for a handler that returned an error
 * without answering, the request.end hooks and the access-log line.
 *
 * CivetWeb runs a keep-alive connection on one worker thread until it
 * closes, so server.threads must exceed the connections expected; short
 * request and keep-alive timeouts keep idle clients from holding them all.
 */
#include "config.h"
#include "http_internal.h"
#include "loader.h"
#include "registry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define HTTP_WS_TIMEOUT_MS "30000"   /* idle WebSocket: ping, then drop a dead peer */
#define HTTP_LISTEN_BACKLOG "1024"
/* mg_stop after the grace period: joining a thousand idle workers takes
 * seconds under a sanitizer; grace + this stays under systemd's stop timeout */
#define HTTP_ENGINE_STOP_MS 15000

http_settings_t http_settings = {
    .max_body = 1048576,
    .max_json_depth = 32,
    .max_json_elements = 20000,
    .access_log = true,
    .sse_heartbeat_ms = 15000,
};

static core_router_t *router;
static struct mg_context *http_ctx;
static atomic_bool stopping;
static atomic_int inflight;

/* ---- registry of streams and sockets ------------------------------------- */

void http_reg_add(http_reg_t *reg, http_reg_node_t *n)
{
    pthread_mutex_lock(&reg->mu);
    n->prev = NULL;
    n->next = reg->head;
    n->refs = 0;
    if (reg->head)
        reg->head->prev = n;
    reg->head = n;
    reg->count++;
    pthread_mutex_unlock(&reg->mu);
}

void http_reg_remove(http_reg_t *reg, http_reg_node_t *n)
{
    pthread_mutex_lock(&reg->mu);
    if (n->prev)
        n->prev->next = n->next;
    else
        reg->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    reg->count--;
    while (n->refs > 0)
        pthread_cond_wait(&reg->cv, &reg->mu);
    pthread_mutex_unlock(&reg->mu);
}

size_t http_reg_pin_all(http_reg_t *reg, http_reg_node_t ***out)
{
    size_t n = 0;

    *out = NULL;
    pthread_mutex_lock(&reg->mu);
    if (reg->count > 0)
        *out = malloc(reg->count * sizeof(**out));
    for (http_reg_node_t *p = reg->head; *out && p; p = p->next) {
        p->refs++;
        (*out)[n++] = p;
    }
    pthread_mutex_unlock(&reg->mu);
    return n;
}

void http_reg_unpin(http_reg_t *reg, http_reg_node_t **nodes, size_t n)
{
    pthread_mutex_lock(&reg->mu);
    for (size_t i = 0; i < n; i++)
        nodes[i]->refs--;
    pthread_cond_broadcast(&reg->cv);
    pthread_mutex_unlock(&reg->mu);
    free(nodes);
}

size_t http_reg_count(http_reg_t *reg)
{
    size_t n;

    pthread_mutex_lock(&reg->mu);
    n = reg->count;
    pthread_mutex_unlock(&reg->mu);
    return n;
}

/* ---- registering routes ---------------------------------------------------- */

static const char *module_name(const plx_module_t *m)
{
    return m && m->name ? m->name : "core";
}

static plx_status_t route_register(plx_module_t *m, const char *method,
                                   const char *pattern, plx_handler_fn fn,
                                   const plx_ws_handlers_t *ws, void *arg,
                                   const plx_route_opts_t *opts)
{
    plx_route_opts_t o = { .size = sizeof(o), .auth = PLX_AUTH_PUBLIC };
    const core_route_t *existing = NULL;
    const char *mth = method ? method : "(null)", *pat = pattern ? pattern : "(null)";
    core_route_t rt;
    plx_status_t st;

    if (opts)   /* a module built against an older header passes a shorter struct */
        memcpy(&o, opts, opts->size < sizeof(o) ? opts->size : sizeof(o));
    if (http_ctx) {
        LOG_ERROR("route \"%s %s\" of module \"%s\" refused: routes are added "
                  "during init, before the server starts", mth, pat, module_name(m));
        return PLX_ERR_INVALID;
    }
    if (!router && !(router = core_router_new()))
        return PLX_ERR_NOMEM;
    rt = (core_route_t){
        .method = (char *)method, .pattern = (char *)pattern, .owner = m,
        .fn = fn, .ws = ws, .arg = arg, .auth = o.auth, .scope = (char *)o.scope,
        .rate_class = (char *)o.rate_class, .summary = (char *)o.summary,
        .tag = (char *)o.tag,
    };
    if (o.auth == PLX_AUTH_SCOPE && (!o.scope || !*o.scope)) {
        LOG_ERROR("route \"%s %s\" of module \"%s\" refused: expected a scope with "
                  "PLX_AUTH_SCOPE, found none", mth, pat, module_name(m));
        return PLX_ERR_INVALID;
    }
    st = core_router_add(router, &rt, &existing);
    if (st == PLX_ERR_CONFLICT)
        LOG_ERROR("route \"%s %s\" of module \"%s\" conflicts with \"%s %s\" of "
                  "module \"%s\"", mth, pat, module_name(m),
                  existing->method, existing->pattern, module_name(existing->owner));
    else if (st == PLX_ERR_INVALID)
        LOG_ERROR("route \"%s %s\" of module \"%s\" refused: expected an upper-case "
                  "method and a pattern of '/'-separated literal or {name} segments "
                  "with at most %d parameters", mth, pat, module_name(m),
                  CORE_ROUTE_MAX_PARAMS);
    return st;
}

plx_status_t core_route_add(plx_module_t *m, const char *method,
                            const char *pattern, plx_handler_fn fn, void *arg,
                            const plx_route_opts_t *opts)
{
    if (!fn || (method && strcmp(method, "WS") == 0)) {
        LOG_ERROR("route \"%s %s\" of module \"%s\" refused: expected a handler "
                  "and an HTTP method", method ? method : "(null)",
                  pattern ? pattern : "(null)", module_name(m));
        return PLX_ERR_INVALID;
    }
    return route_register(m, method, pattern, fn, NULL, arg, opts);
}

plx_status_t core_ws_route_add(plx_module_t *m, const char *pattern,
                               const plx_ws_handlers_t *h, void *arg,
                               const plx_route_opts_t *opts)
{
    if (!h || h->size < offsetof(plx_ws_handlers_t, connect) + sizeof(h->connect)) {
        LOG_ERROR("WebSocket route \"%s\" of module \"%s\" refused: expected handlers",
                  pattern ? pattern : "(null)", module_name(m));
        return PLX_ERR_INVALID;
    }
    return route_register(m, "WS", pattern, NULL, h, arg, opts);
}

plx_status_t core_routes_add(plx_module_t *m, const plx_route_def_t *defs,
                             size_t n, size_t elem_size, void *arg)
{
    /* a table built against an older header has shorter rows: the fields
     * past elem_size keep their zero defaults */
    if (!defs || n == 0 || elem_size < offsetof(plx_route_def_t, fn) + sizeof(defs->fn)) {
        LOG_ERROR("route table of module \"%s\" refused: expected rows of at "
                  "least method, pattern and handler", module_name(m));
        return PLX_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        plx_route_def_t d = { 0 };
        plx_status_t st;

        memcpy(&d, (const char *)defs + i * elem_size,
               elem_size < sizeof(d) ? elem_size : sizeof(d));
        st = core_route_add(m, d.method, d.pattern, d.fn, arg,
                            &(plx_route_opts_t){
                                .size = sizeof(plx_route_opts_t),
                                .auth = d.auth, .scope = d.scope,
                                .rate_class = d.rate_class,
                                .summary = d.summary, .tag = d.tag });
        if (st != PLX_OK) {
            LOG_ERROR("route table of module \"%s\": row %zu (\"%s %s\") was "
                      "not registered", module_name(m), i,
                      d.method ? d.method : "(null)",
                      d.pattern ? d.pattern : "(null)");
            return st;
        }
    }
    return PLX_OK;
}

const core_router_t *core_routes(void)
{
    return router;
}

static const char *const auth_names[] = {
    [PLX_AUTH_PUBLIC] = "public", [PLX_AUTH_USER] = "user",
    [PLX_AUTH_ADMIN] = "admin", [PLX_AUTH_SCOPE] = "scope",
};

bool core_routes_dump(FILE *out)
{
    json_t *all = json_array();
    size_t n = router ? core_router_count(router) : 0;
    bool ok;

    if (!all)
        return false;
    for (size_t i = 0; i < n; i++) {
        const core_route_t *rt = core_router_at(router, i);
        unsigned a = (unsigned)rt->auth;

        json_array_append_new(all, json_pack(
            "{s:s, s:s, s:s, s:s, s:s?, s:s, s:s?}",
            "method", rt->method, "pattern", rt->pattern,
            "module", module_name(rt->owner),
            "auth", a < CORE_ARRAY_LEN(auth_names) ? auth_names[a] : "unknown",
            "scope", rt->scope && *rt->scope ? rt->scope : NULL,
            "rate_class", rt->rate_class ? rt->rate_class : "default",
            "summary", rt->summary));
    }
    ok = json_dumpf(all, out, JSON_INDENT(2)) == 0 && fputc('\n', out) != EOF;
    json_decref(all);
    return ok;
}

void core_routes_free(void)
{
    if (http_ctx) {
        LOG_ERROR("routes not freed: the server is still running");
        return;
    }
    core_router_free(router);
    router = NULL;
}

bool core_http_stopping(void)
{
    return atomic_load(&stopping);
}

size_t core_http_in_flight(void)
{
    int n = atomic_load(&inflight);

    return n > 0 ? (size_t)n : 0;
}

/* ---- CORS ------------------------------------------------------------------ */

static bool origin_listed(const char *origin)
{
    const char *p = http_settings.cors_origins;
    size_t olen;

    if (!p || !origin || !*origin)
        return false;
    olen = strlen(origin);
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *s = p;

        while (len && (*s == ' ' || *s == '\t')) {
            s++;
            len--;
        }
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        if (len == olen && memcmp(s, origin, len) == 0)
            return true;
        if (!end)
            break;
        p = end + 1;
    }
    return false;
}

/* what a preflight may ask for: header names, commas and spaces */
static bool request_headers_ok(const char *s)
{
    size_t len = 0;

    for (; s[len]; len++) {
        char c = s[len];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                  || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == ','
                  || c == ' ';
        if (!ok || len >= 512)
            return false;
    }
    return true;
}

/* OPTIONS with Access-Control-Request-Method from an allowed origin */
static bool answer_preflight(plx_request_t *r)
{
    const char *want = core_request_header(r, "Access-Control-Request-Headers");
    core_route_match_t m;
    http_header_t h[3];

    if (!r->origin || strcmp(r->method, "OPTIONS") != 0
        || !core_request_header(r, "Access-Control-Request-Method"))
        return false;
    core_router_match(router, "OPTIONS", r->path, &m);
    if (!m.route && !m.path_known)
        return false;   /* unknown path: the ordinary 404 */
    h[0] = (http_header_t){ "Access-Control-Allow-Methods",
                            m.route ? m.route->method : m.allow };
    h[1] = (http_header_t){ "Access-Control-Allow-Headers",
                            want && request_headers_ok(want) ? want
                            : "Authorization, Content-Type, X-Request-ID" };
    h[2] = (http_header_t){ "Access-Control-Max-Age", "600" };
    http_send_head(r, 204, NULL, 0, h, 3);
    core_route_match_clear(&m);
    return true;
}

/* ---- the steps of a request -------------------------------------------------- */

static void route_match(plx_request_t *r, const char *method)
{
    core_router_match(router, method, r->path, &r->match);
    if (!r->match.route && r->head) {
        /* HEAD is GET without the body */
        core_route_match_clear(&r->match);
        core_router_match(router, "GET", r->path, &r->match);
    }
}

static bool run_begin_hooks(plx_request_t *r)
{
    plx_status_t st = core_hook_run(PLX_HOOK_REQUEST_BEGIN, r, NULL);

    if (r->replied)
        return false;
    if (st != PLX_OK && st != PLX_DECLINED) {
        http_reply_status(r, st);
        return false;
    }
    return true;
}

static void answer_no_route(plx_request_t *r, const char *method)
{
    char detail[HTTP_MAX_DETAIL];
    http_header_t h;

    if (!r->match.path_known) {
        snprintf(detail, sizeof detail, "no route for \"%s %.256s\"", r->method, r->path);
        http_reply_problem(r, 404, "not_found", NULL, 0, detail);
    } else if (r->match.allow[0]) {
        snprintf(detail, sizeof detail, "expected one of %s for \"%.256s\", found %s",
                 r->match.allow, r->path, strcmp(method, "WS") == 0 ? "a WebSocket upgrade"
                                                                    : r->method);
        h = (http_header_t){ "Allow", r->match.allow };
        http_reply_problem(r, 405, "method_not_allowed", &h, 1, detail);
    } else {
        snprintf(detail, sizeof detail, "expected a WebSocket upgrade for \"%.256s\"",
                 r->path);
        h = (http_header_t){ "Upgrade", "websocket" };
        http_reply_problem(r, 426, "upgrade_required", &h, 1, detail);
    }
}

static bool auth_allows(plx_request_t *r, const core_route_t *rt)
{
    char detail[HTTP_MAX_DETAIL];

    if (rt->auth == PLX_AUTH_PUBLIC)
        return true;
    if (!r->has_principal) {
        http_reply_problem(r, 401, "unauthenticated", NULL, 0,
                           "this route requires authentication");
        return false;
    }
    if (rt->auth == PLX_AUTH_ADMIN && !r->principal.admin) {
        http_reply_problem(r, 403, "forbidden", NULL, 0, "this route requires the admin role");
        return false;
    }
    /* An API key does only what its scopes say. A route open to keys names
     * the scope it needs; one that names none is closed to them. An admin
     * route is open to a key that made its holder admin, which takes the
     * scope "admin" (apikeys.c). */
    if (r->principal.api_key && rt->auth != PLX_AUTH_ADMIN
        && (!rt->scope || !*rt->scope)) {
        http_reply_problem(r, 403, "api_key_forbidden", NULL, 0,
                           "this route needs a signed-in user, not an API key");
        return false;
    }
    if (rt->scope && *rt->scope && !core_request_has_scope(r, rt->scope)) {
        snprintf(detail, sizeof detail, "this route requires the scope \"%.128s\"", rt->scope);
        http_reply_problem(r, 403, "forbidden", NULL, 0, detail);
        return false;
    }
    return true;
}

/* ---- request framing ---------------------------------------------------------- */

/* A request whose length a proxy in front of us could read differently
 * (RFC 9112 section 6.3: both Content-Length and Transfer-Encoding, two
 * lengths, a length that is not one decimal number) would let the bytes
 * after it be taken as a second request. It is refused and the connection
 * closed, before any handler or hook sees it. CivetWeb keeps at most
 * MG_MAX_HEADERS fields and drops the rest without a word, so a full table
 * is treated as too many: what was dropped might have been Content-Length
 * or Authorization. */
static bool length_ok(const char *v)
{
    size_t n = 0;

    for (; v[n]; n++) {
        if (v[n] < '0' || v[n] > '9')
            return false;
    }
    return n > 0 && n <= 18;
}

static bool framing_ok(plx_request_t *r)
{
    const struct mg_request_info *ri = r->ri;
    const char *cl = NULL, *te = NULL, *why = NULL;
    int ncl = 0, nte = 0, nhost = 0, status = 400;
    const char *code = "invalid_framing";

    if (!ri)
        return true;
    if (ri->num_headers >= MG_MAX_HEADERS) {
        status = 431;
        code = "headers_too_large";
        why = "more header fields than the server keeps";
    }
    for (int i = 0; !why && i < ri->num_headers; i++) {
        const char *name = ri->http_headers[i].name, *value = ri->http_headers[i].value;

        if (!name || !value)
            continue;
        if (strcasecmp(name, "Content-Length") == 0) {
            ncl++;
            cl = value;
        } else if (strcasecmp(name, "Transfer-Encoding") == 0) {
            nte++;
            te = value;
        } else if (strcasecmp(name, "Host") == 0) {
            nhost++;
        }
    }
    if (why)
        ;
    else if (ncl > 0 && nte > 0)
        why = "both Content-Length and Transfer-Encoding";
    else if (ncl > 1)
        why = "more than one Content-Length";
    else if (cl && !length_ok(cl))
        why = "Content-Length is not one decimal number";
    else if (nte > 1 || (te && strcasecmp(te, "chunked") != 0)) {
        status = 501;
        code = "not_implemented";
        why = "a transfer coding other than chunked";
    } else if (te && ri->http_version && strcmp(ri->http_version, "1.0") == 0)
        why = "Transfer-Encoding is not allowed in HTTP/1.0";
    else if (nhost > 1)
        why = "more than one Host";
    else if (nhost == 0 && ri->http_version && strcmp(ri->http_version, "1.1") == 0)
        why = "Host is required in HTTP/1.1";
    if (!why)
        return true;
    r->no_keep_alive = true;
    http_reply_problem(r, status, code, NULL, 0, why);
    return false;
}

/* A browser sends Origin with every WebSocket handshake and no CORS
 * preflight guards it, so a page on another site could open a socket with
 * the user's cookies. Accept what CORS lists, and a page of this very host
 * (the Origin's host and port are the request's Host); a client that is
 * not a browser sends no Origin. */
static bool ws_origin_allowed(plx_request_t *r, const char *origin)
{
    const char *host = core_request_header(r, "Host"), *rest;

    if (!origin || !*origin || origin_listed(origin))
        return true;
    if (strncmp(origin, "https://", 8) == 0)
        rest = origin + 8;
    else if (strncmp(origin, "http://", 7) == 0)
        rest = origin + 7;
    else
        return false;
    return host && *host && strcasecmp(rest, host) == 0;
}

bool http_request_prepare(plx_request_t *r, const char *match_method)
{
    const char *origin = core_request_header(r, "Origin");

    if (!framing_ok(r))
        return false;
    if (strcmp(match_method, "WS") == 0 && !ws_origin_allowed(r, origin)) {
        char detail[HTTP_MAX_DETAIL];

        snprintf(detail, sizeof detail, "WebSocket connections from the origin "
                 "\"%.200s\" are not allowed", origin);
        http_reply_problem(r, 403, "origin_not_allowed", NULL, 0, detail);
        return false;
    }

    if (origin_listed(origin))
        r->origin = core_pstrdup(r, origin);
    if (atomic_load(&stopping)) {
        r->no_keep_alive = true;
        http_reply_problem(r, 503, "unavailable", NULL, 0, "the server is shutting down");
        return false;
    }
    if (answer_preflight(r))
        return false;
    route_match(r, match_method);
    if (!run_begin_hooks(r))
        return false;
    if (!r->match.route) {
        answer_no_route(r, match_method);
        return false;
    }
    return auth_allows(r, r->match.route);
}

static void run_handler(plx_request_t *r)
{
    const core_route_t *rt = r->match.route;
    plx_status_t st = rt->fn(r, rt->arg);

    if (r->replied)
        return;
    if (st == PLX_OK) {
        core_log(PLX_LOG_ERROR, "core", r->id, "handler of \"%s %s\" (module \"%s\") "
                 "returned without answering", rt->method, rt->pattern,
                 module_name(rt->owner));
        http_reply_problem(r, 500, "internal", NULL, 0, "the handler did not answer");
        return;
    }
    http_reply_status(r, st);
}

static void access_log(plx_request_t *r, const plx_request_end_t *end)
{
    char ts[32];
    json_t *o = json_object();

    if (!o)
        return;
    core_time_rfc3339(ts);
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string("info"));
    json_object_set_new(o, "msg", json_string("request"));
    json_object_set_new(o, "request_id", json_string(r->id));
    json_object_set_new(o, "method", http_json_text(r->method));
    json_object_set_new(o, "path", http_json_text(r->path));
    json_object_set_new(o, "route", end->route ? json_string(end->route) : json_null());
    json_object_set_new(o, "status", json_integer(end->status));
    json_object_set_new(o, "bytes", json_integer((json_int_t)end->bytes_sent));
    json_object_set_new(o, "duration_ms", json_real((double)(long long)(end->seconds * 1e6) / 1e3));
    json_object_set_new(o, "remote", json_string(r->remote));
    core_log_json(o);
}

void http_request_finish(plx_request_t *r)
{
    plx_request_end_t end = {
        .size = sizeof(end),
        .status = r->status,
        .seconds = core_now() - r->t_start,
        .method = r->method,
        .route = r->match.route ? r->match.route->pattern : NULL,
        .bytes_sent = r->bytes_sent,
    };

    core_hook_run(PLX_HOOK_REQUEST_END, r, &end);
    if (http_settings.access_log)
        access_log(r, &end);
}

static int http_dispatch(struct mg_connection *conn, void *cbdata)
{
    plx_request_t *r;
    int status;

    (void)cbdata;
    atomic_fetch_add(&inflight, 1);
    r = http_request_new(conn);
    if (!r) {
        mg_send_http_error(conn, 503, "%s", "out of memory");
        atomic_fetch_sub(&inflight, 1);
        return 503;
    }
    if (http_request_prepare(r, r->method))
        run_handler(r);
    if (r->sse)
        http_sse_end(r->sse);   /* begun by the handler or a hook */
    if (!r->replied)
        http_reply_problem(r, 500, "internal", NULL, 0, "internal error");
    http_request_finish(r);
    status = r->status;
    http_request_free(r);
    atomic_fetch_sub(&inflight, 1);
    return status > 0 && status < 1000 ? status : 500;
}

/* ---- CivetWeb's own errors and log ------------------------------------------- */

/* Errors CivetWeb answers itself (a malformed request, a header block too
 * large) still get problem+json and a request id. */
static int http_error_cb(struct mg_connection *conn, int status, const char *msg)
{
    plx_request_t *r = http_request_new(conn);
    char detail[HTTP_MAX_DETAIL];

    if (!r)
        return 1;
    snprintf(detail, sizeof detail, "%s", msg && *msg ? msg : "");
    for (char *p = detail; *p; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    r->no_keep_alive = true;
    http_reply_problem(r, status, NULL, NULL, 0, detail);
    http_request_free(r);
    return 0;
}

static int http_log_cb(const struct mg_connection *conn, const char *msg)
{
    (void)conn;
    LOG_WARN("civetweb: %s", msg);
    return 1;
}

/* ---- start and stop -------------------------------------------------------- */

static void settings_load(core_config_t *cfg)
{
    const char *cors = core_config_get(cfg, "server", "cors_origins");
    const char *cert = core_config_get(cfg, "server", "tls_certificate");
    const char *public_url = core_config_get(cfg, "server", "public_url");
    long max_body = core_config_int(cfg, "server", "max_body");
    long depth = core_config_int(cfg, "server", "max_json_depth");
    long elements = core_config_int(cfg, "server", "max_json_elements");
    long hb = core_config_ms(cfg, "server", "sse_heartbeat");

    http_settings.max_body = max_body > 0 ? (size_t)max_body : 1048576;
    http_settings.max_json_depth = depth > 0 && depth <= 1000 ? (int)depth : 32;
    http_settings.max_json_elements = elements > 0 ? elements : 20000;
    http_settings.access_log = core_config_bool(cfg, "server", "access_log");
    http_settings.tls = cert && *cert;
    http_settings.sse_heartbeat_ms = hb > 0 ? hb : 15000;
    free(http_settings.cors_origins);
    http_settings.cors_origins = cors && *cors ? strdup(cors) : NULL;
    free(http_settings.problem_base);
    http_settings.problem_base = NULL;
    if (public_url && *public_url) {
        size_t n = strlen(public_url);
        while (n > 0 && public_url[n - 1] == '/')
            n--;
        http_settings.problem_base = malloc(n + sizeof "/problems/");
        if (http_settings.problem_base)
            snprintf(http_settings.problem_base, n + sizeof "/problems/",
                     "%.*s/problems/", (int)n, public_url);
    }
}

/* CivetWeb marks a TLS port with a trailing 's': add it to every port */
static char *listen_ports(const char *listen, bool tls)
{
    size_t len = strlen(listen), o = 0;
    char *out = malloc(len * 2 + 2);

    if (!out)
        return NULL;
    for (size_t i = 0; i <= len; i++) {
        bool item_end = listen[i] == ',' || listen[i] == '\0';
        if (item_end && tls && o > 0 && out[o - 1] != 's' && out[o - 1] != ',')
            out[o++] = 's';
        out[o++] = listen[i];
    }
    return out;
}

static long setting_ms(core_config_t *cfg, const char *key, long dflt)
{
    long v = core_config_ms(cfg, "server", key);
    return v > 0 ? v : dflt;
}

/* NB: Debian 12's libcivetweb 1.15 loads OpenSSL at run time and looks for
 * SSL_get_peer_certificate, which OpenSSL 3 no longer exports. TLS then
 * fails to initialise, but mg_start still opens the TLS port and the first
 * TLS connection calls a NULL function. Refuse to start instead. */
static bool engine_init(void)
{
    unsigned want = MG_FEATURES_WEBSOCKET | (http_settings.tls ? MG_FEATURES_TLS : 0);
    unsigned got = mg_init_library(want);

    if ((got & want) == want)
        return true;
    if (http_settings.tls && !(got & MG_FEATURES_TLS))
        LOG_ERROR("server.tls_certificate is set but CivetWeb could not initialise "
                  "TLS (its OpenSSL loader expects OpenSSL 1.1 symbols); terminate "
                  "TLS at a proxy and leave tls_certificate empty");
    else
        LOG_ERROR("CivetWeb has no WebSocket support: expected a build with it");
    mg_exit_library();
    return false;
}

/* request.begin stops at the first hook that answered (an auth refusal,
 * a rate limit): later hooks must not add to a response already sent */
static bool request_answered(plx_request_t *r)
{
    return r->replied;
}

bool core_http_start(core_config_t *cfg)
{
    const char *listen = core_config_get(cfg, "server", "listen");
    const char *cert = core_config_get(cfg, "server", "tls_certificate");
    long threads = core_config_int(cfg, "server", "threads");
    char n_threads[24], req_ms[24], ka_ms[24], err[256] = "";
    struct mg_callbacks cb = { .http_error = http_error_cb, .log_message = http_log_cb };
    struct mg_error_data ed = { .text = err, .text_buffer_size = sizeof err };
    char *ports;

    if (http_ctx)
        return true;
    core_hooks_set_answered_check(request_answered);
    atomic_store(&stopping, false);
    settings_load(cfg);
    ports = listen_ports(listen && *listen ? listen : "127.0.0.1:8080", http_settings.tls);
    if (!ports)
        return false;
    snprintf(n_threads, sizeof n_threads, "%ld", threads > 0 ? threads : 1100);
    snprintf(req_ms, sizeof req_ms, "%ld", setting_ms(cfg, "request_timeout", 10000));
    snprintf(ka_ms, sizeof ka_ms, "%ld", setting_ms(cfg, "keep_alive_timeout", 5000));
    const char *opts[] = {
        "listening_ports", ports,
        "num_threads", n_threads,
        "request_timeout_ms", req_ms,
        "keep_alive_timeout_ms", ka_ms,
        "enable_keep_alive", "yes",
        "listen_backlog", HTTP_LISTEN_BACKLOG,
        "tcp_nodelay", "1",
        /* paths reach the router still encoded, so "%2F" stays inside a parameter */
        "decode_url", "no",
        /* CORS is ours: CivetWeb would answer every preflight with '*' */
        "access_control_allow_origin", "",
        "websocket_timeout_ms", HTTP_WS_TIMEOUT_MS,
        "enable_websocket_ping_pong", "yes",
        /* last: without TLS its NULL ends the list */
        http_settings.tls ? "ssl_certificate" : NULL, cert,
        NULL,
    };
    struct mg_init_data init = { .callbacks = &cb, .configuration_options = opts };

    if (!engine_init()) {
        free(ports);
        return false;
    }
    http_ctx = mg_start2(&init, &ed);
    free(ports);
    if (!http_ctx) {
        LOG_ERROR("cannot serve HTTP on \"%s\": %s", listen ? listen : "",
                  err[0] ? err : "CivetWeb did not start");
        mg_exit_library();
        return false;
    }
    mg_set_request_handler(http_ctx, "**", http_dispatch, NULL);
    http_ws_register(http_ctx);
    if (!http_sse_start())
        LOG_ERROR("no SSE heartbeat thread: idle streams will not be checked");
    return true;
}

typedef struct stopper {
    pthread_mutex_t    mu;
    pthread_cond_t     cv;
    bool               done;
    struct mg_context *ctx;
} stopper_t;

static void *stop_thread(void *arg)
{
    stopper_t *s = arg;

    mg_stop(s->ctx);
    pthread_mutex_lock(&s->mu);
    s->done = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* mg_stop returns once every handler has; run it aside so a handler that
 * never returns cannot hold the process past a bound */
static bool engine_stop(struct mg_context *ctx, long wait_ms)
{
    static stopper_t s = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, NULL };
    struct timespec until;
    pthread_t t;
    bool done;

    s.ctx = ctx;
    s.done = false;
    if (pthread_create(&t, NULL, stop_thread, &s) != 0) {
        mg_stop(ctx);
        return true;
    }
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s.mu);
    while (!s.done) {
        if (pthread_cond_timedwait(&s.cv, &s.mu, &until) == ETIMEDOUT)
            break;
    }
    done = s.done;
    pthread_mutex_unlock(&s.mu);
    if (done)
        pthread_join(t, NULL);
    else
        pthread_detach(t);
    return done;
}

/* In-flight requests finish before mg_stop: once CivetWeb's stop flag is
 * set, every write on every connection fails at once. Until then the
 * listeners stay open and what arrives is answered 503 (prepare). */
static int drain(long grace_ms)
{
    double until = core_now() + (double)grace_ms / 1000.0;
    struct timespec tick = { 0, 10 * 1000000L };

    while (atomic_load(&inflight) > 0 && core_now() < until)
        nanosleep(&tick, NULL);
    return atomic_load(&inflight);
}

void core_http_stop(long grace_ms)
{
    struct mg_context *ctx = http_ctx;
    int left;

    if (!ctx || atomic_exchange(&stopping, true))
        return;
    http_sse_shutdown();
    http_ws_shutdown();
    left = drain(grace_ms > 0 ? grace_ms : 0);
    if (left > 0)
        LOG_WARN("%d request%s still running after the %ld ms shutdown grace",
                 left, left == 1 ? "" : "s", grace_ms);
    if (!engine_stop(ctx, HTTP_ENGINE_STOP_MS)) {
        LOG_WARN("CivetWeb did not stop within %d ms; going on without it",
                 HTTP_ENGINE_STOP_MS);
        return;
    }
    mg_exit_library();
    http_ctx = NULL;
}
