// load_imatrix reads a file once per process and reads it again once it changes.
#include <string>

#include <gtest/gtest.h>

#include "cerebellum/common/error.h"
#include "cerebellum/imatrix/imatrix.h"
#include "test_paths.h"

namespace cb {
namespace {

Imatrix one_entry(float value, int64_t n_cols) {
  Imatrix im;
  im.chunk_count = 1;
  im.chunk_size = 512;
  ImatrixEntry e;
  e.sums.assign(n_cols, value);
  e.counts = {4};
  im.entries["blk.0.ffn_up.weight"] = e;
  return im;
}

TEST(ImatrixLoad, ReadOnceThenAgainWhenTheFileChanges) {
  const std::string path = test::temp_dir("imatrix-load") + "/im.gguf";
  write_imatrix_gguf(one_entry(2.0f, 256), path);
  const auto a = load_imatrix(path);
  const auto b = load_imatrix(path);
  EXPECT_EQ(a.get(), b.get());  // the same object: read once
  EXPECT_FLOAT_EQ(a->weights_for("blk.0.ffn_up.weight").at(0), 0.5f);

  write_imatrix_gguf(one_entry(8.0f, 512), path);  // same path, new content and size
  const auto c = load_imatrix(path);
  EXPECT_NE(c.get(), a.get());
  EXPECT_EQ(c->find("blk.0.ffn_up.weight")->n_cols(), 512);
  EXPECT_FLOAT_EQ(c->weights_for("blk.0.ffn_up.weight").at(0), 2.0f);
  EXPECT_THROW(load_imatrix(path + ".missing"), InputError);
}

}  // namespace
}  // namespace cb
