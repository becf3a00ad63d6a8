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

/* Standard base64 of keys an operator pastes into configuration: the
 * core's strict decoder, with the padding made optional, so what
 * `openssl rand -base64` prints and the same text without its '=' both
 * decode (and nothing else does). */
int identity_base64_decode(const char *in, unsigned char *out, size_t outlen)
{
    char *padded = NULL;
    size_t len, n = 0;
    plx_status_t st;

    if (!in || !out)
        return -1;
    len = strnlen(in, (size_t)INT32_MAX);
    if (len % 4 != 0 && !memchr(in, '=', len)) {
        if (len % 4 == 1 || !(padded = malloc(len + 3)))
            return -1;
        memcpy(padded, in, len);
        while (len % 4 != 0)
            padded[len++] = '=';
        in = padded;
    }
    st = core_base64_decode(PLX_B64_STD, in, len, out, outlen, &n);
    if (padded) {
        identity_wipe(padded, len);   /* it may hold a key */
        free(padded);
    }
    return st == PLX_OK && n <= (size_t)INT32_MAX ? (int)n : -1;
}

void identity_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}
