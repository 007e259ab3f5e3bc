#!/usr/bin/env python3
"""Exports the paper's torchvision backbones to ONNX, cut at their last feature map.

    python infra/export_backbones.py all --weights DEFAULT --out models/
    python infra/export_backbones.py resnet50 --weights cub_resnet50.pth --out models/ --fp16

Each model is written as <out>/<arch>[-fp16].onnx, one file (weights inside, no external data), with a
dynamic batch axis, input 'image' [batch, 3, S, S] float32 (ImageNet-normalised, as the preset in the
sidecar prepares it) and output 'features':

    resnet34        [batch,  512,  7,  7]   conv1 .. layer4 (before avgpool)
    resnet50        [batch, 2048,  7,  7]
    densenet121     [batch, 1024,  7,  7]   features + the final ReLU
    convnext_tiny   [batch,  768,  7,  7]   features
    convnext_large  [batch, 1536,  7,  7]
    swin_v2_s       [batch,  768,  8,  8]   features + norm + permute to NCHW, at its 256 px input
    vit_b_16        [batch,  197,  768]     encoder output tokens (class token first, after the final LayerNorm)

--fp16 runs the network in float16 but keeps float32 input and output (casts at both ends), so the
same loader and preprocessing apply. Every export is checked against the PyTorch float32 module on
random input, at a batch size other than the traced one (which also proves the batch axis dynamic),
and the result is written beside the model as <name>.json: the preset for loadOnnxBackbone, the
feature map, the max abs difference and the sha256 whose first 16 hex digits are its fingerprint.

--weights: DEFAULT or a torchvision weights name (e.g. IMAGENET1K_V1; fetched into torch's hub cache,
so it needs the network or a cached copy), `none` (random initialisation, for testing), or the path
of a state_dict saved with torch.save (e.g. a backbone fine-tuned on CUB; a classifier of another
size is ignored, every tensor of the kept layers must be present; --preset names its transform when
it is not the architecture's IMAGENET1K_V1 one).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch
import torchvision
from torch import nn

ARCHS = {
    # arch: (input side, state_dict prefix of the classifier the cut drops)
    'resnet34': (224, ('fc.',)),
    'resnet50': (224, ('fc.',)),
    'densenet121': (224, ('classifier.',)),
    'convnext_tiny': (224, ('classifier.',)),
    'convnext_large': (224, ('classifier.',)),
    'swin_v2_s': (256, ('head.',)),
    'vit_b_16': (224, ('heads.',)),
}

# The core/data/preprocess.ts preset matching each torchvision weights' transforms.
PRESETS = {
    ('resnet34', 'IMAGENET1K_V1'): 'resnet34',
    ('resnet50', 'IMAGENET1K_V1'): 'resnet50',
    ('resnet50', 'IMAGENET1K_V2'): 'resnet50_v2',
    ('densenet121', 'IMAGENET1K_V1'): 'densenet121',
    ('convnext_tiny', 'IMAGENET1K_V1'): 'convnext_tiny',
    ('convnext_large', 'IMAGENET1K_V1'): 'convnext_large',
    ('swin_v2_s', 'IMAGENET1K_V1'): 'swin_v2_s',
    ('vit_b_16', 'IMAGENET1K_V1'): 'vit_b_16',
}


class ViTTokens(nn.Module):
    """torchvision's VisionTransformer.forward up to the encoder: patch embedding, class token, encoder."""

    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.vit._process_input(x)
        cls = self.vit.class_token.expand(x.shape[0], -1, -1)
        return self.vit.encoder(torch.cat([cls, x], dim=1))


class Float16(nn.Module):
    """The wrapped network in float16 behind float32 input and output."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module.half()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x.half()).float()


def cut(arch: str, model: nn.Module) -> nn.Module:
    if arch.startswith('resnet'):
        return nn.Sequential(*list(model.children())[:-2])  # drop avgpool, fc
    if arch.startswith('densenet'):
        return nn.Sequential(model.features, nn.ReLU())
    if arch.startswith('convnext'):
        return model.features
    if arch.startswith('swin'):
        return nn.Sequential(model.features, model.norm, model.permute)
    if arch.startswith('vit'):
        return ViTTokens(model)
    raise ValueError(arch)


def load_state_dict(arch: str, model: nn.Module, file: Path) -> None:
    state = torch.load(file, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model'):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    state = {k.removeprefix('module.'): v for k, v in state.items()}
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    head = ARCHS[arch][1]
    missing = [k for k in own if k not in usable and not k.startswith(head)]
    if missing:
        raise SystemExit(f'{file}: no usable tensor for {len(missing)} {arch} weights, e.g. {missing[:5]}')
    ignored = sorted(set(state) - set(usable))
    if ignored:
        print(f'  ignoring {len(ignored)} tensors of {file} (classifier or unknown): {ignored[:5]}')
    model.load_state_dict(usable, strict=False)


def build(arch: str, weights: str) -> tuple[nn.Module, str, str]:
    """The cut network in eval mode, the weights it holds, and the preset that prepares its input."""
    if weights.lower() == 'none':
        model = torchvision.models.get_model(arch, weights=None)
        return cut(arch, model).eval(), 'none (random initialisation)', PRESETS[(arch, 'IMAGENET1K_V1')]
    if Path(weights).exists():
        model = torchvision.models.get_model(arch, weights=None)
        load_state_dict(arch, model, Path(weights))
        return cut(arch, model).eval(), str(Path(weights).resolve()), PRESETS[(arch, 'IMAGENET1K_V1')]
    enum = torchvision.models.get_model_weights(arch)
    try:
        chosen = enum[weights]
    except KeyError:
        raise SystemExit(
            f"--weights {weights}: not a file, 'none', or one of {arch}'s weights: DEFAULT, "
            f"{', '.join(m for m in enum.__members__ if m != 'DEFAULT')}"
        ) from None
    preset = PRESETS.get((arch, chosen.name))
    if preset is None:
        raise SystemExit(f'{arch} {chosen.name}: no preset in core/data/preprocess.ts matches its transforms')
    try:
        model = torchvision.models.get_model(arch, weights=chosen)
    except Exception as error:  # noqa: BLE001 - a download failure surfaces as many exception types
        raise SystemExit(
            f'{arch} {chosen.name}: cannot load the weights ({error}); fetch {chosen.url} where there is a '
            f'network and pass the file with --weights'
        ) from error
    return cut(arch, model).eval(), f'torchvision {chosen}', preset


def export(module: nn.Module, side: int, file: Path, opset: int, exporter: str) -> str:
    """Writes `module` to `file`; returns the exporter that succeeded."""
    example = torch.randn(2, 3, side, side)
    order = {'auto': ['dynamo', 'torchscript'], 'dynamo': ['dynamo'], 'torchscript': ['torchscript']}[exporter]
    if exporter == 'auto' and importlib.util.find_spec('onnxscript') is None:
        order = ['torchscript']  # the dynamo exporter needs onnxscript
    failures = []
    for kind in order:
        try:
            if kind == 'dynamo':
                torch.onnx.export(
                    module, (example,), str(file), dynamo=True, opset_version=opset,
                    input_names=['image'], output_names=['features'],
                    dynamic_shapes=({0: torch.export.Dim('batch')},),
                    external_data=False,
                )  # fmt: skip
            else:
                torch.onnx.export(
                    module, (example,), str(file), dynamo=False, opset_version=opset,
                    input_names=['image'], output_names=['features'],
                    dynamic_axes={'image': {0: 'batch'}, 'features': {0: 'batch'}},
                    do_constant_folding=True,
                )  # fmt: skip
            return kind
        except Exception as error:  # noqa: BLE001 - report every exporter's failure, then give up
            failures.append(f'{kind}: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ""}')
            print(f'  {failures[-1]}', file=sys.stderr)
    raise SystemExit(f'{file}: no exporter succeeded ({"; ".join(failures)})')


def check(module32: nn.Module, file: Path, side: int, fp16: bool) -> dict:
    """ONNX Runtime (CPU) against PyTorch float32 on random input of a batch size other than the traced 2."""
    import onnxruntime

    x = torch.randn(3, 3, side, side, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = module32(x).float().numpy()
    options = onnxruntime.SessionOptions()
    if fp16:
        # onnxruntime 1.30-1.32 crashes (SIGSEGV) creating a CPU session for the float16 ViT-B/16 at
        # ORT_ENABLE_ALL; loadOnnxBackbone uses 'extended' for float16 models on the CPU for the same reason.
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    session = onnxruntime.InferenceSession(str(file), options, providers=['CPUExecutionProvider'])
    (inp,) = session.get_inputs()
    (out,) = session.get_outputs()
    actual = session.run(None, {inp.name: x.numpy()})[0]
    if actual.shape != expected.shape:
        raise SystemExit(f'{file}: ONNX output {actual.shape} != PyTorch {expected.shape}')
    diff = float(abs(actual - expected).max())
    scale = float(abs(expected).max())
    # float32: reordered sums only; float16: about 3 significant digits through the whole network.
    limit = (5e-2 if fp16 else 1e-3) * max(1.0, scale)
    return {
        'input': [inp.name, inp.shape, inp.type],
        'output': [out.name, out.shape, out.type],
        'max_abs_diff': diff,
        'output_max_abs': scale,
        'limit': limit,
        'ok': diff <= limit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('archs', nargs='+', help=f'all, or some of: {", ".join(ARCHS)}')
    parser.add_argument('--weights', default='DEFAULT', help="DEFAULT, a torchvision weights name, 'none', or a state_dict file")
    parser.add_argument('--out', type=Path, default=Path('models'))
    parser.add_argument('--opset', type=int, default=18)
    parser.add_argument('--fp16', action='store_true', help='float16 network, float32 input and output')
    parser.add_argument('--exporter', choices=['auto', 'dynamo', 'torchscript'], default='auto')
    parser.add_argument(
        '--preset',
        help='the core/data/preprocess.ts preset to record, for a state_dict trained with another transform '
        '(default: that of the torchvision weights, or of IMAGENET1K_V1 for a file or none; resnet50_v2 for '
        "torchvision's resnet50 IMAGENET1K_V2 file)",
    )
    args = parser.parse_args()

    archs = list(ARCHS) if args.archs == ['all'] else args.archs
    unknown = [a for a in archs if a not in ARCHS]
    if unknown:
        parser.error(f'unknown arch {unknown}; choose from {list(ARCHS)}')
    if Path(args.weights).exists() and len(archs) != 1:
        parser.error('a state_dict file fits one arch: name exactly one')
    args.out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    failed = []
    for arch in archs:
        side = ARCHS[arch][0]
        name = f'{arch}-fp16' if args.fp16 else arch
        file = args.out / f'{name}.onnx'
        print(f'{name}: building ({args.weights})', flush=True)
        module, weights, preset = build(arch, args.weights)
        preset = args.preset or preset
        with torch.no_grad():
            shape = list(module(torch.zeros(1, 3, side, side)).shape)
        started = time.time()
        # A copy, so halving the exported network leaves the float32 reference intact.
        to_export = Float16(copy.deepcopy(module)).eval() if args.fp16 else module
        exporter = export(to_export, side, file, args.opset, args.exporter)
        seconds = time.time() - started
        result = check(module, file, side, args.fp16)
        data = file.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        tokens = len(shape) == 3
        feature_map = (
            {'height': int((shape[1] - 1) ** 0.5), 'width': int((shape[1] - 1) ** 0.5), 'channels': shape[2]}
            if tokens
            else {'height': shape[2], 'width': shape[3], 'channels': shape[1]}
        )
        sidecar = {
            'arch': arch,
            'file': file.name,
            'weights': weights,
            'preset': preset,
            'fp16': args.fp16,
            'input': ['batch', 3, side, side],
            'output': ['batch', *shape[1:]],
            'output_kind': 'tokens (class token first)' if tokens else 'NCHW',
            'feature_map': feature_map,
            'opset': args.opset,
            'exporter': exporter,
            'export_seconds': round(seconds, 1),
            'bytes': len(data),
            'sha256': sha,
            'fingerprint': sha[:16],
            'check': result,
            'torch': torch.__version__,
            'torchvision': torchvision.__version__,
        }
        (args.out / f'{name}.json').write_text(json.dumps(sidecar, indent=2) + '\n')
        verdict = 'ok' if result['ok'] else f'FAILED (limit {result["limit"]:.3g})'
        print(
            f'{name}: {file} {len(data) / 2**20:.1f} MiB via {exporter}, features {sidecar["output"]}, '
            f'map {feature_map["height"]}x{feature_map["width"]}x{feature_map["channels"]}, preset {preset}; '
            f'max abs diff vs PyTorch fp32 {result["max_abs_diff"]:.3g} (output max {result["output_max_abs"]:.3g}) {verdict}',
            flush=True,
        )
        if not result['ok']:
            failed.append(name)
    if failed:
        raise SystemExit(f'checks failed: {failed}')


if __name__ == '__main__':
    main()
