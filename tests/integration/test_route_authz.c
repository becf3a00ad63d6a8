/*
 * test_route_authz.c - every route the server registers, tried as hostile
 * callers (tests/support/route_walk.c): no credential, an expired token, a
 * logged-out session, an API key without the route's scope, a user who is
 * not admin, a user outside the team and a viewer. The table comes from the
 * server, so a route added tomorrow is walked without a line of test.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "identity_client.h"
#include "pgtest.h"
#include "route_walk.h"

static plxt_server_t *srv;
static char dbname[64];
static char *db;

static int group_setup(void **state)
{
    static const plxt_module_t mods[] = {
        { .name = "authz_probe" }, { .name = "example" }, { 0 },
    };
    char cfg[2048];
    size_t n;

    (void)state;
    if (!(db = pgtest_db_create(dbname)))
        return -1;
    plxt_identity_config(cfg, sizeof cfg, 0);
    n = strlen(cfg);
    snprintf(cfg + n, sizeof cfg - n, "[server]\nthreads = 32\n"
             "[ratelimit]\ndefault = 100000/60s\nauth = 100000/60s\n");
    plxt_server_opts_t o = { .db_url = db, .modules = mods, .config = cfg };
    if (!(srv = plxt_server_start(&o)))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    (void)state;
    pgtest_db_drop(dbname);
    free(db);
    return rc == 0 ? 0 : -1;
}

static void test_every_route_refuses_who_it_should(void **state)
{
    static const char *const viewer_may[] = {
        "POST /api/v1/teams/{id}/leave", NULL,
    };
    const plxt_walk_opts_t opts = { .viewer_may = viewer_may };
    int n;

    (void)state;
    n = plxt_route_walk(srv, db, &opts);
    /* the core's own routes alone are more than thirty: a walk over an
     * empty table would prove nothing */
    assert_true(n > 30);
    print_message("walked %d routes\n", n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_route_refuses_who_it_should),
    };

    plxt_require_postgres("test_route_authz");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
