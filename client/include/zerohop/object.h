#pragma once
// What the namespace knows about one entry: its type and system attributes.
//
// System attributes are read-only, start with "__", and can be read by conditions and
// filters like any attribute (compare-and-swap on __mtime_nsecs is how clients build
// optimistic concurrency):
//   __name, __size, __mode, __uid, __gid, __obj_type, __mtime_secs, __mtime_nsecs,
//   __ctime_secs, __ctime_nsecs, and for stream shards __last_sequence_num.
//
//   zerohop::ObjectInfo info = ...;
//   auto v = zerohop::SystemAttribute("__size", "alice", info);   // ValueView int64

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "zerohop/value.h"

namespace zerohop {

// Numbers are part of the wire and the __obj_type attribute: never renumber.
enum class ObjectType : uint8_t {
    kObject = 0,     // bytes + attributes; an item of a table; a file through FUSE
    kDirectory = 1,  // a directory, or a table
    kStream = 2,     // a stream: a directory of shards
    kSymlink = 3,
    kShard = 4,      // one shard of a stream (append-only log of records)
    kSpecial = 5,    // a FIFO, a device node or a unix socket: metadata only (`special`, `rdev`)
};

std::string_view ObjectTypeName(ObjectType t);

struct ObjectInfo {
    ObjectType type = ObjectType::kObject;
    uint64_t id = 0;          // stable while the entry exists, unique in its backend
    uint64_t size = 0;        // bytes of an object, records of a shard
    uint32_t mode = 0;        // permission bits only (07777)
    uint32_t uid = 0;
    uint32_t gid = 0;
    Timestamp mtime;
    Timestamp ctime;
    // Set at creation and by set_metadata only (reads do not move it: a file system's view
    // is as if mounted noatime). {0, 0} in entries kept before it was: read as the mtime.
    Timestamp atime;
    uint64_t last_sequence = 0;  // shards only
    std::string symlink_target;  // symlinks only
    uint32_t special = 0;        // kSpecial only: its kind, S_IFIFO, S_IFCHR, S_IFBLK or S_IFSOCK
    uint64_t rdev = 0;           // kSpecial devices only: the device number (makedev)
    // Directories (containers and the namespace's root included): how many of the entries
    // it holds are directories or streams (a file system's link count is 2 + this).
    uint64_t subdirs = 0;
};

// An object's bytes as a file on this node (Client::OpenObjectFile), for a reader that
// hands it to the kernel (zerohop-fuse's passthrough): `fd` is a read-only descriptor this
// owns (closed with it), or -1 when the bytes are not in a local file (small objects kept
// inline, objects on the redis backend). It is the version that was current at the call:
// a later put replaces the object with another file; writes at an offset change this one.
struct ObjectFile {
    ObjectInfo info;
    int fd = -1;

    ObjectFile() = default;
    ObjectFile(ObjectInfo i, int owned_fd) : info(std::move(i)), fd(owned_fd) {}
    ObjectFile(ObjectFile&& o) noexcept : info(std::move(o.info)), fd(o.release()) {}
    ObjectFile& operator=(ObjectFile&& o) noexcept;
    ObjectFile(const ObjectFile&) = delete;
    ObjectFile& operator=(const ObjectFile&) = delete;
    ~ObjectFile();
    // The descriptor, no longer owned.
    int release() {
        int f = fd;
        fd = -1;
        return f;
    }
};

// True for names that start with "__".
inline bool IsSystemAttributeName(std::string_view name) {
    return name.size() >= 2 && name[0] == '_' && name[1] == '_';
}

// The value of a system attribute of an entry called `name`, or nullopt if `attr` is not a
// system attribute of that entry. The view borrows `name`.
std::optional<ValueView> SystemAttribute(std::string_view attr, std::string_view name, const ObjectInfo& info);

// Every system attribute name, for projections that ask for them all.
inline constexpr std::string_view kSystemAttributeNames[] = {
    "__name",       "__size",        "__mode",       "__uid",         "__gid",          "__obj_type",
    "__mtime_secs", "__mtime_nsecs", "__ctime_secs", "__ctime_nsecs", "__last_sequence_num",
};

}  // namespace zerohop
