// The redis backend: the namespace, objects, items and streams of DESIGN.md section 3 in
// Redis data structures (layout in docs/REDIS.md).

#include "redis/redis_backend.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <optional>
#include <thread>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "backend/rules.h"
#include "expr/expression.h"
#include "zerohop/status.h"

namespace zerohop {
namespace {

using redis::CommandOptions;
using redis::Reply;

constexpr int kMaxAttempts = 1000;
constexpr char kRetry[] = "retry";  // (an Aborted that never leaves the backend)
constexpr size_t kMaxScanPerPage = 20000;
constexpr size_t kScanBatch = 256;

// Walks the directories of one or more paths of a container in one round trip. ARGV: the key
// prefix, then per path: the root's id, the number of components, the components. Returns
// per path {status, parent id, chain, entry}: status 0 found, 1 no such entry (its parent
// exists), 2 a parent is missing, 3 a parent is not a directory (then a fifth element: which
// component). `chain` is a flat list of (key, version, type, id) of every directory walked,
// for the commit's checks.
constexpr char kResolveScript[] = R"lua(
local pre = ARGV[1]
local out = {}
local p = 2
while p <= #ARGV do
  local id = ARGV[p]
  local last = p + 1 + tonumber(ARGV[p + 1])
  local chain = {}
  local res
  for c = p + 2, last - 1 do
    local key = pre .. 'e:' .. id .. ':' .. ARGV[c]
    local f = redis.call('HMGET', key, 'v', 't', 'i')
    if not f[1] then res = {2, id, chain, {}} break end
    if f[2] ~= 'd' and f[2] ~= 's' then res = {3, id, chain, {}, c - p - 1} break end
    chain[#chain + 1] = key
    chain[#chain + 1] = f[1]
    chain[#chain + 1] = f[2]
    chain[#chain + 1] = f[3]
    id = f[3]
  end
  if not res then
    local all = redis.call('HGETALL', pre .. 'e:' .. id .. ':' .. ARGV[last])
    if #all == 0 then res = {1, id, chain, {}} else res = {0, id, chain, all} end
  end
  out[#out + 1] = res
  p = last + 1
end
return out
)lua";

// Applies a change if everything it read is unchanged. KEYS[1] is the container's version
// counter; ARGV: the checks ("v" key-index version: the entry's version is this, "" for
// absent; "e" key-index prefix: the directory whose index buckets are prefix0..prefix15 is
// empty), then the operations ("h" replace a hash,
// "u" update fields, "d" delete a key, "za"/"zr" add to / remove from an index).
// Returns {1, new version} or {0, number of the check that failed}.
constexpr char kCommitScript[] = R"lua(
local p = 1
local nchecks = tonumber(ARGV[p]); p = p + 1
for c = 1, nchecks do
  local k = KEYS[tonumber(ARGV[p])]
  local kind = ARGV[p + 1]
  local val = ARGV[p + 2]
  p = p + 3
  if kind == 'v' then
    local v = redis.call('HGET', k, 'v')
    if (v or '') ~= val then return {0, c} end
  elseif kind == 'e' then
    for b = 0, 15 do
      if redis.call('ZCARD', val .. b) > 0 then return {0, c} end
    end
  end
end
local ver = redis.call('INCR', KEYS[1])
local nops = tonumber(ARGV[p]); p = p + 1
for o = 1, nops do
  local kind = ARGV[p]
  local k = KEYS[tonumber(ARGV[p + 1])]
  p = p + 2
  if kind == 'h' or kind == 'u' then
    local nf = tonumber(ARGV[p]); p = p + 1
    if kind == 'h' then redis.call('DEL', k) end
    local args = {'v', tostring(ver)}
    for f = 1, nf do
      args[#args + 1] = ARGV[p]
      args[#args + 1] = ARGV[p + 1]
      p = p + 2
    end
    redis.call('HSET', k, unpack(args))
  elseif kind == 'd' then
    redis.call('DEL', k)
  elseif kind == 'za' then
    redis.call('ZADD', k, 0, ARGV[p]); p = p + 1
  elseif kind == 'zr' then
    redis.call('ZREM', k, ARGV[p]); p = p + 1
  end
end
return {1, ver}
)lua";

// A page of a directory's names from each of its index buckets: ARGV[1] the buckets' key
// prefix, ARGV[2] where to start (a ZRANGEBYLEX bound), ARGV[3] at most this many from each.
// One array per bucket; the daemon merges them (in byte order: Lua's comparisons follow the
// server's locale).
constexpr char kNamesScript[] = R"lua(
local out = {}
for b = 0, 15 do
  out[b + 1] = redis.call('ZRANGEBYLEX', ARGV[1] .. b, ARGV[2], '+', 'LIMIT', 0, tonumber(ARGV[3]))
end
return out
)lua";

// A directory's index is split over this many sorted sets by a stable hash of the name, so
// that a table of millions of items is not one giant key (the scripts above count to 15).
constexpr uint32_t kIndexBuckets = 16;

// A put_item without a condition, in one step: walks the path like the resolve script, then
// gives the item its new attributes and times, or creates it (and its index entry). KEYS[1]:
// the container's version counter. ARGV: prefix, the id for a new item, its meta, the times
// ("msecs mnsecs csecs cnsecs"), the encoded attributes, the name's index bucket, then the
// path as the resolve script takes it (root id, number of components, components).
// Returns {0, id, meta, version} replaced, {1, ...} created, {2} a parent is missing, {3, at}
// a parent is not a directory, {4} the parent is a stream, {5, type} it is not an item.
constexpr char kPutItemScript[] = R"lua(
local pre = ARGV[1]
local id = ARGV[7]
local n = #ARGV
local ptype = 'd'
for c = 9, n - 1 do
  local f = redis.call('HMGET', pre .. 'e:' .. id .. ':' .. ARGV[c], 't', 'i')
  if not f[1] then return {2} end
  if f[1] ~= 'd' and f[1] ~= 's' then return {3, c - 8} end
  ptype = f[1]
  id = f[2]
end
if ptype ~= 'd' then return {4} end
local key = pre .. 'e:' .. id .. ':' .. ARGV[n]
local f = redis.call('HMGET', key, 't', 'i', 'm')
if f[1] and f[1] ~= 'f' then return {5, f[1]} end
local ver = redis.call('INCR', KEYS[1])
if f[1] then
  local m = {}
  for w in string.gmatch(f[3], '%S+') do m[#m + 1] = w end
  local meta = m[1] .. ' ' .. m[2] .. ' ' .. m[3] .. ' ' .. ARGV[4] .. ' ' .. m[8]
  redis.call('HSET', key, 'v', ver, 'm', meta, 'a', ARGV[5])
  return {0, f[2], meta, ver}
end
redis.call('HSET', key, 'v', ver, 't', 'f', 'i', ARGV[2], 'm', ARGV[3], 'a', ARGV[5], 'b', '')
redis.call('ZADD', pre .. 'd:' .. id .. ':' .. ARGV[6], 0, ARGV[n])
return {1, ARGV[2], ARGV[3], ver}
)lua";

// Appends records to shards with dense sequence numbers, if the stream is the one that was
// resolved. KEYS[1]: the stream's entry; ARGV: its version, the key prefix, now (us), the
// count, then per record: shard id, partition key, client info, data. Arrival times never
// decrease along a shard. Returns the sequence numbers (and arrival, us) or -1.
constexpr char kPutRecordsScript[] = R"lua(
if redis.call('HGET', KEYS[1], 'v') ~= ARGV[1] then return -1 end
local pre = ARGV[2]
local now = tonumber(ARGV[3])
local n = tonumber(ARGV[4])
local out = {}
local p = 5
for r = 1, n do
  local sid = ARGV[p]
  local q = pre .. 'q:' .. sid
  local seq = redis.call('HINCRBY', q, 'last', 1)
  local lt = tonumber(redis.call('HGET', q, 'lt') or '0')
  if now > lt then lt = now end
  local lts = string.format('%.0f', lt)
  redis.call('HSET', q, 'lt', lts)
  redis.call('XADD', pre .. 's:' .. sid, seq .. '-0', 't', lts, 'k', ARGV[p + 1], 'c', ARGV[p + 2], 'd', ARGV[p + 3])
  out[#out + 1] = seq
  out[#out + 1] = lts
  p = p + 4
end
return out
)lua";

// The first sequence number in [lo, hi) whose record arrived at or after ARGV[1] (us), by
// binary search (arrival never decreases along a shard); hi if none.
constexpr char kSeekTimeScript[] = R"lua(
local t = tonumber(ARGV[1])
local lo = tonumber(ARGV[2])
local hi = tonumber(ARGV[3])
while lo < hi do
  local mid = math.floor((lo + hi) / 2)
  local id = string.format('%.0f', mid) .. '-0'
  local r = redis.call('XRANGE', KEYS[1], id, id)
  local a = -1
  if #r > 0 then
    local f = r[1][2]
    for i = 1, #f, 2 do
      if f[i] == 't' then a = tonumber(f[i + 1]) end
    end
  end
  if a >= t then hi = mid else lo = mid + 1 end
end
return string.format('%.0f', lo)
)lua";

char TypeCode(ObjectType t) {
    switch (t) {
        case ObjectType::kObject: return 'f';
        case ObjectType::kDirectory: return 'd';
        case ObjectType::kStream: return 's';
        case ObjectType::kSymlink: return 'l';
        case ObjectType::kShard: return 'h';
    }
    return 'f';
}

std::optional<ObjectType> TypeOf(std::string_view code) {
    if (code == "f") return ObjectType::kObject;
    if (code == "d") return ObjectType::kDirectory;
    if (code == "s") return ObjectType::kStream;
    if (code == "l") return ObjectType::kSymlink;
    if (code == "h") return ObjectType::kShard;
    return std::nullopt;
}

uint64_t ToU64(std::string_view s) {
    uint64_t v = 0;
    return absl::SimpleAtoi(absl::string_view(s.data(), s.size()), &v) ? v : 0;
}

absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

absl::Status NotDirectory(const Path& p) {
    return absl::FailedPreconditionError(absl::StrFormat("%s is not a directory", p.str()));
}

absl::Status Damaged(std::string_view what) {
    return absl::DataLossError(absl::StrFormat("redis backend: %s is not what this backend wrote", what));
}

// An entry as stored: its hash fields, and what they mean.
struct Entry {
    std::map<std::string, std::string> fields;  // everything but "v"
    std::string key;
    std::string version;
    ObjectInfo info;
    uint32_t shard_count = 0;
    int64_t retention_secs = 0;

    bool is_dir_like() const { return info.type == ObjectType::kDirectory || info.type == ObjectType::kStream; }
    const std::string& Field(const std::string& name) const {
        static const std::string kEmpty;
        auto it = fields.find(name);
        return it == fields.end() ? kEmpty : it->second;
    }
};

std::string EncodeMeta(const ObjectInfo& i) {
    return absl::StrCat(i.mode, " ", i.uid, " ", i.gid, " ", i.mtime.secs, " ", i.mtime.nsecs, " ", i.ctime.secs, " ",
                        i.ctime.nsecs, " ", i.size);
}

// EncodeMeta's fields back into `info`; false when they are not eight numbers.
bool DecodeMeta(std::string_view meta, ObjectInfo* info) {
    std::vector<absl::string_view> m = absl::StrSplit(AV(meta), ' ');
    int64_t n[8] = {};
    if (m.size() != 8) {
        return false;
    }
    for (int k = 0; k < 8; ++k) {
        if (!absl::SimpleAtoi(m[k], &n[k])) {
            return false;
        }
    }
    info->mode = static_cast<uint32_t>(n[0]);
    info->uid = static_cast<uint32_t>(n[1]);
    info->gid = static_cast<uint32_t>(n[2]);
    info->mtime = Timestamp{n[3], static_cast<int32_t>(n[4])};
    info->ctime = Timestamp{n[5], static_cast<int32_t>(n[6])};
    info->size = static_cast<uint64_t>(n[7]);
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
    } else if (info.type == ObjectType::kStream) {
        std::vector<std::string> x = absl::StrSplit(e.Field("x"), ' ');
        if (x.size() != 2 || !absl::SimpleAtoi(x[0], &e.shard_count) || !absl::SimpleAtoi(x[1], &e.retention_secs)) {
            return Damaged(e.key);
        }
    }
    return e;
}

// One optimistic transaction: what it read (checked unchanged at commit) and what it writes.
class Txn {
public:
    explicit Txn(std::string version_key) { keys_.push_back(std::move(version_key)); }

    int Key(const std::string& k) {
        for (size_t i = 0; i < keys_.size(); ++i) {
            if (keys_[i] == k) {
                return static_cast<int>(i) + 1;
            }
        }
        keys_.push_back(k);
        return static_cast<int>(keys_.size());
    }
    // The entry `key` still has `version` ("" = still absent).
    int CheckVersion(const std::string& key, const std::string& version) {
        checks_.insert(checks_.end(), {std::to_string(Key(key)), "v", version});
        return ++nchecks_;
    }
    // The directory whose index buckets start with `index_prefix` is empty.
    int CheckEmpty(const std::string& index_prefix) {
        checks_.insert(checks_.end(), {"1", "e", index_prefix});
        return ++nchecks_;
    }
    void Replace(const std::string& key, const std::map<std::string, std::string>& fields) { Hash("h", key, fields); }
    void Update(const std::string& key, const std::map<std::string, std::string>& fields) { Hash("u", key, fields); }
    void Del(const std::string& key) {
        ops_.insert(ops_.end(), {"d", std::to_string(Key(key))});
        ++nops_;
    }
    void ZAdd(const std::string& index, const std::string& member) {
        ops_.insert(ops_.end(), {"za", std::to_string(Key(index)), member});
        ++nops_;
    }
    void ZRem(const std::string& index, const std::string& member) {
        ops_.insert(ops_.end(), {"zr", std::to_string(Key(index)), member});
        ++nops_;
    }

    std::vector<std::string> Args() const {
        std::vector<std::string> out = {std::to_string(nchecks_)};
        out.insert(out.end(), checks_.begin(), checks_.end());
        out.push_back(std::to_string(nops_));
        out.insert(out.end(), ops_.begin(), ops_.end());
        return out;
    }
    const std::vector<std::string>& keys() const { return keys_; }

private:
    void Hash(const char* kind, const std::string& key, const std::map<std::string, std::string>& fields) {
        ops_.insert(ops_.end(), {kind, std::to_string(Key(key)), std::to_string(fields.size())});
        for (const auto& [f, v] : fields) {
            ops_.push_back(f);
            ops_.push_back(v);
        }
        ++nops_;
    }

    std::vector<std::string> keys_;
    std::vector<std::string> checks_, ops_;
    int nchecks_ = 0, nops_ = 0;
};

}  // namespace

class RedisBackend::Store {
public:
    explicit Store(RedisBackendOptions o) : options_(std::move(o)) {}

    absl::Status Open() {
        auto c = redis::RedisClient::Connect(options_.client);
        if (!c.ok()) {
            return c.status();
        }
        redis_ = std::move(*c);
        for (const std::string& name : options_.containers) {
            if (absl::Status s = Path::ValidateComponent(name); !s.ok()) {
                return absl::InvalidArgumentError(absl::StrFormat("container \"%s\": %s", name, s.message()));
            }
            // The container's root directory: created once, by whichever daemon comes first.
            std::string tag = Tag(name);
            auto id = NewIds(1);
            if (!id.ok()) {
                return id.status();
            }
            ObjectInfo root;
            root.type = ObjectType::kDirectory;
            root.mode = 0755;
            root.mtime = root.ctime = Now();
            auto r = Call({"HSETNX", tag + "root", "i", std::to_string(*id)}, tag, true);
            if (!r.ok()) {
                return r.status();
            }
            auto got = Call({"HGET", tag + "root", "i"}, tag, true);
            if (!got.ok()) {
                return got.status();
            }
            uint64_t root_id = ToU64(got->str);
            if (root_id == 0) {
                return Damaged(tag + "root");
            }
            if (r->integer == 1) {
                if (auto m = Call({"HSET", tag + "root", "m", EncodeMeta(root)}, tag, true); !m.ok()) {
                    return m.status();
                }
            }
            roots_[name] = root_id;
        }
        for (auto [script, sha] : {std::pair{kResolveScript, &resolve_sha_}, std::pair{kCommitScript, &commit_sha_},
                                   std::pair{kPutItemScript, &put_item_sha_}, std::pair{kNamesScript, &names_sha_},
                                   std::pair{kPutRecordsScript, &records_sha_}, std::pair{kSeekTimeScript, &seek_sha_}}) {
            auto r = Call({"SCRIPT", "LOAD", script}, "", true);
            if (!r.ok()) {
                return r.status();
            }
            if (r->is_error()) {
                return absl::FailedPreconditionError(absl::StrCat("redis: SCRIPT LOAD: ", r->str));
            }
            *sha = r->str;
        }
        return absl::OkStatus();
    }

    // ---- plumbing ----

    Timestamp Now() const { return options_.clock ? options_.clock() : Timestamp::Now(); }
    std::string Tag(std::string_view container) const {
        return absl::StrCat("{", options_.key_prefix, ":", AV(container), "}:");
    }
    static std::string EntryKey(const std::string& tag, uint64_t parent, std::string_view name) {
        return absl::StrCat(tag, "e:", parent, ":", AV(name));
    }
    // The index bucket that holds `name` in directory `dir`, and the prefix of all of them.
    static uint32_t IndexBucket(std::string_view name) { return ShardForPartitionKey(name, kIndexBuckets); }
    static std::string IndexKey(const std::string& tag, uint64_t dir, std::string_view name) {
        return absl::StrCat(tag, "d:", dir, ":", IndexBucket(name));
    }
    static std::string IndexPrefix(const std::string& tag, uint64_t dir) { return absl::StrCat(tag, "d:", dir, ":"); }
    static std::string ChunkKey(const std::string& tag, uint64_t data, uint64_t n) {
        return absl::StrCat(tag, "c:", data, ":", n);
    }

    // A write (not safe to repeat) waits for the replicas the options ask for.
    CommandOptions Options(std::string_view route, bool safe) const {
        CommandOptions o{.key = route, .safe_to_retry = safe};
        if (!safe && options_.replicas > 0) {
            o.replicas = options_.replicas;
            o.replica_timeout = options_.replica_timeout;
        }
        return o;
    }
    static absl::Status Prefixed(const absl::Status& s) {
        return absl::Status(s.code(), absl::StrCat("redis: ", s.message()));
    }

    absl::StatusOr<Reply> Call(std::vector<std::string> argv, const std::string& route, bool safe) {
        auto r = redis_->Call(std::move(argv), Options(route, safe));
        if (!r.ok()) {
            return Prefixed(r.status());
        }
        return r;
    }

    // A script by its digest; loaded again where a node does not know it (a new primary).
    absl::StatusOr<Reply> Script(const char* source, const std::string& sha, const std::vector<std::string>& keys,
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

    // `count` consecutive ids, unique in the backend across every daemon: taken from ranges
    // reserved on the server a thousand at a time, so that a create costs no round trip of
    // its own (ids left in a range when the daemon stops are never used).
    absl::StatusOr<uint64_t> NewIds(uint64_t count) {
        if (std::optional<uint64_t> first = TakeIds(count)) {
            return *first;
        }
        uint64_t reserve = std::max<uint64_t>(count, kIdRange);
        std::string key = options_.key_prefix + ":ids";
        auto r = Call({"INCRBY", key, std::to_string(reserve)}, key, false);
        if (!r.ok()) {
            return r.status();
        }
        if (r->type != Reply::Type::kInteger) {
            return absl::InternalError(absl::StrCat("redis: INCRBY: ", r->ToString()));
        }
        uint64_t first = static_cast<uint64_t>(r->integer) - reserve + 1;
        absl::MutexLock lock(&ids_mu_);
        // The rest of the new range replaces what is left of the old one (another thread may
        // have reserved meanwhile: either range is fine, each id is handed out once).
        ids_next_ = first + count;
        ids_end_ = first + reserve;
        return first;
    }

    // The same without a round trip, if the range reserved has them.
    std::optional<uint64_t> TakeIds(uint64_t count) {
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

    // An id taken for an item that turned out to exist: the next new one gets it.
    void GiveBackId(uint64_t id) {
        absl::MutexLock lock(&ids_mu_);
        given_back_.push_back(id);
    }

    // Where a path is: its container's tag, its parent's id, the directories walked, and
    // the entry if there is one.
    struct Resolved {
        std::string tag;
        uint64_t parent = 0;
        ObjectType parent_type = ObjectType::kDirectory;
        std::vector<std::pair<std::string, std::string>> chain;  // (key, version) of each directory
        std::vector<uint64_t> chain_ids;
        std::optional<Entry> entry;
        std::string key;  // the entry's key (whether or not it exists)

        std::string version() const { return entry ? entry->version : std::string(); }
        void CheckChain(Txn& t) const {
            for (const auto& [k, v] : chain) {
                t.CheckVersion(k, v);
            }
        }
    };

    // The script's arguments for `path`, with the parts of `out` known before asking.
    absl::Status ResolveArgs(const Path& path, Resolved* out, std::vector<std::string>* args) {
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

    // The `at`th directory of `path` (1: the first under the container) is not one.
    static absl::Status NotADirectory(const Path& path, int64_t at) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s: %s is not a directory", path.str(), path.Prefix(static_cast<size_t>(at) + 1)));
    }
    static absl::Status StreamParent(const Path& path) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s: %s is a stream; its shards are fixed at creation", path.str(), path.Parent().str()));
    }
    static absl::Status NotAnItem(const Path& path, ObjectType type) {
        return absl::FailedPreconditionError(
            absl::StrFormat("%s is a %s, not an item", path.str(), ObjectTypeName(type)));
    }

    absl::StatusOr<Resolved> ParseResolved(const Path& path, Resolved out, const Reply& reply) {
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
            return NotADirectory(path, r->elements.size() > 4 ? r->elements[4].integer : 1);
        }
        if (status == 0) {
            auto e = DecodeEntry(out.key, r->elements[3].elements);
            if (!e.ok()) {
                return e.status();
            }
            out.entry = std::move(*e);
        }
        return out;
    }

    absl::StatusOr<Resolved> Resolve(const Path& path) {
        Resolved out;
        std::vector<std::string> args;
        if (absl::Status s = ResolveArgs(path, &out, &args); !s.ok()) {
            return s;
        }
        args.insert(args.begin(), out.tag);
        auto r = Script(kResolveScript, resolve_sha_, {out.tag + "ver"}, args, true);
        if (!r.ok()) {
            return r.status();
        }
        if (r->type != Reply::Type::kArray || r->elements.size() != 1) {
            return Damaged("a path resolution");
        }
        return ParseResolved(path, std::move(out), r->elements[0]);
    }

    // A script by its digest, without a thread waiting: `done` runs on the thread that runs
    // the calling thread's lane (or on the client's own thread), with error replies turned
    // into statuses. `args` is what follows the digest (numkeys, keys, arguments), kept for a
    // node that does not know the script (NOSCRIPT) and gets it whole.
    using ReplyDone = absl::AnyInvocable<void(absl::StatusOr<Reply>) &&>;
    using ScriptArgs = std::shared_ptr<const std::vector<std::string>>;
    void ScriptAsync(const char* source, const std::string& sha, std::string_view route, bool safe, ScriptArgs args,
                     ReplyDone done, bool by_digest = true) {
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

    // Resolves asked for on one thread between two flushes (a daemon worker's turn): sent as
    // one script per container, so that Redis runs one script for many requests.
    struct ResolveBatch {
        struct Ask {
            Path path;
            Resolved out;
            absl::AnyInvocable<void(absl::StatusOr<Resolved>) &&> done;
        };
        struct Container {
            std::vector<std::string> args;  // the script's: numkeys, the version key, the prefix, paths
            std::vector<Ask> asks;
        };
        std::map<std::string, Container> by_tag;
    };

    // Resolve without a thread waiting (see ScriptAsync for where `done` runs). On a thread
    // with a batch (a worker's, see RedisBackend::JoinLoop) it waits in the batch for the
    // end of the turn.
    void ResolveAsync(const Path& path, absl::AnyInvocable<void(absl::StatusOr<Resolved>) &&> done) {
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

    void FlushResolves(ResolveBatch& batch) {
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

    // This thread's batch for this store, if it has one.
    ResolveBatch* BatchHere() {
        for (const auto& [store, batch] : tls_batches_) {
            if (store == this) {
                return batch;
            }
        }
        return nullptr;
    }
    static thread_local std::vector<std::pair<const Store*, ResolveBatch*>> tls_batches_;

    // The entry resolved at `path`, in place (no copy), or null when there is none.
    static Entry* Existing(Resolved& r) { return r.entry ? &*r.entry : nullptr; }

    // Commits `t`: true if it applied, false on a conflict (read again and retry).
    absl::StatusOr<bool> Commit(const Txn& t, int* failed_check = nullptr) {
        auto r = Script(kCommitScript, commit_sha_, t.keys(), t.Args(), false);
        if (!r.ok()) {
            return r.status();
        }
        return CommitAnswer(*r, failed_check);
    }
    static absl::StatusOr<bool> CommitAnswer(const Reply& r, int* failed_check) {
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

    // Commit without a thread waiting (see ScriptAsync for where `done` runs).
    void CommitAsync(const Txn& t, absl::AnyInvocable<void(absl::StatusOr<bool>) &&> done) {
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

    // An attempt that lost a race (a commit whose reads changed, bytes replaced while read)
    // says so with Retry(); Retrying runs it again, backing off, up to kMaxAttempts times.
    static absl::Status Retry() { return absl::AbortedError(kRetry); }
    static bool IsRetry(const absl::Status& s) { return absl::IsAborted(s) && s.message() == kRetry; }
    static bool IsConflicted(const absl::Status& s) { return absl::IsAborted(s) && s.message() != kRetry; }
    template <typename T>
    static bool IsConflicted(const absl::StatusOr<T>& s) {
        return IsConflicted(s.status());
    }

    template <typename Attempt>
    static auto Retrying(const Path& path, Attempt&& attempt) -> decltype(attempt()) {
        for (int i = 0; i < kMaxAttempts; ++i) {
            auto r = attempt();
            if (!IsRetry(StatusOf(r))) {
                return r;
            }
            if (i > 8) {
                std::this_thread::sleep_for(std::chrono::microseconds(50 * std::min(i, 40)));
            }
        }
        return absl::AbortedError(
            absl::StrFormat("%s: changed by others %d times in a row; try again", path.str(), kMaxAttempts));
    }
    static const absl::Status& StatusOf(const absl::Status& s) { return s; }
    template <typename T>
    static absl::Status StatusOf(const absl::StatusOr<T>& s) {
        return s.status();
    }

    absl::Status CheckWritableParent(const Path& path, const Resolved& r) {
        if (r.parent_type != ObjectType::kDirectory) {
            return StreamParent(path);
        }
        return absl::OkStatus();
    }

    absl::Status CheckCondition(const Path& path, const std::string& condition, const Entry* e) {
        if (!e || e->info.type != ObjectType::kShard) {
            return zerohop::CheckCondition(path, condition, e ? std::string_view(e->Field("a")) : std::string_view(),
                                           e ? &e->info : nullptr);
        }
        auto info = InfoOf(*e);
        if (!info.ok()) {
            return info.status();
        }
        return zerohop::CheckCondition(path, condition, e->Field("a"), &*info);
    }

    // A shard's info carries its records' count and last sequence number.
    absl::StatusOr<ObjectInfo> InfoOf(const Entry& e) {
        ObjectInfo info = e.info;
        if (info.type == ObjectType::kShard) {
            std::string tag = e.key.substr(0, e.key.find("}:") + 2);
            auto q = Call({"HMGET", absl::StrCat(tag, "q:", info.id), "last", "lt"}, tag, true);
            if (!q.ok()) {
                return q.status();
            }
            if (q->type == Reply::Type::kArray && q->elements.size() == 2) {
                info.last_sequence = ToU64(q->elements[0].str);
                info.size = info.last_sequence;
                uint64_t lt = ToU64(q->elements[1].str);
                if (lt != 0) {
                    info.mtime = Timestamp::FromNanos(static_cast<int64_t>(lt) * 1000);
                }
            }
        }
        return info;
    }

    std::map<std::string, std::string> NewFields(ObjectType type, uint64_t id, const ObjectInfo& info) {
        return {{"t", std::string(1, TypeCode(type))}, {"i", std::to_string(id)}, {"m", EncodeMeta(info)}};
    }

    ObjectInfo NewInfo(ObjectType type, uint64_t id, uint32_t mode, const Caller& caller) {
        ObjectInfo info;
        info.type = type;
        info.id = id;
        info.mode = mode & 07777;
        info.uid = caller.uid;
        info.gid = caller.gid;
        info.mtime = info.ctime = Now();
        return info;
    }

    // Creates a fresh entry (mkdir, symlink): fails if anything is there.
    absl::StatusOr<ObjectInfo> Create(const Path& path, ObjectType type, uint32_t mode, const Caller& caller,
                                      const std::function<void(ObjectInfo*, std::map<std::string, std::string>*)>& fill) {
        return Retrying(path, [&]() -> absl::StatusOr<ObjectInfo> {
            auto r = Resolve(path);
            if (!r.ok()) {
                return r.status();
            }
            if (absl::Status s = CheckWritableParent(path, *r); !s.ok()) {
                return s;
            }
            if (r->entry) {
                return absl::AlreadyExistsError(absl::StrFormat("%s already exists", path.str()));
            }
            auto id = NewIds(1);
            if (!id.ok()) {
                return id.status();
            }
            ObjectInfo info = NewInfo(type, *id, mode, caller);
            std::map<std::string, std::string> extra;
            if (fill) {
                fill(&info, &extra);
            }
            auto fields = NewFields(type, *id, info);
            fields.insert(extra.begin(), extra.end());
            Txn t(r->tag + "ver");
            r->CheckChain(t);
            t.CheckVersion(r->key, "");
            t.Replace(r->key, fields);
            t.ZAdd(IndexKey(r->tag, r->parent, path.name()), std::string(path.name()));
            auto ok = Commit(t);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                return info;
            }
            return Retry();
        });
    }

    // ---- namespace ----

    absl::StatusOr<std::vector<std::string>> ListContainers() {
        std::vector<std::string> out;
        for (const auto& [name, id] : roots_) {
            out.push_back(name);
        }
        return out;  // roots_ is ordered
    }

    absl::StatusOr<ObjectInfo> ContainerInfo(std::string_view container) {
        auto root = roots_.find(std::string(container));
        if (root == roots_.end()) {
            return absl::NotFoundError(absl::StrFormat("/%s: container \"%s\" is not in this backend", container,
                                                       container));
        }
        std::string tag = Tag(container);
        auto m = Call({"HGET", tag + "root", "m"}, tag, true);
        if (!m.ok()) {
            return m.status();
        }
        ObjectInfo info;
        info.type = ObjectType::kDirectory;
        info.id = root->second;
        info.mode = 0755;
        std::vector<std::string> f = absl::StrSplit(m->str, ' ');
        int64_t n[8] = {};
        if (f.size() == 8) {
            for (int k = 0; k < 8; ++k) {
                (void)absl::SimpleAtoi(f[k], &n[k]);
            }
            info.mode = static_cast<uint32_t>(n[0]);
            info.mtime = Timestamp{n[3], static_cast<int32_t>(n[4])};
            info.ctime = Timestamp{n[5], static_cast<int32_t>(n[6])};
        }
        return info;
    }

    absl::StatusOr<ObjectInfo> Stat(const Path& path) {
        if (path.is_root()) {
            ObjectInfo info;
            info.type = ObjectType::kDirectory;
            info.mode = 0755;
            return info;
        }
        if (path.depth() == 1) {
            return ContainerInfo(path.container());
        }
        auto r = Resolve(path);
        if (!r.ok()) {
            return r.status();
        }
        Entry* e = Existing(*r);
        if (e == nullptr) {
            return PathNotFoundError(path.str());
        }
        return InfoOf(*e);
    }

    // The entries of `names` in directory `dir`, fetched together; absent ones (removed
    // since) are nullopt.
    absl::StatusOr<std::vector<std::optional<Entry>>> FetchEntries(const std::string& tag, uint64_t dir,
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
            auto e = DecodeEntry(EntryKey(tag, dir, names[i]), wait.replies[i]->elements);
            if (!e.ok()) {
                return e.status();
            }
            out[i] = std::move(*e);
        }
        return out;
    }

    // Names of a directory in order after `after` (exclusive; "" = from the start), at most
    // `count`, and whether more may follow. One script reads a little more than its share
    // from every index bucket; the merge keeps only names below the first bucket that may
    // have more (so a page can be shorter than `count` with more to come).
    struct NamesPage {
        std::vector<std::string> names;
        bool more = false;
    };
    absl::StatusOr<NamesPage> Names(const std::string& tag, uint64_t dir, const std::string& after,
                                    const std::string& prefix, size_t count) {
        std::string from = after.empty() ? (prefix.empty() ? "-" : "[" + prefix) : "(" + after;
        if (!after.empty() && !prefix.empty() && after < prefix) {
            from = "[" + prefix;
        }
        size_t per = (count + kIndexBuckets - 1) / kIndexBuckets * 2 + 4;
        auto r = Script(kNamesScript, names_sha_, {tag + "ver"}, {IndexPrefix(tag, dir), from, std::to_string(per)},
                        true);
        if (!r.ok()) {
            return r.status();
        }
        if (r->type != Reply::Type::kArray || r->elements.size() != kIndexBuckets) {
            return Damaged("a directory's index");
        }
        std::vector<std::string> all;
        std::optional<std::string> cutoff;  // the smallest last name of a bucket read in full
        for (Reply& bucket : r->elements) {
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

    // The id of the directory at `path` (a container root or a directory; a stream too
    // unless `table`, which asks for a directory of items).
    absl::StatusOr<uint64_t> DirectoryId(const Path& path, bool table) {
        if (path.depth() == 1) {
            auto info = ContainerInfo(path.container());
            if (!info.ok()) {
                return info.status();
            }
            return info->id;
        }
        auto r = Resolve(path);
        if (!r.ok()) {
            return r.status();
        }
        Entry* e = Existing(*r);
        if (e == nullptr) {
            return PathNotFoundError(path.str());
        }
        if (table && e->info.type != ObjectType::kDirectory) {
            return absl::FailedPreconditionError(absl::StrFormat("%s is not a table (a directory)", path.str()));
        }
        if (!e->is_dir_like()) {
            return NotDirectory(path);
        }
        return e->info.id;
    }

    absl::StatusOr<ListResult> List(const ListRequest& req) {
        ListResult out;
        uint32_t limit = std::clamp<uint32_t>(req.limit, 1, kMaxListLimit);
        if (req.path.is_root()) {
            for (const auto& [n, id] : roots_) {
                if (n.compare(0, req.prefix.size(), req.prefix) != 0 || (!req.marker.empty() && n <= req.marker)) {
                    continue;
                }
                if (out.entries.size() == limit) {
                    out.truncated = true;
                    break;
                }
                auto info = ContainerInfo(n);
                if (!info.ok()) {
                    return info.status();
                }
                out.entries.push_back(DirEntry{n, *info, {}});
                out.next_marker = n;
            }
            return out;
        }
        std::string tag = Tag(req.path.container());
        auto dir_id = DirectoryId(req.path, /*table=*/false);
        if (!dir_id.ok()) {
            return dir_id.status();
        }
        uint64_t dir = *dir_id;
        std::string after = req.marker;
        while (true) {  // (with `limit` entries, one more name decides whether it is truncated)
            size_t want = limit - out.entries.size() + 1;
            auto page = Names(tag, dir, after, req.prefix, want);
            if (!page.ok()) {
                return page.status();
            }
            const std::vector<std::string>* names = &page->names;
            auto entries = FetchEntries(tag, dir, *names);
            if (!entries.ok()) {
                return entries.status();
            }
            for (size_t i = 0; i < names->size(); ++i) {
                after = (*names)[i];
                if (!(*entries)[i]) {
                    continue;  // removed since the names were read
                }
                if (out.entries.size() == limit) {
                    out.truncated = true;
                    return out;
                }
                DirEntry de;
                de.name = (*names)[i];
                auto info = InfoOf(*(*entries)[i]);
                if (!info.ok()) {
                    return info.status();
                }
                de.info = *info;
                if (req.with_attributes) {
                    auto attrs = DecodeAttributes((*entries)[i]->Field("a"));
                    if (!attrs.ok()) {
                        return attrs.status();
                    }
                    de.attributes = std::move(*attrs);
                }
                out.next_marker = de.name;
                out.entries.push_back(std::move(de));
            }
            if (!page->more) {
                break;
            }
        }
        return out;
    }

    absl::StatusOr<ObjectInfo> Mkdir(const MkdirRequest& req) {
        if (req.path.depth() == 1) {
            if (roots_.contains(std::string(req.path.container()))) {
                return absl::AlreadyExistsError(absl::StrFormat("%s: container exists", req.path.str()));
            }
            return absl::NotFoundError(absl::StrFormat("%s: container \"%s\" is not in this backend", req.path.str(),
                                                       req.path.container()));
        }
        return Create(req.path, ObjectType::kDirectory, req.mode, req.caller, nullptr);
    }

    absl::Status Rmdir(const Path& path) {
        if (path.depth() < 2) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s: containers are configured in the daemon, not removed", path.str()));
        }
        return Retrying(path, [&]() -> absl::Status {
            auto r = Resolve(path);
            if (!r.ok()) {
                return r.status();
            }
            Entry* e = Existing(*r);
            if (e == nullptr) {
                return PathNotFoundError(path.str());
            }
            if (e->info.type == ObjectType::kStream) {
                return absl::FailedPreconditionError(
                    absl::StrFormat("%s is a stream; remove it with delete_stream", path.str()));
            }
            if (e->info.type != ObjectType::kDirectory) {
                return NotDirectory(path);
            }
            Txn t(r->tag + "ver");
            r->CheckChain(t);
            t.CheckVersion(r->key, e->version);
            int empty = t.CheckEmpty(IndexPrefix(r->tag, e->info.id));
            t.Del(r->key);
            t.ZRem(IndexKey(r->tag, r->parent, path.name()), std::string(path.name()));
            int failed = 0;
            auto ok = Commit(t, &failed);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                return absl::OkStatus();
            }
            if (failed == empty) {
                return absl::FailedPreconditionError(absl::StrFormat("%s: directory not empty", path.str()));
            }
            return Retry();
        });
    }

    absl::Status Rename(const RenameRequest& req) {
        const Path& from = req.from;
        const Path& to = req.to;
        if (from.depth() < 2 || to.depth() < 2) {
            return absl::FailedPreconditionError(absl::StrFormat(
                "rename %s -> %s: containers are configured in the daemon, not renamed", from.str(), to.str()));
        }
        if (from.container() != to.container()) {
            return absl::Status(absl::StatusCode::kUnimplemented,
                                absl::StrFormat("rename %s -> %s: across containers", from.str(), to.str()));
        }
        if (from.Contains(to) && from != to) {
            return absl::InvalidArgumentError(
                absl::StrFormat("rename %s -> %s: cannot move a directory inside itself", from.str(), to.str()));
        }
        return Retrying(from, [&]() -> absl::Status {
            auto src = Resolve(from);
            if (!src.ok()) {
                return src.status();
            }
            auto dst = Resolve(to);
            if (!dst.ok()) {
                return dst.status();
            }
            if (absl::Status s = CheckWritableParent(to, *dst); !s.ok()) {
                return s;
            }
            Entry* e = Existing(*src);
            if (e == nullptr) {
                return PathNotFoundError(from.str());
            }
            if (e->info.type == ObjectType::kShard) {
                return absl::FailedPreconditionError(
                    absl::StrFormat("%s is a stream shard; shards cannot move", from.str()));
            }
            if (from == to) {
                return absl::OkStatus();
            }
            if (e->is_dir_like() &&
                (dst->parent == e->info.id ||
                 std::find(dst->chain_ids.begin(), dst->chain_ids.end(), e->info.id) != dst->chain_ids.end())) {
                return absl::InvalidArgumentError(
                    absl::StrFormat("rename %s -> %s: cannot move a directory inside itself", from.str(), to.str()));
            }
            Txn t(src->tag + "ver");
            src->CheckChain(t);
            dst->CheckChain(t);
            t.CheckVersion(src->key, e->version);
            t.CheckVersion(dst->key, dst->version());
            std::string replaced_chunks;
            int dst_empty = -1;
            if (dst->entry) {
                const Entry& d = *dst->entry;
                if (req.no_replace) {
                    return absl::AlreadyExistsError(
                        absl::StrFormat("rename %s -> %s: destination exists", from.str(), to.str()));
                }
                if (d.info.id == e->info.id) {
                    return absl::OkStatus();
                }
                bool replaceable = d.is_dir_like()
                                       ? d.info.type == ObjectType::kDirectory && e->info.type == ObjectType::kDirectory
                                       : !e->is_dir_like();
                if (!replaceable) {
                    return absl::FailedPreconditionError(
                        absl::StrFormat("rename %s -> %s: cannot replace a %s with a %s", from.str(), to.str(),
                                        ObjectTypeName(d.info.type), ObjectTypeName(e->info.type)));
                }
                if (d.info.type == ObjectType::kDirectory) {
                    dst_empty = t.CheckEmpty(IndexPrefix(dst->tag, d.info.id));
                }
                replaced_chunks = d.Field("c");
            }
            Entry moved = *e;
            moved.info.ctime = Now();
            moved.fields["m"] = EncodeMeta(moved.info);
            t.Del(src->key);
            t.ZRem(IndexKey(src->tag, src->parent, from.name()), std::string(from.name()));
            t.Replace(dst->key, moved.fields);
            t.ZAdd(IndexKey(dst->tag, dst->parent, to.name()), std::string(to.name()));
            int failed = 0;
            auto ok = Commit(t, &failed);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                DropChunks(src->tag, replaced_chunks);
                return absl::OkStatus();
            }
            if (failed == dst_empty) {
                return absl::FailedPreconditionError(
                    absl::StrFormat("rename %s -> %s: destination directory not empty", from.str(), to.str()));
            }
            return Retry();
        });
    }

    absl::StatusOr<ObjectInfo> Symlink(const SymlinkRequest& req) {
        if (req.target.empty() || req.target.size() > kMaxSymlinkTargetBytes ||
            req.target.find('\0') != std::string::npos) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "%s: symlink target must be 1..%d bytes without NUL", req.path.str(), kMaxSymlinkTargetBytes));
        }
        return Create(req.path, ObjectType::kSymlink, 0777, req.caller,
                      [&](ObjectInfo* info, std::map<std::string, std::string>* extra) {
                          info->size = req.target.size();
                          info->symlink_target = req.target;
                          (*extra)["x"] = req.target;
                      });
    }

    absl::StatusOr<std::string> Readlink(const Path& path) {
        auto info = Stat(path);
        if (!info.ok()) {
            return info.status();
        }
        if (info->type != ObjectType::kSymlink) {
            return absl::InvalidArgumentError(absl::StrFormat("%s is not a symlink", path.str()));
        }
        return info->symlink_target;
    }

    absl::Status Delete(const DeleteRequest& req) {
        if (req.path.depth() < 2) {
            return absl::FailedPreconditionError(absl::StrFormat("%s is a directory; use rmdir", req.path.str()));
        }
        return Retrying(req.path, [&]() -> absl::Status {
            auto r = Resolve(req.path);
            if (!r.ok()) {
                return r.status();
            }
            Entry* e = Existing(*r);
            if (e == nullptr) {
                return PathNotFoundError(req.path.str());
            }
            switch (e->info.type) {
                case ObjectType::kDirectory:
                    return absl::FailedPreconditionError(
                        absl::StrFormat("%s is a directory; use rmdir", req.path.str()));
                case ObjectType::kStream:
                    return absl::FailedPreconditionError(
                        absl::StrFormat("%s is a stream; use delete_stream", req.path.str()));
                case ObjectType::kShard:
                    return absl::FailedPreconditionError(
                        absl::StrFormat("%s is a stream shard; delete the whole stream", req.path.str()));
                default: break;
            }
            if (absl::Status c = CheckCondition(req.path, req.condition, e); !c.ok()) {
                return c;
            }
            Txn t(r->tag + "ver");
            r->CheckChain(t);
            t.CheckVersion(r->key, e->version);
            t.Del(r->key);
            t.ZRem(IndexKey(r->tag, r->parent, req.path.name()), std::string(req.path.name()));
            auto ok = Commit(t);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                DropChunks(r->tag, e->Field("c"));
                return absl::OkStatus();
            }
            return Retry();
        });
    }

    absl::StatusOr<ObjectInfo> SetMetadata(const SetMetadataRequest& req) {
        if (absl::Status s = ValidateMetadata(req); !s.ok()) {
            return s;
        }
        return Retrying(req.path, [&]() -> absl::StatusOr<ObjectInfo> {
            auto r = Resolve(req.path);
            if (!r.ok()) {
                return r.status();
            }
            Entry* e = Existing(*r);
            if (e == nullptr) {
                return PathNotFoundError(req.path.str());
            }
            ApplyMetadata(req, Now(), &e->info);
            Txn t(r->tag + "ver");
            r->CheckChain(t);
            t.CheckVersion(r->key, e->version);
            t.Update(r->key, {{"m", EncodeMeta(e->info)}});
            auto ok = Commit(t);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                return InfoOf(*e);
            }
            return Retry();
        });
    }

    // ---- object bytes ----

    // "data-id count" of a chunked object, or nothing.
    static std::optional<std::pair<uint64_t, uint64_t>> Chunks(const std::string& manifest) {
        std::vector<std::string> f = absl::StrSplit(manifest, ' ');
        uint64_t id = 0, n = 0;
        if (f.size() != 2 || !absl::SimpleAtoi(f[0], &id) || !absl::SimpleAtoi(f[1], &n)) {
            return std::nullopt;
        }
        return std::pair{id, n};
    }

    void DropChunks(const std::string& tag, const std::string& manifest) {
        auto c = Chunks(manifest);
        if (!c) {
            return;
        }
        std::vector<std::string> argv = {"DEL"};
        for (uint64_t k = 0; k < c->second; ++k) {
            argv.push_back(ChunkKey(tag, c->first, k));
            if (argv.size() == 512 || k + 1 == c->second) {
                // Best effort: a chunk left behind takes space but is never read again.
                (void)Call(argv, tag, true);
                argv.resize(1);
            }
        }
    }

    // Stores `bytes` for a new version: inline ({"b": bytes}) or in chunks under a new data
    // id ({"c": manifest}), written before the entry that points at them commits.
    absl::StatusOr<std::map<std::string, std::string>> StoreBytes(const std::string& tag, std::string_view bytes) {
        if (bytes.size() <= options_.inline_max_bytes) {
            return std::map<std::string, std::string>{{"b", std::string(bytes)}};
        }
        auto id = NewIds(1);
        if (!id.ok()) {
            return id.status();
        }
        uint64_t n = 0;
        for (size_t off = 0; off < bytes.size(); off += options_.chunk_bytes, ++n) {
            auto r = Call({"SET", ChunkKey(tag, *id, n), std::string(bytes.substr(off, options_.chunk_bytes))}, tag,
                          true);
            if (!r.ok()) {
                DropChunks(tag, absl::StrCat(*id, " ", n));
                return r.status();
            }
        }
        return std::map<std::string, std::string>{{"c", absl::StrCat(*id, " ", n)}};
    }

    // The bytes [begin, end) of an entry's version; Aborted if a chunk is gone (replaced
    // meanwhile: read again).
    absl::StatusOr<std::string> ReadBytes(const std::string& tag, const Entry& e, uint64_t begin, uint64_t end) {
        if (begin >= end) {
            return std::string();
        }
        auto c = Chunks(e.Field("c"));
        if (!c) {
            const std::string& b = e.Field("b");
            if (b.size() < end) {
                std::string out = b.substr(std::min<size_t>(begin, b.size()));
                out.resize(end - begin, '\0');
                return out;
            }
            return b.substr(begin, end - begin);
        }
        std::string out;
        out.reserve(end - begin);
        uint64_t cb = options_.chunk_bytes;
        for (uint64_t k = begin / cb; k * cb < end; ++k) {
            uint64_t from = std::max(begin, k * cb) - k * cb;
            uint64_t to = std::min(end, (k + 1) * cb) - k * cb;
            auto r = Call({"GETRANGE", ChunkKey(tag, c->first, k), std::to_string(from), std::to_string(to - 1)}, tag,
                          true);
            if (!r.ok()) {
                return r.status();
            }
            if (r->is_error() || (r->str.empty() && k < c->second)) {
                return absl::AbortedError("replaced while read");
            }
            out += r->str;
            out.resize(out.size() + (to - from) - r->str.size(), '\0');
        }
        return out;
    }

    absl::StatusOr<GetObjectResult> GetObject(const GetObjectRequest& req, DataSink* sink) {
        return Retrying(req.path, [&]() -> absl::StatusOr<GetObjectResult> {
            auto r = Resolve(req.path);
            if (!r.ok()) {
                return r.status();
            }
            Entry* e = Existing(*r);
            if (e == nullptr) {
                return PathNotFoundError(req.path.str());
            }
            if (e->info.type == ObjectType::kSymlink) {
                return absl::FailedPreconditionError(absl::StrFormat(
                    "%s is a symlink to %s; read it with readlink", req.path.str(), e->info.symlink_target));
            }
            if (e->info.type != ObjectType::kObject) {
                return absl::FailedPreconditionError(
                    absl::StrFormat("%s is a %s, not an object", req.path.str(), ObjectTypeName(e->info.type)));
            }
            uint64_t size = e->info.size;
            uint64_t begin = std::min(req.offset, size);
            uint64_t end = begin + std::min(req.length, size - begin);
            auto bytes = ReadBytes(r->tag, *e, begin, end);
            if (absl::IsAborted(bytes.status())) {
                return Retry();
            }
            if (!bytes.ok()) {
                return bytes.status();
            }
            if (absl::Status s = sink->Expect(bytes->size()); !s.ok()) {
                return s;
            }
            if (char* place = sink->Placement(); place != nullptr) {
                if (!bytes->empty()) {
                    std::memcpy(place, bytes->data(), bytes->size());
                }
            } else if (!bytes->empty()) {
                if (absl::Status s = sink->Write(*bytes); !s.ok()) {
                    return s;
                }
            }
            return GetObjectResult{e->info, bytes->size()};
        });
    }

    absl::StatusOr<ObjectInfo> PutObject(const PutObjectRequest& req, DataSource* data) {
        if (absl::Status s = ValidateAttributeNames(req.path, req.attributes); !s.ok()) {
            return s;
        }
        auto attributes = EncodeItemAttributes(req.path, req.attributes);
        if (!attributes.ok()) {
            return attributes.status();
        }
        std::string encoded = std::move(*attributes);
        if (req.path.depth() < 2) {
            return absl::FailedPreconditionError(absl::StrFormat("%s: not an object path", req.path.str()));
        }
        std::string bytes;
        if (data != nullptr) {
            if (auto n = data->size()) {
                if (*n > kMaxObjectBytes) {
                    return absl::InvalidArgumentError(absl::StrFormat(
                        "%s: object larger than the limit of %d bytes", req.path.str(), kMaxObjectBytes));
                }
                bytes.reserve(*n);
            }
            char buf[64 << 10];
            while (true) {
                auto n = data->Read(buf, sizeof buf);
                if (!n.ok()) {
                    return n.status();
                }
                if (*n == 0) {
                    break;
                }
                bytes.append(buf, *n);
            }
        }
        std::string tag = Tag(req.path.container());
        auto stored = StoreBytes(tag, bytes);
        if (!stored.ok()) {
            return stored.status();
        }
        auto result = Retrying(req.path, [&]() -> absl::StatusOr<ObjectInfo> {
            auto r = Resolve(req.path);
            if (!r.ok()) {
                DropChunks(tag, (*stored)["c"]);
                return r.status();
            }
            absl::Status s = CheckWritableParent(req.path, *r);
            if (s.ok() && r->entry && r->entry->info.type != ObjectType::kObject) {
                s = absl::FailedPreconditionError(absl::StrFormat("%s is a %s; an object cannot replace it",
                                                                  req.path.str(),
                                                                  ObjectTypeName(r->entry->info.type)));
            }
            if (s.ok()) {
                s = CheckCondition(req.path, req.condition, Existing(*r));
            }
            if (!s.ok()) {
                DropChunks(tag, (*stored)["c"]);
                return s;
            }
            ObjectInfo info;
            Timestamp now = Now();
            if (r->entry) {
                info = r->entry->info;
            } else {
                auto id = NewIds(1);
                if (!id.ok()) {
                    return id.status();
                }
                info = NewInfo(ObjectType::kObject, *id, 0644, req.caller);
            }
            if (req.mode) {
                info.mode = *req.mode & 07777;
            }
            info.size = bytes.size();
            info.mtime = info.ctime = now;
            auto fields = NewFields(ObjectType::kObject, info.id, info);
            fields["a"] = encoded;
            fields.insert(stored->begin(), stored->end());
            Txn t(r->tag + "ver");
            r->CheckChain(t);
            t.CheckVersion(r->key, r->version());
            t.Replace(r->key, fields);
            if (!r->entry) {
                t.ZAdd(IndexKey(r->tag, r->parent, req.path.name()), std::string(req.path.name()));
            }
            auto ok = Commit(t);
            if (!ok.ok()) {
                return ok.status();  // (chunks of an unknown outcome are kept: they may be in use)
            }
            if (*ok) {
                if (r->entry) {
                    DropChunks(tag, r->entry->Field("c"));
                }
                return info;
            }
            return Retry();
        });
        if (IsConflicted(result)) {
            DropChunks(tag, (*stored)["c"]);
        }
        return result;
    }

    // Writes at `offset` (append when nullopt), or truncates to `truncate`: the bytes of the
    // new version are the old ones changed, stored anew.
    absl::StatusOr<ObjectInfo> Modify(const Path& path, std::optional<uint64_t> offset, std::string_view data,
                                      std::optional<uint64_t> truncate) {
        return Retrying(path, [&]() -> absl::StatusOr<ObjectInfo> {
            auto r = Resolve(path);
            if (!r.ok()) {
                return r.status();
            }
            Entry* e = Existing(*r);
            if (e == nullptr) {
                return PathNotFoundError(path.str());
            }
            if (e->info.type != ObjectType::kObject) {
                return absl::FailedPreconditionError(
                    absl::StrFormat("%s is a %s, not an object", path.str(), ObjectTypeName(e->info.type)));
            }
            uint64_t new_size;
            uint64_t off = 0;
            if (truncate) {
                new_size = *truncate;
            } else {
                off = offset.value_or(e->info.size);
                if (off > kMaxObjectBytes || data.size() > kMaxObjectBytes - off) {
                    return absl::InvalidArgumentError(absl::StrFormat(
                        "%s: write past the object size limit of %d bytes", path.str(), kMaxObjectBytes));
                }
                new_size = std::max(e->info.size, off + data.size());
            }
            auto bytes = ReadBytes(r->tag, *e, 0, std::min(e->info.size, new_size));
            if (absl::IsAborted(bytes.status())) {
                return Retry();
            }
            if (!bytes.ok()) {
                return bytes.status();
            }
            bytes->resize(new_size, '\0');
            if (!truncate && !data.empty()) {
                std::memcpy(bytes->data() + off, data.data(), data.size());
            }
            auto stored = StoreBytes(r->tag, *bytes);
            if (!stored.ok()) {
                return stored.status();
            }
            e->info.size = new_size;
            e->info.mtime = e->info.ctime = Now();
            std::map<std::string, std::string> fields = e->fields;
            fields.erase("b");
            fields.erase("c");
            fields.insert(stored->begin(), stored->end());
            fields["m"] = EncodeMeta(e->info);
            Txn t(r->tag + "ver");
            r->CheckChain(t);
            t.CheckVersion(r->key, e->version);
            t.Replace(r->key, fields);
            auto ok = Commit(t);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                DropChunks(r->tag, e->Field("c"));
                return e->info;
            }
            DropChunks(r->tag, (*stored)["c"]);
            return Retry();
        });
    }

    absl::StatusOr<ObjectInfo> Truncate(const TruncateRequest& req) {
        if (req.size > kMaxObjectBytes) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "%s: size beyond the object size limit of %d bytes", req.path.str(), kMaxObjectBytes));
        }
        return Modify(req.path, std::nullopt, {}, req.size);
    }

    // ---- items ----

    absl::StatusOr<Item> GetItem(const GetItemRequest& req) {
        auto r = Resolve(req.path);
        if (!r.ok()) {
            return r.status();
        }
        Entry* e = Existing(*r);
        if (e == nullptr) {
            return PathNotFoundError(req.path.str());
        }
        auto info = InfoOf(*e);
        if (!info.ok()) {
            return info.status();
        }
        auto attrs = ProjectAttributes(e->Field("a"), req.attributes, req.path.name(), *info);
        if (!attrs.ok()) {
            return attrs.status();
        }
        return Item{std::string(req.path.name()), std::move(*info), std::move(*attrs)};
    }

    absl::StatusOr<GetItemsResult> GetItems(const GetItemsRequest& req) {
        if (absl::Status s = ValidateSegment(req); !s.ok()) {
            return s;
        }
        auto filter = expr::Condition::Parse(req.filter);
        if (!filter.ok()) {
            return filter.status();
        }
        uint32_t limit = std::clamp<uint32_t>(req.limit, 1, kMaxListLimit);
        if (req.path.is_root()) {
            return absl::InvalidArgumentError("get_items needs a table (a directory), not the root");
        }
        std::string tag = Tag(req.path.container());
        auto dir_id = DirectoryId(req.path, /*table=*/true);
        if (!dir_id.ok()) {
            return dir_id.status();
        }
        uint64_t dir = *dir_id;
        GetItemsResult out;
        std::string after = req.marker;
        size_t scanned = 0;
        while (true) {
            auto page = Names(tag, dir, after, "", kScanBatch);
            if (!page.ok()) {
                return page.status();
            }
            const std::vector<std::string>* names = &page->names;
            // Only the names of this segment are fetched.
            std::vector<std::string> mine;
            for (const std::string& n : *names) {
                if (req.total_segments == 1 || ShardForPartitionKey(n, req.total_segments) == req.segment) {
                    mine.push_back(n);
                }
            }
            auto entries = FetchEntries(tag, dir, mine);
            if (!entries.ok()) {
                return entries.status();
            }
            size_t j = 0;
            for (const std::string& name : *names) {
                if (out.items.size() == limit || scanned == kMaxScanPerPage) {
                    return out;  // more may follow
                }
                ++scanned;
                out.next_marker = name;
                if (j >= mine.size() || mine[j] != name) {
                    continue;
                }
                const std::optional<Entry>& e = (*entries)[j++];
                if (!e || e->info.type != ObjectType::kObject) {
                    continue;
                }
                EncodedAttributes attrs(e->Field("a"));
                if (absl::Status s = attrs.Validate(); !s.ok()) {
                    return s;
                }
                expr::EncodedItemAttributes item(attrs, name, &e->info);
                if (!filter->Matches(item)) {
                    continue;
                }
                auto projected = ProjectAttributes(e->Field("a"), req.attributes, name, e->info);
                if (!projected.ok()) {
                    return projected.status();
                }
                out.items.push_back(Item{name, e->info, std::move(*projected)});
            }
            if (!page->more || names->empty()) {
                break;
            }
            after = names->back();
        }
        out.done = true;
        return out;
    }

    using ItemChange = std::function<absl::Status(const std::optional<Entry>& old, AttributeMap* attrs)>;

    // What writing the item at `path` commits, given what resolving it found: the
    // transaction, and the item's info after it. `new_id` gives the id of a new item.
    absl::StatusOr<std::pair<Txn, ObjectInfo>> PlanItemWrite(const Path& path, const Caller& caller,
                                                             const Resolved& r, const ItemChange& change,
                                                             const std::function<absl::StatusOr<uint64_t>()>& new_id) {
        if (absl::Status s = CheckWritableParent(path, r); !s.ok()) {
            return s;
        }
        if (r.entry && r.entry->info.type != ObjectType::kObject) {
            return NotAnItem(path, r.entry->info.type);
        }
        AttributeMap attrs;
        if (r.entry) {
            auto decoded = DecodeAttributes(r.entry->Field("a"));
            if (!decoded.ok()) {
                return decoded.status();
            }
            attrs = std::move(*decoded);
        }
        if (absl::Status s = change(r.entry, &attrs); !s.ok()) {
            return s;
        }
        auto encoded = EncodeItemAttributes(path, attrs);
        if (!encoded.ok()) {
            return encoded.status();
        }
        ObjectInfo info;
        if (r.entry) {
            info = r.entry->info;
        } else {
            auto id = new_id();
            if (!id.ok()) {
                return id.status();
            }
            info = NewInfo(ObjectType::kObject, *id, 0644, caller);
        }
        info.mtime = info.ctime = Now();
        Txn t(r.tag + "ver");
        r.CheckChain(t);
        t.CheckVersion(r.key, r.version());
        if (r.entry) {
            t.Update(r.key, {{"m", EncodeMeta(info)}, {"a", std::move(*encoded)}});  // the bytes stay
        } else {
            auto fields = NewFields(ObjectType::kObject, info.id, info);
            fields["a"] = std::move(*encoded);
            fields["b"] = "";
            t.Replace(r.key, fields);
            t.ZAdd(IndexKey(r.tag, r.parent, path.name()), std::string(path.name()));
        }
        return std::pair<Txn, ObjectInfo>(std::move(t), info);
    }

    absl::Status CheckItemPath(const Path& path) {
        return path.depth() < 2 ? absl::FailedPreconditionError(absl::StrFormat("%s: not an item path", path.str()))
                                : absl::OkStatus();
    }

    absl::StatusOr<ObjectInfo> WriteItem(const Path& path, const Caller& caller, const ItemChange& change) {
        if (absl::Status s = CheckItemPath(path); !s.ok()) {
            return s;
        }
        return Retrying(path, [&]() -> absl::StatusOr<ObjectInfo> {
            auto r = Resolve(path);
            if (!r.ok()) {
                return r.status();
            }
            auto plan = PlanItemWrite(path, caller, *r, change, [this] { return NewIds(1); });
            if (!plan.ok()) {
                return plan.status();
            }
            auto ok = Commit(plan->first);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                return plan->second;
            }
            return Retry();
        });
    }

    // What a put_item or an update_item does to the item (their requests kept by the change).
    absl::StatusOr<ItemChange> PutChange(std::shared_ptr<const PutItemRequest> req) {
        if (absl::Status s = ValidateAttributeNames(req->path, req->attributes); !s.ok()) {
            return s;
        }
        return [this, req](const std::optional<Entry>& old, AttributeMap* attrs) {
            if (absl::Status s = CheckCondition(req->path, req->condition, old ? &*old : nullptr); !s.ok()) {
                return s;
            }
            *attrs = req->attributes;
            return absl::OkStatus();
        };
    }
    static absl::StatusOr<ItemChange> UpdateChange(std::shared_ptr<const UpdateItemRequest> req) {
        auto update = ItemUpdate::Parse(*req);
        if (!update.ok()) {
            return update.status();
        }
        auto parsed = std::make_shared<ItemUpdate>(std::move(*update));
        return [req, parsed](const std::optional<Entry>& old, AttributeMap* attrs) {
            return parsed->Apply(req->path, attrs, old ? &old->info : nullptr);
        };
    }

    // A put_item without a condition in one round trip (kPutItemScript); `done` runs where
    // ScriptAsync says. False, with `done` untouched and nothing sent, when no id is reserved
    // for a new item (the caller then takes the general path, which reserves).
    bool PutItemAsync(std::shared_ptr<const PutItemRequest> req, Done<ObjectInfo>& done) {
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

    absl::StatusOr<ObjectInfo> PutItemAnswer(const Path& path, const Reply& r) {
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
                return NotADirectory(path, r.elements.size() > 1 ? r.elements[1].integer : 1);
            case 4:
                return StreamParent(path);
            case 5: {
                auto type = r.elements.size() > 1 ? TypeOf(r.elements[1].str) : std::nullopt;
                return NotAnItem(path, type.value_or(ObjectType::kObject));
            }
        }
        return Damaged("a put_item's answer");
    }

    absl::StatusOr<ObjectInfo> PutItem(const PutItemRequest& req) {
        auto change = PutChange(std::make_shared<const PutItemRequest>(req));
        return change.ok() ? WriteItem(req.path, req.caller, *change) : change.status();
    }

    // ---- streams ----

    absl::StatusOr<ObjectInfo> CreateStream(const CreateStreamRequest& req) {
        if (absl::Status s = ValidateStream(req); !s.ok()) {
            return s;
        }
        return Retrying(req.path, [&]() -> absl::StatusOr<ObjectInfo> {
            auto r = Resolve(req.path);
            if (!r.ok()) {
                return r.status();
            }
            if (absl::Status s = CheckWritableParent(req.path, *r); !s.ok()) {
                return s;
            }
            if (r->entry) {
                return absl::AlreadyExistsError(absl::StrFormat("%s already exists", req.path.str()));
            }
            // The stream's id is followed by its shards' ids: shard k is id + 1 + k.
            auto base = NewIds(uint64_t{req.shard_count} + 1);
            if (!base.ok()) {
                return base.status();
            }
            ObjectInfo stream = NewInfo(ObjectType::kStream, *base, 0755, req.caller);
            auto fields = NewFields(ObjectType::kStream, *base, stream);
            fields["x"] = absl::StrCat(req.shard_count, " ", req.retention_secs);
            Txn t(r->tag + "ver");
            r->CheckChain(t);
            t.CheckVersion(r->key, "");
            t.Replace(r->key, fields);
            t.ZAdd(IndexKey(r->tag, r->parent, req.path.name()), std::string(req.path.name()));
            for (uint32_t k = 0; k < req.shard_count; ++k) {
                ObjectInfo shard = NewInfo(ObjectType::kShard, *base + 1 + k, 0644, req.caller);
                std::string name = absl::StrCat(k);
                t.Replace(EntryKey(r->tag, *base, name), NewFields(ObjectType::kShard, shard.id, shard));
                t.ZAdd(IndexKey(r->tag, *base, name), name);
            }
            auto ok = Commit(t);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                return stream;
            }
            return Retry();
        });
    }

    absl::StatusOr<std::pair<Resolved, Entry>> GetStream(const Path& path) {
        auto r = Resolve(path);
        if (!r.ok()) {
            return r.status();
        }
        Entry* e = Existing(*r);
        if (e == nullptr) {
            return PathNotFoundError(path.str());
        }
        if (e->info.type != ObjectType::kStream) {
            return absl::FailedPreconditionError(
                absl::StrFormat("%s is a %s, not a stream", path.str(), ObjectTypeName(e->info.type)));
        }
        Entry stream = std::move(*e);
        return std::pair{std::move(*r), std::move(stream)};
    }

    absl::StatusOr<StreamDescription> DescribeStream(const Path& path) {
        auto s = GetStream(path);
        if (!s.ok()) {
            return s.status();
        }
        return StreamDescription{s->second.shard_count, s->second.retention_secs};
    }

    absl::Status DeleteStream(const Path& path) {
        return Retrying(path, [&]() -> absl::Status {
            auto s = GetStream(path);
            if (!s.ok()) {
                return s.status();
            }
            auto& [r, e] = *s;
            Txn t(r.tag + "ver");
            r.CheckChain(t);
            t.CheckVersion(r.key, e.version);
            t.Del(r.key);
            t.ZRem(IndexKey(r.tag, r.parent, path.name()), std::string(path.name()));
            for (uint32_t b = 0; b < kIndexBuckets; ++b) {
                t.Del(absl::StrCat(IndexPrefix(r.tag, e.info.id), b));
            }
            for (uint32_t k = 0; k < e.shard_count; ++k) {
                uint64_t sid = e.info.id + 1 + k;
                t.Del(EntryKey(r.tag, e.info.id, absl::StrCat(k)));
                t.Del(absl::StrCat(r.tag, "s:", sid));
                t.Del(absl::StrCat(r.tag, "q:", sid));
            }
            auto ok = Commit(t);
            if (!ok.ok()) {
                return ok.status();
            }
            if (*ok) {
                return absl::OkStatus();
            }
            return Retry();
        });
    }

    absl::StatusOr<std::vector<RecordResult>> PutRecords(const PutRecordsRequest& req) {
        return Retrying(req.path, [&]() -> absl::StatusOr<std::vector<RecordResult>> {
            auto s = GetStream(req.path);
            if (!s.ok()) {
                return s.status();
            }
            auto& [r, stream] = *s;
            std::vector<RecordResult> results = PlaceRecords(req.records, stream.shard_count, &round_robin_);
            std::vector<std::string> args = {stream.version, r.tag, std::to_string(Now().ToNanos() / 1000), "0"};
            size_t n = 0;
            std::vector<size_t> placed;
            for (size_t i = 0; i < req.records.size(); ++i) {
                if (!results[i].status.ok()) {
                    continue;
                }
                const RecordInput& rec = req.records[i];
                args.push_back(std::to_string(stream.info.id + 1 + results[i].shard));
                args.push_back(rec.partition_key);
                args.push_back(rec.client_info);
                args.push_back(rec.data);
                placed.push_back(i);
                ++n;
            }
            if (n == 0) {
                return results;
            }
            args[3] = std::to_string(n);
            auto done = Script(kPutRecordsScript, records_sha_, {r.key}, args, false);
            if (!done.ok()) {
                return done.status();
            }
            if (done->type == Reply::Type::kInteger && done->integer == -1) {
                return Retry();  // the stream was replaced since it was resolved
            }
            if (done->type != Reply::Type::kArray || done->elements.size() != 2 * n) {
                return Damaged("a put_records answer");
            }
            for (size_t j = 0; j < n; ++j) {
                results[placed[j]].sequence = static_cast<uint64_t>(done->elements[2 * j].integer);
            }
            return results;
        });
    }

    struct OpenedShard {
        std::string tag;
        std::string records_key;
        uint64_t last = 0;
        uint64_t first_retained = 1;
    };

    absl::StatusOr<OpenedShard> OpenShard(const Path& path, uint32_t shard) {
        auto s = GetStream(path);
        if (!s.ok()) {
            return s.status();
        }
        auto& [r, stream] = *s;
        if (shard >= stream.shard_count) {
            return absl::InvalidArgumentError(absl::StrFormat(
                "shard %d does not exist; the stream has shards 0..%d", shard, stream.shard_count - 1));
        }
        OpenedShard out;
        out.tag = r.tag;
        uint64_t sid = stream.info.id + 1 + shard;
        out.records_key = absl::StrCat(r.tag, "s:", sid);
        auto q = Call({"HGET", absl::StrCat(r.tag, "q:", sid), "last"}, r.tag, true);
        if (!q.ok()) {
            return q.status();
        }
        out.last = ToU64(q->str);
        // Expired records are a prefix (arrival never decreases): the first one still kept.
        int64_t cutoff_us = Now().ToNanos() / 1000 - stream.retention_secs * 1'000'000;
        auto first = FirstAtOrAfter(out.records_key, cutoff_us, 1, out.last + 1);
        if (!first.ok()) {
            return first.status();
        }
        out.first_retained = *first;
        if (out.first_retained > 1) {
            // Expired records go for good (lazily: when their shard is read). Repeating it
            // does no harm, and nobody waits for it.
            redis_->Send({"XTRIM", out.records_key, "MINID", absl::StrCat(out.first_retained, "-0")},
                         {.key = out.tag, .safe_to_retry = true}, [](absl::StatusOr<Reply>) {});
        }
        return out;
    }

    absl::StatusOr<uint64_t> FirstAtOrAfter(const std::string& key, int64_t t_us, uint64_t lo, uint64_t hi) {
        if (lo >= hi) {
            return lo;
        }
        auto r = Script(kSeekTimeScript, seek_sha_, {key},
                        {std::to_string(t_us), std::to_string(lo), std::to_string(hi)}, true);
        if (!r.ok()) {
            return r.status();
        }
        return ToU64(r->str);
    }

    absl::StatusOr<StreamLocation> Seek(const SeekRequest& req) {
        auto shard = OpenShard(req.path, req.shard);
        if (!shard.ok()) {
            return shard.status();
        }
        StreamLocation loc{req.shard, shard->first_retained};
        switch (req.type) {
            case SeekType::kEarliest: break;
            case SeekType::kLatest: loc.sequence = shard->last + 1; break;
            case SeekType::kSequence:
                if (req.sequence == 0 || req.sequence > shard->last + 1) {
                    return absl::InvalidArgumentError(absl::StrFormat(
                        "%s shard %d: sequence %d is outside 1..%d (the next one to be written)", req.path.str(),
                        req.shard, req.sequence, shard->last + 1));
                }
                loc.sequence = std::max(req.sequence, shard->first_retained);
                break;
            case SeekType::kTime: {
                // Arrival is kept in microseconds: a time inside a microsecond rounds up.
                int64_t ns = req.time.ToNanos();
                int64_t us = ns / 1000 + (ns % 1000 > 0 ? 1 : 0);
                auto seq = FirstAtOrAfter(shard->records_key, us, shard->first_retained, shard->last + 1);
                if (!seq.ok()) {
                    return seq.status();
                }
                loc.sequence = *seq;
                break;
            }
            default:
                return absl::InvalidArgumentError(
                    absl::StrFormat("%s: unknown seek type %d", req.path.str(), static_cast<int>(req.type)));
        }
        return loc;
    }

    absl::StatusOr<GetRecordsResult> GetRecords(const GetRecordsRequest& req) {
        auto shard = OpenShard(req.path, req.location.shard);
        if (!shard.ok()) {
            return shard.status();
        }
        GetRecordsResult out;
        uint64_t seq = std::max(req.location.sequence, shard->first_retained);
        uint32_t limit = std::clamp<uint32_t>(req.limit, 1, kMaxListLimit);
        uint64_t bytes = 0;
        out.next = StreamLocation{req.location.shard, seq};
        if (seq <= shard->last) {
            auto r = Call({"XRANGE", shard->records_key, absl::StrCat(seq, "-0"), absl::StrCat(shard->last, "-0"),
                           "COUNT", std::to_string(limit)},
                          shard->tag, true);
            if (!r.ok()) {
                return r.status();
            }
            for (const Reply& item : r->elements) {
                if (item.elements.size() != 2) {
                    return Damaged("a stream record");
                }
                StreamRecord rec;
                rec.shard = req.location.shard;
                rec.sequence = ToU64(std::string_view(item.elements[0].str).substr(0, item.elements[0].str.find('-')));
                const auto& f = item.elements[1].elements;
                for (size_t i = 0; i + 1 < f.size(); i += 2) {
                    const std::string& name = f[i].str;
                    if (name == "t") {
                        rec.arrival = Timestamp::FromNanos(static_cast<int64_t>(ToU64(f[i + 1].str)) * 1000);
                    } else if (name == "k") {
                        rec.partition_key = f[i + 1].str;
                    } else if (name == "c") {
                        rec.client_info = f[i + 1].str;
                    } else if (name == "d") {
                        rec.data = f[i + 1].str;
                    }
                }
                if (!out.records.empty() && bytes + rec.data.size() > req.max_bytes) {
                    break;
                }
                bytes += rec.data.size();
                out.next.sequence = rec.sequence + 1;
                out.records.push_back(std::move(rec));
            }
        }
        out.behind = shard->last >= out.next.sequence ? shard->last - out.next.sequence + 1 : 0;
        return out;
    }

    absl::Status Sync() {
        // Acknowledged writes are as durable as the servers' persistence and `replicas`
        // make them (docs/REDIS.md); a round trip shows the connection is alive.
        auto r = Call({"PING"}, "", true);
        return r.ok() ? absl::OkStatus() : r.status();
    }

    redis::RedisClient& client() { return *redis_; }

private:
    RedisBackendOptions options_;
    std::unique_ptr<redis::RedisClient> redis_;
    std::map<std::string, uint64_t> roots_;  // container -> its root directory's id
    std::string resolve_sha_, commit_sha_, put_item_sha_, names_sha_, records_sha_, seek_sha_;
    std::atomic<uint64_t> round_robin_{0};
    static constexpr uint64_t kIdRange = 1000;
    absl::Mutex ids_mu_;
    uint64_t ids_next_ ABSL_GUARDED_BY(ids_mu_) = 0;
    uint64_t ids_end_ ABSL_GUARDED_BY(ids_mu_) = 0;
    std::vector<uint64_t> given_back_ ABSL_GUARDED_BY(ids_mu_);
};

// ---- the asynchronous face ----

absl::StatusOr<std::unique_ptr<RedisBackend>> RedisBackend::Open(RedisBackendOptions options) {
    size_t threads = std::max<size_t>(1, options.threads);
    auto store = std::make_unique<Store>(std::move(options));
    if (absl::Status s = store->Open(); !s.ok()) {
        return s;
    }
    return std::unique_ptr<RedisBackend>(new RedisBackend(std::move(store), threads));
}

thread_local std::vector<std::pair<const RedisBackend::Store*, RedisBackend::Store::ResolveBatch*>>
    RedisBackend::Store::tls_batches_;

RedisBackend::RedisBackend(std::unique_ptr<Store> store, size_t threads)
    : store_(std::move(store)), pool_(std::make_unique<TaskPool>("zh-redis", threads)) {}

RedisBackend::~RedisBackend() { pool_.reset(); }

absl::StatusOr<std::unique_ptr<LoopHook>> RedisBackend::JoinLoop() {
    // The worker's lane, and its batch of resolves: what the requests of a turn asked for
    // goes out as one script per container when the worker polls the hook.
    class Hook : public LoopHook {
    public:
        Hook(Store* store, std::unique_ptr<redis::LoopLane> lane) : store_(store), lane_(std::move(lane)) {
            Store::tls_batches_.emplace_back(store_, &batch_);
        }
        ~Hook() override {
            std::erase_if(Store::tls_batches_, [this](const auto& e) { return e.second == &batch_; });
            store_->FlushResolves(batch_);  // then failed with the lane (Cancelled)
        }
        int fd() const override { return lane_->fd(); }
        bool Poll() override {
            bool sent = !batch_.by_tag.empty();
            store_->FlushResolves(batch_);
            return lane_->Poll() || sent;
        }
        bool Busy() const override { return !batch_.by_tag.empty() || lane_->Busy(); }
        int TimeoutMs() const override { return lane_->TimeoutMs(); }
        void Sleeping(bool asleep) override { lane_->Sleeping(asleep); }

    private:
        Store* store_;
        Store::ResolveBatch batch_;
        std::unique_ptr<redis::LoopLane> lane_;
    };
    auto lane = store_->client().Attach();
    if (!lane.ok()) {
        return lane.status();
    }
    return std::unique_ptr<LoopHook>(std::make_unique<Hook>(store_.get(), std::move(*lane)));
}

#define ZH_REDIS_OP(call)                                                              \
    pool_->Run([this, req = std::move(req), done = std::move(done)]() mutable {         \
        std::move(done)(store_->call);                                                 \
    })

void RedisBackend::ListContainers(Done<std::vector<std::string>> done) { std::move(done)(store_->ListContainers()); }
// Point reads complete where the resolve's answer arrives (the worker's lane, else the
// client's own thread): no thread of ours waits on Redis (a shard's info needs a second
// read, and goes to the pool).
void RedisBackend::Stat(Path req, Done<ObjectInfo> done) {
    if (req.depth() < 2) {
        return ZH_REDIS_OP(Stat(req));
    }
    Path path = req;
    store_->ResolveAsync(path, [this, req = std::move(req), done = std::move(done)](
                                   absl::StatusOr<Store::Resolved> r) mutable {
        if (r.ok() && r->entry && r->entry->info.type == ObjectType::kShard) {
            return ZH_REDIS_OP(Stat(req));
        }
        if (!r.ok()) {
            return std::move(done)(r.status());
        }
        if (!r->entry) {
            return std::move(done)(PathNotFoundError(req.str()));
        }
        std::move(done)(r->entry->info);
    });
}
void RedisBackend::List(ListRequest req, Done<ListResult> done) { ZH_REDIS_OP(List(req)); }
void RedisBackend::Mkdir(MkdirRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(Mkdir(req)); }
void RedisBackend::Rmdir(Path req, DoneStatus done) { ZH_REDIS_OP(Rmdir(req)); }
void RedisBackend::Rename(RenameRequest req, DoneStatus done) { ZH_REDIS_OP(Rename(req)); }
void RedisBackend::Symlink(SymlinkRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(Symlink(req)); }
void RedisBackend::Readlink(Path req, Done<std::string> done) { ZH_REDIS_OP(Readlink(req)); }
void RedisBackend::Delete(DeleteRequest req, DoneStatus done) { ZH_REDIS_OP(Delete(req)); }
void RedisBackend::SetMetadata(SetMetadataRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(SetMetadata(req)); }
void RedisBackend::GetObject(GetObjectRequest req, DataSink* sink, Done<GetObjectResult> done) {
    pool_->Run([this, req = std::move(req), sink, done = std::move(done)]() mutable {
        std::move(done)(store_->GetObject(req, sink));
    });
}
void RedisBackend::PutObject(PutObjectRequest req, DataSource* data, Done<ObjectInfo> done) {
    pool_->Run([this, req = std::move(req), data, done = std::move(done)]() mutable {
        std::move(done)(store_->PutObject(req, data));
    });
}
void RedisBackend::WriteObject(WriteObjectRequest req, Done<ObjectInfo> done) {
    ZH_REDIS_OP(Modify(req.path, req.offset, req.data, std::nullopt));
}
void RedisBackend::Append(AppendRequest req, Done<ObjectInfo> done) {
    ZH_REDIS_OP(Modify(req.path, std::nullopt, req.data, std::nullopt));
}
void RedisBackend::Truncate(TruncateRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(Truncate(req)); }
void RedisBackend::GetItem(GetItemRequest req, Done<Item> done) {
    Path path = req.path;
    store_->ResolveAsync(path, [this, req = std::move(req), done = std::move(done)](
                                   absl::StatusOr<Store::Resolved> r) mutable {
        if (r.ok() && r->entry && r->entry->info.type == ObjectType::kShard) {
            return ZH_REDIS_OP(GetItem(req));
        }
        if (!r.ok()) {
            return std::move(done)(r.status());
        }
        if (!r->entry) {
            return std::move(done)(PathNotFoundError(req.path.str()));
        }
        const Entry& e = *r->entry;
        auto attrs = ProjectAttributes(e.Field("a"), req.attributes, req.path.name(), e.info);
        if (!attrs.ok()) {
            return std::move(done)(attrs.status());
        }
        std::move(done)(Item{std::string(req.path.name()), e.info, std::move(*attrs)});
    });
}
void RedisBackend::GetItems(GetItemsRequest req, Done<GetItemsResult> done) { ZH_REDIS_OP(GetItems(req)); }
// Item writes run without a thread of ours waiting: resolve, then the conditional commit,
// each sent from the thread that runs the caller's lane and continued there. A write that
// keeps losing races, or needs a new id range, finishes on the pool (which backs off).
struct RedisBackend::ItemWrite {
    Path path;
    Caller caller;
    Store::ItemChange change;
    Done<ObjectInfo> done;
    int conflicts = 0;
};

void RedisBackend::WriteItemAsync(std::shared_ptr<ItemWrite> w) {
    constexpr int kConflictsBeforePool = 4;
    store_->ResolveAsync(w->path, [this, w](absl::StatusOr<Store::Resolved> r) mutable {
        if (!r.ok()) {
            return std::move(w->done)(r.status());
        }
        bool need_ids = false;
        auto plan = store_->PlanItemWrite(w->path, w->caller, *r, w->change, [&]() -> absl::StatusOr<uint64_t> {
            std::optional<uint64_t> id = store_->TakeIds(1);
            need_ids = !id;
            return id ? absl::StatusOr<uint64_t>(*id) : absl::UnavailableError("no id reserved");
        });
        if (need_ids) {
            return WriteItemOnPool(std::move(w));
        }
        if (!plan.ok()) {
            return std::move(w->done)(plan.status());
        }
        store_->CommitAsync(plan->first, [this, w, info = plan->second](absl::StatusOr<bool> ok) mutable {
            if (!ok.ok()) {
                return std::move(w->done)(ok.status());
            }
            if (*ok) {
                return std::move(w->done)(info);
            }
            if (++w->conflicts >= kConflictsBeforePool) {
                return WriteItemOnPool(std::move(w));
            }
            WriteItemAsync(std::move(w));
        });
    });
}

void RedisBackend::WriteItemOnPool(std::shared_ptr<ItemWrite> w) {
    pool_->Run([this, w] { std::move(w->done)(store_->WriteItem(w->path, w->caller, w->change)); });
}

void RedisBackend::PutItem(PutItemRequest req, Done<ObjectInfo> done) {
    Path path = req.path;
    Caller caller = req.caller;
    auto shared = std::make_shared<const PutItemRequest>(std::move(req));
    auto change = store_->PutChange(shared);
    if (!change.ok()) {
        return std::move(done)(change.status());
    }
    if (absl::Status s = store_->CheckItemPath(path); !s.ok()) {
        return std::move(done)(s);
    }
    // Nothing for our expression engine to decide: one script resolves and writes.
    if (shared->condition.empty() && store_->PutItemAsync(shared, done)) {
        return;
    }
    WriteItemAsync(std::make_shared<ItemWrite>(
        ItemWrite{std::move(path), std::move(caller), std::move(*change), std::move(done)}));
}
void RedisBackend::PutItems(std::vector<PutItemRequest> req, Done<std::vector<absl::Status>> done) {
    pool_->Run([this, req = std::move(req), done = std::move(done)]() mutable {
        std::vector<absl::Status> out;
        for (const PutItemRequest& r : req) {
            out.push_back(store_->PutItem(r).status());
        }
        std::move(done)(std::move(out));
    });
}
void RedisBackend::UpdateItem(UpdateItemRequest req, Done<ObjectInfo> done) {
    Path path = req.path;
    Caller caller = req.caller;
    auto change = Store::UpdateChange(std::make_shared<const UpdateItemRequest>(std::move(req)));
    if (!change.ok()) {
        return std::move(done)(change.status());
    }
    if (absl::Status s = store_->CheckItemPath(path); !s.ok()) {
        return std::move(done)(s);
    }
    WriteItemAsync(std::make_shared<ItemWrite>(
        ItemWrite{std::move(path), std::move(caller), std::move(*change), std::move(done)}));
}
void RedisBackend::CreateStream(CreateStreamRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(CreateStream(req)); }
void RedisBackend::DescribeStream(Path req, Done<StreamDescription> done) { ZH_REDIS_OP(DescribeStream(req)); }
void RedisBackend::DeleteStream(Path req, DoneStatus done) { ZH_REDIS_OP(DeleteStream(req)); }
void RedisBackend::PutRecords(PutRecordsRequest req, Done<std::vector<RecordResult>> done) {
    ZH_REDIS_OP(PutRecords(req));
}
void RedisBackend::Seek(SeekRequest req, Done<StreamLocation> done) { ZH_REDIS_OP(Seek(req)); }
void RedisBackend::GetRecords(GetRecordsRequest req, Done<GetRecordsResult> done) { ZH_REDIS_OP(GetRecords(req)); }
void RedisBackend::Sync(DoneStatus done) {
    pool_->Run([this, done = std::move(done)]() mutable { std::move(done)(store_->Sync()); });
}

#undef ZH_REDIS_OP

}  // namespace zerohop
