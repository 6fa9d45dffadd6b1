#pragma once
// JSON for eval files and outputs, over Boost.JSON: a strict parse for the files Assay reads
// (datasets, lm-evaluation-harness results) and promptfoo's `is-json` check. No I/O.

#include <string_view>

#include <boost/json/value.hpp>

#include "absl/status/statusor.h"

namespace assay::evals {

// How deep `IsJson` lets arrays and objects nest. JavaScript's JSON.parse has no fixed limit;
// this one is far beyond what a model's answer holds and keeps the check's memory bounded.
inline constexpr int kIsJsonMaxDepth = 1000;

// Parses `text` as exactly one JSON value (RFC 8259: no comments, no trailing commas, the
// JSON whitespace around it allowed), in valid UTF-8, nested at most `max_depth` levels, with
// no object that repeats a key (Boost.JSON would keep the last one silently; a repeated key in
// a dataset is a mistake to report). Errors (kInvalidArgument, no location prefix; callers add
// file and line): "not JSON: <what> at column N", "duplicate key \"k\"",
// "nested deeper than N levels (max_depth)".
absl::StatusOr<boost::json::value> ParseStrictJson(std::string_view text, int max_depth);

// promptfoo's `is-json`: true when JavaScript's JSON.parse(text) would succeed. Any JSON value
// counts (`42`, `"x"`, `null` too); JSON whitespace (space, tab, CR, LF) may surround it;
// repeated keys are fine (JSON.parse keeps the last); a Markdown fence (```json ... ```) is NOT
// stripped, so fenced JSON is not JSON, as in promptfoo. Invalid UTF-8 inside strings is
// accepted (a JavaScript string would hold U+FFFD there). Differences, documented in
// docs/eval-datasets.md: nesting past kIsJsonMaxDepth and a lone surrogate escape ("\ud800")
// are refused. Numbers of any size pass ("1e400" is Infinity to JSON.parse, and valid).
bool IsJson(std::string_view text);

}  // namespace assay::evals
