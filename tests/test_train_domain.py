"""Training a domain from a text prompt or one reference image.

CLIP losses (``stylebridge.plugins.losses.clip``), the trainer
(``stylebridge.pipelines.training.domain``), the pipeline (``stylebridge.pipelines.train_domain``)
and ``stylebridge train domain`` (``stylebridge.cli.commands.train``).  The CLIP networks here are tiny
open_clip ``CLIP`` models on RANDOM weights (tests only: they check the arithmetic and
the training machinery, not the quality of a domain); the generator is the 32 px
``tiny_generator``.  Expected values are computed directly from open_clip outputs with
plain loops, never from earlier runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import one_torch_thread, tiny_generator
from torch import Tensor, nn

from stylebridge.cli.commands import train as train_cli
from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint, read_header
from stylebridge.core.interfaces import (
    DomainMethod,
    Encoder,
    Inversion,
    Loss,
    LossBatch,
    Preprocessing,
)
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.errors import RegistryError, StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.plugins.losses.clip import (
    ClipDirectionLoss,
    ClipGuide,
    DifaLocalLoss,
    DifaSccLoss,
    InDomainLoss,
    center_square,
    mean_embeddings,
    text_templates,
)
from stylebridge.plugins.nets.clip import ClipModel
from stylebridge.registry import get_registry, hookimpl, reset_registry

TEMPLATES = ["a photo of {}.", "{} art"]


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Single-threaded: much faster for these tiny networks on a shared machine, deterministic."""
    with one_torch_thread():
        yield


def tiny_clip(seed: int, patch: int = 8, name: str = "tiny") -> ClipModel:
    """An open_clip CLIP (ViT, 4 blocks, width 64, 32 px input) on RANDOM weights."""
    import open_clip
    from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg

    torch.manual_seed(seed)
    model = CLIP(embed_dim=32,
                 vision_cfg=CLIPVisionCfg(layers=4, width=64, head_width=32, patch_size=patch,
                                          image_size=32, mlp_ratio=2.0),
                 text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=32, heads=2,
                                      layers=1))
    return ClipModel(name=name, model=model.eval().requires_grad_(False),
                     tokenizer=open_clip.get_tokenizer("ViT-B-32"), image_size=32,
                     random_weights=True)


@pytest.fixture(scope="module")
def clips() -> list[ClipModel]:
    return [tiny_clip(0, 8, "tiny-a"), tiny_clip(1, 16, "tiny-b")]


class Offsets(DomainMethod):
    """Test method: one additive offset per style layer (like StyleSpace, incl. ToRGB)."""

    name = "test-offsets"

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        self.channels = list(channels)
        self.offsets = nn.ParameterList([nn.Parameter(torch.zeros(c)) for c in self.channels])

    @classmethod
    def for_generator(cls, generator: Any) -> Offsets:
        return cls([layer.channels for layer in generator.style_layers()])

    def config(self) -> dict[str, Any]:
        return {"channels": self.channels}

    def styles(self, generator: Any, w_plus: Tensor, offset_scale: Any = None) -> list[Tensor]:
        styles = generator.styles(w_plus)
        if len(styles) != len(self.offsets):
            raise ValueError(f"{len(self.offsets)} offsets for {len(styles)} style layers")
        scale = [1.0] * len(styles) if offset_scale is None else [float(x) for x in offset_scale]
        return [s + scale[i] * self.offsets[i] for i, s in enumerate(styles)]


class TinyEncoder(Encoder):
    """Test encoder: image → w+ ``[B, 8, 32]`` (a strided conv and a linear layer)."""

    name = "test-tiny-encoder"

    def __init__(self, n_latent: int = 8, style_dim: int = 32, scale: float = 0.02) -> None:
        super().__init__()
        self.preprocessing = Preprocessing(size=32)
        self.n_latent, self.style_dim, self.scale = n_latent, style_dim, scale
        g = torch.Generator().manual_seed(5)
        self.conv = nn.Conv2d(3, 8, 4, stride=4)
        self.fc = nn.Linear(8 * 8 * 8, n_latent * style_dim)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(scale * torch.randn(p.shape, generator=g))

    def config(self) -> dict[str, Any]:
        return {"n_latent": self.n_latent, "style_dim": self.style_dim, "scale": self.scale}

    def encode(self, images: Tensor) -> Inversion:
        x = torch.tanh(self.conv(self.preprocessing(images))).flatten(1)
        return Inversion(w_plus=self.fc(x).view(-1, self.n_latent, self.style_dim))


class NanAfter(Loss):
    """Test loss: mean image value, NaN from (0-based) step ``at`` on."""

    name = "test-nan-after"
    requires = frozenset({"output", "step"})

    def __init__(self, at: int = 3) -> None:
        super().__init__()
        self.at = int(at)

    def config(self) -> dict[str, Any]:
        return {"at": self.at}

    def forward(self, batch: LossBatch) -> Tensor:
        value = batch.require("output", self.name).mean()
        return value * float("nan") if batch.require("step", self.name) >= self.at else value


class _TestPlugins:
    @staticmethod
    @hookimpl
    def register_domain_methods(register: Any) -> None:
        register(Offsets)

    @staticmethod
    @hookimpl
    def register_losses(register: Any) -> None:
        register(NanAfter)

    @staticmethod
    @hookimpl
    def register_encoders(register: Any) -> None:
        register(TinyEncoder)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The process registry with the test plugins; no installed CLIP weights are looked up."""
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))
    reset_registry()
    reg = get_registry()
    reg.add_plugin(_TestPlugins, "test-train-domain")
    yield reg
    reset_registry()


@pytest.fixture
def tiny_clips_in_cli(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Make the CLI load tiny random CLIP models instead of ViT-B-32/16 (tests only)."""
    calls: list[dict[str, Any]] = []

    def fake(names: Any, weights: Any, *, allow_random: bool, device: Any = "cpu",
             seed: int = 0) -> list[ClipModel]:
        calls.append({"names": list(names), "allow_random": allow_random, "seed": seed})
        if not allow_random:
            raise StylebridgeError("no weights for CLIP (fake loader)")
        return [tiny_clip(i, 8, f"tiny-{n}") for i, n in enumerate(names)]

    monkeypatch.setattr(td, "build_clip_models", fake)
    return calls


def _images(seed: int, n: int = 3, size: int = 32) -> Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _direct_embed(clip: ClipModel, images_m11: Tensor) -> Tensor:
    e = clip.model.encode_image(clip.preprocess((images_m11 + 1) / 2))
    return e / e.norm(dim=-1, keepdim=True)


def _direct_text(clip: ClipModel, texts: list[str]) -> Tensor:
    e = clip.model.encode_text(clip.tokenizer(texts))
    return e / e.norm(dim=-1, keepdim=True)


def _direct_tokens(clip: ClipModel, images01: Tensor, layer: int) -> Tensor:
    """Patch tokens after block ``layer``, by running open_clip's blocks one by one."""
    visual = clip.model.visual
    assert visual.transformer.batch_first
    x = visual._embeds(clip.preprocess(images01))
    for block in visual.transformer.resblocks[: layer + 1]:
        x = block(x)
    return x[:, 1:]


# ---------------------------------------------------------------------------------------------
# (1) each loss against a direct computation


@torch.no_grad()
def test_clip_direction_text_matches_direct_open_clip(clips: list[ClipModel]) -> None:
    guide = ClipGuide.from_text(clips, "pixar character", "human face", TEMPLATES)
    src, trg = _images(0), _images(1)
    expected = []
    for clip in clips:
        d_t = (_direct_text(clip, [t.format("pixar character") for t in TEMPLATES])
               - _direct_text(clip, [t.format("human face") for t in TEMPLATES])).mean(0)
        d_i = _direct_embed(clip, trg) - _direct_embed(clip, src)
        cos = (d_i @ d_t) / (d_i.norm(dim=1) * d_t.norm())
        expected.append((1 - cos).mean())
    batch = LossBatch(output=trg, source=src, clip_guide=guide)
    got = ClipDirectionLoss()(batch)
    assert torch.allclose(got, sum(expected), atol=1e-5)   # StyleDomain: summed over models
    mean = ClipDirectionLoss(reduction="mean")(batch)
    assert torch.allclose(mean, sum(expected) / 2, atol=1e-5)
    assert 0.0 < float(expected[0]) < 2.0 and abs(float(expected[0] - expected[1])) > 1e-4


@torch.no_grad()
def test_clip_direction_image_target_is_difa_global_loss(clips: list[ClipModel]) -> None:
    ref = torch.rand(3, 40, 48, generator=torch.Generator().manual_seed(3))
    source_batches = [(_images(4, 2) + 1) / 2, (_images(5, 3) + 1) / 2]
    v_source = mean_embeddings(clips, source_batches)
    src, trg = _images(6, 2), _images(7, 2)
    expected = 0.0
    for clip, v in zip(clips, v_source, strict=True):
        raw = torch.cat([clip.model.encode_image(clip.preprocess(b)) for b in source_batches])
        v_direct = raw.mean(0) / raw.mean(0).norm()
        assert torch.allclose(v[0], v_direct, atol=1e-6)
        e_ref = clip.model.encode_image(clip.preprocess(ref[None, :, :, 4:44]))  # centre 40×40
        d_domain = (e_ref / e_ref.norm())[0] - v_direct
        d_i = _direct_embed(clip, trg) - _direct_embed(clip, src)
        expected += float((1 - (d_i @ d_domain) / (d_i.norm(dim=1) * d_domain.norm())).mean())
    guide = ClipGuide.from_image(clips, ref, v_source)
    got = ClipDirectionLoss()(LossBatch(output=trg, source=src, clip_guide=guide))
    assert abs(float(got) - expected) < 1e-5


@torch.no_grad()
def test_indomain_matches_pairwise_loop(clips: list[ClipModel]) -> None:
    guide = ClipGuide.from_text(clips, "a", "b", ["{}"])
    src, trg = _images(8, 4), _images(9, 4)
    expected = 0.0
    for clip in clips:
        es, et = _direct_embed(clip, src), _direct_embed(clip, trg)
        pairs = [(i, j) for i in range(4) for j in range(i)]
        expected += sum(float((es[i] @ es[j] - et[i] @ et[j]) ** 2) for i, j in pairs) / len(pairs)
    got = InDomainLoss()(LossBatch(output=trg, source=src, clip_guide=guide))
    assert abs(float(got) - expected) < 1e-6 and expected > 0
    same = InDomainLoss()(LossBatch(output=src, source=src, clip_guide=guide))
    assert float(same) == pytest.approx(0.0, abs=1e-10)
    with pytest.raises(StylebridgeError, match="batch 2"):
        InDomainLoss()(LossBatch(output=trg[:1], source=src[:1],
                                 clip_guide=guide))


@torch.no_grad()
def test_difa_local_matches_token_matching_loop(clips: list[ClipModel]) -> None:
    layer = 2
    ref = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(10))
    guide = ClipGuide.from_image(clips, ref, [torch.randn(1, 32), torch.randn(1, 32)])
    trg = _images(11, 2)
    expected = 0.0
    for clip in clips:
        tok = _direct_tokens(clip, (trg + 1) / 2, layer)
        ref_tok = F.normalize(_direct_tokens(clip, ref[None], layer)[0], dim=-1)
        per_image = []
        for b in range(trg.shape[0]):
            cost = 1 - F.normalize(tok[b], dim=-1) @ ref_tok.T        # [N, M]
            per_image.append(max(float(cost.min(dim=1).values.mean()),
                                 float(cost.min(dim=0).values.mean())))
        expected += sum(per_image) / len(per_image)
    got = DifaLocalLoss(layer=layer)(LossBatch(output=trg, clip_guide=guide))
    assert abs(float(got) - expected) < 1e-5 and expected > 0
    # the reference against itself: every token finds itself, cost 0
    self_batch = LossBatch(output=ref[None] * 2 - 1, clip_guide=guide)
    assert float(DifaLocalLoss(layer=layer)(self_batch)) == pytest.approx(0.0, abs=1e-5)
    text_guide = ClipGuide.from_text(clips, "a", "b", ["{}"])
    with pytest.raises(StylebridgeError, match="reference image"):
        DifaLocalLoss()(LossBatch(output=trg, clip_guide=text_guide))


def test_difa_w_window_mask_and_ramp_match_hand_computation() -> None:
    loss = DifaSccLoss(alpha=0.5, window=2, keep_rows=2)
    g = torch.Generator().manual_seed(12)
    calls = [(torch.randn(2, 3, 4, generator=g), torch.randn(2, 3, 4, generator=g))
             for _ in range(3)]
    window: list[tuple[Tensor, Tensor]] = []
    for k, (src, trg) in enumerate(calls):
        s, t = src[:, :2].reshape(2, 8), trg[:, :2].reshape(2, 8)   # first 2 rows, flattened
        window = ([*window, (s.mean(0), t.mean(0))])[-2:]          # sliding window of 2
        delta = torch.stack([b for _, b in window]).mean(0) - torch.stack([a for a, _ in window]).mean(0)
        order = sorted(range(8), key=lambda c: abs(float(delta[c])))
        mask = torch.zeros(8)
        mask[order[:4]] = 1                                         # α = 0.5 of 8 channels
        step, total = 3 + k, 9
        ramp = max(0.0, (step - 2) / (total - 2))
        expected = ramp * float((mask * (t - s)).abs().mean())
        got = loss(LossBatch(target_latents=trg, source_latents=src, step=step,
                             total_steps=total))
        assert float(got) == pytest.approx(expected, rel=1e-6, abs=1e-9)
        assert expected > 0
    # the window state survives a round trip (resume)
    copy = DifaSccLoss(alpha=0.5, window=2, keep_rows=2)
    copy.load_training_state(loss.training_state())
    nxt = {"target_latents": calls[0][1], "source_latents": calls[0][0], "step": 8, "total_steps": 9}
    assert float(copy(LossBatch(**nxt))) == float(loss(LossBatch(**nxt)))
    assert loss.ramp(1, 9) == 0.0 and loss.ramp(9, 9) == 1.0 and DifaSccLoss().ramp(40, 30) == 0.0


def test_text_templates_are_stylegan_nada_imagenet_list() -> None:
    templates = text_templates()
    assert len(templates) == 79 and "a photo of many {}." not in templates
    assert templates[0] == "a bad photo of a {}." and all("{}" in t for t in templates)
    assert text_templates("none") == ["{}"]


def test_center_square_crops_the_middle() -> None:
    x = torch.arange(2 * 4 * 6).float().view(1, 2, 4, 6)
    assert torch.equal(center_square(x), x[..., :, 1:5])


# ---------------------------------------------------------------------------------------------
# (2) training changes only the method


def _image_trainer(clips: list[ClipModel], out: Path, *, steps: int, method: DomainMethod | None = None,
                   mixing: float = 0.0, window: int = 5, **settings: Any) -> td.DomainTrainer:
    gen = tiny_generator()
    method = method or Offsets.for_generator(gen)
    ref = torch.zeros(3, 40, 48)
    ref[0, :, :24] = 1.0
    ref[2, 10:30] = 0.8
    v_source = mean_embeddings(clips[:1], td.source_image_batches(gen, 16, 8, 0.8, seed=1))
    guide = ClipGuide.from_image(clips[:1], ref, v_source)
    losses = [("clip_direction", 1.0, ClipDirectionLoss()),
              ("difa_w", 6.0, DifaSccLoss(window=window)),
              ("difa_local", 1.0, DifaLocalLoss(layer=1))]
    cfg = {"batch": 2, "lr": 0.08, "warmup_steps": 5, "mixing": mixing, "checkpoint_every": 0,
           **settings}
    return td.DomainTrainer(gen, method, losses, td.TrainSettings(steps=steps, **cfg), out=out,
                            guide=guide, encoder=TinyEncoder(), fingerprint={"test": 1})


def test_training_decreases_loss_and_changes_only_the_method(clips: list[ClipModel],
                                                             tmp_path: Path) -> None:
    trainer = _image_trainer(clips, tmp_path / "d.safetensors", steps=30, batch=4,
                             freeze_layers=(0, 1))
    gen_before = {k: v.clone() for k, v in trainer.generator.state_dict().items()}
    clip_before = {k: v.clone() for k, v in clips[0].model.state_dict().items()}
    enc_before = {k: v.clone() for k, v in trainer.encoder.state_dict().items()}
    result = trainer.train()
    total = [h["total"] for h in result.history]
    direction = [h["clip_direction"] for h in result.history]
    assert len(total) == 30 and all(torch.isfinite(torch.tensor(total)))
    local = [h["difa_local"] for h in result.history]
    first, last = sum(total[:5]) / 5, sum(total[-5:]) / 5
    assert last < 0.8 * first, (first, last)
    assert sum(direction[-5:]) / 5 < 0.6 * sum(direction[:5]) / 5
    assert sum(local[-5:]) / 5 < 0.85 * sum(local[:5]) / 5
    assert result.history[0]["difa_w"] == 0.0 < result.history[-1]["difa_w"]   # ramped in
    for k, v in trainer.generator.state_dict().items():
        assert torch.equal(v, gen_before[k]), k
    for k, v in clips[0].model.state_dict().items():
        assert torch.equal(v, clip_before[k]), k
    for k, v in trainer.encoder.state_dict().items():
        assert torch.equal(v, enc_before[k]), k
    offsets = [p.detach() for p in trainer.method.offsets]
    assert float(offsets[0].abs().max()) == 0.0 and float(offsets[1].abs().max()) == 0.0  # frozen
    assert all(float(offsets[i].abs().max()) > 1e-3 for i in range(2, len(offsets)))
    # the checkpoint rebuilds the trained method; the header records the run
    header, tensors = load_checkpoint(result.checkpoint, kind="domain_method", plugin="test-offsets")
    assert header.extra["step"] == 30 and header.extra["clip"]["random_weights"] is True
    assert any("RANDOM CLIP WEIGHTS" in n for n in header.extra["notes"])
    assert header.extra["losses"]["difa_w"]["weight"] == 6.0
    for i, p in enumerate(offsets):
        assert torch.equal(tensors[f"offsets.{i}"], p)


@pytest.mark.parametrize("spec", ["stylespace", "affine_plus"])
def test_registered_domain_methods_train_without_touching_the_generator(
        clips: list[ClipModel], tmp_path: Path, spec: str) -> None:
    registry = get_registry()
    # built-ins (pyproject's entry points): an unregistered one is a regression, not a skip
    assert spec in registry.names("domain_method"), sorted(registry.names("domain_method"))
    gen = tiny_generator()
    method = td.build_domain_method(spec, gen)
    before_gen = {k: v.clone() for k, v in gen.state_dict().items()}
    before = {k: v.clone() for k, v in method.state_dict().items()}
    guide = ClipGuide.from_text(clips[:1], "pixar", "human", ["{}"])
    losses = td.build_losses(["clip_direction:1", "indomain:0.25"], registry=registry)
    trainer = td.DomainTrainer(gen, method, losses, td.TrainSettings(steps=4, batch=2, lr=0.05,
                               freeze_layers=td.parse_freeze_layers("coarse", gen)),
                               out=tmp_path / f"{spec}.safetensors", guide=guide)
    trainer.train()
    for k, v in gen.state_dict().items():
        assert torch.equal(v, before_gen[k]), k
    changed = [k for k, v in method.state_dict().items() if not torch.equal(v, before[k])]
    assert changed
    loaded = registry.load("domain_method", tmp_path / f"{spec}.safetensors")
    w = gen.make_wplus(torch.randn(2, gen.style_dim, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(loaded.styles(gen, w), method.styles(gen, w),
                                                     strict=True))
        # coarse layers (first 6 conv style layers) keep the source styles
        src = gen.styles(w)
        trained = method.styles(gen, w)
        coarse = gen.conv_style_indices()[:6]
        assert all(torch.allclose(trained[i], src[i]) for i in coarse)
        assert any(not torch.allclose(trained[i], src[i]) for i in range(len(src))
                   if i not in coarse)


def test_difa_w_gradient_reaches_the_method_through_the_encoder(tmp_path: Path) -> None:
    gen = tiny_generator()
    method = Offsets.for_generator(gen)
    with torch.no_grad():
        for p in method.offsets:
            p.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(p.numel()))
    init = [p.detach().clone() for p in method.offsets]
    trainer = td.DomainTrainer(gen, method, [("difa_w", 6.0, DifaSccLoss(window=1))],
                               td.TrainSettings(steps=3, batch=2, mixing=0.0, checkpoint_every=0),
                               out=tmp_path / "d.safetensors", encoder=TinyEncoder(scale=0.2))
    trainer.train(until=2)   # ramp (step - 1) / (3 - 1) is 0 at steps 0 and 1: nothing moves
    assert all(torch.equal(p, q) for p, q in zip(method.offsets, init, strict=True))
    history = trainer.train().history
    assert history[-1]["difa_w"] > 0
    assert any(not torch.equal(p, q) for p, q in zip(method.offsets, init, strict=True))


# ---------------------------------------------------------------------------------------------
# (3) resume continues exactly


def test_resume_is_exact_python_api(clips: list[ClipModel], tmp_path: Path) -> None:
    n = 3
    full = _image_trainer(clips, tmp_path / "full.safetensors", steps=2 * n, mixing=0.5, window=2,
                          warmup_steps=4)
    full.train()
    part = _image_trainer(clips, tmp_path / "part.safetensors", steps=2 * n, mixing=0.5, window=2,
                          warmup_steps=4)
    part.train(until=n)
    assert read_header(tmp_path / "part.safetensors").extra["step"] == n
    state = load_checkpoint(tmp_path / "part.train-state.safetensors", kind="train_state")[1]
    assert "loss.1.source" in state and "optim.2.exp_avg" in state and "rng" in state
    resumed = _image_trainer(clips, tmp_path / "part.safetensors", steps=2 * n, mixing=0.5,
                             window=2, warmup_steps=4)
    assert resumed.load_state() == n
    resumed.train()
    for a, b in zip(full.method.parameters(), resumed.method.parameters(), strict=True):
        assert torch.equal(a, b)
    assert any(float(p.detach().abs().max()) > 0 for p in full.method.parameters())
    # a different run refuses the state with a one-line error
    other = _image_trainer(clips, tmp_path / "part.safetensors", steps=2 * n, mixing=0.5, window=2,
                           warmup_steps=4)
    other.fingerprint = {"test": 2}
    with pytest.raises(StylebridgeError, match="cannot resume with different settings: test 1 then, 2 now; "):
        other.load_state()


def test_resume_reads_loss_specs_by_meaning(clips: list[ClipModel], tmp_path: Path) -> None:
    """``--loss clip_direction:1`` resumes a run started with ``clip_direction:1.0`` (the same
    term, typed otherwise); another weight is refused, naming the specs as typed."""
    out = tmp_path / "d.safetensors"
    first = _image_trainer(clips, out, steps=2)
    first.fingerprint = {"losses": ["clip_direction:1.0", "difa_w:6:after=1"]}
    first.train(until=1)
    again = _image_trainer(clips, out, steps=2)
    again.fingerprint = {"losses": ["clip_direction:1", "difa_w:6.0:after=1"]}
    assert again.load_state() == 1
    other = _image_trainer(clips, out, steps=2)
    other.fingerprint = {"losses": ["clip_direction:2", "difa_w:6:after=1"]}
    with pytest.raises(StylebridgeError, match=r'--loss \["clip_direction:1.0"'):
        other.load_state()


def test_random_weights_other_than_clip_are_named_and_recorded(clips: list[ClipModel],
                                                                tmp_path: Path) -> None:
    """A random generator (its provenance) or a loss network on random weights is announced
    when training starts and marks the domain checkpoint random (before: only CLIP was)."""
    from stylebridge.registry.resolve import Provenance, record_provenance

    trainer = _image_trainer(clips, tmp_path / "d.safetensors", steps=1)
    assert trainer.random_parts == []
    assert trainer.checkpoint_extra()["random_parts"] == ["CLIP"]   # the tiny CLIPs are random
    trainer.terms[2].module.random_weights = True  # difa_local, as built with allow_random
    record_provenance(trainer.generator, Provenance("random", tmp_path / "g.safetensors"))
    events: list[Any] = []
    trainer.train(progress=events.append)
    assert trainer.random_parts == ["generator", "loss difa_local"]
    notices = [e.text + e.detail for e in events if e.kind == "notice"]
    assert notices == ["RANDOM WEIGHTS: training through generator, loss difa_local with "
                       "random (untrained) weights; the domain will not be a real one"]
    header = read_header(tmp_path / "d.safetensors").extra
    assert header["random_weights"] is True
    assert header["random_parts"] == ["generator", "loss difa_local", "CLIP"]


def test_ctrl_c_saves_the_domain_after_the_step(clips: list[ClipModel], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    from stylebridge.pipelines.training.interrupt import TrainingInterrupted

    full = _image_trainer(clips, tmp_path / "full.safetensors", steps=4, checkpoint_every=0)
    full.train()
    part = _image_trainer(clips, tmp_path / "part.safetensors", steps=4, checkpoint_every=0)
    step = part.training_step

    def step_then_ctrl_c() -> Any:
        values = step()
        if part.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return values

    monkeypatch.setattr(part, "training_step", step_then_ctrl_c)
    with pytest.raises(TrainingInterrupted, match=r"^interrupted \(SIGINT\) after step 2; "):
        part.train()
    assert read_header(tmp_path / "part.safetensors").extra["step"] == 2
    resumed = _image_trainer(clips, tmp_path / "part.safetensors", steps=4, checkpoint_every=0)
    assert resumed.load_state() == 2
    resumed.train()
    for a, b in zip(full.method.parameters(), resumed.method.parameters(), strict=True):
        assert torch.equal(a, b)


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def generator_ckpt(tmp_path: Path) -> Path:
    return save_stylegan2(tmp_path / "g.safetensors", tiny_generator())


def _text_args(gen: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "domain", "--method", "test-offsets", "--text", "a pixar render",
            "--templates", "none", "--generator", str(gen), "--out", str(out), "--batch", "2",
            "--allow-random-clip", "--clip", "ViT-B-32", "--device", "cpu",
            "--freeze-layers", "none", *extra]


def test_cli_resume_equals_uninterrupted_run(registry: Any, tiny_clips_in_cli: list,
                                             generator_ckpt: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    code, out, err = _cli(capsys, *_text_args(generator_ckpt, a, "--steps", "4",
                                              "--sample-every", "2", "--checkpoint-every", "2"))
    assert code == 0, err
    assert "RANDOM CLIP WEIGHTS" in out
    assert sorted(p.name for p in (tmp_path / "a_samples").iterdir()) == ["step000002.png",
                                                                          "step000004.png"]
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "2"))
    assert code == 0, err
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "4"))
    assert code == 2 and "--resume" in err and len(err.strip().splitlines()) == 1
    code, out, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "4", "--resume"))
    assert code == 0, err
    assert "resuming from step 2" in out
    ha, ta = load_checkpoint(a)
    hb, tb = load_checkpoint(b)
    assert ha.extra["step"] == hb.extra["step"] == 4
    assert ha.extra["target"] == {"text": "a pixar render", "source_text": "Human",
                                  "templates": "none"}
    assert set(ha.extra["losses"]) == {"clip_direction"}     # text default: thesis Eq. 4
    assert ha.extra["losses"]["clip_direction"]["weight"] == 1.0
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert any(float(t.abs().max()) > 0 for t in ta.values())
    assert all(c["allow_random"] for c in tiny_clips_in_cli)
    # a finished run resumed: nothing to do; with --steps below its step: refused (it exited
    # 0 saying "nothing to do", read as a 2-step model), the file left as it was
    code, out, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "4", "--resume"))
    assert code == 0 and "already trained for 4 steps" in " ".join(out.split())
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "2", "--resume"))
    # stderr: the random-CLIP notice (said before the run is checked), then the error alone
    notices, _, error = err.strip().rpartition("\n")
    assert code == 2 and "is at step 4, past --steps 2: give --steps 4 or more" in error
    assert error.startswith("error: ") and notices.startswith("RANDOM CLIP WEIGHTS")
    assert "error" not in notices, err
    assert all(torch.equal(tb[k], load_checkpoint(b)[1][k]) for k in tb)
    # --resume with --force: which was meant? (--force was silently ignored)
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "6", "--resume"),
                        "--force")
    assert code == 2 and err == ("error: --resume continues the run in --out and --force "
                                 "starts it over: give one of them\n")
    # resuming with another batch size is refused, in one line
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "6", "--resume"),
                        "--batch", "3")
    notices, _, error = err.strip().rpartition("\n")  # the random-CLIP notice, the error
    assert code == 2 and "cannot resume" in error and "batch" in error
    assert error.startswith("error: ") and notices.startswith("RANDOM CLIP WEIGHTS")
    assert "error" not in notices, err
    # ... and so is resuming with other CLIP weights than the run started with (random here)
    weights = tmp_path / "clip.safetensors"
    weights.write_bytes(b"stand-in weights file (the fake loader does not read it)")
    code, _, err = _cli(capsys, *_text_args(generator_ckpt, b, "--steps", "6", "--resume"),
                        "--clip-weights", f"ViT-B-32={weights}")
    assert code == 2 and "cannot resume with different settings: --clip-weights " in err
    assert "random" in err


# ---------------------------------------------------------------------------------------------
# (4) NaN guard


def test_nan_loss_stops_and_keeps_last_good_checkpoint(registry: Any, generator_ckpt: Path,
                                                       tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.safetensors"
    code, _, err = _cli(capsys, "train", "domain", "--method", "test-offsets", "--text", "x",
                        "--generator", str(generator_ckpt), "--out", str(out), "--steps", "10",
                        "--loss", "test-nan-after:1:at=3", "--checkpoint-every", "2",
                        "--sample-every", "0", "--batch", "2", "--device", "cpu")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"error: loss became NaN at step 4; last good checkpoint kept at {out}")
    header, tensors = load_checkpoint(out)
    assert header.extra["step"] == 2
    assert all(bool(torch.isfinite(t).all()) for t in tensors.values())
    assert read_header(td.state_path_for(out)).extra["step"] == 2


def test_nan_before_any_checkpoint_says_so(tmp_path: Path) -> None:
    gen = tiny_generator()
    trainer = td.DomainTrainer(gen, Offsets.for_generator(gen), [("nan", 1.0, NanAfter(at=0))],
                               td.TrainSettings(steps=3, batch=1), out=tmp_path / "d.safetensors")
    with pytest.raises(td.TrainingDivergedError,
                       match="loss became NaN at step 1; no checkpoint was written in this run"):
        trainer.train()
    assert not (tmp_path / "d.safetensors").exists()


# ---------------------------------------------------------------------------------------------
# (5) one-line CLI errors


@pytest.mark.parametrize("case", ["empty-prompt", "blank-prompt", "missing-image", "no-weights",
                                  "no-encoder", "other-generator", "unknown-loss"])
def test_cli_errors_are_one_line(registry: Any, generator_ckpt: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str], case: str) -> None:
    base = ["train", "domain", "--method", "test-offsets", "--generator", str(generator_ckpt),
            "--out", str(tmp_path / "d.safetensors"), "--device", "cpu"]
    expect = {
        "empty-prompt": (["--text", ""], "--text is empty"),
        "blank-prompt": (["--text", "   "], "--text is empty"),
        "missing-image": (["--image", str(tmp_path / "nope.png")], "nope.png: no such file"),
        "no-weights": (["--text", "pixar", "--templates", "none", "--clip", "ViT-B-32"],
                       "not installed: clip-vit-b-32 (for --clip ViT-B-32); run `stylebridge "
                       "weights fetch clip-vit-b-32`; or give --clip-weights ViT-B-32=PATH"),
        "no-encoder": (["--text", "pixar", "--loss", "difa_w:6"], "give --encoder"),
        # the domain file's header names no generator: found when both load, after the
        # weights check (random CLIP weights allowed, so none is missing)
        "other-generator": (["--text", "pixar", "--allow-random-clip"], "does not fit"),
        "unknown-loss": (["--text", "pixar", "--loss", "clip_dirction:1"], "did you mean"),
    }[case]
    argv = base + expect[0]
    if case == "other-generator":
        big = save_stylegan2(tmp_path / "g64.safetensors", tiny_generator(size=64))
        domain = Offsets.for_generator(tiny_generator(size=64))
        from stylebridge.core.checkpoint import save_checkpoint

        save_checkpoint(tmp_path / "d64.safetensors", domain.state_dict(), kind="domain_method",
                        plugin=domain.name, config=domain.config())
        del big
        argv[argv.index("--method") + 1] = f"test-offsets:{tmp_path / 'd64.safetensors'}"
    code, out, err = _cli(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expect[1] in lines[0], lines
    assert "Traceback" not in err and not (tmp_path / "d.safetensors").exists()


def test_cli_refuses_a_domain_trained_for_another_generator_config(
        registry: Any, generator_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    gen64 = tiny_generator(size=64)
    trainer = td.DomainTrainer(gen64, Offsets.for_generator(gen64), [("nan", 1.0, NanAfter(at=99))],
                               td.TrainSettings(steps=1, batch=1), out=tmp_path / "d64.safetensors")
    trainer.train()
    assert read_header(tmp_path / "d64.safetensors").extra["generator_config"]["size"] == 64
    code, _, err = _cli(capsys, "train", "domain", "--method", str(tmp_path / "d64.safetensors"),
                        "--text", "pixar", "--generator", str(generator_ckpt),
                        "--out", str(tmp_path / "new.safetensors"), "--device", "cpu")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "trained for another generator config (64px" in err and "32px" in err


def test_cli_needs_a_target(registry: Any, generator_ckpt: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["train", "domain", "--generator", str(generator_ckpt), "--out", str(tmp_path / "d")])
    assert info.value.code == 2
    assert "one of the arguments --text --image is required" in capsys.readouterr().err


def test_text_defaults_are_the_thesis_nada_loss_and_indomain_is_styledomains_config(
        registry: Any, tiny_clips_in_cli: list, generator_ckpt: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Thesis, Eq. 4: text StyleSpace domains were trained "only on the StyleGAN-NADA loss",
    and its "(indomain)" domains are a separate kind: the default is the NADA loss alone with
    no layer frozen; ``--indomain`` is StyleDomain's td_nada_ffhq_sdelta.yaml (indomain 0.25,
    no_coarse)."""
    from PIL import Image

    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    args = ["train", "domain", "--method", "test-offsets", "--text", "a pixar render",
            "--templates", "none", "--generator", str(generator_ckpt), "--batch", "2",
            "--allow-random-clip", "--clip", "ViT-B-32", "--device", "cpu", "--steps", "1",
            "--sample-every", "0"]
    plain, indomain = tmp_path / "plain.safetensors", tmp_path / "indomain.safetensors"
    code, _, err = _cli(capsys, *args, "--out", str(plain))
    assert code == 0, err
    code, _, err = _cli(capsys, *args, "--out", str(indomain), "--indomain")
    assert code == 0, err
    header, tensors = load_checkpoint(plain)
    assert set(header.extra["losses"]) == {"clip_direction"}
    header_in, tensors_in = load_checkpoint(indomain)
    assert set(header_in.extra["losses"]) == {"clip_direction", "indomain"}
    assert header_in.extra["losses"]["indomain"]["weight"] == 0.25
    # what trains: every offset by default; --indomain leaves the coarse layers at zero
    gen = load_stylegan2(generator_ckpt).generator
    coarse = set(td.parse_freeze_layers("coarse", gen))
    assert coarse and len(tensors) == gen.n_style_layers

    def changed(state: dict[str, Tensor]) -> set[int]:
        return {int(k.rpartition(".")[2]) for k, v in state.items() if float(v.abs().max()) > 0}

    changed, changed_in = changed(tensors), changed(tensors_in)
    assert coarse <= changed and not coarse & changed_in and changed_in
    # image targets have no in-domain config: one line
    ref = tmp_path / "ref.png"
    Image.new("RGB", (8, 8)).save(ref)
    code, _, err = _cli(capsys, "train", "domain", "--image", str(ref), "--indomain",
                        "--generator", str(generator_ckpt), "--out", str(tmp_path / "x.safetensors"))
    assert code == 2 and "--indomain" in err and len(err.strip().splitlines()) == 1


def test_image_mode_defaults_and_encoder(registry: Any, tiny_clips_in_cli: list, generator_ckpt: Path,
                                         tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    ref = tmp_path / "ref.png"
    Image.new("RGB", (40, 30), (200, 40, 90)).save(ref)
    out = tmp_path / "img.safetensors"
    code, stdout, err = _cli(capsys, "train", "domain", "--method", "test-offsets", "--image",
                             str(ref), "--generator", str(generator_ckpt), "--out", str(out),
                             "--encoder", "test-tiny-encoder", "--steps", "2", "--clip", "ViT-B-32",
                             "--allow-random-clip", "--source-samples", "4", "--sample-every", "1",
                             "--device", "cpu")
    assert code == 0, err
    header = read_header(out)
    assert set(header.extra["losses"]) == {"clip_direction", "difa_w", "difa_local"}
    assert header.extra["losses"]["difa_w"]["weight"] == 6.0
    assert header.extra["target"]["image"] == str(ref) and len(header.extra["target"]["image_sha256"]) == 64
    assert header.extra["clip"] == {"models": ["tiny-ViT-B-32"], "random_weights": True}
    assert "RANDOM CLIP WEIGHTS" in stdout
    # 2 steps never pass DiFa's 50-step window: the user is told difa_w stays at 0
    assert "loss 'difa_w' stays at weight 0 for --steps 2" in " ".join(err.split())  # a note
    import numpy as np

    grid = np.asarray(Image.open(tmp_path / "img_samples" / "step000001.png"))
    # a label line (source | adapted), 4 seeds × (source | adapted) in 32 px tiles enlarged
    # to 128 px, 2 px padding
    rows = 19 + 4 * (128 + 2) + 2
    assert grid.shape[1] == 2 * (128 + 2) + 2 and grid.shape[0] > rows
    caption = grid[rows:]             # the RANDOM WEIGHTS notice: white with red text
    assert (caption == 255).all(axis=-1).mean() > 0.5
    assert ((caption[..., 0] > 200) & (caption[..., 1] < 80) & (caption[..., 2] < 80)).any()
    # and the file says it (a sample picture travels without the run's header)
    kept = Image.open(tmp_path / "img_samples" / "step000001.png").info["stylebridge-notice"]
    assert kept.startswith("RANDOM WEIGHTS: trained through") and kept.endswith(
        "CLIP with untrained weights")


# ---------------------------------------------------------------------------------------------
# the `train` command's target registry


def test_train_targets_can_be_added_by_other_plugins(registry: Any, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    seen: list[int] = []

    def add_arguments(parser: Any) -> None:
        parser.add_argument("--n", type=int, default=1)

    def run(args: Any, console: Any) -> int:
        seen.append(args.n)
        return 0

    monkeypatch.setitem(train_cli.TRAIN_TARGETS, "dummy",
                        train_cli.TrainTarget("dummy", add_arguments, run))
    assert main(["train", "dummy", "--n", "7"]) == 0 and seen == [7]
    train_cli.register_train_target("dummy", add_arguments, run)          # same run: no-op
    with pytest.raises(RegistryError, match="registered twice"):
        train_cli.register_train_target("dummy", add_arguments, lambda a, c: 0)
    assert {"domain", "dummy"} <= set(train_cli.TRAIN_TARGETS)


def test_lr_warmup_follows_styledomain_lambda(tmp_path: Path) -> None:
    gen = tiny_generator()
    trainer = td.DomainTrainer(gen, Offsets.for_generator(gen), [("nan", 1.0, NanAfter(at=99))],
                               td.TrainSettings(steps=1, lr=0.08, warmup_steps=30),
                               out=tmp_path / "d.safetensors")
    assert trainer.lr_at(0) == pytest.approx(0.001)
    assert trainer.lr_at(15) == pytest.approx(0.001 + 0.5 * 0.079)
    assert trainer.lr_at(30) == trainer.lr_at(200) == pytest.approx(0.08)


@pytest.mark.slow  # builds open_clip's ViT-B-32 (random weights) and runs it at 224 px
def test_cli_with_real_vit_b_32_on_random_weights(registry: Any, generator_ckpt: Path,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d.safetensors"
    code, stdout, err = _cli(capsys, *_text_args(generator_ckpt, out, "--steps", "1"))
    assert code == 0, err
    assert "RANDOM CLIP WEIGHTS" in stdout
    assert read_header(out).extra["clip"] == {"models": ["ViT-B-32"], "random_weights": True}


class _Recorder(Loss):
    """Test loss: mean image value; keeps the first batch it sees."""

    name = "test-recorder"

    def __init__(self) -> None:
        super().__init__()
        self.first: LossBatch | None = None

    def forward(self, batch: LossBatch) -> Tensor:
        if self.first is None:
            self.first = batch
        return batch.require("output", self.name).mean()


def test_source_and_adapted_branches_get_independent_noise(tmp_path: Path) -> None:
    """A fresh domain is the identity: with shared noise ΔI = 0 at step 0 and the direction
    loss's gradient is ~1/eps (StyleGAN-NADA and StyleDomain draw noise per branch)."""
    gen = tiny_generator()
    recorder = _Recorder()
    trainer = td.DomainTrainer(gen, Offsets.for_generator(gen), [("rec", 1.0, recorder)],
                               td.TrainSettings(steps=1, batch=2), out=tmp_path / "d.safetensors")
    trainer.train()
    assert recorder.first is not None
    images, source = recorder.first.output, recorder.first.source
    assert not torch.allclose(images.detach(), source)
    with torch.no_grad():  # the same noise would give the same image: only the noise differs
        same, _ = td.render(gen, recorder.first.latents)
        again, _ = td.render(gen, recorder.first.latents)
    assert torch.equal(same, again)


class _SharedGain(DomainMethod):
    """Test method: one scalar gain shared by every style layer (a shared backbone's case)."""

    name = "test-shared-gain"

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(0.0))

    def config(self) -> dict[str, Any]:
        return {}

    def styles(self, generator: Any, w_plus: Tensor, offset_scale: Any = None) -> list[Tensor]:
        return [s * (1 + self.gain) for s in generator.styles(w_plus)]


def test_freeze_layers_holds_the_traced_parameters_of_a_method_that_names_none(
        tmp_path: Path) -> None:
    """A method without layer_parameters(): the parameters its frozen layers depend on are
    found from the graph and held at their values (they were zeroed while training before,
    and a shared backbone's frozen layers then rendered changed from the saved file)."""
    gen = tiny_generator()
    method = Offsets.for_generator(gen)
    with torch.no_grad():
        for p in method.offsets:
            p.fill_(0.5)
    assert method.layer_parameters([0]) is None
    trainer = td.DomainTrainer(gen, method, [("rec", 1.0, _Recorder())],
                               td.TrainSettings(steps=3, batch=2, lr=0.05, freeze_layers=(0, 2)),
                               out=tmp_path / "d.safetensors")
    held = {id(method.offsets[0]), id(method.offsets[2])}
    assert {id(p) for p in trainer.params} == {id(p) for p in method.offsets} - held
    trainer.train()
    assert all(torch.equal(method.offsets[i], torch.full_like(method.offsets[i], 0.5))
               for i in (0, 2))
    assert all(not torch.equal(p, torch.full_like(p, 0.5))
               for i, p in enumerate(method.offsets) if i not in (0, 2))
    # one parameter behind every layer: the frozen layers would change; refused
    with pytest.raises(StylebridgeError, match=r"^--freeze-layers: domain method "
                       r"'test-shared-gain' changes its frozen and its trained style layers "
                       r"through the same parameters .*without --freeze-layers$"):
        td.DomainTrainer(gen, _SharedGain(), [("rec", 1.0, _Recorder())],
                         td.TrainSettings(steps=1, batch=2, freeze_layers=(0,)),
                         out=tmp_path / "g.safetensors")


def test_frozen_layers_keep_their_values_when_a_domain_is_continued(tmp_path: Path) -> None:
    """StyleDomain freezes the coarse layers' gradients, not their effect: continuing a
    domain with coarse offsets trains and saves the same model."""
    from stylebridge.plugins.domains.stylespace import StyleSpace

    gen = tiny_generator()
    method = StyleSpace(size=gen.size, style_dim=gen.style_dim, channels=gen.cfg.channels)
    with torch.no_grad():
        for p in method.offsets.values():
            p.fill_(0.5)
    frozen = td.parse_freeze_layers("coarse", gen)
    trainer = td.DomainTrainer(gen, method, [("rec", 1.0, _Recorder())],
                               td.TrainSettings(steps=3, batch=2, lr=0.05, freeze_layers=frozen),
                               out=tmp_path / "d.safetensors")
    trainer.train()
    for key, p in method.offsets.items():
        if int(key) in frozen:
            assert torch.equal(p, torch.full_like(p, 0.5)), key
    assert any(not torch.equal(p, torch.full_like(p, 0.5)) for key, p in method.offsets.items()
               if int(key) not in frozen)
    assert set(map(id, method.layer_parameters(frozen))) == {
        id(method.offsets[str(i)]) for i in frozen if str(i) in method.offsets}


def test_loss_terms_follow_the_shared_rules(registry: Any, tmp_path: Path) -> None:
    """One rule set for both trainers: a loss named twice is keyed NAME#2, ``after=N``
    starts a term at step N; ``after`` must be a step."""
    terms = td.build_losses(["test-nan-after:1:at=99", "test-nan-after:0.5:at=99,after=2"])
    assert [(t.key, t.weight, t.after) for t in terms] == [
        ("test-nan-after", 1.0, 0), ("test-nan-after#2", 0.5, 2)]
    gen = tiny_generator()
    trainer = td.DomainTrainer(gen, Offsets.for_generator(gen), terms,
                               td.TrainSettings(steps=4, batch=1, checkpoint_every=0),
                               out=tmp_path / "d.safetensors")
    history = trainer.train().history
    assert ["test-nan-after#2" in h for h in history] == [False, False, True, True]
    header = read_header(tmp_path / "d.safetensors")
    assert header.extra["losses"]["test-nan-after#2"]["weight"] == 0.5
    with pytest.raises(StylebridgeError, match=r"--loss 'test-nan-after:1:after=-1': after=-1"):
        td.build_losses(["test-nan-after:1:after=-1"])
