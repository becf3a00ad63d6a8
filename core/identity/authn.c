/*
 * authn.c - who is calling: the request.begin hook that turns a credential
 * into the request's principal
 *
 * Runs at PLX_HOOK_REALLY_FIRST, before rate limiting, so limits can be
 * charged to the principal. Credentials: "Authorization: Bearer <jwt>",
 * "Authorization: Bearer plx_..." or "X-API-Key: plx_..." (API keys are
 * apikeys.c's business), and on a WebSocket upgrade without either,
 * "Sec-WebSocket-Protocol: bearer, <token>" as browsers can send it. A request without any credential stays anonymous
 * and the route's auth option decides; a credential that is present but
 * not good is answered 401 at once, never downgraded to anonymous, so a
 * client with a dead token learns it instead of seeing public data.
 *
 * A JWT proves who signed it, not that its session still stands: one
 * query per request checks that the session is neither revoked nor expired
 * and that the user is not disabled, so logout, a password change or an
 * admin disabling a user cuts off every access token of the session at
 * once instead of when it expires.
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "http.h"
#include "loader.h"
#include "registry.h"
#include "identity/identity.h"
#include "identity/crypto.h"

#include <string.h>
#include <strings.h>
#include <time.h>

#define TOKEN_MAX 8192   /* far above any token we issue */

static const char SESSION_SQL[] =
    "SELECT u.role = 'admin'"
    "  FROM plexus.sessions s JOIN plexus.users u ON u.id = s.user_id"
    " WHERE s.id = $1 AND u.id = $2 AND s.revoked_at IS NULL"
    "   AND s.expires_at > now() AND u.disabled_at IS NULL";

/* 401 with RFC 6750's error attribute. Returning an error (not PLX_OK)
 * stops the hook run at once, whether or not the registry checks for an
 * answered request; http.c sees the request answered. */
static plx_status_t refuse(plx_request_t *r, const char *why)
{
    identity_ratelimit_auth_failed(r);
    core_response_header(r, "WWW-Authenticate", "Bearer error=\"invalid_token\"");
    core_reply_problem(r, 401, "invalid_token", "%s", why);
    return PLX_ERR_AUTH;
}

/* the token of "Bearer <token>" (scheme case-insensitive), NULL otherwise */
static const char *bearer_token(const char *header)
{
    if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t'))
        return NULL;
    header += 6;
    while (*header == ' ' || *header == '\t')
        header++;
    return *header ? header : NULL;
}

static bool token_plausible(const char *t)
{
    size_t len = strnlen(t, TOKEN_MAX + 1);

    if (len == 0 || len > TOKEN_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c >= 0x7f)
            return false;
    }
    return true;
}

static plx_status_t by_api_key(plx_request_t *r, const char *key)
{
    core_principal_t p;
    plx_status_t st;

    memset(&p, 0, sizeof p);
    st = identity_apikey_authenticate(r, key, &p);
    if (st == PLX_ERR_AUTH)
        return refuse(r, "the API key is unknown, revoked or expired");
    if (st != PLX_OK)
        return st;
    p.api_key = true;
    core_request_principal_set(r, &p);
    return PLX_OK;
}

static plx_status_t by_jwt(plx_request_t *r, const char *token)
{
    identity_claims_t c;
    core_principal_t p;
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (identity_jwt_verify(token, time(NULL), &c) != PLX_OK
        || !core_uuid_valid(c.sub) || !core_uuid_valid(c.sid))
        return refuse(r, "the access token is invalid or expired");
    const char *params[] = { c.sid, c.sub };
    st = core_db_query(r, SESSION_SQL, 2, params, &res);
    if (st != PLX_OK)
        return st == PLX_ERR_DB ? PLX_ERR_DB : PLX_ERR_INTERNAL;
    if (core_db_rows(res) != 1)
        return refuse(r, "the session of this token has ended");
    memset(&p, 0, sizeof p);
    snprintf(p.user_id, sizeof p.user_id, "%s", c.sub);
    snprintf(p.session_id, sizeof p.session_id, "%s", c.sid);
    p.admin = strcmp(core_db_value(res, 0, 0), "t") == 0;
    core_request_principal_set(r, &p);
    return PLX_OK;
}

/* Browsers cannot set headers on a WebSocket: they offer the token as a
 * subprotocol, "Sec-WebSocket-Protocol: bearer, <token>", and the server
 * echoes "bearer" (ws.c). The token of such an upgrade, copied into out;
 * NULL when the request is not one. */
static const char *subprotocol_token(plx_request_t *r, char *out, size_t len)
{
    const char *upgrade = core_request_header(r, "Upgrade");
    const char *p = core_request_header(r, "Sec-WebSocket-Protocol");
    size_t n;

    if (!upgrade || strcasecmp(upgrade, "websocket") != 0 || !p)
        return NULL;
    while (*p == ' ' || *p == '\t')
        p++;
    if (strncmp(p, "bearer", 6) != 0)
        return NULL;
    p += 6;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != ',')
        return NULL;
    p++;
    while (*p == ' ' || *p == '\t')
        p++;
    n = strcspn(p, ", \t");
    if (n == 0 || n >= len)
        return NULL;
    memcpy(out, p, n);
    out[n] = '\0';
    return out;
}

static plx_status_t authn_begin(plx_request_t *r, void *data, void *arg)
{
    const char *auth = core_request_header(r, "Authorization");
    const char *xkey = core_request_header(r, "X-API-Key");
    const char *token;
    char proto_token[TOKEN_MAX + 1];

    (void)data;
    (void)arg;
    token = !auth && !xkey ? subprotocol_token(r, proto_token, sizeof proto_token) : NULL;
    /* an address that has spent its budget on refused credentials gets no
     * more lookups until it refills */
    if ((auth || xkey || token) && identity_ratelimit_auth_spent(r))
        return PLX_ERR_LIMIT;
    if (token) {
        if (!token_plausible(token))
            return refuse(r, "expected \"Sec-WebSocket-Protocol: bearer, <token>\"");
        if (strncmp(token, "plx_", 4) == 0)
            return by_api_key(r, token);
        return by_jwt(r, token);
    }
    if (!auth && !xkey)
        return PLX_DECLINED;   /* anonymous: the route's auth option decides */
    if (auth && xkey)
        return refuse(r, "send one credential, not both Authorization and X-API-Key");
    if (xkey) {
        if (strncmp(xkey, "plx_", 4) != 0 || !token_plausible(xkey))
            return refuse(r, "X-API-Key expects a key \"plx_...\"");
        return by_api_key(r, xkey);
    }
    token = bearer_token(auth);
    if (!token || !token_plausible(token))
        return refuse(r, "expected \"Authorization: Bearer <token>\"");
    if (strncmp(token, "plx_", 4) == 0)
        return by_api_key(r, token);
    return by_jwt(r, token);
}

bool identity_authn_hook(void)
{
    static const plx_hook_order_t order = { .size = sizeof(plx_hook_order_t),
                                            .position = PLX_HOOK_REALLY_FIRST };

    return core_hook_add(core_module_self(), PLX_HOOK_REQUEST_BEGIN, authn_begin,
                         NULL, &order) == PLX_OK;
}
