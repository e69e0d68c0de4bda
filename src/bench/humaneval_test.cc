#include "cerebellum/bench/humaneval.h"

#include <gtest/gtest.h>

#include "cerebellum/bench/tasks.h"
#include "test_paths.h"

namespace cb::bench {
namespace {

TEST(HumanEval, ExtractKeepsIndentationAndFindsFencesAnywhere) {
  const std::string prompt = "def f(x):\n    \"\"\"doc\"\"\"\n";
  // The original project's bug: .strip() ate the first line's indent.
  const std::string body = "Here it is:\n```python\n    if x > 0:\n        return x\n    return -x\n```\nDone.";
  EXPECT_EQ(extract_program(prompt, body, "f", true), prompt + "    if x > 0:\n        return x\n    return -x\n");
  const std::string whole = "```python\ndef f(x):\n    return abs(x)\n```";
  EXPECT_EQ(extract_program(prompt, whole, "f", true), prompt + "\n\ndef f(x):\n    return abs(x)\n");
  EXPECT_EQ(extract_program(prompt, "    return x\n", "f", false), prompt + "    return x\n");
}

TEST(HumanEval, SandboxLimits) {
  HumanEvalOptions o;
  o.timeout_s = 2;
  EXPECT_TRUE(run_python("print('ok')\n", o).passed);
  const auto fail = run_python("raise SystemExit(3)\n", o);
  EXPECT_FALSE(fail.passed);
  EXPECT_EQ(fail.exit_code, 3);
  const auto loop = run_python("while True:\n    pass\n", o);
  EXPECT_TRUE(loop.timed_out);
  EXPECT_FALSE(loop.passed);
  o.memory_mb = 256;
  EXPECT_FALSE(run_python("x = bytearray(1 << 30)\n", o).passed);
  if (network_isolation() != "none") {
    EXPECT_FALSE(run_python("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\n", o).passed);
  }
}

TEST(HumanEval, CanonicalSolutionsPassBaseAndPlus) {
  TaskOptions t;
  t.data_dir = test::data("");
  t.limit = 3;
  const auto qs = find_task("humanevalplus").load(t);
  ASSERT_EQ(qs.size(), 3u);
  HumanEvalOptions o;
  for (const auto& q : qs) {
    const std::string good = q.prompt + q.meta.value("canonical_solution", "");
    EXPECT_TRUE(run_python(base_test_program(good, q.meta), o).passed) << q.id;
    EXPECT_TRUE(run_python(plus_test_program(good, q.prompt, q.meta), o).passed) << q.id;
    const std::string bad = q.prompt + "    return None\n";
    EXPECT_FALSE(run_python(base_test_program(bad, q.meta), o).passed) << q.id;
    EXPECT_FALSE(run_python(plus_test_program(bad, q.prompt, q.meta), o).passed) << q.id;
  }
}

}  // namespace
}  // namespace cb::bench
