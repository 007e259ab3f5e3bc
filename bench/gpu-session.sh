#!/usr/bin/env bash
# One GPU session's measurements in one call (pack first with bench/gpu-pack.sh): the head step on tfjs'
# webgpu backend against PyTorch CUDA (npm run bench -- head), then backbone extraction through
# onnxruntime's WebGPU provider against PyTorch on the same card (bench/gpu-extract.ts). Each part has its
# own time limit so one hang cannot take the others' time; logs and JSON figures go to $OUT (or ./gpu-out).
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
source .gpu/unpack.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)' \
  | tee -a "$out/gpu.txt"

timeout "${HEAD_LIMIT:-200}" .gpu/bin/node dist/bench/main.js head --backend webgpu 2>&1 | tee "$out/head.log"
cp bench-results/head.json "$out/" 2>/dev/null

models=/tmp/gpu-models
python3 infra/export_backbones.py resnet50 --weights none --out "$models" >"$out/export.log" 2>&1
python3 infra/export_backbones.py resnet50 --weights none --fp16 --out "$models" >>"$out/export.log" 2>&1
timeout "${EXTRACT_LIMIT:-240}" .gpu/bin/node dist/bench/gpu-extract.js "$models/resnet50.onnx" \
  "$models/resnet50-fp16.onnx" --out "$out/gpu-extract.json" 2>&1 | grep -v '^Warning' | tee "$out/extract.log"
