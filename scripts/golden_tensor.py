#!/usr/bin/python3
"""Writes tensor/testdata/golden_tensor.json: small cases of tensor ops computed by
PyTorch (1.13, CPU), for tensor/golden_test.go.

Run:  /usr/bin/python3 scripts/golden_tensor.py

Inputs are float32 values from a seeded generator; the references are computed
by PyTorch in float64 from those float32 values (weights rounded to float16 first
where the case says so) and stored as float32. Each case is
{"inputs": {name: {"shape": [...], "data": [...]}}, "params": {...},
 "outputs": {name: {"shape": [...], "data": [...]}}}; integer outputs (argmax,
float16 bits) are stored as integers, non-finite values as "inf", "-inf", "nan".
"""
import json
import math
import os

import torch
import torch.nn.functional as F

torch.manual_seed(1234)
cases = {}


def enc(t):
    t = t.detach()
    if t.dtype in (torch.int64, torch.int32, torch.int16):
        data = [int(v) for v in t.reshape(-1).tolist()]
    else:
        # JSON has no Inf/NaN: those are written as the strings "inf", "-inf", "nan".
        data = [float(v) if math.isfinite(v) else str(v) for v in t.to(torch.float32).reshape(-1).tolist()]
    return {"shape": list(t.shape), "data": data}


def rnd(*shape):
    return torch.randn(*shape, dtype=torch.float32)


def d(t):
    return t.to(torch.float64)


def case(name, inputs, outputs, **params):
    cases[name] = {
        "inputs": {k: enc(v) for k, v in inputs.items()},
        "outputs": {k: enc(v) for k, v in outputs.items()},
        "params": params,
    }


# Broadcasting elementwise.
a, b = rnd(2, 1, 3), rnd(4, 1)
case("broadcast", {"a": a, "b": b}, {
    "add": d(a) + d(b), "sub": d(a) - d(b), "mul": d(a) * d(b), "div": d(a) / d(b),
    "maximum": torch.maximum(d(a), d(b)),
})

# Reductions.
x = rnd(3, 4, 5)
case("reduce", {"x": x}, {
    "sum1": d(x).sum(1), "mean2": d(x).mean(2, keepdim=True), "max0": d(x).amax(0),
    "var1": d(x).var(1, unbiased=False), "argmax2": x.argmax(2), "sumall": d(x).sum(),
})

# Batched matmul with broadcast; permuted operand.
a, b = rnd(2, 1, 3, 4), rnd(3, 4, 5)
case("matmul", {"a": a, "b": b}, {"out": torch.matmul(d(a), d(b))})
a, b = rnd(2, 6, 4), rnd(2, 7, 4)
case("matmul_nt", {"a": a, "b": b}, {"out": torch.matmul(d(a), d(b).transpose(-2, -1))})

# Linear with a float16 weight.
x, w, bias = rnd(2, 3, 8), rnd(6, 8), rnd(6)
w16 = w.half()
case("linear_f16", {"x": x, "w": w, "b": bias},
     {"out": F.linear(d(x), d(w16.float()), d(bias)), "w_bits": w16.view(torch.int16).to(torch.int64) & 0xFFFF})

# Conv2d stride 2 padding 1.
x, w, bias = rnd(2, 3, 7, 6), rnd(4, 3, 3, 3), rnd(4)
case("conv2d_s2p1", {"x": x, "w": w, "b": bias},
     {"out": F.conv2d(d(x), d(w), d(bias), stride=2, padding=1)}, stride=2, pad=1)

# GroupNorm (+SiLU), LayerNorm, Softmax, activations.
x, g, bb = rnd(2, 8, 3, 3), rnd(8), rnd(8)
gn = F.group_norm(d(x), 4, d(g), d(bb), eps=1e-6)
case("groupnorm", {"x": x, "gamma": g, "beta": bb}, {"out": gn, "out_silu": F.silu(gn)}, groups=4, eps=1e-6)
x, g, bb = rnd(3, 5, 16), rnd(16), rnd(16)
case("layernorm", {"x": x, "gamma": g, "beta": bb}, {"out": F.layer_norm(d(x), (16,), d(g), d(bb), eps=1e-5)}, eps=1e-5)
x = rnd(4, 9) * 3
case("softmax", {"x": x}, {"out": torch.softmax(d(x), -1)})
x = rnd(5, 7) * 2
case("activations", {"x": x}, {
    "silu": F.silu(d(x)), "gelu": F.gelu(d(x)), "gelu_tanh": F.gelu(d(x), approximate="tanh"),
    "quick_gelu": d(x) * torch.sigmoid(1.702 * d(x)), "sigmoid": torch.sigmoid(d(x)),
})
x = rnd(2, 3, 10)
h, gate = d(x).chunk(2, dim=-1)
case("geglu", {"x": x}, {"out": h * F.gelu(gate)})
x = rnd(1, 2, 3, 2)
case("upsample", {"x": x}, {"out": F.interpolate(d(x), scale_factor=2.0, mode="nearest")})

# Attention: B=2, H=2, D=4, Sq=3, Sk=5, as diffusers' attention processor.
B, H, D, Sq, Sk = 2, 2, 4, 3, 5
q, k, v = rnd(B, Sq, H * D), rnd(B, Sk, H * D), rnd(B, Sk, H * D)


def heads(t):
    return d(t).reshape(t.shape[0], t.shape[1], H, D).permute(0, 2, 1, 3)


s = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(D)
o = (torch.softmax(s, -1) @ heads(v)).permute(0, 2, 1, 3).reshape(B, Sq, H * D)
case("attention", {"q": q, "k": k, "v": v}, {"out": o}, heads=H)

# Timestep embedding (diffusers get_timestep_embedding, SD settings: flip, shift 0... and 1).
t = torch.tensor([0, 1, 500, 999], dtype=torch.int64)
for shift, flip in ((1.0, False), (0.0, True)):
    dim, half = 16, 8
    exponent = -math.log(10000) * torch.arange(0, half, dtype=torch.float32) / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    case("timestep_shift%d_flip%d" % (int(shift), int(flip)), {"t": t}, {"out": emb},
         dim=dim, shift=shift, flip=flip)

# Float16 / bfloat16 rounding of awkward values.
x = torch.tensor([0.1, 1 / 3, 65504, 65520, 1e-8, 6.1e-5, -2.5, 3.14159], dtype=torch.float32)
case("half", {"x": x}, {
    "f16_bits": x.half().view(torch.int16).to(torch.int64) & 0xFFFF,
    "bf16_bits": x.bfloat16().view(torch.int16).to(torch.int64) & 0xFFFF,
    "f16": x.half().float(), "bf16": x.bfloat16().float(),
})

out = os.path.join(os.path.dirname(__file__), "..", "tensor", "testdata", "golden_tensor.json")
with open(out, "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f, separators=(",", ":"))
print("wrote", os.path.normpath(out), len(cases), "cases")
