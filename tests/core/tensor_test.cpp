#include "core/tensor.h"

#include <gtest/gtest.h>

#include "core/autograd/grad_mode.h"

namespace meridian {
namespace {

TEST(Tensor, CreatesContiguousZeros) {
  Tensor t = Tensor::zeros({2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.strides(), (Shape{3, 1}));
  EXPECT_TRUE(t.is_contiguous());
  for (float v : t.to_float_vector()) EXPECT_EQ(v, 0.0f);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor row = t.select(1);
  EXPECT_EQ(row.shape(), (Shape{3}));
  row.data<float>()[0] = 42.0f;
  EXPECT_EQ(t.to_float_vector()[3], 42.0f);
  Tensor flat = t.view({-1});
  EXPECT_EQ(flat.shape(), (Shape{6}));
}

TEST(Tensor, NarrowOnInnerAxisIsStridedAndCopiesCorrectly) {
  Tensor t = Tensor::from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor cols = t.narrow(1, 1, 2);
  EXPECT_FALSE(cols.is_contiguous());
  EXPECT_EQ(cols.contiguous().to_float_vector(), (std::vector<float>{1, 2, 4, 5}));
  EXPECT_THROW(cols.view({4}), Error);
}

TEST(Tensor, ConvertsBetweenDtypes) {
  Tensor t = Tensor::from_vector<float>({1.0f, -2.5f, 3.0f}, {3});
  Tensor half = t.to(DType::bf16);
  EXPECT_EQ(half.dtype(), DType::bf16);
  EXPECT_EQ(half.to(DType::f32).to_float_vector(), (std::vector<float>{1.0f, -2.5f, 3.0f}));
  Tensor ints = Tensor::from_vector<uint16_t>({7, 65535}, {2}).to(DType::i32);
  EXPECT_EQ(ints.data<int32_t>()[1], 65535);
}

TEST(Tensor, DtypeMismatchOnDataAccessThrows) {
  Tensor t = Tensor::zeros({2}, DType::i32);
  EXPECT_THROW(t.data<float>(), Error);
}

TEST(Autograd, ViewAndNarrowRouteGradients) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {2, 2});
  x.set_requires_grad(true);
  Tensor col = x.narrow(1, 1, 1).contiguous().view({2});
  col.backward(Tensor::from_vector<float>({10, 20}, {2}));
  EXPECT_EQ(x.grad().to_float_vector(), (std::vector<float>{0, 10, 0, 20}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = Tensor::zeros({3});
  x.set_requires_grad(true);
  NoGradGuard guard;
  Tensor y = x.view({3, 1});
  EXPECT_FALSE(y.requires_grad());
}

}  // namespace
}  // namespace meridian

namespace meridian {
namespace {

TEST(Tensor, PrintsShapeDtypeAndValues) {
  Tensor t = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  t.set_name("w");
  const std::string text = t.to_string();
  EXPECT_NE(text.find("'w'"), std::string::npos) << text;
  EXPECT_NE(text.find("shape=[2, 3]"), std::string::npos) << text;
  EXPECT_NE(text.find("dtype=f32"), std::string::npos) << text;
  EXPECT_NE(text.find("[4, 5, 6]"), std::string::npos) << text;
  Tensor wide = Tensor::zeros({1, 100});
  EXPECT_NE(wide.to_string(4).find("..."), std::string::npos);
}

TEST(Tensor, HalfPrecisionConversionsRoundToNearestEven) {
  EXPECT_EQ(bf16(1.0f).bits, 0x3f80);
  EXPECT_EQ(static_cast<float>(bf16(1.00390625f)), 1.0f);      // halfway: ties to even (down)
  EXPECT_EQ(static_cast<float>(bf16(1.01171875f)), 1.015625f);  // halfway: ties to even (up)
  EXPECT_EQ(f16(1.0f).bits, 0x3c00);
  EXPECT_EQ(f16(65504.0f).bits, 0x7bff);
  EXPECT_EQ(f16(1e6f).bits, 0x7c00);  // overflow to infinity
  EXPECT_EQ(static_cast<float>(f16(5.960464477539063e-08f)), 5.960464477539063e-08f);  // smallest subnormal
  EXPECT_EQ(static_cast<float>(f16(-2.5f)), -2.5f);
}

}  // namespace
}  // namespace meridian
