/*
 * ai_probe.c - a test module that uses the ai module as another module
 * would: its hooks and its services
 *
 *   ai.chat.before  puts a system message "probe context for <kind>" in
 *                   front of a call whose last message holds "[[probe
 *                   context]]" (what retrieval does), and refuses (403) one
 *                   whose last message holds "[[probe refuse]]"; other
 *                   calls pass untouched
 *   ai.chat.after   records what it is told
 *
 *   GET  /api/v1/ai-probe/after   {"calls": [{kind, model, user_id, reply,
 *                                  complete, prompt_tokens, completion_tokens,
 *                                  messages}]}  (the last 256)
 *   POST /api/v1/ai-probe/chat    {model?, message, max_tokens?} through
 *                                 ai.chat/1, charged to the caller:
 *                                 {text, prompt_tokens, completion_tokens,
 *                                  finish_reason}
 *   POST /api/v1/ai-probe/embed   {model?, texts} through ai.embed/1:
 *                                 {dim, vectors}
 *
 * A failed service call answers with the status its plx_status_t maps to
 * and code "service_<status>", its error as the detail.
 */
#include "config.h"

#include <plexus/module.h>
#include <plexus/ai.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CALLS_MAX 256
#define TEXTS_MAX 64

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *calls;
static const plx_ai_chat_v1_t *chat_svc;
static const plx_ai_embed_v1_t *embed_svc;

static const char *last_content(json_t *messages)
{
    size_t n = json_array_size(messages);

    return n ? json_string_value(json_object_get(json_array_get(messages, n - 1),
                                                 "content")) : NULL;
}

static plx_status_t before(plx_request_t *r, void *data, void *arg)
{
    plx_ai_chat_hook_t *h = data;
    const char *last;
    char text[128];

    if (!h || h->size < sizeof *h || !json_is_array(h->messages))
        return PLX_ERR_INVALID;
    last = last_content(h->messages);
    if (last && strstr(last, "[[probe refuse]]"))
        return PLX_ERR_FORBIDDEN;
    if (!last || !strstr(last, "[[probe context]]"))
        return PLX_DECLINED;
    snprintf(text, sizeof text, "probe context for %s", h->kind ? h->kind : "?");
    if (json_array_insert_new(h->messages, 0, json_pack("{s:s, s:s}", "role",
                              "system", "content", text)) != 0)
        return PLX_ERR_NOMEM;
    return PLX_OK;
}

static plx_status_t after(plx_request_t *r, void *data, void *arg)
{
    const plx_ai_chat_hook_t *h = data;
    json_t *c;

    if (!h || h->size < sizeof *h)
        return PLX_OK;
    c = json_pack("{s:s?, s:s?, s:s?, s:s?, s:s, s:b, s:I, s:I, s:O?}",
                  "kind", h->kind, "model", h->model, "user_id", h->user_id,
                  "team_id", h->team_id, "reply", h->reply ? h->reply : "",
                  "complete", h->complete, "prompt_tokens", (json_int_t)h->prompt_tokens,
                  "completion_tokens", (json_int_t)h->completion_tokens,
                  "messages", h->messages);
    if (!c)
        return PLX_OK;
    pthread_mutex_lock(&lock);
    if (json_array_size(calls) >= CALLS_MAX)
        json_array_remove(calls, 0);
    json_array_append_new(calls, c);
    pthread_mutex_unlock(&lock);
    return PLX_OK;
}

static plx_status_t list_after(plx_request_t *r, void *arg)
{
    json_t *copy;

    pthread_mutex_lock(&lock);
    copy = json_deep_copy(calls);
    pthread_mutex_unlock(&lock);
    if (!copy)
        return PLX_ERR_NOMEM;
    return plx_reply_json(r, 200, json_pack("{s:o}", "calls", copy));
}

static int http_status(plx_status_t st)
{
    switch (st) {
    case PLX_ERR_INVALID:     return 400;
    case PLX_ERR_NOT_FOUND:   return 404;
    case PLX_ERR_LIMIT:       return 429;
    case PLX_ERR_UPSTREAM:    return 502;
    case PLX_ERR_UNAVAILABLE: return 503;
    case PLX_ERR_TIMEOUT:     return 504;
    default:                  return 500;
    }
}

static plx_status_t refuse(plx_request_t *r, plx_status_t st, const char *error)
{
    char code[64];

    snprintf(code, sizeof code, "service_%s", plx_status_str(st));
    for (char *p = code; *p; p++)
        if (*p == ' ')
            *p = '_';
    return plx_reply_problem(r, http_status(st), code, "%s", error);
}

static plx_status_t probe_chat(plx_request_t *r, void *arg)
{
    json_t *body, *mt;
    const char *message;
    plx_ai_chat_reply_t out = { .size = sizeof out };
    plx_status_t st;

    if (plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;
    if (!chat_svc)
        return plx_reply_problem(r, 503, "no_service", "ai.chat/1 is not offered");
    if (!(message = json_string_value(json_object_get(body, "message"))))
        return plx_reply_problem(r, 400, "invalid_body", "expected a message");
    json_t *messages = json_pack("[{s:s, s:s}]", "role", "user", "content", message);
    mt = json_object_get(body, "max_tokens");
    plx_ai_chat_req_t req = {
        .size = sizeof req, .user_id = plx_request_user_id(r),
        .model = json_string_value(json_object_get(body, "model")),
        .messages = messages, .max_tokens = (long)json_integer_value(mt),
        .temperature = -1,
    };
    st = chat_svc->chat(&req, &out);
    json_decref(messages);
    if (st != PLX_OK)
        return refuse(r, st, out.error);
    json_t *j = json_pack("{s:s, s:I, s:I, s:s}", "text", out.text,
                          "prompt_tokens", (json_int_t)out.prompt_tokens,
                          "completion_tokens", (json_int_t)out.completion_tokens,
                          "finish_reason", out.finish_reason);
    free(out.text);
    return plx_reply_json(r, 200, j);
}

static plx_status_t probe_embed(plx_request_t *r, void *arg)
{
    json_t *body, *texts, *t, *vectors;
    const char *in[TEXTS_MAX];
    char error[256] = "";
    float *v = NULL;
    size_t n, dim = 0, i;
    plx_status_t st;

    if (plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;
    if (!embed_svc)
        return plx_reply_problem(r, 503, "no_service", "ai.embed/1 is not offered");
    texts = json_object_get(body, "texts");
    n = json_array_size(texts);
    if (n == 0 || n > TEXTS_MAX)
        return plx_reply_problem(r, 400, "invalid_body", "expected 1 to 64 texts");
    json_array_foreach(texts, i, t) {
        if (!(in[i] = json_string_value(t)))
            return plx_reply_problem(r, 400, "invalid_body", "texts are strings");
    }
    st = embed_svc->embed(plx_request_user_id(r), NULL,
                          json_string_value(json_object_get(body, "model")),
                          in, n, &v, &dim, error);
    if (st != PLX_OK)
        return refuse(r, st, error);
    vectors = json_array();
    for (i = 0; i < n; i++) {
        json_t *row = json_array();
        for (size_t k = 0; k < dim; k++)
            json_array_append_new(row, json_real(v[i * dim + k]));
        json_array_append_new(vectors, row);
    }
    free(v);
    return plx_reply_json(r, 200, json_pack("{s:I, s:o}", "dim", (json_int_t)dim,
                                            "vectors", vectors));
}

static plx_status_t probe_init(plx_module_t *m)
{
    if (!(calls = json_array()))
        return PLX_ERR_NOMEM;
    if (plx_hook_add(m, PLX_AI_HOOK_BEFORE, before, NULL, NULL) != PLX_OK
        || plx_hook_add(m, PLX_AI_HOOK_AFTER, after, NULL, NULL) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/ai-probe/after", list_after, NULL,
                         PLX_ROUTE_OPTS(.rate_class = "none",
                                        .summary = "what ai.chat.after saw")) != PLX_OK
        || plx_route_add(m, "POST", "/api/v1/ai-probe/chat", probe_chat, NULL,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER, .rate_class = "none",
                                        .summary = "a call through ai.chat/1")) != PLX_OK
        || plx_route_add(m, "POST", "/api/v1/ai-probe/embed", probe_embed, NULL,
                         PLX_ROUTE_OPTS(.auth = PLX_AUTH_USER, .rate_class = "none",
                                        .summary = "a call through ai.embed/1")) != PLX_OK)
        return PLX_ERR_INTERNAL;
    return PLX_OK;
}

static plx_status_t probe_start(plx_module_t *m)
{
    chat_svc = plx_service_get(PLX_AI_CHAT_SERVICE, 1);
    embed_svc = plx_service_get(PLX_AI_EMBED_SERVICE, 1);
    return PLX_OK;
}

static void probe_stop(plx_module_t *m)
{
    pthread_mutex_lock(&lock);
    json_decref(calls);
    calls = NULL;
    pthread_mutex_unlock(&lock);
}

PLX_MODULE(.name = "ai_probe", .version = "1.0.0",
           .description = "uses the ai module's hooks and services, for the tests",
           .requires = PLX_REQUIRES("ai"),
           .init = probe_init, .start = probe_start, .stop = probe_stop);
