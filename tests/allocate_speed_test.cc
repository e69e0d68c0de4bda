// The speed table of --min-decode-speed (issue 17 item 4): uniform mixes of the
// real model built and timed through the engine, cached per machine; no timing
// thresholds here (speed figures live in bench/speed_floor.sh).
#include <filesystem>

#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cerebellum/card/machine.h"
#include "cerebellum/common/io.h"
#include "test_paths.h"

namespace cb {
namespace {

TEST(AllocateSpeed, TableIsMeasuredOnUniformMixesAndCached) {
  const ModelInfo model = inspect_model(test::model("cb-dense-12l-F16.gguf"));
  const std::string cache = test::temp_dir("speed-table") + "/speed.json";
  card::SpeedOptions so{.n_threads = 2, .pp_tokens = 8, .tg_tokens = 8, .repetitions = 1};
  std::vector<std::string> measured;
  Logger log{[&](LogLevel, std::string_view m) { measured.emplace_back(m); }};
  const SpeedTable t = card::measure_speed_table(model, {"q4_K", "iq4_xs"}, so, "", cache, log);
  ASSERT_EQ(t.tg_tokens_per_s.size(), 2u);
  for (const auto& [type, tg] : t.tg_tokens_per_s) EXPECT_GT(tg, 0) << type;
  EXPECT_EQ(measured.size(), 2u);
  EXPECT_NE(t.machine.find("2 threads"), std::string::npos) << t.machine;
  // The cache keeps what was measured: a second call measures only the new type.
  measured.clear();
  const SpeedTable again = card::measure_speed_table(model, {"q4_K", "iq4_xs", "q6_K"}, so, "", cache, log);
  ASSERT_EQ(measured.size(), 1u);
  EXPECT_NE(measured.front().find("q6_K"), std::string::npos);
  EXPECT_EQ(again.tg_tokens_per_s.at("q4_K"), t.tg_tokens_per_s.at("q4_K"));
  const auto j = nlohmann::json::parse(read_file(cache));
  EXPECT_EQ(j["tg_tokens_per_s"].size(), 3u);
  // No temporary mix is left behind.
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path())) {
    EXPECT_EQ(e.path().filename().string().rfind("cb-speed-" + std::to_string(::getpid()), 0), std::string::npos);
  }
}

}  // namespace
}  // namespace cb
