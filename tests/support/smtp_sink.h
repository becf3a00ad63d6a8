/*
 * smtp_sink.h - a small SMTP server for tests: receives what plexusd sends
 *
 * Runs in a thread on a free 127.0.0.1 port and speaks enough RFC 5321 for
 * libcurl: EHLO/HELO, MAIL FROM, RCPT TO, DATA (dot-unstuffed), RSET, NOOP,
 * QUIT. Every accepted message is kept; a test waits, bounded, for the next
 * one to an address. In failing mode it answers 451 to MAIL FROM, as a mail
 * server that is temporarily unable to take mail, to exercise retries.
 */
#ifndef PLXT_SMTP_SINK_H
#define PLXT_SMTP_SINK_H

#include <stdbool.h>
#include <stddef.h>

typedef struct plxt_smtp plxt_smtp_t;

typedef struct plxt_mail {
    char   from[256];       /* MAIL FROM, without the angle brackets */
    char   to[256];         /* the first RCPT TO, without the angle brackets */
    int    nrcpt;
    char   subject[256];    /* the Subject header's value, "" when none */
    char  *data;            /* the whole message after dot-unstuffing; malloc'd */
    char  *body;            /* points into data, after the blank line */
} plxt_mail_t;

/* NULL when no port could be bound */
plxt_smtp_t *plxt_smtp_start(void);
int plxt_smtp_port(const plxt_smtp_t *s);
/* true: answer 451 to every MAIL FROM from now on */
void plxt_smtp_set_failing(plxt_smtp_t *s, bool failing);
/* MAIL FROM commands seen so far (accepted or refused) */
int plxt_smtp_attempts(plxt_smtp_t *s);

/* The oldest message to `to` (case-insensitive) with that subject (exact;
 * NULL: any) not yet returned, waiting up to timeout_ms for one to arrive.
 * Others are left for later calls. NULL on timeout. The caller frees it
 * with plxt_mail_free. */
plxt_mail_t *plxt_smtp_wait(plxt_smtp_t *s, const char *to, const char *subject,
                            int timeout_ms);
/* messages to `to` (with that subject; NULL: any) received so far,
 * returned or not */
int plxt_smtp_count(plxt_smtp_t *s, const char *to, const char *subject);
void plxt_mail_free(plxt_mail_t *m);

/* The value of query parameter `name` in the first URL of the body that has
 * it ("...?token=abc" -> "abc"), into out. 0, or -1 when absent or too
 * long. */
int plxt_mail_link_param(const plxt_mail_t *m, const char *name, char *out,
                         size_t outlen);

/* Closes the listener and any session, joins the thread, frees the kept
 * messages. NULL is a no-op. */
void plxt_smtp_stop(plxt_smtp_t *s);

#endif
