// Host model of the cuBLASLt calls Meridian makes: column-major D = epilogue(alpha·op(A)·op(B) + beta·C [+ bias]),
// and for BGRADB the bias gradient: the sums of op(B) over k, one per column of D.
#include "cublasLt.h"

#include <string>

static void lt_warn(const std::string& m) { std::fprintf(stderr, "EMU cuBLASLt: %s\n", m.c_str()); }

const char* cublasLtGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    default: return "CUBLAS_STATUS_OTHER";
  }
}
const char* cublasLtGetStatusString(cublasStatus_t s) { return cublasLtGetStatusName(s); }
cublasStatus_t cublasLtCreate(cublasLtHandle_t* h) { *h = new cublasLtContext{42}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtDestroy(cublasLtHandle_t h) { delete h; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* d, cublasComputeType_t compute, cudaDataType_t scale) {
  *d = new cublasLtMatmulDescOpaque_t{};
  (*d)->compute = compute;
  (*d)->scale = scale;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t d) { delete d; return CUBLAS_STATUS_SUCCESS; }

template <class T>
static cublasStatus_t read_attr(T& out, const void* buf, size_t size, const char* name) {
  if (size != sizeof(T)) {
    lt_warn(std::string("attribute ") + name + " given " + std::to_string(size) + " bytes, expects " + std::to_string(sizeof(T)));
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  std::memcpy(&out, buf, sizeof(T));
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const void* buf, size_t size) {
  switch (a) {
    case CUBLASLT_MATMUL_DESC_TRANSA: return read_attr(d->transa, buf, size, "TRANSA");
    case CUBLASLT_MATMUL_DESC_TRANSB: return read_attr(d->transb, buf, size, "TRANSB");
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return read_attr(d->epilogue, buf, size, "EPILOGUE");
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return read_attr(d->bias, buf, size, "BIAS_POINTER");
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return read_attr(d->aux, buf, size, "AUX_POINTER");
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return read_attr(d->aux_ld, buf, size, "AUX_LD");
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return read_attr(d->bias_type, buf, size, "BIAS_DATA_TYPE");
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE: return read_attr(d->aux_type, buf, size, "AUX_DATA_TYPE");
    default: lt_warn("unmodelled matmul desc attribute " + std::to_string(a)); return CUBLAS_STATUS_INVALID_VALUE;
  }
}
cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* l, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld) {
  *l = new cublasLtMatrixLayoutOpaque_t{type, rows, cols, ld};
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t l) { delete l; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a, const void* buf, size_t size) {
  switch (a) {
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return read_attr(l->batch, buf, size, "BATCH_COUNT");
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return read_attr(l->stride, buf, size, "STRIDED_BATCH_OFFSET");
    default: lt_warn("unmodelled layout attribute"); return CUBLAS_STATUS_INVALID_VALUE;
  }
}
cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* p) { *p = new cublasLtMatmulPreferenceOpaque_t{}; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t p) { delete p; return CUBLAS_STATUS_SUCCESS; }
cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const void* buf, size_t size) {
  switch (a) {
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return read_attr(p->workspace, buf, size, "MAX_WORKSPACE_BYTES");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return read_attr(p->align[0], buf, size, "MIN_ALIGNMENT_A");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return read_attr(p->align[1], buf, size, "MIN_ALIGNMENT_B");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return read_attr(p->align[2], buf, size, "MIN_ALIGNMENT_C");
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return read_attr(p->align[3], buf, size, "MIN_ALIGNMENT_D");
    default: lt_warn("unmodelled preference attribute"); return CUBLAS_STATUS_INVALID_VALUE;
  }
}

static size_t elem_bytes(cudaDataType_t t) { return t == CUDA_R_32F ? 4 : 2; }

static bool has_bias(uint32_t e) { return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS || e == CUBLASLT_EPILOGUE_RELU_BIAS; }
static bool has_gelu(uint32_t e) { return e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_BIAS || e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS; }
static bool has_aux(uint32_t e) { return e == CUBLASLT_EPILOGUE_GELU_AUX || e == CUBLASLT_EPILOGUE_GELU_AUX_BIAS; }
// DGELU reads the aux matrix (the forward's GELU input) and multiplies the product by GELU's
// derivative there; the bias-gradient form (DGELU_BGRAD) is not modelled.
static bool has_dgelu(uint32_t e) { return e == CUBLASLT_EPILOGUE_DGELU; }
static bool uses_aux(uint32_t e) { return has_aux(e) || has_dgelu(e); }
// BGRADB writes, through the bias pointer, the sums of op(B) over k: one per column of D.
static bool has_bgradb(uint32_t e) { return e == CUBLASLT_EPILOGUE_BGRADB; }
// The bias vector's type: BIAS_DATA_TYPE when set, otherwise D's.
static cudaDataType_t bias_type(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t dl) {
  return d->bias_type == -1 ? dl->type : static_cast<cudaDataType_t>(d->bias_type);
}

// Validation shared by the heuristic and the matmul. Returns SUCCESS / INVALID_VALUE / NOT_SUPPORTED.
static cublasStatus_t validate(cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a, cublasLtMatrixLayout_t b,
                               cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl, std::string& why) {
  const uint64_t m = dl->rows, n = dl->cols;
  const uint64_t am = d->transa ? a->cols : a->rows, ak = d->transa ? a->rows : a->cols;
  const uint64_t bk = d->transb ? b->cols : b->rows, bn = d->transb ? b->rows : b->cols;
  if (am != m || bn != n || ak != bk) { why = "dimension mismatch"; return CUBLAS_STATUS_INVALID_VALUE; }
  if (c->rows != m || c->cols != n) { why = "C shape"; return CUBLAS_STATUS_INVALID_VALUE; }
  for (auto* l : {a, b, c, dl})
    if (l->ld < static_cast<int64_t>(l->rows) || l->ld <= 0) { why = "ld < rows"; return CUBLAS_STATUS_INVALID_VALUE; }
  if (a->batch != dl->batch || b->batch != dl->batch || c->batch != dl->batch) { why = "batch counts differ"; return CUBLAS_STATUS_INVALID_VALUE; }
  if (a->type != b->type || c->type != dl->type) { why = "types"; return CUBLAS_STATUS_NOT_SUPPORTED; }
  const bool f32 = a->type == CUDA_R_32F && dl->type == CUDA_R_32F;
  const bool bf = a->type == CUDA_R_16BF && (dl->type == CUDA_R_16BF || dl->type == CUDA_R_32F);
  if (!f32 && !bf) { why = "type combination"; return CUBLAS_STATUS_NOT_SUPPORTED; }
  if (d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && !f32) { why = "TF32 compute with non-fp32 operands"; return CUBLAS_STATUS_NOT_SUPPORTED; }
  if (d->compute != CUBLAS_COMPUTE_32F && d->compute != CUBLAS_COMPUTE_32F_FAST_TF32) { why = "compute type"; return CUBLAS_STATUS_NOT_SUPPORTED; }
  if (d->scale != CUDA_R_32F) { why = "scale type"; return CUBLAS_STATUS_NOT_SUPPORTED; }
  const uint32_t e = d->epilogue;
  if (e != CUBLASLT_EPILOGUE_DEFAULT && !has_bias(e) && !has_gelu(e) && !has_dgelu(e) && !has_bgradb(e)) { why = "epilogue not modelled"; return CUBLAS_STATUS_NOT_SUPPORTED; }
  if ((has_bias(e) || has_bgradb(e)) && d->bias == nullptr) { why = "bias epilogue without bias pointer"; return CUBLAS_STATUS_INVALID_VALUE; }
  if (has_bgradb(e) && dl->batch > 1) { why = "bias gradient with batch"; return CUBLAS_STATUS_NOT_SUPPORTED; }
  if (uses_aux(e)) {
    if (d->aux == nullptr) { why = "aux epilogue without aux pointer"; return CUBLAS_STATUS_INVALID_VALUE; }
    if (d->aux_ld < static_cast<int64_t>(m)) { why = "aux_ld < rows"; return CUBLAS_STATUS_INVALID_VALUE; }
    if (d->aux_ld % 8 != 0) { why = "aux_ld not a multiple of 8"; return CUBLAS_STATUS_NOT_SUPPORTED; }
    if (reinterpret_cast<uintptr_t>(d->aux) % 16 != 0) { why = "aux pointer not 16-byte aligned"; return CUBLAS_STATUS_NOT_SUPPORTED; }
    if (dl->batch > 1) { why = "aux with batch"; return CUBLAS_STATUS_NOT_SUPPORTED; }
  }
  if ((has_bias(e) || has_bgradb(e)) && reinterpret_cast<uintptr_t>(d->bias) % elem_bytes(bias_type(d, dl)) != 0) { why = "bias misaligned"; return CUBLAS_STATUS_INVALID_VALUE; }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t h, cublasLtMatmulDesc_t d, cublasLtMatrixLayout_t a,
    cublasLtMatrixLayout_t b, cublasLtMatrixLayout_t c, cublasLtMatrixLayout_t dl, cublasLtMatmulPreference_t p,
    int requested, cublasLtMatmulHeuristicResult_t* results, int* count) {
  if (h == nullptr || requested < 1) return CUBLAS_STATUS_INVALID_VALUE;
  std::string why;
  const cublasStatus_t s = validate(d, a, b, c, dl, why);
  *count = 0;
  if (s != CUBLAS_STATUS_SUCCESS) {
    lt_warn("heuristic refuses: " + why);
    return s;
  }
  // Alignment below one element: no algorithm.
  const size_t in = elem_bytes(a->type), out = elem_bytes(dl->type);
  if (p->align[0] < in || p->align[1] < in || p->align[2] < out || p->align[3] < out) {
    lt_warn("heuristic: alignment below an element");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  std::memset(&results[0], 0, sizeof results[0]);
  for (int i = 0; i < 4; ++i) results[0].algo.data[i] = p->align[i];
  results[0].algo.data[4] = 0xA160;
  results[0].state = CUBLAS_STATUS_SUCCESS;
  results[0].workspaceSize = 0;
  *count = 1;
  return CUBLAS_STATUS_SUCCESS;
}

static float load(const void* base, cudaDataType_t t, int64_t i) {
  if (t == CUDA_R_32F) return static_cast<const float*>(base)[i];
  return static_cast<float>(static_cast<const __nv_bfloat16*>(base)[i]);
}
static void store(void* base, cudaDataType_t t, int64_t i, float v) {
  if (t == CUDA_R_32F) static_cast<float*>(base)[i] = v;
  else static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
}
static float tf32(float x) {
  uint32_t u; std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  u += 0xfffu + ((u >> 13) & 1u);
  u &= ~0x1fffu;
  std::memcpy(&x, &u, 4);
  return x;
}

// The bytes an operand's layout spans from its first element (every batch included).
static size_t layout_bytes(cublasLtMatrixLayout_t l) {
  const int64_t span = (static_cast<int64_t>(l->cols) - 1) * l->ld + static_cast<int64_t>(l->rows);
  const int64_t total = span + (l->batch - 1) * l->stride;
  return static_cast<size_t>(total) * elem_bytes(l->type);
}

static bool range_ok(const void* p, cublasLtMatrixLayout_t l, const char* what) {
  const size_t bytes = layout_bytes(l);
  if (!emu::device_range_ok(p, bytes)) {
    emu::warn(std::string("cuBLASLt DEVICE FAULT: operand ") + what + " [" + std::to_string(bytes) + " bytes] is not inside a device allocation");
    return false;
  }
  emu::check_not_in_flight(p, bytes, std::string("cublasLtMatmul (operand ") + what + ")");
  return true;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t h, cublasLtMatmulDesc_t d, const void* alpha_p, const void* A,
    cublasLtMatrixLayout_t a, const void* B, cublasLtMatrixLayout_t b, const void* beta_p, const void* C,
    cublasLtMatrixLayout_t c, void* D, cublasLtMatrixLayout_t dl, const cublasLtMatmulAlgo_t* algo, void* workspace,
    size_t workspace_bytes, cudaStream_t stream) {
  emu::drain(stream);
  (void)workspace; (void)workspace_bytes;
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  std::string why;
  if (auto s = validate(d, a, b, c, dl, why); s != CUBLAS_STATUS_SUCCESS) { lt_warn("matmul refuses: " + why); return s; }
  if (algo != nullptr) {
    const void* ptrs[4] = {A, B, C, D};
    for (int i = 0; i < 4; ++i)
      if (reinterpret_cast<uintptr_t>(ptrs[i]) % algo->data[i] != 0) {
        emu::warn("cuBLASLt matmul: operand " + std::to_string(i) + " less aligned than the algorithm's heuristic was told");
        return CUBLAS_STATUS_INVALID_VALUE;
      }
  }
  // The output may be C itself (in place) but must not overlap an input being read: a GPU's tiles
  // would read what other tiles already wrote. This model reads A and B whole first, so it warns.
  const auto overlaps = [&](const void* x, cublasLtMatrixLayout_t xl) {
    const auto* x0 = static_cast<const char*>(x);
    const auto* d0 = static_cast<const char*>(D);
    return x0 < d0 + layout_bytes(dl) && d0 < x0 + layout_bytes(xl);
  };
  if (overlaps(A, a) || overlaps(B, b)) {
    emu::warn(std::string("cuBLASLt matmul: the output D overlaps input ") + (overlaps(A, a) ? "A" : "B") +
              " (undefined on a GPU)");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  const float alpha = *static_cast<const float*>(alpha_p);
  const float beta = *static_cast<const float*>(beta_p);
  const int64_t m = dl->rows, n = dl->cols, k = d->transa ? a->rows : a->cols;
  bool ok = range_ok(A, a, "A") && range_ok(B, b, "B") && range_ok(D, dl, "D") && (beta == 0.0f || range_ok(C, c, "C"));
  const uint32_t e = d->epilogue;
  if (has_bias(e) && !emu::device_range_ok(d->bias, m * elem_bytes(bias_type(d, dl)))) { emu::warn("cuBLASLt DEVICE FAULT: bias"); ok = false; }
  const size_t bias_gradient_bytes = static_cast<size_t>(n) * elem_bytes(bias_type(d, dl));
  if (has_bgradb(e) && !emu::device_range_ok(d->bias, bias_gradient_bytes)) { emu::warn("cuBLASLt DEVICE FAULT: bias gradient"); ok = false; }
  if (has_bgradb(e)) emu::check_not_in_flight(d->bias, bias_gradient_bytes, "cublasLtMatmul (bias gradient)");
  const size_t aux_bytes = static_cast<size_t>((n - 1) * d->aux_ld + m) * elem_bytes(dl->type);
  if (uses_aux(e) && !emu::device_range_ok(d->aux, aux_bytes)) { emu::warn("cuBLASLt DEVICE FAULT: aux"); ok = false; }
  if (uses_aux(e)) emu::check_not_in_flight(d->aux, aux_bytes, "cublasLtMatmul (aux)");
  if (!ok) { cudaGetLastError(); emu::set_launch_error(cudaErrorIllegalAddress); return CUBLAS_STATUS_EXECUTION_FAILED; }
  const bool use_tf32 = d->compute == CUBLAS_COMPUTE_32F_FAST_TF32;
  std::vector<float> acc(static_cast<size_t>(m * n));
  std::vector<float> arow(static_cast<size_t>(k)), bcol(static_cast<size_t>(k));
  for (int64_t p = 0; p < dl->batch; ++p) {
    const int64_t ao = p * a->stride, bo = p * b->stride, co = p * c->stride, dof = p * dl->stride;
    // op(A)(i, kk): not transposed A[i + kk*lda]; transposed A[kk + i*lda]
    std::vector<float> opA(static_cast<size_t>(m * k)), opB(static_cast<size_t>(k * n));
    for (int64_t i = 0; i < m; ++i)
      for (int64_t kk = 0; kk < k; ++kk) {
        float v = load(A, a->type, ao + (d->transa ? kk + i * a->ld : i + kk * a->ld));
        opA[i * k + kk] = use_tf32 ? tf32(v) : v;
      }
    for (int64_t j = 0; j < n; ++j)
      for (int64_t kk = 0; kk < k; ++kk) {
        float v = load(B, b->type, bo + (d->transb ? j + kk * b->ld : kk + j * b->ld));
        opB[j * k + kk] = use_tf32 ? tf32(v) : v;
      }
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < m; ++i) {
        float s = 0.0f;
        const float* x = &opA[i * k];
        const float* y = &opB[j * k];
        for (int64_t kk = 0; kk < k; ++kk) s += x[kk] * y[kk];
        float v = alpha * s;
        if (beta != 0.0f) v += beta * load(C, c->type, co + i + j * c->ld);
        if (has_bias(e)) v += load(d->bias, bias_type(d, dl), i);
        if (has_aux(e)) store(d->aux, dl->type, i + j * d->aux_ld, v);
        if (has_gelu(e)) v = 0.5f * v * (1.0f + std::tanh(0.7978845608028654f * (v + 0.044715f * v * v * v)));
        if (has_dgelu(e)) {
          const float g = load(d->aux, dl->type, i + j * d->aux_ld);
          const float t = std::tanh(0.7978845608028654f * (g + 0.044715f * g * g * g));
          v *= 0.5f * (1.0f + t) + 0.5f * g * (1.0f - t * t) * 0.7978845608028654f * (1.0f + 3.0f * 0.044715f * g * g);
        }
        store(D, dl->type, dof + i + j * dl->ld, v);
      }
    if (has_bgradb(e))  // from B as stored (not TF32-rounded), in fp32, rounded once to the bias type
      for (int64_t j = 0; j < n; ++j) {
        float s = 0.0f;
        for (int64_t kk = 0; kk < k; ++kk) s += load(B, b->type, bo + (d->transb ? j + kk * b->ld : kk + j * b->ld));
        store(const_cast<void*>(d->bias), bias_type(d, dl), j, s);
      }
  }
  emu::check_reads_in_flight("cublasLtMatmul");
  return CUBLAS_STATUS_SUCCESS;
}
