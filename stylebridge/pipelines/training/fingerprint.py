"""What a domain trainer's ``--resume`` compares: the settings a train-state recorded (its
``fingerprint``), read as this version reads them, against this run's; the one-line refusal
when they differ.

A state written by an earlier stylebridge may lack a setting that was added to the
fingerprint later, or hold one in an earlier form.  As FeatureShift's states
(:data:`stylebridge.pipelines.featureshift.state.SAVED_BEFORE`), such a setting is read as
the value that version behaved with, declared per trainer
(:attr:`~stylebridge.pipelines.training.domain.DomainTrainer.saved_before`): a value, one
worked out from what the state did record (:class:`Computed`), or :data:`NOT_RECORDED` when
nothing can be known (a file's sha256 the state never kept: not compared, the settings that
are compared still are).  A value in an earlier form is compared as this run's value in that
form (:class:`EarlierForm`).  When a refusal remains and the saved value was a default that
changed since (:class:`DefaultChange`), the refusal names the option that gives it; a
setting that cannot be known or this version lacks is said so, without advice that cannot
work.

The refusal names a setting by the command-line option that gives it (:data:`RESUME_OPTIONS`,
extended per trainer: ``resume_labels``), its values as ``train featureshift`` shows them
(:func:`~stylebridge.pipelines.training.state.then_and_now`: ``--lr 0.05 then, 0.1 now``);
a dict or list of several options (``target``, the method's config: ``resume_narrowed``)
or a long value is narrowed to the member that differs (``--source-text``, ``--width``,
``--prompts item 3``); a setting no option gives keeps its name (``betas``,
``method.config.rank``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stylebridge.pipelines.training.losses import canonical_loss_spec
from stylebridge.pipelines.training.state import (
    first_difference,
    json_roundtrip,
    then_and_now,
)


class _NotRecorded:
    def __repr__(self) -> str:
        return "NOT_RECORDED"


#: a setting a state predates whose value then cannot be known: not compared
NOT_RECORDED: Any = _NotRecorded()
#: how a refusal that can be acted on ends
START_OVER = "start over with --force (or another --out)"

#: the command-line option of each setting of a ``train domain`` fingerprint (a member of a
#: dict by its path), as a ``--resume`` refusal names it; the other domain trainers add theirs
RESUME_OPTIONS: Mapping[str, str] = {
    "method.plugin": "--method", "generator_config": "--generator",
    "generator_sha256": "--generator (sha256)", "clip_weights": "--clip-weights",
    "target.text": "--text", "target.source_text": "--source-text",
    "target.templates": "--templates", "target.image": "--image",
    "target.image_sha256": "--image (sha256)", "target.source_samples": "--source-samples",
    "target.source_truncation": "--source-truncation", "losses": "--loss", "clip": "--clip",
    "encoder": "--encoder", "batch": "--batch", "lr": "--lr", "warmup_steps": "--warmup-steps",
    "mixing": "--mixing", "freeze_layers": "--freeze-layers", "seed": "--seed",
}
#: the fingerprint's dicts of several options: a refusal names the member that differs
RESUME_NARROWED = frozenset({"target", "method", "method.config"})


@dataclass(frozen=True)
class Computed:
    """A setting a state predates, worked out from what it did record: ``read(trainer,
    saved_fingerprint)`` returns the value the run behaved with, or :data:`NOT_RECORDED`."""

    read: Callable[[Any, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class EarlierForm:
    """This run's value of a setting as states of earlier versions recorded it (``train
    hyperdomain``'s CLIP weights as ``"file"``/``"random"`` before they were sha256s).  A
    state whose value equals it resumes; only states without ``newer_key`` in their header
    (a key every state in today's form has) are read so."""

    value: Any
    newer_key: str


@dataclass(frozen=True)
class DefaultChange:
    """A default that changed: runs begun before the change recorded ``then`` for fingerprint
    setting ``key`` without being given an option; ``option`` gives it now."""

    key: str
    then: Any
    option: str


def _meant(key: str, value: Any) -> Any:
    """What is compared: loss specs by meaning (``mse:1`` = ``mse:1.0``)."""
    if key == "losses" and isinstance(value, list):
        return [canonical_loss_spec(str(spec)) for spec in value]
    return value


def moved_image_as_now(then: Any, now: Any) -> Any:
    """A run's ``target`` as recorded (``then``) with its reference image's path read as
    ``now``'s when both record the image's sha256: the picture decides, not where it lies (a
    reference moved or given by another spelling resumes; one whose content changed is
    refused by its sha256, also when it moved)."""
    if not (isinstance(then, Mapping) and isinstance(now, Mapping)):
        return then
    if then.get("image_sha256") is None or now.get("image_sha256") is None or "image" not in now:
        return then
    return {**then, "image": now["image"]}


def saved_as_now(trainer: Any, saved: Mapping[str, Any], mine: Mapping[str, Any],
                 extra: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint ``saved`` (of a state whose header ``extra`` it is) as this version
    reads it: the settings it predates filled in from ``trainer.saved_before`` (those that
    cannot be known: this run's, i.e. not compared), values in an earlier form
    (``trainer.earlier_forms``) that match this run's in that form: this run's; a reference
    image by its content (:func:`moved_image_as_now`)."""
    out = dict(saved)
    if "target" in out:
        out["target"] = moved_image_as_now(out["target"], mine.get("target"))
    for key, then in trainer.saved_before.items():
        if key in out or key not in mine:
            continue
        value = then.read(trainer, saved) if isinstance(then, Computed) else then
        out[key] = mine[key] if value is NOT_RECORDED else json_roundtrip(value)
    for key, form in trainer.earlier_forms.items():
        if (key in out and key in mine and out[key] != mine[key]
                and form.newer_key not in extra and out[key] == json_roundtrip(form.value)):
            out[key] = mine[key]
    return out


def option_label(path: str, labels: Mapping[str, str]) -> str:
    """How a refusal names the fingerprint setting at ``path`` (``target.source_text``,
    ``prompts[2]``): by the option ``labels`` gives it (the longest match), a member of one by
    its key or 1-based item (``--clip-weights ViT-B-32``, ``--prompts item 3``); a setting
    without one by its path."""
    name = max((n for n in labels if path == n or path.startswith((f"{n}.", f"{n}["))),
               key=len, default=None)
    if name is None:
        return path
    tail = re.sub(r"\[(\d+)\]", lambda m: f" item {int(m.group(1)) + 1}", path[len(name):])
    return labels[name] + tail.replace(".", " ")


def resume_refusal(trainer: Any, saved: Mapping[str, Any], extra: Mapping[str, Any]
                   ) -> str | None:
    """Why ``trainer`` cannot resume a state whose fingerprint is ``saved`` (its header's
    ``extra`` besides), in one line: the first option that differs (a method's config, derived
    from the options, compared last), narrowed to the part that does; ``None``: it can."""
    mine = {k: json_roundtrip(v) for k, v in trainer.fingerprint.items()}   # in its order
    then = saved_as_now(trainer, saved, mine, extra)
    why = first_difference(then, mine, last=("method",), canonical=_meant,
                           narrowed=trainer.resume_narrowed)
    if why is None:
        return None
    key, was, now = why
    shown, top = option_label(key, trainer.resume_labels), _top(key)
    if top not in then:   # a setting this state never recorded, and nothing says what it was
        return (f"cannot resume: the state records no {shown} (an earlier stylebridge wrote "
                "it, before that setting was kept) and what the run used cannot be known; "
                f"{START_OVER}")
    if top not in mine:
        return (f"cannot resume: the run used {shown} {was}, a setting this version does not "
                f"have; {START_OVER}")
    head = f"cannot resume with different settings: {then_and_now(shown, was, now)}"
    change = _default_change(trainer.default_changes, top, then)
    if change is not None:
        return (f"{head}; that was the default when the run began (an earlier stylebridge): "
                f"give {change.option} to resume it, or {START_OVER}")
    return f"{head}; give the interrupted run's options, or {START_OVER}"


def _top(key: str) -> str:
    """The top-level setting of a narrowed ``key`` (``target`` of ``target.text``)."""
    return key.split(".", 1)[0].split("[", 1)[0]


def _default_change(changes: Sequence[DefaultChange], top: str, saved: Mapping[str, Any]
                    ) -> DefaultChange | None:
    """The default change that explains the saved value of ``top`` (a top-level setting)."""
    return next((c for c in changes if c.key == top and top in saved
                 and _meant(top, json_roundtrip(c.then)) == _meant(top, saved[top])), None)


__all__ = ["NOT_RECORDED", "RESUME_NARROWED", "RESUME_OPTIONS", "Computed", "DefaultChange",
           "EarlierForm", "moved_image_as_now", "option_label", "resume_refusal",
           "saved_as_now"]
