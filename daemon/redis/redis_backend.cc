// The redis backend's asynchronous face: which operations run where. Point reads (stat,
// get_item) and item writes complete on the daemon worker's lane, without a thread of ours
// waiting; everything else runs on the backend's threads (redis/internal/store.h).

#include "redis/redis_backend.h"

#include <algorithm>
#include <memory>

#include "backend/rules.h"
#include "base/status_macros.h"
#include "redis/internal/store.h"
#include "zerohop/status.h"

namespace zerohop {



absl::StatusOr<std::unique_ptr<RedisBackend>> RedisBackend::Open(RedisBackendOptions options) {
    size_t threads = std::max<size_t>(1, options.threads);
    auto store = std::make_unique<redis::Store>(std::move(options));
    ZH_RETURN_IF_ERROR(store->Open());
    return std::unique_ptr<RedisBackend>(new RedisBackend(std::move(store), threads));
}

thread_local std::vector<std::pair<const redis::Store*, redis::Store::ResolveBatch*>> redis::Store::tls_batches_;

RedisBackend::RedisBackend(std::unique_ptr<redis::Store> store, size_t threads)
    : store_(std::move(store)), pool_(std::make_unique<TaskPool>("zh-redis", threads)) {}

RedisBackend::~RedisBackend() { pool_.reset(); }

absl::StatusOr<std::unique_ptr<LoopHook>> RedisBackend::JoinLoop() {
    // The worker's lane, and its batch of resolves: what the requests of a turn asked for
    // goes out as one script per container when the worker polls the hook.
    class Hook : public LoopHook {
    public:
        Hook(redis::Store* store, std::unique_ptr<redis::LoopLane> lane) : store_(store), lane_(std::move(lane)) {
            redis::Store::tls_batches_.emplace_back(store_, &batch_);
        }
        ~Hook() override {
            std::erase_if(redis::Store::tls_batches_, [this](const auto& e) { return e.second == &batch_; });
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
        redis::Store* store_;
        redis::Store::ResolveBatch batch_;
        std::unique_ptr<redis::LoopLane> lane_;
    };
    ZH_ASSIGN_OR_RETURN(auto lane, store_->client().Attach());
    return std::unique_ptr<LoopHook>(std::make_unique<Hook>(store_.get(), std::move(lane)));
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
                                   absl::StatusOr<redis::Store::Resolved> r) mutable {
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
// Objects on Redis are not local files: the info alone, as quick as a stat.
void RedisBackend::OpenObjectFile(Path req, Done<ObjectFile> done) {
    Stat(std::move(req), [done = std::move(done)](absl::StatusOr<ObjectInfo> r) mutable {
        if (!r.ok()) {
            return std::move(done)(r.status());
        }
        std::move(done)(ObjectFile(std::move(*r), -1));
    });
}
void RedisBackend::List(ListRequest req, Done<ListResult> done) { ZH_REDIS_OP(List(req)); }
void RedisBackend::Mkdir(MkdirRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(Mkdir(req)); }
void RedisBackend::Rmdir(Path req, DoneStatus done) { ZH_REDIS_OP(Rmdir(req)); }
void RedisBackend::Rename(RenameRequest req, DoneStatus done) { ZH_REDIS_OP(Rename(req)); }
void RedisBackend::Symlink(SymlinkRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(Symlink(req)); }
void RedisBackend::Mknod(MknodRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(Mknod(req)); }
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
void RedisBackend::WriteObject(WriteObjectRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(WriteObject(req)); }
void RedisBackend::Append(AppendRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(Append(req)); }
void RedisBackend::Truncate(TruncateRequest req, Done<ObjectInfo> done) { ZH_REDIS_OP(Truncate(req)); }
void RedisBackend::GetItem(GetItemRequest req, Done<Item> done) {
    Path path = req.path;
    store_->ResolveAsync(path, [this, req = std::move(req), done = std::move(done)](
                                   absl::StatusOr<redis::Store::Resolved> r) mutable {
        if (r.ok() && r->entry && r->entry->info.type == ObjectType::kShard) {
            return ZH_REDIS_OP(GetItem(req));
        }
        if (!r.ok()) {
            return std::move(done)(r.status());
        }
        if (!r->entry) {
            return std::move(done)(PathNotFoundError(req.path.str()));
        }
        const redis::Entry& e = *r->entry;
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
    redis::Store::ItemChange change;
    Done<ObjectInfo> done;
    int conflicts = 0;
};

void RedisBackend::WriteItemAsync(std::shared_ptr<ItemWrite> w) {
    constexpr int kConflictsBeforePool = 4;
    store_->ResolveAsync(w->path, [this, w](absl::StatusOr<redis::Store::Resolved> r) mutable {
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
    if (absl::Status s = CheckBelowContainer(path); !s.ok()) {
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
    ZH_REDIS_OP(PutItems(req));
}
void RedisBackend::UpdateItem(UpdateItemRequest req, Done<ObjectInfo> done) {
    Path path = req.path;
    Caller caller = req.caller;
    auto change = redis::Store::UpdateChange(std::make_shared<const UpdateItemRequest>(std::move(req)));
    if (!change.ok()) {
        return std::move(done)(change.status());
    }
    if (absl::Status s = CheckBelowContainer(path); !s.ok()) {
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
