#include "backends/opencl/opencl_stream.h"

#include <algorithm>

#include "backends/opencl/opencl_device.h"
#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_kernels.h"
#include "backends/opencl/opencl_ops.h"

namespace mixserve::opencl {
namespace {

// Work-group sizes are fixed per kernel: PoCL compiles a work-group function per local size,
// and a constant size keeps that to one compile per kernel.
constexpr size_t kRowLocal = 64;    // work-items per group for row-parallel kernels
constexpr size_t kNormLocal = 256;  // work-items reducing one rms_norm row

/// Size of a __local kernel argument.
struct LocalBytes {
  size_t bytes;
};

template <typename T>
void set_arg(cl_kernel kernel, const char* name, cl_uint index, const T& value) {
  check_cl(clSetKernelArg(kernel, index, sizeof(T), &value), "clSetKernelArg", str_cat(name, " argument ", index));
}

void set_arg(cl_kernel kernel, const char* name, cl_uint index, const LocalBytes& local) {
  check_cl(clSetKernelArg(kernel, index, local.bytes, nullptr), "clSetKernelArg", str_cat(name, " argument ", index));
}

template <typename... Args>
void set_args(cl_kernel kernel, const char* name, const Args&... args) {
  cl_uint index = 0;
  (set_arg(kernel, name, index++, args), ...);
}

cl_kernel create_kernel(cl_program program, const char* name) {
  cl_int status = CL_SUCCESS;
  cl_kernel kernel = clCreateKernel(program, name, &status);
  check_cl(status, "clCreateKernel", name);
  return kernel;
}

// Offset of a tensor in units of `unit` bytes (alignment is checked by unsupported_reason).
cl_ulong offset_in(const hal::Tensor& t, size_t unit) { return static_cast<cl_ulong>(t.offset / unit); }

const OpenclBuffer* as_opencl(const hal::Buffer& buffer) { return dynamic_cast<const OpenclBuffer*>(&buffer); }

void check_range(const hal::Buffer& buffer, size_t offset, size_t bytes, const char* what) {
  if (bytes > buffer.size() || offset > buffer.size() - bytes) {
    fail(ErrorCode::kInvalidArgument, "opencl ", what, " of ", bytes, " bytes at offset ", offset,
         " is outside the buffer of ", buffer.size(), " bytes");
  }
}

}  // namespace

OpenclStream::OpenclStream(OpenclDevice& device) : device_(device) {
  cl_int status = CL_SUCCESS;
  queue_ = clCreateCommandQueue(device.context(), device.id(), 0, &status);
  check_cl(status, "clCreateCommandQueue", device.name_id());
}

OpenclStream::~OpenclStream() {
  // Errors cannot be reported from a destructor; the queue is drained so no kernel outlives it.
  clFinish(queue_);
  for (cl_kernel k : {kernels_.quantize_q8_0, kernels_.rms_norm, kernels_.swiglu, kernels_.add}) {
    if (k != nullptr) clReleaseKernel(k);
  }
  for (const auto& pair : kernels_.matmul) {
    for (cl_kernel k : pair) {
      if (k != nullptr) clReleaseKernel(k);
    }
  }
  if (xq_ != nullptr) clReleaseMemObject(xq_);
  if (xd_ != nullptr) clReleaseMemObject(xd_);
  clReleaseCommandQueue(queue_);
}

const OpenclStream::Kernels& OpenclStream::kernels() {
  if (have_kernels_) return kernels_;
  cl_program program = device_.program();
  auto& mm = kernels_.matmul;
  const std::pair<cl_kernel*, const char*> all[] = {
      {&kernels_.quantize_q8_0, kQuantizeQ8_0Kernel}, {&mm[0][0], kMatMulF32Kernel},
      {&mm[0][1], kMatMulF32TiledKernel},             {&mm[1][0], kMatMulF16Kernel},
      {&mm[1][1], kMatMulF16TiledKernel},             {&mm[2][0], kMatMulQ8_0Kernel},
      {&mm[2][1], kMatMulQ8_0TiledKernel},            {&mm[3][0], kMatMulQ4_0Kernel},
      {&mm[3][1], kMatMulQ4_0TiledKernel},            {&kernels_.rms_norm, kRmsNormKernel},
      {&kernels_.swiglu, kSwiGLUKernel},              {&kernels_.add, kAddKernel}};
  for (const auto& [slot, name] : all) {
    if (*slot == nullptr) *slot = create_kernel(program, name);
  }
  have_kernels_ = true;
  return kernels_;
}

size_t OpenclStream::local_size(cl_kernel kernel, size_t want) const {
  size_t limit = 0;
  check_cl(clGetKernelWorkGroupInfo(kernel, device_.id(), CL_KERNEL_WORK_GROUP_SIZE, sizeof(limit), &limit, nullptr),
           "clGetKernelWorkGroupInfo");
  size_t size = 1;
  while (size * 2 <= std::min(want, limit)) size *= 2;
  return size;
}

void OpenclStream::launch(cl_kernel kernel, const char* name, int dims, const size_t* global, const size_t* local) {
  size_t rounded[2] = {0, 0};
  for (int i = 0; i < dims; ++i) {
    if (global[i] == 0) return;
    rounded[i] = (global[i] + local[i] - 1) / local[i] * local[i];
  }
  check_cl(clEnqueueNDRangeKernel(queue_, kernel, static_cast<cl_uint>(dims), nullptr, rounded, local, 0, nullptr,
                                  nullptr),
           "clEnqueueNDRangeKernel", name);
}

cl_mem OpenclStream::mem_of(const hal::Tensor& t, const char* role, const hal::Op& op) const {
  const std::string& id = device_.name_id();
  if (t.buffer == nullptr) {
    fail(ErrorCode::kInvalidArgument, id, ": op ", hal::op_name(op.kind), ": ", role, " '", t.name,
         "' has no buffer");
  }
  const OpenclBuffer* buffer = as_opencl(*t.buffer);
  if (buffer == nullptr || &buffer->device() != &device_) {
    fail(ErrorCode::kInvalidArgument, id, ": op ", hal::op_name(op.kind), ": ", role, " '", t.name,
         "' is in the memory of ", t.buffer->device().info().id, ", not ", id);
  }
  if (t.bytes() > buffer->size() || t.offset > buffer->size() - t.bytes()) {
    fail(ErrorCode::kInvalidArgument, id, ": op ", hal::op_name(op.kind), ": ", role, " '", t.name, "' ",
         t.shape_string(), " at offset ", t.offset, " does not fit its buffer of ", buffer->size(), " bytes");
  }
  return buffer->mem();
}

cl_mem OpenclStream::scratch(cl_mem& slot, size_t& capacity, size_t bytes) {
  if (slot != nullptr && capacity >= bytes) return slot;
  // Commands already queued keep the old object alive until they finish (clReleaseMemObject).
  if (slot != nullptr) clReleaseMemObject(slot);
  slot = nullptr;
  capacity = 0;
  if (bytes > device_.max_alloc()) {
    fail(ErrorCode::kResourceExhausted, device_.name_id(), ": scratch of ", bytes,
         " bytes exceeds the largest allocation of ", device_.max_alloc(), " bytes");
  }
  cl_int status = CL_SUCCESS;
  cl_mem mem = clCreateBuffer(device_.context(), CL_MEM_READ_WRITE, std::max<size_t>(bytes, 1), nullptr, &status);
  check_cl(status, "clCreateBuffer", str_cat(device_.name_id(), " scratch, ", bytes, " bytes"));
  slot = mem;
  capacity = bytes;
  return slot;
}

void OpenclStream::write(hal::Buffer& dst, size_t offset, const void* src, size_t bytes) {
  const OpenclBuffer* buffer = as_opencl(dst);
  if (buffer == nullptr || &buffer->device() != &device_) {
    fail(ErrorCode::kInvalidArgument, device_.name_id(), ": write into a buffer of ", dst.device().info().id);
  }
  check_range(dst, offset, bytes, "write");
  if (bytes == 0) return;
  if (src == nullptr) fail(ErrorCode::kInvalidArgument, "opencl write from a null pointer");
  check_cl(clEnqueueWriteBuffer(queue_, buffer->mem(), CL_TRUE, offset, bytes, src, 0, nullptr, nullptr),
           "clEnqueueWriteBuffer", str_cat(bytes, " bytes at offset ", offset));
}

void OpenclStream::read(const hal::Buffer& src, size_t offset, void* dst, size_t bytes) {
  const OpenclBuffer* buffer = as_opencl(src);
  if (buffer == nullptr || &buffer->device() != &device_) {
    fail(ErrorCode::kInvalidArgument, device_.name_id(), ": read from a buffer of ", src.device().info().id);
  }
  check_range(src, offset, bytes, "read");
  if (bytes == 0) return;
  if (dst == nullptr) fail(ErrorCode::kInvalidArgument, "opencl read into a null pointer");
  check_cl(clEnqueueReadBuffer(queue_, buffer->mem(), CL_TRUE, offset, bytes, dst, 0, nullptr, nullptr),
           "clEnqueueReadBuffer", str_cat(bytes, " bytes at offset ", offset));
}

void OpenclStream::synchronize() { check_cl(clFinish(queue_), "clFinish", device_.name_id()); }

void OpenclStream::run(const hal::Op& op) {
  if (auto why = unsupported_reason(op)) {
    fail(ErrorCode::kUnimplemented, device_.name_id(), ": unsupported op ", hal::op_name(op.kind), ": ", *why);
  }
  switch (op.kind) {
    case hal::OpKind::kMatMul: return mat_mul(op);
    case hal::OpKind::kAdd: return add(op);
    case hal::OpKind::kRmsNorm: return rms_norm(op);
    case hal::OpKind::kSwiGLU: return swiglu(op);
    default:
      fail(ErrorCode::kInternal, "opencl: op ", hal::op_name(op.kind), " passed the support check");
  }
}

void OpenclStream::mat_mul(const hal::Op& op) {
  const hal::Tensor& w = *op.src[0];
  const hal::Tensor& x = *op.src[1];
  const hal::Tensor& y = *op.dst;
  const auto k = static_cast<cl_int>(w.ne[0]);
  const auto n = static_cast<cl_int>(w.rows());
  const auto n_tok = static_cast<cl_int>(x.rows());
  cl_mem wm = mem_of(w, "weights", op);
  cl_mem xm = mem_of(x, "activations", op);
  cl_mem ym = mem_of(y, "output", op);
  if (n == 0 || n_tok == 0) return;
  const Kernels& kern = kernels();
  const bool quantised = w.dtype == DType::kQ8_0 || w.dtype == DType::kQ4_0;
  // Tiles only pay off when there are enough tokens to fill them.
  const int tiled = n_tok >= kMatMulTokenTile ? 1 : 0;
  const size_t tile = tiled ? kMatMulTokenTile : 1;
  const int type_index = w.dtype == DType::kF32 ? 0 : w.dtype == DType::kF16 ? 1 : w.dtype == DType::kQ8_0 ? 2 : 3;
  cl_kernel kernel = kern.matmul[type_index][tiled];
  const char* name = "mat_mul";
  if (quantised) {
    const size_t blocks = static_cast<size_t>(k / kBlockElems) * static_cast<size_t>(n_tok);
    cl_mem xq = scratch(xq_, xq_capacity_, blocks * kBlockElems);
    cl_mem xd = scratch(xd_, xd_capacity_, blocks * 2);
    set_args(kern.quantize_q8_0, kQuantizeQ8_0Kernel, xm, offset_in(x, 4), k, n_tok, xq, xd);
    const size_t q_global[2] = {static_cast<size_t>(k / kBlockElems), static_cast<size_t>(n_tok)};
    const size_t q_local[2] = {local_size(kern.quantize_q8_0, kRowLocal), 1};
    launch(kern.quantize_q8_0, kQuantizeQ8_0Kernel, 2, q_global, q_local);
    set_args(kernel, name, wm, offset_in(w, 1), xq, xd, ym, offset_in(y, 4), k, n, n_tok);
  } else {
    set_args(kernel, name, wm, offset_in(w, type_index == 1 ? 2 : 4), xm, offset_in(x, 4), ym, offset_in(y, 4), k,
             n, n_tok);
  }
  const size_t global[2] = {static_cast<size_t>(n), (static_cast<size_t>(n_tok) + tile - 1) / tile};
  const size_t local[2] = {local_size(kernel, kRowLocal), 1};
  launch(kernel, name, 2, global, local);
}

void OpenclStream::add(const hal::Op& op) {
  const hal::Tensor& a = *op.src[0];
  const hal::Tensor& b = *op.src[1];
  cl_mem am = mem_of(a, "a", op);
  cl_mem bm = mem_of(b, "b", op);
  cl_mem ym = mem_of(*op.dst, "output", op);
  const auto total = static_cast<cl_ulong>(a.elements());
  if (total == 0) return;
  const cl_int broadcast = b.rows() == 1 && a.rows() != 1 ? 1 : 0;
  cl_kernel kernel = kernels().add;
  set_args(kernel, kAddKernel, am, offset_in(a, 4), bm, offset_in(b, 4), ym, offset_in(*op.dst, 4), total,
           static_cast<cl_ulong>(a.ne[0]), broadcast);
  const size_t global = static_cast<size_t>(total);
  const size_t local = local_size(kernel, kRowLocal);
  launch(kernel, kAddKernel, 1, &global, &local);
}

void OpenclStream::rms_norm(const hal::Op& op) {
  const hal::Tensor& x = *op.src[0];
  const hal::Tensor& w = *op.src[1];
  cl_mem xm = mem_of(x, "input", op);
  cl_mem wm = mem_of(w, "weight", op);
  cl_mem ym = mem_of(*op.dst, "output", op);
  const auto rows = static_cast<size_t>(x.rows());
  if (rows == 0) return;
  cl_kernel kernel = kernels().rms_norm;
  const size_t local = local_size(kernel, kNormLocal);
  set_args(kernel, kRmsNormKernel, xm, offset_in(x, 4), wm, offset_in(w, 4), ym, offset_in(*op.dst, 4),
           static_cast<cl_int>(x.ne[0]), static_cast<cl_float>(op.f[0]), LocalBytes{local * sizeof(cl_float)});
  const size_t global = rows * local;
  launch(kernel, kRmsNormKernel, 1, &global, &local);
}

void OpenclStream::swiglu(const hal::Op& op) {
  const hal::Tensor& g = *op.src[0];
  const hal::Tensor& u = *op.src[1];
  cl_mem gm = mem_of(g, "gate", op);
  cl_mem um = mem_of(u, "up", op);
  cl_mem ym = mem_of(*op.dst, "output", op);
  const auto total = static_cast<cl_ulong>(g.elements());
  if (total == 0) return;
  cl_kernel kernel = kernels().swiglu;
  set_args(kernel, kSwiGLUKernel, gm, offset_in(g, 4), um, offset_in(u, 4), ym, offset_in(*op.dst, 4), total);
  const size_t global = static_cast<size_t>(total);
  const size_t local = local_size(kernel, kRowLocal);
  launch(kernel, kSwiGLUKernel, 1, &global, &local);
}

}  // namespace mixserve::opencl
