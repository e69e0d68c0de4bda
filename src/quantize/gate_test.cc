// quantize's default gate text (issue 13): with no --eval-text, the last part
// of the calibration text is held out of measuring and searching.
#include "quantize/gate.h"

#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"
#include "cerebellum/common/io.h"
#include "test_paths.h"

namespace cb {
namespace {

QuantizeOptions with_calibration(const std::string& path) {
  QuantizeOptions o;
  o.measure.texts = {{"en", path}};
  return o;
}

TEST(GateHeldOut, TheLastQuarterOfTheCalibrationTextIsTheGatesAndNoOneElses) {
  const std::string dir = test::temp_dir("gate-held-out");
  std::string text;
  for (int i = 0; i < 100; ++i) text += "line " + std::to_string(i) + " of the calibration text\n";
  write_file_atomic(dir + "/calib.txt", text);
  QuantizeOptions o = with_calibration(dir + "/calib.txt");
  hold_out_calibration_slice(o, dir + "/run");
  ASSERT_EQ(o.gate.eval_texts.size(), 1u);
  EXPECT_EQ(o.gate.eval_texts[0].domain, "en-heldout");
  EXPECT_EQ(o.measure.texts[0].domain, "en");
  const std::string kept = read_file(o.measure.texts[0].path), held = read_file(o.gate.eval_texts[0].path);
  EXPECT_EQ(kept + held, text);           // disjoint and complete
  EXPECT_EQ(held.rfind("line ", 0), 0u);  // cut at a line
  EXPECT_NEAR(static_cast<double>(held.size()) / text.size(), 0.25, 0.02);
  EXPECT_EQ(kept.find(held.substr(0, held.find('\n'))), std::string::npos);  // no held-out line is measured on
}

TEST(GateHeldOut, GivenEvalTextsOrAReusedJournalKeepTheTexts) {
  const std::string dir = test::temp_dir("gate-held-out-kept");
  write_file_atomic(dir + "/calib.txt", "a\nb\nc\nd\n");
  QuantizeOptions given = with_calibration(dir + "/calib.txt");
  given.gate.eval_texts = {{"prose", dir + "/wiki.txt"}};
  hold_out_calibration_slice(given, dir + "/run");
  EXPECT_EQ(given.measure.texts[0].path, dir + "/calib.txt");
  EXPECT_EQ(given.gate.eval_texts.size(), 1u);
  QuantizeOptions reused = with_calibration(dir + "/calib.txt");
  reused.journal = dir + "/old.jsonl";
  hold_out_calibration_slice(reused, dir + "/run");
  EXPECT_EQ(reused.measure.texts[0].path, dir + "/calib.txt");
  EXPECT_TRUE(reused.gate.eval_texts.empty());
  EXPECT_FALSE(std::filesystem::exists(dir + "/run"));
}

TEST(GateHeldOut, ATextWithNothingToHoldOutIsAnInputError) {
  const std::string dir = test::temp_dir("gate-held-out-short");
  write_file_atomic(dir + "/one-line.txt", "a single line without a break at its end");
  QuantizeOptions o = with_calibration(dir + "/one-line.txt");
  EXPECT_THROW(hold_out_calibration_slice(o, dir + "/run"), InputError);
}

}  // namespace
}  // namespace cb
