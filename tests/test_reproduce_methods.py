"""``reproduce thesis-tables --methods``: the domain methods side by side (issue 17) on the tiny
random-weight preset: each method's recipe trains its domains, the report adds one table with a
row per method."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from conftest import one_torch_thread

from stylebridge.cli.main import main
from stylebridge.pipelines import reproduce as R
from stylebridge.pipelines.reproduce import methods as M

THREE = ["stylespace", "affine_plus", "domain_modulation"]
ALL = [*THREE, "hyperdomain", "mindthegap"]


@pytest.fixture(autouse=True)
def _one_thread(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("COLUMNS", "220")
    with one_torch_thread():
        yield


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One CLI run: --preset tiny --methods with all five methods of issue 17."""
    out = tmp_path_factory.mktemp("methods") / "out"
    import contextlib
    import io

    buffer = io.StringIO()
    with one_torch_thread(), contextlib.redirect_stdout(buffer):
        code = main(["reproduce", "thesis-tables", "--preset", "tiny", "--methods",
                     ",".join(ALL), "--method-steps", "2", "--out", str(out),
                     "--device", "cpu"])
    return {"code": code, "out": out, "text": buffer.getvalue(),
            "data": json.loads((out / R.JSON_FILE).read_text())}


def _counts_by_hand(generator_path: Path) -> dict[str, int]:
    """Parameters per domain from the tiny generator's layer shapes: StyleSpace and domain
    modulation one value per input channel of every modulated conv (no ToRGB); Affine+ one
    affine layer (C_in × style_dim weights + C_in biases) per style layer, ToRGB included."""
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    gen = load_stylegan2(generator_path).generator
    convs = [gen.conv1.conv, *[c.conv for c in gen.convs]]
    rgbs = [gen.to_rgb1.conv, *[t.conv for t in gen.to_rgbs]]
    per_conv = sum(int(c.weight.shape[2]) for c in convs)
    affine = sum(int(c.weight.shape[2]) * (gen.style_dim + 1) for c in [*convs, *rgbs])
    # MindTheGap's delta: every styled conv's weight, affine (weight + bias), activation bias
    # and noise strength, and the constant input (upstream trains these, never ToRGB)
    mtg = sum(c.weight.numel() + int(c.weight.shape[2]) * (gen.style_dim + 1)
              + int(c.weight.shape[1]) + 1 for c in convs) + gen.input.input.numel()
    return {"stylespace": per_conv, "domain_modulation": per_conv, "affine_plus": affine,
            "mindthegap": mtg}


def _network_size(path: Path) -> int:
    """The hyper-network's trainable parameters, read from its file (not the cached prompt
    embeddings, nor the batch-norm statistics)."""
    from safetensors import safe_open

    stats = ("running_mean", "running_var", "num_batches_tracked")
    with safe_open(str(path), framework="pt") as fh:
        return sum(math.prod(fh.get_slice(k).get_shape())
                   for k in fh.keys()  # noqa: SIM118 - safe_open is not a mapping
                   if k != "prompt_embeddings" and not k.endswith(stats))


def test_one_table_row_per_method_with_finite_values(run: dict[str, Any]) -> None:
    assert run["code"] == 0, run["text"]
    data, out = run["data"], run["out"]
    clips = list(R.TINY_CLIPS)
    cmp = data["methods"]
    assert cmp["row"] == "e4e" and cmp["trained"] is True
    assert [m["method"] for m in cmp["methods"]] == ALL
    # the domains of the run are the recipes' (one per method and prompt; MindTheGap: one
    # from the reference photo), not the preset's
    names = [d["name"] for d in data["domains"]]
    assert names == [f"{m}-{p}" for m in ALL[:4] for p, _ in R.TINY_PROMPTS] + [
        "mindthegap-photo0"]
    e4e = next(r for r in data["rows"] if r["key"] == "e4e")
    hand = _counts_by_hand(out / R.PRESET_DIR / "generator.safetensors")
    assert {k: hand[k] for k in THREE} == {"stylespace": 208, "domain_modulation": 208,
                                           "affine_plus": 320 * 33}
    hand["hyperdomain"] = _network_size(out / R.PRESET_DIR / "methods" / "hyperdomain"
                                        / "hyperdomain.safetensors")
    for m in cmp["methods"]:
        assert m["status"] == "done"
        if m["method"] != "mindthegap":
            assert m["domains"] == [f"{m['method']}-{p}" for p, _ in R.TINY_PROMPTS]
            assert m["quality_vs"] == ["text"]
        else:   # an image domain with only its reference: scored against the reference
            assert m["domains"] == ["mindthegap-photo0"]
            assert m["quality_vs"] == ["reference image"]
        assert m["params_per_domain"] == hand[m["method"]]
        assert m["train_seconds"] is not None and 0 < m["train_seconds"] < 120
        for clip in clips:
            for metric, low, high in (("quality", -1.0, 1.0), ("diversity", 0.0, 2.0)):
                value = m["mean"][clip][metric]
                assert math.isfinite(value) and low <= value <= high
                # the mean of that method's domains on the E4E row (text domains: their text)
                cells = [e4e["per_domain"][n][clip] for n in m["domains"]]
                key = metric
                if metric == "quality":
                    key = "quality_image" if m["method"] == "mindthegap" else "quality_text"
                expected = sum(c.get(key, c[metric]) for c in cells) / len(cells)
                assert value == pytest.approx(expected, abs=1e-12)
    # the methods did train: their domains differ from each other
    first = {round(m["mean"][clips[0]]["diversity"], 8) for m in cmp["methods"]}
    assert len(first) == len(ALL)
    # the terminal and the markdown show the table
    assert "Domain methods compared: E4E latents" in run["text"]
    markdown = (out / R.MARKDOWN_FILE).read_text()
    assert "## Domain methods compared: E4E latents" in markdown
    assert "| affine_plus | 2 |" in markdown and "| 10,560 |" in markdown
    # the recipes' folders hold only the domains (usable as --domains)
    for method in THREE:
        files = sorted(p.name for p in (out / R.PRESET_DIR / "methods" / method).iterdir())
        assert files == [f"{method}-{p}.safetensors" for p, _ in R.TINY_PROMPTS]


def test_given_domains_are_grouped_by_their_method(run: dict[str, Any], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    preset = run["out"] / R.PRESET_DIR
    methods = preset / "methods"
    args = ["reproduce", "thesis-tables", "--images", str(preset / "images"),
            "--domains", str(methods / "stylespace"), str(methods / "domain_modulation"),
            "--generator", str(preset / "generator.safetensors"),
            "--e4e", str(preset / "e4e.safetensors"), "--fse", str(preset / "fse.safetensors"),
            "--clip-config", str(preset / "clip"), "--methods", "stylespace",
            "--methods", "affine_plus", "--methods-row", "orig", "--samples", "2",
            "--out", str(tmp_path / "out"), "--device", "cpu", "--allow-random"]
    for name in R.TINY_CLIPS:
        args += ["--clip", name, "--clip-weights", f"{name}={preset / 'clip' / name}.safetensors"]
    assert main(args) == 0, capsys.readouterr().out
    data = json.loads((tmp_path / "out" / R.JSON_FILE).read_text())
    cmp = {m["method"]: m for m in data["methods"]["methods"]}
    assert data["methods"]["row"] == "orig" and data["methods"]["trained"] is False
    assert cmp["stylespace"]["status"] == "done" and len(cmp["stylespace"]["domains"]) == 2
    assert cmp["stylespace"]["train_seconds"] is None   # not known for given files
    assert cmp["affine_plus"]["status"] == "skipped" and cmp["affine_plus"]["domains"] == []
    assert [d["name"] for d in data["domains"]] == ["stylespace-tiny-pixar",
                                                    "stylespace-tiny-sketch"]
    assert any("left out domains of other methods: domain_modulation-tiny-pixar" in n
               for n in data["notes"])


def test_a_method_without_recipe_is_skipped_and_a_registered_recipe_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The extension point as the merger uses it: a recipe (RecipeInputs -> TrainedDomain
    list) under RECIPES["hyperdomain"] makes that method a row; one removed is skipped."""
    import torch

    from stylebridge.core.stylegan2.checkpoint import load_stylegan2
    from stylebridge.plugins.domains.modulation import DomainModulation

    seen: list[M.RecipeInputs] = []

    def fake_hyperdomain(inputs: M.RecipeInputs) -> list[M.TrainedDomain]:
        seen.append(inputs)
        gen = load_stylegan2(inputs.generator).generator
        out = []
        for i, (name, prompt) in enumerate(inputs.prompts):
            method = DomainModulation.for_generator(gen)
            with torch.no_grad():
                for d in method.modulation.values():
                    d.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(i))
            path = inputs.out_dir / f"{name}.safetensors"
            method.save(path, extra={"target": {"text": prompt}})
            out.append(M.TrainedDomain(name=f"hyper-{name}", spec=f"domain_modulation:{path}",
                                       path=path, text=prompt, seconds=1.5, params=1234))
        return out

    monkeypatch.delitem(M.RECIPES, "affine_plus")
    monkeypatch.setitem(M.RECIPES, "hyperdomain", fake_hyperdomain)
    result = R.run_thesis_tables(R.ThesisTablesConfig(
        preset="tiny", methods=["stylespace,affine_plus", "hyperdomain"], method_steps=1,
        samples=2, out=tmp_path / "out", device="cpu"))
    cmp = {m["method"]: m for m in result.data["methods"]["methods"]}
    assert list(cmp) == ["stylespace", "affine_plus", "hyperdomain"]
    assert [i.steps for i in seen] == [1] and seen[0].prompts == R.TINY_PROMPTS
    assert seen[0].out_dir == tmp_path / "out" / R.PRESET_DIR / "methods" / "hyperdomain"
    assert seen[0].reference_image.is_file()
    hyper = cmp["hyperdomain"]   # grouped by the recipe's name, not the file's plugin
    assert hyper["status"] == "done" and hyper["domains"] == ["hyper-tiny-pixar",
                                                              "hyper-tiny-sketch"]
    assert hyper["params_per_domain"] == 1234 and hyper["train_seconds"] == 1.5
    assert cmp["affine_plus"]["status"] == "skipped"
    assert "no training recipe" in cmp["affine_plus"]["reason"]
    assert any("'affine_plus' skipped: no training recipe" in n for n in result.notes)
    assert cmp["stylespace"]["status"] == "done"
    assert not (tmp_path / "out" / R.PRESET_DIR / "methods" / "affine_plus").exists()


def test_unknown_method_is_a_one_line_error(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["reproduce", "thesis-tables", "--preset", "tiny", "--methods",
                 "stylespace,stylegan-nada", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: --methods 'stylegan-nada': unknown method (known: "
                          "stylespace, affine_plus, domain_modulation, hyperdomain, mindthegap")
    assert not (tmp_path / "out").exists()   # refused before the preset is built
    with pytest.raises(SystemExit) as exc:   # argparse's choices
        main(["reproduce", "thesis-tables", "--preset", "tiny", "--methods", "stylespace",
              "--methods-row", "nope", "--out", str(tmp_path / "o2")])
    assert exc.value.code == 2 and "--methods-row: invalid choice: 'nope'" in capsys.readouterr().err
    assert M.parse_methods(["stylespace, affine_plus", "stylespace"]) == ["stylespace",
                                                                          "affine_plus"]


def test_without_methods_the_report_has_no_methods_table(tmp_path: Path) -> None:
    result = R.run_thesis_tables(R.ThesisTablesConfig(preset="tiny", samples=2,
                                                      out=tmp_path / "out", device="cpu"))
    assert "methods" not in result.data
    assert "Domain methods compared" not in result.markdown_path.read_text()
    assert [d["name"] for d in result.data["domains"]] == [n for n, _ in R.TINY_PROMPTS]


def test_recipe_extension_point_is_typed() -> None:
    """A recipe is a function RecipeInputs -> list[TrainedDomain]; registering one makes the
    method known (the merger adds hyperdomain / mindthegap this way)."""
    assert set(THREE) <= set(M.RECIPES)
    assert M.METHOD_ORDER[:5] == ("stylespace", "affine_plus", "domain_modulation",
                                  "hyperdomain", "mindthegap")
    saved = dict(M.RECIPES)
    try:
        M.register_recipe("my_method", lambda inputs: [])
        assert "my_method" in M.known_methods()
        assert M.parse_methods(["my_method"]) == ["my_method"]
    finally:
        M.RECIPES.clear()
        M.RECIPES.update(saved)
