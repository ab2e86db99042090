"""PyTorch reference for bench/compare.ts: the book's GPTModel (chapter 4), on the CPU by default.

  python3 bench/torch_reference.py seed    # the notebook's seed example, printed like mod.ts
  python3 bench/torch_reference.py bench [REPS DECODE PREFILL]   # timings as one JSON line

Run with OMP_NUM_THREADS set to the machine's cores (compare.ts does). TORCH_DEVICE=cuda runs the
model on an NVIDIA GPU instead (the weights are drawn on the CPU first, so they are the same).
"""
import json
import os
import statistics
import sys
import time

import torch
import torch.nn as nn

GPT_CONFIG_124M = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
                   "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False}


class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(torch.sqrt(torch.tensor(2.0 / torch.pi)) * (x + 0.044715 * torch.pow(x, 3))))


class FeedForward(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(cfg["emb_dim"], 4 * cfg["emb_dim"]), GELU(),
                                    nn.Linear(4 * cfg["emb_dim"], cfg["emb_dim"]))

    def forward(self, x):
        return self.layers(x)


class MultiHeadAttention(nn.Module):
    """The book's causal attention, plus an optional key/value cache (cache=[k, v] or None)."""

    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x, cache=None):
        b, n, _ = x.shape
        shape = (b, n, self.num_heads, self.head_dim)
        q = self.W_query(x).view(shape).transpose(1, 2)
        k = self.W_key(x).view(shape).transpose(1, 2)
        v = self.W_value(x).view(shape).transpose(1, 2)
        if cache is not None:
            if cache[0] is not None:
                k = torch.cat([cache[0], k], dim=2)
                v = torch.cat([cache[1], v], dim=2)
            cache[0], cache[1] = k, v
        L = k.shape[2]
        scores = q @ k.transpose(2, 3)
        mask = self.mask.bool()[L - n:L, :L]
        scores.masked_fill_(mask, -torch.inf)
        w = self.dropout(torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1))
        ctx = (w @ v).transpose(1, 2).contiguous().view(b, n, self.d_out)
        return self.out_proj(ctx)


class TransformerBlock(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.att = MultiHeadAttention(cfg["emb_dim"], cfg["emb_dim"], cfg["context_length"], cfg["drop_rate"],
                                      cfg["n_heads"], cfg["qkv_bias"])
        self.ff = FeedForward(cfg)
        self.norm1 = LayerNorm(cfg["emb_dim"])
        self.norm2 = LayerNorm(cfg["emb_dim"])
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x, cache=None):
        x = x + self.drop_shortcut(self.att(self.norm1(x), cache))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.ModuleList([TransformerBlock(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)

    def forward(self, idx, caches=None, pos0=0):
        n = idx.shape[1]
        x = self.drop_emb(self.tok_emb(idx) + self.pos_emb(torch.arange(pos0, pos0 + n, device=idx.device)))
        for i, blk in enumerate(self.trf_blocks):
            x = blk(x, None if caches is None else caches[i])
        return self.out_head(self.final_norm(x))


def generate_text_simple(model, idx, max_new_tokens, context_size):
    for _ in range(max_new_tokens):
        idx_cond = idx[:, -context_size:]
        with torch.no_grad():
            logits = model(idx_cond)
        idx_next = torch.argmax(torch.softmax(logits[:, -1, :], dim=-1), dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


def generate_cached(model, idx, max_new_tokens):
    """Greedy decoding with a key/value cache (the prompt plus new tokens stay within the context)."""
    caches = [[None, None] for _ in model.trf_blocks]
    with torch.no_grad():
        logits = model(idx, caches, 0)
        for s in range(max_new_tokens):
            nxt = torch.argmax(logits[:, -1, :], dim=-1, keepdim=True)
            idx = torch.cat((idx, nxt), dim=1)
            if s + 1 < max_new_tokens:
                logits = model(nxt, caches, idx.shape[1] - 1)
    return idx



def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "bench"
    torch.set_grad_enabled(False)
    torch.manual_seed(123)
    device = os.environ.get("TORCH_DEVICE", "cpu")
    model = GPTModel(GPT_CONFIG_124M).eval().to(device)
    prompt = torch.tensor([[15496, 11, 314, 716]], device=device)
    if mode == "seed":
        out = generate_text_simple(model, prompt, 6, GPT_CONFIG_124M["context_length"])
        print("Output:", out.tolist())
        print("Output length:", len(out[0]))
        return
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    n_decode = int(sys.argv[3]) if len(sys.argv) > 3 else 128
    n_prefill = int(sys.argv[4]) if len(sys.argv) > 4 else 512
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "device": device}
    if device != "cpu":
        res["device"] = torch.cuda.get_device_name()

    def median_time(fn, n):
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            fn()
            if device != "cpu":
                torch.cuda.synchronize()
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    out = generate_text_simple(model, prompt, 6, 1024)
    generate_cached(model, prompt, 8)  # warm-up (on a GPU: kernel loading)
    res["seed_ids"] = out[0].tolist()
    res["simple_tok_s"] = 6 / median_time(lambda: generate_text_simple(model, prompt, 6, 1024), reps)
    res["decode_tok_s"] = n_decode / median_time(lambda: generate_cached(model, prompt, n_decode), reps)
    long = torch.tensor([[(i * 7919) % 50257 for i in range(n_prefill)]], device=device)
    res["prefill_tok_s"] = n_prefill / median_time(lambda: model(long), reps)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
