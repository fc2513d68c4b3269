# ruff: noqa: F811  (fixtures of test_featureshift and test_train_domain used as parameters)
"""What a trained file records of what its numbers depend on beyond its settings
(docs/training.md: the versions and, on the CPU, the thread count), which only the training
states (not shipped) recorded; a FeatureShift model also names its dataset's content and
absolute place (it recorded `--data` as given, e.g. a relative path)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

import pytest
import torch
from test_featureshift import Env, env, make_registry, tiny_cfg  # noqa: F401
from test_train_domain import (  # noqa: F401
    _cli,
    _one_thread,
    _text_args,
    generator_ckpt,
    registry,
    tiny_clips_in_cli,
)

import stylebridge
from stylebridge.core.checkpoint import read_header
from stylebridge.pipelines.featureshift import trainer as fs


def _software(extra: dict[str, Any]) -> None:
    assert extra["software"] == {"stylebridge": stylebridge.__version__,
                                 "torch": str(torch.__version__),
                                 "python": platform.python_version()}
    assert extra["cpu_threads"] == torch.get_num_threads()


def test_a_domain_records_versions_and_threads(registry: Any, tiny_clips_in_cli: list,
                                               generator_ckpt: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.safetensors"
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, out, "--steps", "1"))
    assert code == 0, err
    _software(read_header(out).extra)


def test_a_featureshift_model_records_versions_threads_and_its_dataset(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    monkeypatch.chdir(env.data.parent)
    cfg = tiny_cfg(env, out, steps=1, pretrain_inversion_steps=0,
                   data=os.path.relpath(env.data))  # as a user types it
    fs.train_featureshift(cfg, registry=make_registry())
    model = read_header(out / "model.safetensors").extra
    state = read_header(out / "state.safetensors").extra
    _software(model)
    assert model["dataset_path"] == str(env.data.resolve())
    assert model["dataset_identity"] == state["dataset"]  # what a resume checks
