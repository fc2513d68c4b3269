"""Targets of grouped commands (``stylebridge train NAME``, ``stylebridge reproduce NAME``)
register through the ``register_command_targets`` hook, as commands do: a third-party package
adds ``train mymethod`` without editing stylebridge, every target is listed by ``stylebridge
plugins`` (kind ``command_target``, name ``COMMAND.NAME``), and a name two installed packages
register drops only that target, with the reason in ``stylebridge plugins`` and in
``stylebridge train NAME``.  The help texts are those from before the hook."""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
import types
from typing import Any

import pytest

from stylebridge.cli.base import Target
from stylebridge.cli.main import main
from stylebridge.registry import hookimpl
from stylebridge.registry import registry as registry_mod

TRAIN_HELP_BEFORE = """usage: stylebridge train [-h] [--debug] TARGET ...

train a model: `train domain` (a domain method from a text prompt or one reference image), `train
hyperdomain` (one network for many prompts), `train mindthegap` (one reference image), `train
featureshift`

positional arguments:
  TARGET
    domain      train a domain method from a text prompt or one reference image
    featureshift
                train FeatureShift on a `featureshift build-dataset` dataset (thesis losses and
                phases)
    hyperdomain
                train HyperDomainNet's hyper-network (text -> domain modulation) over a list of
                prompts
    mindthegap  MindTheGap: fine-tune the synthesis network from one reference image (a generator
                delta)

options:
  -h, --help    show this help message and exit
  --debug       show full tracebacks instead of one-line errors
"""

REPRODUCE_HELP_BEFORE = """usage: stylebridge reproduce [-h] [--debug] TARGET ...

recompute the thesis' results: `reproduce thesis-tables` (Tables 4.1-4.3)

positional arguments:
  TARGET
    thesis-tables
                 CLIP Quality / Diversity of Tables 4.1-4.3 (orig, e4e, FSE, FeatureShift rows x
                 domains x CLIP models; --methods adds a table comparing domain methods)

options:
  -h, --help     show this help message and exit
  --debug        show full tracebacks instead of one-line errors
"""

BUILTIN_TARGETS = {"train.domain", "train.featureshift", "train.hyperdomain",
                   "train.mindthegap", "reproduce.thesis-tables"}


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # --help
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _target(name: str, seen: list[Any], *, command: str = "train", help: str = "",
            value: int = 0) -> Target:
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--n", type=int, default=1)

    def run(args: argparse.Namespace, console: Any) -> int:
        seen.append((name, args.n))
        return value

    return Target(name, add_arguments, run, help=help or f"{name} (a test target)",
                  command=command)


def _targets_plugin(module_name: str, *targets: Any) -> types.SimpleNamespace:
    @hookimpl
    def register_command_targets(register: Any) -> None:
        for target in targets:
            register(target)

    return types.SimpleNamespace(__name__=module_name,
                                 register_command_targets=register_command_targets)


def _extra(monkeypatch: pytest.MonkeyPatch, *plugins: Any) -> registry_mod.Registry:
    """The process-wide registry: the built-ins and ``plugins`` (restored after the test)."""
    reg = registry_mod.Registry(entry_points=False, extra_plugins=list(plugins))
    monkeypatch.setattr(registry_mod, "_REGISTRY", reg)
    return reg


def _installed(monkeypatch: pytest.MonkeyPatch, **packages: Any) -> registry_mod.Registry:
    """Installed packages (simulated entry points ``NAME = NAME:plug``): the built-ins and
    ``packages``, as the process-wide registry (restored after the test)."""
    eps = []
    for name, plugin in packages.items():
        module = types.ModuleType(name)
        module.plug = plugin  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, name, module)
        eps.append(importlib.metadata.EntryPoint(name="plug", value=f"{name}:plug",
                                                 group="stylebridge"))
    monkeypatch.setattr(registry_mod.importlib.metadata, "entry_points",
                        lambda group=None: eps if group == "stylebridge" else [])
    reg = registry_mod.Registry()
    monkeypatch.setattr(registry_mod, "_REGISTRY", reg)
    return reg


def test_builtin_targets_are_registered_through_the_hook_and_listed(capsys) -> None:
    reg = registry_mod.Registry(entry_points=False)
    assert set(reg.names("command_target")) == BUILTIN_TARGETS
    assert all(reg.get("command_target", n).provider == "stylebridge" for n in BUILTIN_TARGETS)
    assert isinstance(reg.get("command_target", "train.domain").obj, Target)
    code, out, _ = _run(capsys, "plugins", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)["command_target"]}
    assert set(rows) >= BUILTIN_TARGETS
    assert rows["train.domain"]["description"] == ("train a domain method from a text prompt "
                                                   "or one reference image")
    code, out, _ = _run(capsys, "plugins", "thesis-tables")  # a target by its own name too
    assert code == 0 and "usage: stylebridge reproduce thesis-tables --help" in out


def test_help_texts_are_unchanged(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    assert _run(capsys, "train", "--help") == (0, TRAIN_HELP_BEFORE, "")
    assert _run(capsys, "reproduce", "--help") == (0, REPRODUCE_HELP_BEFORE, "")


def test_a_third_party_target_registered_through_the_hook_is_offered_and_runs(
        capsys, monkeypatch) -> None:
    seen: list[Any] = []
    plugin = _targets_plugin("thirdparty_targets",
                             _target("mymethod", seen, help="train my method (test)"),
                             _target("myrow", seen, command="reproduce", value=3))
    reg = _extra(monkeypatch, plugin)
    assert reg.get("command_target", "train.mymethod").provider == "thirdparty_targets"
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = _run(capsys, "train", "--help")
    assert code == 0 and "    mymethod    train my method (test)\n" in out
    assert "hyperdomain" in out and "TARGET" in out
    code, out, _ = _run(capsys, "train", "mymethod", "--help")
    assert code == 0 and "--n N" in out and "train my method (test)" in out
    assert _run(capsys, "train", "mymethod", "--n", "7")[0] == 0 and seen == [("mymethod", 7)]
    assert _run(capsys, "reproduce", "myrow")[0] == 3 and seen[-1] == ("myrow", 1)
    code, out, _ = _run(capsys, "plugins", "--json")
    rows = {r["name"]: r["provider"] for r in json.loads(out)["command_target"]}
    assert rows["train.mymethod"] == rows["reproduce.myrow"] == "thirdparty_targets"
    assert "reproduce" not in {n.partition(".")[2] for n in rows}  # no train target 'myrow'
    code, _, err = _run(capsys, "train", "myrow")
    assert code == 2 and "invalid choice: 'myrow'" in err


def test_a_target_two_packages_register_drops_only_that_target(capsys, monkeypatch) -> None:
    seen: list[Any] = []
    reg = _installed(monkeypatch,
                     qa_tgt_a=_targets_plugin("qa_tgt_a", _target("clash", seen),
                                              _target("alpha", seen)),
                     qa_tgt_b=_targets_plugin("qa_tgt_b", _target("clash", seen),
                                              _target("beta", seen)))
    assert {"train.alpha", "train.beta"} <= set(reg.names("command_target"))
    assert "train.clash" not in reg.names("command_target")
    # the packages' other targets (and the built-ins) work
    assert _run(capsys, "train", "alpha", "--n", "2")[0] == 0
    assert _run(capsys, "train", "beta")[0] == 0 and seen == [("alpha", 2), ("beta", 1)]
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = _run(capsys, "train", "--help")
    assert code == 0 and "alpha" in out and "beta" in out and "clash" not in out
    assert "mindthegap" in out
    why = ("command target 'train.clash' is registered by 'qa_tgt_a' and 'qa_tgt_b': "
           "neither is used")
    code, _, err = _run(capsys, "train", "clash", "--n", "3")
    assert code == 2 and err.startswith(f"error: {why}; uninstall one") and err.count("\n") == 1
    assert seen == [("alpha", 2), ("beta", 1)]
    code, out, _ = _run(capsys, "plugins", "--json")
    data = json.loads(out)
    assert "train.clash" not in {r["name"] for r in data["command_target"]}
    assert [(f["provider"], f["error"]) for f in data["failed"]] == [
        ("qa_tgt_a", f"{why} (uninstall one, or rename it)"),
        ("qa_tgt_b", f"{why} (uninstall one, or rename it)")]
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = _run(capsys, "plugins")
    assert code == 0 and f"plugin qa_tgt_b (plug): {why}" in out
    code, _, err = _run(capsys, "plugins", "train.clash")
    assert code == 2 and why in err


def test_a_target_two_packages_register_under_different_commands_is_no_clash(
        capsys, monkeypatch) -> None:
    seen: list[Any] = []
    reg = _installed(monkeypatch,
                     qa_tgt_a=_targets_plugin("qa_tgt_a", _target("same", seen)),
                     qa_tgt_b=_targets_plugin("qa_tgt_b", _target("same", seen,
                                                                  command="reproduce")))
    assert {"train.same", "reproduce.same"} <= set(reg.names("command_target"))
    assert not reg.failures
    assert _run(capsys, "train", "same")[0] == 0 and _run(capsys, "reproduce", "same")[0] == 0


def test_a_third_party_target_under_a_builtin_name_is_ignored(capsys, monkeypatch) -> None:
    seen: list[Any] = []
    reg = _installed(monkeypatch, qa_tgt_a=_targets_plugin("qa_tgt_a", _target("domain", seen),
                                                           _target("alpha", seen)))
    assert reg.get("command_target", "train.domain").provider == "stylebridge"
    assert [f.error for f in reg.failures] == [
        "command target 'train.domain' is a built-in name: this registration is ignored "
        "(rename it)"]
    assert _run(capsys, "train", "alpha")[0] == 0
    code, out, _ = _run(capsys, "train", "domain", "--help")
    assert code == 0 and "--text PROMPT" in out and "--n N" not in out


def test_a_broken_third_party_target_takes_only_itself_down(capsys, monkeypatch) -> None:
    seen: list[Any] = []

    def bad_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-h")  # clashes with argparse's own --help

    class NotATarget:
        name = "nota"
        command = "train"

    bad = Target("badargs", bad_arguments, lambda a, c: 0, command="train")
    _installed(monkeypatch, qa_tgt_a=_targets_plugin("qa_tgt_a", bad, NotATarget(),
                                                     _target("alpha", seen)))
    monkeypatch.setenv("COLUMNS", "100")
    code, out, _ = _run(capsys, "train", "--help")
    assert code == 0 and "alpha" in out and "badargs" not in out and "nota" not in out
    assert _run(capsys, "train", "alpha")[0] == 0 and seen == [("alpha", 1)]
    code, _, err = _run(capsys, "train", "badargs")
    assert code == 2 and err.startswith("error: train target 'badargs' is broken and was not "
                                        "loaded: add_arguments raised ArgumentError: ")
    code, _, err = _run(capsys, "train", "nota", "--anything")
    assert code == 2 and err == (
        "error: train target 'nota' is broken and was not loaded: registered a NotATarget, "
        "not a stylebridge.cli.base.Target instance (package qa_tgt_a); `stylebridge plugins` "
        "lists the failures\n")
    code, out, _ = _run(capsys, "plugins", "--json")
    errors = [f["error"] for f in json.loads(out)["failed"]]
    assert any(e.startswith("command target 'train.badargs': add_arguments raised") for e in errors)
    assert any(e.startswith("command target 'train.nota': registered a NotATarget") for e in errors)


def test_a_target_needs_a_command_and_a_one_word_name(monkeypatch) -> None:
    from stylebridge.errors import RegistryError

    seen: list[Any] = []
    for target, message in [(_target("x", seen, command=""), "invalid command ''"),
                            (_target("a.b", seen), "invalid name 'a.b'")]:
        with pytest.raises(RegistryError, match=message):
            registry_mod.Registry(entry_points=False,
                                  extra_plugins=[_targets_plugin("qa_bad", target)]
                                  ).names("command_target")


def test_the_older_way_still_adds_a_target(capsys, monkeypatch) -> None:
    from stylebridge.cli.commands import train as train_cli

    seen: list[Any] = []
    _extra(monkeypatch)
    old = _target("older", seen)
    monkeypatch.setitem(train_cli.TRAIN.legacy, "older", old)
    assert {"domain", "older"} <= set(train_cli.TRAIN_TARGETS)
    assert _run(capsys, "train", "older", "--n", "4")[0] == 0 and seen == [("older", 4)]
    # a name the hook registered keeps the hook's target
    monkeypatch.setitem(train_cli.TRAIN.legacy, "domain", _target("domain", seen))
    code, out, _ = _run(capsys, "train", "domain", "--help")
    assert code == 0 and "--text PROMPT" in out


def test_the_contributing_example_adds_a_train_target(capsys, monkeypatch) -> None:
    """CONTRIBUTING.md's "A `train` target" block, registered as a package's module."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("\n### A `train` target\n", 1)[1].split("\n### ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    module = types.ModuleType("contributing_train")
    exec(compile(code.group(1), "CONTRIBUTING.md (A train target)", "exec"), module.__dict__)
    _extra(monkeypatch, module)
    monkeypatch.setenv("COLUMNS", "100")
    code_, out, _ = _run(capsys, "train", "--help")
    assert code_ == 0 and "my-method   train my domain method from a text prompt" in out
    code_, out, _ = _run(capsys, "train", "my-method", "--text", "a sketch", "--out", "d.safetensors")
    assert code_ == 0 and "training 'a sketch' for 100 steps into d.safetensors" in out


def test_the_older_way_refuses_what_is_not_a_target(capsys, monkeypatch) -> None:
    """`TRAIN_TARGETS[name] = (add_arguments, run)` (not a Target) is refused where it is set;
    one that got into the table anyway fails `train` in one line (it crashed every `train`
    command with `AttributeError: 'NoneType' object has no attribute 'provider'`)."""
    from stylebridge.cli.commands import train as train_cli
    from stylebridge.errors import RegistryError

    pair = (lambda p: None, lambda a, c: 0)
    with pytest.raises(RegistryError, match=r"train target 'mine': got a tuple; give a "
                                            r"stylebridge.cli.base.Target instance"):
        train_cli.TRAIN_TARGETS["mine"] = pair  # type: ignore[assignment]
    assert "mine" not in train_cli.TRAIN.legacy
    _extra(monkeypatch)
    monkeypatch.setitem(train_cli.TRAIN.legacy, "mine", pair)
    code, _, err = _run(capsys, "train", "domain", "--help")
    assert code != 0 and "Traceback" not in err and "AttributeError" not in err
    assert "code registered a tuple as train target 'mine'" in " ".join(err.split())
