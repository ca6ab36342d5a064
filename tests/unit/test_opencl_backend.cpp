// Unit tests of the OpenCL backend: error mapping, enumeration, buffers and copies, allocation
// failure, program build errors and op errors. Tests that need a device skip with the reason
// when none is registered (OpenCL not built, or no ICD/platform/device on this machine).
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <thread>

#include "common/error.h"
#include "hal/registry.h"

#ifdef MIXSERVE_HAVE_OPENCL
#include "backends/opencl/opencl_device.h"
#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_program.h"
#endif

namespace mixserve {
namespace {

std::vector<hal::Device*> opencl_devices() {
  std::vector<hal::Device*> out;
  for (hal::Device* d : hal::Registry::instance().devices()) {
    if (d->info().backend == "opencl") out.push_back(d);
  }
  return out;
}

std::string why_no_device() {
#ifndef MIXSERVE_HAVE_OPENCL
  return "this build has no OpenCL backend (MIXSERVE_OPENCL=OFF or OpenCL not found)";
#else
  std::string why = "no OpenCL device registered";
  for (const auto& s : hal::Registry::instance().statuses()) why += ": " + s;
  return why;
#endif
}

#define OPENCL_DEVICE_OR_SKIP(var)                            \
  const auto var##_all = opencl_devices();                    \
  if (var##_all.empty()) GTEST_SKIP() << why_no_device();     \
  hal::Device& var = *var##_all.front()

template <typename F>
ErrorCode error_code_of(F&& f, std::string* message = nullptr) {
  try {
    f();
  } catch (const Error& e) {
    if (message != nullptr) *message = e.what();
    return e.code();
  }
  ADD_FAILURE() << "no Error thrown";
  return ErrorCode::kInternal;
}

hal::Tensor f32_tensor(std::array<int64_t, 4> ne, hal::Buffer* buffer, size_t offset = 0) {
  hal::Tensor t;
  t.dtype = DType::kF32;
  t.ne = ne;
  t.buffer = buffer;
  t.offset = offset;
  return t;
}

TEST(OpenclBackend, EnumerationGivesStableIdsAndFacts) {
  const auto devices = opencl_devices();
  if (devices.empty()) GTEST_SKIP() << why_no_device();
  for (size_t i = 0; i < devices.size(); ++i) {
    const auto info = devices[i]->info();
    EXPECT_EQ(info.id, "opencl:" + std::to_string(i));
    EXPECT_EQ(info.backend, "opencl");
    EXPECT_FALSE(info.name.empty());
    EXPECT_FALSE(info.vendor.empty());
    EXPECT_GT(info.memory_total, 0u);
    EXPECT_LE(info.memory_free, info.memory_total);
    EXPECT_GT(info.compute_units, 0);
    EXPECT_NE(info.details.find("OpenCL"), std::string::npos) << info.details;
    EXPECT_NE(info.details.find("driver"), std::string::npos) << info.details;
    EXPECT_EQ(&hal::Registry::instance().device(info.id), devices[i]);
  }
  // Registration order: the CPU first, then OpenCL.
  EXPECT_EQ(hal::Registry::instance().devices().front()->info().id, "cpu");
  EXPECT_TRUE(hal::Registry::instance().statuses().empty());
}

TEST(OpenclBackend, UnknownDeviceErrorListsIds) {
  std::string message;
  EXPECT_EQ(error_code_of([] { hal::Registry::instance().device("opencl:99"); }, &message), ErrorCode::kNotFound);
  EXPECT_NE(message.find("opencl:99"), std::string::npos) << message;
  EXPECT_NE(message.find("cpu"), std::string::npos) << message;
}

TEST(OpenclBackend, BufferWriteReadRoundTripAtOffsets) {
  OPENCL_DEVICE_OR_SKIP(device);
  auto buffer = device.allocate(1000);
  EXPECT_EQ(buffer->size(), 1000u);
  EXPECT_EQ(buffer->host_ptr(), nullptr);  // device memory, reached only through streams
  EXPECT_EQ(&buffer->device(), &device);
  auto stream = device.create_stream();
  std::vector<uint8_t> pattern(1000);
  std::iota(pattern.begin(), pattern.end(), uint8_t{7});
  stream->write(*buffer, 0, pattern.data(), pattern.size());
  const std::vector<uint8_t> patch = {1, 2, 3, 4, 5};
  stream->write(*buffer, 997 - 5 + 3, patch.data(), patch.size());  // ends at the last byte
  std::copy(patch.begin(), patch.end(), pattern.begin() + 995);
  stream->write(*buffer, 3, patch.data(), 2);
  std::copy(patch.begin(), patch.begin() + 2, pattern.begin() + 3);
  std::vector<uint8_t> back(1000, 0);
  stream->read(*buffer, 0, back.data(), back.size());
  EXPECT_EQ(back, pattern);
  std::vector<uint8_t> middle(101, 0);
  stream->read(*buffer, 450, middle.data(), middle.size());
  EXPECT_TRUE(std::equal(middle.begin(), middle.end(), pattern.begin() + 450));
  stream->write(*buffer, 1000, patch.data(), 0);  // empty copies at the end are fine
  stream->read(*buffer, 1000, back.data(), 0);
}

TEST(OpenclBackend, CopiesOutsideTheBufferAreRejected) {
  OPENCL_DEVICE_OR_SKIP(device);
  auto buffer = device.allocate(64);
  auto stream = device.create_stream();
  std::vector<uint8_t> data(64);
  EXPECT_EQ(error_code_of([&] { stream->write(*buffer, 1, data.data(), 64); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([&] { stream->read(*buffer, 65, data.data(), 0); }), ErrorCode::kInvalidArgument);
  EXPECT_EQ(error_code_of([&] { stream->read(*buffer, SIZE_MAX, data.data(), 2); }), ErrorCode::kInvalidArgument);
  auto cpu_buffer = hal::Registry::instance().device("cpu").allocate(64);
  std::string message;
  EXPECT_EQ(error_code_of([&] { stream->write(*cpu_buffer, 0, data.data(), 8); }, &message),
            ErrorCode::kInvalidArgument);
  EXPECT_NE(message.find("cpu"), std::string::npos) << message;
}

TEST(OpenclBackend, AbsurdAllocationIsResourceExhausted) {
  OPENCL_DEVICE_OR_SKIP(device);
  std::string message;
  EXPECT_EQ(error_code_of([&] { device.allocate(size_t{1} << 60); }, &message), ErrorCode::kResourceExhausted);
  EXPECT_NE(message.find(device.info().id), std::string::npos) << message;
  const uint64_t free_before = device.info().memory_free;
  {
    auto buffer = device.allocate(1 << 20);
    EXPECT_EQ(device.info().memory_free, free_before - (1 << 20));
  }
  EXPECT_EQ(device.info().memory_free, free_before);
  auto empty = device.allocate(0);
  EXPECT_EQ(empty->size(), 0u);
}

TEST(OpenclBackend, WrapHostCopiesTheBytes) {
  OPENCL_DEVICE_OR_SKIP(device);
  std::vector<float> values = {1.5f, -2.0f, 3.25f};
  auto buffer = device.wrap_host(values.data(), values.size() * sizeof(float));
  values[0] = 99.0f;  // the device copy must not follow the host memory
  auto stream = device.create_stream();
  std::vector<float> back(3);
  stream->read(*buffer, 0, back.data(), sizeof(float) * 3);
  EXPECT_EQ(back, (std::vector<float>{1.5f, -2.0f, 3.25f}));
  EXPECT_EQ(error_code_of([&] { device.wrap_host(nullptr, 4); }), ErrorCode::kInvalidArgument);
}

TEST(OpenclBackend, OpErrorsAreClear) {
  OPENCL_DEVICE_OR_SKIP(device);
  auto stream = device.create_stream();
  auto buf = device.allocate(4096);
  auto cpu_buf = hal::Registry::instance().device("cpu").allocate(4096);
  auto w = f32_tensor({8, 4, 1, 1}, buf.get(), 0);
  auto x = f32_tensor({8, 2, 1, 1}, buf.get(), 256);
  auto y = f32_tensor({4, 2, 1, 1}, buf.get(), 512);
  const auto mm = hal::make_op(hal::OpKind::kMatMul, &y, &w, &x);
  ASSERT_TRUE(device.supports_op(mm));
  stream->run(mm);
  stream->synchronize();
  std::string message;
  // Unsupported kinds, types and shapes: kUnimplemented naming the op and the reason.
  auto attention = hal::make_op(hal::OpKind::kAttention, &y, &x, &x, &x);
  EXPECT_EQ(error_code_of([&] { stream->run(attention); }, &message), ErrorCode::kUnimplemented);
  EXPECT_NE(message.find("attention"), std::string::npos) << message;
  auto w_bf16 = w;
  w_bf16.dtype = DType::kBF16;
  EXPECT_FALSE(device.supports_op(hal::make_op(hal::OpKind::kMatMul, &y, &w_bf16, &x)));
  EXPECT_EQ(error_code_of([&] { stream->run(hal::make_op(hal::OpKind::kMatMul, &y, &w_bf16, &x)); }, &message),
            ErrorCode::kUnimplemented);
  EXPECT_NE(message.find("bf16"), std::string::npos) << message;
  auto x_bad = f32_tensor({9, 2, 1, 1}, buf.get(), 256);
  EXPECT_FALSE(device.supports_op(hal::make_op(hal::OpKind::kMatMul, &y, &w, &x_bad)));
  auto w_q = w;
  w_q.dtype = DType::kQ8_0;  // 8 values per row: not a whole Q8_0 block
  EXPECT_FALSE(device.supports_op(hal::make_op(hal::OpKind::kMatMul, &y, &w_q, &x)));
  auto x_misaligned = f32_tensor({8, 2, 1, 1}, buf.get(), 258);
  EXPECT_FALSE(device.supports_op(hal::make_op(hal::OpKind::kMatMul, &y, &w, &x_misaligned)));
  auto b_bad = f32_tensor({8, 3, 1, 1}, buf.get(), 1024);  // neither 1 row nor a's 2 rows
  EXPECT_FALSE(device.supports_op(hal::make_op(hal::OpKind::kAdd, &x, &x, &b_bad)));
  // Operands in another device's memory or beyond their buffer: kInvalidArgument.
  auto x_cpu = f32_tensor({8, 2, 1, 1}, cpu_buf.get(), 0);
  EXPECT_EQ(error_code_of([&] { stream->run(hal::make_op(hal::OpKind::kMatMul, &y, &w, &x_cpu)); }, &message),
            ErrorCode::kInvalidArgument);
  EXPECT_NE(message.find("not opencl"), std::string::npos) << message;
  auto y_past = f32_tensor({4, 2, 1, 1}, buf.get(), 4096 - 16);
  EXPECT_EQ(error_code_of([&] { stream->run(hal::make_op(hal::OpKind::kMatMul, &y_past, &w, &x)); }, &message),
            ErrorCode::kInvalidArgument);
  EXPECT_NE(message.find("does not fit"), std::string::npos) << message;
  auto x_none = f32_tensor({8, 2, 1, 1}, nullptr);
  EXPECT_EQ(error_code_of([&] { stream->run(hal::make_op(hal::OpKind::kMatMul, &y, &w, &x_none)); }),
            ErrorCode::kInvalidArgument);
  stream->synchronize();
}

TEST(OpenclBackend, StreamsOnSeveralThreadsShareTheProgram) {
  OPENCL_DEVICE_OR_SKIP(device);
  constexpr int kThreads = 3;
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&device, &failures, i] {
      try {
        auto stream = device.create_stream();
        auto buf = device.allocate(3 * 256);
        std::vector<float> a(64, static_cast<float>(i)), b(64, 0.5f), y(64);
        stream->write(*buf, 0, a.data(), 256);
        stream->write(*buf, 256, b.data(), 256);
        auto ta = f32_tensor({64, 1, 1, 1}, buf.get(), 0);
        auto tb = f32_tensor({64, 1, 1, 1}, buf.get(), 256);
        auto ty = f32_tensor({64, 1, 1, 1}, buf.get(), 512);
        for (int rep = 0; rep < 20; ++rep) stream->run(hal::make_op(hal::OpKind::kAdd, &ty, &ta, &tb));
        stream->read(*buf, 512, y.data(), 256);
        for (float v : y) {
          if (v != static_cast<float>(i) + 0.5f) failures[static_cast<size_t>(i)] = "wrong sum";
        }
      } catch (const std::exception& e) {
        failures[static_cast<size_t>(i)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& f : failures) EXPECT_EQ(f, "");
}

#ifdef MIXSERVE_HAVE_OPENCL

TEST(OpenclErrors, NamesAndCategories) {
  EXPECT_EQ(opencl::cl_error_name(CL_SUCCESS), "CL_SUCCESS");
  EXPECT_EQ(opencl::cl_error_name(CL_BUILD_PROGRAM_FAILURE), "CL_BUILD_PROGRAM_FAILURE");
  EXPECT_EQ(opencl::cl_error_name(CL_INVALID_GLOBAL_WORK_SIZE), "CL_INVALID_GLOBAL_WORK_SIZE");
  EXPECT_EQ(opencl::cl_error_name(CL_PLATFORM_NOT_FOUND_KHR), "CL_PLATFORM_NOT_FOUND_KHR");
  EXPECT_EQ(opencl::cl_error_name(-12345), "CL error -12345");
  EXPECT_EQ(opencl::cl_error_code(CL_OUT_OF_RESOURCES), ErrorCode::kResourceExhausted);
  EXPECT_EQ(opencl::cl_error_code(CL_MEM_OBJECT_ALLOCATION_FAILURE), ErrorCode::kResourceExhausted);
  EXPECT_EQ(opencl::cl_error_code(CL_OUT_OF_HOST_MEMORY), ErrorCode::kResourceExhausted);
  EXPECT_EQ(opencl::cl_error_code(CL_DEVICE_NOT_AVAILABLE), ErrorCode::kUnavailable);
  EXPECT_EQ(opencl::cl_error_code(CL_INVALID_KERNEL_ARGS), ErrorCode::kInternal);
  EXPECT_NO_THROW(opencl::check_cl(CL_SUCCESS, "clFinish"));
  std::string message;
  EXPECT_EQ(error_code_of([] { opencl::check_cl(CL_INVALID_VALUE, "clEnqueueReadBuffer", "8 bytes"); }, &message),
            ErrorCode::kInternal);
  EXPECT_EQ(message, "clEnqueueReadBuffer failed: CL_INVALID_VALUE (8 bytes)");
}

TEST(OpenclErrors, BuildFailureCarriesTheLog) {
  OPENCL_DEVICE_OR_SKIP(device);
  auto* cl_device = dynamic_cast<opencl::OpenclDevice*>(&device);
  ASSERT_NE(cl_device, nullptr);
  const std::string broken = "kernel void k(global float* y) { y[0] = no_such_function_xyz(1.0f); }";
  std::string message;
  EXPECT_EQ(error_code_of([&] { opencl::build_program(cl_device->context(), cl_device->id(), broken, ""); }, &message),
            ErrorCode::kInternal);
  EXPECT_NE(message.find("clBuildProgram failed: CL_BUILD_PROGRAM_FAILURE"), std::string::npos) << message;
  EXPECT_NE(message.find("no_such_function_xyz"), std::string::npos) << message;  // from the build log
  // The backend's own program builds (cached: the second call returns the same program).
  EXPECT_EQ(cl_device->program(), cl_device->program());
}

#endif  // MIXSERVE_HAVE_OPENCL

}  // namespace
}  // namespace mixserve
