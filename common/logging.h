// Logging set-up shared by every binary: one spdlog logger per component ("timesync",
// "labnet", "agent", ...) writing to the console (stderr, so stdout stays clean for JSON) and
// to a size-rotated file under a log directory.
//
// Binaries call InitLogging() once in main(); libraries never call it, they take a
// std::shared_ptr<spdlog::logger> at construction (see NullLogger() for "no logging").
#ifndef COMMON_LOGGING_H_
#define COMMON_LOGGING_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "spdlog/spdlog.h"

namespace lab {

struct LogOptions {
  // Directory for the rotating file, created if missing. Empty: no file.
  std::string dir = "logs";
  // Size at which the file rotates, and how many rotated files are kept.
  std::size_t max_file_bytes = 10 * 1024 * 1024;
  std::size_t max_files = 5;
  // Threshold for every logger (trace, debug, info, warn, error, critical, off).
  spdlog::level::level_enum level = spdlog::level::info;
  // Also log to stderr.
  bool console = true;
};

// Parses a level name ("info", "debug", ...). InvalidArgument names the accepted values.
absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(absl::string_view name);

// Sets up the sinks for this process: `<dir>/<program>.log` rotated by size, plus stderr.
// Loggers obtained before or after this call use the new sinks. Returns an error (and
// leaves console-only logging in place) when the directory cannot be created or opened.
// Not thread-safe against concurrent ComponentLogger() calls: call it first thing in main().
absl::Status InitLogging(absl::string_view program, const LogOptions& options);

// The named logger of a component ("timesync", "net", ...), created on first use with the
// process's sinks. Its messages carry the component name. Thread-safe.
std::shared_ptr<spdlog::logger> ComponentLogger(absl::string_view component);

// A logger that discards everything, for libraries used without logging (tests, benches).
std::shared_ptr<spdlog::logger> NullLogger();

// Flushes every logger (call before exit).
void FlushLogs();

}  // namespace lab

#endif  // COMMON_LOGGING_H_
