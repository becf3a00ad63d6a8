/*
 * openai.c - the OpenAI-compatible surface under /v1/: chat completions
 * (whole, or streamed as data-only Server-Sent Events), embeddings (float
 * or base64), the model list, and OpenAI's error shape for every error
 * under /v1/, the core's included (ABI 1.3 error formats)
 *
 * Any OpenAI SDK pointed at http://host/v1 works with a Plexus API key
 * that has the "ai" scope (or a user's access token). The calls go
 * through the gateway like every other route: the same models, quotas,
 * usage rows (kind "completions" and "embeddings") and metrics.
 *
 * Streaming. Errors found before anything was sent (a bad model, a spent
 * quota, a provider that fails before its first token) keep their HTTP
 * status, so the stream is opened lazily: at the first piece of text, or
 * once the gateway has waited OAI_OPEN_AFTER_MS on the provider. From then
 * on a comment is written at most every OAI_COMMENT_MS while waiting, so a
 * client that went away is noticed and the upstream call cancelled well
 * within a second. An error after the stream opened is one
 * `data: {"error":{...}}` event (what the SDKs raise), without [DONE].
 *
 * Reference: the OpenAI API reference (Chat Completions, streaming, Models
 * and Embeddings) and its OpenAPI description.
 */
#include "config.h"

#include "ai.h"
#include "oai.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OAI_MAX_MESSAGES   4096
#define OAI_MAX_INPUTS     2048     /* OpenAI's bound on embedding inputs */
#define OAI_MAX_STOP       4
#define OAI_MAX_DIMENSIONS 65536
#define OAI_USER_MAX       256
#define OAI_OPEN_AFTER_MS  300.0
#define OAI_COMMENT_MS     250.0
#define OAI_ID_MAX         48

/* ==== errors ============================================================= */

/* OpenAI's type (and code, where it differs from ours) for an HTTP status
 * and one of our problem codes */
static void error_kind(int status, const char *code, const char **type,
                       const char **oai_code)
{
    *oai_code = code && *code ? code : NULL;
    if (status == 401) {
        *type = "invalid_request_error";
        *oai_code = "invalid_api_key";
    } else if (status == 429) {
        if (code && strcmp(code, "quota_exceeded") == 0) {
            *type = "insufficient_quota";
        } else {
            *type = "rate_limit_error";
            *oai_code = "rate_limit_exceeded";
        }
    } else if (status == 503) {
        *type = "service_unavailable_error";
    } else if (status >= 500) {
        *type = "server_error";
    } else {
        *type = "invalid_request_error";
    }
}

static const char *status_text(int status)
{
    switch (status) {
    case 400: return "the request is not valid";
    case 401: return "a valid API key is required";
    case 403: return "this API key may not do that";
    case 404: return "not found";
    case 405: return "method not allowed";
    case 413: return "the request is too large";
    case 429: return "too many requests";
    case 503: return "the service is unavailable";
    default:  return status >= 500 ? "the server had an error" : "the request failed";
    }
}

/* {"error":{"message","type","param","code"}}: a new reference */
static json_t *error_body(int status, const char *code, const char *param,
                          const char *message)
{
    const char *type, *oai_code;

    error_kind(status, code, &type, &oai_code);
    return json_pack("{s:{s:s, s:s, s:s?, s:s?}}", "error",
                     "message", message && *message ? message : status_text(status),
                     "type", type, "param", param, "code", oai_code);
}

/* the shape of every error the core answers under /v1/ */
static json_t *error_format(plx_request_t *r, int status, const char *code,
                            const char *detail, void *arg)
{
    (void)r;
    (void)arg;
    return error_body(status, code, NULL, detail);
}

static plx_status_t reply_body(plx_request_t *r, int status, json_t *body)
{
    if (!body)
        return PLX_ERR_NOMEM;
    return plx_reply_json(r, status, body);
}

/* Answer an error in OpenAI's shape. retry_after_s > 0 adds Retry-After;
 * a spent quota also says x-should-retry: false, so the SDKs do not spin
 * on it (they obey that header before their own retry policy). */
static PLX_PRINTF(6, 7) plx_status_t
reply_error(plx_request_t *r, int status, const char *code, const char *param,
            long retry_after_s, const char *fmt, ...)
{
    char msg[AI_ERRMSG_MAX + 64];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (retry_after_s > 0) {
        char v[24];

        snprintf(v, sizeof v, "%ld", retry_after_s);
        plx_response_header(r, "Retry-After", v);
    }
    if (status == 429 && code && strcmp(code, "quota_exceeded") == 0)
        plx_response_header(r, "x-should-retry", "false");
    return reply_body(r, status, error_body(status, code, param, msg));
}

static plx_status_t reply_outcome(plx_request_t *r, const ai_outcome_t *o)
{
    int status = o->status >= 400 ? o->status : 502;

    return reply_error(r, status, o->code[0] ? o->code : "upstream_error", NULL,
                       o->retry_after_s, "%s", o->detail[0] ? o->detail : status_text(status));
}

static plx_status_t reply_invalid(plx_request_t *r, const ai_oai_err_t *err)
{
    return reply_error(r, 400, err->code ? err->code : "invalid_value", err->param, 0,
                       "%s", err->message);
}

static plx_status_t not_configured(plx_request_t *r)
{
    return reply_error(r, 503, "ai_not_configured", NULL, 0, "%s", ai_not_configured_detail);
}

/* ==== request fields ======================================================= */

static PLX_PRINTF(3, 4) bool
bad(ai_oai_err_t *err, const char *param, const char *fmt, ...)
{
    va_list ap;

    snprintf(err->param, sizeof err->param, "%s", param);
    err->code = "invalid_value";
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

/* an optional member; JSON null counts as absent, as OpenAI takes it */
static json_t *opt(json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);

    return json_is_null(v) ? NULL : v;
}

static bool opt_number(json_t *body, const char *key, double lo, double hi,
                       bool *has, double *out, ai_oai_err_t *err)
{
    json_t *v = opt(body, key);

    *has = false;
    if (!v)
        return true;
    if (!json_is_number(v) || json_number_value(v) < lo || json_number_value(v) > hi)
        return bad(err, key, "expected a number from %g to %g", lo, hi);
    *has = true;
    *out = json_number_value(v);
    return true;
}

static bool opt_integer(json_t *body, const char *key, long lo, long hi,
                        bool *has, long *out, ai_oai_err_t *err)
{
    json_t *v = opt(body, key);

    *has = false;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return bad(err, key, "expected an integer from %ld to %ld", lo, hi);
    *has = true;
    *out = (long)json_integer_value(v);
    return true;
}

static bool opt_bool(json_t *body, const char *key, bool *out, ai_oai_err_t *err)
{
    json_t *v = opt(body, key);

    *out = false;
    if (!v)
        return true;
    if (!json_is_boolean(v))
        return bad(err, key, "expected true or false");
    *out = json_is_true(v);
    return true;
}

static bool model_field(json_t *body, const char **model, ai_oai_err_t *err)
{
    json_t *v = opt(body, "model");

    if (!v)
        return bad(err, "model", "you must provide a model parameter");
    if (!json_is_string(v) || json_string_length(v) == 0
        || json_string_length(v) > AI_NAME_MAX)
        return bad(err, "model", "expected the name of a model (1 to %d characters)",
                   AI_NAME_MAX);
    *model = json_string_value(v);
    return true;
}

/* ==== chat completions: the request ====================================== */

typedef struct oai_chat {
    const char      *model;
    json_t          *messages;        /* canonical, owned */
    ai_chat_params_t params;          /* the rest borrowed from the body */
    bool             stream;
    bool             include_usage;
} oai_chat_t;

static bool stop_field(json_t *body, oai_chat_t *q, ai_oai_err_t *err)
{
    json_t *v = opt(body, "stop"), *s;
    size_t i;

    if (!v || json_is_string(v)) {
        q->params.stop = v;
        return true;
    }
    if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > OAI_MAX_STOP)
        return bad(err, "stop", "expected a string or an array of 1 to %d strings",
                   OAI_MAX_STOP);
    json_array_foreach(v, i, s) {
        if (!json_is_string(s))
            return bad(err, "stop", "expected a string or an array of 1 to %d strings",
                       OAI_MAX_STOP);
    }
    q->params.stop = v;
    return true;
}

/* json_schema names: a-zA-Z0-9_- and at most 64 */
static bool schema_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static bool response_format_field(json_t *body, oai_chat_t *q, ai_oai_err_t *err)
{
    json_t *v = opt(body, "response_format"), *js;
    const char *type;

    if (!v)
        return true;
    type = json_string_value(json_object_get(v, "type"));
    if (!json_is_object(v) || !type)
        return bad(err, "response_format", "expected {\"type\": \"text\" | \"json_object\" "
                   "| \"json_schema\"}");
    if (strcmp(type, "text") == 0)
        return true;
    if (strcmp(type, "json_object") == 0) {
        q->params.response_format = v;
        return true;
    }
    if (strcmp(type, "json_schema") != 0)
        return bad(err, "response_format.type", "expected \"text\", \"json_object\" or "
                   "\"json_schema\", found \"%.64s\"", type);
    js = json_object_get(v, "json_schema");
    if (!json_is_object(js))
        return bad(err, "response_format.json_schema", "expected an object with a name "
                   "and a schema");
    if (!schema_name_ok(json_string_value(json_object_get(js, "name"))))
        return bad(err, "response_format.json_schema.name", "expected 1 to 64 characters "
                   "of a-z, A-Z, 0-9, _ and -");
    if (json_object_get(js, "schema") && !json_is_object(json_object_get(js, "schema")))
        return bad(err, "response_format.json_schema.schema", "expected a JSON Schema object");
    q->params.response_format = v;
    return true;
}

static bool tools_fields(json_t *body, oai_chat_t *q, ai_oai_err_t *err)
{
    json_t *tools = opt(body, "tools"), *choice = opt(body, "tool_choice"), *t;
    char param[48];
    size_t i;

    if (tools) {
        if (!json_is_array(tools))
            return bad(err, "tools", "expected an array of tools");
        json_array_foreach(tools, i, t) {
            const char *type = json_string_value(json_object_get(t, "type"));

            snprintf(param, sizeof param, "tools[%zu]", i);
            if (!type || strcmp(type, "function") != 0) {
                bad(err, param, "only tools of type \"function\" are supported");
                err->code = "unsupported_value";
                return false;
            }
            if (!json_is_string(json_object_get(json_object_get(t, "function"), "name")))
                return bad(err, param, "expected {\"type\": \"function\", \"function\": "
                           "{\"name\", \"description\", \"parameters\"}}");
        }
        if (json_array_size(tools) > 0)
            q->params.tools = tools;
    }
    if (!choice)
        return true;
    if (!q->params.tools)
        return bad(err, "tool_choice", "\"tool_choice\" is only allowed when \"tools\" "
                   "are given");
    if (json_is_string(choice)) {
        const char *s = json_string_value(choice);

        if (strcmp(s, "none") != 0 && strcmp(s, "auto") != 0 && strcmp(s, "required") != 0)
            return bad(err, "tool_choice", "expected \"none\", \"auto\", \"required\" or "
                       "{\"type\": \"function\", \"function\": {\"name\"}}");
    } else if (!json_is_string(json_object_get(json_object_get(choice, "function"), "name"))) {
        return bad(err, "tool_choice", "expected \"none\", \"auto\", \"required\" or "
                   "{\"type\": \"function\", \"function\": {\"name\"}}");
    }
    q->params.tool_choice = choice;
    return true;
}

static bool stream_fields(json_t *body, oai_chat_t *q, ai_oai_err_t *err)
{
    json_t *so;

    if (!opt_bool(body, "stream", &q->stream, err))
        return false;
    so = opt(body, "stream_options");
    if (!so)
        return true;
    if (!q->stream)
        return bad(err, "stream_options", "\"stream_options\" is only allowed when "
                   "\"stream\" is true");
    if (!json_is_object(so))
        return bad(err, "stream_options", "expected an object");
    if (!opt_bool(so, "include_usage", &q->include_usage, err)) {
        snprintf(err->param, sizeof err->param, "stream_options.include_usage");
        return false;
    }
    return true;
}

static bool output_bound(json_t *body, oai_chat_t *q, ai_oai_err_t *err)
{
    long hi = ai_cfg.max_output_tokens > 0 ? ai_cfg.max_output_tokens : LONG_MAX;
    long v1 = 0, v2 = 0, n = 1;
    bool h1, h2, hn;

    if (!opt_integer(body, "max_tokens", 1, hi, &h1, &v1, err)
        || !opt_integer(body, "max_completion_tokens", 1, hi, &h2, &v2, err))
        return false;
    q->params.max_tokens = h2 ? v2 : h1 ? v1 : 0;
    if (!opt_integer(body, "n", 1, 128, &hn, &n, err))
        return false;
    if (n != 1) {
        bad(err, "n", "only n = 1 is supported");
        err->code = "unsupported_value";
        return false;
    }
    return true;
}

static bool chat_parse(json_t *body, oai_chat_t *q, ai_oai_err_t *err)
{
    json_t *user;

    if (!json_is_object(body))
        return bad(err, "", "expected a JSON object");
    if (!model_field(body, &q->model, err))
        return false;
    if (!opt(body, "messages"))
        return bad(err, "messages", "you must provide a messages parameter");
    q->messages = ai_oai_messages(opt(body, "messages"), "messages", OAI_MAX_MESSAGES, err);
    if (!q->messages)
        return false;
    q->params.messages = q->messages;
    if (!output_bound(body, q, err)
        || !opt_number(body, "temperature", 0.0, 2.0, &q->params.has_temperature,
                       &q->params.temperature, err)
        || !opt_number(body, "top_p", 0.0, 1.0, &q->params.has_top_p, &q->params.top_p, err)
        || !stop_field(body, q, err) || !response_format_field(body, q, err)
        || !tools_fields(body, q, err) || !stream_fields(body, q, err))
        return false;
    user = opt(body, "user");
    if (user && (!json_is_string(user) || json_string_length(user) > OAI_USER_MAX))
        return bad(err, "user", "expected a string of at most %d characters", OAI_USER_MAX);
    q->params.user_tag = json_string_value(user);
    return true;
}

/* ==== chat completions: the answer ======================================== */

static json_t *usage_json(const ai_outcome_t *o)
{
    json_int_t p = o->usage.prompt_tokens, c = o->usage.completion_tokens;

    return json_pack("{s:I, s:I, s:I}", "prompt_tokens", p, "completion_tokens", c,
                     "total_tokens", p + c);
}

static const char *finish_reason(const ai_outcome_t *o)
{
    if (o->res.finish_reason[0])
        return o->res.finish_reason;
    return json_array_size(o->res.tool_calls) > 0 ? "tool_calls" : "stop";
}

/* the reply text as a JSON string, made valid UTF-8 if it was not */
static json_t *text_json(const char *text, size_t len)
{
    ai_utf8_carry_t carry = { .n = 0 };
    size_t n = 0;
    char *s = ai_utf8_piece(&carry, text ? text : "", text ? len : 0, true, &n);
    json_t *j = s ? json_stringn(s, n) : NULL;

    free(s);
    return j;
}

static plx_status_t reply_completion(plx_request_t *r, const oai_chat_t *q,
                                     const ai_outcome_t *o)
{
    char id[OAI_ID_MAX];
    bool calls = json_array_size(o->res.tool_calls) > 0;
    json_t *content = calls && o->res.text_len == 0 ? json_null()
                      : text_json(o->res.text, o->res.text_len);
    json_t *message, *body;

    if (!content)
        return PLX_ERR_NOMEM;
    message = json_pack("{s:s, s:o, s:n}", "role", "assistant", "content", content,
                        "refusal");
    if (message && calls)
        json_object_set(message, "tool_calls", o->res.tool_calls);
    ai_oai_id(id, sizeof id, "chatcmpl-");
    body = json_pack("{s:s, s:s, s:I, s:s, s:[{s:i, s:o, s:n, s:s}], s:o}",
                     "id", id, "object", "chat.completion",
                     "created", (json_int_t)time(NULL), "model", q->model,
                     "choices", "index", 0, "message", message, "logprobs",
                     "finish_reason", finish_reason(o), "usage", usage_json(o));
    return reply_body(r, 200, body);
}

/* one streamed completion */
typedef struct oai_stream {
    plx_request_t  *r;
    const oai_chat_t *q;
    plx_sse_t      *sse;              /* NULL until opened */
    char            id[OAI_ID_MAX];   /* the same on every chunk */
    json_int_t      created;
    ai_utf8_carry_t carry;
    double          wait_since;       /* ms, when the call began */
    double          last_write;       /* ms */
    bool            gone;             /* the client went away */
} oai_stream_t;

/* a chunk with these choices (stolen); usage stolen too, or NULL */
static bool chunk_send(oai_stream_t *s, json_t *choices, json_t *usage)
{
    json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", s->id,
                          "object", "chat.completion.chunk", "created", s->created,
                          "model", s->q->model, "choices", choices);
    char *text;
    plx_status_t st;

    if (c && s->q->include_usage)
        json_object_set_new(c, "usage", usage ? usage : json_null());
    else
        json_decref(usage);
    text = c ? json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(c);
    if (!text)
        return false;
    st = plx_sse_send(s->sse, NULL, text, strlen(text));
    free(text);
    s->last_write = ai_oai_now_ms();
    if (st == PLX_ERR_GONE)
        s->gone = true;
    return st == PLX_OK;
}

/* a chunk with one choice: delta (stolen) and finish_reason (or NULL) */
static bool delta_send(oai_stream_t *s, json_t *delta, const char *finish)
{
    json_t *choices = json_pack("[{s:i, s:o, s:n, s:s?}]", "index", 0, "delta", delta,
                                "logprobs", "finish_reason", finish);

    return choices && chunk_send(s, choices, NULL);
}

/* Open the stream and send the first chunk (role, empty content). */
static bool stream_open(oai_stream_t *s)
{
    if (s->sse)
        return !s->gone;
    if (s->gone)
        return false;
    s->sse = plx_sse_begin(s->r);
    if (!s->sse) {
        s->gone = true;
        return false;
    }
    return delta_send(s, json_pack("{s:s, s:s}", "role", "assistant", "content", ""), NULL);
}

static bool text_send(oai_stream_t *s, const char *text, size_t len, bool last)
{
    size_t n = 0;
    char *piece = ai_utf8_piece(&s->carry, text, len, last, &n);
    bool ok;

    if (!piece)
        return false;
    ok = n == 0 || delta_send(s, json_pack("{s:s%}", "content", piece, n), NULL);
    free(piece);
    return ok;
}

static bool stream_delta(void *ud, const char *text, size_t len)
{
    oai_stream_t *s = ud;

    return stream_open(s) && text_send(s, text, len, false);
}

/* Polled while the gateway waits on the provider: open the stream once the
 * wait is long enough, then write a comment now and then, so a client that
 * left is found by a failed write. */
static bool stream_cancelled(void *ud)
{
    oai_stream_t *s = ud;
    double now = ai_oai_now_ms();

    if (s->gone)
        return true;
    if (!s->sse) {
        if (now - s->wait_since < OAI_OPEN_AFTER_MS)
            return false;
        return !stream_open(s);
    }
    if (now - s->last_write >= OAI_COMMENT_MS) {
        s->last_write = now;
        if (plx_sse_comment(s->sse, NULL) == PLX_ERR_GONE)
            s->gone = true;
    }
    if (plx_sse_closed(s->sse))
        s->gone = true;
    return s->gone;
}

/* the end of a complete reply: what is left of the text, the tool calls,
 * the finish reason, the usage chunk when asked, [DONE] */
static void stream_finish(oai_stream_t *s, const ai_outcome_t *o)
{
    json_t *calls = o->res.tool_calls, *call, *out;
    size_t i;

    if (!stream_open(s) || !text_send(s, "", 0, true))
        return;
    if (json_array_size(calls) > 0) {
        out = json_array();
        json_array_foreach(calls, i, call) {
            json_t *c = json_deep_copy(call);

            if (c) {
                json_object_set_new(c, "index", json_integer((json_int_t)i));
                json_array_append_new(out, c);
            }
        }
        if (!delta_send(s, json_pack("{s:o}", "tool_calls", out), NULL))
            return;
    }
    if (!delta_send(s, json_object(), finish_reason(o)))
        return;
    if (s->q->include_usage && !chunk_send(s, json_array(), usage_json(o)))
        return;
    plx_sse_send(s->sse, NULL, "[DONE]", 6);
}

static void stream_error(oai_stream_t *s, const ai_outcome_t *o)
{
    int status = o->status >= 400 ? o->status : 502;
    json_t *e;
    char *text;

    if (s->gone || !text_send(s, "", 0, true))
        return;
    e = error_body(status, o->code[0] ? o->code : "upstream_error", NULL,
                   o->detail[0] ? o->detail : o->res.message);
    text = e ? json_dumps(e, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (text)
        plx_sse_send(s->sse, NULL, text, strlen(text));
    free(text);
    json_decref(e);
}

static plx_status_t complete_streamed(plx_request_t *r, const oai_chat_t *q, ai_call_t *c)
{
    oai_stream_t s = { .r = r, .q = q, .created = (json_int_t)time(NULL) };
    ai_outcome_t o;
    plx_status_t st;

    memset(&o, 0, sizeof o);
    ai_oai_id(s.id, sizeof s.id, "chatcmpl-");
    s.wait_since = s.last_write = ai_oai_now_ms();
    c->sink = (ai_sink_t){ .delta = stream_delta, .cancelled = stream_cancelled, .ud = &s };
    st = ai_gateway_chat(c, &o);
    if (st == PLX_OK)
        stream_finish(&s, &o);
    else if (s.sse)
        stream_error(&s, &o);
    else if (!s.gone)
        st = reply_outcome(r, &o);
    if (s.gone)
        plx_rlog(ai_module, r, PLX_LOG_INFO, "completion stream %s: the client went away",
                 s.id);
    ai_outcome_clear(&o);
    return PLX_OK;
}

static plx_status_t chat_completions(plx_request_t *r, void *arg)
{
    oai_chat_t q;
    ai_oai_err_t err = { .code = NULL };
    ai_outcome_t o;
    json_t *body;
    plx_status_t st;

    (void)arg;
    if (!ai_configured())
        return not_configured(r);
    if (plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;   /* answered by the core, in our shape */
    memset(&q, 0, sizeof q);
    if (!chat_parse(body, &q, &err)) {
        json_decref(q.messages);
        return reply_invalid(r, &err);
    }
    ai_call_t c = {
        .r = r, .user_id = plx_request_user_id(r), .team_id = NULL,
        .request_id = plx_request_id(r), .kind = "completions", .model = q.model,
        .params = q.params, .stream = q.stream,
    };
    if (q.stream) {
        st = complete_streamed(r, &q, &c);
    } else {
        memset(&o, 0, sizeof o);
        if (ai_gateway_chat(&c, &o) == PLX_OK)
            st = reply_completion(r, &q, &o);
        else
            st = reply_outcome(r, &o);
        ai_outcome_clear(&o);
    }
    json_decref(q.messages);
    return st;
}

/* ==== embeddings ============================================================= */

typedef struct oai_embed {
    const char  *model;
    const char **inputs;      /* borrowed from the body, in r's pool */
    size_t       n;
    bool         base64;
    long         dimensions;  /* 0: the model's own */
} oai_embed_t;

static bool input_field(plx_request_t *r, json_t *body, oai_embed_t *q, ai_oai_err_t *err)
{
    json_t *in = opt(body, "input"), *s;
    char param[32];
    size_t i;

    if (!in)
        return bad(err, "input", "you must provide an input parameter");
    if (json_is_string(in)) {
        if (json_string_length(in) == 0)
            return bad(err, "input", "expected a non-empty string");
        q->inputs = plx_palloc(r, sizeof *q->inputs);
        if (!q->inputs)
            return bad(err, "input", "out of memory");
        q->inputs[0] = json_string_value(in);
        q->n = 1;
        return true;
    }
    if (!json_is_array(in) || json_array_size(in) == 0 || json_array_size(in) > OAI_MAX_INPUTS)
        return bad(err, "input", "expected a string or an array of 1 to %d strings",
                   OAI_MAX_INPUTS);
    if (json_is_integer(json_array_get(in, 0)) || json_is_array(json_array_get(in, 0))) {
        bad(err, "input", "token arrays are not supported: send the text as a string or "
            "an array of strings");
        err->code = "unsupported_value";
        return false;
    }
    q->inputs = plx_palloc(r, json_array_size(in) * sizeof *q->inputs);
    if (!q->inputs)
        return bad(err, "input", "out of memory");
    json_array_foreach(in, i, s) {
        snprintf(param, sizeof param, "input[%zu]", i);
        if (!json_is_string(s) || json_string_length(s) == 0)
            return bad(err, param, "expected a non-empty string");
        q->inputs[i] = json_string_value(s);
    }
    q->n = json_array_size(in);
    return true;
}

static bool embed_parse(plx_request_t *r, json_t *body, oai_embed_t *q, ai_oai_err_t *err)
{
    json_t *fmt, *user;
    bool has;

    if (!json_is_object(body))
        return bad(err, "", "expected a JSON object");
    if (!model_field(body, &q->model, err) || !input_field(r, body, q, err))
        return false;
    fmt = opt(body, "encoding_format");
    if (fmt && !(json_is_string(fmt) && (strcmp(json_string_value(fmt), "float") == 0
                                         || strcmp(json_string_value(fmt), "base64") == 0)))
        return bad(err, "encoding_format", "expected \"float\" or \"base64\"");
    q->base64 = fmt && strcmp(json_string_value(fmt), "base64") == 0;
    if (!opt_integer(body, "dimensions", 1, OAI_MAX_DIMENSIONS, &has, &q->dimensions, err))
        return false;
    user = opt(body, "user");
    if (user && !json_is_string(user))
        return bad(err, "user", "expected a string");
    return true;
}

/* standard base64 with padding (RFC 4648 section 4) of n floats as
 * little-endian IEEE 754 binary32, whatever the host's byte order, as
 * OpenAI's encoding_format "base64" gives them; NULL when out of memory */
static json_t *floats_base64(const float *v, size_t n)
{
    unsigned char *raw;
    char *out;
    json_t *j = NULL;

    if (n > (SIZE_MAX / 4 - 4) / 2)
        return NULL;
    raw = malloc(n ? n * 4 : 1);
    out = malloc(PLX_B64_LEN(n * 4));
    for (size_t i = 0; raw && i < n; i++) {
        uint32_t u;

        memcpy(&u, &v[i], 4);
        for (int k = 0; k < 4; k++)
            raw[i * 4 + (size_t)k] = (unsigned char)((u >> (8 * k)) & 0xff);
    }
    if (raw && out
        && plx_base64_encode(PLX_B64_STD, raw, n * 4, out, PLX_B64_LEN(n * 4)) != (size_t)-1)
        j = json_string(out);
    free(raw);
    free(out);
    return j;
}

static json_t *vector_json(const float *v, size_t dim, bool base64)
{
    json_t *a;

    if (base64)
        return floats_base64(v, dim);
    a = json_array();
    for (size_t i = 0; a && i < dim; i++) {
        if (json_array_append_new(a, json_real((double)v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static plx_status_t reply_embeddings(plx_request_t *r, const oai_embed_t *q,
                                     const ai_embed_result_t *res, const ai_outcome_t *o)
{
    json_t *data = json_array(), *body;
    json_int_t tokens = o->usage.prompt_tokens;

    if (!data)
        return PLX_ERR_NOMEM;
    for (size_t i = 0; i < res->n; i++) {
        json_t *vec = vector_json(res->vectors + i * res->dim, res->dim, q->base64);

        if (!vec || json_array_append_new(data, json_pack("{s:s, s:I, s:o}", "object",
                                                          "embedding", "index", (json_int_t)i,
                                                          "embedding", vec)) != 0) {
            json_decref(data);
            return PLX_ERR_NOMEM;
        }
    }
    body = json_pack("{s:s, s:o, s:s, s:{s:I, s:I}}", "object", "list", "data", data,
                     "model", q->model, "usage", "prompt_tokens", tokens,
                     "total_tokens", tokens);
    return reply_body(r, 200, body);
}

static plx_status_t embeddings(plx_request_t *r, void *arg)
{
    oai_embed_t q = { .model = NULL };
    ai_oai_err_t err = { .code = NULL };
    ai_embed_result_t res;
    ai_outcome_t o;
    json_t *body;
    plx_status_t st;

    (void)arg;
    if (!ai_configured())
        return not_configured(r);
    if (plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;
    if (!embed_parse(r, body, &q, &err))
        return reply_invalid(r, &err);
    memset(&res, 0, sizeof res);
    memset(&o, 0, sizeof o);
    st = ai_gateway_embed(r, plx_request_user_id(r), NULL, "embeddings", q.model,
                          q.inputs, q.n, q.dimensions, &res, &o);
    if (st != PLX_OK) {
        st = reply_outcome(r, &o);
    } else if (res.n != q.n || res.dim == 0 || !res.vectors) {
        plx_rlog(ai_module, r, PLX_LOG_ERROR, "embeddings from \"%s\": %zu vectors of %zu "
                 "floats for %zu inputs", q.model, res.n, res.dim, q.n);
        st = reply_error(r, 502, "upstream_error", NULL, 0, "the provider answered %zu "
                         "embeddings for %zu inputs", res.n, q.n);
    } else {
        st = reply_embeddings(r, &q, &res, &o);
    }
    ai_embed_result_clear(&res);
    ai_outcome_clear(&o);
    return st;
}

/* ==== models ================================================================= */

static json_t *model_json(const ai_model_t *m)
{
    return json_pack("{s:s, s:s, s:I, s:s}", "id", m->name, "object", "model",
                     "created", (json_int_t)m->created, "owned_by", m->provider);
}

static plx_status_t models_list(plx_request_t *r, void *arg)
{
    ai_model_t **v = NULL;
    size_t n = 0;
    json_t *data;

    (void)arg;
    if (!ai_configured())
        return not_configured(r);
    if (ai_model_list(&v, &n) != PLX_OK)
        return reply_error(r, 503, "database_unavailable", NULL, 2,
                           "the model list cannot be read right now");
    data = json_array();
    for (size_t i = 0; data && i < n; i++) {
        if (json_array_append_new(data, model_json(v[i])) != 0) {
            json_decref(data);
            data = NULL;
        }
    }
    ai_model_list_free(v, n);
    if (!data)
        return PLX_ERR_NOMEM;
    return reply_body(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static plx_status_t model_answer(plx_request_t *r, const char *name)
{
    ai_model_t *m = NULL;
    plx_status_t st;

    if (!ai_configured())
        return not_configured(r);
    st = ai_model_get(name, &m);
    if (st == PLX_ERR_NOT_FOUND)
        return reply_error(r, 404, "model_not_found", "model", 0, "The model `%.*s` does "
                           "not exist or you do not have access to it.", AI_NAME_MAX, name);
    if (st != PLX_OK)
        return reply_error(r, 503, "database_unavailable", NULL, 2,
                           "the model cannot be read right now");
    st = reply_body(r, 200, model_json(m));
    ai_model_free(m);
    return st;
}

static plx_status_t model_get(plx_request_t *r, void *arg)
{
    (void)arg;
    return model_answer(r, plx_request_param(r, "model"));
}

/* names such as "meta-llama/Llama-3.1-8B": the SDKs put them in the path
 * unencoded, so they arrive as two segments */
static plx_status_t model_get_owned(plx_request_t *r, void *arg)
{
    char name[2 * AI_NAME_MAX + 2];

    (void)arg;
    snprintf(name, sizeof name, "%s/%s", plx_request_param(r, "owner"),
             plx_request_param(r, "model"));
    return model_answer(r, name);
}

/* ==== registration ============================================================ */

#define OAI_ROUTE(method, pattern, fn, summary) \
    { method, pattern, fn, PLX_AUTH_SCOPE, "ai", "ai", summary, "openai" }

static const plx_route_def_t oai_routes[] = {
    OAI_ROUTE("POST", "/v1/chat/completions", chat_completions,
              "OpenAI-compatible chat completion"),
    OAI_ROUTE("POST", "/v1/embeddings", embeddings, "OpenAI-compatible embeddings"),
    OAI_ROUTE("GET", "/v1/models", models_list, "OpenAI-compatible model list"),
    OAI_ROUTE("GET", "/v1/models/{model}", model_get, "OpenAI-compatible model"),
    OAI_ROUTE("GET", "/v1/models/{owner}/{model}", model_get_owned,
              "OpenAI-compatible model, a name with a slash"),
};
#undef OAI_ROUTE

bool ai_openai_routes(plx_module_t *m)
{
    return plx_error_format_add(m, "/v1/", error_format, NULL) == PLX_OK
           && plx_routes_add(m, oai_routes, NULL) == PLX_OK;
}
