/*
 * service.c - ai.chat/1 and ai.embed/1: the gateway for other modules
 *
 * A module calls a model through these tables (plexus/ai.h) and gets the
 * same models, fallbacks, hooks, quotas and usage rows as a client of the
 * routes. The calls block (up to the provider timeouts) and stream
 * nothing: a caller wants the whole reply. Usage rows say kind "service".
 */
#include "config.h"

#include "chat.h"

#include <plexus/ai.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* s into error, cut on a character boundary */
static void set_error(char *error, size_t len, const char *s)
{
    size_t n = strlen(s);

    if (!error || !len)
        return;
    if (n >= len) {
        n = len - 1;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    memcpy(error, s, n);
    error[n] = '\0';
}

static plx_status_t svc_chat(const plx_ai_chat_req_t *req, plx_ai_chat_reply_t *out)
{
    ai_outcome_t o;
    plx_status_t st;

    if (!out || out->size < sizeof(plx_ai_chat_reply_t))
        return PLX_ERR_INVALID;
    out->text = NULL;
    out->prompt_tokens = out->completion_tokens = 0;
    out->finish_reason[0] = out->error[0] = '\0';
    if (!req || req->size < sizeof(plx_ai_chat_req_t) || !req->user_id
        || !json_is_array(req->messages)) {
        set_error(out->error, sizeof out->error, "expected a request "
                  "with a user to charge and an array of messages");
        return PLX_ERR_INVALID;
    }
    ai_call_t c = {
        .user_id = req->user_id, .team_id = req->team_id, .kind = "service",
        .model = req->model ? req->model : ai_cfg.default_model,
        .params = {
            .messages = req->messages, .max_tokens = req->max_tokens,
            .has_temperature = req->temperature >= 0,
            .temperature = req->temperature,
        },
    };
    st = ai_gateway_chat(&c, &o);
    if (st == PLX_OK && !(out->text = strdup(o.res.text ? o.res.text : "")))
        st = PLX_ERR_NOMEM;
    if (st == PLX_OK) {
        out->prompt_tokens = o.usage.prompt_tokens;
        out->completion_tokens = o.usage.completion_tokens;
        snprintf(out->finish_reason, sizeof out->finish_reason, "%s",
                 o.res.finish_reason);
    } else {
        set_error(out->error, sizeof out->error,
                  o.detail[0] ? o.detail : plx_status_str(st));
    }
    ai_outcome_clear(&o);
    return st;
}

static plx_status_t svc_embed(const char *user_id, const char *team_id,
                              const char *model, const char *const *texts,
                              size_t n, float **vectors, size_t *dim,
                              char error[256])
{
    ai_embed_result_t er;
    ai_outcome_t o;
    plx_status_t st;

    if (!vectors || !dim) {
        set_error(error, 256, "expected where to put the vectors");
        return PLX_ERR_INVALID;
    }
    *vectors = NULL;
    *dim = 0;
    st = ai_gateway_embed(NULL, user_id, team_id, "service", model, texts, n,
                          0, &er, &o);
    if (st == PLX_OK) {
        *vectors = er.vectors;
        *dim = er.dim;
        er.vectors = NULL;
    } else {
        set_error(error, 256, o.detail[0] ? o.detail : plx_status_str(st));
    }
    ai_embed_result_clear(&er);
    ai_outcome_clear(&o);
    return st;
}

static const plx_ai_chat_v1_t chat_v1 = { sizeof chat_v1, svc_chat };
static const plx_ai_embed_v1_t embed_v1 = { sizeof embed_v1, svc_embed };

bool ai_services_register(plx_module_t *m)
{
    return plx_service_register(m, PLX_AI_CHAT_SERVICE, 1, &chat_v1) == PLX_OK
           && plx_service_register(m, PLX_AI_EMBED_SERVICE, 1, &embed_v1) == PLX_OK;
}
