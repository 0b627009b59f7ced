/* zerohop.h: the C ABI of libzerohop, for C programs and for bindings (Python ctypes/cffi,
 * Go cgo, Rust, ...). Every operation of the C++ Client, synchronous, thread-safe.
 *
 *   zh_client* c = zh_connect(NULL);              // ZEROHOP_SOCKET, ZEROHOP_ACCESS_KEY
 *   if (c == NULL) { fprintf(stderr, "%s\n", zh_last_error()); return 1; }
 *   zh_attrs* a = zh_attrs_new();
 *   zh_attrs_set_int64(a, "age", 40);
 *   int rc = zh_put_item(c, "/demo/people/alice", a, NULL, NULL);
 *   zh_attrs_free(a);
 *   if (rc != ZH_OK) fprintf(stderr, "put: %s\n", zh_last_error());
 *   zh_close(c);
 *
 * Errors: functions return a zh_code (0 is ZH_OK; the others are the codes of
 * absl::Status / gRPC); zh_last_error() gives the message of the calling thread's last
 * failure. Strings are NUL-terminated UTF-8 unless a length is passed beside them.
 * Results the library allocates are freed with their own zh_*_free; memory a result
 * points into lives as long as that result.
 */
#ifndef ZEROHOP_ZEROHOP_H_
#define ZEROHOP_ZEROHOP_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum zh_code {
    ZH_OK = 0,
    ZH_CANCELLED = 1,
    ZH_UNKNOWN = 2,
    ZH_INVALID_ARGUMENT = 3,
    ZH_DEADLINE_EXCEEDED = 4,
    ZH_NOT_FOUND = 5,
    ZH_ALREADY_EXISTS = 6,
    ZH_PERMISSION_DENIED = 7,
    ZH_RESOURCE_EXHAUSTED = 8,
    ZH_FAILED_PRECONDITION = 9,
    ZH_ABORTED = 10,
    ZH_OUT_OF_RANGE = 11,
    ZH_UNIMPLEMENTED = 12,
    ZH_INTERNAL = 13,
    ZH_UNAVAILABLE = 14,
    ZH_DATA_LOSS = 15,
    ZH_UNAUTHENTICATED = 16,
} zh_code;

/* The message of this thread's last failed call ("" if none). Valid until the thread's
 * next call into the library. */
const char* zh_last_error(void);
/* Frees memory the library handed out as a plain buffer (zh_readlink, zh_get_copy). */
void zh_free(void* p);

/* ---- sessions ------------------------------------------------------------------------- */

typedef struct zh_client zh_client;

typedef struct zh_options {
    const char* socket_path;  /* NULL: $ZEROHOP_SOCKET, else /run/zerohop/zerohop.sock */
    const char* access_key;   /* NULL: $ZEROHOP_ACCESS_KEY */
    uint64_t client_bytes;    /* 0: default (16 MiB) */
    uint64_t daemon_bytes;    /* 0: default (16 MiB) */
    uint32_t timeout_ms;      /* 0: default (30 s) */
    uint32_t reconnect_timeout_ms; /* 0: default (10 s) */
} zh_options;

/* NULL on failure (see zh_last_error). */
zh_client* zh_connect(const zh_options* options);
void zh_close(zh_client* c);
uint64_t zh_session_id(zh_client* c);

/* Bounds the calling thread's calls from now on: each gives up at this instant (nanoseconds
 * since the Unix epoch) with ZH_DEADLINE_EXCEEDED, its outcome unknown, when that comes
 * before the client's timeout. 0 removes the bound. (A binding whose callers move between
 * threads, like Go's goroutines, sets it, calls and clears it on one thread.) */
void zh_set_deadline(int64_t unix_nanos);

/* ---- metadata ------------------------------------------------------------------------- */

typedef enum zh_type {
    ZH_TYPE_OBJECT = 0,
    ZH_TYPE_DIRECTORY = 1,
    ZH_TYPE_STREAM = 2,
    ZH_TYPE_SYMLINK = 3,
    ZH_TYPE_SHARD = 4,
    ZH_TYPE_SPECIAL = 5, /* a FIFO, a device node or a unix socket (made through the mount) */
} zh_type;

typedef struct zh_info {
    int32_t type; /* zh_type */
    uint32_t mode;
    uint32_t uid;
    uint32_t gid;
    uint64_t id;
    uint64_t size;
    int64_t mtime_secs;
    int32_t mtime_nsecs;
    int64_t ctime_secs;
    int32_t ctime_nsecs;
    uint64_t last_sequence; /* shards */
    int64_t atime_secs;     /* set at creation and by set_metadata; reads do not move it */
    int32_t atime_nsecs;
    uint64_t subdirs;       /* directories: how many directories and streams it holds */
} zh_info;

/* ---- attributes ----------------------------------------------------------------------- */

typedef enum zh_value_type {
    ZH_BOOL = 1,
    ZH_INT64 = 2,
    ZH_DOUBLE = 3,
    ZH_STRING = 4,
    ZH_BLOB = 5,
    ZH_TIMESTAMP = 6,
    ZH_INT64_ARRAY = 7,
    ZH_DOUBLE_ARRAY = 8,
} zh_value_type;

/* A map of typed attributes: built by the caller for puts, returned by gets. */
typedef struct zh_attrs zh_attrs;

zh_attrs* zh_attrs_new(void);
void zh_attrs_free(zh_attrs* a);
size_t zh_attrs_count(const zh_attrs* a);
/* The i-th name (in name order), or NULL past the end. */
const char* zh_attrs_name(const zh_attrs* a, size_t i);
/* The type of `name`, or 0 when it is absent. */
int zh_attrs_type(const zh_attrs* a, const char* name);

/* Setters replace any value of that name; they fail only on a bad name. */
int zh_attrs_set_bool(zh_attrs* a, const char* name, int value);
int zh_attrs_set_int64(zh_attrs* a, const char* name, int64_t value);
int zh_attrs_set_double(zh_attrs* a, const char* name, double value);
int zh_attrs_set_string(zh_attrs* a, const char* name, const char* data, size_t size);
int zh_attrs_set_blob(zh_attrs* a, const char* name, const void* data, size_t size);
int zh_attrs_set_timestamp(zh_attrs* a, const char* name, int64_t secs, int32_t nsecs);
int zh_attrs_set_int64_array(zh_attrs* a, const char* name, const int64_t* values, size_t count);
int zh_attrs_set_double_array(zh_attrs* a, const char* name, const double* values, size_t count);
int zh_attrs_remove(zh_attrs* a, const char* name);

/* Getters: ZH_NOT_FOUND when absent, ZH_INVALID_ARGUMENT when of another type. Pointers
 * stay valid until the map changes or is freed. */
int zh_attrs_get_bool(const zh_attrs* a, const char* name, int* out);
int zh_attrs_get_int64(const zh_attrs* a, const char* name, int64_t* out);
int zh_attrs_get_double(const zh_attrs* a, const char* name, double* out);
int zh_attrs_get_string(const zh_attrs* a, const char* name, const char** data, size_t* size);
int zh_attrs_get_blob(const zh_attrs* a, const char* name, const void** data, size_t* size);
int zh_attrs_get_timestamp(const zh_attrs* a, const char* name, int64_t* secs, int32_t* nsecs);
int zh_attrs_get_int64_array(const zh_attrs* a, const char* name, const int64_t** values, size_t* count);
int zh_attrs_get_double_array(const zh_attrs* a, const char* name, const double** values, size_t* count);

/* ---- namespace ------------------------------------------------------------------------ */

/* A page of a listing (also the containers of the key with path "/"). */
typedef struct zh_list zh_list;

int zh_stat(zh_client* c, const char* path, zh_info* out);
/* prefix, marker: NULL for none; limit 0: default (1000). */
int zh_list_dir(zh_client* c, const char* path, const char* prefix, const char* marker, uint32_t limit,
                zh_list** out);
size_t zh_list_count(const zh_list* l);
const char* zh_list_name(const zh_list* l, size_t i);
const zh_info* zh_list_info(const zh_list* l, size_t i);
const char* zh_list_next_marker(const zh_list* l); /* "" when none */
int zh_list_truncated(const zh_list* l);           /* more entries follow */
void zh_list_free(zh_list* l);

int zh_mkdir(zh_client* c, const char* path, uint32_t mode);
int zh_rmdir(zh_client* c, const char* path);
int zh_rename(zh_client* c, const char* from, const char* to, int no_replace);
int zh_symlink(zh_client* c, const char* path, const char* target);
/* *target: NUL-terminated, freed with zh_free. */
int zh_readlink(zh_client* c, const char* path, char** target);
/* condition: NULL for none (docs/EXPRESSIONS.md). */
int zh_delete(zh_client* c, const char* path, const char* condition);

/* What zh_set_metadata changes: OR of these. */
enum { ZH_SET_MODE = 1, ZH_SET_UID = 2, ZH_SET_GID = 4, ZH_SET_MTIME = 8 };
int zh_set_metadata(zh_client* c, const char* path, uint32_t what, uint32_t mode, uint32_t uid, uint32_t gid,
                    int64_t mtime_secs, int32_t mtime_nsecs, zh_info* out);

/* ---- objects -------------------------------------------------------------------------- */

#define ZH_TO_END UINT64_MAX

/* The bytes of a get in place in shared memory (no copy), at most half the daemon region
 * per call; released by zh_view_release. */
typedef struct zh_view zh_view;

int zh_get(zh_client* c, const char* path, uint64_t offset, uint64_t length, zh_view** out);
const void* zh_view_data(const zh_view* v);
size_t zh_view_size(const zh_view* v);
const zh_info* zh_view_info(const zh_view* v);
void zh_view_release(zh_view* v);

/* A get of any size into memory the library allocates (free with zh_free). */
int zh_get_copy(zh_client* c, const char* path, uint64_t offset, uint64_t length, void** data, size_t* size);

/* attrs, condition, out: NULL for none. Objects of any size (large ones stream). */
int zh_put(zh_client* c, const char* path, const void* data, size_t size, const zh_attrs* attrs,
           const char* condition, zh_info* out);

/* Zero-copy puts: write the bytes straight into shared memory, then put the first `size`
 * of them. zh_put_buffer consumes the buffer, whatever it returns. */
typedef struct zh_buffer zh_buffer;
int zh_buffer_alloc(zh_client* c, size_t capacity, zh_buffer** out);
void* zh_buffer_data(zh_buffer* b);
size_t zh_buffer_capacity(const zh_buffer* b);
void zh_buffer_free(zh_buffer* b);
int zh_put_buffer(zh_client* c, const char* path, zh_buffer* b, size_t size, const zh_attrs* attrs,
                  const char* condition, zh_info* out);

int zh_write(zh_client* c, const char* path, uint64_t offset, const void* data, size_t size, zh_info* out);
int zh_append(zh_client* c, const char* path, const void* data, size_t size, zh_info* out);
int zh_truncate(zh_client* c, const char* path, uint64_t size, zh_info* out);

/* ---- items ---------------------------------------------------------------------------- */

/* names: the attributes to return (NULL/0: every user attribute; "**": system ones too). */
int zh_get_item(zh_client* c, const char* path, const char* const* names, size_t name_count, zh_attrs** out);

typedef struct zh_items zh_items;
typedef struct zh_scan {
    const char* filter;      /* NULL: every item */
    const char* const* names;
    size_t name_count;
    const char* marker;      /* NULL: from the start */
    uint32_t limit;          /* 0: default (1000) */
    uint32_t segment;        /* scan segment `segment` of `total_segments` (0 of 1: all) */
    uint32_t total_segments;
} zh_scan;
int zh_get_items(zh_client* c, const char* table, const zh_scan* scan, zh_items** out);
size_t zh_items_count(const zh_items* it);
const char* zh_items_name(const zh_items* it, size_t i);
const zh_attrs* zh_items_attrs(const zh_items* it, size_t i);
const char* zh_items_next_marker(const zh_items* it);
int zh_items_done(const zh_items* it);
void zh_items_free(zh_items* it);

int zh_put_item(zh_client* c, const char* path, const zh_attrs* attrs, const char* condition, zh_info* out);
/* Each item gets its own code in codes[i]; the call fails only as a whole (transport). */
int zh_put_items(zh_client* c, const char* const* paths, const zh_attrs* const* attrs, size_t count, int* codes);
/* condition, else_update: NULL for none. */
int zh_update_item(zh_client* c, const char* path, const char* update, const char* condition,
                   const char* else_update, zh_info* out);

/* ---- streams -------------------------------------------------------------------------- */

int zh_create_stream(zh_client* c, const char* path, uint32_t shard_count, int64_t retention_secs);
int zh_describe_stream(zh_client* c, const char* path, uint32_t* shard_count, int64_t* retention_secs);
int zh_delete_stream(zh_client* c, const char* path);

typedef struct zh_record_input {
    const void* data;
    size_t size;
    int32_t shard;              /* -1: by partition_key, else round robin */
    const char* partition_key;  /* NULL: none */
} zh_record_input;
typedef struct zh_record_result {
    int32_t code; /* zh_code of this record */
    uint32_t shard;
    uint64_t sequence;
} zh_record_result;
int zh_put_records(zh_client* c, const char* path, const zh_record_input* records, size_t count,
                   zh_record_result* results);

typedef enum zh_seek_type { ZH_SEEK_EARLIEST = 0, ZH_SEEK_LATEST = 1, ZH_SEEK_SEQUENCE = 2, ZH_SEEK_TIME = 3 } zh_seek_type;
/* The location to read from: shard and the next sequence number. */
int zh_seek(zh_client* c, const char* path, uint32_t shard, int type, uint64_t sequence, int64_t time_secs,
            int32_t time_nsecs, uint64_t* next_sequence);

typedef struct zh_records zh_records;
typedef struct zh_record {
    uint32_t shard;
    uint64_t sequence;
    int64_t arrival_secs;
    int32_t arrival_nsecs;
    const void* data;
    size_t size;
    const char* partition_key;
} zh_record;
/* limit 0: default (1000); max_bytes 0: default (8 MiB). */
int zh_get_records(zh_client* c, const char* path, uint32_t shard, uint64_t sequence, uint32_t limit,
                   uint64_t max_bytes, zh_records** out);
size_t zh_records_count(const zh_records* r);
int zh_records_get(const zh_records* r, size_t i, zh_record* out);
/* Where the next read continues. */
uint64_t zh_records_next_sequence(const zh_records* r);
void zh_records_free(zh_records* r);

/* ---- the rest ------------------------------------------------------------------------- */

int zh_sync(zh_client* c);
int zh_nop(zh_client* c);

typedef struct zh_daemon_status {
    uint32_t protocol_version;
    uint32_t workers;
    uint64_t sessions_open;
    uint64_t sessions_total;
    uint64_t sessions_refused;
    uint64_t requests;
    uint64_t request_errors;
    uint64_t bad_descriptors;
} zh_daemon_status;
int zh_status(zh_client* c, zh_daemon_status* out);

#ifdef __cplusplus
}
#endif

#endif /* ZEROHOP_ZEROHOP_H_ */
