#include "dataplane/timesync/report.h"

#include <array>

#include "gtest/gtest.h"

namespace lab::timesync {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000'000'000;

// Sends `c`'s next probe at host time `send_ns` and, unless `lost`, answers it 10 us later
// (server stamps 5 us in, kernel timestamps) with `correction_ns`.
void Exchange(ClientCore& c, int64_t send_ns, int64_t correction_ns, bool lost = false) {
  std::array<uint8_t, kProbeSize> b{};
  c.MakeProbe(send_ns, absl::MakeSpan(b));
  if (lost) return;
  Probe p;
  ASSERT_EQ(DecodeProbe(b, &p), WireError::kOk);
  Reply r;
  r.scheme = p.scheme;
  r.client_id = p.client_id;
  r.seq = p.seq;
  r.t1_ns = p.t1_ns;
  r.t2_ns = r.t3_ns = send_ns + 5'000;
  r.flags = kReplyKernelRxTimestamp;
  r.correction_ns = correction_ns;
  std::array<uint8_t, kReplySize> out{};
  EncodeReply(r, absl::MakeSpan(out));
  ASSERT_EQ(c.HandleDatagram(out, send_ns + 10'000, net::TimestampSource::kKernel), WireError::kOk);
}

ClientCore RawClient() {
  ClientCoreOptions o;
  o.params.scheme = Scheme::kRaw;
  return ClientCore(o, kT0);
}

// A client whose k-th reply, 1 ms apart, leaves the clock with error errors_ns[k].
ClientCore ClientWithErrors(const std::vector<double>& errors_ns) {
  ClientCore c = RawClient();
  double applied = 0;
  for (std::size_t k = 0; k < errors_ns.size(); ++k) {
    Exchange(c, kT0 + static_cast<int64_t>(k) * 1'000'000,
             static_cast<int64_t>(errors_ns[k] - applied));
    applied = errors_ns[k];
  }
  return c;
}

TEST(ReportTest, ConvergesWhereTheErrorEntersAndStaysWithinTheThreshold) {
  std::vector<double> errors(100, 1'000);                       // 1 us
  for (int k = 0; k < 20; ++k) errors[k] = 50'000 - k * 2'000;  // 50 us falling
  errors[60] = 400'000;  // one stall later does not undo convergence
  const ClientSummary s = Summarize(ClientWithErrors(errors), {.converge_threshold_ns = 10'000});
  ASSERT_TRUE(s.converged);
  // errors[k] <= 10 us from k = 20 on; sample k arrives k ms + 10 us after the first probe.
  EXPECT_NEAR(s.converged_after_ms, 20.01, 1e-6);
  EXPECT_EQ(s.samples, 80u);
  EXPECT_NEAR(s.error_us.max_abs, 400, 1e-9);
  EXPECT_NEAR(s.error_us.abs_p50, 1, 1e-9);
  EXPECT_EQ(s.error_histogram.count(), 80u);
}

TEST(ReportTest, ConvergenceTimeCountsFromTheFirstProbeEvenIfItWasLost) {
  ClientCore c = RawClient();
  Exchange(c, kT0, 0, /*lost=*/true);
  for (int k = 1; k <= 10; ++k) Exchange(c, kT0 + k * 1'000'000, 0);
  const ClientSummary s = Summarize(c, {});
  EXPECT_EQ(s.lost, 1u);
  ASSERT_TRUE(s.converged);
  EXPECT_NEAR(s.converged_after_ms, 1.01, 1e-9);  // reply 2 came 1.01 ms after probe 1 left
}

TEST(ReportTest, NeverConvergesWhenTheErrorKeepsGrowing) {
  std::vector<double> errors;
  for (int k = 0; k < 50; ++k) errors.push_back(k * 1'000.0);
  const ClientSummary s = Summarize(ClientWithErrors(errors), {.converge_threshold_ns = 5'000});
  EXPECT_FALSE(s.converged);
  EXPECT_EQ(s.samples, 50u);  // statistics over everything
}

TEST(ReportTest, ErrorStatisticsMatchTheirDefinitions) {
  const ClientSummary s = Summarize(ClientWithErrors({3'000, -3'000, 3'000, -3'000, 3'000, -3'000}),
                                    {.converge_threshold_ns = 10'000});
  EXPECT_NEAR(s.error_us.mean, 0, 1e-9);
  EXPECT_NEAR(s.error_us.rms, 3, 1e-9);
  EXPECT_NEAR(s.error_us.stddev, 3, 1e-9);
  EXPECT_NEAR(s.error_us.abs_p99, 3, 1e-9);
  EXPECT_EQ(s.lost, 0u);
  EXPECT_EQ(s.timestamping, "kernel");
  EXPECT_NEAR(s.rtt_us.p50, 10, 1e-9);
}

TEST(ReportTest, JsonHasTheDocumentedFields) {
  const ClientSummary s = Summarize(ClientWithErrors({1'000, 2'000, 500, 700, 800, 900}), {});
  const nlohmann::json j = SummaryToJson(s);
  for (const char* key : {"scheme", "sent", "received", "lost", "timestamping",
                          "converged_after_ms", "rtt_us", "error_us", "histogram"}) {
    EXPECT_TRUE(j.contains(key)) << key;
  }
  for (const char* key : {"p50", "p99"}) EXPECT_TRUE(j["rtt_us"].contains(key)) << key;
  for (const char* key : {"mean", "stddev", "rms", "abs_p50", "abs_p95", "abs_p99", "max_abs"}) {
    EXPECT_TRUE(j["error_us"].contains(key)) << key;
  }
  EXPECT_EQ(j["histogram"]["counts"].size(), j["histogram"]["edges_us"].size() + 1);
  EXPECT_EQ(j["histogram"]["counts"].back(), s.samples);
  EXPECT_EQ(j["scheme"], "raw");
}

TEST(ReportTest, TableHasOneColumnPerClient) {
  const std::vector<nlohmann::json> all = {
      SummaryToJson(Summarize(ClientWithErrors({1'000, 1'000}), {})),
      SummaryToJson(Summarize(ClientWithErrors({2'000, 2'000}), {}))};
  const std::string table = FormatSummaryTable(all);
  EXPECT_NE(table.find("|error| p99 us"), std::string::npos);
  EXPECT_NE(table.find("RAW"), std::string::npos);
  EXPECT_NE(table.find("2 / 2"), std::string::npos);
  EXPECT_NE(table.find("2.00"), std::string::npos);   // the second client's 2 us error
  EXPECT_EQ(table.find("agent"), std::string::npos);  // no agent row for local runs
}

TEST(ReportTest, TableShowsAgentsAndALostClientWithoutStatistics) {
  nlohmann::json done = SummaryToJson(Summarize(ClientWithErrors({1'000, 1'000}), {}));
  done["agent"] = "agent-1";
  done["state"] = "complete";
  const std::vector<nlohmann::json> all = {
      done, {{"scheme", "pid"}, {"agent", "agent-2"}, {"state", "lost"}}};
  const std::string table = FormatSummaryTable(all);
  EXPECT_NE(table.find("agent-2"), std::string::npos);
  EXPECT_NE(table.find("lost"), std::string::npos);
  EXPECT_NE(table.find("PID"), std::string::npos);
  EXPECT_NE(table.find("- / -"), std::string::npos);
}

}  // namespace
}  // namespace lab::timesync
