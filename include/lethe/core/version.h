// The version of lethe, as written into run.json, EVAL.json, reports and `lethe --version`.
// A function rather than a compile definition: the version is compiled into one translation
// unit (generated from src/lethe/core/version.cpp.in), so changing it rebuilds that file only,
// not every file and the precompiled header.
#pragma once

namespace lethe {

// "MAJOR.MINOR.PATCH" from CMakeLists.txt's project(VERSION ...).
const char* version();

}  // namespace lethe
