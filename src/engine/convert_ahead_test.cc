#include "engine/convert_ahead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace cb::engine {
namespace {

using Job = ConvertAhead::Job;

// Bytes = the job's name repeated to its size; "bad" throws.
ConvertAhead::ConvertFn fake(std::atomic<int>* calls) {
  return [calls](const Job& j, const std::function<void(const void*, size_t)>& sink) {
    ++*calls;
    if (j.name == "bad") throw std::runtime_error("cannot convert");
    std::vector<uint8_t> b(j.bytes, static_cast<uint8_t>(j.name[0]));
    sink(b.data(), b.size() / 2);  // in two pieces, as slabs come
    sink(b.data() + b.size() / 2, b.size() - b.size() / 2);
  };
}

TEST(EngineConvertAhead, ConvertsInOrderWithinTheCapAndHandsOverOnce) {
  std::atomic<int> calls{0};
  ConvertAhead ahead(fake(&calls));
  EXPECT_FALSE(ahead.take("a", "q2_K", {}).has_value());  // nothing planned
  ASSERT_TRUE(ahead.plan({{"a", "q2_K", {}, 100}, {"b", "q2_K", {}, 50}, {"c", "q6_K", {}, 100}}, 200));
  const auto a = ahead.take("a", "q2_K", {});
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, std::vector<uint8_t>(100, 'a'));
  EXPECT_FALSE(ahead.take("a", "q2_K", {}).has_value());  // handed over once
  EXPECT_EQ(ahead.take("b", "q2_K", {}).value_or(std::vector<uint8_t>{}).size(), 50u);
  EXPECT_FALSE(ahead.take("c", "q6_K", {}).has_value());  // past the cap: never queued
  EXPECT_EQ(calls, 2);
}

TEST(EngineConvertAhead, ReplanningKeepsWhatIsStillWantedAndFailuresGiveNothing) {
  std::atomic<int> calls{0};
  ConvertAhead ahead(fake(&calls));
  ASSERT_TRUE(ahead.plan({{"x", "q2_K", {1.0f}, 10}, {"bad", "q2_K", {}, 10}}, 1000));
  EXPECT_FALSE(ahead.take("bad", "q2_K", {}).has_value());  // the caller converts and reports
  // x converted and still in the new list: kept, not converted again.
  ASSERT_TRUE(ahead.plan({{"x", "q2_K", {1.0f}, 10}, {"y", "q4_K", {}, 10}}, 1000));
  EXPECT_FALSE(ahead.take("x", "q2_K", {2.0f}).has_value());  // another imatrix: not these bytes
  EXPECT_EQ(ahead.take("y", "q4_K", {}).value_or(std::vector<uint8_t>{}).size(), 10u);
  EXPECT_EQ(calls, 3);
  ASSERT_TRUE(ahead.plan({{"z", "q2_K", {}, 10}}, 1000));
  ahead.clear();
  EXPECT_FALSE(ahead.take("z", "q2_K", {}).has_value());
  EXPECT_FALSE(ahead.plan({{"big", "q2_K", {}, 2000}}, 1000));  // alone over the cap
}

// busy_s counts the converter's time in conversions (what measure reports as
// eval_split_s.convert_ahead), not its time idle.
TEST(EngineConvertAhead, BusySecondsCountConversionsOnly) {
  ConvertAhead ahead([](const Job& j, const std::function<void(const void*, size_t)>& sink) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::vector<uint8_t> b(j.bytes, 1);
    sink(b.data(), b.size());
  });
  EXPECT_EQ(ahead.busy_s(), 0.0);
  ASSERT_TRUE(ahead.plan({{"a", "q2_K", {}, 8}, {"b", "q2_K", {}, 8}}, 100));
  ASSERT_TRUE(ahead.take("b", "q2_K", {}).has_value());  // waits for both
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // idle: not counted
  EXPECT_GE(ahead.busy_s(), 0.1);
  EXPECT_LT(ahead.busy_s(), 0.25);  // 0.4+ if the idle 0.3 s counted; room for slow sleeps
}

}  // namespace
}  // namespace cb::engine
