"""A plain-PyTorch U-Net with Stable Diffusion 1.5's architecture, for timing.

The yardstick for roentgo's U-Net step on a GPU machine that has PyTorch but
not diffusers: the same layers (ResNet blocks with time embedding, spatial
transformers with self- and cross-attention and GEGLU feed-forward, 2x down-
and up-sampling with skip connections), channels (320, 640, 1280, 1280), 8
heads, 768-wide text context; random weights. Attention goes through
F.scaled_dot_product_attention (torch >= 2.0). Written from the published
architecture, not from diffusers' code; only the amount and kind of work
matters here, not compatibility with checkpoints.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def sdpa(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    s = torch.matmul(q, k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    return torch.matmul(torch.softmax(s, dim=-1), v)


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb=1280):
        super().__init__()
        self.n1, self.c1 = nn.GroupNorm(32, cin, eps=1e-5), nn.Conv2d(cin, cout, 3, padding=1)
        self.t = nn.Linear(temb, cout)
        self.n2, self.c2 = nn.GroupNorm(32, cout, eps=1e-5), nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.c1(F.silu(self.n1(x)))
        h = h + self.t(F.silu(temb))[:, :, None, None]
        h = self.c2(F.silu(self.n2(h)))
        return (self.skip(x) if self.skip is not None else x) + h


class Attn(nn.Module):
    def __init__(self, dim, ctx, heads=8):
        super().__init__()
        self.h = heads
        self.q = nn.Linear(dim, dim, bias=False)
        self.k = nn.Linear(ctx, dim, bias=False)
        self.v = nn.Linear(ctx, dim, bias=False)
        self.o = nn.Linear(dim, dim)

    def forward(self, x, c=None):
        c = x if c is None else c
        b, s, d = x.shape

        def split(t):
            return t.view(b, -1, self.h, d // self.h).transpose(1, 2)

        y = sdpa(split(self.q(x)), split(self.k(c)), split(self.v(c)))
        return self.o(y.transpose(1, 2).reshape(b, s, d))


class Transformer(nn.Module):
    def __init__(self, ch, ctx=768):
        super().__init__()
        self.norm = nn.GroupNorm(32, ch, eps=1e-6)
        self.pin, self.pout = nn.Conv2d(ch, ch, 1), nn.Conv2d(ch, ch, 1)
        self.l1, self.a1 = nn.LayerNorm(ch), Attn(ch, ch)
        self.l2, self.a2 = nn.LayerNorm(ch), Attn(ch, ctx)
        self.l3 = nn.LayerNorm(ch)
        self.ff1, self.ff2 = nn.Linear(ch, 8 * ch), nn.Linear(4 * ch, ch)

    def forward(self, x, ctx):
        b, c, hh, ww = x.shape
        h = self.pin(self.norm(x)).permute(0, 2, 3, 1).reshape(b, hh * ww, c)
        h = h + self.a1(self.l1(h))
        h = h + self.a2(self.l2(h), ctx)
        a, g = self.ff1(self.l3(h)).chunk(2, dim=-1)
        h = h + self.ff2(a * F.gelu(g))
        h = h.reshape(b, hh, ww, c).permute(0, 3, 1, 2)
        return self.pout(h) + x


class UNetSD15(nn.Module):
    def __init__(self):
        super().__init__()
        chs = [320, 640, 1280, 1280]
        attn = [True, True, True, False]
        self.cin = nn.Conv2d(4, 320, 3, padding=1)
        self.t1, self.t2 = nn.Linear(320, 1280), nn.Linear(1280, 1280)
        self.down = nn.ModuleList()
        skips = [320]
        c = 320
        for i, co in enumerate(chs):
            blk = nn.ModuleDict()
            blk["res"] = nn.ModuleList([Resnet(c if j == 0 else co, co) for j in range(2)])
            blk["tf"] = nn.ModuleList([Transformer(co) for _ in range(2)]) if attn[i] else nn.ModuleList()
            c = co
            skips += [co, co]
            if i < 3:
                blk["ds"] = nn.Conv2d(co, co, 3, stride=2, padding=1)
                skips.append(co)
            self.down.append(blk)
        self.mid1, self.midt, self.mid2 = Resnet(1280, 1280), Transformer(1280), Resnet(1280, 1280)
        self.up = nn.ModuleList()
        for i, co in enumerate(reversed(chs)):
            blk = nn.ModuleDict()
            res = []
            for _ in range(3):
                res.append(Resnet(c + skips.pop(), co))
                c = co
            blk["res"] = nn.ModuleList(res)
            blk["tf"] = nn.ModuleList([Transformer(co) for _ in range(3)]) if attn[3 - i] else nn.ModuleList()
            if i < 3:
                blk["us"] = nn.Conv2d(co, co, 3, padding=1)
            self.up.append(blk)
        self.nout, self.cout = nn.GroupNorm(32, 320, eps=1e-5), nn.Conv2d(320, 4, 3, padding=1)

    def temb(self, t, n):
        half = 160
        f = torch.exp(-math.log(10000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
        a = t.float()[:, None] * f[None]
        e = torch.cat([torch.cos(a), torch.sin(a)], dim=-1).to(self.t1.weight.dtype)
        return self.t2(F.silu(self.t1(e))).expand(n, -1)

    def forward(self, x, t, ctx):
        temb = self.temb(t.reshape(1), x.shape[0])
        h = self.cin(x)
        hs = [h]
        for blk in self.down:
            for j, r in enumerate(blk["res"]):
                h = r(h, temb)
                if len(blk["tf"]):
                    h = blk["tf"][j](h, ctx)
                hs.append(h)
            if "ds" in blk:
                h = blk["ds"](h)
                hs.append(h)
        h = self.mid2(self.midt(self.mid1(h, temb), ctx), temb)
        for blk in self.up:
            for j, r in enumerate(blk["res"]):
                h = r(torch.cat([h, hs.pop()], dim=1), temb)
                if len(blk["tf"]):
                    h = blk["tf"][j](h, ctx)
            if "us" in blk:
                h = blk["us"](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.cout(F.silu(self.nout(h)))


if __name__ == "__main__":  # shape and size check on the CPU
    m = UNetSD15()
    print("parameters: %.2f M" % (sum(p.numel() for p in m.parameters()) / 1e6))
    y = m(torch.randn(2, 4, 16, 16), torch.tensor(500.0), torch.randn(2, 77, 768))
    print("output", tuple(y.shape))
