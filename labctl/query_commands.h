// Read-only commands: `labctl agents`, `labctl results list|show|export`.
#ifndef LABCTL_QUERY_COMMANDS_H_
#define LABCTL_QUERY_COMMANDS_H_

#include <cstdint>
#include <string>

#include "lab/v1/controller.pb.h"
#include "labctl/command_context.h"
#include "nlohmann/json.hpp"

namespace lab::labctl {

// `labctl agents`: ListAgents as a table (name, agent id, addresses, timestamping, alive,
// running tasks, last seen ago) or as {"agents":[…]}. Exit 0, or 1 when the call fails.
int ListAgents(const GlobalOptions& global, Environment& env);

// The agents table; "last seen" is relative to `now_ns` (ns since the epoch).
std::string FormatAgentsTable(const lab::v1::ListAgentsResponse& agents, int64_t now_ns);
// {"agents":[{"name","agent_id","addresses","capabilities","timestamping","clock_id",
// "max_tasks","version","alive","running_tasks","last_seen_ns"}]}.
nlohmann::json AgentsToJson(const lab::v1::ListAgentsResponse& agents);

// `labctl results list`: the newest `limit` experiments (limit in [1, 10000], else exit 2).
int ListResults(int limit, const GlobalOptions& global, Environment& env);

// `labctl results show ID`: the same table as `labctl run` prints, or the summary JSON with
// the listing's name, kind, state, created_ns and finished_ns added. NOT_FOUND: "no
// experiment ID; see labctl results list", exit 1.
int ShowResult(const std::string& experiment_id, const GlobalOptions& global, Environment& env);

struct ExportOptions {
  std::string experiment_id;
  std::string format = "csv";  // "csv" or "json"
  // Empty or "-": env.out. Otherwise written to PATH.partial and renamed when complete, so
  // a failed export leaves no file behind.
  std::string output_path;
};
// `labctl results export ID`: the ExportExperiment stream's bytes, exactly. The whole export
// must finish within --timeout.
int ExportResult(const ExportOptions& options, const GlobalOptions& global, Environment& env);

}  // namespace lab::labctl

#endif  // LABCTL_QUERY_COMMANDS_H_
