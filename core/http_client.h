/*
 * http_client.h - the core's outbound HTTP client (plx_http_request) and
 * sealed secrets for modules (plx_secret_seal)
 */
#ifndef PLEXUS_HTTP_CLIENT_H
#define PLEXUS_HTTP_CLIENT_H

#include "conf.h"

/* Read [http_client] (the allowlist); false, logged, when it is
 * malformed. Runs once at start, before any module's init; libcurl is
 * initialised by then (core_identity_setup). */
bool core_http_client_setup(core_config_t *cfg);

plx_status_t core_http_request(plx_module_t *m, const char *method,
                               const char *url, const char *const *headers,
                               const void *body, size_t len,
                               const plx_http_opts_t *opts,
                               plx_http_resp_t **out);
int core_http_resp_status(const plx_http_resp_t *resp);
const char *core_http_resp_body(const plx_http_resp_t *resp, size_t *len);
const char *core_http_resp_header(const plx_http_resp_t *resp,
                                  const char *name);
void core_http_resp_free(plx_http_resp_t *resp);

/* secrets.c */
plx_status_t core_secret_seal(plx_module_t *m, const char *context,
                              const void *plain, size_t len, char **out);
plx_status_t core_secret_unseal(plx_module_t *m, const char *context,
                                const char *sealed, void **plain, size_t *len,
                                int *stale);
void core_mem_free(void *p);

#endif
