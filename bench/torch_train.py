"""PyTorch's side of bench/train_compare.ts: chapter 5's training step and a prompt's forward pass,
timed on the CPU (or TORCH_DEVICE=cuda), as one JSON line.

  python3 bench/torch_train.py train BATCH CONTEXT STEPS   # zero_grad, loss, backward, AdamW step
  python3 bench/torch_train.py prefill TOKENS REPS         # model(idx) under no_grad, eval mode

The model is the book's GPTModel (bench/torch_reference.py) with GPT-2 124M's shape, seed 123,
drop_rate 0.1 for training (the book's), AdamW(lr=4e-4, weight_decay=0.1). The first step (or
pass) warms up and is not counted.
"""
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import GPT_CONFIG_124M, GPTModel  # noqa: E402


def main():
    mode = sys.argv[1]
    device = os.environ.get("TORCH_DEVICE", "cpu")
    sync = torch.cuda.synchronize if device != "cpu" else (lambda: None)
    torch.manual_seed(123)
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(),
           "device": torch.cuda.get_device_name() if device != "cpu" else "cpu"}
    if mode == "train":
        batch, ctx, steps = (int(a) for a in sys.argv[2:5])
        model = GPTModel({**GPT_CONFIG_124M, "context_length": ctx}).to(device)
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
        x = torch.tensor([[(i * 7919 + b * 104729) % 50257 for i in range(ctx)] for b in range(batch)], device=device)
        y = torch.roll(x, -1, dims=1)
        times = []
        for s in range(steps + 1):
            t = time.perf_counter()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x).flatten(0, 1), y.flatten())
            loss.backward()
            opt.step()
            loss.item()
            sync()
            if s > 0:
                times.append(time.perf_counter() - t)
        res["tok_s"] = [batch * ctx / t for t in times]
    else:
        tokens, reps = int(sys.argv[2]), int(sys.argv[3])
        model = GPTModel(GPT_CONFIG_124M).eval().to(device)
        idx = torch.tensor([[(i * 7919) % 50257 for i in range(tokens)]], device=device)
        times = []
        with torch.no_grad():
            for r in range(reps + 1):
                t = time.perf_counter()
                model(idx)
                sync()
                if r > 0:
                    times.append(time.perf_counter() - t)
        res["tok_s"] = [tokens / t for t in times]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
