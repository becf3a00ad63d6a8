/*
 * identity.c - identity's settings, keys and registration, and the small
 * helpers every route file of core/identity/ shares
 *
 * Setup runs once, before any thread, from main.c's prepare(): it reads
 * [auth], [smtp] and [server], configures the JWT signer and the sealing
 * keys, and refuses to start a production server whose keys are missing or
 * weak. In dev mode a missing key is made up at random, with a warning that
 * tokens and sealed secrets then die with the process. Registration (after
 * core_health_register) adds every route file, the hooks and the email job.
 */
#include "config.h"
#include "core.h"
#include "conf.h"
#include "jobs.h"
#include "loader.h"
#include "db.h"
#include "identity/identity.h"
#include "identity/crypto.h"

#include <curl/curl.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JWT_SECRET_MIN   32
#define MFA_KEY_LEN      32
#define KEY_FILE_MAX     (64 * 1024)
#define KEY_ID_MAX       32

identity_settings_t identity_settings;

static bool curl_ready;
static bool jwt_ready;
static bool box_ready;

/* ---- settings ----------------------------------------------------------- */

static const char *cfg_str(core_config_t *cfg, const char *section,
                           const char *key)
{
    const char *v = core_config_get(cfg, section, key);

    return v && *v ? v : NULL;
}

static void public_url_read(core_config_t *cfg)
{
    const char *url = cfg_str(cfg, "server", "public_url");
    char *s = identity_settings.public_url;
    size_t n;

    if (url)
        snprintf(s, sizeof identity_settings.public_url, "%s", url);
    else
        snprintf(s, sizeof identity_settings.public_url, "http://%s",
                 cfg_str(cfg, "server", "listen") ? cfg_str(cfg, "server", "listen")
                                                  : "localhost");
    n = strlen(s);
    while (n > 0 && s[n - 1] == '/')
        s[--n] = '\0';
}

static void settings_read(core_config_t *cfg)
{
    identity_settings_t *s = &identity_settings;

    s->access_ttl_s = core_config_ms(cfg, "auth", "access_ttl") / 1000;
    s->refresh_ttl_s = core_config_ms(cfg, "auth", "refresh_ttl") / 1000;
    s->email_token_ttl_s = core_config_ms(cfg, "auth", "email_token_ttl") / 1000;
    s->reset_token_ttl_s = core_config_ms(cfg, "auth", "reset_token_ttl") / 1000;
    s->password_min_length = (int)core_config_int(cfg, "auth", "password_min_length");
    s->login_max_failures = (int)core_config_int(cfg, "auth", "login_max_failures");
    s->login_ip_max_failures = (int)core_config_int(cfg, "auth", "login_ip_max_failures");
    s->login_lockout_s = core_config_ms(cfg, "auth", "login_lockout") / 1000;
    if (s->login_lockout_s < 1)
        s->login_lockout_s = 1;
    s->require_verified_email = core_config_bool(cfg, "auth", "require_verified_email");
    s->dev_mode = core_config_bool(cfg, "server", "dev_mode");
    public_url_read(cfg);
}

/* ---- JWT keys ------------------------------------------------------------ */

/* a P-256 key pair in PEM, for dev mode without key files */
static bool es256_generate(char **priv, size_t *privlen, char **pub,
                           size_t *publen)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    BIO *bp = BIO_new(BIO_s_mem()), *bu = BIO_new(BIO_s_mem());
    char *p = NULL, *u = NULL;
    long pl = 0, ul = 0;
    bool ok = key && bp && bu
              && PEM_write_bio_PrivateKey(bp, key, NULL, NULL, 0, NULL, NULL) == 1
              && PEM_write_bio_PUBKEY(bu, key) == 1;

    if (ok) {
        pl = BIO_get_mem_data(bp, &p);
        ul = BIO_get_mem_data(bu, &u);
        *priv = pl > 0 ? strndup(p, (size_t)pl) : NULL;
        *pub = ul > 0 ? strndup(u, (size_t)ul) : NULL;
        *privlen = (size_t)pl;
        *publen = (size_t)ul;
        ok = *priv && *pub;
    }
    BIO_free(bp);
    BIO_free(bu);
    EVP_PKEY_free(key);
    return ok;
}

static bool jwt_es256(core_config_t *cfg, bool dev)
{
    const char *privf = cfg_str(cfg, "auth", "jwt_private_key_file");
    const char *pubf = cfg_str(cfg, "auth", "jwt_public_key_file");
    char *priv = NULL, *pub = NULL;
    size_t privlen = 0, publen = 0;
    bool ok;

    if (!privf || !pubf) {
        if (!dev) {
            LOG_ERROR("auth.jwt_alg is \"ES256\" but auth.jwt_private_key_file and "
                      "auth.jwt_public_key_file are not both set");
            return false;
        }
        LOG_WARN("dev mode: no ES256 key files, using a random key pair; "
                 "tokens die with the process");
        ok = es256_generate(&priv, &privlen, &pub, &publen);
    } else {
        priv = core_read_file(privf, KEY_FILE_MAX, &privlen);
        pub = core_read_file(pubf, KEY_FILE_MAX, &publen);
        ok = priv && pub;
        if (!ok)
            LOG_ERROR("cannot read the ES256 key files \"%s\" and \"%s\"", privf, pubf);
    }
    ok = ok && identity_jwt_configure("ES256", (const unsigned char *)priv, privlen,
                                      (const unsigned char *)pub, publen,
                                      core_config_get(cfg, "auth", "issuer"),
                                      core_config_get(cfg, "auth", "audience")) == PLX_OK;
    if (priv)
        identity_wipe(priv, privlen);
    free(priv);
    free(pub);
    return ok;
}

static bool jwt_hs256(core_config_t *cfg, bool dev)
{
    const char *secret = cfg_str(cfg, "auth", "jwt_secret");
    unsigned char random_key[64];
    const unsigned char *key = (const unsigned char *)secret;
    size_t keylen = secret ? strlen(secret) : 0;
    plx_status_t st;

    if (secret && keylen < JWT_SECRET_MIN) {
        LOG_ERROR("auth.jwt_secret is %zu bytes, expected at least %d", keylen,
                  JWT_SECRET_MIN);
        return false;
    }
    if (!secret && !dev) {
        LOG_ERROR("auth.jwt_secret is not set (nor auth.jwt_secret_file, nor "
                  "PLEXUS_AUTH_JWT_SECRET): refusing to start outside dev mode");
        return false;
    }
    if (!secret) {
        LOG_WARN("dev mode: auth.jwt_secret is not set, using a random one; "
                 "tokens die with the process");
        if (!core_random_bytes(random_key, sizeof random_key))
            return false;
        key = random_key;
        keylen = sizeof random_key;
    }
    st = identity_jwt_configure("HS256", key, keylen, NULL, 0,
                                core_config_get(cfg, "auth", "issuer"),
                                core_config_get(cfg, "auth", "audience"));
    identity_wipe(random_key, sizeof random_key);
    if (st != PLX_OK)
        LOG_ERROR("cannot configure HS256 tokens: %s", core_status_str(st));
    return st == PLX_OK;
}

static bool jwt_setup(core_config_t *cfg, bool dev)
{
    const char *alg = core_config_get(cfg, "auth", "jwt_alg");

    if (alg && strcmp(alg, "ES256") == 0)
        return jwt_es256(cfg, dev);
    if (alg && strcmp(alg, "HS256") != 0) {
        LOG_ERROR("auth.jwt_alg is \"%s\", expected HS256 or ES256", alg);
        return false;
    }
    return jwt_hs256(cfg, dev);
}

/* ---- sealing keys ---------------------------------------------------------- */

static bool mfa_key_add(const char *kid, const char *b64, bool current,
                        const char *what)
{
    unsigned char key[MFA_KEY_LEN + 16];
    int n = identity_base64_decode(b64, key, sizeof key);
    bool ok = n == MFA_KEY_LEN
              && identity_secretbox_add_key(kid, key, current) == PLX_OK;

    identity_wipe(key, sizeof key);
    if (!ok)
        LOG_ERROR("%s for key id \"%s\": expected the base64 of %d bytes", what,
                  kid, MFA_KEY_LEN);
    return ok;
}

/* "kid:base64,kid:base64": keys that still open what they sealed */
static bool mfa_old_keys(const char *list)
{
    char *copy, *save = NULL;
    bool ok = true;

    if (!list || !*list)
        return true;
    copy = strdup(list);
    if (!copy)
        return false;
    for (char *item = strtok_r(copy, ",", &save); item && ok;
         item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *colon = strchr(item, ':');
        if (!colon || colon == item || colon - item > KEY_ID_MAX) {
            LOG_ERROR("auth.mfa_old_keys: expected \"kid:base64\" items, found \"%.40s\"",
                      item);
            ok = false;
            break;
        }
        *colon = '\0';
        ok = mfa_key_add(item, colon + 1, false, "auth.mfa_old_keys");
    }
    identity_wipe(copy, strlen(list));
    free(copy);
    return ok;
}

static bool mfa_setup(core_config_t *cfg, bool dev)
{
    const char *b64 = cfg_str(cfg, "auth", "mfa_key");
    const char *kid = cfg_str(cfg, "auth", "mfa_key_id");
    unsigned char key[MFA_KEY_LEN];
    bool ok;

    if (!kid)
        kid = "k1";
    if (b64)
        return mfa_key_add(kid, b64, true, "auth.mfa_key")
            && mfa_old_keys(core_config_get(cfg, "auth", "mfa_old_keys"));
    if (!dev) {
        LOG_ERROR("auth.mfa_key is not set (nor auth.mfa_key_file, nor "
                  "PLEXUS_AUTH_MFA_KEY): refusing to start outside dev mode");
        return false;
    }
    LOG_WARN("dev mode: auth.mfa_key is not set, using a random one; second "
             "factors set up now die with the process");
    ok = core_random_bytes(key, sizeof key)
         && identity_secretbox_add_key(kid, key, true) == PLX_OK;
    identity_wipe(key, sizeof key);
    return ok && mfa_old_keys(core_config_get(cfg, "auth", "mfa_old_keys"));
}

/* ---- life cycle -------------------------------------------------------------- */

bool core_identity_setup(core_config_t *cfg, bool keys)
{
    memset(&identity_settings, 0, sizeof identity_settings);
    settings_read(cfg);
    if (!identity_ratelimit_check_config(cfg))
        return false;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            LOG_ERROR("libcurl failed to initialise");
            return false;
        }
        curl_ready = true;
    }
    if (!keys)
        return true;
    jwt_ready = jwt_setup(cfg, identity_settings.dev_mode);
    if (!jwt_ready)
        return false;
    box_ready = mfa_setup(cfg, identity_settings.dev_mode);
    return box_ready;
}

bool core_identity_register(void)
{
    if (!identity_authn_hook())
        return false;
    if (!identity_ratelimit_setup(core_cfg))
        return false;
    if (!identity_auth_routes() || !identity_mfa_routes())
        return false;
    if (!identity_apikey_routes() || !identity_team_routes()
        || !identity_admin_routes())
        return false;
    return identity_email_register();
}

bool core_identity_start(void)
{
    return identity_socket_watch_start();
}

void core_identity_shutdown(void)
{
    identity_socket_watch_stop();
    identity_ratelimit_shutdown();
    if (jwt_ready)
        identity_jwt_reset();
    if (box_ready)
        identity_secretbox_reset();
    jwt_ready = box_ready = false;
    if (curl_ready)
        curl_global_cleanup();
    curl_ready = false;
}

/* ---- helpers for the route files ------------------------------------------- */

plx_status_t identity_bad_field(plx_request_t *r, const char *field,
                                const char *why)
{
    return core_reply_problem(r, 400, "invalid_field", "field \"%s\" %s", field, why);
}

const char *identity_body_string(plx_request_t *r, json_t *body,
                                 const char *field, size_t max_len)
{
    json_t *v = json_is_object(body) ? json_object_get(body, field) : NULL;
    const char *s;
    size_t len;
    char why[64];

    if (!v) {
        identity_bad_field(r, field, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        identity_bad_field(r, field, "must be a string");
        return NULL;
    }
    s = json_string_value(v);
    len = json_string_length(v);
    if (len == 0) {
        identity_bad_field(r, field, "must not be empty");
        return NULL;
    }
    if (len > max_len) {
        snprintf(why, sizeof why, "must be at most %zu bytes", max_len);
        identity_bad_field(r, field, why);
        return NULL;
    }
    if (strlen(s) != len || !core_utf8_valid(s, len)) {
        identity_bad_field(r, field, "must be valid UTF-8 without NUL");
        return NULL;
    }
    return s;
}

const char *identity_caller(plx_request_t *r)
{
    return core_request_user_id(r);
}

json_t *identity_body_object(plx_request_t *r)
{
    json_t *body;

    return core_request_body_object(r, &body) == PLX_OK ? body : NULL;
}

bool identity_refuse_api_key(plx_request_t *r)
{
    const core_principal_t *p = core_request_principal(r);

    if (!p || !p->api_key)
        return false;
    core_reply_problem(r, 403, "api_key_forbidden",
                       "this route needs a signed-in user, not an API key");
    return true;
}

bool identity_db_bool(const plx_db_res_t *res, int row, int col)
{
    const char *v = core_db_value(res, row, col);

    return v && v[0] == 't';
}
