/*
 * test_webhooks_verify.c - every signature scheme on the vectors its
 * provider publishes (or, where it publishes none, one computed by the
 * provider's own algorithm), then what a hostile sender would try:
 * forged, stale, future, unsigned, malformed, oversized, rotated secrets.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "core.h"
#include "verify.h"

/* verify.c decodes through the plugin API; the core's encoders serve it */
static const struct plx_api api = {
    .size = sizeof(struct plx_api),
    .base64_decode = core_base64_decode,
    .hex_decode = core_hex_decode,
};
const plx_api_t *plx_api = &api;

#define ONE(sec) (&(wh_secrets_t){ (const char *const[]){ sec }, 1 })
#define TWO(a, b) (&(wh_secrets_t){ (const char *const[]){ a, b }, 2 })

/* ---- Stripe ---------------------------------------------------------- */
#define S_SECRET "whsec_test_secret"
#define S_BODY "{\"id\":\"evt_test_webhook\",\"object\":\"event\"}"
#define S_V1 "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990"
#define S_T 1700000000

static wh_verdict_t stripe(const char *h, const char *body, const wh_secrets_t *s,
                           time_t now)
{
    return wh_verify_stripe(h, body, strlen(body), s, now, WH_TOLERANCE);
}

static void test_stripe(void **state)
{
    (void)state;
    char big[WH_MAX_SIG_HEADER + 64];

    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_OK);
    /* uppercase hex is the same MAC */
    assert_int_equal(stripe("t=1700000000,v1=D95C6B7477FBD7E9F90B1B0EF5F9C7AC25ABCA5382460E0D988C2B2A5B71B990",
                            S_BODY, ONE(S_SECRET), S_T), WH_OK);
    /* any v1 may match, whatever the others hold; v0 is ignored */
    assert_int_equal(stripe("t=1700000000,v1=potato,v0=abc,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_OK);
    assert_int_equal(stripe("t=1700000000,v1=" S_V1 ",v1=potato", S_BODY, ONE(S_SECRET), S_T), WH_OK);
    /* rotation: the right secret among two, in either place */
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, TWO("whsec_old", S_SECRET), S_T), WH_OK);
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, TWO(S_SECRET, "whsec_new"), S_T), WH_OK);
    /* the window: 300 s either side, inclusive */
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T + 300), WH_OK);
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T + 301), WH_STALE);
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T - 300), WH_OK);
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T - 301), WH_STALE);
    /* forged: another secret, another body, another timestamp */
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, ONE("whsec_other"), S_T), WH_FORGED);
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY " ", ONE(S_SECRET), S_T), WH_FORGED);
    assert_int_equal(stripe("t=1700000001,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_FORGED);
    /* a forgery outside the window is a forgery, not stale */
    assert_int_equal(stripe("t=1600000000,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_FORGED);
    assert_int_equal(stripe("t=1700000000,v1=potato", S_BODY, ONE(S_SECRET), S_T), WH_FORGED);
    /* the secret is the key as written: without whsec_ it differs */
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, ONE("test_secret"), S_T), WH_FORGED);
    /* no trimming, as Stripe's libraries parse */
    assert_int_equal(stripe("t=1700000000, v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    /* unsigned and malformed */
    assert_int_equal(stripe(NULL, S_BODY, ONE(S_SECRET), S_T), WH_UNSIGNED);
    assert_int_equal(stripe("", S_BODY, ONE(S_SECRET), S_T), WH_UNSIGNED);
    assert_int_equal(stripe("v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    assert_int_equal(stripe("t=1700000000", S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    assert_int_equal(stripe("t=1700000000,v0=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    assert_int_equal(stripe("t=17e8,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    assert_int_equal(stripe("t=-1,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    assert_int_equal(stripe("t=1700000000,t=1700000000,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    assert_int_equal(stripe("t=99999999999999999999,v1=" S_V1, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    /* bounded: too many v1 entries, too long a header */
    strcpy(big, "t=1700000000");
    for (int i = 0; i < WH_MAX_SIGNATURES; i++)
        strcat(big, ",v1=00");
    strcat(big, ",v1=" S_V1);
    assert_int_equal(stripe(big, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    memcpy(big, "t=1700000000,v1=", 16);
    assert_int_equal(stripe(big, S_BODY, ONE(S_SECRET), S_T), WH_MALFORMED);
    /* no secrets, too many, an empty one: the caller's error */
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, &(wh_secrets_t){ NULL, 0 }, S_T), WH_ERROR);
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY, ONE(""), S_T), WH_ERROR);
    assert_int_equal(stripe("t=1700000000,v1=" S_V1, S_BODY,
                            &(wh_secrets_t){ (const char *const[]){ "a", "b", "c", "d", "e" }, 5 }, S_T),
                     WH_ERROR);
}

/* ---- GitHub, ClickUp, Notion: the configurable HMAC of the body ------ */
static void test_github(void **state)
{
    (void)state;
    const wh_hmac_cfg_t gh = { WH_SHA256, WH_HEX, "sha256=" };
    const char *sec = "It's a Secret to Everybody", *body = "Hello, World!";
    const char *sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    assert_int_equal(wh_verify_hmac(&gh, sig, body, strlen(body), ONE(sec)), WH_OK);
    assert_int_equal(wh_verify_hmac(&gh, sig, body, strlen(body), TWO("x", sec)), WH_OK);
    assert_int_equal(wh_verify_hmac(&gh, sig, "Hello, World?", 13, ONE(sec)), WH_FORGED);
    assert_int_equal(wh_verify_hmac(&gh, sig, body, strlen(body), ONE("it's a secret")), WH_FORGED);
    /* the body's bytes, all of them: a NUL does not end it */
    assert_int_equal(wh_verify_hmac(&gh, sig, "Hello, World!\0", 14, ONE(sec)), WH_FORGED);
    assert_int_equal(wh_verify_hmac(&gh, NULL, body, strlen(body), ONE(sec)), WH_UNSIGNED);
    /* the legacy sha1= header is not accepted for sha256 */
    assert_int_equal(wh_verify_hmac(&gh, "sha1=757107ea0eb2509fc211221cce984b8a37570b6d",
                                    body, strlen(body), ONE(sec)), WH_MALFORMED);
    assert_int_equal(wh_verify_hmac(&gh, "sha256=", body, strlen(body), ONE(sec)), WH_MALFORMED);
    assert_int_equal(wh_verify_hmac(&gh, "sha256=zz", body, strlen(body), ONE(sec)), WH_MALFORMED);
    assert_int_equal(wh_verify_hmac(&gh, "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                                    body, strlen(body), ONE(sec)), WH_MALFORMED);
    /* a truncated MAC is no MAC */
    assert_int_equal(wh_verify_hmac(&gh, "sha256=757107ea0eb2509fc211221cce984b8a",
                                    body, strlen(body), ONE(sec)), WH_FORGED);
}

static void test_clickup_notion(void **state)
{
    (void)state;
    const wh_hmac_cfg_t cu = { WH_SHA256, WH_HEX, NULL };
    const wh_hmac_cfg_t no = { WH_SHA256, WH_HEX, "sha256=" };
    const char *cbody = "{\"webhook_id\":\"7689a169-a000-4985-8676-6902b96d6627\","
                        "\"event\":\"taskCreated\",\"task_id\":\"c0j\"}";
    const char *nbody = "{\"id\":\"evt-1\",\"type\":\"page.created\","
                        "\"entity\":{\"id\":\"p1\",\"type\":\"page\"}}";

    assert_int_equal(wh_verify_hmac(&cu, "6e77342a066f1706e5258ee766ad3bd892dd6865debcd57fc365b4afa86e1485",
                                    cbody, strlen(cbody), ONE("7x1PK3mISQG0jBqeNYuhWn8alZdRtf5E")), WH_OK);
    assert_int_equal(wh_verify_hmac(&cu, "6e77342a066f1706e5258ee766ad3bd892dd6865debcd57fc365b4afa86e1486",
                                    cbody, strlen(cbody), ONE("7x1PK3mISQG0jBqeNYuhWn8alZdRtf5E")), WH_FORGED);
    assert_int_equal(wh_verify_hmac(&no, "sha256=402f907fdfce7122fa3eabc87668d02cc46d1571c0fd61329ab97e2247bd64c9",
                                    nbody, strlen(nbody), ONE("secret_test_token")), WH_OK);
    assert_int_equal(wh_verify_hmac(&no, "sha256=402f907fdfce7122fa3eabc87668d02cc46d1571c0fd61329ab97e2247bd64c9",
                                    cbody, strlen(cbody), ONE("secret_test_token")), WH_FORGED);
}

/* sha512 and base64, computed with the same HMAC by another route */
static void test_hmac_variants(void **state)
{
    (void)state;
    /* HMAC-SHA512(key "key", "The quick brown fox jumps over the lazy dog") */
    const char *body = "The quick brown fox jumps over the lazy dog";
    const char *h512 = "b42af09057bac1e2d41708e48a902e09b5ff7f12ab428a4fe86653c73dd248fb"
                       "82f948a549f7b791a5b41915ee4d1ec3935357e4e2317250d0372afa2ebeeb3a";
    const char *b512 = "tCrwkFe6weLUFwjkipAuCbX/fxKrQopP6GZTxz3SSPuC+UilSfe3kaW0GRXuTR7Dk1NX5OIxclDQNyr6Lr7rOg==";
    /* HMAC-SHA256(key "key", same) */
    const char *b256 = "sha256:97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=";
    const wh_hmac_cfg_t x512 = { WH_SHA512, WH_HEX, "" };
    const wh_hmac_cfg_t s512 = { WH_SHA512, WH_BASE64, NULL };
    const wh_hmac_cfg_t s256 = { WH_SHA256, WH_BASE64, "sha256:" };

    assert_int_equal(wh_verify_hmac(&x512, h512, body, strlen(body), ONE("key")), WH_OK);
    assert_int_equal(wh_verify_hmac(&s512, b512, body, strlen(body), ONE("key")), WH_OK);
    assert_int_equal(wh_verify_hmac(&s256, b256, body, strlen(body), ONE("key")), WH_OK);
    assert_int_equal(wh_verify_hmac(&s256, b256, body, strlen(body), ONE("kez")), WH_FORGED);
    /* a sha512 MAC checked as sha256 has the wrong length: forged */
    assert_int_equal(wh_verify_hmac(&(wh_hmac_cfg_t){ WH_SHA256, WH_HEX, "" }, h512, body,
                                    strlen(body), ONE("key")), WH_FORGED);
    /* strict base64: no whitespace, padding required */
    assert_int_equal(wh_verify_hmac(&s256, "sha256:97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg",
                                    body, strlen(body), ONE("key")), WH_MALFORMED);
    assert_int_equal(wh_verify_hmac(&s256, "sha256: 97yD9DBThCSxMpjmqm+xQ+9NWaFJRhdZl0edvC0aPNg=",
                                    body, strlen(body), ONE("key")), WH_MALFORMED);
}

/* ---- Slack ------------------------------------------------------------ */
#define SL_SECRET "8f742231b10e8888abcd99yyyzzz85a5"
#define SL_BODY "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
#define SL_SIG "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
#define SL_T 1531420618

static wh_verdict_t slack(const char *ts, const char *sig, const char *body,
                          const char *sec, time_t now)
{
    return wh_verify_slack(ts, sig, body, strlen(body), ONE(sec), now, WH_TOLERANCE);
}

static void test_slack(void **state)
{
    (void)state;
    assert_int_equal(slack("1531420618", SL_SIG, SL_BODY, SL_SECRET, SL_T), WH_OK);
    assert_int_equal(slack("1531420618", SL_SIG, SL_BODY, SL_SECRET, SL_T + 300), WH_OK);
    assert_int_equal(slack("1531420618", SL_SIG, SL_BODY, SL_SECRET, SL_T - 300), WH_OK);
    assert_int_equal(slack("1531420618", SL_SIG, SL_BODY, SL_SECRET, SL_T + 301), WH_STALE);
    assert_int_equal(slack("1531420618", SL_SIG, SL_BODY, SL_SECRET, SL_T - 301), WH_STALE);
    assert_int_equal(slack("1531420619", SL_SIG, SL_BODY, SL_SECRET, SL_T), WH_FORGED);
    assert_int_equal(slack("1531420618", SL_SIG, SL_BODY "&x=1", SL_SECRET, SL_T), WH_FORGED);
    assert_int_equal(slack("1531420618", SL_SIG, SL_BODY, "8f742231b10e8888abcd99yyyzzz85a6", SL_T), WH_FORGED);
    assert_int_equal(slack(NULL, SL_SIG, SL_BODY, SL_SECRET, SL_T), WH_UNSIGNED);
    assert_int_equal(slack("1531420618", NULL, SL_BODY, SL_SECRET, SL_T), WH_UNSIGNED);
    assert_int_equal(slack("1531420618", "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
                           SL_BODY, SL_SECRET, SL_T), WH_MALFORMED);
    assert_int_equal(slack("1531420618.5", SL_SIG, SL_BODY, SL_SECRET, SL_T), WH_MALFORMED);
    assert_int_equal(slack(" 1531420618", SL_SIG, SL_BODY, SL_SECRET, SL_T), WH_MALFORMED);
    assert_int_equal(slack("1531420618", "v0=xyz", SL_BODY, SL_SECRET, SL_T), WH_MALFORMED);
}

/* ---- Standard Webhooks ------------------------------------------------ */
#define SW_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define SW_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define SW_BODY "{\"test\": 2432232314}"
#define SW_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
#define SW_T 1614265330

static wh_verdict_t standard(const char *id, const char *ts, const char *sig,
                             const wh_secrets_t *s, time_t now)
{
    return wh_verify_standard(id, ts, sig, SW_BODY, strlen(SW_BODY), s, now, WH_TOLERANCE);
}

static void test_standard(void **state)
{
    (void)state;
    char big[WH_MAX_SIG_HEADER + 8];

    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG, ONE(SW_SECRET), SW_T), WH_OK);
    /* the prefix is optional on our side: the key is the base64 after it */
    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG, ONE("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), SW_T), WH_OK);
    /* a space-separated list: any v1 may match; v1a and others skipped */
    assert_int_equal(standard(SW_ID, "1614265330", "v1a,abc v1,AAAA " SW_SIG, ONE(SW_SECRET), SW_T), WH_OK);
    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG " v2,xyz", ONE(SW_SECRET), SW_T), WH_OK);
    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG,
                              TWO("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", SW_SECRET), SW_T), WH_OK);
    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG, ONE(SW_SECRET), SW_T + 300), WH_OK);
    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG, ONE(SW_SECRET), SW_T + 301), WH_STALE);
    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG, ONE(SW_SECRET), SW_T - 301), WH_STALE);
    assert_int_equal(standard("msg_other", "1614265330", SW_SIG, ONE(SW_SECRET), SW_T), WH_FORGED);
    assert_int_equal(standard(SW_ID, "1614265331", SW_SIG, ONE(SW_SECRET), SW_T), WH_FORGED);
    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG,
                              ONE("whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"), SW_T), WH_FORGED);
    /* a secret that is not base64 signs nothing */
    assert_int_equal(standard(SW_ID, "1614265330", SW_SIG, ONE("whsec_not base64!"), SW_T), WH_FORGED);
    assert_int_equal(standard(NULL, "1614265330", SW_SIG, ONE(SW_SECRET), SW_T), WH_UNSIGNED);
    assert_int_equal(standard(SW_ID, NULL, SW_SIG, ONE(SW_SECRET), SW_T), WH_UNSIGNED);
    assert_int_equal(standard(SW_ID, "1614265330", NULL, ONE(SW_SECRET), SW_T), WH_UNSIGNED);
    assert_int_equal(standard("msg.1", "1614265330", SW_SIG, ONE(SW_SECRET), SW_T), WH_MALFORMED);
    assert_int_equal(standard(SW_ID, "16142653x0", SW_SIG, ONE(SW_SECRET), SW_T), WH_MALFORMED);
    assert_int_equal(standard(SW_ID, "1614265330", "v1a,g0hM9SsE", ONE(SW_SECRET), SW_T), WH_MALFORMED);
    assert_int_equal(standard(SW_ID, "1614265330", "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                              ONE(SW_SECRET), SW_T), WH_MALFORMED);
    big[0] = '\0';
    for (int i = 0; i <= WH_MAX_SIGNATURES; i++)
        strcat(big, "v1,AAAA ");
    strcat(big, SW_SIG);
    assert_int_equal(standard(SW_ID, "1614265330", big, ONE(SW_SECRET), SW_T), WH_MALFORMED);
}

/* a request's headers, looked up without regard to case */
static const char *const *hdrs;

static const char *header(void *arg, const char *name)
{
    (void)arg;
    for (size_t i = 0; hdrs[i]; i += 2)
        if (strcasecmp(hdrs[i], name) == 0)
            return hdrs[i + 1];
    return NULL;
}

static wh_verdict_t delivery(wh_provider_t p, const char *const *h, const char *body,
                             const char *sec, time_t now)
{
    hdrs = h;
    return wh_verify_delivery(p, NULL, NULL, header, NULL, body, strlen(body), ONE(sec), now);
}

static void test_delivery(void **state)
{
    (void)state;
    wh_hmac_cfg_t cfg;

    assert_int_equal(delivery(WH_STRIPE, (const char *const[]){
        "stripe-signature", "t=1700000000,v1=" S_V1, NULL }, S_BODY, S_SECRET, S_T), WH_OK);
    assert_int_equal(delivery(WH_GITHUB, (const char *const[]){
        "X-Hub-Signature-256", "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        NULL }, "Hello, World!", "It's a Secret to Everybody", 0), WH_OK);
    /* GitHub's legacy SHA-1 header alone is not enough */
    assert_int_equal(delivery(WH_GITHUB, (const char *const[]){
        "X-Hub-Signature", "sha1=01234567", NULL }, "Hello, World!", "It's a Secret to Everybody", 0),
        WH_UNSIGNED);
    assert_int_equal(delivery(WH_SLACK, (const char *const[]){
        "X-Slack-Request-Timestamp", "1531420618", "X-Slack-Signature", SL_SIG, NULL },
        SL_BODY, SL_SECRET, SL_T), WH_OK);
    assert_int_equal(delivery(WH_SLACK, (const char *const[]){
        "X-Slack-Request-Timestamp", "1531420618", "X-Slack-Signature", SL_SIG, NULL },
        SL_BODY, SL_SECRET, SL_T + 3600), WH_STALE);
    assert_int_equal(delivery(WH_STANDARD, (const char *const[]){
        "Webhook-Id", SW_ID, "Webhook-Timestamp", "1614265330", "Webhook-Signature", SW_SIG, NULL },
        SW_BODY, SW_SECRET, SW_T), WH_OK);
    assert_int_equal(delivery(WH_CLICKUP, (const char *const[]){ "x-signature",
        "6e77342a066f1706e5258ee766ad3bd892dd6865debcd57fc365b4afa86e1485", NULL },
        "{\"webhook_id\":\"7689a169-a000-4985-8676-6902b96d6627\",\"event\":\"taskCreated\",\"task_id\":\"c0j\"}",
        "7x1PK3mISQG0jBqeNYuhWn8alZdRtf5E", 0), WH_OK);
    assert_int_equal(delivery(WH_NOTION, (const char *const[]){ "X-Notion-Signature",
        "sha256=402f907fdfce7122fa3eabc87668d02cc46d1571c0fd61329ab97e2247bd64c9", NULL },
        "{\"id\":\"evt-1\",\"type\":\"page.created\",\"entity\":{\"id\":\"p1\",\"type\":\"page\"}}",
        "secret_test_token", 0), WH_OK);
    /* a header meant for another provider signs nothing here */
    assert_int_equal(delivery(WH_NOTION, (const char *const[]){ "X-Signature",
        "402f907fdfce7122fa3eabc87668d02cc46d1571c0fd61329ab97e2247bd64c9", NULL },
        "{}", "secret_test_token", 0), WH_UNSIGNED);

    /* the configurable scheme, from an endpoint's stored settings */
    assert_true(wh_hmac_cfg_parse("sha512", "base64", NULL, &cfg));
    hdrs = (const char *const[]){ "X-Sig",
        "tCrwkFe6weLUFwjkipAuCbX/fxKrQopP6GZTxz3SSPuC+UilSfe3kaW0GRXuTR7Dk1NX5OIxclDQNyr6Lr7rOg==", NULL };
    assert_int_equal(wh_verify_delivery(WH_HMAC, "x-sig", &cfg, header, NULL,
                                        "The quick brown fox jumps over the lazy dog", 43,
                                        ONE("key"), 0), WH_OK);
    assert_int_equal(wh_verify_delivery(WH_HMAC, NULL, &cfg, header, NULL, "x", 1, ONE("key"), 0),
                     WH_ERROR);
    assert_true(wh_hmac_cfg_parse("sha256", "hex", "sha256=", &cfg));
    assert_int_equal(cfg.algo, WH_SHA256);
    assert_int_equal(cfg.enc, WH_HEX);
    assert_string_equal(cfg.prefix, "sha256=");
    assert_false(wh_hmac_cfg_parse("sha1", "hex", NULL, &cfg));
    assert_false(wh_hmac_cfg_parse("md5", "hex", NULL, &cfg));
    assert_false(wh_hmac_cfg_parse("sha256", "base32", NULL, &cfg));
    assert_false(wh_hmac_cfg_parse("SHA256", "hex", NULL, &cfg));
    assert_false(wh_hmac_cfg_parse("sha256", "hex", "a b", &cfg));
    assert_false(wh_hmac_cfg_parse("sha256", "hex", "x\n", &cfg));
    assert_false(wh_hmac_cfg_parse("sha256", "hex", "0123456789abcdef0123456789abcdefX", &cfg));
    assert_true(wh_hmac_cfg_parse("sha256", "hex", "0123456789abcdef0123456789abcdef", &cfg));

    assert_int_equal(wh_provider_from_name("stripe"), WH_STRIPE);
    assert_int_equal(wh_provider_from_name("hmac"), WH_HMAC);
    assert_int_equal(wh_provider_from_name("Stripe"), -1);
    assert_int_equal(wh_provider_from_name(""), -1);
    assert_int_equal(wh_provider_from_name(NULL), -1);
    for (int i = 0; i < WH_PROVIDER_COUNT; i++)
        assert_int_equal(wh_provider_from_name(wh_provider_name((wh_provider_t)i)), i);
    assert_null(wh_provider_name(WH_PROVIDER_COUNT));
}

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(wh_verdict_name(WH_OK), "verified");
    assert_string_equal(wh_verdict_name(WH_FORGED), "forged");
    assert_string_equal(wh_verdict_name(WH_STALE), "stale");
    assert_string_equal(wh_verdict_name(WH_UNSIGNED), "unsigned");
    assert_string_equal(wh_verdict_name(WH_MALFORMED), "malformed");
    assert_string_equal(wh_verdict_name(WH_ERROR), "error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stripe),
        cmocka_unit_test(test_github),
        cmocka_unit_test(test_clickup_notion),
        cmocka_unit_test(test_hmac_variants),
        cmocka_unit_test(test_slack),
        cmocka_unit_test(test_standard),
        cmocka_unit_test(test_delivery),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
