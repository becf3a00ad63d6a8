/*
 * tasks.c - /api/v1/ai/generate, /api/v1/ai/analyze, /api/v1/ai/translate
 *
 *   generate   {template_id, variables, model?}: a team template (templates.c)
 *              rendered and sent; charged to the template's team. With an
 *              output schema the reply is JSON that must match it.
 *   analyze    {text, model?, team_id?}: summary, sentiment, keywords and
 *              entities, as JSON of a fixed schema
 *   translate  {text, target_language, source_language?, model?, team_id?}
 *
 * A reply that must be JSON is asked for in JSON mode (response_format
 * json_object) with the schema in the system message, read (a ```json
 * fence is tolerated) and validated (schema.h). When it does not match,
 * the model is asked once more, told what was wrong; a second miss is
 * 422 output_invalid for a template's schema (the template asked for
 * something the model cannot give) and 502 upstream_invalid_output for the
 * built-in ones, both listing the errors in "errors". Every call goes
 * through the gateway (quotas, usage rows, fallbacks); its failures are
 * answered by ai_reply_outcome.
 */
#include "config.h"

#include "ai.h"
#include "tasks.h"
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AI_TASK_TEXT_MAX 100000     /* characters of a text to analyze or translate */
#define AI_TASK_LANG_MAX 64         /* characters of a language name */

/* ---- built-in schemas ---------------------------------------------------- */

static const char analyze_schema[] =
    "{\"type\":\"object\","
    "\"required\":[\"summary\",\"sentiment\",\"keywords\",\"entities\"],"
    "\"properties\":{"
    "\"summary\":{\"type\":\"string\",\"minLength\":1},"
    "\"sentiment\":{\"type\":\"object\",\"required\":[\"label\",\"score\"],"
    "\"properties\":{"
    "\"label\":{\"enum\":[\"positive\",\"neutral\",\"negative\",\"mixed\"]},"
    "\"score\":{\"type\":\"number\",\"minimum\":-1,\"maximum\":1}}},"
    "\"keywords\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}},"
    "\"entities\":{\"type\":\"array\",\"items\":{\"type\":\"object\","
    "\"required\":[\"text\",\"type\"],"
    "\"properties\":{\"text\":{\"type\":\"string\"},\"type\":{\"type\":\"string\"}}}}}}";

static const char analyze_system[] =
    "You analyse the text the user sends. Give: summary, a few sentences in "
    "the language of the text; sentiment, its label (positive, neutral, "
    "negative or mixed) and a score from -1 (most negative) to 1 (most "
    "positive); keywords, the most important terms of the text; entities, "
    "the named things it mentions (people, organisations, places, dates, "
    "products, events), each with its text as written and a type (person, "
    "organization, location, date, product, event or other).";

static const char translate_schema[] =
    "{\"type\":\"object\",\"required\":[\"translation\",\"source_language\"],"
    "\"properties\":{"
    "\"translation\":{\"type\":\"string\"},"
    "\"source_language\":{\"type\":\"string\",\"minLength\":1,\"maxLength\":64}}}";

static const char json_instruction[] =
    "Reply with one JSON value and nothing else (no prose, no Markdown, no "
    "code fence). It must match this JSON Schema:\n";

/* ---- one task: a model call whose reply may have to match a schema ------- */

typedef struct task {
    plx_request_t     *r;
    const char        *kind;          /* usage kind */
    const char        *model;
    const char        *team_id;       /* charged too, or NULL */
    const ai_schema_t *schema;        /* NULL: the reply is free text */
    json_t            *messages;      /* owned; grows on a retry */
    /* what came of it */
    json_t            *output;        /* the parsed JSON, or the text */
    json_t            *errors;        /* why the last reply did not match */
    char               served[AI_NAME_MAX + 1];
    long               prompt_tokens, completion_tokens;
    bool               estimated;
    double             cost;
    int                attempts;
} task_t;

typedef enum task_end {
    TASK_DONE,          /* t->output holds the answer */
    TASK_MISMATCH,      /* twice a reply that does not match: t->errors */
    TASK_ANSWERED,      /* the gateway failed and that was answered */
    TASK_FAILED,        /* the reply could not be validated (logged) */
    TASK_NOMEM
} task_end_t;

static void task_clear(task_t *t)
{
    json_decref(t->messages);
    json_decref(t->output);
    json_decref(t->errors);
}

/* [{"role":"system",...},]{"role":"user",...} (new reference) */
static json_t *messages_new(const char *system, const char *user)
{
    json_t *m = json_array();

    if (m && system && *system
        && json_array_append_new(m, json_pack("{s:s, s:s}", "role", "system",
                                              "content", system)) != 0)
        goto fail;
    if (!m || json_array_append_new(m, json_pack("{s:s, s:s}", "role", "user",
                                                 "content", user)) != 0)
        goto fail;
    return m;
fail:
    json_decref(m);
    return NULL;
}

/* system + the JSON instruction with the schema (malloc'd) */
static char *system_with_schema(const char *system, json_t *schema)
{
    char *text = json_dumps(schema, JSON_COMPACT), *out = NULL;
    size_t len;

    if (!text)
        return NULL;
    len = strlen(system) + sizeof json_instruction + strlen(text) + 4;
    if ((out = malloc(len)) != NULL)
        snprintf(out, len, "%s%s%s%s", system, *system ? "\n\n" : "",
                 json_instruction, text);
    free(text);
    return out;
}

/* One call through the gateway: the reply's text (malloc'd) or NULL with
 * *end saying why (the failure already answered, or no memory). */
static char *task_attempt(task_t *t, task_end_t *end)
{
    ai_outcome_t o;
    ai_call_t c;
    json_t *format = NULL;
    char *text = NULL;
    plx_status_t st;

    memset(&o, 0, sizeof o);
    memset(&c, 0, sizeof c);
    if (t->schema && !(format = json_pack("{s:s}", "type", "json_object"))) {
        *end = TASK_NOMEM;
        return NULL;
    }
    c.r = t->r;
    c.user_id = plx_request_user_id(t->r);
    c.team_id = t->team_id;
    c.request_id = plx_request_id(t->r);
    c.kind = t->kind;
    c.model = t->model;
    c.params.messages = t->messages;
    c.params.response_format = format;
    st = ai_gateway_chat(&c, &o);
    json_decref(format);
    t->attempts++;
    if (st != PLX_OK) {
        if (t->attempts > 1)   /* the gateway's answer says the rest */
            plx_rlog(ai_module, t->r, PLX_LOG_INFO, "%s: the corrective call to model "
                     "\"%s\" failed", t->kind, t->model);
        ai_reply_outcome(t->r, &o);
        ai_outcome_clear(&o);
        *end = TASK_ANSWERED;
        return NULL;
    }
    t->prompt_tokens += o.usage.prompt_tokens;
    t->completion_tokens += o.usage.completion_tokens;
    t->estimated = t->estimated || o.estimated;
    t->cost += o.cost;
    snprintf(t->served, sizeof t->served, "%s", o.served_model[0] ? o.served_model : t->model);
    text = strdup(o.res.text ? o.res.text : "");
    ai_outcome_clear(&o);
    if (!text)
        *end = TASK_NOMEM;
    return text;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* p[0..n) without the white space around it, parsed */
static json_t *json_trimmed(const char *p, size_t n, json_error_t *err)
{
    while (n && is_space(*p))
        p++, n--;
    while (n && is_space(p[n - 1]))
        n--;
    return json_loadb(p, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, err);
}

/* The JSON of a reply: the whole reply, or else what is inside its first
 * ``` fence (a "```json" line, the JSON, "```"), whatever is around it.
 * NULL with *errors set (one line, about the whole reply) when neither
 * is JSON. */
static json_t *reply_json(const char *text, json_t **errors)
{
    const char *fence = strstr(text, "```"), *open, *close;
    json_error_t err, ignored;
    json_t *v = json_trimmed(text, strlen(text), &err);

    if (!v && fence && (open = strchr(fence, '\n')) != NULL) {
        open++;
        close = strstr(open, "```");
        v = json_trimmed(open, close ? (size_t)(close - open) : strlen(open), &ignored);
    }
    if (!v) {
        char line[AI_SCHEMA_ERROR_LEN];
        snprintf(line, sizeof line, "/: the reply is not JSON: %s (line %d, column %d)",
                 err.text, err.line, err.column);
        *errors = json_pack("[s]", line);
    }
    return v;
}

/* the errors as lines for the model: "- /items/0/done: expected boolean" */
static char *errors_text(json_t *errors)
{
    size_t i, len = 1;
    json_t *e;
    char *out;

    json_array_foreach(errors, i, e)
        len += json_string_length(e) + 3;
    if (!(out = malloc(len)))
        return NULL;
    out[0] = '\0';
    json_array_foreach(errors, i, e) {
        strcat(out, "- ");
        strcat(out, json_string_value(e));
        strcat(out, "\n");
    }
    return out;
}

/* after a reply that does not match: it and what was wrong, for the retry */
static bool add_correction(task_t *t, const char *reply)
{
    static const char head[] =
        "Your reply does not match the JSON Schema you were given:\n";
    static const char tail[] =
        "Reply again with the corrected JSON only.";
    char *list = errors_text(t->errors), *msg;
    size_t len;
    bool ok;

    if (!list)
        return false;
    len = sizeof head + strlen(list) + sizeof tail;
    msg = malloc(len);
    if (msg)
        snprintf(msg, len, "%s%s%s", head, list, tail);
    free(list);
    ok = msg
         && json_array_append_new(t->messages, json_pack("{s:s, s:s}", "role", "assistant",
                                                         "content", reply)) == 0
         && json_array_append_new(t->messages, json_pack("{s:s, s:s}", "role", "user",
                                                         "content", msg)) == 0;
    free(msg);
    return ok;
}

/* the reply parsed and validated: VALID with t->output; otherwise
 * t->errors says why (NULL on no memory); a reply that is not JSON is
 * INVALID */
static ai_schema_verdict_t reply_matches(task_t *t, const char *text)
{
    json_t *v = reply_json(text, &t->errors);
    ai_schema_verdict_t verdict;

    if (!v)
        return AI_SCHEMA_INVALID;
    verdict = ai_schema_validate(t->schema, v, &t->errors);
    if (verdict == AI_SCHEMA_VALID) {
        json_decref(t->errors);
        t->errors = NULL;
        t->output = v;
        return verdict;
    }
    json_decref(v);
    return verdict;
}

static task_end_t task_run(task_t *t)
{
    task_end_t end = TASK_DONE;
    ai_schema_verdict_t verdict;
    char *text = NULL;

    for (int attempt = 0; attempt < 2; attempt++) {
        if (!(text = task_attempt(t, &end)))
            return end;
        if (!t->schema) {
            /* the gateway hands out valid UTF-8; a NULL here is no memory */
            t->output = json_string(text);
            free(text);
            return t->output ? TASK_DONE : TASK_NOMEM;
        }
        json_decref(t->errors);
        t->errors = NULL;
        verdict = reply_matches(t, text);
        if (verdict != AI_SCHEMA_INVALID || !t->errors) {
            if (verdict == AI_SCHEMA_FAILED)
                plx_rlog(ai_module, t->r, PLX_LOG_ERROR, "%s: could not validate the reply: %s",
                         t->kind, json_string_value(json_array_get(t->errors, 0)));
            free(text);
            return verdict == AI_SCHEMA_VALID ? TASK_DONE
                 : verdict == AI_SCHEMA_FAILED ? TASK_FAILED : TASK_NOMEM;
        }
        plx_rlog(ai_module, t->r, PLX_LOG_INFO,
                 "%s: reply %d of model \"%s\" does not match its schema (%zu errors)",
                 t->kind, attempt + 1, t->served, json_array_size(t->errors));
        if (attempt == 0 && !add_correction(t, text)) {
            free(text);
            return TASK_NOMEM;
        }
        free(text);
    }
    return TASK_MISMATCH;
}

/* ---- answers --------------------------------------------------------------- */

static json_t *usage_json(const task_t *t)
{
    return json_pack("{s:I, s:I, s:I, s:b}",
                     "prompt_tokens", (json_int_t)t->prompt_tokens,
                     "completion_tokens", (json_int_t)t->completion_tokens,
                     "total_tokens", (json_int_t)(t->prompt_tokens + t->completion_tokens),
                     "estimated", t->estimated);
}

/* model, usage, cost and attempts into out; steals out; NULL on no memory */
static json_t *with_meta(json_t *out, const task_t *t)
{
    if (out && json_object_update_new(out, json_pack("{s:s, s:o, s:f, s:i}",
                                                     "model", t->served,
                                                     "usage", usage_json(t),
                                                     "cost", t->cost,
                                                     "attempts", t->attempts)) == 0)
        return out;
    json_decref(out);
    return NULL;
}

/* problem+json as ai_reply_outcome writes it (the core's fields and
 * "message"), plus "errors" (borrowed) */
static plx_status_t reply_mismatch(plx_request_t *r, int status, const char *code,
                                   const char *detail, json_t *errors)
{
    json_t *o = plx_problem_new(r, status, code, detail);

    if (!o)
        return PLX_ERR_NOMEM;
    json_object_set_new(o, "message", json_string(detail));
    json_object_set(o, "errors", errors);
    plx_rlog(ai_module, r, PLX_LOG_INFO, "answered %d \"%s\": %s", status, code, detail);
    return plx_reply_problem_json(r, status, o);
}

/* what the handler returns after a task that neither succeeded nor
 * mismatched: nothing more to say, or an error the core answers */
static plx_status_t end_status(task_end_t end)
{
    return end == TASK_ANSWERED ? PLX_OK
         : end == TASK_FAILED ? PLX_ERR_INTERNAL : PLX_ERR_NOMEM;
}

/* ---- request checks ----------------------------------------------------------- */

/* the body: an object whose members are all in fields; NULL with 400 sent */
static json_t *task_body(plx_request_t *r, const char *const *fields)
{
    json_t *body, *v;
    const char *key;

    if (plx_request_json(r, &body) != PLX_OK)
        return NULL;   /* the core answered 400 or 413 */
    if (!json_is_object(body)) {
        plx_reply_problem(r, 400, "invalid_body", "expected a JSON object");
        return NULL;
    }
    json_object_foreach(body, key, v) {
        bool known = false;
        for (int i = 0; fields[i] && !known; i++)
            known = strcmp(key, fields[i]) == 0;
        if (!known) {
            char shown[32];
            plx_reply_problem(r, 400, "invalid_body", "unknown field \"%s\"",
                              ai_task_excerpt(key, shown));
            return NULL;
        }
    }
    return body;
}

/* a text member: NULL when absent (and not required); false with 400 sent */
static bool text_field(plx_request_t *r, json_t *body, const char *name, bool required,
                       size_t max, bool multiline, const char **out)
{
    json_t *v = json_object_get(body, name);
    char why[160];
    const char *problem;

    *out = NULL;
    if (!v || (json_is_null(v) && !required)) {
        if (!required)
            return true;
        plx_reply_problem(r, 400, "invalid_body", "field \"%s\" is required", name);
        return false;
    }
    if ((problem = ai_task_text_problem(v, 1, max, multiline, why)) != NULL) {
        plx_reply_problem(r, 400, "invalid_body", "field \"%s\" %s", name, problem);
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool model_field(plx_request_t *r, json_t *body, const char **out)
{
    json_t *v = json_object_get(body, "model");

    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || !ai_task_model_name_valid(json_string_value(v))) {
        plx_reply_problem(r, 400, "invalid_body",
                          "field \"model\" must be a model name (letters, digits "
                          "and ._:/-, at most 128)");
        return false;
    }
    *out = json_string_value(v);
    return true;
}

/* the model asked for, else the template's, else the default; NULL with
 * 400 model_required sent */
static const char *pick_model(plx_request_t *r, const char *asked, const char *tpl)
{
    const char *m = asked ? asked : tpl ? tpl : ai_cfg.default_model;

    if (!m || !*m)
        plx_reply_problem(r, 400, "model_required",
                          "name a model in field \"model\": no default model is "
                          "configured (default_model in plugins.d/ai.conf)");
    return m && *m ? m : NULL;
}

/* team_id of analyze and translate: the caller must be a member who may
 * spend (viewers may not). PLX_OK with *out (NULL when absent), or the
 * answer sent (*answered) / an error for the core. */
static plx_status_t team_field(plx_request_t *r, json_t *body, const char **out,
                               bool *answered)
{
    json_t *v = json_object_get(body, "team_id");
    plx_role_t role;
    plx_status_t st;

    *out = NULL;
    *answered = true;
    if (!v || json_is_null(v)) {
        *answered = false;
        return PLX_OK;
    }
    if (!json_is_string(v) || !plx_uuid_valid(json_string_value(v)))
        return plx_reply_problem(r, 400, "invalid_body",
                                 "field \"team_id\" must be the UUID of one of your teams");
    if ((st = plx_team_role(r, json_string_value(v), &role)) != PLX_OK) {
        *answered = false;
        return st;
    }
    if (role == PLX_ROLE_NONE)
        return plx_reply_problem(r, 404, "not_found", "no such team");
    if (role < PLX_ROLE_MEMBER)
        return plx_reply_problem(r, 403, "forbidden",
                                 "viewers may not charge AI calls to the team");
    *out = json_string_value(v);
    *answered = false;
    return PLX_OK;
}

/* 503 ai_not_configured, answered as the gateway answers its failures */
static plx_status_t not_configured(plx_request_t *r)
{
    ai_outcome_t o;

    memset(&o, 0, sizeof o);
    o.status = 503;
    snprintf(o.code, sizeof o.code, "ai_not_configured");
    snprintf(o.detail, sizeof o.detail, "%s", ai_not_configured_detail);
    return ai_reply_outcome(r, &o);
}

/* ---- generate -------------------------------------------------------------------- */

static const char *const generate_fields[] = { "template_id", "variables", "model", NULL };

/* the variables of a request against the template's: every declared one
 * given, as a string or a number, nothing else; false with 400 sent */
static bool variables_given(plx_request_t *r, json_t *declared, json_t *given)
{
    size_t i;
    json_t *name, *v;
    const char *key;

    json_array_foreach(declared, i, name) {
        const char *n = json_string_value(name);
        if (!n)
            continue;
        v = json_object_get(given, n);
        if (!v) {
            plx_reply_problem(r, 400, "missing_variable",
                              "variable \"%s\" of the template is missing", n);
            return false;
        }
        if (!json_is_string(v) && !json_is_number(v)) {
            plx_reply_problem(r, 400, "invalid_variable",
                              "variable \"%s\" must be a string or a number", n);
            return false;
        }
        if (json_is_string(v) && json_string_length(v) > AI_TPL_VALUE_MAX) {
            plx_reply_problem(r, 400, "invalid_variable",
                              "variable \"%s\" must be at most %d bytes", n,
                              AI_TPL_VALUE_MAX);
            return false;
        }
    }
    json_object_foreach(given, key, v) {
        bool known = false;
        json_array_foreach(declared, i, name)
            known = known || (json_is_string(name)
                              && strcmp(json_string_value(name), key) == 0);
        if (!known) {
            plx_reply_problem(r, 400, "unknown_variable",
                              "variable \"%s\" is not declared by the template",
                              ai_tpl_var_name_valid(key) ? key : "(not a variable name)");
            return false;
        }
    }
    return true;
}

/* system and body rendered, system with the JSON instruction when the
 * template has a schema: the messages, or NULL with the answer sent
 * (*st PLX_OK) or *st an error */
static json_t *generate_messages(plx_request_t *r, json_t *tpl, json_t *given,
                                 json_t *schema, plx_status_t *st)
{
    char why[160], *system, *body, *full = NULL;
    json_t *m = NULL;

    *st = PLX_OK;
    system = ai_tpl_render(json_string_value(json_object_get(tpl, "system")), given,
                           AI_TPL_PROMPT_MAX, why, sizeof why);
    body = system ? ai_tpl_render(json_string_value(json_object_get(tpl, "body")), given,
                                  AI_TPL_PROMPT_MAX, why, sizeof why)
                  : NULL;
    if (!system || !body) {
        plx_reply_problem(r, 413, "prompt_too_large", "%s", why);
        goto done;
    }
    if (schema && !(full = system_with_schema(system, schema))) {
        *st = PLX_ERR_NOMEM;
        goto done;
    }
    if (!(m = messages_new(full ? full : system, body)))
        *st = PLX_ERR_NOMEM;
done:
    free(system);
    free(body);
    free(full);
    return m;
}

static plx_status_t generate(plx_request_t *r, void *arg)
{
    json_t *body = task_body(r, generate_fields), *tpl = NULL, *given, *schema_json;
    json_t *no_vars = NULL;
    const char *tpl_id, *asked, *model;
    task_t t = { .r = r, .kind = "generate" };
    ai_schema_t *schema = NULL;
    char why[512];
    plx_role_t role;
    plx_status_t st;
    task_end_t end;

    if (!body)
        return PLX_OK;
    tpl_id = json_string_value(json_object_get(body, "template_id"));
    if (!tpl_id || !plx_uuid_valid(tpl_id))
        return plx_reply_problem(r, 400, "invalid_body",
                                 "field \"template_id\" must be the UUID of a template");
    given = json_object_get(body, "variables");
    if (given && !json_is_object(given))
        return plx_reply_problem(r, 400, "invalid_body",
                                 "field \"variables\" must be an object of names and values");
    if (!model_field(r, body, &asked))
        return PLX_OK;
    if (!ai_configured())
        return not_configured(r);
    if ((st = ai_template_fetch(r, tpl_id, &tpl, &role)) == PLX_ERR_NOT_FOUND)
        return plx_reply_problem(r, 404, "not_found", "no such template");
    if (st != PLX_OK)
        return st;
    if (role < PLX_ROLE_MEMBER) {
        st = plx_reply_problem(r, 403, "forbidden",
                               "viewers may not generate with the team's templates "
                               "(the team is charged)");
        goto out;
    }
    if (!given && !(given = no_vars = json_object())) {
        st = PLX_ERR_NOMEM;
        goto out;
    }
    if (!variables_given(r, json_object_get(tpl, "variables"), given)
        || !(model = pick_model(r, asked, json_string_value(json_object_get(tpl, "model")))))
        goto out;
    schema_json = json_object_get(tpl, "output_schema");
    if (json_is_object(schema_json)
        && !(schema = ai_schema_compile(schema_json, why, sizeof why))) {
        /* it compiled when it was written */
        plx_rlog(ai_module, r, PLX_LOG_ERROR, "template %s: stored output schema refused: %s",
                 tpl_id, why);
        st = PLX_ERR_INTERNAL;
        goto out;
    }
    t.messages = generate_messages(r, tpl, given, schema ? schema_json : NULL, &st);
    if (!t.messages)
        goto out;
    t.model = model;
    t.team_id = json_string_value(json_object_get(tpl, "team_id"));
    t.schema = schema;
    end = task_run(&t);
    if (end == TASK_MISMATCH) {
        st = reply_mismatch(r, 422, "output_invalid",
                            "the model's reply did not match the template's output "
                            "schema, twice", t.errors);
    } else if (end != TASK_DONE) {
        st = end_status(end);
    } else {
        json_t *out = json_pack("{s:s?, s:s, s:O}", "id", plx_request_id(r),
                                "template_id", tpl_id, "output", t.output);
        st = (out = with_meta(out, &t)) ? plx_reply_json(r, 200, out) : PLX_ERR_NOMEM;
    }
out:
    task_clear(&t);
    ai_schema_free(schema);
    json_decref(no_vars);
    json_decref(tpl);
    return st;
}

/* ---- analyze and translate ----------------------------------------------------------- */

/* run t with a built-in schema; PLX_OK with t->output, or the answer sent
 * (*answered) */
static plx_status_t run_builtin(task_t *t, const char *schema_text, const char *system,
                                const char *user, bool *answered)
{
    json_t *schema_json = json_loads(schema_text, 0, NULL);
    ai_schema_t *schema = NULL;
    char why[512], *full = NULL;
    plx_status_t st = PLX_OK;
    task_end_t end;

    *answered = false;
    if (!schema_json || !(schema = ai_schema_compile(schema_json, why, sizeof why))) {
        plx_rlog(ai_module, t->r, PLX_LOG_ERROR, "built-in %s schema refused: %s",
                 t->kind, schema_json ? why : "not JSON");
        json_decref(schema_json);
        return PLX_ERR_INTERNAL;
    }
    if (!(full = system_with_schema(system, schema_json))
        || !(t->messages = messages_new(full, user))) {
        st = PLX_ERR_NOMEM;
        goto out;
    }
    t->schema = schema;
    end = task_run(t);
    if (end == TASK_MISMATCH) {
        *answered = true;
        st = reply_mismatch(t->r, 502, "upstream_invalid_output",
                            "the model's reply did not match the expected JSON, twice",
                            t->errors);
    } else if (end != TASK_DONE) {
        *answered = end == TASK_ANSWERED;
        st = end_status(end);
    }
out:
    t->schema = NULL;
    free(full);
    ai_schema_free(schema);
    json_decref(schema_json);
    return st;
}

/* what analyze and translate both read: text, model, team_id */
typedef struct task_input {
    const char *text, *model, *team_id;
} task_input_t;

/* false when the answer was sent or *st is an error for the core */
static bool task_input(plx_request_t *r, json_t *body, task_input_t *in, plx_status_t *st)
{
    const char *asked;
    bool answered;

    *st = PLX_OK;
    if (!text_field(r, body, "text", true, AI_TASK_TEXT_MAX, true, &in->text)
        || !model_field(r, body, &asked))
        return false;
    if (!ai_configured()) {
        *st = not_configured(r);
        return false;
    }
    if ((*st = team_field(r, body, &in->team_id, &answered)) != PLX_OK || answered)
        return false;
    return (in->model = pick_model(r, asked, NULL)) != NULL;
}

/* The fields of the analyze schema out of a validated reply (a new
 * reference; NULL on no memory): whatever else the model added is left. */
static json_t *analysis_json(json_t *o)
{
    json_t *sentiment = json_object_get(o, "sentiment"), *entities = json_array(), *e;
    size_t i;

    json_array_foreach(json_object_get(o, "entities"), i, e)
        if (json_array_append_new(entities, json_pack("{s:O, s:O}",
                                                      "text", json_object_get(e, "text"),
                                                      "type", json_object_get(e, "type")))) {
            json_decref(entities);
            return NULL;
        }
    return json_pack("{s:O, s:{s:O, s:O}, s:O, s:o}",
                     "summary", json_object_get(o, "summary"),
                     "sentiment", "label", json_object_get(sentiment, "label"),
                     "score", json_object_get(sentiment, "score"),
                     "keywords", json_object_get(o, "keywords"),
                     "entities", entities);
}

static const char *const analyze_fields[] = { "text", "model", "team_id", NULL };

static plx_status_t analyze(plx_request_t *r, void *arg)
{
    json_t *body = task_body(r, analyze_fields), *out;
    task_t t = { .r = r, .kind = "analyze" };
    task_input_t in;
    plx_status_t st;
    bool answered;

    if (!body || !task_input(r, body, &in, &st))
        return body ? st : PLX_OK;
    t.model = in.model;
    t.team_id = in.team_id;
    st = run_builtin(&t, analyze_schema, analyze_system, in.text, &answered);
    if (st != PLX_OK || answered) {
        task_clear(&t);
        return st;
    }
    out = analysis_json(t.output);
    out = with_meta(out, &t);
    task_clear(&t);
    return out ? plx_reply_json(r, 200, out) : PLX_ERR_NOMEM;
}

static const char *const translate_fields[] = {
    "text", "target_language", "source_language", "model", "team_id", NULL
};

static plx_status_t translate(plx_request_t *r, void *arg)
{
    json_t *body = task_body(r, translate_fields), *out;
    task_t t = { .r = r, .kind = "translate" };
    const char *target, *source;
    task_input_t in;
    plx_status_t st;
    bool answered;
    char *system;
    size_t len;

    if (!body)
        return PLX_OK;
    if (!text_field(r, body, "target_language", true, AI_TASK_LANG_MAX, false, &target)
        || !text_field(r, body, "source_language", false, AI_TASK_LANG_MAX, false, &source))
        return PLX_OK;
    if (!task_input(r, body, &in, &st))
        return st;
    len = strlen(target) * 2 + (source ? strlen(source) * 2 : 0) + 512;
    if (!(system = malloc(len)))
        return PLX_ERR_NOMEM;
    snprintf(system, len,
             "You translate the text the user sends into %s.%s%s%s Give: "
             "translation, the whole text in %s, nothing added or left out; "
             "source_language, %s.",
             target, source ? " The text is in " : "", source ? source : "",
             source ? "." : "", target,
             source ? "the language the text is in, as given" :
                      "the language the text is in, by its English name (\"French\")");
    t.model = in.model;
    t.team_id = in.team_id;
    st = run_builtin(&t, translate_schema, system, in.text, &answered);
    free(system);
    if (st != PLX_OK || answered) {
        task_clear(&t);
        return st;
    }
    out = json_pack("{s:O, s:s, s:s}", "translation", json_object_get(t.output, "translation"),
                    "source_language", source ? source
                        : json_string_value(json_object_get(t.output, "source_language")),
                    "target_language", target);
    out = with_meta(out, &t);
    task_clear(&t);
    return out ? plx_reply_json(r, 200, out) : PLX_ERR_NOMEM;
}

/* ---- registration ----------------------------------------------------------------- */

/* each calls a model: rate class "ai" */
#define TASK_ROUTE(pattern, fn, summary) \
    { "POST", pattern, fn, PLX_AUTH_SCOPE, "ai", "ai", summary, "ai" }

static const plx_route_def_t task_routes[] = {
    TASK_ROUTE("/api/v1/ai/generate", generate,
               "Generate from a team template with variables; with an "
               "output schema the reply is validated JSON"),
    TASK_ROUTE("/api/v1/ai/analyze", analyze,
               "Summary, sentiment, keywords and entities of a text"),
    TASK_ROUTE("/api/v1/ai/translate", translate,
               "Translate a text; the source language is detected when not given"),
};
#undef TASK_ROUTE

bool ai_task_routes(plx_module_t *m)
{
    return ai_template_routes(m) && plx_routes_add(m, task_routes, m) == PLX_OK;
}
