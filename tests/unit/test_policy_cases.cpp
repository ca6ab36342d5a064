// Runs every declarative policy case under tests/data/policy/cases/*.yaml: a fleet, a policy,
// optional usage, catalogue overrides and proposed changes, and the expected result per rule
// (outcome, share, numerator, denominator, explanation substring, what-if) or an expected error.
#include <gtest/gtest.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <optional>

#include "common/error.h"
#include "fleet/catalogue.h"
#include "fleet/fleet.h"
#include "policy/change.h"
#include "policy/evaluate.h"
#include "policy/policy.h"
#include "policy/usage.h"

namespace {

using namespace mixserve;

std::filesystem::path cases_dir() {
  return std::filesystem::path(MIXSERVE_TEST_DATA_DIR) / "policy" / "cases";
}

std::string dump(const YAML::Node& node) {
  YAML::Emitter out;
  out << node;
  return out.c_str();
}

// Loads and evaluates one case; errors propagate to the caller.
policy::Evaluation run_case(const YAML::Node& c, const std::string& name) {
  auto catalogue = fleet::Catalogue::builtin();
  if (c["catalogue"]) catalogue.apply_overrides_text(dump(c["catalogue"]), name + ":catalogue");
  fleet::FleetOptions options;
  options.allow_unknown_chips = c["allow_unknown_chips"] && c["allow_unknown_chips"].as<bool>();
  auto fl = fleet::parse_fleet(dump(c["fleet"]), name + ":fleet", catalogue, options);
  const auto pol = policy::parse_policy(dump(c["policy"]), name + ":policy");
  std::optional<policy::Usage> usage;
  if (c["usage"]) usage = policy::parse_usage(dump(c["usage"]), name + ":usage", fl, catalogue);
  if (c["changes"]) {
    for (const auto& spec : c["changes"]) {
      policy::apply_change(fl, policy::parse_change(spec.as<std::string>()), catalogue, options.allow_unknown_chips);
    }
  }
  return policy::evaluate(pol, fl, catalogue, usage ? &*usage : nullptr);
}

void check_rule(const policy::RuleResult& r, const YAML::Node& e, const std::string& where) {
  SCOPED_TRACE(where + " rule " + r.rule.name + ": " + r.explanation);
  EXPECT_EQ(std::string(policy::outcome_name(r.outcome)), e["outcome"].as<std::string>());
  if (e["compliant"]) {
    EXPECT_EQ(r.compliant, e["compliant"].as<bool>());
  }
  // Outcome and compliant must agree whatever the case says.
  EXPECT_EQ(r.compliant, r.outcome == policy::Outcome::kCompliant || r.outcome == policy::Outcome::kNotApplicable);
  if (e["share"]) {
    if (e["share"].IsNull()) {
      EXPECT_FALSE(r.share.has_value());
    } else {
      ASSERT_TRUE(r.share.has_value());
      EXPECT_NEAR(*r.share, e["share"].as<double>(), 1e-9);
    }
  }
  if (e["numerator"]) {
    EXPECT_NEAR(r.numerator, e["numerator"].as<double>(), 1e-6);
  }
  if (e["denominator"]) {
    EXPECT_NEAR(r.denominator, e["denominator"].as<double>(), 1e-6);
  }
  if (e["margin"]) {
    ASSERT_TRUE(r.margin.has_value());
    EXPECT_NEAR(*r.margin, e["margin"].as<double>(), 1e-9);
  }
  if (e["explanation"]) {
    EXPECT_NE(r.explanation.find(e["explanation"].as<std::string>()), std::string::npos)
        << "explanation lacks: " << e["explanation"].as<std::string>();
  }
  if (e["what_if_add"]) {
    if (e["what_if_add"].IsNull()) {
      EXPECT_FALSE(r.what_if.add.has_value());
    } else {
      ASSERT_TRUE(r.what_if.add.has_value());
      EXPECT_EQ(r.what_if.add->chip, e["what_if_add"]["chip"].as<std::string>());
      EXPECT_EQ(r.what_if.add->count, e["what_if_add"]["count"].as<std::int64_t>());
    }
  }
  if (e["what_if_remove_devices"]) {
    EXPECT_EQ(r.what_if.remove_devices, e["what_if_remove_devices"].as<std::int64_t>());
  }
}

TEST(PolicyCases, AllCasesHold) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(cases_dir())) {
    if (entry.path().extension() == ".yaml") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  ASSERT_GE(files.size(), 25u) << "expected at least 25 declarative cases in " << cases_dir();
  for (const auto& file : files) {
    const auto name = file.filename().string();
    SCOPED_TRACE(name);
    const auto c = YAML::LoadFile(file.string());
    ASSERT_TRUE(c["description"]) << name << ": every case says what it checks";
    if (c["expect_error"]) {
      try {
        run_case(c, name);
        ADD_FAILURE() << name << ": expected an error containing '" << c["expect_error"].as<std::string>() << "'";
      } catch (const Error& err) {
        EXPECT_EQ(err.code(), ErrorCode::kInvalidArgument);
        EXPECT_NE(std::string(err.what()).find(c["expect_error"].as<std::string>()), std::string::npos) << err.what();
      }
      continue;
    }
    const auto eval = run_case(c, name);
    const auto expect = c["expect"];
    ASSERT_TRUE(expect && expect.IsSequence()) << name;
    ASSERT_EQ(expect.size(), eval.results.size()) << name << ": one expectation per rule";
    for (std::size_t i = 0; i < expect.size(); ++i) {
      ASSERT_EQ(eval.results[i].rule.name, expect[i]["rule"].as<std::string>()) << name;
      check_rule(eval.results[i], expect[i], name);
    }
    if (c["exit_code"]) {
      EXPECT_EQ(eval.exit_code(), c["exit_code"].as<int>()) << name;
    }
  }
}

}  // namespace
