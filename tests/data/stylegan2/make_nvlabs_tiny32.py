"""Make the NVlabs parity fixture ``nvlabs_tiny32.*`` with NVlabs' own code (run by hand, once).

    python tests/data/stylegan2/make_nvlabs_tiny32.py --nvlabs /path/to/stylegan2-ada-pytorch \
        --commit <sha of that tree> [--out tests/data/stylegan2]

This file holds no NVlabs code: it only imports ``dnnlib``, ``legacy`` and ``training.networks``
from the checkout given on the command line (NVlabs/stylegan2-ada-pytorch, NVIDIA Source Code
License; never vendored here).  It does not import stylebridge either: the expected values come
from the reference code alone.  It is kept next to the fixture it made, as its provenance; pytest
does not collect it (no ``test_`` prefix).

What it does, as NVlabs' training loop and ``generate.py`` do:

1. Build ``G`` and ``D`` with ``dnnlib.util.construct_class_by_name`` from ``G_kwargs`` /
   ``D_kwargs`` shaped like ``train.py``'s (``--fp32`` choices: ``num_fp16_res=0``,
   ``conv_clamp=None``), after ``torch.manual_seed(0)``; ``G_ema = copy.deepcopy(G).eval()``.
2. Perturb every parameter by ``0.1 * randn`` (``torch.Generator`` seeds 1 for ``G_ema``, 2 for
   ``D``, 3 for ``G``): biases and noise strengths become non-zero and ``G`` differs from
   ``G_ema``, as after training.  Each ``mapping.w_avg`` is set to the mean of 4096 mapped z
   (seed 4).
3. Pickle the snapshot exactly as ``training/training_loop.py`` does
   (``dict(training_set_kwargs=..., G=..., D=..., G_ema=..., augment_pipe=None)``, each net
   ``copy.deepcopy(...).eval().requires_grad_(False).cpu()``, ``pickle.dump``), so the classes
   are ``torch_utils.persistence`` objects carrying ``training/networks.py`` as ``module_src``.
4. Load that pickle back with ``legacy.load_network_pkl`` and record the outputs of the loaded
   networks on the CPU in float32 (``noise_mode='const'`` unless stated), with counters on
   NVlabs' reference ops proving that only the pure-PyTorch fallbacks ran.
5. Replace the pickle's ``module_src`` text (NVlabs' ``training/networks.py``) with a one-line
   placeholder (:func:`strip_module_src`): every other byte stays as ``pickle.dump`` wrote it,
   and the fixture carries none of NVlabs' code (their loader, which executes that text,
   can no longer read it; stylebridge's never executes it).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import pickle
import platform
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

NAME = "nvlabs_tiny32"
RES, ZDIM, N_MLP = 32, 32, 2
SYNTH = {"channel_base": 256, "channel_max": 32, "num_fp16_res": 0, "conv_clamp": None}
BATCH, INJECT, PSI = 2, 3, 0.7
SEEDS = {"build": 0, "perturb_G_ema": 1, "perturb_D": 2, "perturb_G": 3, "w_avg": 4,
         "z": 10, "z2": 11, "wplus": 12}
SOURCES = ["training/networks.py", "torch_utils/persistence.py", "torch_utils/ops/bias_act.py",
           "torch_utils/ops/upfirdn2d.py", "torch_utils/ops/conv2d_resample.py",
           "torch_utils/ops/conv2d_gradfix.py", "torch_utils/ops/fma.py", "torch_utils/misc.py",
           "legacy.py", "dnnlib/util.py"]


#: what the fixture holds instead of NVlabs' ``training/networks.py`` (NVIDIA Source Code
#: License): stylebridge reads persistent objects' state and never runs their ``module_src``
MODULE_SRC_PLACEHOLDER = ("# training/networks.py of NVlabs/stylegan2-ada-pytorch (NVIDIA Source "
                          "Code License) was here; removed from this test fixture, whose "
                          "readers never execute module_src\n")


def strip_module_src(pkl: Path) -> None:
    """Rewrite ``pkl`` with every long text (the ``module_src`` NVlabs' persistence stores,
    memoised, once) replaced by :data:`MODULE_SRC_PLACEHOLDER`: the rest of the byte stream,
    opcodes, memo and tensors, is kept as ``pickle.dump`` wrote it (the length of the protocol-4
    frame that holds the text is adjusted)."""
    import pickletools

    data = pkl.read_bytes()
    new = MODULE_SRC_PLACEHOLDER.encode("utf-8")
    frames: list[tuple[int, int]] = []  # (position of a FRAME opcode, its length)
    cuts: list[tuple[int, int]] = []    # (position of a BINUNICODE to replace, its old size)
    for op, arg, pos in pickletools.genops(data):
        if op.name == "FRAME":
            frames.append((pos, int(arg)))
        elif op.name == "BINUNICODE" and isinstance(arg, str) and "class Generator" in arg:
            cuts.append((pos, 5 + int.from_bytes(data[pos + 1:pos + 5], "little")))
    if not cuts:
        raise SystemExit(f"{pkl}: no module_src text found to replace")
    delta = 5 + len(new)
    out, last = bytearray(), 0
    for pos, size in sorted([(p, -1) for p, _ in frames] + cuts):
        out += data[last:pos]
        if size < 0:  # a FRAME: its length less what the replacements inside it save
            length = dict(frames)[pos]
            inside = sum(old - delta for c, old in cuts if pos + 9 <= c < pos + 9 + length)
            out += data[pos:pos + 1] + (length - inside).to_bytes(8, "little")
            last = pos + 9
        else:
            out += b"X" + len(new).to_bytes(4, "little") + new
            last = pos + size
    pkl.write_bytes(bytes(out + data[last:]))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _randn(seed: int, *shape: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _count_calls(module: object, name: str, counts: dict[str, int], key: str) -> None:
    """Wrap ``module.name`` with a call counter (behaviour unchanged)."""
    fn = getattr(module, name)

    def wrapper(*args: object, **kwargs: object) -> object:
        counts[key] = counts.get(key, 0) + 1
        return fn(*args, **kwargs)

    setattr(module, name, wrapper)


@torch.no_grad()
def _perturb(net: torch.nn.Module, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _, p in net.named_parameters():
        p.add_(0.1 * torch.randn(p.shape, generator=gen))


@torch.no_grad()
def _set_w_avg(net: torch.nn.Module) -> None:
    was_training = net.training
    net.eval()
    ws = net.mapping(_randn(SEEDS["w_avg"], 4096, ZDIM), None)
    net.mapping.w_avg.copy_(ws[:, 0].mean(0))
    net.train(was_training)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nvlabs", type=Path, required=True,
                    help="a checkout (or git archive) of NVlabs/stylegan2-ada-pytorch")
    ap.add_argument("--commit", required=True, help="the commit of that tree (recorded)")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = ap.parse_args()
    nv = args.nvlabs.resolve()
    sys.path.insert(0, str(nv))
    torch.set_num_threads(2)

    # NVlabs' modules, from --nvlabs
    import dnnlib
    import legacy
    from torch_utils.ops import bias_act, conv2d_gradfix, upfirdn2d

    counts: dict[str, int] = {}
    _count_calls(bias_act, "_bias_act_ref", counts, "bias_act_ref")
    _count_calls(bias_act, "_init", counts, "bias_act_cuda_init")
    _count_calls(upfirdn2d, "_upfirdn2d_ref", counts, "upfirdn2d_ref")
    _count_calls(upfirdn2d, "_init", counts, "upfirdn2d_cuda_init")
    _count_calls(conv2d_gradfix, "_conv2d_gradfix", counts, "conv2d_gradfix_custom_op")

    easy = dnnlib.EasyDict
    g_kwargs = easy(class_name="training.networks.Generator", z_dim=ZDIM, w_dim=ZDIM,
                    mapping_kwargs=easy(num_layers=N_MLP), synthesis_kwargs=easy(**SYNTH))
    d_kwargs = easy(class_name="training.networks.Discriminator", block_kwargs=easy(),
                    mapping_kwargs=easy(), epilogue_kwargs=easy(mbstd_group_size=4), **SYNTH)
    common = {"c_dim": 0, "img_resolution": RES, "img_channels": 3}
    training_set_kwargs = easy(class_name="training.dataset.ImageFolderDataset",
                               path="tiny32.zip", use_labels=False, max_size=None, xflip=False,
                               resolution=RES)

    torch.manual_seed(SEEDS["build"])
    G = dnnlib.util.construct_class_by_name(**g_kwargs, **common).train().requires_grad_(False)
    D = dnnlib.util.construct_class_by_name(**d_kwargs, **common).train().requires_grad_(False)
    G_ema = copy.deepcopy(G).eval()
    _perturb(G_ema, SEEDS["perturb_G_ema"])
    _perturb(D, SEEDS["perturb_D"])
    _perturb(G, SEEDS["perturb_G"])
    _set_w_avg(G_ema)
    _set_w_avg(G)

    snapshot = dict(training_set_kwargs=dict(training_set_kwargs))
    for name, module in [("G", G), ("D", D), ("G_ema", G_ema), ("augment_pipe", None)]:
        if module is not None:
            module = copy.deepcopy(module).eval().requires_grad_(False).cpu()
        snapshot[name] = module
    pkl = args.out / f"{NAME}.pkl"
    with open(pkl, "wb") as f:
        pickle.dump(snapshot, f)

    with open(pkl, "rb") as f:
        data = legacy.load_network_pkl(f)
    g_ema, g, d = data["G_ema"], data["G"], data["D"]
    num_ws = g_ema.num_ws

    counts.clear()
    exp: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        z, z2 = _randn(SEEDS["z"], BATCH, ZDIM), _randn(SEEDS["z2"], BATCH, ZDIM)
        ws = g_ema.mapping(z, None)
        ws2 = g_ema.mapping(z2, None)
        ws_trunc = g_ema.mapping(z, None, truncation_psi=PSI)
        assert all(torch.equal(ws[:, i], ws[:, 0]) for i in range(num_ws))
        wplus = g_ema.mapping(_randn(SEEDS["wplus"], BATCH * num_ws, ZDIM), None)[:, 0]
        wplus = wplus.reshape(BATCH, num_ws, ZDIM)
        mix = ws.clone()
        mix[:, INJECT:] = ws2[:, INJECT:]  # style_mixing.py: later rows from the second latent
        exp.update(z=z, z2=z2, wplus=wplus, w_avg=g_ema.mapping.w_avg.clone(),
                   w=ws[:, 0], w2=ws2[:, 0], w_trunc07=ws_trunc[:, 0])
        exp["image"] = g_ema(z, None, truncation_psi=1, noise_mode="const")
        exp["image_trunc07"] = g_ema(z, None, truncation_psi=PSI, noise_mode="const")
        exp["image_wplus"] = g_ema.synthesis(wplus, noise_mode="const")
        exp["image_mix"] = g_ema.synthesis(mix, noise_mode="const")
        exp["image_nonoise"] = g_ema(z, None, noise_mode="none")
        exp["image_G"] = g(z, None, noise_mode="const")
        exp["d_score"] = d(exp["image"], None)
    exp = {k: v.detach().to(torch.float32).contiguous() for k, v in exp.items()}
    save_file(exp, str(args.out / f"{NAME}_expected.safetensors"))

    upstream_pickle_sha256 = _sha256(pkl)
    strip_module_src(pkl)  # the committed fixture carries no NVlabs source text
    config = {
        "upstream_repository": "https://github.com/NVlabs/stylegan2-ada-pytorch",
        "upstream_commit": args.commit,
        "upstream_file_sha256": {p: _sha256(nv / p) for p in SOURCES},
        "patches_to_upstream": [],
        "python": platform.python_version(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "device": "cpu, float32, torch.set_num_threads(2)",
        "G_kwargs": g_kwargs,
        "D_kwargs": d_kwargs,
        "common_kwargs": common,
        "training_set_kwargs": training_set_kwargs,
        "channels": {r: int(getattr(g_ema.synthesis, f"b{r}").conv1.weight.shape[0])
                     for r in g_ema.synthesis.block_resolutions},
        "num_ws": num_ws,
        "batch": BATCH,
        "truncation_psi": PSI,
        "inject_index": INJECT,
        "seeds": SEEDS,
        "perturbation": "p += 0.1 * randn(p.shape, generator) over named_parameters()",
        "n_params": {"G_ema": sum(p.numel() for p in g_ema.parameters()),
                     "D": sum(p.numel() for p in d.parameters())},
        "reference_op_calls_while_recording": dict(sorted(counts.items())),
        "pickle_sha256": _sha256(pkl),
        "upstream_pickle_sha256": upstream_pickle_sha256,
        "module_src_replaced_by": MODULE_SRC_PLACEHOLDER,
        "pickle_bytes": pkl.stat().st_size,
        "outputs": {k: list(v.shape) for k, v in exp.items()},
    }
    (args.out / f"{NAME}_config.json").write_text(json.dumps(config, indent=2) + "\n")
    print(json.dumps({k: config[k] for k in ("n_params", "reference_op_calls_while_recording",
                                             "pickle_bytes")}))


if __name__ == "__main__":
    main()
