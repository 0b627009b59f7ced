// The embedded backend against the shared conformance suite.

#include <stdlib.h>

#include <filesystem>

#include "conformance/backend_conformance.h"
#include "embedded/embedded_backend.h"

namespace zerohop::testing {
namespace {

BackendUnderTest MakeEmbedded(size_t inline_max_bytes) {
    char tmpl[] = "/tmp/zh-conformance-XXXXXX";
    std::string dir = mkdtemp(tmpl);
    EmbeddedOptions opts;
    opts.dir = dir;
    opts.containers = {"c1", "c2"};
    opts.inline_max_bytes = inline_max_bytes;
    opts.block_cache_bytes = 8 << 20;
    auto b = EmbeddedBackend::Open(opts);
    if (!b.ok()) {
        ADD_FAILURE() << b.status();
        return {};
    }
    return {std::move(*b), [dir] { std::filesystem::remove_all(dir); }};
}

INSTANTIATE_TEST_SUITE_P(
    Embedded, BackendConformance,
    ::testing::Values(BackendFactory{"embedded", [] { return MakeEmbedded(64 * 1024); }},
                      // Every object in files: the large-object paths run for every case.
                      BackendFactory{"embedded_files_only", [] { return MakeEmbedded(0); }}),
    [](const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace zerohop::testing
