/*
 * common.c - what the projects module's route files share
 *
 * First the pure helpers (dates, LIKE patterns, If-Match), which touch no
 * request and are unit-tested on their own (tests/test_projects_unit.c);
 * then the request helpers built on them and on the core's primitives
 * (UUIDs, UTF-8, pages and cursors): body validation that names the
 * offending field, query parameters, pages, row rendering, ETags, the
 * reading of a guarded write, and events.
 */
#include "projects.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ==== pure helpers ======================================================== */

static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

bool projects_date_valid(const char *s)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, m, d, max;

    if (!s || strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    y = digits(s, 4);
    m = digits(s + 5, 2);
    d = digits(s + 8, 2);
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    max = days[m - 1];
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        max = 29;
    return d <= max;
}

bool projects_one_of(const char *s, const char *const *values)
{
    for (; s && values && *values; values++)
        if (strcmp(s, *values) == 0)
            return true;
    return false;
}

char *projects_like_pattern(const char *s, char *out, size_t outlen)
{
    size_t o = 0;

    if (outlen < 2 * strlen(s) + 3)
        return NULL;
    out[o++] = '%';
    for (; *s; s++) {
        if (*s == '%' || *s == '_' || *s == '\\')
            out[o++] = '\\';   /* ILIKE's default escape character */
        out[o++] = *s;
    }
    out[o++] = '%';
    out[o] = '\0';
    return out;
}

bool projects_date_key_valid(const char *key)
{
    return key && (strcmp(key, "infinity") == 0 || projects_date_valid(key));
}

/* ---- If-Match ------------------------------------------------------------ */

/* "123" between double quotes, at most 9 digits (an integer column) */
static bool strong_version(const char *tag, size_t len)
{
    if (len < 3 || len > 11 || tag[0] != '"' || tag[len - 1] != '"')
        return false;
    for (size_t i = 1; i + 1 < len; i++)
        if (tag[i] < '0' || tag[i] > '9')
            return false;
    return true;
}

bool projects_if_match_parse(const char *header, char *out, size_t outlen)
{
    size_t o = 0;
    int tags = 0;
    const char *p = header;

    while (*p == ' ' || *p == '\t')
        p++;
    if (p[0] == '*' && strspn(p + 1, " \t") == strlen(p + 1))
        return false;
    out[o++] = '{';
    while (*p && tags < PROJECTS_IF_MATCH_MAX) {
        size_t len = strcspn(p, ",");
        const char *next = p + len + (p[len] == ',');
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        while (len && (*p == ' ' || *p == '\t'))
            p++, len--;
        if (strong_version(p, len) && o + len < outlen - 2) {
            if (tags++)
                out[o++] = ',';
            memcpy(out + o, p + 1, len - 2);
            o += len - 2;
        }
        p = next;
    }
    out[o++] = '}';
    out[o] = '\0';
    return true;
}

/* ==== request helpers ===================================================== */

/* A user's own token holds every scope; an API key reaches these routes
 * only with "projects:read" (GET) or "projects:write" (everything else). */
bool projects_routes_add(plx_module_t *m, const projects_route_t *routes)
{
    for (const projects_route_t *rt = routes; rt->method; rt++) {
        const char *scope = strcmp(rt->method, "GET") == 0 ? "projects:read"
                                                           : "projects:write";
        if (plx_route_add(m, rt->method, rt->pattern, rt->fn, m,
                          PLX_ROUTE_OPTS(.auth = PLX_AUTH_SCOPE, .scope = scope,
                                         .summary = rt->summary,
                                         .tag = "projects")) != PLX_OK)
            return false;
    }
    return true;
}

/* s for an error detail: at most 64 bytes, cut on a character boundary,
 * controls and quotes replaced, so that detail stays one clean line */
static const char *printable(const char *s, char out[72])
{
    size_t n = plx_utf8_repair(s, strnlen(s, 64), out, 65);

    for (size_t i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f || out[i] == '"')
            out[i] = '?';
    return out;
}

static bool has_control(const char *s, bool allow_newlines)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (allow_newlines && (*p == '\n' || *p == '\r' || *p == '\t'))
            continue;
        if (*p < 0x20 || *p == 0x7f)
            return true;
    }
    return false;
}

/* why the text s is not a name, text or body; NULL when it is */
static const char *length_problem(projects_kind_t kind, const char *s, char why[160])
{
    long chars = plx_utf8_chars(s, strlen(s));
    long min = kind == PROJECTS_F_TEXT ? 0 : 1;
    long max = kind == PROJECTS_F_NAME ? PROJECTS_NAME_MAX : PROJECTS_TEXT_MAX;

    if (chars < min || chars > max) {
        snprintf(why, 160, "must be valid UTF-8 of %ld to %ld characters", min, max);
        return why;
    }
    if (has_control(s, kind != PROJECTS_F_NAME))
        return "must not contain control characters";
    return NULL;
}

/* why the string s is not of kind, into why[160]; NULL when it is */
static const char *text_problem(projects_kind_t kind, const char *s,
                                const char *const *values, char why[160])
{
    size_t o;

    switch (kind) {
    case PROJECTS_F_UUID:
        return plx_uuid_valid(s) ? NULL : "must be a UUID";
    case PROJECTS_F_DATE:
        return projects_date_valid(s) ? NULL : "must be a date, YYYY-MM-DD";
    case PROJECTS_F_ENUM:
        if (projects_one_of(s, values))
            return NULL;
        o = (size_t)snprintf(why, 160, "must be one of");
        for (int i = 0; values[i] && o < 160; i++)
            o += (size_t)snprintf(why + o, 160 - o, "%s %s", i ? "," : "", values[i]);
        return why;
    default:
        return length_problem(kind, s, why);
    }
}

static const char *value_problem(const projects_field_t *f, json_t *v,
                                 char why[160])
{
    if (json_is_null(v))
        return f->nullable ? NULL : "must not be null";
    if (!json_is_string(v))
        return f->nullable ? "must be a string or null" : "must be a string";
    return text_problem(f->kind, json_string_value(v), f->values, why);
}

static json_t *body_refused(plx_request_t *r, const char *code,
                            const char *field, const char *why)
{
    char name[72];

    plx_reply_problem(r, 400, code, "field \"%s\" %s", printable(field, name), why);
    return NULL;
}

/* the body as text for a $n::jsonb parameter, from r's pool */
static const char *body_text(plx_request_t *r, json_t *body)
{
    char *s = json_dumps(body, JSON_COMPACT);
    char *copy = s ? plx_pstrdup(r, s) : NULL;

    free(s);
    return copy;
}

json_t *projects_body(plx_request_t *r, const projects_field_t *fields,
                      bool create, const char **text)
{
    json_t *body, *v;
    const char *key, *why;
    char buf[160];

    if (plx_request_body_object(r, &body) != PLX_OK)
        return NULL;   /* answered by the core: 400 invalid_body or 413 */
    json_object_foreach(body, key, v) {
        const projects_field_t *f = fields;
        while (f->name && strcmp(f->name, key) != 0)
            f++;
        if (!f->name)
            return body_refused(r, "unknown_field", key, "is not a field of this resource");
        if ((why = value_problem(f, v, buf)))
            return body_refused(r, "invalid_field", key, why);
    }
    for (const projects_field_t *f = fields; create && f->name; f++)
        if (f->required && !json_object_get(body, f->name))
            return body_refused(r, "missing_field", f->name, "is required");
    if (!create && json_object_size(body) == 0) {
        plx_reply_problem(r, 400, "invalid_body", "expected at least one field to change");
        return NULL;
    }
    if (!(*text = body_text(r, body))) {
        plx_reply_problem(r, 500, "internal", "out of memory");
        return NULL;
    }
    return body;
}

const char *projects_path_id(plx_request_t *r, const char *what)
{
    const char *id = plx_request_param(r, "id");

    if (plx_uuid_valid(id))
        return id;
    plx_reply_problem(r, 404, "not_found", "no such %s", what);
    return NULL;
}

bool projects_query(plx_request_t *r, const char *name, projects_kind_t kind,
                    const char *const *values, const char **out)
{
    const char *v = plx_request_query(r, name);
    const char *why;
    char buf[160];

    *out = NULL;
    if (!v)
        return true;
    if ((why = text_problem(kind, v, values, buf))) {
        plx_reply_problem(r, 400, "invalid_query", "query parameter \"%s\" %s",
                          name, why);
        return false;
    }
    *out = v;
    return true;
}

bool projects_page_params(plx_request_t *r, const char *tag,
                          projects_key_t kind, projects_page_t *page)
{
    plx_page_t p = { .size = sizeof p };

    page->kind = kind;
    if (plx_page_read(r, tag, kind == PROJECTS_KEY_DATE ? PLX_KEY_TEXT : PLX_KEY_TIME,
                      PROJECTS_LIMIT_DEFAULT, PROJECTS_LIMIT_MAX, &p) != PLX_OK)
        return false;   /* answered: 400 invalid_limit or invalid_cursor */
    if (kind == PROJECTS_KEY_DATE && p.key && !projects_date_key_valid(p.key)) {
        plx_reply_problem(r, 400, "invalid_cursor", "query parameter \"cursor\" is not"
                          " a cursor of this list and order");
        return false;
    }
    page->limit = p.limit;
    page->key = p.key;
    page->id = p.id;
    snprintf(page->limit_plus_one, sizeof page->limit_plus_one, "%d", page->limit + 1);
    return true;
}

/* ---- rendering ----------------------------------------------------------- */

#define COLS_MAX 16   /* columns rendered from one row; more are ignored */

/* the result's column number of each of cols (names are looked up once
 * per result, not once per row) */
static void col_numbers(const plx_db_res_t *res, const projects_col_t *cols,
                        int num[COLS_MAX])
{
    for (int i = 0; i < COLS_MAX && cols[i].name; i++)
        num[i] = plx_db_col(res, cols[i].name);
}

static json_t *row_json(const plx_db_res_t *res, int row,
                        const projects_col_t *cols, const int num[COLS_MAX])
{
    json_t *obj = json_object();

    for (int i = 0; obj && i < COLS_MAX && cols[i].name; i++) {
        const char *v = plx_db_value(res, row, num[i]);
        json_t *j = !v ? json_null()
                    : cols[i].integer ? json_integer(strtoll(v, NULL, 10))
                    : json_string(v);
        if (json_object_set_new(obj, cols[i].name, j) != 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

json_t *projects_row_json(const plx_db_res_t *res, int row,
                          const projects_col_t *cols)
{
    int num[COLS_MAX];

    col_numbers(res, cols, num);
    return row_json(res, row, cols, num);
}

static const char *next_cursor(plx_request_t *r, const plx_db_res_t *res,
                               int row, const char *tag, projects_key_t kind)
{
    return plx_page_cursor(r, tag, kind == PROJECTS_KEY_DATE ? PLX_KEY_TEXT : PLX_KEY_TIME,
                           plx_db_value(res, row, plx_db_col(res, "sort_key")),
                           plx_db_value(res, row, plx_db_col(res, "id")));
}

plx_status_t projects_reply_list(plx_request_t *r, const plx_db_res_t *res,
                                 const projects_page_t *page, const char *tag,
                                 const projects_col_t *cols)
{
    json_t *items = json_array();
    int num[COLS_MAX], idcol = plx_db_col(res, "id"), shown = 0, last = -1;
    bool more = false;

    col_numbers(res, cols, num);
    for (int i = 0; items && i < plx_db_rows(res); i++) {
        if (!plx_db_value(res, i, idcol))
            continue;
        if (shown == page->limit) {
            more = true;
            break;
        }
        if (json_array_append_new(items, row_json(res, i, cols, num)) != 0) {
            json_decref(items);
            return PLX_ERR_NOMEM;
        }
        shown++;
        last = i;
    }
    if (!items)
        return PLX_ERR_NOMEM;
    const char *cursor = more ? next_cursor(r, res, last, tag, page->kind) : NULL;
    return plx_reply_json(r, 200, json_pack("{s:o, s:s?}", "items", items,
                                            "next_cursor", cursor));
}

plx_status_t projects_reply_row(plx_request_t *r, int status, json_t *row)
{
    char etag[24];

    if (!row)
        return PLX_ERR_NOMEM;
    snprintf(etag, sizeof etag, "\"%lld\"",
             (long long)json_integer_value(json_object_get(row, "version")));
    plx_response_header(r, "ETag", etag);
    return plx_reply_json(r, status, row);
}

/* ---- writes -------------------------------------------------------------- */

bool projects_if_match(plx_request_t *r, bool required, const char **versions)
{
    const char *h = plx_request_header(r, "If-Match");
    char buf[PROJECTS_IF_MATCH_MAX * 11 + 3];

    *versions = NULL;
    if (!h && required) {
        plx_reply_problem(r, 428, "precondition_required",
                          "send If-Match with the ETag of the version you change");
        return false;
    }
    if (h && projects_if_match_parse(h, buf, sizeof buf))
        *versions = plx_pstrdup(r, buf);
    return true;
}

/* problems a write's "target" may report, and how they are answered */
static const struct {
    const char *problem;
    int         status;
    const char *code;
    const char *detail;
} problems[] = {
    { "project_archived", 409, "project_archived",
      "the project is archived: its tasks and comments are read-only" },
    { "assignee_not_member", 400, "invalid_field",
      "field \"assignee_id\" must be a member of the team" },
};

static bool refuse(plx_request_t *r, int status, const char *code,
                   const char *detail)
{
    plx_reply_problem(r, status, code, "%s", detail);
    return false;
}

bool projects_write_done(plx_request_t *r, const plx_db_res_t *res,
                         const char *what)
{
    const char *allowed = plx_db_value(res, 0, plx_db_col(res, "allowed"));
    const char *problem = plx_db_value(res, 0, plx_db_col(res, "problem"));
    char detail[96];

    if (plx_db_rows(res) == 0) {
        snprintf(detail, sizeof detail, "no such %s", what);
        return refuse(r, 404, "not_found", detail);
    }
    if (!allowed || strcmp(allowed, "t") != 0)
        return refuse(r, 403, "forbidden", "your role in the team does not allow this");
    for (size_t i = 0; problem && i < sizeof problems / sizeof problems[0]; i++)
        if (strcmp(problem, problems[i].problem) == 0)
            return refuse(r, problems[i].status, problems[i].code, problems[i].detail);
    if (problem)
        return refuse(r, 500, "internal", "a write reported an unknown problem");
    if (!plx_db_value(res, 0, plx_db_col(res, "id"))) {
        snprintf(detail, sizeof detail, "the %s has changed since the version in"
                 " If-Match; read it again", what);
        return refuse(r, 412, "precondition_failed", detail);
    }
    return true;
}

plx_status_t projects_team_access(plx_request_t *r, const char *team_id,
                                  plx_role_t need)
{
    plx_role_t role;
    plx_status_t st = plx_team_role(r, team_id, &role);

    if (st != PLX_OK)
        return st;
    if (role == PLX_ROLE_NONE) {
        plx_reply_problem(r, 404, "not_found", "no such team");
        return PLX_ERR_NOT_FOUND;
    }
    if (role < need) {
        plx_reply_problem(r, 403, "forbidden", "your role in the team does not allow this");
        return PLX_ERR_FORBIDDEN;
    }
    return PLX_OK;
}

void projects_emit(plx_request_t *r, const char *kind, const char *verb,
                   json_t *row, json_t *patch)
{
    json_t *payload, *changed = patch ? json_array() : NULL;
    const char *key;
    json_t *v;
    char topic[64];

    json_object_foreach(patch, key, v)
        json_array_append_new(changed, json_string(key));
    payload = json_pack("{s:O?, s:s?, s:O, s:o*}",
                        "team_id", json_object_get(row, "team_id"),
                        "actor_id", plx_request_user_id(r), kind, row,
                        "changed", changed);
    if (!payload)
        return;
    snprintf(topic, sizeof topic, "projects.%s.%s", kind, verb);
    plx_event_emit(topic, payload);
    json_decref(payload);
}

/* ==== handlers every kind of row shares ================================= */

plx_status_t projects_read(plx_request_t *r, const projects_resource_t *k)
{
    const char *id = projects_path_id(r, k->name);
    plx_db_res_t *res;
    plx_status_t st;

    if (!id)
        return PLX_OK;
    const char *params[] = { id, plx_request_user_id(r) };
    if ((st = plx_db_query(r, k->read_sql, 2, params, &res)) != PLX_OK)
        return st;
    if (plx_db_rows(res) == 0)
        return plx_reply_problem(r, 404, "not_found", "no such %s", k->name);
    return projects_reply_row(r, 200, projects_row_json(res, 0, k->cols));
}

plx_status_t projects_update(plx_request_t *r, const projects_resource_t *k)
{
    const char *id = projects_path_id(r, k->name), *versions, *text;
    json_t *patch;
    plx_db_res_t *res;
    plx_status_t st;

    if (!id || !projects_if_match(r, true, &versions)
        || !(patch = projects_body(r, k->patch, false, &text)))
        return PLX_OK;
    const char *params[] = { id, plx_request_user_id(r), text, versions };
    if ((st = plx_db_query(r, k->update_sql, 4, params, &res)) != PLX_OK)
        return st;
    if (!projects_write_done(r, res, k->name))
        return PLX_OK;
    json_t *row = projects_row_json(res, 0, k->cols);
    projects_emit(r, k->name, "updated", row, patch);
    return projects_reply_row(r, 200, row);
}

plx_status_t projects_delete(plx_request_t *r, const projects_resource_t *k)
{
    const char *id = projects_path_id(r, k->name), *versions;
    plx_db_res_t *res;
    plx_status_t st;
    char action[64];

    if (!id || !projects_if_match(r, false, &versions))
        return PLX_OK;
    const char *params[] = { id, plx_request_user_id(r), versions };
    if ((st = plx_db_query(r, k->delete_sql, 3, params, &res)) != PLX_OK)
        return st;
    if (!projects_write_done(r, res, k->name))
        return PLX_OK;
    json_t *row = projects_row_json(res, 0, k->cols);
    snprintf(action, sizeof action, "projects.%s_deleted", k->name);
    plx_audit(r, action, k->name, id, NULL);
    projects_emit(r, k->name, "deleted", row, NULL);
    json_decref(row);
    return plx_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}
