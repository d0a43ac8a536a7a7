// The probes' registry entries (one file each under probe/, listed once in probe.cpp).
#pragma once

#include "lethe/probe/probe.h"

namespace lethe::probe {

const Probe& quantize_probe();  // probe/quantize.cpp
const Probe& relearn_probe();   // probe/relearn.cpp
const Probe& representation_probe();  // probe/representation.cpp

}  // namespace lethe::probe
