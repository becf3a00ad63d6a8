/*
 * plexus/ai.h - what the ai module offers other modules
 *
 * Services (look them up in your start function; NULL when the ai module
 * is not loaded):
 *   "ai.chat"  version 1   plx_ai_chat_v1_t   one chat completion
 *   "ai.embed" version 1   plx_ai_embed_v1_t  embeddings for texts
 * Calls through them go through the same models, quotas and usage rows as
 * a client's: pass the user (and team) to charge.
 *
 * Hooks (declared by the ai module, run for every chat call, whatever the
 * route or service that made it):
 *   "ai.chat.before"  data: plx_ai_chat_hook_t, before the model is called.
 *                     A hook may change messages (add a system message
 *                     with retrieved context, say). Returning an error
 *                     status refuses the call with that status.
 *   "ai.chat.after"   data: plx_ai_chat_hook_t with reply and usage set,
 *                     after the call (complete or not); the status is
 *                     ignored.
 * Both run on the thread of the call; r is NULL for WebSocket and service
 * calls.
 *
 * Versioning: tables and structs start with their size; entries are only
 * appended.
 */
#ifndef PLEXUS_AI_H
#define PLEXUS_AI_H

#include <plexus/module.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLX_AI_CHAT_SERVICE   "ai.chat"
#define PLX_AI_EMBED_SERVICE  "ai.embed"
#define PLX_AI_HOOK_BEFORE    "ai.chat.before"
#define PLX_AI_HOOK_AFTER     "ai.chat.after"

typedef struct plx_ai_chat_hook {
    uint32_t    size;            /* sizeof(plx_ai_chat_hook_t) */
    const char *user_id;         /* may be NULL for service calls */
    const char *team_id;         /* NULL when none */
    const char *model;           /* the model asked for */
    const char *kind;            /* chat, completions, generate, ... */
    json_t     *messages;        /* OpenAI-shaped array: before may modify it */
    /* after only: */
    const char *reply;           /* the reply text, "" when none */
    int         complete;        /* 1 when the reply is whole */
    long        prompt_tokens;
    long        completion_tokens;
} plx_ai_chat_hook_t;

typedef struct plx_ai_chat_req {
    uint32_t    size;            /* sizeof(plx_ai_chat_req_t) */
    const char *user_id;         /* the user to charge (required) */
    const char *team_id;         /* or NULL */
    const char *model;           /* a model name known to the ai module */
    json_t     *messages;        /* borrowed, OpenAI-shaped */
    long        max_tokens;      /* 0: the module's default */
    double      temperature;     /* < 0: the provider's default */
} plx_ai_chat_req_t;

typedef struct plx_ai_chat_reply {
    uint32_t size;               /* sizeof(plx_ai_chat_reply_t), set by the caller */
    char    *text;               /* malloc'd; the caller frees it */
    long     prompt_tokens;
    long     completion_tokens;
    char     finish_reason[24];
    char     error[256];         /* why, when the call failed */
} plx_ai_chat_reply_t;

typedef struct plx_ai_chat_v1 {
    uint32_t size;
    /* PLX_OK with out filled; PLX_ERR_LIMIT (quota), PLX_ERR_NOT_FOUND
     * (model), PLX_ERR_UPSTREAM, PLX_ERR_TIMEOUT, PLX_ERR_UNAVAILABLE (no
     * provider configured) with out->error set. Blocks up to the module's
     * timeouts; call it from a job or a request, not a timer. */
    plx_status_t (*chat)(const plx_ai_chat_req_t *req, plx_ai_chat_reply_t *out);
} plx_ai_chat_v1_t;

typedef struct plx_ai_embed_v1 {
    uint32_t size;
    /* n texts -> n vectors of *dim floats in *vectors (malloc'd, row-major;
     * the caller frees it). model NULL: the module's default embedding
     * model. user_id may be NULL for work charged to nobody (indexing a
     * shared corpus); usage is still recorded. */
    plx_status_t (*embed)(const char *user_id, const char *team_id,
                          const char *model, const char *const *texts,
                          size_t n, float **vectors, size_t *dim,
                          char error[256]);
} plx_ai_embed_v1_t;

#ifdef __cplusplus
}
#endif

#endif
