/*
 * ai_load.c - a load client for streamed chat completions
 *
 *   ai_load --url URL --body JSON [--header "Name: value"]...
 *           [--requests N] [--concurrency C] [--marker TEXT] [--timeout S]
 *
 * Sends N POST requests, at most C at a time (libcurl multi, one thread),
 * and for each one records the time to the first appearance of TEXT in the
 * response body (the first token: with the fake provider's "tokens=N"
 * directive the reply starts with "w1"), the time to the end, the status,
 * and whether the body ended as a stream should (OpenAI's "data: [DONE]")
 * without an error payload. Prints a summary and one machine-readable line:
 *
 *   RESULT n errors ttft_p50 ttft_p90 ttft_p99 ttft_max total_p50 total_p99
 *
 * times in milliseconds. The bench scripts run it twice with the same body,
 * once straight at the fake provider and once through plexusd, so the
 * difference is what the gateway adds.
 */
#include <curl/curl.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_HEADERS 16
#define TAIL_KEEP   64      /* bytes kept across writes to find the marker */

typedef struct stream {
    CURL   *easy;
    double  start, first, end;
    char    tail[TAIL_KEEP * 2 + 1];
    size_t  tail_len;
    bool    done_seen;      /* "[DONE]" arrived */
    bool    error_seen;     /* an {"error": payload arrived */
    long    status;
    int     curl_code;
} stream_t;

static const char *marker = "w1";

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* look for the marker, [DONE] and an error payload in the bytes, keeping
 * the last TAIL_KEEP bytes so a pattern split across writes is found */
static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    stream_t *s = ud;
    size_t len = size * nmemb, off = 0;

    while (off < len) {
        size_t room = sizeof s->tail - 1 - s->tail_len;
        size_t take = len - off < room ? len - off : room;

        memcpy(s->tail + s->tail_len, data + off, take);
        s->tail_len += take;
        s->tail[s->tail_len] = '\0';
        off += take;
        if (s->first == 0 && strstr(s->tail, marker))
            s->first = now_ms();
        if (strstr(s->tail, "[DONE]"))
            s->done_seen = true;
        if (strstr(s->tail, "{\"error\""))
            s->error_seen = true;
        if (s->tail_len > TAIL_KEEP) {
            memmove(s->tail, s->tail + s->tail_len - TAIL_KEEP, TAIL_KEEP);
            s->tail_len = TAIL_KEEP;
        }
    }
    return len;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, size_t n, double p)
{
    size_t i;

    if (n == 0)
        return -1;
    i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static void usage(void)
{
    fprintf(stderr, "usage: ai_load --url URL --body JSON [--header H]... "
            "[--requests N] [--concurrency C] [--marker TEXT] [--timeout S]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *url = NULL, *body = NULL, *headers[MAX_HEADERS];
    int nheaders = 0, total = 100, conc = 10, timeout_s = 60;
    struct curl_slist *hl = NULL;
    stream_t *st;
    CURLM *multi;
    int started = 0, running = 0, finished = 0, errors = 0;
    double *ttft, *tot;
    size_t nttft = 0, ntot = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            usage();
        if (strcmp(a, "--url") == 0) url = v;
        else if (strcmp(a, "--body") == 0) body = v;
        else if (strcmp(a, "--header") == 0 && nheaders < MAX_HEADERS) headers[nheaders++] = v;
        else if (strcmp(a, "--requests") == 0) total = atoi(v);
        else if (strcmp(a, "--concurrency") == 0) conc = atoi(v);
        else if (strcmp(a, "--marker") == 0) marker = v;
        else if (strcmp(a, "--timeout") == 0) timeout_s = atoi(v);
        else usage();
        i++;
    }
    if (!url || !body || total <= 0 || conc <= 0)
        usage();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    hl = curl_slist_append(hl, "Content-Type: application/json");
    for (int i = 0; i < nheaders; i++)
        hl = curl_slist_append(hl, headers[i]);
    st = calloc((size_t)total, sizeof *st);
    ttft = calloc((size_t)total, sizeof *ttft);
    tot = calloc((size_t)total, sizeof *tot);
    multi = curl_multi_init();
    if (!st || !ttft || !tot || !multi)
        return 1;
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);

    while (finished < total) {
        CURLMsg *msg;
        int left;

        while (started < total && running < conc) {
            stream_t *s = &st[started++];
            s->easy = curl_easy_init();
            curl_easy_setopt(s->easy, CURLOPT_URL, url);
            curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, hl);
            curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
            curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
            curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, (long)timeout_s);
            curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT, 10L);
            s->start = now_ms();
            curl_multi_add_handle(multi, s->easy);
            running++;
        }
        curl_multi_perform(multi, &left);
        while ((msg = curl_multi_info_read(multi, &left))) {
            stream_t *s;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
            s->end = now_ms();
            s->curl_code = msg->data.result;
            curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
            curl_multi_remove_handle(multi, s->easy);
            curl_easy_cleanup(s->easy);
            s->easy = NULL;
            running--;
            finished++;
            if (s->curl_code != CURLE_OK || s->status != 200 || !s->done_seen
                || s->error_seen || s->first == 0) {
                errors++;
                if (errors <= 5)
                    fprintf(stderr, "request failed: curl %d (%s), status %ld, done %d, "
                            "error payload %d\n", s->curl_code,
                            curl_easy_strerror((CURLcode)s->curl_code), s->status,
                            s->done_seen, s->error_seen);
                continue;
            }
            ttft[nttft++] = s->first - s->start;
            tot[ntot++] = s->end - s->start;
        }
        /* wait for the network only when nothing can be started now */
        if (finished < total && !(started < total && running < conc))
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    qsort(ttft, nttft, sizeof *ttft, cmp_double);
    qsort(tot, ntot, sizeof *tot, cmp_double);
    printf("requests %d, concurrency %d, errors %d\n", total, conc, errors);
    printf("first token ms: p50 %.2f  p90 %.2f  p99 %.2f  max %.2f\n",
           pct(ttft, nttft, 50), pct(ttft, nttft, 90), pct(ttft, nttft, 99),
           pct(ttft, nttft, 100));
    printf("whole stream ms: p50 %.2f  p99 %.2f\n", pct(tot, ntot, 50), pct(tot, ntot, 99));
    printf("RESULT %d %d %.3f %.3f %.3f %.3f %.3f %.3f\n", total, errors,
           pct(ttft, nttft, 50), pct(ttft, nttft, 90), pct(ttft, nttft, 99),
           pct(ttft, nttft, 100), pct(tot, ntot, 50), pct(tot, ntot, 99));
    curl_multi_cleanup(multi);
    curl_slist_free_all(hl);
    free(st);
    free(ttft);
    free(tot);
    curl_global_cleanup();
    return errors ? 1 : 0;
}
