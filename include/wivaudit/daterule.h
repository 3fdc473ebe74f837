/* UTC days and DESIGN.md's date rule, as pure functions. Days are counted
 * from 1970-01-01 (day 0), negative before. */
#ifndef WIVAUDIT_DATERULE_H
#define WIVAUDIT_DATERULE_H

#include <stdbool.h>
#include <stdint.h>

#define WIV_MS_PER_DAY 86400000LL

/* The UTC day containing the instant ms. */
int64_t wiv_day_of_ms(int64_t ms);

/* Civil date of a day. */
void wiv_day_to_ymd(int64_t day, int *year, int *month, int *mday);

/* The day of a civil date, or INT64_MIN if the date does not exist. */
int64_t wiv_day_from_ymd(int year, int month, int mday);

/* Answers whether the event's org and type have a directory on day. */
typedef bool (*wiv_day_exists_fn)(void *arg, int64_t day);

struct wiv_event_date {
	int64_t day;     /* the day directory the event belongs in */
	int64_t mtime_s; /* the instant the rule used, whole seconds */
};

/* The date rule: the UTC day of created_at when it lies within window_s of
 * key_ms and that day has a directory (asked through day_exists); otherwise
 * the UTC day of key_ms. */
struct wiv_event_date wiv_event_date(bool has_created_at, double created_at,
				     int64_t key_ms, int64_t window_s,
				     wiv_day_exists_fn day_exists, void *arg);

#endif
