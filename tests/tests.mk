# tests/tests.mk - unit tests (cmocka), test plugins, integration tests.
#
# Tests that need PostgreSQL read PGHOST/PGPORT/PGUSER from the environment
# (scripts/test.sh starts a throw-away cluster and sets them). Without them
# they exit 77 (skipped) and say so.

if HAVE_CMOCKA

AM_TESTS_ENVIRONMENT = \
	PLX_SRCDIR='$(abs_top_srcdir)'; export PLX_SRCDIR; \
	PLX_BUILDDIR='$(abs_top_builddir)'; export PLX_BUILDDIR; \
	ASAN_OPTIONS="$${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"; export ASAN_OPTIONS; \
	UBSAN_OPTIONS="$${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"; export UBSAN_OPTIONS;

test_cflags = $(core_cflags) $(CMOCKA_CFLAGS) -DPLX_UNIT_TESTS \
	-I$(top_srcdir)/tests/support
test_libs = $(CMOCKA_LIBS) $(core_libs)

# ---- shared test support: server launcher, HTTP and WebSocket clients,
# ---- a TCP proxy that can play a dead database, throw-away databases
noinst_LTLIBRARIES = tests/support/libplxtest.la
tests_support_libplxtest_la_SOURCES = \
	tests/support/harness.c tests/support/harness.h \
	tests/support/http_client.c tests/support/ws_client.c \
	tests/support/tcp_proxy.c tests/support/pgtest.c \
	tests/support/smtp_sink.c tests/support/smtp_sink.h \
	tests/support/identity_client.c tests/support/identity_client.h tests/support/pgtest.h \
	tests/support/route_walk.c tests/support/route_walk.h
tests_support_libplxtest_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS) \
	$(LIBCURL_CFLAGS) $(LIBPQ_CFLAGS) $(CMOCKA_CFLAGS) $(OPENSSL_CFLAGS)
tests_support_libplxtest_la_LIBADD = $(LIBCURL_LIBS) $(LIBPQ_LIBS) \
	$(JANSSON_LIBS) $(OPENSSL_LIBS) $(CMOCKA_LIBS) $(PTHREAD_LIBS) -lm
itest_cflags = $(AM_CFLAGS) $(JANSSON_CFLAGS) $(LIBCURL_CFLAGS) \
	$(LIBPQ_CFLAGS) $(CMOCKA_CFLAGS) -I$(top_srcdir)/tests/support \
	-I$(top_srcdir)/core/include
itest_libs = tests/support/libplxtest.la

# ---- unit tests: the core's pure parts, linked against its objects -------
UNIT_TESTS = tests/unit/test_router tests/unit/test_config \
	tests/unit/test_registry tests/unit/test_json tests/unit/test_util \
	tests/unit/test_loader tests/unit/test_migrate \
	tests/unit/test_identity_crypto
check_PROGRAMS += $(UNIT_TESTS)
TESTS += $(UNIT_TESTS)

tests_unit_test_router_SOURCES = tests/unit/test_router.c core/router.c core/encode.c \
	core/util.c core/log.c
tests_unit_test_router_CFLAGS = $(test_cflags)
tests_unit_test_router_LDADD = $(test_libs)

tests_unit_test_json_SOURCES = tests/unit/test_json.c core/json.c core/util.c core/log.c
tests_unit_test_json_CFLAGS = $(test_cflags)
tests_unit_test_json_LDADD = $(test_libs)

tests_unit_test_util_SOURCES = tests/unit/test_util.c core/util.c core/log.c
tests_unit_test_util_CFLAGS = $(test_cflags)
tests_unit_test_util_LDADD = $(test_libs)

tests_unit_test_config_SOURCES = tests/unit/test_config.c core/config.c core/util.c core/log.c
tests_unit_test_config_CFLAGS = $(test_cflags)
tests_unit_test_config_LDADD = $(test_libs)

tests_unit_test_registry_SOURCES = tests/unit/test_registry.c core/registry.c core/util.c core/log.c
tests_unit_test_registry_CFLAGS = $(test_cflags)
tests_unit_test_registry_LDADD = $(test_libs)

tests_unit_test_identity_crypto_SOURCES = tests/unit/test_identity_crypto.c \
	$(IDENTITY_CRYPTO_SOURCES) core/encode.c core/util.c core/log.c
tests_unit_test_identity_crypto_CFLAGS = $(test_cflags)
tests_unit_test_identity_crypto_LDADD = $(test_libs)

# the whole core, compiled once for the unit tests that need all of it
# (the loader, the migration runner, request input, the database layer)
check_LTLIBRARIES += tests/libplxcore.la
tests_libplxcore_la_SOURCES = $(CORE_SOURCES)
tests_libplxcore_la_CFLAGS = $(test_cflags)
core_test_libs = tests/libplxcore.la $(test_libs)

tests_unit_test_loader_SOURCES = tests/unit/test_loader.c
tests_unit_test_loader_CFLAGS = $(test_cflags)
tests_unit_test_loader_LDADD = $(core_test_libs)

tests_unit_test_migrate_SOURCES = tests/unit/test_migrate.c
tests_unit_test_migrate_CFLAGS = $(test_cflags)
tests_unit_test_migrate_LDADD = $(core_test_libs) tests/support/libplxtest.la

# ---- outbound HTTP guard, sealed secrets, multipart parser (pure parts) --
UNIT_TESTS += tests/unit/test_netaddr tests/unit/test_secrets \
	tests/unit/test_multipart
tests_unit_test_netaddr_SOURCES = tests/unit/test_netaddr.c core/netaddr.c \
	core/encode.c core/util.c core/log.c
tests_unit_test_netaddr_CFLAGS = $(test_cflags)
tests_unit_test_netaddr_LDADD = $(test_libs)
tests_unit_test_secrets_SOURCES = tests/unit/test_secrets.c core/secrets.c \
	$(IDENTITY_CRYPTO_SOURCES) core/encode.c core/util.c core/log.c
tests_unit_test_secrets_CFLAGS = $(test_cflags)
tests_unit_test_secrets_LDADD = $(test_libs)
tests_unit_test_multipart_SOURCES = tests/unit/test_multipart.c \
	core/multipart.c core/encode.c core/util.c core/log.c
tests_unit_test_multipart_CFLAGS = $(test_cflags)
tests_unit_test_multipart_LDADD = $(test_libs)

# ---- 1.4 encodings and request input: base64, hex, UUID, UTF-8 ----------
UNIT_TESTS += tests/unit/test_encode
tests_unit_test_encode_SOURCES = tests/unit/test_encode.c core/encode.c \
	core/util.c core/log.c
tests_unit_test_encode_CFLAGS = $(test_cflags)
tests_unit_test_encode_LDADD = $(test_libs)
# times, sort keys, cursors and the field readers' refusals; input.c
# answers through the request layer, so it links the whole core
UNIT_TESTS += tests/unit/test_input
tests_unit_test_input_SOURCES = tests/unit/test_input.c
tests_unit_test_input_CFLAGS = $(test_cflags)
tests_unit_test_input_LDADD = $(core_test_libs)

# ---- test plugins: each a shared object loaded by the loader tests -------
test_plugin_ldflags = -module -avoid-version -shared -rpath /nowhere \
	-export-symbols-regex '^plx_module_info$$' $(AM_LDFLAGS)
test_plugin_cflags = $(module_cflags) -I$(top_srcdir)/core/include
TEST_PLUGINS = tests/plugins/good.la tests/plugins/bad_major.la \
	tests/plugins/bad_minor.la tests/plugins/no_descriptor.la \
	tests/plugins/bad_magic.la tests/plugins/needs_missing.la \
	tests/plugins/cycle_a.la tests/plugins/cycle_b.la \
	tests/plugins/dup_route.la tests/plugins/order_probe.la \
	tests/plugins/init_fails.la tests/plugins/example.la \
	tests/plugins/after_good.la tests/plugins/authz_probe.la
check_LTLIBRARIES += $(TEST_PLUGINS)

# ---- test plugins of abi_minor_required: built for the next minor, one
# ---- requiring only the core's (loads), one requiring its own (refused)
check_LTLIBRARIES += tests/plugins/newer_minor.la tests/plugins/needs_newer.la
tests_plugins_newer_minor_la_SOURCES = tests/plugins/newer_minor.c
tests_plugins_newer_minor_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_newer_minor_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_needs_newer_la_SOURCES = tests/plugins/newer_minor.c
tests_plugins_needs_newer_la_CFLAGS = $(test_plugin_cflags) -DNEWER_REQUIRED
tests_plugins_needs_newer_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_good_la_SOURCES = tests/plugins/good.c
tests_plugins_good_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_good_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_bad_major_la_SOURCES = tests/plugins/bad_major.c
tests_plugins_bad_major_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_bad_major_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_bad_minor_la_SOURCES = tests/plugins/bad_minor.c
tests_plugins_bad_minor_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_bad_minor_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_no_descriptor_la_SOURCES = tests/plugins/no_descriptor.c
tests_plugins_no_descriptor_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_no_descriptor_la_LDFLAGS = -module -avoid-version -shared -rpath /nowhere $(AM_LDFLAGS)
tests_plugins_bad_magic_la_SOURCES = tests/plugins/bad_magic.c
tests_plugins_bad_magic_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_bad_magic_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_needs_missing_la_SOURCES = tests/plugins/needs_missing.c
tests_plugins_needs_missing_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_needs_missing_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_cycle_a_la_SOURCES = tests/plugins/cycle_a.c
tests_plugins_cycle_a_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_cycle_a_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_cycle_b_la_SOURCES = tests/plugins/cycle_b.c
tests_plugins_cycle_b_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_cycle_b_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_dup_route_la_SOURCES = tests/plugins/dup_route.c
tests_plugins_dup_route_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_dup_route_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_order_probe_la_SOURCES = tests/plugins/order_probe.c
tests_plugins_order_probe_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_order_probe_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_init_fails_la_SOURCES = tests/plugins/init_fails.c
tests_plugins_init_fails_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_init_fails_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_after_good_la_SOURCES = tests/plugins/after_good.c
tests_plugins_after_good_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_after_good_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_authz_probe_la_SOURCES = tests/plugins/authz_probe.c
tests_plugins_authz_probe_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_authz_probe_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_example_la_SOURCES = tests/plugins/example/example.c
tests_plugins_example_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_example_la_LDFLAGS = $(test_plugin_ldflags)

# ---- netprobe: drives the outbound HTTP client and the multipart reader --
check_LTLIBRARIES += tests/plugins/netprobe.la
tests_plugins_netprobe_la_SOURCES = tests/plugins/netprobe.c
tests_plugins_netprobe_la_CFLAGS = $(test_plugin_cflags) $(OPENSSL_CFLAGS)
tests_plugins_netprobe_la_LDFLAGS = $(test_plugin_ldflags)
tests_plugins_netprobe_la_LIBADD = $(OPENSSL_LIBS)

# ---- transactions, LISTEN/NOTIFY, durable events, jobs (plugin API 1.4) --
# db.c's pure parts; the txprobe plugin; two or three servers on one database
UNIT_TESTS += tests/unit/test_db
tests_unit_test_db_SOURCES = tests/unit/test_db.c
tests_unit_test_db_CFLAGS = $(test_cflags)
tests_unit_test_db_LDADD = $(core_test_libs)
check_LTLIBRARIES += tests/plugins/txprobe.la
tests_plugins_txprobe_la_SOURCES = tests/plugins/txprobe/txprobe.c
tests_plugins_txprobe_la_CFLAGS = $(test_plugin_cflags)
tests_plugins_txprobe_la_LDFLAGS = $(test_plugin_ldflags)
EXTRA_DIST += tests/plugins/txprobe/sql/0001_txprobe.sql
tests_integration_test_dbtx_SOURCES = tests/integration/test_dbtx.c
tests_integration_test_dbtx_CFLAGS = $(itest_cflags)
tests_integration_test_dbtx_LDADD = $(itest_libs)

# ---- integration tests: a real plexusd, a real PostgreSQL, HTTP and WS ---
INTEGRATION_TESTS = tests/integration/test_http tests/integration/test_streams \
	tests/integration/test_database tests/integration/test_jobs \
	tests/integration/test_lifecycle tests/integration/test_cli \
	tests/integration/test_idle_connections \
	tests/integration/test_auth tests/integration/test_mfa \
	tests/integration/test_teams tests/integration/test_apikeys \
	tests/integration/test_admin tests/integration/test_ratelimit
check_PROGRAMS += $(INTEGRATION_TESTS)
TESTS += $(INTEGRATION_TESTS)
tests_integration_test_http_SOURCES = tests/integration/test_http.c
tests_integration_test_http_CFLAGS = $(itest_cflags)
tests_integration_test_http_LDADD = $(itest_libs)
tests_integration_test_streams_SOURCES = tests/integration/test_streams.c
tests_integration_test_streams_CFLAGS = $(itest_cflags)
tests_integration_test_streams_LDADD = $(itest_libs)
tests_integration_test_database_SOURCES = tests/integration/test_database.c
tests_integration_test_database_CFLAGS = $(itest_cflags)
tests_integration_test_database_LDADD = $(itest_libs)
tests_integration_test_jobs_SOURCES = tests/integration/test_jobs.c
tests_integration_test_jobs_CFLAGS = $(itest_cflags)
tests_integration_test_jobs_LDADD = $(itest_libs)
tests_integration_test_lifecycle_SOURCES = tests/integration/test_lifecycle.c
tests_integration_test_lifecycle_CFLAGS = $(itest_cflags)
tests_integration_test_lifecycle_LDADD = $(itest_libs)
tests_integration_test_cli_SOURCES = tests/integration/test_cli.c
tests_integration_test_cli_CFLAGS = $(itest_cflags)
tests_integration_test_cli_LDADD = $(itest_libs)
tests_integration_test_idle_connections_SOURCES = tests/integration/test_idle_connections.c
tests_integration_test_idle_connections_CFLAGS = $(itest_cflags)
tests_integration_test_idle_connections_LDADD = $(itest_libs)

tests_integration_test_auth_SOURCES = tests/integration/test_auth.c
tests_integration_test_auth_CFLAGS = $(itest_cflags)
tests_integration_test_auth_LDADD = $(itest_libs)
tests_integration_test_mfa_SOURCES = tests/integration/test_mfa.c
tests_integration_test_mfa_CFLAGS = $(itest_cflags)
tests_integration_test_mfa_LDADD = $(itest_libs)
tests_integration_test_teams_SOURCES = tests/integration/test_teams.c
tests_integration_test_teams_CFLAGS = $(itest_cflags)
tests_integration_test_teams_LDADD = $(itest_libs)
tests_integration_test_apikeys_SOURCES = tests/integration/test_apikeys.c
tests_integration_test_apikeys_CFLAGS = $(itest_cflags)
tests_integration_test_apikeys_LDADD = $(itest_libs)
tests_integration_test_admin_SOURCES = tests/integration/test_admin.c
tests_integration_test_admin_CFLAGS = $(itest_cflags)
tests_integration_test_admin_LDADD = $(itest_libs)
tests_integration_test_ratelimit_SOURCES = tests/integration/test_ratelimit.c
tests_integration_test_ratelimit_CFLAGS = $(itest_cflags)
tests_integration_test_ratelimit_LDADD = $(itest_libs)

# every registered route tried as hostile callers (route_walk.c)
INTEGRATION_TESTS += tests/integration/test_route_authz tests/integration/test_dbtx
tests_integration_test_route_authz_SOURCES = tests/integration/test_route_authz.c
tests_integration_test_route_authz_CFLAGS = $(itest_cflags)
tests_integration_test_route_authz_LDADD = $(itest_libs)

# outbound HTTP (request-forgery guard, timeouts, redirects, streaming)
# against a loopback server of the test's own, and multipart uploads
INTEGRATION_TESTS += tests/integration/test_http_client \
	tests/integration/test_uploads
tests_integration_test_http_client_SOURCES = tests/integration/test_http_client.c
tests_integration_test_http_client_CFLAGS = $(itest_cflags)
tests_integration_test_http_client_LDADD = $(itest_libs)
tests_integration_test_uploads_SOURCES = tests/integration/test_uploads.c
tests_integration_test_uploads_CFLAGS = $(itest_cflags) $(OPENSSL_CFLAGS)
tests_integration_test_uploads_LDADD = $(itest_libs) $(OPENSSL_LIBS)

# the example third-party module, built out of tree against an installed
# copy of the headers and plexus.pc, then loaded by a server
TESTS += tests/example_module.sh

# the core's whole suite, which must pass with any set of modules present
# (scripts/test.sh runs it in a tree with modules removed):
#     make check TESTS='$(CORE_TESTS)'
CORE_TESTS = $(UNIT_TESTS) $(INTEGRATION_TESTS) tests/example_module.sh
EXTRA_DIST += tests/example_module.sh tests/plugins/example/Makefile \
	tests/plugins/example/README.md tests/plugins/example/example.conf \
	tests/plugins/example/sql/0001_records.sql

endif
