// The text of data/chips.yaml, compiled into the library (generated from builtin_chips.cpp.in).
#pragma once

namespace mixserve::fleet {

/// NUL-terminated YAML of the shipped chip catalogue; static storage, never freed.
extern const char* const kBuiltinChipsYaml;

}  // namespace mixserve::fleet
