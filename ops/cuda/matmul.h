#pragma once
// Matrix products on the GPU through cuBLASLt: the CUDA twin of ops/cpu/matmul.h (same arguments,
// row-major, weight stored OC×C as in PyTorch and llm.c) plus a stream.
//
// Element types: In is the type of the inputs (inp, weight, dout), Out that of the outputs and of
// the bias (cuBLASLt's bias vector has the output's type). Instantiated for
//   <float, float>                  fp32 throughout;
//   <__nv_bfloat16, __nv_bfloat16>  bf16 in and out, fp32 accumulation;
//   <float, __nv_bfloat16>          bf16 in, fp32 out (e.g. fp32 gradients of bf16 activations).
// fp32 products use CUBLAS_COMPUTE_32F: TF32 is OFF by default so they match the CPU to ~1e-5.
// set_matmul_tf32(true) allows TF32 tensor cores for fp32 products on the calling thread (about
// 10 mantissa bits: use it only where that accuracy is acceptable).
//
// cuBLASLt state is created lazily and owned per thread: one handle per device, and per (device,
// stream) a 32 MiB workspace, so products on different streams never share scratch memory. Calls
// on one stream are ordered by the stream; nothing here synchronises the host.
// Every cuBLASLt status is checked; a failure throws std::runtime_error naming the call and shapes.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ops/cuda/stream.h"  // cudaStream_t, __nv_bfloat16 without CUDA headers: core/ includes this

namespace meridian::ops::cuda {

// out (N×OC) = inp (N×C) · weightᵀ + bias.  bias may be null.
template <class Out, class In>
void matmul_forward(Out* out, const In* inp, const In* weight, const Out* bias, int64_t N, int64_t C, int64_t OC,
                    cudaStream_t stream);

// out = gelu(inp · weightᵀ + bias) with GELU's tanh form (as ops/cpu/gelu.h). pre_gelu, when not
// null, receives inp · weightᵀ + bias (the GELU's input, for the backward pass), N×OC like out.
// For bf16 outputs the GELU runs in cuBLASLt's epilogue (CUBLASLT_EPILOGUE_GELU[_AUX][_BIAS]; the
// aux form needs OC divisible by 8); for fp32 outputs, and whenever cuBLASLt offers no algorithm
// for the fused form, the bias goes into the epilogue and the GELU runs as one elementwise pass in
// exact fp32, so fp32 results keep matching the CPU to ~1e-5.
template <class Out, class In>
void matmul_forward_gelu(Out* out, Out* pre_gelu, const In* inp, const In* weight, const Out* bias, int64_t N,
                         int64_t C, int64_t OC, cudaStream_t stream);

// dinp += dout · weight;  dweight += doutᵀ · inp;  dbias += column sums of dout. Any of dinp,
// dweight, dbias may be null (that gradient is not needed). With overwrite_dinp, dinp = dout · weight
// (beta 0: dinp is not read, so it may start uninitialised).
// When both dweight and dbias are wanted, the column sums come out of the weight-gradient product's
// epilogue (CUBLASLT_EPILOGUE_BGRADB: dout is that product's B, reduced over its k = N), so dout is
// read once, as llm.c and Transformer Engine do; cuBLASLt writes them to scratch in the stream's
// workspace and one short pass adds them to dbias. Otherwise (dbias alone, OC above 64 Ki columns,
// the epilogue switched off, or no algorithm offered for it) a deterministic two-stage reduction
// sums them: fixed row chunks, each summed in order.
template <class Out, class In>
void matmul_backward(Out* dinp, Out* dweight, Out* dbias, const In* dout, const In* inp, const In* weight,
                     int64_t N, int64_t C, int64_t OC, cudaStream_t stream, bool overwrite_dinp = false);

// dpre (N×C) = (dout · weight) ⊙ gelu'(pre): the gradient reaching pre through out = gelu(pre) ·
// weightᵀ (the MLP's c_proj after its GELU), in one product. pre is N×C, the GELU's input saved by
// matmul_forward_gelu; dpre is overwritten (not read). For bf16 the derivative runs in cuBLASLt's
// epilogue (CUBLASLT_EPILOGUE_DGELU, pre as its aux input; needs C divisible by 8 and pre 16-byte
// aligned); otherwise, and when cuBLASLt offers no algorithm for it, the plain product and then one
// elementwise pass in exact fp32.
template <class Out, class In>
void matmul_backward_dgelu(Out* dpre, const In* dout, const In* weight, const Out* pre, int64_t N, int64_t C,
                           int64_t OC, cudaStream_t stream);

// Strided-batched row-major products (attention's per-head products): for each i < batch,
//   C_i (M×N) = alpha · op(A_i) · op(B_i) + beta · C_i,
// op(A_i) M×K (A_i stored M×K, or K×M when trans_a), op(B_i) K×N (stored K×N, or N×K when trans_b),
// dense rows; A_i = a + i·stride_a, likewise b and c. Instantiated for <float, bf16>,
// <bf16, bf16> and <float, float>. beta = 0 does not read C.
template <class Out, class In>
void batched_matmul(Out* c, const In* a, const In* b, int64_t batch, int64_t M, int64_t N, int64_t K, bool trans_a,
                    bool trans_b, int64_t stride_a, int64_t stride_b, int64_t stride_c, float alpha, float beta,
                    cudaStream_t stream);

// Allows (the default) or forbids, on the calling thread, the BGRADB epilogue above: forbidden, dbias
// always takes the separate reduction (gpu_kernel_bench times both).
void set_matmul_bias_gradient_epilogue(bool enabled);

// What the calling thread's products ran with since its cuBLASLt state was created or released
// (release_matmul_resources): how many products ran each fused epilogue ("BIAS", "GELU_AUX_BIAS",
// "DGELU", "BGRADB", ...), and one description (caller, shapes, epilogue) per product description
// whose fused epilogue cuBLASLt's heuristic refused, which then ran as the plain product and a
// separate pass. For benchmarks and tests to say which fused forms really ran.
struct MatmulEpilogueReport {
  std::map<std::string, int64_t> ran;
  std::vector<std::string> refused;
};
MatmulEpilogueReport matmul_epilogue_report();
// Two or more lines for a benchmark's output: "cuBLASLt epilogues that ran: BGRADB (8 products) ...",
// then "cuBLASLt epilogues refused: none" or one refused product per line.
std::string to_string(const MatmulEpilogueReport& report);

// Allows (or forbids, the default) TF32 tensor cores in fp32 products issued by the calling thread.
void set_matmul_tf32(bool enabled);

// Frees the calling thread's cuBLASLt handles and workspaces (after synchronising their streams);
// the next product creates them again. For tests and orderly shutdown.
void release_matmul_resources();

}  // namespace meridian::ops::cuda
