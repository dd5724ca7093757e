#!/usr/bin/python3
"""PyTorch-written .bin/.ckpt versions of the golden tiny-sd1 weights.

Run with Debian's Python, which has PyTorch 1.13 and numpy 1.24:

    /usr/bin/python3 scripts/gen_torch_weights.py write [OUT]
        torch.save()s, under OUT (default: vae/testdata/tiny-bin), the golden
        diffusers VAE as vae/diffusion_pytorch_model.bin with its config.json —
        the one component small enough to commit (2.6 MB; the CI has no torch).
        With --all it also writes unet/diffusion_pytorch_model.bin,
        text_encoder/pytorch_model.bin and tiny-sd1-fp32.ckpt
        ({"state_dict": ..., "global_step": 0}) for local checks.

    /usr/bin/python3 scripts/gen_torch_weights.py check FILE REF.safetensors [--nested]
        torch.load()s FILE (e.g. one written by roentgo's internal/torchzip) and
        checks that it holds exactly the tensors of REF, bit for bit.

The safetensors files are read with numpy (the safetensors package is not
installed): an 8-byte little-endian header size, a JSON header, raw data.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
GOLDEN = os.path.join(ROOT, "..", "shared", "golden", "tiny-sd1", "model")
DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "F64": np.float64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        arr = np.frombuffer(data[b:e], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def save(sd, path, nested=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    obj = {"state_dict": sd, "global_step": 0} if nested else sd
    torch.save(obj, path)
    print(path, os.path.getsize(path), "bytes")


def write(out, everything):
    d = os.path.join(GOLDEN, "diffusers")
    comps = [("vae", "diffusion_pytorch_model")]
    if everything:
        comps += [("unet", "diffusion_pytorch_model"), ("text_encoder", "pytorch_model")]
    for comp, stem in comps:
        src = os.path.join(d, comp, "model.safetensors" if comp == "text_encoder" else "diffusion_pytorch_model.safetensors")
        sd = read_safetensors(src)
        save(sd, os.path.join(out, comp, stem + ".bin"))
        shutil.copy(os.path.join(d, comp, "config.json"), os.path.join(out, comp, "config.json"))
    if everything:
        save(read_safetensors(os.path.join(GOLDEN, "tiny-sd1-fp32.safetensors")), os.path.join(out, "tiny-sd1-fp32.ckpt"), nested=True)


def check(path, ref, nested):
    obj = torch.load(path, map_location="cpu")
    sd = obj["state_dict"] if nested else obj
    want = read_safetensors(ref)
    assert sorted(sd.keys()) == sorted(want.keys()), "keys differ"
    for k, v in want.items():
        got = sd[k]
        assert got.dtype == v.dtype and tuple(got.shape) == tuple(v.shape), k
        assert torch.equal(got, v), k
    print(path, ": torch.load gives the", len(want), "tensors of", ref, "bit for bit")


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "write":
        args = [a for a in sys.argv[2:] if not a.startswith("--")]
        write(args[0] if args else os.path.join(ROOT, "vae", "testdata", "tiny-bin"), "--all" in sys.argv)
    elif len(sys.argv) >= 4 and sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], "--nested" in sys.argv)
    else:
        sys.exit(__doc__)
