"""What a third-party plugin author meets (a QA tester's findings): `plugins NAME` shows each
kind's real spec grammar and the attributes a plugin declares, and why a refused plugin is
missing; a plugin's own weights, a metric's bad return value and a loss weight given to
`create` are each said in one line naming the plugin; a `config()` that does not rebuild the
plugin is refused before it saves checkpoints that do not load; CONTRIBUTING says truthfully
which exceptions make `eval` skip a pair."""

from __future__ import annotations

import importlib.metadata
import json
import re
import sys
import types
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from PIL import Image

from stylebridge.cli.main import main
from stylebridge.core.interfaces import (
    DomainMethod,
    Encoder,
    Inversion,
    Loss,
    LossBatch,
    Metric,
    Preprocessing,
)
from stylebridge.errors import RegistryError, SpecError, StylebridgeError
from stylebridge.registry import hookimpl
from stylebridge.registry import registry as registry_mod

PKG = "qa_sb_faults"
REPO = Path(__file__).resolve().parents[1]


class Charbonnier(Loss):
    """Charbonnier distance"""

    name = "charbonnier"
    requires: ClassVar[frozenset[str]] = frozenset({"output", "target"})

    def __init__(self, eps: float = 1e-3) -> None:
        super().__init__()
        self.eps = eps

    def config(self) -> dict[str, Any]:
        return {"eps": self.eps}

    def forward(self, batch: LossBatch) -> torch.Tensor:
        return ((batch.output - batch.target).square() + self.eps ** 2).sqrt().mean()


class OwnWeightsLoss(Loss):
    """Reads its package's own network"""

    name = "qa-own-weights"
    requires: ClassVar[frozenset[str]] = frozenset({"output"})

    @classmethod
    def unavailable_weights(cls, config: Any) -> tuple[str, ...]:
        return ("qa-net",)

    def forward(self, batch: LossBatch) -> torch.Tensor:
        return batch.output.mean()


class ListMetric(Metric):
    """Returns a list"""

    name = "qa-list-metric"
    direction = "higher"
    unit = "dB"
    random_weights = True

    def reset(self) -> None:
        pass

    def update(self, pred, target=None, **context) -> None:
        self.last = {"qa": [1.0]}  # one value, whatever the batch

    def compute(self) -> Any:
        return [1.0]


class SizeMetric(Metric):
    """Refuses images narrower than 12 px with the error it is given"""

    name = "qa-size-metric"
    needs_target = False
    error: ClassVar[type[Exception]] = ValueError
    message: ClassVar[str] = "input size too small for the window"

    def reset(self) -> None:
        self.n = 0

    def update(self, pred, target=None, **context) -> None:
        if pred.shape[-1] < 12:
            raise self.error(self.message)
        self.n += pred.shape[0]
        self.last = {"qa_n": [1.0] * pred.shape[0]}

    def compute(self) -> dict[str, float]:
        return {"qa_n": float(self.n)}

    def state(self) -> dict[str, Any]:
        return {"n": self.n}

    def load_state(self, state) -> None:
        self.n = int(state["n"])


class Labelled(DomainMethod):
    """Conv weights without has_weight_offsets"""

    name = "qa-labelled"
    label = "qa-domain"

    def styles(self, generator, w_plus, offset_scale=None):
        return generator.styles(w_plus)

    def weight_deltas(self, generator, offset_scale=None):
        return {0: torch.zeros(1)}


class DropsN(Encoder):
    """config() forgets n"""

    name = "qa-drops-n"

    def __init__(self, n: int = 3) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=8)
        self.lin = torch.nn.Linear(n, 256)

    def encode(self, images: torch.Tensor) -> Inversion:
        raise NotImplementedError


class KeepsN(DropsN):
    """config() gives n back"""

    name = "qa-keeps-n"

    def __init__(self, n: int = 3) -> None:
        super().__init__(n)
        self.n = n

    def config(self) -> dict[str, Any]:
        return {"n": self.n}


class StaleN(KeepsN):
    """config() gives a stale n"""

    name = "qa-stale-n"

    def config(self) -> dict[str, Any]:
        return {"n": 3}


class NotACommand:
    name = "qa-cmd"


@pytest.fixture
def qa_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> registry_mod.Registry:
    """The package ``qa_sb_faults`` installed through an entry point (simulated, as in
    test_plugin_faults), with an empty weights home; the process-wide registry finds it."""
    plug = types.SimpleNamespace(
        register_losses=hookimpl(lambda register: [register(Charbonnier),
                                                   register(OwnWeightsLoss)]),
        register_metrics=hookimpl(lambda register: [register(ListMetric),
                                                    register(SizeMetric)]),
        register_domain_methods=hookimpl(lambda register: register(Labelled)),
        register_encoders=hookimpl(lambda register: [register(c) for c in (DropsN, KeepsN,
                                                                              StaleN)]),
        register_commands=hookimpl(lambda register: register(NotACommand())))
    module = types.ModuleType(PKG)
    module.plug = plug  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, PKG, module)
    eps = [importlib.metadata.EntryPoint(name="faults", value=f"{PKG}:plug", group="stylebridge")]
    monkeypatch.setattr(registry_mod.importlib.metadata, "entry_points",
                        lambda group=None: eps if group == "stylebridge" else [])
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("COLUMNS", "400")
    registry = registry_mod.Registry()
    monkeypatch.setattr(registry_mod, "_REGISTRY", registry)
    return registry


def _out(capsys) -> str:
    return " ".join(capsys.readouterr().out.split())


# 1 -------------------------------------------------------------------------------------------

def test_plugins_shows_each_kinds_real_spec_grammar(qa_package, capsys) -> None:
    """Before: `options (charbonnier[:CHECKPOINT]:KEY=VALUE,...)`, which `--loss` refuses."""
    from stylebridge.registry.spec import parse_loss_spec

    assert main(["plugins", "charbonnier"]) == 0
    out = _out(capsys)
    assert ('options (--loss charbonnier:WEIGHT[:KEY=VALUE,...]; create("loss", '
            '"charbonnier[:KEY=VALUE,...]") takes no weight):') in out
    assert "[:CHECKPOINT]" not in out
    assert parse_loss_spec("charbonnier:0.5:eps=0.01").options == {"eps": "0.01"}
    assert main(["plugins", "fse", "--kind", "encoder"]) == 0
    assert "options (--encoder fse[:CHECKPOINT][:KEY=VALUE,...]):" in _out(capsys)
    assert main(["plugins", "lpips", "--kind", "metric", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"] == "--metric lpips[:KEY=VALUE,...]"
    assert main(["plugins", "id", "--kind", "metric", "--json"]) == 0  # takes weights=
    assert json.loads(capsys.readouterr().out)["spec"] == (
        "--metric id[:KEY=VALUE,...]; id:PATH is id:weights=PATH")
    assert main(["plugins", "stylegan2-nvlabs", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["spec"] == (
        "stylebridge convert stylegan2-nvlabs SRC DST --option KEY=VALUE")


# 2 -------------------------------------------------------------------------------------------

def test_a_plugins_own_weights_are_named_not_dropped(qa_package) -> None:
    """Before: `missing_weights` returned [] (the name is no entry of the manager), and the
    run went on to fail inside the plugin."""
    from stylebridge.registry.needed import UnknownWeightsError, missing_weights, require_weights

    own = ("loss 'qa-own-weights' (from qa_sb_faults) needs weights 'qa-net' (--loss "
           "qa-own-weights:1)")
    with pytest.raises(UnknownWeightsError) as info:
        missing_weights([("loss", "qa-own-weights:1", "--loss")])
    assert str(info.value) == (
        f"{own} that stylebridge's weights manager does not know, so `stylebridge weights "
        "fetch` cannot get it: install it as the plugin's package documents")
    # with an official download missing too: both in the one line
    with pytest.raises(UnknownWeightsError) as info:
        require_weights([("loss", "lpips:0.8", "--loss"), ("loss", "qa-own-weights:1", "--loss")])
    assert str(info.value).startswith(f"{own} that stylebridge's weights manager does not know")
    assert str(info.value).endswith("; besides, official weights are not installed: lpips-alex "
                                    "(for --loss lpips:0.8); run `stylebridge weights fetch "
                                    "lpips-alex`")
    assert [m.name for m in info.value.missing] == ["lpips-alex"]
    assert "\n" not in str(info.value)


# 3 -------------------------------------------------------------------------------------------

def test_metric_return_value_errors_name_the_package(qa_package) -> None:
    """Before: `metric 'qa-list-metric': compute() returned a list` (a loss names its package)."""
    from stylebridge.pipelines.eval_score import Scorer
    from stylebridge.pipelines.evaluate import build_metrics, metric_values, parse_metric_spec

    [metric] = build_metrics([parse_metric_spec("qa-list-metric")], torch.device("cpu"))
    with pytest.raises(StylebridgeError, match=r"^metric 'qa-list-metric' \(from qa_sb_faults\): "
                                               r"compute\(\) returned a list; it must return a "
                                               r"dict of name -> number$"):
        metric_values(metric, "qa-list-metric")
    scorer = Scorer([metric], ["qa-list-metric"], [""])
    with pytest.raises(StylebridgeError, match=r"^metric 'qa-list-metric' \(from qa_sb_faults\): "
                                               r"last\['qa'\] holds 1 value\(s\) for a batch of "
                                               r"2 image\(s\)"):
        scorer.update(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8))
    [psnr] = build_metrics([parse_metric_spec("psnr")], torch.device("cpu"))
    psnr.compute = lambda: [1.0]  # a built-in is named without a package
    with pytest.raises(StylebridgeError, match=r"^metric 'psnr': compute\(\) returned a list"):
        metric_values(psnr, "psnr")


# 4 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("spec", "alone"), [("l1:0.5", "'l1:KEY=VALUE,...'"),
                                             ("mse:2:foo=1", "'mse:foo=1'")])
def test_create_says_a_loss_weight_belongs_to_the_trainer(spec, alone) -> None:
    """Before: `0.5: no such file` (the plugin grammar reads NAME:PATH)."""
    import stylebridge

    name = spec.split(":")[0]
    weight = spec.split(":")[1]
    with pytest.raises(SpecError) as info:
        stylebridge.create("loss", spec)
    assert str(info.value) == (
        f"loss spec {spec!r}: {weight} is a loss weight, which belongs to the trainer (--loss "
        f"{spec}, or a trainer config's losses); create() builds the loss alone: {name!r} or "
        f"{alone}")


# 5 -------------------------------------------------------------------------------------------

def test_plugins_name_says_why_a_command_was_refused(qa_package, capsys) -> None:
    """Before: `no plugin named 'qa-cmd'; did you mean ...`."""
    assert main(["plugins", "qa-cmd"]) == 2
    err = capsys.readouterr().err
    assert err == ("error: command 'qa-cmd' is not available: registered a NotACommand, not a "
                   "stylebridge.cli.base.Command instance (package qa_sb_faults); `stylebridge "
                   "plugins` lists every failure\n")


# 6 -------------------------------------------------------------------------------------------

def test_plugins_shows_the_declared_attributes(qa_package, capsys) -> None:
    assert main(["plugins", "qa-list-metric", "--json"]) == 0
    caps = {c["name"]: c["meaning"] for c in json.loads(capsys.readouterr().out)["capabilities"]}
    assert caps["direction"].endswith(": higher") and caps["unit"].endswith(": dB")
    assert caps["random_weights"].startswith("runs on untrained weights")
    assert main(["plugins", "qa-labelled"]) == 0
    out = _out(capsys)
    assert "label: names itself in messages and outputs as: qa-domain" in out
    # weight_deltas without has_weight_offsets: was a warning here only, and train
    # featureshift rendered the domain without its deltas; the interface declares it now
    assert "warning:" not in out
    assert "has_weight_offsets: " in out
    assert main(["plugins", "stylespace", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {"has_weight_offsets", "weight_deltas"} <= {c["name"] for c in info["capabilities"]}
    assert info["warnings"] == []
    assert main(["plugins", "psnr", "--json"]) == 0
    caps = {c["name"]: c["meaning"] for c in json.loads(capsys.readouterr().out)["capabilities"]}
    assert caps["direction"].endswith(": higher") and "random_weights" not in caps


# 7 -------------------------------------------------------------------------------------------

def test_a_config_that_does_not_rebuild_the_plugin_is_refused(qa_package, tmp_path) -> None:
    """Before: built, saved, and its checkpoint refused on loading (`tensor lin.weight has
    shape [256, 5], expected [256, 3]`)."""
    import stylebridge
    from stylebridge.core.checkpoint import save_checkpoint

    with pytest.raises(RegistryError) as info:
        stylebridge.create("encoder", "qa-drops-n:n=5")
    assert str(info.value) == (
        "encoder 'qa-drops-n' (from qa_sb_faults): config() leaves out option n=5, so a rebuild "
        "gets the default n=3; return every option it was built with from config(): "
        "type(obj)(**obj.config()) must rebuild it, else its checkpoints do not load")
    with pytest.raises(RegistryError, match=r"^encoder 'qa-stale-n' \(from qa_sb_faults\): "
                                            r"built with n=5, but config\(\) gives n=3; "):
        qa_package.create("encoder", "qa-stale-n", n=5)
    stylebridge.create("encoder", "qa-drops-n:n=3")  # the default: rebuilt the same
    keeps = stylebridge.create("encoder", "qa-keeps-n:n=5")
    path = save_checkpoint(tmp_path / "k.safetensors", keeps.state_dict(), kind="encoder",
                           plugin="qa-keeps-n", config=keeps.config())
    assert stylebridge.create("encoder", str(path)).lin.weight.shape == (256, 5)


def test_builtins_that_normalise_an_option_are_not_refused() -> None:
    """e4e leaves `resize` out of config() when it is the class's filter (its default is
    None); a boolean given as `yes` comes back as True."""
    from stylebridge.registry import Registry

    reg = Registry(entry_points=False)
    enc = reg.create("encoder", "e4e", n_styles=6, style_dim=32, input_size=64,
                     resize="pil-bilinear")
    assert "resize" not in enc.config()
    method = reg.create("domain_method", "stylespace", size=32, style_dim=16, torgb="yes")
    assert method.config()["torgb"] is True


def test_the_contributing_loss_with_an_option_round_trips() -> None:
    """The `squared` example had no config(): rebuilt from it, squared was lost."""
    text = (REPO / "CONTRIBUTING.md").read_text(encoding="utf-8")
    loss_block = re.search(r"\n### A loss\n.*?```python\n(.*?)```", text, re.S).group(1)
    faults = text.split("\n### Faults and bad options\n", 1)[1]
    option_block = re.search(r"```python\n(.*?)```", faults, re.S).group(1)
    namespace: dict[str, Any] = {}
    exec(compile(loss_block, "CONTRIBUTING.md (A loss)", "exec"), namespace)
    exec(compile(option_block, "CONTRIBUTING.md (Faults)", "exec"), namespace)
    loss = namespace["L1"](squared="yes")
    again = type(loss)(**loss.config())
    assert loss.config() == {"squared": True} and again.squared is True


# 8 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("error", "message", "skipped"), [
    (ValueError, "input size too small for the window", True),
    (RuntimeError, "expected 4 dimensions", True),
    (StylebridgeError, "no face in this picture", True),
    (ValueError, "bad pixels", False),
    (TypeError, "input size too small", False),
])
def test_eval_skips_only_what_contributing_says(qa_package, tmp_path, monkeypatch, error,
                                                message, skipped) -> None:
    from stylebridge.pipelines.evaluate import EvalConfig, evaluate

    monkeypatch.setattr(SizeMetric, "error", error)
    monkeypatch.setattr(SizeMetric, "message", message)
    rng = np.random.default_rng(0)
    (tmp_path / "pred").mkdir()
    for name, size in (("big", 16), ("small", 8)):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(
            tmp_path / "pred" / f"{name}.png")
    config = EvalConfig(metrics=["qa-size-metric"], pred=[tmp_path / "pred"], device="cpu")
    if not skipped:
        with pytest.raises(error, match=message):
            evaluate(config)
        return
    result = evaluate(config)
    assert [p.name for p, _ in result.report.skipped] == ["small.png"]
    assert result.means == {"qa_n": 1.0}
    doc = " ".join((REPO / "CONTRIBUTING.md").read_text(encoding="utf-8").split())
    assert ("raise either a `StylebridgeError` (any message) or a `RuntimeError`/`ValueError` "
            "whose message speaks of the input's size: it contains the word size(s), shape(s) "
            "or dimension(s), or \"too small\"") in doc
    assert "Any other exception, a `ValueError(\"bad pixels\")` or a `TypeError` included" in doc
