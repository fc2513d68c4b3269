"""CLIP models through open_clip, with weights from a local file (never downloaded).

``load_clip("ViT-B-32", weights="ViT-B-32.safetensors")`` builds the
architecture with ``pretrained=None`` and loads a state dict from a
``.safetensors`` file, a weights-only ``.pt``/``.bin``, or OpenAI's original
TorchScript ``ViT-B-32.pt`` (its weights are read from the archive without running
its code, see :mod:`stylebridge.core.torchscript`; OpenAI's models use QuickGELU,
which is then switched on).  Without ``weights`` the model has **random** weights
and :attr:`ClipModel.random_weights` says so; callers must surface that.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
import weakref
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.checkpoint import file_random
from stylebridge.core.io import open_safetensors
from stylebridge.core.torchscript import read_torchscript_state_dict
from stylebridge.errors import CheckpointError, StylebridgeError
from stylebridge.plugins.nets.state import read_plain_state

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass
class ClipModel:
    """An open_clip model with tensor-based preprocessing and its tokenizer."""

    name: str
    model: Any
    tokenizer: Any
    image_size: int
    random_weights: bool

    def preprocess(self, images01: Tensor) -> Tensor:
        """``[B, 3, H, W]`` in ``[0, 1]`` → resized (bicubic, antialiased) and normalised."""
        x = F.interpolate(images01, size=(self.image_size, self.image_size), mode="bicubic",
                          align_corners=False, antialias=True)
        mean = x.new_tensor(CLIP_MEAN).view(1, 3, 1, 1)
        std = x.new_tensor(CLIP_STD).view(1, 3, 1, 1)
        return (x - mean) / std

    def encode_images(self, images01: Tensor, normalize: bool = True) -> Tensor:
        emb = self.model.encode_image(self.preprocess(images01))
        return F.normalize(emb, dim=-1) if normalize else emb

    def check_texts(self, texts: Sequence[str]) -> None:
        """Refuse a text longer than the model reads: CLIP's tokenizer cut a 1,560-character
        prompt to its first tokens without a word, so two different prompts trained the same
        domain."""
        encode = getattr(self.tokenizer, "encode", None)  # open_clip's BPE tokenizer
        context = getattr(self.tokenizer, "context_length", None)
        if not callable(encode) or not isinstance(context, int):
            return  # a tokenizer that does not say: nothing to check
        room = context - 2  # the start and end tokens
        for text in texts:
            n = len(encode(text))
            if n > room:
                shown = text if len(text) <= 60 else text[:57] + "..."
                raise StylebridgeError(f"text {shown!r} is {n} tokens long; CLIP {self.name} "
                                       f"reads {room}, the rest would be ignored: shorten it")

    def encode_text(self, texts: Sequence[str], normalize: bool = True) -> Tensor:
        self.check_texts(texts)
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(list(texts)).to(device)
        emb = self.model.encode_text(tokens)
        return F.normalize(emb, dim=-1) if normalize else emb


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (OpenAI's original CLIP ``.pt``)."""
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in name for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):  # damaged: its reader names the problem
        return False


def _recorded_activation(path: Path) -> bool | None:
    """``quick_gelu`` recorded in a safetensors file's metadata (the ``clip-openai``
    converter writes ``true``, files of open_clip models ``false``); None = not recorded."""
    if path.suffix != ".safetensors":
        return None
    try:
        with open_safetensors(path) as fh:
            value = (fh.metadata() or {}).get("quick_gelu")
    except Exception:
        return None
    return None if value is None else value == "true"


class ClipActivationWarning(UserWarning):
    """A CLIP state dict whose activation (GELU or QuickGELU) is assumed, not recorded."""


class _NoPretrainedNotice(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded ... initialized randomly": stylebridge
    loads the weights itself right after (or labels the model RANDOM WEIGHTS)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("No pretrained weights loaded")


_TOKENIZERS_PARALLELISM = "TOKENIZERS_PARALLELISM"


def import_open_clip() -> Any:
    """``import open_clip``, the caller's environment left as it was: open_clip's tokenizer
    module sets ``TOKENIZERS_PARALLELISM=false`` in ``os.environ`` when it is imported (for
    Hugging Face tokenizers, which stylebridge's CLIP models do not use).  In a notebook
    kernel without ipywidgets, the ``huggingface_hub`` it imports imports ``tqdm.auto``, whose
    ``TqdmWarning: IProgress not found. Please update jupyter and ipywidgets`` is about
    progress bars stylebridge never shows: that one warning is quieted, nothing else."""
    before = os.environ.get(_TOKENIZERS_PARALLELISM)
    try:
        if "open_clip" in sys.modules:
            import open_clip
        else:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="IProgress not found",
                                        category=_tqdm_warning())
                import open_clip
    finally:
        if before is None:
            os.environ.pop(_TOKENIZERS_PARALLELISM, None)
        else:
            os.environ[_TOKENIZERS_PARALLELISM] = before
    return open_clip


def _tqdm_warning() -> type[Warning]:
    """tqdm's ``TqdmWarning`` (``Warning`` when tqdm is not installed)."""
    try:
        from tqdm import TqdmWarning
    except ImportError:
        return Warning
    return TqdmWarning


@contextlib.contextmanager
def quiet_open_clip() -> Iterator[None]:
    """Run open_clip without configuring the caller's logging, and without its misleading
    "No pretrained weights loaded" notice (stylebridge loads the weights itself right after,
    or labels the model RANDOM WEIGHTS).

    open_clip logs through the module-level ``logging.info``/``logging.warning``, which call
    ``logging.basicConfig()`` when the root logger has no handler: a ``StreamHandler`` stayed
    on the root logger and a later ``logging.basicConfig(level=logging.INFO)`` of the caller
    did nothing.  While the block runs, a root logger without handlers gets Python's own
    fallback (``logging.lastResort``: warnings and errors on stderr, as without any handler),
    so ``basicConfig`` adds nothing; it is removed afterwards."""
    root = logging.getLogger()
    stand_in: logging.Handler | None = None
    if not root.handlers:
        stand_in = logging.lastResort or logging.NullHandler()
        root.addHandler(stand_in)
    quiet = _NoPretrainedNotice()
    root.addFilter(quiet)
    try:
        yield
    finally:
        root.removeFilter(quiet)
        if stand_in is not None:
            root.removeHandler(stand_in)


#: one CLIP build at a time: each seeds torch's global generator for its random initialisation
#: and swaps the root logger's handlers, so two threads' builds (the web app's) mixed their
#: seeds (neither got its own weights) and could leave open_clip's handler installed
_CREATE_LOCK = threading.Lock()


def _create_model(open_clip: Any, name: str, quick_gelu: bool, seed: int) -> Any:
    """``open_clip.create_model`` without its misleading notice, its random initialisation
    seeded by ``seed`` (two builds are equal, also from two threads at once) without
    touching the global RNG."""
    with _CREATE_LOCK, quiet_open_clip(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.create_model(name, pretrained=None, force_quick_gelu=quick_gelu)


#: CLIP models loaded from files, shared while anyone holds them (frozen, eval mode): the
#: quality and diversity metrics of one `eval`, or the web app's successive text domains,
#: read a 350 MB ViT-B-32 once, not once each
_LOADED: weakref.WeakValueDictionary[tuple[Any, ...], ClipModel] = weakref.WeakValueDictionary()
_LOADED_LOCK = threading.Lock()


def load_clip(name: str = "ViT-B-32", weights: str | Path | None = None,
              device: str | torch.device = "cpu", *, seed: int = 0) -> ClipModel:
    """Build an open_clip model (``ViT-B-32``, ``ViT-B-16``, ...) and load local weights.

    Without ``weights`` the model keeps its random initialisation (tests only; labelled),
    seeded by ``seed`` so that two builds with the same seed are equal.  A model loaded from a
    file is shared with every later call for the same file (same size and modification time)
    and device while one of them still holds it: it is frozen, so sharing changes no number;
    do not move or train the returned model in place."""
    if weights is None or not Path(weights).is_file():
        return _load_clip(name, weights, device, seed)
    stat = Path(weights).stat()
    key = (name, str(Path(weights).resolve()), stat.st_size, stat.st_mtime_ns,
           str(torch.device(device)))
    with _LOADED_LOCK:
        model = _LOADED.get(key)
        if model is None:
            model = _load_clip(name, weights, device, seed)
            _LOADED[key] = model
        return model


def _load_clip(name: str, weights: str | Path | None, device: str | torch.device,
               seed: int) -> ClipModel:
    open_clip = import_open_clip()
    with quiet_open_clip():
        return _build_clip(open_clip, name, weights, device, seed)


def _build_clip(open_clip: Any, name: str, weights: str | Path | None,
                device: str | torch.device, seed: int) -> ClipModel:
    if name not in open_clip.list_models():
        raise StylebridgeError(f"unknown CLIP model {name!r} (e.g. ViT-B-32, ViT-B-16)")
    path = None if weights is None else Path(weights)
    torchscript = path is not None and path.is_file() and is_torchscript(path)
    recorded = None if path is None else _recorded_activation(path)
    quick_gelu = torchscript or bool(recorded)
    if path is not None and path.is_file() and not torchscript and recorded is None:
        # a plain state dict does not say which activation it was trained with: OpenAI's
        # CLIP (what the thesis and StyleGAN-NADA use) needs QuickGELU, open_clip's GELU
        warnings.warn(f"{path}: a plain CLIP state dict is loaded with GELU (open_clip/LAION "
                      "weights); OpenAI's CLIP weights need QuickGELU: convert OpenAI's .pt "
                      "with `stylebridge convert clip-openai`, which records it",
                      ClipActivationWarning, stacklevel=3)
    model = _create_model(open_clip, name, quick_gelu, seed)
    if path is not None:
        if torchscript:
            state = read_torchscript_state_dict(path)
        else:  # .safetensors or a weights-only .pt/.bin, as LPIPS's backbones
            state = read_plain_state(path, what="CLIP")
        expected = model.state_dict()
        wrong = [k for k, v in state.items() if k in expected and v.shape != expected[k].shape]
        if wrong:
            k = wrong[0]
            raise CheckpointError(f"is not a {name} state dict: {k} has shape "
                                  f"{list(state[k].shape)}, {name} needs "
                                  f"{list(expected[k].shape)} (weights of another CLIP model?)",
                                  path=path)
        result = model.load_state_dict(state, strict=False)
        if result.missing_keys:
            raise CheckpointError(f"is not a {name} state dict: {len(result.missing_keys)} missing "
                                  f"tensor(s), e.g. {result.missing_keys[0]}", path=path)
    model = model.to(device).eval().requires_grad_(False)
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple | list) else int(size)
    return ClipModel(name=name, model=model, tokenizer=open_clip.get_tokenizer(name),
                     image_size=size,
                     # a weights file whose metadata says random (the tiny preset's) is no better
                     random_weights=path is None or file_random(path))


def installed_clip_weights(name: str) -> Path | None:
    """The installed official weights of CLIP model ``name`` (``stylebridge weights fetch
    clip-vit-b-32``), or ``None``."""
    from stylebridge.registry.weights import WeightsManager

    try:
        return WeightsManager().resolve("clip", name)
    except StylebridgeError:
        return None


def clip_fetch_hint(name: str) -> str:
    """``"run `stylebridge weights fetch clip-vit-b-32`, or "`` when the manifest lists the
    official weights of CLIP model ``name``; empty otherwise."""
    from stylebridge.registry.weights import WeightsManager

    try:
        known = WeightsManager().candidates("clip", name)
    except StylebridgeError:
        return ""
    return f"run `stylebridge weights fetch {known[0].name}`, or " if known else ""
