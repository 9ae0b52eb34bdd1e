"""Train the starter model's byte-level BPE tokenizer (build step only; the app never runs Python).

    python3 tools/starter/train_tokenizer.py train CORPUS.txt OUT_DIR VOCAB_SIZE [EXTRA.txt ...]
    python3 tools/starter/train_tokenizer.py encode TOKENIZER.json TEXTS.json   # prints {"ids": [[...], ...]}

Byte-level (GPT-2 style) BPE from Hugging Face `tokenizers`: every byte has a token, so any text
encodes without <unk>. Special tokens take ids 0-2 as in LLaMA: <unk>, <s>, </s>. The
post-processor prepends <s>, as transformers' LLaMA tokenizers do; the engine adds BOS itself.
"""

import json
import os
import sys

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIALS = ["<unk>", "<s>", "</s>"]


def train(corpus: str, out_dir: str, vocab_size: int, extra: list[str]) -> None:
    tokenizer = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train([corpus, *extra], trainer)
    bos = tokenizer.token_to_id("<s>")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    os.makedirs(out_dir, exist_ok=True)
    tokenizer.save(os.path.join(out_dir, "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "</s>",
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 128,
    }
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(out_dir, "special_tokens_map.json"), "w") as f:
        json.dump({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "</s>"}, f, indent=2)
        f.write("\n")


def encode(tokenizer_file: str, texts_file: str) -> None:
    tokenizer = Tokenizer.from_file(tokenizer_file)
    with open(texts_file) as f:
        texts = json.load(f)
    ids = [tokenizer.encode(t, add_special_tokens=False).ids for t in texts]
    json.dump({"ids": ids}, sys.stdout)


if __name__ == "__main__":
    if len(sys.argv) >= 5 and sys.argv[1] == "train":
        train(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    elif len(sys.argv) == 4 and sys.argv[1] == "encode":
        encode(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
