// The embedded store's objects: bytes inline in RocksDB up to inline_max_bytes, else in an
// object file per version, written before the entry that points at it commits; get, put,
// write at an offset, append, truncate.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/strings/str_format.h"
#include "backend/rules.h"
#include "base/status_macros.h"
#include "embedded/internal/store.h"
#include "rocksdb/write_batch.h"
#include "zerohop/status.h"

namespace zerohop {

using embedded::DataKey;
using embedded::EncodeEntry;
using embedded::EntryKey;
using embedded::ErrnoStatus;
using embedded::FileKey;
using embedded::LockMode;
using embedded::LockSet;
using embedded::ToSlice;

namespace {

constexpr size_t kFileChunk = 1 << 20;

}  // namespace

ObjectFileCalls* EmbeddedBackend::Store::SystemFileCalls() {
    struct System final : ObjectFileCalls {
        int Open(const char* path, int flags, mode_t mode) override { return ::open(path, flags, mode); }
        ssize_t Pwrite(int fd, const void* data, size_t n, off_t offset) override {
            return ::pwrite(fd, data, n, offset);
        }
        int Ftruncate(int fd, off_t size) override { return ::ftruncate(fd, size); }
        int Fdatasync(int fd) override { return ::fdatasync(fd); }
        int Fsync(int fd) override { return ::fsync(fd); }
        int Syncfs(int fd) override { return ::syncfs(fd); }
        int Unlink(const char* path) override { return ::unlink(path); }
    };
    static System system;
    return &system;
}

// ---- object files -------------------------------------------------------------------

std::string EmbeddedBackend::Store::FileName(uint64_t data_id) { return absl::StrFormat("%016x", data_id); }

std::string EmbeddedBackend::Store::FilePath(uint64_t data_id) const {
    return absl::StrCat(options_.dir, "/objects/", FileName(data_id));
}

absl::StatusOr<shmring::UniqueFd> EmbeddedBackend::Store::CreateFile(uint64_t* data_id_out) {
    ZH_ASSIGN_OR_RETURN(auto id, NewId());
    uint64_t data_id = *data_id_out = id;
    shmring::UniqueFd fd(calls_->Open(FilePath(data_id).c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0640));
    if (!fd.valid()) {
        return ErrnoStatus(errno, absl::StrFormat("create object file %s", FilePath(data_id)));
    }
    return fd;
}

absl::StatusOr<shmring::UniqueFd> EmbeddedBackend::Store::OpenFile(uint64_t data_id, int flags) {
    shmring::UniqueFd fd(calls_->Open(FilePath(data_id).c_str(), flags | O_CLOEXEC, 0));
    if (!fd.valid()) {
        if (errno == ENOENT) {
            return absl::DataLossError(absl::StrFormat("embedded store: object file %s is missing", FilePath(data_id)));
        }
        return ErrnoStatus(errno, absl::StrFormat("open object file %s", FilePath(data_id)));
    }
    return fd;
}

absl::Status EmbeddedBackend::Store::WriteFully(int fd, const char* data, size_t n, uint64_t offset,
                                                uint64_t data_id) {
    while (n > 0) {
        ssize_t w = calls_->Pwrite(fd, data, n, static_cast<off_t>(offset));
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ErrnoStatus(errno, absl::StrFormat("write object file %s", FilePath(data_id)));
        }
        data += w;
        n -= static_cast<size_t>(w);
        offset += static_cast<uint64_t>(w);
    }
    return absl::OkStatus();
}

void EmbeddedBackend::Store::RemoveFile(uint64_t data_id) {
    if (reaper_) {
        reaper_([calls = calls_, path = FilePath(data_id)] { calls->Unlink(path.c_str()); });
    } else {
        calls_->Unlink(FilePath(data_id).c_str());
    }
}

absl::Status EmbeddedBackend::Store::SyncFile(int fd, bool created, const Path& path) {
    if (!options_.sync_writes) {
        return absl::OkStatus();
    }
    if (calls_->Fdatasync(fd) != 0) {
        return ErrnoStatus(errno, absl::StrFormat("sync %s", path.str()));
    }
    // A new file's name lives in the directory: without this a power cut can take the file
    // away from under the entry that names it.
    if (created && calls_->Fsync(objects_dir_.get()) != 0) {
        return ErrnoStatus(errno, absl::StrFormat("sync the objects directory for %s", path.str()));
    }
    return absl::OkStatus();
}

absl::StatusOr<std::string> EmbeddedBackend::Store::ReadInline(uint64_t object_id) {
    std::string bytes;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), data_, ToSlice(DataKey(object_id)), &bytes);
    if (s.IsNotFound()) {
        return std::string();
    }
    if (!s.ok()) {
        return FromRocks(s, "read object bytes");
    }
    return bytes;
}

// ---- objects --------------------------------------------------------------------------

absl::StatusOr<EmbeddedBackend::Store::ObjectRead> EmbeddedBackend::Store::OpenObject(const GetObjectRequest& req) {
    ZH_ASSIGN_OR_RETURN(auto loc, Locate(req.path));
    ObjectRead out;
    out.path = req.path;
    {
        // Shared: the entry and its bytes are read as one version.
        LockSet locks(&locks_, {{loc.parent, req.path.name(), LockMode::kShared}});
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(req.path, loc));
        ZH_RETURN_IF_ERROR(CheckReadable(req.path, e.info));
        out.info = e.info;
        if (e.data_id == 0) {
            ZH_ASSIGN_OR_RETURN(auto bytes, ReadInline(e.info.id));
            out.inline_bytes = std::move(bytes);
        } else {
            // An open fd keeps this version readable even if a put replaces it meanwhile.
            ZH_ASSIGN_OR_RETURN(auto f, OpenFile(e.data_id, O_RDONLY));
            out.fd = std::move(f);
        }
    }
    uint64_t size = out.info.size;
    out.begin = std::min(req.offset, size);
    out.end = out.begin + std::min(req.length, size - out.begin);
    return out;
}

absl::StatusOr<ObjectFile> EmbeddedBackend::Store::OpenObjectFile(const Path& path) {
    {
        ZH_ASSIGN_OR_RETURN(auto loc, Locate(path));
        LockSet locks(&locks_, {{loc.parent, path.name(), LockMode::kShared}});
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(path, loc));
        ZH_RETURN_IF_ERROR(CheckReadable(path, e.info));
        if (e.data_id == 0) {
            return ObjectFile(std::move(e.info), -1);  // inline: no file to hand out
        }
        if (e.sized_by_file) {
            ZH_ASSIGN_OR_RETURN(auto f, OpenFile(e.data_id, O_RDONLY));
            return ObjectFile(std::move(e.info), f.release());
        }
    }
    // Handed out for the first time: whoever holds it may write it (the kernel, for FUSE
    // passthrough), so from now on the file's size and times are the object's. Its tail
    // past the entry's size (a growth whose commit failed) is cut first, and it takes the
    // entry's mtime, so that the object reads the same before and after.
    return WithEntryLocked(path, [&](const Location& loc) -> absl::StatusOr<ObjectFile> {
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(path, loc));
        ZH_RETURN_IF_ERROR(CheckReadable(path, e.info));
        if (e.data_id == 0 || (!e.sized_by_file && !CheckTakesWrites().ok())) {
            // (A store that takes no writes cannot mark it: no file, the daemon's way.)
            return ObjectFile(std::move(e.info), -1);
        }
        if (!e.sized_by_file) {
            ZH_ASSIGN_OR_RETURN(auto w, OpenFile(e.data_id, O_WRONLY));
            ZH_RETURN_IF_ERROR(OpenGap(w.get(), e.info.size, path));
            ZH_RETURN_IF_ERROR(StampFile(w.get(), e.info.mtime, path));
            ZH_RETURN_IF_ERROR(SyncFile(w.get(), /*created=*/false, path));
            e.sized_by_file = true;
            rocksdb::WriteBatch batch;
            batch.Put(meta_, EntryKey(loc.parent, path.name()), EncodeEntry(e));
            ZH_RETURN_IF_ERROR(Commit(&batch));
            ZH_RETURN_IF_ERROR(SizeByFile(&e));
        }
        ZH_ASSIGN_OR_RETURN(auto f, OpenFile(e.data_id, O_RDONLY));
        return ObjectFile(std::move(e.info), f.release());
    });
}

absl::StatusOr<GetObjectResult> EmbeddedBackend::Store::ReadObject(const ObjectRead& read, DataSink* sink) {
    GetObjectResult out;
    out.info = read.info;
    out.bytes = read.end - read.begin;
    if (!read.fd.valid()) {
        std::string_view all(read.inline_bytes);
        std::string_view part = read.begin < all.size() ? all.substr(read.begin, read.end - read.begin)
                                                        : std::string_view();
        ZH_RETURN_IF_ERROR(sink->Write(part));
        out.bytes = part.size();
        return out;
    }
    // Straight into the sink's memory when it has some (the daemon's shared region).
    char* placed = sink->Placement();
    std::string buf;
    if (placed == nullptr) {
        buf.resize(static_cast<size_t>(std::min<uint64_t>(kFileChunk, std::max<uint64_t>(read.end - read.begin, 1))));
    }
    uint64_t pos = read.begin;
    while (pos < read.end) {
        char* into = placed != nullptr ? placed + (pos - read.begin) : buf.data();
        size_t want = static_cast<size_t>(placed != nullptr ? read.end - pos : std::min<uint64_t>(buf.size(), read.end - pos));
        ssize_t r = ::pread(read.fd.get(), into, want, static_cast<off_t>(pos));
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ErrnoStatus(errno, absl::StrFormat("read %s", read.path.str()));
        }
        if (r == 0) {
            // A short file (a truncate of this version racing the read) reads as zeros up to the size.
            std::memset(into, 0, want);
            r = static_cast<ssize_t>(want);
        }
        if (placed == nullptr) {
            ZH_RETURN_IF_ERROR(sink->Write(std::string_view(into, static_cast<size_t>(r))));
        }
        pos += static_cast<uint64_t>(r);
    }
    return out;
}

absl::StatusOr<GetObjectResult> EmbeddedBackend::Store::GetObject(const GetObjectRequest& req, DataSink* sink) {
    if (sink == nullptr) {
        return absl::InvalidArgumentError("get: no sink for the bytes");
    }
    ZH_ASSIGN_OR_RETURN(auto read, OpenObject(req));
    ZH_RETURN_IF_ERROR(sink->Expect(read.end - read.begin));
    return ReadObject(read, sink);
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::PutObject(const PutObjectRequest& req, DataSource* data) {
    ZH_ASSIGN_OR_RETURN(auto attributes, CheckPut(req));
    std::string encoded = std::move(attributes);
    // Stream the bytes in before taking any lock: small ones into memory, large ones into a
    // new file that becomes visible only when the entry pointing at it commits.
    std::string head;
    uint64_t size = 0;
    uint64_t data_id = 0;
    shmring::UniqueFd fd;
    auto discard = [&] {
        if (data_id != 0) {
            RemoveFile(data_id);
        }
    };
    if (data != nullptr) {
        // Buffers no larger than the bytes need: a small put (a create is an empty one) must
        // not pay for zeroing an inline object's worth of memory, nor a file chunk's.
        std::optional<uint64_t> announced = data->size();
        std::unique_ptr<char[]> chunk;  // once the bytes go to a file (not zeroed)
        while (true) {
            size_t cap = fd.valid() ? kFileChunk : options_.inline_max_bytes + 1 - head.size();
            if (!fd.valid() && announced && head.size() <= *announced) {
                cap = static_cast<size_t>(std::min<uint64_t>(cap, *announced + 1 - head.size()));  // +1: the end
            }
            char* dst = chunk.get();
            if (!fd.valid()) {
                size_t old = head.size();
                head.resize(old + cap);
                dst = head.data() + old;
            }
            auto n = data->Read(dst, cap);
            if (!fd.valid()) {
                head.resize(head.size() - cap + (n.ok() ? *n : 0));
            }
            if (!n.ok()) {
                discard();
                return n.status();
            }
            if (*n == 0) {
                break;
            }
            if (fd.valid()) {
                if (absl::Status s = WriteFully(fd.get(), chunk.get(), *n, size, data_id); !s.ok()) {
                    discard();
                    return s;
                }
            }
            size += *n;
            if (absl::Status s = CheckObjectSize(req.path, size); !s.ok()) {
                discard();
                return s;
            }
            if (!fd.valid() && head.size() > options_.inline_max_bytes) {
                ZH_ASSIGN_OR_RETURN(auto f, CreateFile(&data_id));
                fd = std::move(f);
                if (absl::Status s = WriteFully(fd.get(), head.data(), head.size(), 0, data_id); !s.ok()) {
                    discard();
                    return s;
                }
                head.clear();
                head.shrink_to_fit();
                chunk.reset(new char[kFileChunk]);
            }
        }
        if (absl::Status s = fd.valid() ? SyncFile(fd.get(), /*created=*/true, req.path) : absl::OkStatus(); !s.ok()) {
            discard();
            return s;
        }
    }
    uint64_t replaced_file = 0;
    auto result = WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        ZH_RETURN_IF_ERROR(CheckWritableParent(req.path, loc));
        ZH_ASSIGN_OR_RETURN(auto old, GetEntry(loc.parent, req.path.name()));
        ZH_RETURN_IF_ERROR(CheckObjectReplaces(req.path, old ? &old->info : nullptr));
        ZH_RETURN_IF_ERROR(CheckCondition(req.path, req.condition, old));
        Entry e;
        Timestamp now = Now();
        if (old) {
            e.info = old->info;
        } else {
            ZH_ASSIGN_OR_RETURN(auto id, NewId());
            e = embedded::NewEntry(ObjectType::kObject, id, 0644, req.caller.uid, req.caller.gid, now);
        }
        if (req.mode) {
            e.info.mode = *req.mode & 07777;
        }
        e.info.type = ObjectType::kObject;
        e.info.size = size;
        e.info.mtime = e.info.ctime = now;
        e.data_id = data_id;
        e.attributes = encoded;
        rocksdb::WriteBatch batch;
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        if (!old) {
            TouchDir(&batch, loc.parent, now);
        }
        if (data_id == 0) {
            batch.Put(data_, DataKey(e.info.id), head);
        } else {
            batch.Delete(data_, DataKey(e.info.id));
            batch.Put(meta_, FileKey(data_id), "");
        }
        if (old && old->data_id != 0) {
            batch.Delete(meta_, FileKey(old->data_id));
            replaced_file = old->data_id;
        }
        ZH_RETURN_IF_ERROR(Commit(&batch));
        return e.info;
    });
    if (!result.ok()) {
        discard();
        return result;
    }
    if (replaced_file != 0) {
        RemoveFile(replaced_file);
    }
    return result;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::WriteAt(const Path& path, std::optional<uint64_t> offset,
                                                           std::string_view data) {
    uint64_t new_file = 0;
    auto result = WithEntryLocked(path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(path, loc));
        ZH_RETURN_IF_ERROR(CheckWritable(path, e.info));
        uint64_t off = offset.value_or(e.info.size);
        ZH_RETURN_IF_ERROR(CheckWriteRange(path, off, data.size()));
        uint64_t end = off + data.size();
        uint64_t new_size = std::max(e.info.size, end);
        Timestamp now = Now();
        rocksdb::WriteBatch batch;
        if (e.data_id == 0 && new_size <= options_.inline_max_bytes) {
            ZH_ASSIGN_OR_RETURN(auto bytes, ReadInline(e.info.id));
            bytes.resize(static_cast<size_t>(new_size), '\0');
            if (!data.empty()) {
                std::memcpy(bytes.data() + off, data.data(), data.size());
            }
            batch.Put(data_, DataKey(e.info.id), bytes);
        } else if (e.data_id == 0) {
            // Outgrows inline storage: move to a file.
            ZH_ASSIGN_OR_RETURN(auto bytes, ReadInline(e.info.id));
            ZH_ASSIGN_OR_RETURN(auto fd, CreateFile(&new_file));
            bytes.resize(static_cast<size_t>(e.info.size), '\0');
            ZH_RETURN_IF_ERROR(WriteFully(fd.get(), bytes.data(), bytes.size(), 0, new_file));
            ZH_RETURN_IF_ERROR(WriteFully(fd.get(), data.data(), data.size(), off, new_file));
            if (calls_->Ftruncate(fd.get(), static_cast<off_t>(new_size)) != 0) {
                return ErrnoStatus(errno, absl::StrFormat("extend %s", path.str()));
            }
            ZH_RETURN_IF_ERROR(SyncFile(fd.get(), /*created=*/true, path));
            batch.Delete(data_, DataKey(e.info.id));
            batch.Put(meta_, FileKey(new_file), "");
            e.data_id = new_file;
        } else {
            ZH_ASSIGN_OR_RETURN(auto fd, OpenFile(e.data_id, O_WRONLY));
            if (off > e.info.size) {
                ZH_RETURN_IF_ERROR(OpenGap(fd.get(), e.info.size, path));
            }
            ZH_RETURN_IF_ERROR(WriteFully(fd.get(), data.data(), data.size(), off, e.data_id));
            if (e.sized_by_file) {
                ZH_RETURN_IF_ERROR(StampFile(fd.get(), now, path));
            }
            ZH_RETURN_IF_ERROR(SyncFile(fd.get(), /*created=*/false, path));
        }
        e.info.size = new_size;
        e.info.mtime = e.info.ctime = now;
        batch.Put(meta_, EntryKey(loc.parent, path.name()), EncodeEntry(e));
        ZH_RETURN_IF_ERROR(Commit(&batch));
        new_file = 0;  // committed: keep it
        return e.info;
    });
    if (new_file != 0) {
        RemoveFile(new_file);
    }
    return result;
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::WriteObject(const WriteObjectRequest& req) {
    return WriteAt(req.path, req.offset, req.data);
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Append(const AppendRequest& req) {
    return WriteAt(req.path, std::nullopt, req.data);
}

absl::StatusOr<ObjectInfo> EmbeddedBackend::Store::Truncate(const TruncateRequest& req) {
    ZH_RETURN_IF_ERROR(CheckTruncate(req));
    uint64_t new_file = 0;
    auto result = WithEntryLocked(req.path, [&](const Location& loc) -> absl::StatusOr<ObjectInfo> {
        ZH_ASSIGN_OR_RETURN(auto e, GetExisting(req.path, loc));
        ZH_RETURN_IF_ERROR(CheckWritable(req.path, e.info));
        rocksdb::WriteBatch batch;
        shmring::UniqueFd fd;
        bool shrink_after = false;
        if (e.data_id == 0 && req.size <= options_.inline_max_bytes) {
            ZH_ASSIGN_OR_RETURN(auto bytes, ReadInline(e.info.id));
            bytes.resize(static_cast<size_t>(req.size), '\0');
            batch.Put(data_, DataKey(e.info.id), bytes);
        } else if (e.data_id == 0) {
            // Outgrows inline storage: move to a file.
            ZH_ASSIGN_OR_RETURN(auto bytes, ReadInline(e.info.id));
            ZH_ASSIGN_OR_RETURN(fd, CreateFile(&new_file));
            ZH_RETURN_IF_ERROR(WriteFully(fd.get(), bytes.data(), bytes.size(), 0, new_file));
            if (calls_->Ftruncate(fd.get(), static_cast<off_t>(req.size)) != 0) {
                return ErrnoStatus(errno, absl::StrFormat("truncate %s", req.path.str()));
            }
            ZH_RETURN_IF_ERROR(SyncFile(fd.get(), /*created=*/true, req.path));
            batch.Delete(data_, DataKey(e.info.id));
            batch.Put(meta_, FileKey(new_file), "");
            e.data_id = new_file;
        } else {
            ZH_ASSIGN_OR_RETURN(fd, OpenFile(e.data_id, O_WRONLY));
            if (req.size > e.info.size) {
                ZH_RETURN_IF_ERROR(OpenGap(fd.get(), e.info.size, req.path));
                if (calls_->Ftruncate(fd.get(), static_cast<off_t>(req.size)) != 0) {
                    return ErrnoStatus(errno, absl::StrFormat("truncate %s", req.path.str()));
                }
                ZH_RETURN_IF_ERROR(SyncFile(fd.get(), /*created=*/false, req.path));
            } else if (e.sized_by_file) {
                // Its size is the file's: only the cut makes it shorter.
                if (calls_->Ftruncate(fd.get(), static_cast<off_t>(req.size)) != 0) {
                    return ErrnoStatus(errno, absl::StrFormat("truncate %s", req.path.str()));
                }
                ZH_RETURN_IF_ERROR(SyncFile(fd.get(), /*created=*/false, req.path));
            } else {
                // A shrink commits first and cuts the file after: until then its tail lies past
                // the entry's size, where no read reaches. Cut first, a failed commit would
                // leave an acknowledged object shorter than its size says.
                shrink_after = true;
            }
        }
        e.info.size = req.size;
        e.info.mtime = e.info.ctime = Now();
        if (e.sized_by_file) {
            ZH_RETURN_IF_ERROR(StampFile(fd.get(), e.info.mtime, req.path));
        }
        batch.Put(meta_, EntryKey(loc.parent, req.path.name()), EncodeEntry(e));
        ZH_RETURN_IF_ERROR(Commit(&batch));
        new_file = 0;
        if (shrink_after) {
            // Best effort: a tail left here is cut by the next growth (OpenGap).
            (void)calls_->Ftruncate(fd.get(), static_cast<off_t>(req.size));
            (void)SyncFile(fd.get(), /*created=*/false, req.path);
        }
        return e.info;
    });
    if (new_file != 0) {
        RemoveFile(new_file);
    }
    return result;
}

absl::Status EmbeddedBackend::Store::OpenGap(int fd, uint64_t size, const Path& path) {
    if (calls_->Ftruncate(fd, static_cast<off_t>(size)) != 0) {
        return ErrnoStatus(errno, absl::StrFormat("truncate %s", path.str()));
    }
    return absl::OkStatus();
}

}  // namespace zerohop
