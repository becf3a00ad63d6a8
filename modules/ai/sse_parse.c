/*
 * sse_parse.c - the incremental Server-Sent Events parser of sse_parse.h
 *
 * Kept apart from upstream.c so it can be fed test vectors byte by byte
 * without a socket. Bytes are copied into a line buffer until a CR or LF
 * ends the line; a CR remembers that an LF right after it (possibly in the
 * next chunk) belongs to the same line end.
 */
#include "config.h"

#include "sse_parse.h"

#include <stdlib.h>
#include <string.h>

void ai_sse_init(ai_sse_t *s, size_t max, ai_sse_event_fn fn, void *ud)
{
    memset(s, 0, sizeof *s);
    s->fn = fn;
    s->ud = ud;
    s->max = max ? max : 1;
    s->first_line = true;
}

void ai_sse_free(ai_sse_t *s)
{
    free(s->line);
    free(s->data);
    free(s->event);
    s->line = s->data = s->event = NULL;
    s->line_len = s->line_cap = s->data_len = s->data_cap = 0;
}

bool ai_sse_pending(const ai_sse_t *s)
{
    return s->line_len > 0 || s->data_len > 0 || s->event != NULL;
}

/* room for need bytes plus a NUL in *buf */
static bool reserve(char **buf, size_t *cap, size_t need)
{
    size_t ncap;
    char *p;

    if (need + 1 <= *cap)
        return true;
    ncap = *cap ? *cap : 256;
    while (ncap < need + 1)
        ncap *= 2;
    if (!(p = realloc(*buf, ncap)))
        return false;
    *buf = p;
    *cap = ncap;
    return true;
}

static int dispatch(ai_sse_t *s)
{
    int rc = 0;

    /* an empty data buffer fires nothing; the event type resets either way */
    if (s->data_len > 0) {
        s->data_len--;                  /* the final '\n' */
        s->data[s->data_len] = '\0';
        rc = s->fn(s->ud, s->event ? s->event : "message", s->data,
                   s->data_len);
    }
    s->data_len = 0;
    free(s->event);
    s->event = NULL;
    return rc;
}

static int field(ai_sse_t *s, const char *name, size_t nlen, const char *val,
                 size_t vlen)
{
    if (nlen == 4 && memcmp(name, "data", 4) == 0) {
        if (s->data_len + vlen > s->max)
            return AI_SSE_TOO_LARGE;
        if (!reserve(&s->data, &s->data_cap, s->data_len + vlen + 1))
            return AI_SSE_NOMEM;
        memcpy(s->data + s->data_len, val, vlen);
        s->data_len += vlen;
        s->data[s->data_len++] = '\n';
        s->data[s->data_len] = '\0';
    } else if (nlen == 5 && memcmp(name, "event", 5) == 0) {
        char *e = malloc(vlen + 1);
        if (!e)
            return AI_SSE_NOMEM;
        memcpy(e, val, vlen);
        e[vlen] = '\0';
        free(s->event);
        s->event = e;
    }
    /* id and retry matter to a reconnecting EventSource, not to us;
     * unknown fields are ignored */
    return AI_SSE_OK;
}

static int line_done(ai_sse_t *s)
{
    const char *p = s->line, *colon;
    size_t len = s->line_len;

    s->line_len = 0;
    if (s->first_line) {
        s->first_line = false;
        if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0) {
            p += 3;
            len -= 3;
        }
    }
    if (len == 0)
        return dispatch(s);
    if (p[0] == ':')
        return AI_SSE_OK;
    colon = memchr(p, ':', len);
    if (!colon)
        return field(s, p, len, "", 0);
    {
        size_t nlen = (size_t)(colon - p);
        const char *v = colon + 1;
        size_t vlen = len - nlen - 1;
        if (vlen > 0 && *v == ' ') {
            v++;
            vlen--;
        }
        return field(s, p, nlen, v, vlen);
    }
}

static int append(ai_sse_t *s, const char *buf, size_t n)
{
    if (n == 0)
        return AI_SSE_OK;
    if (s->line_len + n > s->max)
        return AI_SSE_TOO_LARGE;
    if (!reserve(&s->line, &s->line_cap, s->line_len + n))
        return AI_SSE_NOMEM;
    memcpy(s->line + s->line_len, buf, n);
    s->line_len += n;
    return AI_SSE_OK;
}

int ai_sse_feed(ai_sse_t *s, const char *buf, size_t len)
{
    size_t i = 0;
    int rc;

    if (s->failed)
        return s->failed;
    while (i < len) {
        size_t j = i;

        if (s->after_cr) {
            s->after_cr = false;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        while (j < len && buf[j] != '\r' && buf[j] != '\n')
            j++;
        if ((rc = append(s, buf + i, j - i)) != AI_SSE_OK)
            return s->failed = rc;
        if (j == len)
            break;
        s->after_cr = buf[j] == '\r';
        i = j + 1;
        if ((rc = line_done(s)) != AI_SSE_OK)
            return s->failed = rc;
    }
    return AI_SSE_OK;
}
