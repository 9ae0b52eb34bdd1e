#!/usr/bin/env python3
"""Build the multi-modal starter: a ScienceQA-layout demo dataset and a tiny CLIP, both from synthetic pictures.

Exact command (from the repository root):

    python3 tools/starter/vision/build_vision_starter.py --seed 0

Writes (and replaces):

    assets/starter/scienceqa-demo/   problems.json, pid_splits.json, images/<split>/<pid>/image.png
    assets/starter/vision/           a tiny CLIPModel (config.json, model.safetensors), preprocessor_config.json,
                                     text-vocab.json, build-report.json, MODEL_CARD.md

Everything comes from one renderer (PIL, 64x64 RGB: one to four circles, squares or triangles in four colours on a
light background). The CLIP is trained contrastively (CLIP's symmetric InfoNCE) on pictures rendered with captions
such as "two red circles" or "a blue square left of a green triangle", drawn from a random stream of their own (never
the demo's images), in twins with a hard negative each; pictures of the same scene description in one batch all
count as matches. Only the vision half
is meant for the app (CLIPVisionModelWithProjection loads the folder); the text half, with its word-level
vocabulary (text-vocab.json), ships because it is part of the CLIPModel that was trained.

Deterministic for a given --seed on one machine: every random draw comes from seeded generators, torch runs with
deterministic algorithms and a fixed thread count, and the training length is a number of steps, not a time.
Needs torch, transformers, pillow, safetensors (and tokenizers, to check prompt lengths with the starter
tokenizer when assets/starter/model/tokenizer.json exists).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import random
import shutil
import sys
import time
from pathlib import Path

from PIL import Image, ImageDraw

try:  # the tower's training needs them; the demo dataset alone (--dataset-only) needs only Pillow
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError:
    np = torch = F = None


def no_grad(fn):
    """torch.no_grad() where torch is installed; the dataset alone runs without it."""
    return torch.no_grad()(fn) if torch is not None else fn

ROOT = Path(__file__).resolve().parents[3]
DATA_DIR = ROOT / "assets" / "starter" / "scienceqa-demo"
VISION_DIR = ROOT / "assets" / "starter" / "vision"
STARTER_TOKENIZER = ROOT / "assets" / "starter" / "model" / "tokenizer.json"
COMMAND = "python3 tools/starter/vision/build_vision_starter.py --seed {seed}"

# ---------------------------------------------------------------------------------------------------------------
# The renderer

SIZE = 64  # image side in pixels (= the tower's image_size)
SUPER = 4  # drawn at SIZE*SUPER, then downsampled (anti-aliased edges)
COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 215), "yellow": (235, 195, 25)}
COLOUR_NAMES = list(COLOURS)
SHAPES = ["circle", "square", "triangle"]
COUNT_WORDS = ["one", "two", "three", "four"]
SIDES = ["left", "right"]


def _jitter(rgb, rng: random.Random, amount=18):
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in rgb)


def _draw(draw: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, r: float, fill):
    s = SUPER
    cx, cy, r = cx * s, cy * s, r * s
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        h = r * 0.86
        draw.rectangle([cx - h, cy - h, cx + h, cy + h], fill=fill)
    else:  # triangle, point up, about as wide as the circle
        draw.polygon([(cx, cy - r), (cx + r * 0.98, cy + r * 0.75), (cx - r * 0.98, cy + r * 0.75)], fill=fill)


def render(objects, rng: random.Random) -> Image.Image:
    """objects: [(shape, colour, cx, cy, r)] in SIZE-pixel coordinates."""
    bg = _jitter((242, 240, 236), rng, 10)
    img = Image.new("RGB", (SIZE * SUPER, SIZE * SUPER), bg)
    d = ImageDraw.Draw(img)
    for shape, colour, cx, cy, r in objects:
        _draw(d, shape, cx, cy, r, _jitter(COLOURS[colour], rng))
    return img.resize((SIZE, SIZE), Image.Resampling.BOX)


def _place(rng: random.Random, radii, x_range=None, tries=400):
    """Non-overlapping centres for circles of the given radii (x_range: (lo, hi) for every centre's x)."""
    for _ in range(tries):
        out = []
        for r in radii:
            lo, hi = x_range if x_range else (r + 2, SIZE - r - 2)
            for _ in range(100):
                cx, cy = rng.uniform(max(lo, r + 2), min(hi, SIZE - r - 2)), rng.uniform(r + 2, SIZE - r - 2)
                if all((cx - x) ** 2 + (cy - y) ** 2 > (r + q + 2) ** 2 for x, y, q in out):
                    out.append((cx, cy, r))
                    break
            else:
                break
        if len(out) == len(radii):
            return out
    raise RuntimeError("could not place the shapes")


def scene_single(rng, colour, shape, side):
    """One shape, wholly in the left or the right half."""
    r = rng.uniform(8, 13)
    x_range = (0, SIZE / 2 - r - 1) if side == "left" else (SIZE / 2 + r + 1, SIZE)
    (cx, cy, r), = _place(rng, [r], x_range=x_range)
    return {"kind": "single", "colour": colour, "shape": shape, "side": side, "objects": [(shape, colour, cx, cy, r)]}


def scene_count(rng, n, colour, shape):
    radii = [rng.uniform(5.5, 9) for _ in range(n)]
    objs = [(shape, colour, cx, cy, r) for cx, cy, r in _place(rng, radii)]
    return {"kind": "count", "count": n, "colour": colour, "shape": shape, "objects": objs}


def scene_pair(rng, left, right):
    """left / right: (colour, shape); the two differ in colour and in shape."""
    r1, r2 = rng.uniform(7, 12), rng.uniform(7, 12)
    (x1, y1, _), = _place(rng, [r1], x_range=(0, SIZE / 2 - r1 - 3))
    (x2, y2, _), = _place(rng, [r2], x_range=(SIZE / 2 + r2 + 3, SIZE))
    return {"kind": "pair", "left": left, "right": right,
            "objects": [(left[1], left[0], x1, y1, r1), (right[1], right[0], x2, y2, r2)]}


def plural(shape):
    return shape + "s"


def caption(scene) -> str:
    """A plain description of the picture (it names the scene exactly)."""
    if scene["kind"] == "single":
        return f"a {scene['colour']} {scene['shape']} on the {scene['side']}"
    if scene["kind"] == "count":
        n = scene["count"]
        return f"{COUNT_WORDS[n - 1]} {scene['colour']} {scene['shape'] if n == 1 else plural(scene['shape'])}"
    (c1, s1), (c2, s2) = scene["left"], scene["right"]
    return f"a {c1} {s1} left of a {c2} {s2}"


def random_twins(rng: random.Random):
    """A random scene and a hard negative for it, differing in one thing that a bag of attributes misses: the
    single shape on the other side, the alike shapes in another number, the two shapes swapped."""
    kind = rng.choices(["single", "count", "pair"], weights=[2, 2, 3])[0]
    if kind == "single":
        colour, shape = rng.choice(COLOUR_NAMES), rng.choice(SHAPES)
        side = rng.choice(SIDES)
        return scene_single(rng, colour, shape, side), scene_single(rng, colour, shape, SIDES[1 - SIDES.index(side)])
    if kind == "count":
        colour, shape = rng.choice(COLOUR_NAMES), rng.choice(SHAPES)
        n, m = rng.sample([1, 2, 3, 4], 2)
        return scene_count(rng, n, colour, shape), scene_count(rng, m, colour, shape)
    c1, c2 = rng.sample(COLOUR_NAMES, 2)
    s1, s2 = rng.sample(SHAPES, 2)
    return scene_pair(rng, (c1, s1), (c2, s2)), scene_pair(rng, (c2, s2), (c1, s1))


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# The demo dataset (ScienceQA layout)

GRADES_LOW = [f"grade{g}" for g in range(1, 7)]
GRADES_HIGH = [f"grade{g}" for g in range(7, 13)]

LECTURES = {
    "colours": "Everything we see has a colour. Red, green, blue and yellow are colours.",
    "shapes": "A circle is round. A square has four equal sides. A triangle has three sides.",
    "counting": "To count things, point at each one and say the next number.",
    "position": "Left and right tell where things are. Your left hand is on the left.",
    "reading": "Read the text to find the answer.",
    "facts": "Some facts are always true. You can learn them and remember them.",
    "words": "Words have meanings. Some words mean the opposite of other words.",
    "economics": "People can own and count things such as coins.",
    "geography": "A map shows where places are, such as left or right of each other.",
}

# Image questions: each answer knowable only from the picture (the same text goes with every answer).
IMAGE_KINDS = ["img-colour", "img-shape", "img-count", "img-left-shape", "img-relation", "img-right-colour"]
HINT_KINDS = ["hint-colour", "hint-count", "hint-side"]
# The test split's hint questions name other objects, people and places than the training split's, so that no test
# question is a training question: what transfers is reading the hint, not the answer.
HINT_POOLS = {
    "train": {
        "objects": ["box", "ball", "cup", "hat", "car", "door", "bag", "kite"],
        "names": ["Sam", "Ann", "Tom", "Mia", "Ben", "Lily"],
        "places": [("school", "park"), ("shop", "bank"), ("farm", "river"), ("house", "lake"), ("library", "zoo")],
    },
    "test": {
        "objects": ["lamp", "sock", "bike", "boat"],
        "names": ["Zoe", "Leo", "Eva", "Max"],
        "places": [("bakery", "church"), ("station", "museum"), ("garden", "pond")],
    },
}
HINT_THINGS = ["dogs", "coins", "books", "apples", "pens", "cats"]

# Fixed facts: the same question always has the same answer (learnable from the text alone).
# (question, right answer, wrong choices, subject, topic, grades)
FACTS = [
    ("What colour is grass?", "green", ["red", "blue"], "natural science", "colours", GRADES_LOW, "Grass has which colour?"),
    ("What colour is the sky on a clear day?", "blue", ["green", "yellow"], "natural science", "colours", GRADES_LOW, "On a clear day, the sky is which colour?"),
    ("Which animal can fly?", "bird", ["fish", "cow"], "natural science", "facts", GRADES_LOW, "Which of these animals flies?"),
    ("Which animal lives in water?", "fish", ["horse", "dog"], "natural science", "facts", GRADES_LOW, "Which of these animals has its home in water?"),
    ("Is ice hot or cold?", "cold", ["hot"], "natural science", "facts", GRADES_LOW, "Does ice feel hot or cold?"),
    ("What do bees make?", "honey", ["milk", "bread"], "natural science", "facts", GRADES_LOW, "Bees make which of these?"),
    ("How many sides does a triangle have?", "3", ["4", "5"], "natural science", "shapes", GRADES_LOW, "A triangle has how many sides?"),
    ("Which is a liquid?", "water", ["stone", "wood"], "natural science", "facts", GRADES_HIGH, "Which of these is a liquid?"),
    ("What gas do people breathe in?", "oxygen", ["salt", "iron"], "natural science", "facts", GRADES_HIGH, "Which gas do people take in when they breathe?"),
    ("Which is a planet?", "Mars", ["Moon", "Sun"], "natural science", "facts", GRADES_HIGH, "Which of these is a planet?"),
    ("What is the opposite of hot?", "cold", ["big", "fast"], "language science", "words", GRADES_LOW, "Hot is the opposite of which word?"),
    ("What is the opposite of up?", "down", ["left", "in"], "language science", "words", GRADES_LOW, "Up is the opposite of which word?"),
    ("Which word rhymes with cat?", "hat", ["dog", "cup"], "language science", "words", GRADES_LOW, "Which of these words rhymes with cat?"),
    ("Which word is a noun?", "table", ["quickly", "blue"], "language science", "words", GRADES_HIGH, "Which of these words is a noun?"),
    ("Which word is a verb?", "run", ["chair", "happy"], "language science", "words", GRADES_HIGH, "Which of these words is a verb?"),
    ("What is the opposite of old?", "new", ["tall", "wet"], "language science", "words", GRADES_HIGH, "Old is the opposite of which word?"),
    ("Who puts out fires?", "firefighter", ["baker", "farmer"], "social science", "facts", GRADES_LOW, "Whose job is to put out fires?"),
    ("Where do people buy food?", "shop", ["river", "forest"], "social science", "facts", GRADES_LOW, "Where can people buy food?"),
    ("Who grows food on a farm?", "farmer", ["pilot", "doctor"], "social science", "facts", GRADES_LOW, "Who works on a farm growing food?"),
    ("What do people use to pay?", "money", ["leaves", "sand"], "social science", "economics", GRADES_HIGH, "What do people pay with?"),
    ("Which is a country?", "France", ["Paris", "Nile"], "social science", "geography", GRADES_HIGH, "Which of these is a country?"),
    ("Which is an ocean?", "Pacific", ["Sahara", "Alps"], "social science", "geography", GRADES_HIGH, "Which of these is an ocean?"),
    ("What does a map show?", "places", ["songs", "food"], "social science", "geography", GRADES_HIGH, "A map shows which of these?"),
    ("Where does a doctor work?", "hospital", ["farm", "beach"], "social science", "facts", GRADES_LOW, "In which place does a doctor work?"),
]

PER_SPLIT = {"image": {"train": 72, "test": 24}, "hint": {"train": 48, "test": 12}, "fact": {"train": 6, "test": 2}}


def balanced(rng: random.Random, values, n):
    """n values with each value as often as possible (exactly when len(values) divides n), shuffled."""
    out = [values[i % len(values)] for i in range(n)]
    rng.shuffle(out)
    return out


def pick_grade(rng: random.Random, high_share=0.25):
    return rng.choice(GRADES_HIGH[:3]) if rng.random() < high_share else rng.choice(GRADES_LOW)


def problem(question, choices, answer, hint, subject, topic, category, skill, grade, solution, image_scene):
    assert 2 <= len(choices) <= 4 and 0 <= answer < len(choices) and len(set(choices)) == len(choices)
    return {
        "question": question, "choices": choices, "answer": answer, "hint": hint,
        "image": "image.png" if image_scene else None, "task": "closed choice", "grade": grade,
        "subject": subject, "topic": topic, "category": category, "skill": skill,
        "lecture": LECTURES[topic], "solution": solution,
        "caption": caption(image_scene) if image_scene else None,
        "_scene": image_scene, "_kind": None,
    }


def image_problems(rng: random.Random, kind: str, n: int):
    out = []
    if kind == "img-colour":
        for colour in balanced(rng, COLOUR_NAMES, n):
            sc = scene_single(rng, colour, rng.choice(SHAPES), rng.choice(SIDES))
            out.append(problem("What colour is the shape?", list(COLOUR_NAMES), COLOUR_NAMES.index(colour), "",
                               "natural science", "colours", "Identify colours", "Identify colours", pick_grade(rng),
                               f"The shape in the picture is {colour}.", sc))
    elif kind == "img-shape":
        for shape in balanced(rng, SHAPES, n):
            sc = scene_single(rng, rng.choice(COLOUR_NAMES), shape, rng.choice(SIDES))
            out.append(problem("Which shape is in the picture?", list(SHAPES), SHAPES.index(shape), "",
                               "natural science", "shapes", "Identify shapes", "Identify shapes", pick_grade(rng),
                               f"The picture shows a {shape}.", sc))
    elif kind == "img-count":
        for count in balanced(rng, [1, 2, 3, 4], n):
            shape = rng.choice(SHAPES)
            sc = scene_count(rng, count, rng.choice(COLOUR_NAMES), shape)
            out.append(problem(f"How many {plural(shape)} are there?", ["1", "2", "3", "4"], count - 1, "",
                               "natural science", "counting", "Count shapes", "Count to four", pick_grade(rng),
                               f"There {'is' if count == 1 else 'are'} {count} in the picture.", sc))
    elif kind == "img-left-shape":
        for shape in balanced(rng, SHAPES, n):
            other = rng.choice([s for s in SHAPES if s != shape])
            c1, c2 = rng.sample(COLOUR_NAMES, 2)
            sc = scene_pair(rng, (c1, shape), (c2, other))
            out.append(problem("Which shape is on the left?", list(SHAPES), SHAPES.index(shape), "",
                               "natural science", "position", "Left and right", "Identify left and right",
                               pick_grade(rng), f"The {shape} is on the left.", sc))
    elif kind == "img-relation":
        for side in balanced(rng, SIDES, n):
            ca, cb = rng.sample(COLOUR_NAMES, 2)  # "Is the <ca> shape left or right of the <cb> one?"
            sa, sb = rng.sample(SHAPES, 2)
            sc = scene_pair(rng, (ca, sa), (cb, sb)) if side == "left" else scene_pair(rng, (cb, sb), (ca, sa))
            out.append(problem(f"Is the {ca} shape left or right of the {cb} one?", list(SIDES), SIDES.index(side),
                               "", "natural science", "position", "Left and right", "Compare positions",
                               pick_grade(rng), f"The {ca} shape is {side} of the {cb} one.", sc))
    elif kind == "img-right-colour":
        for colour in balanced(rng, COLOUR_NAMES, n):
            other = rng.choice([c for c in COLOUR_NAMES if c != colour])
            s1, s2 = rng.sample(SHAPES, 2)
            sc = scene_pair(rng, (other, s1), (colour, s2))
            out.append(problem("What colour is the shape on the right?", list(COLOUR_NAMES),
                               COLOUR_NAMES.index(colour), "", "natural science", "colours", "Identify colours",
                               "Colours and positions", pick_grade(rng), f"The shape on the right is {colour}.", sc))
    for p in out:
        p["_kind"] = kind
    return out


def hint_problems(rng: random.Random, kind: str, n: int, split: str):
    pool = HINT_POOLS[split]
    out = []
    if kind == "hint-colour":
        for colour in balanced(rng, COLOUR_NAMES, n):
            obj = rng.choice(pool["objects"])
            out.append(problem(f"What colour is the {obj}?", list(COLOUR_NAMES), COLOUR_NAMES.index(colour),
                               f"The {obj} is {colour}.", "natural science", "reading", "Read for details",
                               "Find the colour", pick_grade(rng), f"The text says the {obj} is {colour}.", None))
    elif kind == "hint-count":
        for count in balanced(rng, [1, 2, 3, 4], n):
            name, thing = rng.choice(pool["names"]), rng.choice(HINT_THINGS)
            hint = f"{name} has {count} {thing[:-1] if count == 1 else thing}."
            out.append(problem(f"How many {thing} does {name} have?", ["1", "2", "3", "4"], count - 1, hint,
                               "social science", "economics", "Read for details", "Find the number",
                               pick_grade(rng), f"The text says {name} has {count}.", None))
    elif kind == "hint-side":
        for side in balanced(rng, SIDES, n):
            a, b = rng.choice(pool["places"])
            if rng.random() < 0.5:
                a, b = b, a
            out.append(problem(f"Is the {a} left or right of the {b}?", list(SIDES), SIDES.index(side),
                               f"The {a} is {side} of the {b}.", "social science", "geography", "Read a map",
                               "Find the side", pick_grade(rng), f"The text says the {a} is {side} of the {b}.", None))
    for p in out:
        p["_kind"] = kind
    return out


def fact_problems(rng: random.Random, fact, n: int, split: str):
    train_question, right, wrong, subject, topic, grades, test_question = fact
    question = test_question if split == "test" else train_question
    out = []
    for _ in range(n):
        choices = [right] + list(wrong)
        rng.shuffle(choices)
        p = problem(question, choices, choices.index(right), "", subject, topic, "Recall facts", "Recall facts",
                    rng.choice(grades), f"The answer is {right}.", None)
        p["_kind"] = "fact"
        out.append(p)
    return out


def build_dataset(seed: int):
    """All problems of both splits, pids assigned after a shuffle (ScienceQA's pids are numbers as strings)."""
    problems = []
    for split, salt in (("train", 101), ("test", 202)):  # the test split's pictures come from their own stream
        rng = random.Random(seed * 1000 + salt)
        batch = []
        for kind in IMAGE_KINDS:
            batch += image_problems(rng, kind, PER_SPLIT["image"][split])
        for kind in HINT_KINDS:
            batch += hint_problems(rng, kind, PER_SPLIT["hint"][split], split)
        for fact in FACTS:
            batch += fact_problems(rng, fact, PER_SPLIT["fact"][split], split)
        for p in batch:
            p["split"] = split
        problems += batch
    rng = random.Random(seed * 1000 + 303)
    rng.shuffle(problems)
    out = {}
    for i, p in enumerate(problems, start=1):
        out[str(i)] = p
    return out


def write_dataset(problems: dict, seed: int, out_dir: Path = DATA_DIR):
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    hashes = {}
    for pid, p in problems.items():
        sc = p["_scene"]
        if sc is None:
            continue
        rng = random.Random(f"{seed}:{p['split']}:{pid}:pixels")  # colour jitter of this picture
        data = png_bytes(render(sc["objects"], rng))
        h = hashlib.sha256(data).hexdigest()
        assert h not in hashes, f"pictures of problems {hashes.get(h)} and {pid} are identical"
        hashes[h] = pid
        d = out_dir / "images" / p["split"] / pid
        d.mkdir(parents=True)
        (d / "image.png").write_bytes(data)
    public = {pid: {k: v for k, v in p.items() if not k.startswith("_")} for pid, p in problems.items()}
    order = ["question", "choices", "answer", "hint", "image", "task", "grade", "subject", "topic", "category",
             "skill", "lecture", "solution", "split", "caption"]
    public = {pid: {k: p[k] for k in order} for pid, p in public.items()}
    (out_dir / "problems.json").write_text(json.dumps(public, indent=4, ensure_ascii=False) + "\n")
    splits = {"train": [pid for pid, p in problems.items() if p["split"] == "train"], "val": [],
              "test": [pid for pid, p in problems.items() if p["split"] == "test"]}
    splits["trainval"] = list(splits["train"])
    (out_dir / "pid_splits.json").write_text(json.dumps(splits, indent=4) + "\n")


def dataset_stats(problems: dict):
    def letter_share(ps):
        counts = {}
        for p in ps:
            counts[p["answer"]] = counts.get(p["answer"], 0) + 1
        return max(counts.values()) / len(ps)

    stats = {"problems": {}, "kinds": {}, "categories": {}, "majorityLetterShare": {}}
    for split in ("train", "test"):
        ps = [p for p in problems.values() if p["split"] == split]
        stats["problems"][split] = len(ps)
        kinds = {}
        for p in ps:
            kinds[p["_kind"]] = kinds.get(p["_kind"], 0) + 1
        stats["kinds"][split] = kinds
        cat = {
            "NAT": sum(p["subject"] == "natural science" for p in ps),
            "SOC": sum(p["subject"] == "social science" for p in ps),
            "LAN": sum(p["subject"] == "language science" for p in ps),
            "TXT": sum(bool(p["hint"]) for p in ps),
            "IMG": sum(bool(p["image"]) for p in ps),
            "NO": sum(not p["hint"] and not p["image"] for p in ps),
            "G1-6": sum(p["grade"] in GRADES_LOW for p in ps),
            "G7-12": sum(p["grade"] in GRADES_HIGH for p in ps),
        }
        assert all(cat.values()), f"{split}: an empty category: {cat}"
        stats["categories"][split] = cat
        # For every image question text, the share of its most common answer: what text alone can reach.
        by_text = {}
        for p in ps:
            if p["image"]:
                by_text.setdefault(p["_kind"], []).append(p)
        stats["majorityLetterShare"][split] = {k: round(letter_share(v), 3) for k, v in by_text.items()}
    return stats


def alpaca_text(p):
    letters = "ABCD"
    options = " ".join(f"({letters[i]}) {c}" for i, c in enumerate(p["choices"]))
    instruction = f"Question: {p['question']}\nContext: {p['hint'] or 'N/A'}\nOptions: {options}"
    prompt = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
              f"request.\n\n### Instruction:\n{instruction}\n\n### Response:")
    return prompt + f"The answer is ({letters[p['answer']]})."


def prompt_lengths(problems: dict):
    """Longest prompt + answer in tokens of the starter tokenizer (+ BOS and EOS), and the longest in words."""
    words = max(len((p["question"] + " " + p["hint"] + " " + " ".join(p["choices"])).split()) for p in problems.values())
    out = {"maxQuestionHintOptionsWords": words, "maxTokens": None}
    if STARTER_TOKENIZER.exists():
        try:
            from tokenizers import Tokenizer
        except ImportError:
            return out
        tok = Tokenizer.from_file(str(STARTER_TOKENIZER))
        n = max(len(tok.encode(alpaca_text(p), add_special_tokens=False).ids) + 2 for p in problems.values())
        out["maxTokens"] = n
        assert n <= 128, f"a demo prompt takes {n} tokens; the starter model has 128 positions"
    return out


# ---------------------------------------------------------------------------------------------------------------
# The tiny CLIP

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def to_pixels(imgs) -> "torch.Tensor":
    """PIL images (SIZE x SIZE) -> CLIP-normalised [N, 3, SIZE, SIZE], as CLIPImageProcessor does at this size."""
    arr = np.stack([np.asarray(im, dtype=np.uint8) for im in imgs])
    x = torch.from_numpy(arr).permute(0, 3, 1, 2).float() * (1 / 255)
    return (x - torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)) / torch.tensor(CLIP_STD).view(1, 3, 1, 1)


def build_vocab():
    words = sorted({"a", "of", "on", "the", "left", "right", *COLOUR_NAMES, *SHAPES, *map(plural, SHAPES), *COUNT_WORDS})
    return {"<pad>": 0, "<bos>": 1, "<unk>": 2, "<eos>": 3, **{w: i + 4 for i, w in enumerate(words)}}


def encode_text(texts, vocab, length):
    ids = torch.zeros(len(texts), length, dtype=torch.long)
    mask = torch.zeros(len(texts), length, dtype=torch.long)
    for i, t in enumerate(texts):
        seq = [vocab["<bos>"]] + [vocab.get(w, vocab["<unk>"]) for w in t.split()] + [vocab["<eos>"]]
        assert len(seq) <= length
        ids[i, : len(seq)] = torch.tensor(seq)
        mask[i, : len(seq)] = 1
    return ids, mask


def make_model(vocab, text_len, args):
    from transformers import CLIPConfig, CLIPModel

    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=text_len, hidden_act="quick_gelu",
                         pad_token_id=vocab["<pad>"], bos_token_id=vocab["<bos>"], eos_token_id=vocab["<eos>"],
                         projection_dim=args.proj),
        vision_config=dict(hidden_size=args.width, intermediate_size=args.width * 4, num_hidden_layers=args.layers,
                           num_attention_heads=args.heads, image_size=SIZE, patch_size=args.patch,
                           num_channels=3, hidden_act="quick_gelu", projection_dim=args.proj),
        projection_dim=args.proj,
    )
    model = CLIPModel(config)
    init_positions(model, args.pos_scale)
    return model


def sincos_2d(grid: int, dim: int) -> torch.Tensor:
    """[grid*grid, dim] fixed 2-D sine-cosine position codes (as in MAE): half the values code x, half y."""
    assert dim % 4 == 0
    q = dim // 4
    omega = 1.0 / (100.0 ** (torch.arange(q, dtype=torch.float64) / q))
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float64), torch.arange(grid, dtype=torch.float64), indexing="ij")
    def code(v):
        t = v.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([torch.sin(t), torch.cos(t)], 1)
    return torch.cat([code(xs), code(ys)], 1).float()


@no_grad
def init_positions(model, scale):
    """Start the vision tower's (learned) position embeddings from 2-D sine-cosine codes, scaled to `scale` times
    the typical size of a patch embedding: with CLIP's default init (std 0.02, far below the patch features) a
    tiny tower takes many steps to find out where anything is."""
    emb = model.vision_model.embeddings
    grid = emb.image_size // emb.patch_size
    codes = sincos_2d(grid, emb.embed_dim)
    with torch.random.fork_rng():
        probe = torch.rand(64, 3, emb.image_size, emb.image_size) * 2 - 1
    size = emb.patch_embedding(probe).flatten(2).std().item()
    pos = emb.position_embedding.weight
    pos[0].zero_()
    pos[1:] = codes * (scale * size / codes.std().item())


def batch_of_scenes(rng: random.Random, n):
    scenes = [sc for _ in range(n // 2) for sc in random_twins(rng)]
    imgs = [render(sc["objects"], rng) for sc in scenes]
    caps = [caption(sc) for sc in scenes]
    return scenes, imgs, caps, caps


def clip_loss(img_emb, txt_emb, logit_scale, keys):
    img_emb = F.normalize(img_emb, dim=-1)
    txt_emb = F.normalize(txt_emb, dim=-1)
    logits = logit_scale.exp().clamp(max=100) * img_emb @ txt_emb.t()
    # Pictures with the same scene description are all matches of each other's captions.
    same = torch.tensor([[a == b for b in keys] for a in keys], dtype=torch.float32)
    target = same / same.sum(1, keepdim=True)
    return 0.5 * (torch.sum(-target * F.log_softmax(logits, 1), 1).mean()
                  + torch.sum(-target * F.log_softmax(logits.t(), 1), 1).mean())


def train_clip(model, vocab, text_len, args, log):
    rng = random.Random(args.seed * 1000 + 404)  # pre-training pictures: their own stream
    params_decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    params_other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    opt = torch.optim.AdamW([{"params": params_decay, "weight_decay": 0.05}, {"params": params_other, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-6)
    warmup = max(1, args.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps))))
    losses = []
    model.train()
    started = time.time()
    for step in range(args.steps):
        _, imgs, caps, keys = batch_of_scenes(rng, args.batch)
        pixels = to_pixels(imgs)
        ids, mask = encode_text(caps, vocab, text_len)
        out = model(input_ids=ids, attention_mask=mask, pixel_values=pixels)
        loss = clip_loss(out.image_embeds, out.text_embeds, model.logit_scale, keys)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 50 == 0 or step == args.steps - 1:
            log(f"step {step:4d}  loss {loss.item():.3f}  scale {model.logit_scale.exp().item():.1f}  "
                f"{time.time() - started:.0f}s")
    return losses


# ---------------------------------------------------------------------------------------------------------------
# Checks: nearest-caption retrieval and linear probes on held-out rendered pictures


@no_grad
def image_embeds(model, imgs, bs=256):
    model.eval()
    rows = [model.get_image_features(pixel_values=to_pixels(imgs[i:i + bs])) for i in range(0, len(imgs), bs)]
    rows = [r.pooler_output if hasattr(r, "pooler_output") else r for r in rows]
    return torch.cat(rows)


@no_grad
def text_embeds(model, texts, vocab, text_len):
    model.eval()
    ids, mask = encode_text(texts, vocab, text_len)
    out = model.get_text_features(input_ids=ids, attention_mask=mask)
    return out.pooler_output if hasattr(out, "pooler_output") else out


def heldout_scenes(seed, n_each):
    rng = random.Random(seed * 1000 + 505)
    out = {"single": [], "count": [], "pair": []}
    for _ in range(n_each):
        out["single"].append(scene_single(rng, rng.choice(COLOUR_NAMES), rng.choice(SHAPES), rng.choice(SIDES)))
        out["count"].append(scene_count(rng, rng.randint(1, 4), rng.choice(COLOUR_NAMES), rng.choice(SHAPES)))
        c1, c2 = rng.sample(COLOUR_NAMES, 2)
        s1, s2 = rng.sample(SHAPES, 2)
        out["pair"].append(scene_pair(rng, (c1, s1), (c2, s2)))
    imgs = {k: [render(sc["objects"], rng) for sc in v] for k, v in out.items()}
    return out, imgs


def all_captions(kind):
    if kind == "single":
        return [{"kind": "single", "colour": c, "shape": s, "side": d} for c in COLOUR_NAMES for s in SHAPES for d in SIDES]
    if kind == "count":
        return [{"kind": "count", "count": n, "colour": c, "shape": s} for n in range(1, 5) for c in COLOUR_NAMES for s in SHAPES]
    return [{"kind": "pair", "left": (c1, s1), "right": (c2, s2)} for c1 in COLOUR_NAMES for c2 in COLOUR_NAMES
            for s1 in SHAPES for s2 in SHAPES if c1 != c2 and s1 != s2]


def retrieval(model, vocab, text_len, scenes, imgs):
    res = {}
    for kind in ("single", "count", "pair"):
        cands = all_captions(kind)
        temb = F.normalize(text_embeds(model, [caption(c) for c in cands], vocab, text_len), dim=-1)
        iemb = F.normalize(image_embeds(model, imgs[kind]), dim=-1)
        best = (iemb @ temb.t()).argmax(1).tolist()
        truth, pred = scenes[kind], [cands[b] for b in best]
        acc = lambda f: round(sum(f(t, p) for t, p in zip(truth, pred)) / len(truth), 3)
        if kind == "single":
            res["single"] = {"caption": acc(lambda t, p: caption(t) == caption(p)),
                             "colour": acc(lambda t, p: t["colour"] == p["colour"]),
                             "shape": acc(lambda t, p: t["shape"] == p["shape"]),
                             "side": acc(lambda t, p: t["side"] == p["side"])}
        elif kind == "count":
            res["count"] = {"caption": acc(lambda t, p: caption(t) == caption(p)),
                            "count": acc(lambda t, p: t["count"] == p["count"]),
                            "colour": acc(lambda t, p: t["colour"] == p["colour"]),
                            "shape": acc(lambda t, p: t["shape"] == p["shape"])}
        else:
            # left/right alone: the true caption against the same two shapes swapped
            swapped = [{"kind": "pair", "left": t["right"], "right": t["left"]} for t in truth]
            tt = F.normalize(text_embeds(model, [caption(t) for t in truth], vocab, text_len), dim=-1)
            ts = F.normalize(text_embeds(model, [caption(s) for s in swapped], vocab, text_len), dim=-1)
            lr = ((iemb * tt).sum(1) > (iemb * ts).sum(1)).float().mean().item()
            res["pair"] = {"caption": acc(lambda t, p: caption(t) == caption(p)),
                           "leftRightOfTheTwo": round(lr, 3),
                           "leftColour": acc(lambda t, p: t["left"][0] == p["left"][0]),
                           "leftShape": acc(lambda t, p: t["left"][1] == p["left"][1]),
                           "rightColour": acc(lambda t, p: t["right"][0] == p["right"][0]),
                           "rightShape": acc(lambda t, p: t["right"][1] == p["right"][1])}
    return res


def linear_probe(xtr, ytr, xte, yte, classes, seed, steps=300):
    """Multinomial logistic regression on standardised features (full-batch Adam, weight decay)."""
    g = torch.Generator().manual_seed(seed)
    mu, sd = xtr.mean(0, keepdim=True), xtr.std(0, keepdim=True) + 1e-6
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    w = (torch.randn(xtr.shape[1], classes, generator=g) * 0.01).requires_grad_()
    b = torch.zeros(classes, requires_grad=True)
    opt = torch.optim.Adam([w, b], lr=0.05)
    ytr_t, yte_t = torch.tensor(ytr), torch.tensor(yte)
    for _ in range(steps):
        loss = F.cross_entropy(xtr @ w + b, ytr_t) + 1e-3 * (w ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return round(((xte @ w + b).argmax(1) == yte_t).float().mean().item(), 3)


def probes(model, scenes, imgs, seed):
    emb = {k: image_embeds(model, v) for k, v in imgs.items()}
    half = {k: len(v) // 2 for k, v in scenes.items()}

    def probe(kind, label, classes):
        ys = [label(sc) for sc in scenes[kind]]
        h = half[kind]
        return linear_probe(emb[kind][:h], ys[:h], emb[kind][h:], ys[h:], classes, seed)

    return {
        "single.colour": probe("single", lambda s: COLOUR_NAMES.index(s["colour"]), 4),
        "single.shape": probe("single", lambda s: SHAPES.index(s["shape"]), 3),
        "single.side": probe("single", lambda s: SIDES.index(s["side"]), 2),
        "count.count": probe("count", lambda s: s["count"] - 1, 4),
        "pair.leftColour": probe("pair", lambda s: COLOUR_NAMES.index(s["left"][0]), 4),
        "pair.leftShape": probe("pair", lambda s: SHAPES.index(s["left"][1]), 3),
        "pair.rightColour": probe("pair", lambda s: COLOUR_NAMES.index(s["right"][0]), 4),
    }


def demo_probes(model, problems, seed):
    """Per image question kind: a linear probe from the tower's image_embeds of the demo's train pictures to the
    answer index, scored on the test pictures (what a model reading only the image feature could reach)."""
    out = {}
    for kind in IMAGE_KINDS:
        rows = {s: [(p, Image.open(DATA_DIR / "images" / s / pid / "image.png").convert("RGB"))
                    for pid, p in problems.items() if p["_kind"] == kind and p["split"] == s] for s in ("train", "test")}
        xtr = image_embeds(model, [im for _, im in rows["train"]])
        xte = image_embeds(model, [im for _, im in rows["test"]])
        if kind == "img-relation":  # the answer also depends on which colours the question names: probe "colour on the left"
            lab = lambda p: COLOUR_NAMES.index(p["_scene"]["left"][0])
            classes = 4
        else:
            lab = lambda p: p["answer"]
            classes = len(rows["train"][0][0]["choices"])
        out[kind] = linear_probe(xtr, [lab(p) for p, _ in rows["train"]], xte, [lab(p) for p, _ in rows["test"]], classes, seed)
    return out


# ---------------------------------------------------------------------------------------------------------------


def folder_size(d: Path) -> int:
    return sum(f.stat().st_size for f in d.rglob("*") if f.is_file())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=1200)
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--proj", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--pos-scale", type=float, default=1.0)
    ap.add_argument("--dataset-only", metavar="DIR", help="write only the demo dataset, into DIR (needs Pillow alone)")
    args = ap.parse_args()
    if args.dataset_only:
        write_dataset(build_dataset(args.seed), args.seed, Path(args.dataset_only))
        return
    if torch is None:
        sys.exit("building the tower needs torch, numpy and transformers (pip install torch transformers safetensors)")
    defaults = {a.dest: a.default for a in ap._actions if a.dest not in ("help", "seed", "dataset_only")}
    command = COMMAND.format(seed=args.seed) + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k in defaults and v != defaults[k])

    t0 = time.time()
    log = lambda s: print(f"[{time.time() - t0:6.1f}s] {s}", flush=True)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

    # 1. the demo dataset
    problems = build_dataset(args.seed)
    write_dataset(problems, args.seed)
    stats = dataset_stats(problems)
    stats["lengths"] = prompt_lengths(problems)
    stats["bytes"] = folder_size(DATA_DIR)
    log(f"dataset: {stats['problems']}  {stats['kinds']}  lengths {stats['lengths']}")
    data_seconds = time.time() - t0

    # 2. the tiny CLIP
    vocab = build_vocab()
    text_len = 16
    model = make_model(vocab, text_len, args)
    n_params = sum(p.numel() for p in model.parameters())
    n_vision = sum(p.numel() for n, p in model.named_parameters() if n.startswith(("vision_model.", "visual_projection.")))
    log(f"CLIP: {n_params} parameters ({n_vision} in the vision tower and its projection)")
    t1 = time.time()
    losses = train_clip(model, vocab, text_len, args, log)
    train_seconds = time.time() - t1

    scenes, imgs = heldout_scenes(args.seed, 600)
    ret = retrieval(model, vocab, text_len, scenes, imgs)
    prb = probes(model, scenes, imgs, args.seed)
    dprb = demo_probes(model, problems, args.seed)
    log(f"retrieval {json.dumps(ret)}")
    log(f"probes {json.dumps(prb)}")
    log(f"demo probes {json.dumps(dprb)}")

    # 3. save
    from transformers import CLIPImageProcessor

    if VISION_DIR.exists():
        shutil.rmtree(VISION_DIR)
    VISION_DIR.mkdir(parents=True)
    model.save_pretrained(VISION_DIR, safe_serialization=True)
    CLIPImageProcessor(size={"shortest_edge": SIZE}, crop_size={"height": SIZE, "width": SIZE}).save_pretrained(VISION_DIR)
    (VISION_DIR / "text-vocab.json").write_text(json.dumps(
        {"note": "word-level vocabulary of the text tower: ids = [<bos>] + one id per space-separated word + [<eos>], "
                 f"padded with <pad> to {text_len}; not a transformers tokenizer", "max_length": text_len,
         "vocab": vocab}, indent=2) + "\n")

    # 4. final check: the folder loads as transformers' vision tower and processor and gives the trained features
    check = final_check(model, problems)
    log(f"check {json.dumps(check)}")

    report = {
        "command": command,
        "seed": args.seed,
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                     "transformers": __import__("transformers").__version__, "pillow": Image.__version__,
                     "numpy": np.__version__},
        "threads": args.threads,
        "renderer": {"imageSize": SIZE, "supersample": SUPER, "colours": COLOURS, "shapes": SHAPES, "counts": [1, 2, 3, 4]},
        "dataset": stats,
        "clip": {
            "vision": {"hiddenSize": args.width, "intermediateSize": args.width * 4, "layers": args.layers,
                       "heads": args.heads, "patchSize": args.patch, "imageSize": SIZE, "projectionDim": args.proj,
                       "positionInit": f"2-D sine-cosine codes at {args.pos_scale} x the patch embeddings' size"},
            "text": {"hiddenSize": 64, "intermediateSize": 256, "layers": 2, "heads": 2, "vocab": len(vocab),
                     "maxLength": text_len},
            "parameters": n_params,
            "visionParameters": n_vision,
            "dtype": "float32",
        },
        "training": {"steps": args.steps, "batch": args.batch, "pictures": args.steps * args.batch, "lr": args.lr,
                     "schedule": "linear warm-up (5%) then cosine", "optimizer": "AdamW (0.9, 0.98), wd 0.05",
                     "loss": "symmetric InfoNCE; same scene description = match", "lossFirst": round(losses[0], 4),
                     "lossLast": round(losses[-1], 4),
                     "lossLast50Mean": round(float(np.mean(losses[-50:])), 4),
                     "logitScale": round(model.logit_scale.exp().item(), 3)},
        "heldout": {"picturesPerKind": 600, "note": "rendered from a stream of their own (not train, not demo)"},
        "retrieval": ret,
        "linearProbe": {"note": "logistic regression on image_embeds, 300 train / 300 test held-out pictures per kind",
                        **prb},
        "demoProbe": {"note": "logistic regression on image_embeds of the demo's train pictures, scored on its test "
                              "pictures; img-relation probes the colour on the left", **dprb},
        "check": check,
        "seconds": {"dataset": round(data_seconds, 1), "training": round(train_seconds, 1),
                    "total": round(time.time() - t0, 1)},
    }
    (VISION_DIR / "build-report.json").write_text(json.dumps(report, indent=2) + "\n")
    (VISION_DIR / "MODEL_CARD.md").write_text(model_card(report))
    report["bytes"] = {"vision": folder_size(VISION_DIR), "scienceqa-demo": folder_size(DATA_DIR)}
    (VISION_DIR / "build-report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"sizes {report['bytes']}; done in {time.time() - t0:.0f}s")


@no_grad
def final_check(model, problems):
    from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    tower = CLIPVisionModelWithProjection.from_pretrained(VISION_DIR).eval()
    proc = CLIPImageProcessor.from_pretrained(VISION_DIR)
    cfg = json.loads((VISION_DIR / "config.json").read_text())
    assert cfg["model_type"] == "clip", cfg["model_type"]
    pids = [pid for pid, p in problems.items() if p["image"] and p["split"] == "test"][:16]
    imgs = [Image.open(DATA_DIR / "images" / "test" / pid / "image.png").convert("RGB") for pid in pids]
    px = proc(images=imgs, return_tensors="pt")["pixel_values"]
    mine = to_pixels(imgs)
    pixel_diff = (px - mine).abs().max().item()
    a = tower(pixel_values=px).image_embeds
    b = image_embeds(model, imgs)
    feat_diff = (a - b).abs().max().item()
    assert pixel_diff < 1e-4 and feat_diff < 1e-4, (pixel_diff, feat_diff)
    return {"loads": "CLIPVisionModelWithProjection + CLIPImageProcessor", "pictures": len(pids),
            "processorPixelMaxDiff": float(f"{pixel_diff:.2e}"), "imageEmbedsMaxDiff": float(f"{feat_diff:.2e}"),
            "imageEmbedsDim": int(a.shape[1])}


def model_card(r) -> str:
    c, t, ds = r["clip"], r["training"], r["dataset"]
    ret, prb, dp = r["retrieval"], r["linearProbe"], r["demoProbe"]
    v = c["vision"]
    kinds = ", ".join(f"{k} {n}" for k, n in sorted(ds["kinds"]["train"].items()))
    kinds_test = ", ".join(f"{k} {n}" for k, n in sorted(ds["kinds"]["test"].items()))
    return f"""# Starter vision tower: a tiny CLIP trained from scratch on synthetic pictures

A {c['parameters']:,}-parameter CLIP (`CLIPModel`, `model_type` "clip") made for Adapter Studio's multi-modal
LLaMA-Adapter demo, so the idea works on a fresh clone with no download. The app uses only its vision half
(`CLIPVisionModelWithProjection`, {c['visionParameters']:,} parameters): the {v['projectionDim']}-value `image_embeds`
of a picture is the frozen image feature added to the adaption prompts. It knows one tiny world — one to four
circles, squares or triangles in red, green, blue or yellow on a light background — and nothing else. A
demonstration model, not a general image encoder.

Every number below was written by the build (`build-report.json` holds them all).

## How it was built

```
{r['command']}
```

(`tools/starter/vision/build_vision_starter.py`; torch {r['versions']['torch']}, transformers
{r['versions']['transformers']}, {r['threads']} CPU threads, {r['seconds']['total']} s in all.)

- **Pictures**: {v['imageSize']}x{v['imageSize']} RGB, drawn with PIL at {r['renderer']['supersample']}x and
  downsampled. Three scene kinds: one shape in the left or right half ("a red circle on the left"); one to four
  alike shapes ("three blue squares"); two shapes differing in colour and shape, one in each half ("a yellow
  triangle left of a green square"). Colours and background carry a little random jitter.
- **Training**: CLIP's symmetric InfoNCE on picture/caption pairs, {t['steps']} steps of {t['batch']}
  ({t['pictures']:,} freshly rendered pictures, from a random stream used for nothing else: never the demo's
  pictures); pictures in a batch with the same scene description all count as matches. Each batch is made of
  twins, a scene and a hard negative that a bag of attributes would not tell apart (the shape on the other side,
  the same shapes in another number, the two shapes swapped). {t['optimizer']}, lr
  {t['lr']}, {t['schedule']}. Loss {t['lossFirst']} at the first step, {t['lossLast50Mean']} over the last 50
  (learned temperature: logit scale {t['logitScale']}). Deterministic for a seed on one machine (seeded
  generators, `torch.use_deterministic_algorithms(True)`, fixed thread count).
- **Vision tower**: ViT, hidden {v['hiddenSize']}, {v['layers']} layers, {v['heads']} heads, MLP
  {v['intermediateSize']}, patch {v['patchSize']} ({(v['imageSize'] // v['patchSize']) ** 2} patches + class token),
  `quick_gelu`, projection to {v['projectionDim']}; its learned position embeddings start from 2-D sine-cosine
  codes about as large as the patch embeddings (in a trial run from CLIP's default init, std 0.02, several times
  smaller than the patch embeddings, and without twin batches, the tower was still at chance on left and right
  after 900 steps of 128). **Text tower**: hidden {c['text']['hiddenSize']},
  {c['text']['layers']} layers, a word-level vocabulary of {c['text']['vocab']} ids (`text-vocab.json`; not a
  transformers tokenizer), captions of at most {c['text']['maxLength']} ids. Weights in float32.
- **Pre-processing**: `preprocessor_config.json` is what `CLIPImageProcessor(size={{"shortest_edge": {v['imageSize']}}},
  crop_size={{"height": {v['imageSize']}, "width": {v['imageSize']}}})` saves: OpenAI CLIP's mean/std, bicubic; at
  {v['imageSize']}x{v['imageSize']} the resize and crop change nothing. The build checks that the folder loads with
  `CLIPVisionModelWithProjection.from_pretrained` and `CLIPImageProcessor.from_pretrained` and gives the trained
  model's features (largest difference {r['check']['imageEmbedsMaxDiff']}).

## How well it sees

On {r['heldout']['picturesPerKind']} held-out pictures of each kind (rendered from a stream of their own):

| check | nearest caption | linear probe on `image_embeds` |
| --- | --- | --- |
| one shape: colour | {ret['single']['colour']} | {prb['single.colour']} |
| one shape: shape | {ret['single']['shape']} | {prb['single.shape']} |
| one shape: side | {ret['single']['side']} | {prb['single.side']} |
| one shape: whole caption (24) | {ret['single']['caption']} | |
| alike shapes: count (1-4) | {ret['count']['count']} | {prb['count.count']} |
| alike shapes: whole caption (48) | {ret['count']['caption']} | |
| two shapes: colour on the left | {ret['pair']['leftColour']} | {prb['pair.leftColour']} |
| two shapes: shape on the left | {ret['pair']['leftShape']} | {prb['pair.leftShape']} |
| two shapes: colour on the right | {ret['pair']['rightColour']} | {prb['pair.rightColour']} |
| two shapes: left/right (true caption vs the two swapped) | {ret['pair']['leftRightOfTheTwo']} | |
| two shapes: whole caption (72) | {ret['pair']['caption']} | |

Nearest caption: the best of every caption of that kind (24, 48 or 72). Linear probe: logistic regression
trained on half of the pictures, scored on the other half (chance: 0.25 for colour and count, 0.33 for shape).

On the demo dataset (`assets/starter/scienceqa-demo`), a linear probe from `image_embeds` of its train pictures
to the answer, scored on its test pictures: {', '.join(f'{k} {a}' for k, a in dp.items() if k != 'note')}
(img-relation: the colour on the left, since that answer also depends on the colours the question names).

## The demo dataset it goes with

`assets/starter/scienceqa-demo/`, made by the same script in ScienceQA's layout (`problems.json`,
`pid_splits.json`, `images/<split>/<pid>/image.png`, plus a `caption` per problem describing its picture):
{ds['problems']['train']} train and {ds['problems']['test']} test problems. Train: {kinds}. Test: {kinds_test}.
Image questions ("What colour is the shape?", "How many circles are there?", "Which shape is on the left?",
"Is the red shape left or right of the blue one?", "What colour is the shape on the right?", "Which shape is in
the picture?") can be answered only from the picture: each question text goes with every answer, and the answers
are balanced, so text alone reaches about 1 / number of choices. Hint questions have the answer in the hint;
fact questions always have the same answer. Test pictures are new renders (other positions, sizes, jitter), and no
test question repeats a training one: test hint questions name other objects, people and places, and test fact
questions ask the trained facts in other words.

## Licence

Apache-2.0, as the project. Made entirely from synthetic pictures and templated captions generated by the build
script: no external images, text or weights.
"""


if __name__ == "__main__":
    main()
