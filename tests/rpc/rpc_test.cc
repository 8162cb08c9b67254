#include <memory>
#include <string>

#include "grpcpp/client_context.h"
#include "gtest/gtest.h"
#include "rpc/credentials.h"
#include "rpc/status_conversion.h"

namespace lab::rpc {
namespace {

TEST(StatusConversionTest, KeepsCodeAndMessageBothWays) {
  for (const absl::Status& s :
       {absl::InvalidArgumentError("unknown scheme 'ntp'"), absl::NotFoundError("no run 7"),
        absl::UnavailableError("agent gone"), absl::DeadlineExceededError("slow"),
        absl::ResourceExhaustedError("full"), absl::OkStatus()}) {
    const grpc::Status g = ToGrpcStatus(s);
    EXPECT_EQ(static_cast<int>(g.error_code()), static_cast<int>(s.code()));
    EXPECT_EQ(g.error_message(), std::string(s.message()));
    EXPECT_EQ(FromGrpcStatus(g), s);
  }
}

TEST(CredentialsTest, LoopbackNeedsNoFlag) {
  for (const char* address : {"127.0.0.1:50051", "127.0.0.7:1", "[::1]:50051", "localhost:9"}) {
    EXPECT_TRUE(IsLoopbackAddress(address)) << address;
    EXPECT_TRUE(ServerCredentialsFor(address, {}).ok()) << address;
    EXPECT_TRUE(ChannelCredentialsFor(address, {}).ok()) << address;
  }
}

TEST(CredentialsTest, BeyondLoopbackPlaintextNeedsInsecure) {
  for (const char* address : {"0.0.0.0:50051", "10.1.2.3:50051", "[::]:50051", "lab:50051"}) {
    EXPECT_FALSE(IsLoopbackAddress(address)) << address;
    const auto refused = ServerCredentialsFor(address, {});
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << address;
    EXPECT_NE(refused.status().message().find("--insecure"), std::string::npos);
    EXPECT_FALSE(ChannelCredentialsFor(address, {}).ok()) << address;
    EXPECT_TRUE(ServerCredentialsFor(address, {.insecure = true}).ok()) << address;
  }
}

TEST(CredentialsTest, SetDeadlineSetsOneInTheFuture) {
  grpc::ClientContext context;
  const auto before = std::chrono::system_clock::now();
  SetDeadline(context, absl::Seconds(5));
  EXPECT_GT(context.deadline(), before + std::chrono::seconds(4));
  EXPECT_LT(context.deadline(), before + std::chrono::seconds(6));
}

}  // namespace
}  // namespace lab::rpc
