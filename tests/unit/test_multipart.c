/*
 * test_multipart.c - the multipart/form-data push parser
 *
 * Every body is fed whole, split in two at every offset, and in 1-, 2- and
 * 3-byte pieces; the callbacks must see the same parts and the same bytes
 * each time (a delimiter cut anywhere is still a delimiter, and a CR that
 * turns out not to start one is still content). Malformed bodies must be
 * refused with the right status however they are cut.
 */
#include "config.h"
#include "multipart.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* what the callbacks saw, as text: [name|filename|type]content<end> */
typedef struct seen {
    char   log[8192];
    size_t len;
    int    stop_at_begin;   /* >0: part_begin of this part returns PLX_ERR_CONFLICT */
    int    decline;         /* >0: part_begin of this part returns PLX_DECLINED */
    int    nparts;
} seen_t;

static void add(seen_t *s, const char *p, size_t n)
{
    assert_true(s->len + n < sizeof s->log);
    memcpy(s->log + s->len, p, n);
    s->len += n;
    s->log[s->len] = '\0';
}

static plx_status_t on_begin(const plx_part_t *part, void *arg)
{
    seen_t *s = arg;
    char buf[512];

    assert_true(part->size >= sizeof *part);
    s->nparts++;
    if (s->stop_at_begin == s->nparts)
        return PLX_ERR_CONFLICT;
    snprintf(buf, sizeof buf, "[%s|%s|%s]", part->name,
             part->filename ? part->filename : "-", part->content_type);
    add(s, buf, strlen(buf));
    return s->decline == s->nparts ? PLX_DECLINED : PLX_OK;
}

static plx_status_t on_data(const char *data, size_t len, void *arg)
{
    assert_true(len > 0);
    add(arg, data, len);
    return PLX_OK;
}

static plx_status_t on_end(void *arg)
{
    add(arg, "<end>", 5);
    return PLX_OK;
}

static plx_multipart_t spec = {
    .size = sizeof(plx_multipart_t),
    .part_begin = on_begin, .part_data = on_data, .part_end = on_end,
};

/* Feed body in pieces: cut1 bytes, then pieces of step bytes (0: the
 * rest at once). Returns the first non-OK status, or finish's. */
static plx_status_t run_split(const plx_multipart_t *sp, const char *boundary,
                              const char *body, size_t len, size_t cut1,
                              size_t step, seen_t *s)
{
    core_mp_t *p = core_mp_new(sp, boundary, s);
    plx_status_t st = PLX_OK;
    size_t i = 0;

    assert_non_null(p);
    if (cut1 > 0) {
        i = cut1 < len ? cut1 : len;
        st = core_mp_feed(p, body, i);
    }
    while (st == PLX_OK && i < len) {
        size_t n = step && step < len - i ? step : len - i;
        st = core_mp_feed(p, body + i, n);
        i += n;
    }
    if (st == PLX_OK)
        st = core_mp_finish(p);
    if (st == PLX_ERR_INVALID || st == PLX_ERR_TOO_LARGE)
        assert_true(core_mp_error(p)[0] != '\0');
    core_mp_free(p);
    return st;
}

/* Every way of cutting body gives want_status and (when OK) want_log. */
static void check_body_spec(const plx_multipart_t *sp, const char *boundary,
                            const char *body, size_t len,
                            plx_status_t want_status, const char *want_log)
{
    seen_t s;
    static const size_t steps[] = { 0, 1, 2, 3, 7 };

    for (size_t k = 0; k < CORE_ARRAY_LEN(steps); k++) {
        memset(&s, 0, sizeof s);
        plx_status_t st = run_split(sp, boundary, body, len, 0, steps[k], &s);
        if (st != want_status)
            fail_msg("pieces of %zu: expected status %d, found %d (%s)",
                     steps[k], want_status, st, s.log);
        if (want_log && strcmp(s.log, want_log) != 0)
            fail_msg("pieces of %zu: expected\n%s\nfound\n%s", steps[k],
                     want_log, s.log);
    }
    for (size_t cut = 1; cut < len; cut++) {
        memset(&s, 0, sizeof s);
        plx_status_t st = run_split(sp, boundary, body, len, cut, 0, &s);
        if (st != want_status)
            fail_msg("cut at %zu: expected status %d, found %d", cut,
                     want_status, st);
        if (want_log && strcmp(s.log, want_log) != 0)
            fail_msg("cut at %zu: expected\n%s\nfound\n%s", cut, want_log,
                     s.log);
    }
}

static void check_body(const char *boundary, const char *body,
                       plx_status_t want_status, const char *want_log)
{
    check_body_spec(&spec, boundary, body, strlen(body), want_status, want_log);
}

#define CRLF "\r\n"

static void test_simple_form(void **state)
{
    (void)state;
    check_body("XyZ",
               "--XyZ" CRLF
               "Content-Disposition: form-data; name=\"title\"" CRLF
               CRLF
               "hello world" CRLF
               "--XyZ" CRLF
               "Content-Disposition: form-data; name=\"file\"; filename=\"a.txt\"" CRLF
               "Content-Type: application/octet-stream" CRLF
               CRLF
               "line one\r\nline two\r\n" CRLF
               "--XyZ--" CRLF,
               PLX_OK,
               "[title|-|text/plain]hello world<end>"
               "[file|a.txt|application/octet-stream]line one\r\nline two\r\n<end>");
}

static void test_preamble_epilogue_padding(void **state)
{
    (void)state;
    check_body("b",
               "This is the preamble.  It is to be ignored" CRLF
               "--b \t " CRLF
               "content-disposition: FORM-DATA;name=x" CRLF
               CRLF
               "1" CRLF
               "--b" CRLF
               "Content-Disposition: form-data; name=\"y\"" CRLF
               CRLF
               CRLF
               "--b--  trailing words" CRLF
               "This is the epilogue.  It is also to be ignored." CRLF
               "--b" CRLF "garbage after the close",
               PLX_OK, "[x|-|text/plain]1<end>[y|-|text/plain]<end>");
    /* no CRLF at all after the close delimiter, an empty content */
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=e" CRLF
               CRLF CRLF "--b--", PLX_OK, "[e|-|text/plain]<end>");
}

/* Content that looks like the delimiter but is not: the boundary without
 * the CRLF before it, "--" plus a prefix of it, lone CRs and LFs, a CR
 * right before the real delimiter. */
static void test_near_delimiters(void **state)
{
    (void)state;
    check_body("abcabd",
               "--abcabd" CRLF
               "Content-Disposition: form-data; name=\"n\"" CRLF
               CRLF
               "--abcabd in the middle of a line\r" CRLF
               "--abcab" CRLF "--abcabc" CRLF "\r\r\n\n--\r\n-\r\r\n--abca"
               "\r" CRLF
               "--abcabd--" CRLF,
               PLX_OK,
               "[n|-|text/plain]--abcabd in the middle of a line\r"
               CRLF "--abcab" CRLF "--abcabc" CRLF "\r\r\n\n--\r\n-\r\r\n--abca"
               "\r<end>");
}

static void test_binary_content(void **state)
{
    char body[600], want[600];
    size_t n = 0, w = 0;
    static const char head[] = "--B" CRLF
        "Content-Disposition: form-data; name=\"bin\"; filename=\"x.bin\"" CRLF
        CRLF;

    (void)state;
    memcpy(body, head, sizeof head - 1);
    n = sizeof head - 1;
    w = (size_t)snprintf(want, sizeof want, "[bin|x.bin|text/plain]");
    for (int i = 0; i < 256; i++) {
        body[n++] = (char)i;
        want[w++] = (char)i;
    }
    memcpy(body + n, CRLF "--B--", 7);
    n += 7;
    memcpy(want + w, "<end>", 6);
    w += 5;

    seen_t s;
    memset(&s, 0, sizeof s);
    assert_int_equal(run_split(&spec, "B", body, n, 0, 1, &s), PLX_OK);
    assert_int_equal(s.len, w);
    assert_memory_equal(s.log, want, w);
    for (size_t cut = 1; cut < n; cut++) {
        memset(&s, 0, sizeof s);
        assert_int_equal(run_split(&spec, "B", body, n, cut, 0, &s), PLX_OK);
        assert_memory_equal(s.log, want, w);
    }
}

static void test_disposition_values(void **state)
{
    (void)state;
    /* quoted-pairs: \" and \\ unescape, other backslashes stay; filename*
     * is ignored; UTF-8 kept; empty filename */
    check_body("q",
               "--q" CRLF
               "Content-Disposition: form-data; name=\"a\\\"b\"; "
               "filename=\"C:\\dir\\\\f.txt\"; filename*=UTF-8''evil.sh" CRLF
               CRLF "1" CRLF
               "--q" CRLF
               "Content-Disposition: form-data; filename*=UTF-8''x; name=\"caf\xc3\xa9\"; filename=\"\"" CRLF
               "X-Other: ignored" CRLF
               CRLF "2" CRLF
               "--q--",
               PLX_OK,
               "[a\"b|C:\\dir\\f.txt|text/plain]1<end>[caf\xc3\xa9||text/plain]2<end>");
}

static void test_declined_part(void **state)
{
    plx_multipart_t sp = spec;
    seen_t s;
    static const char body[] =
        "--b" CRLF "Content-Disposition: form-data; name=one" CRLF CRLF "skip me" CRLF
        "--b" CRLF "Content-Disposition: form-data; name=two" CRLF CRLF "keep" CRLF
        "--b--";

    (void)state;
    memset(&s, 0, sizeof s);
    s.decline = 1;
    assert_int_equal(run_split(&sp, "b", body, strlen(body), 0, 1, &s), PLX_OK);
    assert_string_equal(s.log, "[one|-|text/plain][two|-|text/plain]keep<end>");
    /* a callback's own status stops the parse and comes back as is */
    memset(&s, 0, sizeof s);
    s.stop_at_begin = 2;
    assert_int_equal(run_split(&sp, "b", body, strlen(body), 0, 3, &s),
                     PLX_ERR_CONFLICT);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char disp[] = "Content-Disposition: form-data; name=a" CRLF;
    /* no closing delimiter */
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=a" CRLF
               CRLF "data" CRLF "--b" CRLF, PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=a" CRLF
               CRLF "data", PLX_ERR_INVALID, NULL);
    /* no delimiter at all, an empty body */
    check_body("b", "just text", PLX_ERR_INVALID, NULL);
    check_body("b", "", PLX_ERR_INVALID, NULL);
    /* the boundary inside content, followed by something else */
    char buf[512];
    snprintf(buf, sizeof buf, "--b" CRLF "%s" CRLF "x" CRLF "--bogus" CRLF "--b--", disp);
    check_body("b", buf, PLX_ERR_INVALID, NULL);
    /* a close delimiter with one dash */
    snprintf(buf, sizeof buf, "--b" CRLF "%s" CRLF "x" CRLF "--b-", disp);
    check_body("b", buf, PLX_ERR_INVALID, NULL);
    /* LF-only framing: headers refused, or the delimiter never found */
    check_body("b", "--b\nContent-Disposition: form-data; name=a\n\nx\n--b--\n",
               PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=a\n" CRLF
               "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=a\r" "x"
               CRLF CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    /* CR without LF after the delimiter */
    check_body("b", "--b\rContent-Disposition: form-data; name=a" CRLF CRLF
               "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    /* headers: no name, not form-data, repeated, folded, no colon, NUL */
    check_body("b", "--b" CRLF "Content-Disposition: form-data" CRLF CRLF "x"
               CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: attachment; name=a" CRLF
               CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=a; name=b"
               CRLF CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=a" CRLF
               "Content-Disposition: form-data; name=b" CRLF CRLF "x" CRLF
               "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data;" CRLF
               " name=a" CRLF CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition form-data; name=a" CRLF
               CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=\"a" CRLF
               CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=\"\xff\"" CRLF
               CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    check_body("b", "--b" CRLF "Content-Disposition: form-data; name=a" CRLF
               "Content-Type:" CRLF CRLF "x" CRLF "--b--", PLX_ERR_INVALID, NULL);
    const char nul[] = "--b" CRLF "Content-Disposition: form-data; name=a\0" CRLF
                       CRLF "x" CRLF "--b--";
    check_body_spec(&spec, "b", nul, sizeof nul - 1, PLX_ERR_INVALID, NULL);
}

static const char disp_a[] = "Content-Disposition: form-data; name=a" CRLF;

static void test_bounds(void **state)
{
    plx_multipart_t sp = spec;
    char body[4096];

    (void)state;
    /* a header block over max_header_bytes */
    sp.max_header_bytes = 64;
    snprintf(body, sizeof body, "--b" CRLF "Content-Disposition: form-data; "
             "name=\"%0100d\"" CRLF CRLF "x" CRLF "--b--", 7);
    check_body_spec(&sp, "b", body, strlen(body), PLX_ERR_TOO_LARGE, NULL);
    /* under it passes */
    snprintf(body, sizeof body, "--b" CRLF "Content-Disposition: form-data; "
             "name=\"%015d\"" CRLF CRLF "x" CRLF "--b--", 7);
    check_body_spec(&sp, "b", body, strlen(body), PLX_OK, NULL);
    sp = spec;

    /* too many header lines */
    size_t n = (size_t)snprintf(body, sizeof body, "--b" CRLF
                                "Content-Disposition: form-data; name=a" CRLF);
    for (int i = 0; i < CORE_MP_MAX_HEADERS; i++)
        n += (size_t)snprintf(body + n, sizeof body - n, "X-H%d: v" CRLF, i);
    snprintf(body + n, sizeof body - n, CRLF "x" CRLF "--b--");
    check_body_spec(&sp, "b", body, strlen(body), PLX_ERR_TOO_LARGE, NULL);

    /* parts */
    sp.max_parts = 2;
    static const char three[] =
        "--b" CRLF "Content-Disposition: form-data; name=a" CRLF CRLF "1" CRLF
        "--b" CRLF "Content-Disposition: form-data; name=b" CRLF CRLF "2" CRLF
        "--b" CRLF "Content-Disposition: form-data; name=c" CRLF CRLF "3" CRLF
        "--b--";
    check_body_spec(&sp, "b", three, strlen(three), PLX_ERR_TOO_LARGE, NULL);
    sp.max_parts = 3;
    check_body_spec(&sp, "b", three, strlen(three), PLX_OK, NULL);
    sp = spec;

    /* part bytes: 10 allowed, 11 not (a CR held for a possible delimiter
     * counts only once it is known to be content) */
    sp.max_part_bytes = 10;
    check_body_spec(&sp, "b", body, (size_t)snprintf(body, sizeof body,
                    "--b" CRLF "%s" CRLF "0123456789" CRLF "--b--", disp_a),
                    PLX_OK, NULL);
    check_body_spec(&sp, "b", body, (size_t)snprintf(body, sizeof body,
                    "--b" CRLF "%s" CRLF "012345678\r" CRLF "--b--", disp_a),
                    PLX_OK, NULL);
    check_body_spec(&sp, "b", body, (size_t)snprintf(body, sizeof body,
                    "--b" CRLF "%s" CRLF "0123456789A" CRLF "--b--", disp_a),
                    PLX_ERR_TOO_LARGE, NULL);
    sp = spec;

    /* the whole body */
    static const char one[] = "--b" CRLF "Content-Disposition: form-data; "
                              "name=a" CRLF CRLF "x" CRLF "--b--";
    sp.max_total_bytes = sizeof one - 1;
    check_body_spec(&sp, "b", one, sizeof one - 1, PLX_OK, NULL);
    sp.max_total_bytes = sizeof one - 2;
    check_body_spec(&sp, "b", one, sizeof one - 1, PLX_ERR_TOO_LARGE, NULL);
}

static void test_boundary_header(void **state)
{
    char b[CORE_MP_BOUNDARY_MAX + 1], err[160];

    (void)state;
    assert_int_equal(core_mp_boundary("multipart/form-data; boundary=abc",
                                      b, err, sizeof err), PLX_OK);
    assert_string_equal(b, "abc");
    assert_int_equal(core_mp_boundary("Multipart/Form-Data;boundary=\"a b:c?\"",
                                      b, err, sizeof err), PLX_OK);
    assert_string_equal(b, "a b:c?");
    assert_int_equal(core_mp_boundary("multipart/form-data; charset=utf-8; "
                                      "BOUNDARY=----WebKitFormBoundary7MA4YWxkTrZu0gW;",
                                      b, err, sizeof err), PLX_OK);
    assert_string_equal(b, "----WebKitFormBoundary7MA4YWxkTrZu0gW");
    assert_int_equal(core_mp_boundary("multipart/form-data; boundary=\"q\\\"\"",
                                      b, err, sizeof err), PLX_ERR_INVALID);
    /* 70 characters pass, 71 do not */
    char ct[200];
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%070d", 1);
    assert_int_equal(core_mp_boundary(ct, b, err, sizeof err), PLX_OK);
    snprintf(ct, sizeof ct, "multipart/form-data; boundary=%071d", 1);
    assert_int_equal(core_mp_boundary(ct, b, err, sizeof err), PLX_ERR_INVALID);

    static const char *bad[] = {
        NULL, "", "text/plain; boundary=a", "multipart/mixed; boundary=a",
        "multipart/form-data", "multipart/form-data;", "multipart/form-datax; boundary=a",
        "multipart/form-data; boundary=", "multipart/form-data; boundary=\"\"",
        "multipart/form-data; boundary=a; boundary=b",
        "multipart/form-data; boundary=\"ends with space \"",
        "multipart/form-data; boundary=\"unterminated",
        "multipart/form-data; boundary=a{b}", "multipart/form-data; boundary",
        "multipart/form-data boundary=a",
    };
    for (size_t i = 0; i < CORE_ARRAY_LEN(bad); i++) {
        err[0] = '\0';
        if (core_mp_boundary(bad[i], b, err, sizeof err) != PLX_ERR_INVALID)
            fail_msg("accepted \"%s\"", bad[i] ? bad[i] : "(null)");
        assert_true(err[0] != '\0');
        assert_string_equal(b, "");
    }
}

static void test_new_refuses(void **state)
{
    plx_multipart_t sp = spec;

    (void)state;
    assert_null(core_mp_new(NULL, "b", NULL));
    assert_null(core_mp_new(&sp, "", NULL));
    assert_null(core_mp_new(&sp, "bad{}", NULL));
    sp.max_header_bytes = SIZE_MAX;   /* would wrap the buffer sizes */
    assert_null(core_mp_new(&sp, "b", NULL));
    sp.max_header_bytes = 0;
    sp.size = 0;
    assert_null(core_mp_new(&sp, "b", NULL));
    /* a spec from an older build: only the fields it has are read */
    sp.size = offsetof(plx_multipart_t, max_part_bytes);
    sp.max_parts = 1;
    core_mp_t *p = core_mp_new(&sp, "b", NULL);
    assert_non_null(p);
    core_mp_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_form),
        cmocka_unit_test(test_preamble_epilogue_padding),
        cmocka_unit_test(test_near_delimiters),
        cmocka_unit_test(test_binary_content),
        cmocka_unit_test(test_disposition_values),
        cmocka_unit_test(test_declined_part),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_boundary_header),
        cmocka_unit_test(test_new_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
