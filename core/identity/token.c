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

bool identity_random_token(size_t nbytes, char *out, size_t outlen)
{
    unsigned char buf[TOKEN_MAX_BYTES];

    if (!out || nbytes == 0 || nbytes > sizeof buf)
        return false;
    if (!core_random_bytes(buf, nbytes))
        return false;
    size_t n = core_base64_encode(PLX_B64_URL, buf, nbytes, out, outlen);
    identity_wipe(buf, nbytes);
    return n != (size_t)-1;
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
    unsigned char d[32];

    identity_sha256(data, len, d);
    out[0] = '\\';
    out[1] = 'x';
    core_hex_encode(d, sizeof d, out + 2, 65);
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
