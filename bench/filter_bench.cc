// Per-update cost of each scheme's filter, and of the server's whole per-probe path
// (decode, client lookup, filter update, encode) without sockets.
#include <array>
#include <random>
#include <vector>

#include "benchmark/benchmark.h"
#include "common/clock.h"
#include "dataplane/timesync/filter.h"
#include "dataplane/timesync/server_core.h"

namespace lab::timesync {
namespace {

void BM_FilterAccumulate(benchmark::State& state) {
  SchemeParams params;
  params.scheme = static_cast<Scheme>(state.range(0));
  auto filter = *MakeFilter(params);
  // Samples made beforehand (a client 80 ppm fast, 1 us of noise) so only the filter is timed.
  std::mt19937_64 rng(1);
  std::normal_distribution<double> noise(0, 1'000);
  std::vector<OffsetSample> samples(4096);
  for (std::size_t i = 0; i < samples.size(); ++i) {
    const int64_t t = static_cast<int64_t>(i) * 5'000'000;
    samples[i] = {t, -80e-6 * static_cast<double>(t) + noise(rng), 20'000 + noise(rng)};
  }
  int64_t shift = 0;
  std::size_t i = 0;
  for (auto _ : state) {
    OffsetSample s = samples[i];
    s.time_ns += shift;
    benchmark::DoNotOptimize(filter->Accumulate(s));
    benchmark::DoNotOptimize(filter->Estimate(s.time_ns + 1'000));
    if (++i == samples.size()) {
      i = 0;
      shift += static_cast<int64_t>(samples.size()) * 5'000'000;
    }
  }
  state.SetLabel(std::string(SchemeName(params.scheme)));
}
BENCHMARK(BM_FilterAccumulate)->DenseRange(1, 4);

void BM_ServerHandleProbe(benchmark::State& state) {
  ServerCore core({});
  SimulatedClock clock(1'700'000'000'000'000'000);
  const auto peer = *net::SocketAddress::Resolve("127.0.0.1", 40000);
  std::array<uint8_t, kProbeSize> in{}, out{};
  const uint32_t clients = static_cast<uint32_t>(state.range(1));
  std::vector<uint64_t> seq(clients, 0);
  uint32_t id = 0;
  for (auto _ : state) {
    clock.AdvanceNs(5'000);
    Probe p;
    p.scheme = static_cast<Scheme>(state.range(0));
    p.client_id = id;
    p.seq = ++seq[id];
    p.t1_ns = clock.NowNs();
    if (p.seq > 1) {
      p.flags = kProbeHasPrevious;
      p.prev_seq = p.seq - 1;
      p.prev_t4_ns = clock.NowNs() - 1'000;
    }
    EncodeProbe(p, absl::MakeSpan(in));
    benchmark::DoNotOptimize(core.HandleDatagram(
        in, peer, clock.NowNs(), net::TimestampSource::kKernel, clock, absl::MakeSpan(out)));
    id = (id + 1) % clients;
  }
  state.SetLabel(std::string(SchemeName(static_cast<Scheme>(state.range(0)))));
}
BENCHMARK(BM_ServerHandleProbe)->ArgsProduct({{1, 2, 3, 4}, {64}});

}  // namespace
}  // namespace lab::timesync

BENCHMARK_MAIN();
