#!/usr/bin/python3
"""Writes the training golden cases of unet/testdata/train_curve/ that the
shared diffusers golden data (one to three steps) does not reach:

  f32/   a 100-step training run of the tiny-sd1 U-Net (F32): DDPM epsilon
         loss, AdamW (lr cosine schedule, peak 1e-3, 10 warm-up steps, weight
         decay 1e-2), clip_grad_norm_ 1.0, EMA (diffusers EMAModel defaults).
  bf16/  10 steps of the same loop with the weights stored in BF16 and F32
         master copies: every step the model computes with bf16(master)
         widened to F32 (exactly what roentgo does on the CPU: 16-bit stored
         weights are converted exactly to F32 while packing, activations and
         gradients are F32), the gradient w.r.t. those values is the master's
         gradient, and the optimiser updates the F32 master.
  f16/   12 steps with F16-stored weights and dynamic loss scaling, the rule
         of torch.cuda.amp.GradScaler written out in plain Python (torch 1.13
         has no CPU GradScaler): backward of loss*scale; grads *=
         float32(1/scale) (the reciprocal taken in float64), found_inf = any
         grad element non-finite; a step with found_inf is skipped (no clip,
         no optimiser step), the scale is multiplied by backoff_factor 0.5 and
         the good-step count reset; otherwise after growth_interval (2) good
         steps in a row the scale is multiplied by growth_factor 2 (if the
         result is finite). The EMA steps every step, skipped or not (as
         `if accelerator.sync_gradients: ema_unet.step(...)` does).
         On the CPU activations and gradients are F32, so a scaled backward
         overflows only near F32's range: the initial scale is 2^100, and
         steps 3 and 8 train on the noise target times 2^40 (an outlier
         batch), whose scaled gradients overflow. For every step the script
         measures the overflow threshold (bisection on the scale, 1/128
         octave; "finite even at the largest float32 scale" otherwise) and
         checks that the scale used is at least 0.15 octave from it, so an
         implementation whose intermediate values differ by roundoff makes
         the same skip decisions (recorded: margin_octaves_per_step, -inf =
         no threshold below FLT_MAX; the spikes overflow by 9-10 octaves).

The U-Net is the functional plain-torch one of scripts/golden_unet.py (copied
below, written from the architecture, keyed by the diffusers parameter names).
Before writing anything it reproduces diffusers' golden outputs
(tiny-sd1/unet/out.npy, 1e-5) and the golden training step of
tiny-sd1-train/unet_eps (loss 1e-6 relative, every gradient within 1e-5 of its
norm), which validates forward and backward.

Every input is drawn here with a seeded torch.Generator and SAVED, so the Go
test reads exactly the same numbers: the per-step noisy latents, noise
(the epsilon target) and timesteps. Outputs are per-step losses, learning
rates, gradient norms (and for f16 the scale, skip flags, threshold margins),
and at the end the 2-norm of every parameter's master, of its change from the
initial value and of its EMA shadow, plus the full final values of a few
probe tensors. Parameters whose true gradient is zero for any loss (listed in
tiny-sd1-train/index.json; their float32 gradients are roundoff, which Adam
turns into updates of size ~lr in arbitrary directions) are recorded in
index.json so that tests leave them out of the parameter comparisons.

Run: /usr/bin/python3 scripts/golden_train_curve.py [f32] [bf16] [f16]
(torch 1.13 + numpy; all three runs by default, ~4 min on two idle cores).
Deterministic: rerunning gives identical arrays.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from golden_unet import unet  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
SHARED = os.path.join(ROOT, "..", "shared", "golden")
GOLDEN = os.path.join(SHARED, "tiny-sd1")
TRAIN = os.path.join(SHARED, "tiny-sd1-train")
OUT = os.path.join(ROOT, "unet", "testdata", "train_curve")

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
torch.use_deterministic_algorithms(True)


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F32": np.float32, "F16": np.float16, "I64": np.int64}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=types[v["dtype"]]).reshape(v["shape"]).copy())
    return out


class Params:
    """Parameters by diffusers key, from a dict; checks each shape."""

    def __init__(self, sd):
        self.sd = sd

    def __call__(self, key, *shape, kind="w"):
        t = self.sd[key]
        assert tuple(t.shape) == shape, (key, t.shape, shape)
        return t


# unet(P, cfg, sample, t, ctx): diffusers' UNet2DConditionModel forward, from
# golden_unet.py (beside this script).

def npy(path):
    return torch.from_numpy(np.load(path))


def save(sub, **arrays):
    d = os.path.join(OUT, sub)
    os.makedirs(d, exist_ok=True)
    for k, v in arrays.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().numpy()
        np.save(os.path.join(d, k + ".npy"), v)


cfg = json.load(open(os.path.join(GOLDEN, "model/diffusers/unet/config.json")))
sched_cfg = json.load(open(os.path.join(GOLDEN, "model/diffusers/scheduler/scheduler_config.json")))
sd = read_safetensors(os.path.join(GOLDEN, "model/diffusers/unet/diffusion_pytorch_model.safetensors"))
names = sorted(sd)
train_index = json.load(open(os.path.join(TRAIN, "index.json")))
ZERO = train_index["cases"]["unet_eps"]["zero_true_gradient_params"]

# 1. Validate the model: diffusers' inference outputs, then a training step
# (loss and every gradient) of tiny-sd1-train/unet_eps.
with torch.no_grad():
    sample, ehs0 = npy(os.path.join(GOLDEN, "unet/sample.npy")), npy(os.path.join(GOLDEN, "unet/encoder_hidden_states.npy"))
    out = npy(os.path.join(GOLDEN, "unet/out.npy"))
    for i, ts in enumerate([999, 500, 1]):
        err = (unet(Params(sd), cfg, sample, torch.full((2,), float(ts)), ehs0) - out[i]).abs().max().item()
        assert err < 1e-5, (ts, err)
        print(f"reproduces diffusers' U-Net output at t={ts}: max |diff| {err:.2g}")
case = os.path.join(TRAIN, "unet_eps")
live = {k: v.clone().requires_grad_(True) for k, v in sd.items()}
pred = unet(Params(live), cfg, npy(os.path.join(case, "noisy_latents.npy")), npy(os.path.join(case, "timesteps.npy")),
            npy(os.path.join(case, "encoder_hidden_states.npy")))
loss = F.mse_loss(pred, npy(os.path.join(case, "noise.npy")))
loss.backward()
want_loss = float(np.load(os.path.join(case, "loss.npy")))
assert abs(loss.item() - want_loss) <= 1e-6 * want_loss, (loss.item(), want_loss)
golden_grads = read_safetensors(os.path.join(case, "grads_unet.safetensors"))
assert sorted(golden_grads) == names
worst = 0.0
for k in names:
    g, w = live[k].grad, golden_grads[k]
    if k in ZERO:
        assert g.abs().max().item() <= 1e-6, k
        continue
    worst = max(worst, ((g - w).abs().max() / w.norm()).item())
assert worst < 1e-5, worst
print(f"reproduces the golden training step: loss {loss.item():.7g}, worst gradient difference {worst:.2g} of its norm")
del live, pred, loss

# 2. The inputs of every step, drawn here and saved.
STEPS = 100
B = 2
g = torch.Generator().manual_seed(4242)
latents = torch.randn((B, 4, 16, 16), generator=g) * 0.5  # fixed "image" latents (the VAE's scaled latents are ~N(0, 0.5-1))
ehs = npy(os.path.join(GOLDEN, "unet/encoder_hidden_states.npy"))  # (2, 77, 32): the golden text embeddings
betas = torch.linspace(sched_cfg["beta_start"] ** 0.5, sched_cfg["beta_end"] ** 0.5, sched_cfg["num_train_timesteps"],
                       dtype=torch.float32) ** 2
acp = torch.cumprod(1.0 - betas, dim=0)
noise = torch.randn((STEPS, B, 4, 16, 16), generator=g)
timesteps = torch.randint(0, sched_cfg["num_train_timesteps"], (STEPS, B), generator=g)
noisy = torch.empty_like(noise)
for k in range(STEPS):  # DDPMScheduler.add_noise
    sa = (acp[timesteps[k]] ** 0.5).flatten()[:, None, None, None]
    s1 = ((1 - acp[timesteps[k]]) ** 0.5).flatten()[:, None, None, None]
    noisy[k] = sa * latents + s1 * noise[k]
save("", latents=latents, encoder_hidden_states=ehs, noise=noise, timesteps=timesteps, noisy_latents=noisy)

PROBES = ["conv_in.weight", "down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_k.weight",
          "mid_block.resnets.0.norm1.weight", "up_blocks.0.attentions.2.proj_out.weight", "conv_out.bias"]
WARMUP, PEAK_LR = 10, 1e-3


def lr_at(step, total):
    """diffusers get_scheduler("cosine", num_warmup_steps=WARMUP, num_training_steps=total), 0-based optimiser step."""
    if step < WARMUP:
        return PEAK_LR * step / max(1, WARMUP)
    p = (step - WARMUP) / max(1, total - WARMUP)
    return PEAK_LR * max(0.0, 0.5 * (1.0 + math.cos(math.pi * 0.5 * 2.0 * p)))


def ema_decay(k):
    """EMAModel.get_decay(optimization_step k) with the defaults."""
    n = k - 0 - 1
    if n <= 0:
        return 0.0
    return max(min((1 + n) / (10 + n), 0.9999), 0.0)


def run(sub, steps, dtype=None, scaler=None, schedule="cosine", spikes={}):
    """Trains from the tiny-sd1 weights; dtype None: F32 parameters; else the
    weights are stored in dtype and the masters are F32."""
    masters = {}
    for k in names:
        w = sd[k] if dtype is None else sd[k].to(dtype).float()
        masters[k] = w.clone().requires_grad_(True)
    init = {k: v.detach().clone() for k, v in masters.items()}
    params = [masters[k] for k in names]
    opt = torch.optim.AdamW(params, lr=PEAK_LR, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
    shadow = {k: v.detach().clone() for k, v in masters.items()}
    rec = {"loss": [], "lr": [], "grad_norm": [], "scale": [], "skipped": [], "margin_octaves": [], "ema_decay": []}
    scale, tracker = (scaler.get("init_scale") if scaler else None), 0

    def forward(k):
        if dtype is None:
            vals = masters
        else:  # the model's 16-bit values, widened; their gradient is the master's
            vals = {n: m.detach().to(dtype).float().requires_grad_(True) for n, m in masters.items()}
        pred = unet(Params(vals), cfg, noisy[k], timesteps[k], ehs)
        target = noise[k] * spikes.get(k, 1.0)  # exact: the spikes are powers of two
        return F.mse_loss(pred.float(), target.float(), reduction="mean"), vals

    def grads_finite(loss, vals, s):
        gs = torch.autograd.grad(loss, [vals[n] for n in names], grad_outputs=torch.tensor(s, dtype=torch.float32),
                                 retain_graph=True)
        return all(bool(torch.isfinite(x).all()) for x in gs)

    def threshold(loss, vals):
        """log2 of the loss scale at which some gradient stops being finite
        (bisection, 1/128 octave); inf when they are finite at the largest
        float32 scale."""
        lo, hi = 0.0, math.log2(float(np.finfo(np.float32).max))
        if grads_finite(loss, vals, float(np.finfo(np.float32).max)):
            return math.inf
        assert grads_finite(loss, vals, 1.0)
        while hi - lo > 1 / 128:
            mid = (lo + hi) / 2
            if grads_finite(loss, vals, 2.0 ** mid):
                lo = mid
            else:
                hi = mid
        return (lo + hi) / 2

    for k in range(steps):
        lr = lr_at(k, steps) if schedule == "cosine" else PEAK_LR
        for group in opt.param_groups:
            group["lr"] = lr
        loss, vals = forward(k)
        rec["loss"].append(loss.item())
        rec["lr"].append(lr)
        skipped = False
        if scaler:
            thr = threshold(loss, vals)
            rec["margin_octaves"].append(math.log2(scale) - thr)
            assert abs(math.log2(scale) - thr) >= 0.15, (k, math.log2(scale), thr)
            rec["scale"].append(scale)
            (loss * torch.tensor(scale, dtype=torch.float32)).backward()
        else:
            loss.backward()
        if dtype is not None:
            for n in names:
                masters[n].grad = vals[n].grad
        if scaler:
            inv = torch.tensor(1.0 / scale, dtype=torch.float64).float()
            found = False
            for p in params:
                found = found or not bool(torch.isfinite(p.grad).all())
                p.grad.mul_(inv)
            skipped = found
        if skipped:
            rec["grad_norm"].append(float("nan"))
        else:
            rec["grad_norm"].append(float(torch.nn.utils.clip_grad_norm_(params, 1.0)))
            opt.step()
        if scaler:
            if skipped:
                scale *= scaler["backoff_factor"]
                tracker = 0
            else:
                tracker += 1
                if tracker == scaler["growth_interval"]:
                    grown = scale * scaler["growth_factor"]
                    if math.isfinite(np.float32(grown)):
                        scale = grown
                    tracker = 0
            scale = float(np.float32(scale))
        rec["skipped"].append(skipped)
        opt.zero_grad()
        d = ema_decay(k + 1)
        rec["ema_decay"].append(d)
        with torch.no_grad():
            for n in names:
                shadow[n].sub_((1 - d) * (shadow[n] - masters[n]))
        if k % 10 == 0 or k == steps - 1:
            print(f"{sub} step {k:3d}: loss {rec['loss'][-1]:.6f} lr {lr:.3g} grad norm {rec['grad_norm'][-1]:.4f}"
                  + (f" scale 2^{math.log2(rec['scale'][-1]):.2f} margin {rec['margin_octaves'][-1]:+.2f}"
                     f"{' SKIPPED' if skipped else ''}" if scaler else ""))
    f64 = lambda t: float(torch.linalg.vector_norm(t.double()))
    arrays = dict(
        loss_per_step=np.array(rec["loss"], dtype=np.float32),
        lr_per_step=np.array(rec["lr"], dtype=np.float64),
        grad_norm_per_step=np.array(rec["grad_norm"], dtype=np.float32),
        ema_decay_per_step=np.array(rec["ema_decay"], dtype=np.float64),
        param_norm=np.array([f64(masters[n].detach()) for n in names]),
        update_norm=np.array([f64(masters[n].detach() - init[n]) for n in names]),
        ema_norm=np.array([f64(shadow[n]) for n in names]),
        ema_update_norm=np.array([f64(shadow[n] - init[n]) for n in names]),
    )
    if scaler:
        arrays.update(scale_per_step=np.array(rec["scale"], dtype=np.float32),
                      skipped_per_step=np.array(rec["skipped"], dtype=np.uint8),
                      margin_octaves_per_step=np.array(rec["margin_octaves"], dtype=np.float64))
    for i, n in enumerate(PROBES):
        arrays[f"probe{i}_param"] = masters[n].detach().numpy().astype(np.float32)
        arrays[f"probe{i}_ema"] = shadow[n].numpy().astype(np.float32)
    save(sub, **arrays)
    return rec


meta = {
    "made_by": "scripts/golden_train_curve.py",
    "torch": torch.__version__,
    "model": "../shared/golden/tiny-sd1/model/diffusers/unet",
    "param_names": names,
    "zero_true_gradient_params": ZERO,
    "probes": PROBES,
    "batch": B,
    "inputs": {"seed": 4242, "latents": "randn(2,4,16,16)*0.5", "noise": "randn(steps,2,4,16,16)",
               "timesteps": "randint(0,1000,(steps,2))", "encoder_hidden_states": "tiny-sd1/unet/encoder_hidden_states.npy",
               "noisy_latents": "sqrt(acp[t])*latents + sqrt(1-acp[t])*noise, acp float32 scaled_linear"},
    "loss": "mse_loss(unet(noisy_latents[k], timesteps[k], encoder_hidden_states), noise[k]), mean",
    "optimizer": {"name": "torch.optim.AdamW", "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 1e-2},
    "max_grad_norm": 1.0,
    "ema": "EMAModel defaults (decay 0.9999, (1+n)/(10+n) warm-up), stepped every step",
    "runs": {},
}
which = sys.argv[1:] or ["f32", "bf16", "f16"]  # runs to (re)make; the others' entries are kept
prev = os.path.join(OUT, "index.json")
if os.path.exists(prev):
    meta["runs"] = json.load(open(prev))["runs"]
if "f32" in which:
    run("f32", STEPS)
    meta["runs"]["f32"] = {"steps": STEPS, "dtype": "F32", "lr_schedule": {
        "name": "cosine", "peak": PEAK_LR, "num_warmup_steps": WARMUP, "num_training_steps": STEPS}}
if "bf16" in which:
    run("bf16", 10, dtype=torch.bfloat16, schedule="constant")
    meta["runs"]["bf16"] = {"steps": 10, "dtype": "BF16", "lr_schedule": {"name": "constant", "lr": PEAK_LR}}
if "f16" in which:
    sc = {"init_scale": 2.0 ** 100, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2}
    spikes = {3: 2.0 ** 40, 8: 2.0 ** 40}
    run("f16", 12, dtype=torch.float16, scaler=sc, schedule="constant", spikes=spikes)
    save("f16", target_scale_per_step=np.array([spikes.get(k, 1.0) for k in range(12)], dtype=np.float32))
    meta["runs"]["f16"] = {"steps": 12, "dtype": "F16", "lr_schedule": {"name": "constant", "lr": PEAK_LR},
                               "loss_scaler": sc, "target_spikes": {str(k): v for k, v in spikes.items()}}
json.dump(meta, open(os.path.join(OUT, "index.json"), "w"), indent=1)
print("wrote", OUT)
