/*
 * provider_gemini.c - Google's Generative Language API, v1beta
 * (models/{m}:generateContent, :streamGenerateContent?alt=sse,
 * :batchEmbedContents)
 *
 * Roles are user and model; system text goes to systemInstruction; the
 * sampling fields live in generationConfig. The key goes in the
 * x-goog-api-key header, never in the URL (where logs would keep it).
 * With alt=sse every event is a whole GenerateContentResponse carrying
 * only the new text, with no event names and no terminator: the chunk
 * with a finishReason is the end, and the last usageMetadata wins. A bad
 * key is a 400 whose ErrorInfo reason is API_KEY_INVALID.
 */
#include "config.h"

#include "provider.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- requests ------------------------------------------------------------ */

/* "<base>/models/<model><suffix>", the model percent-encoded (a leading
 * "models/" is accepted and dropped) */
static bool model_url(ai_http_t *h, const ai_provider_t *p, const char *model,
                      const char *suffix)
{
    size_t n = strlen(model) * 3 + strlen(suffix) + 16, o = 0;
    char *path = malloc(n);
    bool ok;

    if (!path)
        return false;
    if (!strncmp(model, "models/", 7))
        model += 7;
    o += (size_t)snprintf(path, n, "/models/");
    for (const unsigned char *c = (const unsigned char *)model; *c; c++) {
        if (isalnum(*c) || *c == '-' || *c == '.' || *c == '_')
            path[o++] = (char)*c;
        else
            o += (size_t)snprintf(path + o, n - o, "%%%02X", *c);
    }
    snprintf(path + o, n - o, "%s", suffix);
    ok = ai_http_url(h, p->base_url, path);
    free(path);
    return ok;
}

static json_t *part_of(json_t *part, char *msg, size_t msglen)
{
    const char *type = ai_jstr(part, "type"), *url, *data;
    char mime[128];

    if (type && !strcmp(type, "text") && ai_jstr(part, "text"))
        return json_pack("{s:O}", "text", json_object_get(part, "text"));
    if (type && !strcmp(type, "image_url")) {
        json_t *iu = json_object_get(part, "image_url");
        url = json_is_string(iu) ? json_string_value(iu) : ai_jstr(iu, "url");
        if (ai_data_uri(url, mime, sizeof mime, &data))
            return json_pack("{s:{s:s,s:s}}", "inlineData", "mimeType", mime,
                             "data", data);
        ai_msgf(msg, msglen, "a Gemini provider takes images as data: URLs "
                "only");
        return NULL;
    }
    ai_msgf(msg, msglen, "a message part of type \"%s\" cannot be sent to a "
            "Gemini provider", type ? type : "?");
    return NULL;
}

/* appends the parts of content to the array parts */
static bool add_parts(json_t *parts, json_t *content, char *msg, size_t msglen)
{
    json_t *part, *g;
    size_t idx;

    if (json_is_string(content))
        return json_array_append_new(parts, json_pack("{s:O}", "text",
                                                      content)) == 0;
    json_array_foreach(content, idx, part) {
        if (!(g = part_of(part, msg, msglen)))
            return false;
        json_array_append_new(parts, g);
    }
    return true;
}

/* one turn; two of one role in a row become one */
static bool add_turn(json_t *contents, const char *role, json_t *content,
                     char *msg, size_t msglen)
{
    json_t *last = json_array_get(contents, json_array_size(contents) - 1);
    const char *lrole = ai_jstr(last, "role");

    if (!lrole || strcmp(lrole, role)) {
        last = json_pack("{s:s,s:[]}", "role", role, "parts");
        if (!last || json_array_append_new(contents, last))
            return false;
    }
    return add_parts(json_object_get(last, "parts"), content, msg, msglen);
}

static ai_err_t map_messages(json_t *messages, json_t *contents, json_t *sys,
                             char *msg, size_t msglen)
{
    size_t idx;
    json_t *m;

    json_array_foreach(messages, idx, m) {
        const char *role = ai_jstr(m, "role");
        json_t *content = json_object_get(m, "content");
        char *t;

        if (!role) {
            ai_msgf(msg, msglen, "message %zu has no role", idx);
            return AI_ERR_CLIENT;
        }
        if (!strcmp(role, "system") || !strcmp(role, "developer")) {
            if (!ai_content_text(content, &t)) {
                ai_msgf(msg, msglen, "a system message may hold text only");
                return AI_ERR_CLIENT;
            }
            json_array_append_new(sys, json_pack("{s:s}", "text", t));
            free(t);
            continue;
        }
        if (!strcmp(role, "tool") || json_object_get(m, "tool_calls")) {
            ai_msgf(msg, msglen, "tool calls need an OpenAI-compatible provider");
            return AI_ERR_CLIENT;
        }
        if ((strcmp(role, "user") && strcmp(role, "assistant"))
            || (!json_is_string(content) && !json_is_array(content))) {
            ai_msgf(msg, msglen, "message %zu: role \"%s\" with this content "
                    "cannot be sent to a Gemini provider", idx, role);
            return AI_ERR_CLIENT;
        }
        if (!add_turn(contents, strcmp(role, "user") ? "model" : "user",
                      content, msg, msglen))
            return AI_ERR_CLIENT;
    }
    if (json_array_size(contents) == 0) {
        ai_msgf(msg, msglen, "the messages hold no user or assistant turn");
        return AI_ERR_CLIENT;
    }
    return AI_OK;
}

/* q's sampling fields into gc (an object) */
static ai_err_t generation_config(const ai_chat_params_t *q, json_t *gc,
                                  json_t *sys, char *msg, size_t msglen)
{
    json_t *stop;
    bool is_json;
    char *instr;

    json_object_set_new(gc, "maxOutputTokens", json_integer(q->max_tokens));
    if (q->has_temperature)
        json_object_set_new(gc, "temperature", json_real(q->temperature));
    if (q->has_top_p)
        json_object_set_new(gc, "topP", json_real(q->top_p));
    if (!ai_stop_list(q->stop, &stop)) {
        ai_msgf(msg, msglen, "stop must be a string or an array of strings");
        return AI_ERR_CLIENT;
    }
    if (stop)
        json_object_set_new(gc, "stopSequences", stop);
    instr = ai_json_instruction(q->response_format, &is_json);
    if (is_json) {
        json_object_set_new(gc, "responseMimeType",
                            json_string("application/json"));
        /* a JSON Schema is more than Gemini's responseSchema subset takes:
         * it goes to the instruction instead */
        if (instr && json_object_get(json_object_get(q->response_format,
                                                     "json_schema"), "schema"))
            json_array_append_new(sys, json_pack("{s:s}", "text", instr));
    }
    free(instr);
    return AI_OK;
}

static ai_err_t gemini_chat_request(const ai_provider_t *p, const char *model,
                                    const ai_chat_params_t *q, bool stream,
                                    ai_http_t *h, char *msg, size_t msglen)
{
    json_t *body = json_object(), *contents = json_array(), *sys = json_array();
    json_t *gc = json_object();
    ai_err_t err;

    if (json_array_size(q->tools) > 0) {
        ai_msgf(msg, msglen, "tools need an OpenAI-compatible provider");
        err = AI_ERR_CLIENT;
        goto fail;
    }
    if ((err = map_messages(q->messages, contents, sys, msg, msglen))
        || (err = generation_config(q, gc, sys, msg, msglen)))
        goto fail;
    if (json_array_size(sys) > 0)
        json_object_set_new(body, "systemInstruction",
                            json_pack("{s:O}", "parts", sys));
    json_object_set_new(body, "contents", contents);
    json_object_set_new(body, "generationConfig", gc);
    json_decref(sys);
    if (!ai_http_body_take(h, body)
        || !model_url(h, p, model, stream ? ":streamGenerateContent?alt=sse"
                                          : ":generateContent")
        || !ai_http_header(h, "Content-Type", "application/json")
        || (p->api_key && !ai_http_header(h, "x-goog-api-key", p->api_key))) {
        ai_msgf(msg, msglen, "out of memory");
        return AI_ERR_PROTOCOL;
    }
    return AI_OK;
fail:
    json_decref(body);
    json_decref(contents);
    json_decref(sys);
    json_decref(gc);
    return err;
}

/* ---- replies ------------------------------------------------------------- */

static void set_finish(ai_decode_t *d, const char *r)
{
    static const char *const filtered[] = {
        "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII",
        "IMAGE_SAFETY", NULL
    };

    if (!r)
        return;
    d->done = true;
    if (!strcmp(r, "MAX_TOKENS")) {
        ai_set_finish(d->res, "length");
        return;
    }
    for (size_t i = 0; filtered[i]; i++) {
        if (!strcmp(r, filtered[i])) {
            ai_set_finish(d->res, "content_filter");
            return;
        }
    }
    ai_set_finish(d->res, "stop");   /* STOP, OTHER, and anything newer */
}

/* thoughts are billed as output: they count as completion tokens */
static void take_usage(ai_result_t *res, json_t *um)
{
    if (!json_is_object(um))
        return;
    res->usage.prompt_tokens = ai_jlong(um, "promptTokenCount", 0);
    res->usage.completion_tokens = ai_jlong(um, "candidatesTokenCount", 0)
                                   + ai_jlong(um, "thoughtsTokenCount", 0);
    res->usage.known = true;
}

/* one GenerateContentResponse, whole or a stream chunk */
static ai_err_t take_response(ai_decode_t *d, json_t *root)
{
    json_t *cand = json_array_get(json_object_get(root, "candidates"), 0);
    json_t *parts = json_object_get(json_object_get(cand, "content"), "parts");
    json_t *part;
    const char *id = ai_jstr(root, "responseId");
    ai_err_t err;
    size_t idx;

    if (id)
        snprintf(d->res->upstream_id, sizeof d->res->upstream_id, "%s", id);
    take_usage(d->res, json_object_get(root, "usageMetadata"));
    if (!cand) {
        /* a prompt blocked outright: no candidates, a blockReason */
        if (ai_jstr(json_object_get(root, "promptFeedback"), "blockReason")) {
            ai_set_finish(d->res, "content_filter");
            d->done = true;
        }
        return AI_OK;
    }
    json_array_foreach(parts, idx, part) {
        const char *t = ai_jstr(part, "text");
        if (t && !json_is_true(json_object_get(part, "thought"))
            && (err = ai_decode_text(d, t, strlen(t))) != AI_OK)
            return err;
    }
    set_finish(d, ai_jstr(cand, "finishReason"));
    return AI_OK;
}

static ai_err_t error_in(ai_decode_t *d, json_t *root, const char *what)
{
    json_t *e = json_object_get(root, "error");
    const char *status = ai_jstr(e, "status"), *text = ai_jstr(e, "message");

    return ai_decode_fail(d, AI_ERR_STREAM, "provider \"%s\": %s %s: %.240s",
                          d->p->name, what, status ? status : "error",
                          text ? text : "");
}

static ai_err_t gemini_chat_response(ai_decode_t *d, const char *body, size_t len)
{
    json_t *root = json_loadb(body, len, 0, NULL);
    ai_err_t err;

    if (!json_is_object(root)) {
        json_decref(root);
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": the reply "
                              "is not a JSON object", d->p->name);
    }
    if (json_is_object(json_object_get(root, "error")))
        err = error_in(d, root, "error in the reply");
    else if (!json_object_get(root, "candidates")
             && !json_object_get(root, "promptFeedback"))
        err = ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": the reply "
                             "has no candidates", d->p->name);
    else if ((err = take_response(d, root)) == AI_OK)
        d->done = true;
    if (err == AI_ERR_STREAM)
        d->res->err = err = AI_ERR_SERVER;
    json_decref(root);
    return err;
}

static ai_err_t gemini_stream_event(ai_decode_t *d, const char *event,
                                    const char *data, size_t len)
{
    json_t *root;
    ai_err_t err;

    (void)event;
    root = json_loadb(data, len, 0, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "provider \"%s\": a stream "
                              "chunk is not a JSON object", d->p->name);
    }
    if (json_is_object(json_object_get(root, "error")))
        err = error_in(d, root, "stream error");
    else
        err = take_response(d, root);
    json_decref(root);
    return err;
}

/* "12s", "1.5s" (a protobuf Duration in JSON) into ms; -1 when not one */
static long duration_ms(const char *s)
{
    char *end;
    double v;

    if (!s)
        return -1;
    v = strtod(s, &end);
    if (end == s || strcmp(end, "s") != 0 || v < 0 || v > 86400)
        return -1;
    return (long)(v * 1000 + 0.999);
}

static void gemini_error(const ai_provider_t *p, int status, const char *body,
                         size_t len, ai_httperr_t *out)
{
    json_t *root = body && len ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *e = json_object_get(root, "error"), *det;
    const char *type = ai_jstr(e, "status"), *text = ai_jstr(e, "message");
    size_t idx;

    out->retry_after_ms = -1;
    out->err = ai_err_from_status(status, &out->retryable);
    json_array_foreach(json_object_get(e, "details"), idx, det) {
        const char *reason = ai_jstr(det, "reason");
        long ms = duration_ms(ai_jstr(det, "retryDelay"));
        if (reason && !strcmp(reason, "API_KEY_INVALID")) {
            out->err = AI_ERR_AUTH;
            out->retryable = false;
            type = reason;
        }
        if (ms >= 0)
            out->retry_after_ms = ms;
    }
    ai_httperr_format(p, out, status, type, text ? text : root ? NULL : body);
    json_decref(root);
}

/* ---- embeddings ---------------------------------------------------------- */

static ai_err_t gemini_embed_request(const ai_provider_t *p, const char *model,
                                     const char *const *inputs, size_t n,
                                     long dimensions, ai_http_t *h, char *msg,
                                     size_t msglen)
{
    json_t *body = json_pack("{s:[]}", "requests");
    json_t *reqs = json_object_get(body, "requests");
    size_t mlen = strlen(model) + 8;
    char *full = malloc(mlen);
    bool ok = body && full;

    if (ok)
        snprintf(full, mlen, "models/%s",
                 strncmp(model, "models/", 7) ? model : model + 7);
    for (size_t i = 0; ok && i < n; i++) {
        json_t *r = json_pack("{s:s,s:{s:[{s:s}]}}", "model", full, "content",
                              "parts", "text", inputs[i]);
        if (r && dimensions > 0)
            json_object_set_new(r, "outputDimensionality",
                                json_integer(dimensions));
        ok = r && json_array_append_new(reqs, r) == 0;
    }
    free(full);
    if (!ok) {
        json_decref(body);
        ai_msgf(msg, msglen, "an input is not valid UTF-8");
        return AI_ERR_CLIENT;
    }
    if (!ai_http_body_take(h, body)
        || !model_url(h, p, model, ":batchEmbedContents")
        || !ai_http_header(h, "Content-Type", "application/json")
        || (p->api_key && !ai_http_header(h, "x-goog-api-key", p->api_key))) {
        ai_msgf(msg, msglen, "out of memory");
        return AI_ERR_PROTOCOL;
    }
    return AI_OK;
}

static ai_err_t gemini_embed_response(const ai_provider_t *p, const char *body,
                                      size_t len, size_t n,
                                      ai_embed_result_t *res)
{
    json_t *root = json_loadb(body, len, 0, NULL), *embs, *e, *x;
    ai_err_t err = AI_ERR_PROTOCOL;
    size_t idx, k;

    embs = json_object_get(root, "embeddings");
    if (!json_is_array(embs) || json_array_size(embs) != n)
        goto out;
    json_array_foreach(embs, idx, e) {
        json_t *vals = json_object_get(e, "values");
        if (!json_is_array(vals) || json_array_size(vals) == 0)
            goto out;
        if (!res->vectors) {
            res->dim = json_array_size(vals);
            if (!(res->vectors = calloc(n * res->dim, sizeof(float))))
                goto out;
        }
        if (json_array_size(vals) != res->dim)
            goto out;
        json_array_foreach(vals, k, x) {
            if (!json_is_number(x))
                goto out;
            res->vectors[idx * res->dim + k] = (float)json_number_value(x);
        }
    }
    res->n = n;
    err = AI_OK;
out:
    if (err != AI_OK)
        snprintf(res->message, sizeof res->message, "provider \"%s\": the "
                 "embeddings reply is not %zu float vectors of one size",
                 p->name, n);
    json_decref(root);
    return err;
}

const ai_wire_ops_t ai_wire_gemini = {
    .kind = "gemini",
    .chat_request = gemini_chat_request,
    .chat_response = gemini_chat_response,
    .stream_event = gemini_stream_event,
    .error = gemini_error,
    .embed_request = gemini_embed_request,
    .embed_response = gemini_embed_response,
};
