# bench — performance programs (not tests): built with the tree, run by hand
# or by bench/*.sh; results go to bench/README.md.  Files are listed one by
# one: distributing the whole folder would also copy the build tree's bench/
# (objects, programs) into the tarball, and distcheck would link stale ones.
EXTRA_DIST += bench/README.md bench/kernels.sh
noinst_PROGRAMS += bench/kernels
bench_kernels_CPPFLAGS = $(KERNELS_CPPFLAGS)
bench_kernels_SOURCES = bench/kernels.c
bench_kernels_LDADD = $(KERNELS_LIBS)

EXTRA_DIST += bench/lib.sh bench/pager.sh bench/prefill.sh bench/mpi.sh bench/resident.sh bench/r1.sh

noinst_PROGRAMS += bench/matmul
bench_matmul_CPPFLAGS = $(KERNELS_CPPFLAGS)
bench_matmul_SOURCES = bench/matmul.c
bench_matmul_LDADD = $(KERNELS_LIBS)
EXTRA_DIST += bench/server.sh bench/ttft.sh bench/decode.sh bench/flops.py

noinst_PROGRAMS += bench/attention
bench_attention_CPPFLAGS = $(KERNELS_CPPFLAGS)
bench_attention_SOURCES = bench/attention.c
bench_attention_LDADD = $(KERNELS_LIBS)
