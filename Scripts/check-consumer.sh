#!/usr/bin/env bash
# Checks README's "Use it in your package" for real: clones this repository (its committed HEAD)
# into a temporary directory and tags the clone's HEAD 0.1.0 there (whatever this repository's own
# tags are); creates a new package from the two files the README shows (`<!-- consumer: PATH -->`
# before each code block), with the README's `.package(url: "https://github.com/YOUR-ORG/superpipe", from: "0.1.0")` pointed
# at the clone by file:// URL; builds it and runs it (on the mock adapter it starts itself).
#
#   Scripts/check-consumer.sh       # KEEP=1 keeps the temporary directory
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

work=$(mktemp -d /tmp/superpipe-consumer.XXXXXX)
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

git clone --quiet "$root" "$work/superpipe"
git -C "$work/superpipe" tag --force 0.1.0 >/dev/null

# The README's files, exactly as shown.
consumer="$work/consumer"
extract() {
  # The fenced block that follows the line `<!-- consumer: $1 -->`.
  awk -v marker="<!-- consumer: $1 -->" '
    $0 == marker { found = 1; next }
    found == 1 && /^```/ { found = 2; next }
    found == 2 && /^```/ { exit }
    found == 2 { print }
  ' README.md
}
files=$(sed -n 's/^<!-- consumer: \(.*\) -->$/\1/p' README.md)
[ -n "$files" ] || { echo "error: README.md has no <!-- consumer: PATH --> blocks" >&2; exit 1; }
for file in $files; do
  mkdir -p "$consumer/$(dirname "$file")"
  extract "$file" >"$consumer/$file"
  [ -s "$consumer/$file" ] || { echo "error: README.md's block for $file is empty" >&2; exit 1; }
done
url='https://github.com/YOUR-ORG/superpipe'
grep -qF ".package(url: \"$url\", from: \"0.1.0\")" "$consumer/Package.swift" \
  || { echo "error: README's Package.swift does not depend on $url from 0.1.0" >&2; exit 1; }
sed -i "s|$url|file://$work/superpipe|" "$consumer/Package.swift"

cd "$consumer"
started=$(date +%s)
swift build 2>&1 | tail -3
resolved=$(swift package show-dependencies | grep -E "── superpipe<" || true)
echo "resolved: ${resolved:-?}"
case "$resolved" in *"@0.1.0"*) ;; *) echo "error: superpipe did not resolve to 0.1.0" >&2; exit 1 ;; esac
output=$(swift run --skip-build MyEngine)
echo "$output"
[ "$output" = "8 blocks written and read back: verified" ] || { echo "error: unexpected output" >&2; exit 1; }
echo "consumer check: a package depending on superpipe from 0.1.0 builds and runs ($(($(date +%s) - started)) s)"
