"""Patch the peers' copies (outside the repository) where toolchains newer than theirs break
them; print one line per change.  Used by ``gpu_speed.sh``; found by building their plugins
with nvcc 13 and torch 2.14 on a CPU machine.

    python benchmarks/patch_peers.py PEERS_DIR

rosinality/stylegan2-pytorch (bef283a) builds unchanged (``x.type()`` only warns).
NVlabs/stylegan2-ada-pytorch (d72cc7d): ``torch_utils/custom_ops.py`` imports the built plugin
by name, relying on ``torch.utils.cpp_extension.load`` having put the build folder on
``sys.path``, which new torch no longer does, so both plugins "fail to build" and NVlabs falls
back to its reference ops; the patch uses the module ``load()`` returns.
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


def main() -> None:
    root = Path(sys.argv[1])
    for line in patch_nvlabs(root):
        print(line)


if __name__ == "__main__":
    main()
