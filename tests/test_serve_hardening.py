"""`stylebridge serve` after a security review: a bounded encoder cache keyed by the resolved
file, a folder named as an upload refused (Gradio's purge went on no more), no copy made
again for a reload, a bounded queue and domain list, clickjacking and caching headers, no
server path in an error line, and broken-off uploads purged by age."""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import socket
import tempfile
import time
import types
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.serve import ServeBackend, ServeConfig

pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason="gradio is not installed (pip install -e '.[dev]')")

DOMAINS = ["random domain A", "random domain B"]


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeBackend]:
    root = tmp_path_factory.mktemp("serve-hardening")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEBRIDGE_HOME", str(root / "no-weights"))  # no official weights
        yield ServeBackend(ServeConfig(device="cpu", work_dir=root / "work"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Served:
    def __init__(self, url: str, app: Any) -> None:
        self.url, self.app = url, app

    def call(self, api_name: str, data: list[Any]) -> list[Any]:
        """One queued call by hand (as a script would send it); its output."""
        import httpx

        fn_index = next(i for i, fn in self.app.fns.items() if fn.name == api_name)
        session = os.urandom(6).hex()
        joined = httpx.post(self.url + "gradio_api/queue/join", timeout=30, json={
            "data": data, "fn_index": fn_index, "session_hash": session,
            "event_data": None, "trigger_id": None})
        assert joined.status_code == 200, joined.text
        with httpx.stream("GET", self.url + f"gradio_api/queue/data?session_hash={session}",
                          timeout=60) as events:
            for line in events.iter_lines():
                if line.startswith("data:"):
                    message = json.loads(line[5:])
                    if message.get("msg") == "process_completed":
                        return list(message["output"]["data"])
        raise AssertionError("no answer")


@pytest.fixture(scope="module")
def served(backend: ServeBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from stylebridge.pipelines.serve.app import launch

    root = tmp_path_factory.mktemp("served")
    port = _free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(root))
        mp.delenv("GRADIO_TEMP_DIR", raising=False)
        app = launch(backend, "127.0.0.1", port, block=False)
        try:
            yield Served(f"http://127.0.0.1:{port}/", app)
        finally:
            app.close()


# ---------------------------------------------------------------------------------------------
# 1. the encoder cache


class _Model:
    """Stands for an encoder or an alpha fit (weak-referenceable)."""


def test_encoders_and_alpha_fits_are_kept_by_resolved_file_the_latest_two_only(
        backend: ServeBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`e4e:/p/./e4e.safetensors` and `e4e:/p/././e4e.safetensors` loaded two copies, and
    every spec typed stayed in memory for good."""
    import stylebridge.pipelines.serve.backend as module

    built: list[str] = []
    monkeypatch.setattr(module, "build_encoder", lambda spec, *a: (built.append(spec)
                                                                    or (_Model(), False)))
    fitted: list[str] = []
    monkeypatch.setattr(module, "fit_alpha_on_samples",
                        lambda enc, *a: fitted.append("fit") or _Model())
    files = [tmp_path / f"{stem}.safetensors" for stem in ("e4e", "b", "c")]
    for file in files:
        file.write_bytes(b"x")
    try:
        first, _ = backend.encoder(f"e4e:{tmp_path}/./e4e.safetensors")
        again, _ = backend.encoder(f" e4e:{tmp_path}/././e4e.safetensors")
        assert again is first and len(built) == 1
        fit, _, _ = backend.calibrator(f"e4e:{tmp_path}/./e4e.safetensors", first)
        assert backend.calibrator(f"e4e:{tmp_path}/e4e.safetensors", first)[0] is fit
        assert len(fitted) == 1
        refs = [weakref.ref(first), weakref.ref(fit)]
        del first, again, fit
        for file in files[1:]:
            encoder, _ = backend.encoder(f"e4e:{file}")
            backend.calibrator(f"e4e:{file}", encoder)
        del encoder
        gc.collect()
        assert [ref() for ref in refs] == [None, None]  # dropped, and freed
        assert len(built) == 3 and len(fitted) == 3
    finally:
        for key in [k for k in backend._cache if k[0] in ("encoder", "alpha-fit")]:
            backend._cache.pop(key, None)


# ---------------------------------------------------------------------------------------------
# 2. a folder named as an upload; 7. uploads broken off


def test_a_folder_named_as_an_upload_is_refused_and_never_purged(served: Served) -> None:
    """An upload's folder sent as the photo's path was registered for Gradio's hourly purge,
    whose os.remove failed on it (IsADirectoryError): the purge task ended for good."""
    import httpx
    from gradio.route_utils import delete_files_created_by_app

    uploaded = httpx.post(served.url + "gradio_api/upload", timeout=30,
                          files={"files": ("fb.txt", b"not a photo")}).json()[0]
    folder = str(Path(uploaded).parent)
    out = served.call("on_upload", [{"path": folder, "orig_name": "x.png",
                                     "meta": {"_type": "gradio.FileData"}}, None])
    status = out[3]
    assert "not a file" in status and "\n" not in status
    assert folder not in status and str(Path(folder).parent) not in status
    registered = [path for files in served.app.temp_file_sets for path in set.__iter__(files)]
    assert folder not in registered and uploaded in registered
    # the purge itself (files kept: other tests' page needs them) runs through without error
    kept = {path for path in registered if os.path.isfile(path)}
    blocks = types.SimpleNamespace(blocks={0: types.SimpleNamespace(keep_in_cache=kept)},
                                   temp_file_sets=served.app.temp_file_sets)
    delete_files_created_by_app(blocks, age=0)  # type: ignore[arg-type]
    assert os.path.isdir(folder)


def test_the_bodies_of_broken_off_uploads_are_purged_by_age(tmp_path: Path) -> None:
    """A client that stops mid-upload left Gradio's tmpXXXX body in the upload folder until
    the server stopped."""
    from stylebridge.pipelines.serve.uploads import purge_strays

    old, new = tmp_path / "tmpold", tmp_path / "tmpnew"
    folder = tmp_path / "0123abcd"  # a finished upload: Gradio's purge deletes its file
    folder.mkdir()
    (folder / "face.png").write_bytes(b"png")
    for path in (old, new):
        path.write_bytes(b"part of a body")
    (tmp_path / "link").symlink_to(folder / "face.png")
    hour_ago = time.time() - 7200
    for path in (old, folder, folder / "face.png", tmp_path / "link"):
        os.utime(path, (hour_ago, hour_ago), follow_symlinks=False)
    assert purge_strays(tmp_path, 3600) == [old]
    assert not old.exists() and new.is_file() and (folder / "face.png").is_file()
    assert purge_strays(tmp_path / "gone", 0) == []  # the folder removed meanwhile


# ---------------------------------------------------------------------------------------------
# 3. a reload makes no new copy


def test_a_reload_shows_the_same_copies_and_makes_no_new_one(
        backend: ServeBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each /on_restore (and each page load, for a trained domain) copied the result files
    again: a script filled the disk by calling it in a loop."""
    from stylebridge.pipelines.serve.app import build_app
    from stylebridge.pipelines.serve.backend import RunRequest

    fns = {fn.name: fn.fn for fn in build_app(backend).fns.values()}
    uploads = tmp_path / "uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))  # where the copies go
    result = backend.run(backend.load_photo(None), RunRequest("e4e", DOMAINS[:1]))
    domain = tmp_path / "sketch.safetensors"
    domain.write_bytes(b"domain")
    backend.domain_files["a sketch"] = domain
    try:
        def files() -> list[Path]:
            return sorted(p for p in uploads.rglob("*") if p.is_file())

        first = fns["on_restore"](result.run_id)
        fns["on_load"]([], "me", "a sketch")
        made = files()
        assert len(made) == 4  # grid, zip, latents, domain
        for _ in range(3):
            again = fns["on_restore"](result.run_id)
            fns["on_load"]([], "me", "a sketch")
        assert files() == made
        assert again[1] == first[1]  # the same grid copy
    finally:
        backend.domain_files.pop("a sketch", None)


# ---------------------------------------------------------------------------------------------
# 4. the queue and the domain list are bounded


def test_the_queue_is_bounded(served: Served) -> None:
    queue = served.app._queue
    assert queue.max_size == 16


def test_domains_added_from_pages_are_bounded_the_servers_own_kept(
        backend: ServeBackend, tmp_path: Path) -> None:
    """Every text domain trained (and its file) stayed offered and on disk for good."""
    own = list(backend.domains)
    method = backend.domains[DOMAINS[0]]
    trained = tmp_path / "001-first.safetensors"
    trained.write_bytes(b"domain")
    added = [backend._add_domain("first", method, True, "test")]
    backend.domain_files[added[0]] = trained
    try:
        for k in range(40):
            added.append(backend._add_domain(f"domain {k}", method, True, "test"))
        offered = backend.domain_choices()
        assert [name for name in own if name in offered] == own
        assert len(offered) - len(own) == 32
        assert offered[-32:] == added[-32:]
        assert "first" not in offered and not trained.exists()
        assert "first" not in backend.domain_files and "first" not in backend.domain_random
    finally:
        for name in added:
            for table in (backend.domains, backend.domain_random, backend.domain_sources):
                table.pop(name, None)
            backend.domain_files.pop(name, None)


# ---------------------------------------------------------------------------------------------
# 5. headers


def test_no_framing_no_sniffing_and_served_files_are_not_cached(served: Served) -> None:
    import httpx

    page = httpx.get(served.url, timeout=30)
    assert page.status_code == 200
    uploaded = httpx.post(served.url + "gradio_api/upload", timeout=30,
                          files={"files": ("face.png", b"\x89PNG not really")}).json()[0]
    file = httpx.get(served.url + f"gradio_api/file={uploaded}", timeout=30)
    refused = httpx.get(served.url, headers={"host": "rebind.example"}, timeout=30)
    assert file.status_code == 200 and refused.status_code == 403
    for response in (page, file, refused):
        assert response.headers.get("x-frame-options") == "DENY"
        assert response.headers.get("content-security-policy") == "frame-ancestors 'none'"
        assert response.headers.get("x-content-type-options") == "nosniff"
    assert file.headers.get("cache-control") == "no-store"
    assert len(file.headers.get_list("cache-control")) == 1


# ---------------------------------------------------------------------------------------------
# 6. no server path in an error line


def test_error_lines_name_no_server_folder(served: Served, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """An internal error showed the server's temporary folders (`[Errno 21] Is a directory:
    '/tmp/stylebridge-serve-uploads-…/…'`); an exception out of a handler went to the page
    in full (show_error=True)."""
    from stylebridge.pipelines.serve.app import error_line

    upload = Path(tempfile.gettempdir()) / "stylebridge-serve-uploads-x1" / "2a6f" / "face.png"
    line = error_line(IsADirectoryError(21, "Is a directory", str(upload.parent)))
    assert line == ('<span class="error">error: internal error (IsADirectoryError): '
                    "[Errno 21] Is a directory: '…/2a6f'</span>")
    line = error_line(RuntimeError(f"cannot open /srv/models/x.pt (from {upload})"))
    assert "/srv" not in line and tempfile.gettempdir() not in line and "x.pt" in line
    monkeypatch.setenv("GRADIO_TEMP_DIR", "/data/uploads")
    line = error_line(StylebridgeError("e4e:/home/me/e4e.pt: not found; /data/uploads/a/b.png"))
    assert "/home/me/e4e.pt" in line and "/data/uploads" not in line  # typed: kept
    assert served.app.show_error is False


def test_a_file_served_by_gradios_other_route_is_not_cached_either(served: Served) -> None:
    """`/gradio_api/file/<path>` (Gradio's alias of `/file=`) served the same upload without
    `Cache-Control: no-store`."""
    import httpx

    uploaded = httpx.post(served.url + "gradio_api/upload", timeout=30,
                          files={"files": ("face.png", b"\x89PNG not really")}).json()[0]
    file = httpx.get(served.url + f"gradio_api/file/{uploaded}", timeout=30)
    assert file.status_code == 200 and file.content == b"\x89PNG not really"
    assert file.headers.get_list("cache-control") == ["no-store"]
    asset = httpx.get(served.url + "favicon.ico", timeout=30)  # the same for everyone
    assert asset.headers.get("cache-control") != "no-store"
