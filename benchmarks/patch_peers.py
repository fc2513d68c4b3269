"""Patch the peers' copies (outside the repository) where toolchains newer than theirs break
them; print one line per change.  Used by ``gpu_speed.sh``; found by building their plugins
with nvcc 13 and torch 2.14 on a CPU machine.

    python benchmarks/patch_peers.py PEERS_DIR

rosinality/stylegan2-pytorch (bef283a) builds unchanged (``x.type()`` only warns).
NVlabs/stylegan2-ada-pytorch (d72cc7d): ``torch_utils/custom_ops.py`` imports the built plugin
by name, relying on ``torch.utils.cpp_extension.load`` having put the build folder on
``sys.path``, which new torch no longer does, so both plugins "fail to build" and NVlabs falls
back to its reference ops; the patch uses the module ``load()`` returns.  ``dnnlib/util.py``
imports ``distutils``, which Python 3.12 removed: its one function is defined in place.
"""

from __future__ import annotations

import sys
from pathlib import Path

LOAD = "torch.utils.cpp_extension.load(name=module_name, "


def patch_nvlabs(root: Path) -> list[str]:
    path = root / "nvlabs" / "torch_utils" / "custom_ops.py"
    if not path.is_file():
        return []
    text = path.read_text()
    import_line = "        module = importlib.import_module(module_name)\n"
    if text.count(LOAD) != 2 or import_line not in text:
        return [f"{path.relative_to(root)}: not the expected code, left unpatched"]
    text = text.replace(f"            {LOAD}", f"            module = {LOAD}")
    text = text.replace(import_line, "")
    path.write_text(text)
    return [f"{path.relative_to(root)}: use the module cpp_extension.load() returns instead of "
            "importlib.import_module(name) (new torch no longer puts the build folder on "
            "sys.path)"]


def patch_nvlabs_distutils(root: Path) -> list[str]:
    """Python 3.12 removed ``distutils``; dnnlib/util.py imports its ``strtobool`` (used only
    by an interactive yes/no prompt)."""
    path = root / "nvlabs" / "dnnlib" / "util.py"
    line = "from distutils.util import strtobool\n"
    if not path.is_file() or line not in path.read_text():
        return []
    shim = ("def strtobool(val):  # distutils.util.strtobool (distutils left Python in 3.12)\n"
            "    val = val.lower()\n"
            "    if val in ('y', 'yes', 't', 'true', 'on', '1'):\n"
            "        return 1\n"
            "    if val in ('n', 'no', 'f', 'false', 'off', '0'):\n"
            "        return 0\n"
            "    raise ValueError(f'invalid truth value {val!r}')\n")
    path.write_text(path.read_text().replace(line, shim))
    return [f"{path.relative_to(root)}: distutils.util.strtobool defined in place (Python 3.12 "
            "has no distutils)"]


def main() -> None:
    root = Path(sys.argv[1])
    for line in patch_nvlabs(root) + patch_nvlabs_distutils(root):
        print(line)


if __name__ == "__main__":
    main()
