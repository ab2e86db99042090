"""This machine's memory bandwidth, as a yardstick for bench/profile.ts's GB/s of weights.

    OMP_NUM_THREADS=2 python3 bench/bandwidth.py

Prints the best of 5 for a NumPy sum over 512 MB of float32 (one stream, read only) and, when
PyTorch is installed, for its matrix-vector product with GPT-2's output head (50257 x 768 float32).
"""
import time

import numpy as np


def best(fn, reps=5):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


a = np.ones(2**27, dtype=np.float32)
print(f"numpy sum, 512 MB float32: {a.nbytes / best(a.sum) / 1e9:.1f} GB/s")
try:
    import torch
except ImportError:
    print("PyTorch not installed: no matrix-vector figure")
else:
    w = torch.randn(50257, 768)
    x = torch.randn(1, 768)
    print(f"torch {torch.__version__} x @ W.T, 50257 x 768 float32, {torch.get_num_threads()} threads: "
          f"{w.numel() * 4 / best(lambda: x @ w.T) / 1e9:.1f} GB/s")
