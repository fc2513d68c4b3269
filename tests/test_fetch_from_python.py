"""Official weights fetched from Python (``stylebridge.fetch_weights``, ``ensure_weights=
stylebridge.fetching()``), against the local HTTP server of the weights tests: what the
command line's ``weights fetch`` and ``--fetch`` do, with licences accepted by argument."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_weights
from test_weights import _manager, _Server

import stylebridge
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.generate import GenerateConfig, generate
from stylebridge.registry.weights import WeightsError

#: the weights tests' local server and its tiny generator file, as fixtures here too
server, tiny_pt = test_weights.server, test_weights.tiny_pt


def test_fetch_weights_installs_once_and_says_where(tmp_path: Path, server: _Server) -> None:
    manager = _manager(tmp_path, server)
    seen: list[tuple[int, int | None]] = []
    got = stylebridge.fetch_weights("tiny-gen", manager=manager,
                                    progress=lambda done, total: seen.append((done, total)))
    assert got == {"tiny-gen": tmp_path / "home" / "weights" / "tiny-gen.safetensors"}
    assert stylebridge.create("generator", str(got["tiny-gen"])).size == 8
    assert seen and seen[-1] == (len(server.payload), len(server.payload))
    assert stylebridge.fetch_weights("tiny-gen", manager=manager) == got  # installed: no GET
    assert len(server.requests) == 1


def test_fetch_weights_needs_the_licence_accepted(tmp_path: Path, server: _Server) -> None:
    manager = _manager(tmp_path, server, licence="CC BY-NC 4.0 (test)", noncommercial=True)
    with pytest.raises(WeightsError) as info:
        stylebridge.fetch_weights("tiny-gen", manager=manager)
    assert str(info.value) == ("non-commercial licence (tiny-gen: CC BY-NC 4.0 (test)); pass "
                               "accept_licence=True to accept and download; nothing was "
                               "downloaded")
    assert server.requests == [] and manager.installed("tiny-gen") is None
    stylebridge.fetch_weights("tiny-gen", manager=manager, accept_licence=True)
    assert manager.installed("tiny-gen") is not None


def test_fetch_weights_refuses_unknown_names_before_any_download(tmp_path: Path,
                                                                 server: _Server) -> None:
    manager = _manager(tmp_path, server)
    with pytest.raises(WeightsError, match=r"unknown weights 'tiny-gem'; did you mean "
                                           r"'tiny-gen'\?"):
        stylebridge.fetch_weights("tiny-gen", "tiny-gem", manager=manager)
    assert server.requests == []
    with pytest.raises(StylebridgeError, match=r"^fetch_weights: name the entries to fetch"):
        stylebridge.fetch_weights(manager=manager)


def test_a_pipeline_fetches_what_it_lacks_with_fetching(tmp_path: Path, server: _Server,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    manager = _manager(tmp_path, server)
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: manager)
    config = GenerateConfig(generator="stylegan2", out=tmp_path / "samples", seeds="0-1",
                            device="cpu")
    with pytest.raises(StylebridgeError) as info:  # the default: one line, nothing loaded
        generate(config)
    assert str(info.value).endswith("run `stylebridge weights fetch tiny-gen`; or pass "
                                    "ensure_weights=stylebridge.fetching() to fetch them")
    assert server.requests == [] and not (tmp_path / "samples").exists()
    result = generate(config, ensure_weights=stylebridge.fetching())
    assert len(server.requests) == 1 and manager.installed("tiny-gen") is not None
    assert sorted(result.files) == [0, 1]
    assert result.generator_path == tmp_path / "home" / "weights" / "tiny-gen.safetensors"
    assert all(f.is_file() for files in result.files.values() for f in files.values())


def test_fetching_says_a_typo_before_downloading(tmp_path: Path, server: _Server,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    manager = _manager(tmp_path, server)
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: manager)
    config = GenerateConfig(generator="stylegan2", out=tmp_path / "samples", seeds="0",
                            device="cpu", methods=["pixarr"])
    with pytest.raises(StylebridgeError, match="pixarr"):
        generate(config, ensure_weights=stylebridge.fetching())
    assert server.requests == []


def test_fetching_knows_the_plugins_of_the_runs_own_registry(tmp_path: Path,
                                                             server: _Server) -> None:
    """A run given `registry=` with a plugin added in Python: `fetching(registry=...)` checks
    its names against that registry (the default one said `unknown loss`)."""
    import types

    import torch

    from stylebridge.core.interfaces import Loss
    from stylebridge.registry import hookimpl
    from stylebridge.registry.registry import Registry

    class MyLoss(Loss):
        name = "my-test-loss"

        def forward(self, batch):  # pragma: no cover - never built here
            return torch.zeros(())

    def register_losses(register) -> None:
        register(MyLoss)

    module = types.ModuleType("my_losses")
    module.register_losses = hookimpl(register_losses)
    registry = Registry(extra_plugins=[module])
    requests = [("loss", "my-test-loss:1.0", "--loss")]
    with pytest.raises(StylebridgeError, match="my-test-loss"):
        stylebridge.fetching(manager=_manager(tmp_path, server))(requests)
    stylebridge.fetching(manager=_manager(tmp_path, server), registry=registry)(requests)
    assert server.requests == []


def test_the_missing_weights_line_says_accept_licence_when_it_is_needed(
        tmp_path: Path, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every official generator and encoder is non-commercial: `fetching()` as the line said
    then stopped at the licence; the line now gives the call that works."""
    manager = _manager(tmp_path, server, licence="CC BY-NC 4.0 (test)", noncommercial=True)
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: manager)
    config = GenerateConfig(generator="stylegan2", out=tmp_path / "samples", seeds="0",
                            device="cpu")
    with pytest.raises(StylebridgeError) as info:
        generate(config)
    assert str(info.value).endswith("; or pass ensure_weights=stylebridge.fetching("
                                    "accept_licence=True) to fetch them")
    generate(config, ensure_weights=stylebridge.fetching(accept_licence=True))
    assert manager.installed("tiny-gen") is not None
