#!/usr/bin/env bash
# Benchmarks osb-broker (release build) on the quick-start catalog with wrk,
# on 127.0.0.1. Prints one Markdown table row per run; see docs/benchmarks.md.
#
#   bench/run.sh [RUNS] [DURATION_SECONDS]
#
# Needs wrk (Debian package `wrk`). Each scenario runs RUNS times against a
# fresh broker and state file; the broker's CPU time comes from /proc.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=${1:-5}
duration=${2:-10}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release -p osb-broker --locked >&2
broker="$CARGO_TARGET_DIR/release/osb-broker"
auth="Authorization: Basic $(printf admin:admin | base64)"
version="X-Broker-API-Version: 2.17"
work=$(mktemp -d)
pid=""
trap '[ -n "$pid" ] && kill $pid 2>/dev/null; rm -rf "$work"' EXIT

start_broker() {
    rm -f "$work"/state.db*
    sed -e "s#^sqlite = .*#sqlite = \"$work/state.db\"#" examples/quickstart.toml > "$work/broker.toml"
    local started=$(date +%s%N)
    RUST_LOG=warn "$broker" serve --config "$work/broker.toml" --listen 127.0.0.1:0 > "$work/out" 2>"$work/log" &
    pid=$!
    until grep -q '^listening on ' "$work/out" 2>/dev/null; do sleep 0.001; done
    url=$(sed -n 's/^listening on //p' "$work/out")
    until curl -sf "$url/health" >/dev/null; do sleep 0.001; done
    startup_ms=$(( ($(date +%s%N) - started) / 1000000 ))
}

stop_broker() {
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

cpu_ticks() {
    awk '{print $14 + $15}' "/proc/$pid/stat"
}

rss_mb() {
    awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"
}

# Runs wrk and prints: requests/s, p50 ms, p99 ms, CPU microseconds per request.
measure() {
    local before after
    before=$(cpu_ticks)
    wrk --latency "$@" > "$work/wrk" 2>&1
    after=$(cpu_ticks)
    local rate requests p50 p99
    rate=$(awk '/Requests\/sec/ {print $2}' "$work/wrk")
    requests=$(awk '/requests in/ {print $1}' "$work/wrk")
    p50=$(awk '$1 == "50%" {print $2}' "$work/wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk")
    local ticks_per_second
    ticks_per_second=$(getconf CLK_TCK)
    local cpu_us=$(( (after - before) * 1000000 / ticks_per_second / (requests > 0 ? requests : 1) ))
    if grep -q "Non-2xx" "$work/wrk"; then
        echo "bench: unexpected statuses: $(grep Non-2xx "$work/wrk")" >&2
    fi
    echo "$rate | $p50 | $p99 | $cpu_us"
}

echo "| scenario | run | requests/s | p50 | p99 | broker CPU µs/request | RSS after (MB) | start to first answer (ms) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for run in $(seq 1 "$runs"); do
    start_broker
    idle=$(rss_mb)
    result=$(measure -t 2 -c 32 -d "${duration}s" -H "$auth" -H "$version" "$url/v2/catalog")
    echo "| catalog, 32 connections | $run | $result | $(rss_mb) (idle $idle) | $startup_ms |"

    curl -sf -X PUT -H "$auth" -H "$version" -H 'Content-Type: application/json' \
        "$url/v2/service_instances/polled?accepts_incomplete=true" \
        -d '{"service_id":"5b6e8f4a-1c2d-4e3f-9a8b-7c6d5e4f3a21","plan_id":"7a8b9c0d-1e2f-4a3b-8c4d-5e6f7a8b9c0d","organization_guid":"o","space_guid":"s"}' > /dev/null
    result=$(measure -t 2 -c 32 -d "${duration}s" -H "$auth" -H "$version" "$url/v2/service_instances/polled/last_operation")
    echo "| last_operation, 32 connections | $run | $result | $(rss_mb) | |"

    result=$(measure -t 2 -c 32 -d "${duration}s" -H "$auth" -H "$version" -s bench/cycle.lua "$url")
    echo "| provision+deprovision requests, 32 connections | $run | $result | $(rss_mb) | |"
    stop_broker
done

# Memory with 100,000 stored instances, measured once.
if [ "${FILL:-1}" = 1 ]; then
    start_broker
    until [ "$(sqlite3 "$work/state.db" 'SELECT count(*) FROM instances' 2>/dev/null || echo 0)" -ge 100000 ]; do
        wrk -t 4 -c 4 -d 5s -H "$auth" -H "$version" -s bench/provision.lua "$url" > /dev/null
    done
    echo
    echo "RSS with $(sqlite3 "$work/state.db" 'SELECT count(*) FROM instances') instances stored: $(rss_mb) MB"
    stop_broker
fi
