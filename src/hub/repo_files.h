// Which files of a Hub repository a model or a tokenizer needs, fetched into one snapshot folder
// (only those: never the whole repository). Optional files a repo lacks are remembered in
// .no_exist/, so later runs do not ask again, as transformers' from_pretrained does.
//
//   model:     config.json; model.safetensors, else model.safetensors.index.json + its shards,
//              else pytorch_model.bin, else pytorch_model.bin.index.json + its shards
//   tokenizer: tokenizer_config.json, special_tokens_map.json, tokenizer.json; without tokenizer.json
//              the vocabulary files (vocab.txt, vocab.json + merges.txt, SentencePiece models)
#pragma once

#include <string>

#include "hub/hub.h"

namespace tuneserve::hub {

// The snapshot folder (snapshots/<commit>) holding the model's files. Error names repo and revision
// when the repo has no weights tuneserve reads.
std::string fetch_model(const HubClient& hub, const std::string& repo, const std::string& revision);

// The snapshot folder holding the tokenizer's files; Error when the repo has none and `required`,
// else "" (a model repo without a tokenizer).
std::string fetch_tokenizer(const HubClient& hub, const std::string& repo, const std::string& revision,
                            bool required = true);

}  // namespace tuneserve::hub
