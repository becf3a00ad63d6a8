/*
 * test_registry.c - hook order and run rules, events, services
 *
 * Modules are faked with a bare struct plx_module carrying a name; hooks
 * append their arg to a trail so a test can read the order they ran in.
 */
#include "config.h"
#include "registry.h"
#include "loader.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct plx_module mod_a = { .name = "a" };
static struct plx_module mod_b = { .name = "b" };
static struct plx_module mod_c = { .name = "c" };
static struct plx_module mod_d = { .name = "d" };

static char trail[512];
static char logbuf[8192];
static int saved_stderr = -1;
static char logpath[] = "/tmp/plx_test_registry_XXXXXX";

static void trail_add(const char *s)
{
    size_t len = strlen(trail);
    snprintf(trail + len, sizeof trail - len, "%s%s", len ? "," : "", s);
}

static plx_status_t hook_ok(plx_request_t *r, void *data, void *arg)
{
    (void)r; (void)data;
    trail_add(arg);
    return PLX_OK;
}

static plx_status_t hook_declined(plx_request_t *r, void *data, void *arg)
{
    (void)r; (void)data;
    trail_add(arg);
    return PLX_DECLINED;
}

static plx_status_t hook_forbidden(plx_request_t *r, void *data, void *arg)
{
    (void)r; (void)data;
    trail_add(arg);
    return PLX_ERR_FORBIDDEN;
}

static const plx_hook_order_t *order_at(int position)
{
    static plx_hook_order_t o[8];
    static size_t next;
    plx_hook_order_t *p = &o[next++ % 8];

    *p = (plx_hook_order_t){ .size = sizeof *p, .position = position };
    return p;
}

static void add(plx_module_t *m, const char *name, const plx_hook_order_t *o)
{
    assert_int_equal(core_hook_add(m, name, hook_ok, (void *)m->name, o), PLX_OK);
}

static void capture_begin(void)
{
    int fd = open(logpath, O_WRONLY | O_TRUNC);

    assert_true(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static const char *capture_end(void)
{
    int fd;
    ssize_t n;

    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    fd = open(logpath, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, logbuf, sizeof logbuf - 1);
    close(fd);
    logbuf[n > 0 ? n : 0] = '\0';
    return logbuf;
}

static int group_setup(void **state)
{
    int fd = mkstemp(logpath);
    (void)state;
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    unlink(logpath);
    return 0;
}

static int setup(void **state)
{
    (void)state;
    trail[0] = '\0';
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    core_registry_free();
    return 0;
}

static void run(const char *hook)
{
    trail[0] = '\0';
    assert_int_equal(core_hook_run(hook, NULL, NULL), PLX_OK);
}

/* ---- hook order ------------------------------------------------------- */

static void test_order_by_position(void **state)
{
    (void)state;
    add(&mod_a, "t.hook", order_at(PLX_HOOK_LAST));
    add(&mod_b, "t.hook", order_at(PLX_HOOK_FIRST));
    add(&mod_c, "t.hook", NULL);   /* NULL: middle */
    add(&mod_d, "t.hook", order_at(PLX_HOOK_REALLY_FIRST));
    run("t.hook");
    assert_string_equal(trail, "a,b,c,d");   /* registration order until sorted */
    assert_true(core_hooks_sort());
    run("t.hook");
    assert_string_equal(trail, "d,b,c,a");
    assert_true(core_hooks_sort());   /* sorting again changes nothing */
    run("t.hook");
    assert_string_equal(trail, "d,b,c,a");
}

static void test_ties_in_registration_order(void **state)
{
    (void)state;
    add(&mod_c, "t.tie", order_at(PLX_HOOK_MIDDLE));
    add(&mod_a, "t.tie", order_at(PLX_HOOK_MIDDLE));
    add(&mod_b, "t.tie", order_at(PLX_HOOK_MIDDLE));
    add(&mod_d, "t.tie", order_at(PLX_HOOK_FIRST));
    assert_true(core_hooks_sort());
    run("t.tie");
    assert_string_equal(trail, "d,c,a,b");
}

static void test_before_after(void **state)
{
    static const char *const before_a[] = { "a", NULL };
    static const char *const after_a[] = { "a", NULL };
    plx_hook_order_t ob = { .size = sizeof ob, .position = PLX_HOOK_MIDDLE,
                            .before = before_a };
    plx_hook_order_t oc = { .size = sizeof oc, .position = PLX_HOOK_FIRST,
                            .after = after_a };
    (void)state;

    add(&mod_a, "t.names", order_at(PLX_HOOK_MIDDLE));
    add(&mod_b, "t.names", &ob);
    add(&mod_c, "t.names", &oc);
    add(&mod_d, "t.names", order_at(PLX_HOOK_LAST));
    assert_true(core_hooks_sort());
    run("t.names");
    /* names beat positions: c is FIRST but must follow a, which follows b */
    assert_string_equal(trail, "b,a,c,d");
}

static void test_before_applies_to_all_of_a_module(void **state)
{
    static const char *const before_b[] = { "b", NULL };
    plx_hook_order_t oa = { .size = sizeof oa, .position = PLX_HOOK_LAST,
                            .before = before_b };
    (void)state;

    add(&mod_b, "t.multi", order_at(PLX_HOOK_FIRST));
    add(&mod_c, "t.multi", order_at(PLX_HOOK_FIRST));
    add(&mod_b, "t.multi", order_at(PLX_HOOK_MIDDLE));
    add(&mod_a, "t.multi", &oa);
    assert_true(core_hooks_sort());
    run("t.multi");
    assert_string_equal(trail, "c,a,b,b");
}

static void test_cycle(void **state)
{
    static const char *const before_b[] = { "b", NULL };
    static const char *const before_c[] = { "c", NULL };
    static const char *const before_a[] = { "a", NULL };
    plx_hook_order_t oa = { .size = sizeof oa, .before = before_b };
    plx_hook_order_t ob = { .size = sizeof ob, .before = before_c };
    plx_hook_order_t oc = { .size = sizeof oc, .before = before_a };
    const char *log;
    (void)state;

    add(&mod_d, "t.cycle", NULL);
    add(&mod_a, "t.cycle", &oa);
    add(&mod_b, "t.cycle", &ob);
    add(&mod_c, "t.cycle", &oc);
    add(&mod_a, "t.fine", NULL);
    capture_begin();
    assert_false(core_hooks_sort());
    log = capture_end();
    assert_non_null(strstr(log, "t.cycle"));
    assert_non_null(strstr(log, "cycle"));
    assert_non_null(strstr(log, "\\\"a\\\""));
    assert_non_null(strstr(log, "\\\"b\\\""));
    assert_non_null(strstr(log, "\\\"c\\\""));
    assert_null(strstr(log, "\\\"d\\\""));
    assert_null(strstr(log, "t.fine"));
}

static void test_two_module_cycle_after(void **state)
{
    static const char *const after_b[] = { "b", NULL };
    static const char *const after_a[] = { "a", NULL };
    plx_hook_order_t oa = { .size = sizeof oa, .after = after_b };
    plx_hook_order_t ob = { .size = sizeof ob, .after = after_a };
    const char *log;
    (void)state;

    add(&mod_a, "t.loop", &oa);
    add(&mod_b, "t.loop", &ob);
    capture_begin();
    assert_false(core_hooks_sort());
    log = capture_end();
    assert_non_null(strstr(log, "forms a cycle: \\\"a\\\" after \\\"b\\\" after \\\"a\\\""));
}

static void test_unknown_name_warns(void **state)
{
    static const char *const after_ghost[] = { "ghost", "b", NULL };
    plx_hook_order_t oa = { .size = sizeof oa, .after = after_ghost };
    const char *log;
    (void)state;

    add(&mod_a, "t.ghost", &oa);
    add(&mod_b, "t.ghost", NULL);
    capture_begin();
    assert_true(core_hooks_sort());
    log = capture_end();
    assert_non_null(strstr(log, "\"level\":\"warn\""));
    assert_non_null(strstr(log, "ghost"));
    run("t.ghost");
    assert_string_equal(trail, "b,a");
}

static void test_self_reference_ignored(void **state)
{
    static const char *const before_self[] = { "a", NULL };
    plx_hook_order_t oa = { .size = sizeof oa, .position = PLX_HOOK_LAST,
                            .before = before_self };
    (void)state;

    add(&mod_a, "t.self", &oa);
    add(&mod_a, "t.self", order_at(PLX_HOOK_FIRST));
    assert_true(core_hooks_sort());
}

static void test_old_order_struct(void **state)
{
    static const char *const before_b[] = { "b", NULL };
    /* a caller built when the struct ended after position: before unseen */
    plx_hook_order_t oa = { .size = offsetof(plx_hook_order_t, before),
                            .position = PLX_HOOK_LAST, .before = before_b };
    (void)state;

    add(&mod_b, "t.old", NULL);
    add(&mod_a, "t.old", &oa);
    assert_true(core_hooks_sort());
    run("t.old");
    assert_string_equal(trail, "b,a");
}

/* ---- run rules ----------------------------------------------------------- */

static void test_run_rules(void **state)
{
    (void)state;
    assert_int_equal(core_hook_add(&mod_a, "t.run", hook_declined, "a", NULL), PLX_OK);
    assert_int_equal(core_hook_add(&mod_b, "t.run", hook_ok, "b", NULL), PLX_OK);
    assert_int_equal(core_hook_add(&mod_c, "t.run", hook_forbidden, "c", NULL), PLX_OK);
    assert_int_equal(core_hook_add(&mod_d, "t.run", hook_ok, "d", NULL), PLX_OK);
    assert_int_equal(core_hook_run("t.run", NULL, NULL), PLX_ERR_FORBIDDEN);
    assert_string_equal(trail, "a,b,c");
    /* no hooks: nothing to stop the caller */
    assert_int_equal(core_hook_run("t.nobody", NULL, NULL), PLX_OK);
    assert_true(core_hook_has("t.run"));
    assert_false(core_hook_has("t.nobody"));
}

static int answered_after;   /* answered once this many hooks have run */
static int hooks_run;

static plx_status_t hook_count(plx_request_t *r, void *data, void *arg)
{
    (void)r; (void)data;
    hooks_run++;
    trail_add(arg);
    return PLX_OK;
}

static bool fake_answered(plx_request_t *r)
{
    (void)r;
    return hooks_run >= answered_after;
}

static void test_request_begin_stops_when_answered(void **state)
{
    static int dummy;
    plx_request_t *r = (plx_request_t *)&dummy;
    (void)state;

    assert_int_equal(core_hook_add(&mod_a, PLX_HOOK_REQUEST_BEGIN, hook_count, "a", NULL), PLX_OK);
    assert_int_equal(core_hook_add(&mod_b, PLX_HOOK_REQUEST_BEGIN, hook_count, "b", NULL), PLX_OK);
    assert_int_equal(core_hook_add(&mod_c, PLX_HOOK_REQUEST_BEGIN, hook_count, "c", NULL), PLX_OK);
    assert_int_equal(core_hook_add(&mod_a, PLX_HOOK_REQUEST_END, hook_count, "x", NULL), PLX_OK);
    assert_int_equal(core_hook_add(&mod_b, PLX_HOOK_REQUEST_END, hook_count, "y", NULL), PLX_OK);
    core_hooks_set_answered_check(fake_answered);
    answered_after = 2;
    hooks_run = 0;
    assert_int_equal(core_hook_run(PLX_HOOK_REQUEST_BEGIN, r, NULL), PLX_OK);
    assert_string_equal(trail, "a,b");
    /* only request.begin ends early */
    trail[0] = '\0';
    hooks_run = 5;
    assert_int_equal(core_hook_run(PLX_HOOK_REQUEST_END, r, NULL), PLX_OK);
    assert_string_equal(trail, "x,y");
}

static void test_hook_name_rules(void **state)
{
    char longname[80];
    (void)state;

    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    capture_begin();
    assert_int_equal(core_hook_add(&mod_a, "Request.Begin", hook_ok, "a", NULL), PLX_ERR_INVALID);
    assert_int_equal(core_hook_add(&mod_a, "has space", hook_ok, "a", NULL), PLX_ERR_INVALID);
    assert_int_equal(core_hook_add(&mod_a, "", hook_ok, "a", NULL), PLX_ERR_INVALID);
    assert_int_equal(core_hook_add(&mod_a, NULL, hook_ok, "a", NULL), PLX_ERR_INVALID);
    assert_int_equal(core_hook_add(&mod_a, longname, hook_ok, "a", NULL), PLX_ERR_INVALID);
    assert_int_equal(core_hook_add(&mod_a, "ok.name", NULL, "a", NULL), PLX_ERR_INVALID);
    capture_end();
    assert_int_equal(core_hook_add(&mod_a, "ai.chat.before_v-2", hook_ok, "a", NULL), PLX_OK);
    assert_int_equal(core_hook_add(NULL, "core.thing", hook_ok, "core", NULL), PLX_OK);
}

static void test_dump(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    (void)state;

    assert_non_null(out);
    add(&mod_b, "request.begin", order_at(PLX_HOOK_LAST));
    add(&mod_a, "request.begin", order_at(PLX_HOOK_FIRST));
    add(&mod_c, "ai.chat.before", NULL);
    assert_true(core_hooks_sort());
    core_hooks_dump(out);
    fclose(out);
    assert_string_equal(buf, "ai.chat.before: c\nrequest.begin: a, b\n");
    free(buf);
}

/* ---- events -------------------------------------------------------------- */

static void on_event(const char *topic, json_t *payload, void *arg)
{
    char item[128];

    snprintf(item, sizeof item, "%s:%s:%d", (const char *)arg, topic,
             (int)json_integer_value(json_object_get(payload, "n")));
    trail_add(item);
}

static void test_events(void **state)
{
    json_t *payload = json_pack("{s:i}", "n", 7);
    (void)state;

    assert_int_equal(core_event_subscribe(&mod_a, "a.b", on_event, "exact"), PLX_OK);
    assert_int_equal(core_event_subscribe(&mod_b, "a.*", on_event, "under"), PLX_OK);
    assert_int_equal(core_event_subscribe(&mod_c, "*", on_event, "all"), PLX_OK);
    assert_int_equal(core_event_subscribe(&mod_d, "ab*", on_event, "ab"), PLX_OK);

    core_event_emit("a.b", payload);
    assert_string_equal(trail, "exact:a.b:7,under:a.b:7,all:a.b:7");
    trail[0] = '\0';
    core_event_emit("a.c.d", payload);
    assert_string_equal(trail, "under:a.c.d:7,all:a.c.d:7");
    trail[0] = '\0';
    core_event_emit("a", payload);   /* "a.*" wants something under a. */
    assert_string_equal(trail, "all:a:7");
    trail[0] = '\0';
    core_event_emit("abc", payload);
    assert_string_equal(trail, "all:abc:7,ab:abc:7");
    /* the payload is borrowed: still ours, once */
    assert_int_equal(payload->refcount, 1);
    json_decref(payload);
}

static void test_event_topic_rules(void **state)
{
    (void)state;
    capture_begin();
    assert_int_equal(core_event_subscribe(&mod_a, "", on_event, "x"), PLX_ERR_INVALID);
    assert_int_equal(core_event_subscribe(&mod_a, "a.*.b", on_event, "x"), PLX_ERR_INVALID);
    assert_int_equal(core_event_subscribe(&mod_a, "A.b", on_event, "x"), PLX_ERR_INVALID);
    assert_int_equal(core_event_subscribe(&mod_a, "a.b", NULL, "x"), PLX_ERR_INVALID);
    assert_int_equal(core_event_subscribe(&mod_a, "**", on_event, "x"), PLX_ERR_INVALID);
    assert_int_equal(core_event_subscribe(&mod_a, "*", on_event, "all"), PLX_OK);
    core_event_emit("not a topic", NULL);
    core_event_emit(NULL, NULL);
    capture_end();
    assert_string_equal(trail, "");
}

/* ---- services ---------------------------------------------------------------- */

static void test_services(void **state)
{
    static const int v1 = 1, v2 = 2, other = 3;
    const char *log;
    (void)state;

    assert_int_equal(core_service_register(&mod_a, "ai.chat", 1, &v1), PLX_OK);
    assert_int_equal(core_service_register(&mod_a, "ai.chat", 2, &v2), PLX_OK);
    assert_ptr_equal(core_service_get("ai.chat", 1), &v1);
    assert_ptr_equal(core_service_get("ai.chat", 2), &v2);
    assert_null(core_service_get("ai.chat", 3));
    assert_null(core_service_get("ai.embed", 1));
    assert_null(core_service_get(NULL, 1));

    capture_begin();
    assert_int_equal(core_service_register(&mod_b, "ai.chat", 1, &other),
                     PLX_ERR_CONFLICT);
    assert_int_equal(core_service_register(&mod_b, "Bad Name", 1, &other),
                     PLX_ERR_INVALID);
    assert_int_equal(core_service_register(&mod_b, "ai.x", 1, NULL),
                     PLX_ERR_INVALID);
    log = capture_end();
    assert_non_null(strstr(log, "ai.chat/1"));
    assert_non_null(strstr(log, "module \\\"a\\\""));
    assert_non_null(strstr(log, "module \\\"b\\\""));
    assert_ptr_equal(core_service_get("ai.chat", 1), &v1);
}

static void test_free_resets(void **state)
{
    (void)state;
    add(&mod_a, "t.reset", NULL);
    assert_int_equal(core_service_register(&mod_a, "s", 1, &mod_a), PLX_OK);
    core_registry_free();
    assert_false(core_hook_has("t.reset"));
    assert_null(core_service_get("s", 1));
    /* usable again after a free */
    for (int i = 0; i < 40; i++)
        add(&mod_b, "t.reset", NULL);
    assert_int_equal(core_event_subscribe(&mod_a, "x", on_event, "x"), PLX_OK);
    assert_int_equal(core_service_register(&mod_a, "s", 1, &mod_a), PLX_OK);
    assert_true(core_hooks_sort());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_order_by_position, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ties_in_registration_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_before_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_before_applies_to_all_of_a_module, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cycle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_module_cycle_after, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_name_warns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_self_reference_ignored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_order_struct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_run_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_begin_stops_when_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook_name_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_topic_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_services, setup, teardown),
        cmocka_unit_test_setup_teardown(test_free_resets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
