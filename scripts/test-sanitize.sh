#!/usr/bin/env bash
# Runs the kernel tests against a build of the native addon with AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   npm run test:sanitize                        # kernel tests (src/tensor/ops/*.test.ts) + test/engine/leak.test.ts
#   npm run test:sanitize -- src/tensor/ops/matmul.test.ts    # only the given test files
#   MACLM_SANITIZE_DIR=/tmp/asan npm run test:sanitize        # another build folder (default: build-sanitize/)
#
# The sanitized addon is built in its own folder (build-sanitize/, git-ignored): binding.gyp, native/ and
# scripts/*.cjs are copied there (mtimes kept, so rebuilds are incremental) and node-gyp runs there with
# MACLM_SANITIZE=1 --debug, so build/Release, which everyone else uses, is never touched. The tests then load
# it through MACLM_NATIVE_PATH, with the ASan runtime preloaded (Node itself is not instrumented, so the runtime
# must be the first library loaded) and:
#   ASAN_OPTIONS   detect_leaks=0: V8 never frees some memory at exit, which LeakSanitizer would report;
#                  abort_on_error=1 so that a finding fails the test run; quarantine_size_mb=64 (default 256):
#                  freed memory is held back this long to catch use-after-free, and the leak test's RSS bound
#                  allows for it. Your own ASAN_OPTIONS / UBSAN_OPTIONS are appended (and win).
#   UBSAN_OPTIONS  halt_on_error=1:print_stacktrace=1: the first undefined behaviour stops the run, with a stack.
# Needs gcc/g++ with libasan and libubsan (Debian: gcc, libasan8, libubsan1; they come with g++).
#
# Limits: ASan sees the native allocator's blocks as whole blocks, so an overrun that stays inside a block's
# 64-byte tail padding, or inside a large (mmap'ed) block's rounding, is not reported; an overrun past them is.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${MACLM_SANITIZE_DIR:-$root/build-sanitize}"
cd "$root"

cxx="${CXX:-g++}"
asan="$("$cxx" -print-file-name=libasan.so)"
if [[ "$asan" != /* || ! -e "$asan" ]]; then
  echo "test-sanitize: $cxx has no AddressSanitizer runtime (libasan.so); install libasan for your gcc" >&2
  exit 1
fi

# ---- build (one at a time; the copy keeps mtimes so make rebuilds only what changed) ----------------------------
mkdir -p "$dir/scripts"
exec 9>"$dir/.lock"
flock 9
cp -p binding.gyp "$dir/"
cp -p scripts/*.cjs "$dir/scripts/"
rm -rf "$dir/native"
cp -a native "$dir/native"
ln -sfn "$root/node_modules" "$dir/node_modules"
log="$dir/build.log"
echo "test-sanitize: building the ASan+UBSan addon in $dir (log: $log)"
if ! (cd "$dir" && MACLM_SANITIZE=1 npx --no-install node-gyp configure --debug && MACLM_SANITIZE=1 npx --no-install node-gyp build --debug) >"$log" 2>&1; then
  grep -vE '^gyp info' "$log" | tail -40
  echo "test-sanitize: build failed" >&2
  exit 1
fi
addon="$dir/build/Debug/mac_lm.node"
if ! grep -q -- "-fsanitize=address,undefined" "$dir/build/mac_lm.target.mk"; then
  echo "test-sanitize: the build has no -fsanitize flags (binding.gyp's maclm_sanitize condition?)" >&2
  exit 1
fi
flock -u 9

# ---- tests -------------------------------------------------------------------------------------------------------
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  shopt -s nullglob
  files=(src/tensor/ops/*.test.ts test/engine/leak.test.ts)
fi
echo "test-sanitize: running ${#files[@]} test files against $addon"
export MACLM_NATIVE_PATH="$addon"
export MACLM_SANITIZE=1
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:print_summary=1:quarantine_size_mb=64${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
# Only the test processes get the preload (not npm, npx or the shell).
LD_PRELOAD="$asan${LD_PRELOAD:+:$LD_PRELOAD}" node "$root/node_modules/vitest/vitest.mjs" run "${files[@]}"
