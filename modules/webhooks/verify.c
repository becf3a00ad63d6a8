/*
 * verify.c - the providers' signature schemes over the raw body, exactly
 * as each signs it: Stripe ("Check the webhook signatures", Stripe docs),
 * GitHub ("Validating webhook deliveries"), Slack ("Verifying requests
 * from Slack"), Standard Webhooks (specification 1.0.0), and a
 * configurable HMAC of the body that ClickUp and Notion fit. Every MAC is
 * compared in constant time (CRYPTO_memcmp) after a length check, every
 * header is bounded before it is parsed, and a signature is checked before
 * its timestamp so that a forgery is reported as one.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "verify.h"

#define MAC_MAX 64   /* SHA-512 */
/* the longest prefix a scheme signs before the body: Standard Webhooks'
 * "<id>.<ts>." with a bounded id */
#define PRE_MAX 320

const char *wh_verdict_name(wh_verdict_t v)
{
    switch (v) {
    case WH_OK:        return "verified";
    case WH_UNSIGNED:  return "unsigned";
    case WH_MALFORMED: return "malformed";
    case WH_FORGED:    return "forged";
    case WH_STALE:     return "stale";
    case WH_ERROR:     break;
    }
    return "error";
}

static int secrets_ok(const wh_secrets_t *s)
{
    if (!s || !s->v || s->n == 0 || s->n > WH_MAX_SECRETS)
        return 0;
    for (size_t i = 0; i < s->n; i++)
        if (!s->v[i] || !s->v[i][0] || strlen(s->v[i]) > WH_MAX_SECRET_LEN)
            return 0;
    return 1;
}

/* MAC(key, pre || body) into mac; 0 on failure. The signed prefix and the
 * body are joined in one buffer: the one-shot HMAC is the interface that
 * every supported OpenSSL keeps undeprecated. */
static int mac_of(wh_algo_t algo, const void *key, size_t keylen,
                  const char *pre, size_t prelen, const void *body,
                  size_t len, unsigned char mac[MAC_MAX], size_t *maclen)
{
    const EVP_MD *md = algo == WH_SHA512 ? EVP_sha512() : EVP_sha256();
    unsigned int n = 0;
    unsigned char *buf;
    int ok;

    if (keylen > (size_t)WH_MAX_SECRET_LEN || len > SIZE_MAX - prelen - 1)
        return 0;
    buf = malloc(prelen + len + 1);
    if (!buf)
        return 0;
    if (prelen)
        memcpy(buf, pre, prelen);
    if (len)
        memcpy(buf + prelen, body, len);
    ok = HMAC(md, key, (int)keylen, buf, prelen + len, mac, &n) != NULL;
    free(buf);
    *maclen = n;
    return ok && n > 0 && n <= MAC_MAX;
}

/* 1 when text (len bytes, encoded as enc) decodes to exactly mac; 0 when
 * it does not; -1 when text is not in the encoding at all */
static int encoded_equal(wh_enc_t enc, const char *text, size_t len,
                         const unsigned char *mac, size_t maclen)
{
    unsigned char got[MAC_MAX + 3];
    size_t n = 0;
    plx_status_t st;

    if (len == 0 || len > 2 * MAC_MAX + 4)
        return -1;
    st = enc == WH_BASE64
        ? plx_base64_decode(PLX_B64_STD, text, len, got, sizeof got, &n)
        : plx_hex_decode(text, len, got, sizeof got, &n);
    if (st != PLX_OK)
        return -1;
    return n == maclen && CRYPTO_memcmp(got, mac, maclen) == 0;
}

/* a Unix time in seconds: 1 to 12 decimal digits, nothing else */
static int parse_time(const char *s, size_t len, long long *out)
{
    long long v = 0;

    if (len == 0 || len > 12)
        return 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

static int in_window(long long t, time_t now, long tolerance)
{
    long long d = (long long)now - t;
    return d <= tolerance && d >= -(long long)tolerance;
}

/* One candidate signature against every secret, for the schemes whose key
 * is the secret's bytes as written. 1 match, 0 none, -1 bad encoding. */
static int any_secret(wh_algo_t algo, wh_enc_t enc, const char *sig,
                      size_t siglen, const char *pre, size_t prelen,
                      const void *body, size_t len, const wh_secrets_t *s,
                      int *failed)
{
    int found = 0;

    for (size_t i = 0; i < s->n; i++) {
        unsigned char mac[MAC_MAX];
        size_t maclen = 0;
        int eq;

        if (!mac_of(algo, s->v[i], strlen(s->v[i]), pre, prelen, body, len,
                    mac, &maclen)) {
            *failed = 1;
            return 0;
        }
        eq = encoded_equal(enc, sig, siglen, mac, maclen);
        if (eq < 0)
            return -1;
        /* no early exit: every secret is tried whatever matched */
        found |= eq;
    }
    return found;
}

wh_verdict_t wh_verify_hmac(const wh_hmac_cfg_t *cfg, const char *header,
                            const void *body, size_t len,
                            const wh_secrets_t *s)
{
    const char *prefix = cfg && cfg->prefix ? cfg->prefix : "";
    size_t hlen, plen = strlen(prefix);
    int failed = 0, r;

    if (!cfg || !secrets_ok(s))
        return WH_ERROR;
    if (!header || !header[0])
        return WH_UNSIGNED;
    hlen = strnlen(header, WH_MAX_SIG_HEADER + 1);
    if (hlen > WH_MAX_SIG_HEADER || hlen <= plen
        || strncmp(header, prefix, plen) != 0)
        return WH_MALFORMED;
    r = any_secret(cfg->algo, cfg->enc, header + plen, hlen - plen, NULL, 0,
                   body, len, s, &failed);
    if (failed)
        return WH_ERROR;
    return r < 0 ? WH_MALFORMED : r ? WH_OK : WH_FORGED;
}

wh_verdict_t wh_verify_stripe(const char *header, const void *body,
                              size_t len, const wh_secrets_t *s,
                              time_t now, long tolerance)
{
    const char *sig[WH_MAX_SIGNATURES];
    size_t siglen[WH_MAX_SIGNATURES], nsig = 0, hlen, tlen = 0;
    const char *t = NULL, *p;
    char pre[PRE_MAX];
    long long ts = 0;
    int found = 0, failed = 0;

    if (!secrets_ok(s))
        return WH_ERROR;
    if (!header || !header[0])
        return WH_UNSIGNED;
    hlen = strnlen(header, WH_MAX_SIG_HEADER + 1);
    if (hlen > WH_MAX_SIG_HEADER)
        return WH_MALFORMED;
    /* comma-separated key=value items, no trimming, as Stripe's libraries
     * parse them; keys other than t and v1 are ignored */
    for (p = header; p < header + hlen;) {
        const char *end = memchr(p, ',', (size_t)(header + hlen - p));
        const char *eq;
        size_t ilen;

        if (!end)
            end = header + hlen;
        ilen = (size_t)(end - p);
        eq = memchr(p, '=', ilen);
        if (eq) {
            size_t klen = (size_t)(eq - p), vlen = ilen - klen - 1;
            if (klen == 1 && p[0] == 't') {
                if (t)
                    return WH_MALFORMED;
                t = eq + 1;
                tlen = vlen;
            } else if (klen == 2 && p[0] == 'v' && p[1] == '1') {
                if (nsig == WH_MAX_SIGNATURES)
                    return WH_MALFORMED;
                sig[nsig] = eq + 1;
                siglen[nsig++] = vlen;
            }
        }
        p = end + 1;
    }
    if (!t || nsig == 0 || !parse_time(t, tlen, &ts))
        return WH_MALFORMED;
    /* signed: the timestamp exactly as in the header, '.', the body */
    memcpy(pre, t, tlen);
    pre[tlen] = '.';
    for (size_t i = 0; i < nsig; i++) {
        /* an entry that is not hex matches nothing; another may */
        int r = any_secret(WH_SHA256, WH_HEX, sig[i], siglen[i], pre,
                           tlen + 1, body, len, s, &failed);
        if (failed)
            return WH_ERROR;
        found |= r > 0;
    }
    if (!found)
        return WH_FORGED;
    return in_window(ts, now, tolerance) ? WH_OK : WH_STALE;
}

wh_verdict_t wh_verify_slack(const char *ts, const char *sig,
                             const void *body, size_t len,
                             const wh_secrets_t *s, time_t now,
                             long tolerance)
{
    char pre[PRE_MAX];
    size_t tlen, slen;
    long long t = 0;
    int r, failed = 0;

    if (!secrets_ok(s))
        return WH_ERROR;
    if (!ts || !ts[0] || !sig || !sig[0])
        return WH_UNSIGNED;
    tlen = strnlen(ts, 16);
    slen = strnlen(sig, WH_MAX_SIG_HEADER + 1);
    if (!parse_time(ts, tlen, &t) || slen > WH_MAX_SIG_HEADER || slen <= 3
        || strncmp(sig, "v0=", 3) != 0)
        return WH_MALFORMED;
    /* signed: "v0:" <timestamp> ":" <body> */
    memcpy(pre, "v0:", 3);
    memcpy(pre + 3, ts, tlen);
    pre[3 + tlen] = ':';
    r = any_secret(WH_SHA256, WH_HEX, sig + 3, slen - 3, pre, tlen + 4, body,
                   len, s, &failed);
    if (failed)
        return WH_ERROR;
    if (r < 0)
        return WH_MALFORMED;
    if (!r)
        return WH_FORGED;
    return in_window(t, now, tolerance) ? WH_OK : WH_STALE;
}

/* a Standard Webhooks secret: "whsec_" (optional) then standard base64 */
static int standard_key(const char *secret, unsigned char *key, size_t cap,
                        size_t *keylen)
{
    if (strncmp(secret, "whsec_", 6) == 0)
        secret += 6;
    return plx_base64_decode(PLX_B64_STD, secret, strlen(secret), key, cap,
                             keylen) == PLX_OK && *keylen > 0;
}

wh_verdict_t wh_verify_standard(const char *id, const char *ts,
                                const char *sig, const void *body,
                                size_t len, const wh_secrets_t *s,
                                time_t now, long tolerance)
{
    unsigned char macs[WH_MAX_SECRETS][MAC_MAX];
    int have[WH_MAX_SECRETS] = {0};
    char pre[PRE_MAX];
    size_t idlen, tlen, slen, prelen, nv1 = 0;
    long long t = 0;
    int found = 0;

    if (!secrets_ok(s))
        return WH_ERROR;
    if (!id || !id[0] || !ts || !ts[0] || !sig || !sig[0])
        return WH_UNSIGNED;
    idlen = strnlen(id, 256);
    tlen = strnlen(ts, 16);
    slen = strnlen(sig, WH_MAX_SIG_HEADER + 1);
    /* the id and timestamp are joined with '.', so neither may hold one */
    if (idlen >= 256 || memchr(id, '.', idlen) || !parse_time(ts, tlen, &t)
        || slen > WH_MAX_SIG_HEADER)
        return WH_MALFORMED;
    memcpy(pre, id, idlen);
    pre[idlen] = '.';
    memcpy(pre + idlen + 1, ts, tlen);
    pre[idlen + 1 + tlen] = '.';
    prelen = idlen + tlen + 2;
    for (size_t i = 0; i < s->n; i++) {
        unsigned char key[WH_MAX_SECRET_LEN];
        size_t keylen = 0, maclen = 0;

        /* a secret that is not base64 signs nothing */
        if (!standard_key(s->v[i], key, sizeof key, &keylen))
            continue;
        if (!mac_of(WH_SHA256, key, keylen, pre, prelen, body, len, macs[i],
                    &maclen)) {
            OPENSSL_cleanse(key, sizeof key);
            return WH_ERROR;
        }
        OPENSSL_cleanse(key, sizeof key);
        have[i] = 1;
    }
    /* "v1,<base64>" entries separated by single spaces; other versions
     * (v1a: asymmetric) are skipped */
    for (const char *p = sig; p < sig + slen;) {
        const char *end = memchr(p, ' ', (size_t)(sig + slen - p));
        size_t elen;

        if (!end)
            end = sig + slen;
        elen = (size_t)(end - p);
        if (elen > 3 && strncmp(p, "v1,", 3) == 0) {
            if (++nv1 > WH_MAX_SIGNATURES)
                return WH_MALFORMED;
            for (size_t i = 0; i < s->n; i++)
                if (have[i])
                    found |= encoded_equal(WH_BASE64, p + 3, elen - 3,
                                           macs[i], 32) > 0;
        }
        p = end + 1;
    }
    OPENSSL_cleanse(macs, sizeof macs);
    if (nv1 == 0)
        return WH_MALFORMED;
    if (!found)
        return WH_FORGED;
    return in_window(t, now, tolerance) ? WH_OK : WH_STALE;
}

static const char *const provider_names[WH_PROVIDER_COUNT] = {
    "stripe", "github", "slack", "standard", "clickup", "notion", "hmac",
};

int wh_provider_from_name(const char *name)
{
    for (int i = 0; name && i < WH_PROVIDER_COUNT; i++)
        if (strcmp(name, provider_names[i]) == 0)
            return i;
    return -1;
}

const char *wh_provider_name(wh_provider_t p)
{
    return (unsigned)p < WH_PROVIDER_COUNT ? provider_names[p] : NULL;
}

int wh_hmac_cfg_parse(const char *algo, const char *enc, const char *prefix,
                      wh_hmac_cfg_t *out)
{
    size_t n;

    if (!algo || !enc || !out)
        return 0;
    if (strcmp(algo, "sha256") == 0)
        out->algo = WH_SHA256;
    else if (strcmp(algo, "sha512") == 0)
        out->algo = WH_SHA512;
    else
        return 0;
    if (strcmp(enc, "hex") == 0)
        out->enc = WH_HEX;
    else if (strcmp(enc, "base64") == 0)
        out->enc = WH_BASE64;
    else
        return 0;
    if (!prefix)
        prefix = "";
    n = strnlen(prefix, 33);
    if (n > 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (prefix[i] < 0x21 || prefix[i] > 0x7e)
            return 0;
    out->prefix = prefix;
    return 1;
}

wh_verdict_t wh_verify_delivery(wh_provider_t p, const char *hmac_header,
                                const wh_hmac_cfg_t *hmac, wh_header_fn get,
                                void *arg, const void *body, size_t len,
                                const wh_secrets_t *s, time_t now)
{
    static const wh_hmac_cfg_t sha256_prefixed = { WH_SHA256, WH_HEX, "sha256=" };
    static const wh_hmac_cfg_t sha256_bare = { WH_SHA256, WH_HEX, NULL };

    if (!get)
        return WH_ERROR;
    switch (p) {
    case WH_STRIPE:
        return wh_verify_stripe(get(arg, "Stripe-Signature"), body, len, s,
                                now, WH_TOLERANCE);
    case WH_GITHUB:
        return wh_verify_hmac(&sha256_prefixed, get(arg, "X-Hub-Signature-256"),
                              body, len, s);
    case WH_SLACK:
        return wh_verify_slack(get(arg, "X-Slack-Request-Timestamp"),
                               get(arg, "X-Slack-Signature"), body, len, s,
                               now, WH_TOLERANCE);
    case WH_STANDARD:
        return wh_verify_standard(get(arg, "webhook-id"),
                                  get(arg, "webhook-timestamp"),
                                  get(arg, "webhook-signature"), body, len, s,
                                  now, WH_TOLERANCE);
    case WH_CLICKUP:
        return wh_verify_hmac(&sha256_bare, get(arg, "X-Signature"), body,
                              len, s);
    case WH_NOTION:
        return wh_verify_hmac(&sha256_prefixed, get(arg, "X-Notion-Signature"),
                              body, len, s);
    case WH_HMAC:
        if (!hmac_header || !hmac_header[0] || !hmac)
            return WH_ERROR;
        return wh_verify_hmac(hmac, get(arg, hmac_header), body, len, s);
    case WH_PROVIDER_COUNT:
        break;
    }
    return WH_ERROR;
}
