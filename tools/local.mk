# tools — the companion programs: moepager-sim (and, from other branches,
# moepager-stat, moepager-gguf, moepager-mkmodel).  Tools may use every layer
# below them.
bin_PROGRAMS += moepager-sim
moepager_sim_CPPFLAGS = $(TOOLS_CPPFLAGS)
moepager_sim_SOURCES = tools/moepager-sim.c
moepager_sim_LDADD = $(PAGER_LIBS)

dist_check_SCRIPTS += tests/sim.test
