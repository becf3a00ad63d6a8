/*
 * migrate.c - forward-only SQL migrations, one folder per owner
 *
 * Owners are the core (its folder set by core_migrations_set_core_dir) and
 * every module that called plx_migrations_add(). An owner's folder holds
 * NNNN_name.sql files, applied in version order. The core comes first, then
 * the modules in dependency order, so a module may rely on the tables of
 * the modules it requires.
 *
 * A run takes one PostgreSQL session-level advisory lock on a dedicated
 * connection, so concurrent instances starting together apply every file
 * exactly once: the second runner waits, then finds nothing pending. Each
 * file runs in its own transaction together with its row in
 * plexus.schema_migrations; a failing file leaves no trace.
 *
 * Files are checksummed (SHA-256 over the bytes). A recorded file whose
 * checksum changed means the schema no longer matches the code that was
 * reviewed: nothing is applied and startup stops. A recorded file missing
 * on disk is only a warning (a release may drop an old file). A pending
 * file older than an applied one is refused: applying it would run
 * migrations in an order nobody tested.
 *
 * Migration files are the one place where SQL is not parameterised: they
 * are trusted files holding several statements, sent with PQexec (the
 * simple query protocol). They must not contain COMMIT/ROLLBACK, nor
 * statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY).
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "loader.h"
#include "migrate.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/evp.h>

#ifndef PLX_DATA_DIR
#define PLX_DATA_DIR "/usr/share/plexus"
#endif

#define MIG_FILE_MAX     (16u * 1024 * 1024)  /* bytes per SQL file */
#define MIG_FILES_MAX    10000                /* files per owner */
#define MIG_NAME_MAX     128                  /* file name length */
#define MIG_OWNER_MAX    64
#define MIG_CORE_OWNER   "core"
/* an arbitrary constant, the same in every instance of every version */
#define MIG_LOCK_KEY     "7083960033546237810"
/* how long a runner waits for another one before giving up */
#define MIG_LOCK_WAIT    "300s"
#define MIG_CURRENT_TTL  30.0                 /* seconds a positive check is kept */

typedef struct mig_file {
    int    version;
    char   name[MIG_NAME_MAX];   /* "0001_core.sql" */
    char   sum[65];              /* SHA-256, lower-case hex */
    char  *sql;                  /* file content; NULL once only sums are kept */
} mig_file_t;

typedef struct mig_owner {
    char       *name;
    char       *dir;
    mig_file_t *files;
    size_t      nfiles;
} mig_owner_t;

typedef struct mig_plan {
    mig_owner_t *owners;
    size_t       nowners;
} mig_plan_t;

/* a row of plexus.schema_migrations */
typedef struct mig_row {
    char owner[MIG_OWNER_MAX];
    int  version;
    char name[MIG_NAME_MAX];
    char sum[65];
    char applied_at[32];
} mig_row_t;

typedef struct mig_rows {
    mig_row_t *rows;
    size_t     n;
} mig_rows_t;

typedef struct mig_reg {
    char         *owner;
    char         *dir;
    plx_module_t *m;
} mig_reg_t;

/* mig_lock guards the registrations, current_lock the readiness cache;
 * never hold both */
static pthread_mutex_t mig_lock = PTHREAD_MUTEX_INITIALIZER;
static char *core_dir;
static mig_reg_t *regs;
static size_t nregs;
/* what core_migrate_current() compares against, built on first use */
static pthread_mutex_t current_lock = PTHREAD_MUTEX_INITIALIZER;
static mig_plan_t *current_plan;
static double current_ok_until;

PLX_STATIC bool core_migrate_parse_name(const char *name, int *version);
PLX_STATIC void core_migrate_checksum(const void *data, size_t len,
                                      char out[65]);
PLX_STATIC int core_migrate_error_line(const char *sql, const char *pos);

/* ---- pure helpers -------------------------------------------------------- */

/* NNNN_name.sql: four digits, '_', then letters, digits, '_' or '-' */
PLX_STATIC bool core_migrate_parse_name(const char *name, int *version)
{
    size_t len = strlen(name);
    int v = 0;

    if (len < 10 || len >= MIG_NAME_MAX || strcmp(name + len - 4, ".sql") != 0)
        return false;
    for (int i = 0; i < 4; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        v = v * 10 + (name[i] - '0');
    }
    if (name[4] != '_')
        return false;
    for (size_t i = 5; i < len - 4; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return false;
    }
    *version = v;
    return true;
}

PLX_STATIC void core_migrate_checksum(const void *data, size_t len,
                                      char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;

    out[0] = '\0';
    if (!EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) || mdlen != 32)
        return;
    core_hex_encode(md, mdlen, out, 65);
}

/* PG_DIAG_STATEMENT_POSITION counts characters from 1, not bytes; the
 * line it falls on, or 0 when unknown */
PLX_STATIC int core_migrate_error_line(const char *sql, const char *pos)
{
    long want = pos ? strtol(pos, NULL, 10) : 0;
    long chars = 0;
    int line = 1;

    if (want <= 0)
        return 0;
    for (const unsigned char *p = (const unsigned char *)sql; *p; p++) {
        if ((*p & 0xc0) == 0x80)
            continue;
        if (++chars >= want)
            return line;
        if (*p == '\n')
            line++;
    }
    return line;
}

/* ---- registration ---------------------------------------------------------- */

static void plan_free(mig_plan_t *plan);

static void invalidate_current(void)
{
    pthread_mutex_lock(&current_lock);
    plan_free(current_plan);
    current_plan = NULL;
    current_ok_until = 0;
    pthread_mutex_unlock(&current_lock);
}

void core_migrations_set_core_dir(const char *dir)
{
    char *copy = dir ? strdup(dir) : NULL;

    pthread_mutex_lock(&mig_lock);
    free(core_dir);
    core_dir = copy;
    pthread_mutex_unlock(&mig_lock);
    invalidate_current();
}

/* the module's data folder: [module] data_dir of its plugins.d file (made
 * absolute by config.c), else <server.data_dir>/<module> */
static bool module_data_dir(plx_module_t *m, char *out, size_t outlen)
{
    const char *base = core_cfg ? core_config_get(core_cfg, "server", "data_dir")
                                : NULL;
    int n;

    for (size_t i = 0; i < core_config_module_count(core_cfg); i++) {
        const core_config_module_t *cm = core_config_module_at(core_cfg, i);
        if (cm && cm->data_dir && strcmp(cm->name, m->name) == 0) {
            n = snprintf(out, outlen, "%s", cm->data_dir);
            return n > 0 && (size_t)n < outlen;
        }
    }
    n = snprintf(out, outlen, "%s/%s", base ? base : PLX_DATA_DIR, m->name);
    return n > 0 && (size_t)n < outlen;
}

/* a relative dir is inside the module's data folder */
static bool resolve_dir(plx_module_t *m, const char *dir, char *out,
                        size_t outlen)
{
    char base[PATH_MAX];
    int n;

    if (dir[0] == '/')
        n = snprintf(out, outlen, "%s", dir);
    else if (module_data_dir(m, base, sizeof base))
        n = snprintf(out, outlen, "%s/%s", base, dir);
    else
        return false;
    return n > 0 && (size_t)n < outlen;
}

static bool owner_taken_locked(const char *owner)
{
    if (core_dir && strcmp(owner, MIG_CORE_OWNER) == 0)
        return true;
    for (size_t i = 0; i < nregs; i++)
        if (strcmp(regs[i].owner, owner) == 0)
            return true;
    return false;
}

static plx_status_t add_locked(plx_module_t *m, const char *path)
{
    mig_reg_t *grown;

    if (owner_taken_locked(m->name)) {
        LOG_ERROR("module \"%s\" registered a second migration folder \"%s\"",
                  m->name, path);
        return PLX_ERR_CONFLICT;
    }
    grown = realloc(regs, (nregs + 1) * sizeof *regs);
    if (!grown)
        return PLX_ERR_NOMEM;
    regs = grown;
    regs[nregs].owner = strdup(m->name);
    regs[nregs].dir = strdup(path);
    regs[nregs].m = m;
    if (!regs[nregs].owner || !regs[nregs].dir) {
        free(regs[nregs].owner);
        free(regs[nregs].dir);
        return PLX_ERR_NOMEM;
    }
    nregs++;
    return PLX_OK;
}

plx_status_t core_migrations_add(plx_module_t *m, const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    plx_status_t rc;

    if (!m || !m->name || !dir || !*dir
        || strlen(m->name) >= MIG_OWNER_MAX)
        return PLX_ERR_INVALID;
    if (!resolve_dir(m, dir, path, sizeof path)) {
        LOG_ERROR("migration folder of module \"%s\" is too long", m->name);
        return PLX_ERR_INVALID;
    }
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        LOG_ERROR("migration folder \"%s\" of module \"%s\" not found",
                  path, m->name);
        return PLX_ERR_NOT_FOUND;
    }
    pthread_mutex_lock(&mig_lock);
    rc = add_locked(m, path);
    pthread_mutex_unlock(&mig_lock);
    invalidate_current();
    if (rc == PLX_OK)
        LOG_DEBUG("module \"%s\" migrations in \"%s\"", m->name, path);
    return rc;
}

void core_migrations_free(void)
{
    pthread_mutex_lock(&mig_lock);
    for (size_t i = 0; i < nregs; i++) {
        free(regs[i].owner);
        free(regs[i].dir);
    }
    free(regs);
    regs = NULL;
    nregs = 0;
    free(core_dir);
    core_dir = NULL;
    pthread_mutex_unlock(&mig_lock);
    invalidate_current();
}

/* ---- reading the folders --------------------------------------------------- */

static void owner_free(mig_owner_t *o)
{
    for (size_t i = 0; i < o->nfiles; i++)
        free(o->files[i].sql);
    free(o->files);
    free(o->name);
    free(o->dir);
}

static void plan_free(mig_plan_t *plan)
{
    if (!plan)
        return;
    for (size_t i = 0; i < plan->nowners; i++)
        owner_free(&plan->owners[i]);
    free(plan->owners);
    free(plan);
}

static int file_cmp(const void *a, const void *b)
{
    const mig_file_t *fa = a, *fb = b;
    return (fa->version > fb->version) - (fa->version < fb->version);
}

/* read, check and checksum one file into f (f->name already set) */
static bool file_load(const mig_owner_t *o, mig_file_t *f)
{
    char path[PATH_MAX];
    size_t len = 0;

    if (snprintf(path, sizeof path, "%s/%s", o->dir, f->name)
        >= (int)sizeof path) {
        LOG_ERROR("migration path \"%s/%s\" is too long", o->dir, f->name);
        return false;
    }
    f->sql = core_read_file(path, MIG_FILE_MAX, &len);
    if (!f->sql) {
        LOG_ERROR("cannot read migration \"%s\": %s", path,
                  errno == EFBIG ? "file larger than 16 MiB" : strerror(errno));
        return false;
    }
    if (memchr(f->sql, '\0', len)) {
        LOG_ERROR("migration \"%s\" contains a NUL byte", path);
        return false;
    }
    core_migrate_checksum(f->sql, len, f->sum);
    return true;
}

static bool file_add(mig_owner_t *o, const char *name, int version)
{
    mig_file_t *grown;

    if (o->nfiles >= MIG_FILES_MAX) {
        LOG_ERROR("migration folder \"%s\" holds more than %d files", o->dir,
                  MIG_FILES_MAX);
        return false;
    }
    grown = realloc(o->files, (o->nfiles + 1) * sizeof *o->files);
    if (!grown)
        return false;
    o->files = grown;
    mig_file_t *f = &o->files[o->nfiles++];
    memset(f, 0, sizeof *f);
    f->version = version;
    /* core_migrate_parse_name checked the length */
    memcpy(f->name, name, strlen(name) + 1);
    return file_load(o, f);
}

static bool scan_entry(mig_owner_t *o, const char *name)
{
    size_t len = strlen(name);
    int version;

    if (len < 4 || strcmp(name + len - 4, ".sql") != 0)
        return true;
    if (!core_migrate_parse_name(name, &version)) {
        LOG_WARN("ignoring \"%s\" in \"%s\": expected a name like 0001_name.sql",
                 name, o->dir);
        return true;
    }
    return file_add(o, name, version);
}

static bool versions_unique(const mig_owner_t *o)
{
    for (size_t i = 1; i < o->nfiles; i++) {
        if (o->files[i].version == o->files[i - 1].version) {
            LOG_ERROR("migrations \"%s\" and \"%s\" in \"%s\" share version %04d",
                      o->files[i - 1].name, o->files[i].name, o->dir,
                      o->files[i].version);
            return false;
        }
    }
    return true;
}

static bool owner_scan(mig_owner_t *o)
{
    DIR *d = opendir(o->dir);
    struct dirent *e;
    bool ok = true;

    if (!d) {
        LOG_ERROR("cannot open migration folder \"%s\" of \"%s\": %s", o->dir,
                  o->name, strerror(errno));
        return false;
    }
    while (ok && (e = readdir(d)) != NULL)
        ok = scan_entry(o, e->d_name);
    closedir(d);
    if (!ok)
        return false;
    qsort(o->files, o->nfiles, sizeof *o->files, file_cmp);
    return versions_unique(o);
}

static bool plan_push(mig_plan_t *plan, const char *owner, const char *dir)
{
    mig_owner_t *o = &plan->owners[plan->nowners];

    memset(o, 0, sizeof *o);
    o->name = strdup(owner);
    o->dir = strdup(dir);
    plan->nowners++;
    return o->name && o->dir;
}

/* The owners in order: the core, modules in dependency order (the
 * loader's), then any registered owner the loader does not know (tests)
 * in registration order. Copies everything under the lock. */
static bool plan_order_locked(mig_plan_t *plan)
{
    bool *placed = calloc(nregs + 1, sizeof *placed);
    bool ok = true;

    plan->owners = calloc(nregs + 1, sizeof *plan->owners);
    if (!placed || !plan->owners) {
        free(placed);
        return false;
    }
    if (core_dir)
        ok = plan_push(plan, MIG_CORE_OWNER, core_dir);
    for (size_t k = 0; ok && k < core_module_count(); k++) {
        plx_module_t *m = core_module_at(k);
        for (size_t i = 0; ok && i < nregs; i++) {
            if (regs[i].m == m && !placed[i]) {
                placed[i] = true;
                ok = plan_push(plan, regs[i].owner, regs[i].dir);
            }
        }
    }
    for (size_t i = 0; ok && i < nregs; i++)
        if (!placed[i])
            ok = plan_push(plan, regs[i].owner, regs[i].dir);
    free(placed);
    return ok;
}

/* Read every folder. keep_sql: keep the file contents (to apply them). */
static mig_plan_t *plan_build(bool keep_sql)
{
    mig_plan_t *plan = calloc(1, sizeof *plan);
    bool ok;

    if (!plan)
        return NULL;
    pthread_mutex_lock(&mig_lock);
    ok = plan_order_locked(plan);
    pthread_mutex_unlock(&mig_lock);
    for (size_t i = 0; ok && i < plan->nowners; i++)
        ok = owner_scan(&plan->owners[i]);
    if (!ok) {
        plan_free(plan);
        return NULL;
    }
    for (size_t i = 0; !keep_sql && i < plan->nowners; i++) {
        for (size_t k = 0; k < plan->owners[i].nfiles; k++) {
            free(plan->owners[i].files[k].sql);
            plan->owners[i].files[k].sql = NULL;
        }
    }
    return plan;
}

/* ---- talking to PostgreSQL ------------------------------------------------ */

/* one statement without result rows worth keeping; logs failures */
static bool run(PGconn *pg, const char *sql, int n, const char *const *params,
                const char *what)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;

    if (!ok) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        LOG_ERROR("migrations: cannot %s (%s): %s", what,
                  state ? state : "no sqlstate",
                  msg ? msg : PQerrorMessage(pg));
    }
    PQclear(res);
    return ok;
}

static bool lock_take(PGconn *pg)
{
    const char *wait[1] = { MIG_LOCK_WAIT };
    const char *key[1] = { MIG_LOCK_KEY };
    const char *zero[1] = { "0" };

    return run(pg, "SELECT set_config('lock_timeout', $1, false)", 1, wait,
               "set lock_timeout")
        && run(pg, "SELECT pg_advisory_lock($1::bigint)", 1, key,
               "take the migration lock (another runner holds it)")
        && run(pg, "SELECT set_config('lock_timeout', $1, false)", 1, zero,
               "reset lock_timeout");
}

static void lock_drop(PGconn *pg)
{
    const char *key[1] = { MIG_LOCK_KEY };

    (void)run(pg, "SELECT pg_advisory_unlock($1::bigint)", 1, key,
              "release the migration lock");
}

static bool table_ensure(PGconn *pg)
{
    return run(pg, "CREATE SCHEMA IF NOT EXISTS plexus", 0, NULL,
               "create schema \"plexus\"")
        && run(pg,
               "CREATE TABLE IF NOT EXISTS plexus.schema_migrations ("
               " owner text NOT NULL,"
               " version integer NOT NULL,"
               " name text NOT NULL,"
               " checksum text NOT NULL,"
               " applied_at timestamptz NOT NULL DEFAULT now(),"
               " PRIMARY KEY (owner, version))",
               0, NULL, "create table \"plexus.schema_migrations\"");
}

static bool table_exists(PGconn *pg, bool *exists)
{
    PGresult *res = PQexecParams(pg,
        "SELECT to_regclass('plexus.schema_migrations') IS NOT NULL",
        0, NULL, NULL, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1;

    if (ok)
        *exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
    else
        LOG_ERROR("migrations: cannot read the catalog: %s",
                  PQerrorMessage(pg));
    PQclear(res);
    return ok;
}

static void row_fill(mig_row_t *row, const PGresult *res, int i)
{
    snprintf(row->owner, sizeof row->owner, "%s", PQgetvalue(res, i, 0));
    row->version = (int)strtol(PQgetvalue(res, i, 1), NULL, 10);
    snprintf(row->name, sizeof row->name, "%s", PQgetvalue(res, i, 2));
    snprintf(row->sum, sizeof row->sum, "%s", PQgetvalue(res, i, 3));
    snprintf(row->applied_at, sizeof row->applied_at, "%s",
             PQgetvalue(res, i, 4));
}

static bool rows_load(PGconn *pg, mig_rows_t *rows)
{
    PGresult *res = PQexecParams(pg,
        "SELECT owner, version, name, checksum,"
        " to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
        " FROM plexus.schema_migrations ORDER BY owner, version",
        0, NULL, NULL, NULL, NULL, 0);

    rows->rows = NULL;
    rows->n = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        LOG_ERROR("migrations: cannot read plexus.schema_migrations: %s",
                  PQerrorMessage(pg));
        PQclear(res);
        return false;
    }
    rows->n = (size_t)PQntuples(res);
    rows->rows = calloc(rows->n + 1, sizeof *rows->rows);
    if (!rows->rows) {
        PQclear(res);
        return false;
    }
    for (size_t i = 0; i < rows->n; i++)
        row_fill(&rows->rows[i], res, (int)i);
    PQclear(res);
    return true;
}

static const mig_row_t *row_find(const mig_rows_t *rows, const char *owner,
                                 int version)
{
    for (size_t i = 0; i < rows->n; i++)
        if (rows->rows[i].version == version
            && strcmp(rows->rows[i].owner, owner) == 0)
            return &rows->rows[i];
    return NULL;
}

static const mig_file_t *file_find(const mig_owner_t *o, int version)
{
    for (size_t i = 0; i < o->nfiles; i++)
        if (o->files[i].version == version)
            return &o->files[i];
    return NULL;
}

static const mig_owner_t *owner_find(const mig_plan_t *plan, const char *name)
{
    for (size_t i = 0; i < plan->nowners; i++)
        if (strcmp(plan->owners[i].name, name) == 0)
            return &plan->owners[i];
    return NULL;
}

/* ---- checking before applying --------------------------------------------- */

static int applied_max(const mig_rows_t *rows, const char *owner)
{
    int max = -1;

    for (size_t i = 0; i < rows->n; i++)
        if (strcmp(rows->rows[i].owner, owner) == 0
            && rows->rows[i].version > max)
            max = rows->rows[i].version;
    return max;
}

static bool owner_verify(const mig_owner_t *o, const mig_rows_t *rows)
{
    int max = applied_max(rows, o->name);
    bool ok = true;

    for (size_t i = 0; i < o->nfiles; i++) {
        const mig_file_t *f = &o->files[i];
        const mig_row_t *row = row_find(rows, o->name, f->version);
        if (row && strcmp(row->sum, f->sum) != 0) {
            LOG_ERROR("migration \"%s/%s\" changed after it was applied: "
                      "expected checksum %s, found %s", o->name, f->name,
                      row->sum, f->sum);
            ok = false;
        } else if (!row && f->version < max) {
            LOG_ERROR("migration \"%s/%s\" is pending but version %04d of "
                      "\"%s\" is already applied: add a new file after it",
                      o->name, f->name, max, o->name);
            ok = false;
        }
    }
    return ok;
}

static void warn_missing(const mig_plan_t *plan, const mig_rows_t *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        const mig_row_t *row = &rows->rows[i];
        const mig_owner_t *o = owner_find(plan, row->owner);
        if (o && !file_find(o, row->version))
            LOG_WARN("migration \"%s/%s\" is recorded as applied but its "
                     "file is missing in \"%s\"", row->owner, row->name,
                     o->dir);
    }
}

static bool plan_verify(const mig_plan_t *plan, const mig_rows_t *rows)
{
    bool ok = true;

    for (size_t i = 0; i < plan->nowners; i++)
        ok = owner_verify(&plan->owners[i], rows) && ok;
    if (ok)
        warn_missing(plan, rows);
    return ok;
}

/* ---- applying ------------------------------------------------------------- */

static void report_sql_error(const mig_owner_t *o, const mig_file_t *f,
                             PGconn *pg, const PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    int line = core_migrate_error_line(
        f->sql, PQresultErrorField(res, PG_DIAG_STATEMENT_POSITION));
    char where[32] = "";

    if (line > 0)
        snprintf(where, sizeof where, " at line %d", line);
    LOG_ERROR("migration \"%s/%s\" failed%s (%s): %s", o->name, f->name, where,
              state ? state : "no sqlstate", msg ? msg : PQerrorMessage(pg));
}

static bool run_file(PGconn *pg, const mig_owner_t *o, const mig_file_t *f)
{
    PGresult *res = PQexec(pg, f->sql);
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK
              || st == PGRES_EMPTY_QUERY;

    if (!ok)
        report_sql_error(o, f, pg, res);
    PQclear(res);
    if (ok && PQtransactionStatus(pg) != PQTRANS_INTRANS) {
        LOG_ERROR("migration \"%s/%s\" ended the transaction: migrations must "
                  "not contain COMMIT or ROLLBACK", o->name, f->name);
        ok = false;
    }
    return ok;
}

static bool record_file(PGconn *pg, const mig_owner_t *o, const mig_file_t *f)
{
    char version[16];
    const char *params[4] = { o->name, version, f->name, f->sum };

    snprintf(version, sizeof version, "%d", f->version);
    return run(pg,
               "INSERT INTO plexus.schema_migrations (owner, version, name, checksum)"
               " VALUES ($1, $2::integer, $3, $4)",
               4, params, "record the migration");
}

static bool apply_file(PGconn *pg, const mig_owner_t *o, const mig_file_t *f)
{
    double t0 = core_now();

    if (!run(pg, "BEGIN", 0, NULL, "begin a transaction"))
        return false;
    if (!run_file(pg, o, f) || !record_file(pg, o, f)
        || !run(pg, "COMMIT", 0, NULL, "commit")) {
        if (PQtransactionStatus(pg) != PQTRANS_IDLE)
            (void)run(pg, "ROLLBACK", 0, NULL, "roll back");
        LOG_ERROR("migration \"%s/%s\" rolled back, nothing after it applied",
                  o->name, f->name);
        return false;
    }
    /* a file may SET things for the session; the next file starts clean */
    (void)run(pg, "RESET ALL", 0, NULL, "reset session settings");
    LOG_INFO("applied migration \"%s/%s\" in %.3f s", o->name, f->name,
             core_now() - t0);
    return true;
}

static bool plan_apply(PGconn *pg, const mig_plan_t *plan,
                       const mig_rows_t *rows, int *applied)
{
    for (size_t i = 0; i < plan->nowners; i++) {
        const mig_owner_t *o = &plan->owners[i];
        for (size_t k = 0; k < o->nfiles; k++) {
            if (row_find(rows, o->name, o->files[k].version))
                continue;
            if (!apply_file(pg, o, &o->files[k]))
                return false;
            (*applied)++;
        }
    }
    return true;
}

/* under the lock: bookkeeping table, recorded rows, checks, apply */
static bool apply_locked(PGconn *pg, const mig_plan_t *plan)
{
    mig_rows_t rows;
    int applied = 0;
    bool ok;

    if (!table_ensure(pg) || !rows_load(pg, &rows))
        return false;
    ok = plan_verify(plan, &rows) && plan_apply(pg, plan, &rows, &applied);
    free(rows.rows);
    if (ok)
        LOG_INFO("migrations current: %d applied now", applied);
    return ok;
}

bool core_migrate_apply(void)
{
    mig_plan_t *plan = plan_build(true);
    PGconn *pg;
    bool ok;

    if (!plan)
        return false;
    pg = core_db_connect_direct();
    if (!pg) {
        plan_free(plan);
        return false;
    }
    ok = lock_take(pg);
    if (ok) {
        ok = apply_locked(pg, plan);
        lock_drop(pg);
    }
    PQfinish(pg);
    plan_free(plan);
    if (ok)
        invalidate_current();
    return ok;
}

/* ---- status ---------------------------------------------------------------- */

typedef struct mig_counts {
    int applied, pending, changed, missing;
} mig_counts_t;

static void status_file(FILE *out, const mig_owner_t *o, const mig_file_t *f,
                        const mig_rows_t *rows, mig_counts_t *c)
{
    const mig_row_t *row = row_find(rows, o->name, f->version);
    char state[160];

    if (!row) {
        snprintf(state, sizeof state, "pending");
        c->pending++;
    } else if (strcmp(row->sum, f->sum) != 0) {
        snprintf(state, sizeof state,
                 "CHANGED: applied %.12s..., on disk %.12s...", row->sum,
                 f->sum);
        c->changed++;
    } else {
        snprintf(state, sizeof state, "applied %s", row->applied_at);
        c->applied++;
    }
    fprintf(out, "%-16s %04d     %-40s %s\n", o->name, f->version, f->name,
            state);
}

/* recorded rows without a file: missing files of known owners, and owners
 * that are not loaded now */
static void status_orphans(FILE *out, const mig_plan_t *plan,
                           const mig_rows_t *rows, mig_counts_t *c)
{
    for (size_t i = 0; i < rows->n; i++) {
        const mig_row_t *row = &rows->rows[i];
        const mig_owner_t *o = owner_find(plan, row->owner);
        if (o && file_find(o, row->version))
            continue;
        fprintf(out, "%-16s %04d     %-40s applied %s, %s\n", row->owner,
                row->version, row->name, row->applied_at,
                o ? "file missing" : "owner not loaded");
        if (o)
            c->missing++;
    }
}

static void status_print(FILE *out, const mig_plan_t *plan,
                         const mig_rows_t *rows)
{
    mig_counts_t c = { 0 };

    fprintf(out, "%-16s %-8s %-40s %s\n", "OWNER", "VERSION", "FILE", "STATE");
    for (size_t i = 0; i < plan->nowners; i++)
        for (size_t k = 0; k < plan->owners[i].nfiles; k++)
            status_file(out, &plan->owners[i], &plan->owners[i].files[k], rows,
                        &c);
    status_orphans(out, plan, rows, &c);
    fprintf(out, "%d applied, %d pending, %d changed, %d missing\n", c.applied,
            c.pending, c.changed, c.missing);
}

bool core_migrate_status(FILE *out)
{
    mig_plan_t *plan = plan_build(false);
    mig_rows_t rows = { 0 };
    bool exists = false, ok;
    PGconn *pg;

    if (!plan)
        return false;
    pg = core_db_connect_direct();
    ok = pg && table_exists(pg, &exists) && (!exists || rows_load(pg, &rows));
    if (ok)
        status_print(out, plan, &rows);
    free(rows.rows);
    if (pg)
        PQfinish(pg);
    plan_free(plan);
    return ok;
}

/* ---- readiness ------------------------------------------------------------- */

static bool current_rows(mig_rows_t *rows, char *why, size_t whylen)
{
    plx_db_res_t *res = NULL;

    rows->rows = NULL;
    rows->n = 0;
    if (core_db_query(NULL, "SELECT to_regclass('plexus.schema_migrations') IS NOT NULL",
                      0, NULL, &res) != PLX_OK) {
        snprintf(why, whylen, "database not reachable");
        return false;
    }
    bool exists = strcmp(core_db_value(res, 0, 0) ? core_db_value(res, 0, 0) : "",
                         "t") == 0;
    core_db_free(res);
    if (!exists)
        return true;
    if (core_db_query(NULL, "SELECT owner, version, name, checksum, ''"
                      " FROM plexus.schema_migrations", 0, NULL, &res) != PLX_OK) {
        snprintf(why, whylen, "cannot read plexus.schema_migrations");
        return false;
    }
    rows->n = (size_t)core_db_rows(res);
    rows->rows = calloc(rows->n + 1, sizeof *rows->rows);
    for (size_t i = 0; rows->rows && i < rows->n; i++)
        row_fill(&rows->rows[i], res->pg, (int)i);
    core_db_free(res);
    return rows->rows != NULL;
}

static bool plan_current(const mig_plan_t *plan, const mig_rows_t *rows,
                         char *why, size_t whylen)
{
    for (size_t i = 0; i < plan->nowners; i++) {
        const mig_owner_t *o = &plan->owners[i];
        for (size_t k = 0; k < o->nfiles; k++) {
            const mig_row_t *row = row_find(rows, o->name, o->files[k].version);
            if (!row) {
                snprintf(why, whylen, "migration \"%s/%s\" is pending",
                         o->name, o->files[k].name);
                return false;
            }
            if (strcmp(row->sum, o->files[k].sum) != 0) {
                snprintf(why, whylen, "migration \"%s/%s\" changed after it "
                         "was applied", o->name, o->files[k].name);
                return false;
            }
        }
    }
    return true;
}

static bool current_check(const mig_rows_t *rows, char *why, size_t whylen)
{
    bool ok;

    pthread_mutex_lock(&current_lock);
    if (!current_plan) {
        snprintf(why, whylen, "cannot read the migration folders");
        ok = false;
    } else {
        ok = plan_current(current_plan, rows, why, whylen);
    }
    if (ok)
        current_ok_until = core_now() + MIG_CURRENT_TTL;
    pthread_mutex_unlock(&current_lock);
    return ok;
}

/* The folders are read once (they do not change under a running server);
 * a positive answer is kept MIG_CURRENT_TTL seconds so readiness probes
 * cost nothing most of the time. */
bool core_migrate_current(char *why, size_t whylen)
{
    char scratch[8];
    mig_rows_t rows;
    bool have, ok;

    if (!why || whylen == 0) {
        why = scratch;
        whylen = sizeof scratch;
    }
    why[0] = '\0';
    pthread_mutex_lock(&current_lock);
    ok = current_plan && core_now() < current_ok_until;
    have = current_plan != NULL;
    pthread_mutex_unlock(&current_lock);
    if (ok)
        return true;
    if (!have) {
        mig_plan_t *plan = plan_build(false);
        pthread_mutex_lock(&current_lock);
        if (!current_plan) {
            current_plan = plan;
            plan = NULL;
        }
        pthread_mutex_unlock(&current_lock);
        plan_free(plan);
    }
    if (!current_rows(&rows, why, whylen))
        return false;
    ok = current_check(&rows, why, whylen);
    free(rows.rows);
    return ok;
}
