// Checking the errors the library throws: that one is thrown, with which code, and that its message
// names what a user needs (file, line, entry, key).
#pragma once

#include <gtest/gtest.h>

#include <initializer_list>
#include <string>

#include "common/error.h"

namespace mixserve::testing {

/// The message of the mixserve::Error `f` throws (checked to have `code`); "" and a test failure
/// when it throws nothing.
template <typename F>
std::string error_of(F&& f, ErrorCode code = ErrorCode::kInvalidArgument) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an error";
  return "";
}

/// Expects every one of `parts` in `msg`.
inline void expect_parts(const std::string& msg, std::initializer_list<const char*> parts) {
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' missing from: " << msg;
}

}  // namespace mixserve::testing
