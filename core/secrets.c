/*
 * secrets.c - secrets at rest for modules (plx_secret_seal/unseal) and the
 * memory they come back in (plx_free)
 *
 * Sealing is the identity layer's secretbox (AES-256-GCM under [auth]
 * mfa_key, older keys in mfa_old_keys), with the module's name and the
 * caller's context as additional data: a value sealed by "webhooks" for
 * row A opens neither for row B nor for another module, and a value moved
 * between rows in the database is refused instead of used.
 *
 * What the core hands a module to free with plx_free carries a small
 * header with its size, so plx_free wipes it before giving it back: a
 * module cannot forget to wipe an unsealed API key.
 */
#include "config.h"
#include "http_client.h"
#include "identity/crypto.h"
#include "loader.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MEM_MAGIC 0x706c786d656d0001ull   /* "plxmem" 1 */

typedef union mem_head {
    struct {
        size_t             len;    /* usable bytes after the header */
        unsigned long long magic;
    } h;
    max_align_t align;
} mem_head_t;

/* n bytes plus a NUL, zeroed, to be freed with core_mem_free */
static void *mem_new(size_t n)
{
    if (n > SIZE_MAX - sizeof(mem_head_t) - 1)
        return NULL;
    mem_head_t *hd = calloc(1, sizeof *hd + n + 1);
    if (!hd)
        return NULL;
    hd->h.len = n + 1;
    hd->h.magic = MEM_MAGIC;
    return hd + 1;
}

void core_mem_free(void *p)
{
    if (!p)
        return;
    mem_head_t *hd = (mem_head_t *)p - 1;
    if (hd->h.magic != MEM_MAGIC) {
        /* not ours: freeing it would corrupt the heap; leak it loudly */
        LOG_ERROR("plx_free: the pointer was not handed out by the core");
        return;
    }
    identity_wipe(hd, sizeof *hd + hd->h.len);
    free(hd);
}

/* module name, NUL, context: neither holds a NUL, so no two pairs meet */
static bool ad_build(plx_module_t *m, const char *context,
                     char buf[IDENTITY_SEAL_AD_MAX], size_t *len)
{
    size_t nl, cl;

    if (!m || !m->name || !context)
        return false;
    nl = strlen(m->name);
    cl = strnlen(context, IDENTITY_SEAL_AD_MAX);
    if (nl + 1 + cl > IDENTITY_SEAL_AD_MAX)
        return false;
    memcpy(buf, m->name, nl);
    buf[nl] = '\0';
    memcpy(buf + nl + 1, context, cl);
    *len = nl + 1 + cl;
    return true;
}

plx_status_t core_secret_seal(plx_module_t *m, const char *context,
                              const void *plain, size_t len, char **out)
{
    char ad[IDENTITY_SEAL_AD_MAX], *sealed = NULL;
    size_t adlen;

    if (out)
        *out = NULL;
    if (!out || (!plain && len) || !ad_build(m, context, ad, &adlen))
        return PLX_ERR_INVALID;
    plx_status_t st = identity_seal_ad(ad, adlen, plain, len, &sealed);
    if (st != PLX_OK)
        return st;
    size_t n = strlen(sealed);
    char *copy = mem_new(n);
    if (copy)
        memcpy(copy, sealed, n);
    free(sealed);
    if (!copy)
        return PLX_ERR_NOMEM;
    *out = copy;
    return PLX_OK;
}

plx_status_t core_secret_unseal(plx_module_t *m, const char *context,
                                const char *sealed, void **plain, size_t *len,
                                int *stale)
{
    char ad[IDENTITY_SEAL_AD_MAX];
    unsigned char *pt = NULL;
    size_t adlen, ptlen = 0;
    bool old = false;

    if (plain)
        *plain = NULL;
    if (len)
        *len = 0;
    if (stale)
        *stale = 0;
    if (!sealed || !plain || !len || !ad_build(m, context, ad, &adlen))
        return PLX_ERR_INVALID;
    plx_status_t st = identity_unseal_ad(sealed, ad, adlen, &pt, &ptlen, &old);
    if (st == PLX_ERR_AUTH)
        return PLX_ERR_INVALID;   /* the contract's word for "does not open" */
    if (st != PLX_OK)
        return st;
    void *copy = mem_new(ptlen);
    if (copy)
        memcpy(copy, pt, ptlen);
    identity_wipe(pt, ptlen);
    free(pt);
    if (!copy)
        return PLX_ERR_NOMEM;
    *plain = copy;
    *len = ptlen;
    if (stale)
        *stale = old ? 1 : 0;
    return PLX_OK;
}
