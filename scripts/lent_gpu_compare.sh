#!/usr/bin/env bash
# Run benchmarks/compare_encoders.py on a lent GPU machine (the `device` tool: commands of at most 10 minutes, the
# machine's disk kept between calls while it stays warm). Call it again and again with the same arguments: each
# call goes on where the last stopped (trainings from their last checkpoint, evaluations from their caches) and is
# ended by SIGTERM CALL_S seconds in, on which every training writes a checkpoint of the step it was on. What was
# measured so far (the JSON, the table, every evaluation's results and every run's log; no weights) comes back
# as $OUT/compare.tar.
#   CALL_S=540 scripts/lent_gpu_compare.sh --backbone-steps 1000 --backbone-workers 14 --budget 3000 --jobs 11 \
#       --out runs/compare
# Wheels the machine lacks travel in .whl (carry it; scripts/lent_gpu_site.sh).
set -uo pipefail
CALL_S=${CALL_S:-540}; OUT=${OUT:-/tmp/out}
t0=$(date +%s)
source "$(dirname "$0")/lent_gpu_site.sh"
left=$((CALL_S - ($(date +%s) - t0)))
timeout -s TERM "$left" python3 benchmarks/compare_encoders.py "$@"
echo "compare_encoders exit $?"
# timeout signals the whole process group: let the trainings finish their step and write their checkpoints
while pgrep -f "regionlm.cli (train|eval)" >/dev/null; do sleep 1; done
res=$(python3 - "$@" <<'PY'
import sys
args = sys.argv[1:]
print(args[args.index("--out") + 1] if "--out" in args else "benchmarks/results/compare_encoders-backbone")
PY
)
mkdir -p "$OUT"
(cd "$res" && find . \( -path '*/checkpoints' -o -path '*/final' -o -path '*/parts' -o -name '*.tmp' \) -prune -o \
   -type f \( -name '*.json' -o -name '*.jsonl' -o -name '*.md' -o -name '*.png' -o -name '*.yaml' \) -print |
   tar cf - -T - ) > "$OUT/compare.tar"
for d in "$res"/runs/* "$res"/backbone; do
  [ -d "$d" ] && echo "$(basename "$d"): $(tail -n 1 "$d/log.jsonl" 2>/dev/null | cut -c1-160)"
done
echo "elapsed $(( $(date +%s) - t0 )) s"
