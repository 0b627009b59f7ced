#pragma once
// The backends zerohopd can run. The server opens every backend of its configuration
// through here, by the kind the configuration names, and never includes a backend itself:
// this is the one place that knows them all (with config/, which reads their options).
//
//   for (const BackendOptions& b : config.backends) {
//       auto backend = OpenBackend(b);   // an EmbeddedBackend, a RedisBackend, ...
//   }
//
// A new kind of backend: its options struct (with kKind) joins BackendOptions in
// config/config.h, config.cc reads its keys, and OpenBackend opens it (the compiler
// insists on each).

#include <memory>

#include "absl/status/statusor.h"
#include "backend/backend.h"
#include "config/config.h"

namespace zerohop {

// Opens the backend `options` describe, serving the containers they list.
absl::StatusOr<std::unique_ptr<Backend>> OpenBackend(const BackendOptions& options);

}  // namespace zerohop
