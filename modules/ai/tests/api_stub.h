/*
 * api_stub.h - a fake plx_api table for the ai module's unit tests
 *
 * It defines plx_api (which the module's entry point, ai.c, defines in the
 * real module) and fills only logv and config_get: enough for settings.c,
 * upstream.c and the provider files; ai_stub_db() adds the database
 * entries (db_stub.c). Any other entry is NULL, so a test that reaches one
 * crashes at once instead of passing by accident.
 *
 *   ai_stub_install();
 *   ai_stub_config("providers", "fake");
 *   assert_true(ai_settings_load(AI_STUB_MODULE));
 *   assert_non_null(strstr(ai_stub_log(), "connect_timeout_ms"));
 */
#ifndef AIT_API_STUB_H
#define AIT_API_STUB_H

#include <plexus/module.h>

/* any non-NULL module pointer: the stub never looks inside */
#define AI_STUB_MODULE ((plx_module_t *)&ai_stub_module_token)
extern int ai_stub_module_token;

/* points plx_api at the stub; forgets every setting and log line */
void ai_stub_install(void);
/* [ai] key = value (value NULL: unset); copies both */
void ai_stub_config(const char *key, const char *value);
void ai_stub_config_reset(void);
/* every line logged since the last reset, each ending in '\n'; also
 * printed to stderr when AI_STUB_VERBOSE is set */
const char *ai_stub_log(void);
void ai_stub_log_reset(void);

/* the table itself, for the stubs of other entries to fill */
plx_api_t *ai_stub_table(void);

/* db_stub.c: the db_* entries (and status_str) over libpq to conninfo,
 * for the store layer's test; ai_stub_db_close closes idle connections */
void ai_stub_db(const char *conninfo);
void ai_stub_db_close(void);

#endif
