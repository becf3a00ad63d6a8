/*
 * conversations.c - /api/v1/conversations: chats with a history
 *
 *   POST   /api/v1/conversations                {title?, model?, system?, team_id?}
 *   GET    /api/v1/conversations                ?limit=&cursor=  (recent first)
 *   GET    /api/v1/conversations/{id}
 *   PATCH  /api/v1/conversations/{id}           {title}
 *   DELETE /api/v1/conversations/{id}
 *   GET    /api/v1/conversations/{id}/messages  ?limit=&cursor=  (oldest first)
 *   POST   /api/v1/conversations/{id}/messages  {content, stream?, model?,
 *                                                max_tokens?, temperature?,
 *                                                top_p?, stop?}
 *
 * A conversation is its user's alone: every statement filters by the
 * caller, so another user's conversation is not found (404). team_id, when
 * set, is the team its usage is charged to; the caller must be a member
 * (not a viewer) to write to it.
 *
 * Sending a message stores it, sends the system prompt and the history
 * (the oldest turns dropped until it fits the model's context window with
 * room for the reply) to the model, stores the reply, and answers as
 * /api/v1/ai/chat does (chat.c), whole or streamed, with "message_id" and
 * "conversation_id" added. A reply cut short (an upstream failure after
 * the first token, or a client that left) is stored with status
 * incomplete and the part that came.
 */
#include "config.h"

#include "chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CONV_TITLE_MAX   200        /* characters */
#define CONV_SYSTEM_MAX  100000
#define CONV_HISTORY_MAX 1000       /* messages read back for a call */


#define CONV_COLS(p)                                                          \
    p ".id, " p ".team_id, " p ".title, " p ".model, " p ".system, "          \
    PLX_SQL_RFC3339(p ".created_at") " AS created_at, "                              \
    PLX_SQL_RFC3339(p ".updated_at") " AS updated_at"

typedef struct col {
    const char *name;
    bool        integer;
} col_t;

static const col_t conv_cols[] = {
    { "id" }, { "team_id" }, { "title" }, { "model" }, { "system" },
    { "created_at" }, { "updated_at" }, { NULL }
};

static const col_t message_cols[] = {
    { "id" }, { "role" }, { "content" }, { "status" }, { "model" },
    { "prompt_tokens", true }, { "completion_tokens", true }, { "created_at" },
    { NULL }
};

/* $1 caller, $2 team, $3 title, $4 model, $5 system */
static const char create_sql[] =
    "INSERT INTO ai.conversations AS c (user_id, team_id, title, model, system)"
    " VALUES ($1::uuid, $2::uuid, COALESCE($3, ''), $4, COALESCE($5, ''))"
    " RETURNING " CONV_COLS("c");

/* $1 caller, $2 $3 the cursor's key and id or NULL, $4 limit + 1 */
static const char list_sql[] =
    "SELECT " CONV_COLS("c") ", " PLX_SQL_TIME_KEY("c.updated_at") " AS sort_key"
    " FROM ai.conversations c WHERE c.user_id = $1::uuid"
    " AND ($2::text IS NULL OR (c.updated_at, c.id) < ($2::timestamptz,"
    " $3::uuid)) ORDER BY c.updated_at DESC, c.id DESC LIMIT $4::int";

/* $1 conversation, $2 caller */
static const char read_sql[] =
    "SELECT " CONV_COLS("c") " FROM ai.conversations c"
    " WHERE c.id = $1::uuid AND c.user_id = $2::uuid";

/* $1 conversation, $2 caller, $3 title */
static const char rename_sql[] =
    "UPDATE ai.conversations c SET title = $3, updated_at = now()"
    " WHERE c.id = $1::uuid AND c.user_id = $2::uuid RETURNING " CONV_COLS("c");

/* $1 conversation, $2 caller */
static const char delete_sql[] =
    "DELETE FROM ai.conversations WHERE id = $1::uuid AND user_id = $2::uuid";

/* $1 conversation, $2 $3 the cursor or NULL, $4 limit + 1 */
static const char messages_sql[] =
    "SELECT m.id, m.role, m.content, m.status, m.model, m.prompt_tokens,"
    " m.completion_tokens, " PLX_SQL_RFC3339("m.created_at") " AS created_at, "
    PLX_SQL_TIME_KEY("m.created_at") " AS sort_key FROM ai.messages m"
    " WHERE m.conversation_id = $1::uuid AND ($2::text IS NULL"
    " OR (m.created_at, m.id) > ($2::timestamptz, $3::uuid))"
    " ORDER BY m.created_at, m.id LIMIT $4::int";

/* $1 conversation, $2 content: the user's turn (the conversation moves
 * to the top of the list) */
static const char user_sql[] =
    "WITH c AS (UPDATE ai.conversations SET updated_at = now()"
    " WHERE id = $1::uuid RETURNING id)"
    " INSERT INTO ai.messages (conversation_id, role, content)"
    " SELECT c.id, 'user', $2 FROM c RETURNING id";

/* $1 conversation, $2 most messages: the latest, oldest first */
static const char history_sql[] =
    "SELECT role, content FROM (SELECT role, content, created_at, id"
    " FROM ai.messages WHERE conversation_id = $1::uuid"
    " ORDER BY created_at DESC, id DESC LIMIT $2::int) t ORDER BY created_at, id";

/* $1 id, $2 conversation, $3 content, $4 status, $5 model, $6 $7 tokens */
static const char reply_sql[] =
    "WITH c AS (UPDATE ai.conversations SET updated_at = now()"
    " WHERE id = $2::uuid RETURNING id)"
    " INSERT INTO ai.messages (id, conversation_id, role, content, status,"
    " model, prompt_tokens, completion_tokens)"
    " SELECT $1::uuid, c.id, 'assistant', $3, $4, $5, $6::int, $7::int FROM c"
    " RETURNING id";

/* ---- rows and pages ----------------------------------------------------------- */

static json_t *row_json(const plx_db_res_t *res, int row, const col_t *cols)
{
    json_t *o = json_object();

    for (int i = 0; o && cols[i].name; i++) {
        int c = plx_db_col(res, cols[i].name);
        const char *v = c >= 0 ? plx_db_value(res, row, c) : NULL;
        json_t *j = !v ? json_null()
                    : cols[i].integer ? json_integer(strtoll(v, NULL, 10))
                    : json_string(v);
        if (json_object_set_new(o, cols[i].name, j) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

typedef struct page {
    plx_page_t  pg;
    char        limit_plus_one[12];
} page_t;

/* limit and cursor of a list (the core's: 400 invalid_limit or
 * invalid_cursor answered when they are bad) */
static plx_status_t page_params(plx_request_t *r, const char *tag, page_t *p)
{
    plx_status_t st;

    p->pg = (plx_page_t){ .size = sizeof p->pg };
    st = plx_page_read(r, tag, PLX_KEY_TIME, AI_LIMIT_DEFAULT, AI_LIMIT_MAX, &p->pg);
    if (st == PLX_OK)
        snprintf(p->limit_plus_one, sizeof p->limit_plus_one, "%d", p->pg.limit + 1);
    return st;
}

/* 200 {"items": [...], "next_cursor": ... | null} */
static plx_status_t reply_page(plx_request_t *r, const plx_db_res_t *res,
                               const page_t *p, const char *tag, const col_t *cols)
{
    int rows = plx_db_rows(res), n = rows > p->pg.limit ? p->pg.limit : rows;
    json_t *items = json_array(), *next = json_null();
    const char *cursor;

    for (int i = 0; items && i < n; i++) {
        if (json_array_append_new(items, row_json(res, i, cols)) != 0) {
            json_decref(items);
            items = NULL;
        }
    }
    if (items && rows > p->pg.limit
        && (cursor = plx_page_cursor(r, tag, PLX_KEY_TIME,
                                     plx_db_value(res, n - 1, plx_db_col(res, "sort_key")),
                                     plx_db_value(res, n - 1, plx_db_col(res, "id")))))
        next = json_string(cursor);
    if (!items)
        return PLX_ERR_NOMEM;
    return plx_reply_json(r, 200, json_pack("{s:o, s:o}", "items", items,
                                            "next_cursor", next));
}

/* ---- fields ------------------------------------------------------------------- */

static bool text_field(plx_request_t *r, json_t *body, const char *name,
                       long max, bool required, const char **out)
{
    json_t *v = json_object_get(body, name);
    long n;

    *out = NULL;
    if (!v || json_is_null(v)) {
        if (required)
            plx_reply_problem(r, 400, "missing_field", "field \"%s\" is required", name);
        return !required;
    }
    if (!json_is_string(v)
        || (n = plx_utf8_chars(json_string_value(v), json_string_length(v))) < 0
        || n > max) {
        plx_reply_problem(r, 400, "invalid_field", "field \"%s\" must be a string "
                          "of at most %ld characters", name, max);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool only_fields(plx_request_t *r, json_t *body, const char *const *fields)
{
    const char *key;
    json_t *v;

    if (!json_is_object(body)) {
        plx_reply_problem(r, 400, "invalid_body", "expected a JSON object");
        return false;
    }
    json_object_foreach(body, key, v) {
        const char *const *f = fields;
        while (*f && strcmp(*f, key) != 0)
            f++;
        if (!*f) {
            plx_reply_problem(r, 400, "unknown_field", "field \"%.32s\" is not a "
                              "field of this request", key);
            return false;
        }
    }
    return true;
}

/* the {id} of the path when it is a UUID; otherwise 404 sent */
static const char *path_id(plx_request_t *r)
{
    const char *id = plx_request_param(r, "id");

    if (plx_uuid_valid(id))
        return id;
    plx_reply_problem(r, 404, "not_found", "no such conversation");
    return NULL;
}

/* 503 ai_not_configured, or the model's problem, unless name is a chat
 * model that can be called; *out then holds it */
static bool model_usable(plx_request_t *r, const char *name, ai_model_t **out)
{
    ai_outcome_t o = { .status = 0 };
    plx_status_t st;

    *out = NULL;
    if (!ai_configured()) {
        o.status = 503;
        snprintf(o.code, sizeof o.code, "ai_not_configured");
        snprintf(o.detail, sizeof o.detail, "%s", ai_not_configured_detail);
    } else if (!name) {
        o.status = 400;
        snprintf(o.code, sizeof o.code, "missing_field");
        snprintf(o.detail, sizeof o.detail, "field \"model\" is required: this "
                 "server has no default model");
    } else if ((st = ai_model_get(name, out)) == PLX_ERR_NOT_FOUND) {
        o.status = 404;
        snprintf(o.code, sizeof o.code, "model_not_found");
        snprintf(o.detail, sizeof o.detail, "no model \"%.128s\" (or it is "
                 "disabled)", name);
    } else if (st != PLX_OK) {
        o.status = 503;
        o.retry_after_s = 5;
        snprintf(o.code, sizeof o.code, "db_unavailable");
        snprintf(o.detail, sizeof o.detail, "the model table could not be read");
    } else if (strcmp((*out)->kind, "chat") != 0) {
        o.status = 400;
        snprintf(o.code, sizeof o.code, "wrong_model_kind");
        snprintf(o.detail, sizeof o.detail, "model \"%.128s\" serves embeddings, "
                 "not chat", name);
    }
    if (o.status == 0)
        return true;
    ai_model_free(*out);
    *out = NULL;
    ai_reply_outcome(r, &o);
    return false;
}

/* ---- CRUD ------------------------------------------------------------------------ */

static const char *const create_fields[] = { "title", "model", "system", "team_id", NULL };

static plx_status_t conv_create(plx_request_t *r, void *arg)
{
    const char *title, *model, *system, *team;
    ai_model_t *m;
    json_t *body;
    plx_db_res_t *res;
    plx_status_t st;
    char location[80];

    if (plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;
    if (!only_fields(r, body, create_fields)
        || !text_field(r, body, "title", CONV_TITLE_MAX, false, &title)
        || !text_field(r, body, "system", CONV_SYSTEM_MAX, false, &system)
        || !chat_opt_string(r, body, "model", &model)
        || !chat_opt_string(r, body, "team_id", &team))
        return PLX_OK;
    if (team && !chat_team_allowed(r, team, &st))
        return st;
    if (!model_usable(r, model ? model : ai_cfg.default_model, &m))
        return PLX_OK;
    const char *params[] = { plx_request_user_id(r), team, title, m->name, system };
    st = plx_db_query(r, create_sql, 5, params, &res);
    ai_model_free(m);
    if (st != PLX_OK)
        return st;
    snprintf(location, sizeof location, "/api/v1/conversations/%s",
             plx_db_value(res, 0, 0));
    plx_response_header(r, "Location", location);
    return plx_reply_json(r, 201, row_json(res, 0, conv_cols));
}

static plx_status_t conv_list(plx_request_t *r, void *arg)
{
    plx_db_res_t *res;
    plx_status_t st;
    page_t p;

    if ((st = page_params(r, "conversations", &p)) != PLX_OK)
        return st;
    const char *params[] = { plx_request_user_id(r), p.pg.key, p.pg.id, p.limit_plus_one };
    if ((st = plx_db_query(r, list_sql, 4, params, &res)) != PLX_OK)
        return st;
    return reply_page(r, res, &p, "conversations", conv_cols);
}

/* the caller's conversation {id}: its row in *res, or false with 404 sent
 * (or *st set for the core to answer) */
static bool conv_load(plx_request_t *r, const char *id, plx_db_res_t **res,
                      plx_status_t *st)
{
    const char *params[] = { id, plx_request_user_id(r) };

    if ((*st = plx_db_query(r, read_sql, 2, params, res)) != PLX_OK)
        return false;
    if (plx_db_rows(*res) == 1)
        return true;
    plx_reply_problem(r, 404, "not_found", "no such conversation");
    return false;
}

static plx_status_t conv_read(plx_request_t *r, void *arg)
{
    const char *id = path_id(r);
    plx_db_res_t *res;
    plx_status_t st = PLX_OK;

    if (!id || !conv_load(r, id, &res, &st))
        return st;
    return plx_reply_json(r, 200, row_json(res, 0, conv_cols));
}

static const char *const rename_fields[] = { "title", NULL };

static plx_status_t conv_rename(plx_request_t *r, void *arg)
{
    const char *id = path_id(r), *title;
    plx_db_res_t *res;
    plx_status_t st;
    json_t *body;

    if (!id || plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;
    if (!only_fields(r, body, rename_fields)
        || !text_field(r, body, "title", CONV_TITLE_MAX, true, &title))
        return PLX_OK;
    const char *params[] = { id, plx_request_user_id(r), title };
    if ((st = plx_db_query(r, rename_sql, 3, params, &res)) != PLX_OK)
        return st;
    if (plx_db_rows(res) != 1)
        return plx_reply_problem(r, 404, "not_found", "no such conversation");
    return plx_reply_json(r, 200, row_json(res, 0, conv_cols));
}

static plx_status_t conv_delete(plx_request_t *r, void *arg)
{
    const char *id = path_id(r);
    plx_db_res_t *res;
    plx_status_t st;

    if (!id)
        return PLX_OK;
    const char *params[] = { id, plx_request_user_id(r) };
    if ((st = plx_db_query(r, delete_sql, 2, params, &res)) != PLX_OK)
        return st;
    if (strcmp(plx_db_affected(res) ? plx_db_affected(res) : "0", "1") != 0)
        return plx_reply_problem(r, 404, "not_found", "no such conversation");
    return plx_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

static plx_status_t conv_messages(plx_request_t *r, void *arg)
{
    const char *id = path_id(r);
    plx_db_res_t *res;
    plx_status_t st = PLX_OK;
    page_t p;

    if (!id || !conv_load(r, id, &res, &st)
        || (st = page_params(r, "messages", &p)) != PLX_OK)
        return st;
    const char *params[] = { id, p.pg.key, p.pg.id, p.limit_plus_one };
    if ((st = plx_db_query(r, messages_sql, 4, params, &res)) != PLX_OK)
        return st;
    return reply_page(r, res, &p, "messages", message_cols);
}

/* ---- sending a message -------------------------------------------------------- */

typedef struct conv_turn {
    plx_request_t *r;
    const char *id, *team_id, *system, *content;
    ai_model_t *model;
    json_t     *body;
} conv_turn_t;

plx_status_t ai_conv_user_turn(const char *conv_id, const char *content)
{
    const char *params[] = { conv_id, content };
    plx_db_res_t *res = NULL;
    plx_status_t st = plx_db_query(NULL, user_sql, 2, params, &res);

    if (st == PLX_OK && plx_db_rows(res) != 1)
        st = PLX_ERR_NOT_FOUND;
    plx_db_free(res);
    return st;
}

json_t *ai_conv_history(const char *conv_id, const char *system, long window,
                        long max_tokens, plx_status_t *st)
{
    char most[12];
    plx_db_res_t *res = NULL;
    json_t *msgs = json_array();
    long reply = max_tokens > 0 ? max_tokens : ai_cfg.default_max_tokens;

    snprintf(most, sizeof most, "%d", CONV_HISTORY_MAX);
    const char *params[] = { conv_id, most };
    *st = msgs ? plx_db_query(NULL, history_sql, 2, params, &res) : PLX_ERR_NOMEM;
    if (*st != PLX_OK) {
        plx_db_free(res);
        json_decref(msgs);
        return NULL;
    }
    if (system && *system)
        json_array_append_new(msgs, json_pack("{s:s, s:s}", "role", "system",
                                              "content", system));
    for (int i = 0; i < plx_db_rows(res); i++)
        json_array_append_new(msgs, json_pack("{s:s, s:s}",
                              "role", plx_db_value(res, i, 0),
                              "content", plx_db_value(res, i, 1)));
    plx_db_free(res);
    if (reply > ai_cfg.max_output_tokens)
        reply = ai_cfg.max_output_tokens;
    if (reply > window / 2)
        reply = window / 2;
    ai_history_trim(msgs, window - reply, ai_estimate_messages);
    return msgs;
}

bool ai_conv_reply_store(const char *conv_id, const char *msg_id, plx_status_t st,
                         const ai_outcome_t *o)
{
    size_t n = o->res.text ? o->res.text_len : 0;
    char pt[24], ct[24], *text;
    plx_db_res_t *res = NULL;
    bool ok;

    n -= ai_utf8_incomplete_tail(o->res.text, n);
    if ((st != PLX_OK && n == 0) || !plx_utf8_valid(o->res.text ? o->res.text : "", n))
        return false;
    if (!(text = strndup(o->res.text ? o->res.text : "", n)))
        return false;
    snprintf(pt, sizeof pt, "%ld", o->usage.prompt_tokens);
    snprintf(ct, sizeof ct, "%ld", o->usage.completion_tokens);
    const char *params[] = { msg_id, conv_id, text, st == PLX_OK ? "complete" : "incomplete",
                             o->served_model[0] ? o->served_model : NULL, pt, ct };
    ok = plx_db_query(NULL, reply_sql, 7, params, &res) == PLX_OK;
    ok = ok && plx_db_rows(res) == 1;
    plx_db_free(res);
    free(text);
    if (!ok)
        plx_log(ai_module, PLX_LOG_ERROR, "the reply to conversation %s could not "
                "be stored", conv_id);
    return ok;
}

static plx_status_t turn_call(conv_turn_t *t, json_t *messages,
                              const ai_chat_params_t *q, bool stream)
{
    char msg_id[37];
    chat_reply_t cr = { .r = t->r, .stream = stream, .model = t->model->name,
                        .conversation_id = t->id };
    ai_outcome_t o;
    plx_status_t st;
    ai_call_t c = {
        .r = t->r, .user_id = plx_request_user_id(t->r), .team_id = t->team_id,
        .kind = "chat", .model = t->model->name, .params = *q, .stream = stream,
    };

    if (plx_uuid_new(4, msg_id) != PLX_OK)
        return PLX_ERR_INTERNAL;
    memcpy(cr.id, msg_id, sizeof cr.id);
    c.params.messages = messages;
    chat_reply_sink(&cr, &c.sink);
    st = ai_gateway_chat(&c, &o);
    if (ai_conv_reply_store(t->id, msg_id, st, &o))
        cr.message_id = msg_id;
    st = chat_reply_finish(&cr, st, &o);
    ai_outcome_clear(&o);
    return st;
}

/* The conversation's team is charged: its owner must still be a member
 * (not a viewer). Having left the team is a 403, not a 404: the
 * conversation is there, only writing to it is not allowed. */
static bool team_writable(plx_request_t *r, const char *team_id, plx_status_t *st)
{
    plx_role_t role = PLX_ROLE_NONE;

    if ((*st = plx_team_role(r, team_id, &role)) != PLX_OK)
        return false;
    if (role >= PLX_ROLE_MEMBER)
        return true;
    plx_reply_problem(r, 403, "forbidden", "this conversation is charged to a "
                      "team in which you are no longer a member");
    return false;
}

/* the user's turn stored, then the call */
static plx_status_t turn_run(conv_turn_t *t)
{
    ai_chat_params_t q = { .max_tokens = 0 };
    plx_status_t st;
    json_t *messages;
    bool stream;

    if (!chat_opt_bool(t->r, t->body, "stream", &stream)
        || !chat_params_parse(t->r, t->body, &q))
        return PLX_OK;
    if ((st = ai_conv_user_turn(t->id, t->content)) == PLX_ERR_NOT_FOUND)
        return plx_reply_problem(t->r, 404, "not_found", "no such conversation");
    if (st != PLX_OK)
        return st;
    messages = ai_conv_history(t->id, t->system, t->model->context_window,
                               q.max_tokens, &st);
    if (!messages)
        return st != PLX_OK ? st : PLX_ERR_NOMEM;
    st = turn_call(t, messages, &q, stream);
    json_decref(messages);
    return st;
}

/* conversation id of the caller, body with the turn's content */
static plx_status_t turn(plx_request_t *r, const char *id, json_t *body,
                         const char *content)
{
    conv_turn_t t = { .r = r, .id = id, .body = body, .content = content };
    const char *model;
    plx_db_res_t *res;
    plx_status_t st = PLX_OK;

    if (!chat_opt_string(r, body, "model", &model) || !conv_load(r, id, &res, &st))
        return st;
    t.team_id = plx_db_value(res, 0, plx_db_col(res, "team_id"));
    t.system = plx_db_value(res, 0, plx_db_col(res, "system"));
    if (t.team_id && !team_writable(r, t.team_id, &st))
        return st;
    if (!model_usable(r, model ? model : plx_db_value(res, 0, plx_db_col(res, "model")),
                      &t.model))
        return PLX_OK;
    st = turn_run(&t);
    ai_model_free(t.model);
    return st;
}

static const char *const send_fields[] = {
    "content", "stream", "model", "max_tokens", "temperature", "top_p", "stop", NULL
};

static plx_status_t conv_send(plx_request_t *r, void *arg)
{
    const char *id = path_id(r), *content;
    json_t *body;

    if (!id || plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;
    if (!only_fields(r, body, send_fields)
        || !chat_opt_string(r, body, "content", &content))
        return PLX_OK;
    if (!content)
        return plx_reply_problem(r, 400, "missing_field", "field \"content\" is required");
    return turn(r, id, body, content);
}

plx_status_t ai_conversation_chat(plx_request_t *r, json_t *body,
                                  const char *conversation_id)
{
    const char *content;

    if (json_object_get(body, "messages") || json_object_get(body, "team_id"))
        return plx_reply_problem(r, 400, "invalid_body", "with \"conversation_id\" "
                                 "send one \"message\": the history and the team "
                                 "are the conversation's");
    if (!chat_opt_string(r, body, "message", &content))
        return PLX_OK;
    if (!content)
        return plx_reply_problem(r, 400, "missing_field", "field \"message\" is required");
    if (!plx_uuid_valid(conversation_id))
        return plx_reply_problem(r, 404, "not_found", "no such conversation");
    return turn(r, conversation_id, body, content);
}

/* ---- registration ---------------------------------------------------------------- */

#define CONV_ROUTE(method, pattern, fn, rate, summary) \
    { method, pattern, fn, PLX_AUTH_SCOPE, "ai", rate, summary, "ai" }

static const plx_route_def_t conv_routes[] = {
    CONV_ROUTE("POST", "/api/v1/conversations", conv_create, NULL,
               "start a conversation"),
    CONV_ROUTE("GET", "/api/v1/conversations", conv_list, NULL,
               "my conversations, recent first"),
    CONV_ROUTE("GET", "/api/v1/conversations/{id}", conv_read, NULL,
               "a conversation"),
    CONV_ROUTE("PATCH", "/api/v1/conversations/{id}", conv_rename, NULL,
               "rename a conversation"),
    CONV_ROUTE("DELETE", "/api/v1/conversations/{id}", conv_delete, NULL,
               "delete a conversation"),
    CONV_ROUTE("GET", "/api/v1/conversations/{id}/messages", conv_messages, NULL,
               "a conversation's messages, oldest first"),
    CONV_ROUTE("POST", "/api/v1/conversations/{id}/messages", conv_send, "ai",
               "send a message and get the reply, whole or streamed (SSE)"),
};
#undef CONV_ROUTE

bool ai_conversation_routes(plx_module_t *m)
{
    return plx_routes_add(m, conv_routes, NULL) == PLX_OK;
}
