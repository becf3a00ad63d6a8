/*
 * ai_client.h - what the ai module's integration tests share: a fake
 * provider, a server with identity, the metrics and ai modules on a
 * database of its own, an admin and a user logged in, and one-line calls.
 * Every helper fails the cmocka test on anything unexpected.
 */
#ifndef AIT_AI_CLIENT_H
#define AIT_AI_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "fake_llm.h"
#include "harness.h"
#include "identity_client.h"

#define AIT_KEY "sk-fake-test-key"

typedef struct ait_env {
    plxt_server_t *srv;
    plxt_llm_t    *llm;          /* one fake; key AIT_KEY */
    char          *db;           /* libpq conninfo of the test's database */
    char           dbname[64];
    plxt_user_t    admin;        /* role admin, logged in */
    plxt_user_t    user;         /* a plain user, logged in */
    char          *ai_text;      /* the [ai] section the server got */
} ait_env_t;

/* Start the fake and the server. [ai] gets three providers on the fake:
 *   fake       type = openai,    base_url = <fake>/v1
 *   fake_anth  type = anthropic, base_url = <fake>
 *   fake_gem   type = gemini,    base_url = <fake>/v1beta
 * all with api_key = AIT_KEY, and short timeouts (connect 2000 ms, first
 * token 3000 ms, idle 1500 ms, retry_base 50 ms, retry_max 500 ms).
 * ai_conf is more [ai] lines ("max_retries = 0\n") or NULL; a key given
 * there replaces the default one. providers false: no provider at all.
 * 0, or -1 (printed why). */
int ait_start(ait_env_t *e, const char *ai_conf);
/* whether the metrics module was built beside ai (the servers load it
 * then); a tree without it runs the ai tests all the same */
bool ait_have_metrics(void);
int ait_start_bare(ait_env_t *e);           /* no provider configured */
/* Added for the gateway's tests: ait_start, and the extra modules
 * (plxt_module_t, ended by a NULL name; at most 8) loaded after ai, e.g.
 * a test plugin that uses its hooks and services */
int ait_start_with(ait_env_t *e, const char *ai_conf, const plxt_module_t *extra);
/* another plexusd on the same database, with the same settings and the
 * same fake (no extra modules): what two instances behind a load balancer
 * share. NULL when it did not start; stop it with plxt_server_stop. */
plxt_server_t *ait_server_again(ait_env_t *e);
/* stop the server (0 when it exited cleanly), the fake, drop the database */
int ait_stop(ait_env_t *e);

/* POST /api/v1/admin/ai/models as the admin, expecting 201:
 * ait_model(e, "gpt-test", "fake", "up-model", 1.0, 2.0, NULL)
 * fallbacks: NULL or a JSON array text "[\"other\"]" */
void ait_model(ait_env_t *e, const char *name, const char *provider,
               const char *upstream, double price_in, double price_out,
               const char *fallbacks);

/* Added by the implementation: an embedding model ("kind":"embedding";
 * ait_model makes chat models, the default kind), expecting 201 */
void ait_embedding_model(ait_env_t *e, const char *name, const char *provider,
                         const char *upstream, double price_in);

/* One call with a bearer token (may be NULL), JSON body text or NULL. */
void ait_call(ait_env_t *e, const char *method, const char *path,
              const char *token, const char *body, plxt_resp_t *resp);
/* the same, asserting the status; the JSON body (new ref; NULL if empty) */
json_t *ait_expect(ait_env_t *e, const char *method, const char *path,
                   const char *token, const char *body, long status);
/* a problem+json answer with this status and code */
void ait_expect_problem(ait_env_t *e, const char *method, const char *path,
                        const char *token, const char *body, long status,
                        const char *code);

/* POST path with body as a stream (SSE): the open stream, asserting 200
 * and text/event-stream. The caller reads it with plxt_sse_next. */
plxt_stream_t *ait_stream(ait_env_t *e, const char *path, const char *token,
                          const char *body);

/* a team owned by u; an API key of u with these scopes (JSON array text,
 * "[\"ai\"]"), the key's secret into key_out */
void ait_team_new(ait_env_t *e, plxt_user_t *u, char id[37]);
void ait_api_key(ait_env_t *e, plxt_user_t *u, const char *scopes,
                 char *key_out, size_t len);

/* SELECT one value from the test database (malloc'd, NULL for NULL) */
char *ait_sql(ait_env_t *e, const char *sql);

#endif
