#!/bin/sh
# Rebuilds the embedded UI assets (../static) from src/ with the exact
# package versions in package-lock.json. Needs node ≥ 18 and npm.
#   ui/web/build.sh           rebuild ui/static
#   ui/web/build.sh --check   rebuild into a temp dir and fail if ui/static differs
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error >/dev/null
if [ "${1:-}" = "--check" ]; then
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	node build.mjs "$tmp/static"
	if ! diff -r "$tmp/static" ../static >/dev/null; then
		diff -r "$tmp/static" ../static | head -20 >&2 || true
		echo "ui/static is stale: run ui/web/build.sh and commit ui/static" >&2
		exit 1
	fi
	echo "ui/static is up to date"
else
	node build.mjs
fi
