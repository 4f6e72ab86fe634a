#!/usr/bin/env python3
# The PyTorch + transformers peer of issue 5's GPU table: DistilBertForSequenceClassification from the
# full-size distilbert-base-cased config (random weights), bf16 autocast, fused AdamW, warm timings.
# Prints one line per workload and a JSON summary (last line) that bench/gpu_check.sh keeps.
#
# Dimensions: B batch, T tokens (padded), L layers, C hidden, N_ne non-embedding parameters.
#   torch_gpu.py [--shared ../shared] [--seconds 6]
#   torch_gpu.py --smoke      CPU, tiny config, 2 steps per workload: checks the harness only
# Config: SHARED/goldens/configs/distilbert-base-cased/config.json, else the same hyperparameters
# built in (said in the output). Lengths: Amazon train contents tokenized with the cased tokenizer
# ([CLS]/[SEP] included, truncated at 512) when SHARED and the `tokenizers` package are there; else
# drawn from a log-normal fitted to shared/README.md's statistics (median 90, p90 189, clipped to
# [8, 456]), and the output says so.
import argparse
import json
import math
import os
import random
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# Peak dense bf16 tensor throughput (FLOP/s) for MFU; other GPUs report MFU as unknown.
PEAK_BF16 = {"H100": 989.4e12, "H200": 989.4e12, "GH200": 989.4e12}


def synthetic_lengths(n, seed=0):
    rng = random.Random(seed)
    mu, sigma = math.log(90.0), math.log(189.0 / 90.0) / 1.2816
    return [min(456, max(8, int(round(rng.lognormvariate(mu, sigma))))) for _ in range(n)]


def load_lengths(shared, n):
    data = os.path.join(shared, "data/amazon_polarity/train.jsonl")
    tok = os.path.join(shared, "tokenizers/bert-base-cased/tokenizer.json")
    why = f"{data} or {tok} missing"
    if os.path.exists(data) and os.path.exists(tok):
        try:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(tok)
            tokenizer.enable_truncation(512)
            with open(data) as f:
                texts = [json.loads(line)["content"] for line in f if line.strip()]
            lengths = [len(e.ids) for e in tokenizer.encode_batch(texts)]
            return lengths, f"{data} ({len(lengths)} texts, mean {statistics.mean(lengths):.1f} tokens)"
        except ImportError as e:
            why = f"no tokenizers package ({e})"
    lengths = synthetic_lengths(n)
    return lengths, f"synthetic log-normal lengths, mean {statistics.mean(lengths):.1f} ({why})"


# distilbert-base-cased's config.json hyperparameters, for machines without ../shared.
BUILTIN_CONFIG = {"activation": "gelu", "attention_dropout": 0.1, "dim": 768, "dropout": 0.1, "hidden_dim": 3072,
                  "initializer_range": 0.02, "max_position_embeddings": 512, "model_type": "distilbert",
                  "n_heads": 12, "n_layers": 6, "pad_token_id": 0, "qa_dropout": 0.1, "seq_classif_dropout": 0.2,
                  "sinusoidal_pos_embds": False, "tie_word_embeddings": True, "vocab_size": 28996}


def make_model(shared, smoke, device):
    config_path = os.path.join(shared, "goldens/configs/distilbert-base-cased/config.json")
    if os.path.exists(config_path):
        with open(config_path) as f:
            cfg = json.load(f)
        print(f"# config: {config_path}")
    else:
        cfg = dict(BUILTIN_CONFIG)
        print(f"# config: built-in distilbert-base-cased hyperparameters ({config_path} missing)")
    if smoke:
        cfg.update(dim=64, hidden_dim=128, n_layers=2, n_heads=2, vocab_size=1000, max_position_embeddings=512)
    try:
        from transformers import DistilBertConfig, DistilBertForSequenceClassification
    except ImportError as e:
        if not smoke:
            sys.exit(f"torch_gpu.py: transformers is not installed ({e}); the GPU machine has transformers 5.17")
        print(f"# transformers not installed ({e}): smoke run with bench/torch_distilbert.py's plain-torch "
              "DistilBERT instead (checks the harness; timings mean nothing)")
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from torch_distilbert import DistilBert

        cfg["num_labels"] = 2
        model = DistilBert(cfg).to(device)
        return model, cfg, "plain-torch stand-in", lambda ids, mask: model(ids, mask)
    config = DistilBertConfig.from_dict(cfg)
    config.num_labels = 2
    model = DistilBertForSequenceClassification(config).to(device)
    impl = getattr(model.config, "_attn_implementation", "?")
    return model, cfg, f"transformers DistilBertForSequenceClassification (attn {impl})", \
        lambda ids, mask: model(input_ids=ids, attention_mask=mask).logits


def non_embedding_params(model, cfg):
    emb = cfg["vocab_size"] * cfg["dim"] + cfg["max_position_embeddings"] * cfg["dim"]
    return sum(p.numel() for p in model.parameters()) - emb


def batch(lengths, pad_to, vocab, device):
    """Random ids with [CLS] ... [SEP] at the real lengths, padded with 0 to pad_to (or the longest)."""
    T = pad_to or max(lengths)
    ids = torch.zeros(len(lengths), T, dtype=torch.long)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for b, n in enumerate(lengths):
        n = min(n, T)
        ids[b, :n] = torch.randint(1000, vocab, (n,)) if vocab > 1000 else torch.randint(3, vocab, (n,))
        ids[b, 0], ids[b, n - 1] = 101 % vocab, 102 % vocab
        mask[b, :n] = 1
    labels = torch.randint(0, 2, (len(lengths),))
    # The real-token count rides along on the host: reading it off the GPU would synchronise each step.
    return ids.to(device), mask.to(device), labels.to(device), int(mask.sum())


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_workload(name, model, logits_fn, batches, device, seconds, min_steps, warmup):
    opt_kwargs = dict(lr=5e-5, weight_decay=0.01)
    if device.type == "cuda":
        opt_kwargs["fused"] = True
    opt = torch.optim.AdamW(model.parameters(), **opt_kwargs)
    model.train()

    def step(b):
        ids, mask, labels, _ = b
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(logits_fn(ids, mask).float(), labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    for i in range(warmup):
        step(batches[i % len(batches)])
    sync(device)
    steps, samples, real_tokens, padded_tokens = 0, 0, 0, 0
    start = time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < seconds:
        b = batches[steps % len(batches)]
        step(b)
        steps += 1
        samples += b[0].shape[0]
        real_tokens += b[3]
        padded_tokens += b[0].numel()
        if steps % 10 == 0:
            sync(device)
    sync(device)
    elapsed = time.perf_counter() - start
    return {"workload": name, "steps": steps, "seconds": elapsed, "samples_per_s": samples / elapsed,
            "real_tokens_per_s": real_tokens / elapsed, "padded_tokens_per_s": padded_tokens / elapsed,
            "mean_real_len": real_tokens / samples, "mean_padded_len": padded_tokens / samples}


def infer_latency(name, model, logits_fn, b, device, reps, bf16):
    model.eval()
    times = []
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        for i in range(reps + 5):
            sync(device)
            t0 = time.perf_counter()
            logits_fn(b[0], b[1])
            sync(device)
            if i >= 5:
                times.append(time.perf_counter() - t0)
    ms = statistics.median(times) * 1e3
    return {"workload": name, "latency_ms": ms, "samples_per_s": b[0].shape[0] / (ms / 1e3)}


def infer_throughput(name, model, logits_fn, b, device, seconds, bf16):
    model.eval()
    with torch.inference_mode(), torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
        for _ in range(3):
            logits_fn(b[0], b[1])
        sync(device)
        n, start = 0, time.perf_counter()
        while n < 3 or time.perf_counter() - start < seconds:
            logits_fn(b[0], b[1])
            n += 1
        sync(device)
        elapsed = time.perf_counter() - start
    return {"workload": name, "batches": n, "samples_per_s": n * b[0].shape[0] / elapsed}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shared", default=os.path.join(here, "../../shared"), help="reference material folder")
    ap.add_argument("--seconds", type=float, default=6.0, help="timed seconds per workload")
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny config, 2 steps: harness check only")
    args = ap.parse_args()

    smoke = args.smoke
    if not smoke and not torch.cuda.is_available():
        sys.exit("torch_gpu.py: torch sees no CUDA device (use --smoke for a CPU harness check)")
    device = torch.device("cpu" if smoke else "cuda")
    torch.manual_seed(0)
    model, cfg, what, logits_fn = make_model(args.shared, smoke, device)
    gpu = torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu"
    print(f"# peer: torch {torch.__version__}, {what}, {gpu}")
    lengths, source = load_lengths(args.shared, 4096)
    print(f"# lengths: {source}")
    vocab, seconds = cfg["vocab_size"], (0.0 if smoke else args.seconds)
    min_steps, warmup = (2, 1) if smoke else (10, 5)
    n_batches = 4 if smoke else 32
    rng = random.Random(1)
    order = lengths[:]
    rng.shuffle(order)

    def real_batches(B, pad_to=None):
        out = []
        for i in range(n_batches):
            chunk = [order[(i * B + j) % len(order)] for j in range(B)]
            out.append(batch(chunk, pad_to, vocab, device))
        return out

    results = []
    B_small, B_large = (4, 8) if smoke else (32, 128)
    results.append(train_workload("train_real_b32", model, logits_fn, real_batches(B_small), device, seconds,
                                  min_steps, warmup))
    results.append(train_workload("train_real_b128", model, logits_fn, real_batches(B_large), device, seconds,
                                  min_steps, warmup))
    results.append(train_workload("train_pad512_b32", model, logits_fn, real_batches(B_small, 512), device, seconds,
                                  min_steps, warmup))
    fixed = lambda B: batch([128] * B, 128, vocab, device)  # noqa: E731
    results.append(infer_latency("infer_b1x128_fp32_latency", model, logits_fn, fixed(1), device, 3 if smoke else 100,
                                 False))
    results.append(infer_latency("infer_b1x128_bf16_latency", model, logits_fn, fixed(1), device, 3 if smoke else 100,
                                 True))
    results.append(infer_throughput("infer_b256x128_bf16", model, logits_fn, fixed(8 if smoke else 256), device,
                                    seconds, True))

    # Model FLOPs utilisation on real tokens: 6 N_ne + 12 L C T per trained token (T: its sequence length).
    n_ne = non_embedding_params(model, cfg)
    L, C = cfg["n_layers"], cfg["dim"]
    peak = next((v for k, v in PEAK_BF16.items() if k in gpu), None)
    for r in results:
        if r["workload"].startswith("train_"):
            flops_per_token = 6 * n_ne + 12 * L * C * r["mean_real_len"]
            r["model_tflops_real"] = flops_per_token * r["real_tokens_per_s"] / 1e12
            r["mfu_real"] = r["model_tflops_real"] * 1e12 / peak if peak else None
    for r in results:
        extra = ""
        if "latency_ms" in r:
            extra = f"latency {r['latency_ms']:.3f} ms"
        elif "mfu_real" in r:
            mfu = f"{100 * r['mfu_real']:.1f}%" if r["mfu_real"] is not None else "n/a"
            extra = (f"real len {r['mean_real_len']:.1f} padded {r['mean_padded_len']:.1f}, "
                     f"{r['model_tflops_real']:.1f} model TFLOP/s on real tokens, MFU {mfu}")
        print(f"{r['workload']:>28} {r['samples_per_s']:12.1f} samples/s  {extra}")
    print(json.dumps({"peer": f"torch {torch.__version__}", "model": what, "device": gpu, "lengths": source,
                      "non_embedding_params": n_ne, "results": results}))


if __name__ == "__main__":
    main()
