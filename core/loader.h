/*
 * loader.h - finding, checking, ordering and running modules
 */
#ifndef PLEXUS_LOADER_H
#define PLEXUS_LOADER_H

#include "conf.h"

typedef enum core_module_state {
    CORE_MOD_LOADED = 0,
    CORE_MOD_INITIALISED,
    CORE_MOD_STARTED,
    CORE_MOD_STOPPED,
    CORE_MOD_FAILED
} core_module_state_t;

struct plx_module {
    char                    *name;
    char                    *file;       /* the .so */
    char                    *conf_file;  /* its plugins.d file */
    void                    *dl;         /* dlopen handle; NULL for the core itself */
    const plx_module_info_t *info;
    core_module_state_t      state;
    size_t                   order;      /* position in dependency order */
};

/* The pseudo-module that owns the core's own routes, hooks and migrations. */
plx_module_t *core_module_self(void);

/* Open every module marked load = yes in config order, check it and sort
 * by dependency. On a refusal logs one line naming the file and the reason
 * and returns false. module_dir: [server] module_dir. */
bool core_modules_load(core_config_t *cfg, const char *module_dir);
bool core_modules_init(void);   /* in dependency order */
bool core_modules_start(void);
void core_modules_stop(void);   /* reverse order; only started ones */
void core_modules_unload(void); /* dlclose all */

size_t core_module_count(void);
plx_module_t *core_module_at(size_t i);        /* in dependency order */
plx_module_t *core_module_find(const char *name);
const char *core_module_state_str(core_module_state_t s);

#ifdef PLX_UNIT_TESTS
bool module_check_info(const plx_module_info_t *info, const char *file,
                       const char *conf_name);
bool module_sort(plx_module_t **list, size_t n, plx_module_t **out);
#endif

#endif
