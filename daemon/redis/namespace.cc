// The redis backend's namespace: containers, stat, listing, mkdir, rmdir, rename, symlinks,
// delete and metadata.

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "backend/rules.h"
#include "base/status_macros.h"
#include "redis/internal/store.h"
#include "zerohop/status.h"

namespace zerohop::redis {

absl::StatusOr<std::vector<std::string>> Store::ListContainers() {
    std::vector<std::string> out;
    for (const auto& [name, id] : roots_) {
        out.push_back(name);
    }
    return out;  // roots_ is ordered
}

absl::StatusOr<ObjectInfo> Store::ContainerInfo(std::string_view container) {
    auto root = roots_.find(std::string(container));
    if (root == roots_.end()) {
        return absl::NotFoundError(absl::StrFormat("/%s: container \"%s\" is not in this backend", container,
                                                   container));
    }
    std::string tag = Tag(container);
    ZH_ASSIGN_OR_RETURN(auto m, Call({"HMGET", tag + "root", "m", "n", "tm"}, tag, true));
    if (m.type != Reply::Type::kArray || m.elements.size() != 3) {
        return Damaged("a container's root");
    }
    ObjectInfo info;
    info.type = ObjectType::kDirectory;
    info.id = root->second;
    info.mode = 0755;
    ObjectInfo meta;
    if (DecodeMeta(m.elements[0].str, &meta)) {
        info.mode = meta.mode;
        info.mtime = meta.mtime;
        info.ctime = meta.ctime;
        info.atime = meta.atime;
    }
    info.subdirs = Subdirs(m.elements[1].str);
    ApplyDirTimes(m.elements[2].str, &info);
    return info;
}

absl::StatusOr<ObjectInfo> Store::Stat(const Path& path) {
    if (path.is_root()) {
        ObjectInfo info;
        info.type = ObjectType::kDirectory;
        info.mode = 0755;
        info.subdirs = roots_.size();
        return info;
    }
    if (path.depth() == 1) {
        return ContainerInfo(path.container());
    }
    ZH_ASSIGN_OR_RETURN(auto r, Resolve(path));
    Entry* e = Existing(r);
    if (e == nullptr) {
        return PathNotFoundError(path.str());
    }
    return InfoOf(*e);
}

absl::StatusOr<std::vector<std::optional<Entry>>> Store::FetchEntries(const std::string& tag, uint64_t dir,
                                                                const std::vector<std::string>& names) {
    struct Wait {
        absl::Mutex mu;
        size_t left;
        std::vector<absl::StatusOr<Reply>> replies;
    } wait;
    wait.left = names.size();
    wait.replies.resize(names.size(), absl::UnknownError("no reply"));
    absl::Notification all;
    if (names.empty()) {
        all.Notify();
    }
    for (size_t i = 0; i < names.size(); ++i) {
        std::string key = EntryKey(tag, dir, names[i]);
        redis_->Send({"HGETALL", key}, {.key = tag, .safe_to_retry = true}, [&, i](absl::StatusOr<Reply> r) {
            bool last;
            {
                absl::MutexLock lock(&wait.mu);
                wait.replies[i] = std::move(r);
                last = --wait.left == 0;
            }
            if (last) {
                all.Notify();  // (after the lock: the waiter may free `wait` at once)
            }
        });
    }
    all.WaitForNotification();
    std::vector<std::optional<Entry>> out(names.size());
    for (size_t i = 0; i < names.size(); ++i) {
        if (!wait.replies[i].ok()) {
            return wait.replies[i].status();
        }
        if (wait.replies[i]->elements.empty()) {
            continue;
        }
        ZH_ASSIGN_OR_RETURN(auto e, DecodeEntry(EntryKey(tag, dir, names[i]), wait.replies[i]->elements));
        out[i] = std::move(e);
    }
    return out;
}

absl::StatusOr<Store::NamesPage> Store::Names(const std::string& tag, uint64_t dir, const std::string& after,
                                const std::string& prefix, size_t count) {
    std::string from = after.empty() ? (prefix.empty() ? "-" : "[" + prefix) : "(" + after;
    if (!after.empty() && !prefix.empty() && after < prefix) {
        from = "[" + prefix;
    }
    size_t per = (count + kIndexBuckets - 1) / kIndexBuckets * 2 + 4;
    ZH_ASSIGN_OR_RETURN(auto r, Script(kNamesScript, names_sha_, {tag + "ver"},
                                       {IndexPrefix(tag, dir), from, std::to_string(per)}, true));
    if (r.type != Reply::Type::kArray || r.elements.size() != kIndexBuckets) {
        return Damaged("a directory's index");
    }
    std::vector<std::string> all;
    std::optional<std::string> cutoff;  // the smallest last name of a bucket read in full
    for (Reply& bucket : r.elements) {
        if (bucket.elements.size() >= per && (!cutoff || bucket.elements.back().str < *cutoff)) {
            cutoff = bucket.elements.back().str;
        }
        for (Reply& e : bucket.elements) {
            all.push_back(std::move(e.str));
        }
    }
    std::sort(all.begin(), all.end());
    NamesPage page;
    page.more = cutoff.has_value();
    for (std::string& n : all) {
        if (!prefix.empty() && n.compare(0, prefix.size(), prefix) != 0) {
            page.more = false;  // past the prefix: nothing after it matches
            break;
        }
        if ((cutoff && n > *cutoff) || page.names.size() == count) {
            page.more = true;
            break;
        }
        page.names.push_back(std::move(n));
    }
    return page;
}

absl::StatusOr<uint64_t> Store::DirectoryId(const Path& path, bool table) {
    if (path.depth() == 1) {
        ZH_ASSIGN_OR_RETURN(auto info, ContainerInfo(path.container()));
        return info.id;
    }
    ZH_ASSIGN_OR_RETURN(auto r, Resolve(path));
    Entry* e = Existing(r);
    if (e == nullptr) {
        return PathNotFoundError(path.str());
    }
    if (table && e->info.type != ObjectType::kDirectory) {
        return NotATableError(path);
    }
    if (!e->is_dir_like()) {
        return NotDirectoryError(path);
    }
    return e->info.id;
}

absl::StatusOr<ListResult> Store::List(const ListRequest& req) {
    ListResult out;
    uint32_t limit = PageLimit(req.limit);
    if (req.path.is_root()) {
        for (const auto& [n, id] : roots_) {
            if (n.compare(0, req.prefix.size(), req.prefix) != 0 || (!req.marker.empty() && n <= req.marker)) {
                continue;
            }
            if (out.entries.size() == limit) {
                out.truncated = true;
                break;
            }
            ZH_ASSIGN_OR_RETURN(auto info, ContainerInfo(n));
            out.entries.push_back(DirEntry{n, info, {}});
            out.next_marker = n;
        }
        return out;
    }
    std::string tag = Tag(req.path.container());
    ZH_ASSIGN_OR_RETURN(auto dir_id, DirectoryId(req.path, /*table=*/false));
    uint64_t dir = dir_id;
    std::string after = req.marker;
    while (true) {  // (with `limit` entries, one more name decides whether it is truncated)
        size_t want = limit - out.entries.size() + 1;
        ZH_ASSIGN_OR_RETURN(auto page, Names(tag, dir, after, req.prefix, want));
        const std::vector<std::string>* names = &page.names;
        ZH_ASSIGN_OR_RETURN(auto entries, FetchEntries(tag, dir, *names));
        for (size_t i = 0; i < names->size(); ++i) {
            after = (*names)[i];
            if (!entries[i]) {
                continue;  // removed since the names were read
            }
            if (out.entries.size() == limit) {
                out.truncated = true;
                return out;
            }
            DirEntry de;
            de.name = (*names)[i];
            ZH_ASSIGN_OR_RETURN(auto info, InfoOf(*entries[i]));
            de.info = info;
            if (req.with_attributes) {
                ZH_ASSIGN_OR_RETURN(auto attrs, DecodeAttributes(entries[i]->Field("a")));
                de.attributes = std::move(attrs);
            }
            out.next_marker = de.name;
            out.entries.push_back(std::move(de));
        }
        if (!page.more) {
            break;
        }
    }
    return out;
}

absl::StatusOr<ObjectInfo> Store::Mkdir(const MkdirRequest& req) {
    if (req.path.depth() == 1) {
        if (roots_.contains(std::string(req.path.container()))) {
            return ContainerExistsError(req.path);
        }
        return absl::NotFoundError(absl::StrFormat("%s: container \"%s\" is not in this backend", req.path.str(),
                                                   req.path.container()));
    }
    return Create(req.path, ObjectType::kDirectory, req.mode, req.caller, nullptr);
}

absl::Status Store::Rmdir(const Path& path) {
    ZH_RETURN_IF_ERROR(CheckBelowContainer(path));
    return Retrying(path, [&]() -> absl::Status {
        ZH_ASSIGN_OR_RETURN(auto r, Resolve(path));
        Entry* e = Existing(r);
        if (e == nullptr) {
            return PathNotFoundError(path.str());
        }
        ZH_RETURN_IF_ERROR(CheckRemovableDirectory(path, e->info.type));
        Txn t(r.tag + "ver");
        r.CheckChain(t);
        t.CheckVersion(r.key, e->version);
        int empty = t.CheckEmpty(IndexPrefix(r.tag, e->info.id));
        t.Del(r.key);
        t.ZRem(IndexKey(r.tag, r.parent, path.name()), std::string(path.name()));
        t.AddSubdirs(r.ParentKey(), -1);
        t.TouchDir(r.ParentKey(), DirTimes(Now()));
        int failed = 0;
        ZH_ASSIGN_OR_RETURN(auto ok, Commit(t, &failed));
        if (ok) {
            return absl::OkStatus();
        }
        if (failed == empty) {
            return DirectoryNotEmptyError(path);
        }
        return Retry();
    });
}

absl::Status Store::Rename(const RenameRequest& req) {
    const Path& from = req.from;
    const Path& to = req.to;
    ZH_RETURN_IF_ERROR(CheckRenamePaths(req));
    if (from.container() != to.container()) {  // (each container is its own cluster slot)
        return absl::UnimplementedError(absl::StrFormat("rename %s -> %s: across containers", from.str(), to.str()));
    }
    return Retrying(from, [&]() -> absl::Status {
        ZH_ASSIGN_OR_RETURN(auto src, Resolve(from));
        ZH_ASSIGN_OR_RETURN(auto dst, Resolve(to));
        ZH_RETURN_IF_ERROR(CheckWritableParent(to, dst));
        Entry* e = Existing(src);
        if (e == nullptr) {
            return PathNotFoundError(from.str());
        }
        ZH_RETURN_IF_ERROR(CheckMovable(req, e->info));
        if (from == to) {
            return absl::OkStatus();
        }
        if (e->is_dir_like() && (dst.parent == e->info.id || std::find(dst.chain_ids.begin(), dst.chain_ids.end(),
                                                                       e->info.id) != dst.chain_ids.end())) {
            return absl::InvalidArgumentError(
                absl::StrFormat("rename %s -> %s: cannot move a directory inside itself", from.str(), to.str()));
        }
        Txn t(src.tag + "ver");
        src.CheckChain(t);
        dst.CheckChain(t);
        t.CheckVersion(src.key, e->version);
        t.CheckVersion(dst.key, dst.version());
        std::string replaced_chunks;
        int dst_empty = -1;
        if (dst.entry) {
            const Entry& d = *dst.entry;
            if (d.info.id == e->info.id) {
                return absl::OkStatus();
            }
            ZH_RETURN_IF_ERROR(CheckReplace(req, e->info, d.info));
            if (d.info.type == ObjectType::kDirectory) {
                dst_empty = t.CheckEmpty(IndexPrefix(dst.tag, d.info.id));
            }
            replaced_chunks = d.Field("c");
        }
        Entry moved = *e;
        moved.info.ctime = Now();
        moved.fields["m"] = EncodeMeta(moved.info);
        // A directory's count of subdirectories moves with it as it is when this commits
        // (changes inside it do not change its version), not as it was read.
        moved.fields.erase("n");
        t.Replace(dst.key, moved.fields);
        t.MoveSubdirs(src.key, dst.key);
        t.Del(src.key);
        t.ZRem(IndexKey(src.tag, src.parent, from.name()), std::string(from.name()));
        t.ZAdd(IndexKey(dst.tag, dst.parent, to.name()), std::string(to.name()));
        if (e->is_dir_like()) {
            t.AddSubdirs(src.ParentKey(), -1);
            t.AddSubdirs(dst.ParentKey(), +1);
        }
        if (dst.entry && dst.entry->is_dir_like()) {
            t.AddSubdirs(dst.ParentKey(), -1);
        }
        t.TouchDir(src.ParentKey(), DirTimes(moved.info.ctime));
        t.TouchDir(dst.ParentKey(), DirTimes(moved.info.ctime));
        int failed = 0;
        ZH_ASSIGN_OR_RETURN(auto ok, Commit(t, &failed));
        if (ok) {
            DropChunks(src.tag, replaced_chunks);
            return absl::OkStatus();
        }
        if (failed == dst_empty) {
            return DestinationNotEmptyError(req);
        }
        return Retry();
    });
}

absl::StatusOr<ObjectInfo> Store::Symlink(const SymlinkRequest& req) {
    ZH_RETURN_IF_ERROR(CheckSymlinkTarget(req));
    return Create(req.path, ObjectType::kSymlink, 0777, req.caller,
                  [&](ObjectInfo* info, std::map<std::string, std::string>* extra) {
                      info->size = req.target.size();
                      info->symlink_target = req.target;
                      (*extra)["x"] = req.target;
                  });
}

absl::StatusOr<ObjectInfo> Store::Mknod(const MknodRequest& req) {
    ZH_RETURN_IF_ERROR(CheckMknod(req));
    return Create(req.path, ObjectType::kSpecial, req.mode, req.caller,
                  [&](ObjectInfo* info, std::map<std::string, std::string>* extra) {
                      info->special = req.special;
                      info->rdev = req.rdev;
                      (*extra)["x"] = absl::StrCat(req.special, " ", req.rdev);
                  });
}

absl::StatusOr<std::string> Store::Readlink(const Path& path) {
    ZH_ASSIGN_OR_RETURN(auto info, Stat(path));
    return SymlinkTargetOf(path, info);
}

absl::Status Store::Delete(const DeleteRequest& req) {
    ZH_RETURN_IF_ERROR(CheckBelowContainer(req.path));
    return Retrying(req.path, [&]() -> absl::Status {
        ZH_ASSIGN_OR_RETURN(auto r, Resolve(req.path));
        Entry* e = Existing(r);
        if (e == nullptr) {
            return PathNotFoundError(req.path.str());
        }
        ZH_RETURN_IF_ERROR(CheckDeletable(req.path, e->info.type));
        ZH_RETURN_IF_ERROR(CheckCondition(req.path, req.condition, e));
        Txn t(r.tag + "ver");
        r.CheckChain(t);
        t.CheckVersion(r.key, e->version);
        t.Del(r.key);
        t.ZRem(IndexKey(r.tag, r.parent, req.path.name()), std::string(req.path.name()));
        t.TouchDir(r.ParentKey(), DirTimes(Now()));
        ZH_ASSIGN_OR_RETURN(auto ok, Commit(t));
        if (ok) {
            DropChunks(r.tag, e->Field("c"));
            return absl::OkStatus();
        }
        return Retry();
    });
}

absl::StatusOr<ObjectInfo> Store::SetMetadata(const SetMetadataRequest& req) {
    ZH_RETURN_IF_ERROR(ValidateMetadata(req));
    return Retrying(req.path, [&]() -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto r, Resolve(req.path));
        Entry* e = Existing(r);
        if (e == nullptr) {
            return PathNotFoundError(req.path.str());
        }
        ApplyMetadata(req, Now(), &e->info);
        Txn t(r.tag + "ver");
        r.CheckChain(t);
        t.CheckVersion(r.key, e->version);
        t.Update(r.key, {{"m", EncodeMeta(e->info)}});
        if (e->info.type == ObjectType::kDirectory) {
            t.TouchDir(r.key, "");  // (its times as they read are in the meta now)
        }
        ZH_ASSIGN_OR_RETURN(auto ok, Commit(t));
        if (ok) {
            return InfoOf(*e);
        }
        return Retry();
    });
}

}  // namespace zerohop::redis
