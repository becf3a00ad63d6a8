/*
 * smtp_sink.c - an SMTP server thread that keeps the messages it receives
 * (see smtp_sink.h)
 *
 * One thread serves one session at a time: the clients are plexusd's job
 * workers, which send a message per connection, so sessions are short and
 * a second client waits in the listen backlog. Every read is bounded by a
 * timeout and a stop pipe, so a client that stalls cannot hang the test
 * that owns the sink. Lines are capped at 1000 octets for commands (RFC
 * 5321 4.5.3.1.4) and messages at 1 MiB.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "smtp_sink.h"

#define LINE_MAX_CMD   1000
#define LINE_MAX_DATA  8192
#define MESSAGE_MAX    (1024 * 1024)
#define IO_TIMEOUT_MS  10000

typedef struct kept {
    plxt_mail_t mail;
    bool        taken;
    struct kept *next;
} kept_t;

struct plxt_smtp {
    int             listen_fd;
    int             port;
    int             stop_pipe[2];
    pthread_t       thread;
    pthread_mutex_t lock;
    pthread_cond_t  arrived;
    kept_t         *head, *tail;
    bool            failing;
    int             attempts;
};

/* ---- a session's input ------------------------------------------------------ */

typedef struct conn {
    plxt_smtp_t *s;
    int          fd;
    char         buf[LINE_MAX_DATA * 2];
    size_t       len;
} conn_t;

static bool stop_requested(plxt_smtp_t *s)
{
    struct pollfd p = { .fd = s->stop_pipe[0], .events = POLLIN };

    return poll(&p, 1, 0) > 0;
}

static bool send_text(conn_t *c, const char *text)
{
    size_t len = strlen(text), off = 0;

    while (off < len) {
        ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        off += (size_t)n;
    }
    return true;
}

static bool fill(conn_t *c)
{
    struct pollfd p[2] = { { .fd = c->fd, .events = POLLIN },
                           { .fd = c->s->stop_pipe[0], .events = POLLIN } };
    ssize_t n;

    if (c->len >= sizeof c->buf)
        return false;
    if (poll(p, 2, IO_TIMEOUT_MS) <= 0 || (p[1].revents & POLLIN))
        return false;
    n = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    return true;
}

/* one line without its CRLF (or bare LF) into out; false on EOF, timeout,
 * stop, or a line longer than max */
static bool read_line(conn_t *c, char *out, size_t max)
{
    for (;;) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl) {
            size_t n = (size_t)(nl - c->buf), used = n + 1;
            if (n > 0 && c->buf[n - 1] == '\r')
                n--;
            if (n >= max)
                return false;
            memcpy(out, c->buf, n);
            out[n] = '\0';
            memmove(c->buf, c->buf + used, c->len - used);
            c->len -= used;
            return true;
        }
        if (c->len > max + 2 || !fill(c))
            return false;
    }
}

/* ---- messages ------------------------------------------------------------------- */

static void addr_copy(const char *arg, char *out, size_t outlen)
{
    const char *lt = strchr(arg, '<'), *gt = lt ? strchr(lt, '>') : NULL;
    size_t n;

    if (lt && gt) {
        n = (size_t)(gt - lt - 1);
        arg = lt + 1;
    } else {
        while (*arg == ' ')
            arg++;
        n = strcspn(arg, " ");
    }
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, arg, n);
    out[n] = '\0';
}

static void mail_parse(plxt_mail_t *m)
{
    char *line = m->data;

    m->body = m->data + strlen(m->data);
    while (line && *line) {
        char *end = strstr(line, "\r\n");
        size_t n = end ? (size_t)(end - line) : strlen(line);
        if (n == 0) {
            m->body = end ? end + 2 : line;
            return;
        }
        if (n > 8 && strncasecmp(line, "Subject:", 8) == 0) {
            const char *v = line + 8;
            while (*v == ' ')
                v++;
            size_t vn = n - (size_t)(v - line);
            snprintf(m->subject, sizeof m->subject, "%.*s", (int)vn, v);
        }
        line = end ? end + 2 : NULL;
    }
}

static void keep(plxt_smtp_t *s, plxt_mail_t *m)
{
    kept_t *k = calloc(1, sizeof *k);

    if (!k) {
        free(m->data);
        return;
    }
    k->mail = *m;
    mail_parse(&k->mail);
    pthread_mutex_lock(&s->lock);
    if (s->tail)
        s->tail->next = k;
    else
        s->head = k;
    s->tail = k;
    pthread_cond_broadcast(&s->arrived);
    pthread_mutex_unlock(&s->lock);
}

/* DATA up to the lone ".": dot-unstuffed, lines joined with CRLF */
static bool read_data(conn_t *c, plxt_mail_t *m)
{
    char line[LINE_MAX_DATA];
    size_t cap = 4096, len = 0;
    char *data = malloc(cap);

    if (!data)
        return false;
    while (read_line(c, line, sizeof line)) {
        const char *l = line;
        if (strcmp(line, ".") == 0) {
            data[len] = '\0';
            m->data = data;
            return true;
        }
        if (line[0] == '.')
            l++;   /* RFC 5321 4.5.2: the client doubled a leading dot */
        size_t n = strlen(l);
        if (len + n + 3 > MESSAGE_MAX)
            break;
        while (len + n + 3 > cap) {
            char *grown = realloc(data, cap * 2);
            if (!grown)
                goto fail;
            data = grown;
            cap *= 2;
        }
        memcpy(data + len, l, n);
        len += n;
        data[len++] = '\r';
        data[len++] = '\n';
    }
fail:
    free(data);
    return false;
}

/* ---- the session ----------------------------------------------------------------- */

static bool cmd_is(const char *line, const char *cmd)
{
    size_t n = strlen(cmd);

    return strncasecmp(line, cmd, n) == 0 && (line[n] == '\0' || line[n] == ' '
                                              || line[n] == ':');
}

/* the argument after "MAIL FROM:" or "RCPT TO:" */
static const char *cmd_arg(const char *line)
{
    const char *colon = strchr(line, ':');

    return colon ? colon + 1 : "";
}

/* MAIL FROM: counted, refused with 451 in failing mode */
static bool on_mail(conn_t *c, const char *line, plxt_mail_t *m, bool *have_from)
{
    bool failing;

    pthread_mutex_lock(&c->s->lock);
    c->s->attempts++;
    failing = c->s->failing;
    pthread_mutex_unlock(&c->s->lock);
    if (failing)
        return send_text(c, "451 4.3.0 temporarily unable to accept mail\r\n");
    memset(m, 0, sizeof *m);
    addr_copy(cmd_arg(line), m->from, sizeof m->from);
    *have_from = true;
    return send_text(c, "250 2.1.0 ok\r\n");
}

static void session(plxt_smtp_t *s, int fd)
{
    conn_t *c = calloc(1, sizeof *c);
    char line[LINE_MAX_CMD + 1];
    plxt_mail_t m;
    bool have_from = false, ok;

    if (!c)
        return;
    c->s = s;
    c->fd = fd;
    memset(&m, 0, sizeof m);
    ok = send_text(c, "220 sink.test ESMTP plxt smtp sink\r\n");
    while (ok && read_line(c, line, sizeof line)) {
        if (cmd_is(line, "EHLO"))
            ok = send_text(c, "250-sink.test\r\n250-8BITMIME\r\n250 SIZE 1048576\r\n");
        else if (cmd_is(line, "HELO"))
            ok = send_text(c, "250 sink.test\r\n");
        else if (cmd_is(line, "MAIL")) {
            ok = on_mail(c, line, &m, &have_from);
        } else if (cmd_is(line, "RCPT")) {
            if (!have_from) {
                ok = send_text(c, "503 5.5.1 MAIL first\r\n");
                continue;
            }
            if (m.nrcpt++ == 0)
                addr_copy(cmd_arg(line), m.to, sizeof m.to);
            ok = send_text(c, "250 2.1.5 ok\r\n");
        } else if (cmd_is(line, "DATA")) {
            if (!have_from || m.nrcpt == 0) {
                ok = send_text(c, "503 5.5.1 RCPT first\r\n");
                continue;
            }
            ok = send_text(c, "354 end data with <CR><LF>.<CR><LF>\r\n")
                 && read_data(c, &m);
            if (ok) {
                keep(s, &m);
                memset(&m, 0, sizeof m);
                have_from = false;
                ok = send_text(c, "250 2.0.0 queued\r\n");
            }
        } else if (cmd_is(line, "RSET")) {
            memset(&m, 0, sizeof m);
            have_from = false;
            ok = send_text(c, "250 2.0.0 ok\r\n");
        } else if (cmd_is(line, "NOOP")) {
            ok = send_text(c, "250 2.0.0 ok\r\n");
        } else if (cmd_is(line, "QUIT")) {
            send_text(c, "221 2.0.0 bye\r\n");
            break;
        } else {
            ok = send_text(c, "502 5.5.2 command not implemented\r\n");
        }
    }
    close(fd);
    free(c);
}

static void *sink_main(void *arg)
{
    plxt_smtp_t *s = arg;

    for (;;) {
        struct pollfd p[2] = { { .fd = s->listen_fd, .events = POLLIN },
                               { .fd = s->stop_pipe[0], .events = POLLIN } };
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents & POLLIN)
            break;
        if (!(p[0].revents & POLLIN))
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd >= 0)
            session(s, fd);
        if (stop_requested(s))
            break;
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------------------ */

plxt_smtp_t *plxt_smtp_start(void)
{
    plxt_smtp_t *s = calloc(1, sizeof *s);
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    int one = 1;

    if (!s)
        return NULL;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 || pipe(s->stop_pipe) != 0)
        goto fail;
    setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) != 0
        || listen(s->listen_fd, 16) != 0
        || getsockname(s->listen_fd, (struct sockaddr *)&a, &alen) != 0)
        goto fail;
    s->port = ntohs(a.sin_port);
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->arrived, NULL);
    if (pthread_create(&s->thread, NULL, sink_main, s) != 0)
        goto fail;
    return s;
fail:
    fprintf(stderr, "# smtp sink: cannot listen: %s\n", strerror(errno));
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    free(s);
    return NULL;
}

int plxt_smtp_port(const plxt_smtp_t *s)
{
    return s->port;
}

void plxt_smtp_set_failing(plxt_smtp_t *s, bool failing)
{
    pthread_mutex_lock(&s->lock);
    s->failing = failing;
    pthread_mutex_unlock(&s->lock);
}

int plxt_smtp_attempts(plxt_smtp_t *s)
{
    int n;

    pthread_mutex_lock(&s->lock);
    n = s->attempts;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static plxt_mail_t *mail_copy(const plxt_mail_t *m)
{
    plxt_mail_t *c = malloc(sizeof *c);

    if (!c)
        return NULL;
    *c = *m;
    c->data = strdup(m->data);
    if (!c->data) {
        free(c);
        return NULL;
    }
    c->body = c->data + (m->body - m->data);
    return c;
}

static bool matches(const plxt_mail_t *m, const char *to, const char *subject)
{
    return strcasecmp(m->to, to) == 0 && (!subject || strcmp(m->subject, subject) == 0);
}

plxt_mail_t *plxt_smtp_wait(plxt_smtp_t *s, const char *to, const char *subject,
                            int timeout_ms)
{
    struct timespec deadline;
    plxt_mail_t *out = NULL;

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    for (;;) {
        for (kept_t *k = s->head; k && !out; k = k->next) {
            if (!k->taken && matches(&k->mail, to, subject)) {
                k->taken = true;
                out = mail_copy(&k->mail);
            }
        }
        if (out || pthread_cond_timedwait(&s->arrived, &s->lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->lock);
    return out;
}

int plxt_smtp_count(plxt_smtp_t *s, const char *to, const char *subject)
{
    int n = 0;

    pthread_mutex_lock(&s->lock);
    for (kept_t *k = s->head; k; k = k->next)
        n += matches(&k->mail, to, subject);
    pthread_mutex_unlock(&s->lock);
    return n;
}

void plxt_mail_free(plxt_mail_t *m)
{
    if (!m)
        return;
    free(m->data);
    free(m);
}

int plxt_mail_link_param(const plxt_mail_t *m, const char *name, char *out,
                         size_t outlen)
{
    char key[64];
    const char *p;
    size_t n;

    snprintf(key, sizeof key, "?%s=", name);
    p = strstr(m->body, key);
    if (!p) {
        snprintf(key, sizeof key, "&%s=", name);
        p = strstr(m->body, key);
    }
    if (!p)
        return -1;
    p += strlen(key);
    n = strcspn(p, "&# \t\r\n");
    if (n == 0 || n >= outlen)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

void plxt_smtp_stop(plxt_smtp_t *s)
{
    if (!s)
        return;
    if (write(s->stop_pipe[1], "x", 1) != 1)
        fprintf(stderr, "# smtp sink: stop pipe: %s\n", strerror(errno));
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    close(s->stop_pipe[0]);
    close(s->stop_pipe[1]);
    for (kept_t *k = s->head, *next; k; k = next) {
        next = k->next;
        free(k->mail.data);
        free(k);
    }
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->arrived);
    free(s);
}
