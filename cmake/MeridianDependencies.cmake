# All dependencies come from the system's packages (see scripts/install-deps.sh).
find_package(OpenMP REQUIRED COMPONENTS CXX)
find_package(dnnl REQUIRED CONFIG)
find_package(cxxopts REQUIRED CONFIG)
find_package(nlohmann_json REQUIRED CONFIG)
find_package(Threads REQUIRED)
if(MERIDIAN_BUILD_TESTS)
  find_package(GTest REQUIRED CONFIG)
endif()
if(MERIDIAN_BUILD_BENCH)
  find_package(benchmark REQUIRED CONFIG)
endif()

# The CUDA toolkit is optional: when nvcc is found the CUDA backend is built (and tests that need a
# device skip at run time when none is visible).
include(CheckLanguage)
check_language(CUDA)
find_package(CUDAToolkit QUIET)
if(CMAKE_CUDA_COMPILER AND CUDAToolkit_FOUND)
  set(MERIDIAN_CUDA_TOOLKIT_FOUND ON)
else()
  set(MERIDIAN_CUDA_TOOLKIT_FOUND OFF)
endif()
