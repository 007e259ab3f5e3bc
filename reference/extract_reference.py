"""Feature extraction throughput in Python, the reference for bench/extract.ts.

For each case: decode with Pillow and apply torchvision's evaluation transform (as
preprocess_reference.py does: Resize, CenterCrop, ToTensor, Normalize), batch by batch, then run the
backbone on the batch, with the engine the machine has, in this order:
  1. PyTorch on the CPU (torchvision architecture `torchvision`, random weights: timing only),
  2. onnxruntime's Python package on the CPU, on the same ONNX file as the Node side (`onnx`),
  3. none: preprocessing is still timed, and `reason` says why no model ran.
One batch is run first, untimed, as the Node side does (allocation, thread pools, kernel selection).

stdin:  {"files": [paths], "batch": n, "threads": n,
         "cases": [{"name", "images": how many of the files (default all),
                    "preset": {resize, resizeTo, cropSize, interpolation, mean, std},
                    "torchvision": arch or null, "onnx": path or null}]}
stdout: {"versions": {...}, "cases": [{"name", "engine": "torch"|"onnxruntime"|"none", "reason",
          "images", "preprocess_seconds", "model_seconds" (null without a model), "output_shape"}]}

With {"task": "gpu", "arch", "batches", "side", "repeats"} (bench/gpu-extract.ts): the cut torchvision
backbone alone on CUDA, channels-last, at each batch size, at float32 and under float16 and bfloat16
autocast; stdout is a list of {"arch", "dtype", "batch", "device", "images_per_second"}.

With {"task": "loader", "files", "preset", "batch", "workers", "rounds"} (bench/extract.ts, the host side's
ceiling): how fast the data loading a PyTorch user feeds a GPU with delivers batches of the same files:
torch.utils.data.DataLoader, `workers` worker processes, torchvision's transforms on its default loader;
without torch, this module's transform in one thread. stdout: {"engine", "images_per_second" (best round,
worker start included), "versions"}.
"""

import contextlib
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import PIL
from preprocess_reference import transform


def prepare(path, preset):
    """One image as float32 CHW, torchvision's transform on the PIL image."""
    return transform(path, preset)[0].transpose(2, 0, 1)


def torch_model(arch, threads):
    import torch
    import torchvision

    torch.set_num_threads(threads)
    model = torchvision.models.get_model(arch, weights=None).eval()
    if arch == "mobilenet_v2":
        module = model.features
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "infra"))
        from export_backbones import cut

        module = cut(arch, model).eval()

    def run(batch):
        with torch.inference_mode():
            return module(torch.from_numpy(batch)).numpy()

    return run


def onnx_model(file, threads):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(file, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def has(module):
    return importlib.util.find_spec(module) is not None


def engine_for(case, threads):
    """(engine, reason, run) for the first engine that applies."""
    arch, onnx = case.get("torchvision"), case.get("onnx")
    if arch and has("torch") and has("torchvision"):
        return "torch", f"PyTorch CPU, torchvision {arch} (random weights), {threads} threads", torch_model(arch, threads)
    if onnx and has("onnxruntime"):
        return "onnxruntime", f"onnxruntime (Python) CPU on the same ONNX file, {threads} threads", onnx_model(onnx, threads)
    missing = []
    if arch:
        absent = " and ".join(m for m in ("torch", "torchvision") if not has(m))
        missing.append(f"{absent} not importable (PyTorch runs {arch})")
    if onnx:
        missing.append("onnxruntime not importable (it runs the ONNX file)")
    if not arch and not onnx:
        missing.append("no Python implementation of this model")
    return "none", "; ".join(missing), None


def run_case(case, files, batch_size, threads):
    files = files[: case.get("images", len(files))]
    engine, reason, model = engine_for(case, threads)
    preset = case["preset"]
    if model is not None:
        model(np.stack([prepare(f, preset) for f in files[:batch_size]]))
    prep = 0.0
    infer = 0.0
    shape = None
    for start in range(0, len(files), batch_size):
        t0 = time.perf_counter()
        batch = np.stack([prepare(f, preset) for f in files[start : start + batch_size]])
        t1 = time.perf_counter()
        prep += t1 - t0
        if model is not None:
            shape = list(model(batch).shape)
            infer += time.perf_counter() - t1
    return {
        "name": case["name"],
        "engine": engine,
        "reason": reason,
        "images": len(files),
        "preprocess_seconds": prep,
        "model_seconds": infer if model is not None else None,
        "output_shape": shape,
    }


def versions():
    out = {"python": platform.python_version(), "numpy": np.__version__, "pillow": PIL.__version__}
    for name in ("torch", "torchvision", "onnxruntime"):
        if has(name):
            out[name] = __import__(name).__version__
    return out


def gpu_timings(request):
    import torch
    import torchvision

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "infra"))
    from export_backbones import cut

    arch, side, repeats = request["arch"], request["side"], request["repeats"]
    device = torch.device("cuda")
    model = cut(arch, torchvision.models.get_model(arch, weights=None)).eval()
    model = model.to(device, memory_format=torch.channels_last)
    out = []
    for batch in request["batches"]:
        x = torch.randn(batch, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
        for dtype in ("float32", "float16", "bfloat16"):
            autocast = (
                contextlib.nullcontext()
                if dtype == "float32"
                else torch.autocast("cuda", dtype=getattr(torch, dtype))
            )
            with torch.inference_mode(), autocast:
                for _ in range(3):
                    model(x)
                torch.cuda.synchronize()
                start = time.perf_counter()
                for _ in range(repeats):
                    model(x)
                torch.cuda.synchronize()
                seconds = time.perf_counter() - start
            out.append({
                "arch": arch,
                "dtype": dtype,
                "batch": batch,
                "device": torch.cuda.get_device_name(),
                "images_per_second": repeats * batch / seconds,
            })  # fmt: skip
    return out


class _Files:
    """The files as a map-style dataset of torchvision-transformed tensors (a picklable class for workers)."""

    def __init__(self, files, preset):
        from torchvision import transforms as T

        interpolation = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
        self.files = files
        self.pipeline = T.Compose(
            [
                T.Resize(preset["resizeTo"], interpolation=interpolation[preset["interpolation"]]),
                T.CenterCrop(preset["cropSize"]),
                T.ToTensor(),
                T.Normalize(preset["mean"], preset["std"]),
            ]
        )

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        from torchvision.datasets.folder import pil_loader

        return self.pipeline(pil_loader(self.files[i]))


def loader_timing(request):
    files, preset, batch = request["files"], request["preset"], request["batch"]
    if has("torch") and has("torchvision"):
        import torch

        torch.set_num_threads(1)
        engine = f"torch DataLoader, {request['workers']} workers, torchvision transforms on PIL"

        def one_round():
            loader = torch.utils.data.DataLoader(
                _Files(files, preset), batch_size=batch, num_workers=request["workers"]
            )
            for _ in loader:
                pass

    else:
        engine = "Pillow + NumPy transform, one thread (no torch)"

        def one_round():
            for start in range(0, len(files), batch):
                np.stack([prepare(f, preset) for f in files[start : start + batch]])

    best = float("inf")
    for _ in range(request["rounds"]):
        start = time.perf_counter()
        one_round()
        best = min(best, time.perf_counter() - start)
    return {"engine": engine, "images_per_second": len(files) / best, "versions": versions()}


def main():
    request = json.load(sys.stdin)
    if request.get("task") == "gpu":
        json.dump(gpu_timings(request), sys.stdout)
        return
    if request.get("task") == "loader":
        json.dump(loader_timing(request), sys.stdout)
        return
    cases = [run_case(c, request["files"], request["batch"], request["threads"]) for c in request["cases"]]
    json.dump({"versions": versions(), "cases": cases}, sys.stdout)


if __name__ == "__main__":
    main()
