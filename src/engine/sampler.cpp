// Token sampling. Order of the steps: repetition penalty, then either greedy argmax or
// top-k -> softmax(logit / temperature) -> top-p -> min-p -> renormalise -> one draw.
#include "engine/sampler.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstddef>
#include <limits>

#include "common/error.h"

namespace mixserve {
namespace {

using Candidate = std::pair<float, int32_t>;

// Higher value first, lower id on ties: a strict total order (NaNs are removed beforehand), so the
// partial sorts below pick the same set on every platform and standard library.
bool ranks_before(const Candidate& a, const Candidate& b) {
  if (a.first != b.first) return a.first > b.first;
  return a.second < b.second;
}

// Uniform double in [0, 1) from the top 53 bits of one raw 64-bit output. std::mt19937_64's output
// sequence is fixed by the standard; std::uniform_real_distribution's mapping is not.
double uniform_unit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Top-k up to this size uses one streaming pass with a k-entry heap (no copy of the vocabulary).
constexpr std::size_t kStreamingTopKLimit = 1024;
// Weights below exp(-40) of the best token are treated as zero.
constexpr float kNegligibleExponent = 40.0f;

// Lowest id with the largest non-NaN value, or -1 when every value is NaN. Two passes: the maximum
// (eight independent running maxima, as comparisons with NaN are false, NaN never wins), then the
// first index holding it.
int32_t argmax_ignoring_nan(std::span<const float> values) {
  constexpr std::size_t kLanes = 8;
  std::array<float, kLanes> lane_max;
  lane_max.fill(-std::numeric_limits<float>::infinity());
  std::size_t i = 0;
  for (; i + kLanes <= values.size(); i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) {
      lane_max[j] = values[i + j] > lane_max[j] ? values[i + j] : lane_max[j];
    }
  }
  float best = -std::numeric_limits<float>::infinity();
  for (; i < values.size(); ++i) best = values[i] > best ? values[i] : best;
  for (const float m : lane_max) best = m > best ? m : best;
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (values[k] == best) return static_cast<int32_t>(k);
  }
  return -1;
}

// CTRL / llama.cpp convention: a seen token's positive logit is divided by the penalty, a
// non-positive one multiplied.
float penalised(float logit, float penalty) { return logit > 0.0f ? logit / penalty : logit * penalty; }

// `out` = every non-NaN token with its penalised logit, in id order; returns the largest value.
// Each distinct recent token is penalised once: only while its value still equals the raw logit;
// where one application leaves it unchanged (0, +-inf, underflow) a second one would too, so this
// is exactly "once per token".
float fill_all_penalised(std::span<const float> logits, const std::deque<int32_t>& recent, float penalty,
                         std::vector<Candidate>& out) {
  const std::size_t n = logits.size();
  out.resize(n);
  std::size_t m = 0;
  float max_value = -std::numeric_limits<float>::infinity();
  for (std::size_t i = 0; i < n; ++i) {
    const float v = logits[i];
    out[m] = {v, static_cast<int32_t>(i)};
    m += std::isnan(v) ? 0 : 1;
    max_value = v > max_value ? v : max_value;
  }
  out.resize(m);
  if (penalty == 1.0f) return max_value;
  bool max_penalised = false;
  float max_of_penalised = -std::numeric_limits<float>::infinity();
  for (const int32_t token : recent) {
    const auto id = static_cast<std::size_t>(token);
    if (id >= n) continue;
    const auto it = std::lower_bound(out.begin(), out.end(), token,
                                     [](const Candidate& c, int32_t value) { return c.second < value; });
    if (it == out.end() || it->second != token || it->first != logits[id]) continue;  // NaN or done
    max_penalised = max_penalised || it->first == max_value;
    it->first = penalised(it->first, penalty);
    max_of_penalised = std::max(max_of_penalised, it->first);
  }
  if (!max_penalised) return std::max(max_value, max_of_penalised);
  max_value = -std::numeric_limits<float>::infinity();
  for (const Candidate& c : out) max_value = std::max(max_value, c.first);
  return max_value;
}

// Drops NaN values (penalised recent tokens can be NaN) and keeps the k best of the rest.
void finish_top_k(std::vector<Candidate>& out, std::size_t k) {
  out.erase(std::remove_if(out.begin(), out.end(), [](const Candidate& c) { return std::isnan(c.first); }),
            out.end());
  if (out.size() > k) {
    std::nth_element(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k - 1), out.end(), ranks_before);
    out.resize(k);
  }
}

// `out` = the k best tokens by penalised logit (ties: lower id), unordered, in one pass over the
// logits. The distinct recent tokens go in first with their penalised values; the others compete in
// a heap whose top is the worst kept. The true top-k lies within (top-k non-recent) + (recent).
void select_top_k_streaming(std::span<const float> logits, const std::deque<int32_t>& recent,
                            float penalty, std::size_t k, std::vector<Candidate>& out) {
  out.clear();
  if (penalty != 1.0f) {
    for (const int32_t token : recent) {
      if (static_cast<std::size_t>(token) < logits.size()) out.emplace_back(0.0f, token);
    }
    const auto by_id = [](const Candidate& a, const Candidate& b) { return a.second < b.second; };
    std::sort(out.begin(), out.end(), by_id);
    out.erase(std::unique(out.begin(), out.end(),
                          [](const Candidate& a, const Candidate& b) { return a.second == b.second; }),
              out.end());
  }
  const std::size_t r = out.size();
  for (Candidate& c : out) c.first = penalised(logits[static_cast<std::size_t>(c.second)], penalty);
  const auto is_recent = [&out, r](int32_t id) {
    const auto end = out.begin() + static_cast<std::ptrdiff_t>(r);
    const auto it = std::lower_bound(out.begin(), end, id,
                                     [](const Candidate& c, int32_t value) { return c.second < value; });
    return it != end && it->second == id;
  };
  out.reserve(r + k);
  const std::size_t n = logits.size();
  const auto heap = out.begin() + static_cast<std::ptrdiff_t>(r);  // stable: capacity reserved
  std::size_t i = 0;
  for (; i < n && out.size() - r < k; ++i) {
    const auto id = static_cast<int32_t>(i);
    if (std::isnan(logits[i]) || (r > 0 && is_recent(id))) continue;
    out.emplace_back(logits[i], id);
    std::push_heap(heap, out.end(), ranks_before);
  }
  if (out.size() - r < k) {  // fewer than k usable tokens
    finish_top_k(out, k);
    return;
  }
  float worst = heap->first;
  // Most blocks hold nothing better than the current k-th value: one max per block skips them.
  // Comparisons with NaN are false, so NaN logits never enter.
  constexpr std::size_t kBlock = 16;
  const auto offer = [&](std::size_t j) {
    const float v = logits[j];
    if (!(v > worst)) return;  // ids rise, so an equal value never displaces a lower id
    const auto id = static_cast<int32_t>(j);
    if (r > 0 && is_recent(id)) return;
    std::pop_heap(heap, out.end(), ranks_before);
    out.back() = {v, id};
    std::push_heap(heap, out.end(), ranks_before);
    worst = heap->first;
  };
  for (; i + kBlock <= n; i += kBlock) {
    float block_max = -std::numeric_limits<float>::infinity();
    for (std::size_t j = i; j < i + kBlock; ++j) block_max = logits[j] > block_max ? logits[j] : block_max;
    if (!(block_max > worst)) continue;
    for (std::size_t j = i; j < i + kBlock; ++j) offer(j);
  }
  for (; i < n; ++i) offer(i);
  finish_top_k(out, k);
}

// Within c[from, to): moves the best-ranked candidates whose weights first reach `goal` to the front,
// sorted, and returns how many (at least one; all when rounding keeps `goal` out of reach). Looks at
// the best 64 first, then bisects by rank with nth_element: O(n) overall instead of a full sort.
std::size_t rank_prefix(std::vector<Candidate>& c, std::size_t from, std::size_t to, double goal) {
  constexpr std::size_t kFirstLook = 64;
  const auto at = [&c](std::size_t i) { return c.begin() + static_cast<std::ptrdiff_t>(i); };
  std::size_t lo = from;  // [from, lo) is kept, holds `mass` and ranks above all of [lo, to)
  std::size_t hi = to;    // the answer ends in (lo, hi]
  double mass = 0.0;
  while (hi - lo > kFirstLook) {
    const std::size_t mid = lo == from ? lo + kFirstLook : lo + (hi - lo) / 2;
    std::nth_element(at(lo), at(mid), at(hi), ranks_before);
    double upper = 0.0;
    for (std::size_t i = lo; i < mid; ++i) upper += c[i].first;
    if (mass + upper >= goal) {
      hi = mid;
    } else {
      mass += upper;
      lo = mid;
    }
  }
  std::sort(at(lo), at(hi), ranks_before);
  for (std::size_t i = lo; i < hi; ++i) {
    mass += c[i].first;
    if (mass >= goal) return i + 1 - from;
  }
  return hi - from;
}

// Bucket of a weight in (0, 1]: positive floats order like their bit patterns, so the exponent and
// the top 3 mantissa bits give 2048 ordered buckets, each spanning a weight ratio of at most 1.125.
constexpr int kBucketShift = 20;
constexpr std::size_t kBuckets = std::size_t{1} << (31 - kBucketShift);
std::size_t bucket_of(float weight) { return std::bit_cast<uint32_t>(weight) >> kBucketShift; }

// Top-p: keeps the smallest set of best-ranked candidates whose weights reach `goal`, preserving the
// order of the rest. A mass histogram over weight buckets finds the bucket where the cumulative
// mass crosses `goal`; only that bucket is ranked (in a copy at the tail of `c`), which yields the
// last kept candidate; one stable pass then keeps everything ranked at or before it.
void keep_top_p(std::vector<Candidate>& c, double goal) {
  std::array<double, kBuckets> mass{};
  for (const Candidate& x : c) mass[bucket_of(x.first)] += x.first;
  double above = 0.0;
  std::size_t crossing = kBuckets;
  for (std::size_t b = kBuckets; b-- > 0;) {
    if (above + mass[b] >= goal) {
      crossing = b;
      break;
    }
    above += mass[b];
  }
  if (crossing == kBuckets) return;  // rounding: the goal is the whole mass
  const std::size_t n = c.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (bucket_of(c[i].first) == crossing) {
      const Candidate copy = c[i];
      c.push_back(copy);
    }
  }
  const std::size_t kept_in_bucket = rank_prefix(c, n, c.size(), goal - above);
  const Candidate last = c[n + kept_in_bucket - 1];
  c.resize(n);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {  // branch-free stable compaction
    const Candidate x = c[i];
    c[kept] = x;
    kept += (x.first > last.first || (x.first == last.first && x.second <= last.second)) ? 1 : 0;
  }
  c.resize(kept);
}

// Inverse-CDF draw of a token from `c` (weights need not be normalised; the largest is 1) at
// u in [0, 1), in the order of `c`. Sums run per block of 8 so the additions pipeline; both passes
// compute the block sums identically, so the running sum reaches exactly the total.
int32_t draw(std::span<const Candidate> c, double u) {
  constexpr std::size_t kBlock = 8;
  const std::size_t full = c.size() / kBlock * kBlock;
  const auto block_sum = [&c](std::size_t from, std::size_t to) {
    double sum = 0.0;
    for (std::size_t i = from; i < to; ++i) sum += c[i].first;
    return sum;
  };
  double total = 0.0;
  for (std::size_t b = 0; b < full; b += kBlock) total += block_sum(b, b + kBlock);
  total += block_sum(full, c.size());
  const double target = u * total;
  double cumulative = 0.0;
  for (std::size_t b = 0; b < c.size(); b += kBlock) {
    const std::size_t end = std::min(b + kBlock, c.size());
    const double after = cumulative + block_sum(b, end);
    if (target < after) {
      for (std::size_t i = b; i < end; ++i) {
        cumulative += c[i].first;
        if (target < cumulative) return c[i].second;
      }
      // Rounding inside the block: its last token with non-zero weight.
      for (std::size_t i = end; i-- > b;) {
        if (c[i].first > 0.0f) return c[i].second;
      }
    }
    cumulative = after;
  }
  // Rounding left target at the very top: the last token with non-zero weight.
  for (std::size_t i = c.size(); i-- > 0;) {
    if (c[i].first > 0.0f) return c[i].second;
  }
  fail(ErrorCode::kInternal, "sampler: no candidate with positive weight");
}

[[noreturn]] void fail_all_nan(std::size_t n) {
  fail(ErrorCode::kInvalidArgument, "sampler: all ", n, " logits are NaN; cannot choose a token");
}

}  // namespace

void validate(const SamplingParams& params) {
  if (!(std::isfinite(params.temperature) && params.temperature >= 0.0f)) {
    fail(ErrorCode::kInvalidArgument, "sampling: temperature must be finite and >= 0 (0 = greedy), got ",
         params.temperature);
  }
  if (params.top_k < 0) {
    fail(ErrorCode::kInvalidArgument, "sampling: top_k must be >= 0 (0 = off), got ", params.top_k);
  }
  if (!(params.top_p > 0.0f && params.top_p <= 1.0f)) {
    fail(ErrorCode::kInvalidArgument, "sampling: top_p must be in (0, 1] (1 = off), got ", params.top_p);
  }
  if (!(params.min_p >= 0.0f && params.min_p <= 1.0f)) {
    fail(ErrorCode::kInvalidArgument, "sampling: min_p must be in [0, 1] (0 = off), got ", params.min_p);
  }
  if (!(std::isfinite(params.repeat_penalty) && params.repeat_penalty > 0.0f)) {
    fail(ErrorCode::kInvalidArgument,
         "sampling: repeat_penalty must be finite and > 0 (1 = off), got ", params.repeat_penalty);
  }
  if (params.repeat_last_n < 0) {
    fail(ErrorCode::kInvalidArgument, "sampling: repeat_last_n must be >= 0 (0 = off), got ",
         params.repeat_last_n);
  }
}

Sampler::Sampler(const SamplingParams& params) : params_(params), rng_(params.seed) {
  validate(params_);
}

void Sampler::accept(int32_t token) {
  if (token < 0) fail(ErrorCode::kInvalidArgument, "sampler: token id must be >= 0, got ", token);
  if (params_.repeat_last_n == 0) return;
  recent_.push_back(token);
  while (recent_.size() > static_cast<std::size_t>(params_.repeat_last_n)) recent_.pop_front();
}

int32_t Sampler::sample(std::span<const float> logits) {
  if (logits.empty()) fail(ErrorCode::kInvalidArgument, "sampler: empty logits (vocabulary size 0)");
  if (logits.size() > static_cast<std::size_t>(std::numeric_limits<int32_t>::max())) {
    fail(ErrorCode::kInvalidArgument, "sampler: vocabulary of ", logits.size(),
         " entries exceeds the int32 token id range");
  }
  const std::size_t vocab = logits.size();
  const bool penalise = params_.repeat_penalty != 1.0f && !recent_.empty();
  const bool greedy = params_.temperature <= 0.0f;

  if (greedy && !penalise) {
    const int32_t best = argmax_ignoring_nan(logits);
    if (best < 0) fail_all_nan(vocab);
    return best;
  }

  // Greedy is top-1 of the penalised logits.
  const std::size_t top_k = greedy ? 1 : static_cast<std::size_t>(params_.top_k);
  const float penalty = penalise ? params_.repeat_penalty : 1.0f;
  float max_logit = -std::numeric_limits<float>::infinity();
  bool id_order = false;  // whether candidates_ is sorted by token id
  if (top_k > 0 && top_k < vocab && top_k <= kStreamingTopKLimit) {
    select_top_k_streaming(logits, recent_, penalty, top_k, candidates_);
    for (const Candidate& c : candidates_) max_logit = std::max(max_logit, c.first);
  } else {
    max_logit = fill_all_penalised(logits, recent_, penalty, candidates_);
    id_order = true;
    if (top_k > 0 && top_k < candidates_.size()) {
      std::nth_element(candidates_.begin(), candidates_.begin() + static_cast<std::ptrdiff_t>(top_k - 1),
                       candidates_.end(), ranks_before);
      candidates_.resize(top_k);
      id_order = false;
      max_logit = -std::numeric_limits<float>::infinity();
      for (const Candidate& c : candidates_) max_logit = std::max(max_logit, c.first);
    }
  }
  if (candidates_.empty()) fail_all_nan(vocab);
  if (greedy) return std::min_element(candidates_.begin(), candidates_.end(), ranks_before)->second;
  // Candidates stay in id order from here on (every later filter is stable), so which token a given
  // random number selects does not depend on the standard library's selection algorithms.
  if (!id_order) {
    std::sort(candidates_.begin(), candidates_.end(),
              [](const Candidate& a, const Candidate& b) { return a.second < b.second; });
  }

  // Softmax numerators relative to the maximum, so the best token has weight exactly 1. Equal values
  // get weight 1 explicitly to handle +-inf maxima (inf - inf would be NaN). Tokens below
  // exp(-kNegligibleExponent) ~ 4e-18 of the best are dropped: together they hold < 1e-12 of the mass.
  //
  // Min-p is applied in the same pass, before top-p; that gives the same set as the documented
  // order: both keep a prefix of the candidates ranked by probability and min-p's test
  // (p / p_max = weight >= min_p) ignores normalisation, so the result is the shorter prefix either
  // way. `total` still counts every token, as top-p measures mass against the post-top-k softmax.
  // Without top-p, `total` is not needed, so tokens clearly below min-p skip the exp() (the margin
  // keeps the exact `weight >= min_p` test for those near the threshold).
  const float temperature = params_.temperature;
  const float min_weight = params_.min_p;
  const bool need_total = params_.top_p < 1.0f;
  const float min_exponent =
      need_total || min_weight <= 0.0f ? -kNegligibleExponent
                                       : std::max(-kNegligibleExponent, std::log(min_weight) - 0.01f);
  double total = 0.0;
  std::size_t kept = 0;
  for (const Candidate& c : candidates_) {
    float weight = 1.0f;
    if (c.first != max_logit) {
      const float exponent = (c.first - max_logit) / temperature;
      if (!(exponent >= min_exponent)) continue;
      weight = std::exp(exponent);
    }
    total += weight;
    candidates_[kept] = {weight, c.second};  // branch-free compaction: kept <= current index
    kept += weight >= min_weight ? 1 : 0;
  }
  candidates_.resize(kept);
  // Top-p mass is measured against the whole post-top-k distribution (`total`).
  if (need_total) keep_top_p(candidates_, static_cast<double>(params_.top_p) * total);

  // One draw per sample() call, so the RNG stream advances identically whatever the filters keep.
  return draw(candidates_, uniform_unit(rng_));
}

}  // namespace mixserve
