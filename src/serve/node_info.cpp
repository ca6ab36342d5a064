#include "serve/node_info.h"

#include "model/transformer_builder.h"

namespace mixserve::serve {
namespace {

using nlohmann::json;

json figure(const fleet::Figure& f) {
  if (f.value <= 0) return nullptr;
  return {{"value", f.value}, {"source", f.source}, {"estimate", f.estimate}};
}

json chip_json(const NodeFacts& facts) {
  if (!facts.chip) return nullptr;
  const fleet::ChipSpec& c = *facts.chip;
  return {{"id", c.id},
          {"vendor", c.vendor},
          {"model", c.model},
          {"country", c.country},
          {"domestic", facts.domestic},
          {"home_country", facts.home_country},
          {"accelerator", c.accelerator},
          {"stack", c.stack},
          {"memory_gib", figure(c.memory_gib)},
          {"memory_bandwidth_gbs", figure(c.memory_bandwidth_gbs)},
          {"fp16_tflops", figure(c.fp16_tflops)}};
}

// Bytes of the K and V caches of every layer for `rows` cache rows, as they are allocated.
uint64_t kv_cache_bytes(const ModelConfig& cfg, DType type, int64_t rows) {
  return static_cast<uint64_t>(layout_forward(cfg, 1, rows, type).cache_bytes) * 2 * static_cast<uint64_t>(cfg.n_layer);
}

}  // namespace

json describe_node(const NodeFacts& facts, const Model& model, const BatchScheduler& scheduler, double uptime_seconds,
                   bool draining) {
  const ModelConfig& cfg = model.config();
  const SchedulerStats stats = scheduler.stats();
  const SchedulerOptions& limits = scheduler.options();

  json devices = json::array();
  const auto& placement = model.placement();
  for (size_t i = 0; i < placement.devices.size(); ++i) {
    const hal::DeviceInfo info = placement.devices[i]->info();
    devices.push_back({{"id", info.id},
                       {"name", info.name},
                       {"vendor", info.vendor},
                       {"backend", info.backend},
                       {"memory_total_bytes", info.memory_total},
                       {"memory_free_bytes", info.memory_free},
                       {"compute_units", info.compute_units},
                       {"ops_run", i < stats.devices.ops_per_device.size() ? stats.devices.ops_per_device[i] : 0}});
  }
  json ops = json::array();
  for (const auto& row : model.op_table().rows()) {
    ops.push_back({{"op", row.op}, {"device", row.device}, {"count", row.count}, {"fallbacks", row.fallbacks},
                   {"preferred", row.preferred}});
  }
  json model_json = {{"id", facts.model_id},
                     {"path", facts.model_path},
                     {"architecture", cfg.arch},
                     {"name", cfg.name},
                     {"n_layer", cfg.n_layer},
                     {"n_embd", cfg.n_embd},
                     {"n_vocab", cfg.n_vocab},
                     {"context_train", cfg.n_ctx_train},
                     {"weight_bytes", model.weight_bytes()},
                     {"bytes_per_token", model.bytes_per_token()}};
  json capacity = {
      {"max_sequences", limits.max_seqs},
      {"max_queue", limits.max_queue},
      {"context_length", limits.batch.max_seq_len},
      {"max_batch_tokens", limits.batch.max_batch_tokens},
      {"kv_blocks", stats.kv.total},
      {"kv_block_tokens", limits.batch.block_size},
      {"kv_cache_type", dtype_name(model.options().cache_type)},
      {"kv_cache_bytes", kv_cache_bytes(cfg, model.options().cache_type, stats.kv.total * limits.batch.block_size)}};
  // The decode roofline of one sequence on the chip: every weight byte read once per token.
  if (facts.chip && facts.chip->memory_bandwidth_gbs.value > 0 && model.bytes_per_token() > 0) {
    capacity["decode_roofline_tokens_per_s"] =
        facts.chip->memory_bandwidth_gbs.value * 1e9 / static_cast<double>(model.bytes_per_token());
  }
  const double kv_fraction = stats.kv.total > 0 ? static_cast<double>(stats.kv.used) / static_cast<double>(stats.kv.total) : 0;
  json load = {{"queued", stats.queued},
               {"running", stats.running},
               {"kv_blocks_used", stats.kv.used},
               {"kv_blocks_cached", stats.kv.cached},
               {"kv_utilization", kv_fraction},
               {"sequence_utilization",
                static_cast<double>(stats.running) / static_cast<double>(std::max<int64_t>(1, limits.max_seqs))},
               {"prompt_tokens_computed_total", stats.prompt_tokens},
               {"generated_tokens_total", stats.generated_tokens},
               {"preemptions_total", stats.preemptions}};
  json placement_json = {{"split", model.options().split},
                         {"fallback_allowed", placement.allow_fallback},
                         {"ops_per_step", model.op_table().total()},
                         {"fallbacks_per_step", model.op_table().fallbacks()},
                         {"op_table", ops},
                         {"copies_total", stats.devices.copies},
                         {"copy_bytes_total", stats.devices.bytes_copied}};
  return {{"object", "node"},
          {"hostname", facts.hostname},
          {"version", facts.version},
          {"status", draining ? "draining" : "ready"},
          {"uptime_seconds", uptime_seconds},
          {"model", model_json},
          {"chip", chip_json(facts)},
          {"devices", devices},
          {"placement", placement_json},
          {"capacity", capacity},
          {"load", load}};
}

}  // namespace mixserve::serve
