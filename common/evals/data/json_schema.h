#pragma once
// The JSON Schema subset that promptfoo's `is-json` assertion takes as its value (promptfoo
// validates with Ajv, draft-07, strict: an unknown keyword makes the schema invalid there too).
// Supported keywords: type (one or a list of object, array, string, number, integer, boolean,
// null), enum, const, required, properties, additionalProperties (boolean or schema),
// minProperties, maxProperties, items (one schema for every item), minItems, maxItems,
// minLength, maxLength (in code points, as Ajv counts), pattern (RE2, see safe_regex.h),
// minimum, maximum, exclusiveMinimum, exclusiveMaximum (numbers), allOf, anyOf, oneOf, not;
// and the annotations title, description, default, examples, $comment, $schema, $id (read and
// ignored). `true` and `false` are schemas too. Anything else ($ref, format, patternProperties,
// multipleOf, items as a list, ...) is refused by name when the schema is compiled. No I/O.

#include <memory>
#include <string>
#include <string_view>

#include <boost/json/value.hpp>

#include "absl/status/statusor.h"

namespace assay::evals {

class JsonSchema {
 public:
  // Compiles a schema given as JSON text (nested at most 32 levels). Errors
  // (kInvalidArgument) name the keyword and where it is: `schema /properties/a: keyword
  // "format" is not supported (supported: type, enum, ...)`.
  static absl::StatusOr<JsonSchema> Compile(std::string_view schema_json);

  // True when `data` conforms. Otherwise `*error` (when given) says why in Ajv's words, e.g.
  // "data/latitude must be <= 90", "data must have required property 'longitude'".
  bool Validate(const boost::json::value& data, std::string* error = nullptr) const;

  struct Node;  // Defined in json_schema.cc.

 private:
  explicit JsonSchema(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
  std::shared_ptr<const Node> root_;  // Immutable: Validate is thread-safe.
};

}  // namespace assay::evals
