#include "labctl/progress.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace lab::labctl {

namespace {

constexpr int kBarWidth = 30;
constexpr int64_t kPlainLineIntervalNs = 1'000'000'000;

// The enum value's name without `prefix`, in lower case; "?" for the unspecified value.
std::string EnumLabel(const std::string& name, absl::string_view prefix) {
  if (name.empty() || absl::EndsWith(name, "UNSPECIFIED")) return "?";
  absl::string_view rest = name;
  absl::ConsumePrefix(&rest, prefix);
  return absl::AsciiStrToLower(rest);
}

std::string ClientKey(const lab::v1::ClientProgress& c, int index) {
  return c.task_id().empty() ? absl::StrCat("#", index) : c.task_id();
}

}  // namespace

std::string SchemeLabel(lab::v1::Scheme scheme) {
  return EnumLabel(lab::v1::Scheme_Name(scheme), "SCHEME_");
}

std::string ClientLabel(const lab::v1::ClientProgress& client) {
  if (client.scheme() == lab::v1::SCHEME_UNSPECIFIED && !client.label().empty()) {
    return client.label();
  }
  return SchemeLabel(client.scheme());
}

std::string TaskStateLabel(lab::v1::TaskState state) {
  return EnumLabel(lab::v1::TaskState_Name(state), "TASK_STATE_");
}

ProgressDisplay::ProgressDisplay(std::ostream& out, bool interactive, const Clock& clock)
    : out_(out), interactive_(interactive), clock_(clock) {}

void ProgressDisplay::Update(const lab::v1::ExperimentEvent& event) {
  const int64_t now_ns = clock_.NowNs();
  for (int i = 0; i < event.clients_size(); ++i) {
    const lab::v1::ClientProgress& c = event.clients(i);
    const std::string key = ClientKey(c, i);
    auto [it, inserted] = clients_.try_emplace(key);
    if (inserted) order_.push_back(key);
    Client& client = it->second;
    const bool state_changed = !client.printed || client.last.state() != c.state();
    const bool progressed = client.last.progress() != c.progress();
    client.last = c;
    if (interactive_) continue;
    if (state_changed || (progressed && now_ns - client.printed_ns >= kPlainLineIntervalNs)) {
      out_ << PlainLine(c) << "\n";
      client.printed = true;
      client.printed_ns = now_ns;
    }
  }
  if (interactive_) Redraw();
  out_.flush();
}

void ProgressDisplay::Redraw() {
  // Back to the first bar line, then rewrite every line (clearing each first).
  if (lines_drawn_ > 0) out_ << "\x1b[" << lines_drawn_ << "A";
  for (const std::string& key : order_) {
    out_ << "\r\x1b[2K" << BarLine(clients_[key].last) << "\n";
  }
  lines_drawn_ = order_.size();
}

std::string ProgressDisplay::BarLine(const lab::v1::ClientProgress& c) {
  const double fraction =
      c.total() == 0 ? 0.0 : std::clamp(static_cast<double>(c.progress()) / c.total(), 0.0, 1.0);
  const int filled = static_cast<int>(fraction * kBarWidth);
  std::string bar(filled, '#');
  bar.append(kBarWidth - filled, '.');
  std::string line = absl::StrFormat(
      "%-7s %-12s [%s] %6d/%-6d %3d%%  %s", ClientLabel(c), c.agent().empty() ? "-" : c.agent(),
      bar, c.progress(), c.total(), static_cast<int>(fraction * 100), TaskStateLabel(c.state()));
  if (!c.detail().empty() &&
      (c.state() == lab::v1::TASK_STATE_FAILED || c.state() == lab::v1::TASK_STATE_LOST)) {
    absl::StrAppend(&line, ": ", c.detail());
  }
  return line;
}

std::string ProgressDisplay::PlainLine(const lab::v1::ClientProgress& c) {
  std::string line = absl::StrCat(ClientLabel(c), " on ", c.agent().empty() ? "-" : c.agent(), ": ",
                                  TaskStateLabel(c.state()), ", ", c.progress(), "/", c.total(),
                                  c.scheme() == lab::v1::SCHEME_UNSPECIFIED ? " ms" : " probes");
  if (!c.detail().empty() &&
      (c.state() == lab::v1::TASK_STATE_FAILED || c.state() == lab::v1::TASK_STATE_LOST)) {
    absl::StrAppend(&line, " (", c.detail(), ")");
  }
  return line;
}

}  // namespace lab::labctl
