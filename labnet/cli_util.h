// Small helpers shared by labnet's subcommands: durations, signals, output.
#ifndef LABNET_CLI_UTIL_H_
#define LABNET_CLI_UTIL_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>

#include "CLI/CLI.hpp"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/logging.h"

namespace lab::cli {

// Parses the value of --`flag`, "5ms", "1.5s", "250us", "-25ms" (Go-style units ns, us, ms,
// s, m, h; "0" alone is allowed), into nanoseconds within [min_ns, max_ns] (min_ns excluded
// when `min_exclusive`). InvalidArgument names the flag, the value and what is accepted.
absl::StatusOr<int64_t> ParseDurationNs(absl::string_view flag, absl::string_view text,
                                        int64_t min_ns, int64_t max_ns, bool min_exclusive = false);

// InvalidArgument naming --`flag` and its value unless `value` is a finite number within
// [min, max] (min excluded when `min_exclusive`).
absl::Status CheckRange(absl::string_view flag, double value, double min, double max,
                        bool min_exclusive = false);

// Parses a byte count, "64", "128K", "1M", "1G" (K = 1024, as iperf3's --length), within
// [min, max]. InvalidArgument names the flag, the value and what is accepted.
absl::StatusOr<uint64_t> ParseBytes(absl::string_view flag, absl::string_view text, uint64_t min,
                                    uint64_t max);

// Parses a rate for --`flag`: "250", "100k", "1.5M", "2G" (k, M, G = 1000^n), a finite
// number >= 0. InvalidArgument names the flag and the value.
absl::StatusOr<double> ParseRate(absl::string_view flag, absl::string_view text);

// "12.3 Mbit/s" (1000-based, like iperf3), "1.5 MB", "42.0" µs or "-" when not finite.
std::string FormatBitRate(double bits_per_second);
std::string FormatByteCount(double bytes);
std::string FormatMicros(double us);

// Prints "labnet: <message>" on stderr and returns 2, the exit code of bad usage.
int UsageError(const absl::Status& status);

// Parses --`flag` "FIRST-LAST" (1 <= FIRST <= LAST <= 65535). InvalidArgument explains the form.
absl::StatusOr<std::pair<uint16_t, uint16_t>> ParsePortRange(absl::string_view flag,
                                                             absl::string_view text);

// The logging flags every binary takes: --log-level, --log-dir, --log-max-size,
// --log-max-files.
struct LogFlags {
  std::string level = "info";
  LogOptions options;

  void Add(CLI::App& app);
  // Sets up logging for `program` (its file is <log-dir>/<program>.log). A bad level is
  // printed on stderr and gives false (the caller exits 2); an unusable log directory is
  // reported and logging goes on to the console only.
  bool Apply(const std::string& program);
};

// Blocks SIGINT and SIGTERM in the calling thread (call before starting any thread, so all
// threads inherit the mask) and runs `on_signal` on a watcher thread when one arrives.
// The watcher stops when the object is destroyed. Not copyable.
class SignalWatcher {
 public:
  explicit SignalWatcher(std::function<void()> on_signal);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Writes `text` to `path` atomically enough for a CLI (truncate + write). Returns an error
// naming the path.
absl::Status WriteFile(const std::string& path, absl::string_view text);

}  // namespace lab::cli

#endif  // LABNET_CLI_UTIL_H_
