#include "common/deploy/condition.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/number_text.h"
#include "common/base/status.h"

namespace assay::deploy {

// Every node has a static type, checked while parsing; Evaluate trusts it.
enum class Type { kNumber, kBool, kList };

struct Condition::Node {
  // kResult is result itself (kList; used as a number it becomes kIndex 0), kIndex
  // result[index]; kEq and kNe compare numbers or booleans, as the operands' type says.
  enum class Kind {
    kNumber,
    kBool,
    kResult,
    kIndex,
    kLen,
    kMin,
    kMax,
    kSum,
    kAvg,
    kIsNaN,
    kIsInf,
    kAbs,
    kNeg,
    kAdd,
    kSub,
    kMul,
    kDiv,
    kLt,
    kLe,
    kGt,
    kGe,
    kEq,
    kNe,
    kNot,
    kAnd,
    kOr
  };
  Kind kind;
  Type type;
  int column;  // 1-based, of the node's first token
  double number = 0;
  bool boolean = false;
  size_t index = 0;
  std::shared_ptr<const Node> left, right;
};

namespace {

using Node = Condition::Node;
using NodePtr = std::shared_ptr<const Node>;
using Kind = Node::Kind;

constexpr int kMaxIndexDigits = 6;  // result[0] .. result[999999]

enum class Tok { kNumber, kIdent, kOp, kEnd };

struct Token {
  Tok kind;
  std::string text;
  int column;  // 1-based.
  double number = 0;
};

absl::Status ErrorAt(int column, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("column ", column, ": ", std::string(message)));
}

bool IsDigit(char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; }
bool IsWordChar(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// A number at text[i] (a digit, or '.' and a digit): digits ['.' digits] [e [+-] digits].
absl::Status ScanNumber(std::string_view text, size_t& i, std::vector<Token>& tokens) {
  const size_t start = i;
  const int column = static_cast<int>(start) + 1;
  size_t end = start;
  while (end < text.size() && IsDigit(text[end])) ++end;
  if (end < text.size() && text[end] == '.') {
    ++end;
    while (end < text.size() && IsDigit(text[end])) ++end;
  }
  bool malformed = false;
  if (end < text.size() && (text[end] == 'e' || text[end] == 'E')) {
    ++end;
    if (end < text.size() && (text[end] == '+' || text[end] == '-')) ++end;
    malformed = end == text.size() || !IsDigit(text[end]);
    while (end < text.size() && IsDigit(text[end])) ++end;
  }
  if (malformed || (end < text.size() && (IsWordChar(text[end]) || text[end] == '.'))) {
    // Show the whole run that was meant as one number: "1e", "0x1f", "1.2.3".
    while (end < text.size() && (IsWordChar(text[end]) || text[end] == '.')) ++end;
    return ErrorAt(column, absl::StrCat("malformed number '",
                                        std::string(text.substr(start, end - start)), "'"));
  }
  const std::string_view digits = text.substr(start, end - start);
  double value = 0;
  const auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value);
  if (ec == std::errc::result_out_of_range) {
    return ErrorAt(column, absl::StrCat("number '", std::string(digits), "' is out of range"));
  }
  if (ec != std::errc() || ptr != digits.data() + digits.size()) {
    return ErrorAt(column, absl::StrCat("malformed number '", std::string(digits), "'"));
  }
  tokens.push_back({Tok::kNumber, std::string(digits), column, value});
  i = end;
  return absl::OkStatus();
}

absl::Status UnexpectedCharacter(int column, char c) {
  const auto byte = static_cast<unsigned char>(c);
  if (byte < 0x20 || byte > 0x7e) {
    return ErrorAt(column, absl::StrFormat("unexpected byte 0x%02X", byte));
  }
  std::string message = absl::StrCat("unexpected character '", std::string(1, c), "'");
  if (c == '=') absl::StrAppend(&message, " (compare with '==')");
  if (c == '&') absl::StrAppend(&message, " (use '&&' or 'and')");
  if (c == '|') absl::StrAppend(&message, " (use '||' or 'or')");
  return ErrorAt(column, message);
}

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view text) {
  if (text.size() > Condition::kMaxBytes) {
    return ErrorAt(static_cast<int>(Condition::kMaxBytes) + 1,
                   absl::StrCat("condition is longer than ", Condition::kMaxBytes, " bytes"));
  }
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const int column = static_cast<int>(i) + 1;
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
      continue;
    }
    if (tokens.size() == Condition::kMaxTokens) {
      return ErrorAt(column,
                     absl::StrCat("condition has more than ", Condition::kMaxTokens, " tokens"));
    }
    const std::string_view two = text.substr(i, 2);
    if (IsDigit(c) || (c == '.' && i + 1 < text.size() && IsDigit(text[i + 1]))) {
      ASSAY_RETURN_IF_ERROR(ScanNumber(text, i, tokens));
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = i;
      while (end < text.size() && IsWordChar(text[end])) ++end;
      std::string word(text.substr(i, end - i));
      // Why: Argo's users write and/or/not; they are operators, not names.
      const bool op = word == "and" || word == "or" || word == "not";
      tokens.push_back({op ? Tok::kOp : Tok::kIdent, std::move(word), column});
      i = end;
    } else if (two == "<=" || two == ">=" || two == "==" || two == "!=" || two == "&&" ||
               two == "||") {
      tokens.push_back({Tok::kOp, std::string(two), column});
      i += 2;
    } else if (std::string_view("<>+-*/!()[],").find(c) != std::string_view::npos) {
      tokens.push_back({Tok::kOp, std::string(1, c), column});
      ++i;
    } else {
      return UnexpectedCharacter(column, c);
    }
  }
  tokens.push_back({Tok::kEnd, "", static_cast<int>(text.size()) + 1});
  return tokens;
}

std::string DescribeToken(const Token& t) {
  if (t.kind == Tok::kEnd) return "end of condition";
  return absl::StrCat("'", t.text, "'");
}

NodePtr Make(Kind kind, Type type, int column, NodePtr left = nullptr, NodePtr right = nullptr) {
  auto node = std::make_shared<Node>();
  node->kind = kind;
  node->type = type;
  node->column = column;
  node->left = std::move(left);
  node->right = std::move(right);
  return node;
}

// `node` where a number is needed: result becomes result[0]; a boolean is an error naming
// `user` ("'+'", "isNaN").
absl::StatusOr<NodePtr> Numeric(NodePtr node, std::string_view user) {
  if (node->type == Type::kBool) {
    return ErrorAt(node->column,
                   absl::StrCat(std::string(user), " needs a number, got true or false"));
  }
  if (node->type == Type::kList) return Make(Kind::kIndex, Type::kNumber, node->column);
  return node;
}

absl::Status RequireBool(const Node& node, std::string_view user) {
  if (node.type == Type::kBool) return absl::OkStatus();
  return ErrorAt(node.column,
                 absl::StrCat(std::string(user), " needs true or false, got a number"));
}

struct FunctionInfo {
  std::string_view name;
  Kind kind;
  bool takes_result;  // len(result); else isNaN(number)
  Type type;
};

constexpr FunctionInfo kFunctions[] = {
    {"len", Kind::kLen, true, Type::kNumber},    {"min", Kind::kMin, true, Type::kNumber},
    {"max", Kind::kMax, true, Type::kNumber},    {"sum", Kind::kSum, true, Type::kNumber},
    {"avg", Kind::kAvg, true, Type::kNumber},    {"isNaN", Kind::kIsNaN, false, Type::kBool},
    {"isInf", Kind::kIsInf, false, Type::kBool}, {"abs", Kind::kAbs, false, Type::kNumber},
};

const FunctionInfo* FindFunction(std::string_view name) {
  for (const FunctionInfo& f : kFunctions) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  absl::StatusOr<NodePtr> ParseAll() {
    ASSAY_ASSIGN_OR_RETURN(NodePtr root, ParseOr());
    if (Peek().kind != Tok::kEnd) {
      return ErrorAt(Peek().column,
                     absl::StrCat("unexpected ", DescribeToken(Peek()), " after the condition"));
    }
    if (root->type != Type::kBool) {
      return ErrorAt(1, "the condition must be true or false, e.g. 'result < 0.02'");
    }
    return root;
  }

 private:
  const Token& Peek() const { return tokens_[pos_]; }
  bool IsOp(std::string_view op) const { return Peek().kind == Tok::kOp && Peek().text == op; }
  static std::string Quoted(const Token& t) { return absl::StrCat("'", t.text, "'"); }

  // One level of nesting for the caller's scope; TooDeep() past kMaxNesting.
  struct Nest {
    explicit Nest(Parser* p) : p(p) { ++p->depth_; }
    ~Nest() { --p->depth_; }
    bool TooDeep() const { return p->depth_ > Condition::kMaxNesting; }
    Parser* p;
  };
  static absl::Status TooDeepAt(int column) {
    return ErrorAt(
        column, absl::StrCat("condition nested deeper than ", Condition::kMaxNesting, " levels"));
  }

  // Why no recursion on the operands of a chain: `a || b || ...` is a loop, so only '(',
  // '!', '-' and calls deepen the parser's stack, and those count against kMaxNesting. The
  // tree of a chain is as deep as the chain is long, at most kMaxTokens / 2, which Evaluate's
  // small frames take easily.
  absl::StatusOr<NodePtr> ParseOr() {
    ASSAY_ASSIGN_OR_RETURN(NodePtr left, ParseAnd());
    while (IsOp("||") || IsOp("or")) {
      const Token op = Peek();
      ASSAY_RETURN_IF_ERROR(RequireBool(*left, Quoted(op)));
      ++pos_;
      ASSAY_ASSIGN_OR_RETURN(NodePtr right, ParseAnd());
      ASSAY_RETURN_IF_ERROR(RequireBool(*right, Quoted(op)));
      left = Make(Kind::kOr, Type::kBool, left->column, left, right);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseAnd() {
    ASSAY_ASSIGN_OR_RETURN(NodePtr left, ParseNot());
    while (IsOp("&&") || IsOp("and")) {
      const Token op = Peek();
      ASSAY_RETURN_IF_ERROR(RequireBool(*left, Quoted(op)));
      ++pos_;
      ASSAY_ASSIGN_OR_RETURN(NodePtr right, ParseNot());
      ASSAY_RETURN_IF_ERROR(RequireBool(*right, Quoted(op)));
      left = Make(Kind::kAnd, Type::kBool, left->column, left, right);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseNot() {
    if (!IsOp("!") && !IsOp("not")) return ParseCompare();
    const Token op = Peek();
    Nest nest(this);
    if (nest.TooDeep()) return TooDeepAt(op.column);
    ++pos_;
    ASSAY_ASSIGN_OR_RETURN(NodePtr operand, ParseNot());
    ASSAY_RETURN_IF_ERROR(RequireBool(*operand, Quoted(op)));
    return Make(Kind::kNot, Type::kBool, op.column, operand);
  }

  std::optional<Kind> CompareKind() const {
    if (Peek().kind != Tok::kOp) return std::nullopt;
    const std::string& t = Peek().text;
    if (t == "<") return Kind::kLt;
    if (t == "<=") return Kind::kLe;
    if (t == ">") return Kind::kGt;
    if (t == ">=") return Kind::kGe;
    if (t == "==") return Kind::kEq;
    if (t == "!=") return Kind::kNe;
    return std::nullopt;
  }

  absl::StatusOr<NodePtr> ParseCompare() {
    ASSAY_ASSIGN_OR_RETURN(NodePtr left, ParseSum());
    const std::optional<Kind> kind = CompareKind();
    if (!kind.has_value()) return left;
    const Token op = Peek();
    const bool equality = *kind == Kind::kEq || *kind == Kind::kNe;
    if (!equality) {
      ASSAY_ASSIGN_OR_RETURN(left, Numeric(left, Quoted(op)));
    }
    ++pos_;
    ASSAY_ASSIGN_OR_RETURN(NodePtr right, ParseSum());
    if (equality && (left->type == Type::kBool) != (right->type == Type::kBool)) {
      return ErrorAt(op.column,
                     absl::StrCat(Quoted(op), " cannot compare a number with true or false"));
    }
    if (left->type != Type::kBool) {
      ASSAY_ASSIGN_OR_RETURN(left, Numeric(left, Quoted(op)));
      ASSAY_ASSIGN_OR_RETURN(right, Numeric(right, Quoted(op)));
    }
    if (CompareKind().has_value()) {
      return ErrorAt(Peek().column,
                     "comparisons do not chain; join them with '&&', e.g. "
                     "'0 < result && result < 1'");
    }
    return Make(*kind, Type::kBool, left->column, left, right);
  }

  absl::StatusOr<NodePtr> ParseSum() {
    ASSAY_ASSIGN_OR_RETURN(NodePtr left, ParseProduct());
    while (IsOp("+") || IsOp("-")) {
      const Token op = Peek();
      ASSAY_ASSIGN_OR_RETURN(left, Numeric(left, Quoted(op)));
      ++pos_;
      ASSAY_ASSIGN_OR_RETURN(NodePtr right, ParseProduct());
      ASSAY_ASSIGN_OR_RETURN(right, Numeric(right, Quoted(op)));
      left =
          Make(op.text == "+" ? Kind::kAdd : Kind::kSub, Type::kNumber, left->column, left, right);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseProduct() {
    ASSAY_ASSIGN_OR_RETURN(NodePtr left, ParseNegate());
    while (IsOp("*") || IsOp("/")) {
      const Token op = Peek();
      ASSAY_ASSIGN_OR_RETURN(left, Numeric(left, Quoted(op)));
      ++pos_;
      ASSAY_ASSIGN_OR_RETURN(NodePtr right, ParseNegate());
      ASSAY_ASSIGN_OR_RETURN(right, Numeric(right, Quoted(op)));
      left =
          Make(op.text == "*" ? Kind::kMul : Kind::kDiv, Type::kNumber, left->column, left, right);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseNegate() {
    if (!IsOp("-")) return ParsePrimary();
    const Token op = Peek();
    Nest nest(this);
    if (nest.TooDeep()) return TooDeepAt(op.column);
    ++pos_;
    ASSAY_ASSIGN_OR_RETURN(NodePtr operand, ParseNegate());
    ASSAY_ASSIGN_OR_RETURN(operand, Numeric(operand, Quoted(op)));
    return Make(Kind::kNeg, Type::kNumber, op.column, operand);
  }

  // result[INDEX], the '[' next.
  absl::StatusOr<NodePtr> ParseIndex(const Token& result) {
    const Token open = Peek();
    ++pos_;
    const Token index = Peek();
    const bool whole = index.kind == Tok::kNumber && !index.text.empty() &&
                       index.text.size() <= kMaxIndexDigits &&
                       index.text.find_first_not_of("0123456789") == std::string::npos;
    if (!whole) {
      return ErrorAt(index.column, absl::StrCat("expected an index from 0 to 999999 inside "
                                                "result[...], got ",
                                                DescribeToken(index)));
    }
    ++pos_;
    if (!IsOp("]")) {
      return ErrorAt(Peek().column,
                     absl::StrCat("expected ']' to close '[' at column ", open.column));
    }
    ++pos_;
    auto node = std::make_shared<Node>();
    node->kind = Kind::kIndex;
    node->type = Type::kNumber;
    node->column = result.column;
    node->index = static_cast<size_t>(index.number);  // exact: at most 6 digits
    return NodePtr(node);
  }

  // name(ARG), the '(' next.
  absl::StatusOr<NodePtr> ParseCall(const Token& name, const FunctionInfo& f) {
    Nest nest(this);
    if (nest.TooDeep()) return TooDeepAt(name.column);
    ++pos_;
    ASSAY_ASSIGN_OR_RETURN(NodePtr arg, ParseOr());
    if (f.takes_result) {
      if (arg->kind != Kind::kResult) {
        return ErrorAt(arg->column,
                       absl::StrCat(name.text, " takes result, e.g. '", name.text, "(result)'"));
      }
    } else {
      ASSAY_ASSIGN_OR_RETURN(arg, Numeric(arg, name.text));
    }
    if (!IsOp(")")) {
      return ErrorAt(Peek().column, absl::StrCat("expected ')' after the argument to ", name.text));
    }
    ++pos_;
    return Make(f.kind, f.type, name.column, f.takes_result ? nullptr : arg);
  }

  absl::StatusOr<NodePtr> ParsePrimary() {
    const Token token = Peek();
    if (token.kind == Tok::kNumber) {
      ++pos_;
      auto node = std::make_shared<Node>();
      node->kind = Kind::kNumber;
      node->type = Type::kNumber;
      node->column = token.column;
      node->number = token.number;
      return NodePtr(node);
    }
    if (token.kind == Tok::kOp && token.text == "(") {
      Nest nest(this);
      if (nest.TooDeep()) return TooDeepAt(token.column);
      ++pos_;
      ASSAY_ASSIGN_OR_RETURN(NodePtr inner, ParseOr());
      if (!IsOp(")")) {
        return ErrorAt(Peek().column,
                       absl::StrCat("expected ')' to close '(' at column ", token.column));
      }
      ++pos_;
      // The group's column is its '(' (a type error points at the group, not inside it).
      auto group = std::make_shared<Node>(*inner);
      group->column = token.column;
      return NodePtr(group);
    }
    if (token.kind != Tok::kIdent) {
      return ErrorAt(token.column, absl::StrCat("expected a value, got ", DescribeToken(token)));
    }
    ++pos_;
    const std::string& name = token.text;
    if (const FunctionInfo* f = FindFunction(name)) {
      if (!IsOp("(")) return ErrorAt(Peek().column, absl::StrCat("expected '(' after ", name));
      return ParseCall(token, *f);
    }
    if (IsOp("(")) {
      return ErrorAt(token.column,
                     absl::StrCat("unknown function '", name,
                                  "' (expected len, isNaN, isInf, abs, min, max, sum or avg)"));
    }
    if (name == "true" || name == "false") {
      auto node = std::make_shared<Node>();
      node->kind = Kind::kBool;
      node->type = Type::kBool;
      node->column = token.column;
      node->boolean = name == "true";
      return NodePtr(node);
    }
    if (name == "result") {
      if (IsOp("[")) return ParseIndex(token);
      return Make(Kind::kResult, Type::kList, token.column);
    }
    return ErrorAt(token.column, absl::StrCat("unknown identifier '", name,
                                              "' (expected result, true or false)"));
  }

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;  // current nesting, at most kMaxNesting
};

absl::Status Empty() { return absl::OutOfRangeError("result is empty"); }

absl::StatusOr<double> Value(const std::vector<double>& result, size_t index) {
  if (result.empty()) return Empty();
  if (index >= result.size()) {
    return absl::OutOfRangeError(absl::StrCat("result[", index, "] is out of range (result has ",
                                              result.size(),
                                              result.size() == 1 ? " value)" : " values)"));
  }
  return result[index];
}

double Sum(const std::vector<double>& result) {
  double sum = 0;
  for (double v : result) sum += v;
  return sum;
}

// min or max; NaN when any value is NaN (std::min would depend on the order).
double Extreme(const std::vector<double>& result, bool want_max) {
  double best = result[0];
  for (double v : result) {
    if (std::isnan(v)) return v;
    if (want_max ? v > best : v < best) best = v;
  }
  return best;
}

absl::StatusOr<bool> Truth(const Node& node, const std::vector<double>& result);

// Recursion depth is the tree's depth, bounded by the parser's limits (see ParseOr).
absl::StatusOr<double> Number(const Node& node, const std::vector<double>& result) {
  switch (node.kind) {
    case Kind::kNumber: return node.number;
    case Kind::kIndex: return Value(result, node.index);
    case Kind::kLen: return static_cast<double>(result.size());
    case Kind::kSum: return Sum(result);
    case Kind::kMin:
    case Kind::kMax:
    case Kind::kAvg:
      if (result.empty()) return Empty();
      if (node.kind == Kind::kAvg) return Sum(result) / static_cast<double>(result.size());
      return Extreme(result, node.kind == Kind::kMax);
    default: break;
  }
  ASSAY_ASSIGN_OR_RETURN(const double a, Number(*node.left, result));
  if (node.kind == Kind::kAbs) return std::fabs(a);
  if (node.kind == Kind::kNeg) return -a;
  ASSAY_ASSIGN_OR_RETURN(const double b, Number(*node.right, result));
  switch (node.kind) {
    case Kind::kAdd: return a + b;
    case Kind::kSub: return a - b;
    case Kind::kMul: return a * b;
    case Kind::kDiv: return a / b;  // IEEE: x/0 is +-inf, 0/0 NaN
    default: break;
  }
  return absl::InternalError("condition: a number node of no known kind");
}

absl::StatusOr<bool> Truth(const Node& node, const std::vector<double>& result) {
  switch (node.kind) {
    case Kind::kBool: return node.boolean;
    case Kind::kNot: {
      ASSAY_ASSIGN_OR_RETURN(const bool v, Truth(*node.left, result));
      return !v;
    }
    case Kind::kAnd:
    case Kind::kOr: {
      ASSAY_ASSIGN_OR_RETURN(const bool a, Truth(*node.left, result));
      if (a == (node.kind == Kind::kOr)) return a;  // short-circuit
      return Truth(*node.right, result);
    }
    case Kind::kIsNaN:
    case Kind::kIsInf: {
      ASSAY_ASSIGN_OR_RETURN(const double v, Number(*node.left, result));
      return node.kind == Kind::kIsNaN ? std::isnan(v) : std::isinf(v);
    }
    case Kind::kEq:
    case Kind::kNe:
      if (node.left->type == Type::kBool) {
        ASSAY_ASSIGN_OR_RETURN(const bool a, Truth(*node.left, result));
        ASSAY_ASSIGN_OR_RETURN(const bool b, Truth(*node.right, result));
        return (a == b) == (node.kind == Kind::kEq);
      }
      break;
    default: break;
  }
  ASSAY_ASSIGN_OR_RETURN(const double a, Number(*node.left, result));
  ASSAY_ASSIGN_OR_RETURN(const double b, Number(*node.right, result));
  switch (node.kind) {  // IEEE: false with NaN, except != (true)
    case Kind::kLt: return a < b;
    case Kind::kLe: return a <= b;
    case Kind::kGt: return a > b;
    case Kind::kGe: return a >= b;
    case Kind::kEq: return a == b;
    case Kind::kNe: return a != b;
    default: break;
  }
  return absl::InternalError("condition: a boolean node of no known kind");
}

// "result 0.031", "result [0.97, 750]"; at most kShown values, then how many in all.
std::string DescribeResult(const std::vector<double>& result) {
  constexpr size_t kShown = 5;
  if (result.size() == 1) return absl::StrCat("result ", ShortestDouble(result[0]));
  std::string text = "result [";
  for (size_t i = 0; i < result.size() && i < kShown; ++i) {
    absl::StrAppend(&text, i == 0 ? "" : ", ", ShortestDouble(result[i]));
  }
  if (result.size() > kShown) absl::StrAppend(&text, ", ... (", result.size(), " values)");
  return text + "]";
}

std::string Quote(const Condition& c) { return absl::StrCat("'", c.text(), "'"); }

Phase Verdict(Phase phase, std::string text, std::string* why) {
  if (why != nullptr) *why = std::move(text);
  return phase;
}

}  // namespace

absl::StatusOr<Condition> Condition::Parse(std::string_view text) {
  ASSAY_ASSIGN_OR_RETURN(std::vector<Token> tokens, Tokenize(text));
  Parser parser(std::move(tokens));
  ASSAY_ASSIGN_OR_RETURN(NodePtr root, parser.ParseAll());
  Condition condition;
  condition.text_ = std::string(text);
  condition.root_ = std::move(root);
  return condition;
}

absl::StatusOr<bool> Condition::Evaluate(const std::vector<double>& result) const {
  if (root_ == nullptr) return absl::FailedPreconditionError("condition: moved from");
  return Truth(*root_, result);
}

Phase Judge(const std::optional<Condition>& success, const std::optional<Condition>& failure,
            const std::vector<double>& result, std::string* why) {
  if (!success.has_value() && !failure.has_value()) {
    return Verdict(Phase::kError, "no success_condition or failure_condition", why);
  }
  if (result.empty()) return Verdict(Phase::kInconclusive, "no data", why);
  const std::string value = DescribeResult(result);
  if (failure.has_value()) {
    absl::StatusOr<bool> v = failure->Evaluate(result);
    if (!v.ok()) {
      return Verdict(Phase::kError, absl::StrCat(Quote(*failure), ": ", v.status().message()), why);
    }
    if (*v) {
      return Verdict(Phase::kFailed,
                     absl::StrCat(value, " meets failure_condition ", Quote(*failure)), why);
    }
  }
  if (!success.has_value()) {
    return Verdict(Phase::kSuccessful,
                   absl::StrCat(value, " does not meet failure_condition ", Quote(*failure)), why);
  }
  absl::StatusOr<bool> v = success->Evaluate(result);
  if (!v.ok()) {
    return Verdict(Phase::kError, absl::StrCat(Quote(*success), ": ", v.status().message()), why);
  }
  if (*v) return Verdict(Phase::kSuccessful, absl::StrCat(value, " passes ", Quote(*success)), why);
  if (failure.has_value()) {
    return Verdict(Phase::kInconclusive,
                   absl::StrCat(value, " fails ", Quote(*success), " but does not meet ",
                                "failure_condition ", Quote(*failure)),
                   why);
  }
  return Verdict(Phase::kFailed, absl::StrCat(value, " fails ", Quote(*success)), why);
}

std::string_view PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kSuccessful: return "Successful";
    case Phase::kFailed: return "Failed";
    case Phase::kInconclusive: return "Inconclusive";
    case Phase::kError: return "Error";
  }
  return "Error";
}

}  // namespace assay::deploy
