#!/usr/bin/python3
"""Generate the PyTorch checkpoints and expected values for tensor/torchpickle.

Run with Debian's Python, which has PyTorch 1.13 and numpy 1.24:

    /usr/bin/python3 scripts/gen_torchpickle_testdata.py

Writes small files into tensor/torchpickle/testdata/:
  tensors.bin           torch.save of a dict of tensors: every storage dtype,
                        a 0-d scalar, an empty tensor, two views of one storage
                        at different offsets, a transposed view, a strided
                        column slice, an expanded (stride 0) view, a Parameter
  tensors_deflate.bin   the same archive re-zipped with deflate compression
  proto4.bin            torch.save(..., pickle_protocol=4)
  module.bin            nn.Module.state_dict() of a small module
  sd.ckpt               {"state_dict": ..., "global_step": 3, "epoch": 1, ...}
                        with Lightning-like extras (a class as a dict key, an
                        instance of a custom class, optimizer state tensors)
  evil_entry.bin        a state dict with an object whose __reduce__ is os.system
  evil_callbacks.ckpt   the same object outside the state dict ("callbacks")
  evil_top.bin          the object as the whole checkpoint
  evil_os.bin           a hand-written data.pkl calling the global "os system"
  numpy_entry.bin       a numpy array in the state dict (not allow-listed)
  subclass.bin          a tensor subclass (torch._tensor._rebuild_from_type_v2)
  <file>.<name>.npy     expected contiguous values of every tensor (bf16 saved
                        as float32 and int16 as int32, both exact)
The malicious payload would create /tmp/roentgo_torchpickle_pwned if run.
"""
import collections
import io
import os
import zipfile

import numpy as np
import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tensor", "torchpickle", "testdata")
MARKER = "/tmp/roentgo_torchpickle_pwned"


def fixed(name, method=zipfile.ZIP_STORED):
    """A zip entry with a fixed date, so that regenerating gives the same bytes."""
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = method
    return info


def save_expected(prefix, sd):
    for name, t in sd.items():
        t = t.detach()
        if t.dtype == torch.bfloat16:
            a = t.float().contiguous().numpy()
        elif t.dtype == torch.int16:
            a = t.int().contiguous().numpy()
        else:
            a = t.contiguous().numpy()
        np.save(os.path.join(OUT, f"{prefix}.{name}.npy"), np.array(a, order="C", copy=True))


class Evil:
    def __reduce__(self):
        return (os.system, ("touch " + MARKER,))


class FakeCheckpointCallback:
    def __init__(self):
        self.monitor = None
        self.dirpath = "/tmp/ckpts"
        self.best_k = {"a": 1.5}


class MyTensor(torch.Tensor):
    pass


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    torch.manual_seed(0)

    base = torch.arange(20, dtype=torch.float32) * 0.5 - 3
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4)
    sd["f16"] = torch.randn(2, 3).half()
    sd["bf16"] = torch.randn(5).bfloat16()
    sd["f64"] = torch.randn(2, 2, dtype=torch.float64)
    sd["i64"] = torch.arange(6).reshape(2, 3) - 2
    sd["i32"] = torch.tensor([-7, 0, 2**31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([-300, 5], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, 127, 3], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 255, 17], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    sd["scalar"] = torch.tensor(3.5)
    sd["empty"] = torch.zeros(0, 3)
    sd["shared_a"] = base[2:8].view(2, 3)
    sd["shared_b"] = base[10:15]
    sd["transposed"] = torch.randn(3, 5).t()
    sd["cols"] = torch.randn(4, 6)[:, 1:6:2]
    sd["expanded"] = torch.randn(3, 1).expand(3, 4)
    sd["param"] = torch.nn.Parameter(torch.randn(2, 2))
    assert sd["shared_a"].storage().data_ptr() == sd["shared_b"].storage().data_ptr()
    assert not sd["transposed"].is_contiguous()
    torch.save(sd, os.path.join(OUT, "tensors.bin"))
    save_expected("tensors", sd)

    # Protocol 4: FRAME, SHORT_BINUNICODE, STACK_GLOBAL, MEMOIZE.
    p4 = collections.OrderedDict()
    p4["w"] = torch.randn(2, 3).half()
    p4["t"] = torch.randn(2, 3).t()
    p4["p"] = torch.nn.Parameter(torch.randn(3))
    torch.save(p4, os.path.join(OUT, "proto4.bin"), pickle_protocol=4)
    save_expected("proto4", p4)

    # The same archive with deflate-compressed records.
    src = os.path.join(OUT, "tensors.bin")
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(
        os.path.join(OUT, "tensors_deflate.bin"), "w", zipfile.ZIP_DEFLATED
    ) as zout:
        for info in zin.infolist():
            zout.writestr(fixed(info.filename, zipfile.ZIP_DEFLATED), zin.read(info.filename))

    m = torch.nn.Sequential(
        torch.nn.Conv2d(2, 4, 3),
        torch.nn.GroupNorm(2, 4),
        torch.nn.BatchNorm2d(4),
        torch.nn.Linear(4, 3).half(),
    )
    msd = m.state_dict()
    torch.save(msd, os.path.join(OUT, "module.bin"))
    save_expected("module", msd)

    inner = collections.OrderedDict()
    inner["model.diffusion_model.input_blocks.0.0.weight"] = torch.randn(4, 4, 3, 3).half()
    inner["first_stage_model.quant_conv.bias"] = torch.randn(8)
    inner["cond_stage_model.transformer.text_model.embeddings.position_ids"] = torch.arange(77).unsqueeze(0)
    ckpt = {
        "epoch": 1,
        "global_step": 3,
        "pytorch-lightning_version": "1.4.2",
        "state_dict": inner,
        "callbacks": {FakeCheckpointCallback: {"best_model_score": None, "dirpath": "/tmp/ckpts"}},
        "hparams": {"lr": 1e-4, "flags": [True, None, 2**70], "obj": FakeCheckpointCallback()},
        "optimizer_states": [{"state": {0: {"exp_avg": torch.zeros(2, 2)}}, "param_groups": [{"lr": 0.5}]}],
    }
    torch.save(ckpt, os.path.join(OUT, "sd.ckpt"))
    save_expected("sd", inner)

    torch.save({"weight": torch.randn(2), "evil": Evil()}, os.path.join(OUT, "evil_entry.bin"))
    torch.save({"state_dict": {"weight": torch.randn(2)}, "callbacks": Evil()}, os.path.join(OUT, "evil_callbacks.ckpt"))
    torch.save(Evil(), os.path.join(OUT, "evil_top.bin"))
    # A hand-written pickle: protocol 2, GLOBAL 'os system', ('touch ...',), REDUCE, STOP.
    arg = ("touch " + MARKER).encode()
    pkl = b"\x80\x02cos\nsystem\nq\x00X" + len(arg).to_bytes(4, "little") + arg + b"\x85q\x01Rq\x02."
    with zipfile.ZipFile(os.path.join(OUT, "evil_os.bin"), "w", zipfile.ZIP_STORED) as z:
        z.writestr(fixed("archive/data.pkl"), pkl)
        z.writestr(fixed("archive/version"), "3\n")

    torch.save({"w": np.zeros(3, dtype=np.float32)}, os.path.join(OUT, "numpy_entry.bin"))
    torch.save({"w": torch.randn(2).as_subclass(MyTensor)}, os.path.join(OUT, "subclass.bin"))

    # Check that torch reads back what we wrote (loads only our own, safe files).
    for name in ["tensors.bin", "tensors_deflate.bin", "module.bin"]:
        back = torch.load(os.path.join(OUT, name))
        ref = sd if name.startswith("tensors") else msd
        for k in ref:
            assert torch.equal(back[k], ref[k]), (name, k)
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, into {os.path.normpath(OUT)}")


if __name__ == "__main__":
    main()
