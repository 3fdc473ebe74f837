/* The missing-object record: reasons, their words, the fix each needs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wivaudit/escape.h"
#include "wivaudit/log.h"
#include "wivaudit/missing.h"

enum wiv_missing_reason wiv_missing_of_errno(int err, bool isolated)
{
	switch (err) {
	case ENOMEDIUM:
		return WIV_MISSING_ARCHIVED;
	case EPERM:
		return isolated ? WIV_MISSING_DENIED : WIV_MISSING_NONE;
	case ENOENT:
		return WIV_MISSING_GONE;
	case ESTALE:
		return WIV_MISSING_CHANGED;
	default:
		return WIV_MISSING_NONE;
	}
}

const char *wiv_missing_word(enum wiv_missing_reason r)
{
	switch (r) {
	case WIV_MISSING_ARCHIVED:
		return "archived";
	case WIV_MISSING_DENIED:
		return "denied";
	case WIV_MISSING_GONE:
		return "gone";
	case WIV_MISSING_CHANGED:
		return "changed";
	case WIV_MISSING_BAD:
		return "bad";
	case WIV_MISSING_OVER_LIMIT:
		return "over-limit";
	default:
		return "none";
	}
}

void wiv_missing_put_restore(FILE *f, const char *bucket, const char *key)
{
	fputs("aws s3api restore-object --bucket ", f);
	wiv_escape_shell_word(f, bucket);
	fputs(" --key ", f);
	wiv_escape_shell_word(f, key);
	fputs(" --restore-request Days=7", f);
}

/* The detail: what happened and what fixes it. */
static void put_detail(FILE *f, enum wiv_missing_reason r, const char *key,
		       const char *storage_class, const char *bucket)
{
	switch (r) {
	case WIV_MISSING_ARCHIVED:
		fprintf(f, "storage class %s: restore it first", storage_class);
		if (bucket) {
			fputs(" (", f);
			wiv_missing_put_restore(f, bucket, key);
			fputs(")", f);
		}
		break;
	case WIV_MISSING_DENIED:
		fputs("access denied to this key while others read: the "
		      "bucket or key policy must allow s3:GetObject on it", f);
		break;
	case WIV_MISSING_GONE:
		fputs("deleted since it was listed", f);
		break;
	case WIV_MISSING_CHANGED:
		fputs("replaced since it was listed", f);
		break;
	case WIV_MISSING_BAD:
		fputs("not a usable (gzipped) JSON array of events", f);
		break;
	case WIV_MISSING_OVER_LIMIT:
		fputs("over a per-object ceiling (-o max_object_events=, "
		      "max_object_bytes=): raise it to see its events", f);
		break;
	default:
		break;
	}
}

void wiv_missing_put_line(FILE *f, enum wiv_missing_reason r,
			  const char *key, const char *storage_class,
			  const char *bucket)
{
	/* Escaped, as wherever bucket text is printed: no tab or newline of
	 * a key can break the line format. */
	fprintf(f, "%s\t%s\t", wiv_esc(key).s, wiv_missing_word(r));
	put_detail(f, r, key, storage_class, bucket);
	fputc('\n', f);
}

void wiv_missing_log(enum wiv_missing_reason r, const char *key,
		     const char *storage_class, const char *bucket)
{
	if (r == WIV_MISSING_NONE || r == WIV_MISSING_BAD ||
	    r == WIV_MISSING_OVER_LIMIT)
		return;
	char *detail = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&detail, &len);
	if (!mem)
		return;
	put_detail(mem, r, key, storage_class, bucket);
	if (fclose(mem) != 0) {
		free(detail);
		return;
	}
	wiv_warn("%s: its events are not shown (%s): %s; the directories "
		 "around it list the rest and name it in "
		 "user.wivaudit.missing",
		 key, wiv_missing_word(r), detail);
	free(detail);
}
