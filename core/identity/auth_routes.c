/*
 * auth_routes.c - accounts and sessions: register, verify email, log in
 * (with throttling), refresh (rotation with reuse detection), log out,
 * sessions, me, password change, forgotten password and reset
 *
 * A session is one login; its refresh tokens form one family. Each refresh
 * marks the presented token used and issues the next one in the same
 * session, under SELECT ... FOR UPDATE so two refreshes racing with one
 * token cannot both win. A used token presented again means it was copied:
 * the whole session is revoked, and with it every access token that names
 * it (authn.c checks the session on each request).
 *
 * Login throttling lives in PostgreSQL so every instance sees it: per
 * account in users.failed_logins/locked_until, per client address in
 * plexus.login_throttle ("ip:<address>"). An email that has no account is
 * throttled exactly like one that has, in login_throttle under
 * "acct:<digest of the address>", and its password is checked against a
 * dummy argon2 hash, so neither the answer, its timing nor the lockout
 * tells an attacker whether an account exists.
 *
 * Secrets are stored as digests: refresh tokens and email tokens as
 * SHA-256 (they are 256-bit random, a fast hash is enough), passwords as
 * argon2id. Several writes that must go together are one statement with
 * data-modifying CTEs (atomic on their own) or an explicit transaction.
 */
#include "config.h"
#include "core.h"
#include "conf.h"
#include "db.h"
#include "http.h"
#include "loader.h"
#include "identity/identity.h"
#include "identity/crypto.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EMAIL_MAX        254
#define PASSWORD_MAX     1024      /* bytes; the policy caps code points at 128 */
#define TOKEN_FIELD_MAX  256
#define CODE_FIELD_MAX   64
#define TOKEN_BYTES      32
#define TOKEN_TEXT       48        /* base64url of 32 bytes, NUL */
#define UA_MAX           512

/* ---- small helpers ---------------------------------------------------------- */

static void num_text(char out[24], long v)
{
    snprintf(out, 24, "%ld", v);
}

/* an optional string member: NULL when absent; *bad set (and 400 sent)
 * when present but not acceptable */
static const char *body_optional(plx_request_t *r, json_t *body,
                                 const char *field, size_t max, bool *bad)
{
    if (!json_object_get(body, field) || json_is_null(json_object_get(body, field)))
        return NULL;
    const char *s = identity_body_string(r, body, field, max);
    if (!s)
        *bad = true;
    return s;
}

/* printable ASCII copy (for user agent and address columns): text that is
 * always valid UTF-8 and bounded */
static void ascii_copy(char *out, size_t outlen, const char *in)
{
    size_t n = 0;

    for (; in && *in && n + 1 < outlen; in++)
        out[n++] = (*in >= 0x20 && *in <= 0x7e) ? *in : '?';
    out[n] = '\0';
}

static void token_digest(const char *token, char out[67])
{
    identity_sha256_hex(token, strlen(token), out);
}

/* ---- email tokens ------------------------------------------------------------- */

/* a single-use link by email: the token's digest is stored, the token
 * only travels in the message */
static plx_status_t email_link_send(plx_request_t *r, const char *user_id,
                                    const char *email, const char *purpose,
                                    long ttl_s, const char *path,
                                    const char *subject, const char *intro)
{
    char token[TOKEN_TEXT], digest[67], ttl[24], body[1024];
    plx_status_t st;

    if (!identity_random_token(TOKEN_BYTES, token, sizeof token))
        return PLX_ERR_INTERNAL;
    token_digest(token, digest);
    num_text(ttl, ttl_s);
    const char *params[] = { user_id, purpose, digest, ttl };
    st = core_db_query(r, "INSERT INTO plexus.email_tokens"
                          " (user_id, purpose, token_hash, expires_at)"
                          " VALUES ($1, $2, $3::bytea,"
                          "         now() + $4::bigint * interval '1 second')",
                       4, params, NULL);
    if (st != PLX_OK)
        return st;
    snprintf(body, sizeof body,
             "%s\n\n%s%s?token=%s\n\nThe link works once and expires in %ld minutes.\n"
             "If you did not ask for this, ignore this message.\n",
             intro, identity_settings.public_url, path, token, ttl_s / 60);
    st = identity_email_enqueue(email, subject, body);
    identity_wipe(token, sizeof token);
    identity_wipe(body, sizeof body);
    return st;
}

static plx_status_t send_verification(plx_request_t *r, const char *user_id,
                                      const char *email)
{
    return email_link_send(r, user_id, email, "verify_email",
                           identity_settings.email_token_ttl_s, "/verify-email",
                           "Confirm your email address",
                           "Open this link to confirm your email address:");
}

/* ASVS 2.2.3: tell the owner when a credential changes */
static void notify(const char *email, const char *subject, const char *text)
{
    if (identity_email_enqueue(email, subject, text) != PLX_OK)
        LOG_WARN("could not enqueue the \"%s\" notice", subject);
}

/* ---- sessions and tokens -------------------------------------------------------- */

static plx_status_t session_create(plx_request_t *r, const char *user_id,
                                   char sid[37], char refresh[TOKEN_TEXT])
{
    char digest[67], ttl[24], ua[UA_MAX + 1], ip[65];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (!identity_random_token(TOKEN_BYTES, refresh, TOKEN_TEXT))
        return PLX_ERR_INTERNAL;
    token_digest(refresh, digest);
    num_text(ttl, identity_settings.refresh_ttl_s);
    ascii_copy(ua, sizeof ua, core_request_header(r, "User-Agent"));
    ascii_copy(ip, sizeof ip, core_request_remote_addr(r));
    const char *params[] = { user_id, ttl, ua[0] ? ua : NULL, ip, digest };
    st = core_db_query(r,
        "WITH s AS (INSERT INTO plexus.sessions (user_id, expires_at, user_agent, ip)"
        "  VALUES ($1, now() + $2::bigint * interval '1 second', $3, $4)"
        "  RETURNING id, expires_at)"
        " INSERT INTO plexus.refresh_tokens (session_id, token_hash, expires_at)"
        " SELECT id, $5::bytea, expires_at FROM s RETURNING session_id",
        5, params, &res);
    if (st != PLX_OK)
        return st;
    snprintf(sid, 37, "%s", core_db_value(res, 0, 0));
    return PLX_OK;
}

/* 200 {"access_token","token_type","expires_in","refresh_token"} */
static plx_status_t reply_tokens(plx_request_t *r, const char *user_id,
                                 const char *sid, const char *refresh)
{
    identity_claims_t c;
    char *access = NULL;
    json_t *body;
    plx_status_t st;

    memset(&c, 0, sizeof c);
    snprintf(c.sub, sizeof c.sub, "%s", user_id);
    snprintf(c.sid, sizeof c.sid, "%s", sid);
    st = identity_jwt_issue(&c, identity_settings.access_ttl_s, &access);
    if (st != PLX_OK)
        return st;
    body = json_pack("{s:s, s:s, s:I, s:s}", "access_token", access,
                     "token_type", "Bearer",
                     "expires_in", (json_int_t)identity_settings.access_ttl_s,
                     "refresh_token", refresh);
    free(access);
    if (!body)
        return PLX_ERR_NOMEM;
    return core_reply_json(r, 200, body);
}

/* ---- login throttling ------------------------------------------------------------ */

plx_status_t identity_reply_locked(plx_request_t *r, long seconds)
{
    char retry[24];

    if (seconds < 1)
        seconds = 1;
    num_text(retry, seconds);
    core_response_header(r, "Retry-After", retry);
    return core_reply_problem(r, 429, "login_locked",
                              "too many failed attempts; try again in %ld seconds",
                              seconds);
}

/* the same answer for an unknown email and a wrong password */
static plx_status_t reply_bad_credentials(plx_request_t *r)
{
    return core_reply_problem(r, 401, "invalid_credentials",
                              "the email or the password is wrong");
}

static void key_for_ip(plx_request_t *r, char out[72])
{
    char ip[65];

    ascii_copy(ip, sizeof ip, core_request_remote_addr(r));
    snprintf(out, 72, "ip:%s", ip);
}

static void key_for_email(const char *email, char out[72])
{
    char lower[EMAIL_MAX + 1], b64[48];
    unsigned char d[32];
    size_t n = 0;

    for (; email[n] && n < EMAIL_MAX; n++)
        lower[n] = (char)tolower((unsigned char)email[n]);
    lower[n] = '\0';
    identity_sha256(lower, n, d);
    core_base64_encode(PLX_B64_URL, d, sizeof d, b64, sizeof b64);
    snprintf(out, 72, "acct:%s", b64);
}

/* seconds a throttle key stays locked, 0 when it is not */
static plx_status_t throttle_locked(plx_request_t *r, const char *key, long *secs)
{
    plx_db_res_t *res = NULL;
    const char *params[] = { key };
    plx_status_t st = core_db_query(r,
        "SELECT ceil(extract(epoch FROM locked_until - now()))::bigint"
        "  FROM plexus.login_throttle WHERE address = $1 AND locked_until > now()",
        1, params, &res);

    *secs = 0;
    if (st == PLX_OK && core_db_rows(res) == 1)
        *secs = strtol(core_db_value(res, 0, 0), NULL, 10);
    return st;
}

/* One more failure for key. Counting restarts once a lock has expired or,
 * with a window, once the window has passed. *locked: the key is locked
 * now. */
static plx_status_t throttle_fail(plx_request_t *r, const char *key, int max,
                                  bool windowed, bool *locked)
{
    char smax[24], lock[24];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    num_text(smax, max);
    num_text(lock, identity_settings.login_lockout_s);
    const char *params[] = { key, smax, lock, windowed ? "t" : "f" };
    st = core_db_query(r,
        "INSERT INTO plexus.login_throttle AS t (address, failures, window_start, locked_until)"
        " VALUES ($1, 1, now(), CASE WHEN 1 >= $2::int"
        "         THEN now() + $3::bigint * interval '1 second' END)"
        " ON CONFLICT (address) DO UPDATE SET"
        "  failures = CASE WHEN t.locked_until <= now() OR ($4::bool AND"
        "      t.window_start < now() - $3::bigint * interval '1 second')"
        "    THEN 1 ELSE t.failures + 1 END,"
        "  window_start = CASE WHEN t.locked_until <= now() OR ($4::bool AND"
        "      t.window_start < now() - $3::bigint * interval '1 second')"
        "    THEN now() ELSE t.window_start END,"
        "  locked_until = CASE WHEN (CASE WHEN t.locked_until <= now() OR ($4::bool AND"
        "      t.window_start < now() - $3::bigint * interval '1 second')"
        "    THEN 1 ELSE t.failures + 1 END) >= $2::int"
        "    THEN now() + $3::bigint * interval '1 second'"
        "    WHEN t.locked_until <= now() THEN NULL ELSE t.locked_until END"
        " RETURNING coalesce(locked_until > now(), false)",
        4, params, &res);
    *locked = st == PLX_OK && identity_db_bool(res, 0, 0);
    return st;
}

plx_status_t identity_account_failure(plx_request_t *r, const char *user_id,
                                      bool *locked)
{
    char smax[24], lock[24];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    num_text(smax, identity_settings.login_max_failures);
    num_text(lock, identity_settings.login_lockout_s);
    const char *params[] = { user_id, smax, lock };
    st = core_db_query(r,
        "UPDATE plexus.users SET"
        "  failed_logins = CASE WHEN locked_until <= now() THEN 1"
        "    ELSE failed_logins + 1 END,"
        "  locked_until = CASE WHEN (CASE WHEN locked_until <= now() THEN 1"
        "    ELSE failed_logins + 1 END) >= $2::int"
        "    THEN now() + $3::bigint * interval '1 second'"
        "    WHEN locked_until <= now() THEN NULL ELSE locked_until END"
        " WHERE id = $1 RETURNING coalesce(locked_until > now(), false)",
        3, params, &res);
    *locked = st == PLX_OK && core_db_rows(res) == 1 && identity_db_bool(res, 0, 0);
    return st;
}

/* A failed attempt: charge the account (or the unknown email's key) and
 * the client address, then answer 429 if either is now locked, else 401. */
static plx_status_t login_failed(plx_request_t *r, const char *user_id,
                                 const char *email, const char *why)
{
    char key[72];
    bool acct_locked = false, ip_locked = false;
    plx_status_t st;

    if (user_id) {
        st = identity_account_failure(r, user_id, &acct_locked);
    } else {
        key_for_email(email, key);
        st = throttle_fail(r, key, identity_settings.login_max_failures, false,
                           &acct_locked);
    }
    if (st != PLX_OK)
        return st;
    key_for_ip(r, key);
    st = throttle_fail(r, key, identity_settings.login_ip_max_failures, true, &ip_locked);
    if (st != PLX_OK)
        return st;
    json_t *details = json_pack("{s:s}", "reason", why);
    identity_audit_actor(r, user_id, "auth.login_failed", "user", user_id, details);
    json_decref(details);
    if (acct_locked || ip_locked)
        return identity_reply_locked(r, identity_settings.login_lockout_s);
    if (strcmp(why, "mfa") == 0)
        return core_reply_problem(r, 401, "invalid_mfa_code",
                                  "the second-factor code is wrong or was already used");
    return reply_bad_credentials(r);
}

static plx_status_t account_succeeded(plx_request_t *r, const char *user_id)
{
    const char *params[] = { user_id };

    return core_db_query(r, "UPDATE plexus.users SET failed_logins = 0, locked_until = NULL"
                            " WHERE id = $1"
                            "   AND (failed_logins <> 0 OR locked_until IS NOT NULL)",
                         1, params, NULL);
}

/* ---- dummy hash: unknown emails cost the same argon2 time ----------------------- */

static char dummy_hash[IDENTITY_HASH_MAX];
static pthread_once_t dummy_once = PTHREAD_ONCE_INIT;

static void dummy_make(void)
{
    char pw[TOKEN_TEXT];

    if (!identity_random_token(24, pw, sizeof pw)
        || identity_password_hash(pw, dummy_hash) != PLX_OK)
        dummy_hash[0] = '\0';
}

static void spend_hash_time(const char *password)
{
    pthread_once(&dummy_once, dummy_make);
    (void)identity_password_verify(dummy_hash, password);
}

/* ---- register, verify ------------------------------------------------------------- */

static json_t *user_json(const plx_db_res_t *res, int row)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:s}",
                     "id", core_db_value(res, row, 0),
                     "email", core_db_value(res, row, 1),
                     "role", core_db_value(res, row, 2),
                     "email_verified", identity_db_bool(res, row, 3),
                     "mfa_enabled", identity_db_bool(res, row, 4),
                     "created_at", core_db_value(res, row, 5));
}

#define USER_COLS "id, email, role, email_verified_at IS NOT NULL," \
                  " mfa_enabled_at IS NOT NULL, " PLX_SQL_RFC3339("created_at")

static plx_status_t h_register(plx_request_t *r, void *arg)
{
    char hash[IDENTITY_HASH_MAX];
    plx_db_res_t *res = NULL;
    const char *email, *password, *weak;
    json_t *body = identity_body_object(r);
    plx_status_t st;

    (void)arg;
    if (!body || !(email = identity_body_string(r, body, "email", EMAIL_MAX))
        || !(password = identity_body_string(r, body, "password", PASSWORD_MAX)))
        return PLX_OK;
    if (!identity_email_valid(email))
        return identity_bad_field(r, "email", "must be a valid email address");
    weak = identity_password_weakness(password, email, identity_settings.password_min_length);
    if (weak)
        return identity_bad_field(r, "password", weak);
    st = identity_password_hash(password, hash);
    if (st != PLX_OK)
        return st;
    const char *params[] = { email, hash };
    st = core_db_query(r, "INSERT INTO plexus.users (email, password_hash) VALUES ($1, $2)"
                          " RETURNING " USER_COLS, 2, params, &res);
    identity_wipe(hash, sizeof hash);
    if (st == PLX_ERR_CONFLICT)
        return core_reply_problem(r, 409, "email_taken",
                                  "an account with this email already exists");
    if (st != PLX_OK)
        return st;
    if (send_verification(r, core_db_value(res, 0, 0), email) != PLX_OK)
        core_log(PLX_LOG_WARN, "identity", core_request_id(r),
                 "verification email for a new account not queued");
    return core_reply_json(r, 201, user_json(res, 0));
}

static plx_status_t h_verify_email(plx_request_t *r, void *arg)
{
    char digest[67];
    plx_db_res_t *res = NULL;
    json_t *body = identity_body_object(r);
    const char *token;
    plx_status_t st;

    (void)arg;
    if (!body || !(token = identity_body_string(r, body, "token", TOKEN_FIELD_MAX)))
        return PLX_OK;
    token_digest(token, digest);
    const char *params[] = { digest };
    st = core_db_query(r,
        "WITH t AS (UPDATE plexus.email_tokens SET used_at = now()"
        "   WHERE token_hash = $1::bytea AND purpose = 'verify_email'"
        "     AND used_at IS NULL AND expires_at > now() RETURNING user_id)"
        " UPDATE plexus.users u SET email_verified_at = coalesce(u.email_verified_at, now()),"
        "   updated_at = now() FROM t WHERE u.id = t.user_id RETURNING u.id",
        1, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return core_reply_problem(r, 400, "invalid_token",
                                  "the link is not valid, already used or expired");
    return core_reply_json(r, 200, json_pack("{s:b}", "email_verified", 1));
}

static plx_status_t h_resend_verification(plx_request_t *r, void *arg)
{
    plx_db_res_t *res = NULL;
    const char *uid = identity_caller(r);
    plx_status_t st;

    (void)arg;
    const char *params[] = { uid };
    st = core_db_query(r, "SELECT email, email_verified_at IS NOT NULL FROM plexus.users"
                          " WHERE id = $1", 1, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return PLX_ERR_AUTH;
    if (identity_db_bool(res, 0, 1))
        return core_reply_problem(r, 409, "already_verified",
                                  "the email address is already confirmed");
    st = send_verification(r, uid, core_db_value(res, 0, 0));
    if (st != PLX_OK)
        return st;
    return core_reply_json(r, 202, json_pack("{s:s}", "status", "sent"));
}

/* ---- login ----------------------------------------------------------------------- */

typedef struct login_req {
    const char *email, *password, *totp, *recovery;
} login_req_t;

static bool login_parse(plx_request_t *r, login_req_t *q)
{
    json_t *body = identity_body_object(r);
    bool bad = false;

    if (!body || !(q->email = identity_body_string(r, body, "email", EMAIL_MAX))
        || !(q->password = identity_body_string(r, body, "password", PASSWORD_MAX)))
        return false;
    q->totp = body_optional(r, body, "totp_code", CODE_FIELD_MAX, &bad);
    if (!bad)
        q->recovery = body_optional(r, body, "recovery_code", CODE_FIELD_MAX, &bad);
    if (!bad && q->totp && q->recovery) {
        identity_bad_field(r, "recovery_code", "cannot be sent with totp_code");
        bad = true;
    }
    return !bad;
}

/* after the password matched: the account's state, the second factor,
 * then a new session */
static plx_status_t login_finish(plx_request_t *r, const plx_db_res_t *u,
                                 const login_req_t *q)
{
    const char *uid = core_db_value(u, 0, 0);
    char sid[37], refresh[TOKEN_TEXT];
    plx_status_t st;

    if (identity_db_bool(u, 0, 2))
        return core_reply_problem(r, 403, "account_disabled", "this account is disabled");
    if (identity_settings.require_verified_email && !identity_db_bool(u, 0, 3))
        return core_reply_problem(r, 403, "email_not_verified",
                                  "confirm your email address before logging in");
    if (identity_db_bool(u, 0, 4)) {
        if (!q->totp && !q->recovery)
            return core_reply_problem(r, 401, "mfa_required",
                                      "a second factor is required: send totp_code or "
                                      "recovery_code");
        st = identity_mfa_check(r, uid, q->totp, q->recovery);
        if (st == PLX_ERR_AUTH)
            return login_failed(r, uid, q->email, "mfa");
        if (st != PLX_OK)
            return st;
    }
    if ((st = account_succeeded(r, uid)) != PLX_OK
        || (st = session_create(r, uid, sid, refresh)) != PLX_OK)
        return st;
    json_t *details = json_pack("{s:s}", "session_id", sid);
    identity_audit_actor(r, uid, "auth.login", "session", sid, details);
    json_decref(details);
    st = reply_tokens(r, uid, sid, refresh);
    identity_wipe(refresh, sizeof refresh);
    return st;
}

static plx_status_t h_login(plx_request_t *r, void *arg)
{
    login_req_t q = { 0 };
    plx_db_res_t *u = NULL;
    char key[72];
    long secs = 0;
    plx_status_t st;

    (void)arg;
    if (!login_parse(r, &q))
        return PLX_OK;
    key_for_ip(r, key);
    if ((st = throttle_locked(r, key, &secs)) != PLX_OK)
        return st;
    if (secs > 0)
        return identity_reply_locked(r, secs);
    const char *params[] = { q.email };
    st = core_db_query(r,
        "SELECT id, password_hash, disabled_at IS NOT NULL, email_verified_at IS NOT NULL,"
        "  mfa_enabled_at IS NOT NULL,"
        "  coalesce(ceil(extract(epoch FROM locked_until - now()))::bigint, 0)"
        " FROM plexus.users WHERE lower(email) = lower($1)", 1, params, &u);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(u) != 1) {
        key_for_email(q.email, key);
        if ((st = throttle_locked(r, key, &secs)) != PLX_OK)
            return st;
        if (secs > 0)
            return identity_reply_locked(r, secs);
        spend_hash_time(q.password);
        return login_failed(r, NULL, q.email, "unknown_email");
    }
    secs = strtol(core_db_value(u, 0, 5), NULL, 10);
    if (secs > 0)
        return identity_reply_locked(r, secs);
    if (!identity_password_verify(core_db_value(u, 0, 1), q.password))
        return login_failed(r, core_db_value(u, 0, 0), q.email, "password");
    return login_finish(r, u, &q);
}

bool identity_password_recheck(plx_request_t *r, const char *user_id,
                               const char *password)
{
    plx_db_res_t *res = NULL;
    bool locked = false;
    long secs;
    const char *params[] = { user_id };
    plx_status_t st = core_db_query(r,
        "SELECT password_hash,"
        "  coalesce(ceil(extract(epoch FROM locked_until - now()))::bigint, 0)"
        " FROM plexus.users WHERE id = $1", 1, params, &res);

    if (st != PLX_OK || core_db_rows(res) != 1) {
        core_reply_problem(r, st == PLX_OK ? 401 : 503,
                           st == PLX_OK ? "invalid_token" : "database_unavailable",
                           st == PLX_OK ? "the account no longer exists"
                                        : "the database is not available");
        return false;
    }
    secs = strtol(core_db_value(res, 0, 1), NULL, 10);
    if (secs > 0) {
        identity_reply_locked(r, secs);
        return false;
    }
    if (identity_password_verify(core_db_value(res, 0, 0), password))
        return true;
    if (identity_account_failure(r, user_id, &locked) == PLX_OK && locked)
        identity_reply_locked(r, identity_settings.login_lockout_s);
    else
        core_reply_problem(r, 403, "invalid_password", "the password is wrong");
    return false;
}

/* ---- refresh ------------------------------------------------------------------------ */

typedef struct rotation {
    char user_id[37], sid[37], refresh[TOKEN_TEXT];
    bool reused, dead;
} rotation_t;

static plx_status_t rotate_locked(plx_db_conn_t *c, const plx_db_res_t *row,
                                  rotation_t *out)
{
    char digest[67], ttl[24];
    const char *token_id = core_db_value(row, 0, 0);
    plx_status_t st;

    if (!identity_random_token(TOKEN_BYTES, out->refresh, sizeof out->refresh))
        return PLX_ERR_INTERNAL;
    token_digest(out->refresh, digest);
    num_text(ttl, identity_settings.refresh_ttl_s);
    const char *p1[] = { token_id };
    const char *p2[] = { out->sid, digest, ttl };
    st = core_db_exec(c, "UPDATE plexus.refresh_tokens SET used_at = now() WHERE id = $1",
                      1, p1, NULL);
    if (st == PLX_OK)
        st = core_db_exec(c,
            "WITH s AS (UPDATE plexus.sessions SET last_used_at = now(),"
            "   expires_at = now() + $3::bigint * interval '1 second'"
            "   WHERE id = $1 RETURNING id, expires_at)"
            " INSERT INTO plexus.refresh_tokens (session_id, token_hash, expires_at)"
            " SELECT id, $2::bytea, expires_at FROM s", 3, p2, NULL);
    return st;
}

static plx_status_t revoke_family(plx_db_conn_t *c, const char *sid)
{
    const char *params[] = { sid };

    return core_db_exec(c, "UPDATE plexus.sessions SET revoked_at = now(),"
                           " revoked_reason = 'refresh_reuse'"
                           " WHERE id = $1 AND revoked_at IS NULL", 1, params, NULL);
}

typedef struct rotate_arg {
    const char *token;
    rotation_t *out;
} rotate_arg_t;

/* Lock the token's row, then rotate it, or revoke its whole session when
 * it was already used. A dead token changes nothing: PLX_DECLINED rolls
 * back. */
static plx_status_t rotate_fn(plx_db_conn_t *c, void *arg)
{
    const rotate_arg_t *a = arg;
    rotation_t *out = a->out;
    char digest[67];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    token_digest(a->token, digest);
    const char *params[] = { digest };
    st = core_db_exec(c,
        "SELECT rt.id, rt.used_at IS NOT NULL, rt.expires_at <= now()"
        "   OR s.revoked_at IS NOT NULL OR s.expires_at <= now()"
        "   OR u.disabled_at IS NOT NULL, s.id, s.user_id"
        "  FROM plexus.refresh_tokens rt"
        "  JOIN plexus.sessions s ON s.id = rt.session_id"
        "  JOIN plexus.users u ON u.id = s.user_id"
        " WHERE rt.token_hash = $1::bytea FOR UPDATE OF rt, s", 1, params, &res);
    if (st == PLX_OK && core_db_rows(res) == 1) {
        snprintf(out->sid, sizeof out->sid, "%s", core_db_value(res, 0, 3));
        snprintf(out->user_id, sizeof out->user_id, "%s", core_db_value(res, 0, 4));
        out->reused = identity_db_bool(res, 0, 1);
        out->dead = !out->reused && identity_db_bool(res, 0, 2);
        if (out->reused)
            st = revoke_family(c, out->sid);
        else if (!out->dead)
            st = rotate_locked(c, res, out);
    } else if (st == PLX_OK) {
        out->dead = true;
    }
    core_db_free(res);
    return st == PLX_OK && out->dead ? PLX_DECLINED : st;
}

/* in one transaction: see rotate_fn */
static plx_status_t rotate(const char *token, rotation_t *out)
{
    rotate_arg_t a = { token, out };
    plx_status_t st = core_db_tx(NULL, PLX_TX_READ_COMMITTED, rotate_fn, &a);

    return st == PLX_DECLINED ? PLX_OK : st;
}

static plx_status_t h_refresh(plx_request_t *r, void *arg)
{
    rotation_t rot;
    json_t *body = identity_body_object(r);
    const char *token;
    plx_status_t st;

    (void)arg;
    if (!body || !(token = identity_body_string(r, body, "refresh_token", TOKEN_FIELD_MAX)))
        return PLX_OK;
    memset(&rot, 0, sizeof rot);
    st = rotate(token, &rot);
    if (st != PLX_OK)
        return st;
    if (rot.reused) {
        json_t *details = json_pack("{s:s}", "session_id", rot.sid);
        identity_audit_actor(r, rot.user_id, "auth.refresh_reuse", "session", rot.sid,
                             details);
        json_decref(details);
        core_log(PLX_LOG_WARN, "identity", core_request_id(r),
                 "refresh token reused: session \"%s\" revoked", rot.sid);
        return core_reply_problem(r, 401, "refresh_token_reused",
                                  "this refresh token was already used; the session "
                                  "is revoked, log in again");
    }
    if (rot.dead)
        return core_reply_problem(r, 401, "invalid_token",
                                  "the refresh token is not valid or has expired");
    st = reply_tokens(r, rot.user_id, rot.sid, rot.refresh);
    identity_wipe(rot.refresh, sizeof rot.refresh);
    return st;
}

/* ---- logout, sessions --------------------------------------------------------------- */

static plx_status_t h_logout(plx_request_t *r, void *arg)
{
    const core_principal_t *p = core_request_principal(r);
    const char *body_text = NULL, *token = NULL;
    char digest[67] = "";
    size_t len = 0;
    plx_db_res_t *res = NULL;
    plx_status_t st;

    (void)arg;
    if ((st = core_request_body(r, &body_text, &len)) != PLX_OK)
        return st;
    if (len > 0) {
        json_t *body = identity_body_object(r);
        bool bad = false;
        if (!body)
            return PLX_OK;
        token = body_optional(r, body, "refresh_token", TOKEN_FIELD_MAX, &bad);
        if (bad)
            return PLX_OK;
    }
    if (token)
        token_digest(token, digest);
    if (!token && !p->session_id[0])
        return core_reply_problem(r, 400, "no_session",
                                  "this credential has no session; send refresh_token");
    const char *params[] = { p->user_id, p->session_id[0] ? p->session_id : NULL,
                             token ? digest : NULL };
    st = core_db_query(r,
        "UPDATE plexus.sessions SET revoked_at = now(), revoked_reason = 'logout'"
        " WHERE user_id = $1 AND revoked_at IS NULL AND (id = $2::uuid OR id ="
        "  (SELECT session_id FROM plexus.refresh_tokens WHERE token_hash = $3::bytea))"
        " RETURNING id", 3, params, &res);
    if (st != PLX_OK)
        return st;
    for (int i = 0; i < core_db_rows(res); i++)
        core_audit(r, "auth.logout", "session", core_db_value(res, i, 0), NULL);
    return core_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

static json_t *session_json(const plx_db_res_t *res, int i, const char *current)
{
    const char *ua = core_db_value(res, i, 4);

    return json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:b}",
                     "id", core_db_value(res, i, 0),
                     "created_at", core_db_value(res, i, 1),
                     "last_used_at", core_db_value(res, i, 2),
                     "expires_at", core_db_value(res, i, 3),
                     "user_agent", ua && *ua ? json_string(ua) : json_null(),
                     "ip", core_db_value(res, i, 5),
                     "current", strcmp(core_db_value(res, i, 0), current) == 0);
}

static plx_status_t h_sessions(plx_request_t *r, void *arg)
{
    const core_principal_t *p = core_request_principal(r);
    plx_page_t page;
    char lim[16];
    int rows;
    plx_db_res_t *res = NULL;
    json_t *items;
    plx_status_t st;
    const char *next = NULL;

    (void)arg;
    if ((st = identity_list_params(r, "sessions", &page, lim)) != PLX_OK)
        return st;
    const char *params[] = { p->user_id, lim, page.key, page.id };
    st = core_db_query(r,
        "SELECT id, " PLX_SQL_RFC3339("created_at") ", " PLX_SQL_RFC3339("last_used_at")
        ", " PLX_SQL_RFC3339("expires_at") ","
        "  user_agent, coalesce(ip, ''), " PLX_SQL_TIME_KEY("created_at")
        " FROM plexus.sessions WHERE user_id = $1 AND revoked_at IS NULL"
        "  AND expires_at > now()"
        "  AND ($3::timestamptz IS NULL OR (created_at, id) < ($3::timestamptz, $4::uuid))"
        " ORDER BY created_at DESC, id DESC LIMIT $2::int", 4, params, &res);
    if (st != PLX_OK)
        return st;
    rows = core_db_rows(res);
    items = json_array();
    for (int i = 0; i < rows && i < page.limit; i++)
        json_array_append_new(items, session_json(res, i, p->session_id));
    if (rows > page.limit)
        next = core_page_cursor(r, "sessions", PLX_KEY_TIME,
                                core_db_value(res, page.limit - 1, 6),
                                core_db_value(res, page.limit - 1, 0));
    return core_reply_json(r, 200, json_pack("{s:o, s:s?}", "items", items,
                                             "next_cursor", next));
}

static plx_status_t h_session_delete(plx_request_t *r, void *arg)
{
    const char *id = core_request_param(r, "id");
    plx_db_res_t *res = NULL;
    plx_status_t st;

    (void)arg;
    if (identity_refuse_api_key(r))
        return PLX_OK;
    if (!core_uuid_valid(id))
        return core_reply_problem(r, 404, "not_found", "no such session");
    const char *params[] = { id, identity_caller(r) };
    st = core_db_query(r, "UPDATE plexus.sessions SET revoked_at = now(),"
                          " revoked_reason = 'revoked' WHERE id = $1 AND user_id = $2"
                          " AND revoked_at IS NULL RETURNING id", 2, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return core_reply_problem(r, 404, "not_found", "no such session");
    core_audit(r, "auth.logout", "session", id, NULL);
    return core_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

static plx_status_t h_me(plx_request_t *r, void *arg)
{
    plx_db_res_t *res = NULL;
    const char *params[] = { identity_caller(r) };
    plx_status_t st;

    (void)arg;
    st = core_db_query(r, "SELECT " USER_COLS " FROM plexus.users WHERE id = $1",
                       1, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return PLX_ERR_AUTH;
    return core_reply_json(r, 200, user_json(res, 0));
}

/* ---- passwords ------------------------------------------------------------------------ */

static plx_status_t h_password_change(plx_request_t *r, void *arg)
{
    const core_principal_t *p = core_request_principal(r);
    char hash[IDENTITY_HASH_MAX], email[EMAIL_MAX + 1];
    plx_db_res_t *res = NULL;
    const char *cur, *next, *weak;
    json_t *body;
    plx_status_t st;

    (void)arg;
    if (identity_refuse_api_key(r) || !(body = identity_body_object(r))
        || !(cur = identity_body_string(r, body, "current_password", PASSWORD_MAX))
        || !(next = identity_body_string(r, body, "new_password", PASSWORD_MAX)))
        return PLX_OK;
    const char *p1[] = { p->user_id };
    if ((st = core_db_query(r, "SELECT email FROM plexus.users WHERE id = $1", 1, p1,
                            &res)) != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return PLX_ERR_AUTH;
    snprintf(email, sizeof email, "%s", core_db_value(res, 0, 0));
    if (!identity_password_recheck(r, p->user_id, cur))
        return PLX_OK;
    weak = identity_password_weakness(next, email, identity_settings.password_min_length);
    if (weak)
        return identity_bad_field(r, "new_password", weak);
    if ((st = identity_password_hash(next, hash)) != PLX_OK)
        return st;
    const char *p2[] = { p->user_id, hash, p->session_id };
    st = core_db_query(r,
        "WITH u AS (UPDATE plexus.users SET password_hash = $2, password_changed_at = now(),"
        "   updated_at = now() WHERE id = $1 RETURNING id)"
        " UPDATE plexus.sessions s SET revoked_at = now(), revoked_reason = 'password_changed'"
        "  FROM u WHERE s.user_id = u.id AND s.revoked_at IS NULL AND s.id <> $3::uuid",
        3, p2, NULL);
    identity_wipe(hash, sizeof hash);
    if (st != PLX_OK)
        return st;
    core_audit(r, "auth.password_changed", "user", p->user_id, NULL);
    notify(email, "Your password was changed",
           "The password of your account was just changed, and your other sessions "
           "were signed out.\nIf this was not you, reset your password at once.\n");
    return core_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

static plx_status_t h_password_forgot(plx_request_t *r, void *arg)
{
    plx_db_res_t *res = NULL;
    json_t *body = identity_body_object(r);
    const char *email;
    plx_status_t st;

    (void)arg;
    if (!body || !(email = identity_body_string(r, body, "email", EMAIL_MAX)))
        return PLX_OK;
    if (identity_email_valid(email)) {
        const char *params[] = { email };
        st = core_db_query(r, "SELECT id, email FROM plexus.users"
                              " WHERE lower(email) = lower($1) AND disabled_at IS NULL",
                           1, params, &res);
        if (st != PLX_OK)
            return st;
        if (core_db_rows(res) == 1
            && email_link_send(r, core_db_value(res, 0, 0), core_db_value(res, 0, 1),
                               "reset_password", identity_settings.reset_token_ttl_s,
                               "/reset-password", "Reset your password",
                               "Open this link to choose a new password:") != PLX_OK)
            core_log(PLX_LOG_WARN, "identity", core_request_id(r),
                     "password reset email not queued");
    }
    /* the same answer whether or not the address has an account */
    return core_reply_json(r, 202, json_pack("{s:s}", "status", "accepted"));
}

static plx_status_t h_password_reset(plx_request_t *r, void *arg)
{
    char digest[67], hash[IDENTITY_HASH_MAX];
    plx_db_res_t *res = NULL;
    json_t *body = identity_body_object(r);
    const char *token, *next, *weak;
    plx_status_t st;

    (void)arg;
    if (!body || !(token = identity_body_string(r, body, "token", TOKEN_FIELD_MAX))
        || !(next = identity_body_string(r, body, "new_password", PASSWORD_MAX)))
        return PLX_OK;
    token_digest(token, digest);
    const char *p1[] = { digest };
    st = core_db_query(r, "SELECT u.email FROM plexus.email_tokens t"
                          " JOIN plexus.users u ON u.id = t.user_id"
                          " WHERE t.token_hash = $1::bytea AND t.purpose = 'reset_password'"
                          "   AND t.used_at IS NULL AND t.expires_at > now()", 1, p1, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return core_reply_problem(r, 400, "invalid_token",
                                  "the link is not valid, already used or expired");
    weak = identity_password_weakness(next, core_db_value(res, 0, 0),
                                      identity_settings.password_min_length);
    if (weak)
        return identity_bad_field(r, "new_password", weak);
    if ((st = identity_password_hash(next, hash)) != PLX_OK)
        return st;
    /* one statement: the token is claimed (a racing second use finds it
     * used), the password set, the account unlocked, other reset links and
     * every session ended */
    const char *p2[] = { digest, hash };
    st = core_db_query(r,
        "WITH t AS (UPDATE plexus.email_tokens SET used_at = now()"
        "   WHERE token_hash = $1::bytea AND purpose = 'reset_password'"
        "     AND used_at IS NULL AND expires_at > now() RETURNING user_id),"
        " u AS (UPDATE plexus.users x SET password_hash = $2, password_changed_at = now(),"
        "   failed_logins = 0, locked_until = NULL, updated_at = now(),"
        "   email_verified_at = coalesce(x.email_verified_at, now())"
        "   FROM t WHERE x.id = t.user_id RETURNING x.id, x.email),"
        " o AS (UPDATE plexus.email_tokens e SET used_at = now() FROM u"
        "   WHERE e.user_id = u.id AND e.purpose = 'reset_password'"
        "     AND e.used_at IS NULL AND e.token_hash <> $1::bytea),"
        " s AS (UPDATE plexus.sessions s SET revoked_at = now(),"
        "   revoked_reason = 'password_reset' FROM u"
        "   WHERE s.user_id = u.id AND s.revoked_at IS NULL)"
        " SELECT id, email FROM u", 2, p2, &res);
    identity_wipe(hash, sizeof hash);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return core_reply_problem(r, 400, "invalid_token",
                                  "the link is not valid, already used or expired");
    identity_audit_actor(r, core_db_value(res, 0, 0), "auth.password_reset", "user",
                         core_db_value(res, 0, 0), NULL);
    notify(core_db_value(res, 0, 1), "Your password was reset",
           "The password of your account was just reset, and every session was "
           "signed out.\nIf this was not you, contact your administrator.\n");
    return core_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

/* ---- registration ---------------------------------------------------------------------- */

/* Only /me is open to API keys (a key can tell whose it is, with the scope
 * profile:read); everything else here manages credentials and needs the
 * user signed in: a route that names no scope is closed to keys. */
#define AUTH_ROUTE(m, p, f, a, rc, s) { m, p, f, a, NULL, rc, s, "auth" }

static const plx_route_def_t routes[] = {
    AUTH_ROUTE("POST", "/api/v1/auth/register", h_register, PLX_AUTH_PUBLIC, "auth",
               "Create an account and send a verification email"),
    AUTH_ROUTE("POST", "/api/v1/auth/verify-email", h_verify_email, PLX_AUTH_PUBLIC, "auth",
               "Confirm an email address with the emailed token"),
    AUTH_ROUTE("POST", "/api/v1/auth/resend-verification", h_resend_verification,
               PLX_AUTH_USER, "auth", "Send the verification email again"),
    AUTH_ROUTE("POST", "/api/v1/auth/login", h_login, PLX_AUTH_PUBLIC, "auth",
               "Log in with email, password and, when enabled, a second factor"),
    AUTH_ROUTE("POST", "/api/v1/auth/refresh", h_refresh, PLX_AUTH_PUBLIC, "auth",
               "Exchange a refresh token for new tokens (rotation)"),
    AUTH_ROUTE("POST", "/api/v1/auth/logout", h_logout, PLX_AUTH_USER, NULL,
               "End the current session"),
    { "GET", "/api/v1/auth/me", h_me, PLX_AUTH_USER, "profile:read", NULL,
      "The signed-in user (or the API key's user)", "auth" },
    AUTH_ROUTE("GET", "/api/v1/auth/sessions", h_sessions, PLX_AUTH_USER, NULL,
               "List the live sessions of the signed-in user"),
    AUTH_ROUTE("DELETE", "/api/v1/auth/sessions/{id}", h_session_delete, PLX_AUTH_USER,
               NULL, "Revoke one session"),
    AUTH_ROUTE("POST", "/api/v1/auth/password", h_password_change, PLX_AUTH_USER, NULL,
               "Change the password; other sessions end"),
    AUTH_ROUTE("POST", "/api/v1/auth/password/forgot", h_password_forgot, PLX_AUTH_PUBLIC,
               "auth", "Email a password reset link (always 202)"),
    AUTH_ROUTE("POST", "/api/v1/auth/password/reset", h_password_reset, PLX_AUTH_PUBLIC,
               "auth", "Set a new password with the emailed token; every session ends"),
};

bool identity_auth_routes(void)
{
    /* made now, not on the first unknown email, whose answer would then
     * take two hashes' time */
    pthread_once(&dummy_once, dummy_make);
    if (!dummy_hash[0]) {
        LOG_ERROR("cannot make the dummy password hash");
        return false;
    }
    return core_routes_add(core_module_self(), routes, CORE_ARRAY_LEN(routes),
                           sizeof routes[0], NULL) == PLX_OK;
}
