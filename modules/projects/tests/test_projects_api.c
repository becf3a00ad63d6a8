/*
 * test_projects_api.c - the projects module as its clients use it: the
 * shapes of projects, tasks and comments; ETags and If-Match (428, 412,
 * "*", lists, weak tags); two clients editing one task at the same moment;
 * search, filters and sorts; pagination that neither repeats nor skips a
 * row while others insert; malformed input answered 400 naming the field;
 * the events other modules receive; archiving; and the cascades of the
 * schema
 *
 * One plexusd with the projects module and the event probe on a database
 * of its own; every test makes its own projects.
 */
#include "config.h"

#include <pthread.h>
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
static plxt_user_t owner, member;
static char team[37];

/* a path or body from a format (harness.h) */
#define P plxt_fmt

static int group_setup(void **state)
{
    if (pjt_start(&env) != 0)
        return -1;
    plxt_user_new(env.srv, env.db, &owner);
    plxt_user_new(env.srv, env.db, &member);
    pjt_team_new(&env, &owner, team);
    pjt_member_add(&env, team, &owner, &member, "member");
    return 0;
}

static int group_teardown(void **state)
{
    return pjt_stop(&env);
}

/* ---- helpers ------------------------------------------------------------- */

static const char *etag_of(const plxt_resp_t *resp)
{
    const char *e = plxt_resp_header(resp, "ETag");

    if (!e)
        fail_msg("expected an ETag header");
    return e;
}

/* a call answered `status` with ETag `etag`; the body */
static json_t *expect_etag(const char *method, const char *path, const char *body,
                           const char *if_match, long status, const char *etag)
{
    plxt_resp_t resp;
    json_t *j;

    pjt_call(&env, method, path, owner.access, body, if_match, &resp);
    if (resp.status != status)
        fail_msg("%s %s: expected %ld, found %ld: %s", method, path, status, resp.status,
                 resp.body);
    assert_string_equal(etag_of(&resp), etag);
    j = plxt_resp_json(&resp);
    plxt_resp_free(&resp);
    return j;
}

static void expect_field_problem(const char *method, const char *path, const char *body,
                                 const char *if_match, const char *code, const char *field)
{
    char *detail = pjt_expect_problem(&env, method, path, owner.access, body, if_match,
                                      400, code);
    char quoted[80];

    snprintf(quoted, sizeof quoted, "\"%s\"", field);
    if (!strstr(detail, quoted))
        fail_msg("%s %s %.80s: the detail \"%s\" does not name %s", method, path,
                 body ? body : "", detail, quoted);
    free(detail);
}

/* the ids of a list answer, in order, appended to ids (n of them so far) */
static const char *page_into(json_t *page, char (*ids)[37], size_t *n, size_t max)
{
    json_t *item;
    size_t i;

    json_array_foreach(json_object_get(page, "items"), i, item) {
        if (*n >= max)
            fail_msg("more rows than expected");
        snprintf(ids[(*n)++], 37, "%s", pjt_str(item, "id"));
    }
    return json_string_value(json_object_get(page, "next_cursor"));
}

static size_t count_of(const char (*ids)[37], size_t n, const char *id)
{
    size_t c = 0;

    for (size_t i = 0; i < n; i++)
        c += strcmp(ids[i], id) == 0;
    return c;
}

/* titles of a task list, joined by commas */
static void titles(const char *project, const char *query, char *out, size_t len)
{
    json_t *j = pjt_expect(&env, "GET", P("/api/v1/projects/%s/tasks?%s", project, query),
                           owner.access, NULL, NULL, 200);
    json_t *item;
    size_t i, o = 0;

    out[0] = '\0';
    json_array_foreach(json_object_get(j, "items"), i, item)
        o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "," : "", pjt_str(item, "title"));
    json_decref(j);
}

static long db_count(const char *sql, const char *param)
{
    char out[32];
    const char *p[1] = { param };

    plxt_db_value(env.db, sql, 1, p, out, sizeof out);
    return atol(out);
}

/* ---- shapes and ETags ---------------------------------------------------- */

static void test_project_shape_and_etags(void **state)
{
    plxt_resp_t resp;
    char id[37], path[80];
    json_t *j;

    pjt_call(&env, "POST", "/api/v1/projects", owner.access,
             P("{\"team_id\":\"%s\",\"name\":\"Apollo\",\"description\":\"to the moon\"}",
               team), NULL, &resp);
    assert_int_equal(resp.status, 201);
    assert_string_equal(etag_of(&resp), "\"1\"");
    j = plxt_resp_json(&resp);
    snprintf(id, sizeof id, "%s", pjt_str(j, "id"));
    snprintf(path, sizeof path, "/api/v1/projects/%s", id);
    assert_string_equal(plxt_resp_header(&resp, "Location"), path);
    assert_string_equal(pjt_str(j, "team_id"), team);
    assert_string_equal(pjt_str(j, "name"), "Apollo");
    assert_string_equal(pjt_str(j, "description"), "to the moon");
    assert_string_equal(pjt_str(j, "status"), "active");
    assert_string_equal(pjt_str(j, "created_by"), owner.id);
    assert_int_equal(strlen(pjt_str(j, "created_at")), 24);   /* RFC 3339, ms, Z */
    assert_int_equal(pjt_str(j, "created_at")[23], 'Z');
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1);
    json_decref(j);
    plxt_resp_free(&resp);

    json_decref(expect_etag("GET", path, NULL, NULL, 200, "\"1\""));
    free(pjt_expect_problem(&env, "PATCH", path, owner.access, "{\"name\":\"A\"}", NULL,
                            428, "precondition_required"));
    j = expect_etag("PATCH", path, "{\"name\":\"Apollo 11\"}", "\"1\"", 200, "\"2\"");
    assert_string_equal(pjt_str(j, "name"), "Apollo 11");
    assert_string_equal(pjt_str(j, "description"), "to the moon");   /* untouched */
    json_decref(j);
    free(pjt_expect_problem(&env, "PATCH", path, owner.access, "{\"name\":\"stale\"}",
                            "\"1\"", 412, "precondition_failed"));
    free(pjt_expect_problem(&env, "PATCH", path, owner.access, "{\"name\":\"weak\"}",
                            "W/\"2\"", 412, "precondition_failed"));
    free(pjt_expect_problem(&env, "PATCH", path, owner.access, "{\"name\":\"junk\"}",
                            "\"two\"", 412, "precondition_failed"));
    json_decref(expect_etag("PATCH", path, "{\"description\":\"\"}", "*", 200, "\"3\""));
    json_decref(expect_etag("PATCH", path, "{\"name\":\"Apollo 12\"}", "\"1\", \"3\"",
                            200, "\"4\""));
    j = expect_etag("GET", path, NULL, NULL, 200, "\"4\"");
    assert_string_equal(pjt_str(j, "name"), "Apollo 12");
    assert_string_equal(pjt_str(j, "description"), "");
    json_decref(j);
    /* a stale DELETE is refused too, a current one archives */
    free(pjt_expect_problem(&env, "DELETE", path, owner.access, NULL, "\"3\"", 412,
                            "precondition_failed"));
    json_decref(expect_etag("DELETE", path, NULL, "\"4\"", 200, "\"5\""));
}

static void test_task_and_comment_shapes(void **state)
{
    char project[37], task[37], path[80];
    plxt_resp_t resp;
    json_t *j;

    pjt_project_new(&env, &owner, team, "shapes", project);
    pjt_call(&env, "POST", P("/api/v1/projects/%s/tasks", project), owner.access,
             P("{\"title\":\"Land\",\"description\":\"softly\",\"status\":\"blocked\","
               "\"assignee_id\":\"%s\",\"due_date\":\"2030-07-20\"}", member.id),
             NULL, &resp);
    assert_int_equal(resp.status, 201);
    j = plxt_resp_json(&resp);
    snprintf(task, sizeof task, "%s", pjt_str(j, "id"));
    snprintf(path, sizeof path, "/api/v1/tasks/%s", task);
    assert_string_equal(plxt_resp_header(&resp, "Location"), path);
    assert_string_equal(etag_of(&resp), "\"1\"");
    assert_string_equal(pjt_str(j, "project_id"), project);
    assert_string_equal(pjt_str(j, "team_id"), team);
    assert_string_equal(pjt_str(j, "title"), "Land");
    assert_string_equal(pjt_str(j, "status"), "blocked");
    assert_string_equal(pjt_str(j, "assignee_id"), member.id);
    assert_string_equal(pjt_str(j, "due_date"), "2030-07-20");
    json_decref(j);
    plxt_resp_free(&resp);

    /* defaults, and null clears */
    json_decref(pjt_expect(&env, "POST", P("/api/v1/projects/%s/tasks", project),
                           owner.access, "{\"title\":\"bare\"}", NULL, 201));
    j = expect_etag("PATCH", path, "{\"assignee_id\":null,\"due_date\":null,"
                    "\"status\":\"done\"}", "\"1\"", 200, "\"2\"");
    assert_true(json_is_null(json_object_get(j, "assignee_id")));
    assert_true(json_is_null(json_object_get(j, "due_date")));
    assert_string_equal(pjt_str(j, "status"), "done");
    assert_string_equal(pjt_str(j, "title"), "Land");
    json_decref(j);

    /* a comment: author, ETag, edit with If-Match */
    pjt_call(&env, "POST", P("/api/v1/tasks/%s/comments", task), member.access,
             "{\"body\":\"line one\\nline two\"}", NULL, &resp);
    assert_int_equal(resp.status, 201);
    j = plxt_resp_json(&resp);
    assert_string_equal(pjt_str(j, "author_id"), member.id);
    assert_string_equal(pjt_str(j, "task_id"), task);
    assert_string_equal(pjt_str(j, "body"), "line one\nline two");
    const char *cpath = P("/api/v1/comments/%s", pjt_str(j, "id"));
    plxt_resp_free(&resp);
    free(pjt_expect_problem(&env, "PATCH", cpath, member.access, "{\"body\":\"b\"}", NULL,
                            428, "precondition_required"));
    json_t *c = pjt_expect(&env, "PATCH", cpath, member.access, "{\"body\":\"edited\"}",
                           "\"1\"", 200);
    assert_string_equal(pjt_str(c, "body"), "edited");
    assert_int_equal(json_integer_value(json_object_get(c, "version")), 2);
    json_decref(c);
    json_decref(j);
    json_decref(pjt_expect(&env, "DELETE", cpath, member.access, NULL, NULL, 204));
    free(pjt_expect_problem(&env, "DELETE", cpath, member.access, NULL, NULL, 404,
                            "not_found"));
}

/* ---- concurrency --------------------------------------------------------- */

static void test_lost_update_prevented(void **state)
{
    char project[37], task[37], a[24], b[24];
    const char *path;
    json_t *j;

    pjt_project_new(&env, &owner, team, "two clients", project);
    pjt_task_new(&env, &owner, project, "shared", NULL, task);
    path = P("/api/v1/tasks/%s", task);
    pjt_etag(&env, path, owner.access, a);
    pjt_etag(&env, path, member.access, b);
    assert_string_equal(a, b);
    json_decref(pjt_expect(&env, "PATCH", path, owner.access, "{\"title\":\"renamed by A\"}",
                           a, 200));
    free(pjt_expect_problem(&env, "PATCH", path, member.access, "{\"status\":\"done\"}", b,
                            412, "precondition_failed"));
    pjt_etag(&env, path, member.access, b);
    json_decref(pjt_expect(&env, "PATCH", path, member.access, "{\"status\":\"done\"}", b,
                           200));
    j = pjt_expect(&env, "GET", path, owner.access, NULL, NULL, 200);
    assert_string_equal(pjt_str(j, "title"), "renamed by A");   /* nothing lost */
    assert_string_equal(pjt_str(j, "status"), "done");
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 3);
    json_decref(j);
}

typedef struct racer {
    const char        *path;
    const char        *token;
    const char        *body;
    const char        *etag;
    pthread_barrier_t *go;
    long               status;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    char url[512], auth[4200], im[64];
    plxt_resp_t resp;

    snprintf(url, sizeof url, "%s%s", env.srv->url, r->path);
    snprintf(im, sizeof im, "If-Match: %s", r->etag);
    const char *headers[] = { plxt_bearer(r->token, auth, sizeof auth),
                              "Content-Type: application/json", im, NULL };
    pthread_barrier_wait(r->go);
    r->status = plxt_http("PATCH", url, headers, r->body, &resp) == 0 ? resp.status : 0;
    plxt_resp_free(&resp);
    return NULL;
}

static void test_concurrent_patch_one_wins(void **state)
{
    enum { ROUNDS = 20 };
    char project[37], task[37], etag[24];
    pthread_barrier_t go;
    pthread_t t[2];

    pjt_project_new(&env, &owner, team, "race", project);
    pjt_task_new(&env, &owner, project, "contended", NULL, task);
    const char *path = P("/api/v1/tasks/%s", task);
    for (int round = 0; round < ROUNDS; round++) {
        pjt_etag(&env, path, owner.access, etag);
        racer_t r[2] = {
            { path, owner.access, "{\"title\":\"by the owner\"}", etag, &go, 0 },
            { path, member.access, "{\"status\":\"in_progress\"}", etag, &go, 0 },
        };
        pthread_barrier_init(&go, NULL, 2);
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        pthread_barrier_destroy(&go);
        long ok = (r[0].status == 200) + (r[1].status == 200);
        long stale = (r[0].status == 412) + (r[1].status == 412);
        if (ok != 1 || stale != 1)
            fail_msg("round %d: expected one 200 and one 412, found %ld and %ld", round,
                     r[0].status, r[1].status);
    }
    /* each round moved the version by exactly one */
    json_t *j = pjt_expect(&env, "GET", path, owner.access, NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 1 + ROUNDS);
    json_decref(j);
}

/* ---- search, filters, sorts ---------------------------------------------- */

static void test_project_search_and_status(void **state)
{
    static const char *const names[] = {
        "Search 100% done", "Search a_b", "Search back\\slash", "Search O'Reilly; DROP",
        "Search plain ab",
    };
    char ids[5][37], t[37], other[37], theirs[37];
    char list[1024];
    json_t *j, *item;
    size_t i;

    pjt_team_new(&env, &owner, t);
    for (i = 0; i < 5; i++)
        pjt_project_new(&env, &owner, t, names[i], ids[i]);
    pjt_team_new(&env, &member, other);
    pjt_project_new(&env, &member, other, "Search 100% theirs", theirs);   /* not ours */
    static const struct { const char *q, *expect; } cases[] = {
        { "100%25", "Search 100% done" },             /* % is a character, not a wildcard */
        { "_", "Search a_b" },
        { "a_b", "Search a_b" },
        { "%5C", "Search back\\slash" },
        { "O%27Reilly%3B%20DROP", "Search O'Reilly; DROP" },
        { "SEARCH%20PLAIN", "Search plain ab" },      /* ILIKE: any case */
        { "nothing%20like%20it", "" },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        j = pjt_expect(&env, "GET", P("/api/v1/projects?team_id=%s&q=%s", t, cases[c].q),
                       owner.access, NULL, NULL, 200);
        list[0] = '\0';
        json_array_foreach(json_object_get(j, "items"), i, item)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? "|" : "",
                     pjt_str(item, "name"));
        if (strcmp(list, cases[c].expect) != 0)
            fail_msg("q=%s: expected \"%s\", found \"%s\"", cases[c].q, cases[c].expect, list);
        json_decref(j);
    }
    /* status: archive one */
    json_decref(pjt_expect(&env, "DELETE", P("/api/v1/projects/%s", ids[1]), owner.access,
                           NULL, NULL, 200));
    j = pjt_expect(&env, "GET", P("/api/v1/projects?team_id=%s&status=archived", t),
                   owner.access, NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 1);
    assert_string_equal(pjt_str(json_array_get(json_object_get(j, "items"), 0), "id"), ids[1]);
    json_decref(j);
    j = pjt_expect(&env, "GET", P("/api/v1/projects?team_id=%s&status=active&q=search", t),
                   owner.access, NULL, NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 4);
    json_decref(j);
    /* the table is still there after the name with SQL in it */
    assert_true(db_count("SELECT count(*) FROM projects.projects WHERE team_id = $1", t) == 5);
}

static void test_task_filters_and_sorts(void **state)
{
    char project[37], id[37], out[1024];

    pjt_project_new(&env, &owner, team, "filters", project);
    pjt_task_new(&env, &owner, project, "a", "\"due_date\":\"2030-03-01\"", id);
    pjt_task_new(&env, &owner, project, "b", P("\"assignee_id\":\"%s\",\"status\":\"done\","
                                               "\"due_date\":\"2030-01-15\"", member.id), id);
    pjt_task_new(&env, &owner, project, "c", NULL, id);
    pjt_task_new(&env, &owner, project, "d", P("\"assignee_id\":\"%s\","
                                               "\"due_date\":\"2030-02-01\"", owner.id), id);
    pjt_task_new(&env, &owner, project, "e", P("\"assignee_id\":\"%s\",\"status\":\"blocked\"",
                                               member.id), id);

    titles(project, "", out, sizeof out);
    assert_string_equal(out, "a,b,c,d,e");
    titles(project, "order=desc", out, sizeof out);
    assert_string_equal(out, "e,d,c,b,a");
    titles(project, "status=done", out, sizeof out);
    assert_string_equal(out, "b");
    titles(project, "status=todo", out, sizeof out);
    assert_string_equal(out, "a,c,d");
    titles(project, P("assignee=%s", member.id), out, sizeof out);
    assert_string_equal(out, "b,e");
    titles(project, "assignee=none", out, sizeof out);
    assert_string_equal(out, "a,c");
    titles(project, "due_before=2030-02-01", out, sizeof out);   /* strictly before */
    assert_string_equal(out, "b");
    titles(project, "due_after=2030-01-15&due_before=2030-03-02", out, sizeof out);
    assert_string_equal(out, "a,d");
    titles(project, P("assignee=%s&status=blocked", member.id), out, sizeof out);
    assert_string_equal(out, "e");
    /* due date: tasks without one sort last ascending, first descending,
     * among themselves in the order of their ids */
    titles(project, "sort=due_date", out, sizeof out);
    if (strcmp(out, "b,d,a,c,e") != 0 && strcmp(out, "b,d,a,e,c") != 0)
        fail_msg("sort=due_date: found \"%s\"", out);
    titles(project, "sort=due_date&order=desc", out, sizeof out);
    if (strcmp(out, "c,e,a,d,b") != 0 && strcmp(out, "e,c,a,d,b") != 0)
        fail_msg("sort=due_date&order=desc: found \"%s\"", out);
    /* updated_at follows the last write */
    char etag[24];
    const char *c_id = NULL;
    json_t *j = pjt_expect(&env, "GET", P("/api/v1/projects/%s/tasks?status=todo", project),
                           owner.access, NULL, NULL, 200);
    c_id = pjt_str(json_array_get(json_object_get(j, "items"), 0), "id");   /* a */
    pjt_etag(&env, P("/api/v1/tasks/%s", c_id), owner.access, etag);
    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/tasks/%s", c_id), owner.access,
                           "{\"description\":\"touched\"}", etag, 200));
    json_decref(j);
    titles(project, "sort=updated_at&order=desc", out, sizeof out);
    assert_string_equal(out, "a,e,d,c,b");
}

/* ---- pagination ---------------------------------------------------------- */

/* Page through a list of limit `limit` while inserting `per_page` new
 * tasks after every page; the ids seen, in order */
static size_t page_while_inserting(const char *project, const char *query, int limit,
                                   int per_page, char (*ids)[37], size_t max,
                                   char (*added)[37], size_t *nadded)
{
    size_t n = 0;
    const char *cursor = NULL;
    char next[512] = "";
    int pages = 0;

    do {
        json_t *page = pjt_expect(&env, "GET",
            P("/api/v1/projects/%s/tasks?%s&limit=%d%s%s", project, query, limit,
              cursor ? "&cursor=" : "", cursor ? next : ""), owner.access, NULL, NULL, 200);
        assert_true(json_array_size(json_object_get(page, "items")) <= (size_t)limit);
        cursor = page_into(page, ids, &n, max);
        if (cursor)
            snprintf(next, sizeof next, "%s", cursor);
        cursor = cursor ? next : NULL;
        json_decref(page);
        for (int i = 0; i < per_page; i++)
            pjt_task_new(&env, &member, project, "inserted meanwhile",
                         "\"due_date\":\"2031-06-01\"", added[(*nadded)++]);
        if (++pages > 200)
            fail_msg("the pages never end");
    } while (cursor);
    return n;
}

static void check_pages(const char *query, bool newer_seen)
{
    enum { ORIGINAL = 23, MAX = 400 };
    char project[37], original[ORIGINAL][37], extra[32];
    static char seen[MAX][37], added[MAX][37];
    size_t nadded = 0, n;

    pjt_project_new(&env, &owner, team, "pages", project);
    for (int i = 0; i < ORIGINAL; i++) {
        /* due dates repeat and some are missing: ties break on the id */
        if (i % 4)
            snprintf(extra, sizeof extra, "\"due_date\":\"2031-0%d-01\"", 1 + i % 3);
        else
            snprintf(extra, sizeof extra, "\"status\":\"todo\"");
        pjt_task_new(&env, &owner, project, "original", extra, original[i]);
    }
    n = page_while_inserting(project, query, 5, 2, seen, MAX, added, &nadded);
    for (int i = 0; i < ORIGINAL; i++)
        if (count_of((const char (*)[37])seen, n, original[i]) != 1)
            fail_msg("%s: original row %d seen %zu times", query, i,
                     count_of((const char (*)[37])seen, n, original[i]));
    for (size_t i = 0; i < n; i++)
        if (count_of((const char (*)[37])seen, n, seen[i]) != 1)
            fail_msg("%s: row %s seen twice", query, seen[i]);
    /* rows inserted behind the reader show up (ascending) or stay unseen
     * (descending): either way, never twice and never in place of another */
    size_t newer = 0;
    for (size_t i = 0; i < nadded; i++)
        newer += count_of((const char (*)[37])seen, n, added[i]);
    if (newer_seen)
        assert_true(newer > 0);
    else
        assert_int_equal(newer, 0);
    assert_int_equal(n, ORIGINAL + newer);
}

static void test_pagination_stable_under_inserts(void **state)
{
    check_pages("sort=created_at", true);
    check_pages("sort=created_at&order=desc", false);
    check_pages("sort=updated_at&order=desc", false);
    /* new rows are due 2031-06-01, after every original: asc sees some */
    check_pages("sort=due_date", true);
}

static void test_pagination_of_projects_and_comments(void **state)
{
    char t[37], ids[40][37], task[37], project[37], id[37];
    static char seen[100][37];
    size_t n = 0;
    char next[512] = "";
    const char *cursor = NULL;

    pjt_team_new(&env, &owner, t);
    for (int i = 0; i < 12; i++)
        pjt_project_new(&env, &owner, t, "paged", ids[i]);
    do {
        json_t *page = pjt_expect(&env, "GET", P("/api/v1/projects?team_id=%s&limit=5%s%s",
                                  t, cursor ? "&cursor=" : "", cursor ? next : ""),
                                  owner.access, NULL, NULL, 200);
        cursor = page_into(page, seen, &n, 100);
        if (cursor)
            snprintf(next, sizeof next, "%s", cursor);
        cursor = cursor ? next : NULL;
        json_decref(page);
        pjt_project_new(&env, &owner, t, "added", id);
    } while (cursor && n < 100);
    for (int i = 0; i < 12; i++)
        assert_int_equal(count_of((const char (*)[37])seen, n, ids[i]), 1);

    pjt_project_new(&env, &owner, team, "comments", project);
    pjt_task_new(&env, &owner, project, "talked about", NULL, task);
    for (int i = 0; i < 7; i++)
        pjt_comment_new(&env, i % 2 ? &owner : &member, task, "words", ids[i]);
    n = 0;
    json_t *page = pjt_expect(&env, "GET", P("/api/v1/tasks/%s/comments?limit=4", task),
                              owner.access, NULL, NULL, 200);
    snprintf(next, sizeof next, "%s", page_into(page, seen, &n, 100));
    json_decref(page);
    page = pjt_expect(&env, "GET", P("/api/v1/tasks/%s/comments?limit=4&cursor=%s", task,
                                     next), owner.access, NULL, NULL, 200);
    assert_null(page_into(page, seen, &n, 100));
    json_decref(page);
    assert_int_equal(n, 7);
    for (int i = 0; i < 7; i++)
        assert_string_equal(seen[i], ids[i]);   /* oldest first */
    /* a cursor of the comments is not one of the tasks */
    free(pjt_expect_problem(&env, "GET", P("/api/v1/projects/%s/tasks?cursor=%s", project,
                                           next), owner.access, NULL, NULL, 400,
                            "invalid_cursor"));
}

/* ---- malformed input ----------------------------------------------------- */

static char *repeat(const char *unit, int times)
{
    size_t len = strlen(unit);
    char *s = malloc(len * (size_t)times + 1);

    for (int i = 0; i < times; i++)
        memcpy(s + len * (size_t)i, unit, len);
    s[len * (size_t)times] = '\0';
    return s;
}

static void test_malformed_bodies(void **state)
{
    char project[37], task[37], nobody[37];
    char *long_title = repeat("x", 201), *max_title = repeat("\xc3\xa9", 200);
    char *long_text = repeat("y", 10001);

    pjt_project_new(&env, &owner, team, "hostile", project);
    pjt_task_new(&env, &owner, project, "target", NULL, task);
    pjt_uuid(nobody);
    const char *create = P("/api/v1/projects/%s/tasks", project);
    static const struct { const char *body, *code, *field; } cases[] = {
        { "{\"title\":5}", "invalid_field", "title" },
        { "{\"title\":[\"x\"]}", "invalid_field", "title" },
        { "{\"title\":null}", "invalid_field", "title" },
        { "{\"title\":\"\"}", "invalid_field", "title" },
        { "{\"title\":\"tab\\tin a name\"}", "invalid_field", "title" },
        { "{\"title\":\"bell\\u0007\"}", "invalid_field", "title" },
        { "{\"title\":\"x\",\"status\":\"nope\"}", "invalid_field", "status" },
        { "{\"title\":\"x\",\"status\":null}", "invalid_field", "status" },
        { "{\"title\":\"x\",\"status\":true}", "invalid_field", "status" },
        { "{\"title\":\"x\",\"due_date\":\"2023-02-29\"}", "invalid_field", "due_date" },
        { "{\"title\":\"x\",\"due_date\":20300101}", "invalid_field", "due_date" },
        { "{\"title\":\"x\",\"due_date\":\"2030-01-01T00:00:00Z\"}", "invalid_field",
          "due_date" },
        { "{\"title\":\"x\",\"assignee_id\":\"bob\"}", "invalid_field", "assignee_id" },
        { "{\"title\":\"x\",\"assignee_id\":7}", "invalid_field", "assignee_id" },
        { "{\"title\":\"x\",\"description\":{}}", "invalid_field", "description" },
        { "{\"title\":\"x\",\"priority\":1}", "unknown_field", "priority" },
        { "{\"title\":\"x\",\"project_id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\"}",
          "unknown_field", "project_id" },
        { "{\"title\":\"x\",\"team_id\":\"0f8fad5b-d9cb-469f-a165-70867728950e\"}",
          "unknown_field", "team_id" },
        { "{\"title\":\"x\",\"version\":9}", "unknown_field", "version" },
        { "{\"title\":\"x\",\"\\\"; DROP TABLE x\":1}", "unknown_field", "?; DROP TABLE x" },
        { "{\"description\":\"no title\"}", "missing_field", "title" },
        { "{}", "missing_field", "title" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_field_problem("POST", create, cases[i].body, NULL, cases[i].code,
                             cases[i].field);
    expect_field_problem("POST", create, P("{\"title\":\"%s\"}", long_title), NULL,
                         "invalid_field", "title");
    expect_field_problem("POST", create, P("{\"title\":\"x\",\"description\":\"%s\"}",
                                           long_text), NULL, "invalid_field", "description");
    /* 200 characters of two bytes each is a valid title */
    json_t *j = pjt_expect(&env, "POST", create, owner.access,
                           P("{\"title\":\"%s\"}", max_title), NULL, 201);
    assert_string_equal(pjt_str(j, "title"), max_title);
    json_decref(j);
    /* SQL in a title is a title */
    j = pjt_expect(&env, "POST", create, owner.access,
                   "{\"title\":\"Robert'); DROP TABLE projects.tasks;--\"}", NULL, 201);
    assert_string_equal(pjt_str(j, "title"), "Robert'); DROP TABLE projects.tasks;--");
    json_decref(j);

    /* not an object, not JSON, not UTF-8, NUL inside: the core says 400 invalid_body */
    static const struct { const char *body, *code; } shapes[] = {
        { "[1,2]", "invalid_body" }, { "[]", "invalid_body" },
        { "\"title\"", "invalid_body" }, { "null", "invalid_body" },
        { "{\"title\":", "invalid_body" }, { "title=x", "invalid_body" },
        { "{\"title\":\"\xff\xfe\"}", "invalid_body" },
        { "{\"title\":\"\xc0\xaf\"}", "invalid_body" },
        { "{\"title\":\"a\\u0000b\"}", "invalid_body" },
        { "{\"title\":\"\\ud800\"}", "invalid_body" },
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        free(pjt_expect_problem(&env, "POST", create, owner.access, shapes[i].body, NULL,
                                400, shapes[i].code));

    /* patches: the same rules, and at least one field */
    const char *tpath = P("/api/v1/tasks/%s", task);
    expect_field_problem("PATCH", tpath, "{\"title\":7}", "*", "invalid_field", "title");
    expect_field_problem("PATCH", tpath, "{\"created_by\":\"x\"}", "*", "unknown_field",
                         "created_by");
    expect_field_problem("PATCH", tpath, "{\"title\":null}", "*", "invalid_field", "title");
    free(pjt_expect_problem(&env, "PATCH", tpath, owner.access, "{}", "*", 400,
                            "invalid_body"));
    /* projects and comments */
    expect_field_problem("POST", "/api/v1/projects", "{\"team_id\":\"x\",\"name\":\"n\"}",
                         NULL, "invalid_field", "team_id");
    expect_field_problem("POST", "/api/v1/projects", "{\"name\":\"n\"}", NULL,
                         "missing_field", "team_id");
    expect_field_problem("POST", "/api/v1/projects",
                         P("{\"team_id\":\"%s\",\"name\":\"%s\"}", team, long_title), NULL,
                         "invalid_field", "name");
    expect_field_problem("POST", "/api/v1/projects",
                         P("{\"team_id\":\"%s\",\"name\":\"n\",\"owner\":1}", team), NULL,
                         "unknown_field", "owner");
    expect_field_problem("PATCH", P("/api/v1/projects/%s", project),
                         "{\"status\":\"deleted\"}", "*", "invalid_field", "status");
    expect_field_problem("POST", P("/api/v1/tasks/%s/comments", task), "{\"body\":\"\"}",
                         NULL, "invalid_field", "body");
    expect_field_problem("POST", P("/api/v1/tasks/%s/comments", task),
                         P("{\"body\":\"%s\"}", long_text), NULL, "invalid_field", "body");
    expect_field_problem("POST", P("/api/v1/tasks/%s/comments", task),
                         "{\"body\":\"b\",\"author_id\":\"x\"}", NULL, "unknown_field",
                         "author_id");
    /* nothing of that was written */
    assert_int_equal(db_count("SELECT count(*) FROM projects.tasks WHERE project_id = $1",
                              project), 3);
    free(long_title);
    free(max_title);
    free(long_text);
}

static void test_malformed_queries_and_ids(void **state)
{
    char project[37], task[37];
    char *long_q = repeat("q", 201);

    pjt_project_new(&env, &owner, team, "queries", project);
    pjt_task_new(&env, &owner, project, "t", NULL, task);
    static const struct { const char *query, *code, *field; } cases[] = {
        { "limit=0", "invalid_limit", "limit" }, { "limit=101", "invalid_limit", "limit" },
        { "limit=-1", "invalid_limit", "limit" }, { "limit=abc", "invalid_limit", "limit" },
        { "limit=1e2", "invalid_limit", "limit" }, { "limit=", "invalid_limit", "limit" },
        { "limit=0010", "invalid_limit", "limit" },
        { "sort=priority", "invalid_query", "sort" }, { "order=up", "invalid_query", "order" },
        { "status=archived", "invalid_query", "status" },
        { "assignee=bob", "invalid_query", "assignee" },
        { "assignee=%27%20OR%201%3D1", "invalid_query", "assignee" },
        { "due_before=2030-02-30", "invalid_query", "due_before" },
        { "due_after=tomorrow", "invalid_query", "due_after" },
        { "cursor=%25%25%25", "invalid_cursor", "cursor" },
        { "cursor=cHJvamVjdHN8MXx4", "invalid_cursor", "cursor" },
        /* crafted cursors: whatever they decode to must not reach SQL */
        /* "tasks.created_at.asc|999999999999999999|<uuid>": microseconds
         * past any timestamp (the old key) */
        { "cursor=dGFza3MuY3JlYXRlZF9hdC5hc2N8OTk5OTk5OTk5OTk5OTk"
          "5OTk5fDEyM2U0NTY3LWU4OWItNDJkMy1hNDU2LTQyNjYxNDE3NDAwMA", "invalid_cursor", "cursor" },
        /* "tasks.created_at.asc|99999-01-01T00:00:00Z|<uuid>": a huge year */
        { "cursor=dGFza3MuY3JlYXRlZF9hdC5hc2N8OTk5OTktMDEtMDFUMDA6M"
          "DA6MDBafDEyM2U0NTY3LWU4OWItNDJkMy1hNDU2LTQyNjYxNDE3NDAwMA", "invalid_cursor", "cursor" },
        /* "tasks.created_at.asc|2026-02-30T00:00:00Z|<uuid>": no such day */
        { "cursor=dGFza3MuY3JlYXRlZF9hdC5hc2N8MjAyNi0wMi0zMFQwMDow"
          "MDowMFp8MTIzZTQ1NjctZTg5Yi00MmQzLWE0NTYtNDI2NjE0MTc0MDAw", "invalid_cursor", "cursor" },
        /* "tasks.due_date.asc|2026-02-30|<uuid>": no such date */
        { "sort=due_date&cursor=dGFza3MuZHVlX2RhdGUuYXNjfDIwMjYtM"
          "DItMzB8MTIzZTQ1NjctZTg5Yi00MmQzLWE0NTYtNDI2NjE0MTc0MDAw", "invalid_cursor", "cursor" },
        /* "tasks.due_date.asc|tomorrow|<uuid>": not a date */
        { "sort=due_date&cursor=dGFza3MuZHVlX2RhdGUuYXNjfHRvbW9y"
          "cm93fDEyM2U0NTY3LWU4OWItNDJkMy1hNDU2LTQyNjYxNDE3NDAwMA", "invalid_cursor", "cursor" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_field_problem("GET", P("/api/v1/projects/%s/tasks?%s", project, cases[i].query),
                             NULL, NULL, cases[i].code, cases[i].field);
    expect_field_problem("GET", P("/api/v1/projects?q=%s", long_q), NULL, NULL,
                         "invalid_query", "q");
    expect_field_problem("GET", "/api/v1/projects?q=%FF%FE", NULL, NULL, "invalid_query", "q");
    expect_field_problem("GET", "/api/v1/projects?team_id=team-one", NULL, NULL,
                         "invalid_query", "team_id");
    expect_field_problem("GET", "/api/v1/projects?status=deleted", NULL, NULL,
                         "invalid_query", "status");
    /* "projects|99999-01-01T00:00:00Z|<uuid>": a huge year */
    expect_field_problem("GET", "/api/v1/projects?cursor=cHJvamVjdHN8OTk5OTktMDEtMDFUMDA6"
                         "MDA6MDBafDEyM2U0NTY3LWU4OWItNDJkMy1hNDU2LTQyNjYxNDE3NDAwMA",
                         NULL, NULL, "invalid_cursor", "cursor");
    /* a cursor made for one order does not page another */
    json_decref(pjt_expect(&env, "POST", P("/api/v1/projects/%s/tasks", project),
                           owner.access, "{\"title\":\"second\"}", NULL, 201));
    json_t *page = pjt_expect(&env, "GET", P("/api/v1/projects/%s/tasks?limit=1", project),
                      owner.access, NULL, NULL, 200);
    const char *cursor = pjt_str(page, "next_cursor");
    expect_field_problem("GET", P("/api/v1/projects/%s/tasks?limit=1&order=desc&cursor=%s",
                                  project, cursor), NULL, NULL, "invalid_cursor", "cursor");
    expect_field_problem("GET", P("/api/v1/projects?cursor=%s", cursor), NULL, NULL,
                         "invalid_cursor", "cursor");
    json_decref(page);
    /* ids that are not UUIDs name nothing: 404, never 500 */
    static const char *const bad_ids[] = {
        "not-a-uuid", "1", "%27%20OR%20%271%27%3D%271", "00000000-0000-0000-0000-00000000000g",
        "0f8fad5b-d9cb-469f-a165-70867728950e0",
    };
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        free(pjt_expect_problem(&env, "GET", P("/api/v1/projects/%s", bad_ids[i]),
                                owner.access, NULL, NULL, 404, "not_found"));
        free(pjt_expect_problem(&env, "GET", P("/api/v1/tasks/%s/comments", bad_ids[i]),
                                owner.access, NULL, NULL, 404, "not_found"));
        free(pjt_expect_problem(&env, "PATCH", P("/api/v1/comments/%s", bad_ids[i]),
                                owner.access, "{\"body\":\"x\"}", "*", 404, "not_found"));
    }
    free(long_q);
}

/* ---- events -------------------------------------------------------------- */

static json_t *one_event(const char *topic, const char *kind, const char *id)
{
    json_t *list = pjt_events(&env, topic, kind, id);

    if (json_array_size(list) != 1)
        fail_msg("expected one \"%s\" event for %s, found %zu", topic, id,
                 json_array_size(list));
    json_t *payload = json_incref(json_object_get(json_array_get(list, 0), "payload"));
    json_decref(list);
    return payload;
}

static void test_events(void **state)
{
    char project[37], task[37], comment[37];
    json_t *p;

    pjt_project_new(&env, &owner, team, "eventful", project);
    p = one_event("projects.project.created", "project", project);
    assert_string_equal(pjt_str(p, "team_id"), team);
    assert_string_equal(pjt_str(p, "actor_id"), owner.id);
    json_decref(p);

    pjt_task_new(&env, &member, project, "watched", NULL, task);
    p = one_event("projects.task.created", "task", task);
    assert_string_equal(pjt_str(p, "actor_id"), member.id);
    assert_string_equal(pjt_str(p, "team_id"), team);
    assert_string_equal(pjt_str(json_object_get(p, "task"), "title"), "watched");
    assert_null(json_object_get(p, "changed"));
    json_decref(p);

    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/tasks/%s", task), owner.access,
                           P("{\"status\":\"done\",\"assignee_id\":\"%s\"}", member.id),
                           "\"1\"", 200));
    /* a refused write emits nothing */
    free(pjt_expect_problem(&env, "PATCH", P("/api/v1/tasks/%s", task), owner.access,
                            "{\"title\":\"stale\"}", "\"1\"", 412, "precondition_failed"));
    p = one_event("projects.task.updated", "task", task);
    json_t *task_row = json_object_get(p, "task");
    assert_string_equal(pjt_str(task_row, "status"), "done");
    assert_string_equal(pjt_str(task_row, "assignee_id"), member.id);
    assert_int_equal(json_integer_value(json_object_get(task_row, "version")), 2);
    json_t *changed = json_object_get(p, "changed");
    assert_int_equal(json_array_size(changed), 2);
    bool status = false, assignee = false;
    for (size_t i = 0; i < json_array_size(changed); i++) {
        status |= strcmp(json_string_value(json_array_get(changed, i)), "status") == 0;
        assignee |= strcmp(json_string_value(json_array_get(changed, i)), "assignee_id") == 0;
    }
    assert_true(status && assignee);
    json_decref(p);

    pjt_comment_new(&env, &member, task, "noted", comment);
    json_decref(one_event("projects.comment.created", "comment", comment));
    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/comments/%s", comment), member.access,
                           "{\"body\":\"noted twice\"}", "\"1\"", 200));
    p = one_event("projects.comment.updated", "comment", comment);
    assert_string_equal(pjt_str(json_object_get(p, "comment"), "body"), "noted twice");
    json_decref(p);
    json_decref(pjt_expect(&env, "DELETE", P("/api/v1/comments/%s", comment), owner.access,
                           NULL, NULL, 204));
    p = one_event("projects.comment.deleted", "comment", comment);
    assert_string_equal(pjt_str(p, "actor_id"), owner.id);
    json_decref(p);

    json_decref(pjt_expect(&env, "DELETE", P("/api/v1/tasks/%s", task), owner.access, NULL,
                           NULL, 204));
    p = one_event("projects.task.deleted", "task", task);
    assert_string_equal(pjt_str(json_object_get(p, "task"), "title"), "watched");
    json_decref(p);

    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/projects/%s", project), owner.access,
                           "{\"name\":\"eventful!\"}", "\"1\"", 200));
    json_decref(one_event("projects.project.updated", "project", project));
    for (int i = 0; i < 2; i++)   /* the second archive changes nothing: no event */
        json_decref(pjt_expect(&env, "DELETE", P("/api/v1/projects/%s", project),
                               owner.access, NULL, NULL, 200));
    p = one_event("projects.project.archived", "project", project);
    assert_string_equal(pjt_str(json_object_get(p, "project"), "status"), "archived");
    json_decref(p);
    /* a write refused for its role emits nothing either */
    free(pjt_expect_problem(&env, "DELETE", P("/api/v1/projects/%s", project), member.access,
                            NULL, NULL, 403, "forbidden"));
    free(pjt_expect_problem(&env, "PATCH", P("/api/v1/projects/%s", project), member.access,
                            "{\"status\":\"active\"}", "*", 403, "forbidden"));
    json_decref(one_event("projects.project.updated", "project", project));   /* still one */
}

/* ---- archiving and cascades ---------------------------------------------- */

static void test_archive(void **state)
{
    char project[37], task[37], comment[37];
    const char *ppath;
    json_t *j;

    pjt_project_new(&env, &owner, team, "to archive", project);
    pjt_task_new(&env, &owner, project, "frozen", NULL, task);
    pjt_comment_new(&env, &owner, task, "before", comment);
    ppath = P("/api/v1/projects/%s", project);
    j = pjt_expect(&env, "DELETE", ppath, owner.access, NULL, NULL, 200);
    assert_string_equal(pjt_str(j, "status"), "archived");
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
    json_decref(j);
    /* again: the same answer, nothing changed */
    j = pjt_expect(&env, "DELETE", ppath, owner.access, NULL, NULL, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "version")), 2);
    json_decref(j);
    /* readable, but read-only below */
    json_decref(pjt_expect(&env, "GET", P("/api/v1/tasks/%s", task), member.access, NULL,
                           NULL, 200));
    json_decref(pjt_expect(&env, "GET", P("/api/v1/projects/%s/tasks", project),
                           member.access, NULL, NULL, 200));
    free(pjt_expect_problem(&env, "POST", P("/api/v1/projects/%s/tasks", project),
                            owner.access, "{\"title\":\"late\"}", NULL, 409,
                            "project_archived"));
    free(pjt_expect_problem(&env, "PATCH", P("/api/v1/tasks/%s", task), owner.access,
                            "{\"status\":\"done\"}", "\"1\"", 409, "project_archived"));
    free(pjt_expect_problem(&env, "DELETE", P("/api/v1/tasks/%s", task), owner.access,
                            NULL, NULL, 409, "project_archived"));
    free(pjt_expect_problem(&env, "POST", P("/api/v1/tasks/%s/comments", task),
                            owner.access, "{\"body\":\"late\"}", NULL, 409,
                            "project_archived"));
    free(pjt_expect_problem(&env, "PATCH", P("/api/v1/comments/%s", comment), owner.access,
                            "{\"body\":\"late\"}", "\"1\"", 409, "project_archived"));
    /* the project itself can still be renamed and restored */
    json_decref(pjt_expect(&env, "PATCH", ppath, owner.access,
                           "{\"status\":\"active\"}", "\"2\"", 200));
    json_decref(pjt_expect(&env, "PATCH", P("/api/v1/tasks/%s", task), owner.access,
                           "{\"status\":\"done\"}", "\"1\"", 200));
}

static void test_cascades(void **state)
{
    char t[37], project[37], task[37], comment[37];

    /* deleting a task deletes its comments */
    pjt_project_new(&env, &owner, team, "cascade", project);
    pjt_task_new(&env, &owner, project, "doomed", NULL, task);
    pjt_comment_new(&env, &owner, task, "gone with it", comment);
    json_decref(pjt_expect(&env, "DELETE", P("/api/v1/tasks/%s", task), owner.access, NULL,
                           NULL, 204));
    assert_int_equal(db_count("SELECT count(*) FROM projects.comments WHERE id = $1",
                              comment), 0);
    free(pjt_expect_problem(&env, "GET", P("/api/v1/tasks/%s/comments", task), owner.access,
                            NULL, NULL, 404, "not_found"));
    /* deleting a team deletes its projects, their tasks and comments */
    pjt_team_new(&env, &owner, t);
    pjt_project_new(&env, &owner, t, "with the team", project);
    pjt_task_new(&env, &owner, project, "also", NULL, task);
    pjt_comment_new(&env, &owner, task, "and this", comment);
    json_decref(pjt_expect(&env, "DELETE", P("/api/v1/teams/%s", t), owner.access, NULL,
                           NULL, 204));
    assert_int_equal(db_count("SELECT count(*) FROM projects.projects WHERE team_id = $1", t),
                     0);
    assert_int_equal(db_count("SELECT count(*) FROM projects.tasks WHERE team_id = $1", t), 0);
    assert_int_equal(db_count("SELECT count(*) FROM projects.comments WHERE team_id = $1", t),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_project_shape_and_etags),
        cmocka_unit_test(test_task_and_comment_shapes),
        cmocka_unit_test(test_lost_update_prevented),
        cmocka_unit_test(test_concurrent_patch_one_wins),
        cmocka_unit_test(test_project_search_and_status),
        cmocka_unit_test(test_task_filters_and_sorts),
        cmocka_unit_test(test_pagination_stable_under_inserts),
        cmocka_unit_test(test_pagination_of_projects_and_comments),
        cmocka_unit_test(test_malformed_bodies),
        cmocka_unit_test(test_malformed_queries_and_ids),
        cmocka_unit_test(test_events),
        cmocka_unit_test(test_archive),
        cmocka_unit_test(test_cascades),
    };

    plxt_require_postgres("test_projects_api");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
