#!/bin/sh
# Run a benchmark's node under heaptrack's allocation recorder, keeping its PID (exec), to see
# where its bytes go. Used through the benchmarks' BENCH_WRAP (benches/common/procs.rs):
#
#   BENCH_WRAP=$PWD/node/benches/heaptrack-node.sh BENCH_WRAP_NODES=61,610705 \
#     BENCH_HEAPTRACK_DIR=/tmp/ht cargo bench -p bottomline --bench soak
#
# Each start of a node writes $BENCH_HEAPTRACK_DIR/<code>-<pid>.raw.zst (default dir /tmp),
# compressed on the fly (an hour of a province is a few GB raw), and runs a copy of the binary
# kept beside it (<code>-<pid>.bin): the record names it, and reading the record needs the
# very binary that ran (a rebuild meanwhile would resolve every address wrongly). Read it with
#
#   zstd -dc F.raw.zst | /usr/lib/heaptrack/libexec/heaptrack_interpret | zstd -c > F.zst
#   heaptrack_print -f F.zst                 # peaks, most allocations
#   heaptrack_print -f F.zst -l              # what was live when the record ended
#
# A node killed with SIGKILL leaves a record of what it held at that moment (its "leaks");
# one stopped with SIGTERM frees its stores first. The recorder slows every allocation:
# the wrapped node's figures are not the benchmark's. Needs heaptrack (apt-get install
# heaptrack) and zstd.
set -eu
dir=${BENCH_HEAPTRACK_DIR:-/tmp}
preload=/usr/lib/heaptrack/libheaptrack_preload.so
[ -f "$preload" ] || { echo "heaptrack-node.sh: $preload missing (apt-get install heaptrack)" >&2; exit 2; }
out="$dir/${BENCH_NODE_CODE:-node}-$$"
bin="$1"
shift
cp "$bin" "$out.bin"
mkfifo "$out.fifo"
zstd -q -c < "$out.fifo" > "$out.raw.zst" &
LD_PRELOAD=$preload DUMP_HEAPTRACK_OUTPUT="$out.fifo" exec "$out.bin" "$@"
