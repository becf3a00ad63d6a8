/*
 * identity_client.h - test-side helpers for identity: make users, log them
 * in, promote them, compute TOTP codes, poke the database directly
 *
 * Built on harness.h; nothing here links the core. The helpers assert with
 * cmocka (fail_msg) on anything unexpected, so they are meant to be called
 * from inside a cmocka test or group setup. The TOTP code is computed with
 * an HMAC-SHA1 of our own over OpenSSL, independent of the product's, so a
 * bug in core/identity/totp.c cannot hide itself.
 */
#ifndef PLXT_IDENTITY_CLIENT_H
#define PLXT_IDENTITY_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "harness.h"

typedef struct plxt_user {
    char id[37];
    char email[160];
    char password[80];
    char access[4096];     /* the last access token (JWT) */
    char refresh[256];     /* the last refresh token */
} plxt_user_t;

/* Register a fresh, unique user (POST /api/v1/auth/register, 201), mark
 * its email verified directly in the database at db_conninfo, then log in.
 * The password is strong enough for the default policy. */
void plxt_user_new(plxt_server_t *srv, const char *db_conninfo, plxt_user_t *u);

/* POST /api/v1/auth/login with u->email and u->password; expects 200 and
 * refreshes u->access and u->refresh. */
void plxt_user_login(plxt_server_t *srv, plxt_user_t *u);

/* The same login, returning the status instead of asserting 200 (tokens
 * are updated only on 200). totp_code may be NULL. resp may be NULL; when
 * given, the caller frees it with plxt_resp_free. */
long plxt_user_try_login(plxt_server_t *srv, plxt_user_t *u,
                         const char *totp_code, plxt_resp_t *resp);

/* role = 'admin' in the database; the caller logs in again
 * (plxt_user_login) for a token whose session sees the new role. The role
 * is read from the database on every request, so old tokens see it too. */
void plxt_user_make_admin(const char *db_conninfo, plxt_user_t *u);

/* "Authorization: Bearer <token>" into buf (len >= strlen(token) + 23), or
 * into a thread-local buffer of 4200 bytes when buf is NULL (valid until
 * the next call on the same thread). Returns the line. */
const char *plxt_bearer(const char *token, char *buf, size_t len);

/* The server options every identity test needs, as raw INI text for
 * plxt_server_opts_t.config. It sets exactly these keys (repeat none of
 * them: a duplicate key is a config error; add other keys of the same
 * sections freely, a section may be opened again):
 *   [server] dev_mode = no (real keys, as in production),
 *            public_url = http://app.plexus.test
 *   [auth]   jwt_secret (64 bytes), mfa_key (32 bytes, base64)
 *   [smtp]   url = smtp://127.0.0.1:<smtp_port>, from, tls = no, timeout = 5s
 * smtp_port 0 points at a closed port (mail then fails and is retried).
 * NB: the default [ratelimit] auth class is 10/60s per client address; a
 * test that logs in more often should raise it ("auth = 1000/60s"). */
void plxt_identity_config(char *config_text, size_t len, int smtp_port);
#define PLXT_PUBLIC_URL "http://app.plexus.test"

/* The HS256 secret plxt_identity_config gives the server, so tests can
 * forge tokens (expired, other claims) that the server must judge. */
#define PLXT_JWT_SECRET \
    "test-jwt-secret-0123456789abcdef-0123456789abcdef-0123456789abcd"

/* The claims (payload) of a JWT, not verified; new reference or NULL. */
json_t *plxt_jwt_claims(const char *token);
/* header_json (e.g. {"alg":"HS256","typ":"JWT"}) and claims, base64url
 * encoded and signed with HMAC-SHA256 under secret; with secret NULL the
 * signature part is empty (for "alg":"none"). malloc'd. */
char *plxt_jwt_sign(const char *header_json, json_t *claims, const char *secret);

/* One JSON call: method, path (appended to srv->url), optional bearer
 * token, optional JSON body (sent with Content-Type: application/json).
 * Fails the test when no response arrives. resp freed by the caller. */
void plxt_call(plxt_server_t *srv, const char *method, const char *path,
               const char *token, const char *json_body, plxt_resp_t *resp);

/* plxt_call, failing the test unless the status is the expected one; the
 * answer's JSON (new reference, NULL when not JSON) */
json_t *plxt_expect(plxt_server_t *srv, const char *method, const char *path,
                    const char *token, const char *body, long status);
void plxt_expect_status(plxt_server_t *srv, const char *method,
                        const char *path, const char *token, const char *body,
                        long status);
/* a string member of j, failing the test when absent; borrowed from j */
const char *plxt_str(json_t *j, const char *key);

/* Run one parameterised statement at db_conninfo; fails the test on error.
 * Returns the number of rows affected (or returned). params may be NULL. */
long plxt_db_exec(const char *db_conninfo, const char *sql, int nparams,
                  const char *const *params);
/* The first column of the first row into out ("" when no row / NULL);
 * fails the test on error. Returns out. */
char *plxt_db_value(const char *db_conninfo, const char *sql, int nparams,
                    const char *const *params, char *out, size_t outlen);

/* RFC 6238 TOTP (HMAC-SHA1, 6 digits, 30 s) for a base32 secret (RFC 4648,
 * padding and case ignored) at unix time t, into out[9]. Returns 0, or -1
 * when the secret is not base32. */
int plxt_totp(const char *secret_b32, time_t t, char out[9]);
/* the same for an explicit time step */
int plxt_totp_step(const char *secret_b32, uint64_t step, char out[9]);

#endif
