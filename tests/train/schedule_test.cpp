// Learning-rate schedules against values worked out by hand from transformers' formulas,
// including the golden recipe (linear, warmup 1, total 4: lrs 0, 1e-3, 2/3e-3, 1/3e-3).
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "train/schedule.h"

using namespace tuneserve::train;

TEST(Schedule, LinearWithWarmupMatchesGoldenRecipe) {
  Schedule s{ScheduleKind::Linear, 1e-3, 1, 4};
  EXPECT_DOUBLE_EQ(s.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr(1), 1e-3);
  EXPECT_NEAR(s.lr(2), 1e-3 * 2.0 / 3.0, 1e-18);
  EXPECT_NEAR(s.lr(3), 1e-3 / 3.0, 1e-18);
  EXPECT_DOUBLE_EQ(s.lr(4), 0.0);
  EXPECT_DOUBLE_EQ(s.lr(10), 0.0);  // clamped, never negative
}

TEST(Schedule, LinearWarmupRampsLinearly) {
  Schedule s{ScheduleKind::Linear, 5e-4, 23, 375};
  EXPECT_DOUBLE_EQ(s.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr(10), 5e-4 * 10.0 / 23.0);
  EXPECT_DOUBLE_EQ(s.lr(23), 5e-4);
  EXPECT_DOUBLE_EQ(s.lr(200), 5e-4 * (375.0 - 200.0) / (375.0 - 23.0));
}

TEST(Schedule, NoWarmupStartsAtBaseLr) {
  Schedule s{ScheduleKind::Linear, 2e-5, 0, 100};
  EXPECT_DOUBLE_EQ(s.lr(0), 2e-5);
  EXPECT_DOUBLE_EQ(s.lr(50), 1e-5);
}

TEST(Schedule, CosineHalfCycle) {
  Schedule s{ScheduleKind::Cosine, 1.0, 10, 110};
  EXPECT_DOUBLE_EQ(s.lr(5), 0.5);
  EXPECT_DOUBLE_EQ(s.lr(10), 1.0);
  EXPECT_NEAR(s.lr(60), 0.5, 1e-15);  // halfway: cos(pi/2) = 0
  EXPECT_NEAR(s.lr(35), 0.5 * (1 + std::cos(std::numbers::pi * 0.25)), 1e-15);
  EXPECT_NEAR(s.lr(110), 0.0, 1e-15);
}

TEST(Schedule, ConstantKinds) {
  Schedule c{ScheduleKind::Constant, 3e-4, 5, 100};
  EXPECT_DOUBLE_EQ(c.lr(0), 3e-4);  // constant ignores warmup, as transformers' "constant"
  Schedule w{ScheduleKind::ConstantWithWarmup, 3e-4, 4, 100};
  EXPECT_DOUBLE_EQ(w.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(w.lr(2), 1.5e-4);
  EXPECT_DOUBLE_EQ(w.lr(4), 3e-4);
  EXPECT_DOUBLE_EQ(w.lr(99), 3e-4);
}

TEST(Schedule, ParseNames) {
  EXPECT_EQ(parse_schedule("cosine"), ScheduleKind::Cosine);
  EXPECT_STREQ(schedule_name(parse_schedule("constant_with_warmup")), "constant_with_warmup");
  EXPECT_THROW(parse_schedule("polynomial-ish"), tuneserve::Error);
}

TEST(Schedule, WarmupRatioRoundsUpLikeTransformers) {
  EXPECT_EQ(resolve_warmup_steps(375, 0, 0.06), 23);  // ceil(22.5)
  EXPECT_EQ(resolve_warmup_steps(100, 0, 0.06), 6);
  EXPECT_EQ(resolve_warmup_steps(101, 0, 0.06), 7);   // ceil(6.06)
  EXPECT_EQ(resolve_warmup_steps(375, 10, 0.06), 10); // explicit steps win
  EXPECT_EQ(resolve_warmup_steps(375, 0, 0.0), 0);
  EXPECT_THROW(resolve_warmup_steps(375, 0, 1.5), tuneserve::Error);
}

TEST(Schedule, UpdateStepsPerEpoch) {
  EXPECT_EQ(update_steps_per_epoch(125, 1), 125);
  EXPECT_EQ(update_steps_per_epoch(125, 4), 32);  // the last group of one batch still updates
  EXPECT_EQ(update_steps_per_epoch(0, 4), 1);
  EXPECT_THROW(update_steps_per_epoch(10, 0), tuneserve::Error);
}
