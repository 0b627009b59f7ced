// Running another CNI plugin (an IPAM plugin) the way a runtime would: found on CNI_PATH,
// the CNI_* variables set, the configuration on stdin, its result or error JSON read back.
//
//   PluginEnv env{.command = "ADD", .container_id = cid, .netns = ns, .ifname = "net1", .path = path};
//   auto result = ExecPlugin("host-local", env, config);
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "config.h"

namespace zerohop::cni {

struct PluginEnv {
    std::string command;
    std::string container_id;
    std::string netns;
    std::string ifname;
    std::string args;  // CNI_ARGS
    std::string path;  // CNI_PATH: directories separated by ':'
};

// The plugin's executable on `path`; NotFound (code kNotAvailable) if none.
absl::StatusOr<std::string> FindPlugin(const std::string& type, const std::string& path);

// Runs it; its stdout as JSON (null when it printed nothing, as DEL may). A plugin that
// fails gives its own code and message, prefixed with its name. Bounded by `timeout_secs`.
absl::StatusOr<Json> ExecPlugin(const std::string& type, const PluginEnv& env, const Json& config,
                                int timeout_secs = 60);

// The highest version of ours that the plugin speaks too (it is asked with VERSION).
absl::StatusOr<std::string> NegotiateVersion(const std::string& type, const std::string& path,
                                             const std::string& wanted);

}  // namespace zerohop::cni
