// The feed-forward layers that sit between recurrent ones (Dense, TimeDistributed(Dense),
// Conv1D, LayerNormalization) and their activations. Python's layers and the C runtime both
// call these, so a model gives the same bits from either.
#pragma once

#include <cstdint>

namespace rnncore {

// y [rows, N] = bias + x [rows, K] · Wᵀ with W [N, K] packed by pack_weights (layer.h);
// bias [N] or nullptr. Threads split rows; the bits do not depend on how.
template <typename T>
void dense_forward(int64_t rows, int64_t K, int64_t N, const T* x, const T* w_packed, const T* bias,
                   T* y);

// Python's rnncore.activations names, in its table's order.
enum class Activation : int { Linear, Relu, Tanh, Sigmoid, Softmax, Softplus, Elu };

// a [rows, n] = act(a) in place; softmax over each row.
template <typename T>
void apply_activation(Activation act, T* a, int64_t rows, int64_t n);

// y [rows, n] = gamma ⊙ (x - mean) / sqrt(var + epsilon) + beta over each row (biased variance);
// gamma and beta [n] or nullptr (1 and 0). y may be x.
template <typename T>
void layer_norm_rows(const T* x, int64_t rows, int64_t n, const T* gamma, const T* beta, T epsilon,
                     T* y);

}  // namespace rnncore
