// The embedded store: item operations (objects seen through their attributes).

#include "absl/strings/str_format.h"
#include "backend/rules.h"
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
    auto loc = Locate(req.path);
    if (!loc.ok()) {
        return loc.status();
    }
    std::string value;
    Entry e;
    std::string_view encoded;
    if (absl::Status s = GetEntryView(req.path, loc->parent, &value, &e, &encoded); !s.ok()) {
        return s;
    }
    auto info = InfoOf(e);
    if (!info.ok()) {
        return info.status();
    }
    auto attrs = ProjectAttributes(encoded, req.attributes, req.path.name(), *info);
    if (!attrs.ok()) {
        return attrs.status();
    }
    return Item{std::string(req.path.name()), std::move(*info), std::move(*attrs)};
}

absl::StatusOr<GetItemsResult> EmbeddedBackend::Store::GetItems(const GetItemsRequest& req) {
    auto scan = PlanScan(req);
    if (!scan.ok()) {
        return scan.status();
    }
    auto loc = Locate(req.path);
    if (!loc.ok()) {
        return loc.status();
    }
    auto dir = GetExisting(req.path, *loc);
    if (!dir.ok()) {
        return dir.status();
    }
    if (dir->info.type != ObjectType::kDirectory) {
        return NotATableError(req.path);
    }
    uint64_t dir_id = dir->info.id;

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
        if (out.items.size() == scan->limit || scanned == kMaxScanPerPage || bytes >= kMaxPageBytes) {
            return out;  // more may follow: done stays false
        }
        ++scanned;
        std::string_view name = ToView(it->key()).substr(prefix.size());
        out.next_marker = std::string(name);
        if (!scan->InSegment(name)) {
            continue;
        }
        Entry e;
        std::string_view encoded;
        if (absl::Status s = embedded::DecodeEntryHeader(ToView(it->value()), &e, &encoded); !s.ok()) {
            return s;
        }
        auto item = ScanMatch(*scan, req.attributes, name, encoded, e.info);
        if (!item.ok()) {
            return item.status();
        }
        if (*item) {
            bytes += encoded.size() + name.size();
            out.items.push_back(std::move(**item));
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
        if (absl::Status s = CheckWritableParent(path, loc); !s.ok()) {
            return s;
        }
        auto old = GetEntry(loc.parent, path.name());
        if (!old.ok()) {
            return old.status();
        }
        if (*old && (*old)->info.type != ObjectType::kObject) {
            return NotAnItemError(path, (*old)->info.type);
        }
        AttributeMap attrs;
        if (*old) {
            auto decoded = DecodeAttributes((*old)->attributes);
            if (!decoded.ok()) {
                return decoded.status();
            }
            attrs = std::move(*decoded);
        }
        if (absl::Status s = change(*old, &attrs); !s.ok()) {
            return s;
        }
        Entry e;
        if (*old) {
            e = std::move(**old);
        } else {
            auto id = NewId();
            if (!id.ok()) {
                return id.status();
            }
            e = embedded::NewEntry(ObjectType::kObject, *id, 0644, caller.uid, caller.gid, Now());
        }
        auto encoded = EncodeItemAttributes(path, attrs);
        if (!encoded.ok()) {
            return encoded.status();
        }
        e.attributes = std::move(*encoded);
        e.info.mtime = e.info.ctime = Now();
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, path.name()), EncodeEntry(e));
        if (absl::Status s = Commit(&batch); !s.ok()) {
            return s;
        }
        return e.info;
    });
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::PutItem(const PutItemRequest& req) {
    if (absl::Status s = ValidateAttributeNames(req.path, req.attributes); !s.ok()) {
        return s;
    }
    return WriteItem(req.path, req.caller, [&](const std::optional<Entry>& old, AttributeMap* attrs) {
        if (absl::Status s = CheckCondition(req.path, req.condition, old); !s.ok()) {
            return s;
        }
        *attrs = req.attributes;
        return absl::OkStatus();
    });
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::UpdateItem(const UpdateItemRequest& req) {
    auto update = ItemUpdate::Parse(req);
    if (!update.ok()) {
        return update.status();
    }
    return WriteItem(req.path, req.caller, [&](const std::optional<Entry>& old, AttributeMap* attrs) {
        return update->Apply(req.path, attrs, old ? &old->info : nullptr);
    });
}

}  // namespace zerohop
