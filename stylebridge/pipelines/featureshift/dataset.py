"""FeatureShift training data: the streaming dataset builder (the reader is
:mod:`stylebridge.pipelines.featureshift.reader`).

``stylebridge featureshift build-dataset`` runs the first steps of the thesis pipeline
("Improving the gap") once per image and stores the results, so that training only
runs FeatureShift and the generator:

* ``w_guide`` ``[L, D]``: the guiding encoder's latents ``w_E`` of the real image
  (e4e, or FSE in latents-only mode, or any registered encoder);
* ``w_inv``/``f_inv``: the FSE inversion ``(w_F, F)`` of the e4e-inverted image
  ``G(w_E)`` (``F`` replaces generator activation ``K``; ``[L, D]`` and ``[C, H, W]``);
* ``w_real``/``f_real``: the FSE inversion of the real image (inversion loss, inference);
* ``image``: the real image, ``uint8 [3, S, S]`` at ``image_size`` (inversion target);
* per domain ``d`` (optional, ``per_domain=True``): ``delta`` ``[C, H, W]`` =
  ``G^K(s(w_E)) - G^K(s_d(w_E))`` (sign convention :data:`DELTA_SIGN`) and ``target``
  ``uint8 [3, S, S]`` = the e4e domain inversion ``G(s_d(w_E))``.  Without them the
  trainer computes both on the fly from ``w_guide`` (same functions, full precision).

Layout of ``DATASET/``::

    index.json                  format, settings, domains, shards (progress)
    domains/000.safetensors     each domain method, re-saved as a stylebridge checkpoint
    shards/00000.safetensors    per-image tensors of images [0, shard_size), rows in order
    shards/00000.d000.safetensors   per-domain tensors of shard 0, domain 0 (same rows)

Shard ``j`` covers the sorted inputs ``[j·shard_size, (j+1)·shard_size)``; unreadable
images are skipped (``index.json`` lists them) so a shard may hold fewer rows; its
metadata names the source file of every row.  Every file is written atomically and
``index.json`` is rewritten after each file, so an interrupted build resumes where it
stopped (finished files are skipped) and the builder holds at most one shard in memory.
A resumed build checks the header of every finished file and builds a damaged one again;
the reader refuses a damaged file up front (both use
:func:`~stylebridge.pipelines.featureshift.reader.shard_problem`).  A build that encodes
no image leaves no dataset behind (:class:`NothingEncoded`).

"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from stylebridge.core.batch import BatchReport, expand_inputs
from stylebridge.core.checkpoint import is_random_weights, read_header, save_checkpoint
from stylebridge.core.device import resolve_device
from stylebridge.core.interfaces import DomainMethod, Encoder
from stylebridge.core.io import open_safetensors, remove_stale_temporaries, write_json
from stylebridge.core.limits import MAX_BATCH, MAX_DATASET_IMAGE_SIZE, MAX_SHARD_SIZE, check_range
from stylebridge.core.stylegan2.generator import Generator
from stylebridge.core.tensorfile import save_tensors
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines.adapter import attach_encoder, check_inversion
from stylebridge.pipelines.featureshift.render import images_to_uint8
from stylebridge.pipelines.photos import is_random, random_parts, weights_path
from stylebridge.pipelines.resume import hold_out
from stylebridge.plugins.renderers.featureshift import DELTA_SIGN, domain_quantities

FORMAT = "stylebridge-featureshift-dataset"
VERSION = 1
INDEX = "index.json"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
BASE_KEYS = ("image", "w_guide", "w_inv", "f_inv", "w_real", "f_real")
DOMAIN_KEYS = ("delta", "target")


class DatasetError(StylebridgeError):
    """A FeatureShift dataset that is missing, incomplete or inconsistent."""


class NothingEncoded(DatasetError):
    """No input image could be encoded; ``report`` lists the skipped files (the CLI prints
    it), ``outcome`` says what became of the dataset folder."""

    def __init__(self, message: str, report: BatchReport, *, path: Path, outcome: str) -> None:
        super().__init__(message, path=path)
        self.report, self.outcome = report, outcome


def _state_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        h.update(key.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def _entry_ok(shard: dict[str, Any], n_domains: int) -> bool:
    """Whether a shard entry of ``index.json`` is what a build writes."""
    ints = [shard.get(k) for k in ("start", "stop")] + ([] if shard.get("rows") is None
                                                         else [shard.get("rows")])
    domains = shard.get("domains")
    return (isinstance(shard.get("file"), str) and all(type(n) is int for n in ints)
            and isinstance(domains, list) and len(domains) == n_domains)


def _shard_name(j: int) -> str:
    return f"shards/{j:05d}.safetensors"


def _domain_shard_name(j: int, d: int) -> str:
    return f"shards/{j:05d}.d{d:03d}.safetensors"


def _group_by_shape(images: Sequence[Tensor]) -> list[list[int]]:
    """Runs of consecutive indices whose images have the same shape (encoders need a batch)."""
    runs: list[list[int]] = []
    for i, img in enumerate(images):
        if runs and images[runs[-1][0]].shape == img.shape:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


# ---------------------------------------------------------------------------------------------
# Builder


@dataclass
class BuildResult:
    """What :func:`build_dataset` did."""

    root: Path
    report: BatchReport
    n_rows: int
    n_shards: int
    skipped_files: int  # dataset files already present from an earlier run
    random_parts: list[str] = field(default_factory=list)  # networks on random weights
    repaired: list[str] = field(default_factory=list)  # damaged files built again (notices)


def _feature(inversion: Any, layer: int, what: str) -> Tensor:
    feat = inversion.features.get(layer)
    if feat is None:
        have = sorted(inversion.features)
        raise DatasetError(f"{what} returned no feature at generator layer {layer} (it returned "
                           f"{have or 'none'}); use an FSE-like encoder in a feature mode, e.g. "
                           "fse:CKPT:mode=features")
    return feat


def random_inputs(generator: Generator, encoder: Encoder, guide: Encoder,
                  domains: Sequence[tuple[str, DomainMethod]]) -> dict[str, Any]:
    """Which networks a dataset is built from hold random (untrained) weights, as recorded
    when each was loaded (``index.json``'s ``random_inputs``; named by
    :func:`~stylebridge.pipelines.photos.random_parts`, labelled by ``build-dataset``, the
    trainer and the trained model's header)."""
    return {"encoder": is_random(encoder), "guide": is_random(guide),
            "generator": is_random(generator),
            "domains": {name: is_random(method) for name, method in domains}}


def build_dataset(
    inputs: Sequence[Path],
    out: Path,
    *,
    generator: Generator,
    encoder: Encoder,
    guide: Encoder,
    domains: Sequence[tuple[str, DomainMethod]],
    layer: int | None = None,
    image_size: int = 256,
    shard_size: int = 256,
    batch_size: int = 4,
    per_domain: bool = True,
    dtype: str = "float16",
    device: torch.device | str = "cpu",
    sources: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
    notice: Callable[[str], None] | None = None,
) -> BuildResult:
    """Encode every image of ``inputs`` once and write the shards under ``out``.

    ``encoder`` is the FSE-like inverter (its inversion must hold a feature at generator
    activation ``layer``; ``None`` = the only feature it returns), ``guide`` the guiding
    encoder (only its ``w_plus`` is used), ``domains`` ``(name, method)`` pairs.
    ``sources`` (JSON) records where the networks came from.  ``progress(n)`` is called
    with the number of work units done (one per image, plus one per image and domain
    with ``per_domain``).  Resumes an interrupted build of the same settings; a finished
    file that is damaged is named (``notice(text)``, and :attr:`BuildResult.repaired`) and
    built again.  When no image can be encoded it raises :class:`NothingEncoded` and removes
    the files it wrote, unless it resumed a build with finished shards.
    """
    out = Path(out)
    # another build into `out` while this one goes: one line (held until this returns)
    hold = hold_out(out, "featureshift build-dataset")  # noqa: F841
    device = resolve_device(str(device))  # one line when CUDA is missing
    if dtype not in DTYPES:
        raise DatasetError(f"--dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    check_range("--shard-size", shard_size, 1, MAX_SHARD_SIZE)
    check_range("--batch", batch_size, 1, MAX_BATCH)
    check_range("--image-size", image_size, 8, MAX_DATASET_IMAGE_SIZE)
    if not domains:
        raise DatasetError("no domains given (--domains D1.safetensors,D2.safetensors,...)")
    names = [name for name, _ in domains]
    if len(set(names)) != len(names):
        raise DatasetError(f"two domains have the same name: {names}")
    inputs = expand_inputs(inputs)  # folders as the commands take them
    if not inputs:
        raise DatasetError("no input images")
    if not any(p.exists() for p in inputs):  # before anything is written under out
        shown = ", ".join(str(p) for p in inputs[:3]) + (", ..." if len(inputs) > 3 else "")
        raise DatasetError(f"--images: no such file or directory: {shown}")
    # --layer is checked before anything is written (a wrong one used to leave an index.json
    # that made the corrected rerun fail)
    shapes = generator.feature_shapes()
    own = encoder.feature_layer
    if layer is not None and int(layer) not in shapes:
        raise DatasetError(f"--layer {layer}: must be a generator activation index in "
                           f"{min(shapes)}..{max(shapes)}")
    if own is not None and layer is not None and int(layer) != own:
        raise DatasetError(f"--layer {layer}: encoder {encoder.name!r} returns its feature at "
                           f"layer {own}; give --layer {own} or leave --layer out")
    if layer is None and own is not None:
        layer = own
    # each encoder's check_generator refusal before anything is written under out (as every
    # photo command's); not bound: the dataset stores what each returns without a generator
    attach_encoder(encoder, generator, bind=False)
    attach_encoder(guide, generator, bind=False)
    store = DTYPES[dtype]
    generator = generator.to(device).eval()
    encoder, guide = encoder.to(device).eval(), guide.to(device).eval()
    methods = [m.to(device).eval() for _, m in domains]

    # -- settings (a resumed build must use the same ones) ------------------------------------
    domain_info = [{"name": name, "plugin": m.name, "config": m.config(),
                    "digest": _state_digest(m), "file": f"domains/{d:03d}.safetensors"}
                   for d, (name, m) in enumerate(domains)]
    settings = {
        "layer": layer,
        "image_size": int(image_size),
        "shard_size": int(shard_size),
        "per_domain": bool(per_domain),
        "dtype": dtype,
        "delta_sign": DELTA_SIGN,
        "encoder": {"name": encoder.name, "config": encoder.config(), "digest": _state_digest(encoder)},
        "guide": {"name": guide.name, "config": guide.config(), "digest": _state_digest(guide)},
        "generator": {"config": generator.config(), "digest": _state_digest(generator)},
        "domains": [{k: v for k, v in info.items() if k != "file"} for info in domain_info],
        "inputs": [str(p) for p in inputs],
    }
    index_path = out / INDEX
    index: dict[str, Any]
    created_out = not out.exists()
    if index_path.exists():
        index = _read_index(index_path)
        old, shards = index.get("settings", {}), index.get("shards")
        if not isinstance(old, dict) or not (isinstance(shards, list)
                                             and all(isinstance(sh, dict) for sh in shards)):
            raise DatasetError("damaged dataset index ('settings' or 'shards' is not what a "
                               "build writes); remove the folder and build again", path=index_path)
        if layer is None:
            settings["layer"] = old.get("layer")
        diff = sorted(k for k in settings if old.get(k) != settings[k])
        if diff and not any(sh.get("rows") is not None for sh in index.get("shards", [])):
            # nothing was encoded under the old settings: start afresh instead of refusing
            for sub in ("shards", "domains"):
                for stale in sorted((out / sub).glob("*")) if (out / sub).is_dir() else []:
                    if stale.is_file():
                        stale.unlink()
            index = {"format": FORMAT, "version": VERSION, "complete": False,
                     "settings": settings, "sources": sources or {}, "domains": domain_info,
                     "shards": [], "skipped": [], "feature_shape": None, "latent_shape": None}
        elif diff:
            raise DatasetError(f"was built with different settings ({', '.join(diff)} differ); "
                               "resume with the same arguments or choose a new --out", path=index_path)
        if not all(_entry_ok(sh, len(domains)) for sh in index["shards"]):
            raise DatasetError("damaged dataset index (a shard entry is not what a build "
                               "writes); remove the folder and build again", path=index_path)
    else:
        # a build stopped before its first index.json leaves its domain copies (and the
        # temporary files of a kill): the same command starts it again; anything else is not ours
        if out.exists() and not _holds_only_unindexed_build(out, len(domains)):
            raise DatasetError("exists and is not an unfinished FeatureShift dataset "
                               "(no index.json); choose a new --out", path=out)
        index = {"format": FORMAT, "version": VERSION, "complete": False, "settings": settings,
                 "sources": sources or {}, "domains": domain_info, "shards": [], "skipped": [],
                 "feature_shape": None, "latent_shape": None}
    index["random_inputs"] = random_inputs(generator, encoder, guide, domains)
    n_shards = (len(inputs) + shard_size - 1) // shard_size
    shards: list[dict[str, Any]] = index["shards"]
    while len(shards) < n_shards:
        j = len(shards)
        shards.append({"file": _shard_name(j), "start": j * shard_size,
                       "stop": min((j + 1) * shard_size, len(inputs)), "rows": None,
                       "domains": [None] * len(domains)})

    from stylebridge.pipelines.featureshift.reader import _tails, shard_problem  # it imports us

    tails = _tails(index)
    repaired: list[str] = []

    def repair(path: Path, problem: str) -> None:
        text = f"{path}: {problem}; building it again"
        repaired.append(text)
        index["complete"] = False  # until the file is built again
        if notice:
            notice(text)

    # shards finished before this run: a build that encodes nothing keeps them (and the rest)
    finished_before = any(sh.get("rows") is not None for sh in shards)
    _remove_own_temporaries(out, domain_info, n_shards)  # left by a build killed mid-write
    for info, (_, method) in zip(domain_info, domains, strict=True):
        path, extra = out / info["file"], domain_extra(info["name"], method)
        try:
            current = read_header(path).extra if path.exists() else None
        except StylebridgeError as exc:
            repair(path, exc.message)
            current = None
        if current != extra:  # missing, damaged, or written without the original's labels
            save_checkpoint(path, method.state_dict(), kind="domain_method", plugin=method.name,
                            config=method.config(), extra=extra)
    write_json(index_path, index)

    report = BatchReport()
    skipped_files = 0
    total_rows = 0
    for j, shard in enumerate(shards):
        shard_path = out / shard["file"]
        span = {str(p) for p in inputs[shard["start"]:shard["stop"]]}
        if shard["rows"] is not None:
            problem = shard_problem(shard_path, BASE_KEYS, int(shard["rows"]), tails, names=True)
            if problem is not None:  # drop it from the finished set before building it again
                repair(shard_path, problem)
                shard["rows"], shard["domains"] = None, [None] * len(domains)
                write_json(index_path, index)
        if shard["rows"] is not None:
            skipped_files += 1
            for name in _read_names(shard_path):
                report.ok(Path(name))
            for entry in index["skipped"]:
                if entry["file"] in span:
                    report.skip(Path(entry["file"]), entry["reason"])
            if progress:
                progress(shard["stop"] - shard["start"])
        else:
            rows, skipped = _build_base_shard(
                inputs[shard["start"]:shard["stop"]], shard_path, generator=generator,
                encoder=encoder, guide=guide, index=index, image_size=image_size,
                batch_size=batch_size, store=store, device=device, report=report,
                progress=progress)
            tails = _tails(index)  # the shapes are known once a row was written
            shard["rows"] = rows
            shard["domains"] = [None] * len(domains)  # rebuilt rows: the domain files are stale
            index["skipped"] = [e for e in index["skipped"] if e["file"] not in span]
            index["skipped"].extend({"file": str(p), "reason": r} for p, r in skipped)
            write_json(index_path, index)
        total_rows += int(shard["rows"])
        if not per_domain:
            continue
        for d, method in enumerate(methods):
            dpath = out / _domain_shard_name(j, d)
            if shard["domains"][d] is not None:
                problem = shard_problem(dpath, DOMAIN_KEYS, int(shard["rows"]), tails)
                if problem is not None:
                    repair(dpath, problem)
                    shard["domains"][d] = None
                    write_json(index_path, index)
            if shard["domains"][d] is not None:
                skipped_files += 1
                if progress:
                    progress(int(shard["rows"]))
                continue
            _build_domain_shard(shard_path, dpath, generator=generator, method=method,
                                layer=index["settings"]["layer"], image_size=image_size,
                                batch_size=batch_size, store=store, device=device,
                                progress=progress)
            shard["domains"][d] = _domain_shard_name(j, d)
            write_json(index_path, index)
    if total_rows == 0:  # not marked complete: the trainer must not take it
        first = (f" ({report.skipped[0][0]}: {report.skipped[0][1]}"
                 + (f", and {len(report.skipped) - 1} more" if len(report.skipped) > 1 else "")
                 + ")") if report.skipped else ""
        if finished_before:  # an earlier run's finished shards are kept
            outcome = f"the finished shards in {out} are kept"
        else:  # an index no rerun could finish: remove what the builder wrote
            _remove_build(out, index, created_out)
            outcome = f"nothing was kept in {out}"
        raise NothingEncoded(f"no image could be encoded{first}; nothing to train on "
                             f"({outcome})", report, path=out, outcome=outcome)
    index["complete"] = True
    index["n_rows"] = total_rows
    write_json(index_path, index)
    return BuildResult(root=out, report=report, n_rows=total_rows, n_shards=len(shards),
                       skipped_files=skipped_files,
                       random_parts=random_parts(index["random_inputs"]), repaired=repaired)


def domain_extra(name: str, method: DomainMethod) -> dict[str, Any]:
    """The header ``extra`` of a dataset's copy of domain ``name``: the original checkpoint's
    (``random_weights``, ``random_parts``, ``target``, notes, ...) and ``name``; a method
    built without a readable checkpoint is labelled from its provenance."""
    extra: dict[str, Any] = {}
    source = weights_path(method)
    if source is not None:
        try:
            extra = dict(read_header(source).extra)
        except (StylebridgeError, OSError):  # loaded earlier; gone or changed since
            extra = {}
    extra["name"] = name
    if is_random(method) and not is_random_weights(extra):
        extra["random_weights"] = True
    return extra


#: a temporary file of an atomic write (``.NAME.XXXXXXXX.tmp``, core.io): NAME
_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
#: the hidden file safetensors' save_file wrote first, which earlier versions used for the
#: domain copies: a kill left it in ``domains/``
_SAVE_FILE_TEMPORARY = re.compile(r"^\.tmp[A-Za-z0-9]{6}$")


def _holds_only_unindexed_build(out: Path, n_domains: int) -> bool:
    """Whether the folder ``out`` holds nothing but what a build of ``n_domains`` domains
    writes before its first ``index.json``: ``domains/000.safetensors``, ... (the domain
    copies), the temporary files of those and of ``index.json`` that a kill leaves, and empty
    ``domains``/``shards`` folders.  Anything else (a user's file, a link) is not ours."""
    copies = {f"{d:03d}.safetensors" for d in range(n_domains)}

    def ours(entry: Path, names: set[str]) -> bool:
        match = _TEMPORARY.match(entry.name)
        name = match.group("name") if match else entry.name
        return entry.is_file() and not entry.is_symlink() and (
            name in names or bool(names and _SAVE_FILE_TEMPORARY.match(entry.name)))

    if not out.is_dir():
        return False
    for entry in out.iterdir():
        if entry.name in ("domains", "shards") and entry.is_dir() and not entry.is_symlink():
            allowed = copies if entry.name == "domains" else set()
            if not all(ours(item, allowed) for item in entry.iterdir()):
                return False
        elif not (_TEMPORARY.match(entry.name) and ours(entry, {INDEX})):
            return False
    return True


def _remove_own_temporaries(out: Path, domain_info: Sequence[dict[str, Any]],
                            n_shards: int) -> None:
    """Remove the temporary files a build killed mid-write left of the files this build
    writes (``index.json``, its domain copies and shards), and no other."""
    remove_stale_temporaries(out, INDEX)
    remove_stale_temporaries(out / "domains", [Path(info["file"]).name for info in domain_info])
    for left in (out / "domains").glob(".tmp*") if (out / "domains").is_dir() else []:
        if _SAVE_FILE_TEMPORARY.match(left.name) and left.is_file() and not left.is_symlink():
            left.unlink(missing_ok=True)
    remove_stale_temporaries(out / "shards", [
        Path(name).name for j in range(n_shards)
        for name in (_shard_name(j), *(_domain_shard_name(j, d) for d in range(len(domain_info))))])


def _remove_build(out: Path, index: dict[str, Any], created_out: bool) -> None:
    """Remove the files a build wrote (index, domain copies, shards; never anything else),
    the folders it made when they are empty, and ``out`` itself when the build made it."""
    files = [out / INDEX, *(out / str(d["file"]) for d in index.get("domains", []))]
    for j, shard in enumerate(index.get("shards", [])):
        files.append(out / str(shard["file"]))
        files += [out / _domain_shard_name(j, d) for d in range(len(index.get("domains", [])))]
    for path in files:
        path.unlink(missing_ok=True)
    for folder in (out / "shards", out / "domains", *([out] if created_out else [])):
        with contextlib.suppress(OSError):  # not empty (someone else's files) or gone
            folder.rmdir()


def _read_names(path: Path) -> list[str]:
    with open_safetensors(path) as fh:
        meta = fh.metadata() or {}
    return list(json.loads(meta.get("names", "[]")))


@torch.no_grad()
def _build_base_shard(
    paths: Sequence[Path], shard_path: Path, *, generator: Generator, encoder: Encoder,
    guide: Encoder, index: dict[str, Any], image_size: int, batch_size: int, store: torch.dtype,
    device: torch.device, report: BatchReport, progress: Callable[[int], None] | None,
) -> tuple[int, list[tuple[Path, str]]]:
    from stylebridge.core.images import load_image

    columns: dict[str, list[Tensor]] = {k: [] for k in BASE_KEYS}
    names: list[str] = []
    skipped: list[tuple[Path, str]] = []
    settings = index["settings"]
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        loaded: list[tuple[Path, Tensor]] = []
        for path in chunk:
            try:
                loaded.append((path, load_image(path)))
            except StylebridgeError as exc:
                reason = str(exc).removeprefix(f"{path}: ")
                report.skip(path, reason)
                skipped.append((path, reason))
        for run in _group_by_shape([img for _, img in loaded]):
            x01 = torch.stack([loaded[i][1] for i in run]).to(device)
            # shapes (features included), dtype and NaN/inf, as every photo command checks
            # them: a NaN w+ or feature was stored as a FeatureShift target
            real = check_inversion(encoder.encode(x01), generator, encoder, len(run))
            layer = settings["layer"]
            if layer is None:
                if not real.features:  # --layer would not help: the encoder has no feature
                    raise DatasetError(f"encoder {encoder.name!r} returns no generator feature "
                                       "(latents only); use an FSE-like encoder in a feature "
                                       "mode, e.g. fse:CKPT:mode=features")
                if len(real.features) != 1:
                    raise DatasetError(f"encoder {encoder.name!r} returned features at layers "
                                       f"{sorted(real.features)}; give --layer K")
                layer = settings["layer"] = int(next(iter(real.features)))
            f_real = _feature(real, layer, f"encoder {encoder.name!r}")  # its shape: checked
            w_guide = check_inversion(guide.encode(x01), generator, guide, len(run)).w_plus
            styles = generator.styles(w_guide)
            e4e_image = generator.synthesis(styles, randomize_noise=False)  # G(w_E) in [-1, 1]
            inv = check_inversion(encoder.encode(((e4e_image + 1.0) / 2.0).clamp(0.0, 1.0)),
                                  generator, encoder, len(run))
            f_inv = _feature(inv, layer, f"encoder {encoder.name!r}")
            columns["image"].append(images_to_uint8(x01 * 2.0 - 1.0, image_size).cpu())
            columns["w_guide"].append(w_guide.float().cpu())
            columns["w_inv"].append(inv.w_plus.float().cpu())
            columns["f_inv"].append(f_inv.to(store).cpu())
            columns["w_real"].append(real.w_plus.float().cpu())
            columns["f_real"].append(f_real.to(store).cpu())
            names.extend(str(loaded[i][0]) for i in run)
            for i in run:
                report.ok(loaded[i][0])
            index["feature_shape"] = list(f_real.shape[1:])
            index["latent_shape"] = list(real.w_plus.shape[1:])
        if progress:
            progress(len(chunk))
    if not names:  # every image of the shard failed: an empty shard keeps the numbering
        tensors = {"empty": torch.zeros(0)}
    else:
        tensors = {k: torch.cat(v) for k, v in columns.items()}
    # byte-identical for the same rows: the metadata keys in one order (save_file's vary)
    save_tensors(shard_path, tensors, {"names": json.dumps(names), "format": FORMAT})
    return len(names), skipped


@torch.no_grad()
def _build_domain_shard(
    shard_path: Path, out_path: Path, *, generator: Generator, method: DomainMethod,
    layer: int | None, image_size: int, batch_size: int, store: torch.dtype, device: torch.device,
    progress: Callable[[int], None] | None,
) -> None:
    deltas: list[Tensor] = []
    targets: list[Tensor] = []
    with open_safetensors(shard_path) as fh:
        n = fh.get_slice("w_guide").get_shape()[0] if "w_guide" in fh.keys() else 0  # noqa: SIM118
        for start in range(0, n, batch_size):
            assert layer is not None  # known once a row was written
            w = fh.get_slice("w_guide")[start:start + batch_size].to(device)
            delta, target = domain_quantities(generator, method, w, layer, image_size=image_size)
            deltas.append(delta.to(store).cpu())
            targets.append(images_to_uint8(target, image_size).cpu())
            if progress:
                progress(int(w.shape[0]))
    tensors = ({"delta": torch.cat(deltas), "target": torch.cat(targets)} if deltas
               else {"empty": torch.zeros(0)})
    save_tensors(out_path, tensors, {"format": FORMAT})


# ---------------------------------------------------------------------------------------------
# Reader


def _read_index(path: Path) -> dict[str, Any]:
    """``index.json`` as a dict of this format, or a one-line :class:`DatasetError`."""
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"unreadable dataset index ({exc})", path=path) from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DatasetError("is not a FeatureShift dataset index", path=path)
    return index
