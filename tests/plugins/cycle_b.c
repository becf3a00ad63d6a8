/* cycle_b: requires cycle_a, which requires cycle_b */
#include <plexus/module.h>

static plx_status_t cycle_b_init(plx_module_t *m) { return PLX_OK; }

PLX_MODULE(.name = "cycle_b", .version = "1.0",
           .requires = PLX_REQUIRES("cycle_a"), .init = cycle_b_init);
