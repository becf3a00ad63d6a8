/*
 * socket_watch.c - a WebSocket does not outlive its credential
 *
 * A socket is authenticated once, at the upgrade. After a logout, a
 * revoked session or API key, or a disabled user, it must stop within a
 * second, on every instance, or it would go on answering (and spending
 * the user's quota). One thread per instance asks the database twice a
 * second, in one statement for all open sockets, which of their
 * credentials have ended, and closes those sockets with 1008. Asking the
 * database (rather than being told) covers a revocation made by any
 * instance at the cost of one small query while sockets are open; none
 * while there are none.
 */
#include "config.h"
#include "identity.h"
#include "db.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WATCH_INTERVAL_MS 500

static const char ENDED_SQL[] =
    "SELECT q.i - 1"
    "  FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) WITH ORDINALITY"
    "       AS q(user_id, session_id, key_id, i)"
    " WHERE NOT EXISTS (SELECT 1 FROM plexus.users u"
    "                    WHERE u.id = q.user_id AND u.disabled_at IS NULL)"
    "    OR (q.session_id IS NOT NULL AND NOT EXISTS ("
    "        SELECT 1 FROM plexus.sessions s WHERE s.id = q.session_id"
    "           AND s.revoked_at IS NULL AND s.expires_at > now()))"
    "    OR (q.key_id IS NOT NULL AND NOT EXISTS ("
    "        SELECT 1 FROM plexus.api_keys k WHERE k.id = q.key_id"
    "           AND k.revoked_at IS NULL AND COALESCE(k.expires_at > now(), true)))";

static struct {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    pthread_t       thread;
    bool            running;
    bool            stop;
} watch = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER };

/* "{id,id,NULL}": a PostgreSQL array literal of UUIDs, which only ever
 * hold [0-9a-f-] (they come from our own principals) */
static char *uuid_array(const core_principal_t *const *ps, size_t n, int which)
{
    char *s = malloc(n * 38 + 3), *o = s;

    if (!s)
        return NULL;
    *o++ = '{';
    for (size_t i = 0; i < n; i++) {
        const char *id = which == 0 ? ps[i]->user_id
                       : which == 1 ? ps[i]->session_id : ps[i]->key_id;
        size_t len = strnlen(id, 36);

        if (i)
            *o++ = ',';
        if (len == 36 && core_uuid_valid(id)) {
            memcpy(o, id, 36);
            o += 36;
        } else {
            memcpy(o, "NULL", 4);
            o += 4;
        }
    }
    *o++ = '}';
    *o = '\0';
    return s;
}

static bool judge(const core_principal_t *const *ps, size_t n, bool *ended, void *arg)
{
    char *arrays[3] = { NULL, NULL, NULL };
    plx_db_res_t *res = NULL;
    bool ok = false;

    (void)arg;
    for (int i = 0; i < 3; i++) {
        if (!(arrays[i] = uuid_array(ps, n, i)))
            goto out;
    }
    if (core_db_query(NULL, ENDED_SQL, 3, (const char *const *)arrays, &res) != PLX_OK)
        goto out;   /* the database is away: judge again at the next tick */
    for (int row = 0; row < core_db_rows(res); row++) {
        long i = strtol(core_db_value(res, row, 0), NULL, 10);
        if (i >= 0 && (size_t)i < n)
            ended[i] = true;
    }
    ok = true;
out:
    core_db_free(res);
    for (int i = 0; i < 3; i++)
        free(arrays[i]);
    return ok;
}

static void *watch_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&watch.mu);
    while (!watch.stop) {
        struct timespec until;

        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += WATCH_INTERVAL_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&watch.cv, &watch.mu, &until);
        if (watch.stop)
            break;
        pthread_mutex_unlock(&watch.mu);
        if (core_ws_open_count() > 0)
            core_ws_close_ended(judge, NULL);
        pthread_mutex_lock(&watch.mu);
    }
    pthread_mutex_unlock(&watch.mu);
    return NULL;
}

bool identity_socket_watch_start(void)
{
    pthread_mutex_lock(&watch.mu);
    watch.stop = false;
    watch.running = pthread_create(&watch.thread, NULL, watch_main, NULL) == 0;
    pthread_mutex_unlock(&watch.mu);
    if (!watch.running)
        LOG_ERROR("cannot start the thread that closes WebSockets of ended sessions");
    return watch.running;
}

void identity_socket_watch_stop(void)
{
    pthread_mutex_lock(&watch.mu);
    if (!watch.running) {
        pthread_mutex_unlock(&watch.mu);
        return;
    }
    watch.stop = true;
    pthread_cond_signal(&watch.cv);
    pthread_mutex_unlock(&watch.mu);
    pthread_join(watch.thread, NULL);
    watch.running = false;
}
