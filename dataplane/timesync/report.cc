#include "dataplane/timesync/report.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"

namespace lab::timesync {

namespace {

// Nearest-rank quantile of an ascending vector (q in [0, 1]); 0 when empty.
double Quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const std::size_t rank = static_cast<std::size_t>(std::ceil(q * sorted.size()));
  return sorted[std::clamp<std::size_t>(rank, 1, sorted.size()) - 1];
}

// Index of the first record from which the run counts as converged, or nullopt.
std::optional<std::size_t> ConvergenceIndex(const std::vector<PacketRecord>& records,
                                            const SummaryOptions& options) {
  const std::size_t n = records.size();
  if (n == 0) return std::nullopt;
  const std::size_t min_tail = std::max<std::size_t>(std::min<std::size_t>(5, n), n / 10);
  std::vector<std::size_t> inside_from(n + 1, 0);  // within threshold in [i, n)
  for (std::size_t i = n; i-- > 0;) {
    inside_from[i] =
        inside_from[i + 1] + (std::abs(records[i].error_ns) <= options.converge_threshold_ns);
  }
  for (std::size_t i = 0; i + min_tail <= n; ++i) {
    if (std::abs(records[i].error_ns) > options.converge_threshold_ns) continue;
    const double fraction = static_cast<double>(inside_from[i]) / static_cast<double>(n - i);
    if (fraction >= options.converge_fraction) return i;
  }
  return std::nullopt;
}

}  // namespace

ClientSummary Summarize(const ClientCore& client, const SummaryOptions& options) {
  ClientSummary s;
  const auto& records = client.records();
  s.scheme = client.options().params.scheme;
  s.params = client.options().params.Describe();
  s.client_id = client.options().client_id;
  s.counters = client.counters();
  s.lost = s.counters.sent - s.counters.received;

  bool all_kernel = !records.empty();
  std::vector<double> rtts;
  std::vector<double> noise;
  for (const PacketRecord& r : records) {
    all_kernel = all_kernel && r.server_kernel_timestamp && r.client_kernel_timestamp;
    rtts.push_back(r.rtt_ns / 1e3);
    s.rtt_histogram.Add(r.rtt_ns / 1e3);
    if (r.measured_offset_ns)
      noise.push_back(std::abs(*r.measured_offset_ns - r.true_offset_ns) / 1e3);
  }
  s.timestamping = all_kernel ? "kernel" : "user";
  std::sort(rtts.begin(), rtts.end());
  if (!rtts.empty()) {
    s.rtt_us.p50 = Quantile(rtts, 0.50);
    s.rtt_us.p99 = Quantile(rtts, 0.99);
    s.rtt_us.min = rtts.front();
    s.rtt_us.max = rtts.back();
    double sum = 0;
    for (double v : rtts) sum += v;
    s.rtt_us.mean = sum / rtts.size();
  }
  if (!noise.empty()) {
    std::sort(noise.begin(), noise.end());
    s.noise_abs_p50_us = Quantile(noise, 0.50);
    s.noise_abs_p99_us = Quantile(noise, 0.99);
  }

  const std::optional<std::size_t> start = ConvergenceIndex(records, options);
  s.converged = start.has_value();
  const std::size_t first = start.value_or(0);
  if (s.converged) {  // there are records, so there was a first probe
    s.converged_after_ms =
        static_cast<double>(records[first].recv_host_ns - *client.first_send_host_ns()) / 1e6;
  }
  std::vector<double> abs_errors;
  double sum = 0, sum_sq = 0;
  for (std::size_t i = first; i < records.size(); ++i) {
    const double e = records[i].error_ns / 1e3;
    s.error_histogram.Add(e);
    abs_errors.push_back(std::abs(e));
    sum += e;
    sum_sq += e * e;
  }
  s.samples = abs_errors.size();
  if (!abs_errors.empty()) {
    const double n = static_cast<double>(abs_errors.size());
    std::sort(abs_errors.begin(), abs_errors.end());
    s.error_us.mean = sum / n;
    s.error_us.rms = std::sqrt(sum_sq / n);
    s.error_us.stddev = std::sqrt(std::max(0.0, sum_sq / n - s.error_us.mean * s.error_us.mean));
    s.error_us.abs_p50 = Quantile(abs_errors, 0.50);
    s.error_us.abs_p95 = Quantile(abs_errors, 0.95);
    s.error_us.abs_p99 = Quantile(abs_errors, 0.99);
    s.error_us.max_abs = abs_errors.back();
  }
  return s;
}

nlohmann::json SummaryToJson(const ClientSummary& s) {
  nlohmann::json j;
  j["scheme"] = std::string(SchemeName(s.scheme));
  j["params"] = s.params;
  j["client_id"] = s.client_id;
  j["sent"] = s.counters.sent;
  j["received"] = s.counters.received;
  j["lost"] = s.lost;
  j["late"] = s.counters.late;
  j["duplicates"] = s.counters.duplicates;
  j["malformed"] = s.counters.malformed;
  j["invalid_params"] = s.counters.invalid_params;
  j["timestamping"] = s.timestamping;
  j["truth_known"] = true;  // client and server share the host clock
  j["converged"] = s.converged;
  j["converged_after_ms"] = s.converged ? nlohmann::json(s.converged_after_ms) : nullptr;
  j["samples"] = s.samples;
  j["rtt_us"] = {{"p50", s.rtt_us.p50},
                 {"p99", s.rtt_us.p99},
                 {"mean", s.rtt_us.mean},
                 {"min", s.rtt_us.min},
                 {"max", s.rtt_us.max}};
  j["error_us"] = {{"mean", s.error_us.mean},       {"stddev", s.error_us.stddev},
                   {"rms", s.error_us.rms},         {"abs_p50", s.error_us.abs_p50},
                   {"abs_p95", s.error_us.abs_p95}, {"abs_p99", s.error_us.abs_p99},
                   {"max_abs", s.error_us.max_abs}};
  if (s.noise_abs_p50_us) {
    j["noise_floor_us"] = {{"abs_p50", *s.noise_abs_p50_us}, {"abs_p99", *s.noise_abs_p99_us}};
  } else {
    j["noise_floor_us"] = nullptr;
  }
  const auto histogram = [](const Histogram& h) {
    nlohmann::json out;
    out["edges_us"] = std::vector<double>(h.edges().begin(), h.edges().end());
    out["counts"] = h.Cumulative();
    out["cumulative"] = true;
    out["count"] = h.count();
    out["min_us"] = h.count() ? nlohmann::json(h.min()) : nullptr;
    out["max_us"] = h.count() ? nlohmann::json(h.max()) : nullptr;
    return out;
  };
  j["histogram"] = histogram(s.error_histogram);
  j["rtt_histogram"] = histogram(s.rtt_histogram);
  return j;
}

namespace {

// A number field of a summary object (nested with a '/': "error_us/rms"), or nullopt.
std::optional<double> Number(const nlohmann::json& j, absl::string_view path) {
  const nlohmann::json* node = &j;
  for (absl::string_view key : absl::StrSplit(path, '/')) {
    if (!node->is_object()) return std::nullopt;
    const auto it = node->find(std::string(key));
    if (it == node->end()) return std::nullopt;
    node = &*it;
  }
  if (!node->is_number()) return std::nullopt;
  return node->get<double>();
}

std::string Text(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string("-");
}

std::string Fixed(std::optional<double> v, int decimals) {
  return v ? absl::StrFormat("%.*f", decimals, *v) : std::string("-");
}

}  // namespace

std::string FormatSummaryTable(std::span<const nlohmann::json> summaries) {
  using Cell = std::function<std::string(const nlohmann::json&)>;
  const auto us = [](const char* path) {
    return Cell([path](const nlohmann::json& j) { return Fixed(Number(j, path), 2); });
  };
  std::vector<std::pair<std::string, Cell>> rows = {
      {"scheme", [](const nlohmann::json& j) { return absl::AsciiStrToUpper(Text(j, "scheme")); }},
  };
  const bool any_agent = std::any_of(summaries.begin(), summaries.end(),
                                     [](const nlohmann::json& j) { return j.contains("agent"); });
  if (any_agent) {
    rows.push_back({"agent", [](const nlohmann::json& j) { return Text(j, "agent"); }});
    rows.push_back({"state", [](const nlohmann::json& j) { return Text(j, "state"); }});
  }
  const std::vector<std::pair<std::string, Cell>> common = {
      {"sent / received",
       [](const nlohmann::json& j) {
         return absl::StrCat(Fixed(Number(j, "sent"), 0), " / ", Fixed(Number(j, "received"), 0));
       }},
      {"lost", [](const nlohmann::json& j) { return Fixed(Number(j, "lost"), 0); }},
      {"timestamps", [](const nlohmann::json& j) { return Text(j, "timestamping"); }},
      {"converged after ms",
       [](const nlohmann::json& j) {
         if (!j.contains("converged")) return std::string("-");
         return j.value("converged", false) ? Fixed(Number(j, "converged_after_ms"), 1)
                                            : std::string("never");
       }},
      {"rtt p50 / p99 us",
       [](const nlohmann::json& j) {
         return absl::StrCat(Fixed(Number(j, "rtt_us/p50"), 1), " / ",
                             Fixed(Number(j, "rtt_us/p99"), 1));
       }},
      {"error mean us", us("error_us/mean")},
      {"error rms us", us("error_us/rms")},
      {"|error| p50 us", us("error_us/abs_p50")},
      {"|error| p95 us", us("error_us/abs_p95")},
      {"|error| p99 us", us("error_us/abs_p99")},
      {"|error| max us", us("error_us/max_abs")},
      {"noise floor p99 us", us("noise_floor_us/abs_p99")},
      {"parameters", [](const nlohmann::json& j) { return Text(j, "params"); }},
  };
  rows.insert(rows.end(), common.begin(), common.end());

  std::size_t label_width = 0;
  for (const auto& row : rows) label_width = std::max(label_width, row.first.size());
  std::vector<std::size_t> widths(summaries.size(), 8);
  for (const auto& row : rows) {
    for (std::size_t c = 0; c < summaries.size(); ++c) {
      widths[c] = std::max(widths[c], row.second(summaries[c]).size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    absl::StrAppend(&out, absl::StrFormat("%-*s", label_width, row.first));
    for (std::size_t c = 0; c < summaries.size(); ++c) {
      absl::StrAppend(&out, "  ", absl::StrFormat("%*s", widths[c], row.second(summaries[c])));
    }
    out += '\n';
  }
  return out;
}

std::string RecordsToCsv(const ClientCore& client) {
  std::string out =
      "seq,send_host_ns,recv_host_ns,rtt_ns,measured_offset_ns,true_offset_ns,correction_ns,"
      "applied,error_ns,server_kernel_ts,client_kernel_ts,status\n";
  for (const PacketRecord& r : client.records()) {
    absl::StrAppend(&out, r.seq, ",", r.send_host_ns, ",", r.recv_host_ns, ",",
                    absl::StrFormat("%.0f", r.rtt_ns), ",",
                    r.measured_offset_ns ? absl::StrFormat("%.1f", *r.measured_offset_ns) : "", ",",
                    absl::StrFormat("%.1f", r.true_offset_ns), ",", r.correction_ns, ",",
                    r.applied ? 1 : 0, ",", absl::StrFormat("%.1f", r.error_ns), ",",
                    r.server_kernel_timestamp ? 1 : 0, ",", r.client_kernel_timestamp ? 1 : 0, ",",
                    ReplyStatusName(r.status), "\n");
  }
  return out;
}

}  // namespace lab::timesync
