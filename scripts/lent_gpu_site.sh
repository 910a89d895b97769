# Sourced by the lent_gpu_*.sh scripts: install the wheels the lent GPU machine lacks (carried in .whl, in
# subfolders too: the working tree and what is carried travel under 64 MiB a call, so the wheels may come in parts
# over several calls) into /tmp/site, which keeps what earlier calls installed while the machine stays warm.
# Wheels: pycocotools 2.0.11 (cp312), transformers 5.24.0 or 5.23.0 (the machine's 5.17 has no SubConfigSpec) and, for
# evaluation and the pointer head a training config fits after training (configs/default.yaml), av 18.1.0; fetch
# them with the device README's pip download line.
whl=$(find .whl -type f -name '*.whl' 2>/dev/null || true)
if [ -n "$whl" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $whl
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
