#!/usr/bin/env bash
# Train configs/default.yaml on a lent GPU machine (the `device` tool: commands of at most 10 minutes, the machine's
# disk kept between calls while it stays warm), in two calls:
#   scripts/lent_gpu_train.sh start    measure 60 steps, size the run's one stage to fit this call and the next
#                                      (NEXT_S seconds of training; KEEP_STEPS=1 keeps the config's count, as
#                                      to reproduce the shipped model), train until this call is nearly over
#   scripts/lent_gpu_train.sh finish   resume to the end; final/ and the log come back as final.tar.part-*
#                                      (cat final.tar.part-* | tar x)
# COMPILE=try: the start measures 60 steps with the layers compiled (config key compile: true) too, and the run
# takes the faster of the two; COMPILE=1 compiles without measuring the eager steps; COMPILE=0 (default) never.
# Wheels the machine lacks travel in .whl (carry it; scripts/lent_gpu_site.sh). CALL_S: this call's limit in
# seconds.
set -euo pipefail
phase=${1:?start or finish}
# NEXT_S leaves the finish call a minute beyond its training for the pointer head the config fits after it
CALL_S=${CALL_S:-590}; NEXT_S=${NEXT_S:-440}; OUT=${OUT:-/tmp/out}
CONFIG=${CONFIG:-configs/default.yaml}; KEEP_STEPS=${KEEP_STEPS:-0}; COMPILE=${COMPILE:-0}
t0=$(date +%s)
left() { echo $((CALL_S - ($(date +%s) - t0))); }
source "$(dirname "$0")/lent_gpu_site.sh"
train() { python3 -m regionlm.cli train "$@" 2> >(tr '\r' '\n' | grep -v '^$' | tail -n 3 >&2); }

if [ "$phase" = start ]; then
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
  rm -rf runs/gpu-probe runs/gpu-probe-compiled runs/gpu
  mkdir -p runs
  python3 -c "import sys, yaml; c = yaml.safe_load(open(sys.argv[1])); c['compile'] = True; yaml.safe_dump(c, open('runs/compiled.yaml', 'w'), sort_keys=False)" "$CONFIG"
  if [ "$COMPILE" != 1 ]; then
    train --config "$CONFIG" --out runs/gpu-probe --max-steps 60 --json > "$OUT/probe.json"
  fi
  if [ "$COMPILE" != 0 ]; then
    train --config runs/compiled.yaml --out runs/gpu-probe-compiled --max-steps 60 --json \
      > "$OUT/probe-compiled.json" || { echo "the compiled probe failed: the run stays eager" >&2; rm -rf runs/gpu-probe-compiled "$OUT/probe-compiled.json"; }
  fi
  now=$(left)
  python3 - "$CONFIG" "$now" "$NEXT_S" "$KEEP_STEPS" <<'PY'
import json, os, sys, yaml
now, nxt, keep = float(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
cfg = yaml.safe_load(open(sys.argv[1]))
# steps per second over each probe's last logged window (the first includes start-up and compiling)
probes = {}
for compiled, folder in ((False, "runs/gpu-probe"), (True, "runs/gpu-probe-compiled")):
    if os.path.isfile(f"{folder}/log.jsonl"):
        last = [json.loads(line) for line in open(f"{folder}/log.jsonl")][-1]
        probes[compiled] = (last["samples_per_s"] / cfg["batch_size"], last["data_wait"])
        print(f"probe {'compiled' if compiled else 'eager'}: {probes[compiled][0]:.2f} steps/s "
              f"({probes[compiled][1]:.0%} of it waiting for data)")
if not probes:
    sys.exit("no probe finished: nothing to size the run from")
compiled = max(probes, key=lambda k: probes[k][0])
cfg["compile"] = compiled
rate, wait = probes[compiled]
first = int(rate * (now - 60 - 45 * compiled))  # this call: a minute for start-up, checkpoint, copy-back (+ compiling)
total = cfg["stages"][0]["steps"] if keep else first + int(rate * (nxt - 45 * compiled))  # the resume compiles again
first = min(first, total)
cfg["stages"][0]["steps"] = total
yaml.safe_dump(cfg, open("runs/gpu.yaml", "w"), sort_keys=False)
open("runs/gpu-first", "w").write(str(first))
print(f"rate {rate:.2f} steps/s ({wait:.0%} of it waiting for data), compile {compiled}: {total} steps, "
      f"{first} in this call")
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
