#include "rpc/traffic_conversion.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace lab::rpc {

namespace {

constexpr int64_t kSecond = 1'000'000'000;

absl::StatusOr<net::SocketAddress> Listen(const std::string& bind, uint32_t port) {
  if (port > 65535) return absl::InvalidArgumentError(absl::StrCat("port ", port, " > 65535"));
  return net::SocketAddress::Resolve(bind, static_cast<uint16_t>(port));
}

absl::StatusOr<net::SocketAddress> Server(const std::string& server) {
  auto address = net::SocketAddress::ParseHostPort(server);
  if (!address.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("server: ", address.status().message()));
  }
  return address;
}

void SetOptional(double value, void (lab::v1::TrafficInterval::*set)(double),
                 lab::v1::TrafficInterval* out) {
  if (std::isfinite(value)) (out->*set)(value);
}

}  // namespace

absl::StatusOr<traffic::TcpServerOptions> FromProto(const lab::v1::TcpServerTask& task,
                                                    const std::string& default_bind,
                                                    bool insecure) {
  traffic::TcpServerOptions o;
  LAB_ASSIGN_OR_RETURN(
      o.listen,
      Listen(task.bind_address().empty() ? default_bind : task.bind_address(), task.port()));
  if (!task.mode().empty()) {
    LAB_ASSIGN_OR_RETURN(o.mode, traffic::ParseTcpMode(task.mode()));
  }
  if (!task.engine().empty()) {
    LAB_ASSIGN_OR_RETURN(o.engine, traffic::ParseTcpEngine(task.engine()));
  }
  o.threads = static_cast<int>(task.threads());
  if (task.max_connections() > 0) o.max_connections = static_cast<int>(task.max_connections());
  o.allow_non_loopback = insecure;
  LAB_RETURN_IF_ERROR(o.Validate());
  return o;
}

absl::StatusOr<traffic::TcpClientOptions> FromProto(const lab::v1::TcpClientTask& task) {
  traffic::TcpClientOptions o;
  LAB_ASSIGN_OR_RETURN(o.server, Server(task.server()));
  if (!task.mode().empty()) {
    LAB_ASSIGN_OR_RETURN(o.mode, traffic::ParseTcpClientMode(task.mode()));
  }
  o.reverse = task.reverse();
  o.connections = task.connections() > 0 ? static_cast<int>(task.connections()) : 1;
  o.threads = task.threads() > 0 ? static_cast<int>(task.threads()) : 1;
  o.duration_ns = task.duration_ns();
  o.length = task.length();
  o.requests = task.requests();
  o.interval_ns = task.interval_ns() > 0 ? task.interval_ns() : kSecond;
  LAB_RETURN_IF_ERROR(o.Validate());
  return o;
}

absl::StatusOr<traffic::UdpServerOptions> FromProto(const lab::v1::UdpServerTask& task,
                                                    const std::string& default_bind,
                                                    bool insecure) {
  traffic::UdpServerOptions o;
  LAB_ASSIGN_OR_RETURN(
      o.listen,
      Listen(task.bind_address().empty() ? default_bind : task.bind_address(), task.port()));
  if (!task.mode().empty()) {
    LAB_ASSIGN_OR_RETURN(o.mode, traffic::ParseUdpServerMode(task.mode()));
  }
  o.allow_non_loopback = insecure;
  return o;
}

absl::StatusOr<traffic::UdpClientOptions> FromProto(const lab::v1::UdpClientTask& task) {
  traffic::UdpClientOptions o;
  LAB_ASSIGN_OR_RETURN(o.server, Server(task.server()));
  if (task.length() > 0) o.length = task.length();
  if (task.has_rate_pps()) o.rate_pps = task.rate_pps();
  o.count = task.count();
  o.duration_ns = task.duration_ns();
  if (task.timeout_ns() > 0) o.timeout_ns = task.timeout_ns();
  o.one_way = task.one_way();
  o.interval_ns = task.interval_ns() > 0 ? task.interval_ns() : kSecond;
  if (o.count == 0 && o.duration_ns <= 0) {
    return absl::InvalidArgumentError("a UDP client needs a count or a duration");
  }
  return o;
}

void ToProto(const traffic::IntervalSample& s, uint64_t seq, lab::v1::TrafficInterval* out) {
  out->set_seq(seq);
  out->set_start_s(s.start_s);
  out->set_end_s(s.end_s);
  out->set_bytes_sent(s.bytes_sent);
  out->set_bytes_received(s.bytes_received);
  out->set_messages_sent(s.messages_sent);
  out->set_messages_received(s.messages_received);
  SetOptional(s.latency_p50_us, &lab::v1::TrafficInterval::set_latency_p50_us, out);
  SetOptional(s.latency_p99_us, &lab::v1::TrafficInterval::set_latency_p99_us, out);
  SetOptional(s.latency_max_us, &lab::v1::TrafficInterval::set_latency_max_us, out);
  SetOptional(s.jitter_us, &lab::v1::TrafficInterval::set_jitter_us, out);
  out->set_errors(s.errors);
}

traffic::IntervalSample FromProto(const lab::v1::TrafficInterval& in) {
  traffic::IntervalSample s;
  s.start_s = in.start_s();
  s.end_s = in.end_s();
  s.bytes_sent = in.bytes_sent();
  s.bytes_received = in.bytes_received();
  s.messages_sent = in.messages_sent();
  s.messages_received = in.messages_received();
  if (in.has_latency_p50_us()) s.latency_p50_us = in.latency_p50_us();
  if (in.has_latency_p99_us()) s.latency_p99_us = in.latency_p99_us();
  if (in.has_latency_max_us()) s.latency_max_us = in.latency_max_us();
  if (in.has_jitter_us()) s.jitter_us = in.jitter_us();
  s.errors = in.errors();
  return s;
}

}  // namespace lab::rpc
