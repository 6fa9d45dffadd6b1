"""A tiny character-level transformer (GPT-style, pre-LayerNorm), shared by train.py and
generate.py, plus the helpers both need to read and write a model directory."""

import json
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F

# The hyperparameters that define the network's shape; config.json holds exactly these (plus
# vocab_size), so generate.py can rebuild the module before loading the state_dict.
SHAPE_KEYS = ("d_model", "layers", "heads", "context")


class Block(nn.Module):
    def __init__(self, d_model, heads):
        super().__init__()
        if d_model % heads:
            raise ValueError(f"d_model {d_model} is not a multiple of heads {heads}")
        self.heads = heads
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(
            nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x, mask):
        b, t, c = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(c, dim=2)
        # (b, t, c) -> (b, heads, t, c / heads)
        q, k, v = (y.view(b, t, self.heads, c // self.heads).transpose(1, 2) for y in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(c // self.heads)
        att = att.masked_fill(mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, c)
        x = x + self.proj(y)
        return x + self.mlp(self.ln2(x))


class CharTransformer(nn.Module):
    def __init__(self, vocab_size, d_model, layers, heads, context):
        super().__init__()
        self.context = context
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        self.blocks = nn.ModuleList(Block(d_model, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        # True above the diagonal: position i may not attend to j > i. A buffer so that it
        # follows .to(device), but not persistent: it is not part of the saved weights.
        self.register_buffer(
            "mask", torch.triu(torch.ones(context, context, dtype=torch.bool), diagonal=1),
            persistent=False)
        self.apply(self._init)

    @staticmethod
    def _init(module):
        # GPT-2's initialisation. PyTorch's default N(0, 1) embeddings are large next to
        # the linear layers' outputs and make a model this small learn noticeably slower.
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx):
        t = idx.shape[1]
        if t > self.context:
            raise ValueError(f"sequence of {t} is longer than the context {self.context}")
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x, self.mask)
        return self.head(self.ln(x))

    @torch.no_grad()
    def greedy(self, idx, max_new, stop=None):
        """Appends up to max_new argmax tokens to idx (shape (1, t)); stops after a token in
        stop. Returns the new tokens only."""
        out = []
        for _ in range(max_new):
            logits = self(idx[:, -self.context:])
            nxt = int(logits[0, -1].argmax())
            out.append(nxt)
            if stop is not None and nxt in stop:
                break
            idx = torch.cat([idx, torch.tensor([[nxt]], device=idx.device)], dim=1)
        return out


def build(config):
    return CharTransformer(config["vocab_size"], *(config[k] for k in SHAPE_KEYS))


def save_model_dir(path, model, config, vocab):
    """model.pt (the state_dict), config.json (the shape) and vocab.json (the characters, in
    token order)."""
    torch.save(model.state_dict(), os.path.join(path, "model.pt"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    with open(os.path.join(path, "vocab.json"), "w") as f:
        json.dump(vocab, f, ensure_ascii=False)
        f.write("\n")


def load_model_dir(path, device):
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(path, "vocab.json")) as f:
        vocab = json.load(f)
    model = build(config)
    model.load_state_dict(torch.load(os.path.join(path, "model.pt"), map_location=device))
    return model.to(device).eval(), config, vocab


def pick_device():
    """cuda when a GPU is visible (an Assay job gets one with runs_on: {gpus: 1}), else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda"), torch.cuda.get_device_name(0)
    return torch.device("cpu"), "cpu"
