"""Each kind of weights source against a local HTTP server on 127.0.0.1: a Google-Drive-style
confirm page (read by gdown's parser), a Hugging-Face-style resolve URL (huggingface_hub with
HF_ENDPOINT), archives (a zip member, StyleDomain's checkpoint tar.gz), licences, trust on
first use, named sets and ``demo --fetch`` without network. Nothing touches the internet."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import json
import socket
import tarfile
import threading
import urllib.parse
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from stylebridge.registry.weights import LicenceError, WeightsEntry, WeightsError, WeightsManager

COMMIT = "0123456789abcdef0123456789abcdef01234567"
QUOTA = "Too many users have viewed or downloaded this file recently."


class _Server:
    """Serves files with Range support at their paths, Drive's ``/uc`` confirm flow and Hub
    ``/{repo}/resolve/{revision}/{path}`` URLs; logs every request; can cut one transfer
    (``cut_after``) or hold one after some bytes until ``release`` is set (``hold_after``:
    ``holding`` is set once those bytes are sent)."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.drive: dict[str, bytes] = {}        # Drive file id → payload
        self.quota: set[str] = set()             # Drive ids answering with the quota page
        self.hub: dict[str, bytes] = {}          # "repo/path" → payload
        self.cut_after: int | None = None
        self.hold_after: int | None = None
        self.holding = threading.Event()
        self.release = threading.Event()
        self.log: list[tuple[str, str, str | None]] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _serve(self, head: bool) -> None:
                outer.log.append((self.command, self.path, self.headers.get("Range")))
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                if url.path == "/uc" and query.get("id") in outer.quota:
                    page = (f'<!DOCTYPE html><html><body><p class="uc-error-subcaption">{QUOTA}'
                            "</p></body></html>")
                    return self._page(page)
                if url.path == "/uc" and query.get("id") in outer.drive:
                    base = f"http://127.0.0.1:{self.server.server_address[1]}"
                    page = ('<!DOCTYPE html><html><body>Google Drive can\'t scan this file for '
                            f'viruses.<form id="download-form" action="{base}/download" '
                            'method="get"><input type="submit" value="Download anyway"/>'
                            f'<input type="hidden" name="id" value="{query["id"]}">'
                            '<input type="hidden" name="export" value="download">'
                            '<input type="hidden" name="confirm" value="t">'
                            '<input type="hidden" name="uuid" value="abc"></form></body></html>')
                    return self._page(page)
                if url.path == "/download" and query.get("confirm") == "t":
                    return self._payload(outer.drive[query["id"]], head,
                                         {"Content-Disposition": 'attachment; filename="x.pt"'})
                parts = url.path.strip("/").split("/")
                if len(parts) >= 5 and parts[2] == "resolve":
                    key = "/".join(parts[:2] + parts[4:])
                    if key in outer.hub:
                        data = outer.hub[key]
                        etag = '"' + hashlib.sha256(data).hexdigest() + '"'
                        return self._payload(data, head, {"X-Repo-Commit": COMMIT, "ETag": etag})
                if url.path in outer.files:
                    return self._payload(outer.files[url.path], head, {})
                self.send_error(404, "not found")

            def _page(self, page: str) -> None:
                body = page.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _payload(self, data: bytes, head: bool, headers: dict[str, str]) -> None:
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                if head:
                    return
                if outer.cut_after is not None:
                    self.wfile.write(body[:outer.cut_after])
                    self.wfile.flush()
                    outer.cut_after = None
                    self.close_connection = True
                    return
                if outer.hold_after is not None:
                    held, outer.hold_after = outer.hold_after, None
                    self.wfile.write(body[:held])
                    self.wfile.flush()
                    outer.holding.set()
                    outer.release.wait(30)
                    body = body[held:]
                    self.close_connection = True
                with contextlib.suppress(OSError):  # a client that gave up on a held transfer
                    self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    yield srv
    srv.close()


def _tiny_gen_pt(seed: int = 0, fill: float = 0.0) -> bytes:
    """A tiny generator in rosinality's layout (``g_ema`` + ``latent_avg``), as bytes."""
    from conftest import tiny_generator

    gen = tiny_generator(seed=seed, size=8, style_dim=8, channels={4: 4, 8: 4})
    buf = io.BytesIO()
    torch.save({"g_ema": {k: v for k, v in gen.state_dict().items() if k != "latent_avg"},
                "latent_avg": torch.full((8,), fill)}, buf)
    return buf.getvalue()


def _gen_entry(**fields: Any) -> WeightsEntry:
    base: dict[str, Any] = {"name": "tiny-gen", "kind": "generator", "plugin": "stylegan2",
                            "converter": "stylegan2-rosinality", "filename": "tiny.pt",
                            "licence": "MIT"}
    base.update(fields)
    return WeightsEntry.from_dict(base)


def _latent_avg(path: Path) -> torch.Tensor:
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    return load_stylegan2(path).generator.latent_avg


# -- Google Drive ----------------------------------------------------------------------------

def test_drive_confirm_page_is_followed_and_a_cut_transfer_resumes(
        tmp_path: Path, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gdown")
    payload = _tiny_gen_pt(fill=0.25)
    server.drive["FILEID123"] = payload
    monkeypatch.setenv("STYLEBRIDGE_GDRIVE_URL", server.url)
    manager = WeightsManager(tmp_path / "home", manifest=[
        _gen_entry(sources=[{"type": "gdrive", "id": "FILEID123"}])])
    server.cut_after = 700  # the file transfer (after the confirm page) is cut
    with pytest.raises(WeightsError, match=r"interrupted after 700 of \d+ bytes; run the same command"):
        manager.fetch("tiny-gen")
    path = manager.fetch("tiny-gen")
    assert (tmp_path / "home" / "downloads" / "tiny.pt").read_bytes() == payload
    assert torch.equal(_latent_avg(path), torch.full((8,), 0.25))
    gets = [(p.split("?")[0], r) for m, p, r in server.log if m == "GET"]
    # confirm page → file (cut) ; resumed at the confirmed URL with a range
    assert gets == [("/uc", None), ("/download", None), ("/download", "bytes=700-")]
    assert "confirm=t" in server.log[1][1] and "id=FILEID123" in server.log[1][1]


def test_drive_quota_page_is_one_line_and_the_next_source_is_used(
        tmp_path: Path, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("gdown")
    payload = _tiny_gen_pt(fill=0.5)
    server.quota.add("BUSY")
    server.files["/mirror/tiny.pt"] = payload
    monkeypatch.setenv("STYLEBRIDGE_GDRIVE_URL", server.url)
    only_drive = WeightsManager(tmp_path / "a", manifest=[
        _gen_entry(sources=[{"type": "gdrive", "id": "BUSY"}])])
    with pytest.raises(WeightsError) as info:
        only_drive.fetch("tiny-gen")
    assert str(info.value) == (f"download of tiny-gen failed: Google Drive refused the "
                               f"download: {QUOTA}")
    assert not list((tmp_path / "a" / "downloads").glob("tiny.pt*"))  # no HTML kept as a file
    both = WeightsManager(tmp_path / "b", manifest=[_gen_entry(sources=[
        {"type": "gdrive", "id": "BUSY"}, {"type": "url", "url": f"{server.url}/mirror/tiny.pt"}])])
    path = both.fetch("tiny-gen")
    assert torch.equal(_latent_avg(path), torch.full((8,), 0.5))
    assert both.index()["tiny-gen"]["source"] == f"URL {server.url}/mirror/tiny.pt"


# -- Hugging Face Hub ------------------------------------------------------------------------

def test_hub_mirror_through_huggingface_hub(tmp_path: Path, server: _Server,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("huggingface_hub")
    import huggingface_hub.constants as hf_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # only inside this test
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    payload = _tiny_gen_pt(fill=0.75)
    server.hub["org/mirror/pretrained/tiny.pt"] = payload
    manager = WeightsManager(tmp_path / "home", manifest=[_gen_entry(sources=[
        {"type": "url", "url": f"{server.url}/gone.pt"},  # 404: the mirror is the fallback
        {"type": "hf", "repo": "org/mirror", "path": "pretrained/tiny.pt", "revision": "main"}])])
    path = manager.fetch("tiny-gen")
    assert torch.equal(_latent_avg(path), torch.full((8,), 0.75))
    assert (tmp_path / "home" / "downloads" / "tiny.pt").read_bytes() == payload
    assert any(p == "/org/mirror/resolve/main/pretrained/tiny.pt" for _, p, _ in server.log)
    assert not [p for p in (tmp_path / "home" / "downloads").iterdir() if p.name != "tiny.pt"]

    missing = WeightsManager(tmp_path / "h2", manifest=[_gen_entry(sources=[
        {"type": "hf", "repo": "org/mirror", "path": "nope.pt"}])])
    with pytest.raises(WeightsError, match=r"^download of tiny-gen failed: Hugging Face "
                                           r"download failed") as info:
        missing.fetch("tiny-gen")
    assert "\n" not in str(info.value)


# -- archives --------------------------------------------------------------------------------

def test_zip_member_source(tmp_path: Path, server: _Server) -> None:
    payload = _tiny_gen_pt(fill=1.5)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("README.txt", "hello")
        zf.writestr("tiny.pt", payload)
    server.files["/tiny.pt.zip"] = buf.getvalue()
    manager = WeightsManager(tmp_path / "home", manifest=[_gen_entry(sources=[
        {"type": "url", "url": f"{server.url}/tiny.pt.zip", "archive": "tiny.pt.zip",
         "member": "tiny.pt"}])])
    path = manager.fetch("tiny-gen")
    assert torch.equal(_latent_avg(path), torch.full((8,), 1.5))
    downloads = tmp_path / "home" / "downloads"
    assert sorted(p.name for p in downloads.iterdir()) == ["tiny.pt"]  # the zip is not kept
    assert (downloads / "tiny.pt").read_bytes() == payload


def _similar_pt(seed: int) -> tuple[bytes, dict[int, torch.Tensor]]:
    """A SimilarDomains StyleSpace checkpoint for the tiny 8 px generator; style index → Δ."""
    from conftest import tiny_generator

    gen = tiny_generator(size=8, style_dim=8, channels={4: 4, 8: 4})
    g = torch.Generator().manual_seed(seed)
    state, by_index = {}, {}
    for k, layer in enumerate(x for x in gen.style_layers() if not x.is_rgb):
        value = torch.randn(1, layer.channels, generator=g)
        state[f"heads.conv_{k}.params_in"] = value
        by_index[layer.index] = value[0]
    buf = io.BytesIO()
    torch.save({"model_type": "parametrization", "patch_key": "s_delta", "state_dict": state,
                "da_type": "td", "sg2_params": {"img_size": 8, "latent_size": 8}}, buf)
    return buf.getvalue(), by_index


def _styledomain_archive() -> tuple[bytes, dict[int, torch.Tensor]]:
    """checkpoints.tar.gz in SimilarDomains' layout: ``<domain>_<suffix>/models/models_N.pt``."""
    older, _ = _similar_pt(1)
    latest, offsets = _similar_pt(2)
    joker, _ = _similar_pt(3)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("pixar_2301/models/models_100.pt", older),
                           ("pixar_2301/models/models_300.pt", latest),
                           ("pixar_indomain_2302/models/models_900.pt", joker),
                           ("joker_2303/models/models_50.pt", joker)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue(), offsets


def _domain_catalogue(url: str) -> list[WeightsEntry]:
    licence = "non-commercial test licence"
    archive = WeightsEntry.from_dict({
        "name": "sd-archive", "kind": "archive", "plugin": "styledomain", "converter": None,
        "filename": "checkpoints.tar.gz", "licence": licence, "noncommercial": True,
        "sources": [{"type": "url", "url": f"{url}/checkpoints.tar.gz"}]})
    domains = [WeightsEntry.from_dict({
        "name": name, "kind": "domain_method", "plugin": "stylespace", "converter": "styledomain",
        "filename": f"styledomain-{name}.pt", "licence": licence, "noncommercial": True,
        "sources": [{"type": "archive", "entry": "sd-archive", "select": name}]})
        for name in ("pixar", "joker", "mermaid")]
    return [archive, *domains]


def test_styledomain_domains_fetch_by_name_convert_and_resolve(
        tmp_path: Path, server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    from conftest import tiny_generator

    from stylebridge.core.checkpoint import read_header
    from stylebridge.errors import StylebridgeError
    from stylebridge.registry.resolve import load_domain, provenance_of

    data, offsets = _styledomain_archive()
    server.files["/checkpoints.tar.gz"] = data
    entries = _domain_catalogue(server.url)
    home = tmp_path / "home"
    manager = WeightsManager(home, manifest=entries)
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=entries))

    with pytest.raises(StylebridgeError, match=r"^domain method 'pixar': weights 'pixar' are "
                                               r"not installed: run `stylebridge weights fetch "
                                               r"pixar`$"):
        load_domain("pixar")
    with pytest.raises(LicenceError, match="accept it with --accept-licence"):
        manager.fetch("pixar")
    assert server.log == []  # refused before any download

    path = manager.fetch("pixar", accept_licence=True)
    manager.fetch("joker", accept_licence=True)
    assert [p for _, p, _ in server.log] == ["/checkpoints.tar.gz"]  # one archive download
    header = read_header(path)
    assert header.plugin == "stylespace"
    assert header.extra["weights"]["licence"] == "non-commercial test licence"
    assert header.extra["weights"]["licence_accepted"] is True
    assert header.extra["weights"]["source"] == "'pixar' inside sd-archive"

    method = load_domain("pixar")  # `--method pixar`
    assert method.label == "pixar" and provenance_of(method).origin == "official"
    gen = tiny_generator(size=8, style_dim=8, channels={4: 4, 8: 4})
    w_plus = gen.make_wplus([torch.randn(1, 8, generator=torch.Generator().manual_seed(0))])
    with torch.no_grad():
        base, out = gen.styles(w_plus), method.styles(gen, w_plus)
    for i in range(gen.n_style_layers):  # the latest step (models_300), not models_100
        expected = base[i] + offsets[i] if i in offsets else base[i]
        torch.testing.assert_close(out[i], expected, atol=1e-6, rtol=0)

    with pytest.raises(WeightsError, match=r"has no domain 'mermaid'"):
        manager.fetch("mermaid", accept_licence=True)
    assert manager.installed("mermaid") is None

    # a domain the catalogue does not list but the installed archive holds becomes an entry
    assert "pixar_indomain" not in manager.entries
    again = WeightsManager(home, manifest=entries)
    extra = again.entry("pixar_indomain")
    assert extra.kind == "domain_method" and extra.licence == "non-commercial test licence"
    assert again.fetch("pixar_indomain", accept_licence=True).name == "pixar_indomain.safetensors"
    assert [p for _, p, _ in server.log] == ["/checkpoints.tar.gz"]  # still one download


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_an_archive_entry_takes_only_the_archive_it_names(
        tmp_path: Path, server: _Server, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """A 6-byte text file or a torch.save zip registered as a checkpoint archive was accepted
    (its sha256 then the reference); `fetch pixar` failed later with "… has no domain"."""
    from stylebridge.cli.main import main

    licence = "non-commercial test licence"
    zipped = WeightsEntry.from_dict({
        "name": "z-archive", "kind": "archive", "plugin": "hyperdomainnet", "converter": None,
        "filename": "z-checkpoints.zip", "licence": licence, "noncommercial": True})
    member = WeightsEntry.from_dict({
        "name": "z-pixar", "kind": "domain_method", "plugin": "domain_modulation",
        "converter": "hyperdomainnet", "filename": "td_pixar.pt", "licence": licence,
        "noncommercial": True,
        "sources": [{"type": "archive", "entry": "z-archive", "member": "td_pixar.pt"}]})
    entries = [*_domain_catalogue(server.url), zipped, member]
    home = tmp_path / "home"
    manager = WeightsManager(home, manifest=entries)
    text = tmp_path / "text.pt"
    text.write_bytes(b"hello\n")
    torch_zip = tmp_path / "model.pt"
    torch.save({"a": torch.zeros(2)}, torch_zip)
    readme = _zip(tmp_path / "readme.zip", {"README.txt": b"hello"})
    good_zip = _zip(tmp_path / "good.zip", {"checkpoints/td_checkpoints/td_pixar.pt": b"x"})
    sd_tar = tmp_path / "checkpoints.tar.gz"
    sd_tar.write_bytes(_styledomain_archive()[0])
    other_tar = tmp_path / "other.tar"
    with tarfile.open(other_tar, "w") as tf:
        tf.add(text, arcname="notes.txt")
    sd, zp = "the tar archive checkpoints.tar.gz", "the zip archive z-checkpoints.zip"
    for name, src, problem in [
            ("sd-archive", text, f"is neither a zip nor a tar archive, expected {sd}"),
            ("sd-archive", torch_zip, f"is a PyTorch checkpoint (torch.save), not {sd}"),
            ("sd-archive", good_zip, f"is a zip archive, expected {sd}"),
            ("sd-archive", other_tar, "holds no StyleDomain domain "
                                      f"(<name>_*/models/models_N.pt), expected {sd}"),
            ("z-archive", text, f"is neither a zip nor a tar archive, expected {zp}"),
            ("z-archive", torch_zip, f"is a PyTorch checkpoint (torch.save), not {zp}"),
            ("z-archive", sd_tar, f"is a tar archive, expected {zp}"),
            ("z-archive", readme, f"holds none of the files the catalogue takes from {zp} "
                                  "(td_pixar.pt)")]:
        with pytest.raises(WeightsError) as info:
            manager.register(name, src)
        assert str(info.value) == f"{src}: {name}: {problem}"
    assert not (home / "index.json").exists() and not list(home.rglob("*.*"))

    # the archives they name are registered; the StyleDomain domains are listed
    manager.register("sd-archive", sd_tar)
    manager.register("z-archive", good_zip)
    assert manager.index()["sd-archive"]["domains"] == ["joker", "pixar", "pixar_indomain"]
    assert manager.installed("z-archive") is not None

    # a download that is no archive (a web page in place of the file) is discarded
    server.files["/checkpoints.tar.gz"] = b"<!DOCTYPE html><html>sign in</html>"
    fresh = WeightsManager(tmp_path / "h2", manifest=entries)
    with pytest.raises(WeightsError, match=r"^download of sd-archive failed: .*sd-archive: is "
                                           r"neither a zip nor a tar archive, expected the tar "
                                           r"archive checkpoints.tar.gz; the file was discarded$"):
        fresh.fetch("pixar", accept_licence=True)
    assert list((tmp_path / "h2" / "downloads").iterdir()) == []
    assert fresh.recorded_sha256("sd-archive") is None

    # the shipped catalogue, from the command line: one line, nothing recorded
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "h3"))
    for name, src, problem in [
            ("hdn-checkpoints", text, "is neither a zip nor a tar archive, expected the zip "
                                      "archive hdn-checkpoints.zip"),
            ("styledomain-checkpoints", torch_zip, "is a PyTorch checkpoint (torch.save), not "
                                                   "the tar archive "
                                                   "styledomain-checkpoints.tar.gz")]:
        assert main(["weights", "register", name, "--from", str(src)]) == 2
        assert capsys.readouterr().err == f"error: {src}: {name}: {problem}\n"
    assert not (tmp_path / "h3" / "index.json").exists()


# -- licences, trust on first use, sets, the CLI ---------------------------------------------

def test_trust_on_first_use(tmp_path: Path, server: _Server) -> None:
    first = _tiny_gen_pt(fill=0.1)
    server.files["/tiny.pt"] = first
    manager = WeightsManager(tmp_path / "home", manifest=[_gen_entry(sources=[
        {"type": "url", "url": f"{server.url}/tiny.pt"}])])
    manager.fetch("tiny-gen")
    recorded = manager.index()["tiny-gen"]["sha256"]
    assert recorded == hashlib.sha256(first).hexdigest()
    raw = tmp_path / "home" / "downloads" / "tiny.pt"
    raw.unlink()
    server.files["/tiny.pt"] = _tiny_gen_pt(fill=0.2)  # upstream file changed
    with pytest.raises(WeightsError, match=r"differs from the .* recorded at its first install "
                                           r"\(trust on first use\)"):
        manager.fetch("tiny-gen")
    assert not raw.exists() and manager.index()["tiny-gen"]["sha256"] == recorded


def test_cli_fetch_set_licence_gate_and_list_kind(tmp_path: Path, server: _Server, capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.main import main

    data, _ = _styledomain_archive()
    server.files["/checkpoints.tar.gz"] = data
    server.files["/tiny.pt"] = _tiny_gen_pt()
    entries = [_gen_entry(sources=[{"type": "url", "url": f"{server.url}/tiny.pt"}]),
               *_domain_catalogue(server.url)]
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=entries,
                                                       sets={"demo": ["tiny-gen", "pixar"]}))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: no question asked
    assert main(["weights", "fetch", "--set", "demo"]) == 2
    captured = capsys.readouterr()
    assert "licence of sd-archive: non-commercial test licence" in captured.err  # a notice
    assert captured.out == ""
    assert captured.err.splitlines()[-1] == ("error: sd-archive is under a non-commercial "
                                             "licence (shown above); pass --accept-licence to "
                                             "accept it and download")
    assert server.log == []
    assert main(["weights", "fetch", "--set", "demo", "--accept-licence"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "installed tiny-gen" in out and "installed pixar" in out and "joker" not in out
    requests = len(server.log)
    assert main(["weights", "fetch", "--set", "demo"]) == 0  # installed: nothing to accept or fetch
    assert "every entry of the set 'demo' is installed" in capsys.readouterr().out
    assert len(server.log) == requests
    assert main(["weights", "fetch", "--set", "nope"]) == 2
    assert "unknown set 'nope' (known: demo)" in capsys.readouterr().err

    assert main(["weights", "list", "--kind", "domain", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["weights"]
    assert [(r["name"], r["installed"], r["download"]) for r in rows] == [
        ("pixar", True, "fetch"), ("joker", False, "fetch"), ("mermaid", False, "fetch"),
        ("pixar_indomain", False, "fetch")]  # found in the installed archive
    assert main(["weights", "list", "--long", "--kind", "domain"]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    assert "non-commercial: accept with --accept-licence" in flat
    assert "trust on first use" in flat and "(recorded " in flat


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow  # a full demo run on the random preset (~5 s on CPU)
def test_demo_fetch_without_network_falls_back_with_the_reason(
        tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.main import main

    dead = f"http://127.0.0.1:{_closed_port()}"
    entries = [_gen_entry(sources=[{"type": "url", "url": f"{dead}/tiny.pt"}])]
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=entries,
                                                       sets={"demo": ["tiny-gen"]}))
    monkeypatch.setenv("COLUMNS", "300")
    out_dir = tmp_path / "demo"
    assert main(["demo", "--fetch", "--out", str(out_dir), "--device", "cpu"]) == 0
    out, notices = capsys.readouterr()  # the results on stdout, the notices on stderr
    reason = next(line for line in notices.splitlines() if "could not fetch" in line)
    # nothing came: said as an unreachable server, not as a download to resume
    assert reason == ("could not fetch the demo weights: download of tiny-gen failed: no server "
                      "could be reached (127.0.0.1); check the network connection, or install "
                      "a copy you have with `stylebridge weights register tiny-gen --from FILE`")
    assert "RANDOM WEIGHTS" in notices  # the banner of the random-weight fall-back
    assert "could not fetch" not in out
    data = json.loads((out_dir / "demo.json").read_text())
    assert data["random_weights"] is True and data["fetch"]["requested"] is True
    assert data["fetch"]["failed"] == reason.removeprefix("could not fetch the demo weights: ")


def test_demo_fetch_needs_the_licences_accepted_before_anything_runs(
        tmp_path: Path, server: _Server, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.main import main
    from stylebridge.pipelines.demo import fetch_demo_weights

    entries = _domain_catalogue(server.url)
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=entries,
                                                       sets={"demo": ["pixar"]}))
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    out_dir = tmp_path / "demo"
    assert main(["demo", "--fetch", "--out", str(out_dir)]) == 2
    captured = capsys.readouterr()
    assert "licence of sd-archive: non-commercial test licence" in captured.err  # a notice
    assert "error: sd-archive is under a non-commercial licence" in captured.err
    assert not out_dir.exists() and server.log == []
    with pytest.raises(LicenceError):  # the pipeline refuses too; it never falls back on this
        fetch_demo_weights(accept_licence=False)
    # the archive is missing on the server: the one-line reason, nothing installed
    reason = fetch_demo_weights(accept_licence=True)
    assert reason == (f"download of sd-archive failed: HTTP 404 not found "
                      f"({server.url}/checkpoints.tar.gz)")


@pytest.mark.slow  # a full demo run (~5 s on CPU)
def test_demo_fetch_installs_the_set_and_runs_on_it(tmp_path: Path, server: _Server, capsys,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """`demo --fetch`: the set's domain is fetched from the archive, converted and used by name
    (the generator and encoders stand in for installed official weights, as in test_demo)."""
    from stylebridge.cli.main import main
    from stylebridge.pipelines import demo

    gen = demo._tiny_preset(0).generator
    g = torch.Generator().manual_seed(5)
    state = {f"heads.conv_{k}.params_in": torch.randn(1, layer.channels, generator=g)
             for k, layer in enumerate(x for x in gen.style_layers() if not x.is_rgb)}
    buf = io.BytesIO()
    torch.save({"model_type": "parametrization", "patch_key": "s_delta", "state_dict": state,
                "da_type": "td", "sg2_params": {"img_size": gen.size,
                                                "latent_size": gen.style_dim}}, buf)
    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w:gz") as tf:
        info = tarfile.TarInfo("pixar_0/models/models_10.pt")
        info.size = len(buf.getvalue())
        tf.addfile(info, io.BytesIO(buf.getvalue()))
    server.files["/checkpoints.tar.gz"] = tar.getvalue()

    def trained(device: object) -> demo.DemoModels:
        models = demo._tiny_preset(0)
        models.random = False
        return models

    entries = _domain_catalogue(server.url)
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=entries,
                                                       sets={"demo": ["pixar"]}))
    monkeypatch.setattr(demo, "_official", trained)
    monkeypatch.setenv("COLUMNS", "300")
    out = tmp_path / "demo"
    assert main(["demo", "--fetch", "--accept-licence", "--out", str(out), "--device", "cpu"]) == 0
    terminal, notices = (" ".join(text.split()) for text in capsys.readouterr())
    assert "could not fetch" not in terminal and "could not fetch" not in notices
    assert "licences accepted (--accept-licence)" in notices
    data = json.loads((out / "demo.json").read_text())
    assert data["fetch"] == {"requested": True, "failed": None}
    assert data["domains"] == ["pixar"] and data["random_inputs"]["domains"] == {"pixar": False}
    assert "random StyleSpace offsets" not in data["notice"]  # only the untrained FeatureShift


def test_the_shipped_manifest_is_complete_and_says_where_each_source_is_from() -> None:
    from stylebridge.registry.sources import SOURCE_TYPES
    from stylebridge.registry.weights import load_manifest, load_sets

    entries = {e.name: e for e in load_manifest()}
    for entry in entries.values():
        assert entry.all_sources, entry.name  # `fetch` for every entry
        assert entry.licence and entry.source, entry.name
        for src in entry.sources:
            assert src["type"] in SOURCE_TYPES and src.get("found_in"), (entry.name, src)
            if src["type"] == "archive":
                assert entries[src["entry"]].kind == "archive"
                assert entries[src["entry"]].noncommercial or not entry.noncommercial
            if src.get("member"):
                assert src.get("archive"), (entry.name, src)
    domains = [e for e in entries.values() if e.kind == "domain_method"]
    assert {"pixar", "joker", "anastasia", "mermaid"} <= {e.name for e in domains}
    assert all(e.converter in ("styledomain", "hyperdomainnet", "hyperdomainnet-mapper", "mindthegap")
               and e.noncommercial for e in domains)
    # MindTheGap's published generators become deltas from the base they were tuned from
    mtg = [e for e in domains if e.converter == "mindthegap"]
    assert len(mtg) == 18 and all(e.convert_options == {"base": "@mindthegap-ffhq"} for e in mtg)
    assert entries["mindthegap-ffhq"].converter == "stylegan2-rosinality"
    assert set(load_sets()["demo"]) == {"stylegan2-ffhq-1024", "e4e-ffhq", "psp-ffhq",
                                        "fse-ffhq", "pixar", "joker"}
    assert all(name in entries for name in load_sets()["demo"])


def test_a_terminal_yes_accepts_the_licence(tmp_path: Path, server: _Server, capsys,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from stylebridge.cli.main import main

    server.files["/tiny.pt"] = _tiny_gen_pt()
    entries = [_gen_entry(sources=[{"type": "url", "url": f"{server.url}/tiny.pt"}],
                          noncommercial=True, licence="NC test licence")]
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(tmp_path / "home", manifest=entries))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Terminal("no\n"))
    assert main(["weights", "fetch", "tiny-gen"]) == 2
    assert "licence not accepted; nothing was downloaded" in capsys.readouterr().err
    assert server.log == []
    monkeypatch.setattr("sys.stdin", Terminal("y\n"))
    assert main(["weights", "fetch", "tiny-gen"]) == 0
    out, err = capsys.readouterr()
    assert "licence of tiny-gen: NC test licence" in err and "installed tiny-gen" in out
    assert "accept them and download? [y/N]" in err  # the question too: not into `> log`


def test_an_unresolvable_hub_fails_at_once_without_the_hubs_retries(tmp_path: Path,
                                                                    monkeypatch) -> None:
    """Offline, huggingface_hub retried for half a minute before failing; DNS is asked first,
    once, and its failure stops the download before the hub client is called at all."""
    import socket

    import huggingface_hub

    from stylebridge.registry import sources

    lookups: list[str] = []

    def no_dns(host, *args, **kwargs):
        lookups.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    def hub_download(*args, **kwargs):
        raise AssertionError("the hub client was called although DNS had failed")

    monkeypatch.setattr(socket, "getaddrinfo", no_dns)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hub_download)
    monkeypatch.setenv("HF_ENDPOINT", "http://no-such-host.invalid")
    with pytest.raises(sources.UnreachableError, match=r"^cannot reach no-such-host.invalid \("):
        sources.hf_download({"repo": "a/b", "path": "c.pt"}, tmp_path / "c.pt", timeout=5)
    assert lookups == ["no-such-host.invalid"]   # one lookup, no retries
    assert not (tmp_path / "c.pt").exists() and not (tmp_path / ".hf-c.pt").exists()
