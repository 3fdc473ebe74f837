#!/bin/sh
# Installs what wivaudit needs from Debian 12 packages (run as root).
#   contrib/install-deps.sh          build and run
#   contrib/install-deps.sh --tests  also what the test suite needs
set -eu

build_packages="meson ninja-build pkg-config gcc libfuse3-dev fuse3
  libcurl4-openssl-dev libssl-dev zlib1g-dev libjansson-dev libexpat1-dev
  jq python3"
test_packages="python3-pytest python3-botocore awscli attr rsync clang
  util-linux procps restic gdb"

packages=$build_packages
[ "${1:-}" = "--tests" ] && packages="$packages $test_packages"

missing=""
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
# Node.js may come from elsewhere than Debian; only install it if absent.
if [ "${1:-}" = "--tests" ] && ! command -v npm >/dev/null 2>&1; then
	missing="$missing nodejs npm"
fi
if [ -n "$missing" ]; then
	echo "installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
