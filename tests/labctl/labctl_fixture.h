// Test support for labctl: the real command line (RunLabctl) with captured stdout/stderr, a
// simulated clock and a strict mock controller, so any call a test does not expect fails it.
#ifndef TESTS_LABCTL_LABCTL_FIXTURE_H_
#define TESTS_LABCTL_LABCTL_FIXTURE_H_

#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "common/clock.h"
#include "gmock/gmock.h"
#include "grpcpp/test/mock_stream.h"
#include "gtest/gtest.h"
#include "lab/v1/controller_mock.grpc.pb.h"
#include "labctl/labctl.h"

namespace lab::labctl {

// A fresh directory under the test's temporary directory, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "labctl_test_XXXXXX";
    path_ = mkdtemp(pattern.data()) != nullptr ? pattern : std::string();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }
  // Writes `text` to path()/name and returns the full path.
  std::string Write(const std::string& name, const std::string& text, bool executable = false) {
    const std::string file = path_ + "/" + name;
    std::ofstream(file) << text;
    if (executable) {
      std::filesystem::permissions(file, std::filesystem::perms::owner_all);
    }
    return file;
  }

 private:
  std::string path_;
};

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

using Reader = grpc::testing::MockClientReader<lab::v1::ExperimentEvent>;

// A mock stream that yields `messages` in order, then ends with `status`. The caller owns
// it (labctl takes ownership through the Raw method).
template <typename Message>
grpc::testing::MockClientReader<Message>* MockStream(std::vector<Message> messages,
                                                     grpc::Status status = grpc::Status::OK) {
  auto* reader = new grpc::testing::MockClientReader<Message>();
  auto queue = std::make_shared<std::vector<Message>>(std::move(messages));
  auto next = std::make_shared<std::size_t>(0);
  EXPECT_CALL(*reader, Read(::testing::_)).WillRepeatedly([queue, next](Message* out) {
    if (*next >= queue->size()) return false;
    *out = (*queue)[(*next)++];
    return true;
  });
  EXPECT_CALL(*reader, Finish()).WillOnce(::testing::Return(status));
  return reader;
}

class LabctlTest : public ::testing::Test {
 protected:
  LabctlTest() {
    env_.out = &out_;
    env_.err = &err_;
    env_.clock = &clock_;
    env_.interrupt = &interrupt_;
    env_.getenv = [](const std::string&) { return std::nullopt; };
    // The real transport rule (rpc/credentials.h), then the mock instead of a channel.
    env_.connect = [this](const std::string& address, const rpc::TransportOptions& transport)
        -> absl::StatusOr<std::shared_ptr<ControllerStub>> {
      if (auto credentials = rpc::ChannelCredentialsFor(address, transport); !credentials.ok()) {
        return credentials.status();
      }
      ++connects_;
      connected_to_ = address;
      return std::shared_ptr<ControllerStub>(stub_);
    };
  }

  // Runs `labctl ARGS...`; --controller defaults to 127.0.0.1:50051 so no .lab/lab.json of
  // the working directory is picked up.
  int Run(std::vector<std::string> args) {
    bool has_controller = false;
    for (const std::string& a : args) has_controller |= a == "--controller";
    if (!has_controller) args.insert(args.begin(), {"--controller", "127.0.0.1:50051"});
    args.insert(args.begin(), "labctl");
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    return RunLabctl(static_cast<int>(argv.size()), argv.data(), env_);
  }

  std::string out() const { return out_.str(); }
  std::string err() const { return err_.str(); }

  std::shared_ptr<::testing::StrictMock<lab::v1::MockLabControllerStub>> stub_ =
      std::make_shared<::testing::StrictMock<lab::v1::MockLabControllerStub>>();
  std::ostringstream out_, err_;
  SimulatedClock clock_{1'700'000'000'000'000'000};
  Interrupt interrupt_;
  Environment env_;
  int connects_ = 0;  // stubs handed out
  std::string connected_to_;
};

}  // namespace lab::labctl

#endif  // TESTS_LABCTL_LABCTL_FIXTURE_H_
