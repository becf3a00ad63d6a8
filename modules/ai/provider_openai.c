/*
 * provider_openai.c - OpenAI Chat Completions and Embeddings, and every
 * server that copies them (Groq, Ollama, vLLM, llama.cpp, OpenRouter)
 *
 * The canonical request is already OpenAI's, so the request side only
 * adds the wire fields (stream_options.include_usage, the max-tokens
 * field the server reads) and removes what a provider refuses (strip).
 * The decoding side follows the gateway rules of the reference (section
 * 5): choices empty, null or missing is a usage-only chunk; the last
 * non-null usage wins; a data payload with a top-level "error" is an
 * error; unknown fields are ignored; both vLLM error shapes are read.
 */
#include "config.h"

#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tool calls in one reply, and the size of one */
#define OPENAI_MAX_TOOL_CALLS 128

/* ---- requests ------------------------------------------------------------ */

static void strip_fields(const ai_provider_t *p, json_t *body)
{
    json_t *messages = json_object_get(body, "messages");

    for (size_t i = 0; i < p->nstrip; i++) {
        const char *f = p->strip[i];
        size_t idx;
        json_t *m;

        if (strncmp(f, "messages.", 9) != 0) {
            json_object_del(body, f);
            continue;
        }
        json_array_foreach(messages, idx, m)
            json_object_del(m, f + 9);
    }
}

static bool set_copy(json_t *obj, const char *key, json_t *v)
{
    if (!v || json_is_null(v))
        return true;
    return json_object_set_new(obj, key, json_deep_copy(v)) == 0;
}

static bool auth_header(const ai_provider_t *p, ai_http_t *h)
{
    size_t n;
    char *v;
    bool ok;

    if (!p->api_key)
        return true;
    n = strlen(p->api_key) + 8;
    if (!(v = malloc(n)))
        return false;
    snprintf(v, n, "Bearer %s", p->api_key);
    ok = ai_http_header(h, "Authorization", v);
    free(v);
    return ok;
}

static ai_err_t openai_chat_request(const ai_provider_t *p, const char *model,
                                    const ai_chat_params_t *q, bool stream,
                                    ai_http_t *h, char *msg, size_t msglen)
{
    json_t *body = json_object();
    bool ok;

    ok = body && json_object_set_new(body, "model", json_string(model)) == 0
         && set_copy(body, "messages", q->messages);
    if (ok && stream)
        ok = json_object_set_new(body, "stream", json_true()) == 0
             && json_object_set_new(body, "stream_options",
                                    json_pack("{s:b}", "include_usage", 1)) == 0;
    ok = ok && json_object_set_new(body, p->legacy_max_tokens ? "max_tokens"
                                   : "max_completion_tokens",
                                   json_integer(q->max_tokens)) == 0;
    if (ok && q->has_temperature)
        ok = json_object_set_new(body, "temperature",
                                 json_real(q->temperature)) == 0;
    if (ok && q->has_top_p)
        ok = json_object_set_new(body, "top_p", json_real(q->top_p)) == 0;
    ok = ok && set_copy(body, "stop", q->stop)
         && set_copy(body, "response_format", q->response_format)
         && set_copy(body, "tools", q->tools)
         && set_copy(body, "tool_choice", q->tool_choice);
    if (ok && q->user_tag)
        ok = json_object_set_new(body, "user", json_string(q->user_tag)) == 0;
    if (!ok) {
        json_decref(body);
        ai_msgf(msg, msglen, "out of memory");
        return AI_ERR_PROTOCOL;
    }
    strip_fields(p, body);
    if (!ai_http_body_take(h, body) || !ai_http_url(h, p->base_url, "/chat/completions")
        || !ai_http_header(h, "Content-Type", "application/json")
        || !auth_header(p, h)) {
        ai_msgf(msg, msglen, "out of memory");
        return AI_ERR_PROTOCOL;
    }
    return AI_OK;
}

/* ---- replies ------------------------------------------------------------- */

/* OpenAI's own vocabulary, with the deprecated function_call folded in;
 * an unknown reason (a compatible server's own) is a normal stop */
static void set_finish(ai_result_t *res, const char *r)
{
    if (!r)
        return;
    if (!strcmp(r, "length") || !strcmp(r, "tool_calls")
        || !strcmp(r, "content_filter"))
        ai_set_finish(res, r);
    else if (!strcmp(r, "function_call"))
        ai_set_finish(res, "tool_calls");
    else
        ai_set_finish(res, "stop");
}

static void take_usage(ai_result_t *res, json_t *usage)
{
    if (!json_is_object(usage))
        return;
    res->usage.prompt_tokens = ai_jlong(usage, "prompt_tokens", 0);
    res->usage.completion_tokens = ai_jlong(usage, "completion_tokens", 0);
    res->usage.known = true;
}

static void take_id(ai_result_t *res, json_t *root)
{
    const char *id = ai_jstr(root, "id");

    if (id && !res->upstream_id[0])
        snprintf(res->upstream_id, sizeof res->upstream_id, "%s", id);
}

/* the "error" of a payload: OpenAI's envelope {"error":{...}}, vLLM's
 * flat {"object":"error",...}, or a bare {"error":"text"} */
static bool error_of(json_t *root, const char **type, const char **text,
                     char code[32])
{
    json_t *e = json_object_get(root, "error"), *c;

    code[0] = '\0';
    if (json_is_string(e)) {
        *type = NULL;
        *text = json_string_value(e);
        return true;
    }
    if (!json_is_object(e)) {
        const char *obj = ai_jstr(root, "object");
        if (!obj || strcmp(obj, "error") != 0)
            return false;
        e = root;
    }
    *type = ai_jstr(e, "type");
    *text = ai_jstr(e, "message");
    c = json_object_get(e, "code");
    if (json_is_string(c))
        snprintf(code, 32, "%s", json_string_value(c));
    else if (json_is_integer(c))
        snprintf(code, 32, "%lld", (long long)json_integer_value(c));
    return true;
}

static ai_err_t tool_fragment(ai_decode_t *d, json_t *frag)
{
    ai_result_t *res = d->res;
    json_t *fn = json_object_get(frag, "function"), *tc;
    long idx = ai_jlong(frag, "index", -1);
    const char *s;

    if (idx < 0 || idx >= OPENAI_MAX_TOOL_CALLS)
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": a tool "
                              "call fragment without a valid index", d->p->name);
    if (!res->tool_calls && !(res->tool_calls = json_array()))
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "out of memory");
    while (json_array_size(res->tool_calls) <= (size_t)idx) {
        json_array_append_new(res->tool_calls, json_pack(
            "{s:s,s:s,s:{s:s,s:s}}", "id", "", "type", "function", "function",
            "name", "", "arguments", ""));
    }
    tc = json_array_get(res->tool_calls, (size_t)idx);
    if ((s = ai_jstr(frag, "id")) && *s)
        json_object_set_new(tc, "id", json_string(s));
    if ((s = ai_jstr(frag, "type")) && *s)
        json_object_set_new(tc, "type", json_string(s));
    if ((s = ai_jstr(fn, "name")) && *s)
        json_object_set_new(json_object_get(tc, "function"), "name",
                            json_string(s));
    if ((s = ai_jstr(fn, "arguments")) && *s) {
        json_t *f = json_object_get(tc, "function");
        const char *have = ai_jstr(f, "arguments");
        size_t a = strlen(have), b = strlen(s);
        char *cat;
        if (a + b > d->max_text)
            return ai_decode_fail(d, AI_ERR_TOO_LARGE, "provider \"%s\": tool "
                                  "call arguments passed max_response_bytes",
                                  d->p->name);
        if (!(cat = malloc(a + b + 1)))
            return ai_decode_fail(d, AI_ERR_PROTOCOL, "out of memory");
        memcpy(cat, have, a);
        memcpy(cat + a, s, b + 1);
        json_object_set_new(f, "arguments", json_string(cat));
        free(cat);
    }
    d->progress = true;
    return AI_OK;
}

static ai_err_t openai_chat_response(ai_decode_t *d, const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL), *choice, *msg, *tools;
    const char *type, *text, *content;
    char code[32];
    ai_err_t err = AI_OK;

    if (!json_is_object(root)) {
        json_decref(root);
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": the reply "
                              "is not a JSON object", d->p->name);
    }
    if (error_of(root, &type, &text, code)) {
        err = ai_decode_fail(d, AI_ERR_SERVER, "provider \"%s\": error in the "
                             "reply: %s: %.240s", d->p->name,
                             type ? type : code[0] ? code : "error",
                             text ? text : "");
        goto out;
    }
    take_id(d->res, root);
    take_usage(d->res, json_object_get(root, "usage"));
    choice = json_array_get(json_object_get(root, "choices"), 0);
    if (!(msg = json_object_get(choice, "message"))) {
        err = ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": the reply "
                             "has no choices[0].message", d->p->name);
        goto out;
    }
    if ((content = ai_jstr(msg, "content"))
        && (err = ai_decode_text(d, content, strlen(content))) != AI_OK)
        goto out;
    tools = json_object_get(msg, "tool_calls");
    if (json_is_array(tools) && json_array_size(tools) > 0) {
        d->res->tool_calls = json_deep_copy(tools);
        d->progress = true;
    }
    set_finish(d->res, ai_jstr(choice, "finish_reason"));
    d->done = true;
out:
    json_decref(root);
    return err;
}

static ai_err_t choice_delta(ai_decode_t *d, json_t *choice)
{
    json_t *delta = json_object_get(choice, "delta"), *tools, *t;
    const char *content = ai_jstr(delta, "content");
    ai_err_t err;
    size_t idx;

    if (content && (err = ai_decode_text(d, content, strlen(content))) != AI_OK)
        return err;
    tools = json_object_get(delta, "tool_calls");
    json_array_foreach(tools, idx, t) {
        if ((err = tool_fragment(d, t)) != AI_OK)
            return err;
    }
    set_finish(d->res, ai_jstr(choice, "finish_reason"));
    return AI_OK;
}

static ai_err_t openai_stream_event(ai_decode_t *d, const char *event,
                                    const char *data, size_t len)
{
    json_t *root, *choices, *usage;
    const char *type, *text;
    char code[32];
    ai_err_t err = AI_OK;

    (void)event;                 /* data-only SSE: no event names */
    if (d->done)
        return AI_OK;
    if (len >= 6 && memcmp(data, "[DONE]", 6) == 0) {
        d->done = true;
        return AI_OK;
    }
    root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": a stream "
                              "chunk is not a JSON object", d->p->name);
    }
    if (error_of(root, &type, &text, code)) {
        err = ai_decode_fail(d, AI_ERR_STREAM, "provider \"%s\": stream "
                             "error %s: %.240s", d->p->name,
                             type ? type : code[0] ? code : "error",
                             text ? text : "");
        goto out;
    }
    take_id(d->res, root);
    usage = json_object_get(root, "usage");
    if (json_is_object(usage))
        take_usage(d->res, usage);
    choices = json_object_get(root, "choices");
    /* empty, null or missing: a usage-only chunk */
    if (json_array_size(choices) > 0)
        err = choice_delta(d, json_array_get(choices, 0));
out:
    json_decref(root);
    return err;
}

static void openai_error(const ai_provider_t *p, int status, const char *body,
                         size_t len, ai_httperr_t *out)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    const char *type = NULL, *text = NULL;
    char code[32] = "";

    out->retry_after_ms = -1;
    out->err = ai_err_from_status(status, &out->retryable);
    if (root && !error_of(root, &type, &text, code))
        type = NULL;
    if (status == 429 && ((type && !strcmp(type, "insufficient_quota"))
                          || !strcmp(code, "insufficient_quota"))) {
        out->err = AI_ERR_QUOTA;
        out->retryable = false;
    }
    /* a string code says more than a generic type (vLLM's integer code
     * only repeats the status) */
    if (code[0] && (code[0] < '0' || code[0] > '9'))
        type = code;
    ai_httperr_format(p, out, status, type, text ? text : root ? NULL : body);
    json_decref(root);
}

/* ---- embeddings ---------------------------------------------------------- */

static ai_err_t openai_embed_request(const ai_provider_t *p, const char *model,
                                     const char *const *inputs, size_t n,
                                     long dimensions, ai_http_t *h, char *msg,
                                     size_t msglen)
{
    json_t *body = json_pack("{s:s,s:[],s:s}", "model", model, "input",
                             "encoding_format", "float");
    json_t *in = json_object_get(body, "input");
    bool ok = body != NULL;

    for (size_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(in, json_string(inputs[i])) == 0;
    if (ok && dimensions > 0)
        ok = json_object_set_new(body, "dimensions", json_integer(dimensions)) == 0;
    if (!ok) {
        json_decref(body);
        ai_msgf(msg, msglen, "an input is not valid UTF-8");
        return AI_ERR_CLIENT;
    }
    if (!ai_http_body_take(h, body) || !ai_http_url(h, p->base_url, "/embeddings")
        || !ai_http_header(h, "Content-Type", "application/json")
        || !auth_header(p, h)) {
        ai_msgf(msg, msglen, "out of memory");
        return AI_ERR_PROTOCOL;
    }
    return AI_OK;
}

/* row i of the result from a JSON array of numbers; dim fixed by the first */
static bool embed_row(ai_embed_result_t *res, size_t n, size_t i, json_t *vec)
{
    size_t k;
    json_t *x;

    if (!json_is_array(vec) || json_array_size(vec) == 0)
        return false;
    if (!res->vectors) {
        res->dim = json_array_size(vec);
        if (!(res->vectors = calloc(n * res->dim, sizeof(float))))
            return false;
    }
    if (json_array_size(vec) != res->dim)
        return false;
    json_array_foreach(vec, k, x) {
        if (!json_is_number(x))
            return false;
        res->vectors[i * res->dim + k] = (float)json_number_value(x);
    }
    return true;
}

static ai_err_t openai_embed_response(const ai_provider_t *p, const char *body,
                                      size_t len, size_t n,
                                      ai_embed_result_t *res)
{
    json_t *root = json_loadb(body, len, 0, NULL), *data, *item;
    unsigned char *seen = calloc(n ? n : 1, 1);
    ai_err_t err = AI_ERR_PROTOCOL;
    size_t idx;

    data = json_object_get(root, "data");
    if (!seen || !json_is_array(data) || json_array_size(data) != n)
        goto out;
    json_array_foreach(data, idx, item) {
        long i = ai_jlong(item, "index", (long)idx);
        if (i < 0 || (size_t)i >= n || seen[i]
            || !embed_row(res, n, (size_t)i, json_object_get(item, "embedding")))
            goto out;
        seen[i] = 1;
    }
    res->n = n;
    if (json_is_object(json_object_get(root, "usage"))) {
        res->usage.prompt_tokens =
            ai_jlong(json_object_get(root, "usage"), "prompt_tokens", 0);
        res->usage.known = true;
    }
    err = AI_OK;
out:
    if (err != AI_OK)
        snprintf(res->message, sizeof res->message, "provider \"%s\": the "
                 "embeddings reply is not %zu float vectors of one size",
                 p->name, n);
    free(seen);
    json_decref(root);
    return err;
}

const ai_wire_ops_t ai_wire_openai = {
    .kind = "openai",
    .chat_request = openai_chat_request,
    .chat_response = openai_chat_response,
    .stream_event = openai_stream_event,
    .error = openai_error,
    .embed_request = openai_embed_request,
    .embed_response = openai_embed_response,
};
