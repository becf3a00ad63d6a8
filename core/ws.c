/*
 * ws.c - WebSocket routes over CivetWeb
 *
 * One set of CivetWeb WebSocket callbacks ("**") serves every WebSocket
 * route. The upgrade request goes through the same steps as any request
 * (request id, request.begin hooks, route auth) before the route's connect
 * callback; a refusal answers the handshake with an HTTP error. After the
 * handshake CivetWeb hands over frames one by one: this file reassembles
 * fragmented messages (bounded), checks that text is UTF-8, answers pings
 * and close frames, and gives the module whole messages.
 *
 * Measured on Debian's CivetWeb 1.15: the data callback sees every frame,
 * continuation, ping, pong and close included (bits: FIN 0x80 | opcode);
 * it does not answer pings nor echo a close frame itself; returning 0 ends
 * the connection. Its connect callback cannot use the mg_response_header_*
 * functions, so a refusal is written by hand.
 */
#include "config.h"
#include "http_internal.h"
#include "loader.h"

#include <stdlib.h>
#include <string.h>

#define WS_MAX_MESSAGE ((size_t)1024 * 1024)   /* received, reassembled */
#define WS_MAX_SEND    ((size_t)16 * 1024 * 1024)

static http_reg_t sockets = HTTP_REG_INIT;

/* ---- writing -------------------------------------------------------------- */

static bool ws_write(plx_ws_t *ws, int opcode, const void *data, size_t len)
{
    int n;

    if (atomic_load(&ws->gone))
        return false;
    /* NB: several threads may write (a producer, shutdown); CivetWeb's
     * connection lock is recursive, mg_websocket_write takes it too */
    mg_lock_connection(ws->conn);
    n = mg_websocket_write(ws->conn, opcode, data, len);
    mg_unlock_connection(ws->conn);
    if (n <= 0) {
        atomic_store(&ws->gone, true);
        return false;
    }
    return true;
}

/* UTF-8, where NUL is a character like any other (core_utf8_valid refuses
 * it because C strings cannot hold it; a WebSocket text message can) */
static bool ws_utf8_ok(const char *s, size_t len)
{
    while (len > 0) {
        const char *nul = memchr(s, '\0', len);
        size_t run = nul ? (size_t)(nul - s) : len;

        if (!core_utf8_valid(s, run))
            return false;
        if (!nul)
            return true;
        s += run + 1;
        len -= run + 1;
    }
    return true;
}

plx_status_t core_ws_send(plx_ws_t *ws, int text, const void *data, size_t len)
{
    if (!ws || (len && !data))
        return PLX_ERR_INVALID;
    if (len > WS_MAX_SEND)
        return PLX_ERR_TOO_LARGE;
    if (text && !ws_utf8_ok(data, len))
        return PLX_ERR_INVALID;
    if (atomic_load(&ws->closing) || atomic_load(&ws->gone))
        return PLX_ERR_GONE;
    if (!ws_write(ws, text ? MG_WEBSOCKET_OPCODE_TEXT : MG_WEBSOCKET_OPCODE_BINARY,
                  len ? data : "", len))
        return PLX_ERR_GONE;
    return PLX_OK;
}

/* RFC 6455 7.4: the codes an endpoint may send */
static int close_code_ok(int code)
{
    if ((code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014))
        return code;
    if (code >= 3000 && code <= 4999)
        return code;
    return 1000;
}

void core_ws_close(plx_ws_t *ws, int code, const char *reason)
{
    char payload[125];
    size_t rlen = reason ? strlen(reason) : 0;

    if (!ws || atomic_exchange(&ws->closing, true))
        return;
    code = close_code_ok(code);
    if (rlen > sizeof payload - 2)
        rlen = sizeof payload - 2;
    /* do not cut a UTF-8 sequence in half */
    while (rlen > 0 && reason[rlen] && ((unsigned char)reason[rlen] & 0xc0) == 0x80)
        rlen--;
    payload[0] = (char)((code >> 8) & 0xff);
    payload[1] = (char)(code & 0xff);
    if (rlen)
        memcpy(payload + 2, reason, rlen);
    ws_write(ws, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, payload, rlen + 2);
}

void core_ws_set_data(plx_ws_t *ws, void *data)
{
    if (ws)
        ws->data = data;
}

void *core_ws_get_data(plx_ws_t *ws)
{
    return ws ? ws->data : NULL;
}

const char *core_ws_param(plx_ws_t *ws, const char *name)
{
    return ws ? core_request_param(ws->r, name) : NULL;
}

size_t core_ws_open_count(void)
{
    return http_reg_count(&sockets);
}

/* ---- the handshake ---------------------------------------------------------- */

static void ws_free(plx_ws_t *ws)
{
    if (!ws)
        return;
    free(ws->frag);
    http_request_free(ws->r);
    free(ws);
}

/* true: go on with the handshake */
static bool ws_accept(plx_request_t *r, struct mg_connection *conn)
{
    const core_route_t *rt;
    plx_ws_t *ws;
    plx_status_t st;

    if (!http_request_prepare(r, "WS"))
        return false;
    rt = r->match.route;
    ws = calloc(1, sizeof(*ws));
    if (!ws) {
        http_reply_problem(r, 503, "unavailable", NULL, 0, "out of memory");
        return false;
    }
    ws->conn = conn;
    ws->r = r;
    ws->route = rt;
    r->ws = ws;
    st = rt->ws->connect ? rt->ws->connect(ws, r, rt->arg) : PLX_OK;
    if (st != PLX_OK || r->replied) {
        if (!r->replied)
            http_reply_status(r, st);
        r->ws = NULL;
        free(ws);
        return false;
    }
    return true;
}

static int ws_connect_cb(const struct mg_connection *cconn, void *cbdata)
{
    /* NB: CivetWeb passes the connection const here, but a refusal must
     * write its answer on it */
    struct mg_connection *conn = (struct mg_connection *)cconn;
    plx_request_t *r = http_request_new(conn);
    bool ok;

    (void)cbdata;
    if (!r)
        return 1;
    r->raw_head = true;
    ok = ws_accept(r, conn);
    if (!ok) {
        http_request_finish(r);
        http_request_free(r);
        return 1;
    }
    r->replied = true;   /* the 101 is CivetWeb's; nothing else may answer */
    r->status = 101;
    http_request_finish(r);
    /* the request's header strings live in a buffer frames will reuse */
    r->conn = NULL;
    r->ri = NULL;
    mg_set_user_connection_data(cconn, r->ws);
    http_reg_add(&sockets, &r->ws->node);
    return 0;
}

static void ws_ready_cb(struct mg_connection *conn, void *cbdata)
{
    plx_ws_t *ws = mg_get_user_connection_data(conn);

    (void)cbdata;
    if (ws && ws->route->ws->ready)
        ws->route->ws->ready(ws, ws->route->arg);
}

static void ws_close_cb(const struct mg_connection *conn, void *cbdata)
{
    plx_ws_t *ws = mg_get_user_connection_data(conn);

    (void)cbdata;
    if (!ws)
        return;
    atomic_store(&ws->gone, true);
    if (ws->route->ws->close)
        ws->route->ws->close(ws, ws->route->arg);
    http_reg_remove(&sockets, &ws->node);
    mg_set_user_connection_data(conn, NULL);
    ws_free(ws);
}

/* ---- frames ------------------------------------------------------------------ */

/* 0: end the connection (after a close frame, if one is due) */
static int ws_fail(plx_ws_t *ws, int code, const char *reason)
{
    core_log(PLX_LOG_INFO, "core", ws->r->id, "closing WebSocket on \"%s\" with %d: %s",
             ws->r->path, code, reason);
    core_ws_close(ws, code, reason);
    return 0;
}

static int ws_deliver(plx_ws_t *ws, int opcode, const char *data, size_t len)
{
    int text = opcode == MG_WEBSOCKET_OPCODE_TEXT;
    plx_status_t st;

    if (text && !ws_utf8_ok(data, len))
        return ws_fail(ws, 1007, "text message is not valid UTF-8");
    if (!ws->route->ws->message)
        return 1;
    st = ws->route->ws->message(ws, text, data, len, ws->route->arg);
    if (atomic_load(&ws->closing))
        return 0;
    if (st != PLX_OK) {
        core_log(PLX_LOG_ERROR, "core", ws->r->id, "WebSocket handler on \"%s\" "
                 "failed: %s", ws->route->pattern, core_status_str(st));
        return ws_fail(ws, 1011, "internal error");
    }
    return 1;
}

static int ws_fragment(plx_ws_t *ws, int opcode, bool fin, const char *data, size_t len)
{
    char *p;
    int rc;

    if (opcode != MG_WEBSOCKET_OPCODE_CONTINUATION) {
        if (ws->frag_opcode)
            return ws_fail(ws, 1002, "expected a continuation frame");
        if (fin)
            return ws_deliver(ws, opcode, data, len);
        ws->frag_opcode = opcode;
    } else if (!ws->frag_opcode) {
        return ws_fail(ws, 1002, "continuation frame without a message");
    }
    if (len > WS_MAX_MESSAGE - ws->frag_len)
        return ws_fail(ws, 1009, "message too big");
    p = realloc(ws->frag, ws->frag_len + len + 1);
    if (!p)
        return ws_fail(ws, 1011, "out of memory");
    ws->frag = p;
    memcpy(ws->frag + ws->frag_len, data, len);
    ws->frag_len += len;
    if (!fin)
        return 1;
    rc = ws_deliver(ws, ws->frag_opcode, ws->frag, ws->frag_len);
    free(ws->frag);
    ws->frag = NULL;
    ws->frag_len = 0;
    ws->frag_opcode = 0;
    return rc;
}

/* The peer closes: answer with its code (RFC 6455 5.5.1) unless we began. */
static int ws_peer_closed(plx_ws_t *ws, const char *data, size_t len)
{
    if (!atomic_exchange(&ws->closing, true))
        ws_write(ws, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data, len >= 2 ? 2 : 0);
    return 0;
}

static int ws_data_cb(struct mg_connection *conn, int bits, char *data,
                      size_t len, void *cbdata)
{
    plx_ws_t *ws = mg_get_user_connection_data(conn);
    int opcode = bits & 0x0f;
    bool fin = (bits & 0x80) != 0;

    (void)cbdata;
    if (!ws)
        return 0;
    switch (opcode) {
    case MG_WEBSOCKET_OPCODE_PING:
        ws_write(ws, MG_WEBSOCKET_OPCODE_PONG, data, len > 125 ? 125 : len);
        return 1;
    case MG_WEBSOCKET_OPCODE_PONG:
        return 1;
    case MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE:
        return ws_peer_closed(ws, data, len);
    case MG_WEBSOCKET_OPCODE_TEXT:
    case MG_WEBSOCKET_OPCODE_BINARY:
    case MG_WEBSOCKET_OPCODE_CONTINUATION:
        if (atomic_load(&ws->closing))
            return 1;   /* after our close frame: wait for theirs */
        if (len > WS_MAX_MESSAGE)
            return ws_fail(ws, 1009, "message too big");
        return ws_fragment(ws, opcode, fin, data, len);
    default:
        return ws_fail(ws, 1002, "unknown opcode");
    }
}

/* The one subprotocol the server speaks is "bearer": a browser offers
 * "bearer, <token>" to authenticate (identity/authn.c) and must see
 * "bearer" echoed, or it fails the connection. CivetWeb picks the first
 * offered protocol that is in this list; offers without it get none. */
static const char *ws_protocol_names[] = { "bearer" };
static struct mg_websocket_subprotocols ws_protocols = {
    .nb_subprotocols = 1, .subprotocols = ws_protocol_names,
};

void http_ws_register(struct mg_context *ctx)
{
    mg_set_websocket_handler_with_subprotocols(ctx, "**", &ws_protocols,
                                               ws_connect_cb, ws_ready_cb,
                                               ws_data_cb, ws_close_cb, NULL);
}

size_t core_ws_close_ended(core_ws_judge_fn judge, void *arg)
{
    http_reg_node_t **nodes;
    const core_principal_t **ps = NULL;
    plx_ws_t **socks = NULL;
    bool *ended = NULL;
    size_t n = http_reg_pin_all(&sockets, &nodes), m = 0, closed = 0;

    if (n == 0)
        return 0;
    ps = calloc(n, sizeof *ps);
    socks = calloc(n, sizeof *socks);
    ended = calloc(n, sizeof *ended);
    if (ps && socks && ended) {
        for (size_t i = 0; i < n; i++) {
            plx_ws_t *ws = (plx_ws_t *)nodes[i];
            const core_principal_t *p = core_request_principal(ws->r);

            if (p && !atomic_load(&ws->closing)) {
                ps[m] = p;
                socks[m++] = ws;
            }
        }
        if (m > 0 && judge(ps, m, ended, arg)) {
            for (size_t i = 0; i < m; i++) {
                if (!ended[i])
                    continue;
                core_log(PLX_LOG_INFO, "core", socks[i]->r->id, "closing WebSocket "
                         "on \"%s\": its credential has ended", socks[i]->r->path);
                core_ws_close(socks[i], 1008, "credential ended");
                closed++;
            }
        }
    }
    free(ps);
    free(socks);
    free(ended);
    http_reg_unpin(&sockets, nodes, n);
    return closed;
}

void http_ws_shutdown(void)
{
    http_reg_node_t **nodes;
    size_t n = http_reg_pin_all(&sockets, &nodes);

    for (size_t i = 0; i < n; i++)
        core_ws_close((plx_ws_t *)nodes[i], 1001, "server shutting down");
    if (nodes)
        http_reg_unpin(&sockets, nodes, n);
}
