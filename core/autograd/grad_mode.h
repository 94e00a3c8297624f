#pragma once
// Whether differentiable functions record their backward. Per thread, on by default.

namespace meridian::autograd {

class GradMode {
 public:
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

}  // namespace meridian::autograd

namespace meridian {

// Inside its scope no graph is built: for evaluation, sampling, optimizer updates.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(autograd::GradMode::is_enabled()) { autograd::GradMode::set_enabled(false); }
  ~NoGradGuard() { autograd::GradMode::set_enabled(previous_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

class EnableGradGuard {
 public:
  EnableGradGuard() : previous_(autograd::GradMode::is_enabled()) { autograd::GradMode::set_enabled(true); }
  ~EnableGradGuard() { autograd::GradMode::set_enabled(previous_); }
  EnableGradGuard(const EnableGradGuard&) = delete;
  EnableGradGuard& operator=(const EnableGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace meridian
