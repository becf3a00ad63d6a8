/*
 * loader.c - opening, checking, ordering and running modules
 *
 * Every refusal is one error line naming the file and the reason, and the
 * caller exits non-zero: a server that starts without a module the operator
 * asked for is worse than one that does not start. The checks run in the
 * order that gives the most useful message: the file, the symbol, the magic
 * ("is this ours at all"), the ABI major, the ABI minor, the descriptor
 * size, then the name; dependencies are checked once every module is open.
 */
#include "config.h"
#include "loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_MODULES 128

static struct plx_module core_self = {
    .name = "core", .file = "plexusd", .conf_file = NULL,
    .state = CORE_MOD_STARTED,
};

static plx_module_t *mods[MAX_MODULES];   /* in dependency order once sorted */
static size_t nmods;

plx_module_t *core_module_self(void)
{
    return &core_self;
}

size_t core_module_count(void)
{
    return nmods;
}

plx_module_t *core_module_at(size_t i)
{
    return i < nmods ? mods[i] : NULL;
}

plx_module_t *core_module_find(const char *name)
{
    for (size_t i = 0; i < nmods; i++)
        if (strcmp(mods[i]->name, name) == 0)
            return mods[i];
    return NULL;
}

const char *core_module_state_str(core_module_state_t s)
{
    switch (s) {
    case CORE_MOD_LOADED:      return "loaded";
    case CORE_MOD_INITIALISED: return "initialised";
    case CORE_MOD_STARTED:     return "started";
    case CORE_MOD_STOPPED:     return "stopped";
    default:                   return "failed";
    }
}

static void module_free(plx_module_t *m)
{
    if (!m)
        return;
    if (m->dl)
        dlclose(m->dl);
    free(m->name);
    free(m->file);
    free(m->conf_file);
    free(m);
}

#define REFUSE(file, ...)                                                   \
    do {                                                                    \
        char why_[512];                                                     \
        snprintf(why_, sizeof why_, __VA_ARGS__);                           \
        core_log(PLX_LOG_ERROR, "loader", NULL, "refusing module \"%s\": %s", \
                 (file), why_);                                             \
    } while (0)

/* The descriptor must be large enough to hold every field this core reads. */
#define INFO_MIN_SIZE (offsetof(plx_module_info_t, stop) + sizeof(void (*)(void)))

/* The oldest core minor the module runs on: abi_minor_required (1.4) when
 * its descriptor has the field and sets it, else the minor it was built
 * for (a requirement above that is odd, but a requirement all the same). */
static unsigned module_minor_required(const plx_module_info_t *info)
{
    size_t end = offsetof(plx_module_info_t, abi_minor_required)
                 + sizeof info->abi_minor_required;

    if (info->size < end || info->abi_minor_required == 0)
        return info->abi_minor;
    return info->abi_minor_required;
}

PLX_STATIC bool module_check_info(const plx_module_info_t *info,
                                  const char *file, const char *conf_name)
{
    if (info->magic != PLX_MODULE_MAGIC) {
        REFUSE(file, "bad magic 0x%08x, expected 0x%08x: not built with "
               "<plexus/module.h>", info->magic, PLX_MODULE_MAGIC);
        return false;
    }
    if (info->abi_major != PLX_ABI_MAJOR) {
        REFUSE(file, "built for ABI %u.x, core provides %d.%d",
               info->abi_major, PLX_ABI_MAJOR, PLX_ABI_MINOR);
        return false;
    }
    if (info->size < INFO_MIN_SIZE) {
        REFUSE(file, "descriptor size %u, expected at least %zu",
               info->size, (size_t)INFO_MIN_SIZE);
        return false;
    }
    if (module_minor_required(info) > PLX_ABI_MINOR) {
        if (module_minor_required(info) == info->abi_minor)
            REFUSE(file, "built for ABI %u.%u, newer than the core's %d.%d",
                   info->abi_major, info->abi_minor, PLX_ABI_MAJOR, PLX_ABI_MINOR);
        else
            REFUSE(file, "built for ABI %u.%u and requires %u.%u, newer than "
                   "the core's %d.%d", info->abi_major, info->abi_minor,
                   info->abi_major, module_minor_required(info), PLX_ABI_MAJOR,
                   PLX_ABI_MINOR);
        return false;
    }
    if (!info->name || strcmp(info->name, conf_name) != 0) {
        REFUSE(file, "declares name \"%s\" but its config file is \"%s.conf\"",
               info->name ? info->name : "(null)", conf_name);
        return false;
    }
    if (!info->api_slot || !info->version || !info->init) {
        REFUSE(file, "descriptor lacks %s", !info->api_slot ? "api_slot"
               : !info->version ? "version" : "init");
        return false;
    }
    return true;
}

static plx_module_t *module_open(const core_config_module_t *cm,
                                 const char *module_dir)
{
    char path[4096];
    struct stat st;
    plx_module_info_fn info_fn;
    plx_module_t *m;

    if (cm->path)
        snprintf(path, sizeof path, "%s", cm->path);
    else
        snprintf(path, sizeof path, "%s/%s.so", module_dir, cm->name);
    if (stat(path, &st) != 0) {
        REFUSE(path, "%s (configured by \"%s\")", strerror(errno), cm->file);
        return NULL;
    }
    m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->name = strdup(cm->name);
    m->file = strdup(path);
    m->conf_file = strdup(cm->file);
    m->dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!m->dl) {
        REFUSE(path, "cannot be opened: %s", dlerror());
        module_free(m);
        return NULL;
    }
    *(void **)&info_fn = dlsym(m->dl, PLX_MODULE_SYMBOL);
    if (!info_fn) {
        REFUSE(path, "no \"%s\" symbol: not a Plexus module (declare it with "
               "PLX_MODULE)", PLX_MODULE_SYMBOL);
        module_free(m);
        return NULL;
    }
    m->info = info_fn();
    if (!m->info) {
        REFUSE(path, "%s() returned NULL", PLX_MODULE_SYMBOL);
        module_free(m);
        return NULL;
    }
    if (!module_check_info(m->info, path, cm->name)) {
        module_free(m);
        return NULL;
    }
    m->state = CORE_MOD_LOADED;
    return m;
}

static plx_module_t *find_in(plx_module_t **list, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] && strcmp(list[i]->name, name) == 0)
            return list[i];
    return NULL;
}

static bool check_requires(plx_module_t **list, size_t n)
{
    bool ok = true;

    for (size_t i = 0; i < n; i++) {
        const char *const *req = list[i]->info->requires;
        for (; req && *req; req++) {
            if (!find_in(list, n, *req)) {
                REFUSE(list[i]->file, "requires module \"%s\", which is not "
                       "loaded (enable it in plugins.d/%s.conf)", *req, *req);
                ok = false;
            }
        }
    }
    return ok;
}

/* Kahn's algorithm, always taking the first ready module in config order,
 * so the result is stable. Whatever is left at the end sits on a cycle. */
PLX_STATIC bool module_sort(plx_module_t **list, size_t n, plx_module_t **out)
{
    bool placed[MAX_MODULES] = { false };
    size_t done = 0;

    while (done < n) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            if (placed[i])
                continue;
            bool ready = true;
            for (const char *const *req = list[i]->info->requires;
                 req && *req && ready; req++) {
                for (size_t j = 0; j < n; j++)
                    if (!placed[j] && strcmp(list[j]->name, *req) == 0)
                        ready = false;
            }
            if (ready)
                pick = i;
        }
        if (pick == n)
            break;
        placed[pick] = true;
        list[pick]->order = done;
        out[done++] = list[pick];
    }
    if (done == n)
        return true;

    char names[1024] = "";
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        if (placed[i])
            continue;
        int w = snprintf(names + len, sizeof names - len, "%s\"%s\"",
                         len ? ", " : "", list[i]->name);
        if (w < 0 || (size_t)w >= sizeof names - len)
            break;
        len += (size_t)w;
    }
    core_log(PLX_LOG_ERROR, "loader", NULL,
             "refusing modules: dependency cycle among %s", names);
    return false;
}

bool core_modules_load(core_config_t *cfg, const char *module_dir)
{
    plx_module_t *opened[MAX_MODULES];
    size_t n = 0;
    bool ok = true;

    for (size_t i = 0; i < core_config_module_count(cfg); i++) {
        const core_config_module_t *cm = core_config_module_at(cfg, i);
        if (!cm->load)
            continue;
        if (n == MAX_MODULES) {
            REFUSE(cm->file, "more than %d modules enabled", MAX_MODULES);
            ok = false;
            break;
        }
        plx_module_t *m = module_open(cm, module_dir);
        if (!m) {
            ok = false;
            continue;   /* report every bad module, not just the first */
        }
        opened[n++] = m;
    }
    if (ok)
        ok = check_requires(opened, n);
    if (ok)
        ok = module_sort(opened, n, mods);
    if (!ok) {
        for (size_t i = 0; i < n; i++)
            module_free(opened[i]);
        nmods = 0;
        return false;
    }
    nmods = n;
    for (size_t i = 0; i < nmods; i++)
        core_log(PLX_LOG_DEBUG, "loader", NULL, "module \"%s\" %s (ABI %u.%u) "
                 "from \"%s\"", mods[i]->name, mods[i]->info->version,
                 mods[i]->info->abi_major, mods[i]->info->abi_minor,
                 mods[i]->file);
    return true;
}

bool core_modules_init(void)
{
    for (size_t i = 0; i < nmods; i++) {
        plx_module_t *m = mods[i];
        plx_status_t st;

        *m->info->api_slot = core_api();
        st = m->info->init(m);
        if (st != PLX_OK) {
            m->state = CORE_MOD_FAILED;
            core_log(PLX_LOG_ERROR, "loader", NULL,
                     "module \"%s\" (%s) failed to initialise: %s", m->name,
                     m->file, core_status_str(st));
            return false;
        }
        m->state = CORE_MOD_INITIALISED;
    }
    return true;
}

bool core_modules_start(void)
{
    for (size_t i = 0; i < nmods; i++) {
        plx_module_t *m = mods[i];
        plx_status_t st = m->info->start ? m->info->start(m) : PLX_OK;

        if (st != PLX_OK) {
            m->state = CORE_MOD_FAILED;
            core_log(PLX_LOG_ERROR, "loader", NULL,
                     "module \"%s\" (%s) failed to start: %s", m->name,
                     m->file, core_status_str(st));
            return false;
        }
        m->state = CORE_MOD_STARTED;
    }
    return true;
}

void core_modules_stop(void)
{
    for (size_t i = nmods; i-- > 0;) {
        plx_module_t *m = mods[i];
        /* every module whose init ran is stopped, even if its init or start
         * failed: its stop function is the one place that lets go */
        if (m->state == CORE_MOD_LOADED || m->state == CORE_MOD_STOPPED)
            continue;
        if (m->info->stop)
            m->info->stop(m);
        m->state = CORE_MOD_STOPPED;
    }
}

void core_modules_unload(void)
{
    for (size_t i = nmods; i-- > 0;)
        module_free(mods[i]);
    nmods = 0;
}
