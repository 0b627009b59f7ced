// The C ABI (zerohop.h) over the C++ Client: argument checks, conversions, and the
// thread's last error.

#include "zerohop/zerohop.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "zerohop/client.h"

using zerohop::Client;

struct zh_client {
    std::unique_ptr<Client> client;
};

// Name-ordered, so that zh_attrs_name(i) walks a stable order.
struct zh_attrs {
    std::map<std::string, zerohop::Value, std::less<>> values;
};

struct zh_list {
    std::vector<std::string> names;
    std::vector<zh_info> infos;
    std::string next_marker;
    bool truncated = false;
};

struct zh_view {
    zerohop::ObjectView view;
    zh_info info;
};

struct zh_buffer {
    zerohop::PutBuffer buffer;
};

struct zh_items {
    std::vector<std::string> names;
    std::vector<zh_attrs> attrs;
    std::string next_marker;
    bool done = false;
};

struct zh_records {
    std::vector<zerohop::StreamRecord> records;
    uint64_t next_sequence = 0;
};

namespace {

thread_local std::string last_error;
thread_local std::optional<zerohop::CallDeadline> thread_deadline;  // zh_set_deadline

int Fail(const absl::Status& s) {
    last_error = std::string(s.message());
    return static_cast<int>(s.code());
}

int Fail(zh_code code, std::string message) {
    last_error = std::move(message);
    return code;
}

int Done(const absl::Status& s) { return s.ok() ? ZH_OK : Fail(s); }

// Checks the handle and parses a path argument.
absl::StatusOr<zerohop::Path> PathArg(zh_client* c, const char* path) {
    if (c == nullptr || c->client == nullptr) {
        return absl::InvalidArgumentError("no client (zh_connect failed?)");
    }
    if (path == nullptr) {
        return absl::InvalidArgumentError("no path");
    }
    return zerohop::Path::Parse(path);
}

std::string Str(const char* s) { return s != nullptr ? std::string(s) : std::string(); }

void Fill(const zerohop::ObjectInfo& i, zh_info* out) {
    if (out == nullptr) {
        return;
    }
    *out = zh_info{};
    out->type = static_cast<int32_t>(i.type);
    out->mode = i.mode;
    out->uid = i.uid;
    out->gid = i.gid;
    out->id = i.id;
    out->size = i.size;
    out->mtime_secs = i.mtime.secs;
    out->mtime_nsecs = i.mtime.nsecs;
    out->ctime_secs = i.ctime.secs;
    out->ctime_nsecs = i.ctime.nsecs;
    out->last_sequence = i.last_sequence;
    out->atime_secs = i.atime.secs;
    out->atime_nsecs = i.atime.nsecs;
    out->subdirs = i.subdirs;
}

zerohop::AttributeMap ToMap(const zh_attrs* a) {
    zerohop::AttributeMap m;
    if (a != nullptr) {
        for (const auto& [k, v] : a->values) {
            m.emplace(k, v);
        }
    }
    return m;
}

void FromMap(const zerohop::AttributeMap& m, zh_attrs* out) {
    out->values.clear();
    for (const auto& [k, v] : m) {
        out->values.emplace(k, v);
    }
}

std::vector<std::string> Names(const char* const* names, size_t count) {
    std::vector<std::string> out;
    for (size_t i = 0; names != nullptr && i < count; ++i) {
        out.push_back(Str(names[i]));
    }
    return out;
}

int Set(zh_attrs* a, const char* name, zerohop::Value v) {
    if (a == nullptr || name == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no attributes or no name");
    }
    if (absl::Status s = zerohop::ValidateAttributeName(name); !s.ok()) {
        return Fail(s);
    }
    a->values.insert_or_assign(name, std::move(v));
    return ZH_OK;
}

// The value of `name` if it has type `t`.
absl::StatusOr<const zerohop::Value*> Get(const zh_attrs* a, const char* name, zerohop::ValueType t) {
    if (a == nullptr || name == nullptr) {
        return absl::InvalidArgumentError("no attributes or no name");
    }
    auto it = a->values.find(std::string_view(name));
    if (it == a->values.end()) {
        return absl::NotFoundError(absl::StrFormat("no attribute %s", name));
    }
    if (it->second.type() != t) {
        return absl::InvalidArgumentError(absl::StrFormat("attribute %s is a %s, not a %s", name,
                                                          zerohop::ValueTypeName(it->second.type()),
                                                          zerohop::ValueTypeName(t)));
    }
    return &it->second;
}

}  // namespace

extern "C" {

const char* zh_last_error(void) { return last_error.c_str(); }
void zh_free(void* p) { std::free(p); }

// ---- sessions ---------------------------------------------------------------------------

zh_client* zh_connect(const zh_options* o) {
    zerohop::ClientOptions opts;
    if (o != nullptr) {
        opts.socket_path = Str(o->socket_path);
        opts.access_key = Str(o->access_key);
        if (o->client_bytes != 0) {
            opts.client_bytes = o->client_bytes;
        }
        if (o->daemon_bytes != 0) {
            opts.daemon_bytes = o->daemon_bytes;
        }
        if (o->timeout_ms != 0) {
            opts.timeout = absl::Milliseconds(o->timeout_ms);
        }
        if (o->reconnect_timeout_ms != 0) {
            opts.reconnect_timeout = absl::Milliseconds(o->reconnect_timeout_ms);
        }
    }
    auto c = Client::Connect(opts);
    if (!c.ok()) {
        Fail(c.status());
        return nullptr;
    }
    return new zh_client{std::move(*c)};
}

void zh_close(zh_client* c) { delete c; }
uint64_t zh_session_id(zh_client* c) { return c != nullptr && c->client ? c->client->session_id() : 0; }

void zh_set_deadline(int64_t unix_nanos) {
    thread_deadline.reset();
    if (unix_nanos != 0) {
        thread_deadline.emplace(absl::FromUnixNanos(unix_nanos));
    }
}

// ---- attributes -------------------------------------------------------------------------

zh_attrs* zh_attrs_new(void) { return new zh_attrs; }
void zh_attrs_free(zh_attrs* a) { delete a; }
size_t zh_attrs_count(const zh_attrs* a) { return a != nullptr ? a->values.size() : 0; }
const char* zh_attrs_name(const zh_attrs* a, size_t i) {
    if (a == nullptr || i >= a->values.size()) {
        return nullptr;
    }
    return std::next(a->values.begin(), static_cast<ptrdiff_t>(i))->first.c_str();
}
int zh_attrs_type(const zh_attrs* a, const char* name) {
    if (a == nullptr || name == nullptr) {
        return 0;
    }
    auto it = a->values.find(std::string_view(name));
    return it == a->values.end() ? 0 : static_cast<int>(it->second.type());
}

int zh_attrs_set_bool(zh_attrs* a, const char* n, int v) { return Set(a, n, zerohop::Value::Bool(v != 0)); }
int zh_attrs_set_int64(zh_attrs* a, const char* n, int64_t v) { return Set(a, n, zerohop::Value::Int64(v)); }
int zh_attrs_set_double(zh_attrs* a, const char* n, double v) { return Set(a, n, zerohop::Value::Double(v)); }
int zh_attrs_set_string(zh_attrs* a, const char* n, const char* d, size_t size) {
    return Set(a, n, zerohop::Value::String(std::string(d != nullptr ? d : "", d != nullptr ? size : 0)));
}
int zh_attrs_set_blob(zh_attrs* a, const char* n, const void* d, size_t size) {
    return Set(a, n,
               zerohop::Value::Blob(std::string(static_cast<const char*>(d != nullptr ? d : ""), d != nullptr ? size : 0)));
}
int zh_attrs_set_timestamp(zh_attrs* a, const char* n, int64_t secs, int32_t nsecs) {
    if (nsecs < 0 || nsecs > 999999999) {
        return Fail(ZH_INVALID_ARGUMENT, "nanoseconds must be in 0..999999999");
    }
    return Set(a, n, zerohop::Value::Time(zerohop::Timestamp{secs, nsecs}));
}
int zh_attrs_set_int64_array(zh_attrs* a, const char* n, const int64_t* v, size_t count) {
    return Set(a, n, zerohop::Value::Int64Array(v != nullptr ? std::vector<int64_t>(v, v + count) : std::vector<int64_t>()));
}
int zh_attrs_set_double_array(zh_attrs* a, const char* n, const double* v, size_t count) {
    return Set(a, n, zerohop::Value::DoubleArray(v != nullptr ? std::vector<double>(v, v + count) : std::vector<double>()));
}
int zh_attrs_remove(zh_attrs* a, const char* n) {
    if (a == nullptr || n == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no attributes or no name");
    }
    return a->values.erase(std::string(n)) == 1 ? ZH_OK : Fail(ZH_NOT_FOUND, absl::StrFormat("no attribute %s", n));
}

int zh_attrs_get_bool(const zh_attrs* a, const char* n, int* out) {
    auto v = Get(a, n, zerohop::ValueType::kBool);
    if (!v.ok()) {
        return Fail(v.status());
    }
    *out = (*v)->as_bool() ? 1 : 0;
    return ZH_OK;
}
int zh_attrs_get_int64(const zh_attrs* a, const char* n, int64_t* out) {
    auto v = Get(a, n, zerohop::ValueType::kInt64);
    if (!v.ok()) {
        return Fail(v.status());
    }
    *out = (*v)->as_int64();
    return ZH_OK;
}
int zh_attrs_get_double(const zh_attrs* a, const char* n, double* out) {
    auto v = Get(a, n, zerohop::ValueType::kDouble);
    if (!v.ok()) {
        return Fail(v.status());
    }
    *out = (*v)->as_double();
    return ZH_OK;
}
int zh_attrs_get_string(const zh_attrs* a, const char* n, const char** data, size_t* size) {
    auto v = Get(a, n, zerohop::ValueType::kString);
    if (!v.ok()) {
        return Fail(v.status());
    }
    *data = (*v)->as_string().c_str();
    *size = (*v)->as_string().size();
    return ZH_OK;
}
int zh_attrs_get_blob(const zh_attrs* a, const char* n, const void** data, size_t* size) {
    auto v = Get(a, n, zerohop::ValueType::kBlob);
    if (!v.ok()) {
        return Fail(v.status());
    }
    *data = (*v)->as_blob().data();
    *size = (*v)->as_blob().size();
    return ZH_OK;
}
int zh_attrs_get_timestamp(const zh_attrs* a, const char* n, int64_t* secs, int32_t* nsecs) {
    auto v = Get(a, n, zerohop::ValueType::kTimestamp);
    if (!v.ok()) {
        return Fail(v.status());
    }
    *secs = (*v)->as_timestamp().secs;
    *nsecs = (*v)->as_timestamp().nsecs;
    return ZH_OK;
}
int zh_attrs_get_int64_array(const zh_attrs* a, const char* n, const int64_t** values, size_t* count) {
    auto v = Get(a, n, zerohop::ValueType::kInt64Array);
    if (!v.ok()) {
        return Fail(v.status());
    }
    *values = (*v)->as_int64_array().data();
    *count = (*v)->as_int64_array().size();
    return ZH_OK;
}
int zh_attrs_get_double_array(const zh_attrs* a, const char* n, const double** values, size_t* count) {
    auto v = Get(a, n, zerohop::ValueType::kDoubleArray);
    if (!v.ok()) {
        return Fail(v.status());
    }
    *values = (*v)->as_double_array().data();
    *count = (*v)->as_double_array().size();
    return ZH_OK;
}

// ---- namespace --------------------------------------------------------------------------

int zh_stat(zh_client* c, const char* path, zh_info* out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    auto r = c->client->Stat(*p);
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}

int zh_list_dir(zh_client* c, const char* path, const char* prefix, const char* marker, uint32_t limit,
                zh_list** out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (out == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no place for the result");
    }
    zerohop::ListRequest req{.path = *p, .prefix = Str(prefix), .marker = Str(marker)};
    if (limit != 0) {
        req.limit = limit;
    }
    auto r = c->client->List(req);
    if (!r.ok()) {
        return Fail(r.status());
    }
    auto l = std::make_unique<zh_list>();
    for (const auto& e : r->entries) {
        l->names.push_back(e.name);
        zh_info info;
        Fill(e.info, &info);
        l->infos.push_back(info);
    }
    l->next_marker = r->next_marker;
    l->truncated = r->truncated;
    *out = l.release();
    return ZH_OK;
}
size_t zh_list_count(const zh_list* l) { return l != nullptr ? l->names.size() : 0; }
const char* zh_list_name(const zh_list* l, size_t i) {
    return l != nullptr && i < l->names.size() ? l->names[i].c_str() : nullptr;
}
const zh_info* zh_list_info(const zh_list* l, size_t i) {
    return l != nullptr && i < l->infos.size() ? &l->infos[i] : nullptr;
}
const char* zh_list_next_marker(const zh_list* l) { return l != nullptr ? l->next_marker.c_str() : ""; }
int zh_list_truncated(const zh_list* l) { return l != nullptr && l->truncated ? 1 : 0; }
void zh_list_free(zh_list* l) { delete l; }

int zh_mkdir(zh_client* c, const char* path, uint32_t mode) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    return Done(c->client->Mkdir({.path = *p, .mode = mode}).status());
}
int zh_rmdir(zh_client* c, const char* path) {
    auto p = PathArg(c, path);
    return p.ok() ? Done(c->client->Rmdir(*p)) : Fail(p.status());
}
int zh_rename(zh_client* c, const char* from, const char* to, int no_replace) {
    auto f = PathArg(c, from);
    auto t = PathArg(c, to);
    if (!f.ok() || !t.ok()) {
        return Fail(f.ok() ? t.status() : f.status());
    }
    return Done(c->client->Rename({.from = *f, .to = *t, .no_replace = no_replace != 0}));
}
int zh_symlink(zh_client* c, const char* path, const char* target) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    return Done(c->client->Symlink({.path = *p, .target = Str(target)}).status());
}
int zh_readlink(zh_client* c, const char* path, char** target) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (target == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no place for the result");
    }
    auto r = c->client->Readlink(*p);
    if (!r.ok()) {
        return Fail(r.status());
    }
    *target = static_cast<char*>(std::malloc(r->size() + 1));
    std::memcpy(*target, r->c_str(), r->size() + 1);
    return ZH_OK;
}
int zh_delete(zh_client* c, const char* path, const char* condition) {
    auto p = PathArg(c, path);
    return p.ok() ? Done(c->client->Delete({.path = *p, .condition = Str(condition)})) : Fail(p.status());
}
int zh_set_metadata(zh_client* c, const char* path, uint32_t what, uint32_t mode, uint32_t uid, uint32_t gid,
                    int64_t mtime_secs, int32_t mtime_nsecs, zh_info* out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    zerohop::SetMetadataRequest req{.path = *p};
    if (what & ZH_SET_MODE) {
        req.mode = mode;
    }
    if (what & ZH_SET_UID) {
        req.uid = uid;
    }
    if (what & ZH_SET_GID) {
        req.gid = gid;
    }
    if (what & ZH_SET_MTIME) {
        req.mtime = zerohop::Timestamp{mtime_secs, mtime_nsecs};
    }
    auto r = c->client->SetMetadata(req);
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}

// ---- objects ----------------------------------------------------------------------------

int zh_get(zh_client* c, const char* path, uint64_t offset, uint64_t length, zh_view** out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (out == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no place for the result");
    }
    auto v = c->client->GetObjectView({.path = *p, .offset = offset, .length = length});
    if (!v.ok()) {
        return Fail(v.status());
    }
    auto view = std::make_unique<zh_view>();
    view->view = std::move(*v);
    Fill(view->view.info(), &view->info);
    *out = view.release();
    return ZH_OK;
}
const void* zh_view_data(const zh_view* v) { return v != nullptr ? v->view.data().data() : nullptr; }
size_t zh_view_size(const zh_view* v) { return v != nullptr ? v->view.data().size() : 0; }
const zh_info* zh_view_info(const zh_view* v) { return v != nullptr ? &v->info : nullptr; }
void zh_view_release(zh_view* v) { delete v; }

int zh_get_copy(zh_client* c, const char* path, uint64_t offset, uint64_t length, void** data, size_t* size) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (data == nullptr || size == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no place for the result");
    }
    auto r = c->client->GetObject({.path = *p, .offset = offset, .length = length});
    if (!r.ok()) {
        return Fail(r.status());
    }
    *data = std::malloc(std::max<size_t>(r->size(), 1));
    std::memcpy(*data, r->data(), r->size());
    *size = r->size();
    return ZH_OK;
}

int zh_put(zh_client* c, const char* path, const void* data, size_t size, const zh_attrs* attrs,
           const char* condition, zh_info* out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    auto r = c->client->PutObject({.path = *p, .attributes = ToMap(attrs), .condition = Str(condition)},
                                  std::string_view(static_cast<const char*>(data), data != nullptr ? size : 0));
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}

int zh_buffer_alloc(zh_client* c, size_t capacity, zh_buffer** out) {
    if (c == nullptr || c->client == nullptr || out == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no client or no place for the buffer");
    }
    auto b = c->client->AllocatePutBuffer(capacity);
    if (!b.ok()) {
        return Fail(b.status());
    }
    *out = new zh_buffer{std::move(*b)};
    return ZH_OK;
}
void* zh_buffer_data(zh_buffer* b) { return b != nullptr ? b->buffer.data() : nullptr; }
size_t zh_buffer_capacity(const zh_buffer* b) { return b != nullptr ? b->buffer.capacity() : 0; }
void zh_buffer_free(zh_buffer* b) { delete b; }
int zh_put_buffer(zh_client* c, const char* path, zh_buffer* b, size_t size, const zh_attrs* attrs,
                  const char* condition, zh_info* out) {
    std::unique_ptr<zh_buffer> owned(b);  // consumed whatever happens
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (b == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no buffer");
    }
    auto r = c->client->PutObject({.path = *p, .attributes = ToMap(attrs), .condition = Str(condition)},
                                  std::move(b->buffer), size);
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}

int zh_write(zh_client* c, const char* path, uint64_t offset, const void* data, size_t size, zh_info* out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    auto r = c->client->WriteObject(
        {.path = *p, .offset = offset, .data = std::string_view(static_cast<const char*>(data), data ? size : 0)});
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}
int zh_append(zh_client* c, const char* path, const void* data, size_t size, zh_info* out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    auto r = c->client->Append({.path = *p, .data = std::string_view(static_cast<const char*>(data), data ? size : 0)});
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}
int zh_truncate(zh_client* c, const char* path, uint64_t size, zh_info* out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    auto r = c->client->Truncate({.path = *p, .size = size});
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}

// ---- items ------------------------------------------------------------------------------

int zh_get_item(zh_client* c, const char* path, const char* const* names, size_t name_count, zh_attrs** out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (out == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no place for the result");
    }
    auto r = c->client->GetItem({.path = *p, .attributes = Names(names, name_count)});
    if (!r.ok()) {
        return Fail(r.status());
    }
    auto a = std::make_unique<zh_attrs>();
    FromMap(r->attributes, a.get());
    *out = a.release();
    return ZH_OK;
}

int zh_get_items(zh_client* c, const char* table, const zh_scan* scan, zh_items** out) {
    auto p = PathArg(c, table);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (out == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no place for the result");
    }
    zerohop::GetItemsRequest req{.path = *p};
    if (scan != nullptr) {
        req.filter = Str(scan->filter);
        req.attributes = Names(scan->names, scan->name_count);
        req.marker = Str(scan->marker);
        if (scan->limit != 0) {
            req.limit = scan->limit;
        }
        if (scan->total_segments != 0) {
            req.segment = scan->segment;
            req.total_segments = scan->total_segments;
        }
    }
    auto r = c->client->GetItems(req);
    if (!r.ok()) {
        return Fail(r.status());
    }
    auto items = std::make_unique<zh_items>();
    items->attrs.resize(r->items.size());
    for (size_t i = 0; i < r->items.size(); ++i) {
        items->names.push_back(r->items[i].name);
        FromMap(r->items[i].attributes, &items->attrs[i]);
    }
    items->next_marker = r->next_marker;
    items->done = r->done;
    *out = items.release();
    return ZH_OK;
}
size_t zh_items_count(const zh_items* it) { return it != nullptr ? it->names.size() : 0; }
const char* zh_items_name(const zh_items* it, size_t i) {
    return it != nullptr && i < it->names.size() ? it->names[i].c_str() : nullptr;
}
const zh_attrs* zh_items_attrs(const zh_items* it, size_t i) {
    return it != nullptr && i < it->attrs.size() ? &it->attrs[i] : nullptr;
}
const char* zh_items_next_marker(const zh_items* it) { return it != nullptr ? it->next_marker.c_str() : ""; }
int zh_items_done(const zh_items* it) { return it != nullptr && it->done ? 1 : 0; }
void zh_items_free(zh_items* it) { delete it; }

int zh_put_item(zh_client* c, const char* path, const zh_attrs* attrs, const char* condition, zh_info* out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    auto r = c->client->PutItem({.path = *p, .attributes = ToMap(attrs), .condition = Str(condition)});
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}

int zh_put_items(zh_client* c, const char* const* paths, const zh_attrs* const* attrs, size_t count, int* codes) {
    if (c == nullptr || c->client == nullptr || (count > 0 && (paths == nullptr || codes == nullptr))) {
        return Fail(ZH_INVALID_ARGUMENT, "no client, paths or codes");
    }
    std::vector<zerohop::PutItemRequest> reqs;
    std::vector<size_t> sent;  // which input each request is
    for (size_t i = 0; i < count; ++i) {
        auto p = PathArg(c, paths[i]);
        if (!p.ok()) {
            codes[i] = static_cast<int>(p.status().code());
            continue;
        }
        reqs.push_back({.path = *p, .attributes = ToMap(attrs != nullptr ? attrs[i] : nullptr)});
        sent.push_back(i);
    }
    auto r = c->client->PutItems(reqs);
    if (!r.ok()) {
        return Fail(r.status());
    }
    for (size_t k = 0; k < sent.size() && k < r->size(); ++k) {
        codes[sent[k]] = static_cast<int>((*r)[k].code());
    }
    return ZH_OK;
}

int zh_update_item(zh_client* c, const char* path, const char* update, const char* condition,
                   const char* else_update, zh_info* out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    auto r = c->client->UpdateItem(
        {.path = *p, .update = Str(update), .condition = Str(condition), .else_update = Str(else_update)});
    if (!r.ok()) {
        return Fail(r.status());
    }
    Fill(*r, out);
    return ZH_OK;
}

// ---- streams ----------------------------------------------------------------------------

int zh_create_stream(zh_client* c, const char* path, uint32_t shard_count, int64_t retention_secs) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    return Done(
        c->client->CreateStream({.path = *p, .shard_count = shard_count, .retention_secs = retention_secs}).status());
}
int zh_describe_stream(zh_client* c, const char* path, uint32_t* shard_count, int64_t* retention_secs) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    auto r = c->client->DescribeStream(*p);
    if (!r.ok()) {
        return Fail(r.status());
    }
    if (shard_count != nullptr) {
        *shard_count = r->shard_count;
    }
    if (retention_secs != nullptr) {
        *retention_secs = r->retention_secs;
    }
    return ZH_OK;
}
int zh_delete_stream(zh_client* c, const char* path) {
    auto p = PathArg(c, path);
    return p.ok() ? Done(c->client->DeleteStream(*p)) : Fail(p.status());
}

int zh_put_records(zh_client* c, const char* path, const zh_record_input* records, size_t count,
                   zh_record_result* results) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (count > 0 && (records == nullptr || results == nullptr)) {
        return Fail(ZH_INVALID_ARGUMENT, "no records or no place for their results");
    }
    zerohop::PutRecordsRequest req{.path = *p};
    for (size_t i = 0; i < count; ++i) {
        zerohop::RecordInput in;
        in.data.assign(static_cast<const char*>(records[i].data), records[i].data ? records[i].size : 0);
        if (records[i].shard >= 0) {
            in.shard = static_cast<uint32_t>(records[i].shard);
        }
        in.partition_key = Str(records[i].partition_key);
        req.records.push_back(std::move(in));
    }
    auto r = c->client->PutRecords(req);
    if (!r.ok()) {
        return Fail(r.status());
    }
    for (size_t i = 0; i < count && i < r->size(); ++i) {
        results[i] = zh_record_result{static_cast<int32_t>((*r)[i].status.code()), (*r)[i].shard, (*r)[i].sequence};
    }
    return ZH_OK;
}

int zh_seek(zh_client* c, const char* path, uint32_t shard, int type, uint64_t sequence, int64_t time_secs,
            int32_t time_nsecs, uint64_t* next_sequence) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (next_sequence == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no place for the result");
    }
    if (type < ZH_SEEK_EARLIEST || type > ZH_SEEK_TIME) {
        return Fail(ZH_INVALID_ARGUMENT, absl::StrFormat("unknown seek type %d", type));
    }
    auto r = c->client->Seek({.path = *p,
                              .shard = shard,
                              .type = static_cast<zerohop::SeekType>(type),
                              .sequence = sequence,
                              .time = zerohop::Timestamp{time_secs, time_nsecs}});
    if (!r.ok()) {
        return Fail(r.status());
    }
    *next_sequence = r->sequence;
    return ZH_OK;
}

int zh_get_records(zh_client* c, const char* path, uint32_t shard, uint64_t sequence, uint32_t limit,
                   uint64_t max_bytes, zh_records** out) {
    auto p = PathArg(c, path);
    if (!p.ok()) {
        return Fail(p.status());
    }
    if (out == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no place for the result");
    }
    zerohop::GetRecordsRequest req{.path = *p, .location = {.shard = shard, .sequence = sequence}};
    if (limit != 0) {
        req.limit = limit;
    }
    if (max_bytes != 0) {
        req.max_bytes = max_bytes;
    }
    auto r = c->client->GetRecords(req);
    if (!r.ok()) {
        return Fail(r.status());
    }
    *out = new zh_records{std::move(r->records), r->next.sequence};
    return ZH_OK;
}
size_t zh_records_count(const zh_records* r) { return r != nullptr ? r->records.size() : 0; }
int zh_records_get(const zh_records* r, size_t i, zh_record* out) {
    if (r == nullptr || i >= r->records.size() || out == nullptr) {
        return Fail(ZH_OUT_OF_RANGE, "no such record");
    }
    const zerohop::StreamRecord& rec = r->records[i];
    *out = zh_record{rec.shard,          rec.sequence,     rec.arrival.secs, rec.arrival.nsecs,
                     rec.data.data(),    rec.data.size(),  rec.partition_key.c_str()};
    return ZH_OK;
}
uint64_t zh_records_next_sequence(const zh_records* r) { return r != nullptr ? r->next_sequence : 0; }
void zh_records_free(zh_records* r) { delete r; }

// ---- the rest ---------------------------------------------------------------------------

int zh_sync(zh_client* c) {
    if (c == nullptr || c->client == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no client");
    }
    return Done(c->client->Sync());
}
int zh_nop(zh_client* c) {
    if (c == nullptr || c->client == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no client");
    }
    return Done(c->client->Nop());
}
int zh_status(zh_client* c, zh_daemon_status* out) {
    if (c == nullptr || c->client == nullptr || out == nullptr) {
        return Fail(ZH_INVALID_ARGUMENT, "no client or no place for the status");
    }
    auto r = c->client->Status();
    if (!r.ok()) {
        return Fail(r.status());
    }
    *out = zh_daemon_status{r->version,          r->workers,  r->sessions_open,  r->sessions_total,
                            r->sessions_refused, r->requests, r->request_errors, r->bad_descriptors};
    return ZH_OK;
}

}  // extern "C"
