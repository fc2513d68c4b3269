"""Evaluation metrics (thesis, "Experiments setup" and Tables 4.1–4.3), one module per family.

Reconstruction (pairs of prediction and target, images RGB in ``[0, 1]``):

* ``mse``, ``psnr``, ``ssim`` (:mod:`.image`): pixel metrics equal to scikit-image's.
  MSE, PSNR, SSIM work on images in ``[0, 1]`` (pSp's ``l2`` on ``[-1, 1]`` is 4× MSE).
* ``lpips`` (:mod:`.lpips`): the ``lpips`` package (v0.1, ``net=alex|vgg``) with a local
  torchvision backbone.
* ``id`` (:mod:`.id`): identity cosine similarity, ``backend=dlib`` or ``backend=arcface``.

Realism and domain adaptation (no pairing needed):

* ``fid`` (:mod:`.fid`): Fréchet Inception distance with the TF-FID Inception.
* ``clip_quality``, ``clip_diversity`` (:mod:`.clip`): HyperDomainNet's CLIP metrics.

Shared machinery (:class:`~.base.BaseMetric`, :class:`~.base.PerImageMetric`) is in
:mod:`.base`.  Metrics whose network has random weights refuse to run unless
``allow_random=true`` and then report ``random_weights = True``; ``stylebridge eval``
(:mod:`stylebridge.pipelines.evaluate`) labels every such number.
"""
