#include "dataplane/timesync/wire.h"

#include <endian.h>

#include <bit>
#include <cmath>
#include <cstring>

#include "absl/strings/str_format.h"
#include "nlohmann/json.hpp"

namespace lab::timesync {

namespace {

// Big-endian field access at fixed offsets. Callers check sizes first.
void Put16(uint8_t* p, uint16_t v) {
  v = htobe16(v);
  std::memcpy(p, &v, 2);
}
void Put32(uint8_t* p, uint32_t v) {
  v = htobe32(v);
  std::memcpy(p, &v, 4);
}
void Put64(uint8_t* p, uint64_t v) {
  v = htobe64(v);
  std::memcpy(p, &v, 8);
}
void PutI64(uint8_t* p, int64_t v) { Put64(p, static_cast<uint64_t>(v)); }
void PutF64(uint8_t* p, double v) { Put64(p, std::bit_cast<uint64_t>(v)); }
uint16_t Get16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return be16toh(v);
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return be32toh(v);
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return be64toh(v);
}
int64_t GetI64(const uint8_t* p) { return static_cast<int64_t>(Get64(p)); }
double GetF64(const uint8_t* p) { return std::bit_cast<double>(Get64(p)); }

void PutHeader(uint8_t* p, uint8_t kind, Scheme scheme, uint16_t flags, uint16_t word10,
               uint32_t client_id) {
  Put32(p, kMagic);
  p[4] = kVersion;
  p[5] = kind;
  Put16(p + 6, static_cast<uint16_t>(scheme));
  Put16(p + 8, flags);
  Put16(p + 10, word10);
  Put32(p + 12, client_id);
}

// Checks size, magic, version, kind and idcode, the common prefix of both messages.
WireError CheckHeader(absl::Span<const uint8_t> in, std::size_t size, uint8_t kind) {
  // Magic first: a short foreign datagram is "bad magic", not "too short".
  if (in.size() >= 4 && Get32(in.data()) != kMagic) return WireError::kBadMagic;
  if (in.size() < size) return WireError::kTooShort;
  if (in.size() > size) return WireError::kTooLong;
  if (in[4] != kVersion) return WireError::kBadVersion;
  if (in[5] != kind) return WireError::kBadKind;
  if (!IsKnownIdcode(Get16(in.data() + 6))) return WireError::kUnknownScheme;
  return WireError::kOk;
}

}  // namespace

absl::string_view ReplyStatusName(ReplyStatus status) {
  return status == ReplyStatus::kOk ? "ok" : "invalid_params";
}

absl::string_view WireErrorName(WireError error) {
  switch (error) {
    case WireError::kOk:
      return "ok";
    case WireError::kTooShort:
      return "too_short";
    case WireError::kTooLong:
      return "too_long";
    case WireError::kBadMagic:
      return "bad_magic";
    case WireError::kBadVersion:
      return "bad_version";
    case WireError::kBadKind:
      return "bad_kind";
    case WireError::kUnknownScheme:
      return "unknown_scheme";
    case WireError::kReservedNotZero:
      return "reserved_not_zero";
    case WireError::kBadField:
      return "bad_field";
    case WireError::kBadJson:
      return "bad_json";
  }
  return "unknown";
}

void EncodeProbe(const Probe& probe, absl::Span<uint8_t> out) {
  uint8_t* p = out.data();
  std::memset(p, 0, kProbeSize);
  PutHeader(p, kKindProbe, probe.scheme, probe.flags, 0, probe.client_id);
  Put64(p + 16, probe.seq);
  PutI64(p + 24, probe.t1_ns);
  Put64(p + 32, probe.prev_seq);
  PutI64(p + 40, probe.prev_t4_ns);
  PutI64(p + 48, probe.prev_correction_ns);
  PutI64(p + 56, probe.correction_ns);
  PutF64(p + 64, probe.params[0]);
  PutF64(p + 72, probe.params[1]);
  PutF64(p + 80, probe.params[2]);
}

WireError DecodeProbe(absl::Span<const uint8_t> in, Probe* out) {
  if (WireError e = CheckHeader(in, kProbeSize, kKindProbe); e != WireError::kOk) return e;
  const uint8_t* p = in.data();
  out->scheme = static_cast<Scheme>(Get16(p + 6));
  out->flags = Get16(p + 8);
  if ((out->flags & ~kProbeKnownFlags) != 0 || Get16(p + 10) != 0 || Get64(p + 88) != 0) {
    return WireError::kReservedNotZero;
  }
  out->client_id = Get32(p + 12);
  out->seq = Get64(p + 16);
  out->t1_ns = GetI64(p + 24);
  out->prev_seq = Get64(p + 32);
  out->prev_t4_ns = GetI64(p + 40);
  out->prev_correction_ns = GetI64(p + 48);
  out->correction_ns = GetI64(p + 56);
  for (int i = 0; i < 3; ++i) out->params[i] = GetF64(p + 64 + 8 * i);
  if (out->seq == 0) return WireError::kBadField;
  if ((out->flags & kProbeHasPrevious) != 0 && out->prev_seq >= out->seq) {
    return WireError::kBadField;
  }
  for (double v : out->params) {
    if (!std::isfinite(v)) return WireError::kBadField;
  }
  return WireError::kOk;
}

void EncodeReply(const Reply& reply, absl::Span<uint8_t> out) {
  uint8_t* p = out.data();
  PutHeader(p, kKindReply, reply.scheme, reply.flags, static_cast<uint16_t>(reply.status),
            reply.client_id);
  Put64(p + 16, reply.seq);
  PutI64(p + 24, reply.t1_ns);
  PutI64(p + 32, reply.t2_ns);
  PutI64(p + 40, reply.t3_ns);
  PutI64(p + 48, reply.correction_ns);
}

WireError DecodeReply(absl::Span<const uint8_t> in, Reply* out) {
  if (WireError e = CheckHeader(in, kReplySize, kKindReply); e != WireError::kOk) return e;
  const uint8_t* p = in.data();
  out->scheme = static_cast<Scheme>(Get16(p + 6));
  out->flags = Get16(p + 8);
  const uint16_t status = Get16(p + 10);
  if (status > static_cast<uint16_t>(ReplyStatus::kInvalidParams)) return WireError::kBadField;
  out->status = static_cast<ReplyStatus>(status);
  out->client_id = Get32(p + 12);
  out->seq = Get64(p + 16);
  out->t1_ns = GetI64(p + 24);
  out->t2_ns = GetI64(p + 32);
  out->t3_ns = GetI64(p + 40);
  out->correction_ns = GetI64(p + 48);
  if (out->seq == 0) return WireError::kBadField;
  return WireError::kOk;
}

std::string EncodeJsonReply(const Reply& reply, std::size_t max_bytes) {
  // Hand-formatted: the field order is part of the contract (what gets dropped first) and
  // the hot path should not build a DOM per packet.
  const int64_t c = reply.correction_ns;
  const std::string correction =
      absl::StrFormat("%s%d.%03d", c < 0 ? "-" : "", (c < 0 ? -(c / 1000) : c / 1000),
                      static_cast<int>(c < 0 ? -(c % 1000) : c % 1000));
  std::string out =
      absl::StrFormat(R"({"scheme":"%s","correction_us":%s)", SchemeName(reply.scheme), correction);
  for (const std::string& field :
       {absl::StrFormat(R"(,"seq":%d)", reply.seq),
        absl::StrFormat(R"(,"status":"%s")", ReplyStatusName(reply.status))}) {
    if (out.size() + field.size() + 1 > max_bytes) break;
    out += field;
  }
  out += '}';
  return out;
}

WireError DecodeJsonReply(absl::string_view json, Reply* out) {
  const auto doc = nlohmann::json::parse(json, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object()) return WireError::kBadJson;
  const auto scheme = doc.find("scheme");
  const auto correction = doc.find("correction_us");
  if (scheme == doc.end() || !scheme->is_string() || correction == doc.end() ||
      !correction->is_number()) {
    return WireError::kBadJson;
  }
  const auto parsed = ParseScheme(scheme->get<std::string>());
  if (!parsed.ok()) return WireError::kUnknownScheme;
  *out = Reply{};
  out->scheme = *parsed;
  out->correction_ns = std::llround(correction->get<double>() * 1000.0);
  if (const auto seq = doc.find("seq"); seq != doc.end()) {
    if (!seq->is_number_unsigned()) return WireError::kBadJson;
    out->seq = seq->get<uint64_t>();
  }
  if (const auto status = doc.find("status"); status != doc.end()) {
    if (!status->is_string()) return WireError::kBadJson;
    out->status =
        status->get<std::string>() == "ok" ? ReplyStatus::kOk : ReplyStatus::kInvalidParams;
  }
  return WireError::kOk;
}

}  // namespace lab::timesync
