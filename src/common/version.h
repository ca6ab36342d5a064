// The mixserve release version, shown by --version, in the Server header and in /v1/node.
#pragma once

namespace mixserve {

/// Semantic version of this build.
inline constexpr const char* kVersion = "0.1.0";

}  // namespace mixserve
