#pragma once
// The zerohop-fuse processes behind the FUSE views: one per instance (a volume, a key, a
// mode), mounted at <state_dir>/fuse/<id>/mnt and bind-mounted into each pod's target.
//
// They are not the plugin's to lose: each runs in a session of its own, outlives a
// restarted plugin, and is found again by its pid and mount point. One that dies is started
// again and takes its mount over from its holder (zerohop-fuse --holder-socket), so the
// pods' open files carry on.
//
//   FuseProcesses fuse({.zerohop_fuse = "/usr/bin/zerohop-fuse", .state_dir = dir});
//   ZH_RETURN_IF_ERROR(fuse.Start(id, instance));   // mounted and serving, or an error
//   if (!fuse.Serving(instance)) fuse.Start(id, instance);
//   fuse.Stop(id, instance);                        // unmounted, process gone

#include <string>

#include "absl/status/status.h"
#include "node_state.h"

namespace zerohop::csi {

class FuseProcesses {
public:
    struct Options {
        std::string zerohop_fuse;  // the binary
        std::string state_dir;
        int takeover_secs = 60;  // a dead server's callers wait this long for its successor
    };
    explicit FuseProcesses(Options options) : options_(std::move(options)) {}

    // Where instance `id` lives: its mount point is <Directory(id)>/mnt.
    std::string Directory(const std::string& id) const { return options_.state_dir + "/fuse/" + id; }

    // Starts zerohop-fuse for `instance` (which names its socket, root, mode and mount point)
    // and waits until it serves the mount, taking it over if its holder keeps it. Sets pid.
    absl::Status Start(const std::string& id, InstanceRecord& instance) const;

    // Whether `instance.pid` is alive and is the zerohop-fuse of this mount point (a pid the
    // kernel has given to another process is not).
    bool Serving(const InstanceRecord& instance) const;

    // Whether the holder of its mount answers (the mount can be taken over). A mount nobody
    // holds any more is dead: callers get ENOTCONN until it is replaced.
    bool Held(const std::string& id) const;

    // Stops it (SIGTERM: it unmounts), makes sure nothing stays mounted, removes its
    // directory. The targets bound to it must be unmounted first.
    void Stop(const std::string& id, InstanceRecord& instance) const;

    // Collects the exit status of children that ended (so that their pids read as dead).
    static void Reap();

private:
    Options options_;
};

}  // namespace zerohop::csi
