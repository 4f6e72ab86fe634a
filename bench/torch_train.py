#!/usr/bin/python3
# The PyTorch peer of bench/train_throughput.sh: full training steps of DistilBertForSequenceClassification
# in plain torch (the module of bench/torch_distilbert.py, with transformers' dropouts: embeddings,
# attention weights, FFN output, classifier), cross-entropy, clip_grad_norm_(1.0), AdamW.
#
# Dimensions: B batch, T tokens, K batches per scenario.
#   torch_train.py bench MODEL_DIR BATCHES.safetensors [--threads 2] [--foreach 0|1] [--autocast none|bf16]
#       one JSON line: {"peer", "parity_loss", "runs": [{"scenario", "steps", "ms", "cpu_ms", "samples_per_s"}]}
#       --autocast bf16: forward and loss under torch.autocast("cpu", bfloat16), backward outside it
#       (PyTorch's mixed precision recipe; fp32 master weights and AdamW), its fastest CPU training mode
#       on AVX512-BF16.
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_distilbert import load_model, read_safetensors  # noqa: E402


def train_forward(model, config, ids, mask):
    """transformers' DistilBERT training forward: dropout where the reference module has it."""
    p_hidden, p_attn, p_cls = config["dropout"], config["attention_dropout"], config["seq_classif_dropout"]
    B, T = ids.shape
    C = model.word.weight.shape[1]
    HS = C // model.nh
    x = F.dropout(model.emb_ln(model.word(ids) + model.pos(torch.arange(T))), p_hidden, True)
    bias = torch.zeros(B, 1, 1, T).masked_fill(mask.view(B, 1, 1, T) == 0, torch.finfo(torch.float32).min)
    for layer in model.layers:
        q, k, v = layer.qkv(x).view(B, T, 3, model.nh, HS).permute(2, 0, 3, 1, 4)
        scores = torch.matmul(q / HS ** 0.5, k.transpose(-1, -2)) + bias
        ctx = torch.matmul(F.dropout(scores.softmax(-1), p_attn, True), v).transpose(1, 2).reshape(B, T, C)
        x = layer.ln1(layer.out(ctx) + x)
        x = layer.ln2(F.dropout(layer.lin2(F.gelu(layer.lin1(x))), p_hidden, True) + x)
    pooled = F.dropout(F.relu(model.pre_classifier(x[:, 0])), p_cls, True)
    return model.classifier(pooled)


def batches(tensors, scenario):
    out = []
    k = 0
    while f"{scenario}.{k}.input_ids" in tensors:
        p = f"{scenario}.{k}."
        out.append((tensors[p + "input_ids"].long(), tensors[p + "attention_mask"].long(), tensors[p + "labels"].long()))
        k += 1
    return out


def bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, config = load_model(args.dir)
    tensors = read_safetensors(args.batches)
    autocast = args.autocast == "bf16"
    peer = f"pytorch {torch.__version__}" + (" bf16 autocast" if autocast else " fp32")
    result = {"peer": peer, "threads": torch.get_num_threads(), "runs": []}
    fixed = batches(tensors, "fixed")
    with torch.no_grad():
        ids, mask, labels = fixed[0]
        result["parity_loss"] = F.cross_entropy(model(ids, mask), labels).item()
    model.train()
    no_decay = lambda n: n.endswith("bias") or ".ln" in n or n.startswith("emb_ln")  # noqa: E731
    params = list(model.named_parameters())
    groups = [{"params": [p for n, p in params if not no_decay(n)], "weight_decay": 0.01},
              {"params": [p for n, p in params if no_decay(n)], "weight_decay": 0.0}]
    optimizer = torch.optim.AdamW(groups, lr=1e-5, foreach=bool(args.foreach))
    for scenario in ("fixed", "amazon"):
        wall, cpu = [], []
        for k, (ids, mask, labels) in enumerate(batches(tensors, scenario)):
            t0, c0 = time.perf_counter(), time.process_time()
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                loss = F.cross_entropy(train_forward(model, config, ids, mask), labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            if k == 0:
                continue  # warm-up, as the tuneserve side
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        B = ids.shape[0]
        result["runs"].append({"scenario": scenario, "steps": len(wall), "batch": B, "ms": statistics.median(wall) * 1e3,
                               "cpu_ms": statistics.median(cpu) * 1e3, "samples_per_s": B / statistics.median(wall)})
    print(json.dumps(result))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("bench")
    p.add_argument("dir")
    p.add_argument("batches")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--foreach", type=int, default=1)
    p.add_argument("--autocast", choices=["none", "bf16"], default="none")
    args = parser.parse_args()
    return bench(args)


if __name__ == "__main__":
    sys.exit(main())
