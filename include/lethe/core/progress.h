// Progress of long work on stderr: a bar with rate and ETA redrawn in place on a terminal, plain
// lines (every 10 % or 30 s) otherwise, nothing when disabled.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace lethe {

class Progress {
 public:
  Progress(std::string label, std::int64_t total, bool enabled = true);
  ~Progress();
  // `done` units of `total` are complete; `extra` is shown after the rate (e.g. "loss 1.23").
  void update(std::int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  void draw(bool final);
  std::string label_, extra_;
  std::int64_t total_, done_ = 0;
  bool enabled_, tty_, finished_ = false;
  std::int64_t start_done_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
  int last_decile_ = -1;
};

// "1:02:03" / "2:03" for a number of seconds.
std::string format_duration(double seconds);

// Wall seconds from `t0` to now (the timings runs and reports record).
inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace lethe
