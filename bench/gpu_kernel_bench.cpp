// gpu_kernel_bench: every CUDA kernel of a bf16 GPT-2 training step, alone, at the step's shapes
// (default GPT-2 124M, B = 16, T = 1024), timed with CUDA events over --repeats launches after
// --warmup ones. Each row gives the kernel's time, its rate (TFLOP/s for products, GB/s of memory
// moved for the rest) against the ceilings measured on the lent H200s (790 TFLOP/s for a large bf16
// product, 4.3 TB/s for a device copy), and its calls per step; the sum is the step's kernel time,
// with nothing of the engine around it. gpu_train_bench's measured step minus that sum is what the
// engine adds (launch gaps, host reads, allocation, copies, the norm).
//
//   gpu_kernel_bench [--batch 16] [--seq 1024] [--channels 768] [--heads 12] [--layers 12]
//                    [--vocab 50304] [--repeats 20] [--warmup 3]
//
// Needs a GPU: without one it prints why and exits 77 (skipped). Inputs are random bf16 values (the
// kernels' speed does not depend on them); outputs are overwritten or accumulated at will.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cxxopts.hpp>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "ops/cuda/cross_entropy.h"
#include "ops/cuda/device.h"
#include "ops/cuda/elementwise.h"
#include "ops/cuda/flash_attention.h"
#include "ops/cuda/layernorm.h"
#include "ops/cuda/matmul.h"
#include "ops/cuda/optimizer.h"
#include "ops/cuda/runtime.h"

namespace {

using namespace meridian;
using bf16 = __nv_bfloat16;

constexpr double kProductCeiling = 790e12;  // bf16 FLOP/s of a large product on the lent H200s
constexpr double kMemoryCeiling = 4.3e12;   // bytes/s of a device-to-device copy there

// Device memory of n elements of T, random values in [-1, 1) (bf16 and float) or zeros (others).
template <class T>
class Buffer {
 public:
  explicit Buffer(size_t n, std::mt19937* rng = nullptr) : n_(n) {
    MERIDIAN_CUDA_CHECK(cudaMalloc(&data_, std::max<size_t>(n, 1) * sizeof(T)));
    std::vector<T> host(n);
    if (rng != nullptr) {
      std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
      for (T& value : host) value = static_cast<T>(uniform(*rng));
    }
    MERIDIAN_CUDA_CHECK(cudaMemcpy(data_, host.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
  ~Buffer() { cudaFree(data_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  T* get() const { return data_; }

 private:
  T* data_ = nullptr;
  size_t n_;
};

struct Row {
  std::string name;
  double flops;  // of one call; 0 for a memory-bound kernel
  double bytes;  // moved by one call (read + written), for memory-bound kernels
  int64_t calls_per_step;
  std::function<void()> launch;
};

// Mean milliseconds of one call over `repeats` back-to-back launches on the compute stream.
double time_ms(const Row& row, cudaStream_t stream, int warmup, int repeats) {
  for (int i = 0; i < warmup; ++i) row.launch();
  cudaEvent_t start = nullptr, stop = nullptr;
  MERIDIAN_CUDA_CHECK(cudaEventCreate(&start));
  MERIDIAN_CUDA_CHECK(cudaEventCreate(&stop));
  MERIDIAN_CUDA_CHECK(cudaEventRecord(start, stream));
  for (int i = 0; i < repeats; ++i) row.launch();
  MERIDIAN_CUDA_CHECK(cudaEventRecord(stop, stream));
  MERIDIAN_CUDA_CHECK(cudaEventSynchronize(stop));
  float ms = 0.0f;
  MERIDIAN_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return static_cast<double>(ms) / repeats;
}

struct Shape {
  int64_t B, T, C, NH, L, V;
};

int run(const Shape& s, int warmup, int repeats) {
  const int64_t N = s.B * s.T, C = s.C, V = s.V;
  ops::cuda::set_device(0);
  cudaStream_t stream = ops::cuda::compute_stream(0);
  std::mt19937 rng(1);

  // Activations (bf16) and parameters of one layer; the step repeats the layer's kernels L times.
  Buffer<bf16> x(N * C, &rng), x2(N * C, &rng), dx(N * C, &rng), ln(N * C, &rng), qkv(N * 3 * C, &rng),
      dqkv(N * 3 * C, &rng), att(N * C, &rng), datt(N * C, &rng), fc(N * 4 * C, &rng), pre_gelu(N * 4 * C, &rng),
      dfc(N * 4 * C, &rng);
  Buffer<bf16> w_qkv(3 * C * C, &rng), w_proj(C * C, &rng), w_fc(4 * C * C, &rng), w_fcproj(4 * C * C, &rng),
      b_qkv(3 * C, &rng), b_c(C, &rng), b_4c(4 * C, &rng), ln_w(C, &rng), ln_b(C, &rng), wte(V * C, &rng);
  Buffer<float> dw_qkv(3 * C * C), dw_proj(C * C), dw_fc(4 * C * C), dw_fcproj(4 * C * C), db_qkv(3 * C), db_c(C),
      db_4c(4 * C), dwte(V * C);
  Buffer<float> dln_w(C), dln_b(C);  // fp32 master-weight gradients, as the engine runs it
  Buffer<float> mean(N), rstd(N), lse_attention(s.B * s.NH * s.T), losses(N), lse(N), dlosses(N);
  Buffer<char> attention_scratch(ops::cuda::flash_attention_backward_scratch_bytes(s.B, s.T, s.NH));
  Buffer<char> layernorm_scratch(ops::cuda::layernorm_backward_scratch_bytes(N, C));
  Buffer<bf16> logits(N * V, &rng), dlogits(N * V);
  std::vector<int32_t> host_targets(static_cast<size_t>(N));
  const int64_t real_vocab = std::min<int64_t>(V, 50257);  // GPT-2's, inside the padded V
  for (int64_t i = 0; i < N; ++i) host_targets[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % real_vocab);
  Buffer<int32_t> targets(N);
  MERIDIAN_CUDA_CHECK(
      cudaMemcpy(targets.get(), host_targets.data(), host_targets.size() * sizeof(int32_t), cudaMemcpyHostToDevice));
  // AdamW over every parameter (fp32 master weights, gradients and moments), one flat buffer.
  const int64_t parameters = V * C + s.L * (12 * C * C + 13 * C) + 2 * C + 1024 * C;
  Buffer<float> p(parameters, &rng), g(parameters, &rng), m(parameters), v(parameters);
  ops::cuda::fused_classifier<bf16>(losses.get(), lse.get(), dlogits.get(), dlosses.get(), logits.get(),
                                    targets.get(), N, real_vocab, V, stream, true);

  const double e = sizeof(bf16);
  const auto product = [&](const char* name, int64_t oc, int64_t ic, const bf16* w, const bf16* b, const bf16* in,
                           bf16* out, int64_t calls) {
    return Row{name, 2.0 * N * ic * oc, 0, calls,
               [=] { ops::cuda::matmul_forward<bf16, bf16>(out, in, w, b, N, ic, oc, stream); }};
  };
  const auto backward_input = [&](const char* name, int64_t oc, int64_t ic, const bf16* w, const bf16* dout,
                                  bf16* din, int64_t calls) {
    return Row{name, 2.0 * N * ic * oc, 0, calls, [=] {
                 ops::cuda::matmul_backward<bf16, bf16>(din, nullptr, nullptr, dout, nullptr, w, N, ic, oc, stream,
                                                        true);
               }};
  };
  const auto backward_weight = [&](const char* name, int64_t oc, int64_t ic, const bf16* in, const bf16* dout,
                                   float* dw, float* db, int64_t calls) {
    return Row{name, 2.0 * N * ic * oc, 0, calls, [=] {
                 ops::cuda::matmul_backward<float, bf16>(nullptr, dw, db, dout, in, nullptr, N, ic, oc, stream);
               }};
  };
  const int64_t L = s.L;
  const double attention_flops = 2.0 * s.B * s.T * s.T * C;  // q·kᵀ and P·v over the causal half
  std::vector<Row> rows = {
      product("qkv forward", 3 * C, C, w_qkv.get(), b_qkv.get(), ln.get(), qkv.get(), L),
      product("attention proj forward", C, C, w_proj.get(), b_c.get(), att.get(), x2.get(), L),
      Row{"fc + GELU forward", 2.0 * N * C * 4 * C, 0, L,
          [&] {
            ops::cuda::matmul_forward_gelu<bf16, bf16>(fc.get(), pre_gelu.get(), ln.get(), w_fc.get(), b_4c.get(), N,
                                                       C, 4 * C, stream);
          }},
      product("fc proj forward", C, 4 * C, w_fcproj.get(), b_c.get(), fc.get(), x2.get(), L),
      product("lm head forward", V, C, wte.get(), nullptr, x.get(), logits.get(), 1),
      backward_input("qkv backward (input)", 3 * C, C, w_qkv.get(), dqkv.get(), dx.get(), L),
      backward_weight("qkv backward (weight, bias)", 3 * C, C, ln.get(), dqkv.get(), dw_qkv.get(), db_qkv.get(), L),
      backward_input("attention proj backward (input)", C, C, w_proj.get(), dx.get(), datt.get(), L),
      backward_weight("attention proj backward (weight)", C, C, att.get(), dx.get(), dw_proj.get(), db_c.get(), L),
      backward_input("fc backward (input)", 4 * C, C, w_fc.get(), dfc.get(), dx.get(), L),
      backward_weight("fc backward (weight, bias)", 4 * C, C, ln.get(), dfc.get(), dw_fc.get(), db_4c.get(), L),
      // The same with the bias gradient as its own reduction instead of the product's BGRADB epilogue:
      // not part of the step (0 calls), for comparing the two in one run.
      Row{"fc backward (weight; bias apart)", 2.0 * N * C * 4 * C, 0, 0,
          [&] {
            ops::cuda::set_matmul_bias_gradient_epilogue(false);
            ops::cuda::matmul_backward<float, bf16>(nullptr, dw_fc.get(), db_4c.get(), dfc.get(), ln.get(), nullptr,
                                                    N, C, 4 * C, stream);
            ops::cuda::set_matmul_bias_gradient_epilogue(true);
          }},
      // The MLP's c_proj input gradient with GELU's derivative in its epilogue (fn::mlp's backward).
      Row{"fc proj backward (input, DGELU)", 2.0 * N * 4 * C * C, 0, L,
          [&] {
            ops::cuda::matmul_backward_dgelu<bf16, bf16>(dfc.get(), dx.get(), w_fcproj.get(), pre_gelu.get(), N, 4 * C,
                                                         C, stream);
          }},
      backward_weight("fc proj backward (weight)", C, 4 * C, fc.get(), dx.get(), dw_fcproj.get(), db_c.get(), L),
      backward_input("lm head backward (input)", V, C, wte.get(), dlogits.get(), dx.get(), 1),
      backward_weight("lm head backward (weight)", V, C, x.get(), dlogits.get(), dwte.get(), nullptr, 1),
      Row{"flash attention forward", attention_flops, 0, L,
          [&] {
            ops::cuda::flash_attention_forward(att.get(), lse_attention.get(), qkv.get(), s.B, s.T, C, s.NH, stream);
          }},
      // The same with 32 query rows per warp (128 per block): not part of the step (0 calls), for
      // comparing the two in one run; backward below too, where the dQ kernel takes the setting.
      Row{"flash forward, 32 rows/warp", attention_flops, 0, 0,
          [&] {
            ops::cuda::set_flash_query_rows_per_warp(32);
            ops::cuda::flash_attention_forward(att.get(), lse_attention.get(), qkv.get(), s.B, s.T, C, s.NH, stream);
            ops::cuda::set_flash_query_rows_per_warp(16);
          }},
      // Backward: dS, dP, dQ, dK, dV, and S recomputed in both of its kernels: 3.5 times the forward.
      Row{"flash attention backward", 3.5 * attention_flops, 0, L,
          [&] {
            ops::cuda::flash_attention_backward(dqkv.get(), datt.get(), qkv.get(), att.get(), lse_attention.get(),
                                                attention_scratch.get(), s.B, s.T, C, s.NH, stream, true);
          }},
      Row{"flash backward, dQ 32 rows/warp", 3.5 * attention_flops, 0, 0,
          [&] {
            ops::cuda::set_flash_query_rows_per_warp(32);
            ops::cuda::flash_attention_backward(dqkv.get(), datt.get(), qkv.get(), att.get(), lse_attention.get(),
                                                attention_scratch.get(), s.B, s.T, C, s.NH, stream, true);
            ops::cuda::set_flash_query_rows_per_warp(16);
          }},
      Row{"layernorm forward", 0, 2 * e * N * C, 2 * L + 1,
          [&] {
            ops::cuda::layernorm_forward(ln.get(), mean.get(), rstd.get(), x.get(), ln_w.get(), ln_b.get(), N, C,
                                         1e-5f, stream);
          }},
      // Input gradient: reads dout, x and dinp, writes dinp; parameter partials read dout and x again.
      Row{"layernorm backward", 0, 6 * e * N * C, 2 * L + 1,
          [&] {
            ops::cuda::layernorm_backward(dx.get(), dln_w.get(), dln_b.get(), datt.get(), x.get(), ln_w.get(),
                                          mean.get(), rstd.get(), N, C, stream, false, layernorm_scratch.get());
          }},
      Row{"residual add", 0, 3 * e * N * C, 2 * L,
          [&] { ops::cuda::add_forward(x2.get(), x2.get(), x.get(), N * C, stream); }},
      Row{"fused classifier", 0, 3 * e * N * V, 1,
          [&] {
            ops::cuda::fused_classifier<bf16>(losses.get(), lse.get(), dlogits.get(), dlosses.get(), logits.get(),
                                              targets.get(), N, real_vocab, V, stream, true);
          }},
      Row{"AdamW (all parameters)", 0, 4.0 * 4 * parameters + 3.0 * 4 * parameters, 1,
          [&] {
            ops::cuda::AdamWHyper hyper;
            ops::cuda::adamw_update(p.get(), g.get(), m.get(), v.get(), parameters, hyper, stream);
          }},
  };

  std::printf("GPT-2 shapes: B=%ld T=%ld C=%ld heads=%ld layers=%ld vocab=%ld (bf16; %d launches timed each)\n",
              static_cast<long>(s.B), static_cast<long>(s.T), static_cast<long>(C), static_cast<long>(s.NH),
              static_cast<long>(L), static_cast<long>(V), repeats);
  std::printf("%-34s %9s %12s %8s %6s %10s\n", "kernel", "ms/call", "rate", "ceiling", "calls", "ms/step");
  double step_ms = 0.0, product_ms = 0.0, flops = 0.0;
  for (const Row& row : rows) {
    const double ms = time_ms(row, stream, warmup, repeats);
    const double seconds = ms * 1e-3;
    const bool is_product = row.flops > 0.0;
    const double rate = is_product ? row.flops / seconds : row.bytes / seconds;
    const double share = 100.0 * rate / (is_product ? kProductCeiling : kMemoryCeiling);
    std::printf("%-34s %9.3f %8.1f %-3s %7.1f%% %6ld %10.2f\n", row.name.c_str(), ms,
                is_product ? rate / 1e12 : rate / 1e9, is_product ? "TF" : "GB", share,
                static_cast<long>(row.calls_per_step), ms * static_cast<double>(row.calls_per_step));
    step_ms += ms * static_cast<double>(row.calls_per_step);
    if (is_product) {
      product_ms += ms * static_cast<double>(row.calls_per_step);
      flops += row.flops * static_cast<double>(row.calls_per_step);
    }
  }
  const double tokens = static_cast<double>(N);
  std::printf("\nkernel time of one step: %.2f ms (products %.2f ms at %.0f TFLOP/s)\n", step_ms, product_ms,
              flops / (product_ms * 1e-3) / 1e12);
  std::printf("%.0f tokens/s if nothing else ran\n", tokens / (step_ms * 1e-3));
  std::printf("(embedding and copy kernels are left out: small at these shapes)\n");
  // Which fused epilogues cuBLASLt really ran, and which it refused (those products ran plain, with
  // their bias, GELU or bias gradient as a separate pass).
  std::printf("%s", ops::cuda::to_string(ops::cuda::matmul_epilogue_report()).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  cxxopts::Options cli("gpu_kernel_bench", "Each CUDA kernel of a bf16 GPT-2 step alone, at the step's shapes");
  cli.add_options()("batch", "sequences", cxxopts::value<int64_t>()->default_value("16"))(
      "seq", "tokens per sequence", cxxopts::value<int64_t>()->default_value("1024"))(
      "channels", "model width", cxxopts::value<int64_t>()->default_value("768"))(
      "heads", "attention heads", cxxopts::value<int64_t>()->default_value("12"))(
      "layers", "layers (calls per step)", cxxopts::value<int64_t>()->default_value("12"))(
      "vocab", "padded vocabulary", cxxopts::value<int64_t>()->default_value("50304"))(
      "repeats", "timed launches per kernel", cxxopts::value<int>()->default_value("20"))(
      "warmup", "untimed launches first", cxxopts::value<int>()->default_value("3"))("help", "this text");
  try {
    const auto args = cli.parse(argc, argv);
    if (args.count("help")) {
      std::printf("%s\n", cli.help().c_str());
      return 0;
    }
    if (meridian::ops::cuda::device_count() == 0) {
      std::printf("skipped: no GPU (%s)\n", meridian::ops::cuda::unavailable_reason().c_str());
      return 77;
    }
    const Shape shape{args["batch"].as<int64_t>(),    args["seq"].as<int64_t>(),    args["channels"].as<int64_t>(),
                      args["heads"].as<int64_t>(),    args["layers"].as<int64_t>(), args["vocab"].as<int64_t>()};
    if (shape.B <= 0 || shape.T <= 0 || shape.C <= 0 || shape.NH <= 0 || shape.C % shape.NH != 0 || shape.L <= 0 ||
        shape.V <= 0) {
      std::fprintf(stderr, "gpu_kernel_bench: need positive sizes and --channels divisible by --heads\n");
      return 2;
    }
    return run(shape, std::max(0, args["warmup"].as<int>()), std::max(1, args["repeats"].as<int>()));
  } catch (const std::exception& error) {
    std::fprintf(stderr, "gpu_kernel_bench: %s\n", error.what());
    return 1;
  }
}
