// Puts larger than half the client region, streamed in chunks: the worker copies each
// chunk out of the ring into the upload's queue; a thread of the upload feeds the backend,
// which may block on disk, so the worker never waits. Chunks are acknowledged once the
// backend has taken their bytes, which paces the client.

#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_format.h"
#include "server/internal/worker.h"

namespace zerohop {

namespace {

constexpr size_t kMaxUploadsPerSession = 4;

}  // namespace

void Worker::StartUpload(Call& call, const std::string& body) {
    Session& s = *call.s;
    std::string_view rest;
    auto req = protocol::DecodePrefix<PutObjectRequest>(body, &rest);
    if (!req.ok()) {
        return Complete(call, req.status(), {});
    }
    auto backend = Route(call, req->path, protocol::Access::kWrite);
    if (!backend.ok()) {
        return Complete(call, backend.status(), {});
    }
    if (s.uploads.size() >= kMaxUploadsPerSession || s.uploads.contains(call.d.request_id)) {
        return Complete(call,
                        absl::ResourceExhaustedError(absl::StrFormat(
                            "session %d: %d streamed puts at once is the limit", s.id, kMaxUploadsPerSession)),
                        {});
    }
    req->caller = s.OwnerOf(req->caller);
    auto up = std::make_shared<Upload>();
    {
        absl::MutexLock lock(&up->mu);
        up->chunks.emplace_back(std::string(rest), std::nullopt);  // answered by the result
        up->queued_bytes = rest.size();
    }
    s.uploads[call.d.request_id] = up;
    live_uploads_.fetch_add(1, std::memory_order_acq_rel);
    std::thread([this, call, up, req = std::move(*req), b = *backend]() mutable {
        // Feeds the backend from the queue; blocks this thread, never the worker.
        class QueueSource : public DataSource {
        public:
            QueueSource(Worker* w, const Call& call, std::shared_ptr<Upload> up)
                : w_(w), call_(call), up_(std::move(up)) {}
            absl::StatusOr<size_t> Read(char* buf, size_t cap) override {
                absl::MutexLock lock(&up_->mu);
                up_->mu.Await(absl::Condition(
                    +[](Upload* u) ABSL_NO_THREAD_SAFETY_ANALYSIS {
                        return !u->chunks.empty() || u->finished || u->cancelled;
                    },
                    up_.get()));
                if (up_->cancelled) {
                    return absl::CancelledError("the client went away during the put");
                }
                if (up_->chunks.empty()) {
                    return 0;  // finished
                }
                auto& [bytes, ack] = up_->chunks.front();
                size_t n = std::min(cap, bytes.size() - offset_);
                std::memcpy(buf, bytes.data() + offset_, n);
                offset_ += n;
                if (offset_ == bytes.size()) {
                    if (ack) {
                        w_->Finish(Call{call_.s, *ack, std::chrono::steady_clock::now(), call_.backend}, absl::OkStatus(), {});
                    }
                    up_->queued_bytes -= bytes.size();
                    up_->chunks.pop_front();
                    offset_ = 0;
                }
                return n;
            }

        private:
            Worker* w_;
            Call call_;
            std::shared_ptr<Upload> up_;
            size_t offset_ = 0;
        } source(this, call, up);
        // The source has no size: the backend runs the put on this thread.
        absl::StatusOr<ObjectInfo> result = Await<ObjectInfo>(
            [&](auto done) { b->PutObject(std::move(req), &source, std::move(done)); });
        {
            // Chunks the backend never took (the put failed or was abandoned) are answered
            // too, so that none stays in flight; later ones are answered by AddChunk.
            absl::MutexLock lock(&up->mu);
            up->ended = true;
            for (auto& [bytes, ack] : up->chunks) {
                if (ack) {
                    Finish(Call{call.s, *ack, std::chrono::steady_clock::now(), call.backend},
                           absl::CancelledError("the put ended before this chunk was used"), {});
                }
            }
            up->chunks.clear();
        }
        std::string out = result.ok() ? protocol::Encode(*result) : std::string();
        Post([this, call, st = result.status(), out = std::move(out)] {
            call.s->uploads.erase(call.d.request_id);
            Complete(call, st, out);
        });
        live_uploads_.fetch_sub(1, std::memory_order_acq_rel);
    }).detach();
}

void Worker::AddChunk(const Call& call) {
    Session& s = *call.s;
    const protocol::Descriptor& d = call.d;
    auto it = s.uploads.find(d.arg0);
    if (it == s.uploads.end()) {
        return Reject(call, absl::StrFormat("put chunk for unknown upload %d", d.arg0));
    }
    std::shared_ptr<Upload> up = it->second;
    absl::MutexLock lock(&up->mu);
    if (d.arg1 == protocol::kAbortUpload) {
        up->cancelled = true;  // the client gave up: the put fails and changes nothing
        return Complete(call, absl::OkStatus(), {});
    }
    if (up->finished) {
        return Reject(call, absl::StrFormat("put chunk after the last one of upload %d", d.arg0));
    }
    if (up->cancelled || up->ended) {
        return Complete(call, absl::CancelledError("the put already ended"), {});
    }
    // Copied out of the ring; acknowledged once the backend has taken it, which paces the client.
    up->chunks.emplace_back(std::string(s.segment.client_region() + d.offset, d.length), d);
    up->queued_bytes += d.length;
    up->finished = (d.flags & protocol::kFlagMore) == 0;
}

}  // namespace zerohop
