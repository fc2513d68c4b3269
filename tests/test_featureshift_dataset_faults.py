# ruff: noqa: F811  (the `env` fixture of test_featureshift is imported and used as a parameter)
"""FeatureShift dataset faults: damaged shard files (refused when the dataset is opened,
built again by the same build command), a build that encodes nothing (the batch report, no
dataset left behind), the domain copies' header labels, interrupts (SIGINT and SIGTERM keep
the finished shards and say so) and the reader's messages for a missing folder or index."""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_generator
from test_featureshift import (  # noqa: F401  (_one_thread, env: fixtures)
    Env,
    ToyFSE,
    ToyGuide,
    ToyOffsets,
    _load_method,
    _one_thread,
    _widths,
    env,
    make_registry,
)

from stylebridge.cli.commands import featureshift as fs_cli
from stylebridge.core.checkpoint import is_random_weights, read_header, save_checkpoint
from stylebridge.pipelines.featureshift.dataset import DatasetError, NothingEncoded, build_dataset
from stylebridge.pipelines.featureshift.reader import FeatureShiftDataset
from stylebridge.registry.resolve import Provenance, record_provenance


def _kw(env: Env, **over: Any) -> dict[str, Any]:
    """The arguments `env` built `env.data` with (a resume must use the same settings)."""
    methods = [(p.stem, _load_method(p)) for p in env.domains]
    base = dict(generator=tiny_generator(seed=0), encoder=ToyFSE(), guide=ToyGuide(),
                domains=methods, image_size=32, shard_size=2, batch_size=2, per_domain=True,
                dtype="float16")
    base.update(over)
    return base


def _all_rows(ds: FeatureShiftDataset) -> dict[str, torch.Tensor]:
    entries = [[j, r, d] for j, n in enumerate(ds.shard_rows) for r in range(n)
               for d in range(ds.n_domains)]
    return ds.read(torch.tensor(entries))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:50])


def _other_rows(path: Path) -> None:   # a readable file whose row count disagrees
    path.write_bytes((path.parent / path.name.replace("00001", "00002")).read_bytes())


def _garbage(path: Path) -> None:
    path.write_bytes(b"\xff" * 8 + b"{}" * 200)


@pytest.mark.parametrize(("rel", "damage"), [
    ("shards/00001.safetensors", _truncate),
    ("shards/00001.d001.safetensors", _truncate),
    ("shards/00001.safetensors", _other_rows),
    ("shards/00001.d000.safetensors", _other_rows),
    ("shards/00000.d001.safetensors", _garbage),
])
def test_a_damaged_shard_is_refused_when_opened_and_the_rerun_builds_it_again(
        env: Env, tmp_path: Path, rel: str, damage: Any) -> None:
    """Before: a truncated shard passed the reader and stopped training after a step with
    nothing saved; the build resumed on it died with `SafetensorError: ... invalid header
    length` (no file named), or skipped it as finished."""
    data = tmp_path / "data"
    shutil.copytree(env.data, data)
    before = _all_rows(FeatureShiftDataset(data))
    damage(data / rel)
    with pytest.raises(DatasetError) as err:
        FeatureShiftDataset(data)
    text = str(err.value)
    assert text.startswith(f"{data / rel}: damaged shard") and "\n" not in text
    assert "rerun the same `stylebridge featureshift build-dataset` command" in text
    said: list[str] = []
    result = build_dataset(env.images, data, notice=said.append, **_kw(env))
    assert said == result.repaired and len(said) == 1
    assert said[0].startswith(f"{data / rel}: damaged shard") and "building it again" in said[0]
    after = FeatureShiftDataset(data)
    assert after.shard_rows == [2, 2, 1] and json.loads((data / "index.json").read_text())["complete"]
    for key, value in _all_rows(after).items():
        assert torch.equal(value, before[key]), key
    assert build_dataset(env.images, data, **_kw(env)).repaired == []  # nothing left to repair


def test_a_finished_shard_that_is_missing_is_named_and_built_again(env: Env, tmp_path: Path
                                                                   ) -> None:
    data = tmp_path / "data"
    shutil.copytree(env.data, data)
    (data / "shards/00002.safetensors").unlink()
    with pytest.raises(DatasetError, match=r"00002\.safetensors: shard file is missing; rerun"):
        FeatureShiftDataset(data)
    result = build_dataset(env.images, data, **_kw(env))
    assert [t.split(": ")[0] for t in result.repaired] == [str(data / "shards/00002.safetensors")]
    assert FeatureShiftDataset(data).shard_rows == [2, 2, 1]


def test_index_without_shards_is_damaged_and_an_empty_shard_list_has_no_rows(
        env: Env, tmp_path: Path) -> None:
    """Before: an index.json without `shards` was 'the dataset has no rows (no input image
    could be encoded)'."""
    data = tmp_path / "data"
    shutil.copytree(env.data, data)
    index = json.loads((data / "index.json").read_text())
    del index["shards"]
    (data / "index.json").write_text(json.dumps(index))
    with pytest.raises(DatasetError, match=r"index\.json: damaged dataset index \(no 'shards'\)"):
        FeatureShiftDataset(data)
    with pytest.raises(DatasetError, match="damaged dataset index"):   # the build: the same
        build_dataset(env.images, data, **_kw(env))
    index["shards"] = []
    (data / "index.json").write_text(json.dumps(index))
    with pytest.raises(DatasetError, match="the dataset has no rows"):
        FeatureShiftDataset(data)


def test_a_dataset_path_that_does_not_exist_is_no_such_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        FeatureShiftDataset(tmp_path / "nope")
    assert str(err.value).startswith(f"{tmp_path / 'nope'}: no such folder")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DatasetError, match="is not a FeatureShift dataset"):
        FeatureShiftDataset(tmp_path / "plain")


def _bad_images(tmp_path: Path, n: int = 3) -> list[Path]:
    paths = []
    for i in range(n):
        path = tmp_path / f"bad{i}.png"
        path.write_bytes(b"not an image")
        paths.append(path)
    return paths


def test_a_build_that_encodes_nothing_leaves_the_folder_as_it_was(env: Env, tmp_path: Path
                                                                  ) -> None:
    """Before: an unfinished index.json stayed; training said `rerun the same build-dataset
    command`, which failed the same way for ever."""
    bad = _bad_images(tmp_path)
    kw = _kw(env, per_domain=True)
    out = tmp_path / "new"
    with pytest.raises(NothingEncoded) as err:
        build_dataset(bad, out, **kw)
    assert not out.exists()
    assert [str(p) for p, _ in err.value.report.skipped] == [str(p) for p in bad]
    assert "no image could be encoded (" in str(err.value) and "nothing was kept" in str(err.value)
    empty = tmp_path / "empty"           # a folder that existed (empty): it stays, empty
    empty.mkdir()
    with pytest.raises(NothingEncoded):
        build_dataset(bad, empty, **kw)
    assert empty.is_dir() and not any(empty.iterdir())
    good = build_dataset([*bad, env.images[0]], tmp_path / "one", **{**kw, "shard_size": 4})
    assert good.n_rows == 1               # one image encoded: the dataset is kept


def test_a_resumed_build_that_encodes_nothing_keeps_the_finished_shards(env: Env,
                                                                        tmp_path: Path) -> None:
    bad = _bad_images(tmp_path)
    kw = _kw(env, per_domain=False)
    out = tmp_path / "ds"
    done = {"n": 0}

    def interrupt(n: int) -> None:
        done["n"] += n
        if done["n"] >= 3:              # in shard 1: shard 0 (no rows) is finished
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_dataset(bad, out, progress=interrupt, **kw)
    assert json.loads((out / "index.json").read_text())["shards"][0]["rows"] == 0
    with pytest.raises(NothingEncoded, match=r"the finished shards in .* are kept"):
        build_dataset(bad, out, **kw)
    assert (out / "index.json").is_file() and (out / "shards/00000.safetensors").is_file()


def _cli(env: Env, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from stylebridge.registry import registry as registry_module

    monkeypatch.setattr(registry_module, "_REGISTRY", make_registry())
    monkeypatch.chdir(env.root)
    return ["featureshift", "build-dataset", "--encoder", "toy-fse", "--guide", "toy-guide",
            "--generator", str(env.gen_path), "--domains",
            f"{env.domains[0].name},{env.domains[1].name}", "--image-size", "32",
            "--shard-size", "1", "--batch", "1", "--device", "cpu"]


def test_cli_build_that_encodes_nothing_prints_the_skipped_files(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from stylebridge.cli.main import main

    folder = tmp_path / "bad"
    folder.mkdir()
    _bad_images(folder, 2)
    out = tmp_path / "out"
    monkeypatch.setenv("COLUMNS", "400")  # the table's long paths in full
    assert main([*_cli(env, monkeypatch), "--images", str(folder), "--out", str(out)]) == 2
    captured = capsys.readouterr()
    said = " ".join(captured.out.split())
    assert "0 done, 2 skipped" in said and "bad0.png" in said and "bad1.png" in said
    assert f"nothing was kept in {out}" in said
    # stderr: the random-weights notices, then the error line
    *notices, error = captured.err.splitlines()
    assert notices and all(line.startswith("RANDOM WEIGHTS: ") for line in notices), notices
    assert error.startswith(f"error: nothing done: {folder / 'bad0.png'}: ")
    assert "(and 1 more, in the table above)" in error
    assert not out.exists()


class _Unhandled(Exception):
    pass


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_cli_interrupt_keeps_the_finished_shards_and_says_how_to_continue(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], signum: int) -> None:
    """Before: Ctrl-C printed only `error: interrupted`, and SIGTERM ended the build silently
    (exit 143).  Now both keep the shards and say how to continue; SIGTERM exits with 143 and
    names itself, as the other batch commands do (it was made a plain Ctrl-C, exit 130)."""
    from stylebridge.cli.main import main

    real = fs_cli.build_dataset

    def build_then_signal(*args: Any, progress: Any, **kw: Any) -> Any:
        done = {"n": 0}

        def step(n: int) -> None:
            progress(n)
            done["n"] += n
            if done["n"] == 4:           # shard 0 (image + 2 domains) is finished
                os.kill(os.getpid(), signum)

        return real(*args, progress=step, **kw)

    def unhandled(signum: int, frame: Any) -> None:  # without the build's handler: a failure
        raise _Unhandled(signal.Signals(signum).name)

    monkeypatch.setattr(fs_cli, "build_dataset", build_then_signal)
    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        out = tmp_path / "data"
        argv = [*_cli(env, monkeypatch), "--images", str(env.root / "images"), "--out", str(out)]
        assert main(argv) == 128 + signum
        assert signal.getsignal(signal.SIGTERM) is unhandled     # restored after the build
    finally:
        signal.signal(signal.SIGTERM, previous)
    captured = capsys.readouterr()
    notices, _, error = captured.err.strip().rpartition("\n")  # the notices, then the error
    assert (f"the finished shards are kept in {out}: rerun the same command to continue"
            in " ".join(notices.split()))
    named = "" if signum == signal.SIGINT else " (SIGTERM)"
    assert error == f"error: interrupted{named}" and "error:" not in notices
    index = json.loads((out / "index.json").read_text())
    assert index["shards"][0]["rows"] == 1 and not index["complete"]
    monkeypatch.setattr(fs_cli, "build_dataset", real)
    assert main(argv) == 0
    assert len(FeatureShiftDataset(out)) == len(env.images)


def test_domain_copies_keep_the_original_header_labels(env: Env, tmp_path: Path) -> None:
    """Before: a dataset's domains/000.safetensors held only `{"name": ...}`; `stylebridge
    info` showed no RANDOM WEIGHTS row for a domain whose checkpoint said random weights."""
    gen = tiny_generator(seed=0)
    labelled = ToyOffsets(_widths(gen), seed=3)
    source = tmp_path / "pixar.safetensors"
    extra = {"random_weights": True, "random_parts": ["domain"],
             "target": {"text": "3D render in the style of Pixar"}, "notes": ["a note"]}
    save_checkpoint(source, labelled.state_dict(), kind="domain_method", plugin=labelled.name,
                    config=labelled.config(), extra=extra)
    built = ToyOffsets(_widths(gen), seed=4)          # no checkpoint: random by provenance
    record_provenance(built, Provenance("random"))
    plain = _load_method(env.domains[0])              # a trained checkpoint without labels
    domains = [("pixar", _load_method(source)), ("drawn", built), ("plain", plain)]
    out = tmp_path / "ds"
    build_dataset(env.images[:2], out, **_kw(env, domains=domains, per_domain=False))
    copies = [read_header(out / f"domains/{d:03d}.safetensors").extra for d in range(3)]
    assert copies[0] == {**extra, "name": "pixar"}
    assert copies[1] == {"name": "drawn", "random_weights": True}
    assert copies[2] == {"name": "plain"} and not is_random_weights(copies[2])
    # a dataset written before the labels were kept gets them on the next (same) build
    save_checkpoint(out / "domains/000.safetensors", labelled.state_dict(),
                    kind="domain_method", plugin=labelled.name, config=labelled.config(),
                    extra={"name": "pixar"})
    build_dataset(env.images[:2], out, **_kw(env, domains=domains, per_domain=False))
    assert read_header(out / "domains/000.safetensors").extra == {**extra, "name": "pixar"}
