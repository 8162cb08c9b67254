#include "rpc/timesync_conversion.h"

namespace lab::rpc {

absl::StatusOr<timesync::SchemeParams> FromProto(lab::v1::Scheme scheme,
                                                 const lab::v1::SchemeParams& p) {
  timesync::SchemeParams out;
  switch (scheme) {
    case lab::v1::SCHEME_RAW:
      out.scheme = timesync::Scheme::kRaw;
      break;
    case lab::v1::SCHEME_EWMA:
      out.scheme = timesync::Scheme::kEwma;
      break;
    case lab::v1::SCHEME_KALMAN:
      out.scheme = timesync::Scheme::kKalman;
      break;
    case lab::v1::SCHEME_PID:
      out.scheme = timesync::Scheme::kPid;
      break;
    default:
      return absl::InvalidArgumentError("scheme missing or unknown; use raw, ewma, kalman or pid");
  }
  if (p.has_ewma_alpha()) out.ewma.alpha = p.ewma_alpha();
  if (p.has_kalman_measurement_noise_us()) {
    out.kalman.measurement_noise_us = p.kalman_measurement_noise_us();
  }
  if (p.has_kalman_drift_noise_ppb()) out.kalman.drift_noise_ppb = p.kalman_drift_noise_ppb();
  if (p.has_kalman_offset_noise_ns()) out.kalman.offset_noise_ns = p.kalman_offset_noise_ns();
  if (p.has_pid_kp()) out.pid.kp = p.pid_kp();
  if (p.has_pid_ki()) out.pid.ki = p.pid_ki();
  if (p.has_pid_kd()) out.pid.kd = p.pid_kd();
  if (absl::Status s = out.Validate(); !s.ok()) return s;
  return out;
}

lab::v1::Scheme ToProto(timesync::Scheme scheme) {
  return static_cast<lab::v1::Scheme>(static_cast<int>(scheme));  // same numbering (IDCODEs)
}

void ToProto(const timesync::PacketRecord& r, lab::v1::TimeSyncSample* out) {
  out->set_seq(r.seq);
  out->set_send_host_ns(r.send_host_ns);
  out->set_recv_host_ns(r.recv_host_ns);
  out->set_rtt_ns(r.rtt_ns);
  if (r.measured_offset_ns) out->set_measured_offset_ns(*r.measured_offset_ns);
  out->set_true_offset_ns(r.true_offset_ns);
  out->set_correction_ns(r.correction_ns);
  out->set_applied(r.applied);
  out->set_error_ns(r.error_ns);
}

}  // namespace lab::rpc
