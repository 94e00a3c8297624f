#pragma once
#include <string>

namespace meridian {

enum class DeviceType : uint8_t { cpu, cuda };

struct Device {
  DeviceType type = DeviceType::cpu;
  int index = 0;

  static Device cpu() { return {DeviceType::cpu, 0}; }
  static Device cuda(int index) { return {DeviceType::cuda, index}; }
  bool is_cpu() const { return type == DeviceType::cpu; }
  bool is_cuda() const { return type == DeviceType::cuda; }
  bool operator==(const Device&) const = default;
  std::string to_string() const {
    return is_cpu() ? std::string("cpu") : "cuda:" + std::to_string(index);
  }
};

// "cpu", "cuda" (device 0) or "cuda:N"; throws on anything else.
Device parse_device(const std::string& text);

}  // namespace meridian
