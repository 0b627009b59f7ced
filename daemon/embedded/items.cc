// The embedded store: item operations (objects seen through their attributes).

#include "absl/strings/str_format.h"
#include "backend/rules.h"
#include "base/status_macros.h"
#include "embedded/internal/store.h"
#include "expr/expression.h"
#include "rocksdb/write_batch.h"
#include "zerohop/status.h"

namespace zerohop {

using embedded::EncodeEntry;
using embedded::ToView;
using embedded::EntryKey;
using embedded::EntryPrefix;

namespace {

constexpr size_t kMaxPageBytes = 16 << 20;  // of attributes in one get_items page

}  // namespace

absl::StatusOr<Item> EmbeddedBackend::Store::GetItem(const GetItemRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto loc, Locate(req.path));
    std::string value;
    Entry e;
    std::string_view encoded;
    ZH_RETURN_IF_ERROR(GetEntryView(req.path, loc.parent, &value, &e, &encoded));
    ZH_ASSIGN_OR_RETURN(auto info, InfoOf(e));
    ZH_ASSIGN_OR_RETURN(auto attrs, ProjectAttributes(encoded, req.attributes, req.path.name(), info));
    return Item{std::string(req.path.name()), std::move(info), std::move(attrs)};
}

absl::StatusOr<GetItemsResult> EmbeddedBackend::Store::GetItems(const GetItemsRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto scan, PlanScan(req));
    ZH_ASSIGN_OR_RETURN(auto loc, Locate(req.path));
    ZH_ASSIGN_OR_RETURN(auto dir, GetExisting(req.path, loc));
    if (dir.info.type != ObjectType::kDirectory) {
        return NotATableError(req.path);
    }
    uint64_t dir_id = dir.info.id;

    GetItemsResult out;
    std::string prefix = EntryPrefix(dir_id);
    std::string start = prefix;
    if (!req.marker.empty()) {
        start = EntryKey(dir_id, req.marker);
        start.push_back('\0');
    }
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_));
    size_t scanned = 0, bytes = 0;
    it->Seek(start);
    for (; it->Valid() && it->key().starts_with(prefix); it->Next()) {
        if (out.items.size() == scan.limit || scanned == kMaxScanPerPage || bytes >= kMaxPageBytes) {
            return out;  // more may follow: done stays false
        }
        ++scanned;
        std::string_view name = ToView(it->key()).substr(prefix.size());
        out.next_marker = std::string(name);
        if (!scan.InSegment(name)) {
            continue;
        }
        Entry e;
        std::string_view encoded;
        ZH_RETURN_IF_ERROR(embedded::DecodeEntryHeader(ToView(it->value()), &e, &encoded));
        ZH_RETURN_IF_ERROR(SizeByFile(&e));
        ZH_ASSIGN_OR_RETURN(auto item, ScanMatch(scan, req.attributes, name, encoded, e.info));
        if (item) {
            bytes += encoded.size() + name.size();
            out.items.push_back(std::move(*item));
        }
    }
    if (!it->status().ok()) {
        return FromRocks(it->status(), "get_items");
    }
    out.done = true;
    return out;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::WriteItem(
    const Path& path, const Caller& caller,
    const std::function<absl::Status(const std::optional<Entry>& old, AttributeMap* attrs)>& change) {
    return WithEntryLocked(path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        ZH_RETURN_IF_ERROR(CheckWritableParent(path, loc));
        ZH_ASSIGN_OR_RETURN(auto old, GetEntry(loc.parent, path.name()));
        if (old && old->info.type != ObjectType::kObject) {
            return NotAnItemError(path, old->info.type);
        }
        AttributeMap attrs;
        if (old) {
            ZH_ASSIGN_OR_RETURN(auto decoded, DecodeAttributes(old->attributes));
            attrs = std::move(decoded);
        }
        ZH_RETURN_IF_ERROR(change(old, &attrs));
        Entry e;
        Timestamp now = Now();
        if (old) {
            e = std::move(*old);
        } else {
            ZH_ASSIGN_OR_RETURN(auto id, NewId());
            e = embedded::NewEntry(ObjectType::kObject, id, 0644, caller.uid, caller.gid, now);
        }
        ZH_ASSIGN_OR_RETURN(auto encoded, EncodeItemAttributes(path, attrs));
        e.attributes = std::move(encoded);
        e.info.mtime = e.info.ctime = now;
        if (e.sized_by_file) {
            ZH_RETURN_IF_ERROR(StampFile(e.data_id, now, path));
        }
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, path.name()), EncodeEntry(e));
        if (!old) {
            TouchDir(&batch, loc.parent, now);
        }
        ZH_RETURN_IF_ERROR(Commit(&batch));
        return e.info;
    });
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::PutItem(const PutItemRequest& req) {
    ZH_RETURN_IF_ERROR(ValidateAttributeNames(req.path, req.attributes));
    return WriteItem(req.path, req.caller, [&](const std::optional<Entry>& old, AttributeMap* attrs) {
        ZH_RETURN_IF_ERROR(CheckCondition(req.path, req.condition, old));
        *attrs = req.attributes;
        return absl::OkStatus();
    });
}

absl::StatusOr<ItemStatuses> EmbeddedBackend::Store::PutItems(const PutItemRequests& reqs) {
    ItemStatuses results;
    results.reserve(reqs.size());
    for (const PutItemRequest& r : reqs) {
        results.push_back(PutItem(r).status());
    }
    return results;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::UpdateItem(const UpdateItemRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto update, ItemUpdate::Parse(req));
    return WriteItem(req.path, req.caller, [&](const std::optional<Entry>& old, AttributeMap* attrs) {
        return update.Apply(req.path, attrs, old ? &old->info : nullptr);
    });
}

}  // namespace zerohop
