/*
 * input.h - reading what a client sends: body fields and list pages
 *
 * The 1.4 request-input entries of the API table (their contracts are at
 * the entries in plexus/module.h), and the pure pieces under them that the
 * unit tests drive without a server: RFC 3339 times, sort keys and the
 * cursor codec. The body itself (core_request_body_object) is read in
 * http_request.c with the other body readers.
 */
#ifndef PLEXUS_INPUT_H
#define PLEXUS_INPUT_H

#include "http.h"

#define CORE_CURSOR_TAG_MAX 64     /* bytes of a list's tag */
#define CORE_CURSOR_KEY_MAX 256    /* bytes of a sort key (PLX_KEY_TEXT's bound) */
/* the longest cursor text: base64url of "<tag>|<key>|<uuid>" */
#define CORE_CURSOR_MAX \
    (PLX_B64_LEN(CORE_CURSOR_TAG_MAX + CORE_CURSOR_KEY_MAX + 38) - 1)

/* an RFC 3339 date-time (section 5.6) in years 0001 to 9999, with real
 * calendar days, hours, minutes, seconds (60 for a leap second) and
 * offsets up to 15:59 (PostgreSQL's bound); at most 9 fraction digits:
 * every one casts to timestamptz */
bool core_time_valid(const char *s);
/* a sort key that fits kind (see plx_key_kind_t); PLX_KEY_NONE: "" only */
bool core_key_valid(plx_key_kind_t kind, const char *key);
/* base64url of "<tag>|<key>|<id>" into out (NUL-terminated); false when
 * tag, key (by kind; NULL is "") or id does not fit, or out is too small */
bool core_cursor_encode(const char *tag, plx_key_kind_t kind, const char *key,
                        const char *id, char *out, size_t cap);
/* the inverse: false unless cursor is the encoding of tag, a key of kind
 * and a UUID */
bool core_cursor_decode(const char *cursor, const char *tag,
                        plx_key_kind_t kind, char key[CORE_CURSOR_KEY_MAX + 1],
                        char id[37]);

plx_status_t core_field_string(plx_request_t *r, json_t *obj, const char *name,
                               unsigned flags, size_t min_chars,
                               size_t max_chars, const char **out);
plx_status_t core_field_uuid(plx_request_t *r, json_t *obj, const char *name,
                             unsigned flags, const char **out);
plx_status_t core_field_int(plx_request_t *r, json_t *obj, const char *name,
                            unsigned flags, long long min, long long max,
                            long long *out);
plx_status_t core_field_bool(plx_request_t *r, json_t *obj, const char *name,
                             unsigned flags, int *out);
plx_status_t core_field_enum(plx_request_t *r, json_t *obj, const char *name,
                             unsigned flags, const char *const *values,
                             int *out);
plx_status_t core_field_time(plx_request_t *r, json_t *obj, const char *name,
                             unsigned flags, const char **out);
/* ?limit= alone, as page_read reads it (for a list whose cursor is not
 * the page API's); 400 invalid_limit answered */
plx_status_t core_page_limit(plx_request_t *r, int default_limit, int max_limit,
                             int *out);
plx_status_t core_page_read(plx_request_t *r, const char *tag,
                            plx_key_kind_t kind, int default_limit,
                            int max_limit, plx_page_t *out);
const char *core_page_cursor(plx_request_t *r, const char *tag,
                             plx_key_kind_t kind, const char *key,
                             const char *id);

#endif
