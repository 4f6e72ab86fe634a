// What a training run reads before its first step: the data (raw files prepared in memory at
// min(max_length, the model's limit), or `tuneserve prep` directories cut there at batch time),
// the tokenizer checked against the data, and the model on a device,
// with a new head when the data has another number of labels. Shared by `tuneserve train`,
// `tuneserve quickstart` and the public fine_tune() (include/tuneserve/tuneserve.h).
#pragma once

#include <functional>
#include <string>

#include "core/device.h"
#include "model/model.h"
#include "train/args.h"
#include "train/data_source.h"

namespace tuneserve::train {

struct RunInputs {
  TrainingData data;
  Model model;
  std::string tokenizer_dir;  // what the model ships with (training_tokenizer)
};

// Sets the thread count (args.threads > 0), loads the data and the model; `note` gets one line per
// thing worth telling the user (truncation, rows read, tensors initialised or unused).
RunInputs load_run_inputs(const TrainArgs& args, const Device& device,
                          const std::function<void(const std::string&)>& note);

}  // namespace tuneserve::train
