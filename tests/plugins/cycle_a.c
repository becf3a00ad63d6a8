/* cycle_a: requires cycle_b, which requires cycle_a */
#include <plexus/module.h>

static plx_status_t cycle_a_init(plx_module_t *m) { return PLX_OK; }

PLX_MODULE(.name = "cycle_a", .version = "1.0",
           .requires = PLX_REQUIRES("cycle_b"), .init = cycle_a_init);
