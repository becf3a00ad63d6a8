/*
 * test_encode.c - the encodings every cursor, token and id goes through:
 * base64 and hex against RFC 4648's vectors and what a client could send
 * instead, UUIDs (RFC 9562 versions 4 and 7), UTF-8 against each class of
 * invalid sequence in RFC 3629
 */
#include "config.h"
#include "core.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

/* ---- base64 ----------------------------------------------------------- */

/* RFC 4648 section 10 */
static const struct { const char *plain, *std, *url; } b64_vectors[] = {
    { "", "", "" },
    { "f", "Zg==", "Zg" },
    { "fo", "Zm8=", "Zm8" },
    { "foo", "Zm9v", "Zm9v" },
    { "foob", "Zm9vYg==", "Zm9vYg" },
    { "fooba", "Zm9vYmE=", "Zm9vYmE" },
    { "foobar", "Zm9vYmFy", "Zm9vYmFy" },
};

static void test_base64_vectors(void **state)
{
    char out[32];
    unsigned char raw[32];
    size_t n;

    (void)state;
    for (size_t i = 0; i < CORE_ARRAY_LEN(b64_vectors); i++) {
        const char *p = b64_vectors[i].plain;
        size_t len = strlen(p);

        assert_int_equal(core_base64_encode(PLX_B64_STD, p, len, out, sizeof out),
                         strlen(b64_vectors[i].std));
        assert_string_equal(out, b64_vectors[i].std);
        assert_int_equal(core_base64_encode(PLX_B64_URL, p, len, out, sizeof out),
                         strlen(b64_vectors[i].url));
        assert_string_equal(out, b64_vectors[i].url);
        assert_true(strlen(b64_vectors[i].std) + 1 <= PLX_B64_LEN(len));

        assert_int_equal(core_base64_decode(PLX_B64_STD, b64_vectors[i].std,
                                            strlen(b64_vectors[i].std), raw,
                                            sizeof raw, &n), PLX_OK);
        assert_int_equal(n, len);
        assert_memory_equal(raw, p, len);
        assert_int_equal(core_base64_decode(PLX_B64_URL, b64_vectors[i].url,
                                            strlen(b64_vectors[i].url), raw,
                                            sizeof raw, &n), PLX_OK);
        assert_int_equal(n, len);
        assert_memory_equal(raw, p, len);
    }
}

static void test_base64_alphabets(void **state)
{
    static const unsigned char bytes[] = { 0xfb, 0xff, 0xbf };
    char out[8];
    unsigned char raw[8];
    size_t n;

    (void)state;
    assert_int_equal(core_base64_encode(PLX_B64_STD, bytes, 3, out, sizeof out), 4);
    assert_string_equal(out, "+/+/");
    assert_int_equal(core_base64_encode(PLX_B64_URL, bytes, 3, out, sizeof out), 4);
    assert_string_equal(out, "-_-_");
    /* each alphabet refuses the other's two characters */
    assert_int_equal(core_base64_decode(PLX_B64_STD, "-_-_", 4, raw, sizeof raw, &n),
                     PLX_ERR_INVALID);
    assert_int_equal(core_base64_decode(PLX_B64_URL, "+/+/", 4, raw, sizeof raw, &n),
                     PLX_ERR_INVALID);
    assert_int_equal(core_base64_decode(PLX_B64_URL, "-_-_", 4, raw, sizeof raw, &n),
                     PLX_OK);
    assert_memory_equal(raw, bytes, 3);
}

static void test_base64_strict(void **state)
{
    static const char *const bad_std[] = {
        "Zg",        /* padding is required */
        "Zg=",       /* incomplete padding */
        "Zg===",
        "Z===",      /* one character cannot hold a byte */
        "Zm9v\n",    /* whitespace */
        "Zm 9v",
        "Zh==",      /* stray bits: 'h' leaves 0001 unused */
        "Zm9=",      /* stray bits: '9' leaves 01 unused */
        "=Zm9",      /* padding first */
        "Zg==Zg==",  /* padding in the middle */
        "Zm9v*A==",  /* outside the alphabet */
    };
    static const char *const bad_url[] = {
        "Zg==",      /* no padding in the URL variant */
        "Z",         /* a tail of one character */
        "Zh",        /* stray bits */
        "Zm9",
        "Zm9v\r",
        "Zm9v.",
    };
    unsigned char raw[16];
    size_t n = 99;

    (void)state;
    for (size_t i = 0; i < CORE_ARRAY_LEN(bad_std); i++)
        assert_int_equal(core_base64_decode(PLX_B64_STD, bad_std[i], strlen(bad_std[i]),
                                            raw, sizeof raw, &n), PLX_ERR_INVALID);
    for (size_t i = 0; i < CORE_ARRAY_LEN(bad_url); i++)
        assert_int_equal(core_base64_decode(PLX_B64_URL, bad_url[i], strlen(bad_url[i]),
                                            raw, sizeof raw, &n), PLX_ERR_INVALID);
    assert_int_equal(n, 0);
    /* a NUL inside the given length is not base64 either */
    assert_int_equal(core_base64_decode(PLX_B64_URL, "Zm\0v", 4, raw, sizeof raw, &n),
                     PLX_ERR_INVALID);
    assert_int_equal(core_base64_decode((plx_b64_t)7, "Zm9v", 4, raw, sizeof raw, &n),
                     PLX_ERR_INVALID);
}

static void test_base64_bounds(void **state)
{
    char out[8];
    unsigned char raw[2];
    size_t n;

    (void)state;
    /* "foob" is 8 characters: the NUL needs a ninth */
    assert_int_equal(core_base64_encode(PLX_B64_STD, "foob", 4, out, 8), (size_t)-1);
    assert_string_equal(out, "");
    assert_int_equal(core_base64_encode(PLX_B64_URL, "foob", 4, out, 7), 6);
    assert_int_equal(core_base64_encode(PLX_B64_URL, "foob", 4, out, 6), (size_t)-1);
    assert_int_equal(core_base64_encode(PLX_B64_URL, "foob", 4, NULL, 0), (size_t)-1);
    assert_int_equal(core_base64_decode(PLX_B64_STD, "Zm9v", 4, raw, sizeof raw, &n),
                     PLX_ERR_TOO_LARGE);
    assert_int_equal(core_base64_decode(PLX_B64_STD, "Zm8=", 4, raw, sizeof raw, &n),
                     PLX_OK);
    assert_int_equal(n, 2);
    /* malformed wins over too small */
    assert_int_equal(core_base64_decode(PLX_B64_STD, "Zm9*", 4, raw, 0, &n),
                     PLX_ERR_INVALID);
}

static void test_base64_round_trip(void **state)
{
    unsigned char in[64], back[64];
    char enc[PLX_B64_LEN(64)];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t len = 0; len <= sizeof in; len++) {
        for (int v = PLX_B64_STD; v <= PLX_B64_URL; v++) {
            size_t e = core_base64_encode((plx_b64_t)v, in, len, enc, sizeof enc);
            assert_int_not_equal(e, (size_t)-1);
            assert_int_equal(core_base64_decode((plx_b64_t)v, enc, e, back,
                                                sizeof back, &n), PLX_OK);
            assert_int_equal(n, len);
            assert_memory_equal(back, in, len);
        }
    }
}

/* ---- hex -------------------------------------------------------------- */

static void test_hex(void **state)
{
    static const unsigned char bytes[] = { 0x00, 0x7f, 0x80, 0xff, 0x1a };
    char out[PLX_HEX_LEN(5)], big[PLX_HEX_LEN(6)];
    unsigned char raw[5];
    size_t n;

    (void)state;
    /* RFC 4648 section 10, base16 */
    assert_int_equal(core_hex_encode("foobar", 6, big, sizeof big), 12);
    assert_string_equal(big, "666f6f626172");
    assert_int_equal(core_hex_encode(bytes, 5, out, sizeof out), 10);
    assert_string_equal(out, "007f80ff1a");
    assert_int_equal(core_hex_encode(bytes, 5, out, sizeof out - 1), (size_t)-1);
    assert_string_equal(out, "");
    assert_int_equal(core_hex_decode("007F80fF1a", 10, raw, sizeof raw, &n), PLX_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(raw, bytes, 5);
    assert_int_equal(core_hex_decode("abc", 3, raw, sizeof raw, &n), PLX_ERR_INVALID);
    assert_int_equal(core_hex_decode("0g", 2, raw, sizeof raw, &n), PLX_ERR_INVALID);
    assert_int_equal(core_hex_decode("0 ", 2, raw, sizeof raw, &n), PLX_ERR_INVALID);
    assert_int_equal(core_hex_decode("001122334455", 12, raw, sizeof raw, &n),
                     PLX_ERR_TOO_LARGE);
    assert_int_equal(core_hex_decode("", 0, raw, sizeof raw, &n), PLX_OK);
    assert_int_equal(n, 0);
}

/* ---- UUIDs ------------------------------------------------------------ */

static void test_uuid_valid_parse_format(void **state)
{
    static const char *const bad[] = {
        "", "123e4567-e89b-12d3-a456-42661417400",   /* short */
        "123e4567-e89b-12d3-a456-4266141740000",      /* long */
        "123e4567e89b-12d3-a456-4266141740000",       /* dash missing */
        "123e4567-e89b-12d3-a456_426614174000",
        "123e4567-e89b-12d3-a456-42661417400g",
        "{123e4567-e89b-12d3-a456-426614174000}",
        " 123e4567-e89b-12d3-a456-426614174000",
    };
    uint8_t b[16];
    char out[37];

    (void)state;
    assert_true(core_uuid_valid("123e4567-e89b-12d3-a456-426614174000"));
    assert_true(core_uuid_valid("123E4567-E89B-12D3-A456-426614174000"));
    assert_false(core_uuid_valid(NULL));
    for (size_t i = 0; i < CORE_ARRAY_LEN(bad); i++) {
        assert_false(core_uuid_valid(bad[i]));
        assert_int_equal(core_uuid_parse(bad[i], b), PLX_ERR_INVALID);
    }
    assert_int_equal(core_uuid_parse("123E4567-E89B-12D3-A456-426614174000", b), PLX_OK);
    assert_int_equal(b[0], 0x12);
    assert_int_equal(b[15], 0x00);
    assert_int_equal(b[6], 0x12);
    core_uuid_format(b, out);
    assert_string_equal(out, "123e4567-e89b-12d3-a456-426614174000");
}

static void check_shape(const char *s, char version)
{
    assert_int_equal(strlen(s), 36);
    assert_true(core_uuid_valid(s));
    assert_int_equal(s[14], version);
    assert_non_null(strchr("89ab", s[19]));   /* variant 10xx */
}

static void test_uuid_v4(void **state)
{
    char a[37], b[37];

    (void)state;
    assert_int_equal(core_uuid_new(4, a), PLX_OK);
    assert_int_equal(core_uuid_new(4, b), PLX_OK);
    check_shape(a, '4');
    check_shape(b, '4');
    assert_string_not_equal(a, b);
    assert_int_equal(core_uuid_new(1, a), PLX_ERR_INVALID);
    assert_string_equal(a, "");
    assert_int_equal(core_uuid_new(5, a), PLX_ERR_INVALID);
}

static void test_uuid_v7_order(void **state)
{
    enum { N = 5000 };
    char (*ids)[37] = calloc(N, 37);
    uint8_t b[16];
    uint64_t ms, now_ms;
    struct timespec ts;

    (void)state;
    assert_non_null(ids);
    clock_gettime(CLOCK_REALTIME, &ts);
    now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    /* many in the same millisecond: still strictly increasing as text,
     * which is how PostgreSQL and clients compare them */
    for (int i = 0; i < N; i++) {
        assert_int_equal(core_uuid_new(7, ids[i]), PLX_OK);
        check_shape(ids[i], '7');
        if (i > 0)
            assert_true(strcmp(ids[i - 1], ids[i]) < 0);
    }
    /* the first 48 bits are the Unix time in milliseconds, now or a few
     * milliseconds ahead when counters were used up */
    assert_int_equal(core_uuid_parse(ids[0], b), PLX_OK);
    ms = 0;
    for (int i = 0; i < 6; i++)
        ms = ms << 8 | b[i];
    assert_true(ms >= now_ms && ms < now_ms + 5000);
    free(ids);
}

/* ---- UTF-8 ------------------------------------------------------------ */

static const struct { const char *s; size_t len; const char *why; } utf8_bad[] = {
    { "\x80", 1, "a lone continuation byte" },
    { "\xbf", 1, "a lone continuation byte" },
    { "\xc0\xaf", 2, "overlong '/' (2 bytes)" },
    { "\xc1\xbf", 2, "overlong (2 bytes)" },
    { "\xe0\x80\xaf", 3, "overlong '/' (3 bytes)" },
    { "\xe0\x9f\xbf", 3, "overlong U+07FF (3 bytes)" },
    { "\xf0\x80\x80\xaf", 4, "overlong '/' (4 bytes)" },
    { "\xf0\x8f\xbf\xbf", 4, "overlong U+FFFF (4 bytes)" },
    { "\xed\xa0\x80", 3, "surrogate U+D800" },
    { "\xed\xbf\xbf", 3, "surrogate U+DFFF" },
    { "\xed\xa0\xbd\xed\xb8\x80", 6, "a CESU-8 surrogate pair" },
    { "\xf4\x90\x80\x80", 4, "U+110000" },
    { "\xf5\x80\x80\x80", 4, "lead F5" },
    { "\xf7\xbf\xbf\xbf", 4, "lead F7" },
    { "\xf8\x88\x80\x80\x80", 5, "a 5-byte form" },
    { "\xfc\x84\x80\x80\x80\x80", 6, "a 6-byte form" },
    { "\xfe", 1, "FE" },
    { "\xff", 1, "FF" },
    { "\xc3", 1, "truncated 2-byte" },
    { "\xe2\x82", 2, "truncated 3-byte" },
    { "\xf0\x9f\x98", 3, "truncated 4-byte" },
    { "\xe2\x28\xa1", 3, "continuation missing in the middle" },
    { "ab\xc3(", 4, "lead followed by ASCII" },
    { "a\0b", 3, "NUL" },
};

static void test_utf8_valid(void **state)
{
    (void)state;
    assert_true(core_utf8_valid("plain", 5));
    assert_true(core_utf8_valid("", 0));
    assert_true(core_utf8_valid(NULL, 0));
    assert_false(core_utf8_valid(NULL, 1));
    assert_true(core_utf8_valid("caf\xc3\xa9", 5));
    assert_true(core_utf8_valid("\xc2\x80", 2));                 /* U+0080 */
    assert_true(core_utf8_valid("\xdf\xbf", 2));                 /* U+07FF */
    assert_true(core_utf8_valid("\xe0\xa0\x80", 3));             /* U+0800 */
    assert_true(core_utf8_valid("\xed\x9f\xbf", 3));             /* U+D7FF */
    assert_true(core_utf8_valid("\xee\x80\x80", 3));             /* U+E000 */
    assert_true(core_utf8_valid("\xef\xbf\xbd", 3));             /* U+FFFD */
    assert_true(core_utf8_valid("\xf0\x90\x80\x80", 4));         /* U+10000 */
    assert_true(core_utf8_valid("\xf0\x9f\x98\x80", 4));         /* emoji */
    assert_true(core_utf8_valid("\xf4\x8f\xbf\xbf", 4));         /* U+10FFFF */
    for (size_t i = 0; i < CORE_ARRAY_LEN(utf8_bad); i++) {
        if (core_utf8_valid(utf8_bad[i].s, utf8_bad[i].len))
            fail_msg("accepted %s", utf8_bad[i].why);
        assert_int_equal(core_utf8_chars(utf8_bad[i].s, utf8_bad[i].len), -1);
    }
}

static void test_utf8_chars(void **state)
{
    (void)state;
    assert_int_equal(core_utf8_chars("", 0), 0);
    assert_int_equal(core_utf8_chars("abc", 3), 3);
    assert_int_equal(core_utf8_chars("caf\xc3\xa9", 5), 4);
    assert_int_equal(core_utf8_chars("\xe2\x82\xac\xf0\x9f\x98\x80", 7), 2);
    /* a length that cuts a character is invalid, not shorter */
    assert_int_equal(core_utf8_chars("\xe2\x82\xac", 2), -1);
}

static void test_utf8_repair(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(core_utf8_repair("caf\xc3\xa9", 5, out, sizeof out), 5);
    assert_string_equal(out, "caf\xc3\xa9");
    /* each maximal invalid prefix becomes one U+FFFD (Unicode 15, 3.9) */
    assert_int_equal(core_utf8_repair("a\xe2\x82(b", 5, out, sizeof out), 6);
    assert_string_equal(out, "a\xef\xbf\xbd(b");
    assert_int_equal(core_utf8_repair("\xc0\xaf", 2, out, sizeof out), 6);
    assert_string_equal(out, "\xef\xbf\xbd\xef\xbf\xbd");
    assert_int_equal(core_utf8_repair("\xed\xa0\x80", 3, out, sizeof out), 9);
    assert_int_equal(core_utf8_repair("x\0y", 3, out, sizeof out), 5);
    assert_string_equal(out, "x\xef\xbf\xbdy");
    assert_int_equal(core_utf8_repair("\xf0\x9f\x98", 3, out, sizeof out), 3);
    assert_string_equal(out, "\xef\xbf\xbd");
    /* cut at a character boundary to fit: "ab" and not half of the euro */
    assert_int_equal(core_utf8_repair("ab\xe2\x82\xac", 5, out, 5), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(core_utf8_repair("ab\xe2\x82\xac", 5, out, 6), 5);
    assert_int_equal(core_utf8_repair("abc", 3, out, 1), 0);
    assert_string_equal(out, "");
    assert_int_equal(core_utf8_repair("abc", 3, out, 0), 0);
    /* whatever comes in, what comes out is valid */
    for (size_t i = 0; i < CORE_ARRAY_LEN(utf8_bad); i++) {
        size_t n = core_utf8_repair(utf8_bad[i].s, utf8_bad[i].len, out, sizeof out);
        assert_true(core_utf8_valid(out, n));
        assert_int_equal(strlen(out), n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_vectors),
        cmocka_unit_test(test_base64_alphabets),
        cmocka_unit_test(test_base64_strict),
        cmocka_unit_test(test_base64_bounds),
        cmocka_unit_test(test_base64_round_trip),
        cmocka_unit_test(test_hex),
        cmocka_unit_test(test_uuid_valid_parse_format),
        cmocka_unit_test(test_uuid_v4),
        cmocka_unit_test(test_uuid_v7_order),
        cmocka_unit_test(test_utf8_valid),
        cmocka_unit_test(test_utf8_chars),
        cmocka_unit_test(test_utf8_repair),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
