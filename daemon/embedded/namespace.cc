// The embedded store's namespace: containers, stat, listing, mkdir, rmdir, rename,
// symlinks, delete and metadata.

#include <algorithm>

#include "absl/strings/str_format.h"
#include "backend/rules.h"
#include "base/status_macros.h"
#include "embedded/internal/store.h"
#include "rocksdb/write_batch.h"
#include "zerohop/status.h"

namespace zerohop {

using embedded::DataKey;
using embedded::EncodeEntry;
using embedded::EntryKey;
using embedded::EntryPrefix;
using embedded::FileKey;
using embedded::LockMode;
using embedded::LockSet;
using embedded::ToView;

// ---- namespace ------------------------------------------------------------------------

absl::StatusOr<std::vector<std::string>> EmbeddedBackend::Store::ListContainers() {
    std::vector<std::string> out;
    out.reserve(container_roots_.size());
    for (const auto& [name, id] : container_roots_) {
        out.push_back(name);
    }
    std::sort(out.begin(), out.end());
    return out;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Stat(const Path& path) {
    if (path.is_root()) {
        ObjectInfo info;
        info.type = ObjectType::kDirectory;
        info.mode = 0755;
        info.subdirs = container_roots_.size();
        return info;
    }
    ZH_ASSIGN_OR_RETURN(auto loc, Locate(path));
    ZH_ASSIGN_OR_RETURN(auto e, GetExisting(path, loc));
    return InfoOf(e);
}

absl::StatusOr<ListResult> EmbeddedBackend::Store::List(const ListRequest& req) {
    ListResult out;
    uint32_t limit = PageLimit(req.limit);
    if (req.path.is_root()) {
        auto names = ListContainers();
        for (const std::string& n : *names) {
            if (n.compare(0, req.prefix.size(), req.prefix) != 0 || (!req.marker.empty() && n <= req.marker)) {
                continue;
            }
            if (out.entries.size() == limit) {
                out.truncated = true;
                break;
            }
            ZH_ASSIGN_OR_RETURN(auto info, Stat(*Path().Child(n)));
            out.entries.push_back(DirEntry{n, info, {}});
            out.next_marker = n;
        }
        return out;
    }
    ZH_ASSIGN_OR_RETURN(auto loc, Locate(req.path));
    ZH_ASSIGN_OR_RETURN(auto dir, GetExisting(req.path, loc));
    if (!dir.is_dir_like()) {
        return NotDirectoryError(req.path);
    }
    std::string prefix = EntryPrefix(dir.info.id, req.prefix);
    size_t name_at = EntryPrefix(dir.info.id).size();
    std::string start = prefix;
    if (!req.marker.empty()) {
        std::string after = EntryKey(dir.info.id, req.marker);
        after.push_back('\0');
        start = std::max(start, after);
    }
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    for (it->Seek(start); it->Valid() && it->key().starts_with(prefix); it->Next()) {
        if (out.entries.size() == limit) {
            out.truncated = true;
            break;
        }
        ZH_ASSIGN_OR_RETURN(auto e, embedded::DecodeEntry(ToView(it->value())));
        ZH_RETURN_IF_ERROR(SizeByFile(&e));
        DirEntry de;
        de.name = std::string(ToView(it->key()).substr(name_at));
        ZH_ASSIGN_OR_RETURN(auto info, InfoOf(e));
        de.info = info;
        if (req.with_attributes) {
            ZH_ASSIGN_OR_RETURN(auto attrs, DecodeAttributes(e.attributes));
            de.attributes = std::move(attrs);
        }
        out.next_marker = de.name;
        out.entries.push_back(std::move(de));
    }
    if (!it->status().ok()) {
        return FromRocks(it->status(), "list");
    }
    return out;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Mkdir(const MkdirRequest& req) {
    if (req.path.depth() == 1 &&
        container_roots_.contains(absl::string_view(req.path.container().data(), req.path.container().size()))) {
        return ContainerExistsError(req.path);
    }
    return WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto id, PrepareCreate(req.path, loc, 1));
        Entry e = embedded::NewEntry(ObjectType::kDirectory, id, req.mode, req.caller.uid, req.caller.gid, Now());
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        TouchDir(&batch, loc.parent, e.info.mtime, +1);
        ZH_RETURN_IF_ERROR(Commit(&batch));
        return e.info;
    });
}

absl::Status EmbeddedBackend::Store::Rmdir(const Path& path) {
    return WithEntryLocked(path, [&](const Location& loc) -> absl::Status {
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(path, loc));
        ZH_RETURN_IF_ERROR(CheckRemovableDirectory(path, e.info.type));
        // Creates inside this directory hold its entry shared, so it stays empty while we hold it.
        std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
        std::string prefix = EntryPrefix(e.info.id);
        it->Seek(prefix);
        if (it->Valid() && it->key().starts_with(prefix)) {
            return DirectoryNotEmptyError(path);
        }
        if (!it->status().ok()) {
            return FromRocks(it->status(), "rmdir");
        }
        rocksdb::WriteBatch batch;
        batch.Delete(meta_, EntryKey(loc.parent, path.name()));
        batch.Delete(meta_, embedded::DirStatsKey(e.info.id));
        TouchDir(&batch, loc.parent, Now(), -1);
        absl::Status committed = Commit(&batch);
        if (committed.ok()) {
            dirs_.Invalidate();
        }
        return committed;
    });
}

absl::Status EmbeddedBackend::Store::Rename(const RenameRequest& req) {
    const Path& from = req.from;
    const Path& to = req.to;
    ZH_RETURN_IF_ERROR(CheckRenamePaths(req));
    absl::MutexLock rename_lock(&rename_mu_);
    for (int attempt = 0; attempt < kMaxLocateRetries; ++attempt) {
        ZH_ASSIGN_OR_RETURN(auto src_loc, Locate(from));
        ZH_ASSIGN_OR_RETURN(auto dst_loc, Locate(to));
        LockSet locks(&locks_, {{src_loc.parent, from.name(), LockMode::kExclusive},
                                {dst_loc.parent, to.name(), LockMode::kExclusive},
                                {src_loc.grandparent, src_loc.parent_name, LockMode::kShared},
                                {dst_loc.grandparent, dst_loc.parent_name, LockMode::kShared}});
        auto src_there = StillThere(src_loc);
        auto dst_there = StillThere(dst_loc);
        ZH_RETURN_IF_ERROR(src_there.status());
        ZH_RETURN_IF_ERROR(dst_there.status());
        if (!*src_there || !*dst_there) {
            continue;
        }
        ZH_RETURN_IF_ERROR(CheckWritableParent(to, dst_loc));
        ZH_ASSIGN_OR_RETURN(auto src, GetExisting(from, src_loc));
        ZH_RETURN_IF_ERROR(CheckMovable(req, src.info));
        if (from == to) {
            return absl::OkStatus();
        }
        // A directory may not move below itself (checked by id: paths may alias through renames).
        if (src.is_dir_like()) {
            ZH_ASSIGN_OR_RETURN(auto inside, IsAncestor(src.info.id, to));
            if (inside) {
                return absl::InvalidArgumentError(
                    absl::StrFormat("rename %s -> %s: cannot move a directory inside itself", from.str(), to.str()));
            }
        }
        ZH_ASSIGN_OR_RETURN(auto dst, GetEntry(dst_loc.parent, to.name()));
        rocksdb::WriteBatch batch;
        uint64_t replaced_file = 0;
        if (dst) {
            const Entry& d = *dst;
            if (d.info.id == src.info.id) {
                return absl::OkStatus();
            }
            ZH_RETURN_IF_ERROR(CheckReplace(req, src.info, d.info));
            if (d.info.type == ObjectType::kDirectory) {
                std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
                std::string prefix = EntryPrefix(d.info.id);
                it->Seek(prefix);
                if (it->Valid() && it->key().starts_with(prefix)) {
                    return DestinationNotEmptyError(req);
                }
            }
            if (d.info.type == ObjectType::kObject) {
                if (d.data_id != 0) {
                    batch.Delete(meta_, FileKey(d.data_id));
                    replaced_file = d.data_id;
                } else {
                    batch.Delete(data_, DataKey(d.info.id));
                }
            }
        }
        Entry moved = src;
        moved.info.ctime = Now();
        batch.Delete(meta_, EntryKey(src_loc.parent, from.name()));
        batch.Put(meta_, EntryKey(dst_loc.parent, to.name()), EncodeEntry(moved));
        if (dst && dst->info.type == ObjectType::kDirectory) {
            batch.Delete(meta_, embedded::DirStatsKey(dst->info.id));
        }
        int moved_dirs = src.is_dir_like() ? 1 : 0, replaced_dirs = dst && dst->is_dir_like() ? 1 : 0;
        TouchDir(&batch, src_loc.parent, moved.info.ctime, -moved_dirs);
        TouchDir(&batch, dst_loc.parent, moved.info.ctime, moved_dirs - replaced_dirs);
        ZH_RETURN_IF_ERROR(Commit(&batch));
        if (src.is_dir_like() || (dst && dst->is_dir_like())) {
            dirs_.Invalidate();
        }
        if (replaced_file != 0) {
            RemoveFile(replaced_file);
        }
        return absl::OkStatus();
    }
    return absl::UnavailableError(
        absl::StrFormat("rename %s -> %s: parents kept moving under concurrent renames; retry", from.str(), to.str()));
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Symlink(const SymlinkRequest& req) {
    ZH_RETURN_IF_ERROR(CheckSymlinkTarget(req));
    return WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto id, PrepareCreate(req.path, loc, 1));
        Entry e = embedded::NewEntry(ObjectType::kSymlink, id, 0777, req.caller.uid, req.caller.gid, Now());
        e.info.size = req.target.size();
        e.info.symlink_target = req.target;
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        TouchDir(&batch, loc.parent, e.info.mtime);
        ZH_RETURN_IF_ERROR(Commit(&batch));
        return e.info;
    });
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Mknod(const MknodRequest& req) {
    ZH_RETURN_IF_ERROR(CheckMknod(req));
    return WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto id, PrepareCreate(req.path, loc, 1));
        Entry e = embedded::NewEntry(ObjectType::kSpecial, id, req.mode, req.caller.uid, req.caller.gid, Now());
        e.info.special = req.special;
        e.info.rdev = req.rdev;
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        TouchDir(&batch, loc.parent, e.info.mtime);
        ZH_RETURN_IF_ERROR(Commit(&batch));
        return e.info;
    });
}

absl::StatusOr<std::string> EmbeddedBackend::Store::Readlink(const Path& path) {
    ZH_ASSIGN_OR_RETURN(auto info, Stat(path));
    return SymlinkTargetOf(path, info);
}

absl::Status EmbeddedBackend::Store::Delete(const DeleteRequest& req) {
    uint64_t removed_file = 0;
    absl::Status s = WithEntryLocked(req.path, [&](const Location& loc) -> absl::Status {
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(req.path, loc));
        ZH_RETURN_IF_ERROR(CheckDeletable(req.path, e.info.type));
        ZH_RETURN_IF_ERROR(CheckCondition(req.path, req.condition, e));
        rocksdb::WriteBatch batch;
        batch.Delete(meta_, EntryKey(loc.parent, req.path.name()));
        TouchDir(&batch, loc.parent, Now());
        if (e.info.type == ObjectType::kObject) {
            if (e.data_id != 0) {
                batch.Delete(meta_, FileKey(e.data_id));
                removed_file = e.data_id;
            } else {
                batch.Delete(data_, DataKey(e.info.id));
            }
        }
        return Commit(&batch);
    });
    if (s.ok() && removed_file != 0) {
        RemoveFile(removed_file);
    }
    return s;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::SetMetadata(const SetMetadataRequest& req) {
    ZH_RETURN_IF_ERROR(ValidateMetadata(req));
    return WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(req.path, loc));
        rocksdb::WriteBatch batch;
        uint64_t subdirs = 0;
        if (e.info.type == ObjectType::kDirectory) {
            // Its times and count as they read, into the "T" record whole (every change inside
            // it holds its entry shared, so no operand can come in between).
            ZH_ASSIGN_OR_RETURN(auto reads, InfoOf(e));
            e.info.mtime = reads.mtime;
            e.info.ctime = reads.ctime;
            subdirs = reads.subdirs;
        }
        ApplyMetadata(req, Now(), &e.info);
        if (e.sized_by_file && req.mtime) {
            ZH_RETURN_IF_ERROR(StampFile(e.data_id, *req.mtime, req.path));
        }
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        if (e.info.type == ObjectType::kDirectory) {
            batch.Put(meta_, embedded::DirStatsKey(e.info.id),
                      embedded::EncodeDirStats(
                          {e.info.mtime.ToNanos(), e.info.ctime.ToNanos(), static_cast<int64_t>(subdirs)}));
        }
        ZH_RETURN_IF_ERROR(Commit(&batch));
        return InfoOf(e);
    });
}

}  // namespace zerohop
