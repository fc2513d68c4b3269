"""Loading without initialising: a checkpoint's networks are built on ``meta`` and take the
file's tensors by assignment (``core/loading.py``); the NaN/Inf check of every loaded tensor is
a sum first (``core/checkpoint.all_finite``); a load imports no ``torch._dynamo``.

The parity tests build each kind the way every loader did before (on the CPU, random
initialisation, the file's tensors copied in; written out here) and compare every tensor
(dtype, strides, alignment, ``requires_grad``) and one forward output exactly."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_generator
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from stylebridge.core import checkpoint as ckpt_mod
from stylebridge.core.checkpoint import (
    all_finite,
    check_state_dict,
    load_checkpoint,
    refuse_nonfinite,
    save_checkpoint,
)
from stylebridge.core.inversion import Inversion
from stylebridge.core.stylegan2 import Generator
from stylebridge.core.stylegan2.checkpoint import load_stylegan2, save_stylegan2
from stylebridge.core.stylegan2.layers import Blur, Upsample
from stylebridge.errors import CheckpointError
from stylebridge.plugins.renderers.featureshift import load_featureshift
from stylebridge.registry import get_registry
from stylebridge.registry.resolve import load_generator

GEN = {"size": 32, "style_dim": 32, "channels": {"4": 32, "8": 32, "16": 32, "32": 16}}
IRSE = {"n_styles": 8, "style_dim": 32, "input_size": 32, "widths": [16, 24, 32, 48],
        "units": [1, 2, 1, 1]}
KINDS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "e4e": ("encoder", "e4e", IRSE),
    "psp": ("encoder", "psp", IRSE),
    "fse": ("encoder", "fse", {"mode": "features", "layer": 3, "n_latent": 8, "style_dim": 32,
                               "width": 8, "layers": [1, 1, 1, 1], "feature_channels": 32,
                               "feature_stride": 1, "input_size": 64, "resolution": 64}),
    "styleres": ("encoder", "styleres", {**IRSE, "feature_layer": 2, "feature_channels": 32,
                                         "hidden": 16}),
    "stylespace": ("domain_method", "stylespace", GEN),
    "affine_plus": ("domain_method", "affine_plus", {**GEN, "weight_offset_layers": [5]}),
    "affinelight_plus": ("domain_method", "affinelight_plus", {**GEN, "rank": 3}),
    "mindthegap": ("domain_method", "mindthegap", GEN),
    "alpha": ("calibrator", "alpha", {"widths": [32, 32, 32, 32, 32, 32, 16, 16]}),
    "featureshift": ("renderer", "featureshift", {"feature_channels": 32, "hidden": 12,
                                                   "n_blocks": 3, "layer": 3}),
}


def _perturb(module: nn.Module, seed: int) -> nn.Module:
    """Every float parameter and buffer away from its initial value (zeros, ones); BatchNorm
    variances stay positive."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in [*module.named_parameters(), *module.named_buffers()]:
            if not t.is_floating_point():
                continue
            noise = 0.1 * torch.randn(t.shape, generator=g)
            t.mul_(1 + noise.abs()) if name.endswith("running_var") else t.add_(noise)
    return module


def _old_style(cls: type, config: dict[str, Any], path: Path, prefix: str = "") -> nn.Module:
    """What the loaders did before: build on the CPU (random initialisation), then copy the
    file's tensors (safetensors' own, memory-mapped) in."""
    tensors = {k[len(prefix):]: v for k, v in load_file(path).items() if k.startswith(prefix)}
    module = cls(**config)
    module.load_state_dict(tensors, strict=True)
    return module


def _same(new: nn.Module, old: nn.Module) -> None:
    a, b = new.state_dict(keep_vars=True), old.state_dict(keep_vars=True)
    assert list(a) == list(b)
    for key in a:
        x, y = a[key], b[key]
        assert type(x) is type(y), key
        assert (x.dtype, x.device, x.shape, x.stride()) == (y.dtype, y.device, y.shape,
                                                            y.stride()), key
        assert x.is_contiguous() and x.requires_grad == y.requires_grad, key
        assert torch.equal(x, y), key
        assert x.numel() == 0 or x.data_ptr() % 64 == 0, key  # as torch allocates them
    assert [n for n, _ in new.named_buffers()] == [n for n, _ in old.named_buffers()]
    assert not any(t.is_meta for t in [*new.parameters(), *new.buffers()])
    assert [m.training for m in new.modules()] == [m.training for m in old.modules()]
    assert len({t.untyped_storage().data_ptr() for t in a.values() if t.numel()}) == \
        sum(1 for t in a.values() if t.numel())  # each its own storage, as before


def _forward(key: str, module: Any, gen: Generator) -> list[torch.Tensor]:
    torch.manual_seed(5)
    images = torch.rand(2, 3, 32, 32)
    w_plus = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator()
                                        .manual_seed(3)))
    module.eval()
    with torch.no_grad():
        kind = KINDS[key][0]
        if kind == "encoder":
            inv = module.encode(images)
            return [inv.w_plus, *inv.features.values(), *inv.extras.values()]
        if kind == "domain_method":
            deltas = module.weight_deltas(gen, None)
            flat = [d for d in (deltas or {}).values() if isinstance(d, torch.Tensor)]
            return [*module.styles(gen, w_plus), *flat]
        if kind == "calibrator":
            inv = module.apply(Inversion(w_plus=w_plus))
            return [inv.w_plus, module.offset_scale(8)]
        feat = torch.randn(2, 32, 8, 8, generator=torch.Generator().manual_seed(4))
        return [module(feat, 0.5 * feat)]


@pytest.mark.parametrize("key", list(KINDS))
def test_registry_load_by_assignment_equals_build_and_copy(tmp_path: Path, key: str) -> None:
    kind, name, config = KINDS[key]
    registry = get_registry()
    cls = registry.get(kind, name).obj
    torch.manual_seed(1)
    original = _perturb(cls(**config), 2)
    path = save_checkpoint(tmp_path / f"{key}.safetensors", original.state_dict(), kind=kind,
                           plugin=name, config=original.config())
    state = torch.get_rng_state()
    new = registry.load(kind, path)
    assert torch.equal(torch.get_rng_state(), state)  # nothing drawn from the caller's stream
    old = _old_style(cls, dict(load_checkpoint(path)[0].config), path)
    _same(new, old)
    gen = tiny_generator(size=32, style_dim=32,
                         channels={r: 32 if r <= 16 else 16 for r in (4, 8, 16, 32)})
    for x, y in zip(_forward(key, new, gen), _forward(key, old, gen), strict=True):
        assert torch.equal(x, y)


def test_generator_and_discriminator_by_assignment_equal_build_and_copy(tmp_path: Path) -> None:
    from stylebridge.core.stylegan2 import Discriminator

    torch.manual_seed(0)
    gen = _perturb(Generator(**GEN, n_mlp=2), 1)
    disc = _perturb(Discriminator(size=32, channels=GEN["channels"]), 2)
    path = save_stylegan2(tmp_path / "g.safetensors", gen, disc)
    header = load_checkpoint(path)[0]
    state = torch.get_rng_state()
    ck = load_stylegan2(path, discriminator=True, keep_rng=True)
    assert torch.equal(torch.get_rng_state(), state)
    old_g = _old_style(Generator, header.config["generator"], path, "g_ema.")
    old_d = _old_style(Discriminator, header.config["discriminator"], path, "d.")
    for new, old in ((ck.generator, old_g), (ck.discriminator, old_d)):
        _same(new, old.eval().requires_grad_(False))
    resolved, _ = load_generator(str(path))
    _same(resolved, old_g)
    w = old_g.make_wplus(torch.randn(2, 32, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        image = old_g.synthesis(old_g.styles(w), randomize_noise=False)
        for g in (ck.generator, resolved):
            assert torch.equal(g.synthesis(g.styles(w), randomize_noise=False), image)
        assert torch.equal(ck.discriminator(image), old_d(image))


def test_featureshift_loader_by_assignment_equals_build_and_copy(tmp_path: Path) -> None:
    from stylebridge.plugins.renderers.featureshift import FeatureShift, save_featureshift

    config = KINDS["featureshift"][2]
    path = save_featureshift(tmp_path / "fs.safetensors", _perturb(FeatureShift(**config), 3))
    new, _ = load_featureshift(path, keep_rng=True)
    old = _old_style(FeatureShift, config, path).eval()
    _same(new, old)
    feat = torch.randn(1, 32, 8, 8)
    with torch.no_grad():
        assert torch.equal(new(feat, feat), old(feat, feat))


def test_direct_loaders_draw_the_initialisation_as_before_unless_told(tmp_path: Path) -> None:
    """``load_stylegan2``/``load_featureshift`` called directly (a loss inside a seeded
    trainer, ``train featureshift --init``) still advance the caller's random stream by the
    initialisation they used to draw: the later draws stay as they were."""
    from stylebridge.plugins.renderers.featureshift import FeatureShift, save_featureshift

    config = {**GEN, "n_mlp": 2}
    g_path = save_stylegan2(tmp_path / "g.safetensors", Generator(**config))
    fs_config = KINDS["featureshift"][2]
    fs_path = save_featureshift(tmp_path / "fs.safetensors", FeatureShift(**fs_config))
    for load, build in ((lambda: load_stylegan2(g_path), lambda: Generator(**config)),
                        (lambda: load_featureshift(fs_path), lambda: FeatureShift(**fs_config))):
        torch.manual_seed(7)
        build()
        expected = torch.get_rng_state()
        torch.manual_seed(7)
        load()
        assert torch.equal(torch.get_rng_state(), expected)
    torch.manual_seed(7)
    expected = torch.get_rng_state()
    load_stylegan2(g_path, keep_rng=True)
    load_featureshift(fs_path, keep_rng=True)
    assert torch.equal(torch.get_rng_state(), expected)


def test_a_checkpoint_load_initialises_nothing(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, every network was initialised at random (``randn``, ``kaiming_uniform_``) on
    the CPU and then overwritten: now nothing is drawn into real memory."""
    kind, name, config = KINDS["e4e"]
    enc = get_registry().get(kind, name).obj(**config)
    e_path = save_checkpoint(tmp_path / "e4e.safetensors", enc.state_dict(), kind=kind,
                             plugin=name, config=enc.config())
    g_path = save_stylegan2(tmp_path / "g.safetensors", Generator(**GEN, n_mlp=2))
    drawn: list[int] = []

    def counting(fn: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        def wrapper(*args: Any, **kwargs: Any) -> torch.Tensor:
            out = fn(*args, **kwargs)
            if not out.is_meta:
                drawn.append(out.numel())
            return out
        return wrapper

    monkeypatch.setattr(torch, "randn", counting(torch.randn))
    monkeypatch.setattr(torch.Tensor, "uniform_", counting(torch.Tensor.uniform_))
    monkeypatch.setattr(torch.Tensor, "normal_", counting(torch.Tensor.normal_))
    load_generator(str(g_path))
    get_registry().load("encoder", e_path)
    assert drawn == []


def test_loaded_networks_still_train(tmp_path: Path) -> None:
    """Trainers fine-tune loaded models: the assigned tensors are the module's own (gradients,
    in-place optimiser steps), and the file and a second load are untouched."""
    kind, name, config = KINDS["stylespace"]
    method = _perturb(get_registry().get(kind, name).obj(**config), 0)
    path = save_checkpoint(tmp_path / "d.safetensors", method.state_dict(), kind=kind,
                           plugin=name, config=method.config())
    g_path = save_stylegan2(tmp_path / "g.safetensors", _perturb(Generator(**GEN, n_mlp=2), 1))
    gen = load_stylegan2(g_path, keep_rng=True).generator
    loaded = get_registry().load(kind, path).requires_grad_(True)
    gen.requires_grad_(True)
    before = {k: v.detach().clone() for k, v in [*loaded.state_dict().items(),
                                                  *gen.state_dict().items()]}
    params = [*loaded.parameters(), *gen.parameters()]
    opt = torch.optim.Adam(params, lr=0.01)
    w = gen.make_wplus(torch.randn(2, 32))
    gen.synthesis(loaded.styles(gen, w), randomize_noise=False).square().mean().backward()
    assert all(p.grad is not None for p in loaded.parameters())
    opt.step()
    assert not torch.equal(next(iter(loaded.parameters())), before["offsets.0"])
    assert not torch.equal(gen.style[1].weight, before["style.1.weight"])
    again = get_registry().load(kind, path)
    assert torch.equal(again.state_dict()["offsets.0"], before["offsets.0"])


def test_random_plugins_and_kernels_draw_as_before() -> None:
    """Built without weights, nothing changed: AffineLight+'s seeded V (drawn on the CPU) and
    the FIR kernels (computed on the CPU, then on the default device)."""
    from stylebridge.plugins.domains.affine import AffineLightPlus

    method = AffineLightPlus(**GEN, rank=3, seed=4)
    gen = torch.Generator().manual_seed(4)
    for i in method.layers:
        v = torch.randn(3, 32, generator=gen)
        assert torch.equal(method.affine_in[str(i)], v / v.norm(dim=1, keepdim=True))
    taps = torch.tensor([1.0, 3.0, 3.0, 1.0])
    k = taps[None, :] * taps[:, None]
    assert torch.equal(Blur((1, 3, 3, 1), (1, 1)).kernel, k / k.sum())
    assert torch.equal(Blur((1, 3, 3, 1), (2, 1), upsample_factor=2).kernel, k / k.sum() * 4)
    assert torch.equal(Upsample((1, 3, 3, 1)).kernel, k / k.sum() * 4)
    with torch.device("meta"):
        assert Upsample((1, 3, 3, 1)).kernel.is_meta


def test_loading_imports_neither_dynamo_nor_sympy(tmp_path: Path) -> None:
    """The meta pre-check did arithmetic on meta tensors (the blur kernels, AffineLight+'s
    init, ``randn``), whose meta kernels import torch._dynamo (~2 s on every run) and sympy."""
    registry = get_registry()
    files = {"generator": save_stylegan2(tmp_path / "g.safetensors", Generator(**GEN, n_mlp=2))}
    for key in ("e4e", "fse", "affinelight_plus", "alpha", "featureshift"):
        kind, name, config = KINDS[key]
        obj = registry.get(kind, name).obj(**config)
        files[key] = save_checkpoint(tmp_path / f"{key}.safetensors", obj.state_dict(),
                                     kind=kind, plugin=name, config=obj.config())
    code = textwrap.dedent(f"""
        import sys
        from stylebridge.registry.resolve import load_generator, load_plugin
        load_generator({str(files.pop("generator"))!r})
        kinds = {{k: v[0] for k, v in {KINDS!r}.items()}}
        for key, path in {({k: str(v) for k, v in files.items()})!r}.items():
            load_plugin(kinds[key], path)
        print("torch._dynamo" in sys.modules, "sympy" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])
    assert out.stdout.strip().splitlines()[-1] == "False False"


# ---------------------------------------------------------------------------------------------
# The NaN/Inf check


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_bad_value_in_a_large_tensor_is_refused_as_before(tmp_path: Path, bad: float) -> None:
    big = torch.randn(1_000_003)
    big[500_001] = bad
    path = save_checkpoint(tmp_path / "m.safetensors", {"a": torch.ones(3), "net.weight": big},
                           kind="encoder", plugin="x")
    with pytest.raises(CheckpointError) as exc:
        load_checkpoint(path)
    assert str(exc.value) == f"{path}: tensor net.weight contains NaN or Inf values"
    with pytest.raises(CheckpointError, match=r"^f\.pt: generator tensor net\.weight contains "
                                              r"NaN or Inf values$"):
        check_state_dict("f.pt", {"net.weight": big.shape}, {"net.weight": big},
                         what="generator")
    with pytest.raises(CheckpointError, match=r"^f\.pt: tensor state\.net\.weight contains"):
        refuse_nonfinite({"state": {"net.weight": big}}, "f.pt")


def test_infinities_of_both_signs_are_refused() -> None:
    t = torch.zeros(1000)
    t[10], t[900] = float("inf"), -float("inf")  # the sum is NaN: still not finite
    assert not all_finite(t)
    for dtype in (torch.float16, torch.bfloat16, torch.float64):
        assert not all_finite(t.to(dtype))


@pytest.mark.parametrize("tensor", [
    torch.full((4096,), 60000.0, dtype=torch.float16),      # its fp16 sum overflows
    torch.full((8,), 3e38, dtype=torch.bfloat16),          # overflows float32 too
    torch.full((8,), 3e38, dtype=torch.float32),
    torch.full((4,), 1e308, dtype=torch.float64),
    torch.tensor([3e38, -3e38, 3e38, 3e38]),
], ids=["fp16", "bf16", "fp32", "fp64", "mixed"])
def test_finite_values_whose_sum_overflows_are_accepted(tmp_path: Path,
                                                        tensor: torch.Tensor) -> None:
    assert all_finite(tensor)
    path = save_checkpoint(tmp_path / "m.safetensors", {"big": tensor}, kind="encoder",
                           plugin="x")
    _, loaded = load_checkpoint(path)
    assert torch.equal(loaded["big"], tensor) and loaded["big"].dtype == tensor.dtype
    check_state_dict(path, {"big": tensor}, loaded)
    refuse_nonfinite([tensor], path)


def test_masks_may_hold_minus_infinity_never_nan() -> None:
    mask = torch.zeros(4, 4).fill_diagonal_(-float("inf"))
    refuse_nonfinite({"attn_mask": mask}, "f.pt")
    mask[0, 1] = float("nan")
    with pytest.raises(CheckpointError, match="tensor attn_mask contains NaN or Inf"):
        refuse_nonfinite({"attn_mask": mask}, "f.pt")


def test_each_generator_tensor_is_checked_once(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """load_checkpoint checks every tensor; the generator's key check no longer repeats it."""
    path = save_stylegan2(tmp_path / "g.safetensors", Generator(**GEN, n_mlp=2))
    checked: list[int] = []
    real = ckpt_mod.all_finite
    monkeypatch.setattr(ckpt_mod, "all_finite", lambda t: checked.append(1) or real(t))
    load_stylegan2(path, keep_rng=True)
    assert len(checked) == sum(1 for t in load_file(path).values() if t.is_floating_point())


def test_loaded_tensors_are_aligned_copies_of_the_file(tmp_path: Path) -> None:
    """load_checkpoint's CPU tensors are in torch's memory (64-byte aligned, as parameters
    are: the BLAS results can depend on it), equal to safetensors' own reading; a dtype it
    does not read itself (bool) comes from safetensors."""
    tensors = {"w": torch.randn(33, 7), "h": torch.randn(5).half(), "b": torch.randn(3).bfloat16(),
               "i": torch.arange(6), "flag": torch.tensor([True, False]), "empty": torch.zeros(0)}
    path = save_checkpoint(tmp_path / "m.safetensors", tensors, kind="encoder", plugin="x")
    _, loaded = load_checkpoint(path)
    reference = load_file(path)
    with safe_open(str(path), framework="pt") as fh:
        assert list(loaded) == list(fh.keys())  # the order load_checkpoint always gave
    for name, t in loaded.items():
        assert t.dtype == reference[name].dtype and torch.equal(t, reference[name]), name
        if name != "flag" and t.numel():
            assert t.data_ptr() % 64 == 0, name


def test_meta_builds_have_the_shapes_of_plain_ones() -> None:
    """``build_on_meta`` skips the random initialisation (its meta kernels import sympy), not
    what it would have built: every plugin kind and the networks give the same tensors as a
    plain build on meta (names, shapes, dtypes, strides, parameter or buffer, requires_grad);
    explicit ``device="cpu"`` draws still draw."""
    from stylebridge.core.loading import build_on_meta
    from stylebridge.core.stylegan2 import Discriminator

    def signature(module: nn.Module) -> dict[str, tuple]:
        return {k: (type(v), v.shape, v.dtype, v.device, v.stride(), v.requires_grad)
                for k, v in module.state_dict(keep_vars=True).items()}

    registry = get_registry()
    classes = [(registry.get(k, n).obj, cfg) for k, n, cfg in KINDS.values()]
    builds = [lambda: Generator(**GEN, n_mlp=2), lambda: Discriminator(size=32)]
    builds += [lambda c=c, cfg=cfg: c(**cfg) for c, cfg in classes]
    for build in builds:
        with torch.device("meta"):
            plain = build()
        assert signature(build_on_meta(build)) == signature(plain)
    drawn = build_on_meta(lambda: torch.randn(3, generator=torch.Generator().manual_seed(1),
                                              device="cpu"))
    assert torch.equal(drawn, torch.randn(3, generator=torch.Generator().manual_seed(1)))
