/*
 * upstream.c - one HTTP exchange with one provider (ai.h, "Upstream
 * calls"): libcurl, timeouts, cancellation, bounds, SSE framing
 *
 * Each call drives its own transfer through the libcurl multi interface,
 * polling at most AI_POLL_MS at a time, so that between two polls it can
 * check what libcurl cannot: the time to the first token, the silence
 * between two chunks, the total time, and whether the caller cancelled.
 * Stopping a transfer removes the easy handle mid-way, which makes libcurl
 * close the connection: the provider sees the client go and stops
 * generating (and billing).
 *
 * Multi handles are kept in a small pool so that their connection caches
 * survive between calls (keep-alive, no new TLS handshake on the next
 * call); DNS and TLS sessions are shared between all of them. Connections
 * themselves are not shared across threads: libcurl does not support that.
 *
 * What the bytes mean is the provider files' business (provider.h).
 */
#include "config.h"

#include "provider.h"
#include "sse_parse.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define AI_POLL_MS        100          /* cancel and timers: checked this often */
#define AI_CANCEL_MS      50           /* ... but the caller asked no more often */
#define AI_ERRBODY_MAX    (64 * 1024)  /* an error answer's body we read */
#define AI_POOL_MAX       32           /* idle multi handles kept */
#define AI_POOL_MAXCONN   4L           /* connections cached per multi handle */
#define AI_DEFAULT_MAX_RESPONSE ((size_t)8 << 20)

enum { MODE_NONE = 0, MODE_SSE, MODE_BODY, MODE_ERROR };

typedef struct xfer {
    const ai_provider_t *p;
    const ai_wire_ops_t *ops;
    const ai_sink_t *sink;
    ai_result_t *res;          /* where messages go (a scratch one for embed) */
    bool want_stream;
    CURL *easy;
    /* the response */
    int mode;
    long status;
    char *body;                /* MODE_BODY and MODE_ERROR, NUL-terminated */
    size_t body_len, body_max;
    bool body_full;            /* an error body stopped at AI_ERRBODY_MAX */
    ai_sse_t sse;
    ai_decode_t dec;
    long hdr_retry_after_ms;   /* Retry-After or retry-after-ms; -1 none */
    int should_retry;          /* x-should-retry: -1 none, 0, 1 */
    /* the clock, ms since an arbitrary point; 0: not yet */
    long long t0, t_sent, t_rx, t_asked;
    bool got_bytes;
    /* why the transfer was stopped (res->message says more) */
    ai_err_t stop;
    char errbuf[CURL_ERROR_SIZE];
} xfer_t;

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long cfg(long v, long def)
{
    return v > 0 ? v : def;
}

static size_t max_response(void)
{
    return ai_cfg.max_response_bytes ? ai_cfg.max_response_bytes
                                     : AI_DEFAULT_MAX_RESPONSE;
}

/* ---- libcurl: one share, a pool of multi handles --------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t share_mu[CURL_LOCK_DATA_LAST];
static CURLSH *share;
static pthread_mutex_t pool_mu = PTHREAD_MUTEX_INITIALIZER;
static CURLM *pool[AI_POOL_MAX];
static size_t npool;

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    (void)h; (void)a; (void)u;
    pthread_mutex_lock(&share_mu[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    (void)h; (void)u;
    pthread_mutex_unlock(&share_mu[d]);
}

static void curl_setup(void)
{
    /* thread-safe in libcurl >= 7.84 and reference counted; the core may
     * have called it already */
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
        pthread_mutex_init(&share_mu[i], NULL);
    if (!(share = curl_share_init()))
        return;
    curl_share_setopt(share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
}

static CURLM *multi_take(void)
{
    CURLM *m = NULL;

    pthread_mutex_lock(&pool_mu);
    if (npool > 0)
        m = pool[--npool];
    pthread_mutex_unlock(&pool_mu);
    if (!m && (m = curl_multi_init()))
        curl_multi_setopt(m, CURLMOPT_MAXCONNECTS, AI_POOL_MAXCONN);
    return m;
}

static void multi_give(CURLM *m)
{
    pthread_mutex_lock(&pool_mu);
    if (npool < AI_POOL_MAX) {
        pool[npool++] = m;
        m = NULL;
    }
    pthread_mutex_unlock(&pool_mu);
    if (m)
        curl_multi_cleanup(m);
}

/* ---- response headers ------------------------------------------------------ */

long ai_retry_after_ms(const char *v)
{
    char *end;
    long s = strtol(v, &end, 10);
    time_t t;

    if (end != v && *end == '\0' && s >= 0)
        return s > 86400 ? 86400000L : s * 1000;
    if ((t = curl_getdate(v, NULL)) < 0)
        return -1;
    t -= time(NULL);
    return t <= 0 ? 0 : t > 86400 ? 86400000L : (long)t * 1000;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud)
{
    xfer_t *x = ud;
    size_t len = size * n, nlen;
    char line[256], *v;

    if (len >= sizeof line)
        return len;
    memcpy(line, buf, len);
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == '\n'))
        len--;
    line[len] = '\0';
    if (!strncmp(line, "HTTP/", 5)) {      /* a new response: forget the last */
        x->hdr_retry_after_ms = -1;
        x->should_retry = -1;
        return size * n;
    }
    if (!(v = strchr(line, ':')))
        return size * n;
    nlen = (size_t)(v - line);
    for (v++; *v == ' ' || *v == '\t'; v++)
        ;
    if (nlen == 14 && !strncasecmp(line, "retry-after-ms", 14)) {
        double ms = strtod(v, NULL);
        if (ms >= 0 && ms < 86400000.0)
            x->hdr_retry_after_ms = (long)(ms + 0.999);
    } else if (nlen == 11 && !strncasecmp(line, "retry-after", 11)) {
        long ms = ai_retry_after_ms(v);
        /* retry-after-ms, when both come, is the finer one */
        if (ms >= 0 && x->hdr_retry_after_ms < 0)
            x->hdr_retry_after_ms = ms;
    } else if (nlen == 14 && !strncasecmp(line, "x-should-retry", 14)) {
        x->should_retry = !strcasecmp(v, "true") ? 1
                        : !strcasecmp(v, "false") ? 0 : -1;
    }
    return size * n;
}

/* ---- response body --------------------------------------------------------- */

static void stop(xfer_t *x, ai_err_t err, const char *fmt, ...) PLX_PRINTF(3, 4);
static void stop(xfer_t *x, ai_err_t err, const char *fmt, ...)
{
    va_list ap;

    if (x->stop != AI_OK)
        return;
    x->stop = err;
    va_start(ap, fmt);
    vsnprintf(x->res->message, sizeof x->res->message, fmt, ap);
    va_end(ap);
}

static void pick_mode(xfer_t *x)
{
    const char *ctype = NULL;

    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ctype);
    if (x->status < 200 || x->status > 299) {
        x->mode = MODE_ERROR;
        x->body_max = AI_ERRBODY_MAX;
    } else if (x->want_stream
               && !(ctype && !strncasecmp(ctype, "application/json", 16))) {
        x->mode = MODE_SSE;
    } else {
        /* a whole body, also when a server ignored "stream" */
        x->mode = MODE_BODY;
        x->body_max = max_response();
    }
}

static size_t body_append(xfer_t *x, const char *buf, size_t n)
{
    char *p;

    if (x->body_len + n > x->body_max) {
        if (x->mode == MODE_ERROR) {
            x->body_full = true;      /* enough to read the error */
            return 0;
        }
        stop(x, AI_ERR_TOO_LARGE, "provider \"%s\": the reply passed "
             "max_response_bytes (%zu bytes)", x->p->name, x->body_max);
        return 0;
    }
    if (!(p = realloc(x->body, x->body_len + n + 1))) {
        stop(x, AI_ERR_PROTOCOL, "out of memory");
        return 0;
    }
    memcpy(p + x->body_len, buf, n);
    x->body = p;
    x->body_len += n;
    p[x->body_len] = '\0';
    return n;
}

static size_t on_body(char *buf, size_t size, size_t nmemb, void *ud)
{
    xfer_t *x = ud;
    size_t n = size * nmemb;
    int rc;

    x->t_rx = now_ms();
    x->got_bytes = true;
    if (x->mode == MODE_NONE)
        pick_mode(x);
    if (x->mode != MODE_SSE)
        return body_append(x, buf, n);
    if ((rc = ai_sse_feed(&x->sse, buf, n)) == AI_SSE_OK)
        return n;
    if (rc == AI_SSE_TOO_LARGE)
        stop(x, AI_ERR_TOO_LARGE, "provider \"%s\": a stream event passed "
             "max_response_bytes (%zu bytes)", x->p->name, x->sse.max);
    else if (rc == AI_SSE_NOMEM)
        stop(x, AI_ERR_PROTOCOL, "out of memory");
    return 0;                  /* else the decoder stopped it: x->stop set */
}

static int on_event(void *ud, const char *event, const char *data, size_t len)
{
    xfer_t *x = ud;
    ai_err_t err = x->ops->stream_event(&x->dec, event, data, len);

    if (err == AI_OK)
        return 0;
    x->stop = err;             /* res->message set by the decoder */
    return 1;
}

/* the decoder's news of a piece of reply, already in res->text */
static ai_err_t on_text(void *ud, const char *text, size_t len)
{
    xfer_t *x = ud;
    ai_result_t *res = x->res;

    if (!res->started) {
        res->started = true;
        res->ttft_seconds = (double)(now_ms() - (x->t_sent ? x->t_sent : x->t0))
                            / 1000.0;
    }
    if (x->sink && x->sink->delta && !x->sink->delta(x->sink->ud, text, len)) {
        snprintf(res->message, sizeof res->message, "provider \"%s\": "
                 "cancelled by the caller", x->p->name);
        return res->err = AI_ERR_CANCELLED;
    }
    return AI_OK;
}

/* ---- the transfer ---------------------------------------------------------- */

#if LIBCURL_VERSION_NUM >= 0x075000
/* the connection is up (new or reused) and the request about to go: the
 * first-token timer starts here */
static int on_prereq(void *ud, char *conn_ip, char *local_ip, int conn_port,
                     int local_port)
{
    xfer_t *x = ud;

    (void)conn_ip; (void)local_ip; (void)conn_port; (void)local_port;
    x->t_sent = now_ms();
    return CURL_PREREQFUNC_OK;
}
#endif

/* without a prereq callback (libcurl < 7.80): the pretransfer time */
static void note_sent(xfer_t *x)
{
    curl_off_t us = 0;

    if (x->t_sent == 0
        && curl_easy_getinfo(x->easy, CURLINFO_PRETRANSFER_TIME_T, &us) == CURLE_OK
        && us > 0)
        x->t_sent = x->t0 + us / 1000;
}

static struct curl_slist *header_list(const ai_http_t *h, bool stream)
{
    struct curl_slist *l = NULL, *n;
    const char *fixed[] = {
        stream ? "Accept: text/event-stream" : "Accept: application/json",
        "Expect:",              /* no 100-continue round trip */
    };

    for (size_t i = 0; i < h->nheaders + 2; i++) {
        const char *line = i < h->nheaders ? h->headers[i] : fixed[i - h->nheaders];
        if (!(n = curl_slist_append(l, line))) {
            curl_slist_free_all(l);
            return NULL;
        }
        l = n;
    }
    return l;
}

static bool easy_setup(xfer_t *x, const ai_http_t *h, struct curl_slist *hdrs)
{
    CURL *e = x->easy;

    return curl_easy_setopt(e, CURLOPT_URL, h->url) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_POSTFIELDS, h->body) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t)strlen(h->body)) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_WRITEDATA, x) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_HEADERDATA, x) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                            cfg(ai_cfg.connect_timeout_ms, 5000)) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK
#if LIBCURL_VERSION_NUM >= 0x075500
        && curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK
#endif
        && curl_easy_setopt(e, CURLOPT_USERAGENT, "plexus/" PACKAGE_VERSION)
               == CURLE_OK
#if LIBCURL_VERSION_NUM >= 0x075000
        && curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_prereq) == CURLE_OK
        && curl_easy_setopt(e, CURLOPT_PREREQDATA, x) == CURLE_OK
#endif
        && (!share || curl_easy_setopt(e, CURLOPT_SHARE, share) == CURLE_OK);
}

/* true when a timer ran out or the caller cancelled (x->stop set) */
static bool expired(xfer_t *x)
{
    long long now = now_ms();
    long total = cfg(ai_cfg.total_timeout_ms, 600000);
    long first = cfg(ai_cfg.first_token_timeout_ms, 60000);
    long idle = cfg(ai_cfg.idle_timeout_ms, 30000);
    bool waiting = x->mode == MODE_SSE ? !x->dec.progress : !x->got_bytes;

    /* a fast stream wakes the loop often: the caller's check may write to
     * its client, so it is asked at most every AI_CANCEL_MS */
    if (x->sink && x->sink->cancelled && now - x->t_asked >= AI_CANCEL_MS) {
        x->t_asked = now;
        if (x->sink->cancelled(x->sink->ud))
            stop(x, AI_ERR_CANCELLED, "provider \"%s\": cancelled by the "
                 "caller", x->p->name);
    }
    if (x->stop != AI_OK)
        return true;
    if (now - x->t0 >= total)
        stop(x, AI_ERR_TIMEOUT, "provider \"%s\": no complete reply within "
             "total_timeout_ms (%ld ms)", x->p->name, total);
    else if (waiting && x->t_sent && now - x->t_sent >= first)
        stop(x, AI_ERR_TIMEOUT, "provider \"%s\": no first token within "
             "first_token_timeout_ms (%ld ms)", x->p->name, first);
    else if (!waiting && now - x->t_rx >= idle)
        stop(x, AI_ERR_TIMEOUT, "provider \"%s\": nothing received for "
             "idle_timeout_ms (%ld ms)", x->p->name, idle);
    return x->stop != AI_OK;
}

/* runs the transfer to its end or until stopped; libcurl's result */
static CURLcode drive(xfer_t *x, CURLM *m)
{
    CURLcode cc = CURLE_OK;
    CURLMsg *msg;
    int running = 1, left;

    if (curl_multi_add_handle(m, x->easy) != CURLM_OK)
        return CURLE_FAILED_INIT;
    for (;;) {
        if (curl_multi_perform(m, &running) != CURLM_OK) {
            cc = CURLE_FAILED_INIT;
            break;
        }
        note_sent(x);
        if (!running || x->stop != AI_OK || expired(x))
            break;
        if (curl_multi_poll(m, NULL, 0, AI_POLL_MS, NULL) != CURLM_OK) {
            cc = CURLE_FAILED_INIT;
            break;
        }
    }
    while ((msg = curl_multi_info_read(m, &left))) {
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == x->easy)
            cc = msg->data.result;
    }
    if (running && cc == CURLE_OK)
        cc = CURLE_ABORTED_BY_CALLBACK;
    /* mid-transfer, this closes the connection: the provider sees us go */
    curl_multi_remove_handle(m, x->easy);
    return cc;
}

static CURLcode perform(xfer_t *x, const ai_http_t *h)
{
    struct curl_slist *hdrs = NULL;
    CURLcode cc = CURLE_FAILED_INIT;
    CURLM *m = NULL;

    pthread_once(&curl_once, curl_setup);
    x->t0 = now_ms();
    x->hdr_retry_after_ms = -1;
    x->should_retry = -1;
    if (!(x->easy = curl_easy_init()) || !(hdrs = header_list(h, x->want_stream))
        || !easy_setup(x, h, hdrs) || !(m = multi_take()))
        goto out;
    cc = drive(x, m);
    /* an answer without a body byte (a bare 503, an empty 200) */
    if (x->mode == MODE_NONE) {
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status != 0)
            pick_mode(x);
    }
out:
    if (x->easy)
        curl_easy_cleanup(x->easy);
    x->easy = NULL;
    if (m)
        multi_give(m);
    curl_slist_free_all(hdrs);
    return cc;
}

/* ---- outcomes ---------------------------------------------------------------- */

/* no answer at all: why, from libcurl */
static void transport_error(xfer_t *x, CURLcode cc)
{
    const char *why = x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc);
    ai_err_t err = AI_ERR_CONNECT;
    const char *what = "the connection failed";

    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        what = "could not resolve the host";
        break;
    case CURLE_COULDNT_CONNECT:
        what = "could not connect";
        break;
    case CURLE_OPERATION_TIMEDOUT:
        err = AI_ERR_TIMEOUT;
        what = "connect_timeout_ms ran out";
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        what = "TLS verification failed";
        break;
    case CURLE_FAILED_INIT:
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        err = AI_ERR_PROTOCOL;
        what = "the request could not be made";
        break;
    default:
        break;
    }
    x->res->err = err;
    snprintf(x->res->message, sizeof x->res->message, "provider \"%s\": %s "
             "(%s)", x->p->name, what, why);
}

/* an HTTP error answer, by the provider's error table */
static void http_error(xfer_t *x)
{
    ai_httperr_t he = { 0 };

    x->ops->error(x->p, (int)x->status, x->body, x->body_len, &he);
    x->res->err = he.err;
    x->res->retryable = he.retryable;
    if (x->should_retry >= 0)
        x->res->retryable = x->should_retry == 1;
    x->res->retry_after_ms = x->hdr_retry_after_ms >= 0 ? x->hdr_retry_after_ms
                                                        : he.retry_after_ms;
    memcpy(x->res->message, he.message, sizeof he.message);
}

static bool retryable(ai_err_t err)
{
    return err == AI_ERR_RATE || err == AI_ERR_SERVER || err == AI_ERR_CONNECT
           || err == AI_ERR_TIMEOUT || err == AI_ERR_STREAM;
}

/* what every call has in common once the transfer ended: true when a 2xx
 * body or stream is left for the caller to read */
static bool settle(xfer_t *x, CURLcode cc)
{
    ai_result_t *res = x->res;

    res->http_status = (int)x->status;
    if (x->stop != AI_OK) {
        res->err = x->stop;
        res->retryable = retryable(x->stop);
        return false;
    }
    if (x->mode == MODE_ERROR) {
        http_error(x);
        return false;
    }
    if (x->mode == MODE_NONE && cc != CURLE_OK) {
        transport_error(x, cc);
        res->retryable = retryable(res->err)
                         && cc != CURLE_PEER_FAILED_VERIFICATION;
        return false;
    }
    return true;
}

static plx_status_t status_of(ai_err_t err)
{
    switch (err) {
    case AI_OK:            return PLX_OK;
    case AI_ERR_TIMEOUT:   return PLX_ERR_TIMEOUT;
    case AI_ERR_CANCELLED: return PLX_ERR_GONE;
    case AI_ERR_CLIENT:    return PLX_ERR_INVALID;
    case AI_ERR_TOO_LARGE: return PLX_ERR_TOO_LARGE;
    default:               return PLX_ERR_UPSTREAM;
    }
}

/* ---- chat -------------------------------------------------------------------- */

/* a whole body (asked for, or a server that would not stream) */
static void chat_body(xfer_t *x, CURLcode cc)
{
    ai_result_t *res = x->res;

    if (cc != CURLE_OK) {
        res->err = AI_ERR_CONNECT;
        res->retryable = true;
        snprintf(res->message, sizeof res->message, "provider \"%s\": the "
                 "connection broke while reading the reply (%s)", x->p->name,
                 x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
        return;
    }
    x->dec.on_text = NULL;         /* the sink gets the whole text below */
    if ((res->err = x->ops->chat_response(&x->dec, x->body ? x->body : "",
                                          x->body_len)) != AI_OK) {
        res->retryable = retryable(res->err);
        return;
    }
    if (res->text_len > 0)
        on_text(x, res->text, res->text_len);
    res->err = AI_OK;               /* whole already: nothing left to cancel */
}

static void chat_stream_end(xfer_t *x, CURLcode cc)
{
    ai_result_t *res = x->res;

    if (x->dec.done) {
        res->err = AI_OK;
        return;
    }
    res->err = AI_ERR_STREAM;
    res->retryable = true;
    snprintf(res->message, sizeof res->message, "provider \"%s\": the stream "
             "ended before its end, after %zu bytes of reply (%s)", x->p->name,
             res->text_len, cc == CURLE_OK ? "closed by the provider"
             : x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
}

static bool chat_args_ok(const ai_provider_t *p, const char *model,
                         const ai_chat_params_t *q, ai_result_t *res)
{
    const char *why = NULL;

    if (!p || !model || !*model)
        why = "no provider or no model";
    else if (!q || !json_is_array(q->messages) || !json_array_size(q->messages))
        why = "no messages";
    else if (q->max_tokens <= 0)
        why = "max_tokens must be positive";
    if (!why)
        return true;
    res->err = AI_ERR_CLIENT;
    snprintf(res->message, sizeof res->message, "%s", why);
    return false;
}

static void finish_message(xfer_t *x)
{
    ai_result_t *res = x->res;

    if (res->err == AI_OK)
        snprintf(res->message, sizeof res->message, "provider \"%s\": %s "
                 "reply of %zu bytes, finish_reason %s", x->p->name,
                 x->want_stream ? "streamed" : "whole", res->text_len,
                 res->finish_reason[0] ? res->finish_reason : "none");
    if (res->started)
        res->retryable = false;
    /* what a provider said before failing is a part, not the count */
    if (res->err != AI_OK)
        res->usage.known = false;
}

plx_status_t ai_upstream_chat(const ai_provider_t *p, const char *upstream_model,
                              const ai_chat_params_t *q, bool stream,
                              const ai_sink_t *sink, ai_result_t *res)
{
    ai_http_t h = { 0 };
    xfer_t x = { 0 };
    CURLcode cc;

    ai_result_clear(res);
    res->retry_after_ms = -1;
    res->ttft_seconds = -1;
    if (!chat_args_ok(p, upstream_model, q, res))
        return PLX_ERR_INVALID;
    x.p = p;
    x.ops = ai_wire_ops(p->kind);
    x.sink = sink;
    x.res = res;
    x.want_stream = stream;
    x.dec = (ai_decode_t){ .p = p, .res = res, .max_text = max_response(),
                           .on_text = on_text, .ud = &x };
    if ((res->err = x.ops->chat_request(p, upstream_model, q, stream, &h,
                                        res->message, sizeof res->message))) {
        ai_http_free(&h);
        return status_of(res->err);
    }
    ai_sse_init(&x.sse, max_response(), on_event, &x);
    cc = perform(&x, &h);
    if (settle(&x, cc)) {
        if (x.mode == MODE_SSE)
            chat_stream_end(&x, cc);
        else
            chat_body(&x, cc);
    }
    finish_message(&x);
    ai_sse_free(&x.sse);
    free(x.body);
    ai_http_free(&h);
    return status_of(res->err);
}

void ai_result_clear(ai_result_t *res)
{
    if (!res)
        return;
    free(res->text);
    json_decref(res->tool_calls);
    memset(res, 0, sizeof *res);
}

/* ---- embeddings -------------------------------------------------------------- */

static bool embed_args_ok(const ai_provider_t *p, const char *model,
                          const char *const *inputs, size_t n,
                          ai_embed_result_t *res)
{
    const char *why = NULL;

    if (!p || !model || !*model)
        why = "no provider or no model";
    else if (!inputs || n == 0 || n > 2048)
        why = "from 1 to 2048 inputs are needed";
    for (size_t i = 0; !why && i < n; i++) {
        if (!inputs[i] || !*inputs[i])
            why = "an input is empty";
    }
    if (!why)
        return true;
    res->err = AI_ERR_CLIENT;
    snprintf(res->message, sizeof res->message, "%s", why);
    return false;
}

/* the usage when the provider reports none: the estimate of each input */
static void embed_estimate(ai_embed_result_t *res, const char *const *inputs,
                           size_t n)
{
    if (res->usage.known)
        return;
    res->usage.prompt_tokens = 0;
    for (size_t i = 0; i < n; i++)
        res->usage.prompt_tokens += ai_estimate_tokens(inputs[i],
                                                       strlen(inputs[i]));
}

static void embed_finish(xfer_t *x, CURLcode cc, const char *const *inputs,
                         size_t n, ai_embed_result_t *res)
{
    ai_result_t *tmp = x->res;

    if (settle(x, cc)) {
        if (cc != CURLE_OK) {
            tmp->err = AI_ERR_CONNECT;
            tmp->retryable = true;
            snprintf(tmp->message, sizeof tmp->message, "provider \"%s\": the "
                     "connection broke while reading the reply (%s)",
                     x->p->name, x->errbuf[0] ? x->errbuf
                                              : curl_easy_strerror(cc));
        } else {
            tmp->err = x->ops->embed_response(x->p, x->body ? x->body : "",
                                              x->body_len, n, res);
            if (tmp->err != AI_OK)
                memcpy(tmp->message, res->message, sizeof tmp->message);
        }
    }
    res->err = tmp->err;
    res->retryable = tmp->retryable;
    res->retry_after_ms = tmp->retry_after_ms;
    res->http_status = tmp->http_status;
    if (res->err == AI_OK) {
        embed_estimate(res, inputs, n);
        snprintf(res->message, sizeof res->message, "provider \"%s\": %zu "
                 "vectors of %zu dimensions", x->p->name, res->n, res->dim);
        return;
    }
    memcpy(res->message, tmp->message, sizeof res->message);
    free(res->vectors);
    res->vectors = NULL;
    res->n = res->dim = 0;
}

plx_status_t ai_upstream_embed(const ai_provider_t *p, const char *upstream_model,
                               const char *const *inputs, size_t n,
                               long dimensions, ai_embed_result_t *res)
{
    ai_result_t tmp = { .retry_after_ms = -1, .ttft_seconds = -1 };
    ai_http_t h = { 0 };
    xfer_t x = { 0 };
    CURLcode cc;

    ai_embed_result_clear(res);
    res->retry_after_ms = -1;
    if (!embed_args_ok(p, upstream_model, inputs, n, res))
        return PLX_ERR_INVALID;
    x.p = p;
    x.ops = ai_wire_ops(p->kind);
    x.res = &tmp;
    if ((res->err = x.ops->embed_request(p, upstream_model, inputs, n,
                                         dimensions, &h, res->message,
                                         sizeof res->message))) {
        ai_http_free(&h);
        return status_of(res->err);
    }
    cc = perform(&x, &h);
    embed_finish(&x, cc, inputs, n, res);
    free(x.body);
    ai_http_free(&h);
    ai_result_clear(&tmp);
    return status_of(res->err);
}

void ai_embed_result_clear(ai_embed_result_t *res)
{
    if (!res)
        return;
    free(res->vectors);
    memset(res, 0, sizeof *res);
}
