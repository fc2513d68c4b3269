"""The small core: interfaces, checkpoint format, StyleGAN2 and its ops."""
