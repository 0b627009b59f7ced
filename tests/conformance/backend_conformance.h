#pragma once
// The backend conformance suite: every backend must pass it unchanged.
//
// A backend's test instantiates it with a factory that returns a fresh, empty backend
// serving the containers "c1" and "c2":
//
//   INSTANTIATE_TEST_SUITE_P(Embedded, BackendConformance,
//       ::testing::Values(BackendFactory{"embedded", [] { return MakeEmbedded(); }}),  // BackendUnderTest
//       [](const auto& info) { return info.param.name; });

#include <functional>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "backend/backend.h"
#include "conformance/sync_backend.h"

namespace zerohop::testing {

// A fresh backend, and what to do once it has been destroyed (remove its files, stop servers).
struct BackendUnderTest {
    std::unique_ptr<Backend> backend;
    std::function<void()> cleanup;
};

struct BackendFactory {
    std::string name;
    std::function<BackendUnderTest()> make;
};


class BackendConformance : public ::testing::TestWithParam<BackendFactory> {
protected:
    void SetUp() override;
    void TearDown() override;

    std::unique_ptr<Backend> backend_;
    std::function<void()> cleanup_;
    std::unique_ptr<SyncBackend> b_;
};

}  // namespace zerohop::testing
