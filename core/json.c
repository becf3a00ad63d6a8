/*
 * json.c - parsing request bodies with bounds
 *
 * jansson already refuses invalid UTF-8, NUL bytes and trailing garbage,
 * and reports line and column. What it does not bound is nesting (its own
 * limit is a compile-time 2048, and every level is a recursion) nor the
 * number of values: a 1 MiB body of "[{},{},...]" is some 350,000 objects,
 * about 60 MB of heap. So a cheap scan over the bytes first counts, outside
 * strings, the '[' and '{' still open (depth) and every '[', '{', ',' and
 * ':' (elements), and refuses a document over the caller's bounds before
 * jansson sees it. Separate from http_request.c so the unit tests can
 * drive it without a server.
 */
#include "config.h"
#include "http.h"

#include <stdio.h>
#include <string.h>

/* Far above server.max_body; a guard for callers that pass other buffers. */
#define JSON_MAX_BYTES ((size_t)64 * 1024 * 1024)

typedef struct scan_pos {
    int line;
    int column;
} scan_pos_t;

typedef enum scan_result {
    SCAN_OK = 0,
    SCAN_TOO_DEEP,
    SCAN_TOO_MANY
} scan_result_t;

/* Where the document first goes deeper than max_depth or holds more than
 * max_elements elements. Elements are counted as one for the document and
 * one per '[', '{', ',' and ':': that is one per value and per object key,
 * plus one for each empty array or object, so it never counts fewer than
 * jansson will allocate. Strings are skipped with their escapes. */
static scan_result_t scan_bounds(const char *s, size_t len, int max_depth,
                                 long max_elements, scan_pos_t *at)
{
    bool in_string = false, escaped = false;
    int depth = 0;
    long elements = 1;
    scan_pos_t pos = { 1, 0 };

    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        pos.column++;
        if (c == '\n') {
            pos.line++;
            pos.column = 0;
        }
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
            continue;
        }
        if (c != '[' && c != '{' && c != ',' && c != ':') {
            if ((c == ']' || c == '}') && depth > 0)
                depth--;
            continue;
        }
        *at = pos;
        if (++elements > max_elements)
            return SCAN_TOO_MANY;
        if ((c == '[' || c == '{') && ++depth > max_depth)
            return SCAN_TOO_DEEP;
    }
    return SCAN_OK;
}

/* jansson's text may quote input near the error: keep the detail ASCII
 * so it is safe in a JSON answer and a log line whatever the input was */
static void ascii_only(char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c > 0x7e)
            *s = '?';
    }
}

static const char *type_name(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_STRING:  return "a string";
    case JSON_INTEGER:
    case JSON_REAL:    return "a number";
    case JSON_TRUE:
    case JSON_FALSE:   return "a boolean";
    case JSON_NULL:    return "null";
    default:           return "a value";
    }
}

static plx_status_t parse_error(char err[160], const json_error_t *je)
{
    const char *text = je->text;

    /* do not send clients the name of a jansson flag */
    if (strstr(text, "JSON_ALLOW_NUL"))
        text = "\\u0000 is not allowed";
    snprintf(err, 160, "invalid JSON at line %d, column %d: %.100s", je->line,
             je->column, text);
    ascii_only(err);
    return PLX_ERR_INVALID;
}

plx_status_t core_json_parse(const char *body, size_t len, int max_depth,
                             long max_elements, json_t **out, char err[160])
{
    json_error_t je;
    scan_pos_t at;
    json_t *j;

    *out = NULL;
    err[0] = '\0';
    if (!body || len == 0) {
        snprintf(err, 160, "expected a JSON object or array, found an empty body");
        return PLX_ERR_INVALID;
    }
    if (len > JSON_MAX_BYTES) {
        snprintf(err, 160, "expected at most %zu bytes of JSON, found %zu",
                 JSON_MAX_BYTES, len);
        return PLX_ERR_TOO_LARGE;
    }
    if (max_depth < 1)
        max_depth = 1;
    if (max_elements < 1)
        max_elements = 1;
    switch (scan_bounds(body, len, max_depth, max_elements, &at)) {
    case SCAN_TOO_DEEP:
        snprintf(err, 160, "invalid JSON at line %d, column %d: nested deeper "
                 "than %d levels", at.line, at.column, max_depth);
        return PLX_ERR_INVALID;
    case SCAN_TOO_MANY:
        snprintf(err, 160, "expected at most %ld JSON elements, found more at "
                 "line %d, column %d", max_elements, at.line, at.column);
        return PLX_ERR_TOO_LARGE;
    case SCAN_OK:
        break;
    }
    j = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return parse_error(err, &je);
    if (!json_is_object(j) && !json_is_array(j)) {
        snprintf(err, 160, "expected a JSON object or array, found %s", type_name(j));
        json_decref(j);
        return PLX_ERR_INVALID;
    }
    *out = j;
    return PLX_OK;
}
