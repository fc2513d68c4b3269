"""CLI: plugins, info, convert, generate, and one-line errors for bad input."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from stylebridge.cli.main import main
from stylebridge.core.checkpoint import save_checkpoint
from stylebridge.registry import KINDS, reset_registry


@pytest.fixture(autouse=True)
def _fresh_registry():
    reset_registry()
    yield
    reset_registry()


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys) -> None:
    from stylebridge import __version__

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"stylebridge {__version__}\n"
    with pytest.raises(SystemExit) as info:  # after --debug, argparse's own --version
        main(["--debug", "--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"stylebridge {__version__}\n"


def test_version_imports_neither_torch_nor_plugins() -> None:
    """``stylebridge --version`` answers at once: it loads no plugin and not torch (seconds)."""
    code = ("import sys; from stylebridge.cli import run; sys.argv = ['stylebridge', '--version']; "
            "assert run() == 0; "
            "assert not {'torch', 'pluggy'} & set(sys.modules), sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("stylebridge ")


def test_plugins_table_reads_at_80_columns(capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kind heads its own section, every plugin is listed by its full name, no line is
    wider than the terminal; a plugin of another package names it (the example plugin, when
    installed)."""
    from stylebridge.registry import get_registry

    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run(capsys, "plugins")
    assert code == 0
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    cells = [line.strip("│ ").split("│")[0].strip() for line in lines]
    registry = get_registry()
    for kind in KINDS:
        assert kind in cells
        assert set(registry.names(kind)) <= set(cells)
    third = [(kind, name) for kind in KINDS for name in registry.names(kind)
             if registry.get(kind, name).provider != "stylebridge"]
    if third:
        assert "(from" in out
    else:
        assert "(from" not in out


def test_plugins_json_lists_every_kind(capsys) -> None:
    code, out, _ = run(capsys, "plugins", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(KINDS) <= set(data)
    names = {row["name"] for row in data["converter"]}
    assert {"stylegan2-rosinality", "stylegan2-nvlabs"} <= names
    assert {row["name"] for row in data["command"]} >= {"plugins", "info", "convert", "generate"}


def test_info_json(capsys, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.safetensors", {"a": torch.zeros(2, 3), "b": torch.ones(4)},
                           kind="encoder", plugin="toy", config={"k": 1})
    code, out, _ = run(capsys, "info", str(path), "--json")
    assert code == 0
    info = json.loads(out)
    assert (info["kind"], info["plugin"], info["n_tensors"], info["n_parameters"]) == ("encoder", "toy", 2, 10)
    assert info["config"] == {"k": 1} and info["random_weights"] is False
    code, out, _ = run(capsys, "info", f"toy:{path}", "--json")
    assert code == 0
    # a header that says untrained: said first in the table, and in the JSON
    rnd = save_checkpoint(tmp_path / "r.safetensors", {"a": torch.zeros(2)}, kind="encoder",
                          plugin="toy", extra={"random_weights": True})
    assert json.loads(run(capsys, "info", str(rnd), "--json")[1])["random_weights"] is True
    code, out, _ = run(capsys, "info", str(rnd))
    rows = [line for line in out.splitlines() if "│" in line]
    assert code == 0 and "weights" in rows[0] and "RANDOM WEIGHTS: untrained" in rows[0]
    code, out, err = run(capsys, "info", str(path))
    assert code == 0 and "RANDOM" not in out and "RANDOM" not in err


def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    plain = tmp_path / "plain.safetensors"
    save_file({"x": torch.zeros(1)}, str(plain))
    enc = save_checkpoint(tmp_path / "enc.safetensors", {"x": torch.zeros(1)}, kind="encoder",
                          plugin="e4e")
    missing = tmp_path / "missing.safetensors"
    return [
        (["convert", "stylegan2-rosinaliti", str(plain), str(tmp_path / "o.safetensors")],
         "unknown converter 'stylegan2-rosinaliti'; did you mean 'stylegan2-rosinality'"),
        (["info", f"e4e:{plain}:oops"], "malformed option 'oops'"),
        (["info", "E4E:x"], "invalid name 'E4E'"),
        (["generate", "--generator", "stylegan2:", "--out", str(tmp_path / "g")], "ends with ':'"),
        (["info", str(missing)], f"{missing}: no such file"),
        (["generate", "--generator", str(missing), "--out", str(tmp_path / "g")], "no such file"),
        (["info", str(plain)], "without a stylebridge header"),
        (["generate", "--generator", str(enc), "--out", str(tmp_path / "g")],
         "is a checkpoint of kind 'encoder' (e4e), expected kind 'generator'"),
        (["info", f"fse:{enc}"], "plugin 'e4e', expected 'fse'"),
        (["convert", "stylegan2-rosinality", str(missing), str(tmp_path / "o.safetensors")],
         "no such file"),
    ]


def test_bad_input_gives_one_line_error_and_nonzero_exit(capsys, tmp_path: Path) -> None:
    for argv, message in _bad_inputs(tmp_path):
        code, _out, err = run(capsys, *argv)
        assert code != 0, argv
        assert message in err, (argv, err)
        assert err.count("\n") == 1 and err.startswith("error: "), (argv, err)
        assert "Traceback" not in err


def test_console_script_has_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nope.safetensors"
    proc = subprocess.run([sys.executable, "-m", "stylebridge.cli", "info", str(missing)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {missing}: no such file"
    debug = subprocess.run([sys.executable, "-m", "stylebridge.cli", "info", str(missing), "--debug"],
                           capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def _pixels(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path), dtype=np.int16).copy())


def test_convert_and_generate_from_fixture(capsys, tmp_path: Path, sg2_fixture) -> None:
    dst = tmp_path / "g.safetensors"
    src = sg2_fixture["dir"] / "rosinality_tiny64.pt"
    code, _out, err = run(capsys, "convert", "stylegan2-rosinality", str(src), str(dst))
    assert code == 0, err
    code, _, err = run(capsys, "convert", "stylegan2-rosinality", str(src), str(dst))
    assert code == 2 and "already exists" in err
    out_dir = tmp_path / "imgs"
    code, _, err = run(capsys, "generate", "-g", f"stylegan2:{dst}", "--seeds", "0-2,7",
                       "--truncation", "0.7", "--out", str(out_dir), "--device", "cpu")
    assert code == 0, err
    names = sorted(p.name for p in out_dir.iterdir())
    assert names == ["generate.json", "grid.png", "seed0000.png", "seed0001.png", "seed0002.png",
                     "seed0007.png"]
    img = Image.open(out_dir / "seed0001.png")
    assert img.size == (64, 64) and img.mode == "RGB"
    # same seed → same image; different seeds → different images
    code, _, _ = run(capsys, "generate", "-g", str(dst), "--seeds", "1", "--truncation", "0.7",
                     "--out", str(tmp_path / "again"), "--batch", "1")
    assert code == 0
    a = _pixels(out_dir / "seed0001.png")
    b = _pixels(tmp_path / "again" / "seed0001.png")
    c = _pixels(out_dir / "seed0002.png")
    assert (a - b).abs().max() <= 1  # batch 4 vs 1: float rounding only
    assert (a - c).abs().float().mean() > 5


def test_generate_truncation_0_is_the_average_face(capsys, tmp_path, converted_tiny) -> None:
    """psi = 0 (accepted, as by `reproduce`): every seed renders latent_avg; with the stored
    noise the samples are the same picture, which the terminal says."""
    from stylebridge.core.images import from_generator_range
    from stylebridge.core.stylegan2.checkpoint import load_stylegan2

    out = tmp_path / "mean"
    code, _, err = run(capsys, "generate", "-g", str(converted_tiny), "--seeds", "0-1",
                          "--truncation", "0", "--out", str(out), "--device", "cpu")
    assert code == 0, err
    assert "--truncation 0 renders the average w for every seed" in " ".join(err.split())
    a, b = _pixels(out / "seed0000.png"), _pixels(out / "seed0001.png")
    assert torch.equal(a, b)
    gen = load_stylegan2(converted_tiny).generator
    with torch.no_grad():
        w_plus = gen.latent_avg.view(1, 1, -1).expand(1, gen.n_latent, -1)
        mean = from_generator_range(gen.synthesis(gen.styles(w_plus), randomize_noise=False))
    want = (mean[0].permute(1, 2, 0) * 255).round().to(torch.int16)
    assert (a - want).abs().max() <= 1


@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "3-1"], "is empty"), (["--seeds", "a"], "expected e.g. 0-7"),
    (["--truncation", "-0.1"], "must be in [0, 1]"), (["--batch", "0"], "must be >= 1"),
    (["--device", "tpu"], "expected auto, cpu or cuda"),
])
def test_generate_rejects_out_of_range_values(capsys, tmp_path, converted_tiny, args, message) -> None:
    code, _, err = run(capsys, "generate", "-g", str(converted_tiny), "--out", str(tmp_path / "o"),
                       *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_full_disk_fails_cleanly_without_partial_files(capsys, tmp_path, converted_tiny,
                                                       monkeypatch) -> None:
    import errno

    def no_space(self, fp, format=None, **params):
        Path(fp).write_bytes(b"\x89PNG partial")
        raise OSError(errno.ENOSPC, "No space left on device", str(fp))

    monkeypatch.setattr(Image.Image, "save", no_space)
    out = tmp_path / "o"
    code, _, err = run(capsys, "generate", "-g", str(converted_tiny), "--seeds", "0-1",
                       "--out", str(out))
    assert code == 2 and err == f"error: disk full (or file size limit) writing {out / 'seed0000.png'}\n"
    assert list(out.iterdir()) == []  # the temporary file was removed, nothing half-written


def test_out_of_gpu_memory_is_one_line(capsys, monkeypatch) -> None:
    from stylebridge.cli.commands import plugins as commands

    def oom(self, args, console):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(commands.PluginsCommand, "run", oom)
    code, _, err = run(capsys, "plugins")
    assert code == 2 and err == "error: out of GPU memory; try a smaller --batch (or --device cpu)\n"


def test_every_command_and_subcommand_accepts_debug() -> None:
    """README: every command accepts --debug (also `analyze latents`, `weights list`, ...)."""
    from stylebridge.cli.main import _subparsers, build_parser

    parser, _ = build_parser()
    parsers = _subparsers(parser)
    names = {p.prog for p in parsers}
    assert {"stylebridge analyze latents", "stylebridge weights list",
            "stylebridge train featureshift"} <= names
    assert all("--debug" in p._option_string_actions for p in parsers)


@pytest.fixture
def tiny_gen_files(tmp_path: Path) -> dict[str, Path]:
    """A tiny 32 px generator saved twice: plain and marked as random weights."""
    from conftest import tiny_generator

    from stylebridge.core.stylegan2.checkpoint import save_stylegan2

    gen = tiny_generator(seed=1)
    return {"trained": save_stylegan2(tmp_path / "gen.safetensors", gen),
            "random": save_stylegan2(tmp_path / "rgen.safetensors", gen,
                                     extra={"random_weights": True})}


def test_generate_random_noise_depends_only_on_each_seed(capsys, tmp_path, tiny_gen_files) -> None:
    g = str(tiny_gen_files["trained"])
    for name, seeds, batch, noise in (("b4", "0-3", "4", "random"), ("b1", "1", "1", "random"),
                                      ("b2", "3,2,1", "2", "random"), ("const", "1", "1", "const")):
        code, _, err = run(capsys, "generate", "-g", g, "--seeds", seeds, "--batch", batch,
                           "--noise", noise, "--out", str(tmp_path / name), "--device", "cpu")
        assert code == 0, err
    alone = _pixels(tmp_path / "b1" / "seed0001.png")
    # seed 1 gets the same picture whatever its batch and place in it (float rounding only)
    assert (_pixels(tmp_path / "b4" / "seed0001.png") - alone).abs().max() <= 1
    assert (_pixels(tmp_path / "b2" / "seed0001.png") - alone).abs().max() <= 1
    assert (_pixels(tmp_path / "b2" / "seed0002.png")
            - _pixels(tmp_path / "b4" / "seed0002.png")).abs().max() <= 1
    # the noise is really drawn (not the stored buffers) and differs between seeds
    assert (_pixels(tmp_path / "const" / "seed0001.png") - alone).abs().max() > 1
    assert (_pixels(tmp_path / "b4" / "seed0000.png") - alone).abs().float().mean() > 1


def test_seed_inputs_are_drawn_from_the_seed_alone(tiny_gen_files) -> None:
    from stylebridge.pipelines.generate import seed_inputs

    shapes = [(1, 1, 4, 4), (1, 1, 8, 8)]
    z, noise = seed_inputs(7, 16, shapes)
    g = torch.Generator().manual_seed(7)
    torch.testing.assert_close(z, torch.randn(16, generator=g), rtol=0, atol=0)
    assert noise is not None and [tuple(n.shape) for n in noise] == shapes
    torch.testing.assert_close(noise[0], torch.randn(1, 1, 4, 4, generator=g), rtol=0, atol=0)
    z_const, none = seed_inputs(7, 16, None)
    assert none is None and torch.equal(z_const, z)  # z is the same with and without noise


@pytest.mark.parametrize(("seeds", "message"), [
    ("99999999999999999999", "out of range (seeds must be in 0..4294967295)"),
    ("4294967296", "out of range"),
    ("0-200000", "is too many"), ("0-4294967295", "is too many"),
])
def test_generate_rejects_seeds_torch_cannot_use(capsys, tmp_path, tiny_gen_files, seeds,
                                                 message) -> None:
    out = tmp_path / "o"
    code, _, err = run(capsys, "generate", "-g", str(tiny_gen_files["trained"]), "--seeds", seeds,
                       "--out", str(out), "--device", "cpu")
    assert code == 2 and message in err and err.count("\n") == 1 and err.startswith("error: ")
    assert not out.exists()


def test_generate_largest_seed_works(capsys, tmp_path, tiny_gen_files) -> None:
    code, _, err = run(capsys, "generate", "-g", str(tiny_gen_files["trained"]), "--seeds",
                       "4294967295", "--out", str(tmp_path / "o"), "--device", "cpu")
    assert code == 0, err
    assert (tmp_path / "o" / "seed4294967295.png").is_file()


def _red(arr: np.ndarray) -> np.ndarray:
    arr = arr.astype(int)
    return (arr[..., 0] > 200) & (arr[..., 1] < 80) & (arr[..., 2] < 80)


def test_generate_labels_a_random_weight_generator(capsys, tmp_path, tiny_gen_files,
                                                   monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "500")
    code, out, err = run(capsys, "generate", "-g", str(tiny_gen_files["trained"]), "--seeds",
                         "0-3", "--out", str(tmp_path / "t"), "--device", "cpu")
    assert code == 0, err
    assert "RANDOM WEIGHTS" not in out and "RANDOM WEIGHTS" not in err
    from stylebridge.core.images import LINE

    plain = np.asarray(Image.open(tmp_path / "t" / "grid.png"))
    # 2×2 tiles of 32 px enlarged to 128 px, each under its "seed N" line, no notice
    assert plain.shape == (2 * (LINE + 2 + 128 + 2) + 2, 2 * 130 + 2, 3)

    code, out, err = run(capsys, "generate", "-g", str(tiny_gen_files["random"]), "--seeds",
                         "0-3", "--out", str(tmp_path / "r"), "--device", "cpu")
    assert code == 0, err
    text = " ".join(out.split())
    assert (f"RANDOM WEIGHTS: {tiny_gen_files['random']} is a random-weight generator"
            in " ".join(err.split()))  # the notice on stderr, the result on stdout
    assert "grid.png to" in text and text.endswith("[RANDOM WEIGHTS]")
    grid = np.asarray(Image.open(tmp_path / "r" / "grid.png"))
    assert grid.shape[1] == plain.shape[1] and grid.shape[0] > plain.shape[0] + LINE
    tiles = grid[:plain.shape[0]]  # the same labelled tiles, no blank strip above them
    assert np.array_equal(tiles, plain)
    assert _red(grid[plain.shape[0]:]).any()  # the notice under the tiles
    # the images themselves are the generator's (same weights, same seeds)
    assert np.array_equal(np.asarray(Image.open(tmp_path / "r" / "seed0002.png")),
                          np.asarray(Image.open(tmp_path / "t" / "seed0002.png")))


def test_a_plugin_command_that_is_no_command_object_is_skipped_with_a_warning(capsys,
                                                                               monkeypatch) -> None:
    """The registry sits below the CLI and cannot check the Command type: the CLI does."""

    from stylebridge.cli.base import Command
    from stylebridge.registry import hookimpl
    from stylebridge.registry import registry as registry_mod

    class Hello(Command):
        name = "hello-test"
        help = "says hello"

        def add_arguments(self, parser) -> None:
            parser.add_argument("--who", default="world")

        def run(self, args, console) -> int:
            print(f"hello {args.who}")
            return 0

    class NotACommand:
        name = "broken-test"

    plugin = types.ModuleType("thirdparty_cmds")

    @hookimpl
    def register_commands(register) -> None:
        register(Hello())
        register(NotACommand())

    plugin.register_commands = register_commands
    reg = registry_mod.Registry(entry_points=False, extra_plugins=[plugin])
    monkeypatch.setattr(registry_mod, "_REGISTRY", reg)
    code, out, err = run(capsys, "hello-test", "--who", "plugins")
    assert code == 0 and out == "hello plugins\n" and err == ""
    # reported once, as a failure of its package, and named when called
    failed = [f.error for f in reg.failures]
    assert failed == ["command 'broken-test': registered a NotACommand, not a "
                      "stylebridge.cli.base.Command instance (ignored)"]
    code, out, err = run(capsys, "broken-test")
    assert code == 2 and err == (
        "error: command 'broken-test' is broken and was not loaded: registered a NotACommand, "
        "not a stylebridge.cli.base.Command instance (package thirdparty_cmds); `stylebridge "
        "plugins` lists the failures\n")
    code, out, _ = run(capsys, "plugins", "--json")
    data = json.loads(out)
    assert "broken-test" not in {row["name"] for row in data["command"]}
    assert [row["provider"] for row in data["failed"]] == ["thirdparty_cmds"]


def test_a_command_whose_add_arguments_raises_takes_only_itself_down(capsys, monkeypatch) -> None:
    from stylebridge.cli.base import Command
    from stylebridge.registry import hookimpl
    from stylebridge.registry import registry as registry_mod

    class BadArgs(Command):
        name = "bad-args"
        help = "breaks"

        def add_arguments(self, parser) -> None:
            parser.add_argument("-h")  # clashes with argparse's own --help

        def run(self, args, console) -> int:
            return 0

    class AsClass(BadArgs):
        name = "as-class"

    plugin = types.ModuleType("badargs_pkg")

    @hookimpl
    def register_commands(register) -> None:
        register(BadArgs())
        register(AsClass)

    plugin.register_commands = register_commands
    reg = registry_mod.Registry(extra_plugins=[plugin], entry_points=False)
    monkeypatch.setattr(registry_mod, "_REGISTRY", reg)
    for argv in (["plugins", "--json"], ["doctor", "--help"]):
        with contextlib.suppress(SystemExit):
            assert run(capsys, *argv)[0] == 0
    capsys.readouterr()
    code, _, err = run(capsys, "bad-args")
    assert code == 2 and err.startswith("error: command 'bad-args' is broken and was not "
                                        "loaded: add_arguments raised ArgumentError: ")
    code, _, err = run(capsys, "as-class")
    assert code == 2 and ("registered the class AsClass (register an instance: AsClass()), "
                          "not a stylebridge.cli.base.Command instance") in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["generate", "-g", "x.safetensors", "--out", "o", "--truncation", "abc"],
     "error: --truncation: expected a number, got 'abc' (see stylebridge generate --help)\n"),
    (["generate", "-g", "x.safetensors", "--out", "o", "--batch", "2.5"],
     "error: --batch: expected an integer, got '2.5' (see stylebridge generate --help)\n"),
    (["invert", "photo.jpg"],
     "error: the following arguments are required: --encoder/-e "
     "(see stylebridge invert --help)\n"),
    (["weights", "lst"], None),
    # an unknown option points to the help of the command it was given to, however deep
    (["plugins", "--nope"],
     "error: unrecognized arguments: --nope (see stylebridge plugins --help)\n"),
    (["weights", "fetch", "e4e-ffhq", "--out", "x"],
     "error: unrecognized arguments: --out x (see stylebridge weights fetch --help)\n"),
    (["--nope"], "error: unrecognized arguments: --nope (see stylebridge --help)\n"),
])
def test_usage_errors_are_one_line(capsys, argv: list[str], expected: str | None) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "usage:" not in err
    if expected is not None:
        assert err == expected
    else:
        assert err.startswith("error: ACTION: invalid choice: 'lst'")
        assert err.endswith("(see stylebridge weights --help)\n")


def test_the_cli_starts_without_dynamo_or_torchvision() -> None:
    """Building the parser (every command, every registered plugin) imports neither
    ``torch._dynamo`` nor torchvision: together they cost about 1.2 s at each start
    (``stylebridge --help`` went from 2.9 s to 1.7 s on 2 cores); plugins import them when used."""
    code = ("import contextlib, io, sys\n"
            "from stylebridge.cli.main import main\n"
            "for argv in (['--help'], ['adapt', '--help'], ['eval', '--help']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
            "        main(argv)\n"
            "print(sorted(m for m in ('torch._dynamo', 'torchvision') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_input_images_names_what_was_given(tmp_path: Path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("not a photo")
    assert main(["align", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err == (f"error: no input images in {tmp_path / 'empty'} (folders are searched for "
                   "image files)\n")
    assert not (tmp_path / "out").exists()


def test_json_on_a_pipe_is_only_json(tmp_path: Path) -> None:
    """A progress bar draws only on a terminal: `--json | jq` gets the report and nothing
    else (rich's transient bar used to leave a blank line in front of it)."""
    from PIL import Image

    Image.new("RGB", (48, 40), (90, 120, 30)).save(tmp_path / "flat.png")
    proc = subprocess.run([sys.executable, "-m", "stylebridge", "eval", "--pred",
                           str(tmp_path), "--target", str(tmp_path), "--metric", "mse",
                           "--json", "/dev/stdout"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("{")
    report, _ = json.JSONDecoder().raw_decode(proc.stdout)  # the table follows it
    assert report["mean"] == {"mse": 0.0} and report["n_images"] == 1


def test_an_out_that_is_a_file_is_named_as_such(capsys, tmp_path: Path, converted_tiny) -> None:
    """Before: `error: afile: File exists`."""
    blocker = tmp_path / "afile"
    blocker.write_text("not a folder")
    code, _, err = run(capsys, "generate", "-g", str(converted_tiny), "--seeds", "0",
                       "--out", str(blocker))
    assert code == 2
    assert err == f"error: {blocker}: is a file, not a folder\n"
    code, _, err = run(capsys, "generate", "-g", str(converted_tiny), "--seeds", "0",
                       "--out", str(blocker / "sub"))
    assert code == 2 and err.startswith(f"error: {blocker}: is a file, not a folder")
    assert blocker.read_text() == "not a folder"


def test_output_piped_into_head_ends_quietly() -> None:
    """`stylebridge weights list --json | head -c 10` printed `error: Broken pipe` and exited
    with 2; it now stops without a word, with 141 as a process killed by SIGPIPE."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "stylebridge", "weights", "list", "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10).startswith(b"{")  # more than a pipe holds (88 KB) follows
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 141 and err == b""


def test_info_shows_each_extra_key_and_shortens_long_number_lists(capsys, tmp_path: Path) -> None:
    """A training state's header printed its RNG state, hundreds of numbers, in one cell with
    everything else; `--json` keeps every number."""
    path = save_checkpoint(tmp_path / "s.safetensors", {"a": torch.zeros(2)}, kind="encoder",
                           plugin="toy", extra={"rng": list(range(100)), "step": 7,
                                                "pair": [1, 2]})
    code, out, _ = run(capsys, "info", str(path))
    rows = {line.split("│")[1].strip(): line.split("│")[2].strip()
            for line in out.splitlines() if line.count("│") == 3}
    assert code == 0
    assert rows["extra.rng"] == '"[100 numbers: 0, 1, …, 99]"'
    assert rows["extra.step"] == "7" and rows["extra.pair"] == "[1, 2]"
    code, out, _ = run(capsys, "info", str(path), "--json")
    assert json.loads(out)["extra"]["rng"] == list(range(100))
