/*
 * chat.c - POST /api/v1/ai/chat, and how every chat route answers
 *
 *   POST /api/v1/ai/chat {model?, messages | message, stream?, team_id?,
 *                         max_tokens?, temperature?, top_p?, stop?,
 *                         conversation_id?}
 *
 * One call, without history: `messages` is the whole exchange (system,
 * user and assistant turns), `message` a single user turn. With
 * conversation_id the turn goes to that conversation instead, exactly as
 * POST /api/v1/conversations/{id}/messages does (conversations.c). The
 * answer is whole,
 *
 *   {"id", "model", "message": {"role": "assistant", "content"},
 *    "finish_reason", "usage": {"prompt_tokens", "completion_tokens",
 *    "total_tokens", "estimated"}, "cost"}
 *
 * or, with "stream": true, the event stream chat.h describes. The reply
 * helpers below serve the conversation routes too.
 */
#include "config.h"

#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHAT_MESSAGES_MAX 2000
#define CHAT_STOP_MAX     4
#define CHAT_STOP_LEN     200

double chat_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the stream ------------------------------------------------------------ */

static bool stream_send(chat_reply_t *cr, const char *event, json_t *data)
{
    char *s = data ? json_dumps(data, JSON_COMPACT) : NULL;
    bool ok;

    json_decref(data);
    if (!s)
        return true;            /* a piece jansson cannot hold is skipped */
    ok = plx_sse_send(cr->sse, event, s, strlen(s)) == PLX_OK;
    free(s);
    if (!ok)
        cr->gone = true;
    cr->last_probe = chat_now();
    return ok;
}

/* open the event stream once, with its start event */
static bool stream_open(chat_reply_t *cr)
{
    if (cr->sse || cr->gone)
        return !cr->gone;
    if (!(cr->sse = plx_sse_begin(cr->r))) {
        cr->gone = true;
        return false;
    }
    return stream_send(cr, "start", json_pack("{s:s, s:s}", "id", cr->id,
                                              "model", cr->model ? cr->model : ""));
}

static bool sink_delta(void *ud, const char *text, size_t len)
{
    chat_reply_t *cr = ud;

    if (!cr->stream)
        return true;            /* the whole text comes in the outcome */
    if (!stream_open(cr))
        return false;
    return stream_send(cr, "delta", json_pack("{s:s%}", "content", text, len));
}

/* While the provider is silent, a comment at most every AI_PING_SECONDS:
 * a write is how a client that went away is noticed. */
static bool sink_cancelled(void *ud)
{
    chat_reply_t *cr = ud;
    double now;

    if (!cr->stream)
        return false;
    if (!stream_open(cr))
        return true;
    now = chat_now();
    if (now - cr->last_probe >= AI_PING_SECONDS) {
        cr->last_probe = now;
        if (plx_sse_comment(cr->sse, "") != PLX_OK)
            cr->gone = true;
    }
    return cr->gone || plx_sse_closed(cr->sse);
}

void chat_reply_sink(chat_reply_t *cr, ai_sink_t *sink)
{
    sink->delta = sink_delta;
    sink->cancelled = sink_cancelled;
    sink->ud = cr;
}

/* ---- the answer ---------------------------------------------------------------- */

/* the reply's text, without a character cut at its end */
static size_t text_len(const ai_outcome_t *o)
{
    size_t n = o->res.text ? o->res.text_len : 0;

    return n - ai_utf8_incomplete_tail(o->res.text, n);
}

static json_t *usage_json(const ai_outcome_t *o)
{
    long p = o->usage.prompt_tokens, c = o->usage.completion_tokens;

    return json_pack("{s:I, s:I, s:I, s:b}", "prompt_tokens", (json_int_t)p,
                     "completion_tokens", (json_int_t)c,
                     "total_tokens", (json_int_t)(p + c), "estimated", o->estimated);
}

static json_t *done_json(const chat_reply_t *cr, const ai_outcome_t *o)
{
    json_t *j = json_pack("{s:s, s:s, s:o, s:f}", "finish_reason",
                          o->res.finish_reason[0] ? o->res.finish_reason : "stop",
                          "model", o->served_model, "usage", usage_json(o),
                          "cost", o->cost);

    if (j && cr->message_id)
        json_object_set_new(j, "message_id", json_string(cr->message_id));
    if (j && cr->conversation_id)
        json_object_set_new(j, "conversation_id", json_string(cr->conversation_id));
    return j;
}

static plx_status_t reply_whole(chat_reply_t *cr, const ai_outcome_t *o)
{
    json_t *j = done_json(cr, o);
    json_t *msg = json_pack("{s:s, s:s%}", "role", "assistant", "content",
                            o->res.text ? o->res.text : "", text_len(o));

    if (!j || !msg) {
        json_decref(j);
        json_decref(msg);
        return PLX_ERR_NOMEM;
    }
    json_object_set_new(j, "id", json_string(cr->id));
    json_object_set_new(j, "message", msg);
    return plx_reply_json(cr->r, 200, j);
}

static plx_status_t reply_stream_end(chat_reply_t *cr, plx_status_t st,
                                     const ai_outcome_t *o)
{
    json_t *err;

    if (cr->gone || plx_sse_closed(cr->sse))
        return PLX_OK;          /* nobody to tell */
    if (st == PLX_OK) {
        stream_send(cr, "done", done_json(cr, o));
        return PLX_OK;
    }
    err = json_pack("{s:s, s:s, s:b}", "code", o->code, "message", o->detail,
                    "incomplete", o->res.started);
    if (err && cr->message_id)
        json_object_set_new(err, "message_id", json_string(cr->message_id));
    stream_send(cr, "error", err);
    return PLX_OK;
}

plx_status_t chat_reply_finish(chat_reply_t *cr, plx_status_t st,
                               const ai_outcome_t *o)
{
    if (cr->sse)
        return reply_stream_end(cr, st, o);
    if (st != PLX_OK)
        return ai_reply_outcome(cr->r, o);
    if (!cr->stream)
        return reply_whole(cr, o);
    /* a reply so quick and empty that no piece opened the stream */
    if (stream_open(cr))
        return reply_stream_end(cr, st, o);
    return PLX_OK;
}

/* ---- request fields ---------------------------------------------------------- */

static bool refuse(plx_request_t *r, const char *code, const char *field,
                   const char *why)
{
    plx_reply_problem(r, 400, code, "field \"%s\" %s", field, why);
    return false;
}

static bool stop_valid(json_t *v)
{
    size_t i;
    json_t *s;

    if (json_is_string(v))
        return json_string_length(v) > 0 && json_string_length(v) <= CHAT_STOP_LEN;
    if (!json_is_array(v) || json_array_size(v) == 0
        || json_array_size(v) > CHAT_STOP_MAX)
        return false;
    json_array_foreach(v, i, s) {
        if (!json_is_string(s) || json_string_length(s) == 0
            || json_string_length(s) > CHAT_STOP_LEN)
            return false;
    }
    return true;
}

bool chat_params_parse(plx_request_t *r, json_t *body, ai_chat_params_t *q)
{
    json_t *v;

    if ((v = json_object_get(body, "max_tokens")) && !json_is_null(v)) {
        if (!json_is_integer(v) || json_integer_value(v) < 1)
            return refuse(r, "invalid_field", "max_tokens", "must be a positive integer");
        q->max_tokens = json_integer_value(v) > ai_cfg.max_output_tokens
                        ? ai_cfg.max_output_tokens : (long)json_integer_value(v);
    }
    if ((v = json_object_get(body, "temperature")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 2)
            return refuse(r, "invalid_field", "temperature", "must be a number from 0 to 2");
        q->has_temperature = true;
        q->temperature = json_number_value(v);
    }
    if ((v = json_object_get(body, "top_p")) && !json_is_null(v)) {
        if (!json_is_number(v) || json_number_value(v) < 0 || json_number_value(v) > 1)
            return refuse(r, "invalid_field", "top_p", "must be a number from 0 to 1");
        q->has_top_p = true;
        q->top_p = json_number_value(v);
    }
    if ((v = json_object_get(body, "stop")) && !json_is_null(v)) {
        if (!stop_valid(v))
            return refuse(r, "invalid_field", "stop", "must be a string or an "
                          "array of 1 to 4 strings of 1 to 200 bytes");
        q->stop = v;
    }
    return true;
}

bool chat_team_allowed(plx_request_t *r, const char *team_id, plx_status_t *st)
{
    plx_role_t role = PLX_ROLE_NONE;

    *st = PLX_OK;
    if (!plx_uuid_valid(team_id)) {
        plx_reply_problem(r, 404, "not_found", "no such team");
        return false;
    }
    if ((*st = plx_team_role(r, team_id, &role)) != PLX_OK)
        return false;           /* the core answers (503) */
    if (role == PLX_ROLE_NONE) {
        plx_reply_problem(r, 404, "not_found", "no such team");
        return false;
    }
    if (role < PLX_ROLE_MEMBER) {
        plx_reply_problem(r, 403, "forbidden", "a viewer of the team cannot "
                          "charge AI calls to it");
        return false;
    }
    return true;
}

/* every member of body is one of fields, else 400 naming it */
static bool fields_known(plx_request_t *r, json_t *body,
                         const char *const *fields)
{
    const char *key;
    json_t *v;

    json_object_foreach(body, key, v) {
        const char *const *f = fields;
        while (*f && strcmp(*f, key) != 0)
            f++;
        if (!*f) {
            char name[40];
            snprintf(name, sizeof name, "%.32s", key);
            for (char *p = name; *p; p++)
                if ((unsigned char)*p < 0x20 || *p == '"' || (unsigned char)*p >= 0x80)
                    *p = '?';
            return refuse(r, "unknown_field", name, "is not a field of this request");
        }
    }
    return true;
}

static const char *const message_roles[] = { "system", "user", "assistant", NULL };

static bool message_valid(json_t *m)
{
    const char *role = json_string_value(json_object_get(m, "role"));
    const char *key;
    json_t *v;
    bool known = false;

    if (!json_is_object(m) || !role || !json_is_string(json_object_get(m, "content")))
        return false;
    for (const char *const *p = message_roles; *p; p++)
        known = known || strcmp(*p, role) == 0;
    json_object_foreach(m, key, v) {
        if (strcmp(key, "role") != 0 && strcmp(key, "content") != 0)
            return false;
    }
    return known;
}

/* the messages of the call (new reference), or NULL with 400 sent */
static json_t *chat_messages(plx_request_t *r, json_t *body)
{
    json_t *list = json_object_get(body, "messages");
    json_t *one = json_object_get(body, "message"), *m;
    size_t i;

    if ((list != NULL) == (one != NULL)) {
        plx_reply_problem(r, 400, "invalid_body", "expected either \"messages\" "
                          "(an array) or \"message\" (a string)");
        return NULL;
    }
    if (one) {
        if (!json_is_string(one) || json_string_length(one) == 0) {
            refuse(r, "invalid_field", "message", "must be a non-empty string");
            return NULL;
        }
        return json_pack("[{s:s, s:O}]", "role", "user", "content", one);
    }
    if (!json_is_array(list) || json_array_size(list) == 0
        || json_array_size(list) > CHAT_MESSAGES_MAX) {
        refuse(r, "invalid_field", "messages", "must be an array of 1 to 2000 messages");
        return NULL;
    }
    json_array_foreach(list, i, m) {
        if (!message_valid(m)) {
            plx_reply_problem(r, 400, "invalid_field", "field \"messages\": "
                              "message %zu must be {\"role\": \"system\", \"user\" "
                              "or \"assistant\", \"content\": a string}", i);
            return NULL;
        }
    }
    return json_incref(list);
}

/* optional string members of the body: NULL when absent or null */
bool chat_opt_string(plx_request_t *r, json_t *body, const char *name,
                     const char **out)
{
    json_t *v = json_object_get(body, name);

    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return refuse(r, "invalid_field", name, "must be a non-empty string");
    *out = json_string_value(v);
    return true;
}

bool chat_opt_bool(plx_request_t *r, json_t *body, const char *name, bool *out)
{
    json_t *v = json_object_get(body, name);

    *out = false;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_boolean(v))
        return refuse(r, "invalid_field", name, "must be true or false");
    *out = json_is_true(v);
    return true;
}

/* ---- the route ------------------------------------------------------------------ */

static const char *const chat_fields[] = {
    "model", "messages", "message", "stream", "team_id", "max_tokens",
    "temperature", "top_p", "stop", "conversation_id", NULL
};

static plx_status_t chat_call(plx_request_t *r, json_t *body, json_t *messages)
{
    const char *model, *team = NULL;
    chat_reply_t cr = { .r = r };
    ai_outcome_t o;
    plx_status_t st;
    ai_call_t c = {
        .r = r, .user_id = plx_request_user_id(r), .kind = "chat",
        .params.messages = messages,
    };

    if (!chat_opt_string(r, body, "model", &model)
        || !chat_opt_string(r, body, "team_id", &team)
        || !chat_opt_bool(r, body, "stream", &cr.stream)
        || !chat_params_parse(r, body, &c.params))
        return PLX_OK;
    if (team && !chat_team_allowed(r, team, &st))
        return st;
    if (plx_uuid_new(4, cr.id) != PLX_OK)
        return PLX_ERR_INTERNAL;
    c.model = cr.model = model ? model : ai_cfg.default_model;
    c.team_id = team;
    c.stream = cr.stream;
    chat_reply_sink(&cr, &c.sink);
    st = ai_gateway_chat(&c, &o);
    st = chat_reply_finish(&cr, st, &o);
    ai_outcome_clear(&o);
    return st;
}

static plx_status_t chat_post(plx_request_t *r, void *arg)
{
    json_t *body, *messages;
    const char *conv;
    plx_status_t st;

    (void)arg;
    if (plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;          /* answered by the core: 400 or 413 */
    if (!json_is_object(body))
        return plx_reply_problem(r, 400, "invalid_body", "expected a JSON object");
    if (!fields_known(r, body, chat_fields)
        || !chat_opt_string(r, body, "conversation_id", &conv))
        return PLX_OK;
    if (conv)
        return ai_conversation_chat(r, body, conv);
    if (!(messages = chat_messages(r, body)))
        return PLX_OK;
    st = chat_call(r, body, messages);
    json_decref(messages);
    return st;
}

static const plx_route_def_t chat_routes[] = {
    { "POST", "/api/v1/ai/chat", chat_post, PLX_AUTH_SCOPE, "ai", "ai",
      "chat with a model, whole or streamed (SSE)", "ai" },
};

bool ai_chat_routes(plx_module_t *m)
{
    return plx_routes_add(m, chat_routes, NULL) == PLX_OK
           && ai_conversation_routes(m);
}
