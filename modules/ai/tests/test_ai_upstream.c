/*
 * test_ai_upstream.c - ai_upstream_chat and ai_upstream_embed against the
 * fake provider (tests/support/fake_llm.h), over real sockets: the three
 * protocols streamed and not, exact usage, errors with their classes and
 * Retry-After, a stream failing mid-way, the first-token, idle and connect
 * failures, cancellation (the provider must see the connection go within a
 * second), hangs, bad keys, bounds and parallel calls. No server, no
 * database: the module's files run with the stub API of api_stub.h.
 */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "ai.h"
#include "api_stub.h"
#include "fake_llm.h"

#define KEY "sk-fake-test-key"

static plxt_llm_t *fake;
static const ai_provider_t *P_OPENAI, *P_ANTH, *P_GEM;

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a sink that records, and cancels when told ---------------------------- */

typedef struct rec {
    char   text[1 << 16];
    size_t len;
    int    deltas;
    int    refuse_after;       /* delta returns false once this many came */
    int    cancel_after;       /* cancelled() true once this many came */
    atomic_bool cancel;        /* cancelled() true (set from another thread) */
    atomic_llong cancel_at;    /* when cancelled() first answered true */
    int    polls;
} rec_t;

static bool rec_delta(void *ud, const char *text, size_t len)
{
    rec_t *r = ud;

    assert_true(r->len + len < sizeof r->text);
    memcpy(r->text + r->len, text, len);
    r->len += len;
    r->text[r->len] = '\0';
    r->deltas++;
    return !(r->refuse_after > 0 && r->deltas >= r->refuse_after);
}

static bool rec_cancelled(void *ud)
{
    rec_t *r = ud;
    bool c = atomic_load(&r->cancel)
             || (r->cancel_after > 0 && r->deltas >= r->cancel_after);

    r->polls++;
    if (c && atomic_load(&r->cancel_at) == 0)
        atomic_store(&r->cancel_at, now_ms());
    return c;
}

static ai_sink_t sink_of(rec_t *r)
{
    memset(r, 0, sizeof *r);
    return (ai_sink_t){ .delta = rec_delta, .cancelled = rec_cancelled, .ud = r };
}

/* ---- setup ------------------------------------------------------------------ */

static void configure(const char *url)
{
    char base[256];

    ai_stub_install();
    ai_stub_config("providers", "fake, fake_anth, fake_gem, nokey, nokey_gem, "
                   "closed");
    snprintf(base, sizeof base, "%s/v1", url);
    ai_stub_config("provider.fake.type", "openai");
    ai_stub_config("provider.fake.base_url", base);
    ai_stub_config("provider.fake.api_key", KEY);
    ai_stub_config("provider.nokey.type", "openai");
    ai_stub_config("provider.nokey.base_url", base);
    ai_stub_config("provider.nokey.api_key", "sk-wrong-key");
    ai_stub_config("provider.fake_anth.type", "anthropic");
    ai_stub_config("provider.fake_anth.base_url", url);
    ai_stub_config("provider.fake_anth.api_key", KEY);
    snprintf(base, sizeof base, "%s/v1beta", url);
    ai_stub_config("provider.fake_gem.type", "gemini");
    ai_stub_config("provider.fake_gem.base_url", base);
    ai_stub_config("provider.fake_gem.api_key", KEY);
    ai_stub_config("provider.nokey_gem.type", "gemini");
    ai_stub_config("provider.nokey_gem.base_url", base);
    ai_stub_config("provider.nokey_gem.api_key", "AIza-wrong");
    /* nothing listens on port 1 */
    ai_stub_config("provider.closed.type", "openai");
    ai_stub_config("provider.closed.base_url", "http://127.0.0.1:1/v1");
    ai_stub_config("connect_timeout_ms", "2000");
    ai_stub_config("first_token_timeout_ms", "3000");
    ai_stub_config("idle_timeout_ms", "1500");
    ai_stub_config("total_timeout_ms", "20000");
    assert_true(ai_settings_load(AI_STUB_MODULE));
    P_OPENAI = ai_provider_find("fake");
    P_ANTH = ai_provider_find("fake_anth");
    P_GEM = ai_provider_find("fake_gem");
}

static int group_setup(void **state)
{
    char url[128];

    (void)state;
    if (!(fake = plxt_llm_start(KEY)))
        return -1;
    plxt_llm_url(fake, url, sizeof url);
    configure(url);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    ai_settings_free();
    ai_stub_config_reset();
    plxt_llm_stop(fake);
    return 0;
}

/* every test starts from the fake's default and the configured timeouts */
static int each_setup(void **state)
{
    (void)state;
    plxt_llm_reset(fake);
    ai_cfg.first_token_timeout_ms = 3000;
    ai_cfg.idle_timeout_ms = 1500;
    ai_cfg.total_timeout_ms = 20000;
    ai_cfg.max_response_bytes = 8 << 20;
    return 0;
}

/* ---- calls ------------------------------------------------------------------ */

static json_t *messages(void)
{
    /* 2 + 2 words: the fake's prompt_tokens is 4 */
    return json_pack("[{s:s,s:s},{s:s,s:s}]", "role", "system", "content",
                     "Be brief.", "role", "user", "content", "Say hello");
}

static plx_status_t chat(const ai_provider_t *p, bool stream, rec_t *r,
                         ai_result_t *res)
{
    json_t *msgs = messages();
    ai_chat_params_t q = { .messages = msgs, .max_tokens = 100 };
    ai_sink_t sink = sink_of(r);
    plx_status_t st;

    memset(res, 0, sizeof *res);
    st = ai_upstream_chat(p, "up-model", &q, stream, &sink, res);
    json_decref(msgs);
    return st;
}

static void push(const plxt_llm_script_t *s)
{
    plxt_llm_push(fake, s);
}

static const ai_provider_t *kind(int i)
{
    return i == 0 ? P_OPENAI : i == 1 ? P_ANTH : P_GEM;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_chat_all_kinds(void **state)
{
    (void)state;

    for (int k = 0; k < 3; k++) {
        for (int stream = 0; stream < 2; stream++) {
            const ai_provider_t *p = kind(k);
            plxt_llm_script_t s = { .text = "Hello there friend", .delay_ms = 5 };
            plxt_llm_seen_t seen;
            ai_result_t res;
            rec_t r;

            plxt_llm_reset(fake);
            push(&s);
            assert_int_equal(chat(p, stream, &r, &res), PLX_OK);
            if (res.err != AI_OK)
                fail_msg("%s stream=%d: %s", p->name, stream, res.message);
            assert_string_equal(res.text, "Hello there friend");
            assert_string_equal(r.text, "Hello there friend");
            /* streamed: a delta per token; whole: the text once */
            assert_int_equal(r.deltas, stream ? 3 : 1);
            assert_string_equal(res.finish_reason, "stop");
            assert_true(res.usage.known);
            assert_int_equal(res.usage.prompt_tokens, 4);
            assert_int_equal(res.usage.completion_tokens, 3);
            assert_true(res.started);
            assert_false(res.retryable);
            assert_true(res.ttft_seconds >= 0 && res.ttft_seconds < 5);
            assert_int_equal(res.http_status, 200);
            assert_true(res.message[0] != '\0');

            assert_true(plxt_llm_seen(fake, 0, &seen));
            assert_string_equal(seen.api_key, KEY);
            if (k == 0) {
                assert_string_equal(seen.path, "/v1/chat/completions");
                assert_int_equal(json_integer_value(json_object_get(seen.body,
                                 "max_tokens")), 100);
                if (stream)
                    assert_true(json_is_true(json_object_get(json_object_get(
                        seen.body, "stream_options"), "include_usage")));
                assert_true(res.upstream_id[0] != '\0');
            } else if (k == 1) {
                assert_string_equal(seen.path, "/v1/messages");
                assert_string_equal(seen.anthropic_version, "2023-06-01");
                assert_string_equal(json_string_value(json_object_get(seen.body,
                                    "system")), "Be brief.");
            } else {
                assert_string_equal(seen.path, stream
                    ? "/v1beta/models/up-model:streamGenerateContent?alt=sse"
                    : "/v1beta/models/up-model:generateContent");
            }
            plxt_llm_seen_free(&seen);
            ai_result_clear(&res);
        }
    }
}

static void test_usage_long_and_missing(void **state)
{
    (void)state;

    for (int k = 0; k < 3; k++) {
        plxt_llm_script_t s = { .tokens = 200 };
        ai_result_t res;
        rec_t r;

        push(&s);
        assert_int_equal(chat(kind(k), true, &r, &res), PLX_OK);
        assert_int_equal(r.deltas, 200);
        assert_int_equal(res.usage.completion_tokens, 200);
        assert_int_equal(res.usage.prompt_tokens, 4);
        assert_true(res.usage.known);
        assert_true(!strncmp(res.text, "w1 w2 w3", 8));
        ai_result_clear(&res);

        /* a provider that reports nothing: usage unknown, reply complete */
        s.no_usage = true;
        s.tokens = 3;
        push(&s);
        assert_int_equal(chat(kind(k), true, &r, &res), PLX_OK);
        assert_false(res.usage.known);
        assert_int_equal(res.usage.completion_tokens, 0);
        assert_string_equal(res.text, "w1 w2 w3");
        ai_result_clear(&res);
        push(&s);
        assert_int_equal(chat(kind(k), false, &r, &res), PLX_OK);
        assert_false(res.usage.known);
        ai_result_clear(&res);
    }
}

static void test_rate_limited(void **state)
{
    (void)state;

    for (int k = 0; k < 3; k++) {
        for (int stream = 0; stream < 2; stream++) {
            plxt_llm_script_t s = { .status = 429, .retry_after = 2 };
            ai_result_t res;
            rec_t r;

            push(&s);
            assert_int_equal(chat(kind(k), stream, &r, &res), PLX_ERR_UPSTREAM);
            assert_int_equal(res.err, AI_ERR_RATE);
            assert_true(res.retryable);
            assert_int_equal(res.retry_after_ms, 2000);
            assert_int_equal(res.http_status, 429);
            assert_false(res.started);
            assert_int_equal(r.deltas, 0);
            assert_non_null(strstr(res.message, "HTTP 429"));
            ai_result_clear(&res);
        }
    }
}

static void test_server_errors(void **state)
{
    static const int statuses[] = { 500, 503 };
    (void)state;

    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < 2; i++) {
            plxt_llm_script_t s = { .status = statuses[i] };
            ai_result_t res;
            rec_t r;

            push(&s);
            assert_int_equal(chat(kind(k), true, &r, &res), PLX_ERR_UPSTREAM);
            assert_int_equal(res.err, AI_ERR_SERVER);
            assert_true(res.retryable);
            assert_int_equal(res.retry_after_ms, -1);
            assert_int_equal(res.http_status, statuses[i]);
            ai_result_clear(&res);
        }
    }
    /* Anthropic's overload */
    {
        plxt_llm_script_t s = { .status = 529 };
        ai_result_t res;
        rec_t r;

        push(&s);
        assert_int_equal(chat(P_ANTH, false, &r, &res), PLX_ERR_UPSTREAM);
        assert_int_equal(res.err, AI_ERR_SERVER);
        assert_true(res.retryable);
        assert_int_equal(res.http_status, 529);
        ai_result_clear(&res);
    }
    /* 400: the request is wrong, do not retry */
    {
        plxt_llm_script_t s = { .status = 400 };
        ai_result_t res;
        rec_t r;

        for (int k = 0; k < 3; k++) {
            push(&s);
            assert_int_equal(chat(kind(k), false, &r, &res), PLX_ERR_INVALID);
            assert_int_equal(res.err, AI_ERR_CLIENT);
            assert_false(res.retryable);
            ai_result_clear(&res);
        }
    }
}

static void test_fail_mid_stream(void **state)
{
    (void)state;

    for (int k = 0; k < 3; k++) {
        plxt_llm_script_t s = { .tokens = 5, .fail_after = 2, .delay_ms = 5 };
        ai_result_t res;
        rec_t r;

        push(&s);
        assert_int_equal(chat(kind(k), true, &r, &res), PLX_ERR_UPSTREAM);
        if (res.err != AI_ERR_STREAM)
            fail_msg("%s: err %d: %s", kind(k)->name, res.err, res.message);
        assert_true(res.started);
        assert_false(res.retryable);
        /* the partial reply is kept */
        assert_string_equal(res.text, "w1 w2");
        assert_string_equal(r.text, "w1 w2");
        assert_int_equal(res.finish_reason[0], '\0');
        /* what came before the failure is no count to bill by */
        assert_false(res.usage.known);
        if (k == 1)
            assert_non_null(strstr(res.message, "overloaded_error"));
        ai_result_clear(&res);
        assert_true(plxt_llm_wait_active(fake, 0, 1000));
    }
}

static void test_first_token_timeout(void **state)
{
    (void)state;

    ai_cfg.first_token_timeout_ms = 400;
    for (int k = 0; k < 3; k++) {
        for (int stream = 0; stream < 2; stream++) {
            plxt_llm_script_t s = { .text = "late", .first_ms = 3000 };
            ai_result_t res;
            long long t0 = now_ms(), took;
            rec_t r;

            push(&s);
            assert_int_equal(chat(kind(k), stream, &r, &res), PLX_ERR_TIMEOUT);
            took = now_ms() - t0;
            assert_int_equal(res.err, AI_ERR_TIMEOUT);
            assert_true(res.retryable);
            assert_false(res.started);
            assert_non_null(strstr(res.message, "first token"));
            if (took < 380 || took > 1200)
                fail_msg("%s stream=%d: timed out after %lld ms", kind(k)->name,
                         stream, took);
            /* the provider sees the connection close */
            assert_true(plxt_llm_wait_active(fake, 0, 1000));
            ai_result_clear(&res);
        }
    }
    /* a slow first token inside the limit is fine */
    {
        plxt_llm_script_t s = { .text = "in time", .first_ms = 200 };
        ai_result_t res;
        rec_t r;

        push(&s);
        assert_int_equal(chat(P_OPENAI, true, &r, &res), PLX_OK);
        assert_true(res.ttft_seconds >= 0.19);
        ai_result_clear(&res);
    }
}

static void test_idle_timeout(void **state)
{
    (void)state;

    ai_cfg.idle_timeout_ms = 400;
    for (int k = 0; k < 3; k++) {
        plxt_llm_script_t s = { .tokens = 3, .delay_ms = 3000 };
        ai_result_t res;
        long long t0 = now_ms(), took;
        rec_t r;

        push(&s);
        assert_int_equal(chat(kind(k), true, &r, &res), PLX_ERR_TIMEOUT);
        took = now_ms() - t0;
        assert_int_equal(res.err, AI_ERR_TIMEOUT);
        assert_true(res.started);
        assert_false(res.retryable);
        assert_string_equal(res.text, "w1");
        assert_non_null(strstr(res.message, "idle"));
        if (took < 380 || took > 1500)
            fail_msg("%s: idle timeout after %lld ms", kind(k)->name, took);
        assert_true(plxt_llm_wait_active(fake, 0, 1000));
        ai_result_clear(&res);
    }
    /* tokens closer together than the idle limit keep it alive */
    {
        plxt_llm_script_t s = { .tokens = 6, .delay_ms = 150 };
        ai_result_t res;
        rec_t r;

        push(&s);
        assert_int_equal(chat(P_ANTH, true, &r, &res), PLX_OK);
        ai_result_clear(&res);
    }
}

static void test_total_timeout(void **state)
{
    plxt_llm_script_t s = { .tokens = 50, .delay_ms = 100 };
    ai_result_t res;
    long long t0 = now_ms(), took;
    rec_t r;
    (void)state;

    ai_cfg.total_timeout_ms = 600;
    push(&s);
    assert_int_equal(chat(P_OPENAI, true, &r, &res), PLX_ERR_TIMEOUT);
    took = now_ms() - t0;
    assert_true(res.started);
    assert_non_null(strstr(res.message, "total_timeout_ms"));
    assert_true(took >= 580 && took < 1500);
    ai_result_clear(&res);
}

typedef struct later {
    rec_t *r;
    int    ms;
} later_t;

static void *cancel_later(void *arg)
{
    later_t *l = arg;

    usleep((useconds_t)l->ms * 1000);
    atomic_store(&l->r->cancel, true);
    return NULL;
}

static void test_cancel(void **state)
{
    (void)state;

    for (int k = 0; k < 3; k++) {
        for (int stream = 0; stream < 2; stream++) {
            /* a provider that sends nothing (hang), cancelled from another
             * thread: the call ends within a poll, the provider sees the
             * connection go within a second */
            plxt_llm_script_t s = { .hang = true };
            json_t *msgs = messages();
            ai_chat_params_t q = { .messages = msgs, .max_tokens = 100 };
            ai_result_t res = { 0 };
            rec_t r;
            ai_sink_t sink = sink_of(&r);
            later_t l = { &r, 300 };
            pthread_t th;
            long long end, at;

            push(&s);
            pthread_create(&th, NULL, cancel_later, &l);
            assert_int_equal(ai_upstream_chat(kind(k), "m", &q, stream, &sink,
                                              &res), PLX_ERR_GONE);
            end = now_ms();
            pthread_join(th, NULL);
            at = atomic_load(&r.cancel_at);
            assert_int_equal(res.err, AI_ERR_CANCELLED);
            assert_false(res.retryable);
            assert_true(at > 0 && end - at < 300);
            assert_true(plxt_llm_wait_active(fake, 0, 1000));
            ai_result_clear(&res);
            json_decref(msgs);
        }
    }
}

static void test_cancel_mid_stream(void **state)
{
    (void)state;

    for (int k = 0; k < 3; k++) {
        plxt_llm_script_t s = { .tokens = 1000, .delay_ms = 20 };
        ai_result_t res;
        rec_t r;
        long long t0;

        /* the caller says so through cancelled() */
        push(&s);
        {
            json_t *msgs = messages();
            ai_chat_params_t q = { .messages = msgs, .max_tokens = 100 };
            ai_sink_t sink = sink_of(&r);
            memset(&res, 0, sizeof res);
            r.cancel_after = 5;
            t0 = now_ms();
            assert_int_equal(ai_upstream_chat(kind(k), "m", &q, true, &sink, &res),
                             PLX_ERR_GONE);
            json_decref(msgs);
        }
        assert_int_equal(res.err, AI_ERR_CANCELLED);
        assert_true(res.started);
        assert_true(r.deltas >= 5 && r.deltas < 1000);
        assert_true(now_ms() - t0 < 2000);
        assert_true(plxt_llm_wait_active(fake, 0, 1000));
        ai_result_clear(&res);

        /* or by refusing a delta */
        push(&s);
        {
            json_t *msgs = messages();
            ai_chat_params_t q = { .messages = msgs, .max_tokens = 100 };
            ai_sink_t sink = sink_of(&r);
            memset(&res, 0, sizeof res);
            r.refuse_after = 3;
            assert_int_equal(ai_upstream_chat(kind(k), "m", &q, true, &sink, &res),
                             PLX_ERR_GONE);
            json_decref(msgs);
        }
        assert_int_equal(res.err, AI_ERR_CANCELLED);
        assert_int_equal(r.deltas, 3);
        assert_true(plxt_llm_wait_active(fake, 0, 1000));
        ai_result_clear(&res);
    }
}

static void test_hang(void **state)
{
    (void)state;

    ai_cfg.first_token_timeout_ms = 500;
    for (int k = 0; k < 3; k++) {
        for (int stream = 0; stream < 2; stream++) {
            plxt_llm_script_t s = { .hang = true };
            ai_result_t res;
            rec_t r;

            push(&s);
            assert_int_equal(chat(kind(k), stream, &r, &res), PLX_ERR_TIMEOUT);
            assert_int_equal(res.err, AI_ERR_TIMEOUT);
            assert_true(res.retryable);
            /* the cancelled() poll ran, at least every 100 ms */
            assert_true(r.polls >= 4);
            assert_true(plxt_llm_wait_active(fake, 0, 1000));
            ai_result_clear(&res);
        }
    }
}

static void test_bad_key(void **state)
{
    const ai_provider_t *nokey = ai_provider_find("nokey");
    const ai_provider_t *nokey_gem = ai_provider_find("nokey_gem");
    const ai_provider_t *ps[] = { nokey, nokey_gem };
    (void)state;

    for (size_t i = 0; i < 2; i++) {
        ai_result_t res;
        rec_t r;

        assert_int_equal(chat(ps[i], true, &r, &res), PLX_ERR_UPSTREAM);
        assert_int_equal(res.err, AI_ERR_AUTH);
        assert_false(res.retryable);
        assert_int_equal(res.http_status, i == 0 ? 401 : 400);
        assert_null(strstr(res.message, ps[i]->api_key));
        assert_non_null(strstr(res.message, "API key"));
        ai_result_clear(&res);
    }
}

static void test_connect_refused(void **state)
{
    ai_result_t res;
    rec_t r;
    (void)state;

    assert_int_equal(chat(ai_provider_find("closed"), true, &r, &res),
                     PLX_ERR_UPSTREAM);
    assert_int_equal(res.err, AI_ERR_CONNECT);
    assert_true(res.retryable);
    assert_int_equal(res.http_status, 0);
    assert_non_null(strstr(res.message, "connect"));
    ai_result_clear(&res);
}

static void test_too_large(void **state)
{
    (void)state;

    ai_cfg.max_response_bytes = 4096;
    for (int stream = 0; stream < 2; stream++) {
        plxt_llm_script_t s = { .tokens = 3000 };
        ai_result_t res;
        rec_t r;

        push(&s);
        assert_int_equal(chat(P_OPENAI, stream, &r, &res), PLX_ERR_TOO_LARGE);
        assert_int_equal(res.err, AI_ERR_TOO_LARGE);
        assert_false(res.retryable);
        assert_true(res.text_len <= 4096);
        assert_true(plxt_llm_wait_active(fake, 0, 1000));
        ai_result_clear(&res);
    }
}

static void test_embed(void **state)
{
    const char *in[] = { "the quick brown fox", "jumps" };
    ai_embed_result_t res = { 0 };
    float want[8];
    int before;
    (void)state;

    /* OpenAI: floats, usage from the provider */
    assert_int_equal(ai_upstream_embed(P_OPENAI, "emb", in, 2, 0, &res), PLX_OK);
    assert_int_equal(res.err, AI_OK);
    assert_int_equal(res.n, 2);
    assert_int_equal(res.dim, 8);
    for (size_t i = 0; i < 2; i++) {
        plxt_llm_embed_vector(in[i], 8, want);
        for (int d = 0; d < 8; d++)
            assert_true(res.vectors[i * 8 + d] == want[d]);
    }
    assert_true(res.usage.known);
    assert_int_equal(res.usage.prompt_tokens, 5);
    ai_embed_result_clear(&res);

    /* Gemini: batchEmbedContents, usage estimated */
    assert_int_equal(ai_upstream_embed(P_GEM, "emb", in, 2, 4, &res), PLX_OK);
    assert_int_equal(res.n, 2);
    assert_int_equal(res.dim, 4);
    plxt_llm_embed_vector(in[1], 4, want);
    for (int d = 0; d < 4; d++)
        assert_true(res.vectors[4 + d] == want[d]);
    assert_false(res.usage.known);
    assert_int_equal(res.usage.prompt_tokens, ai_estimate_tokens(in[0], 19)
                                              + ai_estimate_tokens(in[1], 5));
    ai_embed_result_clear(&res);

    /* Anthropic has none: refused without a request */
    before = plxt_llm_count(fake);
    assert_int_equal(ai_upstream_embed(P_ANTH, "emb", in, 2, 0, &res),
                     PLX_ERR_INVALID);
    assert_int_equal(res.err, AI_ERR_CLIENT);
    assert_non_null(strstr(res.message, "embeddings"));
    assert_int_equal(plxt_llm_count(fake), before);
    ai_embed_result_clear(&res);

    /* errors take the same tables */
    {
        plxt_llm_script_t s = { .status = 429, .retry_after = 1 };
        push(&s);
        assert_int_equal(ai_upstream_embed(P_OPENAI, "emb", in, 2, 0, &res),
                         PLX_ERR_UPSTREAM);
        assert_int_equal(res.err, AI_ERR_RATE);
        assert_int_equal(res.retry_after_ms, 1000);
        assert_null(res.vectors);
        ai_embed_result_clear(&res);
    }
}

typedef struct par {
    const ai_provider_t *p;
    int ok;
} par_t;

static void *par_main(void *arg)
{
    par_t *a = arg;
    json_t *msgs = json_pack("[{s:s,s:s}]", "role", "user", "content",
                             "[[fake tokens=40 delay_ms=2]]");
    ai_chat_params_t q = { .messages = msgs, .max_tokens = 100 };
    rec_t *r = calloc(1, sizeof *r);
    ai_sink_t sink = { .delta = rec_delta, .cancelled = rec_cancelled, .ud = r };

    for (int i = 0; i < 5; i++) {
        ai_result_t res = { 0 };
        r->len = 0;
        r->deltas = 0;
        if (ai_upstream_chat(a->p, "m", &q, i % 2 == 0, &sink, &res) == PLX_OK
            && res.usage.completion_tokens == 40 && res.text_len == r->len)
            a->ok++;
        ai_result_clear(&res);
    }
    free(r);
    json_decref(msgs);
    return NULL;
}

static void test_parallel(void **state)
{
    pthread_t th[12];
    par_t args[12];
    (void)state;

    for (int i = 0; i < 12; i++) {
        args[i] = (par_t){ .p = kind(i % 3) };
        pthread_create(&th[i], NULL, par_main, &args[i]);
    }
    for (int i = 0; i < 12; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].ok, 5);
    }
    assert_true(plxt_llm_peak(fake) >= 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_chat_all_kinds, each_setup),
        cmocka_unit_test_setup(test_usage_long_and_missing, each_setup),
        cmocka_unit_test_setup(test_rate_limited, each_setup),
        cmocka_unit_test_setup(test_server_errors, each_setup),
        cmocka_unit_test_setup(test_fail_mid_stream, each_setup),
        cmocka_unit_test_setup(test_first_token_timeout, each_setup),
        cmocka_unit_test_setup(test_idle_timeout, each_setup),
        cmocka_unit_test_setup(test_total_timeout, each_setup),
        cmocka_unit_test_setup(test_cancel, each_setup),
        cmocka_unit_test_setup(test_cancel_mid_stream, each_setup),
        cmocka_unit_test_setup(test_hang, each_setup),
        cmocka_unit_test_setup(test_bad_key, each_setup),
        cmocka_unit_test_setup(test_connect_refused, each_setup),
        cmocka_unit_test_setup(test_too_large, each_setup),
        cmocka_unit_test_setup(test_embed, each_setup),
        cmocka_unit_test_setup(test_parallel, each_setup),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
