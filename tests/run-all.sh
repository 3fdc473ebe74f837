#!/bin/sh
# The whole test suite, from a fresh Debian 12 machine (as root): installs
# what the tests need, builds twice (plain, and with ASan+UBSan), runs every
# test in both builds and ends with one line "N passed, N failed".
set -eu
cd "$(dirname "$0")/.."
top=$(pwd)

contrib/install-deps.sh --tests
(cd tests/s3 && npm ci --no-audit --no-fund --loglevel=error)

build() { # dir, meson options...
	dir=$1
	shift
	log=$(mktemp)
	if ! { [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@"; } >"$log" 2>&1 ||
		! ninja -C "$dir" >>"$log" 2>&1; then
		cat "$log"
		rm -f "$log"
		echo "0 passed, 1 failed"
		exit 1
	fi
	rm -f "$log"
}
build build
build build-asan -Db_sanitize=address,undefined -Db_lundef=false

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The two builds' tests run side by side: most filesystem tests wait on
# timeouts and faults rather than the CPU. Each build's output is printed
# whole once both are done.
plain_log=$(mktemp)
asan_log=$(mktemp)
meson test -C build --print-errorlogs --num-processes 2 >"$plain_log" 2>&1 &
plain_pid=$!
# The fuzzers carry their own sanitizers: once is enough.
meson test -C build-asan --print-errorlogs --num-processes 2 \
	--no-suite fuzz >"$asan_log" 2>&1 &
asan_pid=$!
trap 'kill "$plain_pid" "$asan_pid" 2>/dev/null' INT TERM
status=0
wait "$plain_pid" || status=1
wait "$asan_pid" || status=1
echo "== meson test in build"
cat "$plain_log"
echo "== meson test in build-asan"
cat "$asan_log"
rm -f "$plain_log" "$asan_log"

/usr/bin/python3 - "$top/build" "$top/build-asan" <<'PY'
import json, sys
passed = failed = skipped = 0
for d in sys.argv[1:]:
    with open(f"{d}/meson-logs/testlog.json") as f:
        for line in f:
            r = json.loads(line)["result"]
            if r in ("OK", "EXPECTEDFAIL"):
                passed += 1
            elif r == "SKIP":
                skipped += 1
            else:
                failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
