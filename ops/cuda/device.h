#pragma once
// The CUDA runtime seen from host code that must also build without CUDA headers.
#include <string>

namespace meridian::ops::cuda {

// Number of visible CUDA devices; 0 when there is no driver or no device (never throws).
int device_count();
// Why device_count() is 0, in words ("no CUDA driver found", ...); empty when devices exist.
std::string unavailable_reason();

}  // namespace meridian::ops::cuda
