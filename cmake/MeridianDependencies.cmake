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

# --- MPI and NCCL (distributed runtime: launcher/, parallel/comm/) --------------------------------
# Open MPI is required: every program starts through the launcher, which initialises MPI.
find_package(MPI REQUIRED COMPONENTS CXX)

# Multi-rank tests run under `mpiexec -n N <preflags> program`. Open MPI refuses to run as root and
# to place more ranks than cores unless told; CI containers run as root on small machines.
set(MERIDIAN_MPIEXEC_PREFLAGS ${MPIEXEC_PREFLAGS})
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _meridian_mpiexec_version
                ERROR_QUIET)
if(_meridian_mpiexec_version MATCHES "Open MPI|OpenRTE")
  list(APPEND MERIDIAN_MPIEXEC_PREFLAGS --allow-run-as-root --oversubscribe)
endif()

# meridian_add_mpi_test(NAME <name> RANKS <n> COMMAND <program> [args...] [LABELS ...]
#                       [TIMEOUT <s>]): a CTest test that runs the command on n ranks.
function(meridian_add_mpi_test)
  cmake_parse_arguments(ARG "" "NAME;RANKS;TIMEOUT" "COMMAND;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 600)
  endif()
  add_test(NAME ${ARG_NAME}
           COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${ARG_RANKS} ${MERIDIAN_MPIEXEC_PREFLAGS}
                   ${ARG_COMMAND} ${MPIEXEC_POSTFLAGS})
  # One OpenMP thread per rank: ranks already share the machine's cores.
  set_tests_properties(${ARG_NAME} PROPERTIES LABELS "multirank;${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT}
                       ENVIRONMENT "OMP_NUM_THREADS=1")
endfunction()

# NCCL ships with the CUDA toolkit here (or in NCCL_ROOT): the collective backend for CUDA tensors.
set(MERIDIAN_NCCL_FOUND OFF)
if(MERIDIAN_CUDA_TOOLKIT_FOUND)
  find_path(MERIDIAN_NCCL_INCLUDE_DIR nccl.h
            HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_INCLUDE_DIRS} PATH_SUFFIXES include)
  find_library(MERIDIAN_NCCL_LIBRARY nccl
               HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} ${CUDAToolkit_LIBRARY_DIR} PATH_SUFFIXES lib lib64)
  if(MERIDIAN_NCCL_INCLUDE_DIR AND MERIDIAN_NCCL_LIBRARY)
    set(MERIDIAN_NCCL_FOUND ON)
    if(NOT TARGET Meridian::nccl)
      add_library(Meridian::nccl UNKNOWN IMPORTED)
      set_target_properties(Meridian::nccl PROPERTIES IMPORTED_LOCATION ${MERIDIAN_NCCL_LIBRARY}
                            INTERFACE_INCLUDE_DIRECTORIES ${MERIDIAN_NCCL_INCLUDE_DIR})
    endif()
  endif()
endif()
