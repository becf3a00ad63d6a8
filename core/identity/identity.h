/*
 * identity.h - accounts, tokens, second factor, API keys, teams, limits
 *
 * Identity is part of the core, not a module: every module relies on the
 * authenticated caller and on team membership. This header is shared by
 * the files of core/identity/ and by main.c and api.c. The pure parts
 * (crypto.h) have no I/O and are unit-tested on their own.
 *
 * Who calls whom at request time: the request.begin hook (authn.c, position
 * REALLY_FIRST) turns "Authorization: Bearer <jwt|plx_ key>" or "X-API-Key"
 * into a core_principal_t (http.h) after checking in PostgreSQL that the
 * user is active and the session or key is live; the rate-limit hook
 * (ratelimit.c, position FIRST) then charges the route's class to the
 * principal or the client address; http.c enforces the route's auth option.
 */
#ifndef PLEXUS_IDENTITY_H
#define PLEXUS_IDENTITY_H

#include "conf.h"
#include "http.h"
#include "input.h"

/* ---- identity.c: settings and registration ----------------------------- */

/* Read [auth], [smtp], [ratelimit]. With keys (serving, --check-config),
 * also load the JWT and sealing keys: outside server.dev_mode it refuses
 * (false, logged) a missing or short (< 32 bytes) jwt_secret for HS256,
 * missing key files for ES256, and a missing or malformed mfa_key; in dev
 * mode it makes up random keys and warns that tokens die with the process.
 * Without keys, issuing or checking tokens and sealing fail closed. */
bool core_identity_setup(core_config_t *cfg, bool keys);
/* routes, hooks, job handlers; after core_identity_setup */
bool core_identity_register(void);
/* what runs only while serving: the watch that closes WebSockets whose
 * credential has ended (socket_watch.c); stopped by core_identity_shutdown */
bool core_identity_start(void);
void core_identity_shutdown(void);
bool identity_socket_watch_start(void);
void identity_socket_watch_stop(void);

/* read-only after setup */
typedef struct identity_settings {
    long access_ttl_s, refresh_ttl_s;
    long email_token_ttl_s, reset_token_ttl_s;
    int  password_min_length;
    int  login_max_failures, login_ip_max_failures;
    long login_lockout_s;
    bool require_verified_email;
    bool dev_mode;
    char public_url[512];   /* for links in emails, no trailing '/' */
} identity_settings_t;
extern identity_settings_t identity_settings;

/* Route registration, one per file, called by core_identity_register:
 * auth_routes.c, mfa_routes.c, apikeys.c, teams.c, admin.c; ratelimit.c
 * and authn.c add their request.begin hooks. */
bool identity_auth_routes(void);
bool identity_mfa_routes(void);
bool identity_apikey_routes(void);
bool identity_team_routes(void);
bool identity_admin_routes(void);
bool identity_authn_hook(void);
bool identity_ratelimit_setup(core_config_t *cfg);   /* the core's classes, the hook */
void identity_ratelimit_shutdown(void);
/* Refused credentials (a bad token or API key) are charged to the client's
 * address in the "auth" class, the budget of logins: auth_failed charges
 * one; auth_spent answers 429 and returns true when the address has
 * nothing left, before its credential costs a lookup. */
void identity_ratelimit_auth_failed(plx_request_t *r);
bool identity_ratelimit_auth_spent(plx_request_t *r);

/* the shape of every [ratelimit] value, the modules' classes' too (from
 * core_identity_setup, so --check-config sees them); false: logged */
bool identity_ratelimit_check_config(core_config_t *cfg);
/* After every module's init: no class is added any more; false (logged)
 * when a route names a class nobody registered. Warns about [ratelimit]
 * keys of classes no loaded module registered. */
bool identity_ratelimit_seal(void);
/* plx_rate_class_add (ABI 1.4) */
plx_status_t identity_rate_class_add(plx_module_t *m, const char *name,
                                     const char *default_spec);

/* plexusd create-admin --email E: creates (or promotes) the user as admin;
 * the password is read from PLEXUS_ADMIN_PASSWORD or stdin. Exit code. */
int core_identity_create_admin(const char *email);

/* ---- authn.c: who is calling ------------------------------------------- */

/* API keys (apikeys.c): "plx_<prefix>_<secret>". PLX_OK with *out filled
 * (scopes copied into r's arena), PLX_ERR_AUTH when unknown, revoked,
 * expired or the user is disabled, PLX_ERR_DB. Updates last_used_at. */
plx_status_t identity_apikey_authenticate(plx_request_t *r, const char *key,
                                          core_principal_t *out);

/* ---- teams.c ----------------------------------------------------------- */

plx_role_t identity_role_parse(const char *s);        /* PLX_ROLE_NONE if unknown */
const char *identity_role_name(plx_role_t role);
/* the caller's role in team_id; PLX_ROLE_NONE for non-members and for ids
 * that are not UUIDs (never an error for bad input) */
plx_status_t core_team_role(plx_request_t *r, const char *team_id,
                            plx_role_t *out);

/* ---- audit.c ----------------------------------------------------------- */

/* One row in plexus.audit_log; actor from r's principal when actor_id is
 * NULL; ip and request id from r (r may be NULL for jobs and the CLI).
 * Failures are logged, never returned: auditing must not fail a request,
 * but a lost audit row is an error line. details borrowed. */
void core_audit(plx_request_t *r, const char *action, const char *target_type,
                const char *target_id, json_t *details);
void identity_audit_actor(plx_request_t *r, const char *actor_id,
                          const char *action, const char *target_type,
                          const char *target_id, json_t *details);

/* ---- admin.c: lists shared by the list routes ----------------------------- */

/* Lists answer {"items":[...],"next_cursor":"..."|null}, ordered by a sort
 * key (a timestamp to the microsecond, PLX_SQL_TIME_KEY, then the row's
 * id) so pages are stable under inserts. Cursors are the page API's
 * (core_page_read, input.c), tagged with the list's name. */
#define IDENTITY_LIST_DEFAULT 50
#define IDENTITY_LIST_MAX     200

/* ?limit= (default 50, 1..200) and ?cursor= of the list tag, with lim the
 * text of limit + 1 for "LIMIT $n" (one more row tells whether a next page
 * exists). PLX_OK, or the status to return (400 answered for bad input). */
plx_status_t identity_list_params(plx_request_t *r, const char *tag,
                                  plx_page_t *page, char lim[16]);
/* Answer 200 with the page: res holds up to limit + 1 rows with columns
 * "sort_key" (PLX_SQL_TIME_KEY) and "id" (a UUID); row() renders one (a new
 * reference, NULL on no memory). */
plx_status_t identity_reply_list(plx_request_t *r, const plx_db_res_t *res,
                                 int limit, const char *tag,
                                 json_t *(*row)(const plx_db_res_t *, int));

/* ---- ratelimit.c --------------------------------------------------------- */

/* "100/60s" -> 100 tokens refilled over 60 s; false if malformed */
bool identity_rate_parse(const char *spec, long *limit, long *window_ms);

/* ---- email.c ------------------------------------------------------------- */

/* Enqueue a message as a durable job (handler "core.email"), sent by SMTP
 * through libcurl with [smtp] settings and a timeout. */
plx_status_t identity_email_enqueue(const char *to, const char *subject,
                                    const char *body_text);
/* registers the "core.email" job handler (core_identity_register) */
bool identity_email_register(void);
/* an address we accept for accounts and mail: ASCII "local@domain", 3 to
 * 254 bytes, dot-atom local part, letters/digits/hyphens/dots domain; no
 * blanks, controls, quotes or angle brackets (nothing to inject) */
bool identity_email_valid(const char *addr);

/* ---- shared by auth_routes.c and mfa_routes.c ----------------------------- */

/* Re-authentication of a signed-in user (password change, MFA changes):
 * true when password matches user_id's. Otherwise false with the answer
 * sent: 403 "invalid_password" (counted as a failed login, so it locks the
 * account like login does), 429 "login_locked", or 503. */
bool identity_password_recheck(plx_request_t *r, const char *user_id,
                               const char *password);
/* One more failed attempt on user_id's account: users.failed_logins, and
 * a lock for login_lockout once it reaches login_max_failures. *locked:
 * the account is locked now. */
plx_status_t identity_account_failure(plx_request_t *r, const char *user_id,
                                      bool *locked);
/* 429 "login_locked" with Retry-After: seconds */
plx_status_t identity_reply_locked(plx_request_t *r, long seconds);
/* A second factor for user_id: a 6-digit TOTP code (window +-1, a step
 * already used is refused: replay) or, when recovery_code is given instead,
 * an unused recovery code (consumed, audited). PLX_OK, PLX_ERR_AUTH when
 * wrong or replayed, PLX_ERR_DB. Does not answer. */
plx_status_t identity_mfa_check(plx_request_t *r, const char *user_id,
                                const char *totp_code, const char *recovery_code);

/* ---- helpers shared by the route files (identity.c) ----------------------- */

/* 400 problem naming the field */
plx_status_t identity_bad_field(plx_request_t *r, const char *field,
                                const char *why);
/* a required string member of body, bounded; NULL (and a 400 sent) when
 * missing, not a string, empty, too long or not valid UTF-8 */
const char *identity_body_string(plx_request_t *r, json_t *body,
                                 const char *field, size_t max_len);
/* caller's user id or NULL */
const char *identity_caller(plx_request_t *r);
/* the request body as a JSON object (borrowed for the request); NULL when
 * it has been answered: 400 invalid_body, or 400/413 from the core */
json_t *identity_body_object(plx_request_t *r);
/* credentials are managed by a signed-in user only: true (and 403 sent)
 * when the caller authenticated with an API key */
bool identity_refuse_api_key(plx_request_t *r);
/* a boolean column, which PostgreSQL renders as "t" or "f" */
bool identity_db_bool(const plx_db_res_t *res, int row, int col);

#endif
