#include "common/logging.h"

#include <filesystem>
#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "spdlog/sinks/null_sink.h"
#include "spdlog/sinks/rotating_file_sink.h"
#include "spdlog/sinks/stdout_color_sinks.h"

namespace lab {

namespace {

constexpr char kPattern[] = "%Y-%m-%dT%H:%M:%S.%f %^%L%$ [%n] %v";

struct LogState {
  std::mutex mu;
  std::vector<spdlog::sink_ptr> sinks;
  spdlog::level::level_enum level = spdlog::level::info;
  bool initialised = false;
};

LogState& State() {
  static LogState* state = new LogState();
  return *state;
}

void EnsureDefaultSinksLocked(LogState& s) {
  if (s.initialised) return;
  auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  console->set_pattern(kPattern);
  s.sinks = {console};
  s.initialised = true;
}

}  // namespace

absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(absl::string_view name) {
  static constexpr absl::string_view kNames[] = {"trace", "debug",    "info", "warn",
                                                 "error", "critical", "off"};
  for (std::size_t i = 0; i < std::size(kNames); ++i) {
    if (name == kNames[i]) return static_cast<spdlog::level::level_enum>(i);
  }
  if (name == "warning") return spdlog::level::warn;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level '", name, "'; use one of: ", absl::StrJoin(kNames, ", ")));
}

absl::Status InitLogging(absl::string_view program, const LogOptions& options) {
  LogState& s = State();
  std::lock_guard<std::mutex> lock(s.mu);
  s.sinks.clear();
  s.initialised = true;
  s.level = options.level;
  if (options.console) {
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    console->set_pattern(kPattern);
    s.sinks.push_back(console);
  }
  absl::Status status;
  if (!options.dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(options.dir, ec);
    if (ec) {
      status = absl::PermissionDeniedError(absl::StrCat("cannot create log directory '",
                                                        options.dir, "': ", ec.message(),
                                                        "; pass --log-dir with a writable path"));
    } else {
      try {
        auto file = std::make_shared<spdlog::sinks::rotating_file_sink_mt>(
            absl::StrCat(options.dir, "/", program, ".log"), options.max_file_bytes,
            options.max_files);
        file->set_pattern(kPattern);
        s.sinks.push_back(file);
      } catch (const spdlog::spdlog_ex& e) {
        status = absl::PermissionDeniedError(
            absl::StrCat("cannot open log file in '", options.dir, "': ", e.what()));
      }
    }
  }
  // Re-point loggers created before this call at the new sinks.
  spdlog::apply_all([&](const std::shared_ptr<spdlog::logger>& logger) {
    if (logger->name() == "null") return;
    logger->sinks() = s.sinks;
    logger->set_level(s.level);
  });
  return status;
}

std::shared_ptr<spdlog::logger> ComponentLogger(absl::string_view component) {
  LogState& s = State();
  std::lock_guard<std::mutex> lock(s.mu);
  EnsureDefaultSinksLocked(s);
  std::string name(component);
  if (auto existing = spdlog::get(name)) return existing;
  auto logger = std::make_shared<spdlog::logger>(name, s.sinks.begin(), s.sinks.end());
  logger->set_level(s.level);
  logger->flush_on(spdlog::level::warn);
  spdlog::register_logger(logger);
  return logger;
}

std::shared_ptr<spdlog::logger> NullLogger() {
  static auto* logger = new std::shared_ptr<spdlog::logger>(
      std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>()));
  (*logger)->set_level(spdlog::level::off);
  return *logger;
}

void FlushLogs() {
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->flush(); });
}

}  // namespace lab
