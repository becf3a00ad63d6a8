# modules/metrics/module.mk - the metrics module, its plugins.d file and
# its tests (its service contract, <plexus/metrics.h>, is in core/include
# with the SDK). Included through modules/modules.mk (scripts/modules.sh).

module_LTLIBRARIES += modules/metrics/metrics.la
modules_metrics_metrics_la_SOURCES = \
	modules/metrics/metrics.c modules/metrics/metrics.h \
	modules/metrics/names.c modules/metrics/expose.c \
	modules/metrics/registry.c modules/metrics/settings.c \
	modules/metrics/requests.c modules/metrics/collect.c \
	modules/metrics/scrape.c
# a module sees the public API only: not core/, not AM_CPPFLAGS
modules_metrics_metrics_la_CPPFLAGS = -I$(top_srcdir)/core/include \
	-I$(top_srcdir)/modules/metrics
modules_metrics_metrics_la_CFLAGS = $(module_cflags)
modules_metrics_metrics_la_LDFLAGS = $(module_ldflags)
modules_metrics_metrics_la_LIBADD = $(JANSSON_LIBS) $(PTHREAD_LIBS) -lm

dist_pluginconf_DATA += plugins.d/metrics.conf
EXTRA_DIST += modules/metrics/README.md modules/metrics/packages

if HAVE_CMOCKA

metrics_test_cppflags = -I$(top_srcdir)/core/include -I$(top_srcdir)/modules/metrics

# unit: the writer, names, settings and registry, with a fake API table
check_PROGRAMS += modules/metrics/tests/test_metrics_unit
TESTS += modules/metrics/tests/test_metrics_unit
modules_metrics_tests_test_metrics_unit_SOURCES = \
	modules/metrics/tests/test_metrics_unit.c \
	modules/metrics/names.c modules/metrics/expose.c \
	modules/metrics/registry.c modules/metrics/settings.c \
	modules/metrics/requests.c modules/metrics/collect.c
modules_metrics_tests_test_metrics_unit_CPPFLAGS = $(metrics_test_cppflags)
modules_metrics_tests_test_metrics_unit_CFLAGS = $(module_cflags) $(CMOCKA_CFLAGS)
modules_metrics_tests_test_metrics_unit_LDADD = $(CMOCKA_LIBS) $(JANSSON_LIBS) \
	$(PTHREAD_LIBS) -lm

# a module that counts through metrics/1, and works without it
check_LTLIBRARIES += modules/metrics/tests/series_probe.la
modules_metrics_tests_series_probe_la_SOURCES = modules/metrics/tests/series_probe.c
modules_metrics_tests_series_probe_la_CPPFLAGS = $(metrics_test_cppflags)
modules_metrics_tests_series_probe_la_CFLAGS = $(module_cflags)
modules_metrics_tests_series_probe_la_LDFLAGS = $(test_plugin_ldflags)

# integration: a real plexusd scraped under load, and promtool
check_PROGRAMS += modules/metrics/tests/test_metrics
TESTS += modules/metrics/tests/test_metrics
modules_metrics_tests_test_metrics_SOURCES = modules/metrics/tests/test_metrics.c
modules_metrics_tests_test_metrics_CFLAGS = $(itest_cflags)
modules_metrics_tests_test_metrics_LDADD = $(itest_libs) $(PTHREAD_LIBS)

endif
