"""The restricted unpickler's own ``getattr`` (issue 19, item 10).

DissimilarDomains' AffineLight+ layers keep ``(self.get_parameter, name)`` pairs in their
state, so their snapshots call ``builtins.getattr(layer, "get_parameter")`` while
unpickling.  The unpickler answers that only for its placeholder objects, with a data
record; every other use of getattr (the classic way out of a pickle sandbox) is refused and
no code runs.
"""

from __future__ import annotations

import builtins
import collections
import os
import pickle
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from test_nvlabs import _Persistent, _Reduce, nvlabs_stand_in_modules

from stylebridge.core.safe_pickle import MethodRef, PersistentObject, safe_load
from stylebridge.errors import UnsafePickleError


class _Layer(_Persistent):
    """A persistent layer whose ``get_parameter`` pickles as upstream's bound method does:
    ``getattr(layer, "get_parameter")``."""

    def get_parameter(self, name: str) -> Any:  # pragma: no cover - never called
        raise AssertionError("never called")

    def get_buffer(self, name: str) -> Any:  # pragma: no cover - never called
        raise AssertionError("never called")


def _affine_light_layer() -> _Layer:
    """Upstream's FullyConnectedLayer with an ``affine_out_in_5_1`` decomposition: weight,
    bias, one rank-5 term (``weights_offset_in_0`` [5, in], ``weights_offset_out_0``
    [out, 5]), the ``ones_weights`` buffer and the (getter, name) pairs."""
    g = torch.Generator().manual_seed(0)
    params = collections.OrderedDict(
        weight=torch.nn.Parameter(torch.randn(8, 4, generator=g), requires_grad=False),
        bias=torch.nn.Parameter(torch.ones(8), requires_grad=False),
        weights_offset_in_0=torch.nn.Parameter(torch.randn(5, 4, generator=g),
                                               requires_grad=False),
        weights_offset_out_0=torch.nn.Parameter(torch.randn(8, 5, generator=g),
                                                requires_grad=False),
    )
    state = {"training": False, "_parameters": params,
             "_buffers": collections.OrderedDict(ones_weights=torch.ones(8, 4)),
             "_modules": collections.OrderedDict(), "_init_kwargs": {"in_features": 4}}
    return _Layer(dict(type="class", version=6, module_src="raise SystemExit('never run')\n",
                       class_name="FullyConnectedLayer", state=state))


def _snapshot(path: Path) -> Path:
    """A snapshot dict: the layer, then the pairs that reference it (the pickle memoises the
    layer first, so getattr's target is the already-built placeholder)."""
    layer = _affine_light_layer()
    layer.meta["state"]["weights_offset_in"] = []
    snapshot = {"G_ema": layer,
                "weights_offset_in": [(layer.get_parameter, "weights_offset_in_0")],
                "weights_offset_out": [(layer.get_parameter, "weights_offset_out_0")],
                "buffers": [(layer.get_buffer, "ones_weights")]}
    with nvlabs_stand_in_modules():
        path.write_bytes(pickle.dumps(snapshot, protocol=4))
    assert b"getattr" in path.read_bytes()
    return path


def test_bound_method_pairs_of_a_pickled_layer_become_data(tmp_path: Path) -> None:
    data = safe_load(_snapshot(tmp_path / "snap.pkl"))
    layer = data["G_ema"]
    assert isinstance(layer, PersistentObject) and layer.class_name == "FullyConnectedLayer"
    (getter, name), = data["weights_offset_in"]
    assert isinstance(getter, MethodRef) and getter.owner is layer
    assert (getter.name, name) == ("get_parameter", "weights_offset_in_0")
    assert torch.equal(getter.resolve(name), layer.state["_parameters"]["weights_offset_in_0"])
    (getter, name), = data["weights_offset_out"]
    assert getter.resolve(name).shape == (8, 5)
    (getter, name), = data["buffers"]
    assert getter.name == "get_buffer" and torch.equal(getter.resolve(name), torch.ones(8, 4))
    with pytest.raises(KeyError, match="records no parameter or buffer 'nope'"):
        getter.resolve("nope")


class _GetattrOn:
    """Unpickles as ``getattr(<target>, name)``, with the target built by the pickle."""

    def __init__(self, target: Any, name: str) -> None:
        self.target, self.name = target, name

    def __reduce__(self) -> tuple[Any, ...]:
        return (getattr, (self.target, self.name))


def _attack(path: Path, obj: Any) -> Path:
    with nvlabs_stand_in_modules():
        path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def _attacks(marker: Path) -> dict[str, Any]:
    layer = _affine_light_layer()
    shell = f"touch {marker}"
    return {
        # getattr on allowed globals (a module can only be reached through such an object)
        "OrderedDict.__init__": _GetattrOn(collections.OrderedDict, "__init__"),
        "set.__class__": _GetattrOn(set, "__class__"),
        "slice.__subclasses__": _GetattrOn(slice, "__subclasses__"),
        # the placeholder's class internals
        "placeholder.__class__": [layer, _GetattrOn(layer, "__class__")],
        "placeholder.__init__.__globals__": [
            layer, _GetattrOn(_GetattrOn(_GetattrOn(layer, "__init__"), "__globals__"), "get")],
        "placeholder.__reduce__": [layer, _GetattrOn(layer, "__reduce__")],
        # getattr on a record it returned
        "record.owner": [layer, _GetattrOn(_GetattrOn(layer, "get_parameter"), "owner")],
        # and the plain escapes, which find_class refuses before getattr is reached
        "os.system": _Reduce(os.system, shell),
        "subprocess.Popen": _Reduce(subprocess.Popen, ["touch", str(marker)]),
        "builtins.eval": _Reduce(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "getattr(builtins, 'eval')": _GetattrOn(_Reduce(builtins.__import__, "builtins"),
                                                "eval"),
    }


@pytest.mark.parametrize("case", sorted(_attacks(Path("x"))))
def test_getattr_attacks_are_refused_and_nothing_runs(tmp_path: Path, case: str) -> None:
    marker = tmp_path / "MARKER"
    path = _attack(tmp_path / "evil.pkl", _attacks(marker)[case])
    with pytest.raises(UnsafePickleError) as info:
        safe_load(path)
    text = str(info.value)
    assert "\n" not in text and "no code was run" in text and str(path) in text
    assert "refuses to load" in text
    assert not marker.exists()


def test_getattr_with_a_default_is_refused(tmp_path: Path) -> None:
    layer = _affine_light_layer()
    path = _attack(tmp_path / "evil.pkl", [layer, _Reduce(getattr, layer, "x", None)])
    with pytest.raises(UnsafePickleError, match="getattr with a default"):
        safe_load(path)
