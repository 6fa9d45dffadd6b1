#include "common/pipeline/expr.h"

#include <algorithm>
#include <cctype>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"

namespace assay {

struct Expr::Node {
  enum class Kind {
    kString,
    kBool,
    kVar,
    kEvalPassed,
    kNot,
    kAnd,
    kOr,
    kEq,
    kNe,
    kStartsWith,
    kContains
  };
  Kind kind;
  std::string text;  // kString: the literal; kVar: "branch", "inputs.X", ...; kEvalPassed: NAME
  bool value = false;
  std::shared_ptr<const Node> left, right;
};

namespace {

using Node = Expr::Node;
using NodePtr = std::shared_ptr<const Node>;

enum class Tok { kString, kIdent, kOp, kEnd };

struct Token {
  Tok kind;
  std::string text;
  int column;  // 1-based.
};

absl::Status ErrorAt(int column, std::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("column ", column, ": ", std::string(message)));
}

bool IsIdentChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-';
}

// Limits on a hostile expression. Why: the parser and Evaluate recurse, and a tree as deep as
// the text is long (10^5 '(' or '!', or 'x&&x&&...') overflows the stack of whichever thread
// plans the pipeline. 1024 tokens is far beyond any real `if:`.
constexpr size_t kMaxTokens = 1024;
constexpr int kMaxNesting = 64;  // '(' , '!' and function calls inside one another

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view text) {
  std::vector<Token> tokens;
  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    const int column = static_cast<int>(i) + 1;
    if (tokens.size() == kMaxTokens && !std::isspace(static_cast<unsigned char>(c))) {
      return ErrorAt(column, absl::StrCat("expression has more than ", kMaxTokens, " tokens"));
    }
    if (std::isspace(static_cast<unsigned char>(c))) {
      ++i;
    } else if (c == '\'' || c == '"') {
      const size_t end = text.find(c, i + 1);
      if (end == std::string_view::npos) return ErrorAt(column, "unterminated string");
      tokens.push_back({Tok::kString, std::string(text.substr(i + 1, end - i - 1)), column});
      i = end + 1;
    } else if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      // Dotted names (inputs.X, env.X) are one token.
      size_t end = i;
      while (end < text.size() && (IsIdentChar(text[end]) || text[end] == '.')) ++end;
      tokens.push_back({Tok::kIdent, std::string(text.substr(i, end - i)), column});
      i = end;
    } else if (i + 1 < text.size() && (text.substr(i, 2) == "==" || text.substr(i, 2) == "!=" ||
                                       text.substr(i, 2) == "&&" || text.substr(i, 2) == "||")) {
      tokens.push_back({Tok::kOp, std::string(text.substr(i, 2)), column});
      i += 2;
    } else if (c == '!' || c == '(' || c == ')' || c == ',') {
      tokens.push_back({Tok::kOp, std::string(1, c), column});
      ++i;
    } else {
      return ErrorAt(column, absl::StrCat("unexpected character '", std::string(1, c), "'"));
    }
  }
  tokens.push_back({Tok::kEnd, "", static_cast<int>(text.size()) + 1});
  return tokens;
}

std::string DescribeToken(const Token& t) {
  if (t.kind == Tok::kEnd) return "end of expression";
  if (t.kind == Tok::kString) return absl::StrCat("string '", t.text, "'");
  return absl::StrCat("'", t.text, "'");
}

NodePtr Make(Node::Kind kind, NodePtr left = nullptr, NodePtr right = nullptr) {
  auto node = std::make_shared<Node>();
  node->kind = kind;
  node->left = std::move(left);
  node->right = std::move(right);
  return node;
}

class Parser {
 public:
  Parser(std::vector<Token> tokens, ExprOptions options)
      : tokens_(std::move(tokens)), options_(options) {}

  absl::StatusOr<NodePtr> ParseAll() {
    absl::StatusOr<NodePtr> root = ParseOr();
    if (!root.ok()) return root;
    if (Peek().kind != Tok::kEnd) {
      return ErrorAt(Peek().column,
                     absl::StrCat("unexpected ", DescribeToken(Peek()), " after the expression"));
    }
    return root;
  }

 private:
  const Token& Peek() const { return tokens_[pos_]; }
  bool IsOp(std::string_view op) const { return Peek().kind == Tok::kOp && Peek().text == op; }

  absl::StatusOr<NodePtr> ParseOr() {
    absl::StatusOr<NodePtr> left = ParseAnd();
    while (left.ok() && IsOp("||")) {
      ++pos_;
      absl::StatusOr<NodePtr> right = ParseAnd();
      if (!right.ok()) return right;
      left = Make(Node::Kind::kOr, *left, *right);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseAnd() {
    absl::StatusOr<NodePtr> left = ParseUnary();
    while (left.ok() && IsOp("&&")) {
      ++pos_;
      absl::StatusOr<NodePtr> right = ParseUnary();
      if (!right.ok()) return right;
      left = Make(Node::Kind::kAnd, *left, *right);
    }
    return left;
  }

  // One level of nesting for the caller's scope; TooDeep() past kMaxNesting.
  struct Nest {
    explicit Nest(Parser* p) : p(p) { ++p->depth_; }
    ~Nest() { --p->depth_; }
    bool TooDeep() const { return p->depth_ > kMaxNesting; }
    Parser* p;
  };
  static absl::Status TooDeepAt(int column) {
    return ErrorAt(column, absl::StrCat("expression nested deeper than ", kMaxNesting, " levels"));
  }

  absl::StatusOr<NodePtr> ParseUnary() {
    if (IsOp("!")) {
      Nest nest(this);
      if (nest.TooDeep()) return TooDeepAt(Peek().column);
      ++pos_;
      absl::StatusOr<NodePtr> operand = ParseUnary();
      if (!operand.ok()) return operand;
      return Make(Node::Kind::kNot, *operand);
    }
    return ParseCompare();
  }

  absl::StatusOr<NodePtr> ParseCompare() {
    absl::StatusOr<NodePtr> left = ParsePrimary();
    while (left.ok() && (IsOp("==") || IsOp("!="))) {
      const Node::Kind kind = Peek().text == "==" ? Node::Kind::kEq : Node::Kind::kNe;
      ++pos_;
      absl::StatusOr<NodePtr> right = ParsePrimary();
      if (!right.ok()) return right;
      left = Make(kind, *left, *right);
    }
    return left;
  }

  absl::StatusOr<NodePtr> ParseCall(const Token& name, Node::Kind kind) {
    if (!IsOp("(")) {
      return ErrorAt(Peek().column, absl::StrCat("expected '(' after ", name.text));
    }
    Nest nest(this);
    if (nest.TooDeep()) return TooDeepAt(name.column);
    ++pos_;
    absl::StatusOr<NodePtr> first = ParseOr();
    if (!first.ok()) return first;
    if (!IsOp(",")) {
      return ErrorAt(Peek().column, absl::StrCat("expected ',' between arguments to ", name.text));
    }
    ++pos_;
    absl::StatusOr<NodePtr> second = ParseOr();
    if (!second.ok()) return second;
    if (!IsOp(")")) {
      return ErrorAt(Peek().column, absl::StrCat("expected ')' after arguments to ", name.text));
    }
    ++pos_;
    return Make(kind, *first, *second);
  }

  absl::StatusOr<NodePtr> ParsePrimary() {
    const Token token = Peek();
    if (token.kind == Tok::kString) {
      ++pos_;
      auto node = std::make_shared<Node>();
      node->kind = Node::Kind::kString;
      node->text = token.text;
      return NodePtr(node);
    }
    if (token.kind == Tok::kOp && token.text == "(") {
      Nest nest(this);
      if (nest.TooDeep()) return TooDeepAt(token.column);
      ++pos_;
      absl::StatusOr<NodePtr> inner = ParseOr();
      if (!inner.ok()) return inner;
      if (!IsOp(")")) {
        return ErrorAt(Peek().column,
                       absl::StrCat("expected ')' to close '(' at column ", token.column));
      }
      ++pos_;
      return inner;
    }
    if (token.kind != Tok::kIdent) {
      return ErrorAt(token.column, absl::StrCat("expected a value, got ", DescribeToken(token)));
    }
    ++pos_;
    const std::string& name = token.text;
    if (IsOp("(")) {
      if (name == "startsWith") return ParseCall(token, Node::Kind::kStartsWith);
      if (name == "contains") return ParseCall(token, Node::Kind::kContains);
      return ErrorAt(token.column, absl::StrCat("unknown function '", name,
                                                "' (expected startsWith or contains)"));
    }
    if (name == "startsWith" || name == "contains") {
      return ErrorAt(Peek().column, absl::StrCat("expected '(' after ", name));
    }
    auto node = std::make_shared<Node>();
    if (name == "true" || name == "false") {
      node->kind = Node::Kind::kBool;
      node->value = name == "true";
      return NodePtr(node);
    }
    if (options_.allow_evals && name.rfind("evals.", 0) == 0) {
      // evals.NAME.passed, NAME an eval's name of identifier characters.
      const size_t dot = name.find('.', 6);
      if (dot == std::string::npos || dot == 6 || name.substr(dot) != ".passed") {
        return ErrorAt(token.column, "expected evals.NAME.passed");
      }
      node->kind = Node::Kind::kEvalPassed;
      node->text = name.substr(6, dot - 6);
      return NodePtr(node);
    }
    for (std::string_view prefix : {"inputs.", "env."}) {
      if (name.rfind(prefix, 0) == 0) {
        if (name.size() == prefix.size() || name.find('.', prefix.size()) != std::string::npos) {
          return ErrorAt(token.column + static_cast<int>(prefix.size()),
                         absl::StrCat("expected a name after '", std::string(prefix), "'"));
        }
        node->kind = Node::Kind::kVar;
        node->text = name;
        return NodePtr(node);
      }
    }
    if (name == "branch" || name == "tag" || name == "event") {
      node->kind = Node::Kind::kVar;
      node->text = name;
      return NodePtr(node);
    }
    return ErrorAt(token.column,
                   absl::StrCat("unknown identifier '", name,
                                "' (expected branch, tag, event, inputs.NAME or env.NAME)"));
  }

  std::vector<Token> tokens_;
  const ExprOptions options_;
  size_t pos_ = 0;
  int depth_ = 0;  // current nesting, at most kMaxNesting
};

std::string Lookup(const std::map<std::string, std::string>& map, const std::string& key) {
  auto it = map.find(key);
  return it == map.end() ? "" : it->second;
}

// The value of a variable name (branch, inputs.X, matrix.X, ...); false when unknown.
bool Resolve(std::string_view name, const ExprContext& c,
             const std::map<std::string, std::string>* matrix, std::string& out) {
  const std::string n(name);
  if (n == "branch") {
    out = c.branch;
  } else if (n == "tag") {
    out = c.tag;
  } else if (n == "event") {
    out = c.event;
  } else if (n.rfind("inputs.", 0) == 0 && n.size() > 7) {
    out = Lookup(c.inputs, n.substr(7));
  } else if (n.rfind("env.", 0) == 0 && n.size() > 4) {
    out = Lookup(c.env, n.substr(4));
  } else if (matrix != nullptr && n.rfind("matrix.", 0) == 0 && n.size() > 7) {
    out = Lookup(*matrix, n.substr(7));
  } else {
    return false;
  }
  return true;
}

struct Value {
  bool is_bool = false;
  bool b = false;
  std::string s;
  bool Truthy() const { return is_bool ? b : !s.empty(); }
  std::string Text() const { return is_bool ? (b ? "true" : "false") : s; }
};

Value Bool(bool b) { return Value{true, b, ""}; }

Value Eval(const Node& node, const ExprContext& c) {
  switch (node.kind) {
    case Node::Kind::kString: return Value{false, false, node.text};
    case Node::Kind::kBool: return Bool(node.value);
    case Node::Kind::kVar: {
      Value v;
      Resolve(node.text, c, nullptr, v.s);
      return v;
    }
    case Node::Kind::kEvalPassed: {
      auto it = c.evals.find(node.text);
      return Bool(it != c.evals.end() && it->second);
    }
    case Node::Kind::kNot: return Bool(!Eval(*node.left, c).Truthy());
    case Node::Kind::kAnd:
      return Bool(Eval(*node.left, c).Truthy() && Eval(*node.right, c).Truthy());
    case Node::Kind::kOr:
      return Bool(Eval(*node.left, c).Truthy() || Eval(*node.right, c).Truthy());
    case Node::Kind::kEq: return Bool(Eval(*node.left, c).Text() == Eval(*node.right, c).Text());
    case Node::Kind::kNe: return Bool(Eval(*node.left, c).Text() != Eval(*node.right, c).Text());
    case Node::Kind::kStartsWith:
      return Bool(Eval(*node.left, c).Text().rfind(Eval(*node.right, c).Text(), 0) == 0);
    case Node::Kind::kContains:
      return Bool(Eval(*node.left, c).Text().find(Eval(*node.right, c).Text()) !=
                  std::string::npos);
  }
  return Bool(false);
}

// Calls f(start, end, name) for each "${{ name }}"; returns the column of an
// unterminated one, or 0.
template <typename F>
int ForEachPlaceholder(std::string_view text, F f) {
  size_t pos = 0;
  while ((pos = text.find("${{", pos)) != std::string_view::npos) {
    const size_t close = text.find("}}", pos + 3);
    if (close == std::string_view::npos) return static_cast<int>(pos) + 1;
    std::string_view name = text.substr(pos + 3, close - pos - 3);
    while (!name.empty() && name.front() == ' ') name.remove_prefix(1);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    f(pos, close + 2, name);
    pos = close + 2;
  }
  return 0;
}

}  // namespace

absl::StatusOr<Expr> Expr::Parse(std::string_view text, ExprOptions options) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(text);
  if (!tokens.ok()) return tokens.status();
  Parser parser(*std::move(tokens), options);
  absl::StatusOr<NodePtr> root = parser.ParseAll();
  if (!root.ok()) return root.status();
  Expr expr;
  expr.text_ = std::string(text);
  expr.root_ = *std::move(root);
  return expr;
}

bool Expr::Evaluate(const ExprContext& context) const {
  return root_ != nullptr && Eval(*root_, context).Truthy();
}

absl::Status ValidatePlaceholders(std::string_view text, bool allow_matrix) {
  absl::Status status;
  const ExprContext empty;
  const std::map<std::string, std::string> no_matrix;
  const int unterminated =
      ForEachPlaceholder(text, [&](size_t start, size_t, std::string_view name) {
        std::string ignored;
        const bool bad_dotted =
            name.empty() || name.back() == '.' || std::count(name.begin(), name.end(), '.') > 1;
        if (status.ok() &&
            (bad_dotted || !Resolve(name, empty, allow_matrix ? &no_matrix : nullptr, ignored))) {
          status = ErrorAt(static_cast<int>(start) + 1,
                           absl::StrCat("unknown placeholder '", std::string(name),
                                        "' (expected branch, tag, event, inputs.NAME, ",
                                        allow_matrix ? "env.NAME or matrix.NAME)" : "env.NAME)"));
        }
      });
  if (unterminated > 0 && status.ok()) {
    return ErrorAt(unterminated, "unterminated placeholder '${{'");
  }
  return status;
}

std::string SubstitutePlaceholders(std::string_view text, const ExprContext& context,
                                   const std::map<std::string, std::string>& matrix) {
  std::string out;
  size_t copied = 0;
  ForEachPlaceholder(text, [&](size_t start, size_t end, std::string_view name) {
    std::string value;
    if (!Resolve(name, context, &matrix, value)) return;
    out += std::string(text.substr(copied, start - copied));
    out += value;
    copied = end;
  });
  out += std::string(text.substr(copied));
  return out;
}

}  // namespace assay
