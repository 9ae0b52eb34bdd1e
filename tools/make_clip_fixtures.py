"""Tiny random CLIP folders and images with transformers' own outputs, for the engine's vision-tower tests.

    python3 tools/make_clip_fixtures.py          # writes test/fixtures/clip/

- clip-full/: a CLIPModel (model_type "clip", text tower included), float32, quick_gelu, with a
  preprocessor_config.json (shortest edge 32, crop 32).
- clip-vision-gelu/: a CLIPVisionModel (flat "clip_vision_model" config, no visual_projection), gelu, float16,
  sharded, no preprocessor_config.json (CLIP's defaults at image_size apply).
- images/: PNG (RGB, grey, grey+alpha, RGBA, palette, 16-bit grey, 16-bit RGB), JPEG (RGB, grey, CMYK), WebP, GIF
  (two frames), at the crop size and at other sizes and aspect ratios, plus a truncated PNG and a text file.
- expected.json: for every good image (16-bit grey taken as its high byte, as the engine does), CLIPImageProcessor's pixel_values (PIL resampling, CLIPImageProcessorPil in
  transformers 5) and each tower's outputs (image_embeds, class tokens of every layer), float32 little-endian in
  base64.
"""
import base64
import json
import os
import shutil

import numpy as np
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPVisionConfig, CLIPVisionModel

try:  # transformers 5: CLIPImageProcessor picks torchvision when installed; the PIL one is CLIP's own preprocessing
    from transformers import CLIPImageProcessorPil as PilProcessor
except ImportError:
    PilProcessor = CLIPImageProcessor

OUT = os.path.join(os.path.dirname(__file__), '..', 'test', 'fixtures', 'clip')
rng = np.random.default_rng(7)
torch.manual_seed(7)


def randomise(model):
    # Random weights of a realistic scale (not the zero biases / unit norms of a fresh init), so every term shows.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name and name.endswith('weight'):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))


def smooth(h, w, channels):
    # A picture with structure (gradients + blobs + noise), so resizing is exercised.
    y, x = np.mgrid[0:h, 0:w]
    planes = []
    for c in range(channels):
        a, b, f = rng.uniform(0.02, 0.3, 3)
        planes.append(127 + 80 * np.sin(a * x + b * y + c) * np.cos(f * x) + rng.normal(0, 20, (h, w)))
    return np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)


def save(name, image, fmt, **kw):
    path = os.path.join(OUT, 'images', name)
    image.save(path, fmt, **kw)
    return name


def main():
    if os.path.exists(OUT):
        shutil.rmtree(OUT)
    os.makedirs(os.path.join(OUT, 'images'))

    full_cfg = CLIPConfig(
        text_config=dict(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8, hidden_act='quick_gelu'),
        projection_dim=16,
    )
    full = CLIPModel(full_cfg).eval()
    randomise(full)
    full.save_pretrained(os.path.join(OUT, 'clip-full'), safe_serialization=True)
    processor = PilProcessor(size={'shortest_edge': 32}, crop_size={'height': 32, 'width': 32})
    processor.save_pretrained(os.path.join(OUT, 'clip-full'))

    vis_cfg = CLIPVisionConfig(hidden_size=24, intermediate_size=40, num_hidden_layers=3, num_attention_heads=3, image_size=48, patch_size=16, hidden_act='gelu')
    vis = CLIPVisionModel(vis_cfg).eval()
    randomise(vis)
    vis = vis.half()
    vis.save_pretrained(os.path.join(OUT, 'clip-vision-gelu'), safe_serialization=True, max_shard_size='20KB')
    vis = vis.float()
    vis_processor = PilProcessor(size={'shortest_edge': 48}, crop_size={'height': 48, 'width': 48})

    images = []
    images.append(save('rgb-32.png', Image.fromarray(smooth(32, 32, 3)), 'PNG'))
    images.append(save('rgb-wide.png', Image.fromarray(smooth(37, 61, 3)), 'PNG'))
    images.append(save('rgb-tall-large.png', Image.fromarray(smooth(150, 97, 3)), 'PNG'))
    images.append(save('rgb-small.png', Image.fromarray(smooth(20, 25, 3)), 'PNG'))
    images.append(save('grey.png', Image.fromarray(smooth(40, 40, 1)[:, :, 0], 'L'), 'PNG'))
    images.append(save('grey-alpha.png', Image.fromarray(smooth(33, 45, 2), 'LA'), 'PNG'))
    images.append(save('rgba.png', Image.fromarray(smooth(45, 33, 4), 'RGBA'), 'PNG'))
    images.append(save('palette.png', Image.fromarray(smooth(50, 40, 3)).quantize(16), 'PNG'))
    grey16 = (smooth(36, 36, 1)[:, :, 0].astype(np.uint16) * 257 + rng.integers(0, 257, (36, 36))).astype(np.uint16)
    images.append(save('grey16.png', Image.fromarray(grey16, 'I;16'), 'PNG'))
    images.append(save('rgb.jpg', Image.fromarray(smooth(70, 90, 3)), 'JPEG', quality=90))
    images.append(save('grey.jpg', Image.fromarray(smooth(64, 48, 1)[:, :, 0], 'L'), 'JPEG', quality=90))
    images.append(save('cmyk.jpg', Image.fromarray(smooth(40, 56, 3)).convert('CMYK'), 'JPEG', quality=95))
    images.append(save('rgb.webp', Image.fromarray(smooth(48, 64, 3)), 'WEBP', lossless=True))
    frames = [Image.fromarray(smooth(32, 40, 3)).quantize(64), Image.fromarray(smooth(32, 40, 3)).quantize(64)]
    frames[0].save(os.path.join(OUT, 'images', 'two-frames.gif'), 'GIF', save_all=True, append_images=frames[1:])
    images.append('two-frames.gif')

    with open(os.path.join(OUT, 'images', 'rgb-32.png'), 'rb') as f:
        good = f.read()
    with open(os.path.join(OUT, 'images', 'truncated.png'), 'wb') as f:
        f.write(good[: len(good) // 2])
    with open(os.path.join(OUT, 'images', 'not-an-image.png'), 'w') as f:
        f.write('hello, I am text\n')

    def rounded(a):
        return base64.b64encode(np.asarray(a, dtype='<f4').ravel().tobytes()).decode()

    expected = {'images': {}}
    for name in images:
        pil = Image.open(os.path.join(OUT, 'images', name))
        entry = {'mode': pil.mode, 'size': list(pil.size)}
        source = Image.open(os.path.join(OUT, 'images', name))
        if source.mode == 'I;16':
            # The engine keeps the high byte of 16-bit grey (PIL's convert("RGB") would clip it to white).
            source = Image.fromarray((np.array(source) >> 8).astype(np.uint8), 'L')
        for tower, model, proc in (('clip-full', full, processor), ('clip-vision-gelu', vis, vis_processor)):
            pixels = proc(images=source, return_tensors='pt')['pixel_values']
            with torch.no_grad():
                if tower == 'clip-full':
                    out = full.vision_model(pixel_values=pixels, output_hidden_states=True)
                    embeds = full.visual_projection(out.pooler_output)
                    entry[tower] = {'pixel_values': rounded(pixels), 'image_embeds': rounded(embeds)}
                else:
                    out = model(pixel_values=pixels, output_hidden_states=True)
                    entry[tower] = {'pixel_values': rounded(pixels)}
                entry[tower]['class_tokens'] = [rounded(h[0, 0]) for h in out.hidden_states[1:]]
        expected['images'][name] = entry
    expected['bad'] = ['truncated.png', 'not-an-image.png']
    with open(os.path.join(OUT, 'expected.json'), 'w') as f:
        json.dump(expected, f)
    print('wrote', OUT, 'images:', len(images))


if __name__ == '__main__':
    main()
