/*
 * test_ai_chat.c - the gateway end to end: /api/v1/ai/chat and the
 * conversations on a real plexusd, PostgreSQL and the fake provider
 *
 * One server for the main group (with the ai_probe module, whose hooks
 * act only on messages that ask for it), another with no provider at all.
 * Each case resets the fake and empties ai.usage first, so the rows and
 * the requests it reads are its own.
 *
 * What is checked: each provider kind (OpenAI, Anthropic, Gemini) whole
 * and streamed, with the request the fake received; the SSE framing;
 * exact usage from the provider and estimated usage without it (rows of
 * ai.usage); retries then fallback on 500 and on 429 with retry-after;
 * a failure mid-stream (error event, incomplete message kept); a client
 * that leaves during a slow stream and during a hang (the upstream call
 * is closed within a second, a cancelled row); conversations (CRUD,
 * pages, history sent to the model, trimmed to the context window,
 * another user's is not found); the hooks and the ai.chat/1 and
 * ai.embed/1 services through the probe; metrics; 503 ai_not_configured.
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

#include "ai_client.h"

static ait_env_t env;

/* ---- helpers ----------------------------------------------------------------- */

static long sql_long(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static long sql_long(const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    char *v;
    long n;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    v = ait_sql(&env, sql);
    n = v ? strtol(v, NULL, 10) : -1;
    free(v);
    return n;
}

/* wait up to ms for a SELECT count(*) to reach want */
static long sql_wait(long want, int ms, const char *sql)
{
    double end = plxt_now_ms() + ms;
    long n;

    while ((n = sql_long("%s", sql)) != want && plxt_now_ms() < end)
        plxt_sleep_ms(20);
    return n;
}

static bool uuid_like(const char *s)
{
    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr("0123456789abcdef", s[i]))
            return false;
    }
    return true;
}

static void fresh(void)
{
    plxt_llm_script_t dflt = { 0 };

    plxt_llm_reset(env.llm);
    plxt_llm_set_default(env.llm, &dflt);
    plxt_db_exec(env.db, "DELETE FROM ai.usage", 0, NULL);
}

static const char *str(json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));

    if (!v)
        fail_msg("expected a string \"%s\" in %s", key, json_dumps(j, JSON_COMPACT));
    return v;
}

static long num(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);

    if (!json_is_integer(v))
        fail_msg("expected an integer \"%s\"", key);
    return (long)json_integer_value(v);
}

/* the i-th request the fake received (its body a new reference) */
static json_t *seen_body(int i, plxt_llm_seen_t *seen)
{
    if (!plxt_llm_seen(env.llm, i, seen))
        fail_msg("the fake has no request %d (count %d)", i, plxt_llm_count(env.llm));
    return seen->body;
}

static json_t *chat(const char *token, const char *body, long status)
{
    return ait_expect(&env, "POST", "/api/v1/ai/chat", token, body, status);
}

/* What one stream said. */
typedef struct sse_reply {
    json_t *start, *done, *error;
    char    text[8192];
    int     deltas;
    int     comments;
    bool    ended;
} sse_reply_t;

static void sse_reply_free(sse_reply_t *s)
{
    json_decref(s->start);
    json_decref(s->done);
    json_decref(s->error);
}

/* read events until the stream ends (or max_deltas pieces came: 0 = all) */
static void sse_read(plxt_stream_t *st, sse_reply_t *out, int max_deltas)
{
    plxt_sse_event_t ev;
    int rc;

    memset(out, 0, sizeof *out);
    while ((rc = plxt_sse_next(st, &ev, 8000)) == 1) {
        json_t *j = ev.is_comment ? NULL : json_loads(ev.data, 0, NULL);
        if (ev.is_comment) {
            out->comments++;
        } else if (!j) {
            fail_msg("event \"%s\" without JSON data: %s", ev.event, ev.data);
        } else if (strcmp(ev.event, "start") == 0) {
            out->start = json_incref(j);
        } else if (strcmp(ev.event, "delta") == 0) {
            const char *c = json_string_value(json_object_get(j, "content"));
            assert_non_null(c);
            strncat(out->text, c, sizeof out->text - strlen(out->text) - 1);
            out->deltas++;
        } else if (strcmp(ev.event, "done") == 0) {
            out->done = json_incref(j);
        } else if (strcmp(ev.event, "error") == 0) {
            out->error = json_incref(j);
        } else {
            fail_msg("unexpected event \"%s\"", ev.event);
        }
        json_decref(j);
        plxt_sse_event_free(&ev);
        if (max_deltas && out->deltas >= max_deltas)
            return;
    }
    assert_int_equal(rc, 0);
    out->ended = true;
}

/* ---- the setup ---------------------------------------------------------------- */

static int group_setup(void **state)
{
    const char *b = getenv("PLX_BUILDDIR");
    static char probe[1024];
    static plxt_module_t extra[2];

    snprintf(probe, sizeof probe, "%s/modules/ai/tests/.libs/ai_probe.so", b ? b : ".");
    extra[0] = (plxt_module_t){ .name = "ai_probe", .path = probe };
    if (ait_start_with(&env, NULL, extra) != 0)
        return -1;
    ait_model(&env, "m-openai", "fake", "up-openai", 1.0, 2.0, NULL);
    ait_model(&env, "m-anth", "fake_anth", "up-anth", 3.0, 15.0, NULL);
    ait_model(&env, "m-gem", "fake_gem", "up-gem", 0.5, 1.5, NULL);
    ait_model(&env, "m-back", "fake", "up-back", 1.0, 1.0, NULL);
    ait_model(&env, "m-prim", "fake", "up-prim", 1.0, 1.0, "[\"m-back\"]");
    ait_embedding_model(&env, "m-emb", "fake", "up-emb", 0.1);
    json_decref(ait_expect(&env, "POST", "/api/v1/admin/ai/models", env.admin.access,
                           "{\"name\":\"m-small\",\"provider\":\"fake\","
                           "\"upstream\":\"up-small\",\"context_window\":120}", 201));
    return 0;
}

static int group_teardown(void **state)
{
    return ait_stop(&env);
}

/* ---- providers, whole and streamed ------------------------------------------- */

typedef struct provider_case {
    const char *model, *upstream;
    double in, out;
} provider_case_t;

static const provider_case_t providers[] = {
    { "m-openai", "up-openai", 1.0, 2.0 },
    { "m-anth", "up-anth", 3.0, 15.0 },
    { "m-gem", "up-gem", 0.5, 1.5 },
};

/* the request the fake received, as the provider's wire format says */
static void check_mapping(const provider_case_t *pc, bool stream, const char *text)
{
    plxt_llm_seen_t seen;
    json_t *body = seen_body(0, &seen);

    assert_string_equal(seen.api_key, AIT_KEY);
    assert_string_equal(seen.method, "POST");
    if (strcmp(pc->model, "m-openai") == 0) {
        assert_string_equal(seen.path, "/v1/chat/completions");
        assert_string_equal(str(body, "model"), pc->upstream);
        assert_int_equal(num(body, "max_tokens"), 50);
        json_t *m0 = json_array_get(json_object_get(body, "messages"), 0);
        assert_string_equal(str(m0, "role"), "user");
        assert_string_equal(str(m0, "content"), text);
        assert_int_equal(json_is_true(json_object_get(body, "stream")), stream);
        if (stream)
            assert_true(json_is_true(json_object_get(
                json_object_get(body, "stream_options"), "include_usage")));
    } else if (strcmp(pc->model, "m-anth") == 0) {
        assert_string_equal(seen.path, "/v1/messages");
        assert_string_equal(seen.anthropic_version, "2023-06-01");
        assert_string_equal(str(body, "model"), pc->upstream);
        assert_int_equal(num(body, "max_tokens"), 50);
        json_t *m0 = json_array_get(json_object_get(body, "messages"), 0);
        assert_string_equal(str(m0, "role"), "user");
        assert_int_equal(json_is_true(json_object_get(body, "stream")), stream);
    } else {
        const char *want = stream ? "/v1beta/models/up-gem:streamGenerateContent?alt=sse"
                                  : "/v1beta/models/up-gem:generateContent";
        assert_string_equal(seen.path, want);
        json_t *gc = json_object_get(body, "generationConfig");
        assert_int_equal(num(gc, "maxOutputTokens"), 50);
        json_t *c0 = json_array_get(json_object_get(body, "contents"), 0);
        json_t *p0 = json_array_get(json_object_get(c0, "parts"), 0);
        assert_string_equal(str(p0, "text"), text);
    }
    plxt_llm_seen_free(&seen);
}

static void check_usage(const provider_case_t *pc, json_t *usage, double cost,
                        const char *text, int completion)
{
    long prompt = plxt_llm_count_words(text);
    double want = (prompt * pc->in + completion * pc->out) / 1e6;

    assert_int_equal(num(usage, "prompt_tokens"), prompt);
    assert_int_equal(num(usage, "completion_tokens"), completion);
    assert_int_equal(num(usage, "total_tokens"), prompt + completion);
    assert_false(json_is_true(json_object_get(usage, "estimated")));
    assert_true(cost > want * 0.999 && cost < want * 1.001);
    assert_int_equal(sql_wait(1, 2000, "SELECT count(*) FROM ai.usage"), 1);
    assert_int_equal(sql_long("SELECT count(*) FROM ai.usage WHERE status = 'ok'"
                              " AND NOT estimated AND kind = 'chat' AND model = '%s'"
                              " AND served_model = '%s' AND prompt_tokens = %ld"
                              " AND completion_tokens = %d AND user_id = '%s'",
                              pc->model, pc->model, prompt, completion, env.user.id), 1);
}

static void test_providers_whole(void **state)
{
    const char *text = "[[fake tokens=3]] say three words";
    char body[512];

    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++) {
        const provider_case_t *pc = &providers[i];
        fresh();
        snprintf(body, sizeof body, "{\"model\":\"%s\",\"message\":\"%s\","
                 "\"max_tokens\":50}", pc->model, text);
        json_t *j = chat(env.user.access, body, 200);
        assert_true(uuid_like(str(j, "id")));
        assert_string_equal(str(j, "model"), pc->model);
        json_t *msg = json_object_get(j, "message");
        assert_string_equal(str(msg, "role"), "assistant");
        assert_string_equal(str(msg, "content"), "w1 w2 w3");
        assert_string_equal(str(j, "finish_reason"), "stop");
        check_usage(pc, json_object_get(j, "usage"),
                    json_number_value(json_object_get(j, "cost")), text, 3);
        check_mapping(pc, false, text);
        json_decref(j);
    }
}

static void test_providers_streamed(void **state)
{
    const char *text = "[[fake tokens=5 delay_ms=10]] count to five";
    char body[512];
    sse_reply_t s;

    for (size_t i = 0; i < sizeof providers / sizeof providers[0]; i++) {
        const provider_case_t *pc = &providers[i];
        fresh();
        snprintf(body, sizeof body, "{\"model\":\"%s\",\"message\":\"%s\","
                 "\"max_tokens\":50,\"stream\":true}", pc->model, text);
        plxt_stream_t *st = ait_stream(&env, "/api/v1/ai/chat", env.user.access, body);
        assert_string_equal(plxt_stream_header(st, "Cache-Control"), "no-cache");
        sse_read(st, &s, 0);
        assert_non_null(s.start);
        assert_string_equal(str(s.start, "model"), pc->model);
        assert_true(uuid_like(str(s.start, "id")));
        assert_string_equal(s.text, "w1 w2 w3 w4 w5");
        assert_true(s.deltas >= 2);
        assert_null(s.error);
        assert_non_null(s.done);
        assert_string_equal(str(s.done, "finish_reason"), "stop");
        assert_string_equal(str(s.done, "model"), pc->model);
        check_usage(pc, json_object_get(s.done, "usage"),
                    json_number_value(json_object_get(s.done, "cost")), text, 5);
        check_mapping(pc, true, text);
        sse_reply_free(&s);
        plxt_stream_close(st);
    }
}

/* the bytes on the wire: named events, one data line of JSON, a blank line */
static void test_sse_framing(void **state)
{
    const char *body = "{\"model\":\"m-openai\",\"stream\":true,\"message\":"
                       "\"[[fake text=\\\"caf\\u00e9 \\u20ac \\ud83d\\ude00 ok\\\"]] hi\"}";
    plxt_stream_t *st;
    sse_reply_t s;
    size_t len;
    const char *raw;

    fresh();
    st = ait_stream(&env, "/api/v1/ai/chat", env.user.access, body);
    sse_read(st, &s, 0);
    raw = plxt_stream_raw(st, &len);
    assert_true(len > 20);
    assert_memory_equal(raw, "event: start\ndata: {", 20);
    assert_non_null(strstr(raw, "\n\nevent: delta\ndata: {\"content\":\""));
    assert_non_null(strstr(raw, "\n\nevent: done\ndata: {"));
    assert_memory_equal(raw + len - 2, "\n\n", 2);
    /* every line is a field or a comment, every block ends with a blank line */
    for (const char *p = raw; p < raw + len;) {
        const char *nl = memchr(p, '\n', (size_t)(raw + len - p));
        assert_non_null(nl);
        if (nl > p)
            assert_true(strncmp(p, "event: ", 7) == 0 || strncmp(p, "data: ", 6) == 0
                        || *p == ':');
        p = nl + 1;
    }
    /* a multi-byte character is never split across two pieces */
    assert_string_equal(s.text, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 ok");
    sse_reply_free(&s);
    plxt_stream_close(st);
}

/* ---- usage --------------------------------------------------------------------- */

static void test_usage_estimated(void **state)
{
    const char *text = "[[fake tokens=8 no_usage=1]] twelve bytes!!";
    char body[512];
    long est_prompt = 4 + ((long)strlen(text) + 3) / 4;
    sse_reply_t s;

    fresh();
    snprintf(body, sizeof body, "{\"model\":\"m-openai\",\"message\":\"%s\"}", text);
    json_t *j = chat(env.user.access, body, 200);
    json_t *u = json_object_get(j, "usage");
    assert_true(json_is_true(json_object_get(u, "estimated")));
    assert_int_equal(num(u, "prompt_tokens"), est_prompt);
    /* "w1 w2 ... w8": 23 bytes, 6 tokens by four bytes each */
    assert_int_equal(num(u, "completion_tokens"), 6);
    assert_int_equal(sql_wait(1, 2000, "SELECT count(*) FROM ai.usage WHERE estimated"
                              " AND status = 'ok'"), 1);
    json_decref(j);

    /* streamed: the fake sends no usage chunk, the gateway estimates */
    snprintf(body, sizeof body, "{\"model\":\"m-anth\",\"stream\":true,"
             "\"message\":\"%s\"}", text);
    plxt_stream_t *st = ait_stream(&env, "/api/v1/ai/chat", env.user.access, body);
    sse_read(st, &s, 0);
    assert_non_null(s.done);
    u = json_object_get(s.done, "usage");
    assert_true(json_is_true(json_object_get(u, "estimated")));
    assert_int_equal(num(u, "completion_tokens"), 6);
    assert_int_equal(sql_wait(2, 2000, "SELECT count(*) FROM ai.usage WHERE estimated"
                              " AND status = 'ok'"), 2);
    sse_reply_free(&s);
    plxt_stream_close(st);
}

/* ---- retries and fallback ------------------------------------------------------- */

static void test_fallback_after_500(void **state)
{
    plxt_llm_script_t fail500 = { .status = 500 };
    plxt_llm_seen_t seen;
    json_t *j;

    fresh();
    for (int i = 0; i < 3; i++)     /* max_retries 2: three attempts */
        plxt_llm_push(env.llm, &fail500);
    j = chat(env.user.access, "{\"model\":\"m-prim\",\"message\":\"[[fake tokens=2]] hi\"}",
             200);
    assert_string_equal(str(j, "model"), "m-back");
    assert_string_equal(str(json_object_get(j, "message"), "content"), "w1 w2");
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 4);
    for (int i = 0; i < 4; i++) {
        json_t *b = seen_body(i, &seen);
        assert_string_equal(str(b, "model"), i < 3 ? "up-prim" : "up-back");
        plxt_llm_seen_free(&seen);
    }
    assert_int_equal(sql_wait(4, 2000, "SELECT count(*) FROM ai.usage"), 4);
    assert_int_equal(sql_long("SELECT count(*) FROM ai.usage WHERE status = 'error'"
                              " AND served_model = 'm-prim' AND model = 'm-prim'"
                              " AND prompt_tokens = 0 AND error IS NOT NULL"), 3);
    assert_int_equal(sql_long("SELECT count(*) FROM ai.usage WHERE status = 'ok'"
                              " AND served_model = 'm-back' AND model = 'm-prim'"), 1);
}

static void test_fallback_after_429(void **state)
{
    plxt_llm_script_t rate = { .status = 429, .retry_after = 3 };
    double t0;
    json_t *j;

    fresh();
    for (int i = 0; i < 3; i++)
        plxt_llm_push(env.llm, &rate);
    t0 = plxt_now_ms();
    j = chat(env.user.access, "{\"model\":\"m-prim\",\"stream\":false,"
             "\"message\":\"[[fake tokens=1]] hi\"}", 200);
    /* two waits of retry-after 3 s, each capped at retry_max_ms = 500 */
    double took = plxt_now_ms() - t0;
    assert_true(took >= 950);
    assert_true(took < 4000);
    assert_string_equal(str(j, "model"), "m-back");
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 4);
    assert_int_equal(sql_wait(3, 2000, "SELECT count(*) FROM ai.usage WHERE status = 'error'"
                              " AND served_model = 'm-prim'"), 3);
}

/* every model failing: the last error, as a problem; a client error is
 * not retried at all */
static void test_all_fail(void **state)
{
    plxt_llm_script_t fail503 = { .status = 503 }, bad = { .status = 400 };

    fresh();
    for (int i = 0; i < 6; i++)
        plxt_llm_push(env.llm, &fail503);
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-prim\",\"message\":\"hi\"}", 502, "upstream_error");
    assert_int_equal(plxt_llm_count(env.llm), 6);
    assert_int_equal(sql_wait(6, 2000, "SELECT count(*) FROM ai.usage WHERE status = 'error'"), 6);

    fresh();
    plxt_llm_push(env.llm, &bad);
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-prim\",\"message\":\"hi\"}", 400, "upstream_rejected");
    assert_int_equal(plxt_llm_count(env.llm), 1);
}

/* ---- failures and cancellation mid-stream ---------------------------------------- */

static void make_conversation(plxt_user_t *u, const char *model, const char *system,
                              char id[37])
{
    char body[512];
    json_t *j;

    snprintf(body, sizeof body, "{\"title\":\"t\",\"model\":\"%s\"%s%s%s}", model,
             system ? ",\"system\":\"" : "", system ? system : "", system ? "\"" : "");
    j = ait_expect(&env, "POST", "/api/v1/conversations", u->access, body, 201);
    snprintf(id, 37, "%s", str(j, "id"));
    json_decref(j);
}

static void test_midstream_failure(void **state)
{
    const char *models[] = { "m-openai", "m-anth" };
    char conv[37], path[128];
    sse_reply_t s;

    for (size_t i = 0; i < 2; i++) {
        fresh();
        make_conversation(&env.user, models[i], NULL, conv);
        snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conv);
        plxt_stream_t *st = ait_stream(&env, path, env.user.access,
            "{\"stream\":true,\"content\":\"[[fake tokens=6 fail_after=2 delay_ms=5]] go\"}");
        sse_read(st, &s, 0);
        plxt_stream_close(st);
        assert_string_equal(s.text, "w1 w2");
        assert_null(s.done);
        assert_non_null(s.error);
        assert_true(json_is_true(json_object_get(s.error, "incomplete")));
        assert_non_null(json_string_value(json_object_get(s.error, "code")));
        assert_non_null(json_string_value(json_object_get(s.error, "message")));
        const char *mid = str(s.error, "message_id");
        assert_string_equal(mid, str(s.start, "id"));
        json_t *page = ait_expect(&env, "GET", path, env.user.access, NULL, 200);
        json_t *items = json_object_get(page, "items");
        assert_int_equal(json_array_size(items), 2);
        json_t *reply = json_array_get(items, 1);
        assert_string_equal(str(reply, "id"), mid);
        assert_string_equal(str(reply, "role"), "assistant");
        assert_string_equal(str(reply, "status"), "incomplete");
        assert_string_equal(str(reply, "content"), "w1 w2");
        json_decref(page);
        assert_int_equal(sql_wait(1, 2000, "SELECT count(*) FROM ai.usage"
                                  " WHERE status = 'incomplete'"), 1);
        assert_int_equal(plxt_llm_count(env.llm), 1);   /* never retried */
        sse_reply_free(&s);
    }
}

static void check_cancelled(double closed_at)
{
    assert_true(plxt_llm_wait_active(env.llm, 0, 1000));
    assert_true(plxt_now_ms() - closed_at < 1000);
    assert_int_equal(sql_wait(1, 3000, "SELECT count(*) FROM ai.usage"
                              " WHERE status = 'cancelled'"), 1);
    assert_int_equal(sql_long("SELECT count(*) FROM ai.usage"), 1);
}

static void test_disconnect_slow_stream(void **state)
{
    plxt_stream_t *st;
    sse_reply_t s;
    double t;

    fresh();
    st = ait_stream(&env, "/api/v1/ai/chat", env.user.access,
                    "{\"model\":\"m-openai\",\"stream\":true,"
                    "\"message\":\"[[fake tokens=200 delay_ms=100]] slowly\"}");
    sse_read(st, &s, 2);
    assert_int_equal(plxt_llm_active(env.llm), 1);
    t = plxt_now_ms();
    plxt_stream_close(st);
    check_cancelled(t);
    sse_reply_free(&s);
}

static void test_disconnect_hang(void **state)
{
    plxt_sse_event_t ev;
    plxt_stream_t *st;
    double t;

    fresh();
    st = ait_stream(&env, "/api/v1/ai/chat", env.user.access,
                    "{\"model\":\"m-gem\",\"stream\":true,"
                    "\"message\":\"[[fake hang=1]] wait\"}");
    assert_int_equal(plxt_sse_next(st, &ev, 3000), 1);
    assert_string_equal(ev.event, "start");
    plxt_sse_event_free(&ev);
    plxt_sleep_ms(300);
    assert_int_equal(plxt_llm_active(env.llm), 1);
    t = plxt_now_ms();
    plxt_stream_close(st);
    check_cancelled(t);
}

/* a client that leaves a conversation's stream: the part that came is kept */
static void test_disconnect_conversation(void **state)
{
    char conv[37], path[128];
    plxt_stream_t *st;
    sse_reply_t s;
    json_t *j, *reply;
    double t;

    fresh();
    make_conversation(&env.user, "m-anth", NULL, conv);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conv);
    st = ait_stream(&env, path, env.user.access,
                    "{\"stream\":true,\"content\":\"[[fake tokens=200 delay_ms=50]] go\"}");
    sse_read(st, &s, 3);
    t = plxt_now_ms();
    plxt_stream_close(st);
    check_cancelled(t);
    j = ait_expect(&env, "GET", path, env.user.access, NULL, 200);
    reply = json_array_get(json_object_get(j, "items"), 1);
    assert_non_null(reply);
    assert_string_equal(str(reply, "id"), str(s.start, "id"));
    assert_string_equal(str(reply, "status"), "incomplete");
    assert_true(strncmp(str(reply, "content"), s.text, strlen(s.text)) == 0);
    assert_true(strlen(str(reply, "content")) < strlen("w1 w2 w3") + 200 * 5);
    json_decref(j);
    sse_reply_free(&s);
}

/* while the provider is silent the stream carries comments, so a client
 * that left is noticed (and proxies keep the connection) */
static void test_stream_probes(void **state)
{
    plxt_stream_t *st;
    sse_reply_t s;

    fresh();
    st = ait_stream(&env, "/api/v1/ai/chat", env.user.access,
                    "{\"model\":\"m-openai\",\"stream\":true,"
                    "\"message\":\"[[fake first_ms=1500 tokens=2]] think\"}");
    sse_read(st, &s, 0);
    plxt_stream_close(st);
    assert_string_equal(s.text, "w1 w2");
    assert_non_null(s.done);
    /* one at most every 250 ms: about six in 1.5 s */
    assert_true(s.comments >= 3);
    assert_true(s.comments <= 8);
    sse_reply_free(&s);
}

/* ---- conversations ------------------------------------------------------------------ */

static void test_conversations_crud(void **state)
{
    char a[37], b[37], c[37], path[256];
    plxt_user_t me, other;
    json_t *j, *items;
    const char *cursor;

    fresh();
    plxt_user_new(env.srv, env.db, &me);     /* no conversation yet */
    j = ait_expect(&env, "POST", "/api/v1/conversations", me.access,
                   "{\"title\":\"Trip\",\"model\":\"m-openai\",\"system\":\"Be brief.\"}", 201);
    snprintf(a, sizeof a, "%s", str(j, "id"));
    assert_string_equal(str(j, "title"), "Trip");
    assert_string_equal(str(j, "model"), "m-openai");
    assert_string_equal(str(j, "system"), "Be brief.");
    assert_true(json_is_null(json_object_get(j, "team_id")));
    assert_non_null(json_string_value(json_object_get(j, "created_at")));
    json_decref(j);
    make_conversation(&me, "m-anth", NULL, b);
    make_conversation(&me, "m-gem", NULL, c);

    /* recent first, two to a page */
    j = ait_expect(&env, "GET", "/api/v1/conversations?limit=2", me.access, NULL, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 2);
    assert_string_equal(str(json_array_get(items, 0), "id"), c);
    assert_string_equal(str(json_array_get(items, 1), "id"), b);
    cursor = str(j, "next_cursor");
    snprintf(path, sizeof path, "/api/v1/conversations?limit=2&cursor=%s", cursor);
    json_decref(j);
    j = ait_expect(&env, "GET", path, me.access, NULL, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(str(json_array_get(items, 0), "id"), a);
    assert_true(json_is_null(json_object_get(j, "next_cursor")));
    json_decref(j);
    ait_expect_problem(&env, "GET", "/api/v1/conversations?cursor=nope", me.access,
                       NULL, 400, "invalid_cursor");
    /* crafted cursors never reach SQL: base64url of "garbage"; the old
     * microsecond key, far out of range; a valid tag with a month 13 and a
     * year 99999; another list's tag; a bad id; the id alone */
    static const char *const crafted[] = {
        "Z2FyYmFnZQ",
        "Y29udmVyc2F0aW9uc3wtOTk5OTk5OTk5OTk5OTk5OTk5fDAwMDAwMDAwLTAwMDAtMDAwMC0w"
        "MDAwLTAwMDAwMDAwMDAwMA",
        "Y29udmVyc2F0aW9uc3wyMDI2LTEzLTQ1VDk5OjAwOjAwLjAwMDAwMFp8MDAwMDAwMDAtMDAw"
        "MC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw",
        "Y29udmVyc2F0aW9uc3w5OTk5OS0wMS0wMVQwMDowMDowMC4wMDAwMDBafDAwMDAwMDAwLTAw"
        "MDAtMDAwMC0wMDAwLTAwMDAwMDAwMDAwMA",
        "bWVzc2FnZXN8MjAyNi0wMS0wMVQwMDowMDowMC4wMDAwMDBafDAwMDAwMDAwLTAwMDAtMDAw"
        "MC0wMDAwLTAwMDAwMDAwMDAwMA",
        "Y29udmVyc2F0aW9uc3wyMDI2LTAxLTAxVDAwOjAwOjAwLjAwMDAwMFp8bm90LWEtdXVpZA",
        "Y29udmVyc2F0aW9uc3x8MDAwMDAwMDAtMDAwMC0wMDAwLTAwMDAtMDAwMDAwMDAwMDAw",
    };
    for (size_t i = 0; i < sizeof crafted / sizeof crafted[0]; i++) {
        snprintf(path, sizeof path, "/api/v1/conversations?cursor=%s", crafted[i]);
        ait_expect_problem(&env, "GET", path, me.access, NULL, 400, "invalid_cursor");
    }
    ait_expect_problem(&env, "GET", "/api/v1/conversations?limit=0", me.access,
                       NULL, 400, "invalid_limit");

    /* rename, read */
    snprintf(path, sizeof path, "/api/v1/conversations/%s", a);
    j = ait_expect(&env, "PATCH", path, me.access, "{\"title\":\"Trip to Oslo\"}", 200);
    assert_string_equal(str(j, "title"), "Trip to Oslo");
    json_decref(j);
    j = ait_expect(&env, "GET", path, me.access, NULL, 200);
    assert_string_equal(str(j, "title"), "Trip to Oslo");
    json_decref(j);
    ait_expect_problem(&env, "PATCH", path, me.access, "{\"color\":\"red\"}", 400,
                       "unknown_field");

    /* another user sees nothing of it */
    plxt_user_new(env.srv, env.db, &other);
    ait_expect_problem(&env, "GET", path, other.access, NULL, 404, "not_found");
    ait_expect_problem(&env, "PATCH", path, other.access, "{\"title\":\"x\"}", 404,
                       "not_found");
    ait_expect_problem(&env, "DELETE", path, other.access, NULL, 404, "not_found");
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", a);
    ait_expect_problem(&env, "GET", path, other.access, NULL, 404, "not_found");
    ait_expect_problem(&env, "POST", path, other.access, "{\"content\":\"hi\"}", 404,
                       "not_found");
    snprintf(path, sizeof path, "{\"conversation_id\":\"%s\",\"message\":\"hi\"}", a);
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", other.access, path, 404,
                       "not_found");
    j = ait_expect(&env, "GET", "/api/v1/conversations", other.access, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 0);
    json_decref(j);
    assert_int_equal(plxt_llm_count(env.llm), 0);

    /* delete */
    snprintf(path, sizeof path, "/api/v1/conversations/%s", b);
    json_decref(ait_expect(&env, "DELETE", path, me.access, NULL, 204));
    ait_expect_problem(&env, "GET", path, me.access, NULL, 404, "not_found");
    ait_expect_problem(&env, "DELETE", path, me.access, NULL, 404, "not_found");
    ait_expect_problem(&env, "GET", "/api/v1/conversations/not-a-uuid", me.access,
                       NULL, 404, "not_found");
    ait_expect_problem(&env, "POST", "/api/v1/conversations", me.access,
                       "{\"model\":\"no-such-model\"}", 404, "model_not_found");
}

/* a team's conversation: members write to it and it is charged to the
 * team; an outsider cannot start one */
static void test_conversation_team(void **state)
{
    char team[37], body[256], conv[37], path[256];
    plxt_user_t owner, outsider;
    json_t *j;

    fresh();
    plxt_user_new(env.srv, env.db, &owner);
    plxt_user_new(env.srv, env.db, &outsider);
    ait_team_new(&env, &owner, team);
    snprintf(body, sizeof body, "{\"model\":\"m-openai\",\"team_id\":\"%s\"}", team);
    ait_expect_problem(&env, "POST", "/api/v1/conversations", outsider.access, body, 404,
                       "not_found");
    j = ait_expect(&env, "POST", "/api/v1/conversations", owner.access, body, 201);
    assert_string_equal(str(j, "team_id"), team);
    snprintf(conv, sizeof conv, "%s", str(j, "id"));
    json_decref(j);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conv);
    json_decref(ait_expect(&env, "POST", path, owner.access,
                           "{\"content\":\"[[fake tokens=1]] hi\"}", 200));
    assert_int_equal(sql_wait(1, 2000, "SELECT count(*) FROM ai.usage"), 1);
    assert_int_equal(sql_long("SELECT count(*) FROM ai.usage WHERE team_id = '%s'"
                              " AND user_id = '%s'", team, owner.id), 1);

    /* a member writes to their own; once a viewer, or gone, no more */
    plxt_resp_t resp;
    char members[160], member[240];
    snprintf(members, sizeof members, "/api/v1/teams/%s/members", team);
    snprintf(member, sizeof member, "%s/%s", members, outsider.id);
    snprintf(path, sizeof path, "{\"email\":\"%s\",\"role\":\"member\"}", outsider.email);
    ait_call(&env, "POST", members, owner.access, path, &resp);
    assert_true(resp.status == 200 || resp.status == 201);
    plxt_resp_free(&resp);
    j = ait_expect(&env, "POST", "/api/v1/conversations", outsider.access, body, 201);
    snprintf(conv, sizeof conv, "%s", str(j, "id"));
    json_decref(j);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conv);
    json_decref(ait_expect(&env, "POST", path, outsider.access,
                           "{\"content\":\"[[fake tokens=1]] hi\"}", 200));
    ait_call(&env, "PATCH", member, owner.access, "{\"role\":\"viewer\"}", &resp);
    assert_int_equal(resp.status, 200);
    plxt_resp_free(&resp);
    ait_expect_problem(&env, "POST", path, outsider.access, "{\"content\":\"hi\"}", 403,
                       "forbidden");
    ait_expect_problem(&env, "POST", "/api/v1/conversations", outsider.access, body, 403,
                       "forbidden");
    ait_call(&env, "DELETE", member, owner.access, NULL, &resp);
    assert_true(resp.status == 200 || resp.status == 204);
    plxt_resp_free(&resp);
    ait_expect_problem(&env, "POST", path, outsider.access, "{\"content\":\"hi\"}", 403,
                       "forbidden");
    /* still theirs to read */
    json_decref(ait_expect(&env, "GET", path, outsider.access, NULL, 200));
    assert_int_equal(plxt_llm_count(env.llm), 2);
}

static const char *msg_field(json_t *messages, size_t i, const char *key)
{
    return str(json_array_get(messages, i), key);
}

static void test_conversation_history(void **state)
{
    char conv[37], path[128], body[256];
    plxt_llm_seen_t seen;
    sse_reply_t s;
    json_t *j, *msgs;

    fresh();
    make_conversation(&env.user, "m-openai", "You are terse.", conv);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conv);
    j = ait_expect(&env, "POST", path, env.user.access,
                   "{\"content\":\"[[fake text=Oslo]] capital of Norway?\"}", 200);
    assert_string_equal(str(json_object_get(j, "message"), "content"), "Oslo");
    assert_string_equal(str(j, "conversation_id"), conv);
    assert_string_equal(str(j, "message_id"), str(j, "id"));
    json_decref(j);

    /* the second turn, streamed, through /api/v1/ai/chat */
    snprintf(body, sizeof body, "{\"conversation_id\":\"%s\",\"stream\":true,"
             "\"message\":\"[[fake text=Stockholm]] and Sweden?\"}", conv);
    plxt_stream_t *st = ait_stream(&env, "/api/v1/ai/chat", env.user.access, body);
    sse_read(st, &s, 0);
    plxt_stream_close(st);
    assert_string_equal(s.text, "Stockholm");
    assert_non_null(s.done);
    assert_string_equal(str(s.done, "message_id"), str(s.start, "id"));

    /* what the model received: the system prompt and the whole history */
    msgs = json_object_get(seen_body(1, &seen), "messages");
    assert_int_equal(json_array_size(msgs), 4);
    assert_string_equal(msg_field(msgs, 0, "role"), "system");
    assert_string_equal(msg_field(msgs, 0, "content"), "You are terse.");
    assert_string_equal(msg_field(msgs, 1, "content"), "[[fake text=Oslo]] capital of Norway?");
    assert_string_equal(msg_field(msgs, 2, "role"), "assistant");
    assert_string_equal(msg_field(msgs, 2, "content"), "Oslo");
    assert_string_equal(msg_field(msgs, 3, "role"), "user");
    plxt_llm_seen_free(&seen);

    /* the history as stored */
    j = ait_expect(&env, "GET", path, env.user.access, NULL, 200);
    msgs = json_object_get(j, "items");
    assert_int_equal(json_array_size(msgs), 4);
    assert_string_equal(msg_field(msgs, 3, "content"), "Stockholm");
    assert_string_equal(msg_field(msgs, 3, "id"), str(s.done, "message_id"));
    assert_string_equal(msg_field(msgs, 3, "status"), "complete");
    assert_string_equal(msg_field(msgs, 3, "model"), "m-openai");
    assert_true(num(json_array_get(msgs, 3), "completion_tokens") == 1);
    json_decref(j);
    j = ait_expect(&env, "GET", "/api/v1/conversations?limit=1", env.user.access, NULL, 200);
    assert_string_equal(str(json_array_get(json_object_get(j, "items"), 0), "id"), conv);
    json_decref(j);
    sse_reply_free(&s);
}

/* a model of 120 tokens: the oldest turns are dropped, the system prompt
 * and the new message stay */
static void test_history_trimmed(void **state)
{
    char conv[37], path[128], body[512], filler[201];
    plxt_llm_seen_t seen;
    json_t *msgs;
    int n;

    fresh();
    make_conversation(&env.user, "m-small", "Short.", conv);
    snprintf(path, sizeof path, "/api/v1/conversations/%s/messages", conv);
    memset(filler, 'x', 200);
    filler[200] = '\0';
    for (int i = 0; i < 4; i++) {
        snprintf(body, sizeof body, "{\"content\":\"[[fake text=ok]] turn %d %s\","
                 "\"max_tokens\":10}", i, filler);
        json_decref(ait_expect(&env, "POST", path, env.user.access, body, 200));
    }
    n = plxt_llm_count(env.llm);
    assert_int_equal(n, 4);
    msgs = json_object_get(seen_body(3, &seen), "messages");
    /* each turn is ~55 tokens: only the last one fits beside the system */
    assert_string_equal(msg_field(msgs, 0, "role"), "system");
    assert_string_equal(msg_field(msgs, 1, "role"), "user");
    assert_non_null(strstr(msg_field(msgs, json_array_size(msgs) - 1, "content"), "turn 3"));
    assert_true(json_array_size(msgs) < 8);
    assert_null(strstr(msg_field(msgs, 1, "content"), "turn 0"));
    plxt_llm_seen_free(&seen);
}

static void test_chat_refusals(void **state)
{
    char team[37], body[256];

    fresh();
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-openai\"}", 400, "invalid_body");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-openai\",\"message\":\"a\",\"messages\":[]}", 400,
                       "invalid_body");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-openai\",\"message\":\"a\",\"colour\":1}", 400,
                       "unknown_field");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-openai\",\"message\":\"a\",\"max_tokens\":0}", 400,
                       "invalid_field");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-openai\",\"message\":\"a\",\"temperature\":3}", 400,
                       "invalid_field");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-openai\",\"messages\":[{\"role\":\"robot\","
                       "\"content\":\"a\"}]}", 400, "invalid_field");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"nope\",\"message\":\"a\"}", 404, "model_not_found");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"message\":\"a\"}", 400, "model_required");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-emb\",\"message\":\"a\"}", 400, "wrong_model_kind");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-small\",\"message\":\"" /* > 120 tokens */
                       "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "0123456789012345678901234567890123456789012345678901234567890123456789"
                       "\"}", 400, "context_length_exceeded");
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", NULL,
                       "{\"model\":\"m-openai\",\"message\":\"a\"}", 401, "unauthenticated");
    /* a team not the caller's is not found; the owner's is charged */
    ait_team_new(&env, &env.admin, team);
    snprintf(body, sizeof body, "{\"model\":\"m-openai\",\"message\":\"a\",\"team_id\":\"%s\"}",
             team);
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access, body, 404,
                       "not_found");
    assert_int_equal(plxt_llm_count(env.llm), 0);
    json_decref(chat(env.admin.access, body, 200));
    assert_int_equal(sql_wait(1, 2000, "SELECT count(*) FROM ai.usage"), 1);
    assert_int_equal(sql_long("SELECT count(*) FROM ai.usage WHERE team_id = '%s'", team), 1);
}

/* a caller's messages, several turns, max_tokens bounded by the settings */
static void test_messages_and_bounds(void **state)
{
    plxt_llm_seen_t seen;
    json_t *body;

    fresh();
    json_decref(chat(env.user.access, "{\"model\":\"m-openai\",\"max_tokens\":1000000,"
                     "\"temperature\":0.5,\"top_p\":0.9,\"stop\":[\"END\"],"
                     "\"messages\":[{\"role\":\"system\",\"content\":\"sys\"},"
                     "{\"role\":\"user\",\"content\":\"q1\"},"
                     "{\"role\":\"assistant\",\"content\":\"a1\"},"
                     "{\"role\":\"user\",\"content\":\"q2\"}]}", 200));
    body = seen_body(0, &seen);
    assert_int_equal(json_array_size(json_object_get(body, "messages")), 4);
    /* max_output_tokens (16384), then the window (8192) minus the prompt */
    assert_true(num(body, "max_tokens") <= 8192 - 16);
    assert_true(num(body, "max_tokens") > 8000);
    assert_true(json_number_value(json_object_get(body, "temperature")) == 0.5);
    assert_string_equal(json_string_value(json_array_get(json_object_get(body, "stop"), 0)),
                        "END");
    plxt_llm_seen_free(&seen);
}

/* ---- hooks and services (ai_probe) ----------------------------------------------- */

static void test_hooks(void **state)
{
    plxt_llm_seen_t seen;
    json_t *msgs, *j, *calls, *last;

    fresh();
    json_decref(chat(env.user.access, "{\"model\":\"m-openai\","
                     "\"message\":\"[[fake tokens=2]] [[probe context]] hi\"}", 200));
    msgs = json_object_get(seen_body(0, &seen), "messages");
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(msg_field(msgs, 0, "role"), "system");
    assert_string_equal(msg_field(msgs, 0, "content"), "probe context for chat");
    plxt_llm_seen_free(&seen);

    j = ait_expect(&env, "GET", "/api/v1/ai-probe/after", NULL, NULL, 200);
    calls = json_object_get(j, "calls");
    last = json_array_get(calls, json_array_size(calls) - 1);
    assert_string_equal(str(last, "kind"), "chat");
    assert_string_equal(str(last, "model"), "m-openai");
    assert_string_equal(str(last, "user_id"), env.user.id);
    assert_string_equal(str(last, "reply"), "w1 w2");
    assert_true(json_is_true(json_object_get(last, "complete")));
    assert_int_equal(num(last, "completion_tokens"), 2);
    json_decref(j);

    /* a hook that refuses: no upstream call, no usage */
    ait_expect_problem(&env, "POST", "/api/v1/ai/chat", env.user.access,
                       "{\"model\":\"m-openai\",\"message\":\"[[probe refuse]]\"}", 403,
                       "refused");
    assert_int_equal(plxt_llm_count(env.llm), 1);
    assert_int_equal(sql_long("SELECT count(*) FROM ai.usage"), 1);
}

static void test_services(void **state)
{
    json_t *j, *v;
    double norm = 0;

    fresh();
    j = ait_expect(&env, "POST", "/api/v1/ai-probe/chat", env.user.access,
                   "{\"model\":\"m-anth\",\"message\":\"[[fake tokens=4]] [[probe context]] x\"}",
                   200);
    assert_string_equal(str(j, "text"), "w1 w2 w3 w4");
    assert_int_equal(num(j, "completion_tokens"), 4);
    assert_string_equal(str(j, "finish_reason"), "stop");
    json_decref(j);
    assert_int_equal(sql_wait(1, 2000, "SELECT count(*) FROM ai.usage WHERE kind = 'service'"
                              " AND status = 'ok'"), 1);
    j = ait_expect(&env, "GET", "/api/v1/ai-probe/after", NULL, NULL, 200);
    json_t *calls = json_object_get(j, "calls");
    assert_string_equal(str(json_array_get(calls, json_array_size(calls) - 1), "kind"),
                        "service");
    json_decref(j);
    ait_expect_problem(&env, "POST", "/api/v1/ai-probe/chat", env.user.access,
                       "{\"model\":\"nope\",\"message\":\"x\"}", 404, "service_not_found");

    j = ait_expect(&env, "POST", "/api/v1/ai-probe/embed", env.user.access,
                   "{\"model\":\"m-emb\",\"texts\":[\"one two\",\"three\"]}", 200);
    assert_int_equal(num(j, "dim"), 8);
    assert_int_equal(json_array_size(json_object_get(j, "vectors")), 2);
    v = json_array_get(json_object_get(j, "vectors"), 0);
    for (size_t i = 0; i < json_array_size(v); i++)
        norm += json_number_value(json_array_get(v, i)) * json_number_value(json_array_get(v, i));
    assert_true(norm > 0.99 && norm < 1.01);
    json_decref(j);
    assert_int_equal(sql_wait(1, 2000, "SELECT count(*) FROM ai.usage WHERE model = 'm-emb'"
                              " AND status = 'ok' AND prompt_tokens = 3"), 1);
    ait_expect_problem(&env, "POST", "/api/v1/ai-probe/embed", env.user.access,
                       "{\"model\":\"m-openai\",\"texts\":[\"a\"]}", 400, "service_invalid_input");
}

/* ---- metrics ------------------------------------------------------------------------- */

static void test_metrics(void **state)
{
    plxt_resp_t resp;
    char path[256];
    FILE *f;

    plxt_llm_script_t fail500 = { .status = 500 };

    if (!ait_have_metrics()) {
        fprintf(stderr, "# the metrics module is not in this tree: skipped\n");
        skip();
    }
    fresh();
    json_decref(chat(env.user.access, "{\"model\":\"m-gem\",\"message\":\"[[fake tokens=2]] m\"}",
                     200));
    plxt_llm_push(env.llm, &fail500);     /* then retried: one error */
    json_decref(chat(env.user.access, "{\"model\":\"m-openai\",\"message\":\"m\"}", 200));
    assert_int_equal(plxt_get(env.srv, "/metrics", &resp), 0);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.body, "plexus_ai_requests_total{provider=\"fake_gem\","
                                      "model=\"m-gem\",status=\"ok\"}"));
    assert_non_null(strstr(resp.body, "plexus_ai_tokens_total{provider=\"fake_gem\","
                                      "model=\"m-gem\",direction=\"completion\"}"));
    assert_non_null(strstr(resp.body, "# TYPE plexus_ai_time_to_first_token_seconds histogram"));
    assert_non_null(strstr(resp.body, "plexus_ai_cost_total{"));
    assert_non_null(strstr(resp.body, "plexus_ai_errors_total{provider=\"fake\","
                                      "model=\"m-openai\",kind=\"server\"}"));
    /* promtool's lint, when it is installed */
    snprintf(path, sizeof path, "/tmp/ai-metrics-%d.txt", (int)getpid());
    if ((f = fopen(path, "w"))) {
        fwrite(resp.body, 1, resp.body_len, f);
        fclose(f);
        if (system("command -v promtool >/dev/null 2>&1") == 0) {
            char cmd[512];
            snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
            assert_int_equal(system(cmd), 0);
        } else {
            fprintf(stderr, "# promtool not found: the lint of /metrics is skipped\n");
        }
        unlink(path);
    }
    plxt_resp_free(&resp);
}

/* ---- no provider ------------------------------------------------------------------------ */

static void test_not_configured(void **state)
{
    ait_env_t bare;
    plxt_resp_t resp;
    json_t *j;

    assert_int_equal(ait_start_bare(&bare), 0);
    ait_call(&bare, "POST", "/api/v1/ai/chat", bare.user.access,
             "{\"model\":\"any\",\"message\":\"hi\"}", &resp);
    assert_int_equal(resp.status, 503);
    assert_true(plxt_resp_type_is(&resp, "application/problem+json"));
    j = plxt_resp_json(&resp);
    assert_string_equal(str(j, "code"), "ai_not_configured");
    assert_non_null(strstr(str(j, "detail"), "plugins.d/ai.conf"));
    assert_non_null(strstr(str(j, "detail"), "providers ="));
    json_decref(j);
    plxt_resp_free(&resp);
    ait_expect_problem(&bare, "POST", "/api/v1/ai/chat", bare.user.access,
                       "{\"model\":\"any\",\"stream\":true,\"message\":\"hi\"}", 503,
                       "ai_not_configured");
    ait_expect_problem(&bare, "POST", "/api/v1/conversations", bare.user.access,
                       "{\"model\":\"any\"}", 503, "ai_not_configured");
    j = ait_expect(&bare, "GET", "/api/v1/conversations", bare.user.access, NULL, 200);
    json_decref(j);
    assert_int_equal(plxt_llm_count(bare.llm), 0);
    assert_int_equal(ait_stop(&bare), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_providers_whole),
        cmocka_unit_test(test_providers_streamed),
        cmocka_unit_test(test_sse_framing),
        cmocka_unit_test(test_usage_estimated),
        cmocka_unit_test(test_fallback_after_500),
        cmocka_unit_test(test_fallback_after_429),
        cmocka_unit_test(test_all_fail),
        cmocka_unit_test(test_midstream_failure),
        cmocka_unit_test(test_disconnect_slow_stream),
        cmocka_unit_test(test_disconnect_hang),
        cmocka_unit_test(test_disconnect_conversation),
        cmocka_unit_test(test_stream_probes),
        cmocka_unit_test(test_conversations_crud),
        cmocka_unit_test(test_conversation_history),
        cmocka_unit_test(test_conversation_team),
        cmocka_unit_test(test_history_trimmed),
        cmocka_unit_test(test_chat_refusals),
        cmocka_unit_test(test_messages_and_bounds),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_services),
        cmocka_unit_test(test_metrics),
    };
    const struct CMUnitTest bare[] = {
        cmocka_unit_test(test_not_configured),
    };
    int failed;

    plxt_require_postgres("test_ai_chat");
    failed = cmocka_run_group_tests_name("ai chat", tests, group_setup, group_teardown);
    failed += cmocka_run_group_tests_name("ai chat, no provider", bare, NULL, NULL);
    return failed;
}
