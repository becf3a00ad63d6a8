/*
 * pgtest.c - throw-away PostgreSQL databases for tests
 *
 * Each test gets its own database, so tests can run in parallel against
 * one cluster and a failed run leaves nothing another run could trip on.
 * CREATE/DROP DATABASE take no parameters: the name is generated here from
 * digits and still quoted with PQescapeIdentifier.
 */
#include "config.h"
#include "pgtest.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#define PGTEST_CONNINFO_MAX 1024

static atomic_uint pgtest_counter;

bool pgtest_available(void)
{
    const char *host = getenv("PGHOST");
    return host && *host;
}

/* "database does not exist, skipping" and the like are not news */
static void quiet(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* the maintenance database of the server named by the environment */
static PGconn *connect_admin(void)
{
    const char *keys[] = { "dbname", "connect_timeout",
                           "application_name", NULL };
    const char *vals[] = { "postgres", "10", "plexus-tests", NULL };
    PGconn *pg = PQconnectdbParams(keys, vals, 0);

    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "pgtest: cannot connect to the \"postgres\" database: %s",
                PQerrorMessage(pg));
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeProcessor(pg, quiet, NULL);
    return pg;
}

/* before <quoted name> after */
static bool run_admin(PGconn *pg, const char *before, const char *name,
                      const char *after)
{
    char sql[256];
    char *quoted = PQescapeIdentifier(pg, name, strlen(name));
    PGresult *res;
    bool ok;

    if (!quoted)
        return false;
    snprintf(sql, sizeof sql, "%s%s%s", before, quoted, after);
    PQfreemem(quoted);
    res = PQexecParams(pg, sql, 0, NULL, NULL, NULL, NULL, 0);
    ok = PQresultStatus(res) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "pgtest: %s: %s", sql, PQresultErrorMessage(res));
    PQclear(res);
    return ok;
}

/* key='value' with ' and \ escaped, as libpq's conninfo grammar wants */
static bool conninfo_add(char *buf, size_t cap, const char *key,
                         const char *value)
{
    size_t len = strlen(buf);
    int n = snprintf(buf + len, cap - len, "%s%s='", len ? " " : "", key);

    if (n < 0 || (size_t)n >= cap - len)
        return false;
    len += (size_t)n;
    for (const char *p = value; *p; p++) {
        if (len + 3 >= cap)
            return false;
        if (*p == '\'' || *p == '\\')
            buf[len++] = '\\';
        buf[len++] = *p;
    }
    buf[len++] = '\'';
    buf[len] = '\0';
    return len < cap;
}

static char *conninfo_for(PGconn *pg, const char *dbname)
{
    char *buf = calloc(1, PGTEST_CONNINFO_MAX);
    const char *host = PQhost(pg);

    if (!buf)
        return NULL;
    /* PQhost gives the socket folder for unix-socket connections, which
     * is what host= accepts too */
    if (!conninfo_add(buf, PGTEST_CONNINFO_MAX, "host", host ? host : "")
        || !conninfo_add(buf, PGTEST_CONNINFO_MAX, "port", PQport(pg))
        || !conninfo_add(buf, PGTEST_CONNINFO_MAX, "user", PQuser(pg))
        || !conninfo_add(buf, PGTEST_CONNINFO_MAX, "dbname", dbname)) {
        fprintf(stderr, "pgtest: connection string too long\n");
        free(buf);
        return NULL;
    }
    return buf;
}

char *pgtest_db_create(char name_out[64])
{
    PGconn *pg = connect_admin();
    char *info = NULL;

    name_out[0] = '\0';
    if (!pg)
        return NULL;
    snprintf(name_out, 64, "plx_test_%ld_%u", (long)getpid(),
             atomic_fetch_add(&pgtest_counter, 1));
    if (run_admin(pg, "DROP DATABASE IF EXISTS ", name_out, " WITH (FORCE)")
        && run_admin(pg, "CREATE DATABASE ", name_out, ""))
        info = conninfo_for(pg, name_out);
    PQfinish(pg);
    if (!info)
        name_out[0] = '\0';
    return info;
}

void pgtest_db_drop(const char *name)
{
    PGconn *pg;

    if (!name || !*name)
        return;
    pg = connect_admin();
    if (!pg)
        return;
    (void)run_admin(pg, "DROP DATABASE IF EXISTS ", name, " WITH (FORCE)");
    PQfinish(pg);
}
