#include "dataplane/traffic/udp_flow.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace lab::traffic {

namespace {

void Put16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void Put32(uint8_t* p, uint32_t v) {
  Put16(p, static_cast<uint16_t>(v >> 16));
  Put16(p + 2, static_cast<uint16_t>(v));
}
void Put64(uint8_t* p, uint64_t v) {
  Put32(p, static_cast<uint32_t>(v >> 32));
  Put32(p + 4, static_cast<uint32_t>(v));
}
uint16_t Get16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t Get32(const uint8_t* p) {
  return (static_cast<uint32_t>(Get16(p)) << 16) | static_cast<uint32_t>(Get16(p + 2));
}
uint64_t Get64(const uint8_t* p) {
  return (static_cast<uint64_t>(Get32(p)) << 32) | static_cast<uint64_t>(Get32(p + 4));
}

}  // namespace

absl::string_view UdpDecodeErrorName(UdpDecodeError error) {
  switch (error) {
    case UdpDecodeError::kOk:
      return "ok";
    case UdpDecodeError::kTooShort:
      return "too_short";
    case UdpDecodeError::kBadMagic:
      return "bad_magic";
    case UdpDecodeError::kBadVersion:
      return "bad_version";
    case UdpDecodeError::kReservedNotZero:
      return "reserved_not_zero";
  }
  return "unknown";
}

absl::Status EncodeUdpDatagram(const UdpHeader& header, absl::Span<uint8_t> out) {
  if (out.size() < kUdpHeaderSize || out.size() > kUdpMaxDatagramSize) {
    return absl::InvalidArgumentError(absl::StrCat("a UDP traffic datagram is ", kUdpHeaderSize,
                                                   " to ", kUdpMaxDatagramSize, " bytes, not ",
                                                   out.size()));
  }
  uint8_t* p = out.data();
  Put32(p, kUdpMagic);
  p[4] = kUdpVersion;
  p[5] = 0;  // flags
  Put16(p + 6, 0);
  Put32(p + 8, header.flow_id);
  Put64(p + 12, header.seq);
  Put64(p + 20, static_cast<uint64_t>(header.send_ns));
  std::memset(p + kUdpHeaderSize, 0, out.size() - kUdpHeaderSize);
  return absl::OkStatus();
}

UdpDecodeError DecodeUdpHeader(absl::Span<const uint8_t> in, UdpHeader* out) {
  if (in.size() < kUdpHeaderSize) return UdpDecodeError::kTooShort;
  const uint8_t* p = in.data();
  if (Get32(p) != kUdpMagic) return UdpDecodeError::kBadMagic;
  if (p[4] != kUdpVersion) return UdpDecodeError::kBadVersion;
  if (Get16(p + 6) != 0) return UdpDecodeError::kReservedNotZero;
  out->flow_id = Get32(p + 8);
  out->seq = Get64(p + 12);
  out->send_ns = static_cast<int64_t>(Get64(p + 20));
  return UdpDecodeError::kOk;
}

SequenceTracker::SequenceTracker() : seen_(kWindow / 64, 0) {}

bool SequenceTracker::TestAndSet(uint64_t seq) {
  const uint64_t bit = seq % kWindow;
  uint64_t& word = seen_[bit / 64];
  const uint64_t mask = uint64_t{1} << (bit % 64);
  const bool was_set = (word & mask) != 0;
  word |= mask;
  return was_set;
}

void SequenceTracker::Clear(uint64_t seq) {
  const uint64_t bit = seq % kWindow;
  seen_[bit / 64] &= ~(uint64_t{1} << (bit % 64));
}

SequenceTracker::Arrival SequenceTracker::Add(uint64_t seq) {
  ++received_;
  if (unique_ == 0 || seq > highest_) {
    if (unique_ != 0) {
      // The window slides up: slots of the sequences now entering it held sequences that
      // just left it.
      if (seq - highest_ >= kWindow) {
        std::fill(seen_.begin(), seen_.end(), 0);
      } else {
        for (uint64_t s = highest_ + 1; s < seq; ++s) Clear(s);
        Clear(seq);
      }
    }
    TestAndSet(seq);
    highest_ = seq;
    ++unique_;
    return Arrival::kInOrder;
  }
  if (highest_ - seq >= kWindow) {
    ++beyond_window_;
    ++unique_;
    ++out_of_order_;
    return Arrival::kOutOfOrder;
  }
  if (TestAndSet(seq)) {
    ++duplicates_;
    return Arrival::kDuplicate;
  }
  ++unique_;
  ++out_of_order_;
  return Arrival::kOutOfOrder;
}

void JitterEstimator::Add(int64_t send_ns, int64_t receive_ns) {
  const int64_t transit = receive_ns - send_ns;
  if (samples_ > 0) {
    const double d = std::abs(static_cast<double>(transit - last_transit_ns_));
    jitter_ns_ += (d - jitter_ns_) / 16.0;
  }
  last_transit_ns_ = transit;
  ++samples_;
}

absl::StatusOr<Pacer> Pacer::Create(double rate_pps, uint32_t burst, int64_t start_ns) {
  if (!std::isfinite(rate_pps) || !(rate_pps >= kMinRatePps) || rate_pps > kMaxRatePps) {
    return absl::InvalidArgumentError(absl::StrCat("pacing rate must be in [", kMinRatePps, ", ",
                                                   kMaxRatePps, "] packets/s, got ", rate_pps));
  }
  if (burst < 1) return absl::InvalidArgumentError("pacing burst must be >= 1");
  return Pacer(1e9 / rate_pps, burst, start_ns);
}

namespace {

int64_t SlotNs(int64_t start_ns, double interval_ns, uint64_t slot) {
  return start_ns + static_cast<int64_t>(std::llround(static_cast<double>(slot) * interval_ns));
}

}  // namespace

uint64_t Pacer::Due(int64_t now_ns) {
  if (now_ns < SlotNs(start_ns_, interval_ns_, next_slot_)) return 0;
  // The last slot due at or before now: estimated, then corrected against SlotNs's rounding.
  uint64_t last = static_cast<uint64_t>(static_cast<double>(now_ns - start_ns_) / interval_ns_);
  while (SlotNs(start_ns_, interval_ns_, last + 1) <= now_ns) ++last;
  while (last > next_slot_ && SlotNs(start_ns_, interval_ns_, last) > now_ns) --last;
  const uint64_t due = last + 1 - next_slot_;
  const uint64_t send = due > burst_ ? burst_ : due;
  skipped_ += due - send;
  taken_ += send;
  next_slot_ = last + 1;
  return send;
}

int64_t Pacer::NextDueNs() const { return SlotNs(start_ns_, interval_ns_, next_slot_); }

}  // namespace lab::traffic
