# ruff: noqa: F811  (the `env` fixture of test_featureshift is used as a parameter)
"""No output is written onto a file the run read, whatever name leads there.

Outputs are written atomically onto the file their path ends at, following a symlink: an
``OUT/p_inversion.png`` left as a link to the photo replaced the photo (``invert``,
``adapt``; ``render`` wrote a PNG over its inversion file), and ``RUN/model.safetensors``
linked to the generator replaced the generator (``train featureshift``).  The readers now
note each input (:mod:`stylebridge.core.read_inputs`) and a write that ends at one under
another name is refused in one line; ``train featureshift`` checks its run files before the
first step, and refuses a run folder that holds a model but no state (it overwrote it).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from test_featureshift import Env, env, make_registry, tiny_cfg  # noqa: F401  (the fixture)

from stylebridge.cli.main import main
from stylebridge.core.io import atomic_path
from stylebridge.core.read_inputs import forget_inputs, note_input, read_as
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.featureshift.trainer import train_featureshift
from stylebridge.pipelines.presets import TinyPreset, build_tiny_preset


@pytest.fixture(scope="module")
def preset(tmp_path_factory: pytest.TempPathFactory) -> TinyPreset:
    return build_tiny_preset(tmp_path_factory.mktemp("tiny"), seed=0)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_link_to_a_later_photo_is_refused_before_any_photo_is_read(
        tmp_path: Path) -> None:
    """`out/a_inversion.png -> ../in/b.png` with `--batch 1`: b was replaced by a's picture
    before it was read (the check at write time knew only the files read so far)."""
    from stylebridge.pipelines.photos import output_names

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    a, b = src / "a.png", src / "b.png"
    a.write_bytes(b"a")
    b.write_bytes(b"b")
    (out / "a_inversion.png").symlink_to(b)
    names, clashes = output_names([a, b], "", ends=["_inversion.png"], folder=out)
    assert names == {b: "b"}
    assert clashes == {a: f"output {out / 'a_inversion.png'} is a link to the photo {b}: "
                          "writing it would replace that photo (remove the link)"}


def test_a_plain_file_or_the_runs_own_link_is_never_refused(tmp_path: Path) -> None:
    """Only a write through a symlink can change another name's file: a hard link is replaced
    as an entry; a link the run read itself (a trainer's model kept elsewhere) is its own;
    one folder spelled through a linked parent is one entry."""
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "via").symlink_to(real)
    model, hard = real / "model.bin", real / "hard.bin"
    model.write_bytes(b"m")
    os.link(model, hard)
    note_input(model)
    with atomic_path(hard) as tmp:       # another hard link: its own entry is replaced
        tmp.write_bytes(b"h")
    assert model.read_bytes() == b"m" and hard.read_bytes() == b"h"
    with atomic_path(tmp_path / "via" / "model.bin") as tmp:   # the same entry, spelled
        tmp.write_bytes(b"m2")                                 # through a linked folder
    assert model.read_bytes() == b"m2"
    kept = tmp_path / "store" / "w.bin"
    kept.parent.mkdir()
    kept.write_bytes(b"w")
    link = real / "w.bin"
    link.symlink_to(kept)
    note_input(link)                     # read through the link, written through it
    with atomic_path(tmp_path / "via" / "w.bin") as tmp:
        tmp.write_bytes(b"w2")
    assert kept.read_bytes() == b"w2" and link.is_symlink()
    forget_inputs()


def test_a_write_through_a_link_onto_a_file_read_is_refused(tmp_path: Path) -> None:
    photo, link, other = tmp_path / "p.png", tmp_path / "out.png", tmp_path / "q.png"
    photo.write_bytes(b"photo")
    other.write_bytes(b"other")
    link.symlink_to(photo)
    note_input(photo)
    assert read_as(os.path.realpath(photo)) == {str(photo)}
    with pytest.raises(StylebridgeError) as caught, atomic_path(link) as tmp:
        tmp.write_bytes(b"picture")
    assert str(caught.value) == (
        f"{link}: not written: it is a link to {photo}, which this run read; writing it would "
        "replace that input (remove the link, or write elsewhere)")
    assert photo.read_bytes() == b"photo" and link.is_symlink()
    with atomic_path(photo) as tmp:   # under the name it was read by: a run rewriting its own
        tmp.write_bytes(b"rewritten")
    assert photo.read_bytes() == b"rewritten"
    link.unlink()
    link.symlink_to(other)            # a link to a file not read: written through, as before
    with atomic_path(link) as tmp:
        tmp.write_bytes(b"picture")
    assert other.read_bytes() == b"picture" and link.is_symlink()
    forget_inputs()
    assert read_as(os.path.realpath(photo)) == set()


def test_invert_and_adapt_refuse_an_output_linked_to_their_photo(
        preset: TinyPreset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    photo = tmp_path / "p.png"
    photo.write_bytes((preset.images / "photo0.png").read_bytes())
    before = _sha(photo)
    domain = sorted(preset.domains.glob("*.safetensors"))[0]
    for command, name, extra in (("invert", "p_inversion.png", []),
                                 ("adapt", f"p_{domain.stem}.png", ["--method", str(domain)])):
        out = tmp_path / command
        out.mkdir()
        (out / name).symlink_to(photo)
        code = main([command, "--encoder", f"e4e:{preset.e4e}", "--generator",
                     str(preset.generator), "--no-align", "--device", "cpu", *extra, str(photo),
                     "--out", str(out)])
        err = " ".join(capsys.readouterr().err.split())
        assert code == 2 and "Traceback" not in err   # skipped before any photo is read
        assert (f"error: nothing done: {photo}: output {out / name} is a link to the photo "
                f"{photo}: writing it would replace that photo (remove the link)") in err, err
        assert _sha(photo) == before and (out / name).is_symlink()


def test_train_featureshift_refuses_a_run_file_linked_to_its_generator(
        env: Env, tmp_path: Path) -> None:
    before = _sha(env.gen_path)
    out = tmp_path / "run"
    out.mkdir()
    (out / "log.jsonl").symlink_to(env.gen_path)   # (a linked model: refused as model-only)
    with pytest.raises(StylebridgeError) as caught:
        train_featureshift(tiny_cfg(env, out), registry=make_registry())
    assert str(caught.value).startswith(f"{out / 'log.jsonl'}: not written: it is a link to "
                                        f"{env.gen_path.resolve()}, which this run read")
    assert _sha(env.gen_path) == before and not (out / "state.safetensors").exists()


def test_train_featureshift_refuses_a_model_without_a_state(env: Env, tmp_path: Path) -> None:
    """A run folder holding a model.safetensors from elsewhere was overwritten silently."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "model.safetensors").write_bytes(b"someone else's model")
    with pytest.raises(StylebridgeError) as caught:
        train_featureshift(tiny_cfg(env, out), registry=make_registry())
    assert str(caught.value) == (
        f"{out}: holds a model.safetensors but no training state (a model from elsewhere, or "
        "a run whose state was deleted): choose a new --out, or move it away")
    assert (out / "model.safetensors").read_bytes() == b"someone else's model"


def test_output_names_see_links_and_unicode_forms(tmp_path: Path) -> None:
    """`out/b.png` a link to `out/a.png`: both photos' pictures went to one file (align said
    it wrote 2, one face was lost); `café` composed and decomposed wrote two names that are
    one file on macOS."""
    import unicodedata

    from stylebridge.pipelines.photos import output_names

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    composed, decomposed = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    photos = [src / "a.png", src / "b.png", src / f"{composed}.png", src / f"{decomposed}.jpg"]
    for p in photos:
        p.write_bytes(b"x")
    (out / "b.png").symlink_to(out / "a.png")
    names, clashes = output_names(photos, ".png", folder=out)
    assert names == {photos[0]: "a.png", photos[2]: f"{composed}.png"}
    assert clashes[photos[1]] == (f"output {out / 'b.png'} is a link to {out / 'a.png'}, the "
                                  f"output of {photos[0]}: one of them would be lost")
    assert clashes[photos[3]].startswith(f"output name {decomposed}.png is already used by "
                                         f"{photos[2]}")
    # without the folder (no links to see), the names alone
    assert set(output_names(photos[:2], ".png")[0]) == set(photos[:2])


def test_a_broken_link_as_out_is_said_in_one_line(
        preset: TinyPreset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A dangling `--out` link said `error: out: File exists`; a loop stopped `invert` and
    `adapt` with `RuntimeError: Symlink loop from ...`."""
    from stylebridge.pipelines.photos import broken_link

    loop, dangling = tmp_path / "loop", tmp_path / "dangling"
    loop.symlink_to(loop)
    dangling.symlink_to(tmp_path / "nowhere" / "x")
    assert broken_link(loop) == "a symlink loop"
    assert broken_link(dangling) == f"a broken symlink to {tmp_path / 'nowhere' / 'x'}"
    assert broken_link(tmp_path) is None and broken_link(tmp_path / "new") is None
    photo = preset.images / "photo0.png"
    commands = {"invert": ["invert", "--encoder", f"e4e:{preset.e4e}", "--generator",
                           str(preset.generator), "--no-align", "--device", "cpu", str(photo)],
                "generate": ["generate", "-g", str(preset.generator), "--seeds", "0",
                             "--device", "cpu"],
                "align": ["align", str(photo)]}
    for argv in commands.values():
        for out in (loop, dangling):
            assert main([*argv, "--out", str(out)]) == 2
            err = " ".join(capsys.readouterr().err.split())
            assert f"error: --out {out}: is {broken_link(out)}; remove it or choose another " \
                   "--out" in err, err
            assert "Traceback" not in err and "File exists" not in err
    assert not (tmp_path / "nowhere").exists()


def test_align_refuses_an_input_folder_as_out(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`align photos --out photos` wrote the faces among the photos: the next run read them
    as photos (invert and adapt refused it already)."""
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.png").write_bytes(b"x")
    assert main(["align", str(photos), "--out", str(photos)]) == 2
    assert (f"--out {photos} is also an input folder: the next run would read these outputs as "
            "photos; choose another --out") in " ".join(capsys.readouterr().err.split())
    assert sorted(p.name for p in photos.iterdir()) == ["a.png"]


def test_render_skips_an_output_linked_to_another_output_or_to_an_inversion_file(
        preset: TinyPreset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`render` named its outputs by stem only: `out/b_x.png -> a_x.png` wrote b's picture
    over a's (2 done), and a link to an inversion file replaced that file."""
    import json

    latents = tmp_path / "latents"
    assert main(["invert", "--encoder", f"e4e:{preset.e4e}", "--generator",
                 str(preset.generator), "--no-align", "--device", "cpu", "--save-latents",
                 str(preset.images / "photo0.png"), str(preset.images / "photo1.png"),
                 str(preset.images / "photo2.png"), "--out", str(latents)]) == 0
    files = [latents / f"photo{i}_inversion.safetensors" for i in range(3)]
    domain = sorted(preset.domains.glob("*.safetensors"))[0]
    out = tmp_path / "render"
    out.mkdir()
    (out / "photo1_inversion.png").symlink_to(out / "photo0_inversion.png")
    (out / f"photo2_{domain.stem}.png").symlink_to(files[0])
    before = _sha(files[0])
    capsys.readouterr()
    code = main(["render", *map(str, files), "--method", str(domain), "--generator",
                 str(preset.generator), "--device", "cpu", "--out", str(out)])
    report = json.loads((out / "render.json").read_text())
    assert code == 3 and report["done"] == [str(files[0])]
    reasons = {s["file"]: s["reason"] for s in report["skipped"]}
    assert reasons == {
        str(files[1]): (f"output {out / 'photo1_inversion.png'} is a link to an output of "
                        f"{files[0]}: one of them would be lost"),
        str(files[2]): (f"output {out / f'photo2_{domain.stem}.png'} is a link to the "
                        f"inversion file {files[0]}: writing it would replace that file "
                        "(remove the link)")}
    assert _sha(files[0]) == before


def test_eval_pairs_a_decomposed_name_with_its_composed_target(tmp_path: Path) -> None:
    """`café` composed (a target) and decomposed (a prediction a macOS tool named): "no image
    pairs to evaluate"."""
    import unicodedata

    from stylebridge.core.batch import BatchReport
    from stylebridge.pipelines.eval_pairs import pair_files

    nfc, nfd = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    pred, target = tmp_path / f"{nfd}_x.png", tmp_path / f"{nfc}.png"
    report = BatchReport()
    assert pair_files([pred], [target], report, suffix="_x") == [(nfc, pred, target)]
    assert report.skipped == []


def test_no_folder_is_made_through_a_broken_link(tmp_path: Path) -> None:
    """`eval --json report.json`, a link to `/somewhere/new/r.json`: the folder `new` was
    created there and the report written into it."""
    link = tmp_path / "report.json"
    link.symlink_to(tmp_path / "nowhere" / "r.json")
    with pytest.raises(StylebridgeError) as caught, atomic_path(link) as tmp:
        tmp.write_text("{}")
    assert str(caught.value) == (
        f"{link}: is a broken symlink to {tmp_path / 'nowhere' / 'r.json'} (the folder "
        f"{tmp_path / 'nowhere'} does not exist); remove the link or write elsewhere")
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "nowhere").mkdir()      # its folder exists: a new file through the link
    with atomic_path(link) as tmp:
        tmp.write_text("{}")
    assert (tmp_path / "nowhere" / "r.json").read_text() == "{}" and link.is_symlink()


def test_check_writable_makes_no_folder_through_a_broken_link(tmp_path: Path) -> None:
    from stylebridge.core.io import check_writable

    link = tmp_path / "r.json"
    link.symlink_to(tmp_path / "nowhere" / "r.json")
    with pytest.raises(StylebridgeError, match="is a broken symlink to"):
        check_writable(link)
    assert not (tmp_path / "nowhere").exists()


def test_a_checkpoint_given_as_a_broken_link_or_a_loop_is_named_so(tmp_path: Path) -> None:
    """`render`/`info` said "no such file" for a dangling link or a link loop."""
    from stylebridge.core.checkpoint import read_header

    dangling, loop = tmp_path / "gone.safetensors", tmp_path / "loop.safetensors"
    dangling.symlink_to(tmp_path / "nowhere.safetensors")
    loop.symlink_to(loop)
    for path, said in ((dangling, f"is a broken symlink to {tmp_path / 'nowhere.safetensors'}"),
                       (loop, "is a symlink loop"),
                       (tmp_path / "missing.safetensors", "no such file")):
        with pytest.raises(StylebridgeError) as caught:
            read_header(path)
        assert str(caught.value) == f"{path}: {said}"
