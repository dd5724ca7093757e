#!/usr/bin/python3
"""Writes golden cases for package nn into nn/testdata/.

Each case <name> gets:
  <name>.safetensors  the module's parameters, named as diffusers names them (written by
                      a small independent writer below: torch 1.13 here has no safetensors)
  <name>.in*.npy      the inputs, <name>.out.npy the output (float32, C order)

The modules are written here with plain torch.nn building blocks so that the reference is
independent of the Go code; their structure follows diffusers 0.16 (ResnetBlock2D,
Attention, FeedForward/GEGLU, BasicTransformerBlock, Transformer2DModel, Downsample2D,
Upsample2D, TimestepEmbedding). Run: /usr/bin/python3 scripts/golden_nn.py
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "nn", "testdata")


def write_safetensors(path, tensors):
    header = {}
    blobs = []
    off = 0
    for name in sorted(tensors):
        a = tensors[name].detach().contiguous().numpy().astype(np.float32)
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save(name, module, inputs, output):
    # Randomise every parameter (biases and norm affines too) so nothing is trivially 1/0.
    write_safetensors(os.path.join(OUT, name + ".safetensors"), module.state_dict())
    for i, x in enumerate(inputs):
        np.save(os.path.join(OUT, "%s.in%d.npy" % (name, i)), x.detach().numpy().astype(np.float32))
    np.save(os.path.join(OUT, name + ".out.npy"), output.detach().numpy().astype(np.float32))


def randomise(module, g):
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
            if p.dim() == 1:
                p.add_(torch.ones_like(p) * 0.5)


class Attention(nn.Module):
    def __init__(self, query_dim, cross_dim=None, heads=2, dim_head=8):
        super().__init__()
        inner = heads * dim_head
        cross_dim = cross_dim or query_dim
        self.heads = heads
        self.scale = dim_head ** -0.5
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_k = nn.Linear(cross_dim, inner, bias=False)
        self.to_v = nn.Linear(cross_dim, inner, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(inner, query_dim), nn.Dropout(0.0)])

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        b, s, _ = x.shape
        q, k, v = self.to_q(x), self.to_k(ctx), self.to_v(ctx)

        def heads(t):
            return t.reshape(b, t.shape[1], self.heads, -1).permute(0, 2, 1, 3)

        q, k, v = heads(q), heads(k), heads(v)
        p = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        o = (p @ v).permute(0, 2, 1, 3).reshape(b, s, -1)
        return self.to_out[1](self.to_out[0](o))


class GEGLU(nn.Module):
    def __init__(self, dim, inner):
        super().__init__()
        self.proj = nn.Linear(dim, inner * 2)

    def forward(self, x):
        h, gate = self.proj(x).chunk(2, dim=-1)
        return h * F.gelu(gate)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        inner = dim * mult
        self.net = nn.ModuleList([GEGLU(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x):
        for m in self.net:
            x = m(x)
        return x


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, dim_head, cross_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, None, heads, dim_head)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, cross_dim, heads, dim_head)
        self.norm3 = nn.LayerNorm(dim)
        self.ff = FeedForward(dim)

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class Transformer2DModel(nn.Module):
    def __init__(self, channels, heads, dim_head, cross_dim, groups, linear, layers=1):
        super().__init__()
        inner = heads * dim_head
        self.linear = linear
        self.norm = nn.GroupNorm(groups, channels, eps=1e-6)
        if linear:
            self.proj_in = nn.Linear(channels, inner)
            self.proj_out = nn.Linear(inner, channels)
        else:
            self.proj_in = nn.Conv2d(channels, inner, 1)
            self.proj_out = nn.Conv2d(inner, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, cross_dim) for _ in range(layers)])

    def forward(self, x, ctx):
        b, c, h, w = x.shape
        res = x
        x = self.norm(x)
        if not self.linear:
            x = self.proj_in(x)
            inner = x.shape[1]
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, inner)
        else:
            x = x.permute(0, 2, 3, 1).reshape(b, h * w, c)
            x = self.proj_in(x)
            inner = x.shape[-1]
        for blk in self.transformer_blocks:
            x = blk(x, ctx)
        if not self.linear:
            x = x.reshape(b, h, w, inner).permute(0, 3, 1, 2)
            x = self.proj_out(x)
        else:
            x = self.proj_out(x)
            x = x.reshape(b, h, w, inner).permute(0, 3, 1, 2)
        return x + res


class ResnetBlock2D(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps=1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout) if temb else None
        self.norm2 = nn.GroupNorm(groups, cout, eps=eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb=None):
        h = self.conv1(F.silu(self.norm1(x)))
        if temb is not None:
            h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        if self.conv_shortcut is not None:
            x = self.conv_shortcut(x)
        return x + h


class Downsample2D(nn.Module):
    def __init__(self, cin, cout, padding):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=padding)

    def forward(self, x):
        if self.padding == 0:
            x = F.pad(x, (0, 1, 0, 1))
        return self.conv(x)


class Upsample2D(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TimestepEmbedding(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.linear_1 = nn.Linear(cin, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x):
        return self.linear_2(F.silu(self.linear_1(x)))


def timestep_embedding(t, dim, flip, shift, scale=1.0, max_period=10000):
    # diffusers get_timestep_embedding, written out.
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half, dtype=torch.float32)
    exponent = exponent / (half - shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(1234)

    def rn(*shape):
        return torch.randn(shape, generator=g)

    with torch.no_grad():
        m = nn.Linear(12, 7); randomise(m, g); x = rn(2, 3, 12)
        save("linear", m, [x], m(x))

        m = nn.Conv2d(5, 6, 3, stride=1, padding=1); randomise(m, g); x = rn(2, 5, 7, 9)
        save("conv3x3", m, [x], m(x))
        m = nn.Conv2d(5, 6, 3, stride=2, padding=1); randomise(m, g); x = rn(1, 5, 9, 8)
        save("conv3x3s2", m, [x], m(x))
        m = nn.Conv2d(6, 4, 1); randomise(m, g); x = rn(2, 6, 5, 3)
        save("conv1x1", m, [x], m(x))

        m = nn.GroupNorm(4, 8, eps=1e-6); randomise(m, g); x = rn(2, 8, 5, 6) * 3 + 2
        save("groupnorm", m, [x], m(x))
        m = nn.LayerNorm(16); randomise(m, g); x = rn(2, 5, 16) * 2 - 1
        save("layernorm", m, [x], m(x))
        m = nn.Embedding(20, 6); randomise(m, g); ids = torch.tensor([[0, 3, 19, 3]])
        np.save(os.path.join(OUT, "embedding.ids.npy"), ids.numpy().astype(np.int64))
        write_safetensors(os.path.join(OUT, "embedding.safetensors"), m.state_dict())
        np.save(os.path.join(OUT, "embedding.out.npy"), m(ids).numpy().astype(np.float32))

        x = rn(3, 11) * 3
        np.save(os.path.join(OUT, "act.in0.npy"), x.numpy())
        np.save(os.path.join(OUT, "act.gelu.npy"), F.gelu(x).numpy())
        np.save(os.path.join(OUT, "act.gelu_tanh.npy"), F.gelu(x, approximate="tanh").numpy())
        np.save(os.path.join(OUT, "act.silu.npy"), F.silu(x).numpy())
        np.save(os.path.join(OUT, "act.quick_gelu.npy"), (x * torch.sigmoid(1.702 * x)).numpy())

        m = Attention(16, None, heads=2, dim_head=8); randomise(m, g); x = rn(2, 9, 16)
        save("attn_self", m, [x], m(x))
        m = Attention(16, 12, heads=4, dim_head=5); randomise(m, g); x = rn(2, 9, 16); c = rn(2, 7, 12)
        save("attn_cross", m, [x, c], m(x, c))

        m = FeedForward(8); randomise(m, g); x = rn(2, 5, 8)
        save("feedforward", m, [x], m(x))

        m = BasicTransformerBlock(16, 2, 8, 12); randomise(m, g); x = rn(2, 6, 16); c = rn(2, 7, 12)
        save("transformer_block", m, [x, c], m(x, c))

        m = Transformer2DModel(16, 2, 8, 12, groups=4, linear=False); randomise(m, g)
        x = rn(2, 16, 3, 5); c = rn(2, 7, 12)
        save("transformer2d_conv", m, [x, c], m(x, c))
        m = Transformer2DModel(16, 2, 8, 12, groups=4, linear=True); randomise(m, g)
        x = rn(1, 16, 4, 3); c = rn(1, 7, 12)
        save("transformer2d_linear", m, [x, c], m(x, c))

        m = ResnetBlock2D(8, 12, 10, groups=4); randomise(m, g); x = rn(2, 8, 5, 6); t = rn(2, 10)
        save("resnet_shortcut", m, [x, t], m(x, t))
        m = ResnetBlock2D(8, 8, 0, groups=4); randomise(m, g); x = rn(1, 8, 4, 4)
        save("resnet_notemb", m, [x], m(x))

        m = Downsample2D(8, 8, padding=1); randomise(m, g); x = rn(2, 8, 6, 5)
        save("downsample_pad1", m, [x], m(x))
        m = Downsample2D(8, 8, padding=0); randomise(m, g); x = rn(1, 8, 6, 6)
        save("downsample_pad0", m, [x], m(x))
        m = Upsample2D(8, 8); randomise(m, g); x = rn(2, 8, 3, 4)
        save("upsample", m, [x], m(x))

        m = TimestepEmbedding(16, 24); randomise(m, g); x = rn(2, 16)
        save("timestep_embedding", m, [x], m(x))

        t = torch.tensor([0.0, 1.0, 500.0, 999.0])
        np.save(os.path.join(OUT, "time_proj.t.npy"), t.numpy())
        np.save(os.path.join(OUT, "time_proj.flip.npy"), timestep_embedding(t, 32, True, 0.0).numpy())
        np.save(os.path.join(OUT, "time_proj.noflip_shift1.npy"), timestep_embedding(t, 33, False, 1.0).numpy())

        # Added after the cases above (so they keep their values): Upsample2D with an
        # explicit output size (diffusers' output_size: nearest to a size that is not
        # twice the input, as the U-Net does for odd skip sizes), and plain nearest
        # resizes to odd and smaller sizes.
        m = Upsample2D(8, 6); randomise(m, g); x = rn(2, 8, 3, 4)
        y = m.conv(F.interpolate(x, size=(5, 7), mode="nearest"))
        save("upsample_size", m, [x], y)
        x = rn(1, 3, 5, 6)
        np.save(os.path.join(OUT, "nearest.in0.npy"), x.numpy())
        np.save(os.path.join(OUT, "nearest.9x13.npy"), F.interpolate(x, size=(9, 13), mode="nearest").numpy())
        np.save(os.path.join(OUT, "nearest.3x4.npy"), F.interpolate(x, size=(3, 4), mode="nearest").numpy())
        np.save(os.path.join(OUT, "nearest.7x17.npy"), F.interpolate(x, size=(7, 17), mode="nearest").numpy())


if __name__ == "__main__":
    main()
