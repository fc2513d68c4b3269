"""FSE (InterDigitalInc/FeatureStyleEncoder): upstream ``Trainer`` (configs/001.yaml) encoding
and rendering a 1024 px picture vs ``stylebridge convert fse`` + ``stylebridge.create``.

Upstream side, full size: ``fs_encoder_v2`` (its iresnet50 backbone initialised from an
ArcFace file, as upstream does) and the 1024 px ``Generator`` of FSE's pixel2style2pixel copy,
all built by ``Trainer(config, opts)``, random weights (seeded).  Files written in upstream
formats: ``arcface_backbone.pth`` (state dict), the encoder as ``Trainer.save_model`` saves it
(``143_enc.pth``: plain ``enc.state_dict()``), and a ``psp_ffhq_encode.pt``-format checkpoint
with the parts ``Trainer.initialize`` reads (``state_dict`` ``decoder.*``, ``latent_avg``).
The picture goes through test.py's transform (``Resize((1024, 1024))``, ``ToTensor``,
``Normalize(0.5, 0.5)``), ``Trainer.encode`` (bilinear down-scaling to 256 px + encoder +
``latent_avg``), then the generator with ``features_in[5] = F`` and the stored noise, as
``Trainer.test`` does.  stylebridge's generator file comes from a rosinality-format
``{'g_ema', 'latent_avg'}`` file of the same generator (``convert stylegan2-rosinality``).

Run patches: ``models.stylegan2.op`` -> ``native_ops`` (upstream compiles CUDA code); stubs for
training-only imports ``Trainer`` makes: ``face_alignment`` (landmark loss), ``lpips`` (the
LPIPS loss, which would download AlexNet weights), ``face_parsing.model.BiSeNet`` (parsing
loss, whose ResNet backbone would download weights).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import native_ops
import numpy as np
import torch
from common import (
    Recorder,
    commit_of,
    convert,
    main,
    perturb,
    repo_dir,
    shrink_convs,
    stub,
    tame_bn,
    use_upstream,
)

REPO = "InterDigitalInc/FeatureStyleEncoder"


class _BiSeNet(torch.nn.Module):  # stand-in for face_parsing.model.BiSeNet (loss only)
    def __init__(self, n_classes: int = 19) -> None:
        super().__init__()

    def load_state_dict(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        return None


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    root = repo_dir(upstream, REPO)
    commit = commit_of(upstream, REPO)
    stub("face_alignment")
    stub("lpips", LPIPS=lambda **kwargs: torch.nn.Identity())
    stub("face_parsing.model", BiSeNet=_BiSeNet)
    native_ops.install("models.stylegan2.op",
                       root / "pixel2style2pixel" / "models" / "stylegan2" / "op")
    use_upstream(root)
    import yaml
    from arcface.iresnet import iresnet50
    from PIL import Image
    from torchvision import transforms
    from trainer import Trainer

    torch.manual_seed(0)
    arc = iresnet50()
    perturb(arc, 11, 0.3)
    tame_bn(arc, 16)
    arc_path = work / "arcface_backbone.pth"
    torch.save(arc.state_dict(), arc_path)
    with open("configs/001.yaml") as f:
        config = yaml.load(f, Loader=yaml.FullLoader)
    config["device"] = "cpu"
    opts = argparse.Namespace(arcface_model_path=str(arc_path),
                              parsing_model_path=str(work / "parsing_unused.pth"))
    torch.save({}, opts.parsing_model_path)  # read by Trainer.initialize into the stub
    tr = Trainer(config, opts)
    perturb(tr.enc, 12, 0.3)
    tame_bn(tr.enc, 15)
    shrink_convs(tr.enc, 0.5)
    enc_path = work / "143_enc.pth"
    torch.save(tr.enc.state_dict(), enc_path)
    gen = tr.StyleGAN
    perturb(gen, 14, 0.3)
    with torch.no_grad():
        latent_avg = gen.mean_latent(10000).repeat(18, 1)
    psp_path = work / "psp_ffhq_encode_fse.pt"
    torch.save({"state_dict": {f"decoder.{k}": v for k, v in gen.state_dict().items()},
                "latent_avg": latent_avg,
                "opts": {"encoder_type": "GradualStyleEncoder", "output_size": 1024,
                         "start_from_latent_avg": True, "learn_in_w": False}}, psp_path)
    rosi_path = work / "fse_stylegan2_1024.pt"
    torch.save({"g_ema": gen.state_dict(), "latent_avg": latent_avg[0]}, rosi_path)
    tr.initialize(str(psp_path), opts.arcface_model_path, opts.parsing_model_path)
    tr.enc.eval()
    tr.StyleGAN.eval()

    rng = np.random.RandomState(3)  # a smooth random 1024 px picture
    pil = Image.fromarray((rng.rand(64, 64, 3) * 255).astype(np.uint8)).resize(
        (1024, 1024), Image.BICUBIC)
    to_input = transforms.Compose([transforms.Resize((1024, 1024)), transforms.ToTensor(),
                                   transforms.Normalize([0.5] * 3, [0.5] * 3)])
    noise = [getattr(tr.StyleGAN.noises, f"noise_{i}") for i in range(tr.StyleGAN.num_layers)]
    with torch.no_grad():
        tr.n_iter = 1e5
        w_up, fea_up = tr.encode(to_input(pil).unsqueeze(0))
        feats = [None] * 5 + [fea_up] + [None] * 12
        img_up, _ = tr.StyleGAN([w_up], input_is_latent=True, noise=noise, features_in=feats,
                                feature_scale=1.0)
        img_up_w, _ = tr.StyleGAN([w_up], input_is_latent=True, noise=noise)

    sb_gen, sb_enc = work / "fse_gen_1024.safetensors", work / "fse_sb.safetensors"
    convert("stylegan2-rosinality", rosi_path, sb_gen)
    convert("fse", enc_path, sb_enc, f"latent_avg={psp_path}")
    import stylebridge
    from stylebridge.core.synthesis import synthesize
    E = stylebridge.create("encoder", str(sb_enc)).eval()
    G = stylebridge.create("generator", str(sb_gen)).eval()
    x01 = transforms.ToTensor()(pil).unsqueeze(0)
    size = "full size: fs_encoder_v2 at 256 px, 1024 px generator, batch 1"
    with torch.no_grad():
        inv = E.encode(x01)
        rec.compare("fse: w+", REPO, commit,
                    "W+ latents: stylebridge encode(1024 px [0,1] picture) vs upstream "
                    "Trainer.encode (test.py transform)", inv.w_plus, w_up, size)
        rec.compare("fse: feature F", REPO, commit,
                    "generator feature F at layer K=5: stylebridge vs upstream Trainer.encode",
                    inv.features[5], fea_up, size)
        rec.compare("fse: image (generator only)", REPO, commit,
                    "image: stylebridge generator on upstream W+ vs upstream StyleGAN "
                    "(stored noise, no features)",
                    G([w_up], input_is_latent=True, randomize_noise=False), img_up_w, size)
        rec.compare("fse: image with F (upstream W+, F)", REPO, commit,
                    "image: stylebridge G.synthesis(features={5: F}) on upstream W+/F vs "
                    "upstream StyleGAN(features_in[5]=F)",
                    G.synthesis(G.styles(w_up), randomize_noise=False, features={5: fea_up}),
                    img_up, size)
        rec.compare("fse: image (end to end)", REPO, commit,
                    "image: stylebridge encode + synthesize(G, inv) vs upstream encode + "
                    "StyleGAN(features_in[5]=F)", synthesize(G, inv), img_up, size)


if __name__ == "__main__":
    main("fse", check)
