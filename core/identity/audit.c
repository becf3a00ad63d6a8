/*
 * audit.c - the audit log: who did what to what, from where
 *
 * One row in plexus.audit_log per security-relevant action (logins, key and
 * membership changes, admin edits), written by the core and, through
 * plx_audit (ABI 1.1), by modules. Writing it must never fail the request
 * that caused it: a row that cannot be written becomes an error line in
 * the log naming the action, and the caller goes on. The reading side
 * (GET /api/v1/admin/audit) is in admin.c.
 */
#include "config.h"
#include "identity.h"

#include "db.h"

#include <stdlib.h>
#include <string.h>

#define AUDIT_ACTION_MAX  64
#define AUDIT_TARGET_MAX  200
#define AUDIT_DETAILS_MAX 8192

/* what a module may pass as an action: "apikey.created", "team.role_changed" */
static bool action_ok(const char *s)
{
    size_t n = 0;

    if (!s)
        return false;
    for (; s[n]; n++) {
        char c = s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'
                  || c == '.' || c == ':' || c == '-';
        if (!ok || n >= AUDIT_ACTION_MAX)
            return false;
    }
    return n > 0;
}

/* bounded, valid UTF-8 text, or NULL (stored as SQL NULL) */
static const char *text_or_null(const char *s, size_t max)
{
    size_t n;

    if (!s || !*s)
        return NULL;
    n = strnlen(s, max + 1);
    if (n > max || !core_utf8_valid(s, n))
        return NULL;
    return s;
}

static char *details_text(json_t *details)
{
    char *s;

    if (!details || !json_is_object(details))
        return NULL;
    s = json_dumps(details, JSON_COMPACT);
    if (s && strlen(s) > AUDIT_DETAILS_MAX) {
        free(s);
        return NULL;
    }
    return s;
}

void identity_audit_actor(plx_request_t *r, const char *actor_id,
                          const char *action, const char *target_type,
                          const char *target_id, json_t *details)
{
    const char *rid = r ? core_request_id(r) : NULL;
    const char *actor = actor_id ? actor_id : core_request_user_id(r);
    char *det;
    plx_status_t st;

    if (!action_ok(action)) {
        core_log(PLX_LOG_ERROR, "audit", rid, "audit entry dropped: expected an "
                 "action of [a-z0-9_.:-], 1..%d bytes", AUDIT_ACTION_MAX);
        return;
    }
    if (actor && !core_uuid_valid(actor))
        actor = NULL;
    det = details_text(details);
    const char *params[7] = {
        actor, action, text_or_null(target_type, AUDIT_ACTION_MAX),
        text_or_null(target_id, AUDIT_TARGET_MAX),
        r ? text_or_null(core_request_remote_addr(r), 64) : NULL,
        rid, det ? det : "{}",
    };
    st = core_db_query(NULL,
                       "INSERT INTO plexus.audit_log (actor_id, action, "
                       "target_type, target_id, ip, request_id, details) "
                       "VALUES ($1::uuid, $2, $3, $4, $5, $6, $7::jsonb)",
                       7, params, NULL);
    free(det);
    if (st != PLX_OK)
        core_log(PLX_LOG_ERROR, "audit", rid, "audit entry \"%s\" lost: %s",
                 action, core_status_str(st));
}

void core_audit(plx_request_t *r, const char *action, const char *target_type,
                const char *target_id, json_t *details)
{
    identity_audit_actor(r, NULL, action, target_type, target_id, details);
}
