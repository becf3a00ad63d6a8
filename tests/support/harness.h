/*
 * harness.h - test-side support for integration tests: start a real plexusd,
 * talk HTTP, Server-Sent Events and WebSocket to it, put a TCP proxy in front
 * of PostgreSQL that can play a database that goes away, hold many idle
 * connections open.
 *
 * Nothing here links the core: tests see the server only from outside, as a
 * client would. Every call that waits takes or applies a timeout, so a hung
 * server fails a test instead of hanging the suite.
 *
 * Paths come from the environment that `make check` sets (tests/tests.mk):
 * PLX_BUILDDIR (plexusd, the test plugins under tests/plugins/.libs) and
 * PLX_SRCDIR (the core's sql/, test plugins' sql). PLXT_WRAPPER, when set,
 * is a command line put before plexusd (e.g. "valgrind -q --error-exitcode=99").
 * PLXT_KEEP=1 keeps each server's temporary folder (config and log).
 */
#ifndef PLXT_HARNESS_H
#define PLXT_HARNESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* ------------------------------------------------------------------------
 * Skipping: integration tests need PostgreSQL. Call first in main().
 */

/* When PGHOST is unset, print a loud SKIP line naming the test and exit 77
 * (automake's "skipped"). */
void plxt_require_postgres(const char *test_name);

/* a time to compare against, in milliseconds, monotonic */
double plxt_now_ms(void);
/* Text from a format (a path, a small body) in one of 8 rotating buffers
 * of 32 KiB per thread: valid until the 8th next call on the same thread,
 * enough for the arguments of one call. Longer text fails the test run
 * (abort), it is never cut. */
const char *plxt_fmt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void plxt_sleep_ms(int ms);

/* ------------------------------------------------------------------------
 * The server under test
 */

/* A module to load: writes plugins.d/<name>.conf with
 *   [module] load = yes, path = <path or PLX_BUILDDIR/tests/plugins/.libs/<name>.so>
 *   [<name>] data_dir = PLX_SRCDIR/tests/plugins/<name> when that folder exists
 * followed by config (raw INI text, may open its own sections). */
typedef struct plxt_module {
    const char *name;
    const char *path;     /* NULL: the in-tree test plugin */
    const char *config;   /* NULL or raw text appended to the file */
    bool        no_load;  /* write load = no */
} plxt_module_t;

typedef struct plxt_server_opts {
    const char *db_url;             /* database.url; NULL leaves the default */
    const plxt_module_t *modules;   /* array ended by an entry with name NULL */
    /* Raw INI text for plexus.conf. A key given here replaces the harness's
     * own value for it (listen, data_dir, plugins_dir, module_dir,
     * log.level, database.url); anything else is appended as is. */
    const char *config;
    const char *const *env;         /* NULL-terminated "NAME=value" list */
    /* extra arguments after `--config FILE` (e.g. "migrate", "status");
     * with them the harness does not wait for /health/live */
    const char *const *args;
    bool no_wait;                   /* return once spawned */
    int start_timeout_ms;           /* 0: 30 s (120 s under PLXT_WRAPPER) */
} plxt_server_opts_t;

/* Public to read, owned by the harness. */
typedef struct plxt_server {
    char   url[64];        /* "http://127.0.0.1:PORT", no trailing slash */
    int    port;
    pid_t  pid;
    char   dir[256];       /* temporary folder: plexus.conf, plugins.d/, log */
    char   conf_path[320];
    char   log_path[320];
    bool   exited;         /* the process has been reaped */
    int    status;         /* with exited: as plxt_server_wait returns */
} plxt_server_t;

/* Write the config, spawn plexusd (stdout and stderr to log_path) and wait,
 * bounded, until GET /health/live answers 200. A bind failure is retried on
 * another port. NULL on failure, after printing why and the server's log. */
plxt_server_t *plxt_server_start(const plxt_server_opts_t *o);

/* Send a signal; 0 or -1 (already exited). */
int plxt_server_signal(plxt_server_t *s, int sig);

/* Wait up to timeout_ms for the process to end. Returns its exit code
 * (0..255), 128 + n when killed by signal n, or -1 if it still runs. */
int plxt_server_wait(plxt_server_t *s, int timeout_ms);

/* SIGTERM, wait up to 30 s, then SIGKILL. Prints the tail of the server's
 * log, removes the temporary folder (unless PLXT_KEEP) and frees s.
 * Returns as plxt_server_wait; -1 if SIGKILL was needed. NULL is a no-op. */
int plxt_server_stop(plxt_server_t *s);

/* Whether the server's log holds needle (now / within timeout_ms). */
bool plxt_server_log_contains(const plxt_server_t *s, const char *needle);
bool plxt_server_log_wait(const plxt_server_t *s, const char *needle,
                          int timeout_ms);
/* The whole log (bounded to 16 MiB); caller frees. NULL if unreadable. */
char *plxt_server_log(const plxt_server_t *s);
/* Print the last max_bytes of the log to stderr, each line prefixed "# ". */
void plxt_server_log_print(const plxt_server_t *s, size_t max_bytes);

/* Run a program to completion and collect its stdout+stderr (bounded to
 * 16 MiB), with the scrubbed environment of a server plus env. argv[0] is
 * a path, or "plexusd" for PLX_BUILDDIR/plexusd: handy for `plexusd
 * --config F migrate status`. Returns the exit status as plxt_server_wait,
 * -1 on timeout (the program is then killed); *output (may be NULL)
 * receives a malloc'd copy of what it printed. */
int plxt_run(const char *const *argv, const char *const *env, int timeout_ms,
             char **output);

/* ------------------------------------------------------------------------
 * Sockets (IPv4 loopback is all tests need)
 */

/* A free TCP port on 127.0.0.1 (bound and released at once). */
int plxt_free_port(void);
/* "http://host:port/path" (or ws://): host[64], port, *path points into url
 * ("/" when absent). 0 or -1. */
int plxt_url_split(const char *url, char host[64], int *port, const char **path);
/* A connected non-blocking socket, or -1. host is a dotted IPv4 address or
 * "localhost". */
int plxt_tcp_connect(const char *host, int port, int timeout_ms);
/* Send everything within timeout_ms; 0 or -1. */
int plxt_sock_send_all(int fd, const void *buf, size_t len, int timeout_ms);
/* One recv: >0 bytes, 0 peer closed, -1 error or timeout (errno ETIMEDOUT). */
long plxt_sock_recv(int fd, void *buf, size_t len, int timeout_ms);

/* ------------------------------------------------------------------------
 * HTTP client (libcurl). Timeouts are always set: 5 s to connect, 30 s in
 * all unless the request says otherwise. Bodies are bounded at 16 MiB.
 */
typedef struct plxt_header {
    char *name;
    char *value;
} plxt_header_t;

typedef struct plxt_resp {
    long           status;       /* 0 when no response arrived */
    char          *body;         /* NUL-terminated (binary-safe with body_len) */
    size_t         body_len;
    plxt_header_t *headers;      /* of the last response (after redirects: none are followed) */
    size_t         nheaders;
    double         seconds;      /* total time */
    int            curl_code;    /* CURLcode; 0 is success */
    char           error[256];   /* curl's message when curl_code != 0 */
} plxt_resp_t;

typedef struct plxt_req {
    const char *method;          /* NULL: GET */
    const char *url;
    const char *const *headers;  /* NULL-terminated "Name: value" lines */
    const char *body;            /* NULL: none */
    size_t      body_len;        /* 0 with body: strlen(body) */
    int         timeout_ms;      /* 0: 30 s */
    size_t      max_recv;        /* >0: stop (and close) after this many body bytes */
} plxt_req_t;

/* 0 when a response arrived (whatever its status), -1 otherwise (resp holds
 * the curl error). resp is always initialised; free it with plxt_resp_free. */
int plxt_http(const char *method, const char *url, const char *const *headers,
              const char *body, plxt_resp_t *resp);
int plxt_http_req(const plxt_req_t *req, plxt_resp_t *resp);
/* GET base + path: a shortcut */
int plxt_get(const plxt_server_t *s, const char *path, plxt_resp_t *resp);

/* The body parsed as JSON (a new reference), NULL if it is not JSON. */
json_t *plxt_resp_json(const plxt_resp_t *resp);
/* Does the Content-Type start with type (case-insensitive, parameters
 * ignored: "application/json" matches "application/json; charset=utf-8")? */
bool plxt_resp_type_is(const plxt_resp_t *resp, const char *type);

/* Is token one of the comma-separated items of a header value such as
 * Allow or Vary (case-insensitive, blanks trimmed)? NULL value: false. */
bool plxt_token_in(const char *value, const char *token);

/* Case-insensitive header lookup; borrowed from resp. NULL when absent. */
const char *plxt_resp_header(const plxt_resp_t *resp, const char *name);
void plxt_resp_free(plxt_resp_t *resp);

/* ------------------------------------------------------------------------
 * Raw HTTP/1.1 stream client for Server-Sent Events: sends one GET (or,
 * with plxt_stream_request, any request with a body) and reads the
 * response incrementally (chunked or not), so a test can see events as
 * they come, stop reading, or hang up mid-stream.
 */
typedef struct plxt_stream plxt_stream_t;

typedef struct plxt_sse_event {
    char event[64];      /* "" when the event had no event: line */
    char *data;          /* data lines joined by '\n'; malloc'd, may be "" */
    char comment[128];   /* for a comment-only block (heartbeat): its text */
    bool is_comment;
} plxt_sse_event_t;

/* Connect to base_url (http://host:port), send GET path with the extra
 * header lines, read the status line and headers. NULL on failure. */
plxt_stream_t *plxt_stream_open(const char *base_url, const char *path,
                                const char *const *headers, int timeout_ms);
/* The same with any method and an optional body (sent with its
 * Content-Length; the caller adds the Content-Type line): a POST whose
 * answer streams. */
plxt_stream_t *plxt_stream_request(const char *base_url, const char *method,
                                   const char *path, const char *const *headers,
                                   const char *body, int timeout_ms);
int plxt_stream_status(const plxt_stream_t *st);
/* borrowed; case-insensitive */
const char *plxt_stream_header(const plxt_stream_t *st, const char *name);
/* Read decoded body bytes: >0 bytes, 0 at the clean end of the body, -1 on
 * error or timeout (then plxt_stream_timed_out tells which). */
long plxt_stream_read(plxt_stream_t *st, char *buf, size_t len, int timeout_ms);
bool plxt_stream_timed_out(const plxt_stream_t *st);
/* true once the body ended cleanly (final chunk or connection close
 * without chunking) */
bool plxt_stream_ended(const plxt_stream_t *st);
/* Next SSE block (an event or a comment-only block). 1 got one, 0 the
 * stream ended, -1 error or timeout. Free ev with plxt_sse_event_free. */
int plxt_sse_next(plxt_stream_t *st, plxt_sse_event_t *ev, int timeout_ms);
void plxt_sse_event_free(plxt_sse_event_t *ev);
/* Everything decoded so far, raw (for exact framing checks); borrowed. */
const char *plxt_stream_raw(const plxt_stream_t *st, size_t *len);
void plxt_stream_close(plxt_stream_t *st);

/* ------------------------------------------------------------------------
 * WebSocket client (RFC 6455) over a raw socket: libcurl on Debian 12 has
 * none. The handshake checks Sec-WebSocket-Accept; client frames are masked.
 */
enum {
    PLXT_WS_CONT = 0x0, PLXT_WS_TEXT = 0x1, PLXT_WS_BINARY = 0x2,
    PLXT_WS_CLOSE = 0x8, PLXT_WS_PING = 0x9, PLXT_WS_PONG = 0xA
};

typedef struct plxt_ws plxt_ws_t;

typedef struct plxt_ws_msg {
    int     opcode;       /* PLXT_WS_TEXT/BINARY (reassembled), CLOSE or PONG */
    char   *data;         /* payload, NUL-terminated; malloc'd */
    size_t  len;
    int     close_code;   /* with CLOSE: the code, 1005 when none was sent */
    char    close_reason[124];
} plxt_ws_msg_t;

/* Connect and upgrade. status_out (may be NULL) receives the HTTP status of
 * the handshake response (101 on success). NULL on failure. */
plxt_ws_t *plxt_ws_connect(const char *base_url, const char *path,
                           const char *const *headers, int timeout_ms,
                           int *status_out);
/* One frame with FIN set; 0 or -1. */
int plxt_ws_send(plxt_ws_t *ws, int opcode, const void *data, size_t len);
int plxt_ws_send_text(plxt_ws_t *ws, const char *text);
/* A frame with explicit FIN (for fragmentation tests). */
int plxt_ws_send_frame(plxt_ws_t *ws, int opcode, bool fin, const void *data,
                       size_t len);
int plxt_ws_send_close(plxt_ws_t *ws, int code, const char *reason);
/* Next message; pings are answered and skipped. 1 got one, 0 the peer
 * closed the TCP connection without a close frame, -1 error or timeout. */
int plxt_ws_recv(plxt_ws_t *ws, plxt_ws_msg_t *msg, int timeout_ms);
void plxt_ws_msg_free(plxt_ws_msg_t *msg);
/* Wait for the server to close the TCP connection: true if it did. */
bool plxt_ws_wait_eof(plxt_ws_t *ws, int timeout_ms);
void plxt_ws_free(plxt_ws_t *ws);   /* closes the socket, no close frame */
/* the subprotocol the server chose in the handshake, "" when none */
const char *plxt_ws_protocol(const plxt_ws_t *ws);

/* ------------------------------------------------------------------------
 * TCP proxy in a thread: listens on a free loopback port and forwards every
 * connection to target (host:port, or a unix socket when host starts with
 * '/': host/.s.PGSQL.port, as libpq names them). Pausing closes every
 * current connection and refuses new ones (accepted and closed at once):
 * to a client that is a database gone away. Resuming forwards again.
 */
typedef struct plxt_proxy plxt_proxy_t;

plxt_proxy_t *plxt_proxy_start(const char *target_host, int target_port);
int plxt_proxy_port(const plxt_proxy_t *p);
void plxt_proxy_pause(plxt_proxy_t *p);
void plxt_proxy_resume(plxt_proxy_t *p);
/* connections forwarded right now */
int plxt_proxy_active(plxt_proxy_t *p);
void plxt_proxy_stop(plxt_proxy_t *p);

/* A libpq conninfo for dbname through the proxy (caller frees). */
char *plxt_proxy_conninfo(const plxt_proxy_t *p, const char *dbname);

/* ------------------------------------------------------------------------
 * Idle connections: N TCP connections that send nothing. Raises
 * RLIMIT_NOFILE (soft up to hard) when N needs it.
 */
typedef struct plxt_idle plxt_idle_t;

/* Returns NULL if fewer than n could connect within timeout_ms. */
plxt_idle_t *plxt_idle_open(int port, int n, int timeout_ms);
int plxt_idle_count(const plxt_idle_t *c);
/* how many of them the server has closed so far (EOF or reset) */
int plxt_idle_closed(plxt_idle_t *c);
void plxt_idle_close(plxt_idle_t *c);

/* Raise the soft RLIMIT_NOFILE to at least n (bounded by the hard limit);
 * returns the resulting soft limit. */
long plxt_raise_nofile(long n);

#endif
