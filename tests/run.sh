#!/usr/bin/env bash
# Runs every test program under $BUILD/tests and prints one closing line:
# "tests: N passed, M failed, K skipped". Exits non-zero on any failure.
# COPRO_TESTS='test_cuda*' runs only the programs that glob matches.
set -u
BUILD=${BUILD:-build}
export COPRO_COPROD=${COPRO_COPROD:-$BUILD/bin/coprod}
export COPRO_SRCDIR=${COPRO_SRCDIR:-.}
export COPRO_SHARED=${COPRO_SHARED:-../shared}
pass=0 fail=0 skip=0 bad=""
for t in "$BUILD"/tests/${COPRO_TESTS:-test_*}; do
	[ -x "$t" ] || continue
	name=$(basename "$t")
	log=$(mktemp)
	start=$(date +%s.%N)
	timeout 600 "$t" >"$log" 2>&1
	rc=$?
	secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
	if [ $rc -ne 0 ] && [ "$f" -eq 0 ]; then
		f=1	# crashed, timed out or failed outside cmocka's accounting
	fi
	pass=$((pass + p)) fail=$((fail + f)) skip=$((skip + s))
	if [ $rc -ne 0 ] || [ "$f" -ne 0 ]; then
		bad="$bad $name"
		cat "$log"
		printf '%-28s FAIL (exit %d, %s s)\n' "$name" "$rc" "$secs"
	else
		grep -E '^\[  SKIPPED \]|^\[  SKIPPED|skipped:' "$log" | grep -v '^\[==' | sed 's/^/    /' | head -20
		printf '%-28s ok   %3d passed %2d skipped (%s s)\n' "$name" "$p" "$s" "$secs"
		grep '^figures: ' "$log" | sed 's/^figures: /    /'	# measured figures a test reports
	fi
	rm -f "$log"
done
echo
[ -z "$bad" ] || echo "failed programs:$bad"
echo "tests: $pass passed, $fail failed, $skip skipped"
[ "$fail" -eq 0 ] && [ -z "$bad" ]
