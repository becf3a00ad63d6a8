/*
 * registry.c - hook points, event subscriptions and services
 *
 * Modules fill these tables from init on the main thread; afterwards HTTP
 * and job threads only read them, so running a hook or emitting an event
 * takes no lock. Hook order is computed once by core_hooks_sort(): a stable
 * sort by position, then a topological sort over the before/after names
 * (Kahn's algorithm, always taking the earliest ready registration), the
 * way APR orders httpd's hooks. See doc/internals/hooks.md.
 */
#include "config.h"
#include "registry.h"
#include "loader.h"

#include <stdlib.h>
#include <string.h>

#define REG_NAME_MAX      64     /* hook, topic and service names */
#define REG_MODULE_MAX    64
#define REG_ORDER_MAX     16     /* names in one before or after list */
#define REG_POINTS_MAX    256
#define REG_HOOKS_MAX     256    /* registrations on one hook point */
#define REG_SUBS_MAX      1024
#define REG_DURABLE_MAX   256
#define REG_HANDLER_MAX   127    /* job handler names, as jobs.c bounds them */
#define REG_SERVICES_MAX  256
#define REG_LIST_MAX      1024   /* one line of core_hooks_dump */

typedef struct hook_reg {
    char         module[REG_MODULE_MAX + 1];
    plx_hook_fn  fn;
    void        *arg;
    int          position;
    size_t       seq;                          /* registration order */
    char       **before;                       /* NULL-terminated copies */
    char       **after;
} hook_reg_t;

typedef struct hook_point {
    char        name[REG_NAME_MAX + 1];
    hook_reg_t *regs;     /* in run order */
    size_t      n;
    size_t      cap;
} hook_point_t;

typedef struct event_sub {
    char         pattern[REG_NAME_MAX + 1];   /* without the trailing '*' */
    bool         prefix;
    char         module[REG_MODULE_MAX + 1];
    plx_event_fn fn;
    void        *arg;
} event_sub_t;

/* a durable subscription: matching events become jobs for handler */
typedef struct durable_sub {
    event_sub_t sub;                           /* fn and arg unused */
    char        handler[REG_HANDLER_MAX + 1];
} durable_sub_t;

typedef struct service {
    char        name[REG_NAME_MAX + 1];
    unsigned    version;
    const void *table;
    char        module[REG_MODULE_MAX + 1];
} service_t;

static hook_point_t *points;
static size_t npoints, points_cap;
static size_t hook_seq;
static event_sub_t *subs;
static size_t nsubs, subs_cap;
static durable_sub_t *durables;
static size_t ndurables, durables_cap;
static service_t *services;
static size_t nservices, services_cap;
static bool (*answered_check)(plx_request_t *);

#define REG_LOG(level, ...) core_log(level, "registry", NULL, __VA_ARGS__)

/* ---- helpers ------------------------------------------------------------- */

static const char *module_name(plx_module_t *m)
{
    return m && m->name ? m->name : "core";
}

static void copy_name(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

/* names of hooks, topics and services: [a-z0-9._-], bounded */
static bool name_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > REG_NAME_MAX)
        return false;
    for (; *s; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')
                  || *s == '.' || *s == '_' || *s == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* grows *arr to hold n + 1 elements; false at max or out of memory */
static bool grow(void **arr, size_t *cap, size_t n, size_t size, size_t max)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return true;
    if (n >= max)
        return false;
    ncap = *cap ? *cap * 2 : 8;
    if (ncap > max)
        ncap = max;
    p = reallocarray(*arr, ncap, size);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

static void free_names(char **v)
{
    for (size_t i = 0; v && v[i]; i++)
        free(v[i]);
    free(v);
}

/* NULL-terminated copy of a NULL-terminated list; *ok false on failure */
static char **copy_names(const char *const *src, bool *ok)
{
    size_t n = 0;
    char **dst;

    *ok = true;
    if (!src)
        return NULL;
    while (src[n] && n <= REG_ORDER_MAX)
        n++;
    if (n > REG_ORDER_MAX) {
        *ok = false;
        return NULL;
    }
    dst = calloc(n + 1, sizeof *dst);
    for (size_t i = 0; dst && i < n; i++) {
        if (!(dst[i] = strndup(src[i], REG_MODULE_MAX))) {
            free_names(dst);
            dst = NULL;
        }
    }
    *ok = dst != NULL;
    return dst;
}

static bool names_contain(char *const *list, const char *name)
{
    for (size_t i = 0; list && list[i]; i++) {
        if (strcmp(list[i], name) == 0)
            return true;
    }
    return false;
}

/* ---- hooks --------------------------------------------------------------- */

static hook_point_t *point_find(const char *name)
{
    for (size_t i = 0; i < npoints; i++) {
        if (strcmp(points[i].name, name) == 0)
            return &points[i];
    }
    return NULL;
}

static hook_point_t *point_get(const char *name)
{
    hook_point_t *hp = point_find(name);

    if (hp)
        return hp;
    if (!grow((void **)&points, &points_cap, npoints, sizeof *points,
              REG_POINTS_MAX))
        return NULL;
    hp = &points[npoints++];
    memset(hp, 0, sizeof *hp);
    copy_name(hp->name, sizeof hp->name, name);
    return hp;
}

/* the fields of order a caller built for an older ABI may be missing */
#define ORDER_HAS(o, field) \
    ((o)->size >= offsetof(plx_hook_order_t, field) + sizeof((o)->field))

static bool reg_fill(hook_reg_t *reg, plx_module_t *m, plx_hook_fn fn,
                     void *arg, const plx_hook_order_t *order)
{
    bool ok_before = true, ok_after = true;

    memset(reg, 0, sizeof *reg);
    copy_name(reg->module, sizeof reg->module, module_name(m));
    reg->fn = fn;
    reg->arg = arg;
    reg->position = PLX_HOOK_MIDDLE;
    reg->seq = hook_seq++;
    if (!order)
        return true;
    if (ORDER_HAS(order, position))
        reg->position = order->position;
    if (ORDER_HAS(order, before))
        reg->before = copy_names(order->before, &ok_before);
    if (ORDER_HAS(order, after))
        reg->after = copy_names(order->after, &ok_after);
    if (ok_before && ok_after)
        return true;
    free_names(reg->before);
    free_names(reg->after);
    return false;
}

plx_status_t core_hook_add(plx_module_t *m, const char *name, plx_hook_fn fn,
                           void *arg, const plx_hook_order_t *order)
{
    hook_point_t *hp;
    hook_reg_t reg;

    if (!name_valid(name) || !fn) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": expected a hook name of a-z, "
                "0-9, '.', '_' and '-' (at most %d) and a function, found "
                "\"%.64s\"", module_name(m), REG_NAME_MAX, name ? name : "");
        return PLX_ERR_INVALID;
    }
    if (!reg_fill(&reg, m, fn, arg, order)) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": hook \"%s\": expected at most "
                "%d names in before and after", module_name(m), name,
                REG_ORDER_MAX);
        return PLX_ERR_INVALID;
    }
    hp = point_get(name);
    if (!hp || !grow((void **)&hp->regs, &hp->cap, hp->n, sizeof *hp->regs,
                     REG_HOOKS_MAX)) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": hook \"%s\": too many hooks",
                module_name(m), name);
        free_names(reg.before);
        free_names(reg.after);
        return PLX_ERR_NOMEM;
    }
    hp->regs[hp->n++] = reg;
    return PLX_OK;
}

void core_hooks_set_answered_check(bool (*answered)(plx_request_t *))
{
    answered_check = answered;
}

plx_status_t core_hook_run(const char *name, plx_request_t *r, void *data)
{
    const hook_point_t *hp = name ? point_find(name) : NULL;
    bool begin = name && strcmp(name, PLX_HOOK_REQUEST_BEGIN) == 0;

    for (size_t i = 0; hp && i < hp->n; i++) {
        plx_status_t st = hp->regs[i].fn(r, data, hp->regs[i].arg);

        if (st != PLX_OK && st != PLX_DECLINED)
            return st;
        if (begin && r && answered_check && answered_check(r))
            return PLX_OK;
    }
    return PLX_OK;
}

bool core_hook_has(const char *name)
{
    const hook_point_t *hp = name ? point_find(name) : NULL;
    return hp && hp->n > 0;
}

/* ---- hook order ---------------------------------------------------------- */

/* stable: position, then registration order */
static int reg_cmp(const void *a, const void *b)
{
    const hook_reg_t *x = a, *y = b;

    if (x->position != y->position)
        return x->position < y->position ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* must a run before b? (before/after lists only; positions are the
 * starting order, not constraints, so names can override them) */
static bool must_precede(const hook_reg_t *a, const hook_reg_t *b)
{
    if (strcmp(a->module, b->module) == 0)
        return false;
    return names_contain(a->before, b->module)
           || names_contain(b->after, a->module);
}

static bool point_has_module(const hook_point_t *hp, const char *module)
{
    for (size_t i = 0; i < hp->n; i++) {
        if (strcmp(hp->regs[i].module, module) == 0)
            return true;
    }
    return false;
}

static void warn_unknown(const hook_point_t *hp, const hook_reg_t *reg,
                         char *const *list, const char *rel)
{
    for (size_t i = 0; list && list[i]; i++) {
        if (point_has_module(hp, list[i]))
            continue;
        REG_LOG(PLX_LOG_WARN, "hook \"%s\": module \"%s\" asks to run %s "
                "\"%s\", which has no hook there", hp->name, reg->module, rel,
                list[i]);
    }
}

/* Walks back from an unplaced registration along "waits for" links until
 * one repeats; returns the length of the trail and where the cycle starts.
 * Every unplaced registration waits for another unplaced one (else Kahn's
 * algorithm would have placed it), so the walk always comes round. */
static size_t cycle_walk(const hook_reg_t *regs, size_t n, const bool *placed,
                         size_t *trail, size_t *start)
{
    size_t cur = 0, steps = 0;

    while (placed[cur])
        cur++;
    for (;;) {
        for (size_t i = 0; i < steps; i++) {
            if (trail[i] == cur) {
                *start = i;
                return steps;
            }
        }
        trail[steps++] = cur;
        for (size_t j = 0; j < n; j++) {
            if (!placed[j] && must_precede(&regs[j], &regs[cur])) {
                cur = j;
                break;
            }
        }
    }
}

/* logs the modules of one cycle: "a" after "b" after "a" */
static void report_cycle(const hook_point_t *hp, const bool *placed)
{
    size_t *trail = calloc(hp->n + 1, sizeof *trail);
    size_t steps, start = 0, len = 0;
    char names[REG_LIST_MAX] = "";

    if (!trail) {
        REG_LOG(PLX_LOG_ERROR, "hook \"%s\": the before/after order of "
                "modules forms a cycle", hp->name);
        return;
    }
    steps = cycle_walk(hp->regs, hp->n, placed, trail, &start);
    for (size_t i = start; i <= steps && len < sizeof names; i++) {
        const char *mod = hp->regs[trail[i < steps ? i : start]].module;
        int w = snprintf(names + len, sizeof names - len, "%s\"%s\"",
                         i > start ? " after " : "", mod);
        len += w > 0 ? (size_t)w : 0;
    }
    REG_LOG(PLX_LOG_ERROR, "hook \"%s\": the before/after order of modules "
            "forms a cycle: %s", hp->name, names);
    free(trail);
}

/* index of the first unplaced registration all of whose predecessors are
 * placed, or n */
static size_t next_ready(const hook_reg_t *regs, size_t n, const bool *placed)
{
    for (size_t i = 0; i < n; i++) {
        bool ready = !placed[i];
        for (size_t j = 0; ready && j < n; j++)
            ready = placed[j] || !must_precede(&regs[j], &regs[i]);
        if (ready)
            return i;
    }
    return n;
}

static bool point_sort(hook_point_t *hp)
{
    size_t n = hp->n;
    hook_reg_t *order = calloc(n ? n : 1, sizeof *order);
    bool *placed = calloc(n ? n : 1, sizeof *placed);
    bool ok = order && placed;

    for (size_t i = 0; ok && i < n; i++) {
        warn_unknown(hp, &hp->regs[i], hp->regs[i].before, "before");
        warn_unknown(hp, &hp->regs[i], hp->regs[i].after, "after");
    }
    if (ok)
        qsort(hp->regs, n, sizeof *hp->regs, reg_cmp);
    for (size_t k = 0; ok && k < n; k++) {
        size_t i = next_ready(hp->regs, n, placed);
        if (i == n) {
            report_cycle(hp, placed);
            ok = false;
            break;
        }
        placed[i] = true;
        order[k] = hp->regs[i];
    }
    if (ok)
        memcpy(hp->regs, order, n * sizeof *order);
    free(order);
    free(placed);
    return ok;
}

static void point_list(const hook_point_t *hp, char *out, size_t size)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < hp->n && len < size; i++) {
        int w = snprintf(out + len, size - len, "%s%s", i ? ", " : "",
                         hp->regs[i].module);
        if (w < 0)
            break;
        len += (size_t)w;
    }
}

bool core_hooks_sort(void)
{
    bool ok = true;
    char list[REG_LIST_MAX];

    for (size_t i = 0; i < npoints; i++) {
        if (!point_sort(&points[i])) {
            ok = false;
            continue;
        }
        point_list(&points[i], list, sizeof list);
        REG_LOG(PLX_LOG_DEBUG, "hook \"%s\": %s", points[i].name, list);
    }
    return ok;
}

static int point_name_cmp(const void *a, const void *b)
{
    const hook_point_t *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

void core_hooks_dump(FILE *out)
{
    const hook_point_t *sorted[REG_POINTS_MAX];
    char list[REG_LIST_MAX];

    for (size_t i = 0; i < npoints; i++)
        sorted[i] = &points[i];
    qsort(sorted, npoints, sizeof *sorted, point_name_cmp);
    for (size_t i = 0; i < npoints; i++) {
        point_list(sorted[i], list, sizeof list);
        fprintf(out, "%s: %s\n", sorted[i]->name, list);
    }
}

/* ---- events -------------------------------------------------------------- */

/* "a.b" exactly, or a prefix: "a.*" (anything under a.) and "*" (all) */
static bool topic_parse(const char *topic, event_sub_t *sub)
{
    size_t n = topic ? strlen(topic) : 0;
    char base[REG_NAME_MAX + 1];

    if (n == 0 || n > REG_NAME_MAX)
        return false;
    sub->prefix = topic[n - 1] == '*';
    copy_name(base, sizeof base, topic);
    if (sub->prefix)
        base[n - 1] = '\0';
    if (base[0] != '\0' && !name_valid(base))
        return false;
    if (!sub->prefix && base[0] == '\0')
        return false;
    copy_name(sub->pattern, sizeof sub->pattern, base);
    return true;
}

plx_status_t core_event_subscribe(plx_module_t *m, const char *topic,
                                  plx_event_fn fn, void *arg)
{
    event_sub_t sub = { .fn = fn, .arg = arg };

    if (!fn || !topic_parse(topic, &sub)) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": expected a topic like "
                "\"a.b\", \"a.*\" or \"*\" and a function, found \"%.64s\"",
                module_name(m), topic ? topic : "");
        return PLX_ERR_INVALID;
    }
    if (!grow((void **)&subs, &subs_cap, nsubs, sizeof *subs, REG_SUBS_MAX)) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": too many event subscriptions",
                module_name(m));
        return PLX_ERR_NOMEM;
    }
    copy_name(sub.module, sizeof sub.module, module_name(m));
    subs[nsubs++] = sub;
    return PLX_OK;
}

static bool topic_matches(const event_sub_t *sub, const char *topic)
{
    if (sub->prefix)
        return strncmp(topic, sub->pattern, strlen(sub->pattern)) == 0;
    return strcmp(topic, sub->pattern) == 0;
}

void core_event_emit(const char *topic, json_t *payload)
{
    if (!name_valid(topic)) {
        REG_LOG(PLX_LOG_WARN, "event not delivered: expected a topic of a-z, "
                "0-9, '.', '_' and '-', found \"%.64s\"", topic ? topic : "");
        return;
    }
    for (size_t i = 0; i < nsubs; i++) {
        if (topic_matches(&subs[i], topic))
            subs[i].fn(topic, payload, subs[i].arg);
    }
}

/* job handler names: [A-Za-z0-9._:-], as jobs.c checks them */
static bool handler_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > REG_HANDLER_MAX)
        return false;
    for (; *s; s++) {
        bool ok = (*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
                  || (*s >= '0' && *s <= '9') || *s == '.' || *s == '_'
                  || *s == '-' || *s == ':';
        if (!ok)
            return false;
    }
    return true;
}

plx_status_t core_event_subscribe_durable(plx_module_t *m, const char *topic,
                                          const char *handler)
{
    durable_sub_t d = { .sub = { .fn = NULL } };

    if (!topic_parse(topic, &d.sub) || !handler_valid(handler)) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": expected a topic like "
                "\"a.b\", \"a.*\" or \"*\" and a job handler name, found "
                "\"%.64s\"", module_name(m), topic ? topic : "");
        return PLX_ERR_INVALID;
    }
    for (size_t i = 0; i < ndurables; i++)
        if (strcmp(durables[i].handler, handler) == 0
            && durables[i].sub.prefix == d.sub.prefix
            && strcmp(durables[i].sub.pattern, d.sub.pattern) == 0) {
            REG_LOG(PLX_LOG_ERROR, "module \"%s\": durable subscription of "
                    "\"%s\" to \"%s\" registered twice", module_name(m),
                    handler, topic);
            return PLX_ERR_CONFLICT;
        }
    if (!grow((void **)&durables, &durables_cap, ndurables, sizeof *durables,
              REG_DURABLE_MAX)) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": too many durable "
                "subscriptions", module_name(m));
        return PLX_ERR_NOMEM;
    }
    copy_name(d.sub.module, sizeof d.sub.module, module_name(m));
    copy_name(d.handler, sizeof d.handler, handler);
    durables[ndurables++] = d;
    return PLX_OK;
}

bool core_event_topic_valid(const char *topic)
{
    return name_valid(topic);
}

size_t core_event_durable_count(void)
{
    return ndurables;
}

const char *core_event_durable_match(size_t i, const char *topic)
{
    if (i >= ndurables || !topic || !topic_matches(&durables[i].sub, topic))
        return NULL;
    return durables[i].handler;
}

/* ---- services ------------------------------------------------------------ */

static service_t *service_find(const char *name, unsigned version)
{
    for (size_t i = 0; i < nservices; i++) {
        if (services[i].version == version
            && strcmp(services[i].name, name) == 0)
            return &services[i];
    }
    return NULL;
}

plx_status_t core_service_register(plx_module_t *m, const char *name,
                                   unsigned version, const void *table)
{
    service_t *old;

    if (!name_valid(name) || !table) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": expected a service name of "
                "a-z, 0-9, '.', '_' and '-' and a table, found \"%.64s\"",
                module_name(m), name ? name : "");
        return PLX_ERR_INVALID;
    }
    if ((old = service_find(name, version))) {
        REG_LOG(PLX_LOG_ERROR, "service \"%s/%u\" of module \"%s\" is already "
                "registered by module \"%s\"", name, version, module_name(m),
                old->module);
        return PLX_ERR_CONFLICT;
    }
    if (!grow((void **)&services, &services_cap, nservices, sizeof *services,
              REG_SERVICES_MAX)) {
        REG_LOG(PLX_LOG_ERROR, "module \"%s\": too many services",
                module_name(m));
        return PLX_ERR_NOMEM;
    }
    services[nservices] = (service_t){ .version = version, .table = table };
    copy_name(services[nservices].name, sizeof services[nservices].name, name);
    copy_name(services[nservices].module, sizeof services[nservices].module,
              module_name(m));
    nservices++;
    return PLX_OK;
}

const void *core_service_get(const char *name, unsigned version)
{
    const service_t *s = name ? service_find(name, version) : NULL;
    return s ? s->table : NULL;
}

/* ---- teardown ------------------------------------------------------------ */

void core_registry_free(void)
{
    for (size_t i = 0; i < npoints; i++) {
        for (size_t j = 0; j < points[i].n; j++) {
            free_names(points[i].regs[j].before);
            free_names(points[i].regs[j].after);
        }
        free(points[i].regs);
    }
    free(points);
    free(subs);
    free(durables);
    free(services);
    points = NULL;
    subs = NULL;
    durables = NULL;
    ndurables = durables_cap = 0;
    services = NULL;
    npoints = nsubs = nservices = 0;
    points_cap = subs_cap = services_cap = 0;
    hook_seq = 0;
    answered_check = NULL;
}
