#pragma once
// Fused softmax + cross-entropy over a padded vocabulary: logits rows have Vp columns, of which only
// the first V are real; padded columns take no part in the softmax and get no gradient.
#include <cstdint>

namespace meridian::ops::cpu {

// losses[i] = lse[i] − logits[i, targets[i]], lse[i] = log Σ_{j<V} exp(logits[i, j]) (saved for
// backward). A negative target marks an ignored row: loss 0 (its lse is still written).
void cross_entropy_forward(float* losses, float* lse, const float* logits, const int32_t* targets,
                           int64_t N, int64_t V, int64_t Vp);

// dlogits[i, j] += dlosses[i] · (softmax(logits[i])_j − [j == targets[i]]) for j < V; columns
// j ≥ V are left untouched; ignored rows contribute nothing.
void cross_entropy_backward(float* dlogits, const float* dlosses, const float* logits, const float* lse,
                            const int32_t* targets, int64_t N, int64_t V, int64_t Vp);

}  // namespace meridian::ops::cpu
