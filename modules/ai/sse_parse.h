/*
 * sse_parse.h - an incremental Server-Sent Events parser for upstream
 * streams (the WHATWG HTML Standard, section 9.2 "Server-sent events":
 * interpreting an event stream)
 *
 * Bytes go in as they come from the socket, split anywhere (inside a UTF-8
 * sequence, between the CR and the LF of a CRLF); each complete event comes
 * out through the callback. Lines end with CRLF, LF or a lone CR; a blank
 * line dispatches; ':' starts a comment; one space after the colon is
 * stripped; data lines are joined with '\n'; an event with no data line
 * fires nothing; a leading UTF-8 BOM is skipped; an event still open when
 * the stream ends is never dispatched. Lines and events are bounded: past
 * the bound the parser refuses the stream (AI_SSE_TOO_LARGE), it never
 * truncates.
 */
#ifndef PLX_AI_SSE_PARSE_H
#define PLX_AI_SSE_PARSE_H

#include <stdbool.h>
#include <stddef.h>

/* One event: event is its type ("message" when none was named), data its
 * data buffer without the final '\n', NUL-terminated. Both are borrowed
 * for the call. Return 0 to go on; anything else stops the parser, and
 * ai_sse_feed returns it. */
typedef int (*ai_sse_event_fn)(void *ud, const char *event, const char *data,
                               size_t len);

enum {
    AI_SSE_OK = 0,
    AI_SSE_TOO_LARGE = -1,   /* a line or an event passed the bound */
    AI_SSE_NOMEM = -2
};

typedef struct ai_sse {
    ai_sse_event_fn fn;
    void   *ud;
    size_t  max;          /* bound of one line and of one event's data */
    char   *line;         /* the line being read */
    size_t  line_len, line_cap;
    char   *data;         /* the event's data buffer, each line + '\n' */
    size_t  data_len, data_cap;
    char   *event;        /* the event type, NULL: "message" */
    bool    after_cr;     /* the last byte was a CR: skip one LF */
    bool    first_line;   /* no line completed yet: skip a BOM */
    int     failed;       /* sticky result once stopped */
} ai_sse_t;

/* max: the largest line and event data, in bytes (> 0) */
void ai_sse_init(ai_sse_t *s, size_t max, ai_sse_event_fn fn, void *ud);
/* AI_SSE_OK, AI_SSE_TOO_LARGE, AI_SSE_NOMEM or the callback's non-zero
 * value; once it failed, every later call returns the same */
int ai_sse_feed(ai_sse_t *s, const char *buf, size_t len);
/* true when bytes of an event not yet dispatched are buffered */
bool ai_sse_pending(const ai_sse_t *s);
void ai_sse_free(ai_sse_t *s);

#endif
