#!/usr/bin/env bash
# Fuzz the mock adapter's message decoding and dispatch with libFuzzer (Docs/reliability.md).
#   Scripts/fuzz-mock.sh [runs] [extra libFuzzer flags...]   default 10000000 inputs
# libFuzzer's per-input leak check is off (-detect_leaks=0): the mock's server threads allocate
# and free concurrently with an input, which that check misreads; contexts leaked by the mock are
# what matters, and the harness's liveness checks and the test suite's leak check cover them.
# Builds Fuzz/ (which depends on this package by path) optimized (-c release: Swift's overflow and
# bounds checks stay on) with the fuzzer and address sanitizers, and runs it; an empty corpus
# directory is first filled with MockFuzzing.seedCorpus() (the binary does that at start-up).
# FUZZ_TRANSPORT=socket sends every input over the mock's Unix sockets instead of the direct
# transport; FUZZ_FRESH_EVERY / FUZZ_MAX_LUNS bound the state a mock accumulates (see
# Fuzz/Sources/MockFuzzer/MockFuzzer.swift). FUZZ_CORPUS overrides the corpus directory.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10000000}
shift || true
# Without manifest caching: with it, a source file added to this package (a path dependency of
# Fuzz/) was not built into an existing .build-fuzz ("cannot find 'ForkGate' in scope" on
# 2026-12-01, until .build-fuzz/*.yaml and build.db were deleted by hand).
flags=(--package-path Fuzz --scratch-path .build-fuzz -c release --disable-build-manifest-caching --sanitize=fuzzer
  -Xswiftc -sanitize=fuzzer,address)
swift build "${flags[@]}"
corpus=${FUZZ_CORPUS:-.build-fuzz/corpus}
mkdir -p "$corpus"
binary=$(swift build "${flags[@]}" --show-bin-path)/MockFuzzer
export SWIFT_BACKTRACE=enable=no
# AddressSanitizer checks every access as before; it only stops recording the stack of every
# malloc and free (a sixth of an input's time), which a report would print for a heap error.
# Replay a finding with ASAN_OPTIONS= (empty) to get those stacks.
export ASAN_OPTIONS=${ASAN_OPTIONS-malloc_context_size=0}
"$binary" -runs="$runs" -max_len=4200 -timeout=30 -detect_leaks=0 -print_final_stats=1 "$@" "$corpus"
