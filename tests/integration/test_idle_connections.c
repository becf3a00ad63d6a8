/*
 * test_idle_connections.c - idle and slow clients cannot starve the server
 *
 * CivetWeb serves a connection on one worker thread until it closes, so a
 * pool smaller than the open connections leaves new clients waiting with no
 * error anywhere (measured; see DESIGN.md). With the default settings, 1000
 * connections that send nothing must leave room for a new client, and a
 * client that sends half a request must be cut after request_timeout.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "harness.h"
#include "pgtest.h"

#define IDLE_CONNECTIONS 1000
#define REQUEST_TIMEOUT_MS 2000

static char dbname[64];
static char *db_url;

static int group_setup(void **state)
{
    /* the server inherits this limit; 1000 sockets need more than 1024 fds
     * once its own files and the database pool are counted */
    if (plxt_raise_nofile(IDLE_CONNECTIONS + 1024) < IDLE_CONNECTIONS + 256) {
        fprintf(stderr, "cannot raise RLIMIT_NOFILE to %d\n", IDLE_CONNECTIONS + 1024);
        return -1;
    }
    db_url = pgtest_db_create(dbname);
    return db_url ? 0 : -1;
}

static int group_teardown(void **state)
{
    pgtest_db_drop(dbname);
    free(db_url);
    return 0;
}

static void test_new_client_served_beside_idle_connections(void **state)
{
    /* the default thread count and timeouts: nothing in [server] */
    plxt_server_opts_t o = { .db_url = db_url };
    plxt_server_t *s = plxt_server_start(&o);
    plxt_idle_t *idle;
    plxt_resp_t resp;
    char url[128];

    assert_non_null(s);
    idle = plxt_idle_open(s->port, IDLE_CONNECTIONS, 10000);
    assert_non_null(idle);
    /* let the server accept them all and hand each to a worker */
    plxt_sleep_ms(500);
    assert_int_equal(plxt_idle_closed(idle), 0);

    snprintf(url, sizeof url, "%s/health/live", s->url);
    plxt_req_t req = { .url = url, .timeout_ms = 1000 };
    if (plxt_http_req(&req, &resp) != 0)
        fail_msg("GET /health/live beside %d idle connections: no answer within 1 s (%s)",
                 IDLE_CONNECTIONS, resp.error);
    assert_int_equal(resp.status, 200);
    if (resp.seconds >= 1.0)
        fail_msg("expected an answer within 1 s, took %.3f s", resp.seconds);
    fprintf(stderr, "# /health/live beside %d idle connections: %.1f ms\n",
            IDLE_CONNECTIONS, resp.seconds * 1000);
    plxt_resp_free(&resp);

    /* and again, a few times: not one lucky free thread */
    for (int i = 0; i < 20; i++) {
        assert_int_equal(plxt_http_req(&req, &resp), 0);
        assert_int_equal(resp.status, 200);
        plxt_resp_free(&resp);
    }
    plxt_idle_close(idle);
    assert_int_equal(plxt_server_stop(s), 0);
}

static void test_partial_request_is_cut(void **state)
{
    static const char partial[] = "GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    char cfg[128], buf[4096];
    plxt_server_opts_t o = { .db_url = db_url, .config = cfg };
    plxt_server_t *s;
    double t0, waited;
    long n;
    int fd;

    snprintf(cfg, sizeof cfg, "[server]\nrequest_timeout = %dms\n", REQUEST_TIMEOUT_MS);
    s = plxt_server_start(&o);
    assert_non_null(s);
    fd = plxt_tcp_connect("127.0.0.1", s->port, 5000);
    assert_true(fd >= 0);
    assert_int_equal(plxt_sock_send_all(fd, partial, sizeof partial - 1, 5000), 0);
    t0 = plxt_now_ms();
    /* whatever the server says (a 408 or nothing), it must hang up */
    do
        n = plxt_sock_recv(fd, buf, sizeof buf, 4 * REQUEST_TIMEOUT_MS);
    while (n > 0);
    waited = plxt_now_ms() - t0;
    close(fd);
    if (n < 0 && plxt_now_ms() - t0 >= 4 * REQUEST_TIMEOUT_MS - 50)
        fail_msg("the server kept a half-sent request open for %.0f ms "
                 "(request_timeout %d ms)", waited, REQUEST_TIMEOUT_MS);
    fprintf(stderr, "# partial request cut after %.0f ms\n", waited);
    if (waited < REQUEST_TIMEOUT_MS * 0.5)
        fail_msg("cut after %.0f ms, before request_timeout %d ms", waited,
                 REQUEST_TIMEOUT_MS);

    /* the server is fine afterwards */
    plxt_resp_t resp;
    assert_int_equal(plxt_get(s, "/health/live", &resp), 0);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
    assert_int_equal(plxt_server_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_client_served_beside_idle_connections),
        cmocka_unit_test(test_partial_request_is_cut),
    };

    plxt_require_postgres("test_idle_connections");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
