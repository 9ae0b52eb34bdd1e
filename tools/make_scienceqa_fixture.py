"""Writes the image / parquet / ScienceQA fixtures under test/fixtures/ and the reference ScienceQA scores.

  test/fixtures/scienceqa/               ScienceQA's published layout, 12 made-up problems:
      problems.json                        keyed by pid, every field the real file has
      pid_splits.json                      train / val / test / minitrain / minival / minitest / trainval
      images/<split>/<pid>/image.png       tiny PNGs (the problems whose "image" is "image.png")
      results.json                         {"results": {pid: choice index}} for the test split (-1 = unparseable)
      results-alt.json                     another model's results (7 of 8 right)
      outputs.json                         greedy outputs per test pid, as a model might write them
      expected.json                        what the scorer must print for results.json, the choice each output
                                           parses to, and Python's "{:.2f}" of awkward floats
  test/fixtures/scienceqa-parquet/data/  the same problems as Hugging Face's parquet copy (no pids; image as a
                                           struct {bytes, path}; splits train / validation / test by file name)
  test/fixtures/parquet/                 text instruction datasets as parquet: snappy, zstd and gzip files with
                                           several row groups, a folder of shards, a conversation file, one with a
                                           bad row (row group 1, row 1) and a truncated file
  test/fixtures/images/                  LLaVA-style JSON and Alpaca JSONL with image paths; bad images
                                           (truncated PNG, text named .png, a 50000 x 50000 PNG header)

The reference scores follow the logic of ScienceQA's tools/evaluate_acc.py (lupantech/ScienceQA) in plain Python
(no pandas here): the test split is the problems whose "split" is "test"; TXT = non-empty hint, IMG = an image,
NO = neither; NAT/SOC/LAN by subject; G1-6 / G7-12 by grade; each accuracy is correct / total * 100 formatted
"{:.2f}"; the average divides by the number of results (the official script asserts 4241 of them; this fixture
has 8; with that assert removed, the official script itself, run once with pandas, printed the same tables).
Answer parsing is the one of ScienceQA's models/run_gpt3.py (exactly one match of
r"The answer is ([A-Z])." whose letter is a choice), with the parentheses of LLaMA-Adapter's figure allowed.

Rerun (a second):  python3 tools/make_scienceqa_fixture.py
Needs pyarrow and pillow.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent / "test" / "fixtures"
SQA = ROOT / "scienceqa"
SQA_PARQUET = ROOT / "scienceqa-parquet"
PARQUET = ROOT / "parquet"
IMAGES = ROOT / "images"

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def png(width: int, height: int, color: tuple[int, ...], mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (width, height), color).save(out, format="PNG")
    return out.getvalue()


def jpeg(width: int, height: int, color: tuple[int, int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="JPEG", quality=90)
    return out.getvalue()


def problem(pid, split, question, choices, answer, hint, image, subject, grade, topic, category, skill, task="closed choice"):
    return pid, {
        "question": question,
        "choices": choices,
        "answer": answer,
        "hint": hint,
        "image": "image.png" if image else None,
        "task": task,
        "grade": grade,
        "subject": subject,
        "topic": topic,
        "category": category,
        "skill": skill,
        "lecture": f"A lecture about {topic}.\nIt has two lines.",
        "solution": f"The solution to problem {pid}.",
        "split": split,
    }


PROBLEMS = dict(
    [
        problem("1", "train", "Which animal is a fish?", ["trout", "robin"], 0, "", True, "natural science", "grade2", "biology", "Classify animals", "ab1"),
        problem("2", "train", "Which word is a noun?", ["run", "table", "quickly"], 1, "Nouns name things.", False, "language science", "grade3", "grammar", "Parts of speech", "ab2"),
        problem("3", "train", "Which state is farthest north?", ["Texas", "Maine", "Ohio", "Utah"], 1, "", True, "social science", "grade4", "geography", "States", "ab3"),
        problem("4", "val", "What is the boiling point of water at sea level?", ["100 C", "50 C"], 0, "Use Celsius.", False, "natural science", "grade8", "physics", "Heat", "ab4"),
        problem("5", "test", "Which animal has feathers?", ["cat", "sparrow", "frog"], 1, "", True, "natural science", "grade1", "biology", "Classify animals", "ab1"),
        problem("6", "test", "Which is a compound sentence?", ["I ran.", "I ran, and she walked."], 1, "A compound sentence has two clauses.", False, "language science", "grade7", "grammar", "Sentences", "ab5"),
        problem("7", "test", "What is the capital of France?", ["Paris", "Rome", "Berlin", "Madrid", "Vienna"], 0, "", False, "social science", "grade5", "geography", "Capitals", "ab6"),
        problem("8", "test", "Which force pulls objects toward Earth?", ["magnetism", "gravity"], 1, "Think about falling apples.", True, "natural science", "grade9", "physics", "Forces", "ab7"),
        problem("9", "test", "Which word rhymes with cat?", ["hat", "dog"], 0, "", False, "language science", "grade2", "phonology", "Rhyming", "ab8"),
        problem("10", "test", "Which colony was founded first?", ["Virginia", "Georgia"], 0, "Look at the map.", True, "social science", "grade11", "us-history", "Colonies", "ab9"),
        problem("11", "test", "Which material is magnetic?", ["iron", "wood", "glass"], 0, "", True, "natural science", "grade6", "physics", "Magnets", "ab10"),
        problem("12", "test", "Which is a metaphor?", ["He is a lion.", "He runs fast."], 0, "", False, "language science", "grade10", "figurative-language", "Figures of speech", "ab11"),
    ]
)

PID_SPLITS = {
    "train": ["1", "2", "3"],
    "val": ["4"],
    "test": ["5", "6", "7", "8", "9", "10", "11", "12"],
    "minitrain": ["1", "3"],
    "minival": ["4"],
    "minitest": ["5", "8", "11"],
    "trainval": ["1", "2", "3", "4"],
}

# What a model might write for each test problem: correct, wrong, unparseable, two answers, out of range.
OUTPUTS = {
    "5": "The answer is (B).",
    "6": "The answer is A.",
    "7": "Answer: The answer is (A). Paris is the capital.",
    "8": "I am not sure.",
    "9": "The answer is (A). The answer is (B).",
    "10": "The answer is (E).",
    "11": "The answer is (A)",
    "12": "the answer is (a).",
}

# Colours per pid, so every image differs (and so hashes differ); pid 11 reuses pid 1's colour to be deduplicated.
COLORS = {"1": (200, 30, 30), "3": (30, 200, 30), "5": (30, 30, 200), "8": (200, 200, 30), "10": (30, 200, 200), "11": (200, 30, 30)}


# --- ScienceQA's answer extraction (models/run_gpt3.py) with LLaMA-Adapter's "(A)" -------------------------------

ANSWER = re.compile(r"The answer is \(?([A-Z])\)?.")


def parse_answer(text: str, n_choices: int) -> int:
    found = ANSWER.findall(text)
    if len(found) != 1:
        return -1
    index = LETTERS.index(found[0])
    return index if index < n_choices else -1


# --- the accuracy table (tools/evaluate_acc.py) ----------------------------------------------------------------------

def acc(rows, keep) -> str:
    chosen = [r for r in rows if keep(r)]
    correct = [r for r in chosen if r["true_false"]]
    return "{:.2f}".format(len(correct) / len(chosen) * 100)


def scores(problems: dict, results: dict) -> dict:
    num = len(results)
    rows = []
    for pid, p in problems.items():
        if p["split"] != "test":
            continue
        pred = int(results[pid])
        rows.append(
            {
                "pid": pid,
                "subject": p["subject"],
                "grade": p["grade"],
                "topic": p["topic"],
                "no_context": (not p["hint"] and not p["image"]),
                "has_text": bool(p["hint"]),
                "has_image": bool(p["image"]),
                "true_false": p["answer"] == pred,
            }
        )
    low = {f"grade{g}" for g in range(1, 7)}
    high = {f"grade{g}" for g in range(7, 13)}
    out = {
        "acc_natural": acc(rows, lambda r: r["subject"] == "natural science"),
        "acc_social": acc(rows, lambda r: r["subject"] == "social science"),
        "acc_language": acc(rows, lambda r: r["subject"] == "language science"),
        "acc_has_text": acc(rows, lambda r: r["has_text"]),
        "acc_has_image": acc(rows, lambda r: r["has_image"]),
        "acc_no_context": acc(rows, lambda r: r["no_context"]),
        "acc_grade_1_6": acc(rows, lambda r: r["grade"] in low),
        "acc_grade_7_12": acc(rows, lambda r: r["grade"] in high),
        "acc_average": "{:.2f}".format(len([r for r in rows if r["true_false"]]) / num * 100),
    }
    topics = sorted({r["topic"] for r in rows})
    out_topics = {t: acc(rows, lambda r, t=t: r["topic"] == t) for t in topics}
    return {"scores": out, "topics": out_topics, "correct": len([r for r in rows if r["true_false"]]), "total": len(rows)}


# --- writers -------------------------------------------------------------------------------------------------------

def fresh(folder: Path) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n")


def image_bytes(pid: str) -> bytes:
    w, h = (6, 4) if int(pid) % 2 else (5, 7)
    return png(w, h, COLORS[pid])


def write_scienceqa() -> None:
    fresh(SQA)
    write_json(SQA / "problems.json", PROBLEMS)
    write_json(SQA / "pid_splits.json", PID_SPLITS)
    for pid, p in PROBLEMS.items():
        if p["image"]:
            path = SQA / "images" / p["split"] / pid / "image.png"
            path.parent.mkdir(parents=True)
            path.write_bytes(image_bytes(pid))
    results = {pid: parse_answer(OUTPUTS[pid], len(PROBLEMS[pid]["choices"])) for pid in PID_SPLITS["test"]}
    write_json(SQA / "results.json", {"results": results})
    # Another model: right on all but pids 6 and 11, so no category is all right or all wrong by accident.
    alt = {pid: PROBLEMS[pid]["answer"] if pid not in ("6", "11") else (PROBLEMS[pid]["answer"] + 1) % len(PROBLEMS[pid]["choices"]) for pid in PID_SPLITS["test"]}
    write_json(SQA / "results-alt.json", {"results": alt})
    write_json(SQA / "outputs.json", OUTPUTS)
    awkward = [0.125, 0.375, 2.675, 1.005, 12.5, 100 / 3, 200 / 3, 1 / 800 * 100, 7 / 8 * 100, 0.0, 100.0, 85.185]
    write_json(
        SQA / "expected.json",
        {
            "note": "written by tools/make_scienceqa_fixture.py; the scores follow tools/evaluate_acc.py",
            "parsed": results,
            **scores(PROBLEMS, results),
            "alt": scores(PROBLEMS, alt),
            "format2": [[x, "{:.2f}".format(x)] for x in awkward],
        },
    )


def write_scienceqa_parquet() -> None:
    fresh(SQA_PARQUET)
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema(
        [
            ("image", image_type),
            ("question", pa.string()),
            ("choices", pa.list_(pa.string())),
            ("answer", pa.int8()),
            ("hint", pa.string()),
            ("task", pa.string()),
            ("grade", pa.string()),
            ("subject", pa.string()),
            ("topic", pa.string()),
            ("category", pa.string()),
            ("skill", pa.string()),
            ("lecture", pa.string()),
            ("solution", pa.string()),
        ]
    )
    for split, hf_name in (("train", "train"), ("val", "validation"), ("test", "test")):
        rows = []
        for pid in PID_SPLITS[split]:
            p = PROBLEMS[pid]
            image = {"bytes": image_bytes(pid), "path": None} if p["image"] else None
            rows.append({"image": image, **{k: p[k] for k in schema.names if k != "image"}})
        table = pa.Table.from_pylist(rows, schema=schema)
        pq.write_table(table, mkdir(SQA_PARQUET / "data") / f"{hf_name}-00000-of-00001.parquet", row_group_size=3)


def mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def alpaca_rows(n: int, prefix: str) -> list[dict]:
    return [
        {"instruction": f"{prefix} task {i}: name a colour.", "input": "" if i % 2 else f"context {i}", "output": f"colour {i}"}
        for i in range(n)
    ]


def write_text_parquet() -> None:
    fresh(PARQUET)
    rows = alpaca_rows(8, "Parquet")
    table = pa.Table.from_pylist(rows)
    for codec in ("snappy", "zstd", "gzip"):
        pq.write_table(table, PARQUET / f"alpaca-{codec}.parquet", compression=codec, row_group_size=3)
    # A folder of shards as a Hugging Face download has them; the splits come from the file names.
    shards = mkdir(PARQUET / "shards" / "data")
    pq.write_table(pa.Table.from_pylist(alpaca_rows(3, "Shard A")), shards / "train-00000-of-00002.parquet", compression="zstd")
    pq.write_table(pa.Table.from_pylist(alpaca_rows(2, "Shard B")), shards / "train-00001-of-00002.parquet", compression="snappy")
    pq.write_table(pa.Table.from_pylist(alpaca_rows(2, "Held out")), shards / "test-00000-of-00001.parquet", compression="gzip")
    (PARQUET / "shards" / "README.md").write_text("A dataset card, as Hugging Face downloads have one.\n")
    # Dolly's column names go through the same field map as JSON and CSV.
    dolly = [{"instruction": f"Dolly question {i}?", "context": "", "response": f"Dolly answer {i}.", "category": "open_qa"} for i in range(3)]
    pq.write_table(pa.Table.from_pylist(dolly), PARQUET / "dolly.parquet")
    # Chats as a list of {role, content} structs.
    chats = [
        {"messages": [{"role": "user", "content": f"Hello {i}"}, {"role": "assistant", "content": f"Hi there {i}"}]}
        for i in range(3)
    ]
    pq.write_table(pa.Table.from_pylist(chats), PARQUET / "chats.parquet")
    # Row group 1, row 1 (row 4 of the file) has no output.
    bad = alpaca_rows(7, "Bad")
    bad[4]["output"] = None
    pq.write_table(pa.Table.from_pylist(bad), PARQUET / "alpaca-bad.parquet", row_group_size=3)
    whole = (PARQUET / "alpaca-snappy.parquet").read_bytes()
    (PARQUET / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    # Image bytes in a parquet file with Alpaca columns.
    with_images = [
        {**r, "image": {"bytes": png(3, 3, (10 * i, 20, 30)), "path": f"img{i}.png"} if i != 1 else None}
        for i, r in enumerate(alpaca_rows(3, "Pictured"))
    ]
    pq.write_table(pa.Table.from_pylist(with_images), PARQUET / "alpaca-images.parquet")
    broken = [{**alpaca_rows(2, "Broken")[0], "image": {"bytes": b"not an image at all", "path": "x.png"}}]
    pq.write_table(pa.Table.from_pylist(broken), PARQUET / "alpaca-bad-image.parquet")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims width x height, with one tiny IDAT: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def write_images() -> None:
    fresh(IMAGES)
    pics = mkdir(IMAGES / "pics")
    (pics / "red.png").write_bytes(png(4, 4, (255, 0, 0)))
    (pics / "green.jpg").write_bytes(jpeg(8, 6, (0, 255, 0)))
    (pics / "gray.png").write_bytes(png(5, 5, (128,), mode="L"))
    (pics / "red-copy.png").write_bytes(png(4, 4, (255, 0, 0)))  # same bytes as red.png: stored once
    llava = [
        {
            "id": "llava-1",
            "image": "pics/red.png",
            "conversations": [
                {"from": "human", "value": "<image>\nWhat colour is this square?"},
                {"from": "gpt", "value": "It is red."},
            ],
        },
        {
            "id": "llava-2",
            "image": "pics/green.jpg",
            "conversations": [
                {"from": "human", "value": "Describe the picture.\n<image>"},
                {"from": "gpt", "value": "A green rectangle."},
                {"from": "human", "value": "Is it bright?"},
                {"from": "gpt", "value": "Yes, very bright."},
            ],
        },
        {"id": "llava-3", "conversations": [{"from": "human", "value": "Say hi."}, {"from": "gpt", "value": "Hi!"}]},
    ]
    write_json(IMAGES / "llava.json", llava)
    alpaca = [
        {"instruction": "What colour is the image?", "input": "", "output": "Gray.", "image": "pics/gray.png"},
        {"instruction": "What colour is this one?", "input": "", "output": "Red.", "image": "pics/red-copy.png"},
        {"instruction": "No picture here.", "input": "", "output": "Fine."},
    ]
    (IMAGES / "alpaca-images.jsonl").write_text("".join(json.dumps(r) + "\n" for r in alpaca))
    bad = mkdir(IMAGES / "bad")
    whole = png(16, 16, (1, 2, 3))
    (bad / "truncated.png").write_bytes(whole[: len(whole) - 30])
    (bad / "text.png").write_text("this is not an image\n")
    (bad / "bomb.png").write_bytes(png_header_only(50000, 50000))
    for name in ("truncated.png", "text.png", "bomb.png", "missing.png"):
        rows = [
            {"instruction": "A good one.", "input": "", "output": "ok", "image": "../pics/red.png"},
            {"instruction": f"A bad one ({name}).", "input": "", "output": "no", "image": name},
        ]
        (bad / f"{name.split('.')[0]}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def main() -> None:
    write_scienceqa()
    write_scienceqa_parquet()
    write_text_parquet()
    write_images()
    print("wrote", SQA, SQA_PARQUET, PARQUET, IMAGES)


if __name__ == "__main__":
    main()
