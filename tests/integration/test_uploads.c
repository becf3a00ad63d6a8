/*
 * test_uploads.c - plx_request_multipart seen from outside: libcurl's
 * mime API uploads forms to the netprobe module, which reports each part's
 * name, filename, content type, size and SHA-256 as it streamed through.
 * A body over a bound is refused with 413 and the server keeps serving;
 * bad framing is a 400 invalid_multipart.
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

#include <curl/curl.h>
#include <openssl/evp.h>

#include "harness.h"
#include "pgtest.h"

static plxt_server_t *srv;
static char dbname[64];
static char *db_url;

static int group_setup(void **state)
{
    static const plxt_module_t mods[] = { { .name = "netprobe" }, { 0 } };

    (void)state;
    if (!(db_url = pgtest_db_create(dbname)))
        return -1;
    plxt_server_opts_t o = { .db_url = db_url, .modules = mods };
    srv = plxt_server_start(&o);
    return srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    (void)state;
    pgtest_db_drop(dbname);
    free(db_url);
    return rc == 0 ? 0 : -1;
}

static void sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    unsigned int dl = 0;

    assert_int_equal(EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL), 1);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

/* deterministic bytes that are not all alike: every value, CRs and LFs
 * and dashes included */
static unsigned char *blob(size_t n)
{
    unsigned char *b = malloc(n);
    uint32_t x = 2463534242u;

    assert_non_null(b);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (unsigned char)x;
    }
    return b;
}

typedef struct sink {
    char  *data;
    size_t len;
} sink_t;

static size_t sink_write(char *p, size_t size, size_t n, void *arg)
{
    sink_t *s = arg;
    size_t len = size * n;
    char *q = realloc(s->data, s->len + len + 1);

    if (!q)
        return 0;
    memcpy(q + s->len, p, len);
    s->data = q;
    s->len += len;
    s->data[s->len] = '\0';
    return len;
}

/* POST a mime form; *status and the body (caller frees) */
static char *upload(const char *query, curl_mime *(*build)(CURL *, void *),
                    void *arg, long *status)
{
    CURL *c = curl_easy_init();
    sink_t s = { 0 };

    assert_non_null(c);
    curl_mime *mime = build(c, arg);
    curl_easy_setopt(c, CURLOPT_URL, plxt_fmt("%s/api/v1/netprobe/upload%s",
                                              srv->url, query ? query : ""));
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(c);
    *status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_mime_free(mime);
    curl_easy_cleanup(c);
    /* a server that refuses early may close while curl still sends */
    if (rc != CURLE_OK && *status == 0)
        fail_msg("upload failed: %s", curl_easy_strerror(rc));
    return s.data;
}

typedef struct form {
    const unsigned char *file;
    size_t               file_len;
} form_t;

static curl_mime *build_form(CURL *c, void *arg)
{
    form_t *f = arg;
    curl_mime *m = curl_mime_init(c);
    curl_mimepart *p;

    p = curl_mime_addpart(m);
    curl_mime_name(p, "title");
    curl_mime_data(p, "a report", CURL_ZERO_TERMINATED);
    p = curl_mime_addpart(m);
    curl_mime_name(p, "upload");
    curl_mime_filename(p, "data.bin");
    curl_mime_type(p, "application/octet-stream");
    curl_mime_data(p, (const char *)f->file, f->file_len);
    p = curl_mime_addpart(m);
    curl_mime_name(p, "empty");
    curl_mime_data(p, "", 0);
    return m;
}

static void check_part(json_t *part, const char *name, const char *filename,
                       const char *type, const void *data, size_t len)
{
    char want[65];

    assert_non_null(part);
    assert_string_equal(json_string_value(json_object_get(part, "name")), name);
    if (filename)
        assert_string_equal(json_string_value(json_object_get(part, "filename")),
                            filename);
    else
        assert_null(json_string_value(json_object_get(part, "filename")));
    assert_string_equal(json_string_value(json_object_get(part, "content_type")), type);
    assert_int_equal(json_integer_value(json_object_get(part, "size")), len);
    sha256_hex(data, len, want);
    assert_string_equal(json_string_value(json_object_get(part, "sha256")), want);
}

static void test_five_mib_upload(void **state)
{
    form_t f = { .file_len = 5 * 1024 * 1024 };
    long status;

    (void)state;
    f.file = blob(f.file_len);
    char *body = upload(NULL, build_form, &f, &status);
    if (status != 200)
        fail_msg("expected 200, found %ld: %s", status, body);
    json_t *j = json_loads(body, 0, NULL);
    json_t *parts = json_object_get(j, "parts");
    assert_int_equal(json_array_size(parts), 3);
    check_part(json_array_get(parts, 0), "title", NULL, "text/plain", "a report", 8);
    check_part(json_array_get(parts, 1), "upload", "data.bin",
               "application/octet-stream", f.file, f.file_len);
    check_part(json_array_get(parts, 2), "empty", NULL, "text/plain", "", 0);
    json_decref(j);
    free(body);
    free((void *)f.file);
}

static void expect_problem(long status, const char *body, long want_status,
                           const char *want_code)
{
    if (status != want_status)
        fail_msg("expected %ld, found %ld: %s", want_status, status,
                 body ? body : "");
    json_t *j = json_loads(body, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "code")), want_code);
    json_decref(j);
}

static void test_over_bound_then_still_serving(void **state)
{
    form_t f = { .file_len = 2 * 1024 * 1024 };
    long status;
    char *body;

    (void)state;
    f.file = blob(f.file_len);
    /* the whole body over max_total (known from Content-Length) */
    body = upload("?max_total=1048576", build_form, &f, &status);
    expect_problem(status, body, 413, "body_too_large");
    free(body);
    /* one part over max_part, the body within max_total */
    body = upload("?max_part=1000000", build_form, &f, &status);
    expect_problem(status, body, 413, "body_too_large");
    free(body);
    /* more parts than max_parts */
    body = upload("?max_parts=2", build_form, &f, &status);
    expect_problem(status, body, 413, "body_too_large");
    free(body);

    /* the server keeps working: health, and a good upload */
    plxt_resp_t r;
    assert_int_equal(plxt_get(srv, "/health/live", &r), 0);
    assert_int_equal(r.status, 200);
    plxt_resp_free(&r);
    f.file_len = 1000;
    body = upload(NULL, build_form, &f, &status);
    assert_int_equal(status, 200);
    free(body);
    free((void *)f.file);
}

static long raw_post(const char *type, const char *body, char **out)
{
    plxt_resp_t r;
    const char *const hdr[] = { type, NULL };

    assert_int_equal(plxt_http("POST", plxt_fmt("%s/api/v1/netprobe/upload", srv->url),
                               type ? hdr : NULL, body, &r), 0);
    long status = r.status;
    *out = r.body;
    r.body = NULL;
    plxt_resp_free(&r);
    return status;
}

static void test_bad_framing(void **state)
{
    char *out;
    long st;

    (void)state;
    st = raw_post("Content-Type: multipart/form-data", "--x\r\n", &out);
    expect_problem(st, out, 400, "invalid_multipart");
    free(out);
    st = raw_post("Content-Type: application/json", "{}", &out);
    expect_problem(st, out, 400, "invalid_multipart");
    free(out);
    st = raw_post(NULL, "", &out);
    expect_problem(st, out, 400, "invalid_multipart");
    free(out);
    st = raw_post("Content-Type: multipart/form-data; boundary=\"x y \"", "", &out);
    expect_problem(st, out, 400, "invalid_multipart");
    free(out);
    /* no closing delimiter */
    st = raw_post("Content-Type: multipart/form-data; boundary=xx",
                  "--xx\r\nContent-Disposition: form-data; name=a\r\n\r\nvalue", &out);
    expect_problem(st, out, 400, "invalid_multipart");
    free(out);
    /* a part without a name */
    st = raw_post("Content-Type: multipart/form-data; boundary=xx",
                  "--xx\r\nContent-Type: text/plain\r\n\r\nvalue\r\n--xx--", &out);
    expect_problem(st, out, 400, "invalid_multipart");
    free(out);
    /* a hand-made good one, quoted boundary with a space */
    st = raw_post("Content-Type: multipart/form-data; boundary=\"a b\"",
                  "preamble\r\n--a b\r\nContent-Disposition: form-data; name=\"f\"; "
                  "filename=\"r\xc3\xa9sum\xc3\xa9.txt\"\r\nContent-Type: text/markdown\r\n"
                  "\r\n# hi\r\n--a b--\r\n", &out);
    assert_int_equal(st, 200);
    json_t *j = json_loads(out, 0, NULL);
    check_part(json_array_get(json_object_get(j, "parts"), 0), "f",
               "r\xc3\xa9sum\xc3\xa9.txt", "text/markdown", "# hi", 4);
    json_decref(j);
    free(out);
}

/* a module that read the body already cannot have it as multipart: its
 * bug, answered 500 and logged, not blamed on the client */
static void test_body_read_before(void **state)
{
    plxt_resp_t r;
    const char *const hdr[] = {
        "Content-Type: multipart/form-data; boundary=xx", NULL };

    (void)state;
    assert_int_equal(plxt_http("POST", plxt_fmt("%s/api/v1/netprobe/upload-late",
                                                srv->url), hdr,
                               "--xx\r\nContent-Disposition: form-data; name=a"
                               "\r\n\r\nv\r\n--xx--", &r), 0);
    assert_int_equal(r.status, 500);
    plxt_resp_free(&r);
    assert_true(plxt_server_log_wait(srv, "the body was already read", 5000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_five_mib_upload),
        cmocka_unit_test(test_over_bound_then_still_serving),
        cmocka_unit_test(test_bad_framing),
        cmocka_unit_test(test_body_read_before),
    };

    plxt_require_postgres("test_uploads");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
