"""The peer of `engine-bench vision-features`: transformers' CLIPVisionModelWithProjection on PyTorch CPU.

    python3 bench/clip_bench.py --make DIR                      a ViT-B/16-shaped random CLIP folder + 16 PNGs
    python3 bench/clip_bench.py --dir DIR --threads N [--rounds R]   image_embeds of the PNGs, batch 8: images/s

Preprocessing (CLIPImageProcessorPil) and the forward pass are both timed, as the engine's are. Prints one JSON line.
"""
import argparse
import glob
import json
import os
import time

import numpy as np
import torch
from PIL import Image
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

try:
    from transformers import CLIPImageProcessorPil as Processor
except ImportError:
    from transformers import CLIPImageProcessor as Processor


def make(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    config = CLIPVisionConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, image_size=224, patch_size=16, projection_dim=512)
    CLIPVisionModelWithProjection(config).eval().save_pretrained(out, safe_serialization=True)
    Processor(size={'shortest_edge': 224}, crop_size={'height': 224, 'width': 224}).save_pretrained(out)
    rng = np.random.default_rng(0)
    for i in range(16):
        h, w = (300 + 13 * i, 400 - 7 * i)  # photos of assorted sizes: every one is resized
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(os.path.join(out, f'img{i:02d}.png'))


def bench(d, threads, rounds):
    torch.set_num_threads(threads)
    model = CLIPVisionModelWithProjection.from_pretrained(d).eval()
    proc = Processor.from_pretrained(d)
    files = sorted(glob.glob(os.path.join(d, 'img*.png')))
    times = []
    with torch.inference_mode():
        for r in range(rounds + 1):  # round 0 warms up
            start = time.perf_counter()
            for i in range(0, len(files), 8):
                pixels = proc(images=[Image.open(f) for f in files[i:i + 8]], return_tensors='pt')['pixel_values']
                model(pixel_values=pixels).image_embeds
            if r > 0:
                times.append(time.perf_counter() - start)
    best = min(times)
    print(json.dumps({'engine': 'transformers', 'threads': threads, 'images': len(files), 'seconds': times, 'images_per_sec': len(files) / best}))


if __name__ == '__main__':
    p = argparse.ArgumentParser()
    p.add_argument('--make')
    p.add_argument('--dir')
    p.add_argument('--threads', type=int, default=os.cpu_count())
    p.add_argument('--rounds', type=int, default=2)
    a = p.parse_args()
    if a.make:
        make(a.make)
        print(json.dumps({'made': a.make}))
    else:
        bench(a.dir, a.threads, a.rounds)
