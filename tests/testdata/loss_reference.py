"""Writes loss.json: the book's loss (chapter 5's calc_loss_batch) computed by PyTorch.

  python3 tests/testdata/loss_reference.py

For each case: the model, the input and target ids, the mean loss
`torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())` and the per-position
losses (`reduction="none"`). Models: tiny_book.safetensors (the book's state_dict names) and the
seed model, `torch.manual_seed(123); GPTModel(GPT_CONFIG_124M)`. Uses bench/torch_reference.py's
GPTModel (the book's, chapter 4).
"""
import json
import os
import struct
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from torch_reference import GPT_CONFIG_124M, GPTModel  # noqa: E402


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, info in header.items():
        assert info["dtype"] == "F32"
        a, b = info["data_offsets"]
        tensors[name] = torch.frombuffer(bytearray(data[a:b]), dtype=torch.float32).reshape(info["shape"])
    return meta, tensors


def case(name, model, inputs, targets):
    with torch.no_grad():
        logits = model(torch.tensor(inputs))
        t = torch.tensor(targets)
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), t.flatten())
        each = torch.nn.functional.cross_entropy(logits.flatten(0, 1), t.flatten(), reduction="none")
    return {"model": name, "inputs": inputs, "targets": targets, "loss": loss.item(), "token_losses": each.tolist()}


def main():
    cases = []
    meta, tensors = read_safetensors(os.path.join(HERE, "tiny_book.safetensors"))
    cfg = json.loads(meta["config"])
    torch.manual_seed(0)
    tiny = GPTModel(cfg)
    tiny.load_state_dict(tensors, strict=False)
    tiny.eval()
    g = torch.Generator().manual_seed(5)
    for batch, tokens in [(1, 1), (2, 7), (3, 16)]:
        ids = torch.randint(0, cfg["vocab_size"], (batch, tokens + 1), generator=g).tolist()
        cases.append(case("tiny_book", tiny, [r[:-1] for r in ids], [r[1:] for r in ids]))
    torch.manual_seed(123)
    seed = GPTModel(GPT_CONFIG_124M)
    seed.eval()
    # "Every effort moves you forward, and every step counts." in GPT-2's tokens
    text = [6109, 3626, 6100, 345, 2651, 11, 290, 790, 2239, 9853, 13]
    cases.append(case("gpt124m_seed123", seed, [text[:-1]], [text[1:]]))
    with open(os.path.join(HERE, "loss.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": cases}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
