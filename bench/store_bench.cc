// Results-store ingest: AppendSamples into a WAL database file in a temp directory, in
// batches of 1, 64 and 1024 samples (one transaction per batch). The controller's target is
// >= 200 000 samples/s; items_per_second is samples/s.
#include <unistd.h>

#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "controller/store/results_store.h"

namespace lab::controller {
namespace {

void BM_AppendSamples(benchmark::State& state) {
  const auto batch_size = static_cast<uint64_t>(state.range(0));
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    absl::StrCat("lab-store-bench-", getpid(), "-", batch_size);
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  {
    auto store = ResultsStore::Open((dir / "results.db").string());
    if (!store.ok()) {
      state.SkipWithError(store.status().ToString().c_str());
      return;
    }
    ResultsStore& s = **store;
    if (absl::Status st = s.CreateExperiment({"bench", "timesync", "{}", "running", 1, 0});
        !st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      return;
    }
    if (absl::Status st = s.PutTask({"bench", "client", "agent", "client", "raw", "running", ""});
        !st.ok()) {
      state.SkipWithError(st.ToString().c_str());
      return;
    }
    // A realistic sample (every column set), seq advanced per batch.
    std::vector<SampleRecord> batch(batch_size);
    for (uint64_t i = 0; i < batch_size; ++i) {
      SampleRecord& r = batch[i];
      r.send_host_ns = 1'700'000'000'000'000'000 + static_cast<int64_t>(i) * 5'000'000;
      r.recv_host_ns = r.send_host_ns + 72'000;
      r.rtt_ns = 72'000;
      r.measured_offset_ns = -25'000'000.5;
      r.true_offset_ns = -25'000'001.25;
      r.correction_ns = -25'000'000;
      r.applied = true;
      r.error_ns = 3'310.5;
    }
    uint64_t next_seq = 0;
    for (auto _ : state) {
      for (SampleRecord& r : batch) r.seq = next_seq++;
      if (absl::Status st = s.AppendSamples("bench", "client", batch); !st.ok()) {
        state.SkipWithError(st.ToString().c_str());
        break;
      }
    }
    state.SetItemsProcessed(static_cast<int64_t>(next_seq));
  }
  std::filesystem::remove_all(dir);
}
// Wall-clock time: ingest is bounded by the file writes as much as by the CPU.
BENCHMARK(BM_AppendSamples)->Arg(1)->Arg(64)->Arg(1024)->ArgName("batch")->UseRealTime();

}  // namespace
}  // namespace lab::controller

BENCHMARK_MAIN();
