#!/usr/bin/env bash
# Runs the test suite under a sanitizer (Docs/reliability.md).
#   Scripts/sanitize.sh address|undefined|thread [swift test arguments...]
# Each sanitizer builds into its own scratch directory (.build-<sanitizer>).
#   address:   AddressSanitizer, leak detection off (LEAKS=1 turns it on): the library leaves a
#              retired I/O channel's command memory allocated when the adapter may still write it
#              (a command given up on), by design, and the test's child processes (superpipectl,
#              the test child) then exit 1 under LeakSanitizer; XCTest's own leak is suppressed
#              (Scripts/lsan.supp).
#   undefined: UndefinedBehaviorSanitizer on the C code (the shim, the probe, the mock environment
#              hook): swiftc has no -sanitize=undefined on Linux, so it is passed to clang
#              (-Xcc) and linked with clang's driver; Swift code has its own checks in debug builds.
#   thread:    ThreadSanitizer on the package's own targets (SUPERPIPE_SANITIZE_THREAD=1, read by
#              Package.swift), built with -DSUPERPIPE_TSAN: the package's lock (`Mutex`, see
#              Sources/Superpipe/Internals/Instrumentation.swift) is then a pthread mutex, which TSan
#              sees (it cannot see Synchronization.Mutex's futex). Results and suppressions:
#              Docs/reliability.md (Scripts/tsan.supp).
set -euo pipefail
cd "$(dirname "$0")/.."
sanitizer=${1:?usage: Scripts/sanitize.sh address|undefined|thread [swift test arguments...]}
shift
export LSAN_OPTIONS="suppressions=$(pwd)/Scripts/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="suppressions=$(pwd)/Scripts/asan.supp"
[ "${LEAKS:-0}" = 1 ] || export ASAN_OPTIONS="$ASAN_OPTIONS:detect_leaks=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export SWIFT_BACKTRACE=enable=no
if [ "$sanitizer" = undefined ]; then
  swift test --scratch-path ".build-$sanitizer" -Xcc -fsanitize=undefined -Xcc -fno-sanitize-recover=all \
    -Xswiftc -Xclang-linker -Xswiftc -fsanitize=undefined "$@"
elif [ "$sanitizer" = thread ]; then
  export TSAN_OPTIONS="suppressions=$(pwd)/Scripts/tsan.supp:halt_on_error=0:second_deadlock_stack=1${TSAN_OPTIONS:+:$TSAN_OPTIONS}"
  # The package's own targets only (Package.swift reads SUPERPIPE_SANITIZE_THREAD).
  SUPERPIPE_SANITIZE_THREAD=1 swift test --scratch-path ".build-$sanitizer" "$@"
else
  swift test --scratch-path ".build-$sanitizer" --sanitize="$sanitizer" "$@"
fi
