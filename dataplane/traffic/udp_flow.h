// The pieces of a UDP traffic flow that need no socket: the datagram header (wire v1), the
// receiver's sequence bookkeeping (loss, reordering, duplicates), RFC 3550 interarrival
// jitter, and the sender's pacing schedule. All pure: time comes in as arguments. Full
// description of the header and the statistics: docs/traffic-protocol.md ("## UDP").
//
// Datagram, wire v1, all integers big-endian (28-byte header, then zero padding up to the
// requested length, 28..65507 bytes in all):
//   0  u32 magic 0x4C425544 ("LBUD")   4 u8 version (1)   5 u8 flags (0; ignored on receipt)
//   6  u16 reserved (0)                8 u32 flow id     12 u64 sequence (first datagram 0)
//   20 i64 send time: the sender's CLOCK_REALTIME, ns since the Unix epoch
//
// Threading: none of these classes is thread-safe; each belongs to one thread.
#ifndef DATAPLANE_TRAFFIC_UDP_FLOW_H_
#define DATAPLANE_TRAFFIC_UDP_FLOW_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace lab::traffic {

inline constexpr uint32_t kUdpMagic = 0x4C425544;  // "LBUD"
inline constexpr uint8_t kUdpVersion = 1;
inline constexpr std::size_t kUdpHeaderSize = 28;
// The largest UDP payload over IPv4 (65535 - 8-byte UDP header - 20-byte IP header).
inline constexpr std::size_t kUdpMaxDatagramSize = 65507;

struct UdpHeader {
  uint32_t flow_id = 0;
  uint64_t seq = 0;
  int64_t send_ns = 0;  // sender's CLOCK_REALTIME
};

// Why a received datagram was not a traffic datagram. kOk is not an error.
enum class UdpDecodeError : uint8_t {
  kOk = 0,
  kTooShort,         // shorter than kUdpHeaderSize
  kBadMagic,         // not "LBUD"
  kBadVersion,       // a version this build does not speak
  kReservedNotZero,  // the reserved u16 is not 0
};
inline constexpr std::size_t kNumUdpDecodeErrors = 5;
// "ok", "too_short", "bad_magic", "bad_version", "reserved_not_zero" (stable names used in
// counters and JSON).
absl::string_view UdpDecodeErrorName(UdpDecodeError error);

// Writes the header into the first kUdpHeaderSize bytes of `out` and zeros the rest: the
// datagram is all of `out`. InvalidArgument (nothing written) unless `out.size()` is in
// [kUdpHeaderSize, kUdpMaxDatagramSize].
absl::Status EncodeUdpDatagram(const UdpHeader& header, absl::Span<uint8_t> out);
// Reads the header of a received datagram (any length >= kUdpHeaderSize; the padding is not
// inspected). Never reads past `in`; on error `*out` is unchanged.
UdpDecodeError DecodeUdpHeader(absl::Span<const uint8_t> in, UdpHeader* out);

// Receiver-side bookkeeping of one flow's sequence numbers.
//
// Duplicates are detected within a sliding window of kWindow sequence numbers ending at the
// highest sequence seen. A datagram older than that window (seq <= highest - kWindow) cannot
// be checked: it is counted in beyond_window() and, like any late datagram, as received,
// unique and out of order; a duplicate that old is therefore counted as unique (and loss
// underestimated by one), which needs a reordering of more than 65536 datagrams to happen.
class SequenceTracker {
 public:
  static constexpr uint64_t kWindow = 65536;

  enum class Arrival {
    kInOrder,     // higher than every sequence seen before (the first datagram included)
    kOutOfOrder,  // lower than the highest seen, not seen before
    kDuplicate,   // seen before (within the window)
  };

  SequenceTracker();
  Arrival Add(uint64_t seq);

  uint64_t received() const { return received_; }  // every datagram, duplicates included
  uint64_t unique() const { return unique_; }      // distinct sequence numbers
  uint64_t duplicates() const { return duplicates_; }
  uint64_t out_of_order() const { return out_of_order_; }
  uint64_t beyond_window() const { return beyond_window_; }
  bool empty() const { return unique_ == 0; }
  uint64_t highest() const { return highest_; }  // 0 when empty()
  // Datagrams not received out of `sent` (sent - unique, 0 if more arrived than `sent`).
  uint64_t Lost(uint64_t sent) const { return sent > unique_ ? sent - unique_ : 0; }

 private:
  bool TestAndSet(uint64_t seq);
  void Clear(uint64_t seq);

  std::vector<uint64_t> seen_;  // kWindow bits; bit (seq % kWindow) for seq in the window
  uint64_t received_ = 0;
  uint64_t unique_ = 0;
  uint64_t duplicates_ = 0;
  uint64_t out_of_order_ = 0;
  uint64_t beyond_window_ = 0;
  uint64_t highest_ = 0;
};

// RFC 3550 section 6.4.1 interarrival jitter: for consecutive datagrams in arrival order,
// D = (R_j - S_j) - (R_i - S_i) and J += (|D| - J) / 16, with S the send time carried in the
// datagram and R the receive time. The clocks need not agree (their offset cancels).
class JitterEstimator {
 public:
  void Add(int64_t send_ns, int64_t receive_ns);
  // 0 until two datagrams arrived.
  double jitter_ns() const { return jitter_ns_; }
  uint64_t samples() const { return samples_; }

 private:
  double jitter_ns_ = 0;
  int64_t last_transit_ns_ = 0;
  uint64_t samples_ = 0;
};

// The pacing rates Pacer accepts, packets/s (beyond them the slot arithmetic loses meaning).
inline constexpr double kMinRatePps = 1e-3;
inline constexpr double kMaxRatePps = 1e9;

// The sender's schedule: slot k is due at start_ns + k * 1e9 / rate_pps. Due() hands out
// the slots that are due, at most `burst` at once; when the sender has fallen behind by more
// than `burst` slots it does not burst to catch up: the older missed slots are skipped
// (counted in skipped_slots()) and the schedule goes on from now.
class Pacer {
 public:
  // InvalidArgument unless rate_pps is finite and > 0 and burst >= 1.
  static absl::StatusOr<Pacer> Create(double rate_pps, uint32_t burst, int64_t start_ns);

  // How many datagrams to send now (0..burst); they are taken from the schedule.
  uint64_t Due(int64_t now_ns);
  // When the next slot is due (possibly in the past, if Due() was not called since).
  int64_t NextDueNs() const;
  uint64_t skipped_slots() const { return skipped_; }
  uint64_t slots_taken() const { return taken_; }  // slots handed out by Due()

 private:
  Pacer(double interval_ns, uint32_t burst, int64_t start_ns)
      : interval_ns_(interval_ns), burst_(burst), start_ns_(start_ns) {}

  double interval_ns_;
  uint32_t burst_;
  int64_t start_ns_;
  uint64_t next_slot_ = 0;
  uint64_t skipped_ = 0;
  uint64_t taken_ = 0;
};

}  // namespace lab::traffic

#endif  // DATAPLANE_TRAFFIC_UDP_FLOW_H_
