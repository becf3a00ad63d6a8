/*
 * usage.c - what a caller has used: GET /api/v1/ai/usage and
 * GET /api/v1/ai/quota
 *
 *   GET /api/v1/ai/usage   ?from=&to=     (YYYY-MM-DD, UTC, inclusive;
 *                                          default the last 30 days, at
 *                                          most 366 days)
 *                          &team_id=      usage charged to a team of mine
 *                                          (not a member: 404)
 *                          &model=        one model (as asked for)
 *                          &user_id=      someone else's: admins only
 *                          &scope=all     everyone's: admins only
 *
 * Without team_id, user_id or scope=all the report is the caller's own
 * usage, whatever team it was charged to. Rows are per UTC day and model
 * (the model asked for; a fallback that answered is counted under it):
 * {day, model, requests, prompt_tokens, completion_tokens, cost,
 * estimated_requests, errors}, errors being the calls that failed or
 * broke off (status error or incomplete; a cancelled call is not an
 * error), with the same figures summed in "totals".
 *
 *   GET /api/v1/ai/quota   my quotas and my teams', with what is used,
 *                          held by calls in progress and left in the
 *                          current period
 *
 * Both take a signed-in user or an API key with the "ai" scope.
 */
#include "config.h"

#include "ai.h"
#include "store_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define USAGE_DAYS_DEFAULT 30
#define USAGE_DAYS_MAX     366

/* ---- dates: days since 1970-01-01 (proleptic Gregorian, H. Hinnant) ----- */

static long days_from_civil(long y, long m, long d)
{
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long z, char out[16])
{
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long y = yoe + era * 400;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    long d = doy - (153 * mp + 2) / 5 + 1;
    long m = mp + (mp < 10 ? 3 : -9);
    snprintf(out, 16, "%04d-%02d-%02d", (int)(y + (m <= 2)), (int)m, (int)d);
}

static int digits(const char *s, int n)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* "YYYY-MM-DD", a real day of years 1..9999, into *days; false otherwise */
static bool date_parse(const char *s, long *days)
{
    static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    int y, m, d, max;

    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-')
        return false;
    y = digits(s, 4);
    m = digits(s + 5, 2);
    d = digits(s + 8, 2);
    if (y < 1 || m < 1 || m > 12 || d < 1)
        return false;
    max = mdays[m - 1];
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        max = 29;
    if (d > max)
        return false;
    *days = days_from_civil(y, m, d);
    return true;
}

/* ---- the report --------------------------------------------------------- */

/* $1 from, $2 to (dates, inclusive, UTC), $3 user, $4 team, $5 model
 * (each NULL: any), $6 the scope shown */
static const char report_sql[] =
    "WITH u AS (SELECT (created_at AT TIME ZONE 'UTC')::date AS day, model,"
    "  prompt_tokens, completion_tokens, cost, estimated, status"
    "  FROM ai.usage"
    "  WHERE created_at >= ($1::date)::timestamp AT TIME ZONE 'UTC'"
    "  AND created_at < ($2::date + 1)::timestamp AT TIME ZONE 'UTC'"
    "  AND ($3::uuid IS NULL OR user_id = $3::uuid)"
    "  AND ($4::uuid IS NULL OR team_id = $4::uuid)"
    "  AND ($5::text IS NULL OR model = $5::text)),"
    " g AS (SELECT day, model, count(*) AS requests,"
    "  sum(prompt_tokens) AS prompt_tokens,"
    "  sum(completion_tokens) AS completion_tokens, sum(cost) AS cost,"
    "  count(*) FILTER (WHERE estimated) AS estimated_requests,"
    "  count(*) FILTER (WHERE status IN ('error', 'incomplete')) AS errors"
    "  FROM u GROUP BY day, model)"
    " SELECT json_build_object('from', to_char($1::date, 'YYYY-MM-DD'),"
    "  'to', to_char($2::date, 'YYYY-MM-DD'), 'scope', $6::text,"
    "  'user_id', $3::uuid, 'team_id', $4::uuid, 'model', $5::text,"
    "  'rows', COALESCE((SELECT json_agg(json_build_object("
    "    'day', to_char(day, 'YYYY-MM-DD'), 'model', model,"
    "    'requests', requests, 'prompt_tokens', prompt_tokens,"
    "    'completion_tokens', completion_tokens, 'cost', trim_scale(cost),"
    "    'estimated_requests', estimated_requests, 'errors', errors)"
    "    ORDER BY day, model) FROM g), '[]'::json),"
    "  'totals', (SELECT json_build_object('requests', COALESCE(sum(requests), 0),"
    "    'prompt_tokens', COALESCE(sum(prompt_tokens), 0),"
    "    'completion_tokens', COALESCE(sum(completion_tokens), 0),"
    "    'cost', trim_scale(COALESCE(sum(cost), 0)),"
    "    'estimated_requests', COALESCE(sum(estimated_requests), 0),"
    "    'errors', COALESCE(sum(errors), 0)) FROM g))::text";

static plx_status_t bad_query(plx_request_t *r, const char *name, const char *why)
{
    return plx_reply_problem(r, 400, "invalid_query", "query parameter \"%s\" %s",
                             name, why);
}

/* from and to from the query, or their defaults, into text; false with the
 * answer sent */
static bool usage_range(plx_request_t *r, char from[16], char to[16])
{
    const char *qf = plx_request_query(r, "from"), *qt = plx_request_query(r, "to");
    long f, t;

    if (qt && !date_parse(qt, &t)) {
        bad_query(r, "to", "must be a date, YYYY-MM-DD");
        return false;
    }
    if (qf && !date_parse(qf, &f)) {
        bad_query(r, "from", "must be a date, YYYY-MM-DD");
        return false;
    }
    if (!qt)
        t = qf ? f + USAGE_DAYS_DEFAULT - 1 : (long)(time(NULL) / 86400);
    if (!qf)
        f = t - (USAGE_DAYS_DEFAULT - 1);
    if (f > t) {
        bad_query(r, "from", "must not be after \"to\"");
        return false;
    }
    if (t - f >= USAGE_DAYS_MAX) {
        plx_reply_problem(r, 400, "invalid_query", "the range from \"from\" to"
                          " \"to\" must be at most %d days", USAGE_DAYS_MAX);
        return false;
    }
    /* a default may step out of the years a date can hold */
    long lo = days_from_civil(1, 1, 1), hi = days_from_civil(9999, 12, 31);
    civil_from_days(f < lo ? lo : f, from);
    civil_from_days(t > hi ? hi : t, to);
    return true;
}

/* who the report is about, checked against who asks; false with the
 * answer sent (400, 403, 404) or *st set (the database failed) */
typedef struct usage_who {
    const char *user, *team, *scope;
} usage_who_t;

static bool usage_subject(plx_request_t *r, usage_who_t *w, plx_status_t *st)
{
    const char *me = plx_request_user_id(r);
    const char *scope = plx_request_query(r, "scope");
    const char *user = plx_request_query(r, "user_id");
    const char *team = plx_request_query(r, "team_id");
    bool admin = plx_request_is_admin(r) != 0;
    plx_role_t role = PLX_ROLE_NONE;

    *st = PLX_OK;
    if (scope && strcmp(scope, "all") != 0 && strcmp(scope, "me") != 0) {
        bad_query(r, "scope", "must be one of me, all");
        return false;
    }
    if (user && !plx_uuid_valid(user)) {
        bad_query(r, "user_id", "must be a UUID");
        return false;
    }
    if (team && !plx_uuid_valid(team)) {
        bad_query(r, "team_id", "must be a UUID");
        return false;
    }
    bool all = scope && strcmp(scope, "all") == 0;
    bool other = user && (!me || strcasecmp(user, me) != 0);
    if ((all || other) && !admin) {
        plx_reply_problem(r, 403, "forbidden", "only an admin may see the usage"
                          " of %s", all ? "everyone" : "another user");
        return false;
    }
    if (team && !admin) {
        if ((*st = plx_team_role(r, team, &role)) != PLX_OK)
            return false;
        if (role < PLX_ROLE_VIEWER) {
            plx_reply_problem(r, 404, "not_found", "no such team");
            return false;
        }
    }
    w->team = team;
    w->user = user ? user : (all || team) ? NULL : me;
    w->scope = all ? "all" : user ? "user" : team ? "team" : "me";
    return true;
}

static plx_status_t usage_report(plx_request_t *r, void *arg)
{
    const char *model = plx_request_query(r, "model");
    char from[16], to[16];
    usage_who_t who;
    plx_db_res_t *res;
    plx_status_t st;

    if (!usage_range(r, from, to))
        return PLX_OK;
    if (model && (strlen(model) < 1 || strlen(model) > AI_NAME_MAX))
        return bad_query(r, "model", "must be a model name of 1 to 128 characters");
    if (!usage_subject(r, &who, &st))
        return st;
    if (!who.user && !who.team && strcmp(who.scope, "all") != 0)
        return PLX_ERR_AUTH;   /* no caller: the route's auth prevents it */
    const char *params[] = { from, to, who.user, who.team, model, who.scope };
    if ((st = plx_db_query(r, report_sql, 6, params, &res)) != PLX_OK)
        return st;
    const char *json = plx_db_value(res, 0, 0);
    if (!json)
        return PLX_ERR_INTERNAL;
    return plx_reply(r, 200, "application/json", json, strlen(json), PLX_MEM_COPY);
}

/* ---- my quotas ----------------------------------------------------------- */

/* $1 the caller: their own quotas first, then their teams' */
static const char my_quotas_sql[] =
    "SELECT json_build_object('items', COALESCE(json_agg(" AI_SQL_QUOTA_JSON
    " ORDER BY q.subject_type DESC, q.subject_id, q.period), '[]'::json))::text"
    " FROM ai.quotas q" AI_SQL_QUOTA_COUNTER
    " WHERE (q.subject_type = 'user' AND q.subject_id = $1::uuid)"
    " OR (q.subject_type = 'team' AND q.subject_id IN"
    "     (SELECT team_id FROM plexus.team_members WHERE user_id = $1::uuid))";

static plx_status_t my_quotas(plx_request_t *r, void *arg)
{
    const char *me = plx_request_user_id(r);
    plx_db_res_t *res;
    plx_status_t st;

    if (!plx_uuid_valid(me))
        return PLX_ERR_AUTH;
    const char *params[] = { me };
    if ((st = plx_db_query(r, my_quotas_sql, 1, params, &res)) != PLX_OK)
        return st;
    const char *json = plx_db_value(res, 0, 0);
    if (!json)
        return PLX_ERR_INTERNAL;
    return plx_reply(r, 200, "application/json", json, strlen(json), PLX_MEM_COPY);
}

static const plx_route_def_t usage_routes[] = {
    { "GET", "/api/v1/ai/usage", usage_report, PLX_AUTH_SCOPE, "ai", NULL,
      "AI usage by day and model", "ai" },
    { "GET", "/api/v1/ai/quota", my_quotas, PLX_AUTH_SCOPE, "ai", NULL,
      "My AI quotas and what is left", "ai" },
};

bool ai_usage_routes(plx_module_t *m)
{
    if (plx_routes_add(m, usage_routes, m) != PLX_OK) {
        plx_log(m, PLX_LOG_ERROR, "cannot add the usage routes");
        return false;
    }
    return true;
}
