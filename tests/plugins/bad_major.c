/* bad_major: claims a plugin ABI major the core does not provide */
#include <plexus/module.h>

#undef PLX_ABI_MAJOR
#define PLX_ABI_MAJOR 2

static plx_status_t bad_major_init(plx_module_t *m) { return PLX_OK; }

PLX_MODULE(.name = "bad_major", .version = "1.0", .init = bad_major_init);
