/*
 * router.c - the route table: method + path pattern with {param} segments
 *
 * A segment trie. Every node stands for one segment position: literal
 * children by text, and at most one parameter child, shared by every
 * pattern with a parameter there whatever its name (so "/a/{id}" and
 * "/a/{name}" land on the same node and are reported as duplicates). The
 * routes ending at a node hang off it, one per method.
 *
 * Matching walks the trie depth first, literal child before parameter
 * child, and stops at the first node that has the request's method; a path
 * ends at each trie node at most once, so the walk costs at most the number
 * of nodes. Path segments are percent-decoded before the walk, so literals
 * compare against decoded text and parameter values come out decoded.
 *
 * Pure data, no I/O, no locks: built during init on the main thread,
 * read-only once the server runs.
 */
#include "config.h"
#include "router.h"

#include <stdlib.h>
#include <string.h>

#define ROUTER_MAX_SEGMENTS   32    /* of a pattern; a longer path cannot match */
#define ROUTER_MAX_PATH       8192  /* bytes of a path we try to match */
#define ROUTER_MAX_PARAM_NAME 32
#define ROUTER_MAX_METHOD     16

typedef struct route_entry {
    core_route_t       pub;                           /* first: &entry->pub is the entry */
    plx_ws_handlers_t  ws;                            /* our copy of the handlers */
    char              *names[CORE_ROUTE_MAX_PARAMS];
    size_t             nparams;
} route_entry_t;

typedef struct rnode {
    char           *literal;   /* NULL for the root and parameter nodes */
    struct rnode  **kids;      /* literal children */
    size_t          nkids;
    struct rnode   *param;     /* the parameter child */
    route_entry_t **routes;    /* routes ending here, one per method */
    size_t          nroutes;
} rnode_t;

struct core_router {
    rnode_t         root;
    route_entry_t **all;       /* registration order */
    size_t          count;
};

/* one segment of a pattern, as parsed */
typedef struct pseg {
    const char *text;
    size_t      len;
    bool        param;
} pseg_t;

/* the decoded segments of a request path */
typedef struct path_segs {
    char   *buf;                        /* one allocation holding every segment */
    char   *seg[ROUTER_MAX_SEGMENTS];
    size_t  n;
} path_segs_t;

/* ---- creation and destruction ----------------------------------------- */

core_router_t *core_router_new(void)
{
    return calloc(1, sizeof(core_router_t));
}

static void node_free_children(rnode_t *n)
{
    for (size_t i = 0; i < n->nkids; i++) {
        node_free_children(n->kids[i]);
        free(n->kids[i]);
    }
    if (n->param) {
        node_free_children(n->param);
        free(n->param);
    }
    free(n->kids);
    free(n->literal);
    free(n->routes);
}

static void entry_free(route_entry_t *e)
{
    if (!e)
        return;
    free(e->pub.method);
    free(e->pub.pattern);
    free(e->pub.scope);
    free(e->pub.rate_class);
    free(e->pub.summary);
    free(e->pub.tag);
    for (size_t i = 0; i < e->nparams; i++)
        free(e->names[i]);
    free(e);
}

void core_router_free(core_router_t *rt)
{
    if (!rt)
        return;
    node_free_children(&rt->root);
    for (size_t i = 0; i < rt->count; i++)
        entry_free(rt->all[i]);
    free(rt->all);
    free(rt);
}

size_t core_router_count(const core_router_t *rt)
{
    return rt ? rt->count : 0;
}

const core_route_t *core_router_at(const core_router_t *rt, size_t i)
{
    if (!rt || i >= rt->count)
        return NULL;
    return &rt->all[i]->pub;
}

/* ---- pattern validation ------------------------------------------------ */

/* RFC 3986 pchar without '%': what a literal segment may hold */
static bool literal_char_ok(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@", c) != NULL;
}

static bool param_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > ROUTER_MAX_PARAM_NAME)
        return false;
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return false;
    for (size_t i = 1; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static bool segment_parse(const char *s, size_t len, pseg_t *out)
{
    out->text = s;
    out->len = len;
    out->param = false;
    if (len == 0)
        return false;
    if (s[0] == '{') {
        if (len < 3 || s[len - 1] != '}' || !param_name_ok(s + 1, len - 2))
            return false;
        out->text = s + 1;
        out->len = len - 2;
        out->param = true;
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        if (!literal_char_ok((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* Split a pattern into segments; "/" alone has none. */
static bool pattern_parse(const char *pattern, pseg_t segs[ROUTER_MAX_SEGMENTS],
                          size_t *nsegs, size_t *nparams)
{
    const char *p;

    *nsegs = 0;
    *nparams = 0;
    if (!pattern || pattern[0] != '/')
        return false;
    if (strcmp(pattern, "/") == 0)
        return true;
    p = pattern + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (*nsegs == ROUTER_MAX_SEGMENTS || !segment_parse(p, len, &segs[*nsegs]))
            return false;
        if (segs[*nsegs].param && ++*nparams > CORE_ROUTE_MAX_PARAMS)
            return false;
        (*nsegs)++;
        if (!end)
            return true;
        p = end + 1;
    }
}

static bool param_names_unique(const pseg_t *segs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; segs[i].param && j < n; j++) {
            if (segs[j].param && segs[i].len == segs[j].len
                && memcmp(segs[i].text, segs[j].text, segs[i].len) == 0)
                return false;
        }
    }
    return true;
}

static bool method_ok(const char *m)
{
    size_t len = m ? strlen(m) : 0;

    if (len == 0 || len > ROUTER_MAX_METHOD)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (m[i] < 'A' || m[i] > 'Z')
            return false;
    }
    return true;
}

/* ---- insertion ---------------------------------------------------------- */

static rnode_t *node_literal_child(const rnode_t *n, const char *s, size_t len)
{
    for (size_t i = 0; i < n->nkids; i++) {
        const char *lit = n->kids[i]->literal;
        if (strlen(lit) == len && memcmp(lit, s, len) == 0)
            return n->kids[i];
    }
    return NULL;
}

static rnode_t *node_child_get(rnode_t *n, const pseg_t *seg)
{
    rnode_t *kid, **kids;

    if (seg->param) {
        if (!n->param)
            n->param = calloc(1, sizeof(rnode_t));
        return n->param;
    }
    kid = node_literal_child(n, seg->text, seg->len);
    if (kid)
        return kid;
    kids = realloc(n->kids, (n->nkids + 1) * sizeof(*kids));
    if (!kids)
        return NULL;
    n->kids = kids;
    kid = calloc(1, sizeof(rnode_t));
    if (!kid)
        return NULL;
    kid->literal = strndup(seg->text, seg->len);
    if (!kid->literal) {
        free(kid);
        return NULL;
    }
    n->kids[n->nkids++] = kid;
    return kid;
}

/* the node for a parsed pattern, created on the way; NULL without memory */
static rnode_t *node_for(core_router_t *rt, const pseg_t *segs, size_t n)
{
    rnode_t *node = &rt->root;

    for (size_t i = 0; node && i < n; i++)
        node = node_child_get(node, &segs[i]);
    return node;
}

static route_entry_t *node_route(const rnode_t *n, const char *method)
{
    for (size_t i = 0; i < n->nroutes; i++) {
        if (strcmp(n->routes[i]->pub.method, method) == 0)
            return n->routes[i];
    }
    return NULL;
}

static char *dup_or_null(const char *s, bool *ok)
{
    char *d;

    if (!s)
        return NULL;
    d = strdup(s);
    if (!d)
        *ok = false;
    return d;
}

static route_entry_t *entry_new(const core_route_t *r, const pseg_t *segs,
                                size_t nsegs)
{
    route_entry_t *e = calloc(1, sizeof(*e));
    bool ok = true;

    if (!e)
        return NULL;
    e->pub = *r;
    e->pub.method = dup_or_null(r->method, &ok);
    e->pub.pattern = dup_or_null(r->pattern, &ok);
    e->pub.scope = dup_or_null(r->scope, &ok);
    e->pub.rate_class = dup_or_null(r->rate_class, &ok);
    e->pub.summary = dup_or_null(r->summary, &ok);
    e->pub.tag = dup_or_null(r->tag, &ok);
    if (r->ws) {
        /* a module built against an older header may hand a shorter struct */
        size_t n = r->ws->size < sizeof(e->ws) ? r->ws->size : sizeof(e->ws);
        memcpy(&e->ws, r->ws, n);
        e->ws.size = sizeof(e->ws);
        e->pub.ws = &e->ws;
    }
    for (size_t i = 0; i < nsegs; i++) {
        if (segs[i].param) {
            e->names[e->nparams] = strndup(segs[i].text, segs[i].len);
            ok = ok && e->names[e->nparams];
            e->nparams++;
        }
    }
    if (!ok) {
        entry_free(e);
        return NULL;
    }
    return e;
}

static bool node_add_route(rnode_t *n, route_entry_t *e)
{
    route_entry_t **routes = realloc(n->routes, (n->nroutes + 1) * sizeof(*routes));

    if (!routes)
        return false;
    n->routes = routes;
    n->routes[n->nroutes++] = e;
    return true;
}

static bool router_append(core_router_t *rt, route_entry_t *e)
{
    route_entry_t **all = realloc(rt->all, (rt->count + 1) * sizeof(*all));

    if (!all)
        return false;
    rt->all = all;
    rt->all[rt->count++] = e;
    return true;
}

plx_status_t core_router_add(core_router_t *rt, const core_route_t *route,
                             const core_route_t **existing)
{
    pseg_t segs[ROUTER_MAX_SEGMENTS];
    size_t nsegs, nparams;
    rnode_t *node;
    route_entry_t *e, *dup;

    if (existing)
        *existing = NULL;
    if (!rt || !route || !method_ok(route->method)
        || !pattern_parse(route->pattern, segs, &nsegs, &nparams)
        || !param_names_unique(segs, nsegs))
        return PLX_ERR_INVALID;
    if ((strcmp(route->method, "WS") == 0) != (route->ws != NULL))
        return PLX_ERR_INVALID;
    node = node_for(rt, segs, nsegs);
    if (!node)
        return PLX_ERR_NOMEM;
    dup = node_route(node, route->method);
    if (dup) {
        if (existing)
            *existing = &dup->pub;
        return PLX_ERR_CONFLICT;
    }
    e = entry_new(route, segs, nsegs);
    if (!e)
        return PLX_ERR_NOMEM;
    if (!router_append(rt, e)) {
        entry_free(e);
        return PLX_ERR_NOMEM;
    }
    if (!node_add_route(node, e)) {
        rt->count--;
        entry_free(e);
        return PLX_ERR_NOMEM;
    }
    return PLX_OK;
}

/* ---- matching ----------------------------------------------------------- */

/* Decode src[0..len) into dst (room for len + 1). A malformed escape or
 * an encoded NUL makes the segment unmatchable: false. */
static bool percent_decode(const char *src, size_t len, char *dst)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        if (src[i] != '%') {
            dst[o++] = src[i];
            continue;
        }
        unsigned char byte;
        if (i + 2 >= len || core_hex_decode(src + i + 1, 2, &byte, 1, NULL) != PLX_OK
            || byte == 0)
            return false;
        dst[o++] = (char)byte;
        i += 2;
    }
    dst[o] = '\0';
    return true;
}

/* Split and decode a path. Empty segments ("//", a trailing '/') and the
 * dot segments "." and ".." never match anything. */
static bool path_split(const char *path, path_segs_t *ps)
{
    size_t plen = strlen(path);
    const char *p;
    char *out;

    ps->n = 0;
    ps->buf = NULL;
    if (path[0] != '/' || plen > ROUTER_MAX_PATH)
        return false;
    if (plen == 1)
        return true;
    ps->buf = malloc(plen + 1);
    if (!ps->buf)
        return false;
    out = ps->buf;
    p = path + 1;
    for (;;) {
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);

        if (len == 0 || ps->n == ROUTER_MAX_SEGMENTS || !percent_decode(p, len, out))
            return false;
        if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
            return false;
        ps->seg[ps->n++] = out;
        out += strlen(out) + 1;
        if (!end)
            return true;
        p = end + 1;
    }
}

typedef struct match_state {
    const path_segs_t *ps;
    const char        *method;
    route_entry_t     *found;
    const char        *values[CORE_ROUTE_MAX_PARAMS];  /* along the current walk */
    size_t             nvalues;
    const char        *found_values[CORE_ROUTE_MAX_PARAMS];
    core_route_match_t *m;
} match_state_t;

/* Add a method to the Allow list, once, if it fits. */
static void allow_add(core_route_match_t *m, const char *method)
{
    size_t used = strlen(m->allow), mlen = strlen(method);
    const char *p = m->allow;

    while ((p = strstr(p, method)) != NULL) {
        bool starts = p == m->allow || p[-1] == ' ';
        bool ends = p[mlen] == '\0' || p[mlen] == ',';
        if (starts && ends)
            return;
        p += mlen;
    }
    if (used + (used ? 2 : 0) + mlen + 1 > sizeof(m->allow))
        return;   /* NB: 128 bytes hold every standard method at once */
    if (used) {
        memcpy(m->allow + used, ", ", 2);
        used += 2;
    }
    memcpy(m->allow + used, method, mlen + 1);
}

/* A node where the path ends: take its route for the method, or remember
 * the methods it has for a 405. */
static bool match_at_end(match_state_t *st, const rnode_t *n)
{
    route_entry_t *e = node_route(n, st->method);

    if (e) {
        st->found = e;
        memcpy(st->found_values, st->values, st->nvalues * sizeof(st->values[0]));
        return true;
    }
    for (size_t i = 0; i < n->nroutes; i++) {
        st->m->path_known = true;
        if (strcmp(n->routes[i]->pub.method, "WS") != 0)
            allow_add(st->m, n->routes[i]->pub.method);
    }
    return false;
}

static bool match_walk(match_state_t *st, const rnode_t *n, size_t depth)
{
    const rnode_t *kid;
    bool ok;

    if (depth == st->ps->n)
        return match_at_end(st, n);
    kid = node_literal_child(n, st->ps->seg[depth], strlen(st->ps->seg[depth]));
    if (kid && match_walk(st, kid, depth + 1))
        return true;
    if (!n->param || st->nvalues == CORE_ROUTE_MAX_PARAMS)
        return false;
    st->values[st->nvalues++] = st->ps->seg[depth];
    ok = match_walk(st, n->param, depth + 1);
    st->nvalues--;
    return ok;
}

static void match_fill(core_route_match_t *m, const route_entry_t *e,
                       const char *const *values)
{
    m->route = &e->pub;
    m->nparams = e->nparams;
    for (size_t i = 0; i < e->nparams; i++) {
        m->names[i] = e->names[i];
        m->values[i] = strdup(values[i]);
        if (!m->values[i]) {
            /* out of memory: report no route rather than half a match */
            core_route_match_clear(m);
            return;
        }
    }
}

void core_router_match(const core_router_t *rt, const char *method,
                       const char *path, core_route_match_t *m)
{
    path_segs_t ps;
    match_state_t st;

    memset(m, 0, sizeof(*m));
    if (!rt || !method || !path)
        return;
    if (!path_split(path, &ps)) {
        free(ps.buf);
        return;
    }
    memset(&st, 0, sizeof(st));
    st.ps = &ps;
    st.method = method;
    st.m = m;
    if (match_walk(&st, &rt->root, 0)) {
        m->path_known = true;
        m->allow[0] = '\0';
        match_fill(m, st.found, st.found_values);
    }
    free(ps.buf);
}

void core_route_match_clear(core_route_match_t *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nparams; i++)
        free(m->values[i]);
    m->nparams = 0;
    m->route = NULL;
    memset(m->values, 0, sizeof(m->values));
}
