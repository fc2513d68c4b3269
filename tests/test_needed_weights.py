"""A run's missing official weights, found before anything loads (``registry.needed``), and
what ``adapt``/``invert`` make of them: one line naming every download, or ``--fetch``
(against a local HTTP server on 127.0.0.1); the default generator and output folder that let
``stylebridge adapt --encoder fse --method pixar photo.jpg`` run as written."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import test_adapt as ta
from conftest import tiny_generator
from PIL import Image
from test_weights_sources import _Server

from stylebridge.cli.common import out_dir
from stylebridge.cli.main import main
from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import CheckpointError, SpecError
from stylebridge.registry import get_registry, reset_registry
from stylebridge.registry.needed import (
    Missing,
    MissingWeightsError,
    check_files,
    missing_message,
    missing_weights,
    require_weights,
)
from stylebridge.registry.weights import WeightsEntry, WeightsManager


@pytest.fixture
def empty_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "500")
    return home


# ---------------------------------------------------------------------------------------------
# registry.needed on the real manifest


def test_every_missing_download_is_named_once_in_order(empty_home: Path) -> None:
    requests = [("generator", "stylegan2", "--generator"),
                ("encoder", "fse", "--encoder"),
                ("domain_method", "pixar", "--method"),
                ("domain_method", "stylespace:mine.safetensors", "--method"),  # a file: not ours
                ("domain_method", "stylespace", "--method"),  # which domain? loading says
                ("domain_method", "joker:scale=0.5", "--method"),
                ("encoder", "e4e", "--guide"),
                ("encoder", "e4e-ffhq", "--encoder"),  # the same entry by its own name: once
                ("calibrator", "alpha", "--calibrate"),  # no published statistics
                ("encoder", "no-such-plugin", "--encoder")]  # loading lists the known ones
    missing = missing_weights(requests)
    assert missing == [
        Missing("stylegan2-ffhq-1024", "--generator stylegan2", (), True),
        Missing("fse-ffhq", "--encoder fse", ("psp-ffhq",), True),
        Missing("pixar", "--method pixar", (), True),
        Missing("joker", "--method joker:scale=0.5", (), True),
        Missing("e4e-ffhq", "--guide e4e", (), True),  # NVIDIA's decoder inside: gated
    ]


def test_losses_and_metrics_name_the_networks_they_read(empty_home: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """The brief's third user: `--loss lpips:0.8 --loss id:0.1` on a fresh install names both
    downloads in one line, not one per attempt."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # an empty hub cache
    requests = [("loss", "mse:1.0", "--loss"),
                ("loss", "lpips:0.8", "--loss"),
                ("loss", "id:0.1", "--loss"),
                ("loss", "corr:1e3", "--loss"),
                ("loss", "lpips:0.5:net=vgg", "--inversion-loss"),
                ("loss", "lpips:0.8:backbone=/elsewhere/alex.pth", "--loss"),  # a file named
                ("loss", "id:0.1:allow_random=true", "--loss"),                # tests only
                ("metric", "id", "--metric"),                # auto: dlib when ArcFace is absent
                ("metric", "id:backend=arcface", "--metric"),  # asked for above already
                ("loss", "lpips:heavy", "--loss"),           # loading reports the bad weight
                ("loss", "no-such-loss:1", "--loss")]        # and the unknown name
    missing = missing_weights(requests)
    assert missing == [Missing("lpips-alex", "--loss lpips:0.8"),
                       Missing("arcface-irse50", "--loss id:0.1"),
                       Missing("lpips-vgg", "--inversion-loss lpips:0.5:net=vgg")]
    assert missing_message(missing).endswith(
        "run `stylebridge weights fetch lpips-alex arcface-irse50 lpips-vgg`")
    # a subclass with another default network (MindTheGap's LPIPS is VGG's)
    assert missing_weights([("loss", "mtg_ref_lpips:10", "--loss")]) == [
        Missing("lpips-vgg", "--loss mtg_ref_lpips:10")]
    # a backbone torchvision left in the hub cache serves lpips as it does when building
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / "alexnet-owt-7be5be79.pth").write_bytes(b"")
    assert [m.name for m in missing_weights(requests[:3])] == ["arcface-irse50"]
    check_files(requests)  # option specs hold no checkpoint path to check


def test_train_featureshift_names_every_loss_download_before_reading_anything(
        empty_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    out = tmp_path / "run"
    data = tmp_path / "dataset"  # a dataset's folder (a missing --data is said first) whose
    data.mkdir()                 # index is not read before the downloads are named
    (data / "index.json").write_text("not read yet")
    code = main(["train", "featureshift", "--data", str(data),
                 "--generator", str(tmp_path / "no-generator.safetensors"),
                 "--loss", "mse:1.0", "--loss", "lpips:0.8", "--loss", "id:0.1",
                 "--loss", "corr:1e3", "--adversarial", "0", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err == ("error: official weights are not installed: lpips-alex (for --loss "
                   "lpips:0.8), arcface-irse50 (for --loss id:0.1); run `stylebridge weights "
                   "fetch lpips-alex arcface-irse50`; or add --fetch to this command\n")
    assert not out.exists()
    # without --loss the thesis set is used: named as the default, not as something typed
    code = main(["train", "featureshift", "--data", str(data),
                 "--generator", str(tmp_path / "no-generator.safetensors"),
                 "--adversarial", "0", "--out", str(out)])
    assert code == 2 and "lpips-alex (for --loss (default) lpips:0.8)" in capsys.readouterr().err


def test_installed_weights_are_not_missing(tmp_path: Path) -> None:
    gen = tiny_generator(seed=0, size=8, style_dim=8, channels={4: 4, 8: 4})
    src = save_stylegan2(tmp_path / "g.safetensors", gen)
    manifest = [WeightsEntry(name="gen-a", kind="generator", plugin="stylegan2",
                             filename="g.safetensors", licence="test"),
                WeightsEntry(name="gen-b", kind="generator", plugin="stylegan2",
                             filename="g.safetensors", licence="test", noncommercial=True)]
    manager = WeightsManager(tmp_path / "home", manifest=manifest)
    request = [("generator", "stylegan2", "-g")]
    assert missing_weights(request, manager) == [Missing("gen-a", "-g stylegan2")]
    manager.register("gen-b", src)
    # any installed generator serves `stylegan2`; an entry asked by name must be that one
    assert missing_weights(request, manager) == []
    assert missing_weights([("generator", "gen-a", "-g"), ("generator", "gen-b", "-g")],
                           manager) == [Missing("gen-a", "-g gen-a")]


def test_the_message_is_one_line_with_one_command() -> None:
    one = [Missing("e4e-ffhq", "--encoder e4e")]
    assert missing_message(one) == ("official weights are not installed: e4e-ffhq (for "
                                    "--encoder e4e); run `stylebridge weights fetch e4e-ffhq`")
    two = [Missing("stylegan2-ffhq-1024", "--generator stylegan2", (), True),
           Missing("fse-ffhq", "--encoder fse", ("psp-ffhq",), True)]
    assert missing_message(two) == (
        "official weights are not installed: stylegan2-ffhq-1024 (for --generator stylegan2), "
        "fse-ffhq (for --encoder fse; fetches psp-ffhq first); run `stylebridge weights fetch "
        "stylegan2-ffhq-1024 fse-ffhq` (all under non-commercial licences, shown before "
        "download)")
    mixed = [Missing("a", "-e a", (), True), Missing("b", "-e b"), Missing("c", "-e c")]
    assert missing_message(mixed).endswith("fetch a b c` (1 under non-commercial licences, "
                                           "shown before download)")


def test_a_named_file_that_does_not_exist_is_refused_before_any_download(
        empty_home: Path, tmp_path: Path) -> None:
    gone = tmp_path / "e4e.safetensors"
    with pytest.raises(CheckpointError) as exc:
        require_weights([("generator", "stylegan2", "--generator"),
                         ("encoder", f"e4e:{gone}", "--encoder")])
    assert str(exc.value) == f"{gone}: no such file (--encoder e4e:{gone})"
    check_files([("encoder", "e4e", "--encoder")])
    # a spec that does not parse is said before the list of downloads (it used to be said
    # only after them, when the spec was loaded)
    with pytest.raises(SpecError, match="encoder spec 'e4e:::' has an empty path"):
        require_weights([("generator", "stylegan2", "--generator"),
                         ("encoder", "e4e:::", "--encoder")])
    with pytest.raises(MissingWeightsError) as missing:
        require_weights([("generator", "stylegan2", "--generator")])
    assert [m.name for m in missing.value.missing] == ["stylegan2-ffhq-1024"]


# ---------------------------------------------------------------------------------------------
# The CLI: the brief's command as written


def test_the_short_adapt_command_names_every_download(empty_home: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (16, 16)).save("photo.jpg")
    assert main(["adapt", "--encoder", "fse", "--method", "pixar", "photo.jpg"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "error: official weights are not installed: stylegan2-ffhq-1024 (for --generator "
        "stylegan2), fse-ffhq (for --encoder fse; fetches psp-ffhq first), pixar (for --method "
        "pixar); run `stylebridge weights fetch stylegan2-ffhq-1024 fse-ffhq pixar` (all under "
        "non-commercial licences, shown before download); or add --fetch to this command\n")
    assert main(["invert", "--encoder", "e4e", "photo.jpg"]) == 2
    assert "e4e-ffhq (for --encoder e4e)" in capsys.readouterr().err
    assert not Path("adapted").exists() and not Path("inverted").exists()  # nothing written


def test_a_typo_is_said_before_the_downloads_and_before_a_fetch(
        served: tuple[_Server, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`adapt photos -e e5e -m pixar` answered with "weights not installed: ... pixar" (the
    unknown `e5e` skipped), `--fetch` downloaded before the typo was found, and a photo path
    that does not exist was said only after every download."""
    server, photos = served
    monkeypatch.chdir(tmp_path)
    base = ["adapt", "--fetch", "--accept-licence", "--no-align", "--device", "cpu"]
    cases = [
        (["-e", "tiny-enx", "-m", "toon", str(photos)], "unknown encoder 'tiny-enx'"),
        (["-e", "tiny-enc", "-m", "tooon", str(photos)], "unknown domain method 'tooon'"),
        (["-e", "tiny-enc", "-m", "toon", "--metric", "ssmi", str(photos)],
         "unknown metric 'ssmi'; did you mean 'ssim'?"),
        (["-e", "tiny-enc", "-m", "toon", "-g", "stylegan3", str(photos)],
         "--generator 'stylegan3': unknown generator 'stylegan3'"),
        (["-e", "tiny-enc", "-m", "toon", "typo.jpg"], "typo.jpg: no such file or directory"),
        (["-e", "tiny-enc", "-m", "toon", "typo.jpg", "other.png"],
         "no such files or directories: typo.jpg, other.png"),
    ]
    for args, message in cases:
        assert main([*base, *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (args, err)
        assert "not installed" not in err
    assert _gets(server) == [] and not (tmp_path / "adapted").exists()  # nothing fetched
    # without --fetch too: the typo, not the list of downloads
    assert main(["invert", "-e", "e5e", str(photos)]) == 2
    assert "unknown encoder 'e5e'; did you mean 'e4e'?" in capsys.readouterr().err


def test_out_dir_never_reuses_a_folder_with_files(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert out_dir(None, "adapted") == Path("adapted")
    Path("adapted").mkdir()
    assert out_dir(None, "adapted") == Path("adapted")  # empty: used
    (tmp_path / "adapted" / "grid.png").write_bytes(b"x")
    assert out_dir(None, "adapted") == Path("adapted-2")
    Path("adapted-2").write_text("a file, not a folder")
    assert out_dir(None, "adapted") == Path("adapted-3")
    assert out_dir(tmp_path / "adapted", "adapted") == tmp_path / "adapted"  # as given


# ---------------------------------------------------------------------------------------------
# --fetch against a local server


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[_Server, Path]]:
    """A manifest of three tiny entries served on 127.0.0.1 (generator, encoder, domain)."""
    gen = tiny_generator(seed=0, size=ta.SIZE, style_dim=ta.SD)
    enc = ta.TinyEncoder()
    src = tmp_path / "src"
    src.mkdir()
    payloads = {
        "gen.safetensors": save_stylegan2(src / "gen.safetensors", gen),
        "enc.safetensors": save_checkpoint(src / "enc.safetensors", enc.state_dict(),
                                           kind="encoder", plugin=enc.name, config=enc.config()),
        "toon.safetensors": ta._domain(gen, 7).save(src / "toon.safetensors"),
    }
    server = _Server()
    for name, path in payloads.items():
        server.files[f"/{name}"] = path.read_bytes()

    def entry(name: str, kind: str, plugin: str, filename: str, **kw: object) -> WeightsEntry:
        data = server.files[f"/{filename}"]
        return WeightsEntry(name=name, kind=kind, plugin=plugin, filename=filename,
                            url=f"{server.url}/{filename}", size=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), licence="test licence",
                            **kw)  # type: ignore[arg-type]

    manifest = [entry("tiny-gen", "generator", "stylegan2", "gen.safetensors"),
                entry("tiny-enc", "encoder", "test-adapt-tiny", "enc.safetensors"),
                entry("toon", "domain_method", "stylespace", "toon.safetensors",
                      noncommercial=True)]
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=manifest))
    monkeypatch.setenv("COLUMNS", "500")
    monkeypatch.chdir(tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for stem in ("a", "b"):
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(
            photos / f"{stem}.png")
    reset_registry()
    get_registry().add_plugin(ta, "tests")
    yield server, photos
    reset_registry()
    server.close()


def _gets(server: _Server) -> list[str]:
    return sorted(path for method, path, _ in server.log if method == "GET")


def test_fetch_downloads_what_the_run_lacks_then_runs(served: tuple[_Server, Path],
                                                      tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    server, photos = served
    argv = ["adapt", "--fetch", "-e", "tiny-enc", "-m", "toon", "--no-align", "--device", "cpu",
            str(photos)]
    # not on a terminal: a non-commercial licence needs --accept-licence, and nothing is fetched
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert "licence of toon: test licence" in err and out == ""  # a notice: on stderr
    assert err.endswith("error: toon is under a non-commercial licence (shown above); pass "
                        "--accept-licence to accept it and download\n")
    assert _gets(server) == [] and not (tmp_path / "adapted").exists()

    assert main([*argv, "--accept-licence"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in ("tiny-gen", "tiny-enc", "toon"):
        assert f"installed {name} → {tmp_path / 'home'}" in out
    assert _gets(server) == ["/enc.safetensors", "/gen.safetensors", "/toon.safetensors"]
    written = sorted(p.name for p in (tmp_path / "adapted").iterdir())
    assert written == ["a_inversion.png", "a_toon.png", "adapt.json", "b_inversion.png",
                       "b_toon.png", "grid.png", "metrics.json"]
    assert "to adapted" in out

    # again: everything installed, nothing downloaded; the first run's folder is kept
    before = (tmp_path / "adapted" / "grid.png").read_bytes()
    assert main([*argv, "--accept-licence"]) == 0
    out, notices = capsys.readouterr()
    assert "installed" not in out and "installed" not in notices
    assert len(_gets(server)) == 3
    assert (tmp_path / "adapted" / "grid.png").read_bytes() == before
    assert (tmp_path / "adapted-2" / "grid.png").read_bytes() == before  # same inputs, same image


def test_generate_writes_to_samples_then_samples_2(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    gen = save_stylegan2(tmp_path / "g.safetensors", tiny_generator(size=8, style_dim=8,
                                                                    channels={4: 4, 8: 4}))
    argv = ["generate", "-g", str(gen), "--seeds", "0-1", "--device", "cpu"]
    assert main(argv) == 0 and main(argv) == 0
    for folder in ("samples", "samples-2"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == [
            "generate.json", "grid.png", "seed0000.png", "seed0001.png"]
    assert (tmp_path / "samples" / "seed0001.png").read_bytes() == \
        (tmp_path / "samples-2" / "seed0001.png").read_bytes()  # same seed, same image


def test_align_writes_to_aligned_by_default(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`stylebridge align photo.jpg` → ./aligned/photo.png, the name `eval --target aligned/`
    pairs with adapt's photo_<domain>.png (--suffix)."""
    from skimage import data as skdata

    monkeypatch.chdir(tmp_path)
    Image.fromarray(skdata.astronaut()).save("photo.jpg")
    assert main(["align", "photo.jpg", "--size", "64"]) == 0
    assert sorted(p.name for p in (tmp_path / "aligned").iterdir()) == ["photo.png"]
    assert Image.open(tmp_path / "aligned" / "photo.png").size == (64, 64)


def test_a_bad_allow_random_is_named_not_answered_with_a_download() -> None:
    """`lpips:0.8:allow_random=maybe` was read as "no" and answered "official weights are
    not installed ... fetch"; then, once checked, it was a bare ValueError."""
    from stylebridge.errors import SpecError
    from stylebridge.registry.needed import missing_weights

    for kind, spec in (("loss", "lpips:0.8:allow_random=maybe"),
                       ("loss", "id:0.1:allow_random=perhaps"),
                       ("metric", "lpips:allow_random=maybe")):
        with pytest.raises(SpecError, match=r"allow_random='(maybe|perhaps)': expected true or "
                                             r"false"):
            missing_weights([(kind, spec, "--loss")])


def test_an_unknown_option_is_said_before_the_download_it_would_need(tmp_path, monkeypatch) -> None:
    """`--loss lpips:0.8:foo=1` asked to fetch lpips-alex first and named the typo only after
    the download; the option is checked first now (`after=` stays the trainers' own)."""
    from stylebridge.errors import SpecError
    from stylebridge.registry.needed import missing_weights
    from stylebridge.registry.weights import WeightsManager

    manager = WeightsManager(tmp_path / "home")
    with pytest.raises(SpecError) as info:
        missing_weights([("loss", "lpips:0.8:foo=1", "--loss")], manager)
    assert str(info.value).startswith("loss spec 'lpips:0.8:foo=1': unknown option(s) foo")
    assert "(accepted: " in str(info.value)
    named = missing_weights([("loss", "lpips:0.8:after=5", "--loss")], manager)
    assert [m.name for m in named] == ["lpips-alex"]
