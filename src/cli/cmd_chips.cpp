// `mixserve chips`: prints the chip catalogue (built in, plus --catalogue overrides) as a table or JSON.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "fleet/catalogue.h"

namespace mixserve::cli {
namespace {

struct ChipsFlags {
  std::vector<std::string> catalogues;
  std::string home = "CN";
  bool json = false;
};

nlohmann::json figure_json(const fleet::Figure& f) {
  return {{"value", f.value}, {"source", f.source}, {"estimate", f.estimate}};
}

void run_chips(const ChipsFlags& flags) {
  auto catalogue = fleet::Catalogue::builtin();
  for (const auto& path : flags.catalogues) catalogue.apply_overrides(path);
  if (flags.json) {
    auto out = nlohmann::json::array();
    for (const auto& [id, c] : catalogue.chips()) {
      out.push_back({{"id", id},
                     {"vendor", c.vendor},
                     {"model", c.model},
                     {"country", c.country},
                     {"domestic", catalogue.is_domestic(id, flags.home)},
                     {"accelerator", c.accelerator},
                     {"stack", c.stack},
                     {"memory_type", c.memory_type},
                     {"memory_gib", figure_json(c.memory_gib)},
                     {"memory_bandwidth_gbs", figure_json(c.memory_bandwidth_gbs)},
                     {"fp16_tflops", figure_json(c.fp16_tflops)},
                     {"bf16_tflops", figure_json(c.bf16_tflops)},
                     {"int8_tops", figure_json(c.int8_tops)},
                     {"tdp_w", figure_json(c.tdp_w)},
                     {"match", c.match}});
    }
    std::printf("%s\n", out.dump(2).c_str());
    return;
  }
  auto fig = [](const fleet::Figure& f) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f%s", f.value, f.estimate ? "*" : "");
    return std::string(buf);
  };
  std::printf("%-20s %-15s %-32s %-3s %-4s %-6s %-8s %-14s %-9s %-9s\n", "ID", "VENDOR", "MODEL", "CC", "DOM", "STACK",
              "MEM_GIB", "MEMTYPE", "FP16_TF", "INT8_TOPS");
  for (const auto& [id, c] : catalogue.chips()) {
    const char* dom = !c.accelerator ? "-" : catalogue.is_domestic(id, flags.home) ? "yes" : "no";
    std::printf("%-20s %-15s %-32s %-3s %-4s %-6s %-8s %-14s %-9s %-9s\n", id.c_str(), c.vendor.c_str(),
                c.model.c_str(), c.country.c_str(), dom, c.stack.c_str(), fig(c.memory_gib).c_str(),
                c.memory_type.c_str(), fig(c.fp16_tflops).c_str(), fig(c.int8_tops).c_str());
  }
  std::printf(
      "\n* estimate or press report (see `mixserve chips --json` for every source); DOM relative to %s;"
      " '-' = not an accelerator, never counted\n",
      flags.home.c_str());
}

}  // namespace

void add_chips_command(CLI::App& app) {
  auto flags = std::make_shared<ChipsFlags>();
  auto* cmd = app.add_subcommand("chips", "list the chip catalogue (vendor, country, stack, figures)");
  cmd->add_option("--catalogue", flags->catalogues, "catalogue override file (repeatable, applied in order)");
  cmd->add_option("--home", flags->home, "home country for the domestic column (default CN)");
  cmd->add_flag("--json", flags->json, "print JSON with every figure's source");
  cmd->callback([flags] { run_chips(*flags); });
}

}  // namespace mixserve::cli
