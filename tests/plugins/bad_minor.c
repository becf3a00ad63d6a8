/* bad_minor: built for a newer minor than the core provides, and needing it
 * (no abi_minor_required: the minor it was built for) */
#include <plexus/module.h>

#undef PLX_ABI_MINOR
#define PLX_ABI_MINOR 99

static plx_status_t bad_minor_init(plx_module_t *m) { return PLX_OK; }

PLX_MODULE(.name = "bad_minor", .version = "1.0", .init = bad_minor_init);
