#!/usr/bin/env bash
# One GPU session's measurements in one call (pack first with bench/gpu-pack.sh): backbone extraction
# through onnxruntime's WebGPU provider against PyTorch on the same card (bench/gpu-extract.ts), then the
# head step on tfjs' webgpu backend against PyTorch CUDA (npm run bench -- head), once as it is and once
# at C = 512 and 2048 with more dispatches per command-buffer submit. Each part has its own time limit
# (EXTRACT_LIMIT, HEAD_LIMIT, VARIANT_LIMIT seconds) so one hang cannot take the others' time; logs and
# JSON figures go to $OUT (or ./gpu-out). Normally about five minutes.
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
source .gpu/unpack.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)' \
  | tee -a "$out/gpu.txt"

models=/tmp/gpu-models
python3 infra/export_backbones.py resnet50 --weights none --out "$models" >"$out/export.log" 2>&1
python3 infra/export_backbones.py resnet50 --weights none --fp16 --out "$models" >>"$out/export.log" 2>&1
timeout "${EXTRACT_LIMIT:-200}" .gpu/bin/node dist/bench/gpu-extract.js "$models/resnet50.onnx" \
  "$models/resnet50-fp16.onnx" --out "$out/gpu-extract.json" 2>&1 | grep -v '^Warning' | tee "$out/extract.log"

timeout "${HEAD_LIMIT:-180}" .gpu/bin/node dist/bench/main.js --out "$out" head --backend webgpu 2>&1 \
  | grep -v '^Warning' | tee "$out/head.log"
timeout "${VARIANT_LIMIT:-90}" .gpu/bin/node dist/bench/main.js --out "$out/submit64" head --backend webgpu \
  --channels 512,2048 --tf-flags WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64 2>&1 | grep -v '^Warning' \
  | tee "$out/head-submit64.log"
