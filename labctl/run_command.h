// `labctl run`: build a time-sync experiment from flags and/or a spec file, run it on the
// controller while showing progress, print the summary.
#ifndef LABCTL_RUN_COMMAND_H_
#define LABCTL_RUN_COMMAND_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lab/v1/controller.pb.h"
#include "labctl/command_context.h"

namespace lab::labctl {

// Defaults for what neither a flag nor the spec file sets (the README's four-scheme demo).
inline constexpr char kDefaultClients[] = "raw,ewma,kalman,pid";
inline constexpr int64_t kDefaultCount = 500;
inline constexpr char kDefaultInterval[] = "5ms";
inline constexpr char kDefaultOffset[] = "25ms";
inline constexpr double kDefaultDriftPpm = 80;

// `labctl run`'s flags as the user gave them: an empty optional was not given.
struct RunFlags {
  std::optional<std::string> clients;   // comma list of schemes, one client each
  std::optional<int64_t> count;         // probes per client, [1, 1e9]
  std::optional<std::string> interval;  // duration, (0, 1h]
  std::optional<std::string> offset;    // duration, [-24h, 24h]
  std::optional<double> drift_ppm;      // [-1e5, 1e5]
  // Scheme parameters (the labnet flag names): --alpha, --kalman-r, --kalman-q-drift,
  // --kalman-q-offset, --kp, --ki, --kd.
  std::optional<double> alpha, kalman_r, kalman_q_drift, kalman_q_offset, kp, ki, kd;
  std::optional<std::string> server_agent;
  std::optional<std::string> name;
  std::string spec_file;  // ExperimentSpec as protobuf JSON; empty: none
};

// The request: the spec file's ExperimentSpec (if any), overridden by each flag given, with
// the defaults above for what neither sets. With --clients the clients come from the flags
// (each with its scheme's parameters from the flags or their defaults); otherwise the spec
// file's clients, whose parameters the scheme flags given override. Everything is validated
// here: InvalidArgument with a message naming the flag or spec-file field for an unknown
// scheme, an out-of-range count, a bad duration, invalid scheme parameters, an unreadable or
// malformed spec file.
absl::StatusOr<lab::v1::RunExperimentRequest> BuildRunRequest(const RunFlags& flags);

// The deadline of the whole run: its length (time-sync: count * interval; traffic: the
// duration) + 60 s, capped at a year.
absl::Duration RunDeadline(const lab::v1::ExperimentSpec& spec);

// Runs `request` on the controller: progress on env.err, then the summary on env.out (the
// controller's summary JSON, pretty, with --output json; else the table and where to find
// the results). Exit codes: 0 completed, 3 partial (some clients lost or failed), 1 failed or
// the call failed, 2 the controller refused the request, 130 interrupted (the call is
// cancelled).
int RunExperiment(const lab::v1::RunExperimentRequest& request, const GlobalOptions& global,
                  Environment& env);

}  // namespace lab::labctl

#endif  // LABCTL_RUN_COMMAND_H_
