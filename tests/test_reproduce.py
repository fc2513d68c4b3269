"""``stylebridge reproduce thesis-tables`` (Tables 4.1–4.3) on the tiny random-weight preset."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from pathlib import Path

import pytest
import torch
from conftest import one_torch_thread
from safetensors.torch import load_file

from stylebridge.cli.main import main
from stylebridge.errors import StylebridgeError
from stylebridge.pipelines import reproduce as R

# The thesis' row names (Tables 4.1 and 4.3), in its order.
THESIS_ROWS = ["Orig", "E4E latents", "FSE latents", "FSE features", "FSE generator shift",
               "FeatureShift on E4E", "FeatureShift on FSE"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch):
    """One torch thread (the machine is shared) and a terminal wide enough that rich's tables
    never cut a long temporary path (pytest-xdist's are longer)."""
    monkeypatch.setenv("COLUMNS", "400")
    with one_torch_thread():
        yield


def _orig_reference(preset_root: Path, domain: str, clip_name: str, n: int, seed: int = 0
                    ) -> tuple[float, float]:
    """Quality and Diversity of the Orig row for one domain, computed here from the files:
    z from the seeded CPU generator, s + Δ added by hand, CLIP embeddings, explicit pairs."""
    from stylebridge.core.checkpoint import read_header
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.plugins.nets.clip import load_clip

    gen = load_stylegan2(preset_root / "generator.safetensors").generator
    path = preset_root / "domains" / f"{domain}.safetensors"
    offsets = load_file(str(path))
    z = torch.randn(n, gen.style_dim, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        w_plus = gen.mapping(z).unsqueeze(1).repeat(1, gen.n_latent, 1)
        styles = gen.styles(w_plus)
        for key, delta in offsets.items():
            i = int(key.removeprefix("offsets."))
            styles[i] = styles[i] + delta
        images = ((gen.synthesis(styles, randomize_noise=False) + 1) / 2).clamp(0, 1)
        clip = load_clip(clip_name, preset_root / "clip" / f"{clip_name}.safetensors")
        emb = clip.encode_images(images).double()
        text = "A " + read_header(path).extra["target"]["text"]
        txt = clip.encode_text([text]).double()[0]
    quality = float((emb @ txt).mean())
    pairs = [1.0 - float(emb[i] @ emb[j]) for i in range(n) for j in range(i + 1, n)]
    return quality, sum(pairs) / len(pairs)


def test_reproduce_on_tiny_data_prints_a_table_with_every_row(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["reproduce", "thesis-tables", "--preset", "tiny", "--out", str(out),
                 "--device", "cpu"])
    text = capsys.readouterr().out
    assert code == 0, text
    for label in THESIS_ROWS:
        assert label in text
    clips = list(R.TINY_CLIPS)
    for clip in clips:
        assert clip in text
    assert "RANDOM WEIGHTS" in text and "Table 4.1 layout" in text

    data = json.loads((out / R.JSON_FILE).read_text())
    assert data["random_weights"] is True and "RANDOM WEIGHTS" in data["title"]
    assert [c["name"] for c in data["clip_models"]] == clips
    assert all(c["random_weights"] for c in data["clip_models"])
    # the files by content (the JSON had no hash at all) and the folder paths are read from
    gen = Path(data["generator"])
    assert data["generator_sha256"] == hashlib.sha256(gen.read_bytes()).hexdigest()
    assert data["cwd"] == os.getcwd()
    assert all(c["weights_sha256"] == hashlib.sha256(Path(c["weights"]).read_bytes()).hexdigest()
               for c in data["clip_models"])
    assert all(d["sha256"] == hashlib.sha256(Path(d["file"]).read_bytes()).hexdigest()
               for d in data["domains"])
    assert [r["label"] for r in data["rows"]] == THESIS_ROWS
    # each row's checkpoints by content (the JSON named them by path only)
    roles = {r["key"]: sorted(r["files"]) for r in data["rows"]}
    assert roles["orig"] == [] and roles["e4e"] == ["encoder"]
    assert roles["featureshift_e4e"] == ["encoder", "featureshift", "guide"]
    assert roles["featureshift_fse"] == ["encoder", "featureshift"]
    for row in data["rows"]:
        for record in row["files"].values():
            assert record["sha256"] == hashlib.sha256(Path(record["path"]).read_bytes()
                                                      ).hexdigest()
    domains = [d["name"] for d in data["domains"]]
    assert domains == ["tiny-pixar", "tiny-sketch"]
    assert all(d["kind"] == "text" and d["target_source"] == "header" for d in data["domains"])
    for row in data["rows"]:
        assert row["status"] == "done" and row["random_weights"] is True
        assert row["mean"]["image"] is None          # the preset has text domains only
        for clip in clips:
            for metric, low, high in (("quality", -1.0, 1.0), ("diversity", 0.0, 2.0)):
                values = [row["per_domain"][d][clip][metric] for d in domains]
                assert all(v is not None and math.isfinite(v) and low <= v <= high
                           for v in values), (row["label"], clip, metric, values)
                mean = row["mean"]["all"][clip][metric]
                assert mean == pytest.approx(sum(values) / 2, abs=1e-12)
                assert row["mean"]["text"][clip][metric] == pytest.approx(mean, abs=1e-12)
    # the rows see different images: their values are not all the same
    diversities = {round(r["mean"]["all"][clips[0]]["diversity"], 6) for r in data["rows"]}
    assert len(diversities) >= 4

    # Orig recomputed without the command: seeded z, StyleSpace Δ added by hand, CLIP
    orig = data["rows"][0]
    for domain in domains:
        for clip in clips:
            quality, diversity = _orig_reference(out / R.PRESET_DIR, domain, clip, data["samples"])
            assert orig["per_domain"][domain][clip]["quality"] == pytest.approx(quality, abs=2e-5)
            assert orig["per_domain"][domain][clip]["diversity"] == pytest.approx(diversity,
                                                                                  abs=2e-5)

    markdown = (out / R.MARKDOWN_FILE).read_text()
    assert "RANDOM WEIGHTS" in markdown
    for label in THESIS_ROWS:
        assert f"| {label} |" in markdown
    q = orig["mean"]["all"][clips[0]]["quality"]
    assert f"| Orig | {q:.3f} |" in markdown
    # the headers say which way is better, a legend the unit (HyperDomainNet's definitions)
    assert f"|  | Quality ↑ {clips[0]} | Quality ↑ {clips[1]} | Diversity ↑ {clips[0]} |" \
        in markdown
    assert "**Quality ↑** (CLIP cosine similarity, -1 to 1)" in markdown
    assert "**Diversity ↑** (1 - CLIP cosine similarity, 0 to 2)" in markdown
    # and what it takes to run it again: the generator, CLIP models, seed, truncation, versions
    assert data["software"]["torch"] == torch.__version__
    assert (f"Run with: generator `{data['generator']}` (random weights); CLIP "
            f"`{clips[0]}` (random weights), `{clips[1]}` (random weights); seed 0; truncation "
            f"1.0; stylebridge ") in markdown


def test_missing_weights_row_is_skipped_and_a_bad_image_gives_exit_3(tmp_path: Path,
                                                                      capsys) -> None:
    from stylebridge.registry.resolve import load_domain

    preset = R.build_tiny_preset(tmp_path / "preset", seed=1)
    images = tmp_path / "photos"
    shutil.copytree(preset.images, images)
    (images / "broken.png").write_bytes(b"this is not a PNG")
    domains = tmp_path / "domains"
    shutil.copytree(preset.domains, domains)
    method = load_domain(str(domains / "tiny-pixar.safetensors"))
    random = {"random_weights": True}
    method.save(domains / "from-image.safetensors", extra=random)   # target from the JSON
    method.save(domains / "no-target.safetensors", extra=random)    # no target anywhere
    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps({"from-image.safetensors": {"image": "photos/photo0.png"},
                                   "fromimage.safetensors": {"text": "a typo"}}))

    out = tmp_path / "out"
    args = ["reproduce", "thesis-tables", "--images", str(images), "--domains", str(domains),
            "--targets", str(targets), "--generator", str(preset.generator),
            "--e4e", str(preset.e4e), "--fse", str(preset.fse),
            "--featureshift-e4e", str(preset.featureshift_e4e),   # no --featureshift-fse
            "--clip-config", str(preset.clip_config), "--out", str(out), "--device", "cpu",
            "--samples", "2"]
    for name, path in preset.clip_weights.items():
        args += ["--clip", name, "--clip-weights", f"{name}={path}"]
    code = main(args)
    text, notices = capsys.readouterr()  # the results on stdout, the notices on stderr
    assert code == 3, text
    assert "broken.png" in text and "no-target.safetensors" in text
    # photos and domain files counted apart (3 photos + broken.png; 3 domains + no-target)
    assert "photos: 3 done, 1 skipped; domains: 3 used, 1 skipped" in " ".join(text.split())
    assert "'FeatureShift on FSE' skipped" in notices and "--featureshift-fse" in notices
    assert "RANDOM WEIGHTS" in notices   # the files' headers say so
    # a key of the targets JSON that names no domain (a typo) is said, not ignored: a note of
    # the report, on stderr
    assert ("entry 'fromimage.safetensors' names no domain of this run"
            in " ".join(notices.split()))

    data = json.loads((out / R.JSON_FILE).read_text())
    rows = {r["key"]: r for r in data["rows"]}
    assert rows["featureshift_fse"]["status"] == "skipped"
    assert "--featureshift-fse" in rows["featureshift_fse"]["reason"]
    assert [k for k, r in rows.items() if r["status"] == "done"] == [
        "orig", "e4e", "fse_latents", "fse_features", "fse_shift", "featureshift_e4e"]
    skipped = {Path(s["file"]).name for s in data["report"]["skipped"]}
    assert skipped == {"broken.png", "no-target.safetensors"}
    assert data["n_images"] == 3 and data["samples"] == 2
    by_name = {d["name"]: d for d in data["domains"]}
    assert set(by_name) == {"tiny-pixar", "tiny-sketch", "from-image"}
    assert by_name["from-image"]["kind"] == "image"
    assert by_name["from-image"]["target_source"] == "targets JSON"
    assert by_name["from-image"]["quality_target"] == {"reference": str(images / "photo0.png")}
    for row in (r for r in rows.values() if r["status"] == "done"):
        for kind, n in (("image", 1), ("text", 2)):
            for clip in preset.clip_weights:
                names = [d for d, e in by_name.items() if e["kind"] == kind]
                assert len(names) == n
                want = sum(row["per_domain"][d][clip]["quality"] for d in names) / n
                assert row["mean"][kind][clip]["quality"] == pytest.approx(want, abs=1e-12)
    markdown = (out / R.MARKDOWN_FILE).read_text()
    assert "FeatureShift on FSE | skipped" in markdown and "broken.png" in markdown

    # --allow-random: the missing FeatureShift is built with random weights at FSE's layer
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    gen = load_stylegan2(preset.generator).generator
    sources = R.Sources(e4e=str(preset.e4e), fse=str(preset.fse))
    methods = {"pixar": method}
    with pytest.raises(R.RowSkipped, match="--featureshift-fse"):
        R.RowBuilder(gen, sources, device=torch.device("cpu"), methods=methods,
                     allow_random=False, seed=0).build("featureshift_fse")
    setup = R.RowBuilder(gen, sources, device=torch.device("cpu"), methods=methods,
                         allow_random=True, seed=0).build("featureshift_fse")
    assert setup.random and setup.sources["featureshift"] == R.RANDOM_SOURCE
    assert setup.adapter.renderer.layer == R.TINY_FSE_LAYER
    rendered = setup.adapter.run(torch.rand(2, 3, 32, 32))
    assert rendered["pixar"].shape == (2, 3, 32, 32) and bool(rendered["pixar"].isfinite().all())


def test_random_fse_fits_the_official_generator() -> None:
    """For a 1024 px FFHQ StyleGAN2 the random FSE has the official FSE's shape (FSE
    configs/001.yaml: 256 px input from 1024, fs_stride 2, F = 512×16×16 at layer 5)."""
    from types import SimpleNamespace

    from stylebridge.core.stylegan2.config import GeneratorConfig

    cfg = GeneratorConfig(size=1024, style_dim=512)
    layer5 = (cfg.channels[16], 16, 16)
    gen = SimpleNamespace(size=1024, n_latent=18, style_dim=512,
                          feature_shapes=lambda: {5: layer5})
    assert R.fse_random_config(gen) == {"layer": 5, "n_latent": 18, "style_dim": 512,
                                        "feature_channels": 512, "feature_stride": 2,
                                        "input_size": 256, "resolution": 1024}


def test_argument_and_input_errors(tmp_path: Path, capsys,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STYLEBRIDGE_HOME", str(tmp_path / "no-weights"))
    assert main(["reproduce", "thesis-tables", "--out", str(tmp_path)]) == 2
    assert "give --images, --domains, --generator" in capsys.readouterr().err

    notes: list[str] = []
    with pytest.raises(StylebridgeError, match=r"no CLIP model has weights \(ViT-B-32: run "
                                               r"`stylebridge weights fetch clip-vit-b-32`, or "
                                               r"give --clip-weights ViT-B-32=PATH; or "):
        R.resolve_clips(["ViT-B-32"], {}, allow_random=False, notes=notes)
    chosen = R.resolve_clips(["ViT-B-16", "ViT-B-32"], {}, allow_random=True, notes=notes)
    assert [(c.name, c.random) for c in chosen] == [("ViT-B-16", True), ("ViT-B-32", True)]
    with pytest.raises(StylebridgeError, match="expected NAME=PATH"):
        R.parse_clip_weights(["ViT-B-32"])

    bad = tmp_path / "targets.json"
    bad.write_text(json.dumps({"a.safetensors": {"prompt": "x"}}))
    with pytest.raises(StylebridgeError, match=r"targets\.json: entry 'a\.safetensors'"):
        R.read_targets(bad)
    good = tmp_path / "t2.json"
    good.write_text(json.dumps({"a.safetensors": "The Joker",
                                "b": {"image": "refs/b.png", "text": "sketch", "kind": "image"}}))
    table = R.read_targets(good)
    assert table["a.safetensors"] == {"text": "The Joker"}
    assert table["b"] == {"text": "sketch", "image": tmp_path / "refs" / "b.png", "kind": "image"}


def test_a_domain_file_named_inversion_does_not_take_the_inversion_key(tmp_path: Path) -> None:
    """The Adapter keys its un-adapted output "inversion": a domain of that name is renamed
    here too, so its scores are read from the domain's own images."""
    import torch

    from stylebridge.core.batch import BatchReport
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    preset = R.build_tiny_preset(tmp_path / "preset", seed=1)
    domains = tmp_path / "domains"
    domains.mkdir()
    shutil.copy(preset.domains / "tiny-pixar.safetensors", domains / "inversion.safetensors")
    gen = load_stylegan2(preset.generator).generator
    entries = R.collect_domains([domains], [], BatchReport(), generator=gen,
                                device=torch.device("cpu"))
    assert [e.name for e in entries] == ["inversion-2"]


def test_the_pipeline_runs_without_the_cli_and_reports_progress(tmp_path: Path) -> None:
    """`run_thesis_tables` takes a config and returns the tables; its plain callback sees
    the preset, the CLIP loading and every row from start to end."""
    events: list[R.TablesProgress] = []
    config = R.ThesisTablesConfig(preset="tiny", out=tmp_path / "out", device="cpu",
                                  samples=2, batch=2)
    result = R.run_thesis_tables(config, progress=events.append)
    assert result.exit_code == 0 and not result.failed and result.random_weights
    assert json.loads(result.json_path.read_text()) == result.data
    assert result.markdown_path.read_text().startswith("# Thesis Tables")
    kinds = [e.kind for e in events]
    assert kinds[0] == "preset" and events[0].path == tmp_path / "out" / R.PRESET_DIR
    assert kinds.index("clips") < kinds.index("clips-done") < kinds.index("row")
    starts = [e.label for e in events if e.kind == "row"]
    assert starts == [e.label for e in events if e.kind == "row-done"] == THESIS_ROWS
    for label in THESIS_ROWS:
        total = next(e.total for e in events if e.kind == "row" and e.label == label)
        assert sum(e.count for e in events if e.kind == "advance" and e.label == label) == total
    assert [r["status"] for r in result.data["rows"]] == ["done"] * len(THESIS_ROWS)


def test_the_pipeline_error_carries_the_skipped_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad-domains"
    bad.mkdir()
    (bad / "junk.safetensors").write_bytes(b"not a checkpoint")
    config = R.ThesisTablesConfig(preset="tiny", out=tmp_path / "out", device="cpu",
                                  domains=[str(bad)])
    with pytest.raises(R.NoUsableInputs, match="no usable domain: the 1 domain checkpoint") \
            as info:
        R.run_thesis_tables(config)
    assert isinstance(info.value, StylebridgeError)
    assert [p.name for p, _ in info.value.report.skipped] == ["junk.safetensors"]
    assert info.value.domains.skipped == info.value.report.skipped
    assert info.value.report.done == info.value.domains.done == []  # no photo was read


@pytest.mark.parametrize("module", ["stylebridge/pipelines/presets.py",
                                    "stylebridge/pipelines/demo.py",
                                    *sorted(str(p.relative_to(Path(R.__file__).parents[3]))
                                            for p in Path(R.__file__).parent.glob("*.py"))])
def test_the_pipelines_import_no_argparse_rich_or_cli(module: str) -> None:
    """Layering (issue 15): the reproduce / demo / presets pipelines import neither argparse
    nor rich nor the CLI, and every module stays under 600 lines."""
    import ast

    path = Path(R.__file__).parents[3] / module
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") < 600, module
    for node in ast.walk(ast.parse(source)):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        for name in names:
            assert name.split(".")[0] not in ("argparse", "rich"), (module, name)
            assert not name.startswith("stylebridge.cli"), (module, name)


def test_installed_clip_weights_are_used_without_clip_weights(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`stylebridge weights fetch clip-vit-b-32` is enough for reproduce, as for train domain."""
    from conftest import tiny_clip_entry

    name, path, manager = tiny_clip_entry(tmp_path, monkeypatch)
    notes: list[str] = []
    with pytest.raises(StylebridgeError, match=rf"{name}: run `stylebridge weights fetch "
                                               r"tiny-clip`, or give --clip-weights"):
        R.resolve_clips([name], {}, allow_random=False, notes=notes)
    installed = manager.register("tiny-clip", path)
    chosen = R.resolve_clips([name], {}, allow_random=False, notes=notes)
    assert [(c.name, c.weights, c.random) for c in chosen] == [(name, installed, True)]
