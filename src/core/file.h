/*
 * file.h — reading a whole (text) file into memory: prompts (-f), token-id
 * lists (@FILE).  Not for model data, which is read through the GGUF reader
 * and the pager.
 */
#ifndef MP_FILE_H
#define MP_FILE_H

#include <stddef.h>

/* Reads path into a NUL-terminated mp_malloc'd buffer (mp_free it); *len (if
 * non-NULL) gets its length.  Returns NULL with "PATH: reason" in err. */
char *mp_file_read(const char *path, size_t *len, char *err, size_t err_len);

#endif
