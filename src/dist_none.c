/*
 * dist_none.c — dist.h in a build without Open MPI (configure --without-mpi,
 * or libopenmpi-dev missing): always one process.  Started by mpirun, it says
 * so instead of running N copies of the whole model side by side.
 */
#include <stdio.h>
#include <stdlib.h>

#include "dist.h"
#include "err.h"

int mp_dist_init(int *argc, char ***argv, struct mp_dist **out, char *err, size_t err_len)
{
	(void)argc;
	(void)argv;
	*out = NULL;
	const char *size = getenv("OMPI_COMM_WORLD_SIZE");
	if ((size && atoi(size) > 1) || getenv("PMIX_RANK")) {
		snprintf(err, err_len, "started by mpirun, but this moepager was built without MPI: "
			 "apt-get install libopenmpi-dev openmpi-bin, then configure --with-mpi");
		return -MP_EUNAVAIL;
	}
	return 0;
}

uint32_t mp_dist_rank(const struct mp_dist *d) { (void)d; return 0; }
uint32_t mp_dist_size(const struct mp_dist *d) { (void)d; return 1; }
const char *mp_dist_host(const struct mp_dist *d) { (void)d; return ""; }

int mp_dist_layers(struct mp_dist *d, const struct mp_hparams *hp, const uint64_t *weight,
		   uint64_t fixed, uint64_t cap, uint32_t *l0, uint32_t *l1, char *err, size_t err_len)
{
	(void)d, (void)weight, (void)fixed, (void)cap, (void)err, (void)err_len;
	*l0 = 0;
	*l1 = hp->n_layer;
	return 0;
}

int mp_dist_merge_max(struct mp_dist *d, uint64_t *v, size_t n, char *err, size_t err_len)
{
	(void)d, (void)v, (void)n, (void)err, (void)err_len;
	return 0;   /* one process: its own table is the whole */
}

const struct mp_model_pipe *mp_dist_pipe(struct mp_dist *d) { (void)d; return NULL; }

int mp_dist_serve(struct mp_dist *d, struct mp_model *m)
{
	(void)d, (void)m;
	return -1;
}

void mp_dist_counts(const struct mp_dist *d, uint64_t *tokens, uint64_t *fwd_ns, uint64_t *stage_ns)
{
	(void)d;
	*tokens = *fwd_ns = *stage_ns = 0;
}

void mp_dist_finish(struct mp_dist *d, int status)
{
	(void)d, (void)status;
}
