#!/usr/bin/env bash
# A short fuzz run for CI (issue #19): build every fuzz target, then run each for SECONDS
# (default 20; or $FUZZ_SECONDS) starting from the committed corpus. Exits non-zero when a
# target crashes (its input is left in node/fuzz/artifacts/<target>/ and the reproduction
# command printed). New inputs a run finds go to a temporary directory, not into the
# committed corpus.
#
#   node/fuzz/run-short.sh [SECONDS]
#
# The machine's own (stable) toolchain builds the targets with libFuzzer's coverage
# instrumentation and no sanitizer (`-s none`: the code under test is safe Rust, so
# AddressSanitizer adds little; it needs nightly). $FUZZ_TOOLCHAIN=nightly with
# $FUZZ_SANITIZER=address runs them under ASan instead. $FUZZ_TARGETS picks a subset.
# cargo-fuzz comes from crates.io: `.ci/run` installs it when missing; without it, or without
# a C++ compiler for libFuzzer, this prints "SKIP fuzz: <reason>" and exits 0.
set -euo pipefail

secs="${1:-${FUZZ_SECONDS:-20}}"
toolchain="${FUZZ_TOOLCHAIN:-}"
sanitizer="${FUZZ_SANITIZER:-none}"
cd "$(dirname "$0")/.." # node/

skip() {
  echo "SKIP fuzz: $1"
  exit 0
}
cargo_() {
  if [ -n "$toolchain" ]; then cargo "+$toolchain" "$@"; else cargo "$@"; fi
}
command -v cargo >/dev/null 2>&1 || skip "cargo is not installed"
cargo_ --version >/dev/null 2>&1 ||
  skip "no ${toolchain:-default} toolchain"
cargo_ fuzz --version >/dev/null 2>&1 ||
  skip "cargo-fuzz is not installed (cargo install cargo-fuzz --locked)"
command -v c++ >/dev/null 2>&1 || command -v g++ >/dev/null 2>&1 ||
  skip "no C++ compiler for libFuzzer"

targets="${FUZZ_TARGETS:-$(cargo_ fuzz list)}"
start=$(date +%s)
echo "== cargo ${toolchain:++$toolchain }fuzz build -s $sanitizer"
cargo_ fuzz build -s "$sanitizer"
echo "built in $(($(date +%s) - start)) s"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
failed=()
for t in $targets; do
  echo "== $t: ${secs} s"
  mkdir -p "$scratch/$t" "fuzz/corpus/$t"
  # The first directory takes what the run adds; the committed corpus is only read.
  if ! cargo_ fuzz run -s "$sanitizer" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$scratch/$t.log" 2>&1; then
    tail -n 60 "$scratch/$t.log"
    failed+=("$t")
  fi
  grep -E "^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)" \
    "$scratch/$t.log" | tr '\n' ' ' || true
  grep -E "^#[0-9]+[[:space:]]+DONE[[:space:]]+cov:" "$scratch/$t.log" | tail -1 || true
  echo
done
echo "fuzz: $(($(date +%s) - start)) s in all"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashed: ${failed[*]} (inputs in node/fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: no crash in ${secs} s per target"
