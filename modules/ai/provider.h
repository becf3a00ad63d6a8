/*
 * provider.h - between upstream.c and the provider files (not installed)
 *
 * upstream.c moves bytes: libcurl, timeouts, cancel, bounds, SSE framing.
 * A provider file (provider_openai.c, provider_anthropic.c,
 * provider_gemini.c) knows one wire format: it builds the HTTP request of
 * a canonical call, reads a whole response, decodes one stream event at a
 * time, and turns an error status and body into an ai_err_t. None of them
 * does I/O, so test_ai_wire drives them with recorded wire text. wire.c
 * holds what they share.
 */
#ifndef PLX_AI_PROVIDER_H
#define PLX_AI_PROVIDER_H

#include "ai.h"

#include <stdarg.h>

#define AI_HTTP_MAX_HEADERS 8

/* One HTTP request, as a provider file builds it. Everything malloc'd;
 * ai_http_free frees it. Header lines never reach a log: they carry keys. */
typedef struct ai_http {
    char  *url;
    char  *headers[AI_HTTP_MAX_HEADERS];   /* "Name: value" */
    size_t nheaders;
    char  *body;                           /* JSON text */
} ai_http_t;

bool ai_http_header(ai_http_t *h, const char *name, const char *value);
/* h->url = base + suffix (both NUL-terminated; base has no trailing '/') */
bool ai_http_url(ai_http_t *h, const char *base, const char *suffix);
/* takes body: dumps it compactly into h->body and releases it */
bool ai_http_body_take(ai_http_t *h, json_t *body);
void ai_http_free(ai_http_t *h);

/* The state of one streamed (or whole) reply being decoded into res. */
typedef struct ai_decode {
    const ai_provider_t *p;
    ai_result_t *res;
    size_t max_text;       /* bound of res->text and of tool-call arguments */
    /* told of each piece once it is in res->text: AI_OK to go on, or why
     * to stop (AI_ERR_CANCELLED). NULL: nobody to tell. */
    ai_err_t (*on_text)(void *ud, const char *text, size_t len);
    void *ud;
    bool done;             /* the stream's terminator was seen */
    bool progress;         /* some reply content arrived (text, tool call) */
} ai_decode_t;

/* An error answer (status >= 300) as a provider describes it. */
typedef struct ai_httperr {
    ai_err_t err;
    bool     retryable;
    long     retry_after_ms;   /* found in the body (Gemini's RetryInfo); -1 */
    char     message[AI_ERRMSG_MAX];
} ai_httperr_t;

typedef struct ai_wire_ops {
    const char *kind;      /* "openai", "anthropic", "gemini" */
    /* the request of a chat call; AI_OK, or AI_ERR_CLIENT (why in msg)
     * when the canonical request cannot be expressed for this provider */
    ai_err_t (*chat_request)(const ai_provider_t *p, const char *model,
                             const ai_chat_params_t *q, bool stream,
                             ai_http_t *h, char *msg, size_t msglen);
    /* a whole (non-streamed) 2xx body into d->res: text through
     * ai_decode_text, finish_reason, usage, upstream_id, tool_calls */
    ai_err_t (*chat_response)(ai_decode_t *d, const char *body, size_t len);
    /* one SSE event of a 2xx stream; AI_OK to go on (d->done once the
     * terminator came), or why the stream failed (res->message set) */
    ai_err_t (*stream_event)(ai_decode_t *d, const char *event,
                             const char *data, size_t len);
    /* a status >= 300 with its (bounded, maybe empty) body */
    void (*error)(const ai_provider_t *p, int status, const char *body,
                  size_t len, ai_httperr_t *out);
    /* embeddings; NULL when the provider has none */
    ai_err_t (*embed_request)(const ai_provider_t *p, const char *model,
                              const char *const *inputs, size_t n,
                              long dimensions, ai_http_t *h, char *msg,
                              size_t msglen);
    ai_err_t (*embed_response)(const ai_provider_t *p, const char *body,
                               size_t len, size_t n, ai_embed_result_t *res);
} ai_wire_ops_t;

extern const ai_wire_ops_t ai_wire_openai;
extern const ai_wire_ops_t ai_wire_anthropic;
extern const ai_wire_ops_t ai_wire_gemini;
const ai_wire_ops_t *ai_wire_ops(ai_kind_t kind);

/* upstream.c: a Retry-After value, delay-seconds or an HTTP-date (RFC
 * 9110 10.2.3), in ms from now (0 for a date past); -1 when unreadable */
long ai_retry_after_ms(const char *value);

/* ---- wire.c: what the provider files share ---------------------------- */

/* append a piece of reply to d->res->text (bounded by d->max_text), mark
 * progress and tell d->on_text */
ai_err_t ai_decode_text(ai_decode_t *d, const char *text, size_t len);
/* set res->err and res->message; returns err */
ai_err_t ai_decode_fail(ai_decode_t *d, ai_err_t err, const char *fmt, ...)
    PLX_PRINTF(3, 4);
void ai_set_finish(ai_result_t *res, const char *reason);
void ai_msgf(char *buf, size_t len, const char *fmt, ...) PLX_PRINTF(3, 4);

/* the class of an HTTP error status, before a provider's own refinements:
 * 401/403 auth, 402 quota, 408 timeout, 409/429 rate, 5xx server, other
 * 4xx client */
ai_err_t ai_err_from_status(int status, bool *retryable);
/* "provider \"name\": HTTP 429 rate_limit_error: text", the provider's
 * text cut short and its key (if it echoes it) masked */
void ai_httperr_format(const ai_provider_t *p, ai_httperr_t *out, int status,
                       const char *type, const char *text);

/* the text of a canonical content: a string, or an array of text parts
 * joined; NULL (an assistant turn with tool calls only) gives "". false
 * when a part is not text. Caller frees *out. */
bool ai_content_text(json_t *content, char **out);
/* an image part's "data:<mime>;base64,<data>" URL: mime into mime, *data
 * points into url. false for anything else (an http URL, say). */
bool ai_data_uri(const char *url, char *mime, size_t mimelen,
                 const char **data);
/* a string member of obj or NULL */
const char *ai_jstr(json_t *obj, const char *key);
/* an integer member (or a number with no fraction), or def */
long ai_jlong(json_t *obj, const char *key, long def);
/* the reply's stop list as a new array of strings, or NULL when none; false
 * when stop is neither a string nor an array of strings */
bool ai_stop_list(json_t *stop, json_t **out);
/* an instruction to answer in JSON for providers without a JSON mode of
 * OpenAI's shape (NULL when response_format asks for none). Caller frees. */
char *ai_json_instruction(json_t *response_format, bool *is_json);

#endif
