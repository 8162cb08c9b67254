#include "labctl/traffic_run.h"

#include "gtest/gtest.h"

namespace lab::labctl {
namespace {

TEST(TcpRunRequestTest, ModesPickTheMatchingServerAndCarryEveryFlag) {
  TcpRunFlags f;
  f.mode = "bulk";
  f.reverse = true;
  f.connections = 8;
  f.threads = 2;
  f.common.duration = "3s";
  f.common.interval = "500ms";
  f.common.length = "256K";
  f.common.clients = 3;
  f.common.server_agent = "agent-2";
  f.engine = "threads";
  auto r = BuildTcpRunRequest(f);
  ASSERT_TRUE(r.ok()) << r.status();
  const auto& tcp = r->spec().tcp();
  EXPECT_EQ(tcp.server().mode(), "source");  // reverse bulk reads from a source
  EXPECT_EQ(tcp.server().engine(), "threads");
  EXPECT_EQ(tcp.client().mode(), "bulk");
  EXPECT_TRUE(tcp.client().reverse());
  EXPECT_EQ(tcp.client().connections(), 8u);
  EXPECT_EQ(tcp.client().duration_ns(), 3'000'000'000);
  EXPECT_EQ(tcp.client().interval_ns(), 500'000'000);
  EXPECT_EQ(tcp.client().length(), 256u * 1024);
  EXPECT_EQ(tcp.clients(), 3u);
  EXPECT_EQ(tcp.server_agent(), "agent-2");
  f.reverse = false;
  EXPECT_EQ(BuildTcpRunRequest(f)->spec().tcp().server().mode(), "sink");
  f.mode = "rr";
  f.common.length.reset();
  EXPECT_EQ(BuildTcpRunRequest(f)->spec().tcp().server().mode(), "echo");
}

TEST(TcpRunRequestTest, BadFlagsNameTheFlag) {
  const auto message = [](TcpRunFlags f) {
    return std::string(BuildTcpRunRequest(f).status().message());
  };
  TcpRunFlags f;
  f.mode = "stream";
  EXPECT_NE(message(f).find("--mode"), std::string::npos);
  f = {};
  f.reverse = true;
  EXPECT_NE(message(f).find("--reverse"), std::string::npos);
  f = {};
  f.threads = 2;
  EXPECT_NE(message(f).find("--threads"), std::string::npos);
  f = {};
  f.common.duration = "0";
  EXPECT_NE(message(f).find("--duration"), std::string::npos);
  f = {};
  f.common.clients = 0;
  EXPECT_NE(message(f).find("--clients"), std::string::npos);
  f = {};
  f.common.interval = "1ms";  // finer than 10ms would flood the store
  EXPECT_NE(message(f).find("--interval"), std::string::npos);
  f = {};
  f.common.length = "1M";  // rr requests are at most 64K
  EXPECT_NE(message(f).find("--length"), std::string::npos);
}

TEST(UdpRunRequestTest, RateOneWayAndDefaults) {
  UdpRunFlags f;
  auto simple = BuildUdpRunRequest(f);
  ASSERT_TRUE(simple.ok());
  EXPECT_FALSE(simple->spec().udp().client().has_rate_pps());  // stop-and-wait
  EXPECT_EQ(simple->spec().udp().server().mode(), "echo");
  f.rate = "1.5k";
  f.one_way = true;
  auto paced = BuildUdpRunRequest(f);
  ASSERT_TRUE(paced.ok()) << paced.status();
  EXPECT_EQ(paced->spec().udp().client().rate_pps(), 1500);
  EXPECT_TRUE(paced->spec().udp().client().one_way());
  EXPECT_EQ(paced->spec().udp().server().mode(), "sink");
  f.rate.reset();
  EXPECT_NE(BuildUdpRunRequest(f).status().message().find("--rate"), std::string::npos);
  f.rate = "2G";
  EXPECT_NE(BuildUdpRunRequest(f).status().message().find("--rate"), std::string::npos);
  f.rate = "fast";
  EXPECT_NE(BuildUdpRunRequest(f).status().message().find("--rate"), std::string::npos);
  f.rate = "0";
  f.common.length = "10";  // below the 28-byte header
  EXPECT_NE(BuildUdpRunRequest(f).status().message().find("--length"), std::string::npos);
}

TEST(TrafficTableTest, RowsShowThroughputRateLatencyAndLoss) {
  const std::vector<nlohmann::json> clients = {
      {{"task_id", "client-01-tcp-rr"},
       {"scheme", "tcp-rr"},
       {"agent", "agent-2"},
       {"state", "complete"},
       {"mode", "rr"},
       {"bits_per_second", 2.5e9},
       {"requests_per_second", 41000.0},
       {"latency_us", {{"p50", 23.4}, {"p99", 80.0}, {"p999", 210.0}}},
       {"errors", 0}},
      {{"task_id", "client-02-udp-paced"},
       {"scheme", "udp-paced"},
       {"agent", "agent-3"},
       {"state", "complete"},
       {"bits_per_second", 1e6},
       {"packets_per_second", 2000.0},
       {"lost_percent", 0.25},
       {"latency_us", {{"p50", 30.0}}}}};
  EXPECT_TRUE(IsTrafficRun(clients));
  const std::string table = FormatTrafficTable(clients);
  EXPECT_NE(table.find("2.5 Gbit/s"), std::string::npos) << table;
  EXPECT_NE(table.find("41000 req/s"), std::string::npos) << table;
  EXPECT_NE(table.find("23.4"), std::string::npos) << table;
  EXPECT_NE(table.find("2000 pkt/s"), std::string::npos) << table;
  EXPECT_NE(table.find("0.25% lost"), std::string::npos) << table;
  EXPECT_FALSE(IsTrafficRun({{{"scheme", "kalman"}}}));
}

}  // namespace
}  // namespace lab::labctl
