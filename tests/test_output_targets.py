"""Output targets (issue 19, item 1): regular files are replaced atomically, symlinks are
followed and stay links, streams print, devices and FIFOs are written in place, and a full
device is an error that names the path."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stylebridge.core.io import atomic_path, check_writable, output_target, write_json


def test_a_new_and_an_existing_regular_file_are_written_atomically(tmp_path: Path) -> None:
    dst = tmp_path / "sub" / "out.json"
    write_json(dst, {"a": 1})
    assert json.loads(dst.read_text()) == {"a": 1}
    inode = dst.stat().st_ino
    write_json(dst, {"a": 2})
    assert json.loads(dst.read_text()) == {"a": 2}
    assert dst.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(p.name for p in dst.parent.iterdir()) == ["out.json"]


def test_a_symlink_output_stays_a_symlink_and_its_target_is_replaced(tmp_path: Path) -> None:
    real = tmp_path / "data" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    write_json(link, {"b": 1})
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert json.loads(real.read_text()) == {"b": 1}
    assert sorted(p.name for p in real.parent.iterdir()) == ["real.json"]
    # a dangling link: its target is created, the link is kept
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "data" / "new.json")
    write_json(dangling, [1])
    assert dangling.is_symlink() and json.loads((tmp_path / "data" / "new.json").read_text()) == [1]


def test_a_failed_body_leaves_the_symlink_target_untouched(tmp_path: Path) -> None:
    real = tmp_path / "real.txt"
    real.write_text("old")
    link = tmp_path / "link.txt"
    link.symlink_to(real)
    with pytest.raises(RuntimeError, match=r"^boom$"), atomic_path(link) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert real.read_text() == "old" and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "real.txt"]


@pytest.mark.parametrize("name", ["-", "/dev/stdout"])
def test_streams_print(name: str) -> None:
    code = ("from stylebridge.core.io import write_json; "
            f"write_json({name!r}, {{'x': [1, 2]}}); print('after')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.removesuffix("after\n")) == {"x": [1, 2]}
    assert proc.stdout.endswith("}\nafter\n")


def test_cli_json_to_dev_stdout_prints() -> None:
    proc = subprocess.run([sys.executable, "-m", "stylebridge", "plugins", "--json"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "encoder" in json.loads(proc.stdout)


def test_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_json(fifo, {"via": "fifo"})
    reader.join(timeout=30)
    assert json.loads(got[0]) == {"via": "fifo"}
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still a FIFO, not a regular file
    assert output_target(fifo)[0] == "in-place"


def _device_copy(path: Path, minor: int) -> Path:
    try:
        os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, minor))
    except PermissionError:
        pytest.skip("creating a character device needs root")
    return path


def test_a_device_copy_is_written_in_place_and_a_full_one_is_an_error(tmp_path: Path) -> None:
    null = _device_copy(tmp_path / "null", 3)   # a copy of /dev/null
    write_json(null, {"n": 1})
    assert stat.S_ISCHR(null.stat().st_mode)
    check_writable(null)  # devices are not probed with a temporary file
    full = _device_copy(tmp_path / "full", 7)   # a copy of /dev/full
    with pytest.raises(OSError) as exc:
        write_json(full, {"n": 2})
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(full)
    assert exc.value.strerror == "disk full (or file size limit)"
    assert stat.S_ISCHR(full.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full", "null"]


def test_cli_says_disk_full_with_the_path(tmp_path: Path) -> None:
    full = _device_copy(tmp_path / "full", 7)
    proc = subprocess.run([sys.executable, "-m", "stylebridge", "info", "--json", "x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2  # (a missing checkpoint: the normal one-line error)
    code = ("import sys; from stylebridge.cli.main import main; "
            "from stylebridge.core.io import write_json\n"
            "import stylebridge.cli.commands.plugins as p\n"
            f"p.print_json = lambda data: write_json({str(full)!r}, data)\n"
            "sys.exit(main(['plugins', '--json']))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == f"error: disk full (or file size limit) writing {full}\n"


def test_a_folder_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError) as exc, atomic_path(tmp_path) as tmp:
        tmp.write_text("x")
    assert exc.value.filename == str(tmp_path)


def test_outputs_that_are_inputs_or_each_other_are_refused_before_any_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`eval --json pred/img0.png` wrote JSON over a prediction, `--json r --csv r` lost the
    JSON, `calibrate --out` (with --force) replaced the encoder it read: one line each, and
    the files are untouched."""
    import hashlib

    import numpy as np
    from PIL import Image

    from stylebridge.cli.main import main
    from stylebridge.pipelines.presets import build_tiny_preset

    pred, tgt = tmp_path / "pred", tmp_path / "tgt"
    for folder in (pred, tgt):
        folder.mkdir()
        for i in range(2):
            Image.fromarray(np.full((8, 8, 3), 40 * i + 10, np.uint8)).save(folder / f"img{i}.png")
    files = sorted(pred.iterdir()) + sorted(tgt.iterdir())

    def digests() -> list[str]:
        return [hashlib.sha256(p.read_bytes()).hexdigest() for p in files]

    before = digests()
    base = ["eval", "-m", "mse", "--pred", str(pred), "--target", str(tgt)]
    for extra, said in ((["--json", str(pred / "img0.png")], "--json names a file this run reads"),
                        (["--csv", str(tgt / "img1.png")], "--csv names a file this run reads"),
                        (["--json", str(tmp_path / "r"), "--csv", str(tmp_path / "r")],
                         "--csv and --json name the same file")):
        assert main([*base, *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err, err
    assert digests() == before and not (tmp_path / "r").exists()
    assert main([*base, "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv")]) == 0

    preset = build_tiny_preset(tmp_path / "preset", n_images=2)
    encoder = preset.e4e.read_bytes()
    for out in (preset.e4e, sorted(preset.images.iterdir())[0]):
        code = main(["calibrate", "alpha", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator),
                     "--images", str(preset.images), "--out", str(out), "--force",
                     "--device", "cpu"])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "--out names a file this run reads" in err, err
    assert preset.e4e.read_bytes() == encoder
    # analyze latents into its photo folder: a rerun read latents.png as a photo
    assert main(["analyze", "latents", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator),
                 "--images", str(preset.images), "--out", str(preset.images)]) == 2
    assert "is also an input folder" in capsys.readouterr().err


def test_stale_temporaries_are_removed_only_where_asked(tmp_path: Path) -> None:
    """A killed atomic write leaves `.NAME.XXXXXXXX.tmp`; a run taking over its folder removes
    those (recursively in its own folder, only its own output's in a shared one), nothing
    else that ends in .tmp."""
    from stylebridge.core.io import remove_stale_temporaries

    run = tmp_path / "run"
    (run / "sub").mkdir(parents=True)
    stale = [run / ".a.png.x7k2m9qa.tmp", run / "sub" / ".b.json.q_1z2y3x.tmp"]
    kept = [run / "notes.tmp", run / ".cache.tmp", run / "sub" / ".b.json.short.tmp",
            run / "a.png"]
    for path in [*stale, *kept]:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(run) == 2
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    shared = tmp_path / "home"
    shared.mkdir()
    mine, other = shared / ".r.json.abcdefgh.tmp", shared / ".other.txt.abcdefgh.tmp"
    for path in (mine, other):
        path.write_bytes(b"x")
    assert remove_stale_temporaries(shared, "r.json") == 1
    assert not mine.exists() and other.exists()
    # several outputs in one scan (a shard of a photo set in a shared --out): only theirs,
    # also names with dots; another shard's in-flight temporaries are left alone
    ours = [shared / ".p0.png.abcdefgh.tmp", shared / ".p.1_x.png.a1b2c3d4.tmp"]
    theirs = [shared / ".p2.png.abcdefgh.tmp", shared / ".p0.png.tmp"]
    for path in [*ours, *theirs]:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(shared, ["p0.png", "p.1_x.png", "gone.png"]) == 2
    assert not any(p.exists() for p in ours) and all(p.exists() for p in theirs)
