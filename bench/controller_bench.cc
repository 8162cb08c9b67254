// Control-plane figures, in process (no network): a real controller (registry, hub, runner,
// SQLite store in a temp file, both gRPC services on an in-process channel) and N light
// agents, each a real AgentService.Connect stream that answers tasks at once.
//
//   1. start: RunExperiment with one client per agent over N agents; time from the call
//      until every agent has received its StartTask.
//   2. ingest: every client task streams `batches` SampleBatches of `batch` samples before
//      completing, all agents at once; samples stored per second of wall time.
//
//   usage: controller_bench [--agents 100] [--batches 20] [--batch 512]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "common/clock.h"
#include "common/logging.h"
#include "controller/service/services.h"
#include "grpcpp/server_builder.h"

namespace {

using Clock = std::chrono::steady_clock;
using lab::v1::AgentMessage;
using lab::v1::ControllerMessage;

struct LightAgent {
  std::atomic<int64_t> first_start_ns{0};
  std::thread thread;
};

// Runs one light agent until its stream ends.
void RunAgent(lab::v1::AgentService::Stub& stub, int index, int batches, int batch,
              LightAgent& agent, std::atomic<int>& connected) {
  grpc::ClientContext context;
  auto stream = stub.Connect(&context);
  AgentMessage hello;
  hello.mutable_hello()->set_name("bench-" + std::to_string(index));
  hello.mutable_hello()->set_clock_id("bench");
  stream->Write(hello);
  ControllerMessage message;
  if (!stream->Read(&message)) return;
  ++connected;
  while (stream->Read(&message)) {
    if (!message.has_start_task()) continue;
    const auto& task = message.start_task();
    int64_t expected = 0;
    agent.first_start_ns.compare_exchange_strong(
        expected,
        std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
            .count());
    AgentMessage update;
    auto* u = update.mutable_task_update();
    u->set_task_id(task.task_id());
    u->set_experiment_id(task.experiment_id());
    if (task.has_time_server()) {
      u->set_state(lab::v1::TASK_STATE_RUNNING);
      u->set_detail("127.0.0.1:9");
      stream->Write(update);
      continue;
    }
    for (int b = 0; b < batches; ++b) {
      AgentMessage samples;
      auto* s = samples.mutable_samples();
      s->set_task_id(task.task_id());
      s->set_experiment_id(task.experiment_id());
      for (int i = 0; i < batch; ++i) {
        auto* x = s->add_samples();
        x->set_seq(static_cast<uint64_t>(b * batch + i + 1));
        x->set_rtt_ns(20'000);
        x->set_error_ns(100);
      }
      stream->Write(samples);
    }
    u->set_state(lab::v1::TASK_STATE_COMPLETE);
    u->set_summary_json(R"({"scheme":"raw","sent":1})");
    stream->Write(update);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"controller benchmark (in process)"};
  int agents = 100, batches = 20, batch = 512;
  app.add_option("--agents", agents)->capture_default_str();
  app.add_option("--batches", batches)->capture_default_str();
  app.add_option("--batch", batch)->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  const auto db = std::filesystem::temp_directory_path() /
                  ("controller-bench-" + std::to_string(getpid()) + ".db");
  auto store = *lab::controller::ResultsStore::Open(db.string());
  const lab::Clock& clock = lab::RealtimeClock::Get();
  lab::controller::AgentRegistry registry({.max_agents = 10'000}, clock);
  lab::controller::AgentHub hub(registry, lab::NullLogger());
  lab::controller::ExperimentRunner runner({}, hub, registry, *store, clock, lab::NullLogger());
  hub.SetListener(&runner);
  lab::controller::AgentServiceImpl agent_service(hub);
  lab::controller::LabControllerImpl lab_service(registry, runner, *store);
  grpc::ServerBuilder builder;
  builder.RegisterService(&agent_service);
  builder.RegisterService(&lab_service);
  auto server = builder.BuildAndStart();
  auto channel = server->InProcessChannel(grpc::ChannelArguments());
  auto agent_stub = lab::v1::AgentService::NewStub(channel);
  auto lab_stub = lab::v1::LabController::NewStub(channel);

  std::vector<LightAgent> light(static_cast<std::size_t>(agents));
  std::atomic<int> connected{0};
  for (int i = 0; i < agents; ++i) {
    light[i].thread = std::thread(RunAgent, std::ref(*agent_stub), i, batches, batch,
                                  std::ref(light[i]), std::ref(connected));
  }
  while (connected < agents) std::this_thread::yield();

  lab::v1::RunExperimentRequest request;
  auto* ts = request.mutable_spec()->mutable_timesync();
  for (int i = 0; i < agents; ++i) ts->add_clients()->set_scheme(lab::v1::SCHEME_RAW);
  ts->set_count(1);
  ts->set_interval_ns(1'000'000);
  grpc::ClientContext context;
  const auto start = Clock::now();
  const int64_t start_ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(start.time_since_epoch()).count();
  auto reader = lab_stub->RunExperiment(&context, request);
  lab::v1::ExperimentEvent event;
  std::string id;
  while (reader->Read(&event)) id = event.experiment_id();
  const grpc::Status status = reader->Finish();
  const double run_s = std::chrono::duration<double>(Clock::now() - start).count();
  int64_t last_start_ns = 0;
  for (const LightAgent& a : light)
    last_start_ns = std::max<int64_t>(last_start_ns, a.first_start_ns);
  int64_t stored = 0;
  for (int i = 0; i < agents; ++i) {
    char task[32];
    std::snprintf(task, sizeof(task), "client-%02d-raw", i + 1);
    if (auto s = store->GetSamples(id, task); s.ok()) stored += static_cast<int64_t>(s->size());
  }
  std::printf("agents: %d, run status: %s, state: %s\n", agents,
              status.ok() ? "ok" : status.error_message().c_str(), event.state().c_str());
  std::printf(
      "start: %.1f ms from RunExperiment to the last agent's StartTask (target < 1000 ms)\n",
      (last_start_ns - start_ns) / 1e6);
  std::printf("ingest: %lld samples stored in %.2f s = %.0f samples/s (target >= 200000)\n",
              static_cast<long long>(stored), run_s, stored / run_s);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(1));
  for (LightAgent& a : light) a.thread.join();
  store.reset();
  std::filesystem::remove(db);
  std::filesystem::remove(db.string() + "-wal");
  std::filesystem::remove(db.string() + "-shm");
  return status.ok() ? 0 : 1;
}
