/* needs_missing: requires a module that is never loaded */
#include <plexus/module.h>

static plx_status_t needs_missing_init(plx_module_t *m) { return PLX_OK; }

PLX_MODULE(.name = "needs_missing", .version = "1.0",
           .requires = PLX_REQUIRES("nonexistent"), .init = needs_missing_init);
