/*
 * scrape.c - GET /metrics: who may read it, then the text
 *
 * The route is public to the core's router; this handler decides. First
 * the client address against [metrics] allow (the socket's peer: a
 * forwarded-for header is the client's word and is not trusted), then,
 * when a token is set, the Bearer credential. No credential is "who are
 * you" (401 with a challenge); a wrong one, or an address outside the
 * list, is "you may not" (403).
 *
 * NB: the core's authentication runs first among the request.begin hooks
 * and answers 401 to any Bearer credential that is not one of its own
 * tokens or API keys, so with a token set the scrape cannot wait for the
 * route: a hook placed before the core's answers GET /metrics itself.
 * Other requests cost it one string compare.
 */
#include "metrics.h"

#include <stdlib.h>
#include <string.h>

plx_status_t metrics_scrape(plx_request_t *r, void *arg)
{
    const metrics_settings_t *set = arg;
    const char *addr = plx_request_remote_addr(r);
    const char *auth;
    metrics_buf_t b;

    if (!metrics_allow_match(set, addr))
        return plx_reply_problem(r, 403, "forbidden", "client address \"%.64s\" "
                                 "is not in metrics.allow", addr ? addr : "");
    if (set->token) {
        auth = plx_request_header(r, "Authorization");
        if (!auth || !*auth) {
            plx_response_header(r, "WWW-Authenticate", "Bearer realm=\"metrics\"");
            return plx_reply_problem(r, 401, "unauthenticated", "/metrics "
                                     "requires a Bearer token");
        }
        if (!metrics_bearer_matches(auth, set->token))
            return plx_reply_problem(r, 403, "forbidden", "the Bearer token "
                                     "does not match metrics.token");
    }
    metrics_buf_init(&b, METRICS_OUTPUT_MAX);
    metrics_collect_write(&b);
    metrics_registry_write(&b);
    if (b.failed || !b.data) {
        metrics_buf_free(&b);
        plx_rlog(set->self, r, PLX_LOG_ERROR, "metrics exposition failed: out of "
                 "memory or over %zu bytes", METRICS_OUTPUT_MAX);
        return plx_reply_problem(r, 500, "internal", "the metrics could not "
                                 "be written");
    }
    /* the core frees the text once it is sent */
    return plx_reply(r, 200, METRICS_CONTENT_TYPE, b.data, b.len, free);
}

/* request.begin, ahead of the core's authentication (only with a token) */
plx_status_t metrics_scrape_early(plx_request_t *r, void *data, void *arg)
{
    const char *path = plx_request_path(r);
    const char *method = plx_request_method(r);

    if (!path || strcmp(path, METRICS_PATH) != 0 || !method
        || (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0))
        return PLX_DECLINED;
    return metrics_scrape(r, arg);
}
