#include "labnet/cli_util.h"

#include <signal.h>

#include <cerrno>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/errno_status.h"

namespace lab::cli {

absl::StatusOr<int64_t> ParseDurationNs(absl::string_view flag, absl::string_view text) {
  absl::Duration d;
  if (!absl::ParseDuration(text, &d)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, " '", text,
                     "' is not a duration; write a number with a unit, e.g. 5ms, "
                     "250us, 1.5s"));
  }
  return absl::ToInt64Nanoseconds(d);
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
