#!/bin/sh
# The cache's cost on the sample corpus (360 objects, 19,800 events, as in
# the baseline measurement): bytes on disk per byte of gzip input, and the
# hit path: `cat` of every file cold (nothing cached), from a warm cache
# after a remount (with and without the kernel's caches dropped), and from
# the kernel's page cache; `find` before and after a remount; then
# wiv_cache_lookup and wiv_cache_read_event alone.
#
#	bench/cache_overhead.sh [BUILD_DIR]     (default: build; run as root)
#
# The source is a local mirror, so the figures are the cache's and the
# split's, not the network's.
set -eu
cd "$(dirname "$0")/.."
build=$(realpath "${1:-build}")
work=$(mktemp -d /tmp/wivaudit-bench.XXXXXX)
mnt=$work/mnt
mkdir -p "$mnt"
trap 'findmnt -M "$mnt" >/dev/null 2>&1 && fusermount3 -u "$mnt"; rm -rf "$work"' EXIT

python3 contrib/gen-sample.py --orgs 6 --days 20 --objects-per-day 1 \
	--events-per-object 55 --gaps 0 "$work/bucket" >/dev/null

mount_it() {
	"$build/src/mount.wivaudit" "$work/bucket" "$mnt" -o cache_dir="$work/cache"
}
drop() {
	sync
	echo 3 >/proc/sys/vm/drop_caches
}
# Seconds (3 decimals) a command takes.
timed() {
	start=$(date +%s.%N)
	"$@" >/dev/null
	end=$(date +%s.%N)
	awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f\n", b - a }'
}
cat_all() {
	find "$mnt" -type f -print0 | xargs -0 cat
}

mount_it
drop
cold=$(timed cat_all)
kernel=$(timed cat_all)
fusermount3 -u "$mnt"
mount_it
drop
warm=$(timed cat_all)
fusermount3 -u "$mnt"
mount_it
hot=$(timed cat_all)
find_before=$(timed find "$mnt")
fusermount3 -u "$mnt"
mount_it
find_after=$(timed find "$mnt")
# The floor for a fresh kernel view: the daemon warm, the kernel's caches not.
drop
find_floor=$(timed find "$mnt")
fusermount3 -u "$mnt"

files=$(find "$work/bucket" -type f | wc -l)
gz=$(find "$work/bucket" -type f -printf '%s\n' | awk '{s+=$1} END {print s}')
entries=$(find "$work/cache/objects" -name '*.wvc' -printf '%s\n' |
	awk '{s+=$1} END {print s}')
disk=$(du -sB1 "$work/cache/objects" | cut -f1)
listings=$(find "$work/cache/listings" -name '*.lst' -printf '%s\n' |
	awk '{s+=$1} END {print s}')
# Event texts (the data sections: H_DATA_LEN at offset 24 of each header).
texts=$(python3 - "$work/cache/objects" <<'PY'
import os, struct, sys
total = 0
for root, _dirs, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".wvc"):
            with open(os.path.join(root, f), "rb") as fh:
                total += struct.unpack_from("<Q", fh.read(32), 24)[0]
print(total)
PY
)
n_entries=$("$build/src/wivaudit" cache stats --cache-dir "$work/cache" |
	sed -n 's/^entries: \([0-9]*\).*/\1/p')
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f\n", a / b }'
}

echo "corpus: $files objects, $gz bytes of gzip"
echo "cache entries: $n_entries files, $entries bytes ($disk with blocks)"
echo "of which event texts: $texts bytes ($(ratio "$texts" "$gz") per gzip byte;" \
	"headers, indexes and keys: $(ratio "$((entries - texts))" "$entries")" \
	"of the entries)"
echo "listings: $listings bytes"
echo "overhead: $(ratio "$entries" "$gz") bytes stored per gzip byte" \
	"($(ratio "$disk" "$gz") counting filesystem blocks)"
echo "cat of every file: cold $cold s; warm cache: $warm s after dropping" \
	"the kernel's caches, $hot s with its entries in the page cache;" \
	"same mount again (kernel page cache): $kernel s"
echo "find: warm before remount $find_before s, after remount $find_after s" \
	"(same daemon, kernel caches dropped: $find_floor s)"

cc -O2 -D_GNU_SOURCE -Iinclude bench/cache_lookup.c "$build/src/libwiv.a" \
	$(pkg-config --cflags --libs fuse3 libcurl openssl zlib jansson expat) \
	-lpthread -o "$work/cache_lookup"
# 55 events of ~1 KiB each, like the corpus's objects.
bytes=$(( (entries / files) / 55 ))
"$work/cache_lookup" "$work/bench-cache" "$files" 55 "$bytes" 20 |
	sed 's/^/hit path: /'
