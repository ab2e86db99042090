"""Writes train.json: chapter 5's training loop (train_model_simple) run by PyTorch on the CPU.

  deno run -A tests/testdata/train_ids.ts     # the texts in GPT-2's tokens (train_ids.json)
  python3 tests/testdata/train_reference.py   # PyTorch 1.13 (Debian's python3-torch)

For each case of train_cases.json, as the book's main() does: torch.manual_seed(123), GPTModel(cfg),
torch.optim.AdamW, create_dataloader_v1 for the training text (shuffle as given, drop_last=True) and
the validation text (shuffle=False, drop_last=False), then train_model_simple. Recorded: every step's
loss, the dataset indices of every training batch, each evaluation (step, train loss, val loss, tokens
seen), the first step's gradients (per parameter: L2 norm, sum and 64 values at i * numel // 64 of the
flattened tensor), the ids generate_and_print_sample makes after each epoch, and a few values of the
trained parameters. A case with "accumulate" sums the gradients of that many batches per optimizer
step (zero_grad before the first, step after the last; a batch left over at the end of an epoch is
discarded); "clip" clips their global norm first (appendix D's clip_grad_norm_). The tokenizer's work
is done by train_ids.ts (tiktoken is not installed here): GPTDatasetV1 below takes the ids.
"""
import json
import math
import os
import sys

import torch
from torch.utils.data import DataLoader, Dataset

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "bench"))
from torch_reference import GPTModel, generate_text_simple  # noqa: E402


class GPTDatasetV1(Dataset):
    """The book's dataset (chapter 2), from token ids; records which samples are read."""

    def __init__(self, token_ids, max_length, stride, log):
        self.input_ids, self.target_ids, self.log = [], [], log
        for i in range(0, len(token_ids) - max_length, stride):
            self.input_ids.append(torch.tensor(token_ids[i:i + max_length]))
            self.target_ids.append(torch.tensor(token_ids[i + 1:i + max_length + 1]))

    def __len__(self):
        return len(self.input_ids)

    def __getitem__(self, idx):
        self.log.append(idx)
        return self.input_ids[idx], self.target_ids[idx]


def create_dataloader_v1(ids, batch_size, max_length, stride, shuffle, drop_last, log):
    dataset = GPTDatasetV1(ids, max_length, stride, log)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, num_workers=0)


def calc_loss_batch(input_batch, target_batch, model):
    logits = model(input_batch)
    return torch.nn.functional.cross_entropy(logits.flatten(0, 1), target_batch.flatten())


def calc_loss_loader(data_loader, model, num_batches=None):
    total_loss = 0.
    if len(data_loader) == 0:
        return float("nan")
    elif num_batches is None:
        num_batches = len(data_loader)
    else:
        num_batches = min(num_batches, len(data_loader))
    for i, (input_batch, target_batch) in enumerate(data_loader):
        if i < num_batches:
            total_loss += calc_loss_batch(input_batch, target_batch, model).item()
        else:
            break
    return total_loss / num_batches


def evaluate_model(model, train_loader, val_loader, eval_iter):
    model.eval()
    with torch.no_grad():
        train_loss = calc_loss_loader(train_loader, model, num_batches=eval_iter)
        val_loss = calc_loss_loader(val_loader, model, num_batches=eval_iter)
    model.train()
    return train_loss, val_loss


def sample_values(t):
    flat = t.detach().flatten()
    n = flat.numel()
    return [flat[i * n // 64].item() for i in range(64)]


def grad_record(model):
    return {name: {"norm": p.grad.norm().item(), "sum": p.grad.sum().item(), "values": sample_values(p.grad)}
            for name, p in model.named_parameters()}


def run_case(case, ids, start):
    cfg = case["config"]
    torch.manual_seed(123)
    model = GPTModel(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=case["lr"], weight_decay=case["weightDecay"])
    log = []
    ctx = cfg["context_length"]
    train_loader = create_dataloader_v1(ids["train"], case["batchSize"], ctx, ctx, case["shuffle"], True, log)
    val_loader = create_dataloader_v1(ids["val"], case["batchSize"], ctx, ctx, False, False, [])
    accumulate, clip = case.get("accumulate", 1), case.get("clip")
    out = {"name": case["name"], "losses": [], "batches": [], "evals": [], "samples": []}
    tokens_seen, global_step = 0, -1
    for epoch in range(case["numEpochs"]):
        model.train()
        for i, (input_batch, target_batch) in enumerate(train_loader):
            out["batches"].append(log[-len(input_batch):])
            if i % accumulate == 0:
                optimizer.zero_grad()
            loss = calc_loss_batch(input_batch, target_batch, model)
            loss.backward()
            out["losses"].append(loss.item())
            tokens_seen += input_batch.numel()
            if (i + 1) % accumulate != 0:
                continue
            if "gradients" not in out:
                out["gradients"] = grad_record(model)
            if clip is not None:
                out.setdefault("gradNorms", []).append(
                    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=clip).item())
            optimizer.step()
            global_step += 1
            if global_step % case["evalFreq"] == 0:
                train_loss, val_loss = evaluate_model(model, train_loader, val_loader, case["evalIter"])
                out["evals"].append({"step": global_step, "epoch": epoch + 1, "train": train_loss, "val": val_loss,
                                     "tokensSeen": tokens_seen})
                print(f"{case['name']} Ep {epoch+1} (Step {global_step:06d}): "
                      f"Train loss {train_loss:.3f}, Val loss {val_loss:.3f}")
        model.eval()
        idx = generate_text_simple(model, torch.tensor([start]), case["maxNewTokens"], ctx)
        out["samples"].append(idx[0].tolist())
        model.train()
    out["params"] = {name: {"sum": p.detach().sum().item(), "values": sample_values(p)}
                     for name, p in model.named_parameters()}
    return out


def main():
    cases = json.load(open(os.path.join(HERE, "train_cases.json")))["cases"]
    ids = json.load(open(os.path.join(HERE, "train_ids.json")))
    by_name = {c["name"]: c for c in ids["cases"]}
    only = sys.argv[1:]
    results = [run_case(c, by_name[c["name"]], ids["start"]) for c in cases if not only or c["name"] in only]
    with open(os.path.join(HERE, "train.json"), "w") as f:
        json.dump({"torch": torch.__version__, "cases": results}, f)
        f.write("\n")


if __name__ == "__main__":
    main()
