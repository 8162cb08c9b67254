#include "dataplane/timesync/filter.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace lab::timesync {

namespace {

constexpr double kNsPerSecond = 1e9;

double SecondsBetween(int64_t from_ns, int64_t to_ns) {
  return static_cast<double>(to_ns - from_ns) / kNsPerSecond;
}

// RAW: the latest measured offset, no smoothing, no outlier rejection.
class RawFilter final : public ClockFilter {
 public:
  Scheme scheme() const override { return Scheme::kRaw; }
  std::optional<double> Estimate(int64_t) const override { return latest_; }

 protected:
  bool Update(const OffsetSample& s) override {
    latest_ = s.offset_ns;
    return true;
  }

 private:
  std::optional<double> latest_;
};

// EWMA, started at the first sample. Under constant drift d and sample spacing T it lags
// the signal by d*T*(1-alpha)/alpha (no drift term).
class EwmaFilter final : public ClockFilter {
 public:
  explicit EwmaFilter(EwmaParams p) : p_(p) {}
  Scheme scheme() const override { return Scheme::kEwma; }
  std::optional<double> Estimate(int64_t) const override { return estimate_; }

 protected:
  bool Update(const OffsetSample& s) override {
    if (!gate_.Accept(s.delay_ns)) return false;
    estimate_ = estimate_ ? *estimate_ + p_.alpha * (s.offset_ns - *estimate_) : s.offset_ns;
    return true;
  }

 private:
  EwmaParams p_;
  DelayGate gate_;
  std::optional<double> estimate_;
};

// Kalman filter, state x = (offset ns, drift ns/s), constant-drift model:
//   x(t+dt) = F x(t) + w,  F = [[1, dt], [0, 1]],
//   Q = [[qo*dt + qd*dt^3/3, qd*dt^2/2], [qd*dt^2/2, qd*dt]]
// with qo = offset_noise^2 (ns^2/s) and qd = drift_noise^2 ((ns/s)^2/s). A measurement sees
// the offset with variance r^2 + (excess delay / 2)^2: the excess delay over the recent
// minimum bounds the asymmetry it may carry.
class KalmanFilter final : public ClockFilter {
 public:
  explicit KalmanFilter(KalmanParams p)
      : r_ns2_(std::pow(p.measurement_noise_us * 1000.0, 2)),
        qo_(p.offset_noise_ns * p.offset_noise_ns),
        qd_(p.drift_noise_ppb * p.drift_noise_ppb) {}
  Scheme scheme() const override { return Scheme::kKalman; }
  std::optional<double> Estimate(int64_t at_ns) const override {
    if (!initialised_) return std::nullopt;
    return offset_ + drift_ * SecondsBetween(time_ns_, at_ns);
  }

 protected:
  bool Update(const OffsetSample& s) override {
    if (!gate_.Accept(s.delay_ns)) return false;
    const double excess = std::max(0.0, s.delay_ns - gate_.min_delay_ns());
    const double r = r_ns2_ + excess * excess / 4.0;
    if (!initialised_) {
      offset_ = s.offset_ns;
      drift_ = 0;
      p00_ = r;
      p01_ = 0;
      p11_ = kInitialDriftSigma * kInitialDriftSigma;
      time_ns_ = s.time_ns;
      initialised_ = true;
      return true;
    }
    const double dt = SecondsBetween(time_ns_, s.time_ns);
    // Predict.
    offset_ += drift_ * dt;
    const double p00 = p00_ + 2 * dt * p01_ + dt * dt * p11_ + qo_ * dt + qd_ * dt * dt * dt / 3;
    const double p01 = p01_ + dt * p11_ + qd_ * dt * dt / 2;
    const double p11 = p11_ + qd_ * dt;
    // Update with the offset measurement (H = [1, 0]).
    const double innovation = s.offset_ns - offset_;
    const double s_var = p00 + r;
    const double k0 = p00 / s_var;
    const double k1 = p01 / s_var;
    offset_ += k0 * innovation;
    drift_ += k1 * innovation;
    p00_ = (1 - k0) * p00;
    p01_ = (1 - k0) * p01;
    p11_ = p11 - k1 * p01;
    time_ns_ = s.time_ns;
    return true;
  }

 private:
  // Prior uncertainty of the drift: 500 ppm, beyond any sane oscillator.
  static constexpr double kInitialDriftSigma = 500e3;  // ns/s
  double r_ns2_, qo_, qd_;
  DelayGate gate_;
  bool initialised_ = false;
  int64_t time_ns_ = 0;
  double offset_ = 0, drift_ = 0;
  double p00_ = 0, p01_ = 0, p11_ = 0;
};

// PID tracking loop (a PI loop is what NTP and ptp4l use): predicts with its drift
// estimate, then corrects offset (P, D) and drift (I, scaled by 1/dt so the drift update is
// the measured frequency error whatever the sample spacing; dt is taken no shorter than the
// typical spacing, so an early sample cannot amplify noise).
class PidFilter final : public ClockFilter {
 public:
  explicit PidFilter(PidParams p) : p_(p) {}
  Scheme scheme() const override { return Scheme::kPid; }
  std::optional<double> Estimate(int64_t at_ns) const override {
    if (!initialised_) return std::nullopt;
    return offset_ + drift_ * SecondsBetween(time_ns_, at_ns);
  }

 protected:
  bool Update(const OffsetSample& s) override {
    if (!gate_.Accept(s.delay_ns)) return false;
    if (!initialised_) {
      offset_ = s.offset_ns;
      time_ns_ = s.time_ns;
      initialised_ = true;
      return true;
    }
    const double dt = SecondsBetween(time_ns_, s.time_ns);
    // Running mean of the spacing, blind to gaps (a pause must not weaken the loop).
    if (typical_dt_ == 0) {
      typical_dt_ = dt;
    } else if (dt <= 2 * typical_dt_) {
      typical_dt_ += (dt - typical_dt_) / 8;
    }
    const double predicted = offset_ + drift_ * dt;
    const double e = s.offset_ns - predicted;
    offset_ = predicted + p_.kp * e + p_.kd * (e - last_error_);
    // e/dt is the drift error when dt is long enough for drift to dominate the noise; a
    // sample that comes early (after a client stall) must not turn noise into drift.
    drift_ += p_.ki * e / std::max(dt, typical_dt_);
    last_error_ = e;
    time_ns_ = s.time_ns;
    return true;
  }

 private:
  PidParams p_;
  DelayGate gate_;
  bool initialised_ = false;
  int64_t time_ns_ = 0;
  double offset_ = 0, drift_ = 0, last_error_ = 0;
  double typical_dt_ = 0;  // mean spacing of accepted samples, gaps left out, s
};

}  // namespace

absl::StatusOr<bool> ClockFilter::Accumulate(const OffsetSample& sample) {
  if (!std::isfinite(sample.offset_ns) || !std::isfinite(sample.delay_ns)) {
    return absl::InvalidArgumentError("sample offset and delay must be finite");
  }
  if (last_time_ns_ && sample.time_ns <= *last_time_ns_) {
    return absl::InvalidArgumentError(absl::StrCat("sample at ", sample.time_ns,
                                                   " ns is not newer than the previous one at ",
                                                   *last_time_ns_, " ns (duplicate or reordered)"));
  }
  last_time_ns_ = sample.time_ns;
  return Update(sample);
}

absl::StatusOr<std::unique_ptr<ClockFilter>> MakeFilter(const SchemeParams& params) {
  if (absl::Status s = params.Validate(); !s.ok()) return s;
  switch (params.scheme) {
    case Scheme::kRaw:
      return std::make_unique<RawFilter>();
    case Scheme::kEwma:
      return std::make_unique<EwmaFilter>(params.ewma);
    case Scheme::kKalman:
      return std::make_unique<KalmanFilter>(params.kalman);
    case Scheme::kPid:
      return std::make_unique<PidFilter>(params.pid);
  }
  return absl::InvalidArgumentError("unknown scheme");
}

bool DelayGate::Accept(double delay_ns) {
  bool accept = true;
  if (count_ > 0) {
    const double minimum = sorted_[0];
    const double median = sorted_[count_ / 2];
    const double limit = std::max(kFloorNs, kSpreadFactor * (median - minimum));
    accept = delay_ns - minimum <= limit || consecutive_rejects_ >= kMaxConsecutive;
  }
  consecutive_rejects_ = accept ? 0 : consecutive_rejects_ + 1;
  double* const begin = sorted_.data();
  if (count_ == kWindow) {  // forget the oldest delay
    double* const oldest = std::lower_bound(begin, begin + count_, arrivals_[next_]);
    std::copy(oldest + 1, begin + count_, oldest);
    --count_;
  }
  double* const at = std::upper_bound(begin, begin + count_, delay_ns);
  std::copy_backward(at, begin + count_, begin + count_ + 1);
  *at = delay_ns;
  ++count_;
  arrivals_[next_] = delay_ns;
  next_ = (next_ + 1) % kWindow;
  return accept;
}

}  // namespace lab::timesync
