#include "controller/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "controller/http/api_json.h"
#include "controller/service/services.h"
#include "httplib.h"
#include "nlohmann/json.hpp"
#include "rpc/credentials.h"

namespace lab::controller {

namespace {

// With the charset, httplib does not compress the API's JSON: on the lab's own network
// compression costs more time than it saves (0.9 MB of samples: 0.55 s plain, 0.8 s gzip).
constexpr char kJson[] = "application/json; charset=utf-8";

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
      return 409;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kResourceExhausted:
      return 503;
    default:
      return 500;
  }
}

const char* StatusName(int http_status) {
  switch (http_status) {
    case 400:
      return "INVALID_ARGUMENT";
    case 404:
      return "NOT_FOUND";
    case 405:
      return "METHOD_NOT_ALLOWED";
    case 409:
      return "FAILED_PRECONDITION";
    case 503:
      return "UNAVAILABLE";
    default:
      return "INTERNAL";
  }
}

// JSON text that never throws: strings from the request (a path with %FF in it) or the store
// need not be UTF-8, and invalid sequences become U+FFFD.
std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SendJson(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_header("Cache-Control", "no-store");
  res.set_content(Dump(body), kJson);
}

void SendError(httplib::Response& res, int status, const std::string& message) {
  SendJson(res, status,
           {{"error", {{"code", status}, {"status", StatusName(status)}, {"message", message}}}});
}

void SendStatus(httplib::Response& res, const absl::Status& status) {
  SendError(res, HttpStatusFor(status.code()), std::string(status.message()));
}

absl::Status UnknownExperiment(const std::string& id) {
  return absl::NotFoundError(
      absl::StrCat("no experiment '", id, "'; list them at /api/v1/experiments"));
}

// The integer query parameter `name`, `fallback` when absent; InvalidArgument unless it is 0
// (when `zero_ok`) or within [min, max].
absl::StatusOr<int64_t> IntParam(const httplib::Request& req, const char* name, int64_t fallback,
                                 int64_t min, int64_t max, bool zero_ok) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  int64_t value = 0;
  if (!absl::SimpleAtoi(text, &value) ||
      ((value < min || value > max) && !(zero_ok && value == 0))) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be ", zero_ok ? "0 or " : "",
                                                   "an integer in [", min, ", ", max, "], got '",
                                                   text, "'"));
  }
  return value;
}

bool IsTerminal(const std::string& experiment_state) { return experiment_state != "running"; }

// Whether a Host header names loopback: "localhost", 127.x.y.z or [::1], with or without a
// port. An absent header (HTTP/1.0 clients) is accepted: it names nothing to rebind.
bool LoopbackHostHeader(const std::string& host_header) {
  if (host_header.empty()) return true;
  std::string host = host_header;
  if (host.front() == '[') {
    host = host.substr(0, host.find(']') + 1);
  } else if (const auto colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  in_addr v4{};
  const bool loopback_v4 =
      inet_pton(AF_INET, host.c_str(), &v4) == 1 && (ntohl(v4.s_addr) >> 24) == 127;
  return host == "localhost" || host == "[::1]" || loopback_v4;
}

// Where a live stream's reader is: per client task, the last seq sent and how many samples.
struct Cursor {
  int64_t last_seq = -1;
  uint64_t count = 0;
};

// "task:last_seq:count,…", the SSE event id.
std::string EncodeCursors(const std::map<std::string, Cursor>& cursors) {
  std::vector<std::string> parts;
  for (const auto& [task, c] : cursors)
    parts.push_back(absl::StrCat(task, ":", c.last_seq, ":", c.count));
  return absl::StrJoin(parts, ",");
}

// The inverse of EncodeCursors; malformed parts are ignored (the reader then gets them again).
std::map<std::string, Cursor> DecodeCursors(const std::string& text) {
  std::map<std::string, Cursor> out;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipEmpty())) {
    std::vector<std::string> fields = absl::StrSplit(part, ':');
    Cursor c;
    if (fields.size() == 3 && !fields[0].empty() && absl::SimpleAtoi(fields[1], &c.last_seq) &&
        absl::SimpleAtoi(fields[2], &c.count) && c.last_seq >= -1) {
      out[fields[0]] = c;
    }
  }
  return out;
}

// One open /events stream.
struct LiveStream {
  std::string experiment_id;
  bool resumed = false;  // the reader sent Last-Event-ID
  bool started = false;
  std::map<std::string, Cursor> cursors;
  std::string last_progress;
  std::chrono::steady_clock::time_point last_write;
};

// How many samples one poll sends per task at most (a reader resuming after a long gap gets
// the rest on the next polls).
constexpr int64_t kSamplesPerPoll = 50'000;
// How far out of seq order a reply may arrive and still be streamed in order (probes).
constexpr uint64_t kReorderWindow = 16;

}  // namespace

std::string DefaultWebRoot() {
  namespace fs = std::filesystem;
  std::vector<fs::path> candidates;
  if (const char* env = std::getenv("LAB_WEB_ROOT"); env != nullptr && *env != '\0') {
    candidates.emplace_back(env);
  }
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    candidates.push_back(exe.parent_path() / ".." / ".." / "web");
    candidates.push_back(exe.parent_path() / ".." / "share" / "lab" / "web");
  }
  candidates.emplace_back("web");
  for (const fs::path& dir : candidates) {
    if (fs::exists(dir / "index.html", ec)) return fs::weakly_canonical(dir, ec).string();
  }
  return "";
}

struct DashboardServer::Impl {
  DashboardOptions options;
  const ResultsStore& store;
  const ExperimentRunner& runner;
  const AgentRegistry& registry;
  ControllerMetrics& metrics;
  std::shared_ptr<spdlog::logger> logger;
  httplib::Server server;
  std::thread thread;
  int port = 0;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;  // guarded by mu
  std::atomic<int> open_streams{0};

  // /samples answers for finished runs (which never change), most recent last: a dashboard
  // switching columns or comparing runs does not reread 100 000s of rows each time.
  static constexpr std::size_t kCachedAnswers = 16;
  static constexpr std::size_t kMaxCachedAnswerBytes = 4 << 20;  // at most 64 MiB in all
  std::mutex cache_mu;
  std::vector<std::pair<std::string, std::string>> cache;  // guarded by cache_mu
  std::optional<std::string> Cached(const std::string& key);
  void Remember(std::string key, std::string body);

  Impl(DashboardOptions o, const ResultsStore& s, const ExperimentRunner& r, const AgentRegistry& g,
       ControllerMetrics& m, std::shared_ptr<spdlog::logger> l)
      : options(std::move(o)), store(s), runner(r), registry(g), metrics(m), logger(std::move(l)) {}

  void Routes();
  void ServeStatic();
  void ListExperiments(const httplib::Request& req, httplib::Response& res);
  void GetExperiment(const std::string& id, httplib::Response& res);
  void GetSamples(const std::string& id, const httplib::Request& req, httplib::Response& res);
  void Export(const std::string& id, httplib::Response& res);
  void Events(const std::string& id, const httplib::Request& req, httplib::Response& res);
  // One poll of a live stream: writes what is new. Returns whether the stream is finished
  // (the run ended and everything was sent), or an error when the store failed.
  absl::StatusOr<bool> Poll(LiveStream& stream, httplib::DataSink& sink, bool& write_failed);
  // Waits one poll interval; false when the server is stopping.
  bool WaitPoll();
};

void DashboardServer::Impl::Routes() {
  server.Get("/api/v1/health", [](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, {{"status", "ok"}});
  });
  server.Get("/api/v1/agents", [this](const httplib::Request&, httplib::Response& res) {
    SendJson(res, 200, AgentsJson(registry.List()));
  });
  server.Get("/api/v1/experiments", [this](const httplib::Request& req, httplib::Response& res) {
    ListExperiments(req, res);
  });
  server.Get(R"(/api/v1/experiments/([^/]+))",
             [this](const httplib::Request& req, httplib::Response& res) {
               GetExperiment(req.matches[1], res);
             });
  server.Get(R"(/api/v1/experiments/([^/]+)/samples)",
             [this](const httplib::Request& req, httplib::Response& res) {
               GetSamples(req.matches[1], req, res);
             });
  server.Get(R"(/api/v1/experiments/([^/]+)/intervals)",
             [this](const httplib::Request& req, httplib::Response& res) {
               auto body = IntervalsJson(store, req.matches[1]);
               if (absl::IsNotFound(body.status())) {
                 return SendStatus(res, UnknownExperiment(req.matches[1]));
               }
               if (!body.ok()) return SendStatus(res, body.status());
               SendJson(res, 200, *body);
             });
  server.Get(
      R"(/api/v1/experiments/([^/]+)/export\.csv)",
      [this](const httplib::Request& req, httplib::Response& res) { Export(req.matches[1], res); });
  server.Get(R"(/api/v1/experiments/([^/]+)/events)",
             [this](const httplib::Request& req, httplib::Response& res) {
               Events(req.matches[1], req, res);
             });
  server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    auto counts = store.CountExperimentsByState();
    if (!counts.ok()) return SendStatus(res, counts.status());
    res.set_content(metrics.Render(static_cast<int64_t>(registry.List().size()), *counts),
                    "text/plain; version=0.0.4; charset=utf-8");
  });
  const auto not_allowed = [](const httplib::Request& req, httplib::Response& res) {
    res.set_header("Allow", "GET, HEAD");
    SendError(res, 405,
              absl::StrCat(req.method, " is not allowed on ", req.path,
                           "; the API is read-only (GET): start runs with labctl run"));
  };
  server.Post(".*", not_allowed);
  server.Put(".*", not_allowed);
  server.Delete(".*", not_allowed);
  server.Patch(".*", not_allowed);
  // A handler that throws (a bug) answers 500 in JSON instead of ending the process.
  server.set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr error) {
        std::string what = "unknown error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendError(res, 500, absl::StrCat("internal error answering ", req.path, ": ", what));
      });
  const httplib::Server::HandlerWithResponse on_error = [](const httplib::Request& req,
                                                           httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    if (res.status == 404) {
      SendError(res, 404,
                absl::StrCat("nothing at ", req.path,
                             "; the API is under /api/v1/ (see docs/http-api.md)"));
    } else {
      SendError(res, res.status, absl::StrCat("request failed with HTTP ", res.status));
    }
    return httplib::Server::HandlerResponse::Handled;
  };
  server.set_error_handler(on_error);
}

void DashboardServer::Impl::ServeStatic() {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path root = options.web_root;
  if (!options.web_root.empty() && fs::exists(root / "index.html", ec)) {
    const fs::path vendor = root / "node_modules" / "uplot" / "dist";
    if (!server.set_mount_point("/vendor/uplot", vendor.string())) {
      logger->warn("the chart library is missing ({}): run scripts/setup (npm ci in web/)",
                   vendor.string());
    }
    server.set_mount_point("/", root.string());
    server.set_file_request_handler([](const httplib::Request&, httplib::Response& res) {
      res.set_header("X-Content-Type-Options", "nosniff");
      res.set_header("Cache-Control", "no-cache");
    });
    return;
  }
  const std::string why = options.web_root.empty()
                              ? std::string("no web root was found")
                              : absl::StrCat("there is no index.html in ", options.web_root);
  logger->warn("dashboard files not served: {}; the API still is", why);
  server.Get("/", [why](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_content(absl::StrCat("The dashboard's files are not available: ", why,
                                 ".\nStart lab-controller with --web-root PATH/TO/web, or set "
                                 "LAB_WEB_ROOT. The JSON API is at /api/v1/experiments.\n"),
                    "text/plain; charset=utf-8");
  });
}

void DashboardServer::Impl::ListExperiments(const httplib::Request& req, httplib::Response& res) {
  auto limit = IntParam(req, "limit", 50, 1, 1000, false);
  if (!limit.ok()) return SendStatus(res, limit.status());
  auto list = store.ListExperiments(static_cast<int>(*limit));
  if (!list.ok()) return SendStatus(res, list.status());
  nlohmann::json out = nlohmann::json::array();
  for (const ExperimentRecord& e : *list) {
    auto tasks = store.ListTasks(e.id);
    if (!tasks.ok()) return SendStatus(res, tasks.status());
    out.push_back(ExperimentListingJson(e, *tasks));
  }
  SendJson(res, 200, {{"experiments", out}});
}

void DashboardServer::Impl::GetExperiment(const std::string& id, httplib::Response& res) {
  auto detail = ExperimentDetailJson(store, runner, id);
  if (absl::IsNotFound(detail.status())) return SendStatus(res, UnknownExperiment(id));
  if (!detail.ok()) return SendStatus(res, detail.status());
  SendJson(res, 200, *detail);
}

std::optional<std::string> DashboardServer::Impl::Cached(const std::string& key) {
  std::lock_guard<std::mutex> lock(cache_mu);
  for (auto it = cache.begin(); it != cache.end(); ++it) {
    if (it->first != key) continue;
    std::rotate(it, it + 1, cache.end());  // now the most recent
    return cache.back().second;
  }
  return std::nullopt;
}

void DashboardServer::Impl::Remember(std::string key, std::string body) {
  std::lock_guard<std::mutex> lock(cache_mu);
  if (cache.size() == kCachedAnswers) cache.erase(cache.begin());
  cache.emplace_back(std::move(key), std::move(body));
}

void DashboardServer::Impl::GetSamples(const std::string& id, const httplib::Request& req,
                                       httplib::Response& res) {
  auto max_points = IntParam(req, "max_points", static_cast<int64_t>(options.default_max_points),
                             100, 1'000'000, true);
  if (!max_points.ok()) return SendStatus(res, max_points.status());
  auto keep = ParseKeepColumn(req.has_param("keep") ? req.get_param_value("keep") : "error");
  if (!keep.ok()) return SendStatus(res, keep.status());
  auto experiment = store.GetExperiment(id);
  if (absl::IsNotFound(experiment.status())) return SendStatus(res, UnknownExperiment(id));
  if (!experiment.ok()) return SendStatus(res, experiment.status());
  std::vector<std::string> wanted;
  for (std::size_t i = 0; i < req.get_param_value_count("task"); ++i) {
    wanted.push_back(req.get_param_value("task", i));
  }
  const bool finished = IsTerminal(experiment->state);
  const std::string key = absl::StrCat(id, "|", *max_points, "|", static_cast<int>(*keep), "|",
                                       absl::StrJoin(wanted, ","));
  if (finished) {
    if (std::optional<std::string> body = Cached(key)) {
      res.set_header("Cache-Control", "no-store");
      res.set_content(*body, kJson);
      return;
    }
  }
  auto tasks = store.ListTasks(id);
  if (!tasks.ok()) return SendStatus(res, tasks.status());
  for (const std::string& w : wanted) {
    bool known = false;
    for (const TaskRecord& t : *tasks) known = known || (t.task_id == w && t.role == "client");
    if (!known) {
      std::vector<std::string> names;
      for (const TaskRecord& t : *tasks) {
        if (t.role == "client") names.push_back(t.task_id);
      }
      return SendError(res, 400,
                       absl::StrCat("task '", w, "' is not a client of ", id,
                                    "; its clients: ", absl::StrJoin(names, ", ")));
    }
  }
  nlohmann::json list = nlohmann::json::array();
  bool downsampled = false;
  for (const TaskRecord& t : *tasks) {
    if (t.role != "client") continue;
    if (!wanted.empty() && std::find(wanted.begin(), wanted.end(), t.task_id) == wanted.end()) {
      continue;
    }
    auto samples = store.GetSamples(id, t.task_id);
    if (!samples.ok()) return SendStatus(res, samples.status());
    const std::vector<std::size_t> chosen =
        ChooseSamples(*samples, static_cast<std::size_t>(*max_points), *keep);
    downsampled = downsampled || chosen.size() < samples->size();
    nlohmann::json task = SampleColumns(*samples, &chosen, experiment->created_ns);
    task["task_id"] = t.task_id;
    task["scheme"] = t.scheme;
    task["agent"] = t.agent_name;
    task["stored"] = samples->size();
    task["points"] = chosen.size();
    list.push_back(std::move(task));
  }
  const nlohmann::json body = {{"experiment_id", id},
                               {"created_ns", experiment->created_ns},
                               {"downsampled", downsampled},
                               {"tasks", std::move(list)}};
  SendJson(res, 200, body);
  if (finished && res.body.size() <= kMaxCachedAnswerBytes) Remember(key, res.body);
}

void DashboardServer::Impl::Export(const std::string& id, httplib::Response& res) {
  auto csv = ExportExperiment(store, runner, id, "csv");
  if (absl::IsNotFound(csv.status())) return SendStatus(res, UnknownExperiment(id));
  if (!csv.ok()) return SendStatus(res, csv.status());
  res.set_header("Content-Disposition", absl::StrCat("attachment; filename=\"", id, ".csv\""));
  res.set_header("Cache-Control", "no-store");
  res.set_content(*csv, "text/csv; charset=utf-8");
}

void DashboardServer::Impl::Events(const std::string& id, const httplib::Request& req,
                                   httplib::Response& res) {
  auto experiment = store.GetExperiment(id);
  if (absl::IsNotFound(experiment.status())) return SendStatus(res, UnknownExperiment(id));
  if (!experiment.ok()) return SendStatus(res, experiment.status());
  if (open_streams.fetch_add(1) >= options.max_streams) {
    open_streams.fetch_sub(1);
    return SendError(res, 503,
                     absl::StrCat("too many live streams open (", options.max_streams,
                                  "); close some dashboard tabs and retry"));
  }
  auto stream = std::make_shared<LiveStream>();
  stream->experiment_id = id;
  if (req.has_header("Last-Event-ID")) {
    stream->cursors = DecodeCursors(req.get_header_value("Last-Event-ID"));
    stream->resumed = true;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, stream](std::size_t, httplib::DataSink& sink) {
        if (stream->started && !WaitPoll()) {
          sink.done();
          return true;
        }
        stream->started = true;
        bool write_failed = false;
        absl::StatusOr<bool> finished;
        try {  // httplib calls this outside its own exception handling
          finished = Poll(*stream, sink, write_failed);
        } catch (const std::exception& e) {
          finished = absl::InternalError(absl::StrCat("the live stream failed: ", e.what()));
        }
        if (write_failed) return false;  // the reader went away
        if (!finished.ok()) {
          // Not "error": that name is EventSource's own event for a lost connection.
          const std::string event = absl::StrCat(
              "event: failure\ndata: ",
              Dump(nlohmann::json{{"message", std::string(finished.status().message())}}), "\n\n");
          sink.write(event.data(), event.size());
          sink.done();
          return true;
        }
        if (*finished) sink.done();
        return true;
      },
      [this](bool) { open_streams.fetch_sub(1); });
}

bool DashboardServer::Impl::WaitPoll() {
  std::unique_lock<std::mutex> lock(mu);
  return !cv.wait_for(lock, std::chrono::nanoseconds(options.poll_interval_ns),
                      [this] { return stopping; });
}

absl::StatusOr<bool> DashboardServer::Impl::Poll(LiveStream& stream, httplib::DataSink& sink,
                                                 bool& write_failed) {
  const auto write = [&](const std::string& text) {
    if (write_failed) return;
    write_failed = !sink.write(text.data(), text.size());
    stream.last_write = std::chrono::steady_clock::now();
  };
  const bool first = stream.last_progress.empty();
  // The state first: when it is final, the samples read after it are all there will be.
  auto experiment = store.GetExperiment(stream.experiment_id);
  if (!experiment.ok()) return experiment.status();
  auto tasks = store.ListTasks(stream.experiment_id);
  if (!tasks.ok()) return tasks.status();
  const uint64_t total = ProbesPerClient(*experiment);

  nlohmann::json sample_tasks = nlohmann::json::array();
  bool more = false;  // a task had more samples than one poll sends
  const bool running = !IsTerminal(experiment->state);
  for (const TaskRecord& t : *tasks) {
    if (t.role != "client") continue;
    Cursor& cursor = stream.cursors[t.task_id];
    const bool snapshot = first && !stream.resumed;
    const int64_t limit = snapshot ? std::numeric_limits<int64_t>::max() : kSamplesPerPoll;
    auto samples = store.GetSamplesAfter(stream.experiment_id, t.task_id, cursor.last_seq, limit);
    if (!samples.ok()) return samples.status();
    const bool caught_up = static_cast<int64_t>(samples->size()) < limit;
    more = more || !caught_up;
    // Replies can arrive out of order: while the run goes on, the newest kReorderWindow seqs
    // wait for the next poll, so a reordered reply still goes out in seq order.
    if (running && caught_up && !samples->empty()) {
      const uint64_t newest = samples->back().seq;
      while (!samples->empty() && samples->back().seq + kReorderWindow > newest) {
        samples->pop_back();
      }
    }
    if (samples->empty()) continue;
    std::vector<std::size_t> chosen;
    if (snapshot) chosen = ChooseSamples(*samples, options.default_max_points, KeepColumn::kError);
    nlohmann::json columns =
        SampleColumns(*samples, snapshot ? &chosen : nullptr, experiment->created_ns);
    columns["task_id"] = t.task_id;
    columns["scheme"] = t.scheme;
    // Set when this first batch was thinned to its extremes (a big run joined mid-way).
    columns["downsampled"] = snapshot && chosen.size() < samples->size();
    sample_tasks.push_back(std::move(columns));
    cursor.last_seq = static_cast<int64_t>(samples->back().seq);
    cursor.count += samples->size();
  }
  if (!sample_tasks.empty()) {
    write(absl::StrCat("id: ", EncodeCursors(stream.cursors), "\nevent: samples\ndata: ",
                       Dump(nlohmann::json{{"created_ns", experiment->created_ns},
                                           {"tasks", std::move(sample_tasks)}}),
                       "\n\n"));
  }

  nlohmann::json progress_tasks = nlohmann::json::array();
  for (const TaskRecord& t : *tasks) {
    const auto it = stream.cursors.find(t.task_id);
    const Cursor c = it == stream.cursors.end() ? Cursor{} : it->second;
    progress_tasks.push_back({{"task_id", t.task_id},
                              {"scheme", t.scheme},
                              {"agent", t.agent_name},
                              {"role", t.role},
                              {"state", t.state},
                              {"progress", t.role == "client" ? c.count : 0},
                              {"total", t.role == "client" ? total : 0},
                              {"detail", t.detail}});
  }
  const std::string progress =
      Dump(nlohmann::json{{"state", experiment->state}, {"tasks", progress_tasks}});
  if (progress != stream.last_progress) {
    write(absl::StrCat("event: progress\ndata: ", progress, "\n\n"));
    stream.last_progress = progress;
  }
  if (!running && !more) {
    write(absl::StrCat("event: end\ndata: ", Dump(nlohmann::json{{"state", experiment->state}}),
                       "\n\n"));
    return true;
  }
  if (std::chrono::steady_clock::now() - stream.last_write >
      std::chrono::nanoseconds(options.keepalive_interval_ns)) {
    write(": keepalive\n\n");
  }
  return false;
}

DashboardServer::DashboardServer(DashboardOptions options, const ResultsStore& store,
                                 const ExperimentRunner& runner, const AgentRegistry& registry,
                                 ControllerMetrics& metrics, std::shared_ptr<spdlog::logger> logger)
    : impl_(std::make_unique<Impl>(std::move(options), store, runner, registry, metrics,
                                   std::move(logger))) {}

DashboardServer::~DashboardServer() { Stop(); }

absl::StatusOr<int> DashboardServer::Start() {
  Impl& d = *impl_;
  std::string host = d.options.host;
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (!d.options.insecure && !rpc::IsLoopbackAddress(absl::StrCat(d.options.host, ":0"))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to serve HTTP on ", d.options.host,
        " beyond loopback without TLS; use --http 127.0.0.1:PORT, or pass --insecure on a "
        "trusted network"));
  }
  // httplib's default also sets SO_REUSEPORT, which would let a second controller share the
  // port (the kernel splitting requests between them); a taken port must fail instead.
  d.server.set_socket_options([](socket_t sock) {
    const int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  // Debian's cpp-httplib answers "Accept-Encoding: br" (every browser sends it) at Brotli's
  // slowest quality: seconds per megabyte. Offer it gzip at most. (The request is ours to
  // change: httplib hands it over as const, but owns it as a mutable local.)
  const bool check_host = !d.options.insecure;
  d.server.set_pre_routing_handler([check_host](const httplib::Request& req,
                                                httplib::Response& res) {
    if (check_host && !LoopbackHostHeader(req.get_header_value("Host"))) {
      SendError(res, 403,
                absl::StrCat("Host '", req.get_header_value("Host"),
                             "' is not this loopback server; open it as 127.0.0.1 or localhost"));
      return httplib::Server::HandlerResponse::Handled;
    }
    auto& headers = const_cast<httplib::Headers&>(req.headers);
    if (auto it = headers.find("Accept-Encoding"); it != headers.end()) {
      it->second = it->second.find("gzip") != std::string::npos ? "gzip" : "identity";
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  d.server.set_payload_max_length(64 * 1024);  // the API takes no bodies
  const int threads = d.options.threads;
  d.server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  d.Routes();
  d.ServeStatic();
  d.port = d.options.port == 0
               ? d.server.bind_to_any_port(host)
               : (d.server.bind_to_port(host, d.options.port) ? d.options.port : -1);
  if (d.port <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen for HTTP on ", d.options.host, ":",
                                               d.options.port,
                                               " (in use? pick another with --http HOST:PORT)"));
  }
  d.thread = std::thread([&d] { d.server.listen_after_bind(); });
  // Stop() only takes effect once the server runs: wait for that (it takes microseconds).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!d.server.is_running() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  d.logger->info("dashboard on {}", BaseUrl());
  return d.port;
}

void DashboardServer::Stop() {
  Impl& d = *impl_;
  {
    std::lock_guard<std::mutex> lock(d.mu);
    if (d.stopping) return;
    d.stopping = true;
  }
  d.cv.notify_all();
  d.server.stop();
  if (d.thread.joinable()) d.thread.join();
}

int DashboardServer::port() const { return impl_->port > 0 ? impl_->port : 0; }

std::string DashboardServer::BaseUrl() const {
  const std::string& host = impl_->options.host;
  const bool v6 = host.find(':') != std::string::npos && host.front() != '[';
  return absl::StrCat("http://", v6 ? "[" : "", host, v6 ? "]" : "", ":", impl_->port, "/");
}

}  // namespace lab::controller
