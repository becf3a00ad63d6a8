/*
 * oai.h - what openai.c (/v1/) and ws.c (/api/v1/ai/ws) share (not
 * installed): streamed text cut into valid UTF-8 pieces, OpenAI-shaped
 * chat messages checked and turned into the module's canonical form,
 * random ids and a monotonic clock.
 *
 * Pure: nothing here touches a request, the database or the core, so
 * tests/test_ai_oai_unit.c runs it without a server.
 */
#ifndef AI_OAI_H
#define AI_OAI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* ------------------------------------------------------------------------
 * Streamed text. A provider's pieces may split a UTF-8 sequence, and JSON
 * strings must be valid UTF-8: a carry holds the unfinished tail of one
 * piece until the next completes it.
 */
typedef struct ai_utf8_carry {
    unsigned char held[4];
    size_t        n;
} ai_utf8_carry_t;

/* The valid UTF-8 text of the carried bytes followed by in[0..len): a
 * malloc'd NUL-terminated string, *out_len its length. An unfinished
 * sequence at the end is carried to the next call, unless last: then it is
 * given out as U+FFFD, as is every byte that cannot start or continue a
 * sequence (overlongs, surrogates, > U+10FFFF, NUL kept as is). NULL when
 * out of memory. */
char *ai_utf8_piece(ai_utf8_carry_t *c, const char *in, size_t len, bool last,
                    size_t *out_len);

/* ------------------------------------------------------------------------
 * Chat messages as OpenAI's Chat Completions takes them (roles system,
 * developer, user, assistant, tool; content a string or text parts;
 * assistant tool_calls; tool messages with tool_call_id), checked and
 * copied into the canonical form of ai.h: developer becomes system, text
 * parts are joined with "\n", names are dropped. Anything else (image,
 * audio or file parts, the deprecated function role) is refused.
 */
typedef struct ai_oai_err {
    char param[96];      /* "messages[2].content[0].type" */
    char message[256];
    const char *code;    /* "invalid_value", or "unsupported_value" for what
                          * is well-formed but not supported here */
} ai_oai_err_t;

/* A new canonical array, or NULL with err filled. field names the member
 * in messages ("messages"). max_messages bounds the count. */
json_t *ai_oai_messages(json_t *in, const char *field, size_t max_messages,
                        ai_oai_err_t *err);

/* ------------------------------------------------------------------------
 * Small things
 */

/* prefix followed by 29 random characters of [A-Za-z0-9] */
void ai_oai_id(char *out, size_t len, const char *prefix);
/* a monotonic clock, in milliseconds */
double ai_oai_now_ms(void);
#endif
