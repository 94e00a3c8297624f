#include "core/tensor.h"

#include <cstring>
#include <ostream>
#include <sstream>

#include "core/allocator.h"
#include "core/autograd/engine.h"
#include "core/autograd/node.h"
#include "core/cuda_dispatch.h"
#include "core/gradient_accumulation.h"
#include "ops/cpu/elementwise.h"

#if MERIDIAN_CUDA
#include "ops/cuda/elementwise.h"
#include "ops/cuda/strided_copy.h"
#endif

namespace meridian {

// --- Storage -------------------------------------------------------------------------------------

Storage::Storage(size_t nbytes, Device device)
    : data_(allocator_for(device).allocate(nbytes)), nbytes_(nbytes), device_(device), from_allocator_(true) {}

Storage::Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> release)
    : data_(data), nbytes_(nbytes), device_(device), release_(std::move(release)), from_allocator_(false) {}

Storage::~Storage() {
  if (from_allocator_)
    allocator_for(device_).deallocate(data_, nbytes_);
  else if (release_)
    release_(data_);
}

// --- strided element walks -----------------------------------------------------------------------

namespace {

// Calls fn(offset) for every element of (shape, strides) in row-major order, offsets in elements.
template <class Fn>
void for_each_offset(const Shape& shape, const Shape& strides, Fn&& fn) {
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  const size_t rank = shape.size();
  std::vector<int64_t> index(rank, 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < n; ++i) {
    fn(offset);
    for (size_t d = rank; d-- > 0;) {
      if (++index[d] < shape[d]) {
        offset += strides[d];
        break;
      }
      offset -= strides[d] * (shape[d] - 1);
      index[d] = 0;
    }
  }
}

// Copies a strided tensor's elements into contiguous memory of the same dtype.
void gather(void* dst, const Tensor& src) {
  if (src.numel() == 0) return;  // empty tensors may have null data
  const size_t elem = dtype_size(src.dtype());
  if (src.is_contiguous()) {
    std::memcpy(dst, src.raw_data(), src.nbytes());
    return;
  }
  const char* base = static_cast<const char*>(src.raw_data());
  char* out = static_cast<char*>(dst);
  for_each_offset(src.shape(), src.strides(), [&](int64_t offset) {
    std::memcpy(out, base + offset * static_cast<int64_t>(elem), elem);
    out += elem;
  });
}

// Writes contiguous elements (same dtype) into a strided tensor.
void scatter(const Tensor& dst, const void* src) {
  if (dst.numel() == 0) return;
  const size_t elem = dtype_size(dst.dtype());
  if (dst.is_contiguous()) {
    std::memcpy(dst.raw_data(), src, dst.nbytes());
    return;
  }
  char* base = static_cast<char*>(dst.raw_data());
  const char* in = static_cast<const char*>(src);
  for_each_offset(dst.shape(), dst.strides(), [&](int64_t offset) {
    std::memcpy(base + offset * static_cast<int64_t>(elem), in, elem);
    in += elem;
  });
}

// A strided cuda view gathered into a dense tensor on its device (one kernel); any other tensor as
// it is.
Tensor dense_on_device(const Tensor& t) {
  if (!t.device().is_cuda() || t.is_contiguous()) return t;
#if MERIDIAN_CUDA
  if (t.ndim() > ops::cuda::kMaxStridedDims)
    MERIDIAN_FAIL("copy of a strided cuda tensor of shape ", shape_str(t.shape()), ": more than ",
                  ops::cuda::kMaxStridedDims, " dimensions");
  Tensor out = Tensor::empty(t.shape(), t.dtype(), t.device());
  const detail::CudaScope cuda(t.device());
  ops::cuda::gather_strided(out.raw_data(), t.raw_data(), t.shape().data(), t.strides().data(),
                            static_cast<int>(t.ndim()), dtype_size(t.dtype()), cuda.stream());
  return out;
#else
  MERIDIAN_FAIL("a cuda tensor in a build without the CUDA backend");
#endif
}

// A dense cuda tensor written into the strided view `view` of the same shape and dtype (one kernel).
void scatter_into_view(const Tensor& view, const Tensor& dense) {
#if MERIDIAN_CUDA
  if (view.ndim() > ops::cuda::kMaxStridedDims)
    MERIDIAN_FAIL("write into a strided cuda tensor of shape ", shape_str(view.shape()), ": more than ",
                  ops::cuda::kMaxStridedDims, " dimensions");
  const detail::CudaScope cuda(view.device());
  ops::cuda::scatter_strided(view.raw_data(), dense.raw_data(), view.shape().data(), view.strides().data(),
                             static_cast<int>(view.ndim()), dtype_size(view.dtype()), cuda.stream());
#else
  (void)view;
  (void)dense;
  MERIDIAN_FAIL("a cuda tensor in a build without the CUDA backend");
#endif
}

// Runs `write` on `dst`, or, when dst is a strided cuda view, on a dense stand-in that is then
// scattered into the view: the cuda paths below write whole contiguous buffers. `reads_dst` (an
// accumulation) starts the stand-in from the view's values.
template <class Write>
void write_through_dense(const Tensor& dst, bool reads_dst, Write&& write) {
  if (!dst.device().is_cuda() || dst.is_contiguous()) {
    write(dst);
    return;
  }
  const Tensor dense = reads_dst ? dense_on_device(dst) : Tensor::empty(dst.shape(), dst.dtype(), dst.device());
  write(dense);
  scatter_into_view(dst, dense);
}

// dst (any strides) += src (contiguous, same shape), each f32 or bf16: the sum in fp32, rounded once
// into a bf16 dst. Mixed pairs carry gradients between bf16 activations and fp32 master weights.
void accumulate_into(const Tensor& dst, const Tensor& src) {
  const auto floating = [](DType dtype) { return dtype == DType::f32 || dtype == DType::bf16; };
  MERIDIAN_CHECK(floating(dst.dtype()) && floating(src.dtype()) && src.is_contiguous(),
                 "gradient accumulation supports contiguous f32 or bf16 sources into f32 or bf16, got ",
                 dtype_name(src.dtype()), " into ", dtype_name(dst.dtype()));
  MERIDIAN_CHECK(dst.device() == src.device(), "gradient accumulation from ", src.device().to_string(), " into ",
                 dst.device().to_string());
  const bool all_f32 = dst.dtype() == DType::f32 && src.dtype() == DType::f32;
  if (dst.device().is_cuda()) {
    if (!dst.is_contiguous()) {
      write_through_dense(dst, /*reads_dst=*/true, [&](const Tensor& dense) { accumulate_into(dense, src); });
      return;
    }
#if MERIDIAN_CUDA
    const detail::CudaScope cuda(dst.device());
    const auto bf16_ptr = [](const Tensor& t) { return static_cast<__nv_bfloat16*>(t.raw_data()); };
    const int64_t n = dst.numel();
    if (all_f32)
      ops::cuda::axpy(dst.data<float>(), src.data<float>(), 1.0f, n, cuda.stream());
    else if (dst.dtype() == DType::f32)
      ops::cuda::axpy(dst.data<float>(), bf16_ptr(src), 1.0f, n, cuda.stream());
    else if (src.dtype() == DType::f32)
      ops::cuda::axpy(bf16_ptr(dst), src.data<float>(), 1.0f, n, cuda.stream());
    else
      ops::cuda::axpy(bf16_ptr(dst), bf16_ptr(src), 1.0f, n, cuda.stream());
#endif
    return;
  }
  if (!all_f32) {
    // Widen the source; a bf16 dst is widened too, summed, and stored back (rounding once; copy_
    // handles dst's strides).
    const Tensor addend = src.detach().to(DType::f32);
    if (dst.dtype() == DType::f32) {
      accumulate_into(dst, addend);
      return;
    }
    Tensor sum = dst.detach().to(DType::f32);  // a new contiguous f32 copy
    ops::cpu::axpy(sum.data<float>(), addend.data<float>(), 1.0f, sum.numel());
    Tensor(dst).copy_(sum);
    return;
  }
  if (dst.is_contiguous()) {
    ops::cpu::axpy(dst.data<float>(), src.data<float>(), 1.0f, dst.numel());
    return;
  }
  float* base = dst.data<float>();
  const float* in = src.data<float>();
  for_each_offset(dst.shape(), dst.strides(), [&](int64_t offset) { base[offset] += *in++; });
}

void copy_with_cuda(const Tensor& dst, const Tensor& src);

// copy_ between dtypes with a cuda tensor on either side. On one device a kernel converts
// (f32 ⇄ bf16, the pair mixed precision needs); between host and device the host side converts and
// the copy moves one dtype.
void convert_with_cuda(const Tensor& dst, const Tensor& strided_src) {
  const Tensor src = dense_on_device(strided_src);
  if (src.device() != dst.device()) {
    if (dst.device().is_cuda()) {
      copy_with_cuda(dst, src.detach().to(dst.dtype()));
    } else {
      const Tensor host = src.detach().to(Device::cpu());
      Tensor(dst).copy_(host);
    }
    return;
  }
  const bool widen = src.dtype() == DType::bf16 && dst.dtype() == DType::f32;
  const bool narrow = src.dtype() == DType::f32 && dst.dtype() == DType::bf16;
  if (!widen && !narrow)
    MERIDIAN_FAIL("copy_: ", dtype_name(src.dtype()), " into ", dtype_name(dst.dtype()), " on ",
                  dst.device().to_string(), ": only f32 ⇄ bf16 conversion is implemented on the GPU");
#if MERIDIAN_CUDA
  const detail::CudaScope cuda(dst.device());
  if (widen)
    ops::cuda::convert(static_cast<float*>(dst.raw_data()), static_cast<const __nv_bfloat16*>(src.raw_data()),
                       dst.numel(), cuda.stream());
  else
    ops::cuda::convert(static_cast<__nv_bfloat16*>(dst.raw_data()), static_cast<const float*>(src.raw_data()),
                       dst.numel(), cuda.stream());
#endif
}

// copy_ when either side is a cuda tensor: whole contiguous buffers of one dtype, cpu ⇄ cuda or
// within one device, ordered on the cuda device's compute stream. Copies that touch host memory
// wait for the stream: to the host so that the values are there when this returns, from the host
// because CUDA only says a copy from pageable memory "might be synchronous", and the host buffer
// (often a temporary, or a block the cpu allocator hands out again) must not change under the DMA.
// Pinned staging buffers would make uploads asynchronous; the trainer's per-step uploads are two
// small batches, so this waits rarely and briefly.
void copy_with_cuda(const Tensor& dst, const Tensor& strided_src) {
  if (strided_src.shape() != dst.shape())
    MERIDIAN_FAIL("copy_: source shape ", shape_str(strided_src.shape()), " does not match destination ",
                  shape_str(dst.shape()));
  if (dst.device().is_cuda() && !dst.is_contiguous()) {
    write_through_dense(dst, /*reads_dst=*/false, [&](const Tensor& dense) { copy_with_cuda(dense, strided_src); });
    return;
  }
  if (strided_src.dtype() != dst.dtype()) {
    convert_with_cuda(dst, strided_src);
    return;
  }
  const Tensor src = dense_on_device(strided_src);
#if MERIDIAN_CUDA
  if (src.device().is_cuda() && dst.device().is_cuda() && src.device() != dst.device()) {
    ops::cuda::copy_between_devices(dst.raw_data(), dst.device().index, ops::cuda::compute_stream(dst.device().index),
                                    src.raw_data(), src.device().index, ops::cuda::compute_stream(src.device().index),
                                    dst.nbytes());
    return;
  }
  if (dst.device().is_cuda() && src.device().is_cuda()) {
    const detail::CudaScope cuda(dst.device());
    ops::cuda::copy_on_device(dst.raw_data(), src.raw_data(), dst.nbytes(), cuda.stream());
  } else if (dst.device().is_cuda()) {
    const Tensor dense = src.detach().contiguous();
    const detail::CudaScope cuda(dst.device());
    ops::cuda::copy_to_device(dst.raw_data(), dense.raw_data(), dst.nbytes(), cuda.stream());
    ops::cuda::synchronize(cuda.stream());
  } else {
    const detail::CudaScope cuda(src.device());
    if (dst.is_contiguous()) {
      ops::cuda::copy_to_host(dst.raw_data(), src.raw_data(), dst.nbytes(), cuda.stream());
      ops::cuda::synchronize(cuda.stream());
    } else {
      Tensor staging = Tensor::empty(dst.shape(), dst.dtype());
      ops::cuda::copy_to_host(staging.raw_data(), src.raw_data(), dst.nbytes(), cuda.stream());
      ops::cuda::synchronize(cuda.stream());
      scatter(dst, staging.raw_data());
    }
  }
#else
  MERIDIAN_FAIL("copy_: ", src.device().to_string(), " to ", dst.device().to_string(),
                ": this build has no CUDA backend");
#endif
}

// fill_ of a contiguous cuda tensor: f32 directly, bf16 through an f32 buffer converted
// once (f32 ⇄ bf16 is the conversion the GPU has).
void fill_on_cuda(const Tensor& dense, double value) {
  if (dense.dtype() != DType::f32 && dense.dtype() != DType::bf16)
    MERIDIAN_FAIL("fill_(): ", dtype_name(dense.dtype()), " tensor on ", dense.device().to_string(),
                  " (cuda tensors are filled as f32 or bf16; zero_() takes any dtype)");
  const Tensor f32 = dense.dtype() == DType::f32 ? dense : Tensor::empty(dense.shape(), DType::f32, dense.device());
#if MERIDIAN_CUDA
  {
    const detail::CudaScope cuda(dense.device());
    ops::cuda::fill(f32.data<float>(), static_cast<float>(value), f32.numel(), cuda.stream());
  }
#else
  (void)value;
#endif
  if (dense.dtype() != DType::f32) copy_with_cuda(dense, f32);
}

void require_cpu(const Tensor& t, const char* what) {
  if (!t.device().is_cpu())
    MERIDIAN_FAIL(what, ": tensor on ", t.device().to_string(), " (this operation runs on cpu tensors)");
}

std::shared_ptr<TensorImpl> make_impl(std::shared_ptr<Storage> storage, const Shape& shape,
                                      const Shape& strides, DType dtype, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::move(storage);
  impl->shape = shape;
  impl->strides = strides;
  impl->dtype = dtype;
  impl->offset = offset;
  return impl;
}

}  // namespace

namespace detail {
void accumulate_gradient(const Tensor& dst, const Tensor& src) { accumulate_into(dst, src); }
}  // namespace detail

// --- creation ------------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    if (d < 0) MERIDIAN_FAIL("negative dimension in shape ", shape_str(shape));
  auto storage = std::make_shared<Storage>(static_cast<size_t>(shape_numel(shape)) * dtype_size(dtype), device);
  return Tensor(make_impl(std::move(storage), shape, contiguous_strides(shape), dtype, 0));
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor out = empty(shape, dtype, device);
  out.zero_();
  return out;
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor out = empty(shape, dtype);
  out.fill_(value);
  return out;
}

Tensor Tensor::from_storage(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype,
                            int64_t offset_elements) {
  const size_t needed = static_cast<size_t>(offset_elements + shape_numel(shape)) * dtype_size(dtype);
  MERIDIAN_CHECK(needed <= storage->nbytes(), "view of shape ", shape_str(shape), " at offset ",
                 offset_elements, " needs ", needed, " bytes; storage has ", storage->nbytes());
  return Tensor(make_impl(std::move(storage), shape, contiguous_strides(shape), dtype, offset_elements));
}

// --- metadata ------------------------------------------------------------------------------------

void Tensor::check_defined(const char* what) const {
  if (!impl_) MERIDIAN_FAIL(what, " on an undefined tensor");
}

void Tensor::check_dtype(DType expected, const char* what) const {
  check_defined(what);
  if (impl_->dtype != expected)
    MERIDIAN_FAIL(what, ": tensor '", impl_->autograd.name, "' of shape ", shape_str(impl_->shape),
                  " is ", dtype_name(impl_->dtype), ", expected ", dtype_name(expected));
}

const Shape& Tensor::shape() const { check_defined("shape()"); return impl_->shape; }
const Shape& Tensor::strides() const { check_defined("strides()"); return impl_->strides; }
int Tensor::ndim() const { return static_cast<int>(shape().size()); }
int64_t Tensor::numel() const { return shape_numel(shape()); }
DType Tensor::dtype() const { check_defined("dtype()"); return impl_->dtype; }
Device Tensor::device() const { check_defined("device()"); return impl_->storage->device(); }
const std::shared_ptr<Storage>& Tensor::storage() const { check_defined("storage()"); return impl_->storage; }
int64_t Tensor::storage_offset() const { check_defined("storage_offset()"); return impl_->offset; }

int64_t Tensor::dim(int axis) const {
  const int rank = ndim();
  const int resolved = axis < 0 ? axis + rank : axis;
  if (resolved < 0 || resolved >= rank)
    MERIDIAN_FAIL("axis ", axis, " out of range for shape ", shape_str(shape()));
  return impl_->shape[static_cast<size_t>(resolved)];
}

bool Tensor::is_contiguous() const {
  const Shape& s = shape();
  int64_t expected = 1;
  for (size_t i = s.size(); i-- > 0;) {
    if (s[i] == 1) continue;
    if (impl_->strides[i] != expected) return false;
    expected *= s[i];
  }
  return true;
}

void* Tensor::raw_data() const {
  check_defined("data()");
  return static_cast<char*>(impl_->storage->data()) + impl_->offset * static_cast<int64_t>(dtype_size(impl_->dtype));
}

template <class T>
T Tensor::item() const {
  if (numel() != 1) MERIDIAN_FAIL("item(): tensor of shape ", shape_str(shape()), " is not one element");
  if (device().is_cuda()) return to(Device::cpu()).item<T>();  // waits for the device
  float value = 0.0f;
  convert_elements(&value, DType::f32, raw_data(), dtype(), 1);
  return static_cast<T>(value);
}
template float Tensor::item<float>() const;
template double Tensor::item<double>() const;
template int32_t Tensor::item<int32_t>() const;

std::vector<float> Tensor::to_float_vector() const {
  if (defined() && device().is_cuda()) return to(Device::cpu()).to_float_vector();  // waits for the device
  require_cpu(*this, "to_float_vector()");
  Tensor dense = contiguous();
  std::vector<float> out(static_cast<size_t>(numel()));
  convert_elements(out.data(), DType::f32, dense.raw_data(), dtype(), numel());
  return out;
}

// --- views and copies ----------------------------------------------------------------------------

Tensor Tensor::view(const Shape& requested) const {
  check_defined("view()");
  Shape shape = requested;
  int64_t known = 1;
  int inferred = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (inferred >= 0) MERIDIAN_FAIL("view(", shape_str(requested), "): only one -1 allowed");
      inferred = static_cast<int>(i);
    } else {
      known *= shape[i];
    }
  }
  if (inferred >= 0 && known > 0 && numel() % known == 0) shape[static_cast<size_t>(inferred)] = numel() / known;
  if (shape_numel(shape) != numel() || (inferred >= 0 && known == 0))
    MERIDIAN_FAIL("view: cannot view shape ", shape_str(this->shape()), " as ", shape_str(requested));
  if (!is_contiguous()) MERIDIAN_FAIL("view: tensor of shape ", shape_str(this->shape()), " is not contiguous; use reshape()");
  Tensor out(make_impl(impl_->storage, shape, contiguous_strides(shape), impl_->dtype, impl_->offset));
  const Shape input_shape = this->shape();
  autograd::record("view", {*this}, out, [](autograd::BackwardContext& ctx) {
    accumulate_into(ctx.input_grad(0), ctx.grad_output());  // both contiguous, same numel
  });
  return out;
}

Tensor Tensor::reshape(const Shape& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::narrow(int axis, int64_t start, int64_t length) const {
  check_defined("narrow()");
  const int rank = ndim();
  const int a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) MERIDIAN_FAIL("narrow: axis ", axis, " out of range for shape ", shape_str(shape()));
  const int64_t size = impl_->shape[static_cast<size_t>(a)];
  if (start < 0 || length < 0 || start + length > size)
    MERIDIAN_FAIL("narrow: range [", start, ", ", start + length, ") out of bounds for axis ", a,
                  " of shape ", shape_str(shape()));
  Shape shape = impl_->shape;
  shape[static_cast<size_t>(a)] = length;
  Tensor out(make_impl(impl_->storage, shape, impl_->strides, impl_->dtype,
                       impl_->offset + start * impl_->strides[static_cast<size_t>(a)]));
  autograd::record("narrow", {*this}, out, [a, start, length](autograd::BackwardContext& ctx) {
    accumulate_into(ctx.input_grad(0).narrow(a, start, length), ctx.grad_output());
  });
  return out;
}

Tensor Tensor::select(int64_t index) const {
  Shape shape = this->shape();
  MERIDIAN_CHECK(!shape.empty(), "select on a zero-dimensional tensor");
  shape.erase(shape.begin());
  Tensor row = narrow(0, index, 1);
  return row.view(shape);
}

Tensor Tensor::contiguous() const {
  check_defined("contiguous()");
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  check_defined("clone()");
  Tensor out = empty(shape(), dtype(), device());
  if (device().is_cuda())
    copy_with_cuda(out, *this);
  else
    gather(out.raw_data(), *this);
  autograd::record("clone", {*this}, out, [](autograd::BackwardContext& ctx) {
    accumulate_into(ctx.input_grad(0), ctx.grad_output());
  });
  return out;
}

Tensor Tensor::to(DType target) const {
  check_defined("to()");
  if (target == dtype()) return detach();
  Tensor out = empty(shape(), target, device());
  out.copy_(*this);
  return out;
}

Tensor Tensor::to(Device target) const {
  check_defined("to()");
  if (target == device()) return detach();
  Tensor out = empty(shape(), dtype(), target);
  copy_with_cuda(out, detach());
  out.set_name(name());
  return out;
}

Tensor& Tensor::copy_(const Tensor& source) {
  check_defined("copy_()");
  source.check_defined("copy_()");
  if (device().is_cuda() || source.device().is_cuda()) {
    copy_with_cuda(*this, source);
    return *this;
  }
  if (source.shape() != shape())
    MERIDIAN_FAIL("copy_: source shape ", shape_str(source.shape()), " does not match destination ",
                  shape_str(shape()));
  if (source.dtype() == dtype()) {
    if (is_contiguous()) {
      gather(raw_data(), source);
    } else {
      Tensor dense = source.detach().contiguous();
      scatter(*this, dense.raw_data());
    }
    return *this;
  }
  Tensor dense = source.detach().contiguous();
  if (is_contiguous()) {
    convert_elements(raw_data(), dtype(), dense.raw_data(), dense.dtype(), numel());
  } else {
    Tensor converted = empty(shape(), dtype());
    convert_elements(converted.raw_data(), dtype(), dense.raw_data(), dense.dtype(), numel());
    scatter(*this, converted.raw_data());
  }
  return *this;
}

Tensor& Tensor::fill_(double value) {
  check_defined("fill_()");
  if (device().is_cuda()) {
    write_through_dense(*this, /*reads_dst=*/false, [&](const Tensor& dense) { fill_on_cuda(dense, value); });
    return *this;
  }
  if (dtype() == DType::f32 && is_contiguous()) {
    ops::cpu::fill(data<float>(), static_cast<float>(value), numel());
    return *this;
  }
  const float as_float = static_cast<float>(value);
  unsigned char element[8];
  convert_elements(element, dtype(), &as_float, DType::f32, 1);
  const size_t elem = dtype_size(dtype());
  char* base = static_cast<char*>(raw_data());
  for_each_offset(shape(), strides(), [&](int64_t offset) {
    std::memcpy(base + offset * static_cast<int64_t>(elem), element, elem);
  });
  return *this;
}

Tensor& Tensor::zero_() {
  check_defined("zero_()");
  if (numel() == 0) return *this;
  if (device().is_cuda()) {
    write_through_dense(*this, /*reads_dst=*/false, [](const Tensor& dense) {
#if MERIDIAN_CUDA
      const detail::CudaScope cuda(dense.device());
      ops::cuda::zero_bytes(dense.raw_data(), dense.nbytes(), cuda.stream());
#else
      (void)dense;
#endif
    });
    return *this;
  }
  if (is_contiguous()) {
    if (dtype() == DType::f32)
      ops::cpu::fill(data<float>(), 0.0f, numel());  // threaded: gradient buffers are hundreds of MB
    else
      std::memset(raw_data(), 0, nbytes());
    return *this;
  }
  return fill_(0.0);
}

// --- autograd ------------------------------------------------------------------------------------

bool Tensor::requires_grad() const {
  return impl_ && (impl_->autograd.requires_grad || impl_->autograd.grad_fn != nullptr);
}

Tensor& Tensor::set_requires_grad(bool required) {
  check_defined("set_requires_grad()");
  if (impl_->autograd.grad_fn)
    MERIDIAN_FAIL("set_requires_grad: '", name(), "' is the output of '", impl_->autograd.grad_fn->name(),
                  "'; only leaves can change requires_grad (use detach())");
  impl_->autograd.requires_grad = required;
  return *this;
}

bool Tensor::is_leaf() const { return impl_ && impl_->autograd.grad_fn == nullptr; }

const Tensor& Tensor::grad() const {
  check_defined("grad()");
  return impl_->autograd.grad;
}

void Tensor::set_grad(const Tensor& grad) {
  check_defined("set_grad()");
  if (grad.defined() && (grad.shape() != shape() || grad.dtype() != dtype()))
    MERIDIAN_FAIL("set_grad: gradient of shape ", shape_str(grad.shape()), " ", dtype_name(grad.dtype()),
                  " for '", name(), "' of shape ", shape_str(shape()), " ", dtype_name(dtype()));
  impl_->autograd.grad = grad;
}

const std::shared_ptr<autograd::Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<autograd::Node> kNone;
  return impl_ ? impl_->autograd.grad_fn : kNone;
}

int Tensor::output_nr() const { return impl_ ? impl_->autograd.output_nr : 0; }

void Tensor::set_history(std::shared_ptr<autograd::Node> node, int output_nr) {
  impl_->autograd.grad_fn = std::move(node);
  impl_->autograd.output_nr = output_nr;
}

Tensor Tensor::detach() const {
  check_defined("detach()");
  auto impl = make_impl(impl_->storage, impl_->shape, impl_->strides, impl_->dtype, impl_->offset);
  impl->autograd.name = impl_->autograd.name;
  return Tensor(std::move(impl));
}

void Tensor::backward(const Tensor& gradient, bool retain_graph) const {
  autograd::run_backward(*this, gradient, {.retain_graph = retain_graph, .fire_hooks = true});
}

void Tensor::register_grad_ready_hook(GradReadyHook hook) {
  check_defined("register_grad_ready_hook()");
  if (!is_leaf()) MERIDIAN_FAIL("grad-ready hooks go on leaves; '", name(), "' has a grad_fn");
  impl_->autograd.grad_ready_hooks.push_back(std::move(hook));
}

void Tensor::set_grad_factory(std::function<Tensor()> factory) {
  check_defined("set_grad_factory()");
  if (!is_leaf()) MERIDIAN_FAIL("grad factories go on leaves; '", name(), "' has a grad_fn");
  impl_->autograd.grad_factory = std::move(factory);
}

void Tensor::rebind_storage(std::shared_ptr<Storage> storage, int64_t offset_elements) {
  check_defined("rebind_storage()");
  MERIDIAN_CHECK(is_contiguous(), "rebind_storage: '", name(), "' is not contiguous");
  Tensor target = from_storage(storage, shape(), dtype(), offset_elements);
  target.copy_(*this);
  impl_->storage = std::move(storage);
  impl_->offset = offset_elements;
}

const std::string& Tensor::name() const {
  static const std::string kUnnamed;
  return impl_ ? impl_->autograd.name : kUnnamed;
}

Tensor& Tensor::set_name(std::string name) {
  check_defined("set_name()");
  impl_->autograd.name = std::move(name);
  return *this;
}

// --- printing ------------------------------------------------------------------------------------

std::string Tensor::to_string(int64_t max_elements) const {
  if (!impl_) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(" << (name().empty() ? "" : "'" + name() + "', ") << "shape=" << shape_str(shape())
     << ", dtype=" << dtype_name(dtype()) << ", device=" << device().to_string();
  if (requires_grad()) os << ", requires_grad";
  os << ")";
  if (device().is_cuda() && !is_contiguous()) return os.str();
  const std::vector<float> values = to_float_vector();
  const int64_t row = ndim() == 0 ? 1 : dim(-1);
  const int64_t rows = row == 0 ? 0 : numel() / row;
  os << "\n[";
  for (int64_t r = 0; r < rows; ++r) {
    if (r == max_elements && rows > max_elements + 1) {
      os << (r ? "\n " : "") << "... (" << rows - max_elements - 1 << " more rows)";
      r = rows - 2;
      continue;
    }
    os << (r ? "\n " : "") << "[";
    for (int64_t c = 0; c < row; ++c) {
      if (c == max_elements && row > max_elements + 1) {
        os << ", ...";
        c = row - 2;
        continue;
      }
      os << (c ? ", " : "") << values[static_cast<size_t>(r * row + c)];
    }
    os << "]";
  }
  os << "]";
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& tensor) { return os << tensor.to_string(); }

}  // namespace meridian
