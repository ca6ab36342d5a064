// The load generator's arithmetic (serve/load_test.h): interval unions for the decode time and
// quantiles for the latency percentiles. The generator itself runs against a real server in
// tests/e2e/test_serve_api.cpp.
#include <gtest/gtest.h>

#include "serve/load_test.h"

namespace mixserve::serve {
namespace {

TEST(LoadTest, UnionLengthMergesOverlapsAndKeepsGaps) {
  EXPECT_DOUBLE_EQ(union_length({}), 0.0);
  EXPECT_DOUBLE_EQ(union_length({{1, 3}}), 2.0);
  EXPECT_DOUBLE_EQ(union_length({{5, 6}, {1, 3}}), 3.0);            // disjoint, unsorted
  EXPECT_DOUBLE_EQ(union_length({{1, 4}, {2, 3}, {3.5, 6}}), 5.0);  // nested and chained
  EXPECT_DOUBLE_EQ(union_length({{1, 2}, {2, 3}}), 2.0);            // touching
  EXPECT_DOUBLE_EQ(union_length({{1, 2}, {3, 2.5}}), 1.0);          // an empty interval counts nothing
  EXPECT_DOUBLE_EQ(union_length({{0, 10}, {1, 2}, {11, 12}}), 11.0);
}

TEST(LoadTest, QuantilesInterpolateBetweenOrderStatistics) {
  EXPECT_DOUBLE_EQ(quantile({}, 0.5), 0.0);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.5), 2.5);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 0.0), 1.0);
  EXPECT_DOUBLE_EQ(quantile({4, 1, 3, 2}, 1.0), 4.0);
  EXPECT_DOUBLE_EQ(quantile({10}, 0.99), 10.0);
}

}  // namespace
}  // namespace mixserve::serve
