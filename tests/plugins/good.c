/* good: a well-formed module used by the loader tests */
#include <plexus/module.h>

static plx_status_t good_hello(plx_request_t *r, void *arg)
{
    return plx_reply_json(r, 200, json_pack("{s:s}", "module", "good"));
}

static const struct { uint32_t size; int (*answer)(void); } good_svc = { 0, NULL };

static plx_status_t good_init(plx_module_t *m)
{
    if (plx_route_add(m, "GET", "/api/v1/good", good_hello, NULL,
                      PLX_ROUTE_OPTS(.summary = "say good")) != PLX_OK)
        return PLX_ERR_INTERNAL;
    return plx_service_register(m, "good.svc", 1, &good_svc);
}

PLX_MODULE(.name = "good", .version = "1.2.3",
           .description = "a well-formed test module", .init = good_init);
