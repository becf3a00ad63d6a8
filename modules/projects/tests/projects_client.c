/*
 * projects_client.c - shared helpers of the projects integration tests
 * (see projects_client.h)
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "pgtest.h"
#include "projects_client.h"

int pjt_start(pjt_env_t *e)
{
    const char *b = getenv("PLX_BUILDDIR"), *s = getenv("PLX_SRCDIR");
    char module_path[1024], probe_path[1024], module_conf[1100], cfg[2048];
    size_t n;

    snprintf(module_path, sizeof module_path, "%s/modules/projects/.libs/projects.so",
             b ? b : ".");
    snprintf(probe_path, sizeof probe_path,
             "%s/modules/projects/tests/.libs/event_probe.so", b ? b : ".");
    /* lands in [module]: the migrations are in the source tree */
    snprintf(module_conf, sizeof module_conf, "data_dir = %s/modules/projects",
             s ? s : "..");
    const plxt_module_t mods[] = {
        { .name = "projects", .path = module_path, .config = module_conf },
        { .name = "event_probe", .path = probe_path },
        { 0 },
    };
    if (!(e->db = pgtest_db_create(e->dbname)))
        return -1;
    plxt_identity_config(cfg, sizeof cfg, 0);
    n = strlen(cfg);
    snprintf(cfg + n, sizeof cfg - n, "[server]\nthreads = 64\n"
             "[ratelimit]\ndefault = 1000000/60s\nauth = 100000/60s\n");
    plxt_server_opts_t o = { .db_url = e->db, .modules = mods, .config = cfg };
    e->srv = plxt_server_start(&o);
    return e->srv ? 0 : -1;
}

int pjt_stop(pjt_env_t *e)
{
    int rc = plxt_server_stop(e->srv);

    pgtest_db_drop(e->dbname);
    free(e->db);
    return rc == 0 ? 0 : -1;
}

void pjt_call(pjt_env_t *e, const char *method, const char *path,
              const char *token, const char *body, const char *if_match,
              plxt_resp_t *resp)
{
    char url[4096], auth[4200], im[512];
    const char *headers[4];
    size_t n = 0;

    snprintf(url, sizeof url, "%s%s", e->srv->url, path);
    if (token)
        headers[n++] = plxt_bearer(token, auth, sizeof auth);
    if (body)
        headers[n++] = "Content-Type: application/json";
    if (if_match) {
        snprintf(im, sizeof im, "If-Match: %s", if_match);
        headers[n++] = im;
    }
    headers[n] = NULL;
    if (plxt_http(method, url, headers, body, resp) != 0)
        fail_msg("%s %s: no response: %s", method, path, resp->error);
}

json_t *pjt_expect(pjt_env_t *e, const char *method, const char *path,
                   const char *token, const char *body, const char *if_match,
                   long status)
{
    plxt_resp_t resp;
    json_t *j;

    pjt_call(e, method, path, token, body, if_match, &resp);
    if (resp.status != status)
        fail_msg("%s %s: expected %ld, found %ld: %.500s", method, path, status,
                 resp.status, resp.body ? resp.body : "");
    j = resp.body_len ? plxt_resp_json(&resp) : NULL;
    if (resp.body_len && !j)
        fail_msg("%s %s: expected JSON, found \"%.200s\"", method, path, resp.body);
    plxt_resp_free(&resp);
    return j;
}

char *pjt_expect_problem(pjt_env_t *e, const char *method, const char *path,
                         const char *token, const char *body,
                         const char *if_match, long status, const char *code)
{
    plxt_resp_t resp;
    json_t *j;
    char *detail;

    pjt_call(e, method, path, token, body, if_match, &resp);
    if (resp.status != status || !plxt_resp_type_is(&resp, "application/problem+json"))
        fail_msg("%s %s: expected a %ld problem, found %ld %s: %.500s", method, path,
                 status, resp.status, plxt_resp_header(&resp, "Content-Type"),
                 resp.body ? resp.body : "");
    j = plxt_resp_json(&resp);
    if (!j || !json_is_string(json_object_get(j, "code")))
        fail_msg("%s %s: a problem without a code: %.300s", method, path, resp.body);
    if (strcmp(pjt_str(j, "code"), code) != 0)
        fail_msg("%s %s: expected code \"%s\", found \"%s\" (%s)", method, path, code,
                 pjt_str(j, "code"), resp.body);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), status);
    detail = strdup(json_string_value(json_object_get(j, "detail"))
                    ? json_string_value(json_object_get(j, "detail")) : "");
    json_decref(j);
    plxt_resp_free(&resp);
    return detail;
}

const char *pjt_str(json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));

    if (!v)
        fail_msg("expected a string \"%s\" in the body", key);
    return v;
}

void pjt_etag(pjt_env_t *e, const char *path, const char *token, char out[24])
{
    plxt_resp_t resp;
    const char *etag;

    pjt_call(e, "GET", path, token, NULL, NULL, &resp);
    assert_int_equal(resp.status, 200);
    etag = plxt_resp_header(&resp, "ETag");
    if (!etag || strlen(etag) >= 24)
        fail_msg("GET %s: no usable ETag", path);
    snprintf(out, 24, "%s", etag);
    plxt_resp_free(&resp);
}

static void copy_id(json_t *j, char id[37])
{
    snprintf(id, 37, "%s", pjt_str(j, "id"));
    json_decref(j);
}

void pjt_team_new(pjt_env_t *e, const plxt_user_t *owner, char id[37])
{
    copy_id(pjt_expect(e, "POST", "/api/v1/teams", owner->access,
                       "{\"name\":\"a team\"}", NULL, 201), id);
}

void pjt_member_add(pjt_env_t *e, const char *team, const plxt_user_t *by,
                    const plxt_user_t *who, const char *role)
{
    char path[128], body[512];

    snprintf(path, sizeof path, "/api/v1/teams/%s/members", team);
    snprintf(body, sizeof body, "{\"email\":\"%s\",\"role\":\"%s\"}", who->email, role);
    json_decref(pjt_expect(e, "POST", path, by->access, body, NULL, 201));
}

void pjt_project_new(pjt_env_t *e, const plxt_user_t *u, const char *team,
                     const char *name, char id[37])
{
    json_t *body = json_pack("{s:s, s:s}", "team_id", team, "name", name);
    char *text = json_dumps(body, JSON_COMPACT);

    copy_id(pjt_expect(e, "POST", "/api/v1/projects", u->access, text, NULL, 201), id);
    free(text);
    json_decref(body);
}

void pjt_task_new(pjt_env_t *e, const plxt_user_t *u, const char *project,
                  const char *title, const char *extra, char id[37])
{
    char path[128], body[1024];

    snprintf(path, sizeof path, "/api/v1/projects/%s/tasks", project);
    snprintf(body, sizeof body, "{\"title\":\"%s\"%s%s}", title, extra ? "," : "",
             extra ? extra : "");
    copy_id(pjt_expect(e, "POST", path, u->access, body, NULL, 201), id);
}

void pjt_comment_new(pjt_env_t *e, const plxt_user_t *u, const char *task,
                     const char *body, char id[37])
{
    char path[128], json[1024];

    snprintf(path, sizeof path, "/api/v1/tasks/%s/comments", task);
    snprintf(json, sizeof json, "{\"body\":\"%s\"}", body);
    copy_id(pjt_expect(e, "POST", path, u->access, json, NULL, 201), id);
}

json_t *pjt_events(pjt_env_t *e, const char *topic, const char *kind,
                   const char *id)
{
    json_t *all = pjt_expect(e, "GET", "/api/v1/event-probe/events", NULL, NULL,
                             NULL, 200);
    json_t *out = json_array(), *ev;
    size_t i;

    json_array_foreach(json_object_get(all, "events"), i, ev) {
        json_t *row = json_object_get(json_object_get(ev, "payload"), kind);
        const char *row_id = json_string_value(json_object_get(row, "id"));
        if (strcmp(pjt_str(ev, "topic"), topic) == 0 && row_id && strcmp(row_id, id) == 0)
            json_array_append(out, ev);
    }
    json_decref(all);
    return out;
}

void pjt_uuid(char out[37])
{
    unsigned char b[16];
    FILE *f = fopen("/dev/urandom", "rb");

    if (!f || fread(b, 1, sizeof b, f) != sizeof b)
        fail_msg("no randomness");
    fclose(f);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
             "%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2], b[3], b[4], b[5], b[6],
             b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}
