// lab-agent's logic: a thin gRPC adapter over the data plane. The agent dials the
// controller, says Hello, keeps one bidirectional stream (AgentService.Connect) with a
// heartbeat every second, runs the tasks the controller sends through the data plane
// libraries and streams their updates and samples back. It listens on nothing, so it obeys
// only the controller it dialled. When the stream breaks it stops every task and dials again
// (with backoff) until Stop().
#ifndef AGENT_AGENT_H_
#define AGENT_AGENT_H_

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "lab/v1/agent.grpc.pb.h"
#include "rpc/credentials.h"
#include "spdlog/logger.h"

namespace lab::agent {

struct AgentOptions {
  std::string controller = "127.0.0.1:50051";
  rpc::TransportOptions transport;
  // Name, addresses, capabilities... (capabilities, timestamping and clock id are filled in
  // by the agent when empty).
  lab::v1::AgentInfo info;
  // Address the agent's servers bind (its lab address).
  std::string lab_address = "127.0.0.1";
  uint32_t max_tasks = 64;
  int64_t heartbeat_interval_ns = 1'000'000'000;
  int64_t max_backoff_ns = 5'000'000'000;  // between reconnection attempts
  std::size_t sample_batch = 512;          // samples per SampleBatch message
};

class Agent {
 public:
  Agent(AgentOptions options, std::shared_ptr<spdlog::logger> logger);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Runs sessions until Stop(). Returns an error only for a configuration problem (e.g. a
  // plaintext non-loopback controller without --insecure).
  absl::Status Run();
  // Ends Run() soon, stopping all tasks. Thread-safe.
  void Stop();

 private:
  struct RunningTask;
  class Session;

  // One session: Hello, then read commands until the stream ends.
  void RunSession(const std::shared_ptr<grpc::Channel>& channel);

  AgentOptions options_;
  std::shared_ptr<spdlog::logger> logger_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  grpc::ClientContext* active_context_ = nullptr;  // guarded by mu_, to cancel on Stop()
};

}  // namespace lab::agent

#endif  // AGENT_AGENT_H_
