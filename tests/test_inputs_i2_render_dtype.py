"""``render`` with an inversion file whose ``w_plus`` is float16, bfloat16, float64, int64 or
bool: floating dtypes are converted to the generator's (float32) whether the file is rendered
alone or among float32 neighbours (alone, float16 failed inside the generator with
``mat1 and mat2 must have the same dtype``; in a folder it rendered); integer and bool
tensors are skipped, the file and the reason named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import one_torch_thread, random_stylespace, tiny_generator

from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.core.images import load_image
from stylebridge.core.inversion import Inversion
from stylebridge.core.stylegan2.checkpoint import save_stylegan2
from stylebridge.pipelines.inversion_file import save_inversion
from stylebridge.pipelines.render import RenderConfig, render


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("render_dtype")
    gen = tiny_generator()
    gen_path = save_stylegan2(root / "g.safetensors", gen)
    domain = random_stylespace(gen, seed=3)
    domain_path = root / "dom.safetensors"
    save_checkpoint(domain_path, domain.state_dict(), kind="domain_method", plugin=domain.name,
                    config=domain.config())
    w = torch.randn(1, gen.n_latent, gen.style_dim, generator=torch.Generator().manual_seed(1))
    return {"root": root, "gen": gen_path, "domain": domain_path, "w": w}


def _save(folder: Path, stem: str, w_plus: torch.Tensor, gen: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return save_inversion(folder / f"{stem}_inversion.safetensors", Inversion(w_plus=w_plus),
                          encoder="e4e", encoder_spec="e4e", generator=gen)


def _render(setup: dict[str, object], latents: list[Path], out: Path):
    with one_torch_thread():
        return render(RenderConfig(latents=latents, methods=[str(setup["domain"])], out=out,
                                   generator=str(setup["gen"]), device="cpu"))


def _pixels(path: Path) -> np.ndarray:
    return load_image(path).numpy()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_a_floating_inversion_renders_alone_as_in_a_folder(setup: dict[str, object],
                                                           tmp_path: Path,
                                                           dtype: torch.dtype) -> None:
    gen, w = setup["gen"], setup["w"]
    low = w.to(dtype)
    # the same latents as float32 (exact for float16/bfloat16; float64 is rounded)
    same = _save(tmp_path / "ref", "x", low.float(), gen)
    alone = _save(tmp_path / "alone", "x", low, gen)
    folder = tmp_path / "folder"
    _save(folder, "x", low, gen)
    _save(folder, "y", w, gen)  # a float32 neighbour
    results = {name: _render(setup, [src], tmp_path / f"out_{name}")
               for name, src in (("ref", same), ("alone", alone), ("folder", folder))}
    for name, result in results.items():
        assert result.exit_code == 0 and result.report.skipped == [], (name, result.report)
    for key in ("x_inversion.png", "x_dom.png"):
        ref = _pixels(tmp_path / "out_ref" / key)
        assert np.array_equal(_pixels(tmp_path / "out_alone" / key), ref), key
        # batched with its neighbour: the same render up to one 8-bit level (as test_render)
        assert np.abs(_pixels(tmp_path / "out_folder" / key) - ref).max() <= 1.5 / 255, key
    notes = [text for _, text in results["alone"].report.notes]
    if dtype == torch.float64:  # rounded: said
        assert notes == ["its w_plus is float64: rounded to float32, the generator's dtype"]
    else:  # exact: nothing to say
        assert notes == []


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_an_integer_inversion_is_skipped_naming_the_file(setup: dict[str, object],
                                                         tmp_path: Path,
                                                         dtype: torch.dtype) -> None:
    gen, w = setup["gen"], setup["w"]
    folder = tmp_path / "folder"
    bad = _save(folder, "bad", (w * 10).to(dtype), gen)
    _save(folder, "good", w, gen)
    for latents in ([bad], [folder]):  # alone (everything skipped) and among good files
        result = _render(setup, latents, tmp_path / f"out{len(latents)}{latents[0].name}")
        assert result.report.skipped == [
            (bad, f"inversion file's 'w_plus' is {str(dtype).removeprefix('torch.')}, not "
                  "floating point (an inversion holds real-valued latents and features)")]
    assert [p.name for p in result.report.done] == ["good_inversion.safetensors"]
    assert not (tmp_path / f"out1{folder.name}" / "bad_dom.png").exists()
