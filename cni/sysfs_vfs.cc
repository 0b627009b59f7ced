#include "sysfs_vfs.h"

#include <algorithm>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"

namespace zerohop::cni {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> Entries(const fs::path& dir) {
    std::vector<std::string> out;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        out.push_back(it->path().filename().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

absl::StatusOr<std::vector<VirtualFunction>> ListVirtualFunctions(const std::string& sysfs, const std::string& pf) {
    if (pf.empty() || pf.find('/') != std::string::npos || pf == "." || pf == "..") {
        return absl::InvalidArgumentError(absl::StrFormat("\"%s\" is not a network device name", pf));
    }
    fs::path device = fs::path(sysfs) / "class/net" / pf / "device";
    std::error_code ec;
    if (!fs::is_directory(device, ec)) {
        return absl::NotFoundError(absl::StrFormat("PF %s: no device in %s", pf, device.string()));
    }
    std::vector<VirtualFunction> vfs;
    for (const std::string& name : Entries(device)) {
        int n = 0;
        if (!absl::StartsWith(name, "virtfn") || !absl::SimpleAtoi(name.substr(6), &n)) {
            continue;
        }
        fs::path vf_dir = fs::canonical(device / name, ec);
        if (ec) {
            continue;  // a dangling link: a VF going away
        }
        VirtualFunction vf;
        vf.index = n;
        vf.pci = vf_dir.filename().string();
        std::vector<std::string> netdevs = Entries(vf_dir / "net");
        if (!netdevs.empty()) {
            vf.netdev = netdevs[0];
        }
        vf.rdma_devices = Entries(vf_dir / "infiniband");
        vfs.push_back(std::move(vf));
    }
    if (vfs.empty()) {
        return absl::FailedPreconditionError(
            absl::StrFormat("PF %s has no VFs (is SR-IOV enabled? echo N > %s/sriov_numvfs)", pf, device.string()));
    }
    std::sort(vfs.begin(), vfs.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
    return vfs;
}

}  // namespace zerohop::cni
