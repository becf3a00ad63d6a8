/*
 * crypto.h - the pure pieces of identity: password hashing and policy,
 * JWT issue and verify, TOTP, sealing secrets, random tokens and digests
 *
 * No I/O, no database, no globals beyond the keys set once at start, so
 * tests/unit/test_identity_crypto.c drives them with the reference vectors
 * (RFC 6238, RFC 4648) and with what an attacker would send.
 */
#ifndef PLEXUS_IDENTITY_CRYPTO_H
#define PLEXUS_IDENTITY_CRYPTO_H

#include "core.h"

#include <stdint.h>
#include <time.h>

/* ---- password.c: argon2id (libargon2), OWASP parameters ------------------ */

#define IDENTITY_HASH_MAX 192
/* PHC string "$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>" into out */
plx_status_t identity_password_hash(const char *password,
                                    char out[IDENTITY_HASH_MAX]);
/* constant time in the password; false also for a malformed hash */
bool identity_password_verify(const char *phc, const char *password);
/* NULL when acceptable, else the reason for the client ("must be at least
 * 12 characters", "is too common", ...). Length counts code points; min and
 * max 128; checks a dictionary (cracklib) and that it does not contain the
 * email's local part. */
const char *identity_password_weakness(const char *password, const char *email,
                                       int min_length);

/* ---- jwt.c: libjwt; the algorithm is fixed by config and checked after
 * decoding; iss, aud, exp, iat, nbf, sub, jti, sid verified ---------------- */

typedef struct identity_claims {
    char sub[37];      /* user id */
    char sid[37];      /* session id */
    char jti[37];
    long iat, exp;
} identity_claims_t;

/* alg "HS256" with key = secret (>= 32 bytes), or "ES256" with PEM keys */
plx_status_t identity_jwt_configure(const char *alg, const unsigned char *key,
                                    size_t keylen, const unsigned char *pubkey,
                                    size_t publen, const char *issuer,
                                    const char *audience);
void identity_jwt_reset(void);
/* *token is malloc'd; c->jti, iat and exp are filled in */
plx_status_t identity_jwt_issue(identity_claims_t *c, long ttl_s, char **token);
/* PLX_ERR_AUTH for anything wrong: bad signature, other alg (including
 * "none"), expired, not yet valid, wrong iss/aud, missing claims */
plx_status_t identity_jwt_verify(const char *token, time_t now,
                                 identity_claims_t *out);
#ifdef PLX_UNIT_TESTS
/* the HS256 MAC of token (d2: its second dot) checked in constant time */
bool identity_jwt_hs256_ok(const char *token, size_t d2, const unsigned char *key,
                           size_t keylen);
#endif

/* ---- totp.c: RFC 6238 over HMAC-SHA1, 6 digits, 30 s steps --------------- */

/* RFC 4648 base32 without padding; return length or -1 */
int identity_base32_encode(const unsigned char *in, size_t len, char *out,
                           size_t outlen);
int identity_base32_decode(const char *in, unsigned char *out, size_t outlen);
/* the code for a time step, zero-padded, into out[9] */
void identity_totp_code(const unsigned char *key, size_t keylen, uint64_t step,
                        int digits, char out[9]);
/* Accepts steps now-window..now+window that are > last_step (replay);
 * returns the matched step or -1. Compares in constant time. */
int64_t identity_totp_verify(const unsigned char *key, size_t keylen,
                             const char *code, time_t now, int window,
                             int64_t last_step);
/* otpauth://totp/<issuer>:<email>?secret=...&issuer=...&algorithm=SHA1&digits=6&period=30
 * malloc'd, percent-encoded */
char *identity_totp_uri(const char *issuer, const char *account,
                        const char *secret_b32);

/* ---- secretbox.c: AES-256-GCM with a key id, for secrets at rest --------- */

/* keys: the current one seals; old ones (by id) still open */
plx_status_t identity_secretbox_add_key(const char *key_id,
                                        const unsigned char key[32],
                                        bool current);
void identity_secretbox_reset(void);
/* "<key id>:<base64(nonce 12 | ciphertext | tag 16)>", malloc'd */
plx_status_t identity_seal(const unsigned char *plain, size_t len, char **out);
/* *plain malloc'd (caller wipes and frees); PLX_ERR_AUTH when the tag fails
 * or the key id is unknown */
plx_status_t identity_unseal(const char *sealed, unsigned char **plain,
                             size_t *len);
/* The same with additional data bound to the value (at most
 * IDENTITY_SEAL_AD_MAX bytes): it opens only with the same ad. *stale
 * (may be NULL) tells that an old key opened it. */
#define IDENTITY_SEAL_AD_MAX 1024
plx_status_t identity_seal_ad(const void *ad, size_t adlen,
                              const unsigned char *plain, size_t len,
                              char **out);
plx_status_t identity_unseal_ad(const char *sealed, const void *ad,
                                size_t adlen, unsigned char **plain,
                                size_t *len, bool *stale);

/* ---- token.c: random tokens and digests -------------------------------- */

/* n random bytes as base64url without padding into out; outlen must be at
 * least IDENTITY_TOKEN_LEN(n) (44 for 32 bytes) */
#define IDENTITY_TOKEN_LEN(n) (((n) + 2) / 3 * 4 + 1)
bool identity_random_token(size_t nbytes, char *out, size_t outlen);
/* SHA-256 of s into out[32] */
void identity_sha256(const void *data, size_t len, unsigned char out[32]);
/* as PostgreSQL bytea hex input "\\x..." into out[67] */
void identity_sha256_hex(const void *data, size_t len, char out[67]);
/* standard base64 (for keys in config) decode; -1 on error */
int identity_base64_decode(const char *in, unsigned char *out, size_t outlen);
/* wipe memory the compiler may not optimise away */
void identity_wipe(void *p, size_t n);

#endif
