/*
 * schema.cc - JSON Schema validation for the ai module (see schema.h)
 *
 * valijson 1.0 has no jansson adapter, so both the schema and the
 * instance travel as compact JSON text into nlohmann::json, which valijson
 * reads through its NlohmannJsonAdapter. Before valijson sees a schema, a
 * walk of our own refuses what would make it abort, loop or crash: remote
 * or dangling $refs, cycles among the keywords that apply a subschema to
 * the same value, bad regular expressions. Every entry point catches every
 * exception: C callers only ever see a verdict and text.
 */
#include "config.h"

/* GCC 12 at -O2 warns that std::regex's compiler uses a std::function
 * uninitialized (a false positive: GCC bug 105562) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "schema.h"

#include <pthread.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <regex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

/* valijson aborts the process on a bad schema unless told to throw */
#define VALIJSON_USE_EXCEPTIONS 1
#include <nlohmann/json.hpp>
#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

using json = nlohmann::json;

struct ai_schema {
    json             doc;      /* the schema, for readable error messages */
    valijson::Schema compiled;
    bool             regex;    /* uses pattern, patternProperties or a
                                * regex-checked format */
};

namespace {

/* Compiling and validating run on a thread with this much stack. */
const size_t work_stack = 32u * 1024 * 1024;
/* the longest chain of $refs followed to describe an error */
const int ref_hops_max = 16;
/* a regular expression longer than this is refused */
const size_t pattern_max = 1000;

/* ---- small text helpers -------------------------------------------------- */

void set_why(char *why, size_t len, const std::string &s)
{
    if (why && len > 0)
        snprintf(why, len, "%s", s.c_str());
}

/* s cut to at most max bytes on a UTF-8 character boundary, control
 * characters replaced, so that a line stays one clean line */
std::string clean(const std::string &s, size_t max)
{
    std::string out;
    size_t n = s.size();

    if (n > max) {
        n = max;
        while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80)
            n--;
    }
    out.reserve(n + 3);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = static_cast<unsigned char>(s[i]);
        out += c < 0x20 || c == 0x7f ? '?' : s[i];
    }
    if (n < s.size())
        out += "...";
    return out;
}

/* one JSON Pointer token (RFC 6901): '~' as "~0", '/' as "~1" */
std::string pointer_token(const std::string &s)
{
    std::string out;

    for (char c : s) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}

std::string type_name(const json &v)
{
    switch (v.type()) {
    case json::value_t::null:            return "null";
    case json::value_t::boolean:         return "boolean";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned: return "integer";
    case json::value_t::number_float:    return "number";
    case json::value_t::string:          return "string";
    case json::value_t::array:           return "array";
    case json::value_t::object:          return "object";
    default:                             return "value";
    }
}

bool starts_with(const std::string &s, const char *prefix)
{
    return s.compare(0, strlen(prefix), prefix) == 0;
}

/* ---- the schema walk ------------------------------------------------------- */

/* "%2F" and friends in a $ref fragment */
bool percent_decode(const std::string &in, std::string &out)
{
    for (size_t i = 0; i < in.size(); i++) {
        if (in[i] != '%') {
            out += in[i];
            continue;
        }
        if (i + 2 >= in.size() || !isxdigit(static_cast<unsigned char>(in[i + 1]))
            || !isxdigit(static_cast<unsigned char>(in[i + 2])))
            return false;
        out += static_cast<char>(std::stoi(in.substr(i + 1, 2), nullptr, 16));
        i += 2;
    }
    return true;
}

/* the node a local $ref names, or nullptr with why */
const json *resolve_ref(const json &root, const json &ref, std::string &why)
{
    std::string frag;

    if (!ref.is_string()) {
        why = "$ref must be a string";
        return nullptr;
    }
    const std::string &s = ref.get_ref<const std::string &>();
    if (s.empty() || s[0] != '#') {
        why = "$ref \"" + clean(s, 100) + "\" leaves the document: only local "
              "references (\"#/definitions/...\") are followed";
        return nullptr;
    }
    if (!percent_decode(s.substr(1), frag) || (!frag.empty() && frag[0] != '/')) {
        why = "$ref \"" + clean(s, 100) + "\" is not a JSON Pointer";
        return nullptr;
    }
    try {
        json::json_pointer p(frag);
        if (root.contains(p))
            return &root.at(p);
    } catch (const std::exception &) {
        /* a token that is not an index of an array: names nothing */
    }
    why = "$ref \"" + clean(s, 100) + "\" names nothing in the schema";
    return nullptr;
}

/* The keywords whose value is a schema applied to the same instance (an
 * edge of a potential cycle), to a part of it, or kept for $refs. */
const char *const same_one[] = { "not", "if", "then", "else" };
const char *const same_list[] = { "allOf", "anyOf", "oneOf" };
const char *const part_one[] = { "additionalProperties", "additionalItems",
                                 "contains", "propertyNames" };
const char *const part_map[] = { "properties", "patternProperties" };
const char *const defs_map[] = { "definitions", "$defs" };
const char *const regex_formats[] = { "date", "time", "date-time" };

class Walker {
public:
    explicit Walker(const json &root) : root_(root) {}

    /* false with why_ set when the schema must be refused */
    bool check()
    {
        if (!visit(root_, "", true))
            return false;
        return no_cycles();
    }

    bool regex() const { return regex_; }
    const std::string &why() const { return why_; }

private:
    const json &root_;
    bool regex_ = false;
    std::string why_;
    /* every schema node met, with its same-instance edges */
    std::vector<const json *> nodes_;
    std::unordered_map<const json *, std::vector<const json *>> same_;
    std::unordered_map<const json *, std::string> where_;

    bool fail(const std::string &at, const std::string &what)
    {
        why_ = "invalid JSON Schema at " + (at.empty() ? std::string("/") : at)
               + ": " + what;
        return false;
    }

    bool regex_ok(const std::string &at, const std::string &pattern)
    {
        if (pattern.size() > pattern_max)
            return fail(at, "a regular expression longer than "
                            + std::to_string(pattern_max) + " bytes");
        try {
            std::regex re(pattern);
        } catch (const std::exception &e) {
            return fail(at, "bad regular expression \"" + clean(pattern, 80)
                            + "\": " + e.what());
        }
        regex_ = true;
        return true;
    }

    /* a schema-valued member: visited when it is an object (booleans are
     * schemas too, with nothing inside) */
    bool child(const json &v, const std::string &at, bool same, const json *from)
    {
        if (!v.is_object())
            return true;
        if (same)
            same_[from].push_back(&v);
        return visit(v, at, false);
    }

    bool visit(const json &n, const std::string &at, bool is_root)
    {
        nodes_.push_back(&n);
        where_[&n] = at;
        same_[&n];
        for (const char *k : { "$id", "id" })
            if (!is_root && n.contains(k) && n[k].is_string())
                return fail(at, std::string(k) + " is allowed at the top only");
        if (n.contains("$ref")) {
            std::string why;
            const json *target = resolve_ref(root_, n["$ref"], why);
            if (!target)
                return fail(at, why);
            same_[&n].push_back(target);
        }
        if (n.contains("pattern") && n["pattern"].is_string()
            && !regex_ok(at + "/pattern", n["pattern"].get<std::string>()))
            return false;
        if (n.contains("patternProperties") && n["patternProperties"].is_object())
            for (const auto &it : n["patternProperties"].items())
                if (!regex_ok(at + "/patternProperties", it.key()))
                    return false;
        if (n.contains("format") && n["format"].is_string())
            for (const char *f : regex_formats)
                if (n["format"] == f)
                    regex_ = true;
        return visit_children(n, at);
    }

    bool visit_children(const json &n, const std::string &at)
    {
        for (const char *k : same_one)
            if (n.contains(k) && !child(n[k], at + "/" + k, true, &n))
                return false;
        for (const char *k : same_list)
            if (n.contains(k) && n[k].is_array())
                for (size_t i = 0; i < n[k].size(); i++)
                    if (!child(n[k][i], at + "/" + k + "/" + std::to_string(i), true, &n))
                        return false;
        if (n.contains("dependencies") && n["dependencies"].is_object())
            for (const auto &it : n["dependencies"].items())
                if (!child(it.value(), at + "/dependencies/" + pointer_token(it.key()),
                           true, &n))
                    return false;
        for (const char *k : part_one)
            if (n.contains(k) && !child(n[k], at + "/" + k, false, &n))
                return false;
        if (n.contains("items")) {
            const json &items = n["items"];
            if (items.is_array()) {
                for (size_t i = 0; i < items.size(); i++)
                    if (!child(items[i], at + "/items/" + std::to_string(i), false, &n))
                        return false;
            } else if (!child(items, at + "/items", false, &n)) {
                return false;
            }
        }
        for (const char *k : part_map)
            if (n.contains(k) && n[k].is_object())
                for (const auto &it : n[k].items())
                    if (!child(it.value(), at + "/" + k + "/" + pointer_token(it.key()),
                               false, &n))
                        return false;
        for (const char *k : defs_map)
            if (n.contains(k) && n[k].is_object())
                for (const auto &it : n[k].items())
                    if (!child(it.value(), at + "/" + k + "/" + pointer_token(it.key()),
                               false, &n))
                        return false;
        return true;
    }

    /* A cycle of same-instance edges makes valijson recurse without end.
     * Depth-first search with an explicit stack: the graph may be long. */
    bool no_cycles()
    {
        std::unordered_map<const json *, int> color;   /* 1 open, 2 done */

        for (const json *start : nodes_) {
            if (color[start])
                continue;
            std::vector<std::pair<const json *, size_t>> stack;
            stack.emplace_back(start, 0);
            color[start] = 1;
            while (!stack.empty()) {
                const json *n = stack.back().first;
                const std::vector<const json *> &edges = same_[n];
                size_t i = stack.back().second++;
                if (i >= edges.size()) {
                    color[n] = 2;
                    stack.pop_back();
                    continue;
                }
                const json *next = edges[i];
                if (color[next] == 1)
                    return fail(where_[n], "a cycle of $ref/allOf/anyOf/oneOf/not/"
                                           "if/then/else/dependencies that applies "
                                           "the schema to the same value for ever");
                if (color[next] == 0) {
                    color[next] = 1;
                    stack.emplace_back(next, 0);
                }
            }
        }
        return true;
    }
};

valijson::SchemaParser::Version draft_of(const json &doc, std::string &why)
{
    if (!doc.contains("$schema"))
        return valijson::SchemaParser::kDraft7;
    const json &v = doc["$schema"];
    std::string s = v.is_string() ? v.get<std::string>() : std::string();
    if (s.find("draft-04") != std::string::npos)
        return valijson::SchemaParser::kDraft4;
    if (s.find("draft-06") != std::string::npos || s.find("draft-07") != std::string::npos)
        return valijson::SchemaParser::kDraft7;
    why = "unsupported $schema \"" + clean(s, 100)
          + "\": expected JSON Schema draft-04, draft-06 or draft-07";
    return valijson::SchemaParser::kDraft3;   /* refused by the caller */
}

/* jansson value -> nlohmann value, through compact text */
bool to_nlohmann(json_t *v, json &out)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

    if (!text)
        return false;
    try {
        out = json::parse(text);
    } catch (...) {
        free(text);
        throw;
    }
    free(text);
    return true;
}

/* ---- errors ----------------------------------------------------------------- */

struct Problem {
    std::string pointer;       /* "" for the instance itself */
    std::string text;
    bool summary;              /* valijson's "failed to validate item #0..." */
};

const char *const summary_prefixes[] = {
    "Failed to validate against schema associated with property name",
    "Failed to validate item #",
    "Failed to validate against additional properties schema",
    "Failed to validate against schema associated with pattern",
    "Failed to validate against child schema #",
    "Failed to validate against dependent schema",
    "Failed to validate against a conditional schema",
};

/* tokens from valijson's context ("<root>", "[items]", "[0]") */
std::vector<std::string> context_tokens(const std::vector<std::string> &ctx)
{
    std::vector<std::string> tokens;

    for (const std::string &c : ctx) {
        if (c == "<root>")
            continue;
        if (c.size() >= 2 && c.front() == '[' && c.back() == ']')
            tokens.push_back(c.substr(1, c.size() - 2));
        else
            tokens.push_back(c);
    }
    return tokens;
}

const json *deref(const json &root, const json *n)
{
    for (int hop = 0; n && n->is_object() && n->contains("$ref") && hop < ref_hops_max; hop++) {
        std::string why;
        n = resolve_ref(root, (*n)["$ref"], why);
    }
    return n;
}

/* The schema node and the instance value at tokens, following properties,
 * additionalProperties, items and additionalItems (not the applicators:
 * then the node is unknown and *node is nullptr). */
void locate(const ai_schema *s, const json &inst, const std::vector<std::string> &tokens,
            const json **node, const json **value)
{
    const json *n = &s->doc, *v = &inst;

    for (const std::string &t : tokens) {
        n = deref(s->doc, n);
        const json *next_n = nullptr, *next_v = nullptr;
        if (v->is_object() && v->contains(t)) {
            next_v = &(*v)[t];
            if (n && n->is_object()) {
                if (n->contains("properties") && (*n)["properties"].is_object()
                    && (*n)["properties"].contains(t))
                    next_n = &(*n)["properties"][t];
                else if (n->contains("additionalProperties")
                         && (*n)["additionalProperties"].is_object())
                    next_n = &(*n)["additionalProperties"];
            }
        } else if (v->is_array()) {
            char *end;
            unsigned long i = strtoul(t.c_str(), &end, 10);
            if (t.empty() || *end || i >= v->size())
                break;
            next_v = &(*v)[i];
            if (n && n->is_object() && n->contains("items")) {
                const json &items = (*n)["items"];
                if (items.is_object())
                    next_n = &items;
                else if (items.is_array() && i < items.size())
                    next_n = &items[i];
                else if (items.is_array() && n->contains("additionalItems")
                         && (*n)["additionalItems"].is_object())
                    next_n = &(*n)["additionalItems"];
            }
        }
        if (!next_v) {
            *node = nullptr;
            *value = nullptr;
            return;
        }
        n = next_n;
        v = next_v;
    }
    *node = deref(s->doc, n);
    *value = v;
}

/* "string or null" from a node's "type" */
std::string expected_types(const json *node)
{
    std::string out;

    if (!node || !node->is_object() || !node->contains("type"))
        return out;
    const json &t = (*node)["type"];
    if (t.is_string())
        return t.get<std::string>();
    if (t.is_array())
        for (const auto &one : t)
            if (one.is_string())
                out += (out.empty() ? "" : " or ") + one.get<std::string>();
    return out;
}

/* valijson's numbers come from std::to_string(double): "1.000000" -> "1",
 * "0.500000" -> "0.5" */
std::string trim_zeros(const std::string &d)
{
    std::string out;
    size_t i = 0;

    while (i < d.size()) {
        size_t j = i;
        while (j < d.size() && isdigit(static_cast<unsigned char>(d[j])))
            j++;
        if (j > i && j + 1 < d.size() && d[j] == '.'
            && isdigit(static_cast<unsigned char>(d[j + 1]))) {
            size_t k = j + 1;
            while (k < d.size() && isdigit(static_cast<unsigned char>(d[k])))
                k++;
            size_t end = k;
            while (end > j + 1 && d[end - 1] == '0')
                end--;
            out += d.substr(i, (end == j + 1 ? j : end) - i);
            i = k;
        } else if (j > i) {
            out += d.substr(i, j - i);
            i = j;
        } else {
            out += d[i++];
        }
    }
    return out;
}

std::string sentence(std::string d)
{
    if (!d.empty() && d.back() == '.')
        d.pop_back();
    if (!d.empty() && d[0] >= 'A' && d[0] <= 'Z')
        d[0] = static_cast<char>(d[0] - 'A' + 'a');
    return trim_zeros(d);
}

/* the text after the last "'" pair: 'name'. */
std::string quoted_name(const std::string &d)
{
    size_t end = d.rfind('\'');
    size_t start = end == std::string::npos || end == 0 ? std::string::npos
                                                        : d.rfind('\'', end - 1);
    if (start == std::string::npos)
        return std::string();
    return d.substr(start + 1, end - start - 1);
}

std::string describe(const ai_schema *s, const json &inst,
                     const std::vector<std::string> &tokens, const std::string &d)
{
    const json *node, *value;

    if (d == "Value type not permitted by 'type' constraint.") {
        locate(s, inst, tokens, &node, &value);
        std::string want = expected_types(node);
        std::string found = value ? type_name(*value) : std::string("another type");
        if (want.empty())
            return "a value of type " + found + " is not allowed here";
        return "expected " + want + ", found " + found;
    }
    if (starts_with(d, "Missing required property '"))
        return "missing required property \"" + quoted_name(d) + "\"";
    if (starts_with(d, "Object contains a property that could not be validated"))
        return "unexpected property \"" + quoted_name(d) + "\"";
    if (d == "Failed to match against any enum values.") {
        locate(s, inst, tokens, &node, &value);
        if (node && node->is_object() && node->contains("enum"))
            return "expected one of " + clean((*node)["enum"].dump(), 160);
        return "not one of the allowed values";
    }
    if (d == "Failed to match expected value set by 'const' constraint.") {
        locate(s, inst, tokens, &node, &value);
        if (node && node->is_object() && node->contains("const"))
            return "expected " + clean((*node)["const"].dump(), 160);
        return "not the expected constant";
    }
    return sentence(d);
}

/* valijson's results as our lines: summaries dropped where a precise error
 * lies at or below them, duplicates dropped, at most AI_SCHEMA_ERRORS_MAX */
std::vector<std::string> collect(const ai_schema *s, const json &inst,
                                 valijson::ValidationResults &res)
{
    std::vector<Problem> all;
    std::vector<std::string> lines;
    valijson::ValidationResults::Error e;
    size_t more = 0;

    while (res.popError(e)) {
        std::vector<std::string> tokens = context_tokens(e.context);
        Problem p;
        for (const std::string &t : tokens)
            p.pointer += "/" + pointer_token(t);
        p.summary = false;
        for (const char *prefix : summary_prefixes)
            p.summary = p.summary || starts_with(e.description, prefix);
        p.text = describe(s, inst, tokens, e.description);
        all.push_back(std::move(p));
    }
    for (const Problem &p : all) {
        if (p.summary) {
            bool covered = false;
            for (const Problem &q : all)
                covered = covered || (!q.summary && (q.pointer == p.pointer
                          || starts_with(q.pointer, (p.pointer + "/").c_str())));
            if (covered)
                continue;
        }
        std::string ptr = clean(p.pointer.empty() ? "/" : p.pointer, 200);
        std::string line = clean(ptr + ": " + p.text, AI_SCHEMA_ERROR_LEN - 4);
        bool seen = false;
        for (const std::string &l : lines)
            seen = seen || l == line;
        if (seen)
            continue;
        if (lines.size() < AI_SCHEMA_ERRORS_MAX)
            lines.push_back(line);
        else
            more++;
    }
    if (more)
        lines.push_back("... and " + std::to_string(more) + " more errors");
    if (lines.empty())
        lines.push_back("/: does not match the schema");
    return lines;
}

/* ---- checks before validating ------------------------------------------------ */

/* depth, and with regexes the length of strings and keys */
bool precheck(const json &v, const std::string &at, int depth, bool regex,
              std::vector<std::string> &lines)
{
    const std::string where = at.empty() ? "/" : clean(at, 200);

    if (depth > AI_SCHEMA_INSTANCE_DEPTH) {
        lines.push_back(where + ": nested deeper than "
                        + std::to_string(AI_SCHEMA_INSTANCE_DEPTH) + " levels");
        return false;
    }
    if (regex && v.is_string()
        && v.get_ref<const std::string &>().size() > AI_SCHEMA_REGEX_INPUT_MAX) {
        lines.push_back(where + ": a string longer than "
                        + std::to_string(AI_SCHEMA_REGEX_INPUT_MAX)
                        + " bytes cannot be checked by this schema");
        return false;
    }
    if (v.is_object()) {
        for (const auto &it : v.items()) {
            std::string child = at + "/" + pointer_token(it.key());
            if (regex && it.key().size() > AI_SCHEMA_REGEX_INPUT_MAX) {
                lines.push_back(where + ": a key longer than "
                                + std::to_string(AI_SCHEMA_REGEX_INPUT_MAX)
                                + " bytes cannot be checked by this schema");
                return false;
            }
            if (!precheck(it.value(), child, depth + 1, regex, lines))
                return false;
        }
    } else if (v.is_array()) {
        for (size_t i = 0; i < v.size(); i++)
            if (!precheck(v[i], at + "/" + std::to_string(i), depth + 1, regex, lines))
                return false;
    }
    return true;
}

/* depth of a jansson value, without going deeper than limit + 1 */
bool jansson_depth_ok(json_t *v, int depth, int limit)
{
    const char *key;
    json_t *child;
    size_t i;

    if (depth > limit)
        return false;
    if (json_is_object(v)) {
        json_object_foreach(v, key, child)
            if (!jansson_depth_ok(child, depth + 1, limit))
                return false;
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, child)
            if (!jansson_depth_ok(child, depth + 1, limit))
                return false;
    }
    return true;
}

/* ---- the thread with a large stack ---------------------------------------------- */

/* valijson's parser and validator recurse with large frames (larger still
 * under AddressSanitizer), std::regex recurses per character, and an HTTP
 * worker's stack is small: both run on a thread of their own. */
typedef void (*work_fn)(void *arg);

struct Work {
    work_fn fn;
    void *arg;
};

void *work_thread(void *p)
{
    Work *w = static_cast<Work *>(p);
    w->fn(w->arg);
    return nullptr;
}

/* fn(arg) on a thread with work_stack bytes of stack, waited for; false
 * when no thread could be started (fn did not run) */
bool on_large_stack(work_fn fn, void *arg)
{
    Work w = { fn, arg };
    pthread_attr_t attr;
    pthread_t t;
    bool ok;

    if (pthread_attr_init(&attr) != 0)
        return false;
    ok = pthread_attr_setstacksize(&attr, work_stack) == 0
         && pthread_create(&t, &attr, work_thread, &w) == 0;
    pthread_attr_destroy(&attr);
    if (ok)
        pthread_join(t, nullptr);
    return ok;
}

/* ---- compiling ------------------------------------------------------------------- */

struct Compile {
    json_t *schema;          /* borrowed */
    ai_schema *out;          /* the result, or nullptr with why */
    std::string why;
};

void compile_work(void *arg) noexcept
{
    Compile *c = static_cast<Compile *>(arg);
    ai_schema *s = nullptr;

    try {
        s = new ai_schema();
        s->regex = false;
        if (!to_nlohmann(c->schema, s->doc))
            throw std::bad_alloc();
        valijson::SchemaParser::Version draft = draft_of(s->doc, c->why);
        if (c->why.empty()) {
            Walker walker(s->doc);
            if (!walker.check()) {
                c->why = walker.why();
            } else {
                s->regex = walker.regex();
                valijson::SchemaParser parser(draft);
                valijson::adapters::NlohmannJsonAdapter adapter(s->doc);
                parser.populateSchema(adapter, s->compiled);
                c->out = s;
                return;
            }
        }
    } catch (const std::bad_alloc &) {
        c->why = "out of memory";
    } catch (const std::exception &e) {
        try {
            c->why = std::string("invalid JSON Schema: ") + e.what();
        } catch (...) {
            c->why.clear();
        }
    } catch (...) {
        c->why = "invalid JSON Schema";
    }
    delete s;
}

/* ---- validating ------------------------------------------------------------------- */

struct Job {
    const ai_schema *s;
    const json *inst;
    bool valid;
    bool failed;
    std::vector<std::string> lines;
};

void validate_work(void *arg) noexcept
{
    Job *j = static_cast<Job *>(arg);

    try {
        valijson::Validator validator(valijson::Validator::kStrongTypes);
        valijson::ValidationResults res;
        valijson::adapters::NlohmannJsonAdapter target(*j->inst);
        j->valid = validator.validate(j->s->compiled, target, &res);
        if (!j->valid)
            j->lines = collect(j->s, *j->inst, res);
    } catch (const std::exception &e) {
        j->failed = true;
        try {
            j->lines.assign(1, std::string("/: could not validate: ") + e.what());
        } catch (...) {
            j->lines.clear();
        }
    } catch (...) {
        j->failed = true;
        j->lines.clear();
    }
}

json_t *lines_json(const std::vector<std::string> &lines)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < lines.size(); i++)
        if (json_array_append_new(a, json_string(lines[i].c_str())) != 0) {
            json_decref(a);
            return nullptr;
        }
    return a;
}

ai_schema_verdict_t answer(json_t **errors, ai_schema_verdict_t v,
                           const std::vector<std::string> &lines)
{
    if (errors)
        *errors = lines_json(lines);
    return v;
}

} // namespace

/* ---- the C interface ------------------------------------------------------------ */

extern "C" ai_schema_t *ai_schema_compile(json_t *schema, char *why, size_t whylen)
{
    set_why(why, whylen, "");
    if (!json_is_object(schema)) {
        set_why(why, whylen, "a JSON Schema must be a JSON object");
        return nullptr;
    }
    if (!jansson_depth_ok(schema, 0, AI_SCHEMA_DEPTH_MAX)) {
        set_why(why, whylen, "the schema is nested deeper than "
                             + std::to_string(AI_SCHEMA_DEPTH_MAX) + " levels");
        return nullptr;
    }
    try {
        char *text = json_dumps(schema, JSON_COMPACT);
        size_t len = text ? strlen(text) : 0;
        free(text);
        if (!text) {
            set_why(why, whylen, "out of memory");
            return nullptr;
        }
        if (len > AI_SCHEMA_BYTES_MAX) {
            set_why(why, whylen, "the schema is larger than "
                                 + std::to_string(AI_SCHEMA_BYTES_MAX) + " bytes");
            return nullptr;
        }
        Compile c{ schema, nullptr, {} };
        if (!on_large_stack(compile_work, &c)) {
            set_why(why, whylen, "could not start a thread to compile the schema");
            return nullptr;
        }
        if (!c.out)
            set_why(why, whylen, c.why.empty() ? std::string("invalid JSON Schema") : c.why);
        return c.out;
    } catch (...) {
        set_why(why, whylen, "out of memory");
        return nullptr;
    }
}

extern "C" void ai_schema_free(ai_schema_t *s)
{
    delete s;
}

extern "C" ai_schema_verdict_t ai_schema_validate(const ai_schema_t *s,
                                                  json_t *instance, json_t **errors)
{
    if (errors)
        *errors = nullptr;
    try {
        if (!s || !instance)
            return answer(errors, AI_SCHEMA_FAILED, { "/: nothing to validate" });
        if (!jansson_depth_ok(instance, 0, AI_SCHEMA_INSTANCE_DEPTH))
            return answer(errors, AI_SCHEMA_INVALID,
                          { "/: nested deeper than "
                            + std::to_string(AI_SCHEMA_INSTANCE_DEPTH) + " levels" });
        json inst;
        if (!to_nlohmann(instance, inst))
            return answer(errors, AI_SCHEMA_FAILED, { "/: out of memory" });
        std::vector<std::string> lines;
        if (!precheck(inst, "", 0, s->regex, lines))
            return answer(errors, AI_SCHEMA_INVALID, lines);
        Job job{ s, &inst, false, false, {} };
        if (!on_large_stack(validate_work, &job))
            return answer(errors, AI_SCHEMA_FAILED,
                          { "/: could not start a thread to validate" });
        if (job.failed)
            return answer(errors, AI_SCHEMA_FAILED, job.lines);
        return answer(errors, job.valid ? AI_SCHEMA_VALID : AI_SCHEMA_INVALID, job.lines);
    } catch (...) {
        if (errors && !*errors)
            *errors = json_array();
        return AI_SCHEMA_FAILED;
    }
}
