"""torchvision's evaluation transform on PIL images, with Pillow and numpy only.

Resize(int) -> CenterCrop -> ToTensor -> Normalize, exactly as torchvision runs them on a PIL image:
torchvision's Resize calls PIL's Image.resize with the filter (Pillow always antialiases), computing the
long side as int(size * long / short); CenterCrop offsets are int(round((h - crop) / 2.0)); ToTensor and
Normalize are float32 operations. The default loader opens with Image.open(...).convert('RGB').

With "library": "torchvision" in the request, torchvision's own transforms run instead (where torch and
torchvision are installed): a check that this port is what it says.

stdin:  {"library": "pillow"|"torchvision" (default "pillow"),
         "jobs": [{"path", "resize": "shorter-side"|"stretch", "resizeTo", "cropSize",
                   "interpolation": "bilinear"|"bicubic", "mean": [3], "std": [3]}]}
stdout: {"pillow": version, "results": [{"data": base64 float32 little-endian HWC, "width", "height",
                      "mode": the file's PIL mode, "resized": [w, h], "crop": [left, top]}]}
         (torchvision: "data", "width", "height" and "mode" only)
"""

import base64
import json
import sys

import numpy as np
import PIL
from PIL import Image

FILTERS = {"bilinear": Image.BILINEAR, "bicubic": Image.BICUBIC}


def resized_size(width, height, job):
    size = job["resizeTo"]
    if job["resize"] == "stretch":
        return size, size
    # torchvision.transforms.functional._compute_resized_output_size
    short, long = (width, height) if width <= height else (height, width)
    new_short, new_long = size, int(size * long / short)
    return (new_short, new_long) if width <= height else (new_long, new_short)


def transform(path, preset):
    """torchvision's evaluation transform of one file: float32 HWC, and what it did (mode, resize, crop)."""
    with Image.open(path) as opened:
        mode = opened.mode
        image = opened.convert("RGB")
    new_w, new_h = resized_size(image.width, image.height, preset)
    if (new_w, new_h) != image.size:
        image = image.resize((new_w, new_h), FILTERS[preset["interpolation"]])
    crop = preset["cropSize"]
    top = int(round((new_h - crop) / 2.0))
    left = int(round((new_w - crop) / 2.0))
    image = image.crop((left, top, left + crop, top + crop))
    x = np.asarray(image, dtype=np.uint8).astype(np.float32) / np.float32(255)
    x = (x - np.asarray(preset["mean"], dtype=np.float32)) / np.asarray(preset["std"], dtype=np.float32)
    return x, {"mode": mode, "resized": [new_w, new_h], "crop": [left, top]}


def torchvision_transform(path, job):
    """The same evaluation transform by torchvision itself, on the image its default loader gives."""
    from torchvision import transforms as T
    from torchvision.datasets.folder import pil_loader

    interpolation = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
    size = job["resizeTo"] if job["resize"] == "shorter-side" else (job["resizeTo"], job["resizeTo"])
    pipeline = T.Compose(
        [
            T.Resize(size, interpolation=interpolation[job["interpolation"]]),
            T.CenterCrop(job["cropSize"]),
            T.ToTensor(),
            T.Normalize(job["mean"], job["std"]),
        ]
    )
    with Image.open(path) as opened:
        mode = opened.mode
    return pipeline(pil_loader(path)).permute(1, 2, 0).contiguous().numpy(), {"mode": mode}


def run(job, library):
    x, applied = (torchvision_transform if library == "torchvision" else transform)(job["path"], job)
    crop = job["cropSize"]
    return {
        "data": base64.b64encode(x.astype("<f4").tobytes()).decode("ascii"),
        "width": crop,
        "height": crop,
        **applied,
    }


def main():
    request = json.load(sys.stdin)
    library = request.get("library", "pillow")
    results = [run(job, library) for job in request["jobs"]]
    json.dump({"pillow": PIL.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
