/*
 * test_ai_ws.c - chat over the WebSocket /api/v1/ai/ws: two replies
 * streaming at once on one socket; one cancelled while the other
 * completes (its upstream call closed within a second); ping; bad JSON and
 * unknown types answered with an error message, the socket kept; binary
 * frames closed with 1003; a socket closed mid-stream stops the upstream
 * call; the per-socket bound on replies; errors of the gateway (unknown
 * model, spent quota); conversations, stored as the REST route stores
 * them, a cancelled turn kept incomplete; the handshake's authentication
 *
 * One plexusd with identity, metrics and ai over the fake provider.
 */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "ai_client.h"

#define WS_PATH "/api/v1/ai/ws"

static ait_env_t env;

/* a path or body from a format (harness.h) */
#define P plxt_fmt

static int group_setup(void **state)
{
    (void)state;
    if (ait_start(&env, NULL) != 0)
        return -1;
    ait_model(&env, "gpt-test", "fake", "up-model", 1.0, 2.0, NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return ait_stop(&env);
}

static int test_setup(void **state)
{
    (void)state;
    plxt_llm_reset(env.llm);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static plxt_ws_t *ws_open(const char *token)
{
    const char *headers[] = { plxt_bearer(token, NULL, 0), NULL };
    int status = 0;
    plxt_ws_t *ws = plxt_ws_connect(env.srv->url, WS_PATH, headers, 5000, &status);

    if (!ws)
        fail_msg("WebSocket handshake failed with %d", status);
    assert_int_equal(status, 101);
    return ws;
}

static void ws_send(plxt_ws_t *ws, const char *text)
{
    assert_int_equal(plxt_ws_send_text(ws, text), 0);
}

/* the next message, a JSON object (new reference) */
static json_t *ws_next(plxt_ws_t *ws, int timeout_ms)
{
    plxt_ws_msg_t m;
    json_t *j;
    int rc = plxt_ws_recv(ws, &m, timeout_ms);

    if (rc != 1)
        fail_msg("no message within %d ms (%d)", timeout_ms, rc);
    if (m.opcode != PLXT_WS_TEXT)
        fail_msg("expected a text message, got opcode %d (close %d %s)", m.opcode,
                 m.close_code, m.close_reason);
    j = json_loads(m.data, 0, NULL);
    if (!json_is_object(j))
        fail_msg("not a JSON object: %s", m.data);
    plxt_ws_msg_free(&m);
    return j;
}

static const char *type_of(json_t *j)
{
    const char *t = json_string_value(json_object_get(j, "type"));

    if (!t)
        fail_msg("a message without a type");
    return t;
}

/* one reply as the client sees it */
typedef struct reply {
    const char *id;
    bool   started;
    int    deltas;
    char   text[8192];
    json_t *end;           /* done, cancelled or error (new reference) */
    double first_delta_ms;
    double last_delta_ms;
} reply_t;

static reply_t *reply_of(reply_t *v, size_t n, const char *id)
{
    for (size_t i = 0; id && i < n; i++)
        if (strcmp(v[i].id, id) == 0)
            return &v[i];
    return NULL;
}

/* Take one message and file it under its reply, checking the order:
 * start, deltas, one end. Returns the reply it was for. */
static reply_t *file_message(json_t *j, reply_t *v, size_t n)
{
    const char *type = type_of(j);
    reply_t *w = reply_of(v, n, json_string_value(json_object_get(j, "id")));

    if (!w)
        fail_msg("a message for no reply of ours: %s", json_dumps(j, 0));
    if (w->end)
        fail_msg("a message after the end of reply %s: %s", w->id, json_dumps(j, 0));
    if (strcmp(type, "start") == 0) {
        assert_false(w->started);
        w->started = true;
        assert_string_equal(json_string_value(json_object_get(j, "model")), "gpt-test");
    } else if (strcmp(type, "delta") == 0) {
        const char *c = json_string_value(json_object_get(j, "content"));

        assert_true(w->started);
        assert_non_null(c);
        assert_true(strlen(w->text) + strlen(c) < sizeof w->text);
        strcat(w->text, c);
        if (w->deltas++ == 0)
            w->first_delta_ms = plxt_now_ms();
        w->last_delta_ms = plxt_now_ms();
    } else if (strcmp(type, "done") == 0 || strcmp(type, "cancelled") == 0
               || strcmp(type, "error") == 0) {
        w->end = json_incref(j);
    } else {
        fail_msg("unexpected message: %s", json_dumps(j, 0));
    }
    return w;
}

/* read until every reply has ended */
static void pump(plxt_ws_t *ws, reply_t *v, size_t n, int timeout_ms)
{
    for (;;) {
        bool all = true;
        json_t *j;

        for (size_t i = 0; i < n; i++)
            all = all && v[i].end;
        if (all)
            return;
        j = ws_next(ws, timeout_ms);
        file_message(j, v, n);
        json_decref(j);
    }
}

static void replies_free(reply_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i].end);
}

static const char *end_type(const reply_t *w)
{
    return w->end ? type_of(w->end) : "";
}

static long count_sql(const char *sql)
{
    char *v = ait_sql(&env, sql);
    long n = v ? strtol(v, NULL, 10) : -1;

    free(v);
    return n;
}

/* "w1 w2 ... wN", as the fake's tokens=N says */
static const char *words(int n)
{
    static char buf[8192];
    size_t o = 0;

    buf[0] = '\0';
    for (int i = 1; i <= n; i++)
        o += (size_t)snprintf(buf + o, sizeof buf - o, "%sw%d", i > 1 ? " " : "", i);
    return buf;
}

#define CHAT(id, directive)                                                   \
    P("{\"type\":\"chat\",\"id\":\"%s\",\"model\":\"gpt-test\",\"messages\":"  \
      "[{\"role\":\"user\",\"content\":\"%s go\"}]}", id, directive)

/* ---- tests ---------------------------------------------------------------------- */

static void test_two_replies_at_once(void **state)
{
    reply_t v[2] = { { .id = "c1" }, { .id = "c2" } };
    long ok0 = count_sql(P("SELECT count(*) FROM ai.usage WHERE kind = 'ws' AND status = 'ok' "
                           "AND user_id = '%s'", env.user.id));
    plxt_ws_t *ws = ws_open(env.user.access);
    json_t *u;

    (void)state;
    ws_send(ws, CHAT("c1", "[[fake tokens=30 delay_ms=20]]"));
    ws_send(ws, CHAT("c2", "[[fake text=\\\"Alpha beta gamma delta\\\" delay_ms=60]]"));
    pump(ws, v, 2, 10000);
    assert_string_equal(end_type(&v[0]), "done");
    assert_string_equal(end_type(&v[1]), "done");
    assert_string_equal(v[0].text, words(30));
    assert_string_equal(v[1].text, "Alpha beta gamma delta");
    /* both streamed at the same time */
    assert_int_equal(plxt_llm_peak(env.llm), 2);
    assert_true(v[1].first_delta_ms < v[0].last_delta_ms);
    assert_true(v[0].first_delta_ms < v[1].last_delta_ms);
    /* done: finish reason, the provider's usage and the cost (1 and 2 per
     * million tokens; the prompt is the directive's words and "go") */
    assert_string_equal(json_string_value(json_object_get(v[0].end, "finish_reason")), "stop");
    u = json_object_get(v[0].end, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 4);
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 30);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 34);
    assert_true(fabs(json_number_value(json_object_get(v[0].end, "cost")) - 64e-6) < 1e-9);
    replies_free(v, 2);
    /* an id may be used again as soon as its reply is done */
    for (int i = 0; i < 5; i++) {
        reply_t again[1] = { { .id = "c1" } };

        ws_send(ws, CHAT("c1", "[[fake tokens=2]]"));
        pump(ws, again, 1, 10000);
        assert_string_equal(end_type(&again[0]), "done");
        assert_string_equal(again[0].text, "w1 w2");
        replies_free(again, 1);
    }
    plxt_ws_send_close(ws, 1000, "bye");
    plxt_ws_free(ws);
    assert_int_equal(count_sql(P("SELECT count(*) FROM ai.usage WHERE kind = 'ws' AND "
                                 "status = 'ok' AND user_id = '%s'", env.user.id)), ok0 + 7);
}

static void test_cancel_one(void **state)
{
    reply_t v[2] = { { .id = "slow" }, { .id = "other" } };
    plxt_ws_t *ws = ws_open(env.user.access);
    double t0;
    json_t *j;

    (void)state;
    ws_send(ws, CHAT("slow", "[[fake tokens=400 delay_ms=25]]"));
    ws_send(ws, CHAT("other", "[[fake tokens=80 delay_ms=25]]"));
    while (v[0].deltas == 0 || v[1].deltas == 0) {
        j = ws_next(ws, 5000);
        file_message(j, v, 2);
        json_decref(j);
    }
    assert_int_equal(plxt_llm_active(env.llm), 2);
    ws_send(ws, "{\"type\":\"cancel\",\"id\":\"slow\"}");
    t0 = plxt_now_ms();
    if (!plxt_llm_wait_active(env.llm, 1, 1000))
        fail_msg("the cancelled call still runs upstream after %.0f ms", plxt_now_ms() - t0);
    /* the other one still streams */
    assert_int_equal(plxt_llm_active(env.llm), 1);
    pump(ws, v, 2, 10000);
    assert_string_equal(end_type(&v[0]), "cancelled");
    assert_string_equal(end_type(&v[1]), "done");
    assert_string_equal(v[1].text, words(80));
    assert_true(v[0].deltas < 400);
    replies_free(v, 2);
    /* a cancel for nothing running */
    ws_send(ws, "{\"type\":\"cancel\",\"id\":\"slow\"}");
    j = ws_next(ws, 5000);
    assert_string_equal(type_of(j), "error");
    assert_string_equal(json_string_value(json_object_get(j, "code")), "not_found");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "slow");
    json_decref(j);
    plxt_ws_free(ws);
}

static void test_ping(void **state)
{
    plxt_ws_t *ws = ws_open(env.user.access);
    json_t *j;

    (void)state;
    ws_send(ws, "{\"type\":\"ping\"}");
    j = ws_next(ws, 5000);
    assert_string_equal(type_of(j), "pong");
    json_decref(j);
    plxt_ws_free(ws);
}

/* wrong messages get an error message each; the socket stays open */
static void test_bad_messages(void **state)
{
    static const struct { const char *text, *id; } cases[] = {
        { "this is not JSON", NULL },
        { "[1,2,3]", NULL },
        { "{\"id\":\"x1\"}", "x1" },
        { "{\"type\":\"dance\",\"id\":\"x2\"}", "x2" },
        { "{\"type\":\"chat\",\"model\":\"gpt-test\",\"messages\":[{\"role\":\"user\","
          "\"content\":\"hi\"}]}", NULL },
        { "{\"type\":\"chat\",\"id\":\"x3\",\"model\":\"gpt-test\",\"messages\":[]}", "x3" },
        { "{\"type\":\"chat\",\"id\":\"x4\",\"model\":\"gpt-test\",\"messages\":[{\"role\":"
          "\"user\",\"content\":\"hi\"}],\"max_tokens\":-1}", "x4" },
        { "{\"type\":\"chat\",\"id\":\"x5\",\"model\":\"gpt-test\",\"messages\":[{\"role\":"
          "\"user\",\"content\":\"hi\"}],\"team_id\":\"nope\"}", "x5" },
    };
    plxt_ws_t *ws = ws_open(env.user.access);
    json_t *j;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ws_send(ws, cases[i].text);
        j = ws_next(ws, 5000);
        assert_string_equal(type_of(j), "error");
        assert_string_equal(json_string_value(json_object_get(j, "code")), "bad_request");
        assert_true(json_string_length(json_object_get(j, "message")) > 0);
        if (cases[i].id)
            assert_string_equal(json_string_value(json_object_get(j, "id")), cases[i].id);
        else
            assert_true(json_is_null(json_object_get(j, "id")));
        json_decref(j);
    }
    ws_send(ws, "{\"type\":\"ping\"}");
    j = ws_next(ws, 5000);
    assert_string_equal(type_of(j), "pong");
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 0);
    plxt_ws_free(ws);
}

static void test_binary_closes_1003(void **state)
{
    plxt_ws_t *ws = ws_open(env.user.access);
    plxt_ws_msg_t m;

    (void)state;
    assert_int_equal(plxt_ws_send(ws, PLXT_WS_BINARY, "\x01\x02\x03", 3), 0);
    assert_int_equal(plxt_ws_recv(ws, &m, 5000), 1);
    assert_int_equal(m.opcode, PLXT_WS_CLOSE);
    assert_int_equal(m.close_code, 1003);
    plxt_ws_msg_free(&m);
    plxt_ws_free(ws);
}

/* the client goes away mid-stream, without a close frame: the upstream
 * call stops within a second and its usage row says cancelled */
static void test_socket_closed_midstream(void **state)
{
    reply_t v[1] = { { .id = "c1" } };
    plxt_ws_t *ws = ws_open(env.user.access);
    const char *rows = P("SELECT count(*) FROM ai.usage WHERE kind = 'ws' AND user_id = '%s' "
                         "AND status IN ('cancelled', 'incomplete')", env.user.id);
    long before = count_sql(rows);
    double t0;
    json_t *j;

    (void)state;
    ws_send(ws, CHAT("c1", "[[fake tokens=400 delay_ms=25]]"));
    while (v[0].deltas < 2) {
        j = ws_next(ws, 5000);
        file_message(j, v, 1);
        json_decref(j);
    }
    plxt_ws_free(ws);
    t0 = plxt_now_ms();
    if (!plxt_llm_wait_active(env.llm, 0, 1000))
        fail_msg("the upstream call still runs %.0f ms after the socket closed",
                 plxt_now_ms() - t0);
    for (int i = 0; i < 50 && count_sql(rows) == before; i++)
        plxt_sleep_ms(100);
    assert_int_equal(count_sql(rows), before + 1);
    replies_free(v, 1);
}

/* a socket closed while the provider has not said a word yet */
static void test_socket_closed_while_waiting(void **state)
{
    plxt_ws_t *ws = ws_open(env.user.access);
    double t0;

    (void)state;
    ws_send(ws, CHAT("c1", "[[fake first_ms=20000]]"));
    for (int i = 0; i < 50 && plxt_llm_active(env.llm) == 0; i++)
        plxt_sleep_ms(20);
    assert_int_equal(plxt_llm_active(env.llm), 1);
    plxt_ws_send_close(ws, 1000, "bye");
    plxt_ws_free(ws);
    t0 = plxt_now_ms();
    if (!plxt_llm_wait_active(env.llm, 0, 1000))
        fail_msg("the upstream call still runs %.0f ms after the socket closed",
                 plxt_now_ms() - t0);
}

static void test_reply_bound_per_socket(void **state)
{
    reply_t v[4] = { { .id = "r0" }, { .id = "r1" }, { .id = "r2" }, { .id = "r3" } };
    plxt_ws_t *ws = ws_open(env.user.access);
    bool flowing = false;
    int errors = 0;
    json_t *j;

    (void)state;
    /* the default bound is 4: the fifth is refused while four stream */
    for (int i = 0; i < 5; i++)
        ws_send(ws, CHAT(P("r%d", i), "[[fake tokens=400 delay_ms=25]]"));
    while (errors < 1 || !flowing) {
        j = ws_next(ws, 5000);
        if (strcmp(type_of(j), "error") == 0) {
            assert_string_equal(json_string_value(json_object_get(j, "code")),
                                "too_many_streams");
            assert_string_equal(json_string_value(json_object_get(j, "id")), "r4");
            errors++;
        } else {
            file_message(j, v, 4);
        }
        json_decref(j);
        flowing = v[0].deltas && v[1].deltas && v[2].deltas && v[3].deltas;
    }
    assert_int_equal(plxt_llm_active(env.llm), 4);
    /* the same id twice while the first runs */
    ws_send(ws, CHAT("r0", "[[fake tokens=3]]"));
    for (;;) {
        j = ws_next(ws, 5000);
        if (strcmp(type_of(j), "error") == 0) {
            assert_string_equal(json_string_value(json_object_get(j, "id")), "r0");
            assert_string_equal(json_string_value(json_object_get(j, "code")), "bad_request");
            json_decref(j);
            break;
        }
        file_message(j, v, 4);
        json_decref(j);
    }
    plxt_ws_free(ws);
    assert_true(plxt_llm_wait_active(env.llm, 0, 1500));
    assert_int_equal(plxt_llm_peak(env.llm), 4);
    assert_int_equal(plxt_llm_count(env.llm), 4);
    replies_free(v, 4);
}

static void test_gateway_errors(void **state)
{
    plxt_ws_t *ws = ws_open(env.user.access);
    plxt_user_t u;
    json_t *j;

    (void)state;
    ws_send(ws, "{\"type\":\"chat\",\"id\":\"m\",\"model\":\"no-such-model\",\"messages\":"
                "[{\"role\":\"user\",\"content\":\"hi\"}]}");
    j = ws_next(ws, 5000);
    assert_string_equal(type_of(j), "error");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "m");
    assert_string_equal(json_string_value(json_object_get(j, "code")), "model_not_found");
    json_decref(j);
    plxt_ws_free(ws);

    plxt_user_new(env.srv, env.db, &u);
    j = ait_expect(&env, "POST", "/api/v1/admin/ai/quotas", env.admin.access,
                   P("{\"subject_type\":\"user\",\"subject_id\":\"%s\",\"period\":\"day\","
                     "\"max_tokens\":5}", u.id), 201);
    json_decref(j);
    ws = ws_open(u.access);
    ws_send(ws, CHAT("q", "hello"));
    j = ws_next(ws, 5000);
    assert_string_equal(type_of(j), "error");
    assert_string_equal(json_string_value(json_object_get(j, "id")), "q");
    assert_string_equal(json_string_value(json_object_get(j, "code")), "quota_exceeded");
    assert_true(json_string_length(json_object_get(j, "message")) > 0);
    json_decref(j);
    plxt_ws_free(ws);
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

/* a team the user is not in cannot be charged */
static void test_team_charged(void **state)
{
    char team[37];
    plxt_ws_t *ws;
    reply_t v[1] = { { .id = "t1" } };
    json_t *j;

    (void)state;
    ait_team_new(&env, &env.admin, team);
    ws = ws_open(env.user.access);
    ws_send(ws, P("{\"type\":\"chat\",\"id\":\"t0\",\"model\":\"gpt-test\",\"team_id\":\"%s\","
                  "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", team));
    j = ws_next(ws, 5000);
    assert_string_equal(type_of(j), "error");
    assert_string_equal(json_string_value(json_object_get(j, "code")), "team_not_found");
    json_decref(j);
    plxt_ws_free(ws);
    /* its owner can */
    ws = ws_open(env.admin.access);
    ws_send(ws, P("{\"type\":\"chat\",\"id\":\"t1\",\"model\":\"gpt-test\",\"team_id\":\"%s\","
                  "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", team));
    pump(ws, v, 1, 5000);
    assert_string_equal(end_type(&v[0]), "done");
    replies_free(v, 1);
    plxt_ws_free(ws);
    assert_int_equal(count_sql(P("SELECT count(*) FROM ai.usage WHERE kind = 'ws' AND "
                                 "team_id = '%s'", team)), 1);
}

/* the messages of a conversation, as the REST route lists them */
static json_t *conv_messages(const char *token, const char *conv)
{
    json_t *j = ait_expect(&env, "GET", P("/api/v1/conversations/%s/messages", conv), token,
                           NULL, 200);
    json_t *items = json_incref(json_object_get(j, "items"));

    json_decref(j);
    assert_true(json_is_array(items));
    return items;
}

static const char *msg_field(json_t *items, size_t i, const char *key)
{
    const char *v = json_string_value(json_object_get(json_array_get(items, i), key));

    if (!v)
        fail_msg("message %zu has no \"%s\"", i, key);
    return v;
}

/* turns of a conversation over the socket: stored like the REST route
 * stores them, the history sent, two conversations at once */
static void test_conversations(void **state)
{
    reply_t v[2] = { { .id = "a1" }, { .id = "b1" } };
    reply_t v2[1] = { { .id = "a2" } };
    json_t *a = ait_expect(&env, "POST", "/api/v1/conversations", env.user.access,
                           "{\"model\":\"gpt-test\",\"system\":\"Be brief.\"}", 201);
    json_t *b = ait_expect(&env, "POST", "/api/v1/conversations", env.user.access,
                           "{\"model\":\"gpt-test\"}", 201);
    char ca[37], cb[37];
    plxt_ws_t *ws = ws_open(env.user.access);
    json_t *items, *body, *msgs;
    plxt_llm_seen_t seen;

    (void)state;
    snprintf(ca, sizeof ca, "%s", json_string_value(json_object_get(a, "id")));
    snprintf(cb, sizeof cb, "%s", json_string_value(json_object_get(b, "id")));
    json_decref(a);
    json_decref(b);
    ws_send(ws, P("{\"type\":\"chat\",\"id\":\"a1\",\"conversation_id\":\"%s\",\"content\":"
                  "\"[[fake text=\\\"First answer\\\" delay_ms=30]] first\"}", ca));
    ws_send(ws, P("{\"type\":\"chat\",\"id\":\"b1\",\"conversation_id\":\"%s\",\"content\":"
                  "\"[[fake tokens=8 delay_ms=30]] other\"}", cb));
    pump(ws, v, 2, 10000);
    assert_string_equal(end_type(&v[0]), "done");
    assert_string_equal(end_type(&v[1]), "done");
    assert_int_equal(plxt_llm_peak(env.llm), 2);
    assert_string_equal(json_string_value(json_object_get(v[0].end, "conversation_id")), ca);
    assert_true(json_string_length(json_object_get(v[0].end, "message_id")) == 36);
    items = conv_messages(env.user.access, ca);
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(msg_field(items, 0, "role"), "user");
    assert_string_equal(msg_field(items, 1, "role"), "assistant");
    assert_string_equal(msg_field(items, 1, "content"), "First answer");
    assert_string_equal(msg_field(items, 1, "status"), "complete");
    assert_string_equal(msg_field(items, 1, "id"),
                        json_string_value(json_object_get(v[0].end, "message_id")));
    json_decref(items);
    replies_free(v, 2);

    /* the next turn carries the system prompt and the history */
    plxt_llm_reset(env.llm);
    ws_send(ws, P("{\"type\":\"chat\",\"id\":\"a2\",\"conversation_id\":\"%s\",\"content\":"
                  "\"and then?\"}", ca));
    pump(ws, v2, 1, 10000);
    assert_string_equal(end_type(&v2[0]), "done");
    assert_true(plxt_llm_seen(env.llm, 0, &seen));
    body = seen.body;
    msgs = json_object_get(body, "messages");
    assert_int_equal(json_array_size(msgs), 4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 0), "content")),
                        "Be brief.");
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 2), "content")),
                        "First answer");
    assert_string_equal(json_string_value(json_object_get(json_array_get(msgs, 3), "content")),
                        "and then?");
    plxt_llm_seen_free(&seen);
    replies_free(v2, 1);
    plxt_ws_free(ws);
}

/* a cancelled turn keeps the part that came, marked incomplete; another
 * user's conversation is not found */
static void test_conversation_cancelled_and_foreign(void **state)
{
    reply_t v[1] = { { .id = "c" } };
    json_t *a = ait_expect(&env, "POST", "/api/v1/conversations", env.user.access,
                           "{\"model\":\"gpt-test\"}", 201);
    char ca[37];
    plxt_ws_t *ws;
    json_t *j, *items;

    (void)state;
    snprintf(ca, sizeof ca, "%s", json_string_value(json_object_get(a, "id")));
    json_decref(a);
    ws = ws_open(env.user.access);
    ws_send(ws, P("{\"type\":\"chat\",\"id\":\"c\",\"conversation_id\":\"%s\",\"content\":"
                  "\"[[fake tokens=400 delay_ms=25]] go\"}", ca));
    while (v[0].deltas < 3) {
        j = ws_next(ws, 5000);
        file_message(j, v, 1);
        json_decref(j);
    }
    ws_send(ws, "{\"type\":\"cancel\",\"id\":\"c\"}");
    pump(ws, v, 1, 5000);
    assert_string_equal(end_type(&v[0]), "cancelled");
    items = conv_messages(env.user.access, ca);
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(msg_field(items, 1, "status"), "incomplete");
    assert_memory_equal(msg_field(items, 1, "content"), "w1 w2 w3", 8);
    /* what the client saw is where the stored part begins (a piece may
     * have come from the provider after the cancel and not been sent) */
    assert_true(strncmp(msg_field(items, 1, "content"), v[0].text, strlen(v[0].text)) == 0);
    json_decref(items);
    replies_free(v, 1);
    /* the same conversation is not the admin's */
    plxt_ws_free(ws);
    ws = ws_open(env.admin.access);
    ws_send(ws, P("{\"type\":\"chat\",\"id\":\"x\",\"conversation_id\":\"%s\",\"content\":"
                  "\"mine?\"}", ca));
    j = ws_next(ws, 5000);
    assert_string_equal(type_of(j), "error");
    assert_string_equal(json_string_value(json_object_get(j, "code")), "not_found");
    json_decref(j);
    ws_send(ws, "{\"type\":\"chat\",\"id\":\"y\",\"conversation_id\":\"not-a-uuid\","
                "\"content\":\"x\"}");
    j = ws_next(ws, 5000);
    assert_string_equal(json_string_value(json_object_get(j, "code")), "not_found");
    json_decref(j);
    plxt_ws_free(ws);
    items = conv_messages(env.user.access, ca);
    assert_int_equal(json_array_size(items), 2);
    json_decref(items);
}

static void test_handshake_auth(void **state)
{
    const char *none[] = { NULL };
    char proto[4200];
    const char *sub[] = { proto, NULL };
    int status = 0;
    plxt_ws_t *ws;
    json_t *j;

    (void)state;
    ws = plxt_ws_connect(env.srv->url, WS_PATH, none, 5000, &status);
    assert_null(ws);
    assert_int_equal(status, 401);
    /* browsers: the token as a subprotocol */
    snprintf(proto, sizeof proto, "Sec-WebSocket-Protocol: bearer, %s", env.user.access);
    ws = plxt_ws_connect(env.srv->url, WS_PATH, sub, 5000, &status);
    if (!ws)
        fail_msg("the subprotocol bearer was refused: %d", status);
    ws_send(ws, "{\"type\":\"ping\"}");
    j = ws_next(ws, 5000);
    assert_string_equal(type_of(j), "pong");
    json_decref(j);
    plxt_ws_free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_two_replies_at_once, test_setup),
        cmocka_unit_test_setup(test_cancel_one, test_setup),
        cmocka_unit_test_setup(test_ping, test_setup),
        cmocka_unit_test_setup(test_bad_messages, test_setup),
        cmocka_unit_test_setup(test_binary_closes_1003, test_setup),
        cmocka_unit_test_setup(test_socket_closed_midstream, test_setup),
        cmocka_unit_test_setup(test_socket_closed_while_waiting, test_setup),
        cmocka_unit_test_setup(test_reply_bound_per_socket, test_setup),
        cmocka_unit_test_setup(test_gateway_errors, test_setup),
        cmocka_unit_test_setup(test_team_charged, test_setup),
        cmocka_unit_test_setup(test_conversations, test_setup),
        cmocka_unit_test_setup(test_conversation_cancelled_and_foreign, test_setup),
        cmocka_unit_test_setup(test_handshake_auth, test_setup),
    };

    plxt_require_postgres("test_ai_ws");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
