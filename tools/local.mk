# tools — the companion programs, built on the layers below: moepager-sim
# (policy replay), moepager-mkmodel (synthetic models), moepager-gguf
# (inspect, plan, manifest, verify).
bin_PROGRAMS += moepager-sim
moepager_sim_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_sim_SOURCES = tools/moepager-sim.c
moepager_sim_LDADD = $(PAGER_LIBS)

dist_check_SCRIPTS += tests/sim.test

bin_PROGRAMS += moepager-mkmodel
moepager_mkmodel_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_mkmodel_SOURCES = \
	tools/mkmodel.c \
	tools/mkvocab.c \
	tools/mkvocab.h
moepager_mkmodel_LDADD = $(SRC_LIBS)

bin_PROGRAMS += moepager-stat
moepager_stat_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_stat_SOURCES = \
	tools/moepager-stat.c \
	tools/statview.c \
	tools/statview.h
moepager_stat_LDADD = $(SRC_LIBS)

check_PROGRAMS += tests/test_stat
tests_test_stat_CPPFLAGS = $(TOOLS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_stat_SOURCES = tests/test_stat.c tests/mp_test.h tools/statview.c tools/statview.h
tests_test_stat_LDADD = $(SRC_LIBS)

dist_check_SCRIPTS += tests/stat.test
