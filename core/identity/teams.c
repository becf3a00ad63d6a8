/*
 * teams.c - teams, their members and roles, and plx_team_role for modules
 *
 *   POST   /api/v1/teams                          create; the caller is owner
 *   GET    /api/v1/teams                          the caller's teams and roles
 *   GET    /api/v1/teams/{id}                     any member
 *   PATCH  /api/v1/teams/{id}                     rename: admin or owner
 *   DELETE /api/v1/teams/{id}                     owner
 *   GET    /api/v1/teams/{id}/members             any member
 *   POST   /api/v1/teams/{id}/members             admin+ ({"email","role"})
 *   PATCH  /api/v1/teams/{id}/members/{user_id}   admin+ ({"role"})
 *   DELETE /api/v1/teams/{id}/members/{user_id}   admin+, or oneself
 *   POST   /api/v1/teams/{id}/leave               oneself
 *
 * Roles, lowest first: viewer, member, admin, owner. Only an owner grants
 * or takes away "owner"; a team always keeps one owner (409 "last_owner").
 * Someone who is not a member gets 404 for everything about the team, as
 * if it did not exist: every read joins the caller's membership in its SQL.
 *
 * Every change to a team or its members runs in one transaction that first
 * locks the team's row (SELECT ... FOR UPDATE), then reads the caller's
 * role, the target's role and the number of owners in a new statement, so
 * in READ COMMITTED it sees what the transactions it waited for committed.
 * Changes to one team are therefore serialised: two owners demoting each
 * other at once cannot both pass the last-owner check, and a caller whose
 * role was just lowered cannot act on the old one.
 */
#include "config.h"
#include "identity.h"

#include "db.h"
#include "loader.h"

#include <stdlib.h>
#include <string.h>

#define TEAM_NAME_MAX 100
#define EMAIL_MAX     254

static const char *const role_names[] = {
    [PLX_ROLE_NONE] = "none", [PLX_ROLE_VIEWER] = "viewer",
    [PLX_ROLE_MEMBER] = "member", [PLX_ROLE_ADMIN] = "admin",
    [PLX_ROLE_OWNER] = "owner",
};

plx_role_t identity_role_parse(const char *s)
{
    if (!s)
        return PLX_ROLE_NONE;
    for (int i = PLX_ROLE_VIEWER; i <= PLX_ROLE_OWNER; i++) {
        if (strcmp(s, role_names[i]) == 0)
            return (plx_role_t)i;
    }
    return PLX_ROLE_NONE;
}

const char *identity_role_name(plx_role_t role)
{
    return role >= PLX_ROLE_NONE && role <= PLX_ROLE_OWNER ? role_names[role] : "none";
}

plx_status_t core_team_role(plx_request_t *r, const char *team_id,
                            plx_role_t *out)
{
    const char *caller = core_request_user_id(r);
    plx_db_res_t *res;
    plx_status_t st;

    if (!out)
        return PLX_ERR_INVALID;
    *out = PLX_ROLE_NONE;
    if (!caller || !core_uuid_valid(team_id))
        return PLX_OK;
    const char *params[2] = { team_id, caller };
    st = core_db_query(r, "SELECT role FROM plexus.team_members "
                       "WHERE team_id = $1::uuid AND user_id = $2::uuid",
                       2, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) == 1)
        *out = identity_role_parse(core_db_value(res, 0, 0));
    return PLX_OK;
}

/* ---- rendering ---------------------------------------------------------------- */

#define TEAM_COLS                                                           \
    "t.id, t.name, " PLX_SQL_RFC3339("t.created_at") " AS created_at, "   \
    PLX_SQL_RFC3339("t.updated_at") " AS updated_at, "                    \
    PLX_SQL_TIME_KEY("t.created_at") " AS sort_key"

static const char *col(const plx_db_res_t *res, int row, const char *name)
{
    return core_db_value(res, row, core_db_col(res, name));
}

/* role: the caller's, from the row's "role" column when NULL */
static json_t *team_json_role(const plx_db_res_t *res, int row, const char *role)
{
    return json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?}",
                     "id", col(res, row, "id"), "name", col(res, row, "name"),
                     "role", role ? role : col(res, row, "role"),
                     "created_at", col(res, row, "created_at"),
                     "updated_at", col(res, row, "updated_at"));
}

static json_t *team_json(const plx_db_res_t *res, int row)
{
    return team_json_role(res, row, NULL);
}

static json_t *member_json(const plx_db_res_t *res, int row)
{
    return json_pack("{s:s?, s:s?, s:s?, s:s?}",
                     "user_id", col(res, row, "id"), "email", col(res, row, "email"),
                     "role", col(res, row, "role"),
                     "joined_at", col(res, row, "joined_at"));
}

static plx_status_t team_not_found(plx_request_t *r)
{
    return core_reply_problem(r, 404, "not_found", "no such team");
}

/* a team name: 1..100 bytes of UTF-8 (checked by the JSON parser) without
 * control characters */
static const char *team_name(plx_request_t *r, json_t *body)
{
    const char *name = identity_body_string(r, body, "name", TEAM_NAME_MAX);

    if (!name)
        return NULL;
    for (const char *p = name; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            identity_bad_field(r, "name", "must not contain control characters");
            return NULL;
        }
    }
    return name;
}

/* ---- the locked transaction -------------------------------------------------- */

typedef struct team_tx {
    plx_db_conn_t *c;
    plx_role_t     caller;   /* after the lock; NONE: not a member (404) */
    plx_role_t     target;   /* the member acted on; NONE when not one */
    long           owners;
} team_tx_t;

/* An answer decided inside the transaction, sent after it ended */
typedef struct verdict {
    int         status;      /* 0: go on */
    const char *code;
    const char *detail;
} verdict_t;

static void refuse(verdict_t *v, int status, const char *code, const char *detail)
{
    *v = (verdict_t){ status, code, detail };
}

static plx_status_t team_tx_read(team_tx_t *tx, const char *const p[3])
{
    plx_db_res_t *res = NULL;
    plx_status_t st;

    st = core_db_exec(tx->c,
                      "SELECT (SELECT role FROM plexus.team_members WHERE team_id = $1::uuid "
                      "AND user_id = $2::uuid), "
                      "(SELECT role FROM plexus.team_members WHERE team_id = $1::uuid "
                      "AND user_id = $3::uuid), "
                      "(SELECT count(*) FROM plexus.team_members WHERE team_id = $1::uuid "
                      "AND role = 'owner')", 3, p, &res);
    if (st == PLX_OK && core_db_rows(res) == 1) {
        tx->caller = identity_role_parse(core_db_value(res, 0, 0));
        tx->target = identity_role_parse(core_db_value(res, 0, 1));
        tx->owners = strtol(core_db_value(res, 0, 2), NULL, 10);
    }
    core_db_free(res);
    return st;
}

/* The work of one change, run after the lock. It may run more than once
 * (core_db_tx retries a serialization failure), so it resets what it
 * hands out before it starts. A refusal goes in *v, with PLX_OK. */
typedef plx_status_t (*team_step_fn)(team_tx_t *tx, void *arg, verdict_t *v);

typedef struct team_change {
    const char  *team, *caller, *target;   /* target: NULL when none */
    team_step_fn step;
    void        *arg;
    plx_role_t   had;       /* the target's role as the last run saw it */
    verdict_t    v;
} team_change_t;

/* Lock the team (only if the caller is a member), read the roles, run the
 * step. A refusal rolls back (PLX_DECLINED) and is answered after. */
static plx_status_t team_change_tx(plx_db_conn_t *c, void *arg)
{
    team_change_t *ch = arg;
    const char *p[3] = { ch->team, ch->caller, ch->target };
    team_tx_t tx = { .c = c, .caller = PLX_ROLE_NONE, .target = PLX_ROLE_NONE };
    plx_db_res_t *res = NULL;
    plx_status_t st;

    ch->v = (verdict_t){ 0 };
    ch->had = PLX_ROLE_NONE;
    st = core_db_exec(c,
                      "SELECT 1 FROM plexus.teams t WHERE t.id = $1::uuid AND EXISTS "
                      "(SELECT 1 FROM plexus.team_members m WHERE m.team_id = t.id "
                      "AND m.user_id = $2::uuid) FOR UPDATE OF t", 2, p, &res);
    if (st == PLX_OK && core_db_rows(res) == 1)
        st = team_tx_read(&tx, p);
    core_db_free(res);
    if (st != PLX_OK)
        return st;
    ch->had = tx.target;
    st = ch->step(&tx, ch->arg, &ch->v);
    if (st == PLX_OK && ch->v.status)
        return PLX_DECLINED;
    return st;
}

/* Run a change in one transaction. PLX_OK: it passed and committed, and
 * the caller answers; *answered: it was refused and the refusal was sent. */
static plx_status_t team_change(plx_request_t *r, team_change_t *ch, bool *answered)
{
    plx_status_t st;

    *answered = false;
    st = core_db_tx(r, PLX_TX_READ_COMMITTED, team_change_tx, ch);
    if (st == PLX_DECLINED && ch->v.status) {
        *answered = true;
        return core_reply_problem(r, ch->v.status, ch->v.code, "%s", ch->v.detail);
    }
    return st;
}

/* ---- teams -------------------------------------------------------------------- */

static plx_status_t team_create(plx_request_t *r, void *arg)
{
    const char *caller = identity_caller(r);
    json_t *body = identity_body_object(r);
    const char *name;
    plx_db_res_t *res;
    plx_status_t st;

    (void)arg;
    if (!body || !(name = team_name(r, body)))
        return PLX_OK;
    const char *params[2] = { name, caller };
    /* one statement, so the team never exists without its owner */
    st = core_db_query(r,
                       "WITH t AS (INSERT INTO plexus.teams (name, created_by) "
                       "VALUES ($1, $2::uuid) RETURNING *), "
                       "m AS (INSERT INTO plexus.team_members (team_id, user_id, role) "
                       "SELECT id, $2::uuid, 'owner' FROM t) "
                       "SELECT " TEAM_COLS " FROM t", 2, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return PLX_ERR_INTERNAL;
    json_t *team = team_json_role(res, 0, "owner");
    return team ? core_reply_json(r, 201, team) : PLX_ERR_NOMEM;
}

static plx_status_t team_list(plx_request_t *r, void *arg)
{
    plx_page_t page = { .size = sizeof page };
    char lim[16];
    plx_db_res_t *res;
    plx_status_t st;

    (void)arg;
    if ((st = identity_list_params(r, "teams", &page, lim)) != PLX_OK)
        return st;
    const char *params[4] = { identity_caller(r), page.key, page.id, lim };
    st = core_db_query(r,
                       "SELECT " TEAM_COLS ", m.role FROM plexus.team_members m "
                       "JOIN plexus.teams t ON t.id = m.team_id WHERE m.user_id = $1::uuid "
                       "AND ($2::timestamptz IS NULL OR (t.created_at, t.id) > ("
                       "$2::timestamptz, $3::uuid)) "
                       "ORDER BY t.created_at, t.id LIMIT $4::int", 4, params, &res);
    if (st != PLX_OK)
        return st;
    return identity_reply_list(r, res, page.limit, "teams", team_json);
}

static plx_status_t team_get(plx_request_t *r, void *arg)
{
    const char *team = core_request_param(r, "id");
    plx_db_res_t *res;
    plx_status_t st;

    (void)arg;
    if (!core_uuid_valid(team))
        return team_not_found(r);
    const char *params[2] = { team, identity_caller(r) };
    st = core_db_query(r,
                       "SELECT " TEAM_COLS ", m.role FROM plexus.teams t "
                       "JOIN plexus.team_members m ON m.team_id = t.id "
                       "AND m.user_id = $2::uuid WHERE t.id = $1::uuid", 2, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return team_not_found(r);
    json_t *body = team_json(res, 0);
    return body ? core_reply_json(r, 200, body) : PLX_ERR_NOMEM;
}

typedef struct team_rename {
    const char *team, *name;
    json_t     *out;
} team_rename_t;

static plx_status_t team_rename_step(team_tx_t *tx, void *arg, verdict_t *v)
{
    team_rename_t *a = arg;
    const char *params[2] = { a->team, a->name };
    plx_db_res_t *res = NULL;
    plx_status_t st;

    json_decref(a->out);
    a->out = NULL;

    if (tx->caller == PLX_ROLE_NONE) {
        refuse(v, 404, "not_found", "no such team");
        return PLX_OK;
    }
    if (tx->caller < PLX_ROLE_ADMIN) {
        refuse(v, 403, "forbidden", "renaming a team takes the admin or owner role");
        return PLX_OK;
    }
    st = core_db_exec(tx->c, "UPDATE plexus.teams t SET name = $2, updated_at = now() "
                      "WHERE t.id = $1::uuid RETURNING " TEAM_COLS, 2, params, &res);
    if (st == PLX_OK && core_db_rows(res) == 1)
        a->out = team_json_role(res, 0, identity_role_name(tx->caller));
    core_db_free(res);
    if (st == PLX_OK && !a->out)
        st = PLX_ERR_NOMEM;
    return st;
}

static plx_status_t team_patch(plx_request_t *r, void *arg)
{
    team_rename_t a = { .team = core_request_param(r, "id") };
    team_change_t ch = { .team = a.team, .caller = identity_caller(r),
                         .step = team_rename_step, .arg = &a };
    json_t *body;
    bool answered;
    plx_status_t st;

    (void)arg;
    if (!core_uuid_valid(a.team))
        return team_not_found(r);
    if (!(body = identity_body_object(r)) || !(a.name = team_name(r, body)))
        return PLX_OK;
    st = team_change(r, &ch, &answered);
    if (st != PLX_OK || answered) {
        json_decref(a.out);
        return st;
    }
    return core_reply_json(r, 200, a.out);
}

static plx_status_t team_delete_step(team_tx_t *tx, void *arg, verdict_t *v)
{
    const char *params[1] = { arg };

    if (tx->caller == PLX_ROLE_NONE)
        refuse(v, 404, "not_found", "no such team");
    else if (tx->caller != PLX_ROLE_OWNER)
        refuse(v, 403, "forbidden", "deleting a team takes the owner role");
    else
        return core_db_exec(tx->c, "DELETE FROM plexus.teams WHERE id = $1::uuid",
                            1, params, NULL);
    return PLX_OK;
}

static plx_status_t team_delete(plx_request_t *r, void *arg)
{
    const char *team = core_request_param(r, "id");
    team_change_t ch = { .team = team, .caller = identity_caller(r),
                         .step = team_delete_step, .arg = (void *)team };
    bool answered;
    plx_status_t st;

    (void)arg;
    if (!core_uuid_valid(team))
        return team_not_found(r);
    st = team_change(r, &ch, &answered);
    if (st != PLX_OK || answered)
        return st;
    core_audit(r, "team.deleted", "team", team, NULL);
    return core_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

/* ---- members --------------------------------------------------------------------- */

static plx_status_t members_list(plx_request_t *r, void *arg)
{
    const char *team = core_request_param(r, "id");
    plx_page_t page = { .size = sizeof page };
    char lim[16];
    plx_db_res_t *res;
    plx_role_t role;
    plx_status_t st;

    (void)arg;
    if ((st = core_team_role(r, team, &role)) != PLX_OK)
        return st;
    if (role == PLX_ROLE_NONE)
        return team_not_found(r);
    if ((st = identity_list_params(r, "members", &page, lim)) != PLX_OK)
        return st;
    const char *params[5] = { team, identity_caller(r), page.key, page.id, lim };
    st = core_db_query(r,
                       "SELECT u.id, u.email, m.role, " PLX_SQL_RFC3339("m.created_at")
                       " AS joined_at, " PLX_SQL_TIME_KEY("m.created_at") " AS sort_key "
                       "FROM plexus.team_members m JOIN plexus.users u ON u.id = m.user_id "
                       "WHERE m.team_id = $1::uuid AND EXISTS (SELECT 1 FROM "
                       "plexus.team_members me WHERE me.team_id = $1::uuid "
                       "AND me.user_id = $2::uuid) "
                       "AND ($3::timestamptz IS NULL OR (m.created_at, m.user_id) > ("
                       "$3::timestamptz, $4::uuid)) "
                       "ORDER BY m.created_at, m.user_id LIMIT $5::int", 5, params, &res);
    if (st != PLX_OK)
        return st;
    return identity_reply_list(r, res, page.limit, "members", member_json);
}

/* may the caller (tx->caller) give role `want` to a member who has `had`
 * (NONE for a new member)? */
static bool may_assign(const team_tx_t *tx, plx_role_t had, plx_role_t want,
                       verdict_t *v)
{
    if (tx->caller == PLX_ROLE_NONE) {
        refuse(v, 404, "not_found", "no such team");
        return false;
    }
    if (tx->caller < PLX_ROLE_ADMIN) {
        refuse(v, 403, "forbidden", "managing members takes the admin or owner role");
        return false;
    }
    if ((want == PLX_ROLE_OWNER || had == PLX_ROLE_OWNER)
        && tx->caller != PLX_ROLE_OWNER) {
        refuse(v, 403, "forbidden", "only an owner grants or takes away the owner role");
        return false;
    }
    return true;
}

typedef struct member_add {
    const char *team, *email;
    plx_role_t  role;
    char        user_id[37];
    json_t     *out;
} member_add_t;

static plx_status_t member_add_step(team_tx_t *tx, void *arg, verdict_t *v)
{
    member_add_t *a = arg;
    plx_db_res_t *res = NULL;
    plx_status_t st;

    json_decref(a->out);
    a->out = NULL;
    a->user_id[0] = '\0';

    if (!may_assign(tx, PLX_ROLE_NONE, a->role, v))
        return PLX_OK;
    const char *q[1] = { a->email };
    st = core_db_exec(tx->c, "SELECT id FROM plexus.users WHERE lower(email) = lower($1)",
                      1, q, &res);
    if (st == PLX_OK && core_db_rows(res) != 1)
        refuse(v, 404, "user_not_found", "no user has this email address");
    if (st == PLX_OK && !v->status)
        snprintf(a->user_id, sizeof a->user_id, "%s", core_db_value(res, 0, 0));
    core_db_free(res);
    if (st != PLX_OK || v->status)
        return st;
    const char *p[4] = { a->team, a->user_id, identity_role_name(a->role), a->email };
    st = core_db_exec(tx->c,
                      "INSERT INTO plexus.team_members (team_id, user_id, role) "
                      "VALUES ($1::uuid, $2::uuid, $3) ON CONFLICT DO NOTHING "
                      "RETURNING user_id AS id, $4::text AS email, role, "
                      PLX_SQL_RFC3339("created_at") " AS joined_at", 4, p, &res);
    if (st == PLX_OK && core_db_rows(res) != 1)
        refuse(v, 409, "already_member", "this user is already a member of the team");
    else if (st == PLX_OK && !(a->out = member_json(res, 0)))
        st = PLX_ERR_NOMEM;
    core_db_free(res);
    return st;
}

static void audit_member(plx_request_t *r, const char *action, const char *team,
                         const char *user, const char *from, const char *to)
{
    json_t *det = json_pack("{s:s, s:s?, s:s?}", "user_id", user, "from", from,
                            "to", to);

    core_audit(r, action, "team", team, det);
    json_decref(det);
}

static plx_status_t member_add(plx_request_t *r, void *arg)
{
    member_add_t a = { .team = core_request_param(r, "id") };
    team_change_t ch = { .team = a.team, .caller = identity_caller(r),
                         .step = member_add_step, .arg = &a };
    json_t *body;
    const char *role;
    bool answered;
    plx_status_t st;

    (void)arg;
    if (!core_uuid_valid(a.team))
        return team_not_found(r);
    if (!(body = identity_body_object(r)) || !(a.email = identity_body_string(r, body, "email", EMAIL_MAX))
        || !(role = identity_body_string(r, body, "role", 16)))
        return PLX_OK;
    if ((a.role = identity_role_parse(role)) == PLX_ROLE_NONE)
        return identity_bad_field(r, "role", "must be owner, admin, member or viewer");
    st = team_change(r, &ch, &answered);
    if (st != PLX_OK || answered) {
        json_decref(a.out);
        return st;
    }
    audit_member(r, "team.member_added", a.team, a.user_id, NULL, role);
    return core_reply_json(r, 201, a.out);
}

typedef struct member_role {
    const char *team, *user;
    plx_role_t  want;
    json_t     *out;
} member_role_t;

static plx_status_t member_role_step(team_tx_t *tx, void *arg, verdict_t *v)
{
    member_role_t *a = arg;
    plx_role_t want = a->want;
    plx_db_res_t *res = NULL;
    plx_status_t st;

    json_decref(a->out);
    a->out = NULL;

    if (!may_assign(tx, tx->target, want, v))
        return PLX_OK;
    if (tx->target == PLX_ROLE_NONE) {
        refuse(v, 404, "not_found", "no such member");
        return PLX_OK;
    }
    if (tx->target == PLX_ROLE_OWNER && want != PLX_ROLE_OWNER && tx->owners <= 1) {
        refuse(v, 409, "last_owner", "a team keeps at least one owner: make "
               "someone else owner first");
        return PLX_OK;
    }
    const char *p[3] = { a->team, a->user, identity_role_name(want) };
    st = core_db_exec(tx->c,
                      "UPDATE plexus.team_members m SET role = $3 FROM plexus.users u "
                      "WHERE m.team_id = $1::uuid AND m.user_id = $2::uuid AND u.id = m.user_id "
                      "RETURNING u.id, u.email, m.role, "
                      PLX_SQL_RFC3339("m.created_at") " AS joined_at", 3, p, &res);
    if (st == PLX_OK && core_db_rows(res) == 1 && !(a->out = member_json(res, 0)))
        st = PLX_ERR_NOMEM;
    core_db_free(res);
    if (st == PLX_OK && !a->out)
        st = PLX_ERR_INTERNAL;
    return st;
}

static plx_status_t member_patch(plx_request_t *r, void *arg)
{
    member_role_t a = { .team = core_request_param(r, "id"),
                        .user = core_request_param(r, "user_id") };
    team_change_t ch = { .team = a.team, .caller = identity_caller(r),
                         .target = a.user, .step = member_role_step, .arg = &a };
    const char *team = a.team, *user = a.user;
    json_t *body;
    const char *role;
    bool answered;
    plx_status_t st;

    (void)arg;
    if (!core_uuid_valid(team) || !core_uuid_valid(user))
        return team_not_found(r);
    if (!(body = identity_body_object(r)) || !(role = identity_body_string(r, body, "role", 16)))
        return PLX_OK;
    if ((a.want = identity_role_parse(role)) == PLX_ROLE_NONE)
        return identity_bad_field(r, "role", "must be owner, admin, member or viewer");
    st = team_change(r, &ch, &answered);
    if (st != PLX_OK || answered) {
        json_decref(a.out);
        return st;
    }
    if (ch.had != a.want)
        audit_member(r, "team.role_changed", team, user, identity_role_name(ch.had), role);
    return core_reply_json(r, 200, a.out);
}

typedef struct member_remove {
    const char *team, *user;
    bool        self;
} member_remove_t;

static plx_status_t member_remove_step(team_tx_t *tx, void *arg, verdict_t *v)
{
    const member_remove_t *a = arg;
    const char *p[2] = { a->team, a->user };

    if (tx->caller == PLX_ROLE_NONE) {
        refuse(v, 404, "not_found", "no such team");
        return PLX_OK;
    }
    if (!a->self && !may_assign(tx, tx->target, PLX_ROLE_NONE, v))
        return PLX_OK;
    if (tx->target == PLX_ROLE_NONE) {
        refuse(v, 404, "not_found", "no such member");
        return PLX_OK;
    }
    if (tx->target == PLX_ROLE_OWNER && tx->owners <= 1) {
        refuse(v, 409, "last_owner", "a team keeps at least one owner: make "
               "someone else owner first, or delete the team");
        return PLX_OK;
    }
    return core_db_exec(tx->c, "DELETE FROM plexus.team_members WHERE team_id = $1::uuid "
                        "AND user_id = $2::uuid", 2, p, NULL);
}

static plx_status_t member_remove_common(plx_request_t *r, const char *team,
                                         const char *user)
{
    const char *caller = identity_caller(r);
    member_remove_t a = { team, user, caller && user && strcmp(caller, user) == 0 };
    team_change_t ch = { .team = team, .caller = caller, .target = user,
                         .step = member_remove_step, .arg = &a };
    bool answered;
    plx_status_t st;

    if (!core_uuid_valid(team) || !core_uuid_valid(user))
        return team_not_found(r);
    st = team_change(r, &ch, &answered);
    if (st != PLX_OK || answered)
        return st;
    audit_member(r, "team.member_removed", team, user, identity_role_name(ch.had), NULL);
    return core_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

static plx_status_t member_remove(plx_request_t *r, void *arg)
{
    (void)arg;
    return member_remove_common(r, core_request_param(r, "id"),
                                core_request_param(r, "user_id"));
}

static plx_status_t team_leave(plx_request_t *r, void *arg)
{
    (void)arg;
    return member_remove_common(r, core_request_param(r, "id"), identity_caller(r));
}

/* ---- registration ------------------------------------------------------------------ */

/* An API key reaches a team only through the scopes teams:read and
 * teams:write; a user's own token holds every scope. */
#define TEAM_R(m, p, s, f) { m, p, f, PLX_AUTH_USER, "teams:read", NULL, s, "teams" }
#define TEAM_W(m, p, s, f) { m, p, f, PLX_AUTH_USER, "teams:write", NULL, s, "teams" }

static const plx_route_def_t team_routes[] = {
    TEAM_W("POST", "/api/v1/teams", "Create a team (you become its owner)", team_create),
    TEAM_R("GET", "/api/v1/teams", "Your teams and your role in each", team_list),
    TEAM_R("GET", "/api/v1/teams/{id}", "A team you belong to", team_get),
    TEAM_W("PATCH", "/api/v1/teams/{id}", "Rename a team (admin+)", team_patch),
    TEAM_W("DELETE", "/api/v1/teams/{id}", "Delete a team (owner)", team_delete),
    TEAM_R("GET", "/api/v1/teams/{id}/members", "A team's members", members_list),
    TEAM_W("POST", "/api/v1/teams/{id}/members", "Add a member by email (admin+)", member_add),
    TEAM_W("PATCH", "/api/v1/teams/{id}/members/{user_id}", "Change a member's role (admin+)",
           member_patch),
    TEAM_W("DELETE", "/api/v1/teams/{id}/members/{user_id}",
           "Remove a member (admin+, or yourself)", member_remove),
    TEAM_W("POST", "/api/v1/teams/{id}/leave", "Leave a team", team_leave),
};

bool identity_team_routes(void)
{
    return core_routes_add(core_module_self(), team_routes,
                           CORE_ARRAY_LEN(team_routes), sizeof team_routes[0],
                           NULL) == PLX_OK;
}
