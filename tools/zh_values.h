#pragma once
// How zh reads a typed attribute value from its command line, and writes values as JSON.
//
// On the command line (NAME=VALUE), the way a value is written says its type:
//   42  -7                    int64
//   1.5  -2e3                 double
//   true  false               bool
//   "text"  'text'            string (double quotes: JSON escapes; single: as is), so
//                             '"1"' stores the string 1 and '""' the empty string
//   [1, 2, 3]                 int64 array ([] too); [1.5, 2] double array
//   b64:aGVsbG8=              blob, in base64
//   t:2026-11-29T10:00:00.5Z  timestamp, RFC 3339
//   anything else             string, as written (name=Alice); but a value that opens a
//                             quote or a bracket and does not close it is an error
//
// As JSON: numbers, booleans and strings as themselves (UTF-8 as is), arrays as arrays,
// blobs as {"blob": "<base64>"}, timestamps as {"time": "<RFC 3339>"}.
//
//   auto v = ParseCliValue("[1, 2, 3]");       // Value::Int64Array({1, 2, 3})
//   std::string line = DumpJson(AttributesToJson(item.attributes));

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "zerohop/value.h"

namespace zerohop {

absl::StatusOr<Value> ParseCliValue(std::string_view text);

nlohmann::json ValueToJson(const Value& v);
nlohmann::json AttributesToJson(const AttributeMap& attrs);  // keys in name order
// One line of JSON; strings keep their UTF-8, and bytes that are not UTF-8 become U+FFFD.
std::string DumpJson(const nlohmann::json& j);

}  // namespace zerohop
