/*
 * secretbox.c - sealing secrets at rest (TOTP seeds) with AES-256-GCM
 *
 * A sealed value is "<key id>:<base64(nonce 12 | ciphertext | tag 16)>".
 * The key id names which configured key opens it, so keys can rotate: the
 * current key seals, older ones only open, and a re-seal moves a value to
 * the current key. The id is also the GCM additional data, so a value
 * cannot be relabelled to be opened under another key's name.
 *
 * Keys are added once at start (core_identity_setup) and only read
 * afterwards, from any thread; add and reset are not thread-safe.
 */
#include "config.h"
#include "crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define BOX_MAX_KEYS  16
#define BOX_ID_MAX    32
#define BOX_NONCE     12
#define BOX_TAG       16
/* secrets at rest are small; this keeps every length far from INT_MAX */
#define BOX_MAX_PLAIN (1024 * 1024)
#define BOX_AD_MAX    (BOX_ID_MAX + 1 + IDENTITY_SEAL_AD_MAX)

typedef struct box_key {
    char id[BOX_ID_MAX + 1];
    unsigned char key[32];
} box_key_t;

static box_key_t box_keys[BOX_MAX_KEYS];
static int box_nkeys;
static int box_current = -1;

static bool key_id_ok(const char *id, size_t len)
{
    if (len == 0 || len > BOX_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = id[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static const box_key_t *key_find(const char *id, size_t len)
{
    for (int i = 0; i < box_nkeys; i++)
        if (strlen(box_keys[i].id) == len &&
            memcmp(box_keys[i].id, id, len) == 0)
            return &box_keys[i];
    return NULL;
}

plx_status_t identity_secretbox_add_key(const char *key_id,
                                        const unsigned char key[32],
                                        bool current)
{
    if (!key_id || !key)
        return PLX_ERR_INVALID;
    size_t len = strnlen(key_id, BOX_ID_MAX + 1);
    if (!key_id_ok(key_id, len))
        return PLX_ERR_INVALID;
    if (key_find(key_id, len))
        return PLX_ERR_CONFLICT;
    if (current && box_current >= 0)
        return PLX_ERR_CONFLICT;
    if (box_nkeys == BOX_MAX_KEYS)
        return PLX_ERR_LIMIT;

    box_key_t *k = &box_keys[box_nkeys];
    memcpy(k->id, key_id, len);
    k->id[len] = '\0';
    memcpy(k->key, key, 32);
    if (current)
        box_current = box_nkeys;
    box_nkeys++;
    return PLX_OK;
}

void identity_secretbox_reset(void)
{
    identity_wipe(box_keys, sizeof box_keys);
    box_nkeys = 0;
    box_current = -1;
}

/* the GCM additional data: the key id, then NUL and ad when there is ad */
static size_t box_ad(const box_key_t *k, const void *ad, size_t adlen,
                     unsigned char out[BOX_AD_MAX])
{
    size_t idlen = strlen(k->id);

    memcpy(out, k->id, idlen);
    if (!ad)
        return idlen;
    out[idlen] = '\0';
    memcpy(out + idlen + 1, ad, adlen);
    return idlen + 1 + adlen;
}

/* nonce | ciphertext | tag into out (len + 28 bytes) */
static bool gcm_seal(const box_key_t *k, const unsigned char *ad,
                     size_t adlen, const unsigned char *plain, size_t len,
                     unsigned char *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    bool ok = ctx && core_random_bytes(out, BOX_NONCE) &&
        EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, BOX_NONCE,
                            NULL) == 1 &&
        EVP_EncryptInit_ex(ctx, NULL, NULL, k->key, out) == 1 &&
        EVP_EncryptUpdate(ctx, NULL, &n, ad, (int)adlen) == 1 &&
        EVP_EncryptUpdate(ctx, out + BOX_NONCE, &n, plain, (int)len) == 1 &&
        EVP_EncryptFinal_ex(ctx, out + BOX_NONCE + n, &fin) == 1 &&
        (size_t)(n + fin) == len &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, BOX_TAG,
                            out + BOX_NONCE + len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

plx_status_t identity_seal(const unsigned char *plain, size_t len, char **out)
{
    return identity_seal_ad(NULL, 0, plain, len, out);
}

plx_status_t identity_seal_ad(const void *ad, size_t adlen,
                              const unsigned char *plain, size_t len,
                              char **out)
{
    unsigned char adbuf[BOX_AD_MAX];

    if (!out || (!plain && len) || (!ad && adlen))
        return PLX_ERR_INVALID;
    *out = NULL;
    if (len > BOX_MAX_PLAIN || adlen > IDENTITY_SEAL_AD_MAX)
        return PLX_ERR_TOO_LARGE;
    if (box_current < 0)
        return PLX_ERR_INTERNAL;   /* no key configured: a setup bug */

    const box_key_t *k = &box_keys[box_current];
    size_t rawlen = BOX_NONCE + len + BOX_TAG;
    unsigned char *raw = malloc(rawlen);
    size_t idlen = strlen(k->id);
    size_t cap = idlen + 1 + (rawlen + 2) / 3 * 4 + 1;
    char *text = malloc(cap);
    if (!raw || !text) {
        free(raw);
        free(text);
        return PLX_ERR_NOMEM;
    }
    size_t adn = box_ad(k, ad, adlen, adbuf);
    if (!gcm_seal(k, adbuf, adn, plain ? plain : (const unsigned char *)"",
                  len, raw)) {
        free(raw);
        free(text);
        return PLX_ERR_INTERNAL;
    }
    memcpy(text, k->id, idlen);
    text[idlen] = ':';
    core_base64_encode(PLX_B64_STD, raw, rawlen, text + idlen + 1, cap - idlen - 1);
    free(raw);
    *out = text;
    return PLX_OK;
}

/* raw = nonce | ciphertext | tag; plain gets rawlen - 28 bytes */
static bool gcm_open(const box_key_t *k, const unsigned char *ad,
                     size_t adlen, const unsigned char *raw, size_t rawlen,
                     unsigned char *plain)
{
    size_t ctlen = rawlen - BOX_NONCE - BOX_TAG;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    bool ok = ctx &&
        EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, BOX_NONCE,
                            NULL) == 1 &&
        EVP_DecryptInit_ex(ctx, NULL, NULL, k->key, raw) == 1 &&
        EVP_DecryptUpdate(ctx, NULL, &n, ad, (int)adlen) == 1 &&
        EVP_DecryptUpdate(ctx, plain, &n, raw + BOX_NONCE, (int)ctlen) == 1 &&
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, BOX_TAG,
                            (void *)(raw + BOX_NONCE + ctlen)) == 1 &&
        EVP_DecryptFinal_ex(ctx, plain + n, &fin) == 1 &&
        (size_t)(n + fin) == ctlen;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

plx_status_t identity_unseal(const char *sealed, unsigned char **plain,
                             size_t *len)
{
    return identity_unseal_ad(sealed, NULL, 0, plain, len, NULL);
}

plx_status_t identity_unseal_ad(const char *sealed, const void *ad,
                                size_t adlen, unsigned char **plain,
                                size_t *len, bool *stale)
{
    unsigned char adbuf[BOX_AD_MAX];

    if (!sealed || !plain || !len || (!ad && adlen))
        return PLX_ERR_INVALID;
    *plain = NULL;
    *len = 0;
    if (stale)
        *stale = false;
    if (adlen > IDENTITY_SEAL_AD_MAX)
        return PLX_ERR_AUTH;

    const char *colon = strchr(sealed, ':');
    if (!colon)
        return PLX_ERR_AUTH;
    const box_key_t *k = key_find(sealed, (size_t)(colon - sealed));
    if (!k)
        return PLX_ERR_AUTH;

    size_t b64len = strnlen(colon + 1, (BOX_MAX_PLAIN + 64) / 3 * 4 + 1);
    if (b64len > (BOX_MAX_PLAIN + 64) / 3 * 4)
        return PLX_ERR_AUTH;
    size_t cap = b64len / 4 * 3 + 3;
    unsigned char *raw = malloc(cap);
    if (!raw)
        return PLX_ERR_NOMEM;
    int rawlen = identity_base64_decode(colon + 1, raw, cap);
    if (rawlen < BOX_NONCE + BOX_TAG) {
        free(raw);
        return PLX_ERR_AUTH;
    }

    size_t ptlen = (size_t)rawlen - BOX_NONCE - BOX_TAG;
    unsigned char *pt = malloc(ptlen + 1);
    if (!pt) {
        free(raw);
        return PLX_ERR_NOMEM;
    }
    size_t adn = box_ad(k, ad, adlen, adbuf);
    if (!gcm_open(k, adbuf, adn, raw, (size_t)rawlen, pt)) {
        identity_wipe(pt, ptlen + 1);
        free(pt);
        free(raw);
        return PLX_ERR_AUTH;
    }
    free(raw);
    pt[ptlen] = '\0';   /* convenience for text secrets; not counted */
    *plain = pt;
    *len = ptlen;
    if (stale)
        *stale = box_current < 0 || k != &box_keys[box_current];
    return PLX_OK;
}
