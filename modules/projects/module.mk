# modules/projects/module.mk - the projects module, its migrations, its
# plugins.d file and its tests. Included through modules/modules.mk
# (scripts/modules.sh).

module_LTLIBRARIES += modules/projects/projects.la
modules_projects_projects_la_SOURCES = \
	modules/projects/projects.c modules/projects/projects.h \
	modules/projects/common.c modules/projects/project_routes.c \
	modules/projects/task_routes.c modules/projects/comment_routes.c
# a module sees the public API only: not core/, not AM_CPPFLAGS
modules_projects_projects_la_CPPFLAGS = -I$(top_srcdir)/core/include
modules_projects_projects_la_CFLAGS = $(module_cflags)
modules_projects_projects_la_LDFLAGS = $(module_ldflags)
modules_projects_projects_la_LIBADD = $(JANSSON_LIBS)

# data_dir of the module is $(pkgdatadir)/projects; init adds its sql/
projectssqldir = $(pkgdatadir)/projects/sql
dist_projectssql_DATA = modules/projects/sql/0001_projects.sql
dist_pluginconf_DATA += plugins.d/projects.conf
EXTRA_DIST += modules/projects/README.md

if HAVE_CMOCKA

projects_test_cppflags = -I$(top_srcdir)/core/include -I$(top_srcdir)/modules/projects

# unit: If-Match, dates, LIKE patterns; no core
check_PROGRAMS += modules/projects/tests/test_projects_unit
TESTS += modules/projects/tests/test_projects_unit
modules_projects_tests_test_projects_unit_SOURCES = \
	modules/projects/tests/test_projects_unit.c modules/projects/common.c
modules_projects_tests_test_projects_unit_CPPFLAGS = $(projects_test_cppflags)
modules_projects_tests_test_projects_unit_CFLAGS = $(module_cflags) $(CMOCKA_CFLAGS)
modules_projects_tests_test_projects_unit_LDADD = $(CMOCKA_LIBS) $(JANSSON_LIBS)

# a module that records every projects.* event, for the tests to read
check_LTLIBRARIES += modules/projects/tests/event_probe.la
modules_projects_tests_event_probe_la_SOURCES = modules/projects/tests/event_probe.c
modules_projects_tests_event_probe_la_CPPFLAGS = -I$(top_srcdir)/core/include
modules_projects_tests_event_probe_la_CFLAGS = $(module_cflags)
modules_projects_tests_event_probe_la_LDFLAGS = $(test_plugin_ldflags)
modules_projects_tests_event_probe_la_LIBADD = $(JANSSON_LIBS) $(PTHREAD_LIBS)

# integration: a real plexusd with identity, teams and this module
PROJECTS_ITESTS = modules/projects/tests/test_projects_access \
	modules/projects/tests/test_projects_api
check_PROGRAMS += $(PROJECTS_ITESTS)
TESTS += $(PROJECTS_ITESTS)
modules_projects_tests_test_projects_access_SOURCES = \
	modules/projects/tests/test_projects_access.c \
	modules/projects/tests/projects_client.c modules/projects/tests/projects_client.h
modules_projects_tests_test_projects_access_CFLAGS = $(itest_cflags)
modules_projects_tests_test_projects_access_LDADD = $(itest_libs)
modules_projects_tests_test_projects_api_SOURCES = \
	modules/projects/tests/test_projects_api.c \
	modules/projects/tests/projects_client.c modules/projects/tests/projects_client.h
modules_projects_tests_test_projects_api_CFLAGS = $(itest_cflags)
modules_projects_tests_test_projects_api_LDADD = $(itest_libs) $(PTHREAD_LIBS)

endif
