/*
 * conf.h - plexus.conf and the plugins.d files
 *
 * Files are INI (libinih). Every key may be overridden by the environment
 * as PLEXUS_<SECTION>_<KEY> (upper case, '.' and '-' as '_'); a key named
 * <key>_file names a file whose trimmed content is the value of <key>, so
 * secrets never sit in a committed file. The core's own sections and keys
 * are declared in a table in config.c with their type and default, which
 * is how --check-config knows a typo from a setting.
 */
#ifndef PLEXUS_CONF_H
#define PLEXUS_CONF_H

#include "core.h"

typedef struct core_config core_config_t;

/* one plugins.d file */
typedef struct core_config_module {
    char *name;      /* the file's base name without .conf */
    char *file;      /* path of the .conf file */
    bool  load;      /* [module] load = yes */
    char *path;      /* [module] path = ..., else NULL: <module_dir>/<name>.so */
    char *data_dir;  /* [module] data_dir = ..., else NULL: <data_dir>/<name> */
} core_config_module_t;

/* Load path and the plugins.d folder ([server] plugins_dir, relative to the
 * folder of path; default "plugins.d"). Every problem found is logged as
 * `file:line: message` and counted in *errors; the result is NULL only if
 * the main file could not be read at all. */
core_config_t *core_config_load(const char *path, int *errors);
void core_config_free(core_config_t *c);

/* Values after environment and _file overrides; borrowed for the life of c.
 * NULL when unset and without a default (an empty default counts as none).
 * With c NULL, the declared default. Relative paths in [server] are
 * already resolved against the folder of the file that set them. */
const char *core_config_get(core_config_t *c, const char *section,
                            const char *key);
/* typed getters for the core's declared keys: the default comes from the
 * table; a malformed value was already reported by load */
long core_config_int(core_config_t *c, const char *section, const char *key);
bool core_config_bool(core_config_t *c, const char *section, const char *key);
/* durations accept 500ms, 30s, 5m, 1h, or plain seconds; returns ms */
long core_config_ms(core_config_t *c, const char *section, const char *key);

size_t core_config_module_count(const core_config_t *c);
const core_config_module_t *core_config_module_at(const core_config_t *c,
                                                  size_t i);
/* keys of a module's own section that it never read: warn about them */
void core_config_warn_unread(core_config_t *c, const char *module);

/* Keys of a core section that the core does not declare itself (the rate
 * classes in [ratelimit], named by modules), from the files and from
 * PLEXUS_<SECTION>_<KEY> (key in lower case): fn for each with its value
 * and where it was set (file NULL and line 0: the environment). */
typedef void (*core_config_key_fn)(const char *key, const char *value,
                                   const char *file, int line, void *arg);
void core_config_undeclared(core_config_t *c, const char *section,
                            core_config_key_fn fn, void *arg);

/* the process-wide configuration, set once at startup */
extern core_config_t *core_cfg;

#endif
