/* bad_magic: exports the entry point, but the descriptor is not ours */
#include <plexus/module.h>

const plx_api_t *plx_api;

PLX_EXPORT const plx_module_info_t *plx_module_info(void);
PLX_EXPORT const plx_module_info_t *plx_module_info(void)
{
    static const plx_module_info_t info = {
        .magic = 0xdeadbeefu, .abi_major = PLX_ABI_MAJOR,
        .abi_minor = PLX_ABI_MINOR, .size = sizeof(plx_module_info_t),
        .api_slot = &plx_api, .name = "bad_magic", .version = "1.0",
    };
    return &info;
}
