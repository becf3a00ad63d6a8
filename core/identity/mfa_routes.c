/*
 * mfa_routes.c - the second factor: TOTP (RFC 6238) set-up, enabling with a
 * first good code, disabling, recovery codes, and the check login uses
 *
 * The TOTP secret is 20 random bytes (RFC 4226 R6), sealed with the MFA key
 * in users.mfa_secret; set-up stores it but MFA is only on once a code made
 * from it has been accepted. A code is good for one of the steps now-1,
 * now, now+1 and only once: the accepted step is written with a
 * conditional UPDATE (mfa_last_step < step), so a replay, even a racing
 * one, finds no row to update. Recovery codes (10, 80 bits each) are shown
 * once and stored as SHA-256 digests; each works once.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SECRET_BYTES     20
#define RECOVERY_COUNT   10
#define RECOVERY_BYTES   10        /* 80 bits, 16 base32 characters */
#define RECOVERY_CHARS   16
#define RECOVERY_TEXT    20        /* "xxxx-xxxx-xxxx-xxxx" */
#define CODE_MAX         64
#define PASSWORD_MAX     1024
#define TOTP_WINDOW      1

/* ---- helpers ----------------------------------------------------------------- */

static bool six_digits(const char *s)
{
    for (int i = 0; i < 6; i++) {
        if (!isdigit((unsigned char)s[i]))
            return false;
    }
    return s[6] == '\0';
}

/* "ABCD-efgh 2345-6789" -> "abcdefgh23456789"; false if not 16 base32 chars */
static bool recovery_normalise(const char *in, char out[RECOVERY_CHARS + 1])
{
    size_t n = 0;

    for (; *in; in++) {
        char c = (char)tolower((unsigned char)*in);
        if (c == '-' || c == ' ')
            continue;
        if (n >= RECOVERY_CHARS || !((c >= 'a' && c <= 'z') || (c >= '2' && c <= '7')))
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    return n == RECOVERY_CHARS;
}

static void hex_digest(const char *s, char out[65])
{
    unsigned char d[32];

    identity_sha256(s, strlen(s), d);
    core_hex_encode(d, sizeof d, out, 65);
}

/* Ten fresh codes: shown (as JSON strings) in *shown, their digests as a
 * PostgreSQL text[] literal "{hex,hex,...}" in digests. */
static bool recovery_make(json_t **shown, char digests[RECOVERY_COUNT * 66 + 3])
{
    unsigned char raw[RECOVERY_BYTES];
    char b32[RECOVERY_CHARS + 8], text[RECOVERY_TEXT], hex[65];
    size_t o = 0;

    *shown = json_array();
    digests[o++] = '{';
    for (int i = 0; i < RECOVERY_COUNT && *shown; i++) {
        if (!core_random_bytes(raw, sizeof raw)
            || identity_base32_encode(raw, sizeof raw, b32, sizeof b32) != RECOVERY_CHARS)
            break;
        for (int k = 0; k < RECOVERY_CHARS; k++)
            b32[k] = (char)tolower((unsigned char)b32[k]);
        b32[RECOVERY_CHARS] = '\0';
        snprintf(text, sizeof text, "%.4s-%.4s-%.4s-%.4s", b32, b32 + 4, b32 + 8, b32 + 12);
        hex_digest(b32, hex);
        o += (size_t)snprintf(digests + o, 67, "%s%s", i ? "," : "", hex);
        json_array_append_new(*shown, json_string(text));
    }
    identity_wipe(raw, sizeof raw);
    identity_wipe(b32, sizeof b32);
    digests[o++] = '}';
    digests[o] = '\0';
    if (*shown && json_array_size(*shown) == RECOVERY_COUNT)
        return true;
    json_decref(*shown);
    *shown = NULL;
    return false;
}

/* TOTP: the matched step of code for the sealed secret, -1 if none */
static int64_t totp_step(const char *sealed, const char *code, int64_t last_step)
{
    unsigned char *key = NULL;
    size_t keylen = 0;
    int64_t step;

    if (!sealed || !six_digits(code) || identity_unseal(sealed, &key, &keylen) != PLX_OK)
        return -1;
    step = identity_totp_verify(key, keylen, code, time(NULL), TOTP_WINDOW, last_step);
    identity_wipe(key, keylen);
    free(key);
    return step;
}

/* ---- the check used by login and by MFA changes ----------------------------- */

static plx_status_t check_recovery(plx_request_t *r, const char *user_id,
                                   const char *code)
{
    char norm[RECOVERY_CHARS + 1], hex[65];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (!recovery_normalise(code, norm))
        return PLX_ERR_AUTH;
    hex_digest(norm, hex);
    const char *params[] = { user_id, hex };
    st = core_db_query(r, "UPDATE plexus.mfa_recovery_codes SET used_at = now()"
                          " WHERE user_id = $1 AND code_hash = decode($2, 'hex')"
                          "   AND used_at IS NULL RETURNING id", 2, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return PLX_ERR_AUTH;
    json_t *details = json_pack("{s:s}", "recovery_code_id", core_db_value(res, 0, 0));
    identity_audit_actor(r, user_id, "auth.recovery_code_used", "user", user_id, details);
    json_decref(details);
    return PLX_OK;
}

static plx_status_t check_totp(plx_request_t *r, const char *user_id, const char *code)
{
    char step_text[24];
    plx_db_res_t *res = NULL;
    int64_t step;
    const char *p1[] = { user_id };
    plx_status_t st = core_db_query(r,
        "SELECT mfa_secret, coalesce(mfa_last_step, -1) FROM plexus.users"
        " WHERE id = $1 AND mfa_enabled_at IS NOT NULL", 1, p1, &res);

    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return PLX_ERR_AUTH;
    step = totp_step(core_db_value(res, 0, 0), code,
                     strtoll(core_db_value(res, 0, 1), NULL, 10));
    if (step < 0)
        return PLX_ERR_AUTH;
    snprintf(step_text, sizeof step_text, "%lld", (long long)step);
    const char *p2[] = { user_id, step_text };
    st = core_db_query(r, "UPDATE plexus.users SET mfa_last_step = $2::bigint"
                          " WHERE id = $1 AND (mfa_last_step IS NULL"
                          "   OR mfa_last_step < $2::bigint) RETURNING id", 2, p2, &res);
    if (st != PLX_OK)
        return st;
    return core_db_rows(res) == 1 ? PLX_OK : PLX_ERR_AUTH;
}

plx_status_t identity_mfa_check(plx_request_t *r, const char *user_id,
                                const char *totp_code, const char *recovery_code)
{
    if (recovery_code)
        return check_recovery(r, user_id, recovery_code);
    if (totp_code)
        return check_totp(r, user_id, totp_code);
    return PLX_ERR_AUTH;
}

/* ---- routes -------------------------------------------------------------------- */

static plx_status_t h_setup(plx_request_t *r, void *arg)
{
    unsigned char secret[SECRET_BYTES];
    char b32[48], *sealed = NULL, *uri;
    plx_db_res_t *res = NULL;
    const char *uid = identity_caller(r);
    plx_status_t st;

    (void)arg;
    if (identity_refuse_api_key(r))
        return PLX_OK;
    if (!core_random_bytes(secret, sizeof secret)
        || identity_base32_encode(secret, sizeof secret, b32, sizeof b32) < 0)
        return PLX_ERR_INTERNAL;
    st = identity_seal(secret, sizeof secret, &sealed);
    identity_wipe(secret, sizeof secret);
    if (st != PLX_OK)
        return st;
    const char *params[] = { uid, sealed };
    st = core_db_query(r, "UPDATE plexus.users SET mfa_secret = $2, mfa_last_step = NULL,"
                          " updated_at = now() WHERE id = $1 AND mfa_enabled_at IS NULL"
                          " RETURNING email", 2, params, &res);
    free(sealed);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return core_reply_problem(r, 409, "mfa_already_enabled",
                                  "the second factor is already on; disable it first");
    uri = identity_totp_uri(core_config_get(core_cfg, "auth", "issuer"),
                            core_db_value(res, 0, 0), b32);
    if (!uri)
        return PLX_ERR_NOMEM;
    json_t *body = json_pack("{s:s, s:s}", "secret", b32, "otpauth_uri", uri);
    identity_wipe(b32, sizeof b32);
    free(uri);
    return core_reply_json(r, 200, body);
}

/* the user's MFA state; PLX_OK with *enabled and the sealed secret (in r) */
static plx_status_t mfa_state(plx_request_t *r, const char *uid, bool *enabled,
                              const char **sealed, int64_t *last_step)
{
    plx_db_res_t *res = NULL;
    const char *params[] = { uid };
    plx_status_t st = core_db_query(r,
        "SELECT mfa_enabled_at IS NOT NULL, mfa_secret, coalesce(mfa_last_step, -1)"
        " FROM plexus.users WHERE id = $1", 1, params, &res);

    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return PLX_ERR_AUTH;
    *enabled = identity_db_bool(res, 0, 0);
    *sealed = core_db_value(res, 0, 1);   /* NULL when not set up */
    *last_step = strtoll(core_db_value(res, 0, 2), NULL, 10);
    return PLX_OK;
}

static plx_status_t h_enable(plx_request_t *r, void *arg)
{
    char step_text[24], digests[RECOVERY_COUNT * 66 + 3];
    const char *uid = identity_caller(r), *code, *sealed = NULL;
    plx_db_res_t *res = NULL;
    json_t *body, *codes = NULL;
    bool enabled = false;
    int64_t last = -1, step;
    plx_status_t st;

    (void)arg;
    if (identity_refuse_api_key(r) || !(body = identity_body_object(r))
        || !(code = identity_body_string(r, body, "code", CODE_MAX)))
        return PLX_OK;
    if ((st = mfa_state(r, uid, &enabled, &sealed, &last)) != PLX_OK)
        return st;
    if (enabled)
        return core_reply_problem(r, 409, "mfa_already_enabled",
                                  "the second factor is already on");
    if (!sealed)
        return core_reply_problem(r, 409, "mfa_not_set_up", "call the set-up route first");
    step = totp_step(sealed, code, last);
    if (step < 0)
        return identity_bad_field(r, "code", "is not a valid code for the secret");
    if (!recovery_make(&codes, digests))
        return PLX_ERR_INTERNAL;
    snprintf(step_text, sizeof step_text, "%lld", (long long)step);
    const char *params[] = { uid, step_text, sealed, digests };
    st = core_db_query(r,
        "WITH u AS (UPDATE plexus.users SET mfa_enabled_at = now(), updated_at = now(),"
        "   mfa_last_step = $2::bigint WHERE id = $1 AND mfa_enabled_at IS NULL"
        "   AND mfa_secret = $3 AND (mfa_last_step IS NULL OR mfa_last_step < $2::bigint)"
        "   RETURNING id),"
        " d AS (DELETE FROM plexus.mfa_recovery_codes c USING u WHERE c.user_id = u.id),"
        " i AS (INSERT INTO plexus.mfa_recovery_codes (user_id, code_hash)"
        "   SELECT u.id, decode(h, 'hex') FROM u, unnest($4::text[]) AS h)"
        " SELECT id FROM u", 4, params, &res);
    if (st == PLX_OK && core_db_rows(res) != 1) {
        json_decref(codes);
        return core_reply_problem(r, 409, "mfa_conflict",
                                  "the code was already used or the set-up changed");
    }
    if (st != PLX_OK) {
        json_decref(codes);
        return st;
    }
    core_audit(r, "auth.mfa_enabled", "user", uid, NULL);
    return core_reply_json(r, 200, json_pack("{s:o}", "recovery_codes", codes));
}

/* password and a second factor ("code": TOTP or a recovery code) of a
 * user whose MFA is on; false with the answer sent */
static bool reauth(plx_request_t *r, const char *uid, json_t *body)
{
    const char *password, *code, *sealed = NULL;
    bool enabled = false, locked = false;
    int64_t last;
    plx_status_t st;

    if (!(password = identity_body_string(r, body, "password", PASSWORD_MAX))
        || !(code = identity_body_string(r, body, "code", CODE_MAX)))
        return false;
    if ((st = mfa_state(r, uid, &enabled, &sealed, &last)) != PLX_OK) {
        core_reply_problem(r, 503, "database_unavailable", "the database is not available");
        return false;
    }
    if (!enabled) {
        core_reply_problem(r, 409, "mfa_not_enabled", "the second factor is not on");
        return false;
    }
    if (!identity_password_recheck(r, uid, password))
        return false;
    st = six_digits(code) ? identity_mfa_check(r, uid, code, NULL)
                          : identity_mfa_check(r, uid, NULL, code);
    if (st == PLX_OK)
        return true;
    if (st == PLX_ERR_AUTH && identity_account_failure(r, uid, &locked) == PLX_OK && locked)
        identity_reply_locked(r, identity_settings.login_lockout_s);
    else if (st == PLX_ERR_AUTH)
        core_reply_problem(r, 403, "invalid_mfa_code",
                           "the second-factor code is wrong or was already used");
    else
        core_reply_problem(r, 503, "database_unavailable", "the database is not available");
    return false;
}

static plx_status_t h_disable(plx_request_t *r, void *arg)
{
    const char *uid = identity_caller(r);
    json_t *body;
    plx_status_t st;

    (void)arg;
    if (identity_refuse_api_key(r) || !(body = identity_body_object(r)) || !reauth(r, uid, body))
        return PLX_OK;
    const char *params[] = { uid };
    st = core_db_query(r,
        "WITH u AS (UPDATE plexus.users SET mfa_enabled_at = NULL, mfa_secret = NULL,"
        "   mfa_last_step = NULL, updated_at = now() WHERE id = $1 RETURNING id)"
        " DELETE FROM plexus.mfa_recovery_codes c USING u WHERE c.user_id = u.id",
        1, params, NULL);
    if (st != PLX_OK)
        return st;
    core_audit(r, "auth.mfa_disabled", "user", uid, NULL);
    return core_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

static plx_status_t h_recovery_codes(plx_request_t *r, void *arg)
{
    char digests[RECOVERY_COUNT * 66 + 3];
    const char *uid = identity_caller(r);
    plx_db_res_t *res = NULL;
    json_t *body, *codes = NULL;
    plx_status_t st;

    (void)arg;
    if (identity_refuse_api_key(r) || !(body = identity_body_object(r)) || !reauth(r, uid, body))
        return PLX_OK;
    if (!recovery_make(&codes, digests))
        return PLX_ERR_INTERNAL;
    const char *params[] = { uid, digests };
    st = core_db_query(r,
        "WITH u AS (SELECT id FROM plexus.users WHERE id = $1 AND mfa_enabled_at IS NOT NULL),"
        " d AS (DELETE FROM plexus.mfa_recovery_codes c USING u WHERE c.user_id = u.id),"
        " i AS (INSERT INTO plexus.mfa_recovery_codes (user_id, code_hash)"
        "   SELECT u.id, decode(h, 'hex') FROM u, unnest($2::text[]) AS h)"
        " SELECT id FROM u", 2, params, &res);
    if (st != PLX_OK || core_db_rows(res) != 1) {
        json_decref(codes);
        return st != PLX_OK ? st : PLX_ERR_CONFLICT;
    }
    core_audit(r, "auth.recovery_codes_regenerated", "user", uid, NULL);
    return core_reply_json(r, 200, json_pack("{s:o}", "recovery_codes", codes));
}

typedef struct route_def {
    const char    *pattern;
    plx_handler_fn fn;
    const char    *rate_class;
    const char    *summary;
} route_def_t;

static const route_def_t routes[] = {
    { "/api/v1/auth/mfa/totp/setup", h_setup, NULL, "Start TOTP set-up: a new secret" },
    { "/api/v1/auth/mfa/totp/enable", h_enable, "auth", "Turn TOTP on with a first code" },
    { "/api/v1/auth/mfa/totp/disable", h_disable, "auth",
      "Turn TOTP off (password and code)" },
    { "/api/v1/auth/mfa/recovery-codes", h_recovery_codes, "auth",
      "New recovery codes (password and code)" },
};

bool identity_mfa_routes(void)
{
    for (size_t i = 0; i < CORE_ARRAY_LEN(routes); i++) {
        const route_def_t *d = &routes[i];
        if (core_route_add(core_module_self(), "POST", d->pattern, d->fn, NULL,
                           PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER, .rate_class = d->rate_class,
                                          .summary = d->summary, .tag = "auth"))
            != PLX_OK)
            return false;
    }
    return true;
}
