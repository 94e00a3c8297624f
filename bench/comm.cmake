# comm_bench: bandwidth of the collectives, nccl-tests style, per backend, plus raw MPI_Allreduce
# for comparison and a compute/communication overlap measurement. Run it under mpirun:
#   mpirun -np 2 build/bin/comm_bench [--min-bytes 4K --max-bytes 256M --iters 20]
if(TARGET meridian_launcher)
  add_executable(comm_bench ${CMAKE_CURRENT_SOURCE_DIR}/comm_bench.cpp)
  meridian_target_defaults(comm_bench)
  # The bench calls MPI_Allreduce itself (raw baseline), so it links MPI directly.
  target_link_libraries(comm_bench PRIVATE meridian_launcher meridian_parallel MPI::MPI_CXX)
  if(MERIDIAN_CUDA)
    target_link_libraries(comm_bench PRIVATE CUDA::cudart)
  endif()
endif()
