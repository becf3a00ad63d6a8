# modules/webhooks/module.mk - the webhooks module's signature schemes,
# its schema and their tests. Included through modules/modules.mk
# (scripts/modules.sh).

# the schema is not installed until the module that migrates it is built
EXTRA_DIST += modules/webhooks/README.md modules/webhooks/verify.h \
	modules/webhooks/sql/0001_webhooks.sql

if HAVE_CMOCKA

# unit: every provider's signature scheme on its published vectors, and
# what a forger would send; the core's encoders stand behind the API
check_PROGRAMS += modules/webhooks/tests/test_webhooks_verify
TESTS += modules/webhooks/tests/test_webhooks_verify
modules_webhooks_tests_test_webhooks_verify_SOURCES = \
	modules/webhooks/tests/test_webhooks_verify.c modules/webhooks/verify.c \
	core/encode.c core/util.c core/log.c
modules_webhooks_tests_test_webhooks_verify_CPPFLAGS = \
	-I$(top_srcdir)/core -I$(top_srcdir)/core/include \
	-I$(top_srcdir)/modules/webhooks
modules_webhooks_tests_test_webhooks_verify_CFLAGS = $(test_cflags)
modules_webhooks_tests_test_webhooks_verify_LDADD = $(test_libs)

endif
