/*
 * schema.h - JSON Schema for the ai module: a C interface over valijson
 *
 * A schema is compiled once (ai_schema_compile) and may then validate any
 * number of jansson values, from any thread (ai_schema_validate). Drafts 4,
 * 6 and 7 are understood ($schema picks draft 4; anything else is read as
 * draft 7). Refused at compile time, with a readable reason: a schema that
 * is not an object, one nested deeper than AI_SCHEMA_DEPTH_MAX or larger
 * than AI_SCHEMA_BYTES_MAX, a $ref that leaves the document or names
 * nothing in it, a cycle of $ref/allOf/anyOf/oneOf/not/if/then/else/
 * dependencies that would make validation recurse for ever (valijson
 * would crash on it), an invalid regular expression, and whatever valijson
 * itself refuses ("type": "foo", "minLength": -1, ...).
 *
 * Errors are one line each, a JSON Pointer into the instance and what is
 * wrong: "/items/0/done: expected boolean, found string" ("/" is the
 * instance itself). Valijson's summary errors ("failed to validate item #0
 * in array") are dropped when a more precise error lies below them.
 *
 * Stacks. valijson's parser and validator recurse with large frames, and
 * std::regex (pattern, patternProperties, format date, time and
 * date-time) recurses once per character of the string it matches: both
 * compiling and validating run on a thread of their own with a large
 * stack (32 MiB), waited for, so that an HTTP worker's small stack is
 * never at risk; and with a regex in the schema, strings and keys longer
 * than AI_SCHEMA_REGEX_INPUT_MAX bytes are refused as errors rather than
 * matched. No C++ exception leaves this interface.
 */
#ifndef PLX_AI_SCHEMA_H
#define PLX_AI_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define AI_SCHEMA_BYTES_MAX       65536  /* the schema as compact JSON */
#define AI_SCHEMA_DEPTH_MAX       32     /* nesting of the schema document */
#define AI_SCHEMA_INSTANCE_DEPTH  64     /* nesting of a validated value */
#define AI_SCHEMA_REGEX_INPUT_MAX 4096   /* bytes of a string matched by a regex */
#define AI_SCHEMA_ERRORS_MAX      20     /* errors reported per validation */
#define AI_SCHEMA_ERROR_LEN       320    /* bytes of one error line, at most */

typedef struct ai_schema ai_schema_t;

/* Compile schema (borrowed). NULL when it is refused or memory ran out;
 * then why (may be NULL) says why, e.g. "invalid JSON Schema at
 * /properties/done: Unrecognised JSON type name 'bool'". */
ai_schema_t *ai_schema_compile(json_t *schema, char *why, size_t whylen);
void ai_schema_free(ai_schema_t *s);

typedef enum ai_schema_verdict {
    AI_SCHEMA_VALID = 0,
    AI_SCHEMA_INVALID,      /* *errors lists why: at least one line */
    AI_SCHEMA_FAILED        /* could not validate (no memory, no thread):
                             * *errors holds one line saying so */
} ai_schema_verdict_t;

/* Validate instance (borrowed) against s. *errors (when errors is not
 * NULL) is set to a new JSON array of strings, empty when valid, at most
 * AI_SCHEMA_ERRORS_MAX entries (a last "... and N more errors" line when
 * there were more), or NULL when even that array could not be made. */
ai_schema_verdict_t ai_schema_validate(const ai_schema_t *s, json_t *instance,
                                       json_t **errors);

#ifdef __cplusplus
}
#endif
#endif
