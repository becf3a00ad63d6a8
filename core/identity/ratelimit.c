/*
 * ratelimit.c - token buckets per rate class and caller, in memory
 *
 * Every route names a rate class (plx_route_opts.rate_class; NULL is
 * "default", "none" exempts it, as the health routes and /metrics are).
 * The core has two classes of its own, "default" and "auth"; a module adds
 * its own in init with plx_rate_class_add(m, name, "N/duration") (the ai
 * module's "ai"). [ratelimit] <name> = N/duration (or PLEXUS_RATELIMIT_
 * <NAME>) overrides a class: a bucket holds N tokens and refills
 * continuously at N per duration.
 *
 * The rule for [ratelimit] keys: the shape of every value is checked at
 * startup and by --check-config (a malformed one is an error whatever the
 * class); a key naming a class that no loaded module registered is only
 * warned about once the modules are initialised, since the module that
 * owns it may merely be disabled. A route naming a class nobody registered
 * stops startup with a line naming the route.
 *
 * A request.begin hook at PLX_HOOK_FIRST, after authn (REALLY_FIRST) has
 * named the caller, charges one token to the bucket of (class, user id),
 * or (class, client address) for anonymous callers; a request that matched
 * no route is charged as "default" (a scanner's 404s cost like anything
 * else).
 *
 * Answers carry the current draft's headers (draft-ietf-httpapi-ratelimit-
 * headers, structured fields):
 *     RateLimit-Policy: "default";q=100;w=60
 *     RateLimit: "default";r=42;t=18
 * r is the whole tokens left, t the seconds until the bucket is full again.
 * Over the limit: 429 problem+json "rate_limited" with Retry-After (whole
 * seconds until one token is back) and retry_after_seconds in the body.
 *
 * NB: the buckets live in this process, so with several instances behind a
 * load balancer a caller gets up to N per instance. That is the point of
 * this layer: cheap, no round trip, protects each instance. Limits that
 * must hold across instances (login lockout per account and per address)
 * are kept in PostgreSQL by authn.c.
 *
 * Memory is bounded by [ratelimit] max_keys: 64 shards, each with its own
 * mutex and an open-addressing table (linear probing) sized at creation.
 * A shard that reaches its share of max_keys drops its full buckets (a
 * full bucket is the same as no bucket), and if most are still in use,
 * the ones idle longer than average. Under a flood of distinct callers an
 * evicted caller starts again with a full bucket; the bound on memory is
 * what matters then.
 */
#include "config.h"
#include "identity.h"

#include "loader.h"
#include "registry.h"
#include "router.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RL_SHARDS      64
#define RL_SHARD_BITS  6
#define RL_WHO_MAX     48       /* "a:" + an IPv6 address, or "u:" + a UUID */
#define RL_CLASS_MAX   16       /* a class name is at most 15 bytes */
#define RL_CLASSES_MAX 32       /* the core's and every module's */
#define RL_LIMIT_MAX   1000000000L
#define RL_WINDOW_MAX  (30L * 24 * 3600 * 1000)   /* 30 days, in ms */

typedef struct rl_class {
    char   name[RL_CLASS_MAX];
    char   owner[64];         /* the module that registered it, or "core" */
    double capacity;          /* q: tokens when full */
    double rate;              /* tokens per second */
    long   window_s;          /* w: the duration the quota is for */
    char   policy[96];        /* the RateLimit-Policy value */
} rl_class_t;

typedef struct rl_bucket {
    uint64_t hash;            /* 0: an empty slot */
    double   tokens;
    double   stamp;           /* core_now() of the last refill */
    uint8_t  cls;
    char     who[RL_WHO_MAX];
} rl_bucket_t;

typedef struct rl_shard {
    pthread_mutex_t mu;
    rl_bucket_t    *slots;
    size_t          mask;     /* slots - 1; slots is a power of two */
    size_t          count;
    size_t          max;      /* buckets before eviction; < slots */
} rl_shard_t;

/* Filled in init on the main thread (the core's two first), read-only
 * once sealed: the hook only reads it, and it runs after the seal. */
static rl_class_t classes[RL_CLASSES_MAX];
static size_t nclasses;
static bool classes_sealed;
static rl_shard_t shards[RL_SHARDS];
static size_t shards_made;   /* shards whose mutex exists */
static uint64_t hash_seed;

/* ---- "N/duration" ------------------------------------------------------------ */

static bool unit_ms(const char *u, long *mult)
{
    static const struct { const char *name; long ms; } units[] = {
        { "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
        { "h", 3600000 }, { "d", 86400000 },
    };

    for (size_t i = 0; i < CORE_ARRAY_LEN(units); i++) {
        if (strcmp(u, units[i].name) == 0) {
            *mult = units[i].ms;
            return true;
        }
    }
    return false;
}

/* a decimal of at most 10 digits; *end after it */
static bool number(const char *s, long *out, const char **end)
{
    long v = 0;
    int n = 0;

    while (s[n] >= '0' && s[n] <= '9' && n < 10)
        v = v * 10 + (s[n++] - '0');
    *out = v;
    *end = s + n;
    return n > 0 && !(s[n] >= '0' && s[n] <= '9');
}

bool identity_rate_parse(const char *spec, long *limit, long *window_ms)
{
    const char *p;
    long n, w, mult;

    if (!spec || !limit || !window_ms)
        return false;
    while (*spec == ' ')
        spec++;
    if (!number(spec, &n, &p) || n < 1 || n > RL_LIMIT_MAX || *p++ != '/')
        return false;
    if (!number(p, &w, &p) || w < 1 || strlen(p) > 2 || !unit_ms(p, &mult))
        return false;
    if (w > RL_WINDOW_MAX / mult)
        return false;
    *limit = n;
    *window_ms = w * mult;
    return true;
}

/* ---- buckets ------------------------------------------------------------------- */

static uint64_t key_hash(int cls, const char *who)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ hash_seed;   /* FNV-1a, seeded */

    h = (h ^ (uint64_t)(cls + 1)) * 0x100000001b3ULL;
    for (const unsigned char *p = (const unsigned char *)who; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    /* FNV's high bits hardly depend on the last bytes, and keys differ
     * mostly there ("a:10.0.0.7"): finish with MurmurHash3's fmix64 so the
     * shard (top bits) and the slot (low bits) both spread */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h ? h : 1;
}

/* the tokens b holds at now; stamp is the time of its last charge */
static double tokens_at(const rl_bucket_t *b, const rl_class_t *c, double now)
{
    double t = b->tokens;

    if (now > b->stamp)
        t += (now - b->stamp) * c->rate;
    return t > c->capacity ? c->capacity : t;
}

static void refill(rl_bucket_t *b, const rl_class_t *c, double now)
{
    b->tokens = tokens_at(b, c, now);
    b->stamp = now;
}

static void slot_put(rl_bucket_t *slots, size_t mask, const rl_bucket_t *b)
{
    size_t i = b->hash & mask;

    while (slots[i].hash)
        i = (i + 1) & mask;
    slots[i] = *b;
}

/* Make room: keep the buckets still in use, and only the more recently
 * used half of them when the shard would otherwise stay nearly full. */
static void shard_evict(rl_shard_t *s, double now)
{
    size_t size = s->mask + 1, keep = 0;
    double idle_sum = 0, idle_mean;
    rl_bucket_t *fresh = calloc(size, sizeof *fresh);

    for (size_t i = 0; i < size; i++) {
        rl_bucket_t *b = &s->slots[i];
        if (!b->hash)
            continue;
        if (tokens_at(b, &classes[b->cls], now) >= classes[b->cls].capacity) {
            b->hash = 0;   /* full: nothing to remember */
            continue;
        }
        keep++;
        idle_sum += now - b->stamp;
    }
    idle_mean = keep ? idle_sum / (double)keep : 0;
    s->count = 0;
    if (!fresh) {
        /* no memory for the new table: forget every bucket of this shard */
        memset(s->slots, 0, size * sizeof *s->slots);
        return;
    }
    for (size_t i = 0; i < size; i++) {
        const rl_bucket_t *b = &s->slots[i];
        if (!b->hash || (keep > s->max * 3 / 4 && now - b->stamp >= idle_mean))
            continue;
        slot_put(fresh, s->mask, b);
        s->count++;
    }
    free(s->slots);
    s->slots = fresh;
}

/* the bucket of (cls, who), created full when new (after making room) */
static rl_bucket_t *shard_bucket(rl_shard_t *s, uint64_t h, int cls,
                                 const char *who, double now)
{
    size_t i = h & s->mask;

    for (; s->slots[i].hash; i = (i + 1) & s->mask) {
        rl_bucket_t *b = &s->slots[i];
        if (b->hash == h && b->cls == cls && strcmp(b->who, who) == 0)
            return b;
    }
    if (s->count >= s->max) {
        shard_evict(s, now);
        for (i = h & s->mask; s->slots[i].hash; i = (i + 1) & s->mask)
            ;
    }
    rl_bucket_t *b = &s->slots[i];
    *b = (rl_bucket_t){ .hash = h, .tokens = classes[cls].capacity, .stamp = now,
                        .cls = (uint8_t)cls };
    snprintf(b->who, sizeof b->who, "%s", who);
    s->count++;
    return b;
}

typedef struct rl_verdict {
    bool   allowed;
    long   remaining;    /* whole tokens left */
    long   reset_s;      /* until full again */
    long   retry_s;      /* until one token is back (when refused) */
} rl_verdict_t;

/* whole seconds, rounded up (a hair of float noise is not a second) */
static long ceil_s(double seconds)
{
    long whole;

    if (seconds <= 1e-9)
        return 0;
    whole = (long)seconds;
    return (double)whole + 1e-9 < seconds ? whole + 1 : whole;
}

/* take one token from who's bucket of class cls (or, with take false,
 * only look whether one is there) */
static void bucket_use(int cls, const char *who, bool take, rl_verdict_t *v)
{
    const rl_class_t *c = &classes[cls];
    uint64_t h = key_hash(cls, who);
    rl_shard_t *s = &shards[h >> (64 - RL_SHARD_BITS)];
    double now = core_now(), tokens;
    rl_bucket_t *b;

    pthread_mutex_lock(&s->mu);
    b = shard_bucket(s, h, cls, who, now);
    refill(b, c, now);
    v->allowed = b->tokens >= 1.0;
    if (v->allowed && take)
        b->tokens -= 1.0;
    tokens = b->tokens;
    pthread_mutex_unlock(&s->mu);
    v->remaining = tokens > 0 ? (long)tokens : 0;
    v->reset_s = ceil_s((c->capacity - tokens) / c->rate);
    v->retry_s = v->allowed ? 0 : ceil_s((1.0 - tokens) / c->rate);
    if (!v->allowed && v->retry_s < 1)
        v->retry_s = 1;
}

static void charge(int cls, const char *who, rl_verdict_t *v)
{
    bucket_use(cls, who, true, v);
}

/* ---- the hook --------------------------------------------------------------------- */

static int class_find(const char *name)
{
    for (size_t i = 0; i < nclasses; i++) {
        if (strcmp(classes[i].name, name) == 0)
            return (int)i;
    }
    return -1;
}

/* every route's class was checked at startup: -1 is a request that
 * matched no route, charged as "default" (always index 0) */
static int class_index(const char *name)
{
    int i = class_find(name);

    return i < 0 ? 0 : i;
}

static plx_status_t reply_limited(plx_request_t *r, const rl_class_t *c,
                                  const rl_verdict_t *v)
{
    char retry[24], detail[256];
    json_t *body;

    snprintf(retry, sizeof retry, "%ld", v->retry_s);
    core_response_header(r, "Retry-After", retry);
    snprintf(detail, sizeof detail, "more than %.0f requests per %ld s in the rate "
             "class \"%.15s\"; retry in %ld s", c->capacity, c->window_s, c->name,
             v->retry_s);
    body = core_problem_new(r, 429, "rate_limited", detail);
    if (!body)
        return PLX_ERR_NOMEM;
    json_object_set_new(body, "retry_after_seconds", json_integer(v->retry_s));
    return core_reply_problem_json(r, 429, body);
}

static void address_key(plx_request_t *r, char who[RL_WHO_MAX])
{
    snprintf(who, RL_WHO_MAX, "a:%s", core_request_remote_addr(r));
}

static plx_status_t ratelimit_hook(plx_request_t *r, void *data, void *arg)
{
    const char *cname = core_request_rate_class(r);
    const char *user = core_request_user_id(r);
    char who[RL_WHO_MAX], value[128];
    rl_verdict_t v;
    int cls;

    (void)data;
    (void)arg;
    if (cname && strcmp(cname, "none") == 0)
        return PLX_OK;
    cls = class_index(cname ? cname : "default");
    if (user)
        snprintf(who, sizeof who, "u:%s", user);
    else
        address_key(r, who);
    charge(cls, who, &v);
    snprintf(value, sizeof value, "\"%.15s\";r=%ld;t=%ld", classes[cls].name,
             v.remaining, v.reset_s);
    core_response_header(r, "RateLimit-Policy", classes[cls].policy);
    core_response_header(r, "RateLimit", value);
    if (v.allowed)
        return PLX_OK;
    return reply_limited(r, &classes[cls], &v);
}

/* ---- refused credentials ---------------------------------------------------------------- */

void identity_ratelimit_auth_failed(plx_request_t *r)
{
    char who[RL_WHO_MAX];
    rl_verdict_t v;

    if (shards_made < RL_SHARDS)
        return;
    address_key(r, who);
    charge(class_index("auth"), who, &v);
}

bool identity_ratelimit_auth_spent(plx_request_t *r)
{
    char who[RL_WHO_MAX];
    rl_verdict_t v;
    int cls = class_index("auth");

    if (shards_made < RL_SHARDS)
        return false;
    address_key(r, who);
    bucket_use(cls, who, false, &v);
    if (v.allowed)
        return false;
    core_log(PLX_LOG_WARN, "core", core_request_id(r), "credentials from %s refused "
             "unchecked: too many refused before", core_request_remote_addr(r));
    reply_limited(r, &classes[cls], &v);
    return true;
}

/* ---- classes ------------------------------------------------------------------------ */

static void spec_error(const char *name, const char *spec)
{
    LOG_ERROR("[ratelimit] %s = \"%.60s\": expected requests/duration such as "
              "100/60s (1..%ld requests, up to 30d)", name, spec ? spec : "",
              RL_LIMIT_MAX);
}

/* a class name: a-z, 0-9 and '_', starting with a letter, at most 15
 * bytes, and not "none" nor a setting of [ratelimit] */
static bool class_name_valid(const char *name)
{
    static const char *const reserved[] = { "none", "enabled", "max_keys" };
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || n >= RL_CLASS_MAX || name[0] < 'a' || name[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return false;
    }
    for (size_t i = 0; i < CORE_ARRAY_LEN(reserved); i++) {
        if (strcmp(name, reserved[i]) == 0)
            return false;
    }
    return true;
}

/* Appends class name: [ratelimit] name (file or environment) if set, else
 * default_spec, which the caller has checked. */
static plx_status_t class_append(core_config_t *cfg, const char *name,
                                 const char *default_spec, const char *owner)
{
    const char *set = core_config_get(cfg, "ratelimit", name);
    const char *spec = set ? set : default_spec;
    rl_class_t *c;
    long limit, window_ms;

    if (!identity_rate_parse(spec, &limit, &window_ms)) {
        spec_error(name, spec);
        return PLX_ERR_INVALID;
    }
    if (nclasses == RL_CLASSES_MAX) {
        LOG_ERROR("rate class \"%s\" of module \"%s\" refused: at most %d "
                  "classes", name, owner, RL_CLASSES_MAX);
        return PLX_ERR_TOO_LARGE;
    }
    c = &classes[nclasses++];
    snprintf(c->name, sizeof c->name, "%s", name);
    snprintf(c->owner, sizeof c->owner, "%s", owner);
    c->capacity = (double)limit;
    c->rate = (double)limit * 1000.0 / (double)window_ms;
    c->window_s = (window_ms + 999) / 1000;
    snprintf(c->policy, sizeof c->policy, "\"%s\";q=%ld;w=%ld", name, limit,
             c->window_s);
    return PLX_OK;
}

plx_status_t identity_rate_class_add(plx_module_t *m, const char *name,
                                     const char *default_spec)
{
    const char *owner = m && m->name ? m->name : "core";
    long limit, window_ms;
    int i;

    if (classes_sealed) {
        LOG_ERROR("rate class \"%s\" of module \"%s\" refused: classes are "
                  "added during init", name ? name : "(null)", owner);
        return PLX_ERR_INVALID;
    }
    if (!class_name_valid(name)) {
        LOG_ERROR("rate class \"%.40s\" of module \"%s\" refused: expected a "
                  "name of a-z, 0-9 and '_' starting with a letter, at most %d "
                  "bytes, not none, enabled or max_keys", name ? name : "(null)", owner,
                  RL_CLASS_MAX - 1);
        return PLX_ERR_INVALID;
    }
    if ((i = class_find(name)) >= 0) {
        LOG_ERROR("rate class \"%s\" of module \"%s\" refused: already "
                  "registered by \"%s\"", name, owner, classes[i].owner);
        return PLX_ERR_CONFLICT;
    }
    if (!identity_rate_parse(default_spec, &limit, &window_ms)) {
        LOG_ERROR("rate class \"%s\" of module \"%s\" refused: expected a "
                  "default such as 100/60s, found \"%.60s\"", name, owner,
                  default_spec ? default_spec : "(null)");
        return PLX_ERR_INVALID;
    }
    return class_append(core_cfg, name, default_spec, owner);
}

/* ---- checks of [ratelimit] ------------------------------------------------------------- */

typedef struct key_check {
    bool ok;
    bool warn_unregistered;
} key_check_t;

/* "file:line", or the environment variable that set key */
static void where(char *out, size_t n, const char *key, const char *file, int line)
{
    int len;

    if (file) {
        snprintf(out, n, "%s:%d", file, line);
        return;
    }
    len = snprintf(out, n, "environment variable PLEXUS_RATELIMIT_");
    for (size_t i = 0; key[i] && len > 0 && (size_t)len + 1 < n; i++)
        out[len++] = (char)toupper((unsigned char)key[i]);
    if (len > 0 && (size_t)len < n)
        out[len] = '\0';
}

static void key_check(const char *key, const char *value, const char *file,
                      int line, void *arg)
{
    key_check_t *k = arg;
    char at[512];
    long limit, window_ms;

    where(at, sizeof at, key, file, line);
    if (!k->warn_unregistered) {
        if (!identity_rate_parse(value, &limit, &window_ms)) {
            LOG_ERROR("%s: [ratelimit] %s = \"%.60s\": expected requests/duration "
                      "such as 100/60s (1..%ld requests, up to 30d)", at, key,
                      value, RL_LIMIT_MAX);
            k->ok = false;
        }
        return;
    }
    if (class_find(key) < 0)
        LOG_WARN("%s: [ratelimit] %s: no loaded module registers the rate class "
                 "\"%s\"; ignored", at, key, key);
}

bool identity_ratelimit_check_config(core_config_t *cfg)
{
    static const char *const core_classes[] = { "default", "auth" };
    key_check_t k = { .ok = true };
    long limit, window_ms;

    for (size_t i = 0; i < CORE_ARRAY_LEN(core_classes); i++) {
        const char *spec = core_config_get(cfg, "ratelimit", core_classes[i]);
        if (!identity_rate_parse(spec, &limit, &window_ms)) {
            spec_error(core_classes[i], spec);
            k.ok = false;
        }
    }
    core_config_undeclared(cfg, "ratelimit", key_check, &k);
    return k.ok;
}

bool identity_ratelimit_seal(void)
{
    const core_router_t *rt = core_routes();
    key_check_t k = { .warn_unregistered = true };
    bool ok = true;

    classes_sealed = true;
    for (size_t i = 0; rt && i < core_router_count(rt); i++) {
        const core_route_t *r = core_router_at(rt, i);
        if (!r->rate_class || strcmp(r->rate_class, "none") == 0
            || class_find(r->rate_class) >= 0)
            continue;
        LOG_ERROR("route \"%s %s\" of module \"%s\" names the rate class "
                  "\"%.40s\", which no loaded module registers (plx_rate_class_add)",
                  r->method, r->pattern,
                  r->owner && r->owner->name ? r->owner->name : "core",
                  r->rate_class);
        ok = false;
    }
    core_config_undeclared(core_cfg, "ratelimit", key_check, &k);
    return ok;
}

/* ---- setup ---------------------------------------------------------------------------- */

static bool shards_setup(long max_keys)
{
    /* rounded down, so the shards together never hold more than max_keys */
    size_t per = (size_t)max_keys / RL_SHARDS;
    size_t size = 8;

    if (per < 1)
        per = 1;
    while (size < per + per / 3 + 1)   /* load factor at most 3/4 */
        size <<= 1;
    for (size_t i = 0; i < RL_SHARDS; i++) {
        rl_shard_t *s = &shards[i];
        if (pthread_mutex_init(&s->mu, NULL) != 0)
            return false;
        shards_made++;
        s->slots = calloc(size, sizeof *s->slots);
        s->mask = size - 1;
        s->max = per;
        s->count = 0;
        if (!s->slots)
            return false;
    }
    return true;
}

bool identity_ratelimit_setup(core_config_t *cfg)
{
    static const plx_hook_order_t order = { .size = sizeof(order),
                                            .position = PLX_HOOK_FIRST };
    long max_keys = core_config_int(cfg, "ratelimit", "max_keys");

    /* the core's own classes; their defaults are in config.c's table */
    nclasses = 0;
    classes_sealed = false;
    if (class_append(cfg, "default", NULL, "core") != PLX_OK
        || class_append(cfg, "auth", NULL, "core") != PLX_OK)
        return false;
    if (!core_config_bool(cfg, "ratelimit", "enabled")) {
        LOG_INFO("rate limiting is off ([ratelimit] enabled = no)");
        return true;
    }
    if (!core_random_bytes(&hash_seed, sizeof hash_seed) || !shards_setup(max_keys)) {
        LOG_ERROR("rate limiter: could not set up %ld buckets", max_keys);
        identity_ratelimit_shutdown();
        return false;
    }
    if (core_hook_add(core_module_self(), PLX_HOOK_REQUEST_BEGIN, ratelimit_hook, NULL,
                      &order) != PLX_OK) {
        identity_ratelimit_shutdown();
        return false;
    }
    return true;
}

/* after the HTTP server has stopped: no hook runs any more */
void identity_ratelimit_shutdown(void)
{
    for (size_t i = 0; i < shards_made; i++) {
        free(shards[i].slots);
        shards[i].slots = NULL;
        pthread_mutex_destroy(&shards[i].mu);
    }
    shards_made = 0;
}
