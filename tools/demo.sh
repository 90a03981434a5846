#!/usr/bin/env bash
# make demo: start a private coprod, drive it from several client processes
# with copro-bench, print latency percentiles and throughput, stop it.
set -euo pipefail
BUILD=${BUILD:-build}
dir=$(mktemp -d /tmp/copro-demo.XXXXXX)
sock=$dir/coprod.sock
"$BUILD"/bin/coprod -s "$sock" -i spin 2>"$dir/coprod.log" &
pid=$!
cleanup() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
echo "coprod pid $pid on $sock"
echo
"$BUILD"/bin/coproctl -s "$sock" ping -n 3
echo
echo "== echo round trips, one client busy-polling (64-byte tensors)"
"$BUILD"/bin/copro-bench -s "$sock" -m echo -b 64 -c 1 -n 200000 -i spin
echo
echo "== two client processes, 64 requests in flight each"
"$BUILD"/bin/copro-bench -s "$sock" -m echo -b 64 -c 2 -n 500000 -q 64 -i spin
echo
echo "== open loop: 20000 requests/s per client, 2 clients, clients sleep between requests"
"$BUILD"/bin/copro-bench -s "$sock" -m echo -b 256 -c 2 -n 40000 -r 20000 -i block
echo
"$BUILD"/bin/coproctl -s "$sock" status
