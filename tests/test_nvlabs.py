"""NVlabs network pickles: safe loading (no code runs) and conversion to the rosinality layout.

The NVlabs-format pickles are built here, without NVlabs code: rosinality state dicts
(the shared tiny fixture, or the FFHQ-1024 key manifest) are renamed to NVlabs names and
wrapped in objects that pickle exactly like NVlabs persistent objects
(``torch_utils.persistence._reconstruct_persistent_obj(meta)``), with stand-in
``torch_utils.persistence`` / ``dnnlib.util`` modules present only while pickling.

Numerical equivalence with NVlabs' own forward pass (the up-sampling conv needs no flip, the
gains match) was checked outside this repository against stylegan2-ada-pytorch's code; the
round trip here pins the key/shape/value mapping.
"""

from __future__ import annotations

import builtins
import collections
import contextlib
import io
import json
import os
import pickle
import subprocess
import sys
import types
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import fixture_file, require_sg2_fixture
from torch import Tensor

from stylebridge.core.safe_pickle import (
    PersistentObject,
    load_nvlabs_pickle,
    module_state_dict,
)
from stylebridge.core.stylegan2.nvlabs import (
    convert_nvlabs_discriminator,
    convert_nvlabs_generator,
    convert_nvlabs_pickle,
)
from stylebridge.errors import ConversionError, UnsafePickleError

TAPS = (1, 3, 3, 1)
BUFFER_NAMES = {"resample_filter", "noise_const", "w_avg"}


# ---------------------------------------------------------------------------
# Building NVlabs-format pickles without NVlabs code


def _never_called(meta: Any) -> None:  # stands in for NVlabs' hook while pickling
    raise AssertionError("the stand-in reconstruct hook must never run")


class _FakeEasyDict(dict):
    """Pickles as ``dnnlib.util.EasyDict`` while the stand-in modules are installed."""


class _FakeTFNetwork:
    """Pickles as ``dnnlib.tflib.network.Network`` (TensorFlow-era pickles)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def __getstate__(self) -> dict[str, Any]:
        return self.state


@contextlib.contextmanager
def nvlabs_stand_in_modules() -> Iterator[None]:
    """Install ``torch_utils.persistence`` / ``dnnlib.util`` stand-ins, remove them after."""
    names = ["torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util", "dnnlib.tflib",
             "dnnlib.tflib.network"]
    assert not any(n in sys.modules for n in names)
    mods = {n: types.ModuleType(n) for n in names}
    for name, obj in (("torch_utils.persistence", _never_called),
                      ("dnnlib.util", _FakeEasyDict),
                      ("dnnlib.tflib.network", _FakeTFNetwork)):
        attr = {"torch_utils.persistence": "_reconstruct_persistent_obj",
                "dnnlib.util": "EasyDict", "dnnlib.tflib.network": "Network"}[name]
        obj.__module__ = name
        obj.__qualname__ = attr
        obj.__name__ = attr
        setattr(mods[name], attr, obj)
    mods["torch_utils"].persistence = mods["torch_utils.persistence"]
    mods["dnnlib"].util = mods["dnnlib.util"]
    mods["dnnlib"].tflib = mods["dnnlib.tflib"]
    mods["dnnlib.tflib"].network = mods["dnnlib.tflib.network"]
    sys.modules.update(mods)
    try:
        yield
    finally:
        for n in names:
            sys.modules.pop(n, None)


class _Persistent:
    """Reduces exactly like an NVlabs persistent object."""

    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta

    def __reduce__(self) -> tuple[Any, ...]:
        return (_never_called, (self.meta,))


class _Reduce:
    """An object whose unpickling calls ``fn(*args)`` (how malicious pickles work)."""

    def __init__(self, fn: Callable[..., Any], *args: Any) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.fn, self.args)


def _module_src(marker: Path) -> str:
    """Source text that would leave a marker file (and then fail) if anyone exec'd it."""
    return (f"open({str(marker)!r}, 'w').write('module_src was executed')\n"
            "raise SystemExit('module_src must never run')\n")


def nv_tree(flat: Mapping[str, Tensor], class_name: str, marker: Path,
            init_kwargs: Mapping[str, Any] | None = None, extra: Any = None) -> _Persistent:
    """Nest a flat NVlabs state dict into persistent objects shaped like ``nn.Module.__dict__``."""
    src = _module_src(marker)

    def build(name: str, items: dict[str, Tensor], prefix: str) -> _Persistent:
        params: collections.OrderedDict[str, Any] = collections.OrderedDict()
        buffers: collections.OrderedDict[str, Any] = collections.OrderedDict()
        children: dict[str, dict[str, Tensor]] = {}
        for key, value in items.items():
            head, _, rest = key.partition(".")
            if rest:
                children.setdefault(head, {})[rest] = value
            elif head in BUFFER_NAMES:
                buffers[head] = value
            else:
                params[head] = torch.nn.Parameter(value, requires_grad=False)
        buffers["scratch"] = torch.full((2,), 7.0)  # non-persistent: must not show up
        params["unused_bias"] = None  # e.g. FullyConnectedLayer(bias=False)
        state: dict[str, Any] = {
            "training": False,
            "_parameters": params,
            "_buffers": buffers,
            "_non_persistent_buffers_set": {"scratch"},
            "_backward_hooks": collections.OrderedDict(),
            "_forward_hooks": collections.OrderedDict(),
            "_forward_pre_hooks": collections.OrderedDict(),
            "_state_dict_hooks": collections.OrderedDict(),
            "_load_state_dict_pre_hooks": collections.OrderedDict(),
            "_modules": collections.OrderedDict(
                (k, build(k, v, f"{prefix}{k}.")) for k, v in children.items()),
            "_init_args": (),
            "_init_kwargs": dict(init_kwargs or {}) if not prefix else {},
            "weight_gain": np.float64(0.125),  # numpy scalars, as in real NVlabs state
            "act_gain": np.sqrt(np.float32(2.0)),
            "activation": "lrelu",
        }
        if extra is not None and not prefix:
            state["extra"] = extra
        meta = dict(type="class", version=6, module_src=src,
                    class_name=class_name if not prefix else name.capitalize(), state=state)
        return _Persistent(meta)

    return build(class_name, dict(flat), "")


def g_init_kwargs(size: int = 64, style_dim: int = 64, n_mlp: int = 4, **synth: Any) -> Any:
    return _FakeEasyDict(
        z_dim=style_dim, c_dim=0, w_dim=style_dim, img_resolution=size, img_channels=3,
        mapping_kwargs=_FakeEasyDict(num_layers=n_mlp, lr_multiplier=0.01),
        synthesis_kwargs=_FakeEasyDict(channel_base=1024, channel_max=64, num_fp16_res=0,
                                       conv_clamp=None, architecture="skip",
                                       resample_filter=[1, 3, 3, 1], **synth))


def d_init_kwargs(size: int = 64, **kw: Any) -> Any:
    base = _FakeEasyDict(c_dim=0, img_resolution=size, img_channels=3, architecture="resnet",
                         channel_base=1024, channel_max=64, num_fp16_res=0, conv_clamp=None,
                         cmap_dim=None, block_kwargs=_FakeEasyDict(),
                         mapping_kwargs=_FakeEasyDict(),
                         epilogue_kwargs=_FakeEasyDict(mbstd_group_size=4, mbstd_num_channels=1))
    base.update(kw)
    return base


def write_pickle(path: Path, obj: Any, protocol: int = 4) -> Path:
    with nvlabs_stand_in_modules():
        data = pickle.dumps(obj, protocol=protocol)
    path.write_bytes(data)
    return path


def write_nvlabs_pickle(path: Path, g: Mapping[str, Tensor], d: Mapping[str, Tensor] | None,
                        marker: Path, *, g_kwargs: Any = None, d_kwargs: Any = None,
                        extra: Any = None, protocol: int = 4) -> Path:
    """The NVlabs top-level dict: G, D, G_ema, augment_pipe, training_set_kwargs."""
    with nvlabs_stand_in_modules():
        g_kw = g_init_kwargs() if g_kwargs is None else g_kwargs
        top = {
            "G": nv_tree(g, "Generator", marker, g_kw),
            "D": None if d is None else nv_tree(
                d, "Discriminator", marker, d_init_kwargs() if d_kwargs is None else d_kwargs),
            "G_ema": nv_tree(g, "Generator", marker, g_kw, extra=extra),
            "augment_pipe": None,
            "training_set_kwargs": _FakeEasyDict(class_name="training.dataset.ImageFolderDataset",
                                                 path="ffhq.zip", resolution=64, use_labels=False),
        }
        data = pickle.dumps(top, protocol=protocol)
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------
# rosinality → NVlabs naming (the inverse of what the converter does)


def _kernel(taps: tuple[int, ...] = TAPS) -> Tensor:
    k = torch.tensor(taps, dtype=torch.float32)
    k = k[None, :] * k[:, None]
    return k / k.sum()


def ros_to_nv_generator(g: Mapping[str, Tensor], latent_avg: Tensor | None) -> dict[str, Tensor]:
    n_mlp = sum(1 for k in g if k.startswith("style.") and k.endswith(".weight"))
    n_rgbs = sum(1 for k in g if k.startswith("to_rgbs.") and k.endswith(".conv.weight"))
    nv: dict[str, Tensor] = {}
    for i in range(n_mlp):
        nv[f"mapping.fc{i}.weight"] = g[f"style.{i + 1}.weight"]
        nv[f"mapping.fc{i}.bias"] = g[f"style.{i + 1}.bias"]
    if latent_avg is not None:
        nv["mapping.w_avg"] = latent_avg

    def layer(dst: str, src: str, noise: str) -> None:
        nv[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        nv[f"{dst}.noise_strength"] = g[f"{src}.noise.weight"].reshape(())
        nv[f"{dst}.bias"] = g[f"{src}.activate.bias"]
        nv[f"{dst}.resample_filter"] = _kernel()
        nv[f"{dst}.noise_const"] = g[f"noises.{noise}"][0, 0]
        nv[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        nv[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]

    def torgb(dst: str, src: str) -> None:
        nv[f"{dst}.weight"] = g[f"{src}.conv.weight"][0]
        nv[f"{dst}.bias"] = g[f"{src}.bias"].reshape(3)
        nv[f"{dst}.affine.weight"] = g[f"{src}.conv.modulation.weight"]
        nv[f"{dst}.affine.bias"] = g[f"{src}.conv.modulation.bias"]

    nv["synthesis.b4.const"] = g["input.input"][0]
    nv["synthesis.b4.resample_filter"] = _kernel()
    layer("synthesis.b4.conv1", "conv1", "noise_0")
    torgb("synthesis.b4.torgb", "to_rgb1")
    for i in range(n_rgbs):
        r = 2 ** (i + 3)
        nv[f"synthesis.b{r}.resample_filter"] = _kernel()
        layer(f"synthesis.b{r}.conv0", f"convs.{2 * i}", f"noise_{2 * i + 1}")
        layer(f"synthesis.b{r}.conv1", f"convs.{2 * i + 1}", f"noise_{2 * i + 2}")
        torgb(f"synthesis.b{r}.torgb", f"to_rgbs.{i}")
    return nv


def ros_to_nv_discriminator(d: Mapping[str, Tensor]) -> dict[str, Tensor]:
    n_blocks = sum(1 for k in d if k.endswith(".conv1.0.weight"))
    size = 2 ** (n_blocks + 2)
    nv: dict[str, Tensor] = {
        f"b{size}.fromrgb.weight": d["convs.0.0.weight"],
        f"b{size}.fromrgb.bias": d["convs.0.1.bias"],
        f"b{size}.fromrgb.resample_filter": _kernel(),
    }
    for k in range(1, n_blocks + 1):
        r = size // 2 ** (k - 1)
        nv[f"b{r}.resample_filter"] = _kernel()
        nv[f"b{r}.conv0.weight"] = d[f"convs.{k}.conv1.0.weight"]
        nv[f"b{r}.conv0.bias"] = d[f"convs.{k}.conv1.1.bias"]
        nv[f"b{r}.conv0.resample_filter"] = _kernel()
        nv[f"b{r}.conv1.weight"] = d[f"convs.{k}.conv2.1.weight"]
        nv[f"b{r}.conv1.bias"] = d[f"convs.{k}.conv2.2.bias"]
        nv[f"b{r}.conv1.resample_filter"] = _kernel()
        nv[f"b{r}.skip.weight"] = d[f"convs.{k}.skip.1.weight"]
        nv[f"b{r}.skip.resample_filter"] = _kernel()
    nv["b4.conv.weight"] = d["final_conv.0.weight"]
    nv["b4.conv.bias"] = d["final_conv.1.bias"]
    nv["b4.conv.resample_filter"] = _kernel()
    nv["b4.fc.weight"] = d["final_linear.0.weight"]
    nv["b4.fc.bias"] = d["final_linear.0.bias"]
    nv["b4.out.weight"] = d["final_linear.1.weight"]
    nv["b4.out.bias"] = d["final_linear.1.bias"]
    return nv


@pytest.fixture(scope="module")
def tiny() -> dict[str, Any]:
    fixtures = require_sg2_fixture()
    ckpt = torch.load(fixtures / "rosinality_tiny64.pt", map_location="cpu", weights_only=True)
    cfg = json.loads((fixtures / "rosinality_tiny64_config.json").read_text())
    return {"ckpt": ckpt, "cfg": cfg}


def _one_line(exc: BaseException, path: Path) -> str:
    text = str(exc)
    assert "\n" not in text
    assert str(path) in text
    print(text)  # shown with -s: the messages users will see
    return text


# ---------------------------------------------------------------------------
# (a) round trip through an NVlabs-format pickle


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_roundtrip_tiny_fixture(tiny: dict[str, Any], tmp_path: Path, protocol: int) -> None:
    ckpt, cfg = tiny["ckpt"], tiny["cfg"]
    marker = tmp_path / "MODULE_SRC_RAN"
    pkl = write_nvlabs_pickle(tmp_path / "tiny.pkl",
                              ros_to_nv_generator(ckpt["g_ema"], ckpt["latent_avg"]),
                              ros_to_nv_discriminator(ckpt["d"]), marker, protocol=protocol)

    result = convert_nvlabs_pickle(pkl)

    assert not marker.exists()
    for name in ("torch_utils", "torch_utils.persistence", "dnnlib", "dnnlib.util"):
        assert name not in sys.modules
    assert list(result.g_ema) == list(ckpt["g_ema"])  # same keys, same order
    for key, ref in ckpt["g_ema"].items():
        got = result.g_ema[key]
        assert got.dtype == ref.dtype and got.shape == ref.shape, key
        assert torch.equal(got, ref), key
    assert result.g is not None and all(torch.equal(result.g[k], v)
                                        for k, v in ckpt["g"].items())
    assert result.d is not None and list(result.d) == list(ckpt["d"])
    for key, ref in ckpt["d"].items():
        assert torch.equal(result.d[key], ref), key
    assert result.latent_avg is not None and torch.equal(result.latent_avg, ckpt["latent_avg"])

    channels = {int(k): v for k, v in cfg["channels"].items()}
    assert result.config == {
        "size": cfg["size"], "style_dim": cfg["style_dim"], "n_mlp": cfg["n_mlp"],
        "channels": channels, "lr_mlp": cfg["lr_mlp"], "blur_kernel": cfg["blur_kernel"],
        "conv_clamp": None,
    }
    assert result.d_config == {
        "size": cfg["discriminator"]["size"], "channels": channels,
        "stddev_group": cfg["discriminator"]["stddev_group"],
        "stddev_feat": cfg["discriminator"]["stddev_feat"], "blur_kernel": [1, 3, 3, 1],
    }
    assert result.notes == []


def test_loaded_objects_and_state_dict_naming(tiny: dict[str, Any], tmp_path: Path) -> None:
    ckpt = tiny["ckpt"]
    nv = ros_to_nv_generator(ckpt["g_ema"], ckpt["latent_avg"])
    pkl = write_nvlabs_pickle(tmp_path / "tiny.pkl", nv, None, tmp_path / "MARKER")
    data = load_nvlabs_pickle(pkl)

    assert set(data) == {"G", "D", "G_ema", "augment_pipe", "training_set_kwargs"}
    g = data["G_ema"]
    assert isinstance(g, PersistentObject) and g.class_name == "Generator"
    assert g.module_name.startswith("persistent_") and "never run" in g.module_src
    assert g.version == 6
    assert g.init_kwargs["mapping_kwargs"]["lr_multiplier"] == 0.01
    assert data["training_set_kwargs"].resolution == 64  # EasyDict attribute access
    assert isinstance(g.state["weight_gain"], np.floating)
    sd = module_state_dict(g)
    assert set(sd) == set(nv)  # non-persistent "scratch" buffers and None params are left out
    assert all(torch.equal(sd[k], v) for k, v in nv.items())


def test_converted_generator_loads_into_our_generator(tiny: dict[str, Any]) -> None:
    """The converter's config and keys fit :class:`stylebridge.core.stylegan2.Generator`."""
    stylegan2 = pytest.importorskip("stylebridge.core.stylegan2")
    ckpt = tiny["ckpt"]
    g_state, config, latent_avg = convert_nvlabs_generator(
        ros_to_nv_generator(ckpt["g_ema"], ckpt["latent_avg"]), g_init_kwargs())
    g = stylegan2.Generator(**config)
    result = g.load_state_dict(g_state, strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) <= {"latent_avg"}
    d_state, d_config = convert_nvlabs_discriminator(ros_to_nv_discriminator(ckpt["d"]),
                                                     d_init_kwargs())
    stylegan2.Discriminator(**d_config).load_state_dict(d_state, strict=True)
    assert latent_avg is not None and latent_avg.shape == (config["style_dim"],)


# ---------------------------------------------------------------------------
# (b) malicious pickles: refused, nothing runs


def _malicious(marker: Path) -> dict[str, Any]:
    shell = f"touch {marker}"
    code = f"open({str(marker)!r}, 'w').close()"
    return {
        "os.system": _Reduce(os.system, shell),
        "builtins.exec": _Reduce(builtins.exec, code),
        "builtins.eval": _Reduce(builtins.eval, code),
        "subprocess.Popen": _Reduce(subprocess.Popen, ["touch", str(marker)]),
        "builtins.getattr": _Reduce(getattr, "text", "upper"),
        "torch.load": _Reduce(torch.load, str(marker)),
        "numpy.load": _Reduce(np.load, str(marker), None, True),
    }


@pytest.mark.parametrize("name", ["os.system", "builtins.exec", "builtins.eval",
                                  "subprocess.Popen", "builtins.getattr", "torch.load",
                                  "numpy.load"])
def test_malicious_global_is_refused(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_malicious(marker)[name], protocol=4))
    with pytest.raises(UnsafePickleError) as info:
        load_nvlabs_pickle(path)
    text = _one_line(info.value, path)
    if name == "builtins.getattr":  # our own getattr answers only pickled network objects
        assert "calls getattr on a str, not on a pickled network object" in text
    else:
        assert "not on the allow-list" in text
    assert "no code was run" in text
    assert not marker.exists()


@pytest.mark.parametrize("where", ["init_kwargs", "top_level"])
def test_malicious_call_nested_in_valid_pickle(tiny: dict[str, Any], tmp_path: Path,
                                               where: str) -> None:
    ckpt = tiny["ckpt"]
    marker = tmp_path / "MARKER"
    evil = _Reduce(os.system, f"touch {marker}")
    nv = ros_to_nv_generator(ckpt["g_ema"], ckpt["latent_avg"])
    if where == "init_kwargs":
        path = write_nvlabs_pickle(tmp_path / "evil.pkl", nv, None, marker,
                                   g_kwargs=g_init_kwargs(evil=[1, 2, {"x": evil}]))
    else:
        path = write_nvlabs_pickle(tmp_path / "evil.pkl", nv, None, marker, extra=evil)
    with pytest.raises(UnsafePickleError) as info:
        convert_nvlabs_pickle(path)
    text = _one_line(info.value, path)
    assert ".system`" in text  # posix.system / nt.system
    assert not marker.exists()


def test_module_src_is_never_executed(tiny: dict[str, Any], tmp_path: Path) -> None:
    ckpt = tiny["ckpt"]
    marker = tmp_path / "MODULE_SRC_RAN"
    path = write_nvlabs_pickle(tmp_path / "net.pkl",
                               ros_to_nv_generator(ckpt["g_ema"], ckpt["latent_avg"]), None,
                               marker)
    data = load_nvlabs_pickle(path)
    assert str(marker) in data["G_ema"].module_src
    assert not marker.exists()


def test_persistent_ids_are_refused(tmp_path: Path) -> None:
    class PidPickler(pickle.Pickler):
        def persistent_id(self, obj: Any) -> Any:
            return "storage-0" if isinstance(obj, bytes) else None

    buf = io.BytesIO()
    PidPickler(buf, protocol=4).dump({"G_ema": b"payload"})
    path = tmp_path / "pid.pkl"
    path.write_bytes(buf.getvalue())
    with pytest.raises(UnsafePickleError) as info:
        load_nvlabs_pickle(path)
    assert "persistent IDs" in _one_line(info.value, path)


def test_tensor_larger_than_its_storage_is_refused(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = torch.arange(4.0).storage()
    forged = _Reduce(torch._utils._rebuild_tensor_v2, storage, 0, (1000,), (1,), False,
                     collections.OrderedDict())
    path = tmp_path / "forged.pkl"
    path.write_bytes(pickle.dumps({"t": forged}, protocol=4))
    with pytest.raises(ConversionError) as info:
        load_nvlabs_pickle(path)
    assert "does not fit its storage" in _one_line(info.value, path)


# ---------------------------------------------------------------------------
# (c) unreadable or unsupported files: one-line ConversionError


def _valid_pickle_bytes(tmp_path: Path) -> bytes:
    nv = {"mapping.fc0.weight": torch.zeros(8, 8), "synthesis.b4.const": torch.zeros(8, 4, 4)}
    return write_nvlabs_pickle(tmp_path / "ok.pkl", nv, None, tmp_path / "M").read_bytes()


@pytest.mark.parametrize("kind", ["truncated", "empty", "text", "garbage", "zip", "list",
                                  "no_g_ema"])
def test_unreadable_files(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"{kind}.pkl"
    if kind == "truncated":
        data = _valid_pickle_bytes(tmp_path)
        path.write_bytes(data[: len(data) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("hello, this is a README and not a network pickle\n")
    elif kind == "garbage":
        path.write_bytes(b"\x80\x04" + bytes(range(256)) * 4)
    elif kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("archive/data.pkl", b"x")
    elif kind == "list":
        path.write_bytes(pickle.dumps([1, 2, 3]))
    else:
        path.write_bytes(pickle.dumps({"G": None, "D": None}))
    with pytest.raises(ConversionError) as info:
        convert_nvlabs_pickle(path)
    assert not isinstance(info.value, UnsafePickleError)
    _one_line(info.value, path)


def test_a_photo_or_text_given_as_the_pickle_is_named_for_what_it_is(tmp_path: Path) -> None:
    cases = {"photo.pkl": (b"\x89PNG\r\n\x1a\n" + bytes(8), "is a PNG image, not a network pickle"),
             "notes.pkl": (b"G_ema = generator\n", "is a text file, not a network pickle")}
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(ConversionError) as info:
            convert_nvlabs_pickle(tmp_path / name)
        assert str(info.value) == f"{tmp_path / name}: {message}"


def test_tensorflow_pickle_is_recognised(tmp_path: Path) -> None:
    marker = tmp_path / "TF_BUILD_RAN"
    nets = tuple(_FakeTFNetwork({"version": 4, "name": n, "static_kwargs": {},
                                 "build_module_src": _module_src(marker),
                                 "build_func_name": "G_main", "components": {},
                                 "variables": [("dlatent_avg", np.zeros(4, np.float32))]})
                 for n in ("G", "D", "Gs"))
    path = write_pickle(tmp_path / "tf.pkl", nets)
    with pytest.raises(ConversionError) as info:
        load_nvlabs_pickle(path)
    assert "TensorFlow" in _one_line(info.value, path)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["stylegan3", "conditional_g", "conditional_d", "resnet_g",
                                  "orig_g", "skip_d", "z_dim", "grayscale", "extra_key",
                                  "bad_shape"])
def test_unsupported_networks(tiny: dict[str, Any], tmp_path: Path, case: str) -> None:
    ckpt = tiny["ckpt"]
    g = ros_to_nv_generator(ckpt["g_ema"], ckpt["latent_avg"])
    d = ros_to_nv_discriminator(ckpt["d"])
    g_kwargs, d_kwargs = g_init_kwargs(), d_init_kwargs()
    expect = {
        "stylegan3": "StyleGAN3", "conditional_g": "class-conditional",
        "conditional_d": "class-conditional", "resnet_g": "'resnet'", "orig_g": "ToRGB",
        "skip_d": "'skip'", "z_dim": "z_dim", "grayscale": "img_channels",
        "extra_key": "no place for", "bad_shape": "of shape",
    }[case]
    if case == "stylegan3":
        g = {k: v for k, v in g.items() if k.startswith("mapping.")}
        g.update({"synthesis.input.weight": torch.zeros(64, 4), "synthesis.input.freqs":
                  torch.zeros(64, 2), "synthesis.L0_36_64.weight": torch.zeros(64, 64, 3, 3),
                  "synthesis.L0_36_64.affine.weight": torch.zeros(64, 64)})
    elif case == "conditional_g":
        g["mapping.embed.weight"] = torch.zeros(64, 10)
        g["mapping.embed.bias"] = torch.zeros(64)
        g_kwargs["c_dim"] = 10
    elif case == "conditional_d":
        d["mapping.embed.weight"] = torch.zeros(64, 10)
        d_kwargs["c_dim"] = 10
    elif case == "resnet_g":
        g_kwargs["synthesis_kwargs"]["architecture"] = "resnet"
    elif case == "orig_g":
        g_kwargs = None  # shape-only detection
        for k in [k for k in g if k.startswith("synthesis.b8.torgb.")]:
            del g[k]
    elif case == "skip_d":
        d_kwargs["architecture"] = "skip"
    elif case == "z_dim":
        g["mapping.fc0.weight"] = torch.zeros(64, 32)
    elif case == "grayscale":
        g_kwargs["img_channels"] = 1
    elif case == "extra_key":
        g["synthesis.b8.skip.extra"] = torch.zeros(3)
    else:
        g["synthesis.b16.conv1.affine.bias"] = torch.zeros(63)
    path = write_nvlabs_pickle(tmp_path / f"{case}.pkl", g, d, tmp_path / "M",
                               g_kwargs=g_kwargs, d_kwargs=d_kwargs)
    with pytest.raises(ConversionError) as info:
        convert_nvlabs_pickle(path)
    assert not isinstance(info.value, UnsafePickleError)
    assert expect in _one_line(info.value, path)


# ---------------------------------------------------------------------------
# (d) full-size FFHQ-1024 key/shape manifest (meta tensors: no memory)


def test_ffhq1024_manifest() -> None:
    manifest = json.loads(fixture_file("stylegan2", "rosinality_ffhq1024_keys.json").read_text())

    def fake(entries: Mapping[str, Any]) -> dict[str, Tensor]:
        assert all(dtype == "float32" for _, dtype in entries.values())
        return {k: torch.empty(shape, device="meta") for k, (shape, _) in entries.items()}

    latent_shape = manifest["latent_avg"][0]
    g_nv = ros_to_nv_generator(fake(manifest["g_ema"]), torch.empty(latent_shape, device="meta"))
    d_nv = ros_to_nv_discriminator(fake(manifest["d"]))
    assert "synthesis.b1024.conv0.weight" in g_nv and "b1024.fromrgb.weight" in d_nv

    g_state, config, latent_avg = convert_nvlabs_generator(g_nv, None)
    d_state, d_config = convert_nvlabs_discriminator(d_nv, None)

    def shapes(state: Mapping[str, Tensor]) -> dict[str, tuple[list[int], str]]:
        return {k: (list(v.shape), str(v.dtype).removeprefix("torch.")) for k, v in state.items()}

    assert shapes(g_state) == {k: (s, t) for k, (s, t) in manifest["g_ema"].items()}
    assert list(g_state) == list(manifest["g_ema"])
    assert shapes(d_state) == {k: (s, t) for k, (s, t) in manifest["d"].items()}
    assert list(d_state) == list(manifest["d"])
    assert latent_avg is not None and list(latent_avg.shape) == latent_shape
    assert config == {"size": 1024, "style_dim": 512, "n_mlp": 8,
                      "channels": {4: 512, 8: 512, 16: 512, 32: 512, 64: 512, 128: 256,
                                   256: 128, 512: 64, 1024: 32},
                      "lr_mlp": 0.01, "blur_kernel": [1, 3, 3, 1], "conv_clamp": None}
    assert d_config["size"] == 1024 and d_config["stddev_feat"] == 1
    assert d_config["channels"] == config["channels"]
    # the generated FIR buffers hold rosinality's values
    assert torch.allclose(g_state["convs.0.conv.blur.kernel"], _kernel() * 4)
    assert torch.allclose(g_state["to_rgbs.0.upsample.kernel"], _kernel() * 4)
    assert torch.allclose(d_state["convs.1.conv2.0.kernel"], _kernel())
    assert torch.allclose(d_state["convs.1.skip.0.kernel"], _kernel())


def test_generator_without_init_kwargs_uses_defaults_and_noise_free_layers() -> None:
    """No init_kwargs → NVlabs defaults; use_noise=False → zero noise (exactly equivalent)."""
    c, w = 8, 16
    nv: dict[str, Tensor] = {"synthesis.b4.const": torch.randn(c, 4, 4)}
    for i in range(2):
        nv[f"mapping.fc{i}.weight"] = torch.randn(w, w)
        nv[f"mapping.fc{i}.bias"] = torch.randn(w)
    for r, prefixes in ((4, ["conv1"]), (8, ["conv0", "conv1"])):
        for p in prefixes:
            nv[f"synthesis.b{r}.{p}.weight"] = torch.randn(c, c, 3, 3)
            nv[f"synthesis.b{r}.{p}.bias"] = torch.randn(c)
            nv[f"synthesis.b{r}.{p}.affine.weight"] = torch.randn(c, w)
            nv[f"synthesis.b{r}.{p}.affine.bias"] = torch.randn(c)
        nv[f"synthesis.b{r}.torgb.weight"] = torch.randn(3, c, 1, 1)
        nv[f"synthesis.b{r}.torgb.bias"] = torch.randn(3)
        nv[f"synthesis.b{r}.torgb.affine.weight"] = torch.randn(c, w)
        nv[f"synthesis.b{r}.torgb.affine.bias"] = torch.randn(c)
    state, config, latent_avg = convert_nvlabs_generator(nv, None)
    assert latent_avg is None
    assert config == {"size": 8, "style_dim": w, "n_mlp": 2, "channels": {4: c, 8: c},
                      "lr_mlp": 0.01, "blur_kernel": [1, 3, 3, 1], "conv_clamp": None}
    assert torch.equal(state["conv1.noise.weight"], torch.zeros(1))
    assert torch.equal(state["noises.noise_2"], torch.zeros(1, 1, 8, 8))
    assert [k for k in state if k.startswith("noises.")] == [f"noises.noise_{i}" for i in range(3)]


def test_malicious_storage_payload_is_refused(tmp_path: Path) -> None:
    """Storage bytes go through torch's weights-only loader, which refuses globals too."""
    marker = tmp_path / "MARKER"
    payload = pickle.dumps(_Reduce(os.system, f"touch {marker}"), protocol=2)
    path = tmp_path / "evil_storage.pkl"
    path.write_bytes(pickle.dumps({"w": _Reduce(torch.storage._load_from_bytes, payload)},
                                  protocol=4))
    with pytest.raises(UnsafePickleError) as info:
        load_nvlabs_pickle(path)
    assert "weights-only" in _one_line(info.value, path)
    assert not marker.exists()


# ---------------------------------------------------------------------------
# end to end: `stylebridge convert stylegan2-nvlabs` reproduces the reference outputs


def test_parity_nvlabs_converter_cli_reproduces_reference_outputs(tiny: dict[str, Any],
                                                                  tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from stylebridge.cli.main import main
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    ckpt = tiny["ckpt"]
    marker = tmp_path / "MODULE_SRC_RAN"
    pkl = write_nvlabs_pickle(tmp_path / "tiny.pkl",
                              ros_to_nv_generator(ckpt["g_ema"], ckpt["latent_avg"]),
                              ros_to_nv_discriminator(ckpt["d"]), marker)
    dst = tmp_path / "tiny.safetensors"
    assert main(["convert", "stylegan2-nvlabs", str(pkl), str(dst)]) == 0
    assert not marker.exists()
    exp = {k: v.clone() for k, v in
           load_file(require_sg2_fixture() / "rosinality_tiny64_expected.safetensors").items()}
    nets = load_stylegan2(dst, discriminator=True)
    with torch.no_grad():
        image = nets.generator([exp["z"]], randomize_noise=False)
        trunc = nets.generator([exp["z"]], truncation=0.7, randomize_noise=False)
        score = nets.discriminator(exp["image"])
    torch.testing.assert_close(image, exp["image"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(trunc, exp["image_trunc07"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(score, exp["d_score"], atol=1e-5, rtol=1e-4)
    assert nets.header.extra["source"] == "NVlabs/stylegan2-ada-pytorch"
    assert "NVIDIA Source Code License" in nets.header.extra["licence"]
