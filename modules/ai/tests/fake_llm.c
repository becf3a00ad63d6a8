/*
 * fake_llm.c - a fake LLM provider speaking OpenAI, Anthropic and Gemini
 * (see fake_llm.h; the wire formats are those of the OpenAI Chat
 * Completions, Anthropic Messages and Google Gemini API references)
 *
 * One thread accepts; each connection gets a thread of its own that reads
 * requests (keep-alive, Content-Length or chunked bodies, bounded) and
 * answers them. Every wait - for a request, between two tokens, in a hang -
 * polls the socket for the peer's hang-up and a stop pipe, so a client
 * that goes away ends its request at once (plxt_llm_active drops) and
 * plxt_llm_stop returns promptly. Streams are sent with chunked transfer
 * coding, one SSE event per chunk, so the connection stays reusable.
 * Finished connection threads are joined by the accept thread; stop joins
 * the rest.
 */
#include "config.h"

/* POLLRDHUP (the peer hung up), memmem, strcasestr, accept4, pipe2 */
#define _GNU_SOURCE

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "fake_llm.h"

#define HEAD_MAX          (64 * 1024)
#define BODY_MAX          (16 * 1024 * 1024)
#define IO_TIMEOUT_MS     10000        /* inside a request, or one write */
#define IDLE_TIMEOUT_MS   120000       /* between two requests */
#define TEXT_MAX          (1024 * 1024)
#define TOKENS_MAX        100000
#define DIM_DEFAULT       8
#define DIM_MAX           4096
#define EMBED_INPUTS_MAX  2048
#define STACK_SIZE        (512 * 1024)
#define DEFAULT_TEXT      "Hello from the fake provider."
#define DIRECTIVE         "[[fake"

/* ---- state ------------------------------------------------------------------ */

/* a script with its own copy of the text */
typedef struct script {
    char *text;
    int   tokens, delay_ms, first_ms, status, retry_after, fail_after;
    bool  hang, no_usage;
} script_t;

typedef struct queued {
    script_t       s;
    struct queued *next;
} queued_t;

typedef struct conn {
    struct plxt_llm *f;
    int              fd;
    pthread_t        thread;
    bool             done;          /* under f->lock */
    char            *in;            /* bytes read, not yet consumed */
    size_t           in_len, in_cap;
    struct conn     *next;
} conn_t;

struct plxt_llm {
    int             listen_fd;
    int             port;
    int             stop_pipe[2];
    char           *key;
    pthread_t       thread;
    pthread_mutex_t lock;
    pthread_cond_t  changed;        /* active went down */
    script_t        def;
    queued_t       *qhead, *qtail;
    plxt_llm_seen_t *seen;
    size_t          nseen, seen_cap;
    bool            recording;
    int             count, active, peak;
    unsigned long   serial;
    conn_t         *conns;
};

/* ---- a growable buffer ------------------------------------------------------ */

typedef struct sb {
    char  *p;
    size_t len, cap;
    bool   failed;
} sb_t;

static void sb_add(sb_t *b, const char *s, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sb_t *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3)))
static void sb_printf(sb_t *b, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = true;
        return;
    }
    if ((size_t)n < sizeof small) {
        sb_add(b, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        b->failed = true;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    sb_add(b, big, (size_t)n);
    free(big);
}

/* ---- words, tokens, vectors ------------------------------------------------- */

int plxt_llm_count_words(const char *text)
{
    int n = 0;
    bool in_word = false;

    for (const unsigned char *p = (const unsigned char *)text; p && *p; p++) {
        if (isspace(*p)) {
            in_word = false;
        } else if (!in_word) {
            in_word = true;
            n++;
        }
    }
    return n;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void plxt_llm_embed_vector(const char *text, int dim, float *out)
{
    uint64_t h = 0xcbf29ce484222325ULL;   /* FNV-1a */
    double sum = 0, v[DIM_MAX];

    if (dim <= 0)
        return;
    if (dim > DIM_MAX)
        dim = DIM_MAX;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    for (int i = 0; i < dim; i++) {
        uint64_t r = mix64(h + (uint64_t)i * 0x632be59bd9b4e019ULL);
        v[i] = (double)(r >> 11) / 9007199254740992.0 * 2.0 - 1.0;
        sum += v[i] * v[i];
    }
    sum = sqrt(sum);
    for (int i = 0; i < dim; i++)
        out[i] = (float)(sum > 0 ? v[i] / sum : (i == 0));
}

/* the reply text of a script: its text, or "w1 ... wN" (malloc'd) */
static char *reply_text(const script_t *s)
{
    sb_t b = { 0 };

    if (s->tokens > 0) {
        int n = s->tokens > TOKENS_MAX ? TOKENS_MAX : s->tokens;
        for (int i = 1; i <= n; i++)
            sb_printf(&b, i == 1 ? "w%d" : " w%d", i);
    } else {
        sb_str(&b, s->text ? s->text : DEFAULT_TEXT);
    }
    if (b.failed || !b.p) {
        free(b.p);
        return strdup("");
    }
    return b.p;
}

/* token boundaries: a token starts at 0 and at every later space; starts
 * gets ntok + 1 entries (the last is the length). malloc'd. */
static size_t *token_starts(const char *text, size_t *ntok)
{
    size_t len = strlen(text), n = 0, cap = 16;
    size_t *st = malloc(cap * sizeof *st);

    if (!st)
        return NULL;
    for (size_t i = 0; i <= len; i++) {
        bool start = i < len && (i == 0 || text[i] == ' ');
        if (!start && i != len)
            continue;
        if (n + 1 >= cap) {
            size_t *g = realloc(st, cap * 2 * sizeof *st);
            if (!g) {
                free(st);
                return NULL;
            }
            st = g;
            cap *= 2;
        }
        st[n++] = i;
    }
    *ntok = n - 1;   /* the last entry is the end */
    return st;
}

/* ---- scripts and the directive ---------------------------------------------- */

static void script_from(script_t *d, const plxt_llm_script_t *s)
{
    free(d->text);
    *d = (script_t){ .text = s->text ? strdup(s->text) : NULL, .tokens = s->tokens,
                     .delay_ms = s->delay_ms, .first_ms = s->first_ms,
                     .status = s->status, .retry_after = s->retry_after,
                     .fail_after = s->fail_after, .hang = s->hang,
                     .no_usage = s->no_usage };
}

static void script_copy(script_t *d, const script_t *s)
{
    *d = *s;
    d->text = s->text ? strdup(s->text) : NULL;
}

/* one value after "key=": quoted (backslash escapes) or bare; *p moves on */
static char *directive_value(const char **p)
{
    sb_t b = { 0 };
    const char *s = *p;

    if (*s == '"') {
        for (s++; *s && *s != '"'; s++) {
            if (*s == '\\' && s[1])
                s++;
            sb_add(&b, s, 1);
        }
        if (*s == '"')
            s++;
    } else {
        while (*s && !isspace((unsigned char)*s) && strncmp(s, "]]", 2) != 0)
            sb_add(&b, s++, 1);
    }
    *p = s;
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p ? b.p : strdup("");
}

static int int_value(const char *v)
{
    long n = strtol(v, NULL, 10);

    return n < 0 ? 0 : n > 100000000 ? 100000000 : (int)n;
}

static bool bool_value(const char *v)
{
    return strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0;
}

static void directive_set(script_t *s, const char *key, size_t klen, char *v)
{
#define KEY_IS(k) (klen == strlen(k) && strncmp(key, k, klen) == 0)
    if (KEY_IS("text")) {
        free(s->text);
        s->text = v;
        s->tokens = 0;
        return;
    }
    if (KEY_IS("tokens"))
        s->tokens = int_value(v);
    else if (KEY_IS("delay_ms"))
        s->delay_ms = int_value(v);
    else if (KEY_IS("first_ms"))
        s->first_ms = int_value(v);
    else if (KEY_IS("status"))
        s->status = int_value(v);
    else if (KEY_IS("retry_after"))
        s->retry_after = int_value(v);
    else if (KEY_IS("fail_after"))
        s->fail_after = int_value(v);
    else if (KEY_IS("hang"))
        s->hang = bool_value(v);
    else if (KEY_IS("no_usage"))
        s->no_usage = bool_value(v);
    else
        fprintf(stderr, "# fake llm: unknown directive key \"%.*s\"\n", (int)klen, key);
    free(v);
#undef KEY_IS
}

/* apply "[[fake k=v ...]]" found in text to s; true when there was one */
static bool directive_apply(script_t *s, const char *text)
{
    const char *p = text ? strstr(text, DIRECTIVE) : NULL;

    if (!p)
        return false;
    p += strlen(DIRECTIVE);
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p || strncmp(p, "]]", 2) == 0)
            break;
        const char *key = p;
        while (*p && *p != '=' && !isspace((unsigned char)*p) && strncmp(p, "]]", 2) != 0)
            p++;
        size_t klen = (size_t)(p - key);
        if (*p != '=') {
            fprintf(stderr, "# fake llm: directive key \"%.*s\" without a value\n",
                    (int)klen, key);
            continue;
        }
        p++;
        char *v = directive_value(&p);
        if (v)
            directive_set(s, key, klen, v);
    }
    return true;
}

/* ---- sockets ----------------------------------------------------------------- */

static bool stopping(plxt_llm_t *f)
{
    struct pollfd p = { .fd = f->stop_pipe[0], .events = POLLIN };

    return poll(&p, 1, 0) > 0;
}

/* wait for events on the connection: 1 ready, 0 timeout, -1 stop or error.
 * events 0 watches only for the peer going away (then -1). */
static int wait_fd(conn_t *c, short events, int timeout_ms)
{
    struct pollfd p[2] = { { .fd = c->fd, .events = (short)(events | POLLRDHUP) },
                           { .fd = c->f->stop_pipe[0], .events = POLLIN } };
    int n;

    do
        n = poll(p, 2, timeout_ms);
    while (n < 0 && errno == EINTR);
    if (n < 0 || (p[1].revents & POLLIN))
        return -1;
    if (n == 0)
        return 0;
    if (events == 0 || (p[0].revents & (POLLERR | POLLNVAL)))
        return -1;
    if ((p[0].revents & POLLHUP) && !(p[0].revents & POLLIN))
        return -1;
    if ((p[0].revents & POLLRDHUP) && !(events & POLLIN))
        return -1;   /* the peer closed while we were writing or waiting */
    return 1;
}

/* sleep ms, watching for the client going away; false when it did (or stop) */
static bool nap(conn_t *c, int ms)
{
    double end;
    struct timespec ts;

    if (ms <= 0)
        return !stopping(c->f);
    clock_gettime(CLOCK_MONOTONIC, &ts);
    end = (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6 + ms;
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double left = end - ((double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6);
        if (left <= 0)
            return true;
        if (wait_fd(c, 0, (int)ceil(left)) < 0)
            return false;
    }
}

/* stay silent until the client goes away or the fake stops */
static void hang_until_gone(conn_t *c)
{
    while (wait_fd(c, 0, 1000) == 0)
        ;
}

static bool send_all(conn_t *c, const char *data, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t n = send(c->fd, data + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)
            && wait_fd(c, POLLOUT, IO_TIMEOUT_MS) > 0)
            continue;
        return false;
    }
    return true;
}

/* read more bytes: >0, 0 peer closed, -1 error, timeout or stop */
static long fill(conn_t *c, int timeout_ms)
{
    char buf[16384];
    ssize_t n;

    if (c->in_len >= HEAD_MAX + BODY_MAX)
        return -1;
    if (wait_fd(c, POLLIN, timeout_ms) <= 0)
        return -1;
    do
        n = recv(c->fd, buf, sizeof buf, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
    if (n == 0)
        return 0;
    if (c->in_len + (size_t)n > c->in_cap) {
        size_t cap = (c->in_len + (size_t)n) * 2;
        char *p = realloc(c->in, cap);
        if (!p)
            return -1;
        c->in = p;
        c->in_cap = cap;
    }
    memcpy(c->in + c->in_len, buf, (size_t)n);
    c->in_len += (size_t)n;
    return n;
}

static void consume(conn_t *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* ---- requests ---------------------------------------------------------------- */

typedef struct req {
    char   method[8];
    char   target[2048];      /* path and query */
    char   path[2048];        /* without the query */
    const char *query;        /* into target, after '?', or "" */
    char   bearer[512];
    char   x_api_key[512];
    char   goog_key[512];
    char   version[64];       /* anthropic-version */
    bool   close, chunked, expect_continue, has_length;
    size_t content_length;
    char  *body;
    size_t body_len;
    json_t *json;             /* the parsed body, or NULL */
} req_t;

static void req_free(req_t *q)
{
    free(q->body);
    json_decref(q->json);
}

static void header_value(const char *v, size_t n, char *out, size_t outlen)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static bool parse_request_line(req_t *q, const char *line, size_t n)
{
    const char *sp1 = memchr(line, ' ', n), *sp2;

    if (!sp1 || (size_t)(sp1 - line) >= sizeof q->method)
        return false;
    sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - line));
    if (!sp2 || (size_t)(sp2 - sp1 - 1) >= sizeof q->target || sp2 == sp1 + 1)
        return false;
    memcpy(q->method, line, (size_t)(sp1 - line));
    q->method[sp1 - line] = '\0';
    memcpy(q->target, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    q->target[sp2 - sp1 - 1] = '\0';
    if (strncmp(sp2 + 1, "HTTP/1.1", 8) != 0)
        q->close = true;   /* HTTP/1.0: no keep-alive */
    const char *qm = strchr(q->target, '?');
    size_t plen = qm ? (size_t)(qm - q->target) : strlen(q->target);
    memcpy(q->path, q->target, plen);
    q->path[plen] = '\0';
    q->query = qm ? qm + 1 : "";
    return true;
}

static void parse_header(req_t *q, const char *line, size_t n)
{
    const char *colon = memchr(line, ':', n);
    char v[512];

    if (!colon)
        return;
    size_t nl = (size_t)(colon - line), vl = n - nl - 1;
#define NAME_IS(h) (nl == strlen(h) && strncasecmp(line, h, nl) == 0)
    header_value(colon + 1, vl, v, sizeof v);
    if (NAME_IS("Authorization")) {
        if (strncasecmp(v, "Bearer ", 7) == 0)
            header_value(v + 7, strlen(v + 7), q->bearer, sizeof q->bearer);
    } else if (NAME_IS("x-api-key")) {
        snprintf(q->x_api_key, sizeof q->x_api_key, "%s", v);
    } else if (NAME_IS("x-goog-api-key")) {
        snprintf(q->goog_key, sizeof q->goog_key, "%s", v);
    } else if (NAME_IS("anthropic-version")) {
        snprintf(q->version, sizeof q->version, "%.63s", v);
    } else if (NAME_IS("Content-Length")) {
        q->has_length = true;
        q->content_length = (size_t)strtoull(v, NULL, 10);
    } else if (NAME_IS("Transfer-Encoding")) {
        q->chunked = strcasestr(v, "chunked") != NULL;
    } else if (NAME_IS("Connection")) {
        if (strcasestr(v, "close"))
            q->close = true;
    } else if (NAME_IS("Expect")) {
        q->expect_continue = strcasecmp(v, "100-continue") == 0;
    }
#undef NAME_IS
}

/* the head: 1 read, 0 the client closed (or stayed idle) between requests,
 * -1 bad or cut */
static int read_head(conn_t *c, req_t *q)
{
    char *end;
    bool first = true;

    while (!(end = c->in_len ? memmem(c->in, c->in_len, "\r\n\r\n", 4) : NULL)) {
        if (c->in_len > HEAD_MAX)
            return -1;
        long n = fill(c, c->in_len ? IO_TIMEOUT_MS : IDLE_TIMEOUT_MS);
        if (n <= 0)
            return c->in_len ? -1 : 0;
    }
    size_t head_len = (size_t)(end - c->in) + 4;
    for (char *line = c->in; line < end;) {
        char *eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
        size_t n = (size_t)(eol - line);
        if (first) {
            if (!parse_request_line(q, line, n))
                return -1;
            first = false;
        } else {
            parse_header(q, line, n);
        }
        line = eol + 2;
    }
    consume(c, head_len);
    return 1;
}

static int body_append(req_t *q, const char *p, size_t n)
{
    if (q->body_len + n > BODY_MAX)
        return -1;
    char *b = realloc(q->body, q->body_len + n + 1);
    if (!b)
        return -1;
    q->body = b;
    memcpy(b + q->body_len, p, n);
    q->body_len += n;
    b[q->body_len] = '\0';
    return 0;
}

/* a CRLF-ended line at the start of in (length without CRLF), filling as
 * needed; -1 when none came */
static long chunk_line(conn_t *c)
{
    char *eol;

    while (!(eol = c->in_len ? memmem(c->in, c->in_len, "\r\n", 2) : NULL)) {
        if (c->in_len > 4096 || fill(c, IO_TIMEOUT_MS) <= 0)
            return -1;
    }
    return (long)(eol - c->in);
}

static int read_chunked(conn_t *c, req_t *q)
{
    for (;;) {
        long n = chunk_line(c);
        if (n < 0)
            return -1;
        unsigned long long size = strtoull(c->in, NULL, 16);
        consume(c, (size_t)n + 2);
        if (size == 0)
            break;
        if (size > BODY_MAX)
            return -1;
        while (c->in_len < size + 2)
            if (fill(c, IO_TIMEOUT_MS) <= 0)
                return -1;
        if (body_append(q, c->in, (size_t)size) != 0)
            return -1;
        consume(c, (size_t)size + 2);
    }
    for (;;) {   /* trailers up to the empty line */
        long n = chunk_line(c);
        if (n < 0)
            return -1;
        consume(c, (size_t)n + 2);
        if (n == 0)
            return 0;
    }
}

static int read_body(conn_t *c, req_t *q)
{
    if (q->expect_continue && (q->chunked || q->content_length > 0)
        && !send_all(c, "HTTP/1.1 100 Continue\r\n\r\n", 25))
        return -1;
    if (q->chunked)
        return read_chunked(c, q);
    if (q->content_length > BODY_MAX)
        return -1;
    while (c->in_len < q->content_length)
        if (fill(c, IO_TIMEOUT_MS) <= 0)
            return -1;
    if (q->content_length && body_append(q, c->in, q->content_length) != 0)
        return -1;
    consume(c, q->content_length);
    return 0;
}

/* ---- responses ------------------------------------------------------------- */

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 529: return "Site Overloaded";
    default:  return status >= 500 ? "Server Error" : "Client Error";
    }
}

typedef enum proto { P_OPENAI, P_ANTHROPIC, P_GEMINI } proto_t;

typedef enum action {
    A_NONE, A_CHAT, A_EMBED, A_MODELS, A_MODEL, A_GEM_CHAT, A_GEM_STREAM,
    A_GEM_EMBED, A_GEM_BATCH
} action_t;

/* one request being answered */
typedef struct call {
    conn_t     *c;
    req_t      *q;
    proto_t     proto;
    action_t    action;
    script_t    s;
    char        model[256];
    char        id[64];          /* chatcmpl-fake<serial>, msg_fake<serial> */
    unsigned long serial;
    long long   created;
    bool        stream, include_usage;
    int         prompt_tokens;
    char       *text;            /* the reply */
    size_t     *starts;          /* token boundaries */
    size_t      ntok;
} call_t;

static bool send_head(call_t *k, int status, const char *type, const char *extra,
                      bool chunked, size_t length)
{
    sb_t b = { 0 };
    bool ok;

    sb_printf(&b, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n", status, reason(status), type);
    if (chunked)
        sb_str(&b, "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n");
    else
        sb_printf(&b, "Content-Length: %zu\r\n", length);
    if (k->proto == P_OPENAI)
        sb_printf(&b, "x-request-id: req_fake%lu\r\n", k->serial);
    if (k->proto == P_ANTHROPIC)
        sb_printf(&b, "request-id: req_fake%lu\r\n", k->serial);
    if (extra)
        sb_str(&b, extra);
    if (k->q->close)
        sb_str(&b, "Connection: close\r\n");
    sb_str(&b, "\r\n");
    ok = !b.failed && send_all(k->c, b.p, b.len);
    free(b.p);
    return ok;
}

static bool send_body(call_t *k, int status, const char *extra, const char *body)
{
    size_t n = strlen(body);

    return send_head(k, status, "application/json", extra, false, n)
           && send_all(k->c, body, n);
}

/* a JSON answer; steals j */
static bool send_json(call_t *k, int status, const char *extra, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
    bool ok = text && send_body(k, status, extra, text);

    free(text);
    json_decref(j);
    return ok;
}

/* one chunk of a chunked body, in one write (the socket has TCP_NODELAY:
 * an event leaves at once, in one segment when it fits) */
static bool send_chunk(call_t *k, const char *data, size_t len)
{
    sb_t b = { 0 };
    bool ok;

    sb_printf(&b, "%zx\r\n", len);
    sb_add(&b, data, len);
    sb_add(&b, "\r\n", 2);
    ok = !b.failed && send_all(k->c, b.p, b.len);
    free(b.p);
    return ok;
}

static bool stream_end(call_t *k)
{
    return send_all(k->c, "0\r\n\r\n", 5);
}

/* "event: name\ndata: <json>\n\n" (name NULL: data only) as one chunk;
 * steals j */
static bool send_event(call_t *k, const char *name, json_t *j)
{
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    sb_t b = { 0 };
    bool ok;

    json_decref(j);
    if (!text)
        return false;
    if (name)
        sb_printf(&b, "event: %s\n", name);
    sb_printf(&b, "data: %s\n\n", text);
    free(text);
    ok = !b.failed && send_chunk(k, b.p, b.len);
    free(b.p);
    return ok;
}

static bool send_raw_event(call_t *k, const char *text)
{
    return send_chunk(k, text, strlen(text));
}

/* ---- errors, as each provider shapes them ----------------------------------- */

static void retry_header(const call_t *k, char *out, size_t len)
{
    if (k->s.retry_after > 0)
        snprintf(out, len, "retry-after: %d\r\n", k->s.retry_after);
    else
        out[0] = '\0';
}

static bool openai_error(call_t *k, int status, const char *message, const char *code)
{
    const char *type = status == 429 ? "rate_limit_error"
                       : status == 503 ? "service_unavailable_error"
                       : status >= 500 ? "server_error" : "invalid_request_error";
    char extra[64];

    if (!code)
        code = status == 429 ? "rate_limit_exceeded" : status == 503 ? "server_is_overloaded"
               : status == 404 ? "model_not_found" : NULL;
    if (!message)
        message = status == 429 ? "Rate limit reached for requests"
                  : status == 503 ? "The server is overloaded or not ready yet."
                  : status >= 500 ? "The server had an error while processing your request."
                  : status == 404 ? "The model does not exist or you do not have access to it."
                  : "Invalid request.";
    retry_header(k, extra, sizeof extra);
    return send_json(k, status, extra,
                     json_pack("{s:{s:s, s:s, s:n, s:o}}", "error", "message", message,
                               "type", type, "param", "code",
                               code ? json_string(code) : json_null()));
}

static const char *anthropic_type(int status)
{
    switch (status) {
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 409: return "conflict_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    case 529: return "overloaded_error";
    default:  return status >= 500 ? "api_error" : "invalid_request_error";
    }
}

static bool anthropic_error(call_t *k, int status, const char *message)
{
    const char *type = anthropic_type(status);
    char extra[64], rid[80];

    if (!message)
        message = status == 529 ? "Overloaded" : status == 429 ? "Rate limited"
                  : status >= 500 ? "Internal server error" : "Invalid request";
    retry_header(k, extra, sizeof extra);
    snprintf(rid, sizeof rid, "req_fake%lu", k->serial);
    return send_json(k, status, extra,
                     json_pack("{s:s, s:{s:s, s:s}, s:s}", "type", "error", "error",
                               "type", type, "message", message, "request_id", rid));
}

static const char *gemini_status(int status)
{
    switch (status) {
    case 400: return "INVALID_ARGUMENT";
    case 401: return "UNAUTHENTICATED";
    case 403: return "PERMISSION_DENIED";
    case 404: return "NOT_FOUND";
    case 409: return "ABORTED";
    case 429: return "RESOURCE_EXHAUSTED";
    case 499: return "CANCELLED";
    case 501: return "UNIMPLEMENTED";
    case 503: return "UNAVAILABLE";
    case 504: return "DEADLINE_EXCEEDED";
    default:  return status >= 500 ? "INTERNAL" : "FAILED_PRECONDITION";
    }
}

/* google.rpc.Status; details steals a reference (may be NULL) */
static bool gemini_error(call_t *k, int status, const char *message, json_t *details)
{
    char extra[64];
    json_t *err;

    if (!message)
        message = status == 429 ? "Resource has been exhausted (e.g. check quota)."
                  : status == 503 ? "The model is overloaded. Please try again later."
                  : status >= 500 ? "An internal error has occurred."
                  : "Request contains an invalid argument.";
    retry_header(k, extra, sizeof extra);
    if (!details && status == 429 && k->s.retry_after > 0) {
        char delay[32];
        snprintf(delay, sizeof delay, "%ds", k->s.retry_after);
        details = json_pack("[{s:s, s:s}]", "@type",
                            "type.googleapis.com/google.rpc.RetryInfo", "retryDelay", delay);
    }
    err = json_pack("{s:i, s:s, s:s}", "code", status, "message", message, "status",
                    gemini_status(status));
    if (err && details)
        json_object_set_new(err, "details", details);
    else
        json_decref(details);
    return send_json(k, status, extra, json_pack("{s:o}", "error", err));
}

static bool error_reply(call_t *k, int status, const char *message)
{
    switch (k->proto) {
    case P_ANTHROPIC:
        return anthropic_error(k, status, message);
    case P_GEMINI:
        return gemini_error(k, status, message, NULL);
    default:
        return openai_error(k, status, message, NULL);
    }
}

/* a missing or wrong key, as the provider answers it */
static bool bad_key(call_t *k, bool missing)
{
    switch (k->proto) {
    case P_ANTHROPIC:
        return anthropic_error(k, 401, "invalid x-api-key");
    case P_GEMINI:
        return gemini_error(k, 400, "API key not valid. Please pass a valid API key.",
                            json_pack("[{s:s, s:s, s:s, s:{s:s}}]", "@type",
                                      "type.googleapis.com/google.rpc.ErrorInfo",
                                      "reason", "API_KEY_INVALID", "domain",
                                      "googleapis.com", "metadata", "service",
                                      "generativelanguage.googleapis.com"));
    default:
        if (missing)
            return send_json(k, 401, NULL,
                             json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
                                       "You didn't provide an API key. You need to provide "
                                       "your API key in an Authorization header using Bearer "
                                       "auth (i.e. Authorization: Bearer YOUR_KEY).",
                                       "type", "invalid_request_error", "param", "code"));
        return openai_error(k, 401, "Incorrect API key provided.", "invalid_api_key");
    }
}

/* ---- what the request says ------------------------------------------------- */

/* text of an OpenAI or Anthropic content (a string or parts/blocks), joined
 * with '\n', appended to b */
static void content_text(sb_t *b, json_t *content)
{
    size_t i;
    json_t *part;

    if (json_is_string(content)) {
        sb_str(b, json_string_value(content));
        return;
    }
    json_array_foreach(content, i, part) {
        json_t *t = json_object_get(part, "text");
        if (!json_is_string(t))   /* Anthropic tool_result content */
            t = json_object_get(part, "content");
        if (json_is_string(t) || json_is_array(t)) {
            if (b->len)
                sb_str(b, "\n");
            content_text(b, t);
        }
    }
}

/* Gemini: the parts' texts, joined with '\n' */
static void parts_text(sb_t *b, json_t *parts)
{
    size_t i;
    json_t *part;

    json_array_foreach(parts, i, part) {
        const char *t = json_string_value(json_object_get(part, "text"));
        if (t) {
            if (b->len)
                sb_str(b, "\n");
            sb_str(b, t);
        }
    }
}

static int words_of(json_t *content, bool gemini_parts)
{
    sb_t b = { 0 };
    int n;

    if (gemini_parts)
        parts_text(&b, content);
    else
        content_text(&b, content);
    n = plxt_llm_count_words(b.p);
    free(b.p);
    return n;
}

/* the prompt's word count and the last user message's text (malloc'd) */
static int prompt_scan(const call_t *k, char **last_user)
{
    json_t *body = k->q->json, *list, *m;
    bool gem = k->proto == P_GEMINI;
    int words = 0;
    size_t i;

    *last_user = NULL;
    if (k->proto == P_ANTHROPIC)
        words += words_of(json_object_get(body, "system"), false);
    if (gem) {
        json_t *si = json_object_get(body, "systemInstruction");
        if (!si)
            si = json_object_get(body, "system_instruction");
        words += words_of(json_object_get(si, "parts"), true);
    }
    list = json_object_get(body, gem ? "contents" : "messages");
    json_array_foreach(list, i, m) {
        json_t *content = json_object_get(m, gem ? "parts" : "content");
        const char *role = json_string_value(json_object_get(m, "role"));
        words += words_of(content, gem);
        if ((role && strcmp(role, "user") == 0) || (gem && !role)) {
            sb_t b = { 0 };
            if (gem)
                parts_text(&b, content);
            else
                content_text(&b, content);
            free(*last_user);
            *last_user = b.p ? b.p : strdup("");
        }
    }
    return words;
}

/* ---- chat: OpenAI -------------------------------------------------------------- */

static json_t *token_json(const call_t *k, size_t i)
{
    return json_stringn(k->text + k->starts[i], k->starts[i + 1] - k->starts[i]);
}

/* the number of tokens to send, and whether the stream fails after them */
static size_t tokens_to_send(const call_t *k, bool *fails)
{
    *fails = k->stream && k->s.fail_after > 0;
    if (*fails && (size_t)k->s.fail_after < k->ntok)
        return (size_t)k->s.fail_after;
    return k->ntok;
}

static json_t *openai_usage(const call_t *k, size_t sent)
{
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", k->prompt_tokens,
                     "completion_tokens", (int)sent, "total_tokens",
                     k->prompt_tokens + (int)sent);
}

static json_t *openai_chunk(const call_t *k, json_t *delta, const char *finish)
{
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:o}]}",
                          "id", k->id, "object", "chat.completion.chunk", "created",
                          (json_int_t)k->created, "model", k->model, "choices", "index", 0,
                          "delta", delta, "logprobs", "finish_reason",
                          finish ? json_string(finish) : json_null());
    if (j && k->include_usage)
        json_object_set_new(j, "usage", json_null());
    return j;
}

static bool openai_stream(call_t *k)
{
    bool fails;
    size_t n = tokens_to_send(k, &fails);

    if (!send_head(k, 200, "text/event-stream", NULL, true, 0))
        return false;
    if (k->s.hang) {
        hang_until_gone(k->c);
        return false;
    }
    if (!nap(k->c, k->s.first_ms)
        || !send_event(k, NULL, openai_chunk(k, json_pack("{s:s, s:s}", "role", "assistant",
                                                           "content", ""), NULL)))
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && !nap(k->c, k->s.delay_ms))
            || !send_event(k, NULL, openai_chunk(k, json_pack("{s:o}", "content",
                                                              token_json(k, i)), NULL)))
            return false;
    }
    if (fails) {
        return send_raw_event(k, "data: {\"error\":{\"message\":\"The server had an error "
                                 "while processing your request.\",\"type\":\"server_error\","
                                 "\"param\":null,\"code\":null}}\n\n")
               && stream_end(k);
    }
    if (!send_event(k, NULL, openai_chunk(k, json_object(), "stop")))
        return false;
    if (k->include_usage && !k->s.no_usage) {
        json_t *u = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", k->id, "object",
                              "chat.completion.chunk", "created", (json_int_t)k->created,
                              "model", k->model, "choices", "usage", openai_usage(k, n));
        if (!send_event(k, NULL, u))
            return false;
    }
    return send_raw_event(k, "data: [DONE]\n\n") && stream_end(k);
}

static bool openai_chat(call_t *k)
{
    json_t *opts = json_object_get(k->q->json, "stream_options");
    json_t *j;

    k->include_usage = json_is_true(json_object_get(opts, "include_usage"));
    if (k->stream)
        return openai_stream(k);
    if (k->s.hang) {
        hang_until_gone(k->c);
        return false;
    }
    if (!nap(k->c, k->s.first_ms))
        return false;
    j = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:{s:s, s:s, s:n}, s:n, s:s}]}",
                  "id", k->id, "object", "chat.completion", "created",
                  (json_int_t)k->created, "model", k->model, "choices", "index", 0,
                  "message", "role", "assistant", "content", k->text, "refusal",
                  "logprobs", "finish_reason", "stop");
    if (j && !k->s.no_usage)
        json_object_set_new(j, "usage", openai_usage(k, k->ntok));
    return send_json(k, 200, NULL, j);
}

/* ---- chat: Anthropic ----------------------------------------------------------- */

static bool anthropic_stream(call_t *k)
{
    bool fails;
    size_t n = tokens_to_send(k, &fails);
    json_t *start, *delta;

    if (!send_head(k, 200, "text/event-stream", NULL, true, 0))
        return false;
    if (k->s.hang) {
        hang_until_gone(k->c);
        return false;
    }
    start = json_pack("{s:s, s:{s:s, s:s, s:s, s:[], s:s, s:n, s:n}}", "type",
                      "message_start", "message", "id", k->id, "type", "message", "role",
                      "assistant", "content", "model", k->model, "stop_reason",
                      "stop_sequence");
    if (start && !k->s.no_usage)
        json_object_set_new(json_object_get(start, "message"), "usage",
                            json_pack("{s:i, s:i}", "input_tokens", k->prompt_tokens,
                                      "output_tokens", 1));
    if (!nap(k->c, k->s.first_ms)) {
        json_decref(start);
        return false;
    }
    if (!send_event(k, "message_start", start)
        || !send_event(k, "content_block_start",
                       json_pack("{s:s, s:i, s:{s:s, s:s}}", "type", "content_block_start",
                                 "index", 0, "content_block", "type", "text", "text", ""))
        || !send_raw_event(k, "event: ping\ndata: {\"type\": \"ping\"}\n\n"))
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((i > 0 && !nap(k->c, k->s.delay_ms))
            || !send_event(k, "content_block_delta",
                           json_pack("{s:s, s:i, s:{s:s, s:o}}", "type",
                                     "content_block_delta", "index", 0, "delta", "type",
                                     "text_delta", "text", token_json(k, i))))
            return false;
    }
    if (fails)
        return send_raw_event(k, "event: error\ndata: {\"type\":\"error\",\"error\":"
                                 "{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}"
                                 "\n\n")
               && stream_end(k);
    delta = json_pack("{s:s, s:{s:s, s:n}}", "type", "message_delta", "delta",
                      "stop_reason", "end_turn", "stop_sequence");
    if (delta && !k->s.no_usage)
        json_object_set_new(delta, "usage", json_pack("{s:i}", "output_tokens", (int)n));
    if (!send_event(k, "content_block_stop",
                    json_pack("{s:s, s:i}", "type", "content_block_stop", "index", 0))) {
        json_decref(delta);
        return false;
    }
    return send_event(k, "message_delta", delta)
           && send_event(k, "message_stop", json_pack("{s:s}", "type", "message_stop"))
           && stream_end(k);
}

static bool anthropic_chat(call_t *k)
{
    json_t *j;

    if (k->stream)
        return anthropic_stream(k);
    if (k->s.hang) {
        hang_until_gone(k->c);
        return false;
    }
    if (!nap(k->c, k->s.first_ms))
        return false;
    j = json_pack("{s:s, s:s, s:s, s:s, s:[{s:s, s:s}], s:s, s:n}", "id", k->id, "type",
                  "message", "role", "assistant", "model", k->model, "content", "type",
                  "text", "text", k->text, "stop_reason", "end_turn", "stop_sequence");
    if (j && !k->s.no_usage)
        json_object_set_new(j, "usage", json_pack("{s:i, s:i}", "input_tokens",
                                                  k->prompt_tokens, "output_tokens",
                                                  (int)k->ntok));
    return send_json(k, 200, NULL, j);
}

/* ---- chat: Gemini ---------------------------------------------------------------- */

static json_t *gemini_usage(const call_t *k, size_t sent)
{
    return json_pack("{s:i, s:i, s:i}", "promptTokenCount", k->prompt_tokens,
                     "candidatesTokenCount", (int)sent, "totalTokenCount",
                     k->prompt_tokens + (int)sent);
}

/* one GenerateContentResponse with text; last: finishReason and usage */
static json_t *gemini_response(const call_t *k, json_t *text, bool last, size_t sent)
{
    json_t *cand = json_pack("{s:{s:[{s:o}], s:s}}", "content", "parts", "text", text,
                             "role", "model");
    json_t *j;

    if (cand && last)
        json_object_set_new(cand, "finishReason", json_string("STOP"));
    if (cand)
        json_object_set_new(cand, "index", json_integer(0));
    j = json_pack("{s:[o]}", "candidates", cand);
    if (j && last && !k->s.no_usage)
        json_object_set_new(j, "usageMetadata", gemini_usage(k, sent));
    if (j)
        json_object_set_new(j, "modelVersion", json_string(k->model));
    return j;
}

static bool gemini_stream(call_t *k)
{
    bool fails;
    size_t n = tokens_to_send(k, &fails);

    if (!send_head(k, 200, "text/event-stream", NULL, true, 0))
        return false;
    if (k->s.hang) {
        hang_until_gone(k->c);
        return false;
    }
    if (!nap(k->c, k->s.first_ms))
        return false;
    if (n == 0 && !fails)
        return send_event(k, NULL, gemini_response(k, json_string(""), true, 0))
               && stream_end(k);
    for (size_t i = 0; i < n; i++) {
        bool last = !fails && i + 1 == n;
        if ((i > 0 && !nap(k->c, k->s.delay_ms))
            || !send_event(k, NULL, gemini_response(k, token_json(k, i), last, n)))
            return false;
    }
    if (fails)
        return false;   /* Gemini cuts the connection: no last chunk */
    return stream_end(k);
}

static bool gemini_chat(call_t *k)
{
    if (k->stream)
        return gemini_stream(k);
    if (k->s.hang) {
        hang_until_gone(k->c);
        return false;
    }
    if (!nap(k->c, k->s.first_ms))
        return false;
    return send_json(k, 200, NULL, gemini_response(k, json_string(k->text), true, k->ntok));
}

/* ---- embeddings ------------------------------------------------------------------- */

static json_t *vector_json(const char *text, int dim)
{
    float v[DIM_MAX];
    json_t *a = json_array();

    plxt_llm_embed_vector(text, dim, v);
    for (int i = 0; i < dim; i++)
        json_array_append_new(a, json_real((double)v[i]));
    return a;
}

static json_t *vector_base64(const char *text, int dim)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    float v[DIM_MAX];
    unsigned char raw[DIM_MAX * 4];
    size_t n = (size_t)dim * 4;
    char *out = malloc(((n + 2) / 3) * 4 + 1), *o = out;
    json_t *j;

    if (!out)
        return NULL;
    plxt_llm_embed_vector(text, dim, v);
    for (int i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &v[i], 4);
        raw[i * 4] = (unsigned char)u;
        raw[i * 4 + 1] = (unsigned char)(u >> 8);
        raw[i * 4 + 2] = (unsigned char)(u >> 16);
        raw[i * 4 + 3] = (unsigned char)(u >> 24);
    }
    for (size_t i = 0; i < n; i += 3) {
        uint32_t w = (uint32_t)raw[i] << 16;
        if (i + 1 < n)
            w |= (uint32_t)raw[i + 1] << 8;
        if (i + 2 < n)
            w |= raw[i + 2];
        *o++ = tab[(w >> 18) & 63];
        *o++ = tab[(w >> 12) & 63];
        *o++ = i + 1 < n ? tab[(w >> 6) & 63] : '=';
        *o++ = i + 2 < n ? tab[w & 63] : '=';
    }
    *o = '\0';
    j = json_string(out);
    free(out);
    return j;
}

/* OpenAI inputs as texts: a string, strings, or token arrays (whose text is
 * the numbers joined by spaces). NULL with *why set when malformed. */
static json_t *openai_inputs(json_t *input, const char **why)
{
    json_t *out = json_array(), *v;
    size_t i;

    if (json_is_string(input)) {
        json_array_append(out, input);
    } else if (json_is_array(input) && json_array_size(input) > 0
               && json_array_size(input) <= EMBED_INPUTS_MAX) {
        bool ints = json_is_integer(json_array_get(input, 0));
        json_t *lists = ints ? json_pack("[O]", input) : json_incref(input);
        json_array_foreach(lists, i, v) {
            if (json_is_string(v)) {
                json_array_append(out, v);
                continue;
            }
            sb_t b = { 0 };
            size_t j;
            json_t *t;
            json_array_foreach(v, j, t) {
                if (!json_is_integer(t))
                    break;
                sb_printf(&b, "%s%lld", j ? " " : "", (long long)json_integer_value(t));
            }
            if (!json_is_array(v) || j != json_array_size(v) || j == 0 || b.failed) {
                free(b.p);
                json_decref(lists);
                json_decref(out);
                *why = "'input' must be a string, an array of strings or of token arrays";
                return NULL;
            }
            json_array_append_new(out, json_string(b.p));
            free(b.p);
        }
        json_decref(lists);
    } else {
        json_decref(out);
        *why = "'input' is required: a string or an array of 1 to 2048 items";
        return NULL;
    }
    json_array_foreach(out, i, v) {
        if (json_string_length(v) == 0) {
            json_decref(out);
            *why = "'input' cannot contain an empty string";
            return NULL;
        }
    }
    return out;
}

static int dimensions(call_t *k, json_t *d, int *dim)
{
    *dim = DIM_DEFAULT;
    if (!d)
        return 0;
    if (!json_is_integer(d) || json_integer_value(d) < 1
        || json_integer_value(d) > DIM_MAX)
        return -1;
    (void)k;
    *dim = (int)json_integer_value(d);
    return 0;
}

static bool openai_embed(call_t *k)
{
    const char *why = NULL, *fmt = json_string_value(json_object_get(k->q->json,
                                                                   "encoding_format"));
    json_t *inputs = openai_inputs(json_object_get(k->q->json, "input"), &why);
    json_t *data, *v, *j;
    int dim, words = 0;
    size_t i;
    bool b64 = fmt && strcmp(fmt, "base64") == 0;

    if (!inputs)
        return openai_error(k, 400, why, NULL);
    if (fmt && !b64 && strcmp(fmt, "float") != 0) {
        json_decref(inputs);
        return openai_error(k, 400, "'encoding_format' must be 'float' or 'base64'", NULL);
    }
    if (dimensions(k, json_object_get(k->q->json, "dimensions"), &dim) != 0) {
        json_decref(inputs);
        return openai_error(k, 400, "'dimensions' must be an integer from 1 to 4096", NULL);
    }
    if (!nap(k->c, k->s.first_ms)) {
        json_decref(inputs);
        return false;
    }
    data = json_array();
    json_array_foreach(inputs, i, v) {
        const char *t = json_string_value(v);
        words += plxt_llm_count_words(t);
        json_array_append_new(data, json_pack("{s:s, s:i, s:o}", "object", "embedding",
                                              "index", (int)i, "embedding",
                                              b64 ? vector_base64(t, dim)
                                                  : vector_json(t, dim)));
    }
    json_decref(inputs);
    j = json_pack("{s:s, s:o, s:s}", "object", "list", "data", data, "model", k->model);
    if (j && !k->s.no_usage)
        json_object_set_new(j, "usage", json_pack("{s:i, s:i}", "prompt_tokens", words,
                                                  "total_tokens", words));
    return send_json(k, 200, NULL, j);
}

/* one Gemini EmbedContentRequest: its vector, or NULL with *why */
static json_t *gemini_embedding(json_t *req, const char **why)
{
    sb_t b = { 0 };
    json_t *parts = json_object_get(json_object_get(req, "content"), "parts"), *out;
    int dim;

    if (!json_is_array(parts) || json_array_size(parts) == 0) {
        *why = "* EmbedContentRequest.content: contents is not specified";
        return NULL;
    }
    if (dimensions(NULL, json_object_get(req, "outputDimensionality"), &dim) != 0) {
        *why = "* EmbedContentRequest.output_dimensionality: must be from 1 to 4096";
        return NULL;
    }
    parts_text(&b, parts);
    if (!b.p || !b.p[0]) {
        free(b.p);
        *why = "* EmbedContentRequest.content: the text is empty";
        return NULL;
    }
    out = json_pack("{s:o}", "values", vector_json(b.p, dim));
    free(b.p);
    return out;
}

static bool gemini_embed(call_t *k)
{
    const char *why = NULL;
    json_t *e;

    if (!nap(k->c, k->s.first_ms))
        return false;
    e = gemini_embedding(k->q->json, &why);
    if (!e)
        return gemini_error(k, 400, why, NULL);
    return send_json(k, 200, NULL, json_pack("{s:o}", "embedding", e));
}

static bool gemini_batch(call_t *k)
{
    json_t *reqs = json_object_get(k->q->json, "requests"), *r, *out;
    char want[300];
    size_t i;

    if (!json_is_array(reqs) || json_array_size(reqs) == 0
        || json_array_size(reqs) > EMBED_INPUTS_MAX)
        return gemini_error(k, 400, "* BatchEmbedContentsRequest.requests: at least one "
                                    "request is required", NULL);
    snprintf(want, sizeof want, "models/%s", k->model);
    json_array_foreach(reqs, i, r) {
        const char *m = json_string_value(json_object_get(r, "model"));
        if (!m || strcmp(m, want) != 0) {
            char msg[700];
            snprintf(msg, sizeof msg, "Model names should match: requests[%zu].model is "
                                      "\"%.256s\", the path names \"%.256s\"", i,
                     m ? m : "", want);
            return gemini_error(k, 400, msg, NULL);
        }
    }
    if (!nap(k->c, k->s.first_ms))
        return false;
    out = json_array();
    json_array_foreach(reqs, i, r) {
        const char *why = NULL;
        json_t *e = gemini_embedding(r, &why);
        if (!e) {
            json_decref(out);
            return gemini_error(k, 400, why, NULL);
        }
        json_array_append_new(out, e);
    }
    return send_json(k, 200, NULL, json_pack("{s:o}", "embeddings", out));
}

/* ---- models ---------------------------------------------------------------------- */

static json_t *model_json(const char *id)
{
    return json_pack("{s:s, s:s, s:i, s:s}", "id", id, "object", "model", "created",
                     1686935002, "owned_by", "fake");
}

static bool openai_models(call_t *k)
{
    if (!nap(k->c, k->s.first_ms))
        return false;
    if (k->action == A_MODEL)
        return send_json(k, 200, NULL, model_json(k->model));
    return send_json(k, 200, NULL,
                     json_pack("{s:s, s:[o, o]}", "object", "list", "data",
                               model_json("fake-chat"), model_json("fake-embed")));
}

/* ---- routing ----------------------------------------------------------------------- */

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);

    return n >= t && strcmp(s + n - t, tail) == 0;
}

static bool query_has(const char *query, const char *param)
{
    size_t n = strlen(param);

    for (const char *p = query; p && *p;) {
        if (strncmp(p, param, n) == 0 && (p[n] == '&' || p[n] == '\0'))
            return true;
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return false;
}

/* the value of ?key= (URL-decoding not needed for test keys) */
static void query_value(const char *query, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);

    out[0] = '\0';
    for (const char *p = query; p && *p;) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            size_t v = strcspn(p + n + 1, "&");
            snprintf(out, len, "%.*s", (int)v, p + n + 1);
            return;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
}

/* which protocol and action the path names; the Gemini model into model */
static void route(call_t *k)
{
    const char *path = k->q->path, *method = k->q->method;
    const char *m = strstr(path, "/models/");
    bool post = strcmp(method, "POST") == 0, get = strcmp(method, "GET") == 0;

    k->proto = P_OPENAI;
    k->action = A_NONE;
    if (m && post && strchr(m + 8, ':')) {   /* GET .../models/llama3:8b is OpenAI's */
        const char *colon = strchr(m + 8, ':');
        k->proto = P_GEMINI;
        snprintf(k->model, sizeof k->model, "%.*s", (int)(colon - m - 8), m + 8);
        if (strcmp(colon, ":generateContent") == 0)
            k->action = A_GEM_CHAT;
        else if (strcmp(colon, ":streamGenerateContent") == 0)
            k->action = A_GEM_STREAM;
        else if (strcmp(colon, ":embedContent") == 0)
            k->action = A_GEM_EMBED;
        else if (strcmp(colon, ":batchEmbedContents") == 0)
            k->action = A_GEM_BATCH;
        return;
    }
    if (post && ends_with(path, "/v1/messages")) {
        k->proto = P_ANTHROPIC;
        k->action = A_CHAT;
    } else if (post && ends_with(path, "/chat/completions")) {
        k->action = A_CHAT;
    } else if (post && ends_with(path, "/embeddings")) {
        k->action = A_EMBED;
    } else if (get && ends_with(path, "/models")) {
        k->action = A_MODELS;
    } else if (get && m && m[8] && !strchr(m + 8, '/')) {
        k->action = A_MODEL;
        snprintf(k->model, sizeof k->model, "%s", m + 8);
    }
}

static const char *call_key(const call_t *k, char *qkey, size_t len)
{
    switch (k->proto) {
    case P_ANTHROPIC:
        return k->q->x_api_key;
    case P_GEMINI:
        if (k->q->goog_key[0])
            return k->q->goog_key;
        query_value(k->q->query, "key", qkey, len);
        return qkey;
    default:
        return k->q->bearer;
    }
}

static void record(plxt_llm_t *f, const call_t *k, const char *key)
{
    plxt_llm_seen_t s;

    memset(&s, 0, sizeof s);
    snprintf(s.method, sizeof s.method, "%s", k->q->method);
    snprintf(s.path, sizeof s.path, "%.511s", k->q->target);
    snprintf(s.api_key, sizeof s.api_key, "%.255s", key);
    snprintf(s.anthropic_version, sizeof s.anthropic_version, "%.31s", k->q->version);
    pthread_mutex_lock(&f->lock);
    f->count++;
    if (f->recording && f->nseen == f->seen_cap) {
        size_t cap = f->seen_cap ? f->seen_cap * 2 : 64;
        plxt_llm_seen_t *g = realloc(f->seen, cap * sizeof *g);
        if (g) {
            f->seen = g;
            f->seen_cap = cap;
        }
    }
    if (f->recording && f->nseen < f->seen_cap) {
        s.body = k->q->json ? json_deep_copy(k->q->json) : NULL;
        f->seen[f->nseen++] = s;
    }
    pthread_mutex_unlock(&f->lock);
}

static void active_add(plxt_llm_t *f, int d)
{
    pthread_mutex_lock(&f->lock);
    f->active += d;
    if (f->active > f->peak)
        f->peak = f->active;
    if (d < 0)
        pthread_cond_broadcast(&f->changed);
    pthread_mutex_unlock(&f->lock);
}

/* the next pushed script, else the default; then the directive */
static void take_script(call_t *k, const char *last_user)
{
    plxt_llm_t *f = k->c->f;
    queued_t *q;

    pthread_mutex_lock(&f->lock);
    q = f->qhead;
    if (q) {
        f->qhead = q->next;
        if (!f->qhead)
            f->qtail = NULL;
        k->s = q->s;
        free(q);
    } else {
        script_copy(&k->s, &f->def);
    }
    pthread_mutex_unlock(&f->lock);
    directive_apply(&k->s, last_user);
}

/* the directive's text for embeddings: the first input that holds one */
static char *embed_directive_text(const call_t *k)
{
    json_t *in = k->proto == P_GEMINI ? NULL : json_object_get(k->q->json, "input"), *v;
    size_t i;
    sb_t b = { 0 };

    if (json_is_string(in))
        return strdup(json_string_value(in));
    json_array_foreach(in, i, v) {
        if (json_is_string(v) && strstr(json_string_value(v), DIRECTIVE))
            return strdup(json_string_value(v));
    }
    if (k->proto == P_GEMINI) {
        json_t *reqs = json_object_get(k->q->json, "requests");
        if (!reqs)
            reqs = json_pack("[O]", k->q->json);
        else
            json_incref(reqs);
        json_array_foreach(reqs, i, v) {
            parts_text(&b, json_object_get(json_object_get(v, "content"), "parts"));
            if (b.p && strstr(b.p, DIRECTIVE))
                break;
            free(b.p);
            b = (sb_t){ 0 };
        }
        json_decref(reqs);
    }
    return b.p;
}

/* the request checks every provider makes before doing anything: 0 to go
 * on, else the answer has been sent (1) or failed (-1) */
static int precheck(call_t *k)
{
    plxt_llm_t *f = k->c->f;
    char qkey[512];
    const char *key = call_key(k, qkey, sizeof qkey);
    json_t *body = k->q->json;
    bool post = strcmp(k->q->method, "POST") == 0;

    if (k->action == A_NONE) {
        char msg[2200];
        snprintf(msg, sizeof msg, "Unknown request URL: %s %.2048s", k->q->method,
                 k->q->path);
        return error_reply(k, 404, msg) ? 1 : -1;
    }
    if (f->key && strcmp(key, f->key) != 0)
        return bad_key(k, key[0] == '\0') ? 1 : -1;
    if (k->proto == P_ANTHROPIC && strcmp(k->q->version, "2023-06-01") != 0)
        return anthropic_error(k, 400, k->q->version[0]
                               ? "anthropic-version: invalid version"
                               : "anthropic-version: header is required") ? 1 : -1;
    if (post && !json_is_object(body))
        return error_reply(k, 400, "We could not parse the JSON body of your request.")
               ? 1 : -1;
    if (k->proto != P_GEMINI && post) {
        const char *model = json_string_value(json_object_get(body, "model"));
        if (!model || !*model)
            return error_reply(k, 400, "you must provide a model parameter") ? 1 : -1;
        snprintf(k->model, sizeof k->model, "%s", model);
        k->stream = json_is_true(json_object_get(body, "stream"));
    }
    if (k->proto == P_ANTHROPIC && !json_is_integer(json_object_get(body, "max_tokens")))
        return anthropic_error(k, 400, "max_tokens: Field required") ? 1 : -1;
    if (k->proto == P_ANTHROPIC && !json_is_array(json_object_get(body, "messages")))
        return anthropic_error(k, 400, "messages: Field required") ? 1 : -1;
    if ((k->action == A_GEM_CHAT || k->action == A_GEM_STREAM)
        && !json_is_array(json_object_get(body, "contents")))
        return gemini_error(k, 400, "* GenerateContentRequest.contents: contents is not "
                                    "specified", NULL) ? 1 : -1;
    if (k->action == A_GEM_STREAM) {
        if (!query_has(k->q->query, "alt=sse"))
            return gemini_error(k, 400, "the fake speaks streamGenerateContent with "
                                        "alt=sse only", NULL) ? 1 : -1;
        k->stream = true;
    }
    return 0;
}

static bool dispatch(call_t *k)
{
    switch (k->action) {
    case A_CHAT:
        return k->proto == P_ANTHROPIC ? anthropic_chat(k) : openai_chat(k);
    case A_GEM_CHAT:
    case A_GEM_STREAM:
        return gemini_chat(k);
    case A_EMBED:
        return openai_embed(k);
    case A_GEM_EMBED:
        return gemini_embed(k);
    case A_GEM_BATCH:
        return gemini_batch(k);
    case A_MODELS:
    case A_MODEL:
        return openai_models(k);
    default:
        return false;
    }
}

/* answer one request; false when the connection must close */
static bool answer(call_t *k)
{
    char *directive_text = NULL;
    bool chat = k->action == A_CHAT || k->action == A_GEM_CHAT
                || k->action == A_GEM_STREAM;
    bool embed = k->action == A_EMBED || k->action == A_GEM_EMBED
                 || k->action == A_GEM_BATCH;
    int pre = precheck(k);

    if (pre != 0)
        return pre > 0;
    if (chat)
        k->prompt_tokens = prompt_scan(k, &directive_text);
    else if (embed)
        directive_text = embed_directive_text(k);
    take_script(k, directive_text);
    free(directive_text);
    if (k->s.status != 0 && k->s.status != 200)
        return error_reply(k, k->s.status, NULL);
    if (k->s.hang && !k->stream) {
        hang_until_gone(k->c);
        return false;
    }
    k->text = reply_text(&k->s);
    k->starts = k->text ? token_starts(k->text, &k->ntok) : NULL;
    if (!k->starts)
        return error_reply(k, 500, "the fake ran out of memory");
    return dispatch(k);
}

static bool handle(conn_t *c, req_t *q)
{
    plxt_llm_t *f = c->f;
    call_t k = { .c = c, .q = q };
    char qkey[512];
    bool ok;

    if (q->body_len)
        q->json = json_loadb(q->body, q->body_len, 0, NULL);
    route(&k);
    record(f, &k, call_key(&k, qkey, sizeof qkey));
    pthread_mutex_lock(&f->lock);
    k.serial = ++f->serial;
    pthread_mutex_unlock(&f->lock);
    k.created = (long long)time(NULL);
    snprintf(k.id, sizeof k.id, k.proto == P_ANTHROPIC ? "msg_fake%lu" : "chatcmpl-fake%lu",
             k.serial);
    active_add(f, 1);
    ok = answer(&k);
    active_add(f, -1);
    free(k.s.text);
    free(k.text);
    free(k.starts);
    return ok;
}

/* ---- connections ---------------------------------------------------------------- */

static void *conn_main(void *arg)
{
    conn_t *c = arg;

    for (;;) {
        req_t *q = calloc(1, sizeof *q);
        bool ok = false, close_after = true;
        if (q && read_head(c, q) > 0 && read_body(c, q) == 0) {
            ok = handle(c, q);
            close_after = q->close;
        }
        if (q)
            req_free(q);
        free(q);
        if (!ok || close_after)
            break;
    }
    close(c->fd);
    free(c->in);
    c->in = NULL;
    pthread_mutex_lock(&c->f->lock);
    c->done = true;
    pthread_mutex_unlock(&c->f->lock);
    return NULL;
}

/* join finished connection threads (all of them when all) */
static void reap(plxt_llm_t *f, bool all)
{
    conn_t *gone = NULL, **pp;

    pthread_mutex_lock(&f->lock);
    for (pp = &f->conns; *pp;) {
        conn_t *c = *pp;
        if (all || c->done) {
            *pp = c->next;
            c->next = gone;
            gone = c;
        } else {
            pp = &c->next;
        }
    }
    pthread_mutex_unlock(&f->lock);
    while (gone) {
        conn_t *next = gone->next;
        pthread_join(gone->thread, NULL);
        free(gone);
        gone = next;
    }
}

static void conn_spawn(plxt_llm_t *f, int fd)
{
    conn_t *c = calloc(1, sizeof *c);
    pthread_attr_t attr;
    int one = 1, rc;

    if (!c) {
        close(fd);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->f = f;
    c->fd = fd;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, STACK_SIZE);
    pthread_mutex_lock(&f->lock);
    rc = pthread_create(&c->thread, &attr, conn_main, c);
    if (rc == 0) {
        c->next = f->conns;
        f->conns = c;
    }
    pthread_mutex_unlock(&f->lock);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        fprintf(stderr, "# fake llm: no thread for a connection: %s\n", strerror(rc));
        close(fd);
        free(c);
    }
}

static void *accept_main(void *arg)
{
    plxt_llm_t *f = arg;

    for (;;) {
        struct pollfd p[2] = { { .fd = f->listen_fd, .events = POLLIN },
                               { .fd = f->stop_pipe[0], .events = POLLIN } };
        int n = poll(p, 2, 1000);
        if (n < 0 && errno != EINTR)
            break;
        if (p[1].revents & POLLIN)
            break;
        reap(f, false);
        if (n <= 0 || !(p[0].revents & POLLIN))
            continue;
        int fd = accept4(f->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0)
            conn_spawn(f, fd);
        else if (errno == EMFILE || errno == ENFILE)
            poll(NULL, 0, 100);   /* out of descriptors: let some close */
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------------------ */

plxt_llm_t *plxt_llm_start_port(const char *key, int port)
{
    plxt_llm_t *f = calloc(1, sizeof *f);
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    pthread_condattr_t ca;
    int one = 1;

    if (!f)
        return NULL;
    f->listen_fd = -1;
    f->stop_pipe[0] = f->stop_pipe[1] = -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    f->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (f->listen_fd < 0 || pipe2(f->stop_pipe, O_CLOEXEC) != 0)
        goto fail;
    setsockopt(f->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(f->listen_fd, (struct sockaddr *)&a, sizeof a) != 0
        || listen(f->listen_fd, 1024) != 0
        || getsockname(f->listen_fd, (struct sockaddr *)&a, &alen) != 0)
        goto fail;
    f->port = ntohs(a.sin_port);
    f->key = key ? strdup(key) : NULL;
    f->recording = true;
    pthread_mutex_init(&f->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&f->changed, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&f->thread, NULL, accept_main, f) != 0) {
        pthread_mutex_destroy(&f->lock);
        pthread_cond_destroy(&f->changed);
        free(f->key);
        goto fail;
    }
    return f;
fail:
    fprintf(stderr, "# fake llm: cannot listen on 127.0.0.1:%d: %s\n", port, strerror(errno));
    if (f->listen_fd >= 0)
        close(f->listen_fd);
    if (f->stop_pipe[0] >= 0) {
        close(f->stop_pipe[0]);
        close(f->stop_pipe[1]);
    }
    free(f);
    return NULL;
}

plxt_llm_t *plxt_llm_start(const char *key)
{
    return plxt_llm_start_port(key, 0);
}

int plxt_llm_port(const plxt_llm_t *f)
{
    return f->port;
}

void plxt_llm_url(const plxt_llm_t *f, char *out, size_t len)
{
    snprintf(out, len, "http://127.0.0.1:%d", f->port);
}

void plxt_llm_set_default(plxt_llm_t *f, const plxt_llm_script_t *s)
{
    static const plxt_llm_script_t none;

    pthread_mutex_lock(&f->lock);
    script_from(&f->def, s ? s : &none);
    pthread_mutex_unlock(&f->lock);
}

void plxt_llm_push(plxt_llm_t *f, const plxt_llm_script_t *s)
{
    queued_t *q = calloc(1, sizeof *q);

    if (!q)
        return;
    script_from(&q->s, s);
    pthread_mutex_lock(&f->lock);
    if (f->qtail)
        f->qtail->next = q;
    else
        f->qhead = q;
    f->qtail = q;
    pthread_mutex_unlock(&f->lock);
}

void plxt_llm_set_recording(plxt_llm_t *f, bool on)
{
    pthread_mutex_lock(&f->lock);
    f->recording = on;
    pthread_mutex_unlock(&f->lock);
}

/* under the lock */
static void forget(plxt_llm_t *f)
{
    while (f->qhead) {
        queued_t *next = f->qhead->next;
        free(f->qhead->s.text);
        free(f->qhead);
        f->qhead = next;
    }
    f->qtail = NULL;
    for (size_t i = 0; i < f->nseen; i++)
        json_decref(f->seen[i].body);
    f->nseen = 0;
    f->count = 0;
    f->peak = f->active;
}

void plxt_llm_reset(plxt_llm_t *f)
{
    pthread_mutex_lock(&f->lock);
    forget(f);
    pthread_mutex_unlock(&f->lock);
}

int plxt_llm_count(plxt_llm_t *f)
{
    int n;

    pthread_mutex_lock(&f->lock);
    n = f->count;
    pthread_mutex_unlock(&f->lock);
    return n;
}

bool plxt_llm_seen(plxt_llm_t *f, int i, plxt_llm_seen_t *out)
{
    bool ok;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&f->lock);
    ok = i >= 0 && (size_t)i < f->nseen;
    if (ok) {
        *out = f->seen[i];
        out->body = out->body ? json_deep_copy(out->body) : NULL;
    }
    pthread_mutex_unlock(&f->lock);
    return ok;
}

void plxt_llm_seen_free(plxt_llm_seen_t *s)
{
    if (!s)
        return;
    json_decref(s->body);
    s->body = NULL;
}

int plxt_llm_active(plxt_llm_t *f)
{
    int n;

    pthread_mutex_lock(&f->lock);
    n = f->active;
    pthread_mutex_unlock(&f->lock);
    return n;
}

bool plxt_llm_wait_active(plxt_llm_t *f, int n, int timeout_ms)
{
    struct timespec deadline;
    bool ok;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->lock);
    while (f->active > n
           && pthread_cond_timedwait(&f->changed, &f->lock, &deadline) != ETIMEDOUT)
        ;
    ok = f->active <= n;
    pthread_mutex_unlock(&f->lock);
    return ok;
}

int plxt_llm_peak(plxt_llm_t *f)
{
    int n;

    pthread_mutex_lock(&f->lock);
    n = f->peak;
    pthread_mutex_unlock(&f->lock);
    return n;
}

void plxt_llm_stop(plxt_llm_t *f)
{
    if (!f)
        return;
    if (write(f->stop_pipe[1], "x", 1) != 1)
        fprintf(stderr, "# fake llm: stop pipe: %s\n", strerror(errno));
    pthread_join(f->thread, NULL);
    reap(f, true);
    close(f->listen_fd);
    close(f->stop_pipe[0]);
    close(f->stop_pipe[1]);
    forget(f);
    free(f->seen);
    free(f->def.text);
    free(f->key);
    pthread_mutex_destroy(&f->lock);
    pthread_cond_destroy(&f->changed);
    free(f);
}
