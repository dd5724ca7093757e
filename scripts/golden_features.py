#!/usr/bin/python3
"""Golden data for metrics/features: the three evaluation feature extractors
written in plain PyTorch from their papers/reference code (no torchvision),
with seeded random weights saved as F16 safetensors under the real
checkpoints' key names, and outputs at several layers.

    /usr/bin/python3 scripts/golden_features.py [outdir]   # default metrics/features/testdata

Models (reduced widths; the Go code takes the same configs as parameters):
  inception: pytorch-fid's FIDInceptionV3 (FIDInceptionA/C/E_1/E_2), channels / 8
  densenet:  torchxrayvision DenseNet-121 layout (6, 12, 24, 16), growth 4, bn_size 2, init 8
  clip:      transformers CLIPVisionModelWithProjection, width 32, 2 layers, 4 heads, patch 16, image 64
Also the resizers: PIL's antialiased bicubic (numpy port of Pillow's
Resample.c, checked against torch's bicubic antialias interpolation) and
torchxrayvision's XRayResizer (skimage resize = scipy gaussian_filter + zoom).
Inputs are integer patterns (pattern() below; the Go tests build the same),
so no input images are stored.
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

OUT = sys.argv[1] if len(sys.argv) > 1 else "metrics/features/testdata"
os.makedirs(OUT, exist_ok=True)
torch.set_grad_enabled(False)
MAXN = 4096  # stored elements per layer: the first channels that fit


def pattern(n, c, h, w, seed):
    """uint8 [n, c, h, w]: (7x + 13y + 29c + 31i + (x*y) % 17 + (x*x + 3y + seed) % 23) % 256."""
    i, k, y, x = np.meshgrid(np.arange(n), np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    return ((7 * x + 13 * y + 29 * k + 31 * i + (x * y) % 17 + (x * x + 3 * y + seed) % 23) % 256).astype(np.uint8)


def save_npy(name, a):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(a))


def save_layer(prefix, name, t):
    """Stores t [N, C, ...] (or [N, D]) as f4: all of it, or its first channels."""
    a = t.detach().float().numpy()
    if a.size > MAXN and a.ndim >= 2:
        per = a.size // a.shape[1]
        a = a[:, : max(1, MAXN // per)]
    save_npy(f"{prefix}_{name}", a.astype(np.float32))


def write_safetensors(path, tensors):
    """Plain safetensors writer: u64 header length, JSON header, raw little-endian data."""
    header, blobs, off = {}, [], 0
    dt = {torch.float16: "F16", torch.float32: "F32", torch.int64: "I64"}
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        b = t.numpy().tobytes() if t.dtype != torch.float16 else t.view(torch.int16).numpy().astype("<i2").tobytes()
        header[k] = {"dtype": dt[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def randomize(model, seed):
    """Seeded weights rounded to F16 (the stored form): He-normal convs, BN
    gamma U(0.8, 1.2), beta N(0, 0.1), running mean N(0, 0.1), var U(0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed)
    for name, p in list(model.named_parameters()) + list(model.named_buffers()):
        if p.dtype == torch.int64:
            continue
        if name.endswith("running_var"):
            v = torch.rand(p.shape, generator=g) + 0.5
        elif name.endswith("running_mean") or (name.endswith("bias") and p.dim() == 1):
            v = torch.randn(p.shape, generator=g) * 0.1
        elif p.dim() == 1:  # norm weights, class embedding
            v = torch.rand(p.shape, generator=g) * 0.4 + 0.8 if "embedding" not in name else torch.randn(p.shape, generator=g)
        elif p.dim() == 4:
            fan_in = p[0].numel()
            v = torch.randn(p.shape, generator=g) * math.sqrt(2.0 / fan_in)
        else:
            v = torch.randn(p.shape, generator=g) / math.sqrt(p.shape[-1])
        p.copy_(v.half().float())
    model.eval()


def state_f16(model, extra=None):
    sd = {k: (v.half() if v.is_floating_point() else v) for k, v in model.state_dict().items()}
    sd.update(extra or {})
    return sd


# ---------------------------------------------------------------- Inception (pytorch-fid)

class BasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class FIDInceptionA(nn.Module):
    def __init__(self, cin, pool, d):
        super().__init__()
        self.branch1x1 = BasicConv2d(cin, 64 // d, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(cin, 48 // d, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48 // d, 64 // d, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64 // d, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64 // d, 96 // d, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96 // d, 96 // d, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(cin, pool, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class InceptionB(nn.Module):
    def __init__(self, cin, d):
        super().__init__()
        self.branch3x3 = BasicConv2d(cin, 384 // d, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(cin, 64 // d, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64 // d, 96 // d, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96 // d, 96 // d, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3(x)
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, cin, c7, d):
        super().__init__()
        o = 192 // d
        self.branch1x1 = BasicConv2d(cin, o, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, o, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, o, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(cin, o, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        bp = self.branch_pool(F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class InceptionD(nn.Module):
    def __init__(self, cin, d):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(cin, 192 // d, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192 // d, 320 // d, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(cin, 192 // d, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192 // d, 192 // d, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192 // d, 192 // d, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192 // d, 192 // d, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    def __init__(self, cin, d, maxpool):
        super().__init__()
        self.maxpool = maxpool
        self.branch1x1 = BasicConv2d(cin, 320 // d, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(cin, 384 // d, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384 // d, 384 // d, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384 // d, 384 // d, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(cin, 448 // d, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448 // d, 384 // d, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384 // d, 384 // d, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384 // d, 384 // d, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(cin, 192 // d, kernel_size=1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.maxpool:  # FIDInceptionE_2
            bp = F.max_pool2d(x, 3, stride=1, padding=1)
        else:  # FIDInceptionE_1
            bp = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(bp)], 1)


class FIDInception(nn.Module):
    def __init__(self, d, num_classes):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32 // d, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32 // d, 32 // d, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32 // d, 64 // d, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64 // d, 80 // d, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80 // d, 192 // d, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192 // d, 32 // d, d)
        c5 = (64 + 64 + 96) // d
        self.Mixed_5c = FIDInceptionA(c5 + 32 // d, 64 // d, d)
        self.Mixed_5d = FIDInceptionA(c5 + 64 // d, 64 // d, d)
        self.Mixed_6a = InceptionB(c5 + 64 // d, d)
        c6 = 768 // d
        self.Mixed_6b = FIDInceptionC(c6, 128 // d, d)
        self.Mixed_6c = FIDInceptionC(c6, 160 // d, d)
        self.Mixed_6d = FIDInceptionC(c6, 160 // d, d)
        self.Mixed_6e = FIDInceptionC(c6, 192 // d, d)
        self.Mixed_7a = InceptionD(c6, d)
        self.Mixed_7b = FIDInceptionE(1280 // d, d, False)
        self.Mixed_7c = FIDInceptionE(2048 // d, d, True)
        self.fc = nn.Linear(2048 // d, num_classes)

    def layers(self, x01):
        """pytorch-fid's blocks on x in [0, 1] (normalize_input: 2x - 1)."""
        out = {}
        x = 2 * x01 - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        out["conv2b"] = x
        x = F.max_pool2d(x, 3, stride=2)
        out["block0"] = x
        x = F.max_pool2d(self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)), 3, stride=2)
        out["block1"] = x
        for n in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
                  "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
            x = getattr(self, n)(x)
            out[n] = x
        out["pool3"] = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return out


def golden_inception():
    d = 8
    m = FIDInception(d, 8)
    randomize(m, 1)
    write_safetensors(os.path.join(OUT, "inception_d8.safetensors"), state_f16(m))
    for tag, (n, h, w) in {"299": (1, 299, 299), "107": (2, 107, 93)}.items():
        x = torch.from_numpy(pattern(n, 3, h, w, 5).astype(np.float32) / 255)
        out = m.layers(x)
        for k, v in out.items():
            if tag == "299" or k in ("block1", "Mixed_6e", "pool3"):
                save_layer(f"inception_{tag}", k, v)
        print("inception", tag, {k: float(v.abs().max()) for k, v in out.items()})


# ---------------------------------------------------------------- DenseNet (torchxrayvision)

class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, x):
        h = self.conv1(F.relu(self.norm1(x)))
        return torch.cat([x, self.conv2(F.relu(self.norm2(h)))], 1)


class Transition(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.norm = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x):
        return F.avg_pool2d(self.conv(F.relu(self.norm(x))), 2, stride=2)


class DenseNet(nn.Module):
    def __init__(self, growth, blocks, init, bn_size, classes):
        super().__init__()
        f = nn.Module()
        f.conv0 = nn.Conv2d(1, init, 7, stride=2, padding=3, bias=False)
        f.norm0 = nn.BatchNorm2d(init)
        c = init
        self.order = []
        for i, n in enumerate(blocks):
            blk = nn.Module()
            for j in range(n):
                setattr(blk, f"denselayer{j + 1}", DenseLayer(c + j * growth, growth, bn_size))
            setattr(f, f"denseblock{i + 1}", blk)
            self.order.append((f"denseblock{i + 1}", n))
            c += n * growth
            if i != len(blocks) - 1:
                setattr(f, f"transition{i + 1}", Transition(c, c // 2))
                self.order.append((f"transition{i + 1}", 0))
                c //= 2
        f.norm5 = nn.BatchNorm2d(c)
        self.features = f
        self.classifier = nn.Linear(c, classes)

    def layers(self, x):
        out = {}
        f = self.features
        x = F.max_pool2d(F.relu(f.norm0(f.conv0(x))), 3, stride=2, padding=1)
        out["pool0"] = x
        for name, n in self.order:
            mod = getattr(f, name)
            if n:
                for j in range(n):
                    x = getattr(mod, f"denselayer{j + 1}")(x)
            else:
                x = mod(x)
            out[name] = x
        x = f.norm5(x)
        out["norm5"] = x
        feats = F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1)
        out["features2"] = feats
        logits = self.classifier(feats)
        out["logits"] = logits
        return out


XRV_OP_THRESHS = [0.07422872, 0.038290843, 0.09814756, 0.0098118475, 0.023601074, 0.0022490358, 0.010060724,
                  0.103246614, 0.056810737, 0.026791653, 0.050318155, 0.023985857, 0.01939503, 0.042889766,
                  0.053369623, 0.035975814, 0.20204692, 0.05015312]


def op_norm(p, th):
    th = torch.tensor(th).expand_as(p)
    lo = p < th
    return torch.where(lo, p / (th * 2), 1 - (1 - p) / ((1 - th) * 2))


def golden_densenet():
    m = DenseNet(growth=4, blocks=(6, 12, 24, 16), init=8, bn_size=2, classes=18)
    randomize(m, 2)
    m.features.conv0.weight.mul_(1 / 1024)  # inputs are in [-1024, 1024]
    m.features.conv0.weight.copy_(m.features.conv0.weight.half().float())
    sd = state_f16(m)
    write_safetensors(os.path.join(OUT, "densenet_small.safetensors"), sd)
    for tag, (n, h, w) in {"64": (2, 64, 64), "224": (1, 224, 224)}.items():
        img = pattern(n, 1, h, w, 9).astype(np.float32)
        x = torch.from_numpy(img / 255 * 2048 - 1024)  # xrv.datasets.normalize(img, 255)
        out = m.layers(x)
        out["calibrated"] = op_norm(torch.sigmoid(out["logits"]), XRV_OP_THRESHS)
        for k, v in out.items():
            save_layer(f"densenet_{tag}", k, v)
        print("densenet", tag, {k: float(v.abs().max()) for k, v in out.items()})


# ---------------------------------------------------------------- CLIP vision tower (transformers)

class CLIPVision(nn.Module):
    """CLIPVisionModelWithProjection with transformers' module names."""

    def __init__(self, width, layers, heads, patch, image, proj, inter):
        super().__init__()
        self.heads, self.patch = heads, patch
        vm = nn.Module()
        emb = nn.Module()
        emb.class_embedding = nn.Parameter(torch.zeros(width))
        emb.patch_embedding = nn.Conv2d(3, width, patch, stride=patch, bias=False)
        emb.position_embedding = nn.Embedding((image // patch) ** 2 + 1, width)
        emb.register_buffer("position_ids", torch.arange((image // patch) ** 2 + 1).unsqueeze(0))
        vm.embeddings = emb
        vm.pre_layrnorm = nn.LayerNorm(width)
        enc = nn.Module()
        enc.layers = nn.ModuleList()
        for _ in range(layers):
            l = nn.Module()
            a = nn.Module()
            a.q_proj, a.k_proj, a.v_proj, a.out_proj = (nn.Linear(width, width) for _ in range(4))
            l.self_attn = a
            l.layer_norm1 = nn.LayerNorm(width)
            mlp = nn.Module()
            mlp.fc1, mlp.fc2 = nn.Linear(width, inter), nn.Linear(inter, width)
            l.mlp = mlp
            l.layer_norm2 = nn.LayerNorm(width)
            enc.layers.append(l)
        vm.encoder = enc
        vm.post_layernorm = nn.LayerNorm(width)
        self.vision_model = vm
        self.visual_projection = nn.Linear(width, proj, bias=False)

    def layers(self, x):
        out = {}
        vm = self.vision_model
        e = vm.embeddings
        p = e.patch_embedding(x).flatten(2).transpose(1, 2)  # [N, P, D]
        cls = e.class_embedding.expand(x.shape[0], 1, -1)
        h = torch.cat([cls, p], 1) + e.position_embedding.weight[None]
        h = vm.pre_layrnorm(h)
        out["pre"] = h
        n, s, dm = h.shape
        hd = dm // self.heads
        for i, l in enumerate(vm.encoder.layers):
            r = h
            t = l.layer_norm1(h)
            a = l.self_attn
            q = a.q_proj(t).view(n, s, self.heads, hd).transpose(1, 2) * hd ** -0.5
            k = a.k_proj(t).view(n, s, self.heads, hd).transpose(1, 2)
            v = a.v_proj(t).view(n, s, self.heads, hd).transpose(1, 2)
            o = torch.softmax(q @ k.transpose(-1, -2), -1) @ v
            h = r + a.out_proj(o.transpose(1, 2).reshape(n, s, dm))
            t = l.mlp.fc1(l.layer_norm2(h))
            t = t * torch.sigmoid(1.702 * t)  # quick_gelu
            h = h + l.mlp.fc2(t)
            out[f"layer{i}"] = h
        pooled = vm.post_layernorm(h[:, 0])
        out["pooled"] = pooled
        out["image_embeds"] = self.visual_projection(pooled)
        return out


def golden_clip():
    m = CLIPVision(width=32, layers=2, heads=4, patch=16, image=64, proj=16, inter=128)
    randomize(m, 3)
    write_safetensors(os.path.join(OUT, "clip_vision_small.safetensors"), state_f16(m))
    img = pattern(2, 3, 64, 64, 11).astype(np.float32) / 255
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    x = (torch.from_numpy(img) - mean) / std
    out = m.layers(x)
    for k, v in out.items():
        save_layer("clip", k, v)
    print("clip", {k: float(v.abs().max()) for k, v in out.items()})


# ---------------------------------------------------------------- resizers

def pil_bicubic_coeffs(in_size, out_size):
    """Pillow's precompute_coeffs for BICUBIC (a = -0.5, support 2) over the whole input."""
    scale = in_size / out_size
    fscale = max(scale, 1.0)
    support = 2.0 * fscale

    def cubic(x):
        a = -0.5
        x = abs(x)
        if x < 1:
            return ((a + 2) * x - (a + 3)) * x * x + 1
        if x < 2:
            return (((x - 5) * x + 8) * x - 4) * a
        return 0.0

    rows = []
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size)
        w = np.array([cubic((x + xmin - center + 0.5) / fscale) for x in range(xmax - xmin)])
        if w.sum() != 0:
            w = w / w.sum()
        rows.append((xmin, w))
    return rows


def pil_resize_f(img, out_w, out_h):
    """Image.fromarray(img, 'F').resize((out_w, out_h), BICUBIC): horizontal pass
    then vertical, float64 sums, float32 between and after the passes."""
    img = img.astype(np.float32)
    h, w = img.shape
    if out_w != w:
        tmp = np.zeros((h, out_w), np.float32)
        for xx, (xmin, k) in enumerate(pil_bicubic_coeffs(w, out_w)):
            tmp[:, xx] = (img[:, xmin:xmin + len(k)].astype(np.float64) @ k).astype(np.float32)
        img = tmp
    if out_h != h:
        tmp = np.zeros((out_h, img.shape[1]), np.float32)
        for yy, (ymin, k) in enumerate(pil_bicubic_coeffs(h, out_h)):
            tmp[yy] = (k @ img[ymin:ymin + len(k)].astype(np.float64)).astype(np.float32)
        img = tmp
    return img


def golden_resize():
    from scipy import ndimage
    res = {}
    for tag, (h, w, oh, ow) in {"down": (64, 80, 29, 37), "up": (23, 17, 40, 31), "mixed": (50, 20, 30, 45)}.items():
        img = pattern(1, 1, h, w, 3)[0, 0].astype(np.float32)
        ours = pil_resize_f(img, ow, oh)
        tt = F.interpolate(torch.from_numpy(img)[None, None], size=(oh, ow), mode="bicubic", align_corners=False,
                           antialias=True)[0, 0].numpy()
        diff = float(np.abs(ours - tt).max())
        res[tag] = diff
        save_npy(f"resize_pil_{tag}", ours)
    print("PIL bicubic port vs torch antialias bicubic, max |diff| (0..255 data):", res)

    # torchxrayvision XRayResizer (skimage.transform.resize, order 1, mode
    # 'constant', anti_aliasing when downscaling, preserve_range), as skimage
    # computes it: gaussian_filter(sigma = max(0, (scale - 1)/2), mode
    # 'constant', cval 0, truncate 4) then ndimage.zoom(order 1, mode
    # 'grid-constant', grid_mode True).
    for tag, (h, w, o) in {"down": (80, 80, 24), "up": (20, 20, 33)}.items():
        img = pattern(1, 1, h, w, 4)[0, 0].astype(np.float32) / 255 * 2048 - 1024
        scale = h / o
        x = img.astype(np.float64)
        if scale > 1:
            x = ndimage.gaussian_filter(x, max(0.0, (scale - 1) / 2), mode="constant", cval=0.0)
        z = ndimage.zoom(x, (o / h, o / w), order=1, mode="grid-constant", cval=0.0, grid_mode=True)
        save_npy(f"resize_xrv_{tag}", z.astype(np.float32))


if __name__ == "__main__":
    torch.manual_seed(0)
    golden_resize()
    golden_inception()
    golden_densenet()
    golden_clip()
