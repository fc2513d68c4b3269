# ruff: noqa: F811  (the `files` and `registered` fixtures are used as parameters)
"""``adapt``/``invert --resume`` notices a photo replaced under the same name since the
interrupted run (path, size and modification time, as ``eval --resume`` does for its files),
and names it; a journal of an earlier stylebridge, which records no photo's identity, still
resumes, saying so."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import test_adapt as ta
from PIL import Image
from test_adapt_random import registered  # noqa: F401  (the fixture)
from test_batch_resume import (  # noqa: F401  (the fixture)
    _adapt_argv,
    _files,
    _interrupted,
    _invert_argv,
    _journal,
    files,
)

from stylebridge.cli.main import main
from stylebridge.pipelines import adapt as adapt_module
from stylebridge.pipelines import invert as invert_module
from stylebridge.pipelines.resume import JOURNAL_DIR


def _replace(photo: Path, seed: int) -> None:
    """Another picture under the same name (another size in bytes, another time)."""
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (30, 26, 3), dtype=np.uint8)).save(photo)
    os.utime(photo, ns=(10**18, 10**18 + seed))


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    return err


@pytest.mark.parametrize("command", ["adapt", "invert"])
def test_a_photo_replaced_since_the_interrupted_run_is_named(
        command: str, files: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        registered: None) -> None:
    out, photos = tmp_path / "out", files["photos"]
    argv, module, call = ((_adapt_argv, adapt_module, 8) if command == "adapt"
                          else (_invert_argv, invert_module, 3))
    # batches of 2 readable photos: [a b] [broken c d]; Ctrl-C in the second: a, b done
    _interrupted(monkeypatch, capsys, module, argv(files, out), call)
    assert _journal(out)["done"] == 2
    resume = argv(files, out, "--resume")
    kept = {name: ((photos / name).read_bytes(), os.stat(photos / name).st_mtime_ns)
            for name in ("a.png", "f.png")}

    def refusal(name: str) -> str:
        return (f"error: --resume: photo {photos / name} has changed since the interrupted run "
                f"in {out} (by path, size and modification time); run without --resume to "
                "start over (another --out keeps the interrupted run)\n")

    # a photo not done yet (f) would be of the new picture, the done ones of the old
    _replace(photos / "f.png", 1)
    assert _refused(resume, capsys) == refusal("f.png")
    # a done photo (a) too: the first changed photo is named
    _replace(photos / "a.png", 2)
    assert _refused(resume, capsys) == refusal("a.png")
    # the same bytes written again (only the modification time differs) is a change too
    for name, (data, mtime) in kept.items():
        (photos / name).write_bytes(data)
        os.utime(photos / name, ns=(mtime, mtime + 10**9))
    assert _refused(resume, capsys) == refusal("a.png")
    # put back as they were: the resume goes on
    for name, (_, mtime) in kept.items():
        os.utime(photos / name, ns=(mtime, mtime))
    assert main(resume) == 3
    assert "2 photo(s) done before are kept" in " ".join(capsys.readouterr().err.split())
    assert not (out / JOURNAL_DIR).exists()


def test_a_journal_of_an_earlier_stylebridge_still_resumes_and_says_so(
        files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], registered: None) -> None:
    ref, out = tmp_path / "ref", tmp_path / "out"
    assert main(_adapt_argv(files, ref)) == 3
    capsys.readouterr()
    _interrupted(monkeypatch, capsys, adapt_module, _adapt_argv(files, out), 8)
    # what an earlier stylebridge wrote: no photo identities
    state_file = out / JOURNAL_DIR / "state.json"
    state = json.loads(state_file.read_text())
    del state["inputs"]["identities"], state["hows"]
    state_file.write_text(json.dumps(state))
    (out / JOURNAL_DIR / "identities.json").unlink()
    # interrupted again, in the batch [e f]: the resumed part records the identities
    said, notices = _interrupted(monkeypatch, capsys, adapt_module,
                                 _adapt_argv(files, out, "--resume"), 8)
    assert (f"--resume: the journal in {out} (written by an earlier stylebridge) records no "
            "sizes and times of its photos: a photo replaced since under the same name is not "
            "noticed") in notices  # a notice: on stderr
    assert "2 photo(s) done before are kept" in notices  # a notice: on stderr
    assert "identities" in json.loads(state_file.read_text())["inputs"], said
    assert json.loads((out / JOURNAL_DIR / "identities.json").read_text())[0]["path"] == str(
        (files["photos"] / "a.png").resolve())
    ta.TinyEncoder.images_seen = 0
    assert main(_adapt_argv(files, out, "--resume")) == 3
    said, notices = (" ".join(text.split()) for text in capsys.readouterr())
    assert "earlier stylebridge" not in said + notices, notices
    assert "4 photo(s) done before are kept" in notices  # a notice: on stderr
    assert ta.TinyEncoder.images_seen == 3  # e, f, g
    assert _files(out) == _files(ref)
