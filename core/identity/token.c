/*
 * token.c - random tokens, SHA-256 digests, base64 for keys, wiping
 *
 * Refresh tokens, email and reset tokens and API key secrets are random
 * bytes shown once as base64url; only their SHA-256 is stored, handed to
 * PostgreSQL as bytea hex input. These helpers are the one place that turns
 * randomness and digests into text, so every caller gets the same encoding.
 */
#include "config.h"
#include "crypto.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

/* a token is at most this many random bytes (4 KiB of text) */
#define TOKEN_MAX_BYTES 3072

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* base64url without padding: 4 chars per 3 bytes, 2 or 3 for the tail */
static size_t b64url_len(size_t n)
{
    return n / 3 * 4 + (n % 3 == 0 ? 0 : n % 3 + 1);
}

static void b64url_encode(const unsigned char *in, size_t n, char *out)
{
    size_t i = 0, o = 0;

    for (; i + 3 <= n; i += 3) {
        unsigned long v = (unsigned long)in[i] << 16 |
                          (unsigned long)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        unsigned long v = (unsigned long)in[i] << 16;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        unsigned long v = (unsigned long)in[i] << 16 |
                          (unsigned long)in[i + 1] << 8;
        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
}

bool identity_random_token(size_t nbytes, char *out, size_t outlen)
{
    unsigned char buf[TOKEN_MAX_BYTES];

    if (!out || nbytes == 0 || nbytes > sizeof buf)
        return false;
    if (outlen < b64url_len(nbytes) + 1)
        return false;
    if (!core_random_bytes(buf, nbytes))
        return false;
    b64url_encode(buf, nbytes, out);
    identity_wipe(buf, nbytes);
    return true;
}

void identity_sha256(const void *data, size_t len, unsigned char out[32])
{
    unsigned int n = 0;

    if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32)
        return;
    /* NB: a fixed fallback (zeros) would make every token hash alike and
     * match each other's rows; random bytes match nothing, so a failure
     * here fails closed */
    LOG_ERROR("sha-256 failed; digest replaced by random bytes");
    if (!core_random_bytes(out, 32))
        abort();
}

void identity_sha256_hex(const void *data, size_t len, char out[67])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char d[32];

    identity_sha256(data, len, d);
    out[0] = '\\';
    out[1] = 'x';
    for (size_t i = 0; i < sizeof d; i++) {
        out[2 + 2 * i] = hex[d[i] >> 4];
        out[3 + 2 * i] = hex[d[i] & 15];
    }
    out[66] = '\0';
}

static bool b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Length of the data part (before '=' padding) if the whole string is
 * well-formed standard base64, else -1. Padding is optional, but when
 * present it must complete the last group of four. */
static long b64_data_len(const char *in, size_t len)
{
    size_t data = 0;

    while (data < len && b64_char(in[data]))
        data++;
    size_t pad = len - data;
    if (pad > 2 || data % 4 == 1)
        return -1;
    for (size_t i = data; i < len; i++)
        if (in[i] != '=')
            return -1;
    if (pad > 0 && (data + pad) % 4 != 0)
        return -1;
    return (long)data;
}

/* EVP_DecodeBlock works on whole groups of four and counts padding as
 * zero bytes, so the last group is completed here and only its real
 * bytes are copied out: the result length is exact. */
int identity_base64_decode(const char *in, unsigned char *out, size_t outlen)
{
    if (!in || !out)
        return -1;
    size_t len = strnlen(in, (size_t)INT32_MAX);
    long data = b64_data_len(in, len);
    if (data < 0)
        return -1;
    size_t full = (size_t)data / 4, tail = (size_t)data % 4;
    size_t need = full * 3 + (tail ? tail - 1 : 0);
    if (need > outlen || need > (size_t)INT32_MAX)
        return -1;

    unsigned char tmp[3];
    for (size_t g = 0; g < full; g++) {
        if (EVP_DecodeBlock(tmp, (const unsigned char *)in + 4 * g, 4) != 3)
            return -1;
        memcpy(out + 3 * g, tmp, 3);
    }
    if (tail) {
        unsigned char last[4] = { '=', '=', '=', '=' };
        memcpy(last, in + 4 * full, tail);
        if (EVP_DecodeBlock(tmp, last, 4) != 3)
            return -1;
        memcpy(out + 3 * full, tmp, tail - 1);
    }
    identity_wipe(tmp, sizeof tmp);
    return (int)need;
}

void identity_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}
