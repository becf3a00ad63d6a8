/*
 * tcp_proxy.c - an in-process TCP proxy that can make a server go away
 *
 * Tests put it between plexusd and PostgreSQL. One thread polls the
 * listening socket, a wake-up pipe and every forwarded pair; each direction
 * has a bounded buffer and is written without blocking. pause() closes every
 * pair and makes new connections close at once, exactly what a client sees
 * when its database restarts or the network drops; resume() forwards again.
 * pause() returns only once the proxy thread has closed the connections, so
 * a test can assert right after it.
 */
#include "config.h"
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define PROXY_MAX_PAIRS   256
#define PROXY_BUF         65536
#define UPSTREAM_MS       3000

typedef struct dir_buf {
    char   data[PROXY_BUF];
    size_t len;           /* bytes waiting to be written */
} dir_buf_t;

typedef struct pair {
    int       a, b;       /* a: the client, b: upstream */
    dir_buf_t ab, ba;
} pair_t;

struct plxt_proxy {
    pthread_t       thread;
    int             lfd;
    int             wake[2];
    int             port;
    char            host[200];
    int             tport;
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    bool            paused;
    bool            stopping;
    unsigned        req_gen, done_gen;   /* pause acknowledgements */
    int             active;
    pair_t         *pairs[PROXY_MAX_PAIRS];   /* owned by the thread */
};

/* ---- connections ----------------------------------------------------------- */

static void set_flags(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

static int connect_unix(const char *dir, int port)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    int fd;

    if ((size_t)snprintf(a.sun_path, sizeof a.sun_path, "%s/.s.PGSQL.%d", dir, port)
        >= sizeof a.sun_path)
        return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    set_flags(fd);
    return fd;
}

static int connect_upstream(const plxt_proxy_t *p)
{
    if (p->host[0] == '/')
        return connect_unix(p->host, p->tport);
    return plxt_tcp_connect(p->host, p->tport, UPSTREAM_MS);
}

static void pair_close(plxt_proxy_t *p, int i)
{
    close(p->pairs[i]->a);
    close(p->pairs[i]->b);
    free(p->pairs[i]);
    p->pairs[i] = NULL;
    pthread_mutex_lock(&p->mu);
    p->active--;
    pthread_mutex_unlock(&p->mu);
}

static void close_all(plxt_proxy_t *p)
{
    for (int i = 0; i < PROXY_MAX_PAIRS; i++)
        if (p->pairs[i])
            pair_close(p, i);
}

static void on_accept(plxt_proxy_t *p)
{
    int fd = accept(p->lfd, NULL, NULL);
    bool paused;
    pair_t *pr;
    int slot = -1;

    if (fd < 0)
        return;
    set_flags(fd);
    pthread_mutex_lock(&p->mu);
    paused = p->paused;
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < PROXY_MAX_PAIRS && slot < 0; i++)
        if (!p->pairs[i])
            slot = i;
    if (paused || slot < 0 || !(pr = calloc(1, sizeof *pr))) {
        close(fd);
        return;
    }
    pr->a = fd;
    pr->b = connect_upstream(p);
    if (pr->b < 0) {
        close(fd);
        free(pr);
        return;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
    p->pairs[slot] = pr;
    pthread_mutex_lock(&p->mu);
    p->active++;
    pthread_mutex_unlock(&p->mu);
}

/* ---- moving bytes ------------------------------------------------------------ */

/* write what is buffered; -1 when the peer is gone */
static int flush(int to, dir_buf_t *d)
{
    while (d->len) {
        ssize_t n = send(to, d->data, d->len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR ? 0 : -1;
        memmove(d->data, d->data + n, d->len - (size_t)n);
        d->len -= (size_t)n;
    }
    return 0;
}

/* read into the buffer and forward; -1 when from closed or failed */
static int pump(int from, int to, dir_buf_t *d)
{
    ssize_t n = recv(from, d->data + d->len, sizeof d->data - d->len, MSG_DONTWAIT);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        flush(to, d);   /* best effort: the last message before a close */
        return -1;
    }
    if (n > 0)
        d->len += (size_t)n;
    return flush(to, d);
}

static int pair_events(const dir_buf_t *in, const dir_buf_t *out)
{
    return (in->len < PROXY_BUF ? POLLIN : 0) | (out->len ? POLLOUT : 0);
}

static bool pair_step(pair_t *pr, short rev_a, short rev_b)
{
    if ((rev_a & POLLOUT) && flush(pr->a, &pr->ba) != 0)
        return false;
    if ((rev_b & POLLOUT) && flush(pr->b, &pr->ab) != 0)
        return false;
    if ((rev_a & (POLLIN | POLLHUP | POLLERR)) && pump(pr->a, pr->b, &pr->ab) != 0)
        return false;
    if ((rev_b & (POLLIN | POLLHUP | POLLERR)) && pump(pr->b, pr->a, &pr->ba) != 0)
        return false;
    return true;
}

/* ---- the thread ------------------------------------------------------------------ */

/* handle the wake-up pipe: false when the thread must end */
static bool on_wake(plxt_proxy_t *p)
{
    char buf[64];
    bool go_on;

    while (read(p->wake[0], buf, sizeof buf) > 0)
        ;
    pthread_mutex_lock(&p->mu);
    go_on = !p->stopping;
    bool paused = p->paused;
    unsigned gen = p->req_gen;
    pthread_mutex_unlock(&p->mu);
    if (paused || !go_on)
        close_all(p);
    pthread_mutex_lock(&p->mu);
    p->done_gen = gen;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return go_on;
}

static void *proxy_main(void *arg)
{
    plxt_proxy_t *p = arg;
    struct pollfd fds[2 + 2 * PROXY_MAX_PAIRS];
    int idx[PROXY_MAX_PAIRS];

    for (;;) {
        nfds_t n = 2;
        fds[0] = (struct pollfd){ .fd = p->wake[0], .events = POLLIN };
        fds[1] = (struct pollfd){ .fd = p->lfd, .events = POLLIN };
        for (int i = 0; i < PROXY_MAX_PAIRS; i++) {
            idx[i] = -1;
            if (!p->pairs[i])
                continue;
            idx[i] = (int)n;
            fds[n++] = (struct pollfd){ .fd = p->pairs[i]->a,
                .events = (short)pair_events(&p->pairs[i]->ab, &p->pairs[i]->ba) };
            fds[n++] = (struct pollfd){ .fd = p->pairs[i]->b,
                .events = (short)pair_events(&p->pairs[i]->ba, &p->pairs[i]->ab) };
        }
        if (poll(fds, n, 1000) < 0 && errno != EINTR)
            break;
        if ((fds[0].revents & POLLIN) && !on_wake(p))
            break;
        for (int i = 0; i < PROXY_MAX_PAIRS; i++)
            if (idx[i] >= 0 && p->pairs[i]
                && !pair_step(p->pairs[i], fds[idx[i]].revents, fds[idx[i] + 1].revents))
                pair_close(p, i);
        if (fds[1].revents & POLLIN)
            on_accept(p);
    }
    close_all(p);
    return NULL;
}

/* ---- the API -------------------------------------------------------------------- */

static int listen_loopback(int *port)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 128) != 0
        || getsockname(fd, (struct sockaddr *)&a, &alen) != 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

plxt_proxy_t *plxt_proxy_start(const char *target_host, int target_port)
{
    plxt_proxy_t *p = calloc(1, sizeof *p);

    if (!p)
        return NULL;
    snprintf(p->host, sizeof p->host, "%s", target_host);
    p->tport = target_port;
    p->wake[0] = p->wake[1] = -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->lfd = listen_loopback(&p->port);
    if (p->lfd < 0 || pipe(p->wake) != 0)
        goto fail;
    set_flags(p->wake[0]);
    set_flags(p->wake[1]);
    if (pthread_create(&p->thread, NULL, proxy_main, p) == 0)
        return p;
fail:
    if (p->lfd >= 0)
        close(p->lfd);
    if (p->wake[0] >= 0) {
        close(p->wake[0]);
        close(p->wake[1]);
    }
    free(p);
    return NULL;
}

int plxt_proxy_port(const plxt_proxy_t *p)
{
    return p->port;
}

/* tell the thread and wait until it has acted */
static void poke(plxt_proxy_t *p)
{
    unsigned gen;

    pthread_mutex_lock(&p->mu);
    gen = ++p->req_gen;
    pthread_mutex_unlock(&p->mu);
    if (write(p->wake[1], "x", 1) < 0 && errno != EAGAIN)
        return;
    pthread_mutex_lock(&p->mu);
    while ((int)(p->done_gen - gen) < 0)
        pthread_cond_wait(&p->cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

void plxt_proxy_pause(plxt_proxy_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->paused = true;
    pthread_mutex_unlock(&p->mu);
    poke(p);
}

void plxt_proxy_resume(plxt_proxy_t *p)
{
    pthread_mutex_lock(&p->mu);
    p->paused = false;
    pthread_mutex_unlock(&p->mu);
    poke(p);
}

int plxt_proxy_active(plxt_proxy_t *p)
{
    int n;

    pthread_mutex_lock(&p->mu);
    n = p->active;
    pthread_mutex_unlock(&p->mu);
    return n;
}

void plxt_proxy_stop(plxt_proxy_t *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_mutex_unlock(&p->mu);
    poke(p);
    pthread_join(p->thread, NULL);
    close(p->lfd);
    close(p->wake[0]);
    close(p->wake[1]);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

char *plxt_proxy_conninfo(const plxt_proxy_t *p, const char *dbname)
{
    const char *user = getenv("PGUSER");
    size_t n = strlen(dbname) + 200 + (user ? strlen(user) : 0);
    char *s = malloc(n);

    if (s)
        snprintf(s, n, "host=127.0.0.1 port=%d dbname=%s user=%s connect_timeout=5",
                 p->port, dbname, user && *user ? user : "postgres");
    return s;
}
