/*
 * identity_client.c - test-side helpers for identity (see identity_client.h)
 *
 * Users are made through the public API and then adjusted in PostgreSQL
 * directly (email verified, role), the way an operator would, so tests of
 * other features do not depend on the email flow. TOTP here is computed
 * from first principles: HMAC (RFC 2104) built on OpenSSL's SHA-1 digest,
 * dynamic truncation per RFC 4226, so it checks the product's totp.c
 * instead of sharing its mistakes.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "identity_client.h"

#define SHA1_BLOCK 64
#define SHA1_LEN   20

/* ---- HTTP ------------------------------------------------------------------ */

void plxt_call(plxt_server_t *srv, const char *method, const char *path,
               const char *token, const char *json_body, plxt_resp_t *resp)
{
    char url[2048];
    char auth[4200];
    const char *headers[3];
    size_t n = 0;

    snprintf(url, sizeof url, "%s%s", srv->url, path);
    if (token)
        headers[n++] = plxt_bearer(token, auth, sizeof auth);
    if (json_body)
        headers[n++] = "Content-Type: application/json";
    headers[n] = NULL;
    if (plxt_http(method, url, headers, json_body, resp) != 0)
        fail_msg("%s %s: no response: %s", method, path, resp->error);
}

const char *plxt_bearer(const char *token, char *buf, size_t len)
{
    static __thread char own[4200];
    int n;

    if (!buf) {
        buf = own;
        len = sizeof own;
    }
    n = snprintf(buf, len, "Authorization: Bearer %s", token ? token : "");
    if (n < 0 || (size_t)n >= len)
        fail_msg("bearer token of %zu bytes does not fit %zu", strlen(token), len);
    return buf;
}

void plxt_identity_config(char *config_text, size_t len, int smtp_port)
{
    /* fixed test keys: 64 bytes of secret, 32 bytes of MFA key in base64 */
    static const char jwt_secret[] = PLXT_JWT_SECRET;
    static const char mfa_key[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    int n;

    if (smtp_port <= 0)
        smtp_port = 9;   /* discard: nothing listens there in a test box */
    n = snprintf(config_text, len,
                 "[server]\ndev_mode = no\npublic_url = %s\n"
                 "[auth]\njwt_secret = %s\nmfa_key = %s\n"
                 "[smtp]\nurl = smtp://127.0.0.1:%d\nfrom = plexus@plexus.test\n"
                 "tls = no\ntimeout = 5s\n",
                 PLXT_PUBLIC_URL, jwt_secret, mfa_key, smtp_port);
    if (n < 0 || (size_t)n >= len)
        fail_msg("identity config needs more than %zu bytes", len);
}

/* ---- database -------------------------------------------------------------- */

static PGresult *db_run(const char *conninfo, const char *sql, int nparams,
                        const char *const *params)
{
    PGconn *c = PQconnectdb(conninfo);
    PGresult *res;
    ExecStatusType st;

    if (PQstatus(c) != CONNECTION_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        PQfinish(c);
        fail_msg("database connection failed: %s", msg);
    }
    res = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, 0);
    st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        PQclear(res);
        PQfinish(c);
        fail_msg("\"%s\" failed: %s", sql, msg);
    }
    PQfinish(c);
    return res;
}

long plxt_db_exec(const char *db_conninfo, const char *sql, int nparams,
                  const char *const *params)
{
    PGresult *res = db_run(db_conninfo, sql, nparams, params);
    long n = PQresultStatus(res) == PGRES_TUPLES_OK ? PQntuples(res)
                                                    : atol(PQcmdTuples(res));

    PQclear(res);
    return n;
}

char *plxt_db_value(const char *db_conninfo, const char *sql, int nparams,
                    const char *const *params, char *out, size_t outlen)
{
    PGresult *res = db_run(db_conninfo, sql, nparams, params);

    out[0] = '\0';
    if (PQntuples(res) > 0 && PQnfields(res) > 0 && !PQgetisnull(res, 0, 0))
        snprintf(out, outlen, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    return out;
}

/* ---- users ----------------------------------------------------------------- */

static void random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];
    static const char hex[] = "0123456789abcdef";

    assert_true(nbytes <= sizeof b);
    assert_int_equal(RAND_bytes(b, (int)nbytes), 1);
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

static void copy_token(json_t *j, const char *key, char *out, size_t len)
{
    const char *v = json_string_value(json_object_get(j, key));

    if (!v)
        fail_msg("login answer lacks \"%s\"", key);
    if (strlen(v) >= len)
        fail_msg("\"%s\" of %zu bytes is too long for the test's buffer", key,
                 strlen(v));
    snprintf(out, len, "%s", v);
}

long plxt_user_try_login(plxt_server_t *srv, plxt_user_t *u,
                         const char *totp_code, plxt_resp_t *resp)
{
    plxt_resp_t own;
    json_t *req = json_pack("{s:s, s:s}", "email", u->email, "password", u->password);
    char *body;
    long status;

    if (totp_code)
        json_object_set_new(req, "totp_code", json_string(totp_code));
    body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!resp)
        resp = &own;
    plxt_call(srv, "POST", "/api/v1/auth/login", NULL, body, resp);
    free(body);
    status = resp->status;
    if (status == 200) {
        json_t *j = plxt_resp_json(resp);
        if (!j)
            fail_msg("login answered 200 without JSON: %.200s", resp->body);
        copy_token(j, "access_token", u->access, sizeof u->access);
        copy_token(j, "refresh_token", u->refresh, sizeof u->refresh);
        json_decref(j);
    }
    if (resp == &own)
        plxt_resp_free(&own);
    return status;
}

void plxt_user_login(plxt_server_t *srv, plxt_user_t *u)
{
    plxt_resp_t resp;
    long status = plxt_user_try_login(srv, u, NULL, &resp);

    if (status != 200)
        fail_msg("login of \"%s\": expected 200, found %ld: %.300s", u->email,
                 status, resp.body ? resp.body : "");
    plxt_resp_free(&resp);
}

void plxt_user_new(plxt_server_t *srv, const char *db_conninfo, plxt_user_t *u)
{
    static int counter;
    char tag[17], pw[17];
    plxt_resp_t resp;
    json_t *j;
    char *body;
    const char *id;

    memset(u, 0, sizeof *u);
    random_hex(tag, 8);
    random_hex(pw, 8);
    snprintf(u->email, sizeof u->email, "user%d.%d.%s@example.test", (int)getpid(),
             __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED), tag);
    snprintf(u->password, sizeof u->password, "Qz7!%s-Wm#4", pw);

    j = json_pack("{s:s, s:s}", "email", u->email, "password", u->password);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    plxt_call(srv, "POST", "/api/v1/auth/register", NULL, body, &resp);
    free(body);
    if (resp.status != 201)
        fail_msg("register \"%s\": expected 201, found %ld: %.300s", u->email,
                 resp.status, resp.body ? resp.body : "");
    j = plxt_resp_json(&resp);
    id = j ? json_string_value(json_object_get(j, "id")) : NULL;
    if (id && strlen(id) == 36)
        snprintf(u->id, sizeof u->id, "%s", id);
    else
        fail_msg("register answered without a user id: %.300s", resp.body);
    json_decref(j);
    plxt_resp_free(&resp);

    const char *params[] = { u->id };
    assert_int_equal(plxt_db_exec(db_conninfo,
                                  "UPDATE plexus.users SET email_verified_at = now() "
                                  "WHERE id = $1", 1, params), 1);
    plxt_user_login(srv, u);
}

void plxt_user_make_admin(const char *db_conninfo, plxt_user_t *u)
{
    const char *params[] = { u->id };

    assert_int_equal(plxt_db_exec(db_conninfo,
                                  "UPDATE plexus.users SET role = 'admin' WHERE id = $1",
                                  1, params), 1);
}

/* ---- TOTP ------------------------------------------------------------------ */

static int base32_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

static int base32_decode(const char *in, unsigned char *out, size_t outlen)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;

    for (; *in && *in != '='; in++) {
        int v = base32_value(*in);
        if (v < 0)
            return -1;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            if (n >= outlen)
                return -1;
            out[n++] = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return (int)n;
}

static int sha1_parts(const unsigned char *a, size_t alen, const unsigned char *b,
                      size_t blen, unsigned char out[SHA1_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, a, alen) == 1 &&
             EVP_DigestUpdate(ctx, b, blen) == 1 &&
             EVP_DigestFinal_ex(ctx, out, &n) == 1 && n == SHA1_LEN;

    EVP_MD_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* RFC 2104: H(K ^ opad, H(K ^ ipad, text)), keys longer than a block hashed */
static int hmac_sha1(const unsigned char *key, size_t keylen,
                     const unsigned char *msg, size_t msglen,
                     unsigned char out[SHA1_LEN])
{
    unsigned char k[SHA1_BLOCK] = { 0 }, ipad[SHA1_BLOCK], opad[SHA1_BLOCK];
    unsigned char inner[SHA1_LEN];

    if (keylen > SHA1_BLOCK) {
        if (sha1_parts(key, keylen, NULL, 0, k) != 0)
            return -1;
    } else {
        memcpy(k, key, keylen);
    }
    for (int i = 0; i < SHA1_BLOCK; i++) {
        ipad[i] = k[i] ^ 0x36;
        opad[i] = k[i] ^ 0x5c;
    }
    if (sha1_parts(ipad, sizeof ipad, msg, msglen, inner) != 0)
        return -1;
    return sha1_parts(opad, sizeof opad, inner, sizeof inner, out);
}

int plxt_totp_step(const char *secret_b32, uint64_t step, char out[9])
{
    unsigned char key[128], msg[8], mac[SHA1_LEN];
    int keylen = base32_decode(secret_b32, key, sizeof key);
    uint32_t bin;
    int off;

    out[0] = '\0';
    if (keylen <= 0)
        return -1;
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(step & 0xff);
        step >>= 8;
    }
    if (hmac_sha1(key, (size_t)keylen, msg, sizeof msg, mac) != 0)
        return -1;
    off = mac[SHA1_LEN - 1] & 0x0f;
    bin = ((uint32_t)(mac[off] & 0x7f) << 24) | ((uint32_t)mac[off + 1] << 16) |
          ((uint32_t)mac[off + 2] << 8) | (uint32_t)mac[off + 3];
    snprintf(out, 9, "%06u", bin % 1000000u);
    return 0;
}

int plxt_totp(const char *secret_b32, time_t t, char out[9])
{
    return plxt_totp_step(secret_b32, (uint64_t)t / 30u, out);
}

/* ---- JWT forging ----------------------------------------------------------- */

static char *b64url(const unsigned char *in, size_t len)
{
    static const char tab[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *out = malloc(4 * (len + 2) / 3 + 4);
    size_t o = 0, i = 0;

    if (!out)
        return NULL;
    for (; i + 2 < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (i < len) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < len ? (uint32_t)in[i + 1] << 8 : 0);
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        if (i + 1 < len)
            out[o++] = tab[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '-' ? 62 : c == '_' ? 63 : -1;
}

json_t *plxt_jwt_claims(const char *token)
{
    const char *p = strchr(token, '.'), *end = p ? strchr(p + 1, '.') : NULL;
    unsigned char buf[4096];
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;

    if (!p || !end)
        return NULL;
    for (p++; p < end; p++) {
        int v = b64url_value(*p);
        if (v < 0 || n >= sizeof buf)
            return NULL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            buf[n++] = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    return json_loadb((const char *)buf, n, 0, NULL);
}

char *plxt_jwt_sign(const char *header_json, json_t *claims, const char *secret)
{
    char *payload = json_dumps(claims, JSON_COMPACT);
    char *h = b64url((const unsigned char *)header_json, strlen(header_json));
    char *c = payload ? b64url((const unsigned char *)payload, strlen(payload)) : NULL;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    char *sig = NULL, *out = NULL;
    size_t len;

    free(payload);
    if (!h || !c)
        goto done;
    len = strlen(h) + strlen(c) + 2;
    out = malloc(len + 100);
    if (!out)
        goto done;
    snprintf(out, len, "%s.%s", h, c);
    if (secret && HMAC(EVP_sha256(), secret, (int)strlen(secret),
                       (const unsigned char *)out, strlen(out), mac, &maclen))
        sig = b64url(mac, maclen);
    snprintf(out + strlen(out), 100, ".%s", sig ? sig : "");
done:
    free(h);
    free(c);
    free(sig);
    return out;
}

json_t *plxt_expect(plxt_server_t *srv, const char *method, const char *path,
                    const char *token, const char *body, long status)
{
    plxt_resp_t resp;
    json_t *j;

    plxt_call(srv, method, path, token, body, &resp);
    if (resp.status != status)
        fail_msg("%s %s: expected %ld, found %ld: %.400s", method, path, status,
                 resp.status, resp.body ? resp.body : "");
    j = plxt_resp_json(&resp);
    plxt_resp_free(&resp);
    return j;
}

void plxt_expect_status(plxt_server_t *srv, const char *method,
                        const char *path, const char *token, const char *body,
                        long status)
{
    json_decref(plxt_expect(srv, method, path, token, body, status));
}

const char *plxt_str(json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));

    if (!v)
        fail_msg("expected a string \"%s\" in the answer", key);
    return v;
}
