#!/usr/bin/env bash
# Train configs/default.yaml on a lent GPU machine (the `device` tool: commands of at most 10 minutes, the machine's
# disk kept between calls while it stays warm), in two calls:
#   scripts/lent_gpu_train.sh start    measure 60 steps, size the run's one stage to fit this call and the next
#                                      (NEXT_S seconds of training; KEEP_STEPS=1 keeps the config's count, as
#                                      to reproduce the shipped model), train until this call is nearly over
#   scripts/lent_gpu_train.sh finish   resume to the end; final/ and the log come back as final.tar.part-*
#                                      (cat final.tar.part-* | tar x)
# Wheels the machine lacks travel in .whl (carry it; scripts/lent_gpu_site.sh). CALL_S: this call's limit in
# seconds.
set -euo pipefail
phase=${1:?start or finish}
CALL_S=${CALL_S:-590}; NEXT_S=${NEXT_S:-500}; OUT=${OUT:-/tmp/out}
CONFIG=${CONFIG:-configs/default.yaml}; KEEP_STEPS=${KEEP_STEPS:-0}
t0=$(date +%s)
left() { echo $((CALL_S - ($(date +%s) - t0))); }
source "$(dirname "$0")/lent_gpu_site.sh"
train() { python3 -m regionlm.cli train "$@" 2> >(tr '\r' '\n' | grep -v '^$' | tail -n 3 >&2); }

if [ "$phase" = start ]; then
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
  rm -rf runs/gpu-probe runs/gpu
  train --config "$CONFIG" --out runs/gpu-probe --max-steps 60 --json > "$OUT/probe.json"
  now=$(left)
  python3 - "$CONFIG" "$now" "$NEXT_S" "$KEEP_STEPS" <<'PY'
import json, sys, yaml
now, nxt, keep = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
cfg = yaml.safe_load(open(sys.argv[1]))
# steps per second over the probe's last logged window (the first includes start-up)
last = [json.loads(line) for line in open("runs/gpu-probe/log.jsonl")][-1]
rate = last["samples_per_s"] / cfg["batch_size"]
first = int(rate * (now - 60))          # this call: leave a minute for start-up, checkpoint and copy-back
total = cfg["stages"][0]["steps"] if keep else first + int(rate * nxt)
first = min(first, total)
cfg["stages"][0]["steps"] = total
yaml.safe_dump(cfg, open("runs/gpu.yaml", "w"), sort_keys=False)
open("runs/gpu-first", "w").write(str(first))
print(f"rate {rate:.2f} steps/s ({last['data_wait']:.0%} of it waiting for data): {total} steps, {first} in this call")
PY
  train --config runs/gpu.yaml --out runs/gpu --max-steps "$(cat runs/gpu-first)" --json > "$OUT/first.json"
  cp runs/gpu.yaml runs/gpu/log.jsonl "$OUT/"
else
  test -f runs/gpu.yaml || { echo "runs/gpu.yaml is missing: the machine was not kept warm; start again" >&2; exit 2; }
  train --config runs/gpu.yaml --out runs/gpu --resume --json > "$OUT/finish.json"
  cp runs/gpu.yaml runs/gpu/log.jsonl runs/gpu/loss.png "$OUT/"
  tar cf - -C runs/gpu final log.jsonl | split -b 15M - "$OUT/final.tar.part-"
fi
cat "$OUT"/*.json
echo "elapsed $(( $(date +%s) - t0 )) s"
