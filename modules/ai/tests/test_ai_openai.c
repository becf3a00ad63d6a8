/*
 * test_ai_openai.c - the OpenAI-compatible surface under /v1/ as an OpenAI
 * SDK sees it: the chat.completion object; the exact bytes of a streamed
 * completion (data-only events, one id, the usage chunk only when asked,
 * [DONE]); an error in the middle of a stream; a client that leaves
 * (upstream stopped within a second); API keys with and without the "ai"
 * scope; every error in OpenAI's shape, the core's 401 and 404 included;
 * bad bodies answered 400 naming the param; embeddings as floats and as
 * base64 (decoded and compared); the model list; a spent quota; the usage
 * rows these calls leave; a server without providers (503)
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
#include <time.h>
#include <cmocka.h>

#include "ai_client.h"

static ait_env_t env;

#define CHAT "/v1/chat/completions"
#define HI   "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]"

/* a path or body from a format (harness.h) */
#define P plxt_fmt

static int group_setup(void **state)
{
    json_t *j;

    (void)state;
    if (ait_start(&env, NULL) != 0)
        return -1;
    ait_model(&env, "gpt-test", "fake", "up-model", 1.0, 2.0, NULL);
    ait_model(&env, "org/slashy", "fake", "up-slashy", 0, 0, NULL);
    j = ait_expect(&env, "POST", "/api/v1/admin/ai/models", env.admin.access,
                   "{\"name\":\"emb-test\",\"kind\":\"embedding\",\"provider\":\"fake\","
                   "\"upstream\":\"up-emb\",\"price_input\":0.5}", 201);
    json_decref(j);
    j = ait_expect(&env, "POST", "/api/v1/admin/ai/models", env.admin.access,
                   "{\"name\":\"gpt-off\",\"provider\":\"fake\",\"upstream\":\"up-off\","
                   "\"enabled\":false}", 201);
    json_decref(j);
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

/* {"error":{"message","type","param","code"}} and nothing else, as JSON */
static void expect_oai_error(const plxt_resp_t *resp, long status, const char *type,
                             const char *code, const char *param)
{
    json_t *j, *e, *v;

    if (resp->status != status)
        fail_msg("expected %ld, got %ld: %s", status, resp->status,
                 resp->body ? resp->body : "");
    if (!plxt_resp_type_is(resp, "application/json"))
        fail_msg("expected application/json, got %s: %s",
                 plxt_resp_header(resp, "Content-Type"), resp->body);
    j = plxt_resp_json(resp);
    assert_non_null(j);
    e = json_object_get(j, "error");
    if (!json_is_object(e) || json_object_size(j) != 1 || json_object_size(e) != 4)
        fail_msg("not OpenAI's error shape: %s", resp->body);
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_true(json_string_length(json_object_get(e, "message")) > 0);
    assert_string_equal(json_string_value(json_object_get(e, "type")), type);
    v = json_object_get(e, "code");
    if (code)
        assert_string_equal(json_string_value(v), code);
    else
        assert_true(json_is_string(v) || json_is_null(v));
    v = json_object_get(e, "param");
    if (param)
        assert_string_equal(json_string_value(v), param);
    else
        assert_true(json_is_null(v) || json_is_string(v));
    json_decref(j);
}

static void call_expect_error(const char *method, const char *path, const char *token,
                              const char *body, long status, const char *type,
                              const char *code, const char *param)
{
    plxt_resp_t resp;

    ait_call(&env, method, path, token, body, &resp);
    expect_oai_error(&resp, status, type, code, param);
    plxt_resp_free(&resp);
}

static const char *str(json_t *j, const char *key)
{
    const char *s = json_string_value(json_object_get(j, key));

    if (!s)
        fail_msg("expected a string \"%s\"", key);
    return s;
}

/* the request the fake saw last */
static json_t *fake_last_body(void)
{
    plxt_llm_seen_t seen;
    int n = plxt_llm_count(env.llm);
    json_t *b;

    assert_true(n > 0);
    assert_true(plxt_llm_seen(env.llm, n - 1, &seen));
    b = json_incref(seen.body);
    plxt_llm_seen_free(&seen);
    assert_non_null(b);
    return b;
}

static long usage_rows(const char *user_id, const char *kind, const char *status)
{
    char *v = ait_sql(&env, P("SELECT count(*) FROM ai.usage WHERE user_id = '%s' "
                              "AND kind = '%s' AND status = '%s'", user_id, kind, status));
    long n = v ? strtol(v, NULL, 10) : -1;

    free(v);
    return n;
}

/* ---- a streamed completion, read whole ------------------------------------------ */

typedef struct chunks {
    json_t *list;         /* the JSON payloads, in order */
    bool    done;         /* data: [DONE] came last */
    char   *raw;          /* the body as sent */
    size_t  raw_len;
} chunks_t;

/* Read the stream to its end and check its framing byte by byte: blocks
 * separated by a blank line, each a comment or exactly one "data: " line,
 * nothing after [DONE], the body ending with "\n\n". */
static void stream_read(plxt_stream_t *st, chunks_t *out)
{
    plxt_sse_event_t ev;
    const char *raw, *p, *end;
    size_t len;
    int rc;

    memset(out, 0, sizeof *out);
    out->list = json_array();
    while ((rc = plxt_sse_next(st, &ev, 15000)) == 1)
        plxt_sse_event_free(&ev);
    assert_int_equal(rc, 0);
    raw = plxt_stream_raw(st, &len);
    out->raw = malloc(len + 1);
    memcpy(out->raw, raw, len);
    out->raw[len] = '\0';
    out->raw_len = len;
    if (len < 2 || memcmp(raw + len - 2, "\n\n", 2) != 0)
        fail_msg("the stream does not end with a blank line: %s", out->raw);
    for (p = out->raw, end = out->raw + len; p < end;) {
        const char *sep = strstr(p, "\n\n");
        size_t n = (size_t)(sep - p);
        json_t *j;

        assert_non_null(sep);
        if (p[0] == ':') {
            assert_null(memchr(p, '\n', n));   /* one comment line */
        } else {
            if (out->done)
                fail_msg("an event after [DONE]: %.*s", (int)n, p);
            if (n < 6 || memcmp(p, "data: ", 6) != 0 || memchr(p, '\n', n))
                fail_msg("not a single data line: \"%.*s\"", (int)n, p);
            if (n == 12 && memcmp(p + 6, "[DONE]", 6) == 0) {
                out->done = true;
            } else {
                j = json_loadb(p + 6, n - 6, 0, NULL);
                if (!j)
                    fail_msg("not JSON: %.*s", (int)n, p);
                json_array_append_new(out->list, j);
            }
        }
        p = sep + 2;
    }
}

static void chunks_free(chunks_t *c)
{
    json_decref(c->list);
    free(c->raw);
}

static json_t *chunk_choice(json_t *chunk)
{
    json_t *choices = json_object_get(chunk, "choices");

    assert_true(json_is_array(choices));
    assert_int_equal(json_array_size(choices), 1);
    return json_array_get(choices, 0);
}

/* The chunks of a complete reply: one id and created, the role chunk
 * first, the text in between, the finish chunk, and the usage chunk after
 * it exactly when asked. Returns the text. */
static char *chunks_check(const chunks_t *c, bool include_usage, const char *finish)
{
    size_t n = json_array_size(c->list), nchoice = include_usage ? n - 1 : n, i;
    const char *id = str(json_array_get(c->list, 0), "id");
    json_int_t created = json_integer_value(json_object_get(json_array_get(c->list, 0),
                                                            "created"));
    char *text = calloc(1, 1);
    size_t tlen = 0;
    json_t *ch, *first, *role = json_pack("{s:s, s:s}", "role", "assistant", "content", "");

    assert_true(c->done);
    assert_true(n >= (include_usage ? 3u : 2u));
    assert_memory_equal(id, "chatcmpl-", 9);
    assert_true(created > (json_int_t)time(NULL) - 120);
    json_array_foreach(c->list, i, ch) {
        json_t *usage = json_object_get(ch, "usage");

        assert_string_equal(str(ch, "id"), id);
        assert_string_equal(str(ch, "object"), "chat.completion.chunk");
        assert_string_equal(str(ch, "model"), "gpt-test");
        assert_int_equal(json_integer_value(json_object_get(ch, "created")), created);
        if (!include_usage)
            assert_null(usage);
        else if (i + 1 < n)
            assert_true(json_is_null(usage));
    }
    first = chunk_choice(json_array_get(c->list, 0));
    assert_int_equal(json_integer_value(json_object_get(first, "index")), 0);
    assert_true(json_equal(json_object_get(first, "delta"), role));
    json_decref(role);
    for (i = 0; i < nchoice; i++) {
        json_t *choice = chunk_choice(json_array_get(c->list, i));
        json_t *delta = json_object_get(choice, "delta");
        const char *piece = json_string_value(json_object_get(delta, "content"));

        assert_true(json_is_null(json_object_get(choice, "logprobs")));
        if (i + 1 < nchoice) {
            assert_true(json_is_null(json_object_get(choice, "finish_reason")));
        } else {
            assert_string_equal(str(choice, "finish_reason"), finish);
            assert_int_equal(json_object_size(delta), 0);
        }
        if (piece) {
            text = realloc(text, tlen + strlen(piece) + 1);
            memcpy(text + tlen, piece, strlen(piece) + 1);
            tlen += strlen(piece);
        }
    }
    if (include_usage) {
        json_t *last = json_array_get(c->list, n - 1), *u = json_object_get(last, "usage");

        assert_true(json_is_array(json_object_get(last, "choices")));
        assert_int_equal(json_array_size(json_object_get(last, "choices")), 0);
        assert_true(json_is_object(u));
        assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")),
                         json_integer_value(json_object_get(u, "prompt_tokens"))
                         + json_integer_value(json_object_get(u, "completion_tokens")));
    }
    return text;
}

/* ---- chat completions ------------------------------------------------------------ */

static void test_completion_whole(void **state)
{
    json_t *j = ait_expect(&env, "POST", CHAT, env.user.access,
                           "{\"model\":\"gpt-test\"," HI "}", 200);
    json_t *choice, *msg, *usage, *j2;

    (void)state;
    assert_memory_equal(str(j, "id"), "chatcmpl-", 9);
    assert_true(strlen(str(j, "id")) > 20);
    assert_string_equal(str(j, "object"), "chat.completion");
    assert_string_equal(str(j, "model"), "gpt-test");
    assert_true(json_integer_value(json_object_get(j, "created")) > (json_int_t)time(NULL) - 120);
    assert_int_equal(json_array_size(json_object_get(j, "choices")), 1);
    choice = json_array_get(json_object_get(j, "choices"), 0);
    assert_int_equal(json_integer_value(json_object_get(choice, "index")), 0);
    assert_true(json_is_null(json_object_get(choice, "logprobs")));
    assert_string_equal(str(choice, "finish_reason"), "stop");
    msg = json_object_get(choice, "message");
    assert_string_equal(str(msg, "role"), "assistant");
    assert_string_equal(str(msg, "content"), "Hello from the fake provider.");
    assert_true(json_is_null(json_object_get(msg, "refusal")));
    assert_true(json_object_get(msg, "refusal") != NULL);
    assert_null(json_object_get(msg, "tool_calls"));
    usage = json_object_get(j, "usage");
    /* the fake: one word of prompt, five tokens of reply */
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 1);
    assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")), 6);
    /* every completion has an id of its own */
    j2 = ait_expect(&env, "POST", CHAT, env.user.access, "{\"model\":\"gpt-test\"," HI "}", 200);
    assert_string_not_equal(str(j, "id"), str(j2, "id"));
    json_decref(j);
    json_decref(j2);
}

/* what reaches the provider: its own model name, the output bound, the
 * generation fields and the tools */
static void test_completion_params_forwarded(void **state)
{
    json_t *j = ait_expect(&env, "POST", CHAT, env.user.access,
                           "{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"developer\","
                           "\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":"
                           "[{\"type\":\"text\",\"text\":\"Hi\"},{\"type\":\"text\","
                           "\"text\":\"there\"}]}],\"max_completion_tokens\":7,"
                           "\"temperature\":0.25,\"top_p\":0.5,\"stop\":[\"END\"],\"n\":1,"
                           "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                           "\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":\"auto\","
                           "\"user\":\"u-42\",\"frequency_penalty\":0}", 200);
    json_t *b = fake_last_body(), *msgs = json_object_get(b, "messages");
    json_t *mt = json_object_get(b, "max_tokens");

    (void)state;
    json_decref(j);
    assert_string_equal(str(b, "model"), "up-model");
    if (!mt)
        mt = json_object_get(b, "max_completion_tokens");
    assert_int_equal(json_integer_value(mt), 7);
    assert_true(fabs(json_number_value(json_object_get(b, "temperature")) - 0.25) < 1e-9);
    assert_true(fabs(json_number_value(json_object_get(b, "top_p")) - 0.5) < 1e-9);
    assert_string_equal(json_string_value(json_array_get(json_object_get(b, "stop"), 0)),
                        "END");
    assert_string_equal(str(json_object_get(json_array_get(json_object_get(b, "tools"), 0),
                                            "function"), "name"), "f");
    assert_int_equal(json_array_size(msgs), 2);
    assert_string_equal(str(json_array_get(msgs, 0), "role"), "system");
    assert_string_equal(str(json_array_get(msgs, 1), "content"), "Hi\nthere");
    json_decref(b);
}

static void test_completion_stream_framing(void **state)
{
    plxt_llm_script_t s = { .text = "One two three four", .delay_ms = 20 };
    plxt_stream_t *st;
    chunks_t c;
    char *text;

    (void)state;
    plxt_llm_push(env.llm, &s);
    st = ait_stream(&env, CHAT, env.user.access,
                    "{\"model\":\"gpt-test\"," HI ",\"stream\":true}");
    assert_non_null(st);
    assert_string_equal(plxt_stream_header(st, "Cache-Control"), "no-cache");
    stream_read(st, &c);
    plxt_stream_close(st);
    text = chunks_check(&c, false, "stop");
    assert_string_equal(text, "One two three four");
    /* role chunk, four pieces, the finish chunk */
    assert_int_equal(json_array_size(c.list), 6);
    free(text);
    chunks_free(&c);
}

static void test_completion_stream_usage_chunk(void **state)
{
    plxt_llm_script_t s = { .tokens = 12, .delay_ms = 5 };
    plxt_stream_t *st;
    json_t *u;
    chunks_t c;
    char *text;

    (void)state;
    plxt_llm_push(env.llm, &s);
    st = ait_stream(&env, CHAT, env.user.access,
                    "{\"model\":\"gpt-test\"," HI ",\"stream\":true,"
                    "\"stream_options\":{\"include_usage\":true}}");
    assert_non_null(st);
    stream_read(st, &c);
    plxt_stream_close(st);
    text = chunks_check(&c, true, "stop");
    assert_memory_equal(text, "w1 w2 w3", 8);
    u = json_object_get(json_array_get(c.list, json_array_size(c.list) - 1), "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 1);
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 12);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 13);
    free(text);
    chunks_free(&c);
    /* explicitly not asked: no usage anywhere */
    plxt_llm_push(env.llm, &s);
    st = ait_stream(&env, CHAT, env.user.access,
                    "{\"model\":\"gpt-test\"," HI ",\"stream\":true,"
                    "\"stream_options\":{\"include_usage\":false}}");
    stream_read(st, &c);
    plxt_stream_close(st);
    free(chunks_check(&c, false, "stop"));
    chunks_free(&c);
}

/* an upstream failure after the first token: the text so far, then one
 * data: {"error":...} event, and no [DONE] */
static void test_completion_stream_error_midway(void **state)
{
    plxt_llm_script_t s = { .tokens = 10, .delay_ms = 10, .fail_after = 3 };
    plxt_stream_t *st;
    json_t *last, *e;
    chunks_t c;
    size_t n;

    (void)state;
    plxt_llm_push(env.llm, &s);
    st = ait_stream(&env, CHAT, env.user.access,
                    "{\"model\":\"gpt-test\"," HI ",\"stream\":true}");
    stream_read(st, &c);
    plxt_stream_close(st);
    assert_false(c.done);
    n = json_array_size(c.list);
    assert_true(n >= 2);
    last = json_array_get(c.list, n - 1);
    e = json_object_get(last, "error");
    if (!json_is_object(e))
        fail_msg("expected an error event last: %s", c.raw);
    assert_int_equal(json_object_size(e), 4);
    assert_string_equal(str(e, "type"), "server_error");
    assert_true(json_string_length(json_object_get(e, "message")) > 0);
    assert_true(strstr(c.raw, "\"content\":\"w1\"") != NULL);
    chunks_free(&c);
}

/* a client that hangs up: the upstream call ends within a second, while
 * tokens flow and while the provider is still silent */
static void test_completion_stream_client_gone(void **state)
{
    plxt_llm_script_t flowing = { .tokens = 400, .delay_ms = 50 };
    plxt_llm_script_t silent = { .first_ms = 20000 };
    plxt_sse_event_t ev;
    plxt_stream_t *st;
    double t0;

    (void)state;
    plxt_llm_push(env.llm, &flowing);
    st = ait_stream(&env, CHAT, env.user.access,
                    "{\"model\":\"gpt-test\"," HI ",\"stream\":true}");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(plxt_sse_next(st, &ev, 5000), 1);
        plxt_sse_event_free(&ev);
    }
    assert_int_equal(plxt_llm_active(env.llm), 1);
    plxt_stream_close(st);
    t0 = plxt_now_ms();
    if (!plxt_llm_wait_active(env.llm, 0, 1000))
        fail_msg("the upstream call still runs %.0f ms after the client left",
                 plxt_now_ms() - t0);

    plxt_llm_push(env.llm, &silent);
    st = ait_stream(&env, CHAT, env.user.access,
                    "{\"model\":\"gpt-test\"," HI ",\"stream\":true}");
    assert_non_null(st);
    for (int i = 0; i < 100 && plxt_llm_active(env.llm) == 0; i++)
        plxt_sleep_ms(20);
    assert_int_equal(plxt_llm_active(env.llm), 1);
    plxt_stream_close(st);
    t0 = plxt_now_ms();
    if (!plxt_llm_wait_active(env.llm, 0, 1000))
        fail_msg("the silent upstream call still runs %.0f ms after the client left",
                 plxt_now_ms() - t0);
}

/* refused before the provider is called: an HTTP status, not a stream */
static void test_completion_stream_refused_early(void **state)
{
    (void)state;
    call_expect_error("POST", CHAT, env.user.access,
                      "{\"model\":\"nope\"," HI ",\"stream\":true}", 404,
                      "invalid_request_error", "model_not_found", NULL);
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

/* ---- who may call ----------------------------------------------------------------- */

static void test_api_key_scopes(void **state)
{
    char with[256], without[256];
    json_t *j;

    (void)state;
    ait_api_key(&env, &env.user, "[\"ai\"]", with, sizeof with);
    ait_api_key(&env, &env.user, "[\"projects:read\"]", without, sizeof without);
    j = ait_expect(&env, "POST", CHAT, with, "{\"model\":\"gpt-test\"," HI "}", 200);
    assert_string_equal(str(j, "object"), "chat.completion");
    json_decref(j);
    j = ait_expect(&env, "GET", "/v1/models", with, NULL, 200);
    json_decref(j);
    call_expect_error("POST", CHAT, without, "{\"model\":\"gpt-test\"," HI "}", 403,
                      "invalid_request_error", NULL, NULL);
    call_expect_error("POST", "/v1/embeddings", without,
                      "{\"model\":\"emb-test\",\"input\":\"x\"}", 403,
                      "invalid_request_error", NULL, NULL);
    assert_int_equal(plxt_llm_count(env.llm), 1);
}

/* the core's own errors under /v1/ take OpenAI's shape (ABI 1.3) */
static void test_core_errors_in_openai_shape(void **state)
{
    (void)state;
    call_expect_error("POST", CHAT, NULL, "{\"model\":\"gpt-test\"," HI "}", 401,
                      "invalid_request_error", "invalid_api_key", NULL);
    call_expect_error("POST", CHAT, "plx_not-a-real-key-0123456789",
                      "{\"model\":\"gpt-test\"," HI "}", 401,
                      "invalid_request_error", "invalid_api_key", NULL);
    call_expect_error("GET", "/v1/models", NULL, NULL, 401,
                      "invalid_request_error", "invalid_api_key", NULL);
    call_expect_error("POST", "/v1/no-such-thing", env.user.access, "{}", 404,
                      "invalid_request_error", NULL, NULL);
    call_expect_error("GET", CHAT, env.user.access, NULL, 405,
                      "invalid_request_error", NULL, NULL);
    call_expect_error("POST", CHAT, env.user.access, "{not json", 400,
                      "invalid_request_error", NULL, NULL);
}

/* ---- bad requests ------------------------------------------------------------------ */

static void test_bad_bodies(void **state)
{
    static const struct {
        const char *body, *param, *code;
    } cases[] = {
        { "{" HI "}", "model", "invalid_value" },
        { "{\"model\":7," HI "}", "model", "invalid_value" },
        { "{\"model\":\"gpt-test\"}", "messages", "invalid_value" },
        { "{\"model\":\"gpt-test\",\"messages\":[]}", "messages", "invalid_value" },
        { "{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
          "messages[0].role", "invalid_value" },
        { "{\"model\":\"gpt-test\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
          "\"text\",\"text\":\"see\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
          "\"https://x/y.png\"}}]}]}", "messages[0].content[1].type", "unsupported_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"n\":2}", "n", "unsupported_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"temperature\":2.5}", "temperature",
          "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"top_p\":\"high\"}", "top_p", "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"max_tokens\":0}", "max_tokens", "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"max_completion_tokens\":1.5}",
          "max_completion_tokens", "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "stop",
          "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"stream_options\":{\"include_usage\":true}}",
          "stream_options", "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"stream\":\"yes\"}", "stream", "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"response_format\":{\"type\":\"yaml\"}}",
          "response_format.type", "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"response_format\":{\"type\":\"json_schema\","
          "\"json_schema\":{\"name\":\"bad name\",\"schema\":{}}}}",
          "response_format.json_schema.name", "invalid_value" },
        { "{\"model\":\"gpt-test\"," HI ",\"tool_choice\":\"auto\"}", "tool_choice",
          "invalid_value" },
        { "[1,2]", "", "invalid_value" },
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        plxt_resp_t resp;

        ait_call(&env, "POST", CHAT, env.user.access, cases[i].body, &resp);
        if (resp.status != 400)
            fail_msg("%s: expected 400, got %ld", cases[i].body, resp.status);
        expect_oai_error(&resp, 400, "invalid_request_error", cases[i].code,
                         cases[i].param);
        plxt_resp_free(&resp);
    }
    /* none reached the provider */
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

static void test_unknown_model(void **state)
{
    (void)state;
    call_expect_error("POST", CHAT, env.user.access, "{\"model\":\"no-such-model\"," HI "}",
                      404, "invalid_request_error", "model_not_found", NULL);
    call_expect_error("POST", CHAT, env.user.access, "{\"model\":\"gpt-off\"," HI "}",
                      404, "invalid_request_error", "model_not_found", NULL);
    call_expect_error("GET", "/v1/models/no-such-model", env.user.access, NULL, 404,
                      "invalid_request_error", "model_not_found", "model");
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

/* an upstream that keeps failing before its first token: 502 server_error */
static void test_upstream_failure(void **state)
{
    plxt_llm_script_t s = { .status = 500 };

    (void)state;
    plxt_llm_set_default(env.llm, &s);
    call_expect_error("POST", CHAT, env.user.access, "{\"model\":\"gpt-test\"," HI "}",
                      502, "server_error", NULL, NULL);
    plxt_llm_set_default(env.llm, &(plxt_llm_script_t){ .text = NULL });
    assert_true(plxt_llm_count(env.llm) >= 1);
}

/* ---- embeddings --------------------------------------------------------------------- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t b64_decode(const char *s, unsigned char *out, size_t cap)
{
    static const char a[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = strlen(s), o = 0;

    assert_int_equal(n % 4, 0);
    for (size_t i = 0; i < n; i += 4) {
        uint32_t w = 0;
        int pad = 0;

        for (int k = 0; k < 4; k++) {
            const char *c = strchr(a, s[i + k]);

            if (s[i + k] == '=') {
                pad++;
                w <<= 6;
                continue;
            }
            assert_non_null(c);
            assert_int_equal(pad, 0);
            w = w << 6 | (uint32_t)(c - a);
        }
        for (int k = 0; k < 3 - pad; k++) {
            assert_true(o < cap);
            out[o++] = (unsigned char)(w >> (16 - 8 * k));
        }
    }
    return o;
}

static void test_embeddings_float_and_base64(void **state)
{
#define EMB_REQ "{\"model\":\"emb-test\",\"input\":[\"alpha beta\",\"gamma\"]%s}"
    json_t *f = ait_expect(&env, "POST", "/v1/embeddings", env.user.access, P(EMB_REQ, ""), 200);
    json_t *b = ait_expect(&env, "POST", "/v1/embeddings", env.user.access,
                           P(EMB_REQ, ",\"encoding_format\":\"base64\""), 200);
    json_t *usage = json_object_get(f, "usage");

    (void)state;
    assert_string_equal(str(f, "object"), "list");
    assert_string_equal(str(f, "model"), "emb-test");
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 3);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")), 3);
    assert_int_equal(json_array_size(json_object_get(f, "data")), 2);
    assert_int_equal(json_array_size(json_object_get(b, "data")), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *fe = json_array_get(json_object_get(f, "data"), i);
        json_t *be = json_array_get(json_object_get(b, "data"), i);
        json_t *vec = json_object_get(fe, "embedding");
        unsigned char raw[64];
        size_t n;
        double norm = 0;

        assert_string_equal(str(fe, "object"), "embedding");
        assert_int_equal(json_integer_value(json_object_get(fe, "index")), (long)i);
        assert_int_equal(json_integer_value(json_object_get(be, "index")), (long)i);
        assert_int_equal(json_array_size(vec), 8);
        n = b64_decode(str(be, "embedding"), raw, sizeof raw);
        assert_int_equal(n, 32);
        for (size_t k = 0; k < 8; k++) {
            uint32_t u = le32(raw + 4 * k);
            float fb, ff = (float)json_number_value(json_array_get(vec, k));

            memcpy(&fb, &u, 4);
            if (fb != ff)
                fail_msg("input %zu, float %zu: %.9g from base64, %.9g as a number", i, k,
                         (double)fb, (double)ff);
            norm += (double)ff * ff;
        }
        assert_true(fabs(norm - 1.0) < 1e-5);
    }
    json_decref(f);
    json_decref(b);
}

static void test_embeddings_requests(void **state)
{
    json_t *j;

    (void)state;
    /* one string, dimensions forwarded */
    j = ait_expect(&env, "POST", "/v1/embeddings", env.user.access,
                   "{\"model\":\"emb-test\",\"input\":\"hello\",\"dimensions\":4,"
                   "\"encoding_format\":\"float\"}", 200);
    assert_int_equal(json_array_size(json_object_get(json_array_get(json_object_get(j, "data"),
                                                                    0), "embedding")), 4);
    json_decref(j);
    j = fake_last_body();
    assert_int_equal(json_integer_value(json_object_get(j, "dimensions")), 4);
    assert_string_equal(str(j, "model"), "up-emb");
    json_decref(j);
    call_expect_error("POST", "/v1/embeddings", env.user.access,
                      "{\"model\":\"emb-test\",\"input\":[[1,2,3]]}", 400,
                      "invalid_request_error", "unsupported_value", "input");
    call_expect_error("POST", "/v1/embeddings", env.user.access,
                      "{\"model\":\"emb-test\",\"input\":[1,2,3]}", 400,
                      "invalid_request_error", "unsupported_value", "input");
    call_expect_error("POST", "/v1/embeddings", env.user.access,
                      "{\"model\":\"emb-test\",\"input\":[\"a\",\"\"]}", 400,
                      "invalid_request_error", "invalid_value", "input[1]");
    call_expect_error("POST", "/v1/embeddings", env.user.access,
                      "{\"model\":\"emb-test\",\"input\":\"a\",\"encoding_format\":\"hex\"}",
                      400, "invalid_request_error", "invalid_value", "encoding_format");
    call_expect_error("POST", "/v1/embeddings", env.user.access,
                      "{\"model\":\"emb-test\"}", 400, "invalid_request_error",
                      "invalid_value", "input");
    call_expect_error("POST", "/v1/embeddings", env.user.access,
                      "{\"model\":\"gone\",\"input\":\"a\"}", 404,
                      "invalid_request_error", "model_not_found", NULL);
    /* a chat model cannot embed */
    call_expect_error("POST", "/v1/embeddings", env.user.access,
                      "{\"model\":\"gpt-test\",\"input\":\"a\"}", 400,
                      "invalid_request_error", NULL, NULL);
    assert_int_equal(plxt_llm_count(env.llm), 1);
}

/* ---- models -------------------------------------------------------------------------- */

static void test_models(void **state)
{
    json_t *j = ait_expect(&env, "GET", "/v1/models", env.user.access, NULL, 200);
    json_t *data = json_object_get(j, "data"), *m;
    bool chat = false, emb = false;
    size_t i;

    (void)state;
    assert_string_equal(str(j, "object"), "list");
    json_array_foreach(data, i, m) {
        assert_int_equal(json_object_size(m), 4);
        assert_string_equal(str(m, "object"), "model");
        assert_true(json_is_integer(json_object_get(m, "created")));
        assert_true(json_integer_value(json_object_get(m, "created")) > 1600000000);
        assert_string_equal(str(m, "owned_by"), "fake");
        assert_string_not_equal(str(m, "id"), "gpt-off");
        chat |= strcmp(str(m, "id"), "gpt-test") == 0;
        emb |= strcmp(str(m, "id"), "emb-test") == 0;
    }
    assert_true(chat && emb);
    json_decref(j);
    j = ait_expect(&env, "GET", "/v1/models/gpt-test", env.user.access, NULL, 200);
    assert_string_equal(str(j, "id"), "gpt-test");
    assert_string_equal(str(j, "object"), "model");
    assert_string_equal(str(j, "owned_by"), "fake");
    json_decref(j);
    j = ait_expect(&env, "GET", "/v1/models/org/slashy", env.user.access, NULL, 200);
    assert_string_equal(str(j, "id"), "org/slashy");
    json_decref(j);
    call_expect_error("GET", "/v1/models/gpt-off", env.user.access, NULL, 404,
                      "invalid_request_error", "model_not_found", "model");
}

/* ---- quota and usage ------------------------------------------------------------------- */

static void test_quota_spent(void **state)
{
    plxt_user_t u;
    plxt_resp_t resp;
    json_t *j;

    (void)state;
    plxt_user_new(env.srv, env.db, &u);
    j = ait_expect(&env, "POST", "/api/v1/admin/ai/quotas", env.admin.access,
                   P("{\"subject_type\":\"user\",\"subject_id\":\"%s\",\"period\":\"day\","
                     "\"max_tokens\":5}", u.id), 201);
    json_decref(j);
    ait_call(&env, "POST", CHAT, u.access, "{\"model\":\"gpt-test\"," HI "}", &resp);
    expect_oai_error(&resp, 429, "insufficient_quota", "quota_exceeded", NULL);
    assert_non_null(plxt_resp_header(&resp, "Retry-After"));
    assert_true(strtol(plxt_resp_header(&resp, "Retry-After"), NULL, 10) > 0);
    assert_string_equal(plxt_resp_header(&resp, "x-should-retry"), "false");
    plxt_resp_free(&resp);
    /* streamed too: refused before any stream opens */
    call_expect_error("POST", CHAT, u.access,
                      "{\"model\":\"gpt-test\"," HI ",\"stream\":true}", 429,
                      "insufficient_quota", "quota_exceeded", NULL);
    call_expect_error("POST", "/v1/embeddings", u.access,
                      "{\"model\":\"emb-test\",\"input\":\"one two three four five six\"}",
                      429, "insufficient_quota", "quota_exceeded", NULL);
    assert_int_equal(plxt_llm_count(env.llm), 0);
}

static void test_usage_rows(void **state)
{
    plxt_llm_script_t s = { .tokens = 3 };
    long chat0 = usage_rows(env.user.id, "completions", "ok");
    long emb0 = usage_rows(env.user.id, "embeddings", "ok");
    plxt_stream_t *st;
    chunks_t c;
    json_t *j;
    char *v;

    (void)state;
    j = ait_expect(&env, "POST", CHAT, env.user.access, "{\"model\":\"gpt-test\"," HI "}", 200);
    json_decref(j);
    plxt_llm_push(env.llm, &s);
    st = ait_stream(&env, CHAT, env.user.access,
                    "{\"model\":\"gpt-test\"," HI ",\"stream\":true}");
    stream_read(st, &c);
    plxt_stream_close(st);
    chunks_free(&c);
    j = ait_expect(&env, "POST", "/v1/embeddings", env.user.access,
                   "{\"model\":\"emb-test\",\"input\":\"a b\"}", 200);
    json_decref(j);
    assert_int_equal(usage_rows(env.user.id, "completions", "ok"), chat0 + 2);
    assert_int_equal(usage_rows(env.user.id, "embeddings", "ok"), emb0 + 1);
    /* the streamed one: the provider's figures, not an estimate */
    v = ait_sql(&env, P("SELECT prompt_tokens || '/' || completion_tokens || '/' || estimated "
                        "|| '/' || model || '/' || served_model FROM ai.usage WHERE user_id = "
                        "'%s' AND kind = 'completions' ORDER BY created_at DESC LIMIT 1",
                        env.user.id));
    assert_string_equal(v, "1/3/false/gpt-test/gpt-test");
    free(v);
}

/* a server without any provider: 503 in OpenAI's shape, saying how to
 * configure one; the WebSocket says the same as an error message */
static void test_not_configured(void **state)
{
    ait_env_t bare;
    plxt_resp_t resp;
    const char *headers[2] = { NULL, NULL };
    plxt_ws_t *ws;
    plxt_ws_msg_t m;
    json_t *j;
    int status = 0;

    (void)state;
    memset(&bare, 0, sizeof bare);
    assert_int_equal(ait_start_bare(&bare), 0);
    ait_call(&bare, "POST", CHAT, bare.user.access, "{\"model\":\"gpt-test\"," HI "}", &resp);
    expect_oai_error(&resp, 503, "service_unavailable_error", "ai_not_configured", NULL);
    assert_non_null(strstr(resp.body, "ai.conf"));
    plxt_resp_free(&resp);
    ait_call(&bare, "POST", "/v1/embeddings", bare.user.access,
             "{\"model\":\"e\",\"input\":\"x\"}", &resp);
    expect_oai_error(&resp, 503, "service_unavailable_error", "ai_not_configured", NULL);
    plxt_resp_free(&resp);
    ait_call(&bare, "GET", "/v1/models", bare.user.access, NULL, &resp);
    expect_oai_error(&resp, 503, "service_unavailable_error", "ai_not_configured", NULL);
    plxt_resp_free(&resp);
    headers[0] = plxt_bearer(bare.user.access, NULL, 0);
    ws = plxt_ws_connect(bare.srv->url, "/api/v1/ai/ws", headers, 5000, &status);
    assert_non_null(ws);
    assert_int_equal(plxt_ws_send_text(ws, "{\"type\":\"chat\",\"id\":\"a\",\"model\":"
                                           "\"gpt-test\",\"messages\":[{\"role\":\"user\","
                                           "\"content\":\"hi\"}]}"), 0);
    assert_int_equal(plxt_ws_recv(ws, &m, 5000), 1);
    j = json_loads(m.data, 0, NULL);
    assert_string_equal(str(j, "type"), "error");
    assert_string_equal(str(j, "code"), "ai_not_configured");
    json_decref(j);
    plxt_ws_msg_free(&m);
    plxt_ws_free(ws);
    assert_int_equal(ait_stop(&bare), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_completion_whole, test_setup),
        cmocka_unit_test_setup(test_completion_params_forwarded, test_setup),
        cmocka_unit_test_setup(test_completion_stream_framing, test_setup),
        cmocka_unit_test_setup(test_completion_stream_usage_chunk, test_setup),
        cmocka_unit_test_setup(test_completion_stream_error_midway, test_setup),
        cmocka_unit_test_setup(test_completion_stream_client_gone, test_setup),
        cmocka_unit_test_setup(test_completion_stream_refused_early, test_setup),
        cmocka_unit_test_setup(test_api_key_scopes, test_setup),
        cmocka_unit_test_setup(test_core_errors_in_openai_shape, test_setup),
        cmocka_unit_test_setup(test_bad_bodies, test_setup),
        cmocka_unit_test_setup(test_unknown_model, test_setup),
        cmocka_unit_test_setup(test_upstream_failure, test_setup),
        cmocka_unit_test_setup(test_embeddings_float_and_base64, test_setup),
        cmocka_unit_test_setup(test_embeddings_requests, test_setup),
        cmocka_unit_test_setup(test_models, test_setup),
        cmocka_unit_test_setup(test_quota_spent, test_setup),
        cmocka_unit_test_setup(test_usage_rows, test_setup),
        cmocka_unit_test(test_not_configured),
    };

    plxt_require_postgres("test_ai_openai");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
