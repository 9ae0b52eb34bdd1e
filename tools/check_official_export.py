"""Checks that PyTorch reads an official-format adapter written by Adapter Studio (used by the slow test tier).

    python3 tools/check_official_export.py OURS.pth REFERENCE.pth DTYPE

Loads OURS with torch.load(weights_only=True) (only tensor records allowed, as PyTorch's safe loader does), and
compares it with REFERENCE (a file torch.save wrote): same keys in the same order, same shapes, the stored dtype
DTYPE, and the same values after rounding REFERENCE to DTYPE. Prints a JSON report; exits 1 on a mismatch.
"""

import json
import sys

import torch


def main() -> None:
    ours_path, reference_path, dtype_name = sys.argv[1:4]
    dtype = getattr(torch, dtype_name)
    ours = torch.load(ours_path, map_location="cpu", weights_only=True)
    reference = torch.load(reference_path, map_location="cpu", weights_only=True)
    problems = []
    if list(ours) != list(reference):
        problems.append(f"keys differ: {list(ours)} vs {list(reference)}")
    for key, ref in reference.items():
        t = ours.get(key)
        if t is None:
            continue
        if t.dtype != dtype:
            problems.append(f"{key}: dtype {t.dtype}, expected {dtype}")
        if t.shape != ref.shape:
            problems.append(f"{key}: shape {list(t.shape)}, expected {list(ref.shape)}")
        elif not torch.equal(t, ref.to(dtype)):
            problems.append(f"{key}: values differ (max {float((t.float() - ref.to(dtype).float()).abs().max()):.3g})")
    print(json.dumps({"ok": not problems, "dtype": dtype_name, "tensors": len(ours), "problems": problems}))
    sys.exit(0 if not problems else 1)


if __name__ == "__main__":
    main()
