/*
 * apikeys.c - API keys: created, listed and revoked by their owner, and
 * turned back into a principal on every request that presents one
 *
 *   GET    /api/v1/api-keys          the caller's keys (never the secret)
 *   POST   /api/v1/api-keys          {"name","scopes","expires_at"?} -> 201, key shown once
 *   DELETE /api/v1/api-keys/{id}     revoke; someone else's key is 404
 *
 * A key reads "plx_<prefix>_<secret>": 12 base62 characters that find the
 * row (unique, not secret) and 32 random bytes in base64url. Only the
 * SHA-256 of the whole key is stored: the key is 256 random bits, so a
 * fast hash is enough and a stolen table opens nothing. The digest is
 * compared in constant time after the prefix lookup.
 *
 * A key acts for its user within its scopes. It is refused (401) once
 * revoked, expired, or when the user is disabled. It is admin only if the
 * user is an admin AND the key carries the scope "admin", so an everyday
 * key of an admin does not hold the keys to the server. Keys cannot mint
 * keys (403): a leaked key must not be able to outlive its revocation.
 */
#include "config.h"
#include "identity.h"
#include "crypto.h"

#include "db.h"
#include "loader.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEY_TAG          "plx_"
#define KEY_TAG_LEN      4
#define KEY_PREFIX_LEN   12
#define KEY_SECRET_BYTES 32
#define KEY_SECRET_LEN   43   /* base64url of 32 bytes, unpadded */
#define KEY_LEN          (KEY_TAG_LEN + KEY_PREFIX_LEN + 1 + KEY_SECRET_LEN)
#define KEY_NAME_MAX     100
#define SCOPE_MAX_LEN    64
#define SCOPES_MAX       32
#define EXPIRES_MAX      64

static const char base62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* ---- the key's shape ---------------------------------------------------------- */

/* "plx_" + 12 base62 + "_" + 43 base64url, nothing else; copies the prefix */
static bool key_parse(const char *key, char prefix[KEY_PREFIX_LEN + 1])
{
    if (!key || strnlen(key, KEY_LEN + 1) != KEY_LEN
        || memcmp(key, KEY_TAG, KEY_TAG_LEN) != 0
        || key[KEY_TAG_LEN + KEY_PREFIX_LEN] != '_')
        return false;
    for (size_t i = 0; i < KEY_PREFIX_LEN; i++) {
        if (!strchr(base62, key[KEY_TAG_LEN + i]) || !key[KEY_TAG_LEN + i])
            return false;
    }
    /* the secret: exactly the base64url of 32 bytes */
    unsigned char secret[KEY_SECRET_BYTES];
    size_t n;
    const char *enc = key + KEY_TAG_LEN + KEY_PREFIX_LEN + 1;
    plx_status_t st = core_base64_decode(PLX_B64_URL, enc, KEY_SECRET_LEN, secret,
                                         sizeof secret, &n);
    identity_wipe(secret, sizeof secret);
    if (st != PLX_OK || n != sizeof secret)
        return false;
    memcpy(prefix, key + KEY_TAG_LEN, KEY_PREFIX_LEN);
    prefix[KEY_PREFIX_LEN] = '\0';
    return true;
}

/* 12 base62 characters, unbiased: bytes >= 248 (4 * 62) are drawn again */
static bool prefix_new(char out[KEY_PREFIX_LEN + 1])
{
    unsigned char buf[32];
    size_t n = 0;

    while (n < KEY_PREFIX_LEN) {
        if (!core_random_bytes(buf, sizeof buf))
            return false;
        for (size_t i = 0; i < sizeof buf && n < KEY_PREFIX_LEN; i++) {
            if (buf[i] < 248)
                out[n++] = base62[buf[i] % 62];
        }
    }
    out[n] = '\0';
    return true;
}

static bool key_new(char key[KEY_LEN + 1], char prefix[KEY_PREFIX_LEN + 1])
{
    char secret[KEY_SECRET_LEN + 2];

    if (!prefix_new(prefix)
        || !identity_random_token(KEY_SECRET_BYTES, secret, sizeof secret)
        || strlen(secret) != KEY_SECRET_LEN)
        return false;
    snprintf(key, KEY_LEN + 1, KEY_TAG "%s_%s", prefix, secret);
    identity_wipe(secret, sizeof secret);
    return true;
}

/* ---- authentication (called by authn.c for Bearer plx_... and X-API-Key) ---- */

/* scopes from array_to_json(...) text into a NULL-terminated arena array */
static const char *const *scopes_copy(plx_request_t *r, const char *json)
{
    json_t *a = json ? json_loads(json, 0, NULL) : NULL;
    size_t n = json_is_array(a) ? json_array_size(a) : 0;
    const char **out;

    if (n > SCOPES_MAX)
        n = SCOPES_MAX;
    out = core_palloc(r, (n + 1) * sizeof(*out));
    if (out) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            const char *s = json_string_value(json_array_get(a, i));
            if (s && (out[k] = core_pstrdup(r, s)))
                k++;
        }
        out[k] = NULL;
    }
    json_decref(a);
    return out;
}

static bool scopes_have(const char *const *scopes, const char *want)
{
    for (size_t i = 0; scopes && scopes[i]; i++) {
        if (strcmp(scopes[i], want) == 0)
            return true;
    }
    return false;
}

/* last_used_at at most once a minute: a busy key is not a write per request */
static void key_touch(plx_request_t *r, const char *id)
{
    const char *params[1] = { id };
    plx_status_t st = core_db_query(r, "UPDATE plexus.api_keys SET last_used_at = now() "
                                    "WHERE id = $1::uuid AND (last_used_at IS NULL OR "
                                    "last_used_at < now() - interval '1 minute')",
                                    1, params, NULL);
    if (st != PLX_OK)
        core_log(PLX_LOG_WARN, "identity", core_request_id(r),
                 "last use of API key \"%s\" not recorded: %s", id, core_status_str(st));
}

static bool hexval(char c, unsigned *out)
{
    if (c >= '0' && c <= '9')
        *out = (unsigned)(c - '0');
    else if (c >= 'a' && c <= 'f')
        *out = (unsigned)(c - 'a' + 10);
    else if (c >= 'A' && c <= 'F')
        *out = (unsigned)(c - 'A' + 10);
    else
        return false;
    return true;
}

/* the stored digest, as '\x' || encode(key_hash, 'hex'), against the key's */
static bool digest_matches(const char *stored, const char *key)
{
    unsigned char want[32], have[32];

    if (!stored || strlen(stored) != 2 + 2 * sizeof have || stored[0] != '\\'
        || stored[1] != 'x')
        return false;
    for (size_t i = 0; i < sizeof have; i++) {
        unsigned hi, lo;
        const char *h = stored + 2 + 2 * i;
        if (!hexval(h[0], &hi) || !hexval(h[1], &lo))
            return false;
        have[i] = (unsigned char)(hi << 4 | lo);
    }
    identity_sha256(key, KEY_LEN, want);
    return core_secure_equal(want, sizeof want, have, sizeof have);
}

enum { AK_ID, AK_USER, AK_HASH, AK_SCOPES, AK_DEAD, AK_ADMIN, AK_TOUCH };

plx_status_t identity_apikey_authenticate(plx_request_t *r, const char *key,
                                          core_principal_t *out)
{
    char prefix[KEY_PREFIX_LEN + 1];
    plx_db_res_t *res;
    plx_status_t st;

    if (!out || !key_parse(key, prefix))
        return PLX_ERR_AUTH;
    const char *params[1] = { prefix };
    st = core_db_query(r,
                       "SELECT k.id, k.user_id, '\\x' || encode(k.key_hash, 'hex'), "
                       "array_to_json(k.scopes)::text, "
                       "k.revoked_at IS NOT NULL OR COALESCE(k.expires_at <= now(), false) "
                       "OR u.disabled_at IS NOT NULL, u.role = 'admin', "
                       "k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute' "
                       "FROM plexus.api_keys k JOIN plexus.users u ON u.id = k.user_id "
                       "WHERE k.prefix = $1", 1, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return PLX_ERR_AUTH;
    if (!digest_matches(core_db_value(res, 0, AK_HASH), key)
        || identity_db_bool(res, 0, AK_DEAD))
        return PLX_ERR_AUTH;

    memset(out, 0, sizeof *out);
    snprintf(out->user_id, sizeof out->user_id, "%s", core_db_value(res, 0, AK_USER));
    snprintf(out->key_id, sizeof out->key_id, "%s", core_db_value(res, 0, AK_ID));
    out->api_key = true;
    out->scopes = scopes_copy(r, core_db_value(res, 0, AK_SCOPES));
    if (!out->scopes)
        return PLX_ERR_NOMEM;   /* never NULL: that would mean every scope */
    out->admin = identity_db_bool(res, 0, AK_ADMIN)
                 && scopes_have(out->scopes, "admin");
    if (identity_db_bool(res, 0, AK_TOUCH))
        key_touch(r, core_db_value(res, 0, AK_ID));
    return PLX_OK;
}

/* ---- create ---------------------------------------------------------------------- */

static bool scope_ok(const char *s)
{
    size_t n = 0;

    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
                  || c == '.' || c == ':' || c == '-';
        if (!ok || n >= SCOPE_MAX_LEN)
            return false;
    }
    return n > 0;
}

static char *bad_scopes(plx_request_t *r, const char *why)
{
    identity_bad_field(r, "scopes", why);
    return NULL;
}

/* "scopes" as a PostgreSQL array literal with every element quoted (an
 * unquoted NULL would be SQL NULL); the charset leaves nothing to escape.
 * Absent means no scopes. NULL when answered (400). */
static char *scopes_literal(plx_request_t *r, json_t *body)
{
    json_t *a = json_object_get(body, "scopes");
    size_t n = a ? json_array_size(a) : 0;
    char *lit, *p;

    if (a && !json_is_array(a))
        return bad_scopes(r, "must be an array of strings");
    if (n > SCOPES_MAX)
        return bad_scopes(r, "must hold at most 32 scopes");
    if (!(lit = core_palloc(r, n * (SCOPE_MAX_LEN + 3) + 3)))
        return NULL;
    p = lit;
    *p++ = '{';
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        const char *s = json_string_value(v);
        if (!s || json_string_length(v) != strlen(s) || !scope_ok(s))
            return bad_scopes(r, "each scope must be 1..64 of [a-z0-9_.:-]");
        for (size_t j = 0; j < i; j++) {
            if (strcmp(s, json_string_value(json_array_get(a, j))) == 0)
                return bad_scopes(r, "lists a scope twice");
        }
        p += sprintf(p, "%s\"%s\"", i ? "," : "", s);
    }
    *p++ = '}';
    *p = '\0';
    return lit;
}

static bool digits(const char *s, int n, int *out)
{
    *out = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        *out = *out * 10 + (s[i] - '0');
    }
    return true;
}

static int days_in(int year, int month)
{
    static const int d[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return month == 2 && leap ? 29 : d[month - 1];
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM) */
static bool rfc3339_parse(const char *s, time_t *out)
{
    struct tm tm = { 0 };
    int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
    size_t len = strnlen(s, EXPIRES_MAX + 1);
    const char *p = s + 19;

    if (len < 20 || len > EXPIRES_MAX || s[4] != '-' || s[7] != '-'
        || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':'
        || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d)
        || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
        return false;
    if (*p == '.') {
        const char *f = ++p;
        while (*p >= '0' && *p <= '9' && p - f < 9)
            p++;
        if (p == f)
            return false;
    }
    if (*p == 'Z' || *p == 'z')
        p++;
    else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':'
             && digits(p + 1, 2, &oh) && digits(p + 4, 2, &om) && oh < 24 && om < 60) {
        sign = *p == '-' ? -1 : 1;
        p += 6;
    } else
        return false;
    if (*p || y < 1 || mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h > 23
        || mi > 59 || sec > 60)
        return false;
    tm = (struct tm){ .tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d,
                      .tm_hour = h, .tm_min = mi, .tm_sec = sec };
    *out = timegm(&tm) - sign * (oh * 3600 + om * 60);
    return true;
}

/* "expires_at": absent or null is "never"; else RFC 3339 in the future.
 * false when answered (400). */
static bool expires_get(plx_request_t *r, json_t *body, const char **out)
{
    json_t *v = json_object_get(body, "expires_at");
    time_t t;

    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    *out = json_string_value(v);
    if (!*out || !rfc3339_parse(*out, &t)) {
        identity_bad_field(r, "expires_at", "must be an RFC 3339 date-time such as "
                           "2030-01-31T12:00:00Z");
        return false;
    }
    if (t <= time(NULL)) {
        identity_bad_field(r, "expires_at", "must be in the future");
        return false;
    }
    return true;
}

#define KEY_COLS                                                             \
    "k.id, k.name, k.prefix, array_to_json(k.scopes)::text AS scopes, "      \
    PLX_SQL_RFC3339("k.expires_at") " AS expires_at, "                    \
    PLX_SQL_RFC3339("k.last_used_at") " AS last_used_at, "                \
    PLX_SQL_RFC3339("k.created_at") " AS created_at, "                    \
    PLX_SQL_RFC3339("k.revoked_at") " AS revoked_at, "                    \
    PLX_SQL_TIME_KEY("k.created_at") " AS sort_key"

static const char *col(const plx_db_res_t *res, int row, const char *name)
{
    return core_db_value(res, row, core_db_col(res, name));
}

static json_t *time_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *key_json(const plx_db_res_t *res, int row)
{
    const char *sc = col(res, row, "scopes");
    json_t *scopes = sc ? json_loads(sc, 0, NULL) : NULL;
    const char *revoked = col(res, row, "revoked_at");

    return json_pack("{s:s?, s:s?, s:s?, s:o, s:o, s:o, s:s?, s:b, s:o}",
                     "id", col(res, row, "id"), "name", col(res, row, "name"),
                     "prefix", col(res, row, "prefix"),
                     "scopes", scopes ? scopes : json_array(),
                     "expires_at", time_or_null(col(res, row, "expires_at")),
                     "last_used_at", time_or_null(col(res, row, "last_used_at")),
                     "created_at", col(res, row, "created_at"),
                     "revoked", revoked != NULL,
                     "revoked_at", time_or_null(revoked));
}

/* INSERT with a fresh key; a prefix collision (71 bits: unlikely) retries */
static plx_status_t key_insert(plx_request_t *r, const char *name,
                               const char *scopes, const char *expires,
                               char key[KEY_LEN + 1], plx_db_res_t **res)
{
    char prefix[KEY_PREFIX_LEN + 1], digest[67];
    plx_status_t st = PLX_ERR_INTERNAL;

    for (int attempt = 0; attempt < 3; attempt++) {
        if (!key_new(key, prefix))
            return PLX_ERR_INTERNAL;
        identity_sha256_hex(key, KEY_LEN, digest);
        const char *params[6] = { identity_caller(r), name, prefix, digest, scopes,
                                  expires };
        st = core_db_query(r,
                           "INSERT INTO plexus.api_keys AS k (user_id, name, prefix, "
                           "key_hash, scopes, expires_at) VALUES ($1::uuid, $2, $3, "
                           "$4::bytea, $5::text[], $6::timestamptz) RETURNING " KEY_COLS,
                           6, params, res);
        if (st != PLX_ERR_CONFLICT)
            break;
    }
    return st;
}

static plx_status_t apikey_create(plx_request_t *r, void *arg)
{
    const core_principal_t *p = core_request_principal(r);
    char key[KEY_LEN + 1];
    const char *name, *scopes, *expires;
    json_t *body, *out;
    plx_db_res_t *res = NULL;
    plx_status_t st;

    (void)arg;
    if (p && p->api_key)
        return core_reply_problem(r, 403, "forbidden", "an API key cannot create API "
                                  "keys: sign in as the user");
    if ((st = core_request_body_object(r, &body)) != PLX_OK)
        return st;   /* answered */
    if (!(name = identity_body_string(r, body, "name", KEY_NAME_MAX))
        || !(scopes = scopes_literal(r, body)) || !expires_get(r, body, &expires))
        return PLX_OK;
    st = key_insert(r, name, scopes, expires, key, &res);
    if (st != PLX_OK || core_db_rows(res) != 1) {
        identity_wipe(key, sizeof key);
        return st != PLX_OK ? st : PLX_ERR_INTERNAL;
    }
    out = key_json(res, 0);
    if (!out || json_object_set_new(out, "key", json_string(key)) != 0) {
        json_decref(out);
        identity_wipe(key, sizeof key);
        return PLX_ERR_NOMEM;
    }
    identity_wipe(key, sizeof key);
    /* the answer names what the key is; state comes from the list */
    json_object_del(out, "last_used_at");
    json_object_del(out, "revoked");
    json_object_del(out, "revoked_at");
    json_t *det = json_pack("{s:s?, s:s?, s:O?}", "name", name, "prefix",
                            col(res, 0, "prefix"), "scopes",
                            json_object_get(out, "scopes"));
    core_audit(r, "apikey.created", "api_key", col(res, 0, "id"), det);
    json_decref(det);
    return core_reply_json(r, 201, out);
}

/* ---- list and revoke ------------------------------------------------------------- */

static plx_status_t apikey_list(plx_request_t *r, void *arg)
{
    plx_page_t page = { .size = sizeof page };
    char lim[16];
    plx_db_res_t *res;
    plx_status_t st;

    (void)arg;
    if ((st = identity_list_params(r, "api-keys", &page, lim)) != PLX_OK)
        return st;
    const char *params[4] = { identity_caller(r), page.key, page.id, lim };
    /* newest first */
    st = core_db_query(r,
                       "SELECT " KEY_COLS " FROM plexus.api_keys k WHERE k.user_id = $1::uuid "
                       "AND ($2::timestamptz IS NULL OR (k.created_at, k.id) < ("
                       "$2::timestamptz, $3::uuid)) "
                       "ORDER BY k.created_at DESC, k.id DESC LIMIT $4::int",
                       4, params, &res);
    if (st != PLX_OK)
        return st;
    return identity_reply_list(r, res, page.limit, "api-keys", key_json);
}

static plx_status_t apikey_revoke(plx_request_t *r, void *arg)
{
    const char *id = core_request_param(r, "id");
    plx_db_res_t *res;
    plx_status_t st;

    (void)arg;
    if (!core_uuid_valid(id))
        return core_reply_problem(r, 404, "not_found", "no such API key");
    const char *params[2] = { id, identity_caller(r) };
    /* idempotent: a second DELETE answers 204 too, but is audited once */
    st = core_db_query(r,
                       "UPDATE plexus.api_keys SET revoked_at = COALESCE(revoked_at, now()) "
                       "WHERE id = $1::uuid AND user_id = $2::uuid "
                       "RETURNING revoked_at = now()", 2, params, &res);
    if (st != PLX_OK)
        return st;
    if (core_db_rows(res) != 1)
        return core_reply_problem(r, 404, "not_found", "no such API key");
    if (identity_db_bool(res, 0, 0))
        core_audit(r, "apikey.revoked", "api_key", id, NULL);
    return core_reply(r, 204, NULL, NULL, 0, PLX_MEM_STATIC);
}

bool identity_apikey_routes(void)
{
    plx_module_t *self = core_module_self();

    return core_route_add(self, "GET", "/api/v1/api-keys", apikey_list, NULL,
                          PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER, .tag = "api-keys",
                                         .summary = "Your API keys (never the secret)")) == PLX_OK
        && core_route_add(self, "POST", "/api/v1/api-keys", apikey_create, NULL,
                          PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER, .tag = "api-keys",
                                         .summary = "Create an API key (shown once)")) == PLX_OK
        && core_route_add(self, "DELETE", "/api/v1/api-keys/{id}", apikey_revoke, NULL,
                          PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER, .tag = "api-keys",
                                         .summary = "Revoke an API key")) == PLX_OK;
}
