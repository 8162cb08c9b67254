#include "labctl/command_context.h"

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/support/channel_arguments.h"

namespace lab::labctl {

absl::StatusOr<std::shared_ptr<ControllerStub>> ConnectToController(
    const std::string& address, const rpc::TransportOptions& transport) {
  auto credentials = rpc::ChannelCredentialsFor(address, transport);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  // gRPC's default first reconnect backoff is 1 s: too slow for `lab up` polling a
  // controller that is starting.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  auto channel = grpc::CreateCustomChannel(address, *credentials, args);
  return std::shared_ptr<ControllerStub>(lab::v1::LabController::NewStub(channel));
}

void Interrupt::Cancel() {
  std::lock_guard<std::mutex> lock(mu_);
  cancelled_ = true;
  if (context_ != nullptr) context_->TryCancel();
}

bool Interrupt::cancelled() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cancelled_;
}

Interrupt::Watch::Watch(Interrupt& interrupt, grpc::ClientContext* context)
    : interrupt_(interrupt) {
  std::lock_guard<std::mutex> lock(interrupt_.mu_);
  interrupt_.context_ = context;
  if (interrupt_.cancelled_) context->TryCancel();
}

Interrupt::Watch::~Watch() {
  std::lock_guard<std::mutex> lock(interrupt_.mu_);
  interrupt_.context_ = nullptr;
}

CallError DescribeCallError(const absl::Status& status, absl::string_view controller,
                            absl::string_view deadline_hint) {
  ComponentLogger("labctl")->debug("call to {} failed: {}", std::string(controller),
                                   status.ToString());
  const absl::string_view detail = status.message();
  switch (status.code()) {
    case absl::StatusCode::kUnavailable:
      return {kExitFailed, absl::StrCat("cannot reach the controller at ", controller,
                                        ": is it running? (labctl lab up)")};
    case absl::StatusCode::kDeadlineExceeded:
      return {kExitFailed, absl::StrCat("the controller at ", controller,
                                        " did not answer in time (", deadline_hint, ")")};
    case absl::StatusCode::kInvalidArgument:
      return {kExitUsage, absl::StrCat("the controller refused the request: ", detail)};
    case absl::StatusCode::kNotFound:
      return {kExitFailed, absl::StrCat("not found: ", detail)};
    case absl::StatusCode::kFailedPrecondition:
      return {kExitFailed, absl::StrCat("the controller cannot do this now: ", detail)};
    case absl::StatusCode::kResourceExhausted:
      return {kExitFailed, absl::StrCat("the controller is busy: ", detail)};
    case absl::StatusCode::kUnimplemented:
      return {kExitFailed, absl::StrCat("the controller at ", controller,
                                        " does not offer this call (an older version?)")};
    case absl::StatusCode::kCancelled:
      return {kExitFailed, "the call was cancelled"};
    default:
      return {kExitFailed, absl::StrCat("the controller at ", controller, " failed: ",
                                        absl::StatusCodeToString(status.code()), ": ", detail)};
  }
}

int ExplainCallFailure(const absl::Status& status, const GlobalOptions& global, Environment& env) {
  if (env.interrupt->cancelled()) {
    PrintError(env, "interrupted");
    return kExitInterrupted;
  }
  const CallError error = DescribeCallError(
      status, global.controller, absl::StrCat("--timeout ", absl::FormatDuration(global.timeout)));
  PrintError(env, error.message);
  return error.exit_code;
}

std::shared_ptr<ControllerStub> ConnectOrExplain(const GlobalOptions& global, Environment& env,
                                                 int* exit_code) {
  auto stub = env.connect(global.controller, rpc::TransportOptions{.insecure = global.insecure});
  if (stub.ok()) return *std::move(stub);
  PrintError(env, stub.status().message());
  *exit_code = absl::IsInvalidArgument(stub.status()) ? kExitUsage : kExitFailed;
  return nullptr;
}

void PrintError(Environment& env, absl::string_view message) {
  *env.err << "labctl: " << message << "\n";
  env.err->flush();
}

}  // namespace lab::labctl
