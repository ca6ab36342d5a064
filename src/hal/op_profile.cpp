#include "hal/op_profile.h"

#include <string_view>

namespace mixserve::hal {
namespace {

// A weight's name without its layer and suffix: "blk.3.attn_q.weight" -> "attn_q".
std::string_view weight_role(std::string_view name) {
  if (name.starts_with("blk.")) {
    const size_t dot = name.find('.', 4);
    if (dot != std::string_view::npos) name.remove_prefix(dot + 1);
  }
  if (name.ends_with(".weight")) name.remove_suffix(7);
  return name;
}

}  // namespace

ProductShape product_shape(std::span<const Op> group) {
  ProductShape shape;
  if (group.empty()) return shape;
  const Tensor& w0 = *group.front().src[0];
  shape.dtype = w0.dtype;
  shape.k = w0.ne[0];
  for (const Op& op : group) {
    const Tensor& w = *op.src[0];
    if (!shape.weight_names.empty()) shape.weight_names += '+';
    shape.weight_names += w.name.empty() ? std::string_view("?") : weight_role(w.name);
    shape.rows += w.rows();
  }
  return shape;
}

}  // namespace mixserve::hal
