#!/usr/bin/env python3
# Proves that a model directory written by `tuneserve train` loads unchanged in transformers and
# classifies exactly as tuneserve does: transformers' text-classification pipeline (top_k=None) on
# each text of a JSONL file next to `tuneserve predict --top-k all` output for the same file.
#   python3 bench/hf_load_check.py MODEL_DIR TEXTS.jsonl TUNESERVE_OUTPUT.jsonl [--atol 1e-4]
# TEXTS.jsonl: {"text": ...} per line; TUNESERVE_OUTPUT.jsonl: what
#   tuneserve predict --model MODEL_DIR --input TEXTS.jsonl --output OUT.jsonl --top-k all
# wrote. Needs torch and transformers (present on the GPU machine, absent on the CPU dev machines);
# exits 2 with a clear message when they are missing, 1 on any mismatch, 0 when every score agrees.
import argparse
import json
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model_dir")
    parser.add_argument("texts")
    parser.add_argument("tuneserve_output")
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    try:
        import transformers
        from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    except ImportError as e:
        print(f"hf_load_check.py: transformers is not installed here ({e}); run this where it is "
              "(the GPU machine has transformers 5.17)", file=sys.stderr)
        return 2

    texts = [json.loads(line)["text"] for line in open(args.texts) if line.strip()]
    ours = [json.loads(line) for line in open(args.tuneserve_output) if line.strip()]
    if len(ours) != len(texts):
        print(f"{args.tuneserve_output}: {len(ours)} lines for {len(texts)} texts", file=sys.stderr)
        return 1

    # Loading must not report missing or unexpected weights: the saved files follow HF names.
    model, info = AutoModelForSequenceClassification.from_pretrained(args.model_dir, output_loading_info=True)
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    classify = pipeline("text-classification", model=model, tokenizer=tokenizer, device="cpu")
    theirs = classify(texts, top_k=None, truncation=True)

    worst = 0.0
    label_mismatches = 0
    for i, (a, b) in enumerate(zip(ours, theirs)):
        if [x["label"] for x in a] != [x["label"] for x in b]:
            label_mismatches += 1
            print(f"line {i + 1}: labels differ: tuneserve {a} transformers {b}")
        for x, y in zip(a, b):
            worst = max(worst, abs(x["score"] - y["score"]))
    ok = not problems and label_mismatches == 0 and worst <= args.atol
    print(f"transformers {transformers.__version__} loaded {args.model_dir}: "
          f"{type(model).__name__}, loading info {problems or 'clean'}; {len(texts)} texts, "
          f"label order mismatches {label_mismatches}, max |score diff| {worst:.2e} (atol {args.atol}): "
          f"{'OK' if ok else 'MISMATCH'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
