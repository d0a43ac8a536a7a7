# The build without the precompiled header (target `no_pch`, outside `all`; `make check-includes`
# and CI build it). The PCH (src/lethe/pch.h) makes every torch header it holds visible to every
# file that uses it, so a file can use torch::NoGradGuard without including <torch/utils.h> and
# still build — until the PCH changes or the file is reused elsewhere. Each target that uses the
# PCH gets an OBJECT twin compiling the same sources with the same include paths, definitions and
# usage requirements but no PCH, at -O0 (only whether each file compiles matters, and parsing
# dominates: ~14 s a file on 2 cores). Objects are kept, so a rerun compiles only changed files.
add_custom_target(no_pch)

# lethe_no_pch_twin(<target>): adds <target>_no_pch to `no_pch`.
function(lethe_no_pch_twin target)
  get_target_property(sources ${target} SOURCES)
  get_target_property(dir ${target} SOURCE_DIR)
  set(files)
  foreach(s IN LISTS sources)
    if(s MATCHES "\\.cpp$")
      cmake_path(ABSOLUTE_PATH s BASE_DIRECTORY ${dir} OUTPUT_VARIABLE file)
      list(APPEND files ${file})
    endif()
  endforeach()
  add_library(${target}_no_pch OBJECT EXCLUDE_FROM_ALL ${files})
  foreach(prop INCLUDE_DIRECTORIES COMPILE_DEFINITIONS COMPILE_OPTIONS LINK_LIBRARIES)
    get_target_property(value ${target} ${prop})
    if(value)
      set_property(TARGET ${target}_no_pch PROPERTY ${prop} "${value}")
    endif()
  endforeach()
  set_target_properties(${target}_no_pch PROPERTIES DISABLE_PRECOMPILE_HEADERS ON)
  target_compile_options(${target}_no_pch PRIVATE -O0 -g0)
  add_dependencies(no_pch ${target}_no_pch)
endfunction()
