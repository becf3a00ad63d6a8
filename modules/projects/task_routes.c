/*
 * task_routes.c - tasks: /api/v1/projects/{id}/tasks and /api/v1/tasks/{id}
 *
 * Who may: any member of the team reads; members and up create, edit, move
 * between statuses and (un)assign; admins and owners delete. The tasks of
 * an archived project are read-only (409 project_archived).
 *
 * The assignee must be a member of the team when assigned, checked in the
 * same statement against plexus.team_members. An assignment holds only
 * under the membership it was made in (TASK_ASSIGNEE): when the assignee
 * leaves the team the task reads as unassigned at once, with no trigger on
 * the core's table, and rejoining does not bring the assignment back.
 */
#include "projects.h"

#include <stdio.h>
#include <string.h>

/* the assignee as it counts now: an assignment holds only under the
 * membership it was made in (see sql/0001_projects.sql) */
#define TASK_ASSIGNEE(t)                                                     \
    "(SELECT am.user_id FROM plexus.team_members am"                         \
    " WHERE am.team_id = " t ".team_id AND am.user_id = " t ".assignee_id"   \
    " AND am.created_at <= " t ".assigned_at)"

#define TASK_COLS(t)                                                         \
    t ".id, " t ".team_id, " t ".project_id, " t ".title, "                  \
    t ".description, " t ".status, " TASK_ASSIGNEE(t) " AS assignee_id, "    \
    PROJECTS_SQL_DATE(t ".due_date") " AS due_date, " t ".created_by, "      \
    PLX_SQL_RFC3339(t ".created_at") " AS created_at, "                    \
    PLX_SQL_RFC3339(t ".updated_at") " AS updated_at, " t ".version"

/* $3 holds the body: the assignee it names, if any, is in team */
#define TASK_ASSIGNABLE(team)                                                \
    "($3::jsonb->>'assignee_id' IS NULL OR EXISTS (SELECT 1 FROM "           \
    "plexus.team_members a WHERE a.team_id = " team                          \
    " AND a.user_id = ($3::jsonb->>'assignee_id')::uuid))"

static const projects_col_t task_cols[] = {
    { "id" }, { "team_id" }, { "project_id" }, { "title" }, { "description" },
    { "status" }, { "assignee_id" }, { "due_date" }, { "created_by" },
    { "created_at" }, { "updated_at" }, { "version", true }, { NULL }
};

static const char *const task_statuses[] = {
    "todo", "in_progress", "blocked", "done", NULL
};

static const projects_field_t create_fields[] = {
    { "title", PROJECTS_F_NAME, .required = true },
    { "description", PROJECTS_F_TEXT },
    { "status", PROJECTS_F_ENUM, .values = task_statuses },
    { "assignee_id", PROJECTS_F_UUID, .nullable = true },
    { "due_date", PROJECTS_F_DATE, .nullable = true },
    { NULL }
};

/* the same fields: a patch sets what it names, null clears */
#define patch_fields create_fields

/* $1 project, $2 caller, $3 body */
static const char create_sql[] =
    "WITH target AS ("
    " SELECT p.id, p.team_id, " PROJECTS_SQL_CAN_EDIT " AS allowed,"
    "  CASE WHEN p.status = 'archived' THEN 'project_archived'"
    "       WHEN NOT " TASK_ASSIGNABLE("p.team_id") " THEN 'assignee_not_member'"
    "  END AS problem"
    " FROM projects.projects p" PROJECTS_SQL_MEMBER("p.team_id", "$2")
    " WHERE p.id = $1::uuid),"
    " done AS ("
    " INSERT INTO projects.tasks (team_id, project_id, title, description,"
    "  status, assignee_id, assigned_at, due_date, created_by)"
    " SELECT target.team_id, target.id, $3::jsonb->>'title',"
    "  COALESCE($3::jsonb->>'description', ''),"
    "  COALESCE($3::jsonb->>'status', 'todo'), ($3::jsonb->>'assignee_id')::uuid,"
    "  now(), ($3::jsonb->>'due_date')::date, $2::uuid"
    " FROM target WHERE target.allowed AND target.problem IS NULL RETURNING *)"
    " SELECT target.allowed, target.problem, " TASK_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* $1 task, $2 caller */
static const char read_sql[] =
    "SELECT " TASK_COLS("t") " FROM projects.tasks t"
    PROJECTS_SQL_MEMBER("t.team_id", "$2") "WHERE t.id = $1::uuid";

/* the target of a write on task $1 by caller $2: its project's status
 * decides "problem" together with what the write adds */
#define TASK_TARGET(allowed, problem)                                        \
    "WITH target AS ("                                                       \
    " SELECT t.id, " allowed " AS allowed,"                                  \
    "  CASE WHEN p.status = 'archived' THEN 'project_archived' " problem     \
    "  END AS problem"                                                       \
    " FROM projects.tasks t JOIN projects.projects p ON p.id = t.project_id" \
    PROJECTS_SQL_MEMBER("t.team_id", "$2") " WHERE t.id = $1::uuid)"

/* a column set from the patch only when the patch names it */
#define TASK_SET(col, cast)                                                  \
    col " = CASE WHEN $3::jsonb ? '" col "' THEN ($3::jsonb->>'" col "')"    \
    cast " ELSE t." col " END, "

/* $1 task, $2 caller, $3 patch, $4 If-Match versions */
static const char update_sql[] =
    TASK_TARGET(PROJECTS_SQL_CAN_EDIT, "WHEN NOT " TASK_ASSIGNABLE("t.team_id")
                " THEN 'assignee_not_member'") ","
    " done AS ("
    " UPDATE projects.tasks t SET "
    TASK_SET("title", "") TASK_SET("description", "") TASK_SET("status", "")
    TASK_SET("assignee_id", "::uuid") TASK_SET("due_date", "::date")
    "  assigned_at = CASE WHEN $3::jsonb ? 'assignee_id' THEN now()"
    "                ELSE t.assigned_at END,"
    "  updated_at = now(), version = t.version + 1"
    " FROM target WHERE t.id = target.id AND target.allowed"
    " AND target.problem IS NULL AND " PROJECTS_SQL_VERSION("t", "$4")
    " RETURNING t.*)"
    " SELECT target.allowed, target.problem, " TASK_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* $1 task, $2 caller, $3 If-Match versions or NULL */
static const char delete_sql[] =
    TASK_TARGET(PROJECTS_SQL_CAN_MANAGE, "") ","
    " done AS ("
    " DELETE FROM projects.tasks t USING target WHERE t.id = target.id"
    " AND target.allowed AND target.problem IS NULL"
    " AND " PROJECTS_SQL_VERSION("t", "$3") " RETURNING t.*)"
    " SELECT target.allowed, target.problem, " TASK_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* ---- the list: one statement per order ----------------------------------- */

typedef struct task_order {
    const char    *sort;      /* ?sort= */
    projects_key_t kind;
    const char    *key;       /* SQL: the sort key (an index's second column) */
    const char    *key_out;   /* SQL: the key as a cursor carries it */
    const char    *key_in;    /* SQL: a cursor's key ($9) back */
} task_order_t;

static const task_order_t orders[] = {
    { "created_at", PROJECTS_KEY_TIME, "t.created_at",
      PLX_SQL_TIME_KEY("t.created_at"), "$9::timestamptz" },
    { "updated_at", PROJECTS_KEY_TIME, "t.updated_at",
      PLX_SQL_TIME_KEY("t.updated_at"), "$9::timestamptz" },
    /* no due date sorts last ascending, first descending */
    { "due_date", PROJECTS_KEY_DATE, "COALESCE(t.due_date, 'infinity'::date)",
      "COALESCE(" PROJECTS_SQL_DATE("t.due_date") ", 'infinity')", "$9::date" },
};

/* $1 project, $2 caller, $3 status, $4 assignee, $5 unassigned only,
 * $6 due before, $7 due after, $8 $9 the cursor's id and key, $10 limit + 1.
 * The project row with the caller's membership answers "not found"; the
 * LATERAL join then reads the page (one row with NULLs when it is empty). */
#define LIST_SQL                                                             \
    "SELECT x.* FROM projects.projects p"                                    \
    PROJECTS_SQL_MEMBER("p.team_id", "$2")                                   \
    " LEFT JOIN LATERAL (SELECT " TASK_COLS("t") ", %s AS sort_key"          \
    "  FROM projects.tasks t"                                                \
    "  WHERE t.project_id = p.id"                                            \
    "  AND ($3::text IS NULL OR t.status = $3::text)"                        \
    "  AND ($4::uuid IS NULL OR (t.assignee_id = $4::uuid"                   \
    "       AND " TASK_ASSIGNEE("t") " IS NOT NULL))"                        \
    "  AND (NOT $5::boolean OR " TASK_ASSIGNEE("t") " IS NULL)"              \
    "  AND ($6::date IS NULL OR t.due_date < $6::date)"                      \
    "  AND ($7::date IS NULL OR t.due_date > $7::date)"                      \
    "  AND ($8::uuid IS NULL OR (%s, t.id) %s (%s, $8::uuid))"               \
    "  ORDER BY %s %s, t.id %s LIMIT $10::int) x ON true"                    \
    " WHERE p.id = $1::uuid"

static const task_order_t *order_find(const char *sort)
{
    for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++)
        if (strcmp(orders[i].sort, sort) == 0)
            return &orders[i];
    return NULL;
}

/* the statement for one order, from constant fragments only */
static const char *list_statement(plx_request_t *r, const task_order_t *o,
                                  bool desc)
{
    size_t len = sizeof LIST_SQL + 4 * strlen(o->key) + strlen(o->key_out)
                 + strlen(o->key_in) + 16;
    char *sql = plx_palloc(r, len);
    const char *dir = desc ? "DESC" : "ASC";

    if (sql)
        snprintf(sql, len, LIST_SQL, o->key_out, o->key, desc ? "<" : ">",
                 o->key_in, o->key, dir, dir);
    return sql;
}

/* ?assignee= is a UUID or "none" */
static bool assignee_param(plx_request_t *r, const char **uuid, const char **none)
{
    const char *v = plx_request_query(r, "assignee");

    *uuid = NULL;
    *none = "false";
    if (v && strcmp(v, "none") == 0) {
        *none = "true";
        return true;
    }
    if (!v || plx_uuid_valid(v)) {
        *uuid = v;
        return true;
    }
    plx_reply_problem(r, 400, "invalid_query",
                      "query parameter \"assignee\" must be a UUID or \"none\"");
    return false;
}

static plx_status_t task_list(plx_request_t *r, void *arg)
{
    static const char *const sorts[] = { "created_at", "updated_at", "due_date", NULL };
    static const char *const dirs[] = { "asc", "desc", NULL };
    const char *id = projects_path_id(r, "project");
    const char *status, *assignee, *none, *before, *after, *sort, *order, *sql;
    projects_page_t page;
    plx_db_res_t *res;
    plx_status_t st;
    char tag[48];

    if (!id || !projects_query(r, "status", PROJECTS_F_ENUM, task_statuses, &status)
        || !assignee_param(r, &assignee, &none)
        || !projects_query(r, "due_before", PROJECTS_F_DATE, NULL, &before)
        || !projects_query(r, "due_after", PROJECTS_F_DATE, NULL, &after)
        || !projects_query(r, "sort", PROJECTS_F_ENUM, sorts, &sort)
        || !projects_query(r, "order", PROJECTS_F_ENUM, dirs, &order))
        return PLX_OK;
    const task_order_t *o = order_find(sort ? sort : "created_at");
    bool desc = order && strcmp(order, "desc") == 0;
    snprintf(tag, sizeof tag, "tasks.%s.%s", o->sort, desc ? "desc" : "asc");
    if (!projects_page_params(r, tag, o->kind, &page))
        return PLX_OK;
    if (!(sql = list_statement(r, o, desc)))
        return PLX_ERR_NOMEM;
    const char *params[] = { id, plx_request_user_id(r), status, assignee, none,
                             before, after, page.id, page.key, page.limit_plus_one };
    if ((st = plx_db_query(r, sql, 10, params, &res)) != PLX_OK)
        return st;
    if (plx_db_rows(res) == 0)
        return plx_reply_problem(r, 404, "not_found", "no such project");
    return projects_reply_list(r, res, &page, tag, task_cols);
}

/* ---- the other handlers -------------------------------------------------- */

static plx_status_t task_create(plx_request_t *r, void *arg)
{
    const char *project = projects_path_id(r, "project"), *body;
    plx_db_res_t *res;
    plx_status_t st;
    char location[64];

    if (!project || !projects_body(r, create_fields, true, &body))
        return PLX_OK;
    const char *params[] = { project, plx_request_user_id(r), body };
    if ((st = plx_db_query(r, create_sql, 3, params, &res)) != PLX_OK)
        return st;
    if (!projects_write_done(r, res, "project"))
        return PLX_OK;
    json_t *row = projects_row_json(res, 0, task_cols);
    snprintf(location, sizeof location, "/api/v1/tasks/%s",
             plx_db_value(res, 0, plx_db_col(res, "id")));
    plx_response_header(r, "Location", location);
    projects_emit(r, "task", "created", row, NULL);
    return projects_reply_row(r, 201, row);
}

static const projects_resource_t task_resource = {
    "task", task_cols, patch_fields, read_sql, update_sql, delete_sql,
};

static plx_status_t task_read(plx_request_t *r, void *arg)
{
    return projects_read(r, &task_resource);
}

static plx_status_t task_update(plx_request_t *r, void *arg)
{
    return projects_update(r, &task_resource);
}

static plx_status_t task_delete(plx_request_t *r, void *arg)
{
    return projects_delete(r, &task_resource);
}

/* ---- registration -------------------------------------------------------- */

static const projects_route_t routes[] = {
    { "GET", "/api/v1/projects/{id}/tasks", task_list,
      "List a project's tasks (status, assignee, due_before, due_after, sort,"
      " order; cursor pages)" },
    { "POST", "/api/v1/projects/{id}/tasks", task_create, "Create a task in a project" },
    { "GET", "/api/v1/tasks/{id}", task_read, "Read a task (ETag)" },
    { "PATCH", "/api/v1/tasks/{id}", task_update,
      "Update, move, assign or unassign a task (If-Match required)" },
    { "DELETE", "/api/v1/tasks/{id}", task_delete, "Delete a task" },
    { NULL }
};

bool projects_task_routes(plx_module_t *m)
{
    return projects_routes_add(m, routes);
}
