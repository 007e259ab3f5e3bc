"""numpy's float16 conversions, the reference for core/util/float16.ts.

stdin:  {"float32": base64 little-endian float32 values}
stdout: {"float16": base64 little-endian float16 bit patterns of those values (numpy's astype: round
          to nearest even), "decoded": base64 float32 values of all 65536 float16 bit patterns, in order}
"""

import base64
import json
import sys

import numpy as np


def main():
    request = json.load(sys.stdin)
    values = np.frombuffer(base64.b64decode(request["float32"]), dtype="<f4")
    with np.errstate(over="ignore"):
        halves = values.astype("<f2")
    every = np.arange(65536, dtype="<u2").view("<f2").astype("<f4")
    json.dump(
        {
            "float16": base64.b64encode(halves.tobytes()).decode(),
            "decoded": base64.b64encode(every.tobytes()).decode(),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
