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

bin_PROGRAMS += moepager-gguf
moepager_gguf_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_gguf_SOURCES = tools/gguftool.c
moepager_gguf_LDADD = $(SRC_LIBS)
dist_check_SCRIPTS += tests/gguf_tools.test
bin_PROGRAMS += moepager-compare
moepager_compare_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_compare_SOURCES = tools/moepager-compare.c
moepager_compare_LDADD = $(SRC_LIBS)
dist_check_SCRIPTS += tests/quality.test
EXTRA_DIST += tests/data/pride-and-prejudice.txt
