"""Spec option values are typed by the plugin constructor's hints (``registry/typed_options.py``).

Before, ``mine:k=2.5`` reached ``k: int`` as 2.5, ``k=abc`` as 'abc', ``s=123`` reached
``s: str`` as the int 123, ``flag=0`` reached ``flag: bool`` as the int 0 and ``opt=null``
reached ``opt: int | None`` as the string 'null': the text alone was guessed.  Now each is
converted by its hint, or refused in one line naming the plugin, the option, the value and
the type before the plugin is built; an option with a ``config_schema`` field keeps its
schema, one without a usable hint keeps the guess, and ``stylebridge plugins NAME`` shows
the type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import pytest
import torch
from test_cli import run
from test_eval_partial import _folders

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.interfaces import Encoder, Inversion, Loss, LossBatch, Preprocessing
from stylebridge.errors import RegistryError, SpecError
from stylebridge.pipelines.training.losses import build_loss_terms
from stylebridge.plugins.metrics.base import PerImageMetric
from stylebridge.registry import hookimpl
from stylebridge.registry.resolve import create, load_plugin
from stylebridge.registry.typed_options import option_types

if TYPE_CHECKING:  # not importable when the hints are read: that one hint is left out
    from stylebridge.core.stylegan2.generator import Generator

pytestmark = pytest.mark.usefixtures("registered", "no_weights_one_thread")


class TypedMetric(PerImageMetric):
    """A third-party metric with one option of each simple type, and one without a hint."""

    name = "typed-mine"
    built: ClassVar[int] = 0

    def __init__(self, k: int, s: str = "x", flag: bool = False, opt: int | None = None,
                 scale: float = 1.0, mode: Literal["a", "b"] = "a", level: Literal[1, 2] = 1,
                 loose=None) -> None:
        type(self).built += 1
        super().__init__(k=k, s=s, flag=flag, opt=opt, scale=scale, mode=mode, level=level,
                         loose=loose)
        self.given = {"k": k, "s": s, "flag": flag, "opt": opt, "scale": scale, "mode": mode,
                      "level": level, "loose": loose}

    def score(self, pred: torch.Tensor, target: Any, **context: Any) -> dict[str, torch.Tensor]:
        return {"typed": (pred - target).abs().mean(dim=(1, 2, 3))}


class HalfHinted(TypedMetric):
    """A hint that cannot be resolved (a name imported under TYPE_CHECKING) leaves the others."""

    name = "half-hinted"

    def __init__(self, k: int = 1, gen: Generator | None = None) -> None:
        super().__init__(k=k, loose=gen)


class TypedLoss(Loss):
    name = "typed-loss"
    requires: ClassVar[frozenset[str]] = frozenset({"output", "target"})

    def __init__(self, k: int = 1, s: str = "x") -> None:
        super().__init__()
        self.k, self.s = k, s

    def config(self) -> dict[str, Any]:
        return {"k": self.k, "s": self.s}

    def forward(self, batch: LossBatch) -> torch.Tensor:
        return (batch.output - batch.target).abs().mean() * self.k


class TypedEncoder(Encoder):
    name = "typed-enc"

    def __init__(self, n_latent: int = 2, style_dim: int = 3, label: str = "x") -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=8)
        self.n_latent, self.style_dim, self.label = n_latent, style_dim, label
        self.w = torch.nn.Parameter(torch.zeros(n_latent, style_dim))

    def config(self) -> dict[str, Any]:
        return {"n_latent": self.n_latent, "style_dim": self.style_dim, "label": self.label}

    def encode(self, images: torch.Tensor) -> Inversion:
        return Inversion(w_plus=self.w.expand(images.shape[0], -1, -1))


@hookimpl
def register_metrics(register: Any) -> None:
    register(TypedMetric)
    register(HalfHinted)


@hookimpl
def register_losses(register: Any) -> None:
    register(TypedLoss)


@hookimpl
def register_encoders(register: Any) -> None:
    register(TypedEncoder)


def test_each_option_is_converted_by_its_constructor_hint() -> None:
    """int, text exactly as typed, as_bool's spellings, none/null for an optional, a float
    (an integer stays an int), Literal members; no hint: the guess from the text, as before."""
    metric = create("metric", "typed-mine:k=2,s=007,flag=0,opt=null,scale=3,mode=b,level=2,"
                              "loose=3").obj
    assert metric.given == {"k": 2, "s": "007", "flag": False, "opt": None, "scale": 3,
                            "mode": "b", "level": 2, "loose": 3}
    assert type(metric.given["flag"]) is bool and type(metric.given["level"]) is int
    metric = load_plugin("metric", "typed-mine:k=-4,s=1e3,flag=Yes,opt=NONE,scale=0.5,"
                                   "loose=true")
    assert metric.given == {"k": -4, "s": "1e3", "flag": True, "opt": None, "scale": 0.5,
                            "mode": "a", "level": 1, "loose": True}
    metric = load_plugin("metric", "typed-mine:k=1,s=123,flag=1,opt=7,scale=1e3")
    assert metric.given["s"] == "123" and metric.given["flag"] is True
    assert metric.given["opt"] == 7 and metric.given["scale"] == 1000.0


@pytest.mark.parametrize(("options", "expected"), [
    ("k=2.5", "option k=2.5: expected an integer"),
    ("k=abc", "option k=abc: expected an integer"),
    ("k=true", "option k=true: expected an integer"),
    ("k=1,flag=0.0", "option flag=0.0: expected true or false"),
    ("k=1,flag=maybe", "option flag=maybe: expected true or false"),
    ("k=1,opt=1.5", "option opt=1.5: expected an integer or none"),
    ("k=1,opt=nil", "option opt=nil: expected an integer or none"),
    ("k=1,scale=abc", "option scale=abc: expected a finite number"),
    ("k=1,mode=c", "option mode=c: expected one of a, b"),
    ("k=1,mode=none", "option mode=none: expected one of a, b"),
    ("k=1,level=3", "option level=3: expected one of 1, 2"),
])
def test_a_value_that_does_not_fit_is_one_line_before_the_plugin_is_built(
        options: str, expected: str) -> None:
    TypedMetric.built = 0
    for build in (create, load_plugin):
        with pytest.raises(SpecError) as info:
            build("metric", f"typed-mine:{options}")
        assert str(info.value) == f"metric 'typed-mine' (from tests) {expected}"
    assert TypedMetric.built == 0


def test_a_hint_that_cannot_be_resolved_keeps_the_guess_for_that_option_alone() -> None:
    assert set(option_types(HalfHinted)) == {"k"}
    assert load_plugin("metric", "half-hinted:gen=3").given["loose"] == 3  # guessed
    with pytest.raises(SpecError, match=r"^metric 'half-hinted' \(from tests\) option k=2\.5: "
                                        r"expected an integer$"):
        load_plugin("metric", "half-hinted:k=2.5")


def test_a_loss_spec_is_typed_for_the_trainer_and_for_create() -> None:
    term, = build_loss_terms(["typed-loss:0.5:s=007,k=3"])
    assert (term.module.s, term.module.k) == ("007", 3)
    assert create("loss", "typed-loss:s=010").obj.s == "010"
    with pytest.raises(SpecError) as info:
        build_loss_terms(["typed-loss:0.5:k=2.5"])
    assert str(info.value) == ("--loss 'typed-loss:0.5:k=2.5': loss 'typed-loss' (from tests) "
                               "option k=2.5: expected an integer")


def test_a_checkpoint_alone_is_typed_by_the_plugin_its_header_names(tmp_path: Path) -> None:
    enc = TypedEncoder()
    path = save_checkpoint(tmp_path / "enc.safetensors", enc.state_dict(), kind="encoder",
                           plugin=enc.name, config=enc.config())
    assert create("encoder", f"{path}:label=007").obj.label == "007"
    assert create("encoder", f"typed-enc:{path}:label=1.50").obj.label == "1.50"
    with pytest.raises(SpecError) as info:
        create("encoder", f"{path}:n_latent=2.5")
    assert str(info.value) == ("encoder 'typed-enc' (from tests) option n_latent=2.5: expected "
                               "an integer")


def test_plugins_name_shows_each_options_type(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plugins", "typed-mine", "--kind", "metric", "--json")
    assert code == 0
    allowed = {row["name"]: row["allowed"] for row in json.loads(out)["options"]}
    assert allowed == {"k": "an integer", "s": "text", "flag": "true or false",
                       "opt": "an integer or none", "scale": "a finite number",
                       "mode": "one of a, b", "level": "one of 1, 2", "loose": ""}


def test_eval_refuses_a_value_that_does_not_fit_in_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pred, target = _folders(tmp_path, {"a": (51, 60)})
    TypedMetric.built = 0
    code = main(["eval", "-m", "typed-mine:k=2.5", "--pred", str(pred), "--target", str(target),
                 "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2
    assert err == "error: metric 'typed-mine' (from tests) option k=2.5: expected an integer\n"
    assert TypedMetric.built == 0


def test_a_builtin_keeps_its_schema_and_gets_its_hints_elsewhere(
        capsys: pytest.CaptureFixture[str]) -> None:
    """lpips: ``net`` has a schema field (the text is guessed, the schema refuses it, as
    before); ``size: int | None`` has none (typed by its hint now)."""
    with pytest.raises(RegistryError) as info:
        create("metric", "lpips:net=123,allow_random=true")
    assert str(info.value) == "metric 'lpips': config net=123: expected one of alex, vgg"
    with pytest.raises(SpecError) as spec_info:
        create("metric", "lpips:size=abc,allow_random=true")
    assert str(spec_info.value) == "metric 'lpips' option size=abc: expected an integer or none"
    code, out, _ = run(capsys, "plugins", "lpips", "--kind", "metric", "--json")
    assert code == 0
    allowed = {row["name"]: row["allowed"] for row in json.loads(out)["options"]}
    assert allowed["net"] == "one of alex, vgg" and allowed["size"] == "an integer or none"


def test_a_text_option_keeps_none_as_text() -> None:
    """`clip_quality:text=none` scored against the prompt "none"; typed by `str | None`, it
    became None ("needs exactly one of text=..."), and `fid:weights=none` quietly loaded the
    installed weights instead of saying "no such file"."""
    from stylebridge.plugins.metrics.clip import ClipQualityMetric
    from stylebridge.registry.typed_options import option_types

    hint = option_types(ClipQualityMetric)["text"]
    assert hint.convert("none", "text") == "none" and hint.convert("null", "text") == "null"
    assert hint.describe() == "text"
