#!/usr/bin/env python3
"""Convert the evaluation feature extractors' weights to safetensors for
roentgo's metrics/features (run where PyTorch, and for --xrv torchxrayvision,
are installed; nothing is downloaded by this script).

    # pytorch-fid's Inception (pt_inception-2015-12-05-6726825d.pth, a legacy torch.save file)
    python3 scripts/convert_features_weights.py --inception pt_inception-2015-12-05-6726825d.pth inception.safetensors
    # torchxrayvision's densenet121-res224-all (a pickled model object)
    python3 scripts/convert_features_weights.py --xrv nih-pc-chex-mimic_ch-google-openi-kaggle-densenet121-d121-tw-lr001-rot45-tr15-sc15-seed0-best.pt xrv.safetensors
    # OpenAI's ViT-B-32.pt (a TorchScript archive): the visual.* state dict
    python3 scripts/convert_features_weights.py --openai-clip ViT-B-32.pt clip_vit_b32.safetensors

The output keeps the checkpoints' own key names (pytorch-fid's, xrv's,
OpenAI's visual.*), stored as float32, written with a plain safetensors
writer (8-byte header length, JSON header, raw little-endian data), so the
safetensors package is not needed.
"""
import json
import struct
import sys

import torch


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    names = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    for k in sorted(tensors):
        t = tensors[k].detach().cpu().contiguous()
        if t.is_floating_point() and t.dtype not in (torch.float32, torch.float16):
            t = t.float()
        if t.dtype == torch.float16:
            b = t.view(torch.int16).numpy().astype("<i2").tobytes()
        else:
            b = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("--inception", "--xrv", "--openai-clip"):
        sys.exit(__doc__)
    kind, src, dst = sys.argv[1:]
    if kind == "--inception":
        sd = torch.load(src, map_location="cpu")
    elif kind == "--xrv":
        import torchxrayvision  # noqa: F401  (the pickle names its classes)
        obj = torch.load(src, map_location="cpu")
        sd = obj.state_dict() if hasattr(obj, "state_dict") else obj
    else:
        obj = torch.jit.load(src, map_location="cpu")
        sd = {k: v for k, v in obj.state_dict().items() if k.startswith("visual.")}
    sd = {k: v for k, v in sd.items() if torch.is_tensor(v)}
    write_safetensors(dst, sd)
    print(f"wrote {len(sd)} tensors to {dst}")


if __name__ == "__main__":
    main()
