/*
 * gateway.c - one chat or embedding call, whatever the route that makes it
 *
 * ai_gateway_chat is the only way the module talks to a model. In order:
 * the model (and its fallbacks) by name, the ai.chat.before hooks (on a
 * copy of the messages, so a caller's array is never changed), the output
 * bound (the client's or the default, within max_output_tokens and the
 * model's context window), a quota reservation of the estimated maximum,
 * then the attempts: each model of the chain in order, each retried on a
 * retryable failure (429, 5xx, connect, timeout) with exponential backoff
 * until max_retries, all before the first token. Once a piece of the reply
 * has reached the client nothing is retried: an error ends the call and
 * the outcome says the reply is incomplete. Every attempt writes one
 * ai.usage row and its metrics; the reservation is then settled to the
 * sum of those rows and ai.chat.after runs.
 *
 * The sink the caller gives is wrapped: pieces reach it on UTF-8
 * character boundaries (a split character is held until its last byte
 * comes), and its cancelled() is polled during the backoff waits too, so
 * a client that leaves while the gateway waits to retry stops the call.
 *
 * Also here: the services ai.chat/1 and ai.embed/1, the metrics and the
 * timer thread that releases expired quota reservations.
 */
#include "config.h"

#include "chat.h"

#include <plexus/ai.h>
#include <plexus/metrics.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define GW_CHAIN_MAX   17        /* a model and its fallbacks (admin.c
                                  * accepts 16) */
#define GW_POLL_MS     50        /* slices of a backoff wait */
#define GW_SWEEP_S     60        /* ai_quota_sweep period */
#define GW_QUOTA_RETRY 60        /* Retry-After when the period is unknown */

const char ai_not_configured_detail[] =
    "no AI provider is configured: list one in plugins.d/ai.conf "
    "(providers = openai, provider.openai.type = openai, and its key in "
    "PLEXUS_AI_PROVIDER_OPENAI_API_KEY or provider.openai.api_key_file), "
    "then restart the server";

/* ---- metrics ------------------------------------------------------------- */

static const plx_metrics_v1_t *mx;
static struct {
    plx_metric_t *requests, *tokens, *cost, *ttft, *errors;
} met;

static void metrics_create(plx_module_t *m)
{
    static const double ttft_bounds[] = {
        0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64
    };

    mx = plx_metrics_get();
    met.requests = plx_metrics_counter_new(mx, m, "plexus_ai_requests_total",
        "Calls made to AI providers, by provider, model and outcome.",
        PLX_METRICS_LABELS("provider", "model", "status"));
    met.tokens = plx_metrics_counter_new(mx, m, "plexus_ai_tokens_total",
        "Tokens used by AI calls, by provider, model and direction "
        "(prompt or completion).",
        PLX_METRICS_LABELS("provider", "model", "direction"));
    met.cost = plx_metrics_counter_new(mx, m, "plexus_ai_cost_total",
        "Cost of AI calls in the operator's currency, by provider and model.",
        PLX_METRICS_LABELS("provider", "model"));
    met.ttft = plx_metrics_histogram_new(mx, m,
        "plexus_ai_time_to_first_token_seconds",
        "Time from sending a request to a provider to the first piece of "
        "its reply.", ttft_bounds, sizeof ttft_bounds / sizeof ttft_bounds[0],
        PLX_METRICS_LABELS("provider", "model"));
    met.errors = plx_metrics_counter_new(mx, m, "plexus_ai_errors_total",
        "Failed calls to AI providers, by provider, model and kind of error.",
        PLX_METRICS_LABELS("provider", "model", "kind"));
}

static const char *err_kind(ai_err_t e)
{
    switch (e) {
    case AI_OK:            return "none";
    case AI_ERR_RATE:      return "rate_limited";
    case AI_ERR_QUOTA:     return "provider_quota";
    case AI_ERR_SERVER:    return "server";
    case AI_ERR_CLIENT:    return "bad_request";
    case AI_ERR_AUTH:      return "auth";
    case AI_ERR_CONNECT:   return "connect";
    case AI_ERR_TIMEOUT:   return "timeout";
    case AI_ERR_STREAM:    return "stream";
    case AI_ERR_PROTOCOL:  return "protocol";
    case AI_ERR_CANCELLED: return "cancelled";
    case AI_ERR_TOO_LARGE: return "too_large";
    }
    return "other";
}

/* ---- one attempt's accounting ------------------------------------------- */

/* What one attempt used and how it ended: the row of ai.usage. */
typedef struct gw_attempt {
    const ai_model_t    *model;
    const ai_provider_t *provider;
    const ai_result_t   *res;
    double               seconds;
    long                 prompt, completion;
    bool                 estimated;
    double               cost;
    const char          *status;
} gw_attempt_t;

typedef struct gw_call {
    ai_call_t     *c;
    ai_outcome_t  *o;
    const char    *want_kind;       /* "chat" or "embedding" */
    json_t        *messages;        /* the caller's, after the hooks (owned) */
    long           prompt_estimate;
    ai_model_t    *chain[GW_CHAIN_MAX];
    long           max_tokens[GW_CHAIN_MAX];  /* per model of the chain */
    size_t         nchain;
    ai_reservation_t *reservation;
    long           used_tokens;     /* the sum of the usage rows */
    double         used_cost;
    bool           cancelled;       /* the caller's sink said so */
    /* the sink wrapper: a character split between two pieces waits here */
    ai_utf8_joiner_t utf8;
} gw_call_t;

static const char *attempt_status(const ai_result_t *res)
{
    if (res->err == AI_OK)
        return "ok";
    if (res->err == AI_ERR_CANCELLED)
        return "cancelled";
    return res->started ? "incomplete" : "error";
}

/* The provider's figures, or an estimate when it gave none and some text
 * was produced; a call that produced nothing and reported nothing is
 * charged nothing (providers do not bill refused calls). A reply cut
 * short may carry figures from its start only (Anthropic's message_start
 * counts one output token): the estimate of what came is the floor. */
static void attempt_count(gw_call_t *g, gw_attempt_t *a)
{
    const ai_result_t *res = a->res;
    long text = res->text_len ? ai_estimate_tokens(res->text, res->text_len) : 0;

    if (res->usage.known) {
        a->prompt = res->usage.prompt_tokens;
        a->completion = res->usage.completion_tokens;
    } else if (res->err == AI_OK || res->text_len > 0) {
        a->prompt = g->prompt_estimate;
        a->completion = text;
        a->estimated = true;
    }
    if (res->err != AI_OK && res->text_len > 0) {
        if (a->completion < text) {
            a->completion = text;
            a->estimated = true;
        }
        if (a->prompt <= 0) {
            a->prompt = g->prompt_estimate;
            a->estimated = true;
        }
    }
    if (a->prompt < 0)
        a->prompt = 0;
    if (a->completion < 0)
        a->completion = 0;
    a->cost = ai_cost(a->model, a->prompt, a->completion);
}

static void attempt_metrics(const gw_attempt_t *a)
{
    const char *p = a->provider->name, *mdl = a->model->name;

    plx_metrics_counter_add(mx, met.requests, PLX_METRICS_VALUES(p, mdl, a->status), 1);
    plx_metrics_counter_add(mx, met.tokens, PLX_METRICS_VALUES(p, mdl, "prompt"),
                            (double)a->prompt);
    plx_metrics_counter_add(mx, met.tokens, PLX_METRICS_VALUES(p, mdl, "completion"),
                            (double)a->completion);
    plx_metrics_counter_add(mx, met.cost, PLX_METRICS_VALUES(p, mdl), a->cost);
    if (a->res->ttft_seconds >= 0)
        plx_metrics_histogram_observe(mx, met.ttft, PLX_METRICS_VALUES(p, mdl),
                                      a->res->ttft_seconds);
    if (a->res->err != AI_OK && a->res->err != AI_ERR_CANCELLED)
        plx_metrics_counter_add(mx, met.errors,
                                PLX_METRICS_VALUES(p, mdl, err_kind(a->res->err)), 1);
}

static const char *call_request_id(const ai_call_t *c)
{
    if (c->request_id)
        return c->request_id;
    return c->r ? plx_request_id(c->r) : NULL;
}

static void attempt_record(gw_call_t *g, gw_attempt_t *a)
{
    const ai_call_t *c = g->c;
    const ai_result_t *res = a->res;

    a->status = attempt_status(res);
    attempt_count(g, a);
    g->used_tokens += a->prompt + a->completion;
    g->used_cost += a->cost;
    ai_usage_row_t u = {
        .user_id = c->user_id, .team_id = c->team_id,
        .request_id = call_request_id(c), .kind = c->kind ? c->kind : "chat",
        .model = c->model, .served_model = a->model->name,
        .provider = a->provider->name, .prompt_tokens = a->prompt,
        .completion_tokens = a->completion, .cost = a->cost,
        .estimated = a->estimated, .status = a->status,
        .error = res->err == AI_OK ? NULL : res->message,
        .ttft_seconds = res->ttft_seconds, .seconds = a->seconds,
    };
    if (ai_usage_record(&u) != PLX_OK)
        plx_rlog(ai_module, c->r, PLX_LOG_ERROR, "usage of a call to model "
                 "\"%s\" not recorded", a->model->name);
    attempt_metrics(a);
    if (res->err != AI_OK && res->err != AI_ERR_CANCELLED)
        plx_rlog(ai_module, c->r, PLX_LOG_WARN, "model \"%s\" on provider "
                 "\"%s\" failed (%s, status %d): %s", a->model->name,
                 a->provider->name, err_kind(res->err), res->http_status,
                 res->message);
}

/* ---- the outcome of a failure -------------------------------------------- */

static void fail(ai_outcome_t *o, int status, const char *code,
                 const char *fmt, ...) PLX_PRINTF(4, 5);

static void fail(ai_outcome_t *o, int status, const char *code,
                 const char *fmt, ...)
{
    va_list ap;

    o->status = status;
    snprintf(o->code, sizeof o->code, "%s", code);
    va_start(ap, fmt);
    vsnprintf(o->detail, sizeof o->detail, fmt, ap);
    va_end(ap);
}

/* what the client is told of the last attempt's failure */
static void fail_upstream(ai_outcome_t *o, const ai_result_t *res)
{
    const char *msg = res->message[0] ? res->message : "the provider failed";

    switch (res->err) {
    case AI_ERR_CANCELLED:
        fail(o, 499, "cancelled", "the client cancelled the call");
        break;
    case AI_ERR_TIMEOUT:
        fail(o, 504, "upstream_timeout", "the AI provider did not answer in "
             "time: %s", msg);
        break;
    case AI_ERR_RATE:
        fail(o, 503, "upstream_rate_limited", "the AI provider is rate "
             "limiting requests: %s", msg);
        o->retry_after_s = res->retry_after_ms > 0
                           ? (res->retry_after_ms + 999) / 1000 : 5;
        break;
    case AI_ERR_CLIENT:
        fail(o, 400, "upstream_rejected", "the AI provider refused the "
             "request: %s", msg);
        break;
    case AI_ERR_CONNECT:
        fail(o, 502, "upstream_unreachable", "the AI provider could not be "
             "reached: %s", msg);
        break;
    default:
        fail(o, 502, "upstream_error", "the AI provider failed: %s", msg);
        break;
    }
}

static int status_http(plx_status_t st)
{
    switch (st) {
    case PLX_ERR_INVALID:     return 400;
    case PLX_ERR_AUTH:        return 401;
    case PLX_ERR_FORBIDDEN:   return 403;
    case PLX_ERR_NOT_FOUND:   return 404;
    case PLX_ERR_CONFLICT:    return 409;
    case PLX_ERR_TOO_LARGE:   return 413;
    case PLX_ERR_LIMIT:       return 429;
    case PLX_ERR_UNAVAILABLE:
    case PLX_ERR_DB:          return 503;
    default:                  return 500;
    }
}

/* ---- the chain of models ------------------------------------------------- */

static const char *kind_word(const char *kind)
{
    return strcmp(kind, "embedding") == 0 ? "embeddings" : "chat";
}

static bool chain_has(const gw_call_t *g, const char *name)
{
    for (size_t i = 0; i < g->nchain; i++)
        if (strcmp(g->chain[i]->name, name) == 0)
            return true;
    return false;
}

/* a fallback that cannot serve is skipped (logged), not an error */
static void chain_add_fallback(gw_call_t *g, const char *name)
{
    ai_model_t *fm = NULL;

    if (g->nchain >= GW_CHAIN_MAX || chain_has(g, name))
        return;
    if (ai_model_get(name, &fm) != PLX_OK || strcmp(fm->kind, g->want_kind) != 0
        || !ai_provider_find(fm->provider)) {
        plx_rlog(ai_module, g->c->r, PLX_LOG_WARN, "fallback model \"%s\" of "
                 "\"%s\" skipped: unknown, disabled, not for %s or on a "
                 "provider that is not configured", name, g->chain[0]->name,
                 kind_word(g->want_kind));
        ai_model_free(fm);
        return;
    }
    g->chain[g->nchain++] = fm;
}

/* the model asked for, then its fallbacks in order; PLX_OK or the
 * outcome's status set */
static plx_status_t chain_load(gw_call_t *g)
{
    ai_outcome_t *o = g->o;
    const char *name = g->c->model;
    ai_model_t *m = NULL;
    plx_status_t st;

    if (!name || !*name) {
        fail(o, 400, "model_required", "name a model: this server has no "
             "default %s model (%s in plugins.d/ai.conf)", g->want_kind,
             strcmp(g->want_kind, "chat") == 0 ? "default_model"
                                               : "default_embedding_model");
        return PLX_ERR_INVALID;
    }
    if ((st = ai_model_get(name, &m)) == PLX_ERR_NOT_FOUND) {
        fail(o, 404, "model_not_found", "no model \"%.128s\" (or it is "
             "disabled)", name);
        return st;
    }
    if (st != PLX_OK) {
        fail(o, 503, "db_unavailable", "the model table could not be read");
        o->retry_after_s = 5;
        return st;
    }
    g->chain[g->nchain++] = m;
    if (strcmp(m->kind, g->want_kind) != 0) {
        fail(o, 400, "wrong_model_kind", "model \"%.128s\" serves %s, not %s",
             name, kind_word(m->kind), kind_word(g->want_kind));
        return PLX_ERR_INVALID;
    }
    if (!ai_provider_find(m->provider)) {
        fail(o, 503, "ai_not_configured", "model \"%.128s\" runs on provider "
             "\"%.64s\", which plugins.d/ai.conf does not configure", name,
             m->provider);
        return PLX_ERR_UNAVAILABLE;
    }
    for (size_t i = 0; i < m->nfallbacks; i++)
        chain_add_fallback(g, m->fallbacks[i]);
    return PLX_OK;
}

/* The output bound of each model of the chain: the client's or the
 * default, within max_output_tokens and what the model's context window
 * leaves after the prompt. A fallback whose window cannot hold the prompt
 * is dropped; the model asked for is a 400. */
static plx_status_t chain_bound(gw_call_t *g)
{
    long want = g->c->params.max_tokens > 0 ? g->c->params.max_tokens
                                            : ai_cfg.default_max_tokens;
    size_t kept = 0;

    if (want > ai_cfg.max_output_tokens)
        want = ai_cfg.max_output_tokens;
    if (want < 1)
        want = 1;
    for (size_t i = 0; i < g->nchain; i++) {
        long room = g->chain[i]->context_window - g->prompt_estimate;
        if (room < 1 && i == 0) {
            fail(g->o, 400, "context_length_exceeded", "the messages take "
                 "about %ld tokens; model \"%.128s\" holds %ld", g->prompt_estimate,
                 g->chain[0]->name, g->chain[0]->context_window);
            return PLX_ERR_INVALID;
        }
        if (room < 1) {
            ai_model_free(g->chain[i]);
            continue;
        }
        g->max_tokens[kept] = want < room ? want : room;
        g->chain[kept++] = g->chain[i];
    }
    g->nchain = kept;
    return PLX_OK;
}

static void chain_free(gw_call_t *g)
{
    for (size_t i = 0; i < g->nchain; i++)
        ai_model_free(g->chain[i]);
    g->nchain = 0;
}

/* ---- quota -------------------------------------------------------------- */

/* The reservation: the prompt plus the output bound of the model asked
 * for (no fallback has a larger one), at the dearest price of the chain. */
static plx_status_t quota_reserve(gw_call_t *g)
{
    const ai_call_t *c = g->c;
    long tokens = g->prompt_estimate + g->max_tokens[0];
    double cost = 0;
    char why[AI_ERRMSG_MAX] = "";
    plx_status_t st;

    if (!c->user_id && !c->team_id)
        return PLX_OK;
    for (size_t i = 0; i < g->nchain; i++) {
        double ci = ai_cost(g->chain[i], g->prompt_estimate, g->max_tokens[i]);
        if (ci > cost)
            cost = ci;
    }
    st = ai_quota_reserve(c->user_id, c->team_id, tokens, cost,
                          &g->reservation, why, sizeof why);
    if (st == PLX_ERR_LIMIT) {
        fail(g->o, 429, "quota_exceeded", "%s", why[0] ? why : "your AI quota is spent");
        g->o->retry_after_s = strstr(why, "month")
            ? ai_seconds_to_period_end(time(NULL), true)
            : strstr(why, "dai") || strstr(why, "day")
            ? ai_seconds_to_period_end(time(NULL), false) : GW_QUOTA_RETRY;
    } else if (st != PLX_OK) {
        fail(g->o, 503, "db_unavailable", "the quota could not be checked");
        g->o->retry_after_s = 5;
    }
    return st;
}

static void quota_settle(gw_call_t *g)
{
    if (!g->reservation)
        return;
    if (ai_quota_settle(g->reservation, g->used_tokens, g->used_cost) != PLX_OK)
        plx_rlog(ai_module, g->c->r, PLX_LOG_ERROR, "quota reservation not "
                 "settled (%ld tokens): it is released when it expires",
                 g->used_tokens);
    g->reservation = NULL;
}

/* ---- the sink wrapper ----------------------------------------------------- */

static bool outer_cancelled(gw_call_t *g)
{
    const ai_sink_t *s = &g->c->sink;

    if (!g->cancelled && s->cancelled && s->cancelled(s->ud))
        g->cancelled = true;
    return g->cancelled;
}

static bool outer_delta(gw_call_t *g, const char *text, size_t len)
{
    const ai_sink_t *s = &g->c->sink;

    if (len == 0 || !s->delta)
        return true;
    if (!s->delta(s->ud, text, len)) {
        g->cancelled = true;
        return false;
    }
    return true;
}

static bool wrap_cancelled(void *ud)
{
    return outer_cancelled(ud);
}

static bool pass_on(void *ud, const char *text, size_t len)
{
    return outer_delta(ud, text, len);
}

/* the caller gets whole characters only */
static bool wrap_delta(void *ud, const char *text, size_t len)
{
    gw_call_t *g = ud;

    return ai_utf8_feed(&g->utf8, text, len, pass_on, g);
}

/* ---- attempts ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* sleep ms in slices, asking the caller between them; false: cancelled */
static bool backoff_wait(gw_call_t *g, long ms)
{
    double end = now_s() + (double)ms / 1000.0;

    for (;;) {
        double left = end - now_s();
        if (outer_cancelled(g))
            return false;
        if (left <= 0)
            return true;
        long slice = (long)(left * 1000.0) + 1;
        if (slice > GW_POLL_MS)
            slice = GW_POLL_MS;
        struct timespec ts = { slice / 1000, (slice % 1000) * 1000000L };
        nanosleep(&ts, NULL);
    }
}

/* the model and provider that answered ("" when none did) */
static void served(ai_outcome_t *o, const ai_model_t *m, const ai_provider_t *p,
                   bool answered)
{
    snprintf(o->served_model, sizeof o->served_model, "%s", answered ? m->name : "");
    snprintf(o->provider, sizeof o->provider, "%s", answered ? p->name : "");
}

/* one upstream call, its usage row and metrics; the result stays in o->res */
static void attempt_run(gw_call_t *g, size_t i)
{
    ai_outcome_t *o = g->o;
    const ai_model_t *m = g->chain[i];
    const ai_provider_t *p = ai_provider_find(m->provider);
    ai_chat_params_t q = g->c->params;
    ai_sink_t sink = { wrap_delta, wrap_cancelled, g };
    gw_attempt_t a = { .model = m, .provider = p, .res = &o->res };
    double t0 = now_s();

    ai_result_clear(&o->res);
    memset(&o->res, 0, sizeof o->res);
    o->res.retry_after_ms = -1;
    o->res.ttft_seconds = -1;
    g->utf8.n = 0;
    q.messages = g->messages;
    q.max_tokens = g->max_tokens[i];
    (void)ai_upstream_chat(p, m->upstream, &q, g->c->stream, &sink, &o->res);
    if (g->cancelled && o->res.err != AI_OK)
        o->res.err = AI_ERR_CANCELLED;
    a.seconds = now_s() - t0;
    attempt_record(g, &a);
    served(o, m, p, o->res.err == AI_OK || o->res.started);
    o->usage.prompt_tokens = a.prompt;
    o->usage.completion_tokens = a.completion;
    o->usage.known = !a.estimated;
    o->estimated = a.estimated;
    o->cost = a.cost;
}

/* Every model of the chain, each retried; stops at a reply, a started
 * reply that failed, a cancel, or an error no retry can mend. */
static plx_status_t attempts_run(gw_call_t *g)
{
    const ai_result_t *res = &g->o->res;

    for (size_t i = 0; i < g->nchain; i++) {
        for (int retry = 0; retry <= ai_cfg.max_retries; retry++) {
            if (retry > 0 && !backoff_wait(g, ai_backoff_ms(retry,
                    res->retry_after_ms, ai_cfg.retry_base_ms, ai_cfg.retry_max_ms))) {
                fail(g->o, 499, "cancelled", "the client cancelled the call");
                return PLX_ERR_GONE;
            }
            attempt_run(g, i);
            if (res->err == AI_OK)
                return PLX_OK;
            if (res->started || !res->retryable || res->err == AI_ERR_CANCELLED) {
                fail_upstream(g->o, res);
                return res->err == AI_ERR_CANCELLED ? PLX_ERR_GONE
                       : res->err == AI_ERR_TIMEOUT ? PLX_ERR_TIMEOUT
                                                    : PLX_ERR_UPSTREAM;
            }
        }
    }
    fail_upstream(g->o, res);
    return res->err == AI_ERR_TIMEOUT ? PLX_ERR_TIMEOUT : PLX_ERR_UPSTREAM;
}

/* ---- hooks ---------------------------------------------------------------- */

static plx_status_t hook_before(gw_call_t *g)
{
    const ai_call_t *c = g->c;
    plx_ai_chat_hook_t h = {
        .size = sizeof h, .user_id = c->user_id, .team_id = c->team_id,
        .model = c->model, .kind = c->kind ? c->kind : "chat",
        .messages = g->messages, .reply = "",
    };
    plx_status_t st = plx_hook_run(PLX_AI_HOOK_BEFORE, c->r, &h);

    if (st != PLX_OK && st != PLX_DECLINED) {
        fail(g->o, status_http(st), "refused", "the call was refused by a "
             "module (%s)", plx_status_str(st));
        return st;
    }
    if (!json_is_array(g->messages) || json_array_size(g->messages) == 0) {
        fail(g->o, 500, "internal", "a module left the call without messages");
        return PLX_ERR_INTERNAL;
    }
    return PLX_OK;
}

static void hook_after(gw_call_t *g, bool complete)
{
    const ai_call_t *c = g->c;
    const ai_outcome_t *o = g->o;
    plx_ai_chat_hook_t h = {
        .size = sizeof h, .user_id = c->user_id, .team_id = c->team_id,
        .model = c->model, .kind = c->kind ? c->kind : "chat",
        .messages = g->messages,
        .reply = o->res.text ? o->res.text : "", .complete = complete,
        .prompt_tokens = o->usage.prompt_tokens,
        .completion_tokens = o->usage.completion_tokens,
    };

    (void)plx_hook_run(PLX_AI_HOOK_AFTER, c->r, &h);
}

/* ---- the call --------------------------------------------------------------- */

static void outcome_init(ai_outcome_t *o)
{
    memset(o, 0, sizeof *o);
    o->res.retry_after_ms = -1;
    o->res.ttft_seconds = -1;
}

/* everything before the first attempt; PLX_OK or the outcome set */
static plx_status_t call_prepare(gw_call_t *g)
{
    plx_status_t st;

    if (!ai_configured()) {
        fail(g->o, 503, "ai_not_configured", "%s", ai_not_configured_detail);
        return PLX_ERR_UNAVAILABLE;
    }
    if (!json_is_array(g->c->params.messages)
        || json_array_size(g->c->params.messages) == 0) {
        fail(g->o, 400, "invalid_body", "expected at least one message");
        return PLX_ERR_INVALID;
    }
    if ((st = chain_load(g)) != PLX_OK)
        return st;
    if (!(g->messages = json_deep_copy(g->c->params.messages))) {
        fail(g->o, 500, "internal", "out of memory");
        return PLX_ERR_NOMEM;
    }
    if ((st = hook_before(g)) != PLX_OK)
        return st;
    g->prompt_estimate = ai_estimate_messages(g->messages);
    if ((st = chain_bound(g)) != PLX_OK)
        return st;
    return quota_reserve(g);
}

plx_status_t ai_gateway_chat(ai_call_t *c, ai_outcome_t *o)
{
    gw_call_t g = { .c = c, .o = o, .want_kind = "chat" };
    plx_status_t st;

    outcome_init(o);
    if ((st = call_prepare(&g)) == PLX_OK) {
        st = attempts_run(&g);
        quota_settle(&g);
        hook_after(&g, st == PLX_OK);
    }
    chain_free(&g);
    json_decref(g.messages);
    return st;
}

void ai_outcome_clear(ai_outcome_t *o)
{
    if (o)
        ai_result_clear(&o->res);
}

bool ai_configured(void)
{
    return ai_cfg.nproviders > 0;
}

/* ---- embeddings ------------------------------------------------------------ */

/* the embedding call's result seen as a chat result, for the accounting */
static void embed_view(ai_result_t *v, const ai_embed_result_t *er)
{
    ai_result_clear(v);
    memset(v, 0, sizeof *v);
    v->err = er->err;
    v->retryable = er->retryable;
    v->retry_after_ms = er->retry_after_ms;
    v->http_status = er->http_status;
    v->usage = er->usage;
    v->ttft_seconds = -1;
    snprintf(v->message, sizeof v->message, "%s", er->message);
}

static void embed_attempt(gw_call_t *g, size_t i, const char *const *inputs,
                          size_t n, long dimensions, ai_embed_result_t *er)
{
    ai_outcome_t *o = g->o;
    const ai_model_t *m = g->chain[i];
    const ai_provider_t *p = ai_provider_find(m->provider);
    gw_attempt_t a = { .model = m, .provider = p, .res = &o->res };
    double t0 = now_s();

    ai_embed_result_clear(er);
    memset(er, 0, sizeof *er);
    er->retry_after_ms = -1;
    (void)ai_upstream_embed(p, m->upstream, inputs, n, dimensions, er);
    a.seconds = now_s() - t0;
    embed_view(&o->res, er);
    attempt_record(g, &a);
    served(o, m, p, er->err == AI_OK);
    o->usage.prompt_tokens = a.prompt;
    o->usage.known = !a.estimated;
    o->estimated = a.estimated;
    o->cost = a.cost;
}

static plx_status_t embed_run(gw_call_t *g, const char *const *inputs,
                              size_t n, long dimensions, ai_embed_result_t *er)
{
    const ai_result_t *res = &g->o->res;

    for (size_t i = 0; i < g->nchain; i++) {
        for (int retry = 0; retry <= ai_cfg.max_retries; retry++) {
            if (retry > 0 && !backoff_wait(g, ai_backoff_ms(retry,
                    res->retry_after_ms, ai_cfg.retry_base_ms, ai_cfg.retry_max_ms)))
                return PLX_ERR_GONE;
            embed_attempt(g, i, inputs, n, dimensions, er);
            if (res->err == AI_OK)
                return PLX_OK;
            if (!res->retryable)
                goto failed;
        }
    }
failed:
    fail_upstream(g->o, res);
    return res->err == AI_ERR_TIMEOUT ? PLX_ERR_TIMEOUT : PLX_ERR_UPSTREAM;
}

static plx_status_t embed_prepare(gw_call_t *g, const char *const *inputs,
                                  size_t n)
{
    plx_status_t st;

    if (!ai_configured()) {
        fail(g->o, 503, "ai_not_configured", "%s", ai_not_configured_detail);
        return PLX_ERR_UNAVAILABLE;
    }
    if (!inputs || n == 0) {
        fail(g->o, 400, "invalid_body", "expected at least one input");
        return PLX_ERR_INVALID;
    }
    for (size_t i = 0; i < n; i++) {
        if (!inputs[i] || !*inputs[i]) {
            fail(g->o, 400, "invalid_body", "input %zu is empty", i);
            return PLX_ERR_INVALID;
        }
        g->prompt_estimate += ai_estimate_tokens(inputs[i], strlen(inputs[i]));
    }
    if ((st = chain_load(g)) != PLX_OK)
        return st;
    return quota_reserve(g);   /* max_tokens are 0: no output to bound */
}

plx_status_t ai_gateway_embed(plx_request_t *r, const char *user_id,
                              const char *team_id, const char *kind,
                              const char *model, const char *const *inputs,
                              size_t n, long dimensions,
                              ai_embed_result_t *res, ai_outcome_t *o)
{
    ai_call_t c = {
        .r = r, .user_id = user_id, .team_id = team_id,
        .kind = kind ? kind : "embeddings",
        .model = model ? model : ai_cfg.default_embedding_model,
    };
    gw_call_t g = { .c = &c, .o = o, .want_kind = "embedding" };
    plx_status_t st;

    outcome_init(o);
    memset(res, 0, sizeof *res);
    res->retry_after_ms = -1;
    if ((st = embed_prepare(&g, inputs, n)) == PLX_OK) {
        st = embed_run(&g, inputs, n, dimensions, res);
        quota_settle(&g);
    }
    chain_free(&g);
    return st;
}

/* ---- answering a failure ---------------------------------------------------- */

/* problem+json with "message" beside "detail" (the quota answer
 * names it so); under a prefix whose errors a module shapes (/v1/) the
 * core gives it that shape instead */
plx_status_t ai_reply_outcome(plx_request_t *r, const ai_outcome_t *o)
{
    int status = o->status >= 400 && o->status <= 599 ? o->status : 500;
    const char *code = o->code[0] ? o->code : "internal";
    char ra[24];
    json_t *body;

    if (o->retry_after_s > 0) {
        snprintf(ra, sizeof ra, "%ld", o->retry_after_s);
        plx_response_header(r, "Retry-After", ra);
    }
    /* no provider is the operator's choice, said once at start */
    plx_rlog(ai_module, r, status >= 500 && strcmp(code, "ai_not_configured") != 0
             ? PLX_LOG_ERROR : PLX_LOG_INFO, "answered %d \"%s\": %s", status, code,
             o->detail);
    body = plx_problem_new(r, status, code, o->detail);
    if (!body)
        return plx_reply_problem(r, status, code, "%s", o->detail);
    json_object_set_new(body, "message", json_string(o->detail));
    return plx_reply_problem_json(r, status, body);
}

/* ---- the sweep timer ---------------------------------------------------------- */

/* Reservations of calls that died (an instance killed mid-call) hold quota
 * until they expire; one thread per instance releases them every minute.
 * Any instance may release any reservation: the statement is idempotent. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    pthread_t       thread;
    bool            running;
    bool            stop;
} sweeper = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

static void *sweep_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&sweeper.mu);
    while (!sweeper.stop) {
        struct timespec until;
        pthread_mutex_unlock(&sweeper.mu);
        ai_quota_sweep();
        pthread_mutex_lock(&sweeper.mu);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += GW_SWEEP_S;
        while (!sweeper.stop
               && pthread_cond_timedwait(&sweeper.cv, &sweeper.mu, &until) == 0)
            ;
    }
    pthread_mutex_unlock(&sweeper.mu);
    return NULL;
}

/* ---- registration ------------------------------------------------------------- */

bool ai_gateway_init(plx_module_t *m)
{
    return ai_services_register(m);
}

plx_status_t ai_gateway_start(plx_module_t *m)
{
    metrics_create(m);
    sweeper.stop = false;
    if (pthread_create(&sweeper.thread, NULL, sweep_main, NULL) != 0) {
        plx_log(m, PLX_LOG_ERROR, "the quota sweep thread could not start");
        return PLX_ERR_INTERNAL;
    }
    sweeper.running = true;
    return PLX_OK;
}

void ai_gateway_stop(plx_module_t *m)
{
    (void)m;
    if (!sweeper.running)
        return;
    pthread_mutex_lock(&sweeper.mu);
    sweeper.stop = true;
    pthread_cond_broadcast(&sweeper.cv);
    pthread_mutex_unlock(&sweeper.mu);
    pthread_join(sweeper.thread, NULL);
    sweeper.running = false;
}
