/*
 * chat.h - what the gateway and the chat and conversation routes share
 * (not installed; the contracts between layers are in ai.h)
 *
 * Two parts. The pure helpers (chat_util.c) touch no request and no core
 * function, so tests/test_ai_chat_unit.c runs them without a server:
 * UTF-8 boundaries of streamed pieces, the retry backoff, the end of a
 * quota period and the trimming of a history to a context window. The
 * reply helpers (chat.c) are the one way a reply leaves the chat routes:
 * whole as JSON, or as Plexus's event stream:
 *
 *   event: start   {"id": "...", "model": "..."}
 *   event: delta   {"content": "..."}              one per piece
 *   event: done    {"finish_reason", "model", "usage": {...}, "cost",
 *                   "message_id"?}
 *   event: error   {"code", "message", "incomplete": bool}
 *
 * The stream is opened lazily, when the gateway first waits on the
 * provider or the first piece arrives, so that everything refused before
 * an upstream call (quota, unknown model, no provider) is still an HTTP
 * status with problem+json.
 */
#ifndef PLX_AI_CHAT_H
#define PLX_AI_CHAT_H

#include "ai.h"

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define AI_LIMIT_DEFAULT 20
#define AI_LIMIT_MAX     100
#define AI_PING_SECONDS  0.25     /* the least time between two probes of a
                                   * client while the provider is silent */

/* ---- pure helpers (chat_util.c) ------------------------------------------ */

/* How many bytes at the end of s[0..len) start a UTF-8 character that is
 * not complete yet (0..3): hold them back until the rest arrives. Bytes
 * that can never become valid are not held (0): they go out as they are. */
size_t ai_utf8_incomplete_tail(const char *s, size_t len);
/* the length of the UTF-8 sequence a lead byte announces, 0 when c cannot
 * start one */
size_t ai_utf8_seq_len(unsigned char c);
/* valid UTF-8 (RFC 3629: no overlongs, no surrogates) */
bool ai_utf8_valid(const char *s, size_t len);

/* Pieces of a streamed reply re-cut on character boundaries: feed each
 * piece as it comes; emit gets whole characters only (a character split
 * between pieces is held until its last byte arrives; bytes that cannot
 * continue it are dropped with it; any other invalid byte becomes U+FFFD,
 * so what emit gets is always valid UTF-8). false when emit returned
 * false. */
typedef struct ai_utf8_joiner {
    char   hold[4];
    size_t n;
} ai_utf8_joiner_t;

bool ai_utf8_feed(ai_utf8_joiner_t *j, const char *text, size_t len,
                  bool (*emit)(void *ud, const char *text, size_t len), void *ud);

/* The wait before retry number `retry` (1 = the first retry): base
 * doubled per retry, or the provider's retry_after_ms when it gave one
 * (>= 0), never more than max_ms. */
long ai_backoff_ms(int retry, long retry_after_ms, long base_ms, long max_ms);

/* Seconds from now to the end of the current UTC day or calendar month
 * (at least 1). */
long ai_seconds_to_period_end(time_t now, bool month);

/* Drop the oldest turns of a conversation's messages (an array of
 * {role, content}; system messages first) until estimate(messages) <=
 * budget: whole messages from the first non-system one on, and then any
 * assistant message left at the front, so the history still starts with
 * a user's turn. The last message is never dropped. Returns how many were
 * dropped. */
size_t ai_history_trim(json_t *messages, long budget,
                       long (*estimate)(json_t *messages));

/* ---- the reply of a chat route (chat.c) ---------------------------------- */

typedef struct chat_reply {
    plx_request_t *r;
    bool        stream;              /* the client asked for SSE */
    plx_sse_t  *sse;                 /* open once the stream has begun */
    bool        gone;                /* a write failed: the client left */
    double      last_probe;          /* monotonic seconds of the last write */
    char        id[37];              /* of the reply (start event, answer) */
    const char *model;               /* asked for */
    const char *conversation_id;     /* or NULL */
    const char *message_id;          /* the stored assistant message, or NULL */
} chat_reply_t;

/* the sink that makes the gateway's pieces reach the client */
void chat_reply_sink(chat_reply_t *cr, ai_sink_t *sink);

/* Answer the call: 200 with the whole reply, the done or error event of a
 * stream, or the outcome's problem. st is what ai_gateway_chat returned. */
plx_status_t chat_reply_finish(chat_reply_t *cr, plx_status_t st,
                               const ai_outcome_t *o);

/* The generation fields a chat body may carry (max_tokens, temperature,
 * top_p, stop) into q; false with 400 sent when one is wrong. */
bool chat_params_parse(plx_request_t *r, json_t *body, ai_chat_params_t *q);

/* false with the answer sent (404 not a team of the caller, 403 a viewer)
 * unless the caller may charge team_id */
bool chat_team_allowed(plx_request_t *r, const char *team_id, plx_status_t *st);

/* Optional members of a body: absent or null leave NULL / false; a value
 * of the wrong type is a 400 naming the field, and false. */
bool chat_opt_string(plx_request_t *r, json_t *body, const char *name,
                     const char **out);
bool chat_opt_bool(plx_request_t *r, json_t *body, const char *name, bool *out);

/* monotonic seconds */
double chat_now(void);

/* ---- a conversation's turn, off any request (conversations.c) ---------------
 * The REST route and the WebSocket store and read a conversation the same
 * way; the caller has checked that the conversation is the user's. */

/* store the user's message (the conversation moves to the top of the
 * list): PLX_OK, PLX_ERR_NOT_FOUND when it is gone, PLX_ERR_DB */
plx_status_t ai_conv_user_turn(const char *conv_id, const char *content);
/* the system prompt and the latest messages, the oldest turns dropped
 * until they fit window with room for the reply (max_tokens, at most half
 * the window): a new reference, or NULL with *st set */
json_t *ai_conv_history(const char *conv_id, const char *system, long window,
                        long max_tokens, plx_status_t *st);
/* the reply, or the part of it that came, as the next message with id
 * msg_id (complete when st is PLX_OK, else incomplete); false when there
 * was nothing to store or it could not be stored (logged) */
bool ai_conv_reply_store(const char *conv_id, const char *msg_id, plx_status_t st,
                         const ai_outcome_t *o);

/* ai.chat/1 and ai.embed/1 (service.c), from ai_gateway_init */
bool ai_services_register(plx_module_t *m);

/* ---- conversations (conversations.c) ------------------------------------ */

bool ai_conversation_routes(plx_module_t *m);
/* POST /api/v1/ai/chat with a conversation_id: body's "message" is the
 * user's turn, answered as POST /conversations/{id}/messages answers */
plx_status_t ai_conversation_chat(plx_request_t *r, json_t *body,
                                  const char *conversation_id);

#endif
