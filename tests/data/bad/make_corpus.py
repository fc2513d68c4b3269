"""Write the bad-input corpus (binary cases are generated, never committed).

    python tests/data/bad/make_corpus.py OUT_DIR

Every file name says what is wrong with it; ``CASES`` maps each name to its
category.  The tests (``tests/test_bad_inputs.py``) generate the corpus into a
temporary folder and run each file through the relevant CLI command.
"""

from __future__ import annotations

import io
import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

# name -> category ("image" files go to image commands, "checkpoint" files to checkpoint commands)
CASES: dict[str, str] = {
    "truncated.jpg": "image",
    "truncated.png": "image",
    "zero_bytes.png": "image",
    "text_named.png": "image",
    "sixteen_bit.png": "image-ok",      # readable: converted, not refused
    "cmyk.jpg": "image-ok",
    "rgba.png": "image-ok",
    "grayscale.png": "image-ok",
    "huge_dimensions.png": "image",     # header claims 100000 x 100000 pixels
    "no_face.png": "image-noface",
    "corrupt_header.safetensors": "checkpoint",
    "wrong_shapes.safetensors": "checkpoint",
    "other_resolution.safetensors": "checkpoint",
    "nan_weights.safetensors": "checkpoint",
    "no_stylebridge_header.safetensors": "checkpoint",
    "encoder_kind.safetensors": "checkpoint",
    # crafted headers (issue 19, item 2): refused before anything is allocated
    "crafted_n_mlp.safetensors": "crafted-generator",
    "crafted_channels.safetensors": "crafted-generator",
    "crafted_float_size.safetensors": "crafted-generator",
    "crafted_string_size.safetensors": "crafted-generator",
    "crafted_nan_lr_mlp.safetensors": "crafted-generator",
    "crafted_implied_memory.safetensors": "crafted-generator",
    "crafted_units.safetensors": "crafted-encoder",
    "crafted_n_styles.safetensors": "crafted-encoder",
    "crafted_foreign_option.safetensors": "crafted-domain",
    # non-finite and mistyped weights (issue 19, item 3)
    "nan_upstream_generator.pt": "nonfinite-upstream",
    "inf_clip_weights.safetensors": "nonfinite-clip",
    "int_domain_weights.safetensors": "crafted-domain",
    "nan_domain_weights.safetensors": "crafted-domain",
    "crafted_featureshift_hidden.safetensors": "crafted-loader",
    "crafted_arcface_units.safetensors": "crafted-loader",
    # a TorchScript archive given to a state-dict converter (item 4): named, no torch advice
    "torchscript_model.pt": "torchscript",
    # a valid generator whose name parses as NAME:PATH (item 7): read as the file it is
    "c:olon_generator.safetensors": "colon-path",
}


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _huge_png_header(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose IHDR claims a gigantic size (tiny file)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


def _tiny_generator_checkpoint(path: Path, size: int, mutate=None) -> None:
    from stylebridge.core.stylegan2 import Generator
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2

    torch.manual_seed(0)
    gen = Generator(size=size, style_dim=8, n_mlp=1,
                    channels={r: 4 for r in (4, 8, 16, 32, 64)})
    save_stylegan2(path, gen)
    if mutate is not None:
        mutate(path)


def _with_config(src: Path, dst: Path, change, plugin: str | None = None) -> None:
    """Copy checkpoint ``src`` to ``dst`` with ``change(config)`` applied to its header."""
    from safetensors import safe_open

    with safe_open(str(src), framework="pt") as fh:
        meta = dict(fh.metadata())
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    header = json.loads(meta["stylebridge"])
    change(header["config"])
    header["plugin"] = plugin or header["plugin"]
    meta["stylebridge"] = json.dumps(header)  # NaN stays NaN (json writes it)
    save_file(tensors, str(dst), metadata=meta)


def _crafted(out: Path) -> None:
    from stylebridge.plugins.domains.stylespace import StyleSpace
    from stylebridge.plugins.encoders.psp import E4EEncoder

    gen = out / "_tiny_generator.safetensors"
    _tiny_generator_checkpoint(gen, 16)

    def generator(name: str, **changes) -> None:
        _with_config(gen, out / name, lambda c: c["generator"].update(changes))

    generator("crafted_n_mlp.safetensors", n_mlp=10**9)
    generator("crafted_channels.safetensors", channels={"4": 2**31, "8": 4, "16": 4})
    generator("crafted_float_size.safetensors", size=32.5)
    generator("crafted_string_size.safetensors", size="32")
    generator("crafted_nan_lr_mlp.safetensors", lr_mlp=float("nan"))
    # within every range, but 4096 channels at 1024 px imply ~10 GB the file does not hold
    generator("crafted_implied_memory.safetensors", size=1024,
              channels={str(2**i): 4096 for i in range(2, 11)})
    gen.unlink()

    torch.manual_seed(0)
    enc = out / "_tiny_encoder.safetensors"
    e4e = E4EEncoder(n_styles=8, style_dim=8, input_size=64, widths=(16, 16, 16, 16),
                     units=(1, 1, 1, 1))
    from stylebridge.core.checkpoint import save_checkpoint

    save_checkpoint(enc, e4e.state_dict(), kind="encoder", plugin="e4e", config=e4e.config())
    _with_config(enc, out / "crafted_units.safetensors", lambda c: c.update(units=[10**6] * 4))
    _with_config(enc, out / "crafted_n_styles.safetensors", lambda c: c.update(n_styles=2**20))
    enc.unlink()
    dom = StyleSpace(size=16, style_dim=8, channels={4: 4, 8: 4, 16: 4})
    dom_path = out / "_tiny_domain.safetensors"
    save_checkpoint(dom_path, dom.state_dict(), kind="domain_method", plugin="stylespace",
                    config=dom.config())
    # a StyleSpace config under an affine_plus header: `torgb`, which affine_plus does not take
    _with_config(dom_path, out / "crafted_foreign_option.safetensors", lambda c: None,
                 plugin="affine_plus")
    tensors = dom.state_dict()
    name = sorted(tensors)[0]
    save_checkpoint(out / "int_domain_weights.safetensors",
                    {**tensors, name: tensors[name].to(torch.int64)}, kind="domain_method",
                    plugin="stylespace", config=dom.config())
    bad = tensors[name].clone()
    bad[0] = float("nan")
    save_checkpoint(out / "nan_domain_weights.safetensors", {**tensors, name: bad},
                    kind="domain_method", plugin="stylespace", config=dom.config())
    dom_path.unlink()
    torch.save({"g_ema": {"style.1.weight": torch.full((2, 2), float("nan"))}},
               out / "nan_upstream_generator.pt")
    from stylebridge.plugins.nets.irse import ARCFACE_KIND, ARCFACE_PLUGIN, ArcFaceIRSE50
    from stylebridge.plugins.renderers.featureshift import FeatureShift, save_featureshift

    fs_path = out / "_tiny_featureshift.safetensors"
    save_featureshift(fs_path, FeatureShift(feature_channels=8, hidden=8, n_blocks=3, layer=3))
    _with_config(fs_path, out / "crafted_featureshift_hidden.safetensors",
                 lambda c: c.update(hidden=10**7))
    fs_path.unlink()
    arc = ArcFaceIRSE50(input_size=32, embedding_dim=8, widths=(16, 16, 16, 16),
                        units=(1, 1, 1, 1))
    arc_path = out / "_tiny_arcface.safetensors"
    save_checkpoint(arc_path, arc.state_dict(), kind=ARCFACE_KIND, plugin=ARCFACE_PLUGIN,
                    config=arc.config())
    _with_config(arc_path, out / "crafted_arcface_units.safetensors",
                 lambda c: c.update(units=[10**6] * 4))
    arc_path.unlink()
    import warnings

    with warnings.catch_warnings():  # torch.jit.script is deprecated; the archive format is not
        warnings.simplefilter("ignore")
        torch.jit.script(torch.nn.Linear(2, 2)).save(str(out / "torchscript_model.pt"))
    _tiny_generator_checkpoint(out / "c:olon_generator.safetensors", 16)
    save_file({"visual.proj": torch.tensor([[1.0, float("inf")]])},
              str(out / "inf_clip_weights.safetensors"))


def make_corpus(out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8))
    jpg = io.BytesIO()
    photo.save(jpg, format="JPEG")
    png = _png_bytes(photo)
    files = {
        "truncated.jpg": jpg.getvalue()[: len(jpg.getvalue()) // 2],
        "truncated.png": png[: len(png) // 2],
        "zero_bytes.png": b"",
        "text_named.png": b"this is a text file, not a PNG\n",
        "huge_dimensions.png": _huge_png_header(100_000, 100_000),
    }
    for name, data in files.items():
        (out / name).write_bytes(data)
    Image.fromarray(rng.integers(0, 65535, (64, 64), dtype=np.uint16)).save(out / "sixteen_bit.png")
    photo.convert("CMYK").save(out / "cmyk.jpg", format="JPEG")
    photo.convert("RGBA").save(out / "rgba.png")
    photo.convert("L").save(out / "grayscale.png")
    try:
        from skimage import data as skdata

        Image.fromarray(skdata.chelsea()).save(out / "no_face.png")  # a cat
    except ImportError:  # pragma: no cover - scikit-image is a dependency
        photo.save(out / "no_face.png")

    ck = out / "corrupt_header.safetensors"
    _tiny_generator_checkpoint(ck, 16)
    raw = bytearray(ck.read_bytes())
    raw[10:40] = b"{" * 30
    ck.write_bytes(bytes(raw))

    def wrong_shapes(path: Path) -> None:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        tensors["g_ema.conv1.activate.bias"] = torch.zeros(7)
        save_file(tensors, str(path), metadata=meta)

    def nan_weights(path: Path) -> None:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata()
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        tensors["g_ema.style.1.weight"][0, 0] = float("nan")
        save_file(tensors, str(path), metadata=meta)

    _tiny_generator_checkpoint(out / "wrong_shapes.safetensors", 16, wrong_shapes)
    _tiny_generator_checkpoint(out / "other_resolution.safetensors", 64)
    _tiny_generator_checkpoint(out / "nan_weights.safetensors", 16, nan_weights)
    save_file({"x": torch.zeros(2)}, str(out / "no_stylebridge_header.safetensors"))
    from stylebridge.core.checkpoint import save_checkpoint

    save_checkpoint(out / "encoder_kind.safetensors", {"x": torch.zeros(2)}, kind="encoder",
                    plugin="e4e", config={})
    _crafted(out)
    (out / "CASES.json").write_text(json.dumps(CASES, indent=1))
    return {name: out / name for name in CASES}


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bad-corpus")
    for name in make_corpus(target):
        print(target / name)
