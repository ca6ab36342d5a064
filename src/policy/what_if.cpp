#include "policy/what_if.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace mixserve::policy {

bool share_holds(double domestic, double total, double threshold, bool strict) {
  const double diff = domestic - threshold * total;
  const double tolerance = 1e-12 * std::max(total, 1.0);
  return strict ? diff > tolerance : diff >= -tolerance;
}

namespace {

constexpr double kHuge = 1e18;

// Smallest whole k >= 0 with holds(k), starting from an estimate; nullopt when even a huge k fails.
template <typename Holds>
std::optional<double> smallest_whole(double estimate, Holds holds) {
  double k = std::isfinite(estimate) ? std::clamp(std::ceil(estimate), 0.0, kHuge) : 0.0;
  for (int step = 0; !holds(k); ++step) {
    if (k >= kHuge || step > 64) return std::nullopt;
    k = step < 4 ? k + 1 : std::min(kHuge, k * 2 + 1);  // the estimate is off by at most a unit or two
  }
  // Walk back down: first in halving steps if we doubled, then unit steps.
  double lo = 0;
  double hi = k;
  while (hi - lo > 1) {
    const double mid = std::floor((lo + hi) / 2);
    if (holds(mid)) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return holds(lo) ? lo : hi;
}

// Domestic accelerator to propose: on device_count the domestic chip already most present in scope
// (operators extend what they run), otherwise the one with the largest figure on the basis.
std::optional<AddSuggestion> pick_domestic(const Rule& rule, const std::vector<ChipTally>& tallies,
                                           const fleet::Catalogue& catalogue, const std::string& home) {
  std::optional<AddSuggestion> best;
  if (rule.basis == Basis::kDeviceCount) {
    std::int64_t most = 0;
    for (const auto& t : tallies) {
      if (t.known && t.domestic && t.devices > most) {
        most = t.devices;
        best = AddSuggestion{t.chip, 0, 1};
      }
    }
    if (best) return best;
  }
  double best_weight = 0;
  double best_fp16 = 0;
  for (const auto& [id, spec] : catalogue.chips()) {
    if (!spec.accelerator || !catalogue.is_domestic(id, home)) continue;
    double w = 1;
    if (rule.basis == Basis::kPeakFp16Tflops) w = spec.fp16_tflops.value;
    if (rule.basis == Basis::kMemoryGib) w = spec.memory_gib.value;
    // Ties (and device_count) fall back to the highest FP16 peak: the most capable device.
    if (w > best_weight || (w == best_weight && w > 0 && spec.fp16_tflops.value > best_fp16)) {
      best_weight = w;
      best_fp16 = spec.fp16_tflops.value;
      best = AddSuggestion{id, 0, w};
    }
  }
  return best;
}

std::string removal_action(const Rule& rule) {
  if (basis_uses_usage(rule.basis)) return "shift";
  if (!rule.counts_state(fleet::NodeState::kIdle)) return "idle";
  if (!rule.counts_state(fleet::NodeState::kDrained)) return "drain";
  return "retire";
}

}  // namespace

WhatIf compute_what_if(const Rule& rule, double numerator, double denominator, const std::vector<ChipTally>& tallies,
                       const fleet::Catalogue& catalogue, const std::string& home_country) {
  WhatIf w;
  w.needed = true;
  w.remove_action = removal_action(rule);
  const double t = rule.min_domestic_share;
  const double d = numerator;
  const double total = denominator;
  const double foreign = total - d;
  const bool usage = basis_uses_usage(rule.basis);

  // (a) add domestic: (d + k w) / (total + k w) reaches t  <=>  k >= (t total - d) / (w (1 - t)).
  if (t >= 1.0 && foreign > 0) {
    w.notes.push_back("adding domestic capacity cannot reach 100% while foreign capacity remains");
  } else if (usage) {
    auto holds = [&](double k) { return share_holds(d + k, total + k, t, rule.strict); };
    w.add_amount = smallest_whole((t * total - d) / (1 - t), holds);
  } else if (auto pick = pick_domestic(rule, tallies, catalogue, home_country); !pick || pick->weight <= 0) {
    w.notes.push_back("the catalogue has no domestic accelerator with a figure on this basis");
  } else {
    const double wt = pick->weight;
    auto holds = [&](double k) { return share_holds(d + k * wt, total + k * wt, t, rule.strict); };
    if (auto k = smallest_whole((t * total - d) / (wt * (1 - t)), holds)) {
      pick->count = static_cast<std::int64_t>(*k);
      w.add = pick;
    }
  }

  // (b) shed foreign: d / (total - x) reaches t  <=>  x >= (t total - d) / t.
  if (d <= 0) {
    w.notes.push_back("no domestic capacity in scope, so removing foreign capacity cannot help");
    return w;
  }
  if (usage) {
    auto holds = [&](double x) { return x >= foreign || share_holds(d, total - x, t, rule.strict); };
    auto x = smallest_whole(t > 0 ? (t * total - d) / t : 0, holds);
    if (x) w.remove_amount = std::min(*x, std::ceil(foreign));
    return w;
  }
  // Largest weight first: for any number of removed devices this sheds the most, so it is minimal.
  std::vector<const ChipTally*> foreign_chips;
  for (const auto& tally : tallies) {
    if (!tally.domestic && tally.devices > 0 && (tally.known || rule.basis == Basis::kDeviceCount)) {
      foreign_chips.push_back(&tally);
    }
  }
  std::sort(foreign_chips.begin(), foreign_chips.end(), [](const ChipTally* a, const ChipTally* b) {
    return a->weight != b->weight ? a->weight > b->weight : a->chip < b->chip;
  });
  double removed = 0;
  for (const auto* tally : foreign_chips) {
    const double wt = tally->weight;
    auto holds = [&](double c) { return share_holds(d, total - removed - c * wt, t, rule.strict); };
    const auto available = static_cast<double>(tally->devices);
    if (!holds(available)) {
      removed += available * wt;
      w.remove.push_back({tally->chip, tally->devices});
      w.remove_devices += tally->devices;
      continue;
    }
    const double guess = t > 0 ? (t * (total - removed) - d) / (t * wt) : 0;
    auto c = smallest_whole(std::min(guess, available), holds);
    const auto count = static_cast<std::int64_t>(std::min(c.value_or(available), available));
    if (count > 0) w.remove.push_back({tally->chip, count});
    w.remove_devices += count;
    return w;
  }
  w.notes.push_back("even with every counted foreign device removed the rule would not hold");
  w.remove.clear();
  w.remove_devices = 0;
  return w;
}

}  // namespace mixserve::policy
