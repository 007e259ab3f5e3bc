#!/usr/bin/env bash
# One GPU session's measurements in one call (pack first with bench/gpu-pack.sh; then the device's `run`
# with carry [".gpu", "dist", ".gl"] and this script). In order, each part under its own time limit
# (seconds, overridable as NAME_LIMIT) so that one hang cannot take the others' time:
#   doctor      the doctor's device checks on the card (bench/gpu-doctor.ts): Dawn's adapter, tfjs webgpu's numbers, onnxruntime's providers
#   extract     ResNet-50 (float32 and float16 exports) through onnxruntime's WebGPU provider in each layout,
#               fed normalised floats and uint8 pixels, the whole extraction stage in one process and in
#               three (features.processes), and PyTorch on the same card (gpu-extract.ts); batch 256 and
#               Dawn's validation off were no faster on an H200 (bench/NOTES.md)
#   head        the head step on tfjs' webgpu backend against PyTorch CUDA (npm run bench -- head), as it is,
#   head-tiled  and with the register-tiled products (Dawn toggles and 64 dispatches a submit gained nothing
#               on an H200, bench/NOTES.md)
#   processes   3, then 4 processes (PROCESSES) extracting with the float16 export at once (one process's
#               WebGPU sessions cannot run at the same time), against one
#   matmul      the head's large products alone: tfjs' kernel, the tiled one, torch.mm
#   ort         the float16 export alone in one process, with no INFODISENT_ORT_CONFIG and then with each of
#               ORT_CONFIGS (onnxruntime session entries: the WebGPU provider's dispatches a submit, graph capture)
# PARTS="extract ort" runs only those (the models are exported first where a part needs them).
# Logs and JSON go to $OUT/gpu-session.tar, written again after each part, since at most 8 files come back
# and a part killed at its limit must not lose the others'. About six minutes; at most 590 s.
set -uo pipefail
out="${OUT:-gpu-out}"
work=/tmp/gpu-session
mkdir -p "$out" "$work"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
source .gpu/unpack.sh

# part NAME LIMIT COMMAND...: runs COMMAND under LIMIT seconds, its output in $work/NAME.log, then tars $work.
part() {
  local name=$1 limit=$2
  shift 2
  local start=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout "$limit" "$@" 2>&1 | grep -v '^Warning' | tee "$work/$name.log"
  echo "== $name: exit ${PIPESTATUS[0]} after $((SECONDS - start))s" | tee -a "$work/parts.txt"
  tar -cf "$out/gpu-session.tar" -C "$work" .
}

{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c 'import torch, torchvision; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
} 2>&1 | tee "$work/gpu.txt"
node=.gpu/bin/node
models=/tmp/gpu-models
wanted() { [[ " ${PARTS:-doctor extract head head-tiled processes matmul ort} " == *" $1 "* ]]; }
needs_models() { wanted extract || wanted processes || wanted ort; }

wanted doctor && part doctor "${DOCTOR_LIMIT:-30}" $node dist/bench/gpu-doctor.js webgpu
needs_models && part export "${EXPORT_LIMIT:-60}" bash -c "python3 infra/export_backbones.py resnet50 --weights none --out $models \
  && python3 infra/export_backbones.py resnet50 --weights none --fp16 --out $models"
wanted extract && part extract "${EXTRACT_LIMIT:-150}" $node dist/bench/gpu-extract.js "$models/resnet50.onnx" \
  "$models/resnet50-fp16.onnx" --batch 64 --validation basic --repeats 10 --out "$work/gpu-extract.json"
wanted head && part head "${HEAD_LIMIT:-110}" $node dist/bench/main.js --out "$work" head --backend webgpu
mkdir -p "$work/tiled"
wanted head-tiled && part head-tiled "${HEAD_LIMIT:-110}" $node dist/bench/main.js --out "$work/tiled" head --backend webgpu \
  --tf-flags INFODISENT_WEBGPU_TILED_MATMUL=true
wanted processes && for count in ${PROCESSES:-3 4}; do
  start_at=$(($(date +%s%3N) + 25000))
  part "processes-$count" "${PROCESSES_LIMIT:-50}" bash -c "for i in \$(seq $count); do
      $node dist/bench/gpu-extract.js $models/resnet50-fp16.onnx --sessions 1 --batch 64 --repeats 20 \
        --start-at $start_at --out $work/processes-$count-\$i.json &
    done; wait"
done
wanted matmul && part matmul "${MATMUL_LIMIT:-40}" $node dist/bench/main.js --out "$work" matmul --backend webgpu
wanted ort && for config in "" ${ORT_CONFIGS:-ep.webgpuexecutionprovider.maxNumPendingDispatches=64 \
  ep.webgpuexecutionprovider.enableGraphCapture=1}; do
  name="ort-$(echo "${config:-default}" | sed 's/.*\.//; s/[^A-Za-z0-9]/-/g')"
  part "$name" "${ORT_LIMIT:-40}" env INFODISENT_ORT_CONFIG="$config" $node dist/bench/gpu-extract.js \
    $models/resnet50-fp16.onnx --sessions 1 --batch 64 --repeats 20 --out "$work/$name.json"
done
cat "$work/parts.txt"
