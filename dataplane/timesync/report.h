// Per-client statistics of a time-sync run: what `labnet ts-client --output json` prints and
// what the controller stores. Computed from a ClientCore's records after the run.
#ifndef DATAPLANE_TIMESYNC_REPORT_H_
#define DATAPLANE_TIMESYNC_REPORT_H_

#include <cstdint>
#include <optional>
#include <span>
#include <string>

#include "dataplane/timesync/client_core.h"
#include "dataplane/timesync/histogram.h"
#include "dataplane/timesync/scheme.h"
#include "nlohmann/json.hpp"

namespace lab::timesync {

struct SummaryOptions {
  // A client has converged at the first answered probe from which at least
  // `converge_fraction` of the remaining ones (and that probe itself) have |error| within
  // `converge_threshold_ns`, over at least max(5, 10 %) of the run.
  double converge_threshold_ns = 10'000;
  double converge_fraction = 0.95;
};

struct ClientSummary {
  Scheme scheme = Scheme::kRaw;
  std::string params;  // SchemeParams::Describe()
  uint32_t client_id = 0;
  ClientCounters counters;
  uint64_t lost = 0;  // sent - received
  // "kernel" when every reply had kernel receive stamps at both ends, else "user".
  std::string timestamping = "user";
  bool converged = false;
  double converged_after_ms = 0;  // since the first probe; meaningless unless converged
  std::size_t samples = 0;        // answered probes the error statistics cover
  struct {
    double p50 = 0, p99 = 0, mean = 0, min = 0, max = 0;
  } rtt_us;
  // Residual error (virtual minus host clock) over the samples after convergence (over all
  // of them when the client never converged).
  struct {
    double mean = 0, stddev = 0, rms = 0, abs_p50 = 0, abs_p95 = 0, abs_p99 = 0, max_abs = 0;
  } error_us;
  // Error of the raw four-timestamp offset measurements, the noise floor a filter works
  // against (binary replies only).
  std::optional<double> noise_abs_p50_us, noise_abs_p99_us;
  Histogram error_histogram{ErrorEdgesUs()};  // microseconds, post-convergence samples
  Histogram rtt_histogram{RttEdgesUs()};      // microseconds, all samples
};

ClientSummary Summarize(const ClientCore& client, const SummaryOptions& options);

// The JSON object of one client (field names are a stable contract; see README).
nlohmann::json SummaryToJson(const ClientSummary& summary);
// A side-by-side table of several clients, one column per client, for terminals, from their
// JSON objects (SummaryToJson, possibly with "agent" and "state" added, as the controller
// does). Missing fields show as "-", so a client lost mid-run still gets its column.
std::string FormatSummaryTable(std::span<const nlohmann::json> summaries);
// One CSV line per record, with a header line.
std::string RecordsToCsv(const ClientCore& client);

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_REPORT_H_
