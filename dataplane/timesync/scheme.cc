#include "dataplane/timesync/scheme.h"

#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lab::timesync {

absl::string_view SchemeName(Scheme scheme) {
  switch (scheme) {
    case Scheme::kRaw:
      return "raw";
    case Scheme::kEwma:
      return "ewma";
    case Scheme::kKalman:
      return "kalman";
    case Scheme::kPid:
      return "pid";
  }
  return "unknown";
}

absl::StatusOr<Scheme> ParseScheme(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (Scheme s : kAllSchemes) {
    if (lower == SchemeName(s)) return s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown scheme '", name, "'; use one of: raw, ewma, kalman, pid"));
}

bool IsKnownIdcode(uint16_t idcode) { return idcode >= 0x0001 && idcode <= 0x0004; }

std::array<double, 3> SchemeParams::ToWire() const {
  switch (scheme) {
    case Scheme::kRaw:
      return {0, 0, 0};
    case Scheme::kEwma:
      return {ewma.alpha, 0, 0};
    case Scheme::kKalman:
      return {kalman.measurement_noise_us, kalman.drift_noise_ppb, kalman.offset_noise_ns};
    case Scheme::kPid:
      return {pid.kp, pid.ki, pid.kd};
  }
  return {0, 0, 0};
}

SchemeParams SchemeParams::FromWire(Scheme scheme, const std::array<double, 3>& slots) {
  SchemeParams p;
  p.scheme = scheme;
  switch (scheme) {
    case Scheme::kRaw:
      break;
    case Scheme::kEwma:
      p.ewma.alpha = slots[0];
      break;
    case Scheme::kKalman:
      p.kalman = {slots[0], slots[1], slots[2]};
      break;
    case Scheme::kPid:
      p.pid = {slots[0], slots[1], slots[2]};
      break;
  }
  return p;
}

namespace {

absl::Status CheckFinite(absl::string_view name, double value) {
  if (!std::isfinite(value)) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be a finite number, got ", value));
  }
  return absl::OkStatus();
}

// Jury stability test for z^3 + a2 z^2 + a1 z + a0 (all roots strictly inside the unit
// circle), allowing the single root z = 1 that ki = 0 leaves (a bounded P/PD loop).
bool PidLoopStable(const PidParams& p) {
  const double a2 = -(2 - p.kp - p.kd - p.ki);
  const double a1 = -(p.kp + 2 * p.kd - 1);
  const double a0 = p.kd;
  const double p_at_1 = 1 + a2 + a1 + a0;    // equals ki
  const double p_at_m1 = -1 + a2 - a1 + a0;  // must be < 0
  if (p.ki == 0) {
    // Divide out (z - 1): z^2 + (a2 + 1) z + (a2 + a1 + 1); Jury for a quadratic.
    const double b1 = a2 + 1;
    const double b0 = a2 + a1 + 1;
    return std::abs(b0) < 1 && 1 + b1 + b0 > 0 && 1 - b1 + b0 > 0;
  }
  if (!(p_at_1 > 0) || !(p_at_m1 < 0) || !(std::abs(a0) < 1)) return false;
  return std::abs(a0 * a0 - 1) > std::abs(a0 * a2 - a1);
}

}  // namespace

absl::Status SchemeParams::Validate() const {
  switch (scheme) {
    case Scheme::kRaw:
      return absl::OkStatus();
    case Scheme::kEwma:
      if (!(ewma.alpha > 0 && ewma.alpha <= 1)) {
        return absl::InvalidArgumentError(absl::StrCat("EWMA alpha must be in (0, 1], got ",
                                                       ewma.alpha, "; 0.1 is a good start"));
      }
      return absl::OkStatus();
    case Scheme::kKalman:
      // Upper bounds keep every covariance term finite (squares stay far below 1e308).
      if (!(kalman.measurement_noise_us > 0 && kalman.measurement_noise_us <= 1e6)) {
        return absl::InvalidArgumentError(
            absl::StrCat("Kalman measurement noise must be in (0, 1e6] us, got ",
                         kalman.measurement_noise_us, "; 2 us suits loopback"));
      }
      if (!(kalman.drift_noise_ppb >= 0 && kalman.drift_noise_ppb <= 1e6)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Kalman drift noise must be in [0, 1e6] ppb/sqrt(s), got ", kalman.drift_noise_ppb));
      }
      if (!(kalman.offset_noise_ns >= 0 && kalman.offset_noise_ns <= 1e9)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "Kalman offset noise must be in [0, 1e9] ns/sqrt(s), got ", kalman.offset_noise_ns));
      }
      return absl::OkStatus();
    case Scheme::kPid:
      for (auto [name, value] : {std::pair{"kp", pid.kp}, {"ki", pid.ki}, {"kd", pid.kd}}) {
        if (auto s = CheckFinite(absl::StrCat("PID ", name), value); !s.ok()) return s;
        if (value < 0) {
          return absl::InvalidArgumentError(
              absl::StrCat("PID ", name, " must be >= 0, got ", value));
        }
      }
      if (!PidLoopStable(pid)) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "PID gains kp=%g ki=%g kd=%g make the loop unstable (a pole on or outside the unit "
            "circle); try kp=0.3 ki=0.05 kd=0",
            pid.kp, pid.ki, pid.kd));
      }
      return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown scheme");
}

std::string SchemeParams::Describe() const {
  switch (scheme) {
    case Scheme::kRaw:
      return "-";
    case Scheme::kEwma:
      return absl::StrFormat("alpha=%g", ewma.alpha);
    case Scheme::kKalman:
      return absl::StrFormat("r=%gus q_drift=%gppb q_offset=%gns", kalman.measurement_noise_us,
                             kalman.drift_noise_ppb, kalman.offset_noise_ns);
    case Scheme::kPid:
      return absl::StrFormat("kp=%g ki=%g kd=%g", pid.kp, pid.ki, pid.kd);
  }
  return "?";
}

}  // namespace lab::timesync
