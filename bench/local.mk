# bench — performance programs (not tests): built with the tree, run by hand
# or by bench/*.sh; results go to bench/README.md.
noinst_PROGRAMS += bench/kernels
bench_kernels_CPPFLAGS = $(KERNELS_CPPFLAGS)
bench_kernels_SOURCES = bench/kernels.c
bench_kernels_LDADD = $(KERNELS_LIBS)

EXTRA_DIST += bench/pager.sh
