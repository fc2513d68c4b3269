"""MindTheGap (ZPdesu/MindTheGap): a fine-tuned generator as train.py saves it (``g_ema``,
``g_optim``, ``latent_avg``, ``style_latent``) rendered with inference.py's rule vs
``stylebridge convert mindthegap`` (``base=`` the source generator) +
``stylebridge.create('domain_method')`` + ``synthesize``.

Upstream side: ``models.stylegan2.model.Generator(64)`` as source (random weights, seeded,
saved as ``{'g_ema', 'latent_avg'}``); a copy with the layers MindTheGap trains perturbed
(``input``, ``conv1``, ``convs``; a second case adds ``to_rgb1``/``to_rgbs``); images by
inference.py's rule: rows 7.. of w+ replaced by ``style_latent[:, 7:]``, then
``g_ema([w+], input_is_latent=True, randomize_noise=False)``.

Run patch: ``models.stylegan2.op`` -> ``native_ops`` (upstream compiles CUDA code on import).
"""

from __future__ import annotations

import copy
from pathlib import Path

import native_ops
import torch
from common import Recorder, commit_of, convert, main, perturb, repo_dir, use_upstream

REPO = "ZPdesu/MindTheGap"
SIZE = 64


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    root = repo_dir(upstream, REPO)
    commit = commit_of(upstream, REPO)
    native_ops.install("models.stylegan2.op", root / "models" / "stylegan2" / "op")
    use_upstream(root)
    from models.stylegan2.model import Generator

    import stylebridge
    from stylebridge.core.interfaces import Inversion
    from stylebridge.core.synthesis import synthesize

    torch.manual_seed(0)
    g0 = Generator(SIZE, 512, 8, channel_multiplier=2)
    perturb(g0, 41, 0.3)
    g0.eval()
    with torch.no_grad():
        mean = g0.mean_latent(4096)
    base = work / f"mtg_base_{SIZE}.pt"
    torch.save({"g_ema": g0.state_dict(), "latent_avg": mean}, base)
    sb_gen = work / f"mtg_gen_{SIZE}.safetensors"
    convert("stylegan2-rosinality", base, sb_gen)
    G = stylebridge.create("generator", str(sb_gen)).eval()
    n_lat = g0.n_latent
    gen = torch.Generator().manual_seed(43)
    latents = torch.randn(2, n_lat, 512, generator=gen) * 0.5 + mean
    size = f"{SIZE} px generator, batch 2"
    with torch.no_grad():
        rec.compare("mindthegap: source image", REPO, commit,
                    "image: stylebridge generator vs upstream source g_ema on the same w+",
                    synthesize(G, Inversion(w_plus=latents)),
                    g0([latents], input_is_latent=True, randomize_noise=False)[0], size)
    for torgb in (False, True):
        g1 = copy.deepcopy(g0)
        trained = [g1.input, g1.conv1, g1.convs] + ([g1.to_rgb1, g1.to_rgbs] if torgb else [])
        for i, module in enumerate(trained):
            perturb(module, 50 + i, 0.2)
        style_latent = torch.randn(1, n_lat, 512, generator=gen) * 0.5 + mean
        ft = work / f"mtg_finetuned_{SIZE}_{int(torgb)}.pt"
        torch.save({"g_ema": g1.state_dict(), "g_optim": {}, "latent_avg": mean,
                    "style_latent": style_latent}, ft)
        with torch.no_grad():
            mixed = latents.clone()
            mixed[:, 7:, :] = style_latent[:, 7:, :]  # inference.py
            up = g1([mixed], input_is_latent=True, randomize_noise=False)[0]
            up_nomix = g1([latents], input_is_latent=True, randomize_noise=False)[0]
        sb_dom = ft.with_suffix(".safetensors")
        convert("mindthegap", ft, sb_dom, f"base={base}")
        M = stylebridge.create("domain_method", str(sb_dom)).eval()
        layers = "conv layers + ToRGB" if torgb else "conv layers"
        with torch.no_grad():
            rec.compare(f"mindthegap: domain image ({layers} trained)", REPO, commit,
                        "domain image: stylebridge synthesize(G, w+, method) vs upstream "
                        "inference.py (rows 7.. from style_latent, fine-tuned g_ema)",
                        synthesize(G, Inversion(w_plus=latents), method=M), up, size)
            M.mix = False
            rec.compare(f"mindthegap: no mixing ({layers} trained)", REPO, commit,
                        "domain image with mix=False vs upstream fine-tuned g_ema on the "
                        "unmixed w+", synthesize(G, Inversion(w_plus=latents), method=M),
                        up_nomix, size)


if __name__ == "__main__":
    main("mindthegap", check)
