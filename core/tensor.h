#pragma once
// Tensor: a shape, strides and dtype over shared storage on one device, plus the autograd fields
// (requires_grad, .grad, the node that produced it). Copying a Tensor copies a handle.
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/shape.h"

namespace meridian {

namespace autograd {
class Node;
}

class Storage {
 public:
  // Allocates nbytes from the device's allocator.
  Storage(size_t nbytes, Device device);
  // Wraps memory owned elsewhere; `release` runs when the last tensor lets go (may be empty).
  Storage(void* data, size_t nbytes, Device device, std::function<void(void*)> release);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t nbytes() const { return nbytes_; }
  Device device() const { return device_; }

 private:
  void* data_;
  size_t nbytes_;
  Device device_;
  std::function<void(void*)> release_;
  bool from_allocator_;
};

class Tensor;
using GradReadyHook = std::function<void(const Tensor& parameter)>;

struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;  // undefined tensor

  // --- creation -----------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32);
  template <class T>
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape) {
    Tensor out = empty(shape, dtype_of<T>());
    MERIDIAN_CHECK(static_cast<int64_t>(values.size()) == out.numel(), "from_vector: ",
                   values.size(), " values for shape ", shape_str(shape));
    std::copy(values.begin(), values.end(), out.data<T>());
    return out;
  }
  // A tensor over existing storage (views, memory-mapped files).
  static Tensor from_storage(std::shared_ptr<Storage> storage, const Shape& shape, DType dtype,
                             int64_t offset_elements = 0);

  // --- metadata -----------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  const Shape& strides() const;
  int64_t dim(int axis) const;  // negative axes count from the end
  int ndim() const;
  int64_t numel() const;
  DType dtype() const;
  Device device() const;
  bool is_contiguous() const;
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype()); }
  const std::shared_ptr<Storage>& storage() const;
  int64_t storage_offset() const;

  // --- data ---------------------------------------------------------------------------------
  void* raw_data() const;
  template <class T>
  T* data() const {
    check_dtype(dtype_of<T>(), "data<T>()");
    return static_cast<T*>(raw_data());
  }
  template <class T>
  T item() const;  // the value of a one-element tensor
  std::vector<float> to_float_vector() const;  // any dtype, any strides on cpu; contiguous on cuda (copied to host)

  // --- views and copies (differentiable when the input requires grad) -----------------------
  Tensor view(const Shape& shape) const;     // same storage; needs contiguity; one -1 allowed
  Tensor reshape(const Shape& shape) const;  // view when contiguous, else a contiguous copy
  Tensor narrow(int axis, int64_t start, int64_t length) const;  // view
  Tensor slice(int64_t start, int64_t end) const { return narrow(0, start, end - start); }
  Tensor select(int64_t index) const;  // view of element `index` along axis 0, axis removed
  Tensor contiguous() const;
  Tensor clone() const;
  Tensor to(DType dtype) const;  // not differentiable
  // A copy on `device` (the tensor itself, detached, when it is already there). Host ⇄ device
  // copies are ordered on the device's compute stream; a copy to the host waits for it. Not
  // differentiable.
  Tensor to(Device device) const;

  // --- in place (never recorded by autograd) ------------------------------------------------
  // Same shape; converts dtype (within one GPU, f32 ⇄ bf16 only). Either side
  // may be a strided view, on the cpu or a GPU.
  Tensor& copy_(const Tensor& source);
  Tensor& fill_(double value);
  Tensor& zero_();

  // --- autograd -----------------------------------------------------------------------------
  bool requires_grad() const;  // a leaf that asked for it, or the output of a recorded function
  Tensor& set_requires_grad(bool required);  // leaves only
  bool is_leaf() const;
  const Tensor& grad() const;
  void set_grad(const Tensor& grad);  // checks shape and dtype; an undefined tensor clears
  const std::shared_ptr<autograd::Node>& grad_fn() const;
  int output_nr() const;
  Tensor detach() const;  // same storage, no history
  // Runs backward from this tensor (a scalar unless `gradient` is given).
  void backward(const Tensor& gradient = Tensor(), bool retain_graph = false) const;
  // Runs `hook` each backward pass once this leaf's gradient is final for that pass.
  void register_grad_ready_hook(GradReadyHook hook);
  // Where this leaf's .grad comes from when backward first needs it and it has none (default:
  // zeros). Data parallelism points it into a flat bucket. An empty function restores the default.
  void set_grad_factory(std::function<Tensor()> factory);
  // Moves this tensor (every handle to it) onto `storage` at `offset`, copying its values there.
  // For flattening parameters into one buffer, and for moving them to another device
  // (nn::Module::to); shape and dtype stay.
  void rebind_storage(std::shared_ptr<Storage> storage, int64_t offset_elements);
  const std::string& name() const;
  Tensor& set_name(std::string name);

  std::string to_string(int64_t max_elements = 8) const;
  bool same_impl(const Tensor& other) const { return impl_ == other.impl_; }
  TensorImpl* impl() const { return impl_.get(); }

  // Used by autograd only.
  void set_history(std::shared_ptr<autograd::Node> node, int output_nr);
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }

 private:
  void check_defined(const char* what) const;
  void check_dtype(DType expected, const char* what) const;

  std::shared_ptr<TensorImpl> impl_;
};

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<autograd::Node> grad_fn;
  int output_nr = 0;
  std::weak_ptr<autograd::Node> leaf_node;  // cached so every use of a leaf shares one node
  std::vector<GradReadyHook> grad_ready_hooks;
  std::function<Tensor()> grad_factory;
  std::string name;
};

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Shape strides;
  DType dtype = DType::f32;
  AutogradMeta autograd;
};

std::ostream& operator<<(std::ostream& os, const Tensor& tensor);

}  // namespace meridian
