#include "zerohop/object.h"

#include <unistd.h>

namespace zerohop {

std::string_view ObjectTypeName(ObjectType t) {
    switch (t) {
        case ObjectType::kObject: return "object";
        case ObjectType::kDirectory: return "directory";
        case ObjectType::kStream: return "stream";
        case ObjectType::kSymlink: return "symlink";
        case ObjectType::kShard: return "shard";
        case ObjectType::kSpecial: return "special";
    }
    return "unknown";
}

ObjectFile& ObjectFile::operator=(ObjectFile&& o) noexcept {
    if (this != &o) {
        if (fd >= 0) {
            ::close(fd);
        }
        info = std::move(o.info);
        fd = o.release();
    }
    return *this;
}

ObjectFile::~ObjectFile() {
    if (fd >= 0) {
        ::close(fd);
    }
}

std::optional<ValueView> SystemAttribute(std::string_view attr, std::string_view name, const ObjectInfo& info) {
    if (!IsSystemAttributeName(attr)) {
        return std::nullopt;
    }
    std::string_view a = attr.substr(2);
    if (a == "name") {
        return ValueView::String(name);
    }
    if (a == "size") {
        return ValueView::Int64(static_cast<int64_t>(info.size));
    }
    if (a == "mode") {
        return ValueView::Int64(info.mode);
    }
    if (a == "uid") {
        return ValueView::Int64(info.uid);
    }
    if (a == "gid") {
        return ValueView::Int64(info.gid);
    }
    if (a == "obj_type") {
        return ValueView::Int64(static_cast<int64_t>(info.type));
    }
    if (a == "mtime_secs") {
        return ValueView::Int64(info.mtime.secs);
    }
    if (a == "mtime_nsecs") {
        return ValueView::Int64(info.mtime.nsecs);
    }
    if (a == "ctime_secs") {
        return ValueView::Int64(info.ctime.secs);
    }
    if (a == "ctime_nsecs") {
        return ValueView::Int64(info.ctime.nsecs);
    }
    if (a == "last_sequence_num" && info.type == ObjectType::kShard) {
        return ValueView::Int64(static_cast<int64_t>(info.last_sequence));
    }
    return std::nullopt;
}

}  // namespace zerohop
