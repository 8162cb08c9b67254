#include "controller/store/results_store.h"

#include <sqlite3.h>
#include <unistd.h>

#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"

namespace lab::controller {
namespace {

#define EXPECT_OK(expr)                    \
  do {                                     \
    const ::absl::Status s_ = (expr);      \
    EXPECT_TRUE(s_.ok()) << s_.ToString(); \
  } while (false)
#define ASSERT_OK(expr)                    \
  do {                                     \
    const ::absl::Status s_ = (expr);      \
    ASSERT_TRUE(s_.ok()) << s_.ToString(); \
  } while (false)

bool Contains(absl::string_view haystack, absl::string_view needle) {
  return haystack.find(needle) != absl::string_view::npos;
}

std::unique_ptr<ResultsStore> OpenOrDie(const std::string& path, const StoreOptions& options = {}) {
  auto store = ResultsStore::Open(path, options);
  EXPECT_TRUE(store.ok()) << store.status().ToString();
  return store.ok() ? *std::move(store) : nullptr;
}

ExperimentRecord Experiment(const std::string& id, int64_t created_ns,
                            const std::string& state = "running") {
  return {id, "timesync", R"({"clients":["raw","pid"],"count":500})", state, created_ns, 0};
}

TaskRecord Task(const std::string& experiment_id, const std::string& task_id,
                const std::string& state = "running") {
  return {experiment_id, task_id, "agent-1", "client", "raw", state, ""};
}

SampleRecord Sample(uint64_t seq) {
  SampleRecord s;
  s.seq = seq;
  s.send_host_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(seq) * 5'000'000;
  s.recv_host_ns = s.send_host_ns + 72'345;
  s.rtt_ns = 72'345.25;
  if (seq % 3 != 0) s.measured_offset_ns = -25'000'000.125 + static_cast<double>(seq);
  s.true_offset_ns = -25'000'000.0 + 0.1 * static_cast<double>(seq);
  s.correction_ns = -24'999'990 - static_cast<int64_t>(seq);
  s.applied = seq % 2 == 0;
  s.error_ns = 3.3e3 / static_cast<double>(seq + 1);
  return s;
}

std::vector<SampleRecord> Samples(uint64_t first, uint64_t count) {
  std::vector<SampleRecord> out;
  for (uint64_t seq = first; seq < first + count; ++seq) out.push_back(Sample(seq));
  return out;
}

// Everything the store holds about the experiments it lists, read through the public API.
struct Snapshot {
  std::vector<ExperimentRecord> experiments;
  std::vector<std::vector<AgentRecord>> agents;
  std::vector<std::vector<TaskRecord>> tasks;
  std::vector<std::vector<SampleRecord>> samples;  // per task, in ListTasks order
  std::vector<std::vector<SummaryRecord>> summaries;
  friend bool operator==(const Snapshot&, const Snapshot&) = default;
};

Snapshot Read(const ResultsStore& store) {
  Snapshot snap;
  snap.experiments = *store.ListExperiments(1000);
  for (const ExperimentRecord& e : snap.experiments) {
    snap.agents.push_back(*store.ListAgents(e.id));
    snap.tasks.push_back(*store.ListTasks(e.id));
    for (const TaskRecord& t : snap.tasks.back()) {
      snap.samples.push_back(*store.GetSamples(e.id, t.task_id));
    }
    snap.summaries.push_back(*store.GetSummaries(e.id));
  }
  return snap;
}

// Two experiments, one finished and one still running, with agents, tasks, samples and a
// summary whose histogram has awkward doubles.
void Populate(ResultsStore& store) {
  ASSERT_OK(store.CreateExperiment(Experiment("exp-1", 1'000)));
  ASSERT_OK(store.AddAgent({"exp-1", "agent-1", "127.0.0.2:7001", R"({"kernel_ts":true})"}));
  ASSERT_OK(store.AddAgent({"exp-1", "agent-0", "127.0.0.3:7001", ""}));
  ASSERT_OK(store.PutTask({"exp-1", "server", "agent-0", "server", "", "complete", ""}));
  ASSERT_OK(store.PutTask(Task("exp-1", "client-raw", "complete")));
  ASSERT_OK(store.AppendSamples("exp-1", "client-raw", Samples(1, 100)));
  ASSERT_OK(store.PutSummary({"exp-1",
                              "client-raw",
                              R"({"scheme":"raw","sent":100})",
                              {-0.1, 0, 0.1, 1.0 / 3, 50'000},
                              {0, 1, 2, 3, 4, std::numeric_limits<uint64_t>::max()}}));
  ASSERT_OK(store.PutSummary({"exp-1", "server", "{}", {}, {}}));
  ASSERT_OK(store.FinishExperiment("exp-1", "completed", 2'000));

  ASSERT_OK(store.CreateExperiment(Experiment("exp-2", 3'000)));
  ASSERT_OK(store.PutTask(Task("exp-2", "client-pid")));
  ASSERT_OK(store.AppendSamples("exp-2", "client-pid", Samples(0, 10)));
}

class ResultsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_ = OpenOrDie(":memory:"); }
  std::unique_ptr<ResultsStore> store_;
};

// A directory of its own under the system temp directory, removed at the end.
class ResultsStoreFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("lab-store-test-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    path_ = (dir_ / "results.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path dir_;
  std::string path_;
};

TEST_F(ResultsStoreTest, RoundTripsEveryRecordType) {
  const ExperimentRecord experiment = {"exp-1", "timesync", R"({"count":5})", "running", 42, 0};
  ASSERT_OK(store_->CreateExperiment(experiment));
  EXPECT_EQ(*store_->GetExperiment("exp-1"), experiment);

  const AgentRecord agent = {"exp-1", "agent-1", "127.0.0.2:7001", R"({"kernel_ts":true})"};
  ASSERT_OK(store_->AddAgent(agent));
  EXPECT_EQ(*store_->ListAgents("exp-1"), std::vector<AgentRecord>{agent});

  const TaskRecord server = {"exp-1", "server", "agent-1", "server", "", "pending", ""};
  const TaskRecord client = {"exp-1", "client-1", "agent-1", "client", "kalman", "running", "x"};
  ASSERT_OK(store_->PutTask(server));
  ASSERT_OK(store_->PutTask(client));
  EXPECT_EQ(*store_->ListTasks("exp-1"), (std::vector<TaskRecord>{server, client}));

  // Extremes of every numeric field, and both forms of the optional measured offset.
  SampleRecord extreme;
  extreme.seq = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  extreme.send_host_ns = std::numeric_limits<int64_t>::min();
  extreme.recv_host_ns = std::numeric_limits<int64_t>::max();
  extreme.rtt_ns = 1e-300;
  extreme.measured_offset_ns = -0.0;
  extreme.true_offset_ns = std::numeric_limits<double>::infinity();
  extreme.correction_ns = std::numeric_limits<int64_t>::min();
  extreme.applied = true;
  extreme.error_ns = -std::numeric_limits<double>::max();
  // 42 samples: the first 32 (with the extreme one) go in one multi-row INSERT, the rest one
  // by one.
  std::vector<SampleRecord> batch = Samples(0, 31);
  batch.push_back(extreme);
  for (const SampleRecord& s : Samples(31, 10)) batch.push_back(s);
  ASSERT_OK(store_->AppendSamples("exp-1", "client-1", batch));
  std::vector<SampleRecord> by_seq = Samples(0, 41);
  by_seq.push_back(extreme);
  EXPECT_EQ(*store_->GetSamples("exp-1", "client-1"), by_seq);

  const SummaryRecord summary = {"exp-1",
                                 "client-1",
                                 R"({"scheme":"kalman"})",
                                 {-0.5, -0.1, 0, 0.1, 1.0 / 3},
                                 {7, 0, 1, 2, 3, 18'446'744'073'709'551'615u}};
  ASSERT_OK(store_->PutSummary(summary));
  EXPECT_EQ(*store_->GetSummaries("exp-1"), std::vector<SummaryRecord>{summary});

  ASSERT_OK(store_->FinishExperiment("exp-1", "completed", 99));
  ExperimentRecord finished = experiment;
  finished.state = "completed";
  finished.finished_ns = 99;
  EXPECT_EQ(*store_->GetExperiment("exp-1"), finished);
}

TEST_F(ResultsStoreTest, ReadsOfAnExperimentWithNothingStoredAreEmpty) {
  EXPECT_TRUE(store_->ListAgents("nope")->empty());
  EXPECT_TRUE(store_->ListTasks("nope")->empty());
  EXPECT_TRUE(store_->GetSamples("nope", "task")->empty());
  EXPECT_TRUE(store_->GetSummaries("nope")->empty());
  EXPECT_TRUE(store_->ListExperiments(10)->empty());
}

TEST_F(ResultsStoreTest, ListsExperimentsNewestFirstUpToTheLimit) {
  ASSERT_OK(store_->CreateExperiment(Experiment("b", 200)));
  ASSERT_OK(store_->CreateExperiment(Experiment("a", 100)));
  ASSERT_OK(store_->CreateExperiment(Experiment("d", 400)));
  ASSERT_OK(store_->CreateExperiment(Experiment("c", 300)));
  ASSERT_OK(store_->CreateExperiment(Experiment("c-twin", 300)));  // same time: later first

  auto ids = [](const std::vector<ExperimentRecord>& experiments) {
    std::vector<std::string> out;
    for (const auto& e : experiments) out.push_back(e.id);
    return out;
  };
  EXPECT_EQ(ids(*store_->ListExperiments(10)),
            (std::vector<std::string>{"d", "c-twin", "c", "b", "a"}));
  EXPECT_EQ(ids(*store_->ListExperiments(2)), (std::vector<std::string>{"d", "c-twin"}));
  EXPECT_EQ(store_->ListExperiments(0).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ResultsStoreTest, GetExperimentOfAnUnknownIdIsNotFoundAndNamesTheId) {
  const auto missing = store_->GetExperiment("exp-404");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(Contains(missing.status().message(), "\"exp-404\"")) << missing.status();
  EXPECT_TRUE(Contains(missing.status().message(), ":memory:")) << missing.status();
}

TEST_F(ResultsStoreTest, CreatingAnExperimentTwiceIsAlreadyExistsAndKeepsTheFirst) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  const absl::Status again = store_->CreateExperiment(Experiment("exp-1", 2, "failed"));
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_TRUE(Contains(again.message(), "\"exp-1\"")) << again;
  EXPECT_EQ(store_->GetExperiment("exp-1")->created_ns, 1);
}

TEST_F(ResultsStoreTest, AddingAnAgentTwiceToAnExperimentIsAlreadyExists) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->AddAgent({"exp-1", "agent-1", "a:1", "{}"}));
  const absl::Status again = store_->AddAgent({"exp-1", "agent-1", "b:2", "{}"});
  EXPECT_EQ(again.code(), absl::StatusCode::kAlreadyExists) << again;
  EXPECT_TRUE(Contains(again.message(), "\"agent-1\"")) << again;
}

TEST_F(ResultsStoreTest, RecordsOfAnUnknownExperimentAreFailedPrecondition) {
  const absl::Status agent = store_->AddAgent({"ghost", "agent-1", "a:1", "{}"});
  EXPECT_EQ(agent.code(), absl::StatusCode::kFailedPrecondition) << agent;
  EXPECT_TRUE(Contains(agent.message(), "\"ghost\"")) << agent;
  EXPECT_EQ(store_->PutTask(Task("ghost", "t")).code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->PutSummary({"ghost", "t", "{}", {}, {}}).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(ResultsStoreTest, FinishingAnUnknownExperimentIsNotFound) {
  const absl::Status s = store_->FinishExperiment("exp-404", "completed", 5);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(Contains(s.message(), "\"exp-404\"")) << s;
}

TEST_F(ResultsStoreTest, FinishingAnExperimentTwiceIsFailedPreconditionAndKeepsTheFirstEnd) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->FinishExperiment("exp-1", "failed", 5));
  const absl::Status again = store_->FinishExperiment("exp-1", "completed", 6);
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_TRUE(Contains(again.message(), "already failed")) << again;
  EXPECT_EQ(store_->GetExperiment("exp-1")->state, "failed");
  EXPECT_EQ(store_->GetExperiment("exp-1")->finished_ns, 5);
}

TEST_F(ResultsStoreTest, APartialRunIsFinishedAsPartialAndCounted) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-2", 2)));
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-3", 3)));
  ASSERT_OK(store_->FinishExperiment("exp-1", "partial", 5));
  ASSERT_OK(store_->FinishExperiment("exp-2", "partial", 6));
  EXPECT_EQ(store_->GetExperiment("exp-1")->state, "partial");
  const auto counts = store_->CountExperimentsByState();
  ASSERT_TRUE(counts.ok()) << counts.status();
  EXPECT_EQ(*counts, (std::map<std::string, int64_t>{{"partial", 2}, {"running", 1}}));
  const absl::Status bad = store_->FinishExperiment("exp-3", "half-done", 7);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument) << bad;
  EXPECT_TRUE(Contains(bad.message(), "partial")) << bad;
}

TEST_F(ResultsStoreTest, GetSamplesAfterFollowsARunningTaskWithoutGapsOrRepeats) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutTask(Task("exp-1", "client-1")));
  ASSERT_OK(store_->AppendSamples("exp-1", "client-1", Samples(0, 10)));
  // A reader that saw nothing yet, in pages of 4.
  std::vector<SampleRecord> seen;
  int64_t cursor = -1;
  for (int page = 0; page < 10; ++page) {
    auto got = store_->GetSamplesAfter("exp-1", "client-1", cursor, 4);
    ASSERT_TRUE(got.ok()) << got.status();
    if (got->empty()) break;
    EXPECT_LE(got->size(), 4u);
    cursor = static_cast<int64_t>(got->back().seq);
    seen.insert(seen.end(), got->begin(), got->end());
    if (page == 1) ASSERT_OK(store_->AppendSamples("exp-1", "client-1", Samples(10, 5)));
  }
  EXPECT_EQ(seen, Samples(0, 15));
  EXPECT_TRUE(store_->GetSamplesAfter("exp-1", "nobody", -1, 4)->empty());
  EXPECT_EQ(store_->GetSamplesAfter("exp-1", "client-1", -1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(ResultsStoreTest, SetTaskStateChangesStateAndDetailOfAnExistingTaskOnly) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutTask(Task("exp-1", "client-1")));
  ASSERT_OK(store_->SetTaskState("exp-1", "client-1", "lost", "agent-1 missed 3 heartbeats"));
  const TaskRecord task = store_->ListTasks("exp-1")->at(0);
  EXPECT_EQ(task.state, "lost");
  EXPECT_EQ(task.detail, "agent-1 missed 3 heartbeats");

  const absl::Status missing = store_->SetTaskState("exp-1", "client-9", "lost", "");
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound) << missing;
  EXPECT_TRUE(Contains(missing.message(), "\"client-9\"")) << missing;
}

TEST_F(ResultsStoreTest, PutTaskReplacesEveryFieldAndKeepsTheSamplesAndTheOrder) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutTask(Task("exp-1", "a", "pending")));
  ASSERT_OK(store_->PutTask(Task("exp-1", "b", "pending")));
  ASSERT_OK(store_->AppendSamples("exp-1", "a", Samples(0, 3)));
  const TaskRecord replaced = {"exp-1", "a", "agent-7", "client", "ewma", "failed", "no reply"};
  ASSERT_OK(store_->PutTask(replaced));
  const auto tasks = *store_->ListTasks("exp-1");
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0], replaced);
  EXPECT_EQ(tasks[1].task_id, "b");
  EXPECT_EQ(store_->GetSamples("exp-1", "a")->size(), 3u);
}

TEST_F(ResultsStoreTest, PutSummaryReplacesTheTasksSummary) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutSummary({"exp-1", "a", "{\"v\":1}", {1}, {1, 2}}));
  const SummaryRecord second = {"exp-1", "a", "{\"v\":2}", {1, 2}, {3, 4, 5}};
  ASSERT_OK(store_->PutSummary(second));
  EXPECT_EQ(*store_->GetSummaries("exp-1"), std::vector<SummaryRecord>{second});
}

TEST_F(ResultsStoreTest, AppendSamplesIsAllOrNothingWhenASeqRepeatsInTheBatch) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutTask(Task("exp-1", "client-1")));
  std::vector<SampleRecord> batch = Samples(1, 5);
  batch.push_back(Sample(3));
  const absl::Status s = store_->AppendSamples("exp-1", "client-1", batch);
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_TRUE(Contains(s.message(), "seq 3")) << s;
  EXPECT_TRUE(store_->GetSamples("exp-1", "client-1")->empty());
}

TEST_F(ResultsStoreTest, AppendSamplesIsAllOrNothingWhenASeqIsAlreadyStored) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutTask(Task("exp-1", "client-1")));
  ASSERT_OK(store_->AppendSamples("exp-1", "client-1", Samples(0, 100)));
  // Collisions in a multi-row chunk (seq 90-99 of the first 32) and in the one-by-one tail.
  const absl::Status chunk = store_->AppendSamples("exp-1", "client-1", Samples(90, 70));
  EXPECT_EQ(chunk.code(), absl::StatusCode::kAlreadyExists) << chunk;
  EXPECT_TRUE(Contains(chunk.message(), "one of seq 90 to 121")) << chunk;
  std::vector<SampleRecord> tail = Samples(100, 40);
  tail.push_back(Sample(99));
  const absl::Status one = store_->AppendSamples("exp-1", "client-1", tail);
  EXPECT_EQ(one.code(), absl::StatusCode::kAlreadyExists) << one;
  EXPECT_TRUE(Contains(one.message(), "seq 99")) << one;
  EXPECT_EQ(*store_->GetSamples("exp-1", "client-1"), Samples(0, 100));
  // The store is still usable after the rollbacks.
  ASSERT_OK(store_->AppendSamples("exp-1", "client-1", Samples(100, 70)));
  EXPECT_EQ(*store_->GetSamples("exp-1", "client-1"), Samples(0, 170));
}

IntervalRecord Interval(uint64_t seq, bool with_latency) {
  IntervalRecord r;
  r.seq = seq;
  r.start_s = static_cast<double>(seq);
  r.end_s = static_cast<double>(seq + 1);
  r.bytes_sent = 1000 * seq + 7;
  r.bytes_received = (uint64_t{1} << 40) + seq;  // beyond 32 bits
  r.messages_sent = 10 + seq;
  r.messages_received = 9 + seq;
  if (with_latency) {
    r.latency_p50_us = 42.5;
    r.latency_p99_us = 99.25;
    r.latency_max_us = 1234.0;
    r.jitter_us = 3.5;
  }
  r.errors = seq % 2;
  return r;
}

TEST_F(ResultsStoreTest, IntervalsRoundTripInOrderWithAbsentLatencies) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutTask(Task("exp-1", "client-1")));
  const std::vector<IntervalRecord> first = {Interval(0, true), Interval(1, false)};
  ASSERT_OK(store_->AppendIntervals("exp-1", "client-1", first));
  ASSERT_OK(store_->AppendIntervals("exp-1", "client-1", {Interval(2, true)}));
  const auto got = store_->GetIntervals("exp-1", "client-1");
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 3u);
  EXPECT_EQ((*got)[0], Interval(0, true));
  EXPECT_EQ((*got)[1], Interval(1, false));
  EXPECT_FALSE((*got)[1].latency_p50_us.has_value());
  EXPECT_EQ((*got)[2], Interval(2, true));
  EXPECT_TRUE(store_->GetIntervals("exp-1", "nobody")->empty());
}

TEST_F(ResultsStoreTest, AppendIntervalsIsAllOrNothing) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutTask(Task("exp-1", "client-1")));
  ASSERT_OK(store_->AppendIntervals("exp-1", "client-1", {Interval(0, true)}));
  // A repeated seq fails the whole batch.
  const absl::Status repeat =
      store_->AppendIntervals("exp-1", "client-1", {Interval(1, true), Interval(0, true)});
  EXPECT_EQ(repeat.code(), absl::StatusCode::kAlreadyExists) << repeat;
  // A malformed one (end before start) too, and nothing is written.
  IntervalRecord bad = Interval(5, true);
  bad.end_s = bad.start_s - 1;
  const absl::Status malformed =
      store_->AppendIntervals("exp-1", "client-1", {Interval(2, true), bad});
  EXPECT_EQ(malformed.code(), absl::StatusCode::kInvalidArgument) << malformed;
  EXPECT_EQ(store_->GetIntervals("exp-1", "client-1")->size(), 1u);
  EXPECT_EQ(store_->AppendIntervals("ghost", "client-1", {Interval(0, true)}).code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ResultsStoreTest, AppendSamplesToATaskOfAnUnknownExperimentIsNotFoundAndWritesNothing) {
  const absl::Status s = store_->AppendSamples("ghost", "client-1", Samples(0, 3));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
  EXPECT_TRUE(Contains(s.message(), "\"ghost\"")) << s;
  EXPECT_TRUE(Contains(s.message(), "\"client-1\"")) << s;
  ASSERT_OK(store_->CreateExperiment(Experiment("ghost", 1)));
  ASSERT_OK(store_->PutTask(Task("ghost", "client-1")));
  EXPECT_TRUE(store_->GetSamples("ghost", "client-1")->empty());
}

TEST_F(ResultsStoreTest, AppendSamplesRefusesNaNAndSeqBeyondInt64WithoutWriting) {
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store_->PutTask(Task("exp-1", "client-1")));
  std::vector<SampleRecord> batch = Samples(0, 3);
  batch[2].measured_offset_ns = std::numeric_limits<double>::quiet_NaN();
  const absl::Status nan = store_->AppendSamples("exp-1", "client-1", batch);
  EXPECT_EQ(nan.code(), absl::StatusCode::kInvalidArgument) << nan;
  EXPECT_TRUE(Contains(nan.message(), "measured_offset_ns is NaN")) << nan;
  batch[2] = Sample(2);
  batch[2].seq = uint64_t{1} << 63;
  EXPECT_EQ(store_->AppendSamples("exp-1", "client-1", batch).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(store_->GetSamples("exp-1", "client-1")->empty());
}

TEST_F(ResultsStoreTest, MalformedRecordsAreInvalidArgument) {
  EXPECT_EQ(store_->CreateExperiment(Experiment("", 1)).code(), absl::StatusCode::kInvalidArgument);
  const absl::Status state = store_->CreateExperiment(Experiment("exp-1", 1, "done"));
  EXPECT_EQ(state.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(state.message(), "got \"done\"")) << state;
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  EXPECT_EQ(store_->FinishExperiment("exp-1", "running", 5).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->FinishExperiment("exp-1", "completed", 0).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->PutTask(Task("exp-1", "t", "finished")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->AddAgent({"exp-1", "", "a:1", "{}"}).code(),
            absl::StatusCode::kInvalidArgument);
  // Histograms: counts must be edges + 1 long, edges strictly increasing.
  EXPECT_EQ(store_->PutSummary({"exp-1", "t", "{}", {1, 2}, {1, 2}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->PutSummary({"exp-1", "t", "{}", {2, 1}, {1, 2, 3}}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->MarkUnfinishedInterrupted(0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->GetExperiment("exp-1")->state, "running");
  EXPECT_TRUE(store_->ListTasks("exp-1")->empty());
  EXPECT_TRUE(store_->GetSummaries("exp-1")->empty());
}

TEST_F(ResultsStoreTest, MarkUnfinishedInterruptedInterruptsRunningRunsAndLosesTheirOpenTasks) {
  ASSERT_OK(store_->CreateExperiment(Experiment("done", 1)));
  ASSERT_OK(store_->PutTask(Task("done", "t", "complete")));
  ASSERT_OK(store_->FinishExperiment("done", "completed", 10));
  ASSERT_OK(store_->CreateExperiment(Experiment("cut-1", 2)));
  ASSERT_OK(store_->PutTask(Task("cut-1", "pending", "pending")));
  ASSERT_OK(store_->PutTask(Task("cut-1", "running", "running")));
  ASSERT_OK(store_->PutTask(Task("cut-1", "complete", "complete")));
  ASSERT_OK(store_->PutTask(Task("cut-1", "failed", "failed")));
  ASSERT_OK(store_->CreateExperiment(Experiment("cut-2", 3)));

  EXPECT_EQ(*store_->MarkUnfinishedInterrupted(1'000), 2);

  const ExperimentRecord done = *store_->GetExperiment("done");
  EXPECT_EQ(done.state, "completed");
  EXPECT_EQ(done.finished_ns, 10);
  EXPECT_EQ(store_->ListTasks("done")->at(0).state, "complete");
  for (const char* id : {"cut-1", "cut-2"}) {
    const ExperimentRecord cut = *store_->GetExperiment(id);
    EXPECT_EQ(cut.state, "interrupted") << id;
    EXPECT_EQ(cut.finished_ns, 1'000) << id;
  }
  const std::vector<TaskRecord> tasks = *store_->ListTasks("cut-1");
  ASSERT_EQ(tasks.size(), 4u);
  for (const TaskRecord& t : tasks) {
    const std::string want = t.task_id == "pending" || t.task_id == "running" ? "lost" : t.task_id;
    EXPECT_EQ(t.state, want) << t.task_id;
    if (want == "lost") {
      EXPECT_TRUE(Contains(t.detail, "controller restarted")) << t.detail;
    }
  }
  EXPECT_EQ(*store_->MarkUnfinishedInterrupted(2'000), 0);  // nothing left running
  EXPECT_EQ(store_->GetExperiment("cut-1")->finished_ns, 1'000);
}

TEST_F(ResultsStoreTest, ConcurrentAppendsFromFourThreadsAllLand) {
  constexpr int kThreads = 4;
  constexpr uint64_t kBatches = 50, kBatchSize = 40;  // one 32-row INSERT + 8 single rows
  ASSERT_OK(store_->CreateExperiment(Experiment("exp-1", 1)));
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_OK(store_->PutTask(Task("exp-1", absl::StrCat("client-", t))));
  }
  // Threads 0-3 each own a task; threads 0 and 1 also share task "shared", odd and even batches.
  ASSERT_OK(store_->PutTask(Task("exp-1", "shared")));
  std::vector<absl::Status> results(kThreads);
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (uint64_t b = 0; b < kBatches && results[t].ok(); ++b) {
          results[t] = store_->AppendSamples("exp-1", absl::StrCat("client-", t),
                                             Samples(b * kBatchSize, kBatchSize));
          if (results[t].ok() && t < 2) {
            const uint64_t first = (2 * b + static_cast<uint64_t>(t)) * kBatchSize;
            results[t] = store_->AppendSamples("exp-1", "shared", Samples(first, kBatchSize));
          }
          if (results[t].ok()) results[t] = store_->ListTasks("exp-1").status();
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
  }
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_TRUE(results[t].ok()) << results[t];
    EXPECT_EQ(*store_->GetSamples("exp-1", absl::StrCat("client-", t)),
              Samples(0, kBatches * kBatchSize));
  }
  EXPECT_EQ(*store_->GetSamples("exp-1", "shared"), Samples(0, 2 * kBatches * kBatchSize));
}

TEST_F(ResultsStoreFileTest, ReopeningAFileDatabaseGivesBackEverythingWritten) {
  Snapshot before;
  {
    auto store = OpenOrDie(path_);
    ASSERT_NE(store, nullptr);
    Populate(*store);
    before = Read(*store);
  }
  ASSERT_EQ(before.experiments.size(), 2u);
  // Newest first: exp-2 (client-pid), then exp-1 (server, client-raw).
  EXPECT_EQ(before.samples.at(2).size(), 100u);

  auto reopened = OpenOrDie(path_);
  ASSERT_NE(reopened, nullptr);
  EXPECT_TRUE(Read(*reopened) == before);
  // The restart sequence: the unfinished run is interrupted, the finished one untouched.
  EXPECT_EQ(*reopened->MarkUnfinishedInterrupted(4'000), 1);
  EXPECT_EQ(*reopened->GetExperiment("exp-1"), before.experiments.at(1));
  EXPECT_EQ(reopened->GetExperiment("exp-2")->state, "interrupted");
}

TEST_F(ResultsStoreFileTest, AFileDatabaseIsInWalMode) {
  auto store = OpenOrDie(path_);
  ASSERT_NE(store, nullptr);
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(ResultsStoreFileTest, AWriteWhileAnotherConnectionHoldsTheLockIsUnavailable) {
  StoreOptions options;
  options.busy_timeout_ms = 0;  // fail at once rather than wait
  auto store = OpenOrDie(path_, options);
  ASSERT_NE(store, nullptr);
  ASSERT_OK(store->CreateExperiment(Experiment("exp-1", 1)));
  ASSERT_OK(store->PutTask(Task("exp-1", "client-1")));

  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const absl::Status busy = store->AppendSamples("exp-1", "client-1", Samples(0, 3));
  EXPECT_EQ(busy.code(), absl::StatusCode::kUnavailable) << busy;
  EXPECT_TRUE(Contains(busy.message(), path_)) << busy;
  // Readers are not blocked by a writer in WAL mode.
  EXPECT_EQ(store->ListTasks("exp-1")->size(), 1u);
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);

  ASSERT_OK(store->AppendSamples("exp-1", "client-1", Samples(0, 3)));  // the retry works
  EXPECT_EQ(store->GetSamples("exp-1", "client-1")->size(), 3u);
}

TEST_F(ResultsStoreFileTest, OpeningInAMissingDirectoryFailsAndNamesThePath) {
  const std::string bad = (dir_ / "no-such-dir" / "results.db").string();
  const auto store = ResultsStore::Open(bad);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_TRUE(Contains(store.status().message(), bad)) << store.status();
}

TEST_F(ResultsStoreFileTest, ADatabaseFromANewerBuildIsRefused) {
  { ASSERT_NE(OpenOrDie(path_), nullptr); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  const auto store = ResultsStore::Open(path_);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition) << store.status();
  EXPECT_TRUE(Contains(store.status().message(), "schema version 99")) << store.status();
}

TEST_F(ResultsStoreFileTest, ReopeningKeepsTheSchemaVersion) {
  { ASSERT_NE(OpenOrDie(path_), nullptr); }
  { ASSERT_NE(OpenOrDie(path_), nullptr); }  // the second open migrates nothing
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_version", -1, &stmt,
                               nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), 1);
  EXPECT_EQ(sqlite3_column_int(stmt, 1), 2);
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

}  // namespace
}  // namespace lab::controller
