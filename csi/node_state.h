#pragma once
// What the node plugin has published, kept on disk so that a restarted plugin finds its
// mounts, sockets and zerohop-fuse processes again (pods are not disturbed).
//
//   NodeState state(state_dir);
//   ZH_RETURN_IF_ERROR(state.Load());
//   state.targets[target] = record;
//   ZH_RETURN_IF_ERROR(state.Save());          // atomically: a crash leaves the old or the new
//
// No secret is written: an instance records its key's fingerprint only.

#include <sys/types.h>

#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "volume.h"

namespace zerohop::csi {

// One NodePublishVolume's target.
struct TargetRecord {
    std::string volume_id;
    std::string digest;  // of the publish arguments: the same again is OK, others ALREADY_EXISTS
    VolumeSpec spec;
    bool read_only = false;
    PodInfo pod;
    std::string scope_id;         // socket: zerohopd's scope for this target ("" if none)
    std::string scope_dir;        // socket: its directory (zerohopd's), bound at the target
    std::string instance;         // fuse: the zerohop-fuse instance it uses ("" if none)
    bool created_target = false;  // publish made the target directory: unpublish removes it
};

// One zerohop-fuse mount, shared by the targets of one volume, key and mode.
struct InstanceRecord {
    std::string volume_id;
    std::string root;  // /<container>[/<sub-path>]
    bool read_only = false;
    std::string scope_id;    // zerohopd's scope it connects through
    std::string socket;      // that scope's socket
    std::string mountpoint;  // <state_dir>/fuse/<id>/mnt
    pid_t pid = 0;           // zerohop-fuse serving it (0: none yet)
    std::set<std::string> targets;
};

class NodeState {
public:
    explicit NodeState(std::string dir) : dir_(std::move(dir)) {}

    // Reads <dir>/node-state.json (none: empty). A damaged file is an error, never ignored.
    absl::Status Load();
    absl::Status Save() const;

    const std::string& dir() const { return dir_; }

    std::map<std::string, TargetRecord> targets;      // by target path
    std::map<std::string, InstanceRecord> instances;  // by instance id

private:
    std::string dir_;
};

}  // namespace zerohop::csi
