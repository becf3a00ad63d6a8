/*
 * ai.h - the ai module's internal contracts
 *
 * The module is layered; each layer only calls the ones below it:
 *
 *   routes      chat.c (chat, conversations), openai.c (/v1/...), ws.c,
 *               tasks.c (generate, analyze, translate, templates),
 *               admin.c (models, quotas), usage.c
 *   gateway     gateway.c: model lookup, ai.chat.before/after hooks, quota
 *               reservation, retries with backoff, fallback to the next
 *               model, usage row, metrics; services ai.chat/1, ai.embed/1
 *   store       store.c: models (cached), quotas, usage rows
 *   upstream    upstream.c (libcurl multi: timeouts, cancel), sse_parse.c,
 *               provider_openai.c, provider_anthropic.c, provider_gemini.c
 *   settings    settings.c: plugins.d/ai.conf
 *
 * Canonical form. Inside the module a chat request is OpenAI's: a messages
 * array of {role, content} with roles system, user, assistant (and tool
 * where a provider supports it). Provider files translate to and from
 * their wire formats; nothing above the upstream layer knows them.
 */
#ifndef PLX_AI_H
#define PLX_AI_H

#include <stdbool.h>
#include <stddef.h>

#include <plexus/module.h>

#define AI_NAME_MAX      128
#define AI_ERRMSG_MAX    512

/* ------------------------------------------------------------------------
 * Settings (settings.c). Read in init, read-only afterwards.
 */
typedef enum ai_kind {
    AI_KIND_OPENAI = 0,     /* OpenAI and compatible servers, by base URL */
    AI_KIND_ANTHROPIC,      /* Anthropic Messages */
    AI_KIND_GEMINI          /* Google Generative Language v1beta */
} ai_kind_t;

typedef struct ai_provider {
    char      *name;             /* as in ai.conf: "openai", "local" */
    ai_kind_t  kind;
    char      *base_url;         /* without trailing '/': ".../v1", ".../v1beta",
                                  * "https://api.anthropic.com" */
    char      *api_key;          /* NULL when none (Ollama) */
    /* OpenAI kind: send the output bound as "max_completion_tokens"
     * (OpenAI) or as "max_tokens" (most compatible servers; Ollama reads
     * only that). Default: max_completion_tokens when the base URL is
     * api.openai.com, max_tokens otherwise. */
    bool       legacy_max_tokens;
    /* OpenAI kind: request fields removed before sending (Groq refuses
     * logprobs, logit_bias, top_logprobs, n) */
    char     **strip;
    size_t     nstrip;
} ai_provider_t;

typedef struct ai_settings {
    ai_provider_t *providers;
    size_t         nproviders;
    long connect_timeout_ms;      /* TCP+TLS connect: 5000 */
    long first_token_timeout_ms;  /* request sent -> first token: 60000 */
    long idle_timeout_ms;         /* between two stream chunks: 30000 */
    long total_timeout_ms;        /* whole call: 600000 */
    int  max_retries;             /* per provider, before the first token: 2 */
    long retry_base_ms;           /* backoff base, doubled per retry: 500 */
    long retry_max_ms;            /* cap of one wait, Retry-After included: 8000 */
    long default_max_tokens;      /* when the client gives none: 1024 */
    long max_output_tokens;       /* the most a client may ask for: 16384 */
    long reservation_ttl_s;       /* a reservation left by a dead call: 900 */
    size_t max_response_bytes;    /* upstream body or one SSE event: 8 MiB */
    int  ws_max_streams;          /* concurrent replies per WebSocket: 4 */
    char *default_model;          /* for requests that name none: NULL */
    char *default_embedding_model;/* for ai.embed/1 callers naming none: NULL */
} ai_settings_t;

extern ai_settings_t ai_cfg;

/* Parse the [ai] section; false (after logging every problem) when bad. */
bool ai_settings_load(plx_module_t *m);
void ai_settings_free(void);
const ai_provider_t *ai_provider_find(const char *name);

/* ------------------------------------------------------------------------
 * Upstream calls (upstream.c and the provider files). One call is one HTTP
 * exchange with one provider: no retries, no fallback.
 */
typedef struct ai_chat_params {
    json_t *messages;        /* canonical messages (borrowed), at least one */
    long    max_tokens;      /* > 0 */
    bool    has_temperature;
    double  temperature;     /* OpenAI's 0..2; Anthropic's is 0..1: halved */
    bool    has_top_p;
    double  top_p;
    json_t *stop;            /* NULL, a string or an array of strings */
    json_t *response_format; /* NULL or OpenAI's {"type":"json_object"|...} */
    json_t *tools;           /* NULL or OpenAI's tools array (OpenAI kind only) */
    json_t *tool_choice;
    const char *user_tag;    /* opaque caller id sent where supported, or NULL */
} ai_chat_params_t;

typedef struct ai_usage {
    long prompt_tokens;
    long completion_tokens;
    bool known;              /* reported by the provider (else estimate) */
} ai_usage_t;

/* Where the reply goes. delta gets each piece of text as it arrives (valid
 * UTF-8 only at the end of the reply: a piece may split a character);
 * returning false cancels the call. cancelled is polled at least every
 * 100 ms while the call waits on the provider: true cancels it. Either may
 * be NULL. */
typedef struct ai_sink {
    bool  (*delta)(void *ud, const char *text, size_t len);
    bool  (*cancelled)(void *ud);
    void   *ud;
} ai_sink_t;

typedef enum ai_err {
    AI_OK = 0,
    AI_ERR_RATE,          /* 429 (rate) / 409: retryable, retry_after_ms */
    AI_ERR_QUOTA,         /* 429 insufficient_quota, 402 billing: not retryable */
    AI_ERR_SERVER,        /* 5xx, 529: retryable */
    AI_ERR_CLIENT,        /* other 4xx: not retryable, the request is wrong */
    AI_ERR_AUTH,          /* 401/403 or Gemini's API_KEY_INVALID: not retryable */
    AI_ERR_CONNECT,       /* could not connect / resolve: retryable */
    AI_ERR_TIMEOUT,       /* connect, first token, idle or total: retryable
                           * before the first token */
    AI_ERR_STREAM,        /* an error event or a cut after the first token */
    AI_ERR_PROTOCOL,      /* a body we cannot read: not retryable */
    AI_ERR_CANCELLED,     /* the sink cancelled */
    AI_ERR_TOO_LARGE      /* the response passed max_response_bytes */
} ai_err_t;

typedef struct ai_result {
    ai_err_t   err;
    bool       retryable;           /* worth another attempt (before started) */
    long       retry_after_ms;      /* from Retry-After / retry-after-ms; -1 none */
    int        http_status;         /* upstream status, 0 when none */
    bool       started;             /* at least one delta was delivered */
    double     ttft_seconds;        /* request sent -> first delta; <0 none */
    char      *text;                /* the whole reply so far (malloc'd, NUL-ended) */
    size_t     text_len;
    json_t    *tool_calls;          /* OpenAI-shaped, or NULL */
    char       finish_reason[24];   /* OpenAI vocabulary: stop, length,
                                     * tool_calls, content_filter; "" none */
    ai_usage_t usage;
    char       upstream_id[128];    /* the provider's response id, "" none */
    char       message[AI_ERRMSG_MAX]; /* why, for logs and the client */
} ai_result_t;

/* stream: ask the provider to stream (the sink's delta then gets pieces as
 * they come; without stream it gets the whole text once). Returns PLX_OK
 * when the reply is complete (res->err == AI_OK); otherwise res says why.
 * res must be zeroed or cleared before; ai_result_clear frees it. */
plx_status_t ai_upstream_chat(const ai_provider_t *p, const char *upstream_model,
                              const ai_chat_params_t *q, bool stream,
                              const ai_sink_t *sink, ai_result_t *res);
void ai_result_clear(ai_result_t *res);

typedef struct ai_embed_result {
    ai_err_t   err;
    bool       retryable;
    long       retry_after_ms;
    int        http_status;
    float     *vectors;             /* n * dim floats, row-major (malloc'd) */
    size_t     n, dim;
    ai_usage_t usage;               /* prompt_tokens only */
    char       message[AI_ERRMSG_MAX];
} ai_embed_result_t;

/* inputs: n non-empty UTF-8 strings. dimensions 0: the model's own. */
plx_status_t ai_upstream_embed(const ai_provider_t *p, const char *upstream_model,
                               const char *const *inputs, size_t n,
                               long dimensions, ai_embed_result_t *res);
void ai_embed_result_clear(ai_embed_result_t *res);

/* A rough token count for quotas and for usage when a provider reports
 * none: 4 bytes of UTF-8 per token, rounded up, plus 4 per message. */
long ai_estimate_tokens(const char *text, size_t len);
long ai_estimate_messages(json_t *messages);

/* ------------------------------------------------------------------------
 * Store (store.c). Every function may be called from any thread; they use
 * plx_db_query(NULL, ...) or a connection of their own.
 */
typedef struct ai_model {
    char    id[37];
    char    name[AI_NAME_MAX + 1];
    char    kind[16];               /* "chat" or "embedding" */
    char    provider[65];
    char    upstream[201];
    long    context_window;
    double  price_input;            /* per million tokens */
    double  price_output;
    char  **fallbacks;              /* model names, in order (malloc'd) */
    size_t  nfallbacks;
    bool    enabled;
    double  created;                /* unix seconds */
} ai_model_t;

/* An enabled model by name: PLX_OK and a copy (ai_model_free),
 * PLX_ERR_NOT_FOUND (none, or disabled), PLX_ERR_DB. Served from a cache
 * the admin routes invalidate (and that expires after a few seconds, for
 * the other instances). */
plx_status_t ai_model_get(const char *name, ai_model_t **out);
/* every enabled model, by name: *out is an array of *n copies */
plx_status_t ai_model_list(ai_model_t ***out, size_t *n);
void ai_model_free(ai_model_t *m);
void ai_model_list_free(ai_model_t **v, size_t n);
void ai_model_cache_invalidate(void);

/* the cost of a call in the operator's currency */
double ai_cost(const ai_model_t *m, long prompt_tokens, long completion_tokens);

/* Quotas. ai_quota_reserve reserves tokens and cost against every quota
 * of the user and of the team (team_id may be NULL) for the current day
 * and month, atomically and across instances. PLX_OK with *out (NULL when
 * no quota applies), PLX_ERR_LIMIT with why ("the daily token quota of
 * your team is spent: 1000 of 1000 tokens used") when one is exceeded,
 * PLX_ERR_DB. ai_quota_settle replaces the reservation by what the call
 * really used and frees it (NULL is fine). */
typedef struct ai_reservation ai_reservation_t;
plx_status_t ai_quota_reserve(const char *user_id, const char *team_id,
                              long tokens, double cost, ai_reservation_t **out,
                              char *why, size_t whylen);
plx_status_t ai_quota_settle(ai_reservation_t *res, long tokens, double cost);
/* release reservations past their expiry (a timer calls it every minute) */
void ai_quota_sweep(void);

/* One row of ai.usage. Strings may be NULL. */
typedef struct ai_usage_row {
    const char *user_id, *team_id, *api_key_id, *request_id;
    const char *kind;               /* chat, completions, generate, analyze,
                                     * translate, embeddings, ws, service */
    const char *model;              /* asked for */
    const char *served_model, *provider;
    long        prompt_tokens, completion_tokens;
    double      cost;
    bool        estimated;
    const char *status;             /* ok, error, cancelled, incomplete */
    const char *error;
    double      ttft_seconds;       /* < 0: none */
    double      seconds;
} ai_usage_row_t;
plx_status_t ai_usage_record(const ai_usage_row_t *u);

/* ------------------------------------------------------------------------
 * Gateway (gateway.c): what every route uses to call a model.
 */
typedef struct ai_call {
    plx_request_t *r;               /* may be NULL (WebSocket, services) */
    const char *user_id;            /* charged; NULL only for services */
    const char *team_id;            /* charged too; NULL when none */
    const char *request_id;         /* for logs and usage; may be NULL */
    const char *kind;               /* usage kind, as in ai_usage_row_t */
    const char *model;              /* a model name of ai.models */
    ai_chat_params_t params;        /* params.max_tokens 0: the default */
    bool stream;                    /* deltas as they come */
    ai_sink_t sink;
} ai_call_t;

typedef struct ai_outcome {
    ai_result_t res;                /* of the last attempt */
    char   served_model[AI_NAME_MAX + 1]; /* "" when no model answered */
    char   provider[65];
    ai_usage_t usage;               /* counted or estimated */
    bool   estimated;
    double cost;
    /* for the client when the call failed: HTTP status, problem code and
     * detail (e.g. 429 quota_exceeded, 404 model_not_found, 502
     * upstream_error, 504 upstream_timeout, 503 ai_not_configured) */
    int    status;
    char   code[48];
    char   detail[AI_ERRMSG_MAX];
    long   retry_after_s;           /* for 429/503 answers; 0 none */
} ai_outcome_t;

/* Runs the whole call. PLX_OK when a reply is complete; otherwise the
 * outcome says what to tell the client, and res.started says whether part
 * of a reply went out (then it is an error event, not an error status). A
 * usage row is written in every case where an upstream call was made.
 * ai_outcome_clear frees what it holds. */
plx_status_t ai_gateway_chat(ai_call_t *c, ai_outcome_t *o);
void ai_outcome_clear(ai_outcome_t *o);

/* Embeddings through the same model table, quotas and usage. */
plx_status_t ai_gateway_embed(plx_request_t *r, const char *user_id,
                              const char *team_id, const char *kind,
                              const char *model, const char *const *inputs,
                              size_t n, long dimensions,
                              ai_embed_result_t *res, ai_outcome_t *o);

/* true when at least one provider is configured; when false the routes
 * answer 503 ai_not_configured with ai_not_configured_detail */
bool ai_configured(void);
extern const char ai_not_configured_detail[];

/* Answer o's failure as problem+json (429 with Retry-After and code
 * quota_exceeded, 503, 502, 504, 404...). */
plx_status_t ai_reply_outcome(plx_request_t *r, const ai_outcome_t *o);

/* ------------------------------------------------------------------------
 * Registration, one per file of routes; each returns false on failure.
 */
bool ai_gateway_init(plx_module_t *m);       /* hooks, services */
plx_status_t ai_gateway_start(plx_module_t *m); /* metrics, sweep timer */
void ai_gateway_stop(plx_module_t *m);
bool ai_chat_routes(plx_module_t *m);
bool ai_openai_routes(plx_module_t *m);
bool ai_ws_routes(plx_module_t *m);
bool ai_task_routes(plx_module_t *m);
bool ai_admin_routes(plx_module_t *m);
bool ai_usage_routes(plx_module_t *m);

extern plx_module_t *ai_module;

#endif
