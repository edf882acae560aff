#!/usr/bin/env bash
# treaty analyze throughput and memory (issue 10, docs/performance.md):
# lines per second for nginx combined on one core, uncompressed and gzip,
# and the peak memory on a large log with the tracked principals capped.
#
# Generates LINES combined lines from PRINCIPALS principals with
# bench/gen_analyze_log.c, then runs, pinned to one core with taskset,
#   treaty analyze --max-principals CAP LOG      (plain, then gzip)
# and also treaty's own JSON format for comparison, each RUNS times under
# /usr/bin/time -v for the elapsed time, the CPU time (user + system: on
# a machine shared with other work, elapsed time varies with contention
# and CPU time much less) and the maximum resident set.
#
# Settings (environment):
#   LINES=10000000  PRINCIPALS=50000  CAP=10000  CPU=0  RUNS=3
#   TREATY_BIN=./treaty  KEEP_WORK=0 (1: keep the logs in $WORK)
#   WORK_BASE=/tmp (where the logs go; /dev/shm keeps the 1.7 GB plain
#   log in memory, so the disk does not set the pace of the plain run)
#   JSON_LINES=2000000 (lines of the treaty-format run; 0 skips it)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

LINES=${LINES:-10000000}
PRINCIPALS=${PRINCIPALS:-50000}
CAP=${CAP:-10000}
CPU=${CPU:-0}
RUNS=${RUNS:-3}
JSON_LINES=${JSON_LINES:-2000000}
TREATY_BIN=${TREATY_BIN:-./treaty}
WORK_BASE=${WORK_BASE:-/tmp}
WORK=$(mktemp -d "$WORK_BASE/treaty-bench-analyze.XXXXXX")
cleanup() { [[ ${KEEP_WORK:-0} == 1 ]] || rm -rf "$WORK"; }
trap cleanup EXIT

for tool in taskset gzip cc; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
[[ -x /usr/bin/time ]] || { echo "needs /usr/bin/time (GNU time)" >&2; exit 1; }
[[ -x $TREATY_BIN ]] || { echo "no $TREATY_BIN: run make" >&2; exit 1; }

cc -O2 -o "$WORK/gen" bench/gen_analyze_log.c -lm
echo "generating $LINES combined lines ($PRINCIPALS principals)..." >&2
"$WORK/gen" "$LINES" "$PRINCIPALS" combined 1 >"$WORK/access.log"
echo "compressing..." >&2
gzip -6 -c "$WORK/access.log" >"$WORK/access.log.gz"
if ((JSON_LINES > 0)); then
    "$WORK/gen" "$JSON_LINES" "$PRINCIPALS" treaty 1 >"$WORK/treaty.log"
fi

# run NAME LINES FILE: RUNS pinned runs; prints a markdown row with the
# median and the best elapsed time, and the largest max RSS.
run() {
    local name=$1 lines=$2 file=$3 i secs=() cpus=() rss_max=0
    for ((i = 0; i < RUNS; i++)); do
        taskset -c "$CPU" /usr/bin/time -v -o "$WORK/time.txt" \
            "$TREATY_BIN" analyze --no-progress --max-principals "$CAP" \
            "$file" >"$WORK/report.txt"
        local wall rss
        wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' \
            "$WORK/time.txt")
        rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' \
            "$WORK/time.txt")
        ((rss > rss_max)) && rss_max=$rss
        cpus+=("$(awk -F': ' '/User time|System time/ { s += $2 }
            END { print s }' "$WORK/time.txt")")
        # h:mm:ss or m:ss.cc into seconds
        secs+=("$(awk -v t="$wall" 'BEGIN { n = split(t, a, ":"); s = 0;
            for (i = 1; i <= n; i++) s = s * 60 + a[i]; print s }')")
    done
    local cpu_best
    cpu_best=$(printf '%s\n' "${cpus[@]}" | sort -g | head -1)
    printf '%s\n' "${secs[@]}" | sort -g | awk -v n="$name" -v l="$lines" \
        -v r="$rss_max" -v b="$(stat -c %s "$file")" -v c="$cpu_best" '
        { s[NR] = $1 }
        END { med = s[int((NR + 1) / 2)]; best = s[1];
              printf "| %s | %d | %.0f MB | %.2f s | %.0f | %.0f | %.2f s " \
                  "| %.0f | %.0f MB |\n", n, l, b / 1e6, med, l / med,
                  l / best, c, l / c, r / 1024 }'
}

{
    echo "| input | lines | file | elapsed (median of $RUNS) |" \
         "lines/s (median) | lines/s (best) | CPU s (best) |" \
         "lines per CPU s | max RSS |"
    echo "|---|---|---|---|---|---|---|---|---|"
    run "combined" "$LINES" "$WORK/access.log"
    run "combined, gzip -6" "$LINES" "$WORK/access.log.gz"
    if ((JSON_LINES > 0)); then
        run "treaty JSON" "$JSON_LINES" "$WORK/treaty.log"
    fi
} | tee "$WORK/table.md"
echo
echo "one core (taskset -c $CPU), --max-principals $CAP, $PRINCIPALS" \
     "principals in the log; $(nproc) cores, $(uname -m)"
tracked=$(grep -o '[0-9]* principals$' "$WORK/report.txt" | head -1 || true)
echo "last report: $tracked"
mkdir -p bench/results
cp "$WORK/table.md" bench/results/analyze.md
