#include "dataplane/timesync/client_core.h"

#include "absl/strings/string_view.h"
#include "dataplane/timesync/exchange.h"

namespace lab::timesync {

ClientCore::ClientCore(ClientCoreOptions options, int64_t start_host_ns)
    : options_(std::move(options)), clock_(start_host_ns, options_.offset_ns, options_.drift_ppm) {}

std::size_t ClientCore::MakeProbe(int64_t host_ns, absl::Span<uint8_t> out) {
  Probe probe;
  probe.scheme = options_.params.scheme;
  probe.client_id = options_.client_id;
  probe.seq = ++counters_.sent;
  probe.t1_ns = clock_.Read(host_ns);
  probe.correction_ns = clock_.correction_ns();
  probe.params = options_.params.ToWire();
  probe.flags = kProbeHasParams;
  if (options_.json_feedback) probe.flags |= kProbeJsonReply;
  if (previous_) {
    probe.flags |= kProbeHasPrevious;
    probe.prev_seq = previous_->seq;
    probe.prev_t4_ns = previous_->t4_ns;
    probe.prev_correction_ns = previous_->correction_ns;
  }
  sent_.push_back({host_ns, probe.t1_ns, probe.correction_ns, false});
  EncodeProbe(probe, out);
  return kProbeSize;
}

WireError ClientCore::HandleDatagram(absl::Span<const uint8_t> in, int64_t host_ns,
                                     net::TimestampSource source) {
  Reply reply;
  const bool json = !in.empty() && in[0] == '{';
  const WireError error =
      json ? DecodeJsonReply(absl::string_view(reinterpret_cast<const char*>(in.data()), in.size()),
                             &reply)
           : DecodeReply(in, &reply);
  if (error != WireError::kOk) {
    ++counters_.malformed;
    return error;
  }
  if (json) reply.client_id = options_.client_id;  // the JSON form does not carry it
  if (reply.client_id != options_.client_id || reply.scheme != options_.params.scheme ||
      reply.seq == 0 || reply.seq > sent_.size()) {
    ++counters_.foreign;
    return WireError::kBadField;
  }
  SentProbe& probe = sent_[reply.seq - 1];
  if (!json && reply.t1_ns != probe.t1_ns) {  // origin check, as NTP clients do
    ++counters_.foreign;
    return WireError::kBadField;
  }
  if (probe.answered) {
    ++counters_.duplicates;
    return WireError::kOk;
  }
  probe.answered = true;
  ++counters_.received;

  PacketRecord record;
  record.seq = reply.seq;
  record.send_host_ns = probe.host_ns;
  record.recv_host_ns = host_ns;
  record.rtt_ns = static_cast<double>(host_ns - probe.host_ns);
  record.correction_ns = reply.correction_ns;
  record.status = reply.status;
  record.server_kernel_timestamp = (reply.flags & kReplyKernelRxTimestamp) != 0;
  record.client_kernel_timestamp = source == net::TimestampSource::kKernel;

  const int64_t t4_ns = clock_.Read(host_ns);
  if (!json) {
    record.measured_offset_ns = Exchange{probe.t1_ns, reply.t2_ns, reply.t3_ns, t4_ns}.OffsetNs();
  }
  const int64_t mid_host_ns = probe.host_ns + (host_ns - probe.host_ns) / 2;
  // The clock's error at the midpoint as it stood when the probe left.
  const double error_then = clock_.ErrorNs(mid_host_ns) -
                            static_cast<double>(clock_.correction_ns() - probe.correction_ns);
  record.true_offset_ns = -error_then;

  if (reply.status == ReplyStatus::kInvalidParams) {
    ++counters_.invalid_params;
  } else if (reply.seq != counters_.sent) {
    ++counters_.late;
  } else {
    previous_ = CompletedExchange{reply.seq, t4_ns, probe.correction_ns};
    clock_.ApplyCorrection(reply.correction_ns);
    record.applied = true;
  }
  record.error_ns = clock_.ErrorNs(host_ns);
  records_.push_back(record);
  return WireError::kOk;
}

}  // namespace lab::timesync
