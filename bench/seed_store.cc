// seed_store: writes one finished time-sync run of synthetic samples into a results database,
// for the dashboard and API benchmarks (bench/dashboard_bench.mjs): a large run without
// waiting for one to happen.
//
//   seed_store --db PATH --clients 4 --samples 100000
//
// Prints {"experiment_id": "...", "samples": N} on stdout. Each client has its scheme's
// typical residual error (Gaussian noise, a slow wander and rare spikes, seeded: the same
// database every time) and a summary with the fixed-edge error histogram, like a real run's.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controller/store/results_store.h"
#include "dataplane/timesync/histogram.h"
#include "nlohmann/json.hpp"

namespace {

using lab::controller::SampleRecord;

struct SchemeNoise {
  const char* scheme;
  double sigma_us;
};

constexpr SchemeNoise kSchemes[] = {{"raw", 20.0}, {"ewma", 6.0}, {"kalman", 1.5}, {"pid", 3.0}};

double Quantile(std::vector<double> sorted, double q) {
  if (sorted.empty()) return 0;
  const auto i = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1));
  return sorted[i];
}

int Fail(const absl::Status& status) {
  std::cerr << "seed_store: " << status.message() << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"seed_store: one synthetic finished time-sync run in a results database"};
  std::string db;
  int clients = 4;
  int64_t samples = 100'000;
  int64_t interval_us = 1000;
  app.add_option("--db", db, "results database (created)")->required();
  app.add_option("--clients", clients, "clients, 1..8 (schemes raw, ewma, kalman, pid, ...)")
      ->check(CLI::Range(1, 8))
      ->capture_default_str();
  app.add_option("--samples", samples, "samples per client")
      ->check(CLI::Range(int64_t{1}, int64_t{10'000'000}))
      ->capture_default_str();
  app.add_option("--interval-us", interval_us, "probe interval, microseconds")
      ->check(CLI::Range(int64_t{1}, int64_t{1'000'000}))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto opened = lab::controller::ResultsStore::Open(db);
  if (!opened.ok()) return Fail(opened.status());
  lab::controller::ResultsStore& store = **opened;
  const int64_t created_ns = 1'795'000'000'000'000'000;
  const std::string id = absl::StrFormat("seed-%dx%d", clients, samples);
  const nlohmann::json spec = {
      {"name", "synthetic"},
      {"timesync", {{"count", std::to_string(samples)}, {"interval_ns", interval_us * 1000}}}};
  if (auto s = store.CreateExperiment({id, "timesync", spec.dump(), "running", created_ns, 0});
      !s.ok()) {
    return Fail(s);
  }
  const std::string metadata = R"({"clock_id":"seed-clock","timestamping":"kernel"})";
  for (int a = 0; a <= clients; ++a) {
    if (auto s = store.AddAgent({id, absl::StrCat("agent-", a + 1), "127.0.0.1", metadata});
        !s.ok()) {
      return Fail(s);
    }
  }
  if (auto s = store.PutTask({id, "server", "agent-1", "server", "", "complete", ""}); !s.ok()) {
    return Fail(s);
  }

  std::mt19937_64 rng(42);
  std::normal_distribution<double> gauss(0.0, 1.0);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  for (int c = 0; c < clients; ++c) {
    const SchemeNoise& noise = kSchemes[c % 4];
    const std::string task = absl::StrFormat("client-%02d-%s", c + 1, noise.scheme);
    if (auto s = store.PutTask(
            {id, task, absl::StrCat("agent-", c + 2), "client", noise.scheme, "complete", ""});
        !s.ok()) {
      return Fail(s);
    }
    lab::timesync::Histogram histogram(lab::timesync::ErrorEdgesUs());
    std::vector<double> abs_error;
    double sum_sq = 0;
    std::vector<SampleRecord> batch;
    for (int64_t i = 0; i < samples; ++i) {
      SampleRecord r;
      r.seq = static_cast<uint64_t>(i);
      r.send_host_ns = created_ns + 1'000'000 + i * interval_us * 1000;
      r.rtt_ns = 40'000 + 10'000 * std::abs(gauss(rng));
      r.recv_host_ns = r.send_host_ns + static_cast<int64_t>(r.rtt_ns);
      const double wander = noise.sigma_us * std::sin(static_cast<double>(i) * 1e-3);
      double error_us = noise.sigma_us * gauss(rng) + 0.3 * wander;
      if (uniform(rng) < 1e-4) error_us += 50 * noise.sigma_us;  // a rare spike
      r.true_offset_ns = 25e6 + 80e-6 * static_cast<double>(i * interval_us * 1000);
      r.measured_offset_ns = r.true_offset_ns + 1e3 * noise.sigma_us * gauss(rng);
      r.correction_ns = static_cast<int64_t>(r.true_offset_ns - 1e3 * error_us);
      r.applied = true;
      r.error_ns = 1e3 * error_us;
      histogram.Add(error_us);
      abs_error.push_back(std::abs(error_us));
      sum_sq += error_us * error_us;
      batch.push_back(r);
      if (batch.size() == 4096 || i + 1 == samples) {
        if (auto s = store.AppendSamples(id, task, batch); !s.ok()) return Fail(s);
        batch.clear();
      }
    }
    std::sort(abs_error.begin(), abs_error.end());
    const nlohmann::json summary = {{"scheme", noise.scheme},
                                    {"sent", samples},
                                    {"received", samples},
                                    {"lost", 0},
                                    {"late", 0},
                                    {"duplicates", 0},
                                    {"timestamping", "kernel"},
                                    {"truth_known", true},
                                    {"converged", true},
                                    {"converged_after_ms", 0.0},
                                    {"samples", samples},
                                    {"error_us",
                                     {{"mean", 0.0},
                                      {"rms", std::sqrt(sum_sq / static_cast<double>(samples))},
                                      {"abs_p50", Quantile(abs_error, 0.5)},
                                      {"abs_p95", Quantile(abs_error, 0.95)},
                                      {"abs_p99", Quantile(abs_error, 0.99)},
                                      {"max_abs", abs_error.back()}}}};
    const auto edges = histogram.edges();
    const auto counts = histogram.bucket_counts();
    if (auto s = store.PutSummary({id, task, summary.dump(),
                                   std::vector<double>(edges.begin(), edges.end()),
                                   std::vector<uint64_t>(counts.begin(), counts.end())});
        !s.ok()) {
      return Fail(s);
    }
  }
  const int64_t finished_ns = created_ns + 1'000'000 + samples * interval_us * 1000;
  if (auto s = store.FinishExperiment(id, "completed", finished_ns); !s.ok()) return Fail(s);
  std::cout << nlohmann::json{{"experiment_id", id}, {"samples", samples * clients}}.dump()
            << std::endl;
  return 0;
}
