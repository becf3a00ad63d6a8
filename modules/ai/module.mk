# modules/ai/module.mk - the ai module, its migrations, its plugins.d file
# and its tests (its service contract, <plexus/ai.h>, is in core/include
# with the SDK). Included through modules/modules.mk (scripts/modules.sh).

module_LTLIBRARIES += modules/ai/ai.la

# settings and upstream calls: providers, wire formats, SSE parsing
ai_upstream_sources = modules/ai/settings.c modules/ai/upstream.c \
	modules/ai/sse_parse.c modules/ai/sse_parse.h modules/ai/provider.h \
	modules/ai/wire.c modules/ai/provider_openai.c \
	modules/ai/provider_anthropic.c modules/ai/provider_gemini.c \
	modules/ai/estimate.c
# models, quotas, usage rows; the admin and usage routes
ai_store_sources = modules/ai/store_sql.h modules/ai/store.c \
	modules/ai/admin.c modules/ai/usage.c
# the gateway, services and hooks; chat and conversations
ai_gateway_sources = modules/ai/ai.c modules/ai/chat.h modules/ai/chat_util.c \
	modules/ai/gateway.c modules/ai/service.c modules/ai/chat.c \
	modules/ai/conversations.c
# generate, analyze, translate, templates, JSON Schema
ai_task_sources = modules/ai/tasks.h modules/ai/tasks.c modules/ai/templates.c \
	modules/ai/schema.h modules/ai/schema.cc
# the OpenAI-compatible surface and the WebSocket
ai_openai_sources = modules/ai/oai.c modules/ai/oai.h modules/ai/openai.c \
	modules/ai/ws.c

modules_ai_ai_la_SOURCES = modules/ai/ai.h \
	$(ai_upstream_sources) $(ai_store_sources) $(ai_gateway_sources) \
	$(ai_task_sources) $(ai_openai_sources)
# a module sees the public API only: not core/, not AM_CPPFLAGS
modules_ai_ai_la_CPPFLAGS = -I$(top_srcdir)/core/include -I$(top_srcdir)/modules/ai
modules_ai_ai_la_CFLAGS = $(module_cflags) $(LIBCURL_CFLAGS)
modules_ai_ai_la_CXXFLAGS = $(WARN_CXXFLAGS) $(SAN_CFLAGS) $(PTHREAD_CFLAGS) \
	-fvisibility=hidden $(JANSSON_CFLAGS)
modules_ai_ai_la_LDFLAGS = $(module_ldflags)
modules_ai_ai_la_LIBADD = $(LIBCURL_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)

# data_dir of the module is $(pkgdatadir)/ai; init adds its sql/
aisqldir = $(pkgdatadir)/ai/sql
dist_aisql_DATA = modules/ai/sql/0001_ai.sql
dist_pluginconf_DATA += plugins.d/ai.conf
EXTRA_DIST += modules/ai/README.md modules/ai/packages modules/ai/module.m4

# the fake LLM provider as a program (modules/ai/bench/ai.sh): jansson and
# threads only, so a release build without cmocka makes it too
# (make modules/ai/tests/fake-llm)
ai_fake_sources = modules/ai/tests/fake_llm.c modules/ai/tests/fake_llm.h
check_PROGRAMS += modules/ai/tests/fake-llm
modules_ai_tests_fake_llm_SOURCES = modules/ai/tests/fake_llm_main.c \
	$(ai_fake_sources)
modules_ai_tests_fake_llm_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
modules_ai_tests_fake_llm_LDADD = $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
EXTRA_DIST += modules/ai/bench/ai.sh modules/ai/bench/ai_load.c \
	modules/ai/bench/README.md

if HAVE_CMOCKA

ai_test_cppflags = -I$(top_srcdir)/core/include -I$(top_srcdir)/modules/ai \
	-I$(top_srcdir)/modules/ai/tests \
	-I$(top_srcdir)/tests/support

# ---- shared ai test support ----
# the fake provider (a convenience library, linked by the tests that use
# it), a server with identity, metrics and ai, an admin and a user: add to
# an integration test's SOURCES, with CFLAGS = $(ai_itest_cflags) and
# LDADD = $(ai_itest_libs)
check_LTLIBRARIES += modules/ai/tests/libfakellm.la
modules_ai_tests_libfakellm_la_SOURCES = $(ai_fake_sources)
modules_ai_tests_libfakellm_la_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
modules_ai_tests_libfakellm_la_LIBADD = $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm
ai_itest_sources = modules/ai/tests/ai_client.c modules/ai/tests/ai_client.h
ai_itest_cflags = $(itest_cflags) -I$(top_srcdir)/modules/ai/tests
ai_itest_libs = modules/ai/tests/libfakellm.la $(itest_libs)

# the fake LLM provider itself, from outside, over libcurl
check_PROGRAMS += modules/ai/tests/test_fake_llm
TESTS += modules/ai/tests/test_fake_llm
modules_ai_tests_test_fake_llm_SOURCES = modules/ai/tests/test_fake_llm.c
modules_ai_tests_test_fake_llm_CFLAGS = $(ai_itest_cflags)
modules_ai_tests_test_fake_llm_LDADD = $(ai_itest_libs)

# ---- upstream tests ----
# a fake plx_api table (logv, config_get) for unit tests of module files
ai_stub_sources = modules/ai/tests/api_stub.c modules/ai/tests/api_stub.h

# unit: SSE parsing, request builders, stream decoders, error tables,
# settings; no network
check_PROGRAMS += modules/ai/tests/test_ai_wire
TESTS += modules/ai/tests/test_ai_wire
modules_ai_tests_test_ai_wire_SOURCES = modules/ai/tests/test_ai_wire.c \
	$(ai_stub_sources) $(ai_upstream_sources)
modules_ai_tests_test_ai_wire_CPPFLAGS = $(ai_test_cppflags)
modules_ai_tests_test_ai_wire_CFLAGS = $(module_cflags) $(LIBCURL_CFLAGS) \
	$(CMOCKA_CFLAGS)
modules_ai_tests_test_ai_wire_LDADD = $(CMOCKA_LIBS) $(LIBCURL_LIBS) \
	$(JANSSON_LIBS) $(PTHREAD_LIBS)

# upstream calls against the fake provider (fake_llm.h):
# all three protocols, streamed and not, usage, errors, timeouts, cancel
check_PROGRAMS += modules/ai/tests/test_ai_upstream
TESTS += modules/ai/tests/test_ai_upstream
modules_ai_tests_test_ai_upstream_SOURCES = \
	modules/ai/tests/test_ai_upstream.c $(ai_stub_sources) \
	$(ai_upstream_sources)
modules_ai_tests_test_ai_upstream_CPPFLAGS = $(ai_test_cppflags)
modules_ai_tests_test_ai_upstream_CFLAGS = $(module_cflags) $(LIBCURL_CFLAGS) \
	$(CMOCKA_CFLAGS)
modules_ai_tests_test_ai_upstream_LDADD = $(ai_itest_libs) $(CMOCKA_LIBS) \
	$(LIBCURL_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)


# ---- store tests ----

# the store layer against a real PostgreSQL, with nothing of the core: the
# fake API table with its database entries over libpq (db_stub.c), quota
# reservations from many threads, settling, sweeping, usage rows, the
# model cache, a database that goes away
check_PROGRAMS += modules/ai/tests/test_ai_store
TESTS += modules/ai/tests/test_ai_store
# the fake table's pure entries (UUIDs, UTF-8) are the core's own encoders:
# core/encode.c and what it needs, nothing else of the core
modules_ai_tests_test_ai_store_SOURCES = modules/ai/tests/test_ai_store.c \
	modules/ai/tests/db_stub.c $(ai_stub_sources) \
	modules/ai/store.c modules/ai/store_sql.h modules/ai/chat_util.c modules/ai/oai.c \
	core/encode.c core/util.c core/log.c
modules_ai_tests_test_ai_store_CPPFLAGS = $(ai_test_cppflags) -I$(top_srcdir)/core
modules_ai_tests_test_ai_store_CFLAGS = $(module_cflags) $(LIBPQ_CFLAGS) \
	$(CMOCKA_CFLAGS)
modules_ai_tests_test_ai_store_LDADD = $(itest_libs) $(CMOCKA_LIBS) \
	$(LIBPQ_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm

# integration: the admin routes (models, quotas) and the usage report on
# a real server, against usage rows written straight into the database
check_PROGRAMS += modules/ai/tests/test_ai_admin
TESTS += modules/ai/tests/test_ai_admin
modules_ai_tests_test_ai_admin_SOURCES = modules/ai/tests/test_ai_admin.c \
	$(ai_itest_sources)
modules_ai_tests_test_ai_admin_CFLAGS = $(ai_itest_cflags)
modules_ai_tests_test_ai_admin_LDADD = $(ai_itest_libs) -lm

# ---- gateway tests ----

# unit: the gateway's pure helpers (UTF-8, backoff, periods, cursors,
# history trimming); no core
check_PROGRAMS += modules/ai/tests/test_ai_chat_unit
TESTS += modules/ai/tests/test_ai_chat_unit
modules_ai_tests_test_ai_chat_unit_SOURCES = \
	modules/ai/tests/test_ai_chat_unit.c modules/ai/chat_util.c modules/ai/oai.c
modules_ai_tests_test_ai_chat_unit_CPPFLAGS = $(ai_test_cppflags)
modules_ai_tests_test_ai_chat_unit_CFLAGS = $(module_cflags) $(CMOCKA_CFLAGS)
modules_ai_tests_test_ai_chat_unit_LDADD = $(CMOCKA_LIBS) $(JANSSON_LIBS)

# a module that uses the ai module's hooks and services as another would
check_LTLIBRARIES += modules/ai/tests/ai_probe.la
modules_ai_tests_ai_probe_la_SOURCES = modules/ai/tests/ai_probe.c
modules_ai_tests_ai_probe_la_CPPFLAGS = -I$(top_srcdir)/core/include \
	-I$(top_srcdir)/modules/ai
modules_ai_tests_ai_probe_la_CFLAGS = $(module_cflags)
modules_ai_tests_ai_probe_la_LDFLAGS = $(test_plugin_ldflags)
modules_ai_tests_ai_probe_la_LIBADD = $(JANSSON_LIBS) $(PTHREAD_LIBS)

# integration: chat and conversations over each provider kind, streaming,
# usage, fallback, cancellation, hooks and services (with ai_probe);
# quotas under many parallel calls
AI_GATEWAY_ITESTS = modules/ai/tests/test_ai_chat modules/ai/tests/test_ai_quota
check_PROGRAMS += $(AI_GATEWAY_ITESTS)
TESTS += $(AI_GATEWAY_ITESTS)
modules_ai_tests_test_ai_chat_SOURCES = modules/ai/tests/test_ai_chat.c \
	$(ai_itest_sources)
modules_ai_tests_test_ai_chat_CFLAGS = $(ai_itest_cflags)
modules_ai_tests_test_ai_chat_LDADD = $(ai_itest_libs)
modules_ai_tests_test_ai_quota_SOURCES = modules/ai/tests/test_ai_quota.c \
	$(ai_itest_sources)
modules_ai_tests_test_ai_quota_CFLAGS = $(ai_itest_cflags)
modules_ai_tests_test_ai_quota_LDADD = $(ai_itest_libs) $(PTHREAD_LIBS)

# ---- task tests ----

# unit: the JSON Schema wrapper alone (schema.cc over valijson)
ai_task_cxxflags = $(WARN_CXXFLAGS) $(SAN_CFLAGS) $(PTHREAD_CFLAGS) $(JANSSON_CFLAGS)
check_PROGRAMS += modules/ai/tests/test_ai_schema
TESTS += modules/ai/tests/test_ai_schema
modules_ai_tests_test_ai_schema_SOURCES = modules/ai/tests/test_ai_schema.c \
	modules/ai/schema.cc modules/ai/schema.h
modules_ai_tests_test_ai_schema_CPPFLAGS = $(ai_test_cppflags)
modules_ai_tests_test_ai_schema_CFLAGS = $(module_cflags) $(CMOCKA_CFLAGS)
modules_ai_tests_test_ai_schema_CXXFLAGS = $(ai_task_cxxflags)
modules_ai_tests_test_ai_schema_LDADD = $(CMOCKA_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)

# unit: placeholders, rendering and field checks of templates.c; no core
check_PROGRAMS += modules/ai/tests/test_ai_templates
TESTS += modules/ai/tests/test_ai_templates
modules_ai_tests_test_ai_templates_SOURCES = modules/ai/tests/test_ai_templates.c \
	modules/ai/templates.c modules/ai/tasks.h modules/ai/schema.cc modules/ai/schema.h \
	modules/ai/chat_util.c modules/ai/oai.c
modules_ai_tests_test_ai_templates_CPPFLAGS = $(ai_test_cppflags)
modules_ai_tests_test_ai_templates_CFLAGS = $(module_cflags) $(CMOCKA_CFLAGS)
modules_ai_tests_test_ai_templates_CXXFLAGS = $(ai_task_cxxflags)
modules_ai_tests_test_ai_templates_LDADD = $(CMOCKA_LIBS) $(JANSSON_LIBS) $(PTHREAD_LIBS)

# integration: templates and their access rules, generate (with an output
# schema: retried once, 422), analyze and translate over the fake provider
check_PROGRAMS += modules/ai/tests/test_ai_tasks
TESTS += modules/ai/tests/test_ai_tasks
modules_ai_tests_test_ai_tasks_SOURCES = modules/ai/tests/test_ai_tasks.c \
	$(ai_itest_sources)
modules_ai_tests_test_ai_tasks_CFLAGS = $(ai_itest_cflags)
modules_ai_tests_test_ai_tasks_LDADD = $(ai_itest_libs)

# ---- openai and websocket tests ----

# unit: UTF-8 pieces, OpenAI messages to canonical, ids, base64 floats
check_PROGRAMS += modules/ai/tests/test_ai_oai_unit
TESTS += modules/ai/tests/test_ai_oai_unit
modules_ai_tests_test_ai_oai_unit_SOURCES = \
	modules/ai/tests/test_ai_oai_unit.c modules/ai/oai.c modules/ai/oai.h
modules_ai_tests_test_ai_oai_unit_CPPFLAGS = $(ai_test_cppflags)
modules_ai_tests_test_ai_oai_unit_CFLAGS = $(module_cflags) $(CMOCKA_CFLAGS)
modules_ai_tests_test_ai_oai_unit_LDADD = $(CMOCKA_LIBS) $(JANSSON_LIBS)

# integration: /v1/ as an OpenAI SDK sees it, and the WebSocket
AI_OPENAI_ITESTS = modules/ai/tests/test_ai_openai modules/ai/tests/test_ai_ws
check_PROGRAMS += $(AI_OPENAI_ITESTS)
TESTS += $(AI_OPENAI_ITESTS)
modules_ai_tests_test_ai_openai_SOURCES = modules/ai/tests/test_ai_openai.c \
	$(ai_itest_sources)
modules_ai_tests_test_ai_openai_CFLAGS = $(ai_itest_cflags)
modules_ai_tests_test_ai_openai_LDADD = $(ai_itest_libs) -lm
modules_ai_tests_test_ai_ws_SOURCES = modules/ai/tests/test_ai_ws.c \
	$(ai_itest_sources)
modules_ai_tests_test_ai_ws_CFLAGS = $(ai_itest_cflags)
modules_ai_tests_test_ai_ws_LDADD = $(ai_itest_libs) -lm

endif
