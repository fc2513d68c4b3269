"""The weights manager against a local HTTP server on 127.0.0.1 (ranges, cut transfers, hashes)."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from stylebridge.core.weights import WeightsEntry, WeightsError, WeightsManager


class _Server:
    """Serves one payload; supports Range; can cut the next transfer after N bytes."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.cut_after: int | None = None
        self.requests: list[str | None] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer.requests.append(self.headers.get("Range"))
                if self.path != "/weights.pt":
                    self.send_error(404, "not found")
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(outer.payload) - 1}/{len(outer.payload)}")
                else:
                    self.send_response(200)
                body = outer.payload[start:]
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.cut_after is not None:
                    self.wfile.write(body[:outer.cut_after])
                    self.wfile.flush()
                    outer.cut_after = None
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def tiny_pt(tmp_path: Path) -> bytes:
    from conftest import tiny_generator

    gen = tiny_generator(size=8, style_dim=8, channels={4: 4, 8: 4})
    state = {k: v for k, v in gen.state_dict().items() if k != "latent_avg"}
    path = tmp_path / "src.pt"
    torch.save({"g_ema": state, "latent_avg": torch.zeros(8)}, path)
    return path.read_bytes()


@pytest.fixture
def server(tiny_pt: bytes) -> Iterator[_Server]:
    srv = _Server(tiny_pt)
    yield srv
    srv.close()


def _manager(tmp_path: Path, server: _Server, **overrides: object) -> WeightsManager:
    fields = {"name": "tiny-gen", "kind": "generator", "plugin": "stylegan2",
              "converter": "stylegan2-rosinality", "filename": "tiny.pt",
              "url": f"{server.url}/weights.pt", "size": len(server.payload),
              "sha256": hashlib.sha256(server.payload).hexdigest(), "licence": "test"}
    fields.update(overrides)
    return WeightsManager(tmp_path / "home", manifest=[WeightsEntry(**fields)])  # type: ignore[arg-type]


def test_fetch_converts_records_and_resolves(tmp_path: Path, server: _Server) -> None:
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    manager = _manager(tmp_path, server)
    path = manager.fetch("tiny-gen")
    assert path == tmp_path / "home" / "weights" / "tiny-gen.safetensors"
    assert load_stylegan2(path).generator.size == 8
    raw = tmp_path / "home" / "downloads" / "tiny.pt"
    assert raw.read_bytes() == server.payload
    assert manager.path("tiny-gen") == path
    assert manager.resolve("generator", "stylegan2") == path
    assert manager.verify() == {"tiny-gen": "ok"}
    manager.fetch("tiny-gen")  # already there: no second download
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_a_range_request(tmp_path: Path, server: _Server) -> None:
    manager = _manager(tmp_path, server)
    server.cut_after = 1000
    with pytest.raises(WeightsError, match=r"interrupted after 1000 .*run the same command again"):
        manager.fetch("tiny-gen")
    part = tmp_path / "home" / "downloads" / "tiny.pt.part"
    assert part.stat().st_size == 1000
    assert not (tmp_path / "home" / "downloads" / "tiny.pt").exists()
    manager.fetch("tiny-gen")
    assert server.requests == [None, "bytes=1000-"]
    assert (tmp_path / "home" / "downloads" / "tiny.pt").read_bytes() == server.payload
    assert not part.exists()


def test_wrong_hash_is_discarded_and_not_installed(tmp_path: Path, server: _Server) -> None:
    manager = _manager(tmp_path, server, sha256="0" * 64)
    with pytest.raises(WeightsError, match=r"sha256 .* does not match") as info:
        manager.fetch("tiny-gen")
    assert "\n" not in str(info.value)
    downloads = tmp_path / "home" / "downloads"
    assert list(downloads.iterdir()) == []
    assert manager.installed("tiny-gen") is None


def test_http_errors_and_missing_url(tmp_path: Path, server: _Server) -> None:
    manager = _manager(tmp_path, server, url=f"{server.url}/nope.pt")
    with pytest.raises(WeightsError, match="HTTP 404"):
        manager.fetch("tiny-gen")
    manager = _manager(tmp_path, server, url=None, source="the README")
    with pytest.raises(WeightsError, match=r"download tiny.pt from the README and run "
                                           r"`stylebridge weights register tiny-gen --from FILE`"):
        manager.fetch("tiny-gen")
    with pytest.raises(WeightsError, match="did you mean 'tiny-gen'"):
        manager.entry("tiny-gem")


def test_register_from_a_local_file_and_verify_detects_corruption(tmp_path: Path,
                                                                 server: _Server) -> None:
    src = tmp_path / "mine.pt"
    src.write_bytes(server.payload)
    manager = _manager(tmp_path, server, url=None)
    path = manager.register("tiny-gen", src)
    assert path.name == "tiny-gen.safetensors" and server.requests == []
    raw = tmp_path / "home" / "downloads" / "tiny.pt"
    raw.write_bytes(server.payload[:-10] + b"0123456789")
    assert manager.verify()["tiny-gen"].startswith("sha256 mismatch")
    wrong = tmp_path / "other.pt"
    wrong.write_bytes(b"x" * len(server.payload))
    with pytest.raises(WeightsError, match="does not match"):
        manager.register("tiny-gen", wrong)


def test_plugins_resolve_names_from_the_cache(tmp_path: Path, server: _Server, monkeypatch) -> None:
    """`--encoder NAME` without a path loads the installed weights, or says how to get them."""
    import importlib.util

    from stylebridge.core import pipeline
    from stylebridge.core.checkpoint import save_checkpoint

    if importlib.util.find_spec("stylebridge_example_encoder") is None:
        pytest.skip("example plugin not installed (.ci/run installs it)")
    from stylebridge.registry import get_registry

    enc = get_registry().create("encoder", "tiny-pool", n_latent=3, style_dim=4)
    ckpt = save_checkpoint(tmp_path / "tp.safetensors", enc.state_dict(), kind="encoder",
                           plugin="tiny-pool", config=enc.config())
    entry = WeightsEntry(name="tiny-pool-w", kind="encoder", plugin="tiny-pool", filename="tp.safetensors")
    manager = WeightsManager(tmp_path / "home", manifest=[entry])
    monkeypatch.setattr("stylebridge.core.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(tmp_path / "home", manifest=[entry]))
    manager.register("tiny-pool-w", ckpt)
    loaded = pipeline.load_plugin("encoder", "tiny-pool")
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(),
                                                  enc.state_dict().values(), strict=True))


def test_weights_cli(tmp_path: Path, capsys, monkeypatch) -> None:
    import json

    from stylebridge.cli.main import main

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    assert main(["weights", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    names = {row["name"] for row in data["weights"]}
    assert {"stylegan2-ffhq-1024", "e4e-ffhq", "fse-ffhq", "styleres-ffhq", "arcface-irse50",
            "fid-inception", "clip-vit-b-32"} <= names
    assert all(row["licence"] for row in data["weights"]) and data["home"] == str(tmp_path / "home")
    assert main(["weights", "path", "e4e-ffhq"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: weights 'e4e-ffhq' are not installed") and err.count("\n") == 1
    assert main(["weights", "register", "fse-ffhq", "--from", str(tmp_path / "none.pth")]) == 2
    assert "no such file" in capsys.readouterr().err
