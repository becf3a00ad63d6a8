/*
 * pgtest.h - throw-away PostgreSQL databases for tests
 *
 * The server to use comes from the libpq environment (PGHOST, PGPORT,
 * PGUSER, PGPASSWORD): scripts/test.sh starts a cluster and sets them.
 * Without PGHOST a database test prints a loud SKIP line and exits 77.
 */
#ifndef PLEXUS_PGTEST_H
#define PLEXUS_PGTEST_H

#include <stdbool.h>

/* true when PGHOST is set (and not empty) */
bool pgtest_available(void);

/* Create a fresh database named plx_test_<pid>_<n> on the server of the
 * environment; its name goes into name_out. Returns a libpq conninfo
 * string ("host=... port=... user=... dbname=...") for it, malloc'd (the
 * caller frees), or NULL with a message on stderr. */
char *pgtest_db_create(char name_out[64]);

/* Drop a database made by pgtest_db_create, closing its connections
 * (DROP DATABASE ... WITH (FORCE)). Problems go to stderr. */
void pgtest_db_drop(const char *name);

#endif
