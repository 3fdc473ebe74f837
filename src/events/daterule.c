/* Calendar arithmetic and the date rule. */
#include <math.h>

#include "wivaudit/daterule.h"

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

int64_t wiv_day_of_ms(int64_t ms)
{
	return floor_div(ms, WIV_MS_PER_DAY);
}

/* Howard Hinnant's civil-from-days: exact for the proleptic Gregorian
 * calendar without tables or timegm's locale and range surprises. */
void wiv_day_to_ymd(int64_t day, int *year, int *month, int *mday)
{
	int64_t z = day + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int64_t d = doy - (153 * mp + 2) / 5 + 1;
	int64_t m = mp < 10 ? mp + 3 : mp - 9;
	*year = (int)(yoe + era * 400 + (m <= 2));
	*month = (int)m;
	*mday = (int)d;
}

int64_t wiv_day_from_ymd(int year, int month, int mday)
{
	static const int month_days[] = {31, 29, 31, 30, 31, 30,
					 31, 31, 30, 31, 30, 31};
	if (month < 1 || month > 12 || mday < 1 || mday > month_days[month - 1])
		return INT64_MIN;
	int64_t y = year - (month <= 2);
	int64_t era = floor_div(y, 400);
	int64_t yoe = y - era * 400;
	int64_t mp = month > 2 ? month - 3 : month + 9;
	int64_t doy = (153 * mp + 2) / 5 + mday - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	int64_t day = era * 146097 + doe - 719468;
	/* Catches 29 February of a common year. */
	int y2, m2, d2;
	wiv_day_to_ymd(day, &y2, &m2, &d2);
	return (y2 == year && m2 == month && d2 == mday) ? day : INT64_MIN;
}

struct wiv_event_date wiv_event_date(bool has_created_at, double created_at,
				     int64_t key_ms, int64_t window_s,
				     wiv_day_exists_fn day_exists, void *arg)
{
	struct wiv_event_date key_date = {
		.day = wiv_day_of_ms(key_ms),
		.mtime_s = floor_div(key_ms, 1000),
	};
	if (!has_created_at || !isfinite(created_at))
		return key_date;
	/* Compare in seconds as doubles: created_at may be fractional or far
	 * outside int64 range, and the window check rejects those first. */
	double key_s = (double)key_ms / 1000.0;
	if (fabs(created_at - key_s) > (double)window_s)
		return key_date;
	double event_s = floor(created_at);
	int64_t day = floor_div((int64_t)event_s, 86400);
	if (!day_exists(arg, day))
		return key_date;
	return (struct wiv_event_date){.day = day, .mtime_s = (int64_t)event_s};
}
