// Round-to-nearest weight quantization (docs/probes.md "Quantization"): the quantizer of the
// quantization probe, kept here as a library function so that exports reuse it.
//
// A weight W (rows, cols) — nn.Linear's (out, in) — is cut into groups of `group` consecutive
// elements along each row (the input dimension; group 0 = the whole row, "per channel"); a last
// group shorter than `group` is its own group. Each group g with values x gets
//   symmetric:  s = max|x| / qmax, qmax = 2^(bits-1) − 1,  q = clamp(round(x / s), −qmax, qmax),
//               x' = q · s                      (int8: GGUF's Q8_0 at group 32)
//   asymmetric: s = (max x − min x) / (2^bits − 1), m = min x,
//               q = clamp(round((x − m) / s), 0, 2^bits − 1),  x' = m + q · s   (GGUF's Q4_1 form)
// so |x − x'| ≤ s / 2 for every element (up to fp32 rounding of the arithmetic); a group of
// zeros (s = 0) is reproduced exactly. round() is half away from zero (std::round); the scales
// and minima are fp32.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace lethe::model {

class CausalLM;

struct QuantSpec {
  int bits = 8;             // 2..8
  std::int64_t group = 0;   // elements per group along a row; 0 = the whole row (per channel)
  bool symmetric = true;

  // "int8", "int4-g128", "int4-g32-asym": the form parse_quant_spec reads.
  std::string name() const;
  bool operator==(const QuantSpec&) const = default;
};

// "int<bits>[-g<group>][-sym|-asym]", e.g. "int8" (per channel, symmetric), "int4-g32",
// "int4-g128-asym". Anything else is an error naming the text and the accepted form.
QuantSpec parse_quant_spec(const std::string& text);

struct QuantizedTensor {
  QuantSpec spec;
  std::vector<std::int64_t> shape;  // (rows, cols)
  at::Tensor codes;    // (rows, cols) int8 (symmetric) or uint8 (asymmetric)
  at::Tensor scales;   // (rows, groups) fp32
  at::Tensor minima;   // (rows, groups) fp32, asymmetric only (undefined when symmetric)
};

// w: a 2-D floating tensor (any float dtype; computed in fp32).
QuantizedTensor quantize_rows(const at::Tensor& w, const QuantSpec& spec);
at::Tensor dequantize(const QuantizedTensor& q);  // (rows, cols) fp32
// dequantize(quantize_rows(w)) in w's dtype. Transposed weights (GPT-2's Conv1D stores
// (in, out)) are quantized along their input dimension by the caller.
at::Tensor fake_quantize(const at::Tensor& w, const QuantSpec& spec);

struct QuantizeSummary {
  std::int64_t tensors = 0;         // weights quantized
  std::int64_t parameters = 0;      // their elements
  double max_abs_error = 0;         // max |W − W'| over them
  double relative_rms_error = 0;    // ||W − W'||_F / ||W||_F over all of them together
};

// Replaces, in place, every linear weight of the transformer blocks (attention and MLP: Linear
// and GPT-2's Conv1D, along the input dimension) by its quantized-and-dequantized value, as
// weight-only quantizers (bitsandbytes, GPTQ, AWQ) leave the embedding and the output head in
// full precision. Biases and norms are untouched. The weights keep their dtype.
QuantizeSummary quantize_linears(CausalLM& model, const QuantSpec& spec);

}  // namespace lethe::model
