/*
 * test_loader.c - the loader's refusals and ordering, with real shared
 * objects built from tests/plugins/
 *
 * Each refusal must be one log line naming the file and the reason, so each
 * test captures stderr and looks for both.
 */
#include "config.h"
#include "core.h"
#include "conf.h"
#include "loader.h"
#include "http.h"
#include "registry.h"

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

static char dir[256];
static char plugin_dir[512];
static char log_path[600];
static int saved_stderr = -1;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* a fresh config folder with the given modules enabled */
static void setup_config(const char *const *modules)
{
    char path[1024], text[1024];

    snprintf(dir, sizeof dir, "/tmp/plx-loader-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/plugins.d", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/plexus.conf", dir);
    snprintf(text, sizeof text, "[server]\nmodule_dir = %s\n", plugin_dir);
    write_file(path, text);
    for (; modules && *modules; modules++) {
        snprintf(path, sizeof path, "%s/plugins.d/%s.conf", dir, *modules);
        write_file(path, "[module]\nload = yes\n");
    }
}

static void capture_start(void)
{
    snprintf(log_path, sizeof log_path, "%s/stderr.log", dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

/* stop capturing; returns what was logged (caller frees) and echoes it */
static char *capture_end(void)
{
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    char *s = core_read_file(log_path, 1 << 20, NULL);
    assert_non_null(s);
    fputs(s, stderr);
    return s;
}

static bool load(void)
{
    char path[512];
    int errors = 0;

    snprintf(path, sizeof path, "%s/plexus.conf", dir);
    core_cfg = core_config_load(path, &errors);
    assert_non_null(core_cfg);
    assert_int_equal(errors, 0);
    return core_modules_load(core_cfg,
                             core_config_get(core_cfg, "server", "module_dir"));
}

static int teardown(void **state)
{
    char cmd[600];

    core_modules_unload();
    core_registry_free();
    core_routes_free();
    core_config_free(core_cfg);
    core_cfg = NULL;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return 0;
}

/* load the given modules and expect a refusal mentioning every needle */
static void expect_refusal(const char *const *modules, const char *const *needles)
{
    setup_config(modules);
    capture_start();
    bool ok = load();
    char *log = capture_end();
    assert_false(ok);
    for (; *needles; needles++) {
        if (!strstr(log, *needles))
            fail_msg("log lacks \"%s\":\n%s", *needles, log);
    }
    assert_int_equal(core_module_count(), 0);
    free(log);
}

#define LIST(...) ((const char *const[]){ __VA_ARGS__, NULL })

static void test_good_module_loads(void **state)
{
    setup_config(LIST("good"));
    assert_true(load());
    assert_int_equal(core_module_count(), 1);
    plx_module_t *m = core_module_find("good");
    assert_non_null(m);
    assert_string_equal(m->info->version, "1.2.3");
    assert_int_equal(m->state, CORE_MOD_LOADED);
}

static void test_disabled_module_is_skipped(void **state)
{
    char path[512];

    setup_config(LIST("good"));
    snprintf(path, sizeof path, "%s/plugins.d/good.conf", dir);
    write_file(path, "[module]\nload = no\n");
    assert_true(load());
    assert_int_equal(core_module_count(), 0);
}

static void test_missing_file(void **state)
{
    expect_refusal(LIST("ghost"), LIST("ghost.so", "No such file", "ghost.conf"));
}

static void test_no_descriptor(void **state)
{
    expect_refusal(LIST("no_descriptor"),
                   LIST("no_descriptor.so", "no \\\"plx_module_info\\\" symbol"));
}

static void test_bad_magic(void **state)
{
    expect_refusal(LIST("bad_magic"), LIST("bad_magic.so", "bad magic 0xdeadbeef"));
}

/* "<what>ABI 1.<core minor>": the refusals name the core's version */
static const char *core_abi(const char *what)
{
    static char buf[128];

    snprintf(buf, sizeof buf, "%s%d.%d", what, PLX_ABI_MAJOR, PLX_ABI_MINOR);
    return buf;
}

static void test_other_major(void **state)
{
    expect_refusal(LIST("bad_major"),
                   LIST("bad_major.so", "built for ABI 2.x", core_abi("core provides ")));
}

static void test_newer_minor(void **state)
{
    expect_refusal(LIST("bad_minor"),
                   LIST("bad_minor.so", "built for ABI 1.99",
                        core_abi("newer than the core's ")));
}

/* built for the next minor with abi_minor_required = the core's: loads,
 * and its init (which checks PLX_API_HAS) runs */
static void test_newer_minor_with_older_requirement_loads(void **state)
{
    plx_module_t *m;

    setup_config(LIST("newer_minor"));
    assert_true(load());
    assert_int_equal(core_module_count(), 1);
    m = core_module_find("newer_minor");
    assert_non_null(m);
    assert_int_equal(m->info->abi_minor, PLX_ABI_MINOR + 1);
    assert_int_equal(m->info->abi_minor_required, PLX_ABI_MINOR);
    assert_true(core_modules_init());
    assert_int_equal(m->state, CORE_MOD_INITIALISED);
}

/* built for the next minor and requiring it: refused, naming both */
static void test_newer_requirement_refused(void **state)
{
    char built[64];

    snprintf(built, sizeof built, "built for ABI 1.%d,", PLX_ABI_MINOR + 1);
    expect_refusal(LIST("needs_newer"),
                   LIST("needs_newer.so", built, core_abi("newer than the core's ")));
}

static void test_name_differs_from_config(void **state)
{
    char path[1024], text[1024];

    setup_config(NULL);
    snprintf(path, sizeof path, "%s/plugins.d/other.conf", dir);
    snprintf(text, sizeof text, "[module]\nload = yes\npath = %s/good.so\n",
             plugin_dir);
    write_file(path, text);
    capture_start();
    bool ok = load();
    char *log = capture_end();
    assert_false(ok);
    assert_non_null(strstr(log, "good.so"));
    assert_non_null(strstr(log, "declares name \\\"good\\\" but its config file is \\\"other.conf\\\""));
    free(log);
}

static void test_missing_dependency(void **state)
{
    expect_refusal(LIST("needs_missing"),
                   LIST("needs_missing.so", "requires module \\\"nonexistent\\\""));
}

static void test_cycle(void **state)
{
    expect_refusal(LIST("cycle_a", "cycle_b"),
                   LIST("dependency cycle among \\\"cycle_a\\\", \\\"cycle_b\\\""));
}

static void test_dependency_order(void **state)
{
    setup_config(LIST("after_good", "good"));
    assert_true(load());
    assert_int_equal(core_module_count(), 2);
    assert_string_equal(core_module_at(0)->name, "good");
    assert_string_equal(core_module_at(1)->name, "after_good");
}

static void test_duplicate_route(void **state)
{
    setup_config(LIST("good", "dup_route"));
    assert_true(load());
    capture_start();
    bool ok = core_modules_init();
    char *log = capture_end();
    assert_false(ok);
    assert_non_null(strstr(log, "/api/v1/good"));
    assert_non_null(strstr(log, "\\\"good\\\""));
    assert_non_null(strstr(log, "\\\"dup_route\\\""));
    free(log);
}

static void test_init_failure(void **state)
{
    setup_config(LIST("init_fails"));
    assert_true(load());
    capture_start();
    bool ok = core_modules_init();
    char *log = capture_end();
    assert_false(ok);
    assert_non_null(strstr(log, "module \\\"init_fails\\\""));
    assert_non_null(strstr(log, "failed to initialise: invalid input"));
    assert_int_equal(core_module_find("init_fails")->state, CORE_MOD_FAILED);
    free(log);
}

typedef struct order_probe_svc {
    uint32_t size;
    const char *(*log)(void);
    void (*reset)(void);
} order_probe_svc_t;

static void test_hook_order(void **state)
{
    setup_config(LIST("order_probe"));
    assert_true(load());
    assert_true(core_modules_init());
    assert_true(core_hooks_sort());
    const order_probe_svc_t *svc = core_service_get("order_probe.log", 1);
    assert_non_null(svc);
    svc->reset();
    assert_int_equal(core_hook_run("probe.point", NULL, NULL), PLX_OK);
    assert_string_equal(svc->log(), "abcd");
    assert_null(core_service_get("order_probe.log", 2));
}

int main(void)
{
    const char *b = getenv("PLX_BUILDDIR");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_good_module_loads, teardown),
        cmocka_unit_test_teardown(test_disabled_module_is_skipped, teardown),
        cmocka_unit_test_teardown(test_missing_file, teardown),
        cmocka_unit_test_teardown(test_no_descriptor, teardown),
        cmocka_unit_test_teardown(test_bad_magic, teardown),
        cmocka_unit_test_teardown(test_other_major, teardown),
        cmocka_unit_test_teardown(test_newer_minor, teardown),
        cmocka_unit_test_teardown(test_newer_minor_with_older_requirement_loads, teardown),
        cmocka_unit_test_teardown(test_newer_requirement_refused, teardown),
        cmocka_unit_test_teardown(test_name_differs_from_config, teardown),
        cmocka_unit_test_teardown(test_missing_dependency, teardown),
        cmocka_unit_test_teardown(test_cycle, teardown),
        cmocka_unit_test_teardown(test_dependency_order, teardown),
        cmocka_unit_test_teardown(test_duplicate_route, teardown),
        cmocka_unit_test_teardown(test_init_failure, teardown),
        cmocka_unit_test_teardown(test_hook_order, teardown),
    };

    snprintf(plugin_dir, sizeof plugin_dir, "%s/tests/plugins/.libs",
             b ? b : ".");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
