/*
 * test_router.c - the route table on its own: patterns, matching order,
 * parameter decoding, 404 against 405, duplicates and malformed patterns
 */
#include "config.h"
#include "router.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* owners are opaque to the router: any distinct addresses will do */
static int owner_a_tag, owner_b_tag;
#define OWNER_A ((plx_module_t *)&owner_a_tag)
#define OWNER_B ((plx_module_t *)&owner_b_tag)

static plx_status_t handler_one(plx_request_t *r, void *arg)
{
    (void)r; (void)arg;
    return PLX_OK;
}

static plx_status_t handler_two(plx_request_t *r, void *arg)
{
    (void)r; (void)arg;
    return PLX_OK;
}

static const plx_ws_handlers_t ws_handlers = { .size = sizeof(plx_ws_handlers_t) };

static plx_status_t add_full(core_router_t *rt, plx_module_t *owner,
                             const char *method, const char *pattern,
                             plx_handler_fn fn, const core_route_t **existing)
{
    core_route_t r = {
        .method = (char *)method, .pattern = (char *)pattern, .owner = owner,
        .fn = fn, .auth = PLX_AUTH_PUBLIC,
    };
    if (method && strcmp(method, "WS") == 0) {
        r.fn = NULL;
        r.ws = &ws_handlers;
    }
    return core_router_add(rt, &r, existing);
}

static plx_status_t add(core_router_t *rt, const char *method, const char *pattern)
{
    return add_full(rt, OWNER_A, method, pattern, handler_one, NULL);
}

static int setup(void **state)
{
    *state = core_router_new();
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    core_router_free(*state);
    return 0;
}

/* match and return the pattern of the route found, or NULL */
static const char *match_pattern(core_router_t *rt, const char *method,
                                 const char *path, core_route_match_t *m)
{
    core_router_match(rt, method, path, m);
    return m->route ? m->route->pattern : NULL;
}

static void test_literal_match(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/health"), PLX_OK);
    assert_int_equal(add(rt, "GET", "/api/v1/example/hello"), PLX_OK);
    assert_string_equal(match_pattern(rt, "GET", "/health", &m), "/health");
    assert_int_equal(m.nparams, 0);
    assert_true(m.path_known);
    assert_ptr_equal(m.route->owner, OWNER_A);
    assert_ptr_equal(m.route->fn, handler_one);
    core_route_match_clear(&m);
    assert_string_equal(match_pattern(rt, "GET", "/api/v1/example/hello", &m),
                        "/api/v1/example/hello");
    core_route_match_clear(&m);
}

static void test_root_pattern(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/"), PLX_OK);
    assert_string_equal(match_pattern(rt, "GET", "/", &m), "/");
    core_route_match_clear(&m);
    assert_null(match_pattern(rt, "GET", "/x", &m));
    assert_false(m.path_known);
}

static void test_params(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/teams/{team}/members/{user_id}"), PLX_OK);
    assert_non_null(match_pattern(rt, "GET", "/teams/t1/members/u-9", &m));
    assert_int_equal(m.nparams, 2);
    assert_string_equal(m.names[0], "team");
    assert_string_equal(m.values[0], "t1");
    assert_string_equal(m.names[1], "user_id");
    assert_string_equal(m.values[1], "u-9");
    core_route_match_clear(&m);
    assert_int_equal(m.nparams, 0);
    assert_null(m.route);
}

static void test_param_needs_a_segment(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/items/{id}"), PLX_OK);
    assert_null(match_pattern(rt, "GET", "/items/", &m));
    assert_null(match_pattern(rt, "GET", "/items", &m));
    assert_null(match_pattern(rt, "GET", "/items/a/b", &m));
    assert_null(match_pattern(rt, "GET", "/items//", &m));
}

static void test_percent_decoding(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/items/{id}"), PLX_OK);
    assert_int_equal(add(rt, "GET", "/files/report"), PLX_OK);

    assert_non_null(match_pattern(rt, "GET", "/items/a%2Fb%20c", &m));
    assert_string_equal(m.values[0], "a/b c");
    core_route_match_clear(&m);

    assert_non_null(match_pattern(rt, "GET", "/items/%C3%A9t%c3%a9", &m));
    assert_string_equal(m.values[0], "\xc3\xa9t\xc3\xa9");
    core_route_match_clear(&m);

    /* "%25" is a literal percent sign, decoded once only */
    assert_non_null(match_pattern(rt, "GET", "/items/100%2541", &m));
    assert_string_equal(m.values[0], "100%41");
    core_route_match_clear(&m);

    /* literals compare against the decoded segment */
    assert_string_equal(match_pattern(rt, "GET", "/files/rep%6Frt", &m), "/files/report");
    core_route_match_clear(&m);
}

static void test_bad_encoding_never_matches(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/items/{id}"), PLX_OK);
    assert_null(match_pattern(rt, "GET", "/items/%zz", &m));
    assert_null(match_pattern(rt, "GET", "/items/abc%", &m));
    assert_null(match_pattern(rt, "GET", "/items/abc%4", &m));
    assert_null(match_pattern(rt, "GET", "/items/a%00b", &m));
    assert_false(m.path_known);
    /* dot segments are never parameter values */
    assert_null(match_pattern(rt, "GET", "/items/..", &m));
    assert_null(match_pattern(rt, "GET", "/items/%2e%2E", &m));
    assert_null(match_pattern(rt, "GET", "/items/.", &m));
    /* a relative or empty path */
    assert_null(match_pattern(rt, "GET", "items/1", &m));
    assert_null(match_pattern(rt, "GET", "", &m));
}

static void test_literal_beats_param(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    /* registration order must not matter */
    assert_int_equal(add(rt, "GET", "/users/{id}"), PLX_OK);
    assert_int_equal(add(rt, "GET", "/users/me"), PLX_OK);
    assert_string_equal(match_pattern(rt, "GET", "/users/me", &m), "/users/me");
    assert_int_equal(m.nparams, 0);
    core_route_match_clear(&m);
    assert_string_equal(match_pattern(rt, "GET", "/users/42", &m), "/users/{id}");
    assert_string_equal(m.values[0], "42");
    core_route_match_clear(&m);
}

static void test_backtracking(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    /* the literal branch is tried first but leads nowhere for .../c */
    assert_int_equal(add(rt, "GET", "/a/b/d"), PLX_OK);
    assert_int_equal(add(rt, "GET", "/a/{x}/c"), PLX_OK);
    assert_string_equal(match_pattern(rt, "GET", "/a/b/c", &m), "/a/{x}/c");
    assert_string_equal(m.values[0], "b");
    core_route_match_clear(&m);
    assert_string_equal(match_pattern(rt, "GET", "/a/b/d", &m), "/a/b/d");
    core_route_match_clear(&m);
}

static void test_literal_node_without_method_falls_back(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "POST", "/things/new"), PLX_OK);
    assert_int_equal(add(rt, "GET", "/things/{id}"), PLX_OK);
    assert_string_equal(match_pattern(rt, "GET", "/things/new", &m), "/things/{id}");
    assert_string_equal(m.values[0], "new");
    core_route_match_clear(&m);
    assert_string_equal(match_pattern(rt, "POST", "/things/new", &m), "/things/new");
    core_route_match_clear(&m);
}

static void test_404_and_405(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/api/v1/things"), PLX_OK);
    assert_int_equal(add(rt, "POST", "/api/v1/things"), PLX_OK);
    assert_int_equal(add(rt, "DELETE", "/api/v1/things/{id}"), PLX_OK);

    assert_null(match_pattern(rt, "PUT", "/api/v1/things", &m));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "GET, POST");

    assert_null(match_pattern(rt, "GET", "/api/v1/things/7", &m));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "DELETE");

    assert_null(match_pattern(rt, "GET", "/api/v1/nothing", &m));
    assert_false(m.path_known);
    assert_string_equal(m.allow, "");

    /* a prefix of a route is not a route */
    assert_null(match_pattern(rt, "GET", "/api/v1", &m));
    assert_false(m.path_known);
    /* nor is a trailing slash */
    assert_null(match_pattern(rt, "GET", "/api/v1/things/", &m));
    assert_false(m.path_known);
}

static void test_allow_collects_every_matching_pattern(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "POST", "/jobs/run"), PLX_OK);
    assert_int_equal(add(rt, "DELETE", "/jobs/{id}"), PLX_OK);
    assert_int_equal(add(rt, "POST", "/jobs/{id}"), PLX_OK);
    assert_null(match_pattern(rt, "GET", "/jobs/run", &m));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "POST, DELETE");
}

static void test_duplicate(void **state)
{
    core_router_t *rt = *state;
    const core_route_t *existing = (const core_route_t *)1;

    assert_int_equal(add_full(rt, OWNER_A, "GET", "/dup", handler_one, &existing), PLX_OK);
    assert_null(existing);
    assert_int_equal(add_full(rt, OWNER_B, "GET", "/dup", handler_two, &existing),
                     PLX_ERR_CONFLICT);
    assert_non_null(existing);
    assert_ptr_equal(existing->owner, OWNER_A);
    assert_string_equal(existing->pattern, "/dup");
    assert_ptr_equal(existing->fn, handler_one);
    /* another method on the same pattern is no duplicate */
    assert_int_equal(add_full(rt, OWNER_B, "POST", "/dup", handler_two, &existing), PLX_OK);
    assert_int_equal(core_router_count(rt), 2);
}

static void test_duplicate_other_param_names(void **state)
{
    core_router_t *rt = *state;
    const core_route_t *existing = NULL;
    core_route_match_t m;

    assert_int_equal(add_full(rt, OWNER_A, "GET", "/u/{id}/x/{k}", handler_one, &existing),
                     PLX_OK);
    assert_int_equal(add_full(rt, OWNER_B, "GET", "/u/{user}/x/{key}", handler_two, &existing),
                     PLX_ERR_CONFLICT);
    assert_non_null(existing);
    assert_ptr_equal(existing->owner, OWNER_A);
    assert_string_equal(existing->pattern, "/u/{id}/x/{k}");
    /* a param where the other has a literal is a different route */
    assert_int_equal(add_full(rt, OWNER_B, "GET", "/u/{user}/x/last", handler_two, &existing),
                     PLX_OK);
    /* the first registration keeps its names */
    assert_non_null(match_pattern(rt, "GET", "/u/1/x/2", &m));
    assert_string_equal(m.names[0], "id");
    assert_string_equal(m.names[1], "k");
    core_route_match_clear(&m);
}

static void test_invalid_patterns(void **state)
{
    core_router_t *rt = *state;
    static const char *const bad[] = {
        "", "api", "api/v1", "//", "/a//b", "/a/", "/{", "/{}", "/{1x}", "/{a-b}",
        "/x{y}", "/{y}x", "/{a}/{a}", "/a b", "/a?b", "/a#b", "/a%20b", "/{a}}",
        "/{{a}}", "/caf\xc3\xa9",
        "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}/{i}",
        "/{very_long_parameter_name_beyond_32}",
    };
    const core_route_t *existing = (const core_route_t *)1;

    for (size_t i = 0; i < CORE_ARRAY_LEN(bad); i++) {
        assert_int_equal(add_full(rt, OWNER_A, "GET", bad[i], handler_one, &existing),
                         PLX_ERR_INVALID);
        assert_null(existing);
    }
    assert_int_equal(add(rt, "GET", NULL), PLX_ERR_INVALID);
    assert_int_equal(core_router_count(rt), 0);
}

static void test_invalid_methods(void **state)
{
    core_router_t *rt = *state;

    assert_int_equal(add(rt, "get", "/x"), PLX_ERR_INVALID);
    assert_int_equal(add(rt, "", "/x"), PLX_ERR_INVALID);
    assert_int_equal(add(rt, NULL, "/x"), PLX_ERR_INVALID);
    assert_int_equal(add(rt, "GE T", "/x"), PLX_ERR_INVALID);
    assert_int_equal(add(rt, "ABCDEFGHIJKLMNOPQ", "/x"), PLX_ERR_INVALID);
    assert_int_equal(add(rt, "PATCH", "/x"), PLX_OK);
}

static void test_max_params(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/{a}/{b}/{c}/{d}/{e}/{f}/{g}/{h}"), PLX_OK);
    assert_non_null(match_pattern(rt, "GET", "/1/2/3/4/5/6/7/8", &m));
    assert_int_equal(m.nparams, CORE_ROUTE_MAX_PARAMS);
    assert_string_equal(m.names[7], "h");
    assert_string_equal(m.values[7], "8");
    core_route_match_clear(&m);
}

static void test_valid_literal_characters(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    assert_int_equal(add(rt, "GET", "/v1/chat.completions:stream/~x_y-z@a"), PLX_OK);
    assert_non_null(match_pattern(rt, "GET", "/v1/chat.completions:stream/~x_y-z@a", &m));
    core_route_match_clear(&m);
}

static void test_websocket_routes(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;
    core_route_t r = { .method = "WS", .pattern = "/ws", .owner = OWNER_A };

    /* WS needs handlers, and handlers need WS */
    assert_int_equal(core_router_add(rt, &r, NULL), PLX_ERR_INVALID);
    r.method = "GET";
    r.ws = &ws_handlers;
    assert_int_equal(core_router_add(rt, &r, NULL), PLX_ERR_INVALID);

    assert_int_equal(add(rt, "WS", "/api/v1/example/ws"), PLX_OK);
    assert_int_equal(add(rt, "WS", "/live/{room}"), PLX_OK);
    assert_int_equal(add(rt, "GET", "/live/{room}"), PLX_OK);

    assert_non_null(match_pattern(rt, "WS", "/api/v1/example/ws", &m));
    assert_non_null(m.route->ws);
    assert_int_equal(m.route->ws->size, sizeof(plx_ws_handlers_t));
    assert_ptr_not_equal(m.route->ws, &ws_handlers);   /* copied */
    core_route_match_clear(&m);

    /* a plain GET on a WebSocket-only path: known, but nothing to Allow */
    assert_null(match_pattern(rt, "GET", "/api/v1/example/ws", &m));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "");

    /* WS never shows up in Allow, and WS and GET routes coexist */
    assert_null(match_pattern(rt, "POST", "/live/r1", &m));
    assert_true(m.path_known);
    assert_string_equal(m.allow, "GET");
    assert_non_null(match_pattern(rt, "WS", "/live/r1", &m));
    assert_string_equal(m.route->method, "WS");
    assert_string_equal(m.values[0], "r1");
    core_route_match_clear(&m);

    assert_int_equal(add_full(rt, OWNER_B, "WS", "/live/{other}", NULL, NULL),
                     PLX_ERR_CONFLICT);
}

static void test_route_is_copied(void **state)
{
    core_router_t *rt = *state;
    char method[8] = "GET", pattern[32] = "/copy/{id}", scope[16] = "x:read";
    core_route_t r = {
        .method = method, .pattern = pattern, .owner = OWNER_B, .fn = handler_two,
        .arg = &owner_a_tag, .auth = PLX_AUTH_SCOPE, .scope = scope,
        .summary = "sum", .tag = "tag",
    };
    const core_route_t *got;

    assert_int_equal(core_router_add(rt, &r, NULL), PLX_OK);
    memset(method, 'X', sizeof method - 1);
    memset(pattern, 'X', sizeof pattern - 1);
    memset(scope, 'X', sizeof scope - 1);
    assert_int_equal(core_router_count(rt), 1);
    got = core_router_at(rt, 0);
    assert_non_null(got);
    assert_null(core_router_at(rt, 1));
    assert_string_equal(got->method, "GET");
    assert_string_equal(got->pattern, "/copy/{id}");
    assert_string_equal(got->scope, "x:read");
    assert_string_equal(got->summary, "sum");
    assert_string_equal(got->tag, "tag");
    assert_null(got->rate_class);
    assert_int_equal(got->auth, PLX_AUTH_SCOPE);
    assert_ptr_equal(got->arg, &owner_a_tag);
    assert_ptr_equal(got->owner, OWNER_B);
}

static void test_registration_order(void **state)
{
    core_router_t *rt = *state;

    assert_int_equal(add(rt, "GET", "/b"), PLX_OK);
    assert_int_equal(add(rt, "GET", "/a"), PLX_OK);
    assert_int_equal(add(rt, "POST", "/b"), PLX_OK);
    assert_int_equal(core_router_count(rt), 3);
    assert_string_equal(core_router_at(rt, 0)->pattern, "/b");
    assert_string_equal(core_router_at(rt, 1)->pattern, "/a");
    assert_string_equal(core_router_at(rt, 2)->method, "POST");
}

static void test_long_and_deep_paths(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;
    char *path = malloc(20000);

    assert_int_equal(add(rt, "GET", "/{x}"), PLX_OK);
    assert_non_null(path);
    /* a long single segment is fine up to the bound, refused past it */
    path[0] = '/';
    memset(path + 1, 'a', 4000);
    path[4001] = '\0';
    assert_non_null(match_pattern(rt, "GET", path, &m));
    assert_int_equal(strlen(m.values[0]), 4000);
    core_route_match_clear(&m);
    memset(path + 1, 'a', 19000);
    path[19001] = '\0';
    assert_null(match_pattern(rt, "GET", path, &m));
    /* many segments: no match, no trouble */
    for (size_t i = 0; i < 500; i++)
        memcpy(path + i * 2, "/a", 2);
    path[1000] = '\0';
    assert_null(match_pattern(rt, "GET", path, &m));
    free(path);
}

static void test_null_arguments(void **state)
{
    core_router_t *rt = *state;
    core_route_match_t m;

    core_router_match(rt, NULL, "/", &m);
    assert_null(m.route);
    core_router_match(rt, "GET", NULL, &m);
    assert_null(m.route);
    core_router_match(NULL, "GET", "/", &m);
    assert_null(m.route);
    assert_int_equal(core_router_add(rt, NULL, NULL), PLX_ERR_INVALID);
    assert_int_equal(core_router_count(NULL), 0);
    assert_null(core_router_at(NULL, 0));
    core_route_match_clear(NULL);
    core_router_free(NULL);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_literal_match),
        T(test_root_pattern),
        T(test_params),
        T(test_param_needs_a_segment),
        T(test_percent_decoding),
        T(test_bad_encoding_never_matches),
        T(test_literal_beats_param),
        T(test_backtracking),
        T(test_literal_node_without_method_falls_back),
        T(test_404_and_405),
        T(test_allow_collects_every_matching_pattern),
        T(test_duplicate),
        T(test_duplicate_other_param_names),
        T(test_invalid_patterns),
        T(test_invalid_methods),
        T(test_max_params),
        T(test_valid_literal_characters),
        T(test_websocket_routes),
        T(test_route_is_copied),
        T(test_registration_order),
        T(test_long_and_deep_paths),
        T(test_null_arguments),
    };
#undef T
    return cmocka_run_group_tests_name("router", tests, NULL, NULL);
}
