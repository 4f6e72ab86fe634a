// Learning-rate schedules (transformers.optimization): linear, cosine (half a cycle), constant,
// constant with warmup. Each is a factor of the base lr as a function of the optimizer step.
//
// Dimensions: S total optimizer steps, W warmup steps.
#include "train/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace tuneserve::train {

ScheduleKind parse_schedule(const std::string& name) {
  if (name == "linear") return ScheduleKind::Linear;
  if (name == "cosine") return ScheduleKind::Cosine;
  if (name == "constant") return ScheduleKind::Constant;
  if (name == "constant_with_warmup") return ScheduleKind::ConstantWithWarmup;
  fail("lr scheduler type '{}' is not supported (linear, cosine, constant, constant_with_warmup)",
       name);
}

const char* schedule_name(ScheduleKind kind) {
  switch (kind) {
    case ScheduleKind::Linear: return "linear";
    case ScheduleKind::Cosine: return "cosine";
    case ScheduleKind::Constant: return "constant";
    case ScheduleKind::ConstantWithWarmup: return "constant_with_warmup";
  }
  return "?";
}

double Schedule::lr(long step) const {
  const double s = static_cast<double>(step);
  const double w = static_cast<double>(warmup_steps);
  const double total = static_cast<double>(total_steps);
  double factor = 1.0;
  switch (kind) {
    case ScheduleKind::Constant:
      factor = 1.0;
      break;
    case ScheduleKind::ConstantWithWarmup:
      factor = step < warmup_steps ? s / std::max(1.0, w) : 1.0;
      break;
    case ScheduleKind::Linear:
      if (step < warmup_steps) {
        factor = s / std::max(1.0, w);
      } else {
        factor = std::max(0.0, (total - s) / std::max(1.0, total - w));
      }
      break;
    case ScheduleKind::Cosine:
      if (step < warmup_steps) {
        factor = s / std::max(1.0, w);
      } else {
        const double progress = (s - w) / std::max(1.0, total - w);
        // num_cycles = 0.5: half a cosine from 1 down to 0.
        factor = std::max(0.0, 0.5 * (1.0 + std::cos(std::numbers::pi * 0.5 * 2.0 * progress)));
      }
      break;
  }
  return base_lr * factor;
}

long resolve_warmup_steps(long total_steps, long warmup_steps, double warmup_ratio) {
  if (warmup_steps < 0) fail("warmup_steps must be >= 0, got {}", warmup_steps);
  if (warmup_ratio < 0 || warmup_ratio > 1) fail("warmup_ratio must be in [0, 1], got {}", warmup_ratio);
  if (warmup_steps > 0) return warmup_steps;
  return static_cast<long>(std::ceil(static_cast<double>(total_steps) * warmup_ratio));
}

long update_steps_per_epoch(long batches_per_epoch, long gradient_accumulation_steps) {
  if (gradient_accumulation_steps < 1)
    fail("gradient_accumulation_steps must be >= 1, got {}", gradient_accumulation_steps);
  const long steps = (batches_per_epoch + gradient_accumulation_steps - 1) / gradient_accumulation_steps;
  return std::max(1L, steps);
}

}  // namespace tuneserve::train
