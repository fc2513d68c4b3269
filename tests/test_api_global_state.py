"""The Python API leaves the caller's process as it found it: warnings filters (licence
warnings stay on), torch's and Python's random streams, the root logger and the environment;
encoders loaded for inference build no autograd graph; one-line errors name every kind and a
missing GPU."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import stylebridge
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("state") / "preset", n_images=2)


# ---------------------------------------------------------------------------------------------
# A fresh interpreter, as a notebook starts: what an import or a first load would change once


_FRESH = textwrap.dedent("""
    import importlib, json, logging, os, random, sys, warnings
    import torch
    import stylebridge
    from stylebridge.registry.registry import builtin_entry_points

    P = json.loads(sys.argv[1])
    out = {}
    def filters():
        return [repr(f) for f in warnings.filters]

    f0, r0, t0 = filters(), random.getstate(), torch.get_rng_state()
    stylebridge.create("metric", "mse")  # the registry imports every command module
    for ep in builtin_entry_points():
        importlib.import_module(ep.value)
    out["filters_added"] = [f for f in filters() if f not in f0]
    out["filters_same"] = filters() == f0
    out["python_random_same"] = random.getstate() == r0
    out["torch_rng_same"] = torch.equal(torch.get_rng_state(), t0)

    r0, t0 = random.getstate(), torch.get_rng_state()
    gen = stylebridge.create("generator", P["generator"])
    fse = stylebridge.create("encoder", "fse:" + P["fse"])
    e4e = stylebridge.create("encoder", "e4e:" + P["e4e"])
    pixar = stylebridge.create("domain_method", P["domain"])
    out["models_python_random_same"] = random.getstate() == r0
    out["models_torch_rng_same"] = torch.equal(torch.get_rng_state(), t0)

    from stylebridge.plugins.nets import clip as clip_mod
    root = logging.getLogger()
    out["root_handlers_before"] = len(root.handlers)
    env = os.environ.get("TOKENIZERS_PARALLELISM")
    t0 = torch.get_rng_state()
    importer = getattr(clip_mod, "import_open_clip", lambda: importlib.import_module("open_clip"))
    importer().add_model_config(P["clip_config"])
    clip = clip_mod.load_clip("tiny-vit-p16", P["clip_weights"])
    out["clip_loaded"] = clip.image_size
    out["root_handlers_after"] = len(root.handlers)
    out["tokenizers_env"] = [env, os.environ.get("TOKENIZERS_PARALLELISM")]
    out["clip_torch_rng_same"] = torch.equal(torch.get_rng_state(), t0)
    logging.basicConfig(level=logging.INFO)  # the user's own logging set-up now takes
    out["root_level"] = root.level
    out["root_handlers_user"] = len(root.handlers)

    from stylebridge.plugins.encoders.styleres import STYLERES_LICENCE, StyleResLicenceWarning
    warnings.warn(STYLERES_LICENCE, StyleResLicenceWarning)
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def fresh(preset: TinyPreset) -> dict[str, Any]:
    paths = {"generator": str(preset.generator), "fse": str(preset.fse), "e4e": str(preset.e4e),
             "domain": str(preset.domains / "tiny-pixar.safetensors"),
             "clip_config": str(preset.clip_config),
             "clip_weights": str(preset.clip_weights["tiny-vit-p16"])}
    env = {k: v for k, v in __import__("os").environ.items() if k != "TOKENIZERS_PARALLELISM"}
    done = subprocess.run([sys.executable, "-c", _FRESH, json.dumps(paths)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def test_creating_a_plugin_leaves_warnings_filters_alone_and_licence_warnings_on(
        fresh: dict[str, Any]) -> None:
    # importing stylebridge.cli.options added ('ignore', 'licence: ', UserWarning) for good
    assert fresh["filters_added"] == []
    assert fresh["filters_same"] is True
    assert "StyleResLicenceWarning: licence: StyleRes" in fresh["stderr"]


def test_the_first_create_leaves_pythons_random_stream_alone(fresh: dict[str, Any]) -> None:
    # rich.style draws getrandbits(24) when the registry imports the command modules
    assert fresh["python_random_same"] is True
    assert fresh["torch_rng_same"] is True


def test_loading_checkpoints_leaves_the_random_streams_alone(fresh: dict[str, Any]) -> None:
    assert fresh["models_torch_rng_same"] is True
    assert fresh["models_python_random_same"] is True


def test_a_clip_load_configures_no_logging_and_keeps_the_environment(
        fresh: dict[str, Any]) -> None:
    assert fresh["clip_loaded"] == 32
    assert fresh["root_handlers_before"] == 0
    assert fresh["root_handlers_after"] == 0  # open_clip's logging.warning ran basicConfig
    assert fresh["tokenizers_env"] == [None, None]  # open_clip's tokenizer set it to "false"
    assert fresh["clip_torch_rng_same"] is True
    assert fresh["root_level"] == 20 and fresh["root_handlers_user"] == 1
    assert "No pretrained weights loaded" not in fresh["stderr"]


# ---------------------------------------------------------------------------------------------
# In this process: each load, the Adapter and the adapt pipeline


def _states() -> tuple[torch.Tensor, Any]:
    return torch.get_rng_state(), random.getstate()


def _same(before: tuple[torch.Tensor, Any]) -> bool:
    return torch.equal(before[0], torch.get_rng_state()) and before[1] == random.getstate()


@pytest.mark.parametrize("kind, spec", [
    ("generator", "{p.generator}"), ("encoder", "fse:{p.fse}"), ("encoder", "e4e:{p.e4e}"),
    ("domain_method", "{p.domains}/tiny-pixar.safetensors"),
    ("renderer", "{p.featureshift_fse}")])
def test_every_load_leaves_the_random_streams_alone(preset: TinyPreset, kind: str,
                                                    spec: str) -> None:
    from safetensors.torch import load_file

    before = _states()
    obj = stylebridge.create(kind, spec.format(p=preset))
    assert _same(before)
    if kind == "encoder":  # the drawn initialisation was overwritten by the file's weights
        path = Path(spec.format(p=preset).split(":", 1)[1])
        stored = load_file(path)
        state = obj.state_dict()
        assert stored.keys() == state.keys()
        assert all(torch.equal(stored[k], state[k]) for k in stored)


def test_an_adapter_and_the_adapt_pipeline_leave_the_random_streams_alone(
        preset: TinyPreset, tmp_path: Path) -> None:
    from stylebridge.pipelines.adapt import AdaptConfig, adapt

    pixar = str(preset.domains / "tiny-pixar.safetensors")
    before = _states()
    adapter = stylebridge.Adapter(stylebridge.create("encoder", f"fse:{preset.fse}"),
                                  stylebridge.create("generator", str(preset.generator)),
                                  {"pixar": stylebridge.create("domain_method", pixar)})
    images = stylebridge.load_photo(preset.images / "photo0.png", align=False, size=64)
    first = adapter.run(images)
    assert _same(before)
    assert torch.equal(adapter.run(images)["pixar"], first["pixar"])
    before = _states()
    adapt(AdaptConfig(images=[preset.images], align=False, device="cpu",
                      encoder=f"fse:{preset.fse}", generator=str(preset.generator),
                      methods=[pixar], out=tmp_path / "adapt"))
    assert _same(before)
    assert sorted(p.name for p in (tmp_path / "adapt").glob("*.png"))


SMALL_SHIFT = "featureshift:feature_channels=16,hidden=8,n_blocks=3"


def test_a_random_weight_plugin_is_still_seeded_by_its_spec() -> None:
    """Built from its defaults, a plugin's weights come from its spec's own seed, the same
    whatever the caller's stream, and that stream is left as it was."""
    torch.manual_seed(1)
    before = _states()
    a = stylebridge.create("renderer", SMALL_SHIFT)
    assert _same(before)
    torch.manual_seed(2)
    b = stylebridge.create("renderer", SMALL_SHIFT)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(),
                                                 b.state_dict().values(), strict=True))


# ---------------------------------------------------------------------------------------------
# Encoders for inference


@pytest.mark.parametrize("which", ["fse", "e4e"])
def test_a_loaded_encoder_builds_no_graph_yet_passes_gradients_to_its_input(
        preset: TinyPreset, which: str) -> None:
    encoder = stylebridge.create("encoder", f"{which}:{getattr(preset, which)}")
    assert encoder.training is False
    assert [n for n, p in encoder.named_parameters() if p.requires_grad] == []
    images = stylebridge.load_photo(preset.images / "photo0.png", align=False, size=64)
    inversion = encoder.encode(images)  # as the README does, without torch.no_grad
    assert inversion.w_plus.requires_grad is False and inversion.w_plus.grad_fn is None
    assert all(not f.requires_grad for f in (inversion.features or {}).values())
    # a trainer's loss through the frozen encoder (DiFa's latents): gradients reach the images
    images.requires_grad_(True)
    encoder.encode(images).w_plus.square().sum().backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()
    assert float(images.grad.abs().sum()) > 0
    assert all(p.grad is None for p in encoder.parameters())


def test_loaded_domain_methods_and_renderers_are_frozen_and_in_eval_mode(
        preset: TinyPreset) -> None:
    for kind, spec in (("domain_method", preset.domains / "tiny-pixar.safetensors"),
                       ("renderer", preset.featureshift_fse)):
        obj = stylebridge.create(kind, str(spec))
        assert obj.training is False
        assert [n for n, p in obj.named_parameters() if p.requires_grad] == []


# ---------------------------------------------------------------------------------------------
# The command line quiets licence warnings while it runs only


def test_the_cli_quiets_licence_warnings_while_it_runs_and_restores_the_filters(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.base import Command
    from stylebridge.cli.main import main
    from stylebridge.registry import hookimpl
    from stylebridge.registry import registry as registry_mod

    seen: list[bool] = []

    class Probe(Command):
        name = "probe-test"
        help = "reports whether licence warnings are quieted"

        def add_arguments(self, parser: Any) -> None:
            pass

        def run(self, args: Any, console: Any) -> int:
            seen.append(any(getattr(f[1], "pattern", None) == "licence: "
                            for f in warnings.filters))
            return 0

    plugin = types.ModuleType("probe_cmds")

    @hookimpl
    def register_commands(register: Any) -> None:
        register(Probe())

    plugin.register_commands = register_commands  # type: ignore[attr-defined]
    monkeypatch.setattr(registry_mod, "_REGISTRY",
                        registry_mod.Registry(entry_points=False, extra_plugins=[plugin]))
    before = list(warnings.filters)
    assert main(["probe-test"]) == 0
    assert seen == [True]
    assert warnings.filters == before  # the CUDA-ops filter stayed behind too


# ---------------------------------------------------------------------------------------------
# One-line errors


@pytest.mark.parametrize("kind", ["Generator", "generators"])
def test_an_unknown_kind_lists_the_generator_too(kind: str) -> None:
    with pytest.raises(StylebridgeError) as info:
        stylebridge.create(kind, "x.safetensors")
    assert str(info.value) == (
        f"unknown kind {kind!r}; did you mean 'generator'? (kinds: generator, encoder, "
        "domain_method, loss, metric, calibrator, renderer, converter, command, "
        "command_target)")


def test_load_generator_on_a_missing_gpu_is_one_line(preset: TinyPreset,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.registry.resolve import load_generator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StylebridgeError, match=r"^--device cuda: no CUDA device is available "
                                               r"\(use --device cpu\)$"):
        load_generator(str(preset.generator), device="cuda")
    gen, prov = load_generator(str(preset.generator), device="auto")
    assert next(gen.parameters()).device.type == "cpu" and prov.random


# ---------------------------------------------------------------------------------------------
# open_clip everywhere: the tiny preset and the plugins reach it through import_open_clip()


_OPEN_CLIP_USERS = {
    "build_tiny_preset": "from stylebridge.pipelines.presets import build_tiny_preset\n"
                         "build_tiny_preset(Path(sys.argv[1]) / 'preset', n_images=2)",
    "text_templates": "from stylebridge.plugins.losses.clip import text_templates\n"
                      "text_templates('imagenet')",
    "clip_depth": "from stylebridge.plugins.losses.clip import clip_depth\n"
                  "clip_depth('ViT-B-32')",
    "register_clip_configs": "from stylebridge.pipelines.presets import write_json, TINY_CLIPS\n"
                             "from stylebridge.pipelines.reproduce.clips import "
                             "register_clip_configs\n"
                             "write_json(Path(sys.argv[1]) / 'a.json', TINY_CLIPS['tiny-vit-p8'])\n"
                             "register_clip_configs([Path(sys.argv[1]) / 'a.json'])",
}


@pytest.mark.parametrize("user", list(_OPEN_CLIP_USERS))
def test_open_clip_users_configure_no_logging_and_keep_the_environment(
        user: str, tmp_path: Path) -> None:
    """Before: the tiny preset imported open_clip itself (TOKENIZERS_PARALLELISM=false stayed
    in os.environ) and open_clip's logging.warning put a StreamHandler on the root logger."""
    script = ("import json, logging, os, sys\nfrom pathlib import Path\n"
              + _OPEN_CLIP_USERS[user] + "\n"
              "print(json.dumps([len(logging.getLogger().handlers), "
              "os.environ.get('TOKENIZERS_PARALLELISM')]))")
    env = {k: v for k, v in __import__("os").environ.items() if k != "TOKENIZERS_PARALLELISM"}
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, None]


# ---------------------------------------------------------------------------------------------
# Pipelines that seed the global generators leave the caller's torch, Python and numpy streams


def _all_states() -> tuple[torch.Tensor, Any, Any]:
    torch.manual_seed(11)  # a caller's own seeds, not the ones the pipelines use
    random.seed(11)
    np.random.seed(11)
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _all_same(before: tuple[torch.Tensor, Any, Any]) -> bool:
    numpy_now = np.random.get_state()
    return (torch.equal(before[0], torch.get_rng_state()) and before[1] == random.getstate()
            and all(np.array_equal(a, b) for a, b in zip(before[2], numpy_now, strict=True)))


@pytest.mark.slow  # a full demo run (~5 s on CPU)
def test_the_demo_leaves_the_random_streams_alone(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.pipelines import demo

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    before = _all_states()
    demo.run_demo(demo.DemoConfig(out=tmp_path / "d", device="cpu"))
    assert _all_same(before)  # it seeded torch for its untrained FeatureShift


def test_the_serve_backends_featureshift_leaves_the_random_streams_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.pipelines.serve import ServeBackend, ServeConfig

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    backend = ServeBackend(ServeConfig(device="cpu", work_dir=tmp_path / "work"))
    encoder, _ = backend.encoder("fse")
    before = _all_states()
    model, random_weights = backend.featureshift(encoder)
    assert random_weights and _all_same(before)
    again = ServeBackend(ServeConfig(device="cpu", work_dir=tmp_path / "again"))
    other, _ = again.featureshift(again.encoder("fse")[0])  # still seeded: the same weights
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 other.state_dict().values(), strict=True))


@pytest.fixture(scope="module")
def featureshift_data(preset: TinyPreset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from stylebridge.pipelines.featureshift.dataset import build_dataset

    gen = stylebridge.create("generator", str(preset.generator))
    data = tmp_path_factory.mktemp("fs") / "data"
    build_dataset(sorted(preset.images.glob("*.png")), data, generator=gen,
                  encoder=stylebridge.create("encoder", f"fse:{preset.fse}"),
                  guide=stylebridge.create("encoder", f"e4e:{preset.e4e}"),
                  domains=[("pixar", stylebridge.create(
                      "domain_method", str(preset.domains / "tiny-pixar.safetensors")))],
                  image_size=32, shard_size=2, batch_size=2)
    return data


def test_featureshift_training_leaves_the_random_streams_alone_and_stays_seeded(
        preset: TinyPreset, featureshift_data: Path, tmp_path: Path) -> None:
    from stylebridge.pipelines.featureshift.trainer import TrainConfig, train_featureshift

    def train(out: str) -> dict[str, torch.Tensor]:
        cfg = TrainConfig(data=str(featureshift_data), generator=str(preset.generator),
                          out=str(tmp_path / out), losses=["mse:1.0"],
                          pretrain_inversion_steps=1, steps=2, batch_size=2, hidden=16,
                          n_blocks=3, checkpoint_every=0, sample_every=0, device="cpu",
                          seed=3, adversarial=0.0)
        before = _all_states()
        train_featureshift(cfg)
        assert _all_same(before)  # it seeded torch, Python and numpy for the run
        from safetensors.torch import load_file
        return load_file(tmp_path / out / "model.safetensors")

    first = train("a")
    torch.manual_seed(99)  # another caller stream: the run is seeded by its config
    second = train("b")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


# ---------------------------------------------------------------------------------------------
# Training pipelines: progress= takes one ProgressEvent, refused before anything loads


_PROGRESS_REFUSED = ("progress= is called with one ProgressEvent (kind, step, total, text); "
                     "adapt/invert's progress(done, total, text) shape does not fit here")


@pytest.mark.parametrize("which", ["train_domain", "train_hyperdomain", "train_mindthegap",
                                   "train_featureshift"])
def test_a_three_argument_progress_is_refused_before_loading(which: str, tmp_path: Path) -> None:
    from stylebridge.pipelines.featureshift.trainer import TrainConfig, train_featureshift
    from stylebridge.pipelines.train_domain import DomainTrainConfig, train_domain
    from stylebridge.pipelines.train_hyperdomain import HyperDomainTrainConfig, train_hyperdomain
    from stylebridge.pipelines.train_mindthegap import MindTheGapConfig, train_mindthegap

    missing = str(tmp_path / "missing.safetensors")  # a load would fail on it: none happens
    out = tmp_path / "out"
    calls: list[tuple[Any, ...]] = []

    def progress(done: int, total: int, text: str) -> None:  # adapt/invert's shape
        calls.append((done, total, text))

    run: Any = {
        "train_domain": lambda: train_domain(
            DomainTrainConfig(generator=missing, out=out / "d.safetensors", text="a sketch"),
            progress=progress),
        "train_hyperdomain": lambda: train_hyperdomain(
            HyperDomainTrainConfig(generator=missing, out=out, prompt_list=["a sketch"]),
            progress=progress),
        "train_mindthegap": lambda: train_mindthegap(
            MindTheGapConfig(reference=tmp_path / "ref.png", generator=missing,
                             out=out / "m.safetensors"), progress=progress),
        "train_featureshift": lambda: train_featureshift(
            TrainConfig(data=str(tmp_path / "data"), generator=missing, out=str(out)),
            progress=progress),
    }[which]
    with pytest.raises(StylebridgeError) as info:
        run()
    assert str(info.value) == f"{which}: {_PROGRESS_REFUSED}"
    assert "\n" not in str(info.value) and calls == [] and not out.exists()


def test_check_progress_takes_one_positional_argument_and_passes_unreadable_signatures() -> None:
    import functools

    from stylebridge.pipelines.training.progress import check_progress

    def three(done: int, total: int, text: str) -> None:
        pass

    for ok in (None, lambda event: None, lambda event, extra=None: None, lambda *args: None,
               functools.partial(three, 1, 2), [].append, print, str):  # str: no signature
        check_progress(ok, "train_domain")
    for bad in (three, lambda: None, lambda a, b: None):
        with pytest.raises(StylebridgeError, match=r"^train_domain: progress= is called with"):
            check_progress(bad, "train_domain")
    with pytest.raises(StylebridgeError, match=r"^train_domain: progress must be a callable"):
        check_progress(3, "train_domain")


@pytest.mark.parametrize("which", ["generate", "invert", "adapt"])
def test_a_one_event_progress_is_refused_by_the_photo_pipelines_before_loading(
        which: str, tmp_path: Path) -> None:
    """The other way round: the trainers' progress(event) failed generate/invert/adapt
    mid-run with a raw TypeError, after the models had loaded."""
    from stylebridge.pipelines.adapt import AdaptConfig, adapt
    from stylebridge.pipelines.generate import GenerateConfig, generate
    from stylebridge.pipelines.invert import InvertConfig, invert

    missing = str(tmp_path / "missing.safetensors")  # a load would fail on it: none happens
    out = tmp_path / "out"
    run: Any = {
        "generate": lambda: generate(GenerateConfig(generator=missing, out=out), lambda e: None),
        "invert": lambda: invert(InvertConfig(encoder=f"e4e:{missing}", generator=missing,
                                              images=[str(tmp_path)], out=out), lambda e: None),
        "adapt": lambda: adapt(AdaptConfig(encoder=f"e4e:{missing}", generator=missing,
                                           methods=[missing], images=[str(tmp_path)], out=out),
                               lambda e: None),
    }[which]
    with pytest.raises(StylebridgeError) as info:
        run()
    assert str(info.value) == (f"{which}: progress= is called as progress(done, total, text); "
                               "the training pipelines' progress(event) shape does not fit here")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# The Adapter's type errors


def test_the_adapter_names_the_expected_kind_with_its_article(preset: TinyPreset) -> None:
    gen = stylebridge.create("generator", str(preset.generator))
    with pytest.raises(StylebridgeError, match=r"^Adapter encoder: expected an Encoder, got a "
                                               r"str \(build one with"):
        stylebridge.Adapter("fse", gen, {})  # type: ignore[arg-type]
    with pytest.raises(StylebridgeError, match=r"^Adapter renderer: expected a Renderer, got "
                                               r"an int \("):
        stylebridge.Adapter(None, gen, {}, renderer=1)  # type: ignore[arg-type]
