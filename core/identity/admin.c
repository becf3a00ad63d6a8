/*
 * admin.c - user administration, the audit log reader, `plexusd
 * create-admin`, and the list pagination the identity routes share
 *
 *   GET   /api/v1/users/{id}          self or a global admin (else 404)
 *   GET   /api/v1/admin/users         ?q=&limit=&cursor=   (admin)
 *   PATCH /api/v1/admin/users/{id}    {"disabled","role"}   (admin)
 *   GET   /api/v1/admin/audit         ?actor=&action=&limit=&cursor= (admin)
 *
 * An admin cannot disable or demote their own account, so the server is
 * never left without the admin who could undo a mistake. Disabling a user
 * revokes their sessions in the same transaction; their access tokens die
 * with the session (authn checks it) and their API keys with the account
 * (identity_apikey_authenticate checks disabled_at).
 *
 * Lists are keyset-paginated on (timestamp, id): a cursor names the last
 * row seen, so rows inserted meanwhile neither repeat nor shift a page.
 */
#include "config.h"
#include "identity.h"
#include "crypto.h"

#include "db.h"
#include "input.h"
#include "loader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#define CURSOR_MAX      96    /* base64url of "<19 digits>,<36 chars>" is 76 */
#define EMAIL_MAX       254
#define SEARCH_MAX      254
#define PASSWORD_MAX    1024  /* bytes read from stdin; the policy caps at 128 */
#define ACTION_MAX      64

/* ---- lists ------------------------------------------------------------------ */

plx_status_t identity_list_params(plx_request_t *r, const char *tag,
                                  plx_page_t *page, char lim[16])
{
    plx_status_t st;

    page->size = sizeof *page;
    st = core_page_read(r, tag, PLX_KEY_TIME, IDENTITY_LIST_DEFAULT,
                        IDENTITY_LIST_MAX, page);
    if (st == PLX_OK)
        snprintf(lim, 16, "%d", page->limit + 1);
    return st;
}

/* The audit log's rows have bigint ids, not UUIDs, so its cursor is its
 * own: base64url of "audit|<time key>|<id>", both parts checked like the
 * page API's before they reach SQL. */
#define AUDIT_TAG "audit|"

static const char *audit_cursor(plx_request_t *r, const char *key, const char *id)
{
    char raw[CORE_CURSOR_KEY_MAX + 32], *out = core_palloc(r, CORE_CURSOR_MAX + 1);
    int n = snprintf(raw, sizeof raw, AUDIT_TAG "%s|%s", key, id);

    if (!out || n < 0 || (size_t)n >= sizeof raw
        || core_base64_encode(PLX_B64_URL, raw, (size_t)n, out, CORE_CURSOR_MAX + 1)
           == (size_t)-1)
        return NULL;
    return out;
}

static bool audit_cursor_parse(const char *s, char key[CORE_CURSOR_KEY_MAX + 1],
                               char id[24])
{
    char raw[CORE_CURSOR_KEY_MAX + 32];
    const char *bar;
    size_t n, len = strnlen(s, CORE_CURSOR_MAX + 1);

    if (len > CORE_CURSOR_MAX
        || core_base64_decode(PLX_B64_URL, s, len, raw, sizeof raw - 1, &n) != PLX_OK
        || memchr(raw, '\0', n))
        return false;
    raw[n] = '\0';
    if (strncmp(raw, AUDIT_TAG, strlen(AUDIT_TAG)) != 0
        || !(bar = strrchr(raw, '|')) || bar < raw + strlen(AUDIT_TAG)
        || strlen(bar + 1) >= 24)
        return false;
    snprintf(key, CORE_CURSOR_KEY_MAX + 1, "%.*s",
             (int)(bar - raw - strlen(AUDIT_TAG)), raw + strlen(AUDIT_TAG));
    snprintf(id, 24, "%s", bar + 1);
    return core_key_valid(PLX_KEY_TIME, key) && core_key_valid(PLX_KEY_INT, id)
           && id[0] != '-';
}

static json_t *cursor_of(plx_request_t *r, const plx_db_res_t *res, int row,
                         const char *tag)
{
    const char *key = core_db_value(res, row, core_db_col(res, "sort_key"));
    const char *id = core_db_value(res, row, core_db_col(res, "id"));
    const char *c;

    if (!key || !id)
        return json_null();
    c = tag ? core_page_cursor(r, tag, PLX_KEY_TIME, key, id) : audit_cursor(r, key, id);
    return c ? json_string(c) : json_null();
}

/* tag NULL: the audit log's cursor */
plx_status_t identity_reply_list(plx_request_t *r, const plx_db_res_t *res,
                                 int limit, const char *tag,
                                 json_t *(*row)(const plx_db_res_t *, int))
{
    int rows = core_db_rows(res);
    int shown = rows > limit ? limit : rows;
    json_t *items = json_array();

    if (!items)
        return PLX_ERR_NOMEM;
    for (int i = 0; i < shown; i++) {
        json_t *item = row(res, i);
        if (!item || json_array_append_new(items, item) != 0) {
            json_decref(items);
            return PLX_ERR_NOMEM;
        }
    }
    json_t *body = json_pack("{s:o, s:o}", "items", items, "next_cursor",
                             rows > limit ? cursor_of(r, res, shown - 1, tag)
                                          : json_null());
    return body ? core_reply_json(r, 200, body) : PLX_ERR_NOMEM;
}

/* ---- column helpers --------------------------------------------------------- */

static const char *col(const plx_db_res_t *res, int row, const char *name)
{
    return core_db_value(res, row, core_db_col(res, name));
}

static bool col_bool(const plx_db_res_t *res, int row, const char *name)
{
    const char *v = col(res, row, name);
    return v && v[0] == 't';
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ---- users ------------------------------------------------------------------ */

#define USER_COLS                                                           \
    "u.id, u.email, u.role, u.email_verified_at IS NOT NULL AS email_verified, " \
    "u.mfa_enabled_at IS NOT NULL AS mfa_enabled, "                         \
    "u.disabled_at IS NOT NULL AS disabled, "                               \
    PLX_SQL_RFC3339("u.created_at") " AS created_at, "                    \
    PLX_SQL_TIME_KEY("u.created_at") " AS sort_key"

static json_t *user_json(const plx_db_res_t *res, int row)
{
    return json_pack("{s:s?, s:o, s:s?, s:b, s:b, s:b, s:s?}",
                     "id", col(res, row, "id"),
                     "email", str_or_null(col(res, row, "email")),
                     "role", col(res, row, "role"),
                     "email_verified", col_bool(res, row, "email_verified"),
                     "mfa_enabled", col_bool(res, row, "mfa_enabled"),
                     "disabled", col_bool(res, row, "disabled"),
                     "created_at", col(res, row, "created_at"));
}

static plx_status_t user_not_found(plx_request_t *r)
{
    return core_reply_problem(r, 404, "not_found", "no such user");
}

static plx_status_t user_get(plx_request_t *r, void *arg)
{
    const char *id = core_request_param(r, "id");
    const char *caller = identity_caller(r);
    plx_db_res_t *res;
    plx_status_t st;

    (void)arg;
    if (!caller || !core_uuid_valid(id))
        return user_not_found(r);
    /* someone else's account is "not found", unless the caller is an admin */
    if (strcmp(id, caller) != 0 && !core_request_is_admin(r))
        return user_not_found(r);
    const char *params[1] = { id };
    st = core_db_query(r, "SELECT " USER_COLS " FROM plexus.users u WHERE u.id = $1",
                       1, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return user_not_found(r);
    json_t *body = user_json(res, 0);
    return body ? core_reply_json(r, 200, body) : PLX_ERR_NOMEM;
}

/* the user's text as an ILIKE pattern matching it anywhere: %, _ and the
 * escape character itself lose their meaning */
static char *search_pattern(plx_request_t *r, const char *q)
{
    size_t len = strlen(q);
    char *out = core_palloc(r, 2 * len + 3);
    size_t o = 0;

    if (!out)
        return NULL;
    out[o++] = '%';
    for (size_t i = 0; i < len; i++) {
        if (q[i] == '%' || q[i] == '_' || q[i] == '\\')
            out[o++] = '\\';
        out[o++] = q[i];
    }
    out[o++] = '%';
    out[o] = '\0';
    return out;
}

static plx_status_t admin_users_list(plx_request_t *r, void *arg)
{
    const char *q = core_request_query(r, "q");
    plx_page_t page;
    char lim[16];
    const char *pattern = NULL;
    plx_db_res_t *res;
    plx_status_t st;

    (void)arg;
    if ((st = identity_list_params(r, "users", &page, lim)) != PLX_OK)
        return st;
    if (q && *q) {
        size_t n = strnlen(q, SEARCH_MAX + 1);
        if (n > SEARCH_MAX || !core_utf8_valid(q, n))
            return identity_bad_field(r, "q", "must be valid UTF-8 of at most 254 bytes");
        if (!(pattern = search_pattern(r, q)))
            return PLX_ERR_NOMEM;
    }
    const char *params[4] = { pattern, page.key, page.id, lim };
    st = core_db_query(r,
                       "SELECT " USER_COLS " FROM plexus.users u "
                       "WHERE ($1::text IS NULL OR u.email ILIKE $1 ESCAPE '\\') "
                       "AND ($2::timestamptz IS NULL OR (u.created_at, u.id) > ("
                       "$2::timestamptz, $3::uuid)) "
                       "ORDER BY u.created_at, u.id LIMIT $4::int",
                       4, params, &res);
    if (st != PLX_OK)
        return st;
    return identity_reply_list(r, res, page.limit, "users", user_json);
}

typedef struct user_patch {
    int         disabled;   /* -1 unchanged, 0 enable, 1 disable */
    const char *role;       /* NULL unchanged */
} user_patch_t;

static bool user_patch_parse(plx_request_t *r, json_t *body, user_patch_t *p)
{
    static const char *const roles[] = { "user", "admin", NULL };
    int role = -1;

    p->disabled = -1;
    p->role = NULL;
    if (core_field_bool(r, body, "disabled", PLX_FIELD_OPTIONAL, &p->disabled)
            == PLX_ERR_INVALID
        || core_field_enum(r, body, "role", PLX_FIELD_OPTIONAL, roles, &role)
            == PLX_ERR_INVALID)
        return false;   /* answered: 400 invalid_body naming the field */
    if (role >= 0)
        p->role = roles[role];
    if (p->disabled < 0 && !p->role) {
        identity_bad_field(r, "disabled", "expected \"disabled\" or \"role\" to change");
        return false;
    }
    return true;
}

/* UPDATE the user and, when disabling, revoke their sessions: one
 * transaction, so a disabled user is never left with a live session */
typedef struct user_patch_tx {
    const char *const *params;
    int                disabled;
    json_t            *out;      /* the user as updated; NULL: not found */
} user_patch_tx_t;

static plx_status_t user_patch_fn(plx_db_conn_t *c, void *arg)
{
    user_patch_tx_t *t = arg;
    plx_db_res_t *res = NULL;
    plx_status_t st;

    json_decref(t->out);   /* from a run that was retried */
    t->out = NULL;
    st = core_db_exec(c,
                      "UPDATE plexus.users u SET disabled_at = CASE "
                      "WHEN $2::boolean IS NULL THEN u.disabled_at "
                      "WHEN $2::boolean THEN COALESCE(u.disabled_at, now()) "
                      "ELSE NULL END, role = COALESCE($3::text, u.role), "
                      "updated_at = now() WHERE u.id = $1::uuid RETURNING " USER_COLS,
                      3, t->params, &res);
    if (st == PLX_OK && core_db_rows(res) == 1)
        t->out = user_json(res, 0);
    core_db_free(res);
    if (st == PLX_OK && !t->out)
        return PLX_ERR_NOT_FOUND;   /* nothing to keep */
    if (st == PLX_OK && t->disabled == 1)
        st = core_db_exec(c, "UPDATE plexus.sessions SET revoked_at = now(), "
                          "revoked_reason = 'user disabled' WHERE user_id = $1::uuid "
                          "AND revoked_at IS NULL", 1, t->params, NULL);
    return st;
}

static plx_status_t user_patch_apply(plx_request_t *r, const char *id,
                                     const user_patch_t *p, json_t **out)
{
    const char *dis = p->disabled < 0 ? NULL : p->disabled ? "true" : "false";
    const char *params[3] = { id, dis, p->role };
    user_patch_tx_t t = { .params = params, .disabled = p->disabled };
    plx_status_t st = core_db_tx(r, PLX_TX_READ_COMMITTED, user_patch_fn, &t);

    if (st != PLX_OK) {
        json_decref(t.out);
        t.out = NULL;
    }
    *out = t.out;
    return st == PLX_ERR_NOT_FOUND ? PLX_OK : st;
}

static plx_status_t admin_user_patch(plx_request_t *r, void *arg)
{
    const char *id = core_request_param(r, "id");
    const char *caller = identity_caller(r);
    json_t *body, *user;
    user_patch_t p;
    plx_status_t st;

    (void)arg;
    if (!core_uuid_valid(id))
        return user_not_found(r);
    if ((st = core_request_body_object(r, &body)) != PLX_OK)
        return st;   /* answered */
    if (!user_patch_parse(r, body, &p))
        return PLX_OK;
    if (caller && strcmp(caller, id) == 0
        && (p.disabled == 1 || (p.role && strcmp(p.role, "user") == 0)))
        return core_reply_problem(r, 403, "cannot_modify_self",
                                  "an admin cannot disable or demote their own account");
    st = user_patch_apply(r, id, &p, &user);
    if (st != PLX_OK)
        return st;
    if (!user)
        return user_not_found(r);
    json_t *det = json_object();
    if (det && p.disabled >= 0)
        json_object_set_new(det, "disabled", json_boolean(p.disabled));
    if (det && p.role)
        json_object_set_new(det, "role", json_string(p.role));
    core_audit(r, "admin.user_updated", "user", id, det);
    json_decref(det);
    return core_reply_json(r, 200, user);
}

/* ---- the audit log ------------------------------------------------------------ */

static bool action_filter_ok(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
                  || c == '.' || c == ':' || c == '-';
        if (!ok || n >= ACTION_MAX)
            return false;
    }
    return n > 0;
}

static json_t *audit_json(const plx_db_res_t *res, int row)
{
    const char *d = col(res, row, "details");
    json_t *details = d ? json_loads(d, 0, NULL) : NULL;

    return json_pack("{s:I, s:s?, s:o, s:s?, s:o, s:o, s:o, s:o, s:o}",
                     "id", (json_int_t)strtoll(col(res, row, "id"), NULL, 10),
                     "at", col(res, row, "at"),
                     "actor_id", str_or_null(col(res, row, "actor_id")),
                     "action", col(res, row, "action"),
                     "target_type", str_or_null(col(res, row, "target_type")),
                     "target_id", str_or_null(col(res, row, "target_id")),
                     "ip", str_or_null(col(res, row, "ip")),
                     "request_id", str_or_null(col(res, row, "request_id")),
                     "details", details ? details : json_object());
}

static plx_status_t admin_audit_list(plx_request_t *r, void *arg)
{
    const char *actor = core_request_query(r, "actor");
    const char *action = core_request_query(r, "action");
    const char *cursor = core_request_query(r, "cursor");
    char key[CORE_CURSOR_KEY_MAX + 1] = "", id[24] = "", lim[16];
    plx_db_res_t *res;
    plx_status_t st;
    int limit;

    (void)arg;
    if ((st = core_page_limit(r, IDENTITY_LIST_DEFAULT, IDENTITY_LIST_MAX, &limit))
        != PLX_OK)
        return st;
    if (cursor && *cursor && !audit_cursor_parse(cursor, key, id))
        return core_reply_problem(r, 400, "invalid_cursor", "query parameter"
                                  " \"cursor\" is not a cursor of this list");
    if (actor && *actor && !core_uuid_valid(actor))
        return identity_bad_field(r, "actor", "must be a user id (UUID)");
    if (action && *action && !action_filter_ok(action))
        return identity_bad_field(r, "action", "must be 1..64 of [a-z0-9_.:-]");
    snprintf(lim, sizeof lim, "%d", limit + 1);
    const char *params[5] = { actor && *actor ? actor : NULL,
                              action && *action ? action : NULL,
                              key[0] ? key : NULL, id[0] ? id : NULL, lim };
    st = core_db_query(r,
                       "SELECT a.id, " PLX_SQL_RFC3339("a.at") " AS at, a.actor_id, "
                       "a.action, a.target_type, a.target_id, a.ip, a.request_id, "
                       "a.details::text AS details, " PLX_SQL_TIME_KEY("a.at") " AS sort_key "
                       "FROM plexus.audit_log a "
                       "WHERE ($1::uuid IS NULL OR a.actor_id = $1::uuid) "
                       "AND ($2::text IS NULL OR a.action = $2::text) "
                       "AND ($3::timestamptz IS NULL OR (a.at, a.id) < ("
                       "$3::timestamptz, $4::bigint)) "
                       "ORDER BY a.at DESC, a.id DESC LIMIT $5::int",
                       5, params, &res);
    if (st != PLX_OK)
        return st;
    return identity_reply_list(r, res, limit, NULL, audit_json);
}

bool identity_admin_routes(void)
{
    plx_module_t *self = core_module_self();

    return core_route_add(self, "GET", "/api/v1/users/{id}", user_get, NULL,
                          PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER, .tag = "users",
                                         .summary = "A user (yourself, or anyone for an admin)")) == PLX_OK
        && core_route_add(self, "GET", "/api/v1/admin/users", admin_users_list, NULL,
                          PLX_ROUTE_OPTS(.auth = PLX_AUTH_ADMIN, .tag = "admin",
                                         .summary = "Search users by email")) == PLX_OK
        && core_route_add(self, "PATCH", "/api/v1/admin/users/{id}", admin_user_patch, NULL,
                          PLX_ROUTE_OPTS(.auth = PLX_AUTH_ADMIN, .tag = "admin",
                                         .summary = "Disable, enable, promote or demote a user")) == PLX_OK
        && core_route_add(self, "GET", "/api/v1/admin/audit", admin_audit_list, NULL,
                          PLX_ROUTE_OPTS(.auth = PLX_AUTH_ADMIN, .tag = "admin",
                                         .summary = "Read the audit log")) == PLX_OK;
}

/* ---- plexusd create-admin --email E ------------------------------------------ */

static bool email_plausible(const char *e)
{
    size_t n = strnlen(e, EMAIL_MAX + 1);
    const char *at = strchr(e, '@');

    if (n < 3 || n > EMAIL_MAX || !core_utf8_valid(e, n) || !at || at == e
        || !at[1] || strchr(at + 1, '@'))
        return false;
    for (const char *p = e; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return false;
    }
    return true;
}

/* One line from stdin, without echo on a terminal. false when none came or
 * it was too long. */
static bool password_read(char *buf, size_t len)
{
    struct termios old, quiet;
    bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    char *ok;

    if (tty) {
        fprintf(stderr, "password for the admin: ");
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    ok = fgets(buf, (int)len, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!ok)
        return false;
    size_t n = strlen(buf);
    if (n && buf[n - 1] != '\n' && !feof(stdin))
        return false;   /* longer than the buffer */
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    return n > 0;
}

static int admin_promote(const char *email, const char *id, const char *role,
                         bool disabled)
{
    const char *params[1] = { id };

    if (strcmp(role, "admin") == 0) {
        printf("user \"%s\" (%s) is already an admin%s\n", email, id,
               disabled ? "; note: the account is disabled" : "");
        return EXIT_SUCCESS;
    }
    if (core_db_query(NULL, "UPDATE plexus.users SET role = 'admin', updated_at = now() "
                      "WHERE id = $1::uuid", 1, params, NULL) != PLX_OK) {
        fprintf(stderr, "plexusd: could not promote \"%s\": database error\n", email);
        return EXIT_FAILURE;
    }
    json_t *det = json_pack("{s:s, s:s}", "role", "admin", "via", "create-admin");
    identity_audit_actor(NULL, NULL, "admin.user_updated", "user", id, det);
    json_decref(det);
    printf("promoted user \"%s\" (%s) to admin%s\n", email, id,
           disabled ? "; note: the account is disabled" : "");
    return EXIT_SUCCESS;
}

static bool admin_password(const char *email, char hash[IDENTITY_HASH_MAX])
{
    char buf[PASSWORD_MAX + 2];
    const char *env = getenv("PLEXUS_ADMIN_PASSWORD");
    const char *why;
    bool ok = false;

    if (env && *env)
        snprintf(buf, sizeof buf, "%s", env);
    else if (!password_read(buf, sizeof buf)) {
        fprintf(stderr, "plexusd: expected the password in PLEXUS_ADMIN_PASSWORD "
                "or as one line on stdin\n");
        return false;
    }
    why = identity_password_weakness(buf, email,
                                     (int)core_config_int(core_cfg, "auth",
                                                          "password_min_length"));
    if (why)
        fprintf(stderr, "plexusd: password refused: %s\n", why);
    else if (identity_password_hash(buf, hash) != PLX_OK)
        fprintf(stderr, "plexusd: could not hash the password\n");
    else
        ok = true;
    identity_wipe(buf, sizeof buf);
    return ok;
}

static int admin_create(const char *email)
{
    char hash[IDENTITY_HASH_MAX];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (!admin_password(email, hash))
        return EXIT_FAILURE;
    const char *params[2] = { email, hash };
    st = core_db_query(NULL, "INSERT INTO plexus.users (email, password_hash, role, "
                       "email_verified_at) VALUES ($1, $2, 'admin', now()) RETURNING id",
                       2, params, &res);
    identity_wipe(hash, sizeof hash);
    if (st != PLX_OK || core_db_rows(res) != 1) {
        fprintf(stderr, "plexusd: could not create \"%s\": %s\n", email,
                st == PLX_ERR_CONFLICT ? "the email was taken meanwhile"
                                       : core_status_str(st));
        core_db_free(res);
        return EXIT_FAILURE;
    }
    char id[37];
    snprintf(id, sizeof id, "%s", core_db_value(res, 0, 0));
    core_db_free(res);
    json_t *det = json_pack("{s:s, s:b, s:s}", "role", "admin", "created", 1,
                            "via", "create-admin");
    identity_audit_actor(NULL, NULL, "admin.user_updated", "user", id, det);
    json_decref(det);
    printf("created admin \"%s\" (%s)\n", email, id);
    return EXIT_SUCCESS;
}

int core_identity_create_admin(const char *email)
{
    plx_db_res_t *res = NULL;
    plx_status_t st;
    int rc;

    if (!email || !email_plausible(email)) {
        fprintf(stderr, "plexusd: create-admin: expected --email with an address "
                "like name@example.com\n");
        return 2;
    }
    const char *params[1] = { email };
    st = core_db_query(NULL, "SELECT id, role, disabled_at IS NOT NULL FROM plexus.users "
                       "WHERE lower(email) = lower($1)", 1, params, &res);
    if (st != PLX_OK) {
        fprintf(stderr, "plexusd: create-admin: database error: %s\n",
                core_status_str(st));
        return EXIT_FAILURE;
    }
    if (core_db_rows(res) == 1)
        rc = admin_promote(email, core_db_value(res, 0, 0), core_db_value(res, 0, 1),
                           core_db_value(res, 0, 2)[0] == 't');
    else
        rc = admin_create(email);
    core_db_free(res);
    return rc;
}
