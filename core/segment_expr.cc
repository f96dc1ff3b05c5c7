#include "core/segment_expr.h"

#include <cctype>
#include <charconv>

#include "core/features.h"

namespace loyalty::core {

namespace v1 = loyalty::v1;

struct SegmentExpr::Node {
  enum class Kind { kAnd, kOr, kNot, kConst, kCompare, kIn };
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe };
  Kind kind = Kind::kConst;
  bool constant = false;
  std::vector<std::shared_ptr<const Node>> children;
  const FeatureField* field = nullptr;
  Op op = Op::kEq;
  std::vector<int64_t> numbers;       // comparison or "in" values of a number feature
  std::vector<std::string> texts;     // ... of a text feature
};

namespace {

using Node = SegmentExpr::Node;
using NodePtr = std::shared_ptr<const Node>;

bool IsNumberField(const FeatureField* f) { return f->number != nullptr; }

struct Token {
  enum class Type { kEnd, kIdent, kNumber, kText, kOp, kLParen, kRParen, kComma };
  Type type = Type::kEnd;
  std::string text;
  int64_t number = 0;
  size_t pos = 0;  // 0-based
};

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  Result<NodePtr> ParseAll() {
    if (auto s = Next(); !s.ok()) return s.error();
    if (tok_.type == Token::Type::kEnd) return Fail(tok_.pos, "the expression is empty");
    auto root = ParseOr();
    if (!root.ok()) return root;
    if (tok_.type != Token::Type::kEnd) {
      return Fail(tok_.pos, "unexpected '" + tok_.text + "' after a complete expression");
    }
    return root;
  }

 private:
  Error TooDeep() {
    return Fail(tok_.pos,
                "parentheses and \"not\" nest more than " + std::to_string(kMaxNesting) + " deep");
  }

  Error Fail(size_t pos, const std::string& reason) {
    return MakeError(code::kInvalidSegment,
                     "position " + std::to_string(pos + 1) + ": " + reason);
  }

  Status Next() {
    while (i_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[i_]))) ++i_;
    tok_ = Token{};
    tok_.pos = i_;
    if (i_ >= text_.size()) return {};
    const char c = text_[i_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t j = i_;
      while (j < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[j])) || text_[j] == '_')) {
        ++j;
      }
      tok_.type = Token::Type::kIdent;
      tok_.text = std::string(text_.substr(i_, j - i_));
      i_ = j;
      return {};
    }
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '-' && i_ + 1 < text_.size() &&
         std::isdigit(static_cast<unsigned char>(text_[i_ + 1])))) {
      size_t j = i_ + 1;
      while (j < text_.size() && std::isdigit(static_cast<unsigned char>(text_[j]))) ++j;
      tok_.type = Token::Type::kNumber;
      tok_.text = std::string(text_.substr(i_, j - i_));
      auto [p, ec] = std::from_chars(text_.data() + i_, text_.data() + j, tok_.number);
      if (ec != std::errc() || p != text_.data() + j) {
        return Fail(i_, "number " + tok_.text + " is out of range");
      }
      i_ = j;
      return {};
    }
    if (c == '\'' || c == '"') {
      const size_t close = text_.find(c, i_ + 1);
      if (close == std::string_view::npos) return Fail(i_, "text is not closed");
      tok_.type = Token::Type::kText;
      tok_.text = std::string(text_.substr(i_ + 1, close - i_ - 1));
      i_ = close + 1;
      return {};
    }
    if (c == '(' || c == ')' || c == ',') {
      tok_.type = c == '(' ? Token::Type::kLParen
                           : (c == ')' ? Token::Type::kRParen : Token::Type::kComma);
      tok_.text = std::string(1, c);
      ++i_;
      return {};
    }
    for (std::string_view op : {"==", "!=", "<=", ">=", "<", ">"}) {
      if (text_.substr(i_, op.size()) == op) {
        tok_.type = Token::Type::kOp;
        tok_.text = std::string(op);
        i_ += op.size();
        return {};
      }
    }
    if (c == '=') return Fail(i_, "'=' is not an operator; use '=='");
    return Fail(i_, std::string("unexpected character '") + c + "'");
  }

  bool IsKeyword(const char* word) const {
    return tok_.type == Token::Type::kIdent && tok_.text == word;
  }

  Result<NodePtr> ParseOr() {
    auto left = ParseAnd();
    if (!left.ok()) return left;
    if (!IsKeyword("or")) return left;
    auto node = std::make_shared<Node>();
    node->kind = Node::Kind::kOr;
    node->children.push_back(*left);
    while (IsKeyword("or")) {
      if (auto s = Next(); !s.ok()) return s.error();
      auto right = ParseAnd();
      if (!right.ok()) return right;
      node->children.push_back(*right);
    }
    return NodePtr(node);
  }

  Result<NodePtr> ParseAnd() {
    auto left = ParseNot();
    if (!left.ok()) return left;
    if (!IsKeyword("and")) return left;
    auto node = std::make_shared<Node>();
    node->kind = Node::Kind::kAnd;
    node->children.push_back(*left);
    while (IsKeyword("and")) {
      if (auto s = Next(); !s.ok()) return s.error();
      auto right = ParseNot();
      if (!right.ok()) return right;
      node->children.push_back(*right);
    }
    return NodePtr(node);
  }

  // Parentheses and "not" nest by recursion, here, in evaluation and in the
  // tree's destruction: a bound keeps a hostile definition from
  // overflowing the stack of the server that parses it.
  static constexpr int kMaxNesting = 64;

  Result<NodePtr> ParseNot() {
    if (!IsKeyword("not")) return ParsePrimary();
    if (++depth_ > kMaxNesting) return TooDeep();
    if (auto s = Next(); !s.ok()) return s.error();
    auto inner = ParseNot();
    --depth_;
    if (!inner.ok()) return inner;
    auto node = std::make_shared<Node>();
    node->kind = Node::Kind::kNot;
    node->children.push_back(*inner);
    return NodePtr(node);
  }

  Result<NodePtr> ParsePrimary() {
    if (tok_.type == Token::Type::kLParen) {
      if (++depth_ > kMaxNesting) return TooDeep();
      if (auto s = Next(); !s.ok()) return s.error();
      auto inner = ParseOr();
      --depth_;
      if (!inner.ok()) return inner;
      if (tok_.type != Token::Type::kRParen) return Fail(tok_.pos, "expected ')'");
      if (auto s = Next(); !s.ok()) return s.error();
      return inner;
    }
    if (IsKeyword("true") || IsKeyword("false")) {
      auto node = std::make_shared<Node>();
      node->kind = Node::Kind::kConst;
      node->constant = tok_.text == "true";
      if (auto s = Next(); !s.ok()) return s.error();
      return NodePtr(node);
    }
    if (tok_.type == Token::Type::kEnd) return Fail(tok_.pos, "the expression ends too early");
    if (tok_.type != Token::Type::kIdent) {
      return Fail(tok_.pos, "expected a feature name, found '" + tok_.text + "'");
    }
    const FeatureField* field = FindFeature(tok_.text);
    if (field == nullptr) return Fail(tok_.pos, "unknown feature '" + tok_.text + "'");
    const bool number = IsNumberField(field);
    auto node = std::make_shared<Node>();
    node->field = field;
    if (auto s = Next(); !s.ok()) return s.error();

    auto read_value = [&]() -> Status {
      if (number && tok_.type == Token::Type::kNumber) {
        node->numbers.push_back(tok_.number);
      } else if (!number && tok_.type == Token::Type::kText) {
        node->texts.push_back(tok_.text);
      } else if (tok_.type == Token::Type::kEnd) {
        return Fail(tok_.pos, "the expression ends where a value was expected");
      } else {
        return Fail(tok_.pos, "'" + std::string(field->name) + "' is " +
                                  (number ? "a number" : "text") + "; expected " +
                                  (number ? "a number" : "quoted text") + ", found '" +
                                  tok_.text + "'");
      }
      return Next();
    };

    if (IsKeyword("in")) {
      node->kind = Node::Kind::kIn;
      if (auto s = Next(); !s.ok()) return s.error();
      if (tok_.type != Token::Type::kLParen) return Fail(tok_.pos, "expected '(' after 'in'");
      do {
        if (auto s = Next(); !s.ok()) return s.error();
        if (auto s = read_value(); !s.ok()) return s.error();
      } while (tok_.type == Token::Type::kComma);
      if (tok_.type != Token::Type::kRParen) return Fail(tok_.pos, "expected ',' or ')'");
      if (auto s = Next(); !s.ok()) return s.error();
      return NodePtr(node);
    }
    if (tok_.type != Token::Type::kOp) {
      return Fail(tok_.pos,
                  "expected a comparison operator after '" + std::string(field->name) + "'");
    }
    node->kind = Node::Kind::kCompare;
    const std::string op = tok_.text;
    const size_t op_pos = tok_.pos;
    node->op = op == "==" ? Node::Op::kEq
               : op == "!=" ? Node::Op::kNe
               : op == "<"  ? Node::Op::kLt
               : op == "<=" ? Node::Op::kLe
               : op == ">"  ? Node::Op::kGt
                            : Node::Op::kGe;
    if (!number && node->op != Node::Op::kEq && node->op != Node::Op::kNe) {
      return Fail(op_pos,
                  "'" + std::string(field->name) + "' is text: only '==', '!=' and 'in' apply");
    }
    if (auto s = Next(); !s.ok()) return s.error();
    if (auto s = read_value(); !s.ok()) return s.error();
    return NodePtr(node);
  }

  std::string_view text_;
  size_t i_ = 0;
  Token tok_;
  int depth_ = 0;  // open parentheses and "not"s
};

bool Eval(const Node& n, const FeatureValues& f) {
  switch (n.kind) {
    case Node::Kind::kConst:
      return n.constant;
    case Node::Kind::kNot:
      return !Eval(*n.children[0], f);
    case Node::Kind::kAnd:
      for (const auto& c : n.children) {
        if (!Eval(*c, f)) return false;
      }
      return true;
    case Node::Kind::kOr:
      for (const auto& c : n.children) {
        if (Eval(*c, f)) return true;
      }
      return false;
    case Node::Kind::kCompare:
    case Node::Kind::kIn:
      break;
  }
  if (!IsNumberField(n.field)) {
    const std::string_view v = f.*(n.field->text);
    bool found = false;
    for (const auto& t : n.texts) found = found || v == t;
    return n.kind == Node::Kind::kIn ? found : (n.op == Node::Op::kEq) == found;
  }
  const int64_t v = f.*(n.field->number);
  if (n.kind == Node::Kind::kIn) {
    for (int64_t x : n.numbers) {
      if (v == x) return true;
    }
    return false;
  }
  const int64_t x = n.numbers[0];
  switch (n.op) {
    case Node::Op::kEq: return v == x;
    case Node::Op::kNe: return v != x;
    case Node::Op::kLt: return v < x;
    case Node::Op::kLe: return v <= x;
    case Node::Op::kGt: return v > x;
    case Node::Op::kGe: return v >= x;
  }
  return false;
}

v1::SegmentDefinition Def(const char* id, const char* name, const char* expr, const char* purpose,
                          const char* action, int64_t target = 0) {
  v1::SegmentDefinition d;
  d.set_id(id);
  d.set_name(name);
  d.set_expression(expr);
  d.set_purpose(purpose);
  d.set_suggested_action(action);
  d.set_target_members(target);
  d.set_builtin(true);
  return d;
}

}  // namespace

Result<SegmentExpr> SegmentExpr::Parse(std::string_view text) {
  Parser parser(text);
  auto root = parser.ParseAll();
  if (!root.ok()) return root.error();
  return SegmentExpr(std::move(*root));
}

bool SegmentExpr::Matches(const FeatureValues& features) const { return Eval(*root_, features); }

bool SegmentExpr::Matches(const v1::MemberFeatures& features) const {
  return Eval(*root_, FromProto(features));
}

std::vector<std::string> SegmentExpr::FeatureNames() {
  std::vector<std::string> out;
  for (const FeatureField& f : FeatureFields()) out.emplace_back(f.name);
  return out;
}

Status ValidateSegment(const v1::SegmentDefinition& s) {
  auto bad = [](std::string m) { return MakeError(code::kInvalidSegment, std::move(m)); };
  if (s.id().empty() || s.id().size() > 64) return bad("id must have 1 to 64 characters");
  for (char c : s.id()) {
    if (!(std::islower(static_cast<unsigned char>(c)) ||
          std::isdigit(static_cast<unsigned char>(c)) || c == '_' || c == '-')) {
      return bad("id \"" + s.id() + "\" may hold only a-z, 0-9, '_' and '-'");
    }
  }
  if (s.name().empty()) return bad("segment \"" + s.id() + "\" has no name");
  if (s.target_members() < 0) return bad("target_members must not be negative");
  auto expr = SegmentExpr::Parse(s.expression());
  if (!expr.ok()) return bad("expression of \"" + s.id() + "\": " + expr.error().message);
  return {};
}

std::vector<v1::SegmentDefinition> DefaultSegments() {
  return {
      Def("few-visits", "Few visits", "visits_since_enrolment < 3",
          "Members who have come back fewer than 3 times since they joined",
          "Remind them of the programme's value: a welcome-back bonus"),
      Def("some-visits", "Some visits",
          "visits_since_enrolment >= 3 and visits_since_enrolment < 10",
          "Members building a habit (3 to 9 visits since they joined)",
          "Push toward the next tier with offers on their top category"),
      Def("many-visits", "Many visits", "visits_since_enrolment >= 10",
          "Regulars (10 or more visits since they joined)", "Reward and ask for referrals"),
      Def("heavy-users", "Heavy users", "spend_percentile_band == 3",
          "Top 20 % of the programme by spend in the last 365 days", "Exclusive previews"),
      Def("medium-users", "Medium users", "spend_percentile_band == 2",
          "Middle 40 % by spend in the last 365 days", "Basket-building offers"),
      Def("low-users", "Low users", "spend_percentile_band == 1",
          "Bottom 40 % by spend in the last 365 days", "Entry offers on popular products"),
      Def("rfm-champions", "RFM champions", "rfm_r >= 4 and rfm_f >= 4 and rfm_m >= 4",
          "Recent, frequent, high-spending members", "Reward; give a referral code"),
      Def("rfm-loyal", "RFM loyal", "rfm_f >= 4 and rfm_r >= 3 and not (rfm_r >= 4 and rfm_m >= 4)",
          "Frequent members who are not (yet) champions", "Tier upgrade nudges"),
      Def("rfm-at-risk", "RFM at risk", "rfm_r <= 2 and rfm_f >= 3",
          "Used to come often, have not come recently", "Win-back offer"),
      Def("rfm-hibernating", "RFM hibernating", "rfm_r <= 2 and rfm_f <= 2",
          "Infrequent and not recent", "Low-cost reactivation message"),
      Def("category-lovers", "Category lovers", "top_category_share_pct > 50",
          "One category is over half of their spend", "Offers in their favourite category"),
      Def("weekday-shoppers", "Weekday shoppers",
          "visits_since_enrolment > 0 and weekend_visit_share_pct < 50",
          "Most visits on Monday to Friday", "Weekday offers"),
      Def("weekend-shoppers", "Weekend shoppers",
          "visits_since_enrolment > 0 and weekend_visit_share_pct >= 50",
          "Half or more of their visits on Saturday or Sunday", "Weekend offers"),
      Def("new-members", "New members", "days_since_enrolment < 30",
          "In their first 30 days", "Onboarding: second-visit bonus"),
  };
}

SegmentSet::SegmentSet(const std::vector<v1::SegmentDefinition>& definitions) {
  for (const auto& d : definitions) {
    auto expr = SegmentExpr::Parse(d.expression());
    if (!expr.ok()) continue;
    defs_.push_back(d);
    exprs_.push_back(std::move(*expr));
  }
}

std::vector<std::string> SegmentSet::Evaluate(const FeatureValues& features) const {
  std::vector<std::string> out;
  for (size_t i = 0; i < exprs_.size(); ++i) {
    if (exprs_[i].Matches(features)) out.push_back(defs_[i].id());
  }
  return out;
}

std::vector<std::string> SegmentSet::Evaluate(const v1::MemberFeatures& features) const {
  return Evaluate(FromProto(features));
}

}  // namespace loyalty::core
