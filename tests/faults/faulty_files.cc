#include "faults/faulty_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <random>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "rocksdb/file_system.h"

namespace zerohop {

namespace {

using Kind = FaultyFiles::Kind;
using Call = FaultyFiles::Call;

std::string_view Parent(std::string_view path) {
    size_t slash = path.rfind('/');
    return slash == std::string_view::npos ? std::string_view() : path.substr(0, slash);
}

std::string Normalized(std::string dir) {
    while (dir.size() > 1 && dir.back() == '/') {
        dir.pop_back();
    }
    return dir;
}

std::optional<Kind> KindOf(std::string_view path) {
    std::string_view base = path.substr(path.rfind('/') + 1);
    if (path.find("/objects/") != std::string_view::npos) {
        return Kind::kObject;
    }
    if (base.ends_with(".log")) {
        return Kind::kWal;
    }
    if (base.ends_with(".sst")) {
        return Kind::kTable;
    }
    if (base.starts_with("MANIFEST")) {
        return Kind::kManifest;
    }
    return std::nullopt;
}

rocksdb::IOStatus ToIOStatus(int error, std::string_view what) {
    std::string msg = absl::StrCat("injected fault: ", std::string(what), ": ", std::strerror(error));
    return error == ENOSPC ? rocksdb::IOStatus::NoSpace(msg) : rocksdb::IOStatus::IOError(msg);
}

std::string FdPath(int fd) {
    char link[64];
    char target[4096];
    std::snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = ::readlink(link, target, sizeof target - 1);
    return n > 0 ? std::string(target, static_cast<size_t>(n)) : std::string();
}

}  // namespace

struct FaultyFiles::State {
    struct File {
        uint64_t size = 0;
        uint64_t synced = 0;
        bool name_durable = true;
    };
    struct Fault {
        Call call;
        Kind kind;
        int error;
    };

    // The errno a changing `call` on `path` fails with, or 0.
    int Check(Call call, std::string_view path) {
        absl::MutexLock lock(&mu);
        ++calls;
        if (cut_after >= 0 && calls > cut_after) {
            cut = true;
        }
        if (cut) {
            ++failed;
            return EIO;
        }
        std::optional<Kind> kind = KindOf(path);
        for (const Fault& f : faults) {
            if (f.call == call && (f.kind == Kind::kAny || f.kind == kind)) {
                ++failed;
                return f.error;
            }
        }
        return 0;
    }
    // For unlinks: only the power cut fails them (a full or failing disk still removes files).
    int CheckCut() {
        absl::MutexLock lock(&mu);
        ++calls;
        if (cut_after >= 0 && calls > cut_after) {
            cut = true;
        }
        failed += cut ? 1 : 0;
        return cut ? EIO : 0;
    }
    bool TakeTear(std::string_view path) {
        absl::MutexLock lock(&mu);
        if (tear && (*tear == Kind::kAny || *tear == KindOf(path))) {
            tear.reset();
            ++failed;
            return true;
        }
        return false;
    }
    void Created(const std::string& path) {
        absl::MutexLock lock(&mu);
        files[path] = File{.size = 0, .synced = 0, .name_durable = false};
    }
    // A file opened for writing that was there before: what it holds now counts as durable.
    void Opened(const std::string& path, uint64_t size) {
        absl::MutexLock lock(&mu);
        files.try_emplace(path, File{.size = size, .synced = size, .name_durable = true});
    }
    void Wrote(const std::string& path, uint64_t end) {
        absl::MutexLock lock(&mu);
        File& f = files[path];
        f.size = std::max(f.size, end);
    }
    void Appended(const std::string& path, uint64_t n) {
        absl::MutexLock lock(&mu);
        files[path].size += n;
    }
    void Truncated(const std::string& path, uint64_t size) {
        absl::MutexLock lock(&mu);
        File& f = files[path];
        f.size = size;
        f.synced = std::min(f.synced, size);
    }
    void Synced(const std::string& path) {
        absl::MutexLock lock(&mu);
        auto it = files.find(path);
        if (it != files.end()) {
            it->second.synced = it->second.size;
        }
    }
    void DirSynced(const std::string& dir) {
        absl::MutexLock lock(&mu);
        std::string d = Normalized(dir);
        for (auto& [path, f] : files) {
            if (Parent(path) == d) {
                f.name_durable = true;
            }
        }
    }
    void SyncedAll() {
        absl::MutexLock lock(&mu);
        for (auto& [path, f] : files) {
            f.synced = f.size;
            f.name_durable = true;
        }
    }
    void Removed(const std::string& path) {
        absl::MutexLock lock(&mu);
        files.erase(path);
    }
    void Renamed(const std::string& from, const std::string& to) {
        absl::MutexLock lock(&mu);
        auto it = files.find(from);
        if (it == files.end()) {
            files.erase(to);
            return;
        }
        File f = it->second;
        f.name_durable = true;  // renames are not undone by a cut (see the header)
        files.erase(it);
        files[to] = f;
    }

    absl::Mutex mu;
    std::map<std::string, File> files ABSL_GUARDED_BY(mu);  // written since the last restore
    std::vector<Fault> faults ABSL_GUARDED_BY(mu);
    std::optional<Kind> tear ABSL_GUARDED_BY(mu);
    int failed ABSL_GUARDED_BY(mu) = 0;
    int calls ABSL_GUARDED_BY(mu) = 0;
    int cut_after ABSL_GUARDED_BY(mu) = -1;
    bool cut ABSL_GUARDED_BY(mu) = false;
};

namespace {

using State = FaultyFiles::State;

class FaultyWritableFile final : public rocksdb::FSWritableFileOwnerWrapper {
public:
    FaultyWritableFile(std::unique_ptr<rocksdb::FSWritableFile> target, std::string path,
                       std::shared_ptr<State> state)
        : FSWritableFileOwnerWrapper(std::move(target)), path_(std::move(path)), state_(std::move(state)) {}

    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             rocksdb::IODebugContext* dbg) override {
        return Write(data, [&](const rocksdb::Slice& d) { return target()->Append(d, options, dbg); });
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& options,
                             const rocksdb::DataVerificationInfo& info, rocksdb::IODebugContext* dbg) override {
        return Write(data, [&](const rocksdb::Slice& d) { return target()->Append(d, options, info, dbg); });
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                       const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
        if (int e = state_->Check(Call::kWrite, path_)) {
            return ToIOStatus(e, path_);
        }
        rocksdb::IOStatus s = target()->PositionedAppend(data, offset, options, dbg);
        if (s.ok()) {
            state_->Wrote(path_, offset + data.size());
        }
        return s;
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, uint64_t offset,
                                       const rocksdb::IOOptions& options, const rocksdb::DataVerificationInfo&,
                                       rocksdb::IODebugContext* dbg) override {
        return PositionedAppend(data, offset, options, dbg);
    }
    rocksdb::IOStatus Truncate(uint64_t size, const rocksdb::IOOptions& options,
                               rocksdb::IODebugContext* dbg) override {
        if (int e = state_->Check(Call::kWrite, path_)) {
            return ToIOStatus(e, path_);
        }
        rocksdb::IOStatus s = target()->Truncate(size, options, dbg);
        if (s.ok()) {
            state_->Truncated(path_, size);
        }
        return s;
    }
    rocksdb::IOStatus Sync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
        return SyncWith([&] { return target()->Sync(options, dbg); });
    }
    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
        return SyncWith([&] { return target()->Fsync(options, dbg); });
    }

private:
    template <typename Fn>
    rocksdb::IOStatus Write(const rocksdb::Slice& data, Fn&& append) {
        if (int e = state_->Check(Call::kWrite, path_)) {
            return ToIOStatus(e, path_);
        }
        if (state_->TakeTear(path_)) {
            rocksdb::Slice half(data.data(), data.size() / 2);
            if (append(half).ok()) {
                state_->Appended(path_, half.size());
            }
            return ToIOStatus(EIO, absl::StrCat(path_, " (torn write)"));
        }
        rocksdb::IOStatus s = append(data);
        if (s.ok()) {
            state_->Appended(path_, data.size());
        }
        return s;
    }
    template <typename Fn>
    rocksdb::IOStatus SyncWith(Fn&& sync) {
        if (int e = state_->Check(Call::kSync, path_)) {
            return ToIOStatus(e, path_);
        }
        rocksdb::IOStatus s = sync();
        if (s.ok()) {
            state_->Synced(path_);
        }
        return s;
    }

    std::string path_;
    std::shared_ptr<State> state_;
};

class FaultyDirectory final : public rocksdb::FSDirectoryWrapper {
public:
    FaultyDirectory(std::unique_ptr<rocksdb::FSDirectory> target, std::string path, std::shared_ptr<State> state)
        : FSDirectoryWrapper(std::move(target)), path_(std::move(path)), state_(std::move(state)) {}

    rocksdb::IOStatus Fsync(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg) override {
        return SyncWith([&] { return FSDirectoryWrapper::Fsync(options, dbg); });
    }
    rocksdb::IOStatus FsyncWithDirOptions(const rocksdb::IOOptions& options, rocksdb::IODebugContext* dbg,
                                          const rocksdb::DirFsyncOptions& dir_options) override {
        return SyncWith([&] { return FSDirectoryWrapper::FsyncWithDirOptions(options, dbg, dir_options); });
    }

private:
    template <typename Fn>
    rocksdb::IOStatus SyncWith(Fn&& sync) {
        if (int e = state_->Check(Call::kSync, path_ + "/")) {
            return ToIOStatus(e, path_);
        }
        rocksdb::IOStatus s = sync();
        if (s.ok()) {
            state_->DirSynced(path_);
        }
        return s;
    }

    std::string path_;
    std::shared_ptr<State> state_;
};

class FaultyFileSystem final : public rocksdb::FileSystemWrapper {
public:
    explicit FaultyFileSystem(std::shared_ptr<State> state)
        : FileSystemWrapper(rocksdb::FileSystem::Default()), state_(std::move(state)) {}

    const char* Name() const override { return "FaultyFiles"; }

    rocksdb::IOStatus NewWritableFile(const std::string& path, const rocksdb::FileOptions& options,
                                      std::unique_ptr<rocksdb::FSWritableFile>* result,
                                      rocksdb::IODebugContext* dbg) override {
        if (int e = state_->Check(Call::kCreate, path)) {
            return ToIOStatus(e, path);
        }
        std::unique_ptr<rocksdb::FSWritableFile> file;
        rocksdb::IOStatus s = target()->NewWritableFile(path, options, &file, dbg);
        if (s.ok()) {
            state_->Created(path);
            *result = std::make_unique<FaultyWritableFile>(std::move(file), path, state_);
        }
        return s;
    }
    rocksdb::IOStatus ReopenWritableFile(const std::string& path, const rocksdb::FileOptions& options,
                                         std::unique_ptr<rocksdb::FSWritableFile>* result,
                                         rocksdb::IODebugContext* dbg) override {
        if (int e = state_->Check(Call::kWrite, path)) {
            return ToIOStatus(e, path);
        }
        uint64_t size = 0;
        bool existed = target()->GetFileSize(path, rocksdb::IOOptions(), &size, dbg).ok();
        std::unique_ptr<rocksdb::FSWritableFile> file;
        rocksdb::IOStatus s = target()->ReopenWritableFile(path, options, &file, dbg);
        if (s.ok()) {
            existed ? state_->Opened(path, size) : state_->Created(path);
            *result = std::make_unique<FaultyWritableFile>(std::move(file), path, state_);
        }
        return s;
    }
    rocksdb::IOStatus ReuseWritableFile(const std::string& path, const std::string& old_path,
                                        const rocksdb::FileOptions& options,
                                        std::unique_ptr<rocksdb::FSWritableFile>* result,
                                        rocksdb::IODebugContext* dbg) override {
        if (int e = state_->Check(Call::kCreate, path)) {
            return ToIOStatus(e, path);
        }
        std::unique_ptr<rocksdb::FSWritableFile> file;
        rocksdb::IOStatus s = target()->ReuseWritableFile(path, old_path, options, &file, dbg);
        if (s.ok()) {
            state_->Removed(old_path);
            state_->Created(path);
            *result = std::make_unique<FaultyWritableFile>(std::move(file), path, state_);
        }
        return s;
    }
    rocksdb::IOStatus NewDirectory(const std::string& path, const rocksdb::IOOptions& options,
                                   std::unique_ptr<rocksdb::FSDirectory>* result,
                                   rocksdb::IODebugContext* dbg) override {
        std::unique_ptr<rocksdb::FSDirectory> dir;
        rocksdb::IOStatus s = target()->NewDirectory(path, options, &dir, dbg);
        if (s.ok()) {
            *result = std::make_unique<FaultyDirectory>(std::move(dir), Normalized(path), state_);
        }
        return s;
    }
    rocksdb::IOStatus RenameFile(const std::string& from, const std::string& to, const rocksdb::IOOptions& options,
                                 rocksdb::IODebugContext* dbg) override {
        if (int e = state_->Check(Call::kRename, to)) {
            return ToIOStatus(e, absl::StrCat("rename ", from, " to ", to));
        }
        rocksdb::IOStatus s = target()->RenameFile(from, to, options, dbg);
        if (s.ok()) {
            state_->Renamed(from, to);
        }
        return s;
    }
    rocksdb::IOStatus DeleteFile(const std::string& path, const rocksdb::IOOptions& options,
                                 rocksdb::IODebugContext* dbg) override {
        if (int e = state_->CheckCut()) {
            return ToIOStatus(e, path);
        }
        rocksdb::IOStatus s = target()->DeleteFile(path, options, dbg);
        if (s.ok()) {
            state_->Removed(path);
        }
        return s;
    }

private:
    std::shared_ptr<State> state_;
};

class FaultyObjectFileCalls final : public ObjectFileCalls {
public:
    explicit FaultyObjectFileCalls(std::shared_ptr<State> state) : state_(std::move(state)) {}

    int Open(const char* path, int flags, mode_t mode) override {
        bool writes = (flags & O_ACCMODE) != O_RDONLY;
        if (writes) {
            if (int e = state_->Check((flags & O_CREAT) ? Call::kCreate : Call::kWrite, path)) {
                return Fail(e);
            }
        }
        struct stat before;
        bool existed = ::stat(path, &before) == 0;
        int fd = ::open(path, flags, mode);
        if (fd >= 0 && writes) {
            existed ? state_->Opened(path, static_cast<uint64_t>(before.st_size)) : state_->Created(path);
            absl::MutexLock lock(&mu_);
            fds_[fd] = path;
        }
        return fd;
    }
    ssize_t Pwrite(int fd, const void* data, size_t n, off_t offset) override {
        std::string path = PathOf(fd);
        if (int e = state_->Check(Call::kWrite, path)) {
            return Fail(e);
        }
        bool torn = state_->TakeTear(path);
        ssize_t w = ::pwrite(fd, data, torn ? n / 2 : n, offset);
        if (w > 0) {
            state_->Wrote(path, static_cast<uint64_t>(offset) + static_cast<uint64_t>(w));
        }
        return torn ? Fail(EIO) : w;
    }
    int Ftruncate(int fd, off_t size) override {
        std::string path = PathOf(fd);
        if (int e = state_->Check(Call::kWrite, path)) {
            return Fail(e);
        }
        int r = ::ftruncate(fd, size);
        if (r == 0) {
            state_->Truncated(path, static_cast<uint64_t>(size));
        }
        return r;
    }
    int Fdatasync(int fd) override { return Fsync(fd); }
    int Fsync(int fd) override {
        struct stat st;
        bool dir = ::fstat(fd, &st) == 0 && S_ISDIR(st.st_mode);
        std::string path = dir ? FdPath(fd) : PathOf(fd);
        if (int e = state_->Check(Call::kSync, dir ? path + "/objects/" : path)) {
            return Fail(e);
        }
        int r = ::fsync(fd);
        if (r == 0) {
            dir ? state_->DirSynced(path) : state_->Synced(path);
        }
        return r;
    }
    int Syncfs(int fd) override {
        if (int e = state_->Check(Call::kSync, FdPath(fd) + "/objects/")) {
            return Fail(e);
        }
        int r = ::syncfs(fd);
        if (r == 0) {
            state_->SyncedAll();
        }
        return r;
    }
    int Unlink(const char* path) override {
        if (int e = state_->CheckCut()) {
            return Fail(e);
        }
        int r = ::unlink(path);
        if (r == 0) {
            state_->Removed(path);
        }
        return r;
    }

private:
    static int Fail(int e) {
        errno = e;
        return -1;
    }
    std::string PathOf(int fd) {
        absl::MutexLock lock(&mu_);
        auto it = fds_.find(fd);
        return it == fds_.end() ? FdPath(fd) : it->second;
    }

    std::shared_ptr<State> state_;
    absl::Mutex mu_;
    absl::flat_hash_map<int, std::string> fds_ ABSL_GUARDED_BY(mu_);  // opened for writing here
};

}  // namespace

FaultyFiles::FaultyFiles()
    : state_(std::make_shared<State>()),
      file_system_(std::make_shared<FaultyFileSystem>(state_)),
      object_file_calls_(std::make_shared<FaultyObjectFileCalls>(state_)) {}

FaultyFiles::~FaultyFiles() = default;

void FaultyFiles::Fail(Call call, Kind kind, int error) {
    absl::MutexLock lock(&state_->mu);
    state_->faults.push_back({call, kind, error});
}

void FaultyFiles::TearNextWrite(Kind kind) {
    absl::MutexLock lock(&state_->mu);
    state_->tear = kind;
}

void FaultyFiles::Clear() {
    absl::MutexLock lock(&state_->mu);
    state_->faults.clear();
    state_->tear.reset();
}

int FaultyFiles::failed() const {
    absl::MutexLock lock(&state_->mu);
    return state_->failed;
}

int FaultyFiles::calls() const {
    absl::MutexLock lock(&state_->mu);
    return state_->calls;
}

void FaultyFiles::CutPowerAfter(int n) {
    absl::MutexLock lock(&state_->mu);
    state_->cut_after = state_->calls + n;
}

bool FaultyFiles::power_cut() const {
    absl::MutexLock lock(&state_->mu);
    return state_->cut;
}

std::string FaultyFiles::RestorePower(uint64_t seed) {
    absl::MutexLock lock(&state_->mu);
    std::mt19937_64 rng(seed);
    std::string lost;
    for (const auto& [path, f] : state_->files) {
        if (!f.name_durable) {
            if (::unlink(path.c_str()) == 0) {
                absl::StrAppend(&lost, path, ": created, its directory never synced: gone\n");
            }
        } else if (f.size > f.synced) {
            uint64_t keep = f.synced + rng() % (f.size - f.synced + 1);
            if (::truncate(path.c_str(), static_cast<off_t>(keep)) == 0) {
                absl::StrAppend(&lost, path, ": ", f.synced, " of ", f.size, " bytes synced, ", keep, " kept\n");
            }
        }
    }
    state_->files.clear();
    state_->faults.clear();
    state_->tear.reset();
    state_->cut = false;
    state_->cut_after = -1;
    return lost;
}

}  // namespace zerohop
