"""Model files are named by their content's sha256 in run records and resume journals,
hashed once per version of the file (an on-disk cache keyed by inode, size, mtime and ctime):
a same-size file copied over a checkpoint with its time set back was taken for the one an
interrupted run used, and two records of different files read the same."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from stylebridge.registry import file_hashes


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(file_hashes.CACHE_ENV, raising=False)  # the cache under the home
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(file_hashes, "_KNOWN", {})
    return tmp_path / "home"


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = file_hashes.file_sha256

    def counted(path: str | Path) -> str:
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(file_hashes, "file_sha256", counted)
    return calls


@pytest.mark.skipif(not file_hashes.CACHED, reason="no hash caches on Windows")
def test_hashed_once_per_version_of_a_file(home: Path, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _counting(monkeypatch)
    ckpt = tmp_path / "e4e.safetensors"
    ckpt.write_bytes(b"a" * 1000)
    want = hashlib.sha256(b"a" * 1000).hexdigest()
    assert file_hashes.content_sha256(ckpt) == want and calls == [ckpt]
    monkeypatch.setattr(file_hashes, "_KNOWN", {})  # another process: the disk cache
    assert file_hashes.content_sha256(ckpt) == want and calls == [ckpt]
    assert list(json.loads((home / file_hashes.CACHE_FILE).read_text()).values()) == [want]
    # another content of the same size, its time set back: hashed again, told apart
    st = ckpt.stat()
    ckpt.write_bytes(b"b" * 1000)
    os.utime(ckpt, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ckpt.stat().st_size == st.st_size and ckpt.stat().st_mtime_ns == st.st_mtime_ns
    assert file_hashes.content_sha256(ckpt) == hashlib.sha256(b"b" * 1000).hexdigest()
    assert calls == [ckpt, ckpt]


def test_an_unusable_cache_costs_hashing_only(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.delenv(file_hashes.CACHE_ENV, raising=False)
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(blocker / "home"))
    monkeypatch.setattr(file_hashes, "_KNOWN", {})
    ckpt = tmp_path / "x.safetensors"
    ckpt.write_bytes(b"x")
    assert file_hashes.content_sha256(ckpt) == hashlib.sha256(b"x").hexdigest()
    assert file_hashes.content_sha256(tmp_path) is None  # a folder is no file
    assert file_hashes.content_sha256(tmp_path / "missing") is None
    assert file_hashes.content_sha256(None) is None


def test_a_record_names_what_was_loaded_not_a_file_copied_over_it_since(
        home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run record is written when the run ends: a domain file replaced meanwhile (same
    size) was named by its new content, while the run used the old one."""
    from conftest import tiny_generator

    from stylebridge.core.stylegan2.checkpoint import save_stylegan2
    from stylebridge.pipelines import adapter as adapter_mod
    from stylebridge.pipelines.run_record import run_record
    from stylebridge.plugins.domains.stylespace import StyleSpace
    from stylebridge.registry.resolve import load_generator, load_plugin

    monkeypatch.setattr(file_hashes, "_LOADED", {})
    monkeypatch.setattr(adapter_mod, "_SHA256", {})
    gen_path = save_stylegan2(tmp_path / "g.safetensors", tiny_generator())
    generator, _ = load_generator(str(gen_path))
    pixar = StyleSpace.for_generator(generator)
    with torch.no_grad():
        for p in pixar.parameters():
            p.fill_(0.5)
    path = pixar.save(tmp_path / "d.safetensors")
    loaded = hashlib.sha256(path.read_bytes()).hexdigest()
    gen_sha = hashlib.sha256(gen_path.read_bytes()).hexdigest()
    method = load_plugin("domain_method", str(path))
    for p in (path, gen_path):  # replaced during the run, by files of the same size
        data = p.read_bytes()
        p.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    record = run_record(None, gen_path, generator=generator, domains={"d": method})
    assert record["domain_files"]["d"]["sha256"] == loaded
    assert record["generator_sha256"] == gen_sha
    # two jobs in one process (a notebook, the web app): each record names what its own
    # objects were loaded from, not what that path held last
    again = load_plugin("domain_method", str(path))
    generator_b, _ = load_generator(str(gen_path))
    record_b = run_record(None, gen_path, generator=generator_b, domains={"d": again})
    assert record_b["domain_files"]["d"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert record_b["generator_sha256"] == hashlib.sha256(gen_path.read_bytes()).hexdigest()
    assert run_record(None, gen_path, generator=generator,
                      domains={"d": method})["domain_files"]["d"]["sha256"] == loaded
    # and the size and time beside that sha256 are the file's then, not now
    assert record["domain_files"]["d"]["size"] == len(path.read_bytes())


@pytest.mark.skipif(not file_hashes.CACHED, reason="no hash caches on Windows")
def test_the_cache_file_can_be_moved_or_turned_off(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    ckpt = tmp_path / "x.safetensors"
    ckpt.write_bytes(b"x")
    moved = tmp_path / "elsewhere" / "hashes.json"
    monkeypatch.setenv(file_hashes.CACHE_ENV, str(moved))
    monkeypatch.setattr(file_hashes, "_KNOWN", {})
    file_hashes.content_sha256(ckpt)
    assert moved.is_file() and not (tmp_path / "home").exists()
    monkeypatch.setenv(file_hashes.CACHE_ENV, "off")
    monkeypatch.setattr(file_hashes, "_KNOWN", {})
    ckpt.write_bytes(b"y")
    assert file_hashes.content_sha256(ckpt) == hashlib.sha256(b"y").hexdigest()
    assert len(json.loads(moved.read_text())) == 1  # nothing more written


def test_a_file_that_is_no_cache_is_never_written_over(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """STYLEBRIDGE_HASH_CACHE naming a checkpoint by mistake replaced it with the cache's
    JSON; a damaged cache too is left as it is (hashing again costs time, not data)."""
    ckpt = tmp_path / "x.safetensors"
    ckpt.write_bytes(b"x")
    for content in (b"\x00safetensors bytes", b"[1, 2]", b'{"k": "not a digest"}'):
        victim = tmp_path / "victim.bin"
        victim.write_bytes(content)
        monkeypatch.setenv(file_hashes.CACHE_ENV, str(victim))
        monkeypatch.setattr(file_hashes, "_KNOWN", {})
        assert file_hashes.content_sha256(ckpt) == hashlib.sha256(b"x").hexdigest()
        assert victim.read_bytes() == content
    folder = tmp_path / "a-folder"
    folder.mkdir()
    monkeypatch.setenv(file_hashes.CACHE_ENV, str(folder))
    monkeypatch.setattr(file_hashes, "_KNOWN", {})
    assert file_hashes.content_sha256(ckpt) == hashlib.sha256(b"x").hexdigest()
    assert list(folder.iterdir()) == []
