/*
 * totp.c - time-based one-time passwords (RFC 6238 over RFC 4226 HOTP)
 *
 * HMAC-SHA1, 30 s steps, 6 digits: the only combination every
 * authenticator app honours. Secrets travel as unpadded RFC 4648 base32
 * inside an otpauth:// URI (Google's Key-Uri-Format). Verification checks
 * every step of the window with no early exit and refuses steps at or
 * below the last accepted one, so an observed code cannot be replayed
 * (RFC 6238 section 5.2).
 */
#include "config.h"
#include "crypto.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#define TOTP_STEP_S   30
#define TOTP_DIGITS   6
#define TOTP_MAX_WINDOW 10
/* HMAC keys beyond this are nonsense for TOTP (RFC 4226 asks for >= 16) */
#define TOTP_MAX_KEY  256

static const char b32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

int identity_base32_encode(const unsigned char *in, size_t len, char *out,
                           size_t outlen)
{
    size_t need = (len * 8 + 4) / 5;
    unsigned int acc = 0;
    int bits = 0;
    size_t o = 0;

    if (!out || (!in && len) || len > (size_t)INT32_MAX / 8 || need >= outlen)
        return -1;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            out[o++] = b32_alphabet[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
        acc &= (1u << bits) - 1;
    }
    if (bits > 0)
        out[o++] = b32_alphabet[(acc << (5 - bits)) & 31];
    out[o] = '\0';
    return (int)o;
}

static int b32_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= '2' && c <= '7')
        return c - '2' + 26;
    return -1;
}

/* Lenient where people are (lower case, spaces as apps display them,
 * trailing '=' padding), strict where it matters: no other characters, no
 * impossible lengths (1, 3 or 6 symbols in the last group). */
int identity_base32_decode(const char *in, unsigned char *out, size_t outlen)
{
    unsigned int acc = 0;
    int bits = 0;
    size_t o = 0, symbols = 0;
    const char *p = in;

    if (!in || !out)
        return -1;
    for (; *p && *p != '='; p++) {
        if (*p == ' ')
            continue;
        int v = b32_value(*p);
        if (v < 0)
            return -1;
        symbols++;
        acc = (acc << 5) | (unsigned int)v;
        bits += 5;
        if (bits >= 8) {
            if (o >= outlen || o >= (size_t)INT32_MAX)
                return -1;
            out[o++] = (unsigned char)(acc >> (bits - 8));
            bits -= 8;
        }
        acc &= (1u << bits) - 1;
    }
    for (; *p; p++)
        if (*p != '=')
            return -1;
    size_t rem = symbols % 8;
    if (rem == 1 || rem == 3 || rem == 6)
        return -1;
    return (int)o;
}

void identity_totp_code(const unsigned char *key, size_t keylen, uint64_t step,
                        int digits, char out[9])
{
    unsigned char msg[8], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const uint32_t pow10_tab[] = { 1, 10, 100, 1000, 10000, 100000,
                                      1000000, 10000000, 100000000 };

    out[0] = '\0';
    if (!key || keylen == 0 || keylen > TOTP_MAX_KEY || digits < 6 ||
        digits > 8)
        return;
    for (int i = 7; i >= 0; i--) {
        msg[i] = (unsigned char)(step & 0xff);
        step >>= 8;
    }
    if (!HMAC(EVP_sha1(), key, (int)keylen, msg, sizeof msg, md, &mdlen) ||
        mdlen != 20)
        return;
    /* RFC 4226 5.3: the low nibble of the last byte picks four bytes,
     * whose top bit is dropped so the number is the same signed or not */
    unsigned int off = md[19] & 0x0f;
    uint32_t bin = (uint32_t)(md[off] & 0x7f) << 24 |
                   (uint32_t)md[off + 1] << 16 |
                   (uint32_t)md[off + 2] << 8 | md[off + 3];
    uint32_t v = bin % pow10_tab[digits];
    for (int i = digits - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
    out[digits] = '\0';
    identity_wipe(md, sizeof md);
}

static bool code_shape_ok(const char *code)
{
    for (int i = 0; i < TOTP_DIGITS; i++)
        if (code[i] < '0' || code[i] > '9')
            return false;
    return code[TOTP_DIGITS] == '\0';
}

int64_t identity_totp_verify(const unsigned char *key, size_t keylen,
                             const char *code, time_t now, int window,
                             int64_t last_step)
{
    int64_t found = -1;

    if (!key || keylen == 0 || !code || now < 0 || !code_shape_ok(code))
        return -1;
    if (window < 0)
        window = 0;
    if (window > TOTP_MAX_WINDOW)
        window = TOTP_MAX_WINDOW;

    int64_t cur = (int64_t)now / TOTP_STEP_S;
    for (int64_t s = cur - window; s <= cur + window; s++) {
        char cand[9];
        if (s < 0)
            continue;
        identity_totp_code(key, keylen, (uint64_t)s, TOTP_DIGITS, cand);
        /* no early return and no branch on the comparison: the time taken
         * does not say whether, or at which step, the code matched */
        int64_t eq = core_secure_equal(cand, strlen(cand), code, TOTP_DIGITS);
        int64_t take = eq & (s > last_step) & (found < 0);
        int64_t mask = -take;
        found = (found & ~mask) | (s & mask);
        identity_wipe(cand, sizeof cand);
    }
    return found;
}

/* RFC 3986 unreserved characters stay; '@' also stays, as it may in a
 * path segment and a query (the Key-Uri-Format example keeps it); anything
 * else, ':' and '+' included, is %XX. */
static bool uri_keep(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~' || c == '@';
}

static size_t uri_encode(const char *s, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (uri_keep(*p)) {
            out[o++] = (char)*p;
            continue;
        }
        out[o++] = '%';
        out[o++] = hex[*p >> 4];
        out[o++] = hex[*p & 15];
    }
    out[o] = '\0';
    return o;
}

static bool b32_secret_ok(const char *s, size_t len)
{
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!strchr(b32_alphabet, s[i]) || s[i] == '\0')
            return false;
    return true;
}

char *identity_totp_uri(const char *issuer, const char *account,
                        const char *secret_b32)
{
    if (!issuer || !account || !secret_b32)
        return NULL;
    size_t ilen = strnlen(issuer, 257), alen = strnlen(account, 513);
    size_t slen = strnlen(secret_b32, 257);
    if (ilen == 0 || ilen > 256 || alen == 0 || alen > 512 || slen > 256 ||
        !b32_secret_ok(secret_b32, slen) || !core_utf8_valid(issuer, ilen) ||
        !core_utf8_valid(account, alen))
        return NULL;

    char *iss = malloc(ilen * 3 + 1), *acc = malloc(alen * 3 + 1);
    size_t cap = ilen * 6 + alen * 3 + slen + 128;
    char *uri = malloc(cap);
    if (!iss || !acc || !uri) {
        free(iss);
        free(acc);
        free(uri);
        return NULL;
    }
    uri_encode(issuer, iss);
    uri_encode(account, acc);
    int n = snprintf(uri, cap,
                     "otpauth://totp/%s:%s?secret=%s&issuer=%s"
                     "&algorithm=SHA1&digits=%d&period=%d",
                     iss, acc, secret_b32, iss, TOTP_DIGITS, TOTP_STEP_S);
    free(iss);
    free(acc);
    if (n < 0 || (size_t)n >= cap) {
        free(uri);
        return NULL;
    }
    return uri;
}
