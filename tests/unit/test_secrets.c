/*
 * test_secrets.c - plx_secret_seal/unseal and plx_free over the secretbox:
 * a sealed value opens only for the module and context it was sealed for,
 * not after a byte changed, not under an unknown key; an old key opens it
 * and says so; values sealed for second factors before additional data
 * existed still open.
 */
#include "config.h"
#include "http_client.h"
#include "identity/crypto.h"
#include "loader.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static unsigned char key1[32], key2[32];
static char name_a[] = "webhooks", name_b[] = "ai";
static plx_module_t mod_a = { .name = name_a }, mod_b = { .name = name_b };

static int keys_setup(void **state)
{
    (void)state;
    identity_secretbox_reset();
    for (int i = 0; i < 32; i++) {
        key1[i] = (unsigned char)(i + 1);
        key2[i] = (unsigned char)(200 - i);
    }
    return identity_secretbox_add_key("k1", key1, true) == PLX_OK ? 0 : -1;
}

static int keys_teardown(void **state)
{
    (void)state;
    identity_secretbox_reset();
    return 0;
}

static plx_status_t unseal(plx_module_t *m, const char *ctx, const char *s,
                           int *stale)
{
    void *p = (void *)"x";
    size_t n = 99;
    plx_status_t st = core_secret_unseal(m, ctx, s, &p, &n, stale);

    if (st == PLX_OK) {
        core_mem_free(p);
    } else {
        assert_null(p);
        assert_int_equal(n, 0);
    }
    return st;
}

static void test_round_trip(void **state)
{
    char *a = NULL, *b = NULL;
    void *p = NULL;
    size_t n = 0;
    int stale = -1;

    (void)state;
    assert_int_equal(core_secret_seal(&mod_a, "row-1", "sk-live-123", 11, &a),
                     PLX_OK);
    assert_int_equal(strncmp(a, "k1:", 3), 0);
    assert_int_equal(core_secret_unseal(&mod_a, "row-1", a, &p, &n, &stale),
                     PLX_OK);
    assert_int_equal(n, 11);
    assert_memory_equal(p, "sk-live-123", 11);
    assert_int_equal(((char *)p)[11], '\0');   /* text secrets read as strings */
    assert_int_equal(stale, 0);
    core_mem_free(p);
    /* a fresh nonce each time */
    assert_int_equal(core_secret_seal(&mod_a, "row-1", "sk-live-123", 11, &b),
                     PLX_OK);
    assert_string_not_equal(a, b);
    core_mem_free(a);
    core_mem_free(b);

    /* empty and binary secrets, stale may be NULL */
    assert_int_equal(core_secret_seal(&mod_a, "", NULL, 0, &a), PLX_OK);
    assert_int_equal(core_secret_unseal(&mod_a, "", a, &p, &n, NULL), PLX_OK);
    assert_int_equal(n, 0);
    core_mem_free(p);
    core_mem_free(a);
    assert_int_equal(core_secret_seal(&mod_a, "bin", "\0\1\2\0", 4, &a), PLX_OK);
    assert_int_equal(core_secret_unseal(&mod_a, "bin", a, &p, &n, NULL), PLX_OK);
    assert_int_equal(n, 4);
    assert_memory_equal(p, "\0\1\2\0", 4);
    core_mem_free(p);
    core_mem_free(a);
    core_mem_free(NULL);
}

static void test_wrong_context_and_module(void **state)
{
    char *a = NULL;

    (void)state;
    assert_int_equal(core_secret_seal(&mod_a, "row-1", "secret", 6, &a), PLX_OK);
    assert_int_equal(unseal(&mod_a, "row-1", a, NULL), PLX_OK);
    assert_int_equal(unseal(&mod_a, "row-2", a, NULL), PLX_ERR_INVALID);
    assert_int_equal(unseal(&mod_a, "row-1 ", a, NULL), PLX_ERR_INVALID);
    assert_int_equal(unseal(&mod_a, "", a, NULL), PLX_ERR_INVALID);
    assert_int_equal(unseal(&mod_b, "row-1", a, NULL), PLX_ERR_INVALID);
    /* name and context cannot trade bytes: ("webhooks", "x") is not
     * ("webhook", "sx") */
    char shorter[] = "webhook";
    plx_module_t mod_c = { .name = shorter };
    core_mem_free(a);
    assert_int_equal(core_secret_seal(&mod_a, "x", "s", 1, &a), PLX_OK);
    assert_int_equal(unseal(&mod_c, "sx", a, NULL), PLX_ERR_INVALID);
    /* a value sealed for second factors (no additional data) is not a
     * module's secret, and the other way round */
    core_mem_free(a);
    char *mfa = NULL;
    unsigned char *raw = NULL;
    size_t n;
    assert_int_equal(identity_seal((const unsigned char *)"seed", 4, &mfa), PLX_OK);
    assert_int_equal(unseal(&mod_a, "", mfa, NULL), PLX_ERR_INVALID);
    assert_int_equal(core_secret_seal(&mod_a, "", "seed", 4, &a), PLX_OK);
    assert_int_equal(identity_unseal(a, &raw, &n), PLX_ERR_AUTH);
    free(mfa);
    core_mem_free(a);
}

static void test_altered(void **state)
{
    char *a = NULL;

    (void)state;
    assert_int_equal(core_secret_seal(&mod_a, "row-1", "secret-value", 12, &a),
                     PLX_OK);
    size_t len = strlen(a);
    /* every base64 character of the body changed in turn (not the last
     * quantum, whose padding bits a decoder may ignore) */
    for (size_t i = 3; i + 4 < len; i++) {
        char saved = a[i];
        a[i] = saved == 'A' ? 'B' : 'A';
        if (unseal(&mod_a, "row-1", a, NULL) != PLX_ERR_INVALID)
            fail_msg("opened with character %zu changed", i);
        a[i] = saved;
    }
    assert_int_equal(unseal(&mod_a, "row-1", a, NULL), PLX_OK);
    a[len - 5] = '\0';   /* cut */
    assert_int_equal(unseal(&mod_a, "row-1", a, NULL), PLX_ERR_INVALID);
    assert_int_equal(unseal(&mod_a, "row-1", "k1:", NULL), PLX_ERR_INVALID);
    assert_int_equal(unseal(&mod_a, "row-1", "no colon", NULL), PLX_ERR_INVALID);
    assert_int_equal(unseal(&mod_a, "row-1", "", NULL), PLX_ERR_INVALID);
    core_mem_free(a);
}

static void test_unknown_key_and_stale(void **state)
{
    char *old = NULL, *now = NULL;
    int stale = -1;

    (void)state;
    assert_int_equal(core_secret_seal(&mod_a, "row-9", "token", 5, &old), PLX_OK);
    /* rotation: k2 is the current key, k1 not configured at all */
    identity_secretbox_reset();
    assert_int_equal(identity_secretbox_add_key("k2", key2, true), PLX_OK);
    assert_int_equal(unseal(&mod_a, "row-9", old, &stale), PLX_ERR_INVALID);
    /* k1 listed as an old key: opens, and says so */
    assert_int_equal(identity_secretbox_add_key("k1", key1, false), PLX_OK);
    assert_int_equal(unseal(&mod_a, "row-9", old, &stale), PLX_OK);
    assert_int_equal(stale, 1);
    /* sealed again: under k2, not stale */
    assert_int_equal(core_secret_seal(&mod_a, "row-9", "token", 5, &now), PLX_OK);
    assert_int_equal(strncmp(now, "k2:", 3), 0);
    assert_int_equal(unseal(&mod_a, "row-9", now, &stale), PLX_OK);
    assert_int_equal(stale, 0);
    /* a key id nobody configured */
    now[1] = '7';
    assert_int_equal(unseal(&mod_a, "row-9", now, &stale), PLX_ERR_INVALID);
    core_mem_free(old);
    core_mem_free(now);
}

/* A TOTP seed sealed by the secretbox before it took additional data
 * (key1 as "k1"): the second-factor format must keep opening. */
static void test_mfa_format_unchanged(void **state)
{
    static const char before[] =
        "k1:28bsMcicQeTdi5mCT5MRyO+TV1yI6x3e15fCpm/ACqhPYvPz+qYwptEHVwY=";
    unsigned char *p = NULL;
    size_t n = 0;
    bool stale = true;

    (void)state;
    assert_int_equal(identity_unseal(before, &p, &n), PLX_OK);
    assert_int_equal(n, 16);
    assert_memory_equal(p, "JBSWY3DPEHPK3PXP", 16);
    free(p);
    assert_int_equal(identity_unseal_ad(before, NULL, 0, &p, &n, &stale), PLX_OK);
    assert_false(stale);
    free(p);
    assert_int_equal(identity_unseal_ad(before, "", 0, &p, &n, NULL), PLX_ERR_AUTH);
}

static void test_bad_arguments(void **state)
{
    char *a = (char *)"x", big[IDENTITY_SEAL_AD_MAX + 1];
    void *p;
    size_t n;

    (void)state;
    assert_int_equal(core_secret_seal(NULL, "c", "s", 1, &a), PLX_ERR_INVALID);
    assert_null(a);
    assert_int_equal(core_secret_seal(&mod_a, NULL, "s", 1, &a), PLX_ERR_INVALID);
    assert_int_equal(core_secret_seal(&mod_a, "c", NULL, 1, &a), PLX_ERR_INVALID);
    assert_int_equal(core_secret_seal(&mod_a, "c", "s", 1, NULL), PLX_ERR_INVALID);
    memset(big, 'c', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(core_secret_seal(&mod_a, big, "s", 1, &a), PLX_ERR_INVALID);
    assert_int_equal(core_secret_unseal(&mod_a, "c", NULL, &p, &n, NULL),
                     PLX_ERR_INVALID);
    assert_int_equal(core_secret_unseal(&mod_a, "c", "k1:AAAA", NULL, &n, NULL),
                     PLX_ERR_INVALID);
    /* no current key: a setup bug, not the caller's */
    identity_secretbox_reset();
    assert_int_equal(core_secret_seal(&mod_a, "c", "s", 1, &a), PLX_ERR_INTERNAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, keys_setup, keys_teardown),
        cmocka_unit_test_setup_teardown(test_wrong_context_and_module, keys_setup, keys_teardown),
        cmocka_unit_test_setup_teardown(test_altered, keys_setup, keys_teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_and_stale, keys_setup, keys_teardown),
        cmocka_unit_test_setup_teardown(test_mfa_format_unchanged, keys_setup, keys_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, keys_setup, keys_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
