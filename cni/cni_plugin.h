// zerohop-cni: the CNI plugin (spec 1.0.0 and 1.1.0) that gives a pod an SR-IOV VF of a
// configured PF, with its RDMA device, or a macvlan where there are no VFs; IPAM is
// delegated to any IPAM plugin on CNI_PATH. See docs/CNI.md.
//
// The plugin's logic as a function of its inputs, so that the binary is a few lines and
// tests can see exactly what a runtime would:
//
//   CniRequest req = RequestFromEnvironment(stdin_text);
//   CniResponse res = RunCni(req);
//   fputs(res.output.c_str(), stdout);
//   return res.exit_code;
#pragma once

#include <string>

namespace zerohop::cni {

struct CniRequest {
    std::string command;       // CNI_COMMAND
    std::string container_id;  // CNI_CONTAINERID
    std::string netns;         // CNI_NETNS
    std::string ifname;        // CNI_IFNAME
    std::string args;          // CNI_ARGS
    std::string path;          // CNI_PATH
    std::string config;        // stdin
    std::string sysfs = "/sys";  // ZEROHOP_CNI_SYSFS: a fake tree, for tests
    // ZEROHOP_CNI_FAIL_AT: ADD fails at the named step (tests of rollback): ipam, claim,
    // vf-settings, temp-netns, move-to-temp, rename, configure, move-to-pod, rdma, create,
    // up, addresses, routes, record.
    std::string fail_at;
    // ZEROHOP_CNI_CRASH_AT: ADD dies at the named step without undoing anything (tests of
    // what a killed plugin leaves for the next DEL, GC or ADD).
    std::string crash_at;
};

struct CniResponse {
    int exit_code = 0;
    std::string output;  // a result, a version answer, or an error JSON; empty for DEL and friends
};

CniRequest RequestFromEnvironment(std::string config);
CniResponse RunCni(const CniRequest& req);

}  // namespace zerohop::cni
