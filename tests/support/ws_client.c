/*
 * ws_client.c - a WebSocket client for tests (RFC 6455), on a raw socket
 *
 * Debian 12's libcurl has no WebSocket support, so this speaks the protocol
 * itself: the opening handshake with a random Sec-WebSocket-Key and a check
 * of Sec-WebSocket-Accept (base64 of SHA-1 over key + the RFC's GUID),
 * masked client frames, and a reader that reassembles fragmented messages,
 * answers pings and hands close frames (code and reason) to the test. It
 * does not validate what the server sends beyond framing: tests assert on
 * that themselves.
 */
#include "config.h"
#include "harness.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define WS_GUID         "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define WS_MSG_MAX      (64u << 20)
#define WS_HEAD_MAX     (64u << 10)
#define WS_SEND_MS      10000

struct plxt_ws {
    int     fd;
    char   *in;            /* bytes read and not yet parsed */
    size_t  in_len, in_cap;
    bool    close_sent;
    bool    eof;
    char    protocol[64];  /* Sec-WebSocket-Protocol of the handshake, "" none */
};

/* ---- buffered input ------------------------------------------------------ */

static int ws_fill(plxt_ws_t *ws, double deadline)
{
    char buf[16384];
    int left = (int)(deadline - plxt_now_ms());
    long n;

    if (left <= 0) {
        errno = ETIMEDOUT;
        return -1;
    }
    n = plxt_sock_recv(ws->fd, buf, sizeof buf, left);
    if (n <= 0) {
        ws->eof = n == 0;
        return n == 0 ? 0 : -1;
    }
    if (ws->in_len + (size_t)n > WS_MSG_MAX + 16)
        return -1;
    if (ws->in_len + (size_t)n > ws->in_cap) {
        size_t cap = (ws->in_len + (size_t)n) * 2;
        char *p = realloc(ws->in, cap);
        if (!p)
            return -1;
        ws->in = p;
        ws->in_cap = cap;
    }
    memcpy(ws->in + ws->in_len, buf, (size_t)n);
    ws->in_len += (size_t)n;
    return 1;
}

/* make sure n bytes are buffered: 1 yes, 0 peer closed, -1 error/timeout */
static int ws_need(plxt_ws_t *ws, size_t n, double deadline)
{
    while (ws->in_len < n) {
        int rc = ws_fill(ws, deadline);
        if (rc <= 0)
            return rc;
    }
    return 1;
}

static void ws_consume(plxt_ws_t *ws, size_t n)
{
    memmove(ws->in, ws->in + n, ws->in_len - n);
    ws->in_len -= n;
}

/* ---- the opening handshake ------------------------------------------------- */

static int make_key(char key[32])
{
    unsigned char raw[16];

    if (RAND_bytes(raw, sizeof raw) != 1)
        return -1;
    EVP_EncodeBlock((unsigned char *)key, raw, sizeof raw);
    return 0;
}

static void expected_accept(const char *key, char out[64])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    char cat[128];

    snprintf(cat, sizeof cat, "%s%s", key, WS_GUID);
    SHA1((const unsigned char *)cat, strlen(cat), digest);
    EVP_EncodeBlock((unsigned char *)out, digest, sizeof digest);
}

/* the value of header name in a response head, copied to out */
static bool head_header(const char *head, const char *name, char *out,
                        size_t outlen)
{
    size_t n = strlen(name);

    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
        const char *line = p + 2;
        if (strncasecmp(line, name, n) != 0 || line[n] != ':')
            continue;
        const char *v = line + n + 1, *end = strstr(v, "\r\n");
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(out, outlen, "%.*s", (int)(end ? end - v : (long)strlen(v)), v);
        return true;
    }
    return false;
}

static int send_upgrade(plxt_ws_t *ws, const char *host, int port,
                        const char *path, const char *key,
                        const char *const *headers, int timeout_ms)
{
    char req[8192];
    int len = snprintf(req, sizeof req,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                       "Sec-WebSocket-Version: 13\r\n",
                       path, host, port, key);

    for (; headers && *headers && len < (int)sizeof req; headers++)
        len += snprintf(req + len, sizeof req - (size_t)len, "%s\r\n", *headers);
    if (len < (int)sizeof req)
        len += snprintf(req + len, sizeof req - (size_t)len, "\r\n");
    if (len >= (int)sizeof req)
        return -1;
    return plxt_sock_send_all(ws->fd, req, (size_t)len, timeout_ms);
}

/* the blank line ending a response head, or NULL */
static char *head_end(char *buf, size_t len)
{
    for (size_t i = 0; i + 3 < len; i++)
        if (memcmp(buf + i, "\r\n\r\n", 4) == 0)
            return buf + i;
    return NULL;
}

/* read the response head; leaves any frame bytes after it buffered */
static int read_upgrade(plxt_ws_t *ws, const char *key, int timeout_ms,
                        int *status)
{
    double deadline = plxt_now_ms() + timeout_ms;
    char *end, *head, accept[64], want[64], upgrade[64];

    for (;;) {
        end = head_end(ws->in, ws->in_len);
        if (end)
            break;
        if (ws->in_len > WS_HEAD_MAX || ws_fill(ws, deadline) <= 0)
            return -1;
    }
    head = strndup(ws->in, (size_t)(end - ws->in) + 2);
    if (!head)
        return -1;
    ws_consume(ws, (size_t)(end - ws->in) + 4);
    *status = strncmp(head, "HTTP/1.1 ", 9) == 0 ? atoi(head + 9) : 0;
    expected_accept(key, want);
    bool ok = *status == 101
              && head_header(head, "Upgrade", upgrade, sizeof upgrade)
              && strcasecmp(upgrade, "websocket") == 0
              && head_header(head, "Sec-WebSocket-Accept", accept, sizeof accept)
              && strcmp(accept, want) == 0;
    if (*status == 101 && !ok)
        fprintf(stderr, "ws: bad handshake response:\n%s\n", head);
    if (!head_header(head, "Sec-WebSocket-Protocol", ws->protocol, sizeof ws->protocol))
        ws->protocol[0] = '\0';
    free(head);
    return ok ? 0 : -1;
}

plxt_ws_t *plxt_ws_connect(const char *base_url, const char *path,
                           const char *const *headers, int timeout_ms,
                           int *status_out)
{
    char host[64], key[32];
    int port, status = 0;
    plxt_ws_t *ws;

    if (status_out)
        *status_out = 0;
    if (plxt_url_split(base_url, host, &port, NULL) != 0 || make_key(key) != 0)
        return NULL;
    ws = calloc(1, sizeof *ws);
    if (!ws)
        return NULL;
    ws->fd = plxt_tcp_connect(host, port, timeout_ms);
    if (ws->fd < 0
        || send_upgrade(ws, host, port, path, key, headers, timeout_ms) != 0
        || read_upgrade(ws, key, timeout_ms, &status) != 0) {
        if (status_out)
            *status_out = status;
        plxt_ws_free(ws);
        return NULL;
    }
    if (status_out)
        *status_out = status;
    return ws;
}

/* ---- sending --------------------------------------------------------------- */

int plxt_ws_send_frame(plxt_ws_t *ws, int opcode, bool fin, const void *data,
                       size_t len)
{
    unsigned char *frame = malloc(len + 14), mask[4];
    const unsigned char *src = data;
    size_t h = 0;
    int rc;

    if (!frame || RAND_bytes(mask, sizeof mask) != 1) {
        free(frame);
        return -1;
    }
    frame[h++] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        frame[h++] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        frame[h++] = 0x80 | 126;
        frame[h++] = (unsigned char)(len >> 8);
        frame[h++] = (unsigned char)len;
    } else {
        frame[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            frame[h++] = (unsigned char)((uint64_t)len >> (8 * i));
    }
    memcpy(frame + h, mask, 4);
    h += 4;
    for (size_t i = 0; i < len; i++)
        frame[h + i] = src[i] ^ mask[i & 3];
    rc = plxt_sock_send_all(ws->fd, frame, h + len, WS_SEND_MS);
    free(frame);
    return rc;
}

int plxt_ws_send(plxt_ws_t *ws, int opcode, const void *data, size_t len)
{
    return plxt_ws_send_frame(ws, opcode, true, data, len);
}

int plxt_ws_send_text(plxt_ws_t *ws, const char *text)
{
    return plxt_ws_send(ws, PLXT_WS_TEXT, text, strlen(text));
}

int plxt_ws_send_close(plxt_ws_t *ws, int code, const char *reason)
{
    unsigned char payload[125];
    size_t rlen = reason ? strlen(reason) : 0;

    if (rlen > sizeof payload - 2)
        rlen = sizeof payload - 2;
    payload[0] = (unsigned char)(code >> 8);
    payload[1] = (unsigned char)code;
    if (rlen)
        memcpy(payload + 2, reason, rlen);
    ws->close_sent = true;
    return plxt_ws_send(ws, PLXT_WS_CLOSE, payload, code ? rlen + 2 : 0);
}

/* ---- receiving --------------------------------------------------------------- */

typedef struct frame {
    int            opcode;
    bool           fin;
    unsigned char *payload;   /* malloc'd, NUL-terminated */
    size_t         len;
} frame_t;

/* one frame: 1, 0 peer closed, -1 error/timeout/protocol */
static int read_frame(plxt_ws_t *ws, frame_t *f, double deadline)
{
    unsigned char *p;
    size_t hlen = 2;
    uint64_t len;
    int rc;

    if ((rc = ws_need(ws, 2, deadline)) <= 0)
        return rc;
    p = (unsigned char *)ws->in;
    len = p[1] & 0x7f;
    hlen += len == 126 ? 2 : len == 127 ? 8 : 0;
    hlen += (p[1] & 0x80) ? 4 : 0;
    if ((rc = ws_need(ws, hlen, deadline)) <= 0)
        return rc;
    p = (unsigned char *)ws->in;
    if (len == 126)
        len = (uint64_t)p[2] << 8 | p[3];
    else if (len == 127)
        for (int i = 0, j = 2; i < 8; i++, j++)
            len = (i ? len << 8 : 0) | p[j];
    if (len > WS_MSG_MAX)
        return -1;
    if ((rc = ws_need(ws, hlen + (size_t)len, deadline)) <= 0)
        return rc;
    p = (unsigned char *)ws->in;
    f->fin = p[0] & 0x80;
    f->opcode = p[0] & 0x0f;
    f->len = (size_t)len;
    f->payload = malloc(f->len + 1);
    if (!f->payload)
        return -1;
    memcpy(f->payload, p + hlen, f->len);
    if (p[1] & 0x80)   /* servers must not mask, but unmask if one does */
        for (size_t i = 0; i < f->len; i++)
            f->payload[i] ^= p[hlen - 4 + (i & 3)];
    f->payload[f->len] = '\0';
    ws_consume(ws, hlen + f->len);
    return 1;
}

static void take_close(plxt_ws_t *ws, frame_t *f, plxt_ws_msg_t *msg)
{
    msg->close_code = 1005;
    if (f->len >= 2) {
        msg->close_code = f->payload[0] << 8 | f->payload[1];
        snprintf(msg->close_reason, sizeof msg->close_reason, "%.*s",
                 (int)(f->len - 2), (const char *)f->payload + 2);
    }
    /* answer a close the server started, as the protocol asks */
    if (!ws->close_sent) {
        ws->close_sent = true;
        plxt_ws_send(ws, PLXT_WS_CLOSE, f->payload, f->len >= 2 ? 2 : 0);
    }
}

/* append a data frame to the message being assembled */
static int add_fragment(plxt_ws_msg_t *msg, frame_t *f)
{
    char *d;

    if (msg->len + f->len > WS_MSG_MAX)
        return -1;
    d = realloc(msg->data, msg->len + f->len + 1);
    if (!d)
        return -1;
    memcpy(d + msg->len, f->payload, f->len);
    msg->len += f->len;
    d[msg->len] = '\0';
    msg->data = d;
    return 0;
}

int plxt_ws_recv(plxt_ws_t *ws, plxt_ws_msg_t *msg, int timeout_ms)
{
    double deadline = plxt_now_ms() + timeout_ms;
    frame_t f;
    int rc;

    memset(msg, 0, sizeof *msg);
    for (;;) {
        memset(&f, 0, sizeof f);
        if ((rc = read_frame(ws, &f, deadline)) <= 0) {
            plxt_ws_msg_free(msg);
            return rc;
        }
        if (f.opcode == PLXT_WS_PING) {
            plxt_ws_send(ws, PLXT_WS_PONG, f.payload, f.len);
            free(f.payload);
            continue;
        }
        if (f.opcode == PLXT_WS_CLOSE || f.opcode == PLXT_WS_PONG) {
            plxt_ws_msg_free(msg);
            msg->opcode = f.opcode;
            if (f.opcode == PLXT_WS_CLOSE)
                take_close(ws, &f, msg);
            msg->data = (char *)f.payload;
            msg->len = f.len;
            return 1;
        }
        if (f.opcode != PLXT_WS_CONT)
            msg->opcode = f.opcode;
        rc = add_fragment(msg, &f);
        free(f.payload);
        if (rc != 0) {
            plxt_ws_msg_free(msg);
            return -1;
        }
        if (f.fin)
            return 1;
    }
}

void plxt_ws_msg_free(plxt_ws_msg_t *msg)
{
    free(msg->data);
    memset(msg, 0, sizeof *msg);
}

bool plxt_ws_wait_eof(plxt_ws_t *ws, int timeout_ms)
{
    double deadline = plxt_now_ms() + timeout_ms;

    ws->in_len = 0;
    while (!ws->eof) {
        int rc = ws_fill(ws, deadline);
        if (rc < 0)
            return errno == ECONNRESET;
        ws->in_len = 0;   /* whatever still comes is of no interest */
    }
    return true;
}

void plxt_ws_free(plxt_ws_t *ws)
{
    if (!ws)
        return;
    if (ws->fd >= 0)
        close(ws->fd);
    free(ws->in);
    free(ws);
}

const char *plxt_ws_protocol(const plxt_ws_t *ws)
{
    return ws->protocol;
}
