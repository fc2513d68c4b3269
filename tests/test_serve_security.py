"""`stylebridge serve` exposure: encoder options checked and measured before anything is
built, only result files served, the Host and Origin checks (DNS rebinding, cross-site
uploads), uploads and the temporary work dir removed when the server stops, the notice for a
non-loopback address and a port in use refused before the models load.

The server tests start the page on 127.0.0.1 with a free port (``launch(block=False)``) and
talk to it over HTTP; the rest call the back end and the CLI directly."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.serve import ServeBackend, ServeConfig

# the values the security QA typed in the encoder field; each is refused by the field's check
BAD_OPTIONS = {
    "e4e:n_styles=0": "n_styles=0: expected an integer in 1..22",
    "e4e:n_styles=-1": "n_styles=-1: expected an integer in 1..22",
    "e4e:input_size=3": "input_size=3: expected an integer power of two in 16..1024",
    "e4e:style_dim=0": "style_dim=0: expected an integer in 1..4096",
    "e4e:n_styles=5000": "n_styles=5000: expected an integer in 1..22",
    "e4e:input_size=4096": "input_size=4096: expected an integer power of two in 16..1024",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeBackend]:
    root = tmp_path_factory.mktemp("serve-security")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STYLEBRIDGE_HOME", str(root / "no-weights"))  # the random preset
        yield ServeBackend(ServeConfig(device="cpu", work_dir=root / "work"))


# ---------------------------------------------------------------------------------------------
# 1. encoder options


def test_bad_encoder_options_are_refused_by_the_fields_check_in_one_line(
        backend: ServeBackend) -> None:
    """`n_styles=0`, `input_size=3` passed the field's check and failed in the run as an
    internal ValueError; `n_styles=5000` took 22 s of CPU outside the queue; `style_dim=0`
    raised ZeroDivisionError out of the field's handler.  The plugin's schema now refuses
    each at once, in the field and in a run."""
    for spec, words in BAD_OPTIONS.items():
        problem = backend.encoder_problem(spec)
        assert problem is not None and words in problem, (spec, problem)
        assert "\n" not in problem and problem.startswith("encoder 'e4e'"), problem
        with pytest.raises(StylebridgeError, match=words.replace(".", r"\.")):
            backend.encoder(spec)


def test_options_that_change_the_presets_shapes_are_one_short_line(backend: ServeBackend
                                                                    ) -> None:
    """`e4e:input_size=128` on the tiny preset: PyTorch's list of every missing key was
    dumped into the page; now one line naming three tensors and how many more."""
    problem = backend.encoder_problem("e4e:input_size=128")
    assert problem is not None and "of the tiny preset's weight tensors" in problem, problem
    assert " more)" in problem and len(problem) < 400 and "\n" not in problem
    with pytest.raises(StylebridgeError) as info:
        backend.encoder("e4e:input_size=128")
    assert str(info.value) == problem


_MEASURED = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, (6 * 2**30, 6 * 2**30))
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.serve import ServeBackend, ServeConfig
backend = ServeBackend(ServeConfig(device="cpu", work_dir=sys.argv[1]))
print("FIELD", backend.encoder_problem("e4e:style_dim=4096"))
try:
    backend.encoder("e4e:style_dim=4096")
except StylebridgeError as exc:
    print("RUN", exc)
"""


@pytest.mark.slow  # a fresh process (torch, the preset): ~5 s on 2 CPUs
def test_a_huge_encoder_is_measured_and_refused_before_it_is_allocated(tmp_path: Path
                                                                       ) -> None:
    """`e4e:style_dim=4096` allocated more than 8 GB.  Under a 6 GiB address-space limit
    (torch maps ~4) the field and the run now say the size and the limit in one line; had
    the encoder been built, the allocation would fail with the allocator's message."""
    env = {**os.environ, "STYLEBRIDGE_HOME": str(tmp_path / "no-weights"),
           "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", _MEASURED, str(tmp_path / "work")],
                          capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.splitlines()
    want = ("encoder 'e4e:style_dim=4096': these options build 11.9 GiB of weights, above "
            "the web page's limit of 4.0 GiB per encoder")
    assert [line.split(" ", 1)[0] for line in lines] == ["FIELD", "RUN"], proc.stdout
    assert all(line.split(" ", 1)[1].startswith(want) for line in lines), proc.stdout


# ---------------------------------------------------------------------------------------------
# 3. the Host / Origin policy (no server)


def test_the_host_policy_of_each_binding() -> None:
    from stylebridge.pipelines.serve.guard import host_name, host_policy

    assert host_name("Example.COM:7860") == "example.com" and host_name("[::1]:80") == "::1"
    local = host_policy("127.0.0.1")
    assert all(local.accepts(n) for n in ("localhost", "127.0.0.1", "::1"))
    assert not local.accepts("rebind.example") and not local.accepts("192.168.1.5")
    public = host_policy("192.168.1.5", ["box.lan"])
    assert public.accepts("192.168.1.5") and public.accepts("box.lan")
    assert not public.accepts("10.0.0.7") and not public.accepts("rebind.example")
    # every address: any IP literal (DNS rebinding needs a name), names only when allowed
    anywhere = host_policy("0.0.0.0")
    assert anywhere.accepts("10.0.0.7") and anywhere.accepts("fe80::1")
    assert not anywhere.accepts("rebind.example") and not anywhere.accepts("")


# ---------------------------------------------------------------------------------------------
# the page served on 127.0.0.1 (gradio needed)


class Served:
    def __init__(self, url: str, port: int, app: Any, root: Path, work: Path) -> None:
        self.url, self.port, self.app, self.root, self.work = url, port, app, root, work

    def get(self, path: str, **headers: str) -> Any:
        import httpx

        return httpx.get(self.url + path, headers=headers, timeout=30)

    def upload(self, name: str, data: bytes, **headers: str) -> Any:
        import httpx

        return httpx.post(self.url + "gradio_api/upload", files={"files": (name, data)},
                          headers=headers, timeout=30)


@pytest.fixture(scope="module")
def served(backend: ServeBackend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The page, started from the temporary folder itself (as `cd /tmp; stylebridge serve`)
    with the work dir outside it (as `--work-dir ~/results`): Gradio serves files of neither
    on its own."""
    if importlib.util.find_spec("gradio") is None:
        pytest.skip("gradio is not installed (pip install -e '.[serve]')")
    from stylebridge.pipelines.serve.app import launch

    root = tmp_path_factory.mktemp("served")
    systmp = root / "tmp"
    systmp.mkdir()
    port = _free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tempfile, "tempdir", str(systmp))
        mp.setenv("XDG_CACHE_HOME", str(root / "cache"))
        mp.delenv("GRADIO_TEMP_DIR", raising=False)
        mp.chdir(systmp)
        app = launch(backend, "127.0.0.1", port, block=False)
        try:
            yield Served(f"http://127.0.0.1:{port}/", port, app, root, backend.work_dir)
        finally:
            app.close()


def test_the_work_dir_is_not_served_only_the_result_files(served: Served) -> None:
    """`allowed_paths=[work_dir]` served everything under --work-dir, dotfiles included
    (`.ssh/id_rsa` came back 200).  Now a run's grid and downloads are served as copies, and
    the work dir's own files are refused."""
    from gradio_client import Client

    secret = served.work / ".ssh" / "id_rsa"
    secret.parent.mkdir(parents=True, exist_ok=True)
    secret.write_text("PRIVATE KEY")
    (served.work / "notes.txt").write_text("private notes")
    for path in (secret, served.work / "notes.txt"):
        response = served.get(f"gradio_api/file={path}")
        assert response.status_code == 403 and "PRIVATE" not in response.text, path
    client = Client(served.url, verbose=False, download_files=False)
    status, grid, _, _, images, latents, *_ = client.predict(  # then the run's id
        "e4e", ["random domain A"], "", False, False, 1.0, api_name="/on_run")
    assert "RANDOM WEIGHTS" in status
    files = [grid, images["value"], latents["value"]]
    for file, magic in zip(files, (b"\x89PNG", b"PK", b""), strict=True):
        assert not Path(file["path"]).is_relative_to(served.work), file
        response = served.get(file["url"].split(f":{served.port}/", 1)[1])
        assert response.status_code == 200 and response.content.startswith(magic), file
        assert len(response.content) > 100
    assert latents["value"]["path"].endswith("_inversion.safetensors")


def test_requests_for_another_host_name_are_refused(served: Served) -> None:
    """DNS rebinding: a page at http://rebind.example:PORT pointed at 127.0.0.1 read the
    work dir's files and probed the file system through the encoder field."""
    rebound = f"rebind.example:{served.port}"
    for path in ("", "gradio_api/info", f"gradio_api/file={served.work}/notes.txt"):
        response = served.get(path, host=rebound)
        assert response.status_code == 403, (path, response.status_code)
        assert "--allow-host rebind.example" in response.text
    assert served.upload("a.png", b"x" * 100, host=rebound).status_code == 403
    for host in (f"127.0.0.1:{served.port}", f"localhost:{served.port}"):
        assert served.get("", host=host).status_code == 200


def test_cross_site_uploads_are_refused(served: Served) -> None:
    """A cross-site no-cors multipart POST to /gradio_api/upload wrote 20 MB into the cache;
    now only the page's own origin (or none: a script, not a browser) may upload."""
    from gradio.utils import get_upload_folder

    folder = Path(get_upload_folder())
    before = sorted(folder.rglob("*"))
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{served.port + 1}"):
        response = served.upload("big.bin", b"x" * 2**20, origin=origin)
        assert response.status_code == 403 and "another site" in response.text, origin
    assert sorted(folder.rglob("*")) == before  # nothing written
    same = served.upload("ok.txt", b"fine", origin=f"http://127.0.0.1:{served.port}")
    assert same.status_code == 200 and Path(same.json()[0]).read_bytes() == b"fine"


def test_a_photo_named_with_a_leading_dot_is_read_by_the_page(served: Served,
                                                              tmp_path: Path) -> None:
    """Started from the temporary folder, `.face.png` got Gradio's "Dotfiles located in the
    temporary directory..." error instead of the page's own line: the page's upload folder
    is now outside the current folder."""
    from gradio_client import Client, handle_file
    from PIL import Image
    from skimage import data as skdata

    photo = tmp_path / ".face.png"
    Image.fromarray(skdata.astronaut()).save(photo)
    client = Client(served.url, verbose=False, download_files=False)
    _, _, status, *_ = client.predict(handle_file(str(photo)), api_name="/on_upload")
    assert status == "photo: .face.png (face found and aligned)"


def test_the_encoder_fields_handler_shows_a_plugin_failure_in_one_line(
        served: Served, backend: ServeBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """`e4e:style_dim=0` raised a bare ZeroDivisionError out of the field's handler."""
    handler = next(fn.fn for fn in served.app.fns.values() if fn.name == "on_encoder")

    def fails(spec: str) -> str:
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(backend, "encoder_problem", fails)
    assert handler("e4e:style_dim=3") == ('<span class="error">error: internal error '
                                          '(ZeroDivisionError): float division by zero</span>')
    keys = ", ".join(f'"encoder.styles.{i}.convs.4.weight"' for i in range(500))
    monkeypatch.setattr(backend, "encoder_problem", lambda spec: (_ for _ in ()).throw(
        RuntimeError(f"Error(s) in loading state_dict:\n\tMissing key(s): {keys}")))
    line = handler("e4e")
    assert line.startswith('<span class="error">error: internal error (RuntimeError): Error(s)')
    assert line.endswith("…</span>") and len(line) < 400
    monkeypatch.undo()
    assert handler("e4e:style_dim=0") == ('<span class="error">error: encoder \'e4e\': config '
                                          'style_dim=0: expected an integer in 1..4096</span>')


def test_uploads_and_the_temporary_work_dir_are_removed_when_the_server_stops(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Uploaded face photos stayed in Gradio's cache after exit, and the default temporary
    work dir was never removed.  A --work-dir given by the user is kept."""
    import httpx

    pytest.importorskip("gradio")
    from stylebridge.pipelines.serve.app import launch
    from stylebridge.pipelines.serve.encoders import EncoderChoice

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    given = ServeBackend(ServeConfig(device="cpu", work_dir=tmp_path / "given"))
    monkeypatch.setattr(given, "encoder_options", lambda: [EncoderChoice("e4e", "e4e")])
    port = _free_port()
    app = launch(given, "127.0.0.1", port, block=False)
    try:
        response = httpx.post(f"http://127.0.0.1:{port}/gradio_api/upload",
                              files={"files": ("face.png", b"a face")}, timeout=30)
        uploaded = Path(response.json()[0])
        assert uploaded.read_bytes() == b"a face"
    finally:
        app.close()
    assert not uploaded.exists()
    assert given.work_dir.is_dir()  # --work-dir: kept
    # while it runs, Gradio deletes this page's cached files on a schedule too
    assert app.delete_cache is not None and app.delete_cache[1] <= 24 * 3600
    temporary = ServeBackend(ServeConfig(device="cpu"))  # a new temporary folder
    (temporary.work_dir / "run-001").mkdir()
    temporary.close()
    assert not temporary.work_dir.exists()


# ---------------------------------------------------------------------------------------------
# 5. and 7. the command line


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[dict[str, Any]]:
    """`stylebridge serve` with the back end and the page replaced by recorders."""
    pytest.importorskip("gradio")
    from stylebridge.pipelines import serve as serve_mod
    from stylebridge.pipelines.serve import app

    calls: list[dict[str, Any]] = []

    class Recorder:
        banner = None
        start_notes = ()  # nothing to say at start
        work_dir = tmp_path / "work"

        def __init__(self, config: ServeConfig) -> None:
            calls.append({"config": config})

        def close(self) -> None:
            calls.append({"closed": True})

    def fake_launch(backend: Any, host: str, port: int, **kwargs: Any) -> None:
        calls.append({"host": host, "port": port, **kwargs})

    monkeypatch.setattr(serve_mod, "ServeBackend", Recorder)
    monkeypatch.setattr(app, "launch", fake_launch)
    return calls


def test_a_non_loopback_host_says_who_can_reach_the_page(
        recorded: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    assert main(["serve", "--host", "0.0.0.0", "--port", str(port), "--device", "cpu",
                 "--allow-host", "box.lan", "--allow-host", "box"]) == 0
    captured = capsys.readouterr()
    notice = [line for line in captured.err.splitlines() if line.strip()]
    assert len(notice) == 1, captured.err
    assert notice[0].startswith("notice: --host 0.0.0.0: the page has no authentication")
    assert f"every machine that can reach this one on port {port}" in notice[0]
    assert recorded[-2]["allow_hosts"] == ["box.lan", "box"] and recorded[-1] == {"closed": True}
    assert main(["serve", "--port", str(_free_port()), "--device", "cpu"]) == 0
    assert capsys.readouterr().err == ""  # 127.0.0.1: no notice


def test_a_port_in_use_is_refused_before_the_models_load(
        recorded: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]) -> None:
    """`serving on http://127.0.0.1:PORT` was printed, then Gradio's error naming
    GRADIO_SERVER_PORT."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--port", str(port), "--device", "cpu"]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == (f"error: --port {port}: already in use on 127.0.0.1 "
                                    "(another server is listening there): choose another "
                                    "--port or stop that one")
    assert "serving on" not in captured.out and "loading models" not in captured.out
    assert recorded == []


def test_serve_help_says_what_is_exposed(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--allow-host NAME" in text and "DNS rebinding" in text
    assert "no authentication" in text and "removed when it stops" in text


def test_the_upload_folder_is_found_without_a_home_folder(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Started inside the temporary folder with no home folder (HOME unset, a uid without a
    passwd entry), `Path.home()` raised RuntimeError as the server started: the upload folder
    goes to the temporary folder then (the cache folder needs a home)."""
    from stylebridge.pipelines.serve.app import upload_folder_parent

    def no_home() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.chdir(tmp_path)  # the temporary folder lies in the current folder
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", staticmethod(no_home))
    assert upload_folder_parent() == tmp_path / "tmp"
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/else")
    assert upload_folder_parent() == Path("/somewhere/else/stylebridge")
