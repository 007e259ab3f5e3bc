"""The test split `testFraction` makes of class folders with no train/test split, written from its rule alone.

Reads {"root": ..., "testFraction": ...} on stdin; prints {"classes": [...], "test": ["<class>/<file>", ...]}.
Classes and files as torchvision's ImageFolder finds them (folders sorted, files below each class folder);
each class holds out k = floor(n * fraction + 1/2), at most n - 1, of its n files: those whose SHA-256 of
"<class>/<file>" in hex sorts first.
"""

import hashlib
import json
import math
import os
import sys

# torchvision.datasets.folder.IMG_EXTENSIONS
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def image_files(folder):
    """Files below `folder` with an image extension, '/'-separated and relative to it, as ImageFolder walks them."""
    found = []
    for dirpath, _, names in os.walk(folder, followlinks=True):
        for name in names:
            if name.lower().endswith(IMG_EXTENSIONS):
                found.append(os.path.relpath(os.path.join(dirpath, name), folder).replace(os.sep, "/"))
    return sorted(found)


request = json.load(sys.stdin)
root, fraction = request["root"], request["testFraction"]
classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
test = []
for cls in classes:
    files = image_files(os.path.join(root, cls))
    k = min(len(files) - 1, math.floor(len(files) * fraction + 0.5))
    test += [f"{cls}/{f}" for f in sorted(files, key=lambda f: hashlib.sha256(f"{cls}/{f}".encode()).hexdigest())[:k]]
json.dump({"classes": classes, "test": sorted(test)}, sys.stdout)
