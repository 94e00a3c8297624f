#include "core/functions/float_view.h"

namespace meridian::fn::detail {

FloatView::FloatView(const Tensor& tensor, Access access) : tensor_(tensor), access_(access) {
  if (!tensor_.defined()) return;
  MERIDIAN_CHECK(tensor_.device().is_cpu() && tensor_.is_contiguous(),
                 "FloatView: needs a contiguous cpu tensor, got one on ", tensor_.device().to_string());
  if (tensor_.dtype() == DType::f32) {
    data_ = tensor_.data<float>();
    return;
  }
  MERIDIAN_CHECK(tensor_.dtype() == DType::bf16, "FloatView: f32 or bf16 only, got ", dtype_name(tensor_.dtype()));
  widened_ = std::make_unique_for_overwrite<float[]>(static_cast<size_t>(tensor_.numel()));
  if (access_ != Access::overwrite)
    convert_elements(widened_.get(), DType::f32, tensor_.raw_data(), DType::bf16, tensor_.numel());
  data_ = widened_.get();
}

FloatView::~FloatView() {
  if (data_ == nullptr || !widened_ || access_ == Access::read) return;
  convert_elements(tensor_.raw_data(), DType::bf16, widened_.get(), DType::f32, tensor_.numel());
}

}  // namespace meridian::fn::detail
