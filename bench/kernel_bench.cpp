// Speed of the CPU kernels at GPT-2 124M shapes with B·T = 256 tokens, and of the two sgemm
// libraries considered for them. Results and the machine they came from: docs/performance.md.
//
//   OPENBLAS_CORETYPE=SapphireRapids build/bin/kernel_bench
//
// OPENBLAS_CORETYPE must be in the environment before the process starts: OpenBLAS (a DYNAMIC_ARCH
// build) picks its kernels when the library loads. The chosen core is printed in the context lines
// (openblas_corename). Matmul counters are GFLOP/s (2·M·N·K per product); memory-bound kernels
// report bytes_per_second over the bytes they must move; all times are wall-clock.
#include <benchmark/benchmark.h>
#include <oneapi/dnnl/dnnl.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "ops/cpu/attention.h"
#include "ops/cpu/cross_entropy.h"
#include "ops/cpu/gelu.h"
#include "ops/cpu/layernorm.h"
#include "ops/cpu/matmul.h"
#include "ops/cpu/optimizer.h"
#include "ops/cpu/parallel.h"

#ifdef MERIDIAN_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace meridian::bench {
namespace {

namespace cpu = ops::cpu;

constexpr int64_t kTokens = 256;    // B·T
constexpr int64_t kChannels = 768;  // GPT-2 124M
constexpr int64_t kVocab = 50257;
constexpr int64_t kPaddedVocab = 50304;  // padded to a multiple of 128
constexpr int64_t kHeads = 12;
constexpr int64_t kParameters = 124475904;  // GPT-2 124M with the padded vocabulary

// Buffers outlive a single benchmark run (Google Benchmark calls each function several times while
// it sizes the iteration count), so the 150 MB LM-head weight is allocated and filled once.
float* buffer(int slot, int64_t n) {
  static std::map<std::pair<int, int64_t>, std::vector<float>> buffers;
  auto [it, inserted] = buffers.try_emplace({slot, n});
  if (inserted) {
    it->second.resize(static_cast<size_t>(n));
    uint32_t state = 12345u + static_cast<uint32_t>(slot);
    for (float& value : it->second) {  // cheap LCG: values in [-1, 1), no denormals
      state = state * 1664525u + 1013904223u;
      value = static_cast<float>(state >> 8) / static_cast<float>(1u << 23) - 1.0f;
    }
  }
  return it->second.data();
}

std::vector<int32_t> targets(int64_t n, int64_t vocab) {
  std::vector<int32_t> ids(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) ids[static_cast<size_t>(i)] = static_cast<int32_t>((i * 7919) % vocab);
  return ids;
}

// Names are streamed rather than joined with std::string's operator+, on which GCC 12 at -O3 raises
// a false -Wrestrict warning.
template <class... Parts>
std::string named(const Parts&... parts) {
  std::ostringstream name;
  (name << ... << parts);
  return name.str();
}

void set_flops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops_per_iteration * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void set_bytes(benchmark::State& state, double bytes_per_iteration) {
  state.SetBytesProcessed(static_cast<int64_t>(bytes_per_iteration) * state.iterations());
}

// The OpenMP team size for one benchmark; oneDNN follows it.
class Threads {
 public:
  explicit Threads(int threads) : previous_(cpu::num_threads()) { cpu::set_num_threads(threads); }
  ~Threads() { cpu::set_num_threads(previous_); }
  Threads(const Threads&) = delete;
  Threads& operator=(const Threads&) = delete;

 private:
  int previous_;
};

// ---------------------------------------------------------------------------------------------
// sgemm: oneDNN vs OpenBLAS on the products of one GPT-2 layer and the LM head.

struct GemmShape {
  const char* name;
  bool trans_a;
  bool trans_b;
  int64_t m, n, k;
};

// (OC, C) of each linear layer: forward out = inp·Wᵀ (NT), backward dinp = dout·W (NN) and
// dweight = doutᵀ·inp (TN).
struct LinearShape {
  const char* name;
  int64_t out_channels, in_channels;
};
constexpr LinearShape kLinearShapes[] = {
    {"qkv", 3 * kChannels, kChannels},    {"attn_proj", kChannels, kChannels},
    {"fc", 4 * kChannels, kChannels},     {"fc_proj", kChannels, 4 * kChannels},
    {"lm_head", kPaddedVocab, kChannels},
};

std::vector<GemmShape> gemm_shapes() {
  // The ceiling: a large square product, where both libraries run at their best.
  std::vector<GemmShape> shapes = {{"ceiling", false, false, 2048, 2048, 2048}};
  for (const LinearShape& l : kLinearShapes) {
    shapes.push_back({l.name, false, true, kTokens, l.out_channels, l.in_channels});   // forward
    shapes.push_back({l.name, false, false, kTokens, l.in_channels, l.out_channels});  // dinp
    shapes.push_back({l.name, true, false, l.out_channels, l.in_channels, kTokens});   // dweight
  }
  return shapes;
}

// e.g. "sgemm/onednn/qkv_NT/M:256/N:2304/K:768/threads:2"
std::string gemm_name(const char* library, const GemmShape& s, int threads) {
  return named("sgemm/", library, '/', s.name, '_', s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', "/M:", s.m,
               "/N:", s.n, "/K:", s.k, "/threads:", threads);
}

struct GemmOperands {
  const float* a;
  int64_t lda;
  const float* b;
  int64_t ldb;
  float* c;
  int64_t ldc;
};

GemmOperands operands(const GemmShape& s) {
  return {buffer(0, s.m * s.k),  s.trans_a ? s.m : s.k, buffer(1, s.k * s.n),
          s.trans_b ? s.k : s.n, buffer(2, s.m * s.n),  s.n};
}

// meridian: cpu::sgemm, oneDNN's kernels on one column panel per thread. onednn: dnnl_sgemm called
// directly, threading itself. openblas: cblas_sgemm with OpenBLAS's own thread pool.
enum class Library { meridian, onednn, openblas };

void call_sgemm(Library library, const GemmShape& s, const GemmOperands& o) {
  if (library == Library::meridian) {
    cpu::sgemm(s.trans_a, s.trans_b, s.m, s.n, s.k, 1.0f, o.a, o.lda, o.b, o.ldb, 0.0f, o.c, o.ldc);
    return;
  }
  if (library == Library::onednn) {
    dnnl_sgemm(s.trans_a ? 'T' : 'N', s.trans_b ? 'T' : 'N', s.m, s.n, s.k, 1.0f, o.a, o.lda, o.b, o.ldb,
               0.0f, o.c, o.ldc);
    return;
  }
#ifdef MERIDIAN_BENCH_OPENBLAS
  cblas_sgemm(CblasRowMajor, s.trans_a ? CblasTrans : CblasNoTrans, s.trans_b ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(s.m), static_cast<blasint>(s.n), static_cast<blasint>(s.k), 1.0f, o.a,
              static_cast<blasint>(o.lda), o.b, static_cast<blasint>(o.ldb), 0.0f, o.c,
              static_cast<blasint>(o.ldc));
#endif
}

// after_openmp_region: each product follows an (empty) OpenMP parallel region, as it follows a
// LayerNorm or GELU kernel in a training step. libgomp's workers spin for a while after a region
// before sleeping; oneDNN reuses them, while OpenBLAS's own pthreads must share the cores with them.
void sgemm_benchmark(benchmark::State& state, GemmShape s, Library library, int threads,
                     bool after_openmp_region) {
  Threads team(threads);
#ifdef MERIDIAN_BENCH_OPENBLAS
  openblas_set_num_threads(threads);
#endif
  const GemmOperands o = operands(s);
  for (auto _ : state) {
    if (after_openmp_region) {
#pragma omp parallel
      benchmark::ClobberMemory();
    }
    call_sgemm(library, s, o);
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(s.m * s.n * s.k));
}

// ---------------------------------------------------------------------------------------------
// The matmul kernels, and the bias strategy matmul_forward did not choose.

void matmul_forward(benchmark::State& state, LinearShape l) {
  const float* inp = buffer(0, kTokens * l.in_channels);
  const float* weight = buffer(1, l.out_channels * l.in_channels);
  const float* bias = buffer(3, l.out_channels);
  float* out = buffer(2, kTokens * l.out_channels);
  for (auto _ : state) {
    cpu::matmul_forward(out, inp, weight, bias, kTokens, l.in_channels, l.out_channels);
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(kTokens * l.out_channels * l.in_channels));
}

// Alternative: sgemm with beta = 0, then a second pass that adds the bias to every row.
void matmul_forward_bias_after(benchmark::State& state, LinearShape l) {
  const int64_t N = kTokens, C = l.in_channels, OC = l.out_channels;
  const float* inp = buffer(0, N * C);
  const float* weight = buffer(1, OC * C);
  const float* bias = buffer(3, OC);
  float* out = buffer(2, N * OC);
  for (auto _ : state) {
    cpu::sgemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < N; ++row) {
      float* __restrict__ out_row = out + row * OC;
#pragma omp simd
      for (int64_t j = 0; j < OC; ++j) out_row[j] += bias[j];
    }
    benchmark::ClobberMemory();
  }
  set_flops(state, 2.0 * static_cast<double>(N * OC * C));
}

void matmul_backward(benchmark::State& state, LinearShape l) {
  const int64_t N = kTokens, C = l.in_channels, OC = l.out_channels;
  const float* dout = buffer(4, N * OC);
  const float* inp = buffer(0, N * C);
  const float* weight = buffer(1, OC * C);
  float* dinp = buffer(5, N * C);
  float* dweight = buffer(6, OC * C);
  float* dbias = buffer(7, OC);
  for (auto _ : state) {
    cpu::matmul_backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
    benchmark::ClobberMemory();
  }
  set_flops(state, 4.0 * static_cast<double>(N * OC * C));  // two products; the bias sum is noise
}

// ---------------------------------------------------------------------------------------------
// Memory-bound kernels.

void layernorm_forward(benchmark::State& state) {
  const int64_t N = kTokens, C = kChannels;
  float* out = buffer(2, N * C);
  float* mean = buffer(8, N);
  float* rstd = buffer(9, N);
  for (auto _ : state) {
    cpu::layernorm_forward(out, mean, rstd, buffer(0, N * C), buffer(10, C), buffer(11, C), N, C, 1e-5f);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2.0 * static_cast<double>(N * C) * sizeof(float));  // read inp, write out
}

void layernorm_backward(benchmark::State& state) {
  const int64_t N = kTokens, C = kChannels;
  float* mean = buffer(8, N);
  float* rstd = buffer(9, N);
  cpu::layernorm_forward(buffer(2, N * C), mean, rstd, buffer(0, N * C), buffer(10, C), buffer(11, C), N, C,
                         1e-5f);
  for (auto _ : state) {
    cpu::layernorm_backward(buffer(5, N * C), buffer(12, C), buffer(13, C), buffer(4, N * C),
                            buffer(0, N * C), buffer(10, C), mean, rstd, N, C);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 4.0 * static_cast<double>(N * C) * sizeof(float));  // read dout, inp, dinp; write dinp
}

void gelu_forward(benchmark::State& state) {
  const int64_t n = kTokens * 4 * kChannels;
  for (auto _ : state) {
    cpu::gelu_forward(buffer(2, n), buffer(0, n), n);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2.0 * static_cast<double>(n) * sizeof(float));
}

void gelu_backward(benchmark::State& state) {
  const int64_t n = kTokens * 4 * kChannels;
  for (auto _ : state) {
    cpu::gelu_backward(buffer(5, n), buffer(0, n), buffer(4, n), n);
    benchmark::ClobberMemory();
  }
  set_bytes(state, 4.0 * static_cast<double>(n) * sizeof(float));
}

// ---------------------------------------------------------------------------------------------
// Attention: counters are GFLOP/s of the causal work (half of the full T×T products).

double attention_forward_flops(int64_t B, int64_t T) {
  // S = Q Kᵀ and O = P V, each 2·T·(T+1)/2·hs per head over the causal triangle.
  return 2.0 * 2.0 * static_cast<double>(B * kHeads) * static_cast<double>(T * (T + 1) / 2) *
         static_cast<double>(kChannels / kHeads);
}

void attention_forward(benchmark::State& state, int64_t B, int64_t T) {
  const int64_t C = kChannels;
  const float* qkv = buffer(0, B * T * 3 * C);
  float* out = buffer(2, B * T * C);
  float* lse = buffer(8, B * kHeads * T);
  for (auto _ : state) {
    cpu::attention_forward(out, lse, qkv, B, T, C, kHeads);
    benchmark::ClobberMemory();
  }
  set_flops(state, attention_forward_flops(B, T));
}

void attention_backward(benchmark::State& state, int64_t B, int64_t T) {
  const int64_t C = kChannels;
  const float* qkv = buffer(0, B * T * 3 * C);
  float* out = buffer(2, B * T * C);
  float* lse = buffer(8, B * kHeads * T);
  cpu::attention_forward(out, lse, qkv, B, T, C, kHeads);
  float* dqkv = buffer(5, B * T * 3 * C);
  const float* dout = buffer(4, B * T * C);
  for (auto _ : state) {
    cpu::attention_backward(dqkv, dout, qkv, out, lse, B, T, C, kHeads);
    benchmark::ClobberMemory();
  }
  // Five products (S recomputed, dV, dP, dQ, dK) against the forward's two.
  set_flops(state, 2.5 * attention_forward_flops(B, T));
}

// ---------------------------------------------------------------------------------------------
// Cross-entropy over the padded GPT-2 vocabulary, and the optimizer over all 124M parameters.

void cross_entropy_forward(benchmark::State& state) {
  const std::vector<int32_t> ids = targets(kTokens, kVocab);
  for (auto _ : state) {
    cpu::cross_entropy_forward(buffer(8, kTokens), buffer(9, kTokens), buffer(0, kTokens * kPaddedVocab),
                               ids.data(), kTokens, kVocab, kPaddedVocab);
    benchmark::ClobberMemory();
  }
  set_bytes(state, static_cast<double>(kTokens * kVocab) * sizeof(float));  // read the logits once
}

void cross_entropy_backward(benchmark::State& state) {
  const std::vector<int32_t> ids = targets(kTokens, kVocab);
  const float* logits = buffer(0, kTokens * kPaddedVocab);
  float* lse = buffer(9, kTokens);
  cpu::cross_entropy_forward(buffer(8, kTokens), lse, logits, ids.data(), kTokens, kVocab, kPaddedVocab);
  for (auto _ : state) {
    cpu::cross_entropy_backward(buffer(5, kTokens * kPaddedVocab), buffer(4, kTokens), logits, lse,
                                ids.data(), kTokens, kVocab, kPaddedVocab);
    benchmark::ClobberMemory();
  }
  set_bytes(state,
            3.0 * static_cast<double>(kTokens * kVocab) * sizeof(float));  // logits; dlogits in and out
}

void adamw_update(benchmark::State& state) {
  float* param = buffer(20, kParameters);
  const float* grad = buffer(21, kParameters);
  float* m = buffer(22, kParameters);
  float* v = buffer(23, kParameters);
  for (int64_t i = 0; i < kParameters; ++i) v[i] *= v[i];  // a second moment is non-negative
  cpu::AdamWHyper hyper;
  hyper.weight_decay = 0.1f;
  for (auto _ : state) {
    cpu::adamw_update(param, grad, m, v, kParameters, hyper);
    ++hyper.step;
    benchmark::ClobberMemory();
  }
  set_bytes(state, 7.0 * static_cast<double>(kParameters) * sizeof(float));  // read p, g, m, v; write p, m, v
}

void sum_of_squares(benchmark::State& state) {
  const float* grad = buffer(21, kParameters);
  for (auto _ : state) benchmark::DoNotOptimize(cpu::sum_of_squares(grad, kParameters));
  set_bytes(state, static_cast<double>(kParameters) * sizeof(float));
}

// ---------------------------------------------------------------------------------------------

void register_benchmarks() {
  const int all_threads = cpu::num_threads();
  std::vector<int> thread_counts = {1};
  if (all_threads > 1) thread_counts.push_back(all_threads);

  std::vector<std::pair<Library, const char*>> libraries = {{Library::meridian, "meridian"},
                                                            {Library::onednn, "onednn"}};
#ifdef MERIDIAN_BENCH_OPENBLAS
  libraries.emplace_back(Library::openblas, "openblas");
#endif
  for (const GemmShape& s : gemm_shapes()) {
    for (const auto& [library, library_name] : libraries) {
      for (int threads : thread_counts) {
        benchmark::RegisterBenchmark(gemm_name(library_name, s, threads).c_str(), sgemm_benchmark, s, library,
                                     threads, false)
            ->UseRealTime();
      }
      if (all_threads > 1) {
        benchmark::RegisterBenchmark(
            named(gemm_name(library_name, s, all_threads), "/after_openmp_region").c_str(), sgemm_benchmark,
            s, library, all_threads, true)
            ->UseRealTime();
      }
    }
  }
  for (const LinearShape& l : kLinearShapes) {
    benchmark::RegisterBenchmark(named("matmul_forward/", l.name).c_str(), matmul_forward, l)->UseRealTime();
    benchmark::RegisterBenchmark(named("matmul_forward_bias_after/", l.name).c_str(),
                                 matmul_forward_bias_after, l)
        ->UseRealTime();
    benchmark::RegisterBenchmark(named("matmul_backward/", l.name).c_str(), matmul_backward, l)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("layernorm_forward/N:256/C:768", layernorm_forward)->UseRealTime();
  benchmark::RegisterBenchmark("layernorm_backward/N:256/C:768", layernorm_backward)->UseRealTime();
  benchmark::RegisterBenchmark("gelu_forward/n:786432", gelu_forward)->UseRealTime();
  benchmark::RegisterBenchmark("gelu_backward/n:786432", gelu_backward)->UseRealTime();
  for (const auto& [B, T] : {std::pair<int64_t, int64_t>{4, 64}, {1, 1024}}) {
    const std::string shape = named("/B:", B, "/T:", T);
    benchmark::RegisterBenchmark(named("attention_forward", shape).c_str(), attention_forward, B, T)
        ->UseRealTime();
    benchmark::RegisterBenchmark(named("attention_backward", shape).c_str(), attention_backward, B, T)
        ->UseRealTime();
  }
  benchmark::RegisterBenchmark("cross_entropy_forward/N:256/V:50257/Vp:50304", cross_entropy_forward)
      ->UseRealTime();
  benchmark::RegisterBenchmark("cross_entropy_backward/N:256/V:50257/Vp:50304", cross_entropy_backward)
      ->UseRealTime();
  benchmark::RegisterBenchmark("adamw_update/n:124475904", adamw_update)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("sum_of_squares/n:124475904", sum_of_squares)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond);
}

void add_context() {
  benchmark::AddCustomContext("omp_max_threads", std::to_string(cpu::num_threads()));
#ifdef MERIDIAN_BENCH_OPENBLAS
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  benchmark::AddCustomContext("OPENBLAS_CORETYPE", coretype != nullptr ? coretype : "(unset)");
  benchmark::AddCustomContext("openblas_corename", openblas_get_corename());
  benchmark::AddCustomContext("openblas_config", openblas_get_config());
  if (coretype == nullptr) {
    std::fprintf(stderr,
                 "kernel_bench: OPENBLAS_CORETYPE is not set; OpenBLAS uses the kernels it detected (%s)\n",
                 openblas_get_corename());
  }
#else
  benchmark::AddCustomContext("openblas", "not built in");
#endif
}

}  // namespace
}  // namespace meridian::bench

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  meridian::bench::add_context();
  meridian::bench::register_benchmarks();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
