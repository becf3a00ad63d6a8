/*
 * ws.c - chat over one WebSocket: /api/v1/ai/ws
 *
 * JSON text messages. From the client:
 *   {"type":"chat","id":"c1","model"?,"messages":[...],"max_tokens"?,
 *    "team_id"?}                         a reply to these messages
 *   {"type":"chat","id":"c2","conversation_id":"...","content":"...",
 *    "model"?,"max_tokens"?}             the next turn of a conversation
 *   {"type":"cancel","id":"c1"}          stops one reply
 *   {"type":"ping"}                      answered {"type":"pong"}
 * Several replies run at once. From the server, each naming the client's
 * id:
 *   {"type":"start","id","model"}
 *   {"type":"delta","id","content"}      one per piece of text
 *   {"type":"done","id","finish_reason","usage":{...},"cost",
 *    "conversation_id"?,"message_id"?}
 *   {"type":"error","id","code","message"}   (id null when unknown)
 *   {"type":"cancelled","id"}
 * A message that is not JSON, or of an unknown type, is answered with an
 * error message, not a close; a binary frame closes with 1003.
 *
 * A conversation turn works as POST /api/v1/conversations/{id}/messages
 * does (conversations.c): the user's message is stored, the system prompt
 * and the history trimmed to the model's window are sent, and the reply is
 * stored, marked incomplete with the part that came when it was cut short
 * (an upstream failure, a cancel, a socket that closed). The team charged
 * is the conversation's.
 *
 * Threads. The message callback runs on the connection's thread and must
 * return to read the next frame (a cancel, say), so every reply runs on a
 * thread of its own, at most ai_cfg.ws_max_streams per socket, and does
 * its database work there. The list of replies is touched only by the
 * connection's thread (message and close callbacks); a reply's thread
 * shares with it only atomics. When the socket closes every reply is
 * cancelled (the gateway polls its sink and stops the upstream call) and
 * its thread joined before the state is freed. plx_ws_send is safe from
 * several threads.
 *
 * Usage rows are of kind "ws", charged to the user of the upgrade request
 * and to team_id when given (the user must be a member, not a viewer).
 */
#include "config.h"

#include "ai.h"
#include "chat.h"
#include "oai.h"

#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_ID_MAX        128
#define WS_MAX_MESSAGES  4096
#define WS_UUID_LEN      36

/* $1 conversation, $2 user: the conversation, if it is the user's */
static const char conv_sql[] =
    "SELECT team_id::text, model, system FROM ai.conversations"
    " WHERE id = $1::uuid AND user_id = $2::uuid";

/* $1 team, $2 user: may the user charge the team (a member, not a viewer) */
static const char team_sql[] =
    "SELECT 1 FROM plexus.team_members WHERE team_id = $1::uuid"
    " AND user_id = $2::uuid AND role <> 'viewer'";

typedef struct ws_conn ws_conn_t;

typedef struct ws_reply {
    struct ws_reply *next;
    ws_conn_t       *conn;
    char             id[WS_ID_MAX + 1];
    char             model[AI_NAME_MAX + 1];     /* "": the conversation's */
    char             team_id[WS_UUID_LEN + 1];   /* "" when none */
    char             conversation_id[WS_UUID_LEN + 1];   /* "" when none */
    char             message_id[WS_UUID_LEN + 1];        /* the stored reply */
    char             request_id[96];
    char            *content;                    /* a conversation's turn */
    json_t          *messages;                   /* canonical, owned */
    long             max_tokens;
    ai_utf8_carry_t  carry;
    bool             started;                    /* "start" went out */
    atomic_bool      cancel;
    atomic_bool      finished;                   /* the thread is done */
    pthread_t        thread;
} ws_reply_t;

struct ws_conn {
    plx_ws_t   *ws;
    char        user_id[64];
    char        request_id[64];       /* of the upgrade request */
    ws_reply_t *replies;              /* the connection's thread only */
    unsigned    seq;                  /* replies started, for request ids */
    atomic_bool closing;
};

/* ==== sending ============================================================== */

/* send msg (stolen) as one text message; false when the socket is gone */
static bool send_json(ws_conn_t *c, json_t *msg)
{
    char *text = msg ? json_dumps(msg, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    plx_status_t st;

    json_decref(msg);
    if (!text)
        return false;
    st = plx_ws_send(c->ws, 1, text, strlen(text));
    free(text);
    return st == PLX_OK;
}

/* id may be NULL (a message we could not read) */
static bool send_error(ws_conn_t *c, const char *id, const char *code, const char *message)
{
    return send_json(c, json_pack("{s:s, s:s?, s:s, s:s}", "type", "error", "id", id,
                                  "code", code, "message", message));
}

static PLX_PRINTF(4, 5) bool
send_errorf(ws_conn_t *c, const char *id, const char *code, const char *fmt, ...)
{
    char msg[AI_ERRMSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return send_error(c, id, code, msg);
}

/* ==== one reply, on its own thread ======================================== */

/* The last message of a reply. The reply is marked finished first, so the
 * client may reuse its id as soon as it reads this: the connection's
 * thread then joins this one, which is about to return. */
static bool reply_last(ws_reply_t *w, json_t *msg)
{
    atomic_store(&w->finished, true);
    return send_json(w->conn, msg);
}

static PLX_PRINTF(3, 4) bool
reply_fail(ws_reply_t *w, const char *code, const char *fmt, ...)
{
    char msg[AI_ERRMSG_MAX];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    reply_last(w, json_pack("{s:s, s:s, s:s, s:s}", "type", "error", "id", w->id,
                            "code", code, "message", msg));
    return false;
}

static bool reply_start(ws_reply_t *w)
{
    if (w->started)
        return true;
    w->started = true;
    return send_json(w->conn, json_pack("{s:s, s:s, s:s}", "type", "start", "id", w->id,
                                        "model", w->model));
}

static bool reply_text(ws_reply_t *w, const char *text, size_t len, bool last)
{
    size_t n = 0;
    char *piece = ai_utf8_piece(&w->carry, text, len, last, &n);
    bool ok;

    if (!piece)
        return false;
    ok = n == 0 || send_json(w->conn, json_pack("{s:s, s:s, s:s%}", "type", "delta",
                                                "id", w->id, "content", piece, n));
    free(piece);
    return ok;
}

static bool reply_stopped(const ws_reply_t *w)
{
    return atomic_load(&w->cancel) || atomic_load(&w->conn->closing);
}

static bool sink_delta(void *ud, const char *text, size_t len)
{
    ws_reply_t *w = ud;

    if (reply_stopped(w))
        return false;
    return reply_start(w) && reply_text(w, text, len, false);
}

/* polled while the gateway waits on the provider: by then the model is
 * known and the quota reserved, so the reply has started */
static bool sink_cancelled(void *ud)
{
    ws_reply_t *w = ud;

    if (reply_stopped(w))
        return true;
    return !reply_start(w);
}

/* one statement off any request; *res (freed by the caller) on PLX_OK */
static plx_status_t db_run(const char *sql, int n, const char *const *params,
                           plx_db_res_t **res)
{
    plx_status_t st = plx_db_query(NULL, sql, n, params, res);

    if (st != PLX_OK) {
        plx_db_free(*res);
        *res = NULL;
    }
    return st;
}

static bool db_failed(ws_reply_t *w, const char *what)
{
    plx_log(ai_module, PLX_LOG_ERROR, "ws %s: %s failed", w->request_id, what);
    return reply_fail(w, "database_unavailable", "%s failed; try again", what);
}

/* may the user charge the team? members and up may; viewers and strangers
 * may not */
static bool team_allowed(ws_reply_t *w, const char *code, const char *message)
{
    const char *params[2] = { w->team_id, w->conn->user_id };
    plx_db_res_t *res = NULL;
    bool ok;

    if (db_run(team_sql, 2, params, &res) != PLX_OK)
        return db_failed(w, "checking the team");
    ok = plx_db_rows(res) == 1;
    plx_db_free(res);
    if (!ok)
        reply_fail(w, code, "%s", message);
    return ok;
}

/* the conversation's history for the call, as conversations.c reads it */
static bool conv_history(ws_reply_t *w, const char *system, long window)
{
    plx_status_t st;

    w->messages = ai_conv_history(w->conversation_id, system, window, w->max_tokens, &st);
    if (w->messages)
        return true;
    if (st == PLX_ERR_NOMEM) {
        reply_fail(w, "internal", "out of memory");
        return false;
    }
    return db_failed(w, "reading the conversation");
}

/* the conversation's model (unless the chat named one), its window */
static bool conv_model(ws_reply_t *w, const char *conv_model_name, long *window)
{
    ai_model_t *m = NULL;
    plx_status_t st;

    if (!w->model[0])
        snprintf(w->model, sizeof w->model, "%s", conv_model_name ? conv_model_name : "");
    st = ai_model_get(w->model, &m);
    if (st == PLX_ERR_NOT_FOUND) {
        reply_fail(w, "model_not_found", "no model \"%.128s\" (or it is "
                    "disabled)", w->model);
        return false;
    }
    if (st != PLX_OK)
        return db_failed(w, "reading the model");
    *window = m->context_window;
    ai_model_free(m);
    return true;
}

/* A conversation's turn: check it is the user's, store the user's
 * message, read the history back. */
static bool conv_prepare(ws_reply_t *w)
{
    const char *params[2] = { w->conversation_id, w->conn->user_id };
    plx_db_res_t *res = NULL;
    plx_status_t st = PLX_OK;
    long window = 0;
    bool ok;

    if (db_run(conv_sql, 2, params, &res) != PLX_OK)
        return db_failed(w, "reading the conversation");
    if (plx_db_rows(res) != 1) {
        plx_db_free(res);
        reply_fail(w, "not_found", "no such conversation");
        return false;
    }
    if (plx_db_value(res, 0, 0))
        snprintf(w->team_id, sizeof w->team_id, "%s", plx_db_value(res, 0, 0));
    ok = (!w->team_id[0] || team_allowed(w, "forbidden", "this conversation is charged "
                                         "to a team in which you are no longer a member"))
         && conv_model(w, plx_db_value(res, 0, 1), &window);
    if (ok && (st = ai_conv_user_turn(w->conversation_id, w->content)) != PLX_OK) {
        if (st == PLX_ERR_NOT_FOUND)
            reply_fail(w, "not_found", "no such conversation");
        else
            db_failed(w, "storing the message");
        ok = false;
    }
    ok = ok && conv_history(w, plx_db_value(res, 0, 2), window);
    plx_db_free(res);
    return ok;
}

/* the reply, or the part that came, as the conversation's next message */
static void conv_store(ws_reply_t *w, plx_status_t st, const ai_outcome_t *o)
{
    char id[37];

    if (plx_uuid_new(4, id) == PLX_OK && ai_conv_reply_store(w->conversation_id, id, st, o))
        memcpy(w->message_id, id, sizeof id);
}

static void reply_done(ws_reply_t *w, const ai_outcome_t *o)
{
    json_int_t p = o->usage.prompt_tokens, n = o->usage.completion_tokens;
    const char *finish = o->res.finish_reason[0] ? o->res.finish_reason : "stop";
    json_t *msg;

    if (!reply_start(w) || !reply_text(w, "", 0, true))
        return;
    msg = json_pack("{s:s, s:s, s:s, s:{s:I, s:I, s:I}, s:f}", "type", "done",
                    "id", w->id, "finish_reason", finish, "usage",
                    "prompt_tokens", p, "completion_tokens", n,
                    "total_tokens", p + n, "cost", o->cost);
    if (msg && w->conversation_id[0]) {
        json_object_set_new(msg, "conversation_id", json_string(w->conversation_id));
        if (w->message_id[0])
            json_object_set_new(msg, "message_id", json_string(w->message_id));
    }
    reply_last(w, msg);
}

/* what the client hears once the call has ended */
static void reply_tell(ws_reply_t *w, plx_status_t st, const ai_outcome_t *o)
{
    if (atomic_load(&w->conn->closing))
        return;   /* nobody to tell */
    if (st == PLX_OK) {
        reply_done(w, o);
    } else if (atomic_load(&w->cancel) || o->res.err == AI_ERR_CANCELLED) {
        reply_last(w, json_pack("{s:s, s:s}", "type", "cancelled", "id", w->id));
    } else {
        if (w->started)
            reply_text(w, "", 0, true);
        reply_fail(w, o->code[0] ? o->code : "upstream_error", "%s",
                   o->detail[0] ? o->detail : o->res.message[0] ? o->res.message
                                                                : "the call failed");
    }
}

static void reply_run(ws_reply_t *w)
{
    ai_outcome_t o;
    plx_status_t st;

    if (w->conversation_id[0] ? !conv_prepare(w)
                              : w->team_id[0] && !team_allowed(w, "team_not_found",
                                    "no team with this id in which you may chat"))
        return;
    ai_call_t call = {
        .r = NULL, .user_id = w->conn->user_id, .team_id = w->team_id[0] ? w->team_id : NULL,
        .request_id = w->request_id, .kind = "ws", .model = w->model,
        .params = { .messages = w->messages, .max_tokens = w->max_tokens },
        .stream = true,
        .sink = { .delta = sink_delta, .cancelled = sink_cancelled, .ud = w },
    };
    memset(&o, 0, sizeof o);
    st = ai_gateway_chat(&call, &o);
    if (w->conversation_id[0])
        conv_store(w, st, &o);
    reply_tell(w, st, &o);
    ai_outcome_clear(&o);
}

static void *reply_main(void *arg)
{
    ws_reply_t *w = arg;

    reply_run(w);
    atomic_store(&w->finished, true);
    return NULL;
}

static void reply_free(ws_reply_t *w)
{
    json_decref(w->messages);
    free(w->content);
    free(w);
}

/* ==== the connection's thread ============================================== */

/* join and free the replies whose thread has finished; how many are left */
static size_t replies_reap(ws_conn_t *c)
{
    ws_reply_t **pp = &c->replies;
    size_t left = 0;

    while (*pp) {
        ws_reply_t *w = *pp;

        if (atomic_load(&w->finished)) {
            pthread_join(w->thread, NULL);
            *pp = w->next;
            reply_free(w);
        } else {
            left++;
            pp = &w->next;
        }
    }
    return left;
}

static ws_reply_t *reply_find(ws_conn_t *c, const char *id)
{
    for (ws_reply_t *w = c->replies; w; w = w->next) {
        if (!atomic_load(&w->finished) && strcmp(w->id, id) == 0)
            return w;
    }
    return NULL;
}

/* the model a chat names, else the default one (or, for a conversation,
 * "": its own); false after telling the client */
static bool chat_model(ws_conn_t *c, json_t *msg, const char *id, ws_reply_t *w,
                       bool conversation)
{
    json_t *model = json_object_get(msg, "model");
    const char *name = json_string_value(model);

    if (!model || json_is_null(model))
        name = conversation ? "" : ai_cfg.default_model;
    if (!name || (!*name && !conversation)) {
        send_error(c, id, "bad_request", "\"model\" is required: no default model is "
                   "configured");
        return false;
    }
    if ((json_is_string(model) && !*name) || strlen(name) > AI_NAME_MAX) {
        send_errorf(c, id, "bad_request", "\"model\" must be the name of a model (1 to "
                    "%d characters)", AI_NAME_MAX);
        return false;
    }
    snprintf(w->model, sizeof w->model, "%s", name);
    return true;
}

static bool chat_max_tokens(ws_conn_t *c, json_t *msg, const char *id, ws_reply_t *w)
{
    json_t *max = json_object_get(msg, "max_tokens");
    long hi = ai_cfg.max_output_tokens > 0 ? ai_cfg.max_output_tokens : LONG_MAX;

    if (!max || json_is_null(max))
        return true;
    if (!json_is_integer(max) || json_integer_value(max) < 1 || json_integer_value(max) > hi) {
        send_errorf(c, id, "bad_request", "\"max_tokens\" must be an integer from 1 to %ld",
                    hi);
        return false;
    }
    w->max_tokens = (long)json_integer_value(max);
    return true;
}

/* {"conversation_id","content"}: the history and the team are the
 * conversation's */
static bool chat_conversation(ws_conn_t *c, json_t *msg, const char *id, ws_reply_t *w)
{
    const char *conv = json_string_value(json_object_get(msg, "conversation_id"));
    json_t *content = json_object_get(msg, "content");

    if (json_object_get(msg, "messages") || json_object_get(msg, "team_id")) {
        send_error(c, id, "bad_request", "with \"conversation_id\" send one \"content\": "
                   "the history and the team are the conversation's");
        return false;
    }
    if (!conv || !plx_uuid_valid(conv)) {
        send_error(c, id, "not_found", "no such conversation");
        return false;
    }
    if (!json_is_string(content) || json_string_length(content) == 0
        || strlen(json_string_value(content)) != json_string_length(content)) {
        send_error(c, id, "bad_request", "\"content\" must be a non-empty string: the "
                   "user's turn");
        return false;
    }
    snprintf(w->conversation_id, sizeof w->conversation_id, "%s", conv);
    w->content = strdup(json_string_value(content));
    if (!w->content) {
        send_error(c, id, "internal", "out of memory");
        return false;
    }
    return true;
}

/* {"messages","team_id"?}: a chat without a history of its own */
static bool chat_messages(ws_conn_t *c, json_t *msg, const char *id, ws_reply_t *w)
{
    json_t *team = json_object_get(msg, "team_id");
    ai_oai_err_t err = { .code = NULL };

    w->messages = ai_oai_messages(json_object_get(msg, "messages"), "messages",
                                  WS_MAX_MESSAGES, &err);
    if (!w->messages) {
        send_errorf(c, id, "bad_request", "%s: %s", err.param, err.message);
        return false;
    }
    if (team && !json_is_null(team)) {
        if (!plx_uuid_valid(json_string_value(team))) {
            send_error(c, id, "bad_request", "\"team_id\" must be a UUID");
            return false;
        }
        snprintf(w->team_id, sizeof w->team_id, "%s", json_string_value(team));
    }
    return true;
}

/* the fields of a chat message into w; false after telling the client */
static bool chat_fields(ws_conn_t *c, json_t *msg, const char *id, ws_reply_t *w)
{
    bool conversation = json_object_get(msg, "conversation_id") != NULL;

    if (!chat_model(c, msg, id, w, conversation) || !chat_max_tokens(c, msg, id, w))
        return false;
    return conversation ? chat_conversation(c, msg, id, w) : chat_messages(c, msg, id, w);
}

static void chat_start(ws_conn_t *c, json_t *msg, const char *id)
{
    size_t active = replies_reap(c);
    ws_reply_t *w;

    if (!id || !*id || strlen(id) > WS_ID_MAX) {
        send_errorf(c, id && strlen(id) <= WS_ID_MAX ? id : NULL, "bad_request",
                    "a chat needs an \"id\" of 1 to %d characters", WS_ID_MAX);
        return;
    }
    if (reply_find(c, id)) {
        send_error(c, id, "bad_request", "a reply with this id is still running");
        return;
    }
    if (ai_cfg.ws_max_streams > 0 && active >= (size_t)ai_cfg.ws_max_streams) {
        send_errorf(c, id, "too_many_streams", "at most %d replies at once on one "
                    "WebSocket: wait for one to end or cancel it", ai_cfg.ws_max_streams);
        return;
    }
    if (!ai_configured()) {
        send_error(c, id, "ai_not_configured", ai_not_configured_detail);
        return;
    }
    w = calloc(1, sizeof *w);
    if (!w) {
        send_error(c, id, "internal", "out of memory");
        return;
    }
    w->conn = c;
    snprintf(w->id, sizeof w->id, "%s", id);
    snprintf(w->request_id, sizeof w->request_id, "%.60s/%u", c->request_id, ++c->seq);
    atomic_init(&w->cancel, false);
    atomic_init(&w->finished, false);
    if (!chat_fields(c, msg, id, w)) {
        reply_free(w);
        return;
    }
    if (pthread_create(&w->thread, NULL, reply_main, w) != 0) {
        plx_log(ai_module, PLX_LOG_ERROR, "ws %s: no thread for reply \"%s\"",
                c->request_id, w->id);
        send_error(c, id, "internal", "the server cannot start another reply now");
        reply_free(w);
        return;
    }
    w->next = c->replies;
    c->replies = w;
}

static void chat_cancel(ws_conn_t *c, const char *id)
{
    ws_reply_t *w = id ? reply_find(c, id) : NULL;

    if (!w) {
        send_error(c, id, "not_found", "no reply with this id is running");
        return;
    }
    atomic_store(&w->cancel, true);
}

static plx_status_t on_message(plx_ws_t *ws, int text, const char *data, size_t len,
                               void *arg)
{
    ws_conn_t *c = plx_ws_get_data(ws);
    json_error_t jerr;
    json_t *msg;
    const char *type, *id;

    (void)arg;
    if (!c)
        return PLX_ERR_INTERNAL;
    if (!text) {
        plx_ws_close(ws, 1003, "binary messages are not accepted: send JSON text");
        return PLX_OK;
    }
    msg = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(msg)) {
        if (msg)
            send_error(c, NULL, "bad_request", "expected a JSON object with a \"type\"");
        else
            send_errorf(c, NULL, "bad_request", "not JSON: %s at %d", jerr.text,
                        jerr.position);
        json_decref(msg);
        return PLX_OK;
    }
    type = json_string_value(json_object_get(msg, "type"));
    id = json_string_value(json_object_get(msg, "id"));
    if (!type)
        send_error(c, id, "bad_request", "expected a string \"type\": chat, cancel or ping");
    else if (strcmp(type, "ping") == 0)
        send_json(c, json_pack("{s:s, s:s*}", "type", "pong", "id", id));
    else if (strcmp(type, "chat") == 0)
        chat_start(c, msg, id);
    else if (strcmp(type, "cancel") == 0)
        chat_cancel(c, id);
    else
        send_errorf(c, id, "bad_request", "unknown message type \"%.64s\": expected chat, "
                    "cancel or ping", type);
    json_decref(msg);
    return PLX_OK;
}

static plx_status_t on_connect(plx_ws_t *ws, plx_request_t *r, void *arg)
{
    const char *user = plx_request_user_id(r);
    const char *rid = plx_request_id(r);
    ws_conn_t *c;

    (void)arg;
    if (!user)
        return PLX_ERR_AUTH;
    c = calloc(1, sizeof *c);
    if (!c)
        return PLX_ERR_NOMEM;
    c->ws = ws;
    snprintf(c->user_id, sizeof c->user_id, "%s", user);
    snprintf(c->request_id, sizeof c->request_id, "%s", rid ? rid : "ws");
    atomic_init(&c->closing, false);
    plx_ws_set_data(ws, c);
    return PLX_OK;
}

/* Every reply is cancelled and its thread joined before the state goes:
 * the gateway polls the sink at least every 100 ms, so this is quick. */
static void on_close(plx_ws_t *ws, void *arg)
{
    ws_conn_t *c = plx_ws_get_data(ws);

    (void)arg;
    if (!c)
        return;
    atomic_store(&c->closing, true);
    for (ws_reply_t *w = c->replies; w; w = w->next)
        atomic_store(&w->cancel, true);
    while (c->replies) {
        ws_reply_t *w = c->replies;

        pthread_join(w->thread, NULL);
        c->replies = w->next;
        reply_free(w);
    }
    plx_ws_set_data(ws, NULL);
    free(c);
}

bool ai_ws_routes(plx_module_t *m)
{
    static const plx_ws_handlers_t handlers = {
        .size = sizeof(plx_ws_handlers_t),
        .connect = on_connect,
        .message = on_message,
        .close = on_close,
    };

    return plx_ws_route_add(m, "/api/v1/ai/ws", &handlers, NULL,
                            PLX_ROUTE_OPTS(.auth = PLX_AUTH_SCOPE, .scope = "ai",
                                           .rate_class = "ai",
                                           .summary = "Chat over a WebSocket, several "
                                           "replies at once", .tag = "ai")) == PLX_OK;
}
