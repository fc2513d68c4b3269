"""StyleGAN2 (config-f) generator and discriminator, with style-space and feature APIs."""

from stylebridge.core.stylegan2.config import DiscriminatorConfig, GeneratorConfig
from stylebridge.core.stylegan2.discriminator import Discriminator
from stylebridge.core.stylegan2.generator import Generator, StyleLayer

__all__ = ["Discriminator", "DiscriminatorConfig", "Generator", "GeneratorConfig", "StyleLayer"]
