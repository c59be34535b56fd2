#!/usr/bin/env bash
# libFuzzer runs of the file readers (issue #14):
#   tools/fuzz.sh [SECONDS]  builds build-fuzz/ (clang, -DUNET3D_FUZZ=ON:
#                            ASan + UBSan + libFuzzer) and runs every
#                            tests/fuzz/fuzz_*.c harness for SECONDS
#                            (default 60) on a copy of its seed corpus
#                            (build-fuzz/corpus/NAME; tests/fuzz/corpus is
#                            never written). Exit status 1 when any harness
#                            found a crash, leak, timeout, out-of-memory or
#                            sanitizer report; all harnesses run anyway and
#                            each failure names the input that triggers it
#                            (build-fuzz/crashes/NAME/...).
#   tools/fuzz.sh --seeds    rewrites tests/fuzz/corpus/ with gen_seeds.
# Inputs that once failed are kept in tests/fuzz/crashes/NAME/ and replayed
# first, one by one: each must pass (a regression check once fixed).
# Reproduce a failure: build-fuzz/tests/fuzz/NAME FILE
set -uo pipefail
cd "$(dirname "$0")/.."
secs=60
seeds=0
case "${1:-}" in
  --seeds) seeds=1 ;;
  "") ;;
  *[!0-9]* | 0) echo "usage: tools/fuzz.sh [SECONDS] | --seeds" >&2; exit 2 ;;
  *) secs=$1 ;;
esac
b=build-fuzz
cc=${FUZZ_CC:-clang}
if ! command -v "$cc" >/dev/null; then
  echo "fuzz: $cc not found (tools/setup.sh installs clang)" >&2
  exit 1
fi
# -O1 -g without NDEBUG: asserts stay on, stacks stay readable
cmake -S . -B "$b" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g" -DUNET3D_FUZZ=ON \
      -DUNET3D_TESTS=OFF -DUNET3D_CUDNN=OFF >/dev/null || exit 1
cmake --build "$b" -j"$(nproc)" --target fuzz || exit 1

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

if [ "$seeds" = 1 ]; then
  rm -rf tests/fuzz/corpus
  "$b/tests/fuzz/gen_seeds" tests/fuzz/corpus || exit 1
  find tests/fuzz/corpus -type f -size +4k -printf 'fuzz: seed over 4 KB: %p\n'
  du -sh tests/fuzz/corpus/*
  exit 0
fi

fails=()
rm -rf "$b/corpus" "$b/crashes" "$b/logs"
mkdir -p "$b/logs"
for src in tests/fuzz/fuzz_*.c; do
  h=$(basename "$src" .c)
  corpus=$b/corpus/$h
  art=$b/crashes/$h
  mkdir -p "$corpus" "$art"
  cp tests/fuzz/corpus/"$h"/* "$corpus"/ 2>/dev/null
  # one allocation over 1 GB for an input of a few KB is a finding (the
  # RSS check alone, once a second, can miss a short-lived one)
  mlim=1024
  asan=$ASAN_OPTIONS
  case $h in
    fuzz_model) # models over 4 KB (the "tiny" preset: 289 KB) are made
      # here, not committed
      rm -rf "$b/corpus-big"
      "$b/tests/fuzz/gen_seeds" "$b/corpus-big" --big || exit 1
      cp "$b/corpus-big/fuzz_model/"* "$corpus"/ ;;
    fuzz_tiff_read) # u3d_tiff_stream_open allocates one page, unbounded by
      # design: absurd sizes must fail cleanly (NULL), not abort the run;
      # memory really used is still capped by -rss_limit_mb
      mlim=1048576
      asan=$asan:allocator_may_return_null=1 ;;
  esac
  opts=(-rss_limit_mb=2048 -malloc_limit_mb=$mlim -timeout=10)
  [ -f "tests/fuzz/$h.dict" ] && opts+=(-dict="tests/fuzz/$h.dict")
  for known in tests/fuzz/crashes/"$h"/*; do
    [ -f "$known" ] || continue
    klog=$b/logs/$h-$(basename "$known").log
    if ! ASAN_OPTIONS=$asan "$b/tests/fuzz/$h" "${opts[@]}" "$known" >"$klog" 2>&1; then
      echo "fuzz: FAIL $h on the known input $known; log $klog"
      grep -m1 -E 'ERROR: |runtime error:' "$klog" | sed "s/^/  /"
      fails+=("$h: $known (known input)")
    fi
  done
  log=$b/logs/$h.log
  echo "fuzz: $h for ${secs}s ($(ls "$corpus" | wc -l) seeds)"
  ASAN_OPTIONS=$asan nice -n 10 "$b/tests/fuzz/$h" -max_total_time="$secs" \
    -print_final_stats=1 \
    -artifact_prefix="$art/" "${opts[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)' "$log" | sed "s/^/  /"
  if [ $rc != 0 ] || grep -qE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:' "$log"; then
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    echo "fuzz: FAIL $h (exit $rc): ${crash:-no input saved}; log $log"
    grep -m1 -E 'ERROR: |runtime error:|==[0-9]+== ' "$log" | sed "s/^/  /"
    grep -E '^ +#[0-9]+ 0x.* in ' "$log" |
      grep -vE 'fuzzer::|__sanitizer|__asan|__interceptor|libc_start|[( ]malloc ' |
      head -4 | sed "s/^/  /"
    fails+=("$h: ${crash:-see $log}")
  fi
done
if [ ${#fails[@]} -gt 0 ]; then
  echo "fuzz: ${#fails[@]} failure(s):"
  printf '  %s\n' "${fails[@]}"
  echo "reproduce: build-fuzz/tests/fuzz/HARNESS FILE"
  exit 1
fi
echo "fuzz: all harnesses ran ${secs}s without a finding"
