/* init_fails: its init refuses, as a module with a bad setting would */
#include <plexus/module.h>

static int stopped;

static plx_status_t init_fails_init(plx_module_t *m)
{
    plx_log(m, PLX_LOG_ERROR, "setting \"mode\" must be \"a\" or \"b\"");
    return PLX_ERR_INVALID;
}

static void init_fails_stop(plx_module_t *m)
{
    stopped++;
}

PLX_MODULE(.name = "init_fails", .version = "1.0", .init = init_fails_init,
           .stop = init_fails_stop);
