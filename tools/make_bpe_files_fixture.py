"""A GPT-2-style tokenizer given as vocab.json + merges.txt (no tokenizer.json), and the ids transformers'
GPT2Tokenizer (the slow, pure-Python one that reads exactly these two files) gives for a set of strings.

The TypeScript loader (src-main/engine/tokenizer.ts) builds the equivalent byte-level BPE when a folder has no
tokenizer.json; test/tokenizer.test.ts checks its ids and decoding against these. The vocabulary is trained here
(tokenizers' ByteLevelBPETokenizer, 400 tokens) on a few sentences, so the file is small and the merges non-trivial.

    python tools/make_bpe_files_fixture.py     (writes test/fixtures/bpe-files/)
"""

from __future__ import annotations

import json
from pathlib import Path

import transformers
from tokenizers import ByteLevelBPETokenizer
from transformers import GPT2Tokenizer

OUT = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "bpe-files"

CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "What color is the sky? The sky is blue; grass is green, and snow is white.",
    "Instruction: name three primary colors.\nResponse: red, yellow and blue.",
    "Numbers like 1234 and 3.14 appear too, as do emoji 🙂 and accents: café, naïve, Zürich.",
    "  Leading spaces, tabs\tand\nnew lines are kept as bytes.",
] * 20

STRINGS = [
    "What color is the sky?",
    "The quick brown fox",
    " leading space and  two spaces",
    "café naïve Zürich 🙂",
    "tabs\tand\nnew\n\nlines",
    "unseen words: xylophone quixotic",
    "digits 0123456789 and 3.14159",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "",
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    trainer = ByteLevelBPETokenizer(add_prefix_space=False)
    trainer.train_from_iterator(CORPUS, vocab_size=400, min_frequency=2, special_tokens=["<|endoftext|>"])
    trainer.save_model(str(OUT))  # vocab.json, merges.txt
    (OUT / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "GPT2Tokenizer",
                "bos_token": "<|endoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "add_prefix_space": False,
                "model_max_length": 1024,
            },
            indent=2,
        )
        + "\n"
    )
    slow = GPT2Tokenizer(str(OUT / "vocab.json"), str(OUT / "merges.txt"), unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>")
    cases = []
    for s in STRINGS:
        ids = slow.encode(s, add_special_tokens=False)
        cases.append({"text": s, "ids": ids, "decoded": slow.decode(ids, clean_up_tokenization_spaces=False)})
    expected = {
        "generated_by": {"transformers": transformers.__version__, "tokenizer": "GPT2Tokenizer (slow)"},
        "vocab_size": len(slow),
        "endoftext_id": slow.convert_tokens_to_ids("<|endoftext|>"),
        "cases": cases,
    }
    (OUT / "expected.json").write_text(json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    print(f"{len(slow)} tokens, {len(cases)} cases -> {OUT}")


if __name__ == "__main__":
    main()
