#!/usr/bin/python3
"""Golden data for kernels/cpu Conv2d and Attention, computed with PyTorch.

Run with Debian's python (torch 1.13):  /usr/bin/python3 scripts/golden_conv_attn.py
Writes little-endian float32 .bin files (no header) into kernels/cpu/testdata/;
the shapes are fixed here and in kernels/cpu/conv_attn_golden_test.go.
"""
import os

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "kernels", "cpu", "testdata")


def save(name, t):
    t.detach().contiguous().to(torch.float32).numpy().astype("<f4").tofile(os.path.join(OUT, name))


def main():
    os.makedirs(OUT, exist_ok=True)
    g = torch.Generator().manual_seed(1234)

    # conv: x [2, 3, 9, 7], w [5, 3, 3, 3], bias [5]; stride 1 pad 1, and stride 2 pad 1.
    x = torch.randn(2, 3, 9, 7, generator=g)
    w = torch.randn(5, 3, 3, 3, generator=g) * 0.3
    b = torch.randn(5, generator=g)
    save("conv_x.bin", x)
    save("conv_w.bin", w)
    save("conv_b.bin", b)
    save("conv_y_s1p1.bin", torch.nn.functional.conv2d(x, w, b, stride=1, padding=1))
    save("conv_y_s2p1.bin", torch.nn.functional.conv2d(x, w, b, stride=2, padding=1))

    # attention: q [2, 11, 3*8], k, v [2, 13, 3*8]; heads 3, head dim 8, scale 1/sqrt(8).
    B, H, Sq, Sk, D = 2, 3, 11, 13, 8
    q = torch.randn(B, Sq, H * D, generator=g)
    k = torch.randn(B, Sk, H * D, generator=g)
    v = torch.randn(B, Sk, H * D, generator=g)

    def heads(t, s):
        return t.reshape(B, s, H, D).permute(0, 2, 1, 3)  # [B, H, s, D]

    def attend(causal):
        s = torch.matmul(heads(q, Sq), heads(k, Sk).transpose(-1, -2)) * D ** -0.5
        if causal:  # query i sees keys j <= i + (Sk - Sq)
            i = torch.arange(Sq)[:, None]
            j = torch.arange(Sk)[None, :]
            s = s.masked_fill(j > i + (Sk - Sq), float("-inf"))
        o = torch.matmul(torch.softmax(s, dim=-1), heads(v, Sk))  # [B, H, Sq, D]
        return o.permute(0, 2, 1, 3).reshape(B, Sq, H * D)

    save("attn_q.bin", q)
    save("attn_k.bin", k)
    save("attn_v.bin", v)
    save("attn_o.bin", attend(False))
    save("attn_o_causal.bin", attend(True))


if __name__ == "__main__":
    main()
