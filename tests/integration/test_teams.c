/*
 * test_teams.c - teams as their members see them: each role (owner, admin,
 * member, viewer, and someone outside) against each team action, another
 * team's things answering 404, the last-owner rule (also under concurrent
 * demotions), pagination, the audit rows, plx_team_role through a module,
 * and hostile input answering 400, never 500
 *
 * One plexusd with the authz_probe module on a database of its own; every
 * test makes its own teams, so tests do not depend on each other.
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
#include "identity_client.h"
#include "pgtest.h"

static plxt_server_t *srv;
static char dbname[64];
static char *db;

/* the crew of the group; each test makes fresh teams with them */
enum { OWNER, ADMIN, MEMBER, VIEWER, OUTSIDER, NCREW };
static plxt_user_t crew[NCREW];
static const char *const crew_role[NCREW] = { "owner", "admin", "member", "viewer", NULL };

static int group_setup(void **state)
{
    static const plxt_module_t mods[] = { { .name = "authz_probe" }, { 0 } };
    char cfg[2048];
    size_t n;

    (void)state;
    if (!(db = pgtest_db_create(dbname)))
        return -1;
    plxt_identity_config(cfg, sizeof cfg, 0);
    n = strlen(cfg);
    snprintf(cfg + n, sizeof cfg - n, "[server]\nthreads = 32\n"
             "[ratelimit]\ndefault = 100000/60s\nauth = 100000/60s\n");
    plxt_server_opts_t o = { .db_url = db, .modules = mods, .config = cfg };
    if (!(srv = plxt_server_start(&o)))
        return -1;
    for (int i = 0; i < NCREW; i++)
        plxt_user_new(srv, db, &crew[i]);
    return 0;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    (void)state;
    pgtest_db_drop(dbname);
    free(db);
    return rc == 0 ? 0 : -1;
}

/* ---- helpers ------------------------------------------------------------------ */

/* one call; fails unless the status is `status`; the JSON body (or NULL) */
/* a problem+json answer with this status and code */
static void expect_problem(const char *method, const char *path, const char *token,
                           const char *body, long status, const char *code)
{
    json_t *j = plxt_expect(srv, method, path, token, body, status);
    const char *found = json_string_value(json_object_get(j, "code"));

    if (!found || strcmp(found, code) != 0)
        fail_msg("%s %s: expected code \"%s\", found \"%s\"", method, path, code,
                 found ? found : "(none)");
    json_decref(j);
}

/* a path or body from a format (harness.h) */
#define P plxt_fmt

static void team_new(const plxt_user_t *owner, const char *name, char id[37])
{
    char body[256];
    json_t *j;

    snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
    j = plxt_expect(srv, "POST", "/api/v1/teams", owner->access, body, 201);
    snprintf(id, 37, "%s", plxt_str(j, "id"));
    assert_string_equal(plxt_str(j, "role"), "owner");
    assert_string_equal(plxt_str(j, "name"), name);
    json_decref(j);
}

static void member_add(const char *team, const plxt_user_t *by,
                       const plxt_user_t *who, const char *role)
{
    char body[512];
    json_t *j;

    snprintf(body, sizeof body, "{\"email\":\"%s\",\"role\":\"%s\"}", who->email, role);
    j = plxt_expect(srv, "POST", P("/api/v1/teams/%s/members", team), by->access, body, 201);
    assert_string_equal(plxt_str(j, "user_id"), who->id);
    assert_string_equal(plxt_str(j, "role"), role);
    json_decref(j);
}

/* a team owned by crew[OWNER] with admin, member and viewer in their roles */
static void crew_team(char id[37])
{
    team_new(&crew[OWNER], "crew", id);
    for (int i = ADMIN; i <= VIEWER; i++)
        member_add(id, &crew[OWNER], &crew[i], crew_role[i]);
}

static long owner_count(const char *team)
{
    char v[32];
    const char *p[1] = { team };

    plxt_db_value(db, "SELECT count(*) FROM plexus.team_members WHERE team_id = $1 "
                  "AND role = 'owner'", 1, p, v, sizeof v);
    return atol(v);
}

static long audit_count(const char *action, const char *team, const char *user)
{
    char v[32];
    const char *p[3] = { action, team, user };

    plxt_db_value(db, "SELECT count(*) FROM plexus.audit_log WHERE action = $1 "
                  "AND target_type = 'team' AND target_id = $2 "
                  "AND details->>'user_id' = $3", 3, p, v, sizeof v);
    return atol(v);
}

/* ---- create, read, list ---------------------------------------------------------- */

static void test_create_get_list(void **state)
{
    char id[37];
    json_t *j, *items;
    bool found = false;

    (void)state;
    team_new(&crew[OWNER], "Ops", id);
    j = plxt_expect(srv, "GET", P("/api/v1/teams/%s", id), crew[OWNER].access, NULL, 200);
    assert_string_equal(plxt_str(j, "id"), id);
    assert_string_equal(plxt_str(j, "role"), "owner");
    assert_non_null(json_object_get(j, "created_at"));
    json_decref(j);

    j = plxt_expect(srv, "GET", "/api/v1/teams?limit=200", crew[OWNER].access, NULL, 200);
    items = json_object_get(j, "items");
    assert_true(json_is_array(items));
    for (size_t i = 0; i < json_array_size(items); i++) {
        json_t *t = json_array_get(items, i);
        if (strcmp(plxt_str(t, "id"), id) == 0) {
            found = true;
            assert_string_equal(plxt_str(t, "role"), "owner");
        }
    }
    assert_true(found);
    json_decref(j);

    /* the members list shows the creator as owner */
    j = plxt_expect(srv, "GET", P("/api/v1/teams/%s/members", id), crew[OWNER].access, NULL, 200);
    items = json_object_get(j, "items");
    assert_int_equal(json_array_size(items), 1);
    assert_string_equal(plxt_str(json_array_get(items, 0), "user_id"), crew[OWNER].id);
    assert_string_equal(plxt_str(json_array_get(items, 0), "role"), "owner");
    json_decref(j);
}

static void test_list_shows_my_role_only_my_teams(void **state)
{
    char id[37];
    json_t *j, *items;

    (void)state;
    crew_team(id);
    for (int who = OWNER; who < NCREW; who++) {
        bool found = false;
        j = plxt_expect(srv, "GET", "/api/v1/teams?limit=200", crew[who].access, NULL, 200);
        items = json_object_get(j, "items");
        for (size_t i = 0; i < json_array_size(items); i++) {
            json_t *t = json_array_get(items, i);
            if (strcmp(plxt_str(t, "id"), id) != 0)
                continue;
            found = true;
            assert_string_equal(plxt_str(t, "role"), crew_role[who]);
        }
        assert_int_equal(found, who != OUTSIDER);
        json_decref(j);
    }
}

/* ---- each role against each action ---------------------------------------------- */

static void test_read_by_role(void **state)
{
    char id[37];

    (void)state;
    crew_team(id);
    for (int who = OWNER; who < NCREW; who++) {
        long want = who == OUTSIDER ? 404 : 200;
        plxt_expect_status(srv, "GET", P("/api/v1/teams/%s", id), crew[who].access, NULL, want);
        plxt_expect_status(srv, "GET", P("/api/v1/teams/%s/members", id), crew[who].access, NULL, want);
        /* plx_team_role through a module says the same */
        json_t *j = plxt_expect(srv, "GET", P("/api/v1/probe/teams/%s/role", id), crew[who].access,
                           NULL, want);
        if (who != OUTSIDER) {
            assert_string_equal(plxt_str(j, "role"), crew_role[who]);
            assert_int_equal(json_is_true(json_object_get(j, "at_least_member")),
                             who <= MEMBER);
        }
        json_decref(j);
    }
}

static void test_rename_by_role(void **state)
{
    static const long want[NCREW] = { 200, 200, 403, 403, 404 };
    char id[37];

    (void)state;
    crew_team(id);
    for (int who = OWNER; who < NCREW; who++) {
        char name[32], body[64];
        snprintf(name, sizeof name, "renamed by %d", who);
        snprintf(body, sizeof body, "{\"name\":\"%s\"}", name);
        json_t *j = plxt_expect(srv, "PATCH", P("/api/v1/teams/%s", id), crew[who].access, body,
                           want[who]);
        if (want[who] == 200) {
            assert_string_equal(plxt_str(j, "name"), name);
            assert_string_equal(plxt_str(j, "role"), crew_role[who]);
        }
        json_decref(j);
    }
    json_t *j = plxt_expect(srv, "GET", P("/api/v1/teams/%s", id), crew[VIEWER].access, NULL, 200);
    assert_string_equal(plxt_str(j, "name"), "renamed by 1");
    json_decref(j);
}

static void test_add_member_by_role(void **state)
{
    static const long want[NCREW] = { 201, 201, 403, 403, 404 };
    char id[37], body[512];
    plxt_user_t fresh[NCREW];

    (void)state;
    crew_team(id);
    for (int who = OWNER; who < NCREW; who++) {
        plxt_user_new(srv, db, &fresh[who]);
        snprintf(body, sizeof body, "{\"email\":\"%s\",\"role\":\"member\"}",
                 fresh[who].email);
        plxt_expect_status(srv, "POST", P("/api/v1/teams/%s/members", id), crew[who].access,
                      body, want[who]);
    }
    /* only an owner makes owners */
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"role\":\"owner\"}", fresh[MEMBER].email);
    expect_problem("POST", P("/api/v1/teams/%s/members", id), crew[ADMIN].access, body,
                   403, "forbidden");
    member_add(id, &crew[OWNER], &fresh[MEMBER], "owner");
    assert_int_equal(owner_count(id), 2);
    /* again: already a member; someone unknown: user_not_found */
    expect_problem("POST", P("/api/v1/teams/%s/members", id), crew[OWNER].access, body,
                   409, "already_member");
    expect_problem("POST", P("/api/v1/teams/%s/members", id), crew[OWNER].access,
                   "{\"email\":\"nobody-at-all@example.test\",\"role\":\"viewer\"}",
                   404, "user_not_found");
    /* the email is matched without regard to case */
    char upper[160];
    snprintf(upper, sizeof upper, "%s", fresh[VIEWER].email);
    for (char *p = upper; *p; p++)
        *p = (*p >= 'a' && *p <= 'z') ? (char)(*p - 32) : *p;
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"role\":\"viewer\"}", upper);
    plxt_expect_status(srv, "POST", P("/api/v1/teams/%s/members", id), crew[ADMIN].access,
                  body, 201);
    assert_int_equal(audit_count("team.member_added", id, fresh[OWNER].id), 1);
}

static void test_change_role_by_role(void **state)
{
    char id[37];
    plxt_user_t target;

    (void)state;
    crew_team(id);
    plxt_user_new(srv, db, &target);
    member_add(id, &crew[OWNER], &target, "viewer");
    const char *path = P("/api/v1/teams/%s/members/%s", id, target.id);
    char saved[512];
    snprintf(saved, sizeof saved, "%s", path);

    plxt_expect_status(srv, "PATCH", saved, crew[MEMBER].access, "{\"role\":\"member\"}", 403);
    plxt_expect_status(srv, "PATCH", saved, crew[VIEWER].access, "{\"role\":\"member\"}", 403);
    plxt_expect_status(srv, "PATCH", saved, crew[OUTSIDER].access, "{\"role\":\"member\"}", 404);
    json_t *j = plxt_expect(srv, "PATCH", saved, crew[ADMIN].access, "{\"role\":\"member\"}", 200);
    assert_string_equal(plxt_str(j, "role"), "member");
    assert_string_equal(plxt_str(j, "user_id"), target.id);
    json_decref(j);
    plxt_expect_status(srv, "PATCH", saved, crew[OWNER].access, "{\"role\":\"admin\"}", 200);
    assert_int_equal(audit_count("team.role_changed", id, target.id), 2);

    /* owner: only an owner grants it or takes it away */
    expect_problem("PATCH", saved, crew[ADMIN].access, "{\"role\":\"owner\"}", 403,
                   "forbidden");
    plxt_expect_status(srv, "PATCH", saved, crew[OWNER].access, "{\"role\":\"owner\"}", 200);
    expect_problem("PATCH", saved, crew[ADMIN].access, "{\"role\":\"viewer\"}", 403,
                   "forbidden");
    expect_problem("PATCH", P("/api/v1/teams/%s/members/%s", id, crew[OWNER].id),
                   crew[ADMIN].access, "{\"role\":\"member\"}", 403, "forbidden");
    /* someone who is not a member */
    expect_problem("PATCH", P("/api/v1/teams/%s/members/%s", id, crew[OUTSIDER].id),
                   crew[OWNER].access, "{\"role\":\"member\"}", 404, "not_found");
    /* the new role shows through a module */
    j = plxt_expect(srv, "GET", P("/api/v1/probe/teams/%s/role", id), target.access, NULL, 200);
    assert_string_equal(plxt_str(j, "role"), "owner");
    json_decref(j);
}

static void test_remove_member_by_role(void **state)
{
    char id[37];
    plxt_user_t t[3];

    (void)state;
    crew_team(id);
    for (int i = 0; i < 3; i++) {
        plxt_user_new(srv, db, &t[i]);
        member_add(id, &crew[OWNER], &t[i], "member");
    }
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s/members/%s", id, t[0].id),
                  crew[VIEWER].access, NULL, 403);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s/members/%s", id, t[0].id),
                  crew[MEMBER].access, NULL, 403);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s/members/%s", id, t[0].id),
                  crew[OUTSIDER].access, NULL, 404);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s/members/%s", id, t[0].id),
                  crew[ADMIN].access, NULL, 204);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s/members/%s", id, t[1].id),
                  crew[OWNER].access, NULL, 204);
    /* gone: a second removal finds nobody */
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s/members/%s", id, t[1].id),
                  crew[OWNER].access, NULL, 404);
    /* oneself, whatever the role */
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s/members/%s", id, t[2].id),
                  t[2].access, NULL, 204);
    plxt_expect_status(srv, "GET", P("/api/v1/teams/%s", id), t[2].access, NULL, 404);
    /* an admin does not remove an owner */
    expect_problem("DELETE", P("/api/v1/teams/%s/members/%s", id, crew[OWNER].id),
                   crew[ADMIN].access, NULL, 403, "forbidden");
    assert_int_equal(audit_count("team.member_removed", id, t[0].id), 1);
    assert_int_equal(audit_count("team.member_removed", id, t[2].id), 1);
}

static void test_leave(void **state)
{
    char id[37];

    (void)state;
    crew_team(id);
    plxt_expect_status(srv, "POST", P("/api/v1/teams/%s/leave", id), crew[OUTSIDER].access, NULL, 404);
    for (int who = VIEWER; who >= ADMIN; who--) {
        plxt_expect_status(srv, "POST", P("/api/v1/teams/%s/leave", id), crew[who].access, NULL, 204);
        plxt_expect_status(srv, "GET", P("/api/v1/teams/%s", id), crew[who].access, NULL, 404);
        plxt_expect_status(srv, "POST", P("/api/v1/teams/%s/leave", id), crew[who].access, NULL, 404);
    }
    expect_problem("POST", P("/api/v1/teams/%s/leave", id), crew[OWNER].access, NULL,
                   409, "last_owner");
}

static void test_delete_team_by_role(void **state)
{
    char id[37];

    (void)state;
    crew_team(id);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s", id), crew[OUTSIDER].access, NULL, 404);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s", id), crew[VIEWER].access, NULL, 403);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s", id), crew[MEMBER].access, NULL, 403);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s", id), crew[ADMIN].access, NULL, 403);
    plxt_expect_status(srv, "DELETE", P("/api/v1/teams/%s", id), crew[OWNER].access, NULL, 204);
    for (int who = OWNER; who < NCREW; who++) {
        plxt_expect_status(srv, "GET", P("/api/v1/teams/%s", id), crew[who].access, NULL, 404);
        plxt_expect_status(srv, "GET", P("/api/v1/teams/%s/members", id), crew[who].access, NULL, 404);
    }
    const char *p[1] = { id };
    assert_int_equal(plxt_db_exec(db, "SELECT 1 FROM plexus.team_members WHERE team_id = $1",
                                  1, p), 0);
}

/* ---- another team's things --------------------------------------------------------- */

static void test_other_team_is_not_found(void **state)
{
    static const char *const ids[] = {
        NULL,                                       /* the real team */
        "0b7e7c52-3f0e-4c43-9f5e-1a1f3a1b2c3d",     /* a UUID nobody has */
        "not-a-uuid", "1%27%20OR%20%271%27%3D%271", /* ' OR '1'='1 */
    };
    char team[37];

    (void)state;
    crew_team(team);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const char *id = ids[i] ? ids[i] : team;
        const char *tok = crew[OUTSIDER].access;
        expect_problem("GET", P("/api/v1/teams/%s", id), tok, NULL, 404, "not_found");
        expect_problem("PATCH", P("/api/v1/teams/%s", id), tok, "{\"name\":\"x\"}", 404,
                       "not_found");
        expect_problem("DELETE", P("/api/v1/teams/%s", id), tok, NULL, 404, "not_found");
        expect_problem("GET", P("/api/v1/teams/%s/members", id), tok, NULL, 404, "not_found");
        expect_problem("POST", P("/api/v1/teams/%s/members", id), tok,
                       "{\"email\":\"a@b.test\",\"role\":\"member\"}", 404, "not_found");
        expect_problem("PATCH", P("/api/v1/teams/%s/members/%s", id, crew[MEMBER].id), tok,
                       "{\"role\":\"viewer\"}", 404, "not_found");
        expect_problem("DELETE", P("/api/v1/teams/%s/members/%s", id, crew[MEMBER].id), tok,
                       NULL, 404, "not_found");
        expect_problem("POST", P("/api/v1/teams/%s/leave", id), tok, NULL, 404, "not_found");
        expect_problem("GET", P("/api/v1/probe/teams/%s/role", id), tok, NULL, 404,
                       "not_found");
    }
    /* and the members of the real team are untouched */
    json_t *j = plxt_expect(srv, "GET", P("/api/v1/teams/%s/members", team), crew[OWNER].access,
                       NULL, 200);
    assert_int_equal(json_array_size(json_object_get(j, "items")), 4);
    json_decref(j);
    /* anonymous: who are you? */
    plxt_expect_status(srv, "GET", P("/api/v1/teams/%s", team), NULL, NULL, 401);
    plxt_expect_status(srv, "GET", "/api/v1/teams", NULL, NULL, 401);
}

/* ---- the last owner ---------------------------------------------------------------- */

static void test_last_owner(void **state)
{
    char id[37];
    const char *self;

    (void)state;
    crew_team(id);
    self = P("/api/v1/teams/%s/members/%s", id, crew[OWNER].id);
    char path[512];
    snprintf(path, sizeof path, "%s", self);
    expect_problem("PATCH", path, crew[OWNER].access, "{\"role\":\"admin\"}", 409,
                   "last_owner");
    expect_problem("DELETE", path, crew[OWNER].access, NULL, 409, "last_owner");
    expect_problem("POST", P("/api/v1/teams/%s/leave", id), crew[OWNER].access, NULL,
                   409, "last_owner");
    /* still the owner; "owner" to "owner" is no demotion */
    plxt_expect_status(srv, "PATCH", path, crew[OWNER].access, "{\"role\":\"owner\"}", 200);
    assert_int_equal(owner_count(id), 1);

    /* with a second owner the first may step down, and then the second is last */
    plxt_expect_status(srv, "PATCH", P("/api/v1/teams/%s/members/%s", id, crew[ADMIN].id),
                  crew[OWNER].access, "{\"role\":\"owner\"}", 200);
    plxt_expect_status(srv, "PATCH", path, crew[OWNER].access, "{\"role\":\"admin\"}", 200);
    assert_int_equal(owner_count(id), 1);
    expect_problem("POST", P("/api/v1/teams/%s/leave", id), crew[ADMIN].access, NULL,
                   409, "last_owner");
    expect_problem("DELETE", P("/api/v1/teams/%s/members/%s", id, crew[ADMIN].id),
                   crew[ADMIN].access, NULL, 409, "last_owner");
    /* the former owner, now admin, cannot take it back */
    plxt_expect_status(srv, "PATCH", path, crew[OWNER].access, "{\"role\":\"owner\"}", 403);
}

typedef struct demotion {
    pthread_barrier_t *go;
    char url[512];
    char auth[4200];
    const char *body;
    long status;
} demotion_t;

static void *demote(void *arg)
{
    demotion_t *d = arg;
    const char *h[] = { d->auth, "Content-Type: application/json", NULL };
    plxt_resp_t resp;

    pthread_barrier_wait(d->go);
    d->status = plxt_http("PATCH", d->url, h, d->body, &resp) == 0 ? resp.status : 0;
    plxt_resp_free(&resp);
    return NULL;
}

/* two owners demote at the same instant: one wins, the team keeps an owner */
static void race(const char *team, const plxt_user_t *a, const char *a_target,
                 const plxt_user_t *b, const char *b_target, long st[2])
{
    pthread_barrier_t go;
    demotion_t d[2];
    pthread_t t[2];

    pthread_barrier_init(&go, NULL, 2);
    for (int i = 0; i < 2; i++) {
        const plxt_user_t *u = i ? b : a;
        d[i] = (demotion_t){ .go = &go, .body = "{\"role\":\"admin\"}" };
        snprintf(d[i].url, sizeof d[i].url, "%s/api/v1/teams/%s/members/%s", srv->url,
                 team, i ? b_target : a_target);
        plxt_bearer(u->access, d[i].auth, sizeof d[i].auth);
        assert_int_equal(pthread_create(&t[i], NULL, demote, &d[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        st[i] = d[i].status;
    }
    pthread_barrier_destroy(&go);
}

static void test_concurrent_demotion(void **state)
{
    (void)state;
    for (int round = 0; round < 8; round++) {
        char id[37];
        long st[2];
        bool cross = round % 2;   /* each demotes the other, or each themselves */

        team_new(&crew[OWNER], "race", id);
        member_add(id, &crew[OWNER], &crew[ADMIN], "owner");
        race(id, &crew[OWNER], cross ? crew[ADMIN].id : crew[OWNER].id,
             &crew[ADMIN], cross ? crew[OWNER].id : crew[ADMIN].id, st);
        long lose = cross ? 403 : 409;
        if (!((st[0] == 200 && st[1] == lose) || (st[0] == lose && st[1] == 200)))
            fail_msg("round %d (%s): expected one 200 and one %ld, found %ld and %ld",
                     round, cross ? "each other" : "themselves", lose, st[0], st[1]);
        assert_int_equal(owner_count(id), 1);
    }
}

/* ---- pagination ------------------------------------------------------------------------ */

static void test_pagination(void **state)
{
    plxt_user_t u;
    char ids[5][37], seen[8][37];
    int nseen = 0;
    char cursor[256] = "";

    (void)state;
    plxt_user_new(srv, db, &u);
    for (int i = 0; i < 5; i++)
        team_new(&u, "page", ids[i]);
    for (int page = 0; page < 4; page++) {
        json_t *j = plxt_expect(srv, "GET", cursor[0] ? P("/api/v1/teams?limit=2&cursor=%s", cursor)
                                            : "/api/v1/teams?limit=2",
                           u.access, NULL, 200);
        json_t *items = json_object_get(j, "items");
        json_t *next = json_object_get(j, "next_cursor");
        assert_true(json_array_size(items) <= 2);
        for (size_t i = 0; i < json_array_size(items); i++)
            snprintf(seen[nseen++], 37, "%s", plxt_str(json_array_get(items, i), "id"));
        if (json_is_null(next)) {
            json_decref(j);
            break;
        }
        snprintf(cursor, sizeof cursor, "%s", json_string_value(next));
        json_decref(j);
        /* a team created meanwhile neither repeats nor shifts a page */
        if (page == 0) {
            char late[37];
            team_new(&u, "late", late);
        }
    }
    assert_int_equal(nseen, 6);
    for (int i = 0; i < 5; i++)
        assert_string_equal(seen[i], ids[i]);   /* oldest first */
    for (int i = 0; i < nseen; i++) {
        for (int k = i + 1; k < nseen; k++)
            assert_string_not_equal(seen[i], seen[k]);
    }
}

/* ---- hostile input --------------------------------------------------------------------- */

static void test_bad_input_is_400(void **state)
{
    static const char *const bad_names[] = {
        "{}", "[]", "\"name\"", "{\"name\":5}", "{\"name\":\"\"}", "{\"name\":null}",
        "{\"name\":\"a\\u0000b\"}", "{\"name\":\"line\\nbreak\"}",
        "{\"name\":\"\xff\xfe\"}", "{\"name\":\"\xc3\x28\"}", "{name}",
        "{\"name\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",   /* 101 bytes */
    };
    static const char *const bad_members[] = {
        "{\"email\":\"x@y.test\"}", "{\"role\":\"member\"}",
        "{\"email\":\"x@y.test\",\"role\":\"superuser\"}",
        "{\"email\":\"x@y.test\",\"role\":\"OWNER\"}",
        "{\"email\":\"x@y.test\",\"role\":1}", "{\"email\":[],\"role\":\"member\"}",
        "{\"email\":\"\xc3\x28@y.test\",\"role\":\"member\"}",
    };
    static const char *const bad_queries[] = {
        "limit=0", "limit=201", "limit=-1", "limit=abc", "limit=1e3", "limit=%FF",
        "cursor=%FF%FE", "cursor=%27%20OR%201%3D1--", "cursor=AAAA", "cursor=",
        /* crafted cursors: whatever they decode to must not reach SQL.
         * "9223372036854775807,<uuid>" and "-9223372036854775808,<uuid>":
         * microseconds past any timestamp */
        "cursor=OTIyMzM3MjAzNjg1NDc3NTgwNywxMjNlNDU2Ny1lODliLTQyZDMtYTQ1Ni00MjY2MTQxNzQwMDA",
        "cursor=LTkyMjMzNzIwMzY4NTQ3NzU4MDgsMTIzZTQ1NjctZTg5Yi00MmQzLWE0NTYtNDI2NjE0MTc0MDAw",
        /* "teams|99999-01-01T00:00:00.000000Z|<uuid>": a huge year */
        "cursor=dGVhbXN8OTk5OTktMDEtMDFUMDA6MDA6MDAuMDAwMDAwWnwxMjNlNDU2Ny1lODliLTQyZDMtYTQ1Ni00MjY2MTQxNzQwMDA",
        /* "teams|2026-13-45T25:61:61.000000Z|<uuid>": no such time */
        "cursor=dGVhbXN8MjAyNi0xMy00NVQyNTo2MTo2MS4wMDAwMDBafDEyM2U0NTY3LWU4OWItNDJkMy1hNDU2LTQyNjYxNDE3NDAwMA",
        /* "members|0000-01-01T00:00:00Z|<uuid>": year zero */
        "cursor=bWVtYmVyc3wwMDAwLTAxLTAxVDAwOjAwOjAwWnwxMjNlNDU2Ny1lODliLTQyZDMtYTQ1Ni00MjY2MTQxNzQwMDA",
        /* "teams|2026-01-01T00:00:00Z|<uuid>'--": SQL after the id */
        "cursor=dGVhbXN8MjAyNi0wMS0wMVQwMDowMDowMFp8MTIzZTQ1NjctZTg5Yi00MmQzLWE0NTYtNDI2NjE0MTc0MDAwJy0t",
    };
    char id[37], body[600];
    json_t *j;

    (void)state;
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        plxt_expect_status(srv, "POST", "/api/v1/teams", crew[OWNER].access, bad_names[i], 400);
    /* SQL is data: a name full of metacharacters is stored as written */
    team_new(&crew[OWNER], "x'); DROP TABLE plexus.teams; --", id);
    j = plxt_expect(srv, "GET", P("/api/v1/teams/%s", id), crew[OWNER].access, NULL, 200);
    assert_string_equal(plxt_str(j, "name"), "x'); DROP TABLE plexus.teams; --");
    json_decref(j);
    /* 100 bytes of UTF-8 is fine */
    snprintf(body, sizeof body, "{\"name\":\"%s\"}",
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
             "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    plxt_expect_status(srv, "POST", "/api/v1/teams", crew[OWNER].access, body, 201);
    for (size_t i = 0; i < sizeof bad_names / sizeof bad_names[0]; i++)
        plxt_expect_status(srv, "PATCH", P("/api/v1/teams/%s", id), crew[OWNER].access,
                      bad_names[i], 400);
    for (size_t i = 0; i < sizeof bad_members / sizeof bad_members[0]; i++)
        plxt_expect_status(srv, "POST", P("/api/v1/teams/%s/members", id), crew[OWNER].access,
                      bad_members[i], 400);
    /* an email that is SQL, or too long */
    expect_problem("POST", P("/api/v1/teams/%s/members", id), crew[OWNER].access,
                   "{\"email\":\"' OR '1'='1' --\",\"role\":\"member\"}", 404,
                   "user_not_found");
    memset(body, 0, sizeof body);
    strcpy(body, "{\"role\":\"member\",\"email\":\"");
    memset(body + strlen(body), 'e', 300);
    strcat(body, "@x.test\"}");
    plxt_expect_status(srv, "POST", P("/api/v1/teams/%s/members", id), crew[OWNER].access, body, 400);
    plxt_expect_status(srv, "PATCH", P("/api/v1/teams/%s/members/%s", id, crew[OWNER].id),
                  crew[OWNER].access, "{\"role\":\"' OR 1=1 --\"}", 400);
    for (size_t i = 0; i < sizeof bad_queries / sizeof bad_queries[0]; i++) {
        if (strcmp(bad_queries[i], "cursor=") == 0) {
            plxt_expect_status(srv, "GET", "/api/v1/teams?cursor=", crew[OWNER].access, NULL, 200);
            continue;
        }
        plxt_expect_status(srv, "GET", P("/api/v1/teams?%s", bad_queries[i]), crew[OWNER].access,
                      NULL, 400);
        plxt_expect_status(srv, "GET", P("/api/v1/teams/%s/members?%s", id, bad_queries[i]),
                      crew[OWNER].access, NULL, 400);
    }
    /* the log holds no 500 */
    assert_false(plxt_server_log_contains(srv, "\"status\":500"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_get_list),
        cmocka_unit_test(test_list_shows_my_role_only_my_teams),
        cmocka_unit_test(test_read_by_role),
        cmocka_unit_test(test_rename_by_role),
        cmocka_unit_test(test_add_member_by_role),
        cmocka_unit_test(test_change_role_by_role),
        cmocka_unit_test(test_remove_member_by_role),
        cmocka_unit_test(test_leave),
        cmocka_unit_test(test_delete_team_by_role),
        cmocka_unit_test(test_other_team_is_not_found),
        cmocka_unit_test(test_last_owner),
        cmocka_unit_test(test_concurrent_demotion),
        cmocka_unit_test(test_pagination),
        cmocka_unit_test(test_bad_input_is_400),
    };

    plxt_require_postgres("test_teams");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
