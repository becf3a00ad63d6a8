/*
 * test_cli.c - plexusd's command line: --version, --check-config, modules,
 * migrate and migrate status, run as an operator would
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "pgtest.h"

static char dir[256];
static char out_path[300];
static const char *builddir, *srcdir;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    static char buf[1 << 16];
    size_t n;

    assert_non_null(f);
    n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* run plexusd with args (and an optional "NAME=value" env); output in *out */
static int plexusd(const char *env, const char *args, char **out)
{
    char cmd[2048];
    int rc;

    snprintf(cmd, sizeof cmd, "%s %s/plexusd %s > %s 2>&1", env ? env : "",
             builddir, args, out_path);
    rc = system(cmd);
    *out = slurp(out_path);
    fprintf(stderr, "$ plexusd %s\n%s", args, *out);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static void module_conf(const char *name, const char *load)
{
    char path[512], text[1024];

    snprintf(path, sizeof path, "%s/plugins.d/%s.conf", dir, name);
    snprintf(text, sizeof text,
             "[module]\nload = %s\npath = %s/tests/plugins/.libs/%s.so\n"
             "data_dir = %s/tests/plugins/%s\n",
             load, builddir, name, srcdir, name);
    write_file(path, text);
}

static int setup(void **state)
{
    char path[512];

    snprintf(dir, sizeof dir, "/tmp/plx-cli-XXXXXX");
    assert_non_null(mkdtemp(dir));
    snprintf(out_path, sizeof out_path, "%s/out.txt", dir);
    snprintf(path, sizeof path, "%s/plugins.d", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/plexus.conf", dir);
    char text[1024];
    snprintf(text, sizeof text, "[server]\nlisten = 127.0.0.1:0\ndata_dir = %s\n"
             "dev_mode = yes\n", srcdir);
    write_file(path, text);
    module_conf("example", "yes");
    module_conf("good", "no");
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_version(void **state)
{
    char *out;
    assert_int_equal(plexusd(NULL, "--version", &out), 0);
    assert_non_null(strstr(out, "plexusd " PACKAGE_VERSION " (plugin ABI 1.4)"));
}

static void test_check_config_ok(void **state)
{
    char args[512], *out;
    snprintf(args, sizeof args, "--config %s/plexus.conf --check-config", dir);
    assert_int_equal(plexusd(NULL, args, &out), 0);
    assert_non_null(strstr(out, "is valid; 1 module enabled"));
}

static void test_check_config_reports_each_error_with_line(void **state)
{
    char path[512], args[1024], *out;

    snprintf(path, sizeof path, "%s/plexus.conf", dir);
    write_file(path, "[server]\n"
                     "listen = 127.0.0.1:0\n"
                     "threads = many\n"
                     "no_such_key = 1\n"
                     "[nonsense]\n"
                     "x = 1\n");
    snprintf(args, sizeof args, "--config %s --check-config", path);
    assert_int_not_equal(plexusd(NULL, args, &out), 0);
    assert_non_null(strstr(out, "plexus.conf:3:"));
    assert_non_null(strstr(out, "plexus.conf:4:"));
    assert_non_null(strstr(out, "plexus.conf:5:"));
}

static void test_check_config_env_override_is_checked(void **state)
{
    char args[512], *out;
    snprintf(args, sizeof args, "--config %s/plexus.conf --check-config", dir);
    assert_int_not_equal(plexusd("PLEXUS_SERVER_THREADS=lots", args, &out), 0);
    assert_non_null(strstr(out, "PLEXUS_SERVER_THREADS"));
}

static void test_check_config_refuses_bad_module(void **state)
{
    char args[512], *out;

    module_conf("bad_major", "yes");
    snprintf(args, sizeof args, "--config %s/plexus.conf --check-config", dir);
    assert_int_not_equal(plexusd(NULL, args, &out), 0);
    assert_non_null(strstr(out, "bad_major.so"));
    assert_non_null(strstr(out, "built for ABI 2.x"));
}

static void test_modules_lists_state(void **state)
{
    char args[512], *out;
    snprintf(args, sizeof args, "--config %s/plexus.conf modules", dir);
    assert_int_equal(plexusd(NULL, args, &out), 0);
    assert_non_null(strstr(out, "NAME"));
    assert_non_null(strstr(out, "example"));
    assert_non_null(strstr(out, "1.0.0"));
    assert_non_null(strstr(out, "loaded"));
    assert_non_null(strstr(out, "example.so"));
    assert_non_null(strstr(out, "disabled"));   /* good, load = no */
}

static void test_unknown_command(void **state)
{
    char *out;
    assert_int_not_equal(plexusd(NULL, "frobnicate", &out), 0);
    assert_non_null(strstr(out, "unknown command"));
}

static void test_migrate_and_status(void **state)
{
    char name[64], env[1024], args[512], *out;

    if (!pgtest_available())
        skip();
    char *conninfo = pgtest_db_create(name);
    assert_non_null(conninfo);
    snprintf(env, sizeof env, "PLEXUS_DATABASE_URL='%s'", conninfo);
    snprintf(args, sizeof args, "--config %s/plexus.conf migrate status", dir);
    assert_int_equal(plexusd(env, args, &out), 0);
    assert_non_null(strstr(out, "0 applied, 3 pending"));

    snprintf(args, sizeof args, "--config %s/plexus.conf migrate", dir);
    assert_int_equal(plexusd(env, args, &out), 0);
    assert_int_equal(plexusd(env, args, &out), 0);   /* idempotent */

    snprintf(args, sizeof args, "--config %s/plexus.conf migrate status", dir);
    assert_int_equal(plexusd(env, args, &out), 0);
    assert_non_null(strstr(out, "core"));
    assert_non_null(strstr(out, "0001_core.sql"));
    assert_non_null(strstr(out, "example"));
    assert_non_null(strstr(out, "0001_records.sql"));
    assert_non_null(strstr(out, "3 applied, 0 pending, 0 changed"));
    pgtest_db_drop(name);
    free(conninfo);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_config_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_config_reports_each_error_with_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_config_env_override_is_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_config_refuses_bad_module, setup, teardown),
        cmocka_unit_test_setup_teardown(test_modules_lists_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_and_status, setup, teardown),
    };

    builddir = getenv("PLX_BUILDDIR");
    srcdir = getenv("PLX_SRCDIR");
    if (!builddir || !srcdir) {
        fprintf(stderr, "PLX_BUILDDIR and PLX_SRCDIR must be set (make check sets them)\n");
        return 1;
    }
    if (!pgtest_available())
        fprintf(stderr, "SKIP: no PostgreSQL (PGHOST unset): migrate tests skipped\n");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
