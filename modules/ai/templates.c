/*
 * templates.c - team templates for /api/v1/ai/generate: placeholders and
 * the routes /api/v1/ai/templates
 *
 *   GET    /api/v1/ai/templates?team_id=   members of the team (viewers too)
 *   POST   /api/v1/ai/templates            admins and owners of the team
 *   GET    /api/v1/ai/templates/{id}       members
 *   PATCH  /api/v1/ai/templates/{id}       admins and owners
 *   DELETE /api/v1/ai/templates/{id}       admins and owners
 *
 * A template of a team the caller is not in is not found (404), exactly
 * like one that does not exist. Every write is checked whole before it is
 * stored: field sizes as ai.templates declares them, variable names, every
 * placeholder of the body and the system text naming a declared variable,
 * and the output schema compiling (schema.h). A PATCH merges into the
 * stored template and writes only if nobody changed it meanwhile (409).
 *
 * The first part, placeholders and text checks, touches no request and is
 * unit-tested on its own (tests/test_ai_schema.c).
 */
#include "config.h"

#include "ai.h"
#include "tasks.h"
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== pure helpers ========================================================= */

size_t ai_task_utf8_chars(const char *s)
{
    size_t n = 0;

    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool is_name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

bool ai_tpl_var_name_valid(const char *s)
{
    size_t n = 0;

    if (!s || !is_name_start(s[0]))
        return false;
    while (is_name_char(s[n]))
        n++;
    return s[n] == '\0' && n <= AI_TPL_VAR_NAME_MAX;
}

const char *ai_task_text_problem(json_t *v, size_t min, size_t max, bool multiline,
                            char why[160])
{
    const char *s;
    size_t chars;

    if (!json_is_string(v))
        return "must be a string";
    s = json_string_value(v);
    if (strlen(s) != json_string_length(v))
        return "must not contain NUL characters";
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (multiline && (*p == '\n' || *p == '\r' || *p == '\t'))
            continue;
        if (*p < 0x20 || *p == 0x7f)
            return multiline ? "must not contain control characters other than "
                               "newlines and tabs"
                             : "must not contain control characters";
    }
    chars = ai_task_utf8_chars(s);
    if (chars < min || chars > max) {
        snprintf(why, 160, "must be %zu to %zu characters long", min, max);
        return why;
    }
    return NULL;
}

const char *ai_task_excerpt(const char *p, char out[32])
{
    size_t n = strnlen(p, 24), o = 0;

    if (n == 24)
        while (n > 0 && ((unsigned char)p[n] & 0xC0) == 0x80)
            n--;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        out[o++] = c < 0x20 || c == 0x7f || c == '"' ? '?' : (char)c;
    }
    out[o] = '\0';
    return out;
}

/* The placeholder at p ("{{" ...): its name and the first byte after it.
 * false when it is not "{{", spaces, a name, spaces, "}}". */
static bool placeholder(const char *p, char name[AI_TPL_VAR_NAME_MAX + 1],
                        const char **after)
{
    size_t n = 0;

    p += 2;
    while (*p == ' ')
        p++;
    if (!is_name_start(*p))
        return false;
    while (is_name_char(p[n]))
        n++;
    if (n > AI_TPL_VAR_NAME_MAX)
        return false;
    memcpy(name, p, n);
    name[n] = '\0';
    p += n;
    while (*p == ' ')
        p++;
    if (p[0] != '}' || p[1] != '}')
        return false;
    *after = p + 2;
    return true;
}

static bool declared(json_t *variables, const char *name)
{
    size_t i;
    json_t *v;

    json_array_foreach(variables, i, v)
        if (json_is_string(v) && strcmp(json_string_value(v), name) == 0)
            return true;
    return false;
}

bool ai_tpl_check(const char *text, json_t *variables, char *why, size_t whylen)
{
    char name[AI_TPL_VAR_NAME_MAX + 1], ex[32];
    const char *p = text, *after;

    while ((p = strstr(p, "{{")) != NULL) {
        if (!placeholder(p, name, &after)) {
            snprintf(why, whylen, "malformed placeholder at \"%s\": expected "
                     "{{name}} with a variable name of letters, digits and _",
                     ai_task_excerpt(p, ex));
            return false;
        }
        if (!declared(variables, name)) {
            snprintf(why, whylen, "{{%s}} is not a declared variable", name);
            return false;
        }
        p = after;
    }
    return true;
}

/* a growing buffer that refuses to pass max bytes */
typedef struct tbuf {
    char  *s;
    size_t len, cap, max;
    bool   too_large;        /* the last failure was max, not memory */
} tbuf_t;

static bool tbuf_add(tbuf_t *b, const char *s, size_t n)
{
    if (n > b->max - b->len) {
        b->too_large = true;
        return false;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p)
            return false;
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
    return true;
}

/* a number as JSON writes it (15 significant digits: 0.1 stays 0.1) */
static char *number_text(json_t *v)
{
    return json_dumps(v, JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));
}

char *ai_tpl_render(const char *text, json_t *values, size_t max, char *why,
                    size_t whylen)
{
    char name[AI_TPL_VAR_NAME_MAX + 1];
    tbuf_t b = { .max = max };
    const char *p = text, *q, *after;
    bool ok = tbuf_add(&b, "", 0);

    while (ok && (q = strstr(p, "{{")) != NULL) {
        if (!placeholder(q, name, &after)) {   /* checked on write: no */
            snprintf(why, whylen, "malformed placeholder");
            free(b.s);
            return NULL;
        }
        json_t *v = json_object_get(values, name);
        ok = tbuf_add(&b, p, (size_t)(q - p));
        if (ok && json_is_string(v)) {
            ok = tbuf_add(&b, json_string_value(v), json_string_length(v));
        } else if (ok && json_is_number(v)) {
            char *num = number_text(v);
            ok = num && tbuf_add(&b, num, strlen(num));
            free(num);
        } else if (ok) {
            snprintf(why, whylen, "variable \"%s\" %s", name,
                     v ? "must be a string or a number" : "is missing");
            free(b.s);
            return NULL;
        }
        p = after;
    }
    if (ok)
        ok = tbuf_add(&b, p, strlen(p));
    if (!ok) {
        if (b.too_large)
            snprintf(why, whylen, "the rendered text would pass %zu bytes", max);
        else
            snprintf(why, whylen, "out of memory");
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ==== request helpers ========================================================= */

bool ai_task_model_name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n < 1 || n > AI_NAME_MAX)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')
          || (s[0] >= '0' && s[0] <= '9')))
        return false;
    for (size_t i = 1; i < n; i++)
        if (!is_name_char(s[i]) && !strchr(".:/-", s[i]))
            return false;
    return true;
}

/* ---- SQL ------------------------------------------------------------------------ */

/* a template as one JSON text, column "row" */
#define TPL_ROW(t)                                                             \
    "json_build_object('id', " t ".id, 'team_id', " t ".team_id,"              \
    " 'name', " t ".name, 'description', " t ".description,"                   \
    " 'system', " t ".system, 'body', " t ".body,"                             \
    " 'variables', " t ".variables, 'output_schema', " t ".output_schema,"     \
    " 'model', " t ".model, 'created_by', " t ".created_by,"                   \
    " 'created_at', " PLX_SQL_RFC3339(t ".created_at") ","                            \
    " 'updated_at', " PLX_SQL_RFC3339(t ".updated_at") ")::text AS row"
/* the version a PATCH writes at: updated_at to the microsecond */
#define TPL_VERSION(t) "(extract(epoch FROM " t ".updated_at) * 1000000)::bigint"
/* the caller ($n) may write the templates of the team of t */
#define TPL_CAN_WRITE(team, user)                                              \
    "EXISTS (SELECT 1 FROM plexus.team_members m WHERE m.team_id = " team      \
    " AND m.user_id = " user "::uuid AND m.role IN ('admin', 'owner'))"

/* $1 template, $2 caller */
static const char fetch_sql[] =
    "SELECT " TPL_ROW("t") ", m.role, " TPL_VERSION("t") " AS version"
    " FROM ai.templates t JOIN plexus.team_members m"
    " ON m.team_id = t.team_id AND m.user_id = $2::uuid"
    " WHERE t.id = $1::uuid";

/* $1 team, $2 name, $3 description, $4 system, $5 body, $6 variables,
 * $7 output schema or NULL, $8 model or NULL, $9 caller */
static const char create_sql[] =
    "INSERT INTO ai.templates AS t (team_id, name, description, system, body,"
    " variables, output_schema, model, created_by)"
    " SELECT $1::uuid, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9::uuid"
    " WHERE " TPL_CAN_WRITE("$1::uuid", "$9")
    " RETURNING t.id, " TPL_ROW("t");

/* $1 team, $2 name after which to start or NULL, $3 limit + 1 */
static const char list_sql[] =
    "SELECT t.name, " TPL_ROW("t") " FROM ai.templates t"
    " WHERE t.team_id = $1::uuid AND ($2::text IS NULL OR t.name COLLATE \"C\" > $2::text)"
    " ORDER BY t.name COLLATE \"C\" LIMIT $3::int";

/* $1 template, $2 caller, $3..$9 as create's $2..$8, $10 version read */
static const char update_sql[] =
    "UPDATE ai.templates t SET name = $3, description = $4, system = $5,"
    " body = $6, variables = $7::jsonb, output_schema = $8::jsonb, model = $9,"
    " updated_at = now()"
    " WHERE t.id = $1::uuid AND " TPL_VERSION("t") " = $10::bigint"
    " AND " TPL_CAN_WRITE("t.team_id", "$2")
    " RETURNING " TPL_ROW("t");

/* $1 template, $2 caller */
static const char delete_sql[] =
    "DELETE FROM ai.templates t WHERE t.id = $1::uuid"
    " AND " TPL_CAN_WRITE("t.team_id", "$2") " RETURNING t.id";

/* ---- fields ---------------------------------------------------------------------- */

/* the fields a template has (and a PATCH may carry); team_id is fixed */
static const char *const tpl_fields[] = {
    "name", "description", "system", "body", "variables", "output_schema",
    "model", NULL
};

static bool is_field(const char *key, bool create)
{
    if (create && strcmp(key, "team_id") == 0)
        return true;
    for (int i = 0; tpl_fields[i]; i++)
        if (strcmp(key, tpl_fields[i]) == 0)
            return true;
    return false;
}

static bool refuse(plx_request_t *r, const char *code, const char *field,
                   const char *why)
{
    plx_reply_problem(r, 400, code, "field \"%s\" %s", field, why);
    return false;
}

static bool variables_valid(plx_request_t *r, json_t *vars)
{
    size_t i, j;
    json_t *v;

    if (!json_is_array(vars))
        return refuse(r, "invalid_body", "variables", "must be an array of names");
    if (json_array_size(vars) > AI_TPL_VARS_MAX) {
        char why[64];
        snprintf(why, sizeof why, "must name at most %d variables", AI_TPL_VARS_MAX);
        return refuse(r, "invalid_body", "variables", why);
    }
    json_array_foreach(vars, i, v) {
        if (!json_is_string(v) || !ai_tpl_var_name_valid(json_string_value(v)))
            return refuse(r, "invalid_body", "variables",
                          "must hold names of letters, digits and _, not starting "
                          "with a digit, at most 64 bytes each");
        for (j = 0; j < i; j++)
            if (json_equal(json_array_get(vars, j), v)) {
                plx_reply_problem(r, 400, "invalid_body",
                                  "field \"variables\" names \"%s\" twice",
                                  json_string_value(v));
                return false;
            }
    }
    return true;
}

/* Check a whole template (create, or stored + patch); false with the 400
 * answered. */
static bool tpl_valid(plx_request_t *r, json_t *t)
{
    static const struct { const char *name; size_t min, max; bool multiline; } texts[] = {
        { "name", 1, AI_TPL_NAME_MAX, false },
        { "description", 0, AI_TPL_DESCRIPTION_MAX, true },
        { "system", 0, AI_TPL_SYSTEM_MAX, true },
        { "body", 1, AI_TPL_BODY_MAX, true },
    };
    char why[512];
    const char *problem;
    json_t *vars = json_object_get(t, "variables");
    json_t *schema = json_object_get(t, "output_schema");
    json_t *model = json_object_get(t, "model");

    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        problem = ai_task_text_problem(json_object_get(t, texts[i].name), texts[i].min,
                                  texts[i].max, texts[i].multiline, why);
        if (problem)
            return refuse(r, "invalid_body", texts[i].name, problem);
    }
    if (!variables_valid(r, vars))
        return false;
    if (!json_is_null(model) && !(json_is_string(model)
                                  && ai_task_model_name_valid(json_string_value(model))))
        return refuse(r, "invalid_body", "model",
                      "must be null or a model name (letters, digits and ._:/-, "
                      "at most 128)");
    if (!json_is_null(schema)) {
        ai_schema_t *compiled = ai_schema_compile(schema, why, sizeof why);
        if (!compiled) {
            plx_reply_problem(r, 400, "invalid_schema", "field \"output_schema\": %s", why);
            return false;
        }
        ai_schema_free(compiled);
    }
    for (int i = 0; i < 2; i++) {
        const char *field = i ? "body" : "system";
        if (!ai_tpl_check(json_string_value(json_object_get(t, field)), vars,
                          why, sizeof why)) {
            plx_reply_problem(r, 400, "unknown_variable", "field \"%s\": %s", field, why);
            return false;
        }
    }
    return true;
}

/* the body: an object of known fields only; NULL with the answer sent */
static json_t *tpl_body(plx_request_t *r, bool create)
{
    json_t *body, *v;
    const char *key;

    if (plx_request_json(r, &body) != PLX_OK)
        return NULL;   /* the core answered 400 or 413 */
    if (!json_is_object(body)) {
        plx_reply_problem(r, 400, "invalid_body", "expected a JSON object");
        return NULL;
    }
    json_object_foreach(body, key, v)
        if (!is_field(key, create)) {
            char ex[32];
            plx_reply_problem(r, 400, "invalid_body", "unknown field \"%s\"%s",
                              ai_task_excerpt(key, ex),
                              strcmp(key, "team_id") == 0
                              ? ": a template stays in its team" : "");
            return NULL;
        }
    if (!create && json_object_size(body) == 0) {
        plx_reply_problem(r, 400, "invalid_body", "expected at least one field to change");
        return NULL;
    }
    return body;
}

/* a JSON value as text for a $n::jsonb parameter (r's pool); NULL for null */
static const char *jsonb_param(plx_request_t *r, json_t *v, bool *ok)
{
    char *s, *copy;

    *ok = true;
    if (!v || json_is_null(v))
        return NULL;
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    copy = s ? plx_pstrdup(r, s) : NULL;
    free(s);
    *ok = copy != NULL;
    return copy;
}

static const char *str_or_null(json_t *t, const char *key)
{
    return json_string_value(json_object_get(t, key));   /* NULL for null */
}

static plx_role_t role_parse(const char *s)
{
    static const char *const names[] = { "viewer", "member", "admin", "owner" };

    for (int i = 0; s && i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return (plx_role_t)(PLX_ROLE_VIEWER + i);
    return PLX_ROLE_NONE;
}

/* a "row" column as JSON (new reference), NULL on no memory */
static json_t *row_json(const plx_db_res_t *res, int row)
{
    const char *text = plx_db_value(res, row, plx_db_col(res, "row"));

    return text ? json_loads(text, 0, NULL) : NULL;
}

/* the template id with the caller's role and its version; PLX_OK with
 * *row set, PLX_ERR_NOT_FOUND (none, or not the caller's team), or an
 * error for the core */
static plx_status_t fetch(plx_request_t *r, const char *id, json_t **row,
                          plx_role_t *role, const char **version)
{
    plx_db_res_t *res;
    plx_status_t st;
    const char *params[] = { id, plx_request_user_id(r) };

    *row = NULL;
    *role = PLX_ROLE_NONE;
    if (!plx_uuid_valid(id) || !params[1])
        return PLX_ERR_NOT_FOUND;
    if ((st = plx_db_query(r, fetch_sql, 2, params, &res)) != PLX_OK)
        return st;
    if (plx_db_rows(res) != 1)
        return PLX_ERR_NOT_FOUND;
    if (!(*row = row_json(res, 0)))
        return PLX_ERR_NOMEM;
    *role = role_parse(plx_db_value(res, 0, plx_db_col(res, "role")));
    if (version)
        *version = plx_db_value(res, 0, plx_db_col(res, "version"));
    return PLX_OK;
}

plx_status_t ai_template_fetch(plx_request_t *r, const char *id, json_t **row,
                               plx_role_t *role)
{
    return fetch(r, id, row, role, NULL);
}

static plx_status_t not_found(plx_request_t *r)
{
    return plx_reply_problem(r, 404, "not_found", "no such template");
}

static plx_status_t not_writer(plx_request_t *r)
{
    return plx_reply_problem(r, 403, "forbidden",
                             "only admins and owners of the team may change its templates");
}

/* the template of {id}: PLX_OK with *row set, PLX_OK with *row NULL when
 * 404 was answered, or an error status for the core */
static plx_status_t fetch_or_answer(plx_request_t *r, json_t **row, plx_role_t *role,
                                    const char **version)
{
    plx_status_t st = fetch(r, plx_request_param(r, "id"), row, role, version);

    if (st == PLX_ERR_NOT_FOUND)
        return not_found(r);
    return st;
}

/* ---- handlers ------------------------------------------------------------------- */

/* store the checked template t (borrowed: the parameters point into it)
 * in team and answer 201 */
static plx_status_t tpl_insert(plx_request_t *r, const char *team, json_t *t)
{
    plx_db_res_t *res;
    plx_status_t st;
    bool ok1, ok2;
    char location[80];
    const char *params[] = {
        team, str_or_null(t, "name"), str_or_null(t, "description"),
        str_or_null(t, "system"), str_or_null(t, "body"),
        jsonb_param(r, json_object_get(t, "variables"), &ok1),
        jsonb_param(r, json_object_get(t, "output_schema"), &ok2),
        str_or_null(t, "model"), plx_request_user_id(r),
    };

    if (!ok1 || !ok2)
        return PLX_ERR_NOMEM;
    st = plx_db_query(r, create_sql, 9, params, &res);
    if (st == PLX_ERR_CONFLICT)
        return plx_reply_problem(r, 409, "name_taken",
                                 "the team already has a template named \"%s\"", params[1]);
    if (st != PLX_OK)
        return st;
    if (plx_db_rows(res) != 1)   /* the caller's role changed meanwhile */
        return not_writer(r);
    json_t *row = row_json(res, 0);
    if (!row)
        return PLX_ERR_NOMEM;
    snprintf(location, sizeof location, "/api/v1/ai/templates/%s",
             plx_db_value(res, 0, 0));
    plx_response_header(r, "Location", location);
    return plx_reply_json(r, 201, row);
}

static plx_status_t tpl_create(plx_request_t *r, void *arg)
{
    json_t *body = tpl_body(r, true), *t, *team;
    plx_role_t role;
    plx_status_t st;

    if (!body)
        return PLX_OK;
    team = json_object_get(body, "team_id");
    if (!json_is_string(team) || !plx_uuid_valid(json_string_value(team)))
        return plx_reply_problem(r, 400, "invalid_body",
                                 "field \"team_id\" must be the UUID of one of your teams");
    if ((st = plx_team_role(r, json_string_value(team), &role)) != PLX_OK)
        return st;
    if (role == PLX_ROLE_NONE)
        return plx_reply_problem(r, 404, "not_found", "no such team");
    if (role < PLX_ROLE_ADMIN)
        return not_writer(r);
    /* the defaults, then what the body gives */
    t = json_pack("{s:s, s:s, s:[], s:n, s:n}", "description", "", "system", "",
                  "variables", "output_schema", "model");
    if (!t || json_object_update(t, body) != 0) {
        json_decref(t);
        return PLX_ERR_NOMEM;
    }
    if (!json_object_get(t, "name") || !json_object_get(t, "body")) {
        json_decref(t);
        return plx_reply_problem(r, 400, "invalid_body", "field \"%s\" is required",
                                 json_object_get(body, "name") ? "body" : "name");
    }
    if (!tpl_valid(r, t)) {
        json_decref(t);
        return PLX_OK;
    }
    st = tpl_insert(r, json_string_value(team), t);
    json_decref(t);
    return st;
}

/* The list cursor: the last name, base64url (RFC 4648 section 5). Names
 * are ordered by name, not by a time or an id, and may be longer than the
 * core's text sort key allows (AI_TPL_NAME_MAX characters of up to 4
 * bytes), so the cursor is the name alone on the core's encoding. */
static char *cursor_encode(plx_request_t *r, const char *name)
{
    size_t len = strlen(name), cap = PLX_B64_LEN(len);
    char *out = plx_palloc(r, cap);

    if (!out || plx_base64_encode(PLX_B64_URL, name, len, out, cap) == (size_t)-1)
        return NULL;
    return out;
}

/* the decoded cursor (r's pool), NULL when it is not the name of a
 * template */
static char *cursor_decode(plx_request_t *r, const char *in)
{
    size_t len = strlen(in), n;
    char *out;

    if (len == 0 || len > PLX_B64_LEN(AI_TPL_NAME_MAX * 4) || !(out = plx_palloc(r, len)))
        return NULL;
    if (plx_base64_decode(PLX_B64_URL, in, len, out, len - 1, &n) != PLX_OK
        || !plx_utf8_valid(out, n))
        return NULL;
    out[n] = '\0';
    if (plx_utf8_chars(out, n) > AI_TPL_NAME_MAX)
        return NULL;
    return out;
}

static plx_status_t tpl_list(plx_request_t *r, void *arg)
{
    const char *team = plx_request_query(r, "team_id");
    const char *limit_s = plx_request_query(r, "limit");
    const char *cursor = plx_request_query(r, "cursor"), *after = NULL;
    plx_db_res_t *res;
    plx_role_t role;
    plx_status_t st;
    long limit = AI_TPL_LIST_DEFAULT;
    char limit1[16], *end;

    if (!team || !plx_uuid_valid(team))
        return plx_reply_problem(r, 400, "invalid_query",
                                 "query parameter \"team_id\" must be the UUID of "
                                 "one of your teams");
    if (limit_s) {
        limit = strtol(limit_s, &end, 10);
        if (!*limit_s || *end || limit < 1 || limit > AI_TPL_LIST_MAX)
            return plx_reply_problem(r, 400, "invalid_query",
                                     "query parameter \"limit\" must be 1 to %d",
                                     AI_TPL_LIST_MAX);
    }
    if (cursor && !(after = cursor_decode(r, cursor)))
        return plx_reply_problem(r, 400, "invalid_cursor",
                                 "query parameter \"cursor\" is not a cursor of this list");
    if ((st = plx_team_role(r, team, &role)) != PLX_OK)
        return st;
    if (role == PLX_ROLE_NONE)
        return plx_reply_problem(r, 404, "not_found", "no such team");
    snprintf(limit1, sizeof limit1, "%ld", limit + 1);
    const char *params[] = { team, after, limit1 };
    if ((st = plx_db_query(r, list_sql, 3, params, &res)) != PLX_OK)
        return st;
    json_t *items = json_array(), *out;
    int rows = plx_db_rows(res);
    for (int i = 0; items && i < rows && i < limit; i++)
        if (json_array_append_new(items, row_json(res, i)) != 0) {
            json_decref(items);
            items = NULL;
        }
    char *next = rows > limit
                 ? cursor_encode(r, plx_db_value(res, (int)limit - 1, 0)) : NULL;
    out = items ? json_pack("{s:o, s:s?}", "items", items, "next_cursor", next) : NULL;
    if (!out)
        return PLX_ERR_NOMEM;
    return plx_reply_json(r, 200, out);
}

static plx_status_t tpl_read(plx_request_t *r, void *arg)
{
    json_t *row;
    plx_role_t role;
    plx_status_t st = fetch_or_answer(r, &row, &role, NULL);

    if (st != PLX_OK || !row)
        return st;
    return plx_reply_json(r, 200, row);
}

static plx_status_t tpl_update(plx_request_t *r, void *arg)
{
    json_t *patch, *row;
    const char *version;
    plx_db_res_t *res;
    plx_role_t role;
    plx_status_t st;
    bool ok1, ok2;

    if (!(patch = tpl_body(r, false)))
        return PLX_OK;
    if ((st = fetch_or_answer(r, &row, &role, &version)) != PLX_OK || !row)
        return st;
    if (role < PLX_ROLE_ADMIN) {
        json_decref(row);
        return not_writer(r);
    }
    if (json_object_update(row, patch) != 0) {
        json_decref(row);
        return PLX_ERR_NOMEM;
    }
    if (!tpl_valid(r, row)) {
        json_decref(row);
        return PLX_OK;
    }
    const char *params[] = {
        plx_request_param(r, "id"), plx_request_user_id(r),
        str_or_null(row, "name"), str_or_null(row, "description"),
        str_or_null(row, "system"), str_or_null(row, "body"),
        jsonb_param(r, json_object_get(row, "variables"), &ok1),
        jsonb_param(r, json_object_get(row, "output_schema"), &ok2),
        str_or_null(row, "model"), version,
    };
    /* params borrow row's strings until the query is done */
    st = ok1 && ok2 ? plx_db_query(r, update_sql, 10, params, &res) : PLX_ERR_NOMEM;
    if (st == PLX_ERR_CONFLICT) {
        st = plx_reply_problem(r, 409, "name_taken",
                               "the team already has a template named \"%s\"", params[2]);
        json_decref(row);
        return st;
    }
    json_decref(row);
    if (st != PLX_OK)
        return st;
    if (plx_db_rows(res) != 1)
        return plx_reply_problem(r, 409, "conflict",
                                 "the template changed meanwhile: read it again and retry");
    if (!(row = row_json(res, 0)))
        return PLX_ERR_NOMEM;
    return plx_reply_json(r, 200, row);
}

static plx_status_t tpl_delete(plx_request_t *r, void *arg)
{
    json_t *row;
    plx_db_res_t *res;
    plx_role_t role;
    plx_status_t st = fetch_or_answer(r, &row, &role, NULL);
    const char *id = plx_request_param(r, "id");

    if (st != PLX_OK || !row)
        return st;
    if (role < PLX_ROLE_ADMIN) {
        json_decref(row);
        return not_writer(r);
    }
    json_t *details = json_pack("{s:O?, s:O?}", "team_id", json_object_get(row, "team_id"),
                                "name", json_object_get(row, "name"));
    json_decref(row);
    const char *params[] = { id, plx_request_user_id(r) };
    if ((st = plx_db_query(r, delete_sql, 2, params, &res)) != PLX_OK) {
        json_decref(details);
        return st;
    }
    if (plx_db_rows(res) == 1)
        plx_audit(r, "ai.template_deleted", "ai_template", id, details);
    json_decref(details);
    if (plx_db_rows(res) != 1)   /* deleted meanwhile, or the role changed */
        return not_found(r);
    return plx_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

/* ---- registration ----------------------------------------------------------------- */

#define TPL_ROUTE(method, pattern, fn, summary) \
    { method, pattern, fn, PLX_AUTH_SCOPE, "ai", NULL, summary, "ai" }

static const plx_route_def_t tpl_routes[] = {
    TPL_ROUTE("GET", "/api/v1/ai/templates", tpl_list,
              "List the templates of a team (?team_id=, limit, cursor)"),
    TPL_ROUTE("POST", "/api/v1/ai/templates", tpl_create,
              "Create a template in a team you administer"),
    TPL_ROUTE("GET", "/api/v1/ai/templates/{id}", tpl_read,
              "Read a template of one of your teams"),
    TPL_ROUTE("PATCH", "/api/v1/ai/templates/{id}", tpl_update,
              "Change a template (team admins and owners)"),
    TPL_ROUTE("DELETE", "/api/v1/ai/templates/{id}", tpl_delete,
              "Delete a template (team admins and owners)"),
};
#undef TPL_ROUTE

bool ai_template_routes(plx_module_t *m)
{
    return plx_routes_add(m, tpl_routes, m) == PLX_OK;
}
