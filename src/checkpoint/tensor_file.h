// One checkpoint file of named tensors, whichever format holds them: safetensors, or PyTorch's
// pytorch_model.bin (read by checkpoint/torch_pickle.h without running any of its code). The model
// loader and `tuneserve convert` see only this interface.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "checkpoint/safetensors.h"

namespace tuneserve {

class TensorFile {
 public:
  virtual ~TensorFile() = default;
  virtual const std::string& path() const = 0;
  // name, dtype and shape of every tensor (begin/end are meaningful for safetensors only).
  virtual const std::vector<TensorInfo>& tensors() const = 0;
  const TensorInfo& info(const std::string& name) const;  // Error naming tensor and file
  bool contains(const std::string& name) const;
  // A floating tensor as fp32, row-major.
  virtual std::vector<float> read_f32(const std::string& name) const = 0;
  // The tensor's values in its own dtype, little-endian, contiguous row-major.
  virtual std::vector<std::uint8_t> read_bytes(const std::string& name) const = 0;
};

// A safetensors file, or a PyTorch checkpoint (zip or legacy format; any *.bin), told apart by content.
std::unique_ptr<TensorFile> open_tensor_file(const std::string& path);

// The weight files of a Hugging Face model directory, in transformers' order of preference:
// model.safetensors, model.safetensors.index.json's shards, pytorch_model.bin,
// pytorch_model.bin.index.json's shards. Error naming the directory when it has none; shard names
// must stay inside it. `pytorch_only`: the pytorch_model.bin files alone (what convert reads).
std::vector<std::string> checkpoint_files(const std::string& dir, bool pytorch_only = false);

}  // namespace tuneserve
