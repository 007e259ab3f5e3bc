#!/usr/bin/env bash
# One GPU session's measurements in one call (pack first with bench/gpu-pack.sh): backbone extraction
# through onnxruntime's WebGPU provider against PyTorch on the same card (bench/gpu-extract.ts), the head's
# large matrix products (npm run bench -- matmul), then the head step on tfjs' webgpu backend against
# PyTorch CUDA (npm run bench -- head) with the tiled products, as it is, and at C = 512 and 2048 with the
# tiled products, Dawn toggles and more dispatches per command-buffer submit. Each part has its own time limit
# (DOCTOR_LIMIT, EXTRACT_LIMIT, MATMUL_LIMIT, HEAD_LIMIT, VARIANT_LIMIT seconds) so one hang cannot take the others'
# time; logs and JSON figures go to $OUT (or ./gpu-out). Normally about six minutes; at most 590 s. First,
# `infodisent doctor` on the card (DOCTOR_LIMIT).
set -uo pipefail
out="${OUT:-gpu-out}"
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
source .gpu/unpack.sh
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)' \
  | tee -a "$out/gpu.txt"

# What the project itself sees of this machine: Dawn's adapter, tfjs webgpu's numbers, onnxruntime's providers.
timeout "${DOCTOR_LIMIT:-30}" .gpu/bin/node dist/client/main.js doctor --skip temporal,store 2>&1 \
  | grep -v '^Warning' | tee "$out/doctor.log"

models=/tmp/gpu-models
python3 infra/export_backbones.py resnet50 --weights none --out "$models" >"$out/export.log" 2>&1
python3 infra/export_backbones.py resnet50 --weights none --fp16 --out "$models" >>"$out/export.log" 2>&1
timeout "${EXTRACT_LIMIT:-160}" .gpu/bin/node dist/bench/gpu-extract.js "$models/resnet50.onnx" \
  "$models/resnet50-fp16.onnx" --out "$out/gpu-extract.json" 2>&1 | grep -v '^Warning' | tee "$out/extract.log"

# The head's large products alone: tfjs' kernel, the tiled one (core/method/matmul-webgpu.ts), torch.mm.
timeout "${MATMUL_LIMIT:-50}" .gpu/bin/node dist/bench/main.js --out "$out" matmul --backend webgpu 2>&1 \
  | grep -v '^Warning' | tee "$out/matmul.log"
timeout "${HEAD_LIMIT:-140}" .gpu/bin/node dist/bench/main.js --out "$out/tiled" head --backend webgpu \
  --tf-flags INFODISENT_WEBGPU_TILED_MATMUL=true 2>&1 | grep -v '^Warning' | tee "$out/head-tiled.log"
timeout "${HEAD_LIMIT:-140}" .gpu/bin/node dist/bench/main.js --out "$out" head --backend webgpu 2>&1 \
  | grep -v '^Warning' | tee "$out/head.log"
# Everything that may cut per-dispatch cost at once: Dawn without validation, index clamping or workgroup
# zero-fill, and more dispatches per submit (a later session bisects if it helps).
INFODISENT_DAWN_TOGGLES=skip_validation,disable_robustness,disable_workgroup_init \
  timeout "${VARIANT_LIMIT:-70}" .gpu/bin/node dist/bench/main.js --out "$out/lean" head --backend webgpu \
  --channels 512,2048 --tf-flags INFODISENT_WEBGPU_TILED_MATMUL=true,WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE=64 2>&1 \
  | grep -v '^Warning' | tee "$out/head-lean.log"
