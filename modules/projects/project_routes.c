/*
 * project_routes.c - /api/v1/projects: create, list, read, update, archive
 *
 * Who may: any member of the project's team reads; members and up create
 * and edit; admins and owners archive (DELETE) and restore (PATCH status
 * "active"). Projects are never deleted through the API: DELETE archives,
 * which makes the project's tasks and comments read-only (task_routes.c).
 */
#include "projects.h"

#include <stdio.h>
#include <string.h>

#define PROJECT_COLS(p)                                                      \
    p ".id, " p ".team_id, " p ".name, " p ".description, " p ".status, "    \
    p ".created_by, " PLX_SQL_RFC3339(p ".created_at") " AS created_at, "  \
    PLX_SQL_RFC3339(p ".updated_at") " AS updated_at, " p ".version"

static const projects_col_t project_cols[] = {
    { "id" }, { "team_id" }, { "name" }, { "description" }, { "status" },
    { "created_by" }, { "created_at" }, { "updated_at" }, { "version", true },
    { NULL }
};

static const char *const project_statuses[] = { "active", "archived", NULL };
/* a PATCH restores; archiving is DELETE, so that it has one event */
static const char *const patch_statuses[] = { "active", NULL };

static const projects_field_t create_fields[] = {
    { "team_id", PROJECTS_F_UUID, .required = true },
    { "name", PROJECTS_F_NAME, .required = true },
    { "description", PROJECTS_F_TEXT },
    { NULL }
};

static const projects_field_t patch_fields[] = {
    { "name", PROJECTS_F_NAME },
    { "description", PROJECTS_F_TEXT },
    { "status", PROJECTS_F_ENUM, .values = patch_statuses },
    { NULL }
};

/* $1 body, $2 caller. The team comes from the body, so the "target" is the
 * caller's membership in it: no row when not a member (404). */
static const char create_sql[] =
    "WITH target AS ("
    " SELECT " PROJECTS_SQL_CAN_EDIT " AS allowed FROM plexus.team_members m"
    " WHERE m.team_id = ($1::jsonb->>'team_id')::uuid AND m.user_id = $2::uuid),"
    " done AS ("
    " INSERT INTO projects.projects (team_id, name, description, created_by)"
    " SELECT ($1::jsonb->>'team_id')::uuid, $1::jsonb->>'name',"
    "        COALESCE($1::jsonb->>'description', ''), $2::uuid"
    " FROM target WHERE target.allowed RETURNING *)"
    " SELECT target.allowed, " PROJECT_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* $1 caller, $2 team or NULL, $3 status or NULL, $4 ILIKE pattern or NULL,
 * $5 $6 the cursor's key and id or NULL, $7 limit + 1 */
static const char list_sql[] =
    "SELECT " PROJECT_COLS("p") ", " PLX_SQL_TIME_KEY("p.created_at") " AS sort_key"
    " FROM projects.projects p"
    " WHERE p.team_id IN (SELECT team_id FROM plexus.team_members"
    "                     WHERE user_id = $1::uuid)"
    " AND ($2::uuid IS NULL OR p.team_id = $2::uuid)"
    " AND ($3::text IS NULL OR p.status = $3::text)"
    " AND ($4::text IS NULL OR p.name ILIKE $4::text)"
    " AND ($5::timestamptz IS NULL OR (p.created_at, p.id) > ("
    "$5::timestamptz" ", $6::uuid))"
    " ORDER BY p.created_at, p.id LIMIT $7::int";

/* $1 project, $2 caller */
static const char read_sql[] =
    "SELECT " PROJECT_COLS("p") " FROM projects.projects p"
    PROJECTS_SQL_MEMBER("p.team_id", "$2") "WHERE p.id = $1::uuid";

/* $1 project, $2 caller, $3 patch, $4 If-Match versions. A patch with a
 * status restores, which takes an admin; the rest is editing. */
static const char update_sql[] =
    "WITH target AS ("
    " SELECT p.id, CASE WHEN $3::jsonb ? 'status' THEN " PROJECTS_SQL_CAN_MANAGE
    "                   ELSE " PROJECTS_SQL_CAN_EDIT " END AS allowed"
    " FROM projects.projects p" PROJECTS_SQL_MEMBER("p.team_id", "$2")
    " WHERE p.id = $1::uuid),"
    " done AS ("
    " UPDATE projects.projects p SET"
    "  name = COALESCE($3::jsonb->>'name', p.name),"
    "  description = COALESCE($3::jsonb->>'description', p.description),"
    "  status = COALESCE($3::jsonb->>'status', p.status),"
    "  updated_at = now(), version = p.version + 1"
    " FROM target WHERE p.id = target.id AND target.allowed"
    " AND " PROJECTS_SQL_VERSION("p", "$4") " RETURNING p.*)"
    " SELECT target.allowed, " PROJECT_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* $1 project, $2 caller, $3 If-Match versions or NULL. Archiving an
 * archived project changes nothing (same version) and says so with
 * "was_active" false, so a retried DELETE is harmless. */
static const char archive_sql[] =
    "WITH target AS ("
    " SELECT p.id, p.status = 'active' AS was_active, "
    PROJECTS_SQL_CAN_MANAGE " AS allowed"
    " FROM projects.projects p" PROJECTS_SQL_MEMBER("p.team_id", "$2")
    " WHERE p.id = $1::uuid),"
    " done AS ("
    " UPDATE projects.projects p SET status = 'archived',"
    "  updated_at = CASE WHEN target.was_active THEN now() ELSE p.updated_at END,"
    "  version = p.version + target.was_active::int"
    " FROM target WHERE p.id = target.id AND target.allowed"
    " AND " PROJECTS_SQL_VERSION("p", "$3") " RETURNING p.*)"
    " SELECT target.allowed, target.was_active, " PROJECT_COLS("done")
    " FROM target LEFT JOIN done ON true";

/* ---- handlers ------------------------------------------------------------ */

static plx_status_t project_create(plx_request_t *r, void *arg)
{
    const char *body;
    plx_db_res_t *res;
    plx_status_t st;

    if (!projects_body(r, create_fields, true, &body))
        return PLX_OK;
    const char *params[] = { body, plx_request_user_id(r) };
    if ((st = plx_db_query(r, create_sql, 2, params, &res)) != PLX_OK)
        return st;
    if (!projects_write_done(r, res, "team"))
        return PLX_OK;
    json_t *row = projects_row_json(res, 0, project_cols);
    char location[80];
    snprintf(location, sizeof location, "/api/v1/projects/%s",
             plx_db_value(res, 0, plx_db_col(res, "id")));
    plx_response_header(r, "Location", location);
    projects_emit(r, "project", "created", row, NULL);
    return projects_reply_row(r, 201, row);
}

static plx_status_t project_list(plx_request_t *r, void *arg)
{
    const char *team, *status, *q, *pattern = NULL;
    projects_page_t page;
    plx_db_res_t *res;
    plx_status_t st;

    if (!projects_query(r, "team_id", PROJECTS_F_UUID, NULL, &team)
        || !projects_query(r, "status", PROJECTS_F_ENUM, project_statuses, &status)
        || !projects_query(r, "q", PROJECTS_F_NAME, NULL, &q)
        || !projects_page_params(r, "projects", PROJECTS_KEY_TIME, &page))
        return PLX_OK;
    /* a team named but not the caller's is not found, not an empty list */
    if (team && (st = projects_team_access(r, team, PLX_ROLE_VIEWER)) != PLX_OK)
        return st;
    if (q) {
        size_t len = 2 * strlen(q) + 3;
        char *buf = plx_palloc(r, len);
        if (!buf || !(pattern = projects_like_pattern(q, buf, len)))
            return PLX_ERR_NOMEM;
    }
    const char *params[] = { plx_request_user_id(r), team, status, pattern,
                             page.key, page.id, page.limit_plus_one };
    if ((st = plx_db_query(r, list_sql, 7, params, &res)) != PLX_OK)
        return st;
    return projects_reply_list(r, res, &page, "projects", project_cols);
}

static const projects_resource_t project_resource = {
    "project", project_cols, patch_fields, read_sql, update_sql, NULL,
};

static plx_status_t project_read(plx_request_t *r, void *arg)
{
    return projects_read(r, &project_resource);
}

static plx_status_t project_update(plx_request_t *r, void *arg)
{
    return projects_update(r, &project_resource);
}

static plx_status_t project_archive(plx_request_t *r, void *arg)
{
    const char *id = projects_path_id(r, "project"), *versions;
    plx_db_res_t *res;
    plx_status_t st;

    if (!id || !projects_if_match(r, false, &versions))
        return PLX_OK;
    const char *params[] = { id, plx_request_user_id(r), versions };
    if ((st = plx_db_query(r, archive_sql, 3, params, &res)) != PLX_OK)
        return st;
    if (!projects_write_done(r, res, "project"))
        return PLX_OK;
    json_t *row = projects_row_json(res, 0, project_cols);
    const char *was_active = plx_db_value(res, 0, plx_db_col(res, "was_active"));
    if (row && was_active && strcmp(was_active, "t") == 0) {
        plx_audit(r, "projects.project_archived", "project", id, NULL);
        projects_emit(r, "project", "archived", row, NULL);
    }
    return projects_reply_row(r, 200, row);
}

/* ---- registration -------------------------------------------------------- */

static const projects_route_t routes[] = {
    { "POST", "/api/v1/projects", project_create,
      "Create a project in one of your teams" },
    { "GET", "/api/v1/projects", project_list,
      "List the projects of your teams (team_id, status, q; cursor pages)" },
    { "GET", "/api/v1/projects/{id}", project_read, "Read a project (ETag)" },
    { "PATCH", "/api/v1/projects/{id}", project_update,
      "Rename, describe or restore a project (If-Match required)" },
    { "DELETE", "/api/v1/projects/{id}", project_archive,
      "Archive a project: it stays readable, its tasks become read-only" },
    { NULL }
};

bool projects_project_routes(plx_module_t *m)
{
    return projects_routes_add(m, routes);
}
