# kernel_bench: speed of the CPU kernels in ops/cpu/ at GPT-2 124M shapes (see docs/performance.md).
add_executable(kernel_bench ${CMAKE_CURRENT_SOURCE_DIR}/kernel_bench.cpp)
meridian_target_defaults(kernel_bench)
target_link_libraries(kernel_bench PRIVATE meridian_ops_cpu DNNL::dnnl benchmark::benchmark)

# OpenBLAS is only the point of comparison for the sgemm choice, so the bench builds without it.
# Its openblas_config.h locates OpenBLAS's own cblas.h (the plain cblas.h may be netlib's, which
# lacks openblas_set_num_threads).
find_library(MERIDIAN_OPENBLAS_LIBRARY openblas)
find_path(MERIDIAN_OPENBLAS_INCLUDE_DIR openblas_config.h
          PATH_SUFFIXES openblas-pthread openblas openblas-openmp x86_64-linux-gnu/openblas-pthread
                        x86_64-linux-gnu/openblas x86_64-linux-gnu/openblas-openmp)
if(MERIDIAN_OPENBLAS_LIBRARY AND MERIDIAN_OPENBLAS_INCLUDE_DIR)
  target_include_directories(kernel_bench PRIVATE ${MERIDIAN_OPENBLAS_INCLUDE_DIR})
  target_link_libraries(kernel_bench PRIVATE ${MERIDIAN_OPENBLAS_LIBRARY})
  target_compile_definitions(kernel_bench PRIVATE MERIDIAN_BENCH_OPENBLAS=1)
else()
  message(STATUS "kernel_bench: OpenBLAS not found, its sgemm comparison is left out")
endif()
