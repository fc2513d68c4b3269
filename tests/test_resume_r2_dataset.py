# ruff: noqa: F811  (the `env` fixture of test_featureshift is imported and used as a parameter)
"""`featureshift build-dataset`: a build stopped before its first index.json (while it copied
the domains) is started again by the same command, a folder with anyone else's files is still
refused; the temporary files a kill left of the build's own files are removed; shards are
byte-identical from one build to the next (safetensors' own writer stored the metadata keys
in a random order), and shards written the old way still read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save, save_file
from test_featureshift import (  # noqa: F401  (_one_thread, env: fixtures)
    Env,
    ToyFSE,
    ToyGuide,
    _load_method,
    _one_thread,
    env,
)

from stylebridge.pipelines.featureshift.dataset import FORMAT, DatasetError, build_dataset
from stylebridge.pipelines.featureshift.reader import FeatureShiftDataset


def _kw(env: Env, **over: Any) -> dict[str, Any]:
    """The arguments `env` built `env.data` with."""
    base = dict(generator=tiny_generator(seed=0), encoder=ToyFSE(), guide=ToyGuide(),
                domains=[(p.stem, _load_method(p)) for p in env.domains], image_size=32,
                shard_size=2, batch_size=2, per_domain=True, dtype="float16")
    base.update(over)
    return base


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _canonical(path: Path) -> bytes:
    """The bytes a shard must have: the layout safetensors' own writer gives its tensors, with
    the metadata keys in sorted order (the format's JSON header, written out by hand)."""
    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
    ref = save(tensors)                                   # safetensors, no metadata
    n = int.from_bytes(ref[:8], "little")
    header = {"__metadata__": {k: meta[k] for k in sorted(meta)}, **json.loads(ref[8:8 + n])}
    raw = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    raw += b" " * (-len(raw) % 8)
    return len(raw).to_bytes(8, "little") + raw + ref[8 + n:]


# -- 1. a build stopped before its first index.json --------------------------------------------


def _leftovers(env: Env, out: Path, case: str) -> None:
    """What a build killed before its first index.json leaves in `out`."""
    (out / "domains").mkdir(parents=True)
    if case == "empty folder":
        return
    shutil.copy(env.data / "domains" / "000.safetensors", out / "domains" / "000.safetensors")
    copy = (env.data / "domains" / "001.safetensors").read_bytes()
    (out / "domains" / ".001.safetensors.235kipvi.tmp").write_bytes(copy[:len(copy) // 2])
    if case == "index being written":
        (out / ".index.json.k2_x9abc.tmp").write_text('{"format": "stylebri')
        (out / "shards").mkdir()
    if case == "domain being copied by an earlier version":  # safetensors' save_file's own
        (out / "domains" / ".tmpIjcDHp").write_bytes(copy[:len(copy) // 3])


@pytest.mark.parametrize("case", ["empty folder", "domain being copied", "index being written",
                                  "domain being copied by an earlier version"])
def test_the_same_command_restarts_a_build_stopped_before_its_index(
        env: Env, tmp_path: Path, case: str) -> None:
    """Before: `exists and is not an unfinished FeatureShift dataset (no index.json); choose a
    new --out` for the folder the interrupted command itself had made."""
    out = tmp_path / "data"
    _leftovers(env, out, case)
    build_dataset(env.images, out, **_kw(env))
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    # the build an uninterrupted run writes, file for file and byte for byte
    assert _files(out) == _files(env.data)
    assert len(FeatureShiftDataset(out)) == len(env.images)


@pytest.mark.parametrize("foreign", ["notes.txt", "domains/readme.txt", "domains/002.safetensors",
                                     "shards/00000.safetensors", ".notes.txt.abcdefgh.tmp",
                                     "index.json.bak"])
def test_a_folder_with_other_files_is_still_refused_and_left_as_it_was(
        env: Env, tmp_path: Path, foreign: str) -> None:
    """Only what a build writes before its index is taken over (a dataset of two domains has
    no `domains/002.safetensors`); the leftovers become ours only once the folder is."""
    out = tmp_path / "data"
    _leftovers(env, out, "domain being copied")
    (out / foreign).parent.mkdir(parents=True, exist_ok=True)
    (out / foreign).write_text("the user's")
    before = _files(out)
    with pytest.raises(DatasetError, match=r"data: exists and is not an unfinished FeatureShift "
                                           r"dataset \(no index.json\); choose a new --out"):
        build_dataset(env.images, out, **_kw(env))
    assert _files(out) == before
    # the same leftovers without the foreign file: restarted (the case above, once more here
    # so that this test also fails where the leftovers themselves were refused)
    (out / foreign).unlink()
    build_dataset(env.images, out, **_kw(env))
    assert _files(out) == _files(env.data)


def test_a_resumed_build_removes_only_its_own_temporaries(env: Env, tmp_path: Path) -> None:
    out = tmp_path / "data"
    shutil.copytree(env.data, out)
    index = json.loads((out / "index.json").read_text())
    index["complete"] = False
    index["shards"][-1]["rows"] = None   # the last shard was being written when killed
    index["shards"][-1]["domains"] = [None, None]
    (out / "index.json").write_text(json.dumps(index))
    last = Path(index["shards"][-1]["file"]).name
    own = [out / "shards" / f".{last}.zhgtxqsv.tmp", out / ".index.json.7c6tx5i7.tmp",
           out / "domains" / ".000.safetensors.abcdefgh.tmp"]
    other = [out / "shards" / ".notes.txt.abcdefgh.tmp", out / ".user.json.abcdefgh.tmp"]
    for path in own + other:
        path.write_bytes(b"\0" * 100)
    build_dataset(env.images, out, **_kw(env))
    assert [p.exists() for p in own + other] == [False] * len(own) + [True] * len(other)
    for path in other:
        path.unlink()
    assert _files(out) == _files(env.data)


def test_cli_ctrl_c_while_the_domains_are_copied_then_the_same_command(
        env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The QA run: Ctrl-C after the first domain copy, then the same command, which said
    `exists and is not an unfinished FeatureShift dataset (no index.json)`."""
    from test_featureshift_dataset_faults import _cli

    from stylebridge.cli.main import main
    from stylebridge.pipelines.featureshift import dataset

    real, copies = dataset.save_checkpoint, []

    def copy_then_interrupt(*args: Any, **kw: Any) -> Any:
        copies.append(real(*args, **kw))
        raise KeyboardInterrupt

    out = tmp_path / "data"
    argv = [*_cli(env, monkeypatch), "--images", str(env.root / "images"), "--out", str(out)]
    with monkeypatch.context() as m:
        m.setattr(dataset, "save_checkpoint", copy_then_interrupt)
        assert main(argv) == 130
    assert copies == [out / "domains" / "000.safetensors"] and not (out / "index.json").exists()
    said = " ".join(capsys.readouterr().err.split())  # a notice: on stderr
    assert (f"no shard was finished in {out}: rerun the same command to start the build "
            "again") in said
    assert main(argv) == 0
    assert len(FeatureShiftDataset(out)) == len(env.images)


# -- 2. byte-identical shards ------------------------------------------------------------------


def test_shards_have_one_byte_layout_and_two_builds_are_identical(env: Env,
                                                                 tmp_path: Path) -> None:
    """Before: the base shards' metadata keys (`names`, `format`) came in a random order, so
    two builds of the same images differed in bytes (one shard per image here: twelve draws)."""
    rng = np.random.default_rng(7)
    images = []
    for i in range(12):
        images.append(tmp_path / "images" / f"p{i:02d}.png")
        images[-1].parent.mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(images[-1])
    kw = _kw(env, shard_size=1, per_domain=False, dtype="float32")
    build_dataset(images, tmp_path / "a", **kw)
    build_dataset(images, tmp_path / "b", **kw)
    shards = sorted((tmp_path / "a" / "shards").glob("*.safetensors"))
    assert len(shards) == 12
    for shard in shards:
        assert shard.read_bytes() == _canonical(shard), shard.name
        with safe_open(str(shard), framework="pt") as fh:
            assert fh.metadata()["format"] == FORMAT
            assert json.loads(fh.metadata()["names"]) == [str(images[int(shard.stem)])]
    assert _files(tmp_path / "a") == _files(tmp_path / "b")


def test_the_shard_writer_against_safetensors_and_old_shards_still_read(
        env: Env, tmp_path: Path) -> None:
    from stylebridge.core.tensorfile import save_tensors

    tensors = {"image": torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4),
               "w": torch.linspace(-1, 1, 16).view(2, 8),
               "f": torch.linspace(0, 3, 10, dtype=torch.float16).view(2, 5),
               "g": torch.ones(2, 2, dtype=torch.bfloat16), "step": torch.tensor([3, 4]),
               "empty": torch.zeros(0)}
    # one metadata key: exactly what safetensors itself writes
    save_tensors(tmp_path / "one.safetensors", tensors, {"format": FORMAT})
    assert (tmp_path / "one.safetensors").read_bytes() == save(tensors, {"format": FORMAT})
    # two keys, given in either order: one file, the keys sorted, readable by safetensors
    names = json.dumps(["a/ü.png", 'b"q.png'])
    save_tensors(tmp_path / "x.safetensors", tensors, {"names": names, "format": FORMAT})
    save_tensors(tmp_path / "y.safetensors", dict(reversed(tensors.items())),
                 {"format": FORMAT, "names": names})
    data = (tmp_path / "x.safetensors").read_bytes()
    assert data == (tmp_path / "y.safetensors").read_bytes()
    assert data == _canonical(tmp_path / "x.safetensors")
    with safe_open(str(tmp_path / "x.safetensors"), framework="pt") as fh:
        assert fh.metadata() == {"names": names, "format": FORMAT}
        assert all(torch.equal(fh.get_tensor(k), v) for k, v in tensors.items())
    # a dataset whose shards were written by safetensors (earlier versions) reads as before
    old = tmp_path / "old"
    shutil.copytree(env.data, old)
    for shard in sorted((old / "shards").glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as fh:
            meta, content = fh.metadata(), {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
        save_file(content, str(shard), metadata=dict(reversed(meta.items())))
    ds_old, ds_new = FeatureShiftDataset(old), FeatureShiftDataset(env.data)
    entries = torch.tensor([[j, r, 1] for j, n in enumerate(ds_new.shard_rows) for r in range(n)])
    got, want = ds_old.read(entries), ds_new.read(entries)
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    result = build_dataset(env.images, old, **_kw(env))   # finished: kept, not built again
    assert result.repaired == []
    assert result.skipped_files == len(list((old / "shards").glob("*.safetensors"))) == 9
