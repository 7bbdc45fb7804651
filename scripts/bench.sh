#!/usr/bin/env bash
# The load benchmark: the real warden binary watching N loopback HTTP targets.
#
#   bash scripts/bench.sh                    # 1,000, 10,000 and 100,000 checks
#   bash scripts/bench.sh 10000              # one size
#   bash scripts/bench.sh --criterion        # the criterion hot-path benches instead
#   MEASURE=120s INTERVAL=10s bash scripts/bench.sh 10000
#   KEEP_ALIVE=0 bash scripts/bench.sh 10000  # [defaults] keep_alive_targets (0: fresh per probe)
#   COMPARE=monit,blackbox bash scripts/bench.sh 10000  # then monit, blackbox_exporter +
#                                            # Prometheus on the same targets, side by side
#
# Each size prints a table (see docs/performance.md for what every row means) and appends a
# JSON line to target/load/results.jsonl. Not part of scripts/test.sh: a run takes minutes
# and its figures depend on what else the machine is doing, so it reports and never asserts.
# It waits (a bounded while) for the load average to settle before each size, and records
# the load average around every measurement window.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ "${1:-}" == "--criterion" ]]; then
    shift
    exec cargo bench --bench hot_paths -- "$@"
fi

sizes=("$@")
[[ ${#sizes[@]} -gt 0 ]] || sizes=(1000 10000 100000)

cargo build --release --bin warden --example load

# Wait at most WAIT_MAX seconds for the 1-minute load average to drop below MAX_LOAD.
wait_for_quiet() {
    local waited=0
    while awk -v max="${MAX_LOAD:-0.7}" '{ exit !($1 > max) }' /proc/loadavg \
        && (( waited < ${WAIT_MAX:-120} )); do
        echo "bench: load average $(cut -d' ' -f1-3 /proc/loadavg), waiting" >&2
        sleep 10
        waited=$((waited + 10))
    done
}

for n in "${sizes[@]}"; do
    wait_for_quiet
    target/release/examples/load run --checks "$n" \
        --interval "${INTERVAL:-10s}" --measure "${MEASURE:-60s}" \
        ${WARMUP:+--warmup "$WARMUP"} --scrape-every "${SCRAPE_EVERY:-15s}" \
        ${KEEP_ALIVE:+--keep-alive "$KEEP_ALIVE"} ${COMPARE:+--compare "$COMPARE"} \
        --label "${LABEL:-}"
done
