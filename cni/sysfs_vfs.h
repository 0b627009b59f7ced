// The virtual functions of an SR-IOV physical function, as sysfs shows them:
//
//   <sysfs>/class/net/<pf>/device/virtfn<N> -> .../<vf PCI address>/
//   <vf PCI address>/net/<netdev>           the VF's network device (while in this namespace)
//   <vf PCI address>/infiniband/<device>    its RDMA device, if it has one
//
// The root is "/sys" on a node; tests give a tree of their own (ZEROHOP_CNI_SYSFS).
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace zerohop::cni {

struct VirtualFunction {
    int index = 0;                          // N of virtfnN: the VF number on its PF
    std::string pci;                        // "0000:3b:02.1"
    std::string netdev;                     // "" when sysfs shows none
    std::vector<std::string> rdma_devices;  // "mlx5_3"
};

// The PF's VFs by number. NotFound if the PF has no device directory, FailedPrecondition if
// it has no VFs (SR-IOV off, or not an SR-IOV device).
absl::StatusOr<std::vector<VirtualFunction>> ListVirtualFunctions(const std::string& sysfs, const std::string& pf);

}  // namespace zerohop::cni
