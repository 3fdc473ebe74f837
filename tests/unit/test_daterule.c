#include "check.h"
#include "wivaudit/daterule.h"

/* Days that have a directory in these tests. */
static bool only_listed_days(void *arg, int64_t day)
{
	const int64_t *days = arg;
	for (; *days != INT64_MIN; days++)
		if (*days == day)
			return true;
	return false;
}

static void check_ymd(int64_t day, int y, int m, int d)
{
	int yy, mm, dd;
	wiv_day_to_ymd(day, &yy, &mm, &dd);
	CHECK_INT(yy, y);
	CHECK_INT(mm, m);
	CHECK_INT(dd, d);
	CHECK_INT(wiv_day_from_ymd(y, m, d), day);
}

int main(void)
{
	check_ymd(0, 1970, 1, 1);
	check_ymd(-1, 1969, 12, 31);
	check_ymd(11016, 2000, 2, 29);
	check_ymd(20481, 2026, 1, 28);
	check_ymd(2932896, 9999, 12, 31);
	CHECK_INT(wiv_day_from_ymd(2026, 2, 29), INT64_MIN);
	CHECK_INT(wiv_day_from_ymd(2026, 13, 1), INT64_MIN);
	CHECK_INT(wiv_day_from_ymd(2026, 4, 31), INT64_MIN);
	CHECK_INT(wiv_day_of_ms(-1), -1);
	CHECK_INT(wiv_day_of_ms(86399999), 0);
	CHECK_INT(wiv_day_of_ms(86400000), 1);

	const int64_t day = 20481; /* 2026-01-28 */
	const int64_t midnight_ms = day * WIV_MS_PER_DAY;
	int64_t both_days[] = {day - 1, day, INT64_MIN};
	int64_t key_day_only[] = {day, INT64_MIN};
	struct wiv_event_date d;

	/* Created one second before midnight, delivered just after: the
	 * previous day, since it has a directory. */
	d = wiv_event_date(true, (double)(midnight_ms / 1000 - 1),
			   midnight_ms + 500, 86400, only_listed_days,
			   both_days);
	CHECK_INT(d.day, day - 1);
	CHECK_INT(d.mtime_s, midnight_ms / 1000 - 1);

	/* Same, but the previous day has no directory: the key's day. */
	d = wiv_event_date(true, (double)(midnight_ms / 1000 - 1),
			   midnight_ms + 500, 86400, only_listed_days,
			   key_day_only);
	CHECK_INT(d.day, day);
	CHECK_INT(d.mtime_s, midnight_ms / 1000);

	/* Exactly at midnight belongs to the new day. */
	d = wiv_event_date(true, (double)(midnight_ms / 1000), midnight_ms,
			   86400, only_listed_days, both_days);
	CHECK_INT(d.day, day);

	/* Outside the window: the key's day and time. */
	d = wiv_event_date(true, (double)(midnight_ms / 1000 - 3601),
			   midnight_ms, 3600, only_listed_days, both_days);
	CHECK_INT(d.day, day);
	CHECK_INT(d.mtime_s, midnight_ms / 1000);

	/* On the window's edge: still inside. */
	d = wiv_event_date(true, (double)(midnight_ms / 1000 - 3600),
			   midnight_ms, 3600, only_listed_days, both_days);
	CHECK_INT(d.day, day - 1);

	/* Fractional seconds: mtime is whole seconds. */
	d = wiv_event_date(true, (double)(midnight_ms / 1000) + 10.75,
			   midnight_ms + 20000, 86400, only_listed_days,
			   both_days);
	CHECK_INT(d.mtime_s, midnight_ms / 1000 + 10);

	/* Missing, negative or absurd created_at falls back to the key. */
	d = wiv_event_date(false, 0, midnight_ms + 1500, 86400,
			   only_listed_days, both_days);
	CHECK_INT(d.day, day);
	CHECK_INT(d.mtime_s, midnight_ms / 1000 + 1);
	d = wiv_event_date(true, -5, midnight_ms, 86400, only_listed_days,
			   both_days);
	CHECK_INT(d.day, day);
	d = wiv_event_date(true, 1e300, midnight_ms, 86400, only_listed_days,
			   both_days);
	CHECK_INT(d.day, day);

	/* A key before 1970 still floors correctly. */
	d = wiv_event_date(false, 0, -1, 86400, only_listed_days, both_days);
	CHECK_INT(d.day, -1);
	CHECK_INT(d.mtime_s, -1);
	return CHECK_DONE();
}
