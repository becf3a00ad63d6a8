/*
 * order_probe: registers request.begin hooks in a scrambled order and
 * records the order they run in, readable through its service
 * "order_probe.log"/1. The loader test checks the core sorted them.
 */
#include <plexus/module.h>

#include <string.h>

typedef struct order_probe_svc {
    uint32_t size;
    const char *(*log)(void);
    void (*reset)(void);
} order_probe_svc_t;

static char seen[64];

static void note(char c)
{
    size_t n = strlen(seen);
    if (n + 1 < sizeof seen) {
        seen[n] = c;
        seen[n + 1] = '\0';
    }
}

static plx_status_t hook_a(plx_request_t *r, void *d, void *a) { note('a'); return PLX_OK; }
static plx_status_t hook_b(plx_request_t *r, void *d, void *a) { note('b'); return PLX_DECLINED; }
static plx_status_t hook_c(plx_request_t *r, void *d, void *a) { note('c'); return PLX_OK; }
static plx_status_t hook_d(plx_request_t *r, void *d, void *a) { note('d'); return PLX_OK; }

static const char *probe_log(void) { return seen; }
static void probe_reset(void) { seen[0] = '\0'; }

static const order_probe_svc_t svc = { sizeof svc, probe_log, probe_reset };

static plx_status_t order_probe_init(plx_module_t *m)
{
    static const plx_hook_order_t last = { sizeof last, PLX_HOOK_LAST, NULL, NULL };
    static const plx_hook_order_t first = { sizeof first, PLX_HOOK_FIRST, NULL, NULL };
    static const plx_hook_order_t middle = { sizeof middle, PLX_HOOK_MIDDLE, NULL, NULL };
    static const plx_hook_order_t really_first = { sizeof really_first,
                                                   PLX_HOOK_REALLY_FIRST, NULL, NULL };

    /* registered d, c, b, a; must run a, b, c, d */
    if (plx_hook_add(m, "probe.point", hook_d, NULL, &last) != PLX_OK
        || plx_hook_add(m, "probe.point", hook_c, NULL, &middle) != PLX_OK
        || plx_hook_add(m, "probe.point", hook_b, NULL, &first) != PLX_OK
        || plx_hook_add(m, "probe.point", hook_a, NULL, &really_first) != PLX_OK)
        return PLX_ERR_INTERNAL;
    return plx_service_register(m, "order_probe.log", 1, &svc);
}

PLX_MODULE(.name = "order_probe", .version = "1.0", .init = order_probe_init);
