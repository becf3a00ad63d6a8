/*
 * netaddr.h - what kind of address an outbound connection would reach
 *
 * The request-forgery guard of the HTTP client (http_client.c) asks one
 * question of every address it is about to connect to: is it an ordinary
 * public unicast address? The answer is a pure function of the address, so
 * it lives here, apart from libcurl, and tests/unit/test_netaddr.c runs it
 * over a long table without opening a socket.
 */
#ifndef PLEXUS_NETADDR_H
#define PLEXUS_NETADDR_H

#include "core.h"

#include <stdint.h>
#include <sys/socket.h>

typedef enum core_addr_class {
    CORE_ADDR_PUBLIC = 0,     /* ordinary global unicast */
    CORE_ADDR_UNSPECIFIED,    /* 0.0.0.0, :: */
    CORE_ADDR_THIS_NETWORK,   /* 0.0.0.0/8 */
    CORE_ADDR_LOOPBACK,       /* 127.0.0.0/8, ::1 */
    CORE_ADDR_PRIVATE,        /* RFC 1918, fec0::/10 */
    CORE_ADDR_SHARED,         /* 100.64.0.0/10, carrier-grade NAT */
    CORE_ADDR_LINK_LOCAL,     /* 169.254.0.0/16 (cloud metadata), fe80::/10 */
    CORE_ADDR_UNIQUE_LOCAL,   /* fc00::/7 */
    CORE_ADDR_MULTICAST,      /* 224.0.0.0/4, ff00::/8 */
    CORE_ADDR_BROADCAST,      /* 255.255.255.255 */
    CORE_ADDR_DOCUMENTATION,  /* TEST-NET-1/2/3, 2001:db8::/32, 3fff::/20 */
    CORE_ADDR_BENCHMARK,      /* 198.18.0.0/15, 2001:2::/48 */
    CORE_ADDR_RESERVED        /* 240.0.0.0/4, protocol assignments, and
                               * IPv6 outside 2000::/3 */
} core_addr_class_t;

/* an address in network byte order: family AF_INET (4 bytes used) or
 * AF_INET6 (16) */
typedef struct core_addr {
    int     family;
    uint8_t bytes[16];
} core_addr_t;

/* Classify an address. IPv4-mapped (::ffff:a.b.c.d), IPv4-compatible
 * (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) forms take the
 * class of the IPv4 address they carry, so a special IPv4 address cannot
 * be reached through its IPv6 spelling. */
core_addr_class_t core_addr_classify(const core_addr_t *a);
const char *core_addr_class_str(core_addr_class_t c);

/* From a socket address; false for any family but AF_INET and AF_INET6. */
bool core_addr_from_sockaddr(const struct sockaddr *sa, size_t len,
                             core_addr_t *out);
/* From text (inet_pton: dotted quad or RFC 4291 text); false when it is
 * neither. */
bool core_addr_parse(const char *s, core_addr_t *out);
/* Text for logs into out[46] (INET6_ADDRSTRLEN). */
void core_addr_format(const core_addr_t *a, char out[46]);

/* An operator's allowlist of CIDR blocks ("127.0.0.1/32, 10.1.0.0/16,
 * fd00::/8"; a bare address is a single host). */
#define CORE_ALLOW_MAX 64

typedef struct core_cidr {
    core_addr_t addr;
    unsigned    prefix;
} core_cidr_t;

typedef struct core_allowlist {
    core_cidr_t items[CORE_ALLOW_MAX];
    size_t      n;
} core_allowlist_t;

/* Parse a comma- or blank-separated list. NULL or "" is an empty list.
 * false with err (at least 128 bytes) naming the bad item: not an
 * address, a prefix out of range, host bits set, or too many items. */
bool core_allowlist_parse(const char *list, core_allowlist_t *out,
                          char *err, size_t errlen);
/* Does a block of the list hold a? An IPv4-mapped IPv6 address matches
 * the IPv4 blocks, as it reaches the same host. */
bool core_allowlist_match(const core_allowlist_t *l, const core_addr_t *a);

#endif
