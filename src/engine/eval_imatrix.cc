#include "engine/eval_imatrix.h"

#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "ggml-backend.h"
#include "ggml.h"

namespace cb::engine {

bool ImatrixCollector::callback(ggml_tensor* t, bool ask, void* user_data) {
  auto* self = static_cast<ImatrixCollector*>(user_data);
  if (ask) return self->wanted(t);
  if (self->error_.empty()) self->collect(t);
  return true;
}

bool ImatrixCollector::wanted(const ggml_tensor* t) const {
  if (t->op != GGML_OP_MUL_MAT && t->op != GGML_OP_MUL_MAT_ID) return false;
  const ggml_tensor* src0 = t->src[0];
  const ggml_tensor* src1 = t->src[1];
  if (src1->type != GGML_TYPE_F32) return false;
  // Same filter as llama-imatrix: tiny batches are skipped (they are not
  // weight products of the token stream), only block and output weights.
  if (t->op == GGML_OP_MUL_MAT && src1->ne[1] < 16) return false;
  const std::string name = src0->name;
  return name.rfind("blk.", 0) == 0 || (include_output_ && name == "output.weight");
}

void ImatrixCollector::collect(const ggml_tensor* t) {
  const ggml_tensor* src1 = t->src[1];
  const float* data = nullptr;
  if (src1->buffer && ggml_backend_buffer_is_host(src1->buffer)) {
    data = static_cast<const float*>(src1->data);
  } else {
    staging_.resize(ggml_nbytes(src1));
    ggml_backend_tensor_get(src1, staging_.data(), 0, staging_.size());
    data = reinterpret_cast<const float*>(staging_.data());
  }
  if (t->op == GGML_OP_MUL_MAT_ID) {
    collect_mul_mat_id(t, data);
  } else {
    collect_mul_mat(t, data);
  }
}

void ImatrixCollector::collect_mul_mat_id(const ggml_tensor* t, const float* src1_data) {
  const ggml_tensor* src0 = t->src[0];
  const ggml_tensor* src1 = t->src[1];
  const ggml_tensor* ids = t->src[2];
  const int64_t n_as = src0->ne[2], n_ids = ids->ne[0], ne0 = src1->ne[0];
  std::vector<uint8_t> id_bytes(ggml_nbytes(ids));
  ggml_backend_tensor_get(ids, id_bytes.data(), 0, id_bytes.size());
  ActivationStats& e = stats_[src0->name];
  if (e.sums.empty()) {
    e.sums.assign(ne0 * n_as, 0.0f);
    e.counts.assign(n_as, 0);
  }
  const char* base = reinterpret_cast<const char*>(src1_data);
  for (int64_t idx = 0; idx < n_ids; ++idx) {
    for (int64_t row = 0; row < src1->ne[2]; ++row) {
      int32_t ex = 0;
      std::memcpy(&ex, id_bytes.data() + row * ids->nb[1] + idx * ids->nb[0], sizeof(ex));
      if (ex < 0 || ex >= n_as) {
        error_ = fmt::format("{}: expert id {} out of range", src0->name, ex);
        return;
      }
      const float* x = reinterpret_cast<const float*>(base + (idx % src1->ne[1]) * src1->nb[1] +
                                                      row * src1->nb[2]);
      float* acc = e.sums.data() + ex * ne0;
      e.counts[ex]++;
      for (int64_t j = 0; j < ne0; ++j) acc[j] += x[j] * x[j];
    }
  }
}

void ImatrixCollector::collect_mul_mat(const ggml_tensor* t, const float* src1_data) {
  const ggml_tensor* src0 = t->src[0];
  const ggml_tensor* src1 = t->src[1];
  const int64_t n_mat = src0->ne[2] * src0->ne[3], ne0 = src1->ne[0];
  ActivationStats& e = stats_[src0->name];
  if (e.sums.empty()) {
    e.sums.assign(ne0 * n_mat, 0.0f);
    e.counts.assign(1, 0);
  }
  const char* base = reinterpret_cast<const char*>(src1_data);
  for (int64_t i3 = 0; i3 < src1->ne[3]; ++i3) {
    for (int64_t i2 = 0; i2 < src1->ne[2]; ++i2) {
      const int64_t mat = (i3 % src0->ne[3]) * src0->ne[2] + (i2 % src0->ne[2]);
      float* acc = e.sums.data() + mat * ne0;
      for (int64_t row = 0; row < src1->ne[1]; ++row) {
        const float* x = reinterpret_cast<const float*>(base + row * src1->nb[1] +
                                                        i2 * src1->nb[2] + i3 * src1->nb[3]);
        for (int64_t j = 0; j < ne0; ++j) acc[j] += x[j] * x[j];
      }
    }
  }
  for (auto& c : e.counts) c += ggml_nrows(src1) / n_mat;
}

}  // namespace cb::engine
