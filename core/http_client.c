/*
 * http_client.c - outbound HTTP for modules (plx_http_request)
 *
 * One libcurl easy handle per call, driven through a multi handle so the
 * calling thread wakes at least every HC_POLL_MS to ask the caller whether
 * the call is still wanted and to enforce the first-byte timeout, which
 * libcurl has no option for. Nothing is shared between calls: no
 * connection cache, no cookies, no DNS cache beyond the call.
 *
 * The request-forgery guard sits in the open-socket callback: libcurl
 * asks it for a socket for each address it is about to connect to, after
 * name resolution, on every hop of a redirect chain. Judging that address
 * (and not the name in the URL) leaves no window between the check and
 * the use in which DNS could answer differently. A refused address gets
 * no socket; libcurl then tries the next one or fails the connection.
 *
 * Proxies from the environment are ignored: an http_proxy variable would
 * otherwise send every call, and the guard's decision, somewhere else.
 */
#include "config.h"
#include "http_client.h"
#include "loader.h"
#include "netaddr.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define HC_POLL_MS          100          /* the cancelled() promise */
#define HC_MAX_REQ_HEADERS  100          /* header lines a module may pass */
#define HC_MAX_RESP_HEADERS 100
#define HC_MAX_HEADER_BYTES (64 * 1024)  /* one response's header block */
#define HC_MAX_URL          8192
#define HC_MAX_METHOD       16
#define HC_MAX_REDIRECTS    20           /* more asked for: this many */

/* [http_client] allow: read once by core_http_client_setup, read-only after */
static core_allowlist_t hc_allow;

bool core_http_client_setup(core_config_t *cfg)
{
    char err[160];

    if (!core_allowlist_parse(core_config_get(cfg, "http_client", "allow"),
                              &hc_allow, err, sizeof err)) {
        core_log(PLX_LOG_ERROR, "config", NULL, "http_client.allow: %s", err);
        return false;
    }
    return true;
}

/* ---- the response ------------------------------------------------------- */

typedef struct hc_header {
    char *name;    /* one allocation: name, NUL, value, NUL */
    char *value;
} hc_header_t;

struct plx_http_resp {
    int          status;
    char        *body;   /* NUL-terminated; never NULL once returned */
    size_t       len, cap;
    hc_header_t  headers[HC_MAX_RESP_HEADERS];
    size_t       nheaders;
    size_t       header_bytes;
};

static void headers_clear(plx_http_resp_t *resp)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        free(resp->headers[i].name);
    resp->nheaders = 0;
    resp->header_bytes = 0;
}

void core_http_resp_free(plx_http_resp_t *resp)
{
    if (!resp)
        return;
    headers_clear(resp);
    free(resp->body);
    free(resp);
}

int core_http_resp_status(const plx_http_resp_t *resp)
{
    return resp ? resp->status : 0;
}

const char *core_http_resp_body(const plx_http_resp_t *resp, size_t *len)
{
    if (len)
        *len = resp ? resp->len : 0;
    return resp ? resp->body : NULL;
}

const char *core_http_resp_header(const plx_http_resp_t *resp,
                                  const char *name)
{
    if (!resp || !name)
        return NULL;
    for (size_t i = resp->nheaders; i-- > 0;)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

/* ---- one call ----------------------------------------------------------- */

typedef struct hc_opts {
    long   connect_ms, first_byte_ms, total_ms;
    size_t max_response;
    int    max_redirects;
    int  (*cancelled)(void *);
    void  *cancel_arg;
    int  (*on_data)(const char *, size_t, void *);
    void  *data_arg;
} hc_opts_t;

typedef struct hc_call {
    plx_module_t    *m;
    hc_opts_t        o;
    plx_http_resp_t *resp;
    size_t           received;      /* body bytes of the final response */
    double           waiting_since; /* > 0: bytes went out, none came back yet */
    bool             refused;       /* the guard refused an address */
    bool             too_large;
    bool             header_overflow;
    bool             stopped;       /* on_data asked to stop */
} hc_call_t;

#define OPT(opts, f, dflt)                                                   \
    ((opts) && (opts)->size >= offsetof(plx_http_opts_t, f) + sizeof((opts)->f) \
     && (opts)->f ? (opts)->f : (dflt))

static bool opts_read(const plx_http_opts_t *opts, hc_opts_t *o)
{
    if (opts && opts->size < sizeof(opts->size))
        return false;
    o->connect_ms = OPT(opts, connect_timeout_ms, 5000L);
    o->first_byte_ms = OPT(opts, first_byte_timeout_ms, 30000L);
    o->total_ms = OPT(opts, total_timeout_ms, 60000L);
    o->max_response = OPT(opts, max_response, (size_t)1024 * 1024);
    o->max_redirects = OPT(opts, max_redirects, 0);
    o->cancelled = OPT(opts, cancelled, NULL);
    o->cancel_arg = OPT(opts, cancel_arg, NULL);
    o->on_data = OPT(opts, on_data, NULL);
    o->data_arg = OPT(opts, data_arg, NULL);
    if (o->max_redirects > HC_MAX_REDIRECTS)
        o->max_redirects = HC_MAX_REDIRECTS;
    return o->connect_ms > 0 && o->first_byte_ms > 0 && o->total_ms > 0 &&
           o->max_redirects >= 0;
}

/* A new response block (a redirect hop or a 1xx) replaces the headers. */
static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    hc_call_t *c = arg;
    size_t len = size * n, end = len;
    plx_http_resp_t *resp = c->resp;

    c->waiting_since = 0;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        headers_clear(resp);
        return len;
    }
    while (end > 0 && (buf[end - 1] == '\r' || buf[end - 1] == '\n'))
        end--;
    char *colon = memchr(buf, ':', end);
    /* the blank line, or an obsolete folded line: nothing to keep */
    if (end == 0 || !colon || colon == buf || buf[0] == ' ' || buf[0] == '\t')
        return len;
    if (resp->nheaders == HC_MAX_RESP_HEADERS ||
        resp->header_bytes + end > HC_MAX_HEADER_BYTES) {
        c->header_overflow = true;
        return 0;
    }

    size_t nlen = (size_t)(colon - buf);
    const char *v = colon + 1, *vend = buf + end;
    while (v < vend && (*v == ' ' || *v == '\t'))
        v++;
    while (vend > v && (vend[-1] == ' ' || vend[-1] == '\t'))
        vend--;
    char *h = malloc(nlen + 1 + (size_t)(vend - v) + 1);
    if (!h)
        return 0;
    memcpy(h, buf, nlen);
    h[nlen] = '\0';
    memcpy(h + nlen + 1, v, (size_t)(vend - v));
    h[nlen + 1 + (vend - v)] = '\0';
    resp->headers[resp->nheaders].name = h;
    resp->headers[resp->nheaders].value = h + nlen + 1;
    resp->nheaders++;
    resp->header_bytes += end;
    return len;
}

static bool body_append(plx_http_resp_t *resp, const char *buf, size_t len,
                        size_t max)
{
    if (resp->len + len + 1 > resp->cap) {
        size_t ncap = resp->cap ? resp->cap : 4096;
        while (ncap < resp->len + len + 1)
            ncap *= 2;
        if (ncap > max + 1)
            ncap = max + 1;
        char *p = realloc(resp->body, ncap);
        if (!p)
            return false;
        resp->body = p;
        resp->cap = ncap;
    }
    memcpy(resp->body + resp->len, buf, len);
    resp->len += len;
    resp->body[resp->len] = '\0';
    return true;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
    hc_call_t *c = arg;
    size_t len = size * n;

    c->waiting_since = 0;
    if (len > c->o.max_response - c->received) {
        c->too_large = true;
        return 0;
    }
    c->received += len;
    if (c->o.on_data) {
        if (c->o.on_data(buf, len, c->o.data_arg) != 0) {
            c->stopped = true;
            return 0;
        }
        return len;
    }
    return body_append(c->resp, buf, len, c->o.max_response) ? len : 0;
}

/* The first-byte clock: it starts when request bytes go out (headers,
 * then each piece of the body) and stops at the first byte back. */
static int on_debug(CURL *h, curl_infotype type, char *data, size_t size,
                    void *arg)
{
    hc_call_t *c = arg;

    (void)h;
    (void)data;
    (void)size;
    if (type == CURLINFO_HEADER_OUT || type == CURLINFO_DATA_OUT)
        c->waiting_since = core_now();
    return 0;
}

/* The guard: only here does a socket come to exist. */
static curl_socket_t on_open(void *arg, curlsocktype purpose,
                             struct curl_sockaddr *sa)
{
    hc_call_t *c = arg;
    core_addr_t a;
    char text[46];

    if (purpose != CURLSOCKTYPE_IPCXN ||
        !core_addr_from_sockaddr(&sa->addr, sa->addrlen, &a)) {
        c->refused = true;
        core_log(PLX_LOG_WARN, c->m->name, NULL,
                 "outbound connection refused: not an IPv4 or IPv6 address");
        return CURL_SOCKET_BAD;
    }
    core_addr_class_t cls = core_addr_classify(&a);
    if (cls != CORE_ADDR_PUBLIC && !core_allowlist_match(&hc_allow, &a)) {
        c->refused = true;
        core_addr_format(&a, text);
        core_log(PLX_LOG_WARN, c->m->name, NULL,
                 "outbound connection to %s refused: a %s address, not in "
                 "[http_client] allow", text, core_addr_class_str(cls));
        return CURL_SOCKET_BAD;
    }
    return socket(sa->family, sa->socktype | SOCK_CLOEXEC, sa->protocol);
}

static bool method_ok(const char *m)
{
    size_t n = strlen(m);

    if (n == 0 || n > HC_MAX_METHOD)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(m[i] >= 'A' && m[i] <= 'Z'))
            return false;
    return true;
}

/* http or https with a host; host_out gets the host for log lines (the
 * rest of a URL may carry credentials). */
static bool url_ok(const char *url, char *host_out, size_t host_cap)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL;
    bool ok = u && strnlen(url, HC_MAX_URL + 1) <= HC_MAX_URL &&
        curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
        (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0);

    if (ok)
        snprintf(host_out, host_cap, "%s", host);
    curl_free(scheme);
    curl_free(host);
    curl_url_cleanup(u);
    return ok;
}

/* "Name: value" lines without CR or LF (which would forge more headers) */
static bool headers_build(const char *const *headers, struct curl_slist **out)
{
    struct curl_slist *l = NULL, *t;
    size_t i = 0;

    for (; headers && headers[i]; i++) {
        const char *h = headers[i], *colon = strchr(h, ':');
        if (i == HC_MAX_REQ_HEADERS || !colon || colon == h ||
            strpbrk(h, "\r\n") || strlen(h) > HC_MAX_HEADER_BYTES)
            goto bad;
        if (!(t = curl_slist_append(l, h)))
            goto bad;
        l = t;
    }
    /* no "Expect: 100-continue" pause before a body */
    if (!(t = curl_slist_append(l, "Expect:")))
        goto bad;
    *out = t;
    return true;
bad:
    curl_slist_free_all(l);
    return false;
}

static void set_method(CURL *h, const char *method, const void *body,
                       size_t len)
{
    bool get = strcmp(method, "GET") == 0;

    /* a body makes libcurl say POST unless told otherwise */
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(method, "POST") != 0 && (!get || body))
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body || strcmp(method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
    }
}

static void set_options(CURL *h, hc_call_t *c, const char *url,
                        struct curl_slist *hl, char *errbuf)
{
    const hc_opts_t *o = &c->o;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->connect_ms);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->total_ms);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, o->max_redirects > 0 ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)o->max_redirects);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_response);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "plexus/" PACKAGE_VERSION);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, c);
    /* the debug callback is how the first-byte clock learns that request
     * bytes went out; it prints nothing */
    curl_easy_setopt(h, CURLOPT_DEBUGFUNCTION, on_debug);
    curl_easy_setopt(h, CURLOPT_DEBUGDATA, c);
    curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
}

typedef enum hc_end {
    HC_DONE = 0,
    HC_CANCELLED,
    HC_FIRST_BYTE,
    HC_BROKEN
} hc_end_t;

/* Drive the transfer, waking every HC_POLL_MS at the latest. */
static hc_end_t run(CURLM *multi, hc_call_t *c, CURLcode *rc)
{
    int running = 1;

    *rc = CURLE_OK;
    while (running) {
        if (c->o.cancelled && c->o.cancelled(c->o.cancel_arg))
            return HC_CANCELLED;
        if (curl_multi_perform(multi, &running) != CURLM_OK)
            return HC_BROKEN;
        if (!running)
            break;
        if (c->waiting_since > 0 &&
            (core_now() - c->waiting_since) * 1000.0 > (double)c->o.first_byte_ms)
            return HC_FIRST_BYTE;
        if (curl_multi_poll(multi, NULL, 0, HC_POLL_MS, NULL) != CURLM_OK)
            return HC_BROKEN;
    }
    int left;
    CURLMsg *msg = curl_multi_info_read(multi, &left);
    if (!msg || msg->msg != CURLMSG_DONE)
        return HC_BROKEN;
    *rc = msg->data.result;
    return HC_DONE;
}

static plx_status_t call_status(const hc_call_t *c, hc_end_t end, CURLcode rc)
{
    switch (end) {
    case HC_CANCELLED: return PLX_ERR_GONE;
    case HC_FIRST_BYTE: return PLX_ERR_TIMEOUT;
    case HC_BROKEN: return PLX_ERR_INTERNAL;
    case HC_DONE: break;
    }
    if (c->stopped)
        return PLX_ERR_GONE;
    if (c->too_large || rc == CURLE_FILESIZE_EXCEEDED)
        return PLX_ERR_TOO_LARGE;
    if (c->header_overflow)
        return PLX_ERR_UPSTREAM;
    if (rc == CURLE_OK)
        return PLX_OK;
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return PLX_ERR_TIMEOUT;
    if (c->refused && rc == CURLE_COULDNT_CONNECT)
        return PLX_ERR_FORBIDDEN;
    if (rc == CURLE_OUT_OF_MEMORY)
        return PLX_ERR_NOMEM;
    return PLX_ERR_UPSTREAM;
}

static void log_failure(const hc_call_t *c, const char *method,
                        const char *host, plx_status_t st, CURLcode rc,
                        const char *errbuf)
{
    const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);

    if (st == PLX_ERR_GONE)
        return;   /* the caller asked for it */
    if (c->header_overflow)
        why = "the response headers exceed their bound";
    else if (st == PLX_ERR_TOO_LARGE)
        why = "the response exceeds max_response";
    else if (st == PLX_ERR_TIMEOUT && rc == CURLE_OK)
        why = "no answer within first_byte_timeout_ms";
    core_log(PLX_LOG_INFO, c->m->name, NULL,
             "outbound %s to host \"%s\" failed (%s): %s", method, host,
             core_status_str(st), why);
}

plx_status_t core_http_request(plx_module_t *m, const char *method,
                               const char *url, const char *const *headers,
                               const void *body, size_t len,
                               const plx_http_opts_t *opts,
                               plx_http_resp_t **out)
{
    hc_call_t c = { .m = m };
    char host[256], errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *hl = NULL;

    if (out)
        *out = NULL;
    if (!method)
        method = "GET";
    if (!m || !url || !out || (len && !body) || !opts_read(opts, &c.o) ||
        !method_ok(method) || !url_ok(url, host, sizeof host) ||
        !headers_build(headers, &hl))
        return PLX_ERR_INVALID;

    CURL *h = curl_easy_init();
    CURLM *multi = curl_multi_init();
    c.resp = calloc(1, sizeof *c.resp);
    if (!h || !multi || !c.resp || !(c.resp->body = calloc(1, 1)) ||
        curl_multi_add_handle(multi, h) != CURLM_OK) {
        curl_multi_cleanup(multi);
        curl_easy_cleanup(h);
        curl_slist_free_all(hl);
        core_http_resp_free(c.resp);
        return PLX_ERR_NOMEM;
    }
    c.resp->cap = 1;
    set_options(h, &c, url, hl, errbuf);
    set_method(h, method, body, len);

    CURLcode rc;
    hc_end_t end = run(multi, &c, &rc);
    plx_status_t st = call_status(&c, end, rc);
    long code = 0;

    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_multi_remove_handle(multi, h);
    curl_easy_cleanup(h);
    curl_multi_cleanup(multi);
    curl_slist_free_all(hl);
    if (st != PLX_OK) {
        if (st != PLX_ERR_FORBIDDEN)   /* the guard has logged already */
            log_failure(&c, method, host, st, rc, errbuf);
        core_http_resp_free(c.resp);
        return st;
    }
    c.resp->status = (int)code;
    *out = c.resp;
    return PLX_OK;
}
