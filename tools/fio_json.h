#pragma once
// fio's --output-format=json, read as JSON: one job's read or write side as a Result
// (IOPS and completion-latency percentiles).
//
//   auto r = FioJobResult("fuse_rand4k", fio_output, "read", 4096);

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "bench_harness.h"

namespace zerohop {

// The first job of `json` (fio's whole output), its `side` ("read" or "write"). An error
// when the output is not fio's JSON or the job did none of that side's I/O.
absl::StatusOr<Result> FioJobResult(const std::string& name, std::string_view json, const std::string& side,
                                    double bytes_per_op);

}  // namespace zerohop
