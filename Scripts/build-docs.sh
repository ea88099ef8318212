#!/usr/bin/env bash
# Builds the API reference (DocC) of the Superpipe, SuperpipeMock and SuperpipeMetrics modules and fails on any
# warning: a broken symbol link in an article or a doc comment, a parameter documented that does
# not exist or one that is missing next to documented ones. Then checks that every public symbol of
# the modules has a doc comment, that every function and initializer with parameters documents
# them (`- Parameter`/`- Parameters:`) and that every throwing one says what it throws (`- Throws:`).
#
#   Scripts/build-docs.sh            # every module; archives in .build/plugins/Swift-DocC/outputs
#
# The archives can be served with `swift package --disable-sandbox preview-documentation --target
# Superpipe` or turned into a static site with `--transform-for-static-hosting`.
set -euo pipefail
cd "$(dirname "$0")/.."

modules=(Superpipe SuperpipeMock SuperpipeMetrics)
status=0
for module in "${modules[@]}"; do
  log=$(mktemp)
  if ! swift package --disable-sandbox generate-documentation --target "$module" --warnings-as-errors >"$log" 2>&1; then
    cat "$log"
    echo "error: the documentation of $module does not build without warnings" >&2
    status=1
    continue
  fi
  # DocC's own diagnostics ("warning:", or "error:" under --warnings-as-errors) about our sources.
  if grep -E "(warning|error): " "$log"; then
    echo "error: DocC reported problems in $module" >&2
    status=1
  fi
  grep -E "^Generated documentation archive at|doccarchive$" "$log" || true
done
[ "$status" -eq 0 ] || exit "$status"

# Documentation coverage, from the symbol graphs the plugin extracted for the builds above.
command -v python3 >/dev/null 2>&1 || { echo "error: python3 is needed for the coverage check" >&2; exit 1; }
python3 - "${modules[@]}" <<'EOF'
import glob, json, sys

problems = []
for module in sys.argv[1:]:
    files = glob.glob(f".build/*/extracted-symbols/*/{module}/{module}*.symbols.json")
    if not files:
        sys.exit(f"error: no symbol graph for {module} under .build/*/extracted-symbols")
    checked = 0
    for path in files:
        for symbol in json.load(open(path))["symbols"]:
            # Public API written in our sources (synthesized members such as hash(into:) have no
            # location; SPI symbols are not extracted).
            if symbol.get("accessLevel") not in ("public", "open") or "location" not in symbol:
                continue
            checked += 1
            name = module + "." + ".".join(symbol["pathComponents"])
            kind = symbol["kind"]["identifier"]
            doc = "\n".join(line["text"] for line in symbol.get("docComment", {}).get("lines", []))
            if not doc.strip():
                problems.append(f"{name}: no doc comment")
                continue
            if kind not in ("swift.func", "swift.method", "swift.type.method", "swift.init", "swift.subscript", "swift.func.op"):
                continue
            if symbol.get("functionSignature", {}).get("parameters") and "- Parameter" not in doc:
                problems.append(f"{name}: parameters not documented (- Parameter / - Parameters:)")
            fragments = symbol.get("declarationFragments", [])
            if any(f["kind"] == "keyword" and f["spelling"] == "throws" for f in fragments) and "- Throws:" not in doc:
                problems.append(f"{name}: what it throws is not documented (- Throws:)")
    print(f"{module}: {checked} public symbols checked")

for problem in sorted(set(problems)):
    print(f"error: {problem}", file=sys.stderr)
if problems:
    sys.exit(f"error: {len(set(problems))} documentation gap(s)")
print("documentation coverage: every public symbol documented, with its parameters and errors")
EOF
echo "documentation built and checked in ${SECONDS} s"
