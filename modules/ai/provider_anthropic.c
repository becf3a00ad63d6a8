/*
 * provider_anthropic.c - Anthropic Messages (POST /v1/messages,
 * anthropic-version 2023-06-01)
 *
 * The request is not OpenAI's: there is no system role (system and
 * developer messages become the top-level "system"), max_tokens is
 * required, stop is stop_sequences, temperature runs 0..1 where the
 * canonical one runs 0..2 (so it is halved), and turns alternate (two
 * turns of one role in a row are merged into one, as the API itself
 * would). Streams are SSE with named events; usage arrives in
 * message_start (input) and message_delta (output, cumulative); the end is
 * message_stop; an "error" event can come with the HTTP status already
 * 200. Anthropic has no embeddings API.
 */
#include "config.h"

#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ANTHROPIC_VERSION "2023-06-01"

/* ---- requests ------------------------------------------------------------ */

/* one canonical part as an Anthropic content block (new reference), or
 * NULL with why in msg */
static json_t *part_block(json_t *part, char *msg, size_t msglen)
{
    const char *type = ai_jstr(part, "type"), *url, *data;
    char mime[128];

    if (type && !strcmp(type, "text") && ai_jstr(part, "text"))
        return json_pack("{s:s,s:O}", "type", "text", "text",
                         json_object_get(part, "text"));
    if (type && !strcmp(type, "image_url")) {
        json_t *iu = json_object_get(part, "image_url");
        url = json_is_string(iu) ? json_string_value(iu) : ai_jstr(iu, "url");
        if (ai_data_uri(url, mime, sizeof mime, &data))
            return json_pack("{s:s,s:{s:s,s:s,s:s}}", "type", "image", "source",
                             "type", "base64", "media_type", mime, "data", data);
        if (url && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7)))
            return json_pack("{s:s,s:{s:s,s:s}}", "type", "image", "source",
                             "type", "url", "url", url);
    }
    ai_msgf(msg, msglen, "a message part of type \"%s\" cannot be sent to an "
            "Anthropic provider", type ? type : "?");
    return NULL;
}

/* content as a new array of blocks */
static json_t *to_blocks(json_t *content, char *msg, size_t msglen)
{
    json_t *out = json_array(), *part, *b;
    size_t idx;

    if (json_is_string(content)) {
        json_array_append_new(out, json_pack("{s:s,s:O}", "type", "text",
                                             "text", content));
        return out;
    }
    json_array_foreach(content, idx, part) {
        if (!(b = part_block(part, msg, msglen))) {
            json_decref(out);
            return NULL;
        }
        json_array_append_new(out, b);
    }
    return out;
}

/* appends content to the last turn of messages (same role): both become
 * block arrays */
static bool merge_turn(json_t *last, json_t *content, char *msg, size_t msglen)
{
    json_t *have = json_object_get(last, "content"), *add;

    if (json_is_string(have)) {
        json_t *b = to_blocks(have, msg, msglen);
        json_object_set_new(last, "content", b);
        have = b;
    }
    if (!(add = to_blocks(content, msg, msglen)))
        return false;
    json_array_extend(have, add);
    json_decref(add);
    return true;
}

static bool add_turn(json_t *out, const char *role, json_t *content,
                     char *msg, size_t msglen)
{
    json_t *last = json_array_get(out, json_array_size(out) - 1), *c;
    const char *lrole = ai_jstr(last, "role");

    if (lrole && !strcmp(lrole, role))
        return merge_turn(last, content, msg, msglen);
    c = json_is_string(content) ? json_incref(content)
                                : to_blocks(content, msg, msglen);
    if (!c)
        return false;
    return json_array_append_new(out, json_pack("{s:s,s:o}", "role", role,
                                                "content", c)) == 0;
}

/* system text gathered into *sys (grown, "\n\n" between pieces) */
static bool add_system(char **sys, json_t *content, char *msg, size_t msglen)
{
    char *t, *cat;
    size_t a, b;

    if (!ai_content_text(content, &t)) {
        ai_msgf(msg, msglen, "a system message may hold text only");
        return false;
    }
    if (!*sys) {
        *sys = t;
        return true;
    }
    a = strlen(*sys);
    b = strlen(t);
    if ((cat = malloc(a + b + 3))) {
        memcpy(cat, *sys, a);
        memcpy(cat + a, "\n\n", 2);
        memcpy(cat + a + 2, t, b + 1);
    }
    free(t);
    free(*sys);
    *sys = cat;
    return cat != NULL;
}

/* messages: the turns, and the system text out of them */
static ai_err_t map_messages(json_t *messages, json_t *out, char **sys,
                             char *msg, size_t msglen)
{
    size_t idx;
    json_t *m;

    json_array_foreach(messages, idx, m) {
        const char *role = ai_jstr(m, "role");
        json_t *content = json_object_get(m, "content");

        if (!role) {
            ai_msgf(msg, msglen, "message %zu has no role", idx);
            return AI_ERR_CLIENT;
        }
        if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            if (!add_system(sys, content, msg, msglen))
                return AI_ERR_CLIENT;
            continue;
        }
        if (!strcmp(role, "tool") || json_object_get(m, "tool_calls")) {
            ai_msgf(msg, msglen, "tool calls need an OpenAI-compatible provider");
            return AI_ERR_CLIENT;
        }
        if ((strcmp(role, "user") && strcmp(role, "assistant"))
            || (!json_is_string(content) && !json_is_array(content))) {
            ai_msgf(msg, msglen, "message %zu: role \"%s\" with this content "
                    "cannot be sent to an Anthropic provider", idx, role);
            return AI_ERR_CLIENT;
        }
        if (!add_turn(out, role, content, msg, msglen))
            return AI_ERR_CLIENT;
    }
    if (json_array_size(out) == 0) {
        ai_msgf(msg, msglen, "the messages hold no user or assistant turn");
        return AI_ERR_CLIENT;
    }
    return AI_OK;
}

/* the system text, with the JSON instruction after it when asked */
static bool set_system(json_t *body, char *sys, json_t *response_format)
{
    bool is_json;
    char *instr = ai_json_instruction(response_format, &is_json);
    bool ok = true;

    if (is_json && instr) {
        json_t *s = json_string(instr);
        ok = add_system(&sys, s, NULL, 0);
        json_decref(s);
    }
    if (ok && sys)
        ok = json_object_set_new(body, "system", json_string(sys)) == 0;
    free(instr);
    free(sys);
    return ok;
}

static ai_err_t build(const ai_provider_t *p, const char *model,
                      const ai_chat_params_t *q, bool stream, json_t *body,
                      char *msg, size_t msglen)
{
    json_t *messages = json_array(), *stop;
    char *sys = NULL;
    ai_err_t err;

    if ((err = map_messages(q->messages, messages, &sys, msg, msglen))) {
        json_decref(messages);
        free(sys);
        return err;
    }
    json_object_set_new(body, "model", json_string(model));
    json_object_set_new(body, "max_tokens", json_integer(q->max_tokens));
    if (!set_system(body, sys, q->response_format)) {
        json_decref(messages);
        return AI_ERR_PROTOCOL;
    }
    json_object_set_new(body, "messages", messages);
    if (stream)
        json_object_set_new(body, "stream", json_true());
    if (q->has_temperature) {
        double t = q->temperature / 2;
        json_object_set_new(body, "temperature",
                            json_real(t < 0 ? 0 : t > 1 ? 1 : t));
    }
    if (q->has_top_p)
        json_object_set_new(body, "top_p", json_real(q->top_p));
    if (!ai_stop_list(q->stop, &stop)) {
        ai_msgf(msg, msglen, "stop must be a string or an array of strings");
        return AI_ERR_CLIENT;
    }
    if (stop)
        json_object_set_new(body, "stop_sequences", stop);
    if (q->user_tag)
        json_object_set_new(body, "metadata", json_pack("{s:s}", "user_id",
                                                        q->user_tag));
    (void)p;
    return AI_OK;
}

static ai_err_t anthropic_chat_request(const ai_provider_t *p, const char *model,
                                       const ai_chat_params_t *q, bool stream,
                                       ai_http_t *h, char *msg, size_t msglen)
{
    json_t *body;
    ai_err_t err;

    if (json_array_size(q->tools) > 0) {
        ai_msgf(msg, msglen, "tools need an OpenAI-compatible provider");
        return AI_ERR_CLIENT;
    }
    if (!(body = json_object()))
        return AI_ERR_PROTOCOL;
    if ((err = build(p, model, q, stream, body, msg, msglen)) != AI_OK) {
        json_decref(body);
        if (!msg[0])
            ai_msgf(msg, msglen, "out of memory");
        return err;
    }
    if (!ai_http_body_take(h, body) || !ai_http_url(h, p->base_url, "/v1/messages")
        || !ai_http_header(h, "Content-Type", "application/json")
        || !ai_http_header(h, "anthropic-version", ANTHROPIC_VERSION)
        || (p->api_key && !ai_http_header(h, "x-api-key", p->api_key))) {
        ai_msgf(msg, msglen, "out of memory");
        return AI_ERR_PROTOCOL;
    }
    return AI_OK;
}

/* ---- replies ------------------------------------------------------------- */

static void set_finish(ai_result_t *res, const char *r)
{
    if (!r)
        return;
    if (!strcmp(r, "max_tokens") || !strcmp(r, "model_context_window_exceeded"))
        ai_set_finish(res, "length");
    else if (!strcmp(r, "tool_use"))
        ai_set_finish(res, "tool_calls");
    else if (!strcmp(r, "refusal"))
        ai_set_finish(res, "content_filter");
    else                        /* end_turn, stop_sequence, pause_turn */
        ai_set_finish(res, "stop");
}

/* OpenAI's prompt_tokens is input + cache creation + cache reads */
static void take_usage(ai_result_t *res, json_t *usage)
{
    if (!json_is_object(usage))
        return;
    if (json_object_get(usage, "input_tokens"))
        res->usage.prompt_tokens = ai_jlong(usage, "input_tokens", 0)
            + ai_jlong(usage, "cache_creation_input_tokens", 0)
            + ai_jlong(usage, "cache_read_input_tokens", 0);
    if (json_object_get(usage, "output_tokens"))
        res->usage.completion_tokens = ai_jlong(usage, "output_tokens", 0);
    res->usage.known = true;
}

static void take_id(ai_result_t *res, json_t *msg)
{
    const char *id = ai_jstr(msg, "id");

    if (id)
        snprintf(res->upstream_id, sizeof res->upstream_id, "%s", id);
}

static ai_err_t anthropic_chat_response(ai_decode_t *d, const char *body,
                                        size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL), *content, *b;
    ai_err_t err = AI_OK;
    size_t idx;

    content = json_object_get(root, "content");
    if (!json_is_array(content)) {
        json_decref(root);
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": the reply "
                              "has no content array", d->p->name);
    }
    take_id(d->res, root);
    take_usage(d->res, json_object_get(root, "usage"));
    json_array_foreach(content, idx, b) {
        const char *type = ai_jstr(b, "type"), *text = ai_jstr(b, "text");
        if (type && !strcmp(type, "text") && text
            && (err = ai_decode_text(d, text, strlen(text))) != AI_OK)
            break;
    }
    set_finish(d->res, ai_jstr(root, "stop_reason"));
    d->done = err == AI_OK;
    json_decref(root);
    return err;
}

static ai_err_t stream_error(ai_decode_t *d, json_t *root)
{
    json_t *e = json_object_get(root, "error");
    const char *type = ai_jstr(e, "type"), *text = ai_jstr(e, "message");

    return ai_decode_fail(d, AI_ERR_STREAM, "provider \"%s\": stream error "
                          "%s: %.240s", d->p->name, type ? type : "error",
                          text ? text : "");
}

static ai_err_t on_event(ai_decode_t *d, const char *name, json_t *root)
{
    json_t *delta = json_object_get(root, "delta");
    const char *t;

    if (!strcmp(name, "content_block_delta")) {
        const char *type = ai_jstr(delta, "type");
        if (type && !strcmp(type, "text_delta") && (t = ai_jstr(delta, "text")))
            return ai_decode_text(d, t, strlen(t));
    } else if (!strcmp(name, "content_block_start")) {
        json_t *cb = json_object_get(root, "content_block");
        const char *type = ai_jstr(cb, "type");
        if ((t = ai_jstr(cb, "text")) && type && !strcmp(type, "text"))
            return ai_decode_text(d, t, strlen(t));
    } else if (!strcmp(name, "message_start")) {
        json_t *msg = json_object_get(root, "message");
        take_id(d->res, msg);
        take_usage(d->res, json_object_get(msg, "usage"));
        /* its output_tokens is a placeholder: the count is known once a
         * message_delta gives it */
        d->res->usage.known = false;
    } else if (!strcmp(name, "message_delta")) {
        set_finish(d->res, ai_jstr(delta, "stop_reason"));
        take_usage(d->res, json_object_get(root, "usage"));
    } else if (!strcmp(name, "message_stop")) {
        d->done = true;
    } else if (!strcmp(name, "error")) {
        return stream_error(d, root);
    }
    /* ping, content_block_stop, thinking and anything newer: nothing */
    return AI_OK;
}

static ai_err_t anthropic_stream_event(ai_decode_t *d, const char *event,
                                       const char *data, size_t len)
{
    json_t *root;
    const char *name = event;
    ai_err_t err;

    if (d->done)
        return AI_OK;
    root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": a stream "
                              "event is not a JSON object", d->p->name);
    }
    /* the event line names it; its "type" says the same when a proxy
     * dropped the event lines */
    if (!strcmp(name, "message") && ai_jstr(root, "type"))
        name = ai_jstr(root, "type");
    err = on_event(d, name, root);
    json_decref(root);
    return err;
}

static void anthropic_error(const ai_provider_t *p, int status, const char *body,
                            size_t len, ai_httperr_t *out)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *e = json_object_get(root, "error");
    const char *type = ai_jstr(e, "type"), *text = ai_jstr(e, "message");
    const char *code = ai_jstr(json_object_get(e, "details"), "error_code");

    out->retry_after_ms = -1;
    out->err = ai_err_from_status(status, &out->retryable);
    /* the monthly spend cap answers 429 too, but waiting will not help */
    if ((type && !strcmp(type, "billing_error"))
        || (code && !strcmp(code, "enforced_spend_limit_reached"))) {
        out->err = AI_ERR_QUOTA;
        out->retryable = false;
    } else if (type && !strcmp(type, "overloaded_error")) {
        out->err = AI_ERR_SERVER;
        out->retryable = true;
    }
    ai_httperr_format(p, out, status, type, text ? text : root ? NULL : body);
    json_decref(root);
}

static ai_err_t anthropic_embed_request(const ai_provider_t *p,
                                        const char *model,
                                        const char *const *inputs, size_t n,
                                        long dimensions, ai_http_t *h,
                                        char *msg, size_t msglen)
{
    (void)model; (void)inputs; (void)n; (void)dimensions; (void)h;
    ai_msgf(msg, msglen, "provider \"%s\" is of type anthropic, which has no "
            "embeddings API: use an OpenAI-compatible or Gemini provider for "
            "embedding models", p->name);
    return AI_ERR_CLIENT;
}

const ai_wire_ops_t ai_wire_anthropic = {
    .kind = "anthropic",
    .chat_request = anthropic_chat_request,
    .chat_response = anthropic_chat_response,
    .stream_event = anthropic_stream_event,
    .error = anthropic_error,
    .embed_request = anthropic_embed_request,
    .embed_response = NULL,
};
