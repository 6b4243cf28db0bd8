// Dense products on the kernels' GEMM: Dense and TimeDistributed(Dense) layers and Conv1D's
// gathered taps, in Python and in the C runtime alike, so both give the same bits.
#include "gemm.h"
#include "kernel_ns.h"
#include "rnncore/layer.h"
#include "rnncore/row_ops.h"
#include "threading.h"

namespace rnncore {
namespace RNNCORE_KERNEL_NS {

// y [rows, N] = bias + x [rows, K] · Wᵀ, W [N, K] packed by pack_weights. Rows are split over
// threads; every element is one sum over k in order, so any split gives the same bits.
template <typename T>
void dense_forward(int64_t rows, int64_t K, int64_t N, const T* x, const T* w_packed, const T* bias,
                   T* y) {
  if (rows == 0 || N == 0) return;
  [[maybe_unused]] const FlushDenormals flush;
  const double flops = 2.0 * double(rows) * double(K) * double(N);
  const int nth = int(std::min<int64_t>(threads_for(flops), rows));
  run_team(nth, [&](int tid, int team) {
    const auto [r0, r1] = share(rows, tid, team);
    gemm_nn<T>(r0, r1, 0, N, K, dense_rows(x, K), PanelB<T>{w_packed, K}, dense_rows(y, N), false,
               bias);
  });
}

template void dense_forward<float>(int64_t, int64_t, int64_t, const float*, const float*,
                                   const float*, float*);
template void dense_forward<double>(int64_t, int64_t, int64_t, const double*, const double*,
                                    const double*, double*);

}  // namespace RNNCORE_KERNEL_NS
}  // namespace rnncore
