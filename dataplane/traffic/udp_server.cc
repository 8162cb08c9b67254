#include "dataplane/traffic/udp_server.h"

#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace lab::traffic {

absl::string_view UdpServerModeName(UdpServerMode mode) {
  return mode == UdpServerMode::kEcho ? "echo" : "sink";
}

absl::StatusOr<UdpServerMode> ParseUdpServerMode(absl::string_view name) {
  if (name == "echo") return UdpServerMode::kEcho;
  if (name == "sink") return UdpServerMode::kSink;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown UDP server mode '", name, "'; use echo or sink"));
}

namespace {

absl::Status Validate(const UdpServerOptions& o) {
  if (o.listen.family() != AF_INET && o.listen.family() != AF_INET6) {
    return absl::InvalidArgumentError("no address to listen on");
  }
  if (o.batch_size < 1 || o.batch_size > 1024) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch size must be in [1, 1024], got ", o.batch_size));
  }
  if (o.max_datagram_bytes < kUdpHeaderSize || o.max_datagram_bytes > kUdpMaxDatagramSize) {
    return absl::InvalidArgumentError(absl::StrCat("max datagram bytes must be in [",
                                                   kUdpHeaderSize, ", ", kUdpMaxDatagramSize,
                                                   "], got ", o.max_datagram_bytes));
  }
  if (o.max_flows < 1) return absl::InvalidArgumentError("max flows must be >= 1");
  if (o.idle_wake_ns <= 0) return absl::InvalidArgumentError("idle wake must be > 0");
  if (o.port_range && (o.port_range->first == 0 || o.port_range->first > o.port_range->last)) {
    return absl::InvalidArgumentError(absl::StrCat("bad port range ", o.port_range->first, "-",
                                                   o.port_range->last,
                                                   "; need 0 < FIRST <= LAST <= 65535"));
  }
  if (!o.listen.IsLoopback() && !o.allow_non_loopback) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing to listen on ", o.listen.HostString(),
        ": the UDP traffic server has no authentication and echoes to anyone, so it binds "
        "beyond loopback only with --insecure"));
  }
  return absl::OkStatus();
}

net::SocketAddress WithPort(const net::SocketAddress& address, uint16_t port) {
  net::SocketAddress out = address;
  if (out.family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(out.mutable_data())->sin_port = htons(port);
  } else {
    reinterpret_cast<sockaddr_in6*>(out.mutable_data())->sin6_port = htons(port);
  }
  return out;
}

absl::StatusOr<net::UdpSocket> BindSocket(const UdpServerOptions& o) {
  if (!o.port_range) return net::UdpSocket::Bind(o.listen);
  absl::Status last;
  for (uint32_t port = o.port_range->first; port <= o.port_range->last; ++port) {
    auto socket = net::UdpSocket::Bind(WithPort(o.listen, static_cast<uint16_t>(port)));
    if (socket.ok()) return socket;
    if (!absl::IsAlreadyExists(socket.status())) return socket.status();
    last = socket.status();
  }
  return absl::AlreadyExistsError(absl::StrCat("no free UDP port in ", o.port_range->first, "-",
                                               o.port_range->last, " on ", o.listen.HostString(),
                                               " (", last.message(), ")"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<UdpTrafficServer>> UdpTrafficServer::Start(
    const UdpServerOptions& options, const Clock& clock) {
  LAB_RETURN_IF_ERROR(Validate(options));
  LAB_ASSIGN_OR_RETURN(net::UdpSocket socket, BindSocket(options));
  if (options.mode == UdpServerMode::kSink) socket.EnableReceiveTimestamps();
  LAB_RETURN_IF_ERROR(socket.SetBlockingReceive(options.idle_wake_ns));
  // Generous buffers ride out scheduling stalls without drops (best effort).
  (void)socket.SetBufferSizes(8 << 20, 8 << 20);
  std::unique_ptr<UdpTrafficServer> server(new UdpTrafficServer(options, std::move(socket), clock));
  server->thread_ = std::thread([s = server.get()] { s->Loop(); });
  return server;
}

UdpTrafficServer::UdpTrafficServer(const UdpServerOptions& options, net::UdpSocket socket,
                                   const Clock& clock)
    : options_(options), socket_(std::move(socket)), clock_(clock) {
  local_ = socket_.LocalAddress().value_or(net::SocketAddress());
}

UdpTrafficServer::~UdpTrafficServer() { Stop(); }

void UdpTrafficServer::Stop() {
  std::call_once(stop_once_, [this] {
    stop_.store(true, std::memory_order_release);
    socket_.ShutdownReceive();
    if (thread_.joinable()) thread_.join();
  });
}

absl::Status UdpTrafficServer::status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

void UdpTrafficServer::Loop() {
  // One byte more than accepted, so that an over-long datagram is flagged as truncated.
  net::DatagramBatch in(options_.batch_size, options_.max_datagram_bytes + 1);
  std::optional<net::SendBatch> out;
  if (options_.mode == UdpServerMode::kEcho) {
    out.emplace(options_.batch_size, options_.max_datagram_bytes);
  }
  while (!stop_.load(std::memory_order_acquire)) {
    absl::StatusOr<std::size_t> received = in.Receive(socket_, clock_, /*wait=*/true);
    if (!received.ok()) {
      std::lock_guard<std::mutex> lock(mu_);
      status_ = received.status();
      break;
    }
    // Woken by Stop(): after shutdown(SHUT_RD) a receive may also return an empty "datagram"
    // with no sender, which is not traffic.
    if (stop_.load(std::memory_order_acquire)) break;
    if (*received == 0) continue;  // idle wake
    uint64_t bytes = 0, truncated = 0, queued_bytes = 0;
    for (std::size_t i = 0; i < *received; ++i) {
      const absl::Span<const uint8_t> data = in.data(i);
      bytes += data.size();
      if (in.truncated(i) || data.size() > options_.max_datagram_bytes) {
        ++truncated;
        continue;
      }
      if (out) {
        absl::Span<uint8_t> slot = out->NextBuffer();
        std::copy(data.begin(), data.end(), slot.begin());
        out->Commit(data.size(), in.peer(i));
        queued_bytes += data.size();
      }
    }
    net::SendBatch::FlushResult flushed;
    uint64_t bytes_sent = 0;
    if (out && out->size() > 0) {
      const std::size_t queued = out->size();
      flushed = out->Flush(socket_);
      // Flush() does not say which replies were refused: with failures, the bytes sent are
      // estimated from the mean size.
      bytes_sent = flushed.failed == 0 ? queued_bytes : queued_bytes * flushed.sent / queued;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      counters_.received += *received;
      counters_.bytes_received += bytes;
      counters_.truncated += truncated;
      counters_.echoed += flushed.sent;
      counters_.send_errors += flushed.failed;
      counters_.bytes_sent += bytes_sent;
      if (options_.mode == UdpServerMode::kSink) {
        for (std::size_t i = 0; i < *received; ++i) {
          if (in.truncated(i) || in.data(i).size() > options_.max_datagram_bytes) continue;
          Account(in.data(i), in.peer(i), in.rx_ns(i));
        }
        counters_.flows = flows_.size();
      }
    }
    published_cv_.notify_all();
  }
  published_cv_.notify_all();
}

void UdpTrafficServer::Account(absl::Span<const uint8_t> data, const net::SocketAddress& peer,
                               int64_t rx_ns) {
  UdpHeader header;
  const UdpDecodeError error = DecodeUdpHeader(data, &header);
  if (error != UdpDecodeError::kOk) {
    ++counters_.malformed[static_cast<std::size_t>(error)];
    return;
  }
  FlowKey key{peer, header.flow_id};
  auto it = flows_.find(key);
  std::list<Flow>::iterator flow;
  if (it != flows_.end()) {
    flow = it->second;
    lru_.splice(lru_.begin(), lru_, flow);  // most recently heard first
  } else {
    if (flows_.size() >= options_.max_flows) {
      flows_.erase(lru_.back().key);
      lru_.pop_back();
      ++counters_.flows_evicted;
    }
    lru_.emplace_front();
    flow = lru_.begin();
    flow->key = key;
    flow->first_rx_ns = rx_ns;
    flows_.emplace(key, flow);
    ++counters_.flows_created;
  }
  const SequenceTracker::Arrival arrival = flow->sequence.Add(header.seq);
  if (arrival != SequenceTracker::Arrival::kDuplicate) flow->jitter.Add(header.send_ns, rx_ns);
  flow->bytes += data.size();
  flow->last_rx_ns = rx_ns;
}

UdpServerCounters UdpTrafficServer::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

std::vector<UdpFlowStats> UdpTrafficServer::flows() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<UdpFlowStats> out;
  out.reserve(lru_.size());
  for (const Flow& f : lru_) {
    UdpFlowStats s;
    s.peer = f.key.peer;
    s.flow_id = f.key.flow_id;
    s.received = f.sequence.received();
    s.unique = f.sequence.unique();
    s.bytes_received = f.bytes;
    s.highest_seq = f.sequence.highest();
    s.lost_packets = f.sequence.Lost(f.sequence.highest() + 1);
    s.out_of_order = f.sequence.out_of_order();
    s.duplicates = f.sequence.duplicates();
    s.jitter_ms = f.jitter.jitter_ns() / 1e6;
    s.first_rx_ns = f.first_rx_ns;
    s.last_rx_ns = f.last_rx_ns;
    out.push_back(s);
  }
  return out;
}

bool UdpTrafficServer::WaitForCounters(const std::function<bool(const UdpServerCounters&)>& done,
                                       int64_t timeout_ns) const {
  std::unique_lock<std::mutex> lock(mu_);
  return published_cv_.wait_for(lock, std::chrono::nanoseconds(timeout_ns),
                                [&] { return done(counters_); });
}

nlohmann::json UdpServerCountersToJson(const UdpServerCounters& c) {
  nlohmann::json malformed = nlohmann::json::object();
  for (std::size_t i = 1; i < kNumUdpDecodeErrors; ++i) {
    malformed[std::string(UdpDecodeErrorName(static_cast<UdpDecodeError>(i)))] = c.malformed[i];
  }
  return {{"received", c.received},
          {"bytes_received", c.bytes_received},
          {"echoed", c.echoed},
          {"bytes_sent", c.bytes_sent},
          {"send_errors", c.send_errors},
          {"truncated", c.truncated},
          {"malformed", malformed},
          {"flows", c.flows},
          {"flows_created", c.flows_created},
          {"flows_evicted", c.flows_evicted}};
}

nlohmann::json UdpFlowStatsToJson(const UdpFlowStats& f) {
  return {{"peer", f.peer.ToString()},
          {"flow_id", f.flow_id},
          {"received", f.received},
          {"unique", f.unique},
          {"bytes_received", f.bytes_received},
          {"highest_seq", f.highest_seq},
          {"lost_packets", f.lost_packets},
          {"out_of_order", f.out_of_order},
          {"duplicates", f.duplicates},
          {"jitter_ms", f.jitter_ms}};
}

nlohmann::json UdpServerStatsToJson(const UdpTrafficServer& server) {
  nlohmann::json j = {{"mode", std::string(UdpServerModeName(server.mode()))},
                      {"address", server.local_address().HostString()},
                      {"port", server.local_address().port()},
                      {"counters", UdpServerCountersToJson(server.counters())}};
  if (server.mode() == UdpServerMode::kSink) {
    nlohmann::json flows = nlohmann::json::array();
    for (const UdpFlowStats& f : server.flows()) flows.push_back(UdpFlowStatsToJson(f));
    j["flows"] = std::move(flows);
  }
  return j;
}

}  // namespace lab::traffic
