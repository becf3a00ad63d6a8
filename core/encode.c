/*
 * encode.c - the one implementation of the encodings: base64 (both RFC 4648
 * alphabets), hex, UUIDs (RFC 9562 versions 4 and 7) and UTF-8 (RFC 3629)
 *
 * The core calls these functions directly and hands the same functions to
 * modules through the API table, so a cursor, a token or an id is encoded
 * and checked the same way everywhere. Everything here is pure but
 * uuid_new, which reads the kernel's randomness and the clock. Decoders are
 * strict: one spelling per value, so what the server accepts is exactly
 * what it would have produced.
 */
#include "config.h"
#include "core.h"

#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#define ENC_ERR ((size_t)-1)

/* ---- base64 (RFC 4648 sections 4 and 5) ------------------------------------ */

static const char b64_std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64_url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static size_t enc_fail(char *out, size_t cap)
{
    if (out && cap > 0)
        out[0] = '\0';
    return ENC_ERR;
}

/* characters of the encoding of len bytes, or ENC_ERR when it overflows */
static size_t b64_encoded_len(plx_b64_t v, size_t len)
{
    size_t groups = len / 3, tail = len % 3;

    if (groups > (SIZE_MAX - 8) / 4)
        return ENC_ERR;
    if (tail == 0)
        return groups * 4;
    return groups * 4 + (v == PLX_B64_URL ? tail + 1 : 4);
}

size_t core_base64_encode(plx_b64_t v, const void *in, size_t len, char *out,
                          size_t cap)
{
    const unsigned char *p = in;
    const char *abc = v == PLX_B64_URL ? b64_url : b64_std;
    size_t need = b64_encoded_len(v, len), o = 0, i = 0;

    if ((v != PLX_B64_STD && v != PLX_B64_URL) || (!in && len > 0)
        || need == ENC_ERR || !out || cap <= need)
        return enc_fail(out, cap);
    for (; i + 3 <= len; i += 3) {
        uint32_t w = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = abc[w >> 18 & 63];
        out[o++] = abc[w >> 12 & 63];
        out[o++] = abc[w >> 6 & 63];
        out[o++] = abc[w & 63];
    }
    if (len - i > 0) {
        uint32_t w = (uint32_t)p[i] << 16;
        if (len - i == 2)
            w |= (uint32_t)p[i + 1] << 8;
        out[o++] = abc[w >> 18 & 63];
        out[o++] = abc[w >> 12 & 63];
        if (len - i == 2)
            out[o++] = abc[w >> 6 & 63];
        else if (v == PLX_B64_STD)
            out[o++] = '=';
        if (v == PLX_B64_STD)
            out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

/* the 6-bit value of c in the variant's alphabet, -1 when outside it */
static int b64_value(plx_b64_t v, unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == (v == PLX_B64_URL ? '-' : '+'))
        return 62;
    if (c == (v == PLX_B64_URL ? '_' : '/'))
        return 63;
    return -1;
}

/* The number of data characters of a well-formed encoding, or ENC_ERR.
 * Standard: whole groups of four, '=' only to complete the last one.
 * URL: no padding at all, and a tail of 2 or 3 characters. */
static size_t b64_data_chars(plx_b64_t v, const char *in, size_t len)
{
    size_t data = len;

    if (v == PLX_B64_STD) {
        if (len % 4 != 0)
            return ENC_ERR;
        while (data > 0 && len - data < 2 && in[data - 1] == '=')
            data--;
    } else if (len % 4 == 1) {
        return ENC_ERR;
    }
    for (size_t i = 0; i < data; i++)
        if (b64_value(v, (unsigned char)in[i]) < 0)
            return ENC_ERR;
    return data;
}

plx_status_t core_base64_decode(plx_b64_t v, const char *in, size_t len,
                                void *out, size_t cap, size_t *out_len)
{
    unsigned char *o = out;
    size_t data, need, n = 0;
    uint32_t acc = 0;
    int bits = 0;

    if (out_len)
        *out_len = 0;
    if ((v != PLX_B64_STD && v != PLX_B64_URL) || (!in && len > 0))
        return PLX_ERR_INVALID;
    if ((data = b64_data_chars(v, in, len)) == ENC_ERR)
        return PLX_ERR_INVALID;
    need = data / 4 * 3 + (data % 4 ? data % 4 - 1 : 0);
    /* a tail's unused low bits must be zero: otherwise several texts
     * would decode to the same bytes (RFC 4648 section 3.5) */
    if (data % 4 != 0) {
        int last = b64_value(v, (unsigned char)in[data - 1]);
        if (last & (data % 4 == 2 ? 0x0f : 0x03))
            return PLX_ERR_INVALID;
    }
    if (need > cap || (!out && need > 0))
        return PLX_ERR_TOO_LARGE;
    for (size_t i = 0; i < data; i++) {
        acc = acc << 6 | (uint32_t)b64_value(v, (unsigned char)in[i]);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (out_len)
        *out_len = n;
    return PLX_OK;
}

/* ---- hex (RFC 4648 section 8, written lower case) -------------------------- */

static const char hexdigits[] = "0123456789abcdef";

size_t core_hex_encode(const void *in, size_t len, char *out, size_t cap)
{
    const unsigned char *p = in;

    if ((!in && len > 0) || len > (SIZE_MAX - 1) / 2 || !out || cap <= len * 2)
        return enc_fail(out, cap);
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hexdigits[p[i] >> 4];
        out[2 * i + 1] = hexdigits[p[i] & 15];
    }
    out[len * 2] = '\0';
    return len * 2;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

plx_status_t core_hex_decode(const char *in, size_t len, void *out, size_t cap,
                             size_t *out_len)
{
    unsigned char *o = out;

    if (out_len)
        *out_len = 0;
    if ((!in && len > 0) || len % 2 != 0)
        return PLX_ERR_INVALID;
    for (size_t i = 0; i < len; i++)
        if (hex_value((unsigned char)in[i]) < 0)
            return PLX_ERR_INVALID;
    if (len / 2 > cap || (!out && len > 0))
        return PLX_ERR_TOO_LARGE;
    for (size_t i = 0; i < len; i += 2)
        o[i / 2] = (unsigned char)(hex_value((unsigned char)in[i]) << 4
                                   | hex_value((unsigned char)in[i + 1]));
    if (out_len)
        *out_len = len / 2;
    return PLX_OK;
}

/* ---- UUIDs (RFC 9562) ---------------------------------------------------- */

static bool uuid_dash_at(int i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

int core_uuid_valid(const char *s)
{
    if (!s)
        return 0;
    for (int i = 0; i < 36; i++) {
        if (uuid_dash_at(i) ? s[i] != '-' : hex_value((unsigned char)s[i]) < 0)
            return 0;
    }
    return s[36] == '\0';
}

plx_status_t core_uuid_parse(const char *s, uint8_t out[16])
{
    int n = 0;

    if (!out || !core_uuid_valid(s))
        return PLX_ERR_INVALID;
    for (int i = 0; i < 36; i += uuid_dash_at(i) ? 1 : 2) {
        if (uuid_dash_at(i))
            continue;
        out[n++] = (uint8_t)(hex_value((unsigned char)s[i]) << 4
                             | hex_value((unsigned char)s[i + 1]));
    }
    return PLX_OK;
}

void core_uuid_format(const uint8_t in[16], char out[37])
{
    int o = 0;

    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hexdigits[in[i] >> 4];
        out[o++] = hexdigits[in[i] & 15];
    }
    out[o] = '\0';
}

/* The last version 7 timestamp handed out, as unix milliseconds << 12 |
 * the 12-bit counter in rand_a (RFC 9562 section 6.2, method 1). Every new
 * value is above the last, so ids made by one process sort in the order
 * they were made, across threads, even when the clock steps back. */
static _Atomic uint64_t uuid7_last;

static uint64_t uuid7_next(uint16_t seed)
{
    struct timespec ts;
    uint64_t now, prev, next;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = ((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u)
          & 0xffffffffffffu;
    /* a new millisecond starts its counter at a random value below 2^11,
     * leaving at least 2048 increments before it borrows the next one */
    now = now << 12 | (seed & 0x7ffu);
    prev = atomic_load(&uuid7_last);
    do {
        next = now > prev ? now : prev + 1;
    } while (!atomic_compare_exchange_weak(&uuid7_last, &prev, next));
    return next;
}

plx_status_t core_uuid_new(int version, char out[37])
{
    uint8_t b[16];

    if (out)
        out[0] = '\0';
    if (!out || (version != 4 && version != 7))
        return PLX_ERR_INVALID;
    if (!core_random_bytes(b, sizeof b))
        return PLX_ERR_INTERNAL;
    if (version == 7) {
        uint64_t t = uuid7_next((uint16_t)(b[6] << 8 | b[7]));
        uint64_t ms = t >> 12;
        for (int i = 0; i < 6; i++)
            b[i] = (uint8_t)(ms >> (40 - 8 * i));
        b[6] = (uint8_t)(0x70 | (t >> 8 & 0x0f));
        b[7] = (uint8_t)(t & 0xff);
    } else {
        b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    }
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);   /* the RFC 9562 variant, 10xx */
    core_uuid_format(b, out);
    return PLX_OK;
}

/* ---- UTF-8 (RFC 3629) ------------------------------------------------------ */

/* The length of the valid sequence at s (1 to 4), or 0 when s does not
 * start one. The second byte's range is narrowed for the leads where
 * RFC 3629's table does: E0 (overlong), ED (surrogates), F0 (overlong),
 * F4 (above U+10FFFF). *prefix is how many bytes belong to the longest
 * valid beginning, so a repair replaces that much with one U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t left, size_t *prefix)
{
    size_t n, i;
    unsigned char lo = 0x80, hi = 0xbf;

    *prefix = 1;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    for (i = 1; i < n && i < left; i++) {
        unsigned char c = s[i];
        if (i == 1 ? (c < lo || c > hi) : (c < 0x80 || c > 0xbf))
            break;
    }
    *prefix = i;
    return i == n ? n : 0;
}

int core_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n, prefix;

    if (!s)
        return len == 0;
    /* NUL is valid UTF-8 but C strings would silently cut at it */
    for (size_t i = 0; i < len; i += n) {
        if (p[i] == 0 || (n = utf8_seq(p + i, len - i, &prefix)) == 0)
            return 0;
    }
    return 1;
}

long core_utf8_chars(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n, prefix;
    long chars = 0;

    if (!s)
        return len == 0 ? 0 : -1;
    for (size_t i = 0; i < len; i += n, chars++) {
        if (p[i] == 0 || (n = utf8_seq(p + i, len - i, &prefix)) == 0)
            return -1;
        if (chars == LONG_MAX)
            return -1;
    }
    return chars;
}

size_t core_utf8_repair(const char *in, size_t len, char *out, size_t cap)
{
    static const char fffd[] = "\xef\xbf\xbd";
    const unsigned char *p = (const unsigned char *)in;
    size_t o = 0, n, prefix;

    if (!out || cap == 0)
        return 0;
    for (size_t i = 0; in && i < len; ) {
        const char *src = (const char *)p + i;
        size_t take;

        n = p[i] == 0 ? 0 : utf8_seq(p + i, len - i, &prefix);
        take = n ? n : 3;
        if (n == 0)
            src = fffd;
        if (o + take >= cap)
            break;   /* never half a character */
        memcpy(out + o, src, take);
        o += take;
        i += n ? n : prefix;
    }
    out[o] = '\0';
    return o;
}
