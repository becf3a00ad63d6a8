/*
 * http_request.c - one request: its arena, what it says, how it is answered
 *
 * Everything a handler reaches through plx_request_t lives here: the arena
 * (plx_palloc memory and cleanups, all released when the request ends), the
 * accessors, the body with its bound, and the reply functions that put the
 * core's headers on every answer and turn errors into problem+json
 * (RFC 9457). The dispatch around a handler is in http.c.
 */
#include "config.h"
#include "http_internal.h"
#include "loader.h"
#include "multipart.h"

#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ARENA_BLOCK_SIZE  8192
#define ARENA_BIG         2048    /* a larger allocation gets a block of its own */
#define BODY_READ_STEP    16384

struct http_arena_block {
    struct http_arena_block *next;
    size_t size;
    size_t used;
    alignas(max_align_t) unsigned char data[];
};

struct http_cleanup {
    struct http_cleanup *next;
    plx_cleanup_fn fn;
    void *arg;
};

struct http_note {
    struct http_note *next;
    const char *key;
    void *value;
};

/* ---- arena ----------------------------------------------------------------- */

static http_arena_block_t *arena_block_new(plx_request_t *r, size_t size)
{
    http_arena_block_t *b;

    if (r->arena_used + size > HTTP_ARENA_CAP + http_settings.max_body)
        return NULL;
    b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->size = size;
    b->used = 0;
    r->arena_used += size;
    return b;
}

void *core_palloc(plx_request_t *r, size_t n)
{
    const size_t align = alignof(max_align_t);
    http_arena_block_t *b;
    size_t need;

    if (!r || n > HTTP_ARENA_CAP + http_settings.max_body)
        return NULL;
    need = (n + align - 1) & ~(align - 1);
    if (need == 0)
        need = align;
    b = r->blocks;
    if (b && b->size - b->used >= need) {
        void *p = b->data + b->used;
        b->used += need;
        return p;
    }
    if (need > ARENA_BIG) {
        /* its own block, linked behind the current one so that one stays in use */
        http_arena_block_t *big = arena_block_new(r, need);
        if (!big)
            return NULL;
        big->used = need;
        big->next = b ? b->next : NULL;
        if (b)
            b->next = big;
        else
            r->blocks = big;
        return big->data;
    }
    b = arena_block_new(r, ARENA_BLOCK_SIZE);
    if (!b)
        return NULL;
    b->next = r->blocks;
    r->blocks = b;
    b->used = need;
    return b->data;
}

char *core_pstrdup(plx_request_t *r, const char *s)
{
    size_t len;
    char *d;

    if (!s)
        return NULL;
    len = strlen(s);
    d = core_palloc(r, len + 1);
    if (d)
        memcpy(d, s, len + 1);
    return d;
}

static char *pstrndup(plx_request_t *r, const char *s, size_t len)
{
    char *d = core_palloc(r, len + 1);

    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

plx_status_t core_request_cleanup_add(plx_request_t *r, plx_cleanup_fn fn,
                                      void *arg)
{
    http_cleanup_t *c;

    if (!r || !fn)
        return PLX_ERR_INVALID;
    c = core_palloc(r, sizeof(*c));
    if (!c)
        return PLX_ERR_NOMEM;
    c->fn = fn;
    c->arg = arg;
    c->next = r->cleanups;
    r->cleanups = c;
    return PLX_OK;
}

void *core_request_note_get(plx_request_t *r, const char *key)
{
    if (!r || !key)
        return NULL;
    for (http_note_t *n = r->notes; n; n = n->next) {
        if (strcmp(n->key, key) == 0)
            return n->value;
    }
    return NULL;
}

void core_request_note_set(plx_request_t *r, const char *key, void *value)
{
    http_note_t *n;

    if (!r || !key)
        return;
    for (n = r->notes; n; n = n->next) {
        if (strcmp(n->key, key) == 0) {
            n->value = value;
            return;
        }
    }
    if (r->nnotes >= HTTP_MAX_NOTES) {
        core_log(PLX_LOG_ERROR, "core", r->id,
                 "note \"%s\" dropped: expected at most %d notes per request",
                 key, HTTP_MAX_NOTES);
        return;
    }
    n = core_palloc(r, sizeof(*n));
    if (!n || !(n->key = core_pstrdup(r, key)))
        return;
    n->value = value;
    n->next = r->notes;
    r->notes = n;
    r->nnotes++;
}

/* ---- creation and end ---------------------------------------------------- */

/* <= 128 printable ASCII characters, no spaces */
static bool request_id_ok(const char *s)
{
    size_t len = 0;

    if (!s)
        return false;
    for (; s[len]; len++) {
        if (len >= HTTP_REQUEST_ID_MAX || s[len] < 0x21 || s[len] > 0x7e)
            return false;
    }
    return len > 0;
}

static void request_id_init(plx_request_t *r)
{
    const char *given = mg_get_header(r->conn, "X-Request-ID");

    if (request_id_ok(given)) {
        snprintf(r->id, sizeof r->id, "%s", given);
        return;
    }
    if (core_uuid_new(4, r->id) != PLX_OK) {
        /* no randomness from the kernel: still unique enough to correlate logs */
        static atomic_ulong seq;
        snprintf(r->id, sizeof r->id, "req-%lu", atomic_fetch_add(&seq, 1));
    }
}

plx_request_t *http_request_new(struct mg_connection *conn)
{
    plx_request_t *r = calloc(1, sizeof(*r));
    const char *uri;

    if (!r)
        return NULL;
    r->conn = conn;
    r->ri = mg_get_request_info(conn);
    r->t_start = core_now();
    request_id_init(r);
    uri = r->ri->local_uri ? r->ri->local_uri : "/";
    r->method = core_pstrdup(r, r->ri->request_method ? r->ri->request_method : "");
    r->path = pstrndup(r, uri, strcspn(uri, "?"));
    snprintf(r->remote, sizeof r->remote, "%s", r->ri->remote_addr);
    r->head = r->method && strcmp(r->method, "HEAD") == 0;
    if (!r->method || !r->path) {
        http_request_free(r);
        return NULL;
    }
    return r;
}

void http_request_free(plx_request_t *r)
{
    http_arena_block_t *b, *next;

    if (!r)
        return;
    for (http_cleanup_t *c = r->cleanups; c; c = c->next)
        c->fn(c->arg);
    json_decref(r->json);
    free(r->body);
    core_route_match_clear(&r->match);
    for (b = r->blocks; b; b = next) {
        next = b->next;
        free(b);
    }
    free(r);
}

/* ---- what the request says ----------------------------------------------- */

const char *core_request_method(plx_request_t *r)
{
    return r ? r->method : NULL;
}

const char *core_request_path(plx_request_t *r)
{
    return r ? r->path : NULL;
}

const char *core_request_param(plx_request_t *r, const char *name)
{
    if (!r || !name)
        return NULL;
    for (size_t i = 0; i < r->match.nparams; i++) {
        if (strcmp(r->match.names[i], name) == 0)
            return r->match.values[i];
    }
    return NULL;
}

const char *core_request_query(plx_request_t *r, const char *name)
{
    const char *qs;
    size_t qlen;
    char *dst;

    if (!r || !name || !r->conn || !(qs = r->ri->query_string))
        return NULL;
    qlen = strlen(qs);
    dst = core_palloc(r, qlen + 1);
    if (!dst || mg_get_var(qs, qlen, name, dst, qlen + 1) < 0)
        return NULL;
    return dst;
}

const char *core_request_header(plx_request_t *r, const char *name)
{
    if (!r || !name || !r->conn)
        return NULL;
    return mg_get_header(r->conn, name);
}

const char *core_request_id(plx_request_t *r)
{
    return r ? r->id : NULL;
}

const char *core_request_remote_addr(plx_request_t *r)
{
    return r ? r->remote : NULL;
}

void core_request_principal_set(plx_request_t *r, const core_principal_t *p)
{
    const char **scopes = NULL;
    size_t n = 0;

    if (!r)
        return;
    r->has_principal = p != NULL;
    memset(&r->principal, 0, sizeof(r->principal));
    if (!p)
        return;
    snprintf(r->principal.user_id, sizeof r->principal.user_id, "%s", p->user_id);
    snprintf(r->principal.session_id, sizeof r->principal.session_id, "%s",
             p->session_id);
    snprintf(r->principal.key_id, sizeof r->principal.key_id, "%s", p->key_id);
    r->principal.admin = p->admin;
    r->principal.api_key = p->api_key;
    if (!p->scopes)
        return;   /* NULL: every scope of the user */
    while (p->scopes[n] && n < HTTP_MAX_SCOPES)
        n++;
    scopes = core_palloc(r, (n + 1) * sizeof(*scopes));
    if (!scopes) {
        /* fail closed: a principal without its scope list has none */
        static const char *const none[] = { NULL };
        r->principal.scopes = none;
        return;
    }
    for (size_t i = 0; i < n; i++)
        scopes[i] = core_pstrdup(r, p->scopes[i]);
    scopes[n] = NULL;
    r->principal.scopes = scopes;
}

const core_principal_t *core_request_principal(plx_request_t *r)
{
    return r && r->has_principal ? &r->principal : NULL;
}

const char *core_request_user_id(plx_request_t *r)
{
    return r && r->has_principal ? r->principal.user_id : NULL;
}

int core_request_is_admin(plx_request_t *r)
{
    return r && r->has_principal && r->principal.admin;
}

int core_request_has_scope(plx_request_t *r, const char *scope)
{
    if (!r || !r->has_principal || !scope)
        return 0;
    if (!r->principal.scopes)
        return 1;   /* a user's own token: every scope of the user */
    for (size_t i = 0; r->principal.scopes[i]; i++) {
        if (strcmp(r->principal.scopes[i], scope) == 0)
            return 1;
    }
    return 0;
}

const char *core_request_rate_class(plx_request_t *r)
{
    const core_route_t *rt = r ? r->match.route : NULL;

    if (!rt)
        return NULL;
    return rt->rate_class ? rt->rate_class : "default";
}

/* ---- the body ------------------------------------------------------------- */

static plx_status_t body_too_large(plx_request_t *r, long long found)
{
    char detail[160];

    if (found >= 0)
        snprintf(detail, sizeof detail, "expected a body of at most %zu bytes, found %lld",
                 http_settings.max_body, found);
    else
        snprintf(detail, sizeof detail, "expected a body of at most %zu bytes, found more",
                 http_settings.max_body);
    core_error_set(r, "body_too_large", detail);
    /* the rest of the body is never read: the connection cannot be reused */
    r->no_keep_alive = true;
    return PLX_ERR_TOO_LARGE;
}

static bool body_grow(plx_request_t *r, size_t *cap, size_t want)
{
    char *p;
    size_t ncap = *cap ? *cap : BODY_READ_STEP;

    while (ncap < want)
        ncap *= 2;
    if (ncap > http_settings.max_body + 1)
        ncap = http_settings.max_body + 1;
    p = realloc(r->body, ncap + 1);
    if (!p)
        return false;
    r->body = p;
    *cap = ncap;
    return true;
}

static plx_status_t body_read(plx_request_t *r)
{
    long long cl = r->ri->content_length;
    size_t max = http_settings.max_body, cap = 0, len = 0;

    if (cl > (long long)max)
        return body_too_large(r, cl);
    if (!body_grow(r, &cap, cl > 0 ? (size_t)cl : 0))
        return PLX_ERR_NOMEM;
    for (;;) {
        int n;

        /* cap never passes max + 1, and len == max + 1 has returned above */
        if (len == cap && !body_grow(r, &cap, cap + 1))
            return PLX_ERR_NOMEM;
        n = mg_read(r->conn, r->body + len, cap - len);
        if (n < 0) {
            core_error_set(r, "invalid_body", "the request body could not be read");
            r->no_keep_alive = true;
            return PLX_ERR_INVALID;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max)
            return body_too_large(r, -1);   /* chunked: counted as read */
    }
    if (cl >= 0 && len != (size_t)cl) {
        core_error_set(r, "invalid_body", "the request body ended before its Content-Length");
        r->no_keep_alive = true;
        return PLX_ERR_INVALID;
    }
    r->body[len] = '\0';
    r->body_len = len;
    return PLX_OK;
}

plx_status_t core_request_body(plx_request_t *r, const char **body, size_t *len)
{
    if (body)
        *body = NULL;
    if (len)
        *len = 0;
    if (!r || !r->conn)
        return PLX_ERR_INVALID;
    if (!r->body_done) {
        r->body_status = body_read(r);
        r->body_done = true;
    }
    if (r->body_status != PLX_OK)
        return r->body_status;
    if (body)
        *body = r->body;
    if (len)
        *len = r->body_len;
    return PLX_OK;
}

/* The body parsed within the server's bounds on size, depth and elements,
 * kept for the request. On failure nothing is answered yet: err holds the
 * detail of a parse failure and is empty when the body could not be read
 * (that failure has set its own error with core_error_set). */
static plx_status_t body_json(plx_request_t *r, json_t **out, char err[160])
{
    const char *body;
    size_t len;
    plx_status_t st;

    err[0] = '\0';
    if (r->json) {
        *out = r->json;
        return PLX_OK;
    }
    if ((st = core_request_body(r, &body, &len)) != PLX_OK)
        return st;
    st = core_json_parse(body, len, http_settings.max_json_depth,
                         http_settings.max_json_elements, &r->json, err);
    if (st != PLX_OK)
        return st;
    *out = r->json;
    return PLX_OK;
}

/* answer a failure of body_json: code for a malformed document */
static plx_status_t body_json_refused(plx_request_t *r, plx_status_t st,
                                      const char *code, const char *err)
{
    if (r->replied)
        return st;
    if (!err[0])
        return http_reply_status(r, st);   /* the body could not be read */
    if (st == PLX_ERR_TOO_LARGE)
        code = "body_too_large";
    http_reply_problem(r, st == PLX_ERR_TOO_LARGE ? 413 : 400, code, NULL, 0, err);
    return st;
}

/* body_json, answered with code for a malformed document */
static plx_status_t body_parsed(plx_request_t *r, json_t **out, const char *code)
{
    char err[160];
    plx_status_t st;

    if (out)
        *out = NULL;
    if (!r || !out)
        return PLX_ERR_INVALID;
    if ((st = body_json(r, out, err)) != PLX_OK)
        return body_json_refused(r, st, code, err);
    return PLX_OK;
}

/* ---- multipart/form-data ---------------------------------------------------- */

/* A framing or bound problem: answered, and the connection is not reused
 * because the rest of the body stays unread. */
static plx_status_t multipart_refuse(plx_request_t *r, plx_status_t st,
                                     const char *detail)
{
    r->no_keep_alive = true;
    if (st == PLX_ERR_TOO_LARGE)
        http_reply_problem(r, 413, "body_too_large", NULL, 0, detail);
    else if (st == PLX_ERR_INVALID)
        http_reply_problem(r, 400, "invalid_multipart", NULL, 0, detail);
    return st;
}

/* Read the body from the connection in pieces and feed the parser. */
static plx_status_t multipart_pump(plx_request_t *r, core_mp_t *mp)
{
    char buf[BODY_READ_STEP];
    long long cl = r->ri->content_length;
    plx_status_t st;

    for (;;) {
        int n = mg_read(r->conn, buf, sizeof buf);
        if (n < 0)
            return multipart_refuse(r, PLX_ERR_INVALID,
                                    "the request body could not be read");
        if (n == 0)
            break;
        if ((st = core_mp_feed(mp, buf, (size_t)n)) == PLX_OK)
            continue;
        /* the parser's own errors carry a detail; a callback's do not */
        if (core_mp_error(mp)[0])
            return multipart_refuse(r, st, core_mp_error(mp));
        r->no_keep_alive = true;
        return st;
    }
    if (cl >= 0 && core_mp_total(mp) != (unsigned long long)cl)
        return multipart_refuse(r, PLX_ERR_INVALID,
                                "the request body ended before its Content-Length");
    st = core_mp_finish(mp);
    return st == PLX_OK ? st : multipart_refuse(r, st, core_mp_error(mp));
}

plx_status_t core_request_multipart(plx_request_t *r,
                                    const plx_multipart_t *spec, void *arg)
{
    char boundary[CORE_MP_BOUNDARY_MAX + 1], err[160];

    if (!r || !r->conn || !spec || spec->size < sizeof(spec->size))
        return PLX_ERR_INVALID;
    if (r->body_done) {
        /* a module bug, not the client's: the bytes are gone */
        core_log(PLX_LOG_ERROR, "core", r->id, "plx_request_multipart on "
                 "\"%s %s\": the body was already read", r->method, r->path);
        return PLX_ERR_INTERNAL;
    }
    /* whatever happens, the body is consumed: plx_request_body is refused */
    r->body_done = true;
    r->body_status = PLX_ERR_INVALID;

    if (core_mp_boundary(core_request_header(r, "Content-Type"), boundary,
                         err, sizeof err) != PLX_OK)
        return multipart_refuse(r, PLX_ERR_INVALID, err);

    core_mp_t *mp = core_mp_new(spec, boundary, arg);
    if (!mp)
        return PLX_ERR_NOMEM;
    long long cl = r->ri->content_length;
    plx_status_t st = cl >= 0 && (unsigned long long)cl > core_mp_max_total(mp)
        ? multipart_refuse(r, PLX_ERR_TOO_LARGE, "the request body is larger "
                           "than the upload allows")
        : multipart_pump(r, mp);
    core_mp_free(mp);
    return st;
}

plx_status_t core_request_json(plx_request_t *r, json_t **out)
{
    return body_parsed(r, out, "invalid_json");
}

plx_status_t core_request_body_object(plx_request_t *r, json_t **out)
{
    plx_status_t st = body_parsed(r, out, "invalid_body");

    if (st != PLX_OK || json_is_object(*out))
        return st;
    *out = NULL;
    http_reply_problem(r, 400, "invalid_body", NULL, 0, "expected a JSON object");
    return PLX_ERR_INVALID;
}

/* ---- response headers ------------------------------------------------------ */

static bool token_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", c))
            return false;
    }
    return true;
}

static bool value_ok(const char *s)
{
    size_t len = 0;

    if (!s)
        return false;
    for (; s[len]; len++) {
        if (s[len] == '\r' || s[len] == '\n' || len >= HTTP_MAX_HEADER_VALUE)
            return false;
    }
    return true;
}

/* headers the core writes itself: a handler's copy would contradict them */
static bool header_reserved(const char *name)
{
    static const char *const reserved[] = {
        "Content-Length", "Transfer-Encoding", "Connection", "X-Request-ID",
        "Date", "Upgrade",
    };

    for (size_t i = 0; i < CORE_ARRAY_LEN(reserved); i++) {
        if (strcasecmp(name, reserved[i]) == 0)
            return true;
    }
    return false;
}

void core_response_header(plx_request_t *r, const char *name, const char *value)
{
    if (!r)
        return;
    if (!token_ok(name) || !value_ok(value) || header_reserved(name)) {
        core_log(PLX_LOG_ERROR, "core", r->id,
                 "response header \"%s\" dropped: expected a token name, a value "
                 "without CR or LF, and no header the core sets itself",
                 token_ok(name) ? name : "(invalid)");
        return;
    }
    if (r->replied || r->nheaders >= HTTP_MAX_RESP_HEADERS) {
        core_log(PLX_LOG_ERROR, "core", r->id, "response header \"%s\" dropped: %s",
                 name, r->replied ? "the response was already sent"
                                  : "too many response headers");
        return;
    }
    r->headers[r->nheaders].name = core_pstrdup(r, name);
    r->headers[r->nheaders].value = core_pstrdup(r, value);
    if (r->headers[r->nheaders].name && r->headers[r->nheaders].value)
        r->nheaders++;
}

bool http_response_has_header(const plx_request_t *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        if (strcasecmp(r->headers[i].name, name) == 0)
            return true;
    }
    return false;
}

/* ---- writing the head ------------------------------------------------------ */

#define HEAD_MAX (HTTP_MAX_RESP_HEADERS + 24)

typedef struct head {
    http_header_t h[HEAD_MAX];
    size_t n;
    char date[40];
} head_t;

static void head_add(head_t *hd, const char *name, const char *value)
{
    if (hd->n < HEAD_MAX && name && value)
        hd->h[hd->n++] = (http_header_t){ name, value };
}

static bool head_has(const head_t *hd, const char *name)
{
    for (size_t i = 0; i < hd->n; i++) {
        if (strcasecmp(hd->h[i].name, name) == 0)
            return true;
    }
    return false;
}

/* NB: given a Date header, CivetWeb 1.15 skips its own, which it formats
 * with gmtime(): not thread-safe, a data race under concurrent requests */
static void head_date(head_t *hd)
{
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t now = time(NULL);
    struct tm tm;

    /* IMF-fixdate (RFC 9110 5.6.7), by hand: strftime's names follow the locale */
    if (!gmtime_r(&now, &tm))
        return;
    snprintf(hd->date, sizeof hd->date, "%s, %02d %s %04d %02d:%02d:%02d GMT",
             days[tm.tm_wday % 7], tm.tm_mday, months[tm.tm_mon % 12],
             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    head_add(hd, "Date", hd->date);
}

static void head_core(plx_request_t *r, head_t *hd)
{
    head_date(hd);
    head_add(hd, "X-Request-ID", r->id);
    head_add(hd, "X-Content-Type-Options", "nosniff");
    head_add(hd, "X-Frame-Options", "DENY");
    head_add(hd, "Referrer-Policy", "no-referrer");
    head_add(hd, "Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'");
    if (!head_has(hd, "Cache-Control"))
        head_add(hd, "Cache-Control", "no-store");
    if (http_settings.tls)
        head_add(hd, "Strict-Transport-Security", "max-age=31536000; includeSubDomains");
    if (r->origin) {
        head_add(hd, "Access-Control-Allow-Origin", r->origin);
        head_add(hd, "Vary", "Origin");
        head_add(hd, "Access-Control-Expose-Headers",
                 "X-Request-ID, Retry-After, RateLimit, RateLimit-Policy");
    }
}

static void head_build(plx_request_t *r, head_t *hd, int status, const char *type,
                       const char *clen, const http_header_t *extra, size_t nextra)
{
    hd->n = 0;
    if (type)
        head_add(hd, "Content-Type", type);
    if (status == 204 || status == 304)
        ;   /* RFC 9110 8.6: no Content-Length on these */
    else if (clen)
        head_add(hd, "Content-Length", clen);
    else
        head_add(hd, "Transfer-Encoding", "chunked");
    for (size_t i = 0; i < nextra; i++)
        head_add(hd, extra[i].name, extra[i].value);
    for (size_t i = 0; i < r->nheaders; i++) {
        const http_header_t *h = &r->headers[i];
        if (type && strcasecmp(h->name, "Content-Type") == 0)
            continue;
        head_add(hd, h->name, h->value);
    }
    head_core(r, hd);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default:  break;
    }
    return status < 300 ? "Success" : status < 400 ? "Redirection"
         : status < 500 ? "Client Error" : "Server Error";
}

/* Before a WebSocket handshake CivetWeb's header functions refuse to work
 * (the connection is no longer an ordinary HTTP one), so refusals are
 * written by hand and the connection is closed after them. */
static bool head_send_raw(plx_request_t *r, int status, const head_t *hd)
{
    size_t cap = 128, o;
    char *buf;
    bool ok;

    for (size_t i = 0; i < hd->n; i++)
        cap += strlen(hd->h[i].name) + strlen(hd->h[i].value) + 4;
    buf = malloc(cap);
    if (!buf)
        return false;
    o = (size_t)snprintf(buf, cap, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
    for (size_t i = 0; i < hd->n && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s: %s\r\n", hd->h[i].name, hd->h[i].value);
    if (o < cap)
        o += (size_t)snprintf(buf + o, cap - o, "Connection: close\r\n\r\n");
    ok = o < cap && mg_write(r->conn, buf, o) == (int)o;
    free(buf);
    return ok;
}

bool http_send_head(plx_request_t *r, int status, const char *type,
                    long long content_length, const http_header_t *extra,
                    size_t nextra)
{
    head_t hd;
    char clen[32];

    r->replied = true;
    r->status = status;
    if (!r->conn)
        return false;
    if (content_length >= 0)
        snprintf(clen, sizeof clen, "%lld", content_length);
    head_build(r, &hd, status, type, content_length >= 0 ? clen : NULL, extra, nextra);
    if (r->raw_head)
        return head_send_raw(r, status, &hd);
    if (r->no_keep_alive)
        mg_disable_connection_keep_alive(r->conn);
    if (mg_response_header_start(r->conn, status) != 0)
        return false;
    for (size_t i = 0; i < hd.n; i++) {
        if (mg_response_header_add(r->conn, hd.h[i].name, hd.h[i].value, -1) != 0)
            core_log(PLX_LOG_ERROR, "core", r->id, "response header \"%s\" not sent",
                     hd.h[i].name);
    }
    return mg_response_header_send(r->conn) == 0;
}

bool http_write(plx_request_t *r, const void *buf, size_t len)
{
    if (len == 0 || r->head)
        return true;
    if (!r->conn || mg_write(r->conn, buf, len) != (int)len)
        return false;
    r->bytes_sent += len;
    return true;
}

/* One write per chunk: several small writes would wait on Nagle and
 * delayed ACKs, and a streamed event must leave at once. */
bool http_write_chunk(plx_request_t *r, const void *buf, size_t len)
{
    char stack[4096], *p = stack;
    size_t total = len + 24, o;
    bool ok;

    if (r->head)
        return true;
    if (!r->conn)
        return false;
    if (total > sizeof stack && !(p = malloc(total)))
        return false;
    o = (size_t)snprintf(p, total, "%zx\r\n", len);
    if (len)
        memcpy(p + o, buf, len);
    o += len;
    memcpy(p + o, "\r\n", 2);
    o += 2;
    ok = mg_write(r->conn, p, o) == (int)o;
    if (ok)
        r->bytes_sent += len;
    if (p != stack)
        free(p);
    return ok;
}

/* ---- replies ----------------------------------------------------------------- */

static void release(const void *body, plx_free_fn mem)
{
    if (body && mem != PLX_MEM_STATIC && mem != PLX_MEM_COPY)
        mem((void *)body);
}

static bool reply_twice(plx_request_t *r)
{
    if (!r->replied)
        return false;
    core_log(PLX_LOG_ERROR, "core", r->id,
             "second answer to \"%s %s\" refused: the response was already sent",
             r->method, r->path);
    return true;
}

plx_status_t core_reply(plx_request_t *r, int status, const char *type,
                        const void *body, size_t len, plx_free_fn mem)
{
    bool ok;

    if (!r || reply_twice(r)) {
        release(body, mem);
        return PLX_ERR_INTERNAL;
    }
    if (status < 200 || status > 599 || (len && !body) || (type && !value_ok(type))) {
        core_log(PLX_LOG_ERROR, "core", r->id,
                 "reply to \"%s %s\" refused: expected a status 200..599 and a "
                 "body for its length, found status %d", r->method, r->path, status);
        release(body, mem);
        return http_reply_problem(r, 500, "internal", NULL, 0, "internal error");
    }
    /* written before returning, so PLX_MEM_COPY needs no copy */
    ok = http_send_head(r, status, type, (long long)len, NULL, 0)
         && http_write(r, body, len);
    release(body, mem);
    return ok ? PLX_OK : PLX_ERR_GONE;
}

plx_status_t core_reply_json(plx_request_t *r, int status, json_t *body)
{
    char *s;

    if (!r) {
        json_decref(body);
        return PLX_ERR_INVALID;
    }
    s = body ? json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(body);
    if (!s) {
        if (reply_twice(r))
            return PLX_ERR_INTERNAL;
        core_log(PLX_LOG_ERROR, "core", r->id, "reply to \"%s %s\": the JSON body "
                 "could not be serialised", r->method, r->path);
        return http_reply_problem(r, 500, "internal", NULL, 0, "internal error");
    }
    return core_reply(r, status, "application/json; charset=utf-8", s, strlen(s), free);
}

void core_error_set(plx_request_t *r, const char *code, const char *detail)
{
    if (!r)
        return;
    if (code) {
        bool ok = *code && strlen(code) <= 64;
        for (const char *p = code; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_';
        r->err_code = ok ? core_pstrdup(r, code) : NULL;
    }
    if (detail)
        r->err_detail = pstrndup(r, detail, strnlen(detail, HTTP_MAX_DETAIL));
}

static const char *default_code(int status)
{
    switch (status) {
    case 400: return "invalid_request";
    case 401: return "unauthenticated";
    case 403: return "forbidden";
    case 404: return "not_found";
    case 405: return "method_not_allowed";
    case 408: return "request_timeout";
    case 409: return "conflict";
    case 413: return "body_too_large";
    case 426: return "upgrade_required";
    case 429: return "rate_limited";
    case 431: return "headers_too_large";
    case 502: return "upstream_failed";
    case 503: return "unavailable";
    case 504: return "upstream_timeout";
    case 505: return "http_version_not_supported";
    default:  return status >= 500 ? "internal" : "error";
    }
}

/* json_string refuses invalid UTF-8; a detail may quote client input */
json_t *http_json_text(const char *s)
{
    json_t *j = json_string(s);
    char *copy;

    if (j)
        return j;
    copy = strdup(s);
    if (!copy)
        return json_string("");
    for (char *p = copy; *p; p++) {
        if ((unsigned char)*p >= 0x80)
            *p = '?';
    }
    j = json_string(copy);
    free(copy);
    return j;
}

/* RFC 9457 problem details. The type is a URI the operator controls
 * (under [server] public_url) or "about:blank", whose title is the status
 * phrase; the stable machine-readable name is "code". */
json_t *core_problem_new(plx_request_t *r, int status, const char *code,
                         const char *detail)
{
    char instance[160];
    json_t *o = json_object();
    const char *rid = r ? r->id : NULL;

    if (!o)
        return NULL;
    if (!code)
        code = default_code(status);
    if (http_settings.problem_base) {
        size_t n = strlen(http_settings.problem_base) + strlen(code) + 1;
        char *type = malloc(n);
        if (type) {
            snprintf(type, n, "%s%s", http_settings.problem_base, code);
            json_object_set_new(o, "type", http_json_text(type));
            free(type);
        }
    } else {
        json_object_set_new(o, "type", json_string("about:blank"));
    }
    json_object_set_new(o, "title", json_string(reason_phrase(status)));
    json_object_set_new(o, "status", json_integer(status));
    json_object_set_new(o, "detail", http_json_text(detail ? detail : ""));
    json_object_set_new(o, "code", json_string(code));
    if (rid && *rid) {
        snprintf(instance, sizeof instance, "urn:request:%s", rid);
        json_object_set_new(o, "instance", json_string(instance));
        json_object_set_new(o, "request_id", json_string(rid));
    }
    return o;
}

static char *problem_body(plx_request_t *r, int status, const char *code,
                          const char *detail)
{
    json_t *o = core_problem_new(r, status, code, detail);
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    json_decref(o);
    return s;
}

/* ---- error bodies of a module's protocol (ABI 1.3) ---------------------- */

#define HTTP_MAX_ERROR_FORMATS 16
#define HTTP_MAX_PREFIX        128

typedef struct error_format {
    char                prefix[HTTP_MAX_PREFIX];
    size_t              len;
    plx_error_format_fn fn;
    void               *arg;
    plx_module_t       *owner;
} error_format_t;

/* written during init (one thread), read-only afterwards */
static error_format_t error_formats[HTTP_MAX_ERROR_FORMATS];
static size_t nerror_formats;

plx_status_t core_error_format_add(plx_module_t *m, const char *path_prefix,
                                   plx_error_format_fn fn, void *arg)
{
    const char *who = m && m->name ? m->name : "core";
    size_t len = path_prefix ? strlen(path_prefix) : 0;

    if (!fn || len < 2 || len >= HTTP_MAX_PREFIX || path_prefix[0] != '/'
        || path_prefix[len - 1] != '/') {
        core_log(PLX_LOG_ERROR, who, NULL, "error format refused: the prefix "
                 "must start and end with '/' and be shorter than %d bytes",
                 HTTP_MAX_PREFIX);
        return PLX_ERR_INVALID;
    }
    for (size_t i = 0; i < nerror_formats; i++) {
        if (strcmp(error_formats[i].prefix, path_prefix) == 0) {
            core_log(PLX_LOG_ERROR, who, NULL, "error format for \"%s\" "
                     "refused: module \"%s\" already shapes errors there",
                     path_prefix, error_formats[i].owner && error_formats[i].owner->name
                     ? error_formats[i].owner->name : "core");
            return PLX_ERR_CONFLICT;
        }
    }
    if (nerror_formats == HTTP_MAX_ERROR_FORMATS)
        return PLX_ERR_TOO_LARGE;
    error_format_t *f = &error_formats[nerror_formats++];
    memcpy(f->prefix, path_prefix, len + 1);
    f->len = len;
    f->fn = fn;
    f->arg = arg;
    f->owner = m;
    return PLX_OK;
}

/* the body a module gives errors under r's path, or NULL for problem+json;
 * the longest matching prefix wins */
static char *error_format_body(plx_request_t *r, int status, const char *code,
                               const char *detail)
{
    const error_format_t *best = NULL;
    json_t *body;
    char *s;

    if (!r->path)
        return NULL;
    for (size_t i = 0; i < nerror_formats; i++) {
        const error_format_t *f = &error_formats[i];
        if (strncmp(r->path, f->prefix, f->len) == 0 && (!best || f->len > best->len))
            best = f;
    }
    if (!best || !(body = best->fn(r, status, code, detail, best->arg)))
        return NULL;
    s = json_is_object(body) ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return s;
}

/* problem: a prebuilt problem object (stolen) with extension members, or
 * NULL to build the standard one from code and detail */
static plx_status_t reply_problem(plx_request_t *r, int status, const char *code,
                                  const http_header_t *extra, size_t nextra,
                                  const char *detail, json_t *problem)
{
    const char *type = "application/problem+json";
    http_header_t hdrs[8];
    size_t n = 0;
    char *body;
    bool ok;

    if (reply_twice(r)) {
        json_decref(problem);
        return PLX_ERR_INTERNAL;
    }
    if (status < 400 || status > 599)
        status = 500;
    if (!code)
        code = default_code(status);
    if (!detail || !*detail)
        detail = reason_phrase(status);
    for (size_t i = 0; i < nextra && n < CORE_ARRAY_LEN(hdrs) - 2; i++)
        hdrs[n++] = extra[i];
    if (status == 401 && !http_response_has_header(r, "WWW-Authenticate"))
        hdrs[n++] = (http_header_t){ "WWW-Authenticate", "Bearer" };
    if (status == 503 && !http_response_has_header(r, "Retry-After"))
        hdrs[n++] = (http_header_t){ "Retry-After", "5" };
    core_log(status >= 500 ? PLX_LOG_ERROR : PLX_LOG_INFO, "core", r->id,
             "answered %d \"%s\" to \"%s %s\": %s", status, code, r->method,
             r->path, detail);
    body = error_format_body(r, status, code, detail);
    if (body)
        type = "application/json";
    else if (problem)
        body = json_dumps(problem, JSON_COMPACT);
    else
        body = problem_body(r, status, code, detail);
    json_decref(problem);
    ok = http_send_head(r, status, type, body ? (long long)strlen(body) : 0,
                        hdrs, n)
         && (!body || http_write(r, body, strlen(body)));
    free(body);
    return ok ? PLX_OK : PLX_ERR_GONE;
}

plx_status_t http_reply_problem(plx_request_t *r, int status, const char *code,
                                const http_header_t *extra, size_t nextra,
                                const char *detail)
{
    return reply_problem(r, status, code, extra, nextra, detail, NULL);
}

plx_status_t core_reply_problem_json(plx_request_t *r, int status,
                                     json_t *problem)
{
    const char *code, *detail;

    if (!r || !json_is_object(problem)) {
        json_decref(problem);
        return PLX_ERR_INVALID;
    }
    if (status < 400 || status > 599)
        status = 500;
    json_object_set_new(problem, "status", json_integer(status));
    code = json_string_value(json_object_get(problem, "code"));
    detail = json_string_value(json_object_get(problem, "detail"));
    return reply_problem(r, status, code, NULL, 0, detail, problem);
}

plx_status_t core_reply_problemv(plx_request_t *r, int status, const char *code,
                                 const char *fmt, va_list ap)
{
    char detail[HTTP_MAX_DETAIL];

    if (!r)
        return PLX_ERR_INVALID;
    detail[0] = '\0';
    if (fmt)
        vsnprintf(detail, sizeof detail, fmt, ap);
    return http_reply_problem(r, status, code, NULL, 0, detail);
}

plx_status_t core_reply_problem(plx_request_t *r, int status, const char *code,
                                const char *fmt, ...)
{
    va_list ap;
    plx_status_t st;

    va_start(ap, fmt);
    st = core_reply_problemv(r, status, code, fmt, ap);
    va_end(ap);
    return st;
}

plx_status_t http_reply_status(plx_request_t *r, plx_status_t st)
{
    int status = st == PLX_DECLINED ? 404 : core_status_http(st);
    const char *code = r->err_code;

    if (status < 400)
        status = 500;
    if (!code)
        code = st == PLX_ERR_DB ? "database_unavailable" : default_code(status);
    return http_reply_problem(r, status, code, NULL, 0,
                              r->err_detail ? r->err_detail : core_status_str(st));
}
