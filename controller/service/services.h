// The controller's two gRPC services, thin adapters: check the request, call the library
// (AgentHub, ExperimentRunner, ResultsStore), convert the status (rpc/status_conversion.h).
#ifndef CONTROLLER_SERVICE_SERVICES_H_
#define CONTROLLER_SERVICE_SERVICES_H_

#include "controller/registry/agent_registry.h"
#include "controller/service/agent_hub.h"
#include "controller/service/experiment_runner.h"
#include "controller/store/results_store.h"
#include "lab/v1/agent.grpc.pb.h"
#include "lab/v1/controller.grpc.pb.h"

namespace lab::controller {

// AgentService.Connect: one call per agent session, for as long as the agent is connected.
class AgentServiceImpl final : public lab::v1::AgentService::Service {
 public:
  explicit AgentServiceImpl(AgentHub& hub) : hub_(hub) {}
  grpc::Status Connect(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<lab::v1::ControllerMessage, lab::v1::AgentMessage>* stream) override;

 private:
  AgentHub& hub_;
};

// LabController: what labctl calls.
class LabControllerImpl final : public lab::v1::LabController::Service {
 public:
  LabControllerImpl(AgentRegistry& registry, ExperimentRunner& runner, ResultsStore& store)
      : registry_(registry), runner_(runner), store_(store) {}

  grpc::Status RunExperiment(grpc::ServerContext* context,
                             const lab::v1::RunExperimentRequest* request,
                             grpc::ServerWriter<lab::v1::ExperimentEvent>* writer) override;
  grpc::Status ListAgents(grpc::ServerContext* context, const lab::v1::ListAgentsRequest* request,
                          lab::v1::ListAgentsResponse* response) override;
  grpc::Status ListExperiments(grpc::ServerContext* context,
                               const lab::v1::ListExperimentsRequest* request,
                               lab::v1::ListExperimentsResponse* response) override;
  grpc::Status GetExperiment(grpc::ServerContext* context,
                             const lab::v1::GetExperimentRequest* request,
                             lab::v1::GetExperimentResponse* response) override;
  grpc::Status ExportExperiment(grpc::ServerContext* context,
                                const lab::v1::ExportExperimentRequest* request,
                                grpc::ServerWriter<lab::v1::ExportChunk>* writer) override;

 private:
  AgentRegistry& registry_;
  ExperimentRunner& runner_;
  ResultsStore& store_;
};

// The experiment's stored samples as CSV (one row per sample, client tasks in order) or
// JSON ({"experiment":…, "summary":…, "samples":{task_id:[…]}}); for TCP/UDP runs, their
// per-interval samples (one row per client per interval; JSON key "intervals"). Deterministic: the same
// stored run always exports byte for byte the same. InvalidArgument for another format.
absl::StatusOr<std::string> ExportExperiment(const ResultsStore& store,
                                             const ExperimentRunner& runner,
                                             const std::string& experiment_id,
                                             const std::string& format);

}  // namespace lab::controller

#endif  // CONTROLLER_SERVICE_SERVICES_H_
