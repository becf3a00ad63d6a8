/*
 * admin.c - the ai module's admin routes: models and quotas
 *
 *   GET    /api/v1/admin/ai/models          every model, by name
 *   POST   /api/v1/admin/ai/models          201, 409 on a name in use
 *   GET    /api/v1/admin/ai/models/{id}
 *   PATCH  /api/v1/admin/ai/models/{id}     any of the fields below
 *   DELETE /api/v1/admin/ai/models/{id}     204
 *
 *   GET    /api/v1/admin/ai/quotas          ?subject_type=&subject_id=&period=
 *                                           &limit=&cursor=, with the current
 *                                           period's used and reserved figures
 *   POST   /api/v1/admin/ai/quotas          201, 409 when the subject already
 *                                           has a quota for that period
 *   GET    /api/v1/admin/ai/quotas/{id}
 *   PATCH  /api/v1/admin/ai/quotas/{id}     max_tokens, max_cost
 *   DELETE /api/v1/admin/ai/quotas/{id}     204
 *
 * A model: name, kind (chat | embedding), provider (a name of ai.conf),
 * upstream (the provider's name for it), context_window, price_input and
 * price_output (per million tokens), fallbacks (model names, in order),
 * enabled. A provider that ai.conf does not list is accepted, so models
 * can be set up before the provider, and flagged "provider_configured":
 * false. A quota: subject_type (user | team), subject_id, period (day |
 * month, UTC), max_tokens and/or max_cost (null: not limited).
 *
 * Every route is admin-only, every write is audited and, for models,
 * invalidates the model cache of this instance (the others see the change
 * within the cache's few seconds). A refused body is answered 400 naming
 * the field: unknown_field, missing_field, invalid_field.
 */
#include "config.h"

#include "ai.h"
#include "store_sql.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_FALLBACKS_MAX 16
#define PRICE_MAX           1e9      /* per million tokens */
#define COST_MAX            1e13     /* numeric(24, 10) */
#define QUOTA_LIST_DEFAULT  100
#define QUOTA_LIST_MAX      500

/* ==== shared helpers ====================================================== */

/* a name from the client, safe for a one-line detail: at most 64 bytes,
 * anything but [A-Za-z0-9_.-] replaced by '?' */
static const char *printable(const char *s, char out[72])
{
    size_t o = 0;

    for (; *s && o < 64; s++) {
        char ch = *s;
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
                  || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        out[o++] = ok ? ch : '?';
    }
    out[o] = '\0';
    return out;
}

static bool refuse(plx_request_t *r, const char *code, const char *field,
                   const char *why)
{
    char name[72];

    plx_reply_problem(r, 400, code, "field \"%s\" %s", printable(field, name), why);
    return false;
}

/* the request's JSON body as an object (borrowed for the request); false
 * with the answer sent otherwise */
static bool body_object(plx_request_t *r, json_t **body)
{
    if (plx_request_json(r, body) != PLX_OK)
        return false;   /* the core answered 400 or 413 */
    if (!json_is_object(*body)) {
        plx_reply_problem(r, 400, "invalid_body", "expected a JSON object");
        return false;
    }
    return true;
}

static int field_index(const char *const *fields, const char *key)
{
    for (int i = 0; fields[i]; i++)
        if (strcmp(fields[i], key) == 0)
            return i;
    return -1;
}

/* the {id} of the path when it is a UUID; otherwise NULL and 404 sent */
static const char *path_id(plx_request_t *r, const char *what)
{
    const char *id = plx_request_param(r, "id");

    if (plx_uuid_valid(id))
        return id;
    plx_reply_problem(r, 404, "not_found", "no such %s", what);
    return NULL;
}

/* The row sql answers for the path's id ($1, and extra as $2 unless
 * NULL): true with *res and *id; false when answered (404 for a bad id or
 * no row) or with *st set when the database failed. */
static bool id_row(plx_request_t *r, const char *what, const char *sql,
                   const char *extra, const char **id, plx_db_res_t **res,
                   plx_status_t *st)
{
    *st = PLX_OK;
    if (!(*id = path_id(r, what)))
        return false;
    const char *params[] = { *id, extra };
    if ((*st = plx_db_query(r, sql, extra ? 2 : 1, params, res)) != PLX_OK)
        return false;
    if (plx_db_rows(*res) > 0)
        return true;
    *st = plx_reply_problem(r, 404, "not_found", "no such %s", what);
    return false;
}

/* 204 for a deleted row, audited with details (stolen) */
static plx_status_t reply_deleted(plx_request_t *r, const char *action,
                                  const char *type, const char *id, json_t *details)
{
    plx_audit(r, action, type, id, details);
    json_decref(details);
    return plx_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

/* answer JSON text rendered by the database */
static plx_status_t reply_text(plx_request_t *r, int status, const char *json)
{
    if (!json)
        return PLX_ERR_INTERNAL;
    return plx_reply(r, status, "application/json", json, strlen(json),
                     PLX_MEM_COPY);
}

static void set_location(plx_request_t *r, const char *what, const char *id)
{
    char location[96];

    snprintf(location, sizeof location, "/api/v1/admin/ai/%s/%s", what, id);
    plx_response_header(r, "Location", location);
}

/* a model name as ai.models checks it: ^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$ */
static bool model_name_valid(const char *s)
{
    size_t n = strlen(s);

    if (n < 1 || n > AI_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
                     || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || !strchr("._:/-", ch)))
            return false;
    }
    return true;
}

/* printable ASCII without blanks, min..max bytes */
static bool token_valid(const char *s, size_t min, size_t max)
{
    size_t n = strlen(s);

    if (n < min || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    return true;
}

/* ==== models ============================================================== */

/* A model (alias m) as JSON; prov is the $n holding the configured
 * providers' names as a JSON array. */
#define MODEL_JSON(prov)                                                     \
    "json_build_object('id', m.id, 'name', m.name, 'kind', m.kind,"          \
    " 'provider', m.provider, 'upstream', m.upstream,"                       \
    " 'context_window', m.context_window,"                                   \
    " 'price_input', trim_scale(m.price_input),"                             \
    " 'price_output', trim_scale(m.price_output),"                           \
    " 'fallbacks', to_json(m.fallbacks), 'enabled', m.enabled,"              \
    " 'provider_configured', m.provider IN"                                  \
    "   (SELECT jsonb_array_elements_text(" prov "::jsonb)),"                \
    " 'created_at', " PLX_SQL_RFC3339("m.created_at") ","                        \
    " 'updated_at', " PLX_SQL_RFC3339("m.updated_at") ")::text"

/* a JSON array of model names ($n::jsonb) as text[], in order */
#define NAMES_ARRAY(p)                                                       \
    "ARRAY(SELECT e FROM jsonb_array_elements_text(" p "::jsonb)"            \
    " WITH ORDINALITY AS f(e, i) ORDER BY i)"

/* the fields, in the order of their $n (1..9) */
static const char *const model_fields[] = {
    "name", "kind", "provider", "upstream", "context_window", "price_input",
    "price_output", "fallbacks", "enabled", NULL
};
enum { M_NAME, M_KIND, M_PROVIDER, M_UPSTREAM, M_CONTEXT, M_PRICE_IN,
       M_PRICE_OUT, M_FALLBACKS, M_ENABLED, M_NFIELDS };

/* $1..$9 the fields (NULL: not given), $10 configured providers */
static const char model_create_sql[] =
    "INSERT INTO ai.models AS m (name, kind, provider, upstream, context_window,"
    " price_input, price_output, fallbacks, enabled)"
    " VALUES ($1, COALESCE($2, 'chat'), $3, $4, COALESCE($5::integer, 8192),"
    " COALESCE($6::numeric, 0), COALESCE($7::numeric, 0), " NAMES_ARRAY("$8") ","
    " COALESCE($9::boolean, true))"
    " ON CONFLICT (name) DO NOTHING"
    " RETURNING m.id, " MODEL_JSON("$10");

/* $1..$9 the fields (NULL: unchanged), $10 providers, $11 the model. A
 * model may not fall back on itself, whether the name or the fallbacks
 * change: "found" 1 and "row" NULL say so. */
static const char model_update_sql[] =
    "WITH t AS (SELECT m.id, COALESCE($1, m.name) AS name,"
    "  CASE WHEN $8::jsonb IS NULL THEN m.fallbacks ELSE " NAMES_ARRAY("$8")
    "  END AS fallbacks FROM ai.models m WHERE m.id = $11::uuid),"
    " done AS (UPDATE ai.models m SET name = t.name,"
    "  kind = COALESCE($2, m.kind), provider = COALESCE($3, m.provider),"
    "  upstream = COALESCE($4, m.upstream),"
    "  context_window = COALESCE($5::integer, m.context_window),"
    "  price_input = COALESCE($6::numeric, m.price_input),"
    "  price_output = COALESCE($7::numeric, m.price_output),"
    "  fallbacks = t.fallbacks, enabled = COALESCE($9::boolean, m.enabled),"
    "  updated_at = now()"
    "  FROM t WHERE m.id = t.id AND NOT (t.name = ANY (t.fallbacks))"
    "  RETURNING " MODEL_JSON("$10") " AS row)"
    " SELECT (SELECT count(*) FROM t) AS found, (SELECT row FROM done) AS row";

static const char model_read_sql[] =
    "SELECT " MODEL_JSON("$2") " FROM ai.models m WHERE m.id = $1::uuid";

static const char model_list_sql[] =
    "SELECT json_build_object('items', COALESCE(json_agg(" MODEL_JSON("$1")
    "::json ORDER BY m.name), '[]'::json))::text FROM ai.models m";

static const char model_delete_sql[] =
    "DELETE FROM ai.models WHERE id = $1::uuid RETURNING name";

/* A model body, checked. v[i] is the $n text of field i (NULL when not
 * given), from r's pool or the body (borrowed for the request). */
typedef struct model_in {
    const char *v[M_NFIELDS];
    char        context[24], price_in[48], price_out[48];
} model_in_t;

static const char *price_text(json_t *v, char out[48])
{
    double d = json_number_value(v);

    if (!json_is_number(v) || !isfinite(d) || d < 0 || d > PRICE_MAX)
        return NULL;
    snprintf(out, 48, "%.6f", d);
    return out;
}

/* the fallbacks as JSON text, from r's pool; NULL with why set */
static const char *fallbacks_text(plx_request_t *r, json_t *v, const char **why)
{
    size_t n = json_array_size(v);
    char *s, *copy;

    if (!json_is_array(v) || n > MODEL_FALLBACKS_MAX) {
        *why = "must be an array of at most 16 model names";
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const char *name = json_string_value(json_array_get(v, i));
        if (!name || !model_name_valid(name)) {
            *why = "must hold model names: a letter or digit, then letters,"
                   " digits and ._:/- up to 128 characters";
            return NULL;
        }
        for (size_t k = 0; k < i; k++) {
            if (strcmp(name, json_string_value(json_array_get(v, k))) == 0) {
                *why = "must not name a model twice";
                return NULL;
            }
        }
    }
    s = json_dumps(v, JSON_COMPACT);
    copy = s ? plx_pstrdup(r, s) : NULL;
    free(s);
    if (!copy)
        *why = "could not be read (out of memory)";
    return copy;
}

/* why field i's value v is refused (NULL: accepted, in->v[i] set) */
static const char *model_value(plx_request_t *r, int i, json_t *v, model_in_t *in)
{
    const char *s = json_string_value(v), *why = NULL;
    json_int_t n;

    if (json_is_null(v))
        return "must not be null";
    switch (i) {
    case M_NAME:
        if (!s || !model_name_valid(s))
            return "must be a letter or digit, then letters, digits and ._:/-,"
                   " 1 to 128 characters";
        break;
    case M_KIND:
        if (!s || (strcmp(s, "chat") != 0 && strcmp(s, "embedding") != 0))
            return "must be one of chat, embedding";
        break;
    case M_PROVIDER:
        if (!s || !token_valid(s, 1, 64))
            return "must be a provider name of ai.conf, 1 to 64 printable characters";
        break;
    case M_UPSTREAM:
        if (!s || !token_valid(s, 1, 200))
            return "must be the provider's model name, 1 to 200 printable characters";
        break;
    case M_CONTEXT:
        n = json_integer_value(v);
        if (!json_is_integer(v) || n < 1 || n > 2147483647)
            return "must be an integer from 1 to 2147483647";
        snprintf(in->context, sizeof in->context, "%lld", (long long)n);
        s = in->context;
        break;
    case M_PRICE_IN:
    case M_PRICE_OUT:
        s = price_text(v, i == M_PRICE_IN ? in->price_in : in->price_out);
        if (!s)
            return "must be a number from 0 to 1000000000 (per million tokens)";
        break;
    case M_FALLBACKS:
        if (!(s = fallbacks_text(r, v, &why)))
            return why;
        break;
    case M_ENABLED:
        if (!json_is_boolean(v))
            return "must be true or false";
        s = json_is_true(v) ? "true" : "false";
        break;
    }
    in->v[i] = s;
    return NULL;
}

/* the body of a create or a patch into in; false with the answer sent */
static bool model_body(plx_request_t *r, bool create, model_in_t *in,
                       json_t **body)
{
    const char *key, *why;
    json_t *v;

    memset(in, 0, sizeof *in);
    if (!body_object(r, body))
        return false;
    json_object_foreach(*body, key, v) {
        int i = field_index(model_fields, key);
        if (i < 0)
            return refuse(r, "unknown_field", key, "is not a field of a model");
        if ((why = model_value(r, i, v, in)))
            return refuse(r, "invalid_field", key, why);
    }
    if (create) {
        static const int required[] = { M_NAME, M_PROVIDER, M_UPSTREAM };
        for (size_t k = 0; k < sizeof required / sizeof *required; k++)
            if (!in->v[required[k]])
                return refuse(r, "missing_field", model_fields[required[k]],
                              "is required");
    } else if (json_object_size(*body) == 0) {
        plx_reply_problem(r, 400, "invalid_body", "expected at least one field to change");
        return false;
    }
    if (in->v[M_NAME] && in->v[M_FALLBACKS]) {
        json_t *fb = json_object_get(*body, "fallbacks");
        for (size_t k = 0; k < json_array_size(fb); k++)
            if (strcmp(json_string_value(json_array_get(fb, k)), in->v[M_NAME]) == 0)
                return refuse(r, "invalid_field", "fallbacks",
                              "must not name the model itself");
    }
    return true;
}

/* the names of the configured providers as a JSON array text, from r's
 * pool ("[]" when none, or on no memory: every model then shows as not
 * configured, which an admin will notice) */
static const char *providers_json(plx_request_t *r)
{
    json_t *arr = json_array();
    char *s, *copy;

    for (size_t i = 0; arr && i < ai_cfg.nproviders; i++)
        json_array_append_new(arr, json_string(ai_cfg.providers[i].name));
    s = arr ? json_dumps(arr, JSON_COMPACT) : NULL;
    json_decref(arr);
    copy = s ? plx_pstrdup(r, s) : NULL;
    free(s);
    return copy ? copy : "[]";
}

static plx_status_t model_list(plx_request_t *r, void *arg)
{
    const char *params[] = { providers_json(r) };
    plx_db_res_t *res;
    plx_status_t st;

    if ((st = plx_db_query(r, model_list_sql, 1, params, &res)) != PLX_OK)
        return st;
    return reply_text(r, 200, plx_db_value(res, 0, 0));
}

static plx_status_t model_conflict(plx_request_t *r, const char *name)
{
    char shown[72];

    return plx_reply_problem(r, 409, "model_exists",
                             "a model named \"%s\" already exists",
                             printable(name ? name : "", shown));
}

static plx_status_t model_create(plx_request_t *r, void *arg)
{
    model_in_t in;
    json_t *body;
    plx_db_res_t *res;
    plx_status_t st;

    if (!model_body(r, true, &in, &body))
        return PLX_OK;
    const char *params[] = { in.v[0], in.v[1], in.v[2], in.v[3], in.v[4],
                             in.v[5], in.v[6], in.v[7], in.v[8],
                             providers_json(r) };
    st = plx_db_query(r, model_create_sql, 10, params, &res);
    if (st == PLX_ERR_CONFLICT)
        return model_conflict(r, in.v[M_NAME]);
    if (st != PLX_OK)
        return st;
    if (plx_db_rows(res) == 0)
        return model_conflict(r, in.v[M_NAME]);
    const char *id = plx_db_value(res, 0, 0);
    ai_model_cache_invalidate();
    plx_audit(r, "ai.model_created", "ai_model", id, body);
    set_location(r, "models", id);
    return reply_text(r, 201, plx_db_value(res, 0, 1));
}

static plx_status_t model_read(plx_request_t *r, void *arg)
{
    const char *id;
    plx_db_res_t *res;
    plx_status_t st;

    if (!id_row(r, "model", model_read_sql, providers_json(r), &id, &res, &st))
        return st;
    return reply_text(r, 200, plx_db_value(res, 0, 0));
}

static plx_status_t model_update(plx_request_t *r, void *arg)
{
    const char *id = path_id(r, "model");
    model_in_t in;
    json_t *body;
    plx_db_res_t *res;
    plx_status_t st;

    if (!id || !model_body(r, false, &in, &body))
        return PLX_OK;
    const char *params[] = { in.v[0], in.v[1], in.v[2], in.v[3], in.v[4],
                             in.v[5], in.v[6], in.v[7], in.v[8],
                             providers_json(r), id };
    st = plx_db_query(r, model_update_sql, 11, params, &res);
    if (st == PLX_ERR_CONFLICT)
        return model_conflict(r, in.v[M_NAME]);
    if (st != PLX_OK)
        return st;
    const char *found = plx_db_value(res, 0, 0), *row = plx_db_value(res, 0, 1);
    if (!found || strcmp(found, "0") == 0)
        return plx_reply_problem(r, 404, "not_found", "no such model");
    if (!row) {
        refuse(r, "invalid_field", in.v[M_FALLBACKS] ? "fallbacks" : "name",
               "would make the model a fallback of itself");
        return PLX_OK;
    }
    ai_model_cache_invalidate();
    plx_audit(r, "ai.model_updated", "ai_model", id, body);
    return reply_text(r, 200, row);
}

static plx_status_t model_delete(plx_request_t *r, void *arg)
{
    const char *id;
    plx_db_res_t *res;
    plx_status_t st;

    if (!id_row(r, "model", model_delete_sql, NULL, &id, &res, &st))
        return st;
    ai_model_cache_invalidate();
    return reply_deleted(r, "ai.model_deleted", "ai_model", id,
                         json_pack("{s:s}", "name", plx_db_value(res, 0, 0)));
}

/* ==== quotas ============================================================== */

static const char *const quota_fields[] = {
    "subject_type", "subject_id", "period", "max_tokens", "max_cost", NULL
};
enum { Q_TYPE, Q_SUBJECT, Q_PERIOD, Q_MAX_TOKENS, Q_MAX_COST, Q_NFIELDS };

/* $1 subject type, $2 subject, $3 period, $4 max tokens, $5 max cost.
 * "ok" false: no such user or team; row NULL: the quota exists. */
static const char quota_create_sql[] =
    "WITH s AS (SELECT CASE WHEN $1::text = 'user'"
    "  THEN EXISTS (SELECT 1 FROM plexus.users WHERE id = $2::uuid)"
    "  ELSE EXISTS (SELECT 1 FROM plexus.teams WHERE id = $2::uuid) END AS ok),"
    " ins AS (INSERT INTO ai.quotas (subject_type, subject_id, period,"
    "  max_tokens, max_cost)"
    "  SELECT $1::text, $2::uuid, $3::text, $4::bigint, $5::numeric FROM s WHERE s.ok"
    "  ON CONFLICT (subject_type, subject_id, period) DO NOTHING RETURNING *)"
    " SELECT s.ok, q.id, " AI_SQL_QUOTA_JSON "::text"
    " FROM s LEFT JOIN ins q ON true" AI_SQL_QUOTA_COUNTER;

/* $1 quota, $2/$4 whether max_tokens/max_cost are given, $3/$5 their
 * values. A quota must limit something: "found" 1 and "row" NULL when
 * both would be null. */
static const char quota_update_sql[] =
    "WITH t AS (SELECT q.id,"
    "  CASE WHEN $2::boolean THEN $3::bigint ELSE q.max_tokens END AS mt,"
    "  CASE WHEN $4::boolean THEN $5::numeric ELSE q.max_cost END AS mc"
    "  FROM ai.quotas q WHERE q.id = $1::uuid),"
    " done AS (UPDATE ai.quotas q SET max_tokens = t.mt, max_cost = t.mc,"
    "  updated_at = now() FROM t"
    "  WHERE q.id = t.id AND (t.mt IS NOT NULL OR t.mc IS NOT NULL) RETURNING q.*)"
    " SELECT (SELECT count(*) FROM t) AS found,"
    " (SELECT " AI_SQL_QUOTA_JSON "::text FROM done q" AI_SQL_QUOTA_COUNTER ") AS row";

static const char quota_read_sql[] =
    "SELECT " AI_SQL_QUOTA_JSON "::text FROM ai.quotas q" AI_SQL_QUOTA_COUNTER
    " WHERE q.id = $1::uuid";

static const char quota_delete_sql[] =
    "DELETE FROM ai.quotas WHERE id = $1::uuid"
    " RETURNING subject_type, subject_id::text, period";

/* $1 subject type, $2 subject, $3 period (each NULL: any), $4 the
 * cursor's id (the last id of the previous page) or NULL, $5 the page
 * size: {"items": [...]} and the id the next page starts after, if any */
static const char quota_list_sql[] =
    "WITH page AS (SELECT * FROM ai.quotas q"
    "  WHERE ($1::text IS NULL OR q.subject_type = $1::text)"
    "  AND ($2::uuid IS NULL OR q.subject_id = $2::uuid)"
    "  AND ($3::text IS NULL OR q.period = $3::text)"
    "  AND ($4::uuid IS NULL OR q.id > $4::uuid)"
    "  ORDER BY q.id LIMIT $5::int + 1),"
    " shown AS (SELECT * FROM page ORDER BY id LIMIT $5::int)"
    " SELECT json_build_object('items', COALESCE((SELECT json_agg("
    AI_SQL_QUOTA_JSON " ORDER BY q.id) FROM shown q" AI_SQL_QUOTA_COUNTER "),"
    " '[]'::json))::text, CASE WHEN (SELECT count(*) FROM page) > $5::int"
    " THEN (SELECT id::text FROM shown ORDER BY id DESC LIMIT 1) END AS next_id";

typedef struct quota_in {
    const char *v[Q_NFIELDS];
    bool        given[Q_NFIELDS];
    char        tokens[24], cost[64];
} quota_in_t;

static const char *quota_value(int i, json_t *v, quota_in_t *in)
{
    const char *s = json_string_value(v);
    double d;
    json_int_t n;

    in->given[i] = true;
    if (json_is_null(v)) {
        if (i == Q_MAX_TOKENS || i == Q_MAX_COST)
            return NULL;   /* not limited */
        return "must not be null";
    }
    switch (i) {
    case Q_TYPE:
        if (!s || (strcmp(s, "user") != 0 && strcmp(s, "team") != 0))
            return "must be one of user, team";
        break;
    case Q_SUBJECT:
        if (!plx_uuid_valid(s))
            return "must be the UUID of a user or team";
        break;
    case Q_PERIOD:
        if (!s || (strcmp(s, "day") != 0 && strcmp(s, "month") != 0))
            return "must be one of day, month";
        break;
    case Q_MAX_TOKENS:
        n = json_integer_value(v);
        if (!json_is_integer(v) || n < 0)
            return "must be an integer of 0 or more, or null";
        snprintf(in->tokens, sizeof in->tokens, "%lld", (long long)n);
        s = in->tokens;
        break;
    case Q_MAX_COST:
        d = json_number_value(v);
        if (!json_is_number(v) || !isfinite(d) || d < 0 || d > COST_MAX)
            return "must be a number from 0 to 10000000000000, or null";
        snprintf(in->cost, sizeof in->cost, "%.10f", d);
        s = in->cost;
        break;
    }
    in->v[i] = s;
    return NULL;
}

static bool quota_body(plx_request_t *r, bool create, quota_in_t *in,
                       json_t **body)
{
    const char *key, *why;
    json_t *v;

    memset(in, 0, sizeof *in);
    if (!body_object(r, body))
        return false;
    json_object_foreach(*body, key, v) {
        int i = field_index(quota_fields, key);
        if (i < 0)
            return refuse(r, "unknown_field", key, "is not a field of a quota");
        if (!create && i < Q_MAX_TOKENS)
            return refuse(r, "invalid_field", key, "cannot be changed: delete"
                          " the quota and create another");
        if ((why = quota_value(i, v, in)))
            return refuse(r, "invalid_field", key, why);
    }
    if (create) {
        for (int i = 0; i < Q_MAX_TOKENS; i++)
            if (!in->v[i])
                return refuse(r, "missing_field", quota_fields[i], "is required");
        if (!in->v[Q_MAX_TOKENS] && !in->v[Q_MAX_COST])
            return refuse(r, "missing_field", "max_tokens",
                          "or \"max_cost\" is required: a quota limits tokens,"
                          " cost or both");
    } else if (json_object_size(*body) == 0) {
        plx_reply_problem(r, 400, "invalid_body", "expected at least one field to change");
        return false;
    }
    return true;
}

static plx_status_t quota_create(plx_request_t *r, void *arg)
{
    quota_in_t in;
    json_t *body;
    plx_db_res_t *res;
    plx_status_t st;

    if (!quota_body(r, true, &in, &body))
        return PLX_OK;
    const char *params[] = { in.v[Q_TYPE], in.v[Q_SUBJECT], in.v[Q_PERIOD],
                             in.v[Q_MAX_TOKENS], in.v[Q_MAX_COST] };
    if ((st = plx_db_query(r, quota_create_sql, 5, params, &res)) != PLX_OK)
        return st;
    const char *ok = plx_db_value(res, 0, 0), *id = plx_db_value(res, 0, 1);
    if (!ok || ok[0] != 't') {
        refuse(r, "invalid_field", "subject_id", strcmp(in.v[Q_TYPE], "user") == 0
               ? "names no user" : "names no team");
        return PLX_OK;
    }
    if (!id)
        return plx_reply_problem(r, 409, "quota_exists", "this %s already has a"
                                 " %s quota: change it with PATCH",
                                 in.v[Q_TYPE], strcmp(in.v[Q_PERIOD], "day") == 0
                                 ? "daily" : "monthly");
    plx_audit(r, "ai.quota_created", "ai_quota", id, body);
    set_location(r, "quotas", id);
    return reply_text(r, 201, plx_db_value(res, 0, 2));
}

static plx_status_t quota_read(plx_request_t *r, void *arg)
{
    const char *id;
    plx_db_res_t *res;
    plx_status_t st;

    if (!id_row(r, "quota", quota_read_sql, NULL, &id, &res, &st))
        return st;
    return reply_text(r, 200, plx_db_value(res, 0, 0));
}

static plx_status_t quota_update(plx_request_t *r, void *arg)
{
    const char *id = path_id(r, "quota");
    quota_in_t in;
    json_t *body;
    plx_db_res_t *res;
    plx_status_t st;

    if (!id || !quota_body(r, false, &in, &body))
        return PLX_OK;
    const char *params[] = {
        id, in.given[Q_MAX_TOKENS] ? "true" : "false", in.v[Q_MAX_TOKENS],
        in.given[Q_MAX_COST] ? "true" : "false", in.v[Q_MAX_COST],
    };
    if ((st = plx_db_query(r, quota_update_sql, 5, params, &res)) != PLX_OK)
        return st;
    const char *found = plx_db_value(res, 0, 0), *row = plx_db_value(res, 0, 1);
    if (!found || strcmp(found, "0") == 0)
        return plx_reply_problem(r, 404, "not_found", "no such quota");
    if (!row)
        return plx_reply_problem(r, 400, "invalid_body", "\"max_tokens\" and"
                                 " \"max_cost\" cannot both be null: a quota"
                                 " limits tokens, cost or both (delete it to"
                                 " lift the limit)");
    plx_audit(r, "ai.quota_updated", "ai_quota", id, body);
    return reply_text(r, 200, row);
}

static plx_status_t quota_delete(plx_request_t *r, void *arg)
{
    const char *id;
    plx_db_res_t *res;
    plx_status_t st;

    if (!id_row(r, "quota", quota_delete_sql, NULL, &id, &res, &st))
        return st;
    return reply_deleted(r, "ai.quota_deleted", "ai_quota", id,
                         json_pack("{s:s, s:s, s:s}", "subject_type",
                                   plx_db_value(res, 0, 0), "subject_id",
                                   plx_db_value(res, 0, 1), "period",
                                   plx_db_value(res, 0, 2)));
}

/* ?name= one of values (NULL-terminated) or a UUID (values NULL); false
 * with 400 sent when present and not */
static bool query_param(plx_request_t *r, const char *name,
                        const char *const *values, const char **out)
{
    const char *v = plx_request_query(r, name);

    *out = NULL;
    if (!v)
        return true;
    if (values ? field_index(values, v) >= 0 : plx_uuid_valid(v)) {
        *out = v;
        return true;
    }
    if (values)
        plx_reply_problem(r, 400, "invalid_query", "query parameter \"%s\" must"
                          " be one of %s, %s", name, values[0], values[1]);
    else
        plx_reply_problem(r, 400, "invalid_query", "query parameter \"%s\" must"
                          " be a UUID", name);
    return false;
}

static plx_status_t quota_list(plx_request_t *r, void *arg)
{
    static const char *const types[] = { "user", "team", NULL };
    static const char *const periods[] = { "day", "month", NULL };
    const char *type, *subject, *period, *next_id, *cursor = NULL;
    plx_page_t page = { .size = sizeof page };
    char limit[12];
    plx_db_res_t *res;
    plx_status_t st;
    json_t *body;

    if (!query_param(r, "subject_type", types, &type)
        || !query_param(r, "subject_id", NULL, &subject)
        || !query_param(r, "period", periods, &period))
        return PLX_OK;
    if ((st = plx_page_read(r, "quotas", PLX_KEY_NONE, QUOTA_LIST_DEFAULT,
                            QUOTA_LIST_MAX, &page)) != PLX_OK)
        return st;
    snprintf(limit, sizeof limit, "%d", page.limit);
    const char *params[] = { type, subject, period, page.id, limit };
    if ((st = plx_db_query(r, quota_list_sql, 5, params, &res)) != PLX_OK)
        return st;
    next_id = plx_db_value(res, 0, 1);
    if (next_id && !(cursor = plx_page_cursor(r, "quotas", PLX_KEY_NONE, NULL, next_id)))
        return PLX_ERR_NOMEM;
    if (!(body = json_loads(plx_db_value(res, 0, 0), 0, NULL))
        || json_object_set_new(body, "next_cursor",
                               cursor ? json_string(cursor) : json_null()) != 0) {
        json_decref(body);
        return PLX_ERR_NOMEM;
    }
    return plx_reply_json(r, 200, body);
}

/* ==== registration ======================================================== */

#define ADMIN_ROUTE(method, pattern, fn, summary) \
    { method, pattern, fn, PLX_AUTH_ADMIN, NULL, NULL, summary, "ai" }

static const plx_route_def_t admin_routes[] = {
    ADMIN_ROUTE("GET", "/api/v1/admin/ai/models", model_list,
                "List AI models"),
    ADMIN_ROUTE("POST", "/api/v1/admin/ai/models", model_create,
                "Create an AI model"),
    ADMIN_ROUTE("GET", "/api/v1/admin/ai/models/{id}", model_read,
                "Read an AI model"),
    ADMIN_ROUTE("PATCH", "/api/v1/admin/ai/models/{id}", model_update,
                "Change an AI model"),
    ADMIN_ROUTE("DELETE", "/api/v1/admin/ai/models/{id}", model_delete,
                "Delete an AI model"),
    ADMIN_ROUTE("GET", "/api/v1/admin/ai/quotas", quota_list,
                "List AI quotas with their current use"),
    ADMIN_ROUTE("POST", "/api/v1/admin/ai/quotas", quota_create,
                "Create an AI quota"),
    ADMIN_ROUTE("GET", "/api/v1/admin/ai/quotas/{id}", quota_read,
                "Read an AI quota"),
    ADMIN_ROUTE("PATCH", "/api/v1/admin/ai/quotas/{id}", quota_update,
                "Change an AI quota"),
    ADMIN_ROUTE("DELETE", "/api/v1/admin/ai/quotas/{id}", quota_delete,
                "Delete an AI quota"),
};
#undef ADMIN_ROUTE

bool ai_admin_routes(plx_module_t *m)
{
    if (plx_routes_add(m, admin_routes, m) != PLX_OK) {
        plx_log(m, PLX_LOG_ERROR, "cannot add the admin routes");
        return false;
    }
    return true;
}
