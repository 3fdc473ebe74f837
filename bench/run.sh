#!/bin/bash
# wivaudit's performance against what users do without it, in one table.
#
#	bench/run.sh [BUILD_DIR]        (default: build; run as root)
#
# Generates a corpus of about 25,000 events with contrib/gen-sample.py,
# starts tests/s3/server.js (s3rver behind a SigV4-checking proxy) on
# 127.0.0.1 with a request log, seeds a bucket with /usr/bin/aws, and then
# measures, RUNS times each (median printed):
#
#   cold  mount + `grep -r` with an empty cache, against `aws s3 sync` to a
#         temporary directory + `find -name '*.gz' -exec zgrep ... {} +`, and
#         against the same zgrep over an s3fs mount (if s3fs is installed or
#         installable);
#   warm  `grep -r` after a remount over the filled cache, kernel caches
#         dropped, against `grep -r` over a plain copy of the tree on disk;
#   hot   `grep -r` repeated with the kernel's caches warm, against the local
#         copy and against bench/floorfs (the same files served from RAM by a
#         trivial FUSE filesystem: the floor for any FUSE filesystem);
#   find  `find -type f | wc -l` after a remount, kernel caches dropped;
#   ls    object GETs and LISTs (from the server's request log) for `ls` of
#         an org, a year and a month on a fresh mount;
#   RSS   the daemon's peak RSS (VmHWM) walking generated corpora of 252,000
#         and 1,008,000 events (local-directory source; `find` of every file
#         and `cat` of every 1000th).
#
# Environment: RUNS (default 5), BENCH_TMP (parent of the work directory,
# default /var/tmp: it must be a disk, not tmpfs), SKIP_RSS=1 (skip the big
# corpora), SKIP_S3FS=1, WIV_OPTS (more -o options for every wivaudit
# mount, to measure one lever: WIV_OPTS=readahead=0). Everything is
# unmounted and stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
build=$(realpath "${1:-build}")
runs=${RUNS:-5}
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (drop_caches, FUSE)" >&2; exit 2; }
[ -f "$build/build.ninja" ] ||
	{ echo "run.sh: no build in $build: meson setup $build first" >&2; exit 2; }
ninja -C "$build" src/mount.wivaudit bench/floorfs >/dev/null
wiv=$build/src/mount.wivaudit
floorfs=$build/bench/floorfs
for b in "$wiv" "$floorfs" /usr/bin/aws; do
	[ -x "$b" ] || { echo "run.sh: $b is missing" >&2; exit 2; }
done
[ -d tests/s3/node_modules/s3rver ] ||
	{ echo "run.sh: run 'npm ci' in tests/s3 first" >&2; exit 2; }

work=$(mktemp -d "${BENCH_TMP:-/var/tmp}/wivaudit-bench.XXXXXX")
mounts=()     # mount points to unmount
daemons=()    # pids to stop
server_pid=
cleanup() {
	set +e
	for m in "${mounts[@]}"; do
		findmnt -M "$m" >/dev/null 2>&1 &&
			{ fusermount3 -u "$m" 2>/dev/null || umount -l "$m"; }
	done
	for p in "${daemons[@]}" $server_pid; do
		kill "$p" 2>/dev/null
	done
	for p in "${daemons[@]}" $server_pid; do
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
median() { tr ' ' '\n' | grep . | sort -n | awk '{ v[NR] = $1 }
	END { if (NR % 2) print v[(NR + 1) / 2];
	      else printf "%d\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# Waits (bounded) until $1 is a mount point; fails if pid $2 died first.
wait_mounted() {
	for _ in $(seq 3000); do
		findmnt -M "$1" >/dev/null 2>&1 && return 0
		[ -z "${2:-}" ] || kill -0 "$2" 2>/dev/null ||
			{ echo "run.sh: daemon for $1 died" >&2; return 1; }
		sleep 0.01
	done
	echo "run.sh: $1 not mounted after 30 s" >&2
	return 1
}
# Unmounts $1 and waits (bounded) for daemon pid $2 to exit.
unmount() {
	fusermount3 -u "$1" 2>/dev/null || umount "$1" 2>/dev/null || umount -l "$1"
	[ -z "${2:-}" ] && return 0
	for _ in $(seq 100); do kill -0 "$2" 2>/dev/null || return 0; sleep 0.1; done
	kill -9 "$2" 2>/dev/null || true
}

# ---- corpus, server, bucket ----

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "machine: $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r); load $(cut -d' ' -f1-3 /proc/loadavg)"
python3 contrib/gen-sample.py --orgs 3 --days 60 --objects-per-day 1 \
	--events-per-object 52 --gaps 0.1 "$work/corpus" >"$work/gen.out"
say "corpus: $(cat "$work/gen.out"), $(du -sb "$work/corpus" | cut -f1) bytes of gzip"
n_objects=$(find "$work/corpus" -type f | wc -l)

export HOME=$work/home AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER \
	AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
	AWS_CONFIG_FILE=$work/aws-config AWS_SHARED_CREDENTIALS_FILE=$work/aws-creds \
	AWS_EC2_METADATA_DISABLED=true AWS_PAGER=
unset AWS_PROFILE AWS_SESSION_TOKEN WIVAUDIT_CONFIG
mkdir -p "$HOME"
: >"$AWS_CONFIG_FILE"; : >"$AWS_SHARED_CREDENTIALS_FILE"
log=$work/requests.log
: >"$log"
WIV_S3_LOG=$log node tests/s3/server.js </dev/null >"$work/server.out" \
	2>"$work/server.err" &
server_pid=$!
for _ in $(seq 300); do
	grep -q '^READY' "$work/server.out" 2>/dev/null && break
	kill -0 "$server_pid" 2>/dev/null || break
	sleep 0.1
done
port=$(sed -n 's/^READY \([0-9]*\) .*/\1/p' "$work/server.out")
[ -n "$port" ] || { echo "run.sh: server did not start:" >&2; cat "$work/server.err" >&2; exit 1; }
endpoint=http://127.0.0.1:$port
aws() { timeout 600 /usr/bin/aws --endpoint-url "$endpoint" "$@"; }
aws s3 mb s3://bench >/dev/null
aws s3 sync "$work/corpus" s3://bench/ --only-show-errors

mnt=$work/mnt; fmnt=$work/floor; smnt=$work/s3fs
mkdir -p "$mnt" "$fmnt" "$smnt"
mounts=("$mnt" "$fmnt" "$smnt")
wiv_pid=
# Mounts the bucket on $mnt (foreground daemon, pid in wiv_pid).
mount_wiv() {
	"$wiv" s3://bench "$mnt" -f -o "endpoint=$endpoint,cache_dir=$1${WIV_OPTS:+,$WIV_OPTS}" \
		2>>"$work/daemon.err" &
	wiv_pid=$!
	daemons+=("$wiv_pid")
	wait_mounted "$mnt" "$wiv_pid"
}
umount_wiv() { unmount "$mnt" "$wiv_pid"; }

search() { grep -r OrgCreated "$1" >"$work/grep.out" || true; }
zsearch() { find "$1" -name '*.gz' -exec zgrep OrgCreated {} + >"$work/grep.out" || true; }
# Times "$@" in microseconds (output discarded by the callee).
timed() { local s; s=$(now); "$@"; echo $(($(now) - s)); }

results=()
row() { results+=("$(printf '%-34s|%10s|%-30s|%10s|%7s|%-8s|%s' "$@")"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# ---- cold ----

say "cold: mount + grep -r over an empty cache"
cold=(); gets=
for i in $(seq "$runs"); do
	rm -rf "$work/cache"
	drop_caches
	mark=$(wc -l <"$log")
	s=$(now); mount_wiv "$work/cache"; search "$mnt"; e=$(now)
	cold+=($((e - s)))
	hits_wiv=$(wc -l <"$work/grep.out")
	[ -n "$gets" ] || gets=$(tail -n +"$((mark + 1))" "$log" | awk -F'\t' '$1 == "GET" && $3 == "get"' | wc -l)
	umount_wiv
done
say "cold: aws s3 sync + zgrep"
sync_t=(); zgrep_t=(); both=()
for i in $(seq "$runs"); do
	rm -rf "$work/sync"
	drop_caches
	s=$(now); aws s3 sync s3://bench "$work/sync" --only-show-errors; m=$(now)
	zsearch "$work/sync"; e=$(now)
	sync_t+=($((m - s))); zgrep_t+=($((e - m))); both+=($((e - s)))
done
rm -rf "$work/sync"
cold_med=$(echo "${cold[*]}" | median)
both_med=$(echo "${both[*]}" | median)
row "cold mount + grep -r ($gets GETs)" "$(secs "$cold_med")" \
	"aws s3 sync + zgrep" "$(secs "$both_med")" \
	"$(ratio "$both_med" "$cold_med")x" ">=2x" \
	"speed-up; sync $(secs "$(echo "${sync_t[*]}" | median)") + zgrep $(secs "$(echo "${zgrep_t[*]}" | median)")"

if [ -z "${SKIP_S3FS:-}" ] && ! command -v s3fs >/dev/null 2>&1 &&
	command -v apt-get >/dev/null 2>&1; then
	say "installing s3fs"
	DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y s3fs \
		>"$work/apt.out" 2>&1 || true
fi
if [ -z "${SKIP_S3FS:-}" ] && command -v s3fs >/dev/null 2>&1; then
	say "cold: s3fs + zgrep"
	echo S3RVER:S3RVER >"$work/s3fs.passwd"
	chmod 600 "$work/s3fs.passwd"
	s3fs_t=()
	for i in $(seq "$runs"); do
		drop_caches
		s=$(now)
		s3fs bench "$smnt" -o "ro,url=$endpoint,use_path_request_style,passwd_file=$work/s3fs.passwd,endpoint=us-east-1" \
			2>>"$work/s3fs.err"
		wait_mounted "$smnt"
		zsearch "$smnt"; e=$(now)
		s3fs_t+=($((e - s)))
		unmount "$smnt"
		sleep 0.5
	done
	s3fs_med=$(echo "${s3fs_t[*]}" | median)
	row "cold mount + grep -r" "$(secs "$cold_med")" "s3fs mount + zgrep" \
		"$(secs "$s3fs_med")" "$(ratio "$s3fs_med" "$cold_med")x" ">1x" \
		"speed-up"
else
	row "cold mount + grep -r" "$(secs "$cold_med")" "s3fs: not available" \
		"-" "-" ">1x" ""
fi

# The plain copy: the same tree as files on local disk (no xattrs).
mount_wiv "$work/cache"
cp -r --preserve=mode,timestamps "$mnt" "$work/local"
umount_wiv
search "$work/local"
hits_local=$(wc -l <"$work/grep.out")
"$floorfs" "$work/local" "$fmnt" -f 2>"$work/floorfs.err" &
floor_pid=$!; daemons+=("$floor_pid")
wait_mounted "$fmnt" "$floor_pid"

# ---- warm ----

say "warm: remount, drop caches, grep -r"
warm=(); warm_local=(); warm_f=()
for i in $(seq "$runs"); do
	mount_wiv "$work/cache"
	drop_caches
	warm+=($(timed search "$mnt"))
	umount_wiv
	drop_caches
	warm_local+=($(timed search "$work/local"))
	drop_caches
	warm_f+=($(timed search "$fmnt"))
done
a=$(echo "${warm[*]}" | median); b=$(echo "${warm_local[*]}" | median)
c=$(echo "${warm_f[*]}" | median)
row "warm grep -r" "$(secs "$a")" "local disk grep -r" "$(secs "$b")" \
	"$(ratio "$a" "$b")x" "<=1.3x" "remount + drop_caches before each"
row "warm grep -r" "$(secs "$a")" "floorfs grep -r" "$(secs "$c")" \
	"$(ratio "$a" "$c")x" "-" "floor/local $(ratio "$c" "$b")x"

say "warm: remount, drop caches, find"
find_w=(); find_l=(); find_f=()
for i in $(seq "$runs"); do
	mount_wiv "$work/cache"
	drop_caches
	find_w+=($(timed sh -c "find '$mnt' -type f | wc -l >'$work/find.out'"))
	n_found=$(cat "$work/find.out")
	umount_wiv
	drop_caches
	find_l+=($(timed sh -c "find '$work/local' -type f | wc -l >/dev/null"))
	drop_caches
	find_f+=($(timed sh -c "find '$fmnt' -type f | wc -l >/dev/null"))
done
a=$(echo "${find_w[*]}" | median); b=$(echo "${find_l[*]}" | median)
c=$(echo "${find_f[*]}" | median)
row "warm find -type f | wc -l" "$(secs "$a")" "local disk find" "$(secs "$b")" \
	"$(ratio "$a" "$b")x" "<=1.5x" "$n_found files"
row "warm find -type f | wc -l" "$(secs "$a")" "floorfs find" "$(secs "$c")" \
	"$(ratio "$a" "$c")x" "-" "floor/local $(ratio "$c" "$b")x"

# ---- hot ----

say "hot: grep -r with the kernel's caches warm"
mount_wiv "$work/cache"
for d in "$mnt" "$fmnt" "$work/local"; do search "$d"; search "$d"; done
hot=(); hot_l=(); hot_f=()
for i in $(seq $((runs * 2))); do
	hot+=($(timed search "$mnt"))
	hot_f+=($(timed search "$fmnt"))
	hot_l+=($(timed search "$work/local"))
done
a=$(echo "${hot[*]}" | median); b=$(echo "${hot_f[*]}" | median)
c=$(echo "${hot_l[*]}" | median)
row "hot grep -r" "$(secs "$a")" "floorfs (FUSE floor) grep -r" "$(secs "$b")" \
	"$(ratio "$a" "$b")x" "<=1.2x" ""
row "hot grep -r" "$(secs "$a")" "local disk grep -r" "$(secs "$c")" \
	"$(ratio "$a" "$c")x" "-" "floor/local $(ratio "$b" "$c")x"
unmount "$fmnt" "$floor_pid"

# ---- ls: requests ----

umount_wiv
say "ls: requests on a fresh mount"
rm -rf "$work/cache2"
mount_wiv "$work/cache2"
org=$(ls "$work/local" | sed -n 1p)
year=$(ls "$work/local/$org" | sed -n 1p)
month=$(ls "$work/local/$org/$year" | sed -n 1p)
for p in "$org" "$org/$year" "$org/$year/$month"; do
	mark=$(wc -l <"$log")
	ls -l "$mnt/$p" >/dev/null
	g=$(tail -n +"$((mark + 1))" "$log" | awk -F'\t' '$3 == "get"' | wc -l)
	l=$(tail -n +"$((mark + 1))" "$log" | awk -F'\t' '$3 == "list"' | wc -l)
	depth="an org"; [ "$p" = "$org/$year" ] && depth="a year"
	[ "$p" = "$org/$year/$month" ] && depth="a month"
	row "ls -l of $depth" "$g GETs" "" "" "$l LISTs" "0 GETs" ""
done
umount_wiv

# ---- memory ----

# Writes ORGS x 3 types x DAYS objects of 1000 events each under $1.
big_corpus() {
	python3 - "$@" <<'PY'
import gzip, multiprocessing, os, sys

out, orgs, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
DAY = 86400
START = 1767225600  # 2026-01-01
TYPES = {"org": "PolicyUpdated", "user": "UserLoggedIn", "api": "ApiKeyRotated"}

def write(job):
    o, typ, d = job
    org = "%08x-0000-4000-8000-%012x" % (0xb0000000 + o, o)
    key_s = START + d * DAY + 23 * 3600
    parts = []
    for i in range(1000):
        parts.append(
            '{"id":"%s-%s-%05d-%04d","org_id":"%s","org_name":"Bench %d",'
            '"event_type":"%s","event_data":{"user_id":"u-%d","ip":"10.0.%d.%d",'
            '"detail":{"attempt":%d,"ok":true,"tags":["bench","perf"]}},'
            '"created_at":%d,"caused_by_id":"u-%d","caused_by_type":"user",'
            '"caused_by_source_ip":"10.1.%d.%d","relevant_user_email":'
            '"user%d@example.com"}'
            % (typ, org[:8], d, i, org, o, TYPES[typ], i % 97, i % 250,
               d % 250, i, START + d * DAY + i * 80, i % 89, i % 250, d % 250,
               i % 89))
    body = ("[" + ",".join(parts) + "]").encode()
    path = os.path.join(out, org)
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "%s-audit-logs-%d.json.gz"
                           % (typ, key_s * 1000)), "wb") as f:
        f.write(gzip.compress(body, compresslevel=1))

jobs = [(o, t, d) for o in range(orgs) for t in TYPES for d in range(days)]
with multiprocessing.Pool(os.cpu_count()) as p:
    p.map(write, jobs, chunksize=16)
print(len(jobs) * 1000)
PY
}

rss_row() {  # ORGS DAYS
	local dir=$work/big$1 events s e hwm
	s=$(now); events=$(big_corpus "$dir" "$1" "$2"); e=$(now)
	say "rss: $events events generated in $(secs $((e - s))) s"
	rm -rf "$work/bigcache"
	"$wiv" "$dir" "$mnt" -f -o "cache_dir=$work/bigcache,cache_size=16G" \
		2>>"$work/daemon.err" &
	wiv_pid=$!; daemons+=("$wiv_pid")
	wait_mounted "$mnt" "$wiv_pid"
	s=$(now)
	find "$mnt" -type f >"$work/big.list"
	awk 'NR % 1000 == 0' "$work/big.list" | tr '\n' '\0' |
		xargs -0 cat >/dev/null
	e=$(now)
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$wiv_pid/status")
	local found; found=$(wc -l <"$work/big.list")
	umount_wiv
	rm -rf "$dir" "$work/bigcache" "$work/big.list"
	row "peak RSS, walk of $events events" "$((hwm / 1024)) MiB" \
		"(find: $found files)" "" "" "<64 MiB" "walk $(secs $((e - s))) s"
}
if [ -z "${SKIP_RSS:-}" ]; then
	say "rss: walking big corpora"
	rss_row 1 84
	rss_row 4 84
fi

# ---- table ----

echo
echo "wivaudit bench: $(nproc) cores, $(sed -n 's/^model name[^:]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
echo "corpus: $(cat "$work/gen.out"); $n_objects objects; median of $runs runs (hot: $((runs * 2)))"
echo "matches: wivaudit $hits_wiv files, local copy $hits_local files"
echo "load average: $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo
printf '%-34s|%10s|%-30s|%10s|%7s|%-8s|%s\n' "measure" "wivaudit" \
	"baseline" "baseline" "ratio" "target" "note"
printf '%s\n' "${results[@]}"
