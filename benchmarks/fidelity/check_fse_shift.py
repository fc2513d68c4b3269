"""FSE editing rule with a StyleDomain domain: FeatureStyleEncoder's video_processing.py
``latent_manipulation`` rule, ``x = G(w1, features_in[5] = F + G5(w1) - G5(w0))``, with a
StyleDomain ``s_delta`` domain as the edit, vs stylebridge ``Inversion(feature_mode='shift')``
+ ``synthesize(G, inv, method)`` (and ``feature_mode='replace'``, the plain FSE rendering).

Upstream side: FSE's copy of the pSp generator (``pixel2style2pixel/models/stylegan2``, which
takes ``features_in`` and returns features), 64 px, random weights (seeded), saved as a
rosinality ``{'g_ema', 'latent_avg'}`` file; a StyleDomain ``BaseParametrization('s_delta')``
domain (seeded) in StyleDomain's checkpoint layout; the domain is applied inside FSE's
generator by forward hooks on each ``modulation`` that add the domain's offsets to the style
(what StyleDomain's ``StyleDelta`` does: ``style + offset``); for an image-to-image domain
rows 7.. of w1 come from its style latents (``Inferencer._mtg_mixing_noise``).  F is
``G5(w0)`` plus seeded noise, an FSE-like detail feature.

Run patches: ``models.stylegan2.op`` -> ``native_ops``; stubs for ``clip`` and ``omegaconf``
(StyleDomain's text encoder / config loader, unused).
"""

from __future__ import annotations

from pathlib import Path

import native_ops
import torch
from common import Recorder, commit_of, convert, main, perturb, repo_dir, stub, use_upstream

FSE = "InterDigitalInc/FeatureStyleEncoder"
SD = "AIRI-Institute/StyleDomain"
SIZE = 64


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    fse_root, sd_root = repo_dir(upstream, FSE), repo_dir(upstream, SD)
    commit = f"{commit_of(upstream, FSE)} + {commit_of(upstream, SD)}"
    repo = f"{FSE} + {SD}"
    stub("clip")
    stub("omegaconf", MISSING="???")
    use_upstream(sd_root / "SimilarDomains", chdir=False)
    from core.parametrizations import BaseParametrization
    from core.utils.common import get_stylegan_conv_dimensions
    native_ops.install("models.stylegan2.op",
                       fse_root / "pixel2style2pixel" / "models" / "stylegan2" / "op")
    use_upstream(fse_root / "pixel2style2pixel")
    from models.stylegan2.model import Generator

    import stylebridge
    from stylebridge.core.interfaces import Inversion
    from stylebridge.core.synthesis import synthesize

    torch.manual_seed(0)
    G = Generator(SIZE, 512, 8)
    perturb(G, 31, 0.3)
    G.eval()
    with torch.no_grad():
        mean = G.mean_latent(4096)
    gck = work / f"fse_shift_g_ema_{SIZE}.pt"
    torch.save({"g_ema": G.state_dict(), "latent_avg": mean[0]}, gck)
    sb_gen = work / f"fse_shift_gen_{SIZE}.safetensors"
    convert("stylegan2-rosinality", gck, sb_gen)
    SG = stylebridge.create("generator", str(sb_gen)).eval()

    state: dict[str, object] = {"offsets": None}

    def hook(key: str):
        def add(module: torch.nn.Module, inputs: object, out: torch.Tensor) -> torch.Tensor:
            offs = state["offsets"]
            return out if offs is None else out + offs[key]  # StyleDelta: style + offset
        return add

    G.conv1.conv.modulation.register_forward_hook(hook("conv_0"))
    for j, layer in enumerate(G.convs):
        layer.conv.modulation.register_forward_hook(hook(f"conv_{j + 1}"))
    noise = [getattr(G.noises, f"noise_{i}") for i in range(G.num_layers)]
    gen = torch.Generator().manual_seed(5)
    n_lat = G.n_latent
    w0 = torch.randn(2, n_lat, 512, generator=gen) * 0.5 + mean
    with torch.no_grad():
        _, outs = G([w0], input_is_latent=True, noise=noise, return_features=True)
        f0 = outs[5] + 0.5 * torch.randn(outs[5].shape, generator=gen)
        x_inv, _ = G([w0], noise=noise, input_is_latent=True,
                     features_in=[None] * 5 + [f0] + [None] * 12, feature_scale=1.0)
        rec.compare("fse_shift: FSE rendering without domain", repo, commit,
                    "image: stylebridge synthesize(G, Inversion(w+, features={5: F})) vs "
                    "FSE generator(features_in[5]=F)",
                    synthesize(SG, Inversion(w_plus=w0, features={5: f0})), x_inv,
                    f"{SIZE} px generator, batch 2")
    sg2 = dict(img_size=SIZE, latent_size=512, map_layers=8, channel_multiplier=2,
               device="cpu", checkpoint_path=str(gck))
    for i, da_type in enumerate(("td", "im2im")):
        par = BaseParametrization("s_delta", get_stylegan_conv_dimensions(SIZE))
        pgen = torch.Generator().manual_seed(200 + i)
        with torch.no_grad():
            for p in par.parameters():
                p.copy_(torch.randn(p.shape, generator=pgen) * 0.5)
        ckpt = {"model_type": "parametrization", "patch_key": "s_delta",
                "state_dict": par.state_dict(), "adaptive": False, "sg2_params": sg2,
                "da_type": da_type}
        w1 = w0.clone()
        if da_type == "im2im":
            ckpt["style_latents"] = torch.randn(1, n_lat - 7, 512, generator=pgen)
            w1[:, 7:] = ckpt["style_latents"]
        path = work / f"fse_shift_domain_{da_type}.pt"
        torch.save(ckpt, path)
        offsets = {k.split(".")[1]: v for k, v in par.state_dict().items()}
        with torch.no_grad():
            state["offsets"] = None
            _, fea0 = G([w0], noise=noise, input_is_latent=True, return_features=True)
            state["offsets"] = offsets
            _, fea1 = G([w1], noise=noise, input_is_latent=True, return_features=True)
            shifted = [None] * 5 + [f0 + fea1[5] - fea0[5]] + [None] * 12
            x_shift, _ = G([w1], noise=noise, input_is_latent=True, features_in=shifted,
                           feature_scale=1.0)
            x_repl, _ = G([w1], noise=noise, input_is_latent=True,
                          features_in=[None] * 5 + [f0] + [None] * 12, feature_scale=1.0)
            state["offsets"] = None
        sb_dom = path.with_suffix(".safetensors")
        convert("styledomain", path, sb_dom)
        M = stylebridge.create("domain_method", str(sb_dom)).eval()
        size = f"{SIZE} px generator, batch 2"
        with torch.no_grad():
            rec.compare(f"fse_shift: shift mode, {da_type} domain", repo, commit,
                        "domain image: stylebridge Inversion(feature_mode='shift') + method vs "
                        "FSE rule G(w1, features_in[5] = F + G5(w1) - G5(w0)), StyleDomain "
                        "offsets in the modulations",
                        synthesize(SG, Inversion(w_plus=w0, features={5: f0},
                                                 feature_mode="shift"), method=M),
                        x_shift, size)
            rec.compare(f"fse_shift: replace mode, {da_type} domain", repo, commit,
                        "domain image: stylebridge Inversion(feature_mode='replace') + method "
                        "vs G(w1, features_in[5] = F) with the offsets",
                        synthesize(SG, Inversion(w_plus=w0, features={5: f0},
                                                 feature_mode="replace"), method=M),
                        x_repl, size)


if __name__ == "__main__":
    main("fse_shift", check)
