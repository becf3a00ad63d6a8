/*
 * sse.c - Server-Sent Events on a request
 *
 * A stream is a chunked text/event-stream response written by the route's
 * handler (the producer) on its worker thread. Each event goes out as one
 * chunk in one write, so nothing waits in a buffer. A heartbeat thread
 * writes a comment on streams idle longer than server.sse_heartbeat: that
 * keeps proxies from timing out and is how a client that went away is
 * noticed while the producer waits on something else. A per-stream mutex
 * serialises the producer, the heartbeat and shutdown; once a write fails
 * the stream is closed and the producer is told so (PLX_ERR_GONE,
 * core_sse_closed), which is its cue to cancel upstream work.
 */
#include "config.h"
#include "http_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SSE_MAX_EVENT_NAME 64
#define SSE_MAX_DATA       ((size_t)4 * 1024 * 1024)
#define SSE_MAX_COMMENT    256

static http_reg_t streams = HTTP_REG_INIT;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    pthread_t       thread;
    bool            running;
    bool            stop;
} heartbeat = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

/* ---- writing ------------------------------------------------------------ */

/* Write one chunk while holding s->mu; a failure closes the stream. */
static bool sse_write_locked(plx_sse_t *s, const char *buf, size_t len)
{
    if (s->dead)
        return false;
    if (!http_write_chunk(s->r, buf, len)) {
        s->dead = true;
        s->closed = true;
        s->r->no_keep_alive = true;
        return false;
    }
    s->last_write = core_now();
    return true;
}

static bool event_name_ok(const char *ev)
{
    size_t len = strlen(ev);

    if (len == 0 || len > SSE_MAX_EVENT_NAME)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (ev[i] == '\r' || ev[i] == '\n')
            return false;
    }
    return true;
}

/* The wire form: "event: x\n", a "data: " line per line of data (any of
 * CRLF, LF or CR ends a line, as the client splits them), a blank line. */
static char *event_format(const char *event, const char *data, size_t len,
                          size_t *out_len)
{
    size_t lines = 1, cap, o = 0;
    char *buf;

    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\n' || (data[i] == '\r' && (i + 1 == len || data[i + 1] != '\n')))
            lines++;
    }
    cap = (event ? strlen(event) + 8 : 0) + len + lines * 7 + 2;
    buf = malloc(cap);
    if (!buf)
        return NULL;
    if (event)
        o += (size_t)snprintf(buf, cap, "event: %s\n", event);
    memcpy(buf + o, "data: ", 6);
    o += 6;
    for (size_t i = 0; i < len; i++) {
        if (data[i] != '\r' && data[i] != '\n') {
            buf[o++] = data[i];
            continue;
        }
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            i++;
        memcpy(buf + o, "\ndata: ", 7);
        o += 7;
    }
    memcpy(buf + o, "\n\n", 2);
    o += 2;
    *out_len = o;
    return buf;
}

/* ---- the producer's API ----------------------------------------------- */

plx_sse_t *core_sse_begin(plx_request_t *r)
{
    static const http_header_t h[] = {
        { "Cache-Control", "no-cache" },
        { "X-Accel-Buffering", "no" },
    };
    plx_sse_t *s;

    if (!r || !r->conn || r->ws || r->raw_head)   /* not on a WebSocket upgrade */
        return NULL;
    if (r->sse)
        return r->sse;
    if (r->replied) {
        core_log(PLX_LOG_ERROR, "core", r->id, "event stream on \"%s %s\" refused: "
                 "the response was already sent", r->method, r->path);
        return NULL;
    }
    s = core_palloc(r, sizeof(*s));
    if (!s)
        return NULL;
    memset(s, 0, sizeof(*s));
    s->r = r;
    pthread_mutex_init(&s->mu, NULL);
    s->last_write = core_now();
    r->sse = s;
    if (!http_send_head(r, 200, "text/event-stream", -1, h, CORE_ARRAY_LEN(h)) || r->head)
        s->dead = s->closed = true;
    http_reg_add(&streams, &s->node);
    return s;
}

plx_status_t core_sse_send(plx_sse_t *s, const char *event, const char *data,
                           size_t len)
{
    size_t n = 0;
    char *buf;
    bool ok;

    if (!s || (len && !data) || (event && !event_name_ok(event)))
        return PLX_ERR_INVALID;
    if (len > SSE_MAX_DATA)
        return PLX_ERR_TOO_LARGE;
    buf = event_format(event, data, len, &n);
    if (!buf)
        return PLX_ERR_NOMEM;
    pthread_mutex_lock(&s->mu);
    ok = !s->closed && sse_write_locked(s, buf, n);
    pthread_mutex_unlock(&s->mu);
    free(buf);
    return ok ? PLX_OK : PLX_ERR_GONE;
}

int core_sse_closed(plx_sse_t *s)
{
    int closed;

    if (!s)
        return 1;
    pthread_mutex_lock(&s->mu);
    closed = s->closed;
    pthread_mutex_unlock(&s->mu);
    return closed;
}

plx_status_t core_sse_comment(plx_sse_t *s, const char *text)
{
    char buf[SSE_MAX_COMMENT + 8];
    size_t tlen = text ? strlen(text) : 0;
    int n;
    bool ok;

    if (!s || (text && strpbrk(text, "\r\n")))
        return PLX_ERR_INVALID;
    if (tlen > SSE_MAX_COMMENT)
        return PLX_ERR_TOO_LARGE;
    n = tlen ? snprintf(buf, sizeof buf, ": %s\n\n", text)
             : snprintf(buf, sizeof buf, ":\n\n");
    pthread_mutex_lock(&s->mu);
    ok = !s->closed && sse_write_locked(s, buf, (size_t)n);
    pthread_mutex_unlock(&s->mu);
    return ok ? PLX_OK : PLX_ERR_GONE;
}

size_t core_sse_open_count(void)
{
    return http_reg_count(&streams);
}

/* The handler returned: the last chunk, then the stream is gone. */
void http_sse_end(plx_sse_t *s)
{
    http_reg_remove(&streams, &s->node);
    pthread_mutex_lock(&s->mu);
    sse_write_locked(s, "", 0);
    s->dead = s->closed = true;
    pthread_mutex_unlock(&s->mu);
    pthread_mutex_destroy(&s->mu);
    /* s lives in the request's arena: freed with it */
}

/* ---- heartbeat and shutdown ------------------------------------------- */

static void sse_each(void (*fn)(plx_sse_t *s, double now))
{
    http_reg_node_t **nodes;
    size_t n = http_reg_pin_all(&streams, &nodes);
    double now = core_now();

    for (size_t i = 0; i < n; i++)
        fn((plx_sse_t *)nodes[i], now);
    if (nodes)
        http_reg_unpin(&streams, nodes, n);
}

static void beat(plx_sse_t *s, double now)
{
    static const char comment[] = ": keep-alive\n\n";

    pthread_mutex_lock(&s->mu);
    if (!s->dead && (now - s->last_write) * 1000.0 >= (double)http_settings.sse_heartbeat_ms)
        sse_write_locked(s, comment, sizeof comment - 1);
    pthread_mutex_unlock(&s->mu);
}

static void say_goodbye(plx_sse_t *s, double now)
{
    static const char ev[] = "event: shutdown\ndata: {}\n\n";

    (void)now;
    pthread_mutex_lock(&s->mu);
    if (!s->closed)
        sse_write_locked(s, ev, sizeof ev - 1);
    s->closed = true;
    pthread_mutex_unlock(&s->mu);
}

static long beat_interval_ms(void)
{
    long ms = http_settings.sse_heartbeat_ms / 4;
    return ms < 50 ? 50 : ms > 1000 ? 1000 : ms;
}

static void *heartbeat_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&heartbeat.mu);
    while (!heartbeat.stop) {
        struct timespec until;
        long ms = beat_interval_ms();

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += ms / 1000;
        until.tv_nsec += (ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&heartbeat.cv, &heartbeat.mu, &until);
        if (heartbeat.stop)
            break;
        pthread_mutex_unlock(&heartbeat.mu);
        sse_each(beat);
        pthread_mutex_lock(&heartbeat.mu);
    }
    pthread_mutex_unlock(&heartbeat.mu);
    return NULL;
}

bool http_sse_start(void)
{
    heartbeat.stop = false;
    heartbeat.running = pthread_create(&heartbeat.thread, NULL, heartbeat_main, NULL) == 0;
    return heartbeat.running;
}

void http_sse_shutdown(void)
{
    sse_each(say_goodbye);
    if (!heartbeat.running)
        return;
    pthread_mutex_lock(&heartbeat.mu);
    heartbeat.stop = true;
    pthread_cond_signal(&heartbeat.cv);
    pthread_mutex_unlock(&heartbeat.mu);
    pthread_join(heartbeat.thread, NULL);
    heartbeat.running = false;
}
