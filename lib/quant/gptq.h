// GPTQ (Frantar et al., 2022) for one matrix, one row at a time: the
// columns of a row are quantized in order, and after each column the
// rounding error e is compensated on the columns still to come,
//   w[k] -= e / U[i][i] * U[i][k]   for k > i,
// where U is the upper Cholesky factor of the inverse input Hessian
// (H^-1 = U^T U, H = E[x x^T] + damping). This greedily minimizes
// sum_t ((w - q) . x_t)^2 over the calibration inputs. Group parameters are
// fitted (FitSearch, weighted by diag(H)) on the already-updated weights
// when the walk enters each group.
//
// Thread safety: pure functions; rows may be quantized concurrently with the
// same factor.
#ifndef LLMPACK_QUANT_GPTQ_H_
#define LLMPACK_QUANT_GPTQ_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "quant/codec.h"
#include "quant/group_fit.h"

namespace llmpack::quant {

// Damping added to H's diagonal, as a fraction of its mean diagonal: keeps
// the factorization stable when calibration did not excite every direction
// (1% is the value the GPTQ paper found robust).
inline constexpr double kGptqDampRatio = 0.01;

// The factor U ([cols, cols], row-major, float) of (H + damp I)^-1 for
// H = `hessian` ([cols, cols] row-major, symmetric). Channels that never
// saw a non-zero input (H[c][c] == 0) get a unit diagonal. Fails if the
// damped Hessian is not positive definite (e.g. NaN in the statistics).
absl::StatusOr<std::vector<float>> GptqInverseFactor(
    std::vector<double> hessian, int64_t cols);

// Quantizes one row w [cols] with error feedback through `factor`.
// `fit_weights` [cols] weights each column's error when fitting group
// parameters (diag(H)). Writes codes [cols] and params [groups].
void GptqQuantizeRow(const RowLayout& layout, const float* w,
                     const float* factor, const float* fit_weights, int* codes,
                     GroupParams* params);

}  // namespace llmpack::quant

#endif  // LLMPACK_QUANT_GPTQ_H_
