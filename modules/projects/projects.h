/*
 * projects.h - what the projects module's files share (not installed)
 *
 * One file per resource (project_routes.c, task_routes.c,
 * comment_routes.c), each registering its own routes; common.c holds what
 * they all need: body validation, query parameters, cursors, ETags, row
 * rendering, the reading of guarded writes, and events. projects.c is the
 * entry point. The pure helpers (the first section of common.c) are
 * unit-tested without a core.
 *
 * Access control lives in the SQL. Every statement joins the row's team to
 * the caller's membership (PROJECTS_SQL_MEMBER), so a row of a team the
 * caller is not in is simply not found (404). Writes are one statement: a
 * "target" CTE finds the row with the caller's role and decides "allowed"
 * and any "problem", a second CTE writes only when allowed, problem-free
 * and at the expected version, and the final SELECT returns both, so one
 * round trip answers 404, 403, 409, 412 or the new row, and nothing can
 * change between the check and the write.
 */
#ifndef PROJECTS_PROJECTS_H
#define PROJECTS_PROJECTS_H

#include <plexus/module.h>

#include <stdbool.h>
#include <stddef.h>

#define PROJECTS_NAME_MAX      200     /* characters of a name or title */
#define PROJECTS_TEXT_MAX      10000   /* characters of a description or comment */
#define PROJECTS_LIMIT_DEFAULT 20
#define PROJECTS_LIMIT_MAX     100
#define PROJECTS_IF_MATCH_MAX  16      /* entity tags read from If-Match */

/* ---- SQL fragments shared by the route files ----------------------------- */

/* a date as text whatever the server's DateStyle */
#define PROJECTS_SQL_DATE(col) "to_char(" col ", 'YYYY-MM-DD')"

/* The caller's membership in the team of team_col: joining it is what
 * makes other teams' rows invisible. user is the $n holding the caller. */
#define PROJECTS_SQL_MEMBER(team_col, user)                                  \
    " JOIN plexus.team_members m ON m.team_id = " team_col                   \
    " AND m.user_id = " user "::uuid "
/* who may: the caller's role in that membership (alias m) */
#define PROJECTS_SQL_CAN_EDIT   "(m.role <> 'viewer')"            /* members up */
#define PROJECTS_SQL_CAN_MANAGE "(m.role IN ('admin', 'owner'))"
/* a write at one of the versions of If-Match ($n is an integer[] or NULL) */
#define PROJECTS_SQL_VERSION(alias, p) \
    "(" p "::integer[] IS NULL OR " alias ".version = ANY(" p "::integer[]))"

/* ---- registration: one function per route file --------------------------- */

/* A route table, ended by a NULL method. Every route needs a signed-in
 * caller (membership is checked per row) and gets the module as its
 * argument; summary and the tag "projects" go to the OpenAPI document. */
typedef struct projects_route {
    const char    *method;
    const char    *pattern;
    plx_handler_fn fn;
    const char    *summary;
} projects_route_t;

bool projects_routes_add(plx_module_t *m, const projects_route_t *routes);

bool projects_project_routes(plx_module_t *m);
bool projects_task_routes(plx_module_t *m);
bool projects_comment_routes(plx_module_t *m);

/* ---- pure helpers (common.c), no core needed ----------------------------- */

/* "YYYY-MM-DD", a real calendar day in years 0001..9999 */
bool projects_date_valid(const char *s);
/* s is one of the NULL-terminated values */
bool projects_one_of(const char *s, const char *const *values);
/* s for ILIKE: '%', '_' and '\' escaped, wrapped in '%'; out needs
 * 2 * strlen(s) + 3 bytes. Returns out. */
char *projects_like_pattern(const char *s, char *out, size_t outlen);

/* The kinds of sort keys a list's cursor carries (cursors are the page
 * API's, plx_page_read: the tag names the list and its order,
 * "tasks.due_date.desc", so a cursor of one order is refused by another). */
typedef enum projects_key {
    PROJECTS_KEY_TIME,   /* PLX_SQL_TIME_KEY of a timestamptz */
    PROJECTS_KEY_DATE    /* a date as projects_date_valid, or "infinity":
                          * carried as PLX_KEY_TEXT and checked here */
} projects_key_t;
/* a PROJECTS_KEY_DATE key: a date, or "infinity" for no date */
bool projects_date_key_valid(const char *key);

/* If-Match (RFC 9110, 13.1.1) as a PostgreSQL integer[] literal of the
 * versions it names ("{3}", "{3,4}"), for PROJECTS_SQL_VERSION. Returns
 * false for "*" (any version will do: no check). Weak tags never match
 * (If-Match compares strongly) and malformed ones are dropped, so a header
 * that names nothing usable gives "{}", which matches no row: 412. */
bool projects_if_match_parse(const char *header, char *out, size_t outlen);

/* ---- request helpers (common.c) ------------------------------------------ */

/* A body field: what a create or a patch may carry. */
typedef enum projects_kind {
    PROJECTS_F_NAME,     /* 1..PROJECTS_NAME_MAX characters, no controls */
    PROJECTS_F_TEXT,     /* 0..PROJECTS_TEXT_MAX characters */
    PROJECTS_F_BODY,     /* 1..PROJECTS_TEXT_MAX characters */
    PROJECTS_F_UUID,
    PROJECTS_F_DATE,     /* YYYY-MM-DD */
    PROJECTS_F_ENUM      /* one of values */
} projects_kind_t;

typedef struct projects_field {
    const char        *name;
    projects_kind_t    kind;
    bool               required;   /* on create */
    bool               nullable;   /* null allowed (clears the value) */
    const char *const *values;     /* PROJECTS_F_ENUM: NULL-terminated */
} projects_field_t;

/* The request's JSON body, checked against fields (ended by a NULL name):
 * an object, no unknown field, each value of its kind, every required
 * field when creating, at least one field when patching. *text is the
 * body again as text, for a $n::jsonb parameter. NULL when the body is
 * refused: the answer (400 naming the field, or the core's 400/413) is
 * sent. Both borrowed for the request. */
json_t *projects_body(plx_request_t *r, const projects_field_t *fields,
                      bool create, const char **text);

/* The {name} path parameter when it is a UUID; otherwise NULL and 404 sent,
 * as for any id that names nothing (what is "a project"). */
const char *projects_path_id(plx_request_t *r, const char *what);

/* ?name=: NULL when absent; false with 400 sent when present but not
 * valid for kind (values for PROJECTS_F_ENUM). */
bool projects_query(plx_request_t *r, const char *name, projects_kind_t kind,
                    const char *const *values, const char **out);

/* A page request: ?limit= (default 20, 1..100) and ?cursor=. */
typedef struct projects_page {
    projects_key_t kind;
    int         limit;
    char        limit_plus_one[12];   /* text for "LIMIT $n": one more row
                                       * tells whether a next page exists */
    const char *key;                  /* NULL on the first page */
    const char *id;
} projects_page_t;

/* false with 400 sent when limit or cursor is malformed */
bool projects_page_params(plx_request_t *r, const char *tag,
                          projects_key_t kind, projects_page_t *page);

/* How a row renders (at most 16 columns): each column named as its JSON
 * member; SQL NULL is null. */
typedef struct projects_col {
    const char *name;
    bool        integer;
} projects_col_t;

/* one row as a JSON object (new reference; NULL on no memory) */
json_t *projects_row_json(const plx_db_res_t *res, int row,
                          const projects_col_t *cols);
/* 200 {"items":[...],"next_cursor":...|null}: rows of res whose "id" is
 * not NULL (a LEFT JOIN LATERAL's empty marker is skipped), at most
 * page->limit of them; the next cursor from the last one's "sort_key". */
plx_status_t projects_reply_list(plx_request_t *r, const plx_db_res_t *res,
                                 const projects_page_t *page, const char *tag,
                                 const projects_col_t *cols);
/* status with row as the body and ETag "<version>"; steals row */
plx_status_t projects_reply_row(plx_request_t *r, int status, json_t *row);

/* The If-Match of a write as a $n parameter for PROJECTS_SQL_VERSION
 * (NULL: no check). required: an absent header is answered 428 and false
 * is returned. */
bool projects_if_match(plx_request_t *r, bool required, const char **versions);

/* Read the result of a guarded write (see the top of this file): columns
 * "allowed", optionally "problem", then the row with "id" NULL when
 * nothing was written. true: row 0 holds the written row. false: the
 * answer is sent: 404 (no row: not found, or not the caller's team), 403
 * (not allowed), the problem's status, or 412 (a stale If-Match). */
bool projects_write_done(plx_request_t *r, const plx_db_res_t *res,
                         const char *what);

/* PLX_OK when the caller's role in team_id (a UUID) is at least need;
 * otherwise the answer is sent (PLX_ERR_NOT_FOUND: 404, not a member or no
 * such team; PLX_ERR_FORBIDDEN: 403), or, for PLX_ERR_DB, left to the
 * core. A handler returns what it gets. */
plx_status_t projects_team_access(plx_request_t *r, const char *team_id,
                                  plx_role_t need);

/* Emit "projects.<kind>.<verb>" with {"team_id", "actor_id", <kind>: row}
 * and, for an update, "changed": the names of the fields in patch (NULL
 * otherwise). Borrowed. Subscribers run here, on this thread, after the
 * write has committed. */
void projects_emit(plx_request_t *r, const char *kind, const char *verb,
                   json_t *row, json_t *patch);

/* ---- handlers every kind of row shares ---------------------------------- */

/* What the shared handlers know of one kind of row. Each statement checks
 * the caller's membership and role itself (see the SQL files' comments). */
typedef struct projects_resource {
    const char             *name;        /* "task": in events, errors, audit */
    const projects_col_t   *cols;        /* the row as JSON */
    const projects_field_t *patch;       /* the fields PATCH accepts */
    const char             *read_sql;    /* $1 id, $2 caller */
    const char             *update_sql;  /* $1 id, $2 caller, $3 patch, $4 versions */
    const char             *delete_sql;  /* $1 id, $2 caller, $3 versions */
} projects_resource_t;

/* GET /<kind>s/{id}: 200 with its ETag, or 404 */
plx_status_t projects_read(plx_request_t *r, const projects_resource_t *k);
/* PATCH /<kind>s/{id} with If-Match: 200, or 400/403/404/409/412/428 */
plx_status_t projects_update(plx_request_t *r, const projects_resource_t *k);
/* DELETE /<kind>s/{id}, If-Match optional: 204, audited, "deleted" event */
plx_status_t projects_delete(plx_request_t *r, const projects_resource_t *k);

#endif
