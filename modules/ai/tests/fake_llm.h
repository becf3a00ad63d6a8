/*
 * fake_llm.h - a fake LLM provider for tests and benchmarks
 *
 * A small HTTP/1.1 server on a free 127.0.0.1 port (a thread per
 * connection, keep-alive) that speaks three wire protocols, streamed and
 * not, as the providers' API references describe them (OpenAI Chat
 * Completions, Anthropic Messages, Google Gemini API):
 *
 *   OpenAI     POST <any prefix>/chat/completions, <prefix>/embeddings,
 *              GET <prefix>/models             (Authorization: Bearer)
 *   Anthropic  POST <prefix>/v1/messages        (x-api-key, anthropic-version)
 *   Gemini     POST <prefix>/models/{m}:generateContent,
 *              :streamGenerateContent?alt=sse, :embedContent,
 *              :batchEmbedContents              (x-goog-api-key)
 *
 * A missing or wrong key (when a key is set) is answered as that provider
 * answers it (401, or Gemini's 400 API_KEY_INVALID).
 *
 * Behaviour. Each request takes the next script pushed with
 * plxt_llm_push (FIFO), else the default script. A directive in the last
 * user message overrides fields of it, so concurrent clients and the
 * standalone program can script their own calls:
 *
 *   [[fake text="Hello there" tokens=200 delay_ms=5 first_ms=2000
 *     status=429 retry_after=1 fail_after=3 hang=1 no_usage=1]]
 *
 * The reply text is `text` split at spaces into tokens (each token keeps
 * its leading space), or with tokens=N the words "w1 w2 ... wN" (N
 * tokens). Token counts the fake reports: completion_tokens = the number
 * of tokens sent; prompt_tokens = the number of whitespace-separated words
 * in every message's content (system included; directive words count).
 * Embeddings: dim 8 (or "dimensions"), each vector a deterministic
 * function of its text, unit length; prompt_tokens = words in the inputs.
 *
 * Details the implementation settles (fake_llm.c):
 * - A streamed answer's status line and headers leave at once (chunked,
 *   one SSE event per chunk); first_ms then passes before the first event
 *   (OpenAI's role chunk, Anthropic's message_start, Gemini's first
 *   chunk), delay_ms between two tokens, nothing after the last one.
 * - status answers at once (first_ms ignored). A request refused for its
 *   key, its anthropic-version (400 unless "2023-06-01"), an unreadable
 *   body, a missing required field (model; Anthropic's max_tokens and
 *   messages; Gemini's contents) or an unknown path (404) takes no
 *   script.
 * - fail_after applies to streams only; with fail_after >= the token
 *   count every token goes out, then the failure. OpenAI: the error
 *   event ends the body cleanly, no finish chunk, no usage, no [DONE];
 *   Anthropic: `event: error` after the deltas, no message_delta or
 *   message_stop; Gemini: the connection closes inside the chunked body
 *   (libcurl: CURLE_PARTIAL_FILE).
 * - hang, not streamed: nothing at all is sent.
 * - Embeddings and GET models take a script too (status, first_ms, hang);
 *   for embeddings a directive may sit in an input text.
 * - Gemini's usageMetadata is on the last chunk only; the key may also be
 *   the ?key= query parameter; streamGenerateContent without alt=sse is
 *   refused (400).
 */
#ifndef PLXT_FAKE_LLM_H
#define PLXT_FAKE_LLM_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct plxt_llm plxt_llm_t;

typedef struct plxt_llm_script {
    const char *text;        /* NULL: "Hello from the fake provider." */
    int  tokens;             /* > 0: "w1 ... wN" instead of text */
    int  delay_ms;           /* between two tokens (streamed) */
    int  first_ms;           /* before the first token, or before a
                              * non-streamed answer */
    int  status;             /* 0/200: answer; else this error status in the
                              * provider's error shape, at once */
    int  retry_after;        /* seconds, sent with status (429, 503) */
    int  fail_after;         /* > 0: after this many tokens the stream
                              * fails as the provider does mid-stream
                              * (OpenAI: a data: {"error":...} chunk;
                              * Anthropic: event: error overloaded_error;
                              * Gemini: the connection is cut) */
    bool hang;               /* headers sent (streamed) or not, then
                              * nothing until the client goes away */
    bool no_usage;           /* never report usage */
} plxt_llm_script_t;

typedef struct plxt_llm_seen {
    char    method[8];
    char    path[512];       /* with the query string */
    char    api_key[256];    /* from whichever header the protocol uses */
    char    anthropic_version[32];
    json_t *body;            /* the parsed request body, or NULL */
} plxt_llm_seen_t;

/* key NULL: no key checked. NULL when no port could be bound. */
plxt_llm_t *plxt_llm_start(const char *key);
/* the same on a given port (0: any); for the standalone program */
plxt_llm_t *plxt_llm_start_port(const char *key, int port);
int plxt_llm_port(const plxt_llm_t *f);
/* "http://127.0.0.1:PORT" into out */
void plxt_llm_url(const plxt_llm_t *f, char *out, size_t len);

/* s NULL: back to the all-zero script (the default text, no delays) */
void plxt_llm_set_default(plxt_llm_t *f, const plxt_llm_script_t *s);
void plxt_llm_push(plxt_llm_t *f, const plxt_llm_script_t *s);
/* forget pushed scripts, recorded requests and counters */
void plxt_llm_reset(plxt_llm_t *f);

/* requests received so far */
int plxt_llm_count(plxt_llm_t *f);
/* a copy of the i-th request (0 = first); false when there is none.
 * plxt_llm_seen_free frees the copy's body. */
bool plxt_llm_seen(plxt_llm_t *f, int i, plxt_llm_seen_t *out);
void plxt_llm_seen_free(plxt_llm_seen_t *s);
/* requests whose response is still being written (streams in flight) */
int plxt_llm_active(plxt_llm_t *f);
/* wait up to timeout_ms until active <= n; true when it got there */
bool plxt_llm_wait_active(plxt_llm_t *f, int n, int timeout_ms);
/* the most requests in flight at once since the last reset */
int plxt_llm_peak(plxt_llm_t *f);

/* Added by the implementation (the functions above are unchanged):
 * recording off keeps no request bodies (plxt_llm_seen finds none, count
 * still counts), for long benchmark runs; on by default */
void plxt_llm_set_recording(plxt_llm_t *f, bool on);
/* the whitespace-separated words of text: how the fake counts
 * prompt_tokens (and embedding inputs) */
int plxt_llm_count_words(const char *text);
/* the fake's embedding of text: dim (1..4096) floats of unit length; a
 * float answer carries each as a double that converts back exactly */
void plxt_llm_embed_vector(const char *text, int dim, float *out);

void plxt_llm_stop(plxt_llm_t *f);

#endif
