/*
 * test_http.c - the HTTP surface as a client sees it: problem+json errors,
 * request ids, security and CORS headers, body bounds, the example
 * module's routes, its hook and event, and the access log
 *
 * One plexusd with the example module serves every test of the group, on a
 * database of its own; the tests only read from it or add to counters they
 * measure relative to a first reading.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <cmocka.h>

#include "harness.h"
#include "pgtest.h"

#define ALLOWED_ORIGIN "https://app.example.com"
#define OTHER_ORIGIN   "https://evil.example.net"
#define MAX_BODY       65536
#define MAX_DEPTH      8
#define MAX_ELEMENTS   100

static plxt_server_t *srv;
static char dbname[64];

static int group_setup(void **state)
{
    static const plxt_module_t mods[] = { { .name = "example" }, { 0 } };
    char *url = pgtest_db_create(dbname);
    char cfg[512];

    if (!url)
        return -1;
    snprintf(cfg, sizeof cfg,
             "[server]\nmax_body = %d\nmax_json_depth = %d\nmax_json_elements = %d\n"
             "cors_origins = %s\nthreads = 32\n",
             MAX_BODY, MAX_DEPTH, MAX_ELEMENTS, ALLOWED_ORIGIN);
    plxt_server_opts_t o = { .db_url = url, .modules = mods, .config = cfg };
    srv = plxt_server_start(&o);
    free(url);
    return srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    pgtest_db_drop(dbname);
    return rc == 0 ? 0 : -1;
}

/* ---- helpers ---------------------------------------------------------------- */

static void url_of(char *out, size_t len, const char *path)
{
    snprintf(out, len, "%s%s", srv->url, path);
}

static void request(const char *method, const char *path,
                    const char *const *headers, const char *body,
                    plxt_resp_t *resp)
{
    char url[1024];

    url_of(url, sizeof url, path);
    if (plxt_http(method, url, headers, body, resp) != 0)
        fail_msg("%s %s: no response: %s", method, path, resp->error);
}

static json_t *json_body(const plxt_resp_t *resp)
{
    json_t *j = plxt_resp_json(resp);

    if (!j)
        fail_msg("expected a JSON body, found \"%.200s\"", resp->body);
    return j;
}

static const char *jstr(json_t *obj, const char *key)
{
    const char *v = json_string_value(json_object_get(obj, key));

    if (!v)
        fail_msg("expected string \"%s\" in the body", key);
    return v;
}

/* a problem+json error with the given status and a request id that matches
 * the X-Request-ID header */
static json_t *assert_problem(const plxt_resp_t *resp, long status)
{
    json_t *j;
    const char *rid = plxt_resp_header(resp, "X-Request-ID");

    assert_int_equal(resp->status, status);
    if (!plxt_resp_type_is(resp, "application/problem+json"))
        fail_msg("expected application/problem+json, found \"%s\"",
                 plxt_resp_header(resp, "Content-Type"));
    j = json_body(resp);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    assert_true(strlen(jstr(j, "code")) > 0);
    assert_true(strlen(jstr(j, "title")) > 0);
    /* no [server] public_url here: the type names no URI at all */
    assert_string_equal(jstr(j, "type"), "about:blank");
    assert_non_null(rid);
    assert_string_equal(jstr(j, "request_id"), rid);
    return j;
}

static json_int_t stat_of(const char *name)
{
    plxt_resp_t resp;
    json_t *j;
    json_int_t v;

    request("GET", "/api/v1/example/stats", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    j = json_body(&resp);
    assert_true(json_is_integer(json_object_get(j, name)));
    v = json_integer_value(json_object_get(j, name));
    json_decref(j);
    plxt_resp_free(&resp);
    return v;
}

/* ---- errors -------------------------------------------------------------------- */

static void test_not_found_is_problem_json(void **state)
{
    plxt_resp_t resp;

    request("GET", "/api/v1/no/such/thing", NULL, NULL, &resp);
    json_t *j = assert_problem(&resp, 404);
    json_decref(j);
    plxt_resp_free(&resp);
}

static void test_method_not_allowed_lists_allow(void **state)
{
    plxt_resp_t resp;
    const char *allow;

    request("DELETE", "/api/v1/example/hello", NULL, NULL, &resp);
    json_decref(assert_problem(&resp, 405));
    allow = plxt_resp_header(&resp, "Allow");
    if (!plxt_token_in(allow, "GET"))
        fail_msg("expected Allow with GET, found \"%s\"", allow ? allow : "(none)");
    assert_false(plxt_token_in(allow, "DELETE"));
    plxt_resp_free(&resp);
}

/* ---- request ids ------------------------------------------------------------------- */

static void test_request_id_echoed(void **state)
{
    static const char *const h[] = { "X-Request-ID: plxt-echo-4711", NULL };
    plxt_resp_t resp;

    request("GET", "/api/v1/example/hello", h, NULL, &resp);
    assert_int_equal(resp.status, 200);
    assert_non_null(plxt_resp_header(&resp, "X-Request-ID"));
    assert_string_equal(plxt_resp_header(&resp, "X-Request-ID"), "plxt-echo-4711");
    plxt_resp_free(&resp);

    /* and in an error body */
    request("GET", "/api/v1/missing", h, NULL, &resp);
    json_t *j = assert_problem(&resp, 404);
    assert_string_equal(jstr(j, "request_id"), "plxt-echo-4711");
    json_decref(j);
    plxt_resp_free(&resp);
}

static void test_request_id_generated(void **state)
{
    plxt_resp_t a, b;
    const char *ida, *idb;

    request("GET", "/api/v1/example/hello", NULL, NULL, &a);
    request("GET", "/api/v1/example/hello", NULL, NULL, &b);
    ida = plxt_resp_header(&a, "X-Request-ID");
    idb = plxt_resp_header(&b, "X-Request-ID");
    assert_non_null(ida);
    assert_non_null(idb);
    assert_true(strlen(ida) >= 8);
    assert_string_not_equal(ida, idb);
    plxt_resp_free(&a);
    plxt_resp_free(&b);
}

/* ---- security headers ----------------------------------------------------------------- */

static void assert_security_headers(const plxt_resp_t *resp)
{
    const char *nosniff = plxt_resp_header(resp, "X-Content-Type-Options");
    const char *frame = plxt_resp_header(resp, "X-Frame-Options");

    if (!nosniff || strcasecmp(nosniff, "nosniff") != 0)
        fail_msg("expected X-Content-Type-Options: nosniff, found \"%s\"",
                 nosniff ? nosniff : "(none)");
    if (!frame && !plxt_resp_header(resp, "Content-Security-Policy"))
        fail_msg("expected X-Frame-Options or Content-Security-Policy");
    assert_non_null(plxt_resp_header(resp, "Referrer-Policy"));
}

static void test_security_headers_on_success_and_error(void **state)
{
    plxt_resp_t resp;

    request("GET", "/api/v1/example/hello", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    assert_security_headers(&resp);
    plxt_resp_free(&resp);

    request("GET", "/api/v1/nothing-here", NULL, NULL, &resp);
    assert_int_equal(resp.status, 404);
    assert_security_headers(&resp);
    plxt_resp_free(&resp);

    request("POST", "/api/v1/example/echo", NULL, "{oops", &resp);
    assert_int_equal(resp.status, 400);
    assert_security_headers(&resp);
    plxt_resp_free(&resp);
}

/* ---- CORS ------------------------------------------------------------------------------- */

static void test_cors_allowed_origin(void **state)
{
    static const char *const h[] = { "Origin: " ALLOWED_ORIGIN, NULL };
    plxt_resp_t resp;
    const char *acao, *vary;

    request("GET", "/api/v1/example/hello", h, NULL, &resp);
    assert_int_equal(resp.status, 200);
    acao = plxt_resp_header(&resp, "Access-Control-Allow-Origin");
    assert_non_null(acao);
    assert_string_equal(acao, ALLOWED_ORIGIN);
    vary = plxt_resp_header(&resp, "Vary");
    if (!plxt_token_in(vary, "Origin"))
        fail_msg("expected Vary: Origin, found \"%s\"", vary ? vary : "(none)");
    plxt_resp_free(&resp);
}

static void test_cors_other_origin_gets_nothing(void **state)
{
    static const char *const h[] = { "Origin: " OTHER_ORIGIN, NULL };
    plxt_resp_t resp;

    request("GET", "/api/v1/example/hello", h, NULL, &resp);
    assert_int_equal(resp.status, 200);   /* CORS is the browser's business */
    assert_null(plxt_resp_header(&resp, "Access-Control-Allow-Origin"));
    assert_null(plxt_resp_header(&resp, "Access-Control-Allow-Credentials"));
    plxt_resp_free(&resp);
}

static void test_cors_preflight(void **state)
{
    static const char *const ok[] = {
        "Origin: " ALLOWED_ORIGIN, "Access-Control-Request-Method: POST",
        "Access-Control-Request-Headers: content-type", NULL };
    static const char *const bad[] = {
        "Origin: " OTHER_ORIGIN, "Access-Control-Request-Method: POST", NULL };
    plxt_resp_t resp;
    const char *methods;

    request("OPTIONS", "/api/v1/example/echo", ok, NULL, &resp);
    if (resp.status != 204 && resp.status != 200)
        fail_msg("preflight: expected 204 or 200, found %ld", resp.status);
    assert_non_null(plxt_resp_header(&resp, "Access-Control-Allow-Origin"));
    assert_string_equal(plxt_resp_header(&resp, "Access-Control-Allow-Origin"),
                        ALLOWED_ORIGIN);
    methods = plxt_resp_header(&resp, "Access-Control-Allow-Methods");
    if (!plxt_token_in(methods, "POST"))
        fail_msg("expected Access-Control-Allow-Methods with POST, found \"%s\"",
                 methods ? methods : "(none)");
    assert_non_null(plxt_resp_header(&resp, "Access-Control-Allow-Headers"));
    plxt_resp_free(&resp);

    request("OPTIONS", "/api/v1/example/echo", bad, NULL, &resp);
    assert_null(plxt_resp_header(&resp, "Access-Control-Allow-Origin"));
    assert_null(plxt_resp_header(&resp, "Access-Control-Allow-Methods"));
    plxt_resp_free(&resp);
}

/* ---- bodies -------------------------------------------------------------------------------- */

static void test_body_over_max_is_413(void **state)
{
    size_t n = MAX_BODY + 4096;
    char *body = malloc(n + 1);
    plxt_resp_t resp;

    assert_non_null(body);
    /* valid JSON, so only its size is wrong: {"a":"xxxx..."} */
    memset(body, 'x', n);
    memcpy(body, "{\"a\":\"", 6);
    memcpy(body + n - 2, "\"}", 2);
    body[n] = '\0';
    request("POST", "/api/v1/example/echo", NULL, body, &resp);
    json_decref(assert_problem(&resp, 413));
    plxt_resp_free(&resp);
    free(body);
}

static void test_malformed_json_is_400(void **state)
{
    plxt_resp_t resp;

    request("POST", "/api/v1/example/echo", NULL, "{\"a\": [1, 2", &resp);
    json_decref(assert_problem(&resp, 400));
    plxt_resp_free(&resp);
}

static void test_too_deep_json_is_400(void **state)
{
    char body[256] = "";
    plxt_resp_t resp;
    int depth = MAX_DEPTH + 4;

    for (int i = 0; i < depth; i++)
        strcat(body, "[");
    for (int i = 0; i < depth; i++)
        strcat(body, "]");
    request("POST", "/api/v1/example/echo", NULL, body, &resp);
    json_decref(assert_problem(&resp, 400));
    plxt_resp_free(&resp);

    /* at the bound it is fine */
    body[0] = '\0';
    for (int i = 0; i < MAX_DEPTH; i++)
        strcat(body, "[");
    for (int i = 0; i < MAX_DEPTH; i++)
        strcat(body, "]");
    request("POST", "/api/v1/example/echo", NULL, body, &resp);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
}

/* "[{},{},...]" of n objects into body */
static void many_objects(char *body, int n)
{
    strcpy(body, "[");
    for (int i = 0; i < n; i++)
        strcat(body, i ? ",{}" : "{}");
    strcat(body, "]");
}

static void test_too_many_elements_is_413(void **state)
{
    char body[MAX_ELEMENTS * 3 * 2 + 8];
    plxt_resp_t resp;
    json_t *j;

    /* small in bytes, but each "{}" costs an allocated object */
    many_objects(body, MAX_ELEMENTS * 2);
    request("POST", "/api/v1/example/echo", NULL, body, &resp);
    j = assert_problem(&resp, 413);
    assert_string_equal(jstr(j, "code"), "body_too_large");
    assert_non_null(strstr(jstr(j, "detail"), "JSON elements"));
    json_decref(j);
    plxt_resp_free(&resp);

    /* well under the bound it is fine (each object counts twice: its '{'
     * and the ',' or '[' before it) */
    many_objects(body, MAX_ELEMENTS / 2 - 1);
    request("POST", "/api/v1/example/echo", NULL, body, &resp);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
}

static void test_non_utf8_is_400(void **state)
{
    plxt_resp_t resp;

    request("POST", "/api/v1/example/echo", NULL, "{\"a\":\"caf\xe9\"}", &resp);
    json_decref(assert_problem(&resp, 400));
    plxt_resp_free(&resp);
}

/* ---- the example module's routes ----------------------------------------------------------- */

static void test_example_hello(void **state)
{
    plxt_resp_t resp;
    json_t *j;

    request("GET", "/api/v1/example/hello?name=plexus", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    assert_true(plxt_resp_type_is(&resp, "application/json"));
    j = json_body(&resp);
    assert_string_equal(jstr(j, "message"), "hello, plexus");
    json_decref(j);
    plxt_resp_free(&resp);

    request("GET", "/api/v1/example/hello?name=J%C3%BCrgen%20B", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    j = json_body(&resp);
    assert_string_equal(jstr(j, "message"), "hello, J\xc3\xbcrgen B");
    json_decref(j);
    plxt_resp_free(&resp);
}

static void test_example_echo(void **state)
{
    plxt_resp_t resp;
    json_t *j, *want = json_pack("{s:{s:[i,i,s],s:b}}", "echo", "a", 1, 2, "three",
                                 "ok", 1);

    request("POST", "/api/v1/example/echo", NULL,
            "{\"a\": [1, 2, \"three\"], \"ok\": true}", &resp);
    assert_int_equal(resp.status, 200);
    j = json_body(&resp);
    assert_true(json_equal(j, want));
    json_decref(j);
    json_decref(want);
    plxt_resp_free(&resp);
}

static void test_example_item_param_is_decoded(void **state)
{
    plxt_resp_t resp;
    json_t *j;

    request("GET", "/api/v1/example/items/abc%20d%2Fe", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    j = json_body(&resp);
    assert_string_equal(jstr(j, "id"), "abc d/e");
    json_decref(j);
    plxt_resp_free(&resp);

    request("GET", "/api/v1/example/items/42", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    j = json_body(&resp);
    assert_string_equal(jstr(j, "id"), "42");
    json_decref(j);
    plxt_resp_free(&resp);
}

static void test_example_service(void **state)
{
    plxt_resp_t resp;
    json_t *j;

    request("GET", "/api/v1/example/service", NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    j = json_body(&resp);
    assert_string_equal(jstr(j, "greeting"), "greetings, plugin author");
    json_decref(j);
    plxt_resp_free(&resp);
}

static void test_hook_header_on_every_response(void **state)
{
    plxt_resp_t resp;

    request("GET", "/api/v1/example/hello", NULL, NULL, &resp);
    assert_non_null(plxt_resp_header(&resp, "X-Example"));
    assert_string_equal(plxt_resp_header(&resp, "X-Example"), "1");
    plxt_resp_free(&resp);

    request("GET", "/health/live", NULL, NULL, &resp);
    assert_non_null(plxt_resp_header(&resp, "X-Example"));
    plxt_resp_free(&resp);

    request("GET", "/api/v1/not-a-route", NULL, NULL, &resp);
    assert_int_equal(resp.status, 404);
    assert_non_null(plxt_resp_header(&resp, "X-Example"));
    plxt_resp_free(&resp);
}

static void test_event_reaches_subscriber(void **state)
{
    json_int_t before = stat_of("events_seen");
    plxt_resp_t resp;

    request("POST", "/api/v1/example/echo", NULL, "{\"n\": 1}", &resp);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
    /* subscribers run on the emitting thread, before the reply */
    assert_int_equal(stat_of("events_seen"), before + 1);

    request("POST", "/api/v1/example/echo", NULL, "{broken", &resp);
    assert_int_equal(resp.status, 400);
    plxt_resp_free(&resp);
    assert_int_equal(stat_of("events_seen"), before + 1);
}

/* ---- the access log ------------------------------------------------------------------------------ */

/* the JSON access-log line of request id, or NULL */
static json_t *access_line(const char *id)
{
    char *log = plxt_server_log(srv);
    json_t *found = NULL;

    for (char *line = log, *next; line && *line && !found; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        else
            next = line + strlen(line);
        if (!strstr(line, id))
            continue;
        json_t *j = json_loads(line, 0, NULL);
        if (j && json_object_get(j, "status") && json_object_get(j, "path"))
            found = j;
        else
            json_decref(j);
    }
    free(log);
    return found;
}

/* ---- request framing (RFC 9112 section 6.3) ---------------------------------- */

/* Send raw bytes on a fresh connection and read until the server closes
 * it or wait_ms pass; what came back, NUL-terminated, malloc'd. */
static char *raw_exchange(const char *bytes, size_t len, int wait_ms)
{
    struct sockaddr_in to = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)srv->port) };
    struct timeval tv = { .tv_sec = wait_ms / 1000, .tv_usec = (wait_ms % 1000) * 1000 };
    size_t cap = 65536, got = 0;
    char *buf = malloc(cap);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_non_null(buf);
    assert_true(fd >= 0);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    for (;;) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, 0);
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got == cap - 1)
            break;
    }
    buf[got] = '\0';
    close(fd);
    return buf;
}

static int count_of(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)); p++)
        n++;
    return n;
}

/* one answer with this status and code, then the connection closed: the
 * bytes smuggled after the first request were never served */
static void expect_refused_and_closed(const char *request, int status, const char *code)
{
    char *out = raw_exchange(request, strlen(request), 3000);
    char line[64];

    snprintf(line, sizeof line, "HTTP/1.1 %d ", status);
    if (strncmp(out, line, strlen(line)) != 0)
        fail_msg("expected \"%s...\", found: %.400s", line, out);
    assert_non_null(strstr(out, code));
    assert_int_equal(count_of(out, "HTTP/1.1 "), 1);
    assert_null(strstr(out, "\"status\":\"live\""));
    free(out);
}

#define SMUGGLED "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"

static void test_conflicting_lengths_are_refused(void **state)
{
    (void)state;
    expect_refused_and_closed("POST /api/v1/example/echo HTTP/1.1\r\nHost: x\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "0\r\n\r\n" SMUGGLED, 400, "invalid_framing");
    expect_refused_and_closed("POST /api/v1/example/echo HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 2\r\nContent-Length: 41\r\n\r\n"
                              "{}" SMUGGLED, 400, "invalid_framing");
    expect_refused_and_closed("POST /api/v1/example/echo HTTP/1.1\r\nHost: x\r\n"
                              "Content-Length: 0, 38\r\n\r\n" SMUGGLED, 400,
                              "invalid_framing");
    expect_refused_and_closed("POST /api/v1/example/echo HTTP/1.1\r\nHost: x\r\n"
                              "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" SMUGGLED,
                              400, "invalid_request");
}

static void test_too_many_headers_is_431(void **state)
{
    char req[8192];
    size_t n;

    (void)state;
    n = (size_t)snprintf(req, sizeof req, "GET /health/live HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < 70; i++)
        n += (size_t)snprintf(req + n, sizeof req - n, "X-Filler-%d: %d\r\n", i, i);
    snprintf(req + n, sizeof req - n, "\r\n" SMUGGLED);
    expect_refused_and_closed(req, 431, "headers_too_large");
}

static void test_http11_needs_host(void **state)
{
    (void)state;
    expect_refused_and_closed("GET /health/live HTTP/1.1\r\n\r\n" SMUGGLED, 400,
                              "invalid_framing");
    expect_refused_and_closed("GET /health/live HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
                              SMUGGLED, 400, "invalid_framing");
}

static void test_well_framed_requests_still_pipeline(void **state)
{
    static const char two[] =
        "POST /api/v1/example/echo HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        "GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    char *out = raw_exchange(two, sizeof two - 1, 3000);

    (void)state;
    assert_int_equal(count_of(out, "HTTP/1.1 200 "), 2);
    free(out);
}

/* ---- WebSocket origins ---------------------------------------------------------- */

static int ws_status_with_origin(const char *origin)
{
    char h[256];
    const char *headers[] = { h, NULL };
    int status = 0;
    plxt_ws_t *ws;

    snprintf(h, sizeof h, "Origin: %s", origin);
    ws = plxt_ws_connect(srv->url, "/api/v1/example/ws", origin ? headers : NULL, 5000,
                         &status);
    plxt_ws_free(ws);
    return status;
}

static void test_ws_origin_must_be_allowed(void **state)
{
    char self[96];

    (void)state;
    /* a page of another site: refused before the upgrade */
    assert_int_equal(ws_status_with_origin(OTHER_ORIGIN), 403);
    /* the CORS list, a page of this very host, and no browser at all */
    assert_int_equal(ws_status_with_origin(ALLOWED_ORIGIN), 101);
    snprintf(self, sizeof self, "http://127.0.0.1:%d", srv->port);
    assert_int_equal(ws_status_with_origin(self), 101);
    assert_int_equal(ws_status_with_origin(NULL), 101);
    assert_int_equal(ws_status_with_origin("null"), 403);
}

static void test_access_log_line(void **state)
{
    static const char *const h[] = { "X-Request-ID: plxt-access-0042", NULL };
    plxt_resp_t resp;
    json_t *j = NULL;

    request("GET", "/api/v1/example/items/7", h, NULL, &resp);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
    for (int i = 0; i < 100 && !j; i++) {
        j = access_line("plxt-access-0042");
        if (!j)
            plxt_sleep_ms(20);
    }
    if (!j)
        fail_msg("no JSON access-log line with the request id (and status, path) in %s",
                 srv->log_path);
    assert_string_equal(jstr(j, "request_id"), "plxt-access-0042");
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    assert_string_equal(jstr(j, "method"), "GET");
    assert_string_equal(jstr(j, "path"), "/api/v1/example/items/7");
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_not_found_is_problem_json),
        cmocka_unit_test(test_method_not_allowed_lists_allow),
        cmocka_unit_test(test_request_id_echoed),
        cmocka_unit_test(test_request_id_generated),
        cmocka_unit_test(test_security_headers_on_success_and_error),
        cmocka_unit_test(test_cors_allowed_origin),
        cmocka_unit_test(test_cors_other_origin_gets_nothing),
        cmocka_unit_test(test_cors_preflight),
        cmocka_unit_test(test_body_over_max_is_413),
        cmocka_unit_test(test_too_many_elements_is_413),
        cmocka_unit_test(test_malformed_json_is_400),
        cmocka_unit_test(test_too_deep_json_is_400),
        cmocka_unit_test(test_non_utf8_is_400),
        cmocka_unit_test(test_example_hello),
        cmocka_unit_test(test_example_echo),
        cmocka_unit_test(test_example_item_param_is_decoded),
        cmocka_unit_test(test_example_service),
        cmocka_unit_test(test_hook_header_on_every_response),
        cmocka_unit_test(test_event_reaches_subscriber),
        cmocka_unit_test(test_access_log_line),
        cmocka_unit_test(test_conflicting_lengths_are_refused),
        cmocka_unit_test(test_too_many_headers_is_431),
        cmocka_unit_test(test_http11_needs_host),
        cmocka_unit_test(test_well_framed_requests_still_pipeline),
        cmocka_unit_test(test_ws_origin_must_be_allowed),
    };

    plxt_require_postgres("test_http");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
