/*
 * fuzz_gguf.c — libFuzzer target for the GGUF parser (`make fuzz`, then
 * `make fuzz-run`).  Every input goes through mp_gguf_open_mem(); accepted
 * inputs are walked through every accessor, so a parser that lets a bad
 * count or offset through is caught where it is used.  Built with clang's
 * -fsanitize=fuzzer,address,undefined outside automake's objects (the
 * project's libraries are built by the configured compiler).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[MP_GGUF_ERR_LEN];
	struct mp_gguf *g;
	if (mp_gguf_open_mem(data, size, "fuzz.gguf", &g, err, sizeof err) != 0)
		return 0;
	for (uint64_t i = 0; i < mp_gguf_kv_count(g); i++) {
		char v[256];
		const char *key = mp_gguf_kv_key(g, i), *s;
		uint32_t u32;
		uint64_t u64;
		int64_t i64;
		float f;
		int b;
		struct mp_gguf_array a, sub;
		mp_gguf_kv_format(g, i, v, sizeof v);
		mp_gguf_get_u32(g, key, &u32);
		mp_gguf_get_u64(g, key, &u64);
		mp_gguf_get_i64(g, key, &i64);
		mp_gguf_get_f32(g, key, &f);
		mp_gguf_get_bool(g, key, &b);
		mp_gguf_get_str(g, key, &s);
		if (mp_gguf_get_array(g, key, -1, &a) == 0) {
			for (uint64_t j = 0; j < a.n && j < 64; j++) {
				uint64_t len;
				mp_gguf_array_str(&a, j, &len);
				if (mp_gguf_array_sub(&a, j, &sub) == 0)
					mp_gguf_array_str(&sub, 0, &len);
			}
		}
	}
	for (uint64_t i = 0; i < mp_gguf_tensor_count(g); i++) {
		const struct mp_gguf_tensor *t = mp_gguf_tensor_at(g, i);
		if (mp_gguf_find_tensor(g, t->name) != t)
			__builtin_trap();
		if (t->offset + t->nbytes > size)
			__builtin_trap();   /* invariant 3: data inside the file */
	}
	for (uint32_t l = 0; l < 4; l++)
		for (int m = 0; m < 3; m++) {
			struct mp_gguf_range r;
			if (mp_gguf_expert_range(g, l, 1, (enum mp_gguf_expert_mat)m, &r) == 0 &&
			    r.offset + r.len > size)
				__builtin_trap();
		}
	mp_gguf_destroy(g);
	return 0;
}
