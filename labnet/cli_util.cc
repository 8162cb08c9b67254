#include "labnet/cli_util.h"

#include <signal.h>

#include <cerrno>
#include <cmath>
#include <fstream>
#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/errno_status.h"

namespace lab::cli {

namespace {

std::string RangeText(absl::string_view lo, absl::string_view hi, bool min_exclusive) {
  return absl::StrCat(min_exclusive ? "(" : "[", lo, ", ", hi, "]");
}

}  // namespace

absl::StatusOr<int64_t> ParseDurationNs(absl::string_view flag, absl::string_view text,
                                        int64_t min_ns, int64_t max_ns, bool min_exclusive) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " '", text,
                     "' is not a duration; write a number with a unit, e.g. 5ms, 250us, 1.5s"));
  }
  const int64_t ns = absl::ToInt64Nanoseconds(d);  // saturates for inf and huge values
  const bool infinite = d == absl::InfiniteDuration() || d == -absl::InfiniteDuration();
  if (infinite || ns > max_ns || ns < min_ns || (min_exclusive && ns == min_ns)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be in ",
                     RangeText(absl::FormatDuration(absl::Nanoseconds(min_ns)),
                               absl::FormatDuration(absl::Nanoseconds(max_ns)), min_exclusive),
                     ", got ", text));
  }
  return ns;
}

absl::StatusOr<uint64_t> ParseBytes(absl::string_view flag, absl::string_view text, uint64_t min,
                                    uint64_t max) {
  absl::string_view digits = absl::StripAsciiWhitespace(text);
  uint64_t scale = 1;
  if (!digits.empty()) {
    switch (absl::ascii_toupper(digits.back())) {
      case 'K':
        scale = uint64_t{1} << 10;
        break;
      case 'M':
        scale = uint64_t{1} << 20;
        break;
      case 'G':
        scale = uint64_t{1} << 30;
        break;
      default:
        break;
    }
    if (scale != 1) digits.remove_suffix(1);
  }
  uint64_t value = 0;
  if (!absl::SimpleAtoi(digits, &value) || value > max / scale || value * scale < min) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " must be a byte count in [", min, ", ", max,
                     "] (suffixes K, M, G = 1024^n), got '", text, "'"));
  }
  return value * scale;
}

absl::StatusOr<double> ParseRate(absl::string_view flag, absl::string_view text) {
  absl::string_view number = absl::StripAsciiWhitespace(text);
  double scale = 1;
  if (!number.empty()) {
    switch (number.back()) {
      case 'k':
      case 'K':
        scale = 1e3;
        break;
      case 'M':
        scale = 1e6;
        break;
      case 'G':
        scale = 1e9;
        break;
      default:
        break;
    }
    if (scale != 1) number.remove_suffix(1);
  }
  double value = 0;
  if (number.empty() || !absl::SimpleAtod(number, &value) || !std::isfinite(value) || value < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " '", text,
        "' is not a rate; write a number >= 0 with an optional k, M or G suffix (1000-based), "
        "e.g. 100k"));
  }
  return value * scale;
}

namespace {

std::string Scaled(double value, const char* const* units, int count) {
  int u = 0;
  while (value >= 1000 && u < count - 1) {
    value /= 1000;
    ++u;
  }
  return absl::StrFormat("%.3g %s", value, units[u]);
}

}  // namespace

std::string FormatBitRate(double bits_per_second) {
  static const char* const kUnits[] = {"bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s"};
  return std::isfinite(bits_per_second) ? Scaled(bits_per_second, kUnits, 5) : "-";
}

std::string FormatByteCount(double bytes) {
  static const char* const kUnits[] = {"B", "kB", "MB", "GB", "TB"};
  return std::isfinite(bytes) ? Scaled(bytes, kUnits, 5) : "-";
}

std::string FormatMicros(double us) {
  return std::isfinite(us) ? absl::StrFormat("%.1f", us) : "-";
}

int UsageError(const absl::Status& status) {
  std::cerr << "labnet: " << status.message() << "\n";
  return 2;
}

absl::StatusOr<std::pair<uint16_t, uint16_t>> ParsePortRange(absl::string_view flag,
                                                             absl::string_view text) {
  const std::pair<absl::string_view, absl::string_view> parts =
      absl::StrSplit(text, absl::MaxSplits('-', 1));
  uint32_t first = 0, last = 0;
  if (!absl::SimpleAtoi(parts.first, &first) || !absl::SimpleAtoi(parts.second, &last) ||
      first < 1 || last > 65535 || first > last) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " must be FIRST-LAST with 1 <= FIRST <= LAST <= 65535, got '", text, "'"));
  }
  return std::make_pair(static_cast<uint16_t>(first), static_cast<uint16_t>(last));
}

absl::Status CheckRange(absl::string_view flag, double value, double min, double max,
                        bool min_exclusive) {
  const bool below = min_exclusive ? !(value > min) : !(value >= min);
  if (below || !(value <= max)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--", flag, " must be in ", RangeText(absl::StrCat(min), absl::StrCat(max), min_exclusive),
        ", got ", value));
  }
  return absl::OkStatus();
}

void LogFlags::Add(CLI::App& app) {
  app.add_option("--log-level", level, "trace, debug, info, warn, error, critical, off")
      ->capture_default_str();
  app.add_option("--log-dir", options.dir, "directory for the log file (empty: no file)")
      ->capture_default_str();
  app.add_option("--log-max-size", options.max_file_bytes, "bytes before the log file rotates")
      ->capture_default_str();
  app.add_option("--log-max-files", options.max_files, "rotated log files kept")
      ->capture_default_str();
}

bool LogFlags::Apply(const std::string& program) {
  auto parsed = ParseLogLevel(level);
  if (!parsed.ok()) {
    std::cerr << program << ": " << parsed.status().message() << "\n";
    return false;
  }
  options.level = *parsed;
  if (absl::Status s = InitLogging(program, options); !s.ok()) {
    std::cerr << program << ": " << s.message() << " (logging to the console only)\n";
  }
  return true;
}

SignalWatcher::SignalWatcher(std::function<void()> on_signal) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this, set, on_signal = std::move(on_signal)] {
    const timespec tick{0, 100'000'000};
    while (!done_.load()) {
      if (sigtimedwait(&set, nullptr, &tick) > 0) on_signal();
    }
  });
}

SignalWatcher::~SignalWatcher() {
  done_ = true;
  thread_.join();
}

absl::Status WriteFile(const std::string& path, absl::string_view text) {
  std::ofstream out(path, std::ios::trunc);
  if (!out) return ErrnoToStatus(errno ? errno : EIO, absl::StrCat("cannot open '", path, "'"));
  out << text;
  out.close();
  if (!out) return ErrnoToStatus(errno ? errno : EIO, absl::StrCat("cannot write '", path, "'"));
  return absl::OkStatus();
}

}  // namespace lab::cli
