"""HyperDomainNet (MACderRu/HyperDomainNet): a text-conditioned mapper checkpoint as the
trainers save it (``model_type='mapper'``, ``mapper_config``, ``patch_key='cin_mult'``,
``state_dict``, ``sg2_params``, ``da_type``, ``clip_encoder``) rendered by upstream
``Inferencer`` vs ``stylebridge convert hyperdomainnet-mapper`` +
``stylebridge.create('domain_method')`` (text vectors, then ``synthesize``).

Upstream side: ``mapper_registry['residual_channelin']`` (shared backbone, depth 4, heads of
depth 2) for a 64 px generator, random weights (seeded; its Linear weights x20 so that the
offsets are not negligible: upstream initialises them at 0.01 x Xavier); the source generator
is HyperDomainNet's own ``uda_models['stylegan2']`` (random weights, saved as a rosinality
``{'g_ema', 'latent_avg'}`` file).  Both sides get the same text embedding, a fixed random
unit vector: CLIP itself is checked by ``check_clip.py``.

Run patches: ``gan_models.StyleGAN2.op.fused_act`` / ``.upfirdn2d`` are blocked so that the
upstream ``op/__init__.py`` takes its own ``except`` branch (its ``*_torch_native.py``) instead
of compiling CUDA code; stubs for ``clip`` and ``omegaconf`` (text encoder / config loader),
``restyle_encoders.psp`` (an encoder for image domains, unused); ``load_clip`` and
``Inferencer._encode_text`` are replaced to return the fixed embedding.
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import (
    Recorder,
    block,
    commit_of,
    convert,
    main,
    perturb,
    repo_dir,
    stub,
    tame_bn,
    use_upstream,
)

REPO = "MACderRu/HyperDomainNet"
SIZE = 64


class AttrDict(dict):  # the config object type upstream passes around
    __getattr__ = dict.__getitem__


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    root = repo_dir(upstream, REPO)
    commit = commit_of(upstream, REPO)
    block("gan_models.StyleGAN2.op.fused_act")
    block("gan_models.StyleGAN2.op.upfirdn2d")
    stub("omegaconf", MISSING="???")
    stub("clip", tokenize=None)
    stub("restyle_encoders.psp", pSp=None)
    use_upstream(root)
    import core.utils.example_utils as eu
    from core.mappers import mapper_registry
    from core.uda_models import uda_models
    from core.utils.common import get_stylegan_conv_dimensions

    import stylebridge
    from stylebridge.core.interfaces import Inversion
    from stylebridge.core.synthesis import synthesize

    eu.load_clip = lambda name, device: (None, None)
    torch.manual_seed(0)
    g = uda_models["stylegan2"](img_size=SIZE, device="cpu").generator
    perturb(g, 31, 0.3)
    with torch.no_grad():
        mean = g.mean_latent(4096)
    gck = work / f"hdn_g_ema_{SIZE}.pt"
    torch.save({"g_ema": g.state_dict(), "latent_avg": mean[0]}, gck)
    sb_gen = work / f"hdn_gen_{SIZE}.safetensors"
    convert("stylegan2-rosinality", gck, sb_gen)

    mc = dict(backbone_type="shared", mapper_type="residual_channelin", activation="relu",
              input_dimension=512, width=512, head_depth=2, backbone_depth=4,
              no_coarse=False, no_fine=False, no_medium=False)
    mapper = mapper_registry["residual_channelin"](AttrDict(mc),
                                                   get_stylegan_conv_dimensions(SIZE))
    perturb(mapper, 61, 0.5)
    tame_bn(mapper, 62)
    with torch.no_grad():
        for m in mapper.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(20)
    sg2 = dict(img_size=SIZE, latent_size=512, map_layers=8, channel_multiplier=2,
               device="cpu", checkpoint_path=str(gck))
    path = work / f"hdn_mapper_{SIZE}.pt"
    torch.save({"model_type": "mapper", "mapper_config": mc, "patch_key": "cin_mult",
                "state_dict": mapper.state_dict(), "sg2_params": sg2, "da_type": "td",
                "clip_encoder": "ViT-B/32"}, path)
    ckpt = torch.load(path, map_location="cpu")
    ckpt["mapper_config"] = AttrDict(ckpt["mapper_config"])
    inf = eu.Inferencer(ckpt, "cpu")
    gen = torch.Generator().manual_seed(7)
    emb = torch.randn(1, 512, generator=gen)
    emb = emb / emb.norm(dim=-1, keepdim=True)
    inf._encode_text = lambda text, templates=("{}",): emb
    w = torch.randn(2, 2 * SIZE.bit_length() - 4, 512, generator=gen) * 0.5 + mean
    with torch.no_grad():
        src, trg = inf([w], text_description="a sketch", input_is_latent=True,
                       randomize_noise=False)
        offsets = inf.model_da(emb)

    sb_dom = path.with_suffix(".safetensors")
    convert("hyperdomainnet-mapper", path, sb_dom)
    G = stylebridge.create("generator", str(sb_gen)).eval()
    M = stylebridge.create("domain_method", str(sb_dom)).eval()
    M.use_text_encoder(lambda texts: emb.expand(len(texts), -1))
    M.text = "a sketch"
    size = f"mapper for a {SIZE} px generator, batch 2"
    with torch.no_grad():
        vec = M.text_vectors("a sketch")
        keys = sorted(offsets, key=lambda k: int(k.split("_")[1]))
        layers = sorted(vec)
        ours = torch.cat([vec[i].flatten() for i in layers])
        ref = torch.cat([offsets[k]["in"].flatten() for k in keys])
        rec.compare("hyperdomainnet: mapper offsets", REPO, commit,
                    "per-layer channel offsets for one text embedding, all layers "
                    "concatenated: stylebridge text_vectors vs upstream mapper(emb)['in']",
                    ours, ref, size)
        rec.compare("hyperdomainnet: source image", REPO, commit,
                    "image without domain: stylebridge vs upstream Inferencer source output",
                    synthesize(G, Inversion(w_plus=w)), src, size)
        rec.compare("hyperdomainnet: domain image", REPO, commit,
                    "domain image for the same embedding: stylebridge synthesize(G, w+, "
                    "method) vs upstream Inferencer(text_description=...)",
                    synthesize(G, Inversion(w_plus=w), method=M), trg, size)


if __name__ == "__main__":
    main("hyperdomainnet", check)
