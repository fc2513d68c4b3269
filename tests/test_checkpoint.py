"""The stylebridge checkpoint format: header, dtypes, validation, atomic writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from stylebridge.core import checkpoint as ckpt_mod
from stylebridge.core.checkpoint import (
    CheckpointHeader,
    check_state_dict,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from stylebridge.errors import CheckpointError


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "a.weight": torch.randn(4, 3, generator=g),
        "a.half": torch.randn(5, generator=g).half(),
        "a.bf16": torch.randn(2, 2, generator=g).bfloat16(),
        "steps": torch.arange(7, dtype=torch.int64),
        "flag": torch.tensor([True, False]),
    }


def test_round_trip_keeps_header_values_and_dtypes(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    tensors = _tensors()
    config = {"size": 64, "channels": {"4": 64}, "mode": "features", "layer": 5}
    save_checkpoint(path, tensors, kind="encoder", plugin="fse", config=config,
                    extra={"note": "x"})
    header, loaded = load_checkpoint(path, kind="encoder", plugin="fse")
    assert header == CheckpointHeader(kind="encoder", plugin="fse", config=config,
                                      extra={"note": "x"}, version=1)
    assert set(loaded) == set(tensors)
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype, name
        assert torch.equal(loaded[name], t), name


def test_header_json_layout(tmp_path: Path) -> None:
    from safetensors import safe_open

    path = save_checkpoint(tmp_path / "m.safetensors", {"x": torch.zeros(1)}, kind="domain_method",
                           plugin="stylespace", config={"n": 1})
    with safe_open(str(path), framework="pt") as fh:
        meta = json.loads(fh.metadata()["stylebridge"])
    assert meta["format"] == "stylebridge" and meta["version"] == 1
    assert meta["kind"] == "domain_method" and meta["plugin"] == "stylespace"
    assert meta["config"] == {"n": 1}


def test_shared_storage_tensors_are_saved(tmp_path: Path) -> None:
    base = torch.randn(6)
    path = save_checkpoint(tmp_path / "m.safetensors", {"a": base, "b": base, "c": base[:3]},
                           kind="x", plugin="y")
    _, loaded = load_checkpoint(path)
    assert torch.equal(loaded["a"], base) and torch.equal(loaded["b"], base)
    assert torch.equal(loaded["c"], base[:3])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, "no such file"),
        (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
        (lambda p: p.write_text("hello, not a checkpoint"), "is a text file, not a .safetensors"),
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF"), "is a JPEG image, not a"),
        (lambda p: torch.save({"x": torch.zeros(2)}, p), "convert it with `stylebridge convert"),
        (lambda p: p.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"x\": truncated"),
         "not a readable safetensors file"),
        (lambda p: save_file({"x": torch.zeros(2)}, str(p)), "without a stylebridge header"),
        (lambda p: save_file({"x": torch.zeros(2)}, str(p), metadata={"stylebridge": "{oops"}),
         "not valid JSON"),
        (lambda p: save_file({"x": torch.zeros(2)}, str(p),
                             metadata={"stylebridge": json.dumps({"format": "other"})}),
         "does not declare format"),
        (lambda p: save_file({"x": torch.zeros(2)}, str(p), metadata={"stylebridge": json.dumps(
            {"format": "stylebridge", "version": 99, "kind": "a", "plugin": "b"})}),
         "newer stylebridge"),
        (lambda p: save_file({"x": torch.zeros(2)}, str(p), metadata={"stylebridge": json.dumps(
            {"format": "stylebridge", "version": 1, "plugin": "b"})}), "has no 'kind'"),
    ],
    ids=["missing", "empty", "text", "jpeg", "torch-save", "broken", "no-header", "bad-json", "other-format", "newer", "no-kind"],
)
def test_bad_files_give_one_line_errors_naming_the_file(tmp_path: Path, make, message) -> None:
    path = tmp_path / "bad.safetensors"
    make(path)
    with pytest.raises(CheckpointError) as info:
        read_header(path)
    text = str(info.value)
    assert message in text and str(path) in text and "\n" not in text


def test_truncated_file_is_rejected(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", {"x": torch.randn(1000)}, kind="a", plugin="b")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(CheckpointError, match=r"m.safetensors"):
        load_checkpoint(path)


def test_wrong_kind_and_plugin(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "e.safetensors", {"x": torch.zeros(1)}, kind="encoder",
                           plugin="e4e")
    with pytest.raises(CheckpointError, match=r"is a checkpoint of kind 'encoder' .*expected kind 'generator'"):
        load_checkpoint(path, kind="generator")
    with pytest.raises(CheckpointError, match="plugin 'e4e', expected 'fse'"):
        load_checkpoint(path, kind="encoder", plugin="fse")


def test_check_state_dict_messages() -> None:
    expected = {"a": (2, 3), "b": (4,)}
    with pytest.raises(CheckpointError, match=r"missing 1 tensor.*: b"):
        check_state_dict("f.pt", expected, {"a": torch.zeros(2, 3)})
    with pytest.raises(CheckpointError, match=r"unexpected tensor.*: c"):
        check_state_dict("f.pt", expected, {"a": torch.zeros(2, 3), "b": torch.zeros(4),
                                            "c": torch.zeros(1)})
    with pytest.raises(CheckpointError, match=r"a has shape \[3, 2\], expected \[2, 3\]"):
        check_state_dict("f.pt", expected, {"a": torch.zeros(3, 2), "b": torch.zeros(4)})
    with pytest.raises(CheckpointError, match="b contains NaN or Inf"):
        check_state_dict("f.pt", expected, {"a": torch.zeros(2, 3),
                                            "b": torch.tensor([0.0, float("nan"), 1, 2])})


def test_failed_write_leaves_old_file_and_no_partial(tmp_path: Path, monkeypatch) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", {"x": torch.ones(3)}, kind="a", plugin="b")
    before = path.read_bytes()

    def broken_save(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial garbage")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod, "write_tensors", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"x": torch.zeros(3)}, kind="a", plugin="b")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_sigkill_during_writes_leaves_a_complete_checkpoint(tmp_path: Path) -> None:
    """A writer killed at an arbitrary moment never leaves a half-written checkpoint."""
    path = tmp_path / "m.safetensors"
    script = textwrap.dedent(f"""
        import torch, sys
        from stylebridge.core.checkpoint import save_checkpoint
        big = {{f"t{{i}}": torch.full((256, 1024), float(0)) for i in range(48)}}
        i = 0
        while True:
            i += 1
            for t in big.values():
                t.fill_(float(i))
            save_checkpoint({str(path)!r}, big, kind="a", plugin="b", config={{"i": i}})
            if i == 2:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        time.sleep(0.7)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    header, tensors = load_checkpoint(path)
    i = header.config["i"]
    assert i >= 2
    for t in tensors.values():
        assert bool((t == float(i)).all())


@pytest.mark.slow  # a writer process killed mid-write (~3 s)
def test_a_killed_writer_leaves_only_temporaries_the_next_run_removes(tmp_path: Path) -> None:
    """safetensors' save_file wrote its own hidden ``.tmpXXXXXX`` beside the temporary file
    first: a kill then left it (the size of the checkpoint), no cleanup knew the name, and
    ``featureshift build-dataset`` refused the folder on the rerun.  The writer is killed the
    moment a file of another name appears (or after 2 s of writes)."""
    from stylebridge.core.io import _TEMPORARY, remove_stale_temporaries

    path = tmp_path / "m.safetensors"
    script = textwrap.dedent(f"""
        import torch
        from stylebridge.core.checkpoint import save_checkpoint
        big = {{f"t{{i}}": torch.rand(256, 1024) for i in range(64)}}
        print("ready", flush=True)
        while True:
            save_checkpoint({str(path)!r}, big, kind="a", plugin="b")
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            names = [e.name for e in os.scandir(tmp_path)]
            if any(n != path.name and not _TEMPORARY.match(n) for n in names):
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    remove_stale_temporaries(tmp_path)  # what a resumed run does first
    assert sorted(p.name for p in tmp_path.iterdir()) in ([], ["m.safetensors"])


def test_atomic_outputs_get_normal_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        from stylebridge.core import io as sb_io

        sb_io._umask.cache_clear()
        path = save_checkpoint(tmp_path / "m.safetensors", {"x": torch.zeros(1)}, kind="a",
                               plugin="b")
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o440)   # a replaced file keeps its own (it came back 0644)
        save_checkpoint(path, {"x": torch.ones(1)}, kind="a", plugin="b")
        assert path.stat().st_mode & 0o777 == 0o440
    finally:
        os.umask(old)
        sb_io._umask.cache_clear()


def test_check_state_dict_refuses_an_integer_tensor_where_a_float_is_expected(tmp_path):
    """Shapes alone would let an int64 "weight" through: load_state_dict casts it silently."""
    from stylebridge.core.checkpoint import check_state_dict

    module = torch.nn.Linear(3, 2)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    check_state_dict(tmp_path / "ok.safetensors", module.state_dict(), state)  # floats pass
    state_half = {k: v.half() for k, v in state.items()}
    check_state_dict(tmp_path / "half.safetensors", module.state_dict(), state_half)
    state["weight"] = torch.zeros(2, 3, dtype=torch.int64)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors.*weight has dtype int64, "
                                              r"expected a floating-point tensor"):
        check_state_dict(tmp_path / "bad.safetensors", module.state_dict(), state)
    # shapes only (upstream layouts): the old contract, no dtype check
    check_state_dict(None, {k: v.shape for k, v in module.state_dict().items()}, state)


def test_a_full_disk_while_writing_a_checkpoint_is_an_oserror_naming_it(tmp_path, monkeypatch):
    """A write(2) that fails with ENOSPC names no file; the CLI said `SafetensorError: ... (os
    error 28)` without the file.  Now an OSError(ENOSPC) with the path: `disk full writing F`."""
    import errno

    from stylebridge.core import checkpoint as ck

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ck, "write_tensors", full)
    target = tmp_path / "model.safetensors"
    with pytest.raises(OSError) as info:
        ck.save_checkpoint(target, {"a": torch.zeros(2)}, kind="encoder", plugin="toy")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind
