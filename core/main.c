/*
 * main.c - plexusd: command line, start-up order, signals, shutdown order
 *
 * Start-up: configuration, database settings, modules opened and checked,
 * core routes, module init in dependency order, hook ordering, migrations,
 * module start, job workers, HTTP last (so nothing is served before it can
 * be answered). Shutdown runs the same list backwards.
 */
#include "config.h"
#include "core.h"
#include "conf.h"
#include "db.h"
#include "http.h"
#include "http_client.h"
#include "identity/identity.h"
#include "jobs.h"
#include "loader.h"
#include "migrate.h"
#include "registry.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_CONFIG 2

typedef enum command { CMD_SERVE, CMD_MIGRATE, CMD_MIGRATE_STATUS,
                       CMD_MODULES, CMD_ROUTES, CMD_CREATE_ADMIN } command_t;

typedef struct options {
    const char *config;
    bool        check_config;
    bool        dump_hooks;
    command_t   command;
    const char *email;          /* create-admin --email */
} options_t;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: plexusd [options] [command]\n"
            "\n"
            "commands:\n"
            "  serve            run the server (the default)\n"
            "  migrate          apply pending database migrations and exit\n"
            "  migrate status   list migrations and whether they are applied\n"
            "  modules          list configured modules: name, version, ABI, file, state\n"
            "  routes           print every route the core and the modules register, with\n"
            "                   what a caller needs, as JSON\n"
            "  create-admin --email E\n"
            "                   create an admin (password from PLEXUS_ADMIN_PASSWORD or\n"
            "                   one line of stdin), or promote an existing user\n"
            "\n"
            "options:\n"
            "  -c, --config FILE   main configuration file (default %s/plexus.conf)\n"
            "      --check-config  check the configuration and modules, then exit\n"
            "      --dump-hooks    print the hook order after module init, then exit\n"
            "  -V, --version       print the version and plugin ABI, then exit\n"
            "  -h, --help          this text\n",
            PLX_SYSCONF_DIR);
}

static int parse_args(int argc, char **argv, options_t *o)
{
    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, 'k' },
        { "dump-hooks", no_argument, NULL, 'd' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
        { "email", required_argument, NULL, 'e' },
        { NULL, 0, NULL, 0 },
    };
    int c;

    o->config = PLX_SYSCONF_DIR "/plexus.conf";
    while ((c = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'k': o->check_config = true; break;
        case 'd': o->dump_hooks = true; break;
        case 'e': o->email = optarg; break;
        case 'V':
            printf("plexusd %s (plugin ABI %d.%d)\n", PACKAGE_VERSION,
                   PLX_ABI_MAJOR, PLX_ABI_MINOR);
            exit(EXIT_SUCCESS);
        case 'h': usage(stdout); exit(EXIT_SUCCESS);
        default:  usage(stderr); exit(EXIT_CONFIG);
        }
    }
    argc -= optind;
    argv += optind;
    if (argc == 0 || (argc == 1 && strcmp(argv[0], "serve") == 0))
        o->command = CMD_SERVE;
    else if (argc == 1 && strcmp(argv[0], "migrate") == 0)
        o->command = CMD_MIGRATE;
    else if (argc == 2 && strcmp(argv[0], "migrate") == 0
             && strcmp(argv[1], "status") == 0)
        o->command = CMD_MIGRATE_STATUS;
    else if (argc == 1 && strcmp(argv[0], "modules") == 0)
        o->command = CMD_MODULES;
    else if (argc == 1 && strcmp(argv[0], "routes") == 0)
        o->command = CMD_ROUTES;
    else if (argc == 1 && strcmp(argv[0], "create-admin") == 0 && o->email)
        o->command = CMD_CREATE_ADMIN;
    else if (argc == 1 && strcmp(argv[0], "create-admin") == 0) {
        fprintf(stderr, "plexusd: create-admin needs --email ADDRESS\n");
        return -1;
    } else {
        fprintf(stderr, "plexusd: unknown command \"%s\"\n", argv[0]);
        usage(stderr);
        return -1;
    }
    if (o->email && o->command != CMD_CREATE_ADMIN) {
        fprintf(stderr, "plexusd: --email belongs to the create-admin command\n");
        return -1;
    }
    return 0;
}

static bool setup_logging(void)
{
    bool ok;
    plx_log_level_t lvl = core_log_level_parse(
        core_config_get(core_cfg, "log", "level"), &ok);

    core_log_setup(lvl);
    return ok;
}

static const char *module_dir(void)
{
    return core_config_get(core_cfg, "server", "module_dir");
}

/* Configuration, database settings, modules opened: common to every command */
static bool prepare(const options_t *o)
{
    int errors = 0;

    core_cfg = core_config_load(o->config, &errors);
    if (!core_cfg || errors > 0) {
        core_log(PLX_LOG_ERROR, "config", NULL,
                 "%d problem%s in configuration \"%s\"", errors ? errors : 1,
                 errors == 1 ? "" : "s", o->config);
        return false;
    }
    if (!setup_logging())
        LOG_WARN("unknown log.level \"%s\", using info",
                 core_config_get(core_cfg, "log", "level"));
    /* only a server (and a check of its configuration) needs the signing
     * and sealing keys; migrate, modules and create-admin run without */
    bool keys = o->command == CMD_SERVE || o->check_config;
    if (!core_db_setup(core_cfg) || !core_identity_setup(core_cfg, keys) ||
        !core_http_client_setup(core_cfg))
        return false;
    return core_modules_load(core_cfg, module_dir());
}

/* init every module and collect what it registered */
static bool initialise(void)
{
    char dir[4096];

    snprintf(dir, sizeof dir, "%s/sql",
             core_config_get(core_cfg, "server", "data_dir"));
    core_migrations_set_core_dir(dir);
    if (!core_health_register() || !core_identity_register())
        return false;
    if (!core_modules_init() || !identity_ratelimit_seal())
        return false;
    for (size_t i = 0; i < core_module_count(); i++)
        core_config_warn_unread(core_cfg, core_module_at(i)->name);
    return core_hooks_sort();
}

static void print_modules(void)
{
    printf("%-16s %-10s %-5s %-10s %s\n", "NAME", "VERSION", "ABI", "STATE",
           "FILE");
    for (size_t i = 0; i < core_config_module_count(core_cfg); i++) {
        const core_config_module_t *cm = core_config_module_at(core_cfg, i);
        plx_module_t *m = core_module_find(cm->name);
        char abi[16];

        if (!m) {
            printf("%-16s %-10s %-5s %-10s %s\n", cm->name, "-", "-",
                   "disabled", cm->file);
            continue;
        }
        snprintf(abi, sizeof abi, "%u.%u", m->info->abi_major,
                 m->info->abi_minor);
        printf("%-16s %-10s %-5s %-10s %s\n", m->name, m->info->version, abi,
               core_module_state_str(m->state), m->file);
    }
}

static int wait_for_signal(void)
{
    sigset_t set;
    int sig = 0;

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigwait(&set, &sig);
    return sig;
}

/* Block the stop signals before any thread exists, so every thread inherits
 * the mask and only sigwait() in the main thread sees them. */
static void block_signals(void)
{
    sigset_t set;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static int serve(void)
{
    if (core_config_bool(core_cfg, "database", "migrate_on_start")
        && !core_migrate_apply())
        return EXIT_FAILURE;
    if (!core_modules_start())
        return EXIT_FAILURE;
    if (!core_jobs_start(core_cfg) || !core_listen_start())
        return EXIT_FAILURE;
    if (!core_http_start(core_cfg) || !core_identity_start())
        return EXIT_FAILURE;
    core_health_set_serving(true);
    LOG_INFO("plexusd %s serving on %s with %zu module%s", PACKAGE_VERSION,
             core_config_get(core_cfg, "server", "listen"), core_module_count(),
             core_module_count() == 1 ? "" : "s");

    int sig = wait_for_signal();
    LOG_INFO("received %s, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    core_health_set_serving(false);
    core_http_stop(core_config_ms(core_cfg, "server", "shutdown_grace"));
    return EXIT_SUCCESS;
}

static int run(const options_t *o)
{
    if (o->command == CMD_MODULES) {
        print_modules();
        return EXIT_SUCCESS;
    }
    if (!initialise())
        return EXIT_FAILURE;
    if (o->dump_hooks) {
        core_hooks_dump(stdout);
        return EXIT_SUCCESS;
    }
    switch (o->command) {
    case CMD_ROUTES:
        return core_routes_dump(stdout) ? EXIT_SUCCESS : EXIT_FAILURE;
    case CMD_MIGRATE:
        return core_migrate_apply() ? EXIT_SUCCESS : EXIT_FAILURE;
    case CMD_MIGRATE_STATUS:
        return core_migrate_status(stdout) ? EXIT_SUCCESS : EXIT_FAILURE;
    case CMD_CREATE_ADMIN:
        /* the users table must exist: migrate first, as `migrate` does */
        return core_migrate_apply() ? core_identity_create_admin(o->email)
                                    : EXIT_FAILURE;
    default:
        return serve();
    }
}

static void teardown(void)
{
    core_listen_stop();
    core_jobs_stop();
    core_modules_stop();
    core_identity_shutdown();
    core_db_shutdown();
    core_registry_free();
    core_routes_free();
    core_migrations_free();
    core_modules_unload();
    core_config_free(core_cfg);
    core_cfg = NULL;
}

int main(int argc, char **argv)
{
    options_t o = { 0 };
    int rc;

    if (parse_args(argc, argv, &o) != 0)
        return EXIT_CONFIG;
    block_signals();
    if (!prepare(&o)) {
        teardown();
        return o.check_config ? EXIT_CONFIG : EXIT_FAILURE;
    }
    if (o.check_config) {
        printf("configuration \"%s\" is valid; %zu module%s enabled\n",
               o.config, core_module_count(), core_module_count() == 1 ? "" : "s");
        teardown();
        return EXIT_SUCCESS;
    }
    rc = run(&o);
    teardown();
    if (rc == EXIT_SUCCESS && o.command == CMD_SERVE)
        LOG_INFO("stopped");
    return rc;
}
