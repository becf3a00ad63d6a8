/*
 * projects_client.h - what the projects integration tests share: a server
 * with identity, teams, the projects module and the event probe on a
 * database of its own; calls with a bearer token and If-Match; teams,
 * projects and tasks made in one line. Each helper fails the cmocka test
 * on anything unexpected.
 */
#ifndef PJT_PROJECTS_CLIENT_H
#define PJT_PROJECTS_CLIENT_H

#include <jansson.h>
#include <stdbool.h>

#include "harness.h"
#include "identity_client.h"

typedef struct pjt_env {
    plxt_server_t *srv;
    char          *db;          /* libpq conninfo of the test's database */
    char           dbname[64];
} pjt_env_t;

/* 0 with e filled, -1 (printed why) when the server did not start */
int pjt_start(pjt_env_t *e);
/* stop the server (its exit status: ASan finds leaks at exit) and drop
 * the database; 0 when the server exited cleanly */
int pjt_stop(pjt_env_t *e);

/* One call: token may be NULL (anonymous), body is JSON text or NULL,
 * if_match the raw header value or NULL. resp freed by the caller. */
void pjt_call(pjt_env_t *e, const char *method, const char *path,
              const char *token, const char *body, const char *if_match,
              plxt_resp_t *resp);
/* the same, asserting the status; returns the JSON body (new reference,
 * NULL for an empty body) */
json_t *pjt_expect(pjt_env_t *e, const char *method, const char *path,
                   const char *token, const char *body, const char *if_match,
                   long status);
/* a problem+json answer with status and code; returns its "detail"
 * (malloc'd) for tests that look for the field's name in it */
char *pjt_expect_problem(pjt_env_t *e, const char *method, const char *path,
                         const char *token, const char *body,
                         const char *if_match, long status, const char *code);

/* a string member, failing the test when absent; borrowed from j */
const char *pjt_str(json_t *j, const char *key);
/* the ETag a GET of path answers, into out[24] */
void pjt_etag(pjt_env_t *e, const char *path, const char *token, char out[24]);

/* teams: owner creates; members join with a role */
void pjt_team_new(pjt_env_t *e, const plxt_user_t *owner, char id[37]);
void pjt_member_add(pjt_env_t *e, const char *team, const plxt_user_t *by,
                    const plxt_user_t *who, const char *role);

/* a project or a task made by u; extra is more JSON members or NULL
 * ("\"due_date\":\"2030-01-01\"") */
void pjt_project_new(pjt_env_t *e, const plxt_user_t *u, const char *team,
                     const char *name, char id[37]);
void pjt_task_new(pjt_env_t *e, const plxt_user_t *u, const char *project,
                  const char *title, const char *extra, char id[37]);
void pjt_comment_new(pjt_env_t *e, const plxt_user_t *u, const char *task,
                     const char *body, char id[37]);

/* the events the probe has seen with this topic whose payload's <kind>.id
 * is id, as a new array */
json_t *pjt_events(pjt_env_t *e, const char *topic, const char *kind,
                   const char *id);

/* a random UUID v4 (for ids that name nothing) */
void pjt_uuid(char out[37]);

#endif
