/*
 * test_streams.c - Server-Sent Events and WebSocket, end to end
 *
 * SSE: headers, the exact bytes of a short stream, heartbeat comments on a
 * quiet stream, and a client that hangs up cancelling the producer.
 * WebSocket: echo of text and binary, a close the server starts (1000), and
 * the close codes for bad input (1007 invalid UTF-8, 1009 too big). Last,
 * SIGTERM with a stream and a socket open: the stream gets its final event,
 * the socket 1001, and the process exits 0.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "pgtest.h"

#define MAX_BODY        65536
#define SHUTDOWN_GRACE  "5s"
#define SHUTDOWN_EVENT  "shutdown"
#define WAIT_MS         10000
#define WS_MAX_MESSAGE  (1024 * 1024)   /* the core's bound on a received message */

static plxt_server_t *srv;
static char dbname[64];
static char *db_url;

static const plxt_module_t mods[] = { { .name = "example" }, { 0 } };

static plxt_server_t *start_server(void)
{
    char cfg[256];

    snprintf(cfg, sizeof cfg,
             "[server]\nsse_heartbeat = 1s\nmax_body = %d\nshutdown_grace = %s\n",
             MAX_BODY, SHUTDOWN_GRACE);
    plxt_server_opts_t o = { .db_url = db_url, .modules = mods, .config = cfg };
    return plxt_server_start(&o);
}

static int group_setup(void **state)
{
    db_url = pgtest_db_create(dbname);
    if (!db_url)
        return -1;
    srv = start_server();
    return srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    pgtest_db_drop(dbname);
    free(db_url);
    return rc == 0 ? 0 : -1;
}

static json_int_t stat_of(const char *name)
{
    plxt_resp_t resp;
    json_t *j;
    json_int_t v;

    assert_int_equal(plxt_get(srv, "/api/v1/example/stats", &resp), 0);
    assert_int_equal(resp.status, 200);
    j = plxt_resp_json(&resp);
    assert_non_null(j);
    v = json_integer_value(json_object_get(j, name));
    json_decref(j);
    plxt_resp_free(&resp);
    return v;
}

static plxt_stream_t *open_stream(plxt_server_t *s, int count, int interval_ms)
{
    char path[128];
    plxt_stream_t *st;

    snprintf(path, sizeof path, "/api/v1/example/stream?count=%d&interval_ms=%d",
             count, interval_ms);
    st = plxt_stream_open(s->url, path, NULL, WAIT_MS);
    assert_non_null(st);
    assert_int_equal(plxt_stream_status(st), 200);
    return st;
}

/* next block that is an event (heartbeat comments skipped) */
static int next_event(plxt_stream_t *st, plxt_sse_event_t *ev)
{
    int rc;

    while ((rc = plxt_sse_next(st, ev, WAIT_MS)) == 1 && ev->is_comment)
        plxt_sse_event_free(ev);
    return rc;
}

/* ---- Server-Sent Events ------------------------------------------------------------ */

static void test_sse_headers(void **state)
{
    plxt_stream_t *st = open_stream(srv, 1, 0);
    const char *ct = plxt_stream_header(st, "Content-Type");
    const char *cc = plxt_stream_header(st, "Cache-Control");

    if (!ct || strncmp(ct, "text/event-stream", 17) != 0)
        fail_msg("expected Content-Type text/event-stream, found \"%s\"", ct ? ct : "(none)");
    if (!cc || !strstr(cc, "no-cache"))
        fail_msg("expected Cache-Control with no-cache, found \"%s\"", cc ? cc : "(none)");
    assert_null(plxt_stream_header(st, "Content-Length"));
    assert_non_null(plxt_stream_header(st, "X-Request-ID"));
    plxt_stream_close(st);
}

static void test_sse_exact_framing(void **state)
{
    static const char want[] =
        "event: tick\ndata: {\"n\":0}\n\n"
        "event: tick\ndata: {\"n\":1}\n\n"
        "event: tick\ndata: {\"n\":2}\n\n"
        "event: done\ndata: {}\n\n";
    plxt_stream_t *st = open_stream(srv, 3, 10);
    char buf[4096];
    long n;
    size_t len;
    const char *raw;

    while ((n = plxt_stream_read(st, buf, sizeof buf, WAIT_MS)) > 0)
        ;
    assert_int_equal(n, 0);
    assert_true(plxt_stream_ended(st));
    raw = plxt_stream_raw(st, &len);
    if (len != strlen(want) || memcmp(raw, want, len) != 0)
        fail_msg("expected the stream\n%s\nfound\n%.*s", want, (int)len, raw);
    plxt_stream_close(st);
}

static void test_sse_events_parse(void **state)
{
    plxt_stream_t *st = open_stream(srv, 5, 0);
    plxt_sse_event_t ev;
    char want[32];

    for (int i = 0; i < 5; i++) {
        assert_int_equal(next_event(st, &ev), 1);
        assert_string_equal(ev.event, "tick");
        snprintf(want, sizeof want, "{\"n\":%d}", i);
        assert_string_equal(ev.data, want);
        plxt_sse_event_free(&ev);
    }
    assert_int_equal(next_event(st, &ev), 1);
    assert_string_equal(ev.event, "done");
    plxt_sse_event_free(&ev);
    assert_int_equal(plxt_sse_next(st, &ev, WAIT_MS), 0);
    plxt_stream_close(st);
}

static void test_sse_heartbeat_on_quiet_stream(void **state)
{
    /* sse_heartbeat is 1 s; 2.5 s between the two ticks */
    plxt_stream_t *st = open_stream(srv, 2, 2500);
    plxt_sse_event_t ev;
    int comments = 0;

    assert_int_equal(plxt_sse_next(st, &ev, WAIT_MS), 1);
    while (ev.is_comment) {   /* a comment may open the stream */
        plxt_sse_event_free(&ev);
        assert_int_equal(plxt_sse_next(st, &ev, WAIT_MS), 1);
    }
    assert_string_equal(ev.event, "tick");
    plxt_sse_event_free(&ev);
    for (;;) {
        assert_int_equal(plxt_sse_next(st, &ev, WAIT_MS), 1);
        if (!ev.is_comment)
            break;
        comments++;
        plxt_sse_event_free(&ev);
    }
    assert_string_equal(ev.event, "tick");
    assert_string_equal(ev.data, "{\"n\":1}");
    plxt_sse_event_free(&ev);
    if (comments < 1)
        fail_msg("expected a heartbeat comment within 2.5 s of silence, found none");
    plxt_stream_close(st);
}

static void test_sse_client_disconnect_cancels(void **state)
{
    json_int_t before = stat_of("streams_cancelled");
    plxt_stream_t *st = open_stream(srv, 1000, 50);
    plxt_sse_event_t ev;
    json_int_t after = before;

    for (int i = 0; i < 2; i++) {
        assert_int_equal(next_event(st, &ev), 1);
        plxt_sse_event_free(&ev);
    }
    plxt_stream_close(st);
    for (int i = 0; i < 100 && after == before; i++) {
        plxt_sleep_ms(50);
        after = stat_of("streams_cancelled");
    }
    if (after != before + 1)
        fail_msg("expected streams_cancelled %lld after the client left, found %lld",
                 (long long)before + 1, (long long)after);
}

/* ---- WebSocket --------------------------------------------------------------------------- */

static plxt_ws_t *ws_open(plxt_server_t *s)
{
    int status = 0;
    plxt_ws_t *ws = plxt_ws_connect(s->url, "/api/v1/example/ws", NULL, WAIT_MS, &status);

    if (!ws)
        fail_msg("websocket upgrade: expected 101, found %d", status);
    return ws;
}

static void expect_close(plxt_ws_t *ws, int code)
{
    plxt_ws_msg_t m;
    int rc = plxt_ws_recv(ws, &m, WAIT_MS);

    if (rc != 1 || m.opcode != PLXT_WS_CLOSE)
        fail_msg("expected a close frame %d, found rc %d opcode %d", code, rc, m.opcode);
    if (m.close_code != code)
        fail_msg("expected close code %d, found %d (%s)", code, m.close_code,
                 m.close_reason);
    plxt_ws_msg_free(&m);
    assert_true(plxt_ws_wait_eof(ws, WAIT_MS));
}

static void test_ws_echo_text_and_binary(void **state)
{
    static const unsigned char bin[] = { 0x00, 0x01, 0xfe, 0xff, 0x80, 0x7f };
    plxt_ws_t *ws = ws_open(srv);
    plxt_ws_msg_t m;

    assert_int_equal(plxt_ws_send_text(ws, "hello, socket \xe2\x9c\x93"), 0);
    assert_int_equal(plxt_ws_recv(ws, &m, WAIT_MS), 1);
    assert_int_equal(m.opcode, PLXT_WS_TEXT);
    assert_string_equal(m.data, "hello, socket \xe2\x9c\x93");
    plxt_ws_msg_free(&m);

    assert_int_equal(plxt_ws_send(ws, PLXT_WS_BINARY, bin, sizeof bin), 0);
    assert_int_equal(plxt_ws_recv(ws, &m, WAIT_MS), 1);
    assert_int_equal(m.opcode, PLXT_WS_BINARY);
    assert_int_equal(m.len, sizeof bin);
    assert_memory_equal(m.data, bin, sizeof bin);
    plxt_ws_msg_free(&m);

    /* a message in two fragments comes back whole */
    assert_int_equal(plxt_ws_send_frame(ws, PLXT_WS_TEXT, false, "frag", 4), 0);
    assert_int_equal(plxt_ws_send_frame(ws, PLXT_WS_CONT, true, "ment", 4), 0);
    assert_int_equal(plxt_ws_recv(ws, &m, WAIT_MS), 1);
    assert_string_equal(m.data, "fragment");
    plxt_ws_msg_free(&m);

    assert_int_equal(plxt_ws_send_close(ws, 1000, "done"), 0);
    expect_close(ws, 1000);
    plxt_ws_free(ws);
}

static void test_ws_bye_closes_1000(void **state)
{
    plxt_ws_t *ws = ws_open(srv);

    assert_int_equal(plxt_ws_send_text(ws, "bye"), 0);
    expect_close(ws, 1000);
    plxt_ws_free(ws);
}

static void test_ws_invalid_utf8_closes_1007(void **state)
{
    plxt_ws_t *ws = ws_open(srv);

    assert_int_equal(plxt_ws_send(ws, PLXT_WS_TEXT, "ab\xc3\x28", 4), 0);
    expect_close(ws, 1007);
    plxt_ws_free(ws);
}

static void test_ws_oversized_closes_1009(void **state)
{
    size_t n = WS_MAX_MESSAGE + 1;
    char *big = malloc(n);
    plxt_ws_t *ws = ws_open(srv);

    assert_non_null(big);
    memset(big, 'a', n);
    /* the server may close while the frame is still being written */
    plxt_ws_send(ws, PLXT_WS_TEXT, big, n);
    expect_close(ws, 1009);
    plxt_ws_free(ws);
    free(big);
}

/* ---- shutdown with a stream and a socket open ---------------------------------------------- */

static void test_sigterm_ends_stream_and_socket(void **state)
{
    plxt_server_t *s = start_server();
    plxt_stream_t *st;
    plxt_ws_t *ws;
    plxt_sse_event_t ev;
    plxt_ws_msg_t m;
    bool got_shutdown = false;
    int rc;

    assert_non_null(s);
    st = open_stream(s, 1000, 100);
    assert_int_equal(next_event(st, &ev), 1);
    assert_string_equal(ev.event, "tick");
    plxt_sse_event_free(&ev);
    ws = ws_open(s);
    assert_int_equal(plxt_ws_send_text(ws, "ping?"), 0);
    assert_int_equal(plxt_ws_recv(ws, &m, WAIT_MS), 1);
    plxt_ws_msg_free(&m);

    double t0 = plxt_now_ms();
    assert_int_equal(plxt_server_signal(s, SIGTERM), 0);

    while ((rc = next_event(st, &ev)) == 1) {
        got_shutdown |= strcmp(ev.event, SHUTDOWN_EVENT) == 0;
        plxt_sse_event_free(&ev);
    }
    assert_int_equal(rc, 0);   /* ended cleanly, not cut */
    if (!got_shutdown)
        fail_msg("expected a \"%s\" event before the stream ended", SHUTDOWN_EVENT);
    plxt_stream_close(st);

    expect_close(ws, 1001);
    plxt_ws_free(ws);

    rc = plxt_server_wait(s, 15000);
    assert_int_equal(rc, 0);
    /* streams are ended at once, not after the whole grace */
    if (plxt_now_ms() - t0 > 5000 + 3000)
        fail_msg("shutdown took %.0f ms, the grace is %s", plxt_now_ms() - t0,
                 SHUTDOWN_GRACE);
    assert_int_equal(plxt_server_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_headers),
        cmocka_unit_test(test_sse_exact_framing),
        cmocka_unit_test(test_sse_events_parse),
        cmocka_unit_test(test_sse_heartbeat_on_quiet_stream),
        cmocka_unit_test(test_sse_client_disconnect_cancels),
        cmocka_unit_test(test_ws_echo_text_and_binary),
        cmocka_unit_test(test_ws_bye_closes_1000),
        cmocka_unit_test(test_ws_invalid_utf8_closes_1007),
        cmocka_unit_test(test_ws_oversized_closes_1009),
        cmocka_unit_test(test_sigterm_ends_stream_and_socket),
    };

    plxt_require_postgres("test_streams");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
