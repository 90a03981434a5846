#!/usr/bin/env bash
# make demo: write a fraud-scoring MLP and a small language model with
# copro-model, start a private coprod serving both, score synthetic
# transactions from several client processes (latency percentiles and
# throughput), stream completions to several clients at once (continuous
# batching), stop the daemon.
set -euo pipefail
BUILD=${BUILD:-build}
dir=$(mktemp -d /tmp/copro-demo.XXXXXX)
sock=$dir/coprod.sock
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT

"$BUILD"/bin/copro-model mlp --in 32 --hidden 256,256 --out 1 --seed 1 -o "$dir/fraud.onnx"
"$BUILD"/bin/copro-model synth --dim 256 --layers 4 --heads 8 --kv-heads 4 --hidden 768 \
	--vocab 2048 --context 512 --type Q8_0 --seed 1 -o "$dir/story.gguf"
cat > "$dir/coprod.conf" <<CONF
[server]
idle = spin

[model.fraud]
path = $dir/fraud.onnx
max_batch = 64
max_delay_us = 0

[model.story]
path = $dir/story.gguf
kv_cache_mib = 32
CONF
"$BUILD"/bin/coprod -c "$dir/coprod.conf" -s "$sock" 2>"$dir/coprod.log" &
pid=$!
for _ in $(seq 200); do [ -S "$sock" ] && break; sleep 0.05; done
[ -S "$sock" ] || { cat "$dir/coprod.log"; exit 1; }
echo "coprod pid $pid on $sock, serving fraud (32 -> 256 -> 256 -> 1) and story (a random-weight Llama, Q8_0)"
echo
"$BUILD"/bin/coproctl -s "$sock" ping -n 2
echo
echo "== one client scoring one transaction at a time (busy-polling)"
"$BUILD"/bin/copro-bench -s "$sock" -m fraud -b 128 -c 1 -n 50000 -i spin
echo
echo "== four client processes, 16 transactions in flight each (batched across clients)"
"$BUILD"/bin/copro-bench -s "$sock" -m fraud -b 128 -c 4 -q 16 -n 50000 -i block
echo
echo "== open loop: 5000 transactions/s per client, 2 clients that sleep between them"
"$BUILD"/bin/copro-bench -s "$sock" -m fraud -b 128 -c 2 -n 10000 -r 5000 -i block
echo
echo "== the transport alone: echo of 64 bytes"
"$BUILD"/bin/copro-bench -s "$sock" -m echo -b 64 -c 1 -n 200000 -i spin
echo
echo
echo "== a language model: four clients streaming at once (continuous batching, paged KV cache)"
gens=()
for i in 1 2 3 4; do
	"$BUILD"/bin/copro-gen -s "$sock" -m story --max-tokens 64 --seed "$i" --stats \
		"client $i asks" >"$dir/gen$i.out" 2>"$dir/gen$i.err" &
	gens+=($!)
done
wait "${gens[@]}"
for i in 1 2 3 4; do
	printf 'client %d: ' "$i"
	grep -E "^(generated tokens|time to first|time per token|tokens/s)" "$dir/gen$i.err" |
		sed 's/  */ /g' | tr '\n' ';'
	echo
done
echo
"$BUILD"/bin/coproctl -s "$sock" status
