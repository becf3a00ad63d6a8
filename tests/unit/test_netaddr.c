/*
 * test_netaddr.c - the request-forgery guard's address classifier and the
 * operator's allowlist, as pure functions: no socket is ever opened here,
 * which is the only safe way to test the refusal of addresses that are not
 * this machine's loopback.
 */
#include "config.h"
#include "netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

typedef struct row {
    const char       *addr;
    core_addr_class_t cls;
} row_t;

#define P  CORE_ADDR_PUBLIC
#define UN CORE_ADDR_UNSPECIFIED
#define TN CORE_ADDR_THIS_NETWORK
#define LB CORE_ADDR_LOOPBACK
#define PV CORE_ADDR_PRIVATE
#define SH CORE_ADDR_SHARED
#define LL CORE_ADDR_LINK_LOCAL
#define UL CORE_ADDR_UNIQUE_LOCAL
#define MC CORE_ADDR_MULTICAST
#define BC CORE_ADDR_BROADCAST
#define DO CORE_ADDR_DOCUMENTATION
#define BM CORE_ADDR_BENCHMARK
#define RS CORE_ADDR_RESERVED

static const row_t table[] = {
    /* IPv4: the edges of every special block, and their neighbours */
    { "0.0.0.0", UN }, { "0.0.0.1", TN }, { "0.255.255.255", TN },
    { "1.0.0.0", P }, { "1.1.1.1", P }, { "8.8.8.8", P },
    { "9.255.255.255", P }, { "10.0.0.0", PV }, { "10.1.2.3", PV },
    { "10.255.255.255", PV }, { "11.0.0.0", P },
    { "100.63.255.255", P }, { "100.64.0.0", SH }, { "100.100.100.100", SH },
    { "100.127.255.255", SH }, { "100.128.0.0", P },
    { "126.255.255.255", P }, { "127.0.0.0", LB }, { "127.0.0.1", LB },
    { "127.0.0.2", LB }, { "127.255.255.255", LB }, { "128.0.0.0", P },
    { "169.253.255.255", P }, { "169.254.0.0", LL },
    { "169.254.169.254", LL }, { "169.254.255.255", LL }, { "169.255.0.0", P },
    { "172.15.255.255", P }, { "172.16.0.0", PV }, { "172.20.1.1", PV },
    { "172.31.255.255", PV }, { "172.32.0.0", P },
    { "191.255.255.255", P }, { "192.0.0.0", RS }, { "192.0.0.8", RS },
    { "192.0.0.170", RS }, { "192.0.1.0", P }, { "192.0.2.0", DO },
    { "192.0.2.255", DO }, { "192.0.3.0", P }, { "192.31.196.1", RS },
    { "192.52.193.1", RS }, { "192.88.99.1", RS }, { "192.88.100.1", P },
    { "192.167.255.255", P }, { "192.168.0.0", PV }, { "192.168.1.1", PV },
    { "192.168.255.255", PV }, { "192.169.0.0", P }, { "192.175.48.1", RS },
    { "198.17.255.255", P }, { "198.18.0.0", BM }, { "198.19.255.255", BM },
    { "198.20.0.0", P }, { "198.51.100.7", DO }, { "198.51.101.0", P },
    { "203.0.112.255", P }, { "203.0.113.1", DO }, { "203.0.114.0", P },
    { "223.255.255.255", P }, { "224.0.0.0", MC }, { "224.0.0.251", MC },
    { "239.255.255.255", MC }, { "240.0.0.0", RS }, { "250.1.2.3", RS },
    { "255.255.255.254", RS }, { "255.255.255.255", BC },
    { "93.184.216.34", P }, { "151.101.1.69", P },

    /* IPv6 */
    { "::", UN }, { "::1", LB }, { "::2", TN },
    { "2001:4860:4860::8888", P }, { "2606:4700:4700::1111", P },
    { "2a00:1450:4001:80b::200e", P }, { "2000::", P },
    { "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", DO }, { "3fff::1", DO },
    { "3fff:1000::1", P },
    { "3ffe:ffff::1", P }, { "4000::1", RS },
    { "1fff:ffff::1", RS }, { "100::1", RS }, { "100::", RS },
    { "2001:db8::1", DO }, { "2001:db8:ffff::1", DO }, { "2001:db9::1", P },
    { "2001::1", RS },                  /* Teredo */
    { "2001:0:4136:e378::1", RS },
    { "2001:2::1", BM }, { "2001:2:0:ffff::1", BM },
    { "2001:10::1", RS }, { "2001:20::1", RS },   /* ORCHID */
    { "2001:1ff:ffff::1", RS }, { "2001:200::1", P },
    { "fc00::", UL }, { "fd12:3456:789a::1", UL }, { "fdff:ffff::1", UL },
    { "fe00::1", RS }, { "fe80::", LL }, { "fe80::1", LL },
    { "febf:ffff::1", LL }, { "fec0::1", PV }, { "feff::1", PV },
    { "ff00::", MC }, { "ff02::1", MC }, { "ff05::1:3", MC },
    { "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", MC },

    /* IPv4-mapped: the class of the IPv4 address */
    { "::ffff:127.0.0.1", LB }, { "::ffff:7f00:1", LB },
    { "::ffff:10.0.0.1", PV }, { "::ffff:169.254.169.254", LL },
    { "::ffff:192.168.1.1", PV }, { "::ffff:100.64.0.1", SH },
    { "::ffff:0.0.0.0", UN }, { "::ffff:255.255.255.255", BC },
    { "::ffff:224.0.0.1", MC }, { "::ffff:8.8.8.8", P },
    { "::ffff:198.18.0.1", BM }, { "::ffff:203.0.113.9", DO },
    /* IPv4-compatible (deprecated) */
    { "::127.0.0.1", LB }, { "::10.0.0.1", PV }, { "::169.254.169.254", LL },
    { "::8.8.8.8", P }, { "::0.0.1.0", TN },
    /* NAT64 well-known prefix */
    { "64:ff9b::127.0.0.1", LB }, { "64:ff9b::a9fe:a9fe", LL },
    { "64:ff9b::10.1.1.1", PV }, { "64:ff9b::192.168.0.1", PV },
    { "64:ff9b::8.8.8.8", P }, { "64:ff9b::0.0.0.0", UN },
    { "64:ff9b:1::10.0.0.1", RS },          /* local-use NAT64: not 2000::/3 */
    /* 6to4 carries an IPv4 address in bits 16..47 */
    { "2002:7f00:0001::1", LB }, { "2002:a9fe:a9fe::", LL },
    { "2002:0a00:0001::1", PV }, { "2002:0808:0808::1", P },
    { "2002:c0a8:0101::1", PV },
};

static void test_classify_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < CORE_ARRAY_LEN(table); i++) {
        core_addr_t a;
        if (!core_addr_parse(table[i].addr, &a))
            fail_msg("\"%s\" does not parse", table[i].addr);
        core_addr_class_t got = core_addr_classify(&a);
        if (got != table[i].cls)
            fail_msg("%s: expected %s, found %s", table[i].addr,
                     core_addr_class_str(table[i].cls),
                     core_addr_class_str(got));
    }
}

static void test_parse_refuses(void **state)
{
    core_addr_t a;
    static const char *bad[] = {
        "", "localhost", "127.1", "0x7f.0.0.1", "2130706433", "127.0.0.1 ",
        "256.0.0.1", "1.2.3", "::g", "fe80::1%eth0", "[::1]", "1:2:3:4:5:6:7:8:9",
    };

    (void)state;
    for (size_t i = 0; i < CORE_ARRAY_LEN(bad); i++)
        if (core_addr_parse(bad[i], &a))
            fail_msg("\"%s\" parsed", bad[i]);
    assert_false(core_addr_parse(NULL, &a));
}

static void test_from_sockaddr(void **state)
{
    struct sockaddr_in in4 = { .sin_family = AF_INET };
    struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };
    struct sockaddr un = { .sa_family = AF_UNIX };
    core_addr_t a;
    char text[46];

    (void)state;
    inet_pton(AF_INET, "169.254.169.254", &in4.sin_addr);
    assert_true(core_addr_from_sockaddr((struct sockaddr *)&in4, sizeof in4, &a));
    assert_int_equal(core_addr_classify(&a), LL);
    core_addr_format(&a, text);
    assert_string_equal(text, "169.254.169.254");

    inet_pton(AF_INET6, "::ffff:127.0.0.1", &in6.sin6_addr);
    assert_true(core_addr_from_sockaddr((struct sockaddr *)&in6, sizeof in6, &a));
    assert_int_equal(core_addr_classify(&a), LB);

    assert_false(core_addr_from_sockaddr((struct sockaddr *)&in4, 4, &a));
    assert_false(core_addr_from_sockaddr(&un, sizeof un, &a));
    a.family = AF_UNIX;
    assert_int_equal(core_addr_classify(&a), RS);
    assert_int_equal(core_addr_classify(NULL), RS);
}

static bool allowed(const core_allowlist_t *l, const char *s)
{
    core_addr_t a;

    assert_true(core_addr_parse(s, &a));
    return core_allowlist_match(l, &a);
}

static void test_allowlist(void **state)
{
    core_allowlist_t l;
    char err[160];

    (void)state;
    assert_true(core_allowlist_parse("127.0.0.1/32, 10.1.0.0/16,fd00:1::/64 "
                                     "192.168.7.7", &l, err, sizeof err));
    assert_int_equal(l.n, 4);
    assert_true(allowed(&l, "127.0.0.1"));
    assert_false(allowed(&l, "127.0.0.2"));
    assert_true(allowed(&l, "::ffff:127.0.0.1"));   /* same host */
    assert_false(allowed(&l, "::1"));
    assert_true(allowed(&l, "10.1.0.1"));
    assert_true(allowed(&l, "10.1.255.255"));
    assert_false(allowed(&l, "10.2.0.0"));
    assert_true(allowed(&l, "fd00:1::42"));
    assert_false(allowed(&l, "fd00:2::42"));
    assert_true(allowed(&l, "192.168.7.7"));
    assert_false(allowed(&l, "192.168.7.8"));
    assert_false(allowed(&l, "64:ff9b::127.0.0.1"));

    assert_true(core_allowlist_parse(NULL, &l, err, sizeof err));
    assert_int_equal(l.n, 0);
    assert_false(allowed(&l, "127.0.0.1"));
    assert_true(core_allowlist_parse("  ", &l, err, sizeof err));
    assert_int_equal(l.n, 0);
    assert_true(core_allowlist_parse("0.0.0.0/0", &l, err, sizeof err));
    assert_true(allowed(&l, "169.254.169.254"));
    assert_false(allowed(&l, "::1"));
    assert_true(core_allowlist_parse("10.0.0.0/9", &l, err, sizeof err));
    assert_true(allowed(&l, "10.127.0.1"));
    assert_false(allowed(&l, "10.128.0.1"));
}

static void test_allowlist_refuses(void **state)
{
    core_allowlist_t l;
    char err[160], many[64 * 16 + 32] = "";
    static const char *bad[] = {
        "localhost", "10.1.2.3/16", "10.0.0.0/33", "::/129", "10.0.0.0/",
        "10.0.0.0/x", "/8", "10.0.0.0/08x", "10.0.0.0/1234", "fd00::1/8",
        "127.0.0.1/32;10.0.0.0/8",
    };

    (void)state;
    for (size_t i = 0; i < CORE_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (core_allowlist_parse(bad[i], &l, err, sizeof err))
            fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(strstr(err, "expected"));
    }
    for (int i = 0; i <= CORE_ALLOW_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "10.0.%d.0/24,", i);
    assert_false(core_allowlist_parse(many, &l, err, sizeof err));
    assert_non_null(strstr(err, "at most 64"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classify_table),
        cmocka_unit_test(test_parse_refuses),
        cmocka_unit_test(test_from_sockaddr),
        cmocka_unit_test(test_allowlist),
        cmocka_unit_test(test_allowlist_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
