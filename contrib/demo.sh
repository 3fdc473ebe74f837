#!/bin/sh
# One command from a fresh Debian 12 machine (as root) to a mounted demo:
# installs the build dependencies, builds, generates a sample bucket mirror
# and mounts it. Unmount with: umount "$WIVAUDIT_DEMO_DIR/mnt"
set -eu
cd "$(dirname "$0")/.."

contrib/install-deps.sh
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null

demo=${WIVAUDIT_DEMO_DIR:-/tmp/wivaudit-demo}
mkdir -p "$demo/mnt"
if [ ! -d "$demo/bucket" ]; then
	python3 contrib/gen-sample.py --orgs 3 --days 21 "$demo/bucket"
fi
if findmnt -M "$demo/mnt" >/dev/null 2>&1; then
	fusermount3 -u "$demo/mnt"
fi
build/src/mount.wivaudit "$demo/bucket" "$demo/mnt" -o cache_dir="$demo/cache"

org=$(ls "$demo/mnt" | head -n 1)
cat <<MSG

Mounted the sample bucket mirror $demo/bucket on $demo/mnt. Try:

  ls $demo/mnt
  ls $demo/mnt/$org/2026/01/
  grep -rl '"event_type": "OrgCreated"' $demo/mnt | head
  find $demo/mnt -name '*.json' | wc -l
  jq . "\$(find $demo/mnt/$org -name '*.json' | head -n 1)"
  getfattr -d "\$(find $demo/mnt/$org -name '*.json' | head -n 1)"

and when done:  umount $demo/mnt
MSG
