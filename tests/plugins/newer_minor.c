/* newer_minor: built for the minor after the core's (as a module built
 * against a newer header is). It declares abi_minor_required = the core's
 * minor and tests the entry it uses with PLX_API_HAS, so the core must load
 * it. Built with -DNEWER_REQUIRED as needs_newer, it requires the minor it
 * was built for, and the core must refuse it. */
#include <plexus/module.h>

enum { CORE_MINOR = PLX_ABI_MINOR };

#undef PLX_ABI_MINOR
#define PLX_ABI_MINOR (CORE_MINOR + 1)

static plx_status_t newer_init(plx_module_t *m)
{
    /* what such a module does before calling an entry newer than its
     * requirement (here one the core has) */
    if (!PLX_API_HAS(plx_api, rate_class_add))
        return PLX_ERR_INTERNAL;
    return PLX_OK;
}

#ifdef NEWER_REQUIRED
PLX_MODULE(.name = "needs_newer", .version = "1.0", .init = newer_init,
           .abi_minor_required = PLX_ABI_MINOR);
#else
PLX_MODULE(.name = "newer_minor", .version = "1.0", .init = newer_init,
           .abi_minor_required = CORE_MINOR);
#endif
