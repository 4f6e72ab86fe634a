// Learning-rate schedules with transformers' semantics (get_scheduler + LambdaLR): the factor for
// optimizer step s (0-based, the scheduler is stepped after the optimizer) times the base lr.
//
// Dimensions: S total optimizer steps, W warmup steps.
#pragma once

#include <string>

namespace tuneserve::train {

enum class ScheduleKind { Linear, Cosine, Constant, ConstantWithWarmup };

// "linear" | "cosine" | "constant" | "constant_with_warmup"; anything else is an Error naming it.
ScheduleKind parse_schedule(const std::string& name);
const char* schedule_name(ScheduleKind kind);

struct Schedule {
  ScheduleKind kind = ScheduleKind::Linear;
  double base_lr = 5e-5;
  long warmup_steps = 0;  // W
  long total_steps = 1;   // S

  // The lr used by optimizer step `step` (0-based). With W > 0 the first step has lr 0.
  double lr(long step) const;
};

// Warmup in steps as transformers resolves it: explicit steps win when > 0, else
// ceil(total_steps * ratio).
long resolve_warmup_steps(long total_steps, long warmup_steps, double warmup_ratio);

// Optimizer steps per epoch: ceil(batches / accumulation) (a partial accumulation group at the
// end of an epoch still makes an update), never less than 1.
long update_steps_per_epoch(long batches_per_epoch, long gradient_accumulation_steps);

}  // namespace tuneserve::train
