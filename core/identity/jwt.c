/*
 * jwt.c - access tokens: issue and verify JWTs with libjwt 1.10
 *
 * libjwt 1.10 checks signatures and nothing else, and trusts the token's
 * own header for the algorithm (jwt_str_alg is even case-insensitive). So
 * the algorithm is fixed by configuration and checked twice: in the raw
 * header before libjwt runs (exactly "HS256" or "ES256", never "none", never
 * the other one: with ES256 configured, an "HS256" token keyed with the
 * public key would otherwise pass), and with jwt_get_alg after decoding.
 * The claims are then read from the signed payload and checked here:
 * iss and aud equal, exp in the future (no leeway), iat and nbf not more
 * than JWT_SKEW_S ahead, sub, sid and jti present and UUID-shaped.
 *
 * identity_jwt_configure runs once at start; issue and verify only read
 * the configuration and may run on any number of threads.
 */
#include "config.h"
#include "crypto.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <jwt.h>
#include <limits.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#define JWT_MAX_LEN   8192
#define JWT_SKEW_S    30
#define JWT_MAX_TTL_S (366L * 24 * 3600)
#define JWT_KEY_MAX   16384
#define JWT_NAME_MAX  256

typedef struct jwt_conf {
    bool configured;
    jwt_alg_t alg;
    const char *alg_name;          /* "HS256" or "ES256", static */
    unsigned char *sign_key;       /* secret or private key PEM */
    size_t sign_len;
    unsigned char *verify_key;     /* secret or public key PEM */
    size_t verify_len;
    char issuer[JWT_NAME_MAX + 1];
    char audience[JWT_NAME_MAX + 1];
} jwt_conf_t;

static jwt_conf_t jc;

/* ---- configuration ----------------------------------------------------- */

static bool name_ok(const char *s)
{
    size_t len = s ? strnlen(s, JWT_NAME_MAX + 1) : 0;
    return len > 0 && len <= JWT_NAME_MAX && core_utf8_valid(s, len);
}

static unsigned char *key_copy(const unsigned char *key, size_t len)
{
    unsigned char *p = malloc(len + 1);
    if (!p)
        return NULL;
    memcpy(p, key, len);
    p[len] = '\0';   /* PEM readers may look for the end */
    return p;
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return 0;   /* encrypted keys are refused, never prompted for */
}

static bool is_p256(EVP_PKEY *k)
{
    char group[64];
    size_t glen = 0;

    if (!k || EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
        return false;
    if (EVP_PKEY_get_group_name(k, group, sizeof group, &glen) != 1)
        return false;
    return strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0;
}

/* both PEM keys parse, are P-256 and belong together */
static bool es256_keys_ok(const unsigned char *priv, size_t privlen,
                          const unsigned char *pub, size_t publen)
{
    if (privlen == 0 || privlen > JWT_KEY_MAX || publen == 0 ||
        publen > JWT_KEY_MAX)
        return false;
    BIO *bp = BIO_new_mem_buf(priv, (int)privlen);
    BIO *bq = BIO_new_mem_buf(pub, (int)publen);
    EVP_PKEY *kp = NULL, *kq = NULL;
    if (bp)
        kp = PEM_read_bio_PrivateKey(bp, NULL, no_passphrase, NULL);
    if (bq)
        kq = PEM_read_bio_PUBKEY(bq, NULL, no_passphrase, NULL);
    bool ok = is_p256(kp) && is_p256(kq) && EVP_PKEY_eq(kp, kq) == 1;
    EVP_PKEY_free(kp);
    EVP_PKEY_free(kq);
    BIO_free(bp);
    BIO_free(bq);
    return ok;
}

static plx_status_t keys_set(const unsigned char *sign, size_t slen,
                             const unsigned char *verify, size_t vlen)
{
    jc.sign_key = key_copy(sign, slen);
    jc.verify_key = key_copy(verify, vlen);
    if (!jc.sign_key || !jc.verify_key)
        return PLX_ERR_NOMEM;
    jc.sign_len = slen;
    jc.verify_len = vlen;
    return PLX_OK;
}

plx_status_t identity_jwt_configure(const char *alg, const unsigned char *key,
                                    size_t keylen, const unsigned char *pubkey,
                                    size_t publen, const char *issuer,
                                    const char *audience)
{
    plx_status_t st;

    identity_jwt_reset();
    if (!alg || !key || !name_ok(issuer) || !name_ok(audience))
        return PLX_ERR_INVALID;
    if (strcmp(alg, "HS256") == 0) {
        if (keylen < 32 || keylen > JWT_KEY_MAX)
            return PLX_ERR_INVALID;
        jc.alg = JWT_ALG_HS256;
        jc.alg_name = "HS256";
        st = keys_set(key, keylen, key, keylen);
    } else if (strcmp(alg, "ES256") == 0) {
        if (!pubkey || !es256_keys_ok(key, keylen, pubkey, publen))
            return PLX_ERR_INVALID;
        jc.alg = JWT_ALG_ES256;
        jc.alg_name = "ES256";
        st = keys_set(key, keylen, pubkey, publen);
    } else {
        return PLX_ERR_INVALID;
    }
    if (st != PLX_OK) {
        identity_jwt_reset();
        return st;
    }
    strcpy(jc.issuer, issuer);
    strcpy(jc.audience, audience);
    jc.configured = true;
    return PLX_OK;
}

void identity_jwt_reset(void)
{
    if (jc.sign_key) {
        identity_wipe(jc.sign_key, jc.sign_len);
        free(jc.sign_key);
    }
    if (jc.verify_key) {
        identity_wipe(jc.verify_key, jc.verify_len);
        free(jc.verify_key);
    }
    memset(&jc, 0, sizeof jc);
}

/* ---- issue -------------------------------------------------------------- */

static bool grants_add(jwt_t *j, const identity_claims_t *c)
{
    return jwt_add_grant(j, "iss", jc.issuer) == 0 &&
           jwt_add_grant(j, "aud", jc.audience) == 0 &&
           jwt_add_grant(j, "sub", c->sub) == 0 &&
           jwt_add_grant(j, "sid", c->sid) == 0 &&
           jwt_add_grant(j, "jti", c->jti) == 0 &&
           jwt_add_grant_int(j, "iat", c->iat) == 0 &&
           jwt_add_grant_int(j, "exp", c->exp) == 0;
}

plx_status_t identity_jwt_issue(identity_claims_t *c, long ttl_s, char **token)
{
    jwt_t *j = NULL;

    if (!c || !token)
        return PLX_ERR_INVALID;
    *token = NULL;
    if (!jc.configured)
        return PLX_ERR_INTERNAL;
    if (ttl_s <= 0 || ttl_s > JWT_MAX_TTL_S)
        return PLX_ERR_INVALID;
    if (!core_uuid_valid(c->sub) || !core_uuid_valid(c->sid))
        return PLX_ERR_INVALID;
    if (core_uuid_new(4, c->jti) != PLX_OK)
        return PLX_ERR_INTERNAL;
    c->iat = (long)time(NULL);
    c->exp = c->iat + ttl_s;

    if (jwt_new(&j) != 0)
        return PLX_ERR_NOMEM;
    if (grants_add(j, c) &&
        jwt_set_alg(j, jc.alg, jc.sign_key, (int)jc.sign_len) == 0)
        *token = jwt_encode_str(j);
    jwt_free(j);
    if (!*token) {
        LOG_ERROR("jwt signing failed (alg \"%s\")", jc.alg_name);
        return PLX_ERR_INTERNAL;
    }
    return PLX_OK;
}

/* ---- verify ------------------------------------------------------------- */

/* base64url characters and exactly two dots, no segment empty; *d1, *d2
 * are the positions of the dots */
static bool token_shape_ok(const char *t, size_t len, size_t *d1, size_t *d2)
{
    int dots = 0;

    for (size_t i = 0; i < len; i++) {
        char c = t[i];
        if (c == '.') {
            if (++dots > 2)
                return false;
            *(dots == 1 ? d1 : d2) = i;
        } else if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                     (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            return false;
        }
    }
    return dots == 2 && *d1 > 0 && *d2 > *d1 + 1 && *d2 + 1 < len;
}

/* a base64url segment's bytes into raw[JWT_MAX_LEN]; their count, or -1 */
static int segment_decode(const char *seg, size_t len, unsigned char *raw)
{
    size_t n;

    if (len > JWT_MAX_LEN
        || core_base64_decode(PLX_B64_URL, seg, len, raw, JWT_MAX_LEN, &n) != PLX_OK)
        return -1;
    return (int)n;
}

/* a base64url segment holding one JSON object; duplicate keys refused, so
 * the object we check is the one every parser sees */
static json_t *segment_json(const char *seg, size_t len)
{
    unsigned char raw[JWT_MAX_LEN];
    int n = segment_decode(seg, len, raw);

    if (n <= 0)
        return NULL;
    json_t *obj = json_loadb((const char *)raw, (size_t)n,
                             JSON_REJECT_DUPLICATES, NULL);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* alg exactly the configured name; typ, if any, "JWT"; no "crit" (RFC
 * 7515 4.1.11: we understand no extension, so none may be critical) */
static bool header_ok(const char *token, size_t d1)
{
    json_t *h = segment_json(token, d1);
    if (!h)
        return false;
    const char *alg = json_string_value(json_object_get(h, "alg"));
    json_t *typ = json_object_get(h, "typ");
    bool ok = alg && strcmp(alg, jc.alg_name) == 0 &&
              (!typ || (json_is_string(typ) &&
                        strcmp(json_string_value(typ), "JWT") == 0)) &&
              !json_object_get(h, "crit");
    json_decref(h);
    return ok;
}

/* HS256 (RFC 7515 appendix A.1) checked here, whatever libjwt does: its
 * releases before the fix for CVE-2024-25189 compare the MAC with strcmp,
 * which leaks through timing how much of a forged MAC is right. Ours
 * compares in constant time. d2 is the position of the second dot. */
PLX_STATIC bool identity_jwt_hs256_ok(const char *token, size_t d2,
                                      const unsigned char *key, size_t keylen)
{
    unsigned char mac[EVP_MAX_MD_SIZE], sig[JWT_MAX_LEN];
    unsigned int maclen = 0;
    size_t siglen = strlen(token + d2 + 1);
    int n = segment_decode(token + d2 + 1, siglen, sig);

    if (n != 32 || keylen > INT_MAX
        || !HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)token, d2,
                 mac, &maclen)
        || maclen != 32)
        return false;
    return CRYPTO_memcmp(mac, sig, 32) == 0;
}

/* libjwt's half: the signature, and the algorithm it decided on */
static bool signature_ok(const char *token)
{
    jwt_t *j = NULL;

    if (jwt_decode(&j, token, jc.verify_key, (int)jc.verify_len) != 0) {
        jwt_free(j);
        return false;
    }
    bool ok = j && jwt_get_alg(j) == jc.alg;
    jwt_free(j);
    return ok;
}

static bool claim_string_eq(json_t *claims, const char *name, const char *want)
{
    const char *v = json_string_value(json_object_get(claims, name));
    return v && strcmp(v, want) == 0;
}

static bool claim_uuid(json_t *claims, const char *name, char out[37])
{
    const char *v = json_string_value(json_object_get(claims, name));
    if (!v || strnlen(v, 37) != 36 || !core_uuid_valid(v))
        return false;
    memcpy(out, v, 37);
    return true;
}

static bool claim_time(json_t *claims, const char *name, long *out)
{
    json_t *v = json_object_get(claims, name);
    if (!json_is_integer(v))
        return false;
    json_int_t t = json_integer_value(v);
    if (t < 0 || t > (json_int_t)1 << 40)
        return false;
    *out = (long)t;
    return true;
}

static bool claims_ok(json_t *claims, time_t now, identity_claims_t *out)
{
    long nbf;

    if (!claim_string_eq(claims, "iss", jc.issuer) ||
        !claim_string_eq(claims, "aud", jc.audience))
        return false;
    if (!claim_time(claims, "exp", &out->exp) ||
        !claim_time(claims, "iat", &out->iat))
        return false;
    if (out->exp <= (long)now || out->iat > (long)now + JWT_SKEW_S ||
        out->iat >= out->exp)
        return false;
    if (json_object_get(claims, "nbf") &&
        (!claim_time(claims, "nbf", &nbf) || nbf > (long)now + JWT_SKEW_S))
        return false;
    return claim_uuid(claims, "sub", out->sub) &&
           claim_uuid(claims, "sid", out->sid) &&
           claim_uuid(claims, "jti", out->jti);
}

plx_status_t identity_jwt_verify(const char *token, time_t now,
                                 identity_claims_t *out)
{
    size_t d1 = 0, d2 = 0;

    if (!out)
        return PLX_ERR_INVALID;
    memset(out, 0, sizeof *out);
    if (!jc.configured)
        return PLX_ERR_INTERNAL;
    if (!token || now < 0 || now > (time_t)1 << 40)
        return PLX_ERR_AUTH;
    size_t len = strnlen(token, JWT_MAX_LEN + 1);
    if (len > JWT_MAX_LEN || !token_shape_ok(token, len, &d1, &d2))
        return PLX_ERR_AUTH;
    if (!header_ok(token, d1)
        || (jc.alg == JWT_ALG_HS256
            && !identity_jwt_hs256_ok(token, d2, jc.verify_key, jc.verify_len))
        || !signature_ok(token))
        return PLX_ERR_AUTH;

    json_t *claims = segment_json(token + d1 + 1, d2 - d1 - 1);
    bool ok = claims && claims_ok(claims, now, out);
    json_decref(claims);
    if (!ok) {
        memset(out, 0, sizeof *out);
        return PLX_ERR_AUTH;
    }
    return PLX_OK;
}
