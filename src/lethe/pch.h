// Precompiled header for the library, the CLI and the tests (architecture.md §6). Parsing torch's
// headers takes 12-25 s per translation unit on these machines; precompiled, ~4 s. It holds
// only what lethe uses (ATen ops, nn::Module, autograd guards) — <torch/torch.h> would add
// optimizers, data loaders and serialization and make every load of the PCH twice as slow.
#pragma once

#include <ATen/ATen.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <nlohmann/json.hpp>
