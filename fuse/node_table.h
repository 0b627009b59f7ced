#pragma once
// Inode numbers for the FUSE mount: each known entry is (parent inode, name), so a rename
// moves a node and every descendant's path follows; the kernel's lookup counts decide when
// a node is forgotten. Thread-safe.
//
//   NodeTable t("/demo");                       // inode 1 is the mount's root
//   fuse_ino_t ino = t.Lookup(1, "dir");       // known or new; counts one kernel lookup
//   std::string p = *t.PathOf(ino);            // "/demo/dir"
//   t.Forget(ino, 1);

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"

namespace zerohop::fuse {

using Ino = uint64_t;
inline constexpr Ino kRootIno = 1;

class NodeTable {
public:
    // `root`: the namespace path the mount shows ("/" for everything).
    explicit NodeTable(std::string root);

    // The inode of `name` in `parent`, created if new; counts `count` kernel lookups and
    // remembers whether it is a stream shard (whose file reads and writes are records).
    Ino Lookup(Ino parent, std::string_view name, uint64_t count = 1, bool shard = false);
    bool IsShard(Ino ino) const;
    // Drops `count` lookups; a node nobody knows any more is freed (true).
    bool Forget(Ino ino, uint64_t count);
    // The namespace path of `ino`, or nullopt if it is unknown.
    std::optional<std::string> PathOf(Ino ino) const;
    // The path of `name` in `parent`.
    std::optional<std::string> ChildPath(Ino parent, std::string_view name) const;
    // After a rename: the node (if known) now lives at (new_parent, new_name); a node that
    // was there is unlinked.
    void Move(Ino parent, std::string_view name, Ino new_parent, std::string_view new_name);
    // After an unlink or rmdir: the name no longer leads to the node (which lives on until
    // forgotten, for open files).
    void Unlink(Ino parent, std::string_view name);

    // Open files. The backend names objects by path, so a file unlinked (or replaced by a
    // rename) while open is first renamed to a hidden name in its directory and removed
    // at its last close, as NFS does: the open descriptors keep reading and writing it.
    void Opened(Ino ino);
    // The inode of the open file at (parent, name), if it is open.
    std::optional<Ino> OpenAt(Ino parent, std::string_view name) const;
    // After the hidden rename: the node now answers to `hidden`, to be removed at its last
    // close. False if it was closed meanwhile (then remove it now).
    bool Hide(Ino ino, std::string_view hidden);
    // At a close: the hidden path to remove now, if this was the last close of a hidden file.
    std::optional<std::string> Closed(Ino ino);
    // At an open: whether the object is the version (size, mtime) seen at the previous open,
    // so that the kernel may keep its cached pages. Records this version.
    bool SameVersion(Ino ino, uint64_t size, int64_t mtime_secs, int32_t mtime_nsecs);
    static std::string HiddenName(Ino ino);
    static bool IsHidden(std::string_view name);

    size_t size() const;

    // Whether `ino` was known to a predecessor (restored by Replay): the kernel may hold
    // open files of it that this process never saw.
    bool Inherited(Ino ino) const;

    // Kernel passthrough (passthrough.h): `ino`'s backing id, registered with the kernel
    // for the file (file_dev, file_ino); backing id 0: unregistered. Journaled, so that a
    // successor knows what the kernel may still hold.
    struct Backing {
        int32_t id = 0;
        uint64_t file_dev = 0, file_ino = 0;
    };
    void RecordBacking(Ino ino, const Backing& b);
    // The backings a predecessor left registered (after Replay).
    absl::flat_hash_map<Ino, Backing> InheritedBackings() const;

    // Restarts: every change to the table (nodes added, moved, unlinked, forgotten) is
    // appended to `fd` (a memfd the holder keeps), so that a successor can Replay it and
    // answer for the inode numbers the kernel already knows.
    void SetJournal(int fd);
    // Rebuilds the table from a journal. Restored nodes are never dropped (their lookup
    // counts died with the predecessor).
    absl::Status Replay(int fd);

private:
    struct Node {
        Ino parent = 0;
        std::string name;
        uint64_t lookups = 0;
        bool linked = true;
        uint32_t opens = 0;
        bool hidden = false;  // unlinked while open: removed at the last close
        bool shard = false;
        bool inherited = false;  // restored from a predecessor's journal
        // The version seen at the last open (size, mtime), for keep_cache.
        std::optional<std::tuple<uint64_t, int64_t, int32_t>> version;
    };
    struct Key {
        Ino parent;
        std::string name;
        bool operator==(const Key& o) const { return parent == o.parent && name == o.name; }
        template <typename H>
        friend H AbslHashValue(H h, const Key& k) {
            return H::combine(std::move(h), k.parent, k.name);
        }
    };

    std::optional<std::string> PathLocked(Ino ino) const ABSL_SHARED_LOCKS_REQUIRED(mu_);
    void Log(char op, Ino ino, Ino parent = 0, std::string_view name = {}) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

    const std::string root_;
    mutable absl::Mutex mu_;
    absl::flat_hash_map<Ino, Node> nodes_ ABSL_GUARDED_BY(mu_);
    absl::flat_hash_map<Key, Ino> by_name_ ABSL_GUARDED_BY(mu_);
    Ino next_ ABSL_GUARDED_BY(mu_) = kRootIno + 1;
    int journal_ ABSL_GUARDED_BY(mu_) = -1;
    absl::flat_hash_map<Ino, Backing> inherited_backings_ ABSL_GUARDED_BY(mu_);
};

}  // namespace zerohop::fuse
