/*
 * test_http_client.c - plx_http_request seen from outside: the netprobe
 * module makes the outbound calls a test asks for, against a small HTTP
 * server of the test's own on this machine's loopback.
 *
 * SAFETY: every address used here is loopback (127.0.0.1, 127.0.0.2, ::1,
 * localhost). Refusals of other ranges are tested only through the pure
 * classifier (tests/unit/test_netaddr.c), never by connecting.
 *
 * Two servers on one database: "closed" has no allowlist, so every call
 * to loopback is refused by the request-forgery guard (and the local
 * server sees no connection); "open" allows 127.0.0.1/32 and runs the
 * client through statuses, headers, timeouts, bounds, redirects,
 * cancellation and streaming.
 */
/* strcasestr, accept4 */
#define _GNU_SOURCE
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "pgtest.h"

/* ---- the local upstream --------------------------------------------------- */

static int up_fd4 = -1, up_fd6 = -1, up_port;
static int hole_fd = -1, hole_port;          /* listens, never accepts */
static int hole_fillers[4] = { -1, -1, -1, -1 };
static atomic_int up_hits;                   /* connections accepted */
static atomic_bool up_stop;
static pthread_t up_thread;

static int listen_on(int family, const char *addr, int port, int backlog)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_storage ss;
    socklen_t len;

    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        inet_pton(AF_INET, addr, &in->sin_addr);
        len = sizeof *in;
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        inet_pton(AF_INET6, addr, &in6->sin6_addr);
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        len = sizeof *in6;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, backlog) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static bool send_str(int fd, const char *s)
{
    return plxt_sock_send_all(fd, s, strlen(s), 5000) == 0;
}

/* Read the request head (and a Content-Length body) into buf. */
static long read_request(int fd, char *buf, size_t cap)
{
    size_t len = 0;
    char *end = NULL;

    while (!end) {
        if (len + 1 >= cap)
            return -1;
        long n = plxt_sock_recv(fd, buf + len, cap - 1 - len, 5000);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strcasestr(buf, "\r\ncontent-length:");
    size_t want = (size_t)(end + 4 - buf) + (cl && cl < end ? strtoul(cl + 17, NULL, 10) : 0);
    while (len < want && len + 1 < cap) {
        long n = plxt_sock_recv(fd, buf + len, cap - 1 - len, 5000);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        buf[len] = '\0';
    }
    return (long)len;
}

/* wait until the client hangs up, at most ms */
static void wait_hangup(int fd, int ms)
{
    char c;
    double until = plxt_now_ms() + ms;

    while (plxt_now_ms() < until) {
        long n = plxt_sock_recv(fd, &c, 1, 100);
        if (n == 0 || (n < 0 && errno != ETIMEDOUT))
            return;
    }
}

static void reply(int fd, const char *status, const char *extra,
                  const char *body)
{
    send_str(fd, plxt_fmt("HTTP/1.1 %s\r\nContent-Length: %zu\r\n%s"
                          "Connection: close\r\n\r\n%s", status, strlen(body),
                          extra ? extra : "", body));
}

static void serve_one(int fd)
{
    char req[65536], path[256] = "", method[16] = "";
    long n = read_request(fd, req, sizeof req);

    if (n < 0 || sscanf(req, "%15s %255s", method, path) != 2)
        return;
    const char *body = strstr(req, "\r\n\r\n") + 4;

    if (strncmp(path, "/status/", 8) == 0) {
        reply(fd, plxt_fmt("%s Whatever", path + 8),
              "X-Probe: first\r\nx-probe:   last  \r\n", "status body");
    } else if (strcmp(path, "/echo") == 0) {
        const char *h = strcasestr(req, "\r\nX-Test:");
        char test[64] = "-";
        if (h)
            sscanf(h + 9, " %63[^\r]", test);
        const char *ua = strcasestr(req, "\r\nUser-Agent: plexus/") ? "ua" : "no-ua";
        reply(fd, "200 OK", "Content-Type: text/plain\r\n",
              plxt_fmt("%s %s %s %s", method, test, ua, body));
    } else if (strncmp(path, "/big/", 5) == 0 || strncmp(path, "/chunked/", 9) == 0) {
        bool chunked = path[1] == 'c';
        size_t size = strtoul(strchr(path + 1, '/') + 1, NULL, 10);
        char *blob = malloc(size + 1);
        memset(blob, 'a', size);
        blob[size] = '\0';
        bool ok = chunked
            ? send_str(fd, plxt_fmt("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                                    "Connection: close\r\n\r\n%zx\r\n", size))
            : send_str(fd, plxt_fmt("HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n"
                                    "Connection: close\r\n\r\n", size));
        ok = ok && plxt_sock_send_all(fd, blob, size, 5000) == 0;
        if (ok && chunked)
            send_str(fd, "\r\n0\r\n\r\n");
        free(blob);
    } else if (strcmp(path, "/hang") == 0) {
        wait_hangup(fd, 15000);   /* accepts, reads, never answers */
    } else if (strcmp(path, "/trickle") == 0) {
        /* 20 bytes, one every 150 ms */
        if (!send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 20\r\n"
                      "Connection: close\r\n\r\n"))
            return;
        for (int i = 0; i < 20; i++) {
            if (plxt_sock_send_all(fd, "t", 1, 1000) != 0)
                return;
            plxt_sleep_ms(150);
        }
    } else if (strcmp(path, "/redirect") == 0) {
        reply(fd, "302 Found", "Location: /status/201\r\n", "moved");
    } else if (strcmp(path, "/redirect-loop") == 0) {
        reply(fd, "302 Found", "Location: /redirect-loop\r\n", "again");
    } else if (strcmp(path, "/redirect-refused") == 0) {
        /* 127.0.0.2 is loopback too, but not in the allowlist */
        reply(fd, "302 Found",
              plxt_fmt("Location: http://127.0.0.2:%d/status/200\r\n", up_port), "");
    } else if (strcmp(path, "/redirect-ftp") == 0) {
        reply(fd, "302 Found", "Location: ftp://127.0.0.1/file\r\n", "");
    } else if (strcmp(path, "/many-headers") == 0) {
        char *h = malloc(200 * 16 + 1);
        size_t k = 0;
        for (int i = 0; i < 200; i++)
            k += (size_t)sprintf(h + k, "X-H%03d: v\r\n", i);
        reply(fd, "200 OK", h, "x");
        free(h);
    } else {
        reply(fd, "404 Not Found", NULL, "no");
    }
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;

    serve_one(fd);
    shutdown(fd, SHUT_WR);
    close(fd);
    return NULL;
}

static void *up_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&up_stop)) {
        struct pollfd p[2] = { { .fd = up_fd4, .events = POLLIN },
                               { .fd = up_fd6, .events = POLLIN } };
        if (poll(p, up_fd6 >= 0 ? 2 : 1, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (!(p[i].revents & POLLIN))
                continue;
            int c = accept4(p[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (c < 0)
                continue;
            atomic_fetch_add(&up_hits, 1);
            pthread_t t;
            if (pthread_create(&t, NULL, conn_main, (void *)(intptr_t)c) == 0)
                pthread_detach(t);
            else
                close(c);
        }
    }
    return NULL;
}

static bool upstream_start(void)
{
    up_fd4 = listen_on(AF_INET, "127.0.0.1", 0, 64);
    if (up_fd4 < 0)
        return false;
    up_port = bound_port(up_fd4);
    /* the same port on ::1 when the machine has IPv6 loopback */
    up_fd6 = listen_on(AF_INET6, "::1", up_port, 64);

    /* a port whose accept queue is full: SYNs are dropped, so a connect
     * to it hangs until the client's connect timeout */
    hole_fd = listen_on(AF_INET, "127.0.0.1", 0, 0);
    if (hole_fd < 0)
        return false;
    hole_port = bound_port(hole_fd);
    for (int i = 0; i < 4; i++) {
        struct sockaddr_in in = { .sin_family = AF_INET,
                                  .sin_port = htons((uint16_t)hole_port) };
        inet_pton(AF_INET, "127.0.0.1", &in.sin_addr);
        hole_fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(hole_fillers[i], (struct sockaddr *)&in, sizeof in);
    }
    plxt_sleep_ms(100);
    return pthread_create(&up_thread, NULL, up_main, NULL) == 0;
}

static void upstream_stop(void)
{
    atomic_store(&up_stop, true);
    pthread_join(up_thread, NULL);
    for (int i = 0; i < 4; i++)
        if (hole_fillers[i] >= 0)
            close(hole_fillers[i]);
    close(hole_fd);
    close(up_fd4);
    if (up_fd6 >= 0)
        close(up_fd6);
}

/* ---- the servers under test ------------------------------------------------ */

static plxt_server_t *closed_srv, *open_srv;
static char dbname[64];
static char *db_url;

static int group_setup(void **state)
{
    static const plxt_module_t mods[] = { { .name = "netprobe" }, { 0 } };

    (void)state;
    if (!upstream_start() || !(db_url = pgtest_db_create(dbname)))
        return -1;
    plxt_server_opts_t c = { .db_url = db_url, .modules = mods };
    plxt_server_opts_t o = { .db_url = db_url, .modules = mods,
                             .config = "[http_client]\nallow = 127.0.0.1/32\n" };
    closed_srv = plxt_server_start(&c);
    open_srv = closed_srv ? plxt_server_start(&o) : NULL;
    return open_srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(open_srv);

    (void)state;
    if (plxt_server_stop(closed_srv) != 0)
        rc = -1;
    pgtest_db_drop(dbname);
    free(db_url);
    upstream_stop();
    return rc == 0 ? 0 : -1;
}

/* POST the request to netprobe; the answer's JSON (a new reference) */
static json_t *fetch(plxt_server_t *s, json_t *req)
{
    plxt_resp_t resp;
    char *body = json_dumps(req, JSON_COMPACT);
    const char *const hdr[] = { "Content-Type: application/json", NULL };

    json_decref(req);
    assert_int_equal(plxt_http("POST", plxt_fmt("%s/api/v1/netprobe/fetch", s->url),
                               hdr, body, &resp), 0);
    free(body);
    if (resp.status != 200)
        fail_msg("netprobe answered %ld: %s", resp.status, resp.body);
    json_t *j = plxt_resp_json(&resp);
    assert_non_null(j);
    plxt_resp_free(&resp);
    return j;
}

static const char *str(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));
    return s ? s : "(none)";
}

static long long num(json_t *j, const char *key)
{
    return json_integer_value(json_object_get(j, key));
}

static const char *up(const char *host, const char *path)
{
    return plxt_fmt("http://%s:%d%s", host, up_port, path);
}

/* ---- refusals -------------------------------------------------------------- */

static void expect_refused(const char *url)
{
    int before = atomic_load(&up_hits);
    json_t *j = fetch(closed_srv, json_pack("{s:s}", "url", url));

    if (strcmp(str(j, "result"), "forbidden") != 0)
        fail_msg("%s: expected forbidden, found %s", url, str(j, "result"));
    assert_int_equal(atomic_load(&up_hits), before);   /* never connected */
    json_decref(j);
}

static void test_loopback_refused_without_allowlist(void **state)
{
    (void)state;
    expect_refused(up("127.0.0.1", "/status/200"));
    assert_true(plxt_server_log_wait(closed_srv, "outbound connection to 127.0.0.1 "
                                     "refused: a loopback address", 5000));
    assert_true(plxt_server_log_contains(closed_srv, "\"module\":\"netprobe\""));
    expect_refused(up("[::1]", "/status/200"));
    assert_true(plxt_server_log_wait(closed_srv, "outbound connection to ::1 "
                                     "refused", 5000));
    expect_refused(up("localhost", "/status/200"));
    expect_refused(up("[::ffff:127.0.0.1]", "/status/200"));
    expect_refused(plxt_fmt("http://127.1:%d/", up_port));
    expect_refused(plxt_fmt("http://2130706433:%d/", up_port));
}

static void test_allowlist_opens_only_what_it_lists(void **state)
{
    json_t *j;

    (void)state;
    j = fetch(open_srv, json_pack("{s:s}", "url", up("127.0.0.1", "/status/200")));
    assert_string_equal(str(j, "result"), "ok");
    assert_int_equal(num(j, "status"), 200);
    json_decref(j);
    /* 127.0.0.1/32 does not open ::1 nor 127.0.0.2 */
    j = fetch(open_srv, json_pack("{s:s}", "url", up("[::1]", "/status/200")));
    assert_string_equal(str(j, "result"), "forbidden");
    json_decref(j);
    j = fetch(open_srv, json_pack("{s:s}", "url", up("127.0.0.2", "/status/200")));
    assert_string_equal(str(j, "result"), "forbidden");
    json_decref(j);
    /* localhost: ::1 refused, 127.0.0.1 taken */
    j = fetch(open_srv, json_pack("{s:s}", "url", up("localhost", "/status/204")));
    assert_string_equal(str(j, "result"), "ok");
    assert_int_equal(num(j, "status"), 204);
    json_decref(j);
}

/* The allowlist through the configuration machinery: the environment
 * overrides it, and a malformed one stops the server from starting. */
static void test_allowlist_from_environment(void **state)
{
    static const plxt_module_t mods[] = { { .name = "netprobe" }, { 0 } };
    static const char *const env[] = {
        "PLEXUS_HTTP_CLIENT_ALLOW=192.0.2.0/24, 127.0.0.1/32", NULL };
    plxt_server_opts_t o = { .db_url = db_url, .modules = mods, .env = env };
    plxt_server_t *s = plxt_server_start(&o);
    json_t *j;

    (void)state;
    assert_non_null(s);
    j = fetch(s, json_pack("{s:s}", "url", up("127.0.0.1", "/status/200")));
    assert_string_equal(str(j, "result"), "ok");
    json_decref(j);
    assert_int_equal(plxt_server_stop(s), 0);

    const char *const argv[] = { "plexusd", "--config", closed_srv->conf_path,
                                 "--check-config", NULL };
    static const char *const bad[] = { "PLEXUS_HTTP_CLIENT_ALLOW=10.1.2.3/16", NULL };
    static const char *const good[] = { "PLEXUS_HTTP_CLIENT_ALLOW=10.1.0.0/16 ::1", NULL };
    char *out = NULL;
    assert_int_not_equal(plxt_run(argv, bad, 30000, &out), 0);
    assert_non_null(strstr(out, "http_client.allow: expected an address or CIDR "
                                "block with no host bits set, found \\\"10.1.2.3/16\\\""));
    free(out);
    out = NULL;
    assert_int_equal(plxt_run(argv, good, 30000, &out), 0);
    free(out);
}

/* ---- what comes back ------------------------------------------------------- */

static void test_statuses_and_headers(void **state)
{
    static const int codes[] = { 200, 201, 400, 404, 418, 500, 503 };

    (void)state;
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        json_t *j = fetch(open_srv, json_pack(
            "{s:s, s:[s,s]}", "url",
            up("127.0.0.1", plxt_fmt("/status/%d", codes[i])),
            "want_headers", "X-PROBE", "Content-Length"));
        assert_string_equal(str(j, "result"), "ok");
        assert_int_equal(num(j, "status"), codes[i]);
        assert_string_equal(str(j, "body"), "status body");
        json_t *h = json_object_get(j, "headers");
        /* the last value, trimmed, looked up in any case */
        assert_string_equal(str(h, "X-PROBE"), "last");
        assert_string_equal(str(h, "Content-Length"), "11");
        json_decref(j);
    }
}

static void test_method_headers_body(void **state)
{
    json_t *j;

    (void)state;
    j = fetch(open_srv, json_pack("{s:s, s:s, s:[s], s:s}", "url",
                                  up("127.0.0.1", "/echo"), "method", "PUT",
                                  "headers", "X-Test: hello", "body", "payload"));
    assert_string_equal(str(j, "result"), "ok");
    assert_string_equal(str(j, "body"), "PUT hello ua payload");
    json_decref(j);
    j = fetch(open_srv, json_pack("{s:s, s:s}", "url", up("127.0.0.1", "/echo"),
                                  "method", "POST"));
    assert_string_equal(str(j, "body"), "POST - ua ");
    json_decref(j);
    j = fetch(open_srv, json_pack("{s:s}", "url", up("127.0.0.1", "/echo")));
    assert_string_equal(str(j, "body"), "GET - ua ");
    json_decref(j);
}

static void test_invalid_requests(void **state)
{
    static const char *bad_urls[] = {
        "ftp://127.0.0.1/x", "file:///etc/passwd", "gopher://127.0.0.1/",
        "not a url", "", "http://",
    };
    json_t *j;

    (void)state;
    for (size_t i = 0; i < sizeof bad_urls / sizeof bad_urls[0]; i++) {
        j = fetch(open_srv, json_pack("{s:s}", "url", bad_urls[i]));
        if (strcmp(str(j, "result"), "invalid") != 0)
            fail_msg("\"%s\": expected invalid, found %s", bad_urls[i], str(j, "result"));
        json_decref(j);
    }
    /* a header line that would forge another one */
    j = fetch(open_srv, json_pack("{s:s, s:[s]}", "url", up("127.0.0.1", "/echo"),
                                  "headers", "X-Test: a\r\nX-Evil: b"));
    assert_string_equal(str(j, "result"), "invalid");
    json_decref(j);
    j = fetch(open_srv, json_pack("{s:s, s:s}", "url", up("127.0.0.1", "/echo"),
                                  "method", "GE T"));
    assert_string_equal(str(j, "result"), "invalid");
    json_decref(j);
}

/* ---- timeouts --------------------------------------------------------------- */

static void test_connect_timeout(void **state)
{
    (void)state;
    json_t *j = fetch(open_srv, json_pack("{s:s, s:i, s:i}", "url",
                                          plxt_fmt("http://127.0.0.1:%d/", hole_port),
                                          "connect_timeout_ms", 500,
                                          "total_timeout_ms", 20000));
    assert_string_equal(str(j, "result"), "timeout");
    assert_true(num(j, "elapsed_ms") >= 400);
    assert_true(num(j, "elapsed_ms") < 4000);
    json_decref(j);
}

static void test_first_byte_timeout(void **state)
{
    (void)state;
    json_t *j = fetch(open_srv, json_pack("{s:s, s:i, s:i}", "url",
                                          up("127.0.0.1", "/hang"),
                                          "first_byte_timeout_ms", 600,
                                          "total_timeout_ms", 20000));
    assert_string_equal(str(j, "result"), "timeout");
    assert_true(num(j, "elapsed_ms") >= 500);
    assert_true(num(j, "elapsed_ms") < 4000);
    json_decref(j);
    /* a slow body is not a slow first byte: it completes */
    j = fetch(open_srv, json_pack("{s:s, s:i}", "url", up("127.0.0.1", "/trickle"),
                                  "first_byte_timeout_ms", 1000));
    assert_string_equal(str(j, "result"), "ok");
    assert_string_equal(str(j, "body"), "tttttttttttttttttttt");
    json_decref(j);
}

static void test_total_timeout(void **state)
{
    (void)state;
    json_t *j = fetch(open_srv, json_pack("{s:s, s:i}", "url",
                                          up("127.0.0.1", "/trickle"),
                                          "total_timeout_ms", 800));
    assert_string_equal(str(j, "result"), "timeout");
    assert_true(num(j, "elapsed_ms") >= 700);
    assert_true(num(j, "elapsed_ms") < 3000);
    json_decref(j);
}

/* ---- bounds ------------------------------------------------------------------ */

static void test_body_bounds(void **state)
{
    json_t *j;

    (void)state;
    j = fetch(open_srv, json_pack("{s:s, s:i}", "url", up("127.0.0.1", "/big/1000"),
                                  "max_response", 1000));
    assert_string_equal(str(j, "result"), "ok");
    assert_int_equal(strlen(str(j, "body")), 1000);
    json_decref(j);
    j = fetch(open_srv, json_pack("{s:s, s:i}", "url", up("127.0.0.1", "/big/1001"),
                                  "max_response", 1000));
    assert_string_equal(str(j, "result"), "too_large");
    json_decref(j);
    /* without a Content-Length the bound still holds */
    j = fetch(open_srv, json_pack("{s:s, s:i}", "url",
                                  up("127.0.0.1", "/chunked/5000"), "max_response", 1000));
    assert_string_equal(str(j, "result"), "too_large");
    json_decref(j);
    /* the default bound is 1 MiB */
    j = fetch(open_srv, json_pack("{s:s}", "url", up("127.0.0.1", "/big/1048577")));
    assert_string_equal(str(j, "result"), "too_large");
    json_decref(j);
    /* a header flood */
    j = fetch(open_srv, json_pack("{s:s}", "url", up("127.0.0.1", "/many-headers")));
    assert_string_equal(str(j, "result"), "upstream");
    json_decref(j);
}

/* ---- redirects ---------------------------------------------------------------- */

static void test_redirects(void **state)
{
    json_t *j;

    (void)state;
    /* not followed by default: the 3xx as it is */
    j = fetch(open_srv, json_pack("{s:s, s:[s]}", "url", up("127.0.0.1", "/redirect"),
                                  "want_headers", "Location"));
    assert_string_equal(str(j, "result"), "ok");
    assert_int_equal(num(j, "status"), 302);
    assert_string_equal(str(json_object_get(j, "headers"), "Location"), "/status/201");
    json_decref(j);
    /* followed when asked; the headers are the last response's */
    j = fetch(open_srv, json_pack("{s:s, s:i, s:[s,s]}", "url",
                                  up("127.0.0.1", "/redirect"), "max_redirects", 2,
                                  "want_headers", "Location", "X-Probe"));
    assert_string_equal(str(j, "result"), "ok");
    assert_int_equal(num(j, "status"), 201);
    assert_null(json_object_get(json_object_get(j, "headers"), "Location"));
    assert_string_equal(str(json_object_get(j, "headers"), "X-Probe"), "last");
    json_decref(j);
    /* a hop to an address the guard refuses */
    int before = atomic_load(&up_hits);
    j = fetch(open_srv, json_pack("{s:s, s:i}", "url",
                                  up("127.0.0.1", "/redirect-refused"),
                                  "max_redirects", 3));
    assert_string_equal(str(j, "result"), "forbidden");
    assert_int_equal(atomic_load(&up_hits), before + 1);   /* the first hop only */
    json_decref(j);
    assert_true(plxt_server_log_wait(open_srv, "outbound connection to 127.0.0.2 "
                                     "refused", 5000));
    /* too many hops; a hop to another scheme */
    j = fetch(open_srv, json_pack("{s:s, s:i}", "url",
                                  up("127.0.0.1", "/redirect-loop"), "max_redirects", 3));
    assert_string_equal(str(j, "result"), "upstream");
    json_decref(j);
    j = fetch(open_srv, json_pack("{s:s, s:i}", "url",
                                  up("127.0.0.1", "/redirect-ftp"), "max_redirects", 3));
    assert_string_not_equal(str(j, "result"), "ok");
    json_decref(j);
}

/* ---- cancellation and streaming ------------------------------------------------ */

static void test_cancel(void **state)
{
    (void)state;
    json_t *j = fetch(open_srv, json_pack("{s:s, s:i}", "url",
                                          up("127.0.0.1", "/trickle"),
                                          "cancel_after_ms", 300));
    assert_string_equal(str(j, "result"), "gone");
    assert_true(num(j, "elapsed_ms") >= 250);
    assert_true(num(j, "elapsed_ms") < 1500);   /* polled every 100 ms */
    json_decref(j);
    /* cancelled while waiting for the first byte */
    j = fetch(open_srv, json_pack("{s:s, s:i}", "url", up("127.0.0.1", "/hang"),
                                  "cancel_after_ms", 300));
    assert_string_equal(str(j, "result"), "gone");
    assert_true(num(j, "elapsed_ms") < 1500);
    json_decref(j);
}

static void test_on_data(void **state)
{
    (void)state;
    json_t *j = fetch(open_srv, json_pack("{s:s, s:b}", "url",
                                          up("127.0.0.1", "/trickle"), "stream", 1));
    assert_string_equal(str(j, "result"), "ok");
    assert_int_equal(num(j, "streamed"), 20);
    assert_true(num(j, "chunks") >= 5);        /* as the bytes came */
    assert_string_equal(str(j, "body"), "");   /* nothing kept */
    json_decref(j);
    /* on_data asks to stop */
    j = fetch(open_srv, json_pack("{s:s, s:b, s:i}", "url",
                                  up("127.0.0.1", "/trickle"), "stream", 1,
                                  "stop_after_bytes", 5));
    assert_string_equal(str(j, "result"), "gone");
    assert_int_equal(num(j, "streamed"), 5);
    json_decref(j);
    /* max_response bounds a stream too */
    j = fetch(open_srv, json_pack("{s:s, s:b, s:i}", "url",
                                  up("127.0.0.1", "/chunked/5000"), "stream", 1,
                                  "max_response", 1000));
    assert_string_equal(str(j, "result"), "too_large");
    assert_true(num(j, "streamed") <= 1000);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_refused_without_allowlist),
        cmocka_unit_test(test_allowlist_opens_only_what_it_lists),
        cmocka_unit_test(test_allowlist_from_environment),
        cmocka_unit_test(test_statuses_and_headers),
        cmocka_unit_test(test_method_headers_body),
        cmocka_unit_test(test_invalid_requests),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_first_byte_timeout),
        cmocka_unit_test(test_total_timeout),
        cmocka_unit_test(test_body_bounds),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_on_data),
    };

    plxt_require_postgres("test_http_client");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
