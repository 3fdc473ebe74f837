#!/bin/sh
# The whole test suite, from a fresh Debian 12 machine (as root): installs
# what the tests need, builds three times (plain; ASan+UBSan; clang with
# -Dwerror=true), runs every test in the first two and the unit tests in the
# clang build, and ends with one line "N passed, N failed, N skipped" that
# counts test cases: each pytest case and each other meson test is one.
#
# Without FUSE every filesystem test would skip and the suite would pass
# having tested nothing, so that is a failure unless WIVAUDIT_ALLOW_NO_FUSE=1
# (then they count as skipped).
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

contrib/install-deps.sh --tests
(cd tests/s3 && npm ci --no-audit --no-fund --loglevel=error)

no_fuse=
[ -c /dev/fuse ] || no_fuse="no /dev/fuse"
command -v fusermount3 >/dev/null 2>&1 || no_fuse="${no_fuse:+$no_fuse, }no fusermount3"
if [ -n "$no_fuse" ] && [ "${WIVAUDIT_ALLOW_NO_FUSE:-}" != 1 ]; then
	echo "FUSE is unavailable ($no_fuse): the filesystem tests cannot run."
	echo "Set WIVAUDIT_ALLOW_NO_FUSE=1 to run the rest and count them as skipped."
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

build() { # dir, compiler (empty: meson's default), meson options...
	dir=$1
	compiler=$2
	shift 2
	log=$(mktemp)
	if ! { [ -f "$dir/build.ninja" ] ||
		env ${compiler:+CC=$compiler} meson setup "$dir" "$@"; } >"$log" 2>&1 ||
		! ninja -C "$dir" >>"$log" 2>&1; then
		cat "$log"
		rm -f "$log"
		echo "0 passed, 1 failed, 0 skipped"
		exit 1
	fi
	rm -f "$log"
}
build build ''
build build-asan '' -Db_sanitize=address,undefined -Db_lundef=false
# Every compiler clean: clang with warnings as errors, so a warning or a
# missing library that only clang trips on cannot come back.
build build-clang clang -Dwerror=true -Dfuzzing=disabled

# pytest writes one JUnit XML file per module here (see tests/meson.build);
# the count below reads them, so none may be left from an earlier run.
for d in build build-asan build-clang; do
	rm -rf "$d/tests/junit"
done

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The builds' tests run side by side: most filesystem tests wait on
# timeouts and faults rather than the CPU. Each build's output is printed
# whole once all are done.
plain_log=$(mktemp)
asan_log=$(mktemp)
clang_log=$(mktemp)
meson test -C build --print-errorlogs --num-processes 2 >"$plain_log" 2>&1 &
plain_pid=$!
# The fuzzers carry their own sanitizers: once is enough.
meson test -C build-asan --print-errorlogs --num-processes 2 \
	--no-suite fuzz >"$asan_log" 2>&1 &
asan_pid=$!
meson test -C build-clang --print-errorlogs --suite unit >"$clang_log" 2>&1 &
clang_pid=$!
trap 'kill "$plain_pid" "$asan_pid" "$clang_pid" 2>/dev/null' INT TERM
status=0
wait "$plain_pid" || status=1
wait "$asan_pid" || status=1
wait "$clang_pid" || status=1
echo "== meson test in build"
cat "$plain_log"
echo "== meson test in build-asan"
cat "$asan_log"
echo "== meson test in build-clang (unit suite)"
cat "$clang_log"
rm -f "$plain_log" "$asan_log" "$clang_log"

/usr/bin/python3 "$top/tests/count-results.py" "$top/build" \
	"$top/build-asan" "$top/build-clang" || status=1
exit $status
