/*
 * store_sql.h - SQL fragments and small checks shared by the store layer
 * (store.c) and its routes (admin.c, usage.c); not installed
 *
 * Periods are UTC: a daily quota's period starts at 00:00 UTC, a monthly
 * one on the first of the month, 00:00 UTC. Rows render to JSON in SQL
 * (json_build_object), so prices and costs, which are numeric, reach the
 * client exactly as stored ("0.15", not 0.14999999999999999).
 */
#ifndef PLX_AI_STORE_SQL_H
#define PLX_AI_STORE_SQL_H

#include <stdbool.h>

/* the first day of the current period of a quota whose period column is
 * col ('day' or 'month'), as a date */
#define AI_SQL_PERIOD_START(col)                                             \
    "(CASE " col " WHEN 'day' THEN date_trunc('day', now() AT TIME ZONE 'UTC')" \
    " ELSE date_trunc('month', now() AT TIME ZONE 'UTC') END)::date"

/* A quota (alias q) with the counter of its current period (alias c,
 * LEFT JOINed with AI_SQL_QUOTA_COUNTER; no row: nothing used yet) as a
 * JSON object. remaining_* is null for a dimension that is not limited. */
#define AI_SQL_QUOTA_JSON                                                    \
    "json_build_object('id', q.id, 'subject_type', q.subject_type,"          \
    " 'subject_id', q.subject_id, 'period', q.period,"                       \
    " 'max_tokens', q.max_tokens, 'max_cost', trim_scale(q.max_cost),"       \
    " 'period_start', to_char(" AI_SQL_PERIOD_START("q.period") ", 'YYYY-MM-DD'),"\
    " 'used_tokens', COALESCE(c.used_tokens, 0),"                            \
    " 'used_cost', trim_scale(COALESCE(c.used_cost, 0)),"                    \
    " 'reserved_tokens', COALESCE(c.reserved_tokens, 0),"                    \
    " 'reserved_cost', trim_scale(COALESCE(c.reserved_cost, 0)),"            \
    " 'remaining_tokens', CASE WHEN q.max_tokens IS NULL THEN NULL ELSE"     \
    "   greatest(q.max_tokens - COALESCE(c.used_tokens, 0)"                  \
    "            - COALESCE(c.reserved_tokens, 0), 0) END,"                  \
    " 'remaining_cost', CASE WHEN q.max_cost IS NULL THEN NULL ELSE"         \
    "   trim_scale(greatest(q.max_cost - COALESCE(c.used_cost, 0)"           \
    "            - COALESCE(c.reserved_cost, 0), 0)) END,"                   \
    " 'created_at', " PLX_SQL_RFC3339("q.created_at") ","                        \
    " 'updated_at', " PLX_SQL_RFC3339("q.updated_at") ")"

#define AI_SQL_QUOTA_COUNTER                                                 \
    " LEFT JOIN ai.quota_counters c ON c.quota_id = q.id"                    \
    " AND c.period_start = " AI_SQL_PERIOD_START("q.period") " "

#endif
