"""MindTheGap (issue 17): one-shot fine-tuning stored as a generator delta.

The delta is checked against a fine-tuned generator built independently (a copy of the
generator whose parameters were changed in place), on both conv evaluation orders and on
the activations; the block edits the generator gained for it (bias, noise strength, constant
input) are checked by hand on single modules.  Training runs on the tiny 32 px preset (random
e4e, FSE and tiny CLIPs, random LPIPS: tests of the machinery, not of a domain).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import one_torch_thread, tiny_generator
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import read_header
from stylebridge.core.interfaces import Inversion, LossBatch
from stylebridge.core.stylegan2.layers import ConvEdit, StyledConv, ToRGB
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import ConversionError, StylebridgeError
from stylebridge.pipelines import train_mindthegap as mtg
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset
from stylebridge.plugins.domains.mindthegap import MindTheGap, phase_layers
from stylebridge.plugins.losses.mindthegap import (
    DEFAULT_LOSSES,
    ReferenceClipLoss,
    ReferenceL2Loss,
    WithinDomainLoss,
)
from stylebridge.registry import get_registry


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)


def _clip_args(preset: TinyPreset) -> list[str]:
    out = []
    for name, path in preset.clip_weights.items():
        out += ["--clip", name, "--clip-weights", f"{name}={path}"]
    return out


def _config(preset: TinyPreset, out: Path, **kw: Any) -> mtg.MindTheGapConfig:
    base = dict(reference=preset.images / "photo0.png", generator=str(preset.generator), out=out,
                encoder=f"e4e:{preset.e4e}", allow_random_lpips=True, steps=6, batch=2,
                lr=0.01, clip=list(preset.clip_weights),
                clip_weights=[f"{k}={v}" for k, v in preset.clip_weights.items()],
                sample_every=0, checkpoint_every=0, device="cpu")
    base.update(kw)
    return mtg.MindTheGapConfig(**base)


def _fine_tuned(gen: torch.nn.Module, seed: int, *, mapping: bool = False,
                torgb: bool = True) -> torch.nn.Module:
    """A copy of ``gen`` with its synthesis parameters changed in place (the 'fine-tuning')."""
    tuned = copy.deepcopy(gen)
    rng = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in tuned.named_parameters():
            if name.startswith("style.") and not mapping:
                continue
            if name.startswith(("to_rgb", "to_rgbs")) and not torgb:
                continue
            p.add_(0.05 * torch.randn(p.shape, generator=rng))
    return tuned


def _desc(gen: Any) -> dict:
    return {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}


# ---------------------------------------------------------------------------------------------
# the block edits in core, by hand


def test_conv_edit_bias_and_noise_deltas_equal_changed_modules() -> None:
    torch.manual_seed(0)
    conv = StyledConv(6, 5, 3, 8)
    x, s, noise = torch.randn(2, 6, 8, 8), torch.randn(2, 6), torch.randn(2, 1, 8, 8)
    db, dn, dw = torch.randn(5), torch.randn(1), 0.1 * torch.randn(1, 5, 6, 3, 3)
    changed = copy.deepcopy(conv)
    with torch.no_grad():
        changed.activate.bias.add_(db)
        changed.noise.weight.add_(dn)
        changed.conv.weight.add_(dw)
    got = conv(x, s, noise, ConvEdit(weight_delta=dw, bias_delta=db, noise_delta=dn))
    torch.testing.assert_close(got, changed(x, s, noise), atol=1e-5, rtol=0)
    assert not torch.allclose(got, conv(x, s, noise), atol=1e-3)
    # by hand: leaky_relu(conv + noise·(w + dn) + b + db) · sqrt(2)
    pre = conv.conv(x, s, dw) + noise * (conv.noise.weight + dn)
    hand = F.leaky_relu(pre + (conv.activate.bias + db).view(1, -1, 1, 1), 0.2) * 2 ** 0.5
    torch.testing.assert_close(got, hand, atol=1e-5, rtol=0)
    rgb = ToRGB(6, 8, upsample=False)
    d_rgb = torch.randn(3)
    torch.testing.assert_close(rgb(x, s, None, ConvEdit(bias_delta=d_rgb)),
                               rgb(x, s) + d_rgb.view(1, 3, 1, 1), atol=1e-6, rtol=0)


def test_input_delta_changes_the_constant_only_on_layer_zero() -> None:
    gen = tiny_generator(seed=1)
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(0)))
    styles = gen.styles(w)
    d = torch.randn(1, gen.cfg.channels[4], 4, 4)
    with torch.no_grad():
        f0, _ = gen.features_upto(styles, 0, randomize_noise=False,
                                  weight_deltas={0: ConvEdit(input_delta=d)})
    torch.testing.assert_close(f0, gen.input.input.expand(2, -1, -1, -1) + d)
    with pytest.raises(ValueError, match="only style layer 0"):
        gen.synthesis(styles, weight_deltas={2: ConvEdit(input_delta=d)})


# ---------------------------------------------------------------------------------------------
# the delta against a fine-tuned generator


@pytest.mark.parametrize("fused", [True, False])
def test_delta_on_a_fresh_generator_reproduces_the_fine_tuned_one(fused: bool) -> None:
    gen = tiny_generator(seed=2)
    tuned = _fine_tuned(gen, seed=3)
    method = MindTheGap(**_desc(gen), layers=list(range(gen.n_style_layers)))
    method.set_from_generators(gen.state_dict(), tuned.state_dict())
    fresh = tiny_generator(seed=2)   # a fresh copy of the source, never touched
    for g in (fresh, tuned):
        for m in g.modules():
            if hasattr(m, "fused"):
                m.fused = fused
    w = gen.make_wplus(torch.randn(3, gen.style_dim, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        want = tuned.synthesis(tuned.styles(w), randomize_noise=False)
        got = synthesize(fresh, Inversion(w_plus=w), method=method)
        source = fresh.synthesis(fresh.styles(w), randomize_noise=False)
        assert (want - source).abs().max() > 0.1
        torch.testing.assert_close(got, want, atol=2e-5, rtol=0)
        # every activation too, and the generator's own parameters are untouched
        styles = method.styles(fresh, w)
        deltas = method.weight_deltas(fresh)
        for k in range(gen.n_latent):
            a, _ = fresh.features_upto(styles, k, randomize_noise=False, weight_deltas=deltas)
            b, _ = tuned.features_upto(tuned.styles(w), k, randomize_noise=False)
            torch.testing.assert_close(a, b, atol=2e-5, rtol=0)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                  gen.state_dict().values(), strict=True))


def test_offset_scale_scales_the_delta_per_layer() -> None:
    gen = tiny_generator(seed=5)
    half = _fine_tuned(gen, seed=6, torgb=False)
    full = copy.deepcopy(gen)
    with torch.no_grad():   # full = source + 2·(half - source)
        for p, q, r in zip(full.parameters(), half.parameters(), gen.parameters(), strict=True):
            p.copy_(r + 2 * (q - r))
    method = MindTheGap(**_desc(gen))
    assert method.layers == gen.conv_style_indices()   # upstream's default: convs, no ToRGB
    method.set_from_generators(gen.state_dict(), full.state_dict())
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(7)))
    inv = Inversion(w_plus=w)
    with torch.no_grad():
        got = synthesize(gen, inv, method=method, offset_scale=[0.5] * gen.n_style_layers)
        torch.testing.assert_close(got, half.synthesis(half.styles(w), randomize_noise=False),
                                   atol=2e-5, rtol=0)
        zero = synthesize(gen, inv, method=method, offset_scale=[0.0] * gen.n_style_layers)
        torch.testing.assert_close(zero, gen.synthesis(gen.styles(w), randomize_noise=False),
                                   atol=1e-6, rtol=0)


def test_reference_mixing_renders_the_fine_rows_of_the_reference(tmp_path: Path) -> None:
    gen = tiny_generator(seed=12)
    tuned = _fine_tuned(gen, seed=13, torgb=False)
    method = MindTheGap(**_desc(gen), mix_from=3)
    method.set_from_generators(gen.state_dict(), tuned.state_dict())
    g = torch.Generator().manual_seed(14)
    ref = gen.make_wplus(torch.randn(1, gen.style_dim, generator=g))[0] + 0.3
    method.set_reference_latent(ref)
    assert method.mix and method.config()["mix_from"] == 3
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=g))
    mixed = w.clone()
    mixed[:, 3:] = ref[3:]          # upstream: output_latent[:, 7:] = style_latent[:, 7:]
    inv = Inversion(w_plus=w)
    with torch.no_grad():
        torch.testing.assert_close(synthesize(gen, inv, method=method),
                                   tuned.synthesis(tuned.styles(mixed), randomize_noise=False),
                                   atol=2e-5, rtol=0)
        plain = tuned.synthesis(tuned.styles(w), randomize_noise=False)
        with method.mixing(False):  # what training renders
            torch.testing.assert_close(synthesize(gen, inv, method=method), plain,
                                       atol=2e-5, rtol=0)
        zero = synthesize(gen, inv, method=method, offset_scale=[0.0] * gen.n_style_layers)
        assert torch.equal(zero, gen.synthesis(gen.styles(w), randomize_noise=False))
        # saved and loaded; mix=false at load time renders the input's own rows
        path = method.save(tmp_path / "m.safetensors")
        loaded = get_registry().load("domain_method", path)
        assert torch.equal(loaded.reference_latent, method.reference_latent)
        torch.testing.assert_close(synthesize(gen, inv, method=loaded),
                                   synthesize(gen, inv, method=method), atol=0, rtol=0)
        off = get_registry().load("domain_method", path, mix=False)
        torch.testing.assert_close(synthesize(gen, inv, method=off), plain, atol=2e-5, rtol=0)


def test_phases_follow_upstream_rosinality_indices() -> None:
    # 1024 px: 17 styled convs; rosinality convs[k] is style layer k + 2 + k // 2
    assert phase_layers("default", 26) == [0, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21,
                                           23, 24]
    assert phase_layers("shape", 26) == [0, 2, 3]
    assert phase_layers("texture", 26) == [0, 5, 6, 8, 9, 11, 12, 14, 15]
    with pytest.raises(ValueError, match="phase 'x'"):
        phase_layers("x", 26)


# ---------------------------------------------------------------------------------------------
# losses


def test_reference_losses_by_hand(preset: TinyPreset) -> None:
    from stylebridge.pipelines.train_domain import build_clip_models
    from stylebridge.plugins.losses.clip import ClipGuide

    models = build_clip_models(list(preset.clip_weights), dict(preset.clip_weights),
                               allow_random=False)
    g = torch.Generator().manual_seed(0)
    ims = {k: torch.rand(n, 3, 32, 32, generator=g) * 2 - 1 for k, n in
           (("output", 3), ("source", 3), ("reference", 1), ("reference_output", 1),
            ("reference_source", 1))}
    guide = ClipGuide(models, [torch.zeros(1, 32)] * 2, mode="image", target="r")
    batch = LossBatch(clip_guide=guide, **ims)
    e = {k: [m.encode_images((v + 1) / 2) for m in models] for k, v in ims.items()}
    within = sum((1 - F.cosine_similarity(
        e["output"][i] - e["reference"][i], e["source"][i] - e["reference_source"][i])).mean()
        for i in range(2))
    torch.testing.assert_close(WithinDomainLoss()(batch), within, atol=1e-5, rtol=0)
    ref = sum((1 - (e["reference_output"][i] * e["reference"][i]).sum()) for i in range(2))
    torch.testing.assert_close(ReferenceClipLoss()(batch), ref, atol=1e-5, rtol=0)
    l2 = ((ims["reference_output"] - ims["reference"]) ** 2).mean()
    torch.testing.assert_close(ReferenceL2Loss()(batch), l2)
    assert DEFAULT_LOSSES == ("clip_direction:1.0", "mtg_within:0.5", "mtg_ref_clip:30",
                              "mtg_ref_l2:10", "mtg_ref_lpips:10")


# ---------------------------------------------------------------------------------------------
# training, checkpoint, adapt


def test_trains_round_trips_and_renders_with_two_encoders(preset: TinyPreset,
                                                           tmp_path: Path) -> None:
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.pipelines.adapt import Adapter
    from stylebridge.registry.resolve import load_plugin

    out = tmp_path / "run.safetensors"
    gen_before = load_stylegan2(preset.generator).generator.state_dict()
    outcome = mtg.train_mindthegap(_config(preset, out, refine_steps=2))
    totals = [r["total"] for r in outcome.result.history]
    assert len(totals) == 6 and totals[-1] < totals[0]
    assert len(outcome.refine_history) == 2
    header = read_header(out)
    assert header.kind == "domain_method" and header.plugin == "mindthegap"
    assert set(header.extra["losses"]) == {"clip_direction", "mtg_within", "mtg_ref_clip",
                                           "mtg_ref_l2", "mtg_ref_lpips"}
    registry = get_registry()
    loaded = registry.load("domain_method", out)
    assert isinstance(loaded, MindTheGap) and loaded.has_weight_offsets()
    gen = load_stylegan2(preset.generator).generator
    assert all(torch.equal(v, gen_before[k]) for k, v in gen.state_dict().items())
    # the saved delta renders the reference reconstruction written beside the run
    png = np.asarray(Image.open(outcome.reference_png))
    assert outcome.reference_png == tmp_path / "run_reference.png"
    assert png.shape == (gen.size, 3 * gen.size, 3)
    w_ref = mtg.load_checkpoint(outcome.reference_latent, kind=mtg.LATENT_KIND)[1]["w_plus"]
    # upstream's inference mixing: rows round(7·8/18) = 3: from the reference
    assert loaded.mix and loaded.mix_from == 3 and torch.equal(loaded.reference_latent, w_ref[0])
    with torch.no_grad():
        adapted = synthesize(gen, Inversion(w_plus=w_ref), method=loaded)
    tile = torch.from_numpy(png[:, 2 * gen.size:].copy()).permute(2, 0, 1).float() / 255
    expect = ((adapted[0] + 1) / 2).clamp(0, 1)
    assert (tile - expect).abs().max() <= 1 / 255 + 1e-6
    ref = mtg.load_reference(preset.images / "photo0.png", gen.size)[0]
    assert (torch.from_numpy(png[:, :gen.size].copy()).permute(2, 0, 1).float() / 255
            - ref).abs().max() <= 1 / 255 + 1e-6
    images = torch.stack([mtg.load_reference(preset.images / f"photo{i}.png", gen.size)[0]
                          for i in (1, 2)])
    for spec in (f"e4e:{preset.e4e}", f"fse:{preset.fse}"):
        encoder = load_plugin("encoder", spec)
        outputs = Adapter(encoder, gen, {"mtg": loaded}).run(images)
        assert set(outputs) == {"inversion", "mtg"}
        assert outputs["mtg"].shape == (2, 3, gen.size, gen.size)
        assert not torch.allclose(outputs["mtg"], outputs["inversion"], atol=1e-3)


def test_resume_continues_exactly(preset: TinyPreset, tmp_path: Path) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    mtg.train_mindthegap(_config(preset, a, steps=4, checkpoint_every=2))
    mtg.train_mindthegap(_config(preset, b, steps=2))
    with pytest.raises(StylebridgeError, match="--resume"):
        mtg.train_mindthegap(_config(preset, b, steps=4))
    mtg.train_mindthegap(_config(preset, b, steps=4, resume=True))
    from safetensors.torch import load_file

    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def test_a_resume_refusal_names_the_reference_setting_that_changed(preset: TinyPreset,
                                                                    tmp_path: Path) -> None:
    """Every change to how the reference was inverted said `holds the inversion of another
    reference or encoder` (wrong for --refine-steps); it names the option, then and now."""
    out = tmp_path / "b.safetensors"
    mtg.train_mindthegap(_config(preset, out, steps=2, refine_steps=1))
    latent = tmp_path / "b_reference.safetensors"
    for change, said in ((dict(refine_steps=2), "--refine-steps 1 then, 2 now"),
                         (dict(refine_lr=0.5), "--refine-lr 0.01 then, 0.5 now"),
                         (dict(encoder=f"fse:{preset.fse}"),
                          f'--encoder "e4e:{preset.e4e}" then, "fse:{preset.fse}" now')):
        with pytest.raises(StylebridgeError) as caught:
            mtg.train_mindthegap(_config(preset, out, steps=4, resume=True,
                                         **{"refine_steps": 1, **change}))
        assert str(caught.value) == (
            f"{latent}: cannot resume with different settings: {said}; give the interrupted "
            "run's options, or start over with --force (or another --out)")


def test_phase_and_mix_options_reach_the_domain(preset: TinyPreset, tmp_path: Path) -> None:
    out = tmp_path / "shape.safetensors"
    mtg.train_mindthegap(_config(preset, out, steps=1, phase="shape", mix=False, mix_from=5))
    config = read_header(out).config
    # upstream's "shape" phase: input, conv1 and rosinality convs[0:2] = style layers 2, 3
    assert config["layers"] == [0, 2, 3] and config["input"] is True
    assert config["mix"] is False and config["mix_from"] == 5
    with pytest.raises(StylebridgeError, match="--mix-from 8: the 32px generator has W"):
        mtg.train_mindthegap(_config(preset, out, steps=1, mix_from=8, force=True))


def test_tiny_helper_returns_the_checkpoint(preset: TinyPreset, tmp_path: Path) -> None:
    path = mtg.train_tiny_mindthegap(preset.generator, preset.images / "photo1.png",
                                     tmp_path / "t.safetensors", encoder=f"e4e:{preset.e4e}",
                                     clip_weights=preset.clip_weights, steps=2)
    header = read_header(path)
    assert path == tmp_path / "t.safetensors" and header.extra["step"] == 2
    assert header.extra["random_weights"] is True
    assert (tmp_path / "t_reference.png").is_file()


# ---------------------------------------------------------------------------------------------
# converter


def _rosinality(path: Path, gen: torch.nn.Module, style_latent: torch.Tensor | None = None) -> Path:
    """A file laid out as upstream's train.py saves it (``g_ema``, ``latent_avg``,
    ``style_latent`` ``[1, n_latent, style_dim]``)."""
    state = {k: v for k, v in gen.state_dict().items() if k != "latent_avg"}
    obj = {"g_ema": state, "latent_avg": gen.latent_avg.clone()}
    if style_latent is not None:
        obj["style_latent"] = style_latent
    torch.save(obj, path)
    return path


def test_converter_turns_a_fine_tuned_file_into_the_same_generator(tmp_path: Path) -> None:
    gen = tiny_generator(seed=8)
    tuned = _fine_tuned(gen, seed=9, torgb=False)
    with torch.no_grad():
        tuned.to_rgbs[1].bias.add_(0.3)    # one ToRGB changed too: its layer is carried
    base = _rosinality(tmp_path / "ffhq.pt", gen)
    style_latent = torch.randn(1, gen.n_latent, gen.style_dim, generator=torch.Generator().manual_seed(3))
    src = _rosinality(tmp_path / "style.pt", tuned, style_latent)
    registry = get_registry()
    result = registry.get("converter", "mindthegap").obj.convert(
        src, tmp_path / "d.safetensors", base=str(base))
    method = registry.load("domain_method", result.path)
    assert method.mix and method.mix_from == 7   # upstream's rows 7: (inference.py)
    assert torch.equal(method.reference_latent, style_latent[0])
    method.mix = False   # the fine-tuned generator itself, on the input's own latents
    rgb_layer = 4 + 3 * 1
    assert method.layers == sorted([*gen.conv_style_indices(), rgb_layer]) and method.use_input
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(1)))
    with torch.no_grad():
        torch.testing.assert_close(synthesize(gen, Inversion(w_plus=w), method=method),
                                   tuned.synthesis(tuned.styles(w), randomize_noise=False),
                                   atol=2e-5, rtol=0)
    # the mapping network changed / another architecture: one-line refusals
    mapped = _rosinality(tmp_path / "mapped.pt", _fine_tuned(gen, seed=9, mapping=True))
    with pytest.raises(ConversionError, match="changed the mapping network") as info:
        registry.get("converter", "mindthegap").obj.convert(mapped, tmp_path / "x.safetensors",
                                                            base=str(base))
    assert "\n" not in str(info.value)
    other = _rosinality(tmp_path / "g64.pt", tiny_generator(seed=8, size=64))
    with pytest.raises(ConversionError, match="not the generator it was fine-tuned from"):
        registry.get("converter", "mindthegap").obj.convert(src, tmp_path / "y.safetensors",
                                                            base=str(other))
    # the base may also be our conversion of it
    from stylebridge.core.stylegan2.checkpoint import save_stylegan2

    ours = save_stylegan2(tmp_path / "ffhq.safetensors", gen)
    again = registry.load("domain_method", registry.get("converter", "mindthegap").obj.convert(
        src, tmp_path / "d2.safetensors", base=str(ours)).path)
    assert again.mix and all(torch.equal(again.state_dict()[k], v)
                             for k, v in method.state_dict().items())
    with pytest.raises(ConversionError, match="needs -o base=PATH"):
        registry.get("converter", "mindthegap").obj.convert(src, tmp_path / "z.safetensors")


# ---------------------------------------------------------------------------------------------
# CLI


def test_cli_smoke_and_bad_reference(preset: TinyPreset, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "cli.safetensors"
    argv = ["train", "mindthegap", str(preset.images / "photo2.png"), "--generator",
            str(preset.generator), "--out", str(out), "--refine-steps", "2", "--steps", "2",
            "--batch", "2", "--allow-random-lpips", "--sample-every", "1", "--device", "cpu",
            *_clip_args(preset)]
    assert main(argv) == 0, capsys.readouterr().err
    stdout = capsys.readouterr().out
    assert "wrote" in stdout and "cli_reference.png" in "".join(stdout.split())  # rich wraps
    assert read_header(out).extra["step"] == 2
    assert (tmp_path / "cli_reference.png").is_file()
    assert sorted(p.name for p in (tmp_path / "cli_samples").iterdir()) == [
        "step000001.png", "step000002.png"]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    argv2 = [*argv, "--force"]
    argv2[2] = str(bad)
    assert main(argv2) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "bad.jpg" in err[0], err
    # no VGG16 for LPIPS (the hub cache is redirected to an empty folder): told what to give
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    assert main([a for a in argv if a != "--allow-random-lpips"] + ["--force"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--lpips-backbone" in err[0], err
    # neither an encoder nor a refinement: told what to give
    i = argv.index("--refine-steps")
    argv3 = argv[:i] + argv[i + 2:] + ["--force"]
    assert main(argv3) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give --encoder" in err[0]


def test_a_published_style_installs_as_a_delta_of_the_registered_base(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The manifest's ``mtg-*`` entries convert against ``mindthegap-ffhq`` (here tiny files
    registered under those names; nothing is downloaded)."""
    from stylebridge.registry import weights_checks
    from stylebridge.registry.weights import WeightsManager, load_manifest

    # the real base is 1024 px (checked on registration): this 32 px stand-in passes as if
    monkeypatch.setitem(weights_checks.KNOWN_SIZES, "mindthegap-ffhq", 32)

    gen = tiny_generator(seed=10)
    tuned = _fine_tuned(gen, seed=11, torgb=False)
    entries = [e for e in load_manifest() if e.name in ("mindthegap-ffhq", "mtg-jojo")]
    manager = WeightsManager(tmp_path / "home", manifest=entries)
    with pytest.raises(StylebridgeError, match="mindthegap-ffhq"):
        manager.register("mtg-jojo", _rosinality(tmp_path / "jojo.pt", tuned))
    manager.register("mindthegap-ffhq", _rosinality(tmp_path / "ffhq.pt", gen))
    path = manager.register("mtg-jojo", tmp_path / "jojo.pt")
    method = get_registry().load("domain_method", path)
    assert isinstance(method, MindTheGap) and read_header(path).extra["base_file"]
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        torch.testing.assert_close(synthesize(gen, Inversion(w_plus=w), method=method),
                                   tuned.synthesis(tuned.styles(w), randomize_noise=False),
                                   atol=2e-5, rtol=0)


def test_loss_field_messages_name_mindthegap(preset: TinyPreset, tmp_path: Path) -> None:
    with pytest.raises(StylebridgeError) as info:
        mtg.train_mindthegap(_config(preset, tmp_path / "a.safetensors", losses=["mse:1"]))
    message = str(info.value)
    assert "which train mindthegap does not provide" in message, message
    assert {"clip_guide", "text", "reference"} <= set(
        message.split("it provides: ")[1].rstrip(")").split(", ")), message
    # --encoder is given (it inverts the reference): not told to give one
    with pytest.raises(StylebridgeError) as info:
        mtg.train_mindthegap(_config(preset, tmp_path / "b.safetensors", losses=["difa_w:1"]))
    assert "give --encoder" not in str(info.value)
    assert "which train mindthegap does not provide" in str(info.value)


def test_a_random_reference_encoder_is_named_in_random_parts(preset: TinyPreset,
                                                            tmp_path: Path) -> None:
    out = tmp_path / "r.safetensors"
    mtg.train_mindthegap(_config(preset, out, steps=1))
    assert "encoder" in read_header(out).extra["random_parts"]
    # a resumed run reuses the saved inversion, and still says so
    mtg.train_mindthegap(_config(preset, out, steps=2, resume=True))
    header = read_header(out)
    assert header.extra["step"] == 2 and "encoder" in header.extra["random_parts"]


def test_a_moved_reference_resumes_and_new_content_is_refused(preset: TinyPreset,
                                                              tmp_path: Path) -> None:
    """The reference's sha256 decides, not its path: a reference copied elsewhere under
    another name resumes exactly; the same path with other pixels is refused by its sha256."""
    import shutil

    full, part = tmp_path / "full.safetensors", tmp_path / "part.safetensors"
    mtg.train_mindthegap(_config(preset, full, steps=4))
    mtg.train_mindthegap(_config(preset, part, steps=2, checkpoint_every=1))
    moved = tmp_path / "elsewhere" / "ref copy.png"
    moved.parent.mkdir()
    shutil.copyfile(preset.images / "photo0.png", moved)
    mtg.train_mindthegap(_config(preset, part, steps=4, resume=True, reference=moved))
    from safetensors.torch import load_file

    ta, tb = load_file(str(full)), load_file(str(part))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    # a run now recorded with the moved path; other pixels at that path: refused
    again = tmp_path / "again.safetensors"
    mtg.train_mindthegap(_config(preset, again, steps=2, reference=moved))
    shutil.copyfile(preset.images / "photo1.png", moved)
    with pytest.raises(StylebridgeError, match=r"the reference image \(sha256\) \"[0-9a-f]{12}…\" "
                                               r"then, \"[0-9a-f]{12}…\" now"):
        mtg.train_mindthegap(_config(preset, again, steps=4, resume=True, reference=moved))
    elsewhere = tmp_path / "other.png"   # moved and changed: named by the sha256, not paths
    shutil.copyfile(preset.images / "photo2.png", elsewhere)
    with pytest.raises(StylebridgeError, match=r"the reference image \(sha256\)"):
        mtg.train_mindthegap(_config(preset, again, steps=4, resume=True, reference=elsewhere))


def test_a_damaged_reference_inversion_is_refused_in_one_line(preset: TinyPreset,
                                                              tmp_path: Path) -> None:
    """`--resume` read the saved inversion of the reference unchecked: without `w_plus` it
    stopped with a KeyError, with another shape deep in the generator."""
    out = tmp_path / "d.safetensors"
    mtg.train_mindthegap(_config(preset, out, steps=2, checkpoint_every=1))
    latent = tmp_path / "d_reference.safetensors"
    header, tensors = mtg.load_checkpoint(latent, kind=mtg.LATENT_KIND)
    w = tensors["w_plus"]
    for damaged, said in (({"other": w}, "it holds no w_plus"),
                          ({"w_plus": w[:, :3]}, f"it holds w_plus [1, 3, {w.shape[2]}] float32, "
                                                 f"not {list(w.shape)} finite floats"),
                          ({"w_plus": w.to(torch.int32)}, "int32, not")):
        mtg.save_checkpoint(latent, damaged, kind=mtg.LATENT_KIND, plugin="mindthegap",
                            extra=header.extra)
        with pytest.raises(StylebridgeError) as caught:
            mtg.train_mindthegap(_config(preset, out, steps=4, resume=True))
        message = str(caught.value)
        assert message.startswith(f"{latent}: damaged reference inversion: ") and said in message
        assert message.endswith("start over with --force (or another --out)")
