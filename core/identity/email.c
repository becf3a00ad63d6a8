/*
 * email.c - outgoing mail: a durable job per message, sent over SMTP by
 * libcurl
 *
 * A request never talks SMTP itself: it enqueues a "core.email" job and
 * answers, and a job worker sends, so a slow or dead mail server costs a
 * retry with backoff, not a request thread. The body of a message carries
 * single-use links (verification, password reset), so it is sealed with
 * the MFA key (secretbox) before it goes into plexus.jobs: a database dump
 * does not hand out reset links.
 *
 * The message is RFC 5322 plain text in UTF-8. Addresses and the subject
 * are checked for CR, LF and anything else that could add a header or a
 * recipient; curl does the SMTP dot-stuffing of the body.
 */
#include "config.h"
#include "core.h"
#include "conf.h"
#include "jobs.h"
#include "loader.h"
#include "identity/identity.h"
#include "identity/crypto.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define EMAIL_JOB        "core.email"
#define SUBJECT_MAX      200
#define BODY_MAX         (64 * 1024)
#define MESSAGE_MAX      (BODY_MAX * 2 + 4096)

/* ---- validation ------------------------------------------------------------ */

static bool atext(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
        || (c && strchr("!#$%&'*+-/=?^_`{|}~", c));
}

static bool dot_atom(const char *s, size_t len, bool domain)
{
    if (len == 0 || s[0] == '.' || s[len - 1] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (s[i + 1] == '.')
                return false;
            continue;
        }
        if (domain ? !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                       || (c >= '0' && c <= '9') || c == '-')
                   : !atext(c))
            return false;
    }
    return true;
}

bool identity_email_valid(const char *addr)
{
    size_t len = addr ? strnlen(addr, 255) : 0;
    const char *at;

    if (len < 3 || len > 254)
        return false;
    at = strrchr(addr, '@');
    if (!at || at == addr || at - addr > 64)
        return false;
    return dot_atom(addr, (size_t)(at - addr), false)
        && dot_atom(at + 1, strlen(at + 1), true);
}

/* printable ASCII only: no CR/LF (header injection), no 8-bit that would
 * need RFC 2047 encoding */
static bool subject_valid(const char *s)
{
    size_t len = s ? strnlen(s, SUBJECT_MAX + 1) : 0;

    if (len == 0 || len > SUBJECT_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < 0x20 || s[i] > 0x7e)
            return false;
    }
    return true;
}

/* ---- enqueue --------------------------------------------------------------- */

plx_status_t identity_email_enqueue(const char *to, const char *subject,
                                    const char *body_text)
{
    char *sealed = NULL;
    size_t blen = body_text ? strlen(body_text) : 0;
    json_t *payload;
    plx_status_t st;

    if (!identity_email_valid(to) || !subject_valid(subject) || !body_text
        || blen > BODY_MAX || !core_utf8_valid(body_text, blen))
        return PLX_ERR_INVALID;
    st = identity_seal((const unsigned char *)body_text, blen, &sealed);
    if (st != PLX_OK)
        return st;
    payload = json_pack("{s:s, s:s, s:s}", "to", to, "subject", subject,
                        "body_sealed", sealed);
    free(sealed);
    if (!payload)
        return PLX_ERR_NOMEM;
    st = core_job_enqueue(core_module_self(), EMAIL_JOB, payload, NULL, NULL);
    json_decref(payload);
    return st;
}

/* ---- the message ----------------------------------------------------------- */

typedef struct outbuf {
    char  *p;
    size_t len, cap;
} outbuf_t;

static bool out_add(outbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap)
        return false;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return true;
}

static bool out_str(outbuf_t *b, const char *s)
{
    return out_add(b, s, strlen(s));
}

/* RFC 5322 3.3 date-time, English names whatever the locale */
static void rfc5322_date(char out[40])
{
    static const char days[7][4] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
    static const char months[12][4] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                        "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };
    time_t now = time(NULL);
    struct tm tm;

    if (!gmtime_r(&now, &tm)) {
        snprintf(out, 40, "Thu, 01 Jan 1970 00:00:00 +0000");
        return;
    }
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7],
             tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour,
             tm.tm_min, tm.tm_sec);
}

/* body lines end in CRLF whatever they ended in */
static bool out_body(outbuf_t *b, const char *body, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '\r')
            continue;
        if (body[i] == '\n' ? !out_add(b, "\r\n", 2) : !out_add(b, body + i, 1))
            return false;
    }
    return len == 0 || body[len - 1] == '\n' || out_add(b, "\r\n", 2);
}

static char *message_build(const char *from, const char *to, const char *subject,
                           const char *body, size_t body_len)
{
    outbuf_t b = { malloc(MESSAGE_MAX), 0, MESSAGE_MAX };
    char date[40], uuid[37], head[1024];
    const char *domain = strrchr(from, '@');
    bool ok;

    if (!b.p || core_uuid_new(4, uuid) != PLX_OK) {
        free(b.p);
        return NULL;
    }
    rfc5322_date(date);
    snprintf(head, sizeof head,
             "Date: %s\r\nMessage-ID: <%s@%s>\r\nFrom: %s\r\nTo: %s\r\n"
             "Subject: %s\r\nMIME-Version: 1.0\r\n"
             "Content-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\n",
             date, uuid, domain ? domain + 1 : "localhost", from, to, subject);
    ok = out_str(&b, head) && out_body(&b, body, body_len);
    if (!ok) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* ---- sending --------------------------------------------------------------- */

typedef struct upload {
    const char *p;
    size_t      left;
} upload_t;

static size_t upload_read(char *dst, size_t size, size_t nmemb, void *arg)
{
    upload_t *u = arg;
    size_t n = size * nmemb;

    if (n > u->left)
        n = u->left;
    memcpy(dst, u->p, n);
    u->p += n;
    u->left -= n;
    return n;
}

static long tls_mode(void)
{
    const char *tls = core_config_get(core_cfg, "smtp", "tls");

    if (tls && strcmp(tls, "required") == 0)
        return (long)CURLUSESSL_ALL;
    if (tls && strcmp(tls, "no") == 0)
        return (long)CURLUSESSL_NONE;
    return (long)CURLUSESSL_TRY;
}

static void smtp_options(CURL *c, const char *from, struct curl_slist *rcpt,
                         upload_t *up, char *errbuf)
{
    const char *user = core_config_get(core_cfg, "smtp", "username");
    const char *pass = core_config_get(core_cfg, "smtp", "password");
    long timeout = core_config_ms(core_cfg, "smtp", "timeout");
    char mail_from[300];

    snprintf(mail_from, sizeof mail_from, "<%s>", from);
    curl_easy_setopt(c, CURLOPT_URL, core_config_get(core_cfg, "smtp", "url"));
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, mail_from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
    curl_easy_setopt(c, CURLOPT_READDATA, up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up->left);
    curl_easy_setopt(c, CURLOPT_USE_SSL, tls_mode());
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (user && *user) {
        curl_easy_setopt(c, CURLOPT_USERNAME, user);
        curl_easy_setopt(c, CURLOPT_PASSWORD, pass ? pass : "");
    }
}

static plx_status_t smtp_send(plx_job_t *job, const char *from, const char *to,
                              const char *message)
{
    char errbuf[CURL_ERROR_SIZE] = "", rcpt_addr[300], msg[CURL_ERROR_SIZE + 64];
    upload_t up = { message, strlen(message) };
    struct curl_slist *rcpt;
    CURL *c = curl_easy_init();
    CURLcode rc;

    snprintf(rcpt_addr, sizeof rcpt_addr, "<%s>", to);
    rcpt = curl_slist_append(NULL, rcpt_addr);
    if (!c || !rcpt) {
        curl_slist_free_all(rcpt);
        curl_easy_cleanup(c);
        return PLX_ERR_NOMEM;
    }
    smtp_options(c, from, rcpt, &up, errbuf);
    rc = curl_easy_perform(c);
    curl_slist_free_all(rcpt);
    curl_easy_cleanup(c);
    if (rc == CURLE_OK)
        return PLX_OK;
    snprintf(msg, sizeof msg, "smtp: %s", errbuf[0] ? errbuf : curl_easy_strerror(rc));
    core_job_error_set(job, msg);
    return rc == CURLE_OPERATION_TIMEDOUT ? PLX_ERR_TIMEOUT : PLX_ERR_UPSTREAM;
}

static plx_status_t email_job(plx_job_t *job, void *arg)
{
    json_t *p = core_job_payload(job);
    const char *to = json_string_value(json_object_get(p, "to"));
    const char *subject = json_string_value(json_object_get(p, "subject"));
    const char *sealed = json_string_value(json_object_get(p, "body_sealed"));
    const char *from = core_config_get(core_cfg, "smtp", "from");
    unsigned char *body = NULL;
    size_t blen = 0;
    char *message;
    plx_status_t st;

    (void)arg;
    if (!identity_email_valid(to) || !subject_valid(subject) || !sealed
        || !identity_email_valid(from)) {
        core_job_error_set(job, "payload or smtp.from is not a valid message");
        return PLX_ERR_INVALID;
    }
    if (identity_unseal(sealed, &body, &blen) != PLX_OK) {
        core_job_error_set(job, "body cannot be unsealed (mfa key changed?)");
        return PLX_ERR_AUTH;
    }
    message = message_build(from, to, subject, (const char *)body, blen);
    identity_wipe(body, blen);
    free(body);
    if (!message)
        return PLX_ERR_NOMEM;
    st = smtp_send(job, from, to, message);
    identity_wipe(message, strlen(message));
    free(message);
    if (st == PLX_OK)
        LOG_DEBUG("email job \"%s\" sent", core_job_id(job));
    return st;
}

bool identity_email_register(void)
{
    const char *from = core_config_get(core_cfg, "smtp", "from");

    if (!identity_email_valid(from)) {
        LOG_ERROR("smtp.from \"%s\" is not a valid address", from ? from : "");
        return false;
    }
    return core_job_handler_add(core_module_self(), EMAIL_JOB, email_job, NULL)
        == PLX_OK;
}
