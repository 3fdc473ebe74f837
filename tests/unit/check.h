/* Minimal test harness: CHECK records a failure and goes on; each test
 * binary returns non-zero if any check failed. */
#ifndef WIVAUDIT_TEST_CHECK_H
#define WIVAUDIT_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

static int check_failures;

#define CHECK(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                           \
			check_failures++;                                   \
		}                                                           \
	} while (0)

#define CHECK_STR(got, want)                                                \
	do {                                                                \
		const char *got_ = (got), *want_ = (want);                  \
		if (!got_ || strcmp(got_, want_) != 0) {                    \
			fprintf(stderr, "%s:%d: got \"%s\", want \"%s\"\n",  \
				__FILE__, __LINE__, got_ ? got_ : "(null)",   \
				want_);                                     \
			check_failures++;                                   \
		}                                                           \
	} while (0)

#define CHECK_INT(got, want)                                                \
	do {                                                                \
		long long got_ = (long long)(got), want_ = (long long)(want); \
		if (got_ != want_) {                                        \
			fprintf(stderr, "%s:%d: %s = %lld, want %lld\n",     \
				__FILE__, __LINE__, #got, got_, want_);     \
			check_failures++;                                   \
		}                                                           \
	} while (0)

#define CHECK_DONE()                                                        \
	(check_failures ? (fprintf(stderr, "%d check(s) failed\n",          \
				   check_failures), 1) : 0)

#endif
