/*
 * chat_util.c - the pure helpers of the gateway and the chat routes
 *
 * Nothing here calls the core or does I/O beyond reading randomness, so
 * tests/test_ai_chat_unit.c links this file alone: UTF-8 boundaries of
 * streamed pieces, retry backoff, quota periods, UUIDs, cursors and the
 * trimming of a history to a context window.
 */
#include "config.h"

#include "chat.h"
#include "oai.h"

#include <errno.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* ---- UTF-8 --------------------------------------------------------------- */

size_t ai_utf8_seq_len(unsigned char c)
{
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

/* may s[1] follow the lead byte s[0] (RFC 3629's table: no overlongs, no
 * surrogates, nothing past U+10FFFF) */
static bool second_ok(unsigned char lead, unsigned char c)
{
    unsigned lo = 0x80, hi = 0xBF;

    if (lead == 0xE0)
        lo = 0xA0;
    else if (lead == 0xED)
        hi = 0x9F;
    else if (lead == 0xF0)
        lo = 0x90;
    else if (lead == 0xF4)
        hi = 0x8F;
    return c >= lo && c <= hi;
}

/* the bytes of s[0..left) are a valid start of the sequence of its lead */
static bool prefix_ok(const unsigned char *s, size_t left)
{
    if (left >= 2 && !second_ok(s[0], s[1]))
        return false;
    for (size_t i = 2; i < left; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return false;
    return true;
}

size_t ai_utf8_incomplete_tail(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    /* a lead byte at most 3 bytes from the end starts the last character */
    for (size_t back = 1; back <= 3 && back <= len; back++) {
        unsigned char c = p[len - back];
        size_t need;
        if (c >= 0x80 && c <= 0xBF)
            continue;                      /* a continuation: look further */
        need = ai_utf8_seq_len(c);
        if (need > back && prefix_ok(p + len - back, back))
            return back;
        return 0;
    }
    return 0;
}

bool ai_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;

    for (size_t i = 0; i < len;) {
        size_t n = ai_utf8_seq_len(p[i]);
        if (n == 0 || n > len - i || !prefix_ok(p + i, n))
            return false;
        i += n;
    }
    return true;
}

/* emit text as it is when it is valid UTF-8; otherwise with every byte
 * that cannot be part of a character as U+FFFD (oai.c's rule), so no
 * consumer ever sees invalid UTF-8 from a provider */
static bool emit_valid(const char *text, size_t len,
                       bool (*emit)(void *ud, const char *text, size_t len), void *ud)
{
    ai_utf8_carry_t carry = { .n = 0 };
    size_t n = 0;
    char *clean;
    bool ok;

    if (ai_utf8_valid(text, len))
        return emit(ud, text, len);
    if (!(clean = ai_utf8_piece(&carry, text, len, true, &n)))
        return false;
    ok = emit(ud, clean, n);
    free(clean);
    return ok;
}

bool ai_utf8_feed(ai_utf8_joiner_t *j, const char *text, size_t len,
                  bool (*emit)(void *ud, const char *text, size_t len), void *ud)
{
    size_t keep;

    if (j->n) {
        size_t full = ai_utf8_seq_len((unsigned char)j->hold[0]);
        while (j->n < full && len > 0 && ((unsigned char)*text & 0xC0) == 0x80) {
            j->hold[j->n++] = *text++;
            len--;
        }
        if (j->n < full && len == 0)
            return true;                    /* still waiting for the rest */
        keep = j->n;
        j->n = 0;
        if (keep == full && ai_utf8_valid(j->hold, full) && !emit(ud, j->hold, full))
            return false;
    }
    keep = ai_utf8_incomplete_tail(text, len);
    if (len > keep && !emit_valid(text, len - keep, emit, ud))
        return false;
    memcpy(j->hold, text + len - keep, keep);
    j->n = keep;
    return true;
}

/* ---- retries and periods -------------------------------------------------- */

long ai_backoff_ms(int retry, long retry_after_ms, long base_ms, long max_ms)
{
    long wait = base_ms > 0 ? base_ms : 0;

    if (retry_after_ms >= 0) {
        wait = retry_after_ms;
    } else {
        for (int i = 1; i < retry && wait < max_ms; i++)
            wait *= 2;
    }
    if (max_ms >= 0 && wait > max_ms)
        wait = max_ms;
    return wait;
}

long ai_seconds_to_period_end(time_t now, bool month)
{
    struct tm tm;
    time_t end;

    if (!gmtime_r(&now, &tm))
        return 60;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    if (month) {
        tm.tm_mday = 1;
        tm.tm_mon++;              /* timegm carries December into January */
    } else {
        tm.tm_mday++;
    }
    end = timegm(&tm);
    return end > now ? (long)(end - now) : 1;
}

/* ---- UUIDs ---------------------------------------------------------------- */

bool ai_uuid_new(char out[37])
{
    unsigned char b[16];
    size_t got = 0;

    while (got < sizeof b) {
        ssize_t n = getrandom(b + got, sizeof b - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        got += (size_t)n;
    }
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40);   /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80);   /* RFC 4122 variant */
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5],
             b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return true;
}

bool ai_uuid_valid(const char *s)
{
    static const char hexdigits[] = "0123456789abcdefABCDEF";

    if (!s || strlen(s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !strchr(hexdigits, s[i]))
            return false;
    }
    return true;
}

/* ---- cursors: base64url without padding (RFC 4648, section 5) ------------- */

static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

bool ai_b64url_encode(const unsigned char *in, size_t len, char *out,
                      size_t outlen)
{
    size_t o = 0;

    if (outlen < (len * 4 + 2) / 3 + 1)
        return false;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        size_t n = len - i < 3 ? len - i : 3;
        if (n > 1)
            v |= (unsigned)in[i + 1] << 8;
        if (n > 2)
            v |= in[i + 2];
        for (size_t k = 0; k <= n; k++)
            out[o++] = b64url[(v >> (18 - 6 * k)) & 63];
    }
    out[o] = '\0';
    return true;
}

long ai_b64url_decode(const char *in, unsigned char *out, size_t outlen)
{
    size_t len = strlen(in), o = 0;
    unsigned v = 0;
    int bits = 0;

    if (len % 4 == 1)
        return -1;
    for (size_t i = 0; i < len; i++) {
        const char *p = in[i] ? strchr(b64url, in[i]) : NULL;
        if (!p)
            return -1;
        v = (v << 6) | (unsigned)(p - b64url);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outlen)
                return -1;
            out[o++] = (unsigned char)(v >> bits);
        }
        v &= (1u << bits) - 1;
    }
    return v == 0 ? (long)o : -1;   /* leftover bits must be zero */
}

bool ai_cursor_encode(const char *tag, const char *key, const char *id,
                      char *out, size_t outlen)
{
    char raw[AI_CURSOR_MAX];
    int n = snprintf(raw, sizeof raw, "%s|%s|%s", tag, key, id);

    if (n < 0 || (size_t)n >= sizeof raw)
        return false;
    return ai_b64url_encode((const unsigned char *)raw, (size_t)n, out, outlen);
}

/* a decimal sort key of at most 18 digits, maybe negative: any
 * microsecond PostgreSQL can hold fits in a bigint */
static bool key_valid(const char *key)
{
    size_t n = strlen(key), i = key[0] == '-';

    if (n == i || n - i > 18)
        return false;
    for (; i < n; i++)
        if (key[i] < '0' || key[i] > '9')
            return false;
    return true;
}

bool ai_cursor_decode(const char *cursor, const char *tag,
                      char key[AI_CURSOR_KEY], char id[37])
{
    unsigned char raw[AI_CURSOR_MAX];
    size_t taglen = strlen(tag);
    long n;
    char *k, *bar;

    if (!cursor || strlen(cursor) >= AI_CURSOR_MAX)
        return false;
    n = ai_b64url_decode(cursor, raw, sizeof raw - 1);
    if (n < 0 || memchr(raw, '\0', (size_t)n))
        return false;
    raw[n] = '\0';
    if (strncmp((char *)raw, tag, taglen) != 0 || raw[taglen] != '|')
        return false;
    k = (char *)raw + taglen + 1;
    if (!(bar = strchr(k, '|')) || (size_t)(bar - k) >= AI_CURSOR_KEY)
        return false;
    *bar = '\0';
    if (!key_valid(k) || !ai_uuid_valid(bar + 1))
        return false;
    memcpy(key, k, (size_t)(bar - k) + 1);
    memcpy(id, bar + 1, 37);
    return true;
}

/* ---- history --------------------------------------------------------------- */

static bool is_role(json_t *msg, const char *role)
{
    const char *r = json_string_value(json_object_get(msg, "role"));

    return r && strcmp(r, role) == 0;
}

size_t ai_history_trim(json_t *messages, long budget,
                       long (*estimate)(json_t *messages))
{
    size_t first = 0, dropped = 0;

    while (first < json_array_size(messages)
           && is_role(json_array_get(messages, first), "system"))
        first++;
    /* one message at a time: a turn is a user's message and the reply */
    while (json_array_size(messages) > first + 1 && estimate(messages) > budget) {
        json_array_remove(messages, first);
        dropped++;
        while (json_array_size(messages) > first + 1
               && !is_role(json_array_get(messages, first), "user")) {
            json_array_remove(messages, first);
            dropped++;
        }
    }
    return dropped;
}
