/*
 * ai.c - the ai module: an AI gateway with chat, conversations, streaming
 * over SSE and WebSocket, task routes, usage, quotas and an
 * OpenAI-compatible /v1/ surface
 *
 * This file is the table of contents: the descriptor, the settings, the
 * migrations and one registration call per layer (ai.h draws the layers).
 * With no provider in plugins.d/ai.conf the module still loads and every
 * AI route answers 503 ai_not_configured saying how to add one.
 */
#include "config.h"

#include "ai.h"

plx_module_t *ai_module;

static plx_status_t ai_init(plx_module_t *m)
{
    ai_module = m;
    if (!ai_settings_load(m))
        return PLX_ERR_INVALID;
    /* the class of every route that calls a model: 60 calls a minute per
     * caller unless plexus.conf's [ratelimit] ai says otherwise */
    if (plx_migrations_add(m, "sql") != PLX_OK
        || plx_rate_class_add(m, "ai", "60/60s") != PLX_OK
        || !ai_gateway_init(m)
        || !ai_chat_routes(m)
        || !ai_openai_routes(m)
        || !ai_ws_routes(m)
        || !ai_task_routes(m)
        || !ai_admin_routes(m)
        || !ai_usage_routes(m))
        return PLX_ERR_INTERNAL;
    if (!ai_configured())
        plx_log(m, PLX_LOG_WARN, "%s", ai_not_configured_detail);
    return PLX_OK;
}

static plx_status_t ai_start(plx_module_t *m)
{
    return ai_gateway_start(m);
}

static void ai_stop(plx_module_t *m)
{
    ai_gateway_stop(m);
    ai_settings_free();
}

PLX_MODULE(.name = "ai", .version = "1.0.0",
           .description = "AI gateway: chat, conversations, streaming, usage, "
                          "quotas and an OpenAI-compatible API",
           .init = ai_init, .start = ai_start, .stop = ai_stop);
