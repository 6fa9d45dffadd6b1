"""Trains a tiny character-level transformer on data/corpus.txt: the user command of an Assay
`train:` step. What it reads and writes (see README.md):

  ASSAY_PARAMS          JSON object of hyperparameters; missing keys take DEFAULTS below
  ASSAY_MODEL_DIR       where the final model goes: model.pt, config.json, vocab.json
  ASSAY_CHECKPOINT_DIR  checkpoints step-N.pt, written atomically, the newest 2 kept
  ASSAY_METRICS_FILE    one JSON object per line and step: {"step": N, "loss": ..., "lr": ...}
  ASSAY_RESUME_STEP     set when the agent restored step-N: continue from step N+1
  ASSAY_TRAIN_SLEEP_MS  optional pause after each step (tests use it to kill a run midway)

Run by hand without them, it writes model/, checkpoints/ and metrics.jsonl in the current
directory.
"""

import json
import math
import os
import re
import sys
import time

import torch
import torch.nn.functional as F

from model import SHAPE_KEYS, build, pick_device, save_model_dir

HERE = os.path.dirname(os.path.abspath(__file__))

# Sized to train in under a minute on two busy CPU cores with Debian's python3-torch, whose
# reference BLAS does a few GFLOP/s (see README.md); the same as .assay.yml's params.
DEFAULTS = {
    "steps": 800,
    "lr": 0.01,
    "d_model": 32,
    "layers": 2,
    "heads": 4,
    "context": 32,
    "batch": 32,
    "seed": 0,
    "checkpoint_every": 100,
    "warmup": 20,          # linear warmup steps, then cosine decay to lr * min_lr_ratio
    "min_lr_ratio": 0.1,
    "weight_decay": 0.01,
    "data": os.path.join(HERE, "data", "corpus.txt"),  # a relative path is from the cwd
}

CHECKPOINT_RE = re.compile(r"^step-(\d+)(\.pt)?$")
KEEP_CHECKPOINTS = 2


def log(msg):
    print(msg, flush=True)


def fail(msg):
    print(f"train.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def read_params():
    raw = os.environ.get("ASSAY_PARAMS", "").strip() or "{}"
    try:
        given = json.loads(raw)
    except json.JSONDecodeError as e:
        fail(f"ASSAY_PARAMS is not JSON: {e}")
    if not isinstance(given, dict):
        fail(f"ASSAY_PARAMS must be a JSON object, got {raw!r}")
    unknown = sorted(set(given) - set(DEFAULTS))
    if unknown:
        # A typo ("stpes") would otherwise silently train with the default.
        fail(f"unknown parameter(s) {', '.join(unknown)} (known: {', '.join(DEFAULTS)})")
    params = dict(DEFAULTS)
    for key, value in given.items():
        want = type(DEFAULTS[key])
        # JSON has one number type: accept 300.0 for an int key, 3 for a float key, and
        # refuse booleans (True is an int in Python) and fractional ints.
        if isinstance(value, bool) or (want is str) != isinstance(value, str) or (
                want is int and not float(value).is_integer()):
            fail(f"parameter {key} must be {want.__name__}, got {value!r}")
        params[key] = want(value)
    for key in ("steps", "d_model", "layers", "heads", "context", "batch", "checkpoint_every"):
        if params[key] < 1:
            fail(f"parameter {key} must be at least 1, got {params[key]}")
    return params


def env_path(name, default, make):
    path = os.environ.get(name) or default
    if make == "dir":
        os.makedirs(path, exist_ok=True)
    elif make == "file":
        open(path, "a").close()
    return path


def lr_at(step, p):
    """Learning rate of step (1-based): linear warmup, then cosine down to min_lr_ratio * lr.
    A pure function of the step, so a resumed run needs no scheduler state."""
    if step <= p["warmup"]:
        return p["lr"] * step / p["warmup"]
    progress = (step - p["warmup"]) / max(1, p["steps"] - p["warmup"])
    ratio = p["min_lr_ratio"] + (1 - p["min_lr_ratio"]) * 0.5 * (1 + math.cos(math.pi * progress))
    return p["lr"] * ratio


def checkpoints(ckpt_dir):
    """{N: name} of the step-N entries in ckpt_dir."""
    found = {}
    for name in os.listdir(ckpt_dir):
        m = CHECKPOINT_RE.match(name)
        if m:
            found[int(m.group(1))] = name
    return found


def save_checkpoint(ckpt_dir, step, state):
    # Written under a name that is not step-N, then renamed: the agent (which uploads
    # step-N entries as they appear) and a resumed run never see half a file.
    final = os.path.join(ckpt_dir, f"step-{step}.pt")
    tmp = os.path.join(ckpt_dir, f".tmp-step-{step}.pt")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, final)
    for n, name in sorted(checkpoints(ckpt_dir).items())[:-KEEP_CHECKPOINTS]:
        path = os.path.join(ckpt_dir, name)
        if os.path.isdir(path):
            continue  # not one of ours (we write files); leave it alone
        os.remove(path)
    return final


def load_checkpoint(ckpt_dir, step):
    # We write step-N.pt, but accept step-N as a file or a directory holding checkpoint.pt,
    # whichever the agent restored.
    for name in (f"step-{step}.pt", f"step-{step}", os.path.join(f"step-{step}", "checkpoint.pt")):
        path = os.path.join(ckpt_dir, name)
        if os.path.isfile(path):
            return path, torch.load(path, map_location="cpu")
    fail(f"ASSAY_RESUME_STEP={step} but {ckpt_dir} has no step-{step}.pt "
         f"(it has: {', '.join(sorted(os.listdir(ckpt_dir))) or 'nothing'})")


@torch.no_grad()
def corpus_loss(model, data, context, batch):
    """Mean loss over every non-overlapping window of the corpus: unlike a batch's loss it has
    no sampling noise, so it is comparable across steps and runs."""
    n = (len(data) - 1) // context
    x = data[: n * context].view(n, context)
    y = data[1: n * context + 1].view(n, context)
    total = 0.0
    for i in range(0, n, batch):
        logits = model(x[i:i + batch])
        total += F.cross_entropy(logits.flatten(0, 1), y[i:i + batch].flatten(),
                                 reduction="sum").item()
    return total / (n * context)


def main():
    t0 = time.monotonic()
    p = read_params()
    model_dir = env_path("ASSAY_MODEL_DIR", "model", "dir")
    ckpt_dir = env_path("ASSAY_CHECKPOINT_DIR", "checkpoints", "dir")
    metrics_path = env_path("ASSAY_METRICS_FILE", "metrics.jsonl", "file")
    sleep_s = int(os.environ.get("ASSAY_TRAIN_SLEEP_MS", "0") or 0) / 1000
    resume = os.environ.get("ASSAY_RESUME_STEP", "").strip()

    device, device_name = pick_device()
    log(f"device: {device.type} ({device_name})")
    if device.type == "cpu":
        # Bit-for-bit reproducible on CPU given the seed (CUDA kernels need not be).
        torch.use_deterministic_algorithms(True)

    with open(p["data"], encoding="utf-8") as f:
        text = f.read()
    vocab = sorted(set(text))
    stoi = {c: i for i, c in enumerate(vocab)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
    if len(data) < p["context"] + 2:
        fail(f"{p['data']}: {len(data)} characters, fewer than context + 2")
    config = {"vocab_size": len(vocab), **{k: p[k] for k in SHAPE_KEYS}}
    log(f"data: {p['data']}, {len(text)} characters, vocab {len(vocab)}")
    log("params: " + json.dumps(p, sort_keys=True))

    torch.manual_seed(p["seed"])
    model = build(config).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=p["lr"], weight_decay=p["weight_decay"])
    # Batches are drawn from a generator of their own, saved in every checkpoint, so a
    # resumed run draws the same batches the uninterrupted run would have.
    sampler = torch.Generator().manual_seed(p["seed"])
    log(f"model: {sum(t.numel() for t in model.parameters())} parameters")

    start = 1
    if resume:
        try:
            n = int(resume)
        except ValueError:
            fail(f"ASSAY_RESUME_STEP must be a step number, got {resume!r}")
        path, ck = load_checkpoint(ckpt_dir, n)
        if ck["config"] != config or ck["vocab"] != vocab:
            fail(f"{path} was trained with model {ck['config']} on another vocabulary or "
                 f"shape than this run's {config}; change the parameters back or start over")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        sampler.set_state(ck["sampler_rng"])
        torch.set_rng_state(ck["torch_rng"])
        if device.type == "cuda" and ck.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(ck["cuda_rng"])
        start = ck["step"] + 1
        log(f"resumed from {path}: continuing at step {start}")

    # A run killed between writing a temporary checkpoint and renaming it leaves one behind.
    for name in os.listdir(ckpt_dir):
        if name.startswith(".tmp-step-"):
            os.remove(os.path.join(ckpt_dir, name))

    data_dev = data.to(device)
    ctx, bsz = p["context"], p["batch"]
    recent = []  # the last losses, for the final line
    with open(metrics_path, "a") as metrics:
        for step in range(start, p["steps"] + 1):
            lr = lr_at(step, p)
            for group in opt.param_groups:
                group["lr"] = lr
            starts = torch.randint(len(data) - ctx - 1, (bsz,), generator=sampler)
            offsets = starts[:, None] + torch.arange(ctx + 1)
            batch = data[offsets].to(device)
            x, y = batch[:, :-1], batch[:, 1:]
            loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()

            loss_v = loss.item()
            recent = (recent + [loss_v])[-10:]
            row = {"step": step, "loss": round(loss_v, 6), "lr": round(lr, 8)}
            is_ckpt = step % p["checkpoint_every"] == 0 or step == p["steps"]
            if is_ckpt:
                row["corpus_loss"] = round(corpus_loss(model, data_dev, ctx, bsz), 6)
            metrics.write(json.dumps(row) + "\n")
            metrics.flush()

            if is_ckpt:
                state = {
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "sampler_rng": sampler.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state() if device.type == "cuda" else None,
                    "config": config,
                    "vocab": vocab,
                    "params": p,
                }
                path = save_checkpoint(ckpt_dir, step, state)
                log(f"checkpoint step {step}: loss {loss_v:.4f}, corpus loss "
                    f"{row['corpus_loss']:.4f}, lr {lr:.5f} -> {path}")
            if sleep_s:
                time.sleep(sleep_s)

    final = corpus_loss(model, data_dev, ctx, bsz)
    save_model_dir(model_dir, model, {**config, "trained_steps": p["steps"],
                                      "corpus_loss": round(final, 6)}, vocab)
    last = f", mean of last {len(recent)} batch losses {sum(recent) / len(recent):.4f}" \
        if recent else ""
    log(f"done: step {p['steps']}, final loss {final:.4f} (corpus){last}, "
        f"{time.monotonic() - t0:.1f}s; model in {model_dir}")


if __name__ == "__main__":
    main()
