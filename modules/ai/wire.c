/*
 * wire.c - what the three provider files share: the HTTP request they
 * build, the reply text they append to, error classes and messages, and
 * small JSON readers. Nothing here does I/O.
 */
#include "config.h"

#include "provider.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* upstream texts quoted in messages are cut to this, so that a provider's
 * verbose error cannot crowd out the rest */
#define AI_QUOTE_MAX 240

const ai_wire_ops_t *ai_wire_ops(ai_kind_t kind)
{
    switch (kind) {
    case AI_KIND_OPENAI:    return &ai_wire_openai;
    case AI_KIND_ANTHROPIC: return &ai_wire_anthropic;
    case AI_KIND_GEMINI:    return &ai_wire_gemini;
    }
    return NULL;
}

/* ---- the HTTP request -------------------------------------------------- */

bool ai_http_header(ai_http_t *h, const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 3;
    char *line;

    if (h->nheaders >= AI_HTTP_MAX_HEADERS || !(line = malloc(n)))
        return false;
    snprintf(line, n, "%s: %s", name, value);
    h->headers[h->nheaders++] = line;
    return true;
}

bool ai_http_url(ai_http_t *h, const char *base, const char *suffix)
{
    size_t n = strlen(base) + strlen(suffix) + 1;

    free(h->url);
    if (!(h->url = malloc(n)))
        return false;
    snprintf(h->url, n, "%s%s", base, suffix);
    return true;
}

bool ai_http_body_take(ai_http_t *h, json_t *body)
{
    if (!body)
        return false;
    free(h->body);
    h->body = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    return h->body != NULL;
}

void ai_http_free(ai_http_t *h)
{
    free(h->url);
    for (size_t i = 0; i < h->nheaders; i++)
        free(h->headers[i]);
    free(h->body);
    memset(h, 0, sizeof *h);
}

/* ---- the reply --------------------------------------------------------- */

ai_err_t ai_decode_text(ai_decode_t *d, const char *text, size_t len)
{
    ai_result_t *res = d->res;
    char *p;

    if (len == 0)
        return AI_OK;
    if (res->text_len + len > d->max_text)
        return ai_decode_fail(d, AI_ERR_TOO_LARGE,
                              "provider \"%s\": the reply passed "
                              "max_response_bytes (%zu bytes)",
                              d->p->name, d->max_text);
    if (!(p = realloc(res->text, res->text_len + len + 1)))
        return ai_decode_fail(d, AI_ERR_PROTOCOL, "out of memory");
    memcpy(p + res->text_len, text, len);
    res->text = p;
    res->text_len += len;
    p[res->text_len] = '\0';
    d->progress = true;
    return d->on_text ? d->on_text(d->ud, text, len) : AI_OK;
}

void ai_msgf(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, len, fmt, ap);
    va_end(ap);
}

ai_err_t ai_decode_fail(ai_decode_t *d, ai_err_t err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(d->res->message, sizeof d->res->message, fmt, ap);
    va_end(ap);
    d->res->err = err;
    return err;
}

void ai_set_finish(ai_result_t *res, const char *reason)
{
    snprintf(res->finish_reason, sizeof res->finish_reason, "%s", reason);
}

/* ---- errors ------------------------------------------------------------ */

ai_err_t ai_err_from_status(int status, bool *retryable)
{
    *retryable = false;
    if (status == 401 || status == 403)
        return AI_ERR_AUTH;
    if (status == 402)
        return AI_ERR_QUOTA;
    *retryable = true;
    if (status == 408)
        return AI_ERR_TIMEOUT;
    if (status == 409 || status == 429)
        return AI_ERR_RATE;
    if (status >= 500 && status <= 599)
        return AI_ERR_SERVER;
    *retryable = false;
    if (status >= 400 && status <= 499)
        return AI_ERR_CLIENT;
    return AI_ERR_PROTOCOL;
}

/* s with every occurrence of key replaced by "***" (a provider may echo a
 * wrong key back in its message) */
static void mask_key(char *s, const char *key)
{
    size_t klen;
    char *p;

    if (!key || (klen = strlen(key)) < 4)
        return;
    while ((p = strstr(s, key))) {
        memcpy(p, "***", 3);
        memmove(p + 3, p + klen, strlen(p + klen) + 1);
    }
}

/* a one-line quote of an upstream text: control characters become spaces,
 * cut at AI_QUOTE_MAX bytes (on a UTF-8 boundary) */
static void quote(char *out, size_t outlen, const char *text)
{
    size_t n = 0, max = outlen - 1;

    if (max > AI_QUOTE_MAX)
        max = AI_QUOTE_MAX;
    for (; text[n] && n < max; n++)
        out[n] = (unsigned char)text[n] < 0x20 ? ' ' : text[n];
    /* cut inside a UTF-8 sequence: drop its first bytes too */
    if (((unsigned char)text[n] & 0xC0) == 0x80) {
        while (n > 0 && ((unsigned char)out[n - 1] & 0xC0) == 0x80)
            n--;
        if (n > 0 && (unsigned char)out[n - 1] >= 0xC0)
            n--;
    }
    out[n] = '\0';
}

void ai_httperr_format(const ai_provider_t *p, ai_httperr_t *out, int status,
                       const char *type, const char *text)
{
    char q[AI_QUOTE_MAX + 1] = "";

    if (out->err == AI_ERR_AUTH) {
        /* never quote what the provider says about a key */
        ai_msgf(out->message, sizeof out->message,
                "provider \"%s\": HTTP %d%s%s: the provider refused the API "
                "key (check provider.%s.api_key)", p->name, status,
                type ? " " : "", type ? type : "", p->name);
        return;
    }
    if (text)
        quote(q, sizeof q, text);
    mask_key(q, p->api_key);
    ai_msgf(out->message, sizeof out->message, "provider \"%s\": HTTP %d%s%s%s%s",
            p->name, status, type ? " " : "", type ? type : "",
            q[0] ? ": " : "", q);
}

/* ---- JSON -------------------------------------------------------------- */

const char *ai_jstr(json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

long ai_jlong(json_t *obj, const char *key, long def)
{
    json_t *v = json_object_get(obj, key);

    if (json_is_integer(v))
        return (long)json_integer_value(v);
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (d >= 0 && d < 9e15 && d == (double)(long)d)
            return (long)d;
    }
    return def;
}

bool ai_content_text(json_t *content, char **out)
{
    size_t idx, len = 0;
    json_t *part;
    char *buf;

    *out = NULL;
    if (!content || json_is_null(content))
        return (*out = strdup("")) != NULL;
    if (json_is_string(content))
        return (*out = strdup(json_string_value(content))) != NULL;
    if (!json_is_array(content))
        return false;
    json_array_foreach(content, idx, part) {
        const char *t = ai_jstr(part, "text");
        const char *type = ai_jstr(part, "type");
        if (!t || !type || strcmp(type, "text") != 0)
            return false;
        len += strlen(t);
    }
    if (!(buf = malloc(len + 1)))
        return false;
    len = 0;
    json_array_foreach(content, idx, part) {
        const char *t = ai_jstr(part, "text");
        size_t n = strlen(t);
        memcpy(buf + len, t, n);
        len += n;
    }
    buf[len] = '\0';
    *out = buf;
    return true;
}

bool ai_data_uri(const char *url, char *mime, size_t mimelen, const char **data)
{
    const char *semi, *comma;
    size_t n;

    if (!url || strncmp(url, "data:", 5) != 0)
        return false;
    url += 5;
    semi = strchr(url, ';');
    comma = strchr(url, ',');
    if (!semi || !comma || semi > comma || strncmp(semi, ";base64,", 8) != 0)
        return false;
    n = (size_t)(semi - url);
    if (n == 0 || n >= mimelen)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!isalnum((unsigned char)url[i]) && !strchr("/+.-", url[i]))
            return false;
    }
    memcpy(mime, url, n);
    mime[n] = '\0';
    *data = comma + 1;
    return true;
}

bool ai_stop_list(json_t *stop, json_t **out)
{
    size_t idx;
    json_t *v;

    *out = NULL;
    if (!stop || json_is_null(stop))
        return true;
    if (json_is_string(stop)) {
        *out = json_pack("[O]", stop);
        return *out != NULL;
    }
    if (!json_is_array(stop))
        return false;
    json_array_foreach(stop, idx, v) {
        if (!json_is_string(v))
            return false;
    }
    if (json_array_size(stop) == 0)
        return true;
    *out = json_deep_copy(stop);
    return *out != NULL;
}

char *ai_json_instruction(json_t *response_format, bool *is_json)
{
    const char *type = ai_jstr(response_format, "type");
    json_t *schema;
    char *text, *out;
    size_t n;

    *is_json = false;
    if (!type || strcmp(type, "text") == 0)
        return NULL;
    *is_json = true;
    schema = json_object_get(json_object_get(response_format, "json_schema"),
                             "schema");
    if (strcmp(type, "json_schema") != 0 || !schema)
        return strdup("Answer with one valid JSON object and nothing else: "
                      "no prose, no code fences.");
    if (!(text = json_dumps(schema, JSON_COMPACT)))
        return NULL;
    n = strlen(text) + 128;
    if ((out = malloc(n)))
        snprintf(out, n, "Answer with one JSON value that matches this JSON "
                 "Schema, and nothing else (no prose, no code fences): %s",
                 text);
    free(text);
    return out;
}
