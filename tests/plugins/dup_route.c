/* dup_route: registers a route that the "good" module already owns */
#include <plexus/module.h>

static plx_status_t dup_hello(plx_request_t *r, void *arg)
{
    return plx_reply_json(r, 200, json_pack("{s:s}", "module", "dup_route"));
}

static plx_status_t dup_route_init(plx_module_t *m)
{
    /* same pattern as good's, with another parameter spelling too */
    return plx_route_add(m, "GET", "/api/v1/good", dup_hello, NULL, NULL);
}

PLX_MODULE(.name = "dup_route", .version = "1.0", .init = dup_route_init);
