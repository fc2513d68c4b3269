"""HyperDomainNet's hyper-network (issue 17): ``hyperdomain`` method, ``tt_direction`` loss,
``train hyperdomain`` on the shared domain loop, the ``hyperdomainnet-mapper`` converter.

Tiny generator, tiny random CLIP (tests only)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import one_torch_thread, tiny_generator
from test_train_domain import tiny_clip

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import load_checkpoint
from stylebridge.core.interfaces import DomainMethod, Inversion, LossBatch
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.core.synthesis import synthesize
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import train_domain as td
from stylebridge.pipelines import train_hyperdomain as th
from stylebridge.pipelines.training.domain import render
from stylebridge.plugins.domains.hyperdomain import HyperDomain
from stylebridge.plugins.domains.modulation import DomainModulation
from stylebridge.plugins.losses.clip import ClipDirectionLoss, ClipGuide
from stylebridge.plugins.losses.hyperdomain import PromptBatchGuide, TargetTargetDirectionLoss
from stylebridge.registry import get_registry, reset_registry
from stylebridge.registry.resolve import load_domain

PAIRS = [("a pixar render", "Photo"), ("a pencil sketch", "a photo"), ("zombie", "human")]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "home"))  # no installed CLIP weights
    with one_torch_thread():
        yield


@pytest.fixture
def tiny_clips(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The pipeline's CLIP loader builds tiny random CLIPs (model i seeded seed + i)."""
    calls: list[dict[str, Any]] = []

    def fake(names: Any, weights: Any, *, allow_random: bool, device: Any = "cpu",
             seed: int = 0) -> list:
        calls.append({"names": list(names), "allow_random": allow_random})
        if not allow_random:
            raise StylebridgeError("no weights for CLIP (fake loader)")
        return [tiny_clip(seed + i, 8, n) for i, n in enumerate(names)]

    monkeypatch.setattr(td, "build_clip_models", fake)
    return calls


def _desc(gen: Any) -> dict:
    return {"size": gen.size, "style_dim": gen.style_dim,
            "channels": {str(r): c for r, c in gen.cfg.channels.items()}}


def _wplus(gen: Any, n: int = 2, seed: int = 3) -> torch.Tensor:
    return gen.make_wplus(torch.randn(n, gen.style_dim, generator=torch.Generator().manual_seed(seed)))


def _train(tmp_path: Path, steps: int, out: str = "net.safetensors", lr: float = 0.01,
           **kw: Any) -> th.HyperDomainOutcome:
    gen_path = tmp_path / "g.safetensors"
    if not gen_path.exists():
        save_stylegan2(gen_path, tiny_generator())
    cfg = th.HyperDomainTrainConfig(
        generator=str(gen_path), out=tmp_path / out,
        prompt_list=[f"{a} - {b}" for a, b in PAIRS], templates="none", steps=steps, batch=4,
        lr=lr, width=32, inner=32, allow_random_clip=True, sample_every=0,
        checkpoint_every=0, device="cpu", **kw)
    return th.train_hyperdomain(cfg)


def _fixed_direction_loss(method: HyperDomain, gen: Any) -> float:
    """Mean over the training prompts of NADA's 1 - cos(ΔI, ΔT) on a fixed batch, with a
    fresh copy of the training CLIP (seed 0) and the prompts' own text directions."""
    clip = tiny_clip(0, 8, "ViT-B-32")
    w = _wplus(gen, 4, seed=7)
    total = 0.0
    with torch.no_grad():
        source, _ = render(gen, w)
        for target, src_text in PAIRS:
            method.text = target
            adapted, _ = render(gen, w, method.eval())
            guide = ClipGuide.from_text([clip], target, src_text, ["{}"])
            total += float(ClipDirectionLoss()(LossBatch(output=adapted, source=source,
                                                         clip_guide=guide)))
    method.text = None
    return total / len(PAIRS)


# ---------------------------------------------------------------------------------------------
# The method


def test_vector_layout_and_edits_are_domain_modulations() -> None:
    gen = tiny_generator()
    net = HyperDomain(**_desc(gen), embed_dim=8, width=16, inner=16, prompts=["p"])
    dm = DomainModulation(**_desc(gen))
    assert net.layers == dm.layers == gen.conv_style_indices()
    # a network whose last layers output constant vectors d_i renders like domain_modulation
    # with those vectors (hand-set: zero weights, bias = d_i)
    gen_rng = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for i in net.layers:
            d = 0.4 * torch.randn(dm.layout[i].in_ch, generator=gen_rng)
            head = net.net.heads[str(i)][-1]
            head.weight.zero_()
            head.bias.copy_(d)
            dm.modulation[str(i)].copy_(d)
        net.prompt_embeddings.copy_(torch.randn(1, 8, generator=gen_rng))
    net.text = "p"
    vectors = net.eval().text_vectors()
    assert {i: tuple(v.shape) for i, v in vectors.items()} == {
        int(k): tuple(p.shape) for k, p in dm.modulation.items()}
    inv = Inversion(w_plus=_wplus(gen))
    scale = torch.linspace(0.0, 2.0, gen.n_style_layers)
    with torch.no_grad():
        for offset_scale in (None, scale):
            a = synthesize(gen, inv, method=net, offset_scale=offset_scale)
            b = synthesize(gen, inv, method=dm, offset_scale=offset_scale)
            torch.testing.assert_close(a, b, atol=1e-6, rtol=0)
    frozen = net.domain_modulation("p")
    assert all(torch.equal(frozen.modulation[k], dm.modulation[k]) for k in dm.modulation)


def test_missing_text_is_a_one_line_error(tmp_path: Path) -> None:
    gen = tiny_generator()
    net = HyperDomain(**_desc(gen), embed_dim=8, width=16, inner=16).eval()
    with pytest.raises(StylebridgeError, match="give text=PROMPT") as info:
        synthesize(gen, Inversion(w_plus=_wplus(gen)), method=net)
    assert "\n" not in str(info.value)
    assert HyperDomain.text_conditioned and not DomainMethod.text_conditioned
    # an unseen prompt without CLIP weights installed: one line naming the prompt
    net.text = "a zombie"
    with pytest.raises(StylebridgeError, match="not one of its 0 training prompts") as info:
        net.text_vectors()
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="train hyperdomain"):
        HyperDomain.for_generator(gen)


def test_tt_direction_by_hand() -> None:
    clip = tiny_clip(0, 8, "tiny")
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    texts = torch.randn(3, 32, generator=torch.Generator().manual_seed(1))
    guide = PromptBatchGuide([clip], target="3 prompts")
    guide.set_batch([torch.zeros(3, 32)], [texts])
    got = TargetTargetDirectionLoss()(LossBatch(output=images, source=images, clip_guide=guide))
    with torch.no_grad():
        e = clip.model.encode_image(clip.preprocess((images + 1) / 2))
        e = e / e.norm(dim=-1, keepdim=True)
    pairs = [(1, 0), (2, 0), (2, 1)]
    want = sum(1 - float(F.cosine_similarity(e[i] - e[j], texts[i] - texts[j], dim=0))
               for i, j in pairs) / 3
    assert float(got) == pytest.approx(want, abs=1e-5)
    with pytest.raises(StylebridgeError, match="multi-prompt trainer"):
        TargetTargetDirectionLoss()(LossBatch(output=images, source=images,
                                              clip_guide=ClipGuide([clip], [texts[:1]],
                                                                   mode="text", target="x")))


# ---------------------------------------------------------------------------------------------
# Training


@pytest.mark.slow
def test_trains_separates_prompts_round_trips_and_renders_with_two_encoders(
        tmp_path: Path, tiny_clips: list) -> None:
    gen = tiny_generator()
    first = _train(tmp_path, 1, "start.safetensors", lr=1e-12)  # the untrained network
    outcome = _train(tmp_path, 30)
    assert outcome.random_clip and outcome.step == 30 and outcome.prompts == [p for p, _ in PAIRS]
    registry = get_registry()
    before = registry.load("domain_method", first.out)
    net = registry.load("domain_method", outcome.out)
    assert isinstance(net, HyperDomain) and net.random_weights
    # its loss on a fixed batch, computed independently, went down
    assert _fixed_direction_loss(net, gen) < _fixed_direction_loss(before, gen) - 0.01
    # two prompts → two different vectors (untrained they are almost equal)
    with torch.no_grad():
        def gap(m: HyperDomain) -> float:
            a, b = m.text_vectors(PAIRS[0][0]), m.text_vectors(PAIRS[2][0])
            return sum(float((a[i] - b[i]).norm()) for i in a)
        assert gap(net) > 1.0 > 100 * gap(before)
    # the stored prompt embeddings are the mapper CLIP's text embeddings (seed 0, "{}")
    clip = tiny_clip(0, 8, "ViT-B-32")
    with torch.no_grad():
        want = clip.model.encode_text(clip.tokenizer([p for p, _ in PAIRS]))
        want = want / want.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(net.prompt_embeddings, want, atol=1e-6, rtol=0)
    header, _ = load_checkpoint(outcome.out)
    assert header.extra["losses"]["tt_direction"]["weight"] == 0.4
    assert header.extra["random_weights"] is True
    # round trip: a reloaded network renders exactly the same image
    inv = Inversion(w_plus=_wplus(gen))
    again = load_domain(f"hyperdomain:{outcome.out}:text={PAIRS[1][0]}")
    net.text = PAIRS[1][0]
    with torch.no_grad():
        a = synthesize(gen, inv, method=again)
        b = synthesize(gen, inv, method=net.eval())
        assert torch.equal(a, b)
        assert not torch.allclose(a, synthesize(gen, inv), atol=1e-3)
    # an unseen prompt renders through the same CLIP as in training
    unseen = load_domain(f"hyperdomain:{outcome.out}:text=\"a werewolf\"")
    assert unseen.text == "a werewolf"
    unseen.use_text_encoder(lambda texts: F.normalize(clip.model.encode_text(
        clip.tokenizer(list(texts))), dim=-1))
    with torch.no_grad():
        torch.testing.assert_close(unseen.embed([PAIRS[0][0]]), want[:1], atol=1e-6, rtol=0)
        c = synthesize(gen, inv, method=unseen)
    assert not torch.allclose(c, a, atol=1e-4)
    # through the Adapter with two encoders
    from stylebridge.pipelines.adapt import Adapter
    from stylebridge.pipelines.presets import random_e4e, random_fse

    images = torch.rand(2, 3, gen.size, gen.size, generator=torch.Generator().manual_seed(1))
    for encoder in (random_e4e(gen, seed=0), random_fse(gen, "shift", seed=0, layer=3)):
        outputs = Adapter(encoder, gen, {"sketch": again, "werewolf": unseen}).run(images)
        assert set(outputs) == {"inversion", "sketch", "werewolf"}
        assert outputs["sketch"].shape == (2, 3, gen.size, gen.size)
        assert not torch.allclose(outputs["sketch"], outputs["inversion"], atol=1e-3)
        assert not torch.allclose(outputs["sketch"], outputs["werewolf"], atol=1e-4)


def test_resume_continues_exactly(tmp_path: Path, tiny_clips: list) -> None:
    a = _train(tmp_path, 4, "a.safetensors")
    _train(tmp_path, 2, "b.safetensors")
    b = _train(tmp_path, 4, "b.safetensors", resume=True)
    assert b.step == 4
    _, ta = load_checkpoint(a.out)
    _, tb = load_checkpoint(b.out)
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    with pytest.raises(StylebridgeError, match="cannot resume"):
        _train(tmp_path, 6, "b.safetensors", resume=True, crop=None)


def test_prompts_file(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    path.write_text("# upstream's format\nAnime Painting - Photo\n\nZombie - Human\nSketch\n"
                    "Anime Painting - Photo\n", encoding="utf-8")
    assert th.read_prompts(path) == [("Anime Painting", "Photo"), ("Zombie", "Human"),
                                     ("Sketch", "Photo")]
    path.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(StylebridgeError, match="holds no prompts"):
        th.read_prompts(path)
    with pytest.raises(StylebridgeError, match="no such file"):
        th.read_prompts(tmp_path / "missing.txt")


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_hyperdomain(tmp_path: Path, tiny_clips: list,
                               capsys: pytest.CaptureFixture[str]) -> None:
    reset_registry()
    gen = save_stylegan2(tmp_path / "g.safetensors", tiny_generator())
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a pixar render - Photo\nzombie - Human\n", encoding="utf-8")
    out = tmp_path / "net.safetensors"
    base = ["train", "hyperdomain", "--generator", str(gen), "--out", str(out), "--steps", "2",
            "--batch", "2", "--templates", "none", "--width", "16", "--inner", "16",
            "--allow-random-clip", "--device", "cpu"]
    code, stdout, err = _cli(capsys, *base, "--prompts", str(prompts), "--sample-every", "2")
    assert code == 0, err
    assert [p.name for p in (tmp_path / "net_samples").iterdir()] == ["step000002.png"]
    assert "RANDOM CLIP WEIGHTS" in stdout and "2 prompts" in stdout
    header, _ = load_checkpoint(out)
    assert header.plugin == "hyperdomain" and header.config["prompts"] == ["a pixar render",
                                                                          "zombie"]
    assert tiny_clips and all(c["allow_random"] for c in tiny_clips)
    # a bad prompts file, or a missing one: one line, nothing written
    bad = tmp_path / "empty.txt"
    bad.write_text("\n# none\n", encoding="utf-8")
    for path, message in ((bad, "holds no prompts"), (tmp_path / "nope.txt", "no such file")):
        code, _, err = _cli(capsys, *base, "--force", "--prompts", str(path))
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and message in lines[0], err


# ---------------------------------------------------------------------------------------------
# The converter


class _UpstreamResBlock(torch.nn.Module):
    """Upstream's DummyResBlock, written out here (names as in its state dict)."""

    def __init__(self, features: int, inner: int) -> None:
        super().__init__()
        self.input_block = torch.nn.Sequential(torch.nn.Linear(features, inner),
                                               torch.nn.BatchNorm1d(inner), torch.nn.ReLU())
        self.second_block = torch.nn.Sequential(torch.nn.Linear(inner, features),
                                                torch.nn.BatchNorm1d(features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.second_block(self.input_block(x)) + x)


def _upstream_mapper(conv_in: list[int], dim: int = 16) -> torch.nn.Module:
    """A residual_channelin mapper in upstream's module layout, random weights and BN stats."""
    torch.manual_seed(0)
    bnlin = torch.nn.Module()
    bnlin.bn, bnlin.lin = torch.nn.BatchNorm1d(dim), torch.nn.Linear(dim, dim)
    root = torch.nn.Module()
    root.backbone = torch.nn.Module()
    root.backbone.backbone = torch.nn.Sequential(bnlin, _UpstreamResBlock(dim, 12),
                                                 _UpstreamResBlock(dim, 12))
    root.heads = torch.nn.ModuleDict({
        f"conv_{k}": torch.nn.ModuleDict({"in": torch.nn.Sequential(
            _UpstreamResBlock(dim, 12), torch.nn.Linear(dim, c))}) for k, c in enumerate(conv_in)})
    with torch.no_grad():
        for name, buf in root.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_()
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 2.0)
    return root.eval()


def _upstream_forward(root: torch.nn.Module, emb: torch.Tensor) -> list[torch.Tensor]:
    b = root.backbone.backbone
    x = b[0].bn(torch.relu(b[0].lin(emb)))
    for block in list(b)[1:]:
        x = block(x)
    return [root.heads[f"conv_{k}"]["in"](x) for k in range(len(root.heads))]


def test_converter_reads_upstream_layout_and_refuses_others(tmp_path: Path) -> None:
    gen = tiny_generator()
    convs = [layer for layer in gen.style_layers() if not layer.is_rgb]
    conv_in = [layer.channels for layer in convs]
    root = _upstream_mapper(conv_in)
    mapper_config = {"backbone_type": "shared", "mapper_type": "residual_channelin",
                     "activation": "relu", "input_dimension": 16, "width": 16, "head_depth": 2,
                     "backbone_depth": 3, "no_coarse": False}
    ck = {"model_type": "mapper", "mapper_config": mapper_config, "patch_key": "cin_mult",
          "state_dict": root.state_dict(), "da_type": "td",
          "sg2_params": {"img_size": gen.size, "latent_size": gen.style_dim}}
    src, dst = tmp_path / "mapper_20_td.pt", tmp_path / "net.safetensors"
    torch.save(ck, src)
    registry = get_registry()
    result = registry.get("converter", "hyperdomainnet-mapper").obj.convert(src, dst)
    assert result.plugin == "hyperdomain"
    net = load_domain(f"hyperdomain:{dst}:text=x")
    assert net.clip == ["ViT-B-32"] and net.layers == gen.conv_style_indices()
    assert net.generator_config.channels == gen.cfg.channels
    emb = F.normalize(torch.randn(3, 16, generator=torch.Generator().manual_seed(2)), dim=-1)
    with torch.no_grad():
        want = _upstream_forward(root, emb)
        got = net.vectors(emb)
    for layer, w in zip(convs, want, strict=True):
        torch.testing.assert_close(got[layer.index], w, atol=1e-6, rtol=0)
    # the same weights saved from upstream's DataParallel wrapper ("module." keys)
    wrapped = {**ck, "state_dict": {f"module.{k}": v for k, v in root.state_dict().items()}}
    torch.save(wrapped, tmp_path / "wrapped.pt")
    registry.get("converter", "hyperdomainnet-mapper").obj.convert(tmp_path / "wrapped.pt",
                                                             tmp_path / "wrapped.safetensors")
    _, a = load_checkpoint(dst)
    _, b = load_checkpoint(tmp_path / "wrapped.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # refused layouts, one line each
    converter = registry.get("converter", "hyperdomainnet-mapper").obj
    cases = {
        "model_type": ({**ck, "model_type": "parameterization"}, "expected 'mapper'"),
        "im2im": ({**ck, "da_type": "im2im"}, "only text mappers"),
        "sep": ({**ck, "mapper_config": {**mapper_config, "mapper_type": "residual_channelwise_sep"}},
                "only 'residual_channelin'"),
        "extra-key": ({**ck, "state_dict": {**root.state_dict(),
                                             "heads.conv_0.out.1.weight": torch.zeros(1)}},
                      "unknown to the residual_channelin layout"),
    }
    for name, (bad, message) in cases.items():
        path = tmp_path / f"{name}.pt"
        torch.save(bad, path)
        with pytest.raises(StylebridgeError, match=message) as info:
            converter.convert(path, tmp_path / f"{name}.safetensors")
        assert "\n" not in str(info.value)


def test_shipped_hyper_network_entry_fetches_from_the_zip(tmp_path: Path) -> None:
    """``hdn-mapper-20``: upstream's Dropbox zip played by a local server, the mapper member
    copied out, converted by hyperdomainnet-mapper and usable by name with text=."""
    import dataclasses
    import io
    import zipfile

    from test_weights_sources import _Server

    from stylebridge.registry.weights import WeightsManager, load_manifest

    shipped = {e.name: e for e in load_manifest()}
    entry = shipped["hdn-mapper-20"]
    assert entry.converter == "hyperdomainnet-mapper" and entry.plugin == "hyperdomain"
    assert entry.all_sources[0]["member"] == "mapper_20_td.pt"
    gen = tiny_generator()
    convs = [layer for layer in gen.style_layers() if not layer.is_rgb]
    root = _upstream_mapper([layer.channels for layer in convs])
    ck = {"model_type": "mapper", "patch_key": "cin_mult", "da_type": "td",
          "mapper_config": {"backbone_type": "shared", "mapper_type": "residual_channelin",
                            "activation": "relu", "input_dimension": 16, "width": 16,
                            "head_depth": 2, "backbone_depth": 3},
          "state_dict": root.state_dict(),
          "sg2_params": {"img_size": gen.size, "latent_size": gen.style_dim}}
    member = io.BytesIO()
    torch.save(ck, member)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("checkpoints/mapper_20_td.pt", member.getvalue())
    server = _Server()
    try:
        server.files["/checkpoints.zip"] = buffer.getvalue()
        archive = dataclasses.replace(shipped["hdn-checkpoints"], sources=(
            {"type": "url", "url": f"{server.url}/checkpoints.zip"},))
        manager = WeightsManager(tmp_path / "home", manifest=[archive, entry])
        path = manager.fetch("hdn-mapper-20", accept_licence=True)
    finally:
        server.close()
    net = load_domain(f'hyperdomain:{path}:text="a sketch, in pencil"')
    assert net.text == "a sketch, in pencil"
    emb = F.normalize(torch.randn(2, 16, generator=torch.Generator().manual_seed(4)), dim=-1)
    with torch.no_grad():
        want, got = _upstream_forward(root, emb), net.vectors(emb)
    for layer, w in zip(convs, want, strict=True):
        torch.testing.assert_close(got[layer.index], w, atol=1e-6, rtol=0)


def test_adapt_names_outputs_by_file_and_text() -> None:
    from stylebridge.pipelines.adapt import domain_name

    gen = tiny_generator()
    net = HyperDomain(**_desc(gen), embed_dim=8, width=16, inner=16)
    dm = DomainModulation(**_desc(gen))
    assert domain_name("hyperdomain:/x/net.safetensors:text=\"a sketch\"", net, 0) == "net_a_sketch"
    assert domain_name("hyperdomain:/x/net.safetensors", net, 0) == "net"
    assert domain_name("domain_modulation:/x/dm.safetensors", dm, 0) == "dm"


@pytest.mark.slow
def test_a_random_clip_network_encodes_new_prompts_with_the_training_clip() -> None:
    """Trained through random CLIP (tests), an unseen prompt is encoded by the same random
    model train hyperdomain built (build_clip_models: model i seeded seed + i)."""
    training = td.build_clip_models(["ViT-B-32"], {}, allow_random=True, seed=3)[0]
    with torch.no_grad():
        seen = training.encode_text(["a sketch"])
        unseen = training.encode_text(["a werewolf"])
    gen = tiny_generator()
    net = HyperDomain(**_desc(gen), clip=["ViT-B-32"], prompts=["a sketch"], random_clip=True,
                      clip_seed=3, width=16, inner=16)
    with torch.no_grad():
        net.prompt_embeddings.copy_(seen)
        torch.testing.assert_close(net.embed(["a werewolf", "a sketch"]),
                                   torch.cat([unseen, seen]), atol=1e-5, rtol=0)
    assert net.random_weights is True


def test_seed_covers_the_network_initialisation(tmp_path: Path, tiny_clips: list,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The same --seed gives the same network whatever torch's global RNG holds; another
    seed gives another one (the hyper-network was drawn from the unseeded global RNG)."""
    fake = td.build_clip_models

    def isolated(*args: Any, **kw: Any) -> list:  # tiny_clip seeds the global RNG itself
        with torch.random.fork_rng(devices=[]):
            return fake(*args, **kw)

    monkeypatch.setattr(td, "build_clip_models", isolated)
    torch.manual_seed(1)
    a = _train(tmp_path, 1, "a.safetensors", seed=3)
    torch.manual_seed(2)
    b = _train(tmp_path, 1, "b.safetensors", seed=3)
    c = _train(tmp_path, 1, "c.safetensors", seed=4)
    ta, tb, tc = (load_checkpoint(o.out)[1] for o in (a, b, c))
    assert ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    assert any(not torch.equal(ta[k], tc[k]) for k in ta if "backbone" in k or "head" in k)


@pytest.mark.parametrize("losses", [["corr:1"], ["clip_direction:1", "corr:1"]])
def test_a_loss_that_cannot_train_the_network_is_refused_before_step_0(
        tmp_path: Path, tiny_clips: list, losses: list[str]) -> None:
    with pytest.raises(StylebridgeError, match="loss 'corr' reads styles, styles_source, none "
                                               "of which train hyperdomain changes"):
        _train(tmp_path, 2, losses=losses)
    assert not (tmp_path / "net.safetensors").exists()
    assert not (tmp_path / "net.train-state.safetensors").exists()


def test_a_missing_batch_field_names_this_command(tmp_path: Path, tiny_clips: list) -> None:
    with pytest.raises(StylebridgeError) as info:
        _train(tmp_path, 2, losses=["mse:1"])
    assert "which train hyperdomain does not provide" in str(info.value)
    with pytest.raises(StylebridgeError) as info:
        _train(tmp_path, 2, losses=["difa_w:1"])
    assert "give --encoder" not in str(info.value)
    assert "which train hyperdomain does not provide" in str(info.value)


def test_out_must_be_no_folder_and_no_input(tmp_path: Path, tiny_clips: list) -> None:
    folder = tmp_path / "adir"
    folder.mkdir()
    with pytest.raises(StylebridgeError, match="is a folder"):
        _train(tmp_path, 2, "adir", force=True)
    assert not (tmp_path / "adir.train-state.safetensors").exists()
    prompts = tmp_path / "p.safetensors"
    prompts.write_text("zombie\nsketch\n", encoding="utf-8")
    gen_path = tmp_path / "g.safetensors"
    save_stylegan2(gen_path, tiny_generator())
    before = gen_path.read_bytes()
    for out, kw in (("g.safetensors", {}), ("p.safetensors", {})):
        cfg = th.HyperDomainTrainConfig(generator=str(gen_path), out=tmp_path / out,
                                        prompts=prompts, templates="none", steps=1, batch=2,
                                        allow_random_clip=True, force=True, device="cpu", **kw)
        with pytest.raises(StylebridgeError, match="would overwrite it"):
            th.train_hyperdomain(cfg)
    assert gen_path.read_bytes() == before
    assert prompts.read_text(encoding="utf-8") == "zombie\nsketch\n"


def test_resume_with_another_clip_file_is_refused_naming_it(tmp_path: Path,
                                                            tiny_clips: list) -> None:
    """The CLIP weights are recorded by content (sha256), as `train domain` does; before,
    hyperdomain recorded "file", so a resume with another CLIP file mixed two CLIPs."""
    clip_file = tmp_path / "clip.safetensors"
    clip_file.write_bytes(b"first CLIP weights")
    _train(tmp_path, 2, "c.safetensors", clip_weights=[f"ViT-B-32={clip_file}"])
    resumed = _train(tmp_path, 3, "c.safetensors", resume=True,
                     clip_weights=[f"ViT-B-32={clip_file}"])  # the same file: continues
    assert resumed.step == 3
    clip_file.write_bytes(b"other CLIP weights")
    old, new = (hashlib.sha256(data).hexdigest()[:12] for data in (b"first CLIP weights",
                                                                   b"other CLIP weights"))
    with pytest.raises(StylebridgeError, match=f'cannot resume with different settings: '
                                               f'--clip-weights {{"ViT-B-32": "{old}…"}} then, '
                                               f'{{"ViT-B-32": "{new}…"}} now; '):
        _train(tmp_path, 4, "c.safetensors", resume=True, clip_weights=[f"ViT-B-32={clip_file}"])
