/*
 * netprobe: a module that drives the outbound HTTP client and the
 * multipart reader of ABI 1.4 as a test tells it, so the integration tests
 * can watch them from outside.
 *
 *   POST /api/v1/netprobe/fetch    {"url", "method", "headers": [lines],
 *        "body", "connect_timeout_ms", "first_byte_timeout_ms",
 *        "total_timeout_ms", "max_response", "max_redirects",
 *        "cancel_after_ms", "stream": true (on_data), "stop_after_bytes",
 *        "want_headers": [names]}
 *        -> {"result": "ok"|"forbidden"|"timeout"|..., "status",
 *            "body", "headers": {name: value}, "chunks", "streamed",
 *            "elapsed_ms"}
 *   POST /api/v1/netprobe/upload   multipart/form-data; ?max_total=,
 *        max_part=, max_parts= set the bounds
 *        -> {"parts": [{"name", "filename", "content_type", "size",
 *            "sha256"}]}
 *   POST /api/v1/netprobe/upload-late   reads the body first, then asks
 *        for it as multipart: the core must refuse
 */
#include <plexus/module.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

static plx_module_t *self;

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

static const char *result_name(plx_status_t st)
{
    switch (st) {
    case PLX_OK:            return "ok";
    case PLX_ERR_FORBIDDEN: return "forbidden";
    case PLX_ERR_TIMEOUT:   return "timeout";
    case PLX_ERR_UPSTREAM:  return "upstream";
    case PLX_ERR_TOO_LARGE: return "too_large";
    case PLX_ERR_GONE:      return "gone";
    case PLX_ERR_INVALID:   return "invalid";
    default:                return "other";
    }
}

/* ---- fetch ---------------------------------------------------------------- */

typedef struct fetch {
    double start, cancel_after;
    size_t streamed, stop_after;
    int    chunks;
} fetch_t;

static int fetch_cancelled(void *arg)
{
    fetch_t *f = arg;

    return f->cancel_after > 0 && now_ms() - f->start >= f->cancel_after;
}

static int fetch_data(const char *data, size_t len, void *arg)
{
    fetch_t *f = arg;

    (void)data;
    f->chunks++;
    f->streamed += len;
    return f->stop_after > 0 && f->streamed >= f->stop_after;
}

static long num(json_t *o, const char *key)
{
    return (long)json_integer_value(json_object_get(o, key));
}

/* NULL-terminated header lines from a JSON array, in the request's arena */
static const char **lines(plx_request_t *r, json_t *arr)
{
    size_t n = json_array_size(arr), i;
    const char **out = plx_palloc(r, (n + 1) * sizeof *out);

    if (!out)
        return NULL;
    for (i = 0; i < n; i++)
        out[i] = json_string_value(json_array_get(arr, i));
    out[n] = NULL;
    return n ? out : NULL;
}

static json_t *resp_json(plx_http_resp_t *resp, json_t *want)
{
    json_t *headers = json_object();
    size_t len, i;
    const char *body = plx_http_resp_body(resp, &len);

    for (i = 0; i < json_array_size(want); i++) {
        const char *name = json_string_value(json_array_get(want, i));
        const char *v = name ? plx_http_resp_header(resp, name) : NULL;
        if (v)
            json_object_set_new(headers, name, json_string(v));
    }
    return json_pack("{s:i, s:s%, s:o}", "status", plx_http_resp_status(resp),
                     "body", body, len, "headers", headers);
}

static plx_status_t probe_fetch(plx_request_t *r, void *arg)
{
    json_t *in, *out;
    plx_http_resp_t *resp = NULL;
    fetch_t f = { 0 };

    (void)arg;
    if (plx_request_json(r, &in) != PLX_OK)
        return PLX_OK;   /* answered */
    const char *body = json_string_value(json_object_get(in, "body"));
    f.cancel_after = (double)num(in, "cancel_after_ms");
    f.stop_after = (size_t)num(in, "stop_after_bytes");
    plx_http_opts_t o = {
        .size = sizeof o,
        .connect_timeout_ms = num(in, "connect_timeout_ms"),
        .first_byte_timeout_ms = num(in, "first_byte_timeout_ms"),
        .total_timeout_ms = num(in, "total_timeout_ms"),
        .max_response = (size_t)num(in, "max_response"),
        .max_redirects = (int)num(in, "max_redirects"),
        .cancelled = fetch_cancelled, .cancel_arg = &f,
        .on_data = json_is_true(json_object_get(in, "stream")) ? fetch_data : NULL,
        .data_arg = &f,
    };
    f.start = now_ms();
    plx_status_t st = plx_http_request(
        self, json_string_value(json_object_get(in, "method")),
        json_string_value(json_object_get(in, "url")),
        lines(r, json_object_get(in, "headers")), body,
        body ? strlen(body) : 0, &o, &resp);

    out = st == PLX_OK ? resp_json(resp, json_object_get(in, "want_headers"))
                       : json_object();
    plx_http_resp_free(resp);
    json_object_set_new(out, "result", json_string(result_name(st)));
    json_object_set_new(out, "chunks", json_integer(f.chunks));
    json_object_set_new(out, "streamed", json_integer((json_int_t)f.streamed));
    json_object_set_new(out, "elapsed_ms", json_integer((json_int_t)(now_ms() - f.start)));
    return plx_reply_json(r, 200, out);
}

/* ---- upload --------------------------------------------------------------- */

typedef struct upload {
    json_t     *parts;
    json_t     *cur;
    EVP_MD_CTX *md;
    size_t      size;
} upload_t;

static plx_status_t up_begin(const plx_part_t *part, void *arg)
{
    upload_t *u = arg;

    u->cur = json_pack("{s:s, s:s?, s:s}", "name", part->name, "filename",
                       part->filename, "content_type", part->content_type);
    u->size = 0;
    if (!u->cur || EVP_DigestInit_ex(u->md, EVP_sha256(), NULL) != 1)
        return PLX_ERR_NOMEM;
    return PLX_OK;
}

static plx_status_t up_data(const char *data, size_t len, void *arg)
{
    upload_t *u = arg;

    u->size += len;
    return EVP_DigestUpdate(u->md, data, len) == 1 ? PLX_OK : PLX_ERR_INTERNAL;
}

static plx_status_t up_end(void *arg)
{
    upload_t *u = arg;
    unsigned char d[32];
    unsigned int dl = 0;
    char hex[65];

    if (EVP_DigestFinal_ex(u->md, d, &dl) != 1 || dl != 32)
        return PLX_ERR_INTERNAL;
    /* by hand: plx_hex_encode belongs to another part of 1.4 */
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = "0123456789abcdef"[d[i] >> 4];
        hex[2 * i + 1] = "0123456789abcdef"[d[i] & 15];
    }
    hex[64] = '\0';
    json_object_set_new(u->cur, "size", json_integer((json_int_t)u->size));
    json_object_set_new(u->cur, "sha256", json_string(hex));
    json_array_append_new(u->parts, u->cur);
    u->cur = NULL;
    return PLX_OK;
}

static size_t query_size(plx_request_t *r, const char *name)
{
    const char *v = plx_request_query(r, name);

    return v ? (size_t)strtoull(v, NULL, 10) : 0;
}

static plx_status_t probe_upload(plx_request_t *r, void *arg)
{
    upload_t u = { .parts = json_array(), .md = EVP_MD_CTX_new() };
    plx_multipart_t spec = {
        .size = sizeof spec,
        .max_parts = query_size(r, "max_parts"),
        .max_part_bytes = query_size(r, "max_part"),
        .max_total_bytes = query_size(r, "max_total"),
        .part_begin = up_begin, .part_data = up_data, .part_end = up_end,
    };

    (void)arg;
    plx_status_t st = u.parts && u.md ? plx_request_multipart(r, &spec, &u)
                                      : PLX_ERR_NOMEM;
    EVP_MD_CTX_free(u.md);
    json_decref(u.cur);
    if (st != PLX_OK) {
        json_decref(u.parts);
        return st;
    }
    return plx_reply_json(r, 200, json_pack("{s:o}", "parts", u.parts));
}

static plx_status_t probe_upload_late(plx_request_t *r, void *arg)
{
    const char *body;
    size_t len;
    plx_status_t st = plx_request_body(r, &body, &len);

    if (st != PLX_OK)
        return st;
    return probe_upload(r, arg);
}

static const plx_route_def_t routes[] = {
    { "POST", "/api/v1/netprobe/fetch", probe_fetch, PLX_AUTH_PUBLIC, NULL,
      "none", "make an outbound call as told", NULL },
    { "POST", "/api/v1/netprobe/upload", probe_upload, PLX_AUTH_PUBLIC, NULL,
      "none", "report the parts of an upload", NULL },
    { "POST", "/api/v1/netprobe/upload-late", probe_upload_late, PLX_AUTH_PUBLIC,
      NULL, "none", "read the body, then ask for it as multipart", NULL },
};

static plx_status_t netprobe_init(plx_module_t *m)
{
    self = m;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (plx_route_add(m, routes[i].method, routes[i].pattern, routes[i].fn,
                          NULL, PLX_ROUTE_OPTS(.rate_class = routes[i].rate_class,
                                               .summary = routes[i].summary)) != PLX_OK)
            return PLX_ERR_INTERNAL;
    return PLX_OK;
}

PLX_MODULE(.name = "netprobe", .version = "1.0.0",
           .description = "drives the outbound HTTP client and uploads",
           .init = netprobe_init);
