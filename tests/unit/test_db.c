/*
 * test_db.c - the parts of transactions, LISTEN/NOTIFY, durable events and
 * the 1.4 job options that need no server: SQLSTATE mapping, the retry
 * pause, channel names, durable subscription matching, and every check
 * that refuses bad input before a statement would be sent.
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "jobs.h"
#include "loader.h"
#include "registry.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

plx_status_t core_db_sqlstate_status(const char *state);
long core_db_tx_pause_ms(int attempt, unsigned rnd);

static struct plx_module mod_a = { .name = "a" };

static void test_sqlstate_status(void **state)
{
    (void)state;
    assert_int_equal(core_db_sqlstate_status("40001"), PLX_AGAIN);
    assert_int_equal(core_db_sqlstate_status("40P01"), PLX_AGAIN);
    /* other class 40 states are not worth a retry */
    assert_int_equal(core_db_sqlstate_status("40002"), PLX_ERR_INTERNAL);
    assert_int_equal(core_db_sqlstate_status("23505"), PLX_ERR_CONFLICT);
    assert_int_equal(core_db_sqlstate_status("57014"), PLX_ERR_TIMEOUT);
    assert_int_equal(core_db_sqlstate_status("53300"), PLX_ERR_DB);
    assert_int_equal(core_db_sqlstate_status("42P01"), PLX_ERR_INTERNAL);
    assert_int_equal(core_db_sqlstate_status(NULL), PLX_ERR_DB);
}

static void test_tx_pause(void **state)
{
    (void)state;
    /* 5 to 25 ms times the attempt, whatever the random number */
    for (unsigned rnd = 0; rnd < 100; rnd++) {
        for (int attempt = 1; attempt <= 4; attempt++) {
            long ms = core_db_tx_pause_ms(attempt, rnd * 2654435761u);
            assert_true(ms >= 5L * attempt && ms <= 25L * attempt);
        }
    }
    assert_int_equal(core_db_tx_pause_ms(0, 0), 5);
    assert_int_equal(core_db_tx_pause_ms(1, 20), 25);
}

static void test_channel_names(void **state)
{
    char longest[64], too_long[65];

    (void)state;
    memset(longest, 'a', 63);
    longest[63] = '\0';
    memset(too_long, 'a', 64);
    too_long[64] = '\0';
    assert_true(core_db_channel_valid("plexus.jobs"));
    assert_true(core_db_channel_valid("a_b.c9"));
    assert_true(core_db_channel_valid(longest));
    assert_false(core_db_channel_valid(too_long));
    assert_false(core_db_channel_valid(""));
    assert_false(core_db_channel_valid(NULL));
    assert_false(core_db_channel_valid("Upper"));
    assert_false(core_db_channel_valid("a\"; DROP"));
    assert_false(core_db_channel_valid("a-b"));
}

static void on_notify(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    (void)payload;
    (void)arg;
}

static plx_status_t tx_fn(plx_db_conn_t *c, void *arg)
{
    (void)c;
    (void)arg;
    return PLX_OK;
}

/* Refused before any statement: these run without a database. */
static void test_refused_early(void **state)
{
    char big[8000];

    (void)state;
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(core_db_tx(NULL, PLX_TX_SERIALIZABLE, NULL, NULL),
                     PLX_ERR_INVALID);
    assert_int_equal(core_db_tx(NULL, (plx_isolation_t)7, tx_fn, NULL),
                     PLX_ERR_INVALID);
    assert_int_equal(core_db_notify(NULL, "Bad", "x"), PLX_ERR_INVALID);
    assert_int_equal(core_db_notify(NULL, "ok", big), PLX_ERR_INVALID);
    assert_int_equal(core_db_notify(NULL, "ok", "\xff"), PLX_ERR_INVALID);
    assert_int_equal(core_db_listen(&mod_a, "no space", on_notify, NULL),
                     PLX_ERR_INVALID);
    assert_int_equal(core_db_listen(&mod_a, "ok", NULL, NULL), PLX_ERR_INVALID);
    assert_false(core_db_in_tx(NULL));
    assert_int_equal(core_db_after_commit(NULL, free, NULL, NULL),
                     PLX_ERR_INVALID);
    /* an event inside a transaction needs one */
    assert_int_equal(core_event_emit_tx(NULL, "a.b", NULL), PLX_ERR_INVALID);
    assert_int_equal(core_job_lease_renew(NULL, 10), PLX_ERR_INVALID);
}

static void test_job_options(void **state)
{
    char key[202];
    char id[37] = "x";

    (void)state;
    memset(key, 'k', 201);
    key[201] = '\0';
    plx_job_opts_t o = { .size = sizeof o, .unique_key = key };
    assert_int_equal(core_job_enqueue(&mod_a, "h", NULL, &o, id),
                     PLX_ERR_INVALID);
    assert_string_equal(id, "");
    o.unique_key = "";
    assert_int_equal(core_job_enqueue(&mod_a, "h", NULL, &o, id),
                     PLX_ERR_INVALID);
    o.unique_key = "\xc3\x28";
    assert_int_equal(core_job_enqueue(&mod_a, "h", NULL, &o, id),
                     PLX_ERR_INVALID);
    assert_int_equal(core_job_recurring_add(&mod_a, "tick", 0, NULL, NULL),
                     PLX_ERR_INVALID);
}

static void test_durable_match(void **state)
{
    (void)state;
    assert_int_equal(core_event_subscribe_durable(&mod_a, "a.b", "a.exact"),
                     PLX_OK);
    assert_int_equal(core_event_subscribe_durable(&mod_a, "a.*", "a.under"),
                     PLX_OK);
    assert_int_equal(core_event_subscribe_durable(&mod_a, "a.*", "a.under"),
                     PLX_ERR_CONFLICT);
    assert_int_equal(core_event_subscribe_durable(&mod_a, "a b", "x"),
                     PLX_ERR_INVALID);
    assert_int_equal(core_event_subscribe_durable(&mod_a, "a.c", "bad name"),
                     PLX_ERR_INVALID);
    assert_int_equal(core_event_durable_count(), 2);
    assert_string_equal(core_event_durable_match(0, "a.b"), "a.exact");
    assert_string_equal(core_event_durable_match(1, "a.b"), "a.under");
    assert_null(core_event_durable_match(0, "a.c"));
    assert_string_equal(core_event_durable_match(1, "a.c"), "a.under");
    assert_null(core_event_durable_match(1, "b.c"));
    assert_null(core_event_durable_match(2, "a.b"));
    core_registry_free();
    assert_int_equal(core_event_durable_count(), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sqlstate_status),
        cmocka_unit_test(test_tx_pause),
        cmocka_unit_test(test_channel_names),
        cmocka_unit_test(test_refused_early),
        cmocka_unit_test(test_job_options),
        cmocka_unit_test(test_durable_match),
    };

    core_log_setup(PLX_LOG_ERROR + 1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
