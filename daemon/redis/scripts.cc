// The redis backend's Lua scripts: each runs atomically on the server that holds its keys
// (one container is one cluster slot). What each takes and returns is said above it.

#include "redis/internal/scripts.h"

namespace zerohop::redis {

// Walks the directories of one or more paths of a container in one round trip. ARGV: the key
// prefix, then per path: the root's id, the number of components, the components. Returns
// per path {status, parent id, chain, entry}: status 0 found, 1 no such entry (its parent
// exists), 2 a parent is missing, 3 a parent is not a directory (then a fifth element: which
// component). `chain` is a flat list of (key, version, type, id) of every directory walked,
// for the commit's checks.
const char kResolveScript[] = R"lua(
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
// "u" update fields, "d" delete a key, "za"/"zr" add to / remove from an index, "n" add to
// a directory's count of subdirectories, "nm" key-index: give this count to another hash,
// "t" set (or with "", remove) a directory's times of its last entry change).
// Returns {1, new version} or {0, number of the check that failed}.
const char kCommitScript[] = R"lua(
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
  elseif kind == 't' then
    if ARGV[p] == '' then redis.call('HDEL', k, 'tm') else redis.call('HSET', k, 'tm', ARGV[p]) end
    p = p + 1
  elseif kind == 'n' then
    redis.call('HINCRBY', k, 'n', tonumber(ARGV[p])); p = p + 1
  elseif kind == 'nm' then
    local n = redis.call('HGET', k, 'n')
    if n then redis.call('HSET', KEYS[tonumber(ARGV[p])], 'n', n) end
    p = p + 1
  end
end
return {1, ver}
)lua";

// A page of a directory's names from each of its index buckets: ARGV[1] the buckets' key
// prefix, ARGV[2] where to start (a ZRANGEBYLEX bound), ARGV[3] at most this many from each.
// One array per bucket; the daemon merges them (in byte order: Lua's comparisons follow the
// server's locale).
const char kNamesScript[] = R"lua(
local out = {}
for b = 0, 15 do
  out[b + 1] = redis.call('ZRANGEBYLEX', ARGV[1] .. b, ARGV[2], '+', 'LIMIT', 0, tonumber(ARGV[3]))
end
return out
)lua";

// A put_item without a condition, in one step: walks the path like the resolve script, then
// gives the item its new attributes and times, or creates it (and its index entry). KEYS[1]:
// the container's version counter. ARGV: prefix, the id for a new item, its meta, the times
// ("msecs mnsecs csecs cnsecs"), the encoded attributes, the name's index bucket, then the
// path as the resolve script takes it (root id, number of components, components).
// A created item gives its times to its directory (field "tm", see Txn::TouchDir).
// Returns {0, id, meta, version} replaced, {1, ...} created, {2} a parent is missing, {3, at}
// a parent is not a directory, {4} the parent is a stream, {5, type} it is not an item.
const char kPutItemScript[] = R"lua(
local pre = ARGV[1]
local id = ARGV[7]
local n = #ARGV
local ptype = 'd'
local parent = pre .. 'root'
for c = 9, n - 1 do
  parent = pre .. 'e:' .. id .. ':' .. ARGV[c]
  local f = redis.call('HMGET', parent, 't', 'i')
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
  if m[10] then meta = meta .. ' ' .. m[9] .. ' ' .. m[10] end
  redis.call('HSET', key, 'v', ver, 'm', meta, 'a', ARGV[5])
  return {0, f[2], meta, ver}
end
redis.call('HSET', key, 'v', ver, 't', 'f', 'i', ARGV[2], 'm', ARGV[3], 'a', ARGV[5], 'b', '')
redis.call('HSET', parent, 'tm', ARGV[4])
redis.call('ZADD', pre .. 'd:' .. id .. ':' .. ARGV[6], 0, ARGV[n])
return {1, ARGV[2], ARGV[3], ver}
)lua";

// Appends records to shards with dense sequence numbers, if the stream is the one that was
// resolved. KEYS[1]: the stream's entry; ARGV: its version, the key prefix, now (us), the
// count, then per record: shard id, partition key, client info, data. Arrival times never
// decrease along a shard. Returns the sequence numbers (and arrival, us) or -1.
const char kPutRecordsScript[] = R"lua(
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
const char kSeekTimeScript[] = R"lua(
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

}  // namespace zerohop::redis
