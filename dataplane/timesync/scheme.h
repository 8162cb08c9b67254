// The clock-correction schemes a time-sync client can choose, their wire IDCODEs and their
// parameters. Parameters are validated here, once, for the CLI, the wire decoder and the
// filters alike: a bad value is rejected with a message, never clamped.
#ifndef DATAPLANE_TIMESYNC_SCHEME_H_
#define DATAPLANE_TIMESYNC_SCHEME_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace lab::timesync {

// Values are the wire IDCODEs (the seed's 0x0001..0x0004).
enum class Scheme : uint16_t { kRaw = 0x0001, kEwma = 0x0002, kKalman = 0x0003, kPid = 0x0004 };

inline constexpr std::array<Scheme, 4> kAllSchemes = {Scheme::kRaw, Scheme::kEwma, Scheme::kKalman,
                                                      Scheme::kPid};

// "raw", "ewma", "kalman", "pid".
absl::string_view SchemeName(Scheme scheme);
// Case-insensitive name to scheme; InvalidArgument lists the valid names.
absl::StatusOr<Scheme> ParseScheme(absl::string_view name);
// True when `idcode` is one of the four IDCODEs.
bool IsKnownIdcode(uint16_t idcode);

// EWMA: estimate += alpha * (sample - estimate). alpha in (0, 1]; 1 behaves like RAW.
struct EwmaParams {
  double alpha = 0.1;
};

// Kalman filter on the state (offset, drift) with a constant-drift model.
struct KalmanParams {
  // Standard deviation of one offset measurement, microseconds, in (0, 1e6].
  double measurement_noise_us = 2.0;
  // Random walk of the drift, ppb per sqrt(second), in [0, 1e6]: how fast the frequency may
  // wander.
  double drift_noise_ppb = 10.0;
  // White noise of the offset itself, ns per sqrt(second), in [0, 1e9].
  double offset_noise_ns = 10.0;
};

// PID tracking loop: per accepted sample, with e the prediction error,
//   offset += kp*e + kd*(e - e_prev);   drift += ki*e/max(dt, typical dt).
// Gains are per sample. The loop must be stable: the roots of
//   z^3 - (2-kp-kd-ki) z^2 - (kp+2kd-1) z + kd
// inside the unit circle (checked by Validate). ki > 0 gives zero steady-state error
// under constant drift; ki = 0 is a P/PD loop.
struct PidParams {
  double kp = 0.3;
  double ki = 0.05;
  double kd = 0.0;
};

struct SchemeParams {
  Scheme scheme = Scheme::kRaw;
  EwmaParams ewma;
  KalmanParams kalman;
  PidParams pid;

  // The three wire parameter slots for this scheme (unused slots 0).
  std::array<double, 3> ToWire() const;
  // Fills the fields of `scheme` from the wire slots (no validation; call Validate()).
  static SchemeParams FromWire(Scheme scheme, const std::array<double, 3>& slots);
  // InvalidArgument naming the parameter, its value and the accepted range.
  absl::Status Validate() const;
  // "alpha=0.1" / "kp=0.3 ki=0.05 kd=0" / ... for tables and logs.
  std::string Describe() const;
};

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_SCHEME_H_
