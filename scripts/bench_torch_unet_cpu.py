"""Times PyTorch CPU on the SD1.5 U-Net step (scripts/torch_unet_sd15.py) in F32
and in BF16 (autocast, or where torch 1.13's CPU autocast fails on
group_norm, the model and inputs converted to BF16), as the yardstick of roentgo's BenchmarkSD15Compute.

    OMP_WAIT_POLICY=PASSIVE python3 scripts/bench_torch_unet_cpu.py [size] [steps]

Batch 2 (classifier-free guidance), size x size latents (default 64: 512x512
images), 77 text tokens, random F32 weights, torch.set_num_threads(nproc). One
warm-up call, then `steps` timed calls (default 2); prints seconds per step and
the process CPU seconds per step.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_unet_sd15 import UNetSD15  # noqa: E402


def main():
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 64
    steps = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    print("torch %s, %d threads, mkldnn bf16 %s" % (torch.__version__, torch.get_num_threads(),
          getattr(torch.backends.mkldnn, "is_available", lambda: "?")()))
    m = UNetSD15().eval()
    x = torch.randn(2, 4, size, size)
    ctx = torch.randn(2, 77, 768)
    t = torch.tensor(500.0)
    def run(name, model, args, autocast):
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            model(*args)
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(steps):
                model(*args)
            w, c = (time.perf_counter() - w0) / steps, (time.process_time() - c0) / steps
        print("torch U-Net SD1.5 %dx%d batch 2 %s: %.3f s/step, %.2f cpu-s/step" % (size, size, name, w, c))
        sys.stdout.flush()

    run("F32", m, (x, t, ctx), False)
    try:
        run("BF16 autocast", m, (x, t, ctx), True)
    except RuntimeError as e:
        # torch 1.13's CPU autocast leaves group_norm's F32 weights against a
        # BF16 input and fails; the whole model in BF16 is its other BF16 path.
        print("BF16 autocast failed (%s); timing the model converted to BF16 instead" % str(e).splitlines()[0])
        mb = UNetSD15().eval()
        mb.load_state_dict(m.state_dict())
        mb = mb.to(torch.bfloat16)
        run("BF16 weights and activations", mb, (x.bfloat16(), t.bfloat16(), ctx.bfloat16()), False)

if __name__ == "__main__":
    main()
