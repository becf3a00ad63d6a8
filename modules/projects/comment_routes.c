/*
 * comment_routes.c - comments on tasks: /api/v1/tasks/{id}/comments and
 * /api/v1/comments/{id}
 *
 * Who may: any member of the team reads; members and up comment; the
 * author edits their own comment (while still a member, not a viewer);
 * the author or an admin or owner deletes it. Nobody edits another's
 * words, not even an admin: a comment says what its author wrote. The
 * comments of an archived project are read-only.
 */
#include "projects.h"

#include <stdio.h>

#define COMMENT_COLS(c)                                                      \
    c ".id, " c ".team_id, " c ".task_id, " c ".author_id, " c ".body, "     \
    PLX_SQL_RFC3339(c ".created_at") " AS created_at, "                    \
    PLX_SQL_RFC3339(c ".updated_at") " AS updated_at, " c ".version"

static const projects_col_t comment_cols[] = {
    { "id" }, { "team_id" }, { "task_id" }, { "author_id" }, { "body" },
    { "created_at" }, { "updated_at" }, { "version", true }, { NULL }
};

static const projects_field_t comment_fields[] = {
    { "body", PROJECTS_F_BODY, .required = true },
    { NULL }
};

#define ARCHIVED \
    "CASE WHEN p.status = 'archived' THEN 'project_archived' END AS problem"

/* $1 task, $2 caller, $3 $4 the cursor's id and key, $5 limit + 1 */
static const char list_sql[] =
    "SELECT x.* FROM projects.tasks t" PROJECTS_SQL_MEMBER("t.team_id", "$2")
    " LEFT JOIN LATERAL (SELECT " COMMENT_COLS("c") ", "
    PLX_SQL_TIME_KEY("c.created_at") " AS sort_key"
    "  FROM projects.comments c WHERE c.task_id = t.id"
    "  AND ($3::uuid IS NULL OR (c.created_at, c.id) > ("
    "$4::timestamptz" ", $3::uuid))"
    "  ORDER BY c.created_at, c.id LIMIT $5::int) x ON true"
    " WHERE t.id = $1::uuid";

/* $1 task, $2 caller, $3 body */
static const char create_sql[] =
    "WITH target AS ("
    " SELECT t.id, t.team_id, " PROJECTS_SQL_CAN_EDIT " AS allowed, " ARCHIVED
    " FROM projects.tasks t JOIN projects.projects p ON p.id = t.project_id"
    PROJECTS_SQL_MEMBER("t.team_id", "$2") " WHERE t.id = $1::uuid),"
    " done AS ("
    " INSERT INTO projects.comments (team_id, task_id, author_id, body)"
    " SELECT target.team_id, target.id, $2::uuid, $3::jsonb->>'body'"
    " FROM target WHERE target.allowed AND target.problem IS NULL RETURNING *)"
    " SELECT target.allowed, target.problem, " COMMENT_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* the target of a write on comment $1 by caller $2 */
#define COMMENT_TARGET(allowed)                                              \
    "WITH target AS ("                                                       \
    " SELECT c.id, " allowed " AS allowed, " ARCHIVED                        \
    " FROM projects.comments c JOIN projects.tasks t ON t.id = c.task_id"    \
    " JOIN projects.projects p ON p.id = t.project_id"                       \
    PROJECTS_SQL_MEMBER("c.team_id", "$2") " WHERE c.id = $1::uuid)"

#define MINE "(c.author_id = $2::uuid AND " PROJECTS_SQL_CAN_EDIT ")"

/* $1 comment, $2 caller, $3 patch, $4 If-Match versions */
static const char update_sql[] =
    COMMENT_TARGET(MINE) ","
    " done AS ("
    " UPDATE projects.comments c SET body = $3::jsonb->>'body',"
    "  updated_at = now(), version = c.version + 1"
    " FROM target WHERE c.id = target.id AND target.allowed"
    " AND target.problem IS NULL AND " PROJECTS_SQL_VERSION("c", "$4")
    " RETURNING c.*)"
    " SELECT target.allowed, target.problem, " COMMENT_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* $1 comment, $2 caller, $3 If-Match versions or NULL */
static const char delete_sql[] =
    COMMENT_TARGET("(" MINE " OR " PROJECTS_SQL_CAN_MANAGE ")") ","
    " done AS ("
    " DELETE FROM projects.comments c USING target WHERE c.id = target.id"
    " AND target.allowed AND target.problem IS NULL"
    " AND " PROJECTS_SQL_VERSION("c", "$3") " RETURNING c.*)"
    " SELECT target.allowed, target.problem, " COMMENT_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* ---- handlers ------------------------------------------------------------ */

static plx_status_t comment_list(plx_request_t *r, void *arg)
{
    const char *task = projects_path_id(r, "task");
    projects_page_t page;
    plx_db_res_t *res;
    plx_status_t st;

    if (!task || !projects_page_params(r, "comments", PROJECTS_KEY_TIME, &page))
        return PLX_OK;
    const char *params[] = { task, plx_request_user_id(r), page.id, page.key,
                             page.limit_plus_one };
    if ((st = plx_db_query(r, list_sql, 5, params, &res)) != PLX_OK)
        return st;
    if (plx_db_rows(res) == 0)
        return plx_reply_problem(r, 404, "not_found", "no such task");
    return projects_reply_list(r, res, &page, "comments", comment_cols);
}

static plx_status_t comment_create(plx_request_t *r, void *arg)
{
    const char *task = projects_path_id(r, "task"), *body;
    plx_db_res_t *res;
    plx_status_t st;

    if (!task || !projects_body(r, comment_fields, true, &body))
        return PLX_OK;
    const char *params[] = { task, plx_request_user_id(r), body };
    if ((st = plx_db_query(r, create_sql, 3, params, &res)) != PLX_OK)
        return st;
    if (!projects_write_done(r, res, "task"))
        return PLX_OK;
    json_t *row = projects_row_json(res, 0, comment_cols);
    projects_emit(r, "comment", "created", row, NULL);
    return projects_reply_row(r, 201, row);
}

static const projects_resource_t comment_resource = {
    "comment", comment_cols, comment_fields, NULL, update_sql, delete_sql,
};

static plx_status_t comment_update(plx_request_t *r, void *arg)
{
    return projects_update(r, &comment_resource);
}

static plx_status_t comment_delete(plx_request_t *r, void *arg)
{
    return projects_delete(r, &comment_resource);
}

/* ---- registration -------------------------------------------------------- */

static const projects_route_t routes[] = {
    { "GET", "/api/v1/tasks/{id}/comments", comment_list,
      "List a task's comments, oldest first (cursor pages)" },
    { "POST", "/api/v1/tasks/{id}/comments", comment_create, "Comment on a task" },
    { "PATCH", "/api/v1/comments/{id}", comment_update,
      "Edit your own comment (If-Match required)" },
    { "DELETE", "/api/v1/comments/{id}", comment_delete,
      "Delete your own comment, or any as a team admin or owner" },
    { NULL }
};

bool projects_comment_routes(plx_module_t *m)
{
    return projects_routes_add(m, routes);
}
