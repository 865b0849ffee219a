#!/usr/bin/env bash
# Builds every fuzz target and runs each for SECONDS (default 60) with the
# FTP dictionary, then prints the executions per target.
# Exits non-zero if a target crashed (the input is in artifacts/TARGET/).
#
#   ./run.sh [SECONDS]
#
# Environment:
#   FUZZ_TARGETS  targets to run (default: all six)
#   FUZZ_JOBS     targets run at the same time (default 1)
#
# New inputs go to work/TARGET/ (not committed); the committed corpus in
# corpus/TARGET/ is only read. Logs are in logs/TARGET.log.
set -uo pipefail

secs=${1:-60}
jobs=${FUZZ_JOBS:-1}
read -r -a targets <<<"${FUZZ_TARGETS:-parse line_framing path listing ascii session}"
cd "$(dirname "$0")"

# cargo fuzz passes nightly-only flags to rustc; this lets stable accept them.
export RUSTC_BOOTSTRAP=1
# Safe Rust (the engine forbids unsafe code): no sanitizer, for speed; debug
# assertions on, so arithmetic overflow panics.
flags=(--sanitizer none --debug-assertions)

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz || exit 1
fi
cargo fuzz build "${flags[@]}" || exit 1

mkdir -p logs
run_one() {
    local t=$1
    mkdir -p "work/$t" "corpus/$t"
    cargo fuzz run "${flags[@]}" "$t" "work/$t" "corpus/$t" -- \
        -dict=ftp.dict -max_total_time="$secs" -timeout=10 -print_final_stats=1 \
        >"logs/$t.log" 2>&1
    echo $? >"logs/$t.rc"
}

running=0
for t in "${targets[@]}"; do
    rm -f "logs/$t.rc"
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

status=0
total=0
printf '%-14s %15s  %s\n' target executions result
for t in "${targets[@]}"; do
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "logs/$t.log" | grep -o '[0-9]*$' | tail -n 1)
    execs=${execs:-0}
    total=$((total + execs))
    rc=$(cat "logs/$t.rc" 2>/dev/null || echo 1)
    if [ "$rc" = 0 ]; then
        result=ok
    else
        result="CRASH (exit $rc): see logs/$t.log and artifacts/$t/"
        status=1
    fi
    printf '%-14s %15s  %s\n' "$t" "$execs" "$result"
done
printf '%-14s %15s\n' total "$total"
exit "$status"
