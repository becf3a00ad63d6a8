/*
 * api.c - the table of functions handed to modules
 *
 * The only place that knows both the public plx_api_t layout and the core's
 * functions. Entries are appended, never moved: the _Static_asserts pin the
 * offsets of the first ones so an accidental reorder fails the build.
 */
#include "config.h"
#include "core.h"
#include "conf.h"
#include "db.h"
#include "http.h"
#include "http_client.h"
#include "identity/identity.h"
#include "input.h"
#include "jobs.h"
#include "loader.h"
#include "multipart.h"
#include "migrate.h"
#include "registry.h"

_Static_assert(offsetof(plx_api_t, size) == 0, "size must stay first");
_Static_assert(offsetof(plx_api_t, logv) == 16, "ABI 1.0 layout moved");

static void api_logv(plx_module_t *m, plx_request_t *r, plx_log_level_t level,
                     const char *fmt, va_list ap)
{
    core_logv(level, m ? m->name : "core", r ? core_request_id(r) : NULL,
              fmt, ap);
}

static const char *api_config_get(plx_module_t *m, const char *key)
{
    if (!m || !key)
        return NULL;
    return core_config_get(core_cfg, m->name, key);
}

static const char *api_config_core_get(const char *section, const char *key)
{
    if (!section || !key)
        return NULL;
    return core_config_get(core_cfg, section, key);
}

static const char *api_module_name(plx_module_t *m)
{
    return m ? m->name : NULL;
}

#define VIEW_SET(out, f, v)                                                 \
    do {                                                                    \
        if ((out)->size >= offsetof(plx_module_view_t, f) + sizeof((out)->f)) \
            (out)->f = (v);                                                 \
    } while (0)

static plx_status_t api_module_at(size_t i, plx_module_view_t *out)
{
    plx_module_t *m = core_module_at(i);

    if (!out || out->size < sizeof(out->size))
        return PLX_ERR_INVALID;
    if (!m || !m->info)
        return PLX_ERR_NOT_FOUND;
    VIEW_SET(out, name, m->name);
    VIEW_SET(out, version, m->info->version);
    VIEW_SET(out, description, m->info->description);
    VIEW_SET(out, abi_major, m->info->abi_major);
    VIEW_SET(out, abi_minor, m->info->abi_minor);
    return PLX_OK;
}

static const plx_api_t api = {
    .size = sizeof(plx_api_t),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .core_version = PACKAGE_VERSION,

    .logv = api_logv,
    .config_get = api_config_get,
    .config_core_get = api_config_core_get,

    .route_add = core_route_add,
    .ws_route_add = core_ws_route_add,

    .hook_add = core_hook_add,
    .hook_run = core_hook_run,
    .event_subscribe = core_event_subscribe,
    .event_emit = core_event_publish,
    .service_register = core_service_register,
    .service_get = core_service_get,

    .job_handler_add = core_job_handler_add,
    .job_enqueue = core_job_enqueue,
    .job_payload = core_job_payload,
    .job_id = core_job_id,
    .job_attempt = core_job_attempt,
    .job_error_set = core_job_error_set,

    .migrations_add = core_migrations_add,

    .request_method = core_request_method,
    .request_path = core_request_path,
    .request_param = core_request_param,
    .request_query = core_request_query,
    .request_header = core_request_header,
    .request_id = core_request_id,
    .request_remote_addr = core_request_remote_addr,
    .request_body = core_request_body,
    .request_json = core_request_json,
    .request_note_get = core_request_note_get,
    .request_note_set = core_request_note_set,
    .palloc = core_palloc,
    .pstrdup = core_pstrdup,
    .request_cleanup_add = core_request_cleanup_add,

    .response_header = core_response_header,
    .reply = core_reply,
    .reply_json = core_reply_json,
    .reply_problemv = core_reply_problemv,
    .error_set = core_error_set,

    .sse_begin = core_sse_begin,
    .sse_send = core_sse_send,
    .sse_closed = core_sse_closed,

    .ws_send = core_ws_send,
    .ws_close = core_ws_close,
    .ws_set_data = core_ws_set_data,
    .ws_get_data = core_ws_get_data,
    .ws_param = core_ws_param,

    .db_query = core_db_query,
    .db_acquire = core_db_acquire,
    .db_release = core_db_release,
    .db_exec = core_db_exec,
    .db_rows = core_db_rows,
    .db_cols = core_db_cols,
    .db_value = core_db_value,
    .db_col = core_db_col,
    .db_affected = core_db_affected,
    .db_error = core_db_error,
    .db_free = core_db_free,

    .status_str = core_status_str,
    .module_name = api_module_name,

    .request_user_id = core_request_user_id,
    .request_is_admin = core_request_is_admin,
    .request_has_scope = core_request_has_scope,
    .team_role = core_team_role,
    .audit = core_audit,
    .core_stats = core_stats,

    .module_at = api_module_at,

    .sse_comment = core_sse_comment,
    .error_format_add = core_error_format_add,

    /* 1.4: routes */
    .routes_add = core_routes_add,

    /* 1.4: problem details */
    .problem_new = core_problem_new,
    .reply_problem_json = core_reply_problem_json,

    /* 1.4: outbound HTTP, sealed secrets, multipart uploads */
    .http_request = core_http_request,
    .http_resp_status = core_http_resp_status,
    .http_resp_body = core_http_resp_body,
    .http_resp_header = core_http_resp_header,
    .http_resp_free = core_http_resp_free,
    .secret_seal = core_secret_seal,
    .secret_unseal = core_secret_unseal,
    .mem_free = core_mem_free,
    .request_multipart = core_request_multipart,

    /* 1.4: transactions, LISTEN/NOTIFY, durable events, jobs */
    .db_tx = core_db_tx,
    .db_listen = core_db_listen,
    .db_notify = core_db_notify,
    .event_emit_tx = core_event_emit_tx,
    .event_subscribe_durable = core_event_subscribe_durable,
    .job_lease_renew = core_job_lease_renew,
    .job_recurring_add = core_job_recurring_add,

    /* 1.4: encodings (encode.c) */
    .base64_encode = core_base64_encode,
    .base64_decode = core_base64_decode,
    .hex_encode = core_hex_encode,
    .hex_decode = core_hex_decode,
    .uuid_valid = core_uuid_valid,
    .uuid_parse = core_uuid_parse,
    .uuid_format = core_uuid_format,
    .uuid_new = core_uuid_new,
    .utf8_valid = core_utf8_valid,
    .utf8_repair = core_utf8_repair,
    .utf8_chars = core_utf8_chars,

    /* 1.4: request input (http_request.c, input.c) */
    .request_body_object = core_request_body_object,
    .field_string = core_field_string,
    .field_uuid = core_field_uuid,
    .field_int = core_field_int,
    .field_bool = core_field_bool,
    .field_enum = core_field_enum,
    .field_time = core_field_time,
    .page_read = core_page_read,
    .page_cursor = core_page_cursor,

    /* 1.4, modules that stand alone: a module's own rate classes */
    .rate_class_add = identity_rate_class_add,
};

const plx_api_t *core_api(void)
{
    return &api;
}
