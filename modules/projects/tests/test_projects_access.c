/*
 * test_projects_access.c - who may do what: each role (owner, admin,
 * member, viewer, and someone outside the team) against each action of
 * the projects module; another team's things answering 404 exactly like
 * things that do not exist; anonymous callers answered 401; and an
 * assignee who leaves the team no longer counting as assigned
 *
 * Each cell of the matrix runs on fresh things made by the owner, and a
 * fingerprint of the team's rows taken before and after proves that a
 * refused write changed nothing and an allowed one changed something.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "pgtest.h"
#include "projects_client.h"

static pjt_env_t env;

enum { OWNER, ADMIN, MEMBER, VIEWER, OUTSIDER, NCREW };
static const char *const crew_name[NCREW] = {
    "owner", "admin", "member", "viewer", "outsider"
};
static plxt_user_t crew[NCREW];
static char team[37];          /* the crew's team; OUTSIDER is not in it */
static char other_team[37];    /* OUTSIDER's own team */

/* a path or body from a format (harness.h) */
#define P plxt_fmt

/* a route pattern of the tables below with its "%s", if any, replaced by id */
static const char *route_path(const char *pattern, const char *id)
{
    const char *at = strstr(pattern, "%s");

    if (!at)
        return pattern;
    return P("%.*s%s%s", (int)(at - pattern), pattern, id, at + 2);
}

static int group_setup(void **state)
{
    if (pjt_start(&env) != 0)
        return -1;
    for (int i = 0; i < NCREW; i++)
        plxt_user_new(env.srv, env.db, &crew[i]);
    pjt_team_new(&env, &crew[OWNER], team);
    pjt_member_add(&env, team, &crew[OWNER], &crew[ADMIN], "admin");
    pjt_member_add(&env, team, &crew[OWNER], &crew[MEMBER], "member");
    pjt_member_add(&env, team, &crew[OWNER], &crew[VIEWER], "viewer");
    pjt_team_new(&env, &crew[OUTSIDER], other_team);
    return 0;
}

static int group_teardown(void **state)
{
    return pjt_stop(&env);
}

/* ---- the things an action works on --------------------------------------- */

typedef struct fixture {
    char project[37];
    char task[37];
    char owner_comment[37];    /* written by the owner */
    char member_comment[37];   /* written by the member */
    char own_comment[37];      /* written by the one who acts (see below) */
} fixture_t;

/* A comment by who on f->task, as if written while they could: viewers
 * and outsiders cannot write one now, so it goes in through SQL, the way
 * it would remain after a demotion or a departure. */
static void own_comment(fixture_t *f, int who)
{
    const char *p[3] = { team, f->task, crew[who].id };

    plxt_db_value(env.db, "INSERT INTO projects.comments (team_id, task_id, author_id,"
                  " body) VALUES ($1, $2, $3, 'mine') RETURNING id", 3, p,
                  f->own_comment, sizeof f->own_comment);
}

static void fixture_new(fixture_t *f, int who)
{
    pjt_project_new(&env, &crew[OWNER], team, "matrix", f->project);
    pjt_task_new(&env, &crew[OWNER], f->project, "a task", NULL, f->task);
    pjt_comment_new(&env, &crew[OWNER], f->task, "by the owner", f->owner_comment);
    pjt_comment_new(&env, &crew[MEMBER], f->task, "by the member", f->member_comment);
    own_comment(f, who);
}

/* everything of the crew's team that a write could change, as one digest */
static void fingerprint(char *out, size_t len)
{
    const char *p[1] = { team };

    plxt_db_value(env.db,
        "SELECT md5(coalesce((SELECT string_agg(id || status || name || description"
        "   || version, ',' ORDER BY id) FROM projects.projects WHERE team_id = $1), '')"
        " || '|' || coalesce((SELECT string_agg(id || status || title || version"
        "   || coalesce(assignee_id::text, '') || coalesce(due_date::text, ''), ','"
        "   ORDER BY id) FROM projects.tasks WHERE team_id = $1), '')"
        " || '|' || coalesce((SELECT string_agg(id || body || version, ',' ORDER BY id)"
        "   FROM projects.comments WHERE team_id = $1), ''))", 1, p, out, len);
}

static long call(int who, const char *method, const char *path, const char *body,
                 const char *if_match)
{
    plxt_resp_t resp;
    long status;

    pjt_call(&env, method, path, crew[who].access, body, if_match, &resp);
    status = resp.status;
    if (status >= 500)
        fail_msg("%s %s as %s: %ld %s", method, path, crew_name[who], status, resp.body);
    plxt_resp_free(&resp);
    return status;
}

/* ---- the actions --------------------------------------------------------- */

static long list_projects(int who, fixture_t *f)
{
    return call(who, "GET", P("/api/v1/projects?team_id=%s", team), NULL, NULL);
}

static long read_project(int who, fixture_t *f)
{
    return call(who, "GET", P("/api/v1/projects/%s", f->project), NULL, NULL);
}

static long create_project(int who, fixture_t *f)
{
    return call(who, "POST", "/api/v1/projects",
                P("{\"team_id\":\"%s\",\"name\":\"new\"}", team), NULL);
}

static long rename_project(int who, fixture_t *f)
{
    return call(who, "PATCH", P("/api/v1/projects/%s", f->project),
                "{\"name\":\"renamed\",\"description\":\"d\"}", "\"1\"");
}

static long archive_project(int who, fixture_t *f)
{
    return call(who, "DELETE", P("/api/v1/projects/%s", f->project), NULL, NULL);
}

static void archive_first(fixture_t *f)
{
    json_decref(pjt_expect(&env, "DELETE", P("/api/v1/projects/%s", f->project),
                           crew[OWNER].access, NULL, NULL, 200));
}

static long restore_project(int who, fixture_t *f)
{
    return call(who, "PATCH", P("/api/v1/projects/%s", f->project),
                "{\"status\":\"active\"}", "\"2\"");
}

static long list_tasks(int who, fixture_t *f)
{
    return call(who, "GET", P("/api/v1/projects/%s/tasks", f->project), NULL, NULL);
}

static long read_task(int who, fixture_t *f)
{
    return call(who, "GET", P("/api/v1/tasks/%s", f->task), NULL, NULL);
}

static long create_task(int who, fixture_t *f)
{
    return call(who, "POST", P("/api/v1/projects/%s/tasks", f->project),
                "{\"title\":\"new\"}", NULL);
}

static long edit_task(int who, fixture_t *f)
{
    return call(who, "PATCH", P("/api/v1/tasks/%s", f->task),
                "{\"title\":\"edited\",\"due_date\":\"2031-01-02\"}", "\"1\"");
}

static long move_task(int who, fixture_t *f)
{
    return call(who, "PATCH", P("/api/v1/tasks/%s", f->task),
                "{\"status\":\"in_progress\"}", "\"1\"");
}

static long assign_task(int who, fixture_t *f)
{
    return call(who, "PATCH", P("/api/v1/tasks/%s", f->task),
                P("{\"assignee_id\":\"%s\"}", crew[MEMBER].id), "\"1\"");
}

static void assign_first(fixture_t *f)
{
    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/tasks/%s", f->task),
                           crew[OWNER].access,
                           P("{\"assignee_id\":\"%s\"}", crew[VIEWER].id), "\"1\"", 200));
}

static long unassign_task(int who, fixture_t *f)
{
    return call(who, "PATCH", P("/api/v1/tasks/%s", f->task), "{\"assignee_id\":null}",
                "\"2\"");
}

static long delete_task(int who, fixture_t *f)
{
    return call(who, "DELETE", P("/api/v1/tasks/%s", f->task), NULL, NULL);
}

static long list_comments(int who, fixture_t *f)
{
    return call(who, "GET", P("/api/v1/tasks/%s/comments", f->task), NULL, NULL);
}

static long create_comment(int who, fixture_t *f)
{
    return call(who, "POST", P("/api/v1/tasks/%s/comments", f->task),
                "{\"body\":\"a comment\"}", NULL);
}

static long edit_own_comment(int who, fixture_t *f)
{
    return call(who, "PATCH", P("/api/v1/comments/%s", f->own_comment),
                "{\"body\":\"edited\"}", "\"1\"");
}

static long edit_members_comment(int who, fixture_t *f)
{
    return call(who, "PATCH", P("/api/v1/comments/%s", f->member_comment),
                "{\"body\":\"edited\"}", "\"1\"");
}

static long delete_own_comment(int who, fixture_t *f)
{
    return call(who, "DELETE", P("/api/v1/comments/%s", f->own_comment), NULL, NULL);
}

static long delete_owners_comment(int who, fixture_t *f)
{
    return call(who, "DELETE", P("/api/v1/comments/%s", f->owner_comment), NULL, NULL);
}

/* ---- the matrix ---------------------------------------------------------- */

typedef struct cell_row {
    const char *what;
    long (*act)(int who, fixture_t *f);
    bool write;
    long expect[NCREW];   /* owner, admin, member, viewer, outsider */
    void (*prepare)(fixture_t *f);   /* by the owner, before the fingerprint */
} cell_row_t;

static const cell_row_t matrix[] = {
    { "list the team's projects", list_projects, false, { 200, 200, 200, 200, 404 } },
    { "read a project", read_project, false, { 200, 200, 200, 200, 404 } },
    { "create a project", create_project, true, { 201, 201, 201, 403, 404 } },
    { "rename a project", rename_project, true, { 200, 200, 200, 403, 404 } },
    { "archive a project", archive_project, true, { 200, 200, 403, 403, 404 } },
    { "restore an archived project", restore_project, true, { 200, 200, 403, 403, 404 },
      archive_first },
    { "list a project's tasks", list_tasks, false, { 200, 200, 200, 200, 404 } },
    { "read a task", read_task, false, { 200, 200, 200, 200, 404 } },
    { "create a task", create_task, true, { 201, 201, 201, 403, 404 } },
    { "edit a task", edit_task, true, { 200, 200, 200, 403, 404 } },
    { "move a task", move_task, true, { 200, 200, 200, 403, 404 } },
    { "assign a task", assign_task, true, { 200, 200, 200, 403, 404 } },
    { "unassign a task", unassign_task, true, { 200, 200, 200, 403, 404 }, assign_first },
    { "delete a task", delete_task, true, { 204, 204, 403, 403, 404 } },
    { "list a task's comments", list_comments, false, { 200, 200, 200, 200, 404 } },
    { "comment on a task", create_comment, true, { 201, 201, 201, 403, 404 } },
    { "edit one's own comment", edit_own_comment, true, { 200, 200, 200, 403, 404 } },
    { "edit the member's comment", edit_members_comment, true,
      { 403, 403, 200, 403, 404 } },
    { "delete one's own comment", delete_own_comment, true, { 204, 204, 204, 403, 404 } },
    { "delete the owner's comment", delete_owners_comment, true,
      { 204, 204, 403, 403, 404 } },
};

static void test_role_matrix(void **state)
{
    char before[512], after[512];
    int failures = 0;

    for (size_t i = 0; i < sizeof matrix / sizeof matrix[0]; i++) {
        for (int who = 0; who < NCREW; who++) {
            const cell_row_t *row = &matrix[i];
            fixture_t f;
            fixture_new(&f, who);
            if (row->prepare)
                row->prepare(&f);
            fingerprint(before, sizeof before);
            long got = row->act(who, &f);
            fingerprint(after, sizeof after);
            bool changed = strcmp(before, after) != 0;
            bool ok = got == row->expect[who] && changed == (row->write && got < 300);
            if (!ok) {
                print_error("%s as %s: expected %ld, found %ld; rows %s\n", row->what,
                            crew_name[who], row->expect[who], got,
                            changed ? "changed" : "unchanged");
                failures++;
            }
        }
    }
    assert_int_equal(failures, 0);
}

/* ---- another team's things ----------------------------------------------- */

/* every route on id, as who: 404 "not_found", whatever id names */
static void all_not_found(int who, const char *id)
{
    static const struct { const char *method, *fmt, *body; } routes[] = {
        { "GET", "/api/v1/projects/%s", NULL },
        { "PATCH", "/api/v1/projects/%s", "{\"name\":\"x\"}" },
        { "DELETE", "/api/v1/projects/%s", NULL },
        { "GET", "/api/v1/projects/%s/tasks", NULL },
        { "POST", "/api/v1/projects/%s/tasks", "{\"title\":\"x\"}" },
        { "GET", "/api/v1/tasks/%s", NULL },
        { "PATCH", "/api/v1/tasks/%s", "{\"title\":\"x\"}" },
        { "DELETE", "/api/v1/tasks/%s", NULL },
        { "GET", "/api/v1/tasks/%s/comments", NULL },
        { "POST", "/api/v1/tasks/%s/comments", "{\"body\":\"x\"}" },
        { "PATCH", "/api/v1/comments/%s", "{\"body\":\"x\"}" },
        { "DELETE", "/api/v1/comments/%s", NULL },
    };

    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        free(pjt_expect_problem(&env, routes[i].method, route_path(routes[i].fmt, id),
                                crew[who].access, routes[i].body, "\"1\"", 404,
                                "not_found"));
}

static void test_other_team_is_not_found(void **state)
{
    char project[37], task[37], comment[37], nobody[37], before[512], after[512];

    pjt_project_new(&env, &crew[OUTSIDER], other_team, "theirs", project);
    pjt_task_new(&env, &crew[OUTSIDER], project, "their task", NULL, task);
    pjt_comment_new(&env, &crew[OUTSIDER], task, "their comment", comment);
    pjt_uuid(nobody);
    fingerprint(before, sizeof before);
    /* the owner of another team is nobody here: the same 404 as for ids
     * that name nothing, or that are not even UUIDs */
    const char *const ids[] = { project, task, comment, nobody, "not-a-uuid",
                                "1%27%20OR%20%271%27%3D%271" };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        all_not_found(OWNER, ids[i]);
    fingerprint(after, sizeof after);
    assert_string_equal(before, after);
    /* and theirs is untouched */
    json_t *j = pjt_expect(&env, "GET", P("/api/v1/tasks/%s", task),
                           crew[OUTSIDER].access, NULL, NULL, 200);
    assert_string_equal(pjt_str(j, "title"), "their task");
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    json_decref(j);
    /* a list filtered on their team: not found; unfiltered: none of theirs */
    free(pjt_expect_problem(&env, "GET", P("/api/v1/projects?team_id=%s", other_team),
                            crew[OWNER].access, NULL, NULL, 404, "not_found"));
    free(pjt_expect_problem(&env, "GET", P("/api/v1/projects?team_id=%s", nobody),
                            crew[OWNER].access, NULL, NULL, 404, "not_found"));
    free(pjt_expect_problem(&env, "POST", "/api/v1/projects", crew[OWNER].access,
                            P("{\"team_id\":\"%s\",\"name\":\"in\"}", other_team), NULL,
                            404, "not_found"));
    j = pjt_expect(&env, "GET", "/api/v1/projects?limit=100", crew[OWNER].access, NULL,
                   NULL, 200);
    json_t *item;
    size_t i;
    json_array_foreach(json_object_get(j, "items"), i, item)
        assert_string_equal(pjt_str(item, "team_id"), team);
    json_decref(j);
    j = pjt_expect(&env, "GET", "/api/v1/projects", crew[OUTSIDER].access, NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    json_decref(j);
}

static void test_assignee_must_be_in_the_team(void **state)
{
    char project[37], task[37];
    char *detail;

    pjt_project_new(&env, &crew[OWNER], team, "assign", project);
    pjt_task_new(&env, &crew[MEMBER], project, "t", NULL, task);
    detail = pjt_expect_problem(&env, "PATCH", P("/api/v1/tasks/%s", task),
                                crew[MEMBER].access,
                                P("{\"assignee_id\":\"%s\"}", crew[OUTSIDER].id), "\"1\"",
                                400, "invalid_field");
    assert_non_null(strstr(detail, "\"assignee_id\""));
    free(detail);
    free(pjt_expect_problem(&env, "POST", P("/api/v1/projects/%s/tasks", project),
                            crew[MEMBER].access,
                            P("{\"title\":\"t\",\"assignee_id\":\"%s\"}", crew[OUTSIDER].id),
                            NULL, 400, "invalid_field"));
    /* a viewer may be assigned work: they are in the team */
    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/tasks/%s", task), crew[MEMBER].access,
                           P("{\"assignee_id\":\"%s\"}", crew[VIEWER].id), "\"1\"", 200));
}

static void test_anonymous_is_401(void **state)
{
    static const struct { const char *method, *path; } routes[] = {
        { "GET", "/api/v1/projects" }, { "POST", "/api/v1/projects" },
        { "GET", "/api/v1/projects/%s" }, { "PATCH", "/api/v1/projects/%s" },
        { "DELETE", "/api/v1/projects/%s" }, { "GET", "/api/v1/projects/%s/tasks" },
        { "POST", "/api/v1/projects/%s/tasks" }, { "GET", "/api/v1/tasks/%s" },
        { "PATCH", "/api/v1/tasks/%s" }, { "DELETE", "/api/v1/tasks/%s" },
        { "GET", "/api/v1/tasks/%s/comments" }, { "POST", "/api/v1/tasks/%s/comments" },
        { "PATCH", "/api/v1/comments/%s" }, { "DELETE", "/api/v1/comments/%s" },
    };
    char id[37];
    plxt_resp_t resp;

    pjt_uuid(id);
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        pjt_call(&env, routes[i].method, route_path(routes[i].path, id), NULL, "{}", NULL, &resp);
        if (resp.status != 401)
            fail_msg("%s %s anonymous: expected 401, found %ld", routes[i].method,
                     routes[i].path, resp.status);
        plxt_resp_free(&resp);
    }
    /* a forged token is nobody either */
    pjt_call(&env, "GET", "/api/v1/projects", "eyJhbGciOiJIUzI1NiJ9.e30.AAAA", NULL,
             NULL, &resp);
    assert_int_equal(resp.status, 401);
    plxt_resp_free(&resp);
}

/* ---- API keys: projects:read and projects:write ---------------------------- */

/* a key of the owner's with the given scopes (a JSON array); malloc'd */
static char *owner_key(const char *scopes)
{
    json_t *k = pjt_expect(&env, "POST", "/api/v1/api-keys", crew[OWNER].access,
                           P("{\"name\":\"projects test\",\"scopes\":%s}", scopes),
                           NULL, 201);
    char *key = strdup(pjt_str(k, "key"));
    json_decref(k);
    return key;
}

static void test_api_key_scopes(void **state)
{
    char *reader = owner_key("[\"projects:read\"]");
    char *writer = owner_key("[\"projects:read\",\"projects:write\"]");
    char *other = owner_key("[\"something:else\"]");
    const char *list = P("/api/v1/projects?team_id=%s", team);
    const char *create = P("{\"team_id\":\"%s\",\"name\":\"by key\"}", team);

    json_decref(pjt_expect(&env, "GET", list, reader, NULL, NULL, 200));
    free(pjt_expect_problem(&env, "POST", "/api/v1/projects", reader, create, NULL,
                            403, "forbidden"));
    json_decref(pjt_expect(&env, "POST", "/api/v1/projects", writer, create, NULL, 201));
    free(pjt_expect_problem(&env, "GET", list, other, NULL, NULL, 403, "forbidden"));
    free(reader);
    free(writer);
    free(other);
}

/* ---- leaving the team ---------------------------------------------------- */

static json_t *task_list(const char *project, const char *query)
{
    return pjt_expect(&env, "GET", P("/api/v1/projects/%s/tasks?%s", project, query),
                      crew[OWNER].access, NULL, NULL, 200);
}

static bool list_has(json_t *list, const char *id)
{
    json_t *item;
    size_t i;

    json_array_foreach(json_object_get(list, "items"), i, item)
        if (strcmp(pjt_str(item, "id"), id) == 0)
            return true;
    return false;
}

static void test_leaving_unassigns(void **state)
{
    plxt_user_t leaver;
    char project[37], task[37];
    json_t *j;

    plxt_user_new(env.srv, env.db, &leaver);
    pjt_member_add(&env, team, &crew[OWNER], &leaver, "member");
    pjt_project_new(&env, &crew[OWNER], team, "leaving", project);
    pjt_task_new(&env, &crew[OWNER], project, "theirs",
                 P("\"assignee_id\":\"%s\"", leaver.id), task);
    j = task_list(project, P("assignee=%s", leaver.id));
    assert_true(list_has(j, task));
    json_decref(j);
    /* a change of role is the same membership: still assigned */
    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/teams/%s/members/%s", team, leaver.id),
                           crew[OWNER].access, "{\"role\":\"viewer\"}", NULL, 200));
    j = task_list(project, P("assignee=%s", leaver.id));
    assert_true(list_has(j, task));
    json_decref(j);

    json_decref(pjt_expect(&env, "POST", P("/api/v1/teams/%s/leave", team), leaver.access,
                           NULL, NULL, 204));
    /* unassigned at once, for reads and for the filters */
    j = pjt_expect(&env, "GET", P("/api/v1/tasks/%s", task), crew[OWNER].access, NULL,
                   NULL, 200);
    assert_true(json_is_null(json_object_get(j, "assignee_id")));
    json_decref(j);
    j = task_list(project, P("assignee=%s", leaver.id));
    assert_false(list_has(j, task));
    json_decref(j);
    j = task_list(project, "assignee=none");
    assert_true(list_has(j, task));
    json_decref(j);
    /* and the one who left sees nothing */
    free(pjt_expect_problem(&env, "GET", P("/api/v1/tasks/%s", task), leaver.access, NULL,
                            NULL, 404, "not_found"));
    /* coming back does not bring the old assignment back */
    pjt_member_add(&env, team, &crew[OWNER], &leaver, "member");
    j = pjt_expect(&env, "GET", P("/api/v1/tasks/%s", task), leaver.access, NULL, NULL, 200);
    assert_true(json_is_null(json_object_get(j, "assignee_id")));
    json_decref(j);
    /* a new assignment counts again */
    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/tasks/%s", task), crew[OWNER].access,
                           P("{\"assignee_id\":\"%s\"}", leaver.id), "*", 200));
    j = task_list(project, P("assignee=%s", leaver.id));
    assert_true(list_has(j, task));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_matrix),
        cmocka_unit_test(test_other_team_is_not_found),
        cmocka_unit_test(test_assignee_must_be_in_the_team),
        cmocka_unit_test(test_anonymous_is_401),
        cmocka_unit_test(test_api_key_scopes),
        cmocka_unit_test(test_leaving_unassigns),
    };

    plxt_require_postgres("test_projects_access");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
