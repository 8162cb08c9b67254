#include "agent/agent.h"

#include <algorithm>
#include <condition_variable>
#include <fstream>
#include <functional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/clock.h"
#include "dataplane/net/socket_address.h"
#include "dataplane/net/udp_socket.h"
#include "dataplane/timesync/client.h"
#include "dataplane/timesync/report.h"
#include "dataplane/timesync/server.h"
#include "dataplane/traffic/tcp_client.h"
#include "dataplane/traffic/tcp_server.h"
#include "dataplane/traffic/udp_client.h"
#include "dataplane/traffic/udp_server.h"
#include "grpcpp/create_channel.h"
#include "rpc/timesync_conversion.h"
#include "rpc/traffic_conversion.h"

namespace lab::agent {

namespace {

using lab::v1::AgentMessage;
using lab::v1::ControllerMessage;
using Stream = grpc::ClientReaderWriter<AgentMessage, ControllerMessage>;

// Identifies the host clock: processes and containers on one kernel share the boot id.
std::string ClockId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return id.empty() ? "unknown" : id;
}

// "kernel" when this host grants SO_TIMESTAMPNS on a UDP socket.
std::string TimestampingFact() {
  auto address = net::SocketAddress::Resolve("127.0.0.1", 0);
  if (!address.ok()) return "user";
  auto socket = net::UdpSocket::Bind(*address);
  return socket.ok() && socket->EnableReceiveTimestamps() ? "kernel" : "user";
}

AgentMessage Update(const lab::v1::Task& task, lab::v1::TaskState state, std::string detail) {
  AgentMessage m;
  auto* u = m.mutable_task_update();
  u->set_task_id(task.task_id());
  u->set_experiment_id(task.experiment_id());
  u->set_state(state);
  u->set_detail(std::move(detail));
  return m;
}

}  // namespace

// A task's thread and the handles to stop it.
struct Agent::RunningTask {
  std::atomic<bool> cancel{false};
  std::atomic<bool> done{false};
  std::mutex mu;
  std::condition_variable cv;              // signalled by RequestStop
  timesync::TimeServer* server = nullptr;  // server tasks, while running (guarded by mu)
  std::jthread thread;

  void RequestStop() {
    cancel = true;
    std::lock_guard<std::mutex> lock(mu);
    if (server != nullptr) server->Stop();
    cv.notify_all();
  }

  // Blocks until RequestStop.
  void WaitForStop() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return cancel.load(); });
  }
};

// One connected session: a writer thread (the only one calling stream->Write) fed by a
// queue, heartbeats, and the tasks started during the session.
class Agent::Session {
 public:
  Session(Agent& agent, Stream* stream) : agent_(agent), stream_(stream) {
    writer_ = std::jthread([this] { WriteLoop(); });
  }
  ~Session() {
    StopAllTasks();
    {
      std::lock_guard<std::mutex> lock(mu_);
      closing_ = true;
    }
    cv_.notify_all();
    writer_.join();
  }

  void Send(AgentMessage message) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(message));
    }
    cv_.notify_all();
  }

  void Handle(const ControllerMessage& message) {
    if (message.has_start_task()) StartTask(message.start_task());
    if (message.has_stop_task()) StopTask(message.stop_task().task_id());
  }

 private:
  void WriteLoop() {
    const auto interval = std::chrono::nanoseconds(agent_.options_.heartbeat_interval_ns);
    auto next_heartbeat = std::chrono::steady_clock::now() + interval;
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      cv_.wait_until(lock, next_heartbeat, [&] { return closing_ || !queue_.empty(); });
      if (closing_ && queue_.empty()) return;
      std::deque<AgentMessage> out;
      out.swap(queue_);
      if (std::chrono::steady_clock::now() >= next_heartbeat) {
        AgentMessage hb;
        hb.mutable_heartbeat()->set_agent_time_ns(RealtimeClock::Get().NowNs());
        hb.mutable_heartbeat()->set_running_tasks(static_cast<uint32_t>(running_));
        out.push_back(std::move(hb));
        next_heartbeat = std::chrono::steady_clock::now() + interval;
      }
      lock.unlock();
      for (const AgentMessage& m : out) {
        if (!stream_->Write(m)) {
          lock.lock();
          broken_ = true;
          queue_.clear();
          if (closing_) return;
          lock.unlock();
          break;
        }
      }
      lock.lock();
    }
  }

  void StartTask(const lab::v1::Task& task) {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    ReapFinishedLocked();
    if (tasks_.contains(task.task_id())) {
      Send(Update(task, lab::v1::TASK_STATE_FAILED, "duplicate task id"));
      return;
    }
    if (tasks_.size() >= agent_.options_.max_tasks) {
      Send(Update(task, lab::v1::TASK_STATE_FAILED,
                  absl::StrCat("agent busy: ", tasks_.size(), " tasks running (--max-tasks ",
                               agent_.options_.max_tasks, ")")));
      return;
    }
    auto running = std::make_shared<RunningTask>();
    tasks_[task.task_id()] = running;
    ++running_;
    running->thread = std::jthread([this, task, running] {
      if (task.has_time_server()) {
        RunServer(task, *running);
      } else if (task.has_time_client()) {
        RunClient(task, *running);
      } else if (task.has_tcp_server() || task.has_udp_server()) {
        RunTrafficServer(task, *running);
      } else if (task.has_tcp_client() || task.has_udp_client()) {
        RunTrafficClient(task, *running);
      } else {
        Send(Update(task, lab::v1::TASK_STATE_FAILED, "this agent cannot run that kind of task"));
      }
      --running_;
      running->done = true;
    });
  }

  void StopTask(const std::string& task_id) {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    if (auto it = tasks_.find(task_id); it != tasks_.end()) it->second->RequestStop();
  }

  void StopAllTasks() {
    absl::flat_hash_map<std::string, std::shared_ptr<RunningTask>> tasks;
    {
      std::lock_guard<std::mutex> lock(tasks_mu_);
      tasks.swap(tasks_);
    }
    for (auto& [id, task] : tasks) task->RequestStop();
    for (auto& [id, task] : tasks) {
      if (task->thread.joinable()) task->thread.join();
    }
  }

  void ReapFinishedLocked() {
    for (auto it = tasks_.begin(); it != tasks_.end();) {
      if (it->second->done) {
        if (it->second->thread.joinable()) it->second->thread.join();
        tasks_.erase(it++);
      } else {
        ++it;
      }
    }
  }

  void RunServer(const lab::v1::Task& task, RunningTask& running) {
    timesync::TimeServerOptions options;
    const auto& spec = task.time_server();
    options.bind_address =
        spec.bind_address().empty() ? agent_.options_.lab_address : spec.bind_address();
    options.port = static_cast<uint16_t>(spec.port());
    options.allow_non_loopback = agent_.options_.transport.insecure;
    auto server = timesync::TimeServer::Create(options, agent_.logger_);
    if (!server.ok()) {
      Send(Update(task, lab::v1::TASK_STATE_FAILED, std::string(server.status().message())));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(running.mu);
      if (running.cancel) return;
      running.server = server->get();
    }
    Send(Update(task, lab::v1::TASK_STATE_RUNNING, (*server)->local_address().ToString()));
    const absl::Status status = (*server)->Run();
    {
      std::lock_guard<std::mutex> lock(running.mu);
      running.server = nullptr;
    }
    Send(Update(task, status.ok() ? lab::v1::TASK_STATE_STOPPED : lab::v1::TASK_STATE_FAILED,
                std::string(status.message())));
  }

  void RunClient(const lab::v1::Task& task, RunningTask& running) {
    const auto& spec = task.time_client();
    auto params = rpc::FromProto(spec.scheme(), spec.params());
    auto server = net::SocketAddress::ParseHostPort(spec.server());
    if (!params.ok() || !server.ok()) {
      Send(Update(task, lab::v1::TASK_STATE_FAILED,
                  std::string((params.ok() ? server.status() : params.status()).message())));
      return;
    }
    timesync::TimeSyncClientOptions options;
    options.server = *server;
    options.core.params = *params;
    options.core.client_id = 1;
    options.core.offset_ns = spec.offset_ns();
    options.core.drift_ppm = spec.drift_ppm();
    options.core.json_feedback = spec.json_feedback();
    options.count = spec.count();
    options.interval_ns = spec.interval_ns();
    if (spec.timeout_ns() > 0) options.timeout_ns = spec.timeout_ns();
    std::size_t forwarded = 0;
    options.progress = [&](const timesync::ClientCore& core) {
      const auto& records = core.records();
      while (forwarded < records.size()) {
        AgentMessage m;
        auto* batch = m.mutable_samples();
        batch->set_task_id(task.task_id());
        batch->set_experiment_id(task.experiment_id());
        const std::size_t end = std::min(records.size(), forwarded + agent_.options_.sample_batch);
        for (; forwarded < end; ++forwarded) rpc::ToProto(records[forwarded], batch->add_samples());
        Send(std::move(m));
      }
      AgentMessage progress = Update(task, lab::v1::TASK_STATE_RUNNING, "");
      progress.mutable_task_update()->set_progress(core.counters().sent);
      progress.mutable_task_update()->set_total(spec.count());
      Send(std::move(progress));
    };
    auto result = timesync::RunTimeSyncClient(options, agent_.logger_, &running.cancel);
    if (!result.ok()) {
      Send(Update(task, lab::v1::TASK_STATE_FAILED, std::string(result.status().message())));
      return;
    }
    if (running.cancel) {
      Send(Update(task, lab::v1::TASK_STATE_STOPPED, "stopped"));
      return;
    }
    AgentMessage complete = Update(task, lab::v1::TASK_STATE_COMPLETE, "");
    complete.mutable_task_update()->set_progress((*result)->counters().sent);
    complete.mutable_task_update()->set_total(spec.count());
    complete.mutable_task_update()->set_summary_json(
        timesync::SummaryToJson(timesync::Summarize(**result, {})).dump());
    Send(std::move(complete));
  }

  // A TCP or UDP traffic server: runs until the controller stops the task.
  void RunTrafficServer(const lab::v1::Task& task, RunningTask& running) {
    const std::string& bind = agent_.options_.lab_address;
    const bool insecure = agent_.options_.transport.insecure;
    std::unique_ptr<traffic::TcpServer> tcp;
    std::unique_ptr<traffic::UdpTrafficServer> udp;
    absl::Status status;
    if (task.has_tcp_server()) {
      auto options = rpc::FromProto(task.tcp_server(), bind, insecure);
      auto server = options.ok()
                        ? traffic::TcpServer::Start(*options, agent_.logger_)
                        : absl::StatusOr<std::unique_ptr<traffic::TcpServer>>(options.status());
      if (server.ok()) tcp = std::move(*server);
      status = server.status();
    } else {
      auto options = rpc::FromProto(task.udp_server(), bind, insecure);
      auto server =
          options.ok()
              ? traffic::UdpTrafficServer::Start(*options)
              : absl::StatusOr<std::unique_ptr<traffic::UdpTrafficServer>>(options.status());
      if (server.ok()) udp = std::move(*server);
      status = server.status();
    }
    if (!status.ok()) {
      Send(Update(task, lab::v1::TASK_STATE_FAILED, std::string(status.message())));
      return;
    }
    const std::string endpoint =
        tcp != nullptr ? tcp->local_address().ToString() : udp->local_address().ToString();
    Send(Update(task, lab::v1::TASK_STATE_RUNNING, endpoint));
    running.WaitForStop();
    std::string summary;
    if (tcp != nullptr) {
      tcp->Stop();
      summary = traffic::TcpServerCountersToJson(tcp->counters()).dump();
    } else {
      udp->Stop();
      summary = traffic::UdpServerStatsToJson(*udp).dump();
    }
    AgentMessage stopped = Update(task, lab::v1::TASK_STATE_STOPPED, "");
    stopped.mutable_task_update()->set_summary_json(std::move(summary));
    Send(std::move(stopped));
  }

  // A TCP or UDP traffic client: streams one sample per interval, then its report.
  void RunTrafficClient(const lab::v1::Task& task, RunningTask& running) {
    uint64_t seq = 0;
    const bool is_tcp = task.has_tcp_client();
    const int64_t duration_ns =
        is_tcp ? task.tcp_client().duration_ns() : task.udp_client().duration_ns();
    // Progress in milliseconds of the run's duration (0 total when it is open-ended).
    const uint64_t total_ms = static_cast<uint64_t>(std::max<int64_t>(duration_ns, 0) / 1'000'000);
    const auto on_interval = [&](const traffic::IntervalSample& sample) {
      AgentMessage m;
      auto* batch = m.mutable_samples();
      batch->set_task_id(task.task_id());
      batch->set_experiment_id(task.experiment_id());
      rpc::ToProto(sample, seq++, batch->add_intervals());
      Send(std::move(m));
      AgentMessage progress = Update(task, lab::v1::TASK_STATE_RUNNING, "");
      progress.mutable_task_update()->set_progress(
          std::min<uint64_t>(total_ms, static_cast<uint64_t>(sample.end_s * 1000)));
      progress.mutable_task_update()->set_total(total_ms);
      Send(std::move(progress));
    };
    absl::StatusOr<std::string> summary;
    if (is_tcp) {
      auto options = rpc::FromProto(task.tcp_client());
      if (!options.ok()) {
        summary = options.status();
      } else {
        auto report = traffic::RunTcpClient(*options, &running.cancel, on_interval);
        if (report.ok()) {
          summary = traffic::TcpClientReportToJson(*report).dump();
        } else {
          summary = report.status();
        }
      }
    } else {
      auto options = rpc::FromProto(task.udp_client());
      if (!options.ok()) {
        summary = options.status();
      } else {
        auto report =
            traffic::RunUdpClient(*options, RealtimeClock::Get(), &running.cancel, on_interval);
        if (report.ok()) {
          summary = traffic::UdpClientReportToJson(*report).dump();
        } else {
          summary = report.status();
        }
      }
    }
    if (!summary.ok()) {
      Send(Update(task, lab::v1::TASK_STATE_FAILED, std::string(summary.status().message())));
      return;
    }
    if (running.cancel) {
      Send(Update(task, lab::v1::TASK_STATE_STOPPED, "stopped"));
      return;
    }
    AgentMessage complete = Update(task, lab::v1::TASK_STATE_COMPLETE, "");
    complete.mutable_task_update()->set_progress(total_ms);
    complete.mutable_task_update()->set_total(total_ms);
    complete.mutable_task_update()->set_summary_json(*std::move(summary));
    Send(std::move(complete));
  }

  Agent& agent_;
  Stream* stream_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<AgentMessage> queue_;
  bool closing_ = false;
  bool broken_ = false;
  std::atomic<int> running_{0};
  std::mutex tasks_mu_;
  absl::flat_hash_map<std::string, std::shared_ptr<RunningTask>> tasks_;
  std::jthread writer_;  // last: started after everything it uses exists
};

Agent::Agent(AgentOptions options, std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), logger_(std::move(logger)) {
  if (options_.info.capabilities().empty()) {
    options_.info.add_capabilities("timesync.server");
    options_.info.add_capabilities("timesync.client");
    for (const char* c : {"tcp.server", "tcp.client", "udp.server", "udp.client"}) {
      options_.info.add_capabilities(c);
    }
  }
  if (options_.info.timestamping().empty()) options_.info.set_timestamping(TimestampingFact());
  if (options_.info.clock_id().empty()) options_.info.set_clock_id(ClockId());
  if (options_.info.addresses().empty()) options_.info.add_addresses(options_.lab_address);
  options_.info.set_max_tasks(options_.max_tasks);
}

Agent::~Agent() { Stop(); }

absl::Status Agent::Run() {
  auto credentials = rpc::ChannelCredentialsFor(options_.controller, options_.transport);
  if (!credentials.ok()) return credentials.status();
  grpc::ChannelArguments args;
  // Notice a controller that vanished without closing the connection within seconds.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 2000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  auto channel = grpc::CreateCustomChannel(options_.controller, *credentials, args);
  int64_t backoff_ns = 200'000'000;
  while (!stop_) {
    RunSession(channel);
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::nanoseconds(backoff_ns), [&] { return stop_.load(); })) {
      break;
    }
    backoff_ns = std::min(backoff_ns * 2, options_.max_backoff_ns);
  }
  return absl::OkStatus();
}

void Agent::Stop() {
  stop_ = true;
  std::lock_guard<std::mutex> lock(mu_);
  if (active_context_ != nullptr) active_context_->TryCancel();
  cv_.notify_all();
}

void Agent::RunSession(const std::shared_ptr<grpc::Channel>& channel) {
  auto stub = lab::v1::AgentService::NewStub(channel);
  grpc::ClientContext context;  // long-lived stream: no deadline; keepalive detects a dead peer
  context.set_wait_for_ready(true);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return;
    active_context_ = &context;
  }
  std::unique_ptr<Stream> stream = stub->Connect(&context);
  AgentMessage hello;
  *hello.mutable_hello() = options_.info;
  ControllerMessage welcome;
  if (stream->Write(hello) && stream->Read(&welcome) && welcome.has_welcome()) {
    logger_->info("connected to the controller at {} as {}", options_.controller,
                  welcome.welcome().agent_id());
    {
      Session session(*this, stream.get());
      ControllerMessage message;
      while (stream->Read(&message)) session.Handle(message);
    }  // stops every task of the session
    logger_->warn("lost the controller at {}; tasks stopped, reconnecting", options_.controller);
  }
  stream->WritesDone();
  const grpc::Status status = stream->Finish();
  if (!status.ok() && !stop_) {
    logger_->warn("controller at {}: {}", options_.controller, status.error_message());
  }
  std::lock_guard<std::mutex> lock(mu_);
  active_context_ = nullptr;
}

}  // namespace lab::agent
