"""``domain_adversarial``: a *trainable* domain discriminator for FeatureShift (thesis,
"Improving the gap": "Adversarial loss on the trainable domain adaptation discriminator
haven't shown better results in the editing tasks, but our implementation supports this
option too").

Unlike ``adversarial`` (the frozen StyleGAN2 discriminator of the generator checkpoint,
inversion set), this loss owns a small discriminator of its own, built like StyleGAN2's
residual discriminator (:class:`stylebridge.core.stylegan2.Discriminator`, ``channels``
wide at every resolution, ``size`` px input), and trains it alongside FeatureShift with
its own Adam optimiser:

* *real* = ``LossBatch.target`` (in the domain set: the e4e domain inversions ``G(s_d(w_E))``),
  *fake* = ``LossBatch.output`` detached (FeatureShift's domain outputs);
* discriminator step, once per training step and only while gradients are enabled:
  ``softplus(D(fake)) + softplus(−D(real))`` (+ ``r1/2 · ‖∇D(real)‖²`` when ``r1 > 0``),
  then Adam (StyleGAN2's discriminator settings: ``lr=0.002``, ``betas=(0, 0.99)``);
  under DDP the discriminator's gradients are averaged over the processes;
* the value returned (FeatureShift's term): the non-saturating ``softplus(−D(output))``
  with the just-updated discriminator (its parameters take no gradient from it).

Its weights and optimiser state are part of :meth:`training_state`, so ``--resume``
continues the discriminator exactly.  Off by default (the thesis found no gain);
``train featureshift --domain-discriminator WEIGHT`` adds it to the domain loss set.
The architecture and optimiser values are ours (the thesis gives none).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from stylebridge.core.interfaces import Loss, LossBatch
from stylebridge.core.stylegan2.discriminator import Discriminator
from stylebridge.errors import StylebridgeError
from stylebridge.plugins.losses.recon import resize_images
from stylebridge.registry import hookimpl


class DomainDiscriminatorLoss(Loss):
    """Non-saturating GAN loss with a discriminator trained alongside (real = target)."""

    name = "domain_adversarial"
    description = ("trainable domain discriminator (own Adam): real = target, fake = output; "
                   "FeatureShift's domain set")
    requires: ClassVar[frozenset[str]] = frozenset({"output", "target"})

    def __init__(self, size: int = 256, channels: int = 64, lr: float = 2e-3,
                 beta1: float = 0.0, beta2: float = 0.99, r1: float = 0.0) -> None:
        super().__init__()
        size, channels = int(size), int(channels)
        if size < 4 or size & (size - 1):
            raise StylebridgeError(f"domain_adversarial: size={size}: expected a power of two >= 4")
        if channels < 1:
            raise StylebridgeError(f"domain_adversarial: channels={channels}: must be >= 1")
        for key, value in (("lr", lr), ("r1", r1)):
            if not (math.isfinite(float(value)) and float(value) >= 0):
                raise StylebridgeError(f"domain_adversarial: {key}={value}: must be >= 0")
        self.size, self.channels = size, channels
        self.lr, self.betas, self.r1 = float(lr), (float(beta1), float(beta2)), float(r1)
        res = [2 ** i for i in range(2, int(math.log2(size)) + 1)]
        self.model = Discriminator(size=size, channels={r: channels for r in res})
        self.group = int(self.model.stddev_group)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.lr, betas=self.betas)
        self.d_steps = 0

    def config(self) -> dict[str, Any]:
        return {"size": self.size, "channels": self.channels, "lr": self.lr,
                "beta1": self.betas[0], "beta2": self.betas[1], "r1": self.r1}

    def logits(self, images: Tensor) -> Tensor:
        """``D(images)`` ``[B, 1]`` (resized to ``size``; chunks for the minibatch-stddev group)."""
        x = resize_images(images.float(), self.size)
        if x.shape[0] <= self.group or x.shape[0] % self.group == 0:
            return self.model(x)
        return torch.cat([self.model(chunk) for chunk in x.split(self.group)])

    def discriminator_step(self, real: Tensor, fake: Tensor) -> float:
        """One optimiser step of the discriminator; returns its loss."""
        self.model.requires_grad_(True)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            real = real.detach().float().requires_grad_(self.r1 > 0)
            real_logits = self.logits(real)
            loss = F.softplus(self.logits(fake.detach())).mean() + F.softplus(-real_logits).mean()
            if self.r1 > 0:
                (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
                loss = loss + self.r1 / 2 * grad.pow(2).flatten(1).sum(1).mean()
            loss.backward()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            world = torch.distributed.get_world_size()
            for p in self.model.parameters():
                if p.grad is not None:
                    torch.distributed.all_reduce(p.grad)
                    p.grad /= world
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.requires_grad_(False)
        self.d_steps += 1
        return float(loss.detach())

    def forward(self, batch: LossBatch) -> Tensor:
        output = batch.require("output", self.name)
        if torch.is_grad_enabled():
            self.discriminator_step(batch.require("target", self.name), output)
        return F.softplus(-self.logits(output)).mean()

    # -- exact resume ------------------------------------------------------------------------
    def training_state(self) -> dict[str, Tensor]:
        state = {f"d.{k}": v.detach().clone() for k, v in self.model.state_dict().items()}
        for idx, items in self.optimizer.state_dict()["state"].items():
            for key, value in items.items():
                state[f"optim.{idx}.{key}"] = (value.detach().clone() if isinstance(value, Tensor)
                                               else torch.tensor(value))
        state["d_steps"] = torch.tensor(self.d_steps, dtype=torch.int64)
        return state

    def load_training_state(self, state: dict[str, Tensor],
                            device: torch.device | str = "cpu") -> None:
        if not state:
            return
        model_state = {k[2:]: v for k, v in state.items() if k.startswith("d.")}
        self.model.load_state_dict(model_state)
        self.model.requires_grad_(False)
        optim: dict[int, dict[str, Any]] = {}
        for key, value in state.items():
            if key.startswith("optim."):
                _, idx, name = key.split(".", 2)
                optim.setdefault(int(idx), {})[name] = value.to(device) if name != "step" else value
        groups = self.optimizer.state_dict()["param_groups"]
        self.optimizer.load_state_dict({"state": optim, "param_groups": groups})
        self.d_steps = int(state.get("d_steps", torch.tensor(0)))


@hookimpl
def register_losses(register: Any) -> None:
    register(DomainDiscriminatorLoss)
