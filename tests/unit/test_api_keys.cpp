// API key files: parsing rules and Bearer checks.
#include <gtest/gtest.h>

#include "common/error.h"
#include "serve/api_keys.h"

namespace mixserve::serve {
namespace {

TEST(ApiKeys, ParsesKeysSkippingCommentsAndBlanks) {
  const ApiKeys keys = ApiKeys::parse("# comment\n\n  sk-first-key-1  \r\nsk-second-key-2\n", "keys.txt");
  EXPECT_TRUE(keys.enabled());
  EXPECT_EQ(keys.size(), 2u);
  EXPECT_TRUE(keys.allows("Bearer sk-first-key-1"));
  EXPECT_TRUE(keys.allows("Bearer sk-second-key-2"));
  EXPECT_FALSE(keys.allows("Bearer sk-first-key-"));
  EXPECT_FALSE(keys.allows("Bearer sk-first-key-12"));
  EXPECT_FALSE(keys.allows("sk-first-key-1"));
  EXPECT_FALSE(keys.allows("Basic sk-first-key-1"));
  EXPECT_FALSE(keys.allows("Bearer "));
  EXPECT_FALSE(keys.allows(""));
}

TEST(ApiKeys, NoKeysAllowsEverything) {
  const ApiKeys keys;
  EXPECT_FALSE(keys.enabled());
  EXPECT_TRUE(keys.allows(""));
}

TEST(ApiKeys, RejectsBadFilesNamingTheLine) {
  try {
    ApiKeys::parse("sk-good-key-1\nshort\n", "k.txt");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("k.txt:2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ApiKeys::parse("sk-has inner-blank\n", "k"), Error);
  EXPECT_THROW(ApiKeys::parse("# only comments\n\n", "k"), Error);
  EXPECT_THROW(ApiKeys::load("/nonexistent/keys"), Error);
}

}  // namespace
}  // namespace mixserve::serve
