// The files a model or tokenizer needs from a Hub repository (see repo_files.h).
#include "hub/repo_files.h"

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json.h"

namespace tuneserve::hub {
namespace {

std::string folder_of(const std::string& file_in_snapshot, const std::string& name) {
  // snapshots/<commit>/<name> -> snapshots/<commit>
  return file_in_snapshot.substr(0, file_in_snapshot.size() - name.size() - 1);
}

// Shards named by a sharded checkpoint's index, each fetched (required).
void fetch_shards(const HubClient& hub, const std::string& repo, const std::string& revision,
                  const std::string& index_path) {
  const nlohmann::json j = read_json_file(index_path);
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    fail("{}: field 'weight_map' is missing or not an object", index_path);
  std::set<std::string> shards;
  for (const auto& [name, file] : j["weight_map"].items()) {
    if (!file.is_string()) fail("{}: weight_map.{} must be a file name", index_path, name);
    check_repo_filename(file.get<std::string>(), index_path);
    shards.insert(file.get<std::string>());
  }
  for (const auto& shard : shards) hub.file(repo, shard, revision, true);
}

}  // namespace

std::string fetch_model(const HubClient& hub, const std::string& repo, const std::string& revision) {
  const std::string config = *hub.file(repo, "config.json", revision, true);
  for (const char* single : {"model.safetensors", "pytorch_model.bin"}) {
    if (hub.file(repo, single, revision, false)) return folder_of(config, "config.json");
    const std::string index_name = std::string(single) + ".index.json";
    if (const auto index = hub.file(repo, index_name, revision, false)) {
      fetch_shards(hub, repo, revision, *index);
      return folder_of(config, "config.json");
    }
  }
  fail("{} (revision {}): no model.safetensors, model.safetensors.index.json, pytorch_model.bin or "
       "pytorch_model.bin.index.json in the repository",
       repo, revision);
}

std::string fetch_tokenizer(const HubClient& hub, const std::string& repo, const std::string& revision,
                            bool required) {
  std::optional<std::string> any;
  for (const char* optional : {"tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"})
    if (auto p = hub.file(repo, optional, revision, false)) any = folder_of(*p, optional);
  const bool has_json = any && std::ifstream(*any + "/tokenizer.json").good();
  if (!has_json) {
    // Without tokenizer.json, the vocabulary the slow tokenizers (and their converters) read.
    bool vocab = false;
    for (const char* name : {"vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
                             "spm.model", "added_tokens.json"}) {
      if (auto p = hub.file(repo, name, revision, false)) {
        any = folder_of(*p, name);
        vocab |= std::string(name) != "added_tokens.json";
      }
    }
    if (!vocab && !required) return "";
    if (!vocab)
      fail("{} (revision {}): no tokenizer.json or vocabulary file (vocab.txt, vocab.json, *.model) in the repository",
           repo, revision);
  }
  return *any;
}

}  // namespace tuneserve::hub
