/* Objects whose events a directory cannot show, and why. One record for
 * every cause (archived, denied, gone, changed, a bad body), so that the
 * log, the stats and the directory's user.wivaudit.missing attribute all
 * say the same thing about the same key. */
#ifndef WIVAUDIT_MISSING_H
#define WIVAUDIT_MISSING_H

#include <stdbool.h>
#include <stdio.h>

enum wiv_missing_reason {
	WIV_MISSING_NONE = 0,
	WIV_MISSING_ARCHIVED, /* GLACIER or DEEP_ARCHIVE: restore it first */
	WIV_MISSING_DENIED,   /* 403 AccessDenied on this key, others read */
	WIV_MISSING_GONE,     /* 404: deleted since it was listed */
	WIV_MISSING_CHANGED,  /* 412: replaced since it was listed */
	WIV_MISSING_BAD,      /* the body is not a usable JSON array */
	WIV_MISSING_OVER_LIMIT, /* over max_object_events/max_object_bytes */
};

/* What a fetch error says about the object: a reason when it cannot be read
 * as listed (until the listing changes), WIV_MISSING_NONE when the failure
 * is transient or concerns the whole bucket (the request then fails, and
 * is retried on the next access). EPERM counts only when isolated: other
 * objects of the bucket were read, so the denial is about this key. */
enum wiv_missing_reason wiv_missing_of_errno(int err, bool isolated);

/* The reason's one word in the attribute: "archived", "denied", "gone",
 * "changed", "bad", "over-limit". */
const char *wiv_missing_word(enum wiv_missing_reason r);

/* Writes the attribute's line for one key:
 *	KEY<TAB>WORD<TAB>DETAIL<LF>
 * KEY escaped (escape.h), DETAIL as logged. */
void wiv_missing_put_line(FILE *f, enum wiv_missing_reason r,
			  const char *key, const char *storage_class,
			  const char *bucket);

/* Writes the command that restores an archived object for 7 days, bucket
 * and key quoted for a shell when they need it. */
void wiv_missing_put_restore(FILE *f, const char *bucket, const char *key);

/* Logs the key, the reason and the fix; callers call it once per key.
 * storage_class is the listed one; bucket is NULL for a directory source
 * (no restore command then). A bad body or one over a ceiling is logged
 * where it was found (the splitter). */
void wiv_missing_log(enum wiv_missing_reason r, const char *key,
		     const char *storage_class, const char *bucket);

#endif
