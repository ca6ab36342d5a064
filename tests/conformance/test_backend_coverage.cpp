// Which device runs which op: prints the op x dtype x device coverage table, checks it against
// what the CPU and OpenCL backends declare on purpose, and checks that running an unsupported
// op throws kUnimplemented (never crashes or computes garbage).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <optional>

#include "conformance/op_harness.h"
#include "hal/registry.h"

namespace mixserve::conformance {
namespace {

/// One representative op of a kind with the given operand type, and the tensors it uses.
struct SampleOp {
  std::array<hal::Tensor, 4> tensors;  ///< dst, src0, src1, src2 (unused ones stay default)
  hal::Op op;
};

hal::Tensor tensor(DType type, std::array<int64_t, 4> ne) {
  hal::Tensor t;
  t.dtype = type;
  t.ne = ne;
  return t;
}

// `type` is the weight/table type for mat_mul and get_rows, the element type otherwise.
std::unique_ptr<SampleOp> sample_op(hal::OpKind kind, DType type) {
  auto s = std::make_unique<SampleOp>();
  auto& t = s->tensors;
  int n_src = 2;
  switch (kind) {
    case hal::OpKind::kMatMul:
      t = {tensor(DType::kF32, {8, 3, 1, 1}), tensor(type, {64, 8, 1, 1}), tensor(DType::kF32, {64, 3, 1, 1}), {}};
      break;
    case hal::OpKind::kGetRows:
      t = {tensor(DType::kF32, {64, 3, 1, 1}), tensor(type, {64, 11, 1, 1}), tensor(DType::kI32, {3, 1, 1, 1}), {}};
      break;
    case hal::OpKind::kAdd:
      t = {tensor(type, {37, 3, 1, 1}), tensor(type, {37, 3, 1, 1}), tensor(type, {37, 1, 1, 1}), {}};
      break;
    case hal::OpKind::kRmsNorm:
      t = {tensor(type, {37, 3, 1, 1}), tensor(type, {37, 3, 1, 1}), tensor(type, {37, 1, 1, 1}), {}};
      break;
    case hal::OpKind::kSwiGLU:
      t = {tensor(type, {37, 3, 1, 1}), tensor(type, {37, 3, 1, 1}), tensor(type, {37, 3, 1, 1}), {}};
      break;
    case hal::OpKind::kRope:
      t = {tensor(type, {64, 3, 2, 1}), {}, {}, {}};
      n_src = 0;
      break;
    case hal::OpKind::kAttention:
      t = {tensor(type, {256, 2, 1, 1}), tensor(type, {64, 4, 2, 1}), tensor(type, {128, 8, 1, 1}),
           tensor(type, {128, 8, 1, 1})};
      n_src = 3;
      break;
    case hal::OpKind::kStoreKV:
      t = {tensor(type, {24, 10, 1, 1}), tensor(type, {24, 2, 1, 1}), {}, {}};
      n_src = 1;
      break;
  }
  if (kind == hal::OpKind::kRope) {
    s->op = hal::make_op(kind, &t[0], &t[0]);  // in place
    s->op.i = {0, 64, 0};
    s->op.f[0] = 10000.0f;
  } else {
    s->op = hal::make_op(kind, &t[0], &t[1], n_src >= 2 ? &t[2] : nullptr, n_src >= 3 ? &t[3] : nullptr);
    if (kind == hal::OpKind::kAttention) s->op.i = {0, 2, 0}, s->op.f[0] = 0.125f;
    if (kind == hal::OpKind::kRmsNorm) s->op.f[0] = 1e-5f;
  }
  return s;
}

struct Row {
  hal::OpKind kind;
  DType type;
};

// Every op with every operand type the suite tests, plus rows nobody supports (q4_1 weights,
// f16 activations) so that each backend's refusal path is exercised.
std::vector<Row> coverage_rows() {
  std::vector<Row> rows;
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
    rows.push_back({hal::OpKind::kMatMul, type});
  }
  for (DType type : {DType::kF32, DType::kF16, DType::kBF16, DType::kQ8_0, DType::kQ4_0}) {
    rows.push_back({hal::OpKind::kGetRows, type});
  }
  for (auto kind : {hal::OpKind::kAdd, hal::OpKind::kRmsNorm, hal::OpKind::kSwiGLU, hal::OpKind::kRope,
                    hal::OpKind::kAttention, hal::OpKind::kStoreKV}) {
    rows.push_back({kind, DType::kF32});
  }
  rows.push_back({hal::OpKind::kAdd, DType::kF16});
  return rows;
}

std::string row_name(const Row& r) { return str_cat(hal::op_name(r.kind), " ", dtype_name(r.type)); }

// What each backend declares on purpose (nullopt: a backend this test has no expectations for).
std::optional<bool> expected_support(const std::string& backend, const Row& r) {
  const bool f32 = r.type == DType::kF32;
  if (backend == "cpu") {
    if (r.kind == hal::OpKind::kMatMul || r.kind == hal::OpKind::kGetRows) return r.type != DType::kQ4_1;
    return f32;
  }
  if (backend == "opencl") {
    if (r.kind == hal::OpKind::kMatMul) {
      return f32 || r.type == DType::kF16 || r.type == DType::kQ8_0 || r.type == DType::kQ4_0;
    }
    const bool elementwise = r.kind == hal::OpKind::kAdd || r.kind == hal::OpKind::kRmsNorm ||
                             r.kind == hal::OpKind::kSwiGLU;
    return elementwise && f32;  // get_rows, rope, attention, store_kv stay on another device
  }
  return std::nullopt;
}

TEST(Coverage, TableMatchesWhatBackendsDeclare) {
  const auto devices = all_devices();
  std::string header = str_cat("op x dtype        ");
  for (hal::Device* d : devices) header += str_cat(" ", d->info().id);
  std::printf("%s\n", header.c_str());
  for (const Row& r : coverage_rows()) {
    std::string line = row_name(r);
    line.resize(18, ' ');
    for (hal::Device* d : devices) {
      const auto info = d->info();
      const auto sample = sample_op(r.kind, r.type);
      const bool yes = d->supports_op(sample->op);
      std::string cell = yes ? "yes" : "-";
      cell.resize(info.id.size(), ' ');
      line += " " + cell;
      if (auto want = expected_support(info.backend, r)) {
        EXPECT_EQ(yes, *want) << info.id << ": " << row_name(r);
      }
    }
    std::printf("%s\n", line.c_str());
  }
  for (const auto& status : hal::Registry::instance().statuses()) std::printf("backend status: %s\n", status.c_str());
}

TEST(Coverage, EveryOpRunsOnSomeDevice) {
  for (const Row& r : coverage_rows()) {
    if (r.kind == hal::OpKind::kMatMul && r.type == DType::kQ4_1) continue;
    if (r.type == DType::kF16 && r.kind == hal::OpKind::kAdd) continue;
    bool any = false;
    for (hal::Device* d : all_devices()) any = any || d->supports_op(sample_op(r.kind, r.type)->op);
    EXPECT_TRUE(any) << row_name(r) << " runs nowhere";
  }
}

TEST(Coverage, UnsupportedOpsThrowUnimplemented) {
  int checked = 0;
  for (hal::Device* device : all_devices()) {
    const std::string id = device->info().id;
    auto stream = device->create_stream();
    for (const Row& r : coverage_rows()) {
      auto sample = sample_op(r.kind, r.type);
      if (device->supports_op(sample->op)) continue;
      // Real buffers on the device, so that a backend that ignored its own supports_op would
      // run on valid memory rather than crash; it must refuse before touching them.
      std::vector<std::unique_ptr<hal::Buffer>> buffers;
      const hal::Op& op = sample->op;
      for (auto& t : sample->tensors) {
        const bool used = &t == op.dst || std::find(op.src.begin(), op.src.end(), &t) != op.src.end();
        if (used && t.buffer == nullptr) {
          buffers.push_back(device->allocate(t.bytes()));
          t.buffer = buffers.back().get();
        }
      }
      try {
        stream->run(sample->op);
        stream->synchronize();
        ADD_FAILURE() << id << " ran unsupported " << row_name(r);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ErrorCode::kUnimplemented) << id << " " << row_name(r) << ": " << e.what();
        EXPECT_NE(std::string(e.what()).find(hal::op_name(r.kind)), std::string::npos) << e.what();
      }
      ++checked;
    }
  }
  EXPECT_GT(checked, 0);
}

}  // namespace
}  // namespace mixserve::conformance
