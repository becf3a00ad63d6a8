/*
 * example.c - a complete Plexus module, meant to be copied
 *
 * It shows each thing a module can register: routes (JSON in and out, path
 * and query parameters), a request.begin hook, an event subscription, a
 * versioned service, a durable job with its own table and migration, a
 * Server-Sent Events stream and a WebSocket echo. It includes nothing but
 * <plexus/module.h> and links nothing but jansson; build it with
 * `make` beside this file (see README.md).
 */
#include <plexus/module.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STREAM_MAX_EVENTS   10000
#define STREAM_MAX_INTERVAL 60000   /* ms */

static atomic_long requests_seen, events_seen, streams_cancelled;

/* ---- the service this module offers others: example.greeter/1 ---------- */

typedef struct example_greeter {
    uint32_t size;   /* sizeof at build time: callers check before new fields */
    int (*greet)(const char *name, char *out, size_t outlen);
} example_greeter_t;

static int greet(const char *name, char *out, size_t outlen)
{
    return snprintf(out, outlen, "greetings, %s", name);
}

static const example_greeter_t greeter = { sizeof greeter, greet };

/* ---- routes ------------------------------------------------------------ */

static plx_status_t hello(plx_request_t *r, void *arg)
{
    const char *name = plx_request_query(r, "name");
    char msg[160];

    snprintf(msg, sizeof msg, "hello, %s", name && *name ? name : "world");
    return plx_reply_json(r, 200, json_pack("{s:s}", "message", msg));
}

static plx_status_t echo(plx_request_t *r, void *arg)
{
    json_t *body;

    if (plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;   /* the core has answered 400 or 413 */
    plx_event_emit("example.echoed", body);
    return plx_reply_json(r, 200, json_pack("{s:O}", "echo", body));
}

static plx_status_t item(plx_request_t *r, void *arg)
{
    return plx_reply_json(r, 200, json_pack("{s:s}", "id",
                                            plx_request_param(r, "id")));
}

static plx_status_t service(plx_request_t *r, void *arg)
{
    const example_greeter_t *g = plx_service_get("example.greeter", 1);
    char text[128];

    if (!g)
        return plx_reply_problem(r, 503, "service_missing",
                                 "service \"example.greeter\" version 1 is not loaded");
    g->greet("plugin author", text, sizeof text);
    return plx_reply_json(r, 200, json_pack("{s:s}", "greeting", text));
}

static plx_status_t db_now(plx_request_t *r, void *arg)
{
    plx_db_res_t *res;
    plx_status_t st = plx_db_query(r, "SELECT now()::text", 0, NULL, &res);

    if (st != PLX_OK)
        return st;   /* the core answers: 503 when the database is away */
    return plx_reply_json(r, 200, json_pack("{s:s}", "now",
                                            plx_db_value(res, 0, 0)));
}

static plx_status_t stats(plx_request_t *r, void *arg)
{
    return plx_reply_json(r, 200, json_pack("{s:I, s:I, s:I}",
        "requests_seen", (json_int_t)atomic_load(&requests_seen),
        "events_seen", (json_int_t)atomic_load(&events_seen),
        "streams_cancelled", (json_int_t)atomic_load(&streams_cancelled)));
}

/* ---- a durable job: fails on purpose fail_times, then records ---------- */

static plx_status_t enqueue(plx_request_t *r, void *arg)
{
    json_t *body;
    char id[37];

    if (plx_request_json(r, &body) != PLX_OK)
        return PLX_OK;
    if (!json_is_string(json_object_get(body, "message")))
        return plx_reply_problem(r, 400, "invalid_field",
                                 "\"message\" must be a string");
    plx_status_t st = plx_job_enqueue(arg, "example.record", body, NULL, id);
    if (st != PLX_OK)
        return st;
    return plx_reply_json(r, 202, json_pack("{s:s}", "job_id", id));
}

static plx_status_t record(plx_job_t *job, void *arg)
{
    json_t *p = plx_job_payload(job);
    json_int_t fail_times = json_integer_value(json_object_get(p, "fail_times"));
    char attempt[16];

    if (plx_job_attempt(job) <= fail_times) {
        plx_job_error_set(job, "failing on purpose");
        return PLX_ERR_UPSTREAM;
    }
    snprintf(attempt, sizeof attempt, "%d", plx_job_attempt(job));
    const char *params[] = { json_string_value(json_object_get(p, "message")),
                             attempt };
    plx_db_res_t *res;
    plx_status_t st = plx_db_query(NULL,
        "INSERT INTO example.records (message, attempt) VALUES ($1, $2::int)",
        2, params, &res);
    if (res)
        plx_db_free(res);
    return st;
}

static plx_status_t records(plx_request_t *r, void *arg)
{
    plx_db_res_t *res;
    plx_status_t st = plx_db_query(r,
        "SELECT message, attempt FROM example.records ORDER BY id LIMIT 100",
        0, NULL, &res);
    json_t *list = json_array();

    if (st != PLX_OK) {
        json_decref(list);
        return st;
    }
    for (int i = 0; i < plx_db_rows(res); i++)
        json_array_append_new(list, json_pack("{s:s, s:i}",
            "message", plx_db_value(res, i, 0),
            "attempt", atoi(plx_db_value(res, i, 1))));
    return plx_reply_json(r, 200, json_pack("{s:o}", "records", list));
}

/* ---- Server-Sent Events: count ticks, interval_ms apart ---------------- */

static long query_long(plx_request_t *r, const char *name, long def, long max)
{
    const char *v = plx_request_query(r, name);
    char *end;
    long n;

    if (!v)
        return def;
    n = strtol(v, &end, 10);
    return (*end || n < 0 || n > max) ? -1 : n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

static plx_status_t stream(plx_request_t *r, void *arg)
{
    long count = query_long(r, "count", 5, STREAM_MAX_EVENTS);
    long interval = query_long(r, "interval_ms", 100, STREAM_MAX_INTERVAL);
    char data[64];

    if (count < 0 || interval < 0)
        return plx_reply_problem(r, 400, "invalid_query",
            "count must be 0..%d and interval_ms 0..%d",
            STREAM_MAX_EVENTS, STREAM_MAX_INTERVAL);
    plx_sse_t *s = plx_sse_begin(r);
    if (!s)
        return PLX_ERR_GONE;
    for (long i = 0; i < count; i++) {
        if (i > 0)
            sleep_ms(interval);
        snprintf(data, sizeof data, "{\"n\":%ld}", i);
        if (plx_sse_closed(s) || plx_sse_send(s, "tick", data, strlen(data)) != PLX_OK) {
            atomic_fetch_add(&streams_cancelled, 1);
            plx_rlog(arg, r, PLX_LOG_INFO, "stream cancelled after %ld events", i);
            return PLX_OK;
        }
    }
    plx_sse_send(s, "done", "{}", 2);
    return PLX_OK;
}

/* ---- WebSocket echo ------------------------------------------------------ */

static plx_status_t ws_message(plx_ws_t *ws, int text, const char *data,
                               size_t len, void *arg)
{
    if (text && len == 3 && memcmp(data, "bye", 3) == 0) {
        plx_ws_close(ws, 1000, "bye");
        return PLX_OK;
    }
    return plx_ws_send(ws, text, data, len);
}

static const plx_ws_handlers_t ws_echo = {
    .size = sizeof(plx_ws_handlers_t), .message = ws_message,
};

/* ---- hook and event ------------------------------------------------------ */

static plx_status_t on_request(plx_request_t *r, void *data, void *arg)
{
    atomic_fetch_add(&requests_seen, 1);
    plx_response_header(r, "X-Example", "1");
    return PLX_OK;
}

static void on_echoed(const char *topic, json_t *payload, void *arg)
{
    atomic_fetch_add(&events_seen, 1);
}

/* ---- registration: the table of contents -------------------------------- */

/* each handler gets the module as its argument (for logging and jobs) */
#define ROUTE(method, path, fn, what)                                         \
    plx_route_add(m, method, path, fn, m, PLX_ROUTE_OPTS(.summary = what))

static plx_status_t example_init(plx_module_t *m)
{
    static const plx_hook_order_t order = { sizeof order, PLX_HOOK_MIDDLE, NULL, NULL };

    if (ROUTE("GET", "/api/v1/example/hello", hello, "say hello")
        || ROUTE("POST", "/api/v1/example/echo", echo, "echo a JSON body")
        || ROUTE("GET", "/api/v1/example/items/{id}", item, "show a path parameter")
        || ROUTE("GET", "/api/v1/example/service", service, "call a service")
        || ROUTE("GET", "/api/v1/example/db", db_now, "ask the database the time")
        || ROUTE("GET", "/api/v1/example/stats", stats, "counters of this module")
        || ROUTE("POST", "/api/v1/example/jobs", enqueue, "enqueue a job")
        || ROUTE("GET", "/api/v1/example/records", records, "what the jobs recorded")
        || ROUTE("GET", "/api/v1/example/stream", stream, "a Server-Sent Events stream")
        || plx_ws_route_add(m, "/api/v1/example/ws", &ws_echo, m, NULL)
        || plx_hook_add(m, PLX_HOOK_REQUEST_BEGIN, on_request, m, &order)
        || plx_event_subscribe(m, "example.echoed", on_echoed, NULL)
        || plx_service_register(m, "example.greeter", 1, &greeter)
        || plx_job_handler_add(m, "example.record", record, NULL)
        || plx_migrations_add(m, "sql"))
        return PLX_ERR_INTERNAL;
    plx_log(m, PLX_LOG_INFO, "example module ready");
    return PLX_OK;
}

PLX_MODULE(.name = "example", .version = "1.0.0",
           .description = "the plugin author's template",
           .init = example_init);
