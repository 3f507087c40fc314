/*
 * err.h — error codes shared by every layer.
 *
 * Functions return int: 0 (or a count) on success, -errno for system failures
 * and -MP_E* for our own.  MP_E* values sit above every errno value, so one
 * mp_strerror() covers both.  The sentence a user reads (file, field, what was
 * expected) is kept by the object that failed; these codes only classify.
 */
#ifndef MP_ERR_H
#define MP_ERR_H

enum mp_err {
	MP_EBASE = 4096,
	MP_EFORMAT,      /* malformed input file or field */
	MP_EVERSION,     /* a version we do not read */
	MP_ETYPE,        /* unknown or unsupported data type */
	MP_ENOTFOUND,    /* a key, tensor, part or name does not exist */
	MP_EARG,         /* bad argument, flag or value */
	MP_EBUDGET,      /* a memory budget too small for the job */
	MP_EUNAVAIL,     /* feature or backend not available on this machine/build */
	MP_ECANCELLED,   /* operation cancelled by the caller */
	MP_ECORRUPT,     /* data does not match its checksum */
	MP_ELAST
};

/* Message for err (either sign).  Never NULL; static storage. */
const char *mp_strerror(int err);

#endif
