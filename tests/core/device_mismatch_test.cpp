// Functions given tensors on different devices fail with a meridian::Error naming the function and
// each argument's device, before any kernel runs. These run without a GPU: the "cuda" tensors here
// are host memory labelled cuda:0 (Storage over existing memory), which the checks reject before
// anything reads them. tests/cuda/engine_test.cpp repeats some with real device tensors.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "core/functions/functions.h"
#include "core/tensor.h"

namespace meridian {
namespace {

// A tensor that claims to live on cuda:0 but is backed by host memory nobody will read.
class LabelledCuda {
 public:
  Tensor make(const Shape& shape, DType dtype = DType::f32) {
    buffers_.push_back(std::make_unique<std::vector<double>>(static_cast<size_t>(shape_numel(shape)) + 1));
    auto storage = std::make_shared<Storage>(buffers_.back()->data(), buffers_.back()->size() * sizeof(double),
                                             Device::cuda(0), nullptr);
    return Tensor::from_storage(storage, shape, dtype);
  }

 private:
  std::vector<std::unique_ptr<std::vector<double>>> buffers_;
};

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_mentions(const std::string& message, std::initializer_list<const char*> parts) {
  for (const char* part : parts) EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' in: " << message;
}

TEST(DeviceMismatch, LinearNamesFunctionArgumentsAndDevices) {
  LabelledCuda cuda;
  const Tensor x = Tensor::zeros({2, 3});
  const Tensor weight = cuda.make({4, 3});
  const std::string message = error_of([&] { fn::linear(x, weight); });
  expect_mentions(message, {"linear", "different devices", "input on cpu", "weight on cuda:0"});
}

TEST(DeviceMismatch, LinearBiasOnAnotherDevice) {
  LabelledCuda cuda;
  const Tensor x = cuda.make({2, 3});
  const Tensor weight = cuda.make({4, 3});
  const Tensor bias = Tensor::zeros({4});
  expect_mentions(error_of([&] { fn::linear(x, weight, bias); }), {"linear", "bias on cpu", "input on cuda:0"});
}

TEST(DeviceMismatch, LayerNormAddEmbeddingCrossEntropy) {
  LabelledCuda cuda;
  expect_mentions(error_of([&] { fn::layer_norm(cuda.make({2, 5}), Tensor::zeros({5}), Tensor::zeros({5})); }),
                  {"layer_norm", "input on cuda:0", "weight on cpu", "bias on cpu"});
  expect_mentions(error_of([&] { fn::add(Tensor::zeros({2, 5}), cuda.make({5})); }),
                  {"add", "a on cpu", "b on cuda:0"});
  expect_mentions(error_of([&] { fn::embedding(cuda.make({2, 3}, DType::i32), Tensor::zeros({7, 4})); }),
                  {"embedding", "ids on cuda:0", "table on cpu"});
  expect_mentions(error_of([&] { fn::cross_entropy(Tensor::zeros({2, 8}), cuda.make({2}, DType::i32), 8); }),
                  {"cross_entropy", "logits on cpu", "targets on cuda:0"});
}

TEST(DeviceMismatch, CpuFunctionsStillRejectWrongDtypes) {
  const std::string message = error_of([] { fn::gelu(Tensor::zeros({3}, DType::i32)); });
  expect_mentions(message, {"gelu", "input must be f32", "got i32 on cpu"});
}

}  // namespace
}  // namespace meridian
