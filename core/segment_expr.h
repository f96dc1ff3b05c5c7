// Segment expressions: the small predicate language of segment definitions
// (loyalty.v1.SegmentDefinition.expression), parsed once and evaluated per
// member against loyalty.v1.MemberFeatures.
//
// Grammar (keywords are lower case; whitespace is free):
//   expr       := and_expr { "or" and_expr }
//   and_expr   := not_expr { "and" not_expr }
//   not_expr   := "not" not_expr | primary
//   primary    := "(" expr ")" | "true" | "false" | comparison
//   comparison := FEATURE OP value | FEATURE "in" "(" value { "," value } ")"
//   OP         := "==" | "!=" | "<" | "<=" | ">" | ">="
//   value      := INTEGER (optionally negative) | 'text' | "text"
// FEATURE is a field name of MemberFeatures that holds a number, text or
// flag (core/features.h defines each), e.g. visits_since_enrolment,
// spend_365d, rfm_r, lifecycle, top_category, consent. Numbers compare
// with numbers, text with text ("==" and "!=" and "in" only); consent is
// 0 or 1. Example:
//   visits_since_enrolment >= 3 and visits_since_enrolment < 10
//   lifecycle in ('at_risk', 'lapsed') and spend_365d > 10000
//
// Parse errors are "invalid_segment" with the 1-based character position
// and the reason: "position 27: unknown feature 'visit'".
// Evaluation reads a core::FeatureValues (core/features.h): a comparison is
// a member-pointer load, so a full pass evaluates every segment of a million
// members in a fraction of a second. The MemberFeatures overloads convert
// first (admin API, tests).
//
// Thread safety: a parsed SegmentExpr is immutable and may be evaluated from
// many threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"
#include "loyalty/v1/segments.pb.h"

namespace loyalty::core {

namespace code {
inline constexpr const char* kInvalidSegment = "invalid_segment";
}

struct FeatureValues;

class SegmentExpr {
 public:
  struct Node;

  static Result<SegmentExpr> Parse(std::string_view text);

  bool Matches(const FeatureValues& features) const;
  bool Matches(const loyalty::v1::MemberFeatures& features) const;

  // The feature names the expression may use.
  static std::vector<std::string> FeatureNames();

 private:
  explicit SegmentExpr(std::shared_ptr<const Node> root) : root_(std::move(root)) {}
  std::shared_ptr<const Node> root_;
};

// Checks a definition: id format, a name, a valid expression, a
// non-negative target. Error code "invalid_segment".
Status ValidateSegment(const loyalty::v1::SegmentDefinition& segment);

// The segments every programme starts with (README "Segmentation").
std::vector<loyalty::v1::SegmentDefinition> DefaultSegments();

// A compiled set of definitions, evaluated together.
class SegmentSet {
 public:
  // Definitions that do not parse are skipped (they were validated on save).
  explicit SegmentSet(const std::vector<loyalty::v1::SegmentDefinition>& definitions);
  SegmentSet() = default;
  // Ids of the segments `features` belongs to, in definition order.
  std::vector<std::string> Evaluate(const FeatureValues& features) const;
  std::vector<std::string> Evaluate(const loyalty::v1::MemberFeatures& features) const;
  // Whether `features` belongs to definitions()[i].
  bool Matches(size_t i, const FeatureValues& features) const { return exprs_[i].Matches(features); }
  size_t size() const { return exprs_.size(); }
  const std::vector<loyalty::v1::SegmentDefinition>& definitions() const { return defs_; }

 private:
  std::vector<loyalty::v1::SegmentDefinition> defs_;
  std::vector<SegmentExpr> exprs_;
};

}  // namespace loyalty::core
