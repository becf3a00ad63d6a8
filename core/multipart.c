/*
 * multipart.c - multipart/form-data as a push parser
 *
 * RFC 2046 section 5.1 frames the body:
 *
 *   preamble CRLF "--" boundary padding CRLF headers CRLF content
 *            CRLF "--" boundary padding CRLF headers CRLF content ...
 *            CRLF "--" boundary "--" epilogue
 *
 * The parser pretends the body starts with a CRLF, so the first
 * delimiter, which may open the body, looks like all the others. Content
 * is searched for the delimiter "CRLF--boundary" byte by byte, carrying a
 * partial match across calls. CR never occurs in a boundary, so on a
 * mismatch the bytes held are exactly a prefix of the delimiter: they are
 * handed on from the delimiter itself, and only the current byte can
 * start a new match. Nothing of the content is buffered.
 *
 * Line ends are CRLF only: a bare LF in a header block is refused, and a
 * body framed with LF alone never shows its closing delimiter. The
 * delimiter must be followed by "--", or by blanks and CRLF; anything else
 * after it (the boundary appearing inside content) is bad framing.
 *
 * Part headers follow RFC 7578: Content-Disposition form-data with a name
 * (required) and a filename; filename* is ignored (section 4.2 forbids
 * senders to use it); Content-Type defaults to text/plain. Quoted values
 * unescape \" and \\ and keep any other backslash, as browsers send
 * Windows paths unescaped.
 */
#include "config.h"
#include "multipart.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MP_PAD_MAX 256   /* blanks after a delimiter */
/* a header block is buffered three times over: keep a module's bound sane */
#define MP_HEADER_CAP ((size_t)1024 * 1024)

typedef enum mp_state {
    MP_PREAMBLE = 0,
    MP_DELIM_TAIL,   /* right after "CRLF--boundary" */
    MP_DASH2,        /* after "-": the close delimiter's second dash */
    MP_PAD,          /* blanks before CRLF */
    MP_LF,           /* after CR */
    MP_HEADERS,
    MP_DATA,
    MP_EPILOGUE
} mp_state_t;

struct core_mp {
    size_t max_parts, max_part, max_total, max_header;
    plx_status_t (*part_begin)(const plx_part_t *, void *);
    plx_status_t (*part_data)(const char *, size_t, void *);
    plx_status_t (*part_end)(void *);
    void *arg;

    char   delim[4 + CORE_MP_BOUNDARY_MAX + 1];   /* "\r\n--" boundary */
    size_t dlen;
    size_t match;       /* bytes of delim matched so far */

    mp_state_t   state;
    plx_status_t failed;
    size_t       total, parts, part_bytes, pad;
    bool         reading;   /* the current part was accepted */

    char  *hdr;         /* one part's header block, max_header bytes */
    size_t hdr_len;
    char  *vals;        /* its values, unquoted, NUL-terminated */
    char  *scratch;     /* one value being read */
    char   err[192];
};

#define SPEC(s, f, dflt)                                                     \
    ((s)->size >= offsetof(plx_multipart_t, f) + sizeof((s)->f) && (s)->f   \
     ? (s)->f : (dflt))

/* ---- header values -------------------------------------------------------- */

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static const char *skip_blanks(const char *s)
{
    while (is_blank(*s))
        s++;
    return s;
}

/* A parameter value at *pp, quoted or not, into out (cap includes the
 * NUL). Moves *pp past it. false when unterminated, empty and unquoted,
 * too long, or holding a control character. */
static bool read_value(const char **pp, char *out, size_t cap)
{
    const char *p = *pp;
    size_t n = 0;

    if (*p == '"') {
        for (p++; *p != '"'; p++) {
            if (!*p)
                return false;
            if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                p++;
            if ((unsigned char)*p < 0x20 && *p != '\t')
                return false;
            if (n + 1 >= cap)
                return false;
            out[n++] = *p;
        }
        p++;
    } else {
        for (; *p && *p != ';' && !is_blank(*p); p++) {
            if ((unsigned char)*p < 0x20 || *p == '"' || n + 1 >= cap)
                return false;
            out[n++] = *p;
        }
        if (n == 0)
            return false;
    }
    out[n] = '\0';
    *pp = p;
    return true;
}

/* A parameter name (a token, lower-cased) and its "=", into key[32]. */
static bool read_key(const char **pp, char key[32])
{
    const char *p = *pp;
    size_t n = 0;

    while (*p && *p != '=' && *p != ';' && !is_blank(*p)) {
        if (n == 31 || (unsigned char)*p <= 0x20 || *p == '"')
            return false;
        key[n++] = (char)tolower((unsigned char)*p++);
    }
    key[n] = '\0';
    p = skip_blanks(p);
    if (n == 0 || *p != '=')
        return false;
    *pp = skip_blanks(p + 1);
    return true;
}

/* Walk "; key=value" parameters after a type; fn sees each one and says
 * whether it is acceptable. */
typedef bool (*param_fn)(const char *key, const char *value, void *ctx);

static bool read_params(const char *p, char *buf, size_t cap, param_fn fn,
                        void *ctx)
{
    char key[32];

    for (;;) {
        p = skip_blanks(p);
        if (!*p)
            return true;
        if (*p != ';')
            return false;
        p = skip_blanks(p + 1);
        if (!*p)
            return true;   /* a trailing ";" is common enough */
        if (!read_key(&p, key) || !read_value(&p, buf, cap) ||
            !fn(key, buf, ctx))
            return false;
    }
}

/* the type before the parameters, compared case-insensitively */
static const char *type_is(const char *s, const char *type)
{
    size_t n = strlen(type);

    s = skip_blanks(s);
    if (strncasecmp(s, type, n) != 0)
        return NULL;
    s += n;
    return (*s == '\0' || *s == ';' || is_blank(*s)) ? s : NULL;
}

/* ---- the boundary --------------------------------------------------------- */

/* RFC 2046: bchars, not ending with a space */
static bool boundary_ok(const char *b)
{
    size_t n = strlen(b);

    if (n == 0 || n > CORE_MP_BOUNDARY_MAX || b[n - 1] == ' ')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)b[i]) && !strchr("'()+_,-./:=? ", b[i]))
            return false;
    return true;
}

typedef struct bparam {
    char *out;
    int   seen;
    bool  bad;
} bparam_t;

static bool boundary_param(const char *key, const char *value, void *ctx)
{
    bparam_t *b = ctx;

    if (strcmp(key, "boundary") != 0)
        return true;
    if (b->seen++ || !boundary_ok(value)) {
        b->bad = true;
        return false;
    }
    strcpy(b->out, value);
    return true;
}

plx_status_t core_mp_boundary(const char *content_type,
                              char out[CORE_MP_BOUNDARY_MAX + 1],
                              char *err, size_t errlen)
{
    char buf[256];
    bparam_t b = { .out = out };
    const char *rest;

    out[0] = '\0';
    if (!content_type || !(rest = type_is(content_type, "multipart/form-data"))) {
        snprintf(err, errlen, "expected Content-Type multipart/form-data");
        return PLX_ERR_INVALID;
    }
    bool ok = read_params(rest, buf, sizeof buf, boundary_param, &b);
    if (!b.bad && ok && b.seen)
        return PLX_OK;
    snprintf(err, errlen, "%s", b.bad
             ? "expected one boundary of 1 to 70 characters (RFC 2046)"
             : !ok ? "the Content-Type parameters are malformed"
             : "the multipart/form-data Content-Type has no boundary");
    out[0] = '\0';
    return PLX_ERR_INVALID;
}

/* ---- the parser ----------------------------------------------------------- */

core_mp_t *core_mp_new(const plx_multipart_t *spec, const char *boundary,
                       void *arg)
{
    if (!spec || spec->size < sizeof(spec->size) || !boundary ||
        !boundary_ok(boundary))
        return NULL;
    size_t max_header = SPEC(spec, max_header_bytes, (size_t)8 * 1024);
    if (max_header > MP_HEADER_CAP)
        return NULL;
    core_mp_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->max_parts = SPEC(spec, max_parts, (size_t)16);
    p->max_part = SPEC(spec, max_part_bytes, (size_t)10 * 1024 * 1024);
    p->max_total = SPEC(spec, max_total_bytes, (size_t)32 * 1024 * 1024);
    p->max_header = max_header;
    p->part_begin = SPEC(spec, part_begin, NULL);
    p->part_data = SPEC(spec, part_data, NULL);
    p->part_end = SPEC(spec, part_end, NULL);
    p->arg = arg;
    p->dlen = (size_t)snprintf(p->delim, sizeof p->delim, "\r\n--%s", boundary);
    p->match = 2;   /* the CRLF the body is pretended to start with */
    p->state = MP_PREAMBLE;
    p->hdr = malloc(p->max_header + 1);
    p->vals = malloc(p->max_header + 3);
    p->scratch = malloc(p->max_header + 1);
    if (!p->hdr || !p->vals || !p->scratch || p->max_header > (size_t)64 * 1024 * 1024) {
        core_mp_free(p);
        return NULL;
    }
    return p;
}

void core_mp_free(core_mp_t *p)
{
    if (!p)
        return;
    free(p->hdr);
    free(p->vals);
    free(p->scratch);
    free(p);
}

const char *core_mp_error(const core_mp_t *p)
{
    return p ? p->err : "";
}

size_t core_mp_total(const core_mp_t *p)
{
    return p ? p->total : 0;
}

size_t core_mp_max_total(const core_mp_t *p)
{
    return p ? p->max_total : 0;
}

static plx_status_t fail(core_mp_t *p, plx_status_t st, const char *fmt, ...)
    PLX_PRINTF(3, 4);

static plx_status_t fail(core_mp_t *p, plx_status_t st, const char *fmt, ...)
{
    va_list ap;

    if (fmt) {
        va_start(ap, fmt);
        vsnprintf(p->err, sizeof p->err, fmt, ap);
        va_end(ap);
    }
    p->failed = st;
    return st;
}

/* content bytes: counted, and handed on when the part is being read */
static plx_status_t emit(core_mp_t *p, const char *buf, size_t n)
{
    if (n == 0 || p->state != MP_DATA)
        return PLX_OK;   /* the preamble is dropped */
    if (n > p->max_part - p->part_bytes)
        return fail(p, PLX_ERR_TOO_LARGE,
                    "expected parts of at most %zu bytes, found more",
                    p->max_part);
    p->part_bytes += n;
    if (!p->reading || !p->part_data)
        return PLX_OK;
    plx_status_t st = p->part_data(buf, n, p->arg);
    return st == PLX_OK ? PLX_OK : fail(p, st, NULL);
}

/* Content until the delimiter. *used: bytes consumed; *found: the
 * delimiter completed at d[*used - 1]. */
static plx_status_t scan(core_mp_t *p, const char *d, size_t len,
                         size_t *used, bool *found)
{
    size_t i = 0, run = 0;
    plx_status_t st;

    *found = false;
    while (i < len) {
        if (p->match == 0) {
            const char *cr = memchr(d + i, '\r', len - i);
            if (!cr) {
                i = len;
                break;
            }
            i = (size_t)(cr - d);
            if ((st = emit(p, d + run, i - run)) != PLX_OK)
                return st;
            p->match = 1;
            run = ++i;
        } else if (d[i] == p->delim[p->match]) {
            run = ++i;
            if (++p->match == p->dlen) {
                p->match = 0;
                *used = i;
                *found = true;
                return PLX_OK;
            }
        } else {
            /* the held bytes were a prefix of the delimiter after all;
             * d[i] is looked at again with no match */
            st = emit(p, p->delim, p->match);
            p->match = 0;
            run = i;
            if (st != PLX_OK)
                return st;
        }
    }
    *used = len;
    return emit(p, d + run, len - run);
}

typedef struct part_hdrs {
    core_mp_t  *p;
    char       *w;          /* next free byte of p->vals */
    const char *name, *filename;
    bool        bad;
} part_hdrs_t;

static bool disposition_param(const char *key, const char *value, void *ctx)
{
    part_hdrs_t *h = ctx;
    const char **slot = NULL;

    if (strcmp(key, "name") == 0)
        slot = &h->name;
    else if (strcmp(key, "filename") == 0)
        slot = &h->filename;
    if (!slot)
        return true;   /* filename* and extensions: ignored */
    if (*slot || !core_utf8_valid(value, strlen(value)))
        return false;
    size_t n = strlen(value) + 1;
    memcpy(h->w, value, n);
    *slot = h->w;
    h->w += n;
    return true;
}

/* One header line, NUL-terminated. */
static plx_status_t header_line(core_mp_t *p, char *line, part_hdrs_t *h,
                                const char **ctype, bool *seen_cd)
{
    char *colon = strchr(line, ':');

    if (is_blank(line[0]) || !colon || colon == line)
        return fail(p, PLX_ERR_INVALID, "a part header line is malformed");
    *colon = '\0';
    for (char *c = line; *c; c++)
        if ((unsigned char)*c <= 0x20 || *c == '"' || *c == '\x7f')
            return fail(p, PLX_ERR_INVALID, "a part header name is malformed");
    char *v = (char *)skip_blanks(colon + 1), *end = v + strlen(v);
    while (end > v && is_blank(end[-1]))
        *--end = '\0';

    if (strcasecmp(line, "Content-Disposition") == 0) {
        const char *rest = type_is(v, "form-data");
        if (*seen_cd || !rest ||
            !read_params(rest, p->scratch, p->max_header + 1,
                         disposition_param, h))
            return fail(p, PLX_ERR_INVALID, "expected Content-Disposition: "
                        "form-data with one name (RFC 7578)");
        *seen_cd = true;
    } else if (strcasecmp(line, "Content-Type") == 0) {
        if (*ctype || !*v || !core_utf8_valid(v, strlen(v)))
            return fail(p, PLX_ERR_INVALID, "a part's Content-Type is malformed");
        *ctype = v;
    }
    return PLX_OK;
}

/* The header block is complete in p->hdr: parse it and begin the part. */
static plx_status_t part_begin(core_mp_t *p)
{
    part_hdrs_t h = { .p = p, .w = p->vals };
    const char *ctype = NULL;
    bool seen_cd = false;
    size_t nlines = 0;
    plx_status_t st;

    p->hdr[p->hdr_len] = '\0';
    for (char *line = p->hdr, *eol; (eol = strstr(line, "\r\n")); line = eol + 2) {
        *eol = '\0';
        if (!*line)
            break;
        if (++nlines > CORE_MP_MAX_HEADERS)
            return fail(p, PLX_ERR_TOO_LARGE, "expected at most %d header "
                        "lines in a part, found more", CORE_MP_MAX_HEADERS);
        if ((st = header_line(p, line, &h, &ctype, &seen_cd)) != PLX_OK)
            return st;
    }
    if (!h.name)
        return fail(p, PLX_ERR_INVALID, "a part has no Content-Disposition "
                    "name (RFC 7578 section 4.2)");

    plx_part_t part = { .size = sizeof part, .name = h.name,
                        .filename = h.filename,
                        .content_type = ctype ? ctype : "text/plain" };
    p->reading = false;
    p->part_bytes = 0;
    st = p->part_begin ? p->part_begin(&part, p->arg) : PLX_OK;
    if (st == PLX_DECLINED)
        return PLX_OK;
    if (st != PLX_OK)
        return fail(p, st, NULL);
    p->reading = true;
    return PLX_OK;
}

/* One byte of a header block. */
static plx_status_t header_byte(core_mp_t *p, char c)
{
    char prev = p->hdr_len ? p->hdr[p->hdr_len - 1] : '\0';

    if ((c == '\n') != (prev == '\r') ||
        ((unsigned char)c < 0x20 && c != '\r' && c != '\n' && c != '\t'))
        return fail(p, PLX_ERR_INVALID, "a part's header block is malformed "
                    "(lines end with CRLF)");
    if (p->hdr_len == p->max_header)
        return fail(p, PLX_ERR_TOO_LARGE, "expected a part header block of "
                    "at most %zu bytes, found more", p->max_header);
    p->hdr[p->hdr_len++] = c;
    if (c != '\n')
        return PLX_OK;
    /* the block ends with an empty line: at its start or after a line */
    if (p->hdr_len == 2 ||
        (p->hdr_len >= 4 && memcmp(p->hdr + p->hdr_len - 4, "\r\n\r\n", 4) == 0)) {
        p->state = MP_DATA;
        return part_begin(p);
    }
    return PLX_OK;
}

/* One byte after a delimiter: the close, or padding and CRLF. */
static plx_status_t tail_byte(core_mp_t *p, char c)
{
    switch (p->state) {
    case MP_DELIM_TAIL:
        if (c == '-') {
            p->state = MP_DASH2;
            return PLX_OK;
        }
        /* fall through */
    case MP_PAD:
        if (is_blank(c) && p->pad++ < MP_PAD_MAX) {
            p->state = MP_PAD;
            return PLX_OK;
        }
        if (c == '\r') {
            p->state = MP_LF;
            return PLX_OK;
        }
        break;
    case MP_DASH2:
        if (c == '-') {
            p->state = MP_EPILOGUE;
            return PLX_OK;
        }
        break;
    case MP_LF:
        if (c == '\n') {
            if (++p->parts > p->max_parts)
                return fail(p, PLX_ERR_TOO_LARGE, "expected at most %zu "
                            "parts, found more", p->max_parts);
            p->state = MP_HEADERS;
            p->hdr_len = 0;
            return PLX_OK;
        }
        break;
    default:
        break;
    }
    return fail(p, PLX_ERR_INVALID, "the boundary delimiter is followed by "
                "something else than CRLF or \"--\"");
}

plx_status_t core_mp_feed(core_mp_t *p, const char *data, size_t len)
{
    size_t i = 0, used;
    bool found;
    plx_status_t st;

    if (!p || (!data && len))
        return PLX_ERR_INVALID;
    if (p->failed != PLX_OK)
        return p->failed;
    if (len > p->max_total - p->total)
        return fail(p, PLX_ERR_TOO_LARGE, "expected a body of at most %zu "
                    "bytes, found more", p->max_total);
    p->total += len;

    while (i < len) {
        switch (p->state) {
        case MP_EPILOGUE:
            return PLX_OK;
        case MP_PREAMBLE:
        case MP_DATA:
            if ((st = scan(p, data + i, len - i, &used, &found)) != PLX_OK)
                return st;
            i += used;
            if (!found)
                break;
            if (p->state == MP_DATA && p->reading && p->part_end &&
                (st = p->part_end(p->arg)) != PLX_OK)
                return fail(p, st, NULL);
            p->reading = false;
            p->state = MP_DELIM_TAIL;
            p->pad = 0;
            break;
        case MP_HEADERS:
            if ((st = header_byte(p, data[i++])) != PLX_OK)
                return st;
            break;
        default:
            if ((st = tail_byte(p, data[i++])) != PLX_OK)
                return st;
            break;
        }
    }
    return PLX_OK;
}

plx_status_t core_mp_finish(core_mp_t *p)
{
    if (!p)
        return PLX_ERR_INVALID;
    if (p->failed != PLX_OK)
        return p->failed;
    if (p->state != MP_EPILOGUE)
        return fail(p, PLX_ERR_INVALID, p->parts == 0 && p->state == MP_PREAMBLE
                    ? "the body holds no boundary delimiter"
                    : "the body ended before the closing boundary delimiter");
    return PLX_OK;
}
