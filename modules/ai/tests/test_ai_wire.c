/*
 * test_ai_wire.c - the upstream layer without a network: the SSE parser
 * (split at every byte, every line ending, comments, bounds), each
 * provider's request builder against golden JSON, each stream decoder fed
 * the wire text of the providers' API references (OpenAI Chat Completions,
 * Anthropic Messages, Google Gemini generateContent), whole replies, the
 * error tables, Retry-After, settings and token estimates.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "ai.h"
#include "api_stub.h"
#include "provider.h"
#include "sse_parse.h"

#include <strings.h>

#define FEEDS(s, lit) ai_sse_feed((s), (lit), strlen(lit))

/* ==== the SSE parser ======================================================= */

typedef struct got {
    char text[4096];          /* "event|data\n" per event, data's '\n' as '~' */
    int  n;
    int  stop_at;             /* return 7 from the stop_at-th event (1-based) */
} got_t;

static int got_event(void *ud, const char *event, const char *data, size_t len)
{
    got_t *g = ud;
    size_t o = strlen(g->text);

    assert_int_equal(strlen(data), len);
    snprintf(g->text + o, sizeof g->text - o, "%s|", event);
    o = strlen(g->text);
    for (size_t i = 0; i < len && o + 2 < sizeof g->text; i++)
        g->text[o++] = data[i] == '\n' ? '~' : data[i];
    g->text[o++] = '\n';
    g->text[o] = '\0';
    return ++g->n == g->stop_at ? 7 : 0;
}

/* feeds s in pieces cut at the offsets of cuts (ascending, < len) */
static int feed_cut(ai_sse_t *s, const char *text, size_t len,
                    const size_t *cuts, size_t ncuts)
{
    size_t at = 0;
    int rc;

    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if ((rc = ai_sse_feed(s, text + at, end - at)) != AI_SSE_OK)
            return rc;
        at = end;
    }
    return AI_SSE_OK;
}

static void parse_all(const char *text, size_t max, got_t *g)
{
    ai_sse_t s;

    memset(g, 0, sizeof *g);
    ai_sse_init(&s, max, got_event, g);
    assert_int_equal(ai_sse_feed(&s, text, strlen(text)), AI_SSE_OK);
    ai_sse_free(&s);
}

/* a stream with every feature: named events, comments, a multi-line data
 * field, no-space and two-space values, an id and a retry, an unknown
 * field, an event with no data (fires nothing), a data line with no colon */
#define MULTI_LF \
    "event: message_start\n" \
    "data: {\"a\":1}\n" \
    "\n" \
    ": keep-alive\n" \
    "\n" \
    "data:first\n" \
    "data:  second\n" \
    "id: 7\n" \
    "retry: 1000\n" \
    "\n" \
    "event: nothing\n" \
    "\n" \
    "data :ignored\n" \
    "foo: bar\n" \
    "data\n" \
    "data\n" \
    "\n" \
    "event: ping\n" \
    "data: {\"type\": \"ping\"}\n" \
    "\n"

#define MULTI_GOT \
    "message_start|{\"a\":1}\n" \
    "message|first~ second\n" \
    "message|~\n" \
    "ping|{\"type\": \"ping\"}\n"

/* the same stream with every "\n" replaced by eol */
static char *with_eol(const char *lf, const char *eol)
{
    size_t n = 0, el = strlen(eol);
    char *out = malloc(strlen(lf) * el + 1);

    for (const char *p = lf; *p; p++) {
        if (*p == '\n') {
            memcpy(out + n, eol, el);
            n += el;
        } else {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return out;
}

static void test_sse_every_split(void **state)
{
    static const char *const eols[] = { "\n", "\r\n", "\r" };
    (void)state;

    for (size_t e = 0; e < 3; e++) {
        char *text = with_eol(MULTI_LF, eols[e]);
        size_t len = strlen(text);

        /* one cut at every offset */
        for (size_t k = 0; k <= len; k++) {
            got_t g = { 0 };
            ai_sse_t s;
            ai_sse_init(&s, 1024, got_event, &g);
            assert_int_equal(feed_cut(&s, text, len, &k, k < len ? 1 : 0),
                             AI_SSE_OK);
            assert_string_equal(g.text, MULTI_GOT);
            assert_false(ai_sse_pending(&s));
            ai_sse_free(&s);
        }
        /* two cuts, at every pair of offsets */
        for (size_t a = 1; a < len; a += 3) {
            for (size_t b = a; b < len; b++) {
                size_t cuts[2] = { a, b };
                got_t g = { 0 };
                ai_sse_t s;
                ai_sse_init(&s, 1024, got_event, &g);
                assert_int_equal(feed_cut(&s, text, len, cuts, 2), AI_SSE_OK);
                assert_string_equal(g.text, MULTI_GOT);
                ai_sse_free(&s);
            }
        }
        /* one byte at a time */
        {
            got_t g = { 0 };
            ai_sse_t s;
            ai_sse_init(&s, 1024, got_event, &g);
            for (size_t i = 0; i < len; i++)
                assert_int_equal(ai_sse_feed(&s, text + i, 1), AI_SSE_OK);
            assert_string_equal(g.text, MULTI_GOT);
            ai_sse_free(&s);
        }
        free(text);
    }
}

static void test_sse_cr_lf_across_chunks(void **state)
{
    got_t g = { 0 };
    ai_sse_t s;
    (void)state;

    /* the CR ends one chunk, its LF starts the next: one line end, so the
     * two data lines make one event, not two */
    ai_sse_init(&s, 1024, got_event, &g);
    assert_int_equal(FEEDS(&s, "data: a\r"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "\ndata: b\r"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "\n"), AI_SSE_OK);
    assert_int_equal(g.n, 0);
    assert_int_equal(FEEDS(&s, "\r"), AI_SSE_OK);
    assert_string_equal(g.text, "message|a~b\n");
    /* a lone CR then a CR: a line end and a blank line */
    assert_int_equal(FEEDS(&s, "data: c\r"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "\r"), AI_SSE_OK);
    assert_string_equal(g.text, "message|a~b\nmessage|c\n");
    /* mixed endings in one chunk */
    assert_int_equal(FEEDS(&s, "data: d\r\ndata: e\rdata: f\n\r\n"),
                     AI_SSE_OK);
    assert_string_equal(g.text, "message|a~b\nmessage|c\nmessage|d~e~f\n");
    ai_sse_free(&s);
}

static void test_sse_edges(void **state)
{
    got_t g;
    ai_sse_t s;
    (void)state;

    /* a BOM at the start is skipped, even split; not later */
    memset(&g, 0, sizeof g);
    ai_sse_init(&s, 1024, got_event, &g);
    assert_int_equal(FEEDS(&s, "\xEF\xBB"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "\xBF" "data: x\n\n"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "\xEF\xBB\xBF" "data: y\n\n"), AI_SSE_OK);
    assert_string_equal(g.text, "message|x\n");
    ai_sse_free(&s);

    /* comments only: nothing */
    parse_all(": one\n:two\n\n: three\n\n", 1024, &g);
    assert_int_equal(g.n, 0);
    /* an empty value and the event type reset after a dispatch */
    parse_all("event: a\ndata:\n\ndata: b\n\n", 1024, &g);
    assert_string_equal(g.text, "a|\nmessage|b\n");
    /* "data: " keeps the one space it may: none, and a colon in the value */
    parse_all("data: {\"k\":\"v: w\"}\n\ndata:   three\n\n", 1024, &g);
    assert_string_equal(g.text, "message|{\"k\":\"v: w\"}\nmessage|  three\n");
    /* the last event without its blank line is never dispatched */
    memset(&g, 0, sizeof g);
    ai_sse_init(&s, 1024, got_event, &g);
    assert_int_equal(FEEDS(&s, "data: done\n\ndata: cut"), AI_SSE_OK);
    assert_string_equal(g.text, "message|done\n");
    assert_true(ai_sse_pending(&s));
    ai_sse_free(&s);
    /* the callback stops the parser; it stays stopped */
    memset(&g, 0, sizeof g);
    g.stop_at = 1;
    ai_sse_init(&s, 1024, got_event, &g);
    assert_int_equal(FEEDS(&s, "data: 1\n\ndata: 2\n\n"), 7);
    assert_int_equal(FEEDS(&s, "data: 3\n\n"), 7);
    assert_int_equal(g.n, 1);
    ai_sse_free(&s);
}

static void test_sse_bounds(void **state)
{
    got_t g = { 0 };
    ai_sse_t s;
    (void)state;

    /* a line at the bound passes, one byte more is refused */
    ai_sse_init(&s, 16, got_event, &g);
    assert_int_equal(FEEDS(&s, "data: 0123456789\n\n"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "data: 01234567890\n"), AI_SSE_TOO_LARGE);
    assert_int_equal(FEEDS(&s, "\n"), AI_SSE_TOO_LARGE);
    assert_string_equal(g.text, "message|0123456789\n");
    ai_sse_free(&s);

    /* short lines, but an event whose data passes the bound */
    memset(&g, 0, sizeof g);
    ai_sse_init(&s, 16, got_event, &g);
    assert_int_equal(FEEDS(&s, "data: 12345\ndata: 12345\n"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "data: 12345\n"), AI_SSE_TOO_LARGE);
    assert_int_equal(g.n, 0);
    ai_sse_free(&s);

    /* a line without an end, arriving in pieces, is refused too */
    memset(&g, 0, sizeof g);
    ai_sse_init(&s, 16, got_event, &g);
    assert_int_equal(FEEDS(&s, "data: 0123"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "456789"), AI_SSE_OK);
    assert_int_equal(FEEDS(&s, "x"), AI_SSE_TOO_LARGE);
    ai_sse_free(&s);
}

/* ==== request builders ====================================================== */

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);

    if (!j)
        fail_msg("bad test JSON at %d: %s: %s", e.position, e.text, text);
    return j;
}

static void assert_json(const char *got, const char *want)
{
    json_t *g = J(got), *w = J(want);

    if (!json_equal(g, w))
        fail_msg("JSON differs\n got: %s\nwant: %s", got, want);
    json_decref(g);
    json_decref(w);
}

static bool has_header(const ai_http_t *h, const char *line)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!strcmp(h->headers[i], line))
            return true;
    }
    return false;
}

static bool has_header_name(const ai_http_t *h, const char *name)
{
    for (size_t i = 0; i < h->nheaders; i++) {
        if (!strncasecmp(h->headers[i], name, strlen(name)))
            return true;
    }
    return false;
}

static ai_provider_t prov(const char *name, ai_kind_t kind, const char *url,
                          const char *key)
{
    return (ai_provider_t){ .name = (char *)name, .kind = kind,
                            .base_url = (char *)url, .api_key = (char *)key };
}

static void test_openai_request(void **state)
{
    ai_provider_t p = prov("openai", AI_KIND_OPENAI, "https://api.openai.com/v1",
                           "sk-test");
    json_t *msgs = J("[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                     "{\"role\":\"user\",\"content\":\"Hi\"}]");
    ai_chat_params_t q = { .messages = msgs, .max_tokens = 64,
                           .has_temperature = true, .temperature = 0.2 };
    ai_http_t h = { 0 };
    char msg[256] = "";
    (void)state;

    /* the reference's example, to the field */
    assert_int_equal(ai_wire_openai.chat_request(&p, "gpt-4o-mini", &q, true,
                                                 &h, msg, sizeof msg), AI_OK);
    assert_json(h.body, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":"
                "\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
                "\"content\":\"Hi\"}],\"stream\":true,\"stream_options\":"
                "{\"include_usage\":true},\"max_completion_tokens\":64,"
                "\"temperature\":0.2}");
    assert_string_equal(h.url, "https://api.openai.com/v1/chat/completions");
    assert_true(has_header(&h, "Authorization: Bearer sk-test"));
    assert_true(has_header(&h, "Content-Type: application/json"));
    ai_http_free(&h);

    /* not streamed: no stream fields */
    assert_int_equal(ai_wire_openai.chat_request(&p, "gpt-4o-mini", &q, false,
                                                 &h, msg, sizeof msg), AI_OK);
    assert_json(h.body, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":"
                "\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\","
                "\"content\":\"Hi\"}],\"max_completion_tokens\":64,"
                "\"temperature\":0.2}");
    ai_http_free(&h);
    json_decref(msgs);
}

static void test_openai_request_compat(void **state)
{
    char *strip[] = { "logprobs", "messages.name", "user", "top_p" };
    ai_provider_t p = prov("local", AI_KIND_OPENAI, "http://127.0.0.1:11434/v1",
                           NULL);
    json_t *msgs = J("[{\"role\":\"user\",\"name\":\"ann\",\"content\":\"Hi\"}]");
    json_t *stop = J("[\"a\",\"b\"]"), *rf = J("{\"type\":\"json_object\"}");
    json_t *tools = J("[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                      "\"parameters\":{\"type\":\"object\"}}}]");
    json_t *choice = json_string("auto");
    ai_chat_params_t q = { .messages = msgs, .max_tokens = 10, .stop = stop,
                           .response_format = rf, .tools = tools,
                           .tool_choice = choice, .has_top_p = true,
                           .top_p = 0.5, .user_tag = "u-1" };
    ai_http_t h = { 0 };
    char msg[256] = "";
    (void)state;

    p.legacy_max_tokens = true;
    p.strip = strip;
    p.nstrip = 4;
    assert_int_equal(ai_wire_openai.chat_request(&p, "llama3", &q, true, &h, msg,
                                                 sizeof msg), AI_OK);
    assert_json(h.body, "{\"model\":\"llama3\",\"messages\":[{\"role\":\"user\","
                "\"content\":\"Hi\"}],\"stream\":true,\"stream_options\":"
                "{\"include_usage\":true},\"max_tokens\":10,\"stop\":[\"a\","
                "\"b\"],\"response_format\":{\"type\":\"json_object\"},"
                "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\","
                "\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":"
                "\"auto\"}");
    assert_string_equal(h.url, "http://127.0.0.1:11434/v1/chat/completions");
    assert_false(has_header_name(&h, "Authorization"));
    /* the caller's messages are untouched */
    assert_non_null(json_object_get(json_array_get(msgs, 0), "name"));
    ai_http_free(&h);
    json_decref(msgs);
    json_decref(stop);
    json_decref(rf);
    json_decref(tools);
    json_decref(choice);
}

static void test_anthropic_request(void **state)
{
    ai_provider_t p = prov("claude", AI_KIND_ANTHROPIC, "https://api.anthropic.com",
                           "sk-ant-test");
    json_t *msgs = J("[{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"Use metric units.\"}]},"
        "{\"role\":\"user\",\"content\":\"Hi\"},"
        "{\"role\":\"user\",\"content\":\"Are you there?\"},"
        "{\"role\":\"assistant\",\"content\":\"Yes.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"What is this?\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64,iVBORw0KGgo=\"}}]}]");
    json_t *stop = json_string("\n\nHuman:");
    ai_chat_params_t q = { .messages = msgs, .max_tokens = 256,
                           .has_temperature = true, .temperature = 0.4,
                           .has_top_p = true, .top_p = 0.9, .stop = stop,
                           .user_tag = "user-1" };
    ai_http_t h = { 0 };
    char msg[256] = "";
    (void)state;

    assert_int_equal(ai_wire_anthropic.chat_request(&p, "claude-sonnet-4-5", &q,
                                                    true, &h, msg, sizeof msg),
                     AI_OK);
    /* system pulled out, same-role turns merged, temperature halved */
    assert_json(h.body, "{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":256,"
        "\"system\":\"Be brief.\\n\\nUse metric units.\",\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"},"
        "{\"type\":\"text\",\"text\":\"Are you there?\"}]},"
        "{\"role\":\"assistant\",\"content\":\"Yes.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
        "\"What is this?\"},{\"type\":\"image\",\"source\":{\"type\":\"base64\","
        "\"media_type\":\"image/png\",\"data\":\"iVBORw0KGgo=\"}}]}],"
        "\"stream\":true,\"temperature\":0.2,\"top_p\":0.9,"
        "\"stop_sequences\":[\"\\n\\nHuman:\"],\"metadata\":{\"user_id\":"
        "\"user-1\"}}");
    assert_string_equal(h.url, "https://api.anthropic.com/v1/messages");
    assert_true(has_header(&h, "x-api-key: sk-ant-test"));
    assert_true(has_header(&h, "anthropic-version: 2023-06-01"));
    assert_false(has_header_name(&h, "Authorization"));
    ai_http_free(&h);
    json_decref(msgs);
    json_decref(stop);
}

static void test_anthropic_request_edges(void **state)
{
    ai_provider_t p = prov("claude", AI_KIND_ANTHROPIC, "http://x", "k");
    json_t *msgs = J("[{\"role\":\"user\",\"content\":\"List three.\"}]");
    json_t *rf = J("{\"type\":\"json_object\"}");
    json_t *tools = J("[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]");
    ai_chat_params_t q = { .messages = msgs, .max_tokens = 5,
                           .response_format = rf, .has_temperature = true,
                           .temperature = 2 };
    ai_http_t h = { 0 };
    char msg[256] = "";
    json_t *body;
    (void)state;

    /* JSON asked for: an instruction in system; 2.0 becomes Anthropic's 1.0 */
    assert_int_equal(ai_wire_anthropic.chat_request(&p, "m", &q, false, &h, msg,
                                                    sizeof msg), AI_OK);
    body = J(h.body);
    assert_non_null(strstr(json_string_value(json_object_get(body, "system")),
                           "JSON"));
    assert_true(json_real_value(json_object_get(body, "temperature")) == 1.0);
    assert_null(json_object_get(body, "stream"));
    json_decref(body);
    ai_http_free(&h);

    /* tools, tool turns, system only, http images: clear refusals */
    q.tools = tools;
    assert_int_equal(ai_wire_anthropic.chat_request(&p, "m", &q, false, &h, msg,
                                                    sizeof msg), AI_ERR_CLIENT);
    assert_non_null(strstr(msg, "OpenAI-compatible"));
    ai_http_free(&h);
    q.tools = NULL;
    json_decref(msgs);
    q.messages = msgs = J("[{\"role\":\"system\",\"content\":\"x\"}]");
    assert_int_equal(ai_wire_anthropic.chat_request(&p, "m", &q, false, &h, msg,
                                                    sizeof msg), AI_ERR_CLIENT);
    ai_http_free(&h);
    json_decref(msgs);
    q.messages = msgs = J("[{\"role\":\"user\",\"content\":\"x\"},{\"role\":"
                          "\"tool\",\"tool_call_id\":\"c\",\"content\":\"y\"}]");
    assert_int_equal(ai_wire_anthropic.chat_request(&p, "m", &q, false, &h, msg,
                                                    sizeof msg), AI_ERR_CLIENT);
    ai_http_free(&h);
    json_decref(msgs);
    q.messages = msgs = J("[{\"role\":\"user\",\"content\":[{\"type\":"
                          "\"input_audio\",\"input_audio\":{}}]}]");
    assert_int_equal(ai_wire_anthropic.chat_request(&p, "m", &q, false, &h, msg,
                                                    sizeof msg), AI_ERR_CLIENT);
    assert_non_null(strstr(msg, "input_audio"));
    ai_http_free(&h);
    json_decref(msgs);
    json_decref(rf);
    json_decref(tools);
}

static void test_gemini_request(void **state)
{
    ai_provider_t p = prov("gemini", AI_KIND_GEMINI,
                           "https://generativelanguage.googleapis.com/v1beta",
                           "AIza-test");
    json_t *msgs = J("[{\"role\":\"system\",\"content\":\"Be brief.\"},"
                     "{\"role\":\"user\",\"content\":\"Hi\"},"
                     "{\"role\":\"assistant\",\"content\":\"Hello!\"},"
                     "{\"role\":\"user\",\"content\":\"How are you?\"}]");
    json_t *stop = json_string("END"), *rf = J("{\"type\":\"json_object\"}");
    ai_chat_params_t q = { .messages = msgs, .max_tokens = 256,
                           .has_temperature = true, .temperature = 0.2,
                           .has_top_p = true, .top_p = 0.9, .stop = stop,
                           .response_format = rf };
    ai_http_t h = { 0 };
    char msg[256] = "";
    (void)state;

    assert_int_equal(ai_wire_gemini.chat_request(&p, "gemini-2.5-flash", &q, true,
                                                 &h, msg, sizeof msg), AI_OK);
    assert_json(h.body, "{\"systemInstruction\":{\"parts\":[{\"text\":"
        "\"Be brief.\"}]},\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":"
        "\"Hi\"}]},{\"role\":\"model\",\"parts\":[{\"text\":\"Hello!\"}]},"
        "{\"role\":\"user\",\"parts\":[{\"text\":\"How are you?\"}]}],"
        "\"generationConfig\":{\"maxOutputTokens\":256,\"temperature\":0.2,"
        "\"topP\":0.9,\"stopSequences\":[\"END\"],\"responseMimeType\":"
        "\"application/json\"}}");
    assert_string_equal(h.url, "https://generativelanguage.googleapis.com/v1beta"
                        "/models/gemini-2.5-flash:streamGenerateContent?alt=sse");
    assert_true(has_header(&h, "x-goog-api-key: AIza-test"));
    assert_null(strstr(h.url, "key="));
    ai_http_free(&h);

    /* whole; "models/" accepted; odd characters escaped */
    assert_int_equal(ai_wire_gemini.chat_request(&p, "models/gemini-2.5-flash",
                                                 &q, false, &h, msg, sizeof msg),
                     AI_OK);
    assert_string_equal(h.url, "https://generativelanguage.googleapis.com/v1beta"
                        "/models/gemini-2.5-flash:generateContent");
    ai_http_free(&h);
    assert_int_equal(ai_wire_gemini.chat_request(&p, "a b/c:d", &q, false, &h,
                                                 msg, sizeof msg), AI_OK);
    assert_non_null(strstr(h.url, "/models/a%20b%2Fc%3Ad:generateContent"));
    ai_http_free(&h);

    /* an http image cannot go to Gemini; a data: one goes as inlineData */
    json_decref(msgs);
    q.messages = msgs = J("[{\"role\":\"user\",\"content\":[{\"type\":"
        "\"image_url\",\"image_url\":{\"url\":\"https://x/y.png\"}}]}]");
    assert_int_equal(ai_wire_gemini.chat_request(&p, "m", &q, false, &h, msg,
                                                 sizeof msg), AI_ERR_CLIENT);
    ai_http_free(&h);
    json_decref(msgs);
    q.messages = msgs = J("[{\"role\":\"user\",\"content\":[{\"type\":\"text\","
        "\"text\":\"see\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/jpeg;base64,AAAA\"}}]}]");
    q.stop = NULL;
    q.response_format = NULL;
    q.has_top_p = q.has_temperature = false;
    assert_int_equal(ai_wire_gemini.chat_request(&p, "m", &q, false, &h, msg,
                                                 sizeof msg), AI_OK);
    assert_json(h.body, "{\"contents\":[{\"role\":\"user\",\"parts\":[{\"text\":"
        "\"see\"},{\"inlineData\":{\"mimeType\":\"image/jpeg\",\"data\":"
        "\"AAAA\"}}]}],\"generationConfig\":{\"maxOutputTokens\":256}}");
    ai_http_free(&h);
    json_decref(msgs);
    json_decref(stop);
    json_decref(rf);
}

static void test_embed_requests(void **state)
{
    ai_provider_t oa = prov("oa", AI_KIND_OPENAI, "http://h/v1", "k");
    ai_provider_t ge = prov("ge", AI_KIND_GEMINI, "http://h/v1beta", "k");
    ai_provider_t an = prov("an", AI_KIND_ANTHROPIC, "http://h", "k");
    const char *in[] = { "alpha", "beta" };
    ai_http_t h = { 0 };
    char msg[256] = "";
    (void)state;

    assert_int_equal(ai_wire_openai.embed_request(&oa, "text-embedding-3-small",
                                                  in, 2, 0, &h, msg, sizeof msg),
                     AI_OK);
    assert_json(h.body, "{\"model\":\"text-embedding-3-small\",\"input\":"
                "[\"alpha\",\"beta\"],\"encoding_format\":\"float\"}");
    assert_string_equal(h.url, "http://h/v1/embeddings");
    ai_http_free(&h);
    assert_int_equal(ai_wire_gemini.embed_request(&ge, "gemini-embedding-001",
                                                  in, 2, 256, &h, msg, sizeof msg),
                     AI_OK);
    assert_json(h.body, "{\"requests\":[{\"model\":\"models/gemini-embedding-001\","
        "\"content\":{\"parts\":[{\"text\":\"alpha\"}]},\"outputDimensionality\":"
        "256},{\"model\":\"models/gemini-embedding-001\",\"content\":{\"parts\":"
        "[{\"text\":\"beta\"}]},\"outputDimensionality\":256}]}");
    assert_string_equal(h.url, "http://h/v1beta/models/gemini-embedding-001"
                        ":batchEmbedContents");
    ai_http_free(&h);
    assert_int_equal(ai_wire_anthropic.embed_request(&an, "x", in, 2, 0, &h, msg,
                                                     sizeof msg), AI_ERR_CLIENT);
    assert_non_null(strstr(msg, "no embeddings API"));
    ai_http_free(&h);
}

/* ==== decoders ============================================================== */

typedef struct run {
    const ai_wire_ops_t *ops;
    ai_provider_t p;
    ai_result_t res;
    ai_decode_t dec;
    ai_err_t err;
    char deltas[4096];        /* the pieces, '|' after each */
} run_t;

static ai_err_t run_text(void *ud, const char *text, size_t len)
{
    run_t *r = ud;
    size_t o = strlen(r->deltas);

    snprintf(r->deltas + o, sizeof r->deltas - o, "%.*s|", (int)len, text);
    return AI_OK;
}

static int run_event(void *ud, const char *event, const char *data, size_t len)
{
    run_t *r = ud;

    r->err = r->ops->stream_event(&r->dec, event, data, len);
    return r->err != AI_OK;
}

static void run_init(run_t *r, const ai_wire_ops_t *ops, ai_kind_t kind)
{
    memset(r, 0, sizeof *r);
    r->ops = ops;
    r->p = prov("p", kind, "http://x", "secret-key-123");
    r->dec = (ai_decode_t){ .p = &r->p, .res = &r->res, .max_text = 1 << 20,
                            .on_text = run_text, .ud = r };
}

/* the wire text through the parser in chunks of `chunk` bytes */
static void run_stream(run_t *r, const char *wire, size_t chunk)
{
    ai_sse_t s;
    size_t len = strlen(wire);

    ai_sse_init(&s, 1 << 20, run_event, r);
    for (size_t at = 0; at < len && r->err == AI_OK; at += chunk)
        ai_sse_feed(&s, wire + at, at + chunk > len ? len - at : chunk);
    ai_sse_free(&s);
}

static void run_free(run_t *r)
{
    ai_result_clear(&r->res);
}

/* reference section 1.3, as sent */
static const char OPENAI_STREAM[] =
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n"
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":1,\"total_tokens\":10}}\n\n"
    "data: [DONE]\n\n";

static void test_openai_stream(void **state)
{
    run_t r;
    (void)state;

    for (size_t chunk = 1; chunk < sizeof OPENAI_STREAM; chunk += 7) {
        run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
        run_stream(&r, OPENAI_STREAM, chunk);
        assert_int_equal(r.err, AI_OK);
        assert_true(r.dec.done);
        assert_string_equal(r.res.text, "Hello");
        assert_string_equal(r.deltas, "Hello|");
        assert_string_equal(r.res.finish_reason, "stop");
        assert_true(r.res.usage.known);
        assert_int_equal(r.res.usage.prompt_tokens, 9);
        assert_int_equal(r.res.usage.completion_tokens, 1);
        assert_string_equal(r.res.upstream_id, "chatcmpl-1");
        run_free(&r);
    }
}

static void test_openai_stream_compat(void **state)
{
    run_t r;
    (void)state;

    /* vLLM's choices:null usage chunk, llama.cpp's timings, usage on two
     * chunks (the last non-null wins, a later null does not erase it),
     * choices missing altogether, obfuscation, an unknown finish reason */
    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    run_stream(&r,
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"A\"},\"finish_reason\":null}],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1},\"timings\":{\"n\":1}}\n\n"
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"B\",\"reasoning\":\"hm\"},\"finish_reason\":\"eos\"}],\"obfuscation\":\"zz\"}\n\n"
        "data: {\"id\":\"x\",\"choices\":null,\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2}}\n\n"
        "data: {\"id\":\"x\",\"usage\":null}\n\n"
        "data: [DONE]\n\n", 5);
    assert_int_equal(r.err, AI_OK);
    assert_true(r.dec.done);
    assert_string_equal(r.res.text, "AB");
    assert_string_equal(r.res.finish_reason, "stop");
    assert_int_equal(r.res.usage.prompt_tokens, 3);
    assert_int_equal(r.res.usage.completion_tokens, 2);
    run_free(&r);

    /* an error chunk mid-stream: AI_ERR_STREAM, the text so far kept */
    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    run_stream(&r,
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Par\"}}]}\n\n"
        "data: {\"error\":{\"message\":\"The server is overloaded\",\"type\":\"server_error\",\"param\":null,\"code\":\"server_is_overloaded\"}}\n\n",
        64);
    assert_int_equal(r.err, AI_ERR_STREAM);
    assert_int_equal(r.res.err, AI_ERR_STREAM);
    assert_false(r.dec.done);
    assert_string_equal(r.res.text, "Par");
    assert_non_null(strstr(r.res.message, "server_error"));
    assert_non_null(strstr(r.res.message, "overloaded"));
    run_free(&r);

    /* a stream cut before [DONE] is not done */
    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    run_stream(&r, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"A\"},\"finish_reason\":\"length\"}]}\n\n", 9);
    assert_int_equal(r.err, AI_OK);
    assert_false(r.dec.done);
    assert_string_equal(r.res.finish_reason, "length");
    run_free(&r);

    /* a chunk that is not JSON */
    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    run_stream(&r, "data: {\"choices\":[\n\n", 100);
    assert_int_equal(r.err, AI_ERR_PROTOCOL);
    run_free(&r);
}

static void test_openai_stream_tools(void **state)
{
    run_t r;
    json_t *want;
    (void)state;

    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    run_stream(&r,
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"now\",\"arguments\":\"{}\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Oslo\\\"}\"}}]}}]}\n\n"
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n"
        "data: [DONE]\n\n", 11);
    assert_int_equal(r.err, AI_OK);
    assert_true(r.dec.done);
    assert_true(r.dec.progress);
    assert_null(r.res.text);
    assert_string_equal(r.res.finish_reason, "tool_calls");
    want = J("[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":"
             "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Oslo\\\"}\"}},"
             "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":"
             "\"now\",\"arguments\":\"{}\"}}]");
    assert_true(json_equal(r.res.tool_calls, want));
    json_decref(want);
    run_free(&r);
}

/* reference section 3.4, as sent */
static const char ANTHROPIC_STREAM[] =
    "event: message_start\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-sonnet-4-5\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,\"output_tokens\":1}}}\n\n"
    "event: content_block_start\n"
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"
    "event: ping\n"
    "data: {\"type\": \"ping\"}\n\n"
    "event: content_block_delta\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n"
    "event: content_block_stop\n"
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
    "event: message_delta\n"
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}\n\n"
    "event: message_stop\n"
    "data: {\"type\":\"message_stop\"}\n\n";

static void test_anthropic_stream(void **state)
{
    run_t r;
    (void)state;

    for (size_t chunk = 1; chunk < sizeof ANTHROPIC_STREAM; chunk += 5) {
        run_init(&r, &ai_wire_anthropic, AI_KIND_ANTHROPIC);
        run_stream(&r, ANTHROPIC_STREAM, chunk);
        assert_int_equal(r.err, AI_OK);
        assert_true(r.dec.done);
        assert_string_equal(r.res.text, "Hello");
        assert_string_equal(r.res.finish_reason, "stop");
        assert_int_equal(r.res.usage.prompt_tokens, 25);
        assert_int_equal(r.res.usage.completion_tokens, 15);
        assert_true(r.res.usage.known);
        assert_string_equal(r.res.upstream_id, "msg_1");
        run_free(&r);
    }
}

static void test_anthropic_stream_edges(void **state)
{
    run_t r;
    (void)state;

    /* an error event after some text: AI_ERR_STREAM with its type */
    run_init(&r, &ai_wire_anthropic, AI_KIND_ANTHROPIC);
    run_stream(&r,
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":4,\"output_tokens\":1}}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hal\"}}\n\n"
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        13);
    assert_int_equal(r.err, AI_ERR_STREAM);
    assert_string_equal(r.res.text, "Hal");
    /* message_start's output_tokens is a placeholder, not a count */
    assert_false(r.res.usage.known);
    assert_int_equal(r.res.usage.prompt_tokens, 4);
    assert_non_null(strstr(r.res.message, "overloaded_error"));
    run_free(&r);

    /* max_tokens, cumulative output, cache tokens counted as prompt, a
     * thinking delta ignored, unknown events ignored */
    run_init(&r, &ai_wire_anthropic, AI_KIND_ANTHROPIC);
    run_stream(&r,
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":4,\"cache_read_input_tokens\":10,\"cache_creation_input_tokens\":1,\"output_tokens\":1}}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}\n\n"
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":null},\"usage\":{\"output_tokens\":3}}\n\n"
        "event: brand_new\ndata: {\"type\":\"brand_new\"}\n\n"
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"max_tokens\"},\"usage\":{\"output_tokens\":7}}\n\n"
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n", 64);
    assert_int_equal(r.err, AI_OK);
    assert_string_equal(r.res.text, "a");
    assert_string_equal(r.res.finish_reason, "length");
    assert_int_equal(r.res.usage.prompt_tokens, 15);
    assert_int_equal(r.res.usage.completion_tokens, 7);
    run_free(&r);

    /* no message_stop: not done */
    run_init(&r, &ai_wire_anthropic, AI_KIND_ANTHROPIC);
    run_stream(&r, "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"delta\":{\"type\":\"text_delta\",\"text\":\"a\"}}\n\n", 64);
    assert_false(r.dec.done);
    run_free(&r);

    /* refusal */
    run_init(&r, &ai_wire_anthropic, AI_KIND_ANTHROPIC);
    run_stream(&r, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\"},\"usage\":{\"output_tokens\":0}}\n\n", 64);
    assert_string_equal(r.res.finish_reason, "content_filter");
    run_free(&r);
}

static const char GEMINI_STREAM[] =
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"Hel\"}]},\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":1,\"totalTokenCount\":6},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-1\"}\r\n\r\n"
    "data: {\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":\"pondering\",\"thought\":true},{\"text\":\"lo!\"}]},\"finishReason\":\"STOP\",\"index\":0}],\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2,\"thoughtsTokenCount\":3,\"totalTokenCount\":10},\"modelVersion\":\"gemini-2.5-flash\",\"responseId\":\"r-1\"}\r\n\r\n";

static void test_gemini_stream(void **state)
{
    run_t r;
    (void)state;

    for (size_t chunk = 1; chunk < sizeof GEMINI_STREAM; chunk += 6) {
        run_init(&r, &ai_wire_gemini, AI_KIND_GEMINI);
        run_stream(&r, GEMINI_STREAM, chunk);
        assert_int_equal(r.err, AI_OK);
        assert_true(r.dec.done);
        assert_string_equal(r.res.text, "Hello!");
        assert_string_equal(r.deltas, "Hel|lo!|");
        assert_string_equal(r.res.finish_reason, "stop");
        assert_int_equal(r.res.usage.prompt_tokens, 5);
        assert_int_equal(r.res.usage.completion_tokens, 5);
        assert_string_equal(r.res.upstream_id, "r-1");
        run_free(&r);
    }
}

static void test_gemini_stream_edges(void **state)
{
    static const struct { const char *reason, *want; } fr[] = {
        { "MAX_TOKENS", "length" }, { "SAFETY", "content_filter" },
        { "RECITATION", "content_filter" }, { "PROHIBITED_CONTENT", "content_filter" },
        { "SPII", "content_filter" }, { "BLOCKLIST", "content_filter" },
        { "OTHER", "stop" }, { "SOMETHING_NEW", "stop" },
    };
    char wire[512];
    run_t r;
    (void)state;

    for (size_t i = 0; i < sizeof fr / sizeof fr[0]; i++) {
        run_init(&r, &ai_wire_gemini, AI_KIND_GEMINI);
        snprintf(wire, sizeof wire, "data: {\"candidates\":[{\"content\":{\"parts\":"
                 "[{\"text\":\"x\"}]},\"finishReason\":\"%s\"}]}\n\n", fr[i].reason);
        run_stream(&r, wire, 17);
        assert_true(r.dec.done);
        assert_string_equal(r.res.finish_reason, fr[i].want);
        run_free(&r);
    }
    /* a prompt blocked outright: no candidates, content_filter, done */
    run_init(&r, &ai_wire_gemini, AI_KIND_GEMINI);
    run_stream(&r, "data: {\"promptFeedback\":{\"blockReason\":\"SAFETY\"},"
               "\"usageMetadata\":{\"promptTokenCount\":8}}\n\n", 10);
    assert_int_equal(r.err, AI_OK);
    assert_true(r.dec.done);
    assert_string_equal(r.res.finish_reason, "content_filter");
    assert_int_equal(r.res.usage.prompt_tokens, 8);
    assert_null(r.res.text);
    run_free(&r);
    /* no finishReason: not done (a cut stream) */
    run_init(&r, &ai_wire_gemini, AI_KIND_GEMINI);
    run_stream(&r, "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":"
               "\"x\"}]}}]}\n\n", 10);
    assert_int_equal(r.err, AI_OK);
    assert_false(r.dec.done);
    run_free(&r);
    /* an error object in the stream */
    run_init(&r, &ai_wire_gemini, AI_KIND_GEMINI);
    run_stream(&r, "data: {\"error\":{\"code\":503,\"message\":\"The model is "
               "overloaded.\",\"status\":\"UNAVAILABLE\"}}\n\n", 10);
    assert_int_equal(r.err, AI_ERR_STREAM);
    assert_non_null(strstr(r.res.message, "UNAVAILABLE"));
    run_free(&r);
}

static void whole(run_t *r, const char *body)
{
    r->err = r->ops->chat_response(&r->dec, body, strlen(body));
}

static void test_whole_replies(void **state)
{
    run_t r;
    (void)state;

    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    whole(&r, "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion\",\"created\":"
          "1741570283,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,"
          "\"message\":{\"role\":\"assistant\",\"content\":\"Hello!\",\"refusal\":"
          "null},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":"
          "{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11}}");
    assert_int_equal(r.err, AI_OK);
    assert_string_equal(r.res.text, "Hello!");
    assert_string_equal(r.res.finish_reason, "stop");
    assert_int_equal(r.res.usage.prompt_tokens, 9);
    assert_int_equal(r.res.usage.completion_tokens, 2);
    assert_string_equal(r.res.upstream_id, "chatcmpl-123");
    run_free(&r);

    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    whole(&r, "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
          "\"content\":null,\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\","
          "\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":"
          "\"tool_calls\"}]}");
    assert_int_equal(r.err, AI_OK);
    assert_null(r.res.text);
    assert_int_equal(json_array_size(r.res.tool_calls), 1);
    assert_string_equal(r.res.finish_reason, "tool_calls");
    assert_false(r.res.usage.known);
    run_free(&r);

    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    whole(&r, "{\"object\":\"list\"}");
    assert_int_equal(r.err, AI_ERR_PROTOCOL);
    run_free(&r);
    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    whole(&r, "<html>");
    assert_int_equal(r.err, AI_ERR_PROTOCOL);
    run_free(&r);

    run_init(&r, &ai_wire_anthropic, AI_KIND_ANTHROPIC);
    whole(&r, "{\"id\":\"msg_013Zva2CMHLNnXjNJJKqJ2EF\",\"type\":\"message\",\"role\":"
          "\"assistant\",\"model\":\"claude-sonnet-4-5\",\"content\":[{\"type\":"
          "\"text\",\"text\":\"Hello!\"}],\"stop_reason\":\"end_turn\","
          "\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,"
          "\"output_tokens\":6}}");
    assert_int_equal(r.err, AI_OK);
    assert_string_equal(r.res.text, "Hello!");
    assert_string_equal(r.res.finish_reason, "stop");
    assert_int_equal(r.res.usage.prompt_tokens, 12);
    assert_int_equal(r.res.usage.completion_tokens, 6);
    assert_string_equal(r.res.upstream_id, "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    run_free(&r);

    run_init(&r, &ai_wire_gemini, AI_KIND_GEMINI);
    whole(&r, "{\"candidates\":[{\"content\":{\"role\":\"model\",\"parts\":[{\"text\":"
          "\"Hello!\"}]},\"finishReason\":\"STOP\",\"index\":0,\"safetyRatings\":[]}],"
          "\"usageMetadata\":{\"promptTokenCount\":5,\"candidatesTokenCount\":2,"
          "\"totalTokenCount\":7},\"modelVersion\":\"gemini-2.5-flash\"}");
    assert_int_equal(r.err, AI_OK);
    assert_string_equal(r.res.text, "Hello!");
    assert_string_equal(r.res.finish_reason, "stop");
    assert_int_equal(r.res.usage.prompt_tokens, 5);
    assert_int_equal(r.res.usage.completion_tokens, 2);
    run_free(&r);

    run_init(&r, &ai_wire_gemini, AI_KIND_GEMINI);
    whole(&r, "{\"promptFeedback\":{\"blockReason\":\"OTHER\"}}");
    assert_int_equal(r.err, AI_OK);
    assert_string_equal(r.res.finish_reason, "content_filter");
    run_free(&r);

    /* the text bound holds for whole replies too */
    run_init(&r, &ai_wire_openai, AI_KIND_OPENAI);
    r.dec.max_text = 3;
    whole(&r, "{\"choices\":[{\"message\":{\"content\":\"four\"}}]}");
    assert_int_equal(r.err, AI_ERR_TOO_LARGE);
    run_free(&r);
}

static void test_embed_responses(void **state)
{
    ai_provider_t oa = prov("oa", AI_KIND_OPENAI, "http://h", NULL);
    ai_provider_t ge = prov("ge", AI_KIND_GEMINI, "http://h", NULL);
    ai_embed_result_t res = { 0 };
    const char *b;
    (void)state;

    /* out of order by index, as the API allows */
    b = "{\"object\":\"list\",\"model\":\"m\",\"data\":[{\"object\":\"embedding\","
        "\"index\":1,\"embedding\":[0.5,-1]},{\"object\":\"embedding\",\"index\":0,"
        "\"embedding\":[0.0023,-0.0093]}],\"usage\":{\"prompt_tokens\":8,"
        "\"total_tokens\":8}}";
    assert_int_equal(ai_wire_openai.embed_response(&oa, b, strlen(b), 2, &res),
                     AI_OK);
    assert_int_equal(res.n, 2);
    assert_int_equal(res.dim, 2);
    assert_true(res.vectors[0] == 0.0023f && res.vectors[1] == -0.0093f);
    assert_true(res.vectors[2] == 0.5f && res.vectors[3] == -1.0f);
    assert_int_equal(res.usage.prompt_tokens, 8);
    assert_true(res.usage.known);
    ai_embed_result_clear(&res);

    b = "{\"data\":[{\"index\":0,\"embedding\":[1,2]},{\"index\":1,"
        "\"embedding\":[1]}]}";
    assert_int_equal(ai_wire_openai.embed_response(&oa, b, strlen(b), 2, &res),
                     AI_ERR_PROTOCOL);
    ai_embed_result_clear(&res);
    b = "{\"data\":[{\"index\":0,\"embedding\":\"AACAPw==\"}]}";
    assert_int_equal(ai_wire_openai.embed_response(&oa, b, strlen(b), 1, &res),
                     AI_ERR_PROTOCOL);
    ai_embed_result_clear(&res);

    b = "{\"embeddings\":[{\"values\":[0.01,0.02,0.03]},{\"values\":[1,2,3]}]}";
    assert_int_equal(ai_wire_gemini.embed_response(&ge, b, strlen(b), 2, &res),
                     AI_OK);
    assert_int_equal(res.dim, 3);
    assert_true(res.vectors[5] == 3.0f);
    assert_false(res.usage.known);
    ai_embed_result_clear(&res);
    assert_int_equal(ai_wire_gemini.embed_response(&ge, b, strlen(b), 3, &res),
                     AI_ERR_PROTOCOL);
    ai_embed_result_clear(&res);
}

/* ==== errors ================================================================ */

typedef struct err_case {
    const ai_wire_ops_t *ops;
    int status;
    const char *body;
    ai_err_t err;
    bool retryable;
    long retry_after_ms;
    const char *says;         /* a piece of the message, or NULL */
} err_case_t;

static void test_error_tables(void **state)
{
    static const err_case_t cases[] = {
        /* OpenAI (reference 1.4) */
        { &ai_wire_openai, 400, "{\"error\":{\"message\":\"bad messages\",\"type\":\"invalid_request_error\",\"param\":\"messages\",\"code\":null}}",
          AI_ERR_CLIENT, false, -1, "invalid_request_error: bad messages" },
        { &ai_wire_openai, 401, "{\"error\":{\"message\":\"Incorrect API key provided: secret-key-123.\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}",
          AI_ERR_AUTH, false, -1, "refused the API key" },
        { &ai_wire_openai, 403, "{\"error\":{\"message\":\"Country not supported\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"unsupported_country_region_territory\"}}",
          AI_ERR_AUTH, false, -1, NULL },
        { &ai_wire_openai, 404, "{\"error\":{\"message\":\"The model does not exist\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":\"model_not_found\"}}",
          AI_ERR_CLIENT, false, -1, "model_not_found" },
        { &ai_wire_openai, 409, "{\"error\":{\"message\":\"conflict\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}",
          AI_ERR_RATE, true, -1, NULL },
        { &ai_wire_openai, 422, "{}", AI_ERR_CLIENT, false, -1, "HTTP 422" },
        { &ai_wire_openai, 429, "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"rate_limit_error\",\"param\":null,\"code\":\"rate_limit_exceeded\"}}",
          AI_ERR_RATE, true, -1, "Rate limit reached" },
        { &ai_wire_openai, 429, "{\"error\":{\"message\":\"You exceeded your current quota\",\"type\":\"insufficient_quota\",\"param\":null,\"code\":\"insufficient_quota\"}}",
          AI_ERR_QUOTA, false, -1, "insufficient_quota" },
        { &ai_wire_openai, 500, "{\"error\":{\"message\":\"The server had an error\",\"type\":\"server_error\",\"param\":null,\"code\":null}}",
          AI_ERR_SERVER, true, -1, "server_error" },
        { &ai_wire_openai, 503, "{\"error\":{\"message\":\"overloaded\",\"type\":\"service_unavailable_error\",\"param\":null,\"code\":\"server_is_overloaded\"}}",
          AI_ERR_SERVER, true, -1, "server_is_overloaded" },
        { &ai_wire_openai, 502, "<html><body>Bad gateway</body></html>",
          AI_ERR_SERVER, true, -1, "Bad gateway" },
        { &ai_wire_openai, 504, "", AI_ERR_SERVER, true, -1, "HTTP 504" },
        /* vLLM: the flat shape, and the enveloped one with an integer code */
        { &ai_wire_openai, 400, "{\"object\":\"error\",\"message\":\"max_tokens is too large\",\"type\":\"BadRequestError\",\"param\":null,\"code\":400}",
          AI_ERR_CLIENT, false, -1, "BadRequestError: max_tokens is too large" },
        { &ai_wire_openai, 404, "{\"error\":{\"message\":\"The model `x` does not exist.\",\"type\":\"NotFoundError\",\"param\":null,\"code\":404}}",
          AI_ERR_CLIENT, false, -1, "NotFoundError: The model" },
        /* Ollama */
        { &ai_wire_openai, 404, "{\"error\":{\"message\":\"model \\\"x\\\" not found, try pulling it first\",\"type\":\"not_found_error\",\"param\":null,\"code\":null}}",
          AI_ERR_CLIENT, false, -1, "not_found_error" },
        /* Anthropic (reference 3.5) */
        { &ai_wire_anthropic, 400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"max_tokens: field required\"},\"request_id\":\"req_1\"}",
          AI_ERR_CLIENT, false, -1, "invalid_request_error: max_tokens" },
        { &ai_wire_anthropic, 401, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}",
          AI_ERR_AUTH, false, -1, "authentication_error" },
        { &ai_wire_anthropic, 402, "{\"type\":\"error\",\"error\":{\"type\":\"billing_error\",\"message\":\"billing\"}}",
          AI_ERR_QUOTA, false, -1, NULL },
        { &ai_wire_anthropic, 403, "{\"type\":\"error\",\"error\":{\"type\":\"permission_error\",\"message\":\"no\"}}",
          AI_ERR_AUTH, false, -1, NULL },
        { &ai_wire_anthropic, 404, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":\"model: x\"}}",
          AI_ERR_CLIENT, false, -1, "not_found_error" },
        { &ai_wire_anthropic, 409, "{\"type\":\"error\",\"error\":{\"type\":\"conflict_error\",\"message\":\"c\"}}",
          AI_ERR_RATE, true, -1, NULL },
        { &ai_wire_anthropic, 413, "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\",\"message\":\"big\"}}",
          AI_ERR_CLIENT, false, -1, "request_too_large" },
        { &ai_wire_anthropic, 429, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow down\"}}",
          AI_ERR_RATE, true, -1, "rate_limit_error" },
        { &ai_wire_anthropic, 429, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"cap\",\"details\":{\"error_code\":\"enforced_spend_limit_reached\"}}}",
          AI_ERR_QUOTA, false, -1, NULL },
        { &ai_wire_anthropic, 500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"oops\"}}",
          AI_ERR_SERVER, true, -1, "api_error" },
        { &ai_wire_anthropic, 504, "{\"type\":\"error\",\"error\":{\"type\":\"timeout_error\",\"message\":\"t\"}}",
          AI_ERR_SERVER, true, -1, NULL },
        { &ai_wire_anthropic, 529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
          AI_ERR_SERVER, true, -1, "HTTP 529 overloaded_error: Overloaded" },
        /* Gemini (reference 4) */
        { &ai_wire_gemini, 400, "{\"error\":{\"code\":400,\"message\":\"API key not valid. Please pass a valid API key.\",\"status\":\"INVALID_ARGUMENT\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.ErrorInfo\",\"reason\":\"API_KEY_INVALID\",\"domain\":\"googleapis.com\"}]}}",
          AI_ERR_AUTH, false, -1, "API_KEY_INVALID" },
        { &ai_wire_gemini, 400, "{\"error\":{\"code\":400,\"message\":\"* GenerateContentRequest.contents: contents is not specified\",\"status\":\"INVALID_ARGUMENT\"}}",
          AI_ERR_CLIENT, false, -1, "INVALID_ARGUMENT" },
        { &ai_wire_gemini, 400, "{\"error\":{\"code\":400,\"message\":\"User location is not supported\",\"status\":\"FAILED_PRECONDITION\"}}",
          AI_ERR_CLIENT, false, -1, "FAILED_PRECONDITION" },
        { &ai_wire_gemini, 403, "{\"error\":{\"code\":403,\"message\":\"denied\",\"status\":\"PERMISSION_DENIED\"}}",
          AI_ERR_AUTH, false, -1, NULL },
        { &ai_wire_gemini, 404, "{\"error\":{\"code\":404,\"message\":\"models/x is not found\",\"status\":\"NOT_FOUND\"}}",
          AI_ERR_CLIENT, false, -1, "NOT_FOUND" },
        { &ai_wire_gemini, 429, "{\"error\":{\"code\":429,\"message\":\"Resource has been exhausted\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"12s\"}]}}",
          AI_ERR_RATE, true, 12000, "RESOURCE_EXHAUSTED" },
        { &ai_wire_gemini, 429, "{\"error\":{\"code\":429,\"message\":\"x\",\"status\":\"RESOURCE_EXHAUSTED\",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.RetryInfo\",\"retryDelay\":\"0.25s\"}]}}",
          AI_ERR_RATE, true, 250, NULL },
        { &ai_wire_gemini, 500, "{\"error\":{\"code\":500,\"message\":\"internal\",\"status\":\"INTERNAL\"}}",
          AI_ERR_SERVER, true, -1, "INTERNAL" },
        { &ai_wire_gemini, 503, "{\"error\":{\"code\":503,\"message\":\"The model is overloaded.\",\"status\":\"UNAVAILABLE\"}}",
          AI_ERR_SERVER, true, -1, "UNAVAILABLE" },
        { &ai_wire_gemini, 504, "{\"error\":{\"code\":504,\"message\":\"d\",\"status\":\"DEADLINE_EXCEEDED\"}}",
          AI_ERR_SERVER, true, -1, NULL },
    };
    ai_provider_t p = prov("prov", AI_KIND_OPENAI, "http://x", "secret-key-123");
    (void)state;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const err_case_t *c = &cases[i];
        ai_httperr_t he;

        memset(&he, 0x5a, sizeof he);
        c->ops->error(&p, c->status, c->body, strlen(c->body), &he);
        if (he.err != c->err || he.retryable != c->retryable
            || he.retry_after_ms != c->retry_after_ms
            || (c->says && !strstr(he.message, c->says)))
            fail_msg("case %zu (%s %d): err %d retryable %d retry_after %ld "
                     "message \"%s\"", i, c->ops->kind, c->status, he.err,
                     he.retryable, he.retry_after_ms, he.message);
        /* the message is one line, names the provider and the status, and
         * never holds the key */
        assert_non_null(strstr(he.message, "provider \"prov\""));
        assert_null(strstr(he.message, "secret-key-123"));
        assert_null(strchr(he.message, '\n'));
    }
}

static void test_error_quotes(void **state)
{
    ai_provider_t p = prov("prov", AI_KIND_OPENAI, "http://x", "secret-key-123");
    char body[2048];
    ai_httperr_t he;
    (void)state;

    /* a provider echoing the key in a message that is not an auth error */
    snprintf(body, sizeof body, "{\"error\":{\"message\":\"key secret-key-123 "
             "has no access to model x\",\"type\":\"invalid_request_error\"}}");
    ai_wire_openai.error(&p, 400, body, strlen(body), &he);
    assert_null(strstr(he.message, "secret-key-123"));
    assert_non_null(strstr(he.message, "key *** has no access"));
    /* a long message with control characters and multi-byte UTF-8 is cut
     * short, on one line, on a character boundary */
    memcpy(body, "{\"error\":{\"message\":\"", 21);
    for (int i = 0; i < 300; i++)
        memcpy(body + 21 + i * 2, i % 50 ? "\xc3\xa9" : "\\n", 2);
    strcpy(body + 621, "\",\"type\":\"t\"}}");
    ai_wire_openai.error(&p, 400, body, strlen(body), &he);
    assert_null(strchr(he.message, '\n'));
    assert_true(strlen(he.message) < 400);
    {
        size_t n = strlen(he.message);
        unsigned char last = (unsigned char)he.message[n - 1];
        /* ends on a complete "é" (C3 A9) */
        assert_int_equal(last, 0xA9);
        assert_int_equal((unsigned char)he.message[n - 2], 0xC3);
    }
}

static void test_retry_after(void **state)
{
    char date[64];
    time_t t = time(NULL) + 30;
    struct tm tm;
    long ms;
    (void)state;

    assert_int_equal(ai_retry_after_ms("1"), 1000);
    assert_int_equal(ai_retry_after_ms("0"), 0);
    assert_int_equal(ai_retry_after_ms("120"), 120000);
    assert_int_equal(ai_retry_after_ms("-3"), -1);
    assert_int_equal(ai_retry_after_ms("soon"), -1);
    assert_int_equal(ai_retry_after_ms(""), -1);
    gmtime_r(&t, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    ms = ai_retry_after_ms(date);
    assert_true(ms >= 28000 && ms <= 30000);
    assert_int_equal(ai_retry_after_ms("Wed, 21 Oct 2015 07:28:00 GMT"), 0);
}

/* ==== settings ============================================================== */

static int settings_setup(void **state)
{
    (void)state;
    ai_stub_install();
    return 0;
}

static int settings_teardown(void **state)
{
    (void)state;
    ai_settings_free();
    ai_stub_config_reset();
    return 0;
}

static void test_settings_defaults(void **state)
{
    (void)state;
    assert_true(ai_settings_load(AI_STUB_MODULE));
    assert_int_equal(ai_cfg.nproviders, 0);
    assert_int_equal(ai_cfg.connect_timeout_ms, 5000);
    assert_int_equal(ai_cfg.first_token_timeout_ms, 60000);
    assert_int_equal(ai_cfg.idle_timeout_ms, 30000);
    assert_int_equal(ai_cfg.total_timeout_ms, 600000);
    assert_int_equal(ai_cfg.max_retries, 2);
    assert_int_equal(ai_cfg.retry_base_ms, 500);
    assert_int_equal(ai_cfg.retry_max_ms, 8000);
    assert_int_equal(ai_cfg.default_max_tokens, 1024);
    assert_int_equal(ai_cfg.max_output_tokens, 16384);
    assert_int_equal(ai_cfg.reservation_ttl_s, 900);
    assert_int_equal(ai_cfg.max_response_bytes, 8 << 20);
    assert_int_equal(ai_cfg.ws_max_streams, 4);
    assert_null(ai_cfg.default_model);
    assert_null(ai_cfg.default_embedding_model);
    assert_null(ai_provider_find("openai"));
    /* no provider is valid, and no error */
    assert_null(strstr(ai_stub_log(), "error"));
}

static void test_settings_providers(void **state)
{
    const ai_provider_t *p;
    (void)state;

    ai_stub_config("providers", "openai, claude gemini,local,groq");
    ai_stub_config("provider.openai.type", "openai");
    ai_stub_config("provider.openai.api_key", "sk-live-1");
    ai_stub_config("provider.claude.type", "anthropic");
    ai_stub_config("provider.gemini.type", "gemini");
    ai_stub_config("provider.local.type", "openai");
    ai_stub_config("provider.local.base_url", "http://127.0.0.1:11434/v1/");
    ai_stub_config("provider.groq.type", "openai");
    ai_stub_config("provider.groq.base_url", "https://api.groq.com/openai/v1");
    ai_stub_config("default_model", "gpt-4o-mini");
    ai_stub_config("idle_timeout_ms", "1500");
    assert_true(ai_settings_load(AI_STUB_MODULE));
    assert_int_equal(ai_cfg.nproviders, 5);
    assert_int_equal(ai_cfg.idle_timeout_ms, 1500);
    assert_string_equal(ai_cfg.default_model, "gpt-4o-mini");

    p = ai_provider_find("openai");
    assert_non_null(p);
    assert_int_equal(p->kind, AI_KIND_OPENAI);
    assert_string_equal(p->base_url, "https://api.openai.com/v1");
    assert_string_equal(p->api_key, "sk-live-1");
    assert_false(p->legacy_max_tokens);
    assert_int_equal(p->nstrip, 0);
    p = ai_provider_find("claude");
    assert_int_equal(p->kind, AI_KIND_ANTHROPIC);
    assert_string_equal(p->base_url, "https://api.anthropic.com");
    assert_null(p->api_key);
    p = ai_provider_find("gemini");
    assert_int_equal(p->kind, AI_KIND_GEMINI);
    assert_string_equal(p->base_url,
                        "https://generativelanguage.googleapis.com/v1beta");
    p = ai_provider_find("local");
    assert_string_equal(p->base_url, "http://127.0.0.1:11434/v1");
    assert_true(p->legacy_max_tokens);
    p = ai_provider_find("groq");
    assert_int_equal(p->nstrip, 5);
    assert_string_equal(p->strip[0], "logprobs");
    assert_string_equal(p->strip[4], "messages.name");
    /* the key never reaches the log */
    assert_null(strstr(ai_stub_log(), "sk-live-1"));

    /* explicit choices win over the defaults */
    ai_stub_config("provider.openai.max_tokens_field", "max_tokens");
    ai_stub_config("provider.groq.strip", "n");
    assert_true(ai_settings_load(AI_STUB_MODULE));
    assert_true(ai_provider_find("openai")->legacy_max_tokens);
    assert_int_equal(ai_provider_find("groq")->nstrip, 1);
}

/* each bad value fails the load with one line naming key and value */
static void bad_one(const char *key, const char *value, const char *extra_key,
                    const char *extra_value)
{
    char want[256];

    ai_settings_free();
    ai_stub_config_reset();
    ai_stub_log_reset();
    ai_stub_config(key, value);
    if (extra_key)
        ai_stub_config(extra_key, extra_value);
    if (ai_settings_load(AI_STUB_MODULE))
        fail_msg("%s = \"%s\" was accepted", key, value);
    snprintf(want, sizeof want, "%s = \"%s\"", key, value);
    if (!strstr(ai_stub_log(), want))
        fail_msg("no log line names %s: %s", want, ai_stub_log());
}

static void test_settings_bad(void **state)
{
    static const char *const numeric[] = {
        "connect_timeout_ms", "first_token_timeout_ms", "idle_timeout_ms",
        "total_timeout_ms", "max_retries", "retry_base_ms", "retry_max_ms",
        "default_max_tokens", "max_output_tokens", "reservation_ttl_s",
        "max_response_bytes", "ws_max_streams",
    };
    static const char *const bad_numbers[] = { "abc", "", "12x", "-1",
                                               "99999999999999999999" };
    (void)state;

    for (size_t i = 0; i < sizeof numeric / sizeof numeric[0]; i++) {
        for (size_t j = 0; j < sizeof bad_numbers / sizeof bad_numbers[0]; j++)
            bad_one(numeric[i], bad_numbers[j], NULL, NULL);
    }
    bad_one("max_retries", "11", NULL, NULL);
    bad_one("ws_max_streams", "0", NULL, NULL);
    bad_one("retry_max_ms", "100", "retry_base_ms", "500");
    bad_one("default_max_tokens", "5000", "max_output_tokens", "4096");
    bad_one("providers", "Open AI", NULL, NULL);
    bad_one("providers", "a, a", "provider.a.type", "openai");
    bad_one("provider.x.type", "openia", "providers", "x");
    bad_one("provider.x.type", "", "providers", "x");
    bad_one("provider.x.base_url", "ftp://h", "providers", "x");
    bad_one("provider.x.max_tokens_field", "tokens", "providers", "x");
    bad_one("provider.x.strip", "logprobs, bad field!", "providers", "x");

    /* only the openai type takes max_tokens_field and strip */
    ai_settings_free();
    ai_stub_config_reset();
    ai_stub_log_reset();
    ai_stub_config("providers", "c");
    ai_stub_config("provider.c.type", "anthropic");
    ai_stub_config("provider.c.strip", "n");
    assert_false(ai_settings_load(AI_STUB_MODULE));
    assert_non_null(strstr(ai_stub_log(), "provider.c.strip"));

    /* a key with a line break could inject a header: refused, not shown */
    ai_settings_free();
    ai_stub_config_reset();
    ai_stub_log_reset();
    ai_stub_config("providers", "x");
    ai_stub_config("provider.x.type", "openai");
    ai_stub_config("provider.x.api_key", "sk-abc\r\nX-Evil: 1");
    assert_false(ai_settings_load(AI_STUB_MODULE));
    assert_non_null(strstr(ai_stub_log(), "provider.x.api_key"));
    assert_null(strstr(ai_stub_log(), "sk-abc"));
}

/* ==== estimates and argument checks ========================================= */

static void test_estimates(void **state)
{
    json_t *m;
    (void)state;

    assert_int_equal(ai_estimate_tokens(NULL, 0), 0);
    assert_int_equal(ai_estimate_tokens("", 0), 0);
    assert_int_equal(ai_estimate_tokens("a", 1), 1);
    assert_int_equal(ai_estimate_tokens("abcd", 4), 1);
    assert_int_equal(ai_estimate_tokens("abcde", 5), 2);
    assert_int_equal(ai_estimate_messages(NULL), 0);
    m = J("[{\"role\":\"system\",\"content\":\"12345678\"},"
          "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"abcd\"},"
          "{\"type\":\"text\",\"text\":\"e\"}]},"
          "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"c\","
          "\"type\":\"function\",\"function\":{\"name\":\"fn\",\"arguments\":"
          "\"{}\"}}]}]");
    /* 4+2, 4+1+1, 4+1+1 */
    assert_int_equal(ai_estimate_messages(m), 18);
    json_decref(m);
}

static void test_chat_args(void **state)
{
    ai_provider_t p = prov("p", AI_KIND_OPENAI, "http://127.0.0.1:1", NULL);
    json_t *none = json_array();
    ai_chat_params_t q = { .messages = none, .max_tokens = 5 };
    ai_result_t res = { 0 };
    ai_embed_result_t er = { 0 };
    const char *in[] = { "" };
    (void)state;

    /* refused before any connection */
    assert_int_equal(ai_upstream_chat(&p, "m", &q, true, NULL, &res),
                     PLX_ERR_INVALID);
    assert_int_equal(res.err, AI_ERR_CLIENT);
    assert_false(res.retryable);
    ai_result_clear(&res);
    assert_int_equal(ai_upstream_chat(&p, "", &q, true, NULL, &res),
                     PLX_ERR_INVALID);
    ai_result_clear(&res);
    assert_int_equal(ai_upstream_embed(&p, "m", in, 1, 0, &er), PLX_ERR_INVALID);
    assert_int_equal(er.err, AI_ERR_CLIENT);
    ai_embed_result_clear(&er);
    json_decref(none);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_every_split),
        cmocka_unit_test(test_sse_cr_lf_across_chunks),
        cmocka_unit_test(test_sse_edges),
        cmocka_unit_test(test_sse_bounds),
        cmocka_unit_test(test_openai_request),
        cmocka_unit_test(test_openai_request_compat),
        cmocka_unit_test(test_anthropic_request),
        cmocka_unit_test(test_anthropic_request_edges),
        cmocka_unit_test(test_gemini_request),
        cmocka_unit_test(test_embed_requests),
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_openai_stream_compat),
        cmocka_unit_test(test_openai_stream_tools),
        cmocka_unit_test(test_anthropic_stream),
        cmocka_unit_test(test_anthropic_stream_edges),
        cmocka_unit_test(test_gemini_stream),
        cmocka_unit_test(test_gemini_stream_edges),
        cmocka_unit_test(test_whole_replies),
        cmocka_unit_test(test_embed_responses),
        cmocka_unit_test(test_error_tables),
        cmocka_unit_test(test_error_quotes),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test_setup_teardown(test_settings_defaults, settings_setup,
                                        settings_teardown),
        cmocka_unit_test_setup_teardown(test_settings_providers, settings_setup,
                                        settings_teardown),
        cmocka_unit_test_setup_teardown(test_settings_bad, settings_setup,
                                        settings_teardown),
        cmocka_unit_test(test_estimates),
        cmocka_unit_test(test_chat_args),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
