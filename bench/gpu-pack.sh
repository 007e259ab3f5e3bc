#!/usr/bin/env bash
# Packs what bench/gpu-session.sh needs on a GPU machine without Node.js (shared/gpu/README.md): the build,
# .gpu/ (node, the packages the benches load, the Vulkan loader) and .gl/ (the GL/EGL libraries Dawn opens
# with NVIDIA's Vulkan driver on that image). Then call the device's `run` with
#   carry: [".gpu", "dist", ".gl"]   command: bash bench/gpu-session.sh
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
# pack.mjs adds .gpu/ to git's exclude file, which a checkout made without `git clone` may lack.
exclude="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$exclude")" && touch "$exclude"
npm run build --silent
node ../shared/gpu/pack.mjs webgpu onnxruntime-node @tensorflow/tfjs @tensorflow/tfjs-backend-webgpu \
  @tensorflow/tfjs-backend-wasm commander sharp pure-rand long seedrandom zod
# sharp's native halves hide their package.json behind "exports", so pack.mjs cannot resolve them. Of nsfwjs
# (the doctor's bundled backbone), only the CommonJS build and MobileNetV2: its other models would not fit.
xz -dc .gpu/modules.tar.xz > .gpu/modules.tar
tar -rf .gpu/modules.tar node_modules/@img/sharp-linux-x64 node_modules/@img/sharp-libvips-linux-x64 \
  node_modules/nsfwjs/package.json node_modules/nsfwjs/dist/cjs node_modules/nsfwjs/dist/models/package.json \
  node_modules/nsfwjs/dist/models/mobilenet_v2
xz -T2 -6 -c .gpu/modules.tar > .gpu/modules.tar.xz && rm .gpu/modules.tar
mkdir -p .gl
grep -qx '/.gl/' "$exclude" || echo '/.gl/' >> "$exclude"
(cd .gl && for p in libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2; do
  ls ${p}_*.deb >/dev/null 2>&1 || apt-get download "$p"
done)
du -sh .gpu .gl dist
