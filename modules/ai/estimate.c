/*
 * estimate.c - token counts without a tokenizer
 *
 * Quotas reserve before a call, and some streams end without the
 * provider's usage: both need a count no provider gave. Four bytes of
 * UTF-8 per token is the usual rule of thumb for English with BPE
 * tokenizers; it overestimates CJK text less badly than counting
 * characters would underestimate it. Every message adds 4 for its role
 * and framing, as OpenAI's own cookbook counts them.
 */
#include "config.h"

#include "ai.h"

#include <string.h>

#define AI_TOKENS_PER_MESSAGE 4
/* a part that is not text (an image): what a high-detail 512x512 tile
 * costs at OpenAI, a figure in the right range for the others */
#define AI_TOKENS_PER_MEDIA   765

long ai_estimate_tokens(const char *text, size_t len)
{
    if (!text || len == 0)
        return 0;
    return (long)((len + 3) / 4);
}

static long string_tokens(json_t *s)
{
    return ai_estimate_tokens(json_string_value(s), json_string_length(s));
}

static long content_tokens(json_t *content)
{
    size_t idx;
    json_t *part;
    long n = 0;

    if (json_is_string(content))
        return string_tokens(content);
    json_array_foreach(content, idx, part) {
        json_t *text = json_object_get(part, "text");
        n += json_is_string(text) ? string_tokens(text) : AI_TOKENS_PER_MEDIA;
    }
    return n;
}

static long tool_call_tokens(json_t *calls)
{
    size_t idx;
    json_t *tc;
    long n = 0;

    json_array_foreach(calls, idx, tc) {
        json_t *fn = json_object_get(tc, "function");
        n += string_tokens(json_object_get(fn, "name"))
             + string_tokens(json_object_get(fn, "arguments"));
    }
    return n;
}

long ai_estimate_messages(json_t *messages)
{
    size_t idx;
    json_t *m;
    long n = 0;

    json_array_foreach(messages, idx, m) {
        n += AI_TOKENS_PER_MESSAGE
             + content_tokens(json_object_get(m, "content"))
             + tool_call_tokens(json_object_get(m, "tool_calls"));
    }
    return n;
}
