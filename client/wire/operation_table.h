#pragma once
// Every operation in one table. What is per operation everywhere else is produced from
// here: the wire's Op enum and names (wire/protocol.h), the metric labels, the daemon's
// dispatch and its rights checks (daemon/server/dispatch.cc), libzerohop's synchronous and
// asynchronous calls and which of them it repeats after a daemon restart
// (client/src/client.cc), and the Backend interface's methods (daemon/backend/backend.h).
// docs/ARCHITECTURE.md says what else adding an operation takes.
//
// A row: X(Name, number, "name", Request, Result, Access, Repeat, Shape)
//   Name     Op::kName on the wire, Client::Name and NameAsync, Backend::Name
//   number   on the wire: never renumber, never reuse
//   "name"   in logs, metrics and error messages
//   Request  what the request body is (NoRequest: there is none)
//   Result   what the result body is (NoResult: the status alone)
//   Access   the right the session's key needs on the container of the request's path:
//            kRead, kWrite; kNone: no path (the daemon decides what the key may see)
//   Repeat   kRepeatable: doing it twice is doing it once (reads; set_metadata, which sets
//            given values: a repeat after another caller's change is a later change, last
//            wins as for any two), so libzerohop sends it again on the new session after a
//            restart; kOnce: never sent twice (truncate and writes too: a repeat would cut or
//            overwrite what another caller wrote in between)
//   Shape    Plain   a request body, then a result: generated everywhere
//            NoBody  no request body
//            Sink    a get: the bytes go to a DataSink (the session's shared region)
//            Source  a put: the bytes come from a DataSource (the client's region, chunks)
//            File    the object's local file: its descriptor comes on the session socket
//            Control not a call: the client handing a result buffer back

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "zerohop/operations.h"

namespace zerohop {

struct NoRequest {};
struct NoResult {};

// Names for the table's types that are not one word.
using ContainerNames = std::vector<std::string>;
using PutItemRequests = std::vector<PutItemRequest>;
using ItemStatuses = std::vector<absl::Status>;
using RecordResults = std::vector<RecordResult>;

// open_object_file's answer on the wire: the object's info and, when its bytes are in a
// local file, the tag of the message that carries its descriptor on the session socket
// (0: no file). The backend's result is an ObjectFile.
struct ObjectFileAnswer {
    ObjectInfo info;
    uint64_t file_tag = 0;
};

}  // namespace zerohop

// Answered by zerohopd itself: the session's own operations.
#define ZH_SESSION_OPERATIONS(X)                                                                     \
    X(Nop, 0, "nop", NoRequest, NoResult, kNone, kRepeatable, NoBody)                                \
    X(Status, 51, "status", NoRequest, DaemonStatus, kNone, kRepeatable, NoBody)                     \
    X(Info, 52, "info", NoRequest, DaemonInfo, kNone, kRepeatable, NoBody)                           \
    X(PublishVolume, 53, "publish_volume", PublishVolumeRequest, PublishedVolume, kNone, kRepeatable, Plain) \
    X(UnpublishVolume, 54, "unpublish_volume", UnpublishVolumeRequest, NoResult, kNone, kRepeatable, Plain) \
    X(Release, 60, "release", NoRequest, NoResult, kNone, kRepeatable, Control)

// Every backend implements these (see daemon/backend/backend.h).
#define ZH_BACKEND_OPERATIONS(X)                                                                     \
    X(ListContainers, 1, "list_containers", NoRequest, ContainerNames, kNone, kRepeatable, NoBody)   \
    X(Stat, 2, "stat", Path, ObjectInfo, kRead, kRepeatable, Plain)                                  \
    X(List, 3, "list", ListRequest, ListResult, kRead, kRepeatable, Plain)                           \
    X(Mkdir, 4, "mkdir", MkdirRequest, ObjectInfo, kWrite, kOnce, Plain)                             \
    X(Rmdir, 5, "rmdir", Path, NoResult, kWrite, kOnce, Plain)                                       \
    X(Rename, 6, "rename", RenameRequest, NoResult, kWrite, kOnce, Plain)                            \
    X(Symlink, 7, "symlink", SymlinkRequest, ObjectInfo, kWrite, kOnce, Plain)                       \
    X(Readlink, 8, "readlink", Path, std::string, kRead, kRepeatable, Plain)                         \
    X(Delete, 9, "delete", DeleteRequest, NoResult, kWrite, kOnce, Plain)                            \
    X(SetMetadata, 10, "set_metadata", SetMetadataRequest, ObjectInfo, kWrite, kRepeatable, Plain)   \
    X(Mknod, 11, "mknod", MknodRequest, ObjectInfo, kWrite, kOnce, Plain)                            \
    X(GetObject, 20, "get_object", GetObjectRequest, GetObjectResult, kRead, kRepeatable, Sink)      \
    X(PutObject, 21, "put_object", PutObjectRequest, ObjectInfo, kWrite, kOnce, Source)              \
    X(WriteObject, 22, "write_object", WriteObjectRequest, ObjectInfo, kWrite, kOnce, Plain)         \
    X(Append, 23, "append", AppendRequest, ObjectInfo, kWrite, kOnce, Plain)                         \
    X(Truncate, 24, "truncate", TruncateRequest, ObjectInfo, kWrite, kOnce, Plain)                   \
    X(OpenObjectFile, 25, "open_object_file", Path, ObjectFileAnswer, kWrite, kRepeatable, File)     \
    X(GetItem, 30, "get_item", GetItemRequest, Item, kRead, kRepeatable, Plain)                      \
    X(GetItems, 31, "get_items", GetItemsRequest, GetItemsResult, kRead, kRepeatable, Plain)         \
    X(PutItem, 32, "put_item", PutItemRequest, ObjectInfo, kWrite, kOnce, Plain)                     \
    X(PutItems, 33, "put_items", PutItemRequests, ItemStatuses, kWrite, kOnce, Plain)                \
    X(UpdateItem, 34, "update_item", UpdateItemRequest, ObjectInfo, kWrite, kOnce, Plain)            \
    X(CreateStream, 40, "create_stream", CreateStreamRequest, ObjectInfo, kWrite, kOnce, Plain)      \
    X(DescribeStream, 41, "describe_stream", Path, StreamDescription, kRead, kRepeatable, Plain)      \
    X(DeleteStream, 42, "delete_stream", Path, NoResult, kWrite, kOnce, Plain)                       \
    X(PutRecords, 43, "put_records", PutRecordsRequest, RecordResults, kWrite, kOnce, Plain)         \
    X(Seek, 44, "seek", SeekRequest, StreamLocation, kRead, kRepeatable, Plain)                      \
    X(GetRecords, 45, "get_records", GetRecordsRequest, GetRecordsResult, kRead, kRepeatable, Plain) \
    X(Sync, 50, "sync", NoRequest, NoResult, kNone, kRepeatable, NoBody)

#define ZH_OPERATIONS(X)      \
    ZH_SESSION_OPERATIONS(X) \
    ZH_BACKEND_OPERATIONS(X)
