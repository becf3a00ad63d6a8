/*
 * verify.h - how each provider signs an inbound webhook, as pure
 * functions: headers, raw body, the endpoint's secrets and the time in,
 * a verdict out. No request, no database; the encodings are the plugin
 * API's, so plx_api must be set before any call.
 */
#ifndef PLX_WEBHOOKS_VERIFY_H
#define PLX_WEBHOOKS_VERIFY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <plexus/module.h>

/* Bounds on what a delivery may carry: secrets per endpoint (rotation
 * keeps a few at once), a signature header's length, the signatures one
 * header may list, and a secret's length. */
#define WH_MAX_SECRETS      4
#define WH_MAX_SIG_HEADER   4096
#define WH_MAX_SIGNATURES   16
#define WH_MAX_SECRET_LEN   256
/* the replay window of the timestamped schemes, seconds either side */
#define WH_TOLERANCE        300

typedef enum wh_verdict {
    WH_OK = 0,
    WH_UNSIGNED,    /* a header the scheme needs is absent */
    WH_MALFORMED,   /* present but not in the scheme's format */
    WH_FORGED,      /* well-formed, no signature matches any secret */
    WH_STALE,       /* signature valid, timestamp outside the window */
    WH_ERROR        /* the verifier itself failed (memory, crypto) */
} wh_verdict_t;

/* stable names for logs, problem codes and the events table */
const char *wh_verdict_name(wh_verdict_t v);

typedef enum wh_algo { WH_SHA256 = 0, WH_SHA512 } wh_algo_t;
typedef enum wh_enc { WH_HEX = 0, WH_BASE64 } wh_enc_t;

/* The configurable scheme: the MAC of the raw body, in a header, encoded
 * in hex (either case) or standard base64, after an optional literal
 * prefix such as "sha256=". GitHub, ClickUp and Notion are instances. */
typedef struct wh_hmac_cfg {
    wh_algo_t   algo;
    wh_enc_t    enc;
    const char *prefix;   /* "" or NULL for none */
} wh_hmac_cfg_t;

/* The secrets given to each verifier: n (1..WH_MAX_SECRETS) NUL-terminated
 * strings; a delivery signed with any of them is accepted. */
typedef struct wh_secrets {
    const char *const *v;
    size_t             n;
} wh_secrets_t;

/* hmac: header (may be NULL) = prefix + encoded MAC(secret, body) */
wh_verdict_t wh_verify_hmac(const wh_hmac_cfg_t *cfg, const char *header,
                            const void *body, size_t len,
                            const wh_secrets_t *s);

/* Stripe: Stripe-Signature "t=<unix>,v1=<hex>[,v1=<hex>...]", MAC over
 * "<t>.<body>", key the secret as written (with its whsec_ prefix); any
 * v1 may match; other keys (v0) are ignored. |now - t| <= tolerance. */
wh_verdict_t wh_verify_stripe(const char *header, const void *body,
                              size_t len, const wh_secrets_t *s,
                              time_t now, long tolerance);

/* Slack: X-Slack-Request-Timestamp and X-Slack-Signature "v0=<hex>", MAC
 * over "v0:<ts>:<body>". |now - ts| <= tolerance. */
wh_verdict_t wh_verify_slack(const char *ts, const char *sig,
                             const void *body, size_t len,
                             const wh_secrets_t *s, time_t now,
                             long tolerance);

/* Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature (a
 * space-separated list of "v1,<base64>"; other versions skipped), MAC over
 * "<id>.<ts>.<body>", key the base64 after "whsec_". |now - ts| <=
 * tolerance. */
wh_verdict_t wh_verify_standard(const char *id, const char *ts,
                                const char *sig, const void *body,
                                size_t len, const wh_secrets_t *s,
                                time_t now, long tolerance);

/* The providers an endpoint may name, and how the route reaches their
 * scheme: get returns a request header's value (NULL when absent), the
 * lookup case-insensitive as HTTP header names are. */
typedef enum wh_provider {
    WH_STRIPE = 0, WH_GITHUB, WH_SLACK, WH_STANDARD, WH_CLICKUP, WH_NOTION,
    WH_HMAC, WH_PROVIDER_COUNT
} wh_provider_t;

/* the provider called name; -1 for none */
int wh_provider_from_name(const char *name);
const char *wh_provider_name(wh_provider_t p);

/* The hmac scheme's settings as an endpoint stores them: algorithm
 * "sha256" or "sha512", encoding "hex" or "base64", a prefix of at most
 * 32 printable ASCII characters. 1 when valid; *out's prefix borrows
 * from the argument. */
int wh_hmac_cfg_parse(const char *algo, const char *enc, const char *prefix,
                      wh_hmac_cfg_t *out);

typedef const char *(*wh_header_fn)(void *arg, const char *name);

/* Verify one delivery as provider p signs it. hmac_header and hmac are
 * the hmac scheme's header name and settings (ignored otherwise). */
wh_verdict_t wh_verify_delivery(wh_provider_t p, const char *hmac_header,
                                const wh_hmac_cfg_t *hmac, wh_header_fn get,
                                void *arg, const void *body, size_t len,
                                const wh_secrets_t *s, time_t now);

#endif
