# kernels — quant block formats, dequant, vec_dot, matvec, CPU dispatch.
# Depends on src/core only.
noinst_LTLIBRARIES += libmpkernels.la
libmpkernels_la_CPPFLAGS = $(KERNELS_CPPFLAGS)
libmpkernels_la_SOURCES = \
	kernels/blocks.h \
	kernels/blocks_iq.h \
	kernels/dequant_avx2.c \
	kernels/dequant_avx512.c \
	kernels/dequant_x86.h \
	kernels/dispatch.c \
	kernels/dispatch.h \
	kernels/fp16.h \
	kernels/iq_grids.c \
	kernels/iq_grids.h \
	kernels/matvec.c \
	kernels/matvec.h \
	kernels/quant.c \
	kernels/quant.h \
	kernels/quant_avx2.c \
	kernels/quant_avx512.c \
	kernels/quant_iq.c \
	kernels/quant_iq.h \
	kernels/quant_iq_avx2.c \
	kernels/quant_iq_avx512.c \
	kernels/quant_k.c \
	kernels/quant_k.h \
	kernels/quant_legacy.c \
	kernels/quant_q8.c \
	kernels/quant_x86.h \
	kernels/simd.h \
	kernels/types.c \
	kernels/types.h \
	kernels/vecf32.c \
	kernels/vecf32.h \
	kernels/x86_codes.h

check_PROGRAMS += tests/test_dispatch
tests_test_dispatch_CPPFLAGS = $(KERNELS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_dispatch_SOURCES = tests/test_dispatch.c tests/mp_test.h
tests_test_dispatch_LDADD = $(KERNELS_LIBS)

check_PROGRAMS += tests/test_quant
tests_test_quant_CPPFLAGS = $(KERNELS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_quant_SOURCES = tests/test_quant.c tests/mp_test.h tests/quant_ref.h
tests_test_quant_LDADD = $(KERNELS_LIBS)

check_PROGRAMS += tests/test_quant_simd
tests_test_quant_simd_CPPFLAGS = $(KERNELS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_quant_simd_SOURCES = tests/test_quant_simd.c tests/mp_test.h
tests_test_quant_simd_LDADD = $(KERNELS_LIBS)

check_PROGRAMS += tests/test_dequant_simd
tests_test_dequant_simd_CPPFLAGS = $(KERNELS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_dequant_simd_SOURCES = tests/test_dequant_simd.c tests/mp_test.h tests/quant_ref.h
tests_test_dequant_simd_LDADD = $(KERNELS_LIBS)

check_PROGRAMS += tests/test_vecf32
tests_test_vecf32_CPPFLAGS = $(KERNELS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_vecf32_SOURCES = tests/test_vecf32.c tests/mp_test.h
tests_test_vecf32_LDADD = $(KERNELS_LIBS)

check_PROGRAMS += tests/test_matvec
tests_test_matvec_CPPFLAGS = $(KERNELS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_matvec_SOURCES = tests/test_matvec.c tests/mp_test.h
tests_test_matvec_LDADD = $(KERNELS_LIBS)

dist_check_SCRIPTS += tests/kernels_paths.test
check_PROGRAMS += tests/test_quant_iq
tests_test_quant_iq_CPPFLAGS = $(KERNELS_CPPFLAGS) -I$(top_srcdir)/tests
tests_test_quant_iq_SOURCES = tests/test_quant_iq.c tests/mp_test.h tests/quant_ref.h
tests_test_quant_iq_LDADD = $(KERNELS_LIBS)

EXTRA_DIST += kernels/iq_grids_gen.py
