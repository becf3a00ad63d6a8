/*
 * password.c - password hashing (argon2id) and the password policy
 *
 * Hashes are libargon2 PHC strings with OWASP's m=19456 KiB, t=2, p=1,
 * a 16-byte random salt and a 32-byte tag. Verification refuses hashes
 * that are not argon2id v=19, are weaker than OWASP's table of equal-
 * strength minimums, or would cost absurd memory, before libargon2 sees
 * them; the comparison itself is libargon2's constant-time one.
 *
 * The policy follows ASVS 4.0.3 V2.1: length in code points (12 by
 * default, at most 128, runs of spaces count once toward the minimum), no
 * composition rules, no email local part, no predictable shapes (runs,
 * keyboard walks, repeats), and a check against common passwords with
 * cracklib's dictionary. Which of cracklib's verdicts we honour, and why,
 * is explained above password_crack().
 */
#include "config.h"
#include "crypto.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <argon2.h>
#include <crack.h>
#include <packer.h>

#define ARGON_T       2
#define ARGON_M_KIB   19456
#define ARGON_P       1
#define ARGON_SALT    16
#define ARGON_TAG     32
/* refuse stored hashes that would take this much memory or time */
#define ARGON_M_MAX   (1024 * 1024)
#define ARGON_T_MAX   16
#define ARGON_P_MAX   16

#define PW_MAX_CHARS  128
#define PW_FLOOR      8
/* 128 code points of 4 bytes fit; anything longer never was a password */
#define PW_MAX_BYTES  1024
/* "word" + at most this many digits and symbols counts as the word */
#define PW_DECORATION 6
/* a straight run this long counts as one character */
#define PW_RUN        5
/* cracklib's MAXWORDLEN, less the NUL */
#define PW_WORD_MAX   31

/* ---- hashing -------------------------------------------------------- */

/* Each argon2id run holds ARGON_M_KIB of memory and a core for ~50 ms. With
 * a thousand worker threads a login flood would ask for gigabytes at once,
 * so at most ARGON_CONCURRENCY runs go together and the rest queue here.
 * The wait is bounded by the queue times the (fixed) cost of one run; the
 * auth rate-limit class bounds the queue. */
#define ARGON_CONCURRENCY 4

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_busy;

static void gate_enter(void)
{
    pthread_mutex_lock(&gate_mu);
    while (gate_busy >= ARGON_CONCURRENCY)
        pthread_cond_wait(&gate_cv, &gate_mu);
    gate_busy++;
    pthread_mutex_unlock(&gate_mu);
}

static void gate_leave(void)
{
    pthread_mutex_lock(&gate_mu);
    gate_busy--;
    pthread_cond_signal(&gate_cv);
    pthread_mutex_unlock(&gate_mu);
}

plx_status_t identity_password_hash(const char *password,
                                    char out[IDENTITY_HASH_MAX])
{
    unsigned char salt[ARGON_SALT];

    if (!password || !out)
        return PLX_ERR_INVALID;
    out[0] = '\0';
    size_t len = strnlen(password, PW_MAX_BYTES + 1);
    if (len > PW_MAX_BYTES)
        return PLX_ERR_INVALID;
    if (!core_random_bytes(salt, sizeof salt))
        return PLX_ERR_INTERNAL;
    gate_enter();
    int rc = argon2id_hash_encoded(ARGON_T, ARGON_M_KIB, ARGON_P, password,
                                   len, salt, sizeof salt, ARGON_TAG, out,
                                   IDENTITY_HASH_MAX);
    gate_leave();
    if (rc == ARGON2_OK)
        return PLX_OK;
    out[0] = '\0';
    LOG_ERROR("argon2id hashing failed: %s", argon2_error_message(rc));
    return rc == ARGON2_MEMORY_ALLOCATION_ERROR ? PLX_ERR_NOMEM
                                                : PLX_ERR_INTERNAL;
}

/* a decimal number of at most 9 digits, advancing *p */
static bool parse_u32(const char **p, uint32_t *out)
{
    uint32_t v = 0;
    int n = 0;

    while (**p >= '0' && **p <= '9' && n < 9) {
        v = v * 10 + (uint32_t)(**p - '0');
        (*p)++;
        n++;
    }
    *out = v;
    return n > 0 && !(**p >= '0' && **p <= '9');
}

/* unpadded standard base64 of at least min characters, then term */
static bool parse_b64(const char **p, size_t min, char term)
{
    size_t n = 0;

    while ((**p >= 'A' && **p <= 'Z') || (**p >= 'a' && **p <= 'z') ||
           (**p >= '0' && **p <= '9') || **p == '+' || **p == '/') {
        (*p)++;
        n++;
    }
    return n >= min && **p == term;
}

/* OWASP's equal-strength minimums for argon2id (m in KiB, t) */
static bool params_strong(uint32_t m, uint32_t t, uint32_t par)
{
    static const uint32_t table[][2] = {
        { 47104, 1 }, { 19456, 2 }, { 12288, 3 }, { 9216, 4 }, { 7168, 5 },
    };

    if (par < 1 || par > ARGON_P_MAX || m > ARGON_M_MAX || t > ARGON_T_MAX)
        return false;
    for (size_t i = 0; i < CORE_ARRAY_LEN(table); i++)
        if (m >= table[i][0] && t >= table[i][1])
            return true;
    return false;
}

/* "$argon2id$v=19$m=M,t=T,p=P$<salt >= 16 bytes>$<tag >= 32 bytes>" */
static bool phc_acceptable(const char *phc)
{
    static const char prefix[] = "$argon2id$v=19$m=";
    const char *p = phc;
    uint32_t m, t, par;

    if (strnlen(phc, IDENTITY_HASH_MAX) >= IDENTITY_HASH_MAX)
        return false;
    if (strncmp(p, prefix, sizeof prefix - 1) != 0)
        return false;
    p += sizeof prefix - 1;
    if (!parse_u32(&p, &m) || strncmp(p, ",t=", 3) != 0)
        return false;
    p += 3;
    if (!parse_u32(&p, &t) || strncmp(p, ",p=", 3) != 0)
        return false;
    p += 3;
    if (!parse_u32(&p, &par) || *p++ != '$')
        return false;
    /* 16 bytes are 22 base64 characters, 32 bytes are 43 */
    if (!parse_b64(&p, 22, '$'))
        return false;
    p++;
    if (!parse_b64(&p, 43, '\0'))
        return false;
    return params_strong(m, t, par);
}

bool identity_password_verify(const char *phc, const char *password)
{
    if (!phc || !password)
        return false;
    size_t len = strnlen(password, PW_MAX_BYTES + 1);
    if (len > PW_MAX_BYTES)
        return false;
    if (!phc_acceptable(phc)) {
        LOG_WARN("password hash refused: not argon2id v=19 with at least "
                 "owasp parameters");
        return false;
    }
    gate_enter();
    bool ok = argon2id_verify(phc, password, len) == ARGON2_OK;
    gate_leave();
    return ok;
}

/* ---- policy: length and email ---------------------------------------- */

/* code points of valid UTF-8: every byte that is not a continuation byte */
static size_t utf8_chars(const char *s, size_t len, bool collapse_spaces)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)s[i] & 0xc0) == 0x80)
            continue;
        if (collapse_spaces && s[i] == ' ' && i > 0 && s[i - 1] == ' ')
            continue;
        n++;
    }
    return n;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool contains_ci(const char *hay, size_t hlen, const char *needle,
                        size_t nlen)
{
    for (size_t i = 0; nlen && i + nlen <= hlen; i++) {
        size_t k = 0;
        while (k < nlen && lower(hay[i + k]) == lower(needle[k]))
            k++;
        if (k == nlen)
            return true;
    }
    return false;
}

/* the email's local part, without a "+tag" when what is left is still
 * long enough to mean something; false when there is none to check */
static bool email_local(const char *email, char *out, size_t outlen)
{
    if (!email)
        return false;
    const char *at = strrchr(email, '@');
    size_t len = at ? (size_t)(at - email) : strlen(email);
    const char *plus = memchr(email, '+', len);
    if (plus && (size_t)(plus - email) >= 3)
        len = (size_t)(plus - email);
    if (len < 3 || len >= outlen)
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = lower(email[i]);   /* cracklib compares in lower case */
    out[len] = '\0';
    return true;
}

/* ---- policy: predictable shapes -------------------------------------- */

/* Keys of a US layout in quarter-key units: row and horizontal centre,
 * with the stagger of real keyboards, so "1q", "qa", "az" are neighbours. */
static bool key_pos(char c, int *row, int *x)
{
    static const char *const rows[] = { "`1234567890-=", "qwertyuiop[]\\",
                                        "asdfghjkl;'", "zxcvbnm,./" };
    static const int offset4[] = { 0, 6, 7, 9 };
    static const char shifted[] = "~!@#$%^&*()_+{}|:\"<>?";
    static const char base[] = "`1234567890-=[]\\;',./";

    const char *s = strchr(shifted, c);
    if (c && s)
        c = base[s - shifted];
    c = lower(c);
    for (int r = 0; r < 4; r++) {
        const char *k = c ? strchr(rows[r], c) : NULL;
        if (k) {
            *row = r;
            *x = offset4[r] + 4 * (int)(k - rows[r]);
            return true;
        }
    }
    return false;
}

static bool is_alnum(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z');
}

/* same key, next or previous letter or digit, or a neighbouring key */
static bool pair_predictable(char a, char b)
{
    int ra, xa, rb, xb;

    a = lower(a);
    b = lower(b);
    if (a == b)
        return true;
    if (is_alnum(a) && is_alnum(b) && (b == a + 1 || b == a - 1))
        return true;
    if (!key_pos(a, &ra, &xa) || !key_pos(b, &rb, &xb))
        return false;
    return abs(ra - rb) <= 1 && abs(xa - xb) <= 4;
}

enum { ST_SAME = 1, ST_UP = 2, ST_DOWN = 4, ST_KEY_R = 8, ST_KEY_L = 16 };

/* the ways a step from a to b can continue a straight run */
static unsigned step_kind(char a, char b)
{
    unsigned k = 0;
    int ra, xa, rb, xb;

    if ((a | b) & 0x80)
        return 0;
    a = lower(a);
    b = lower(b);
    if (a == b)
        return ST_SAME;
    if (is_alnum(a) && is_alnum(b))
        k |= (b == a + 1 ? ST_UP : 0) | (b == a - 1 ? ST_DOWN : 0);
    if (key_pos(a, &ra, &xa) && key_pos(b, &rb, &xb) && ra == rb)
        k |= (xb == xa + 4 ? ST_KEY_R : 0) | (xb == xa - 4 ? ST_KEY_L : 0);
    return k;
}

/* Code points left when every straight run of PW_RUN or more ("abcde",
 * "54321", "qwert", "aaaaa") counts as one: "monkey123456" is 7. Scattered
 * neighbours shorten nothing; by chance a run of five is rare in random
 * digits (well under 1 in 100 at 12) and rarer still with letters. */
static size_t straight_collapsed(const char *pw, size_t len, size_t chars)
{
    size_t removed = 0, i = 0;

    while (i + 1 < len) {
        unsigned mask = step_kind(pw[i], pw[i + 1]);
        size_t j = i + 1;
        while (mask && j + 1 < len && (mask & step_kind(pw[j], pw[j + 1]))) {
            mask &= step_kind(pw[j], pw[j + 1]);
            j++;
        }
        if (mask && j - i + 1 >= PW_RUN) {
            removed += j - i;
            i = j;
        } else {
            i++;
        }
    }
    return chars > removed ? chars - removed : 0;
}

/* Walks that turn ("zaq12wsxcde3", "1q2w3e4r") and repeats of a chunk
 * ("passwordpassword"): at least three quarters of all neighbouring pairs
 * predictable, or the whole a repetition. Relative to the length, so long
 * passphrases are judged by the same measure as short passwords. */
static bool shape_predictable(const char *pw, size_t len)
{
    size_t pred = 0;

    for (size_t i = 0; i + 1 < len; i++)
        pred += pair_predictable(pw[i], pw[i + 1]);
    if (len > 1 && pred * 4 >= (len - 1) * 3)
        return true;
    for (size_t period = 1; period <= len / 2; period++) {
        size_t i = 0;
        while (i + period < len && lower(pw[i]) == lower(pw[i + period]))
            i++;
        if (i + period == len)
            return true;
    }
    return false;
}

/* ---- policy: cracklib ------------------------------------------------ */

static pthread_mutex_t crack_lock = PTHREAD_MUTEX_INITIALIZER;

typedef enum crack_verdict {
    CRACK_OK,            /* nothing to say, or a verdict we ignore */
    CRACK_COMMON,
    CRACK_FEW_CHARS,
    CRACK_SEQUENCE,
    CRACK_USER,
    CRACK_NO_DICT
} crack_verdict_t;

/* cracklib's messages in English; plexusd never calls setlocale, so
 * cracklib's gettext calls return them untranslated */
static const struct {
    const char *text;
    crack_verdict_t verdict;
} crack_map[] = {
    { "dictionary word", CRACK_COMMON },         /* also "(reversed)" */
    { "DIFFERENT characters", CRACK_FEW_CHARS },
    { "all whitespace", CRACK_FEW_CHARS },
    { "simplistic/systematic", CRACK_SEQUENCE },
    { "based on your username", CRACK_USER },
    { "error loading dictionary", CRACK_NO_DICT },
};

/* FascistCheckUser with an explicit user: FascistCheck would compare the
 * password with the account plexusd runs as (getpwuid), which says
 * nothing about our users ("root123" is "based on your username" when
 * running as root). The user passed is the email's local part, or bytes
 * that no valid UTF-8 password can contain. cracklib keeps static state
 * and is not thread-safe, hence the lock. */
static crack_verdict_t crack_check(const char *pw, const char *user)
{
    static const char no_user[] = "\xff\xff\xff";
    const char *msg;

    pthread_mutex_lock(&crack_lock);
    msg = FascistCheckUser(pw, GetDefaultCracklibDict(),
                           user ? user : no_user, NULL);
    pthread_mutex_unlock(&crack_lock);
    if (!msg)
        return CRACK_OK;
    for (size_t i = 0; i < CORE_ARRAY_LEN(crack_map); i++)
        if (strstr(msg, crack_map[i].text))
            return crack_map[i].verdict;
    return CRACK_OK;
}

static bool word_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           ((unsigned char)c & 0x80);
}

/* The password without leading and trailing digits, punctuation and
 * spaces ("Password1234!" -> "password"), lower case, when that leaves a
 * possible dictionary word (4..31 bytes) and at most PW_DECORATION
 * characters were cut: the word-plus-year shape crackers try first. With
 * more cut away the decoration itself carries the strength. */
static bool password_core(const char *pw, size_t len, char *out, size_t outlen)
{
    size_t b = 0, e = len;

    while (b < e && !word_char(pw[b]))
        b++;
    while (e > b && !word_char(pw[e - 1]))
        e--;
    if (e - b < 4 || e - b >= outlen || len - (e - b) > PW_DECORATION)
        return false;
    for (size_t i = b; i < e; i++)
        out[i - b] = lower(pw[i]);
    out[e - b] = '\0';
    return true;
}

/* "p@ssw0rd" -> "password"; '1' is read as i or as l */
static void unleet(const char *in, char one, char *out)
{
    static const char from[] = "013457@$!", to[] = "o?eastasi";

    for (; *in; in++, out++) {
        const char *f = strchr(from, *in);
        *out = !f ? *in : *f == '1' ? one : to[f - from];
    }
    *out = '\0';
}

/* Exact lookups in cracklib's dictionary (packer.h), without cracklib's
 * mangling rules: those trim up to three characters, which on a short
 * core finds three-letter words in random strings. FindPW answers the
 * word count for "not found"; a word no dictionary holds learns it.
 * Called with crack_lock held. */
static bool dict_has_core(const char *core)
{
    char mode[] = "r", none[] = "\x01", v[4][PW_WORD_MAX + 1];
    PWDICT *d = PWOpen(GetDefaultCracklibDict(), mode);
    bool hit = false;

    if (!d)
        return false;   /* FascistCheckUser has already said so */
    unsigned int notfound = FindPW(d, none);
    strcpy(v[0], core);
    unleet(core, 'i', v[1]);
    unleet(core, 'l', v[2]);
    size_t n = strlen(core);
    for (size_t i = 0; i < n; i++)
        v[3][i] = core[n - 1 - i];          /* "drowssap" */
    v[3][n] = '\0';
    for (size_t i = 0; i < CORE_ARRAY_LEN(v); i++)
        hit |= FindPW(d, v[i]) != notfound;
    PWClose(d);
    return hit;
}

static bool core_is_word(const char *pw, size_t len)
{
    char core[PW_WORD_MAX + 1];

    if (!password_core(pw, len, core, sizeof core))
        return false;
    pthread_mutex_lock(&crack_lock);
    bool hit = dict_has_core(core);
    pthread_mutex_unlock(&crack_lock);
    identity_wipe(core, sizeof core);
    return hit;
}

/*
 * Which cracklib verdicts count (cracklib stops at its first verdict, in
 * this order: length, distinct characters, whitespace, sequences, NI
 * number, username, dictionary):
 *  - "too short", "WAY too short": ignored; our length rule is the one
 *    users see, and cracklib's 6 is below it anyway.
 *  - "not enough DIFFERENT characters", "all whitespace": honoured.
 *  - "too simplistic/systematic": ignored. cracklib counts letters or
 *    digits that are neighbours in the alphabet (st, de, no, 89) anywhere
 *    in the string and refuses more than four, whatever the length:
 *    ordinary passphrases ("first stop then rest almost done") and one
 *    random 16-digit string in eight fail it. straight_collapsed() and
 *    shape_predictable() judge sequences relative to the length instead.
 *    As cracklib stops at its first verdict, its dictionary rules do not
 *    run then; core_is_word() still does.
 *  - "National Insurance number": ignored (a UK 9-character format).
 *  - "based on your username": honoured; the username is the email's
 *    local part.
 *  - "based on a (reversed) dictionary word": honoured. cracklib trims
 *    at most three characters from each end, so "password1234" passes
 *    it; core_is_word() looks the undecorated core up as well.
 *  - "error loading dictionary": fail closed, logged. cracklib-runtime is
 *    a dependency; a server without its dictionary must be noticed.
 *  - anything else (a message from a newer cracklib): ignored.
 */
static const char *password_crack(const char *pw, size_t len, const char *user)
{
    switch (crack_check(pw, user)) {
    case CRACK_COMMON:
        return "is too common";
    case CRACK_FEW_CHARS:
        return "has too few different characters";
    case CRACK_USER:
        return "must not contain your email address";
    case CRACK_NO_DICT:
        LOG_ERROR("cracklib dictionary \"%s\" cannot be read; refusing new "
                  "passwords (install cracklib-runtime)",
                  GetDefaultCracklibDict());
        return "cannot be checked right now, try again later";
    case CRACK_SEQUENCE:   /* see above: not honoured */
    case CRACK_OK:
        break;
    }
    if (core_is_word(pw, len))
        return "is too common";
    return NULL;
}

static const char *too_short(int min)
{
    static _Thread_local char msg[48];

    snprintf(msg, sizeof msg, "must be at least %d characters", min);
    return msg;
}

/* The reason is a static string, or for "too short" a thread-local one
 * valid until this thread's next call. min_length is clamped to 8..128. */
const char *identity_password_weakness(const char *password, const char *email,
                                       int min_length)
{
    char local[256];

    if (!password || !*password)
        return "is required";
    size_t len = strnlen(password, PW_MAX_BYTES + 1);
    if (len > PW_MAX_BYTES)
        return "must be at most 128 characters";
    if (!core_utf8_valid(password, len))
        return "must be valid UTF-8 text";
    size_t chars = utf8_chars(password, len, false);
    if (chars > PW_MAX_CHARS)
        return "must be at most 128 characters";

    int min = min_length < PW_FLOOR ? PW_FLOOR
            : min_length > PW_MAX_CHARS ? PW_MAX_CHARS : min_length;
    if (utf8_chars(password, len, true) < (size_t)min)
        return too_short(min);

    bool has_local = email_local(email, local, sizeof local);
    if (has_local && contains_ci(password, len, local, strlen(local)))
        return "must not contain your email address";
    if (straight_collapsed(password, len, chars) < (size_t)min ||
        shape_predictable(password, len))
        return "is too predictable";
    return password_crack(password, len, has_local ? local : NULL);
}
