"""The residual StyleGAN2 discriminator with minibatch standard deviation."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from stylebridge.core.stylegan2.config import DiscriminatorConfig
from stylebridge.core.stylegan2.layers import ConvLayer, EqualLinear, ResBlock


class Discriminator(nn.Module):
    """ResNet discriminator (upstream key layout); ``forward(images) -> [B, 1]`` logits."""

    def __init__(self, **config: Any) -> None:
        super().__init__()
        cfg = DiscriminatorConfig.from_dict(config)
        self.cfg = cfg
        ch = cfg.channels
        log_size = int(math.log2(cfg.size))
        blocks: list[nn.Module] = [ConvLayer(3, ch[cfg.size], 1)]
        in_ch = ch[cfg.size]
        for i in range(log_size, 2, -1):
            out_ch = ch[2 ** (i - 1)]
            blocks.append(ResBlock(in_ch, out_ch, cfg.blur_kernel))
            in_ch = out_ch
        self.convs = nn.Sequential(*blocks)
        self.stddev_group = cfg.stddev_group
        self.stddev_feat = cfg.stddev_feat
        self.final_conv = ConvLayer(in_ch + cfg.stddev_feat, ch[4], 3)
        self.final_linear = nn.Sequential(
            EqualLinear(ch[4] * 4 * 4, ch[4], activation=True),
            EqualLinear(ch[4], 1),
        )

    def config(self) -> dict[str, Any]:
        return self.cfg.to_dict()

    def minibatch_stddev(self, x: Tensor) -> Tensor:
        """Append the across-group standard deviation as one extra feature map per group."""
        batch, channels, height, width = x.shape
        group = min(batch, self.stddev_group)
        if batch % group:
            raise ValueError(f"discriminator batch {batch} is not divisible by its minibatch-stddev "
                             f"group {group}")
        y = x.view(group, -1, self.stddev_feat, channels // self.stddev_feat, height, width)
        # float32: the 1e-8 vanishes in fp16 under autocast (then sqrt'(0) = inf)
        y = torch.sqrt(y.float().var(0, unbiased=False) + 1e-8).to(x.dtype)
        y = y.mean([2, 3, 4], keepdim=True).squeeze(2)
        y = y.repeat(group, 1, height, width)
        return torch.cat([x, y], 1)

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[-1] != self.cfg.size or images.shape[-2] != self.cfg.size:
            raise ValueError(f"discriminator expects {self.cfg.size}×{self.cfg.size} images, "
                             f"got {images.shape[-2]}×{images.shape[-1]}")
        out = self.minibatch_stddev(self.convs(images))
        out = self.final_conv(out)
        return self.final_linear(out.reshape(out.shape[0], -1))
