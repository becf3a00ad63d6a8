/* test_util.c - the core's small helpers */
#include "config.h"
#include "core.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

static void test_secure_equal(void **state)
{
    assert_true(core_secure_equal("secret", 6, "secret", 6));
    assert_false(core_secure_equal("secret", 6, "secreT", 6));
    assert_false(core_secure_equal("secret", 6, "secret!", 7));
    assert_false(core_secure_equal("", 0, "a", 1));
    assert_true(core_secure_equal("", 0, "", 0));
}

static void test_status_mapping(void **state)
{
    assert_int_equal(core_status_http(PLX_ERR_INVALID), 400);
    assert_int_equal(core_status_http(PLX_ERR_AUTH), 401);
    assert_int_equal(core_status_http(PLX_ERR_NOT_FOUND), 404);
    assert_int_equal(core_status_http(PLX_ERR_DB), 503);
    assert_int_equal(core_status_http(PLX_ERR_INTERNAL), 500);
    assert_string_equal(core_status_str(PLX_ERR_DB), "database unavailable");
    assert_string_equal(core_status_str((plx_status_t)999), "unknown status");
}

static void test_read_file_bound(void **state)
{
    char path[] = "/tmp/plx-util-XXXXXX";
    int fd = mkstemp(path);
    size_t len = 0;
    char *s;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789", 10), 10);
    close(fd);
    s = core_read_file(path, 64, &len);
    assert_non_null(s);
    assert_int_equal(len, 10);
    assert_string_equal(s, "0123456789");
    free(s);
    assert_null(core_read_file(path, 5, &len));   /* larger than the bound */
    assert_null(core_read_file("/nonexistent/plexus", 64, &len));
    unlink(path);
}

static void test_rfc3339(void **state)
{
    char ts[32];

    core_time_rfc3339(ts);
    assert_int_equal(strlen(ts), 24);
    assert_int_equal(ts[10], 'T');
    assert_int_equal(ts[23], 'Z');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secure_equal),
        cmocka_unit_test(test_status_mapping),
        cmocka_unit_test(test_read_file_bound),
        cmocka_unit_test(test_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
