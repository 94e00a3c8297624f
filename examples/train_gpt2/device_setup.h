#pragma once
// What every trainer loop needs to run on a GPU (train_on_device, and train_pipelined with
// --device cuda): the communicators for its tensors, the flags a GPU run refuses, and the peak
// that MFU is measured against.
#include "core/device.h"
#include "launcher/runtime.h"
#include "parallel/comm/tensor_groups.h"
#include "train_options.h"

namespace meridian::train {

// fp32 peak of one H100/H200 SXM without tensor cores (NVIDIA's datasheet: 67 TFLOP/s): the MFU
// denominator for fp32 training on GPUs unless --peak-tflops says otherwise.
inline constexpr double kCudaFp32PeakTflops = 67.0;
// Dense bf16 tensor-core peak of one H100/H200 SXM (NVIDIA's datasheet: 989 TFLOP/s), for --dtype bf16.
// A large bf16 matmul measured about 790 TFLOP/s on the lent H200s (bench/gpu_train_bench.sh reports
// MFU against both).
inline constexpr double kCudaBf16PeakTflops = 989.0;

// The groups that move the run's tensors: on the cpu the MPI groups themselves; on a GPU an NCCL
// communicator on the ranks' GPUs, bootstrapped over the MPI group (a group of one rank stays the
// MPI group: nothing is communicated). A build without NCCL fails with a usage error naming the
// group.
comm::TensorGroupFactory tensor_groups_on(launcher::Runtime& runtime, Device device);

// A usage error for what a GPU run cannot do: an optimizer other than adamw (the only one with a
// CUDA kernel).
void check_device_options(const TrainOptions& options, Device device);

}  // namespace meridian::train
