/*
 * fake_llm_main.c - modules/ai/tests/fake-llm: the fake LLM provider as a program,
 * for the benchmarks and for trying a gateway by hand
 *
 *   modules/ai/tests/fake-llm [--port N] [--key K] [--tokens N] [--delay-ms N]
 *                  [--first-ms N]
 *
 * Serves OpenAI, Anthropic and Gemini on 127.0.0.1:N (0 or absent: a free
 * port) until SIGTERM or SIGINT, then stops cleanly. Prints "listening on
 * PORT" once it accepts connections. The options set the default script;
 * each request can script itself with a [[fake ...]] directive in its
 * last user message (see fake_llm.h). Requests are counted,
 * not recorded, so a long run does not grow.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_llm.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: fake-llm [--port N] [--key K] [--tokens N] [--delay-ms N] "
                 "[--first-ms N]\n");
}

/* a whole number in [min, max], or -1 */
static long number(const char *s, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max)
        return -1;
    return v;
}

int main(int argc, char **argv)
{
    plxt_llm_script_t def = { 0 };
    const char *key = NULL;
    long port = 0;
    sigset_t set;
    plxt_llm_t *f;
    int sig;

    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        long *target = NULL, v;
        int itarget = 0;
        if (strcmp(opt, "--help") == 0 || strcmp(opt, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        const char *arg = argv[++i];
        if (strcmp(opt, "--key") == 0) {
            key = arg;
            continue;
        }
        if (strcmp(opt, "--port") == 0)
            target = &port;
        else if (strcmp(opt, "--tokens") == 0)
            itarget = 1;
        else if (strcmp(opt, "--delay-ms") == 0)
            itarget = 2;
        else if (strcmp(opt, "--first-ms") == 0)
            itarget = 3;
        if (!target && !itarget) {
            fprintf(stderr, "fake-llm: unknown option \"%s\"\n", opt);
            usage(stderr);
            return 2;
        }
        v = number(arg, 0, target ? 65535 : INT_MAX);
        if (v < 0) {
            fprintf(stderr, "fake-llm: %s expects a number, found \"%s\"\n", opt, arg);
            return 2;
        }
        if (target)
            *target = v;
        else if (itarget == 1)
            def.tokens = (int)v;
        else if (itarget == 2)
            def.delay_ms = (int)v;
        else
            def.first_ms = (int)v;
    }

    /* the server's threads inherit the mask: the signals wait for sigwait */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    f = plxt_llm_start_port(key, (int)port);
    if (!f)
        return 1;
    plxt_llm_set_recording(f, false);
    plxt_llm_set_default(f, &def);
    printf("listening on %d\n", plxt_llm_port(f));
    fflush(stdout);

    if (sigwait(&set, &sig) != 0)
        sig = 0;
    fprintf(stderr, "fake-llm: %s, stopping after %d requests (at most %d at once)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", plxt_llm_count(f), plxt_llm_peak(f));
    plxt_llm_stop(f);
    return 0;
}
