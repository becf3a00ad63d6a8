/*
 * harness.c - start and stop a real plexusd for integration tests, plus the
 * socket helpers the clients share and a pool of idle connections
 *
 * A server gets a temporary folder of its own (plexus.conf, plugins.d/,
 * server.log), a free loopback port and a scrubbed environment (no
 * PLEXUS_* variable leaks in from the developer's shell). Starting waits,
 * bounded, for GET /health/live; stopping is SIGTERM, a bounded wait, then
 * SIGKILL. Servers still running when the test program exits (a failed
 * assertion skipped its teardown) are killed by an atexit handler, so a
 * failing test never leaves a daemon behind.
 */
#include "config.h"
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define LOG_MAX          (16u << 20)
#define MAX_SERVERS      32
#define MAX_ARGV         64
#define MAX_ENV          512
#define START_TRIES      3
#define STOP_TIMEOUT_MS  30000

static plxt_server_t *live[MAX_SERVERS];
static bool atexit_set;

/* ---- small utilities ---------------------------------------------------- */

const char *plxt_fmt(const char *fmt, ...)
{
    static _Thread_local char bufs[8][32768];
    static _Thread_local unsigned next;
    char *b = bufs[next++ % 8];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(b, sizeof bufs[0], fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof bufs[0]) {
        fprintf(stderr, "plxt_fmt: %d bytes do not fit in %zu\n", n, sizeof bufs[0]);
        abort();
    }
    return b;
}

double plxt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

void plxt_sleep_ms(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

void plxt_require_postgres(const char *test_name)
{
    const char *host = getenv("PGHOST");

    if (host && *host)
        return;
    fprintf(stderr,
            "\n*** SKIP: no PostgreSQL (PGHOST unset): %s not run ***\n"
            "*** run scripts/test.sh, or start scripts/pg-cluster.sh and export its env ***\n\n",
            test_name);
    fflush(stderr);
    exit(77);
}

static const char *env_dir(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : ".";
}

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (!f) {
        fprintf(stderr, "harness: cannot write \"%s\": %s\n", path,
                strerror(errno));
        return -1;
    }
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

static char *read_file_bounded(const char *path, size_t max, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f)
        return NULL;
    buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, max, f);
    fclose(f);
    buf[n] = '\0';
    if (len_out)
        *len_out = n;
    return buf;
}

/* A growable text buffer for the config files; aborts the test on ENOMEM,
 * which is what a test wants. */
typedef struct sbuf {
    char  *p;
    size_t len, cap;
} sbuf_t;

static void sb_add(sbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void sb_add(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0,
                      fmt, ap);
        va_end(ap);
        if (n < 0)
            abort();
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        b->cap = (b->cap + (size_t)n + 1) * 2;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
}

/* ---- sockets ------------------------------------------------------------ */

int plxt_free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t alen = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int port = -1;

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0
        && getsockname(fd, (struct sockaddr *)&a, &alen) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

int plxt_url_split(const char *url, char host[64], int *port, const char **path)
{
    const char *p = url, *colon, *slash;
    size_t hlen;

    if (strncmp(p, "http://", 7) == 0)
        p += 7;
    else if (strncmp(p, "ws://", 5) == 0)
        p += 5;
    slash = strchr(p, '/');
    colon = memchr(p, ':', slash ? (size_t)(slash - p) : strlen(p));
    hlen = colon ? (size_t)(colon - p) : slash ? (size_t)(slash - p) : strlen(p);
    if (hlen == 0 || hlen >= 64)
        return -1;
    memcpy(host, p, hlen);
    host[hlen] = '\0';
    *port = colon ? atoi(colon + 1) : 80;
    if (path)
        *path = slash ? slash : "/";
    return *port > 0 && *port < 65536 ? 0 : -1;
}

int plxt_tcp_connect(const char *host, int port, int timeout_ms)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd, err = 0;
    socklen_t elen = sizeof err;
    struct pollfd pfd;

    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1)
        return -1;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    pfd = (struct pollfd){ .fd = fd, .events = POLLOUT };
    if (poll(&pfd, 1, timeout_ms) != 1
        || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &elen) != 0 || err) {
        close(fd);
        return -1;
    }
    return fd;
}

int plxt_sock_send_all(int fd, const void *buf, size_t len, int timeout_ms)
{
    const char *p = buf;
    double deadline = plxt_now_ms() + timeout_ms;

    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return -1;
        int left = (int)(deadline - plxt_now_ms());
        struct pollfd pfd = { .fd = fd, .events = POLLOUT };
        if (left <= 0 || poll(&pfd, 1, left) < 0)
            return -1;
    }
    return 0;
}

long plxt_sock_recv(int fd, void *buf, size_t len, int timeout_ms)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    double deadline = plxt_now_ms() + timeout_ms;

    for (;;) {
        ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
        if (n >= 0)
            return (long)n;
        if (errno != EAGAIN && errno != EINTR)
            return -1;
        int left = (int)(deadline - plxt_now_ms());
        if (left <= 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (poll(&pfd, 1, left) < 0 && errno != EINTR)
            return -1;
    }
}

/* ---- the configuration a server gets -------------------------------------- */

/* Does the caller's raw config set section.key? Then the harness does not. */
static bool user_sets(const char *cfg, const char *section, const char *key)
{
    char cur[64] = "";
    const char *line = cfg;

    while (cfg && line && *line) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) : strlen(line);
        const char *p = line;

        while (p < line + n && (*p == ' ' || *p == '\t'))
            p++;
        if (*p == '[') {
            const char *close = memchr(p, ']', (size_t)(line + n - p));
            size_t sl = close ? (size_t)(close - p - 1) : 0;
            if (sl < sizeof cur) {
                memcpy(cur, p + 1, sl);
                cur[sl] = '\0';
            }
        } else if (strcmp(cur, section) == 0) {
            size_t kl = strlen(key);
            if (strncmp(p, key, kl) == 0) {
                const char *q = p + kl;
                while (*q == ' ' || *q == '\t')
                    q++;
                if (*q == '=' || *q == ':')
                    return true;
            }
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

static void conf_default(sbuf_t *b, const char *cfg, const char *section,
                         const char *key, const char *value)
{
    if (!user_sets(cfg, section, key))
        sb_add(b, "[%s]\n%s = %s\n", section, key, value);
}

static int write_main_conf(const plxt_server_t *s, const plxt_server_opts_t *o)
{
    const char *cfg = o->config;
    char listen[32], plugins[300], module_dir[4096];
    sbuf_t b = { 0 };
    int rc;

    snprintf(listen, sizeof listen, "127.0.0.1:%d", s->port);
    snprintf(plugins, sizeof plugins, "%s/plugins.d", s->dir);
    snprintf(module_dir, sizeof module_dir, "%s/tests/plugins/.libs",
             env_dir("PLX_BUILDDIR"));
    sb_add(&b, "# plexus.conf written by the test harness\n");
    conf_default(&b, cfg, "server", "listen", listen);
    conf_default(&b, cfg, "server", "data_dir", env_dir("PLX_SRCDIR"));
    conf_default(&b, cfg, "server", "plugins_dir", plugins);
    conf_default(&b, cfg, "server", "module_dir", module_dir);
    conf_default(&b, cfg, "log", "level", "info");
    /* identity refuses to start without its keys outside dev mode; tests
     * that need real keys set them (and dev_mode = no) themselves */
    conf_default(&b, cfg, "server", "dev_mode", "yes");
    if (o->db_url)
        conf_default(&b, cfg, "database", "url", o->db_url);
    if (cfg)
        sb_add(&b, "\n# from the test\n%s\n", cfg);
    rc = write_file(s->conf_path, b.p);
    free(b.p);
    return rc;
}

static int write_module_conf(const plxt_server_t *s, const plxt_module_t *m)
{
    char path[600], sqldir[4096];
    struct stat st;
    sbuf_t b = { 0 };
    int rc;

    snprintf(path, sizeof path, "%s/plugins.d/%s.conf", s->dir, m->name);
    sb_add(&b, "# written by the test harness\n[module]\nload = %s\n",
           m->no_load ? "no" : "yes");
    if (m->path)
        sb_add(&b, "path = %s\n", m->path);
    else
        sb_add(&b, "path = %s/tests/plugins/.libs/%s.so\n",
               env_dir("PLX_BUILDDIR"), m->name);
    snprintf(sqldir, sizeof sqldir, "%s/tests/plugins/%s/sql",
             env_dir("PLX_SRCDIR"), m->name);
    if (stat(sqldir, &st) == 0 && S_ISDIR(st.st_mode))
        sb_add(&b, "data_dir = %s/tests/plugins/%s\n", env_dir("PLX_SRCDIR"),
               m->name);
    if (m->config)
        sb_add(&b, "\n%s\n", m->config);
    rc = write_file(path, b.p);
    free(b.p);
    return rc;
}

static int write_config(plxt_server_t *s, const plxt_server_opts_t *o)
{
    char dir[300];

    snprintf(dir, sizeof dir, "%s/plugins.d", s->dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -1;
    if (write_main_conf(s, o) != 0)
        return -1;
    for (const plxt_module_t *m = o->modules; m && m->name; m++)
        if (write_module_conf(s, m) != 0)
            return -1;
    return 0;
}

/* ---- spawning ------------------------------------------------------------ */

typedef struct spawn_args {
    char *argv[MAX_ARGV];
    char *envp[MAX_ENV];
    char  words[1024];    /* PLXT_WRAPPER split in place */
    char  exe[4096];
    char  wrapper_exe[4096];
} spawn_args_t;

static bool is_overridden(const char *entry, const char *const *env)
{
    const char *eq = strchr(entry, '=');
    size_t n = eq ? (size_t)(eq - entry) : strlen(entry);

    if (strncmp(entry, "PLEXUS_", 7) == 0)
        return true;   /* the developer's shell must not leak into a test */
    for (; env && *env; env++)
        if (strncmp(*env, entry, n) == 0 && (*env)[n] == '=')
            return true;
    return false;
}

static int build_env(spawn_args_t *a, const char *const *env)
{
    size_t n = 0;

    for (char **e = environ; *e && n < MAX_ENV - 1; e++)
        if (!is_overridden(*e, env))
            a->envp[n++] = *e;
    for (; env && *env; env++) {
        if (n >= MAX_ENV - 1)
            return -1;
        a->envp[n++] = (char *)*env;
    }
    a->envp[n] = NULL;
    return 0;
}

/* find a program on PATH (the wrapper is named like "valgrind") */
static int which(const char *prog, char *out, size_t outlen)
{
    const char *path = getenv("PATH");

    if (strchr(prog, '/')) {
        snprintf(out, outlen, "%s", prog);
        return access(out, X_OK);
    }
    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        snprintf(out, outlen, "%.*s/%s", (int)n, path, prog);
        if (access(out, X_OK) == 0)
            return 0;
        path = end ? end + 1 : NULL;
    }
    return -1;
}

/* argv: [wrapper words...] exe --config conf [args...] */
static int build_argv(spawn_args_t *a, const char *conf,
                      const char *const *args)
{
    const char *wrapper = getenv("PLXT_WRAPPER");
    size_t n = 0;

    snprintf(a->exe, sizeof a->exe, "%s/plexusd", env_dir("PLX_BUILDDIR"));
    if (wrapper && *wrapper) {
        snprintf(a->words, sizeof a->words, "%s", wrapper);
        for (char *save = NULL, *w = strtok_r(a->words, " \t", &save);
             w && n < MAX_ARGV / 2; w = strtok_r(NULL, " \t", &save))
            a->argv[n++] = w;
        if (n && which(a->argv[0], a->wrapper_exe, sizeof a->wrapper_exe) != 0) {
            fprintf(stderr, "harness: PLXT_WRAPPER \"%s\" not found\n", a->argv[0]);
            return -1;
        }
    }
    a->argv[n++] = a->exe;
    if (conf) {
        a->argv[n++] = (char *)"--config";
        a->argv[n++] = (char *)conf;
    }
    for (; args && *args && n < MAX_ARGV - 1; args++)
        a->argv[n++] = (char *)*args;
    a->argv[n] = NULL;
    return 0;
}

/* fork and exec with stdout+stderr on out_fd; everything prepared before
 * fork, so the child does only async-signal-safe work */
static pid_t spawn(spawn_args_t *a, int out_fd)
{
    const char *file = a->wrapper_exe[0] ? a->wrapper_exe : a->exe;
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pid_t pid = fork();

    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(out_fd, 1);
        dup2(out_fd, 2);
        execve(file, a->argv, a->envp);
        _exit(127);
    }
    if (devnull >= 0)
        close(devnull);
    return pid;
}

static int decode_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return -1;
}

/* ---- the registry of live servers (for the atexit safety net) ------------- */

static void remove_tree(const char *dir);
static int server_destroy(plxt_server_t *s, bool started);

static void kill_leftovers(void)
{
    for (int i = 0; i < MAX_SERVERS; i++) {
        plxt_server_t *s = live[i];
        if (!s)
            continue;
        if (!s->exited) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
        }
        fprintf(stderr, "harness: server %d was still running at exit, killed\n",
                (int)s->pid);
        if (!getenv("PLXT_KEEP"))
            remove_tree(s->dir);
        live[i] = NULL;
    }
}

static void track(plxt_server_t *s, bool on)
{
    if (!atexit_set) {
        atexit(kill_leftovers);
        atexit_set = true;
    }
    for (int i = 0; i < MAX_SERVERS; i++) {
        if (on && !live[i]) {
            live[i] = s;
            return;
        }
        if (!on && live[i] == s) {
            live[i] = NULL;
            return;
        }
    }
}

/* ---- start, wait, stop ----------------------------------------------------- */

int plxt_server_wait(plxt_server_t *s, int timeout_ms)
{
    double deadline = plxt_now_ms() + timeout_ms;
    int wstatus;

    while (!s->exited) {
        pid_t r = waitpid(s->pid, &wstatus, WNOHANG);
        if (r == s->pid) {
            s->exited = true;
            s->status = decode_status(wstatus);
            break;
        }
        if (r < 0 && errno != EINTR) {
            s->exited = true;
            s->status = -1;
            break;
        }
        if (plxt_now_ms() >= deadline)
            return -1;
        plxt_sleep_ms(10);
    }
    return s->status;
}

int plxt_server_signal(plxt_server_t *s, int sig)
{
    if (s->exited)
        return -1;
    return kill(s->pid, sig);
}

static bool log_has_bind_error(const plxt_server_t *s)
{
    return plxt_server_log_contains(s, "in use")
           || plxt_server_log_contains(s, "cannot bind");
}

/* 1 ready, 0 exited (s->status), -1 timed out */
static int wait_ready(plxt_server_t *s, int timeout_ms)
{
    double deadline = plxt_now_ms() + timeout_ms;
    char url[128];

    snprintf(url, sizeof url, "%s/health/live", s->url);
    while (plxt_now_ms() < deadline) {
        plxt_resp_t resp;
        plxt_req_t req = { .url = url, .timeout_ms = 2000 };

        if (plxt_server_wait(s, 0) >= 0 || s->exited)
            return 0;
        plxt_http_req(&req, &resp);
        long status = resp.status;
        plxt_resp_free(&resp);
        if (status == 200)
            return 1;
        plxt_sleep_ms(50);
    }
    return -1;
}

static int start_timeout(const plxt_server_opts_t *o)
{
    const char *w = getenv("PLXT_WRAPPER");

    if (o->start_timeout_ms > 0)
        return o->start_timeout_ms;
    return w && *w ? 120000 : 30000;
}

static plxt_server_t *server_new(void)
{
    plxt_server_t *s = calloc(1, sizeof *s);
    const char *tmp = getenv("TMPDIR");

    if (!s)
        return NULL;
    snprintf(s->dir, sizeof s->dir, "%s/plxt-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(s->dir)) {
        fprintf(stderr, "harness: mkdtemp \"%s\": %s\n", s->dir, strerror(errno));
        free(s);
        return NULL;
    }
    snprintf(s->conf_path, sizeof s->conf_path, "%s/plexus.conf", s->dir);
    snprintf(s->log_path, sizeof s->log_path, "%s/server.log", s->dir);
    return s;
}

/* one attempt on one port: 1 ready, 0 failed, -1 port taken (retry) */
static int start_once(plxt_server_t *s, const plxt_server_opts_t *o)
{
    spawn_args_t *a = calloc(1, sizeof *a);
    int fd, rc;

    s->port = plxt_free_port();
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d", s->port);
    s->exited = false;
    s->status = 0;
    if (!a || s->port <= 0 || write_config(s, o) != 0
        || build_env(a, o->env) != 0 || build_argv(a, s->conf_path, o->args) != 0) {
        free(a);
        return 0;
    }
    fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        free(a);
        return 0;
    }
    s->pid = spawn(a, fd);
    close(fd);
    free(a);
    if (s->pid < 0)
        return 0;
    track(s, true);
    if (o->no_wait || o->args)
        return 1;
    rc = wait_ready(s, start_timeout(o));
    if (rc == 1)
        return 1;
    if (rc == 0 && log_has_bind_error(s))
        return -1;
    if (rc < 0)
        fprintf(stderr, "harness: plexusd did not answer %s/health/live within %d ms\n",
                s->url, start_timeout(o));
    else
        fprintf(stderr, "harness: plexusd exited with status %d during start\n",
                s->status);
    return 0;
}

plxt_server_t *plxt_server_start(const plxt_server_opts_t *o)
{
    static const plxt_server_opts_t none;
    plxt_server_t *s = server_new();

    if (!o)
        o = &none;
    if (!s)
        return NULL;
    for (int i = 0; i < START_TRIES; i++) {
        int rc = start_once(s, o);
        if (rc == 1)
            return s;
        if (rc == 0)
            break;
        fprintf(stderr, "harness: port %d taken, trying another\n", s->port);
        plxt_server_wait(s, 5000);
        track(s, false);
    }
    fprintf(stderr, "harness: plexusd failed to start; its log (%s):\n", s->log_path);
    server_destroy(s, false);
    return NULL;
}

/* remove a folder the harness made (config files, a log: no symlinks
 * are followed, since lstat says what each entry is) */
static void remove_tree(const char *dir)
{
    DIR *d = dir[0] ? opendir(dir) : NULL;
    struct dirent *e;
    char path[4096];
    struct stat st;

    if (!d)
        return;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            remove_tree(path);
        else
            unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

int plxt_server_stop(plxt_server_t *s)
{
    return s ? server_destroy(s, true) : 0;
}

/* SIGTERM, bounded wait, SIGKILL; print the log's end (the whole of it up
 * to 64 KiB when the start failed), remove the folder, free s */
static int server_destroy(plxt_server_t *s, bool started)
{
    int rc;

    if (!s->exited && s->pid > 0) {
        kill(s->pid, SIGTERM);
        rc = plxt_server_wait(s, STOP_TIMEOUT_MS);
        if (rc < 0) {
            fprintf(stderr, "harness: plexusd %d ignored SIGTERM for %d ms, killing it\n",
                    (int)s->pid, STOP_TIMEOUT_MS);
            kill(s->pid, SIGKILL);
            plxt_server_wait(s, STOP_TIMEOUT_MS);
        }
    }
    rc = s->status;
    fprintf(stderr, "# plexusd %d exited with status %d; the end of its log:\n",
            (int)s->pid, rc);
    plxt_server_log_print(s, started ? 8 * 1024 : 64 * 1024);
    track(s, false);
    if (getenv("PLXT_KEEP"))
        fprintf(stderr, "# kept %s\n", s->dir);
    else
        remove_tree(s->dir);
    free(s);
    return rc;
}

/* ---- the log ------------------------------------------------------------- */

char *plxt_server_log(const plxt_server_t *s)
{
    return read_file_bounded(s->log_path, LOG_MAX, NULL);
}

bool plxt_server_log_contains(const plxt_server_t *s, const char *needle)
{
    char *text = plxt_server_log(s);
    bool found = text && strstr(text, needle);

    free(text);
    return found;
}

bool plxt_server_log_wait(const plxt_server_t *s, const char *needle,
                          int timeout_ms)
{
    double deadline = plxt_now_ms() + timeout_ms;

    for (;;) {
        if (plxt_server_log_contains(s, needle))
            return true;
        if (plxt_now_ms() >= deadline)
            return false;
        plxt_sleep_ms(20);
    }
}

void plxt_server_log_print(const plxt_server_t *s, size_t max_bytes)
{
    size_t len = 0;
    char *text = read_file_bounded(s->log_path, LOG_MAX, &len);
    const char *p;

    if (!text) {
        fprintf(stderr, "# (no log at %s)\n", s->log_path);
        return;
    }
    p = len > max_bytes ? text + len - max_bytes : text;
    if (p != text) {
        const char *nl = strchr(p, '\n');
        p = nl ? nl + 1 : p;
        fprintf(stderr, "# ... (%zu bytes before)\n", (size_t)(p - text));
    }
    while (*p) {
        const char *nl = strchr(p, '\n');
        int n = nl ? (int)(nl - p) : (int)strlen(p);
        fprintf(stderr, "# %.*s\n", n, p);
        p += n + (nl ? 1 : 0);
    }
    free(text);
}

/* ---- one-shot runs --------------------------------------------------------- */

/* reap pid, waiting at most until deadline; true when it was reaped */
static bool reap(pid_t pid, int *wstatus, double deadline)
{
    for (;;) {
        pid_t r = waitpid(pid, wstatus, WNOHANG);
        if (r == pid)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
        if (plxt_now_ms() >= deadline)
            return false;
        plxt_sleep_ms(10);
    }
}

/* collect what the child writes until it closes its end or time runs out */
static void drain(int fd, sbuf_t *out, double deadline)
{
    char buf[4096];

    for (;;) {
        int left = (int)(deadline - plxt_now_ms());
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0 || (poll(&pfd, 1, left) < 0 && errno != EINTR))
            return;
        if (!pfd.revents)
            continue;
        ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0 && out->len < LOG_MAX)
            sb_add(out, "%.*s", (int)n, buf);
        else if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

/* argv[0] "plexusd" means the one in PLX_BUILDDIR; anything else is a path */
static void run_argv(spawn_args_t *a, const char *const *argv)
{
    size_t n = 0;

    if (strcmp(argv[0], "plexusd") == 0)
        snprintf(a->exe, sizeof a->exe, "%s/plexusd", env_dir("PLX_BUILDDIR"));
    else
        snprintf(a->exe, sizeof a->exe, "%s", argv[0]);
    a->argv[n++] = a->exe;
    for (const char *const *p = argv + 1; *p && n < MAX_ARGV - 1; p++)
        a->argv[n++] = (char *)*p;
    a->argv[n] = NULL;
}

int plxt_run(const char *const *argv, const char *const *env, int timeout_ms,
             char **output)
{
    spawn_args_t *a = calloc(1, sizeof *a);
    double deadline = plxt_now_ms() + timeout_ms;
    sbuf_t out = { 0 };
    int fds[2], wstatus = 0;
    bool done;
    pid_t pid;

    if (output)
        *output = NULL;
    if (!a || !argv || !argv[0] || pipe(fds) != 0) {
        free(a);
        return -1;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    run_argv(a, argv);
    build_env(a, env);
    pid = spawn(a, fds[1]);
    close(fds[1]);
    free(a);
    sb_add(&out, "%s", "");
    if (pid > 0)
        drain(fds[0], &out, deadline);
    close(fds[0]);
    done = pid > 0 && reap(pid, &wstatus, deadline);
    if (pid > 0 && !done) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    if (output)
        *output = out.p;
    else
        free(out.p);
    return done ? decode_status(wstatus) : -1;
}

/* ---- idle connections ------------------------------------------------------- */

struct plxt_idle {
    int  n;
    int *fds;
    bool *closed;
};

long plxt_raise_nofile(long n)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -1;
    if ((long)rl.rlim_cur < n) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || (long)rl.rlim_max >= n
                          ? (rlim_t)n : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    return (long)rl.rlim_cur;
}

/* start a non-blocking connect; the fd or -1 */
static int connect_start(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

    if (fd < 0)
        return -1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 || errno == EINPROGRESS)
        return fd;
    close(fd);
    return -1;
}

/* wait until every socket finished connecting; the count that did */
static int connect_finish(plxt_idle_t *c, int timeout_ms)
{
    struct pollfd *p = calloc((size_t)c->n, sizeof *p);
    double deadline = plxt_now_ms() + timeout_ms;
    int ok = 0, pending = c->n;

    if (!p)
        return 0;
    for (int i = 0; i < c->n; i++)
        p[i] = (struct pollfd){ .fd = c->fds[i], .events = POLLOUT };
    while (pending > 0 && plxt_now_ms() < deadline) {
        int left = (int)(deadline - plxt_now_ms());
        if (poll(p, (nfds_t)c->n, left > 0 ? left : 0) <= 0)
            break;
        for (int i = 0; i < c->n; i++) {
            int err = 0;
            socklen_t el = sizeof err;
            if (p[i].fd < 0 || !p[i].revents)
                continue;
            getsockopt(p[i].fd, SOL_SOCKET, SO_ERROR, &err, &el);
            ok += err == 0 && !(p[i].revents & (POLLERR | POLLHUP));
            p[i].fd = -1;   /* poll ignores negative fds */
            pending--;
        }
    }
    free(p);
    return ok;
}

plxt_idle_t *plxt_idle_open(int port, int n, int timeout_ms)
{
    plxt_idle_t *c = calloc(1, sizeof *c);
    int ok;

    if (!c || n <= 0)
        goto fail;
    plxt_raise_nofile(n + 256L);
    c->fds = calloc((size_t)n, sizeof *c->fds);
    c->closed = calloc((size_t)n, sizeof *c->closed);
    if (!c->fds || !c->closed)
        goto fail;
    for (c->n = 0; c->n < n; c->n++) {
        c->fds[c->n] = connect_start(port);
        if (c->fds[c->n] < 0) {
            fprintf(stderr, "harness: idle connection %d: %s\n", c->n, strerror(errno));
            goto fail;
        }
    }
    ok = connect_finish(c, timeout_ms);
    if (ok == n)
        return c;
    fprintf(stderr, "harness: only %d of %d idle connections connected\n", ok, n);
fail:
    plxt_idle_close(c);
    return NULL;
}

int plxt_idle_count(const plxt_idle_t *c)
{
    return c ? c->n : 0;
}

int plxt_idle_closed(plxt_idle_t *c)
{
    char buf[1024];
    int closed = 0;

    for (int i = 0; c && i < c->n; i++) {
        while (!c->closed[i]) {
            ssize_t r = recv(c->fds[i], buf, sizeof buf, MSG_DONTWAIT);
            if (r > 0)
                continue;   /* the server said something (a 408): read on */
            if (r == 0 || (errno != EAGAIN && errno != EINTR))
                c->closed[i] = true;
            break;
        }
        closed += c->closed[i];
    }
    return closed;
}

void plxt_idle_close(plxt_idle_t *c)
{
    if (!c)
        return;
    for (int i = 0; c->fds && i < c->n; i++)
        if (c->fds[i] >= 0)
            close(c->fds[i]);
    free(c->fds);
    free(c->closed);
    free(c);
}
