/* profile.c — per-expert use counts saved across runs (see profile.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "alloc.h"
#include "err.h"
#include "profile.h"

#define PROFILE_MAGIC "MPPROFIL"
#define PROFILE_VERSION 1u

struct mp_profile {
	uint32_t layers, experts;   /* shape */
	uint64_t fingerprint;       /* model */
	uint64_t tokens;            /* tokens counted */
	uint32_t *uses;             /* [layers][experts] */
};

struct header {
	char magic[8];
	uint32_t version, layers, experts, zero;
	uint64_t fingerprint, tokens;
};
_Static_assert(sizeof(struct header) == 40, "profile header layout");

int mp_profile_create(uint32_t layers, uint32_t experts, uint64_t fingerprint,
		      struct mp_profile **out)
{
	*out = NULL;
	struct mp_profile *p = mp_calloc(1, sizeof *p);
	if (!p)
		return -ENOMEM;
	p->uses = mp_calloc((size_t)layers * experts, sizeof *p->uses);
	if (!p->uses) {
		mp_free(p);
		return -ENOMEM;
	}
	p->layers = layers;
	p->experts = experts;
	p->fingerprint = fingerprint;
	*out = p;
	return 0;
}

void mp_profile_destroy(struct mp_profile *p)
{
	if (!p)
		return;
	mp_free(p->uses);
	mp_free(p);
}

void mp_profile_count(struct mp_profile *p, uint32_t layer, const uint32_t *experts, uint32_t n)
{
	if (layer >= p->layers)
		return;
	for (uint32_t i = 0; i < n; i++)
		if (experts[i] < p->experts && p->uses[(size_t)layer * p->experts + experts[i]] < UINT32_MAX)
			p->uses[(size_t)layer * p->experts + experts[i]]++;
}

void mp_profile_count_token(struct mp_profile *p)
{
	p->tokens++;
}

uint64_t mp_profile_tokens(const struct mp_profile *p) { return p->tokens; }

uint32_t mp_profile_uses(const struct mp_profile *p, uint32_t layer, uint32_t expert)
{
	return layer < p->layers && expert < p->experts ? p->uses[(size_t)layer * p->experts + expert] : 0;
}

int mp_profile_load(struct mp_profile *p, const char *path, char *err, size_t len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, len, "%s: %s", path, strerror(errno));
		return -errno;
	}
	struct header h;
	int rc = -MP_EFORMAT;
	size_t n = (size_t)p->layers * p->experts;
	uint32_t *buf = NULL;
	if (fread(&h, sizeof h, 1, f) != 1 || memcmp(h.magic, PROFILE_MAGIC, 8) != 0) {
		snprintf(err, len, "%s: not a moepager usage profile", path);
		goto out;
	}
	if (h.version != PROFILE_VERSION) {
		snprintf(err, len, "%s: profile version %u; this moepager reads version %u", path,
			 h.version, PROFILE_VERSION);
		goto out;
	}
	if (h.fingerprint != p->fingerprint || h.layers != p->layers || h.experts != p->experts) {
		snprintf(err, len, "%s: the profile belongs to another model (fingerprint %016llx, "
			 "this model %016llx)", path, (unsigned long long)h.fingerprint,
			 (unsigned long long)p->fingerprint);
		rc = -MP_EARG;
		goto out;
	}
	buf = mp_malloc_array(n, sizeof *buf);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	if (fread(buf, sizeof *buf, n, f) != n) {
		snprintf(err, len, "%s: truncated (expected %zu use counts)", path, n);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		p->uses[i] = p->uses[i] > UINT32_MAX - buf[i] ? UINT32_MAX : p->uses[i] + buf[i];
	p->tokens += h.tokens;
	rc = 1;
out:
	mp_free(buf);
	fclose(f);
	return rc;
}

int mp_profile_save(const struct mp_profile *p, const char *path, char *err, size_t len)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.tmp%d", path, (int)getpid());
	FILE *f = fopen(tmp, "wb");
	if (!f) {
		snprintf(err, len, "%s: %s", tmp, strerror(errno));
		return -errno;
	}
	struct header h;
	memset(&h, 0, sizeof h);
	memcpy(h.magic, PROFILE_MAGIC, 8);
	h.version = PROFILE_VERSION;
	h.layers = p->layers;
	h.experts = p->experts;
	h.fingerprint = p->fingerprint;
	h.tokens = p->tokens;
	size_t n = (size_t)p->layers * p->experts;
	int ok = fwrite(&h, sizeof h, 1, f) == 1 && fwrite(p->uses, sizeof *p->uses, n, f) == n;
	ok = (fclose(f) == 0) && ok;
	if (!ok || rename(tmp, path) != 0) {
		snprintf(err, len, "%s: cannot write the profile: %s", path, strerror(errno));
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

uint32_t mp_profile_top(const struct mp_profile *p, uint32_t layer, uint32_t *experts, uint32_t n)
{
	if (layer >= p->layers)
		return 0;
	const uint32_t *u = p->uses + (size_t)layer * p->experts;
	uint32_t k = 0;
	/* selection: the most used not yet taken, lower id on ties */
	while (k < n) {
		uint32_t best = UINT32_MAX;
		for (uint32_t e = 0; e < p->experts; e++) {
			if (!u[e] || (best != UINT32_MAX && u[e] <= u[best]))
				continue;
			int taken = 0;
			for (uint32_t j = 0; j < k && !taken; j++)
				taken = experts[j] == e;
			if (!taken)
				best = e;
		}
		if (best == UINT32_MAX)
			break;
		experts[k++] = best;
	}
	return k;
}

void mp_profile_default_path(uint64_t fingerprint, char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char dir[4096];
	if (xdg && *xdg)
		snprintf(dir, sizeof dir, "%s/moepager", xdg);
	else if (home && *home)
		snprintf(dir, sizeof dir, "%s/.cache/moepager", home);
	else {
		buf[0] = 0;
		return;
	}
	/* create the parent (…/.cache) and the directory; errors show at save */
	char parent[4096];
	snprintf(parent, sizeof parent, "%s", dir);
	char *slash = strrchr(parent, '/');
	if (slash) {
		*slash = 0;
		mkdir(parent, 0755);
	}
	mkdir(dir, 0755);
	snprintf(buf, len, "%s/%016llx.profile", dir, (unsigned long long)fingerprint);
}
