#!/usr/bin/python3
"""Writes golden cases for package unet into unet/testdata/ that the shared
diffusers golden data (SD1-style, 16x16 latents) does not cover:

  odd/       the tiny-sd1 U-Net on 17x11 latents (not divisible by 2: the
             upsampler resizes to the skip connection's size), per-row timesteps
  sd2tiny/   an SD2-style U-Net (linear proj_in/proj_out, a per-block head list,
             cross_attention_dim 24, three levels, mid_block_scale_factor 1.5,
             freq_shift 1, flip_sin_to_cos false) with seeded random weights
             stored as F16 (unet/config.json + diffusion_pytorch_model.fp16
             .safetensors), on 12x20 and 10x14 latents

The U-Net is written here functionally in plain torch, walking the network the
way the original LDM code does (one stack of skip connections), independently
of the Go code. Before writing anything it reproduces the shared diffusers
golden outputs (tiny-sd1/unet/out.npy) to 1e-5, which validates it.

Run: /usr/bin/python3 scripts/golden_unet.py   (torch 1.13 + numpy)
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDEN = os.path.join(ROOT, "..", "shared", "golden", "tiny-sd1")
OUT = os.path.join(ROOT, "unet", "testdata")


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    types = {"F32": np.float32, "F16": np.float16}
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = torch.from_numpy(np.frombuffer(data[a:b], dtype=types[v["dtype"]]).reshape(v["shape"]).astype(np.float32))
    return out


def write_safetensors_f16(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        b = tensors[name].numpy().astype(np.float16).tobytes()
        header[name] = {"dtype": "F16", "shape": list(tensors[name].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


class Params:
    """Parameters by diffusers key: read from sd, or (sd None) created on first
    use with seeded random values and recorded."""

    def __init__(self, sd=None, seed=0):
        self.sd, self.made = sd, {}
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, key, *shape, kind="w"):
        if self.sd is not None:
            t = self.sd[key]
            assert tuple(t.shape) == shape, (key, t.shape, shape)
            return t
        if key not in self.made:
            r = torch.randn(shape, generator=self.gen)
            if kind == "w":  # ~ unit-variance outputs
                r = r / math.sqrt(max(1, math.prod(shape[1:])))
            elif kind == "gamma":
                r = 1 + 0.1 * r
            else:  # bias, beta
                r = 0.1 * r
            self.made[key] = r
        return self.made[key]


def unet(P, cfg, sample, t, ctx):
    G, eps = cfg["norm_num_groups"], cfg["norm_eps"]
    boc = cfg["block_out_channels"]
    n = len(boc)
    heads = cfg["attention_head_dim"]
    heads = heads if isinstance(heads, list) else [heads] * n
    lin_proj = cfg.get("use_linear_projection", False)
    layers = cfg["layers_per_block"]
    temb_ch = 4 * boc[0]
    D = ctx.shape[-1]

    def gn(x, p, c, e=eps):
        return F.group_norm(x, G, P(p + ".weight", c, kind="gamma"), P(p + ".bias", c, kind="b"), e)

    def conv(x, p, cin, cout, k=3, stride=1):
        return F.conv2d(x, P(p + ".weight", cout, cin, k, k), P(p + ".bias", cout, kind="b"), stride, k // 2)

    def lin(x, p, cin, cout, bias=True):
        return F.linear(x, P(p + ".weight", cout, cin), P(p + ".bias", cout, kind="b") if bias else None)

    def res(x, temb, p, cout, scale=1.0):
        cin = x.shape[1]
        h = conv(F.silu(gn(x, p + ".norm1", cin)), p + ".conv1", cin, cout)
        h = h + lin(F.silu(temb), p + ".time_emb_proj", temb_ch, cout)[:, :, None, None]
        h = conv(F.silu(gn(h, p + ".norm2", cout)), p + ".conv2", cout, cout)
        if cin != cout:
            x = conv(x, p + ".conv_shortcut", cin, cout, k=1)
        return (x + h) / scale

    def attn(x, c, p, nh, ctx_dim):
        B, S, C = x.shape
        q = lin(x, p + ".to_q", C, C, bias=False)
        k = lin(c, p + ".to_k", ctx_dim, C, bias=False)
        v = lin(c, p + ".to_v", ctx_dim, C, bias=False)
        dh = C // nh

        def heads_of(z):
            return z.reshape(B, z.shape[1], nh, dh).permute(0, 2, 1, 3)

        w = torch.softmax(heads_of(q) @ heads_of(k).transpose(-1, -2) / math.sqrt(dh), dim=-1)
        o = (w @ heads_of(v)).permute(0, 2, 1, 3).reshape(B, S, C)
        return lin(o, p + ".to_out.0", C, C)

    def ln(x, p):
        C = x.shape[-1]
        return F.layer_norm(x, (C,), P(p + ".weight", C, kind="gamma"), P(p + ".bias", C, kind="b"), 1e-5)

    def spatial(x, p, nh):
        B, C, H, W = x.shape
        h = gn(x, p + ".norm", C, 1e-6)
        if lin_proj:
            h = lin(h.permute(0, 2, 3, 1).reshape(B, H * W, C), p + ".proj_in", C, C)
        else:
            h = conv(h, p + ".proj_in", C, C, k=1).permute(0, 2, 3, 1).reshape(B, H * W, C)
        tb = p + ".transformer_blocks.0"
        z = ln(h, tb + ".norm1")
        h = attn(z, z, tb + ".attn1", nh, C) + h
        h = attn(ln(h, tb + ".norm2"), ctx, tb + ".attn2", nh, D) + h
        a, g = lin(ln(h, tb + ".norm3"), tb + ".ff.net.0.proj", C, 8 * C).chunk(2, dim=-1)
        h = lin(a * F.gelu(g), tb + ".ff.net.2", 4 * C, C) + h
        if lin_proj:
            h = lin(h, p + ".proj_out", C, C).reshape(B, H, W, C).permute(0, 3, 1, 2)
        else:
            h = conv(h.reshape(B, H, W, C).permute(0, 3, 1, 2), p + ".proj_out", C, C, k=1)
        return h + x

    # Sinusoidal time embedding (get_timestep_embedding) and its MLP.
    half = boc[0] // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / (half - cfg["freq_shift"]))
    arg = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(arg), torch.sin(arg)] if cfg["flip_sin_to_cos"] else [torch.sin(arg), torch.cos(arg)], dim=-1)
    temb = lin(F.silu(lin(emb, "time_embedding.linear_1", boc[0], temb_ch)), "time_embedding.linear_2", temb_ch, temb_ch)

    h = conv(sample, "conv_in", sample.shape[1], boc[0])
    stack = [h]
    for i, kind in enumerate(cfg["down_block_types"]):
        for j in range(layers):
            h = res(h, temb, f"down_blocks.{i}.resnets.{j}", boc[i])
            if kind.startswith("CrossAttn"):
                h = spatial(h, f"down_blocks.{i}.attentions.{j}", heads[i])
            stack.append(h)
        if i < n - 1:
            h = conv(h, f"down_blocks.{i}.downsamplers.0.conv", boc[i], boc[i], stride=2)
            stack.append(h)
    ms = cfg["mid_block_scale_factor"]
    h = res(h, temb, "mid_block.resnets.0", boc[-1], ms)
    h = spatial(h, "mid_block.attentions.0", heads[-1])
    h = res(h, temb, "mid_block.resnets.1", boc[-1], ms)
    for u, kind in enumerate(cfg["up_block_types"]):
        i = n - 1 - u
        for j in range(layers + 1):
            h = res(torch.cat([h, stack.pop()], dim=1), temb, f"up_blocks.{u}.resnets.{j}", boc[i])
            if kind.startswith("CrossAttn"):
                h = spatial(h, f"up_blocks.{u}.attentions.{j}", heads[i])
        if i > 0:
            h = F.interpolate(h, size=stack[-1].shape[-2:], mode="nearest")
            h = conv(h, f"up_blocks.{u}.upsamplers.0.conv", boc[i], boc[i])
    assert not stack
    h = F.silu(gn(h, "conv_norm_out", boc[0]))
    return conv(h, "conv_out", boc[0], cfg["out_channels"])


def npy(rel):
    return torch.from_numpy(np.load(os.path.join(GOLDEN, rel)))


def save(dirname, **arrays):
    os.makedirs(os.path.join(OUT, dirname), exist_ok=True)
    for k, v in arrays.items():
        np.save(os.path.join(OUT, dirname, k + ".npy"), v.detach().numpy().astype(np.float32))


def main():
    torch.set_grad_enabled(False)

    # 1. Validate against diffusers' golden outputs.
    cfg = json.load(open(os.path.join(GOLDEN, "model/diffusers/unet/config.json")))
    sd = read_safetensors(os.path.join(GOLDEN, "model/diffusers/unet/diffusion_pytorch_model.safetensors"))
    P = Params(sd)
    sample, ehs, out = npy("unet/sample.npy"), npy("unet/encoder_hidden_states.npy"), npy("unet/out.npy")
    for i, ts in enumerate([999, 500, 1]):
        got = unet(P, cfg, sample, torch.full((2,), float(ts)), ehs)
        err = (got - out[i]).abs().max().item()
        assert err < 1e-5, (ts, err)
        print(f"reproduces diffusers at t={ts}: max |diff| {err:.2g}")

    # 2. Odd latent size with the tiny-sd1 weights.
    g = torch.Generator().manual_seed(200)
    odd = torch.randn((2, 4, 17, 11), generator=g)
    ts = torch.tensor([981.0, 1.0])
    save("odd", sample=odd, timesteps=ts, out=unet(P, cfg, odd, ts, ehs))

    # 3. SD2-style tiny U-Net with random F16 weights.
    cfg2 = {
        "_class_name": "UNet2DConditionModel",
        "attention_head_dim": [2, 4, 4],
        "block_out_channels": [16, 32, 32],
        "cross_attention_dim": 24,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "norm_eps": 1e-5,
        "out_channels": 4,
        "use_linear_projection": True,
        "upcast_attention": True,
        "mid_block_scale_factor": 1.5,
        "freq_shift": 1,
        "flip_sin_to_cos": False,
    }
    ctx2 = torch.randn((2, 7, 24), generator=g)
    x2 = torch.randn((2, 4, 12, 20), generator=g)
    init = Params(None, seed=201)
    unet(init, cfg2, x2, torch.tensor([10.0, 700.0]), ctx2)  # creates every parameter
    weights = {k: v.half().float() for k, v in init.made.items()}  # the F16-stored values
    P2 = Params(weights)
    d = os.path.join(OUT, "sd2tiny", "unet")
    os.makedirs(d, exist_ok=True)
    json.dump(cfg2, open(os.path.join(d, "config.json"), "w"), indent=2)
    write_safetensors_f16(os.path.join(d, "diffusion_pytorch_model.fp16.safetensors"), weights)
    ts2 = torch.tensor([10.0, 700.0])
    x3 = torch.randn((1, 4, 10, 14), generator=g)  # 10x14 -> 5x7 -> 3x4 -> 5x7 -> 10x14
    save("sd2tiny", ctx=ctx2, sample=x2, timesteps=ts2, out=unet(P2, cfg2, x2, ts2, ctx2),
         odd_sample=x3, odd_out=unet(P2, cfg2, x3, torch.tensor([333.0]), ctx2[:1]))
    print(f"sd2tiny: {len(weights)} tensors, {sum(v.numel() for v in weights.values())} parameters")


if __name__ == "__main__":
    main()
