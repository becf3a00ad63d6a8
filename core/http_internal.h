/*
 * http_internal.h - what http.c, http_request.c, sse.c and ws.c share
 *
 * The bodies of the opaque request, stream and socket types, the settings
 * read once at start, and the small registry that lets the heartbeat and
 * shutdown reach every open stream or socket. The only header besides the
 * .c files of this layer that includes civetweb.h; nothing else may include
 * this one.
 */
#ifndef PLEXUS_HTTP_INTERNAL_H
#define PLEXUS_HTTP_INTERNAL_H

#include "http.h"

#include <civetweb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define HTTP_REQUEST_ID_MAX    128   /* accepted X-Request-ID length */
#define HTTP_MAX_RESP_HEADERS  32    /* headers a handler or hook may add */
#define HTTP_MAX_HEADER_VALUE  8192
#define HTTP_MAX_NOTES         64
#define HTTP_MAX_SCOPES        64
#define HTTP_MAX_DETAIL        512   /* problem detail, bytes */
#define HTTP_ARENA_CAP         ((size_t)64 * 1024 * 1024)  /* plus max_body */

/* [server] settings, read once by core_http_start; read-only afterwards */
typedef struct http_settings {
    size_t max_body;
    int    max_json_depth;
    long   max_json_elements;
    bool   access_log;
    bool   tls;
    long   sse_heartbeat_ms;
    char  *cors_origins;   /* the configured comma list, NULL when empty */
    /* "<public_url>/problems/" when [server] public_url is set: problem
     * types then name a URI the operator controls; NULL: "about:blank" */
    char  *problem_base;
} http_settings_t;

extern http_settings_t http_settings;

/* ---- registry of long-lived streams and sockets ----------------------- */

/* Intrusive: the first member of plx_sse and plx_ws. A node is pinned
 * (refs > 0) while another thread writes to it outside the registry lock;
 * removal waits until it is unpinned, so the owner may free it after. */
typedef struct http_reg_node {
    struct http_reg_node *prev, *next;
    unsigned refs;
} http_reg_node_t;

typedef struct http_reg {
    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    http_reg_node_t *head;
    size_t           count;
} http_reg_t;

#define HTTP_REG_INIT { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0 }

void http_reg_add(http_reg_t *reg, http_reg_node_t *n);
void http_reg_remove(http_reg_t *reg, http_reg_node_t *n);
/* Pin every node; *out is a malloc'd array (NULL when empty). */
size_t http_reg_pin_all(http_reg_t *reg, http_reg_node_t ***out);
void http_reg_unpin(http_reg_t *reg, http_reg_node_t **nodes, size_t n);
size_t http_reg_count(http_reg_t *reg);

/* ---- the request ------------------------------------------------------- */

typedef struct http_arena_block http_arena_block_t;
typedef struct http_cleanup http_cleanup_t;
typedef struct http_note http_note_t;

typedef struct http_header {
    const char *name;
    const char *value;
} http_header_t;

struct plx_request {
    /* NULL once a WebSocket handshake is done: CivetWeb reuses the buffer
     * the request headers lived in for frames */
    struct mg_connection *conn;
    const struct mg_request_info *ri;

    char        id[HTTP_REQUEST_ID_MAX + 1];
    const char *method;            /* arena copies: valid for r's life */
    const char *path;              /* as sent (still percent-encoded), no query */
    char        remote[48];
    double      t_start;
    bool        head;              /* HEAD: headers only */

    core_route_match_t match;      /* route and decoded params */

    /* arena and what hangs off it */
    http_arena_block_t *blocks;
    size_t              arena_used;
    http_cleanup_t     *cleanups;  /* newest first: run in reverse order */
    http_note_t        *notes;
    size_t              nnotes;

    bool             has_principal;
    core_principal_t principal;    /* scopes copied into the arena */

    bool         body_done;
    plx_status_t body_status;
    char        *body;
    size_t       body_len;
    json_t      *json;             /* parsed body, released at the end */

    /* response */
    http_header_t headers[HTTP_MAX_RESP_HEADERS];
    size_t        nheaders;
    const char   *origin;          /* an allowed CORS origin, or NULL */
    const char   *err_code;        /* set by core_error_set */
    const char   *err_detail;
    bool          replied;
    bool          raw_head;        /* write the status line by hand (WebSocket refusals) */
    bool          no_keep_alive;
    int           status;
    uint64_t      bytes_sent;

    plx_sse_t *sse;
    plx_ws_t  *ws;
};

/* ---- streams and sockets ---------------------------------------------- */

struct plx_sse {
    http_reg_node_t node;     /* first */
    plx_request_t  *r;
    pthread_mutex_t mu;       /* serialises writers: producer, heartbeat, shutdown */
    bool            closed;   /* producers should stop: client gone or shutdown */
    bool            dead;     /* a write failed: nothing more is written */
    double          last_write;
};

struct plx_ws {
    http_reg_node_t       node;      /* first */
    struct mg_connection *conn;
    plx_request_t        *r;         /* the upgrade request: id and params */
    const core_route_t   *route;
    void                 *data;      /* the module's per-connection state */
    char                 *frag;      /* a fragmented message being reassembled */
    size_t                frag_len;
    int                   frag_opcode;
    atomic_bool           closing;   /* a close frame went out */
    atomic_bool           gone;      /* a write failed */
};

/* ---- http.c -------------------------------------------------------------- */

/* Route, run request.begin and enforce the route's auth. For "WS" the
 * match is against WebSocket routes. true: call the route; false: the
 * request has been answered. */
bool http_request_prepare(plx_request_t *r, const char *match_method);
/* request.end hook and the access-log line */
void http_request_finish(plx_request_t *r);

/* ---- http_request.c ------------------------------------------------------ */

plx_request_t *http_request_new(struct mg_connection *conn);
void http_request_free(plx_request_t *r);

/* Send the status line and headers: the handler's, the core's (request id,
 * security, CORS, caching) and extra. content_length < 0 means chunked.
 * Marks the request answered. false when the client is gone. */
bool http_send_head(plx_request_t *r, int status, const char *type,
                    long long content_length, const http_header_t *extra,
                    size_t nextra);
/* Write body bytes; with chunked set, as one chunk (len 0: the last one). */
bool http_write(plx_request_t *r, const void *buf, size_t len);
bool http_write_chunk(plx_request_t *r, const void *buf, size_t len);

/* problem+json with extra headers; detail is plain text */
plx_status_t http_reply_problem(plx_request_t *r, int status, const char *code,
                                const http_header_t *extra, size_t nextra,
                                const char *detail);
/* answer for a status a handler or hook returned without answering */
plx_status_t http_reply_status(plx_request_t *r, plx_status_t st);
bool http_response_has_header(const plx_request_t *r, const char *name);
/* a JSON string of s, with bytes that are not valid UTF-8 replaced by '?' */
json_t *http_json_text(const char *s);

/* ---- sse.c / ws.c -------------------------------------------------------- */

void http_sse_end(plx_sse_t *s);       /* when the handler returned */
bool http_sse_start(void);             /* heartbeat thread */
void http_sse_shutdown(void);          /* final event, closed, heartbeat stopped */

void http_ws_register(struct mg_context *ctx);
void http_ws_shutdown(void);           /* close every socket with 1001 */

#endif
