"""e4e (omertov/encoder4editing): upstream ``pSp(opts)`` loading a training checkpoint vs
``stylebridge convert e4e`` + ``stylebridge.create``.

Upstream side: ``models.encoders.psp_encoders.Encoder4Editing(50, 'ir_se')`` and
``models.stylegan2.model.Generator`` built by the upstream code, random weights (seeded),
saved as the upstream training script saves checkpoints (``{'state_dict', 'opts',
'latent_avg'}``), loaded back through upstream ``pSp(opts)`` (``checkpoint_path`` set) and
run with ``pSp.forward(x, resize=False, randomize_noise=False, return_latents=True)`` on a
normalised 256 px batch.

Run patch: ``models.stylegan2.op`` -> ``native_ops`` (upstream compiles CUDA code on import).
``check_psp.py`` runs the same comparison for eladrich/pixel2style2pixel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import native_ops
import torch
from common import Recorder, commit_of, convert, main, perturb, repo_dir, use_upstream

REPO = "omertov/encoder4editing"
SIZE = 64  # generator resolution (n_styles = 10); the encoder runs at its native 256 px


def check_encoder(upstream: Path, work: Path, rec: Recorder, repo: str, encoder_type: str,
                  kind: str) -> None:
    root = repo_dir(upstream, repo)
    commit = commit_of(upstream, repo)
    native_ops.install("models.stylegan2.op", root / "models" / "stylegan2" / "op")
    use_upstream(root)
    from models.encoders import psp_encoders
    from models.psp import pSp
    from models.stylegan2.model import Generator

    torch.manual_seed(0)
    n_styles = 2 * SIZE.bit_length() - 4
    opts = dict(encoder_type=encoder_type, stylegan_size=SIZE, output_size=SIZE,
                start_from_latent_avg=True, learn_in_w=False, checkpoint_path=None,
                device="cpu", input_nc=3, label_nc=0, n_styles=n_styles)
    ns = argparse.Namespace(**opts)
    enc = getattr(psp_encoders, encoder_type)(50, "ir_se", ns)
    dec = Generator(SIZE, 512, 8, channel_multiplier=2)
    perturb(enc, 1, 0.3)
    perturb(dec, 2, 0.3)
    with torch.no_grad():
        latent_avg = dec.mean_latent(10000).repeat(n_styles, 1)  # as __load_latent_avg(repeat=)

    class Net(torch.nn.Module):  # the attribute names pSp's state_dict() has
        def __init__(self) -> None:
            super().__init__()
            self.encoder, self.decoder = enc, dec

    ckpt = work / f"{kind}_upstream_{SIZE}.pt"
    torch.save({"state_dict": Net().state_dict(), "opts": opts, "latent_avg": latent_avg}, ckpt)
    ns.checkpoint_path = str(ckpt)
    net = pSp(ns).eval()
    x = torch.rand(2, 3, 256, 256, generator=torch.Generator().manual_seed(5))  # [0, 1]
    with torch.no_grad():
        img_up, w_up = net((x - 0.5) / 0.5, resize=False, randomize_noise=False,
                           return_latents=True)

    sb_enc, sb_gen = work / f"{kind}_sb.safetensors", work / f"{kind}_sb_gen.safetensors"
    convert(kind, ckpt, sb_enc, f"generator={sb_gen}")
    import stylebridge
    encoder = stylebridge.create("encoder", str(sb_enc)).eval()
    gen = stylebridge.create("generator", str(sb_gen)).eval()
    size = f"ir_se50 encoder at 256 px, {SIZE} px generator, batch 2"
    with torch.no_grad():
        inv = encoder.encode(x)
        rec.compare(f"{kind}: w+", repo, commit,
                    "W+ latents: stylebridge encode([0,1] image) vs upstream pSp.forward "
                    "(latent_avg added)", inv.w_plus, w_up, size)
        rec.compare(f"{kind}: image (generator only)", repo, commit,
                    "image: stylebridge generator on upstream W+ vs upstream decoder "
                    "(stored noise)", gen([w_up], input_is_latent=True, randomize_noise=False),
                    img_up, size)
        rec.compare(f"{kind}: image (end to end)", repo, commit,
                    "image: stylebridge encode + generator vs upstream pSp.forward",
                    gen([inv.w_plus], input_is_latent=True, randomize_noise=False), img_up, size)


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    check_encoder(upstream, work, rec, REPO, "Encoder4Editing", "e4e")


if __name__ == "__main__":
    main("e4e", check)
