// Time-sync wire protocol, version 1. Full description: docs/timesync-protocol.md.
//
// All integers are big-endian; timestamps are signed nanoseconds since the Unix epoch on the
// sender's clock (the client's virtual clock for t1/t4, the server's CLOCK_REALTIME for
// t2/t3). Both messages are fixed-size; the reply (56 bytes binary, at most 96 as JSON) is
// never larger than the probe (96 bytes), so the server cannot be used as an amplifier.
//
// Probe (client -> server), 96 bytes:
//   0  u32 magic 0x4C425453 ("LBTS")     4 u8 version (1)   5 u8 kind (1 = probe)
//   6  u16 idcode (0x0001 RAW, 0x0002 EWMA, 0x0003 KALMAN, 0x0004 PID)
//   8  u16 flags (bit 0 JSON reply, bit 1 previous exchange present, bit 2 parameters present)
//   10 u16 reserved (0)                  12 u32 client id
//   16 u64 sequence (starts at 1)        24 i64 t1: client transmit time
//   32 u64 previous exchange's sequence  40 i64 previous exchange's t4 (client receive time)
//   48 i64 correction in effect during the previous exchange (sum of applied corrections)
//   56 i64 correction in effect now
//   64 f64 param[0]  72 f64 param[1]  80 f64 param[2]   (IEEE 754 binary64, big-endian)
//   88 u64 reserved (0)
//
// Reply (server -> client), 56 bytes:
//   0  u32 magic  4 u8 version  5 u8 kind (2 = reply)  6 u16 idcode (echoed)
//   8  u16 flags (bit 0 t2 is a kernel timestamp, bit 1 the previous exchange was used by the
//      filter, bit 2 the correction comes from a filter estimate)
//   10 u16 status (0 ok, 1 invalid parameters)   12 u32 client id
//   16 u64 sequence (echoed)  24 i64 t1 (echoed)  32 i64 t2: server receive time
//   40 i64 t3: server transmit time              48 i64 correction: add it to the clock, ns
//
// JSON reply (probe flag bit 0): one object, e.g.
//   {"scheme":"ewma","correction_us":-12.345,"seq":7,"status":"ok"}
// where fields after correction_us are dropped if the object would exceed the probe's size.
#ifndef DATAPLANE_TIMESYNC_WIRE_H_
#define DATAPLANE_TIMESYNC_WIRE_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "dataplane/timesync/scheme.h"

namespace lab::timesync {

inline constexpr uint32_t kMagic = 0x4C425453;  // "LBTS"
inline constexpr uint8_t kVersion = 1;
inline constexpr uint8_t kKindProbe = 1;
inline constexpr uint8_t kKindReply = 2;
inline constexpr std::size_t kProbeSize = 96;
inline constexpr std::size_t kReplySize = 56;

// Probe flags.
inline constexpr uint16_t kProbeJsonReply = 1 << 0;
inline constexpr uint16_t kProbeHasPrevious = 1 << 1;
inline constexpr uint16_t kProbeHasParams = 1 << 2;
inline constexpr uint16_t kProbeKnownFlags = kProbeJsonReply | kProbeHasPrevious | kProbeHasParams;
// Reply flags.
inline constexpr uint16_t kReplyKernelRxTimestamp = 1 << 0;
inline constexpr uint16_t kReplySampleUsed = 1 << 1;
inline constexpr uint16_t kReplyEstimateValid = 1 << 2;

enum class ReplyStatus : uint16_t { kOk = 0, kInvalidParams = 1 };
absl::string_view ReplyStatusName(ReplyStatus status);  // "ok", "invalid_params"

struct Probe {
  Scheme scheme = Scheme::kRaw;
  uint16_t flags = 0;
  uint32_t client_id = 0;
  uint64_t seq = 0;
  int64_t t1_ns = 0;
  uint64_t prev_seq = 0;
  int64_t prev_t4_ns = 0;
  int64_t prev_correction_ns = 0;
  int64_t correction_ns = 0;
  std::array<double, 3> params = {0, 0, 0};
};

struct Reply {
  Scheme scheme = Scheme::kRaw;
  uint16_t flags = 0;
  ReplyStatus status = ReplyStatus::kOk;
  uint32_t client_id = 0;
  uint64_t seq = 0;
  int64_t t1_ns = 0;
  int64_t t2_ns = 0;
  int64_t t3_ns = 0;
  int64_t correction_ns = 0;
};

// Why a datagram was rejected. kOk is not an error.
enum class WireError : uint8_t {
  kOk = 0,
  kTooShort,         // shorter than the fixed size
  kTooLong,          // longer than the fixed size
  kBadMagic,         // not "LBTS"
  kBadVersion,       // a version this build does not speak
  kBadKind,          // a reply sent to the server, or a probe to the client
  kUnknownScheme,    // idcode not in 0x0001..0x0004
  kReservedNotZero,  // reserved bytes or unknown flag bits set
  kBadField,         // a field out of its range (sequence 0, non-finite parameter, ...)
  kBadJson,          // JSON reply that does not parse or lacks a field
};
inline constexpr std::size_t kNumWireErrors = 10;
// "too_short", "bad_magic", ... (stable names used in counters and JSON).
absl::string_view WireErrorName(WireError error);

// Encoders write exactly kProbeSize / kReplySize bytes; `out` must be at least that large.
void EncodeProbe(const Probe& probe, absl::Span<uint8_t> out);
void EncodeReply(const Reply& reply, absl::Span<uint8_t> out);
// Decoders never read past `in`; on error `*out` is unspecified.
WireError DecodeProbe(absl::Span<const uint8_t> in, Probe* out);
WireError DecodeReply(absl::Span<const uint8_t> in, Reply* out);

// The JSON reply for `reply`, at most `max_bytes` long (>= 64 always fits scheme and
// correction_us); optional fields are dropped from the end to fit. t2/t3/flags are not sent.
std::string EncodeJsonReply(const Reply& reply, std::size_t max_bytes);
// Parses a JSON reply into scheme, seq, correction and status (other fields zero).
WireError DecodeJsonReply(absl::string_view json, Reply* out);

}  // namespace lab::timesync

#endif  // DATAPLANE_TIMESYNC_WIRE_H_
