#!/usr/bin/python3
"""The reference for SentencePiece .model tokenizers: Python's sentencepiece (Debian
python3-sentencepiece, run with /usr/bin/python3) encodes JSONL {"text"} lines to one JSON array
of ids per line. --albert first applies transformers' AlbertTokenizer.preprocess_text
(remove_space, `` and '' to ", NFKD without combining chars, lowercase).

    /usr/bin/python3 spm_reference.py MODEL IN.jsonl OUT.jsonl [--albert]
"""
import json
import sys
import unicodedata

import sentencepiece


def albert_preprocess(text):
    text = " ".join(text.strip().split())
    text = text.replace("``", '"').replace("''", '"')
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c))
    return text.lower()


def main():
    model, source, target = sys.argv[1:4]
    albert = "--albert" in sys.argv[4:]
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    with open(source, encoding="utf-8") as lines, open(target, "w", encoding="utf-8") as out:
        for line in lines:
            text = json.loads(line)["text"]
            ids = sp.encode(albert_preprocess(text) if albert else text)
            out.write(json.dumps(ids) + "\n")


if __name__ == "__main__":
    main()
