#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/run.sh - print the machine, then run the transport benchmark, the
# tensor-model benchmarks and the language-model benchmark.
#
# Builds nothing: `make bench` (or `make BUILD=dir build-bench`) builds first
# and calls this with BUILD set. Arguments are passed on to the benchmark,
# e.g. `BUILD=build bench/run.sh --bytes 64,4096 --json`.
set -eu

BUILD=${BUILD:-build}
export BUILD
bin="$BUILD/bench/transport"

if [ ! -x "$bin" ]; then
	echo "bench/run.sh: $bin not found; run 'make BUILD=$BUILD build-bench' first" >&2
	exit 1
fi

cpu=$(sed -n 's/^model name[[:space:]]*:[[:space:]]*//p' /proc/cpuinfo | head -n 1)
echo "date:    $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
	# Untracked files count too: a new source file changes what was measured.
	[ -z "$(git status --porcelain -- shm client server bench 2>/dev/null)" ] ||
		commit="$commit (plus uncommitted changes in shm/ client/ server/ bench/)"
else
	commit="none"
fi
echo "commit:  $commit"
echo "nproc:   $(nproc)"
echo "cpu:     ${cpu:-unknown}"
echo "kernel:  $(uname -srm)"
echo "load:    $(cut -d" " -f1-3 /proc/loadavg) (1/5/15 min; other work on the machine skews every row)"
echo

# Default: 64-byte payloads, 200000 round trips per row after 20000 warm-up
# in 5 interleaved rounds; about 50 s on a 2-vCPU VM where a blocking round
# trip costs ~40 us (the four blocking rows take nearly all of it). Each
# further --bytes size adds as much again.
if [ $# -eq 0 ]; then
	set -- --bytes 64
fi
"$bin" --coprod "$BUILD/bin/coprod" "$@"

# The fraud MLP in-process, copro's plan beside ONNX Runtime when `make ort`
# installed it (the row is skipped otherwise).
if [ -x "$BUILD/bench/onnx_mlp" ]; then
	echo
	"$BUILD/bench/onnx_mlp" --copro-model "$BUILD/bin/copro-model"
fi

# The same MLP served by coprod to client processes, batching off and on.
echo
"$(dirname "$0")/tensor.sh" 20000

# The language-model runtime in process: a synthetic Llama of 100M parameters
# (F32 and Q8_0, written once into $BUILD/bench-models) through the
# continuous-batching scheduler; about 4 minutes on a 2-vCPU VM.
# The weight matmul of the language-model runtime per type and ISA path,
# beside OpenBLAS on the dequantized matrix (about 20 s).
if [ -x "$BUILD/bench/llm_matmul" ]; then
	echo
	"$BUILD/bench/llm_matmul"
fi

# Forward-pass threads: every CPU of the machine unless LLM_THREADS says.
if [ -x "$BUILD/bench/llm" ]; then
	echo
	"$BUILD/bench/llm" --threads "${LLM_THREADS:-$(nproc)}"
fi
