# gpu_train_bench: GPT-2 training throughput, MFU and per-op times on one GPU; gpu_kernel_bench: each
# CUDA kernel of that step alone (docs/cuda.md, "Speed"). Built with the CUDA backend; they run only
# where a GPU is (exit 77 elsewhere).
if(MERIDIAN_CUDA)
  add_executable(gpu_train_bench ${CMAKE_CURRENT_SOURCE_DIR}/gpu_train_bench.cpp)
  meridian_target_defaults(gpu_train_bench)
  target_link_libraries(gpu_train_bench PRIVATE meridian_models meridian_core cxxopts::cxxopts)
  add_executable(gpu_kernel_bench ${CMAKE_CURRENT_SOURCE_DIR}/gpu_kernel_bench.cpp)
  meridian_target_defaults(gpu_kernel_bench)
  target_link_libraries(gpu_kernel_bench PRIVATE meridian_ops_cuda meridian_core cxxopts::cxxopts)
endif()
