/*
 * oai.c - pure helpers of the OpenAI-compatible surface and the WebSocket:
 * UTF-8 pieces of streamed text, OpenAI chat messages to canonical ones
 * and ids (see oai.h)
 */
#include "config.h"

#include "oai.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

/* ==== UTF-8 ============================================================== */

static const char replacement[] = "\xEF\xBF\xBD";   /* U+FFFD */

/* The sequence at s[0..left): its length when valid (RFC 3629: no
 * overlongs, no surrogates, nothing past U+10FFFF); 0 when invalid; -1
 * when it is a valid beginning cut off by the end of the input. */
static int utf8_seq(const unsigned char *s, size_t left)
{
    size_t n;
    unsigned lo = 0x80, hi = 0xBF;

    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xE0)
        lo = 0xA0;
    else if (s[0] == 0xED)
        hi = 0x9F;
    else if (s[0] == 0xF0)
        lo = 0x90;
    else if (s[0] == 0xF4)
        hi = 0x8F;
    for (size_t i = 1; i < n; i++) {
        if (i >= left)
            return -1;
        if (s[i] < (i == 1 ? lo : 0x80) || s[i] > (i == 1 ? hi : 0xBF))
            return 0;
    }
    return (int)n;
}

char *ai_utf8_piece(ai_utf8_carry_t *c, const char *in, size_t len, bool last,
                    size_t *out_len)
{
    size_t total, i = 0, o = 0;
    unsigned char *src;
    char *out;

    if (len > SIZE_MAX / 3 - 8)
        return NULL;
    total = c->n + len;
    src = malloc(total + 1);
    /* worst case: every byte becomes three */
    out = malloc(total * 3 + 1);
    if (!src || !out) {
        free(src);
        free(out);
        return NULL;
    }
    memcpy(src, c->held, c->n);
    if (len)
        memcpy(src + c->n, in, len);
    c->n = 0;
    while (i < total) {
        int n = utf8_seq(src + i, total - i);

        if (n > 0) {
            memcpy(out + o, src + i, (size_t)n);
            o += (size_t)n;
            i += (size_t)n;
        } else if (n < 0 && !last) {
            /* the tail is at most 3 bytes: keep it for the next piece */
            c->n = total - i;
            memcpy(c->held, src + i, c->n);
            break;
        } else {
            memcpy(out + o, replacement, 3);
            o += 3;
            i++;
            /* a cut-off sequence at the very end is one replacement */
            if (n < 0)
                break;
        }
    }
    out[o] = '\0';
    free(src);
    *out_len = o;
    return out;
}

/* ==== messages ========================================================== */

static bool __attribute__((format(printf, 3, 4)))
fail(ai_oai_err_t *err, const char *param, const char *fmt, ...)
{
    va_list ap;

    snprintf(err->param, sizeof err->param, "%s", param);
    err->code = "invalid_value";
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return false;
}

/* content: a string, or an array of text parts joined with "\n" (an
 * assistant's refusal parts count as text). *out is a new string. */
static bool content_text(json_t *content, const char *role, const char *where,
                         json_t **out, ai_oai_err_t *err)
{
    char param[96];
    size_t i, total = 0, o = 0;
    json_t *part;
    char *buf;

    if (json_is_string(content)) {
        *out = json_stringn(json_string_value(content), json_string_length(content));
        return *out != NULL;
    }
    snprintf(param, sizeof param, "%s.content", where);
    if (!json_is_array(content))
        return fail(err, param, "expected a string or an array of text parts");
    if (json_array_size(content) == 0)
        return fail(err, param, "expected at least one content part");
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *key = "text";

        snprintf(param, sizeof param, "%s.content[%zu].type", where, i);
        if (!type)
            return fail(err, param, "expected a content part with a string \"type\"");
        if (strcmp(type, "refusal") == 0 && strcmp(role, "assistant") == 0)
            key = "refusal";
        else if (strcmp(type, "text") != 0) {
            fail(err, param, "content parts of type \"%s\" are not supported: only text is",
                 type);
            err->code = "unsupported_value";
            return false;
        }
        snprintf(param, sizeof param, "%s.content[%zu].%s", where, i, key);
        if (!json_is_string(json_object_get(part, key)))
            return fail(err, param, "expected a string");
        total += json_string_length(json_object_get(part, key)) + 1;
    }
    buf = malloc(total + 1);
    if (!buf)
        return fail(err, where, "out of memory");
    json_array_foreach(content, i, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *t = json_object_get(part, strcmp(type, "text") == 0 ? "text" : "refusal");
        size_t n = json_string_length(t);

        if (i > 0)
            buf[o++] = '\n';
        memcpy(buf + o, json_string_value(t), n);
        o += n;
    }
    *out = json_stringn(buf, o);
    free(buf);
    return *out != NULL;
}

/* an assistant's tool_calls: [{"id","type":"function","function":{"name","arguments"}}] */
static bool tool_calls_ok(json_t *calls, const char *where, ai_oai_err_t *err)
{
    char param[96];
    size_t i;
    json_t *call;

    snprintf(param, sizeof param, "%s.tool_calls", where);
    if (!json_is_array(calls) || json_array_size(calls) == 0)
        return fail(err, param, "expected a non-empty array of tool calls");
    json_array_foreach(calls, i, call) {
        json_t *fn = json_object_get(call, "function");
        json_t *type;

        snprintf(param, sizeof param, "%s.tool_calls[%zu]", where, i);
        if (!json_is_string(json_object_get(call, "id"))
            || !json_is_string(json_object_get(fn, "name"))
            || !json_is_string(json_object_get(fn, "arguments")))
            return fail(err, param, "expected {\"id\", \"type\": \"function\", \"function\": "
                        "{\"name\", \"arguments\"}}");
        type = json_object_get(call, "type");
        if (type && (!json_is_string(type)
                     || strcmp(json_string_value(type), "function") != 0)) {
            fail(err, param, "only tool calls of type \"function\" are supported");
            err->code = "unsupported_value";
            return false;
        }
    }
    return true;
}

static const char *canonical_role(const char *role)
{
    static const char *const same[] = { "system", "user", "assistant", "tool", NULL };

    if (!role)
        return NULL;
    if (strcmp(role, "developer") == 0)
        return "system";
    for (size_t i = 0; same[i]; i++) {
        if (strcmp(role, same[i]) == 0)
            return same[i];
    }
    return NULL;
}

/* one message into a new canonical object, NULL with err */
static json_t *message_canonical(json_t *m, const char *where, ai_oai_err_t *err)
{
    char param[96];
    const char *role_in = json_string_value(json_object_get(m, "role"));
    const char *role = canonical_role(role_in);
    json_t *content = json_object_get(m, "content");
    json_t *calls = json_object_get(m, "tool_calls");
    json_t *text = NULL, *out;
    bool is_assistant = role && strcmp(role, "assistant") == 0;

    snprintf(param, sizeof param, "%s.role", where);
    if (!json_is_object(m)) {
        fail(err, where, "expected an object with \"role\" and \"content\"");
        return NULL;
    }
    if (!role) {
        if (role_in)
            fail(err, param, "unsupported role \"%s\": expected system, developer, user, "
                 "assistant or tool", role_in);
        else
            fail(err, param, "expected a string: system, developer, user, assistant or tool");
        return NULL;
    }
    if (calls && json_is_null(calls))
        calls = NULL;
    if (calls && (!is_assistant || !tool_calls_ok(calls, where, err))) {
        if (!is_assistant) {
            snprintf(param, sizeof param, "%s.tool_calls", where);
            fail(err, param, "only assistant messages carry tool calls");
        }
        return NULL;
    }
    if ((!content || json_is_null(content)) && is_assistant && calls) {
        text = json_string("");
    } else if (!content || json_is_null(content)) {
        snprintf(param, sizeof param, "%s.content", where);
        fail(err, param, "a %s message needs \"content\"", role_in);
        return NULL;
    } else if (!content_text(content, role, where, &text, err)) {
        return NULL;
    }
    out = json_pack("{s:s, s:o}", "role", role, "content", text);
    if (!out) {
        fail(err, where, "out of memory");
        return NULL;
    }
    if (calls)
        json_object_set(out, "tool_calls", calls);
    if (strcmp(role, "tool") == 0) {
        json_t *id = json_object_get(m, "tool_call_id");

        if (!json_is_string(id)) {
            snprintf(param, sizeof param, "%s.tool_call_id", where);
            fail(err, param, "a tool message needs a string \"tool_call_id\"");
            json_decref(out);
            return NULL;
        }
        json_object_set(out, "tool_call_id", id);
    }
    return out;
}

json_t *ai_oai_messages(json_t *in, const char *field, size_t max_messages,
                        ai_oai_err_t *err)
{
    char where[48];   /* "messages[4095]"; field is short */
    size_t i;
    json_t *m, *out;

    if (!json_is_array(in)) {
        fail(err, field, "expected an array of messages");
        return NULL;
    }
    if (json_array_size(in) == 0) {
        fail(err, field, "expected at least one message");
        return NULL;
    }
    if (json_array_size(in) > max_messages) {
        fail(err, field, "expected at most %zu messages", max_messages);
        return NULL;
    }
    out = json_array();
    if (!out) {
        fail(err, field, "out of memory");
        return NULL;
    }
    json_array_foreach(in, i, m) {
        json_t *c;

        snprintf(where, sizeof where, "%s[%zu]", field, i);
        c = message_canonical(m, where, err);
        if (!c || json_array_append_new(out, c) != 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}

/* ==== small things ======================================================== */

void ai_oai_id(char *out, size_t len, const char *prefix)
{
    static const char alnum[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char rnd[29];
    char tail[sizeof rnd + 1];
    size_t got = 0;

    while (got < sizeof rnd) {
        ssize_t n = getrandom(rnd + got, sizeof rnd - got, 0);

        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof rnd) {
        /* no entropy source: still unique within the process */
        static unsigned long counter;
        struct timespec ts;
        unsigned long long x;

        clock_gettime(CLOCK_REALTIME, &ts);
        x = (unsigned long long)ts.tv_sec * 1000000007ULL ^ (unsigned long long)ts.tv_nsec
            ^ ((unsigned long long)__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) << 40);
        for (size_t i = 0; i < sizeof rnd; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            rnd[i] = (unsigned char)(x >> 56);
        }
    }
    for (size_t i = 0; i < sizeof rnd; i++)
        tail[i] = alnum[rnd[i] % (sizeof alnum - 1)];
    tail[sizeof rnd] = '\0';
    snprintf(out, len, "%s%s", prefix, tail);
}

double ai_oai_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}
