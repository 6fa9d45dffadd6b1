"""The model command of an Assay `eval:` step (docs/evals.md, "The model under test"): reads
one JSON request per line on stdin, {"id": ..., "prompt": "...", ...}, and answers each with
{"id": ..., "output": "...", "usage": {...}} on stdout (or {"id": ..., "error": "..."}),
continuing the prompt greedily, one character at a time, until a newline or --max-chars.
Exits when stdin closes.

  python3 generate.py [MODEL_DIR] [--max-chars N]

MODEL_DIR defaults to $ASSAY_MODEL_DIR (what train.py wrote: model.pt, config.json,
vocab.json).
"""

import argparse
import json
import os
import sys

import torch

from model import load_model_dir, pick_device


def prompt_of(request):
    # "prompt" is the rendered template (or the input); fall back on what a request without
    # it carries, so the command also works when fed a dataset line by hand.
    if isinstance(request.get("prompt"), str):
        return request["prompt"]
    if isinstance(request.get("input"), str):
        return request["input"]
    messages = request.get("messages") or []
    if messages and isinstance(messages[-1].get("content"), str):
        return messages[-1]["content"]
    raise ValueError('the request has no "prompt" string')


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", nargs="?", default=os.environ.get("ASSAY_MODEL_DIR"))
    ap.add_argument("--max-chars", type=int, default=20,
                    help="most characters generated per prompt (default 20)")
    args = ap.parse_args()
    if not args.model_dir:
        ap.error("no model directory: pass one or set ASSAY_MODEL_DIR")

    device, device_name = pick_device()
    model, config, vocab = load_model_dir(args.model_dir, device)
    stoi = {c: i for i, c in enumerate(vocab)}
    stop = {stoi["\n"]} if "\n" in stoi else None
    # stderr goes to the job's log; stdout is the reply channel and carries replies only.
    print(f"generate.py: {args.model_dir} ({config['vocab_size']} characters, "
          f"{config.get('trained_steps', '?')} steps) on {device.type} ({device_name})",
          file=sys.stderr, flush=True)

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            rid = request["id"]
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            # Without an id there is nothing to answer; the agent times that request out.
            print(f"generate.py: skipping a request line without an id ({e}): {line[:200]!r}",
                  file=sys.stderr, flush=True)
            continue
        try:
            prompt = prompt_of(request)
            # Characters the corpus never had cannot be encoded; they are left out.
            tokens = [stoi[c] for c in prompt if c in stoi] or [stoi.get(" ", 0)]
            idx = torch.tensor([tokens], device=device)
            new = model.greedy(idx, args.max_chars, stop=stop)
            output = "".join(vocab[t] for t in new).rstrip("\n")
            reply = {"id": rid, "output": output,
                     "usage": {"input_tokens": len(tokens), "output_tokens": len(new)}}
        except Exception as e:  # one bad request must not end the whole eval
            reply = {"id": rid, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(reply, ensure_ascii=False) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
