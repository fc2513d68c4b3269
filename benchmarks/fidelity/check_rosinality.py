"""rosinality/stylegan2-pytorch: a train.py checkpoint (``g``, ``d``, ``g_ema``, ``g_optim``,
``d_optim``, ``args``, ``ada_aug_p``) rendered by upstream ``model.Generator`` vs
``stylebridge convert stylegan2-rosinality`` + ``stylebridge.create('generator')``.

Upstream side: ``Generator(64, 512, 8, channel_multiplier=2)`` and ``Discriminator(64)``,
random weights (seeded), saved exactly as train.py saves them; images from
``g_ema([z], truncation=0.7, truncation_latent=mean_latent(4096), randomize_noise=False,
return_latents=True)``.

Run patch: the ``op`` package -> ``native_ops`` (its fused_act/upfirdn2d compile CUDA code on
import); upstream's plain-Python ``op/conv2d_gradfix.py`` is loaded unchanged.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import native_ops
import torch
from common import Recorder, commit_of, convert, main, perturb, repo_dir, use_upstream

REPO = "rosinality/stylegan2-pytorch"
SIZE = 64


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    root = repo_dir(upstream, REPO)
    commit = commit_of(upstream, REPO)
    native_ops.install("op", root / "op")
    use_upstream(root)
    from model import Discriminator, Generator

    torch.manual_seed(0)
    g = Generator(SIZE, 512, 8, channel_multiplier=2)
    perturb(g, 51, 0.3)
    g.eval()
    d = Discriminator(SIZE, channel_multiplier=2)
    args = argparse.Namespace(size=SIZE, latent=512, n_mlp=8, channel_multiplier=2, r1=10,
                              path="unused", iter=800000)
    g_optim = torch.optim.Adam(g.parameters(), lr=0.002, betas=(0.0, 0.99))
    d_optim = torch.optim.Adam(d.parameters(), lr=0.002, betas=(0.0, 0.99))
    ckpt = work / f"rosinality_train_{SIZE}.pt"
    torch.save({"g": g.state_dict(), "d": d.state_dict(), "g_ema": g.state_dict(),
                "g_optim": g_optim.state_dict(), "d_optim": d_optim.state_dict(),
                "args": args, "ada_aug_p": 0.0}, ckpt)
    z = torch.randn(2, 512, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        mean = g.mean_latent(4096)
        img, lat = g([z], truncation=0.7, truncation_latent=mean, randomize_noise=False,
                     return_latents=True)
    sb = work / f"rosinality_{SIZE}.safetensors"
    convert("stylegan2-rosinality", ckpt, sb)
    import stylebridge
    S = stylebridge.create("generator", str(sb)).eval()
    size = f"{SIZE} px generator, batch 2"
    with torch.no_grad():
        rec.compare("rosinality: image on upstream w+", REPO, commit,
                    "image: stylebridge generator on upstream (truncated) w+ vs upstream "
                    "g_ema (stored noise)",
                    S([lat], input_is_latent=True, randomize_noise=False), img, size)
        rec.compare("rosinality: image from z", REPO, commit,
                    "image: stylebridge generator from z (mapping, truncation 0.7 around "
                    "upstream mean_latent) vs upstream g_ema",
                    S([z], truncation=0.7, truncation_latent=mean, randomize_noise=False),
                    img, size)


if __name__ == "__main__":
    main("rosinality", check)
