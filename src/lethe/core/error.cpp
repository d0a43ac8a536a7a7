#include "lethe/core/error.h"

namespace lethe::detail {

void throw_error(const std::string& message) { throw Error(message); }

}  // namespace lethe::detail
