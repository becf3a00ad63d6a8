/*
 * http.h - the HTTP engine behind the opaque plx_request_t
 *
 * CivetWeb accepts connections and runs each on a worker thread; this layer
 * builds a plx_request_t per request (with its own arena and cleanups),
 * routes it, runs the request.begin/request.end hooks, answers errors as
 * problem+json, adds the request id, security and CORS headers, and writes
 * one JSON access-log line. Nothing outside http*.c, sse.c and ws.c may
 * include civetweb.h.
 */
#ifndef PLEXUS_HTTP_H
#define PLEXUS_HTTP_H

#include "conf.h"
#include "router.h"

#include <stdio.h>

/* Register a route owned by m (core routes use core_module_self()).
 * A duplicate is a startup error naming both owners. */
plx_status_t core_route_add(plx_module_t *m, const char *method,
                            const char *pattern, plx_handler_fn fn, void *arg,
                            const plx_route_opts_t *opts);
plx_status_t core_ws_route_add(plx_module_t *m, const char *pattern,
                               const plx_ws_handlers_t *h, void *arg,
                               const plx_route_opts_t *opts);
/* a module's whole table (ABI 1.4): rows of elem_size bytes */
plx_status_t core_routes_add(plx_module_t *m, const plx_route_def_t *defs,
                             size_t n, size_t elem_size, void *arg);
const core_router_t *core_routes(void);
/* every registered route as a JSON array (plexusd routes): method,
 * pattern, module, auth, scope, rate_class, summary */
bool core_routes_dump(FILE *out);
/* free every registered route (teardown, tests) */
void core_routes_free(void);

/* Start listening with [server] settings; false (logged) if it cannot. */
bool core_http_start(core_config_t *cfg);
/* Stop accepting, let requests finish up to grace_ms, end SSE streams with
 * a final event and close WebSockets with 1001, then stop the engine. */
void core_http_stop(long grace_ms);
/* true once core_http_stop has begun */
bool core_http_stopping(void);
/* HTTP requests being handled right now (WebSocket connections not included) */
size_t core_http_in_flight(void);

/* Set by identity (later) through request.begin hooks: who is calling. The
 * router enforces plx_route_opts.auth against it before the handler runs. */
typedef struct core_principal {
    char user_id[37];
    bool admin;
    bool api_key;               /* authenticated by an API key, not a session */
    char session_id[37];        /* the session of an access token, else "" */
    char key_id[37];            /* the API key's id, else "" */
    const char *const *scopes;  /* NULL: all scopes of the user */
} core_principal_t;
void core_request_principal_set(plx_request_t *r, const core_principal_t *p);
/* NULL when anonymous; borrowed for the request */
const core_principal_t *core_request_principal(plx_request_t *r);
const char *core_request_user_id(plx_request_t *r);
int core_request_is_admin(plx_request_t *r);
int core_request_has_scope(plx_request_t *r, const char *scope);
/* The matched route's rate-limit class ("default" when the route set none),
 * for the rate-limit hook; NULL when no route matched. Borrowed: the route
 * table lives for the process. */
const char *core_request_rate_class(plx_request_t *r);

/* request API behind the table (http_request.c) */
const char *core_request_method(plx_request_t *r);
const char *core_request_path(plx_request_t *r);
const char *core_request_param(plx_request_t *r, const char *name);
const char *core_request_query(plx_request_t *r, const char *name);
const char *core_request_header(plx_request_t *r, const char *name);
const char *core_request_id(plx_request_t *r);
const char *core_request_remote_addr(plx_request_t *r);
plx_status_t core_request_body(plx_request_t *r, const char **body, size_t *len);
plx_status_t core_request_json(plx_request_t *r, json_t **out);
/* 1.4: the body as one JSON object within the same bounds; 400
 * invalid_body or 413 answered on failure */
plx_status_t core_request_body_object(plx_request_t *r, json_t **out);
void *core_request_note_get(plx_request_t *r, const char *key);
void core_request_note_set(plx_request_t *r, const char *key, void *value);
void *core_palloc(plx_request_t *r, size_t n);
char *core_pstrdup(plx_request_t *r, const char *s);
plx_status_t core_request_cleanup_add(plx_request_t *r, plx_cleanup_fn fn,
                                      void *arg);
void core_response_header(plx_request_t *r, const char *name, const char *value);
plx_status_t core_reply(plx_request_t *r, int status, const char *type,
                        const void *body, size_t len, plx_free_fn mem);
plx_status_t core_reply_json(plx_request_t *r, int status, json_t *body);
plx_status_t core_reply_problemv(plx_request_t *r, int status, const char *code,
                                 const char *fmt, va_list ap);
plx_status_t core_reply_problem(plx_request_t *r, int status, const char *code,
                                const char *fmt, ...) PLX_PRINTF(4, 5);
void core_error_set(plx_request_t *r, const char *code, const char *detail);
/* problem details as an object to extend (ABI 1.4); r may be NULL */
json_t *core_problem_new(plx_request_t *r, int status, const char *code,
                         const char *detail);
/* answer with a problem object; steals problem (ABI 1.4) */
plx_status_t core_reply_problem_json(plx_request_t *r, int status,
                                     json_t *problem);
/* errors under a path prefix in a module's shape (ABI 1.3); init only */
plx_status_t core_error_format_add(plx_module_t *m, const char *path_prefix,
                                   plx_error_format_fn fn, void *arg);

/* SSE (sse.c) */
plx_sse_t *core_sse_begin(plx_request_t *r);
plx_status_t core_sse_send(plx_sse_t *s, const char *event, const char *data,
                           size_t len);
int core_sse_closed(plx_sse_t *s);
plx_status_t core_sse_comment(plx_sse_t *s, const char *text);
size_t core_sse_open_count(void);

/* WebSocket (ws.c) */
plx_status_t core_ws_send(plx_ws_t *ws, int text, const void *data, size_t len);
void core_ws_close(plx_ws_t *ws, int code, const char *reason);
void core_ws_set_data(plx_ws_t *ws, void *data);
void *core_ws_get_data(plx_ws_t *ws);
const char *core_ws_param(plx_ws_t *ws, const char *name);
size_t core_ws_open_count(void);
/* Credentials end (logout, a revoked session or key, a disabled user): a
 * socket opened with one must not outlive it. judge sees the principals
 * of all open sockets at once (so one query can decide) and sets
 * ended[i]; each ended socket is closed with 1008. Returns how many were
 * closed. */
typedef bool (*core_ws_judge_fn)(const core_principal_t *const *ps, size_t n,
                                 bool *ended, void *arg);
size_t core_ws_close_ended(core_ws_judge_fn judge, void *arg);

/* JSON body parsing with bounds (json.c): depth counted over [ and {,
 * elements over [, {, ',' and ':' (one per value and per key), outside
 * strings. PLX_ERR_INVALID (too deep, malformed) or PLX_ERR_TOO_LARGE (too
 * many elements) with a detail in err[160]. */
plx_status_t core_json_parse(const char *body, size_t len, int max_depth,
                             long max_elements, json_t **out, char err[160]);

#endif
