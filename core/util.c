/*
 * util.c - small helpers every core file may use: randomness, time,
 * constant-time comparison, status names, bounded reads (the encodings,
 * UUIDs and UTF-8 are in encode.c)
 */
#include "config.h"
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

bool core_secure_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    const unsigned char *pa = a, *pb = b;
    unsigned char diff = 0;
    size_t n = alen < blen ? alen : blen;

    /* compare over the shorter length, then fold the length difference in:
     * time depends on the lengths only, never on where the bytes differ */
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(pa[i] ^ pb[i]);
    return diff == 0 && alen == blen;
}

bool core_random_bytes(void *buf, size_t n)
{
    unsigned char *p = buf;

    while (n > 0) {
        ssize_t got = getrandom(p, n, 0);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return false;
        }
        p += got;
        n -= (size_t)got;
    }
    return true;
}

double core_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void core_time_rfc3339(char out[32])
{
    struct timespec ts;
    struct tm tm;
    char date[20];

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
        date[0] = '\0';
    snprintf(out, 32, "%.19s.%03dZ", date, (int)(ts.tv_nsec / 1000000L) % 1000);
}

static const char *const status_names[] = {
    [PLX_OK] = "ok",
    [PLX_DECLINED] = "declined",
    [PLX_AGAIN] = "again",
    [PLX_ERR_NOMEM] = "out of memory",
    [PLX_ERR_INVALID] = "invalid input",
    [PLX_ERR_AUTH] = "not authenticated",
    [PLX_ERR_FORBIDDEN] = "forbidden",
    [PLX_ERR_NOT_FOUND] = "not found",
    [PLX_ERR_CONFLICT] = "conflict",
    [PLX_ERR_TOO_LARGE] = "too large",
    [PLX_ERR_LIMIT] = "limit exceeded",
    [PLX_ERR_DB] = "database unavailable",
    [PLX_ERR_UPSTREAM] = "upstream failed",
    [PLX_ERR_TIMEOUT] = "timed out",
    [PLX_ERR_GONE] = "peer gone",
    [PLX_ERR_UNAVAILABLE] = "unavailable",
    [PLX_ERR_INTERNAL] = "internal error",
};

const char *core_status_str(plx_status_t st)
{
    if ((unsigned)st >= CORE_ARRAY_LEN(status_names) || !status_names[st])
        return "unknown status";
    return status_names[st];
}

int core_status_http(plx_status_t st)
{
    switch (st) {
    case PLX_OK:              return 200;
    case PLX_ERR_INVALID:     return 400;
    case PLX_ERR_AUTH:        return 401;
    case PLX_ERR_FORBIDDEN:   return 403;
    case PLX_ERR_NOT_FOUND:   return 404;
    case PLX_ERR_CONFLICT:    return 409;
    case PLX_ERR_TOO_LARGE:   return 413;
    case PLX_ERR_LIMIT:       return 429;
    case PLX_ERR_UPSTREAM:    return 502;
    case PLX_ERR_DB:
    case PLX_ERR_UNAVAILABLE:
    case PLX_AGAIN:           return 503;
    case PLX_ERR_TIMEOUT:     return 504;
    default:                  return 500;
    }
}

char *core_read_file(const char *path, size_t max, size_t *len_out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    char *buf = NULL;
    size_t len = 0;

    if (fd < 0)
        return NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        errno = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        close(fd);
        return NULL;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        close(fd);
        return NULL;
    }
    while (len < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (len_out)
        *len_out = len;
    return buf;
}
