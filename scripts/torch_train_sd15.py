#!/usr/bin/python3
"""PyTorch CPU yardstick for roentgo's U-Net training step (BenchmarkTrainStep).

One training step of the plain SD1.5 U-Net of scripts/torch_unet_sd15.py:
forward on noisy latents, MSE loss against the noise (epsilon prediction),
backward, torch.optim.AdamW step and zero_grad, F32 weights (random), batch
1, 77 text tokens of width 768, every parameter trainable. With
--checkpointing each ResNet and transformer block runs under
torch.utils.checkpoint (recomputed in backward), as roentgo's
unet.Model.GradientCheckpointing does.

Run:  OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 scripts/torch_train_sd15.py [--size 32] [--checkpointing]
(scripts/bench-train.sh runs it beside the Go benchmark.)

Prints one line: the median seconds per step over --steps steps after
--warmup steps (the first step also creates AdamW's moments), the forward,
backward and optimiser parts of the median step, the process CPU seconds per
step, and the peak resident memory of the process (getrusage ru_maxrss).
"""
import argparse
import os
import resource
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import torch.utils.checkpoint as ckpt  # noqa: E402
from torch import nn  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet_sd15 import Attn, Resnet, Transformer, UNetSD15  # noqa: E402


def enable_checkpointing(model):
    """Makes every ResNet and transformer block of model run under
    torch.utils.checkpoint: its activations are not kept but recomputed in
    backward (diffusers' enable_gradient_checkpointing does this per block)."""
    for mod in model.modules():
        if isinstance(mod, (Resnet, Transformer)):
            inner = mod.forward

            def fwd(*args, _inner=inner):
                return ckpt.checkpoint(_inner, *args, use_reentrant=False)

            mod.forward = fwd


class LoRALinear(nn.Module):
    """y = base(x) + up(down(x)) * alpha/rank with the base frozen; down is
    normal(std 1/rank) and up zero, as diffusers 0.16's LoRA layers start."""

    def __init__(self, base, rank):
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.in_features, rank, bias=False)
        self.up = nn.Linear(rank, base.out_features, bias=False)
        nn.init.normal_(self.down.weight, std=1 / rank)
        nn.init.zeros_(self.up.weight)

    def forward(self, x):
        return self.base(x) + self.up(self.down(x))


def add_lora(model, rank):
    """Freezes model and wraps every attention projection in a LoRALinear;
    returns the adapters' parameters."""
    for p in model.parameters():
        p.requires_grad_(False)
    params = []
    for mod in list(model.modules()):
        if isinstance(mod, Attn):
            for name in ("q", "k", "v", "o"):
                lin = LoRALinear(getattr(mod, name), rank)
                setattr(mod, name, lin)
                params += [lin.down.weight, lin.up.weight]
    return params


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=32, help="latent height and width")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpointing", action="store_true", help="torch.utils.checkpoint per block")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--lora", type=int, default=0,
                    help="rank of LoRA adapters on the attention projections (q, k, v, out); the base is frozen")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(3)
    model = UNetSD15()
    if args.checkpointing:
        enable_checkpointing(model)
    model.train()
    nparams = sum(p.numel() for p in model.parameters())
    train = list(model.parameters())
    if args.lora:
        train = add_lora(model, args.lora)
    opt = torch.optim.AdamW(train, lr=args.lr)
    sample = torch.randn(1, 4, args.size, args.size)
    noise = torch.randn(1, 4, args.size, args.size)
    ctx = torch.randn(1, 77, 768)
    ts = torch.tensor(500.0)

    def step():
        t0 = time.perf_counter()
        pred = model(sample, ts, ctx)
        loss = F.mse_loss(pred, noise)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad()  # torch 1.13: set_to_none=False, the buffers stay
        t3 = time.perf_counter()
        return t3 - t0, t1 - t0, t2 - t1, t3 - t2, loss.item()

    for _ in range(args.warmup):
        step()
    runs = []
    cpu0 = cpu_seconds()
    for _ in range(args.steps):
        runs.append(step())
    cpu = (cpu_seconds() - cpu0) / args.steps
    runs.sort(key=lambda r: r[0])
    med = runs[len(runs) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB
    name = f"torch SD15/F32/{args.size}x{args.size}" + ("/checkpointing" if args.checkpointing else "")
    if args.lora:
        name += f"/lora-r{args.lora}"
    print(f"{name:40s} {med[0]:8.3f} s/step (median of {args.steps}; forward {med[1]:.3f}, backward {med[2]:.3f}, "
          f"AdamW {med[3]:.3f})  {cpu:8.3f} cpu-s/step  {rss:9.0f} peak-RSS-MiB  "
          f"threads {torch.get_num_threads()}  params {nparams / 1e6:.1f}M  loss {med[4]:.4f}  "
          f"times {' '.join(f'{r[0]:.3f}' for r in runs)}  (torch {torch.__version__})", flush=True)


if __name__ == "__main__":
    main()
