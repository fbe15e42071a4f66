#!/usr/bin/env bash
# A short fuzz run for CI (issue #19): build every fuzz target, then run each for SECONDS
# (default 20; or $FUZZ_SECONDS) starting from the committed corpus. Exits non-zero when a
# target crashes (its input is left in node/fuzz/artifacts/<target>/ and the reproduction
# command printed); prints "SKIP fuzz: <reason>" and exits 0 when cargo-fuzz or the nightly
# toolchain is not available. New inputs a run finds go to a temporary directory, not into
# the committed corpus.
#
#   node/fuzz/run-short.sh [SECONDS]
#
# $FUZZ_TOOLCHAIN picks the toolchain (default nightly); $FUZZ_TARGETS a subset of targets.
set -euo pipefail

secs="${1:-${FUZZ_SECONDS:-20}}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
cd "$(dirname "$0")/.." # node/

skip() {
  echo "SKIP fuzz: $1"
  exit 0
}
command -v cargo >/dev/null 2>&1 || skip "cargo is not installed"
cargo "+$toolchain" --version >/dev/null 2>&1 ||
  skip "no $toolchain toolchain (rustup toolchain install $toolchain)"
cargo "+$toolchain" fuzz --version >/dev/null 2>&1 ||
  skip "cargo-fuzz is not installed (cargo install cargo-fuzz)"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 ||
  skip "no C++ compiler for libFuzzer"

targets="${FUZZ_TARGETS:-$(cargo "+$toolchain" fuzz list)}"
start=$(date +%s)
echo "== cargo +$toolchain fuzz build"
cargo "+$toolchain" fuzz build
echo "built in $(($(date +%s) - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in $targets; do
  echo "== $t: ${secs} s"
  mkdir -p "$scratch/$t" "fuzz/corpus/$t"
  # The first directory takes what the run adds; the committed corpus is only read.
  if ! cargo "+$toolchain" fuzz run "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$scratch/$t.log" 2>&1; then
    tail -n 60 "$scratch/$t.log"
    failed+=("$t")
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" \
    "$scratch/$t.log" | tr '\n' ' ' || true
  echo
done
echo "fuzz: $(($(date +%s) - start)) s in all"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]} (inputs in node/fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: no crash in ${secs} s per target"
