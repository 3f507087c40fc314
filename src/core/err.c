/* err.c — mp_strerror for our codes and errno values alike. */
#include <string.h>
#include "err.h"

static const char *const mp_msgs[] = {
	[MP_EFORMAT - MP_EBASE]    = "malformed input",
	[MP_EVERSION - MP_EBASE]   = "unsupported version",
	[MP_ETYPE - MP_EBASE]      = "unknown or unsupported data type",
	[MP_ENOTFOUND - MP_EBASE]  = "not found",
	[MP_EARG - MP_EBASE]       = "invalid argument",
	[MP_EBUDGET - MP_EBASE]    = "memory budget too small",
	[MP_EUNAVAIL - MP_EBASE]   = "not available",
	[MP_ECANCELLED - MP_EBASE] = "cancelled",
	[MP_ECORRUPT - MP_EBASE]   = "data corrupt (checksum mismatch)",
};

const char *mp_strerror(int err)
{
	if (err < 0)
		err = -err;
	if (err == 0)
		return "success";
	if (err > MP_EBASE && err < MP_ELAST)
		return mp_msgs[err - MP_EBASE];
	if (err < MP_EBASE)
		return strerror(err);
	return "unknown error";
}
