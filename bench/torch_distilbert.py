#!/usr/bin/python3
# The PyTorch peer of bench/inference.sh: DistilBertForSequenceClassification (eval) in plain torch
# (no transformers), with a safetensors reader/writer, so tuneserve and PyTorch run the same weights.
#
# Dimensions: B batch, T tokens, C hidden, NH heads, HS head size, F ffn, V vocab, P positions, K labels.
#   torch_distilbert.py write-model DIR --config CONFIG.json [--seed S]   random weights -> DIR
#   torch_distilbert.py check-golden GOLDEN_DIR     this module vs transformers' own logits
#   torch_distilbert.py bench DIR [--threads 2]     reference logits -> DIR/reference.safetensors,
#                                                   then timings as one JSON line on stdout
#   torch_distilbert.py bench DIR --autocast bf16   the same timings under torch.autocast("cpu",
#                                                   bfloat16): PyTorch's fastest CPU mode on AVX512-BF16
#   torch_distilbert.py logits DIR --ids 101,1188,102   one unpadded input's logits as a JSON list
#                                                   (the predict tests' independent recomputation)
#   torch_distilbert.py export-onnx DIR             DIR/model.onnx (inputs input_ids, attention_mask
#                                                   int64 (B, T), output logits (B, K); B and T dynamic)
#                                                   for the ONNX Runtime peer (bench/ort_distilbert.mjs)
import argparse
import json
import math
import os
import shutil
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# ---- safetensors ------------------------------------------------------------------------------

DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[begin:end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(array.astype(np.float32) if info["dtype"] == "F16" else array.copy())
    return out


def write_safetensors(path, tensors):
    names = sorted(tensors)
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name in names:
        array = tensors[name].detach().contiguous().numpy()
        dtype = {np.dtype(np.float32): "F32", np.dtype(np.int64): "I64"}[array.dtype]
        blob = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keeps the data section 8-byte aligned
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)
    os.replace(path + ".tmp", path)


# ---- the model ----------------------------------------------------------------------------------


class DistilBert(torch.nn.Module):
    """transformers' DistilBertForSequenceClassification in eval mode, parameter names included."""

    def __init__(self, config):
        super().__init__()
        C, F_, V, P = config["dim"], config["hidden_dim"], config["vocab_size"], config["max_position_embeddings"]
        self.nh = config["n_heads"]
        self.K = len(config.get("id2label", {})) or config.get("num_labels", 2)
        assert config.get("activation", "gelu") == "gelu" and not config.get("sinusoidal_pos_embds", False)
        self.word = torch.nn.Embedding(V, C)
        self.pos = torch.nn.Embedding(P, C)
        self.emb_ln = torch.nn.LayerNorm(C, eps=1e-12)  # DistilBERT hard-codes 1e-12
        self.layers = torch.nn.ModuleList()
        for _ in range(config["n_layers"]):
            layer = torch.nn.Module()
            layer.qkv = torch.nn.Linear(C, 3 * C)  # q_lin, k_lin, v_lin stacked: one GEMM, same math
            layer.out = torch.nn.Linear(C, C)
            layer.ln1 = torch.nn.LayerNorm(C, eps=1e-12)
            layer.lin1 = torch.nn.Linear(C, F_)
            layer.lin2 = torch.nn.Linear(F_, C)
            layer.ln2 = torch.nn.LayerNorm(C, eps=1e-12)
            self.layers.append(layer)
        self.pre_classifier = torch.nn.Linear(C, C)
        self.classifier = torch.nn.Linear(C, self.K)

    def hf_state(self):
        """Parameters under transformers' names."""
        s = {
            "distilbert.embeddings.word_embeddings.weight": self.word.weight,
            "distilbert.embeddings.position_embeddings.weight": self.pos.weight,
            "distilbert.embeddings.LayerNorm.weight": self.emb_ln.weight,
            "distilbert.embeddings.LayerNorm.bias": self.emb_ln.bias,
            "pre_classifier.weight": self.pre_classifier.weight,
            "pre_classifier.bias": self.pre_classifier.bias,
            "classifier.weight": self.classifier.weight,
            "classifier.bias": self.classifier.bias,
        }
        for i, layer in enumerate(self.layers):
            p = f"distilbert.transformer.layer.{i}."
            for j, n in enumerate(["q_lin", "k_lin", "v_lin"]):
                C = layer.out.weight.shape[0]
                s[p + f"attention.{n}.weight"] = layer.qkv.weight[j * C:(j + 1) * C]
                s[p + f"attention.{n}.bias"] = layer.qkv.bias[j * C:(j + 1) * C]
            s[p + "attention.out_lin.weight"], s[p + "attention.out_lin.bias"] = layer.out.weight, layer.out.bias
            s[p + "sa_layer_norm.weight"], s[p + "sa_layer_norm.bias"] = layer.ln1.weight, layer.ln1.bias
            s[p + "ffn.lin1.weight"], s[p + "ffn.lin1.bias"] = layer.lin1.weight, layer.lin1.bias
            s[p + "ffn.lin2.weight"], s[p + "ffn.lin2.bias"] = layer.lin2.weight, layer.lin2.bias
            s[p + "output_layer_norm.weight"], s[p + "output_layer_norm.bias"] = layer.ln2.weight, layer.ln2.bias
        return s

    def load_hf(self, tensors):
        with torch.no_grad():
            for name, param in self.hf_state().items():
                if name not in tensors:
                    sys.exit(f"missing tensor {name}")
                param.copy_(tensors[name])

    def forward(self, input_ids, attention_mask):
        B, T = input_ids.shape
        C = self.word.weight.shape[1]
        HS = C // self.nh
        x = self.emb_ln(self.word(input_ids) + self.pos(torch.arange(T)))
        # transformers masks with the dtype's minimum before the softmax
        bias = torch.zeros(B, 1, 1, T).masked_fill(attention_mask.view(B, 1, 1, T) == 0, torch.finfo(torch.float32).min)
        for layer in self.layers:
            q, k, v = layer.qkv(x).view(B, T, 3, self.nh, HS).permute(2, 0, 3, 1, 4)  # (B, NH, T, HS) each
            scores = torch.matmul(q / math.sqrt(HS), k.transpose(-1, -2)) + bias
            ctx = torch.matmul(scores.softmax(-1), v).transpose(1, 2).reshape(B, T, C)
            x = layer.ln1(layer.out(ctx) + x)
            x = layer.ln2(layer.lin2(F.gelu(layer.lin1(x))) + x)
        pooled = F.relu(self.pre_classifier(x[:, 0]))
        return self.classifier(pooled)


def load_model(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    model = DistilBert(config).eval()
    model.load_hf(read_safetensors(os.path.join(model_dir, "model.safetensors")))
    return model, config


def flops_per_sequence(config, T):
    """Multiply-adds x 2 of the encoder GEMMs and attention products for one T-token sequence."""
    C, F_, L = config["dim"], config["hidden_dim"], config["n_layers"]
    return 2 * T * L * (4 * C * C + 2 * C * F_ + 2 * T * C)


# ---- commands -----------------------------------------------------------------------------------


def write_model(args):
    with open(args.config) as f:
        config = json.load(f)
    torch.manual_seed(args.seed)
    model = DistilBert(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            # Random LayerNorm affines and biases too, so the parity check covers every tensor.
            if "ln" in name and name.endswith("weight"):
                param.copy_(1 + 0.1 * torch.randn_like(param))
            else:
                param.normal_(0, 0.02)
    os.makedirs(args.dir, exist_ok=True)
    write_safetensors(os.path.join(args.dir, "model.safetensors"), {k: v for k, v in model.hf_state().items()})
    shutil.copyfile(args.config, os.path.join(args.dir, "config.json"))


def check_golden(args):
    model, _ = load_model(args.dir)
    golden = read_safetensors(os.path.join(args.dir, "golden.safetensors"))
    with torch.inference_mode():
        logits = model(golden["input_ids"].long(), golden["attention_mask"].long())
    err = (logits - golden["logits"]).abs().max().item()
    ok = bool(torch.all((logits - golden["logits"]).abs() <= 1e-5 + 1e-5 * golden["logits"].abs()))
    print(json.dumps({"golden": args.dir, "max_abs_err": err, "ok": ok}))
    return 0 if ok else 1


def logits(args):
    model, _ = load_model(args.dir)
    ids = torch.tensor([[int(x) for x in args.ids.split(",")]])
    with torch.inference_mode():
        print(json.dumps(model(ids, torch.ones_like(ids))[0].tolist()))
    return 0


def export_onnx(args):
    model, config = load_model(args.dir)
    T = min(16, config["max_position_embeddings"])
    ids = torch.ones(2, T, dtype=torch.long)
    with torch.no_grad():
        torch.onnx.export(model, (ids, torch.ones_like(ids)), os.path.join(args.dir, "model.onnx"),
                          input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          dynamic_axes={"input_ids": {0: "B", 1: "T"}, "attention_mask": {0: "B", 1: "T"},
                                        "logits": {0: "B"}},
                          opset_version=14, do_constant_folding=True)
    return 0


def time_forward(model, ids, mask, reps, autocast):
    """Median wall seconds and median process CPU seconds (all threads) per forward."""
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        for _ in range(2):
            model(ids, mask)
        wall, cpu = [], []
        for _ in range(reps):
            t0, c0 = time.perf_counter(), time.process_time()
            model(ids, mask)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def bench(args):
    torch.set_num_threads(args.threads)
    model, config = load_model(args.dir)
    T = args.tokens
    g = torch.Generator().manual_seed(1234)
    # Reference inputs with real padding (lengths T, 3T/4, T/2, 9) so masking is checked too.
    lengths = [T, 3 * T // 4, T // 2, 9]
    ids = torch.randint(1, config["vocab_size"], (len(lengths), T), generator=g)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    for b, n in enumerate(lengths):
        mask[b, :n] = 1
        ids[b, n:] = config.get("pad_token_id", 0)
    autocast = args.autocast == "bf16"
    if not autocast:  # the reference is fp32's
        with torch.inference_mode():
            logits = model(ids, mask)
        write_safetensors(os.path.join(args.dir, "reference.safetensors"),
                          {"input_ids": ids, "attention_mask": mask, "logits": logits})

    peer = f"pytorch {torch.__version__}" + (" bf16 autocast" if autocast else " fp32")
    result = {"peer": peer, "threads": torch.get_num_threads(), "runs": []}
    for B, reps in ((1, args.reps_b1), (32, args.reps_b32)):
        x = torch.randint(1, config["vocab_size"], (B, T), generator=g)
        m = torch.ones(B, T, dtype=torch.long)
        seconds, cpu_seconds = time_forward(model, x, m, reps, autocast)
        result["runs"].append({"batch": B, "tokens": T, "ms": seconds * 1e3, "cpu_ms": cpu_seconds * 1e3,
                               "seq_per_s": B / seconds,
                               "gflops": B * flops_per_sequence(config, T) / seconds / 1e9})
    print(json.dumps(result))
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("write-model")
    p.add_argument("dir")
    p.add_argument("--config", required=True)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("check-golden")
    p.add_argument("dir")
    p = sub.add_parser("bench")
    p.add_argument("dir")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--reps-b1", type=int, default=20)
    p.add_argument("--reps-b32", type=int, default=5)
    p.add_argument("--autocast", choices=["none", "bf16"], default="none")
    p = sub.add_parser("export-onnx")
    p.add_argument("dir")
    p = sub.add_parser("logits")
    p.add_argument("dir")
    p.add_argument("--ids", required=True)
    args = parser.parse_args()
    commands = {"write-model": write_model, "check-golden": check_golden, "bench": bench, "logits": logits,
                "export-onnx": export_onnx}
    return commands[args.command](args) or 0


if __name__ == "__main__":
    sys.exit(main())
