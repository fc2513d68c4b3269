"""OpenAI CLIP (openai/CLIP): a ViT-B/32 saved like the released files (TorchScript, fp16
weights) loaded by upstream ``clip.load(path, jit=False)`` vs ``stylebridge convert
clip-openai`` + ``stylebridge.plugins.nets.clip.load_clip``.

Upstream side, full size: ``clip.model.CLIP`` with ViT-B/32's hyper-parameters, random weights
(seeded), ``logit_scale = log(100)``, ``convert_weights`` (fp16, as ``build_model``), saved
as a traced TorchScript archive (``torch.jit.trace``, as the released files are); ``clip.load(..., jit=False)`` rebuilds it with
``build_model(state_dict).float()``.  Inputs: a random preprocessed image batch, two prompts
tokenised by ``clip.tokenize``; and a 256 px picture through upstream's PIL preprocessing
(informational: stylebridge resizes tensors with torch's antialiased bicubic, not PIL, so this
one is an approximation by design and has no pass/fail tolerance).

No patches.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from common import Recorder, commit_of, convert, main, perturb, repo_dir, use_upstream

REPO = "openai/CLIP"


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    root = repo_dir(upstream, REPO)
    commit = commit_of(upstream, REPO)
    use_upstream(root)
    import clip
    from clip.model import CLIP, convert_weights
    from PIL import Image

    torch.manual_seed(0)
    m = CLIP(embed_dim=512, image_resolution=224, vision_layers=12, vision_width=768,
             vision_patch_size=32, context_length=77, vocab_size=49408, transformer_width=512,
             transformer_heads=8, transformer_layers=12)
    perturb(m, 71, 0.5)
    with torch.no_grad():
        m.logit_scale.fill_(np.log(100.0))
    convert_weights(m)
    m.eval()
    path = work / "ViT-B-32.pt"
    example = (torch.randn(1, 3, 224, 224).half(), clip.tokenize(["x"]))
    torch.jit.save(torch.jit.trace(m, example, check_trace=False), str(path))
    ref, preprocess = clip.load(str(path), device="cpu", jit=False)
    ref.eval()
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    texts = ["a 3d render in the style of Pixar", "photo of a face"]
    tokens = clip.tokenize(texts)
    with torch.no_grad():
        image_ref, text_ref = ref.encode_image(x), ref.encode_text(tokens)

    sb = work / "clip_vit_b32.safetensors"
    convert("clip-openai", path, sb)
    from stylebridge.plugins.nets.clip import load_clip
    cm = load_clip("ViT-B-32", weights=str(sb))
    size = "full size ViT-B/32, 224 px, batch 2"
    with torch.no_grad():
        rec.compare("clip: tokens", REPO, commit,
                    "token ids: stylebridge tokenizer vs upstream clip.tokenize",
                    cm.tokenizer(texts).long(), tokens.long(), size, tolerance=0.0)
        rec.compare("clip: image embedding", REPO, commit,
                    "image embedding of the same preprocessed batch: converted weights vs "
                    "upstream clip.load(jit=False).encode_image", cm.model.encode_image(x),
                    image_ref, size)
        rec.compare("clip: text embedding", REPO, commit,
                    "text embedding (unnormalised): stylebridge encode_text vs upstream "
                    "encode_text(clip.tokenize)", cm.encode_text(texts, normalize=False),
                    text_ref, size)
        direct = load_clip("ViT-B-32", weights=str(path))
        rec.compare("clip: image embedding (.pt read directly)", REPO, commit,
                    "image embedding: stylebridge reading the TorchScript .pt itself vs "
                    "upstream", direct.model.encode_image(x), image_ref, size)
        rng = np.random.RandomState(4)
        pil = Image.fromarray((rng.rand(64, 64, 3) * 255).astype(np.uint8)).resize(
            (256, 256), Image.BICUBIC)
        x01 = torch.from_numpy(np.asarray(pil)).permute(2, 0, 1)[None].float() / 255
        rec.compare("clip: picture embedding (preprocessing)", REPO, commit,
                    "embedding of a 256 px picture: stylebridge encode_images([0,1] tensor, "
                    "torch resize) vs upstream preprocess(PIL) + encode_image",
                    cm.encode_images(x01, normalize=False),
                    ref.encode_image(preprocess(pil)[None]), "full size ViT-B/32, 256 px "
                    "picture, batch 1", informational=True)


if __name__ == "__main__":
    main("clip", check)
