"""Every output is written atomically: a write that fails half-way leaves no partial file.

For the main commands (generate, align, invert, adapt, eval, train domain) the lowest-level
write that our code calls is replaced by one that writes part of the data and then raises
``OSError(ENOSPC)`` (a full disk), after letting the first ``ok`` writes through:

* PNG: ``PIL.Image.Image.save`` (used by ``core.images.save_png`` and ``align``);
* checkpoints: ``core.tensorfile.write_tensors`` as called by ``core.checkpoint.save_checkpoint``;
* JSON: ``pathlib.Path.write_text`` on the temporary file of ``core.io.write_json``;
* CSV: the ``csv.writer`` rows of ``eval --csv``.

Each case asserts: exit code 2 with one ``error: ...No space left on device`` line and no
traceback; the output folder holds exactly the files completed before the failure, each one
whole (it loads), no hidden temporary files; and nothing is written after the failure (a full
disk stops a batch command instead of failing once per remaining file).
"""

from __future__ import annotations

import csv
import errno
import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_generator
from PIL import Image

import stylebridge.core.checkpoint as ck
from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint, save_checkpoint
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.registry import get_registry, reset_registry

SIZE = 32
ENOSPC = "disk full (or file size limit) writing "  # issue 19: the message names the path


def _no_space() -> OSError:
    return OSError(errno.ENOSPC, ENOSPC)   # as a real write(2) raises it: no file name


class Writes:
    """Counts the writes of one kind; the ``ok + 1``-th and every later one fails."""

    def __init__(self, ok: int) -> None:
        self.ok, self.calls, self.failed = ok, 0, 0

    def fail_now(self) -> bool:
        self.calls += 1
        if self.calls > self.ok:
            self.failed += 1
            return True
        return False


def _fail_png(monkeypatch: pytest.MonkeyPatch, writes: Writes) -> None:
    real = Image.Image.save

    def save(self: Image.Image, fp: Any, format: str | None = None, **params: Any) -> None:
        if writes.fail_now():
            Path(fp).write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")   # the first bytes only
            raise _no_space()
        real(self, fp, format, **params)

    monkeypatch.setattr(Image.Image, "save", save)


def _fail_safetensors(monkeypatch: pytest.MonkeyPatch, writes: Writes) -> None:
    real = ck.write_tensors

    def write_tensors(tensors: Any, filename: str, metadata: Any = None) -> None:
        real(tensors, filename, metadata)
        if writes.fail_now():
            data = Path(filename).read_bytes()
            Path(filename).write_bytes(data[: len(data) // 2])
            raise _no_space()

    monkeypatch.setattr(ck, "write_tensors", write_tensors)


def _fail_json(monkeypatch: pytest.MonkeyPatch, writes: Writes) -> None:
    real = Path.write_text

    from stylebridge.registry.file_hashes import _cache_path

    cached = _cache_path()  # the sha256 cache: written when a file is first hashed
    cache = None if cached is None else cached.parent

    def write_text(self: Path, data: str, *args: Any, **kwargs: Any) -> int:
        if ".json" in self.name and self.parent != cache and writes.fail_now():
            real(self, data[: len(data) // 2], *args, **kwargs)
            raise _no_space()
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)


def _fail_csv(monkeypatch: pytest.MonkeyPatch, writes: Writes) -> None:
    real = csv.writer

    class Rows:
        def __init__(self, fh: Any, *args: Any, **kwargs: Any) -> None:
            self.fh, self.inner = fh, real(fh, *args, **kwargs)

        def writerow(self, row: Any) -> Any:
            if writes.fail_now():
                self.fh.write(",".join(map(str, row))[:5])
                raise _no_space()
            return self.inner.writerow(row)

    monkeypatch.setattr(csv, "writer", Rows)


FAKES: dict[str, Callable[[pytest.MonkeyPatch, Writes], None]] = {
    "png": _fail_png, "safetensors": _fail_safetensors, "json": _fail_json, "csv": _fail_csv}


# ---------------------------------------------------------------------------------------------
# Inputs


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    reset_registry()
    yield
    reset_registry()
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("atomic")
    gen = tiny_generator(seed=1, size=SIZE)
    files = {"root": root, "generator": save_stylegan2(root / "gen.safetensors", gen)}
    rng = np.random.default_rng(0)
    for folder in ("photos", "pred", "target"):
        (root / folder).mkdir()
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)).save(
                root / folder / f"p{i}.png")
        files[folder] = root / folder
    from stylebridge.plugins.domains.stylespace import StyleSpace

    zero = StyleSpace(size=gen.size, style_dim=gen.style_dim,
                      channels={str(r): c for r, c in gen.cfg.channels.items()})
    files["zero"] = zero.save(root / "zero.safetensors")

    reset_registry()
    registry = get_registry()
    if "tiny-pool" in registry.names("encoder"):
        torch.manual_seed(2)
        enc = registry.create("encoder", "tiny-pool", n_latent=8, style_dim=32, input_size=SIZE)
        files["encoder"] = save_checkpoint(root / "enc.safetensors", enc.state_dict(),
                                           kind="encoder", plugin="tiny-pool",
                                           config=enc.config())
    reset_registry()
    try:
        from skimage import data as skdata

        faces = root / "faces"
        faces.mkdir()
        photo = Image.fromarray(skdata.astronaut())
        for i, dx in enumerate((-12, 0, 12)):
            photo.crop((90 + dx, -20, 350 + dx, 240)).resize((96, 96)).save(faces / f"f{i}.png")
        files["faces"] = faces
    except ImportError:  # pragma: no cover - scikit-image is a dependency
        pass
    return files


def _argv(case: str, f: dict[str, Path], out: Path) -> list[str]:
    enc = f"tiny-pool:{f.get('encoder')}"
    cases = {
        "generate": ["generate", "-g", f["generator"], "--seeds", "0-3", "--batch", "4",
                     "--out", out],
        "align": ["align", f.get("faces"), "--out", out, "--size", SIZE],
        "invert": ["invert", f["photos"], "-e", enc, "-g", f["generator"], "--out", out,
                   "--no-align", "--batch", "2", "--device", "cpu"],
        "invert-latents": ["invert", f["photos"], "-e", enc, "-g", f["generator"], "--out", out,
                           "--no-align", "--batch", "2", "--device", "cpu", "--save-latents"],
        "adapt": ["adapt", f["photos"], "-e", enc, "-g", f["generator"], "--method", f["zero"],
                  "--out", out, "--no-align", "--batch", "2", "--device", "cpu"],
        "eval-json": ["eval", "-m", "mse", "--pred", f["pred"], "--target", f["target"],
                      "--json", out / "eval.json", "--device", "cpu"],
        "eval-csv": ["eval", "-m", "mse", "--pred", f["pred"], "--target", f["target"],
                     "--csv", out / "eval.csv", "--device", "cpu"],
        "train-domain": ["train", "domain", "--method", "stylespace", "--text", "a sketch",
                         "--loss", "corr:1.0", "--generator", f["generator"],
                         "--out", out / "d.safetensors", "--steps", "4", "--batch", "2",
                         "--checkpoint-every", "2", "--freeze-layers", "none",
                         "--device", "cpu"],
    }
    return [str(a) for a in cases[case.split(":")[0]]]


STEMS = [f"p{i}" for i in range(4)]
# (command[:variant], failing write, writes that succeed first, files left in --out)
CASES = [
    ("generate", "png", 2, ["seed0000.png", "seed0001.png"]),
    ("align", "png", 1, ["f0.png"]),
    ("invert", "png", 1, ["p0_inversion.png"]),
    ("invert-latents", "safetensors", 0, ["p0_inversion.png"]),
    ("adapt", "png", 3, ["p0_inversion.png", "p0_zero.png", "p1_inversion.png"]),
    # the first JSON is the resume journal's, after the first batch of 2 photos
    ("adapt", "json", 0, [f"{s}_{k}.png" for s in STEMS[:2] for k in ("inversion", "zero")]),
    # metrics.json, after the journal's inputs, photo identities and two states: the journal
    # stays for --resume
    ("adapt:end", "json", 4, [f"{s}_{k}.png" for s in STEMS for k in ("inversion", "zero")]
     + ["inputs.json", "identities.json", "state.json", "log.jsonl"]
     + [f"row_{i:05d}.png" for i in range(4)]),
    ("eval-json", "json", 0, []),  # the first JSON is the resume journal's, at the first batch
    # the CSV, at the end: the journal stays for `eval --resume`
    ("eval-csv", "csv", 1, ["inputs.json", "log.jsonl", "state.json"]),
    # the state is written first; the loss log holds the steps done (appended, whole lines)
    ("train-domain:state", "safetensors", 0, ["d.log.jsonl"]),
    ("train-domain:checkpoint", "safetensors", 1, ["d.log.jsonl", "d.train-state.safetensors"]),
    # the samples of a step are written before its state and checkpoint (a run killed
    # between them resumes from the previous state and draws them again)
    ("train-domain:samples", "png", 0, ["d.log.jsonl"]),
]


def _assert_whole(path: Path) -> None:
    """The file loads completely (PNG decoded, checkpoint tensors read, JSON parsed)."""
    if path.suffix == ".png":
        with Image.open(path) as img:
            img.load()
    elif path.suffix == ".safetensors":
        load_checkpoint(path)
    elif path.suffix == ".json":
        json.loads(path.read_text())
    elif path.suffix == ".jsonl":
        [json.loads(line) for line in path.read_text().splitlines()]
    else:
        raise AssertionError(f"unexpected output {path}")


@pytest.mark.parametrize(("case", "kind", "ok", "left"), CASES,
                         ids=[f"{c}-{k}" for c, k, _, _ in CASES])
def test_failed_write_leaves_no_partial_file(inputs: dict[str, Path], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str], case: str,
                                             kind: str, ok: int, left: list[str]) -> None:
    if "tiny-pool" in " ".join(_argv(case, inputs, tmp_path)) and "encoder" not in inputs:
        pytest.skip("the example encoder package (tiny-pool) is not installed")
    if case == "align" and ("faces" not in inputs or importlib.util.find_spec("dlib") is None):
        pytest.skip("align needs dlib and the scikit-image photo")
    out = tmp_path / "out"
    argv = _argv(case, inputs, out)
    if case == "train-domain:samples":
        argv += ["--sample-every", "2"]
    elif case.startswith("train-domain"):
        argv += ["--sample-every", "0"]
    writes = Writes(ok)
    FAKES[kind](monkeypatch, writes)
    code = main(argv)
    stdout, err = capsys.readouterr()
    assert code == 2, stdout + err
    # stderr: the error alone on its last line; only a resume hint (a notice) may precede it
    notices, _, error = err.rstrip("\n").rpartition("\n")
    assert err.endswith("\n") and error.startswith("error: ") and ENOSPC in error, err
    assert err.count("error: ") == 1 and (not notices or "--resume" in notices), err
    assert "Traceback" not in err
    assert writes.failed == 1, f"{writes.failed - 1} more write(s) after the disk was full"

    files = sorted(p for p in out.rglob("*") if p.is_file()) if out.exists() else []
    assert [p.name for p in files if p.name.startswith(".")] == []   # no temporary files
    assert sorted(p.name for p in files) == sorted(left)
    for path in files:
        _assert_whole(path)


@pytest.mark.parametrize("kind", ["png", "safetensors"])
def test_write_error_names_the_output_file(inputs: dict[str, Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str], kind: str) -> None:
    out = tmp_path / "out"
    if kind == "png":
        argv, dst = _argv("generate", inputs, out), out / "seed0000.png"
    else:
        argv = [*_argv("train-domain", inputs, out), "--sample-every", "0"]
        dst = out / "d.train-state.safetensors"  # the first write of a training step
    FAKES[kind](monkeypatch, Writes(0))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and ENOSPC in err
    assert str(dst) in err and ".tmp" not in err
