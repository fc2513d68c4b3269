"""Output names that behave the same on every disk.

* Names that differ only in case (``Photo.png`` + ``photo.jpg``; domains ``pixar`` and
  ``Pixar``) wrote ``Photo_pixar.png`` and ``photo_pixar.png`` on Linux: one file on macOS and
  Windows disks, silently overwritten.  They clash everywhere now, as ``a.png`` + ``a.jpg`` do.
* An atomic write's temporary ``.NAME.XXXXXXXX.tmp`` is 14 bytes longer than NAME: an output
  name of 242–255 bytes (legal) failed with ``File name too long`` and stopped the batch; an
  output name over the limit stopped it too instead of skipping that photo; a hyperdomain
  ``text=`` prompt of 230 characters named an output no disk takes.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image

from stylebridge.core import locks
from stylebridge.core.io import (
    atomic_path,
    check_outputs_apart,
    remove_stale_temporaries,
    write_json,
)
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapt import domain_name
from stylebridge.pipelines.photos import output_names


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (AttributeError, OSError, ValueError):
        return 255


@pytest.fixture
def limit_255(tmp_path: Path) -> Path:
    if _name_max(tmp_path) != 255:
        pytest.skip("the temporary folder's file system does not take 255-byte names")
    return tmp_path


# -- case-insensitive disks ------------------------------------------------------------------


def test_photo_names_that_differ_only_in_case_clash() -> None:
    paths = [Path("in/Photo.png"), Path("in/photo.jpg"), Path("in/other.png")]
    names, clashes = output_names(paths, "")
    assert names == {paths[0]: "Photo", paths[2]: "other"}
    reason = clashes[paths[1]]
    assert reason.startswith(f"output name photo is already used by {paths[0]} (as Photo")
    assert "\n" not in reason
    # across keys too (adapt): a_X + _inversion against a + _x_inversion
    keyed = [Path("a.png"), Path("A_X.png")]
    names, clashes = output_names(keyed, "", keys=("_inversion", "_x_inversion"))
    assert list(names) == [keyed[0]] and list(clashes) == [keyed[1]]


def test_two_outputs_that_differ_only_in_case_are_one_file(tmp_path: Path) -> None:
    with pytest.raises(StylebridgeError) as info:
        check_outputs_apart({"--json": tmp_path / "R.json", "--csv": tmp_path / "r.json"}, [])
    assert "--csv and --json name one file on case-insensitive disks" in str(info.value)
    # an output named like an input but for its case would replace that input on macOS
    (tmp_path / "pred").mkdir()
    (tmp_path / "pred" / "img0.png").write_bytes(b"x")
    with pytest.raises(StylebridgeError, match="--json names a file this run reads"):
        check_outputs_apart({"--json": tmp_path / "pred" / "IMG0.png"}, [tmp_path / "pred"])


def test_output_folders_that_differ_only_in_case_share_one_lock(tmp_path: Path) -> None:
    assert locks.lock_path(tmp_path / "Out") == locks.lock_path(tmp_path / "out")
    assert locks.lock_path(tmp_path, "R.json") == locks.lock_path(tmp_path, "r.json")
    assert locks.lock_path(tmp_path / "out") != locks.lock_path(tmp_path / "out2")


# -- long names ------------------------------------------------------------------------------


def test_a_legal_long_output_name_is_written(limit_255: Path) -> None:
    # 242 bytes in 128 characters: the temporary name (256 bytes) was too long
    name = "é" * 100 + "a" * 37 + ".json"
    assert len(os.fsencode(name)) == 242
    write_json(limit_255 / name, {"ok": 1})
    assert json.loads((limit_255 / name).read_text()) == {"ok": 1}
    longest = "b" * 250 + ".json"  # 255 bytes: the longest name there is
    write_json(limit_255 / longest, [1])
    assert (limit_255 / longest).is_file()
    assert [p.name for p in limit_255.iterdir() if p.name.startswith(".")] == []


def test_a_killed_writes_temporary_of_a_long_name_is_found_and_only_its(limit_255: Path
                                                                         ) -> None:
    one, two = "c" * 240 + "1.png", "c" * 240 + "2.png"  # alike but for the end
    left = []
    for name in (one, two):
        with atomic_path(limit_255 / name) as tmp:
            tmp.write_bytes(b"half")
            stale = tmp.with_name(tmp.name[:-12] + "zzzzzzzz.tmp")  # what a kill leaves
            shutil.copy(tmp, stale)
            left.append(stale)
        assert len(os.fsencode(stale.name)) <= 255
    assert left[0].name != left[1].name
    assert remove_stale_temporaries(limit_255, [one, "metrics.json"]) == 1
    assert not left[0].exists() and left[1].exists()
    assert remove_stale_temporaries(limit_255, two) == 1
    assert not left[1].exists()


def test_a_hyperdomain_prompt_makes_a_short_name_that_stays_distinct() -> None:
    method = SimpleNamespace(text_conditioned=True, name="hyperdomain")
    prompt = "a portrait " * 21  # 231 characters
    first = domain_name(f"hyperdomain:/x/net.safetensors:text='{prompt}one'", method, 0)
    second = domain_name(f"hyperdomain:/x/net.safetensors:text='{prompt}two'", method, 0)
    assert len(first.encode()) <= 80 and len(second.encode()) <= 80
    assert first.startswith("net_a_portrait_a_portrait") and first != second
    short = domain_name("hyperdomain:/x/net.safetensors:text='a sketch'", method, 0)
    assert short == "net_a_sketch"


# -- end to end: adapt on the tiny preset ----------------------------------------------------


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory):
    from stylebridge.pipelines.presets import build_tiny_preset

    return build_tiny_preset(tmp_path_factory.mktemp("preset"), n_images=2)


def _adapt(preset, photos: Path, out: Path, methods: list[Path]) -> int:
    from stylebridge.cli.main import main

    argv = ["adapt", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator), "--no-align",
            "--device", "cpu", "--batch", "2", str(photos), "--out", str(out)]
    for m in methods:
        argv += ["-m", str(m)]
    return main(argv)


def test_adapt_names_differing_only_in_case_stay_apart(preset, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    first = sorted(preset.images.iterdir())[0]
    shutil.copy(first, photos / "Photo.png")
    Image.open(first).convert("RGB").save(photos / "photo.jpg")
    methods = []
    for folder, stem in (("d1", "pixar"), ("d2", "Pixar")):
        (tmp_path / folder).mkdir()
        methods.append(shutil.copy(preset.domains / "tiny-pixar.safetensors",
                                   tmp_path / folder / f"{stem}.safetensors"))
    out = tmp_path / "out"
    assert _adapt(preset, photos, out, methods) == 3  # one photo done, one skipped
    said = capsys.readouterr()
    written = sorted(p.name for p in out.iterdir() if p.name.startswith(("P", "p")))
    assert written == ["Photo_Pixar-2.png", "Photo_inversion.png", "Photo_pixar.png"]
    assert len({name.casefold() for name in os.listdir(out)}) == len(os.listdir(out))
    report = json.loads((out / "adapt.json").read_text())
    assert list(report["domains"]) == ["pixar", "Pixar-2"]
    [skipped] = report["skipped"]
    assert skipped["file"] == str(photos / "photo.jpg")
    assert "already used by" in skipped["reason"] and "case-insensitive" in skipped["reason"]
    assert "1 done, 1 skipped" in said.out, said.out


def test_adapt_writes_long_names_and_skips_a_photo_whose_name_is_too_long(
        preset, limit_255: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photos = limit_255 / "photos"
    photos.mkdir()
    first = sorted(preset.images.iterdir())[0]
    legal = "é" * 100 + "a" * 28            # 228 bytes: + _tiny-pixar.png = 243, legal
    too_long = "b" * 245                    # + _tiny-pixar.png = 260 bytes
    shutil.copy(first, photos / f"{legal}.png")
    shutil.copy(first, photos / f"{too_long}.png")
    out = limit_255 / "out"
    rc = _adapt(preset, photos, out, [preset.domains / "tiny-pixar.safetensors"])
    said = capsys.readouterr()
    assert rc == 3, said.err  # partial: the batch went on
    assert (out / f"{legal}_inversion.png").is_file() and (out / f"{legal}_tiny-pixar.png").is_file()
    for report in ("metrics.json", "adapt.json", "grid.png"):
        assert (out / report).is_file()
    [skipped] = json.loads((out / "adapt.json").read_text())["skipped"]
    assert skipped["file"] == str(photos / f"{too_long}.png")
    assert skipped["reason"] == (f"output name {'b' * 40}…_tiny-pixar.png is too long (260 "
                                 "bytes; the file system takes 255): give the photo a "
                                 "shorter name")
    assert "1 done, 1 skipped" in said.out, said.out
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


def test_invert_skips_a_photo_whose_name_is_too_long(preset, limit_255: Path,
                                                      capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """`invert` stopped the batch there too (`File name too long`, no reports)."""
    from stylebridge.cli.main import main

    photos = limit_255 / "photos"
    photos.mkdir()
    first = sorted(preset.images.iterdir())[0]
    shutil.copy(first, photos / "a.png")
    shutil.copy(first, photos / f"{'c' * 245}.png")   # + _inversion.png = 259 bytes
    out = limit_255 / "out"
    rc = main(["invert", "-e", f"e4e:{preset.e4e}", "-g", str(preset.generator), "--no-align",
               "--device", "cpu", str(photos), "--out", str(out)])
    said = capsys.readouterr()
    assert rc == 3, said.err
    assert (out / "a_inversion.png").is_file() and (out / "invert.json").is_file()
    [skipped] = json.loads((out / "invert.json").read_text())["skipped"]
    assert skipped["reason"].startswith(f"output name {'c' * 40}…_inversion.png is too long "
                                        "(259 bytes")
