#include "controller/store/results_store.h"

#include <sqlite3.h>

#include <bit>
#include <cmath>
#include <limits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "controller/store/sqlite_status.h"

namespace lab::controller {

namespace {

// The schema this build writes. kMigrations[v] takes a database from version v to v + 1;
// a new version appends a step (never edits an old one).
constexpr int kSchemaVersion = 2;
constexpr const char* kMigrations[kSchemaVersion] = {
    // Version 1. Samples hang off an integer task key (compact rows, cheap foreign-key check)
    // and are clustered by (task, seq), so a task's samples are read in order without a sort.
    R"sql(
CREATE TABLE experiments (
  id TEXT PRIMARY KEY NOT NULL,
  kind TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  state TEXT NOT NULL,
  created_ns INTEGER NOT NULL,
  finished_ns INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX experiments_by_created ON experiments (created_ns);
CREATE TABLE agents (
  experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  address TEXT NOT NULL,
  metadata_json TEXT NOT NULL,
  PRIMARY KEY (experiment_id, name)
);
CREATE TABLE tasks (
  task_key INTEGER PRIMARY KEY,
  experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
  task_id TEXT NOT NULL,
  agent_name TEXT NOT NULL,
  role TEXT NOT NULL,
  scheme TEXT NOT NULL,
  state TEXT NOT NULL,
  detail TEXT NOT NULL,
  UNIQUE (experiment_id, task_id)
);
CREATE TABLE samples (
  task_key INTEGER NOT NULL REFERENCES tasks (task_key) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  send_host_ns INTEGER NOT NULL,
  recv_host_ns INTEGER NOT NULL,
  rtt_ns REAL NOT NULL,
  measured_offset_ns REAL,
  true_offset_ns REAL NOT NULL,
  correction_ns INTEGER NOT NULL,
  applied INTEGER NOT NULL,
  error_ns REAL NOT NULL,
  PRIMARY KEY (task_key, seq)
) WITHOUT ROWID;
-- edges_us: little-endian IEEE-754 doubles; bucket_counts: little-endian uint64.
CREATE TABLE summaries (
  experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
  task_id TEXT NOT NULL,
  summary_json TEXT NOT NULL,
  edges_us BLOB NOT NULL,
  bucket_counts BLOB NOT NULL,
  PRIMARY KEY (experiment_id, task_id)
);
)sql",
    // Version 2. Traffic runs (TCP/UDP): one row per client per interval.
    R"sql(
CREATE TABLE intervals (
  task_key INTEGER NOT NULL REFERENCES tasks (task_key) ON DELETE CASCADE,
  seq INTEGER NOT NULL,
  start_s REAL NOT NULL,
  end_s REAL NOT NULL,
  bytes_sent INTEGER NOT NULL,
  bytes_received INTEGER NOT NULL,
  messages_sent INTEGER NOT NULL,
  messages_received INTEGER NOT NULL,
  latency_p50_us REAL,
  latency_p99_us REAL,
  latency_max_us REAL,
  jitter_us REAL,
  errors INTEGER NOT NULL,
  PRIMARY KEY (task_key, seq)
) WITHOUT ROWID;
)sql",
};

constexpr char kCreateVersionTable[] =
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), version INTEGER NOT NULL)";
constexpr char kSelectVersion[] = "SELECT version FROM schema_version WHERE id = 1";
constexpr char kUpsertVersion[] =
    "INSERT INTO schema_version (id, version) VALUES (1, ?) "
    "ON CONFLICT (id) DO UPDATE SET version = excluded.version";

constexpr char kBegin[] = "BEGIN IMMEDIATE";
constexpr char kCommit[] = "COMMIT";
constexpr char kRollback[] = "ROLLBACK";

constexpr char kInsertExperiment[] =
    "INSERT INTO experiments (id, kind, spec_json, state, created_ns, finished_ns) "
    "VALUES (?, ?, ?, ?, ?, ?)";
constexpr char kFinishExperiment[] =
    "UPDATE experiments SET state = ?, finished_ns = ? WHERE id = ? AND state = 'running'";
constexpr char kSelectExperimentState[] = "SELECT state FROM experiments WHERE id = ?";
constexpr char kInsertAgent[] =
    "INSERT INTO agents (experiment_id, name, address, metadata_json) VALUES (?, ?, ?, ?)";
constexpr char kUpsertTask[] =
    "INSERT INTO tasks (experiment_id, task_id, agent_name, role, scheme, state, detail) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, task_id) DO UPDATE SET "
    "agent_name = excluded.agent_name, role = excluded.role, scheme = excluded.scheme, "
    "state = excluded.state, detail = excluded.detail";
constexpr char kSetTaskState[] =
    "UPDATE tasks SET state = ?, detail = ? WHERE experiment_id = ? AND task_id = ?";
constexpr char kSelectTaskKey[] =
    "SELECT task_key FROM tasks WHERE experiment_id = ? AND task_id = ?";
// Samples go in kSamplesPerInsert rows per statement (a third less CPU per sample than one
// row per statement), the rest of a batch one row per statement.
constexpr std::size_t kSamplesPerInsert = 32;
constexpr char kInsertSampleHead[] =
    "INSERT INTO samples (task_key, seq, send_host_ns, recv_host_ns, rtt_ns, measured_offset_ns, "
    "true_offset_ns, correction_ns, applied, error_ns) VALUES ";
constexpr char kSampleValues[] = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

// The INSERT of `rows` samples (1 or kSamplesPerInsert), built once; static storage, as
// ResultsStore::Prepare requires.
const char* InsertSamplesSql(std::size_t rows) {
  static const std::string* const kSql[2] = {
      new std::string(absl::StrCat(kInsertSampleHead, kSampleValues)),
      new std::string([] {
        std::string sql = kInsertSampleHead;
        for (std::size_t i = 0; i < kSamplesPerInsert; ++i) {
          absl::StrAppend(&sql, i == 0 ? "" : ", ", kSampleValues);
        }
        return sql;
      }()),
  };
  return kSql[rows == 1 ? 0 : 1]->c_str();
}

constexpr char kUpsertSummary[] =
    "INSERT INTO summaries (experiment_id, task_id, summary_json, edges_us, bucket_counts) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (experiment_id, task_id) DO UPDATE SET "
    "summary_json = excluded.summary_json, edges_us = excluded.edges_us, "
    "bucket_counts = excluded.bucket_counts";

constexpr char kListExperiments[] =
    "SELECT id, kind, spec_json, state, created_ns, finished_ns FROM experiments "
    "ORDER BY created_ns DESC, rowid DESC LIMIT ?";
constexpr char kGetExperiment[] =
    "SELECT id, kind, spec_json, state, created_ns, finished_ns FROM experiments WHERE id = ?";
constexpr char kListAgents[] =
    "SELECT experiment_id, name, address, metadata_json FROM agents WHERE experiment_id = ? "
    "ORDER BY rowid";
constexpr char kListTasks[] =
    "SELECT experiment_id, task_id, agent_name, role, scheme, state, detail FROM tasks "
    "WHERE experiment_id = ? ORDER BY task_key";
constexpr char kGetSamplesAfter[] =
    "SELECT seq, send_host_ns, recv_host_ns, rtt_ns, measured_offset_ns, true_offset_ns, "
    "correction_ns, applied, error_ns FROM samples WHERE task_key = ? AND seq > ? ORDER BY seq "
    "LIMIT ?";
constexpr char kInsertInterval[] =
    "INSERT INTO intervals (task_key, seq, start_s, end_s, bytes_sent, bytes_received, "
    "messages_sent, messages_received, latency_p50_us, latency_p99_us, latency_max_us, "
    "jitter_us, errors) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
constexpr char kGetIntervals[] =
    "SELECT seq, start_s, end_s, bytes_sent, bytes_received, messages_sent, messages_received, "
    "latency_p50_us, latency_p99_us, latency_max_us, jitter_us, errors FROM intervals "
    "WHERE task_key = ? ORDER BY seq";
constexpr char kCountExperimentsByState[] =
    "SELECT state, COUNT(*) FROM experiments GROUP BY state ORDER BY state";
constexpr char kGetSummaries[] =
    "SELECT experiment_id, task_id, summary_json, edges_us, bucket_counts FROM summaries "
    "WHERE experiment_id = ? ORDER BY rowid";

constexpr char kLoseUnfinishedTasks[] =
    "UPDATE tasks SET state = 'lost', detail = 'controller restarted before the task finished' "
    "WHERE state IN ('pending', 'running') "
    "AND experiment_id IN (SELECT id FROM experiments WHERE state = 'running')";
constexpr char kInterruptExperiments[] =
    "UPDATE experiments SET state = 'interrupted', finished_ns = ? WHERE state = 'running'";

constexpr absl::string_view kExperimentStates[] = {"running", "completed", "partial", "failed",
                                                   "interrupted"};
constexpr absl::string_view kFinishedStates[] = {"completed", "partial", "failed", "interrupted"};
constexpr absl::string_view kTaskStates[] = {"pending", "running", "complete", "lost", "failed"};

template <std::size_t N>
absl::Status CheckOneOf(absl::string_view value, const absl::string_view (&allowed)[N],
                        absl::string_view what) {
  for (absl::string_view a : allowed) {
    if (value == a) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, ": state must be one of ", absl::StrJoin(allowed, ", "), ", got \"", value, "\""));
}

absl::Status CheckNotEmpty(absl::string_view value, absl::string_view field,
                           absl::string_view what) {
  if (!value.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, ": ", field, " is empty"));
}

// Little-endian encoding of 64-bit values, so a database file reads the same on any host.
template <typename T>
std::string EncodeLe64(const std::vector<T>& values) {
  static_assert(sizeof(T) == 8);
  std::string out(values.size() * 8, '\0');
  for (std::size_t i = 0; i < values.size(); ++i) {
    const uint64_t bits = std::bit_cast<uint64_t>(values[i]);
    for (int b = 0; b < 8; ++b) out[i * 8 + b] = static_cast<char>((bits >> (8 * b)) & 0xff);
  }
  return out;
}

template <typename T>
std::vector<T> DecodeLe64(const unsigned char* data, std::size_t size) {
  static_assert(sizeof(T) == 8);
  std::vector<T> out(size / 8);
  for (std::size_t i = 0; i < out.size(); ++i) {
    uint64_t bits = 0;
    for (int b = 0; b < 8; ++b) bits |= static_cast<uint64_t>(data[i * 8 + b]) << (8 * b);
    out[i] = std::bit_cast<T>(bits);
  }
  return out;
}

// Resets a cached statement when its use ends, so it holds no read lock and points at no
// caller memory (parameters are bound without copying).
class StatementReset {
 public:
  explicit StatementReset(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~StatementReset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StatementReset(const StatementReset&) = delete;
  StatementReset& operator=(const StatementReset&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

// Binds parameters 1, 2, ... in order, keeping the first failure. Text and blobs are bound
// without a copy: they must outlive the statement's use (StatementReset clears them).
class Binder {
 public:
  explicit Binder(sqlite3_stmt* stmt) : stmt_(stmt) {}

  Binder& Text(absl::string_view v) {
    // A null pointer would bind SQL NULL; an empty string stays an empty string.
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_text64(stmt_, ++index_, v.data() == nullptr ? "" : v.data(), v.size(),
                                SQLITE_STATIC, SQLITE_UTF8);
    }
    return *this;
  }
  Binder& Blob(absl::string_view v) {
    if (rc_ == SQLITE_OK) {
      rc_ = sqlite3_bind_blob64(stmt_, ++index_, v.data() == nullptr ? "" : v.data(), v.size(),
                                SQLITE_STATIC);
    }
    return *this;
  }
  Binder& Int(int64_t v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_int64(stmt_, ++index_, v);
    return *this;
  }
  Binder& Double(double v) {
    if (rc_ == SQLITE_OK) rc_ = sqlite3_bind_double(stmt_, ++index_, v);
    return *this;
  }
  Binder& OptionalDouble(const std::optional<double>& v) {
    if (rc_ == SQLITE_OK) {
      rc_ = v.has_value() ? sqlite3_bind_double(stmt_, ++index_, *v)
                          : sqlite3_bind_null(stmt_, ++index_);
    }
    return *this;
  }
  int rc() const { return rc_; }

 private:
  sqlite3_stmt* stmt_;
  int index_ = 0;
  int rc_ = SQLITE_OK;
};

std::string ColumnText(sqlite3_stmt* stmt, int col) {
  const unsigned char* text = sqlite3_column_text(stmt, col);
  if (text == nullptr) return "";
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt, col)));
}

// (data, size) of a BLOB column; an empty blob may come back as a null pointer.
std::pair<const unsigned char*, std::size_t> ColumnBlob(sqlite3_stmt* stmt, int col) {
  const auto* data = static_cast<const unsigned char*>(sqlite3_column_blob(stmt, col));
  const int size = sqlite3_column_bytes(stmt, col);
  return {data, data == nullptr ? 0 : static_cast<std::size_t>(size)};
}

ExperimentRecord ReadExperiment(sqlite3_stmt* stmt) {
  ExperimentRecord e;
  e.id = ColumnText(stmt, 0);
  e.kind = ColumnText(stmt, 1);
  e.spec_json = ColumnText(stmt, 2);
  e.state = ColumnText(stmt, 3);
  e.created_ns = sqlite3_column_int64(stmt, 4);
  e.finished_ns = sqlite3_column_int64(stmt, 5);
  return e;
}

std::string Quoted(absl::string_view s) { return absl::StrCat("\"", s, "\""); }

std::string TaskName(absl::string_view experiment_id, absl::string_view task_id) {
  return absl::StrCat("task ", Quoted(task_id), " of experiment ", Quoted(experiment_id));
}

absl::Status CheckSample(const SampleRecord& s, absl::string_view what) {
  if (s.seq > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": seq ", s.seq, " exceeds INT64_MAX"));
  }
  const std::pair<const char*, double> fields[] = {
      {"rtt_ns", s.rtt_ns},
      {"measured_offset_ns", s.measured_offset_ns.value_or(0)},
      {"true_offset_ns", s.true_offset_ns},
      {"error_ns", s.error_ns}};
  for (const auto& [name, value] : fields) {
    if (std::isnan(value)) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": seq ", s.seq, ": ", name, " is NaN"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckHistogram(const SummaryRecord& s, absl::string_view what) {
  if (s.edges_us.empty() && s.bucket_counts.empty()) return absl::OkStatus();
  if (s.bucket_counts.size() != s.edges_us.size() + 1) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", s.bucket_counts.size(),
                                                   " bucket counts for ", s.edges_us.size(),
                                                   " edges (want edges + 1)"));
  }
  for (std::size_t i = 0; i < s.edges_us.size(); ++i) {
    if (std::isnan(s.edges_us[i]) || (i > 0 && !(s.edges_us[i - 1] < s.edges_us[i]))) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": histogram edges are not strictly increasing at index ", i));
    }
  }
  return absl::OkStatus();
}

}  // namespace

ResultsStore::ResultsStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

ResultsStore::~ResultsStore() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

absl::StatusOr<std::unique_ptr<ResultsStore>> ResultsStore::Open(const std::string& path,
                                                                 const StoreOptions& options) {
  if (path.empty()) return absl::InvalidArgumentError("open results store: the path is empty");
  if (options.busy_timeout_ms < 0) {
    return absl::InvalidArgumentError(absl::StrCat("open results store ", path,
                                                   ": busy_timeout_ms must be >= 0, got ",
                                                   options.busy_timeout_ms));
  }
  const std::string what = absl::StrCat("open results store ", path);
  sqlite3* db = nullptr;
  // NOMUTEX: the store serialises its calls itself.
  const int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status status =
        SqliteStatus(rc, what, db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return status;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, options.busy_timeout_ms);
  std::unique_ptr<ResultsStore> store(new ResultsStore(path, db));

  absl::MutexLock lock(&store->mu_);
  // journal_mode answers with the mode in effect: "memory" for ":memory:", else it must be WAL.
  static constexpr char kWal[] = "PRAGMA journal_mode = WAL";
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * wal, store->Prepare(kWal, what));
  {
    StatementReset reset(wal);
    const int step = sqlite3_step(wal);
    if (step != SQLITE_ROW) return store->Error(step, absl::StrCat(what, ": set WAL mode"));
    const std::string mode = ColumnText(wal, 0);
    if (mode != "wal" && path != ":memory:") {
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": cannot use WAL mode (journal_mode is ", mode, ")"));
    }
  }
  static constexpr char kSynchronous[] = "PRAGMA synchronous = NORMAL";
  static constexpr char kForeignKeys[] = "PRAGMA foreign_keys = ON";
  LAB_RETURN_IF_ERROR(store->Run(kSynchronous, what));
  LAB_RETURN_IF_ERROR(store->Run(kForeignKeys, what));
  LAB_RETURN_IF_ERROR(store->Migrate());
  return store;
}

absl::Status ResultsStore::Migrate() {
  const std::string what = "migrate schema";
  return InTransaction(what, [&]() -> absl::Status {
    LAB_RETURN_IF_ERROR(Run(kCreateVersionTable, what));
    int64_t version = 0;
    {
      LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kSelectVersion, what));
      StatementReset reset(stmt);
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW) {
        version = sqlite3_column_int64(stmt, 0);
      } else if (rc != SQLITE_DONE) {
        return Error(rc, what);
      }
    }
    if (version > kSchemaVersion || version < 0) {
      return absl::FailedPreconditionError(
          absl::StrCat(what, " in ", path_, ": the database has schema version ", version,
                       ", this build knows versions up to ", kSchemaVersion));
    }
    for (int64_t v = version; v < kSchemaVersion; ++v) {
      char* message = nullptr;
      const int rc = sqlite3_exec(db_, kMigrations[v], nullptr, nullptr, &message);
      if (rc != SQLITE_OK) {
        absl::Status status =
            SqliteStatus(rc, absl::StrCat(what, " in ", path_, " from version ", v, " to ", v + 1),
                         message != nullptr ? message : sqlite3_errstr(rc));
        sqlite3_free(message);
        return status;
      }
    }
    if (version == kSchemaVersion) return absl::OkStatus();
    LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kUpsertVersion, what));
    StatementReset reset(stmt);
    Binder bind(stmt);
    if (bind.Int(kSchemaVersion).rc() != SQLITE_OK) return Error(bind.rc(), what);
    const int rc = sqlite3_step(stmt);
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
  });
}

absl::Status ResultsStore::Error(int rc, absl::string_view what) const {
  // The connection's message is more specific ("UNIQUE constraint failed: experiments.id")
  // when it describes this failure.
  const bool same = sqlite3_extended_errcode(db_) == rc;
  return SqliteStatus(rc, absl::StrCat(what, " in ", path_),
                      same ? sqlite3_errmsg(db_) : sqlite3_errstr(rc));
}

absl::StatusOr<sqlite3_stmt*> ResultsStore::Prepare(const char* sql, absl::string_view what) const {
  auto it = statements_.find(sql);
  if (it != statements_.end()) return it->second;
  sqlite3_stmt* stmt = nullptr;
  const int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(stmt);
    return Error(rc, absl::StrCat(what, ": prepare \"", sql, "\""));
  }
  statements_.emplace(sql, stmt);
  return stmt;
}

absl::Status ResultsStore::Run(const char* sql, absl::string_view what) const {
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(sql, what));
  StatementReset reset(stmt);
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
  }
  return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
}

absl::Status ResultsStore::InTransaction(absl::string_view what,
                                         absl::FunctionRef<absl::Status()> body) {
  // IMMEDIATE takes the write lock up front, so a busy database fails here (after the busy
  // timeout) rather than half way through.
  LAB_RETURN_IF_ERROR(Run(kBegin, what));
  absl::Status status = body();
  if (status.ok()) status = Run(kCommit, what);
  if (!status.ok() && !sqlite3_get_autocommit(db_)) {
    // Best effort: the error to report is the first one; a failed rollback leaves SQLite to
    // roll back when the connection closes.
    (void)Run(kRollback, what);
  }
  return status;
}

absl::StatusOr<int64_t> ResultsStore::TaskKey(absl::string_view experiment_id,
                                              absl::string_view task_id,
                                              absl::string_view what) const {
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kSelectTaskKey, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Text(experiment_id).Text(task_id).rc() != SQLITE_OK) return Error(bind.rc(), what);
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) return sqlite3_column_int64(stmt, 0);
  if (rc != SQLITE_DONE) return Error(rc, what);
  return absl::NotFoundError(
      absl::StrCat(what, " in ", path_, ": no ", TaskName(experiment_id, task_id)));
}

absl::Status ResultsStore::CreateExperiment(const ExperimentRecord& e) {
  const std::string what = absl::StrCat("create experiment ", Quoted(e.id));
  LAB_RETURN_IF_ERROR(CheckNotEmpty(e.id, "id", what));
  LAB_RETURN_IF_ERROR(CheckOneOf(e.state, kExperimentStates, what));
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kInsertExperiment, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  bind.Text(e.id).Text(e.kind).Text(e.spec_json).Text(e.state).Int(e.created_ns).Int(e.finished_ns);
  if (bind.rc() != SQLITE_OK) return Error(bind.rc(), what);
  const int rc = sqlite3_step(stmt);
  return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
}

absl::Status ResultsStore::FinishExperiment(absl::string_view id, absl::string_view state,
                                            int64_t finished_ns) {
  const std::string what = absl::StrCat("finish experiment ", Quoted(id));
  LAB_RETURN_IF_ERROR(CheckOneOf(state, kFinishedStates, what));
  if (finished_ns <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": finished_ns must be > 0, got ", finished_ns));
  }
  absl::MutexLock lock(&mu_);
  return InTransaction(what, [&]() -> absl::Status {
    {
      LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kFinishExperiment, what));
      StatementReset reset(stmt);
      Binder bind(stmt);
      if (bind.Text(state).Int(finished_ns).Text(id).rc() != SQLITE_OK) {
        return Error(bind.rc(), what);
      }
      const int rc = sqlite3_step(stmt);
      if (rc != SQLITE_DONE) return Error(rc, what);
      if (sqlite3_changes(db_) == 1) return absl::OkStatus();
    }
    // Nothing changed: say whether it is missing or no longer running.
    LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kSelectExperimentState, what));
    StatementReset reset(stmt);
    Binder bind(stmt);
    if (bind.Text(id).rc() != SQLITE_OK) return Error(bind.rc(), what);
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_DONE) {
      return absl::NotFoundError(absl::StrCat(what, " in ", path_, ": no experiment ", Quoted(id)));
    }
    if (rc != SQLITE_ROW) return Error(rc, what);
    return absl::FailedPreconditionError(absl::StrCat(what, " in ", path_, ": it is already ",
                                                      ColumnText(stmt, 0), ", not running"));
  });
}

absl::Status ResultsStore::AddAgent(const AgentRecord& a) {
  const std::string what =
      absl::StrCat("add agent ", Quoted(a.name), " to experiment ", Quoted(a.experiment_id));
  LAB_RETURN_IF_ERROR(CheckNotEmpty(a.experiment_id, "experiment_id", what));
  LAB_RETURN_IF_ERROR(CheckNotEmpty(a.name, "name", what));
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kInsertAgent, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Text(a.experiment_id).Text(a.name).Text(a.address).Text(a.metadata_json).rc() !=
      SQLITE_OK) {
    return Error(bind.rc(), what);
  }
  const int rc = sqlite3_step(stmt);
  return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
}

absl::Status ResultsStore::PutTask(const TaskRecord& t) {
  const std::string what = absl::StrCat("put ", TaskName(t.experiment_id, t.task_id));
  LAB_RETURN_IF_ERROR(CheckNotEmpty(t.experiment_id, "experiment_id", what));
  LAB_RETURN_IF_ERROR(CheckNotEmpty(t.task_id, "task_id", what));
  LAB_RETURN_IF_ERROR(CheckOneOf(t.state, kTaskStates, what));
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kUpsertTask, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  bind.Text(t.experiment_id).Text(t.task_id).Text(t.agent_name).Text(t.role).Text(t.scheme);
  bind.Text(t.state).Text(t.detail);
  if (bind.rc() != SQLITE_OK) return Error(bind.rc(), what);
  const int rc = sqlite3_step(stmt);
  return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
}

absl::Status ResultsStore::SetTaskState(absl::string_view experiment_id, absl::string_view task_id,
                                        absl::string_view state, absl::string_view detail) {
  const std::string what =
      absl::StrCat("set state of ", TaskName(experiment_id, task_id), " to ", Quoted(state));
  LAB_RETURN_IF_ERROR(CheckOneOf(state, kTaskStates, what));
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kSetTaskState, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Text(state).Text(detail).Text(experiment_id).Text(task_id).rc() != SQLITE_OK) {
    return Error(bind.rc(), what);
  }
  const int rc = sqlite3_step(stmt);
  if (rc != SQLITE_DONE) return Error(rc, what);
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(
        absl::StrCat(what, " in ", path_, ": no ", TaskName(experiment_id, task_id)));
  }
  return absl::OkStatus();
}

absl::Status ResultsStore::AppendSamples(absl::string_view experiment_id, absl::string_view task_id,
                                         absl::Span<const SampleRecord> samples) {
  const std::string what =
      absl::StrCat("append ", samples.size(), " samples to ", TaskName(experiment_id, task_id));
  for (const SampleRecord& s : samples) LAB_RETURN_IF_ERROR(CheckSample(s, what));
  absl::MutexLock lock(&mu_);
  return InTransaction(what, [&]() -> absl::Status {
    LAB_ASSIGN_OR_RETURN(const int64_t task_key, TaskKey(experiment_id, task_id, what));
    // Chunks of kSamplesPerInsert rows, then the remainder one by one. Every parameter is
    // bound again before each step.
    std::size_t done = 0;
    for (const std::size_t rows : {kSamplesPerInsert, std::size_t{1}}) {
      if (samples.size() - done < rows) continue;
      LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(InsertSamplesSql(rows), what));
      StatementReset reset(stmt);
      for (; samples.size() - done >= rows; done += rows) {
        sqlite3_reset(stmt);
        Binder bind(stmt);
        for (const SampleRecord& s : samples.subspan(done, rows)) {
          bind.Int(task_key).Int(static_cast<int64_t>(s.seq)).Int(s.send_host_ns);
          bind.Int(s.recv_host_ns).Double(s.rtt_ns).OptionalDouble(s.measured_offset_ns);
          bind.Double(s.true_offset_ns).Int(s.correction_ns).Int(s.applied ? 1 : 0);
          bind.Double(s.error_ns);
        }
        int rc = bind.rc();
        if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
        if (rc != SQLITE_DONE) {
          const std::string seqs =
              rows == 1 ? absl::StrCat(", seq ", samples[done].seq)
                        : absl::StrCat(", one of seq ", samples[done].seq, " to ",
                                       samples[done + rows - 1].seq, " (in batch order)");
          return Error(rc, absl::StrCat(what, seqs));
        }
      }
    }
    return absl::OkStatus();
  });
}

absl::Status ResultsStore::AppendIntervals(absl::string_view experiment_id,
                                           absl::string_view task_id,
                                           absl::Span<const IntervalRecord> intervals) {
  const std::string what =
      absl::StrCat("append ", intervals.size(), " intervals to ", TaskName(experiment_id, task_id));
  for (const IntervalRecord& r : intervals) {
    if (r.seq > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ||
        !std::isfinite(r.start_s) || !std::isfinite(r.end_s) || r.end_s < r.start_s) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": interval ", r.seq, " is malformed (seq <= 2^63-1, finite start <= end)"));
    }
  }
  absl::MutexLock lock(&mu_);
  return InTransaction(what, [&]() -> absl::Status {
    LAB_ASSIGN_OR_RETURN(const int64_t task_key, TaskKey(experiment_id, task_id, what));
    LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kInsertInterval, what));
    StatementReset reset(stmt);
    for (const IntervalRecord& r : intervals) {
      sqlite3_reset(stmt);
      Binder bind(stmt);
      bind.Int(task_key).Int(static_cast<int64_t>(r.seq)).Double(r.start_s).Double(r.end_s);
      bind.Int(static_cast<int64_t>(r.bytes_sent)).Int(static_cast<int64_t>(r.bytes_received));
      bind.Int(static_cast<int64_t>(r.messages_sent));
      bind.Int(static_cast<int64_t>(r.messages_received));
      bind.OptionalDouble(r.latency_p50_us).OptionalDouble(r.latency_p99_us);
      bind.OptionalDouble(r.latency_max_us).OptionalDouble(r.jitter_us);
      bind.Int(static_cast<int64_t>(r.errors));
      int rc = bind.rc();
      if (rc == SQLITE_OK) rc = sqlite3_step(stmt);
      if (rc != SQLITE_DONE) return Error(rc, absl::StrCat(what, ", seq ", r.seq));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<std::vector<IntervalRecord>> ResultsStore::GetIntervals(
    absl::string_view experiment_id, absl::string_view task_id) const {
  const std::string what = absl::StrCat("get intervals of ", TaskName(experiment_id, task_id));
  absl::MutexLock lock(&mu_);
  absl::StatusOr<int64_t> task_key = TaskKey(experiment_id, task_id, what);
  if (absl::IsNotFound(task_key.status())) return std::vector<IntervalRecord>{};
  if (!task_key.ok()) return task_key.status();
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kGetIntervals, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Int(*task_key).rc() != SQLITE_OK) return Error(bind.rc(), what);
  const auto optional = [&](int column) -> std::optional<double> {
    if (sqlite3_column_type(stmt, column) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_double(stmt, column);
  };
  std::vector<IntervalRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    IntervalRecord r;
    r.seq = static_cast<uint64_t>(sqlite3_column_int64(stmt, 0));
    r.start_s = sqlite3_column_double(stmt, 1);
    r.end_s = sqlite3_column_double(stmt, 2);
    r.bytes_sent = static_cast<uint64_t>(sqlite3_column_int64(stmt, 3));
    r.bytes_received = static_cast<uint64_t>(sqlite3_column_int64(stmt, 4));
    r.messages_sent = static_cast<uint64_t>(sqlite3_column_int64(stmt, 5));
    r.messages_received = static_cast<uint64_t>(sqlite3_column_int64(stmt, 6));
    r.latency_p50_us = optional(7);
    r.latency_p99_us = optional(8);
    r.latency_max_us = optional(9);
    r.jitter_us = optional(10);
    r.errors = static_cast<uint64_t>(sqlite3_column_int64(stmt, 11));
    out.push_back(r);
  }
  if (rc != SQLITE_DONE) return Error(rc, what);
  return out;
}

absl::Status ResultsStore::PutSummary(const SummaryRecord& s) {
  const std::string what = absl::StrCat("put summary of ", TaskName(s.experiment_id, s.task_id));
  LAB_RETURN_IF_ERROR(CheckNotEmpty(s.experiment_id, "experiment_id", what));
  LAB_RETURN_IF_ERROR(CheckNotEmpty(s.task_id, "task_id", what));
  LAB_RETURN_IF_ERROR(CheckHistogram(s, what));
  const std::string edges = EncodeLe64(s.edges_us);
  const std::string counts = EncodeLe64(s.bucket_counts);
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kUpsertSummary, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  bind.Text(s.experiment_id).Text(s.task_id).Text(s.summary_json).Blob(edges).Blob(counts);
  if (bind.rc() != SQLITE_OK) return Error(bind.rc(), what);
  const int rc = sqlite3_step(stmt);
  return rc == SQLITE_DONE ? absl::OkStatus() : Error(rc, what);
}

absl::StatusOr<std::vector<ExperimentRecord>> ResultsStore::ListExperiments(int limit) const {
  const std::string what = absl::StrCat("list the ", limit, " newest experiments");
  if (limit <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": limit must be > 0"));
  }
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kListExperiments, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Int(limit).rc() != SQLITE_OK) return Error(bind.rc(), what);
  std::vector<ExperimentRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) out.push_back(ReadExperiment(stmt));
  if (rc != SQLITE_DONE) return Error(rc, what);
  return out;
}

absl::StatusOr<ExperimentRecord> ResultsStore::GetExperiment(absl::string_view id) const {
  const std::string what = absl::StrCat("get experiment ", Quoted(id));
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kGetExperiment, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Text(id).rc() != SQLITE_OK) return Error(bind.rc(), what);
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_ROW) return ReadExperiment(stmt);
  if (rc != SQLITE_DONE) return Error(rc, what);
  return absl::NotFoundError(absl::StrCat(what, " in ", path_, ": no experiment ", Quoted(id)));
}

absl::StatusOr<std::vector<AgentRecord>> ResultsStore::ListAgents(
    absl::string_view experiment_id) const {
  const std::string what = absl::StrCat("list agents of experiment ", Quoted(experiment_id));
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kListAgents, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Text(experiment_id).rc() != SQLITE_OK) return Error(bind.rc(), what);
  std::vector<AgentRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    out.push_back(
        {ColumnText(stmt, 0), ColumnText(stmt, 1), ColumnText(stmt, 2), ColumnText(stmt, 3)});
  }
  if (rc != SQLITE_DONE) return Error(rc, what);
  return out;
}

absl::StatusOr<std::vector<TaskRecord>> ResultsStore::ListTasks(
    absl::string_view experiment_id) const {
  const std::string what = absl::StrCat("list tasks of experiment ", Quoted(experiment_id));
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kListTasks, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Text(experiment_id).rc() != SQLITE_OK) return Error(bind.rc(), what);
  std::vector<TaskRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    out.push_back({ColumnText(stmt, 0), ColumnText(stmt, 1), ColumnText(stmt, 2),
                   ColumnText(stmt, 3), ColumnText(stmt, 4), ColumnText(stmt, 5),
                   ColumnText(stmt, 6)});
  }
  if (rc != SQLITE_DONE) return Error(rc, what);
  return out;
}

absl::StatusOr<std::vector<SampleRecord>> ResultsStore::GetSamples(
    absl::string_view experiment_id, absl::string_view task_id) const {
  return GetSamplesAfter(experiment_id, task_id, -1, std::numeric_limits<int64_t>::max());
}

absl::StatusOr<std::vector<SampleRecord>> ResultsStore::GetSamplesAfter(
    absl::string_view experiment_id, absl::string_view task_id, int64_t after_seq,
    int64_t limit) const {
  const std::string what = absl::StrCat("get samples of ", TaskName(experiment_id, task_id));
  if (limit <= 0) return absl::InvalidArgumentError(absl::StrCat(what, ": limit must be > 0"));
  absl::MutexLock lock(&mu_);
  // A read of one task's rows: the key lookup and the rows need not be one transaction
  // (samples are only appended, and tasks never removed).
  absl::StatusOr<int64_t> task_key = TaskKey(experiment_id, task_id, what);
  if (absl::IsNotFound(task_key.status())) return std::vector<SampleRecord>{};
  if (!task_key.ok()) return task_key.status();
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kGetSamplesAfter, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Int(*task_key).Int(after_seq).Int(limit).rc() != SQLITE_OK) {
    return Error(bind.rc(), what);
  }
  std::vector<SampleRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    SampleRecord s;
    s.seq = static_cast<uint64_t>(sqlite3_column_int64(stmt, 0));
    s.send_host_ns = sqlite3_column_int64(stmt, 1);
    s.recv_host_ns = sqlite3_column_int64(stmt, 2);
    s.rtt_ns = sqlite3_column_double(stmt, 3);
    if (sqlite3_column_type(stmt, 4) != SQLITE_NULL) {
      s.measured_offset_ns = sqlite3_column_double(stmt, 4);
    }
    s.true_offset_ns = sqlite3_column_double(stmt, 5);
    s.correction_ns = sqlite3_column_int64(stmt, 6);
    s.applied = sqlite3_column_int64(stmt, 7) != 0;
    s.error_ns = sqlite3_column_double(stmt, 8);
    out.push_back(std::move(s));
  }
  if (rc != SQLITE_DONE) return Error(rc, what);
  return out;
}

absl::StatusOr<std::map<std::string, int64_t>> ResultsStore::CountExperimentsByState() const {
  const std::string what = "count experiments by state";
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kCountExperimentsByState, what));
  StatementReset reset(stmt);
  std::map<std::string, int64_t> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    out[ColumnText(stmt, 0)] = sqlite3_column_int64(stmt, 1);
  }
  if (rc != SQLITE_DONE) return Error(rc, what);
  return out;
}

absl::StatusOr<std::vector<SummaryRecord>> ResultsStore::GetSummaries(
    absl::string_view experiment_id) const {
  const std::string what = absl::StrCat("get summaries of experiment ", Quoted(experiment_id));
  absl::MutexLock lock(&mu_);
  LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kGetSummaries, what));
  StatementReset reset(stmt);
  Binder bind(stmt);
  if (bind.Text(experiment_id).rc() != SQLITE_OK) return Error(bind.rc(), what);
  std::vector<SummaryRecord> out;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    SummaryRecord s;
    s.experiment_id = ColumnText(stmt, 0);
    s.task_id = ColumnText(stmt, 1);
    s.summary_json = ColumnText(stmt, 2);
    const auto [edges, edges_size] = ColumnBlob(stmt, 3);
    s.edges_us = DecodeLe64<double>(edges, edges_size);
    const auto [counts, counts_size] = ColumnBlob(stmt, 4);
    s.bucket_counts = DecodeLe64<uint64_t>(counts, counts_size);
    out.push_back(std::move(s));
  }
  if (rc != SQLITE_DONE) return Error(rc, what);
  return out;
}

absl::StatusOr<int> ResultsStore::MarkUnfinishedInterrupted(int64_t now_ns) {
  const std::string what = "mark unfinished experiments interrupted";
  if (now_ns <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": now_ns must be > 0, got ", now_ns));
  }
  absl::MutexLock lock(&mu_);
  int changed = 0;
  LAB_RETURN_IF_ERROR(InTransaction(what, [&]() -> absl::Status {
    LAB_RETURN_IF_ERROR(Run(kLoseUnfinishedTasks, what));  // before their experiments change
    LAB_ASSIGN_OR_RETURN(sqlite3_stmt * stmt, Prepare(kInterruptExperiments, what));
    StatementReset reset(stmt);
    Binder bind(stmt);
    if (bind.Int(now_ns).rc() != SQLITE_OK) return Error(bind.rc(), what);
    const int rc = sqlite3_step(stmt);
    if (rc != SQLITE_DONE) return Error(rc, what);
    changed = sqlite3_changes(db_);
    return absl::OkStatus();
  }));
  return changed;
}

}  // namespace lab::controller
