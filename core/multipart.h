/*
 * multipart.h - a push parser for multipart/form-data (RFC 7578 over the
 * framing of RFC 2046 section 5.1)
 *
 * Bytes in, callbacks out, nothing held whole: the parser keeps one part's
 * header block and a few bytes of a possible delimiter, so memory is
 * bounded by max_header_bytes whatever the body's size. No I/O: the HTTP
 * layer (core_request_multipart) feeds it what it reads from the
 * connection, and tests/unit/test_multipart.c feeds it bodies split at
 * every offset.
 */
#ifndef PLEXUS_MULTIPART_H
#define PLEXUS_MULTIPART_H

#include "core.h"

/* RFC 2046: a boundary is 1 to 70 characters */
#define CORE_MP_BOUNDARY_MAX 70
/* header lines in one part */
#define CORE_MP_MAX_HEADERS  16

/* The boundary parameter of a Content-Type value, which must be
 * multipart/form-data; quoted or not. PLX_ERR_INVALID with a reason in
 * err when the type is another, the parameter is missing, repeated, or
 * not a valid boundary. */
plx_status_t core_mp_boundary(const char *content_type,
                              char out[CORE_MP_BOUNDARY_MAX + 1],
                              char *err, size_t errlen);

typedef struct core_mp core_mp_t;

/* spec is read now (its zero bounds take the defaults of plx_multipart_t)
 * and its callbacks kept; arg goes to them. NULL: out of memory. */
core_mp_t *core_mp_new(const plx_multipart_t *spec, const char *boundary,
                       void *arg);
/* Feed the next bytes. PLX_OK: go on. PLX_ERR_INVALID: bad framing,
 * PLX_ERR_TOO_LARGE: a bound crossed (core_mp_error says which);
 * anything else is a callback's status. After an error the parser
 * refuses more input with the same status. */
plx_status_t core_mp_feed(core_mp_t *p, const char *data, size_t len);
/* The body has ended: PLX_OK when the close delimiter was seen. */
plx_status_t core_mp_finish(core_mp_t *p);
/* the problem detail of the last error; "" when none */
const char *core_mp_error(const core_mp_t *p);
/* body bytes fed so far, and the bound on them */
size_t core_mp_total(const core_mp_t *p);
size_t core_mp_max_total(const core_mp_t *p);
void core_mp_free(core_mp_t *p);

/* plx_request_multipart (http_request.c): the request's body through the
 * parser as it arrives */
plx_status_t core_request_multipart(plx_request_t *r,
                                    const plx_multipart_t *spec, void *arg);

#endif
