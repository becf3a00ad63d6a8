/*
 * plexus/module.h - the Plexus plugin API (ABI 1)
 *
 * This is the only header a module needs. A module is a shared object that
 * exports one symbol, plx_module_info(), defined by PLX_MODULE() below. It
 * links against nothing of the core: the core hands it a table of function
 * pointers (plx_api_t) before init, and the static inline wrappers at the end
 * of this file turn every entry into a plain call, plx_route_add(...) and so on.
 *
 * Versioning. PLX_ABI_MAJOR changes when anything incompatible changes; every
 * module must then be rebuilt and the core refuses the old ones. PLX_ABI_MINOR
 * changes when entries are appended to plx_api_t or fields to a struct that
 * starts with its size. A module built for minor N runs on a core of minor
 * >= N. A core refuses a module whose abi_minor_required (1.4; when zero,
 * its abi_minor) is newer than its own minor: a module that wants to run
 * on older cores sets abi_minor_required to the oldest it supports and
 * tests every newer entry with PLX_API_HAS() before calling it.
 *
 * Change log (append only):
 *   1.0  first release
 *   1.1  request_user_id, request_is_admin, request_has_scope, team_role,
 *        audit, core_stats
 *   1.2  module_at (plx_module_view_t)
 *   1.3  sse_comment, error_format_add (plx_error_format_fn)
 *   1.4  encodings (base64, hex, UUID, UTF-8), request input (body object,
 *        field readers, pages and cursors), db_tx, db_listen, db_notify,
 *        routes_add, rate_class_add, the outbound HTTP client, secret
 *        seal and unseal, mem_free, request_multipart, event_emit_tx,
 *        event_subscribe_durable, job_lease_renew, job_recurring_add;
 *        problem_new, reply_problem_json;
 *        plx_job_opts_t.conn and .unique_key;
 *        plx_module_info_t.abi_minor_required
 *
 * JSON values are jansson's json_t: modules link jansson themselves
 * (pkg-config plexus pulls it in), and the process has exactly one copy.
 * Reference rules follow jansson: a parameter documented "steals" takes the
 * caller's reference, "borrowed" means the caller keeps it.
 *
 * Threads: route handlers, hooks and WebSocket callbacks run on HTTP worker
 * threads, job handlers on job worker threads, event subscribers on the
 * emitting thread. Everything registered in init is read-only afterwards.
 */
#ifndef PLEXUS_MODULE_H
#define PLEXUS_MODULE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PLX_ABI_MAJOR 1
#define PLX_ABI_MINOR 4

/* "PLX1": is this a Plexus module at all */
#define PLX_MODULE_MAGIC 0x504c5831u

#if defined(__GNUC__)
#define PLX_WUR __attribute__((warn_unused_result))
#define PLX_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PLX_EXPORT __attribute__((visibility("default")))
#define PLX_HIDDEN __attribute__((visibility("hidden")))
#else
#define PLX_WUR
#define PLX_PRINTF(f, a)
#define PLX_EXPORT
#define PLX_HIDDEN
#endif

/* ------------------------------------------------------------------------
 * Status: what the caller should do next. Append only; never renumber.
 * The HTTP status lives in the response, not here.
 */
typedef enum plx_status {
    PLX_OK = 0,
    PLX_DECLINED,          /* not mine: try the next handler or hook */
    PLX_AGAIN,             /* would block or busy: try again later */
    PLX_ERR_NOMEM,
    PLX_ERR_INVALID,       /* bad input from the caller or the client (400) */
    PLX_ERR_AUTH,          /* who are you? (401) */
    PLX_ERR_FORBIDDEN,     /* you may not (403) */
    PLX_ERR_NOT_FOUND,     /* (404), also for another tenant's data */
    PLX_ERR_CONFLICT,      /* (409) */
    PLX_ERR_TOO_LARGE,     /* a bound was exceeded (413) */
    PLX_ERR_LIMIT,         /* rate limit or quota (429) */
    PLX_ERR_DB,            /* the database failed or is away (503) */
    PLX_ERR_UPSTREAM,      /* an outbound HTTP call or provider failed (502) */
    PLX_ERR_TIMEOUT,       /* an outbound call ran out of time (504) */
    PLX_ERR_GONE,          /* the peer closed the stream or socket */
    PLX_ERR_UNAVAILABLE,   /* shutting down or not ready (503) */
    PLX_ERR_INTERNAL       /* a bug or an impossible state (500) */
    /* append only: modules compiled today must mean the same thing tomorrow */
} plx_status_t;

typedef enum plx_log_level {
    PLX_LOG_DEBUG = 0,
    PLX_LOG_INFO,
    PLX_LOG_WARN,
    PLX_LOG_ERROR
} plx_log_level_t;

/* ------------------------------------------------------------------------
 * Opaque types. Their bodies live in the core and may change freely.
 */
typedef struct plx_module   plx_module_t;    /* a loaded module (process lifetime) */
typedef struct plx_request  plx_request_t;   /* one HTTP request (request lifetime) */
typedef struct plx_sse      plx_sse_t;       /* a Server-Sent Events stream on a request */
typedef struct plx_ws       plx_ws_t;        /* one WebSocket connection */
typedef struct plx_job      plx_job_t;       /* one claimed job, during its handler */
typedef struct plx_db_conn  plx_db_conn_t;   /* a pooled PostgreSQL connection */
typedef struct plx_db_res   plx_db_res_t;    /* a query result */

typedef struct plx_api plx_api_t;

/* ------------------------------------------------------------------------
 * Routes
 */
typedef enum plx_auth {
    PLX_AUTH_PUBLIC = 0,   /* anyone */
    PLX_AUTH_USER,         /* an authenticated principal (token or API key) */
    PLX_AUTH_ADMIN,        /* a principal with the global admin role */
    PLX_AUTH_SCOPE         /* a principal whose grant includes .scope */
} plx_auth_t;

typedef struct plx_route_opts {
    uint32_t    size;        /* sizeof(plx_route_opts_t) at build time */
    plx_auth_t  auth;
    const char *scope;       /* with PLX_AUTH_SCOPE, e.g. "projects:write" */
    const char *rate_class;  /* rate-limit class: the core's "default" and
                              * "auth", or one a module registered with
                              * plx_rate_class_add(); NULL means "default",
                              * "none" exempts the route (health, metrics) */
    const char *summary;     /* OpenAPI summary */
    const char *tag;         /* OpenAPI tag; NULL means the module's name */
} plx_route_opts_t;

#define PLX_ROUTE_OPTS(...) \
    (&(const plx_route_opts_t){ .size = sizeof(plx_route_opts_t), __VA_ARGS__ })

/* A route handler. It answers through the reply functions and returns
 * PLX_OK. If it returns an error status without having answered, the core
 * answers with the matching problem+json (the detail set by plx_error_set(),
 * if any). */
typedef plx_status_t (*plx_handler_fn)(plx_request_t *r, void *arg);

/* WebSocket routes. connect runs on the upgrade request and may refuse it by
 * returning an error status; the others run on the connection's thread.
 * Per-connection state goes in plx_ws_set_data(). */
typedef struct plx_ws_handlers {
    uint32_t size;    /* sizeof(plx_ws_handlers_t) at build time */
    plx_status_t (*connect)(plx_ws_t *ws, plx_request_t *r, void *arg);
    void (*ready)(plx_ws_t *ws, void *arg);
    /* text is 1 for a text frame (valid UTF-8, checked by the core), 0 for
     * binary. Return PLX_OK to go on; anything else closes with 1011 unless
     * plx_ws_close() was called. data is borrowed for the call. */
    plx_status_t (*message)(plx_ws_t *ws, int text, const char *data,
                            size_t len, void *arg);
    void (*close)(plx_ws_t *ws, void *arg);
} plx_ws_handlers_t;

/* ------------------------------------------------------------------------
 * Hooks. A hook point is a name; request.begin and request.end are the
 * core's, modules declare their own ("ai.chat.before") and document the
 * struct passed as data. Run rule: hooks run in order; PLX_OK and
 * PLX_DECLINED go on, any other status stops the run and is returned. For
 * request.begin a hook that has answered the request (plx_reply_*) ends it.
 */
#define PLX_HOOK_REQUEST_BEGIN "request.begin"
#define PLX_HOOK_REQUEST_END   "request.end"

#define PLX_HOOK_REALLY_FIRST (-10)
#define PLX_HOOK_FIRST        0
#define PLX_HOOK_MIDDLE       10
#define PLX_HOOK_LAST         20
#define PLX_HOOK_REALLY_LAST  30

typedef struct plx_hook_order {
    uint32_t           size;      /* sizeof(plx_hook_order_t) */
    int                position;  /* PLX_HOOK_FIRST ... PLX_HOOK_LAST */
    const char *const *before;    /* NULL-terminated module names, or NULL */
    const char *const *after;     /* NULL-terminated module names, or NULL */
} plx_hook_order_t;

/* r may be NULL for hooks that are not about a request. */
typedef plx_status_t (*plx_hook_fn)(plx_request_t *r, void *data, void *arg);

/* data passed to request.end hooks */
typedef struct plx_request_end {
    uint32_t    size;
    int         status;        /* HTTP status sent */
    double      seconds;       /* time from the first byte to the last */
    const char *method;
    const char *route;         /* the route pattern, or NULL when none matched */
    uint64_t    bytes_sent;
} plx_request_end_t;

/* ------------------------------------------------------------------------
 * Events: fire-and-forget, in-process, on the emitting thread. A subscriber
 * that must not lose an event enqueues a job from its callback.
 */
typedef void (*plx_event_fn)(const char *topic, json_t *payload, void *arg);

/* ------------------------------------------------------------------------
 * Jobs: durable, in PostgreSQL, at-least-once. A handler returns PLX_OK
 * (done), PLX_AGAIN or an error (retried with exponential backoff until
 * max_attempts, then dead with its last error).
 */
typedef plx_status_t (*plx_job_fn)(plx_job_t *job, void *arg);

typedef struct plx_job_opts {
    uint32_t size;           /* sizeof(plx_job_opts_t) */
    int      delay_seconds;  /* run no earlier than now + delay */
    int      max_attempts;   /* 0: the server's default */
    /* 1.4: enqueue inside the transaction on conn (from plx_db_tx): the
     * job exists only if it commits. NULL: a statement of its own. */
    plx_db_conn_t *conn;
    /* 1.4: at most one job with this key per handler, ever: a second
     * enqueue with the same key is PLX_ERR_CONFLICT and adds nothing, and
     * id_out then holds the first one's id. At most 200 bytes. */
    const char    *unique_key;
} plx_job_opts_t;

/* ------------------------------------------------------------------------
 * Memory handed to the core
 */
typedef void (*plx_free_fn)(void *);
#define PLX_MEM_STATIC ((plx_free_fn)0)   /* lives at least as long as the request */
#define PLX_MEM_COPY   ((plx_free_fn)-1)  /* the core copies it now */

typedef void (*plx_cleanup_fn)(void *arg);

/* Error bodies (1.3). Under a path prefix a module serves a protocol of
 * its own (the OpenAI-compatible /v1/), every error the core answers there
 * (401 from authentication, 404, 405, 413, 429, 503) is given this shape
 * instead of problem+json: the function returns the body (a new
 * reference; NULL keeps problem+json), sent as application/json with the
 * same status and headers. Any thread; it must not block. */
typedef json_t *(*plx_error_format_fn)(plx_request_t *r, int status,
                                       const char *code, const char *detail,
                                       void *arg);

/* ------------------------------------------------------------------------
 * Identity (1.1): a caller's role in a team, ordered so that a comparison
 * reads as "at least": role >= PLX_ROLE_MEMBER.
 */
typedef enum plx_role {
    PLX_ROLE_NONE = 0,     /* not a member: answer 404, not 403 */
    PLX_ROLE_VIEWER,
    PLX_ROLE_MEMBER,
    PLX_ROLE_ADMIN,
    PLX_ROLE_OWNER
} plx_role_t;

/* Core counters (1.1), for the metrics module. Filled by core_stats. */
typedef struct plx_core_stats {
    uint32_t size;                 /* set by the caller: sizeof at build time */
    double   start_time;           /* process start, unix seconds */
    uint64_t requests_in_flight;
    uint64_t sse_open;
    uint64_t ws_open;
    int      db_pool_size;         /* configured maximum */
    int      db_pool_open;
    int      db_pool_in_use;
    uint64_t db_acquired;          /* successful acquisitions since start */
    uint64_t db_acquire_timeouts;
    double   db_wait_seconds;      /* total time spent waiting to acquire */
    uint64_t jobs_done;            /* outcomes in this process since start */
    uint64_t jobs_retried;
    uint64_t jobs_dead;
    int64_t  jobs_queued;          /* all instances; -1 when the database is away */
    int64_t  jobs_running;
} plx_core_stats_t;

/* One loaded module as module_at (1.2) describes it, for the metrics
 * module's plexus_module_info and for admin surfaces. */
typedef struct plx_module_view {
    uint32_t    size;          /* set by the caller: sizeof at build time */
    const char *name;          /* borrowed for the process lifetime */
    const char *version;
    const char *description;   /* NULL when the module gave none */
    uint16_t    abi_major;     /* the ABI the module was built against */
    uint16_t    abi_minor;
} plx_module_view_t;

/* ========================================================================
 * ABI 1.4 types. Every struct handed across starts with its size.
 */

/* Encodings (1.4). PLX_B64_STD is RFC 4648 section 4 with padding;
 * PLX_B64_URL is section 5 without padding. Decoding is strict: no
 * whitespace, no characters outside the alphabet, no stray bits. */
typedef enum plx_b64 {
    PLX_B64_STD = 0,
    PLX_B64_URL = 1
} plx_b64_t;
/* room for the encoding of n bytes, with its NUL */
#define PLX_B64_LEN(n) ((((size_t)(n) + 2) / 3) * 4 + 1)
#define PLX_HEX_LEN(n) ((size_t)(n) * 2 + 1)

/* Request input (1.4): flags of the field readers */
#define PLX_FIELD_OPTIONAL 0u
#define PLX_FIELD_REQUIRED 1u   /* absent: 400 naming the field */
#define PLX_FIELD_NULLABLE 2u   /* JSON null allowed: PLX_OK with *out NULL
                                 * (pointer outputs only) */

/* Pagination (1.4). A cursor is opaque to clients: base64url of the list's
 * tag, the sort key of the last row and its id. The key's kind is checked
 * when the cursor is read, so what reaches SQL always casts. */
typedef enum plx_key_kind {
    PLX_KEY_TIME = 0,   /* RFC 3339 date-time, years 0001 to 9999 */
    PLX_KEY_INT,        /* a signed 64-bit decimal integer */
    PLX_KEY_TEXT,       /* valid UTF-8, at most 256 bytes, no NUL */
    PLX_KEY_NONE        /* the id alone orders the list */
} plx_key_kind_t;

typedef struct plx_page {
    uint32_t    size;      /* set by the caller: sizeof(plx_page_t) */
    int         limit;     /* 1 .. max_limit */
    const char *key;       /* the last row's sort key; NULL on the first page */
    const char *id;        /* the last row's id (a UUID); NULL on the first page */
} plx_page_t;

/* Database transactions (1.4). fn runs between BEGIN and COMMIT on c; it
 * may run more than once (see db_tx), so it must not have effects outside
 * the database before it returns. */
typedef plx_status_t (*plx_tx_fn)(plx_db_conn_t *c, void *arg);

typedef enum plx_isolation {
    PLX_TX_READ_COMMITTED = 0,
    PLX_TX_REPEATABLE_READ,
    PLX_TX_SERIALIZABLE
} plx_isolation_t;

/* LISTEN/NOTIFY (1.4). payload is NULL after the core's listening
 * connection was lost and re-made: notifications may have been missed,
 * catch up from the tables. Runs on the core's listener thread: no
 * blocking beyond a quick handoff. channel and payload are borrowed for
 * the call. */
typedef void (*plx_notify_fn)(const char *channel, const char *payload,
                              void *arg);

/* The SQL expression rendering a timestamptz column as RFC 3339 UTC with
 * milliseconds: "2026-12-08T00:50:35.123Z". col is a SQL expression. */
#define PLX_SQL_RFC3339(col) \
    "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
/* The sort key of a timestamptz column for a PLX_KEY_TIME cursor: RFC 3339
 * UTC to the microsecond, as exact as the column, so pages neither skip
 * nor repeat rows; compare it back as ($n::timestamptz). */
#define PLX_SQL_TIME_KEY(col) \
    "to_char((" col ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* Routes (1.4): one row of a module's route table, registered whole with
 * plx_routes_add(). auth and scope mean what plx_route_opts_t says. */
typedef struct plx_route_def {
    const char    *method;      /* "GET", "POST", ...; "WS" is not allowed here */
    const char    *pattern;     /* "/api/v1/things/{id}" */
    plx_handler_fn fn;
    plx_auth_t     auth;
    const char    *scope;       /* API-key scope the route needs, or NULL */
    const char    *rate_class;  /* NULL: "default" */
    const char    *summary;     /* OpenAPI summary */
    const char    *tag;         /* OpenAPI tag; NULL: the module's name */
} plx_route_def_t;

/* Outbound HTTP (1.4). Options; zero means the default given. */
typedef struct plx_http_opts {
    uint32_t    size;                  /* sizeof(plx_http_opts_t) */
    long        connect_timeout_ms;    /* 0: 5,000 */
    long        first_byte_timeout_ms; /* 0: 30,000; from the request sent
                                        * to the first byte of the answer */
    long        total_timeout_ms;      /* 0: 60,000 */
    size_t      max_response;          /* 0: 1 MiB; larger: PLX_ERR_TOO_LARGE */
    int         max_redirects;         /* 0: a 3xx is returned as it is */
    /* polled at least every 100 ms; nonzero abandons the call with
     * PLX_ERR_GONE */
    int        (*cancelled)(void *arg);
    void       *cancel_arg;
    /* streaming: when set, body bytes go here as they arrive instead of
     * into the response (max_response still bounds the total). Return
     * nonzero to stop the transfer (PLX_ERR_GONE). */
    int        (*on_data)(const char *data, size_t len, void *arg);
    void       *data_arg;
} plx_http_opts_t;

typedef struct plx_http_resp plx_http_resp_t;   /* opaque, owned by the caller */

/* multipart/form-data (1.4), RFC 7578. The callbacks see each part as it
 * streams in; nothing is held whole in memory. */
typedef struct plx_part {
    uint32_t    size;
    const char *name;          /* the form field name */
    const char *filename;      /* NULL for a plain field; as the client
                                * sent it (valid UTF-8, may hold "/" or
                                * ".."): never a path to use as is */
    const char *content_type;  /* "text/plain" when the part gave none */
} plx_part_t;

typedef struct plx_multipart {
    uint32_t size;             /* sizeof(plx_multipart_t) */
    size_t   max_parts;        /* 0: 16 */
    size_t   max_part_bytes;   /* 0: 10 MiB */
    size_t   max_total_bytes;  /* 0: 32 MiB; the whole body */
    size_t   max_header_bytes; /* 0: 8 KiB; one part's header block */
    /* a part begins: PLX_OK reads it, PLX_DECLINED skips its content,
     * anything else stops with that status. part is borrowed. */
    plx_status_t (*part_begin)(const plx_part_t *part, void *arg);
    /* a piece of the current part's content, borrowed for the call */
    plx_status_t (*part_data)(const char *data, size_t len, void *arg);
    /* the current part is complete */
    plx_status_t (*part_end)(void *arg);
} plx_multipart_t;

/* Durable event subscriptions (1.4): each event whose topic matches is
 * enqueued, once per subscription, as a job for handler (registered with
 * plx_job_handler_add). Its payload: {"id": event id, "topic", "payload",
 * "emitted_at"}. */

/* Recurring jobs (1.4): fn runs every every_seconds, on one instance at a
 * time across all instances on the database (only instances that run job
 * workers). Each run sees a plx_job_t with payload NULL, a new id and
 * attempt 1; a failure is logged and kept as the row's last error, not
 * retried: the next period runs as usual. Periods missed while no
 * instance ran are skipped, not made up. */

/* ------------------------------------------------------------------------
 * The API table. First field: its size in the running core. Entries are only
 * ever appended; test for newer ones with PLX_API_HAS(api, name).
 */
struct plx_api {
    uint32_t size;
    uint16_t abi_major;
    uint16_t abi_minor;
    const char *core_version;

    /* ABI 1.0 -------------------------------------------------------- */
    /* Each entry says since when it exists (@since), who owns what it takes
     * and returns, and on which threads it may be called. "Borrowed for X"
     * means valid until X ends and never freed by the caller; "new" means
     * the caller owns it and frees it as said. "init only": during the
     * module's init, before the server starts. */

    /* @since 1.0. One JSON log line with the module's name and, when r is
     * not NULL, the request id. Any thread. fmt and the arguments are
     * read during the call only. */
    void (*logv)(plx_module_t *m, plx_request_t *r, plx_log_level_t level,
                 const char *fmt, va_list ap);

    /* @since 1.0. The module's own section of its plugins.d file,
     * overridden by PLEXUS_<MODULE>_<KEY>; a key ending in _file names a
     * file whose content (trimmed) is the value. Borrowed for the process
     * lifetime; NULL when unset. Any thread. */
    const char *(*config_get)(plx_module_t *m, const char *key);
    /* @since 1.0. The core's own settings: section and key of plexus.conf.
     * Borrowed for the process lifetime; NULL when unset. Any thread. */
    const char *(*config_core_get)(const char *section, const char *key);

    /* @since 1.0. Routes, init only. Strings in opts and pattern are
     * copied; fn and arg must live for the process. */
    plx_status_t (*route_add)(plx_module_t *m, const char *method,
                              const char *pattern, plx_handler_fn fn,
                              void *arg, const plx_route_opts_t *opts);
    /* @since 1.0. init only; h must live for the process (a static). */
    plx_status_t (*ws_route_add)(plx_module_t *m, const char *pattern,
                                 const plx_ws_handlers_t *h, void *arg,
                                 const plx_route_opts_t *opts);

    /* @since 1.0. Hooks: hook_add in init only (name and order copied);
     * hook_run from any thread, data borrowed for the call and passed to
     * each hook as it is. */
    plx_status_t (*hook_add)(plx_module_t *m, const char *name, plx_hook_fn fn,
                             void *arg, const plx_hook_order_t *order);
    plx_status_t (*hook_run)(const char *name, plx_request_t *r, void *data);
    /* @since 1.0. init only; topic copied. The subscriber's payload is
     * borrowed for the call (json_incref to keep it). */
    plx_status_t (*event_subscribe)(plx_module_t *m, const char *topic,
                                    plx_event_fn fn, void *arg);
    /* @since 1.0. Any thread; payload borrowed (the emitter keeps and
     * releases its reference). */
    void (*event_emit)(const char *topic, json_t *payload);
    /* @since 1.0. init only; table must live for the process (a static);
     * name copied. */
    plx_status_t (*service_register)(plx_module_t *m, const char *name,
                                     unsigned version, const void *table);
    /* @since 1.0. Any thread after init; the table is borrowed for the
     * process lifetime; NULL when no module offers name at that version. */
    const void *(*service_get)(const char *name, unsigned version);

    /* @since 1.0. Jobs: job_handler_add in init only (name copied). */
    plx_status_t (*job_handler_add)(plx_module_t *m, const char *name,
                                    plx_job_fn fn, void *arg);
    /* @since 1.0. Any thread. payload borrowed (serialised during the
     * call); id_out (37 bytes) may be NULL. */
    plx_status_t (*job_enqueue)(plx_module_t *m, const char *handler,
                                json_t *payload, const plx_job_opts_t *opts,
                                char id_out[37]);
    /* @since 1.0. In the job's handler only. The payload and the id are
     * borrowed for the handler's run: never json_decref the payload (take
     * json_incref to keep it). */
    json_t *(*job_payload)(plx_job_t *job);
    const char *(*job_id)(plx_job_t *job);
    /* @since 1.0. 1 on the first run. */
    int (*job_attempt)(plx_job_t *job);
    /* @since 1.0. The error recorded if the handler fails; copied. */
    void (*job_error_set)(plx_job_t *job, const char *message);

    /* @since 1.0. init only: a folder of NNNN_name.sql files for this
     * module's schema; the path is copied. */
    plx_status_t (*migrations_add)(plx_module_t *m, const char *dir);

    /* @since 1.0. The request, on the thread that runs its handler (or
     * its hooks). Everything returned is borrowed for the request's life;
     * NULL when absent. request_param is a path {param}, percent-decoded;
     * request_query a query parameter, percent-decoded (the first when
     * repeated); request_header is case-insensitive. */
    const char *(*request_method)(plx_request_t *r);
    const char *(*request_path)(plx_request_t *r);
    const char *(*request_param)(plx_request_t *r, const char *name);
    const char *(*request_query)(plx_request_t *r, const char *name);
    const char *(*request_header)(plx_request_t *r, const char *name);
    const char *(*request_id)(plx_request_t *r);
    const char *(*request_remote_addr)(plx_request_t *r);
    /* @since 1.0. The whole body within [server] max_body; *body borrowed
     * for the request (NUL-terminated, may hold NULs before len). */
    plx_status_t (*request_body)(plx_request_t *r, const char **body,
                                 size_t *len);
    /* @since 1.0. See plx_request_json(): *out is borrowed for the request
     * (released when it ends); never json_decref it. */
    plx_status_t (*request_json)(plx_request_t *r, json_t **out);
    /* @since 1.0. Per-request notes between hooks and handlers: key copied,
     * value borrowed (its owner frees it, e.g. with request_cleanup_add). */
    void *(*request_note_get)(plx_request_t *r, const char *key);
    void (*request_note_set)(plx_request_t *r, const char *key, void *value);
    /* @since 1.0. Memory in the request's arena, freed when it ends; NULL
     * past the arena's bound. Never free() it. */
    void *(*palloc)(plx_request_t *r, size_t n);
    char *(*pstrdup)(plx_request_t *r, const char *s);
    /* @since 1.0. fn(arg) runs when the request ends, in reverse order of
     * registration. */
    plx_status_t (*request_cleanup_add)(plx_request_t *r, plx_cleanup_fn fn,
                                        void *arg);

    /* @since 1.0. Response, on the handler's thread: name and value copied. */
    void (*response_header)(plx_request_t *r, const char *name,
                            const char *value);
    /* @since 1.0. body ownership is given by mem: PLX_MEM_STATIC (outlives
     * the request), PLX_MEM_COPY (copied now) or a function the core calls
     * to free it once sent (also on failure). */
    plx_status_t (*reply)(plx_request_t *r, int status, const char *type,
                          const void *body, size_t len, plx_free_fn mem);
    /* @since 1.0. Steals body (also on failure). */
    plx_status_t (*reply_json)(plx_request_t *r, int status, json_t *body);
    /* @since 1.0. problem+json with a stable code; the detail is formatted
     * now. */
    plx_status_t (*reply_problemv)(plx_request_t *r, int status,
                                   const char *code, const char *fmt,
                                   va_list ap);
    /* @since 1.0. The code and detail of the problem the core answers if
     * the handler returns an error unanswered; both copied. */
    void (*error_set)(plx_request_t *r, const char *code, const char *detail);

    /* @since 1.0. Server-Sent Events on a request: the stream is owned by
     * the request (no free) and ends when the handler returns. Writes are
     * serialised, so another thread may send while the handler waits for
     * it. event and data copied on send; event NULL sends an unnamed
     * event. PLX_ERR_GONE once the client has left. */
    plx_sse_t *(*sse_begin)(plx_request_t *r);
    plx_status_t (*sse_send)(plx_sse_t *s, const char *event,
                             const char *data, size_t len);
    int (*sse_closed)(plx_sse_t *s);

    /* @since 1.0. WebSocket: ws is owned by the core and valid until the
     * close callback returns. ws_send and ws_close may be called from any
     * thread (writes are serialised); data copied. ws_set_data stores a
     * pointer the module owns (free it in close). ws_param is borrowed for
     * the connection. */
    plx_status_t (*ws_send)(plx_ws_t *ws, int text, const void *data,
                            size_t len);
    void (*ws_close)(plx_ws_t *ws, int code, const char *reason);
    void (*ws_set_data)(plx_ws_t *ws, void *data);
    void *(*ws_get_data)(plx_ws_t *ws);
    const char *(*ws_param)(plx_ws_t *ws, const char *name);

    /* @since 1.0. PostgreSQL, any thread. Parameters are text (NULL for SQL
     * NULL), read during the call. db_query borrows a pooled connection
     * for one statement; its result is freed when the request ends (r may
     * be NULL: then the caller frees it with db_free). For transactions
     * prefer db_tx (1.4); db_acquire/db_release hand out a connection
     * (NULL when none came within timeout_ms), db_exec's result is always
     * the caller's to db_free. On PLX_ERR_CONFLICT (a constraint
     * violation) *out is set too, for db_error. Values, names, the
     * affected count and the error are borrowed from res until db_free.
     * 1.4: db_exec returns PLX_AGAIN on a serialization failure or
     * deadlock. */
    plx_status_t (*db_query)(plx_request_t *r, const char *sql, int nparams,
                             const char *const *params, plx_db_res_t **out);
    plx_db_conn_t *(*db_acquire)(int timeout_ms);
    void (*db_release)(plx_db_conn_t *c);
    plx_status_t (*db_exec)(plx_db_conn_t *c, const char *sql, int nparams,
                            const char *const *params, plx_db_res_t **out);
    int (*db_rows)(const plx_db_res_t *res);
    int (*db_cols)(const plx_db_res_t *res);
    const char *(*db_value)(const plx_db_res_t *res, int row, int col);
    int (*db_col)(const plx_db_res_t *res, const char *name);
    const char *(*db_affected)(const plx_db_res_t *res);
    const char *(*db_error)(const plx_db_res_t *res);
    void (*db_free)(plx_db_res_t *res);

    /* @since 1.0. A static string; any thread. */
    const char *(*status_str)(plx_status_t st);
    /* @since 1.0. Borrowed for the process lifetime. */
    const char *(*module_name)(plx_module_t *m);

    /* ABI 1.1 -------------------------------------------------------- */

    /* @since 1.1. The authenticated caller, on the request's thread: user
     * id borrowed for the request, NULL when anonymous. */
    const char *(*request_user_id)(plx_request_t *r);
    int (*request_is_admin)(plx_request_t *r);
    /* @since 1.1. 1 when the caller's grant covers scope (a user's own
     * token covers every scope; an API key only those it was given). */
    int (*request_has_scope)(plx_request_t *r, const char *scope);
    /* @since 1.1. The caller's role in team_id: PLX_ROLE_NONE when not a
     * member or the team does not exist (answer 404). PLX_ERR_DB when it
     * cannot tell. One query, on the request's thread. */
    plx_status_t (*team_role)(plx_request_t *r, const char *team_id,
                              plx_role_t *out);
    /* @since 1.1. Record a security-relevant action in the audit log;
     * everything borrowed for the call; details may be NULL. */
    void (*audit)(plx_request_t *r, const char *action,
                  const char *target_type, const char *target_id,
                  json_t *details);
    /* @since 1.1. out->size must be set by the caller; fields past it are
     * not written. Any thread. */
    void (*core_stats)(plx_core_stats_t *out);

    /* ABI 1.2 -------------------------------------------------------- */

    /* @since 1.2. The i-th loaded module, in dependency order (the core
     * itself is not one): PLX_OK with out filled up to out->size (strings
     * borrowed for the process), PLX_ERR_NOT_FOUND past the last. Any
     * thread, after init. */
    plx_status_t (*module_at)(size_t i, plx_module_view_t *out);

    /* ABI 1.3 -------------------------------------------------------- */

    /* @since 1.3. Write an SSE comment line (": text", then a blank line):
     * nothing for the client's parser, but a write, so a client that went
     * away is found by the next one. A producer waiting on slow upstream
     * work calls it every few hundred ms to learn of a disconnect within a
     * second. PLX_ERR_GONE once the stream is closed. text must not hold
     * CR or LF; NULL writes ":". Threads as sse_send. */
    plx_status_t (*sse_comment)(plx_sse_t *s, const char *text);
    /* @since 1.3. Errors under path_prefix ("/v1/") take fn's shape; init
     * only; one module per prefix; the prefix is copied. */
    plx_status_t (*error_format_add)(plx_module_t *m, const char *path_prefix,
                                     plx_error_format_fn fn, void *arg);

    /* ABI 1.4 -------------------------------------------------------- */
    /* Every entry below is @since 1.4. Everything is pure or thread-safe:
     * any thread, any time after init, unless it says "init only". */

    /* encodings. Encoders write a NUL-terminated string into out and
     * return its length, or (size_t)-1 when cap is too small (out is then
     * ""). Decoders return PLX_ERR_INVALID for malformed input and
     * PLX_ERR_TOO_LARGE when cap is too small; *out_len is the byte count. */
    size_t (*base64_encode)(plx_b64_t variant, const void *in, size_t len,
                            char *out, size_t cap);
    plx_status_t (*base64_decode)(plx_b64_t variant, const char *in,
                                  size_t len, void *out, size_t cap,
                                  size_t *out_len);
    size_t (*hex_encode)(const void *in, size_t len, char *out, size_t cap);
    plx_status_t (*hex_decode)(const char *in, size_t len, void *out,
                               size_t cap, size_t *out_len);
    /* 1 for the canonical form 8-4-4-4-12 (hex digits, either case) */
    int (*uuid_valid)(const char *s);
    plx_status_t (*uuid_parse)(const char *s, uint8_t out[16]);
    void (*uuid_format)(const uint8_t in[16], char out[37]);
    /* a new random UUID: version 4, or 7 (RFC 9562: time-ordered);
     * PLX_ERR_INTERNAL when the kernel gives no randomness */
    plx_status_t (*uuid_new)(int version, char out[37]);
    /* valid UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing
     * above U+10FFFF) with no NUL byte */
    int (*utf8_valid)(const char *s, size_t len);
    /* copy in to out, each invalid sequence (and NUL) replaced by U+FFFD,
     * cut at a character boundary to fit cap; returns the length written */
    size_t (*utf8_repair)(const char *in, size_t len, char *out, size_t cap);
    /* characters in valid UTF-8; -1 when s is not valid */
    long (*utf8_chars)(const char *s, size_t len);

    /* request input. request_body_object reads the body as one JSON object
     * within the server's bounds on size, depth and element count; on
     * failure it has answered 400 invalid_body or 413 and returns the
     * status. *out is borrowed, released when the request ends. */
    plx_status_t (*request_body_object)(plx_request_t *r, json_t **out);
    /* Field readers over an object (usually the body). PLX_OK with *out
     * set; PLX_DECLINED when the field is absent and optional (*out left
     * as it was); otherwise the reader has answered 400 invalid_body with
     * a detail naming the field and returns PLX_ERR_INVALID. Strings are
     * borrowed from obj. Lengths count characters. A JSON null is refused
     * unless PLX_FIELD_NULLABLE is given to a reader with a pointer
     * output. */
    plx_status_t (*field_string)(plx_request_t *r, json_t *obj,
                                 const char *name, unsigned flags,
                                 size_t min_chars, size_t max_chars,
                                 const char **out);
    plx_status_t (*field_uuid)(plx_request_t *r, json_t *obj,
                               const char *name, unsigned flags,
                               const char **out);
    plx_status_t (*field_int)(plx_request_t *r, json_t *obj,
                              const char *name, unsigned flags,
                              long long min, long long max, long long *out);
    plx_status_t (*field_bool)(plx_request_t *r, json_t *obj,
                               const char *name, unsigned flags, int *out);
    /* values: NULL-terminated; *out is the index of the match */
    plx_status_t (*field_enum)(plx_request_t *r, json_t *obj,
                               const char *name, unsigned flags,
                               const char *const *values, int *out);
    /* an RFC 3339 date-time in years 0001 to 9999 with an offset of at
     * most 15:59, so it always casts to timestamptz; *out borrowed from
     * obj */
    plx_status_t (*field_time)(plx_request_t *r, json_t *obj,
                               const char *name, unsigned flags,
                               const char **out);
    /* Query parameters "limit" (default_limit when absent, 1..max_limit,
     * plain digits) and "cursor" (made by page_cursor with the same tag
     * and kind; absent or empty: the first page, key and id NULL). Bad
     * input of either: 400 invalid_limit or invalid_cursor answered and
     * PLX_ERR_INVALID returned. tag: 1 to 64 printable ASCII bytes
     * without '|'. out->size set by the caller; the strings are borrowed
     * for the request. */
    plx_status_t (*page_read)(plx_request_t *r, const char *tag,
                              plx_key_kind_t kind, int default_limit,
                              int max_limit, plx_page_t *out);
    /* the cursor after the row (key, id), in the request's arena; NULL
     * when key does not fit its kind */
    const char *(*page_cursor)(plx_request_t *r, const char *tag,
                               plx_key_kind_t kind, const char *key,
                               const char *id);

    /* database. db_tx acquires a connection (r: released with the request
     * if not before; NULL: now), runs BEGIN at the isolation level, fn,
     * COMMIT. fn returning anything but PLX_OK rolls back and that status
     * is returned. A serialization failure or deadlock (SQLSTATE 40001,
     * 40P01) anywhere, COMMIT included, rolls back and runs fn again, up
     * to 5 times with a short random pause, then PLX_AGAIN. A COMMIT that
     * fails otherwise: the work is rolled back and PLX_ERR_DB (or the
     * statement's status) returned; if the connection broke during
     * COMMIT the outcome is unknown, the connection is discarded and
     * PLX_ERR_DB is returned, so work that must not happen twice is keyed
     * (unique_key, ON CONFLICT). db_exec on c returns PLX_AGAIN for
     * 40001/40P01. */
    plx_status_t (*db_tx)(plx_request_t *r, plx_isolation_t iso,
                          plx_tx_fn fn, void *arg);
    /* LISTEN on channel ([a-z0-9_.], at most 63 bytes) for the process
     * lifetime; init only */
    plx_status_t (*db_listen)(plx_module_t *m, const char *channel,
                              plx_notify_fn fn, void *arg);
    /* NOTIFY; with c inside db_tx it is sent at COMMIT (and not at all on
     * rollback), with c NULL at once. payload at most 7,900 bytes. */
    plx_status_t (*db_notify)(plx_db_conn_t *c, const char *channel,
                              const char *payload);

    /* routes: a whole table; every row is checked and registered, and a
     * failure names the row. elem_size is sizeof(plx_route_def_t) at build
     * time (the wrapper passes it). init only. */
    plx_status_t (*routes_add)(plx_module_t *m, const plx_route_def_t *defs,
                               size_t n, size_t elem_size, void *arg);
    /* a rate-limit class for the module's routes (and any other module's):
     * default_spec "N/<duration>" (N requests per window, e.g. "60/60s";
     * units ms, s, m, h, d), overridden by [ratelimit] <name> in
     * plexus.conf or PLEXUS_RATELIMIT_<NAME>. name: a-z, 0-9, '_', starting
     * with a letter, at most 15 bytes, not "none", "enabled" or
     * "max_keys" (settings of [ratelimit]). Both strings borrowed
     * for the call. init only, main thread. PLX_ERR_CONFLICT when the name
     * is taken (the core owns "default" and "auth"), PLX_ERR_INVALID for a
     * bad name or spec or after init (logged). A route naming a class that
     * no loaded module registered stops startup. */
    plx_status_t (*rate_class_add)(plx_module_t *m, const char *name,
                                   const char *default_spec);

    /* outbound HTTP through the core's client. http and https only; the
     * address actually connected to (after name resolution, for every
     * connection and redirect) must not be loopback, private, link-local,
     * unique-local, multicast or otherwise special unless [http_client]
     * allow lists it: PLX_ERR_FORBIDDEN, logged. headers: NULL-terminated
     * "Name: value" lines, or NULL. On PLX_OK (any HTTP status) *out is the
     * response, freed with http_resp_free. Errors: PLX_ERR_TIMEOUT,
     * PLX_ERR_UPSTREAM (connection failed or refused),
     * PLX_ERR_TOO_LARGE, PLX_ERR_GONE (cancelled), PLX_ERR_INVALID (bad
     * URL or scheme, a header line holding CR or LF, a method that is not
     * upper-case letters). More redirects than max_redirects (at most 20),
     * a redirect to another scheme, or more than 100 response headers or
     * 64 KiB of them: PLX_ERR_UPSTREAM. Nothing is shared between calls
     * (no connection reuse, no cookies). Blocks the calling thread up to
     * total_timeout_ms. */
    plx_status_t (*http_request)(plx_module_t *m, const char *method,
                                 const char *url, const char *const *headers,
                                 const void *body, size_t len,
                                 const plx_http_opts_t *opts,
                                 plx_http_resp_t **out);
    int (*http_resp_status)(const plx_http_resp_t *resp);
    /* the body, NUL-terminated (empty when streamed through on_data);
     * borrowed from resp */
    const char *(*http_resp_body)(const plx_http_resp_t *resp, size_t *len);
    /* the last value of a header, case-insensitive; borrowed from resp */
    const char *(*http_resp_header)(const plx_http_resp_t *resp,
                                    const char *name);
    void (*http_resp_free)(plx_http_resp_t *resp);

    /* secrets at rest: AES-256-GCM under the server's sealing keys
     * ([auth] mfa_key and mfa_old_keys), bound to the module's name and
     * context (e.g. the row's id) so a sealed value cannot be moved to
     * another row. seal: *out is a new string (free with plx_free).
     * unseal: *plain is a new buffer of *len bytes plus a NUL (free with
     * plx_free); *stale (if not NULL) is 1 when it was sealed under an
     * old key and should be sealed again. PLX_ERR_INVALID when it does not
     * open (wrong context, altered, unknown key). */
    plx_status_t (*secret_seal)(plx_module_t *m, const char *context,
                                const void *plain, size_t len, char **out);
    plx_status_t (*secret_unseal)(plx_module_t *m, const char *context,
                                  const char *sealed, void **plain,
                                  size_t *len, int *stale);
    /* frees what the core handed out as "free with plx_free" */
    void (*mem_free)(void *p);

    /* multipart/form-data: reads the request body as it arrives and calls
     * spec's callbacks; the body must not have been read before. Bad
     * framing: 400 invalid_multipart answered; a bound crossed: 413
     * answered; a callback's error status is returned unanswered. */
    plx_status_t (*request_multipart)(plx_request_t *r,
                                      const plx_multipart_t *spec, void *arg);

    /* durable events. event_emit_tx publishes when the transaction on c
     * (from plx_db_tx) commits: in-process subscribers then, durable
     * subscriptions as jobs inserted in the same transaction. payload is
     * borrowed. event_subscribe_durable: init only; topic as for
     * event_subscribe (a trailing ".*" matches a prefix). plx_event_emit
     * outside a transaction also enqueues the durable subscriptions. */
    plx_status_t (*event_emit_tx)(plx_db_conn_t *c, const char *topic,
                                  json_t *payload);
    plx_status_t (*event_subscribe_durable)(plx_module_t *m,
                                            const char *topic,
                                            const char *handler);

    /* jobs. job_lease_renew extends the running job's lease by seconds
     * (a handler that works longer than [jobs] lease calls it);
     * PLX_ERR_GONE when the lease was lost to another instance: stop.
     * job_recurring_add: init only; see plx_job_fn. */
    plx_status_t (*job_lease_renew)(plx_job_t *job, int seconds);
    plx_status_t (*job_recurring_add)(plx_module_t *m, const char *name,
                                      int every_seconds, plx_job_fn fn,
                                      void *arg);

    /* problem details (RFC 9457) for a module that must add members of
     * its own ("errors", "retry_after_seconds") or send one as an SSE or
     * WebSocket event: problem_new returns a new object with type, title,
     * status, detail, code, instance and request_id (r may be NULL);
     * reply_problem_json answers with it (steals problem; status wins over
     * its "status"), through the error format of the path like every
     * other error. */
    json_t *(*problem_new)(plx_request_t *r, int status, const char *code,
                           const char *detail);
    plx_status_t (*reply_problem_json)(plx_request_t *r, int status,
                                       json_t *problem);

    /* append new entries here and bump PLX_ABI_MINOR */
};

#define PLX_API_HAS(api, fn) \
    ((api)->size >= offsetof(plx_api_t, fn) + sizeof((api)->fn))

/* ------------------------------------------------------------------------
 * The module descriptor
 */
typedef struct plx_module_info {
    uint32_t           magic;        /* PLX_MODULE_MAGIC */
    uint16_t           abi_major;    /* must equal the core's */
    uint16_t           abi_minor;    /* must be <= the core's */
    uint32_t           size;         /* sizeof(plx_module_info_t) at build time */
    const plx_api_t  **api_slot;     /* where the core stores its table */
    const char        *name;         /* must match the plugins.d file name */
    const char        *version;
    const char        *description;
    const char *const *requires;     /* NULL-terminated module names, or NULL */
    /* init: read settings, register routes, hooks, services, jobs and
     * migrations; no threads, no database. Runs in dependency order. */
    plx_status_t     (*init)(plx_module_t *m);
    /* start (optional): after migrations; threads, caches, indexes */
    plx_status_t     (*start)(plx_module_t *m);
    /* stop (optional): in reverse order at shutdown, for every module whose
     * init ran, even if its init or start failed */
    void             (*stop)(plx_module_t *m);
    /* 1.4: the oldest core minor the module runs on (0: abi_minor). A
     * module built against a newer header that tests PLX_API_HAS before
     * each newer entry sets it lower and is loaded by older cores. */
    uint16_t           abi_minor_required;
} plx_module_info_t;

typedef const plx_module_info_t *(*plx_module_info_fn)(void);
#define PLX_MODULE_SYMBOL "plx_module_info"

/* The module's copy of the API table, set by the core before init. */
extern const plx_api_t *plx_api PLX_HIDDEN;

#define PLX_REQUIRES(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Declare the module once, in one of its .c files:
 *
 *   PLX_MODULE(.name = "hello", .version = "1.0.0",
 *              .description = "says hello",
 *              .requires = PLX_REQUIRES("metrics"),
 *              .init = hello_init, .stop = hello_stop);
 */
#define PLX_MODULE(...)                                                      \
    const plx_api_t *plx_api;                                                \
    static const plx_module_info_t plx_module_info_data_ = {                 \
        .magic = PLX_MODULE_MAGIC, .abi_major = PLX_ABI_MAJOR,               \
        .abi_minor = PLX_ABI_MINOR, .size = sizeof(plx_module_info_t),       \
        .api_slot = &plx_api, __VA_ARGS__ };                                 \
    PLX_EXPORT const plx_module_info_t *plx_module_info(void);               \
    PLX_EXPORT const plx_module_info_t *plx_module_info(void)                \
    {                                                                        \
        return &plx_module_info_data_;                                       \
    }

/* ------------------------------------------------------------------------
 * Wrappers: module code calls these. Each is one indirect call.
 */
#ifndef PLX_NO_WRAPPERS

static inline PLX_PRINTF(3, 4) void
plx_log(plx_module_t *m, plx_log_level_t lvl, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    plx_api->logv(m, NULL, lvl, fmt, ap);
    va_end(ap);
}

static inline PLX_PRINTF(4, 5) void
plx_rlog(plx_module_t *m, plx_request_t *r, plx_log_level_t lvl,
         const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    plx_api->logv(m, r, lvl, fmt, ap);
    va_end(ap);
}

static inline const char *plx_config_get(plx_module_t *m, const char *key)
{ return plx_api->config_get(m, key); }
static inline const char *plx_config_core_get(const char *s, const char *k)
{ return plx_api->config_core_get(s, k); }

static inline PLX_WUR plx_status_t
plx_route_add(plx_module_t *m, const char *method, const char *pattern,
              plx_handler_fn fn, void *arg, const plx_route_opts_t *opts)
{ return plx_api->route_add(m, method, pattern, fn, arg, opts); }

static inline PLX_WUR plx_status_t
plx_ws_route_add(plx_module_t *m, const char *pattern,
                 const plx_ws_handlers_t *h, void *arg,
                 const plx_route_opts_t *opts)
{ return plx_api->ws_route_add(m, pattern, h, arg, opts); }

static inline PLX_WUR plx_status_t
plx_hook_add(plx_module_t *m, const char *name, plx_hook_fn fn, void *arg,
             const plx_hook_order_t *order)
{ return plx_api->hook_add(m, name, fn, arg, order); }
static inline plx_status_t
plx_hook_run(const char *name, plx_request_t *r, void *data)
{ return plx_api->hook_run(name, r, data); }

static inline PLX_WUR plx_status_t
plx_event_subscribe(plx_module_t *m, const char *topic, plx_event_fn fn,
                    void *arg)
{ return plx_api->event_subscribe(m, topic, fn, arg); }
/* payload is borrowed */
static inline void plx_event_emit(const char *topic, json_t *payload)
{ plx_api->event_emit(topic, payload); }

static inline PLX_WUR plx_status_t
plx_service_register(plx_module_t *m, const char *name, unsigned version,
                     const void *table)
{ return plx_api->service_register(m, name, version, table); }
static inline const void *plx_service_get(const char *name, unsigned version)
{ return plx_api->service_get(name, version); }

static inline PLX_WUR plx_status_t
plx_job_handler_add(plx_module_t *m, const char *name, plx_job_fn fn,
                    void *arg)
{ return plx_api->job_handler_add(m, name, fn, arg); }
/* payload is borrowed; id_out may be NULL */
static inline PLX_WUR plx_status_t
plx_job_enqueue(plx_module_t *m, const char *handler, json_t *payload,
                const plx_job_opts_t *opts, char id_out[37])
{ return plx_api->job_enqueue(m, handler, payload, opts, id_out); }
static inline json_t *plx_job_payload(plx_job_t *j)
{ return plx_api->job_payload(j); }
static inline const char *plx_job_id(plx_job_t *j)
{ return plx_api->job_id(j); }
static inline int plx_job_attempt(plx_job_t *j)
{ return plx_api->job_attempt(j); }
static inline void plx_job_error_set(plx_job_t *j, const char *msg)
{ plx_api->job_error_set(j, msg); }

static inline PLX_WUR plx_status_t
plx_migrations_add(plx_module_t *m, const char *dir)
{ return plx_api->migrations_add(m, dir); }

static inline const char *plx_request_method(plx_request_t *r)
{ return plx_api->request_method(r); }
static inline const char *plx_request_path(plx_request_t *r)
{ return plx_api->request_path(r); }
static inline const char *plx_request_param(plx_request_t *r, const char *n)
{ return plx_api->request_param(r, n); }
static inline const char *plx_request_query(plx_request_t *r, const char *n)
{ return plx_api->request_query(r, n); }
static inline const char *plx_request_header(plx_request_t *r, const char *n)
{ return plx_api->request_header(r, n); }
static inline const char *plx_request_id(plx_request_t *r)
{ return plx_api->request_id(r); }
static inline const char *plx_request_remote_addr(plx_request_t *r)
{ return plx_api->request_remote_addr(r); }
static inline PLX_WUR plx_status_t
plx_request_body(plx_request_t *r, const char **body, size_t *len)
{ return plx_api->request_body(r, body, len); }
/* On success *out is a new reference released when the request ends. On
 * failure the core has already answered 400 or 413. */
static inline PLX_WUR plx_status_t plx_request_json(plx_request_t *r, json_t **out)
{ return plx_api->request_json(r, out); }
static inline void *plx_request_note_get(plx_request_t *r, const char *k)
{ return plx_api->request_note_get(r, k); }
static inline void plx_request_note_set(plx_request_t *r, const char *k, void *v)
{ plx_api->request_note_set(r, k, v); }
static inline void *plx_palloc(plx_request_t *r, size_t n)
{ return plx_api->palloc(r, n); }
static inline char *plx_pstrdup(plx_request_t *r, const char *s)
{ return plx_api->pstrdup(r, s); }
static inline PLX_WUR plx_status_t
plx_request_cleanup_add(plx_request_t *r, plx_cleanup_fn fn, void *arg)
{ return plx_api->request_cleanup_add(r, fn, arg); }

static inline void plx_response_header(plx_request_t *r, const char *n, const char *v)
{ plx_api->response_header(r, n, v); }
static inline plx_status_t
plx_reply(plx_request_t *r, int status, const char *type, const void *body,
          size_t len, plx_free_fn mem)
{ return plx_api->reply(r, status, type, body, len, mem); }
/* steals body */
static inline plx_status_t plx_reply_json(plx_request_t *r, int status, json_t *body)
{ return plx_api->reply_json(r, status, body); }
static inline PLX_PRINTF(4, 5) plx_status_t
plx_reply_problem(plx_request_t *r, int status, const char *code,
                  const char *fmt, ...)
{
    va_list ap;
    plx_status_t st;
    va_start(ap, fmt);
    st = plx_api->reply_problemv(r, status, code, fmt, ap);
    va_end(ap);
    return st;
}
static inline void plx_error_set(plx_request_t *r, const char *code, const char *detail)
{ plx_api->error_set(r, code, detail); }

static inline plx_sse_t *plx_sse_begin(plx_request_t *r)
{ return plx_api->sse_begin(r); }
static inline plx_status_t
plx_sse_send(plx_sse_t *s, const char *event, const char *data, size_t len)
{ return plx_api->sse_send(s, event, data, len); }
static inline int plx_sse_closed(plx_sse_t *s)
{ return plx_api->sse_closed(s); }

static inline plx_status_t
plx_ws_send(plx_ws_t *ws, int text, const void *data, size_t len)
{ return plx_api->ws_send(ws, text, data, len); }
static inline void plx_ws_close(plx_ws_t *ws, int code, const char *reason)
{ plx_api->ws_close(ws, code, reason); }
static inline void plx_ws_set_data(plx_ws_t *ws, void *d)
{ plx_api->ws_set_data(ws, d); }
static inline void *plx_ws_get_data(plx_ws_t *ws)
{ return plx_api->ws_get_data(ws); }
static inline const char *plx_ws_param(plx_ws_t *ws, const char *n)
{ return plx_api->ws_param(ws, n); }

static inline PLX_WUR plx_status_t
plx_db_query(plx_request_t *r, const char *sql, int n,
             const char *const *params, plx_db_res_t **out)
{ return plx_api->db_query(r, sql, n, params, out); }
static inline plx_db_conn_t *plx_db_acquire(int timeout_ms)
{ return plx_api->db_acquire(timeout_ms); }
static inline void plx_db_release(plx_db_conn_t *c)
{ plx_api->db_release(c); }
static inline PLX_WUR plx_status_t
plx_db_exec(plx_db_conn_t *c, const char *sql, int n,
            const char *const *params, plx_db_res_t **out)
{ return plx_api->db_exec(c, sql, n, params, out); }
static inline int plx_db_rows(const plx_db_res_t *res)
{ return plx_api->db_rows(res); }
static inline int plx_db_cols(const plx_db_res_t *res)
{ return plx_api->db_cols(res); }
static inline const char *plx_db_value(const plx_db_res_t *res, int row, int col)
{ return plx_api->db_value(res, row, col); }
static inline int plx_db_col(const plx_db_res_t *res, const char *name)
{ return plx_api->db_col(res, name); }
static inline const char *plx_db_affected(const plx_db_res_t *res)
{ return plx_api->db_affected(res); }
static inline const char *plx_db_error(const plx_db_res_t *res)
{ return plx_api->db_error(res); }
static inline void plx_db_free(plx_db_res_t *res)
{ plx_api->db_free(res); }

static inline const char *plx_status_str(plx_status_t st)
{ return plx_api->status_str(st); }
static inline const char *plx_module_name(plx_module_t *m)
{ return plx_api->module_name(m); }

/* 1.1: a module that must run on a 1.0 core tests PLX_API_HAS first */
static inline const char *plx_request_user_id(plx_request_t *r)
{ return plx_api->request_user_id(r); }
static inline int plx_request_is_admin(plx_request_t *r)
{ return plx_api->request_is_admin(r); }
static inline int plx_request_has_scope(plx_request_t *r, const char *scope)
{ return plx_api->request_has_scope(r, scope); }
static inline PLX_WUR plx_status_t
plx_team_role(plx_request_t *r, const char *team_id, plx_role_t *out)
{ return plx_api->team_role(r, team_id, out); }
static inline void plx_audit(plx_request_t *r, const char *action,
                             const char *target_type, const char *target_id,
                             json_t *details)
{ plx_api->audit(r, action, target_type, target_id, details); }
static inline void plx_core_stats(plx_core_stats_t *out)
{ plx_api->core_stats(out); }

/* 1.3 */
static inline plx_status_t plx_sse_comment(plx_sse_t *s, const char *text)
{ return plx_api->sse_comment(s, text); }
static inline PLX_WUR plx_status_t
plx_error_format_add(plx_module_t *m, const char *prefix,
                     plx_error_format_fn fn, void *arg)
{ return plx_api->error_format_add(m, prefix, fn, arg); }

/* 1.2 */
static inline plx_status_t plx_module_at(size_t i, plx_module_view_t *out)
{ return plx_api->module_at(i, out); }

/* 1.4: encodings */
static inline size_t plx_base64_encode(plx_b64_t v, const void *in, size_t len,
                                       char *out, size_t cap)
{ return plx_api->base64_encode(v, in, len, out, cap); }
static inline PLX_WUR plx_status_t
plx_base64_decode(plx_b64_t v, const char *in, size_t len, void *out,
                  size_t cap, size_t *out_len)
{ return plx_api->base64_decode(v, in, len, out, cap, out_len); }
static inline size_t plx_hex_encode(const void *in, size_t len, char *out,
                                    size_t cap)
{ return plx_api->hex_encode(in, len, out, cap); }
static inline PLX_WUR plx_status_t
plx_hex_decode(const char *in, size_t len, void *out, size_t cap,
               size_t *out_len)
{ return plx_api->hex_decode(in, len, out, cap, out_len); }
static inline int plx_uuid_valid(const char *s)
{ return plx_api->uuid_valid(s); }
static inline PLX_WUR plx_status_t plx_uuid_parse(const char *s, uint8_t out[16])
{ return plx_api->uuid_parse(s, out); }
static inline void plx_uuid_format(const uint8_t in[16], char out[37])
{ plx_api->uuid_format(in, out); }
static inline PLX_WUR plx_status_t plx_uuid_new(int version, char out[37])
{ return plx_api->uuid_new(version, out); }
static inline int plx_utf8_valid(const char *s, size_t len)
{ return plx_api->utf8_valid(s, len); }
static inline size_t plx_utf8_repair(const char *in, size_t len, char *out,
                                     size_t cap)
{ return plx_api->utf8_repair(in, len, out, cap); }
static inline long plx_utf8_chars(const char *s, size_t len)
{ return plx_api->utf8_chars(s, len); }

/* 1.4: request input */
static inline PLX_WUR plx_status_t
plx_request_body_object(plx_request_t *r, json_t **out)
{ return plx_api->request_body_object(r, out); }
static inline plx_status_t
plx_field_string(plx_request_t *r, json_t *o, const char *name, unsigned fl,
                 size_t min_chars, size_t max_chars, const char **out)
{ return plx_api->field_string(r, o, name, fl, min_chars, max_chars, out); }
static inline plx_status_t
plx_field_uuid(plx_request_t *r, json_t *o, const char *name, unsigned fl,
               const char **out)
{ return plx_api->field_uuid(r, o, name, fl, out); }
static inline plx_status_t
plx_field_int(plx_request_t *r, json_t *o, const char *name, unsigned fl,
              long long min, long long max, long long *out)
{ return plx_api->field_int(r, o, name, fl, min, max, out); }
static inline plx_status_t
plx_field_bool(plx_request_t *r, json_t *o, const char *name, unsigned fl,
               int *out)
{ return plx_api->field_bool(r, o, name, fl, out); }
static inline plx_status_t
plx_field_enum(plx_request_t *r, json_t *o, const char *name, unsigned fl,
               const char *const *values, int *out)
{ return plx_api->field_enum(r, o, name, fl, values, out); }
static inline plx_status_t
plx_field_time(plx_request_t *r, json_t *o, const char *name, unsigned fl,
               const char **out)
{ return plx_api->field_time(r, o, name, fl, out); }
static inline PLX_WUR plx_status_t
plx_page_read(plx_request_t *r, const char *tag, plx_key_kind_t kind,
              int default_limit, int max_limit, plx_page_t *out)
{ return plx_api->page_read(r, tag, kind, default_limit, max_limit, out); }
static inline const char *
plx_page_cursor(plx_request_t *r, const char *tag, plx_key_kind_t kind,
                const char *key, const char *id)
{ return plx_api->page_cursor(r, tag, kind, key, id); }

/* 1.4: database */
static inline PLX_WUR plx_status_t
plx_db_tx(plx_request_t *r, plx_isolation_t iso, plx_tx_fn fn, void *arg)
{ return plx_api->db_tx(r, iso, fn, arg); }
static inline PLX_WUR plx_status_t
plx_db_listen(plx_module_t *m, const char *channel, plx_notify_fn fn, void *arg)
{ return plx_api->db_listen(m, channel, fn, arg); }
static inline plx_status_t
plx_db_notify(plx_db_conn_t *c, const char *channel, const char *payload)
{ return plx_api->db_notify(c, channel, payload); }

/* 1.4: routes and rate classes */
#define plx_routes_add(m, table, arg)                                        \
    plx_api->routes_add((m), (table), sizeof(table) / sizeof((table)[0]),   \
                        sizeof((table)[0]), (arg))
static inline PLX_WUR plx_status_t
plx_rate_class_add(plx_module_t *m, const char *name, const char *spec)
{ return plx_api->rate_class_add(m, name, spec); }

/* 1.4: outbound HTTP */
static inline PLX_WUR plx_status_t
plx_http_request(plx_module_t *m, const char *method, const char *url,
                 const char *const *headers, const void *body, size_t len,
                 const plx_http_opts_t *opts, plx_http_resp_t **out)
{ return plx_api->http_request(m, method, url, headers, body, len, opts, out); }
static inline int plx_http_resp_status(const plx_http_resp_t *resp)
{ return plx_api->http_resp_status(resp); }
static inline const char *plx_http_resp_body(const plx_http_resp_t *resp,
                                             size_t *len)
{ return plx_api->http_resp_body(resp, len); }
static inline const char *plx_http_resp_header(const plx_http_resp_t *resp,
                                               const char *name)
{ return plx_api->http_resp_header(resp, name); }
static inline void plx_http_resp_free(plx_http_resp_t *resp)
{ plx_api->http_resp_free(resp); }

/* 1.4: secrets, memory, uploads */
static inline PLX_WUR plx_status_t
plx_secret_seal(plx_module_t *m, const char *context, const void *plain,
                size_t len, char **out)
{ return plx_api->secret_seal(m, context, plain, len, out); }
static inline PLX_WUR plx_status_t
plx_secret_unseal(plx_module_t *m, const char *context, const char *sealed,
                  void **plain, size_t *len, int *stale)
{ return plx_api->secret_unseal(m, context, sealed, plain, len, stale); }
static inline void plx_free(void *p)
{ plx_api->mem_free(p); }
static inline PLX_WUR plx_status_t
plx_request_multipart(plx_request_t *r, const plx_multipart_t *spec, void *arg)
{ return plx_api->request_multipart(r, spec, arg); }

/* 1.4: durable events and jobs */
static inline PLX_WUR plx_status_t
plx_event_emit_tx(plx_db_conn_t *c, const char *topic, json_t *payload)
{ return plx_api->event_emit_tx(c, topic, payload); }
static inline PLX_WUR plx_status_t
plx_event_subscribe_durable(plx_module_t *m, const char *topic,
                            const char *handler)
{ return plx_api->event_subscribe_durable(m, topic, handler); }
static inline plx_status_t plx_job_lease_renew(plx_job_t *j, int seconds)
{ return plx_api->job_lease_renew(j, seconds); }
static inline PLX_WUR plx_status_t
plx_job_recurring_add(plx_module_t *m, const char *name, int every_seconds,
                      plx_job_fn fn, void *arg)
{ return plx_api->job_recurring_add(m, name, every_seconds, fn, arg); }

/* 1.4: problem details */
static inline json_t *plx_problem_new(plx_request_t *r, int status,
                                      const char *code, const char *detail)
{ return plx_api->problem_new(r, status, code, detail); }
static inline plx_status_t plx_reply_problem_json(plx_request_t *r, int status,
                                                  json_t *problem)
{ return plx_api->reply_problem_json(r, status, problem); }

#endif /* PLX_NO_WRAPPERS */

#ifdef __cplusplus
}
#endif
#endif /* PLEXUS_MODULE_H */
