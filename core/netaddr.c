/*
 * netaddr.c - classifying the addresses outbound connections would reach
 *
 * The tables follow the IANA IPv4 and IPv6 Special-Purpose Address
 * Registries (RFC 6890 and its updates). IPv6 is judged the strict way:
 * only 2000::/3 is global unicast today, so anything outside it is
 * refused, and the IPv6 forms that carry an IPv4 address (mapped,
 * compatible, NAT64, 6to4) are judged by that address. Teredo and the
 * rest of 2001::/23 are refused whole: Teredo hides its IPv4 address
 * behind an XOR, and nothing a server calls lives there.
 */
#include "config.h"
#include "netaddr.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

typedef struct range {
    uint8_t           bytes[16];
    unsigned          prefix;
    core_addr_class_t cls;
} range_t;

/* Most specific first: the first match wins. */
static const range_t v4_ranges[] = {
    { { 255, 255, 255, 255 }, 32, CORE_ADDR_BROADCAST },
    { { 0, 0, 0, 0 }, 32, CORE_ADDR_UNSPECIFIED },
    { { 0 }, 8, CORE_ADDR_THIS_NETWORK },
    { { 10 }, 8, CORE_ADDR_PRIVATE },
    { { 100, 64 }, 10, CORE_ADDR_SHARED },
    { { 127 }, 8, CORE_ADDR_LOOPBACK },
    { { 169, 254 }, 16, CORE_ADDR_LINK_LOCAL },
    { { 172, 16 }, 12, CORE_ADDR_PRIVATE },
    { { 192, 0, 0 }, 24, CORE_ADDR_RESERVED },       /* IETF protocol assignments */
    { { 192, 0, 2 }, 24, CORE_ADDR_DOCUMENTATION },  /* TEST-NET-1 */
    { { 192, 31, 196 }, 24, CORE_ADDR_RESERVED },    /* AS112-v4 */
    { { 192, 52, 193 }, 24, CORE_ADDR_RESERVED },    /* AMT */
    { { 192, 88, 99 }, 24, CORE_ADDR_RESERVED },     /* 6to4 relay anycast */
    { { 192, 168 }, 16, CORE_ADDR_PRIVATE },
    { { 192, 175, 48 }, 24, CORE_ADDR_RESERVED },    /* direct delegation AS112 */
    { { 198, 18 }, 15, CORE_ADDR_BENCHMARK },
    { { 198, 51, 100 }, 24, CORE_ADDR_DOCUMENTATION },  /* TEST-NET-2 */
    { { 203, 0, 113 }, 24, CORE_ADDR_DOCUMENTATION },   /* TEST-NET-3 */
    { { 224 }, 4, CORE_ADDR_MULTICAST },
    { { 240 }, 4, CORE_ADDR_RESERVED },
};

/* IPv6 after the forms carrying IPv4 have been unwrapped */
static const range_t v6_ranges[] = {
    { { 0 }, 128, CORE_ADDR_UNSPECIFIED },
    { { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 }, 128, CORE_ADDR_LOOPBACK },
    { { 0x20, 0x01, 0x0d, 0xb8 }, 32, CORE_ADDR_DOCUMENTATION },
    { { 0x20, 0x01, 0x00, 0x02, 0x00, 0x00 }, 48, CORE_ADDR_BENCHMARK },
    { { 0x20, 0x01 }, 23, CORE_ADDR_RESERVED },      /* IETF protocol assignments, Teredo */
    { { 0x3f, 0xff }, 20, CORE_ADDR_DOCUMENTATION },  /* RFC 9637 */
    { { 0x20 }, 3, CORE_ADDR_PUBLIC },
    { { 0xfc }, 7, CORE_ADDR_UNIQUE_LOCAL },
    { { 0xfe, 0x80 }, 10, CORE_ADDR_LINK_LOCAL },
    { { 0xfe, 0xc0 }, 10, CORE_ADDR_PRIVATE },        /* site-local, deprecated */
    { { 0xff }, 8, CORE_ADDR_MULTICAST },
};

static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned prefix)
{
    unsigned full = prefix / 8, rest = prefix % 8;

    if (memcmp(a, net, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

static core_addr_class_t classify_v4(const uint8_t b[4])
{
    for (size_t i = 0; i < CORE_ARRAY_LEN(v4_ranges); i++)
        if (prefix_match(b, v4_ranges[i].bytes, v4_ranges[i].prefix))
            return v4_ranges[i].cls;
    return CORE_ADDR_PUBLIC;
}

static const uint8_t mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
static const uint8_t nat64_prefix[12] = { 0x00, 0x64, 0xff, 0x9b };
static const uint8_t zero12[12];

/* The IPv4 address an IPv6 form carries, or NULL. */
static const uint8_t *embedded_v4(const uint8_t b[16])
{
    if (memcmp(b, mapped_prefix, 12) == 0 || memcmp(b, nat64_prefix, 12) == 0)
        return b + 12;
    /* IPv4-compatible (deprecated): ::a.b.c.d, but not :: or ::1 */
    if (memcmp(b, zero12, 12) == 0 && (b[12] | b[13] | b[14] || b[15] > 1))
        return b + 12;
    if (b[0] == 0x20 && b[1] == 0x02)   /* 6to4: 2002:aabb:ccdd::/48 */
        return b + 2;
    return NULL;
}

core_addr_class_t core_addr_classify(const core_addr_t *a)
{
    if (!a)
        return CORE_ADDR_RESERVED;
    if (a->family == AF_INET)
        return classify_v4(a->bytes);
    if (a->family != AF_INET6)
        return CORE_ADDR_RESERVED;

    const uint8_t *v4 = embedded_v4(a->bytes);
    if (v4)
        return classify_v4(v4);
    for (size_t i = 0; i < CORE_ARRAY_LEN(v6_ranges); i++)
        if (prefix_match(a->bytes, v6_ranges[i].bytes, v6_ranges[i].prefix))
            return v6_ranges[i].cls;
    return CORE_ADDR_RESERVED;   /* not allocated for global unicast */
}

const char *core_addr_class_str(core_addr_class_t c)
{
    switch (c) {
    case CORE_ADDR_PUBLIC:        return "public";
    case CORE_ADDR_UNSPECIFIED:   return "unspecified";
    case CORE_ADDR_THIS_NETWORK:  return "this-network";
    case CORE_ADDR_LOOPBACK:      return "loopback";
    case CORE_ADDR_PRIVATE:       return "private";
    case CORE_ADDR_SHARED:        return "shared (carrier-grade NAT)";
    case CORE_ADDR_LINK_LOCAL:    return "link-local";
    case CORE_ADDR_UNIQUE_LOCAL:  return "unique-local";
    case CORE_ADDR_MULTICAST:     return "multicast";
    case CORE_ADDR_BROADCAST:     return "broadcast";
    case CORE_ADDR_DOCUMENTATION: return "documentation";
    case CORE_ADDR_BENCHMARK:     return "benchmarking";
    case CORE_ADDR_RESERVED:      return "reserved";
    }
    return "reserved";
}

bool core_addr_from_sockaddr(const struct sockaddr *sa, size_t len,
                             core_addr_t *out)
{
    if (!sa || !out)
        return false;
    memset(out, 0, sizeof *out);
    if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        memcpy(out->bytes, &in->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        out->family = AF_INET6;
        memcpy(out->bytes, &in6->sin6_addr, 16);
        return true;
    }
    return false;
}

bool core_addr_parse(const char *s, core_addr_t *out)
{
    if (!s || !out)
        return false;
    memset(out, 0, sizeof *out);
    if (inet_pton(AF_INET, s, out->bytes) == 1) {
        out->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, s, out->bytes) == 1) {
        out->family = AF_INET6;
        return true;
    }
    return false;
}

void core_addr_format(const core_addr_t *a, char out[46])
{
    out[0] = '\0';
    if (!a || !inet_ntop(a->family, a->bytes, out, 46))
        snprintf(out, 46, "?");
}

/* ---- the operator's allowlist ------------------------------------------- */

static bool cidr_parse(const char *item, core_cidr_t *out)
{
    char text[64];
    const char *slash = strchr(item, '/');
    size_t alen = slash ? (size_t)(slash - item) : strlen(item);
    unsigned bits;

    if (alen == 0 || alen >= sizeof text)
        return false;
    memcpy(text, item, alen);
    text[alen] = '\0';
    if (!core_addr_parse(text, &out->addr))
        return false;
    bits = out->addr.family == AF_INET ? 32 : 128;
    out->prefix = bits;
    if (slash) {
        const char *p = slash + 1;
        unsigned v = 0;
        if (!*p || strlen(p) > 3)
            return false;
        for (; *p; p++) {
            if (!isdigit((unsigned char)*p))
                return false;
            v = v * 10 + (unsigned)(*p - '0');
        }
        if (v > bits)
            return false;
        out->prefix = v;
    }
    /* host bits set ("10.1.2.3/16") is most likely a typo: refuse it */
    for (unsigned i = out->prefix; i < bits; i++)
        if (out->addr.bytes[i / 8] & (0x80u >> (i % 8)))
            return false;
    return true;
}

bool core_allowlist_parse(const char *list, core_allowlist_t *out,
                          char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (err && errlen)
        err[0] = '\0';
    if (!list)
        return true;
    for (const char *p = list; *p;) {
        char item[64];
        size_t n = 0;

        while (*p == ',' || isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        while (p[n] && p[n] != ',' && !isspace((unsigned char)p[n]))
            n++;
        int shown = (int)(n > 60 ? 60 : n);
        if (out->n == CORE_ALLOW_MAX) {
            if (err && errlen)
                snprintf(err, errlen, "expected at most %d items, found more "
                         "at \"%.*s\"", CORE_ALLOW_MAX, shown, p);
            return false;
        }
        if (n < sizeof item) {
            memcpy(item, p, n);
            item[n] = '\0';
        }
        if (n >= sizeof item || !cidr_parse(item, &out->items[out->n])) {
            if (err && errlen)
                snprintf(err, errlen, "expected an address or CIDR block with "
                         "no host bits set, found \"%.*s\"", shown, p);
            return false;
        }
        out->n++;
        p += n;
    }
    return true;
}

bool core_allowlist_match(const core_allowlist_t *l, const core_addr_t *a)
{
    core_addr_t v4;

    if (!l || !a)
        return false;
    if (a->family == AF_INET6 && memcmp(a->bytes, mapped_prefix, 12) == 0) {
        memset(&v4, 0, sizeof v4);
        v4.family = AF_INET;
        memcpy(v4.bytes, a->bytes + 12, 4);
        a = &v4;
    }
    for (size_t i = 0; i < l->n; i++)
        if (l->items[i].addr.family == a->family &&
            prefix_match(a->bytes, l->items[i].addr.bytes, l->items[i].prefix))
            return true;
    return false;
}
