// The dtypes model weights are held in, and the one computation takes with each.
//
// Half-size weights (docs/formats.md): parameters may be stored in bfloat16 or float16 and are
// then computed with in float32, since libtorch's CPU kernels compute half precision slowly or
// not at all. Every block converts a half weight at use (model/blocks.h), so a half-stored model
// computes exactly what the float32 model holding the same (rounded) values computes.
#pragma once

#include <c10/core/ScalarType.h>

#include <string>

namespace lethe::model {

inline bool is_half(c10::ScalarType t) { return t == c10::kBFloat16 || t == c10::kHalf; }
// The dtype activations take with weights stored in `storage`.
inline c10::ScalarType compute_dtype_for(c10::ScalarType storage) { return is_half(storage) ? c10::kFloat : storage; }

// "float32", "bfloat16", "float16", "float64" (HF's torch_dtype names) -> the dtype; anything else
// is an error that begins with `what` (e.g. "config: 'model.dtype'") and lists the accepted names.
c10::ScalarType parse_dtype(const std::string& name, const std::string& what);
// The inverse; an error for a dtype models cannot be stored in.
std::string dtype_name(c10::ScalarType dtype);

}  // namespace lethe::model
