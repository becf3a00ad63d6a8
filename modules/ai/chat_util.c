/*
 * chat_util.c - the pure helpers of the gateway and the chat routes
 *
 * Nothing here calls the core or does I/O beyond reading randomness, so
 * tests/test_ai_chat_unit.c links this file alone: UTF-8 boundaries of
 * streamed pieces, retry backoff, quota periods and the trimming of a
 * history to a context window.
 */
#include "config.h"

#include "chat.h"
#include "oai.h"

#include <stdlib.h>
#include <string.h>

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
