#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# bench/tensor.sh - the fraud MLP (32 -> 256 -> 256 -> 1, f32) through coprod:
# single-client latency, and throughput at 1, 2, 4, 8 client processes with
# batching off (max_batch 1) and on (max_batch 64), all in one run.
# BUILD=dir bench/tensor.sh [requests per client, default 20000]
set -euo pipefail
BUILD=${BUILD:-build}
N=${1:-20000}
dir=$(mktemp -d /tmp/copro-tbench.XXXXXX)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

"$BUILD"/bin/copro-model mlp --in 32 --hidden 256,256 --out 1 --seed 1 -o "$dir/fraud.onnx" >/dev/null

start() {	# start IDLE MAX_BATCH
	cat > "$dir/c.conf" <<CONF
[server]
idle = $1
[model.fraud]
path = $dir/fraud.onnx
max_batch = $2
max_delay_us = 0
CONF
	"$BUILD"/bin/coprod -c "$dir/c.conf" -s "$dir/s.sock" 2>>"$dir/coprod.log" &
	pid=$!
	for _ in $(seq 200); do [ -S "$dir/s.sock" ] && return; sleep 0.05; done
	echo "coprod did not start" >&2; cat "$dir/coprod.log" >&2; exit 1
}
stop() { kill "$pid"; wait "$pid" || true; pid=; }
field() { sed -n "s/.*\"$1\":\([0-9.]*\).*/\1/p"; }

echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit:  $(git rev-parse --short HEAD 2>/dev/null || echo none)"
echo "nproc:   $(nproc), cpu: $(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)"
echo

start spin 64
lat=$("$BUILD"/bin/copro-bench -s "$dir/s.sock" -m fraud -b 128 -c 1 -n "$N" -i spin --json)
stop
printf 'single client, busy-polling, batch 1 through coprod: p50 %.2f us, p99 %.2f us, p99.9 %.2f us\n' \
	"$(echo "$lat" | field p50_ns | awk '{print $1/1000}')" \
	"$(echo "$lat" | field p99_ns | awk '{print $1/1000}')" \
	"$(echo "$lat" | field p999_ns | awk '{print $1/1000}')"
echo "(the same plan in-process: bench/onnx_mlp)"
echo
printf '%-8s %16s %16s %8s\n' clients "batching off/s" "batching on/s" ratio
for c in 1 2 4 8; do
	start sleep 1
	off=$("$BUILD"/bin/copro-bench -s "$dir/s.sock" -m fraud -b 128 -c "$c" -q 16 -n "$N" -i block --json | field rps)
	stop
	start sleep 64
	on=$("$BUILD"/bin/copro-bench -s "$dir/s.sock" -m fraud -b 128 -c "$c" -q 16 -n "$N" -i block --json | field rps)
	stop
	printf '%-8s %16.0f %16.0f %7.2fx\n' "$c" "$off" "$on" "$(awk -v a="$on" -v b="$off" 'BEGIN{print a/b}')"
done
echo "(closed loop, 16 requests in flight per client, blocking clients, coprod -i sleep;"
echo " batching off = max_batch 1; on = max_batch 64, max_delay_us 0)"
