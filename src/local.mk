# src — the runtime: gguf reader, model, memory plan, tokenizer, sampler, cli.
# Depends on pager, kernels and src/core.
bin_PROGRAMS += moepager
moepager_CPPFLAGS = $(SRC_CPPFLAGS)
moepager_SOURCES = src/moepager.c
moepager_LDADD = $(PAGER_LIBS)
