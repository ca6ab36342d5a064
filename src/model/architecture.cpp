#include "model/architecture.h"

#include "common/error.h"

namespace mixserve {

std::vector<const Architecture*> architectures() { return {&llama_architecture(), &qwen2_architecture()}; }

const Architecture& find_architecture(std::string_view name) {
  std::string known;
  for (const Architecture* arch : architectures()) {
    if (arch->name == name) return *arch;
    known += (known.empty() ? "" : ", ") + std::string(arch->name);
  }
  fail(ErrorCode::kUnimplemented, "unsupported model architecture '", name, "' (supported: ", known, ")");
}

}  // namespace mixserve
