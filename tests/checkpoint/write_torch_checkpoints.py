#!/usr/bin/python3
"""Writes pytorch_model.bin files with PyTorch's own torch.save (Debian's python3-torch), from a
golden model.safetensors, for tuneserve's pickle reader tests:

    write_torch_checkpoints.py GOLDEN_DIR OUT_DIR [--fp32-only] [--hostile]

OUT_DIR/<case>/{config.json, pytorch_model.bin} for each case:
  fp32       the weights as they are (torch.save's zip format)
  fp16       every floating tensor as float16; fp16-twin/model.safetensors holds the same fp16 values
  shared     q/k/v weights as views at offsets into one storage, each Linear weight stored
             transposed-then-transposed (non-contiguous strides), a tied duplicate sharing storage,
             and nn.Parameter objects rather than plain tensors
  legacy     the same tensors as "shared", in the pre-1.6 format (_use_new_zipfile_serialization=False)
(--fp32-only: that case alone), and with --hostile, hostile/*.bin: files that must be refused (made with pickle opcodes by hand: nothing here runs them).
"""
import collections
import io
import json
import os
import pickle
import shutil
import struct
import sys
import zipfile

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    out = collections.OrderedDict()
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        arr = np.frombuffer(data[8 + n + begin:8 + n + end], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
        out[name] = torch.from_numpy(arr.copy())
    return out


def write_safetensors(path, tensors):
    names = {torch.float32: "F32", torch.float16: "F16", torch.int64: "I64"}
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def case_dir(out, name, golden):
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    shutil.copyfile(os.path.join(golden, "config.json"), os.path.join(d, "config.json"))
    return d


def shared_layout(sd):
    """Views, non-contiguous strides, shared storages and Parameters, same values."""
    out = collections.OrderedDict()
    groups = collections.defaultdict(dict)
    for name, t in sd.items():
        for part in ("q_lin", "k_lin", "v_lin", "query", "key", "value"):
            if f".{part}.weight" in name:
                groups[name.replace(f".{part}.weight", "")][part] = name
    viewed = set()
    for prefix, parts in groups.items():
        names = list(parts.values())
        if len(names) != 3:
            continue
        big = torch.cat([sd[n] for n in names], 0)  # one storage; each weight a view at an offset
        rows = sd[names[0]].shape[0]
        for i, n in enumerate(names):
            out[n] = big[i * rows:(i + 1) * rows]
            viewed.add(n)
    for name, t in sd.items():
        if name in viewed:
            continue
        if t.dim() == 2 and min(t.shape) > 1 and t.dtype == torch.float32:
            t = t.t().contiguous().t()  # same values, column-major strides
            assert not t.is_contiguous()
        out[name] = torch.nn.Parameter(t, requires_grad=False) if t.dim() == 1 else t
    first = next(iter(out))
    out["tied." + first] = out[first]  # shares the storage of another entry (ignored by the loader)
    return out


def hostile(out):
    d = os.path.join(out, "hostile")
    os.makedirs(d, exist_ok=True)

    def zip_with(name, pkl, extra=()):
        with zipfile.ZipFile(os.path.join(d, name), "w", zipfile.ZIP_STORED) as z:
            z.writestr("archive/data.pkl", pkl)
            z.writestr("archive/byteorder", "little")
            for n, b in extra:
                z.writestr(n, b)

    # GLOBAL os.system then REDUCE: what a malicious pickle does.
    zip_with("os_system.bin", b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")
    zip_with("eval.bin", b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.")
    # REDUCE of an allowed non-function value (a dtype) and of a str: callables that are not allowed.
    zip_with("reduce_value.bin", b"\x80\x02ctorch\nfloat32\n)R.")
    zip_with("reduce_str.bin", b"\x80\x02X\x01\x00\x00\x00a)R.")
    # Protocol 4 opcodes torch's weights-only unpickler does not accept (STACK_GLOBAL).
    zip_with("stack_global.bin", b"\x80\x04X\x02\x00\x00\x00osX\x06\x00\x00\x00system\x93.")
    # A real checkpoint cut short, and one whose storage entry is shorter than announced.
    good = io.BytesIO()
    torch.save({"w": torch.ones(64, 64)}, good)
    raw = good.getvalue()
    open(os.path.join(d, "truncated.bin"), "wb").write(raw[: len(raw) // 2])
    zf = zipfile.ZipFile(io.BytesIO(raw))
    pkl = zf.read([n for n in zf.namelist() if n.endswith("data.pkl")][0])
    zip_with("short_storage.bin", pkl, [("archive/data/0", b"\0" * 100)])
    # A tensor whose strides reach past its storage.
    evil = pkl.replace(b"K@K@\x86", b"M\x00\x04K@\x86")  # size (64, 64) -> (1024, 64)
    assert evil != pkl
    zip_with("out_of_bounds.bin", evil, [("archive/data/0", b"\0" * 64 * 64 * 4)])
    # Bombs: nesting 100k MARKs deep, and a zip entry that inflates to 256 MB.
    zip_with("deep.bin", b"\x80\x02" + b"(" * 100000 + b".")
    with zipfile.ZipFile(os.path.join(d, "zip_bomb.bin"), "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/data/0", b"\0" * (256 << 20))
    # Legacy format with a GLOBAL that is not allowed in the state dict pickle.
    legacy = io.BytesIO()
    for obj in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
        pickle.dump(obj, legacy, protocol=2)
    legacy.write(b"\x80\x02cposix\nsystem\nX\x02\x00\x00\x00id\x85R.")
    open(os.path.join(d, "legacy_system.bin"), "wb").write(legacy.getvalue())


def main():
    golden, out = sys.argv[1], sys.argv[2]
    sd = read_safetensors(os.path.join(golden, "model.safetensors"))
    torch.save(sd, os.path.join(case_dir(out, "fp32", golden), "pytorch_model.bin"))
    if "--hostile" in sys.argv:
        hostile(out)
    if "--fp32-only" in sys.argv:
        print("ok")
        return
    half = collections.OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in sd.items())
    torch.save(half, os.path.join(case_dir(out, "fp16", golden), "pytorch_model.bin"))
    write_safetensors(os.path.join(case_dir(out, "fp16-twin", golden), "model.safetensors"), half)
    layout = shared_layout(sd)
    torch.save(layout, os.path.join(case_dir(out, "shared", golden), "pytorch_model.bin"))
    torch.save(layout, os.path.join(case_dir(out, "legacy", golden), "pytorch_model.bin"),
               _use_new_zipfile_serialization=False)
    print("ok")


if __name__ == "__main__":
    main()
