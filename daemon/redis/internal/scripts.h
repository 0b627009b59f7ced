#pragma once
// The redis backend's Lua scripts (scripts.cc says what each takes and returns). Store::Open
// loads them; Store::Script and ScriptAsync run them by digest, and whole where a server
// does not know them yet.

namespace zerohop::redis {

extern const char kResolveScript[];     // walks one or more paths' directories: where each is
extern const char kCommitScript[];      // applies a transaction if what it read is unchanged
extern const char kNamesScript[];       // a page of a directory's names from every index bucket
extern const char kPutItemScript[];     // a put_item without a condition, in one step
extern const char kPutRecordsScript[];  // appends records to shards with dense sequence numbers
extern const char kSeekTimeScript[];    // the first record of a shard that arrived at or after a time

}  // namespace zerohop::redis
