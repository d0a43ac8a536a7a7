// libFuzzer target: the safetensors header parser must turn any bytes into either a validated
// header or one lethe::Error — never a crash, hang, leak or undefined behaviour.
// Build and run: see docs/testing.md ("Fuzzing").
#include <cstddef>
#include <cstdint>

#include "lethe/core/error.h"
#include "lethe/io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    auto header = lethe::io::parse_safetensors_header(data, size, "fuzz");
    // A header that validates describes tensors that lie inside the input.
    for (const auto& t : header.tensors) {
      if (header.data_offset + t.end > size) __builtin_trap();
    }
  } catch (const lethe::Error&) {
  }
  return 0;
}
