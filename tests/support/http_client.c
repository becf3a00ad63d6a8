/*
 * http_client.c - the tests' HTTP clients
 *
 * plxt_http*: one request with libcurl, the whole response in memory, the
 * headers of the final response kept for lookup. A fresh easy handle per
 * request (no connection reuse between assertions), proxies from the
 * environment ignored, timeouts always set, bodies bounded.
 *
 * plxt_stream_*: a raw HTTP/1.1 client that reads the response as it comes
 * (chunked or not), so Server-Sent Events can be checked event by event, a
 * client can hang up mid-stream, and the exact bytes on the wire are kept
 * for framing checks. libcurl could do this only through callbacks that
 * invert the test's control flow.
 */
#include "config.h"
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define BODY_MAX        (16u << 20)
#define HEADERS_MAX     128
#define HEAD_BYTES_MAX  (64u << 10)
#define CONNECT_MS      5000
#define DEFAULT_MS      30000

/* ---- libcurl: one request, the whole response ------------------------------ */

typedef struct collect {
    plxt_resp_t *resp;
    size_t       cap;
    size_t       max;       /* stop after this many body bytes */
    bool         stopped;   /* max reached: the transfer was cut on purpose */
} collect_t;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_setup(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    collect_t *c = arg;
    plxt_resp_t *r = c->resp;
    size_t n = size * nmemb;

    if (c->max && r->body_len + n >= c->max) {
        n = c->max - r->body_len;
        c->stopped = true;
    }
    if (r->body_len + n + 1 > c->cap) {
        size_t cap = (r->body_len + n + 1) * 2;
        char *p = realloc(r->body, cap);
        if (!p)
            return 0;
        r->body = p;
        c->cap = cap;
    }
    memcpy(r->body + r->body_len, data, n);
    r->body_len += n;
    r->body[r->body_len] = '\0';
    return c->stopped ? 0 : size * nmemb;
}

static void headers_clear(plxt_resp_t *r)
{
    for (size_t i = 0; i < r->nheaders; i++) {
        free(r->headers[i].name);
        free(r->headers[i].value);
    }
    r->nheaders = 0;
}

static char *trimmed_dup(const char *p, size_t n)
{
    while (n && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' '))
        n--;
    return strndup(p, n);
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
    plxt_resp_t *r = ((collect_t *)arg)->resp;
    size_t n = size * nmemb;
    const char *colon = memchr(data, ':', n);

    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        headers_clear(r);   /* a new response (after 100 Continue) */
        return n;
    }
    if (!colon || r->nheaders >= HEADERS_MAX)
        return n;
    if (!r->headers && !(r->headers = calloc(HEADERS_MAX, sizeof *r->headers)))
        return 0;
    r->headers[r->nheaders].name = trimmed_dup(data, (size_t)(colon - data));
    r->headers[r->nheaders].value = trimmed_dup(colon + 1, n - (size_t)(colon - data) - 1);
    r->nheaders++;
    return n;
}

static struct curl_slist *header_list(const char *const *headers)
{
    struct curl_slist *list = NULL;

    for (; headers && *headers; headers++)
        list = curl_slist_append(list, *headers);
    return list;
}

static void set_method(CURL *h, const plxt_req_t *req)
{
    const char *m = req->method ? req->method : "GET";

    if (req->body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
                         (curl_off_t)(req->body_len ? req->body_len : strlen(req->body)));
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req->body);
    }
    if (strcmp(m, "HEAD") == 0)
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    else if (strcmp(m, req->body ? "POST" : "GET") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
}

int plxt_http_req(const plxt_req_t *req, plxt_resp_t *resp)
{
    collect_t c = { .resp = resp, .max = req->max_recv ? req->max_recv : BODY_MAX };
    struct curl_slist *hl;
    CURL *h;
    CURLcode rc;

    memset(resp, 0, sizeof *resp);
    pthread_once(&curl_once, curl_setup);
    h = curl_easy_init();
    if (!h) {
        snprintf(resp->error, sizeof resp->error, "curl_easy_init failed");
        resp->curl_code = -1;
        return -1;
    }
    hl = header_list(req->headers);
    curl_easy_setopt(h, CURLOPT_URL, req->url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROXY, "");
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_MS);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)(req->timeout_ms > 0 ? req->timeout_ms : DEFAULT_MS));
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &c);
    set_method(h, req);

    rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_easy_getinfo(h, CURLINFO_TOTAL_TIME, &resp->seconds);
    if (!resp->body && (resp->body = calloc(1, 1)) == NULL)
        rc = CURLE_OUT_OF_MEMORY;
    if (rc == CURLE_WRITE_ERROR && c.stopped)
        rc = CURLE_OK;   /* cut on purpose after max_recv bytes */
    resp->curl_code = (int)rc;
    if (rc != CURLE_OK)
        snprintf(resp->error, sizeof resp->error, "%s", curl_easy_strerror(rc));
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return resp->status > 0 && (rc == CURLE_OK || resp->body_len > 0) ? 0 : -1;
}

int plxt_http(const char *method, const char *url, const char *const *headers,
              const char *body, plxt_resp_t *resp)
{
    plxt_req_t req = { .method = method, .url = url, .headers = headers,
                       .body = body };

    return plxt_http_req(&req, resp);
}

int plxt_get(const plxt_server_t *s, const char *path, plxt_resp_t *resp)
{
    char url[2048];

    snprintf(url, sizeof url, "%s%s", s->url, path);
    return plxt_http("GET", url, NULL, NULL, resp);
}

const char *plxt_resp_header(const plxt_resp_t *resp, const char *name)
{
    for (size_t i = 0; i < resp->nheaders; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

json_t *plxt_resp_json(const plxt_resp_t *resp)
{
    if (!resp->body)
        return NULL;
    return json_loadb(resp->body, resp->body_len, JSON_REJECT_DUPLICATES, NULL);
}

bool plxt_resp_type_is(const plxt_resp_t *resp, const char *type)
{
    const char *ct = plxt_resp_header(resp, "Content-Type");
    size_t n = strlen(type);

    return ct && strncasecmp(ct, type, n) == 0
           && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

bool plxt_token_in(const char *value, const char *token)
{
    size_t n = strlen(token);

    while (value && *value) {
        const char *end = strchr(value, ',');
        size_t len = end ? (size_t)(end - value) : strlen(value);
        while (len && (*value == ' ' || *value == '\t')) {
            value++;
            len--;
        }
        while (len && (value[len - 1] == ' ' || value[len - 1] == '\t'))
            len--;
        if (len == n && strncasecmp(value, token, n) == 0)
            return true;
        value = end ? end + 1 : NULL;
    }
    return false;
}

void plxt_resp_free(plxt_resp_t *resp)
{
    headers_clear(resp);
    free(resp->headers);
    free(resp->body);
    memset(resp, 0, sizeof *resp);
}

/* ---- raw stream client ------------------------------------------------------- */

typedef enum body_mode { BODY_CLOSE, BODY_LENGTH, BODY_CHUNKED } body_mode_t;
typedef enum chunk_state { CH_SIZE, CH_DATA, CH_DATA_END, CH_TRAILER } chunk_state_t;

struct plxt_stream {
    int            fd;
    int            status;
    plxt_header_t  headers[HEADERS_MAX];
    size_t         nheaders;
    body_mode_t    mode;
    long long      remaining;   /* LENGTH: bytes left; CHUNKED: of this chunk */
    chunk_state_t  cstate;
    char          *in;          /* bytes read, not yet decoded */
    size_t         in_len, in_cap;
    char          *body;        /* decoded body so far (all of it) */
    size_t         body_len, body_cap;
    size_t         rpos;        /* how far the reader has consumed body */
    bool           ended;       /* the body ended cleanly */
    bool           eof;         /* the peer closed */
    bool           timed_out;
};

static int buf_append(char **buf, size_t *len, size_t *cap, const char *p,
                      size_t n)
{
    if (*len + n + 1 > BODY_MAX)
        return -1;
    if (*len + n + 1 > *cap) {
        size_t c = (*len + n + 1) * 2;
        char *q = realloc(*buf, c);
        if (!q)
            return -1;
        *buf = q;
        *cap = c;
    }
    memcpy(*buf + *len, p, n);
    *len += n;
    (*buf)[*len] = '\0';
    return 0;
}

static void in_consume(plxt_stream_t *st, size_t n)
{
    memmove(st->in, st->in + n, st->in_len - n);
    st->in_len -= n;
}

/* read more raw bytes: >0, 0 peer closed, -1 error or timeout */
static long fill(plxt_stream_t *st, int timeout_ms)
{
    char buf[16384];
    long n = plxt_sock_recv(st->fd, buf, sizeof buf, timeout_ms);

    if (n < 0 && errno == ETIMEDOUT)
        st->timed_out = true;
    if (n == 0)
        st->eof = true;
    if (n > 0 && buf_append(&st->in, &st->in_len, &st->in_cap, buf, (size_t)n) != 0)
        return -1;
    return n;
}

/* take a line ending in \n from in: its length without CRLF, or -1 */
static long in_line(plxt_stream_t *st, char *out, size_t outlen)
{
    char *nl = st->in_len ? memchr(st->in, '\n', st->in_len) : NULL;
    size_t n;

    if (!nl)
        return -1;
    n = (size_t)(nl - st->in);
    if (n && st->in[n - 1] == '\r')
        n--;
    snprintf(out, outlen, "%.*s", (int)n, st->in);
    in_consume(st, (size_t)(nl - st->in) + 1);
    return (long)n;
}

static int decode_chunked(plxt_stream_t *st)
{
    char line[256];

    for (;;) {
        if (st->cstate == CH_SIZE) {
            if (in_line(st, line, sizeof line) < 0)
                return 0;
            st->remaining = strtoll(line, NULL, 16);
            st->cstate = st->remaining > 0 ? CH_DATA : CH_TRAILER;
        } else if (st->cstate == CH_DATA) {
            size_t n = st->in_len < (size_t)st->remaining ? st->in_len : (size_t)st->remaining;
            if (n == 0)
                return 0;
            if (buf_append(&st->body, &st->body_len, &st->body_cap, st->in, n) != 0)
                return -1;
            in_consume(st, n);
            st->remaining -= (long long)n;
            if (st->remaining == 0)
                st->cstate = CH_DATA_END;
        } else if (st->cstate == CH_DATA_END) {
            if (in_line(st, line, sizeof line) < 0)
                return 0;
            st->cstate = CH_SIZE;
        } else {
            long n = in_line(st, line, sizeof line);
            if (n < 0)
                return 0;
            if (n == 0) {
                st->ended = true;
                return 0;
            }
        }
    }
}

/* move what can be decoded from in to body */
static int decode(plxt_stream_t *st)
{
    size_t n;

    if (st->ended)
        return 0;
    switch (st->mode) {
    case BODY_CHUNKED:
        return decode_chunked(st);
    case BODY_LENGTH:
        n = st->in_len < (size_t)st->remaining ? st->in_len : (size_t)st->remaining;
        if (n && buf_append(&st->body, &st->body_len, &st->body_cap, st->in, n) != 0)
            return -1;
        in_consume(st, n);
        st->remaining -= (long long)n;
        st->ended = st->remaining == 0;
        return 0;
    default:
        if (st->in_len
            && buf_append(&st->body, &st->body_len, &st->body_cap, st->in, st->in_len) != 0)
            return -1;
        st->in_len = 0;
        st->ended = st->eof;
        return 0;
    }
}

static void parse_head_line(plxt_stream_t *st, const char *line)
{
    const char *colon = strchr(line, ':');

    if (strncmp(line, "HTTP/", 5) == 0) {
        const char *sp = strchr(line, ' ');
        st->status = sp ? atoi(sp + 1) : 0;
        return;
    }
    if (!colon || st->nheaders >= HEADERS_MAX)
        return;
    st->headers[st->nheaders].name = trimmed_dup(line, (size_t)(colon - line));
    st->headers[st->nheaders].value = trimmed_dup(colon + 1, strlen(colon + 1));
    st->nheaders++;
}

/* does a comma list of tokens hold tok (case-insensitive)? */
static bool has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);

    for (const char *p = list; *p; p++)
        if (strncasecmp(p, tok, n) == 0)
            return true;
    return false;
}

static void choose_mode(plxt_stream_t *st)
{
    const char *te = plxt_stream_header(st, "Transfer-Encoding");
    const char *cl = plxt_stream_header(st, "Content-Length");

    if (te && has_token(te, "chunked")) {
        st->mode = BODY_CHUNKED;
        st->cstate = CH_SIZE;
    } else if (cl) {
        st->mode = BODY_LENGTH;
        st->remaining = atoll(cl);
        st->ended = st->remaining == 0;
    } else {
        st->mode = BODY_CLOSE;
    }
}

/* status line and headers; 0 or -1 */
static int read_head(plxt_stream_t *st, int timeout_ms)
{
    double deadline = plxt_now_ms() + timeout_ms;
    char line[8192];
    long n;

    for (;;) {
        while ((n = in_line(st, line, sizeof line)) > 0)
            parse_head_line(st, line);
        if (n == 0)
            break;   /* the empty line: headers done */
        int left = (int)(deadline - plxt_now_ms());
        if (left <= 0 || st->in_len > HEAD_BYTES_MAX || fill(st, left) <= 0)
            return -1;
    }
    if (st->status == 100) {   /* an interim response: the real one follows */
        for (size_t i = 0; i < st->nheaders; i++) {
            free(st->headers[i].name);
            free(st->headers[i].value);
        }
        st->nheaders = 0;
        st->status = 0;
        return read_head(st, (int)(deadline - plxt_now_ms()));
    }
    choose_mode(st);
    return decode(st);
}

plxt_stream_t *plxt_stream_open(const char *base_url, const char *path,
                                const char *const *headers, int timeout_ms)
{
    return plxt_stream_request(base_url, "GET", path, headers, NULL, timeout_ms);
}

plxt_stream_t *plxt_stream_request(const char *base_url, const char *method,
                                   const char *path, const char *const *headers,
                                   const char *body, int timeout_ms)
{
    char host[64], req[8192];
    int port, len;
    bool has_accept = false;
    plxt_stream_t *st;

    if (plxt_url_split(base_url, host, &port, NULL) != 0)
        return NULL;
    st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->fd = plxt_tcp_connect(host, port, timeout_ms);
    if (st->fd < 0) {
        free(st);
        return NULL;
    }
    len = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: %s:%d\r\n", method, path,
                   host, port);
    if (body && len < (int)sizeof req)
        len += snprintf(req + len, sizeof req - (size_t)len, "Content-Length: %zu\r\n",
                        strlen(body));
    for (; headers && *headers && len < (int)sizeof req; headers++) {
        has_accept |= strncasecmp(*headers, "Accept:", 7) == 0;
        len += snprintf(req + len, sizeof req - (size_t)len, "%s\r\n", *headers);
    }
    if (len < (int)sizeof req && !has_accept)
        len += snprintf(req + len, sizeof req - (size_t)len, "Accept: text/event-stream\r\n");
    if (len < (int)sizeof req)
        len += snprintf(req + len, sizeof req - (size_t)len, "\r\n");
    if (len >= (int)sizeof req || plxt_sock_send_all(st->fd, req, (size_t)len, timeout_ms) != 0
        || (body && plxt_sock_send_all(st->fd, body, strlen(body), timeout_ms) != 0)
        || read_head(st, timeout_ms) != 0) {
        plxt_stream_close(st);
        return NULL;
    }
    return st;
}

int plxt_stream_status(const plxt_stream_t *st)
{
    return st->status;
}

const char *plxt_stream_header(const plxt_stream_t *st, const char *name)
{
    for (size_t i = 0; i < st->nheaders; i++)
        if (strcasecmp(st->headers[i].name, name) == 0)
            return st->headers[i].value;
    return NULL;
}

/* wait until the body has more than have bytes or it ended; -1 on error */
static int more(plxt_stream_t *st, size_t have, double deadline)
{
    while (st->body_len <= have && !st->ended) {
        int left = (int)(deadline - plxt_now_ms());
        if (left <= 0) {
            st->timed_out = true;
            return -1;
        }
        if (st->eof)
            return -1;   /* closed before the body ended */
        long n = fill(st, left);
        if (n < 0)
            return -1;
        if (decode(st) != 0)
            return -1;
    }
    return 0;
}

long plxt_stream_read(plxt_stream_t *st, char *buf, size_t len, int timeout_ms)
{
    size_t n;

    st->timed_out = false;
    if (more(st, st->rpos, plxt_now_ms() + timeout_ms) != 0)
        return -1;
    n = st->body_len - st->rpos;
    if (n > len)
        n = len;
    memcpy(buf, st->body + st->rpos, n);
    st->rpos += n;
    return (long)n;
}

bool plxt_stream_timed_out(const plxt_stream_t *st)
{
    return st->timed_out;
}

bool plxt_stream_ended(const plxt_stream_t *st)
{
    return st->ended;
}

const char *plxt_stream_raw(const plxt_stream_t *st, size_t *len)
{
    if (len)
        *len = st->body_len;
    return st->body ? st->body : "";
}

/* ---- Server-Sent Events --------------------------------------------------- */

static void sse_field(plxt_sse_event_t *ev, const char *line, size_t n,
                      bool *has_field)
{
    const char *colon = memchr(line, ':', n);
    size_t nlen = colon ? (size_t)(colon - line) : n;
    const char *v = colon ? colon + 1 : line + n;
    size_t vlen = (size_t)(line + n - v);

    if (vlen && *v == ' ') {
        v++;
        vlen--;
    }
    if (nlen == 0) {   /* ":comment" */
        snprintf(ev->comment, sizeof ev->comment, "%.*s", (int)vlen, v);
        return;
    }
    *has_field = true;
    if (nlen == 5 && memcmp(line, "event", 5) == 0) {
        snprintf(ev->event, sizeof ev->event, "%.*s", (int)vlen, v);
    } else if (nlen == 4 && memcmp(line, "data", 4) == 0) {
        /* data lines join with '\n' (WHATWG HTML, "dispatch the event") */
        size_t old = ev->data ? strlen(ev->data) : 0;
        size_t sep = ev->data ? 1 : 0;
        char *d = realloc(ev->data, old + sep + vlen + 1);
        if (!d)
            return;
        if (sep)
            d[old] = '\n';
        memcpy(d + old + sep, v, vlen);
        d[old + sep + vlen] = '\0';
        ev->data = d;
    }
}

/* a block is body[rpos, end): split into lines (LF or CRLF) */
static void sse_parse(plxt_sse_event_t *ev, const char *p, const char *end)
{
    bool has_field = false;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (n && p[n - 1] == '\r')
            n--;
        if (n)
            sse_field(ev, p, n, &has_field);
        p += (nl ? (size_t)(nl - p) + 1 : n);
    }
    ev->is_comment = !has_field;
    if (!ev->data)
        ev->data = strdup("");
}

/* end of the block starting at body+rpos (index after its blank line), or 0 */
static size_t block_end(const plxt_stream_t *st)
{
    for (size_t i = st->rpos; i + 1 < st->body_len; i++) {
        if (st->body[i] != '\n')
            continue;
        if (st->body[i + 1] == '\n')
            return i + 2;
        if (st->body[i + 1] == '\r' && i + 2 < st->body_len && st->body[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

int plxt_sse_next(plxt_stream_t *st, plxt_sse_event_t *ev, int timeout_ms)
{
    double deadline = plxt_now_ms() + timeout_ms;
    size_t end;

    memset(ev, 0, sizeof *ev);
    st->timed_out = false;
    while ((end = block_end(st)) == 0) {
        if (st->ended)
            return 0;
        if (more(st, st->body_len, deadline) != 0)
            return -1;
    }
    sse_parse(ev, st->body + st->rpos, st->body + end);
    st->rpos = end;
    return 1;
}

void plxt_sse_event_free(plxt_sse_event_t *ev)
{
    free(ev->data);
    memset(ev, 0, sizeof *ev);
}

void plxt_stream_close(plxt_stream_t *st)
{
    if (!st)
        return;
    if (st->fd >= 0)
        close(st->fd);
    for (size_t i = 0; i < st->nheaders; i++) {
        free(st->headers[i].name);
        free(st->headers[i].value);
    }
    free(st->in);
    free(st->body);
    free(st);
}
