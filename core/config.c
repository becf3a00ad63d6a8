/*
 * config.c - plexus.conf, the plugins.d files and the environment
 *
 * libinih does the INI dispatching; this file feeds it through a reader of
 * its own. Debian's libinih is built without line numbers in the handler,
 * with a fixed 200-byte line buffer (longer lines are silently split in two)
 * and with Python-style continuation lines. So the reader counts lines,
 * checks each line's shape itself, and hands inih a normalised line:
 * "[section]", "key=value" or an empty line. Values too long for inih's
 * buffer travel beside it (see LONG_MARK). The design is in
 * doc/internals/config.md.
 *
 * Everything here runs during start-up on the main thread; a mutex still
 * guards the lazily filled value cache so that a late reader on a worker
 * thread cannot corrupt it.
 */
#include "config.h"
#include "conf.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CONF_LINE_MAX    8192          /* longest line accepted, in bytes */
#define CONF_NAME_MAX    48            /* inih cuts longer names */
#define CONF_SECRET_MAX  (64 * 1024)   /* a file named by a *_file key */
#define CONF_ENV_MAX     256
#define CONF_MODULES_MAX 256
#define CONF_MSG_MAX     1024
#define CONF_QUOTE_MAX   60            /* bytes of a bad value an error quotes */

/* Stands in for a value too long for inih's line buffer; control
 * characters are refused in values, so it cannot be a real one. */
#define LONG_MARK "\x1f"

typedef enum conf_type {
    CT_STRING = 0,
    CT_INT,
    CT_BOOL,
    CT_DURATION,   /* milliseconds */
    CT_SIZE        /* bytes */
} conf_type_t;

/* a relative value is relative to the folder of the file that sets it */
#define CF_PATH 1u

typedef struct conf_decl {
    const char *section;
    const char *key;
    conf_type_t type;
    const char *def;       /* "" means no default: core_config_get gives NULL */
    long        min, max;  /* in ms or bytes; checked when min < max */
    const char *choices;   /* strings only: "a|b|c" */
    unsigned    flags;
} conf_decl_t;

#define SEC_MS(n) ((n) * 1000L)
#define MIN_MS(n) ((n) * 60000L)
#define HOUR_MS(n) ((n) * 3600000L)

/* The core's settings. Keep each section's keys together: error lines list
 * the sections in this order. */
static const conf_decl_t decls[] = {
    { "server", "listen", CT_STRING, "127.0.0.1:8080", 0, 0, NULL, 0 },
    { "server", "threads", CT_INT, "1100", 1, 20000, NULL, 0 },
    { "server", "request_timeout", CT_DURATION, "10s", 100, HOUR_MS(1), NULL, 0 },
    { "server", "keep_alive_timeout", CT_DURATION, "5s", 0, HOUR_MS(1), NULL, 0 },
    { "server", "shutdown_grace", CT_DURATION, "10s", 0, HOUR_MS(1), NULL, 0 },
    { "server", "max_body", CT_SIZE, "1048576", 1, 1L << 30, NULL, 0 },
    { "server", "max_json_depth", CT_INT, "32", 1, 1000, NULL, 0 },
    { "server", "max_json_elements", CT_INT, "20000", 1, 10000000, NULL, 0 },
    { "server", "cors_origins", CT_STRING, "", 0, 0, NULL, 0 },
    { "server", "sse_heartbeat", CT_DURATION, "15s", SEC_MS(1), HOUR_MS(1), NULL, 0 },
    { "server", "access_log", CT_BOOL, "yes", 0, 0, NULL, 0 },
    { "server", "dev_mode", CT_BOOL, "no", 0, 0, NULL, 0 },
    { "server", "public_url", CT_STRING, "", 0, 0, NULL, 0 },
    { "server", "tls_certificate", CT_STRING, "", 0, 0, NULL, CF_PATH },
    { "server", "module_dir", CT_STRING, PLX_MODULE_DIR, 0, 0, NULL, CF_PATH },
    { "server", "plugins_dir", CT_STRING, "plugins.d", 0, 0, NULL, CF_PATH },
    { "server", "data_dir", CT_STRING, PLX_DATA_DIR, 0, 0, NULL, CF_PATH },
    { "log", "level", CT_STRING, "info", 0, 0, "debug|info|warn|error", 0 },
    { "database", "url", CT_STRING, "postgresql:///plexus", 0, 0, NULL, 0 },
    { "database", "pool_size", CT_INT, "4", 1, 1000, NULL, 0 },
    { "database", "acquire_timeout", CT_DURATION, "5s", 1, HOUR_MS(1), NULL, 0 },
    { "database", "connect_timeout", CT_DURATION, "5s", SEC_MS(1), HOUR_MS(1), NULL, 0 },
    { "database", "statement_timeout", CT_DURATION, "30s", 0, HOUR_MS(24), NULL, 0 },
    { "database", "migrate_on_start", CT_BOOL, "yes", 0, 0, NULL, 0 },
    { "jobs", "workers", CT_INT, "2", 0, 256, NULL, 0 },
    { "jobs", "poll_interval", CT_DURATION, "1s", 10, HOUR_MS(1), NULL, 0 },
    { "jobs", "max_attempts", CT_INT, "5", 1, 1000, NULL, 0 },
    { "jobs", "backoff_base", CT_DURATION, "2s", 1, HOUR_MS(24), NULL, 0 },
    { "jobs", "backoff_max", CT_DURATION, "1h", 1, HOUR_MS(24 * 7), NULL, 0 },
    { "jobs", "lease", CT_DURATION, "5m", SEC_MS(1), HOUR_MS(24), NULL, 0 },
    { "auth", "jwt_alg", CT_STRING, "HS256", 0, 0, "HS256|ES256", 0 },
    { "auth", "jwt_secret", CT_STRING, "", 0, 0, NULL, 0 },
    { "auth", "jwt_private_key_file", CT_STRING, "", 0, 0, NULL, CF_PATH },
    { "auth", "jwt_public_key_file", CT_STRING, "", 0, 0, NULL, CF_PATH },
    { "auth", "issuer", CT_STRING, "plexus", 0, 0, NULL, 0 },
    { "auth", "audience", CT_STRING, "plexus", 0, 0, NULL, 0 },
    { "auth", "access_ttl", CT_DURATION, "15m", SEC_MS(10), HOUR_MS(24), NULL, 0 },
    { "auth", "refresh_ttl", CT_DURATION, "30d", MIN_MS(1), HOUR_MS(24 * 365), NULL, 0 },
    { "auth", "mfa_key", CT_STRING, "", 0, 0, NULL, 0 },
    { "auth", "mfa_key_id", CT_STRING, "k1", 0, 0, NULL, 0 },
    { "auth", "mfa_old_keys", CT_STRING, "", 0, 0, NULL, 0 },
    { "auth", "password_min_length", CT_INT, "12", 8, 128, NULL, 0 },
    { "auth", "login_max_failures", CT_INT, "5", 1, 1000, NULL, 0 },
    { "auth", "login_ip_max_failures", CT_INT, "20", 1, 100000, NULL, 0 },
    { "auth", "login_lockout", CT_DURATION, "15m", SEC_MS(1), HOUR_MS(24), NULL, 0 },
    { "auth", "email_token_ttl", CT_DURATION, "24h", MIN_MS(1), HOUR_MS(24 * 30), NULL, 0 },
    { "auth", "reset_token_ttl", CT_DURATION, "1h", MIN_MS(1), HOUR_MS(24), NULL, 0 },
    { "auth", "require_verified_email", CT_BOOL, "no", 0, 0, NULL, 0 },
    { "smtp", "url", CT_STRING, "smtp://127.0.0.1:25", 0, 0, NULL, 0 },
    { "smtp", "from", CT_STRING, "plexus@localhost", 0, 0, NULL, 0 },
    { "smtp", "username", CT_STRING, "", 0, 0, NULL, 0 },
    { "smtp", "password", CT_STRING, "", 0, 0, NULL, 0 },
    { "smtp", "tls", CT_STRING, "try", 0, 0, "no|try|required", 0 },
    { "smtp", "timeout", CT_DURATION, "10s", SEC_MS(1), MIN_MS(10), NULL, 0 },
    { "http_client", "allow", CT_STRING, "", 0, 0, NULL, 0 },
    { "ratelimit", "enabled", CT_BOOL, "yes", 0, 0, NULL, 0 },
    { "ratelimit", "default", CT_STRING, "100/60s", 0, 0, NULL, 0 },
    { "ratelimit", "auth", CT_STRING, "10/60s", 0, 0, NULL, 0 },
    { "ratelimit", "max_keys", CT_INT, "100000", 100, 10000000, NULL, 0 },
};

/* one key = value from a file */
typedef struct conf_entry {
    char       *section;
    char       *key;
    char       *value;
    const char *file;   /* borrowed from core_config.files */
    int         line;
    bool        read;   /* asked for through core_config_get */
} conf_entry_t;

/* a section of a plugins.d file; owner borrowed from core_config.names */
typedef struct conf_section {
    char       *name;
    const char *owner;
    const char *file;
    int         line;
} conf_section_t;

/* a resolved value; nodes are never moved or freed before the config */
typedef struct conf_value {
    struct conf_value *next;
    char *section;
    char *key;
    char *value;        /* NULL: unset */
} conf_value_t;

/* where a value came from, for error lines */
typedef struct conf_origin {
    const char *file;   /* NULL: the environment */
    int         line;
    char        env[CONF_ENV_MAX];
} conf_origin_t;

struct core_config {
    char            *main_dir;
    char           **files;     /* every file read; entries point into it */
    size_t           nfiles;
    char           **names;     /* module names from plugins.d, sorted */
    size_t           nnames;
    conf_entry_t    *entries;
    size_t           nentries;
    conf_section_t  *sections;
    size_t           nsections;
    core_config_module_t *mods;
    size_t           nmods;
    conf_value_t    *values;
    pthread_mutex_t  lock;
    int              errors;
};

/* state of one file while inih walks it */
typedef struct conf_parse {
    core_config_t *c;
    FILE       *fp;
    const char *file;
    char       *dir;
    const char *module;     /* NULL for the main file */
    int         line;
    bool        skip;       /* current section was refused: ignore its keys */
    bool        in_meta;    /* current section is [module] */
    bool        seen_meta;
    bool        seen_load;
    bool        seen_path;
    bool        seen_data_dir;
    bool        load;
    char       *path;
    char       *data_dir;
    char       *long_value; /* the value behind LONG_MARK on this line */
} conf_parse_t;

core_config_t *core_cfg;

extern char **environ;

/* ---- small helpers ------------------------------------------------------- */

static void conf_oom(void)
{
    core_log(PLX_LOG_ERROR, "config", NULL, "out of memory");
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        conf_oom();
    return p;
}

static void *xrealloc_array(void *p, size_t n, size_t size)
{
    void *q = reallocarray(p, n ? n : 1, size);
    if (!q)
        conf_oom();
    return q;
}

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        conf_oom();
    return p;
}

static char *xjoin(const char *dir, const char *name)
{
    size_t len = strlen(dir) + 1 + strlen(name) + 1;
    char *p = xcalloc(1, len);
    snprintf(p, len, "%s/%s", dir, name);
    return p;
}

/* relative paths are relative to dir; NULL dir leaves them alone */
static char *resolve_path(const char *dir, const char *p)
{
    if (!dir || p[0] == '/' || p[0] == '\0')
        return xstrdup(p);
    return xjoin(dir, p);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *d;

    if (!slash)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    d = xcalloc(1, (size_t)(slash - path) + 1);
    memcpy(d, path, (size_t)(slash - path));
    return d;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

static char *rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

static char *ltrim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    return s;
}

/* PLEXUS_<SECTION>_<KEY>, upper case, '.' and '-' as '_' */
static bool env_name(char *out, size_t n, const char *section, const char *key)
{
    int len = snprintf(out, n, "PLEXUS_%s_%s", section, key);

    if (len < 0 || (size_t)len >= n)
        return false;
    for (char *p = out; *p; p++) {
        if (*p == '.' || *p == '-')
            *p = '_';
        else
            *p = (char)toupper((unsigned char)*p);
    }
    return true;
}

/* section, key and module names: a-z, 0-9, '_', '-', '.' */
static bool name_valid(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max)
        return false;
    for (; *s; s++) {
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s)
            && *s != '_' && *s != '-' && *s != '.')
            return false;
    }
    return true;
}

static bool module_name_valid(const char *s)
{
    if (!islower((unsigned char)s[0]) || strlen(s) > 63)
        return false;
    for (; *s; s++) {
        if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s)
            && *s != '_')
            return false;
    }
    return true;
}

/* ---- errors -------------------------------------------------------------- */

static PLX_PRINTF(5, 0) void conf_vreport(core_config_t *c,
    plx_log_level_t level, const char *file, int line, const char *fmt,
    va_list ap)
{
    char msg[CONF_MSG_MAX];

    vsnprintf(msg, sizeof msg, fmt, ap);
    if (level == PLX_LOG_ERROR && c)
        c->errors++;
    if (line > 0)
        core_log(level, "config", NULL, "%s:%d: %s", file, line, msg);
    else
        core_log(level, "config", NULL, "%s: %s", file, msg);
}

static PLX_PRINTF(4, 5) void conf_error(core_config_t *c, const char *file,
                                        int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conf_vreport(c, PLX_LOG_ERROR, file, line, fmt, ap);
    va_end(ap);
}

static PLX_PRINTF(4, 5) void conf_warn(core_config_t *c, const char *file,
                                       int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conf_vreport(c, PLX_LOG_WARN, file, line, fmt, ap);
    va_end(ap);
}

static PLX_PRINTF(3, 4) void origin_error(core_config_t *c,
                                          const conf_origin_t *o,
                                          const char *fmt, ...)
{
    char where[CONF_ENV_MAX + 32];
    va_list ap;

    if (o->file)
        snprintf(where, sizeof where, "%s", o->file);
    else
        snprintf(where, sizeof where, "environment variable %s", o->env);
    va_start(ap, fmt);
    conf_vreport(c, PLX_LOG_ERROR, where, o->file ? o->line : 0, fmt, ap);
    va_end(ap);
}

/* ---- value syntax -------------------------------------------------------- */

static bool parse_long(const char *s, long *out)
{
    char *end;
    long v;

    if (!s || !*s || isspace((unsigned char)*s))
        return false;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* digits, then a unit from units[] (first match wins), none = the default */
typedef struct conf_unit {
    const char *suffix;
    long        factor;
} conf_unit_t;

static bool parse_scaled(const char *s, const conf_unit_t *units, size_t n,
                         long *out)
{
    char *end;
    unsigned long long v;

    if (!s || !isdigit((unsigned char)*s))
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || v > LONG_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(end, units[i].suffix) != 0)
            continue;
        if (v > (unsigned long long)(LONG_MAX / units[i].factor))
            return false;
        *out = (long)v * units[i].factor;
        return true;
    }
    return false;
}

static bool parse_duration(const char *s, long *ms)
{
    static const conf_unit_t units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
        { "h", 3600000 }, { "d", 86400000 },
    };
    return parse_scaled(s, units, CORE_ARRAY_LEN(units), ms);
}

static bool parse_size(const char *s, long *bytes)
{
    static const conf_unit_t units[] = {
        { "", 1 }, { "k", 1L << 10 }, { "K", 1L << 10 }, { "m", 1L << 20 },
        { "M", 1L << 20 }, { "g", 1L << 30 }, { "G", 1L << 30 },
    };
    return parse_scaled(s, units, CORE_ARRAY_LEN(units), bytes);
}

static bool parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = { "yes", "true", "on", "1" };
    static const char *const no[] = { "no", "false", "off", "0" };

    for (size_t i = 0; s && i < CORE_ARRAY_LEN(yes); i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* a number of ms or bytes written back the way a person would */
static void fmt_amount(char *out, size_t n, long v, conf_type_t type)
{
    if (type == CT_DURATION && v != 0 && v % HOUR_MS(1) == 0)
        snprintf(out, n, "%ldh", v / HOUR_MS(1));
    else if (type == CT_DURATION && v != 0 && v % MIN_MS(1) == 0)
        snprintf(out, n, "%ldm", v / MIN_MS(1));
    else if (type == CT_DURATION && v % 1000 == 0)
        snprintf(out, n, "%lds", v / 1000);
    else if (type == CT_DURATION)
        snprintf(out, n, "%ldms", v);
    else if (type == CT_SIZE && v != 0 && v % (1L << 20) == 0)
        snprintf(out, n, "%ldm", v >> 20);
    else if (type == CT_SIZE && v != 0 && v % (1L << 10) == 0)
        snprintf(out, n, "%ldk", v >> 10);
    else
        snprintf(out, n, "%ld", v);
}

static bool choice_valid(const char *choices, const char *v)
{
    size_t n = strlen(v);

    for (const char *p = choices; p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0)
            return true;
        p = bar ? bar + 1 : NULL;
    }
    return false;
}

static const char *type_expectation(conf_type_t type)
{
    switch (type) {
    case CT_INT:      return "an integer";
    case CT_BOOL:     return "yes or no";
    case CT_DURATION: return "a duration like 500ms, 30s, 5m or 1h";
    case CT_SIZE:     return "a size like 1048576, 512k or 1m";
    default:          return "a string";
    }
}

/* Checks v against d; on failure writes "expected X, found Y" to err. */
static bool value_check(const conf_decl_t *d, const char *v, char *err,
                        size_t errlen)
{
    long n = 0;
    bool b, ok = true;
    char lo[32], hi[32];

    switch (d->type) {
    case CT_INT:      ok = parse_long(v, &n); break;
    case CT_BOOL:     ok = parse_bool(v, &b); break;
    case CT_DURATION: ok = parse_duration(v, &n); break;
    case CT_SIZE:     ok = parse_size(v, &n); break;
    default:
        if (d->choices && !choice_valid(d->choices, v)) {
            snprintf(err, errlen,
                     "expected one of %s for \"%s.%s\", found \"%.*s\"",
                     d->choices, d->section, d->key, CONF_QUOTE_MAX, v);
            return false;
        }
        return true;
    }
    if (!ok) {
        snprintf(err, errlen, "expected %s for \"%s.%s\", found \"%.*s\"",
                 type_expectation(d->type), d->section, d->key,
                 CONF_QUOTE_MAX, v);
        return false;
    }
    if (d->min < d->max && (n < d->min || n > d->max)) {
        fmt_amount(lo, sizeof lo, d->min, d->type);
        fmt_amount(hi, sizeof hi, d->max, d->type);
        snprintf(err, errlen,
                 "expected \"%s.%s\" between %s and %s, found \"%.*s\"",
                 d->section, d->key, lo, hi, CONF_QUOTE_MAX, v);
        return false;
    }
    return true;
}

/* ---- tables -------------------------------------------------------------- */

/* Core sections whose other keys are named at run time: [ratelimit] holds
 * the classes modules register (plx_rate_class_add). Such a key must be a
 * module-style name; its owner checks the value when it registers it, and
 * ratelimit.c checks the shape of every one at startup. */
static const char *const open_sections[] = { "ratelimit" };

static bool section_is_open(const char *section)
{
    for (size_t i = 0; i < CORE_ARRAY_LEN(open_sections); i++) {
        if (strcmp(open_sections[i], section) == 0)
            return true;
    }
    return false;
}

static const conf_decl_t *decl_find(const char *section, const char *key)
{
    for (size_t i = 0; i < CORE_ARRAY_LEN(decls); i++) {
        if (strcmp(decls[i].section, section) == 0
            && strcmp(decls[i].key, key) == 0)
            return &decls[i];
    }
    return NULL;
}

static bool core_section(const char *section)
{
    for (size_t i = 0; i < CORE_ARRAY_LEN(decls); i++) {
        if (strcmp(decls[i].section, section) == 0)
            return true;
    }
    return false;
}

/* a declared key, or <declared key>_file */
static const conf_decl_t *decl_find_or_file(const char *section,
                                            const char *key)
{
    char base[CONF_NAME_MAX + 1];
    size_t n = strlen(key);

    if (decl_find(section, key))
        return decl_find(section, key);
    if (!ends_with(key, "_file") || n - 5 >= sizeof base)
        return NULL;
    memcpy(base, key, n - 5);
    base[n - 5] = '\0';
    return decl_find(section, base);
}

static conf_entry_t *entry_find(core_config_t *c, const char *section,
                                const char *key)
{
    for (size_t i = 0; i < c->nentries; i++) {
        if (strcmp(c->entries[i].section, section) == 0
            && strcmp(c->entries[i].key, key) == 0)
            return &c->entries[i];
    }
    return NULL;
}

static conf_section_t *section_find(core_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nsections; i++) {
        if (strcmp(c->sections[i].name, name) == 0)
            return &c->sections[i];
    }
    return NULL;
}

static bool is_module_name(const core_config_t *c, const char *name)
{
    for (size_t i = 0; i < c->nnames; i++) {
        if (strcmp(c->names[i], name) == 0)
            return true;
    }
    return false;
}

static const char *file_add(core_config_t *c, const char *path)
{
    c->files = xrealloc_array(c->files, c->nfiles + 1, sizeof *c->files);
    c->files[c->nfiles] = xstrdup(path);
    return c->files[c->nfiles++];
}

/* false (reported) when the key is already set */
static bool entry_add(conf_parse_t *p, const char *section, const char *key,
                      char *value_take)
{
    core_config_t *c = p->c;
    conf_entry_t *old = entry_find(c, section, key);

    if (old) {
        conf_error(c, p->file, p->line,
                   "duplicate key \"%s\" in section [%s], first set at %s:%d",
                   key, section, old->file, old->line);
        free(value_take);
        return false;
    }
    c->entries = xrealloc_array(c->entries, c->nentries + 1,
                                sizeof *c->entries);
    c->entries[c->nentries++] = (conf_entry_t){
        .section = xstrdup(section), .key = xstrdup(key), .value = value_take,
        .file = p->file, .line = p->line,
    };
    return true;
}

/* ---- the reader: one normalised line per call ---------------------------- */

/* A section header: checks its name and who may use it. */
static void section_open(conf_parse_t *p, const char *name);

static void lex_blank(char *out)
{
    out[0] = '\n';
    out[1] = '\0';
}

static void lex_section(conf_parse_t *p, char *s, char *out, int num)
{
    char *end = strchr(s, ']');
    char *rest, *name;

    p->skip = true;
    p->in_meta = false;
    lex_blank(out);
    if (!end) {
        conf_error(p->c, p->file, p->line,
                   "expected ']' after the section name, found \"%.*s\"",
                   CONF_QUOTE_MAX, s);
        return;
    }
    *end = '\0';
    rest = ltrim(end + 1);
    if (*rest && *rest != ';' && *rest != '#') {
        conf_error(p->c, p->file, p->line,
                   "expected the end of the line after [%s], found \"%.*s\"",
                   s + 1, CONF_QUOTE_MAX, rest);
        return;
    }
    name = rtrim(ltrim(s + 1));
    if (!name_valid(name, CONF_NAME_MAX)) {
        conf_error(p->c, p->file, p->line,
                   "expected a section name of a-z, 0-9, '_', '-' and '.' "
                   "(at most %d), found \"%.*s\"", CONF_NAME_MAX,
                   CONF_QUOTE_MAX, name);
        return;
    }
    snprintf(out, (size_t)num, "[%s]\n", name);
    section_open(p, name);
}

static bool value_has_control(const char *v)
{
    for (; *v; v++) {
        if ((unsigned char)*v < 0x20 && *v != '\t')
            return true;
        if (*v == 0x7f)
            return true;
    }
    return false;
}

/* inih's inline comment rule: ';' at the start or after whitespace */
static void strip_inline_comment(char *v)
{
    for (char *q = v; *q; q++) {
        if (*q == ';' && (q == v || isspace((unsigned char)q[-1]))) {
            *q = '\0';
            break;
        }
    }
}

/* "key=value\n"; the caller checked that it fits */
static void put_pair(char *out, const char *key, const char *value)
{
    size_t k = strlen(key), v = strlen(value);

    memcpy(out, key, k);
    out[k] = '=';
    memcpy(out + k + 1, value, v);
    memcpy(out + k + 1 + v, "\n", 2);
}

static void lex_pair(conf_parse_t *p, char *s, char *out, int num)
{
    char *delim = s + strcspn(s, "=:");
    char *key, *value;

    lex_blank(out);
    if (*delim == '\0') {
        conf_error(p->c, p->file, p->line,
                   "expected \"key = value\", found \"%.*s\"",
                   CONF_QUOTE_MAX, s);
        return;
    }
    *delim = '\0';
    key = rtrim(s);
    value = ltrim(delim + 1);
    strip_inline_comment(value);
    rtrim(value);
    if (!name_valid(key, CONF_NAME_MAX)) {
        conf_error(p->c, p->file, p->line,
                   "expected a key name of a-z, 0-9, '_', '-' and '.' "
                   "(at most %d), found \"%.*s\"", CONF_NAME_MAX,
                   CONF_QUOTE_MAX, key);
        return;
    }
    if (value_has_control(value)) {
        conf_error(p->c, p->file, p->line,
                   "value of \"%s\" contains a control character", key);
        return;
    }
    /* key, '=', value, '\n', '\0' and inih's own spare byte */
    if (strlen(key) + strlen(value) + 4 <= (size_t)num) {
        put_pair(out, key, value);
        return;
    }
    free(p->long_value);
    p->long_value = xstrdup(value);
    put_pair(out, key, LONG_MARK);
}

/* Reads one physical line into buf (CONF_LINE_MAX + 2 bytes). false at
 * the end of the file; *too_long when the line did not fit. */
static bool read_line(FILE *fp, char *buf, size_t size, bool *too_long)
{
    size_t len;
    int ch;

    *too_long = false;
    if (!fgets(buf, (int)size, fp))
        return false;
    len = strlen(buf);
    if (len > 0 && buf[len - 1] == '\n')
        return true;
    if (feof(fp))
        return true;
    *too_long = true;
    while ((ch = fgetc(fp)) != EOF && ch != '\n')
        ;
    return true;
}

static char *conf_reader(char *out, int num, void *stream)
{
    conf_parse_t *p = stream;
    char buf[CONF_LINE_MAX + 2];
    char *s = buf;
    bool too_long;

    if (num < CONF_NAME_MAX + 8)
        return NULL;
    if (!read_line(p->fp, buf, sizeof buf, &too_long))
        return NULL;
    p->line++;
    lex_blank(out);
    if (too_long) {
        conf_error(p->c, p->file, p->line,
                   "line too long: expected at most %d bytes", CONF_LINE_MAX);
        return out;
    }
    if (p->line == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    s = rtrim(ltrim(s));
    if (*s == '\0' || *s == ';' || *s == '#')
        return out;
    if (*s == '[')
        lex_section(p, s, out, num);
    else
        lex_pair(p, s, out, num);
    return out;
}

/* ---- sections ------------------------------------------------------------ */

/* "[server], [log], ..." from the table, for error lines */
static void core_section_list(char *out, size_t size)
{
    size_t len = 0;

    out[0] = '\0';
    for (size_t i = 0; i < CORE_ARRAY_LEN(decls) && len < size; i++) {
        int w;
        if (i > 0 && strcmp(decls[i - 1].section, decls[i].section) == 0)
            continue;
        w = snprintf(out + len, size - len, "%s[%s]", len ? ", " : "",
                     decls[i].section);
        len += w > 0 ? (size_t)w : 0;
    }
}

static void section_open_main(conf_parse_t *p, const char *name)
{
    char known[256];

    if (core_section(name)) {
        p->skip = false;
        return;
    }
    core_section_list(known, sizeof known);
    conf_error(p->c, p->file, p->line, "unknown section [%s], expected one of "
               "%s (a module's settings go in its plugins.d file)", name, known);
}

static void section_open_module(conf_parse_t *p, const char *name)
{
    core_config_t *c = p->c;
    conf_section_t *sec;

    if (strcmp(name, "module") == 0) {
        p->in_meta = true;
        p->seen_meta = true;
        p->skip = false;
        return;
    }
    if (core_section(name)) {
        conf_error(c, p->file, p->line,
                   "section [%s] belongs to the core, not to module \"%s\"",
                   name, p->module);
        return;
    }
    if (is_module_name(c, name) && strcmp(name, p->module) != 0) {
        conf_error(c, p->file, p->line, "section [%s] belongs to module \"%s\", "
                   "not to module \"%s\"", name, name, p->module);
        return;
    }
    sec = section_find(c, name);
    if (sec && strcmp(sec->owner, p->module) != 0) {
        conf_error(c, p->file, p->line, "section [%s] already belongs to "
                   "module \"%s\" (%s:%d)", name, sec->owner, sec->file,
                   sec->line);
        return;
    }
    p->skip = false;
    if (sec)
        return;
    c->sections = xrealloc_array(c->sections, c->nsections + 1,
                                 sizeof *c->sections);
    c->sections[c->nsections++] = (conf_section_t){
        .name = xstrdup(name), .owner = p->module, .file = p->file,
        .line = p->line,
    };
}

static void section_open(conf_parse_t *p, const char *name)
{
    if (p->module)
        section_open_module(p, name);
    else
        section_open_main(p, name);
}

/* ---- the inih handler ---------------------------------------------------- */

static void pair_main(conf_parse_t *p, const char *section, const char *key,
                      const char *value)
{
    const conf_decl_t *d = decl_find_or_file(section, key);
    char err[CONF_MSG_MAX];

    if (!d && section_is_open(section) && module_name_valid(key)) {
        entry_add(p, section, key, xstrdup(value));
        return;
    }
    if (!d) {
        conf_error(p->c, p->file, p->line, "unknown key \"%s\" in section [%s]",
                   key, section);
        return;
    }
    if (ends_with(key, "_file") && strcmp(d->key, key) != 0) {
        entry_add(p, section, key, resolve_path(p->dir, value));
        return;
    }
    if (!value_check(d, value, err, sizeof err)) {
        conf_error(p->c, p->file, p->line, "%s", err);
        return;
    }
    entry_add(p, section, key, (d->flags & CF_PATH)
                                   ? resolve_path(p->dir, value)
                                   : xstrdup(value));
}

static bool meta_once(conf_parse_t *p, bool *seen, const char *key)
{
    if (*seen) {
        conf_error(p->c, p->file, p->line,
                   "duplicate key \"%s\" in section [module]", key);
        return false;
    }
    *seen = true;
    return true;
}

static void pair_meta(conf_parse_t *p, const char *key, const char *value)
{
    if (strcmp(key, "load") == 0) {
        if (meta_once(p, &p->seen_load, key) && !parse_bool(value, &p->load))
            conf_error(p->c, p->file, p->line,
                       "expected yes or no for \"load\", found \"%.*s\"",
                       CONF_QUOTE_MAX, value);
    } else if (strcmp(key, "path") == 0) {
        if (meta_once(p, &p->seen_path, key))
            p->path = resolve_path(p->dir, value);
    } else if (strcmp(key, "data_dir") == 0) {
        if (meta_once(p, &p->seen_data_dir, key))
            p->data_dir = resolve_path(p->dir, value);
    } else {
        conf_error(p->c, p->file, p->line, "unknown key \"%s\" in section "
                   "[module], expected load, path or data_dir", key);
    }
}

/* a *_file key must name a readable file; say so now, not at first use */
static void check_secret_file(conf_parse_t *p, const char *path)
{
    char *content = core_read_file(path, CONF_SECRET_MAX, NULL);

    if (!content) {
        conf_error(p->c, p->file, p->line, "cannot read \"%s\": %s", path,
                   errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
        return;
    }
    explicit_bzero(content, strlen(content));
    free(content);
}

static void pair_module(conf_parse_t *p, const char *section, const char *key,
                        const char *value)
{
    char *v = ends_with(key, "_file") ? resolve_path(p->dir, value)
                                      : xstrdup(value);

    if (ends_with(key, "_file") && !entry_find(p->c, section, key))
        check_secret_file(p, v);
    entry_add(p, section, key, v);
}

static int conf_handler(void *user, const char *section, const char *key,
                        const char *value)
{
    conf_parse_t *p = user;

    if (p->long_value && strcmp(value, LONG_MARK) == 0)
        value = p->long_value;
    if (p->skip)
        return 1;
    if (section[0] == '\0') {
        conf_error(p->c, p->file, p->line,
                   "key \"%s\" comes before any [section]", key);
        return 1;
    }
    if (!p->module)
        pair_main(p, section, key, value);
    else if (p->in_meta)
        pair_meta(p, key, value);
    else
        pair_module(p, section, key, value);
    return 1;
}

/* Parses one file. false when it could not be opened (reported). */
static bool parse_file(conf_parse_t *p)
{
    int rc;

    p->fp = fopen(p->file, "re");
    if (!p->fp) {
        conf_error(p->c, p->file, 0, "cannot read: %s", strerror(errno));
        return false;
    }
    p->dir = dir_of(p->file);
    rc = ini_parse_stream(conf_reader, p, conf_handler, p);
    if (rc > 0)   /* NB: the reader hands inih only well-formed lines */
        conf_error(p->c, p->file, rc, "malformed line");
    else if (rc < 0)
        conf_error(p->c, p->file, 0, "cannot parse");
    fclose(p->fp);
    p->fp = NULL;
    free(p->long_value);
    p->long_value = NULL;
    return true;
}

/* ---- resolving values: environment, file, *_file, default ---------------- */

static char *read_secret(core_config_t *c, const conf_origin_t *o,
                         const char *path)
{
    size_t len = 0;
    char *content = core_read_file(path, CONF_SECRET_MAX, &len);
    char *s;

    if (!content) {
        origin_error(c, o, "cannot read \"%s\": %s", path,
                     errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
        return NULL;
    }
    if (strlen(content) != len) {
        origin_error(c, o, "\"%s\" contains a NUL byte", path);
        explicit_bzero(content, len);
        free(content);
        return NULL;
    }
    s = rtrim(ltrim(content));
    memmove(content, s, strlen(s) + 1);
    return content;
}

static void mark_read(core_config_t *c, const char *section, const char *key)
{
    conf_entry_t *e = entry_find(c, section, key);
    if (e)
        e->read = true;
}

/* The raw value of section.key: the environment, then the file, then the
 * file named by key_file (environment, then file). 1 with *out set (caller
 * frees), 0 when unset, -1 when a named file could not be read (reported). */
static int resolve_raw(core_config_t *c, const char *section, const char *key,
                       char **out, conf_origin_t *o)
{
    char file_key[CONF_NAME_MAX + 8];
    const char *env;
    conf_entry_t *e;

    memset(o, 0, sizeof *o);
    if (env_name(o->env, sizeof o->env, section, key)
        && (env = getenv(o->env))) {
        *out = xstrdup(env);
        return 1;
    }
    if ((e = entry_find(c, section, key))) {
        o->file = e->file;
        o->line = e->line;
        *out = xstrdup(e->value);
        return 1;
    }
    if (strlen(key) > CONF_NAME_MAX)
        return 0;
    snprintf(file_key, sizeof file_key, "%s_file", key);
    if (env_name(o->env, sizeof o->env, section, file_key)
        && (env = getenv(o->env)))
        return (*out = read_secret(c, o, env)) ? 1 : -1;
    if ((e = entry_find(c, section, file_key))) {
        o->file = e->file;
        o->line = e->line;
        return (*out = read_secret(c, o, e->value)) ? 1 : -1;
    }
    return 0;
}

static conf_value_t *value_find(core_config_t *c, const char *section,
                                const char *key)
{
    for (conf_value_t *v = c->values; v; v = v->next) {
        if (strcmp(v->section, section) == 0 && strcmp(v->key, key) == 0)
            return v;
    }
    return NULL;
}

static conf_value_t *value_add(core_config_t *c, const char *section,
                               const char *key, char *value_take)
{
    conf_value_t *v = xcalloc(1, sizeof *v);

    v->section = xstrdup(section);
    v->key = xstrdup(key);
    v->value = value_take;
    v->next = c->values;
    c->values = v;
    return v;
}

/* Resolves and checks every declared key once, so a bad environment
 * variable or secret file is reported at load, not at first use. */
static void resolve_core(core_config_t *c)
{
    for (size_t i = 0; i < CORE_ARRAY_LEN(decls); i++) {
        const conf_decl_t *d = &decls[i];
        conf_origin_t o;
        char err[CONF_MSG_MAX];
        char *v = NULL;

        if (resolve_raw(c, d->section, d->key, &v, &o) > 0
            && !value_check(d, v, err, sizeof err)) {
            origin_error(c, &o, "%s", err);
            free(v);
            v = NULL;
        }
        if (!v && (d->flags & CF_PATH) && d->def[0])
            v = resolve_path(c->main_dir, d->def);
        value_add(c, d->section, d->key, v);
    }
}

/* ---- plugins.d ----------------------------------------------------------- */

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void name_add(core_config_t *c, const char *dir, const char *file)
{
    size_t n = strlen(file) - 5;   /* without ".conf" */
    char *name;

    if (c->nnames == CONF_MODULES_MAX) {
        conf_error(c, dir, 0, "expected at most %d module files, found more",
                   CONF_MODULES_MAX);
        return;
    }
    name = xcalloc(1, n + 1);
    memcpy(name, file, n);
    c->names = xrealloc_array(c->names, c->nnames + 1, sizeof *c->names);
    c->names[c->nnames++] = name;
}

static bool regular_file(const char *dir, const char *name)
{
    char *path = xjoin(dir, name);
    struct stat st;
    bool ok = stat(path, &st) == 0 && S_ISREG(st.st_mode);

    free(path);
    return ok;
}

/* module names of dir's *.conf regular files, sorted by strcmp so the
 * order does not depend on the locale */
static void list_plugins(core_config_t *c, const char *dir, bool explicit)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d) {
        if (errno == ENOENT && !explicit)
            return;
        conf_error(c, dir, 0, "cannot read the plugins folder: %s",
                   strerror(errno));
        return;
    }
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !ends_with(de->d_name, ".conf")
            || strlen(de->d_name) == 5 || !regular_file(dir, de->d_name))
            continue;
        name_add(c, dir, de->d_name);
    }
    closedir(d);
    if (c->nnames > 1)
        qsort(c->names, c->nnames, sizeof *c->names, name_cmp);
}

static void module_add(conf_parse_t *p, const char *name)
{
    core_config_t *c = p->c;

    c->mods = xrealloc_array(c->mods, c->nmods + 1, sizeof *c->mods);
    c->mods[c->nmods++] = (core_config_module_t){
        .name = xstrdup(name), .file = xstrdup(p->file), .load = p->load,
        .path = p->path, .data_dir = p->data_dir,
    };
    p->path = p->data_dir = NULL;
}

/* the checks on a module file's name that need no parsing */
static bool module_file_name_ok(core_config_t *c, const char *file,
                                const char *name)
{
    if (!module_name_valid(name)) {
        conf_error(c, file, 0, "expected a module name of a-z, 0-9 and '_' "
                   "starting with a letter, found \"%s\"", name);
        return false;
    }
    if (core_section(name) || strcmp(name, "module") == 0) {
        conf_error(c, file, 0, "module name \"%s\" is reserved", name);
        return false;
    }
    return true;
}

static void load_module_file(core_config_t *c, const char *dir,
                             const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 7;
    char *path = xcalloc(1, len);
    conf_parse_t p = { .c = c, .module = name };

    snprintf(path, len, "%s/%s.conf", dir, name);
    p.file = file_add(c, path);
    free(path);
    if (!module_file_name_ok(c, p.file, name) || !parse_file(&p))
        goto out;
    if (!p.seen_meta)
        conf_error(c, p.file, 0, "expected a section [module] with "
                   "\"load = yes\" or \"load = no\", found none");
    else if (!p.seen_load)
        conf_error(c, p.file, 0, "expected \"load = yes\" or \"load = no\" "
                   "in section [module], found neither");
    else
        module_add(&p, name);
out:
    free(p.dir);
    free(p.path);
    free(p.data_dir);
}

static void load_plugins(core_config_t *c)
{
    conf_value_t *v = value_find(c, "server", "plugins_dir");
    bool explicit = entry_find(c, "server", "plugins_dir")
                    || getenv("PLEXUS_SERVER_PLUGINS_DIR");
    char *dir;

    if (!v || !v->value)
        return;
    dir = xstrdup(v->value);
    list_plugins(c, dir, explicit);
    for (size_t i = 0; i < c->nnames; i++)
        load_module_file(c, dir, c->names[i]);
    free(dir);
}

/* ---- public API ---------------------------------------------------------- */

core_config_t *core_config_load(const char *path, int *errors)
{
    core_config_t *c = xcalloc(1, sizeof *c);
    conf_parse_t p = { .c = c };

    pthread_mutex_init(&c->lock, NULL);
    p.file = file_add(c, path);
    c->main_dir = dir_of(path);
    if (!parse_file(&p)) {
        if (errors)
            *errors = c->errors;
        core_config_free(c);
        return NULL;
    }
    free(p.dir);
    resolve_core(c);
    load_plugins(c);
    if (errors)
        *errors = c->errors;
    return c;
}

/* values may be secrets: leave none behind in freed memory */
static void free_secret(char *s)
{
    if (s)
        explicit_bzero(s, strlen(s));
    free(s);
}

static void free_strings(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void core_config_free(core_config_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nentries; i++) {
        free(c->entries[i].section);
        free(c->entries[i].key);
        free_secret(c->entries[i].value);
    }
    for (size_t i = 0; i < c->nsections; i++)
        free(c->sections[i].name);
    for (size_t i = 0; i < c->nmods; i++) {
        free(c->mods[i].name);
        free(c->mods[i].file);
        free(c->mods[i].path);
        free(c->mods[i].data_dir);
    }
    for (conf_value_t *v = c->values, *next; v; v = next) {
        next = v->next;
        free(v->section);
        free(v->key);
        free_secret(v->value);
        free(v);
    }
    free(c->entries);
    free(c->sections);
    free(c->mods);
    free_strings(c->files, c->nfiles);
    free_strings(c->names, c->nnames);
    free(c->main_dir);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static const char *decl_default(const char *section, const char *key)
{
    const conf_decl_t *d = decl_find(section, key);
    return d && d->def[0] ? d->def : NULL;
}

const char *core_config_get(core_config_t *c, const char *section,
                            const char *key)
{
    conf_value_t *v;
    conf_origin_t o;
    char *raw = NULL;

    if (!section || !key)
        return NULL;
    if (!c)
        return decl_default(section, key);
    pthread_mutex_lock(&c->lock);
    mark_read(c, section, key);
    if (strlen(key) <= CONF_NAME_MAX) {
        char file_key[CONF_NAME_MAX + 8];
        snprintf(file_key, sizeof file_key, "%s_file", key);
        mark_read(c, section, file_key);
    }
    v = value_find(c, section, key);
    if (!v) {
        resolve_raw(c, section, key, &raw, &o);
        v = value_add(c, section, key, raw);
    }
    pthread_mutex_unlock(&c->lock);
    return v->value ? v->value : decl_default(section, key);
}

long core_config_int(core_config_t *c, const char *section, const char *key)
{
    const conf_decl_t *d = decl_find(section, key);
    const char *v = core_config_get(c, section, key);
    long n = 0;
    bool ok;

    if (!v)
        return 0;
    if (d && d->type == CT_SIZE)
        ok = parse_size(v, &n);
    else if (d && d->type == CT_DURATION)
        ok = parse_duration(v, &n);
    else
        ok = parse_long(v, &n);
    return ok ? n : 0;
}

bool core_config_bool(core_config_t *c, const char *section, const char *key)
{
    bool b = false;
    const char *v = core_config_get(c, section, key);

    return v && parse_bool(v, &b) && b;
}

long core_config_ms(core_config_t *c, const char *section, const char *key)
{
    long ms = 0;
    const char *v = core_config_get(c, section, key);

    return v && parse_duration(v, &ms) ? ms : 0;
}

size_t core_config_module_count(const core_config_t *c)
{
    return c ? c->nmods : 0;
}

const core_config_module_t *core_config_module_at(const core_config_t *c,
                                                  size_t i)
{
    return c && i < c->nmods ? &c->mods[i] : NULL;
}

static const char *section_owner(core_config_t *c, const char *section)
{
    conf_section_t *s = section_find(c, section);
    return s ? s->owner : NULL;
}

void core_config_undeclared(core_config_t *c, const char *section,
                            core_config_key_fn fn, void *arg)
{
    char prefix[CONF_ENV_MAX], key[CONF_NAME_MAX + 1];
    size_t plen;

    if (!c || !section || !fn || !env_name(prefix, sizeof prefix, section, ""))
        return;
    for (size_t i = 0; i < c->nentries; i++) {
        const conf_entry_t *e = &c->entries[i];
        if (strcmp(e->section, section) == 0 && !decl_find_or_file(section, e->key))
            fn(e->key, e->value, e->file, e->line, arg);
    }
    /* PLEXUS_<SECTION>_<KEY>: the key back in lower case; a key also set
     * in a file was reported above (the environment wins over it) */
    plen = strlen(prefix);
    for (char **ep = environ; ep && *ep; ep++) {
        const char *eq = strchr(*ep, '=');
        size_t n;

        if (!eq || strncmp(*ep, prefix, plen) != 0)
            continue;
        n = (size_t)(eq - *ep) - plen;
        if (n == 0 || n > CONF_NAME_MAX)
            continue;
        for (size_t k = 0; k < n; k++)
            key[k] = (char)tolower((unsigned char)(*ep)[plen + k]);
        key[n] = '\0';
        if (!decl_find_or_file(section, key) && !entry_find(c, section, key))
            fn(key, eq + 1, NULL, 0, arg);
    }
}

void core_config_warn_unread(core_config_t *c, const char *module)
{
    if (!c || !module)
        return;
    for (size_t i = 0; i < c->nentries; i++) {
        const conf_entry_t *e = &c->entries[i];
        const char *owner = section_owner(c, e->section);

        if (e->read || !owner || strcmp(owner, module) != 0)
            continue;
        conf_warn(c, e->file, e->line, "key \"%s\" in section [%s] is not "
                  "used by module \"%s\"", e->key, e->section, module);
    }
}
