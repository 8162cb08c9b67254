// The HTTP API with a real HTTP client against the real server (port 0 on loopback), over a
// real results store: every document, the live event stream, /metrics, static files, errors.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/clock.h"
#include "common/logging.h"
#include "controller/http/http_server.h"
#include "controller/http/metrics.h"
#include "controller/registry/agent_registry.h"
#include "controller/service/agent_hub.h"
#include "controller/service/experiment_runner.h"
#include "controller/service/services.h"
#include "controller/store/results_store.h"
#include "dataplane/timesync/histogram.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "nlohmann/json.hpp"

namespace lab::controller {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr int64_t kCreated = 1'700'000'000'000'000'000;

SampleRecord Sample(uint64_t seq, double error_ns) {
  SampleRecord s;
  s.seq = seq;
  s.send_host_ns = kCreated + 1'000'000 + static_cast<int64_t>(seq) * 2'000'000;
  s.recv_host_ns = s.send_host_ns + 50'000;
  s.rtt_ns = 50'000;
  if (seq % 10 != 9) s.measured_offset_ns = 25e6 + static_cast<double>(seq);
  s.true_offset_ns = 25e6;
  s.correction_ns = 25'000'000 - static_cast<int64_t>(seq);
  s.applied = true;
  s.error_ns = error_ns;
  return s;
}

std::vector<SampleRecord> Samples(uint64_t first, uint64_t count) {
  std::vector<SampleRecord> out;
  for (uint64_t seq = first; seq < first + count; ++seq) {
    out.push_back(Sample(seq, 1000.0 * std::sin(static_cast<double>(seq))));
  }
  return out;
}

class TempDir {
 public:
  TempDir() {
    path_ = std::filesystem::temp_directory_path() /
            absl::StrCat("lab-http-test-", getpid(), "-", counter_++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  static inline int counter_ = 0;
  std::filesystem::path path_;
};

class HttpApiTest : public ::testing::Test {
 protected:
  HttpApiTest() {
    store_ = *ResultsStore::Open((dir_.path() / "results.db").string());
    runner_ = std::make_unique<ExperimentRunner>(RunnerOptions{}, hub_, registry_, *store_, clock_,
                                                 NullLogger());
  }
  ~HttpApiTest() override {
    if (server_) server_->Stop();
  }

  void Start(DashboardOptions options = {}) {
    options.port = 0;
    options.poll_interval_ns = 20'000'000;  // a quick live stream for the tests
    server_ = std::make_unique<DashboardServer>(options, *store_, *runner_, registry_, metrics_,
                                                NullLogger());
    auto port = server_->Start();
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
    client_ = std::make_unique<httplib::Client>("127.0.0.1", port_);
  }

  // A finished run: a server task and two clients with samples and summaries.
  void StoreFinishedRun(const std::string& id, int64_t created_ns, uint64_t samples = 300) {
    ASSERT_TRUE(store_
                    ->CreateExperiment({id, "timesync",
                                        R"({"name":"nightly","timesync":{"count":")" +
                                            std::to_string(samples) + R"("}})",
                                        "running", created_ns, 0})
                    .ok());
    ASSERT_TRUE(store_->AddAgent({id, "agent-1", "127.0.0.2", R"({"clock_id":"c1"})"}).ok());
    ASSERT_TRUE(store_->AddAgent({id, "agent-2", "127.0.0.3", R"({"clock_id":"c1"})"}).ok());
    ASSERT_TRUE(store_->PutTask({id, "server", "agent-1", "server", "", "complete", ""}).ok());
    for (const char* scheme : {"kalman", "pid"}) {
      const std::string task = absl::StrCat("client-", scheme);
      ASSERT_TRUE(store_->PutTask({id, task, "agent-2", "client", scheme, "complete", ""}).ok());
      ASSERT_TRUE(store_->AppendSamples(id, task, Samples(0, samples)).ok());
      timesync::Histogram h(timesync::ErrorEdgesUs());
      for (const SampleRecord& s : Samples(0, samples)) h.Add(s.error_ns / 1000);
      const auto counts = h.bucket_counts();
      ASSERT_TRUE(store_
                      ->PutSummary({id, task,
                                    nlohmann::json{{"scheme", scheme},
                                                   {"sent", samples},
                                                   {"received", samples},
                                                   {"error_us", {{"abs_p99", 0.99}}}}
                                        .dump(),
                                    std::vector<double>(h.edges().begin(), h.edges().end()),
                                    std::vector<uint64_t>(counts.begin(), counts.end())})
                      .ok());
    }
    ASSERT_TRUE(store_->FinishExperiment(id, "completed", created_ns + 5).ok());
  }

  nlohmann::json GetJson(const std::string& path, int expected_status = 200) {
    auto res = client_->Get(path);
    EXPECT_TRUE(res) << path << ": " << httplib::to_string(res.error());
    if (!res) return nullptr;
    EXPECT_EQ(res->status, expected_status) << path << ": " << res->body;
    EXPECT_EQ(res->get_header_value("Content-Type"), "application/json; charset=utf-8") << path;
    auto j = nlohmann::json::parse(res->body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << path << ": " << res->body;
    return j;
  }

  TempDir dir_;
  SimulatedClock clock_{kCreated};
  AgentRegistry registry_{{}, clock_};
  AgentHub hub_{registry_, NullLogger()};
  std::unique_ptr<ResultsStore> store_;
  std::unique_ptr<ExperimentRunner> runner_;
  ControllerMetrics metrics_;
  std::unique_ptr<DashboardServer> server_;
  std::unique_ptr<httplib::Client> client_;
  int port_ = 0;
};

TEST_F(HttpApiTest, HealthAndEmptyListsAnswer) {
  Start();
  EXPECT_EQ(GetJson("/api/v1/health")["status"], "ok");
  EXPECT_EQ(GetJson("/api/v1/experiments")["experiments"], nlohmann::json::array());
  EXPECT_EQ(GetJson("/api/v1/agents")["agents"], nlohmann::json::array());
}

TEST_F(HttpApiTest, ExperimentsAreListedNewestFirstWithTheirSchemesAndLimited) {
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("old", kCreated));
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("new", kCreated + 1'000));
  Start();
  const auto list = GetJson("/api/v1/experiments")["experiments"];
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0]["experiment_id"], "new");
  EXPECT_EQ(list[1]["experiment_id"], "old");
  EXPECT_EQ(list[0]["state"], "completed");
  EXPECT_EQ(list[0]["name"], "nightly");
  EXPECT_EQ(list[0]["schemes"], (nlohmann::json{"kalman", "pid"}));
  EXPECT_EQ(GetJson("/api/v1/experiments?limit=1")["experiments"].size(), 1u);
  const auto bad = GetJson("/api/v1/experiments?limit=0", 400);
  EXPECT_EQ(bad["error"]["code"], 400);
  EXPECT_THAT(bad["error"]["message"].get<std::string>(), HasSubstr("limit must be"));
}

TEST_F(HttpApiTest, OneExperimentHasItsSpecAgentsTasksSummaryAndExactHistograms) {
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("exp-1", kCreated));
  Start();
  const auto j = GetJson("/api/v1/experiments/exp-1");
  EXPECT_EQ(j["experiment"]["experiment_id"], "exp-1");
  EXPECT_EQ(j["spec"]["timesync"]["count"], "300");
  ASSERT_EQ(j["agents"].size(), 2u);
  EXPECT_EQ(j["agents"][1]["address"], "127.0.0.3");
  EXPECT_EQ(j["agents"][1]["metadata"]["clock_id"], "c1");
  ASSERT_EQ(j["tasks"].size(), 3u);
  EXPECT_EQ(j["tasks"][1]["scheme"], "kalman");
  ASSERT_EQ(j["summary"]["clients"].size(), 2u);
  EXPECT_EQ(j["summary"]["clients"][0]["truth_known"], true);  // same clock as the server
  EXPECT_EQ(j["summary"]["clients"][0]["agent_address"], "127.0.0.3");
  EXPECT_EQ(j["summary"]["clients"][0]["error_us"]["abs_p99"], 0.99);
  const auto stored = store_->GetSummaries("exp-1")->at(0);
  const auto& h = j["histograms"]["client-kalman"];
  EXPECT_EQ(h["edges_us"].get<std::vector<double>>(), stored.edges_us);
  EXPECT_EQ(h["counts"].get<std::vector<uint64_t>>(), stored.bucket_counts);
  EXPECT_EQ(h["cumulative"].back(), 300);
  EXPECT_EQ(j["error_edges_us"].size(), timesync::ErrorEdgesUs().size());
}

// A traffic run's intervals, per client, as columns the throughput and latency charts draw.
TEST_F(HttpApiTest, TrafficIntervalsArePerClientColumnsWithRatesAndAbsentLatenciesNull) {
  ASSERT_TRUE(store_->CreateExperiment({"tcp-1", "tcp", "{}", "running", kCreated, 0}).ok());
  ASSERT_TRUE(store_->PutTask({"tcp-1", "server", "agent-1", "server", "", "running", ""}).ok());
  ASSERT_TRUE(
      store_->PutTask({"tcp-1", "client-01-tcp-rr", "agent-2", "client", "tcp-rr", "running", ""})
          .ok());
  IntervalRecord a;
  a.seq = 0;
  a.start_s = 0;
  a.end_s = 0.5;
  a.bytes_sent = 1000;
  a.bytes_received = 1000;
  a.messages_received = 50;
  a.latency_p50_us = 20;
  a.latency_p99_us = 90;
  IntervalRecord b = a;  // nothing completed in the second interval
  b.seq = 1;
  b.start_s = 0.5;
  b.end_s = 1.0;
  b.messages_received = 0;
  b.latency_p50_us.reset();
  b.latency_p99_us.reset();
  b.errors = 2;
  ASSERT_TRUE(store_->AppendIntervals("tcp-1", "client-01-tcp-rr", {a, b}).ok());
  Start();
  const auto j = GetJson("/api/v1/experiments/tcp-1/intervals");
  EXPECT_EQ(j["kind"], "tcp");
  EXPECT_EQ(j["state"], "running");
  ASSERT_EQ(j["tasks"].size(), 1u);  // clients only
  const auto& t = j["tasks"][0];
  EXPECT_EQ(t["scheme"], "tcp-rr");
  EXPECT_EQ(t["agent"], "agent-2");
  const auto& c = t["intervals"];
  EXPECT_EQ(c["seq"], nlohmann::json({0, 1}));
  EXPECT_DOUBLE_EQ(c["bits_per_second"][0].get<double>(), 1000 * 8 / 0.5);
  EXPECT_DOUBLE_EQ(c["messages_per_second"][0].get<double>(), 100);
  EXPECT_EQ(c["latency_p99_us"][0], 90.0);
  EXPECT_TRUE(c["latency_p50_us"][1].is_null());
  EXPECT_EQ(c["errors"][1], 2);
}

TEST_F(HttpApiTest, UnknownExperimentsAndPathsAre404JsonThatSaysWhereToLook) {
  Start();
  for (const char* path : {"/api/v1/experiments/nope", "/api/v1/experiments/nope/samples",
                           "/api/v1/experiments/nope/export.csv", "/api/v1/experiments/nope/events",
                           "/api/v1/experiments/nope/intervals"}) {
    const auto j = GetJson(path, 404);
    EXPECT_EQ(j["error"]["status"], "NOT_FOUND") << path;
    EXPECT_THAT(j["error"]["message"].get<std::string>(), HasSubstr("no experiment 'nope'"));
  }
  const auto j = GetJson("/api/v2/whatever", 404);
  EXPECT_THAT(j["error"]["message"].get<std::string>(), HasSubstr("/api/v1/"));
}

TEST_F(HttpApiTest, PathsThatAreNotUtf8AreAnsweredAndTheServerLivesOn) {
  Start();
  // %FF decodes to a byte that is not UTF-8: it must not break the JSON (or the process).
  for (const char* path : {"/%FF", "/api/v1/experiments/%FF", "/api/v1/experiments/%FF/samples",
                           "/api/v1/experiments/%C3%28/events"}) {
    const auto j = GetJson(path, 404);
    EXPECT_EQ(j["error"]["code"], 404) << path;
  }
  EXPECT_EQ(GetJson("/api/v1/experiments?limit=%FF", 400)["error"]["code"], 400);
  EXPECT_EQ(GetJson("/api/v1/health")["status"], "ok");
}

TEST_F(HttpApiTest, WritesAreRefusedWith405) {
  Start();
  auto res = client_->Post("/api/v1/experiments", "{}", "application/json");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
  EXPECT_EQ(res->get_header_value("Allow"), "GET, HEAD");
  EXPECT_THAT(res->body, HasSubstr("labctl run"));
  res = client_->Delete("/api/v1/experiments/exp-1");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 405);
}

TEST_F(HttpApiTest, SamplesInFullAreTheStoredValuesInMicrosecondsFromTheRunsStart) {
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("exp-1", kCreated));
  Start();
  const auto j = GetJson("/api/v1/experiments/exp-1/samples?max_points=0");
  EXPECT_EQ(j["downsampled"], false);
  ASSERT_EQ(j["tasks"].size(), 2u);  // clients only
  const auto& t = j["tasks"][0];
  EXPECT_EQ(t["task_id"], "client-kalman");
  EXPECT_EQ(t["stored"], 300);
  EXPECT_EQ(t["points"], 300);
  const auto expected = Samples(0, 300);
  for (std::size_t i : {0u, 9u, 150u, 299u}) {
    SCOPED_TRACE(i);
    EXPECT_EQ(t["seq"][i], expected[i].seq);
    EXPECT_NEAR(t["t_s"][i].get<double>(),
                static_cast<double>(expected[i].send_host_ns - kCreated) * 1e-9, 1e-6);
    EXPECT_NEAR(t["error_us"][i].get<double>(), expected[i].error_ns / 1000, 1e-3);
    EXPECT_NEAR(t["correction_us"][i].get<double>(),
                static_cast<double>(expected[i].correction_ns) / 1000, 1e-3);
    EXPECT_NEAR(t["rtt_us"][i].get<double>(), 50, 1e-9);
    if (expected[i].measured_offset_ns) {
      EXPECT_NEAR(t["offset_us"][i].get<double>(), *expected[i].measured_offset_ns / 1000, 1e-3);
    } else {
      EXPECT_TRUE(t["offset_us"][i].is_null());
    }
  }
  // One task by name.
  const auto one = GetJson("/api/v1/experiments/exp-1/samples?task=client-pid");
  ASSERT_EQ(one["tasks"].size(), 1u);
  EXPECT_EQ(one["tasks"][0]["scheme"], "pid");
}

TEST_F(HttpApiTest, LargeRunsAreDownsampledKeepingTheSpikes) {
  const std::string id = "big";
  ASSERT_TRUE(store_->CreateExperiment({id, "timesync", "{}", "running", kCreated, 0}).ok());
  ASSERT_TRUE(store_->PutTask({id, "client-raw", "agent-2", "client", "raw", "running", ""}).ok());
  std::vector<SampleRecord> samples = Samples(0, 20'000);
  samples[12'345].error_ns = 9e6;              // a 9 ms spike
  samples[4'321].correction_ns = -77'000'000;  // a correction outlier
  ASSERT_TRUE(store_->AppendSamples(id, "client-raw", samples).ok());
  Start();
  const auto j = GetJson("/api/v1/experiments/big/samples?max_points=500");
  EXPECT_EQ(j["downsampled"], true);
  const auto& t = j["tasks"][0];
  EXPECT_EQ(t["stored"], 20'000);
  EXPECT_LE(t["points"].get<int>(), 500);
  EXPECT_GE(t["points"].get<int>(), 497);
  const auto seqs = t["seq"].get<std::vector<uint64_t>>();
  EXPECT_NE(std::find(seqs.begin(), seqs.end(), 12'345u), seqs.end());
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));
  EXPECT_EQ(seqs.front(), 0u);
  EXPECT_EQ(seqs.back(), 19'999u);
  // keep=correction keeps that column's extremes instead.
  const auto c = GetJson("/api/v1/experiments/big/samples?max_points=500&keep=correction");
  const auto cseqs = c["tasks"][0]["seq"].get<std::vector<uint64_t>>();
  EXPECT_NE(std::find(cseqs.begin(), cseqs.end(), 4'321u), cseqs.end());
  // The default is bounded too.
  EXPECT_LE(GetJson("/api/v1/experiments/big/samples")["tasks"][0]["points"].get<int>(), 5000);
}

TEST_F(HttpApiTest, SamplesOfARunningRunAreNeverStaleAndAFinishedRunsAnswerIsStable) {
  const std::string id = "run";
  ASSERT_TRUE(store_->CreateExperiment({id, "timesync", "{}", "running", kCreated, 0}).ok());
  ASSERT_TRUE(store_->PutTask({id, "client-raw", "agent-2", "client", "raw", "running", ""}).ok());
  ASSERT_TRUE(store_->AppendSamples(id, "client-raw", Samples(0, 10)).ok());
  Start();
  const std::string path = "/api/v1/experiments/run/samples";
  EXPECT_EQ(GetJson(path)["tasks"][0]["points"], 10);
  ASSERT_TRUE(store_->AppendSamples(id, "client-raw", Samples(10, 5)).ok());
  EXPECT_EQ(GetJson(path)["tasks"][0]["points"], 15);
  ASSERT_TRUE(store_->FinishExperiment(id, "completed", kCreated + 1).ok());
  const auto first = GetJson(path);
  EXPECT_EQ(first["tasks"][0]["points"], 15);
  EXPECT_EQ(GetJson(path), first);  // the second answer (remembered) is the same
  EXPECT_NE(GetJson(path + "?keep=offset"), nlohmann::json());  // another key answers too
}

TEST_F(HttpApiTest, BadSampleQueriesAre400WithTheAllowedValues) {
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("exp-1", kCreated));
  Start();
  EXPECT_THAT(GetJson("/api/v1/experiments/exp-1/samples?max_points=5", 400)["error"]["message"]
                  .get<std::string>(),
              HasSubstr("max_points must be 0 or an integer in [100, 1000000]"));
  EXPECT_THAT(GetJson("/api/v1/experiments/exp-1/samples?keep=rtt", 400)["error"]["message"]
                  .get<std::string>(),
              HasSubstr("keep must be error, offset or correction"));
  EXPECT_THAT(GetJson("/api/v1/experiments/exp-1/samples?task=server", 400)["error"]["message"]
                  .get<std::string>(),
              HasSubstr("its clients: client-kalman, client-pid"));
}

TEST_F(HttpApiTest, CsvExportIsTheSameBytesAsLabctlsExport) {
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("exp-1", kCreated));
  Start();
  auto res = client_->Get("/api/v1/experiments/exp-1/export.csv");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/csv"));
  EXPECT_THAT(res->get_header_value("Content-Disposition"), HasSubstr("exp-1.csv"));
  EXPECT_EQ(res->body, *ExportExperiment(*store_, *runner_, "exp-1", "csv"));
  EXPECT_EQ(std::count(res->body.begin(), res->body.end(), '\n'), 1 + 2 * 300);
}

// Reads an event stream on a thread of its own; the test waits on what has arrived.
class EventReader {
 public:
  EventReader(int port, std::string path, httplib::Headers headers = {})
      : client_("127.0.0.1", port) {
    client_.set_read_timeout(10, 0);
    thread_ = std::thread([this, path, headers] {
      auto res = client_.Get(path, headers, [this](const char* data, std::size_t n) {
        std::lock_guard<std::mutex> lock(mu_);
        text_.append(data, n);
        cv_.notify_all();
        return !cancel_;
      });
      std::lock_guard<std::mutex> lock(mu_);
      closed_ = true;
      status_ = res ? res->status : -1;
      cv_.notify_all();
    });
  }
  ~EventReader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancel_ = true;
    }
    client_.stop();
    thread_.join();
  }
  // Waits (10 s at most) until `pred(text)` holds; returns whether it did.
  bool WaitFor(const std::function<bool(const std::string&)>& pred) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return pred(text_); });
  }
  bool WaitClosed() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return closed_; });
  }
  std::string text() {
    std::lock_guard<std::mutex> lock(mu_);
    return text_;
  }

  // The events so far as (name, data, id).
  struct Event {
    std::string name;
    nlohmann::json data;
    std::string id;
  };
  std::vector<Event> Events() { return Parse(text()); }
  // The events in a stream's text. (WaitFor's predicates get the text: they run under the
  // reader's lock, so they must not call Events() or text().)
  static std::vector<Event> Parse(const std::string& text) {
    std::vector<Event> out;
    for (absl::string_view block : absl::StrSplit(text, "\n\n", absl::SkipEmpty())) {
      Event e;
      for (absl::string_view line : absl::StrSplit(block, '\n')) {
        if (absl::ConsumePrefix(&line, "event: ")) e.name = std::string(line);
        if (absl::ConsumePrefix(&line, "data: ")) e.data = nlohmann::json::parse(line);
        if (absl::ConsumePrefix(&line, "id: ")) e.id = std::string(line);
      }
      if (!e.name.empty()) out.push_back(std::move(e));
    }
    return out;
  }

 private:
  httplib::Client client_;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  bool closed_ = false, cancel_ = false;
  int status_ = 0;
};

// Every seq the `samples` events carried for `task`, in order.
std::vector<uint64_t> SeqsOf(const std::vector<EventReader::Event>& events,
                             const std::string& task) {
  std::vector<uint64_t> out;
  for (const auto& e : events) {
    if (e.name != "samples") continue;
    for (const auto& t : e.data["tasks"]) {
      if (t["task_id"] != task) continue;
      for (const auto& s : t["seq"]) out.push_back(s.get<uint64_t>());
    }
  }
  return out;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t end) {
  std::vector<uint64_t> out;
  for (uint64_t i = first; i < end; ++i) out.push_back(i);
  return out;
}

TEST_F(HttpApiTest, TheLiveStreamSendsEachNewSampleOnceThenProgressAndEnd) {
  const std::string id = "live";
  ASSERT_TRUE(store_
                  ->CreateExperiment(
                      {id, "timesync", R"({"timesync":{"count":"90"}})", "running", kCreated, 0})
                  .ok());
  ASSERT_TRUE(store_->PutTask({id, "server", "agent-1", "server", "", "running", ""}).ok());
  for (const char* task : {"client-01-raw", "client-02-pid"}) {
    ASSERT_TRUE(store_->PutTask({id, task, "agent-2", "client", "raw", "running", ""}).ok());
  }
  ASSERT_TRUE(store_->AppendSamples(id, "client-01-raw", Samples(0, 30)).ok());
  Start();
  EventReader reader(port_, "/api/v1/experiments/live/events");
  // What was stored before the reader came, but the newest 16 seqs, which wait for the next
  // poll in case a reordered reply is still on its way.
  ASSERT_TRUE(reader.WaitFor([](const std::string& t) {
    return t.find("event: progress") != t.npos;
  })) << reader.text();
  EXPECT_EQ(SeqsOf(reader.Events(), "client-01-raw"), Range(0, 14));
  EXPECT_EQ(reader.Events().front().data["tasks"][0]["downsampled"], false);
  // Then what is new, batch by batch, as it is stored.
  for (uint64_t first : {30u, 60u}) {
    ASSERT_TRUE(store_->AppendSamples(id, "client-01-raw", Samples(first, 30)).ok());
    ASSERT_TRUE(store_->AppendSamples(id, "client-02-pid", Samples(first, 30)).ok());
    ASSERT_TRUE(reader.WaitFor([&](const std::string& t) {
      return SeqsOf(EventReader::Parse(t), "client-02-pid").size() == first - 16;
    })) << reader.text();
  }
  EXPECT_EQ(SeqsOf(reader.Events(), "client-01-raw"), Range(0, 74));
  EXPECT_EQ(SeqsOf(reader.Events(), "client-02-pid"), Range(30, 74));
  // The end: the rest of the samples, the last tasks' states, `end`, then the server closes.
  ASSERT_TRUE(store_->SetTaskState(id, "client-01-raw", "complete", "").ok());
  ASSERT_TRUE(store_->SetTaskState(id, "client-02-pid", "lost", "agent-2 went away").ok());
  ASSERT_TRUE(store_->FinishExperiment(id, "partial", kCreated + 10).ok());
  ASSERT_TRUE(reader.WaitClosed()) << reader.text();
  EXPECT_EQ(SeqsOf(reader.Events(), "client-01-raw"), Range(0, 90));
  EXPECT_EQ(SeqsOf(reader.Events(), "client-02-pid"), Range(30, 90));
  const auto events = reader.Events();
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events.back().name, "end");
  EXPECT_EQ(events.back().data["state"], "partial");
  const auto& progress = events[events.size() - 2];
  EXPECT_EQ(progress.name, "progress");
  // Progress counts the samples sent against the probes asked for.
  EXPECT_EQ(progress.data["tasks"][1]["progress"], 90);
  EXPECT_EQ(progress.data["tasks"][1]["total"], 90);
  EXPECT_EQ(progress.data["tasks"][2]["progress"], 60);
  EXPECT_EQ(progress.data["tasks"][2]["state"], "lost");
  EXPECT_EQ(progress.data["tasks"][2]["detail"], "agent-2 went away");
}

TEST_F(HttpApiTest, AReplyThatArrivesOutOfOrderIsStillStreamedInOrder) {
  const std::string id = "live";
  ASSERT_TRUE(store_->CreateExperiment({id, "timesync", "{}", "running", kCreated, 0}).ok());
  ASSERT_TRUE(
      store_->PutTask({id, "client-01-raw", "agent-2", "client", "raw", "running", ""}).ok());
  // seq 30 is late: 31..40 are stored before it.
  ASSERT_TRUE(store_->AppendSamples(id, "client-01-raw", Samples(0, 30)).ok());
  ASSERT_TRUE(store_->AppendSamples(id, "client-01-raw", Samples(31, 10)).ok());
  Start();
  EventReader reader(port_, "/api/v1/experiments/live/events");
  // The newest 16 seqs wait: 0..24 go out.
  ASSERT_TRUE(reader.WaitFor([](const std::string& t) {
    return SeqsOf(EventReader::Parse(t), "client-01-raw").size() == 25;
  })) << reader.text();
  ASSERT_TRUE(store_->AppendSamples(id, "client-01-raw", Samples(30, 1)).ok());
  ASSERT_TRUE(store_->AppendSamples(id, "client-01-raw", Samples(41, 20)).ok());
  ASSERT_TRUE(reader.WaitFor([](const std::string& t) {
    return SeqsOf(EventReader::Parse(t), "client-01-raw").size() >= 45;
  })) << reader.text();
  ASSERT_TRUE(store_->FinishExperiment(id, "completed", kCreated + 1).ok());
  ASSERT_TRUE(reader.WaitClosed());
  EXPECT_EQ(SeqsOf(reader.Events(), "client-01-raw"), Range(0, 61));  // in order, each once
}

TEST_F(HttpApiTest, AReaderThatReconnectsWithLastEventIdGetsOnlyWhatItMissed) {
  const std::string id = "live";
  ASSERT_TRUE(store_->CreateExperiment({id, "timesync", "{}", "running", kCreated, 0}).ok());
  ASSERT_TRUE(
      store_->PutTask({id, "client-01-raw", "agent-2", "client", "raw", "running", ""}).ok());
  ASSERT_TRUE(store_->AppendSamples(id, "client-01-raw", Samples(0, 40)).ok());
  Start();
  std::string last_id;
  {
    EventReader first(port_, "/api/v1/experiments/live/events");
    ASSERT_TRUE(
        first.WaitFor([](const std::string& t) { return t.find("event: samples") != t.npos; }));
    last_id = first.Events().front().id;
  }
  EXPECT_EQ(last_id, "client-01-raw:23:24");  // the newest 16 wait while the run goes on
  ASSERT_TRUE(store_->AppendSamples(id, "client-01-raw", Samples(40, 10)).ok());
  ASSERT_TRUE(store_->FinishExperiment(id, "completed", kCreated + 10).ok());
  EventReader second(port_, "/api/v1/experiments/live/events", {{"Last-Event-ID", last_id}});
  ASSERT_TRUE(second.WaitClosed());
  EXPECT_EQ(SeqsOf(second.Events(), "client-01-raw"), Range(24, 50));
  EXPECT_EQ(second.Events().back().name, "end");
}

TEST_F(HttpApiTest, AFinishedRunStreamsItsSamplesDownsampledThenEndsAtOnce) {
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("exp-1", kCreated, 12'000));
  DashboardOptions options;
  options.default_max_points = 1000;
  Start(options);
  EventReader reader(port_, "/api/v1/experiments/exp-1/events");
  ASSERT_TRUE(reader.WaitClosed()) << reader.text();
  const auto events = reader.Events();
  ASSERT_EQ(events.size(), 3u) << reader.text();
  EXPECT_EQ(events[0].name, "samples");
  EXPECT_LE(SeqsOf(events, "client-kalman").size(), 1000u);
  EXPECT_EQ(events[0].data["tasks"][0]["downsampled"], true);
  EXPECT_EQ(events[1].data["tasks"][1]["progress"], 12'000);  // counts what is stored
  EXPECT_EQ(events[2].name, "end");
  EXPECT_EQ(events[2].data["state"], "completed");
}

TEST_F(HttpApiTest, StopEndsOpenStreamsPromptly) {
  ASSERT_TRUE(store_->CreateExperiment({"live", "timesync", "{}", "running", kCreated, 0}).ok());
  Start();
  EventReader reader(port_, "/api/v1/experiments/live/events");
  ASSERT_TRUE(
      reader.WaitFor([](const std::string& t) { return t.find("event: progress") != t.npos; }));
  const auto start = std::chrono::steady_clock::now();
  server_->Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_TRUE(reader.WaitClosed());
}

TEST_F(HttpApiTest, MetricsCountAgentsExperimentsSamplesAndPerSchemeErrorBuckets) {
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("exp-1", kCreated));
  ASSERT_TRUE(store_->CreateExperiment({"exp-2", "timesync", "{}", "running", kCreated, 0}).ok());
  // What the runner reports as it stores samples: errors of 0.05, 3 and -700 us for kalman.
  metrics_.OnSamplesStored(
      "kalman", std::vector<SampleRecord>{Sample(0, 50), Sample(1, 3000), Sample(2, -700'000)});
  metrics_.OnSamplesStored("pid", std::vector<SampleRecord>{Sample(0, 10)});
  Start();
  auto res = client_->Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  const std::string& m = res->body;
  EXPECT_THAT(m, HasSubstr("lab_agents_up 0\n"));
  EXPECT_THAT(m, HasSubstr("lab_experiments{state=\"completed\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("lab_experiments{state=\"running\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("lab_experiments{state=\"partial\"} 0\n"));
  EXPECT_THAT(m, HasSubstr("lab_samples_ingested_total 4\n"));
  // Cumulative buckets: -700 is <= -500; 0.05 <= 0.1; 3 <= 5.
  EXPECT_THAT(m, HasSubstr("lab_timesync_error_us_bucket{scheme=\"kalman\",le=\"-1000\"} 0\n"));
  EXPECT_THAT(m, HasSubstr("lab_timesync_error_us_bucket{scheme=\"kalman\",le=\"-500\"} 1\n"));
  EXPECT_THAT(m, HasSubstr("lab_timesync_error_us_bucket{scheme=\"kalman\",le=\"0.1\"} 2\n"));
  EXPECT_THAT(m, HasSubstr("lab_timesync_error_us_bucket{scheme=\"kalman\",le=\"2\"} 2\n"));
  EXPECT_THAT(m, HasSubstr("lab_timesync_error_us_bucket{scheme=\"kalman\",le=\"5\"} 3\n"));
  EXPECT_THAT(m, HasSubstr("lab_timesync_error_us_bucket{scheme=\"kalman\",le=\"+Inf\"} 3\n"));
  EXPECT_THAT(m, HasSubstr("lab_timesync_error_us_count{scheme=\"kalman\"} 3\n"));
  EXPECT_THAT(m, HasSubstr("lab_timesync_error_us_count{scheme=\"pid\"} 1\n"));
}

TEST_F(HttpApiTest, TheDashboardsFilesAndTheChartLibraryAreServedFromTheWebRoot) {
  const std::filesystem::path web = dir_.path() / "web";
  std::filesystem::create_directories(web / "node_modules" / "uplot" / "dist");
  std::ofstream(web / "index.html") << "<!doctype html><html>dashboard</html>";
  std::ofstream(web / "app.js") << "export const x = 1;";
  std::ofstream(web / "node_modules" / "uplot" / "dist" / "uPlot.esm.js") << "export default 1;";
  DashboardOptions options;
  options.web_root = web.string();
  Start(options);
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, HasSubstr("dashboard"));
  EXPECT_THAT(page->get_header_value("Content-Type"), HasSubstr("text/html"));
  auto script = client_->Get("/app.js");
  ASSERT_TRUE(script);
  EXPECT_THAT(script->get_header_value("Content-Type"), HasSubstr("javascript"));
  auto vendor = client_->Get("/vendor/uplot/uPlot.esm.js");
  ASSERT_TRUE(vendor);
  EXPECT_EQ(vendor->status, 200);
  EXPECT_EQ(vendor->body, "export default 1;");
  // Nothing outside the web root: the database sits right beside it.
  for (const char* path :
       {"/../results.db", "/%2e%2e/results.db", "/vendor/uplot/../../../results.db"}) {
    auto outside = client_->Get(path);
    ASSERT_TRUE(outside) << path;
    EXPECT_GE(outside->status, 400) << path;
    EXPECT_THAT(outside->body, ::testing::Not(HasSubstr("SQLite"))) << path;
  }
}

TEST_F(HttpApiTest, NothingIsBrotliCompressedAndTheApiIsSentPlain) {
  // Brotli at httplib's quality takes seconds per megabyte: a browser asking for br must get
  // the files gzipped at most, and the JSON plain.
  ASSERT_NO_FATAL_FAILURE(StoreFinishedRun("exp-1", kCreated, 5000));
  const std::filesystem::path web = dir_.path() / "web";
  std::filesystem::create_directories(web);
  std::ofstream(web / "index.html")
      << "<!doctype html><html>" << std::string(20000, 'x') << "</html>";
  DashboardOptions options;
  options.web_root = web.string();
  Start(options);
  const httplib::Headers browser = {{"Accept-Encoding", "gzip, deflate, br, zstd"}};
  client_->set_decompress(false);
  auto api = client_->Get("/api/v1/experiments/exp-1/samples", browser);
  ASSERT_TRUE(api);
  EXPECT_EQ(api->status, 200);
  EXPECT_EQ(api->get_header_value("Content-Encoding"), "");
  EXPECT_EQ(api->body.front(), '{');
  auto page = client_->Get("/", browser);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->get_header_value("Content-Encoding"), "gzip");
  auto br_only = client_->Get("/", httplib::Headers{{"Accept-Encoding", "br"}});
  ASSERT_TRUE(br_only);
  EXPECT_EQ(br_only->get_header_value("Content-Encoding"), "");
}

TEST_F(HttpApiTest, WithoutTheDashboardsFilesTheRootSaysHowToGetThemAndTheApiStillWorks) {
  DashboardOptions options;
  options.web_root = (dir_.path() / "nowhere").string();
  Start(options);
  auto page = client_->Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 503);
  EXPECT_THAT(page->body, HasSubstr("--web-root"));
  EXPECT_EQ(GetJson("/api/v1/health")["status"], "ok");
}

TEST_F(HttpApiTest, ARequestNamingAnotherHostIsRefusedOnLoopback) {
  // DNS rebinding: a page from elsewhere reaching 127.0.0.1 still sends its own host name.
  Start();
  for (const char* host : {"evil.example", "127.evil.example", "10.0.0.1:8080"}) {
    auto res = client_->Get("/api/v1/experiments", httplib::Headers{{"Host", host}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, 403) << host;
    EXPECT_THAT(res->body, HasSubstr("127.0.0.1 or localhost")) << host;
  }
  for (const char* host : {"localhost:8080", "127.0.0.1", "127.0.0.5:80", "[::1]:8080"}) {
    auto res = client_->Get("/api/v1/health", httplib::Headers{{"Host", host}});
    ASSERT_TRUE(res) << host;
    EXPECT_EQ(res->status, 200) << host;
  }
}

TEST_F(HttpApiTest, LiveStreamsBeyondTheCapAre503SoPlainRequestsKeepAThread) {
  ASSERT_TRUE(store_->CreateExperiment({"live", "timesync", "{}", "running", kCreated, 0}).ok());
  DashboardOptions options;
  options.max_streams = 1;
  Start(options);
  {
    EventReader first(port_, "/api/v1/experiments/live/events");
    ASSERT_TRUE(
        first.WaitFor([](const std::string& t) { return t.find("event: progress") != t.npos; }));
    EXPECT_THAT(
        GetJson("/api/v1/experiments/live/events", 503)["error"]["message"].get<std::string>(),
        HasSubstr("too many live streams"));
    EXPECT_EQ(GetJson("/api/v1/health")["status"], "ok");
  }
  // The first reader went away: its slot is free again once the server notices (at its next
  // poll, when the write fails). Each retry is a whole request; the deadline bounds them.
  ASSERT_TRUE(store_->FinishExperiment("live", "completed", kCreated + 1).ok());
  bool reopened = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!reopened && std::chrono::steady_clock::now() < deadline) {
    auto res = client_->Get("/api/v1/experiments/live/events");
    reopened = res && res->status == 200;
  }
  EXPECT_TRUE(reopened);
}

TEST_F(HttpApiTest, ServingBeyondLoopbackNeedsInsecure) {
  DashboardOptions options;
  options.host = "0.0.0.0";
  DashboardServer server(options, *store_, *runner_, registry_, metrics_, NullLogger());
  const auto port = server.Start();
  EXPECT_EQ(port.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(port.status().message()), HasSubstr("--insecure"));
}

TEST_F(HttpApiTest, APortInUseIsUnavailableAndSaysWhichFlag) {
  Start();
  DashboardOptions options;
  options.port = port_;
  DashboardServer second(options, *store_, *runner_, registry_, metrics_, NullLogger());
  const auto port = second.Start();
  EXPECT_EQ(port.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(std::string(port.status().message()), HasSubstr("--http"));
}

}  // namespace
}  // namespace lab::controller
