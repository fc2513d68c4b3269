"""NVlabs/stylegan2-ada-pytorch: a training snapshot pickle (``G``, ``D``, ``G_ema``,
``augment_pipe``, ``training_set_kwargs``; the classes pickled by NVlabs' persistence
mechanism) rendered by upstream ``G_ema`` vs ``stylebridge convert stylegan2-nvlabs`` (which
reads the tensors without running the pickled code) + ``stylebridge.create('generator')``.

Upstream side: ``training.networks.Generator`` at 64 px (``channel_base=16384``,
``num_fp16_res=4``, ``conv_clamp=256``, as the paper configs), random weights (seeded),
random ``w_avg``; ``ws = G.mapping(z, None, truncation_psi=0.7)``, images from
``G.synthesis(ws, noise_mode='const', force_fp32=True)``.  A second network has conv biases
pushed up by 300 so that ``conv_clamp`` really clips (the check records how much the clamp
changes the upstream image).

No patches: on the CPU the upstream custom ops use their own reference implementations.
"""

from __future__ import annotations

import copy
import pickle
from pathlib import Path

import torch
from common import Recorder, commit_of, convert, main, perturb, repo_dir, use_upstream

REPO = "NVlabs/stylegan2-ada-pytorch"
SIZE = 64


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    root = repo_dir(upstream, REPO)
    commit = commit_of(upstream, REPO)
    use_upstream(root)
    from training.networks import Generator

    import stylebridge
    size = f"{SIZE} px, channel_base 16384, fp16 layers run in fp32, batch 2"
    for variant in ("plain", "clamped"):
        torch.manual_seed(0)
        G = Generator(z_dim=512, c_dim=0, w_dim=512, img_resolution=SIZE, img_channels=3,
                      mapping_kwargs=dict(num_layers=8),
                      synthesis_kwargs=dict(channel_base=16384, channel_max=512,
                                            num_fp16_res=4, conv_clamp=256))
        perturb(G, 41, 0.3)
        gen = torch.Generator().manual_seed(42)
        with torch.no_grad():
            G.mapping.w_avg.copy_(torch.randn(512, generator=gen) * 0.3)
            if variant == "clamped":
                for n, p in G.synthesis.named_parameters():
                    if n.endswith(("conv0.bias", "conv1.bias")):
                        p.add_(torch.randn(p.shape, generator=gen) * 300)
        G.eval()
        pkl = work / f"nvlabs_{variant}_{SIZE}.pkl"
        with open(pkl, "wb") as f:
            pickle.dump({"G": copy.deepcopy(G), "D": None, "G_ema": copy.deepcopy(G),
                         "augment_pipe": None, "training_set_kwargs": {}}, f)
        z = torch.randn(2, 512, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            ws = G.mapping(z, None, truncation_psi=0.7)
            img = G.synthesis(ws, noise_mode="const", force_fp32=True)
        sb = pkl.with_suffix(".safetensors")
        convert("stylegan2-nvlabs", pkl, sb)
        S = stylebridge.create("generator", str(sb)).eval()
        with torch.no_grad():
            if variant == "plain":
                rec.compare("nvlabs: w (mapping, psi 0.7)", REPO, commit,
                            "w: stylebridge truncate(mapping(z), 0.7) vs upstream "
                            "G.mapping(z, truncation_psi=0.7)",
                            S.truncate(S.mapping(z), 0.7), ws[:, 0], size)
                rec.compare("nvlabs: image on upstream ws", REPO, commit,
                            "image: stylebridge generator on upstream ws vs upstream "
                            "G.synthesis (const noise)",
                            S([ws], input_is_latent=True, randomize_noise=False), img, size)
            else:
                free = copy.deepcopy(G)
                for m in free.synthesis.modules():
                    if hasattr(m, "conv_clamp"):
                        m.conv_clamp = None
                unclamped = free.synthesis(ws, noise_mode="const", force_fp32=True)
                effect = (unclamped - img).abs().max().item()
                rec.compare("nvlabs: image with active conv_clamp", REPO, commit,
                            "image: stylebridge generator on upstream ws vs upstream "
                            f"G.synthesis, biases +300 so conv_clamp=256 clips (upstream "
                            f"image changes by up to {effect:.3g} without the clamp)",
                            S([ws], input_is_latent=True, randomize_noise=False), img, size)


if __name__ == "__main__":
    main("nvlabs", check)
