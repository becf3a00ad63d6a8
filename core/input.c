/*
 * input.c - the field readers of a JSON body, and list pages and cursors
 *
 * What every route that takes input needs and used to write for itself:
 * "is this member present, of this type, in these bounds", answered with
 * the same 400 invalid_body naming the field, and "which page": a bounded
 * limit and an opaque cursor. A cursor is base64url (RFC 4648 section 5)
 * of "<tag>|<key>|<id>": the tag names the list and its order, so a cursor
 * of one list is refused by another; the key is checked by its kind and
 * the id is a UUID, so whatever a client crafts, what reaches SQL casts
 * (a time in years 0001 to 9999, an integer in int64, bounded UTF-8).
 * The pure parts come first and are unit-tested on their own.
 */
#include "config.h"
#include "core.h"
#include "input.h"

#include <stdio.h>
#include <string.h>

/* ---- pure: times, keys, cursors -------------------------------------------- */

/* the value of n decimal digits at s, -1 when one is not a digit (it never
 * reads past a non-digit, so past the end of a string) */
static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static bool date_ok(int y, int m, int d)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int max;

    if (y < 1 || y > 9999 || m < 1 || m > 12 || d < 1)
        return false;
    max = days[m - 1];
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        max = 29;
    return d <= max;
}

/* "Z", or "+HH:MM" / "-HH:MM", then the end. RFC 3339 allows offsets up
 * to 23:59, PostgreSQL only to 15:59 ("time zone displacement out of
 * range"); no zone in use is beyond 14:00, so the bound is PostgreSQL's. */
static bool offset_ok(const char *p)
{
    int h, m;

    if (*p == 'Z' || *p == 'z')
        return p[1] == '\0';
    if (*p != '+' && *p != '-')
        return false;
    if ((h = digits(p + 1, 2)) < 0 || p[3] != ':' || (m = digits(p + 4, 2)) < 0)
        return false;
    return h <= 15 && m <= 59 && p[6] == '\0';
}

bool core_time_valid(const char *s)
{
    int h, mi, sec, frac = 0;
    const char *p;

    /* "YYYY-MM-DDTHH:MM:SS" is 19 bytes; a fraction and an offset follow */
    if (!s || strnlen(s, 40) < 20 || strnlen(s, 40) >= 40)
        return false;
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't')
        || s[13] != ':' || s[16] != ':')
        return false;
    if (!date_ok(digits(s, 4), digits(s + 5, 2), digits(s + 8, 2)))
        return false;
    h = digits(s + 11, 2);
    mi = digits(s + 14, 2);
    sec = digits(s + 17, 2);
    if (h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 60)
        return false;
    p = s + 19;
    if (*p == '.') {
        while (p[1] >= '0' && p[1] <= '9') {
            p++;
            frac++;
        }
        if (frac < 1 || frac > 9)
            return false;
        p++;
    }
    return offset_ok(p);
}

/* a signed 64-bit integer as PostgreSQL prints one: no '+', no leading
 * zero, no "-0" */
static bool int64_ok(const char *key)
{
    static const char max_pos[] = "9223372036854775807";
    static const char max_neg[] = "9223372036854775808";
    bool neg = key[0] == '-';
    const char *d = key + neg;
    size_t n = strlen(d);

    if (n == 0 || n > 19 || (d[0] == '0' && (n > 1 || neg)))
        return false;
    for (size_t i = 0; i < n; i++)
        if (d[i] < '0' || d[i] > '9')
            return false;
    return n < 19 || strcmp(d, neg ? max_neg : max_pos) <= 0;
}

bool core_key_valid(plx_key_kind_t kind, const char *key)
{
    size_t n;

    if (!key)
        return false;
    n = strnlen(key, CORE_CURSOR_KEY_MAX + 1);
    if (n > CORE_CURSOR_KEY_MAX)
        return false;
    switch (kind) {
    case PLX_KEY_TIME: return core_time_valid(key);
    case PLX_KEY_INT:  return int64_ok(key);
    case PLX_KEY_TEXT: return core_utf8_valid(key, n);
    case PLX_KEY_NONE: return n == 0;
    }
    return false;
}

/* printable ASCII without '|', which separates the cursor's parts */
static bool tag_valid(const char *tag)
{
    size_t n = tag ? strnlen(tag, CORE_CURSOR_TAG_MAX + 1) : 0;

    if (n == 0 || n > CORE_CURSOR_TAG_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (tag[i] <= 0x20 || tag[i] >= 0x7f || tag[i] == '|')
            return false;
    return true;
}

bool core_cursor_encode(const char *tag, plx_key_kind_t kind, const char *key,
                        const char *id, char *out, size_t cap)
{
    char raw[CORE_CURSOR_TAG_MAX + CORE_CURSOR_KEY_MAX + 40];
    int n;

    if (!key)
        key = "";
    if (!tag_valid(tag) || !core_key_valid(kind, key) || !core_uuid_valid(id))
        return false;
    n = snprintf(raw, sizeof raw, "%s|%s|%s", tag, key, id);
    if (n < 0 || (size_t)n >= sizeof raw)
        return false;
    return core_base64_encode(PLX_B64_URL, raw, (size_t)n, out, cap) != (size_t)-1;
}

bool core_cursor_decode(const char *cursor, const char *tag,
                        plx_key_kind_t kind, char key[CORE_CURSOR_KEY_MAX + 1],
                        char id[37])
{
    char raw[CORE_CURSOR_TAG_MAX + CORE_CURSOR_KEY_MAX + 40];
    size_t clen, n, taglen, keylen;

    if (!cursor || !tag_valid(tag))
        return false;
    clen = strnlen(cursor, CORE_CURSOR_MAX + 1);
    if (clen > CORE_CURSOR_MAX
        || core_base64_decode(PLX_B64_URL, cursor, clen, raw, sizeof raw - 1, &n)
           != PLX_OK
        || memchr(raw, '\0', n))
        return false;
    raw[n] = '\0';
    taglen = strlen(tag);
    /* "<tag>|" first, "|<36-character id>" last, the key between */
    if (n < taglen + 1 + 37 || memcmp(raw, tag, taglen) != 0 || raw[taglen] != '|'
        || raw[n - 37] != '|')
        return false;
    keylen = n - 37 - (taglen + 1);
    if (keylen > CORE_CURSOR_KEY_MAX)
        return false;
    memcpy(key, raw + taglen + 1, keylen);
    key[keylen] = '\0';
    if (!core_key_valid(kind, key) || !core_uuid_valid(raw + n - 36))
        return false;
    memcpy(id, raw + n - 36, 37);
    return true;
}

/* ---- field readers --------------------------------------------------------- */

static plx_status_t PLX_PRINTF(3, 4)
refuse(plx_request_t *r, const char *name, const char *fmt, ...)
{
    char why[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (name)
        core_reply_problem(r, 400, "invalid_body", "field \"%s\" %s", name, why);
    else
        core_reply_problem(r, 400, "invalid_body", "%s", why);
    return PLX_ERR_INVALID;
}

/* The member name of obj into *v. PLX_OK (with *v NULL for a JSON null a
 * pointer output may take), PLX_DECLINED when absent and optional, or
 * PLX_ERR_INVALID answered. */
static plx_status_t member(plx_request_t *r, json_t *obj, const char *name,
                           unsigned flags, bool pointer, json_t **v)
{
    *v = NULL;
    if (!r || !name)
        return PLX_ERR_INTERNAL;
    if (!json_is_object(obj))
        return refuse(r, NULL, "expected a JSON object");
    if (!(*v = json_object_get(obj, name))) {
        if (flags & PLX_FIELD_REQUIRED)
            return refuse(r, name, "is required");
        return PLX_DECLINED;
    }
    if (json_is_null(*v)) {
        *v = NULL;
        if (pointer && (flags & PLX_FIELD_NULLABLE))
            return PLX_OK;
        return refuse(r, name, "must not be null");
    }
    return PLX_OK;
}

plx_status_t core_field_string(plx_request_t *r, json_t *obj, const char *name,
                               unsigned flags, size_t min_chars,
                               size_t max_chars, const char **out)
{
    json_t *v;
    plx_status_t st = member(r, obj, name, flags, true, &v);
    long chars;

    if (st != PLX_OK || !out)
        return st == PLX_OK ? PLX_ERR_INTERNAL : st;
    if (!v) {
        *out = NULL;
        return PLX_OK;
    }
    if (!json_is_string(v))
        return refuse(r, name, "must be a string");
    chars = core_utf8_chars(json_string_value(v), json_string_length(v));
    if (chars < 0 || (size_t)chars < min_chars || (size_t)chars > max_chars)
        return refuse(r, name, "must be a string of %zu to %zu characters",
                      min_chars, max_chars);
    *out = json_string_value(v);
    return PLX_OK;
}

/* a string member that check() accepts, described by what */
static plx_status_t string_of(plx_request_t *r, json_t *obj, const char *name,
                              unsigned flags, bool (*check)(const char *),
                              const char *what, const char **out)
{
    json_t *v;
    plx_status_t st = member(r, obj, name, flags, true, &v);

    if (st != PLX_OK || !out)
        return st == PLX_OK ? PLX_ERR_INTERNAL : st;
    if (!v) {
        *out = NULL;
        return PLX_OK;
    }
    if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)
        || !check(json_string_value(v)))
        return refuse(r, name, "must be %s", what);
    *out = json_string_value(v);
    return PLX_OK;
}

static bool uuid_check(const char *s)
{
    return core_uuid_valid(s);
}

plx_status_t core_field_uuid(plx_request_t *r, json_t *obj, const char *name,
                             unsigned flags, const char **out)
{
    return string_of(r, obj, name, flags, uuid_check, "a UUID", out);
}

plx_status_t core_field_time(plx_request_t *r, json_t *obj, const char *name,
                             unsigned flags, const char **out)
{
    return string_of(r, obj, name, flags, core_time_valid,
                     "an RFC 3339 date-time, e.g. \"2026-12-08T00:50:35Z\"", out);
}

plx_status_t core_field_int(plx_request_t *r, json_t *obj, const char *name,
                            unsigned flags, long long min, long long max,
                            long long *out)
{
    json_t *v;
    plx_status_t st = member(r, obj, name, flags, false, &v);
    long long n;

    if (st != PLX_OK || !out)
        return st == PLX_OK ? PLX_ERR_INTERNAL : st;
    n = json_is_integer(v) ? (long long)json_integer_value(v) : 0;
    if (!json_is_integer(v) || n < min || n > max)
        return refuse(r, name, "must be an integer from %lld to %lld", min, max);
    *out = n;
    return PLX_OK;
}

plx_status_t core_field_bool(plx_request_t *r, json_t *obj, const char *name,
                             unsigned flags, int *out)
{
    json_t *v;
    plx_status_t st = member(r, obj, name, flags, false, &v);

    if (st != PLX_OK || !out)
        return st == PLX_OK ? PLX_ERR_INTERNAL : st;
    if (!json_is_boolean(v))
        return refuse(r, name, "must be true or false");
    *out = json_is_true(v);
    return PLX_OK;
}

plx_status_t core_field_enum(plx_request_t *r, json_t *obj, const char *name,
                             unsigned flags, const char *const *values,
                             int *out)
{
    json_t *v;
    plx_status_t st = member(r, obj, name, flags, false, &v);
    const char *s = json_string_value(v);
    char list[200];
    size_t o = 0;

    if (st != PLX_OK || !out || !values)
        return st == PLX_OK ? PLX_ERR_INTERNAL : st;
    for (int i = 0; s && values[i]; i++) {
        if (strcmp(s, values[i]) == 0) {
            *out = i;
            return PLX_OK;
        }
    }
    list[0] = '\0';
    for (int i = 0; values[i] && o < sizeof list; i++)
        o += (size_t)snprintf(list + o, sizeof list - o, "%s\"%s\"", i ? ", " : "",
                              values[i]);
    return refuse(r, name, "must be one of %s", list);
}

/* ---- pages ----------------------------------------------------------------- */

plx_status_t core_page_limit(plx_request_t *r, int default_limit, int max_limit,
                             int *out)
{
    const char *limit = core_request_query(r, "limit");
    size_t n;
    int v;

    *out = default_limit < 1 ? 1 : default_limit > max_limit ? max_limit
                                                              : default_limit;
    if (!limit)
        return PLX_OK;
    /* canonical digits only: no sign, no leading zero, no exponent */
    n = strlen(limit);
    v = n >= 1 && n <= 9 && limit[0] != '0' ? digits(limit, (int)n) : -1;
    if (v < 1 || v > max_limit) {
        core_reply_problem(r, 400, "invalid_limit", "query parameter \"limit\""
                           " must be an integer from 1 to %d", max_limit);
        return PLX_ERR_INVALID;
    }
    *out = v;
    return PLX_OK;
}

plx_status_t core_page_read(plx_request_t *r, const char *tag,
                            plx_key_kind_t kind, int default_limit,
                            int max_limit, plx_page_t *out)
{
    const char *cursor;
    char *key, *id;
    plx_status_t st;

    if (!r || !out || out->size < offsetof(plx_page_t, id) + sizeof(out->id)
        || !tag_valid(tag) || max_limit < 1)
        return PLX_ERR_INTERNAL;
    out->key = out->id = NULL;
    if ((st = core_page_limit(r, default_limit, max_limit, &out->limit)) != PLX_OK)
        return st;
    cursor = core_request_query(r, "cursor");
    if (!cursor || !*cursor)
        return PLX_OK;   /* "cursor=" is the first page, as no cursor */
    key = core_palloc(r, CORE_CURSOR_KEY_MAX + 1);
    id = core_palloc(r, 37);
    if (!key || !id)
        return PLX_ERR_NOMEM;
    if (!core_cursor_decode(cursor, tag, kind, key, id)) {
        core_reply_problem(r, 400, "invalid_cursor", "query parameter \"cursor\""
                           " is not a cursor of this list");
        return PLX_ERR_INVALID;
    }
    out->key = kind == PLX_KEY_NONE ? NULL : key;
    out->id = id;
    return PLX_OK;
}

const char *core_page_cursor(plx_request_t *r, const char *tag,
                             plx_key_kind_t kind, const char *key,
                             const char *id)
{
    char *out = core_palloc(r, CORE_CURSOR_MAX + 1);

    if (!out || !core_cursor_encode(tag, kind, key, id, out, CORE_CURSOR_MAX + 1))
        return NULL;
    return out;
}
