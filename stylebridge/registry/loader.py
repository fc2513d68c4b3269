"""A plugin object from its stylebridge checkpoint (:meth:`Registry.load`): header → class →
weights, each step refused in one line naming the file.

The module is built once, on the ``meta`` device, where the shapes its config implies are
checked against the file's before anything is allocated; it then takes the checkpoint's
tensors by assignment (:func:`~stylebridge.core.loading.load_weights`): no random
initialisation that the weights overwrite, no second copy of them in memory, the same
tensors as a copy gave.  A plugin that cannot be built on ``meta`` or filled that way
(:func:`~stylebridge.core.loading.assignable`) is built on the CPU and copied into.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from stylebridge.core import interfaces as itf
from stylebridge.core.checkpoint import (
    check_implied_shapes,
    load_checkpoint,
    read_header,
    refuse_wrong_dtypes,
)
from stylebridge.core.checkpoint import with_article as _a
from stylebridge.core.device import keep_rng_state
from stylebridge.core.loading import assignable, load_weights
from stylebridge.errors import CheckpointError, RegistryError
from stylebridge.registry.registry import accepted_options

if TYPE_CHECKING:
    from stylebridge.registry.registry import Registry


def load_checkpointed(registry: Registry, kind: str, path: str | Path, *,
                      name: str | None = None, device: str = "cpu", **overrides: Any) -> Any:
    """Recreate a plugin object from a stylebridge checkpoint (header → class → weights)."""
    header = read_header(path)  # kind and plugin are checked before any tensor is read
    cls = registry._table(kind).get(header.plugin)
    plugin_cls = (cls.obj if cls is not None and isinstance(cls.obj, type)
                  and issubclass(cls.obj, itf.Plugin) else None)
    own_kind = plugin_cls.checkpoint_kind if plugin_cls is not None else None
    if header.kind != kind and header.kind != own_kind:
        raise CheckpointError(f"is a checkpoint of kind {header.kind!r} ({header.plugin}), "
                              f"expected kind {kind!r}", path=path)
    if name is not None and header.plugin != name:
        raise CheckpointError(f"holds {_a(header.kind)} of plugin {header.plugin!r}, expected "
                              f"{name!r}", path=path)
    if cls is None:
        note = registry._problems_note()
        raise CheckpointError(
            f"needs the {kind.replace('_', ' ')} plugin {header.plugin!r}, which is not "
            "installed (install the package that provides it; `stylebridge plugins` lists "
            f"what is installed){note}", path=path)
    refused = plugin_cls.check_header(header.extra) if plugin_cls is not None else None
    if refused:
        raise CheckpointError(refused, path=path)
    _, tensors = load_checkpoint(path, device=device)
    config = {**header.config, **overrides}
    label = f"{kind.replace('_', ' ')} {header.plugin!r}"
    if plugin_cls is not None:
        try:
            plugin_cls.check_config(config)
        except ValueError as exc:  # ConfigSchemaError and a plugin's own cross-key checks
            raise CheckpointError(f"{label}: {exc}", path=path) from None
        accepted = accepted_options(plugin_cls)
        foreign = sorted(set(header.config) - set(accepted)) if accepted is not None else []
        if foreign:
            raise CheckpointError(
                f"its header config has option(s) {', '.join(foreign)} that {label} does not "
                f"take (accepted: {', '.join(accepted) or 'none'}); is it a checkpoint of "
                "another plugin or another stylebridge version?", path=path)

    def build() -> Any:
        try:  # the header's config comes from config(): only overrides are checked (create)
            return registry._build(kind, header.plugin, config)
        except RegistryError as exc:
            raise CheckpointError(str(exc), path=path) from None

    # a module built on the CPU draws its random initialisation, which the checkpoint's
    # weights overwrite, from the caller's random stream: that is left as it was
    with keep_rng_state():
        meta = None
        if plugin_cls is not None:
            meta = check_implied_shapes(path, lambda: plugin_cls(**config), tensors, what=label)
        obj = meta if meta is not None and assignable(meta) else build()
    if isinstance(obj, torch.nn.Module):  # also when the meta pre-check could not run
        refuse_wrong_dtypes(path, obj.state_dict(), tensors, what=label)

    def rebuild() -> Any:
        with keep_rng_state():
            return build()

    try:
        if isinstance(obj, torch.nn.Module):
            obj = load_weights(obj, tensors, rebuild)
        else:
            obj.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        detail = " ".join(line.strip() for line in first[:3])
        raise CheckpointError(f"weights do not fit {kind} {header.plugin!r}: {detail}",
                              path=path) from None
    if isinstance(obj, itf.Plugin):
        try:
            obj.read_extra(header.extra)
        except CheckpointError as exc:  # what the header holds beyond weights, named by file
            if exc.path is not None:
                raise
            raise CheckpointError(exc.message, path=path) from None
    # a non-commercial licence is said once, on one line, by whoever runs it (the CLI
    # prints it with the random-weight notices): the plugin's own warning is for Python
    from stylebridge.registry.licences import note_loaded

    note_loaded(path, header.extra)
    return obj


__all__ = ["load_checkpointed"]
