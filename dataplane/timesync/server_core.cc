#include "dataplane/timesync/server_core.h"

#include <cmath>
#include <cstring>
#include <string>

#include "dataplane/timesync/exchange.h"

namespace lab::timesync {

namespace {

constexpr int64_t kSweepEveryNs = 1'000'000'000;

// estimate - applied, rounded and saturated to the int64 range (both come from a client).
int64_t CorrectionNs(double estimate_ns, int64_t applied_ns) {
  const double c = estimate_ns - static_cast<double>(applied_ns);
  if (c >= 9.2e18) return INT64_MAX;
  if (c <= -9.2e18) return INT64_MIN;
  return std::llround(c);
}

}  // namespace

ServerCore::ServerCore(ServerCoreOptions options) : options_(std::move(options)) {
  if (options_.max_clients == 0) options_.max_clients = 1;
}

std::size_t ServerCore::HandleDatagram(absl::Span<const uint8_t> in, const net::SocketAddress& peer,
                                       int64_t t2_ns, net::TimestampSource source,
                                       const Clock& clock, absl::Span<uint8_t> out) {
  ++counters_.received;
  if (source == net::TimestampSource::kKernel) {
    ++counters_.kernel_timestamps;
  } else {
    ++counters_.user_timestamps;
  }
  Probe probe;
  if (const WireError error = DecodeProbe(in, &probe); error != WireError::kOk) {
    ++counters_.dropped;
    ++counters_.dropped_by_reason[static_cast<std::size_t>(error)];
    return 0;
  }
  if (t2_ns - last_sweep_ns_ >= kSweepEveryNs) EvictIdle(t2_ns);

  SchemeParams params;
  if ((probe.flags & kProbeHasParams) != 0) {
    params = SchemeParams::FromWire(probe.scheme, probe.params);
  } else {
    params.scheme = probe.scheme;
    params.ewma = options_.ewma;
    params.kalman = options_.kalman;
    params.pid = options_.pid;
  }

  Reply reply;
  reply.scheme = probe.scheme;
  reply.client_id = probe.client_id;
  reply.seq = probe.seq;
  reply.t1_ns = probe.t1_ns;
  reply.t2_ns = t2_ns;
  if (source == net::TimestampSource::kKernel) reply.flags |= kReplyKernelRxTimestamp;

  ClientState* client = nullptr;
  if (!params.Validate().ok()) {
    ++counters_.invalid_params;
    reply.status = ReplyStatus::kInvalidParams;
  } else {
    client = &FindOrCreate({peer, probe.client_id}, params, t2_ns);
    if ((probe.flags & kProbeHasPrevious) != 0) {
      const uint64_t used_before = counters_.samples_used;
      FeedPreviousExchange(*client, probe);
      if (counters_.samples_used != used_before) reply.flags |= kReplySampleUsed;
    }
    const std::optional<double> estimate = client->filter->Estimate(t2_ns);
    if (estimate && std::isfinite(*estimate)) {
      reply.correction_ns = CorrectionNs(*estimate, probe.correction_ns);
      reply.flags |= kReplyEstimateValid;
    }
  }
  reply.t3_ns = clock.NowNs();
  if (client != nullptr) {
    client->past[probe.seq % kPastExchanges] = {probe.seq, probe.t1_ns, t2_ns, reply.t3_ns};
  }

  ++counters_.replied;
  if ((probe.flags & kProbeJsonReply) != 0) {
    ++counters_.json_replies;
    const std::string json = EncodeJsonReply(reply, in.size());
    std::memcpy(out.data(), json.data(), json.size());
    return json.size();
  }
  EncodeReply(reply, out);
  return kReplySize;
}

ServerCore::ClientState& ServerCore::FindOrCreate(const ClientKey& key, const SchemeParams& params,
                                                  int64_t now_ns) {
  if (auto found = clients_.find(key); found != clients_.end()) {
    ClientList::iterator it = found->second;
    lru_.splice(lru_.begin(), lru_, it);
    it->last_seen_ns = now_ns;
    if (it->params.scheme == params.scheme && it->params.ToWire() == params.ToWire()) return *it;
    // The client switched scheme or parameters: start its filter afresh.
    it->params = params;
    it->filter = *MakeFilter(params);
    it->past = {};
    return *it;
  }
  if (clients_.size() >= options_.max_clients) {
    clients_.erase(lru_.back().key);
    lru_.pop_back();
    ++counters_.clients_evicted_full;
  }
  lru_.push_front(ClientState{key, params, *MakeFilter(params), {}, now_ns});
  clients_[key] = lru_.begin();
  ++counters_.clients_created;
  return lru_.front();
}

void ServerCore::FeedPreviousExchange(ClientState& client, const Probe& probe) {
  PastExchange& past = client.past[probe.prev_seq % kPastExchanges];
  if (past.seq != probe.prev_seq || past.seq == 0) {
    ++counters_.samples_unmatched;
    return;
  }
  const Exchange exchange{past.t1_ns, past.t2_ns, past.t3_ns, probe.prev_t4_ns};
  past = {};  // an exchange completes once
  if (exchange.t4_ns < exchange.t1_ns) {
    ++counters_.samples_rejected;
    return;
  }
  const OffsetSample sample{
      .time_ns = exchange.ServerMidpointNs(),
      // The filters track the client's uncorrected clock: add back what it already applies.
      .offset_ns = exchange.OffsetNs() + static_cast<double>(probe.prev_correction_ns),
      .delay_ns = exchange.DelayNs(),
  };
  const absl::StatusOr<bool> used = client.filter->Accumulate(sample);
  if (!used.ok()) {
    ++counters_.samples_rejected;
  } else if (*used) {
    ++counters_.samples_used;
  } else {
    ++counters_.samples_outliers;
  }
}

std::size_t ServerCore::EvictIdle(int64_t now_ns) {
  last_sweep_ns_ = now_ns;
  std::size_t evicted = 0;
  while (!lru_.empty() && now_ns - lru_.back().last_seen_ns > options_.idle_timeout_ns) {
    clients_.erase(lru_.back().key);
    lru_.pop_back();
    ++evicted;
  }
  counters_.clients_evicted_idle += evicted;
  return evicted;
}

}  // namespace lab::timesync
