"""Loads an HF-layout folder written by Adapter Studio with transformers and prints its logits (slow test tier).

    python3 tools/check_hf_folder.py FOLDER '[[1, 2, 3], [4, 5, 6]]'

Prints JSON {"logits": [B][T][V], "config": {...}}: proof that transformers itself reads what we wrote
(config.json, safetensors, sharded index), not only our own loader.
"""

import json
import sys

import torch
from transformers import LlamaForCausalLM


def main() -> None:
    folder, ids = sys.argv[1], json.loads(sys.argv[2])
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(input_ids=torch.tensor(ids)).logits
    print(json.dumps({"logits": logits.tolist(), "config": model.config.to_dict()}))


if __name__ == "__main__":
    main()
