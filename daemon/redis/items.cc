// The redis backend's items: get_item, table scans, and item writes (planned from a
// resolve, committed as one transaction; an unconditional put_item is one script).

#include <algorithm>

#include "backend/rules.h"
#include "base/status_macros.h"
#include "expr/expression.h"
#include "redis/internal/store.h"
#include "zerohop/status.h"

namespace zerohop::redis {

absl::StatusOr<Item> Store::GetItem(const GetItemRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto r, Resolve(req.path));
    Entry* e = Existing(r);
    if (e == nullptr) {
        return PathNotFoundError(req.path.str());
    }
    ZH_ASSIGN_OR_RETURN(auto info, InfoOf(*e));
    ZH_ASSIGN_OR_RETURN(auto attrs, ProjectAttributes(e->Field("a"), req.attributes, req.path.name(), info));
    return Item{std::string(req.path.name()), std::move(info), std::move(attrs)};
}

absl::StatusOr<GetItemsResult> Store::GetItems(const GetItemsRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto scan, PlanScan(req));
    std::string tag = Tag(req.path.container());
    ZH_ASSIGN_OR_RETURN(auto dir_id, DirectoryId(req.path, /*table=*/true));
    uint64_t dir = dir_id;
    GetItemsResult out;
    std::string after = req.marker;
    size_t scanned = 0;
    while (true) {
        ZH_ASSIGN_OR_RETURN(auto page, Names(tag, dir, after, "", kScanBatch));
        const std::vector<std::string>* names = &page.names;
        // Only the names of this segment are fetched.
        std::vector<std::string> mine;
        for (const std::string& n : *names) {
            if (scan.InSegment(n)) {
                mine.push_back(n);
            }
        }
        ZH_ASSIGN_OR_RETURN(auto entries, FetchEntries(tag, dir, mine));
        size_t j = 0;
        for (const std::string& name : *names) {
            if (out.items.size() == scan.limit || scanned == kMaxScanPerPage) {
                return out;  // more may follow
            }
            ++scanned;
            out.next_marker = name;
            if (j >= mine.size() || mine[j] != name) {
                continue;
            }
            const std::optional<Entry>& e = entries[j++];
            if (!e) {
                continue;  // removed since the names were read
            }
            ZH_ASSIGN_OR_RETURN(auto item, ScanMatch(scan, req.attributes, name, e->Field("a"), e->info));
            if (item) {
                out.items.push_back(std::move(*item));
            }
        }
        if (!page.more || names->empty()) {
            break;
        }
        after = names->back();
    }
    out.done = true;
    return out;
}

absl::StatusOr<std::pair<Txn, ObjectInfo>> Store::PlanItemWrite(const Path& path, const Caller& caller,
                                                         const Resolved& r, const ItemChange& change,
                                                         const std::function<absl::StatusOr<uint64_t>()>& new_id) {
    ZH_RETURN_IF_ERROR(CheckWritableParent(path, r));
    if (r.entry && r.entry->info.type != ObjectType::kObject) {
        return NotAnItemError(path, r.entry->info.type);
    }
    AttributeMap attrs;
    if (r.entry) {
        ZH_ASSIGN_OR_RETURN(auto decoded, DecodeAttributes(r.entry->Field("a")));
        attrs = std::move(decoded);
    }
    ZH_RETURN_IF_ERROR(change(r.entry, &attrs));
    ZH_ASSIGN_OR_RETURN(auto encoded, EncodeItemAttributes(path, attrs));
    ObjectInfo info;
    if (r.entry) {
        info = r.entry->info;
    } else {
        ZH_ASSIGN_OR_RETURN(auto id, new_id());
        info = NewInfo(ObjectType::kObject, id, 0644, caller);
    }
    info.mtime = info.ctime = Now();
    if (!r.entry) {
        info.atime = info.mtime;
    }
    Txn t(r.tag + "ver");
    r.CheckChain(t);
    t.CheckVersion(r.key, r.version());
    if (r.entry) {
        t.Update(r.key, {{"m", EncodeMeta(info)}, {"a", std::move(encoded)}});  // the bytes stay
    } else {
        auto fields = NewFields(ObjectType::kObject, info.id, info);
        fields["a"] = std::move(encoded);
        fields["b"] = "";
        t.Replace(r.key, fields);
        t.ZAdd(IndexKey(r.tag, r.parent, path.name()), std::string(path.name()));
        t.TouchDir(r.ParentKey(), DirTimes(info.mtime));
    }
    return std::pair<Txn, ObjectInfo>(std::move(t), info);
}

absl::StatusOr<ObjectInfo> Store::WriteItem(const Path& path, const Caller& caller, const ItemChange& change) {
    ZH_RETURN_IF_ERROR(CheckBelowContainer(path));
    return Retrying(path, [&]() -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto r, Resolve(path));
        ZH_ASSIGN_OR_RETURN(auto plan, PlanItemWrite(path, caller, r, change, [this] { return NewIds(1); }));
        ZH_ASSIGN_OR_RETURN(auto ok, Commit(plan.first));
        if (ok) {
            return plan.second;
        }
        return Retry();
    });
}

absl::StatusOr<Store::ItemChange> Store::PutChange(std::shared_ptr<const PutItemRequest> req) {
    ZH_RETURN_IF_ERROR(ValidateAttributeNames(req->path, req->attributes));
    return [this, req](const std::optional<Entry>& old, AttributeMap* attrs) {
        ZH_RETURN_IF_ERROR(CheckCondition(req->path, req->condition, old ? &*old : nullptr));
        *attrs = req->attributes;
        return absl::OkStatus();
    };
}

absl::StatusOr<Store::ItemChange> Store::UpdateChange(std::shared_ptr<const UpdateItemRequest> req) {
    ZH_ASSIGN_OR_RETURN(auto update, ItemUpdate::Parse(*req));
    auto parsed = std::make_shared<ItemUpdate>(std::move(update));
    return [req, parsed](const std::optional<Entry>& old, AttributeMap* attrs) {
        return parsed->Apply(req->path, attrs, old ? &old->info : nullptr);
    };
}

bool Store::PutItemAsync(std::shared_ptr<const PutItemRequest> req, Done<ObjectInfo>& done) {
    Resolved where;
    std::vector<std::string> path_args;
    if (absl::Status s = ResolveArgs(req->path, &where, &path_args); !s.ok()) {
        std::move(done)(s);
        return true;
    }
    auto encoded = EncodeItemAttributes(req->path, req->attributes);
    if (!encoded.ok()) {
        std::move(done)(encoded.status());
        return true;
    }
    std::optional<uint64_t> id = TakeIds(1);
    if (!id) {
        return false;
    }
    ObjectInfo fresh = NewInfo(ObjectType::kObject, *id, 0644, req->caller);
    std::string times = absl::StrCat(fresh.mtime.secs, " ", fresh.mtime.nsecs, " ", fresh.ctime.secs, " ",
                                     fresh.ctime.nsecs);
    std::vector<std::string> argv = {"1",
                                     where.tag + "ver",
                                     where.tag,
                                     std::to_string(*id),
                                     EncodeMeta(fresh),
                                     std::move(times),
                                     std::move(*encoded),
                                     std::to_string(IndexBucket(req->path.name()))};
    argv.insert(argv.end(), std::make_move_iterator(path_args.begin()), std::make_move_iterator(path_args.end()));
    ScriptAsync(kPutItemScript, put_item_sha_, where.tag, false,
                std::make_shared<const std::vector<std::string>>(std::move(argv)),
                [this, req, id = *id, done = std::move(done)](
                    absl::StatusOr<Reply> r) mutable {
                    if (r.ok() && r->type == Reply::Type::kArray && !r->elements.empty() &&
                        r->elements[0].integer != 1) {
                        GiveBackId(id);  // certainly not used: the item was there, or a refusal
                    }
                    if (!r.ok()) {
                        return std::move(done)(r.status());
                    }
                    std::move(done)(PutItemAnswer(req->path, *r));
                });
    return true;
}

absl::StatusOr<ObjectInfo> Store::PutItemAnswer(const Path& path, const Reply& r) {
    if (r.type != Reply::Type::kArray || r.elements.empty()) {
        return Damaged("a put_item's answer");
    }
    switch (r.elements[0].integer) {
        case 0:
        case 1: {
            if (r.elements.size() != 4) {
                return Damaged("a put_item's answer");
            }
            ObjectInfo info;
            info.type = ObjectType::kObject;
            info.id = ToU64(r.elements[1].str);
            if (!DecodeMeta(r.elements[2].str, &info)) {
                return Damaged(path.str());
            }
            return info;
        }
        case 2:
            return ParentNotFoundError(path.str());
        case 3:
            return AncestorNotDirectoryError(path, static_cast<size_t>(r.elements.size() > 1 ? r.elements[1].integer : 1) + 1);
        case 4:
            return StreamParentError(path);
        case 5: {
            auto type = r.elements.size() > 1 ? TypeOf(r.elements[1].str) : std::nullopt;
            return NotAnItemError(path, type.value_or(ObjectType::kObject));
        }
    }
    return Damaged("a put_item's answer");
}

absl::StatusOr<ObjectInfo> Store::PutItem(const PutItemRequest& req) {
    auto change = PutChange(std::make_shared<const PutItemRequest>(req));
    return change.ok() ? WriteItem(req.path, req.caller, *change) : change.status();
}

absl::StatusOr<ItemStatuses> Store::PutItems(const PutItemRequests& reqs) {
    ItemStatuses out;
    out.reserve(reqs.size());
    for (const PutItemRequest& r : reqs) {
        out.push_back(PutItem(r).status());
    }
    return out;
}

absl::StatusOr<ObjectInfo> Store::UpdateItem(const UpdateItemRequest& req) {
    ZH_RETURN_IF_ERROR(CheckBelowContainer(req.path));
    ZH_ASSIGN_OR_RETURN(ItemChange change, UpdateChange(std::make_shared<const UpdateItemRequest>(req)));
    return WriteItem(req.path, req.caller, change);
}

}  // namespace zerohop::redis
