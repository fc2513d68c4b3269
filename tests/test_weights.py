"""The weights manager against a local HTTP server on 127.0.0.1 (ranges, cut transfers, hashes)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from test_weights_sources import _Server as _SourcesServer

from stylebridge.registry.weights import WeightsEntry, WeightsError, WeightsManager


class _Server(_SourcesServer):
    """The sources tests' local server with one plain-URL file, ``/weights.pt`` (HTTP ranges,
    a transfer that can be cut); ``requests`` lists the Range header of every GET."""

    def __init__(self, payload: bytes) -> None:
        super().__init__()
        self.payload = payload
        self.files["/weights.pt"] = payload

    @property
    def requests(self) -> list[str | None]:
        return [rng for method, _, rng in self.log if method == "GET"]


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

    from stylebridge.core.checkpoint import save_checkpoint
    from stylebridge.registry import resolve

    if importlib.util.find_spec("stylebridge_example_encoder") is None:
        pytest.skip("example plugin not installed (.ci/run installs it)")
    from stylebridge.registry import get_registry

    enc = get_registry().create("encoder", "tiny-pool", n_latent=3, style_dim=4)
    ckpt = save_checkpoint(tmp_path / "tp.safetensors", enc.state_dict(), kind="encoder",
                           plugin="tiny-pool", config=enc.config())
    entry = WeightsEntry(name="tiny-pool-w", kind="encoder", plugin="tiny-pool", filename="tp.safetensors")
    manager = WeightsManager(tmp_path / "home", manifest=[entry])
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(tmp_path / "home", manifest=[entry]))
    manager.register("tiny-pool-w", ckpt)
    loaded = resolve.load_plugin("encoder", "tiny-pool")
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
    assert main(["weights", "verify"]) == 0  # nothing to verify: said, not silent
    assert " ".join(capsys.readouterr().out.split()) == (
        f"no official weights are installed in {tmp_path / 'home'} (`stylebridge weights list` "
        "shows what can be fetched)")


# -- registration never damages what is installed ------------------------------------------------

def _tree(home: Path) -> dict[str, bytes]:
    """Every file under the cache home, by relative path (staging leftovers included)."""
    return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}


def _tiny_fse(path: Path) -> Path:
    """A small file in the official FSE layout (a plain state dict); style width 8 like tiny_pt."""
    from stylebridge.plugins.encoders.fse import FSEEncoder

    enc = FSEEncoder(n_latent=8, style_dim=8, width=4, layers=(1, 1, 1, 1), feature_channels=8)
    torch.save({k: v for k, v in enc.state_dict().items() if k != "latent_avg"}, path)
    return path


def _pair_manager(home: Path) -> WeightsManager:
    """Two Drive-style entries (no URL, no published hash); converting tiny-fse reads tiny-gen's
    upstream file, like fse-ffhq reads psp-ffhq's."""
    gen = WeightsEntry(name="tiny-gen", kind="generator", plugin="stylegan2",
                       converter="stylegan2-rosinality", filename="tiny.pt", source="the README")
    fse = WeightsEntry(name="tiny-fse", kind="encoder", plugin="fse", converter="fse",
                       filename="143_enc.pth", source="the FSE README",
                       convert_options={"latent_avg": "@tiny-gen"})
    return WeightsManager(home, manifest=[gen, fse])


def test_a_failed_register_leaves_the_previous_installation_untouched(tmp_path: Path,
                                                                      tiny_pt: bytes) -> None:
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.errors import StylebridgeError
    from stylebridge.registry.resolve import load_plugin

    home = tmp_path / "home"
    manager = _pair_manager(home)
    good = tmp_path / "good.pt"
    good.write_bytes(tiny_pt)
    fse_src = _tiny_fse(tmp_path / "143_enc.pth")
    # the prerequisite is missing: refused before anything is copied
    with pytest.raises(WeightsError, match=r"converting needs 'tiny-gen' first"):
        manager.register("tiny-fse", fse_src)
    assert _tree(home) == {}
    manager.register("tiny-gen", good)
    manager.register("tiny-fse", fse_src)
    before = _tree(home)
    assert set(before) == {"downloads/tiny.pt", "downloads/143_enc.pth", "index.json",
                           "weights/tiny-gen.safetensors", "weights/tiny-fse.safetensors"}

    junk = tmp_path / "junk.pt"
    torch.save({"not": "a checkpoint of either"}, junk)  # a PyTorch file: the checks read on
    junk_bytes = junk.read_bytes()
    # without --force another file is refused by its hash; with it, by the conversion
    for name, force in (("tiny-gen", False), ("tiny-gen", True), ("tiny-fse", False),
                        ("tiny-fse", True)):
        with pytest.raises(StylebridgeError) as info:
            manager.register(name, junk, force=force)
        message = str(info.value)
        assert ("recorded at its first install" in message) is not force, message
        assert message.startswith(f"{junk}: "), message  # the user's file, not the cache copy
        assert str(home) not in message and "\n" not in message
        assert _tree(home) == before  # same files, same bytes, no junk copy, no staging folder
        assert junk.read_bytes() == junk_bytes  # the user's file is kept

    assert manager.verify() == {"tiny-fse": "ok", "tiny-gen": "ok"}
    assert (home / "downloads" / "tiny.pt").read_bytes() == tiny_pt
    assert load_stylegan2(manager.path("tiny-gen")).generator.size == 8
    # the dependent conversion still reads the good upstream file of tiny-gen
    again = manager.register("tiny-fse", fse_src)
    enc = load_plugin("encoder", f"fse:{again}")
    assert torch.equal(enc.latent_avg, torch.zeros(8, 8))  # tiny_pt's latent_avg, repeated


def test_register_replaces_a_good_installation_with_another_good_one(tmp_path: Path,
                                                                    tiny_pt: bytes) -> None:
    from conftest import tiny_generator

    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    home = tmp_path / "home"
    manager = _pair_manager(home)
    first = tmp_path / "first.pt"
    first.write_bytes(tiny_pt)
    manager.register("tiny-gen", first)
    gen = tiny_generator(seed=7, size=8, style_dim=8, channels={4: 4, 8: 4})
    second = tmp_path / "second.pt"
    torch.save({"g_ema": {k: v for k, v in gen.state_dict().items() if k != "latent_avg"},
                "latent_avg": torch.full((8,), 0.5)}, second)
    before = _tree(home)
    # the first file's sha256 is the reference (trust on first use): another needs force
    with pytest.raises(WeightsError, match=r"differs from the .* recorded at its first install "
                                           r"\(trust on first use\); to register this file "
                                           r"instead, pass --force") as info:
        manager.register("tiny-gen", second)
    assert str(info.value).startswith(f"{second}: ") and _tree(home) == before
    assert manager.recorded_sha256("tiny-gen") == hashlib.sha256(tiny_pt).hexdigest()
    path = manager.register("tiny-gen", second, force=True)
    assert (home / "downloads" / "tiny.pt").read_bytes() == second.read_bytes()
    assert manager.index()["tiny-gen"]["sha256"] == hashlib.sha256(second.read_bytes()).hexdigest()
    assert torch.equal(load_stylegan2(path).generator.latent_avg, torch.full((8,), 0.5))
    assert manager.verify() == {"tiny-gen": "ok"}
    assert not [p for p in home.iterdir() if p.name.startswith(".")]  # no staging folder left
    # registering the installed file itself (re-convert) works and copies nothing
    assert manager.register("tiny-gen", home / "downloads" / "tiny.pt") == path


def test_a_wrong_hash_register_keeps_the_users_file(tmp_path: Path, server: _Server) -> None:
    manager = _manager(tmp_path, server, url=None)
    wrong = tmp_path / "mine.pt.part"  # a user's file is never deleted, whatever its name
    wrong.write_bytes(b"x" * len(server.payload))
    with pytest.raises(WeightsError, match=r"does not match the published") as info:
        manager.register("tiny-gen", wrong)
    assert str(info.value).startswith(f"{wrong}: ") and "discarded" not in str(info.value)
    assert wrong.is_file() and manager.installed("tiny-gen") is None
    assert _tree(tmp_path / "home") == {}


# -- guidance: prerequisites up front --------------------------------------------------------------

def test_missing_message_lists_the_prerequisite_steps_first(tmp_path: Path, tiny_pt: bytes,
                                                            capsys, monkeypatch) -> None:
    from stylebridge.cli.main import main
    from stylebridge.errors import StylebridgeError
    from stylebridge.registry.resolve import load_plugin

    manager = _pair_manager(tmp_path / "home")
    message = manager.missing_message(manager.entry("tiny-fse"))
    assert message == (
        "weights 'tiny-fse' are not installed, and converting them needs 'tiny-gen' first: "
        "1) download tiny.pt from the README and run "
        "`stylebridge weights register tiny-gen --from FILE`; "
        "2) download 143_enc.pth from the FSE README and run "
        "`stylebridge weights register tiny-fse --from FILE`")
    good = tmp_path / "good.pt"
    good.write_bytes(tiny_pt)
    manager.register("tiny-gen", good)  # once the prerequisite is there, only the last step
    assert manager.missing_message(manager.entry("tiny-fse")) == (
        "weights 'tiny-fse' are not installed: download 143_enc.pth from the FSE README and run "
        "`stylebridge weights register tiny-fse --from FILE`")

    # the shipped manifest: `--encoder fse` and `weights path fse-ffhq` say that one fetch
    # installs psp-ffhq first
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "empty"))
    with pytest.raises(StylebridgeError) as info:
        load_plugin("encoder", "fse")
    assert str(info.value) == ("encoder 'fse' needs weights; weights 'fse-ffhq' are not installed: "
                               "run `stylebridge weights fetch fse-ffhq` (it fetches psp-ffhq "
                               "first)")
    assert main(["weights", "path", "fse-ffhq"]) == 2
    err = capsys.readouterr().err
    assert "(it fetches psp-ffhq first)" in err and err.count("\n") == 1
    # entries without prerequisites keep the short message
    assert main(["weights", "path", "e4e-ffhq"]) == 2
    assert "first" not in capsys.readouterr().err


# -- fetch says whether it checked a hash ---------------------------------------------------------

def test_fetch_says_whether_a_published_sha256_was_checked(tmp_path: Path, server: _Server,
                                                           capsys, monkeypatch) -> None:
    from stylebridge.cli.main import main

    hashed = {"name": "tiny-gen", "kind": "generator", "plugin": "stylegan2",
              "converter": "stylegan2-rosinality", "filename": "tiny.pt",
              "url": f"{server.url}/weights.pt", "sha256": hashlib.sha256(server.payload).hexdigest(),
              "licence": "test"}
    unhashed = {**hashed, "name": "tiny-nohash", "filename": "nohash.pt", "sha256": None}
    entries = [WeightsEntry(**hashed), WeightsEntry(**unhashed)]  # type: ignore[arg-type]
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=entries))
    monkeypatch.setenv("COLUMNS", "400")  # long tmp paths stay on one line

    with pytest.raises(SystemExit) as exit_info:
        main(["weights", "fetch", "--help"])
    assert exit_info.value.code == 0
    assert "check size and sha256 where the manifest has them" in " ".join(
        capsys.readouterr().out.split())

    assert main(["weights", "fetch", "tiny-gen", "tiny-nohash"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    digest = hashlib.sha256(server.payload).hexdigest()
    assert f"installed tiny-gen → {home / 'weights' / 'tiny-gen.safetensors'}" in out
    assert f"sha256: matches the published {digest[:16]}…" in out
    assert ("sha256: not checked, the manifest has no published hash for tiny-nohash; "
            f"recorded {digest[:16]}… (trust on first use: later fetches and "
            "`stylebridge weights verify` check it)") in out
    assert out.count("sha256:") == 2

    # a file already in downloads/ is checked too, and kept (it may be the user's only copy)
    raw = home / "downloads" / "tiny.pt"
    raw.write_bytes(b"y" * len(server.payload))
    manager = WeightsManager(home, manifest=entries)
    with pytest.raises(WeightsError, match=r"does not match the published .*delete it and run "
                                           r"the fetch again"):
        manager.fetch("tiny-gen")
    assert raw.is_file() and len(server.requests) == 2


def test_a_hash_prefix_in_the_file_name_is_checked(tmp_path: Path, server: _Server, capsys,
                                                  monkeypatch) -> None:
    """torchvision publishes the first hex digits of a file's sha256 in its name
    (``alexnet-owt-7be5be79.pth``): a download that does not start with them is discarded."""
    from stylebridge.cli.main import main

    digest = hashlib.sha256(server.payload).hexdigest()
    fields = {"kind": "generator", "plugin": "stylegan2", "converter": "stylegan2-rosinality",
              "url": f"{server.url}/weights.pt", "licence": "test"}
    good = WeightsEntry(name="good", filename=f"tiny-{digest[:8]}.pt",
                        sha256_prefix=digest[:8], **fields)  # type: ignore[arg-type]
    wrong = "0" * 8 if not digest.startswith("0" * 8) else "f" * 8
    bad = WeightsEntry(name="bad", filename=f"tiny-{wrong}.pt", sha256_prefix=wrong,
                       **fields)  # type: ignore[arg-type]
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=[good, bad]))
    monkeypatch.setenv("COLUMNS", "400")
    assert main(["weights", "fetch", "good"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"sha256: starts with the {digest[:8]} published in the file name; recorded "
            f"{digest[:16]}…") in out
    assert main(["weights", "fetch", "bad"]) == 2
    err = capsys.readouterr().err
    assert f"bad: sha256 {digest[:16]}… does not start with the published {wrong}" in err
    manager = WeightsManager(home, manifest=[good, bad])
    assert manager.installed("bad") is None and not (home / "downloads" / bad.filename).exists()


def test_the_manifest_prefixes_are_the_file_names_hashes() -> None:
    """Each published prefix is the one in its file name, and the URL ends with that name."""
    entries = [e for e in WeightsManager(Path("unused")).entries.values() if e.sha256_prefix]
    assert {e.name for e in entries} >= {"lpips-alex", "lpips-vgg"}
    for entry in entries:
        assert entry.filename.rsplit("-", 1)[1] == f"{entry.sha256_prefix}.pth"
        assert all(src["url"].endswith("/" + entry.filename) for src in entry.all_sources)


# -- `weights list` at 80 columns -----------------------------------------------------------------

def test_weights_list_is_readable_at_80_columns(tmp_path: Path, capsys, monkeypatch) -> None:
    import json

    from stylebridge.cli.main import main
    from stylebridge.registry.weights import load_manifest

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COLUMNS", "80")
    manifest = load_manifest()

    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "…" not in out and max(len(line) for line in lines) <= 80
    for entry in manifest:  # every name, kind and plugin whole, on one row
        row = next(line for line in lines if f" {entry.name} " in line)
        assert f" {entry.kind} " in row and f" {entry.plugin} " in row
        assert row.endswith(" fetch")  # every shipped entry has a source (piped: no padding)
    assert "stylebridge weights list --long" in " ".join(out.split())

    assert main(["weights", "list", "--long"]) == 0
    out = capsys.readouterr().out
    # a URL wider than 80 columns has a line of its own, whole (it was folded mid-path)
    assert "…" not in out and all(len(line) <= 80 or len(line.split()) == 1
                                  for line in out.splitlines())
    flat = " ".join(out.split())
    for entry in manifest:  # licences and sources wrap, whole
        assert " ".join(entry.licence.split()) in flat and " ".join(entry.source.split()) in flat
    fse = flat[flat.index("fse-ffhq encoder"):]
    assert fse.index("needs psp-ffhq (fetch installs it first)") < fse.index("licence")
    assert "40d365715913c9da98579312b702a82c18be219cc2a73407c4526f58eba950af" in flat

    assert main(["weights", "list", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)["weights"]}
    assert rows["fse-ffhq"]["needs"] == ["psp-ffhq"] and rows["psp-ffhq"]["needs"] == []
    assert rows["clip-vit-b-32"]["sha256"].startswith("40d36571") and rows["e4e-ffhq"]["sha256"] is None
    assert "trust on first use" in flat


def test_generator_by_name_uses_the_installed_weights(tmp_path: Path, tiny_pt: bytes,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """README: a name without a checkpoint uses the installed weights or says how to get them."""
    import stylebridge.registry.weights_checks as weights_mod
    from stylebridge.cli.main import main
    from stylebridge.errors import SpecError
    from stylebridge.registry.resolve import resolve_checkpoint as checkpoint_spec

    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    # the official file is 1024 px: this 8 px stand-in passes the resolution check as if it were
    monkeypatch.setitem(weights_mod.KNOWN_SIZES, "stylegan2-ffhq-config-f", 8)
    with pytest.raises(SpecError, match="no generator weights are installed; weights "
                                        "'stylegan2-ffhq-1024' are not installed: run "
                                        "`stylebridge weights fetch stylegan2-ffhq-1024`"):
        checkpoint_spec("stylegan2", "generator")
    src = tmp_path / "stylegan2-ffhq-config-f.pt"
    src.write_bytes(tiny_pt)
    assert main(["weights", "register", "stylegan2-ffhq-config-f", "--from", str(src)]) == 0
    installed = tmp_path / "home" / "weights" / "stylegan2-ffhq-config-f.safetensors"
    assert checkpoint_spec("stylegan2", "generator") == ("stylegan2", installed)
    assert checkpoint_spec("stylegan2-ffhq-config-f", "generator") == ("stylegan2", installed)
    capsys.readouterr()
    assert main(["generate", "--generator", "stylegan2", "--seeds", "0-1",
                 "--out", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*.png"))) >= 2


def test_register_refuses_a_stylebridge_checkpoint_in_place_of_the_upstream_file(
        tmp_path: Path, server: _Server) -> None:
    """A converted or random-weight stylebridge file stored as `tiny.pt` was then listed as
    the installed official weights."""
    from stylebridge.core.checkpoint import save_checkpoint

    ours = save_checkpoint(tmp_path / "g.safetensors", {"a": torch.zeros(1)},
                           kind="generator", plugin="stylegan2")
    manager = _manager(tmp_path, server, url=None)
    for convert in (True, False):
        with pytest.raises(WeightsError, match=r"g.safetensors: is a stylebridge checkpoint "
                                               r"\(generator 'stylegan2'\), not the upstream "
                                               r"tiny.pt that tiny-gen registers; use it "
                                               r"directly \(--generator stylegan2:"):
            manager.register("tiny-gen", ours, convert=convert)
    assert not (tmp_path / "home" / "downloads").exists() or not any(
        (tmp_path / "home" / "downloads").iterdir())


# -- what register, verify and the index check ---------------------------------------------------

def test_register_checks_the_resolution_of_a_generator_the_catalogue_knows(
        tmp_path: Path, tiny_pt: bytes, capsys, monkeypatch) -> None:
    """An 8 px generator registered as the official 1024 px FFHQ config-f file was accepted
    (and its sha256 became the reference)."""
    from stylebridge.cli.main import main

    home = tmp_path / "home"
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "400")
    src = tmp_path / "small.pt"
    src.write_bytes(tiny_pt)
    assert main(["weights", "register", "stylegan2-ffhq-config-f", "--from", str(src)]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: {src}: not usable as 'stylegan2-ffhq-config-f': expected 26 style "
                   "layers for size 1024, found 5 (a 8px generator)\n")
    assert _tree(home) == {}  # nothing installed, no sha256 recorded
    manager = WeightsManager(home)
    assert manager.recorded_sha256("stylegan2-ffhq-config-f") is None
    # the NVlabs pickles named 1024 are checked too; an entry of unknown resolution is not
    assert manager._convert_options(manager.entry("stylegan2-ffhq-1024")) == {"expect_size": 1024}
    # MindTheGap's ffhq.pt is its --size 1024 default (options/MTG_options.py)
    assert manager._convert_options(manager.entry("mindthegap-ffhq")) == {"expect_size": 1024}
    assert manager._convert_options(manager.entry("e4e-ffhq")) == {}


@pytest.fixture
def pair_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache home whose manager is :func:`_pair_manager`'s, for the CLI (wide lines)."""
    home = tmp_path / "home"
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: _pair_manager(home))
    monkeypatch.setenv("COLUMNS", "400")
    return home


def test_cli_register_force_replaces_the_reference_and_says_so(tmp_path: Path, tiny_pt: bytes,
                                                               capsys, pair_home: Path) -> None:
    from stylebridge.cli.main import main

    home = pair_home
    first, second = tmp_path / "first.pt", tmp_path / "second.pt"
    first.write_bytes(tiny_pt)
    second.write_bytes(_tiny_gen_bytes(seed=3))
    old, new = (hashlib.sha256(p.read_bytes()).hexdigest() for p in (first, second))
    assert main(["weights", "register", "tiny-gen", "--from", str(first)]) == 0
    out, err = capsys.readouterr()
    assert "notice" not in out and "notice" not in err
    assert main(["weights", "register", "tiny-gen", "--from", str(second)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"differs from the {old[:16]}… recorded" in err
    assert err.rstrip().endswith("pass --force (its sha256 becomes the reference)")
    assert _pair_manager(home).recorded_sha256("tiny-gen") == old
    assert main(["weights", "register", "tiny-gen", "--from", str(second), "--force"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert (f"notice: the reference sha256 of tiny-gen changed from {old[:16]}… to "
            f"{new[:16]}… (--force)") in out
    assert _pair_manager(home).recorded_sha256("tiny-gen") == new
    assert (home / "downloads" / "tiny.pt").read_bytes() == second.read_bytes()


def _tiny_gen_bytes(seed: int) -> bytes:
    import io

    from conftest import tiny_generator

    gen = tiny_generator(seed=seed, size=8, style_dim=8, channels={4: 4, 8: 4})
    buf = io.BytesIO()
    torch.save({"g_ema": {k: v for k, v in gen.state_dict().items() if k != "latent_avg"},
                "latent_avg": torch.zeros(8)}, buf)
    return buf.getvalue()


def test_verify_checks_the_converted_file_that_is_loaded(tmp_path: Path, tiny_pt: bytes,
                                                         capsys, pair_home: Path) -> None:
    """A truncated or deleted converted file was `ok` for verify while loading it failed."""
    from stylebridge.cli.main import main
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.errors import CheckpointError

    home = pair_home
    src = tmp_path / "gen.pt"
    src.write_bytes(tiny_pt)
    manager = _pair_manager(home)
    converted = manager.register("tiny-gen", src)
    raw = home / "downloads" / "tiny.pt"
    good = converted.read_bytes()
    reconvert = f"convert it again with `stylebridge weights register tiny-gen --from {raw}`"

    converted.write_bytes(good[:-100])
    size = len(good) - 100
    status = manager.verify()["tiny-gen"]
    assert status.startswith(f"converted file {converted} is truncated: its tensors need ")
    assert status.endswith(f"; {reconvert}")
    assert main(["weights", "verify"]) == 2
    assert " ".join(capsys.readouterr().out.split()) == " ".join(f"tiny-gen: {status}".split())
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_stylegan2(converted)  # what verify now predicts
    assert converted.stat().st_size == size

    converted.write_bytes(good + b"\0" * 8)
    assert manager.verify()["tiny-gen"].startswith(f"converted file {converted} has 8 bytes "
                                                   "after its last tensor")
    converted.unlink()
    assert manager.verify() == {"tiny-gen": f"converted file {converted} is missing; {reconvert}"}
    assert manager.installed("tiny-gen") is None  # what `weights list` says
    manager.register("tiny-gen", raw)  # the fix it names
    assert manager.verify() == {"tiny-gen": "ok"}
    assert load_stylegan2(converted).generator.size == 8
    assert main(["weights", "verify"]) == 0
    capsys.readouterr()

    raw.unlink()  # the upstream file gone as well: the fix installs it again
    status = manager.verify()["tiny-gen"]
    assert status == (f"missing file {raw} (the upstream file); download tiny.pt from the "
                      "README and run `stylebridge weights register tiny-gen --from FILE`")


def test_a_hand_edited_index_is_reported_entry_by_entry(tmp_path: Path, tiny_pt: bytes,
                                                        capsys, monkeypatch) -> None:
    """`{"NAME": {"raw": 5}}` and the like printed TypeError, KeyError or AttributeError."""
    import json

    from stylebridge.cli.main import main

    home = tmp_path / "home"
    gen = WeightsEntry(name="tiny-gen", kind="generator", plugin="stylegan2",
                       converter="stylegan2-rosinality", filename="tiny.pt", source="the README")
    others = [WeightsEntry(name=n, kind="encoder", plugin="e4e", filename=f"{n}.pt",
                           source="the README") for n in ("int-raw", "no-raw", "number")]
    entries = [gen, *others]
    monkeypatch.setattr("stylebridge.registry.weights.WeightsManager",
                        lambda *a, **k: WeightsManager(home, manifest=entries))
    monkeypatch.setenv("COLUMNS", "400")
    src = tmp_path / "gen.pt"
    src.write_bytes(tiny_pt)
    WeightsManager(home, manifest=entries).register("tiny-gen", src)
    index = home / "index.json"
    data = json.loads(index.read_text())
    data.update({"int-raw": {"raw": 5}, "no-raw": {"converted": "/etc/passwd"}, "number": 3})
    index.write_text(json.dumps(data))
    expected = {
        "int-raw": f"{index}: entry 'int-raw' has 'raw' 5, expected a file path",
        "no-raw": f"{index}: entry 'no-raw' has no 'raw' path (the installed upstream file)",
        "number": f"{index}: entry 'number' is 3, not an object"}

    assert main(["weights", "list", "--json"]) == 0
    captured = capsys.readouterr()
    rows = {row["name"]: row["installed"] for row in json.loads(captured.out)["weights"]}
    assert rows == {"tiny-gen": True, "int-raw": False, "no-raw": False, "number": False}
    warnings = captured.err.splitlines()
    assert [w.split("; ")[0] for w in warnings] == [f"warning: {m}" for m in expected.values()]
    assert all(f"`stylebridge weights fetch {name}`" in w
               for name, w in zip(expected, warnings, strict=True))

    assert main(["weights", "verify"]) == 2
    out = capsys.readouterr().out
    lines = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in out.splitlines()}
    assert lines.pop("tiny-gen") == "ok"
    assert {k: v.split("; ")[0] for k, v in lines.items()} == expected
    assert "Error" not in out

    assert main(["weights", "path", "number"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {expected['number']}; ")
    # installing over one bad entry keeps the others as they were (never lose work)
    WeightsManager(home, manifest=entries).register("tiny-gen", src)
    kept = json.loads(index.read_text())
    assert kept["number"] == 3 and kept["int-raw"] == {"raw": 5}


def test_installed_files_get_the_permissions_of_any_new_file(tmp_path: Path, tiny_pt: bytes) -> None:
    """The converted file was written 0600 (safetensors' save_file on a temporary file): other
    users of a shared cache could not read it, while the download beside it was 0644."""
    import stat

    plain = tmp_path / "plain"
    plain.write_bytes(b"")  # what this process's umask gives a new file
    mode = stat.S_IMODE(plain.stat().st_mode)
    if mode == 0o600:
        pytest.skip("the umask (0o066 or stricter) gives every new file 0600")
    src = tmp_path / "gen.pt"
    src.write_bytes(tiny_pt)
    converted = _pair_manager(tmp_path / "home").register("tiny-gen", src)
    raw = tmp_path / "home" / "downloads" / "tiny.pt"
    assert stat.S_IMODE(converted.stat().st_mode) == mode
    assert stat.S_IMODE(raw.stat().st_mode) == mode


def test_weights_list_says_when_the_cache_is_a_file(tmp_path: Path, capsys, monkeypatch) -> None:
    """STYLEBRIDGE_HOME set to a file: `list` showed "nothing installed" and exit 0, true but
    not why (only `doctor` said it)."""
    from stylebridge.cli.main import main

    home = tmp_path / "notes.json"
    home.write_text("{}")
    for cache in (home, home / "sub"):
        monkeypatch.setenv("STYLEBRIDGE_HOME", str(cache))
        assert main(["weights", "list"]) == 0
        err = " ".join(capsys.readouterr().err.split())
        assert err == (f"note: the weights cache {cache} cannot be a folder: {home} is a file, "
                       "so nothing can be installed there; set STYLEBRIDGE_HOME to a folder "
                       "(`stylebridge doctor` checks it)")
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "new"))  # not made yet: fine
    assert main(["weights", "list"]) == 0 and capsys.readouterr().err == ""


def test_weights_verify_fails_when_the_cache_is_a_file(tmp_path: Path, capsys,
                                                       monkeypatch) -> None:
    """`verify` is the check a CI job runs: with STYLEBRIDGE_HOME under a file it gave its
    note and exited 0, as if the cache were fine.  A cache that does not exist yet is fine."""
    from stylebridge.cli.main import main

    home = tmp_path / "notes.json"
    home.write_text("{}")
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(home / "sub"))
    assert main(["weights", "verify"]) == 2
    assert "cannot be a folder" in capsys.readouterr().err
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "new"))
    assert main(["weights", "verify"]) == 0
