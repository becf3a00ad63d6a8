/*
 * projects.c - the projects module: projects, tasks and comments inside a
 * team, the reference for how a CRUD module is written in Plexus
 *
 * This file is the table of contents: the descriptor, the migrations and
 * one registration call per resource. The handlers live in
 * project_routes.c, task_routes.c and comment_routes.c, what they share in
 * common.c, the schema and its cascades in sql/0001_projects.sql, and what
 * a client sees in README.md. The module has no settings, no threads and
 * no state: everything is in PostgreSQL, so any number of instances serve
 * the same data.
 */
#include "projects.h"

static plx_status_t projects_init(plx_module_t *m)
{
    if (plx_migrations_add(m, "sql") != PLX_OK
        || !projects_project_routes(m)
        || !projects_task_routes(m)
        || !projects_comment_routes(m))
        return PLX_ERR_INTERNAL;
    return PLX_OK;
}

PLX_MODULE(.name = "projects", .version = "1.0.0",
           .description = "projects, tasks and comments within a team",
           .init = projects_init);
