"""The weights manager when things go wrong, against a local HTTP server on 127.0.0.1: two
fetches of one entry at once, a partial download and several sources, downloads that are not
the file (cut short without a sign, a web page), a transfer that stalls, a read-only cache, a
Drive host moved by ``$STYLEBRIDGE_GDRIVE_URL``, ``--no-convert`` and the trust-on-first-use
reference, and the licences a run states."""

from __future__ import annotations

import errno
import hashlib
import importlib
import io
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from test_weights_sources import _gen_entry, _Server, _tiny_gen_pt

from stylebridge.errors import ConversionError, StylebridgeError
from stylebridge.registry.weights import WeightsError, WeightsManager, load_manifest

PAGE = b"<!DOCTYPE html><html><body>Sign in to continue</body></html>"


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


def _gets(server: _Server) -> list[tuple[str, str | None]]:
    return [(path, rng) for method, path, rng in server.log if method == "GET"]


def _url_manager(home: Path, server: _Server, *paths: str, **fields: Any) -> WeightsManager:
    entry = _gen_entry(sources=[{"type": "url", "url": f"{server.url}{p}"} for p in paths],
                       **fields)
    return WeightsManager(home, manifest=[entry])


def _leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "downloads").iterdir() if p.name != "tiny.pt")


# -- 1. two fetches of the same entry at once ---------------------------------------------------

def test_a_second_fetch_of_the_same_entry_waits_and_does_not_append(tmp_path: Path,
                                                                     server: _Server) -> None:
    payload = _tiny_gen_pt(fill=0.5)
    server.files["/tiny.pt"] = payload
    home = tmp_path / "home"
    first, second, third = (_url_manager(home, server, "/tiny.pt") for _ in range(3))
    server.hold_after = 1000  # the first transfer stops there until released
    results: dict[str, Any] = {}
    waited = threading.Event()

    def run(key: str, manager: WeightsManager, **kwargs: Any) -> None:
        try:
            results[key] = manager.fetch("tiny-gen", **kwargs)
        except Exception as exc:  # reported by the assertions below
            results[key] = exc

    a = threading.Thread(target=run, args=("a", first))
    a.start()
    assert server.holding.wait(10)
    b = threading.Thread(target=run, args=("b", second))
    b.start()
    time.sleep(0.5)  # time enough to resume the .part with a Range request, which it must not
    assert _gets(server) == [("/tiny.pt", None)] and b.is_alive()
    c = threading.Thread(target=run, args=("c", third),
                         kwargs={"on_wait": lambda text: (results.setdefault("said", text),
                                                          waited.set())})
    c.start()
    assert waited.wait(10)  # a caller is told that it waits
    assert results["said"] == ("waiting for another stylebridge process that is installing "
                               f"tiny-gen ({home / 'downloads' / 'tiny.pt.lock'})")
    server.release.set()
    for thread in (a, b, c):
        thread.join(20)
    assert results["a"] == results["b"] == results["c"] == home / "weights" / "tiny-gen.safetensors"
    assert (home / "downloads" / "tiny.pt").read_bytes() == payload  # not appended to
    assert _gets(server) == [("/tiny.pt", None)]  # the others found it installed
    assert _leftovers(home) == []  # no .part, no .lock
    assert first.verify() == {"tiny-gen": "ok"}


# -- 2. several sources: a partial download is kept for the source that wrote it ----------------

def test_a_partial_download_survives_another_source_that_fails(tmp_path: Path,
                                                               server: _Server) -> None:
    payload = _tiny_gen_pt(fill=0.25)
    server.files["/a.pt"] = payload  # /b.pt is not served: HTTP 404
    home = tmp_path / "home"
    manager = _url_manager(home, server, "/a.pt", "/b.pt")
    server.cut_after = 1000
    with pytest.raises(WeightsError, match=r"interrupted after 1000 .*run the same command "
                                           r"again to resume.*HTTP 404"):
        manager.fetch("tiny-gen")
    part = home / "downloads" / "tiny.pt.part"
    assert part.read_bytes() == payload[:1000]  # /b.pt did not start: the partial is kept
    # the next run: the source that wrote it goes first and resumes it
    swapped = _url_manager(home, server, "/b.pt", "/a.pt")
    swapped.fetch("tiny-gen")
    assert _gets(server) == [("/a.pt", None), ("/b.pt", None), ("/a.pt", "bytes=1000-")]
    assert (home / "downloads" / "tiny.pt").read_bytes() == payload
    assert _leftovers(home) == []


def test_another_source_that_delivers_replaces_the_partial(tmp_path: Path,
                                                           server: _Server) -> None:
    payload = _tiny_gen_pt(fill=0.75)
    server.files["/a.pt"] = server.files["/b.pt"] = payload
    home = tmp_path / "home"
    manager = _url_manager(home, server, "/a.pt", "/b.pt")
    server.cut_after = 1000  # /a.pt is cut, /b.pt delivers the whole file in the same run
    manager.fetch("tiny-gen")
    assert _gets(server) == [("/a.pt", None), ("/b.pt", None)]
    assert manager.index()["tiny-gen"]["source"] == f"URL {server.url}/b.pt"
    assert (home / "downloads" / "tiny.pt").read_bytes() == payload
    assert _leftovers(home) == []  # the set-aside partial of /a.pt is gone


# -- 3. downloads that are not the file -----------------------------------------------------------

def _legacy_pt() -> bytes:
    """A tiny generator saved in torch's legacy (non-zip) format: a pickle stream."""
    from conftest import tiny_generator

    gen = tiny_generator(size=8, style_dim=8, channels={4: 4, 8: 4})
    buf = io.BytesIO()
    torch.save({"g_ema": {k: v for k, v in gen.state_dict().items() if k != "latent_avg"},
                "latent_avg": torch.zeros(8)}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


@pytest.mark.parametrize("convert", [True, False])  # --no-convert checks it as much
@pytest.mark.parametrize("bad, says", [
    ("zip-half", "is a zip whose end is missing (a download cut short?)"),
    ("page", "is a web page (HTML"),
    ("legacy-half", "not usable as 'tiny-gen'"),  # only the conversion sees it
])
def test_a_bad_download_is_discarded_and_the_next_fetch_downloads_again(
        tmp_path: Path, server: _Server, bad: str, says: str, convert: bool) -> None:
    good = _legacy_pt() if bad.startswith("legacy") else _tiny_gen_pt(fill=0.5)
    # Content-Length and body agree: the server says the cut file is whole (a Content-Length
    # shorter than the body, or no length and a closed connection, look the same to a client)
    server.files["/tiny.pt"] = PAGE if bad == "page" else good[:len(good) // 2]
    home = tmp_path / "home"
    manager = _url_manager(home, server, "/tiny.pt")
    with pytest.raises(StylebridgeError) as info:
        manager.fetch("tiny-gen", convert=convert)
    assert says in str(info.value) and "\n" not in str(info.value)
    assert not (home / "downloads" / "tiny.pt").exists()  # nothing lands at the final path
    assert _leftovers(home) == []
    assert manager.index() == {}  # and no sha256 of it becomes the reference
    server.files["/tiny.pt"] = good
    manager.fetch("tiny-gen", convert=convert)
    assert _gets(server) == [("/tiny.pt", None), ("/tiny.pt", None)]  # downloaded again
    assert (home / "downloads" / "tiny.pt").read_bytes() == good
    assert manager.verify() == {"tiny-gen": "ok"}


def test_a_download_left_by_an_earlier_version_is_checked_and_replaced(
        tmp_path: Path, server: _Server, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.main import main

    payload = _tiny_gen_pt()
    server.files["/tiny.pt"] = payload
    home = tmp_path / "home"
    manager = _url_manager(home, server, "/tiny.pt")
    (home / "downloads").mkdir(parents=True)
    (home / "downloads" / "tiny.pt").write_bytes(payload[:len(payload) // 2])
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager", lambda *a, **k: manager)
    monkeypatch.setenv("COLUMNS", "500")
    # verify no longer says "nothing installed" with exit 0
    assert main(["weights", "verify"]) == 2
    out = " ".join(capsys.readouterr().out.split())
    assert f"tiny-gen: {home / 'downloads' / 'tiny.pt'} is downloaded but not installed" in out
    manager.fetch("tiny-gen")
    assert _gets(server) == [("/tiny.pt", None)]
    assert (home / "downloads" / "tiny.pt").read_bytes() == payload


# -- 6. a transfer that stalls ----------------------------------------------------------------

def test_a_stalled_transfer_says_timed_out_and_keeps_the_bytes(tmp_path: Path,
                                                               server: _Server) -> None:
    payload = _tiny_gen_pt(fill=0.5)
    server.files["/tiny.pt"] = payload
    home = tmp_path / "home"
    manager = _url_manager(home, server, "/tiny.pt")
    server.hold_after = 3000  # then silence
    with pytest.raises(WeightsError) as info:
        manager.fetch("tiny-gen", timeout=0.5)
    assert str(info.value) == ("download of tiny-gen failed: timed out after 3000 bytes "
                               "(nothing arrived for 0.5 s); run the same command again to "
                               "resume")
    assert (home / "downloads" / "tiny.pt.part").read_bytes() == payload[:3000]
    server.release.set()
    manager.fetch("tiny-gen")
    assert _gets(server)[-1] == ("/tiny.pt", "bytes=3000-")
    assert (home / "downloads" / "tiny.pt").read_bytes() == payload


# -- 7. a read-only cache ---------------------------------------------------------------------------

def _read_only(monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
    """Every attempt to create or write a file or folder under ``root`` fails as on a
    read-only mount (reading works)."""
    import builtins
    import os

    def refused(path: Any) -> bool:
        return str(os.fspath(path)).startswith(str(root))

    def fail(path: Any) -> OSError:
        return OSError(errno.EROFS, "Read-only file system", str(path))

    real_open, real_os_open, real_mkdir = builtins.open, os.open, os.mkdir

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if isinstance(file, (str, Path)) and refused(file) and set(mode) & set("wax+"):
            raise fail(file)
        return real_open(file, mode, *args, **kwargs)

    def os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if refused(path) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            raise fail(path)
        return real_os_open(path, flags, *args, **kwargs)

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        if refused(path) and not os.path.isdir(path):
            raise fail(path)
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", open_)
    monkeypatch.setattr(io, "open", open_)
    monkeypatch.setattr(os, "open", os_open)
    monkeypatch.setattr(os, "mkdir", mkdir)


def test_a_read_only_cache_is_one_line_naming_the_folder(tmp_path: Path, server: _Server,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    server.files["/tiny.pt"] = payload = _tiny_gen_pt()
    home = tmp_path / "home"
    (home / "downloads").mkdir(parents=True)
    (tmp_path / "mine.pt").write_bytes(payload)
    manager = _url_manager(home, server, "/tiny.pt")
    _read_only(monkeypatch, home)
    for attempt in (lambda: manager.fetch("tiny-gen"),
                    lambda: manager.register("tiny-gen", tmp_path / "mine.pt")):
        with pytest.raises(WeightsError) as info:
            attempt()
        assert str(info.value) == (f"cache folder {home} is not writable; set "
                                   "STYLEBRIDGE_HOME to a folder you can write to")
    assert server.log == []  # refused before any download


# -- 8. a Drive host moved by $STYLEBRIDGE_GDRIVE_URL ---------------------------------------------

def test_the_recorded_source_is_the_server_that_served_it(tmp_path: Path, server: _Server,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gdown")
    from stylebridge.core.checkpoint import read_header

    server.drive["FILEID9"] = _tiny_gen_pt()
    monkeypatch.setenv("STYLEBRIDGE_GDRIVE_URL", server.url)
    manager = WeightsManager(tmp_path / "home", manifest=[
        _gen_entry(sources=[{"type": "gdrive", "id": "FILEID9"}])])
    path = manager.fetch("tiny-gen")
    want = (f"URL {server.url}/uc?export=download&id=FILEID9 ($STYLEBRIDGE_GDRIVE_URL, in "
            "place of Google Drive id FILEID9)")
    assert manager.index()["tiny-gen"]["source"] == want
    assert read_header(path).extra["weights"]["source"] == want


# -- 4. --no-convert, and the trust-on-first-use reference ------------------------------------

def test_no_convert_still_checks_what_the_file_is(tmp_path: Path) -> None:
    from conftest import tiny_generator

    page = tmp_path / "page.html"
    page.write_bytes(PAGE)
    plain = tmp_path / "plain.zip"
    import zipfile
    with zipfile.ZipFile(plain, "w") as zf:
        zf.writestr("readme.txt", "hi")
    small = tmp_path / "small.pt"
    gen = tiny_generator(size=8, style_dim=8, channels={4: 4, 8: 4})
    torch.save({"g_ema": {k: v for k, v in gen.state_dict().items() if k != "latent_avg"},
                "latent_avg": torch.zeros(8)}, small)
    # a name whose resolution the catalogue knows: 1024 px, also without conversion
    manager = WeightsManager(tmp_path / "home", manifest=[_gen_entry(
        name="stylegan2-ffhq-config-f", filename="stylegan2-ffhq-config-f.pt")])
    with pytest.raises(WeightsError, match=r"page.html: stylegan2-ffhq-config-f: is a web page"):
        manager.register("stylegan2-ffhq-config-f", page, convert=False)
    with pytest.raises(WeightsError, match=r"plain.zip: stylegan2-ffhq-config-f: is a zip "
                                           r"archive of other files, not the PyTorch checkpoint"):
        manager.register("stylegan2-ffhq-config-f", plain)
    with pytest.raises(ConversionError, match=r"expected 26 style layers for size 1024"):
        manager.register("stylegan2-ffhq-config-f", small, convert=False)
    assert manager.index() == {} and not (tmp_path / "home" / "downloads" /
                                          "stylegan2-ffhq-config-f.pt").exists()


def test_no_convert_replaces_the_converted_file_and_loading_says_how_to_convert(
        tmp_path: Path, server: _Server) -> None:
    first, second = _tiny_gen_pt(fill=0.25), _tiny_gen_pt(seed=3, fill=0.5)
    server.files["/tiny.pt"] = first
    home = tmp_path / "home"
    manager = _url_manager(home, server, "/tiny.pt")
    manager.fetch("tiny-gen")
    converted = home / "weights" / "tiny-gen.safetensors"
    assert converted.is_file()
    other = tmp_path / "other.pt"
    other.write_bytes(second)
    manager.register("tiny-gen", other, convert=False, force=True)
    assert not converted.exists()  # not the converted file of another upstream file
    assert manager.index()["tiny-gen"]["converted"] is None
    raw = home / "downloads" / "tiny.pt"
    how = (f"convert it with `stylebridge weights register tiny-gen --from {raw}` (without "
           "--no-convert)")
    for attempt in (lambda: manager.path("tiny-gen"),
                    lambda: manager.resolve("generator", "stylegan2")):
        with pytest.raises(WeightsError) as info:
            attempt()
        assert str(info.value).endswith(how)
    assert manager.installed_file("tiny-gen") == raw  # `weights path`: the upstream file
    manager.register("tiny-gen", raw)  # as the message says
    assert manager.path("tiny-gen") == converted


def test_a_changed_upstream_file_can_replace_the_reference_with_fetch_force(
        tmp_path: Path, server: _Server, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.main import main

    first, real = _tiny_gen_pt(fill=0.25), _tiny_gen_pt(seed=4, fill=0.75)
    home = tmp_path / "home"
    manager = _url_manager(home, server, "/tiny.pt")
    mine = tmp_path / "first.pt"
    mine.write_bytes(first)
    manager.register("tiny-gen", mine, convert=False)  # the reference: sha256 of `first`
    (home / "downloads" / "tiny.pt").unlink()
    server.files["/tiny.pt"] = real
    with pytest.raises(WeightsError) as info:
        manager.fetch("tiny-gen", convert=False)
    assert "recorded at its first install" in str(info.value)
    assert "run `stylebridge weights fetch tiny-gen --force`" in str(info.value)
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager", lambda *a, **k: manager)
    assert main(["weights", "fetch", "tiny-gen", "--force"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    old, new = hashlib.sha256(first).hexdigest(), hashlib.sha256(real).hexdigest()
    assert f"the reference sha256 of tiny-gen changed from {old[:16]}… to {new[:16]}…" in out
    assert manager.recorded_sha256("tiny-gen") == new
    assert (home / "downloads" / "tiny.pt").read_bytes() == real


# -- 5. licences ----------------------------------------------------------------------------------

def test_e4e_and_psp_are_gated_with_both_licences(tmp_path: Path) -> None:
    entries = {e.name: e for e in load_manifest()}
    manager = WeightsManager(tmp_path / "home")
    for name in ("e4e-ffhq", "psp-ffhq"):
        entry = entries[name]
        assert entry.noncommercial, name
        assert "MIT" in entry.licence and "NVIDIA Source Code License-NC" in entry.licence
        assert [e.name for e in manager.licence_gate([name])] == [name]


def test_a_run_states_non_commercial_licences_in_one_line_each(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """StyleRes' licence was a Python warning naming registry.py and a line number."""
    from PIL import Image
    from test_encoders_irse import _styleres_file

    from stylebridge.cli import options
    from stylebridge.cli.main import main
    from stylebridge.plugins.converters.styleres import StyleResConverter
    from stylebridge.plugins.encoders.styleres import StyleResEncoder

    src, _ = _styleres_file(tmp_path)
    enc, gen = tmp_path / "styleres.safetensors", tmp_path / "gen.safetensors"
    StyleResConverter().convert(src, enc, generator=str(gen))
    Image.new("RGB", (32, 32), (120, 90, 60)).save(tmp_path / "face.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(StyleResEncoder, "_licence_noted", False)
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("default")  # what a plain `python` shows
        importlib.reload(options)  # what starting the command line does to warnings
        assert main(["invert", "--encoder", f"styleres:{enc}", "--generator",
                     f"stylegan2:{gen}", "--no-align", "face.png", "--out", "out",
                     "--device", "cpu"]) == 0
    assert not [w for w in shown if "licence" in str(w.message)]
    out, err = capsys.readouterr()
    assert "registry.py" not in err + out
    assert "licence of " not in out  # the licences are notices: on stderr
    lines = [line for line in err.splitlines() if line.startswith("licence of ")]
    assert lines == [
        "licence of gen.safetensors: official StyleGAN2 weights (FFHQ etc.) are NVIDIA's, "
        "under the NVIDIA Source Code License-NC (non-commercial use)",
        "licence of styleres.safetensors: StyleRes (hamzapehlivan/StyleRes) code and weights "
        "are under the NVIDIA Source Code License for StyleRes: non-commercial research and "
        "evaluation use only"]


# -- 9. smaller things --------------------------------------------------------------------------

def test_verify_of_an_unknown_name_suggests_the_known_one(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.main import main

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    assert main(["weights", "verify", "e4e-ffgq"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown weights 'e4e-ffgq'; did you mean 'e4e-ffhq'")
    assert err.count("\n") == 1
    assert main(["weights", "verify", "e4e-ffhq"]) == 2  # known, not installed: how to get it
    assert "e4e-ffhq: not installed; run `stylebridge weights fetch e4e-ffhq`" in \
        " ".join(capsys.readouterr().out.split())


def test_url_sources_name_the_upstream_commit_they_were_checked_at() -> None:
    entries = {e.name: e for e in load_manifest()}
    # each URL was read in that commit of the upstream file named
    expected = {"stylegan2-ffhq-1024": "NVlabs/stylegan3@c233a91 visualizer.py",
                "stylegan2-ada-ffhq-1024": "NVlabs/stylegan2-ada-pytorch@d72cc7d README.md",
                "fid-inception": "mseitzer/pytorch-fid@b9c1811 src/pytorch_fid/inception.py",
                "lpips-vgg": "pytorch/vision@1c1feb5 torchvision/models/vgg.py",
                "clip-vit-b-32": "mlfoundations/open_clip@cc1b4f5 src/open_clip/pretrained.py",
                "clip-vit-b-16": "mlfoundations/open_clip@cc1b4f5 src/open_clip/pretrained.py"}
    for name, found_in in expected.items():
        assert entries[name].all_sources[0]["found_in"].startswith(found_in), name
