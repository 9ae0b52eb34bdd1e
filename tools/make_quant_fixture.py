"""Blocks quantised by llama.cpp's reference formats (gguf-py's quants module, bit-exact with ggml-quants.c): Q8_0 and
Q4_0 bytes and their dequantised values for a set of float32 blocks, including the edge cases (an all-zero block,
ties at .5, the largest magnitude negative, values far apart). src-main/engine/quant.ts is checked against these.

    python tools/make_quant_fixture.py     (writes test/fixtures/quant/blocks.json)
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import gguf
import numpy as np
from gguf.quants import Q4_0, Q8_0

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "quant" / "blocks.json"


def main() -> None:
    rng = np.random.default_rng(7)
    blocks = [
        rng.standard_normal(32).astype(np.float32),
        (rng.standard_normal(32) * 1e-3).astype(np.float32),
        np.zeros(32, dtype=np.float32),
        np.linspace(-8.5, 7.5, 32, dtype=np.float32),  # ties after scaling
        np.array([-3.0] + [0.5] * 31, dtype=np.float32),  # the largest magnitude is negative
        np.array([1e4] + list(rng.standard_normal(31)), dtype=np.float32),  # one outlier
        (rng.standard_normal(32) * 50).astype(np.float32),
        np.array([(i % 5) - 2.5 for i in range(32)], dtype=np.float32),
    ]
    values = np.concatenate(blocks)
    out = {"generated_by": {"gguf": getattr(gguf, "__version__", "gguf-py")}, "values": values.tolist()}
    for name, quant in (("q8_0", Q8_0), ("q4_0", Q4_0)):
        packed = quant.quantize(values)
        out[name] = {"bytes": base64.b64encode(packed.tobytes()).decode(), "dequantized": quant.dequantize(packed).astype(np.float32).tolist()}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out) + "\n")
    print(f"{len(blocks)} blocks -> {OUT}")


if __name__ == "__main__":
    main()
