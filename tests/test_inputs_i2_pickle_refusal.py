"""A malicious pickle (one that would call ``os.system``) is refused by every converter in one
wording that names the refused global.  Five converters said "references a non-tensor
object" (torch's weights-only loader names the global only for protocols up to 3), the
NVlabs ones named it in other words."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import pytest
import torch

from stylebridge.cli.main import main
from stylebridge.core.pickle_scan import pickle_globals, refused_global
from stylebridge.registry import get_registry

SYSTEM = f"{os.system.__module__}.system"  # posix.system on Linux and macOS
#: converters that read something else first: TorchScript (clip-openai), or that need an
#: option naming a second file before they read SRC (mindthegap: -o base=)
OTHER_FIRST = {"clip-openai", "mindthegap"}


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _files(tmp_path: Path) -> dict[str, Path]:
    marker = tmp_path / "MARKER"
    out = {}
    for protocol in (2, 4, 5):
        out[f"pickle{protocol}"] = tmp_path / f"evil{protocol}.pkl"
        out[f"pickle{protocol}"].write_bytes(pickle.dumps(_Evil(marker), protocol=protocol))
    out["torch-zip"] = tmp_path / "evil.pt"
    torch.save({"g_ema": _Evil(marker)}, out["torch-zip"])
    return out


def test_the_wording() -> None:
    assert refused_global("posix.system") == (
        "refuses to load: the pickle references `posix.system`, which is not on the "
        "allow-list (no code was run)")


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_globals_reads_the_names_without_importing(protocol: int) -> None:
    """GLOBAL (protocols 0-3) and STACK_GLOBAL (4, 5: the two strings before it; the
    module name of the second ``posix`` global comes from the memo)."""
    data = pickle.dumps([_Evil(Path("x")), io.BytesIO, os.getcwd], protocol=protocol)
    assert list(pickle_globals(io.BytesIO(data))) == [SYSTEM, "_io.BytesIO",
                                                      f"{os.getcwd.__module__}.getcwd"]


def test_every_converter_names_the_refused_global(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    files = _files(tmp_path)
    names = sorted(n for n in get_registry().names("converter") if n not in OTHER_FIRST)
    assert len(names) >= 10
    lines = {}
    for name in names:
        for kind, src in files.items():
            if name == "stylegan2-nvlabs" and kind == "torch-zip":
                continue  # a zip is no NVlabs pickle: refused as such before it is read
            code = main(["convert", name, str(src), str(tmp_path / f"{name}.safetensors")])
            err = capsys.readouterr().err.strip()
            assert code == 2, (name, kind, err)
            lines[name, kind] = err
    expected = {key: f"error: {files[key[1]]}: {refused_global(SYSTEM)}" for key in lines}
    assert lines == expected
    assert not (tmp_path / "MARKER").exists()
