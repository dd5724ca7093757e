"""PyTorch CPU yardstick for roentgo's feature extractors (metrics/features):
the FID Inception-v3 at 299x299 and the XRV DenseNet-121 at 224x224, full size,
random weights, batch 8, in eval mode under no_grad, with every core
(torch.set_num_threads(nproc)); the same models as scripts/golden_features.py
(plain PyTorch, written from the papers and the published layouts).

    OMP_WAIT_POLICY=PASSIVE python3 scripts/bench_torch_features.py [reps] [batch]

Prints images/s per model after one warm-up batch; compare with
`go test ./metrics/features -run '^$' -bench Features -benchtime 3x` run in the same session.
"""
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 8
sys.argv = sys.argv[:1]  # golden_features reads its output folder from argv[1]
import golden_features as gf  # noqa: E402


def bench(name, model, x):
    with torch.no_grad():
        model.layers(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            model.layers(x)
        dt = time.perf_counter() - t0
    print("torch %s: batch %d, %d reps: %.2f images/s" % (name, x.shape[0], reps, reps * x.shape[0] / dt))
    sys.stdout.flush()


def main():
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)
    print("torch %s, %d threads" % (torch.__version__, torch.get_num_threads()))
    inc = gf.FIDInception(1, 1008).eval()
    bench("FID Inception-v3 299x299", inc, torch.rand(batch, 3, 299, 299))
    dn = gf.DenseNet(32, (6, 12, 24, 16), 64, 4, 18).eval()
    bench("XRV DenseNet-121 224x224", dn, torch.rand(batch, 1, 224, 224) * 2048 - 1024)


if __name__ == "__main__":
    main()
