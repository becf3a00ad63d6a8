/*
 * test_config.c - plexus.conf, plugins.d, environment and *_file overrides
 *
 * Each test writes its files under a fresh mkdtemp() folder. Error lines
 * are observed by pointing stderr (where core_log writes) at a temporary
 * file around the call.
 */
#include "config.h"
#include "conf.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];
    char main[PATH_MAX];
    char log[PATH_MAX];
    int  saved_stderr;
    char *captured;
    core_config_t *cfg;
    int  errors;
} fixture_t;

static const char *const env_used[] = {
    "PLEXUS_SERVER_THREADS", "PLEXUS_SERVER_LISTEN", "PLEXUS_EXAMPLE_GREETING",
    "PLEXUS_DATABASE_URL_FILE", "PLEXUS_EXAMPLE_TOKEN_FILE",
    "PLEXUS_SERVER_REQUEST_TIMEOUT", "PLEXUS_SERVER_PLUGINS_DIR",
    "PLEXUS_DATABASE_URL", "PLEXUS_RATELIMIT_SEARCH", "PLEXUS_RATELIMIT_AI",
    NULL,
};

/* removes path and, if it is a folder, everything under it */
static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *de;

    while (d && (de = readdir(d))) {
        char sub[PATH_MAX];
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
        rm_tree(sub);
    }
    if (d)
        closedir(d);
    remove(path);
}

static int setup(void **state)
{
    fixture_t *f = calloc(1, sizeof *f);

    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/plx_test_config_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->main, sizeof f->main, "%s/plexus.conf", f->dir);
    snprintf(f->log, sizeof f->log, "%s.log", f->dir);
    f->saved_stderr = -1;
    for (size_t i = 0; env_used[i]; i++)
        unsetenv(env_used[i]);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;

    core_config_free(f->cfg);
    free(f->captured);
    rm_tree(f->dir);
    unlink(f->log);
    for (size_t i = 0; env_used[i]; i++)
        unsetenv(env_used[i]);
    free(f);
    return 0;
}

/* writes dir/rel (creating one level of folder if needed) */
static void put(fixture_t *f, const char *rel, const char *content)
{
    char path[PATH_MAX];
    FILE *fp;
    char *slash;

    snprintf(path, sizeof path, "%s/%s", f->dir, rel);
    slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0700);
    *slash = '/';
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(content, fp);
    fclose(fp);
}

static void capture_begin(fixture_t *f)
{
    int fd = open(f->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    fflush(stderr);
    f->saved_stderr = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
}

static const char *capture_end(fixture_t *f)
{
    FILE *fp;
    long n;

    fflush(stderr);
    dup2(f->saved_stderr, STDERR_FILENO);
    close(f->saved_stderr);
    free(f->captured);
    fp = fopen(f->log, "r");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    n = ftell(fp);
    rewind(fp);
    f->captured = calloc(1, (size_t)n + 1);
    assert_non_null(f->captured);
    assert_int_equal(fread(f->captured, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    return f->captured;
}

/* loads f->main with stderr captured */
static core_config_t *load(fixture_t *f)
{
    capture_begin(f);
    f->errors = -1;
    f->cfg = core_config_load(f->main, &f->errors);
    capture_end(f);
    return f->cfg;
}

static void assert_logged(fixture_t *f, const char *needle)
{
    if (!strstr(f->captured, needle))
        fail_msg("expected \"%s\" in the log, found:\n%s", needle, f->captured);
}

/* ---- tests --------------------------------------------------------- */

static void test_defaults(void **state)
{
    fixture_t *f = *state;
    char expect[PATH_MAX];

    put(f, "plexus.conf", "; nothing set\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_string_equal(core_config_get(f->cfg, "server", "listen"),
                        "127.0.0.1:8080");
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 1100);
    assert_int_equal(core_config_ms(f->cfg, "server", "request_timeout"), 10000);
    assert_int_equal(core_config_ms(f->cfg, "server", "keep_alive_timeout"), 5000);
    assert_int_equal(core_config_int(f->cfg, "server", "max_body"), 1048576);
    assert_int_equal(core_config_int(f->cfg, "server", "max_json_depth"), 32);
    assert_true(core_config_bool(f->cfg, "server", "access_log"));
    assert_false(core_config_bool(f->cfg, "server", "dev_mode"));
    assert_null(core_config_get(f->cfg, "server", "public_url"));
    assert_null(core_config_get(f->cfg, "server", "cors_origins"));
    assert_string_equal(core_config_get(f->cfg, "server", "module_dir"),
                        PLX_MODULE_DIR);
    assert_string_equal(core_config_get(f->cfg, "server", "data_dir"),
                        PLX_DATA_DIR);
    snprintf(expect, sizeof expect, "%s/plugins.d", f->dir);
    assert_string_equal(core_config_get(f->cfg, "server", "plugins_dir"), expect);
    assert_string_equal(core_config_get(f->cfg, "log", "level"), "info");
    assert_string_equal(core_config_get(f->cfg, "database", "url"),
                        "postgresql:///plexus");
    assert_int_equal(core_config_int(f->cfg, "database", "pool_size"), 4);
    assert_true(core_config_bool(f->cfg, "database", "migrate_on_start"));
    assert_int_equal(core_config_ms(f->cfg, "jobs", "backoff_max"), 3600000);
    assert_int_equal(core_config_ms(f->cfg, "jobs", "lease"), 300000);
    assert_int_equal(core_config_module_count(f->cfg), 0);
    assert_null(core_config_get(f->cfg, "nosuch", "key"));
    /* without a configuration the declared defaults still answer */
    assert_int_equal(core_config_int(NULL, "server", "threads"), 1100);
}

static void test_file_values(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf",
        "[server]\n"
        "listen = 0.0.0.0:9000\n"
        "threads: 64\n"
        "access_log = no ; an inline comment\n"
        "  dev_mode = true\n"
        "public_url = https://example.org/a;b#c\n"
        "module_dir = mods\n"
        "[log]\n"
        "level = debug\n"
        "[database]\n"
        "url = postgresql://u@db/plexus?sslmode=require\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_string_equal(core_config_get(f->cfg, "server", "listen"), "0.0.0.0:9000");
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 64);
    assert_false(core_config_bool(f->cfg, "server", "access_log"));
    assert_true(core_config_bool(f->cfg, "server", "dev_mode"));
    assert_string_equal(core_config_get(f->cfg, "server", "public_url"),
                        "https://example.org/a;b#c");
    assert_true(strstr(core_config_get(f->cfg, "server", "module_dir"), "/mods"));
    assert_string_equal(core_config_get(f->cfg, "log", "level"), "debug");
    assert_string_equal(core_config_get(f->cfg, "database", "url"),
                        "postgresql://u@db/plexus?sslmode=require");
}

static void test_long_line(void **state)
{
    fixture_t *f = *state;
    char origins[1200], text[1400];
    char *huge;
    size_t len = 0;

    /* longer than libinih's 200-byte line buffer */
    for (int i = 0; i < 40; i++)
        len += (size_t)snprintf(origins + len, sizeof origins - len, "%shttps://app%d.example.org",
                                i ? "," : "", i);
    snprintf(text, sizeof text, "[server]\ncors_origins = %s\nthreads = 7\n", origins);
    put(f, "plexus.conf", text);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_string_equal(core_config_get(f->cfg, "server", "cors_origins"), origins);
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 7);
    core_config_free(f->cfg);

    /* longer than the 8 KiB bound: one error, on the right line */
    huge = malloc(10000);
    assert_non_null(huge);
    len = (size_t)snprintf(huge, 10000, "[server]\npublic_url = ");
    memset(huge + len, 'x', 9000);
    snprintf(huge + len + 9000, 10000 - len - 9000, "\nthreads = 9\n");
    put(f, "plexus.conf", huge);
    free(huge);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 1);
    assert_logged(f, "plexus.conf:2: line too long");
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 9);
}

static void test_env_override(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf", "[server]\nthreads = 8\nlisten = 1.2.3.4:1\n");
    setenv("PLEXUS_SERVER_THREADS", "64", 1);
    setenv("PLEXUS_SERVER_REQUEST_TIMEOUT", "250ms", 1);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 64);
    assert_int_equal(core_config_ms(f->cfg, "server", "request_timeout"), 250);
    assert_string_equal(core_config_get(f->cfg, "server", "listen"), "1.2.3.4:1");
    core_config_free(f->cfg);

    /* a malformed variable is an error naming it; the default stands */
    setenv("PLEXUS_SERVER_THREADS", "many", 1);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 1);
    assert_logged(f, "PLEXUS_SERVER_THREADS");
    assert_logged(f, "expected an integer");
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 1100);
    core_config_free(f->cfg);

    setenv("PLEXUS_SERVER_THREADS", "0", 1);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 1);
    assert_logged(f, "between 1 and 20000");
}

static void test_env_module_key(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf", "");
    put(f, "plugins.d/example.conf",
        "[module]\nload = yes\n[example]\ngreeting = hello\n");
    setenv("PLEXUS_EXAMPLE_GREETING", "bonjour", 1);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_string_equal(core_config_get(f->cfg, "example", "greeting"), "bonjour");
    /* values are stable: a later change of the environment is not seen */
    setenv("PLEXUS_EXAMPLE_GREETING", "hallo", 1);
    assert_string_equal(core_config_get(f->cfg, "example", "greeting"), "bonjour");
}

static void test_file_indirection(void **state)
{
    fixture_t *f = *state;
    char token[PATH_MAX];

    put(f, "secrets/db", "  postgresql://app:pw@db/plexus \n\n");
    put(f, "secrets/key", "k3y\n");
    put(f, "secrets/token", "t0ken");
    snprintf(token, sizeof token, "%s/secrets/token", f->dir);
    put(f, "plexus.conf", "[database]\nurl_file = secrets/db\n");
    put(f, "plugins.d/example.conf",
        "[module]\nload = yes\n[example]\napi_key_file = ../secrets/key\n"
        "direct = d\ndirect_file = /nonexistent/ignored-because-direct-is-set\n");
    setenv("PLEXUS_EXAMPLE_TOKEN_FILE", token, 1);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 1);   /* the unreadable direct_file */
    assert_logged(f, "example.conf:6: cannot read");
    assert_string_equal(core_config_get(f->cfg, "database", "url"),
                        "postgresql://app:pw@db/plexus");
    assert_string_equal(core_config_get(f->cfg, "example", "api_key"), "k3y");
    assert_string_equal(core_config_get(f->cfg, "example", "token"), "t0ken");
    assert_string_equal(core_config_get(f->cfg, "example", "direct"), "d");
    assert_null(core_config_get(f->cfg, "example", "missing"));
}

static void test_file_indirection_errors(void **state)
{
    fixture_t *f = *state;

    put(f, "bad-threads", "lots\n");
    put(f, "plexus.conf", "[database]\nurl_file = /nonexistent/secret\n"
                          "[server]\nthreads_file = bad-threads\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 2);
    assert_logged(f, "plexus.conf:2: cannot read");
    assert_logged(f, "plexus.conf:4: expected an integer");
    assert_string_equal(core_config_get(f->cfg, "database", "url"),
                        "postgresql:///plexus");
    core_config_free(f->cfg);

    /* the environment beats the file, and names the variable on error */
    put(f, "plexus.conf", "");
    setenv("PLEXUS_DATABASE_URL_FILE", "/nonexistent/x", 1);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 1);
    assert_logged(f, "PLEXUS_DATABASE_URL_FILE");
}

static void test_malformed_values(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf",
        "# line 1\n"
        "[server]\n"
        "threads = abc\n"             /* 3 */
        "access_log = maybe\n"        /* 4 */
        "\n"
        "request_timeout = 10x\n"     /* 6 */
        "max_body = 12q\n"            /* 7 */
        "max_json_depth = 0\n"        /* 8: out of range */
        "listen = 127.0.0.1:1\n"
        "[log]\n"
        "level = loud\n"              /* 11 */
        "[jobs]\n"
        "lease = 500ms\n"             /* 13: below 1s */
        "workers = -1\n");            /* 14 */
    assert_non_null(load(f));
    assert_int_equal(f->errors, 8);
    assert_logged(f, "plexus.conf:3: expected an integer");
    assert_logged(f, "plexus.conf:4: expected yes or no");
    assert_logged(f, "plexus.conf:6: expected a duration");
    assert_logged(f, "plexus.conf:7: expected a size");
    assert_logged(f, "plexus.conf:8: expected");
    assert_logged(f, "plexus.conf:11: expected one of debug|info|warn|error");
    assert_logged(f, "plexus.conf:13: expected");
    assert_logged(f, "plexus.conf:14: expected");
    /* malformed values fall back to the defaults; good ones stand */
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 1100);
    assert_int_equal(core_config_ms(f->cfg, "jobs", "lease"), 300000);
    assert_string_equal(core_config_get(f->cfg, "server", "listen"), "127.0.0.1:1");
}

static void test_unknown_and_syntax(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf",
        "orphan = 1\n"                /* 1: before any section */
        "[server]\n"
        "thread = 4\n"                /* 3: unknown key */
        "[sever]\n"                   /* 4: unknown section */
        "listen = x\n"                /* ignored with its section */
        "[database\n"                 /* 6: no ']' */
        "just words\n"                /* 7: no '=' */
        "[jobs]\n"
        "Workers = 3\n"               /* 9: upper case */
        "workers = 3\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 6);
    assert_logged(f, "plexus.conf:1: key");
    assert_logged(f, "plexus.conf:3: unknown key");
    assert_logged(f, "plexus.conf:4: unknown section [sever]");
    assert_logged(f, "plexus.conf:6: expected ']'");
    assert_logged(f, "plexus.conf:7: expected");
    assert_logged(f, "plexus.conf:9: expected a key name");
    assert_int_equal(core_config_int(f->cfg, "jobs", "workers"), 3);
    assert_string_equal(core_config_get(f->cfg, "server", "listen"), "127.0.0.1:8080");
}

/* what core_config_undeclared reported, one "key=value@where" per line */
static void collect_key(const char *key, const char *value, const char *file,
                        int line, void *arg)
{
    char *out = arg;
    size_t n = strlen(out);

    snprintf(out + n, 1024 - n, "%s=%s@%s:%d\n", key, value,
             file ? strrchr(file, '/') + 1 : "env", line);
}

/* [ratelimit] is open: keys other than the core's are module-style names
 * (the rate classes modules register), reported with where they were set,
 * from the file and from PLEXUS_RATELIMIT_<NAME>; a key in the file wins
 * the report over the environment; a malformed name is an error */
static void test_open_section(void **state)
{
    fixture_t *f = *state;
    char seen[1024] = "";

    put(f, "plexus.conf",
        "[ratelimit]\n"
        "default = 5/60s\n"
        "ai = 10/60s\n"              /* 3 */
        "webhooks = 600/60s\n"       /* 4 */
        "Bad-Name = 1/60s\n");       /* 5: not a class name */
    setenv("PLEXUS_RATELIMIT_SEARCH", "7/60s", 1);
    setenv("PLEXUS_RATELIMIT_AI", "20/60s", 1);
    assert_non_null(load(f));
    assert_int_equal(f->errors, 1);
    assert_logged(f, "plexus.conf:5: ");
    core_config_undeclared(f->cfg, "ratelimit", collect_key, seen);
    assert_non_null(strstr(seen, "ai=10/60s@plexus.conf:3\n"));
    assert_non_null(strstr(seen, "webhooks=600/60s@plexus.conf:4\n"));
    assert_non_null(strstr(seen, "search=7/60s@env:0\n"));
    assert_null(strstr(seen, "default="));     /* the core's own */
    assert_null(strstr(seen, "ai=20/60s"));    /* reported with its file line */
    /* the environment still wins for the value */
    assert_string_equal(core_config_get(f->cfg, "ratelimit", "ai"), "20/60s");
    assert_string_equal(core_config_get(f->cfg, "ratelimit", "webhooks"), "600/60s");
    /* other core sections stay closed */
    assert_null(strstr(seen, "listen"));
}

static void test_duplicate_key(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf", "[server]\nthreads = 4\n[database]\npool_size = 2\n"
                          "[server]\nthreads = 5\n");
    put(f, "plugins.d/example.conf",
        "[module]\nload = yes\nload = no\n[example]\na = 1\na = 2\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 3);
    assert_logged(f, "plexus.conf:6: duplicate key");
    assert_logged(f, "first set at");
    assert_logged(f, "example.conf:3: duplicate key");
    assert_logged(f, "example.conf:6: duplicate key");
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 4);
    assert_string_equal(core_config_get(f->cfg, "example", "a"), "1");
}

static void test_durations_and_sizes(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf",
        "[server]\nrequest_timeout = 500ms\nkeep_alive_timeout = 7\n"
        "shutdown_grace = 5m\nmax_body = 512k\nsse_heartbeat = 30s\n"
        "[jobs]\nbackoff_max = 2h\nbackoff_base = 1d\n"
        "[database]\nstatement_timeout = 0\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_int_equal(core_config_ms(f->cfg, "server", "request_timeout"), 500);
    assert_int_equal(core_config_ms(f->cfg, "server", "keep_alive_timeout"), 7000);
    assert_int_equal(core_config_ms(f->cfg, "server", "shutdown_grace"), 300000);
    assert_int_equal(core_config_int(f->cfg, "server", "max_body"), 512 * 1024);
    assert_int_equal(core_config_ms(f->cfg, "server", "sse_heartbeat"), 30000);
    assert_int_equal(core_config_ms(f->cfg, "jobs", "backoff_max"), 7200000);
    assert_int_equal(core_config_ms(f->cfg, "jobs", "backoff_base"), 86400000);
    assert_int_equal(core_config_ms(f->cfg, "database", "statement_timeout"), 0);
    core_config_free(f->cfg);

    put(f, "plexus.conf",
        "[server]\nmax_body = 1m\n[database]\nstatement_timeout = 1.5s\n"
        "acquire_timeout = -1s\nconnect_timeout = 10 s\n"
        "[jobs]\npoll_interval = 99999999999999999999\nlease = 1x\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 5);
    assert_int_equal(core_config_int(f->cfg, "server", "max_body"), 1048576);
    assert_logged(f, "plexus.conf:4: expected a duration");
    assert_logged(f, "plexus.conf:8: expected a duration");
    /* module values read through the typed getters */
    assert_int_equal(core_config_ms(f->cfg, "nosuch", "x"), 0);
}

static void test_plugins_order(void **state)
{
    fixture_t *f = *state;
    const core_config_module_t *m;
    char expect[PATH_MAX];

    put(f, "plexus.conf", "");
    put(f, "plugins.d/beta.conf", "[module]\nload = no\n");
    put(f, "plugins.d/alpha.conf",
        "; the alpha module\n[module]\nload = yes\npath = lib/alpha.so\n"
        "data_dir = /srv/alpha\n[alpha]\nx = 1\n[alpha.extra]\ny = 2\n");
    put(f, "plugins.d/gamma.conf", "[module]\nload = on\n");
    put(f, "plugins.d/README", "not a module\n");
    put(f, "plugins.d/.hidden.conf", "garbage\n");
    put(f, "plugins.d/notes.conf.bak", "garbage\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_int_equal(core_config_module_count(f->cfg), 3);
    m = core_config_module_at(f->cfg, 0);
    assert_string_equal(m->name, "alpha");
    assert_true(m->load);
    snprintf(expect, sizeof expect, "%s/plugins.d/lib/alpha.so", f->dir);
    assert_string_equal(m->path, expect);
    assert_string_equal(m->data_dir, "/srv/alpha");
    assert_true(strstr(m->file, "plugins.d/alpha.conf") != NULL);
    m = core_config_module_at(f->cfg, 1);
    assert_string_equal(m->name, "beta");
    assert_false(m->load);
    assert_null(m->path);
    assert_null(m->data_dir);
    m = core_config_module_at(f->cfg, 2);
    assert_string_equal(m->name, "gamma");
    assert_true(m->load);
    assert_null(core_config_module_at(f->cfg, 3));
    assert_string_equal(core_config_get(f->cfg, "alpha", "x"), "1");
    assert_string_equal(core_config_get(f->cfg, "alpha.extra", "y"), "2");
}

static void test_plugins_dir_setting(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf", "[server]\nplugins_dir = mods.d\n");
    put(f, "mods.d/one.conf", "[module]\nload = yes\n");
    put(f, "plugins.d/two.conf", "[module]\nload = yes\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_int_equal(core_config_module_count(f->cfg), 1);
    assert_string_equal(core_config_module_at(f->cfg, 0)->name, "one");
    core_config_free(f->cfg);

    /* a folder named explicitly must exist */
    put(f, "plexus.conf", "[server]\nplugins_dir = nowhere.d\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 1);
    assert_logged(f, "nowhere.d: cannot read the plugins folder");
}

static void test_module_file_errors(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf", "");
    put(f, "plugins.d/a.conf", "[a]\nx = 1\n");                 /* no [module] */
    put(f, "plugins.d/b.conf", "[module]\npath = b.so\n");      /* no load */
    put(f, "plugins.d/c.conf", "[module]\nload = yes\n[server]\nthreads = 1\n"
                               "[a]\nx = 2\n");                 /* 3, 5 */
    put(f, "plugins.d/d.conf", "[module]\nload = perhaps\nfoo = 1\n");
    put(f, "plugins.d/e.conf", "[module]\nload = yes\n[a.extra]\nz = 1\n");
    put(f, "plugins.d/f.conf", "[module]\nload = yes\n[a.extra]\nz = 1\n");
    put(f, "plugins.d/Bad-Name.conf", "[module]\nload = yes\n");
    put(f, "plugins.d/server.conf", "[module]\nload = yes\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 9);
    assert_logged(f, "a.conf: expected a section [module]");
    assert_logged(f, "b.conf: expected \\\"load = yes\\\"");
    assert_logged(f, "c.conf:3: section [server] belongs to the core");
    assert_logged(f, "c.conf:5: section [a] belongs to module \\\"a\\\"");
    assert_logged(f, "d.conf:2: expected yes or no");
    assert_logged(f, "d.conf:3: unknown key \\\"foo\\\"");
    assert_logged(f, "f.conf:3: section [a.extra] already belongs");
    assert_logged(f, "Bad-Name.conf: expected a module name");
    assert_logged(f, "server.conf: module name \\\"server\\\" is reserved");
    /* files with a load flag are listed (c, d, e, f), the others are not */
    assert_int_equal(core_config_module_count(f->cfg), 4);
    assert_string_equal(core_config_get(f->cfg, "a", "x"), "1");
    assert_string_equal(core_config_get(f->cfg, "a.extra", "z"), "1");
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 1100);
}

static void test_main_file_rules(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf", "[module]\nload = yes\n[example]\nx = 1\n");
    put(f, "plugins.d/example.conf", "[module]\nload = yes\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 2);
    assert_logged(f, "plexus.conf:1: unknown section [module]");
    assert_logged(f, "plexus.conf:3: unknown section [example]");
}

static void test_unreadable_main(void **state)
{
    fixture_t *f = *state;

    assert_null(load(f));
    assert_int_equal(f->errors, 1);
    assert_logged(f, "plexus.conf: cannot read");
}

static void test_warn_unread(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf", "");
    put(f, "plugins.d/example.conf",
        "[module]\nload = yes\n[example]\ngreeting = hi\ncolour = red\n"
        "token_file = ../tok\n[example.more]\nextra = 1\n");
    put(f, "tok", "secret\n");
    put(f, "plugins.d/other.conf", "[module]\nload = yes\n[other]\nz = 1\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_string_equal(core_config_get(f->cfg, "example", "greeting"), "hi");
    assert_string_equal(core_config_get(f->cfg, "example", "token"), "secret");
    capture_begin(f);
    core_config_warn_unread(f->cfg, "example");
    capture_end(f);
    assert_logged(f, "example.conf:5: key \\\"colour\\\"");
    assert_logged(f, "example.conf:8: key \\\"extra\\\"");
    assert_null(strstr(f->captured, "greeting"));
    assert_null(strstr(f->captured, "token_file"));
    assert_null(strstr(f->captured, "\\\"z\\\""));
    assert_int_equal(core_config_module_count(f->cfg), 2);
}

static void test_bom_and_crlf(void **state)
{
    fixture_t *f = *state;

    put(f, "plexus.conf", "\xEF\xBB\xBF[server]\r\nthreads = 12\r\n[log]\r\nlevel=warn\r\n");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 12);
    assert_string_equal(core_config_get(f->cfg, "log", "level"), "warn");
}

/* the documented default configuration loads cleanly and says nothing
 * different from the built-in defaults */
static void test_shipped_config(void **state)
{
    fixture_t *f = *state;
    const char *src = getenv("PLX_SRCDIR");

    snprintf(f->main, sizeof f->main, "%s/etc/plexus.conf", src ? src : ".");
    assert_non_null(load(f));
    assert_int_equal(f->errors, 0);
    assert_string_equal(core_config_get(f->cfg, "database", "url"),
                        "postgresql:///plexus");
    assert_int_equal(core_config_int(f->cfg, "server", "threads"), 1100);
    assert_string_equal(core_config_get(f->cfg, "server", "module_dir"),
                        PLX_MODULE_DIR);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_override, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_module_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_indirection, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_indirection_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_and_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations_and_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugins_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plugins_dir_setting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_module_file_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_main_file_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreadable_main, setup, teardown),
        cmocka_unit_test_setup_teardown(test_warn_unread, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bom_and_crlf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shipped_config, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
