// cuBLASLt matmul against the CPU twin (ops/cpu/matmul.h): forward with and without bias, with
// GELU (with and without its saved input; for bf16 on a shape where cuBLASLt's fused GELU_AUX
// epilogue applies and on one where the separate pass runs), and backward, plain and through the
// GELU (DGELU epilogue), with dbias in the weight product's BGRADB epilogue and as its own reduction,
// for fp32, bf16 and bf16-in/fp32-out.
// Sizes are not multiples of any tile. Weights and output gradients are drawn at GPT-2-like scale
// (±0.1) so the fp32 rounding of a 771- or 1000-term sum, in whatever order cuBLASLt or oneDNN adds,
// stays well inside the 1e-5 bound even where a sum cancels to near zero.
#include <gtest/gtest.h>

#include "cuda_test_support.h"
#include "ops/cpu/gelu.h"
#include "ops/cpu/matmul.h"
#include "ops/cuda/matmul.h"

namespace meridian::ops::cuda {
namespace {

using testing::DeviceBuffer;
using testing::expect_close;
using testing::rounded_to;
using testing::TestStream;
using testing::to_element;
using testing::tolerance_for;

struct MatmulShape {
  int64_t N, C, OC;
};

struct MatmulInputs {
  std::vector<float> inp, weight, bias, dout;
};

// Inputs already rounded to In (bias to Out, its storage type on the device).
template <class Out, class In>
MatmulInputs make_inputs(const MatmulShape& s, unsigned seed) {
  std::mt19937 rng(seed);
  MatmulInputs inputs;
  inputs.inp = rounded_to<In>(testing::random_floats(static_cast<size_t>(s.N * s.C), rng));
  inputs.weight = rounded_to<In>(testing::random_floats(static_cast<size_t>(s.OC * s.C), rng, -0.1f, 0.1f));
  inputs.bias = rounded_to<Out>(testing::random_floats(static_cast<size_t>(s.OC), rng));
  inputs.dout = rounded_to<In>(testing::random_floats(static_cast<size_t>(s.N * s.OC), rng, -0.1f, 0.1f));
  return inputs;
}

// The values preceded by `offset` unused elements: uploaded, they start past the aligned allocation.
template <class T>
std::vector<T> pad_front(std::vector<T> values, size_t offset) {
  values.insert(values.begin(), offset, T{});
  return values;
}

// offset > 0 places every operand that many elements past an aligned allocation (as a view would
// be), so the pointers are only element-aligned.
template <class Out, class In>
void check_forward(const MatmulShape& s, bool with_bias, bool with_gelu, bool keep_pre_gelu, size_t offset = 0,
                   bool release_afterwards = true) {
  const MatmulInputs inputs = make_inputs<Out, In>(s, 11);
  const size_t out_size = static_cast<size_t>(s.N * s.OC);
  std::vector<float> expected(out_size);
  cpu::matmul_forward(expected.data(), inputs.inp.data(), inputs.weight.data(), with_bias ? inputs.bias.data() : nullptr,
                      s.N, s.C, s.OC);
  std::vector<float> expected_pre_gelu = expected;
  if (with_gelu) cpu::gelu_forward(expected.data(), expected_pre_gelu.data(), static_cast<int64_t>(out_size));

  DeviceBuffer<In> inp(pad_front(to_element<In>(inputs.inp), offset));
  DeviceBuffer<In> weight(pad_front(to_element<In>(inputs.weight), offset));
  DeviceBuffer<Out> bias(pad_front(to_element<Out>(inputs.bias), offset));
  DeviceBuffer<Out> out(out_size + offset);
  DeviceBuffer<Out> pre_gelu(out_size + offset);
  out.poison();
  pre_gelu.poison();
  TestStream stream;
  Out* bias_or_null = with_bias ? bias.get() + offset : nullptr;
  if (with_gelu) {
    matmul_forward_gelu<Out, In>(out.get() + offset, keep_pre_gelu ? pre_gelu.get() + offset : nullptr,
                                 inp.get() + offset, weight.get() + offset, bias_or_null, s.N, s.C, s.OC,
                                 stream.get());
  } else {
    matmul_forward<Out, In>(out.get() + offset, inp.get() + offset, weight.get() + offset, bias_or_null, s.N, s.C,
                            s.OC, stream.get());
  }
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  const auto written = [offset](const std::vector<Out>& all) {
    return testing::to_float(std::vector<Out>(all.begin() + static_cast<std::ptrdiff_t>(offset), all.end()));
  };
  expect_close(written(out.download()), expected, tolerance_for<Out>(), "out");
  if (with_gelu && keep_pre_gelu) {
    expect_close(written(pre_gelu.download()), expected_pre_gelu, tolerance_for<Out>(), "pre_gelu");
  }
  if (release_afterwards) release_matmul_resources();
}

// Gradients accumulate: they start from random values (so an unwritten element fails) and the
// reference adds to the same values. Each gradient can be skipped with a null pointer.
template <class Out, class In>
void check_backward(const MatmulShape& s, bool want_dinp, bool want_dweight, bool want_dbias,
                    bool release_afterwards = true) {
  const MatmulInputs inputs = make_inputs<Out, In>(s, 23);
  std::mt19937 rng(29);
  const std::vector<float> dinp_start = rounded_to<Out>(testing::random_floats(static_cast<size_t>(s.N * s.C), rng));
  const std::vector<float> dweight_start =
      rounded_to<Out>(testing::random_floats(static_cast<size_t>(s.OC * s.C), rng));
  const std::vector<float> dbias_start = rounded_to<Out>(testing::random_floats(static_cast<size_t>(s.OC), rng));
  std::vector<float> dinp_expected = dinp_start;
  std::vector<float> dweight_expected = dweight_start;
  std::vector<float> dbias_expected = dbias_start;
  cpu::matmul_backward(want_dinp ? dinp_expected.data() : nullptr, want_dweight ? dweight_expected.data() : nullptr,
                       want_dbias ? dbias_expected.data() : nullptr, inputs.dout.data(), inputs.inp.data(),
                       inputs.weight.data(), s.N, s.C, s.OC);

  DeviceBuffer<In> inp(to_element<In>(inputs.inp));
  DeviceBuffer<In> weight(to_element<In>(inputs.weight));
  DeviceBuffer<In> dout(to_element<In>(inputs.dout));
  DeviceBuffer<Out> dinp(to_element<Out>(dinp_start));
  DeviceBuffer<Out> dweight(to_element<Out>(dweight_start));
  DeviceBuffer<Out> dbias(to_element<Out>(dbias_start));
  TestStream stream;
  matmul_backward<Out, In>(want_dinp ? dinp.get() : nullptr, want_dweight ? dweight.get() : nullptr,
                           want_dbias ? dbias.get() : nullptr, dout.get(), inp.get(), weight.get(), s.N, s.C, s.OC,
                           stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  expect_close(testing::to_float(dinp.download()), dinp_expected, tolerance_for<Out>(), "dinp");
  expect_close(testing::to_float(dweight.download()), dweight_expected, tolerance_for<Out>(), "dweight");
  expect_close(testing::to_float(dbias.download()), dbias_expected, tolerance_for<Out>(), "dbias");
  if (release_afterwards) release_matmul_resources();
}

// dpre = (dout · weight) ⊙ gelu'(pre), overwritten (poisoned first), against the cpu's input gradient
// followed by its GELU backward. offset > 0 places pre (and dpre) past an aligned allocation.
template <class Out, class In>
void check_backward_dgelu(const MatmulShape& s, size_t offset = 0) {
  const MatmulInputs inputs = make_inputs<Out, In>(s, 31);
  std::mt19937 rng(37);
  const size_t size = static_cast<size_t>(s.N * s.C);
  const std::vector<float> pre = rounded_to<Out>(testing::random_floats(size, rng, -3.0f, 3.0f));
  std::vector<float> dinp(size, 0.0f), expected(size, 0.0f);
  cpu::matmul_backward(dinp.data(), nullptr, nullptr, inputs.dout.data(), inputs.inp.data(), inputs.weight.data(), s.N,
                       s.C, s.OC);
  cpu::gelu_backward(expected.data(), pre.data(), dinp.data(), static_cast<int64_t>(size));

  DeviceBuffer<In> weight(to_element<In>(inputs.weight));
  DeviceBuffer<In> dout(to_element<In>(inputs.dout));
  DeviceBuffer<Out> pre_on_device(pad_front(to_element<Out>(pre), offset));
  DeviceBuffer<Out> dpre(size + offset);
  dpre.poison();
  TestStream stream;
  matmul_backward_dgelu<Out, In>(dpre.get() + offset, dout.get(), weight.get(), pre_on_device.get() + offset, s.N,
                                 s.C, s.OC, stream.get());
  MERIDIAN_TEST_CUDA(cudaStreamSynchronize(stream.get()));
  const std::vector<Out> all = dpre.download();
  expect_close(testing::to_float(std::vector<Out>(all.begin() + static_cast<std::ptrdiff_t>(offset), all.end())),
               expected, tolerance_for<Out>(), "dpre");
  release_matmul_resources();
}

constexpr MatmulShape kAwkward{37, 129, 771};     // OC not divisible by 8: GELU's saved input via the separate pass
constexpr MatmulShape kAuxAligned{37, 129, 200};  // OC divisible by 8: cuBLASLt's GELU_AUX epilogue
constexpr MatmulShape kTallRows{1000, 65, 97};    // several row chunks in the dbias reduction
// OC a multiple of 8 but not of a vectorised block's 256 columns: dbias by 16-byte vectors, the last
// block partly past OC.
constexpr MatmulShape kTallAligned{1000, 65, 264};
constexpr MatmulShape kOneRow{1, 129, 200};       // one token (sampling): a one-column cuBLASLt product
constexpr MatmulShape kDgeluAligned{37, 200, 129};  // C divisible by 8: cuBLASLt's DGELU epilogue (bf16)

using bf16 = __nv_bfloat16;

TEST(CudaMatmul, ForwardFp32) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_forward<float, float>(kAwkward, false, false, false);
  check_forward<float, float>(kAwkward, true, false, false);
}

TEST(CudaMatmul, ForwardBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_forward<bf16, bf16>(kAwkward, false, false, false);
  check_forward<bf16, bf16>(kAwkward, true, false, false);
}

TEST(CudaMatmul, ForwardBf16InFp32Out) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_forward<float, bf16>(kAwkward, true, false, false);
}

TEST(CudaMatmul, ForwardGeluFp32) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const MatmulShape& s : {kAwkward, kAuxAligned}) {
    SCOPED_TRACE("OC=" + std::to_string(s.OC));
    check_forward<float, float>(s, true, true, true);
    check_forward<float, float>(s, true, true, false);
    check_forward<float, float>(s, false, true, true);
  }
}

TEST(CudaMatmul, ForwardGeluBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const MatmulShape& s : {kAwkward, kAuxAligned}) {
    SCOPED_TRACE("OC=" + std::to_string(s.OC));
    check_forward<bf16, bf16>(s, true, true, true);
    check_forward<bf16, bf16>(s, false, true, false);
  }
}

// cuBLASLt has refused bias epilogues on one-column products in some versions; whatever it does,
// the result must be right (through the plain product and our own bias/GELU pass if need be).
TEST(CudaMatmul, OneRowOfInput) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_forward<float, float>(kOneRow, true, false, false);
  check_forward<float, float>(kOneRow, true, true, true);
  check_forward<bf16, bf16>(kOneRow, true, false, false);
  check_forward<bf16, bf16>(kOneRow, true, true, true);
  check_backward<float, float>(kOneRow, true, true, true);
  check_backward<bf16, bf16>(kOneRow, true, true, true);
}

// The algorithm chosen for aligned operands is remembered per shape; the same shape on operands that
// are only element-aligned (views) must get its own (cuBLASLt's wide loads would fault or misread),
// and a misaligned bias or GELU input must stay out of the epilogue.
TEST(CudaMatmul, SameShapeOnMisalignedViews) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (size_t offset : {size_t{0}, size_t{1}, size_t{0}}) {
    SCOPED_TRACE("offset=" + std::to_string(offset));
    check_forward<bf16, bf16>(kAuxAligned, false, false, false, offset, false);  // same epilogue at every offset
    check_forward<bf16, bf16>(kAuxAligned, true, true, true, offset, false);
    check_forward<float, float>(kAuxAligned, true, false, false, offset, false);
  }
  release_matmul_resources();
}

TEST(CudaMatmul, BackwardFp32) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_backward<float, float>(kAwkward, true, true, true);
  check_backward<float, float>(kTallRows, true, true, true);
  check_backward<float, float>(kTallAligned, true, true, true);
}

TEST(CudaMatmul, BackwardBf16) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_backward<bf16, bf16>(kAwkward, true, true, true);
  check_backward<bf16, bf16>(kTallRows, true, true, true);
  check_backward<bf16, bf16>(kTallAligned, true, true, true);
}

TEST(CudaMatmul, BackwardBf16InFp32Out) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_backward<float, bf16>(kAwkward, true, true, true);
  check_backward<float, bf16>(kTallAligned, true, true, true);
}

// The MLP's c_proj input gradient with GELU's derivative: for bf16 in cuBLASLt's DGELU epilogue when C
// is divisible by 8 and pre aligned, otherwise (and for fp32) the product and a separate pass.
TEST(CudaMatmul, BackwardThroughGelu) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  for (const MatmulShape& s : {kAwkward, kDgeluAligned, kOneRow}) {
    SCOPED_TRACE("C=" + std::to_string(s.C) + " N=" + std::to_string(s.N));
    check_backward_dgelu<float, float>(s);
    check_backward_dgelu<bf16, bf16>(s);
    check_backward_dgelu<float, bf16>(s);
  }
  check_backward_dgelu<bf16, bf16>(kDgeluAligned, 1);  // pre only element-aligned: out of the epilogue
}

// How many products since the last release ran the BGRADB epilogue, and how many cuBLASLt refused it for.
std::pair<int64_t, int64_t> bias_gradient_epilogues() {
  const MatmulEpilogueReport report = matmul_epilogue_report();
  const auto ran = report.ran.find("BGRADB");
  const auto refused = std::count_if(report.refused.begin(), report.refused.end(), [](const std::string& product) {
    return product.find("BGRADB") != std::string::npos;
  });
  return {ran == report.ran.end() ? 0 : ran->second, refused};
}

// Sets the calling thread's BGRADB switch for one scope, then allows it again (the default).
class BiasGradientEpilogue {
 public:
  explicit BiasGradientEpilogue(bool enabled) { set_matmul_bias_gradient_epilogue(enabled); }
  ~BiasGradientEpilogue() { set_matmul_bias_gradient_epilogue(true); }
  BiasGradientEpilogue(const BiasGradientEpilogue&) = delete;
  BiasGradientEpilogue& operator=(const BiasGradientEpilogue&) = delete;
};

template <class Out, class In>
void check_bias_gradient_path(const MatmulShape& s, bool expect_epilogue) {
  release_matmul_resources();  // the report counts from here (earlier tests' products may be in it)
  check_backward<Out, In>(s, true, true, true, /*release_afterwards=*/false);
  const auto [ran, refused] = bias_gradient_epilogues();
  if (expect_epilogue) {
    // It ran, or cuBLASLt offered no algorithm for it and the reduction ran (a GPU's cuBLASLt may
    // refuse a shape; gpu_kernel_bench lists refusals). The emulator's model offers one.
    EXPECT_EQ(ran + refused, 1) << "ran " << ran << ", refused " << refused;
  } else {
    EXPECT_EQ(ran, 0);
    EXPECT_EQ(refused, 0);
  }
  release_matmul_resources();
}

// dweight and dbias together: dbias from the weight product's BGRADB epilogue (written to scratch,
// then added: dbias starts from random values) or, with the epilogue switched off or OC too wide for
// its scratch, from the separate reduction; every way against the cpu.
TEST(CudaMatmul, BackwardBiasGradientInTheWeightProduct) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  constexpr MatmulShape kWideBias{3, 5, 70001};  // 70001 fp32 column sums: more than the 256 KiB scratch holds
  for (const bool enabled : {true, false}) {
    SCOPED_TRACE(enabled ? "BGRADB allowed" : "BGRADB switched off");
    const BiasGradientEpilogue scope(enabled);
    for (const MatmulShape& s : {kAwkward, kTallRows, kTallAligned}) {
      SCOPED_TRACE("N=" + std::to_string(s.N) + " OC=" + std::to_string(s.OC));
      check_bias_gradient_path<float, float>(s, enabled);
      check_bias_gradient_path<bf16, bf16>(s, enabled);
      check_bias_gradient_path<float, bf16>(s, enabled);
    }
    check_bias_gradient_path<float, float>(kWideBias, false);
    check_bias_gradient_path<bf16, bf16>(kWideBias, enabled);  // 140 KB of bf16 sums fit
  }
}

TEST(CudaMatmul, BackwardSkipsNullGradients) {
  MERIDIAN_REQUIRE_CUDA_DEVICE();
  check_backward<float, float>(kAwkward, true, false, false);
  check_backward<float, float>(kAwkward, false, true, false);
  check_backward<float, float>(kAwkward, false, false, true);
}

}  // namespace
}  // namespace meridian::ops::cuda
