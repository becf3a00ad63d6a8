/* after_good: requires "good"; its config file sorts before good's, so the
 * loader must reorder */
#include <plexus/module.h>

static plx_status_t after_good_init(plx_module_t *m) { return PLX_OK; }

PLX_MODULE(.name = "after_good", .version = "1.0",
           .requires = PLX_REQUIRES("good"), .init = after_good_init);
