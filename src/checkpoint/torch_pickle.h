// pytorch_model.bin, read without executing anything it contains.
//
// torch.save writes a zip (since PyTorch 1.6): <archive>/data.pkl is a pickle (protocol 2) of the
// state dict whose tensors are calls of torch._utils._rebuild_tensor_v2(storage, offset, size,
// stride, ...) on storages given as persistent ids ('storage', torch.FloatStorage, key, location,
// numel); storage <key>'s bytes are the entry <archive>/data/<key>, little-endian
// (<archive>/byteorder). The legacy format (before 1.6, `_use_new_zipfile_serialization=False`)
// is a run of pickles in one file: magic number, protocol version, system info, the state dict
// (persistent ids ('storage', type, key, location, numel, view)), the list of storage keys, then
// each storage as an 8-byte element count followed by its bytes.
//
// The pickle is interpreted by a machine that knows exactly the opcodes and globals that
// torch.load(weights_only=True) accepts (torch/_weights_only_unpickler.py): OrderedDict, the tensor
// rebuild functions, storage and dtype names, torch.Size, torch.device, _codecs.encode, primitive
// values. It builds values itself and never calls anything: any other GLOBAL (os.system,
// builtins.eval), a REDUCE or NEWOBJ of anything else, other opcodes, bad bounds, truncation,
// nesting deeper than 1,000 or a zip whose entries inflate to far more than the file is refused
// with the reason. Tensors may share storages, be views at an offset, or be non-contiguous.
#pragma once

#include <memory>
#include <string>

#include "checkpoint/tensor_file.h"

namespace tuneserve {

std::unique_ptr<TensorFile> open_torch_checkpoint(const std::string& path);

// True when the file starts like a PyTorch checkpoint (a zip, or a protocol-2 pickle).
bool looks_like_torch_checkpoint(const std::string& path);

}  // namespace tuneserve
