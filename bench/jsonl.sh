#!/bin/bash
# The JSON Lines view (-o layout=jsonl) against the same files on disk and
# against the per-event tree, in one table.
#
#	bench/jsonl.sh [BUILD_DIR]        (default: build; run as root)
#
# A month of the sample corpus (3 orgs x 30 days, about 25,000 events, a
# local-directory source) is mounted twice on one cache directory: as the
# per-event tree and as the jsonl view. After a `grep -r` over the tree
# fills the cache, `wivaudit export` copies the view to local disk, and
#
#   query  DuckDB's `SELECT event_type, count(*) FROM read_json_auto(GLOB)
#          GROUP BY 1`, warm (one run first, then the median of RUNS), over
#          the view, over the exported files and over the tree's files;
#   day    one day of about 100,000 events per type (100 objects of 1,000): `cat` of its
#          events.jsonl on a fresh mount over a filled cache, kernel caches
#          dropped, against `cat` of the exported file, caches dropped too;
#          again at once (from the page cache, kept between opens) against
#          the exported file warm; and again with kernel caches dropped (the
#          daemon's table of the day built); the daemon's CPU time for each
#          and its peak RSS (VmHWM) after the first.
#
# Environment: RUNS (default 5), BENCH_TMP (parent of the work directory,
# default /var/tmp). Needs tests/s3/node_modules (`npm ci` in tests/s3).
# Everything is unmounted and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
build=$(realpath "${1:-build}")
runs=${RUNS:-5}
[ "$(id -u)" = 0 ] || { echo "jsonl.sh: run as root (drop_caches, FUSE)" >&2; exit 2; }
ninja -C "$build" src/mount.wivaudit src/wivaudit >/dev/null
wiv=$build/src/mount.wivaudit
cli=$build/src/wivaudit
[ -d tests/s3/node_modules/@duckdb/node-api ] ||
	{ echo "jsonl.sh: run 'npm ci' in tests/s3 first" >&2; exit 2; }
export NODE_PATH=$src/tests/s3/node_modules

work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/wivaudit-jsonl.XXXXXX")
mounts=()
daemons=()
cleanup() {
	set +e
	for m in "${mounts[@]}"; do
		findmnt -M "$m" >/dev/null 2>&1 &&
			{ fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in "${daemons[@]}"; do
		for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$p" 2>/dev/null
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "# $*" >&2; }
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { echo "${EPOCHREALTIME/./}"; }  # microseconds
secs() { awk -v u="$1" 'BEGIN { printf "%.3f", u / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 }
	END { if (NR % 2) print v[(NR + 1) / 2];
	      else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Mounts source $1 on a new directory named $2 with options $3 in the
# foreground (in the background of this script); sets $pid.
mount_at() {
	mkdir -p "$work/$2"
	"$wiv" "$1" "$work/$2" -f -o "$3" 2>"$work/$2.err" &
	pid=$!
	daemons+=("$pid")
	mounts+=("$work/$2")
	for _ in $(seq 3000); do
		findmnt -M "$work/$2" >/dev/null 2>&1 && return 0
		kill -0 "$pid" 2>/dev/null ||
			{ echo "jsonl.sh: daemon for $2 died" >&2; cat "$work/$2.err" >&2; return 1; }
		sleep 0.01
	done
	echo "jsonl.sh: $2 not mounted after 30 s" >&2
	return 1
}

# Prints the warm median seconds of the group-by over glob $1.
query() {
	node bench/duckdb-time.js "$runs" \
		"SELECT event_type, count(*) FROM read_json_auto('$1') GROUP BY 1" |
		cut -d' ' -f1
}

say "machine: $(nproc) cores, Linux $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- a month: DuckDB through the view, on disk, through the tree ----

python3 contrib/gen-sample.py --orgs 3 --days 30 --objects-per-day 1 \
	--events-per-object 100 --gaps 0.1 "$work/month" >"$work/gen.out"
say "month: $(cat "$work/gen.out")"
mount_at "$work/month" tree "cache_dir=$work/cache"
mount_at "$work/month" view "cache_dir=$work/cache,layout=jsonl"
grep -rc event_type "$work/tree" >/dev/null
"$cli" export "$work/month" "$work/local" -o "cache_dir=$work/cache" 2>/dev/null
q_view=$(query "$work/view/*/*/*/*.jsonl")
q_local=$(query "$work/local/*/*/*/*.jsonl")
q_tree=$(query "$work/tree/*/*/*/*/*/*.json")

# ---- one day of 100,000 events, streamed ----

python3 contrib/gen-sample.py --orgs 1 --days 1 --objects-per-day 100 \
	--events-per-object 1000 --gaps 0 "$work/day" >"$work/genday.out"
say "day: $(cat "$work/genday.out")"
"$cli" export "$work/day" "$work/dayloc" -o "cache_dir=$work/daycache" 2>/dev/null
mount_at "$work/day" dayview "cache_dir=$work/daycache,layout=jsonl"
file=$(cd "$work/dayloc" && ls -S */*/*/events.jsonl | head -1)
bytes=$(stat -c %s "$work/dayloc/$file")
# Times `cat` of $1: $t gets the microseconds, $cpu the daemon's CPU time
# for it in milliseconds (utime + stime of /proc/PID/stat).
hz=$(getconf CLK_TCK)
ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
timed_cat() {
	local c0 c1 t0 t1
	c0=$(ticks); t0=$(now); cat "$1" >/dev/null; t1=$(now); c1=$(ticks)
	t=$((t1 - t0)); cpu=$(((c1 - c0) * 1000 / hz))
}
drop_caches
timed_cat "$work/dayview/$file"; day_view=$t; cpu_view=$cpu
hwm=$(sed -n 's/^VmHWM:[[:space:]]*//p' "/proc/$pid/status")
timed_cat "$work/dayview/$file"; day_warm=$t; cpu_warm=$cpu
drop_caches
timed_cat "$work/dayview/$file"; day_again=$t; cpu_again=$cpu
drop_caches
timed_cat "$work/dayloc/$file"; day_local=$t
timed_cat "$work/dayloc/$file"; day_local_warm=$t
cmp "$work/dayview/$file" "$work/dayloc/$file"

cat <<EOF

| measure | view (s) | baseline | baseline (s) | ratio | target |
|---|---:|---|---:|---:|---|
| DuckDB group-by, a month, warm | $q_view | same files on local disk | $q_local | $(ratio "$q_view" "$q_local")× | ≤ 1.5× |
| DuckDB group-by, a month, warm | $q_view | the per-event tree | $q_tree | $(ratio "$q_tree" "$q_view")× faster | ≥ 10× faster |
| \`cat\` of a ~100,000-event day ($bytes bytes), fresh mount, caches dropped | $(secs "$day_view") | the exported file, caches dropped | $(secs "$day_local") | $(ratio "$day_view" "$day_local")× | disk speed |
| the same \`cat\` again at once (page cache) | $(secs "$day_warm") | the exported file, warm | $(secs "$day_local_warm") | $(ratio "$day_warm" "$day_local_warm")× | disk speed |
| the same \`cat\` again, caches dropped (the day's table built) | $(secs "$day_again") | the exported file, caches dropped | $(secs "$day_local") | $(ratio "$day_again" "$day_local")× | disk speed |
| daemon CPU for those three \`cat\`s (ms) | $cpu_view / $cpu_warm / $cpu_again | | | | |
| daemon peak RSS reading that day | $hwm | | | | |
EOF
say "load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
