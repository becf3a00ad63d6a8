/*
 * migrate.h - forward-only SQL migrations per owner
 *
 * Each owner (the core, each module) has a folder of NNNN_name.sql files and
 * a PostgreSQL schema of its own. Files are applied in order, each in its own
 * transaction, under one advisory lock, and recorded in
 * plexus.schema_migrations (owner, version, name, checksum, applied_at). A
 * recorded file whose checksum changed stops everything.
 */
#ifndef PLEXUS_MIGRATE_H
#define PLEXUS_MIGRATE_H

#include "core.h"

#include <stdio.h>

plx_status_t core_migrations_add(plx_module_t *m, const char *dir);
/* the core's own folder */
void core_migrations_set_core_dir(const char *dir);
/* apply everything pending; false (logged) on any failure */
bool core_migrate_apply(void);
/* print a table: owner, version, name, state (applied at / pending / changed) */
bool core_migrate_status(FILE *out);
/* every known file applied and unchanged? (for /health/ready) */
bool core_migrate_current(char *why, size_t whylen);
void core_migrations_free(void);

#endif
