/*
 * test_fake_llm.c - the fake LLM provider (fake_llm.c) seen
 * from outside, over libcurl, against the byte patterns of the OpenAI,
 * Anthropic Messages and Google Gemini API references and the WHATWG HTML
 * Standard's event-stream format
 *
 * The ai module's tests trust the fake to frame each protocol as the real
 * provider does, to count tokens by the header's rules and to notice a
 * client that goes away; a mistake here would hide one there. So each
 * protocol is checked streamed and not, byte for byte where the reference
 * gives bytes: OpenAI's data-only events, role chunk, usage chunk with
 * "choices":[] and "usage":null elsewhere, "data: [DONE]\n\n" at the end;
 * Anthropic's event: lines equal to the data's type, in order, with
 * cumulative output_tokens and no [DONE]; Gemini's data-only events, no
 * [DONE], finishReason and usageMetadata on the last chunk only. Then the
 * directive, scripts in FIFO order, errors with retry-after, mid-stream
 * failures, key checks, embeddings (float and base64), and the in-flight
 * counts when a hung request's client hangs up.
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>

#include "fake_llm.h"
#include "harness.h"

#define KEY "sk-fake-unit"

static plxt_llm_t *llm;
static char base[64];

/* ---- a small libcurl client ------------------------------------------------ */

typedef struct buf {
    char  *p;
    size_t len;
} buf_t;

typedef struct resp {
    long   status;
    buf_t  body;
    buf_t  head;
    int    curl_code;
    long   connects;     /* new connections this transfer opened */
    double first_byte_s; /* time to the first body byte */
} resp_t;

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    buf_t *b = ud;
    size_t len = size * n;
    char *p = realloc(b->p, b->len + len + 1);

    if (!p)
        return 0;
    memcpy(p + b->len, data, len);
    b->p = p;
    b->len += len;
    p[b->len] = '\0';
    return len;
}

static void resp_free(resp_t *r)
{
    free(r->body.p);
    free(r->head.p);
    memset(r, 0, sizeof *r);
}

/* one request on easy handle h (may be reused for keep-alive); headers is
 * NULL-terminated; body NULL: GET */
static void request_on(CURL *h, const char *path, const char *const *headers,
                       const char *body, resp_t *r)
{
    struct curl_slist *list = NULL;
    char url[1024];

    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "%s%s", base, path);
    for (; headers && *headers; headers++)
        list = curl_slist_append(list, *headers);
    list = curl_slist_append(list, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r->head);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }
    r->curl_code = (int)curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &r->connects);
    curl_easy_getinfo(h, CURLINFO_STARTTRANSFER_TIME, &r->first_byte_s);
    curl_slist_free_all(list);
    if (!r->body.p)
        r->body.p = calloc(1, 1);
    if (!r->head.p)
        r->head.p = calloc(1, 1);
}

static void request(const char *path, const char *const *headers, const char *body,
                    resp_t *r)
{
    CURL *h = curl_easy_init();

    assert_non_null(h);
    request_on(h, path, headers, body, r);
    curl_easy_cleanup(h);
}

static const char *const openai_h[] = { "Authorization: Bearer " KEY, NULL };
static const char *const anth_h[] = { "x-api-key: " KEY, "anthropic-version: 2023-06-01",
                                      NULL };
static const char *const gem_h[] = { "x-goog-api-key: " KEY, NULL };

/* the value of a response header (case-insensitive name) into out */
static bool header(const resp_t *r, const char *name, char *out, size_t len)
{
    size_t n = strlen(name);

    for (const char *l = r->head.p; l && *l;) {
        const char *eol = strstr(l, "\r\n");
        size_t ll = eol ? (size_t)(eol - l) : strlen(l);
        if (ll > n && strncasecmp(l, name, n) == 0 && l[n] == ':') {
            const char *v = l + n + 1;
            while (*v == ' ')
                v++;
            snprintf(out, len, "%.*s", (int)(ll - (size_t)(v - l)), v);
            return true;
        }
        l = eol ? eol + 2 : NULL;
    }
    return false;
}

static json_t *body_json(const resp_t *r)
{
    json_t *j = json_loads(r->body.p, 0, NULL);

    if (!j)
        fail_msg("expected JSON, found \"%.300s\"", r->body.p);
    return j;
}

/* ---- SSE framing ------------------------------------------------------------- */

typedef struct sse {
    char   event[64];   /* "" without an event: line */
    char  *data;        /* the one data: line's value */
    json_t *json;       /* data parsed, or NULL ([DONE]) */
} sse_t;

/* split a raw stream into events; fails the test on any block that is not
 * "[event: x\n]data: y\n" followed by a blank line. *n events, malloc'd. */
static sse_t *sse_split(const char *raw, size_t *n)
{
    sse_t *ev = NULL;
    size_t count = 0;
    const char *p = raw;

    while (*p) {
        const char *end = strstr(p, "\n\n");
        if (!end)
            fail_msg("an event without its blank line: \"%.200s\"", p);
        ev = realloc(ev, (count + 1) * sizeof *ev);
        assert_non_null(ev);
        sse_t *e = &ev[count++];
        memset(e, 0, sizeof *e);
        if (strncmp(p, "event: ", 7) == 0) {
            const char *nl = strchr(p, '\n');
            snprintf(e->event, sizeof e->event, "%.*s", (int)(nl - p - 7), p + 7);
            p = nl + 1;
        }
        if (strncmp(p, "data: ", 6) != 0)
            fail_msg("expected \"data: \", found \"%.100s\"", p);
        if (memchr(p, '\n', (size_t)(end - p)))
            fail_msg("an event of more than one data line: \"%.200s\"", p);
        e->data = strndup(p + 6, (size_t)(end - p - 6));
        e->json = json_loads(e->data, 0, NULL);
        p = end + 2;
    }
    *n = count;
    return ev;
}

static void sse_free(sse_t *ev, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(ev[i].data);
        json_decref(ev[i].json);
    }
    free(ev);
}

static bool ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), t = strlen(tail);

    return n >= t && strcmp(s + n - t, tail) == 0;
}

/* ---- setup ----------------------------------------------------------------------- */

static int group_setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    llm = plxt_llm_start(KEY);
    if (!llm)
        return -1;
    plxt_llm_url(llm, base, sizeof base);
    return 0;
}

static int group_teardown(void **state)
{
    plxt_llm_stop(llm);
    curl_global_cleanup();
    return 0;
}

static int each_setup(void **state)
{
    plxt_llm_set_default(llm, NULL);
    plxt_llm_reset(llm);
    return 0;
}

/* ---- OpenAI --------------------------------------------------------------------- */

static void test_words_and_tokens(void **state)
{
    assert_int_equal(plxt_llm_count_words(""), 0);
    assert_int_equal(plxt_llm_count_words("  one\ttwo\nthree  "), 3);
    assert_int_equal(plxt_llm_count_words("Hi [[fake tokens=3]]"), 3);
}

static void test_openai_chat(void **state)
{
    resp_t r;
    json_t *j, *choice, *usage;
    char rid[64];

    request("/v1/chat/completions", openai_h,
            "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Say hi now\"}]}]}",
            &r);
    assert_int_equal(r.status, 200);
    assert_true(header(&r, "x-request-id", rid, sizeof rid));
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "gpt-x");
    assert_true(json_is_integer(json_object_get(j, "created")));
    assert_true(json_is_string(json_object_get(j, "id")));
    choice = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(choice, "message"),
                                                          "content")),
                        "Hello from the fake provider.");
    assert_string_equal(json_string_value(json_object_get(json_object_get(choice, "message"),
                                                          "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(choice, "finish_reason")), "stop");
    assert_true(json_is_null(json_object_get(choice, "logprobs")));
    usage = json_object_get(j, "usage");
    /* "Be brief." 2 words + "Say hi now" 3; 5 tokens in the default text */
    assert_int_equal(json_integer_value(json_object_get(usage, "prompt_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(usage, "completion_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(usage, "total_tokens")), 10);
    json_decref(j);
    resp_free(&r);
}

static void test_openai_stream_with_usage(void **state)
{
    resp_t r;
    sse_t *ev;
    size_t n;
    char type[128];
    const char *id;

    request("/v1/chat/completions", openai_h,
            "{\"model\":\"gpt-x\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
            "\"messages\":[{\"role\":\"user\",\"content\":"
            "\"Hi [[fake text=\\\"Hello there, friend\\\"]]\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_true(header(&r, "Content-Type", type, sizeof type));
    assert_string_equal(type, "text/event-stream");
    assert_true(ends_with(r.body.p, "\n\ndata: [DONE]\n\n"));
    assert_null(strstr(r.body.p, "event:"));
    assert_non_null(strstr(r.body.p, "data: {\"id\":\""));   /* one space after data: */
    ev = sse_split(r.body.p, &n);
    /* role, 3 tokens, finish, usage, [DONE] */
    assert_int_equal(n, 7);
    id = json_string_value(json_object_get(ev[0].json, "id"));
    assert_non_null(id);
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *c = ev[i].json;
        assert_non_null(c);
        assert_string_equal(json_string_value(json_object_get(c, "object")),
                            "chat.completion.chunk");
        assert_string_equal(json_string_value(json_object_get(c, "id")), id);
        assert_string_equal(json_string_value(json_object_get(c, "model")), "gpt-x");
        assert_true(json_integer_value(json_object_get(c, "created"))
                    == json_integer_value(json_object_get(ev[0].json, "created")));
        if (i + 2 < n)
            assert_true(json_is_null(json_object_get(c, "usage")));
    }
    assert_non_null(strstr(ev[0].data, "\"delta\":{\"role\":\"assistant\",\"content\":\"\"}"));
    assert_non_null(strstr(ev[1].data, "\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,"
                                       "\"finish_reason\":null}],\"usage\":null}"));
    assert_non_null(strstr(ev[2].data, "\"delta\":{\"content\":\" there,\"}"));
    assert_non_null(strstr(ev[3].data, "\"delta\":{\"content\":\" friend\"}"));
    assert_non_null(strstr(ev[4].data, "\"delta\":{},\"logprobs\":null,"
                                       "\"finish_reason\":\"stop\"}],\"usage\":null}"));
    assert_non_null(strstr(ev[5].data, "\"choices\":[],\"usage\":{\"prompt_tokens\":5,"
                                       "\"completion_tokens\":3,\"total_tokens\":8}}"));
    assert_string_equal(ev[6].data, "[DONE]");
    sse_free(ev, n);
    resp_free(&r);
}

static void test_openai_stream_without_usage(void **state)
{
    resp_t r;
    sse_t *ev;
    size_t n;

    /* not asked: no usage key at all */
    request("/v1/chat/completions", openai_h,
            "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
            "\"Hi [[fake tokens=4]]\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.p, "usage"));
    ev = sse_split(r.body.p, &n);
    assert_int_equal(n, 1 + 4 + 1 + 1);
    assert_non_null(strstr(ev[4].data, "\"content\":\" w4\""));
    sse_free(ev, n);
    resp_free(&r);

    /* asked, but the script never reports it: "usage":null, no usage chunk */
    request("/v1/chat/completions", openai_h,
            "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
            "\"messages\":[{\"role\":\"user\",\"content\":\"Hi [[fake tokens=2 no_usage=1]]\"}]}",
            &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.p, "\"choices\":[]"));
    assert_null(strstr(r.body.p, "prompt_tokens"));
    assert_true(ends_with(r.body.p, "\"usage\":null}\n\ndata: [DONE]\n\n"));
    resp_free(&r);

    /* not streamed: no usage object */
    request("/v1/chat/completions", openai_h,
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"[[fake no_usage=1]]\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.p, "usage"));
    resp_free(&r);
}

static void test_openai_errors_and_key(void **state)
{
    static const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                               "\"content\":\"hi\"}]}";
    const char *const wrong[] = { "Authorization: Bearer sk-wrong", NULL };
    plxt_llm_script_t s = { .status = 429, .retry_after = 3 };
    resp_t r;
    json_t *j, *e;
    char v[64];

    request("/v1/chat/completions", wrong, body, &r);
    assert_int_equal(r.status, 401);
    j = body_json(&r);
    e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_api_key");
    assert_true(json_is_null(json_object_get(e, "param")));
    assert_true(json_is_string(json_object_get(e, "message")));
    json_decref(j);
    resp_free(&r);

    request("/v1/chat/completions", NULL, body, &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);

    /* a key failure takes no script: the pushed 429 is for the next call */
    plxt_llm_push(llm, &s);
    request("/v1/chat/completions", wrong, body, &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    request("/v1/chat/completions", openai_h, body, &r);
    assert_int_equal(r.status, 429);
    assert_true(header(&r, "retry-after", v, sizeof v));
    assert_string_equal(v, "3");
    j = body_json(&r);
    e = json_object_get(j, "error");
    assert_int_equal(json_object_size(e), 4);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "rate_limit_error");
    json_decref(j);
    resp_free(&r);
    request("/v1/chat/completions", openai_h, body, &r);
    assert_int_equal(r.status, 200);
    assert_false(header(&r, "retry-after", v, sizeof v));
    resp_free(&r);

    /* a 500 by directive; a broken body */
    request("/v1/chat/completions", openai_h,
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"[[fake status=500]]\"}]}", &r);
    assert_int_equal(r.status, 500);
    assert_non_null(strstr(r.body.p, "\"type\":\"server_error\""));
    resp_free(&r);
    request("/v1/chat/completions", openai_h, "{\"model\":", &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
    assert_int_equal(plxt_llm_count(llm), 7);
}

static void test_openai_fail_after(void **state)
{
    resp_t r;
    sse_t *ev;
    size_t n;
    json_t *e;

    request("/v1/chat/completions", openai_h,
            "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
            "\"messages\":[{\"role\":\"user\",\"content\":\"[[fake tokens=10 fail_after=3]]\"}]}",
            &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.curl_code, 0);
    assert_null(strstr(r.body.p, "[DONE]"));
    ev = sse_split(r.body.p, &n);
    assert_int_equal(n, 1 + 3 + 1);
    assert_non_null(strstr(ev[3].data, "\" w3\""));
    e = json_object_get(ev[4].json, "error");
    assert_non_null(e);
    assert_int_equal(json_object_size(e), 4);
    assert_string_equal(json_string_value(json_object_get(e, "type")), "server_error");
    sse_free(ev, n);
    resp_free(&r);
}

static void test_openai_embeddings(void **state)
{
    resp_t r;
    json_t *j, *data;
    float want[16], got[16];

    request("/v1/embeddings", openai_h,
            "{\"model\":\"emb\",\"input\":[\"the first text\",\"second\"],\"dimensions\":5}", &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "prompt_tokens")), 4);
    data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 2);
    plxt_llm_embed_vector("the first text", 5, want);
    double norm = 0;
    for (int i = 0; i < 5; i++) {
        json_t *v = json_array_get(json_object_get(json_array_get(data, 0), "embedding"), i);
        assert_true((float)json_real_value(v) == want[i]);
        norm += (double)want[i] * want[i];
    }
    assert_true(fabs(norm - 1.0) < 1e-5);
    assert_int_equal(json_array_size(json_object_get(json_array_get(data, 1), "embedding")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(data, 1), "index")), 1);
    json_decref(j);
    resp_free(&r);

    /* base64: little-endian float32, padded; default dimension 8 */
    request("/v1/embeddings", openai_h,
            "{\"model\":\"emb\",\"input\":\"hello\",\"encoding_format\":\"base64\"}", &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    const char *b64 = json_string_value(json_object_get(json_array_get(json_object_get(j,
                                                                        "data"), 0),
                                                          "embedding"));
    assert_non_null(b64);
    assert_int_equal(strlen(b64), 44);   /* 32 bytes */
    assert_int_equal(b64[43], '=');
    {
        static const char tab[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        unsigned char raw[33];
        size_t o = 0;
        for (size_t i = 0; i < 44; i += 4) {
            uint32_t w = 0;
            for (int k = 0; k < 4; k++) {
                const char *c = b64[i + k] == '=' ? tab : strchr(tab, b64[i + k]);
                assert_non_null(c);
                w = (w << 6) | (uint32_t)(c - tab);
            }
            raw[o++] = (unsigned char)(w >> 16);
            raw[o++] = (unsigned char)(w >> 8);
            if (o < 33)
                raw[o++] = (unsigned char)w;
        }
        for (int i = 0; i < 8; i++) {
            uint32_t u = (uint32_t)raw[i * 4] | (uint32_t)raw[i * 4 + 1] << 8
                         | (uint32_t)raw[i * 4 + 2] << 16 | (uint32_t)raw[i * 4 + 3] << 24;
            memcpy(&got[i], &u, 4);
        }
    }
    plxt_llm_embed_vector("hello", 8, want);
    assert_memory_equal(got, want, 8 * sizeof(float));
    json_decref(j);
    resp_free(&r);

    request("/v1/embeddings", openai_h, "{\"model\":\"emb\",\"input\":\"\"}", &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
}

static void test_openai_models(void **state)
{
    resp_t r;
    json_t *j, *m;

    request("/v1/models", openai_h, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    m = json_array_get(json_object_get(j, "data"), 0);
    assert_string_equal(json_string_value(json_object_get(m, "object")), "model");
    assert_non_null(json_object_get(m, "id"));
    assert_non_null(json_object_get(m, "created"));
    assert_non_null(json_object_get(m, "owned_by"));
    json_decref(j);
    resp_free(&r);

    /* one model, even with a colon in its name (Ollama's "llama3:8b") */
    request("/v1/models/llama3:8b", openai_h, NULL, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "llama3:8b");
    assert_string_equal(json_string_value(json_object_get(j, "object")), "model");
    json_decref(j);
    resp_free(&r);
}

/* ---- Anthropic ---------------------------------------------------------------- */

static void test_anthropic_message(void **state)
{
    resp_t r;
    json_t *j;
    char rid[64];

    request("/v1/messages", anth_h,
            "{\"model\":\"claude-x\",\"max_tokens\":64,\"system\":[{\"type\":\"text\","
            "\"text\":\"Be brief.\"}],\"messages\":[{\"role\":\"user\",\"content\":"
            "\"one two three\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_true(header(&r, "request-id", rid, sizeof rid));
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "message");
    assert_string_equal(json_string_value(json_object_get(j, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "claude-x");
    assert_string_equal(json_string_value(json_object_get(j, "stop_reason")), "end_turn");
    assert_true(json_is_null(json_object_get(j, "stop_sequence")));
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "content"), 0), "text")),
                        "Hello from the fake provider.");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "input_tokens")), 5);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "usage"),
                                                        "output_tokens")), 5);
    json_decref(j);
    resp_free(&r);
}

static void test_anthropic_stream(void **state)
{
    static const char *const order[] = {
        "message_start", "content_block_start", "ping", "content_block_delta",
        "content_block_delta", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop"
    };
    resp_t r;
    sse_t *ev;
    size_t n;
    char text[64] = "";

    request("/v1/messages", anth_h,
            "{\"model\":\"claude-x\",\"max_tokens\":64,\"stream\":true,\"messages\":"
            "[{\"role\":\"assistant\",\"content\":\"earlier [[fake status=500]]\"},"
            "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
            "\"[[fake tokens=3]]\"}]}]}", &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.p, "[DONE]"));
    ev = sse_split(r.body.p, &n);
    assert_int_equal(n, sizeof order / sizeof order[0]);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(ev[i].event, order[i]);
        assert_non_null(ev[i].json);
        assert_string_equal(json_string_value(json_object_get(ev[i].json, "type")), order[i]);
        if (strcmp(order[i], "content_block_delta") == 0)
            strcat(text, json_string_value(json_object_get(json_object_get(ev[i].json,
                                                                          "delta"), "text")));
    }
    assert_string_equal(text, "w1 w2 w3");
    assert_string_equal(ev[2].data, "{\"type\": \"ping\"}");
    /* 3 + 2 words (only the last user message's directive applies); the
     * placeholder, then the cumulative count */
    assert_non_null(strstr(ev[0].data, "\"content\":[],"));
    assert_non_null(strstr(ev[0].data, "\"usage\":{\"input_tokens\":5,\"output_tokens\":1}"));
    assert_string_equal(ev[7].data, "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                                    "\"end_turn\",\"stop_sequence\":null},\"usage\":"
                                    "{\"output_tokens\":3}}");
    assert_string_equal(ev[8].data, "{\"type\":\"message_stop\"}");
    sse_free(ev, n);
    resp_free(&r);
}

static void test_anthropic_errors(void **state)
{
    static const char body[] = "{\"model\":\"c\",\"max_tokens\":8,\"messages\":"
                               "[{\"role\":\"user\",\"content\":\"hi\"}]}";
    const char *const wrong[] = { "x-api-key: nope", "anthropic-version: 2023-06-01", NULL };
    const char *const no_version[] = { "x-api-key: " KEY, NULL };
    resp_t r;
    json_t *j;
    char v[16];
    sse_t *ev;
    size_t n;

    request("/v1/messages", wrong, body, &r);
    assert_int_equal(r.status, 401);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"),
                                                          "type")), "authentication_error");
    assert_true(json_is_string(json_object_get(j, "request_id")));
    json_decref(j);
    resp_free(&r);

    request("/v1/messages", no_version, body, &r);
    assert_int_equal(r.status, 400);
    assert_non_null(strstr(r.body.p, "\"invalid_request_error\""));
    resp_free(&r);

    request("/v1/messages", anth_h,
            "{\"model\":\"c\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\",\"content\":"
            "\"[[fake status=529 retry_after=2]]\"}]}", &r);
    assert_int_equal(r.status, 529);
    assert_true(header(&r, "retry-after", v, sizeof v));
    assert_string_equal(v, "2");
    assert_non_null(strstr(r.body.p, "{\"type\":\"error\",\"error\":{\"type\":"
                                     "\"overloaded_error\""));
    resp_free(&r);

    /* mid-stream: an error event after two deltas, then the end */
    request("/v1/messages", anth_h,
            "{\"model\":\"c\",\"max_tokens\":8,\"stream\":true,\"messages\":[{\"role\":\"user\","
            "\"content\":\"[[fake fail_after=2]]\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.curl_code, 0);
    ev = sse_split(r.body.p, &n);
    assert_int_equal(n, 3 + 2 + 1);
    assert_string_equal(ev[5].event, "error");
    assert_string_equal(ev[5].data, "{\"type\":\"error\",\"error\":{\"type\":"
                                    "\"overloaded_error\",\"message\":\"Overloaded\"}}");
    assert_null(strstr(r.body.p, "message_stop"));
    sse_free(ev, n);
    resp_free(&r);
}

/* ---- Gemini ------------------------------------------------------------------------ */

static void test_gemini_generate(void **state)
{
    resp_t r;
    json_t *j, *cand, *um;

    request("/v1beta/models/gem-x:generateContent", gem_h,
            "{\"systemInstruction\":{\"parts\":[{\"text\":\"Be brief.\"}]},\"contents\":["
            "{\"role\":\"user\",\"parts\":[{\"text\":\"a b\"}]},{\"role\":\"model\",\"parts\":"
            "[{\"text\":\"c\"}]},{\"role\":\"user\",\"parts\":[{\"text\":"
            "\"[[fake text=\\\"Fine, thanks\\\"]]\"}]}]}", &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    cand = json_array_get(json_object_get(j, "candidates"), 0);
    assert_string_equal(json_string_value(json_object_get(cand, "finishReason")), "STOP");
    assert_string_equal(json_string_value(json_object_get(json_object_get(cand, "content"),
                                                          "role")), "model");
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
                            json_object_get(cand, "content"), "parts"), 0), "text")),
                        "Fine, thanks");
    um = json_object_get(j, "usageMetadata");
    /* 2 + 2 + 1 + 3 words */
    assert_int_equal(json_integer_value(json_object_get(um, "promptTokenCount")), 8);
    assert_int_equal(json_integer_value(json_object_get(um, "candidatesTokenCount")), 2);
    assert_int_equal(json_integer_value(json_object_get(um, "totalTokenCount")), 10);
    assert_string_equal(json_string_value(json_object_get(j, "modelVersion")), "gem-x");
    json_decref(j);
    resp_free(&r);
}

static void test_gemini_stream(void **state)
{
    resp_t r;
    sse_t *ev;
    size_t n;

    request("/v1beta/models/gem-x:streamGenerateContent?alt=sse", gem_h,
            "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":\"[[fake tokens=3]]\"}]}]}",
            &r);
    assert_int_equal(r.status, 200);
    assert_null(strstr(r.body.p, "[DONE]"));
    assert_null(strstr(r.body.p, "event:"));
    ev = sse_split(r.body.p, &n);
    assert_int_equal(n, 3);
    for (size_t i = 0; i < n; i++) {
        json_t *cand = json_array_get(json_object_get(ev[i].json, "candidates"), 0);
        bool last = i + 1 == n;
        char want[32];
        snprintf(want, sizeof want, "%sw%d", i ? " " : "", (int)i + 1);
        assert_string_equal(json_string_value(json_object_get(json_array_get(
                                json_object_get(json_object_get(cand, "content"), "parts"), 0),
                                "text")), want);
        assert_int_equal(json_object_get(cand, "finishReason") != NULL, last);
        assert_int_equal(json_object_get(ev[i].json, "usageMetadata") != NULL, last);
    }
    assert_non_null(strstr(ev[2].data, "\"usageMetadata\":{\"promptTokenCount\":2,"
                                       "\"candidatesTokenCount\":3,\"totalTokenCount\":5}"));
    sse_free(ev, n);
    resp_free(&r);

    /* fail_after: the connection is cut inside the chunked body */
    request("/v1beta/models/gem-x:streamGenerateContent?alt=sse", gem_h,
            "{\"contents\":[{\"parts\":[{\"text\":\"[[fake tokens=5 fail_after=2]]\"}]}]}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.curl_code, CURLE_PARTIAL_FILE);
    ev = sse_split(r.body.p, &n);
    assert_int_equal(n, 2);
    assert_null(strstr(r.body.p, "finishReason"));
    sse_free(ev, n);
    resp_free(&r);
}

static void test_gemini_errors(void **state)
{
    const char *const wrong[] = { "x-goog-api-key: nope", NULL };
    resp_t r;
    json_t *j, *e;
    char v[16];

    request("/v1beta/models/g:generateContent", wrong, "{\"contents\":[]}", &r);
    assert_int_equal(r.status, 400);
    j = body_json(&r);
    e = json_object_get(j, "error");
    assert_int_equal(json_integer_value(json_object_get(e, "code")), 400);
    assert_string_equal(json_string_value(json_object_get(e, "status")), "INVALID_ARGUMENT");
    assert_string_equal(json_string_value(json_object_get(json_array_get(
                            json_object_get(e, "details"), 0), "reason")), "API_KEY_INVALID");
    json_decref(j);
    resp_free(&r);

    /* the key as a query parameter also counts */
    request("/v1beta/models/g:generateContent?key=" KEY, NULL,
            "{\"contents\":[{\"parts\":[{\"text\":\"[[fake status=429 retry_after=4]]\"}]}]}",
            &r);
    assert_int_equal(r.status, 429);
    assert_true(header(&r, "retry-after", v, sizeof v));
    assert_string_equal(v, "4");
    j = body_json(&r);
    e = json_object_get(j, "error");
    assert_string_equal(json_string_value(json_object_get(e, "status")), "RESOURCE_EXHAUSTED");
    assert_string_equal(json_string_value(json_object_get(json_array_get(
                            json_object_get(e, "details"), 0), "retryDelay")), "4s");
    json_decref(j);
    resp_free(&r);
}

static void test_gemini_embeddings(void **state)
{
    resp_t r;
    json_t *j, *vals;
    float want[8];

    request("/v1beta/models/emb:embedContent", gem_h,
            "{\"content\":{\"parts\":[{\"text\":\"hello\"}]},\"outputDimensionality\":3}", &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    vals = json_object_get(json_object_get(j, "embedding"), "values");
    assert_int_equal(json_array_size(vals), 3);
    plxt_llm_embed_vector("hello", 3, want);
    assert_true((float)json_real_value(json_array_get(vals, 2)) == want[2]);
    json_decref(j);
    resp_free(&r);

    request("/v1beta/models/emb:batchEmbedContents", gem_h,
            "{\"requests\":[{\"model\":\"models/emb\",\"content\":{\"parts\":[{\"text\":\"a\"}]}},"
            "{\"model\":\"models/emb\",\"content\":{\"parts\":[{\"text\":\"b\"}]}}]}", &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_int_equal(json_array_size(json_object_get(j, "embeddings")), 2);
    vals = json_object_get(json_array_get(json_object_get(j, "embeddings"), 1), "values");
    assert_int_equal(json_array_size(vals), 8);
    plxt_llm_embed_vector("b", 8, want);
    assert_true((float)json_real_value(json_array_get(vals, 0)) == want[0]);
    json_decref(j);
    resp_free(&r);

    /* each inner model must be the path's */
    request("/v1beta/models/emb:batchEmbedContents", gem_h,
            "{\"requests\":[{\"model\":\"models/other\",\"content\":{\"parts\":"
            "[{\"text\":\"a\"}]}}]}", &r);
    assert_int_equal(r.status, 400);
    resp_free(&r);
}

/* ---- scripts, records, connections ----------------------------------------------- */

static void test_scripts_fifo_default_and_seen(void **state)
{
    plxt_llm_script_t a = { .text = "first" }, b = { .tokens = 2 }, d = { .text = "dflt" };
    plxt_llm_seen_t seen;
    resp_t r;
    static const char body[] = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                               "\"content\":\"%s\"}]}";
    char text[256];

    plxt_llm_set_default(llm, &d);
    plxt_llm_push(llm, &a);
    plxt_llm_push(llm, &b);
    const char *want[] = { "first", "w1 w2", "dflt", "dflt" };
    for (int i = 0; i < 4; i++) {
        snprintf(text, sizeof text, body, i == 3 ? "x" : "plain");
        request("/v1/chat/completions?trace=1", openai_h, text, &r);
        assert_int_equal(r.status, 200);
        char pat[64];
        snprintf(pat, sizeof pat, "\"content\":\"%s\"", want[i]);
        assert_non_null(strstr(r.body.p, pat));
        resp_free(&r);
    }
    /* a directive overrides fields of the script it applies to */
    plxt_llm_push(llm, &b);
    request("/v1/chat/completions", openai_h,
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"[[fake tokens=3]]\"}]}", &r);
    assert_non_null(strstr(r.body.p, "\"content\":\"w1 w2 w3\""));
    resp_free(&r);

    assert_int_equal(plxt_llm_count(llm), 5);
    assert_true(plxt_llm_seen(llm, 0, &seen));
    assert_string_equal(seen.method, "POST");
    assert_string_equal(seen.path, "/v1/chat/completions?trace=1");
    assert_string_equal(seen.api_key, KEY);
    assert_string_equal(seen.anthropic_version, "");
    assert_string_equal(json_string_value(json_object_get(seen.body, "model")), "m");
    plxt_llm_seen_free(&seen);
    assert_false(plxt_llm_seen(llm, 5, &seen));

    request("/v1/messages", anth_h, "{\"model\":\"c\",\"max_tokens\":1,\"messages\":[]}", &r);
    resp_free(&r);
    assert_true(plxt_llm_seen(llm, 5, &seen));
    assert_string_equal(seen.anthropic_version, "2023-06-01");
    assert_string_equal(seen.api_key, KEY);
    plxt_llm_seen_free(&seen);

    plxt_llm_reset(llm);
    assert_int_equal(plxt_llm_count(llm), 0);
    assert_false(plxt_llm_seen(llm, 0, &seen));
}

static void test_keep_alive_and_chunked_body(void **state)
{
    CURL *h = curl_easy_init();
    const char *const chunked[] = { "Authorization: Bearer " KEY,
                                    "Transfer-Encoding: chunked", NULL };
    resp_t r;

    request_on(h, "/v1/chat/completions", openai_h,
               "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
               "\"content\":\"a\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 1);
    resp_free(&r);
    request_on(h, "/v1/chat/completions", chunked,
               "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a b\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.connects, 0);   /* the same connection */
    assert_non_null(strstr(r.body.p, "\"prompt_tokens\":2"));
    resp_free(&r);
    curl_easy_cleanup(h);
}

static void test_first_ms_and_delay(void **state)
{
    double t0 = plxt_now_ms(), first;
    resp_t r;

    request("/v1/chat/completions", openai_h,
            "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":"
            "\"[[fake tokens=4 first_ms=300 delay_ms=100]]\"}]}", &r);
    assert_int_equal(r.status, 200);
    first = r.first_byte_s * 1000;
    /* the headers leave at once, then 300 ms, then 3 x 100 ms */
    assert_true(first < 250);
    assert_true(plxt_now_ms() - t0 >= 600);
    resp_free(&r);

    t0 = plxt_now_ms();
    request("/v1/chat/completions", openai_h,
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":"
            "\"[[fake first_ms=300]]\"}]}", &r);
    assert_int_equal(r.status, 200);
    assert_true(r.first_byte_s * 1000 >= 290);
    resp_free(&r);
}

/* a hung call on a multi handle, dropped once the fake has it in flight:
 * active and wait_active must see it go within a second */
static void hang_and_go_away(const char *path, const char *const *headers, const char *body)
{
    CURLM *m = curl_multi_init();
    CURL *h[2];
    resp_t r[2];
    struct curl_slist *list = NULL;
    char url[512];
    int running;

    snprintf(url, sizeof url, "%s%s", base, path);
    for (; headers && *headers; headers++)
        list = curl_slist_append(list, *headers);
    for (int i = 0; i < 2; i++) {
        memset(&r[i], 0, sizeof r[i]);
        h[i] = curl_easy_init();
        curl_easy_setopt(h[i], CURLOPT_URL, url);
        curl_easy_setopt(h[i], CURLOPT_HTTPHEADER, list);
        curl_easy_setopt(h[i], CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, collect);
        curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &r[i].body);
        curl_easy_setopt(h[i], CURLOPT_TIMEOUT_MS, 20000L);
        curl_multi_add_handle(m, h[i]);
    }
    double deadline = plxt_now_ms() + 5000;
    while (plxt_llm_active(llm) < 2 && plxt_now_ms() < deadline) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    assert_int_equal(plxt_llm_active(llm), 2);
    assert_int_equal(plxt_llm_peak(llm), 2);
    /* still there a while later: a hang is silent, not over */
    for (int i = 0; i < 10; i++) {
        curl_multi_perform(m, &running);
        curl_multi_poll(m, NULL, 0, 20, NULL);
    }
    assert_int_equal(running, 2);
    assert_int_equal(plxt_llm_active(llm), 2);

    /* the first client goes away */
    curl_multi_remove_handle(m, h[0]);
    curl_easy_cleanup(h[0]);
    double t0 = plxt_now_ms();
    assert_true(plxt_llm_wait_active(llm, 1, 1000));
    assert_true(plxt_now_ms() - t0 < 1000);
    assert_int_equal(plxt_llm_active(llm), 1);
    curl_multi_remove_handle(m, h[1]);
    curl_easy_cleanup(h[1]);
    assert_true(plxt_llm_wait_active(llm, 0, 1000));
    assert_int_equal(plxt_llm_peak(llm), 2);
    curl_multi_cleanup(m);
    curl_slist_free_all(list);
    free(r[0].body.p);
    free(r[1].body.p);
}

static void test_hang_and_active(void **state)
{
    const char *const h[] = { "Authorization: Bearer " KEY, "Content-Type: application/json",
                              NULL };
    const char *const ah[] = { "x-api-key: " KEY, "anthropic-version: 2023-06-01",
                               "Content-Type: application/json", NULL };

    /* the earlier tests' requests may still be finishing on the fake's
     * threads (a loaded machine): wait, bounded, for them to end */
    double settle = plxt_now_ms() + 5000;
    while (plxt_llm_active(llm) != 0 && plxt_now_ms() < settle)
        plxt_sleep_ms(10);
    assert_int_equal(plxt_llm_active(llm), 0);
    hang_and_go_away("/v1/chat/completions", h,
                     "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"[[fake hang=1]]\"}]}");
    plxt_llm_reset(llm);
    assert_int_equal(plxt_llm_peak(llm), 0);
    hang_and_go_away("/v1/messages", ah,
                     "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"[[fake hang=1]]\"}]}");
    plxt_llm_reset(llm);
    /* a slow stream, dropped mid-way, stops as promptly */
    hang_and_go_away("/v1/chat/completions", h,
                     "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"[[fake tokens=1000 delay_ms=400]]\"}]}");
}

static void test_unknown_path(void **state)
{
    resp_t r;

    request("/v2/nothing", openai_h, "{}", &r);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body.p, "\"error\""));
    resp_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_words_and_tokens),
        cmocka_unit_test_setup(test_openai_chat, each_setup),
        cmocka_unit_test_setup(test_openai_stream_with_usage, each_setup),
        cmocka_unit_test_setup(test_openai_stream_without_usage, each_setup),
        cmocka_unit_test_setup(test_openai_errors_and_key, each_setup),
        cmocka_unit_test_setup(test_openai_fail_after, each_setup),
        cmocka_unit_test_setup(test_openai_embeddings, each_setup),
        cmocka_unit_test_setup(test_openai_models, each_setup),
        cmocka_unit_test_setup(test_anthropic_message, each_setup),
        cmocka_unit_test_setup(test_anthropic_stream, each_setup),
        cmocka_unit_test_setup(test_anthropic_errors, each_setup),
        cmocka_unit_test_setup(test_gemini_generate, each_setup),
        cmocka_unit_test_setup(test_gemini_stream, each_setup),
        cmocka_unit_test_setup(test_gemini_errors, each_setup),
        cmocka_unit_test_setup(test_gemini_embeddings, each_setup),
        cmocka_unit_test_setup(test_scripts_fifo_default_and_seen, each_setup),
        cmocka_unit_test_setup(test_keep_alive_and_chunked_body, each_setup),
        cmocka_unit_test_setup(test_first_ms_and_delay, each_setup),
        cmocka_unit_test_setup(test_hang_and_active, each_setup),
        cmocka_unit_test_setup(test_unknown_path, each_setup),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
