// The redis backend's plumbing: the connection and the scripts loaded, ids, keys and
// entries, resolving paths (batched into one script per container on a worker's turn),
// committing transactions, and creating entries.

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "backend/rules.h"
#include "base/status_macros.h"
#include "redis/internal/store.h"
#include "zerohop/status.h"

namespace zerohop::redis {

char TypeCode(ObjectType t) {
    switch (t) {
        case ObjectType::kObject: return 'f';
        case ObjectType::kDirectory: return 'd';
        case ObjectType::kStream: return 's';
        case ObjectType::kSymlink: return 'l';
        case ObjectType::kShard: return 'h';
        case ObjectType::kSpecial: return 'p';
    }
    return 'f';
}

std::optional<ObjectType> TypeOf(std::string_view code) {
    if (code == "f") return ObjectType::kObject;
    if (code == "d") return ObjectType::kDirectory;
    if (code == "s") return ObjectType::kStream;
    if (code == "l") return ObjectType::kSymlink;
    if (code == "h") return ObjectType::kShard;
    if (code == "p") return ObjectType::kSpecial;
    return std::nullopt;
}

uint64_t ToU64(std::string_view s) {
    uint64_t v = 0;
    return absl::SimpleAtoi(absl::string_view(s.data(), s.size()), &v) ? v : 0;
}

namespace {

// The numbers of a space-separated field (the meta, a directory's times), if all are numbers.
std::optional<std::vector<int64_t>> Numbers(std::string_view text) {
    std::vector<int64_t> out;
    for (absl::string_view word : absl::StrSplit(AV(text), ' ')) {
        if (!absl::SimpleAtoi(word, &out.emplace_back())) {
            return std::nullopt;
        }
    }
    return out;
}

}  // namespace

std::string DirTimes(Timestamp now) { return absl::StrCat(now.secs, " ", now.nsecs, " ", now.secs, " ", now.nsecs); }

void ApplyDirTimes(std::string_view tm, ObjectInfo* info) {
    auto n = Numbers(tm);
    if (!n || n->size() != 4) {
        return;
    }
    info->mtime = Timestamp{(*n)[0], static_cast<int32_t>((*n)[1])};
    info->ctime = std::max(info->ctime, Timestamp{(*n)[2], static_cast<int32_t>((*n)[3])});
}

uint64_t Subdirs(std::string_view n) {
    int64_t v = 0;
    return absl::SimpleAtoi(absl::string_view(n.data(), n.size()), &v) && v > 0 ? static_cast<uint64_t>(v) : 0;
}

absl::Status Damaged(std::string_view what) {
    return absl::DataLossError(absl::StrFormat("redis backend: %s is not what this backend wrote", what));
}

std::string EncodeMeta(const ObjectInfo& i) {
    return absl::StrCat(i.mode, " ", i.uid, " ", i.gid, " ", i.mtime.secs, " ", i.mtime.nsecs, " ", i.ctime.secs, " ",
                        i.ctime.nsecs, " ", i.size, " ", i.atime.secs, " ", i.atime.nsecs);
}

bool DecodeMeta(std::string_view meta, ObjectInfo* info) {
    // mode uid gid mtime(s ns) ctime(s ns) size [atime(s ns): absent in entries written before]
    auto numbers = Numbers(meta);
    if (!numbers || (numbers->size() != 8 && numbers->size() != 10)) {
        return false;
    }
    const std::vector<int64_t>& n = *numbers;
    info->mode = static_cast<uint32_t>(n[0]);
    info->uid = static_cast<uint32_t>(n[1]);
    info->gid = static_cast<uint32_t>(n[2]);
    info->mtime = Timestamp{n[3], static_cast<int32_t>(n[4])};
    info->ctime = Timestamp{n[5], static_cast<int32_t>(n[6])};
    info->size = static_cast<uint64_t>(n[7]);
    info->atime = n.size() == 10 ? Timestamp{n[8], static_cast<int32_t>(n[9])} : info->mtime;
    return true;
}

absl::StatusOr<Entry> DecodeEntry(std::string key, const std::vector<Reply>& flat) {
    Entry e;
    e.key = std::move(key);
    for (size_t i = 0; i + 1 < flat.size(); i += 2) {
        if (flat[i].str == "v") {
            e.version = flat[i + 1].str;
        } else {
            e.fields[flat[i].str] = flat[i + 1].str;
        }
    }
    auto type = TypeOf(e.Field("t"));
    if (!type || e.version.empty() || !DecodeMeta(e.Field("m"), &e.info)) {
        return Damaged(e.key);
    }
    ObjectInfo& info = e.info;
    info.type = *type;
    info.id = ToU64(e.Field("i"));
    if (info.type == ObjectType::kSymlink) {
        info.symlink_target = e.Field("x");
    } else if (info.type == ObjectType::kDirectory) {
        info.subdirs = Subdirs(e.Field("n"));
        ApplyDirTimes(e.Field("tm"), &info);
    } else if (info.type == ObjectType::kStream) {
        std::vector<std::string> x = absl::StrSplit(e.Field("x"), ' ');
        if (x.size() != 2 || !absl::SimpleAtoi(x[0], &e.shard_count) || !absl::SimpleAtoi(x[1], &e.retention_secs)) {
            return Damaged(e.key);
        }
    } else if (info.type == ObjectType::kSpecial) {
        // "<kind> <device number>"
        std::vector<std::string> x = absl::StrSplit(e.Field("x"), ' ');
        if (x.size() != 2 || !absl::SimpleAtoi(x[0], &info.special) || !absl::SimpleAtoi(x[1], &info.rdev)) {
            return Damaged(e.key);
        }
    }
    return e;
}

absl::Status Store::Open() {
    ZH_ASSIGN_OR_RETURN(auto c, redis::RedisClient::Connect(options_.client));
    redis_ = std::move(c);
    for (const std::string& name : options_.containers) {
        if (absl::Status s = Path::ValidateComponent(name); !s.ok()) {
            return absl::InvalidArgumentError(absl::StrFormat("container \"%s\": %s", name, s.message()));
        }
        // The container's root directory: created once, by whichever daemon comes first.
        std::string tag = Tag(name);
        ZH_ASSIGN_OR_RETURN(auto id, NewIds(1));
        ObjectInfo root;
        root.type = ObjectType::kDirectory;
        root.mode = 0755;
        root.mtime = root.ctime = root.atime = Now();
        ZH_ASSIGN_OR_RETURN(auto r, Call({"HSETNX", tag + "root", "i", std::to_string(id)}, tag, true));
        ZH_ASSIGN_OR_RETURN(auto got, Call({"HGET", tag + "root", "i"}, tag, true));
        uint64_t root_id = ToU64(got.str);
        if (root_id == 0) {
            return Damaged(tag + "root");
        }
        if (r.integer == 1) {
            if (auto m = Call({"HSET", tag + "root", "m", EncodeMeta(root)}, tag, true); !m.ok()) {
                return m.status();
            }
        }
        roots_[name] = root_id;
    }
    for (auto [script, sha] : {std::pair<const char*, std::string*>{kResolveScript, &resolve_sha_},
                               std::pair<const char*, std::string*>{kCommitScript, &commit_sha_},
                               std::pair<const char*, std::string*>{kPutItemScript, &put_item_sha_},
                               std::pair<const char*, std::string*>{kNamesScript, &names_sha_},
                               std::pair<const char*, std::string*>{kPutRecordsScript, &records_sha_},
                               std::pair<const char*, std::string*>{kSeekTimeScript, &seek_sha_}}) {
        ZH_ASSIGN_OR_RETURN(auto r, Call({"SCRIPT", "LOAD", script}, "", true));
        if (r.is_error()) {
            return absl::FailedPreconditionError(absl::StrCat("redis: SCRIPT LOAD: ", r.str));
        }
        *sha = r.str;
    }
    return absl::OkStatus();
}

std::string Store::Tag(std::string_view container) const {
    return absl::StrCat("{", options_.key_prefix, ":", AV(container), "}:");
}

std::string Store::EntryKey(const std::string& tag, uint64_t parent, std::string_view name) {
    return absl::StrCat(tag, "e:", parent, ":", AV(name));
}

std::string Store::IndexKey(const std::string& tag, uint64_t dir, std::string_view name) {
    return absl::StrCat(tag, "d:", dir, ":", IndexBucket(name));
}

std::string Store::ChunkKey(const std::string& tag, uint64_t data, uint64_t n) {
    return absl::StrCat(tag, "c:", data, ":", n);
}

CommandOptions Store::Options(std::string_view route, bool safe) const {
    CommandOptions o{.key = route, .safe_to_retry = safe};
    if (!safe && options_.replicas > 0) {
        o.replicas = options_.replicas;
        o.replica_timeout = options_.replica_timeout;
    }
    return o;
}

absl::Status Store::Prefixed(const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("redis: ", s.message()));
}

absl::StatusOr<Reply> Store::Call(std::vector<std::string> argv, const std::string& route, bool safe) {
    auto r = redis_->Call(std::move(argv), Options(route, safe));
    if (!r.ok()) {
        return Prefixed(r.status());
    }
    return r;
}

absl::StatusOr<Reply> Store::Script(const char* source, const std::string& sha, const std::vector<std::string>& keys,
                             const std::vector<std::string>& args, bool safe) {
    std::vector<std::string> argv = {"EVALSHA", sha, std::to_string(keys.size())};
    argv.insert(argv.end(), keys.begin(), keys.end());
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = Call(argv, keys.empty() ? "" : keys[0], safe);
    if (r.ok() && r->is_error() && absl::StartsWith(r->str, "NOSCRIPT")) {
        argv[0] = "EVAL";
        argv[1] = source;
        r = Call(std::move(argv), keys.empty() ? "" : keys[0], safe);
    }
    if (r.ok() && r->is_error()) {
        return absl::InternalError(absl::StrCat("redis: ", r->str));
    }
    return r;
}

absl::StatusOr<uint64_t> Store::NewIds(uint64_t count) {
    if (std::optional<uint64_t> first = TakeIds(count)) {
        return *first;
    }
    uint64_t reserve = std::max<uint64_t>(count, kIdRange);
    std::string key = options_.key_prefix + ":ids";
    ZH_ASSIGN_OR_RETURN(auto r, Call({"INCRBY", key, std::to_string(reserve)}, key, false));
    if (r.type != Reply::Type::kInteger) {
        return absl::InternalError(absl::StrCat("redis: INCRBY: ", r.ToString()));
    }
    uint64_t first = static_cast<uint64_t>(r.integer) - reserve + 1;
    absl::MutexLock lock(&ids_mu_);
    // The rest of the new range replaces what is left of the old one (another thread may
    // have reserved meanwhile: either range is fine, each id is handed out once).
    ids_next_ = first + count;
    ids_end_ = first + reserve;
    return first;
}

std::optional<uint64_t> Store::TakeIds(uint64_t count) {
    absl::MutexLock lock(&ids_mu_);
    if (count == 1 && !given_back_.empty()) {
        uint64_t id = given_back_.back();
        given_back_.pop_back();
        return id;
    }
    if (count > ids_end_ - ids_next_) {
        return std::nullopt;
    }
    uint64_t first = ids_next_;
    ids_next_ += count;
    return first;
}

void Store::GiveBackId(uint64_t id) {
    absl::MutexLock lock(&ids_mu_);
    given_back_.push_back(id);
}

absl::Status Store::ResolveArgs(const Path& path, Resolved* out, std::vector<std::string>* args) {
    if (path.is_root()) {
        return absl::InvalidArgumentError("the root \"/\" holds only containers");
    }
    auto root = roots_.find(std::string(path.container()));
    if (root == roots_.end()) {
        return absl::NotFoundError(absl::StrFormat("%s: container \"%s\" is not in this backend", path.str(),
                                                   path.container()));
    }
    out->tag = Tag(path.container());
    if (path.depth() == 1) {
        return absl::InvalidArgumentError(absl::StrFormat("%s is a container root", path.str()));
    }
    args->push_back(std::to_string(root->second));
    args->push_back(std::to_string(path.depth() - 1));
    for (size_t i = 1; i < path.depth(); ++i) {
        args->emplace_back(path.component(i));
    }
    return absl::OkStatus();
}

absl::StatusOr<Store::Resolved> Store::ParseResolved(const Path& path, Resolved out, const Reply& reply) {
    const Reply* r = &reply;
    if (r->type != Reply::Type::kArray || r->elements.size() < 4) {
        return Damaged("a path resolution");
    }
    int64_t status = r->elements[0].integer;
    out.parent = ToU64(r->elements[1].str);
    const auto& chain = r->elements[2].elements;
    for (size_t i = 0; i + 3 < chain.size(); i += 4) {
        out.chain.emplace_back(chain[i].str, chain[i + 1].str);
        out.chain_ids.push_back(ToU64(chain[i + 3].str));
        out.parent_type = chain[i + 2].str == "s" ? ObjectType::kStream : ObjectType::kDirectory;
    }
    out.key = EntryKey(out.tag, out.parent, path.name());
    if (status == 2) {
        return ParentNotFoundError(path.str());
    }
    if (status == 3) {
        return AncestorNotDirectoryError(path, static_cast<size_t>(r->elements.size() > 4 ? r->elements[4].integer : 1) + 1);
    }
    if (status == 0) {
        ZH_ASSIGN_OR_RETURN(auto e, DecodeEntry(out.key, r->elements[3].elements));
        out.entry = std::move(e);
    }
    return out;
}

absl::StatusOr<Store::Resolved> Store::Resolve(const Path& path) {
    Resolved out;
    std::vector<std::string> args;
    ZH_RETURN_IF_ERROR(ResolveArgs(path, &out, &args));
    args.insert(args.begin(), out.tag);
    ZH_ASSIGN_OR_RETURN(auto r, Script(kResolveScript, resolve_sha_, {out.tag + "ver"}, args, true));
    if (r.type != Reply::Type::kArray || r.elements.size() != 1) {
        return Damaged("a path resolution");
    }
    return ParseResolved(path, std::move(out), r.elements[0]);
}

void Store::ScriptAsync(const char* source, const std::string& sha, std::string_view route, bool safe, ScriptArgs args,
                 ReplyDone done, bool by_digest) {
    std::vector<std::string_view> full;
    full.reserve(args->size() + 2);
    full.push_back(by_digest ? "EVALSHA" : "EVAL");
    full.push_back(by_digest ? std::string_view(sha) : std::string_view(source));
    full.insert(full.end(), args->begin(), args->end());
    redis_->SendArgs(full, Options(route, safe),
                     [this, source, &sha, route = std::string(route), safe, args = std::move(args),
                      done = std::move(done), by_digest](absl::StatusOr<Reply> r) mutable {
                     if (!r.ok()) {
                         return std::move(done)(Prefixed(r.status()));
                     }
                     if (r->is_error()) {
                         if (by_digest && absl::StartsWith(r->str, "NOSCRIPT")) {
                             return ScriptAsync(source, sha, route, safe, std::move(args), std::move(done),
                                                /*by_digest=*/false);
                         }
                         return std::move(done)(absl::InternalError(absl::StrCat("redis: ", r->str)));
                     }
                     std::move(done)(std::move(r));
                 });
}

void Store::ResolveAsync(const Path& path, absl::AnyInvocable<void(absl::StatusOr<Resolved>) &&> done) {
    Resolved out;
    ResolveBatch single;
    ResolveBatch* batch = BatchHere();
    std::string tag = Tag(path.container());
    ResolveBatch::Container& c = (batch != nullptr ? batch : &single)->by_tag[tag];
    if (c.args.empty()) {
        // The script's arguments in their final order: the flush sends them as they are.
        c.args.insert(c.args.end(), {"1", tag + "ver", std::move(tag)});
    }
    size_t mark = c.args.size();
    if (absl::Status s = ResolveArgs(path, &out, &c.args); !s.ok()) {
        c.args.resize(mark);
        return std::move(done)(s);
    }
    c.asks.push_back({path, std::move(out), std::move(done)});
    if (batch == nullptr) {
        FlushResolves(single);
    }
}

void Store::FlushResolves(ResolveBatch& batch) {
    // (What fails at once below may ask again: into the batch, for the next flush.)
    std::map<std::string, ResolveBatch::Container> by_tag = std::move(batch.by_tag);
    batch.by_tag.clear();
    for (auto& [tag, c] : by_tag) {
        if (c.asks.empty()) {
            continue;
        }
        auto args = std::make_shared<std::vector<std::string>>(std::move(c.args));
        auto asks = std::make_shared<std::vector<ResolveBatch::Ask>>(std::move(c.asks));
        ScriptAsync(kResolveScript, resolve_sha_, tag, true, std::move(args),
                    [this, asks](absl::StatusOr<Reply> r) mutable {
                        bool shaped = r.ok() && r->type == Reply::Type::kArray &&
                                      r->elements.size() == asks->size();
                        for (size_t i = 0; i < asks->size(); ++i) {
                            ResolveBatch::Ask& a = (*asks)[i];
                            if (!r.ok()) {
                                std::move(a.done)(r.status());
                            } else if (!shaped) {
                                std::move(a.done)(Damaged("a path resolution"));
                            } else {
                                std::move(a.done)(ParseResolved(a.path, std::move(a.out), r->elements[i]));
                            }
                        }
                    });
    }
}

Store::ResolveBatch* Store::BatchHere() {
    for (const auto& [store, batch] : tls_batches_) {
        if (store == this) {
            return batch;
        }
    }
    return nullptr;
}

absl::StatusOr<bool> Store::Commit(const Txn& t, int* failed_check) {
    ZH_ASSIGN_OR_RETURN(auto r, Script(kCommitScript, commit_sha_, t.keys(), t.Args(), false));
    return CommitAnswer(r, failed_check);
}

absl::StatusOr<bool> Store::CommitAnswer(const Reply& r, int* failed_check) {
    if (r.type != Reply::Type::kArray || r.elements.size() != 2) {
        return Damaged("a commit's answer");
    }
    if (r.elements[0].integer == 1) {
        return true;
    }
    if (failed_check != nullptr) {
        *failed_check = static_cast<int>(r.elements[1].integer);
    }
    return false;
}

void Store::CommitAsync(const Txn& t, absl::AnyInvocable<void(absl::StatusOr<bool>) &&> done) {
    auto args = std::make_shared<std::vector<std::string>>();
    args->push_back(std::to_string(t.keys().size()));
    args->insert(args->end(), t.keys().begin(), t.keys().end());
    std::vector<std::string> rest = t.Args();
    args->insert(args->end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
    ScriptAsync(kCommitScript, commit_sha_, t.keys()[0], false, std::move(args),
                [done = std::move(done)](absl::StatusOr<Reply> r) mutable {
                    if (!r.ok()) {
                        return std::move(done)(r.status());
                    }
                    std::move(done)(CommitAnswer(*r, nullptr));
                });
}

absl::Status Store::CheckWritableParent(const Path& path, const Resolved& r) {
    return zerohop::CheckWritableParent(path, r.parent_type);
}

absl::Status Store::CheckCondition(const Path& path, const std::string& condition, const Entry* e) {
    if (!e || e->info.type != ObjectType::kShard) {
        return zerohop::CheckCondition(path, condition, e ? std::string_view(e->Field("a")) : std::string_view(),
                                       e ? &e->info : nullptr);
    }
    ZH_ASSIGN_OR_RETURN(auto info, InfoOf(*e));
    return zerohop::CheckCondition(path, condition, e->Field("a"), &info);
}

absl::StatusOr<ObjectInfo> Store::InfoOf(const Entry& e) {
    ObjectInfo info = e.info;
    if (info.type == ObjectType::kShard) {
        std::string tag = e.key.substr(0, e.key.find("}:") + 2);
        ZH_ASSIGN_OR_RETURN(auto q, Call({"HMGET", absl::StrCat(tag, "q:", info.id), "last", "lt"}, tag, true));
        if (q.type == Reply::Type::kArray && q.elements.size() == 2) {
            info.last_sequence = ToU64(q.elements[0].str);
            info.size = info.last_sequence;
            uint64_t lt = ToU64(q.elements[1].str);
            if (lt != 0) {
                info.mtime = Timestamp::FromNanos(static_cast<int64_t>(lt) * 1000);
            }
        }
    }
    return info;
}

std::map<std::string, std::string> Store::NewFields(ObjectType type, uint64_t id, const ObjectInfo& info) {
    return {{"t", std::string(1, TypeCode(type))}, {"i", std::to_string(id)}, {"m", EncodeMeta(info)}};
}

ObjectInfo Store::NewInfo(ObjectType type, uint64_t id, uint32_t mode, const Caller& caller) {
    ObjectInfo info;
    info.type = type;
    info.id = id;
    info.mode = mode & 07777;
    info.uid = caller.uid;
    info.gid = caller.gid;
    info.mtime = info.ctime = info.atime = Now();
    return info;
}

absl::StatusOr<ObjectInfo> Store::Create(const Path& path, ObjectType type, uint32_t mode, const Caller& caller,
                                  const std::function<void(ObjectInfo*, std::map<std::string, std::string>*)>& fill) {
    return Retrying(path, [&]() -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto r, Resolve(path));
        ZH_RETURN_IF_ERROR(CheckWritableParent(path, r));
        if (r.entry) {
            return EntryExistsError(path);
        }
        ZH_ASSIGN_OR_RETURN(auto id, NewIds(1));
        ObjectInfo info = NewInfo(type, id, mode, caller);
        std::map<std::string, std::string> extra;
        if (fill) {
            fill(&info, &extra);
        }
        auto fields = NewFields(type, id, info);
        fields.insert(extra.begin(), extra.end());
        Txn t(r.tag + "ver");
        r.CheckChain(t);
        t.CheckVersion(r.key, "");
        t.Replace(r.key, fields);
        t.ZAdd(IndexKey(r.tag, r.parent, path.name()), std::string(path.name()));
        if (type == ObjectType::kDirectory) {
            t.AddSubdirs(r.ParentKey(), +1);
        }
        t.TouchDir(r.ParentKey(), DirTimes(info.mtime));
        ZH_ASSIGN_OR_RETURN(auto ok, Commit(t));
        if (ok) {
            return info;
        }
        return Retry();
    });
}

absl::Status Store::Sync() {
    // Acknowledged writes are as durable as the servers' persistence and `replicas`
    // make them (docs/REDIS.md); a round trip shows the connection is alive.
    auto r = Call({"PING"}, "", true);
    return r.ok() ? absl::OkStatus() : r.status();
}

}  // namespace zerohop::redis
