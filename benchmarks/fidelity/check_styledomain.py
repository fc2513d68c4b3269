"""StyleDomain (AIRI-Institute/StyleDomain, SimilarDomains): upstream ``Inferencer`` rendering
a parametrization domain vs ``stylebridge convert styledomain`` / ``hyperdomainnet`` +
``stylebridge.create('domain_method')`` + ``synthesize``.

Upstream side: the source generator is ``uda_models['stylegan2'](img_size=64)`` (StyleDomain's
rosinality-style generator, random weights, saved as a rosinality ``{'g_ema', 'latent_avg'}``
file); a domain is ``BaseParametrization(patch_key, get_stylegan_conv_dimensions(64))`` with
seeded random offsets, saved in the checkpoint layout the upstream notebooks load
(``model_type='parametrization'``, ``patch_key``, ``state_dict``, ``sg2_params``, ``da_type``,
plus ``style_latents`` for image-to-image domains) and rendered by
``Inferencer(ckpt)(w+, input_is_latent=True, randomize_noise=False)``.

Cases: StyleDomain ``s_delta`` text domain; ``s_delta`` image-to-image domain (rows 7.. of
w+ mixed with the domain's style latents, ``Inferencer._mtg_mixing_noise``); the same at
strength 0.5 (``offset_power=0.5, mx_n=0.5`` upstream, ``offset_scale=0.5`` in stylebridge);
HyperDomainNet-style ``cin_mult`` domain in the same file layout.

Run patches: stubs for ``clip`` (text encoder, not on the rendering path) and ``omegaconf``
(config loading, only ``MISSING`` is read at import).  StyleDomain's generator uses its own
pure-PyTorch ops, so nothing else is patched.
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import Recorder, commit_of, convert, main, perturb, repo_dir, stub, use_upstream

REPO = "AIRI-Institute/StyleDomain"
SIZE = 64
CASES = [  # (da_type, patch_key, converter, strength)
    ("td", "s_delta", "styledomain", 1.0),
    ("im2im", "s_delta", "styledomain", 1.0),
    ("im2im", "s_delta", "styledomain", 0.5),
    ("td", "cin_mult", "hyperdomainnet", 1.0),
]


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    root = repo_dir(upstream, REPO)
    commit = commit_of(upstream, REPO)
    stub("clip")
    stub("omegaconf", MISSING="???")
    use_upstream(root / "SimilarDomains")
    from core.parametrizations import BaseParametrization
    from core.uda_models import uda_models
    from core.utils.common import get_stylegan_conv_dimensions
    from core.utils.example_utils import Inferencer

    import stylebridge
    from stylebridge.core.interfaces import Inversion
    from stylebridge.core.synthesis import synthesize

    torch.manual_seed(0)
    g = uda_models["stylegan2"](img_size=SIZE, device="cpu").generator
    perturb(g, 31, 0.3)
    with torch.no_grad():
        mean = g.mean_latent(4096)
    gck = work / f"sd_g_ema_{SIZE}.pt"
    torch.save({"g_ema": g.state_dict(), "latent_avg": mean[0]}, gck)
    sb_gen = work / f"sd_gen_{SIZE}.safetensors"
    convert("stylegan2-rosinality", gck, sb_gen)
    G = stylebridge.create("generator", str(sb_gen)).eval()
    n_lat = 2 * SIZE.bit_length() - 4
    w = torch.randn(2, n_lat, 512, generator=torch.Generator().manual_seed(8)) * 0.5 + mean
    size = f"{SIZE} px generator, batch 2"
    sg2 = dict(img_size=SIZE, latent_size=512, map_layers=8, channel_multiplier=2,
               device="cpu", checkpoint_path=str(gck))
    source_done = False
    for i, (da_type, key, kind, strength) in enumerate(CASES):
        par = BaseParametrization(key, get_stylegan_conv_dimensions(SIZE))
        gen = torch.Generator().manual_seed(100 + i)
        with torch.no_grad():
            for p in par.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
        ckpt = {"model_type": "parametrization", "patch_key": key, "state_dict": par.state_dict(),
                "adaptive": False, "sg2_params": sg2, "da_type": da_type}
        if da_type == "im2im":
            ckpt["style_latents"] = torch.randn(1, n_lat - 7, 512, generator=gen)
        path = work / f"sd_domain_{da_type}_{key}.pt"
        torch.save(ckpt, path)
        inf = Inferencer(torch.load(path, map_location="cpu"), "cpu")
        extra = {} if strength == 1.0 else {"offset_power": strength, "mx_n": strength}
        with torch.no_grad():
            src_img, trg_img = inf([w], input_is_latent=True, randomize_noise=False, **extra)
        sb_dom = path.with_suffix(".safetensors")
        convert(kind, path, sb_dom)
        M = stylebridge.create("domain_method", str(sb_dom)).eval()
        scale = None if strength == 1.0 else [strength] * G.n_style_layers
        with torch.no_grad():
            if not source_done:
                rec.compare("styledomain: source image", REPO, commit,
                            "image without domain: stylebridge synthesize(G, w+) vs upstream "
                            "Inferencer source output", synthesize(G, Inversion(w_plus=w)),
                            src_img, size)
                source_done = True
            ours = synthesize(G, Inversion(w_plus=w), method=M, offset_scale=scale)
        what = {"s_delta": "StyleDomain s_delta", "cin_mult": "HyperDomainNet-style cin_mult"}
        rec.compare(f"styledomain: {key} {da_type} domain, strength {strength:g}", REPO, commit,
                    f"domain image: stylebridge convert {kind} + synthesize(G, w+, method"
                    f"{', offset_scale' if scale else ''}) vs upstream Inferencer "
                    f"({what[key]}, da_type={da_type}"
                    f"{f', offset_power=mx_n={strength:g}' if extra else ''})",
                    ours, trg_img, size)


if __name__ == "__main__":
    main("styledomain", check)
