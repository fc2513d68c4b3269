"""Issue 19, items 8 and 9: the test-only random CLIP is seeded and open_clip's notice silenced."""

from __future__ import annotations

import logging

import pytest
import torch


@pytest.mark.slow
def test_random_clip_build_is_seeded_and_quiet(caplog) -> None:
    from stylebridge.pipelines.train_domain import build_clip_models

    before = torch.random.get_rng_state()
    with caplog.at_level(logging.WARNING):
        a, = build_clip_models(["ViT-B-32"], {}, allow_random=True, seed=3)
        b, = build_clip_models(["ViT-B-32"], {}, allow_random=True, seed=3)
        c, = build_clip_models(["ViT-B-32"], {}, allow_random=True, seed=4)
    assert a.random_weights and b.random_weights
    sa, sb, sc = (m.model.state_dict() for m in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)          # same seed: the same model
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    assert torch.equal(torch.random.get_rng_state(), before)   # the global RNG is untouched
    assert not any("No pretrained weights" in r.getMessage() for r in caplog.records)


def test_a_clip_weights_file_marked_random_loads_as_random(tmp_path) -> None:
    """The tiny preset's CLIP files carry ``random_weights: true`` in their metadata: a model
    loaded from one is labelled random like a model built without weights (so whatever is
    trained through it says RANDOM), and an unmarked file is not."""
    import open_clip
    from safetensors.torch import save_file

    from stylebridge.pipelines.presets import register_tiny_clip_configs
    from stylebridge.plugins.nets.clip import load_clip

    register_tiny_clip_configs(tmp_path / "clip")
    name = "tiny-vit-p8"
    model = open_clip.create_model(name, pretrained=None)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp_path / "marked.safetensors"), metadata={"random_weights": "true"})
    save_file(state, str(tmp_path / "plain.safetensors"), metadata={"format": "pt"})
    # a plain state dict does not say which activation it was trained with: warned each time
    with pytest.warns(UserWarning, match="loaded with GELU"):
        assert load_clip(name, tmp_path / "marked.safetensors").random_weights is True
    with pytest.warns(UserWarning, match="loaded with GELU"):
        assert load_clip(name, tmp_path / "plain.safetensors").random_weights is False


def test_a_clip_file_is_loaded_once_while_it_is_held(tmp_path) -> None:
    """Two users of one weights file on one device share the model (read once: one GELU
    warning); a rewritten file loads again; the share keeps nothing alive on its own."""
    import gc
    import os
    import warnings
    import weakref

    import open_clip
    from safetensors.torch import save_file

    from stylebridge.pipelines.presets import register_tiny_clip_configs
    from stylebridge.plugins.nets.clip import ClipActivationWarning, load_clip

    register_tiny_clip_configs(tmp_path / "clip")
    name = "tiny-vit-p8"
    model = open_clip.create_model(name, pretrained=None)
    path = tmp_path / "w.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    with pytest.warns(ClipActivationWarning):
        first = load_clip(name, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not read again: no second warning
        assert load_clip(name, path) is first
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # rewritten
    with pytest.warns(ClipActivationWarning):
        again = load_clip(name, path)
    assert again is not first
    assert torch.equal(again.model.visual.conv1.weight, first.model.visual.conv1.weight)
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None


def test_a_text_longer_than_clip_reads_is_refused_not_cut() -> None:
    """open_clip's tokenizer cuts a text at its context length without a word: a 1,560-character
    prompt and its first 150 characters plus other words trained bit-identical domains.  The
    text is refused in one line saying how many tokens it has and how many CLIP reads."""
    import open_clip

    from stylebridge.errors import StylebridgeError
    from stylebridge.plugins.nets.clip import ClipModel

    tokenizer = open_clip.get_tokenizer("ViT-B-32")  # context 77: 75 tokens of text
    clip = ClipModel(name="ViT-B-32", model=None, tokenizer=tokenizer, image_size=224,
                     random_weights=True)
    clip.check_texts(["a 3d render in the style of Pixar", "cat " * 75])  # fits exactly
    with pytest.raises(StylebridgeError) as refused:
        clip.encode_text(["a photo", "cat " * 76])
    assert str(refused.value) == ("text 'cat cat cat cat cat cat cat cat cat cat cat cat cat cat "
                                  "c...' is 76 tokens long; CLIP ViT-B-32 reads 75, the rest "
                                  "would be ignored: shorten it")
