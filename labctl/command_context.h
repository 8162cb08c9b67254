// What every labctl command is given: the global options, the process environment (streams,
// clock, how to reach the controller), the user's interrupt, and how a failed call to the
// controller is explained. Commands return process exit codes (below).
#ifndef LABCTL_COMMAND_CONTEXT_H_
#define LABCTL_COMMAND_CONTEXT_H_

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "grpcpp/client_context.h"
#include "lab/v1/controller.grpc.pb.h"
#include "rpc/credentials.h"

namespace lab::labctl {

// Exit codes. kPartial: the run finished but some clients were lost or failed.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitPartial = 3;
inline constexpr int kExitInterrupted = 130;

inline constexpr char kDefaultController[] = "127.0.0.1:50051";

// Flags every command accepts.
struct GlobalOptions {
  std::string controller = kDefaultController;  // HOST:PORT
  bool insecure = false;                        // plaintext beyond loopback
  absl::Duration timeout = absl::Seconds(10);   // deadline of each unary call (and export)
  bool json = false;                            // --output json (else table)
};

using ControllerStub = lab::v1::LabController::StubInterface;

// Opens a stub for the controller at `address`; makes no call. InvalidArgument when the
// address is not loopback and `transport.insecure` is false.
using ConnectFn = std::function<absl::StatusOr<std::shared_ptr<ControllerStub>>(
    const std::string& address, const rpc::TransportOptions& transport)>;

// The real ConnectFn: a gRPC channel through the one credentials factory, with reconnect
// backoff short enough for a CLI that polls a starting controller.
absl::StatusOr<std::shared_ptr<ControllerStub>> ConnectToController(
    const std::string& address, const rpc::TransportOptions& transport);

// The user's Ctrl-C. Cancel() may be called from any thread (the signal watcher); it
// TryCancel()s the call being watched, so a blocked Read() or unary call returns CANCELLED.
class Interrupt {
 public:
  Interrupt() = default;
  Interrupt(const Interrupt&) = delete;
  Interrupt& operator=(const Interrupt&) = delete;

  void Cancel();
  bool cancelled() const;

  // Watches `context` until the guard is destroyed (cancelling it at once when the user has
  // already interrupted). One context at a time; `context` must outlive the guard.
  class Watch {
   public:
    Watch(Interrupt& interrupt, grpc::ClientContext* context);
    ~Watch();
    Watch(const Watch&) = delete;
    Watch& operator=(const Watch&) = delete;

   private:
    Interrupt& interrupt_;
  };

 private:
  mutable std::mutex mu_;
  bool cancelled_ = false;
  grpc::ClientContext* context_ = nullptr;
};

// The process seen by the commands; main() fills it with the real things, tests with fakes.
struct Environment {
  std::ostream* out = nullptr;  // tables and JSON only
  std::ostream* err = nullptr;  // messages and progress
  // Progress bars redrawn in place (stdout and stderr are terminals); else plain lines.
  bool interactive = false;
  const Clock* clock = &RealtimeClock::Get();
  ConnectFn connect = ConnectToController;
  // Environment variables (LAB_CONTROLLER_BIN, LAB_AGENT_BIN, PATH).
  std::function<std::optional<std::string>(const std::string& name)> getenv;
  std::string self_exe;  // labctl's own path (readlink /proc/self/exe); empty: unknown
  Interrupt* interrupt = nullptr;
  bool init_logging = false;  // RunLabctl sets up the process's logging (main only)
};

// How to tell the user that a call to the controller failed, and the exit code.
struct CallError {
  int exit_code = kExitFailed;
  std::string message;
};
// `controller` is the address called; `deadline_hint` says which deadline expired
// ("--timeout 10s"). INVALID_ARGUMENT is the user's request: exit 2; everything else 1.
CallError DescribeCallError(const absl::Status& status, absl::string_view controller,
                            absl::string_view deadline_hint);

// For a unary call (or export) that failed with `status`: prints why and returns the exit
// code (130 when the user interrupted it).
int ExplainCallFailure(const absl::Status& status, const GlobalOptions& global, Environment& env);

// Connects with env.connect, or prints why not (exit 2 for a refused address, else 1) and
// returns nullptr with *exit_code set.
std::shared_ptr<ControllerStub> ConnectOrExplain(const GlobalOptions& global, Environment& env,
                                                 int* exit_code);

// Prints "labctl: <message>" on env.err.
void PrintError(Environment& env, absl::string_view message);

}  // namespace lab::labctl

#endif  // LABCTL_COMMAND_CONTEXT_H_
