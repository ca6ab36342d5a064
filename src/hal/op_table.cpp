#include "hal/op_table.h"

#include <algorithm>
#include <cstdio>

#include "common/error.h"

namespace mixserve::hal {

void OpTable::add(const Op& op, const OpPlacement& placement) {
  const std::string name(op_name(op.kind));
  const std::string device = placement.device->info().id;
  const int kind = static_cast<int>(op.kind);
  size_t i = 0;
  while (i < rows_.size() && (kinds_[i] < kind || (kinds_[i] == kind && rows_[i].device < device))) ++i;
  if (i == rows_.size() || rows_[i].op != name || rows_[i].device != device) {
    rows_.insert(rows_.begin() + static_cast<std::ptrdiff_t>(i), Row{name, device, "", 0, 0});
    kinds_.insert(kinds_.begin() + static_cast<std::ptrdiff_t>(i), kind);
  }
  Row& row = rows_[i];
  ++row.count;
  if (placement.fallback()) {
    ++row.fallbacks;
    const std::string preferred = placement.preferred->info().id;
    if (row.preferred.find(preferred) == std::string::npos) {
      row.preferred += (row.preferred.empty() ? "" : ", ") + preferred;
    }
  }
}

int64_t OpTable::fallbacks() const {
  int64_t n = 0;
  for (const Row& r : rows_) n += r.fallbacks;
  return n;
}

int64_t OpTable::total() const {
  int64_t n = 0;
  for (const Row& r : rows_) n += r.count;
  return n;
}

std::string OpTable::format() const {
  size_t op_w = 2, dev_w = 6;
  for (const Row& r : rows_) {
    op_w = std::max(op_w, r.op.size());
    dev_w = std::max(dev_w, r.device.size());
  }
  auto line = [&](const std::string& op, const std::string& dev, const std::string& count, const std::string& note) {
    char buf[512];
    std::snprintf(buf, sizeof buf, "%-*s  %-*s  %5s  %s\n", static_cast<int>(op_w), op.c_str(),
                  static_cast<int>(dev_w), dev.c_str(), count.c_str(), note.c_str());
    return std::string(buf);
  };
  std::string out = line("op", "device", "ops", "fallback");
  for (const Row& r : rows_) {
    const std::string note =
        r.fallbacks == 0 ? "" : str_cat(r.fallbacks, " (", r.preferred, " cannot run ", r.op, ")");
    out += line(r.op, r.device, std::to_string(r.count), note);
  }
  out += str_cat(total(), " ops per decode step, ", fallbacks(), " fell back to another device\n");
  return out;
}

}  // namespace mixserve::hal
