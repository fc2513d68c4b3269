"""StyleRes (hamzapehlivan/StyleRes): upstream ``StyleRes.load_ckpt`` + ``edit_images`` (the
identity "inversion" edit) on a 1024 px picture vs ``stylebridge convert styleres`` +
``stylebridge.create``.

Upstream side, full size: ``models.styleres.StyleRes()`` (its e4e-style basic encoder, the
residual-feature encoder and the NVlabs-style 1024 px generator ``generator_smooth``), random
weights (seeded), random ``w_avg`` and ``latent_avg``, saved in the checkpoint layout
``load_ckpt`` reads (``e4e``, ``latent_avg``, ``generator_smooth``) and loaded back through
``load_ckpt``.  The picture goes through upstream ``ImageProcessor.preprocess_image``.

Run patch: stub for ``editings.editor`` (the editing directions module; only ``edit`` with the
identity "inversion" configuration is used, which returns the latent unchanged).  The
generator's NVlabs-style ops use their reference implementations on the CPU.
"""

from __future__ import annotations

import types
from pathlib import Path

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

REPO = "hamzapehlivan/StyleRes"


class _Editor:  # stand-in for editings.editor.Editor: the identity edit
    def edit(self, latent: torch.Tensor, cfg: object) -> torch.Tensor:
        return latent


def check(upstream: Path, work: Path, rec: Recorder) -> None:
    root = repo_dir(upstream, REPO)
    commit = commit_of(upstream, REPO)
    stub("editings.editor", Editor=_Editor)
    use_upstream(root)
    from datasets.process_image import ImageProcessor
    from models.styleres import StyleRes
    from PIL import Image
    from torchvision import transforms

    torch.manual_seed(0)
    m = StyleRes()
    perturb(m.encoder, 21, 0.3)
    tame_bn(m.encoder, 22)
    shrink_convs(m.encoder, 0.5)
    perturb(m.generator, 23, 0.3)
    gen = torch.Generator().manual_seed(24)
    with torch.no_grad():
        m.generator.mapping.w_avg.copy_(torch.randn(512, generator=gen) * 0.3)
    latent_avg = torch.randn(18, 512, generator=gen) * 0.5
    ckpt = work / "styleres_ffhq.pth"
    torch.save({"e4e": m.encoder.basic_encoder.state_dict(), "latent_avg": latent_avg,
                "generator_smooth": m.generator.state_dict()}, ckpt)
    up = StyleRes()
    up.load_ckpt(str(ckpt))
    up.send_to_device()
    up.eval()
    rng = np.random.RandomState(4)
    pil = Image.fromarray((rng.rand(64, 64, 3) * 255).astype(np.uint8)).resize(
        (1024, 1024), Image.BICUBIC)
    x_up = ImageProcessor.preprocess_image(pil, is_batch=False)
    with torch.no_grad():
        w_up, skips = up.encoder(x_up)
        img_up = up.edit_images(x_up, types.SimpleNamespace(method="inversion"))
        img_plain = up.generator(w_up, None, **up.G_kwargs_val)

    sb_enc, sb_gen = work / "styleres_sb.safetensors", work / "styleres_gen.safetensors"
    convert("styleres", ckpt, sb_enc, f"generator={sb_gen}")
    import stylebridge
    from stylebridge.core.synthesis import synthesize
    E = stylebridge.create("encoder", str(sb_enc)).eval()
    G = stylebridge.create("generator", str(sb_gen)).eval()
    x01 = transforms.ToTensor()(pil).unsqueeze(0)
    size = "full size: encoders at 256 px, 1024 px generator, batch 1"
    with torch.no_grad():
        inv = E.encode(x01, generator=G)
        rec.compare("styleres: w+", REPO, commit,
                    "W+ latents: stylebridge encode(1024 px [0,1] picture) vs upstream "
                    "encoder(ImageProcessor.preprocess_image)", inv.w_plus, w_up, size)
        rec.compare("styleres: 64x64 encoder feature", REPO, commit,
                    "the encoder's 64x64 skip feature: stylebridge vs upstream",
                    inv.extras["styleres.encoder_features"], skips["64x64"], size)
        rec.compare("styleres: image (generator only)", REPO, commit,
                    "image: stylebridge generator on upstream W+ vs upstream "
                    "generator_smooth (const noise, no residual features)",
                    G([w_up], input_is_latent=True, randomize_noise=False), img_plain, size)
        rec.compare("styleres: image (end to end)", REPO, commit,
                    "image: stylebridge encode + synthesize(G, inv) vs upstream "
                    "StyleRes.edit_images (inversion)", synthesize(G, inv), img_up, size)


if __name__ == "__main__":
    main("styleres", check)
