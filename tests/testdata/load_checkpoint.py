"""Loads a checkpoint written by model.save() into the book's GPTModel and prints its logits.

  python3 tests/testdata/load_checkpoint.py MODEL.safetensors 1,2,3   # one JSON line: the logits

The configuration comes from the file's __metadata__.config; the tensors go in with
load_state_dict(strict=True), so a missing, unexpected or misshapen name fails. tests/train_cli_test.ts
runs it where PyTorch is installed and compares the logits with GPTModel.load's.
"""
import json
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from torch_reference import GPTModel  # noqa: E402


def main():
    path, ids = sys.argv[1], [int(i) for i in sys.argv[2].split(",")]
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    cfg = json.loads(header.pop("__metadata__")["config"])
    state = {}
    for name, info in header.items():
        assert info["dtype"] == "F32", name
        a, b = info["data_offsets"]
        state[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"])
    model = GPTModel(cfg)
    model.load_state_dict(state, strict=True)
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids]))
    print(json.dumps({"shape": list(logits.shape), "logits": logits.flatten().tolist()}))


if __name__ == "__main__":
    main()
