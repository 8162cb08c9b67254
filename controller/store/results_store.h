// The controller's results store: experiments, the agents and tasks that ran them, every
// time-sync sample and the per-task summaries, kept in one SQLite database file (WAL mode) so
// that a controller restart loses no finished run.
//
// Threading: a ResultsStore is safe to use from any number of threads; calls are serialised
// on one connection (a write blocks reads of the same store for its duration). Other
// processes may read the file concurrently (WAL); a second writer process waits up to
// StoreOptions::busy_timeout_ms, then the call fails with Unavailable.
//
// Failure: every method returns an absl::Status whose code follows its retry meaning:
//   InvalidArgument     a record is malformed (empty id, unknown state, ...); nothing written.
//   NotFound            the named experiment or task does not exist.
//   AlreadyExists       a record with the same key exists (experiment id, agent name, seq).
//   FailedPrecondition  a record refers to an experiment that does not exist, or the state
//                       does not allow the change (finishing an experiment twice); or the
//                       file cannot be opened (missing directory) or its schema is newer
//                       than this build.
//   Unavailable         the database is locked by another process: retry later.
//   ResourceExhausted / DataLoss / Internal   disk full, a corrupt file, a bug.
// Messages name the operation, the id involved and the database path. A failed write leaves
// the database as it was (each method is one transaction).
//
// Units: every *_ns is nanoseconds (host clock, CLOCK_REALTIME for timestamps of
// experiments); *_us microseconds. Strings are stored as given (UTF-8 expected, not checked).
#ifndef CONTROLLER_STORE_RESULTS_STORE_H_
#define CONTROLLER_STORE_RESULTS_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"

struct sqlite3;
struct sqlite3_stmt;

namespace lab::controller {

// One experiment run. `id` is the key, unique in the store.
struct ExperimentRecord {
  std::string id;
  std::string kind;       // "timesync"
  std::string spec_json;  // the experiment spec as submitted, opaque to the store
  // "running", "completed", "partial" (some clients lost or failed), "failed" or
  // "interrupted" (a controller restart cut it short).
  std::string state;
  int64_t created_ns = 0;
  int64_t finished_ns = 0;  // 0 = not finished

  friend bool operator==(const ExperimentRecord&, const ExperimentRecord&) = default;
};

// An agent as it was when it took part in an experiment; key (experiment_id, name).
struct AgentRecord {
  std::string experiment_id;
  std::string name;
  std::string address;        // HOST:PORT it registered with
  std::string metadata_json;  // capabilities, clock and timestamping facts; opaque to the store

  friend bool operator==(const AgentRecord&, const AgentRecord&) = default;
};

// One task of an experiment on one agent; key (experiment_id, task_id).
struct TaskRecord {
  std::string experiment_id;
  std::string task_id;
  std::string agent_name;
  std::string role;    // "server" | "client"
  std::string scheme;  // "raw", "ewma", "kalman", "pid"; "" for the server
  std::string state;   // "pending", "running", "complete", "lost" or "failed"
  std::string detail;  // why it failed or was lost; free text, may be empty

  friend bool operator==(const TaskRecord&, const TaskRecord&) = default;
};

// One probe exchange of a time-sync client (lab::timesync::PacketRecord's stored fields);
// key (experiment_id, task_id, seq). `seq` must be <= INT64_MAX and no field may be NaN.
struct SampleRecord {
  uint64_t seq = 0;
  int64_t send_host_ns = 0;
  int64_t recv_host_ns = 0;
  double rtt_ns = 0;
  std::optional<double> measured_offset_ns;  // absent for JSON replies
  double true_offset_ns = 0;
  int64_t correction_ns = 0;
  bool applied = false;
  double error_ns = 0;

  friend bool operator==(const SampleRecord&, const SampleRecord&) = default;
};

// One interval of a traffic client (lab::traffic::IntervalSample's fields); key
// (experiment_id, task_id, seq). Latency and jitter are absent when nothing completed.
struct IntervalRecord {
  uint64_t seq = 0;
  double start_s = 0;
  double end_s = 0;
  uint64_t bytes_sent = 0;
  uint64_t bytes_received = 0;
  uint64_t messages_sent = 0;
  uint64_t messages_received = 0;
  std::optional<double> latency_p50_us;
  std::optional<double> latency_p99_us;
  std::optional<double> latency_max_us;
  std::optional<double> jitter_us;
  uint64_t errors = 0;

  friend bool operator==(const IntervalRecord&, const IntervalRecord&) = default;
};

// A task's summary and its mergeable histogram; key (experiment_id, task_id).
struct SummaryRecord {
  std::string experiment_id;
  std::string task_id;
  std::string summary_json;  // opaque to the store
  // Histogram bucket edges (strictly increasing, microseconds) and per-bucket (not cumulative)
  // counts, edges_us.size() + 1 long, as lab::timesync::Histogram has them. Both empty when
  // the summary carries no histogram. Stored exactly (binary), so they merge after reloading.
  std::vector<double> edges_us;
  std::vector<uint64_t> bucket_counts;

  friend bool operator==(const SummaryRecord&, const SummaryRecord&) = default;
};

struct StoreOptions {
  // How long a write waits for another process's write lock before failing with
  // Unavailable. 0 fails at once.
  int busy_timeout_ms = 5000;
};

class ResultsStore {
 public:
  // Opens the database file at `path`, creating it (not its directory) if absent; ":memory:"
  // gives a private in-memory database (tests). Sets WAL mode, synchronous=NORMAL (a commit
  // survives a process crash; a power loss may lose the last commits, never corrupts), foreign
  // keys on, and creates or migrates the schema (its version is in table schema_version).
  // FailedPrecondition when the file's schema is newer than this build knows.
  static absl::StatusOr<std::unique_ptr<ResultsStore>> Open(const std::string& path,
                                                            const StoreOptions& options = {});

  // Closes the connection; whatever was committed stays in the file.
  ~ResultsStore();
  ResultsStore(const ResultsStore&) = delete;
  ResultsStore& operator=(const ResultsStore&) = delete;

  // AlreadyExists when an experiment with this id exists. InvalidArgument on an empty id or an
  // unknown state.
  absl::Status CreateExperiment(const ExperimentRecord& experiment);
  // Moves a "running" experiment to `state` ("completed", "partial", "failed" or
  // "interrupted") at
  // `finished_ns` (> 0). NotFound when there is no such experiment, FailedPrecondition when it
  // is no longer running (finished, or interrupted by a restart).
  absl::Status FinishExperiment(absl::string_view id, absl::string_view state, int64_t finished_ns);
  // AlreadyExists when the experiment already has an agent of this name; FailedPrecondition
  // when the experiment does not exist.
  absl::Status AddAgent(const AgentRecord& agent);
  // Inserts the task, or replaces every field of an existing one (its samples are kept).
  // FailedPrecondition when the experiment does not exist.
  absl::Status PutTask(const TaskRecord& task);
  // NotFound when there is no such task.
  absl::Status SetTaskState(absl::string_view experiment_id, absl::string_view task_id,
                            absl::string_view state, absl::string_view detail);
  // Appends `samples` to a task in one transaction: all of them or, on any error, none.
  // NotFound when the task does not exist (PutTask first); AlreadyExists when a seq is already
  // stored for the task or repeats in the batch; InvalidArgument on a NaN or a seq > INT64_MAX.
  // An empty batch only checks that the task exists.
  absl::Status AppendSamples(absl::string_view experiment_id, absl::string_view task_id,
                             absl::Span<const SampleRecord> samples);
  // Appends a traffic client's intervals in one transaction (all or nothing). NotFound for
  // an unknown task; InvalidArgument for a malformed interval; a repeated seq fails the batch.
  absl::Status AppendIntervals(absl::string_view experiment_id, absl::string_view task_id,
                               absl::Span<const IntervalRecord> intervals);
  // A task's intervals by increasing seq (empty for unknown tasks).
  absl::StatusOr<std::vector<IntervalRecord>> GetIntervals(absl::string_view experiment_id,
                                                           absl::string_view task_id) const;
  // Inserts the summary, or replaces an existing one for the same task. InvalidArgument when
  // the histogram is malformed; FailedPrecondition when the experiment does not exist.
  absl::Status PutSummary(const SummaryRecord& summary);

  // The `limit` (> 0) most recently created experiments, newest (largest created_ns) first;
  // ties in the reverse order of creation.
  absl::StatusOr<std::vector<ExperimentRecord>> ListExperiments(int limit) const;
  // NotFound (naming the id) when there is no such experiment.
  absl::StatusOr<ExperimentRecord> GetExperiment(absl::string_view id) const;
  // In the order added. Empty (not NotFound) for an unknown experiment; likewise below.
  absl::StatusOr<std::vector<AgentRecord>> ListAgents(absl::string_view experiment_id) const;
  // In the order first put.
  absl::StatusOr<std::vector<TaskRecord>> ListTasks(absl::string_view experiment_id) const;
  // By increasing seq.
  absl::StatusOr<std::vector<SampleRecord>> GetSamples(absl::string_view experiment_id,
                                                       absl::string_view task_id) const;
  // At most `limit` (> 0) samples with seq > `after_seq` (-1: from the first), by increasing
  // seq: a reader that follows a running task passes the last seq it saw.
  absl::StatusOr<std::vector<SampleRecord>> GetSamplesAfter(absl::string_view experiment_id,
                                                            absl::string_view task_id,
                                                            int64_t after_seq, int64_t limit) const;
  // In the order first put.
  absl::StatusOr<std::vector<SummaryRecord>> GetSummaries(absl::string_view experiment_id) const;

  // How many experiments are in each state (states with none are absent).
  absl::StatusOr<std::map<std::string, int64_t>> CountExperimentsByState() const;

  // For a controller restart, before any new experiment starts: every "running" experiment
  // becomes "interrupted" with finished_ns = `now_ns`, and its "pending" and "running" tasks
  // become "lost" (detail says the controller restarted). One transaction. Returns how many
  // experiments changed.
  absl::StatusOr<int> MarkUnfinishedInterrupted(int64_t now_ns);

  // The path given to Open.
  const std::string& path() const { return path_; }

 private:
  ResultsStore(std::string path, sqlite3* db);

  // The cached prepared statement for `sql`, prepared on first use. `sql` must have static
  // storage (the cache is keyed by its address): pass the k* constants of the .cc.
  absl::StatusOr<sqlite3_stmt*> Prepare(const char* sql, absl::string_view what) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs one cached statement that returns no rows (BEGIN, COMMIT, an UPDATE without
  // parameters).
  absl::Status Run(const char* sql, absl::string_view what) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs `body` between BEGIN IMMEDIATE and COMMIT; rolls back when either fails.
  absl::Status InTransaction(absl::string_view what, absl::FunctionRef<absl::Status()> body)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The Status for SQLite result code `rc` of `what` (which names the id involved).
  absl::Status Error(int rc, absl::string_view what) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The task's integer key, NotFound when there is no such task.
  absl::StatusOr<int64_t> TaskKey(absl::string_view experiment_id, absl::string_view task_id,
                                  absl::string_view what) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string path_;
  mutable absl::Mutex mu_;
  sqlite3* const db_ ABSL_PT_GUARDED_BY(mu_);
  // Keyed by the SQL text's address: callers pass string literals.
  mutable std::map<const char*, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mu_);
};

}  // namespace lab::controller

#endif  // CONTROLLER_STORE_RESULTS_STORE_H_
