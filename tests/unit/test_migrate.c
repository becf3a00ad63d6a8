/*
 * test_migrate.c - the migration runner against a throw-away database
 *
 * Each test registers its own owners (fake modules with their own folders
 * of SQL files written here), so the tests share one database and one
 * configuration without seeing each other's files. The core's real
 * sql/0001_core.sql is registered every time: after the first run it is
 * simply already applied.
 */
#include "config.h"
#include "core.h"
#include "conf.h"
#include "db.h"
#include "loader.h"
#include "migrate.h"
#include "pgtest.h"

#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

/* file-local helpers of migrate.c, visible under PLX_UNIT_TESTS */
bool core_migrate_parse_name(const char *name, int *version);
void core_migrate_checksum(const void *data, size_t len, char out[65]);
int core_migrate_error_line(const char *sql, const char *pos);

static char dbname[64];
static char *conninfo;
static char tmp[256];
static char log_path[512];
static int saved_stderr = -1;

/* ---- helpers ---------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* <tmp>/<owner>/<name> with text; returns the owner's folder */
static const char *sql_file(const char *owner, const char *name,
                            const char *text)
{
    static char folder[512];
    char path[1024];

    snprintf(folder, sizeof folder, "%s/%s", tmp, owner);
    mkdir(folder, 0700);
    snprintf(path, sizeof path, "%s/%s", folder, name);
    write_file(path, text);
    return folder;
}

static void core_sql_dir(char *out, size_t len)
{
    const char *src = getenv("PLX_SRCDIR");
    snprintf(out, len, "%s/sql", src && *src ? src : ".");
}

/* forget every registration, then register the core's folder */
static void reset_owners(void)
{
    char dir[600];

    core_migrations_free();
    core_sql_dir(dir, sizeof dir);
    core_migrations_set_core_dir(dir);
}

static void add_owner(struct plx_module *m, const char *folder)
{
    assert_int_equal(core_migrations_add(m, folder), PLX_OK);
}

static void capture_start(void)
{
    snprintf(log_path, sizeof log_path, "%s/stderr.log", tmp);
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

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected \"%s\" in:\n%s", needle, hay);
}

static PGconn *db(void)
{
    PGconn *pg = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    return pg;
}

/* first value of a one-row query, copied into out */
static void query1(const char *sql, const char *param, char *out, size_t len)
{
    PGconn *pg = db();
    const char *params[1] = { param };
    PGresult *res = PQexecParams(pg, sql, param ? 1 : 0, NULL, params, NULL,
                                 NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    assert_int_equal(PQntuples(res), 1);
    snprintf(out, len, "%s", PQgetisnull(res, 0, 0) ? "NULL" : PQgetvalue(res, 0, 0));
    PQclear(res);
    PQfinish(pg);
}

static long count_rows(const char *owner)
{
    char v[32];
    query1("SELECT count(*) FROM plexus.schema_migrations WHERE owner = $1",
           owner, v, sizeof v);
    return strtol(v, NULL, 10);
}

static bool relation_exists(const char *name)
{
    char v[8];
    query1("SELECT to_regclass($1) IS NOT NULL", name, v, sizeof v);
    return strcmp(v, "t") == 0;
}

static char *status_text(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    assert_non_null(f);
    assert_true(core_migrate_status(f));
    fclose(f);
    fputs(buf, stderr);
    return buf;
}

/* ---- setup -------------------------------------------------------------------- */

static int group_setup(void **state)
{
    char path[600], text[1200];
    int errors = 0;

    conninfo = pgtest_db_create(dbname);
    if (!conninfo)
        return -1;
    snprintf(tmp, sizeof tmp, "/tmp/plx-migrate-XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    snprintf(path, sizeof path, "%s/plexus.conf", tmp);
    snprintf(text, sizeof text,
             "[server]\ndata_dir = %s/data\n\n"
             "[database]\nurl = %s\npool_size = 2\n", tmp, conninfo);
    write_file(path, text);
    core_cfg = core_config_load(path, &errors);
    if (!core_cfg || errors)
        return -1;
    return core_db_setup(core_cfg) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[600];

    core_migrations_free();
    core_db_shutdown();
    core_config_free(core_cfg);
    core_cfg = NULL;
    pgtest_db_drop(dbname);
    free(conninfo);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp);
    return 0;
}

/* ---- pure helpers --------------------------------------------------------------- */

static void test_file_names(void **state)
{
    int v = -1;

    assert_true(core_migrate_parse_name("0001_core.sql", &v));
    assert_int_equal(v, 1);
    assert_true(core_migrate_parse_name("0420_add-index_2.sql", &v));
    assert_int_equal(v, 420);
    assert_false(core_migrate_parse_name("001_short.sql", &v));
    assert_false(core_migrate_parse_name("0001-core.sql", &v));
    assert_false(core_migrate_parse_name("0001_.sql", &v));
    assert_false(core_migrate_parse_name("0001_core.SQL", &v));
    assert_false(core_migrate_parse_name("0001_co re.sql", &v));
    assert_false(core_migrate_parse_name("abcd_core.sql", &v));
}

static void test_checksum_and_lines(void **state)
{
    char sum[65];

    core_migrate_checksum("abc", 3, sum);
    assert_string_equal(sum, "ba7816bf8f01cfea414140de5dae2223"
                             "b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(core_migrate_error_line("a;\nb;\nc", "7"), 3);
    assert_int_equal(core_migrate_error_line("a;\nb;\nc", "6"), 2);
    assert_int_equal(core_migrate_error_line("a;\nb;\nc", "1"), 1);
    /* positions count characters: "é" is one */
    assert_int_equal(core_migrate_error_line("\xc3\xa9\nx", "3"), 2);
    assert_int_equal(core_migrate_error_line("abc", NULL), 0);
}

/* ---- against the database ------------------------------------------------------- */

static void test_applies_in_order(void **state)
{
    struct plx_module alpha = { .name = "alpha" };
    const char *f3 = "ALTER TABLE alpha.t ADD COLUMN m integer;\n";
    const char *dir;
    char v[80], sum[65];

    reset_owners();
    /* written last first: the order comes from the numbers */
    sql_file("alpha", "0003_column.sql", f3);
    sql_file("alpha", "0002_row.sql", "INSERT INTO alpha.t (n) VALUES (1);\n");
    sql_file("alpha", "notes.txt", "not a migration");
    dir = sql_file("alpha", "0001_table.sql",
                   "CREATE SCHEMA alpha;\nCREATE TABLE alpha.t (n integer);\n");
    add_owner(&alpha, dir);

    assert_true(core_migrate_apply());
    assert_int_equal(count_rows("alpha"), 3);
    /* sql/0001_core.sql, 0002_identity.sql, 0003_jobs.sql */
    assert_int_equal(count_rows("core"), 3);
    assert_true(relation_exists("plexus.jobs"));
    query1("SELECT string_agg(name, ',' ORDER BY version) FROM"
           " plexus.schema_migrations WHERE owner = $1", "alpha", v, sizeof v);
    assert_string_equal(v, "0001_table.sql,0002_row.sql,0003_column.sql");
    query1("SELECT checksum FROM plexus.schema_migrations WHERE owner = $1"
           " AND version = 3", "alpha", v, sizeof v);
    core_migrate_checksum(f3, strlen(f3), sum);
    assert_string_equal(v, sum);
    query1("SELECT count(m) || '/' || count(*) FROM alpha.t", NULL, v, sizeof v);
    assert_string_equal(v, "0/1");
}

static void test_second_run_is_idempotent(void **state)
{
    struct plx_module alpha = { .name = "alpha" };
    char before[80], after[80], why[256];

    reset_owners();
    add_owner(&alpha, sql_file("alpha", "0002_row.sql",
                               "INSERT INTO alpha.t (n) VALUES (1);\n"));
    query1("SELECT max(applied_at)::text FROM plexus.schema_migrations"
           " WHERE owner = $1", "alpha", before, sizeof before);
    assert_true(core_migrate_apply());
    assert_true(core_migrate_apply());
    query1("SELECT max(applied_at)::text FROM plexus.schema_migrations"
           " WHERE owner = $1", "alpha", after, sizeof after);
    assert_string_equal(before, after);
    assert_int_equal(count_rows("alpha"), 3);
    query1("SELECT count(*) FROM alpha.t", NULL, after, sizeof after);
    assert_string_equal(after, "1");
    assert_true(core_migrate_current(why, sizeof why));
    assert_string_equal(why, "");
}

static void test_changed_checksum_refuses(void **state)
{
    struct plx_module beta = { .name = "beta" };
    const char *v1 = "CREATE TABLE beta_one (a integer);\n";
    const char *v2 = "CREATE TABLE beta_one (a integer, b text);\n";
    char old_sum[65], new_sum[65], why[256];
    const char *dir;

    reset_owners();
    dir = sql_file("beta", "0001_one.sql", v1);
    add_owner(&beta, dir);
    assert_true(core_migrate_apply());

    /* edit the applied file and add a pending one */
    sql_file("beta", "0001_one.sql", v2);
    sql_file("beta", "0002_two.sql", "CREATE TABLE beta_two (a integer);\n");
    reset_owners();
    add_owner(&beta, dir);
    capture_start();
    bool ok = core_migrate_apply();
    char *log = capture_end();
    assert_false(ok);
    core_migrate_checksum(v1, strlen(v1), old_sum);
    core_migrate_checksum(v2, strlen(v2), new_sum);
    assert_contains(log, "beta/0001_one.sql");
    assert_contains(log, old_sum);
    assert_contains(log, new_sum);
    free(log);
    assert_false(relation_exists("public.beta_two"));
    assert_int_equal(count_rows("beta"), 1);
    assert_false(core_migrate_current(why, sizeof why));
    assert_contains(why, "beta/0001_one.sql");

    char *status = status_text();
    assert_contains(status, "CHANGED");
    free(status);
    /* put it back: the runner is happy again and applies the new file */
    sql_file("beta", "0001_one.sql", v1);
    reset_owners();
    add_owner(&beta, dir);
    assert_true(core_migrate_apply());
    assert_true(relation_exists("public.beta_two"));
}

static void test_bad_sql_rolls_back(void **state)
{
    struct plx_module gamma = { .name = "gamma" };
    const char *dir;

    reset_owners();
    sql_file("gamma", "0001_good.sql", "CREATE TABLE gamma_good (a integer);\n");
    sql_file("gamma", "0003_after.sql", "CREATE TABLE gamma_after (a integer);\n");
    dir = sql_file("gamma", "0002_bad.sql",
                   "CREATE TABLE gamma_half (a integer);\n"
                   "INSERT INTO gamma_good VALUES (1);\n"
                   "CREATE TABLEX gamma_oops (a integer);\n");
    add_owner(&gamma, dir);
    capture_start();
    bool ok = core_migrate_apply();
    char *log = capture_end();
    assert_false(ok);
    assert_contains(log, "gamma/0002_bad.sql");
    assert_contains(log, "line 3");
    assert_contains(log, "syntax error");
    free(log);
    assert_true(relation_exists("public.gamma_good"));
    assert_false(relation_exists("public.gamma_half"));
    assert_false(relation_exists("public.gamma_after"));
    assert_int_equal(count_rows("gamma"), 1);
    char v[16];
    query1("SELECT count(*) FROM gamma_good", NULL, v, sizeof v);
    assert_string_equal(v, "0");
}

static void test_commit_inside_file_refused(void **state)
{
    struct plx_module eta = { .name = "eta" };

    reset_owners();
    add_owner(&eta, sql_file("eta", "0001_commit.sql",
                             "CREATE TABLE eta_t (a integer);\nCOMMIT;\n"));
    capture_start();
    bool ok = core_migrate_apply();
    char *log = capture_end();
    assert_false(ok);
    assert_contains(log, "eta/0001_commit.sql");
    free(log);
    assert_int_equal(count_rows("eta"), 0);
    /* the file committed its own work, which is exactly why it is refused */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "%s/eta/0001_commit.sql", tmp);
    unlink(cmd);
}

static void *runner(void *arg)
{
    bool *ok = arg;
    *ok = core_migrate_apply();
    return NULL;
}

static void test_concurrent_runners_apply_once(void **state)
{
    struct plx_module delta = { .name = "delta" };
    pthread_t t[3];
    bool ok[3] = { false, false, false };
    char v[16];

    reset_owners();
    /* not idempotent on purpose: a second run of it would fail */
    sql_file("delta", "0001_slow.sql",
             "CREATE TABLE delta_t (n integer);\nSELECT pg_sleep(0.5);\n");
    add_owner(&delta, sql_file("delta", "0002_row.sql",
                               "INSERT INTO delta_t VALUES (1);\n"));
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, runner, &ok[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++)
        assert_true(ok[i]);
    assert_int_equal(count_rows("delta"), 2);
    query1("SELECT count(*) FROM delta_t", NULL, v, sizeof v);
    assert_string_equal(v, "1");
}

static void test_out_of_order_refused(void **state)
{
    struct plx_module zeta = { .name = "zeta" };
    const char *dir;

    reset_owners();
    dir = sql_file("zeta", "0002_later.sql", "CREATE TABLE zeta_b (a integer);\n");
    add_owner(&zeta, dir);
    assert_true(core_migrate_apply());
    sql_file("zeta", "0001_earlier.sql", "CREATE TABLE zeta_a (a integer);\n");
    capture_start();
    bool ok = core_migrate_apply();
    char *log = capture_end();
    assert_false(ok);
    assert_contains(log, "zeta/0001_earlier.sql");
    free(log);
    assert_false(relation_exists("public.zeta_a"));
}

static void test_status_and_missing_file(void **state)
{
    struct plx_module eps = { .name = "epsilon" };
    char path[600], why[256];
    const char *dir;

    reset_owners();
    dir = sql_file("epsilon", "0001_first.sql", "CREATE TABLE eps_a (a integer);\n");
    sql_file("epsilon", "0002_second.sql", "CREATE TABLE eps_b (a integer);\n");
    add_owner(&eps, dir);
    assert_true(core_migrate_apply());
    sql_file("epsilon", "0003_third.sql", "CREATE TABLE eps_c (a integer);\n");
    snprintf(path, sizeof path, "%s/0001_first.sql", dir);
    assert_int_equal(unlink(path), 0);
    reset_owners();
    add_owner(&eps, dir);

    char *status = status_text();
    assert_contains(status, "OWNER");
    assert_contains(status, "0001_core.sql");
    assert_contains(status, "0002_second.sql");
    assert_contains(status, "0003_third.sql");
    assert_non_null(strstr(status, "pending"));
    assert_contains(status, "file missing");
    free(status);
    assert_false(core_migrate_current(why, sizeof why));
    assert_contains(why, "epsilon/0003_third.sql");

    capture_start();
    bool ok = core_migrate_apply();
    char *log = capture_end();
    assert_true(ok);
    assert_contains(log, "epsilon/0001_first.sql");
    free(log);
    assert_true(relation_exists("public.eps_c"));
    assert_true(core_migrate_current(why, sizeof why));
}

static void test_relative_folder_and_errors(void **state)
{
    struct plx_module theta = { .name = "theta" };
    char path[700];

    reset_owners();
    /* relative: <server.data_dir>/<module>/<dir> */
    assert_int_equal(core_migrations_add(&theta, "sql"), PLX_ERR_NOT_FOUND);
    snprintf(path, sizeof path, "%s/data", tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/data/theta", tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/data/theta/sql", tmp);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/data/theta/sql/0001_theta.sql", tmp);
    write_file(path, "CREATE TABLE theta_t (a integer);\n");
    assert_int_equal(core_migrations_add(&theta, "sql"), PLX_OK);
    assert_int_equal(core_migrations_add(&theta, "sql"), PLX_ERR_CONFLICT);
    assert_true(core_migrate_apply());
    assert_true(relation_exists("public.theta_t"));
    assert_int_equal(core_migrations_add(NULL, "sql"), PLX_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_names),
        cmocka_unit_test(test_checksum_and_lines),
        cmocka_unit_test(test_applies_in_order),
        cmocka_unit_test(test_second_run_is_idempotent),
        cmocka_unit_test(test_changed_checksum_refuses),
        cmocka_unit_test(test_bad_sql_rolls_back),
        cmocka_unit_test(test_commit_inside_file_refused),
        cmocka_unit_test(test_concurrent_runners_apply_once),
        cmocka_unit_test(test_out_of_order_refused),
        cmocka_unit_test(test_status_and_missing_file),
        cmocka_unit_test(test_relative_folder_and_errors),
    };

    if (!pgtest_available()) {
        fprintf(stderr, "SKIP: no PostgreSQL (PGHOST unset)\n");
        return 77;
    }
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
