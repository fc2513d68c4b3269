"""``stylebridge doctor``: what this installation has and lacks, for a bug report or a first run.

:func:`diagnose` returns a :class:`Diagnosis`: sections of :class:`Check` rows (an item, its
value, a status: empty for a plain fact, else ``ok`` / ``note`` / ``missing`` / ``error``,
and what it enables or what to do).  Nothing is downloaded, no network is loaded and the CUDA ops are not compiled unless
``build_cuda`` asks for it (minutes on the first build).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from stylebridge import __version__
from stylebridge.core.ops import SWITCHES, build_cuda_ops, cuda_ops_unusable, switch_states
from stylebridge.core.ops.backend import shown
from stylebridge.core.precision import cpu_has_amx_bf16
from stylebridge.errors import StylebridgeError
from stylebridge.registry import get_registry
from stylebridge.registry.registry import BUILTIN_PROVIDER
from stylebridge.registry.weights import NO_HOME, WeightsError, WeightsManager, short_path

#: optional packages: (distribution, import name, what it enables, how to install)
OPTIONAL = (
    ("dlib-bin", "dlib", "face alignment and the dlib ID metric", "pip install dlib-bin"),
    ("face-recognition-models", "face_recognition_models", "dlib's landmark and face models",
     "pip install face-recognition-models"),
    ("lpips", "lpips", "the lpips loss and metric", "pip install lpips"),
    ("open_clip_torch", "open_clip", "CLIP losses and metrics, text domains",
     "pip install open_clip_torch"),
    ("gdown", "gdown", "Google Drive downloads in `weights fetch`",
     "pip install 'stylebridge[weights]'"),
    ("huggingface_hub", "huggingface_hub", "Hugging Face mirrors in `weights fetch`",
     "pip install 'stylebridge[weights]'"),
    ("pillow-heif", "pillow_heif", "HEIC/HEIF photos (iPhones)", "pip install 'stylebridge[heif]'"),
    ("gradio", "gradio", "the web app (`stylebridge serve`)", "pip install 'stylebridge[serve]'"),
    ("playwright", "playwright", "the web app's browser test", "pip install playwright (or '.[dev]' in a checkout)"),
)


@dataclass
class Check:
    item: str
    value: str
    status: str = ""            # "" (a fact) | ok | note | missing | error
    hint: str = ""


@dataclass
class Diagnosis:
    sections: dict[str, list[Check]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, list[dict[str, str]]]:
        return {name: [asdict(c) for c in checks] for name, checks in self.sections.items()}

    @property
    def problems(self) -> list[Check]:
        """Rows whose status is ``error`` (something installed is broken)."""
        return [c for checks in self.sections.values() for c in checks if c.status == "error"]


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _system() -> list[Check]:
    rows = [Check("stylebridge", __version__),
            Check("python", f"{platform.python_version()} ({sys.executable})"),
            Check("platform", f"{platform.system()} {platform.release()} ({platform.machine()})"),
            Check("torch", torch.__version__),
            Check("torchvision", _version("torchvision") or "not installed",
                  "" if _version("torchvision") else "error", "" if _version("torchvision")
                  else "pip install torchvision (a stylebridge dependency)")]
    threads = f"{torch.get_num_threads()} threads, {os.cpu_count()} cores"
    capability = torch.backends.cpu.get_cpu_capability()
    bf16 = cpu_has_amx_bf16()
    said = {True: "AMX-BF16: --precision bf16 is faster than fp32",
            False: "no AMX-BF16: --precision bf16 is slower than fp32 here",
            None: "AMX-BF16 unknown (this torch cannot tell)"}[bf16]
    rows.append(Check("cpu", f"{threads}; {capability}; {said}",
                      "note" if bf16 is False else ""))
    return rows


def _cuda_rows(build_cuda: bool) -> list[Check]:
    rows = [Check("torch built with CUDA", torch.version.cuda or "no (a CPU build)",
                  "" if torch.version.cuda else "note",
                  "" if torch.version.cuda else "GPU runs need a CUDA build of torch")]
    if not torch.cuda.is_available():
        rows.append(Check("GPUs", "none visible", "note", "everything runs on the CPU"))
    else:
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            rows.append(Check(f"cuda:{i}", f"{props.name}, {props.total_memory / 2**30:.0f} GiB, "
                                           f"sm_{props.major}{props.minor}"))
    rows.extend(_switch_rows())
    reason = cuda_ops_unusable()
    if reason is not None:
        rows.append(Check("CUDA ops", f"not usable: {reason}", "note",
                          "the native PyTorch ops are used (same results)"))
    elif not build_cuda:
        rows.append(Check("CUDA ops", "buildable (not built now)", "note",
                          "`stylebridge doctor --build-cuda` compiles them (minutes, once)"))
    else:
        try:
            build_cuda_ops()
            rows.append(Check("CUDA ops", "built and loaded", "ok"))
        except StylebridgeError as exc:
            rows.append(Check("CUDA ops", str(exc), "error",
                              "run with --debug; `stylebridge docs speed` lists what the build needs"))
    return rows


def _switch_rows() -> list[Check]:
    """A row per ops switch (``STYLEBRIDGE_OPS``, ...): its value in effect, and an error row
    for a value that is not one of its choices (every command that builds a network refuses
    it)."""
    rows = []
    for env, value, problem in switch_states():
        valid, what = SWITCHES[env]
        item = f"{what} ({env})"
        if problem is None:
            rows.append(Check(item, value))
        else:
            rows.append(Check(item, f"{shown(value)}: not one of {', '.join(valid)}", "error",
                              f"unset {env} or set it to one of them (commands that build a "
                              "network refuse it)"))
    return rows


def _packages() -> list[Check]:
    rows = []
    for dist, module, enables, install in OPTIONAL:
        version = _version(dist)
        if version is None or importlib.util.find_spec(module) is None:
            rows.append(Check(dist, "not installed", "missing", f"{install} ({enables})"))
        else:
            rows.append(Check(dist, version, "ok", enables))
    if _version("face-recognition-models"):
        from stylebridge.pipelines.align import LANDMARKS_MODEL, dlib_model_path

        try:
            rows.append(Check("dlib landmark model", str(dlib_model_path(LANDMARKS_MODEL)),
                              "ok"))
        except StylebridgeError as exc:
            rows.append(Check("dlib landmark model", str(exc), "error",
                              "pip install --force-reinstall face-recognition-models"))
    return rows


def _weights() -> list[Check]:
    """The cache: where it is (a folder), what is installed and usable (files there, the
    converted ones loadable; not re-hashed: `weights verify` does), what index.json holds that
    is broken or unknown to this catalogue, what the demo set lacks."""
    manager = WeightsManager()
    rows = _cache_rows(manager)
    try:
        index, problems = manager.index(), manager.index_problems()
    except WeightsError as exc:
        rows.append(Check("weights index", str(exc), "error",
                          "the installed files stay in downloads/ and weights/: register them "
                          "again (`stylebridge weights register NAME --from FILE`)"))
        index, problems = {}, {}
    known = [name for name in sorted(index) if name in manager.entries]
    unknown = [name for name in sorted(index) if name not in manager.entries]
    status = manager.verify(known, rehash=False) if known else {}
    installed = [name for name in known if status[name] == "ok"]
    rows.append(Check("installed official weights", ", ".join(installed) or "none",
                      "ok" if installed else "note",
                      "" if installed else "`demo` and `serve` run random-weight presets "
                      "until you `stylebridge weights fetch`; adapt, invert and the other "
                      "commands need the files (or --fetch) (see `stylebridge weights list`)"))
    for name in known:
        if status[name] != "ok":
            rows.append(Check(f"weights {name}", status[name], "error"))
    for name, problem in problems.items():
        rows.append(Check(f"index.json entry {name!r}", problem, "error"))
    if unknown:
        rows.append(Check("unknown entries in index.json", ", ".join(unknown), "note",
                          "not in this stylebridge's catalogue (`stylebridge weights list`): "
                          "nothing loads them; delete them from index.json"))
    missing = [name for name in manager.sets.get("demo", []) if name not in installed]
    if missing:
        rows.append(Check("demo set", f"missing {', '.join(missing)}", "note",
                          "`stylebridge weights fetch --set demo`"))
    return rows


_CACHE = "cache (STYLEBRIDGE_HOME)"
_FOLDER = "cache folder"
_FIX = "set STYLEBRIDGE_HOME to a folder you can write to"


def _writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (a probe, removed at once; a permission
    check would pass a read-only mount for root)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".stylebridge-probe-"):
            return True
    except OSError:
        return False


def _cache_rows(manager: WeightsManager) -> list[Check]:
    """Where the cache is and whether `weights fetch` can install there: it exists (or can be
    created) and is writable.  Nothing is created."""
    try:
        home = manager.home
    except WeightsError:
        return [Check(_CACHE, "none", "error", NO_HOME.partition(": ")[2] + " (no home "
                      "folder: HOME unset and this user has no passwd entry)")]
    shown = short_path(home)
    try:
        existing = home
        while not existing.exists():  # the folder, or the nearest one above it that exists
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as exc:  # a name too long, a loop of links
        return [Check(_CACHE, shown, "error", f"unusable ({exc.strerror or exc}); {_FIX}")]
    if existing == home and not is_dir:
        return [Check(_CACHE, shown, "error",
                      "is a file, not a folder: nothing can be installed there; set "
                      "STYLEBRIDGE_HOME to a folder (or move the file away)")]
    rows = [Check(_CACHE, shown)]
    if not is_dir:  # XDG_CACHE_HOME (or a folder above) is a file
        rows.append(Check(_FOLDER, f"cannot be created: {short_path(existing)} is a file, not "
                          "a folder", "error", f"move the file away or {_FIX}"))
    elif not _writable(existing):
        state = "exists" if existing == home else \
            f"cannot be created in {short_path(existing)}"
        rows.append(Check(_FOLDER, f"{state}, not writable", "error",
                          f"`weights fetch` cannot install there: make it writable or {_FIX}"))
    else:
        rows.append(Check(_FOLDER, "exists, writable" if existing == home else
                          "not created yet (the first `weights fetch` does), creatable", "ok"))
    return rows


def _plugins() -> list[Check]:
    registry = get_registry()
    providers: dict[str, int] = {}
    for entry in registry.all_entries():
        providers[entry.provider] = providers.get(entry.provider, 0) + 1
    rows = [Check(f"plugins from {name}", f"{count}") for name, count in
            sorted(providers.items(), key=lambda kv: (kv[0] != BUILTIN_PROVIDER, kv[0]))]
    for failure in registry.failures:
        rows.append(Check(f"plugin package {failure.provider}",
                          f"{failure.entry_point}: {failure.error}", "error",
                          "fix or uninstall that package; every other plugin works"))
    return rows


def diagnose(build_cuda: bool = False) -> Diagnosis:
    """The report: system, CUDA, optional packages, weights, plugins."""
    return Diagnosis(sections={
        "system": _system(), "cuda": _cuda_rows(build_cuda), "packages": _packages(),
        "weights": _weights(), "plugins": _plugins()})


__all__ = ["OPTIONAL", "Check", "Diagnosis", "diagnose"]
