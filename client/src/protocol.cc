#include "zerohop/protocol.h"

#include "absl/strings/str_format.h"
#include "zerohop/codec.h"

namespace zerohop::protocol {

bool IsKnownOp(uint16_t op) {
    switch (static_cast<Op>(op)) {
        case Op::kNop: case Op::kListContainers: case Op::kStat: case Op::kList: case Op::kMkdir:
        case Op::kRmdir: case Op::kRename: case Op::kSymlink: case Op::kReadlink: case Op::kDelete:
        case Op::kSetMetadata: case Op::kGetObject: case Op::kPutObject: case Op::kWriteObject:
        case Op::kAppend: case Op::kTruncate: case Op::kGetItem: case Op::kGetItems: case Op::kPutItem:
        case Op::kPutItems: case Op::kUpdateItem: case Op::kCreateStream: case Op::kDescribeStream:
        case Op::kDeleteStream: case Op::kPutRecords: case Op::kSeek: case Op::kGetRecords: case Op::kSync:
        case Op::kStatus:
        case Op::kRelease:
            return true;
    }
    return false;
}

std::string_view OpName(Op op) {
    switch (op) {
        case Op::kNop: return "nop";
        case Op::kListContainers: return "list_containers";
        case Op::kStat: return "stat";
        case Op::kList: return "list";
        case Op::kMkdir: return "mkdir";
        case Op::kRmdir: return "rmdir";
        case Op::kRename: return "rename";
        case Op::kSymlink: return "symlink";
        case Op::kReadlink: return "readlink";
        case Op::kDelete: return "delete";
        case Op::kSetMetadata: return "set_metadata";
        case Op::kGetObject: return "get_object";
        case Op::kPutObject: return "put_object";
        case Op::kWriteObject: return "write_object";
        case Op::kAppend: return "append";
        case Op::kTruncate: return "truncate";
        case Op::kGetItem: return "get_item";
        case Op::kGetItems: return "get_items";
        case Op::kPutItem: return "put_item";
        case Op::kPutItems: return "put_items";
        case Op::kUpdateItem: return "update_item";
        case Op::kCreateStream: return "create_stream";
        case Op::kDescribeStream: return "describe_stream";
        case Op::kDeleteStream: return "delete_stream";
        case Op::kPutRecords: return "put_records";
        case Op::kSeek: return "seek";
        case Op::kGetRecords: return "get_records";
        case Op::kSync: return "sync";
        case Op::kStatus: return "status";
        case Op::kRelease: return "release";
    }
    return "unknown";
}

namespace {

// ---- building blocks ---------------------------------------------------------------------

// Every message type, declared ahead so that the vector and optional templates find them.
void Put(ByteWriter& w, const ObjectInfo& m);
bool Get(ByteReader& r, ObjectInfo* m);
void Put(ByteWriter& w, const StreamLocation& m);
bool Get(ByteReader& r, StreamLocation* m);
void Put(ByteWriter& w, const StreamRecord& m);
bool Get(ByteReader& r, StreamRecord* m);
void Put(ByteWriter& w, const RecordInput& m);
bool Get(ByteReader& r, RecordInput* m);
void Put(ByteWriter& w, const RecordResult& m);
bool Get(ByteReader& r, RecordResult* m);
void Put(ByteWriter& w, const DirEntry& m);
bool Get(ByteReader& r, DirEntry* m);
void Put(ByteWriter& w, const Item& m);
bool Get(ByteReader& r, Item* m);
void Put(ByteWriter& w, const Hello& m);
bool Get(ByteReader& r, Hello* m);
void Put(ByteWriter& w, const Welcome& m);
bool Get(ByteReader& r, Welcome* m);
void Put(ByteWriter& w, const WireStatus& m);
bool Get(ByteReader& r, WireStatus* m);
void Put(ByteWriter& w, const DaemonStatus& m);
bool Get(ByteReader& r, DaemonStatus* m);
void Put(ByteWriter& w, const ListRequest& m);
bool Get(ByteReader& r, ListRequest* m);
void Put(ByteWriter& w, const ListResult& m);
bool Get(ByteReader& r, ListResult* m);
void Put(ByteWriter& w, const MkdirRequest& m);
bool Get(ByteReader& r, MkdirRequest* m);
void Put(ByteWriter& w, const RenameRequest& m);
bool Get(ByteReader& r, RenameRequest* m);
void Put(ByteWriter& w, const SymlinkRequest& m);
bool Get(ByteReader& r, SymlinkRequest* m);
void Put(ByteWriter& w, const DeleteRequest& m);
bool Get(ByteReader& r, DeleteRequest* m);
void Put(ByteWriter& w, const SetMetadataRequest& m);
bool Get(ByteReader& r, SetMetadataRequest* m);
void Put(ByteWriter& w, const GetObjectRequest& m);
bool Get(ByteReader& r, GetObjectRequest* m);
void Put(ByteWriter& w, const GetObjectResult& m);
bool Get(ByteReader& r, GetObjectResult* m);
void Put(ByteWriter& w, const PutObjectRequest& m);
bool Get(ByteReader& r, PutObjectRequest* m);
void Put(ByteWriter& w, const WriteObjectRequest& m);
bool Get(ByteReader& r, WriteObjectRequest* m);
void Put(ByteWriter& w, const AppendRequest& m);
bool Get(ByteReader& r, AppendRequest* m);
void Put(ByteWriter& w, const TruncateRequest& m);
bool Get(ByteReader& r, TruncateRequest* m);
void Put(ByteWriter& w, const GetItemRequest& m);
bool Get(ByteReader& r, GetItemRequest* m);
void Put(ByteWriter& w, const GetItemsRequest& m);
bool Get(ByteReader& r, GetItemsRequest* m);
void Put(ByteWriter& w, const GetItemsResult& m);
bool Get(ByteReader& r, GetItemsResult* m);
void Put(ByteWriter& w, const PutItemRequest& m);
bool Get(ByteReader& r, PutItemRequest* m);
void Put(ByteWriter& w, const UpdateItemRequest& m);
bool Get(ByteReader& r, UpdateItemRequest* m);
void Put(ByteWriter& w, const CreateStreamRequest& m);
bool Get(ByteReader& r, CreateStreamRequest* m);
void Put(ByteWriter& w, const StreamDescription& m);
bool Get(ByteReader& r, StreamDescription* m);
void Put(ByteWriter& w, const PutRecordsRequest& m);
bool Get(ByteReader& r, PutRecordsRequest* m);
void Put(ByteWriter& w, const SeekRequest& m);
bool Get(ByteReader& r, SeekRequest* m);
void Put(ByteWriter& w, const GetRecordsRequest& m);
bool Get(ByteReader& r, GetRecordsRequest* m);
void Put(ByteWriter& w, const GetRecordsResult& m);
bool Get(ByteReader& r, GetRecordsResult* m);


void Put(ByteWriter& w, uint64_t v) { w.PutVarint(v); }
void Put(ByteWriter& w, uint32_t v) { w.PutVarint(v); }
bool Get(ByteReader& r, uint64_t* v) { return r.GetVarint(v); }
bool Get(ByteReader& r, uint32_t* v) {
    uint64_t x;
    if (!r.GetVarint(&x) || x > UINT32_MAX) {
        return false;
    }
    *v = static_cast<uint32_t>(x);
    return true;
}
void PutI64(ByteWriter& w, int64_t v) { w.PutFixed64(static_cast<uint64_t>(v)); }
bool GetI64(ByteReader& r, int64_t* v) {
    uint64_t x;
    if (!r.GetFixed64(&x)) {
        return false;
    }
    *v = static_cast<int64_t>(x);
    return true;
}
void Put(ByteWriter& w, bool v) { w.PutU8(v ? 1 : 0); }
bool Get(ByteReader& r, bool* v) {
    uint8_t b;
    if (!r.GetU8(&b) || b > 1) {
        return false;
    }
    *v = b == 1;
    return true;
}
void Put(ByteWriter& w, std::string_view s) { w.PutBytes(s); }
void Put(ByteWriter& w, const std::string& s) { w.PutBytes(s); }
bool Get(ByteReader& r, std::string* s) {
    std::string_view v;
    if (!r.GetBytes(&v)) {
        return false;
    }
    s->assign(v.data(), v.size());
    return true;
}
void Put(ByteWriter& w, const Path& p) { w.PutBytes(p.str()); }
bool Get(ByteReader& r, Path* p) {
    std::string_view v;
    if (!r.GetBytes(&v)) {
        return false;
    }
    auto parsed = Path::Parse(v);
    if (!parsed.ok()) {
        return false;
    }
    *p = std::move(*parsed);
    return true;
}
void Put(ByteWriter& w, const Timestamp& t) {
    PutI64(w, t.secs);
    w.PutFixed32(static_cast<uint32_t>(t.nsecs));
}
bool Get(ByteReader& r, Timestamp* t) {
    uint32_t ns;
    if (!GetI64(r, &t->secs) || !r.GetFixed32(&ns) || ns >= 1'000'000'000u) {
        return false;
    }
    t->nsecs = static_cast<int32_t>(ns);
    return true;
}
void Put(ByteWriter& w, const AttributeMap& m) {
    std::string enc;
    EncodeAttributes(m, &enc);
    w.PutBytes(enc);
}
bool Get(ByteReader& r, AttributeMap* m) {
    std::string_view v;
    if (!r.GetBytes(&v)) {
        return false;
    }
    auto decoded = DecodeAttributes(v);
    if (!decoded.ok()) {
        return false;
    }
    *m = std::move(*decoded);
    return true;
}
void Put(ByteWriter& w, const absl::Status& s) {
    w.PutVarint(static_cast<uint64_t>(s.code()));
    w.PutBytes(std::string_view(s.message().data(), s.message().size()));
}
bool Get(ByteReader& r, absl::Status* s) {
    uint64_t code;
    std::string_view msg;
    if (!r.GetVarint(&code) || code > static_cast<uint64_t>(absl::StatusCode::kUnauthenticated) ||
        !r.GetBytes(&msg)) {
        return false;
    }
    *s = absl::Status(static_cast<absl::StatusCode>(code), absl::string_view(msg.data(), msg.size()));
    return true;
}
template <typename T>
void Put(ByteWriter& w, const std::optional<T>& v) {
    w.PutU8(v ? 1 : 0);
    if (v) {
        Put(w, *v);
    }
}
template <typename T>
bool Get(ByteReader& r, std::optional<T>* v) {
    bool present;
    if (!Get(r, &present)) {
        return false;
    }
    if (!present) {
        v->reset();
        return true;
    }
    T x{};
    if (!Get(r, &x)) {
        return false;
    }
    *v = std::move(x);
    return true;
}
template <typename T>
void Put(ByteWriter& w, const std::vector<T>& v) {
    w.PutVarint(v.size());
    for (const T& x : v) {
        Put(w, x);
    }
}
template <typename T>
bool Get(ByteReader& r, std::vector<T>* v) {
    uint64_t n;
    if (!r.GetVarint(&n) || n > r.remaining()) {  // every element takes at least a byte
        return false;
    }
    v->clear();
    v->reserve(n);
    for (uint64_t i = 0; i < n; ++i) {
        T x{};
        if (!Get(r, &x)) {
            return false;
        }
        v->push_back(std::move(x));
    }
    return true;
}
void Put(ByteWriter& w, const std::vector<absl::Status>& v) {
    w.PutVarint(v.size());
    for (const absl::Status& s : v) {
        Put(w, s);
    }
}

// ---- data model ------------------------------------------------------------------------

void Put(ByteWriter& w, const ObjectInfo& i) {
    w.PutU8(static_cast<uint8_t>(i.type));
    Put(w, i.id);
    Put(w, i.size);
    Put(w, uint64_t{i.mode});
    Put(w, uint64_t{i.uid});
    Put(w, uint64_t{i.gid});
    Put(w, i.mtime);
    Put(w, i.ctime);
    Put(w, i.last_sequence);
    Put(w, i.symlink_target);
}
bool Get(ByteReader& r, ObjectInfo* i) {
    uint8_t type;
    if (!r.GetU8(&type) || type > static_cast<uint8_t>(ObjectType::kShard)) {
        return false;
    }
    i->type = static_cast<ObjectType>(type);
    return Get(r, &i->id) && Get(r, &i->size) && Get(r, &i->mode) && Get(r, &i->uid) && Get(r, &i->gid) &&
           Get(r, &i->mtime) && Get(r, &i->ctime) && Get(r, &i->last_sequence) && Get(r, &i->symlink_target);
}
void Put(ByteWriter& w, const StreamLocation& l) {
    Put(w, uint64_t{l.shard});
    Put(w, l.sequence);
}
bool Get(ByteReader& r, StreamLocation* l) {
    return Get(r, &l->shard) && Get(r, &l->sequence) && l->shard < kMaxShards;
}
void Put(ByteWriter& w, const StreamRecord& rec) {
    Put(w, uint64_t{rec.shard});
    Put(w, rec.sequence);
    Put(w, rec.arrival);
    Put(w, rec.data);
    Put(w, rec.partition_key);
    Put(w, rec.client_info);
}
bool Get(ByteReader& r, StreamRecord* rec) {
    return Get(r, &rec->shard) && Get(r, &rec->sequence) && Get(r, &rec->arrival) && Get(r, &rec->data) &&
           Get(r, &rec->partition_key) && Get(r, &rec->client_info);
}
void Put(ByteWriter& w, const RecordInput& rec) {
    Put(w, rec.data);
    Put(w, rec.shard);
    Put(w, rec.partition_key);
    Put(w, rec.client_info);
}
bool Get(ByteReader& r, RecordInput* rec) {
    return Get(r, &rec->data) && Get(r, &rec->shard) && Get(r, &rec->partition_key) && Get(r, &rec->client_info);
}
void Put(ByteWriter& w, const RecordResult& rec) {
    Put(w, rec.status);
    Put(w, uint64_t{rec.shard});
    Put(w, rec.sequence);
}
bool Get(ByteReader& r, RecordResult* rec) {
    return Get(r, &rec->status) && Get(r, &rec->shard) && Get(r, &rec->sequence);
}
void Put(ByteWriter& w, const DirEntry& e) {
    Put(w, e.name);
    Put(w, e.info);
    Put(w, e.attributes);
}
bool Get(ByteReader& r, DirEntry* e) { return Get(r, &e->name) && Get(r, &e->info) && Get(r, &e->attributes); }
void Put(ByteWriter& w, const Item& i) {
    Put(w, i.name);
    Put(w, i.info);
    Put(w, i.attributes);
}
bool Get(ByteReader& r, Item* i) { return Get(r, &i->name) && Get(r, &i->info) && Get(r, &i->attributes); }

// ---- session ---------------------------------------------------------------------------

void Put(ByteWriter& w, const Hello& h) {
    w.PutFixed32(kHelloMagic);
    Put(w, uint64_t{h.version});
    Put(w, h.access_key);
    Put(w, uint64_t{h.submit_entries});
    Put(w, uint64_t{h.complete_entries});
    Put(w, h.client_bytes);
    Put(w, h.daemon_bytes);
}
bool Get(ByteReader& r, Hello* h) {
    uint32_t magic;
    return r.GetFixed32(&magic) && magic == kHelloMagic && Get(r, &h->version) && Get(r, &h->access_key) &&
           h->access_key.size() <= kMaxAccessKeyBytes && Get(r, &h->submit_entries) &&
           Get(r, &h->complete_entries) && Get(r, &h->client_bytes) && Get(r, &h->daemon_bytes);
}
void Put(ByteWriter& w, const Welcome& m) {
    Put(w, m.status);
    Put(w, uint64_t{m.version});
    Put(w, m.session_id);
    Put(w, uint64_t{m.max_in_flight});
}
bool Get(ByteReader& r, Welcome* m) {
    return Get(r, &m->status) && Get(r, &m->version) && Get(r, &m->session_id) && Get(r, &m->max_in_flight);
}
void Put(ByteWriter& w, const DaemonStatus& s) {
    Put(w, uint64_t{s.version});
    Put(w, uint64_t{s.workers});
    Put(w, s.sessions_open);
    Put(w, s.sessions_total);
    Put(w, s.sessions_refused);
    Put(w, s.requests);
    Put(w, s.request_errors);
    Put(w, s.bad_descriptors);
    Put(w, s.containers);
}
bool Get(ByteReader& r, DaemonStatus* s) {
    return Get(r, &s->version) && Get(r, &s->workers) && Get(r, &s->sessions_open) && Get(r, &s->sessions_total) &&
           Get(r, &s->sessions_refused) && Get(r, &s->requests) && Get(r, &s->request_errors) &&
           Get(r, &s->bad_descriptors) && Get(r, &s->containers);
}
void Put(ByteWriter& w, const WireStatus& s) { Put(w, s.status); }
bool Get(ByteReader& r, WireStatus* s) { return Get(r, &s->status); }

// ---- requests and results ------------------------------------------------------------------

void Put(ByteWriter& w, const ListRequest& q) {
    Put(w, q.path);
    Put(w, q.prefix);
    Put(w, q.marker);
    Put(w, uint64_t{q.limit});
    Put(w, q.with_attributes);
}
bool Get(ByteReader& r, ListRequest* q) {
    return Get(r, &q->path) && Get(r, &q->prefix) && Get(r, &q->marker) && Get(r, &q->limit) &&
           Get(r, &q->with_attributes);
}
void Put(ByteWriter& w, const ListResult& q) {
    Put(w, q.entries);
    Put(w, q.next_marker);
    Put(w, q.truncated);
}
bool Get(ByteReader& r, ListResult* q) {
    return Get(r, &q->entries) && Get(r, &q->next_marker) && Get(r, &q->truncated);
}
void Put(ByteWriter& w, const MkdirRequest& q) {
    Put(w, q.path);
    Put(w, uint64_t{q.mode});
}
bool Get(ByteReader& r, MkdirRequest* q) { return Get(r, &q->path) && Get(r, &q->mode); }
void Put(ByteWriter& w, const RenameRequest& q) {
    Put(w, q.from);
    Put(w, q.to);
    Put(w, q.no_replace);
}
bool Get(ByteReader& r, RenameRequest* q) { return Get(r, &q->from) && Get(r, &q->to) && Get(r, &q->no_replace); }
void Put(ByteWriter& w, const SymlinkRequest& q) {
    Put(w, q.path);
    Put(w, q.target);
}
bool Get(ByteReader& r, SymlinkRequest* q) { return Get(r, &q->path) && Get(r, &q->target); }
void Put(ByteWriter& w, const DeleteRequest& q) {
    Put(w, q.path);
    Put(w, q.condition);
}
bool Get(ByteReader& r, DeleteRequest* q) { return Get(r, &q->path) && Get(r, &q->condition); }
void Put(ByteWriter& w, const SetMetadataRequest& q) {
    Put(w, q.path);
    Put(w, q.mode);
    Put(w, q.uid);
    Put(w, q.gid);
    Put(w, q.mtime);
}
bool Get(ByteReader& r, SetMetadataRequest* q) {
    return Get(r, &q->path) && Get(r, &q->mode) && Get(r, &q->uid) && Get(r, &q->gid) && Get(r, &q->mtime);
}
void Put(ByteWriter& w, const GetObjectRequest& q) {
    Put(w, q.path);
    Put(w, q.offset);
    Put(w, q.length);
}
bool Get(ByteReader& r, GetObjectRequest* q) { return Get(r, &q->path) && Get(r, &q->offset) && Get(r, &q->length); }
void Put(ByteWriter& w, const GetObjectResult& q) {
    Put(w, q.info);
    Put(w, q.bytes);
}
bool Get(ByteReader& r, GetObjectResult* q) { return Get(r, &q->info) && Get(r, &q->bytes); }
void Put(ByteWriter& w, const PutObjectRequest& q) {
    Put(w, q.path);
    Put(w, q.attributes);
    Put(w, q.condition);
    Put(w, q.mode);
}
bool Get(ByteReader& r, PutObjectRequest* q) {
    return Get(r, &q->path) && Get(r, &q->attributes) && Get(r, &q->condition) && Get(r, &q->mode);
}
// Write and append carry their bytes after the header, to the end of the message.
void Put(ByteWriter& w, const WriteObjectRequest& q) {
    Put(w, q.path);
    Put(w, q.offset);
    w.PutRaw(q.data.data(), q.data.size());
}
bool Get(ByteReader& r, WriteObjectRequest* q) { return Get(r, &q->path) && Get(r, &q->offset); }
void Put(ByteWriter& w, const AppendRequest& q) {
    Put(w, q.path);
    w.PutRaw(q.data.data(), q.data.size());
}
bool Get(ByteReader& r, AppendRequest* q) { return Get(r, &q->path); }
void Put(ByteWriter& w, const TruncateRequest& q) {
    Put(w, q.path);
    Put(w, q.size);
}
bool Get(ByteReader& r, TruncateRequest* q) { return Get(r, &q->path) && Get(r, &q->size); }
void Put(ByteWriter& w, const GetItemRequest& q) {
    Put(w, q.path);
    Put(w, q.attributes);
}
bool Get(ByteReader& r, GetItemRequest* q) { return Get(r, &q->path) && Get(r, &q->attributes); }
void Put(ByteWriter& w, const GetItemsRequest& q) {
    Put(w, q.path);
    Put(w, q.filter);
    Put(w, q.attributes);
    Put(w, q.marker);
    Put(w, uint64_t{q.limit});
    Put(w, uint64_t{q.segment});
    Put(w, uint64_t{q.total_segments});
}
bool Get(ByteReader& r, GetItemsRequest* q) {
    return Get(r, &q->path) && Get(r, &q->filter) && Get(r, &q->attributes) && Get(r, &q->marker) &&
           Get(r, &q->limit) && Get(r, &q->segment) && Get(r, &q->total_segments);
}
void Put(ByteWriter& w, const GetItemsResult& q) {
    Put(w, q.items);
    Put(w, q.next_marker);
    Put(w, q.done);
}
bool Get(ByteReader& r, GetItemsResult* q) { return Get(r, &q->items) && Get(r, &q->next_marker) && Get(r, &q->done); }
void Put(ByteWriter& w, const PutItemRequest& q) {
    Put(w, q.path);
    Put(w, q.attributes);
    Put(w, q.condition);
}
bool Get(ByteReader& r, PutItemRequest* q) { return Get(r, &q->path) && Get(r, &q->attributes) && Get(r, &q->condition); }
void Put(ByteWriter& w, const UpdateItemRequest& q) {
    Put(w, q.path);
    Put(w, q.update);
    Put(w, q.condition);
    Put(w, q.else_update);
}
bool Get(ByteReader& r, UpdateItemRequest* q) {
    return Get(r, &q->path) && Get(r, &q->update) && Get(r, &q->condition) && Get(r, &q->else_update);
}
void Put(ByteWriter& w, const CreateStreamRequest& q) {
    Put(w, q.path);
    Put(w, uint64_t{q.shard_count});
    PutI64(w, q.retention_secs);
}
bool Get(ByteReader& r, CreateStreamRequest* q) {
    return Get(r, &q->path) && Get(r, &q->shard_count) && GetI64(r, &q->retention_secs);
}
void Put(ByteWriter& w, const StreamDescription& q) {
    Put(w, uint64_t{q.shard_count});
    PutI64(w, q.retention_secs);
}
bool Get(ByteReader& r, StreamDescription* q) { return Get(r, &q->shard_count) && GetI64(r, &q->retention_secs); }
void Put(ByteWriter& w, const PutRecordsRequest& q) {
    Put(w, q.path);
    Put(w, q.records);
}
bool Get(ByteReader& r, PutRecordsRequest* q) { return Get(r, &q->path) && Get(r, &q->records); }
void Put(ByteWriter& w, const SeekRequest& q) {
    Put(w, q.path);
    Put(w, uint64_t{q.shard});
    w.PutU8(static_cast<uint8_t>(q.type));
    Put(w, q.sequence);
    Put(w, q.time);
}
bool Get(ByteReader& r, SeekRequest* q) {
    uint8_t type;
    if (!Get(r, &q->path) || !Get(r, &q->shard) || !r.GetU8(&type) || type > static_cast<uint8_t>(SeekType::kTime)) {
        return false;
    }
    q->type = static_cast<SeekType>(type);
    return Get(r, &q->sequence) && Get(r, &q->time);
}
void Put(ByteWriter& w, const GetRecordsRequest& q) {
    Put(w, q.path);
    Put(w, q.location);
    Put(w, uint64_t{q.limit});
    Put(w, q.max_bytes);
}
bool Get(ByteReader& r, GetRecordsRequest* q) {
    return Get(r, &q->path) && Get(r, &q->location) && Get(r, &q->limit) && Get(r, &q->max_bytes);
}
void Put(ByteWriter& w, const GetRecordsResult& q) {
    Put(w, q.records);
    Put(w, q.next);
    Put(w, q.behind);
}
bool Get(ByteReader& r, GetRecordsResult* q) { return Get(r, &q->records) && Get(r, &q->next) && Get(r, &q->behind); }

template <typename T>
constexpr bool kCarriesData = std::is_same_v<T, WriteObjectRequest> || std::is_same_v<T, AppendRequest>;

}  // namespace

template <typename T>
std::string Encode(const T& msg) {
    std::string out;
    ByteWriter w(&out);
    Put(w, msg);
    return out;
}

template <typename T>
absl::StatusOr<T> DecodePrefix(std::string_view bytes, std::string_view* rest) {
    ByteReader r(bytes);
    T msg{};
    if (!Get(r, &msg)) {
        return absl::InvalidArgumentError(absl::StrFormat("malformed message body (%d bytes)", bytes.size()));
    }
    *rest = r.rest();
    return msg;
}

template <typename T>
absl::StatusOr<T> Decode(std::string_view bytes) {
    std::string_view rest;
    auto msg = DecodePrefix<T>(bytes, &rest);
    if (!msg.ok()) {
        return msg;
    }
    if constexpr (kCarriesData<T>) {
        msg->data = rest;
    } else if (!rest.empty()) {
        return absl::InvalidArgumentError(absl::StrFormat("malformed message body: %d trailing bytes", rest.size()));
    }
    return msg;
}

#define ZH_PROTOCOL_MESSAGE(T)                                  \
    template std::string Encode<T>(const T&);                   \
    template absl::StatusOr<T> Decode<T>(std::string_view);     \
    template absl::StatusOr<T> DecodePrefix<T>(std::string_view, std::string_view*);

ZH_PROTOCOL_MESSAGE(Hello)
ZH_PROTOCOL_MESSAGE(Welcome)
ZH_PROTOCOL_MESSAGE(WireStatus)
ZH_PROTOCOL_MESSAGE(DaemonStatus)
ZH_PROTOCOL_MESSAGE(Path)
ZH_PROTOCOL_MESSAGE(std::string)
ZH_PROTOCOL_MESSAGE(std::vector<std::string>)
ZH_PROTOCOL_MESSAGE(ObjectInfo)
ZH_PROTOCOL_MESSAGE(ListRequest)
ZH_PROTOCOL_MESSAGE(ListResult)
ZH_PROTOCOL_MESSAGE(MkdirRequest)
ZH_PROTOCOL_MESSAGE(RenameRequest)
ZH_PROTOCOL_MESSAGE(SymlinkRequest)
ZH_PROTOCOL_MESSAGE(DeleteRequest)
ZH_PROTOCOL_MESSAGE(SetMetadataRequest)
ZH_PROTOCOL_MESSAGE(GetObjectRequest)
ZH_PROTOCOL_MESSAGE(GetObjectResult)
ZH_PROTOCOL_MESSAGE(PutObjectRequest)
ZH_PROTOCOL_MESSAGE(WriteObjectRequest)
ZH_PROTOCOL_MESSAGE(AppendRequest)
ZH_PROTOCOL_MESSAGE(TruncateRequest)
ZH_PROTOCOL_MESSAGE(GetItemRequest)
ZH_PROTOCOL_MESSAGE(Item)
ZH_PROTOCOL_MESSAGE(GetItemsRequest)
ZH_PROTOCOL_MESSAGE(GetItemsResult)
ZH_PROTOCOL_MESSAGE(PutItemRequest)
ZH_PROTOCOL_MESSAGE(std::vector<PutItemRequest>)
ZH_PROTOCOL_MESSAGE(std::vector<absl::Status>)
ZH_PROTOCOL_MESSAGE(UpdateItemRequest)
ZH_PROTOCOL_MESSAGE(CreateStreamRequest)
ZH_PROTOCOL_MESSAGE(StreamDescription)
ZH_PROTOCOL_MESSAGE(PutRecordsRequest)
ZH_PROTOCOL_MESSAGE(std::vector<RecordResult>)
ZH_PROTOCOL_MESSAGE(SeekRequest)
ZH_PROTOCOL_MESSAGE(StreamLocation)
ZH_PROTOCOL_MESSAGE(GetRecordsRequest)
ZH_PROTOCOL_MESSAGE(GetRecordsResult)

#undef ZH_PROTOCOL_MESSAGE

}  // namespace zerohop::protocol
