#include "delegate.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"

extern char** environ;

namespace zerohop::cni {
namespace {

// Closes what it holds.
struct Fd {
    int fd = -1;
    ~Fd() { Close(); }
    void Close() {
        if (fd >= 0) {
            ::close(fd);
            fd = -1;
        }
    }
};

}  // namespace

absl::StatusOr<std::string> FindPlugin(const std::string& type, const std::string& path) {
    if (type.empty() || type.find('/') != std::string::npos) {
        return CniError(kInvalidConfig, absl::StrFormat("\"%s\" is not a plugin name", type));
    }
    for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
        std::string candidate = absl::StrFormat("%s/%s", dir, type);
        struct stat st = {};
        if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
    }
    return CniError(kNotAvailable, absl::StrFormat("plugin %s is not on CNI_PATH (%s)", type, path));
}

absl::StatusOr<Json> ExecPlugin(const std::string& type, const PluginEnv& env, const Json& config, int timeout_secs) {
    ZH_ASSIGN_OR_RETURN(auto exe, FindPlugin(type, env.path));
    // The environment: ours, with the CNI_* variables replaced.
    std::vector<std::string> vars;
    for (char** e = environ; *e != nullptr; ++e) {
        if (strncmp(*e, "CNI_", 4) != 0) {
            vars.emplace_back(*e);
        }
    }
    vars.push_back("CNI_COMMAND=" + env.command);
    vars.push_back("CNI_CONTAINERID=" + env.container_id);
    vars.push_back("CNI_NETNS=" + env.netns);
    vars.push_back("CNI_IFNAME=" + env.ifname);
    vars.push_back("CNI_ARGS=" + env.args);
    vars.push_back("CNI_PATH=" + env.path);
    std::vector<char*> envp;
    for (std::string& v : vars) {
        envp.push_back(v.data());
    }
    envp.push_back(nullptr);
    std::string input = config.dump();

    int in_pipe[2], out_pipe[2];
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) {
        return CniError(kIoFailure, absl::StrFormat("pipe: %s", strerror(errno)));
    }
    Fd in_r{in_pipe[0]}, in_w{in_pipe[1]};
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
        return CniError(kIoFailure, absl::StrFormat("pipe: %s", strerror(errno)));
    }
    Fd out_r{out_pipe[0]}, out_w{out_pipe[1]};
    std::string exe_path = exe;
    char* argv[] = {exe_path.data(), nullptr};
    pid_t pid = ::fork();
    if (pid < 0) {
        return CniError(kIoFailure, absl::StrFormat("fork: %s", strerror(errno)));
    }
    if (pid == 0) {
        ::dup2(in_r.fd, 0);
        ::dup2(out_w.fd, 1);
        ::execve(exe_path.c_str(), argv, envp.data());
        _exit(127);
    }
    in_r.Close();
    out_w.Close();
    // The configuration is small (a pipe holds 64 KiB); a plugin that does not read it
    // still gets EPIPE, not a hang: SIGPIPE is ignored while writing.
    struct sigaction ignore = {}, old = {};
    ignore.sa_handler = SIG_IGN;
    ::sigaction(SIGPIPE, &ignore, &old);
    size_t done = 0;
    while (done < input.size()) {
        ssize_t n = ::write(in_w.fd, input.data() + done, input.size() - done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        done += static_cast<size_t>(n);
    }
    ::sigaction(SIGPIPE, &old, nullptr);
    in_w.Close();
    std::string output;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_secs);
    bool timed_out = false;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        pollfd p = {out_r.fd, POLLIN, 0};
        int r = ::poll(&p, 1, static_cast<int>(left.count()));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            timed_out = r == 0;
            break;
        }
        char buf[4096];
        ssize_t n = ::read(out_r.fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        output.append(buf, static_cast<size_t>(n));
        if (output.size() > (4 << 20)) {
            timed_out = true;  // not a CNI result: stop it like a hung one
            break;
        }
    }
    if (timed_out) {
        ::kill(pid, SIGKILL);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    std::string who = absl::StrFormat("%s %s", type, env.command);
    if (timed_out) {
        return CniError(kTryAgainLater, absl::StrFormat("%s: no answer within %d s, killed", who, timeout_secs));
    }
    Json out = output.empty() ? Json() : Json::parse(output, nullptr, false);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        if (out.is_object() && out.contains("msg") && out["msg"].is_string()) {
            int code = out.contains("code") && out["code"].is_number_integer() ? out["code"].get<int>() : kDelegateFailure;
            std::string msg = out["msg"].get<std::string>();
            if (out.contains("details") && out["details"].is_string() && !out["details"].get<std::string>().empty()) {
                msg += " (" + out["details"].get<std::string>() + ")";
            }
            return CniError(code, absl::StrFormat("%s: %s", who, msg));
        }
        return CniError(kDelegateFailure,
                        absl::StrFormat("%s failed (%s) without an error JSON", who,
                                        WIFEXITED(status) ? absl::StrFormat("exit %d", WEXITSTATUS(status))
                                                          : absl::StrFormat("signal %d", WTERMSIG(status))));
    }
    if (out.is_discarded()) {
        return CniError(kDecodeFailure, absl::StrFormat("%s printed something that is not JSON", who));
    }
    return out;
}

absl::StatusOr<std::string> NegotiateVersion(const std::string& type, const std::string& path,
                                             const std::string& wanted) {
    PluginEnv env{.command = "VERSION", .path = path};
    ZH_ASSIGN_OR_RETURN(auto answer, ExecPlugin(type, env, Json{{"cniVersion", wanted}}, 10));
    if (!answer.is_object() || !answer.contains("supportedVersions") || !answer["supportedVersions"].is_array()) {
        return CniError(kDecodeFailure, absl::StrFormat("%s VERSION: no supportedVersions", type));
    }
    const Json& theirs = answer["supportedVersions"];
    auto speaks = [&](const std::string& v) {
        for (const Json& t : theirs) {
            if (t.is_string() && t.get<std::string>() == v) {
                return true;
            }
        }
        return false;
    };
    if (speaks(wanted)) {
        return wanted;
    }
    // Ours, newest first, no newer than what was asked.
    const auto& ours = SupportedVersions();
    for (auto it = ours.rbegin(); it != ours.rend(); ++it) {
        if (*it <= wanted && speaks(*it)) {
            return *it;
        }
    }
    return CniError(kIncompatibleVersion,
                    absl::StrFormat("%s speaks none of the CNI versions up to %s that zerohop-cni speaks", type, wanted));
}

}  // namespace zerohop::cni
