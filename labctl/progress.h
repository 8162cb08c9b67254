// Live progress of an experiment's clients, from the ExperimentEvents of RunExperiment.
#ifndef LABCTL_PROGRESS_H_
#define LABCTL_PROGRESS_H_

#include <cstdint>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "lab/v1/controller.pb.h"

namespace lab::labctl {

// "raw", "ewma", "kalman", "pid" ("?" when unspecified).
std::string SchemeLabel(lab::v1::Scheme scheme);
// What a client runs: its scheme's label, or for traffic clients their label ("tcp-rr").
std::string ClientLabel(const lab::v1::ClientProgress& client);
// "pending", "running", "complete", "failed", "lost", "stopped" ("?" when unspecified).
std::string TaskStateLabel(lab::v1::TaskState state);

// Draws the clients' progress on `out`. Interactive: one bar per client, redrawn in place
// (ANSI cursor movement) on every Update. Otherwise plain lines: one per client when its
// state changes, and for progress alone at most once per second per client (by `clock`).
// Single-threaded; `out` and `clock` must outlive it.
class ProgressDisplay {
 public:
  ProgressDisplay(std::ostream& out, bool interactive, const Clock& clock);

  // Shows the clients of `event` (clients are keyed by task id; an event may carry any
  // subset of them).
  void Update(const lab::v1::ExperimentEvent& event);

 private:
  struct Client {
    lab::v1::ClientProgress last;
    int64_t printed_ns = 0;  // when its last plain line was printed
    bool printed = false;
  };
  void Redraw();
  static std::string BarLine(const lab::v1::ClientProgress& client);
  static std::string PlainLine(const lab::v1::ClientProgress& client);

  std::ostream& out_;
  const bool interactive_;
  const Clock& clock_;
  std::vector<std::string> order_;         // task ids in order of first appearance
  std::map<std::string, Client> clients_;  // by task id
  std::size_t lines_drawn_ = 0;            // interactive: bar lines currently on screen
};

}  // namespace lab::labctl

#endif  // LABCTL_PROGRESS_H_
