// Sampler tests: greedy, filters against an independent double-precision reference, determinism,
// repetition penalty, parameter validation.
#include "engine/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/error.h"

namespace mixserve {
namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingParams greedy_params() {
  SamplingParams p;
  p.temperature = 0.0f;
  return p;
}

// Straightforward reference argmax: lowest id among the largest non-NaN values.
int32_t reference_argmax(const std::vector<float>& logits) {
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  return best;
}

std::vector<float> random_logits(size_t n, uint32_t seed, float scale = 3.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The filtered distribution, written independently of the implementation in the documented order
// (full sort, top-k, softmax in double, top-p, min-p, renormalise). `margin` reports how close any
// top-p / min-p decision came to its threshold, so tests can insist on unambiguous cases.
struct Reference {
  std::vector<double> prob;  // per token id, 0 for filtered-out tokens
  double margin = 1.0;
};

Reference reference_distribution(const std::vector<float>& logits, const SamplingParams& p) {
  const size_t n = logits.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  if (p.top_k > 0 && static_cast<size_t>(p.top_k) < n) order.resize(static_cast<size_t>(p.top_k));
  const double max_logit = logits[order[0]];
  std::vector<double> q(order.size());
  double z = 0.0;
  for (size_t i = 0; i < order.size(); ++i) {
    q[i] = std::exp((logits[order[i]] - max_logit) / p.temperature);
    z += q[i];
  }
  for (double& x : q) x /= z;
  Reference ref;
  size_t keep = order.size();
  if (p.top_p < 1.0f) {
    double cum = 0.0;
    for (size_t i = 0; i < order.size(); ++i) {
      cum += q[i];
      ref.margin = std::min(ref.margin, std::abs(cum - p.top_p));
      if (cum >= p.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  size_t keep_min_p = 0;
  for (size_t i = 0; i < order.size(); ++i) {
    if (p.min_p > 0.0f) ref.margin = std::min(ref.margin, std::abs(q[i] / q[0] - p.min_p));
    if (q[i] >= p.min_p * q[0]) keep_min_p = i + 1;
  }
  keep = std::min(keep, keep_min_p);
  ref.prob.assign(n, 0.0);
  double kept = 0.0;
  for (size_t i = 0; i < keep; ++i) kept += q[i];
  for (size_t i = 0; i < keep; ++i) ref.prob[order[i]] = q[i] / kept;
  return ref;
}

TEST(SamplerGreedy, ArgmaxTiesAndNaN) {
  Sampler s(greedy_params());
  EXPECT_EQ(s.sample(std::vector<float>{0.5f, 2.0f, -1.0f, 2.0f}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{3.0f, 3.0f, 3.0f}), 0);
  EXPECT_EQ(s.sample(std::vector<float>{kNaN, 1.0f, kNaN, 1.5f, kNaN}), 3);
  EXPECT_EQ(s.sample(std::vector<float>{-kInf, -kInf, -5.0f}), 2);
  EXPECT_EQ(s.sample(std::vector<float>{-kInf, -kInf}), 0);
  EXPECT_EQ(s.sample(std::vector<float>{1.0f, kInf, kInf}), 1);
  EXPECT_EQ(s.sample(std::vector<float>{7.0f}), 0);
}

TEST(SamplerGreedy, MatchesReferenceOnRandomVectors) {
  for (size_t n : {1u, 2u, 7u, 33u, 1000u, 32000u}) {
    for (uint32_t seed = 1; seed <= 5; ++seed) {
      std::vector<float> logits = random_logits(n, seed);
      for (size_t i = 0; i < n; i += 5) logits[i] = std::round(logits[i]);  // create ties
      if (n > 3) logits[n / 2] = kNaN;
      Sampler s(greedy_params());
      EXPECT_EQ(s.sample(logits), reference_argmax(logits)) << "n=" << n << " seed=" << seed;
    }
  }
}

TEST(SamplerGreedy, AllNaNOrEmptyThrows) {
  Sampler s(greedy_params());
  std::vector<float> nan3(3, kNaN);
  EXPECT_THROW(s.sample(nan3), Error);
  EXPECT_THROW(s.sample(std::vector<float>{}), Error);
  SamplingParams random;
  random.temperature = 1.0f;
  Sampler r(random);
  EXPECT_THROW(r.sample(nan3), Error);
  try {
    r.sample(std::vector<float>{});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(SamplerTopK, TopKOneEqualsGreedyAtAnyTemperature) {
  for (float temperature : {0.1f, 0.7f, 1.0f, 5.0f, 1000.0f}) {
    for (uint32_t seed = 1; seed <= 20; ++seed) {
      std::vector<float> logits = random_logits(50 + seed, seed, 0.5f);
      logits[seed % 7] = logits[seed % 7 + 3] = 10.0f;  // a tie at the top: lowest id wins
      SamplingParams p;
      p.temperature = temperature;
      p.top_k = 1;
      p.top_p = 0.5f;
      p.seed = seed;
      Sampler s(p);
      for (int i = 0; i < 5; ++i) EXPECT_EQ(s.sample(logits), reference_argmax(logits));
    }
  }
}

TEST(SamplerTopK, TiesAtTheBoundaryGoToTheLowerIds) {
  SamplingParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  {
    Sampler s(p);  // streaming selection: ids 1 and 2 (lower of the tied 2, 3, 4)
    std::set<int32_t> seen;
    for (int i = 0; i < 500; ++i) seen.insert(s.sample(std::vector<float>{1.0f, 3.0f, 2.0f, 2.0f, 2.0f, 0.0f}));
    EXPECT_EQ(seen, (std::set<int32_t>{1, 2}));
  }
  {
    p.top_k = 1500;  // above the streaming limit: the full selection path
    std::vector<float> logits(3000, -1.0f);
    std::fill(logits.begin() + 100, logits.begin() + 2100, 1.0f);  // 2000 tied tokens
    Sampler s(p);
    for (int i = 0; i < 2000; ++i) {
      const int32_t t = s.sample(logits);
      ASSERT_TRUE(t >= 100 && t < 1600) << t;
    }
  }
  {
    SamplingParams g = greedy_params();  // a penalised value tying a raw one: lower id wins
    g.repeat_penalty = 2.0f;
    Sampler s(g);
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{4.0f, 2.0f}), 0);
    s.accept(1);
    s.accept(2);
    EXPECT_EQ(s.sample(std::vector<float>{1.0f, 4.0f, 4.0f, 2.0f}), 1);
  }
}

TEST(SamplerSeed, SameSeedSameSequenceDifferentSeedsDiffer) {
  const std::vector<float> logits = random_logits(500, 42, 0.5f);
  auto run = [&](uint64_t seed) {
    SamplingParams p;
    p.temperature = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = 1.2f;
    p.seed = seed;
    Sampler s(p);
    std::vector<int32_t> out;
    for (int i = 0; i < 200; ++i) {
      out.push_back(s.sample(logits));
      s.accept(out.back());
    }
    return out;
  };
  EXPECT_EQ(run(7), run(7));
  EXPECT_EQ(run(0), run(0));
  EXPECT_NE(run(7), run(8));
  EXPECT_NE(run(0), run(1));
  const std::vector<int32_t> seq = run(123);
  EXPECT_GT(std::set<int32_t>(seq.begin(), seq.end()).size(), 50u);  // near-flat logits: varied draws
}

// The draw walks the kept tokens in id order, so filtering by top-k / top-p must give exactly the
// same token sequence as masking the filtered-out logits to -inf with the filters off.
TEST(SamplerSeed, DrawIsIndependentOfSelectionPath) {
  const std::vector<float> logits = random_logits(1500, 17, 1.0f);
  SamplingParams filtered;
  filtered.temperature = 0.9f;
  filtered.top_k = 1000;
  filtered.top_p = 0.6f;
  filtered.min_p = 0.0f;
  filtered.seed = 5;
  const Reference ref = reference_distribution(logits, filtered);
  ASSERT_GT(ref.margin, 1e-6);
  std::vector<float> masked = logits;
  for (size_t i = 0; i < masked.size(); ++i) {
    if (ref.prob[i] == 0.0) masked[i] = -kInf;
  }
  SamplingParams plain = filtered;
  plain.top_k = 0;
  plain.top_p = 1.0f;
  Sampler a(filtered);
  Sampler b(plain);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(a.sample(logits), b.sample(masked)) << "draw " << i;
}

// Empirical frequencies of 20000 draws against the reference distribution. Each count is
// Binomial(N, p): the test allows 5 standard deviations per token (a correct sampler fails with
// probability < 1e-5 per case; the seeds are fixed, so it is deterministic anyway), while a wrong
// filter or temperature moves some probability by far more. Filtered-out tokens must never appear.
void expect_matches_reference(const std::vector<float>& logits, const SamplingParams& p) {
  const Reference ref = reference_distribution(logits, p);
  ASSERT_GT(ref.margin, 1e-4) << "test case too close to a threshold to be unambiguous";
  Sampler s(p);
  constexpr int kDraws = 20000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) {
    const int32_t t = s.sample(logits);
    ASSERT_GE(t, 0);
    ASSERT_LT(static_cast<size_t>(t), logits.size());
    ++counts[static_cast<size_t>(t)];
  }
  for (size_t i = 0; i < logits.size(); ++i) {
    const double pi = ref.prob[i];
    const double freq = static_cast<double>(counts[i]) / kDraws;
    if (pi == 0.0) {
      EXPECT_EQ(counts[i], 0) << "filtered-out token " << i << " drawn";
    } else {
      const double bound = 5.0 * std::sqrt(pi * (1.0 - pi) / kDraws) + 1e-12;
      EXPECT_NEAR(freq, pi, bound) << "token " << i << " top_k=" << p.top_k << " top_p=" << p.top_p
                                   << " min_p=" << p.min_p;
    }
  }
}

struct FilterCase {
  int32_t top_k;
  float top_p;
  float min_p;
};

TEST(SamplerDistribution, MatchesFilteredSoftmaxAtTemperature07) {
  const std::vector<float> logits = {1.0f, 2.5f, 0.3f, 2.0f, -1.0f, 1.7f, 0.9f, 3.1f, -0.5f, 1.2f, 2.2f};
  const FilterCase cases[] = {
      {0, 1.0f, 0.0f},    {5, 1.0f, 0.0f},  {0, 0.8f, 0.0f},   {0, 1.0f, 0.1f},
      {6, 0.9f, 0.05f},   {3, 0.95f, 0.2f}, {8, 0.75f, 0.0f},  {0, 0.97f, 0.03f},
      {4, 1.0f, 0.3f},    {2, 0.3f, 0.0f},  {11, 0.99f, 0.0f}, {20, 1.0f, 0.0f},
  };
  uint64_t seed = 1000;
  for (const FilterCase& c : cases) {
    SamplingParams p;
    p.temperature = 0.7f;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    p.seed = seed++;
    expect_matches_reference(logits, p);
  }
}

TEST(SamplerDistribution, WideTopPSetNeedsSeveralSortChunks) {
  // Near-flat logits over 300 tokens: the top-p set holds ~250 tokens, beyond the first chunk.
  const std::vector<float> logits = random_logits(300, 9, 0.3f);
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 0;
  p.top_p = 0.85f;
  p.min_p = 0.0f;
  p.seed = 77;
  expect_matches_reference(logits, p);
  p.top_k = 200;
  p.min_p = 0.5f;
  expect_matches_reference(logits, p);
}

TEST(SamplerDistribution, InfiniteLogits) {
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  Sampler s(p);
  int ones = 0;
  for (int i = 0; i < 2000; ++i) {
    const int32_t t = s.sample(std::vector<float>{3.0f, kInf, -kInf, kInf, kNaN});
    ASSERT_TRUE(t == 1 || t == 3) << t;
    ones += t == 1;
  }
  EXPECT_NEAR(ones / 2000.0, 0.5, 0.06);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(s.sample(std::vector<float>{-kInf, 0.0f, -kInf}), 1);
}

TEST(SamplerFilters, TokensOutsideTheFiltersAreNeverDrawn) {
  const std::vector<float> logits = random_logits(32000, 5, 2.0f);
  const FilterCase cases[] = {{50, 1.0f, 0.0f}, {0, 0.9f, 0.0f}, {0, 1.0f, 0.05f}, {40, 0.95f, 0.05f}};
  for (const FilterCase& c : cases) {
    SamplingParams p;
    p.temperature = 0.7f;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    p.seed = 3;
    const Reference ref = reference_distribution(logits, p);
    ASSERT_GT(ref.margin, 1e-6);
    Sampler s(p);
    std::set<int32_t> seen;
    for (int i = 0; i < 1000; ++i) {
      const int32_t t = s.sample(logits);
      ASSERT_GT(ref.prob[static_cast<size_t>(t)], 0.0) << "token " << t << " is outside the filters";
      seen.insert(t);
    }
    EXPECT_GT(seen.size(), 1u);
  }
}

TEST(SamplerPenalty, ChangesTheArgmaxAsExpected) {
  SamplingParams p = greedy_params();
  p.repeat_penalty = 1.1f;
  {
    Sampler s(p);  // positive logit divided: 2.0 / 1.1 = 1.82 < 1.9
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f}), 0);
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f}), 1);
  }
  {
    Sampler s(p);  // negative logit multiplied: -1.0 * 1.1 = -1.1 < -1.05
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{-1.0f, -1.05f}), 1);
  }
  {
    Sampler s(p);  // applied once per distinct token: 2.0 / 1.1 = 1.82 > 1.7 (not 2.0 / 1.1^3)
    s.accept(0);
    s.accept(0);
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.7f}), 0);
  }
  {
    SamplingParams q = p;
    q.repeat_penalty = 0.9f;  // < 1 encourages repeats: 1.0 / 0.9 = 1.11 > 1.05
    Sampler s(q);
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{1.0f, 1.05f}), 0);
  }
  {
    SamplingParams q = p;
    q.repeat_last_n = 2;  // token 0 leaves the window after two newer tokens
    Sampler s(q);
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f, 0.0f, 0.0f}), 1);
    s.accept(2);
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f, 0.0f, 0.0f}), 1);
    s.accept(3);
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f, 0.0f, 0.0f}), 0);
  }
  {
    SamplingParams q = p;
    q.repeat_last_n = 0;  // window 0: off
    Sampler s(q);
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f}), 0);
  }
  {
    Sampler s(p);  // ids beyond the vocabulary are ignored; negative ids are rejected
    s.accept(1000);
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f}), 0);
    EXPECT_THROW(s.accept(-1), Error);
  }
  {
    SamplingParams q = p;  // sampling mode with top_k = 1 sees the penalised logits too
    q.temperature = 0.8f;
    q.top_k = 1;
    Sampler s(q);
    s.accept(0);
    EXPECT_EQ(s.sample(std::vector<float>{2.0f, 1.9f}), 1);
  }
}

TEST(SamplerPenalty, PenalisedDistributionMatchesReference) {
  const std::vector<float> logits = {1.0f, 2.5f, 0.3f, -2.0f, 1.7f, 3.1f};
  SamplingParams p;
  p.temperature = 0.7f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_penalty = 1.5f;
  p.seed = 11;
  Sampler s(p);
  for (int32_t t : {5, 3, 5, 1}) s.accept(t);
  std::vector<float> penalised = logits;
  for (size_t t : {5u, 3u, 1u}) penalised[t] = penalised[t] > 0 ? penalised[t] / 1.5f : penalised[t] * 1.5f;
  const Reference ref = reference_distribution(penalised, p);
  constexpr int kDraws = 20000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < kDraws; ++i) ++counts[static_cast<size_t>(s.sample(logits))];
  for (size_t i = 0; i < logits.size(); ++i) {
    const double pi = ref.prob[i];
    EXPECT_NEAR(counts[i] / double(kDraws), pi, 5.0 * std::sqrt(pi * (1 - pi) / kDraws) + 1e-12) << i;
  }
}

void expect_rejected(const SamplingParams& p, const std::string& field) {
  try {
    validate(p);
    ADD_FAILURE() << field << ": expected validate() to throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
  }
  EXPECT_THROW(Sampler{p}, Error) << field;
}

TEST(SamplerValidate, RejectsEachBadField) {
  auto with = [](auto set) {
    SamplingParams p;
    set(p);
    return p;
  };
  for (float t : {-0.1f, kNaN, kInf, -kInf}) expect_rejected(with([&](auto& p) { p.temperature = t; }), "temperature");
  for (float v : {0.0f, -0.1f, 1.01f, kNaN}) expect_rejected(with([&](auto& p) { p.top_p = v; }), "top_p");
  for (float v : {-0.01f, 1.01f, kNaN}) expect_rejected(with([&](auto& p) { p.min_p = v; }), "min_p");
  expect_rejected(with([](auto& p) { p.top_k = -1; }), "top_k");
  for (float v : {0.0f, -1.0f, kNaN, kInf}) {
    expect_rejected(with([&](auto& p) { p.repeat_penalty = v; }), "repeat_penalty");
  }
  expect_rejected(with([](auto& p) { p.repeat_last_n = -1; }), "repeat_last_n");
}

TEST(SamplerValidate, AcceptsBoundaries) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.repeat_last_n = 0;
  EXPECT_NO_THROW(validate(p));
  p.min_p = 1.0f;
  p.top_p = 1e-6f;
  p.repeat_penalty = 0.01f;
  EXPECT_NO_THROW(validate(p));
  EXPECT_NO_THROW(validate(SamplingParams{}));
}

TEST(SamplerFilters, MinPOneKeepsOnlyTheMaximum) {
  SamplingParams p;
  p.temperature = 2.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 1.0f;
  Sampler s(p);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(s.sample(std::vector<float>{0.1f, 0.3f, 0.2999f}), 1);
}

}  // namespace
}  // namespace mixserve
