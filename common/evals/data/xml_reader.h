#pragma once
// A small, bounded XML reader for result files (JUnit XML): a document becomes a tree of
// elements. It reads elements, attributes, text, CDATA, comments and processing instructions,
// the five predefined entities and numeric character references. It refuses DOCTYPE and
// ENTITY declarations outright (no entity expansion, so no "billion laughs"), documents that
// are not UTF-8, and characters XML forbids (NUL, most C0 controls). No namespaces processing
// (a prefixed name is just a name), no DTD validation. No I/O.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace assay::evals {

struct XmlLimits {
  size_t max_bytes = size_t{64} << 20;
  int max_depth = 32;  // Element nesting; the root is depth 1. Also bounds the recursion.
  size_t max_elements = 1'000'000;
  size_t max_attributes = 64;  // On one element.
};

struct XmlElement {
  std::string name;
  std::vector<std::pair<std::string, std::string>> attributes;  // Decoded, in order.
  std::string text;  // Character data directly inside (text and CDATA), decoded, in order.
  std::vector<XmlElement> children;
  size_t line = 0, column = 0;  // Of the '<' that opens it, 1-based (column in bytes).

  // The attribute's value, or nullptr.
  const std::string* Attribute(std::string_view attr) const;
};

// Parses a whole document and returns its root element. Errors (kInvalidArgument) begin with
// "LINE:COLUMN: " (1-based; column in bytes), e.g. `3:14: unknown entity "&nbsp;"`,
// `1:40: DOCTYPE and ENTITY declarations are not accepted`, `5:3: </b> closes <a>`; a limit
// is named: `2:1: more than 1000000 elements (max_elements)`.
absl::StatusOr<XmlElement> ParseXml(std::string_view xml, const XmlLimits& limits = {});

}  // namespace assay::evals
